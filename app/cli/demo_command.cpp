// `longshot demo`: README's main job. With a display and a built studio it opens the studio on the
// default model; headless it runs the CLI generation of the default prompt into demo.mp4.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "app/cli/command.h"

namespace longshot::cli {
namespace {

std::filesystem::path studio_next_to_us() {
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return {};
  // Build tree: build/<preset>/app/longshot → build/<preset>/app/studio/longshot-studio;
  // installed: <prefix>/bin/longshot → <prefix>/bin/longshot-studio.
  for (const auto& candidate : {self.parent_path() / "studio" / "longshot-studio",
                                self.parent_path() / "longshot-studio"}) {
    if (std::filesystem::exists(candidate, ec)) return candidate;
  }
  return {};
}

int run_demo(const std::vector<std::string>& args) {
  const bool headless = has_flag(args, "--headless");
  const char* display = std::getenv("DISPLAY");
  const char* wayland = std::getenv("WAYLAND_DISPLAY");
  const bool have_display = (display && *display) || (wayland && *wayland);
  const auto studio = studio_next_to_us();
  if (!headless && have_display && !studio.empty()) {
    std::cerr << "longshot demo: display found, opening " << studio << " (use --headless for the CLI)\n";
    const std::string path = studio.string();
    execl(path.c_str(), path.c_str(), "--generate-on-start", static_cast<char*>(nullptr));
    std::cerr << "longshot demo: could not start the studio; generating headless instead\n";
  } else if (!headless) {
    std::cerr << "longshot demo: " << (have_display ? "studio not built" : "no display")
              << ", generating headless with the CLI\n";
  }
  std::vector<std::string> gen_args = {"--prompt", "a small red circle bounces left to right on a dark blue background",
                                       "--out", "demo.mp4"};
  for (const auto& a : args)
    if (a != "--headless") gen_args.push_back(a);
  return generate_command().run(gen_args);
}

}  // namespace

Command demo_command() {
  return {"demo", "README's main job: the studio when a display exists, else a headless generation to demo.mp4",
          "Usage: longshot demo [--headless] [generate options...]\n"
          "Opens longshot-studio (generating on start) when $DISPLAY is set and the studio is built;\n"
          "otherwise runs 'longshot generate' with the default model and prompt, writing demo.mp4.\n"
          "Extra options are passed to 'generate' (e.g. --mode lvsa --steps 10).",
          run_demo};
}

}  // namespace longshot::cli
