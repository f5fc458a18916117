// Reading a torch.save zip archive (.pth / .pt / .bin) of a state dict: LibTorch's own unpickler
// first, and where it refuses (1.13 turns a python OrderedDict into None) a small pickle machine
// for what torch.save writes for a state dict. Text room: file formats only.
#include "engine/text/checkpoint.h"

#include <cstring>
#include <fstream>
#include <tuple>
#include <type_traits>

#include <torch/csrc/jit/serialization/import_read.h>
#include <torch/torch.h>
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

namespace longshot::text {

namespace {

// The first bytes of a file: a zip archive starts with "PK\3\4"; a legacy pickle with 0x80.
std::string head_bytes(const std::string& file, size_t n) {
  std::ifstream in(file, std::ios::binary);
  std::string s(n, '\0');
  in.read(&s[0], std::streamsize(n));
  s.resize(size_t(in.gcount()));
  return s;
}


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

// The pickle machine's state: the data.pkl bytes, the stack, the memo and the storages read.
class StateDictUnpickler {
 public:
  explicit StateDictUnpickler(torch_zip::PyTorchStreamReader& reader)
      : reader_(reader), record_(reader.getRecord("data.pkl")) {
    p_ = static_cast<const uint8_t*>(std::get<0>(record_).get());
    n_ = std::get<1>(record_);
  }

  PickleValue run() {
    while (true) {
      const uint8_t op = u8();
      if (op == '.') {  // STOP
        if (stack_.empty()) throw std::runtime_error("empty pickle");
        return pop();
      }
      if (!structure_op(op) && !value_op(op))
        throw std::runtime_error("pickle opcode " + std::to_string(op) + " is not read");
    }
  }

 private:
  // Framing, globals, the memo, marks and containers.
  bool structure_op(uint8_t op) {
    switch (op) {
      case 0x80: u8(); return true;   // PROTO
      case 0x95: le(8); return true;  // FRAME
      case 'c': {                     // GLOBAL
        auto g = make(PickleValue::Global);
        g.s = line();
        g.s2 = line();
        stack_.push_back(g);
        return true;
      }
      case 0x93: {  // STACK_GLOBAL
        auto name = pop(), module = pop();
        auto g = make(PickleValue::Global);
        g.s = module.s, g.s2 = name.s;
        stack_.push_back(g);
        return true;
      }
      case 'q': memo_[u8()] = top(); return true;   // BINPUT
      case 'r': memo_[le(4)] = top(); return true;  // LONG_BINPUT
      case 0x94: { const auto k = memo_.size(); memo_[k] = top(); return true; }  // MEMOIZE
      case 'h': stack_.push_back(memo_.at(u8())); return true;   // BINGET
      case 'j': stack_.push_back(memo_.at(le(4))); return true;  // LONG_BINGET
      case '(': stack_.push_back(make(PickleValue::Mark)); return true;
      case ')': stack_.push_back(make(PickleValue::Tuple)); return true;
      case 't': { auto t = make(PickleValue::Tuple); t.items = pop_mark(); stack_.push_back(t); return true; }
      case 0x85: case 0x86: case 0x87: {  // TUPLE1..3
        auto t = make(PickleValue::Tuple);
        for (int k = 0; k < op - 0x84; ++k) t.items.insert(t.items.begin(), pop());
        stack_.push_back(t);
        return true;
      }
      case '}': stack_.push_back(make(PickleValue::Dict)); return true;
      case ']': stack_.push_back(make(PickleValue::List)); return true;
      case 's': { auto v = pop(), k = pop(); top().items.push_back(k); top().items.push_back(v); return true; }
      case 'u': { auto kv = pop_mark(); for (auto& x : kv) top().items.push_back(x); return true; }
      case 'a': { auto v = pop(); top().items.push_back(v); return true; }
      case 'e': { auto v = pop_mark(); for (auto& x : v) top().items.push_back(x); return true; }
      default: return false;
    }
  }

  // Scalars, strings, storages and the tensors rebuilt from them.
  bool value_op(uint8_t op) {
    switch (op) {
      case 'X': case 'T': { auto v = make(PickleValue::Str); v.s = bytes(le(4)); stack_.push_back(v); return true; }
      case 0x8c: case 'U': { auto v = make(PickleValue::Str); v.s = bytes(u8()); stack_.push_back(v); return true; }
      case 'K': { auto v = make(PickleValue::Int); v.i = u8(); stack_.push_back(v); return true; }
      case 'M': { auto v = make(PickleValue::Int); v.i = int64_t(le(2)); stack_.push_back(v); return true; }
      case 'J': { auto v = make(PickleValue::Int); v.i = int32_t(uint32_t(le(4))); stack_.push_back(v); return true; }
      case 0x8a: {  // LONG1: little-endian two's complement
        const int k = u8();
        if (k > 8) throw std::runtime_error("integer too long");
        auto v = make(PickleValue::Int);
        uint64_t x = k ? le(k) : 0;
        if (k && k < 8 && (x >> (8 * k - 1)) & 1) x |= ~uint64_t(0) << (8 * k);
        v.i = int64_t(x);
        stack_.push_back(v);
        return true;
      }
      case 'G': {  // BINFLOAT, big-endian
        need(8);
        uint64_t x = 0;
        for (int k = 0; k < 8; ++k) x = (x << 8) | p_[pos_++];
        auto v = make(PickleValue::Float);
        std::memcpy(&v.f, &x, 8);
        stack_.push_back(v);
        return true;
      }
      case 'N': stack_.push_back(make(PickleValue::None)); return true;
      case 0x88: case 0x89: { auto v = make(PickleValue::Bool); v.i = op == 0x88; stack_.push_back(v); return true; }
      case 'Q': {  // BINPERSID: ('storage', type, key, location, numel)
        auto pid = pop();
        if (pid.items.size() < 5 || pid.items[0].s != "storage") throw std::runtime_error("unknown persistent id");
        auto st = make(PickleValue::Storage);
        st.t = pickled_state_storage(reader_, storages_, pid.items[1].s2, pid.items[2].s, pid.items[4].i);
        stack_.push_back(st);
        return true;
      }
      case 'R': reduce(); return true;
      case 'b': pop(); return true;  // BUILD: the state dict's _metadata
      default: return false;
    }
  }

  // REDUCE: an OrderedDict, or a tensor rebuilt from its storage; any other callable is refused.
  void reduce() {
    auto args = pop(), fn = pop();
    if (fn.kind != PickleValue::Global) throw std::runtime_error("REDUCE of a non-global");
    if (fn.s == "collections" && fn.s2 == "OrderedDict") {
      stack_.push_back(make(PickleValue::Dict));
    } else if (fn.s == "torch._utils" && fn.s2 == "_rebuild_tensor_v2" && args.items.size() >= 4) {
      std::vector<int64_t> size, stride;
      for (auto& d : args.items[2].items) size.push_back(d.i);
      for (auto& d : args.items[3].items) stride.push_back(d.i);
      auto v = make(PickleValue::Tensor);
      v.t = args.items[0].t.as_strided(size, stride, args.items[1].i).contiguous();
      stack_.push_back(v);
    } else {
      throw std::runtime_error("cannot rebuild " + fn.s + "." + fn.s2);
    }
  }

  void need(size_t k) const {
    if (pos_ + k > n_) throw std::runtime_error("data.pkl ends early");
  }
  uint8_t u8() {
    need(1);
    return p_[pos_++];
  }
  uint64_t le(int count) {
    need(size_t(count));
    uint64_t v = 0;
    for (int b = count - 1; b >= 0; --b) v = (v << 8) | p_[pos_ + size_t(b)];
    pos_ += size_t(count);
    return v;
  }
  std::string line() {
    std::string r;
    while (true) {
      const char ch = char(u8());
      if (ch == '\n') return r;
      r += ch;
    }
  }
  std::string bytes(size_t k) {
    need(k);
    std::string r(reinterpret_cast<const char*>(p_ + pos_), k);
    pos_ += k;
    return r;
  }
  PickleValue& top() {
    if (stack_.empty()) throw std::runtime_error("pickle stack underflow");
    return stack_.back();
  }
  PickleValue pop() {
    if (stack_.empty()) throw std::runtime_error("pickle stack underflow");
    auto v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  std::vector<PickleValue> pop_mark() {
    std::vector<PickleValue> out;
    while (!stack_.empty() && stack_.back().kind != PickleValue::Mark) out.insert(out.begin(), pop());
    if (stack_.empty()) throw std::runtime_error("pickle MARK missing");
    stack_.pop_back();
    return out;
  }
  static PickleValue make(PickleValue::Kind k) {
    PickleValue v;
    v.kind = k;
    return v;
  }

  torch_zip::PyTorchStreamReader& reader_;
  decltype(std::declval<torch_zip::PyTorchStreamReader&>().getRecord("")) record_;
  const uint8_t* p_ = nullptr;
  size_t n_ = 0, pos_ = 0;
  std::vector<PickleValue> stack_;
  std::map<uint64_t, PickleValue> memo_;
  std::map<std::string, torch::Tensor> storages_;
};

PickleValue unpickle_state_dict(torch_zip::PyTorchStreamReader& reader) { return StateDictUnpickler(reader).run(); }

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
    if (!io::stored_dtype(t.scalar_type(), info.dtype))
      throw IoError("weights archive '" + file + "': tensor '" + name + "' has unsupported dtype " +
                    std::string(c10::toString(t.scalar_type())) + "; " + convert);
    info.shape = t.sizes().vec();
    tensors_[name] = std::move(info);
    archive_[name] = t;
  }
  files_.push_back(file);
}

}  // namespace longshot::text
