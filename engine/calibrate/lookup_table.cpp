// The calibration lookup table as generation reads it: version 1 (one calibration run, any length)
// and version 2 (runs at several lengths and sizes, keyed by token-grid frames and geometry), and
// the one rule that picks a job's parameters (calibration.h, LoadedTable::horizon_for); and its BO
// trace as the studio plots it (read_trace, pareto_front).
#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <set>

#include "engine/attention/token_grid.h"
#include "engine/calibrate/calibration.h"
#include "engine/calibrate/json_file.h"
#include "engine/common/error.h"

namespace longshot::calibrate {

using attention::ParamValues;
using nlohmann::json;

namespace {

void require(bool ok, const std::string& path, const std::string& why) {
  if (!ok) throw IoError("calibration table '" + path + "': " + why);
}

// A run's "regimes" object → regime → resolved parameters. `where` prefixes the messages
// ("" for a version-1 table, "horizon of 64 frames: " in version 2).
std::map<std::string, ParamValues> read_regimes(const json& j, const std::string& path, const attention::PolicyInfo& info,
                                                const std::string& where) {
  require(j.contains("regimes") && j["regimes"].is_object() && !j["regimes"].empty(), path, where + "has no regimes");
  std::map<std::string, ParamValues> out;
  for (const auto& [name, r] : j["regimes"].items()) {
    require(r.is_object() && r.contains("params") && r["params"].is_object(), path,
            where + "regime '" + name + "' has no 'params' object");
    ParamValues values;
    for (const auto& [k, v] : r["params"].items()) {
      require(v.is_number(), path, where + "regime '" + name + "' parameter '" + k + "' is not a number");
      values[k] = v.get<double>();
    }
    out[name] = attention::resolve_params(info, values);
  }
  return out;
}

// A run's proxy grid "TxHxW" (all 0 when it has none or it does not parse).
attention::TokenGrid run_grid(const json& j) {
  if (!j.contains("proxy") || !j["proxy"].is_object() || !j["proxy"].contains("grid") || !j["proxy"]["grid"].is_string())
    return {0, 0, 0};
  try {
    return attention::TokenGrid::parse(j["proxy"]["grid"].get<std::string>());
  } catch (const std::exception&) {
    return {0, 0, 0};
  }
}

int64_t run_grid_frames(const json& j) { return run_grid(j).t; }

// The horizon's proxy geometry, for the warning when a job's differs (calibration.h).
void read_geometry(const json& j, TableHorizon& h) {
  const auto g = run_grid(j);
  h.frame_h = g.h, h.frame_w = g.w;
  if (j.contains("proxy") && j["proxy"].is_object() && j["proxy"].contains("block") && j["proxy"]["block"].is_number_integer())
    h.block = std::max<int64_t>(0, j["proxy"]["block"].get<int64_t>());
}

// A horizon's identity in a table: its length and the geometry it was calibrated at (sorted by
// length first, so horizon_for's ascending walk keeps "a tie goes to the shorter").
std::array<int64_t, 4> horizon_key(const TableHorizon& h) { return {h.grid_frames, h.frame_h, h.frame_w, h.block}; }

std::string horizon_text(const TableHorizon& h) { return std::to_string(h.grid_frames) + " frames, " + h.geometry_text(); }

std::string regime_names(const std::map<std::string, ParamValues>& regimes) {
  std::string s;
  for (const auto& [name, p] : regimes) s += (s.empty() ? "" : ", ") + name;
  return s;
}

}  // namespace

bool TableHorizon::same_geometry(int64_t h, int64_t w, int64_t b) const {
  return frame_h > 0 && block > 0 && frame_h == h && frame_w == w && block == b;
}

std::string TableHorizon::geometry_text() const {
  return std::to_string(frame_h) + "x" + std::to_string(frame_w) + " tokens per frame, block " + std::to_string(block);
}

const TableHorizon& LoadedTable::horizon_for(int64_t grid_frames, int64_t frame_h, int64_t frame_w, int64_t block) const {
  if (grid_frames < 1) throw ParameterError("frames", "a job needs at least one latent frame to pick a table horizon");
  if (horizons.empty()) throw ParameterError("calibration", "the table has no horizon");
  // How close a horizon's geometry is to the job's: 2 the same tokens per frame and block, 1 the
  // same tokens per frame, 0 neither (or unknown). Only the closest present compete on length.
  auto closeness = [&](const TableHorizon& h) {
    if (h.same_geometry(frame_h, frame_w, block)) return 2;
    return h.frame_h > 0 && h.frame_h == frame_h && h.frame_w == frame_w ? 1 : 0;
  };
  int closest = 0;
  for (const auto& h : horizons) closest = std::max(closest, closeness(h));
  const TableHorizon* best = nullptr;
  double best_d = INFINITY;
  for (const auto& h : horizons) {
    if (closeness(h) != closest) continue;
    if (h.grid_frames == 0) return h;  // version 1: any length
    if (!best) best = &h;
    // Ascending order and a strict '<': a tie goes to the shorter length.
    const double d = std::abs(std::log(double(grid_frames) / double(h.grid_frames)));
    if (d < best_d - 1e-12) best = &h, best_d = d;
  }
  return *best;
}

namespace {

// Every check of a table already read as JSON (read_table's and combine_tables' one parser).
LoadedTable parse_table(const json& j, const std::string& path) {
  require(j.contains("mode") && j["mode"].is_string(), path, "has no 'mode'");
  LoadedTable t;
  t.mode = j["mode"].get<std::string>();
  t.version = j["version"].get<int>();
  const auto& info = attention::find_policy(t.mode);
  if (t.version == kRunTableVersion) {
    t.horizons.push_back(TableHorizon{0, read_regimes(j, path, info, ""), 0, 0, 0});
    read_geometry(j, t.horizons.back());
    return t;
  }
  require(j.contains("horizons") && j["horizons"].is_array() && !j["horizons"].empty(), path,
          "version 2 needs a non-empty 'horizons' array (one calibration per length and size)");
  std::set<std::array<int64_t, 4>> seen;
  for (size_t i = 0; i < j["horizons"].size(); ++i) {
    const json& h = j["horizons"][i];
    const std::string at = "horizon " + std::to_string(i);
    require(h.is_object() && h.contains("grid_frames") && h["grid_frames"].is_number_integer() &&
                h["grid_frames"].get<int64_t>() > 0,
            path, at + " has no positive integer 'grid_frames' (the token-grid frames it was calibrated at)");
    const int64_t frames = h["grid_frames"].get<int64_t>();
    TableHorizon th{frames, read_regimes(h, path, info, "horizon of " + std::to_string(frames) + " frames: "), 0, 0, 0};
    read_geometry(h, th);
    require(seen.insert(horizon_key(th)).second, path,
            at + " repeats another's length and geometry (" + horizon_text(th) + ")");
    // A regime present at one length only would route a long job to the defaults or fail mid-way;
    // refuse the table instead.
    if (!t.horizons.empty())
      require(regime_names(th.regimes) == regime_names(t.horizons.front().regimes), path,
              "horizon of " + std::to_string(frames) + " frames has regimes {" + regime_names(th.regimes) +
                  "}, the horizon of " + std::to_string(t.horizons.front().grid_frames) + " frames {" +
                  regime_names(t.horizons.front().regimes) + "}");
    t.horizons.push_back(std::move(th));
  }
  std::sort(t.horizons.begin(), t.horizons.end(),
            [](const TableHorizon& a, const TableHorizon& b) { return horizon_key(a) < horizon_key(b); });
  return t;
}

}  // namespace

LoadedTable read_table(const std::string& path) {
  return parse_table(read_versioned_json(path, "calibration table", kTableFormat, kHorizonsTableVersion, kRunTableVersion),
                     path);
}

void combine_tables(const std::vector<std::string>& inputs, const std::string& out) {
  if (inputs.empty()) throw ParameterError("combine", "needs at least one calibration table");
  json result;
  result["format"] = kTableFormat;
  result["version"] = kHorizonsTableVersion;
  json horizons = json::array();
  std::set<std::array<int64_t, 4>> seen;
  std::string first_regimes;
  for (const auto& path : inputs) {
    json j = read_versioned_json(path, "calibration table", kTableFormat, kHorizonsTableVersion, kRunTableVersion);
    const LoadedTable loaded = parse_table(j, path);  // every check of the table
    if (!result.contains("mode")) result["mode"] = loaded.mode;
    require(result["mode"] == loaded.mode, path,
            "is for mode " + loaded.mode + ", the first table for " + result["mode"].get<std::string>());
    const std::string names = regime_names(loaded.horizons.front().regimes);
    if (first_regimes.empty()) first_regimes = names;
    require(names == first_regimes, path, "has regimes {" + names + "}, the first table {" + first_regimes + "}");
    // A version-1 run is one horizon (its length from the proxy grid); a version-2 table brings
    // each of its horizons, so tables for other sizes combine into one (calibration.h).
    std::vector<json> entries;
    const std::string file = std::filesystem::path(path).filename().string();
    if (loaded.version == kRunTableVersion) {
      const int64_t frames = run_grid_frames(j);
      require(frames > 0, path, "has no proxy grid 'TxHxW' to say which length it was calibrated at");
      j.erase("format");
      j.erase("version");
      j.erase("mode");
      j["grid_frames"] = frames;
      j["from"] = file;  // the run's file, for the record
      entries.push_back(std::move(j));
    } else {
      for (auto& h : j["horizons"]) {
        if (!h.contains("from")) h["from"] = file;
        entries.push_back(std::move(h));
      }
    }
    for (auto& e : entries) {
      TableHorizon th;
      th.grid_frames = e["grid_frames"].get<int64_t>();
      read_geometry(e, th);
      require(seen.insert(horizon_key(th)).second, path,
              "is calibrated at the length and geometry of another input (" + horizon_text(th) + ")");
      horizons.push_back(std::move(e));
    }
  }
  // Shortest first for the reader of the file (ties keep the inputs' order; read_table sorts by
  // length and geometry whatever the order).
  std::stable_sort(horizons.begin(), horizons.end(), [](const json& a, const json& b) {
    return a["grid_frames"].get<int64_t>() < b["grid_frames"].get<int64_t>();
  });
  result["horizons"] = horizons;
  write_json_file(out, "calibration table", result, 2);
}

// ---------------------------------------------------------------------------------------------
// The BO trace (read_trace): the same file and checks, keeping the trials read_table drops.

namespace {

double number_at(const json& j, const char* key, const std::string& path, const std::string& where) {
  require(j.is_object() && j.contains(key) && j[key].is_number(), path, where + " has no numeric '" + key + "'");
  return j[key].get<double>();
}

RegimeTrace read_regime_trace(const std::string& name, const json& r, const std::string& path, const std::string& where) {
  const std::string at = where + "regime '" + name + "'";
  require(r.is_object(), path, at + " is not an object");
  RegimeTrace t;
  t.regime = name;
  require(r.contains("trace") && r["trace"].is_array() && !r["trace"].empty(), path,
          at + " has no BO trace (an empty or missing 'trace'): nothing to plot; `longshot calibrate` writes one");
  for (size_t i = 0; i < r["trace"].size(); ++i) {
    const json& e = r["trace"][i];
    const std::string ti = at + " trace entry " + std::to_string(i);
    require(e.is_object() && e.contains("trial") && e["trial"].is_number_integer(), path, ti + " has no integer 'trial'");
    TracePoint p;
    p.trial = e["trial"].get<int>();
    p.sparsity = number_at(e, "sparsity", path, ti);
    p.nmse = number_at(e, "nmse", path, ti);
    // write_table records 'refused' only when the run had a floor.
    if (e.contains("refused")) {
      require(e["refused"].is_boolean(), path, ti + " has a 'refused' that is not true or false");
      p.refused = e["refused"].get<bool>();
    }
    t.trials.push_back(p);
  }
  t.front = pareto_front(t.trials);
  if (r.contains("kept_defaults")) {
    require(r["kept_defaults"].is_boolean(), path, at + " has a 'kept_defaults' that is not true or false");
    t.kept_defaults = r["kept_defaults"].get<bool>();
  }
  if (r.contains("min_sparsity")) t.floor = number_at(r, "min_sparsity", path, at);
  require(r.contains("defaults") && r["defaults"].is_object(), path, at + " has no 'defaults' object");
  t.defaults.sparsity = number_at(r["defaults"], "sparsity", path, at + " 'defaults'");
  t.defaults.nmse = number_at(r["defaults"], "nmse", path, at + " 'defaults'");
  t.chosen.sparsity = number_at(r, "sparsity", path, at);
  t.chosen.nmse = number_at(r, "nmse", path, at);
  require(r.contains("best_trial") && r["best_trial"].is_number_integer(), path, at + " has no integer 'best_trial'");
  const int64_t best = r["best_trial"].get<int64_t>();  // an index into the trace; -1: the defaults kept
  require(best >= -1 && best < static_cast<int64_t>(t.trials.size()), path,
          at + " has 'best_trial' " + std::to_string(best) + " outside its trace of " + std::to_string(t.trials.size()));
  if (best >= 0) t.chosen.trial = t.trials[static_cast<size_t>(best)].trial;
  return t;
}

HorizonTrace read_horizon_trace(const json& h, int64_t frames, const std::string& path, const std::string& where) {
  require(h.contains("regimes") && h["regimes"].is_object() && !h["regimes"].empty(), path, where + "has no regimes");
  TableHorizon geometry;
  geometry.grid_frames = frames;
  read_geometry(h, geometry);
  HorizonTrace out;
  out.label = frames > 0 ? std::to_string(frames) + " frames" : std::string("any length");
  if (geometry.frame_h > 0 && geometry.block > 0) out.label += ", " + geometry.geometry_text();
  if (h.contains("from") && h["from"].is_string()) out.from = h["from"].get<std::string>();
  for (const auto& [name, r] : h["regimes"].items()) out.regimes.push_back(read_regime_trace(name, r, path, where));
  return out;
}

}  // namespace

TableTrace read_trace(const std::string& path) {
  const json j = read_versioned_json(path, "calibration table", kTableFormat, kHorizonsTableVersion, kRunTableVersion);
  require(j.contains("mode") && j["mode"].is_string(), path, "has no 'mode'");
  TableTrace t;
  t.mode = j["mode"].get<std::string>();
  t.file = path;
  t.version = j["version"].get<int>();
  if (t.version == kRunTableVersion) {
    // One run: its proxy grid says the length it was tuned at (read_table treats it as any length).
    t.horizons.push_back(read_horizon_trace(j, run_grid_frames(j), path, ""));
    return t;
  }
  require(j.contains("horizons") && j["horizons"].is_array() && !j["horizons"].empty(), path,
          "version 2 needs a non-empty 'horizons' array (one calibration per length and size)");
  std::vector<std::pair<std::array<int64_t, 4>, HorizonTrace>> keyed;
  for (size_t i = 0; i < j["horizons"].size(); ++i) {
    const json& h = j["horizons"][i];
    require(h.is_object() && h.contains("grid_frames") && h["grid_frames"].is_number_integer() &&
                h["grid_frames"].get<int64_t>() > 0,
            path, "horizon " + std::to_string(i) + " has no positive integer 'grid_frames'");
    const int64_t frames = h["grid_frames"].get<int64_t>();
    TableHorizon key{frames, {}, 0, 0, 0};
    read_geometry(h, key);
    keyed.emplace_back(horizon_key(key), read_horizon_trace(h, frames, path, "horizon of " + std::to_string(frames) + " frames: "));
  }
  std::stable_sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [key, h] : keyed) t.horizons.push_back(std::move(h));
  return t;
}

std::vector<size_t> pareto_front(const std::vector<TracePoint>& points) {
  auto eligible = [](const TracePoint& p) { return !p.refused && std::isfinite(p.sparsity) && std::isfinite(p.nmse); };
  std::vector<size_t> front;
  for (size_t i = 0; i < points.size(); ++i) {
    if (!eligible(points[i])) continue;
    bool dominated = false;
    for (size_t k = 0; k < points.size() && !dominated; ++k) {
      const TracePoint &a = points[k], &b = points[i];
      dominated = k != i && eligible(a) && a.sparsity >= b.sparsity && a.nmse <= b.nmse &&
                  (a.sparsity > b.sparsity || a.nmse < b.nmse);
    }
    if (!dominated) front.push_back(i);
  }
  std::sort(front.begin(), front.end(), [&](size_t a, size_t b) {
    const TracePoint &pa = points[a], &pb = points[b];
    if (pa.sparsity != pb.sparsity) return pa.sparsity < pb.sparsity;
    if (pa.nmse != pb.nmse) return pa.nmse < pb.nmse;
    return a < b;
  });
  return front;
}

}  // namespace longshot::calibrate
