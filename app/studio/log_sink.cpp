#include "app/studio/log_sink.h"

#include <spdlog/spdlog.h>

namespace longshot::studio {

void LogBuffer::sink_it_(const spdlog::details::log_msg& msg) {
  spdlog::memory_buf_t formatted;
  formatter_->format(msg, formatted);
  std::string text(formatted.data(), formatted.size());
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  std::lock_guard<std::mutex> lock(lines_mutex_);
  lines_.push_back({msg.level, std::move(text)});
  while (lines_.size() > keep_) lines_.pop_front();
}

std::vector<LogBuffer::Line> LogBuffer::take() {
  std::lock_guard<std::mutex> lock(lines_mutex_);
  std::vector<Line> out(std::make_move_iterator(lines_.begin()), std::make_move_iterator(lines_.end()));
  lines_.clear();
  return out;
}

std::shared_ptr<LogBuffer> attach_log_buffer() {
  auto buffer = std::make_shared<LogBuffer>();
  buffer->set_pattern("%H:%M:%S.%e %^%-5l%$ %v");
  spdlog::default_logger()->sinks().push_back(buffer);
  return buffer;
}

}  // namespace longshot::studio
