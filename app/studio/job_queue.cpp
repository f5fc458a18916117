#include "app/studio/job_queue.h"

#include <QMenu>

namespace longshot::studio {

namespace {
QString qs(const std::string& s) { return QString::fromStdString(s); }
}  // namespace

JobQueueView::JobQueueView(const ui::JobList& jobs, QWidget* parent) : QListWidget(parent), jobs_(jobs) {
  setContextMenuPolicy(Qt::CustomContextMenu);
  setToolTip("Jobs of this and earlier sessions. Double-click: load the recipe into the dock; "
             "right-click: re-run, compare, remove");
  connect(this, &QListWidget::customContextMenuRequested, this, &JobQueueView::context_menu);
  connect(this, &QListWidget::itemDoubleClicked, this, [this](QListWidgetItem* item) {
    const int i = item->data(Qt::UserRole).toInt();
    if (i >= 0 && i < static_cast<int>(jobs_.entries().size())) Q_EMIT load_requested(jobs_.entries()[i].request);
  });
}

void JobQueueView::refresh() {
  clear();
  const auto& entries = jobs_.entries();
  for (size_t i = 0; i < entries.size(); ++i) {
    const auto& e = entries[i];
    const auto& q = e.request;
    QString text = e.id ? QString("#%1 ").arg(e.id) : QString("(earlier) ");
    text += QString("%1  %2  %3f %4x%5  seed %6")
                .arg(ui::to_string(e.status), qs(q.attention.mode))
                .arg(q.frames)
                .arg(q.width)
                .arg(q.height)
                .arg(q.seed);
    if (e.status == ui::JobStatus::Running) text += QString("  step %1/%2").arg(e.steps_done).arg(e.num_steps);
    if (e.status == ui::JobStatus::Finished) text += QString("  %1 s").arg(e.total_ms / 1000.0, 0, 'f', 1);
    auto* item = new QListWidgetItem(text);
    QString tip =
        QString("%1\nmodel %2, %3 steps, guidance %4").arg(qs(q.prompt), qs(q.model)).arg(q.steps).arg(q.guidance);
    for (const auto& [k, v] : q.attention.params) tip += QString("\n%1 = %2").arg(qs(k)).arg(v);
    if (!e.error.empty()) tip += "\nfailed: " + qs(e.error);
    if (!e.output.empty()) tip += "\nexported to " + qs(e.output);
    item->setToolTip(tip);
    item->setData(Qt::UserRole, static_cast<int>(i));
    if (e.status == ui::JobStatus::Failed) item->setForeground(QColor(230, 100, 100));
    else if (e.status == ui::JobStatus::Cancelled || !e.id) item->setForeground(QColor(140, 140, 140));
    addItem(item);
  }
  scrollToBottom();
}

void JobQueueView::context_menu(const QPoint& at) {
  QListWidgetItem* item = itemAt(at);
  if (!item) return;
  const size_t i = static_cast<size_t>(item->data(Qt::UserRole).toInt());
  if (i >= jobs_.entries().size()) return;
  const ui::JobEntry entry = jobs_.entries()[i];
  QMenu menu(this);
  menu.addAction("Load the recipe into the dock", this, [this, entry] { Q_EMIT load_requested(entry.request); });
  menu.addAction("Re-run (same seed)", this, [this, entry] { Q_EMIT rerun_requested(entry.request); });
  if (entry.id && entry.status == ui::JobStatus::Finished) {
    menu.addAction("Compare with the newest finished job", this, [this, entry] {
      for (auto it = jobs_.entries().rbegin(); it != jobs_.entries().rend(); ++it)
        if (it->id && it->id != entry.id && it->status == ui::JobStatus::Finished) {
          Q_EMIT compare_requested(entry.id, it->id);
          return;
        }
      Q_EMIT nothing_to_compare();
    });
  }
  if (!entry.active()) menu.addAction("Remove from the list", this, [this, i] { Q_EMIT remove_requested(i); });
  menu.exec(viewport()->mapToGlobal(at));
}

}  // namespace longshot::studio
