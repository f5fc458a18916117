// Mask trace JSON (format "longshot-mask-trace", version 1):
// { "format": "longshot-mask-trace", "version": 1, "grid": [T, H, W], "seq_len": N,
//   "block_size": B, "num_blocks": nb, "ordering": "raster"|"hilbert", "mode": "lvsa",
//   "params": {"k": v, ...},
//   "entries": [ {"step": s, "layer": l, "head": h|-1, "sparsity": x,
//                 "row_offsets": [...nb+1], "col_indices": [...]} ] }
#include "engine/attention/mask_trace.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "engine/attention/mask_geometry.h"
#include "engine/common/error.h"

namespace longshot::attention {

using nlohmann::json;

void MaskTrace::add(const BlockMask& mask, int step, int layer) {
  mask.validate();
  if (mask.seq_len != grid.size()) {
    throw ShapeError("mask trace: mask seq_len " + std::to_string(mask.seq_len) + " does not match grid " +
                     grid.to_string() + " (" + std::to_string(grid.size()) + " tokens)");
  }
  if (mask.block_size != block_size) {
    throw ShapeError("mask trace: mask block_size " + std::to_string(mask.block_size) + " differs from the trace's " +
                     std::to_string(block_size));
  }
  if (mask.ordering != ordering) throw ShapeError("mask trace: mask ordering differs from the trace's");
  const int64_t nq = mask.num_q_blocks;
  for (int64_t h = 0; h < mask.num_heads; ++h) {
    MaskTraceEntry e;
    e.step = step;
    e.layer = layer;
    e.head = mask.num_heads == 1 ? -1 : static_cast<int>(h);
    const int32_t base = mask.row_offsets[static_cast<size_t>(h * nq)];
    for (int64_t r = 0; r <= nq; ++r) e.row_offsets.push_back(mask.row_offsets[static_cast<size_t>(h * nq + r)] - base);
    const auto& cols = mask.cols();
    e.col_indices.assign(cols.begin() + base, cols.begin() + base + e.row_offsets.back());
    e.sparsity = mask.head_block_sparsity(h);
    entries.push_back(std::move(e));
  }
}

BlockMask MaskTrace::entry_mask(const MaskTraceEntry& entry) const {
  BlockMask m = detail::square_mask_geometry(grid.size(), block_size, 1, ordering);
  m.row_offsets = entry.row_offsets;
  m.col_indices = entry.col_indices;
  m.validate();
  return m;
}

std::string mask_trace_to_json(const MaskTrace& t) {
  json j;
  j["format"] = kMaskTraceFormat;
  j["version"] = kMaskTraceVersion;
  j["grid"] = {t.grid.t, t.grid.h, t.grid.w};
  j["seq_len"] = t.grid.size();
  j["block_size"] = t.block_size;
  j["num_blocks"] = BlockMask::blocks_for(t.grid.size(), t.block_size);
  j["ordering"] = to_string(t.ordering);
  j["mode"] = t.mode;
  j["params"] = json::object();
  for (const auto& [k, v] : t.params) j["params"][k] = v;
  j["entries"] = json::array();
  for (const auto& e : t.entries) {
    j["entries"].push_back({{"step", e.step},
                            {"layer", e.layer},
                            {"head", e.head},
                            {"sparsity", e.sparsity},
                            {"row_offsets", e.row_offsets},
                            {"col_indices", e.col_indices}});
  }
  return j.dump();
}

namespace {
[[noreturn]] void bad(const std::string& source, const std::string& what) {
  throw IoError("mask trace '" + source + "': " + what);
}

const json& field(const json& obj, const char* name, const std::string& source, const std::string& where) {
  if (!obj.is_object() || !obj.contains(name)) bad(source, where + "missing field '" + name + "'");
  return obj.at(name);
}

int64_t int_field(const json& obj, const char* name, const std::string& source, const std::string& where) {
  const json& v = field(obj, name, source, where);
  if (!v.is_number_integer()) bad(source, where + "field '" + std::string(name) + "' must be an integer");
  return v.get<int64_t>();
}

std::vector<int32_t> int_array(const json& obj, const char* name, const std::string& source, const std::string& where) {
  const json& v = field(obj, name, source, where);
  if (!v.is_array()) bad(source, where + "field '" + std::string(name) + "' must be an array of integers");
  std::vector<int32_t> out;
  out.reserve(v.size());
  for (const auto& e : v) {
    if (!e.is_number_integer()) bad(source, where + "field '" + std::string(name) + "' holds a non-integer");
    out.push_back(e.get<int32_t>());
  }
  return out;
}
}  // namespace

MaskTrace mask_trace_from_json(const std::string& text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for a number like 1e999
    bad(source, std::string("not valid JSON (") + e.what() + ")");
  }
  if (!j.is_object()) bad(source, "top level must be a JSON object");
  const json& format = field(j, "format", source, "");
  if (!format.is_string() || format.get<std::string>() != kMaskTraceFormat) {
    bad(source, std::string("field 'format' must be \"") + kMaskTraceFormat + "\"");
  }
  const int64_t version = int_field(j, "version", source, "");
  if (version != kMaskTraceVersion) {
    bad(source, "field 'version' is " + std::to_string(version) + "; this build reads version " +
                    std::to_string(kMaskTraceVersion));
  }
  MaskTrace t;
  const auto grid = int_array(j, "grid", source, "");
  if (grid.size() != 3 || grid[0] <= 0 || grid[1] <= 0 || grid[2] <= 0) {
    bad(source, "field 'grid' must be [T, H, W] with positive sizes");
  }
  t.grid = TokenGrid{grid[0], grid[1], grid[2]};
  t.block_size = int_field(j, "block_size", source, "");
  if (t.block_size <= 0) bad(source, "field 'block_size' must be positive");
  if (j.contains("seq_len") && int_field(j, "seq_len", source, "") != t.grid.size()) {
    bad(source, "field 'seq_len' does not match grid " + t.grid.to_string());
  }
  const json& ordering = field(j, "ordering", source, "");
  if (ordering == "raster") t.ordering = OrderingKind::Raster;
  else if (ordering == "hilbert") t.ordering = OrderingKind::Hilbert;
  else bad(source, "field 'ordering' must be \"raster\" or \"hilbert\"");
  const json& mode = field(j, "mode", source, "");
  if (!mode.is_string()) bad(source, "field 'mode' must be a string");
  t.mode = mode.get<std::string>();
  if (j.contains("params")) {
    const json& params = j.at("params");
    if (!params.is_object()) bad(source, "field 'params' must be an object of numbers");
    for (auto it = params.begin(); it != params.end(); ++it) {
      if (!it.value().is_number()) bad(source, "params." + it.key() + " must be a number");
      t.params[it.key()] = it.value().get<double>();
    }
  }
  const json& entries = field(j, "entries", source, "");
  if (!entries.is_array()) bad(source, "field 'entries' must be an array");
  const int64_t nb = BlockMask::blocks_for(t.grid.size(), t.block_size);
  for (size_t i = 0; i < entries.size(); ++i) {
    const std::string where = "entries[" + std::to_string(i) + "]: ";
    const json& e = entries[i];
    if (!e.is_object()) bad(source, where + "must be an object");
    MaskTraceEntry entry;
    entry.step = static_cast<int>(int_field(e, "step", source, where));
    entry.layer = static_cast<int>(int_field(e, "layer", source, where));
    entry.head = static_cast<int>(int_field(e, "head", source, where));
    if (entry.step < 0 || entry.layer < 0 || entry.head < -1) {
      bad(source, where + "step and layer must be >= 0 and head >= -1");
    }
    const json& sp = field(e, "sparsity", source, where);
    if (!sp.is_number()) bad(source, where + "field 'sparsity' must be a number");
    entry.sparsity = sp.get<double>();
    entry.row_offsets = int_array(e, "row_offsets", source, where);
    entry.col_indices = int_array(e, "col_indices", source, where);
    if (static_cast<int64_t>(entry.row_offsets.size()) != nb + 1) {
      bad(source, where + "field 'row_offsets' has " + std::to_string(entry.row_offsets.size()) +
                      " entries, expected num_blocks + 1 = " + std::to_string(nb + 1));
    }
    try {
      t.entry_mask(entry);
    } catch (const ShapeError& err) {
      bad(source, where + err.what());
    }
    t.entries.push_back(std::move(entry));
  }
  return t;
}

void write_mask_trace(const MaskTrace& trace, const std::string& path) {
  // Unique to this process: a user's own "<path>.tmp" is neither overwritten nor removed.
  static std::atomic<unsigned> counter{0};
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  const std::string text = mask_trace_to_json(trace) + "\n";
  // stdio rather than a stream: a failed write keeps its errno, so the message says why (disk full).
  std::FILE* out = std::fopen(tmp.c_str(), "wb");
  if (!out) throw IoError("cannot write mask trace '" + path + "': " + std::strerror(errno));
  const bool wrote = std::fwrite(text.data(), 1, text.size(), out) == text.size() && std::fflush(out) == 0;
  const int write_errno = errno;
  const bool closed = std::fclose(out) == 0;
  const int close_errno = errno;
  if (!wrote || !closed) {
    std::remove(tmp.c_str());
    throw IoError("cannot write mask trace '" + path + "': " + std::strerror(!wrote ? write_errno : close_errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int rename_errno = errno;
    std::remove(tmp.c_str());
    throw IoError("cannot write mask trace '" + path + "': cannot rename the temporary file into place: " +
                  std::strerror(rename_errno));
  }
}

MaskTrace read_mask_trace(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("mask trace '" + path + "': cannot open for reading");
  std::stringstream ss;
  ss << in.rdbuf();
  return mask_trace_from_json(ss.str(), path);
}

}  // namespace longshot::attention
