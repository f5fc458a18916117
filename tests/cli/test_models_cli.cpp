// Model folders through the real `longshot` binary: a tiny Wan model written in each layout
// generates an MP4 on the CPU whose recipe ffprobe (and our reader) sees; `--from` re-runs it to the
// same frames; `longshot models` lists the search path; bad folders and sizes fail with no file.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>

#include "engine/io/mp4.h"
#include "engine/pipeline/recipe.h"
#include "tests/common/temp_dir.h"
#include "tests/common/tiny_model_folder.h"
#include "engine/common/remove_tree.h"

using namespace longshot;
using namespace longshot::testing;

namespace {

struct Dir : TempDir {
  Dir() : TempDir("longshot_models_cli") {}
};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs the CLI with `env` (NAME=value ...) in front; stdout/stderr to files; the exit status.
int run_cli(const Dir& d, const std::vector<std::string>& args, const std::string& env = "") {
  std::string cmd = "LONGSHOT_THREADS=1 LONGSHOT_CACHE_DIR='" + d.file("cache") + "' " + env + " '" + LONGSHOT_CLI_PATH + "'";
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += " >'" + d.file("out.txt") + "' 2>'" + d.file("err.txt") + "'";
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

std::vector<std::string> small_job(const std::string& out) {
  return {"--prompt", "a cat walks along the beach", "--negative", "blurry", "--frames", "5", "--size", "32x32",
          "--steps", "2", "--seed", "5", "--out", out};
}

std::vector<std::string> join(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

bool have_ffprobe() { return std::system("command -v ffprobe >/dev/null 2>&1") == 0; }

}  // namespace

TEST(ModelsCli, EachLayoutGeneratesAnMp4WithItsRecipe) {
  Dir d;
  if (tiny_spiece().empty()) GTEST_SKIP() << "spm_train is not installed (packaging/setup.sh installs it)";
  for (const auto layout : {TinyLayout::Diffusers, TinyLayout::WanRelease, TinyLayout::Split}) {
    const std::string name = layout == TinyLayout::Diffusers ? "diffusers" : layout == TinyLayout::WanRelease ? "release" : "split";
    SCOPED_TRACE(name);
    const auto f = write_tiny_model(d.file(name), layout);
    std::vector<std::string> model_args =
        layout == TinyLayout::Split
            ? std::vector<std::string>{"--dit", f.dit, "--text-encoder", f.text_encoder, "--vae", f.vae, "--tokenizer", f.tokenizer}
            : std::vector<std::string>{"--model", f.root};
    const auto out = d.file(name + ".mp4");
    ASSERT_EQ(run_cli(d, join(join({"generate"}, model_args), small_job(out))), 0) << slurp(d.file("err.txt"));
    const auto summary = slurp(d.file("out.txt"));
    EXPECT_NE(summary.find("peak memory     n/a (CPU)"), std::string::npos) << summary;
    Video v;
    const auto info = io::read_mp4(out, &v);
    EXPECT_EQ(info.frames, 5);
    EXPECT_EQ(info.width, 32);
    EXPECT_EQ(info.height, 32);
    const auto recipe = pipeline::request_from_recipe(info.metadata.at(pipeline::kRecipeTag));
    EXPECT_EQ(recipe.prompt, "a cat walks along the beach");
    EXPECT_EQ(recipe.negative_prompt, "blurry");
    EXPECT_EQ(recipe.seed, 5u);
    EXPECT_EQ(recipe.steps, 2);
    EXPECT_EQ(recipe.sampler, "unipc");  // a Wan model's default
    if (layout == TinyLayout::Split) EXPECT_EQ(recipe.vae_file, f.vae);
    else EXPECT_EQ(recipe.model, f.root);
  }
}

TEST(ModelsCli, FfprobeReadsTheRecipe) {
  if (!have_ffprobe()) GTEST_SKIP() << "ffprobe is not installed (packaging/setup.sh installs ffmpeg)";
  Dir d;
  ASSERT_EQ(run_cli(d, {"generate", "--model", "tiny", "--prompt", "a red ball", "--frames", "4", "--size", "16x16",
                        "--steps", "1", "--seed", "77", "--mode", "radial", "--out", d.file("a.mp4")}),
            0)
      << slurp(d.file("err.txt"));
  const std::string cmd = "ffprobe -v error -show_entries format_tags=longshot_recipe,title,comment -of "
                          "default=noprint_wrappers=1 '" + d.file("a.mp4") + "' > '" + d.file("probe.txt") + "' 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << slurp(d.file("probe.txt"));
  const auto probe = slurp(d.file("probe.txt"));
  EXPECT_NE(probe.find("TAG:title=a red ball"), std::string::npos) << probe;
  EXPECT_NE(probe.find("TAG:comment=made by Longshot"), std::string::npos) << probe;
  const auto at = probe.find("TAG:longshot_recipe=");
  ASSERT_NE(at, std::string::npos) << probe;
  const auto line = probe.substr(at + 20, probe.find('\n', at) - at - 20);
  const auto r = pipeline::request_from_recipe(line);
  EXPECT_EQ(r.seed, 77u);
  EXPECT_EQ(r.model, "tiny");
  EXPECT_EQ(r.attention.mode, "radial");
  EXPECT_EQ(r.frames, 4);
}

TEST(ModelsCli, FromReRunsTheRecipe) {
  Dir d;
  if (tiny_spiece().empty()) GTEST_SKIP() << "spm_train is not installed (packaging/setup.sh installs it)";
  const auto f = write_tiny_model(d.file("wan"), TinyLayout::Diffusers);
  ASSERT_EQ(run_cli(d, join({"generate", "--model", f.root}, small_job(d.file("a.mp4")))), 0) << slurp(d.file("err.txt"));
  ASSERT_EQ(run_cli(d, {"generate", "--from", d.file("a.mp4"), "--out", d.file("b.mp4")}), 0) << slurp(d.file("err.txt"));
  ASSERT_EQ(run_cli(d, {"generate", "--from", d.file("a.mp4"), "--seed", "9", "--out", d.file("c.mp4")}), 0)
      << slurp(d.file("err.txt"));
  Video a, b, c;
  io::read_mp4(d.file("a.mp4"), &a);
  const auto info_b = io::read_mp4(d.file("b.mp4"), &b);
  const auto info_c = io::read_mp4(d.file("c.mp4"), &c);
  ASSERT_EQ(a.frames, 5);
  EXPECT_EQ(a.rgb, b.rgb);  // same recipe, same seed: the same frames
  EXPECT_NE(a.rgb, c.rgb);  // the flag beside --from changed the seed
  EXPECT_EQ(pipeline::request_from_recipe(info_b.metadata.at(pipeline::kRecipeTag)).seed, 5u);
  EXPECT_EQ(pipeline::request_from_recipe(info_c.metadata.at(pipeline::kRecipeTag)).seed, 9u);
  // A file without a recipe is refused, naming it.
  std::ofstream(d.file("plain.mp4")) << "not a video";
  EXPECT_EQ(run_cli(d, {"generate", "--from", d.file("plain.mp4")}), 1);
  EXPECT_NE(slurp(d.file("err.txt")).find(d.file("plain.mp4")), std::string::npos) << slurp(d.file("err.txt"));
}

TEST(ModelsCli, ModelsListsTheSearchPath) {
  Dir d;
  write_tiny_model(d.file("models/wan-tiny"), TinyLayout::WanRelease);
  const auto partial = write_tiny_model(d.file("models/partial"), TinyLayout::Diffusers);
  longshot::remove_tree(partial.root + "/vae");
  fs::create_directories(d.file("models/notes"));
  const std::string env = "LONGSHOT_MODELS='" + d.file("models") + "' XDG_DATA_HOME='" + d.file("xdg") + "'";
  ASSERT_EQ(run_cli(d, {"models"}, env), 0) << slurp(d.file("err.txt"));
  const auto out = slurp(d.file("out.txt"));
  EXPECT_NE(out.find("3 models found on the search path"), std::string::npos) << out;
  EXPECT_NE(out.find("wan-tiny\n  path     " + d.file("models/wan-tiny") + "\n  layout   wan2.1-release"), std::string::npos) << out;
  EXPECT_NE(out.find("DiT      wan-tiny (dim 128, 2 layers, 2 heads, text_dim 16)"), std::string::npos) << out;
  EXPECT_NE(out.find("partial\n  path     " + d.file("models/partial") + "\n  layout   diffusers"), std::string::npos) << out;
  EXPECT_NE(out.find("missing  VAE (expected vae/diffusion_pytorch_model.safetensors)"), std::string::npos) << out;
  EXPECT_NE(out.find("notes\n  path     " + d.file("models/notes") + "\n  unusable"), std::string::npos) << out;
  EXPECT_NE(out.find(d.file("xdg") + "/longshot/models  (does not exist)"), std::string::npos) << out;
  // --model NAME finds the folder on the search path; the folder missing its VAE fails naming it.
  if (!tiny_spiece().empty()) {
    ASSERT_EQ(run_cli(d, join({"generate", "--model", "wan-tiny"}, small_job(d.file("n.mp4"))), env), 0)
        << slurp(d.file("err.txt"));
    EXPECT_EQ(run_cli(d, join({"generate", "--model", "partial"}, small_job(d.file("p.mp4"))), env), 1);
    EXPECT_NE(slurp(d.file("err.txt")).find("is missing: VAE"), std::string::npos) << slurp(d.file("err.txt"));
    EXPECT_FALSE(fs::exists(d.file("p.mp4")));
  }
}

TEST(ModelsCli, BadInputFailsClearlyAndWritesNothing) {
  Dir d;
  const auto f = write_tiny_model(d.file("wan"), TinyLayout::Diffusers);
  if (f.tokenizer.empty()) GTEST_SKIP() << "spm_train is not installed (packaging/setup.sh installs it)";
  auto expect_refused = [&](std::vector<std::string> args, const std::string& what) {
    const auto out = d.file("bad.mp4");
    args.push_back("--out");
    args.push_back(out);
    EXPECT_EQ(run_cli(d, args), 1) << what;
    const auto err = slurp(d.file("err.txt"));
    EXPECT_NE(err.find(what), std::string::npos) << err;
    EXPECT_FALSE(fs::exists(out)) << what;
  };
  const std::vector<std::string> base = {"generate", "--model", f.root, "--prompt", "x", "--steps", "1"};
  expect_refused(join(base, {"--frames", "6", "--size", "32x32"}), "invalid parameter 'frames': model wan needs 1 + 4k frames, got 6");
  expect_refused(join(base, {"--frames", "5", "--size", "40x32"}), "invalid parameter 'width': must be a multiple of 16");
  expect_refused(join(base, {"--frames", "5", "--size", "32x24"}), "invalid parameter 'height': must be a multiple of 16");
  // Mismatched components: a text encoder of another width beside the folder.
  write_umt5(d.file("wide/umt5.safetensors"), false, 24);
  expect_refused(join(base, {"--frames", "5", "--size", "32x32", "--text-encoder", d.file("wide/umt5.safetensors")}),
                 "gives 24-wide embeddings, but the DiT");
  // A folder missing two components names both.
  longshot::remove_tree(f.root + "/vae");
  longshot::remove_tree(f.root + "/text_encoder");
  expect_refused(join(base, {"--frames", "5", "--size", "32x32"}), "text encoder (expected text_encoder/model.safetensors");
  EXPECT_NE(slurp(d.file("err.txt")).find("VAE (expected vae/"), std::string::npos);
}
