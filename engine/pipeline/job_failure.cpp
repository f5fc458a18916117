// Out-of-memory failures of a job, told once for every stage (the DiT, the text encoder, the noise,
// the decoder): which memory ran out, where, at what size, and what to try.
#include "engine/pipeline/job_failure.h"

#include <algorithm>
#include <cstdio>
#include <new>
#include <vector>

#include <c10/util/Exception.h>

namespace longshot::pipeline {
namespace {

enum class Memory { None, Host, Gpu };

bool has(const std::string& text, const char* part) { return text.find(part) != std::string::npos; }

// The allocator's own words: a c10 error without its backtrace, its first line only, and without
// LibTorch 1.13's "[enforce fail at alloc_cpu.cpp:75] err == 0. " before the CPU allocator's message.
std::string first_line(const std::exception& e) {
  const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
  std::string text = c10_error ? c10_error->what_without_backtrace() : e.what();
  text = text.substr(0, text.find('\n'));
  if (const auto at = text.find("DefaultCPUAllocator"); at != std::string::npos) text = text.substr(at);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\r')) text.pop_back();
  return text;
}

// CUDA's caching allocator throws c10::OutOfMemoryError; the CPU allocator a plain c10::Error
// (CAFFE_ENFORCE) naming itself; cuBLAS and our own CUDA checks name the CUDA status; operator new
// throws std::bad_alloc. Anything else is not a memory failure.
Memory which_memory(const std::exception& e, const std::string& line, bool cuda_job) {
  if (dynamic_cast<const std::bad_alloc*>(&e)) return Memory::Host;
  if (has(line, "DefaultCPUAllocator") && (has(line, "allocate memory") || has(line, "not enough memory")))
    return Memory::Host;
  if (has(line, "CUDA out of memory") || has(line, "CUDA error: out of memory") ||
      has(line, "cudaErrorMemoryAllocation") || has(line, "CUBLAS_STATUS_ALLOC_FAILED"))
    return Memory::Gpu;
  if (dynamic_cast<const c10::OutOfMemoryError*>(&e)) return cuda_job ? Memory::Gpu : Memory::Host;
  return Memory::None;
}

std::string stage_text(const JobProgress& p, int steps) {
  switch (p.stage) {
    case JobStage::Starting: return "start-up";
    case JobStage::EncodingPrompts: return "prompt encoding";
    case JobStage::LoadingModel: return "model loading";
    case JobStage::PreparingNoise: return "noise preparation";
    case JobStage::Denoising:
      return "denoising step " + std::to_string(std::min(p.steps_done + 1, steps)) + " of " + std::to_string(steps);
    case JobStage::Decoding: return "decoding";
  }
  return "the job";
}

std::string bytes_text(int64_t bytes) {
  char buf[48];
  if (bytes >= (int64_t(1) << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", double(bytes) / double(1 << 30));
  else std::snprintf(buf, sizeof buf, "%.0f MiB", double(bytes) / double(1 << 20));
  return buf;
}

// "a, b, or c".
std::string one_of(const std::vector<std::string>& ways) {
  std::string out;
  for (size_t i = 0; i < ways.size(); ++i)
    out += (i == 0 ? "" : i + 1 == ways.size() ? ", or " : ", ") + ways[i];
  return out;
}

// What to try: block swap only where the DiT's weights are in play and it is not on already; a
// larger cap only when one was set.
std::string ways_out(Memory memory, const GenerationRequest& r, JobStage stage) {
  std::vector<std::string> ways;
  if (memory == Memory::Gpu) {
    if (!r.offload && (stage == JobStage::LoadingModel || stage == JobStage::Denoising)) ways.push_back("--offload");
    ways.push_back("a smaller --size or --frames");
    if (r.max_gpu_memory > 0) ways.push_back("a larger --max-gpu-memory");
    ways.push_back("--device cpu");
  } else {
    ways.push_back("a smaller --size or --frames");
    ways.push_back("more free memory (or a higher ulimit -v)");
  }
  return one_of(ways);
}

}  // namespace

std::optional<std::string> out_of_memory_message(const std::exception& e, const GenerationRequest& r,
                                                 const JobProgress& progress) {
  const std::string said = first_line(e);
  const Memory memory = which_memory(e, said, progress.cuda);
  if (memory == Memory::None) return std::nullopt;
  std::string size = std::to_string(r.width) + "x" + std::to_string(r.height) + ", " + std::to_string(r.frames) + " frames";
  if (memory == Memory::Gpu && r.max_gpu_memory > 0) size += " (--max-gpu-memory " + bytes_text(r.max_gpu_memory) + ")";
  return std::string(memory == Memory::Gpu ? "out of GPU memory" : "out of memory") + " during " +
         stage_text(progress, r.steps) + " at " + size + ": " + (said.empty() ? "allocation failed" : said) +
         "; try " + ways_out(memory, r, progress.stage);
}

std::string job_failure_message(const std::exception& e, const GenerationRequest& r, const JobProgress& progress) {
  if (auto oom = out_of_memory_message(e, r, progress)) return *oom;
  return e.what();
}

}  // namespace longshot::pipeline
