// `longshot generate` running out of memory mid-job (issue 27's fault injection): a real host
// allocation failure, the tiny model's noise at 8192x8192 x 4096 frames (3.3 TB), after the model
// is loaded. Exit 1, one line naming what ran out, where and what to try (no LibTorch backtrace),
// and nothing at --out or --trace, no staging file. The GPU case is tests/gpu/oom_cli.sh.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/common/temp_dir.h"

namespace fs = std::filesystem;

namespace {

struct Run {
  int rc = -1;
  std::string err;
};

// Runs `prefix` (shell: ulimit, env settings), then the CLI with args (none needs quoting); stderr kept.
Run run(const std::string& prefix, const std::vector<std::string>& args, const std::string& logs) {
  std::string cmd = prefix + " '" + LONGSHOT_CLI_PATH + "'";
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += " >'" + logs + "/out.txt' 2>'" + logs + "/err.txt'";  // std::system's sh runs it
  const int rc = std::system(cmd.c_str());
  std::stringstream err;
  err << std::ifstream(logs + "/err.txt").rdbuf();
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, err.str()};
}

// An allocation of 3.3 TB must fail at once, not reach the kernel's overcommit (which may grant
// it, and the OOM killer end the test): an address-space limit does that; under a sanitizer (whose
// runtime cannot start under one) its allocator refuses anything past 1 TB, told to return null.
std::string memory_limit() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}allocator_may_return_null=1 "
         "TSAN_OPTIONS=${TSAN_OPTIONS:+$TSAN_OPTIONS:}allocator_may_return_null=1 exec timeout -s KILL 120";
#else
  return "ulimit -v 6000000; exec timeout -s KILL 120";
#endif
}

}  // namespace

TEST(OomCli, HostOutOfMemoryMidJobIsOneClearErrorAndNoFile) {
  longshot::testing::TempDir logs("longshot_cli_oom_logs"), d("longshot_cli_oom");
  const std::vector<std::string> job = {"generate", "--model", "tiny", "--prompt", "a red ball", "--steps", "2",
                                        "--out", d.file("c.mp4"), "--trace", d.file("c.lstrace")};
  auto big = job;
  big.insert(big.end(), {"--frames", "4096", "--size", "8192x8192"});
  const auto r = run(memory_limit(), big, logs.path.string());
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find("longshot generate: error: out of memory during noise preparation at 8192x8192, 4096 frames: "),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("; try a smaller --size or --frames, or more free memory (or a higher ulimit -v)\n"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find("frame #"), std::string::npos) << r.err;  // no LibTorch backtrace
  EXPECT_TRUE(fs::is_empty(d.path)) << "left in the output folder: " << fs::directory_iterator(d.path)->path();
  // The control: the same command at a small size writes both files.
  auto small = job;
  small.insert(small.end(), {"--frames", "4", "--size", "16x16"});
  const auto ok = run(memory_limit(), small, logs.path.string());
  EXPECT_EQ(ok.rc, 0) << ok.err;
  EXPECT_TRUE(fs::exists(d.file("c.mp4")));
  EXPECT_TRUE(fs::exists(d.file("c.lstrace")));
}
