// Safetensors files, our own reader and writer: an 8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets}}, then the raw data. The reader mmaps the file and
// validates the whole header before any tensor is used. IO room: no model, no pipeline.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

namespace longshot::io {

// The stored dtypes read. Models' weights are float (F32, F16, BF16); the text encoder's files also
// carry fp8 (ComfyUI's e4m3fn umT5, which LibTorch 1.13 has no dtype for: loaded as raw bits,
// kByte) and integer tensors.
enum class StDtype { F32, F16, BF16, F8_E4M3, F8_E5M2, I64, I32, U8 };
const char* to_string(StDtype dtype);
size_t element_size(StDtype dtype);
bool is_float8(StDtype dtype);
bool is_floating(StDtype dtype);  // F32, F16, BF16 and both fp8 kinds
// The stored dtype of a LibTorch tensor (kByte is U8); false for a type safetensors here lacks.
bool stored_dtype(torch::ScalarType type, StDtype& out);

// Which stored dtypes a reader accepts: the float ones (any other is an IoError naming the
// tensor), or all of StDtype (the text encoder's checkpoints).
enum class DtypeSet { Float, All };

struct TensorInfo {
  std::string name;
  StDtype dtype = StDtype::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets into the data section
};

class SafetensorsFile {
 public:
  // Maps and validates; throws IoError naming the file (and the tensor, where one is at fault):
  // short file, header length beyond the file, malformed JSON, unsupported dtype, bad shape,
  // offsets outside the data section, a size that does not match dtype × shape, overlapping data.
  explicit SafetensorsFile(const std::string& path, DtypeSet accept = DtypeSet::Float);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  // Throws IoError naming the tensor when absent.
  const TensorInfo& info(const std::string& name) const;
  // A CPU tensor owning a copy of the data, converted to `dtype` (default: the stored dtype; fp8
  // comes as kByte bits, and converting it is an IoError naming the tensor).
  torch::Tensor load(const std::string& name, c10::optional<torch::ScalarType> dtype = c10::nullopt) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::string path_;
  void* map_ = nullptr;
  size_t size_ = 0;
  const uint8_t* data_ = nullptr;  // start of the data section
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// One logical checkpoint over one file or several shards (the Hugging Face convention for large
// models: `*.safetensors.index.json` whose "weight_map" names each tensor's shard file, resolved
// next to the index). Lookups go to the shard that holds the tensor; metadata is the first shard's.
class SafetensorsSet {
 public:
  // A `.safetensors` file or an index `.json`. Throws IoError naming the index, a missing or
  // malformed shard, a tensor the index names but its shard lacks, or a tensor found in two shards.
  explicit SafetensorsSet(const std::string& path, DtypeSet accept = DtypeSet::Float);
  // Shard files given directly (no index): every tensor must live in exactly one of them.
  explicit SafetensorsSet(const std::vector<std::string>& files, DtypeSet accept = DtypeSet::Float);

  const std::string& path() const { return path_; }  // the file or index, for messages
  std::vector<std::string> files() const;            // every shard, in order
  uint64_t file_bytes() const;                       // size on disk of all shards
  std::vector<std::string> names() const;            // sorted
  bool contains(const std::string& name) const { return where_.count(name) != 0; }
  // The shard holding `name`; IoError naming the tensor and path() when absent.
  const SafetensorsFile& shard(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const { return shard(name).info(name); }
  torch::Tensor load(const std::string& name, c10::optional<torch::ScalarType> dtype = c10::nullopt) const {
    return shard(name).load(name, dtype);
  }
  const std::map<std::string, std::string>& metadata() const;

 private:
  void add(const std::string& file);
  std::string path_;
  DtypeSet accept_ = DtypeSet::Float;
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::map<std::string, size_t> where_;  // tensor → index into shards_
};

// True for a Hugging Face shard index (`...safetensors.index.json`).
bool is_safetensors_index(const std::string& path);

// Writes CPU-convertible F32/F16/BF16 tensors (other dtypes: ShapeError naming the tensor) to a
// temporary file in the same folder, then renames it over `path`. Unwritable path → IoError.
void write_safetensors(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});
// The same for every StDtype: float, int64, int32 and uint8 tensors, and fp8 bit patterns (uint8
// tensors named in `fp8_names` with their F8 tag). Another dtype → ShapeError naming the tensor.
void write_safetensors_raw(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                           const std::map<std::string, StDtype>& fp8_names = {});

}  // namespace longshot::io
