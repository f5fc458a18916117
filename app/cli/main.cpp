// `longshot`: the headless entry point. Wires logging and dispatches to a subcommand of the table.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "app/cli/command.h"
#include "engine/common/address_space.h"
#include "engine/common/error.h"
#include "engine/common/log.h"
#include "engine/common/parse.h"
#include "engine/common/threads.h"

namespace longshot::cli {

using longshot::ParameterError;

const std::vector<Command>& commands() {
  // Alphabetical: the order `longshot --help` lists them in.
  static const std::vector<Command> table = {
      calibrate_command(), demo_command(),   encode_text_command(), eval_command(),       generate_command(),
      masks_command(),     models_command(), vae_decode_command(),  vae_encode_command(),
  };
  return table;
}

const Command* find_command(const std::string& name) {
  for (const auto& c : commands())
    if (c.name == name) return &c;
  return nullptr;
}

bool has_flag(const std::vector<std::string>& args, const std::string& flag) {
  return std::find(args.begin(), args.end(), flag) != args.end();
}

int64_t parse_int(const std::string& flag, const std::string& text, int64_t min_value, int64_t max_value) {
  int64_t v = 0;
  if (!longshot::parse_int64(text, v)) {
    const size_t sign = text.rfind('-', 0) == 0 ? 1 : 0;
    const bool digits = text.size() > sign && text.find_first_not_of("0123456789", sign) == std::string::npos;
    if (digits) throw ParameterError(flag, "'" + text + "' does not fit a 64-bit integer");
    throw ParameterError(flag, "expected an integer, got '" + text + "'");
  }
  if (v < min_value) throw ParameterError(flag, "must be >= " + std::to_string(min_value) + ", got " + text);
  if (v > max_value) throw ParameterError(flag, "must be <= " + std::to_string(max_value) + ", got " + text);
  return v;
}

int parse_int32(const std::string& flag, const std::string& text, int min_value, int max_value) {
  return int(parse_int(flag, text, min_value, max_value));
}

uint64_t parse_uint64(const std::string& flag, const std::string& text) {
  uint64_t v = 0;
  if (!longshot::parse_uint64(text, v))
    throw ParameterError(flag, text.rfind('-', 0) == 0 ? "must be >= 0, got " + text
                                                       : "expected an integer from 0 to 18446744073709551615, got '" + text + "'");
  return v;
}

std::string parse_path(const std::string& flag, const std::string& text) {
  if (text.empty()) throw ParameterError(flag, "the path is empty");
  return text;
}

double parse_double(const std::string& flag, const std::string& text) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(v)) {
    throw ParameterError(flag, "expected a number, got '" + text + "'");
  }
  return v;
}

void print_help(std::ostream& out);

}  // namespace longshot::cli

int main(int argc, char** argv) {
  using namespace longshot::cli;
  std::vector<std::string> args(argv + 1, argv + argc);
  const bool verbose = has_flag(args, "--verbose") || has_flag(args, "-v");
  args.erase(std::remove_if(args.begin(), args.end(),
                            [](const std::string& a) { return a == "--verbose" || a == "-v"; }),
             args.end());
  longshot::init_logging(verbose);
  longshot::init_cpu_threads();

  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    print_help(std::cout);
    return args.empty() ? 2 : 0;
  }
  const Command* it = find_command(args[0]);
  if (!it) {
    std::cerr << "longshot: unknown command '" << args[0] << "'. Run 'longshot --help' for the list.\n";
    return 2;
  }
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (has_flag(rest, "--help") || has_flag(rest, "-h")) {
    std::cout << it->usage << "\n";
    return 0;
  }
  try {
    // Every command but `models` runs tensor work on this thread (eval, masks, calibrate,
    // encode-text, vae-*; generate's run_job checks again on its own thread): a low `ulimit -v`
    // must be this error, not an OpenBLAS hang deaf to Ctrl-C (probe F5).
    if (it->name != "models") longshot::ensure_address_space_headroom();
    return it->run(rest);
  } catch (const longshot::Error& e) {
    std::cerr << "longshot " << it->name << ": error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "longshot " << it->name << ": unexpected error: " << e.what() << "\n";
    return 1;
  }
}
