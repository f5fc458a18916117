// The Wan2.1 VAE on tiny random configs (CPU, fp32): frame counts, streamed = whole-clip decode,
// causality, both weight layouts (names mapped here by our own table, after diffusers'
// convert_wan_vae_to_diffusers), .pth, strict weight checks, bad input, tiling, latent preview.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include "engine/common/error.h"
#include "engine/io/safetensors.h"
#include "engine/vae/latent_preview.h"
#include "engine/vae/wan_vae.h"
#include "tests/common/temp_dir.h"

namespace fs = std::filesystem;
using namespace longshot;
using namespace longshot::vae;

namespace {

WanVAEConfig tiny_config() {
  WanVAEConfig c;
  c.base_dim = 8;  // channels 8, 16, 32, 32; z_dim stays 16 with Wan's statistics
  return c;
}

double rel_l2(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a.to(torch::kDouble) - b.to(torch::kDouble)).norm() / b.to(torch::kDouble).norm().clamp_min(1e-30)).item<double>();
}

struct TempDir : longshot::testing::TempDir {
  TempDir() : longshot::testing::TempDir("longshot_vae_test") {}
};

// diffusers name → original Wan2.1 name, written from diffusers' converter table (decoder
// upsamples 0-2 / 4-6 / 8-10 / 12-14 are the up blocks' resnets, 3 / 7 / 11 their upsamplers).
std::string to_original(std::string n) {
  auto replace = [&](const std::string& from, const std::string& to) {
    const auto p = n.find(from);
    if (p != std::string::npos) n.replace(p, from.size(), to);
  };
  if (n.rfind("quant_conv.", 0) == 0) return "conv1." + n.substr(11);
  // Residual blocks first: in diffusers names ".conv1." / ".conv2." only occur inside them.
  replace(".norm1.gamma", ".residual.0.gamma");
  replace(".conv1.", ".residual.2.");
  replace(".norm2.gamma", ".residual.3.gamma");
  replace(".conv2.", ".residual.6.");
  replace(".conv_shortcut.", ".shortcut.");

  if (n.rfind("post_quant_conv.", 0) == 0) return "conv2." + n.substr(16);
  replace("encoder.conv_in.", "encoder.conv1.");
  replace("decoder.conv_in.", "decoder.conv1.");
  replace("mid_block.resnets.0.", "middle.0.");
  replace("mid_block.attentions.0.", "middle.1.");
  replace("mid_block.resnets.1.", "middle.2.");
  replace("norm_out.gamma", "head.0.gamma");
  replace("conv_out.", "head.2.");
  replace("encoder.down_blocks.", "encoder.downsamples.");
  if (n.rfind("decoder.up_blocks.", 0) == 0) {
    const int block = std::stoi(n.substr(18, 1));
    const std::string rest = n.substr(20);  // "resnets.R...." or "upsamplers.0...."
    if (rest.rfind("resnets.", 0) == 0) {
      const int r = std::stoi(rest.substr(8, 1));
      n = "decoder.upsamples." + std::to_string(4 * block + r) + rest.substr(9);
    } else {
      n = "decoder.upsamples." + std::to_string(4 * block + 3) + rest.substr(12);
    }
  }
  return n;
}

std::map<std::string, torch::Tensor> renamed(const std::map<std::string, torch::Tensor>& sd, const std::string& prefix,
                                             bool original) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& [k, v] : sd) out[prefix + (original ? to_original(k) : k)] = v;
  return out;
}

torch::Tensor latents(int64_t T, int64_t h, int64_t w, uint64_t seed = 1) {
  auto gen = at::detail::createCPUGenerator(seed);
  return torch::randn({16, T, h, w}, gen);
}

}  // namespace

TEST(WanVAE, ConfigStridesAndValidation) {
  WanVAEConfig c;
  EXPECT_EQ(c.temporal_stride(), 4);
  EXPECT_EQ(c.spatial_stride(), 8);
  EXPECT_EQ(c.frames_for(21), 81);
  EXPECT_EQ(c.frames_for(1), 1);
  c.temporal_downsample = {true};
  EXPECT_THROW(c.validate(), ParameterError);
  // Wan2.1's published size: 127 M parameters (encoder + decoder), 73.3 M of them the decoder's.
  const WanVAE full(WanVAEConfig{}, 0);
  EXPECT_NEAR(double(full.parameter_count()) / 1e6, 126.9, 0.5);
}

TEST(WanVAE, DecodeShapesAndStreamOrder) {
  const WanVAE vae(tiny_config(), 3);
  std::vector<std::pair<int64_t, int64_t>> chunks;  // (first frame, count)
  vae.decode_streamed(latents(3, 4, 6), [&](const torch::Tensor& f, int64_t first) {
    EXPECT_EQ(f.dim(), 4);
    EXPECT_EQ(f.size(0), 3);
    EXPECT_EQ(f.size(2), 32);
    EXPECT_EQ(f.size(3), 48);
    EXPECT_LE(f.abs().max().item<float>(), 1.0f);
    chunks.emplace_back(first, f.size(1));
  });
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[0], std::make_pair(int64_t(0), int64_t(1)));
  EXPECT_EQ(chunks[1], std::make_pair(int64_t(1), int64_t(4)));
  EXPECT_EQ(chunks[2], std::make_pair(int64_t(5), int64_t(4)));
  const auto all = vae.decode(latents(3, 4, 6));
  EXPECT_EQ(all.sizes(), (std::vector<int64_t>{3, 9, 32, 48}));
  EXPECT_GT(all.std().item<float>(), 1e-3f);  // not a constant image
}

TEST(WanVAE, StreamedEqualsWholeClipAndOtherChunks) {
  const WanVAE vae(tiny_config(), 4);
  const auto z = latents(4, 4, 4, 7);
  DecodeOptions one, whole, two;
  whole.chunk = 0;
  two.chunk = 2;
  const auto a = vae.decode(z, one), b = vae.decode(z, whole), c = vae.decode(z, two);
  EXPECT_EQ(a.size(1), 13);
  EXPECT_LT(rel_l2(a, b), 1e-5);
  EXPECT_LT(rel_l2(c, b), 1e-5);
  // Full-resolution levels one or three frames at a time: the same numbers.
  DecodeOptions pass1, pass3;
  pass1.pass_frames = 1;
  pass3.pass_frames = 3;
  EXPECT_LT(rel_l2(vae.decode(z, pass1), a), 1e-5);
  EXPECT_LT(rel_l2(vae.decode(z, pass3), a), 1e-5);
}

TEST(WanVAE, DecodeIsCausal) {
  // Frames of the first k latent frames never depend on later latent frames.
  const WanVAE vae(tiny_config(), 5);
  const auto z = latents(3, 4, 4, 9);
  const auto full = vae.decode(z);
  const auto prefix = vae.decode(z.narrow(1, 0, 2).contiguous());
  ASSERT_EQ(prefix.size(1), 5);
  EXPECT_LT(rel_l2(prefix, full.narrow(1, 0, 5)), 1e-6);
  // ...and later frames do depend on earlier latents (the caches carry them).
  auto z2 = z.clone();
  z2.narrow(1, 0, 1).add_(1.0);
  const auto moved = vae.decode(z2);
  EXPECT_GT(rel_l2(moved.narrow(1, 5, 4), full.narrow(1, 5, 4)), 1e-4);
}

TEST(WanVAE, EncodeShapesAndCausality) {
  const WanVAE vae(tiny_config(), 6);
  auto gen = at::detail::createCPUGenerator(11);
  const auto video = torch::rand({3, 9, 32, 24}, gen) * 2 - 1;
  const auto mu = vae.encode(video, LatentSpace::Raw);
  EXPECT_EQ(mu.sizes(), (std::vector<int64_t>{16, 3, 4, 3}));
  const auto head = vae.encode(video.narrow(1, 0, 5).contiguous(), LatentSpace::Raw);
  EXPECT_LT(rel_l2(head, mu.narrow(1, 0, 2)), 1e-6);
  // Normalised = (raw − mean) / std.
  const auto norm = vae.encode(video, LatentSpace::Normalized);
  EXPECT_LT(rel_l2(vae.denormalize(norm), mu), 1e-6);
  EXPECT_GT(rel_l2(norm, mu), 1e-2);
}

TEST(WanVAE, NormalizedAndRawDecodeAgree) {
  const WanVAE vae(tiny_config(), 8);
  const auto raw = latents(2, 4, 4, 3);
  DecodeOptions r;
  r.space = LatentSpace::Raw;
  EXPECT_LT(rel_l2(vae.decode(vae.normalize(raw)), vae.decode(raw, r)), 1e-5);
  EXPECT_LT(rel_l2(vae.normalize(vae.denormalize(raw)), raw), 1e-6);
}

TEST(WanVAE, BothWeightLayoutsLoadIdentically) {
  TempDir dir;
  const WanVAE ref(tiny_config(), 12);
  const auto sd = ref.state_dict();
  // The library's own original-name table must agree with ours.
  for (const auto& [k, orig] : ref.original_names()) EXPECT_EQ(orig, to_original(k)) << k;
  io::write_safetensors(dir.file("diffusers.safetensors"), renamed(sd, "", false));
  io::write_safetensors(dir.file("original.safetensors"), renamed(sd, "", true));
  io::write_safetensors(dir.file("prefixed.safetensors"), renamed(sd, "vae.", true));
  EXPECT_EQ(WanVAE::detect_layout(dir.file("diffusers.safetensors")), WeightLayout::Diffusers);
  EXPECT_EQ(WanVAE::detect_layout(dir.file("original.safetensors")), WeightLayout::Original);

  const auto z = latents(2, 4, 4, 5);
  auto gen = at::detail::createCPUGenerator(2);
  const auto video = torch::rand({3, 5, 16, 16}, gen) * 2 - 1;
  const auto want_dec = ref.decode(z), want_enc = ref.encode(video);
  for (const char* name : {"diffusers.safetensors", "original.safetensors", "prefixed.safetensors"}) {
    const auto vae = WanVAE::load(dir.file(name));
    EXPECT_EQ(vae.config().base_dim, 8) << name;
    EXPECT_EQ(rel_l2(vae.decode(z), want_dec), 0.0) << name;
    EXPECT_EQ(rel_l2(vae.encode(video), want_enc), 0.0) << name;
  }
  // Decode-only loading skips the encoder.
  const auto dec_only = WanVAE::load(dir.file("original.safetensors"), {}, /*with_encoder=*/false);
  EXPECT_FALSE(dec_only.has_encoder());
  EXPECT_EQ(rel_l2(dec_only.decode(z), want_dec), 0.0);
  EXPECT_THROW(dec_only.encode(video), Error);
}

TEST(WanVAE, PthStateDictLoads) {
  TempDir dir;
  const WanVAE ref(tiny_config(), 13);
  c10::Dict<std::string, torch::Tensor> dict;
  for (const auto& [k, v] : ref.state_dict()) dict.insert(to_original(k), v);
  const auto bytes = torch::pickle_save(dict);
  {
    std::ofstream out(dir.file("Wan2.1_VAE.pth"), std::ios::binary);
    out.write(bytes.data(), std::streamsize(bytes.size()));
  }
  const auto vae = WanVAE::load(dir.file("Wan2.1_VAE.pth"));
  const auto z = latents(2, 3, 3, 4);
  EXPECT_EQ(rel_l2(vae.decode(z), ref.decode(z)), 0.0);

  // A .pth LibTorch cannot read: the error names the file and the conversion.
  {
    std::ofstream out(dir.file("broken.pth"), std::ios::binary);
    out << "PK\x03\x04 not really a zip";
  }
  try {
    WanVAE::load(dir.file("broken.pth"));
    FAIL() << "a broken .pth loaded";
  } catch (const IoError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("broken.pth"), std::string::npos) << what;
    EXPECT_NE(what.find("safetensors"), std::string::npos) << what;
  }
}

TEST(WanVAE, StrictWeightChecks) {
  TempDir dir;
  const WanVAE ref(tiny_config(), 14);
  auto sd = renamed(ref.state_dict(), "", true);
  auto expect_error = [&](const std::map<std::string, torch::Tensor>& tensors, const std::string& needle, bool shape) {
    const auto path = dir.file("w.safetensors");
    io::write_safetensors(path, tensors);
    try {
      WanVAE::load(path);
      ADD_FAILURE() << "loaded without error; expected one naming " << needle;
    } catch (const ShapeError& e) {
      EXPECT_TRUE(shape) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    } catch (const IoError& e) {
      EXPECT_FALSE(shape) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("w.safetensors"), std::string::npos) << e.what();
    }
  };
  auto missing = sd;
  missing.erase("decoder.upsamples.7.time_conv.weight");
  expect_error(missing, "decoder.upsamples.7.time_conv.weight", false);
  auto wrong = sd;
  wrong["decoder.middle.1.to_qkv.weight"] = torch::zeros({96, 16, 1, 1});
  expect_error(wrong, "decoder.middle.1.to_qkv.weight", true);
  auto extra = sd;
  extra["decoder.upsamples.99.weight"] = torch::zeros({2});
  expect_error(extra, "decoder.upsamples.99.weight", false);
  expect_error({{"model.weight", torch::zeros({2})}}, "not a Wan VAE", false);
  EXPECT_THROW(WanVAE::load(dir.file("does_not_exist.safetensors")), IoError);
}

TEST(WanVAE, BadInputIsRefused) {
  const WanVAE vae(tiny_config(), 15);
  EXPECT_THROW(vae.decode(torch::randn({12, 2, 4, 4})), ShapeError);
  EXPECT_THROW(vae.decode(torch::randn({16, 4, 4})), ShapeError);
  auto nan = torch::randn({16, 2, 4, 4});
  nan[0][0][0][0] = std::nanf("");
  EXPECT_THROW(vae.decode(nan), ShapeError);
  DecodeOptions bad;
  bad.chunk = -1;
  EXPECT_THROW(vae.decode(torch::randn({16, 2, 4, 4}), bad), ParameterError);
  bad.chunk = 1;
  bad.pass_frames = -2;
  EXPECT_THROW(vae.decode(torch::randn({16, 2, 4, 4}), bad), ParameterError);
  EXPECT_THROW(vae.encode(torch::zeros({3, 8, 16, 16})), ShapeError);   // not 1 + 4k frames
  EXPECT_THROW(vae.encode(torch::zeros({3, 5, 20, 16})), ShapeError);   // not a multiple of 8
  EXPECT_THROW(vae.encode(torch::zeros({4, 5, 16, 16})), ShapeError);   // not RGB
  try {
    vae.decode(torch::randn({12, 2, 4, 4}));
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("12 channels"), std::string::npos) << e.what();
  }
}

TEST(WanVAE, SpatialTiling) {
  const WanVAE vae(tiny_config(), 16);
  const auto z = latents(2, 8, 10, 21);
  const auto plain = vae.decode(z);
  DecodeOptions big;
  big.tile = true;
  big.tile_latent = 16;  // one tile covers the clip: identical to the plain decode
  EXPECT_EQ(rel_l2(vae.decode(z, big), plain), 0.0);
  DecodeOptions small;
  small.tile = true;
  small.tile_latent = 6;
  small.tile_overlap = 2;
  const auto tiled = vae.decode(z, small);
  ASSERT_EQ(tiled.sizes(), plain.sizes());
  EXPECT_TRUE(torch::isfinite(tiled).all().item<bool>());
  // Each tile sees less context, so the picture differs a little; a misplaced or unweighted tile
  // would differ by about as much as two unrelated images (relative L2 ~ 1.4).
  const double err = rel_l2(tiled, plain);
  std::printf("tiled (6 latent px, overlap 2) vs plain decode: rel L2 %.3f\n", err);
  EXPECT_GT(err, 0.0);
  EXPECT_LT(err, 0.5) << err;
  small.tile_overlap = 6;
  EXPECT_THROW(vae.decode(z, small), ParameterError);
}

TEST(LatentPreview, PublishedProjection) {
  auto z = torch::zeros({16, 2, 3, 4});
  z[6].fill_(1.0f);  // channel 6: (−0.3477, −0.4059, −0.2925) plus the bias
  const auto rgb = wan21_latent_rgb(z);
  EXPECT_EQ(rgb.sizes(), (std::vector<int64_t>{3, 2, 3, 4}));
  EXPECT_NEAR(rgb[0][1][2][3].item<float>(), -0.3477f - 0.1835f, 1e-6);
  EXPECT_NEAR(rgb[1][0][0][0].item<float>(), -0.4059f - 0.0868f, 1e-6);
  EXPECT_NEAR(rgb[2][1][1][1].item<float>(), -0.2925f - 0.3360f, 1e-6);
  EXPECT_LE(wan21_latent_rgb(torch::randn({16, 1, 2, 2}) * 100).abs().max().item<float>(), 1.0f);
  EXPECT_THROW(wan21_latent_rgb(torch::zeros({4, 1, 2, 2})), ShapeError);
  EXPECT_EQ(wan21_latent_rgb_factors().sizes(), (std::vector<int64_t>{16, 3}));
}

// Parity with diffusers' AutoencoderKLWan (tests/fixtures/wan_vae_tiny, its README): random weights
// of the Wan2.1 structure at base_dim 8, diffusers names; decode of raw latents and the posterior
// mean of an encode, CPU fp32, relative L2 ≤ 1e-4 on both the streamed and the whole-clip path.
TEST(WanVAE, MatchesDiffusersFixture) {
  const std::string dir = std::string(LONGSHOT_SOURCE_DIR) + "/tests/fixtures/wan_vae_tiny";
  const auto vae = WanVAE::load(dir + "/diffusion_pytorch_model.safetensors");
  EXPECT_EQ(vae.config().base_dim, 8);
  io::SafetensorsFile io(dir + "/io.safetensors");
  DecodeOptions streamed, whole;
  streamed.space = whole.space = LatentSpace::Raw;
  whole.chunk = 0;
  const auto z = io.load("latents").squeeze(0), want = io.load("decoded").squeeze(0);
  const double e1 = rel_l2(vae.decode(z, streamed), want), e2 = rel_l2(vae.decode(z, whole), want);
  EXPECT_LT(e1, 1e-4) << "streamed decode vs diffusers";
  EXPECT_LT(e2, 1e-4) << "whole-clip decode vs diffusers";
  EXPECT_LT(rel_l2(vae.decode(io.load("latents_single").squeeze(0), streamed), io.load("decoded_single").squeeze(0)),
            1e-4);
  const auto mu = vae.encode(io.load("video").squeeze(0), LatentSpace::Raw);
  const double e3 = rel_l2(mu, io.load("encoded_mean").squeeze(0));
  EXPECT_LT(e3, 1e-4) << "encode (posterior mean) vs diffusers";
  std::printf("diffusers fixture: rel L2 decode streamed %.2e, whole clip %.2e, encode %.2e\n", e1, e2, e3);
  // The same weights under the original Wan2.1 names give the same numbers.
  TempDir tmp;
  io::write_safetensors(tmp.file("orig.safetensors"), renamed(vae.state_dict(), "", true));
  EXPECT_EQ(rel_l2(WanVAE::load(tmp.file("orig.safetensors")).decode(z, streamed), vae.decode(z, streamed)), 0.0);
}
