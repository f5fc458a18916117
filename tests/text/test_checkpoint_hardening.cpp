// The umT5 checkpoint reader against the hostile files of the reliability probe
// (tests/fixtures/hardening): it reads safetensors through engine/io's reader with every stored
// dtype accepted (fp8 bytes, integers), and must keep its guards — a clear IoError, never a stack
// overflow.
#include <gtest/gtest.h>

#include "engine/common/error.h"
#include "engine/text/checkpoint.h"

using namespace longshot;

namespace {
const std::string kDir = std::string(LONGSHOT_SOURCE_DIR) + "/tests/fixtures/hardening/";

std::string error_of(const std::string& path) {
  try {
    text::Checkpoint c(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(CheckpointHardening, DeeplyNestedShapeIsRefusedNotACrash) {
  const auto msg = error_of(kDir + "deep_shape_min.safetensors");
  EXPECT_NE(msg.find("nests deeper"), std::string::npos) << msg;
  EXPECT_NE(msg.find("deep_shape_min.safetensors"), std::string::npos) << msg;
}

TEST(CheckpointHardening, WrappingShapeIsRefused) {
  // shape [2^62] F32 with a 0-byte span: numel × 4 must not wrap to 0 and pass.
  const auto msg = error_of(kDir + "accepted_wrap_min.safetensors");
  EXPECT_FALSE(msg.empty()) << "a 2^62-element tensor with no bytes was accepted";
}
