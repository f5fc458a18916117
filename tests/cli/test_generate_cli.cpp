// `longshot generate` end to end: the MP4 decodes back (frame count, size), the trace loads, the
// PNG frames exist; Ctrl-C mid-run exits 130 and leaves no file; bad flags and paths fail clearly.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/common/temp_dir.h"
#include "engine/attention/mask_trace.h"
#include "engine/io/mp4.h"

using namespace longshot;
namespace fs = std::filesystem;

namespace {

struct TempDir : longshot::testing::TempDir {
  TempDir() : longshot::testing::TempDir("longshot_cli") {}
};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs the CLI with args; stdout/stderr captured into files; returns the exit status.
int run_cli(const std::vector<std::string>& args, const std::string& out, const std::string& err) {
  std::string cmd = std::string("'") + LONGSHOT_CLI_PATH + "'";
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += " >'" + out + "' 2>'" + err + "'";
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

}  // namespace

TEST(GenerateCli, WritesMp4TraceAndPngs) {
  TempDir d;
  const int rc = run_cli({"generate", "--model", "tiny", "--prompt", "a red ball", "--frames", "8", "--size", "32x32",
                          "--steps", "2", "--seed", "3", "--mode", "radial", "--param", "keep_ratio=0.4", "--block",
                          "64", "--out", d.file("clip.mp4"), "--trace", d.file("run.lstrace"), "--png-dir",
                          d.file("png")},
                         d.file("out.txt"), d.file("err.txt"));
  ASSERT_EQ(rc, 0) << slurp(d.file("err.txt"));
  const auto info = io::read_mp4(d.file("clip.mp4"));
  EXPECT_EQ(info.frames, 8);
  EXPECT_EQ(info.width, 32);
  EXPECT_EQ(info.height, 32);
  const auto trace = attention::read_mask_trace(d.file("run.lstrace"));
  EXPECT_EQ(trace.grid, (attention::TokenGrid{8, 16, 16}));
  EXPECT_EQ(trace.mode, "radial");
  EXPECT_EQ(trace.block_size, 64);
  EXPECT_EQ(trace.entries.size(), 2u * 3u);  // 2 steps × 3 layers, one shared-head entry each
  for (const auto& e : trace.entries) EXPECT_GT(e.sparsity, 0.2);
  size_t pngs = 0;
  for (auto& e : fs::directory_iterator(d.file("png"))) pngs += e.path().extension() == ".png";
  EXPECT_EQ(pngs, 8u);
  const auto summary = slurp(d.file("out.txt"));
  EXPECT_NE(summary.find("mean sparsity"), std::string::npos) << summary;
  EXPECT_NE(summary.find("attention"), std::string::npos) << summary;
  EXPECT_NE(slurp(d.file("err.txt")).find("step 2/2"), std::string::npos);
}

TEST(GenerateCli, SameSeedSameFile) {
  TempDir d;
  for (const char* name : {"a.mp4", "b.mp4"})
    ASSERT_EQ(run_cli({"generate", "--prompt", "x", "--frames", "4", "--size", "16x16", "--steps", "2", "--out", d.file(name)},
                      d.file("o"), d.file("e")),
              0)
        << slurp(d.file("e"));
  Video a, b;
  io::read_mp4(d.file("a.mp4"), &a);
  io::read_mp4(d.file("b.mp4"), &b);
  EXPECT_EQ(a.rgb, b.rgb);
}

TEST(GenerateCli, InterruptLeavesNoFile) {
  TempDir d;
  const std::string err = d.file("err.txt");
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::freopen(err.c_str(), "w", stderr);
    std::freopen("/dev/null", "w", stdout);
    ::execl(LONGSHOT_CLI_PATH, LONGSHOT_CLI_PATH, "generate", "--prompt", "long", "--frames", "8", "--size", "32x32",
            "--steps", "1000", "--out", d.file("clip.mp4").c_str(), "--trace", d.file("t.lstrace").c_str(), nullptr);
    ::_exit(127);
  }
  // Wait until the first step is done, then press Ctrl-C.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (slurp(err).find("step 1/1000") == std::string::npos && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ::kill(pid, SIGINT);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130) << slurp(err);
  EXPECT_NE(slurp(err).find("cancelled"), std::string::npos);
  for (auto& e : fs::directory_iterator(d.path)) EXPECT_EQ(e.path().filename(), "err.txt") << "left behind: " << e.path();
}

TEST(GenerateCli, UsageAndPathErrors) {
  TempDir d;
  EXPECT_EQ(run_cli({"generate", "--frames", "4"}, d.file("o"), d.file("e")), 2);  // no prompt
  EXPECT_EQ(run_cli({"generate", "--prompt", "x", "--bogus", "1"}, d.file("o"), d.file("e")), 2);
  EXPECT_EQ(run_cli({"generate", "--prompt", "x", "--out", "/nonexistent-dir/c.mp4"}, d.file("o"), d.file("e")), 1);
  EXPECT_NE(slurp(d.file("e")).find("/nonexistent-dir/c.mp4"), std::string::npos) << slurp(d.file("e"));
  EXPECT_EQ(run_cli({"generate", "--prompt", "x", "--mode", "nope"}, d.file("o"), d.file("e")), 1);
  EXPECT_NE(slurp(d.file("e")).find("nope"), std::string::npos);
  EXPECT_EQ(run_cli({"generate", "--prompt", "x", "--size", "15x16"}, d.file("o"), d.file("e")), 1);
  EXPECT_NE(slurp(d.file("e")).find("width"), std::string::npos) << slurp(d.file("e"));
}

// --sampler and --schedule reach the job (the start line names the sampler), the model's own
// sampler is the default, the samplers give different videos, unknown names fail naming the flag.
TEST(GenerateCli, SamplerFlags) {
  TempDir d;
  const auto run = [&](std::vector<std::string> extra, const std::string& out) {
    std::vector<std::string> args = {"generate", "--model", "tiny", "--prompt", "a red ball", "--frames", "4", "--size",
                                     "16x16", "--steps", "3", "--out", d.file(out)};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_cli(args, d.file("o"), d.file("e"));
  };
  ASSERT_EQ(run({}, "euler.mp4"), 0) << slurp(d.file("e"));
  EXPECT_NE(slurp(d.file("e")).find("3 euler steps"), std::string::npos) << slurp(d.file("e"));  // tiny's default
  ASSERT_EQ(run({"--sampler", "unipc"}, "unipc.mp4"), 0) << slurp(d.file("e"));
  EXPECT_NE(slurp(d.file("e")).find("3 unipc steps"), std::string::npos) << slurp(d.file("e"));
  ASSERT_EQ(run({"--sampler", "dpm++2m", "--schedule", "wan"}, "dpm.mp4"), 0) << slurp(d.file("e"));
  EXPECT_NE(slurp(d.file("e")).find("3 dpm++2m steps"), std::string::npos) << slurp(d.file("e"));
  Video euler, unipc;
  io::read_mp4(d.file("euler.mp4"), &euler);
  io::read_mp4(d.file("unipc.mp4"), &unipc);
  EXPECT_NE(euler.rgb, unipc.rgb);
  EXPECT_EQ(run({"--sampler", "ddim"}, "bad.mp4"), 1);
  EXPECT_NE(slurp(d.file("e")).find("'sampler'"), std::string::npos) << slurp(d.file("e"));
  EXPECT_NE(slurp(d.file("e")).find("unipc, euler, dpm++2m"), std::string::npos) << slurp(d.file("e"));
  EXPECT_EQ(run({"--schedule", "karras"}, "bad.mp4"), 1);
  EXPECT_NE(slurp(d.file("e")).find("'schedule'"), std::string::npos) << slurp(d.file("e"));
  EXPECT_FALSE(fs::exists(d.file("bad.mp4")));
}

// `longshot eval` on the built-in model at a toy size: one table with a dense and a sparse row
// (PSNR against dense only on the sparse one), the sampling settings in its header; impossible
// sampling settings fail naming the flag.
TEST(EvalCli, PrintsTheTableWithItsSamplingSettings) {
  TempDir d;
  const int rc = run_cli({"eval", "--modes", "radial", "--horizons", "1", "--seeds", "1", "--steps", "2", "--frames",
                          "8", "--size", "32", "--guidance", "1.5", "--shift", "2"},
                         d.file("out.txt"), d.file("err.txt"));
  ASSERT_EQ(rc, 0) << slurp(d.file("err.txt"));
  const std::string out = slurp(d.file("out.txt"));
  EXPECT_NE(out.find("2 steps, guidance 1.5, shift 2,"), std::string::npos) << out;
  EXPECT_NE(out.find("| dense | 1x | 8 | 0.0 |"), std::string::npos) << out;
  EXPECT_NE(out.find("| world (reference) | 1x | 8 | — | — |"), std::string::npos) << out;
  const auto radial = out.find("| radial | 1x | 8 |");
  ASSERT_NE(radial, std::string::npos) << out;
  EXPECT_EQ(out.find("—", radial), std::string::npos) << "the sparse row has its PSNR/SSIM against dense: " << out;

  // The loop score column: a number for clips of 6+ frames.
  EXPECT_NE(out.find("| loop score |"), std::string::npos) << out;

  EXPECT_NE(out.find("sampler euler (auto grid)"), std::string::npos) << out;  // the built-in model's

  for (const auto& bad : std::vector<std::vector<std::string>>{
           {"--guidance", "0.5"}, {"--shift", "-1"}, {"--sampler", "ddim"}, {"--schedule", "karras"}}) {
    // Toy settings, so a flag that slipped through would fail fast, not run the default table.
    std::vector<std::string> args = {"eval", "--modes", "radial", "--seeds", "1", "--horizons", "1",
                                     "--steps", "1", "--frames", "8", "--size", "32"};
    args.insert(args.end(), bad.begin(), bad.end());
    EXPECT_EQ(run_cli(args, d.file("out2.txt"), d.file("err2.txt")), 1) << bad[0];
    EXPECT_NE(slurp(d.file("err2.txt")).find(bad[0]), std::string::npos) << slurp(d.file("err2.txt"));
  }
}

// Preset rows: each preset's attention under the command's own sampling settings.
TEST(EvalCli, PresetRows) {
  TempDir d;
  const int rc = run_cli({"eval", "--modes", "dense", "--presets", "lvsa-wan,dfsattn-wan", "--horizons", "1", "--seeds",
                          "1", "--steps", "2", "--frames", "8", "--size", "32"},
                         d.file("out.txt"), d.file("err.txt"));
  ASSERT_EQ(rc, 0) << slurp(d.file("err.txt"));
  const std::string out = slurp(d.file("out.txt"));
  // lvsa at 8 frames is below the built-in model's 16-frame horizon: dense, 0 % sparse.
  EXPECT_NE(out.find("| preset:lvsa-wan | 1x | 8 | 0.0 |"), std::string::npos) << out;
  EXPECT_NE(out.find("| preset:dfsattn-wan | 1x | 8 |"), std::string::npos) << out;
  EXPECT_EQ(run_cli({"eval", "--presets", "nope", "--seeds", "1"}, d.file("out2.txt"), d.file("err2.txt")), 1);
  EXPECT_NE(slurp(d.file("err2.txt")).find("lvsa-wan"), std::string::npos) << slurp(d.file("err2.txt"));
}
