// The text encoder's weight files: one safetensors file, a sharded set behind a Hugging Face
// `*.safetensors.index.json`, a folder holding either, or a `torch.save` zip archive (.pth).
// Text room: knows file formats and tensor names, not the encoder's maths, no pipeline, no UI.
//
// Own reader, not io::SafetensorsFile: umT5 checkpoints come in fp8 (ComfyUI's e4m3fn files),
// which LibTorch 1.13 has no dtype for; fp8 tensors load as raw bytes (kByte) plus their dtype tag.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

namespace longshot::text {

enum class WeightDtype { F32, F16, BF16, F8_E4M3, F8_E5M2, I64, I32, U8 };
const char* to_string(WeightDtype dtype);
bool is_float8(WeightDtype dtype);
bool is_floating(WeightDtype dtype);  // F32, F16, BF16 and both fp8 kinds

struct StoredTensor {
  std::string name, file;  // file: the shard (or archive) holding it, for messages
  WeightDtype dtype = WeightDtype::F32;
  std::vector<int64_t> shape;
  int64_t numel() const;
};

class Checkpoint {
 public:
  // `path`: a .safetensors file; a `*.safetensors.index.json`; a folder with `model.safetensors`,
  // a `*.safetensors.index.json` or exactly one `*.safetensors`; or a .pth/.pt/.bin zip archive
  // written by torch.save (a dict of tensors). Validates every header before returning; throws
  // IoError naming the file (and tensor) for: missing file or shard, truncated file, bad header,
  // unsupported dtype, data outside the file, a tensor in two shards, a tensor the index names but
  // its shard lacks, a legacy (non-zip) pickle (with the python line that converts it).
  explicit Checkpoint(const std::string& path);
  ~Checkpoint();
  Checkpoint(const Checkpoint&) = delete;
  Checkpoint& operator=(const Checkpoint&) = delete;

  const std::string& path() const { return path_; }
  std::vector<std::string> files() const;  // every file read, in order
  uint64_t file_bytes() const;
  // Identity for caches: each file's absolute path, size and modification time.
  std::string identity() const;
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  // IoError naming the tensor and path() when absent.
  const StoredTensor& info(const std::string& name) const;
  // A CPU tensor owning its data in the stored dtype; fp8 comes as kByte (the raw bits).
  torch::Tensor load(const std::string& name) const;

 private:
  struct Mapped;
  void add_safetensors(const std::string& file);
  void add_archive(const std::string& file);

  std::string path_;
  std::vector<std::unique_ptr<Mapped>> maps_;
  std::map<std::string, StoredTensor> tensors_;
  std::map<std::string, std::pair<size_t, std::pair<uint64_t, uint64_t>>> where_;  // name → map, byte range
  std::map<std::string, torch::Tensor> archive_;  // tensors read from a .pth archive
};

// What Checkpoint::identity() would say, from file names and stat() alone (no parsing): a folder
// or shard index counts every *.safetensors / *.json file beside it. For cache keys.
std::string checkpoint_identity(const std::string& path);

// Writes tensors (float, fp8 as kByte with an F8 tag in `fp8_names`, int64, int32, uint8) as one
// safetensors file; for tests and the embedding cache's siblings. Throws IoError when unwritable.
void write_checkpoint_safetensors(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                                  const std::map<std::string, WeightDtype>& fp8_names = {});

}  // namespace longshot::text
