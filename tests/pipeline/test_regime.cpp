// The motion regime of a job (issue 25): the router trained on the built-in model's own text
// encoder routes held-out world captions, the regime's calibrated parameters reach the job, the
// user's --param values win, and every bad input is refused except the one announced fallback.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "engine/calibrate/calibration.h"
#include "engine/calibrate/router.h"
#include "engine/common/assets.h"
#include "engine/common/error.h"
#include "engine/model/builtin_model.h"
#include "engine/model/conditioning_impl.h"
#include "engine/data/tokenizer.h"
#include "engine/pipeline/recipe.h"
#include "engine/pipeline/regime.h"
#include "engine/pipeline/run_job.h"
#include "tests/common/temp_dir.h"
#include "tests/common/tiny_model_folder.h"

using namespace longshot;

namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("longshot_regime_" + name)).string();
}

// The router of the built-in model, trained once for the whole binary (a second or two).
const pipeline::RouterTraining& builtin_router() {
  static const pipeline::RouterTraining t = pipeline::train_world_router("longshot-builtin", 0, 40, 12);
  return t;
}

std::string router_file() {
  static const std::string path = [] {
    const std::string p = temp_path("router.json");
    calibrate::write_router(builtin_router().router, p);
    return p;
  }();
  return path;
}

// A dynamicrad table with recognisable, different decays per regime.
std::string table_file(const std::string& mode = "dynamicrad") {
  nlohmann::json j;
  j["format"] = "longshot-calibration";
  j["version"] = 1;
  j["mode"] = mode;
  if (mode == "dynamicrad") {
    j["regimes"]["static"]["params"] = {{"decay", 0.9}, {"threshold_far", 5.0}};
    j["regimes"]["slow"]["params"] = {{"decay", 0.5}};
    j["regimes"]["fast"]["params"] = {{"decay", 0.25}, {"threshold_far", 1.0}};
  } else {
    j["regimes"]["fast"]["params"] = nlohmann::json::object();
  }
  const std::string p = temp_path("table_" + mode + ".json");
  std::ofstream(p) << j.dump();
  return p;
}

const char* kStatic = "a large red circle grows and shrinks on a black background";
const char* kSlow = "a small blue square stays still on a brown checkered background as the camera pans left";
const char* kFast = "a medium yellow triangle bounces left to right on a dark gray background";
// A 1x job of the built-in model at 32 px: 16 token-grid frames of 8 × 8.
const attention::TokenGrid kGrid{16, 8, 8};

torch::Tensor embed(const std::string& prompt) {
  static auto encoder = model::make_text_encoder(model::find_config(model::resolve_builtin_name("longshot-builtin")));
  return encoder->encode(prompt)[0];
}

}  // namespace

TEST(Regime, BuiltinRouterRoutesHeldOutCaptions) {
  const auto& t = builtin_router();
  std::printf("router on longshot-builtin: train accuracy %.3f (%d prompts), held-out %.3f (%d prompts), %.4f ms per route\n",
              t.router.train_accuracy, t.router.examples, t.heldout_accuracy, t.heldout, t.route_ms);
  EXPECT_GE(t.heldout_accuracy, 0.9);
  EXPECT_EQ(t.heldout, 36);
  // Deterministic: training again gives the same weights.
  const auto again = pipeline::train_world_router("longshot-builtin", 0, 40, 12);
  EXPECT_EQ(again.router.weight, t.router.weight);
}

TEST(Regime, PromptsOfEachMotionRouteToTheirRegimeAndSayWhy) {
  const auto& r = builtin_router().router;
  const std::vector<std::pair<const char*, std::string>> cases = {{kStatic, "static"}, {kSlow, "slow"}, {kFast, "fast"}};
  const std::vector<std::vector<std::string>> words = {{"grows", "shrinks", "and"}, {"pans", "camera", "still", "stays", "as"},
                                                       {"bounces", "left", "right", "to"}};
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto names = [&] {
      std::vector<std::string> n = {"<bos>"};
      for (auto& w : data::split_words(cases[i].first)) n.push_back(w);
      return n;
    }();
    const auto d = calibrate::route(r, embed(cases[i].first), names);
    EXPECT_EQ(d.regime, cases[i].second) << d.reason;
    EXPECT_GT(d.confidence, 0.5) << d.reason;
    ASSERT_FALSE(d.top_tokens.empty());
    bool motion_word = false;
    for (const auto& s : d.top_tokens)
      for (const auto& w : words[i]) motion_word = motion_word || s.token == w;
    EXPECT_TRUE(motion_word) << "the explanation should name the motion words: " << d.reason;
  }
}

namespace {
// dynamicrad with `regime auto`, the test's router and table.
pipeline::AttentionSettings routed_settings() {
  pipeline::AttentionSettings s;
  s.mode = "dynamicrad";
  s.regime = "auto";
  s.router = router_file();
  s.calibration = table_file();
  return s;
}
}  // namespace

TEST(Regime, ChoiceAppliesTheTableUnderTheUsersParams) {
  pipeline::AttentionSettings s = routed_settings();
  auto c = pipeline::choose_regime(s, "longshot-builtin", embed(kFast), kFast, kGrid);
  EXPECT_EQ(c.regime, "fast");
  EXPECT_DOUBLE_EQ(c.params.at("decay"), 0.25);
  EXPECT_DOUBLE_EQ(c.params.at("threshold_far"), 1.0);
  EXPECT_NE(c.summary().find("fast (auto"), std::string::npos) << c.summary();
  c = pipeline::choose_regime(s, "longshot-builtin", embed(kStatic), kStatic, kGrid);
  EXPECT_EQ(c.regime, "static");
  EXPECT_DOUBLE_EQ(c.params.at("decay"), 0.9);
  // The user overrides the router, and a --param overrides the table.
  s.regime = "slow";
  s.params["decay"] = 1.5;
  c = pipeline::choose_regime(s, "longshot-builtin", embed(kFast), kFast, kGrid);
  EXPECT_EQ(c.regime, "slow");
  EXPECT_DOUBLE_EQ(c.params.at("decay"), 1.5);
  EXPECT_NE(c.summary().find("set by the user"), std::string::npos);
}

// The studio sends a running job only the sliders a user moved: the regime's other values stay,
// and a change of mode (or of regime, which is chosen when a job starts) applies as given.
TEST(Regime, AMidJobChangeKeepsTheRegimesValuesUnderTheMovedSliders) {
  pipeline::AttentionSettings s = routed_settings();
  const auto c = pipeline::choose_regime(s, "longshot-builtin", embed(kFast), kFast, kGrid);
  ASSERT_EQ(c.regime, "fast");
  auto moved = s;
  moved.params["decay"] = 2.0;
  const auto kept = pipeline::keep_regime(c, moved);
  EXPECT_DOUBLE_EQ(kept.params.at("decay"), 2.0);          // the moved slider
  EXPECT_DOUBLE_EQ(kept.params.at("threshold_far"), 1.0);  // the regime's value, not the default
  auto other_mode = moved;
  other_mode.mode = "radial";
  EXPECT_EQ(pipeline::keep_regime(c, other_mode).params, other_mode.params);
  auto regime_off = moved;
  regime_off.regime = "";
  EXPECT_EQ(pipeline::keep_regime(c, regime_off).params, regime_off.params);
  // No regime applied (none asked): nothing to keep.
  EXPECT_EQ(pipeline::keep_regime(pipeline::RegimeChoice{}, moved).params, moved.params);
}

TEST(Regime, RefusesBadInputAndFallsBackOnlyForAutoWithAMissingFile) {
  pipeline::AttentionSettings s;
  s.mode = "dynamicrad";
  s.regime = "auto";
  s.router = temp_path("no_such_router.json");
  s.calibration = table_file();
  s.params["decay"] = 0.7;
  const auto e = embed(kFast);
  auto c = pipeline::choose_regime(s, "longshot-builtin", e, kFast, kGrid);
  EXPECT_EQ(c.regime, "");
  EXPECT_NE(c.warning.find("no_such_router.json"), std::string::npos) << c.warning;
  EXPECT_NE(c.summary().find("fell back"), std::string::npos);
  EXPECT_EQ(c.params.size(), 1u);  // the user's only: the mode's defaults fill the rest
  s.router = router_file();
  s.calibration = temp_path("no_such_table.json");
  EXPECT_EQ(pipeline::choose_regime(s, "longshot-builtin", e, kFast, kGrid).regime, "");
  // A named regime has no fallback.
  s.regime = "fast";
  EXPECT_THROW(pipeline::choose_regime(s, "longshot-builtin", e, kFast, kGrid), ParameterError);
  s.calibration = table_file();
  s.regime = "sideways";
  EXPECT_THROW(pipeline::choose_regime(s, "longshot-builtin", e, kFast, kGrid), ParameterError);
  s.regime = "auto";
  s.mode = "dense";
  EXPECT_THROW(pipeline::choose_regime(s, "longshot-builtin", e, kFast, kGrid), ParameterError);
  s.mode = "dynamicrad";
  s.calibration = table_file("dfsattn");  // another mode's table
  EXPECT_THROW(pipeline::choose_regime(s, "longshot-builtin", e, kFast, kGrid), ParameterError);
  s.calibration = table_file();
  const std::string corrupt = temp_path("corrupt_router.json");
  std::ofstream(corrupt) << "{\"format\": \"longshot-router\", \"version\": 1, \"model\": \"x\", \"dim\": 4, \"regimes\": [";
  s.router = corrupt;
  EXPECT_THROW(pipeline::choose_regime(s, "longshot-builtin", e, kFast, kGrid), IoError);
  s.router = router_file();
  EXPECT_THROW(pipeline::choose_regime(s, "longshot-builtin", torch::ones({5, 7}), kFast, kGrid), ShapeError);
}

TEST(Regime, RunJobRoutesPrintsAndRecordsTheRegime) {
  pipeline::GenerationRequest r;
  r.model = "longshot-builtin";
  r.frames = 8, r.width = 32, r.height = 32, r.steps = 1;
  r.device = "cpu";
  r.previews = false;
  r.measure_recall = false;
  r.attention.mode = "dynamicrad";
  r.attention.regime = "auto";
  r.attention.router = router_file();
  r.attention.calibration = table_file();
  auto run = [&](const std::string& prompt, pipeline::JobStarted& started) {
    r.prompt = prompt;
    std::string error;
    bool finished = false;
    pipeline::JobContext ctx;
    ctx.publish = [&](pipeline::Event e) {
      if (auto* s = std::get_if<pipeline::JobStarted>(&e)) started = *s;
      if (std::get_if<pipeline::JobFinished>(&e)) finished = true;
      if (auto* f = std::get_if<pipeline::JobFailed>(&e)) error = f->message;
    };
    pipeline::run_job(r, ctx);
    EXPECT_EQ(error, "");
    EXPECT_TRUE(finished);
  };
  pipeline::JobStarted fast, still;
  run(kFast, fast);
  run(kStatic, still);
  EXPECT_NE(fast.routing.find("fast (auto"), std::string::npos) << fast.routing;
  EXPECT_NE(still.routing.find("static (auto"), std::string::npos) << still.routing;
  EXPECT_DOUBLE_EQ(fast.request.attention.params.at("decay"), 0.25);
  EXPECT_DOUBLE_EQ(still.request.attention.params.at("decay"), 0.9);
  // The recipe keeps the routed parameters (and says which regime was asked for).
  const auto j = nlohmann::json::parse(pipeline::recipe_json(fast.request));
  EXPECT_DOUBLE_EQ(j["attention"]["params"]["decay"].get<double>(), 0.25);
  EXPECT_EQ(j["attention"]["regime"], "auto");
  // Auto without a router: the job still runs, on the defaults, and says so.
  r.attention.router = temp_path("no_such_router.json");
  pipeline::JobStarted fallback;
  run(kFast, fallback);
  EXPECT_NE(fallback.routing.find("fell back"), std::string::npos) << fallback.routing;
  // A named regime without a table fails the job with the reason.
  r.attention.regime = "fast";
  r.attention.calibration = temp_path("no_such_table.json");
  std::string error;
  pipeline::JobContext ctx;
  ctx.publish = [&](pipeline::Event e) {
    if (auto* f = std::get_if<pipeline::JobFailed>(&e)) error = f->message;
  };
  pipeline::run_job(r, ctx);
  EXPECT_NE(error.find("no_such_table.json"), std::string::npos) << error;
}

// A table keyed by length (version 2, calibrate::combine_tables): the job's token-grid frames pick
// the horizon calibrated nearest them, inside choose_regime and through run_job (the built-in
// model's temporal patch is 2: 8 frames → 4 grid frames, 24 → 12, nearer 16 than 4 on a log scale).
TEST(Regime, AVersionTwoTableAppliesTheHorizonNearestTheJobsLength) {
  auto run_table = [](const std::string& name, const std::string& grid, double decay) {
    nlohmann::json j;
    j["format"] = "longshot-calibration";
    j["version"] = 1;
    j["mode"] = "dynamicrad";
    j["proxy"]["grid"] = grid;
    j["proxy"]["block"] = 32;
    for (const char* r : {"static", "slow", "fast"}) j["regimes"][r]["params"] = {{"decay", decay}};
    const std::string p = temp_path(name);
    std::ofstream(p) << j.dump();
    return p;
  };
  const std::string table = temp_path("horizons.json");
  calibrate::combine_tables({run_table("h4.json", "4x8x8", 0.9), run_table("h16.json", "16x8x8", 0.3)}, table);
  pipeline::AttentionSettings s;
  s.mode = "dynamicrad";
  s.regime = "auto";
  s.router = router_file();
  s.calibration = table;
  s.block_size = 32;  // the runs' proxy block
  const auto e = embed(kFast);
  EXPECT_DOUBLE_EQ(pipeline::choose_regime(s, "longshot-builtin", e, kFast, {4, 8, 8}).params.at("decay"), 0.9);
  EXPECT_DOUBLE_EQ(pipeline::choose_regime(s, "longshot-builtin", e, kFast, {12, 8, 8}).params.at("decay"), 0.3);
  auto c = pipeline::choose_regime(s, "longshot-builtin", e, kFast, {64, 8, 8});
  EXPECT_EQ(c.horizon_frames, 16);
  EXPECT_EQ(c.warning, "");  // the calibration's geometry: nothing to say
  EXPECT_NE(c.summary().find("horizon of 16 frames, the job has 64; calibrated at 8x8 tokens per frame, block 32)"),
            std::string::npos)
      << c.summary();
  EXPECT_THROW(pipeline::choose_regime(s, "longshot-builtin", e, kFast, {0, 8, 8}), ParameterError);
  // Other tokens per frame or another block: the parameters still apply, with a warning.
  c = pipeline::choose_regime(s, "longshot-builtin", e, kFast, {16, 16, 16});
  EXPECT_DOUBLE_EQ(c.params.at("decay"), 0.3);
  EXPECT_NE(c.warning.find("calibrated at 8x8 tokens per frame with block 32, this job has 16x16 with block 32"),
            std::string::npos) << c.warning;
  EXPECT_NE(c.summary().find("warning: the table's parameters"), std::string::npos) << c.summary();
  s.block_size = 128;
  c = pipeline::choose_regime(s, "longshot-builtin", e, kFast, {16, 8, 8});
  EXPECT_NE(c.warning.find("this job has 8x8 with block 128"), std::string::npos) << c.warning;
  s.block_size = 32;

  pipeline::GenerationRequest r;
  r.model = "longshot-builtin";
  r.width = 32, r.height = 32, r.steps = 1;
  r.device = "cpu";
  r.previews = false;
  r.measure_recall = false;
  r.prompt = kFast;
  r.attention.mode = "dynamicrad";
  r.attention.regime = "auto";
  r.attention.router = router_file();
  r.attention.calibration = table;
  r.attention.block_size = 32;
  for (const auto& [frames, decay] : std::vector<std::pair<int, double>>{{8, 0.9}, {24, 0.3}}) {
    r.frames = frames;
    pipeline::JobStarted started;
    std::string error;
    pipeline::JobContext ctx;
    ctx.publish = [&](pipeline::Event ev) {
      if (auto* st = std::get_if<pipeline::JobStarted>(&ev)) started = *st;
      if (auto* f = std::get_if<pipeline::JobFailed>(&ev)) error = f->message;
    };
    pipeline::run_job(r, ctx);
    EXPECT_EQ(error, "") << frames << " frames";
    EXPECT_DOUBLE_EQ(started.request.attention.params.at("decay"), decay) << frames << " frames";
    EXPECT_EQ(started.routing.find("warning"), std::string::npos) << started.routing;  // 8 × 8 per frame, block 32
  }

  // A version-2 table with a regime missing at one length is refused naming the file, not applied.
  nlohmann::json bad;
  {
    std::ifstream in(table);
    bad = nlohmann::json::parse(in);
  }
  bad["horizons"][1]["regimes"].erase("slow");
  std::ofstream(table) << bad.dump();
  try {
    pipeline::choose_regime(s, "longshot-builtin", e, kFast, {4, 8, 8});
    ADD_FAILURE() << "a horizon without the slow regime was accepted";
  } catch (const IoError& err) {
    EXPECT_NE(std::string(err.what()).find("horizons.json"), std::string::npos) << err.what();
    EXPECT_NE(std::string(err.what()).find("horizon of 16 frames has regimes {fast, static}"), std::string::npos) << err.what();
  }
  std::filesystem::remove(table);
}

// ---- A router for a Wan model (issue 25): labelled prompts of our own, embedded by the model's umT5.

TEST(PromptRouter, LabelledPromptFilesAreReadOrRefusedWithTheLine) {
  longshot::testing::TempDir d("longshot_labelled");
  const std::string good = d.file("good.tsv");
  std::ofstream(good) << "# a comment\n\nstatic\ta still lake\r\nfast\ta car races past  \n";
  const auto p = calibrate::read_labelled_prompts(good);
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].regime, "static");
  EXPECT_EQ(p[0].prompt, "a still lake");
  EXPECT_EQ(p[1].prompt, "a car races past");
  const std::string bad = d.file("bad.tsv");
  std::ofstream(bad) << "static\ta still lake\nfast a car without a tab\n";
  try {
    calibrate::read_labelled_prompts(bad);
    FAIL() << "a line without a tab was accepted";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("line 2: expected 'regime<TAB>prompt'"), std::string::npos) << e.what();
  }
  const std::string empty = d.file("empty.tsv");
  std::ofstream(empty) << "# nothing\n";
  EXPECT_THROW(calibrate::read_labelled_prompts(empty), IoError);
  EXPECT_THROW(calibrate::read_labelled_prompts(d.file("missing.tsv")), IoError);
}

// The shipped list for Wan: 30 prompts per regime, none twice.
TEST(PromptRouter, TheShippedWanPromptsAreBalancedAndDistinct) {
  const std::string path = find_asset("wan-motion-prompts.tsv");
  ASSERT_FALSE(path.empty());
  const auto p = calibrate::read_labelled_prompts(path);
  std::map<std::string, int> per;
  std::set<std::string> seen;
  for (const auto& x : p) {
    ++per[x.regime];
    EXPECT_TRUE(seen.insert(x.prompt).second) << "twice: " << x.prompt;
  }
  EXPECT_EQ(per, (std::map<std::string, int>{{"fast", 30}, {"slow", 30}, {"static", 30}}));
}

// Trained on a tiny random Wan folder's umT5: every 4th prompt held out, the rest train it, the
// router names the folder's model and routes; the same data trains the same router.
TEST(PromptRouter, TrainsOnAWanFoldersTextEncoder) {
  longshot::testing::TempDir d("longshot_prompt_router");
  const auto files = longshot::testing::write_tiny_model(d.file("wan-tiny"), longshot::testing::TinyLayout::Diffusers);
  if (files.tokenizer.empty()) GTEST_SKIP() << "spm_train is not installed (packaging/setup.sh installs it)";
  pipeline::GenerationRequest model;
  model.model = files.root;
  const auto prompts = calibrate::read_labelled_prompts(find_asset("wan-motion-prompts.tsv"));
  const auto t = pipeline::train_prompt_router(model, prompts, 4);
  EXPECT_EQ(t.router.examples, 68);
  EXPECT_EQ(t.heldout, 22);
  EXPECT_EQ(t.router.model, pipeline::resolve_request_model(model).name);
  EXPECT_EQ(t.router.regimes, (std::vector<std::string>{"static", "slow", "fast"}));
  EXPECT_EQ(t.router.dim, longshot::text::testing::tiny_config().d_model);
  const auto again = pipeline::train_prompt_router(model, prompts, 4);
  EXPECT_EQ(again.router.weight, t.router.weight);
  EXPECT_THROW(pipeline::train_prompt_router(model, prompts, 1), ParameterError);
  const std::vector<calibrate::LabelledPrompt> unknown = {{"a still lake", "static"}, {"a car", "sideways"}};
  EXPECT_THROW(pipeline::train_prompt_router(model, unknown, 100), ParameterError);
}
