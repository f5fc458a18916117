// The model room against damaged and missing weights (issue 27's probe F3, F9, F10): NaN/Inf
// tensors are refused by name, a damaged built-in file leaves its config whole (the error names
// the file), a missing built-in file is an error naming every folder looked in — never noise.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>

#include "engine/common/error.h"
#include "engine/io/safetensors.h"
#include "engine/model/builtin_model.h"
#include "engine/model/weights.h"
#include "tests/common/temp_dir.h"

using namespace longshot;
using namespace longshot::model;
namespace fs = std::filesystem;

namespace {

struct TempDir : longshot::testing::TempDir {
  TempDir() : longshot::testing::TempDir("longshot_model_hardening") {}
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// Sets an environment variable for one scope.
struct ScopedEnv {
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (had_) ::setenv(name_, old_.c_str(), 1);
    else ::unsetenv(name_);
  }
  const char* name_;
  std::string old_;
  bool had_ = false;
};

// The config table reads the built-in weights' paths once; a test that replaced them (or ran the
// table's first lookup under a changed environment) puts the shipped ones back for the next tests.
void restore_builtin_configs() {
  register_config(builtin_config(kBuiltinName));
  register_config(builtin_config(kBuiltinSparseName));
}

}  // namespace

TEST(ModelHardening, NonFiniteWeightsAreRefusedByName) {
  TempDir d;
  WanDiT m(find_config("tiny"));
  m->init_random(1);
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    std::map<std::string, torch::Tensor> tensors;
    for (const auto& p : m->named_parameters()) tensors[p.key()] = p.value().detach().clone();
    tensors["head.head.weight"].view(-1)[3] = bad;
    io::write_safetensors(d.file("nan.safetensors"), tensors, {{"longshot.config", "tiny"}});
    const auto msg = error_of([&] { load_model(d.file("nan.safetensors")); });
    EXPECT_NE(msg.find("head.head.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("NaN or infinite"), std::string::npos) << msg;
  }
}

// F3: the catch in builtin_config carried on with a config already moved away ("a config needs a
// name"); now the config stays whole and loading the damaged file names it.
TEST(ModelHardening, DamagedBuiltinWeightsKeepTheConfigAndNameTheFile) {
  TempDir d;
  std::ofstream(d.file("zero.safetensors")).flush();  // 0 bytes
  {
    ScopedEnv env("LONGSHOT_BUILTIN_WEIGHTS", d.file("zero.safetensors"));
    DiTConfig c;
    ASSERT_NO_THROW(c = builtin_config(kBuiltinName));
    EXPECT_EQ(c.name, kBuiltinName);
    EXPECT_EQ(c.default_weights, d.file("zero.safetensors"));
    const auto msg = error_of([&] {
      register_config(c);
      load_model(kBuiltinName);
    });
    EXPECT_NE(msg.find("zero.safetensors"), std::string::npos) << msg;
    EXPECT_NE(msg.find("too short"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("needs a name"), std::string::npos) << msg;
  }
  restore_builtin_configs();
}

// F10: with the weights nowhere, loading the built-in model is an error that names every folder
// looked in; it never falls back to random weights.
TEST(ModelHardening, MissingBuiltinWeightsAreAnErrorNamingEveryFolder) {
  TempDir d;
  {
    ScopedEnv assets("LONGSHOT_ASSETS", d.path.string());
    ScopedEnv no_source("LONGSHOT_NO_SOURCE_ASSETS", "1");
    const DiTConfig c = builtin_config(kBuiltinName);
    EXPECT_FALSE(fs::exists(c.default_weights)) << c.default_weights;
    register_config(c);
    const auto msg = error_of([&] { load_model(kBuiltinName); });
    EXPECT_NE(msg.find("not found"), std::string::npos) << msg;
    EXPECT_NE(msg.find(d.path.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find("share/longshot"), std::string::npos) << msg;
    EXPECT_NE(msg.find("LONGSHOT_ASSETS"), std::string::npos) << msg;
    // The text encoder alone is just as strict.
    const auto text = error_of([&] { c.text_encoder(c); });
    EXPECT_NE(text.find("-text.safetensors"), std::string::npos) << text;
    // Random weights only when the config names no file (asked for by name).
    DiTConfig random = c;
    random.default_weights.clear();
    EXPECT_NO_THROW(random.text_encoder(random));
  }
  restore_builtin_configs();
}
