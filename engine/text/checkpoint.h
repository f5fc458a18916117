// The text encoder's weight files: one safetensors file, a sharded set behind a Hugging Face
// `*.safetensors.index.json`, a folder holding either, or a `torch.save` zip archive (.pth).
// Text room: knows file formats and tensor names, not the encoder's maths, no pipeline, no UI.
//
// Safetensors through io::SafetensorsSet with every stored dtype accepted: umT5 checkpoints come
// in fp8 (ComfyUI's e4m3fn files), which LibTorch 1.13 has no dtype for; fp8 tensors load as raw
// bytes (kByte) plus their dtype tag. The .pth reader is checkpoint_pth.cpp.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "engine/io/safetensors.h"

namespace longshot::text {

// The stored dtypes are engine/io's (one table for both readers).
using WeightDtype = io::StDtype;
using io::is_float8;
using io::is_floating;
using io::to_string;

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
  void add_archive(const std::string& file);  // checkpoint_pth.cpp

  std::string path_;
  std::vector<std::string> files_;
  std::unique_ptr<io::SafetensorsSet> safetensors_;  // null for a .pth archive
  std::map<std::string, StoredTensor> tensors_;
  std::map<std::string, torch::Tensor> archive_;  // tensors read from a .pth archive
};

// What Checkpoint::identity() would say, from file names and stat() alone (no parsing): a folder
// or shard index counts every *.safetensors / *.json file beside it. For cache keys.
std::string checkpoint_identity(const std::string& path);

// Writes tensors (float, fp8 as kByte with an F8 tag in `fp8_names`, int64, int32, uint8) as one
// safetensors file; for tests and the embedding cache's siblings. Throws IoError when unwritable.
inline void write_checkpoint_safetensors(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                                         const std::map<std::string, WeightDtype>& fp8_names = {}) {
  io::write_safetensors_raw(path, tensors, fp8_names);
}

}  // namespace longshot::text
