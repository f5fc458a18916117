// Safetensors reader (mmap + validation) and writer (temporary file + rename).
#include "engine/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "engine/common/error.h"
#include "engine/io/atomic_file.h"
#include "engine/io/file_checks.h"

namespace longshot::io {

namespace {

// A header beyond this is not a tensor index but a corrupt length field.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;
// A real header nests three levels ({name: {shape: [...]}}); far deeper is hostile input.
constexpr size_t kMaxHeaderDepth = 16;
// Elements per tensor: 2^60 keeps numel × element size (≤ 4) below 2^64, so the span check
// cannot wrap.
constexpr uint64_t kMaxElements = uint64_t(1) << 60;

struct DtypeEntry {
  StDtype dtype;
  const char* name;
  size_t bytes;
  torch::ScalarType torch;  // fp8 bit patterns load as kByte
};
constexpr DtypeEntry kDtypes[] = {
    {StDtype::F32, "F32", 4, torch::kFloat},         {StDtype::F16, "F16", 2, torch::kHalf},
    {StDtype::BF16, "BF16", 2, torch::kBFloat16},    {StDtype::F8_E4M3, "F8_E4M3", 1, torch::kByte},
    {StDtype::F8_E5M2, "F8_E5M2", 1, torch::kByte},  {StDtype::I64, "I64", 8, torch::kLong},
    {StDtype::I32, "I32", 4, torch::kInt},           {StDtype::U8, "U8", 1, torch::kByte},
};

const DtypeEntry& entry(StDtype d) {
  for (const auto& e : kDtypes)
    if (e.dtype == d) return e;
  return kDtypes[0];  // unreachable: every StDtype has an entry
}

torch::ScalarType torch_dtype(StDtype d) { return entry(d).torch; }

bool parse_dtype(const std::string& s, DtypeSet accept, StDtype& out) {
  for (const auto& e : kDtypes)
    if (s == e.name && (accept == DtypeSet::All || e.dtype == StDtype::F32 || e.dtype == StDtype::F16 ||
                        e.dtype == StDtype::BF16)) {
      out = e.dtype;
      return true;
    }
  return false;
}

const char* accepted_list(DtypeSet accept) {
  return accept == DtypeSet::All ? "F32, F16, BF16, F8_E4M3, F8_E5M2, I64, I32, U8" : "F32, F16, BF16";
}

}  // namespace

const char* to_string(StDtype dtype) { return entry(dtype).name; }

size_t element_size(StDtype dtype) { return entry(dtype).bytes; }

bool is_float8(StDtype d) { return d == StDtype::F8_E4M3 || d == StDtype::F8_E5M2; }

bool is_floating(StDtype d) { return d == StDtype::F32 || d == StDtype::F16 || d == StDtype::BF16 || is_float8(d); }

bool stored_dtype(torch::ScalarType type, StDtype& out) {
  for (const auto& e : kDtypes)
    if (e.torch == type && !is_float8(e.dtype)) {
      out = e.dtype;
      return true;
    }
  return false;
}

SafetensorsFile::SafetensorsFile(const std::string& path, DtypeSet accept) : path_(path) {
  const std::string where = "safetensors file '" + path + "'";
  // O_NONBLOCK: a FIFO would block open() until a writer comes; it is refused just below.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw IoError("cannot open " + where + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw IoError(where + " is not a regular file");
  }
  size_ = size_t(st.st_size);
  if (size_ < 8) {
    ::close(fd);
    throw IoError(where + " is truncated: too short (" + std::to_string(size_) + " bytes) to hold a header length");
  }
  map_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    throw IoError("cannot map " + where + ": " + std::strerror(errno));
  }
  try {
    const auto* bytes = static_cast<const uint8_t*>(map_);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
    if (header_len > size_ - 8 || header_len > kMaxHeaderBytes)
      throw IoError(where + ": header length " + std::to_string(header_len) + " exceeds the file size " +
                    std::to_string(size_) + " (truncated or corrupt)");
    data_ = bytes + 8 + header_len;
    const uint64_t data_size = size_ - 8 - header_len;
    const auto* text = reinterpret_cast<const char*>(bytes + 8);
    if (json_nesting_depth(text, text + header_len, kMaxHeaderDepth) > kMaxHeaderDepth)
      throw IoError(where + ": header nests deeper than " + std::to_string(kMaxHeaderDepth) +
                    " levels; not a tensor index");
    nlohmann::json header;
    try {
      header = nlohmann::json::parse(bytes + 8, bytes + 8 + header_len);
    } catch (const nlohmann::json::exception& e) {
      throw IoError(where + ": header is not valid JSON (" + e.what() + ")");
    }
    if (!header.is_object()) throw IoError(where + ": header is not a JSON object");
    for (auto it = header.begin(); it != header.end(); ++it) {
      const std::string& name = it.key();
      const auto& v = it.value();
      if (name == "__metadata__") {
        if (!v.is_object()) throw IoError(where + ": __metadata__ is not an object");
        for (auto m = v.begin(); m != v.end(); ++m)
          if (m.value().is_string()) metadata_[m.key()] = m.value().get<std::string>();
        continue;
      }
      const std::string t = where + ": tensor '" + name + "'";
      if (!v.is_object()) throw IoError(t + " has no {dtype, shape, data_offsets} entry");
      TensorInfo info;
      info.name = name;
      if (!v.contains("dtype") || !v["dtype"].is_string()) throw IoError(t + " has no dtype");
      if (!parse_dtype(v["dtype"].get<std::string>(), accept, info.dtype))
        throw IoError(t + " has unsupported dtype " + v["dtype"].get<std::string>() + " (" + accepted_list(accept) +
                      " are read)");
      if (!v.contains("shape") || !v["shape"].is_array()) throw IoError(t + " has no shape");
      uint64_t numel = 1;
      for (const auto& d : v["shape"]) {
        if (!d.is_number_integer() || d.get<int64_t>() < 0) throw IoError(t + " has a malformed shape " + json_brief(v["shape"]));
        info.shape.push_back(d.get<int64_t>());
        const uint64_t dim = uint64_t(info.shape.back());
        if (dim != 0 && numel > kMaxElements / dim) throw IoError(t + " has an absurd shape " + json_brief(v["shape"]));
        numel *= dim;
      }
      const auto& off = v.contains("data_offsets") ? v["data_offsets"] : nlohmann::json();
      if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
        throw IoError(t + " has malformed data_offsets");
      info.begin = off[0].get<uint64_t>();
      info.end = off[1].get<uint64_t>();
      if (info.begin > info.end || info.end > data_size)
        throw IoError(t + " has data_offsets [" + std::to_string(info.begin) + ", " + std::to_string(info.end) +
                      "] outside the data section of " + std::to_string(data_size) +
                      " bytes: the file is truncated or corrupt");
      if (info.end - info.begin != numel * element_size(info.dtype))
        throw IoError(t + " holds " + std::to_string(info.end - info.begin) + " bytes but " + to_string(info.dtype) +
                      " " + json_brief(v["shape"]) + " needs " + std::to_string(numel * element_size(info.dtype)));
      tensors_[name] = std::move(info);
    }
    std::vector<const TensorInfo*> order;
    for (const auto& kv : tensors_) order.push_back(&kv.second);
    std::sort(order.begin(), order.end(), [](const TensorInfo* a, const TensorInfo* b) { return a->begin < b->begin; });
    const TensorInfo* reach = nullptr;  // the tensor whose data ends furthest so far
    for (const auto* t : order) {
      if (t->end == t->begin) continue;
      if (reach && t->begin < reach->end)
        throw IoError(where + ": tensor '" + t->name + "' overlaps tensor '" + reach->name + "'");
      if (!reach || t->end > reach->end) reach = t;
    }
  } catch (...) {
    ::munmap(map_, size_);
    map_ = nullptr;
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, size_);
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  for (const auto& kv : tensors_) out.push_back(kv.first);
  return out;
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end()) throw IoError("safetensors file '" + path_ + "' has no tensor '" + name + "'");
  return it->second;
}

torch::Tensor SafetensorsFile::load(const std::string& name, c10::optional<torch::ScalarType> dtype) const {
  const auto& i = info(name);
  if (dtype && is_float8(i.dtype) && *dtype != torch::kByte)
    throw IoError("safetensors file '" + path_ + "': tensor '" + name + "' is stored as " + to_string(i.dtype) +
                  " bits, which this reader does not convert to " + c10::toString(*dtype));
  auto t = torch::empty(i.shape, torch::TensorOptions().dtype(torch_dtype(i.dtype)));
  if (i.end > i.begin) std::memcpy(t.data_ptr(), data_ + i.begin, i.end - i.begin);
  if (dtype && *dtype != t.scalar_type()) t = t.to(*dtype);
  return t;
}

// ---- SafetensorsSet ---------------------------------------------------------------------------

bool is_safetensors_index(const std::string& path) {
  const std::string suffix = ".json";
  return path.size() > suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void SafetensorsSet::add(const std::string& file) {
  shards_.push_back(std::make_unique<SafetensorsFile>(file, accept_));
  const size_t index = shards_.size() - 1;
  for (const auto& name : shards_.back()->names()) {
    const auto [it, fresh] = where_.emplace(name, index);
    if (!fresh)
      throw IoError("checkpoint '" + path_ + "': tensor '" + name + "' is in both '" + shards_[it->second]->path() +
                    "' and '" + file + "'");
  }
}

SafetensorsSet::SafetensorsSet(const std::string& path, DtypeSet accept) : path_(path), accept_(accept) {
  if (!is_safetensors_index(path)) {
    add(path);
    return;
  }
  require_regular_file(path, "shard index");
  std::ifstream in(path);
  if (!in) throw IoError("cannot open shard index '" + path + "'");
  nlohmann::json index;
  try {
    index = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw IoError("shard index '" + path + "' is not valid JSON (" + e.what() + ")");
  }
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    throw IoError("shard index '" + path + "' has no \"weight_map\" object");
  const auto folder = std::filesystem::path(path).parent_path();
  std::map<std::string, std::string> wanted;  // tensor → shard file name
  std::vector<std::string> order;             // shard files in first-mention order
  for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
    if (!it.value().is_string()) throw IoError("shard index '" + path + "': tensor '" + it.key() + "' maps to no file name");
    const std::string file = it.value().get<std::string>();
    // A name longer than NAME_MAX (255) made std::filesystem throw its own error (fuzz_json); a NUL
    // would open a shorter name than the one checked.
    if (file.find('/') != std::string::npos || file == ".." || file == "." || file.empty() || file.size() > 255 ||
        file.find('\0') != std::string::npos)
      throw IoError("shard index '" + path + "': tensor '" + it.key().substr(0, 200) + "' maps to '" + file.substr(0, 80) +
                    (file.size() > 80 ? "…" : "") + "', which is not a file name next to the index");
    wanted[it.key()] = file;
    if (std::find(order.begin(), order.end(), file) == order.end()) order.push_back(file);
  }
  if (order.empty()) throw IoError("shard index '" + path + "' maps no tensors");
  for (const auto& file : order) {
    const auto full = (folder / file).string();
    std::error_code ec;
    if (!std::filesystem::exists(full, ec)) throw IoError("shard index '" + path + "' names shard '" + file + "', which does not exist (a missing shard)");
    add(full);
  }
  for (const auto& [name, file] : wanted) {
    const auto it = where_.find(name);
    if (it == where_.end())
      throw IoError("shard index '" + path + "': tensor '" + name + "' is not in its shard '" + file + "'");
    if (std::filesystem::path(shards_[it->second]->path()).filename() != file)
      throw IoError("shard index '" + path + "': tensor '" + name + "' is in '" + shards_[it->second]->path() +
                    "', the index says '" + file + "'");
  }
}

SafetensorsSet::SafetensorsSet(const std::vector<std::string>& files, DtypeSet accept) : accept_(accept) {
  if (files.empty()) throw IoError("checkpoint: no safetensors files given");
  path_ = files.front();
  for (const auto& f : files) add(f);
}

std::vector<std::string> SafetensorsSet::files() const {
  std::vector<std::string> out;
  for (const auto& s : shards_) out.push_back(s->path());
  return out;
}

uint64_t SafetensorsSet::file_bytes() const {
  uint64_t total = 0;
  for (const auto& s : shards_) {
    std::error_code ec;
    const auto n = std::filesystem::file_size(s->path(), ec);
    if (!ec) total += n;
  }
  return total;
}

std::vector<std::string> SafetensorsSet::names() const {
  std::vector<std::string> out;
  for (const auto& kv : where_) out.push_back(kv.first);
  return out;
}

const SafetensorsFile& SafetensorsSet::shard(const std::string& name) const {
  const auto it = where_.find(name);
  if (it == where_.end()) throw IoError("checkpoint '" + path_ + "' has no tensor '" + name + "'");
  return *shards_[it->second];
}

const std::map<std::string, std::string>& SafetensorsSet::metadata() const { return shards_.front()->metadata(); }

// ---- writer ------------------------------------------------------------------------------------

namespace {

struct Blob {
  StDtype dtype;
  torch::Tensor data;  // contiguous, on the CPU
};

void write_blobs(const std::string& path, const std::map<std::string, Blob>& blobs,
                 const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, blob] : blobs) {
    const uint64_t bytes = uint64_t(blob.data.numel()) * element_size(blob.dtype);
    header[name] = {{"dtype", to_string(blob.dtype)}, {"shape", blob.data.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps the data section 8-byte aligned
  TempFile tmp(path);
  std::FILE* f = std::fopen(tmp.path().c_str(), "wb");
  if (!f) throw IoError("cannot write '" + path + "': " + std::strerror(errno));
  uint8_t len[8];
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(n >> (8 * i));
  bool ok = std::fwrite(len, 1, 8, f) == 8 && std::fwrite(text.data(), 1, text.size(), f) == text.size();
  for (const auto& kv : blobs) {
    const auto& b = kv.second.data;
    const size_t bytes = size_t(b.numel()) * b.element_size();
    if (ok && bytes) ok = std::fwrite(b.data_ptr(), 1, bytes, f) == bytes;
  }
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) throw IoError("cannot write '" + path + "': write failed (disk full?)");
  tmp.commit();
}

void check_storable(const std::string& name, const torch::Tensor& tensor) {
  if (name.empty() || name == "__metadata__") throw ShapeError("tensor name '" + name + "' cannot be stored");
  if (!tensor.defined()) throw ShapeError("tensor '" + name + "' is undefined");
}

}  // namespace

void write_safetensors(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::map<std::string, Blob> blobs;
  for (const auto& [name, tensor] : tensors) {
    check_storable(name, tensor);
    StDtype d;
    if (!stored_dtype(tensor.scalar_type(), d) || !is_floating(d))
      throw ShapeError("tensor '" + name + "' has dtype " + std::string(c10::toString(tensor.scalar_type())) +
                       "; safetensors export supports F32, F16, BF16");
    blobs[name] = {d, tensor.detach().to(torch::kCPU).contiguous()};
  }
  write_blobs(path, blobs, metadata);
}

void write_safetensors_raw(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                           const std::map<std::string, StDtype>& fp8_names) {
  std::map<std::string, Blob> blobs;
  for (const auto& [name, tensor] : tensors) {
    check_storable(name, tensor);
    StDtype d;
    const auto f8 = fp8_names.find(name);
    if (f8 != fp8_names.end()) {
      if (tensor.scalar_type() != torch::kByte) throw ShapeError("tensor '" + name + "': fp8 bits must be uint8");
      d = f8->second;
    } else if (!stored_dtype(tensor.scalar_type(), d)) {
      throw ShapeError("tensor '" + name + "': dtype " + std::string(c10::toString(tensor.scalar_type())) +
                       " cannot be written");
    }
    blobs[name] = {d, tensor.detach().to(torch::kCPU).contiguous()};
  }
  write_blobs(path, blobs, {});
}

}  // namespace longshot::io
