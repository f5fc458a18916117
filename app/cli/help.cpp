// `longshot --help`: commands, every attention mode with its parameters (from the registry), then
// the shipped method presets.
#include <iomanip>
#include <iostream>

#include "app/cli/command.h"
#include "engine/attention/mask_policy.h"
#include "engine/attention/presets.h"
#include "engine/common/assets.h"

namespace longshot::cli {

void print_help(std::ostream& out) {
  out << "longshot — long-video generation with sparse-attention video DiTs\n\n"
      << "Usage: longshot [--verbose] COMMAND [options]   (LONGSHOT_LOG=trace|debug|info|warn|error sets the log level)\n\n"
      << "Commands:\n";
  for (const auto& c : commands()) out << "  " << std::left << std::setw(10) << c.name << " " << c.summary << "\n";
  out << "\nAttention modes (--mode NAME, --param key=value):\n";
  for (const auto& info : attention::registered_policies()) {
    out << "  " << info.name << ": " << info.summary << "\n";
    for (const auto& p : info.params) {
      out << "      " << std::left << std::setw(22) << p.name << " default " << p.default_value << ", range "
          << (p.min_inclusive ? "[" : "(") << p.min << ", " << p.max << (p.max_inclusive ? "]" : ")")
          << (p.integer ? " integer" : "") << " — " << p.help << "\n";
    }
  }
  out << "\nPresets (--preset NAME: a paper's published setting; later flags override it):\n";
  try {
    const auto presets = attention::shipped_presets();
    if (presets.empty()) out << "  (none found: " << asset_search_text("presets") << ")\n";
    for (const auto& p : presets) out << "  " << p.name << ": " << p.summary << "\n";
  } catch (const std::exception& e) {
    out << "  (cannot list them: " << e.what() << ")\n";
  }
  out << "\nRun 'longshot COMMAND --help' for a command's options.\n";
}

}  // namespace longshot::cli
