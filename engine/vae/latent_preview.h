// Live previews of Wan2.1 latents while sampling: a fixed linear map of the 16 latent channels to
// RGB (no network, microseconds), for the studio's preview panel and the CLI's --preview-every.
// VAE room: latents in, RGB out; it knows no sampler or UI.
#pragma once
#include <torch/types.h>

namespace longshot::vae {

// Normalised Wan2.1 latents [16, T, h, w] (the DiT's space; any device/dtype) → RGB [3, T, h, w]
// float32 in [−1, 1] on the same device, one preview pixel per latent pixel. Throws ShapeError
// for any other channel count.
torch::Tensor wan21_latent_rgb(const torch::Tensor& latents);

// The 16 × 3 factors (row c: channel c's R, G, B weights) and the 3 biases, as float32 tensors.
torch::Tensor wan21_latent_rgb_factors();
torch::Tensor wan21_latent_rgb_bias();

}  // namespace longshot::vae
