// Subcommands of the `longshot` CLI. Each lives in its own <name>_command.cpp and is listed by name
// in the one command table (main.cpp); main() only dispatches. CLI room: flags in, engine calls out;
// no generation logic of its own.
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

// The command table, in `longshot --help` order: an explicit list built on first use (no
// static-init self-registration: it hangs on link order and a static library drops the object
// files nothing references). A new command adds its function below and one line to the table.
const std::vector<Command>& commands();
// The command called `name`, or nullptr.
const Command* find_command(const std::string& name);

// One per subcommand, each defined in its own *_command.cpp.
Command calibrate_command();
Command demo_command();
Command encode_text_command();
Command eval_command();
Command generate_command();
Command masks_command();
Command models_command();
Command vae_decode_command();
Command vae_encode_command();

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
