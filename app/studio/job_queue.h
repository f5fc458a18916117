// The Jobs dock's list: this and earlier sessions' jobs (status, mode, size, seed, time), with a
// tooltip holding the recipe, double-click to load a recipe and a context menu to re-run, compare
// or remove. It shows a ui::JobList and asks for changes by signals; the window carries them out.
#pragma once
#include <QListWidget>

#include "ui/jobs.h"

namespace longshot::studio {

class JobQueueView : public QListWidget {
  Q_OBJECT

 public:
  explicit JobQueueView(const ui::JobList& jobs, QWidget* parent = nullptr);
  // Rebuilds the rows from the list (after any change to it).
  void refresh();

 Q_SIGNALS:
  void load_requested(const longshot::pipeline::GenerationRequest& request);
  void rerun_requested(const longshot::pipeline::GenerationRequest& request);
  void compare_requested(uint64_t job_a, uint64_t job_b);
  void remove_requested(size_t index);
  // "Compare with the newest finished job" found none.
  void nothing_to_compare();

 private:
  void context_menu(const QPoint& at);
  const ui::JobList& jobs_;
};

}  // namespace longshot::studio
