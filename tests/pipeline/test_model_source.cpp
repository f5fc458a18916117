// Model resolution (model/model_source): each layout on disk resolves to the right config and
// files and loads the weights it was written with; sharded checkpoints; the search path; missing
// and mismatched components named; the recipe JSON round trip; a whole tiny Wan model generating
// through run_job on the CPU.
#include <gtest/gtest.h>

#include <cstdlib>

#include "engine/common/error.h"
#include "engine/model/model_source.h"
#include "engine/pipeline/recipe.h"
#include "engine/pipeline/run_job.h"
#include "tests/common/temp_dir.h"
#include "tests/common/tiny_model_folder.h"
#include "engine/common/remove_tree.h"

using namespace longshot;
using namespace longshot::testing;

namespace {

struct Dir : TempDir {
  Dir() : TempDir("longshot_models") {}
};

// Sets an environment variable for one scope, restoring the old value.
struct ScopedEnv {
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) had_ = true, old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() { had_ ? (void)::setenv(name_, old_.c_str(), 1) : (void)::unsetenv(name_); }
  const char* name_;
  bool had_ = false;
  std::string old_;
};

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

model::ModelSpec spec_of(const std::string& model) {
  model::ModelSpec s;
  s.model = model;
  return s;
}

// Every parameter of `a` equals `b`'s.
void expect_same_params(model::WanDiT a, model::WanDiT b) {
  auto pa = a->named_parameters(), pb = b->named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (const auto& item : pa) EXPECT_TRUE(torch::equal(item.value(), pb[item.key()])) << item.key();
}

}  // namespace

TEST(ModelSource, DiffusersFolderWithShardedDiT) {
  Dir d;
  const auto files = write_tiny_model(d.file("wan-diffusers"), TinyLayout::Diffusers, 11);
  const auto m = model::resolve_model(spec_of(files.root), {model::kComponentTokenizer});
  EXPECT_EQ(m.layout, model::ModelLayout::Diffusers);
  EXPECT_EQ(m.name, "wan-diffusers");
  EXPECT_EQ(m.dit_weights, files.dit);
  EXPECT_EQ(m.text_encoder, files.text_encoder);
  EXPECT_EQ(m.vae, files.vae);
  EXPECT_EQ(m.tokenizer, files.tokenizer);
  EXPECT_EQ(m.config.dim, 128);
  EXPECT_EQ(m.config.num_heads, 2);  // from transformer/config.json: the shapes cannot tell
  EXPECT_EQ(m.config.num_layers, 2);
  EXPECT_EQ(m.config.text_dim, text::testing::tiny_config().d_model);
  EXPECT_EQ(m.config.temporal_stride, 4);
  EXPECT_EQ(m.config.spatial_stride, 8);
  EXPECT_GT(m.bytes_on_disk, 0u);
  // The shards load into exactly the weights they were written from.
  model::WanDiT want(tiny_wan_config(2));
  want->init_random(11);
  expect_same_params(model::load_dit(m, 0), want);
}

TEST(ModelSource, WanReleaseFolder) {
  Dir d;
  const auto files = write_tiny_model(d.file("Wan2.1-T2V-tiny"), TinyLayout::WanRelease, 12);
  const auto m = model::resolve_model(spec_of(files.root), {model::kComponentTokenizer});
  EXPECT_EQ(m.layout, model::ModelLayout::WanRelease);
  EXPECT_EQ(m.dit_weights, files.dit);
  EXPECT_EQ(m.text_encoder, files.text_encoder);
  EXPECT_EQ(m.vae, files.vae);
  EXPECT_EQ(m.config.num_heads, 2);
  EXPECT_EQ(m.config.text_len, 32);  // config.json's text_len
  model::WanDiT want(tiny_wan_config(2));
  want->init_random(12);
  expect_same_params(model::load_dit(m, 0), want);
}

TEST(ModelSource, SplitFilesAndOverrides) {
  Dir d;
  const auto files = write_tiny_model(d.file("comfy"), TinyLayout::Split, 13);
  model::ModelSpec s;
  s.dit = files.dit;
  s.text_encoder = files.text_encoder;
  s.vae = files.vae;
  s.tokenizer = files.tokenizer;
  if (files.tokenizer.empty()) GTEST_SKIP() << "spm_train is not installed (packaging/setup.sh installs it)";
  const auto m = model::resolve_model(s);
  EXPECT_EQ(m.layout, model::ModelLayout::Split);
  EXPECT_EQ(m.config.num_heads, 1);  // no config.json: Wan's head dim 128
  EXPECT_EQ(m.vae, files.vae);
  // Without the tokenizer, the split model names what it lacks.
  s.tokenizer.clear();
  const auto msg = message_of([&] { model::resolve_model(s); });
  EXPECT_NE(msg.find("tokenizer"), std::string::npos) << msg;
  // A folder's component replaced by a file given beside it.
  const auto folder = write_tiny_model(d.file("diffusers"), TinyLayout::Diffusers);
  model::ModelSpec o = spec_of(folder.root);
  o.vae = files.vae;
  EXPECT_EQ(model::resolve_model(o, {model::kComponentTokenizer}).vae, files.vae);
}

TEST(ModelSource, MissingComponentsAreEachNamed) {
  Dir d;
  const auto files = write_tiny_model(d.file("partial"), TinyLayout::Diffusers);
  longshot::remove_tree(files.root + "/text_encoder");
  longshot::remove_tree(files.root + "/vae");
  longshot::remove_tree(files.root + "/tokenizer");
  const auto msg = message_of([&] { model::resolve_model(spec_of(files.root)); });
  EXPECT_NE(msg.find("text encoder (expected text_encoder/model.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("VAE (expected vae/diffusion_pytorch_model.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("tokenizer (expected tokenizer/spiece.model"), std::string::npos) << msg;
  EXPECT_THROW(model::resolve_model(spec_of(files.root)), IoError);
  // inspect_model lists them without failing.
  EXPECT_EQ(model::inspect_model(files.root).missing.size(), 3u);
  // The DiT alone still loads (load_model needs no encoder or VAE).
  EXPECT_NO_THROW(model::load_model(files.root));
  // Not a model folder at all.
  fs::create_directories(d.file("empty"));
  const auto none = message_of([&] { model::resolve_model(spec_of(d.file("empty"))); });
  EXPECT_NE(none.find("is not a model folder"), std::string::npos) << none;
}

TEST(ModelSource, MismatchedComponentsNameBoth) {
  Dir d;
  const auto files = write_tiny_model(d.file("mix"), TinyLayout::Diffusers);
  // config.json of the 1.3B model beside tiny weights.
  write_text(files.root + "/transformer/config.json",
             "{\"num_attention_heads\": 12, \"attention_head_dim\": 128, \"num_layers\": 30, \"ffn_dim\": 8960}");
  auto msg = message_of([&] { model::resolve_model(spec_of(files.root), {model::kComponentTokenizer}); });
  EXPECT_NE(msg.find("transformer/config.json' says dim 1536 (the 1.3B shape)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("diffusion_pytorch_model.safetensors.index.json' have dim 128"), std::string::npos) << msg;
  write_text(files.root + "/transformer/config.json", dit_config_json(tiny_wan_config(2), true));
  // A text encoder of another width.
  model::ModelSpec s = spec_of(files.root);
  s.text_encoder = d.file("wide/umt5.safetensors");
  write_umt5(s.text_encoder, false, /*d_model=*/24);
  msg = message_of([&] { model::resolve_model(s, {model::kComponentTokenizer}); });
  EXPECT_NE(msg.find("text encoder '" + s.text_encoder + "' gives 24-wide embeddings"), std::string::npos) << msg;
  EXPECT_NE(msg.find("takes text_dim 16"), std::string::npos) << msg;
  EXPECT_THROW(model::resolve_model(s, {model::kComponentTokenizer}), ShapeError);
  // A VAE of 8 latent channels for a 16-channel DiT.
  s = spec_of(files.root);
  s.vae = d.file("vae8.safetensors");
  io::write_safetensors(s.vae, {{"post_quant_conv.weight", torch::zeros({8, 8, 1, 1, 1})}});
  msg = message_of([&] { model::resolve_model(s, {model::kComponentTokenizer}); });
  EXPECT_NE(msg.find("VAE '" + s.vae + "' has 8 latent channels"), std::string::npos) << msg;
  EXPECT_NE(msg.find("takes 16"), std::string::npos) << msg;
}

TEST(ModelSource, ShardIndexErrorsNameTheShard) {
  Dir d;
  model::WanDiT dit(tiny_wan_config(2));
  dit->init_random(1);
  write_dit(*dit, d.file("t"), "m", model::KeyLayout::Diffusers, true);
  const auto index = d.file("t/m.safetensors.index.json");
  EXPECT_EQ(io::SafetensorsSet(index).files().size(), 2u);
  fs::remove(d.file("t/m-00002-of-00002.safetensors"));
  const auto msg = message_of([&] { io::SafetensorsSet set(index); });
  EXPECT_NE(msg.find("names shard 'm-00002-of-00002.safetensors', which does not exist"), std::string::npos) << msg;
  write_text(d.file("t/bad.safetensors.index.json"), "{\"weight_map\": {\"x\": \"../escape.safetensors\"}}");
  EXPECT_THROW(io::SafetensorsSet(d.file("t/bad.safetensors.index.json")), IoError);
}

TEST(ModelSource, SearchPathFindsFoldersByName) {
  Dir d;
  ScopedEnv models("LONGSHOT_MODELS", d.file("first") + ":" + d.file("second"));
  ScopedEnv xdg("XDG_DATA_HOME", d.file("xdg"));
  const auto path = model::model_search_path();
  ASSERT_EQ(path.size(), 3u);
  EXPECT_EQ(path[0], d.file("first"));
  EXPECT_EQ(path[1], d.file("second"));
  EXPECT_EQ(path[2], d.file("xdg") + "/longshot/models");
  write_tiny_model(d.file("second/my-wan"), TinyLayout::WanRelease);
  fs::create_directories(d.file("xdg/longshot/models/junk"));
  const auto m = model::resolve_model(spec_of("my-wan"), {model::kComponentTokenizer});
  EXPECT_EQ(m.root, d.file("second/my-wan"));
  const auto found = model::find_models();
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0].model.name, "my-wan");
  EXPECT_TRUE(found[0].error.empty()) << found[0].error;
  EXPECT_NE(found[1].error.find("is not a model folder"), std::string::npos);
  const auto msg = message_of([&] { model::resolve_model(spec_of("no-such-model")); });
  EXPECT_NE(msg.find(d.file("second")), std::string::npos) << msg;  // the search path is listed
  EXPECT_THROW(model::resolve_model(spec_of("no-such-model")), ParameterError);
}

TEST(Recipe, RoundTripAndErrors) {
  pipeline::GenerationRequest r;
  r.prompt = "a \"quoted\" prompt\nwith a newline";
  r.negative_prompt = "blurry";
  r.seed = 18446744073709551615ull;
  r.model = "/models/wan";
  r.vae_file = "/models/vae.safetensors";
  r.sampler = "unipc";
  r.steps = 7, r.guidance = 4.5, r.shift = 2.5, r.frames = 9, r.width = 48, r.height = 32, r.fps = 12;
  r.attention.mode = "radial";
  r.attention.params["keep_ratio"] = 0.25;
  r.attention.dense_warmup_steps = 2;
  r.attention.block_size = 64;
  const auto back = pipeline::request_from_recipe(pipeline::recipe_json(r, "wan", "wan2.1-t2v-1.3b"));
  EXPECT_EQ(back.prompt, r.prompt);
  EXPECT_EQ(back.negative_prompt, r.negative_prompt);
  EXPECT_EQ(back.seed, r.seed);
  EXPECT_EQ(back.model, r.model);
  EXPECT_EQ(back.vae_file, r.vae_file);
  EXPECT_EQ(back.sampler, r.sampler);
  EXPECT_EQ(back.steps, 7);
  EXPECT_DOUBLE_EQ(back.guidance, 4.5);
  EXPECT_DOUBLE_EQ(back.shift, 2.5);
  EXPECT_EQ(back.frames, 9);
  EXPECT_EQ(back.width, 48);
  EXPECT_EQ(back.height, 32);
  EXPECT_EQ(back.attention.mode, "radial");
  EXPECT_DOUBLE_EQ(back.attention.params.at("keep_ratio"), 0.25);
  EXPECT_GT(back.attention.params.size(), 1u);  // the mode's defaults are recorded too
  EXPECT_EQ(back.attention.dense_warmup_steps, 2);
  EXPECT_EQ(back.attention.block_size, 64);
  try {
    pipeline::request_from_recipe("{\"steps\": \"many\"}");
    ADD_FAILURE() << "a string for steps was accepted";
  } catch (const ParameterError& e) {
    EXPECT_EQ(e.parameter(), "from");
    EXPECT_NE(std::string(e.what()).find("'steps'"), std::string::npos);
  }
  EXPECT_THROW(pipeline::request_from_recipe("not json"), ParameterError);
}

// The whole tiny Wan model (umT5 + DiT + VAE) through run_job: a video of the requested size, the
// text encoder released, and the same seed giving the same frames.
TEST(ModelSource, TinyWanFolderGeneratesEndToEnd) {
  Dir d;
  const auto files = write_tiny_model(d.file("wan"), TinyLayout::Diffusers, 3);
  if (files.tokenizer.empty()) GTEST_SKIP() << "spm_train is not installed (packaging/setup.sh installs it)";
  ScopedEnv cache("LONGSHOT_CACHE_DIR", d.file("cache"));
  pipeline::GenerationRequest r;
  r.model = files.root;
  r.prompt = "a cat walks along the beach";
  r.negative_prompt = "blurry";
  r.frames = 5, r.width = 32, r.height = 32, r.steps = 2, r.guidance = 5.0;
  r.device = "cpu";
  r.previews = false;
  r.measure_recall = false;
  auto run = [&](pipeline::ModelCache* cache_slot) {
    VideoPtr video;
    std::string error;
    pipeline::JobContext ctx;
    ctx.cache = cache_slot;
    ctx.publish = [&](pipeline::Event e) {
      if (auto* f = std::get_if<pipeline::JobFinished>(&e)) {
        video = f->video;
        EXPECT_EQ(f->peak_memory_bytes, -1);  // the CPU reports none
      }
      if (auto* f = std::get_if<pipeline::JobFailed>(&e)) error = f->message;
    };
    pipeline::run_job(r, ctx);
    EXPECT_EQ(error, "");
    return video;
  };
  pipeline::ModelCache cache_slot;
  const auto a = run(&cache_slot);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->frames, 5);
  EXPECT_EQ(a->width, 32);
  EXPECT_EQ(a->height, 32);
  EXPECT_FALSE(cache_slot.text_encoder);  // released before sampling
  r.keep_text_encoder = true;
  const auto b = run(&cache_slot);
  ASSERT_TRUE(b);
  EXPECT_TRUE(cache_slot.text_encoder);   // kept for the next job
  EXPECT_EQ(a->rgb, b->rgb);
  r.seed = 43;
  const auto c = run(&cache_slot);
  ASSERT_TRUE(c);
  EXPECT_NE(a->rgb, c->rgb);
  // The umT5 encoder really ran: its prompt cache holds the two prompts.
  size_t cached = 0;
  for (const auto& e : fs::recursive_directory_iterator(d.file("cache"))) cached += e.is_regular_file();
  EXPECT_GE(cached, 2u);
  // The VAE really decodes: a VAE file without its decoder fails the job, naming the file.
  io::write_safetensors(files.vae, {{"post_quant_conv.weight", torch::zeros({16, 16, 1, 1, 1})}});
  std::string error;
  pipeline::JobContext ctx;
  ctx.publish = [&](pipeline::Event e) {
    if (auto* f = std::get_if<pipeline::JobFailed>(&e)) error = f->message;
  };
  pipeline::run_job(r, ctx);
  EXPECT_NE(error.find(files.vae), std::string::npos) << error;
}
