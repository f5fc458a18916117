// `longshot-studio`: wires logging, the Qt application, the main window and (with --selftest) the
// unattended UI test. With no display it hands over to the headless CLI (`longshot generate`).
#include <QApplication>
#include <QSurfaceFormat>
#include <QTimer>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unistd.h>
#include <vector>

#include "app/studio/log_sink.h"
#include "app/studio/selftest.h"
#include "app/studio/studio_window.h"
#include "engine/common/log.h"

namespace {
bool has_display() {
  const char* platform = std::getenv("QT_QPA_PLATFORM");
  if (platform && *platform) return true;  // offscreen, xcb, wayland ... chosen explicitly
  return (std::getenv("DISPLAY") && *std::getenv("DISPLAY")) ||
         (std::getenv("WAYLAND_DISPLAY") && *std::getenv("WAYLAND_DISPLAY"));
}

// The CLI binary next to ours (build tree or install prefix), else the one on PATH.
int run_cli_instead(char* self, const std::vector<std::string>& args) {
  std::string dir = self;
  const auto slash = dir.rfind('/');
  dir = slash == std::string::npos ? "" : dir.substr(0, slash + 1);
  std::vector<std::string> candidates = {dir + "longshot", dir + "../longshot", dir + "../bin/longshot", "longshot"};
  std::vector<std::string> argv_s = {"longshot", "generate"};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::fprintf(stderr, "longshot-studio: no display found; running the headless CLI instead: longshot generate\n");
  for (const auto& c : candidates) {
    if (c.find('/') != std::string::npos && access(c.c_str(), X_OK) != 0) continue;
    execvp(c.c_str(), argv.data());
  }
  std::fprintf(stderr, "longshot-studio: cannot start the CLI 'longshot' (%s)\n", std::strerror(errno));
  return 2;
}
}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string selftest;
  std::vector<std::string> rest;
  bool verbose = false;
  bool generate_on_start = false;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--selftest") {
      if (i + 1 >= args.size()) {
        std::fprintf(stderr, "longshot-studio: --selftest needs the screenshot path (e.g. --selftest out.png)\n");
        return 2;
      }
      selftest = args[++i];
    } else if (args[i] == "--help" || args[i] == "-h") {
      std::printf(
          "usage: longshot-studio [--generate-on-start] [--selftest OUT.png] [--verbose]\n"
          "  Opens Longshot Studio. Without a display, runs `longshot generate` with the other arguments.\n"
          "  --selftest OUT.png  generate with the tiny model, switch the mode mid-run, compare two modes,\n"
          "                      save a screenshot and check every panel drew; exit 0 on success.\n"
          "  --generate-on-start start generating the dock's request (default model and prompt) at once.\n");
      return 0;
    } else if (args[i] == "--generate-on-start") {
      generate_on_start = true;
    } else if (args[i] == "--verbose" || args[i] == "-v") {
      verbose = true;
    } else {
      rest.push_back(args[i]);
    }
  }
  longshot::init_logging(verbose);
  if (!has_display()) {
    if (!selftest.empty()) {
      std::fprintf(stderr, "longshot-studio: --selftest needs a display (run it under xvfb-run)\n");
      return 2;
    }
    return run_cli_instead(argv[0], rest);
  }

  QSurfaceFormat format;
  format.setVersion(3, 3);
  format.setProfile(QSurfaceFormat::CoreProfile);
  format.setDepthBufferSize(0);
  QSurfaceFormat::setDefaultFormat(format);
  QApplication app(argc, argv);
  QApplication::setOrganizationName("Longshot");
  QApplication::setApplicationName("Longshot Studio");

  auto log = longshot::studio::attach_log_buffer();
  longshot::studio::StudioWindow window(log, selftest.empty());
  window.show();
  if (generate_on_start && selftest.empty()) {
    // README's main job: show a real generation straight away with the dock's (default) request.
    QTimer::singleShot(0, &window, [&window] { window.submit_from_dock(); });
  }
  if (!selftest.empty()) {
    auto* test = new longshot::studio::SelfTest(window, QString::fromStdString(selftest));
    test->start();
  }
  return app.exec();
}
