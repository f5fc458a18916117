// Subcommands of the `longshot` CLI. Each lives in its own <name>_command.cpp and registers itself
// with LONGSHOT_COMMAND; main() only dispatches.
#pragma once
#include <cstdint>
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
// The whole of `text` as an integer in [min_value, max_value]; throws ParameterError naming `flag`
// otherwise — a value that does not fit is refused, never wrapped.
int64_t parse_int(const std::string& flag, const std::string& text, int64_t min_value = INT64_MIN,
                  int64_t max_value = INT64_MAX);
// The same for an `int` (frames, steps, sizes): values beyond its range are refused.
int parse_int32(const std::string& flag, const std::string& text, int min_value = INT32_MIN, int max_value = INT32_MAX);
// 0 … 2^64 − 1 (seeds); a negative value is refused instead of wrapping to a huge one.
uint64_t parse_uint64(const std::string& flag, const std::string& text);
// A non-empty path; "" would silently mean "no output".
std::string parse_path(const std::string& flag, const std::string& text);
// The whole of `text` as a finite number; throws ParameterError naming `flag` otherwise.
double parse_double(const std::string& flag, const std::string& text);

}  // namespace longshot::cli

#define LONGSHOT_CONCAT_INNER(a, b) a##b
#define LONGSHOT_CONCAT(a, b) LONGSHOT_CONCAT_INNER(a, b)
#define LONGSHOT_COMMAND(...) \
  static ::longshot::cli::CommandRegistrar LONGSHOT_CONCAT(longshot_command_, __LINE__)(::longshot::cli::Command{__VA_ARGS__})
