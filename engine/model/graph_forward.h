// CUDA graphs for the DiT forward (issue 22): a WanDiT forward captured once per key (shapes,
// settings, the layers' masks) and replayed with new latents / timestep / text copied into its
// static input buffers. What cannot be captured runs eagerly, with one log line saying why.
// Model room: knows the DiT and the mask-policy interface, not the sampler, pipeline or any UI.
#pragma once
#include <memory>
#include <string>

#include <torch/types.h>

#include "engine/model/dit.h"

namespace longshot::model {

// True where this build can capture CUDA graphs (a CUDA LibTorch); false on CPU-only builds.
bool cuda_graphs_supported();

// Why a forward of `dit` on `latents` under `plan` and `probe` cannot run as a graph replay; ""
// when it can. Refused: CPU tensors or a CPU-only build; autograd; a probe (it reads tensors on
// the host), an op marker, fp8 / offloaded / fp8-stored block weights, the mask adapter; modes
// whose masks are built from each step's Q/K (needs_qk: radial-mass, dfs-adaptive, dfsattn,
// dynamicrad's dynamic selections score on the GPU and read sizes back on the host) or that
// permute tokens (a non-raster ordering).
std::string cuda_graph_refusal(const WanDiTImpl& dit, const torch::Tensor& latents, const AttentionPlan& plan,
                               const AttentionProbe& probe = {});

// A DiT forward through CUDA graphs. forward_with_stats builds this step's masks on the host (as
// the eager forward would: static modes hand out cached masks), looks for a graph captured with
// the same key and equal masks, and replays it; else it captures one (up to max_graphs, sharing
// one memory pool) after one eager warm-up forward on a side stream. The graph computes the
// text's cross-attention K/V itself (its text buffer is refilled per call), so the conditional and
// unconditional forwards share it. Replays return a copy of the output and the capture's stats
// (attention_ms and mask_ms are 0: nothing is timed inside a replay).
// The model must keep its weights where they are while graphs exist: call clear() after moving,
// reloading or retying weights, or switching the linear precision.
class GraphForward {
 public:
  explicit GraphForward(WanDiT dit, int max_graphs = 4);
  ~GraphForward();
  GraphForward(const GraphForward&) = delete;
  GraphForward& operator=(const GraphForward&) = delete;

  DiTOutput forward_with_stats(const torch::Tensor& latents, const torch::Tensor& timesteps,
                               const torch::Tensor& text_emb, const AttentionPlan& plan,
                               const AttentionProbe& probe = {});
  torch::Tensor forward(const torch::Tensor& latents, const torch::Tensor& timesteps, const torch::Tensor& text_emb,
                        const AttentionPlan& plan) {
    return forward_with_stats(latents, timesteps, text_emb, plan).velocity;
  }

  // What the last call did: replayed a graph (captured now or before), or ran eagerly and why.
  bool last_replayed() const;
  const std::string& last_eager_reason() const;
  int captures() const;  // graphs captured so far
  int replays() const;   // forwards served by a replay (the capturing call included)
  void clear();          // drop every graph and its memory

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace longshot::model
