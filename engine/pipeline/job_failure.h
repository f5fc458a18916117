// Why a job failed, in words the CLI and the studio show as they are: running out of memory at any
// stage of a job (CUDA's out-of-memory error, the CPU allocator's, std::bad_alloc) becomes one
// message naming the stage, the job's size and a way out. Pipeline room: knows no model and no window.
#pragma once
#include <exception>
#include <optional>
#include <string>

#include "engine/pipeline/job.h"

namespace longshot::pipeline {

// The parts of a job, in the order run_job runs them.
enum class JobStage { Starting, EncodingPrompts, LoadingModel, PreparingNoise, Denoising, Decoding };

// Where a job stood, kept up to date by run_job for its failure message.
struct JobProgress {
  JobStage stage = JobStage::Starting;
  int steps_done = 0;  // denoising: the failing step is steps_done + 1
  bool cuda = false;   // the job's device
};

// "out of GPU memory during denoising step 3 of 50 at 832x480, 81 frames: <the allocator's first
// line>; try ..." (or "out of memory ..." for host memory) when `e` is an allocation failure;
// nullopt for any other exception.
std::optional<std::string> out_of_memory_message(const std::exception& e, const GenerationRequest& request,
                                                 const JobProgress& progress);

// The JobFailed message for an exception that escaped a job: out_of_memory_message's when it has
// one, else e.what().
std::string job_failure_message(const std::exception& e, const GenerationRequest& request, const JobProgress& progress);

}  // namespace longshot::pipeline
