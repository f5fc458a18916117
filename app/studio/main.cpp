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

#include "app/studio/generation_dock.h"
#include "app/studio/imgui_widget.h"
#include "app/studio/log_sink.h"
#include "app/studio/selftest.h"
#include "app/studio/signal_watcher.h"
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
  bool generate_on_start = false, compare_on_start = false, sweep_on_start = false;
  std::string screenshot, export_path;
  std::vector<std::string> presets;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--selftest") {
      if (i + 1 >= args.size()) {
        std::fprintf(stderr, "longshot-studio: --selftest needs the screenshot path (e.g. --selftest out.png)\n");
        return 2;
      }
      selftest = args[++i];
    } else if (args[i] == "--help" || args[i] == "-h") {
      std::printf(
          "usage: longshot-studio [--preset NAME|FILE.json] [--generate-on-start | --compare-on-start | --sweep-on-start]\n"
          "                       [--screenshot OUT.png] [--export OUT.mp4|OUT.png] [--selftest OUT.png] [--verbose]\n"
          "  Opens Longshot Studio. Without a display, runs `longshot generate` with the other arguments.\n"
          "  --selftest OUT.png  generate with the tiny model, switch the mode mid-run, compare two modes,\n"
          "                      save a screenshot and check every panel drew; exit 0 on success.\n"
          "  --preset NAME|FILE  a paper's method preset by name (as `longshot generate --preset NAME`; see\n"
          "                      `longshot --help`), or a request preset JSON, into the dock; several apply in\n"
          "                      order (a request JSON, then a method preset on top of it).\n"
          "  --generate-on-start start generating the dock's request (default model and prompt) at once.\n"
          "  --compare-on-start  run the Compare panel's A vs B (dense vs the dock's mode) at once.\n"
          "  --sweep-on-start    sweep keep_ratio 0.1 .. 0.5 (5 points) of the dock's mode against dense.\n"
          "  --screenshot OUT.png  once those jobs end, save a screenshot of the window and quit.\n"
          "  --export OUT        once those jobs end, export the clip (MP4, or PNG frames OUT_NNNN.png) and quit.\n"
          "  SIGINT / SIGTERM / SIGHUP cancel the running job, keep the history, leave no partial export and\n"
          "  exit 128 + signal (130, 143, 129); a second signal ends the process at once.\n");
      return 0;
    } else if (args[i] == "--generate-on-start") {
      generate_on_start = true;
    } else if (args[i] == "--compare-on-start") {
      compare_on_start = true;
    } else if (args[i] == "--sweep-on-start") {
      sweep_on_start = true;
    } else if (args[i] == "--preset" || args[i] == "--screenshot" || args[i] == "--export") {
      if (i + 1 >= args.size()) {
        std::fprintf(stderr, "longshot-studio: %s needs a value\n", args[i].c_str());
        return 2;
      }
      if (args[i] == "--preset") presets.push_back(args[i + 1]);
      else (args[i] == "--screenshot" ? screenshot : export_path) = args[i + 1];
      ++i;
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
  // A scripted run (a screenshot for the docs) leaves the user's settings and history alone.
  const bool scripted = !selftest.empty() || !screenshot.empty() || !export_path.empty();
  // Signals end the studio as Quit does (jobs cancelled, history kept, no partial export); the
  // watcher outlives the window, so a signal while the worker is joined is still handled.
  longshot::studio::SignalWatcher signal_watcher;
  longshot::studio::StudioWindow window(log, !scripted);
  QObject::connect(&signal_watcher, &longshot::studio::SignalWatcher::received, &window,
                   [&window](int sig) { window.quit_on_signal(sig); });
  for (const auto& p : presets) window.load_preset(QString::fromStdString(p));
  window.show();
  if ((generate_on_start || compare_on_start || sweep_on_start) && selftest.empty()) {
    // README's main job: a real generation straight away with the dock's request. Compare and
    // sweep hand their jobs to the views, so they wait until GL is up.
    auto* start = new QTimer(&window);
    QObject::connect(start, &QTimer::timeout, &window, [&window, start, generate_on_start, compare_on_start] {
      if (!window.gl_widget()->views()) return;
      start->stop();
      const auto mode = window.dock()->request().attention.mode;
      if (generate_on_start) {
        window.submit_from_dock();
      } else if (compare_on_start) {
        window.settings().view.compare_mode_a = "dense";
        window.settings().view.compare_mode_b = mode;
        window.run_compare();
      } else {
        window.run_sweep(mode, "keep_ratio", {0.1, 0.2, 0.3, 0.4, 0.5});
      }
    });
    start->start(50);
  }
  if (!screenshot.empty() || !export_path.empty())
    new longshot::studio::ScreenshotWhenDone(window, QString::fromStdString(screenshot), export_path, 3600);
  if (!selftest.empty()) {
    auto* test = new longshot::studio::SelfTest(window, QString::fromStdString(selftest));
    test->start();
  }
  return app.exec();
}
