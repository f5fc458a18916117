// The training loop on tiny clips (4 frames of 16x16, batch 2, CPU): checkpoints stamped with the
// step and resumed, a torn checkpoint refused, bad options named; mask-adapter distillation from
// that checkpoint exports an adapter that loads with what it was trained for, and refuses what it
// cannot do.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "app/train/trainer.h"
#include "engine/common/error.h"
#include "engine/io/safetensors.h"
#include "engine/model/builtin_model.h"
#include "engine/model/mask_adapter.h"
#include "engine/model/weights.h"
#include "engine/common/remove_tree.h"

using namespace longshot;
namespace fs = std::filesystem;

namespace {

train::TrainOptions tiny_options(const std::string& dir, int64_t steps) {
  train::TrainOptions o;
  o.out_dir = dir;
  o.steps = steps;
  o.batch = 2;
  o.frames = 4;
  o.size = 16;
  o.device = "cpu";
  o.preview_every = 0;
  o.log_every = 1;
  o.warmup = 1;
  o.lr = 1e-3;
  o.threads = 1;
  return o;
}

std::string step_of(const std::string& path) { return io::SafetensorsFile(path).metadata().at("step"); }

std::string fresh_dir(const std::string& name) {
  const auto dir = fs::temp_directory_path() / ("longshot_train_" + name);
  longshot::remove_tree(dir);
  return dir.string();
}

TEST(Trainer, CheckpointsResumeAndRefusals) {
  const std::string dir = fresh_dir("resume");
  EXPECT_EQ(train::run_training(tiny_options(dir, 2)), 2);
  for (const char* f : {"model", "ema", "adam_m", "adam_v"}) EXPECT_EQ(step_of(dir + "/" + f + ".safetensors"), "2") << f;
  const auto before = io::SafetensorsFile(dir + "/model.safetensors").load("dit.head.head.weight");
  // The same folder with more steps continues from step 2, not from scratch.
  EXPECT_EQ(train::run_training(tiny_options(dir, 3)), 3);
  EXPECT_EQ(step_of(dir + "/ema.safetensors"), "3");
  EXPECT_FALSE(torch::equal(before, io::SafetensorsFile(dir + "/model.safetensors").load("dit.head.head.weight")));

  // A torn set (one file from another step) is refused with the file named.
  {
    io::SafetensorsFile m(dir + "/adam_m.safetensors");
    std::map<std::string, torch::Tensor> tensors;
    for (const auto& n : m.names()) tensors[n] = m.load(n);
    io::write_safetensors(dir + "/adam_m.safetensors.tmp", tensors, {{"step", "99"}});
  }
  fs::rename(dir + "/adam_m.safetensors.tmp", dir + "/adam_m.safetensors");
  try {
    train::run_training(tiny_options(dir, 5));
    FAIL() << "a torn checkpoint must be refused";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("adam_m"), std::string::npos) << e.what();
  }

  auto bad = tiny_options(fresh_dir("bad"), 1);
  bad.batch = 0;
  EXPECT_THROW(train::run_training(bad), ParameterError);
  bad = tiny_options(fresh_dir("bad"), 1);
  bad.object_weight = -1.0;
  EXPECT_THROW(train::run_training(bad), ParameterError);
  bad = tiny_options(fresh_dir("bad"), 1);
  bad.frames = 5;  // not a multiple of the temporal patch 2
  EXPECT_THROW(train::run_training(bad), ParameterError);
  longshot::remove_tree(dir);
}

// A checkpoint from before position planes resumes with them: the patch embedding widens (the
// planes' weights start at zero), the step count goes on, and the export says what it was trained
// with.
TEST(Trainer, ResumeAddsPositionPlanes) {
  const std::string dir = fresh_dir("positions");
  auto o = tiny_options(dir, 2);
  o.position_channels = 0;
  EXPECT_EQ(train::run_training(o), 2);
  const auto key = "dit.patch_embedding.weight";
  const auto before = io::SafetensorsFile(dir + "/ema.safetensors").load(key);
  EXPECT_EQ(before.size(1), 3);
  o = tiny_options(dir, 3);
  o.position_channels = 2;
  o.export_path = dir + "/placed.safetensors";
  EXPECT_EQ(train::run_training(o), 3);
  const auto after = io::SafetensorsFile(dir + "/ema.safetensors").load(key);
  ASSERT_EQ(after.size(1), 5);
  // One step with EMA moves the old channels a little and the new ones away from zero, a little.
  EXPECT_LT((after.narrow(1, 0, 3) - before).abs().max().item<double>(), 1e-2);
  EXPECT_GT(after.narrow(1, 3, 2).abs().max().item<double>(), 0.0);
  EXPECT_LT(after.narrow(1, 3, 2).abs().max().item<double>(), 1e-2);
  EXPECT_EQ(model::infer_config(o.export_path).position_channels, 2);
  auto m = model::load_model(o.export_path);
  EXPECT_EQ(m->config().position_channels, 2);
  o.position_channels = 1;
  EXPECT_THROW(train::run_training(o), ParameterError);
  longshot::remove_tree(dir);
}

TEST(Trainer, DistillsAMaskAdapterThatLoads) {
  const std::string teacher = fresh_dir("teacher");
  train::run_training(tiny_options(teacher, 1));
  const std::string dir = fresh_dir("distill");
  auto o = tiny_options(dir, 4);
  o.teacher_dir = teacher;
  o.distill_mode = "radial";
  o.distill_params = {"keep_ratio=0.5"};
  o.block_size = 16;  // 2 x 4 x 4 = 32 tokens: 2 blocks
  o.rank = 4;
  o.lr = 1e-2;
  o.export_path = dir + "/adapter.safetensors";
  EXPECT_EQ(train::run_distillation(o), 4);
  EXPECT_EQ(step_of(dir + "/adapter_state.safetensors"), "4");

  const auto ad = model::load_adapter(o.export_path, model::find_config(model::kBuiltinName));
  EXPECT_EQ(ad.mode, "radial");
  EXPECT_EQ(ad.params, "keep_ratio=0.5");
  EXPECT_EQ(ad.block_size, 16);
  EXPECT_EQ(ad.rank, 4);
  double moved = 0.0;  // B starts at 0: training must have moved it
  for (const auto& layer : ad.b)
    for (const auto& b : layer) moved += b.abs().sum().item<double>();
  EXPECT_GT(moved, 0.0);

  // Resuming with other mask parameters would mix two adapters: refused. So are dense and a
  // teacher folder without a checkpoint.
  auto other = o;
  other.distill_params = {"keep_ratio=0.3"};
  other.steps = 6;
  EXPECT_THROW(train::run_distillation(other), ParameterError);
  auto dense = o;
  dense.distill_mode = "dense";
  EXPECT_THROW(train::run_distillation(dense), ParameterError);
  auto missing = o;
  missing.out_dir = fresh_dir("distill_missing");
  missing.teacher_dir = fresh_dir("no_teacher");
  EXPECT_THROW(train::run_distillation(missing), IoError);
  for (const auto& d : {teacher, dir, missing.out_dir}) longshot::remove_tree(d);
}

// Sparsity-aware training: the logged gap between the sparse and the dense velocity ends smaller
// when the gap is in the loss than in the same run (same data, same init) where it is only logged.
double mean_logged_gap(const std::string& dir, int last) {
  std::ifstream log(dir + "/train.log");
  std::vector<double> gaps;
  std::string line;
  while (std::getline(log, line)) {
    const auto at = line.find(" gap ");
    if (line.rfind("step ", 0) == 0 && at != std::string::npos) gaps.push_back(std::stod(line.substr(at + 5)));
  }
  EXPECT_GE(static_cast<int>(gaps.size()), last) << dir;
  double sum = 0.0;
  for (int i = 0; i < last && i < static_cast<int>(gaps.size()); ++i) sum += gaps[gaps.size() - 1 - i];
  return sum / last;
}

TEST(Trainer, SparsityAwareTrainingPullsTheSparseVelocityToDense) {
  auto run = [](const std::string& name, double weight) {
    auto o = tiny_options(fresh_dir(name), 30);
    o.sparse_mode = "radial";
    o.sparse_params = {"keep_ratio=0.5"};  // 2 blocks of 16 tokens: each latent frame sees only itself
    o.block_size = 16;
    o.sparse_weight = weight;
    o.object_weight = 0.0;
    train::run_training(o);
    const double gap = mean_logged_gap(o.out_dir, 8);
    longshot::remove_tree(o.out_dir);
    return gap;
  };
  const double logged_only = run("gap0", 0.0), trained = run("gap50", 50.0);
  EXPECT_GT(logged_only, 0.0);
  EXPECT_LT(trained, 0.5 * logged_only) << "trained " << trained << " vs logged only " << logged_only;

  auto bad = tiny_options(fresh_dir("bad_sparse"), 1);
  bad.sparse_mode = "dense";
  EXPECT_THROW(train::run_training(bad), ParameterError);
  bad.sparse_mode = "no-such-mode";
  EXPECT_THROW(train::run_training(bad), ParameterError);
  bad.sparse_mode = "radial";
  bad.sparse_weight = -1.0;
  EXPECT_THROW(train::run_training(bad), ParameterError);
  bad.sparse_weight = 1.0;
  bad.sparse_params = {"keep_ratio"};  // no value
  EXPECT_THROW(train::run_training(bad), ParameterError);
  bad.sparse_params = {};
  bad.distill_mode = "radial";  // one or the other
  EXPECT_THROW(train::run_training(bad), ParameterError);
  bad.distill_mode.clear();
  bad.sparse_mode.clear();
  bad.sparse_params = {"keep_ratio=0.2"};  // parameters of no mode
  EXPECT_THROW(train::run_training(bad), ParameterError);
  longshot::remove_tree(bad.out_dir);
}

}  // namespace

// Previews go through the sampling loop (sampler::sample): each preview prompt gets a contact
// sheet, the same weights and seed give the same sheet, and a different step count another one.
TEST(Trainer, PreviewsRunTheSamplingLoop) {
  const auto sheet = [](const std::string& dir, int preview_steps) {
    train::TrainOptions o = tiny_options(dir, 1);
    o.preview_every = 1;
    o.preview_steps = preview_steps;
    EXPECT_EQ(train::run_training(o), 1);
    std::ifstream in(dir + "/preview_1_0.ppm", std::ios::binary);
    EXPECT_TRUE(in.good()) << "no preview written in " << dir;
    EXPECT_TRUE(fs::exists(dir + "/preview_1_1.ppm"));
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  const std::string a = sheet(fresh_dir("preview_a"), 2), b = sheet(fresh_dir("preview_b"), 2);
  ASSERT_GT(a.size(), 4u * 16 * 16 * 3 / 4);  // P6 header + one 16x16 frame per 4 video frames at least
  EXPECT_EQ(a.rfind("P6\n", 0), 0u);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, sheet(fresh_dir("preview_c"), 3));
}
