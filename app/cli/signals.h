// SIGINT, SIGTERM and SIGHUP as a cancel request for the CLI's long jobs: while an InterruptGuard
// lives, the first such signal only sets a flag (the job cancels and cleans up, the command exits
// 128 + signal); a second one of any of them ends the process at once, as the default would.
// SIGXFSZ (a file-size limit) is ignored meanwhile, so a write fails with EFBIG and the writer's
// error path removes its temporary file. CLI room: knows nothing of the pipeline.
#pragma once

namespace longshot::cli {

class InterruptGuard {
 public:
  InterruptGuard();   // installs the handlers (sigaction), remembering the old ones
  ~InterruptGuard();  // restores them
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;

  // The first signal received while a guard lived (0: none).
  static int signal_received();
};

// "SIGINT", "SIGTERM", "SIGHUP" (or "signal N").
const char* signal_name(int sig);

}  // namespace longshot::cli
