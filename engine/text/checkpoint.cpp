// Checkpoint reading: safetensors (mmap + full header validation), shard indexes, torch.save zips.
#include "engine/text/checkpoint.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <tuple>
#include <type_traits>

#include <nlohmann/json.hpp>
#include <torch/csrc/jit/serialization/import_read.h>
#include <torch/version.h>
// The zip reader lives in caffe2::serialize (LibTorch 1.13) or torch::serialize (recent 2.x):
// include whichever headers exist and take the reader type readArchiveAndTensors itself asks for.
#if __has_include(<caffe2/serialize/inline_container.h>)
#include <caffe2/serialize/inline_container.h>
#endif
#if __has_include(<torch/csrc/api/include/torch/serialize/inline_container.h>)
#include <torch/csrc/api/include/torch/serialize/inline_container.h>
#endif

#include "engine/common/error.h"
#include "engine/io/file_checks.h"

namespace longshot::text {

namespace fs = std::filesystem;

namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // beyond this the length field is corrupt

struct DtypeName {
  WeightDtype dtype;
  const char* name;
  size_t bytes;
};
constexpr DtypeName kDtypes[] = {
    {WeightDtype::F32, "F32", 4},         {WeightDtype::F16, "F16", 2},         {WeightDtype::BF16, "BF16", 2},
    {WeightDtype::F8_E4M3, "F8_E4M3", 1}, {WeightDtype::F8_E5M2, "F8_E5M2", 1}, {WeightDtype::I64, "I64", 8},
    {WeightDtype::I32, "I32", 4},         {WeightDtype::U8, "U8", 1},
};

size_t element_bytes(WeightDtype d) {
  for (const auto& e : kDtypes)
    if (e.dtype == d) return e.bytes;
  return 1;
}

torch::ScalarType torch_type(WeightDtype d) {
  switch (d) {
    case WeightDtype::F32: return torch::kFloat;
    case WeightDtype::F16: return torch::kHalf;
    case WeightDtype::BF16: return torch::kBFloat16;
    case WeightDtype::I64: return torch::kLong;
    case WeightDtype::I32: return torch::kInt;
    default: return torch::kByte;  // U8 and the fp8 bit patterns
  }
}

bool from_torch(torch::ScalarType t, WeightDtype& out) {
  switch (t) {
    case torch::kFloat: out = WeightDtype::F32; return true;
    case torch::kHalf: out = WeightDtype::F16; return true;
    case torch::kBFloat16: out = WeightDtype::BF16; return true;
    case torch::kLong: out = WeightDtype::I64; return true;
    case torch::kInt: out = WeightDtype::I32; return true;
    case torch::kByte: out = WeightDtype::U8; return true;
    default: return false;
  }
}

std::string shape_text(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// The first bytes of a file: a zip archive starts with "PK\3\4"; a legacy pickle with 0x80.
std::string head_bytes(const std::string& file, size_t n) {
  std::ifstream in(file, std::ios::binary);
  std::string s(n, '\0');
  in.read(&s[0], std::streamsize(n));
  s.resize(size_t(in.gcount()));
  return s;
}

}  // namespace

const char* to_string(WeightDtype dtype) {
  for (const auto& e : kDtypes)
    if (e.dtype == dtype) return e.name;
  return "?";
}
bool is_float8(WeightDtype d) { return d == WeightDtype::F8_E4M3 || d == WeightDtype::F8_E5M2; }
bool is_floating(WeightDtype d) {
  return d == WeightDtype::F32 || d == WeightDtype::F16 || d == WeightDtype::BF16 || is_float8(d);
}

int64_t StoredTensor::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

struct Checkpoint::Mapped {
  std::string file;
  void* map = nullptr;
  size_t size = 0;
  const uint8_t* data = nullptr;
  ~Mapped() {
    if (map) ::munmap(map, size);
  }
};

Checkpoint::Checkpoint(const std::string& path) : path_(path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw IoError("text encoder weights '" + path + "': no such file or folder");
  if (fs::is_directory(path, ec)) {
    std::vector<std::string> indexes, singles;
    for (const auto& e : fs::directory_iterator(path, ec)) {
      const auto name = e.path().filename().string();
      if (ends_with(name, ".safetensors.index.json")) indexes.push_back(e.path().string());
      else if (ends_with(name, ".safetensors")) singles.push_back(e.path().string());
    }
    std::sort(indexes.begin(), indexes.end());
    std::sort(singles.begin(), singles.end());
    const auto model = (fs::path(path) / "model.safetensors").string();
    if (fs::exists(model)) path_ = model;
    else if (indexes.size() == 1) path_ = indexes[0];
    else if (indexes.empty() && singles.size() == 1) path_ = singles[0];
    else
      throw IoError("text encoder folder '" + path + "': expected model.safetensors, one *.safetensors.index.json or one " +
                    "*.safetensors; found " + std::to_string(indexes.size()) + " indexes and " +
                    std::to_string(singles.size()) + " safetensors files");
  }
  if (ends_with(path_, ".json")) {
    std::ifstream in(path_);
    if (!in) throw IoError("shard index '" + path_ + "': cannot be read");
    nlohmann::json j;
    try {
      in >> j;
    } catch (const nlohmann::json::exception& e) {
      throw IoError("shard index '" + path_ + "': not valid JSON (" + e.what() + ")");
    }
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      throw IoError("shard index '" + path_ + "': no \"weight_map\" object");
    std::map<std::string, std::string> wanted;  // tensor → shard file name
    std::vector<std::string> shards;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it.value().is_string()) throw IoError("shard index '" + path_ + "': tensor '" + it.key() + "' maps to no file name");
      const auto shard = it.value().get<std::string>();
      if (shard.find('/') != std::string::npos || shard.find("..") != std::string::npos)
        throw IoError("shard index '" + path_ + "': tensor '" + it.key() + "' maps to '" + shard + "', not a file beside the index");
      wanted[it.key()] = shard;
      if (std::find(shards.begin(), shards.end(), shard) == shards.end()) shards.push_back(shard);
    }
    const auto dir = fs::path(path_).parent_path();
    for (const auto& s : shards) {
      const auto file = (dir / s).string();
      if (!fs::exists(file)) throw IoError("shard index '" + path_ + "': shard '" + file + "' is missing");
      add_safetensors(file);
    }
    for (const auto& [name, shard] : wanted) {
      auto it = tensors_.find(name);
      if (it == tensors_.end())
        throw IoError("shard index '" + path_ + "': tensor '" + name + "' should be in shard '" + shard + "' but no shard has it");
      if (fs::path(it->second.file).filename().string() != shard)
        throw IoError("shard index '" + path_ + "': tensor '" + name + "' is in '" + it->second.file + "', not in '" + shard + "'");
    }
  } else if (ends_with(path_, ".safetensors")) {
    add_safetensors(path_);
  } else {
    add_archive(path_);
  }
}

Checkpoint::~Checkpoint() = default;

void Checkpoint::add_safetensors(const std::string& file) {
  const std::string where = "safetensors file '" + file + "'";
  auto m = std::make_unique<Mapped>();
  m->file = file;
  const int fd = ::open(file.c_str(), O_RDONLY);
  if (fd < 0) throw IoError("cannot open " + where + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw IoError(where + " is not a regular file");
  }
  m->size = size_t(st.st_size);
  if (m->size < 8) {
    ::close(fd);
    throw IoError(where + " is truncated: " + std::to_string(m->size) + " bytes cannot hold a header length");
  }
  m->map = ::mmap(nullptr, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (m->map == MAP_FAILED) {
    m->map = nullptr;
    throw IoError("cannot map " + where + ": " + std::strerror(errno));
  }
  const auto* bytes = static_cast<const uint8_t*>(m->map);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  if (header_len > m->size - 8 || header_len > kMaxHeaderBytes)
    throw IoError(where + " is truncated or corrupt: header length " + std::to_string(header_len) +
                  " exceeds the file size " + std::to_string(m->size));
  m->data = bytes + 8 + header_len;
  const uint64_t data_size = m->size - 8 - header_len;
  // A header nested without bound would make the parser (and any dump() of it) recurse off the
  // stack (probe F1): a tensor index needs only a few levels.
  constexpr size_t kMaxHeaderDepth = 16;
  const auto* text = reinterpret_cast<const char*>(bytes + 8);
  if (io::json_nesting_depth(text, text + header_len, kMaxHeaderDepth) > kMaxHeaderDepth)
    throw IoError(where + ": header nests deeper than " + std::to_string(kMaxHeaderDepth) + " levels; not a tensor index");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes + 8, bytes + 8 + header_len);
  } catch (const nlohmann::json::exception& e) {
    throw IoError(where + ": header is not valid JSON (" + e.what() + ")");
  }
  if (!header.is_object()) throw IoError(where + ": header is not a JSON object");
  const size_t index = maps_.size();
  std::vector<std::pair<std::pair<uint64_t, uint64_t>, std::string>> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    if (name == "__metadata__") continue;
    const auto& v = it.value();
    const std::string t = where + ": tensor '" + name + "'";
    if (!v.is_object() || !v.contains("dtype") || !v["dtype"].is_string() || !v.contains("shape") || !v["shape"].is_array())
      throw IoError(t + " has no {dtype, shape, data_offsets} entry");
    StoredTensor info;
    info.name = name;
    info.file = file;
    const auto dname = v["dtype"].get<std::string>();
    bool known = false;
    for (const auto& e : kDtypes)
      if (dname == e.name) info.dtype = e.dtype, known = true;
    if (!known) throw IoError(t + " has unsupported dtype " + dname + " (F32, F16, BF16, F8_E4M3, F8_E5M2, I64, I32, U8 are read)");
    uint64_t numel = 1;
    for (const auto& d : v["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0) throw IoError(t + " has a malformed shape " + io::json_brief(v["shape"]));
      info.shape.push_back(d.get<int64_t>());
      const uint64_t dim = uint64_t(info.shape.back());
      if (dim != 0 && numel > (uint64_t(1) << 60) / dim) throw IoError(t + " has an absurd shape " + io::json_brief(v["shape"]));
      numel *= dim;
    }
    const auto& off = v.contains("data_offsets") ? v["data_offsets"] : nlohmann::json();
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw IoError(t + " has malformed data_offsets");
    const uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    if (b > e || e > data_size)
      throw IoError(t + " lies outside the file (data_offsets [" + std::to_string(b) + ", " + std::to_string(e) +
                    "], data section " + std::to_string(data_size) + " bytes): the file is truncated or corrupt");
    if (e - b != numel * element_bytes(info.dtype))
      throw IoError(t + " holds " + std::to_string(e - b) + " bytes but " + dname + " " + shape_text(info.shape) + " needs " +
                    std::to_string(numel * element_bytes(info.dtype)));
    if (tensors_.count(name))
      throw IoError(t + " is also in '" + tensors_[name].file + "': a tensor must live in exactly one shard");
    ranges.push_back({{b, e}, name});
    where_[name] = {index, {b, e}};
    tensors_[name] = std::move(info);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first.first < ranges[i - 1].first.second && ranges[i].first.first != ranges[i].first.second)
      throw IoError(where + ": tensor '" + ranges[i].second + "' overlaps tensor '" + ranges[i - 1].second + "'");
  maps_.push_back(std::move(m));
}

namespace {

template <class F>
struct ZipReaderOf;
template <class R, class... Args>
struct ZipReaderOf<R (*)(Args...)> {
  using type = std::remove_reference_t<std::tuple_element_t<6, std::tuple<Args...>>>;  // the stream_reader
};
namespace torch_zip {
using PyTorchStreamReader = ZipReaderOf<decltype(&torch::jit::readArchiveAndTensors)>::type;
}

// A small pickle machine for what torch.save writes for a state dict (protocols 2–4): dicts and
// OrderedDicts of tensors rebuilt by torch._utils._rebuild_tensor_v2 from persistent storages,
// plus the _metadata attribute (BUILD, ignored). The fallback where LibTorch's own unpickler
// refuses (1.13 turns an OrderedDict into None). Anything else is an error naming the opcode.
struct PickleValue {
  enum Kind { None, Bool, Int, Float, Str, Tuple, List, Dict, Global, Storage, Tensor, Mark } kind = None;
  int64_t i = 0;
  double f = 0;
  std::string s, s2;  // Str; Global module/name; Storage key
  std::vector<PickleValue> items;  // Tuple, List; Dict as key, value, key, value …
  torch::Tensor t;    // Storage (flat) or Tensor
};

torch::Tensor pickled_state_storage(torch_zip::PyTorchStreamReader& reader, std::map<std::string, torch::Tensor>& cache,
                                    const std::string& type, const std::string& key, int64_t numel) {
  static const std::map<std::string, torch::ScalarType> kTypes = {
      {"FloatStorage", torch::kFloat}, {"HalfStorage", torch::kHalf},  {"BFloat16Storage", torch::kBFloat16},
      {"DoubleStorage", torch::kDouble}, {"LongStorage", torch::kLong}, {"IntStorage", torch::kInt},
      {"ByteStorage", torch::kByte},   {"BoolStorage", torch::kBool}};
  auto it = kTypes.find(type);
  if (it == kTypes.end()) throw std::runtime_error("storage type torch." + type + " is not read");
  auto c = cache.find(key);
  if (c != cache.end()) return c->second;
  auto record = reader.getRecord("data/" + key);
  auto t = torch::empty({numel}, torch::TensorOptions().dtype(it->second));
  if (std::get<1>(record) != size_t(t.nbytes()))
    throw std::runtime_error("storage data/" + key + " holds " + std::to_string(std::get<1>(record)) + " bytes, expected " +
                             std::to_string(t.nbytes()));
  std::memcpy(t.data_ptr(), std::get<0>(record).get(), t.nbytes());
  return cache[key] = t;
}

PickleValue unpickle_state_dict(torch_zip::PyTorchStreamReader& reader) {
  auto record = reader.getRecord("data.pkl");
  const auto* p = static_cast<const uint8_t*>(std::get<0>(record).get());
  const size_t n = std::get<1>(record);
  size_t pos = 0;
  auto need = [&](size_t k) {
    if (pos + k > n) throw std::runtime_error("data.pkl ends early");
  };
  auto u8 = [&] { need(1); return p[pos++]; };
  auto le = [&](int bytes) {
    need(size_t(bytes));
    uint64_t v = 0;
    for (int b = bytes - 1; b >= 0; --b) v = (v << 8) | p[pos + size_t(b)];
    pos += size_t(bytes);
    return v;
  };
  auto line = [&] {
    std::string r;
    while (true) {
      const char ch = char(u8());
      if (ch == '\n') return r;
      r += ch;
    }
  };
  auto bytes = [&](size_t k) {
    need(k);
    std::string r(reinterpret_cast<const char*>(p + pos), k);
    pos += k;
    return r;
  };
  std::vector<PickleValue> stack;
  std::map<uint64_t, PickleValue> memo;
  std::map<std::string, torch::Tensor> storages;
  auto pop = [&] {
    if (stack.empty()) throw std::runtime_error("pickle stack underflow");
    auto v = std::move(stack.back());
    stack.pop_back();
    return v;
  };
  auto pop_mark = [&] {
    std::vector<PickleValue> out;
    while (!stack.empty() && stack.back().kind != PickleValue::Mark) out.insert(out.begin(), pop());
    if (stack.empty()) throw std::runtime_error("pickle MARK missing");
    stack.pop_back();
    return out;
  };
  auto make = [](PickleValue::Kind k) {
    PickleValue v;
    v.kind = k;
    return v;
  };
  while (true) {
    const uint8_t op = u8();
    switch (op) {
      case 0x80: u8(); break;                    // PROTO
      case 0x95: le(8); break;                   // FRAME
      case '.': {                                // STOP
        if (stack.empty()) throw std::runtime_error("empty pickle");
        return pop();
      }
      case 'c': {                                // GLOBAL
        auto g = make(PickleValue::Global);
        g.s = line();
        g.s2 = line();
        stack.push_back(g);
        break;
      }
      case 0x93: {                               // STACK_GLOBAL
        auto name = pop(), module = pop();
        auto g = make(PickleValue::Global);
        g.s = module.s, g.s2 = name.s;
        stack.push_back(g);
        break;
      }
      case 'q': memo[u8()] = stack.back(); break;  // BINPUT
      case 'r': memo[le(4)] = stack.back(); break; // LONG_BINPUT
      case 0x94: { const auto k = memo.size(); memo[k] = stack.back(); break; }  // MEMOIZE
      case 'h': stack.push_back(memo.at(u8())); break;   // BINGET
      case 'j': stack.push_back(memo.at(le(4))); break;  // LONG_BINGET
      case '(': stack.push_back(make(PickleValue::Mark)); break;
      case ')': stack.push_back(make(PickleValue::Tuple)); break;
      case 't': { auto t = make(PickleValue::Tuple); t.items = pop_mark(); stack.push_back(t); break; }
      case 0x85: case 0x86: case 0x87: {         // TUPLE1..3
        auto t = make(PickleValue::Tuple);
        for (int k = 0; k < op - 0x84; ++k) t.items.insert(t.items.begin(), pop());
        stack.push_back(t);
        break;
      }
      case '}': stack.push_back(make(PickleValue::Dict)); break;
      case ']': stack.push_back(make(PickleValue::List)); break;
      case 's': { auto v = pop(), k = pop(); stack.back().items.push_back(k); stack.back().items.push_back(v); break; }
      case 'u': { auto kv = pop_mark(); for (auto& x : kv) stack.back().items.push_back(x); break; }
      case 'a': { auto v = pop(); stack.back().items.push_back(v); break; }
      case 'e': { auto v = pop_mark(); for (auto& x : v) stack.back().items.push_back(x); break; }
      case 'X': { auto v = make(PickleValue::Str); v.s = bytes(le(4)); stack.push_back(v); break; }
      case 0x8c: case 'U': { auto v = make(PickleValue::Str); v.s = bytes(u8()); stack.push_back(v); break; }
      case 'T': { auto v = make(PickleValue::Str); v.s = bytes(le(4)); stack.push_back(v); break; }
      case 'K': { auto v = make(PickleValue::Int); v.i = u8(); stack.push_back(v); break; }
      case 'M': { auto v = make(PickleValue::Int); v.i = int64_t(le(2)); stack.push_back(v); break; }
      case 'J': { auto v = make(PickleValue::Int); v.i = int32_t(uint32_t(le(4))); stack.push_back(v); break; }
      case 0x8a: {                               // LONG1: little-endian two's complement
        const int k = u8();
        if (k > 8) throw std::runtime_error("integer too long");
        auto v = make(PickleValue::Int);
        uint64_t x = k ? le(k) : 0;
        if (k && k < 8 && (x >> (8 * k - 1)) & 1) x |= ~uint64_t(0) << (8 * k);
        v.i = int64_t(x);
        stack.push_back(v);
        break;
      }
      case 'G': {                                // BINFLOAT, big-endian
        need(8);
        uint64_t x = 0;
        for (int k = 0; k < 8; ++k) x = (x << 8) | p[pos++];
        auto v = make(PickleValue::Float);
        std::memcpy(&v.f, &x, 8);
        stack.push_back(v);
        break;
      }
      case 'N': stack.push_back(make(PickleValue::None)); break;
      case 0x88: case 0x89: { auto v = make(PickleValue::Bool); v.i = op == 0x88; stack.push_back(v); break; }
      case 'Q': {                                // BINPERSID: ('storage', type, key, location, numel)
        auto pid = pop();
        if (pid.items.size() < 5 || pid.items[0].s != "storage") throw std::runtime_error("unknown persistent id");
        auto st = make(PickleValue::Storage);
        st.t = pickled_state_storage(reader, storages, pid.items[1].s2, pid.items[2].s, pid.items[4].i);
        stack.push_back(st);
        break;
      }
      case 'R': {                                // REDUCE
        auto args = pop(), fn = pop();
        if (fn.kind != PickleValue::Global) throw std::runtime_error("REDUCE of a non-global");
        if (fn.s == "collections" && fn.s2 == "OrderedDict") {
          stack.push_back(make(PickleValue::Dict));
        } else if (fn.s == "torch._utils" && fn.s2 == "_rebuild_tensor_v2" && args.items.size() >= 4) {
          std::vector<int64_t> size, stride;
          for (auto& d : args.items[2].items) size.push_back(d.i);
          for (auto& d : args.items[3].items) stride.push_back(d.i);
          auto v = make(PickleValue::Tensor);
          v.t = args.items[0].t.as_strided(size, stride, args.items[1].i).contiguous();
          stack.push_back(v);
        } else {
          throw std::runtime_error("cannot rebuild " + fn.s + "." + fn.s2);
        }
        break;
      }
      case 'b': pop(); break;                    // BUILD: the state dict's _metadata
      default: throw std::runtime_error("pickle opcode " + std::to_string(op) + " is not read");
    }
  }
}

}  // namespace

void Checkpoint::add_archive(const std::string& file) {
  const std::string head = head_bytes(file, 4);
  const std::string convert =
      "convert it once with python: import torch, safetensors.torch as st; "
      "st.save_file({k: v.contiguous() for k, v in torch.load('" + file + "', map_location='cpu').items()}, 'umt5.safetensors')";
  if (head.size() < 4 || head.compare(0, 4, "PK\x03\x04", 4) != 0)
    throw IoError("weights file '" + file + "' is neither safetensors nor a torch.save zip archive (a legacy pickle?); " + convert);
  std::vector<std::pair<std::string, torch::Tensor>> found;
  try {
    torch_zip::PyTorchStreamReader reader(file);
    try {
      const auto root = torch::jit::readArchiveAndTensors("data", "", "data/", {}, {}, at::Device(at::kCPU), reader);
      if (!root.isGenericDict()) throw IoError("weights archive '" + file + "' does not hold a dict of tensors; " + convert);
      for (const auto& kv : root.toGenericDict()) {
        if (!kv.key().isString()) throw IoError("weights archive '" + file + "' has a non-string key; " + convert);
        if (kv.value().isTensor()) found.emplace_back(kv.key().toStringRef(), kv.value().toTensor());
      }
    } catch (const IoError&) {
      throw;
    } catch (const std::exception&) {
      // LibTorch 1.13's unpickler turns a python OrderedDict (what module.state_dict() pickles
      // as) into None: read the state dict with our own small pickle machine instead.
      const auto root = unpickle_state_dict(reader);
      if (root.kind != PickleValue::Dict) throw IoError("weights archive '" + file + "' does not hold a dict of tensors; " + convert);
      for (size_t k = 0; k + 1 < root.items.size(); k += 2) {
        if (root.items[k].kind != PickleValue::Str) throw IoError("weights archive '" + file + "' has a non-string key; " + convert);
        if (root.items[k + 1].kind == PickleValue::Tensor) found.emplace_back(root.items[k].s, root.items[k + 1].t);
      }
    }
  } catch (const IoError&) {
    throw;
  } catch (const std::exception& e) {
    std::string what = e.what();
    what = what.substr(0, what.find('\n'));
    throw IoError("weights archive '" + file + "' cannot be read by LibTorch " + TORCH_VERSION + " nor as a state dict (" + what +
                  "); " + convert);
  }
  for (const auto& [name, t] : found) {  // non-tensor entries (a step counter…) are not weights
    StoredTensor info;
    info.name = name;
    info.file = file;
    if (!from_torch(t.scalar_type(), info.dtype))
      throw IoError("weights archive '" + file + "': tensor '" + name + "' has unsupported dtype " +
                    std::string(c10::toString(t.scalar_type())) + "; " + convert);
    info.shape = t.sizes().vec();
    tensors_[name] = std::move(info);
    archive_[name] = t;
  }
  maps_.push_back(std::make_unique<Mapped>());
  maps_.back()->file = file;
}

std::vector<std::string> Checkpoint::files() const {
  std::vector<std::string> out;
  for (const auto& m : maps_) out.push_back(m->file);
  return out;
}

uint64_t Checkpoint::file_bytes() const {
  uint64_t n = 0;
  std::error_code ec;
  for (const auto& m : maps_) n += uint64_t(fs::file_size(m->file, ec));
  return n;
}

namespace {
std::string stat_line(const std::string& file) {
  struct stat st {};
  ::stat(file.c_str(), &st);
  std::error_code ec;
  std::ostringstream s;
  s << fs::absolute(file, ec).lexically_normal().string() << '|' << st.st_size << '|' << st.st_mtim.tv_sec << '.'
    << st.st_mtim.tv_nsec << ';';
  return s.str();
}
}  // namespace

std::string checkpoint_identity(const std::string& path) {
  std::error_code ec;
  const bool dir = fs::is_directory(path, ec);
  if (!dir && !ends_with(path, ".json")) return stat_line(path);
  const auto folder = dir ? fs::path(path) : fs::path(path).parent_path();
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(folder.empty() ? fs::path(".") : folder, ec)) {
    const auto name = e.path().filename().string();
    if (e.is_regular_file() && (ends_with(name, ".safetensors") || ends_with(name, ".json"))) files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  std::string id;
  for (const auto& f : files) id += stat_line(f);
  return id;
}

std::string Checkpoint::identity() const {
  std::string id;
  for (const auto& m : maps_) id += stat_line(m->file);
  return id;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  for (const auto& kv : tensors_) out.push_back(kv.first);
  return out;
}

const StoredTensor& Checkpoint::info(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw IoError("text encoder weights '" + path_ + "': tensor '" + name + "' is missing");
  return it->second;
}

torch::Tensor Checkpoint::load(const std::string& name) const {
  const auto& i = info(name);
  auto a = archive_.find(name);
  if (a != archive_.end()) return a->second.contiguous();
  const auto& w = where_.at(name);
  const auto& m = *maps_[w.first];
  auto t = torch::empty(i.shape, torch::TensorOptions().dtype(torch_type(i.dtype)));
  std::memcpy(t.data_ptr(), m.data + w.second.first, size_t(w.second.second - w.second.first));
  return t;
}

void write_checkpoint_safetensors(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                                  const std::map<std::string, WeightDtype>& fp8_names) {
  nlohmann::json header = nlohmann::json::object();
  std::vector<torch::Tensor> data;
  uint64_t offset = 0;
  for (const auto& [name, t0] : tensors) {
    auto t = t0.to(torch::kCPU).contiguous();
    WeightDtype d;
    auto f8 = fp8_names.find(name);
    if (f8 != fp8_names.end()) {
      if (t.scalar_type() != torch::kByte) throw ShapeError("tensor '" + name + "': fp8 bits must be uint8");
      d = f8->second;
    } else if (!from_torch(t.scalar_type(), d)) {
      throw ShapeError("tensor '" + name + "': dtype " + std::string(c10::toString(t.scalar_type())) + " cannot be written");
    }
    const uint64_t n = uint64_t(t.numel()) * element_bytes(d);
    header[name] = {{"dtype", to_string(d)}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + n}}};
    offset += n;
    data.push_back(t);
  }
  std::string h = header.dump();
  while (h.size() % 8) h += ' ';
  const auto tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) throw IoError("cannot write '" + path + "'");
    uint64_t len = h.size();
    char lb[8];
    for (int i = 0; i < 8; ++i) lb[i] = char((len >> (8 * i)) & 0xff);
    out.write(lb, 8);
    out.write(h.data(), std::streamsize(h.size()));
    for (const auto& t : data) out.write(static_cast<const char*>(t.data_ptr()), std::streamsize(t.nbytes()));
    if (!out) throw IoError("cannot write '" + path + "' (disk full?)");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw IoError("cannot write '" + path + "': " + ec.message());
}

}  // namespace longshot::text
