// `longshot generate` against hostile inputs, destinations and signals (issue 27's probe): every
// case checks the message, the exit code and that no partial or temporary file is left.
// Installed.*: the CLI installed with `cmake --install --component cli` into a temporary prefix
// finds its built-in weights there, with the source tree's assets out of reach, and its video
// shows the prompt (the adherence metric); with the weights removed it names every place looked in.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <thread>

#include "engine/eval/metrics.h"
#include "engine/io/mp4.h"
#include "engine/io/safetensors.h"
#include "engine/model/builtin_model.h"
#include "engine/model/weights.h"
#include "tests/common/temp_dir.h"
#include "engine/common/remove_tree.h"

using namespace longshot;
namespace fs = std::filesystem;

namespace {

struct TempDir : longshot::testing::TempDir {
  TempDir() : longshot::testing::TempDir("longshot_cli_hardening") {}
};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string quote(const std::string& s) {
  std::string q = "'";
  for (const char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

struct Run {
  int rc = -1;
  std::string err;
};

// Runs `prefix` (shell: env settings, ulimit...) then the CLI with args; stderr captured.
Run run(const std::vector<std::string>& args, const std::string& dir, const std::string& prefix = "",
        const std::string& cli = LONGSHOT_CLI_PATH) {
  std::string cmd = prefix + " " + quote(cli);
  for (const auto& a : args) cmd += " " + quote(a);
  cmd = "sh -c " + quote(cmd + " >" + quote(dir + "/out.txt") + " 2>" + quote(dir + "/err.txt"));
  const int rc = std::system(cmd.c_str());
  Run r;
  r.rc = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  r.err = slurp(dir + "/err.txt");
  fs::remove(dir + "/out.txt");
  fs::remove(dir + "/err.txt");
  return r;
}

std::vector<std::string> tiny_args(const std::vector<std::string>& extra) {
  std::vector<std::string> a = {"generate", "--model", "tiny", "--prompt", "a red ball", "--frames", "4",
                                "--size", "16x16", "--steps", "2"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

// The names in `dir` besides `keep` (leftovers: outputs, *.tmp-*, staging folders).
std::vector<std::string> leftovers(const fs::path& dir, const std::set<std::string>& keep = {}) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (!keep.count(e.path().filename().string())) out.push_back(e.path().filename().string());
  return out;
}

std::string tiny_checkpoint(const TempDir& d) {
  model::WanDiT m(model::find_config("tiny"));
  m->init_random(3);
  model::save_weights(*m, d.file("tiny.safetensors"));
  return d.file("tiny.safetensors");
}

std::string hash_of(const std::string& path) { return std::to_string(std::hash<std::string>{}(slurp(path))); }

}  // namespace

// F1 through the CLI: the probe's 100k-deep shape crashed generate (SIGSEGV).
TEST(HardeningCli, DeepShapeCheckpointIsAnError) {
  TempDir d;
  const auto r = run(tiny_args({"--model", std::string(LONGSHOT_SOURCE_DIR) +
                                               "/tests/fixtures/hardening/deep_shape_min.safetensors",
                                "--out", d.file("c.mp4")}),
                     d.path.string());
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find("nests deeper"), std::string::npos) << r.err;
  EXPECT_TRUE(leftovers(d.path).empty());
}

// F4: a FIFO as the model blocked open() forever.
TEST(HardeningCli, FifoModelIsRefusedAtOnce) {
  TempDir d;
  ASSERT_EQ(::mkfifo(d.file("w.safetensors").c_str(), 0600), 0);
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = run(tiny_args({"--model", d.file("w.safetensors")}), d.path.string(), "timeout 60");
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find("not a regular file"), std::string::npos) << r.err;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(30));
  // A dangling symbolic link said "unknown model config".
  fs::create_symlink(d.file("gone.safetensors"), d.file("link.safetensors"));
  const auto dangling = run(tiny_args({"--model", d.file("link.safetensors")}), d.path.string());
  EXPECT_EQ(dangling.rc, 1) << dangling.err;
  EXPECT_NE(dangling.err.find("symbolic link"), std::string::npos) << dangling.err;
}

// F6: an output equal to the weights overwrote them; --out X --trace X lost the MP4.
TEST(HardeningCli, OutputsThatAreInputsOrEachOtherAreRefused) {
  TempDir d;
  const auto weights = tiny_checkpoint(d);
  const auto before = hash_of(weights);
  for (const char* flag : {"--out", "--trace"}) {
    const auto r = run(tiny_args({"--model", weights, flag, weights}), d.path.string());
    EXPECT_EQ(r.rc, 1) << r.err;
    EXPECT_NE(r.err.find("destroy the input"), std::string::npos) << r.err;
  }
  EXPECT_EQ(hash_of(weights), before);
  const auto r = run(tiny_args({"--out", d.file("x"), "--trace", d.file("x")}), d.path.string());
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find("--out and --trace"), std::string::npos) << r.err;
  EXPECT_EQ(leftovers(d.path), std::vector<std::string>{"tiny.safetensors"});
}

// F7: a device node or FIFO at the destination was replaced by a regular file.
TEST(HardeningCli, NonRegularDestinationsAreRefused) {
  TempDir d;
  ASSERT_EQ(::mkfifo(d.file("pipe").c_str(), 0600), 0);
  for (const char* flag : {"--out", "--trace"}) {
    const auto r = run(tiny_args({flag, d.file("pipe")}), d.path.string(), "timeout 60");
    EXPECT_EQ(r.rc, 1) << r.err;
    EXPECT_NE(r.err.find("FIFO"), std::string::npos) << r.err;
  }
  const auto r = run(tiny_args({"--out", "/dev/null"}), d.path.string());
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find("character device"), std::string::npos) << r.err;
  struct stat st {};
  ASSERT_EQ(::stat("/dev/null", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  ASSERT_EQ(::stat(d.file("pipe").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(leftovers(d.path), std::vector<std::string>{"pipe"});
  const auto empty = run(tiny_args({"--out", ""}), d.path.string());
  EXPECT_EQ(empty.rc, 1) << empty.err;
  EXPECT_NE(empty.err.find("'out'"), std::string::npos) << empty.err;
}

// F8: --trace run.lstrace removed the user's own run.lstrace.tmp.
TEST(HardeningCli, TraceLeavesTheUsersTmpFileAlone) {
  TempDir d;
  std::ofstream(d.file("run.lstrace.tmp")) << "mine";
  const auto r = run(tiny_args({"--trace", d.file("run.lstrace")}), d.path.string());
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(slurp(d.file("run.lstrace.tmp")), "mine");
  EXPECT_EQ(leftovers(d.path, {"run.lstrace", "run.lstrace.tmp"}), std::vector<std::string>{});
}

// F9: NaN weights gave an all-black MP4 with exit 0.
TEST(HardeningCli, NanWeightsFailLoudly) {
  TempDir d;
  model::WanDiT m(model::find_config("tiny"));
  m->init_random(3);
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& p : m->named_parameters()) tensors[p.key()] = p.value().detach().clone();
  tensors["blocks.0.self_attn.q.weight"].fill_(std::numeric_limits<float>::quiet_NaN());
  io::write_safetensors(d.file("nan.safetensors"), tensors, {{"longshot.config", "tiny"}});
  const auto r = run(tiny_args({"--model", d.file("nan.safetensors"), "--out", d.file("c.mp4")}), d.path.string());
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find("NaN"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("blocks.0.self_attn.q.weight"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(d.file("c.mp4")));
}

// F11: 64-bit values wrapped (--frames 4294967301 → 5); --seed -1 became 2^64 − 1.
TEST(HardeningCli, IntegersThatDoNotFitAreRefused) {
  TempDir d;
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--frames", "4294967301"}, "'frames'"},       {{"--steps", "4294967297"}, "'steps'"},
      {{"--size", "4294967328x32"}, "'size'"},        {{"--seed", "-1"}, "'seed'"},
      {{"--dense-steps", "2147483648"}, "'dense-steps'"}, {{"--frames", "1e3"}, "'frames'"},
      {{"--seed", "18446744073709551616"}, "'seed'"},
  };
  for (const auto& [flags, name] : cases) {
    const auto r = run(tiny_args(flags), d.path.string());
    EXPECT_EQ(r.rc, 1) << flags[0] << " " << flags[1] << ": " << r.err;
    EXPECT_NE(r.err.find(name), std::string::npos) << r.err;
  }
  const auto big_seed = run(tiny_args({"--seed", "18446744073709551615"}), d.path.string());
  EXPECT_EQ(big_seed.rc, 0) << big_seed.err;
  for (const char* flag : {"--step", "--layer"}) {
    const auto r = run({"masks", "--mode", "dense", flag, "2147483647"}, d.path.string());
    EXPECT_EQ(r.rc, 1) << r.err;
    EXPECT_NE(r.err.find(std::string("'") + (flag + 2) + "'"), std::string::npos) << r.err;
  }
}

// calibrate's capture flags shape proxy (b) only: with the drift proxy they are an error, not
// ignored (`--device cuda` would have scored on the CPU and said nothing), and a bad device is
// named before any model loads.
TEST(HardeningCli, CalibrateCaptureFlagsNeedTheModelProxy) {
  TempDir d;
  const std::vector<std::string> base = {"calibrate", "--mode", "dynamicrad", "--out", d.file("t.json"), "--trials", "1"};
  for (const std::vector<std::string> extra : {std::vector<std::string>{"--device", "cuda"}, {"--frames", "16"}}) {
    auto args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    const auto r = run(args, d.path.string());
    EXPECT_EQ(r.rc, 1) << extra[0] << ": " << r.err;
    EXPECT_NE(r.err.find("'" + extra[0].substr(2) + "': goes with --proxy model only"), std::string::npos) << r.err;
  }
  auto args = base;
  args.insert(args.end(), {"--proxy", "model", "--device", "gpu"});
  const auto r = run(args, d.path.string());
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find("'device': must be auto, cpu or cuda, got 'gpu'"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(d.file("t.json")));
}

// F3 through the CLI: a 0-byte built-in weights file said "a config needs a name".
TEST(HardeningCli, DamagedBuiltinWeightsNameTheFile) {
  TempDir d;
  std::ofstream(d.file("w.safetensors")).flush();
  const auto r = run({"generate", "--prompt", "x", "--frames", "4", "--size", "16x16", "--steps", "1"},
                     d.path.string(), "LONGSHOT_BUILTIN_WEIGHTS=" + quote(d.file("w.safetensors")));
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find("w.safetensors"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("too short"), std::string::npos) << r.err;
}

// F10: with no built-in weights anywhere, generate said nothing and made noise; now it names every
// place it looked and writes nothing. --random-weights asks for the noise by name.
TEST(HardeningCli, MissingBuiltinWeightsAreAnError) {
  TempDir d;
  fs::create_directory(d.file("empty"));
  const std::string env = "LONGSHOT_NO_SOURCE_ASSETS=1 LONGSHOT_ASSETS=" + quote(d.file("empty"));
  const std::vector<std::string> args = {"generate", "--prompt", "x", "--frames", "4", "--size", "16x16", "--steps",
                                         "1", "--out", d.file("c.mp4")};
  const auto r = run(args, d.path.string(), env);
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find("not found"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(d.file("empty")), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("share/longshot"), std::string::npos) << r.err;
  EXPECT_EQ(leftovers(d.path), std::vector<std::string>{"empty"});
  auto random = args;
  random.push_back("--random-weights");
  const auto ok = run(random, d.path.string(), env);
  EXPECT_EQ(ok.rc, 0) << ok.err;
  EXPECT_TRUE(fs::exists(d.file("c.mp4")));
}

// F12: the shipped asset given by its path matched no config (built-ins registered by name only).
TEST(HardeningCli, BuiltinWeightsByPath) {
  TempDir d;
  const auto weights = model::builtin_weights_path();
  if (!fs::exists(weights)) GTEST_SKIP() << "no shipped weights";
  const auto r = run({"generate", "--model", weights, "--prompt", "a red ball", "--frames", "4", "--size", "16x16",
                      "--steps", "1", "--out", d.file("c.mp4")},
                     d.path.string());
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(fs::exists(d.file("c.mp4")));
}

// F14: SIGTERM / SIGHUP killed at once with no message. Now: the job cancels, exit 128 + signal.
TEST(HardeningCli, TermAndHupCancelLikeInterrupt) {
  for (const int sig : {SIGTERM, SIGHUP}) {
    TempDir d;
    const std::string err = d.file("err.txt");
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      std::freopen(err.c_str(), "w", stderr);
      std::freopen("/dev/null", "w", stdout);
      ::execl(LONGSHOT_CLI_PATH, LONGSHOT_CLI_PATH, "generate", "--model", "tiny", "--prompt", "long", "--frames", "8",
              "--size", "32x32", "--steps", "1000", "--out", d.file("clip.mp4").c_str(), "--png-dir",
              d.file("png").c_str(), nullptr);
      ::_exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (slurp(err).find("step 1/1000") == std::string::npos && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ::kill(pid, sig);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
    EXPECT_EQ(WEXITSTATUS(status), 128 + sig) << slurp(err);
    EXPECT_NE(slurp(err).find(sig == SIGTERM ? "cancelled by SIGTERM" : "cancelled by SIGHUP"), std::string::npos)
        << slurp(err);
    EXPECT_EQ(leftovers(d.path, {"err.txt"}), std::vector<std::string>{});
  }
}

// F15: a signal during the export left *.tmp files, half a PNG set or an MP4 without its trace.
// LONGSHOT_FAULT_EXPORT_PAUSE_MS holds the export after staging every output and before renaming
// them into place; the signal lands there.
TEST(HardeningCli, SignalDuringExportLeavesNothing) {
  TempDir d;
  const std::string err = d.file("err.txt");
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::freopen(err.c_str(), "w", stderr);
    std::freopen("/dev/null", "w", stdout);
    ::setenv("LONGSHOT_FAULT_EXPORT_PAUSE_MS", "20000", 1);
    ::execl(LONGSHOT_CLI_PATH, LONGSHOT_CLI_PATH, "generate", "--model", "tiny", "--prompt", "x", "--frames", "4",
            "--size", "16x16", "--steps", "2", "--out", d.file("clip.mp4").c_str(), "--trace",
            d.file("run.lstrace").c_str(), "--png-dir", d.file("png").c_str(), nullptr);
    ::_exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (slurp(err).find("export paused") == std::string::npos && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_GE(leftovers(d.path, {"err.txt"}).size(), 3u);  // the staged MP4, trace and PNG folder
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 143) << slurp(err);
  EXPECT_NE(slurp(err).find("during the export; no file written"), std::string::npos) << slurp(err);
  EXPECT_EQ(leftovers(d.path, {"err.txt"}), std::vector<std::string>{});
}

// ulimit -f: SIGXFSZ killed the process mid-write and left temporaries; now the write fails
// (EFBIG), the error names the file, and nothing is left.
TEST(HardeningCli, FileSizeLimitFailsCleanly) {
  TempDir d;
  const auto r = run(tiny_args({"--size", "32x32", "--out", d.file("c.mp4"), "--png-dir", d.file("png")}),
                     d.path.string(), "ulimit -f 2;");
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find("cannot write"), std::string::npos) << r.err;
  EXPECT_EQ(leftovers(d.path), std::vector<std::string>{});
}

// F5: under a low address-space limit Debian's OpenBLAS spun forever in blas_memory_alloc (deaf to
// Ctrl-C) on the first matrix product. Now the job fails at once with an error naming the limit;
// the KILL timeout turns a regression into a failure, not a hung CI. A generous limit still works.
TEST(HardeningCli, LowAddressSpaceLimitIsAnErrorNotAHang) {
  TempDir d;
  const auto low = run(tiny_args({"--out", d.file("c.mp4")}), d.path.string(), "ulimit -v 1000000; exec timeout -s KILL 120");
  EXPECT_EQ(low.rc, 1) << low.err;
  EXPECT_NE(low.err.find("ulimit -v"), std::string::npos) << low.err;
  EXPECT_EQ(leftovers(d.path), std::vector<std::string>{});
  const auto high = run(tiny_args({"--out", d.file("c.mp4")}), d.path.string(), "ulimit -v 6000000; exec timeout -s KILL 120");
  EXPECT_EQ(high.rc, 0) << high.err;
  EXPECT_TRUE(fs::exists(d.file("c.mp4")));
}

// F5 beyond generate: the commands that run tensor work on their main thread without a job (masks,
// eval, calibrate, encode-text, vae-*) and longshot-train check the limit before it too. Without the
// check each would reach a usage error or the hang (the KILL timeout fails it) instead of this error.
TEST(HardeningCli, LowAddressSpaceLimitStopsEveryTensorCommand) {
  TempDir d;
  const std::string low = "ulimit -v 1000000; exec timeout -s KILL 120";
  const std::vector<std::string> masks = {"masks", "--mode", "dense", "--grid", "2x4x4", "--heads", "2",
                                          "--head-dim", "16", "--block", "16", "--out", d.file("m.json")};
  const auto r = run(masks, d.path.string(), low);
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find("longshot masks: error: the address-space limit (ulimit -v 1000000 KiB)"), std::string::npos)
      << r.err;
  EXPECT_EQ(leftovers(d.path), std::vector<std::string>{});
  for (const std::string cmd : {"eval", "calibrate", "encode-text", "vae-decode", "vae-encode"}) {
    const auto c = run({cmd}, d.path.string(), low);
    EXPECT_EQ(c.rc, 1) << cmd << ": " << c.err;
    EXPECT_NE(c.err.find("longshot " + cmd + ": error: the address-space limit"), std::string::npos) << c.err;
  }
#ifdef LONGSHOT_TRAIN_PATH
  const auto t = run({"--out", d.file("run"), "--steps", "1"}, d.path.string(), low, LONGSHOT_TRAIN_PATH);
  EXPECT_EQ(t.rc, 1) << t.err;
  EXPECT_NE(t.err.find("longshot-train: error: the address-space limit"), std::string::npos) << t.err;
  EXPECT_EQ(leftovers(d.path), std::vector<std::string>{});
#endif
  const auto high = run(masks, d.path.string(), "ulimit -v 6000000; exec timeout -s KILL 120");
  EXPECT_EQ(high.rc, 0) << high.err;
  EXPECT_TRUE(fs::exists(d.file("m.json")));
}

// Disk full during the export. The probe (F7, a 48 KB tmpfs) saw --png-dir leave 2 of 4 frames.
// tests/cli/enospc_shim.cpp (LD_PRELOAD) lets `budget` bytes reach files under `disk`, then fails
// writes with ENOSPC, as a filling disk does: a short write, then the error. Each case: exit 1, the
// error names the destination (never the hidden staging name) and says "No space left on device",
// and `disk` is empty afterwards, so no MP4 without its trace or PNG set either.
namespace {

struct FullDisk {
  TempDir d;
  std::string disk;
  // Canonical: the shim compares it with the paths /proc/self/fd links to.
  FullDisk() : disk((fs::create_directory(d.file("disk")), fs::canonical(d.file("disk")).string())) {}
  std::string in(const std::string& name) const { return disk + "/" + name; }
  Run generate(const std::vector<std::string>& outputs, uint64_t budget) {
    // verify_asan_link_order=0: under the asan preset the preloaded shim comes before ASan's runtime.
    const std::string env = "LD_PRELOAD=" + quote(LONGSHOT_ENOSPC_SHIM) + " LONGSHOT_ENOSPC_DIR=" + quote(disk) +
                            " LONGSHOT_ENOSPC_BYTES=" + std::to_string(budget) +
                            " ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0";
    return run(tiny_args(outputs), d.path.string(), env);
  }
  uint64_t size(const std::string& name) const { return fs::file_size(in(name)); }
  // Removes everything in `disk` (after the control run that measured the files' sizes).
  void clear() const {
    for (const auto& e : fs::directory_iterator(disk)) longshot::remove_tree(e.path());
  }
};

void expect_clean_failure(const Run& r, const std::string& names, const FullDisk& full) {
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find("cannot write"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(names), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(".tmp-"), std::string::npos) << "names the staging file: " << r.err;
  EXPECT_EQ(leftovers(full.disk), std::vector<std::string>{});
}

}  // namespace

TEST(HardeningCli, DiskFullDuringMp4ExportFailsCleanly) {
  FullDisk full;
  const auto control = full.generate({"--out", full.in("c.mp4")}, 1u << 30);  // the shim with room to spare
  ASSERT_EQ(control.rc, 0) << control.err;
  const uint64_t mp4 = full.size("c.mp4");
  full.clear();
  for (const uint64_t budget : {uint64_t(0), mp4 / 2}) {
    SCOPED_TRACE("budget " + std::to_string(budget) + " of " + std::to_string(mp4) + " bytes");
    expect_clean_failure(full.generate({"--out", full.in("c.mp4")}, budget), "'" + full.in("c.mp4") + "'", full);
  }
}

TEST(HardeningCli, DiskFullDuringTraceExportFailsCleanly) {
  FullDisk full;
  const std::vector<std::string> outputs = {"--out", full.in("c.mp4"), "--trace", full.in("run.lstrace")};
  const auto control = full.generate(outputs, 1u << 30);
  ASSERT_EQ(control.rc, 0) << control.err;
  const uint64_t mp4 = full.size("c.mp4"), trace = full.size("run.lstrace");
  full.clear();
  // The MP4 is staged whole, then the trace fails half way: neither may appear.
  expect_clean_failure(full.generate(outputs, mp4 + trace / 2), "mask trace '" + full.in("run.lstrace") + "'", full);
}

// The probe's half PNG set: the MP4 and frames 0 and 1 fit, frame 2 fails half way.
TEST(HardeningCli, DiskFullMidPngSetLeavesNoFrames) {
  FullDisk full;
  const std::vector<std::string> outputs = {"--out", full.in("c.mp4"), "--png-dir", full.in("png")};
  const auto control = full.generate(outputs, 1u << 30);
  ASSERT_EQ(control.rc, 0) << control.err;
  ASSERT_TRUE(fs::exists(full.in("png/frame_00003.png")));
  const uint64_t budget = full.size("c.mp4") + full.size("png/frame_00000.png") + full.size("png/frame_00001.png") +
                          full.size("png/frame_00002.png") / 2;
  full.clear();
  expect_clean_failure(full.generate(outputs, budget), "'" + full.in("png/frame_00002.png") + "'", full);
}

// An installed CLI under `prefix` (bin/longshot, share/longshot) generates the built-in model's
// video with the source tree out of reach (its fallback off, cwd and HOME elsewhere), and the video
// shows the prompt: not noise. Then the same install without its weights: an error naming the
// prefix's folder, no file. (Removes the weights from `prefix`.)
static void expect_install_generates(const std::string& prefix, TempDir& d, const char* what) {
  ASSERT_TRUE(fs::exists(prefix + "/share/longshot/longshot-builtin.safetensors"));
  ASSERT_TRUE(fs::exists(prefix + "/share/longshot/longshot-builtin-text.safetensors"));
  fs::create_directories(d.file("home"));
  fs::create_directories(d.file("work"));
  const std::string env = "cd " + quote(d.file("work")) + " && env -u LONGSHOT_ASSETS -u LONGSHOT_BUILTIN_WEIGHTS HOME=" +
                          quote(d.file("home")) + " LONGSHOT_NO_SOURCE_ASSETS=1";  // LONGSHOT_THREADS inherited (CI: 1)
  const std::string prompt = "a large green square grows and shrinks on a black background";
  // 4 steps, no recall estimate: seconds on CI's 2 cores, and the object is already clear.
  const auto r = run({"generate", "--prompt", prompt, "--steps", "4", "--no-recall", "--out", "clip.mp4"},
                     d.path.string(), env, prefix + "/bin/longshot");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("model longshot-builtin"), std::string::npos) << r.err;
  Video video;
  io::read_mp4(d.file("work/clip.mp4"), &video);
  const auto a = eval::prompt_adherence(video, prompt);
  std::printf("%s: adherence %.1f%% (presence %.0f%%, size %.0f%%)\n", what, 100 * a.accuracy, 100 * a.presence,
              100 * a.size);
  EXPECT_GE(a.presence, 0.8);
  EXPECT_GE(a.accuracy, 0.5);
  fs::remove(prefix + "/share/longshot/longshot-builtin.safetensors");
  fs::remove(d.file("work/clip.mp4"));
  const auto missing = run({"generate", "--prompt", prompt, "--steps", "1", "--out", "clip.mp4"}, d.path.string(), env,
                           prefix + "/bin/longshot");
  EXPECT_EQ(missing.rc, 1) << missing.err;
  EXPECT_NE(missing.err.find(prefix + "/share/longshot"), std::string::npos) << missing.err;
  EXPECT_FALSE(fs::exists(d.file("work/clip.mp4")));
}

// cmake --install --component cli into a temporary prefix.
TEST(Installed, GeneratesTheBuiltinModelFromThePrefix) {
  if (!fs::exists(model::builtin_weights_path())) GTEST_SKIP() << "no shipped weights";
  TempDir d;
  const auto prefix = d.file("prefix");
  const std::string install = "cmake --install " + quote(LONGSHOT_BUILD_DIR) + " --prefix " + quote(prefix) +
                              " --component cli >" + quote(d.file("install.log")) + " 2>&1";
  ASSERT_EQ(std::system(install.c_str()), 0) << slurp(d.file("install.log"));
  expect_install_generates(prefix, d, "installed");
}

// The .deb itself: packaging/DebInstall (packaging/check_deb.cmake) builds it with CPack, unpacks it
// with dpkg-deb into a temporary root and, last, runs this case with LONGSHOT_DEB_ROOT set to that
// root (failing unless it passes; the case removes the weights at its end); in the plain test run,
// without the variable, it skips.
TEST(InstalledDeb, GeneratesTheBuiltinModelFromTheUnpackedPackage) {
  const char* root = std::getenv("LONGSHOT_DEB_ROOT");
  if (!root || !*root) GTEST_SKIP() << "run by packaging/DebInstall with LONGSHOT_DEB_ROOT";
  ASSERT_TRUE(fs::exists(std::string(root) + "/usr/bin/longshot")) << root;
  TempDir d;
  expect_install_generates(std::string(root) + "/usr", d, "installed .deb");
}
