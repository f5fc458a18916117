// Replays a fuzz target over files (a corpus folder or single files) without libFuzzer, so the
// GCC build and CI run every seed and every past crasher under ASan + UBSan as a regression test.
// Usage: longshot_fuzz_replay TARGET PATH...   (TARGET: safetensors | json | mask_trace | preset | recipe | mp4;
//        longshot_fuzz_replay_tokenizer tokenizer PATH..., built apart: it must not link LibTorch)
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

// The targets' LLVMFuzzerTestOneInput, renamed per file by fuzz/CMakeLists.txt. Weak: each replay
// executable links only some of them (the others are null).
#define LONGSHOT_FUZZ_TARGET(name) extern "C" __attribute__((weak)) int name(const uint8_t* data, size_t size);
LONGSHOT_FUZZ_TARGET(fuzz_safetensors_one)
LONGSHOT_FUZZ_TARGET(fuzz_json_one)
LONGSHOT_FUZZ_TARGET(fuzz_mask_trace_one)
LONGSHOT_FUZZ_TARGET(fuzz_preset_one)
LONGSHOT_FUZZ_TARGET(fuzz_recipe_one)
LONGSHOT_FUZZ_TARGET(fuzz_mp4_one)
LONGSHOT_FUZZ_TARGET(fuzz_tokenizer_one)

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s safetensors|json|mask_trace|preset|recipe|mp4|tokenizer PATH...\n", argv[0]);
    return 2;
  }
  const std::string target = argv[1];
  using Target = int (*)(const uint8_t*, size_t);
  const std::map<std::string, Target> targets = {{"safetensors", &fuzz_safetensors_one},
                                                 {"json", &fuzz_json_one},
                                                 {"mask_trace", &fuzz_mask_trace_one},
                                                 {"preset", &fuzz_preset_one},
                                                 {"recipe", &fuzz_recipe_one},
                                                 {"mp4", &fuzz_mp4_one},
                                                 {"tokenizer", &fuzz_tokenizer_one}};
  const auto found = targets.find(target);
  const Target run = found == targets.end() ? nullptr : found->second;
  if (!run) {
    std::fprintf(stderr, "unknown target '%s' (or not built into %s)\n", argv[1], argv[0]);
    return 2;
  }
  std::vector<std::filesystem::path> files;
  for (int i = 2; i < argc; ++i) {
    if (std::filesystem::is_directory(argv[i])) {
      for (const auto& e : std::filesystem::recursive_directory_iterator(argv[i]))
        if (e.is_regular_file() && e.path().extension() != ".md") files.push_back(e.path());
    } else {
      files.emplace_back(argv[i]);
    }
  }
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    run(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  }
  std::printf("%s: %zu inputs, no finding\n", target.c_str(), files.size());
  return files.empty() ? 1 : 0;
}
