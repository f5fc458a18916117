// Issue 27, F13: a checkpoint's "step" metadata is read strictly on resume — "-5" resumed at step
// −5, "1e3" at step 1, "abc" died with "unexpected error: stoll"; each is now an IoError naming
// the file and the value.
#include <gtest/gtest.h>

#include <filesystem>

#include "app/train/trainer.h"
#include "engine/common/error.h"
#include "engine/io/safetensors.h"
#include "engine/common/remove_tree.h"

using namespace longshot;
namespace fs = std::filesystem;

TEST(TrainerResume, StepMetadataIsParsedStrictly) {
  const auto dir = (fs::temp_directory_path() / "longshot_train_step_metadata").string();
  longshot::remove_tree(dir);
  train::TrainOptions o;
  o.out_dir = dir;
  o.steps = 1;
  o.batch = 1;
  o.frames = 4;
  o.size = 16;
  o.device = "cpu";
  o.preview_every = 0;
  o.log_every = 1;
  o.warmup = 1;
  o.threads = 1;
  ASSERT_EQ(train::run_training(o), 1);
  const std::string model = dir + "/model.safetensors";
  std::map<std::string, torch::Tensor> tensors;
  std::map<std::string, std::string> meta;
  {
    io::SafetensorsFile f(model);
    for (const auto& n : f.names()) tensors[n] = f.load(n);
    meta = f.metadata();
  }
  for (const char* bad : {"-5", "1e3", "abc", "12 ", "99999999999999999999"}) {
    meta["step"] = bad;
    io::write_safetensors(model, tensors, meta);
    o.steps = 2;
    try {
      train::run_training(o);
      FAIL() << "step metadata '" << bad << "' must be refused";
    } catch (const IoError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("model.safetensors"), std::string::npos) << msg;
      EXPECT_NE(msg.find(std::string("'") + bad + "'"), std::string::npos) << msg;
    }
  }
  longshot::remove_tree(dir);
}

// Issue 27, F14 for longshot-train: a stop request (its SIGINT/SIGTERM/SIGHUP guard) ends the run
// between steps like the time limit does, with a checkpoint stamped with the step reached.
TEST(TrainerResume, StopRequestSavesAResumableCheckpoint) {
  const auto dir = (fs::temp_directory_path() / "longshot_train_stop").string();
  longshot::remove_tree(dir);
  train::TrainOptions o;
  o.out_dir = dir;
  o.steps = 1000;
  o.batch = 1;
  o.frames = 4;
  o.size = 16;
  o.device = "cpu";
  o.preview_every = 0;
  o.log_every = 1;
  o.warmup = 1;
  o.threads = 1;
  int asked = 0;
  o.should_stop = [&] { return ++asked > 2; };
  const int64_t step = train::run_training(o);
  EXPECT_GT(step, 0);
  EXPECT_LT(step, 10);
  EXPECT_EQ(io::SafetensorsFile(dir + "/model.safetensors").metadata().at("step"), std::to_string(step));
  o.should_stop = nullptr;
  o.steps = step + 1;
  EXPECT_EQ(train::run_training(o), step + 1);  // resumes from the stop
  longshot::remove_tree(dir);
}
