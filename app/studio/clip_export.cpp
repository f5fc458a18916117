#include "app/studio/clip_export.h"

#include <QImage>
#include <QString>
#include <cstdlib>
#include <unistd.h>

#include "app/studio/signal_watcher.h"
#include "engine/attention/mask_trace.h"
#include "engine/common/error.h"
#include "engine/io/staged_outputs.h"
#include "engine/pipeline/recipe.h"
#ifdef LONGSHOT_WITH_FFMPEG
#include "engine/io/mp4.h"
#endif

namespace longshot::studio {

namespace {
bool ends_with_png(const std::string& path) {
  return QString::fromStdString(path).endsWith(".png", Qt::CaseInsensitive);
}

// The staged files go into place only if no signal came meanwhile; `staged` removes them otherwise.
// Fault injection for the tests (as the CLI's): LONGSHOT_FAULT_EXPORT_PAUSE_MS holds the export
// with every output staged, so a signal can be sent exactly there.
void commit_unless_signalled(io::StagedOutputs& staged) {
  if (const char* pause = std::getenv("LONGSHOT_FAULT_EXPORT_PAUSE_MS"); pause && *pause) {
    spdlog::info("studio: export paused (LONGSHOT_FAULT_EXPORT_PAUSE_MS)");
    for (long ms = std::atol(pause); ms > 0 && !SignalWatcher::pending(); ms -= 10) ::usleep(10000);
  }
  if (const int sig = SignalWatcher::pending()) throw ExportInterrupted{sig};
  staged.commit();
}
}  // namespace

std::string export_frames(const ui::RunRecord& run, const Video& v, const std::string& path) {
  io::StagedOutputs staged;
  if (ends_with_png(path)) {
    // name.png → name_0000.png, name_0001.png, ... renamed into place together.
    const std::string base = path.substr(0, path.size() - 4);
    for (int i = 0; i < v.frames; ++i) {
      if (const int sig = SignalWatcher::pending()) throw ExportInterrupted{sig};
      char suffix[32];
      std::snprintf(suffix, sizeof suffix, "_%04d.png", i);
      const std::string out = base + suffix;
      QImage img(v.frame(i), v.width, v.height, static_cast<int>(v.width * 3), QImage::Format_RGB888);
      // The staging name has no .png suffix: the format is given.
      if (!img.save(QString::fromStdString(staged.add_file(out)), "PNG")) throw IoError("cannot write '" + out + "'");
    }
    commit_unless_signalled(staged);
    return std::to_string(v.frames) + " PNG frames of job " + std::to_string(run.job_id) + " as " + base + "_NNNN.png";
  }
#ifdef LONGSHOT_WITH_FFMPEG
  // The recipe travels in the MP4's tags (as the CLI writes them): drop the file on the studio,
  // or `longshot generate --from clip.mp4`, to make it again.
  io::Mp4Options mp4;
  mp4.metadata = pipeline::recipe_tags(run.request);
  const std::string encoder = io::write_mp4(v, staged.add_file(path), mp4);
  commit_unless_signalled(staged);
  return "job " + std::to_string(run.job_id) + " to " + path + " (" + std::to_string(v.frames) + " frames, " + encoder + ")";
#else
  throw IoError("this build has no FFmpeg: export as PNG frames (choose a .png name)");
#endif
}

std::string export_masks(const ui::RunRecord& run, const std::string& path) {
  const auto& last = *run.masks.back().mask;
  attention::MaskTrace trace;
  trace.grid = run.grid;
  trace.block_size = last.block_size;
  trace.ordering = last.ordering;
  trace.mode = run.steps.empty() ? run.request.attention.mode : run.steps.back().mode;
  trace.params = run.steps.empty() ? run.request.attention.params : run.steps.back().mode_params;
  size_t skipped = 0;
  for (const auto& sample : run.masks) {
    // One trace holds one ordering and block size: masks from before a mode switch that changed
    // them are left out (and counted).
    if (sample.mask->ordering != last.ordering || sample.mask->block_size != last.block_size) {
      ++skipped;
      continue;
    }
    trace.add(*sample.mask, sample.step, sample.layer);
  }
  attention::write_mask_trace(trace, path);  // temporary file + rename
  return std::to_string(trace.entries.size()) + " masks to " + path + " (" + std::to_string(skipped) +
         " from an earlier ordering left out)";
}

}  // namespace longshot::studio
