// Subcommands of the `longshot` CLI. Each lives in its own <name>_command.cpp and registers itself
// with LONGSHOT_COMMAND; main() only dispatches.
#pragma once
#include <functional>
#include <string>
#include <vector>

namespace longshot::cli {

struct Command {
  std::string name;
  std::string summary;   // one line for `longshot --help`
  std::string usage;     // full usage text for `longshot NAME --help`
  std::function<int(const std::vector<std::string>& args)> run;  // args after the command name
};

std::vector<Command>& commands();

struct CommandRegistrar {
  explicit CommandRegistrar(Command command) { commands().push_back(std::move(command)); }
};

// Small helpers shared by commands.
bool has_flag(const std::vector<std::string>& args, const std::string& flag);

}  // namespace longshot::cli

#define LONGSHOT_CONCAT_INNER(a, b) a##b
#define LONGSHOT_CONCAT(a, b) LONGSHOT_CONCAT_INNER(a, b)
#define LONGSHOT_COMMAND(...) \
  static ::longshot::cli::CommandRegistrar LONGSHOT_CONCAT(longshot_command_, __LINE__)(::longshot::cli::Command{__VA_ARGS__})
