// An spdlog sink that buffers formatted lines for the studio's log panel. Any thread may log; the
// UI thread takes the lines once per frame. No Qt here, so the worker never touches a widget.
#pragma once
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <spdlog/sinks/base_sink.h>

namespace longshot::studio {

class LogBuffer : public spdlog::sinks::base_sink<std::mutex> {
 public:
  struct Line {
    spdlog::level::level_enum level;
    std::string text;
  };
  // Lines logged since the last call (at most `keep` are buffered; older ones are dropped).
  std::vector<Line> take();
  explicit LogBuffer(size_t keep = 2000) : keep_(keep) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override;
  void flush_() override {}

 private:
  std::mutex lines_mutex_;
  std::deque<Line> lines_;
  size_t keep_;
};

// Adds a LogBuffer to the default logger (keeping its other sinks) and returns it.
std::shared_ptr<LogBuffer> attach_log_buffer();

}  // namespace longshot::studio
