#include "engine/vae/latent_preview.h"

#include <torch/torch.h>

#include "engine/common/error.h"

namespace longshot::vae {

namespace {

// The published latent → RGB projection for Wan2.1 latents: ComfyUI, comfy/latent_formats.py,
// class Wan21, latent_rgb_factors / latent_rgb_factors_bias (ComfyUI applies it to the model-space,
// i.e. normalised, latents in its Latent2RGB previewer; the result is read as [−1, 1]).
constexpr float kFactors[16][3] = {
    {-0.1299f, -0.1692f, 0.2932f}, {0.0671f, 0.0406f, 0.0442f},   {0.3568f, 0.2548f, 0.1747f},
    {0.0372f, 0.2344f, 0.1420f},   {0.0313f, 0.0189f, -0.0328f},  {0.0296f, -0.0956f, -0.0665f},
    {-0.3477f, -0.4059f, -0.2925f}, {0.0166f, 0.1902f, 0.1975f},  {-0.0412f, 0.0267f, -0.1364f},
    {-0.1293f, 0.0740f, 0.1636f},  {0.0680f, 0.3019f, 0.1128f},   {0.0032f, 0.0581f, 0.0639f},
    {-0.1251f, 0.0927f, 0.1699f},  {0.0060f, -0.0633f, 0.0005f},  {0.3477f, 0.2275f, 0.2950f},
    {0.1984f, 0.0913f, 0.1861f}};
constexpr float kBias[3] = {-0.1835f, -0.0868f, -0.3360f};

}  // namespace

torch::Tensor wan21_latent_rgb_factors() {
  return torch::from_blob(const_cast<float*>(&kFactors[0][0]), {16, 3}, torch::kFloat).clone();
}

torch::Tensor wan21_latent_rgb_bias() { return torch::from_blob(const_cast<float*>(kBias), {3}, torch::kFloat).clone(); }

torch::Tensor wan21_latent_rgb(const torch::Tensor& latents) {
  if (!latents.defined() || latents.dim() != 4 || latents.size(0) != 16)
    throw ShapeError("latent preview: expected Wan2.1 latents [16, T, H, W], got " +
                     (latents.defined() ? c10::str(latents.sizes()) : std::string("an undefined tensor")));
  torch::NoGradGuard no_grad;
  const auto dev = latents.device();
  const auto w = wan21_latent_rgb_factors().to(dev).t();  // [3, 16]
  const auto b = wan21_latent_rgb_bias().to(dev).view({3, 1, 1, 1});
  const auto x = latents.to(torch::kFloat);
  // One small matmul over channels: [3, 16] × [16, T·H·W].
  auto rgb = torch::matmul(w, x.reshape({16, -1})).view({3, x.size(1), x.size(2), x.size(3)});
  return rgb.add_(b).clamp_(-1, 1);
}

}  // namespace longshot::vae
