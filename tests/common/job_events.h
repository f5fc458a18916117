// The events of one Generator job, collected until it ends: shared by the test areas that drive
// the studio's worker (pipeline, gpu).
#pragma once
#include <chrono>
#include <functional>
#include <variant>
#include <vector>

#include "engine/pipeline/generator.h"

namespace longshot::testing {

// Pops g's events until one ends the job (finished, failed or cancelled) or `timeout` passes; each
// goes to `on_event` first when given. The ending event, if any, is the last one returned.
inline std::vector<pipeline::Event> events_until_job_end(
    pipeline::Generator& g, std::chrono::seconds timeout,
    const std::function<void(const pipeline::Event&)>& on_event = {}) {
  std::vector<pipeline::Event> out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto e = g.events().wait_pop(100);
    if (!e) continue;
    if (on_event) on_event(*e);
    out.push_back(*e);
    if (std::holds_alternative<pipeline::JobFinished>(*e) || std::holds_alternative<pipeline::JobFailed>(*e) ||
        std::holds_alternative<pipeline::JobCancelled>(*e))
      break;
  }
  return out;
}

}  // namespace longshot::testing
