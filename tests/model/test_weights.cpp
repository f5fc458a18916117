// Safetensors checkpoints of the DiT: round trips in the Wan2.1 and diffusers layouts, the
// diffusers key mapping (norm2/norm3 swap), missing and mis-shaped tensors, config inference.
#include <gtest/gtest.h>
#include <unistd.h>

#include <functional>

#include <filesystem>

#include "tests/common/temp_dir.h"
#include "engine/common/error.h"
#include "engine/io/safetensors.h"
#include "engine/model/weights.h"

using namespace longshot;
using namespace longshot::model;
namespace fs = std::filesystem;

namespace {

struct TempDir : longshot::testing::TempDir {
  TempDir() : longshot::testing::TempDir("longshot_weights") {}
};

WanDiT tiny(uint64_t seed) {
  WanDiT m(find_config("tiny"));
  m->init_random(seed);
  return m;
}

void expect_same_params(const WanDiT& a, const WanDiT& b) {
  auto pb = b->named_parameters();
  for (const auto& p : a->named_parameters()) EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Weights, DiffusersKeyMapping) {
  EXPECT_EQ(to_diffusers_key("patch_embedding.weight"), "patch_embedding.weight");
  EXPECT_EQ(to_diffusers_key("text_embedding.0.weight"), "condition_embedder.text_embedder.linear_1.weight");
  EXPECT_EQ(to_diffusers_key("text_embedding.2.bias"), "condition_embedder.text_embedder.linear_2.bias");
  EXPECT_EQ(to_diffusers_key("time_embedding.2.weight"), "condition_embedder.time_embedder.linear_2.weight");
  EXPECT_EQ(to_diffusers_key("time_projection.1.bias"), "condition_embedder.time_proj.bias");
  EXPECT_EQ(to_diffusers_key("blocks.12.modulation"), "blocks.12.scale_shift_table");
  EXPECT_EQ(to_diffusers_key("head.modulation"), "scale_shift_table");
  EXPECT_EQ(to_diffusers_key("head.head.weight"), "proj_out.weight");
  EXPECT_EQ(to_diffusers_key("blocks.3.self_attn.q.weight"), "blocks.3.attn1.to_q.weight");
  EXPECT_EQ(to_diffusers_key("blocks.3.self_attn.o.bias"), "blocks.3.attn1.to_out.0.bias");
  EXPECT_EQ(to_diffusers_key("blocks.3.self_attn.norm_k.weight"), "blocks.3.attn1.norm_k.weight");
  EXPECT_EQ(to_diffusers_key("blocks.3.cross_attn.v.weight"), "blocks.3.attn2.to_v.weight");
  EXPECT_EQ(to_diffusers_key("blocks.3.norm3.weight"), "blocks.3.norm2.weight");
  EXPECT_EQ(to_diffusers_key("blocks.3.ffn.0.weight"), "blocks.3.ffn.net.0.proj.weight");
  EXPECT_EQ(to_diffusers_key("blocks.3.ffn.2.bias"), "blocks.3.ffn.net.2.bias");
}

TEST(Weights, RoundTripWanLayout) {
  TempDir dir;
  auto a = tiny(1), b = tiny(2);
  save_weights(*a, dir.file("wan.safetensors"), KeyLayout::Wan);
  io::SafetensorsFile f(dir.file("wan.safetensors"));
  EXPECT_TRUE(f.contains("blocks.0.norm3.weight"));
  EXPECT_EQ(detect_layout(f.names()), KeyLayout::Wan);
  load_weights(*b, dir.file("wan.safetensors"));
  expect_same_params(a, b);
}

TEST(Weights, RoundTripDiffusersLayout) {
  TempDir dir;
  auto a = tiny(1), b = tiny(2);
  save_weights(*a, dir.file("diffusers.safetensors"), KeyLayout::Diffusers);
  io::SafetensorsFile f(dir.file("diffusers.safetensors"));
  EXPECT_EQ(detect_layout(f.names()), KeyLayout::Diffusers);
  EXPECT_TRUE(f.contains("condition_embedder.time_proj.weight"));
  EXPECT_TRUE(f.contains("blocks.0.attn1.to_out.0.weight"));
  EXPECT_TRUE(f.contains("blocks.0.norm2.weight"));  // Wan's norm3
  EXPECT_FALSE(f.contains("blocks.0.norm3.weight"));
  EXPECT_TRUE(torch::equal(f.load("blocks.1.norm2.bias"), a->named_parameters()["blocks.1.norm3.bias"]));
  load_weights(*b, dir.file("diffusers.safetensors"));
  expect_same_params(a, b);
}

TEST(Weights, HalfPrecisionCheckpointsConvert) {
  TempDir dir;
  auto a = tiny(1), b = tiny(2);
  std::map<std::string, torch::Tensor> t;
  for (const auto& p : a->named_parameters()) t[p.key()] = p.value().to(torch::kBFloat16);
  io::write_safetensors(dir.file("bf16.safetensors"), t);
  load_weights(*b, dir.file("bf16.safetensors"));
  auto pb = b->named_parameters();
  for (const auto& p : a->named_parameters()) {
    EXPECT_EQ(pb[p.key()].scalar_type(), torch::kFloat);
    EXPECT_TRUE(torch::equal(pb[p.key()], p.value().to(torch::kBFloat16).to(torch::kFloat))) << p.key();
  }
}

TEST(Weights, MissingTensorIsNamed) {
  TempDir dir;
  auto a = tiny(1);
  std::map<std::string, torch::Tensor> t;
  for (const auto& p : a->named_parameters())
    if (p.key() != "blocks.1.ffn.2.weight") t[p.key()] = p.value();
  io::write_safetensors(dir.file("missing.safetensors"), t);
  const auto msg = error_of([&] { load_weights(*tiny(2), dir.file("missing.safetensors")); });
  EXPECT_NE(msg.find("blocks.1.ffn.2.weight"), std::string::npos) << msg;
  EXPECT_THROW(load_weights(*tiny(2), dir.file("missing.safetensors")), IoError);
}

TEST(Weights, WrongShapeIsNamed) {
  TempDir dir;
  auto a = tiny(1);
  std::map<std::string, torch::Tensor> t;
  for (const auto& p : a->named_parameters()) t[p.key()] = p.value();
  t["blocks.2.self_attn.k.weight"] = torch::zeros({64, 32});
  io::write_safetensors(dir.file("shape.safetensors"), t);
  EXPECT_THROW(load_weights(*tiny(2), dir.file("shape.safetensors")), ShapeError);
  const auto msg = error_of([&] { load_weights(*tiny(2), dir.file("shape.safetensors")); });
  EXPECT_NE(msg.find("blocks.2.self_attn.k.weight"), std::string::npos) << msg;
}

TEST(Weights, InferConfigAndLoadModelByPath) {
  TempDir dir;
  auto a = tiny(9);
  std::map<std::string, torch::Tensor> t;
  for (const auto& p : a->named_parameters()) t[longshot::model::to_diffusers_key(p.key())] = p.value();
  io::write_safetensors(dir.file("nometa.safetensors"), t);  // no longshot.config metadata
  EXPECT_EQ(infer_config(dir.file("nometa.safetensors")).name, "tiny");
  auto b = load_model(dir.file("nometa.safetensors"));
  expect_same_params(a, b);
  EXPECT_THROW(load_model("no-such-model"), ParameterError);
  // Random weights by name are seeded.
  expect_same_params(load_model("tiny", 4), load_model("tiny", 4));
}
