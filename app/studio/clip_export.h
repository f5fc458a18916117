// The studio's exports without their dialogs: a run's frames as an MP4 (with its recipe in the
// tags) or a PNG set (name_0000.png ...), and its published masks as a mask trace. Everything is
// staged beside its destination and renamed into place only when complete (io::StagedOutputs), so
// an error, a full disk or a signal mid-export leaves no partial file under a final name. Knows
// the engine's writers, not Qt's widgets.
#pragma once
#include <string>

#include "ui/studio_state.h"

namespace longshot::studio {

// Why an export stopped without writing anything: a signal arrived (the shell quits next).
struct ExportInterrupted {
  int signal = 0;
};

// Writes the run's frames (final clip, or the preview so far) to `path`: PNG set when it ends in
// .png, else MP4. Returns a line for the log. Throws longshot::Error (the message names the file)
// and ExportInterrupted when SignalWatcher::pending() is set before the files are committed.
std::string export_frames(const ui::RunRecord& run, const Video& video, const std::string& path);
// Writes every mask the run published with the last mask's ordering and block size; returns a
// line for the log. Throws longshot::Error naming the file.
std::string export_masks(const ui::RunRecord& run, const std::string& path);

}  // namespace longshot::studio
