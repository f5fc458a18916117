// The lookup table keyed by length (issue 25 at 1x and 4x): version-1 runs combine into a version-2
// table, the job's token-grid frames pick the horizon calibrated nearest them, and a corrupt table
// (no horizons, a horizon without its length, a repeated length and geometry, a regime missing at one
// length) is refused naming the file and what is wrong; the job's geometry picks among several sizes.
// The --min-sparsity margin is parsed and applied.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <fstream>

#include <nlohmann/json.hpp>

#include "engine/calibrate/calibration.h"
#include "engine/common/error.h"

using namespace longshot;
using namespace longshot::calibrate;

namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("longshot_lookup_" + name)).string();
}

// A version-1 run's table as write_table makes it (the fields combine and read use), with the
// given proxy grid and a recognisable decay per regime.
std::string run_table(const std::string& name, const std::string& grid, double decay,
                      const std::vector<std::string>& regimes = {"static", "slow", "fast"},
                      const std::string& mode = "dynamicrad", int block = 32) {
  nlohmann::json j;
  j["format"] = "longshot-calibration";
  j["version"] = 1;
  j["mode"] = mode;
  j["proxy"] = {{"kind", "model"}, {"grid", grid}, {"block", block}};
  for (size_t i = 0; i < regimes.size(); ++i)
    j["regimes"][regimes[i]] = {{"params", mode == "dynamicrad" ? nlohmann::json{{"decay", decay + 0.01 * double(i)}}
                                                                : nlohmann::json::object()},
                                {"trace", nlohmann::json::array()}};
  const std::string p = temp_path(name);
  std::ofstream(p) << j.dump();
  return p;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const IoError& e) {
    return std::string("io: ") + e.what();
  } catch (const ParameterError& e) {
    return std::string("parameter: ") + e.what();
  }
  return "no error";
}

}  // namespace

TEST(LookupTable, CombinesRunsAndPicksTheNearestLength) {
  const std::string out = temp_path("combined.json");
  // Given out of order: the table sorts its horizons by length.
  combine_tables({run_table("4x.json", "64x8x8", 0.5), run_table("1x.json", "16x8x8", 0.9)}, out);
  {
    std::ifstream in(out);
    const auto j = nlohmann::json::parse(in);
    EXPECT_EQ(j["version"], 2);
    EXPECT_EQ(j["mode"], "dynamicrad");
    ASSERT_EQ(j["horizons"].size(), 2u);
    EXPECT_EQ(j["horizons"][0]["grid_frames"], 16);
    EXPECT_EQ(j["horizons"][0]["from"], "longshot_lookup_1x.json");
    EXPECT_EQ(j["horizons"][1]["proxy"]["grid"], "64x8x8");  // the run is kept whole
    EXPECT_TRUE(j["horizons"][1]["regimes"]["fast"].contains("trace"));
  }
  const LoadedTable t = read_table(out);
  EXPECT_EQ(t.version, 2);
  ASSERT_EQ(t.horizons.size(), 2u);
  EXPECT_EQ(t.horizons[0].grid_frames, 16);
  EXPECT_EQ(t.horizons[1].grid_frames, 64);
  EXPECT_DOUBLE_EQ(t.horizons[0].regimes.at("static").at("decay"), 0.9);
  EXPECT_DOUBLE_EQ(t.horizons[1].regimes.at("fast").at("decay"), 0.52);
  // Nearest on a log scale: 1x (16) and 4x (64) exactly, 1.5x → 16, 3x → 64; 2x (32) is the
  // geometric middle and goes to the shorter; 6x and a single frame to the ends.
  EXPECT_EQ(t.horizon_for(16).grid_frames, 16);
  EXPECT_EQ(t.horizon_for(64).grid_frames, 64);
  EXPECT_EQ(t.horizon_for(24).grid_frames, 16);
  EXPECT_EQ(t.horizon_for(48).grid_frames, 64);
  EXPECT_EQ(t.horizon_for(32).grid_frames, 16);
  EXPECT_EQ(t.horizon_for(33).grid_frames, 64);
  EXPECT_EQ(t.horizon_for(96).grid_frames, 64);
  EXPECT_EQ(t.horizon_for(1).grid_frames, 16);
  EXPECT_NE(error_of([&] { t.horizon_for(0); }).find("frames"), std::string::npos);
  // A version-1 table is one set for any length.
  const LoadedTable one = read_table(run_table("only.json", "16x8x8", 0.7));
  ASSERT_EQ(one.horizons.size(), 1u);
  EXPECT_EQ(one.horizon_for(64).grid_frames, 0);
  EXPECT_DOUBLE_EQ(one.horizon_for(64).regimes.at("static").at("decay"), 0.7);
  std::filesystem::remove(out);
}

TEST(LookupTable, CombineRefusesMixedOrRepeatedRuns) {
  const std::string out = temp_path("refused.json");
  const std::string a = run_table("a.json", "16x8x8", 0.9);
  EXPECT_NE(error_of([&] { combine_tables({}, out); }).find("at least one"), std::string::npos);
  EXPECT_NE(error_of([&] { combine_tables({a, run_table("b.json", "16x8x8", 0.5)}, out); })
                .find("the length and geometry of another input (16 frames, 8x8 tokens per frame, block 32)"),
            std::string::npos);
  EXPECT_NE(error_of([&] { combine_tables({a, run_table("c.json", "64x8x8", 0.5, {"static", "fast"})}, out); })
                .find("has regimes {fast, static}"),
            std::string::npos);
  EXPECT_NE(error_of([&] { combine_tables({a, run_table("d.json", "64x8x8", 0.5, {"fast"}, "dfsattn")}, out); })
                .find("is for mode dfsattn"),
            std::string::npos);
  EXPECT_NE(error_of([&] { combine_tables({a, run_table("e.json", "sixty", 0.5)}, out); }).find("no proxy grid"),
            std::string::npos);
  combine_tables({a, run_table("f.json", "64x8x8", 0.5)}, out);
  // A version-2 input brings its horizons: a run at one of their lengths and geometries repeats it.
  EXPECT_NE(error_of([&] { combine_tables({out, a}, temp_path("twice.json")); }).find("length and geometry of another input"),
            std::string::npos);
  const std::string sizes = temp_path("sizes.json");
  combine_tables({out, run_table("g.json", "16x16x16", 0.2, {"static", "slow", "fast"}, "dynamicrad", 128)}, sizes);
  const LoadedTable t = read_table(sizes);
  ASSERT_EQ(t.horizons.size(), 3u);
  EXPECT_DOUBLE_EQ(t.horizon_for(16, 16, 16, 128).regimes.at("static").at("decay"), 0.2);
  EXPECT_DOUBLE_EQ(t.horizon_for(16, 8, 8, 32).regimes.at("static").at("decay"), 0.9);
  {
    std::ifstream in(sizes);
    const auto j = nlohmann::json::parse(in);
    EXPECT_EQ(j["horizons"][0]["from"], "longshot_lookup_a.json");  // the run's file, through the version-2 input
  }
  std::filesystem::remove(sizes);
  std::filesystem::remove(out);
}

TEST(LookupTable, RefusesCorruptHorizons) {
  const std::string path = temp_path("corrupt.json");
  auto message = [&](const std::string& horizons) {
    std::ofstream(path) << R"({"format": "longshot-calibration", "version": 2, "mode": "dynamicrad", "horizons": )"
                        << horizons << "}";
    return error_of([&] { read_table(path); });
  };
  const std::string fast = R"("regimes": {"fast": {"params": {"decay": 0.3}}})";
  EXPECT_NE(message("[]").find("non-empty 'horizons'"), std::string::npos) << message("[]");
  EXPECT_NE(message("[]").find(path), std::string::npos);
  EXPECT_NE(message("[{" + fast + "}]").find("horizon 0 has no positive integer 'grid_frames'"), std::string::npos);
  EXPECT_NE(message(R"([{"grid_frames": 0, )" + fast + "}]").find("grid_frames"), std::string::npos);
  EXPECT_NE(message(R"([{"grid_frames": 16.5, )" + fast + "}]").find("grid_frames"), std::string::npos);
  EXPECT_NE(message(R"([{"grid_frames": 16, )" + fast + R"(}, {"grid_frames": 16, )" + fast + "}]").find("repeats another's length and geometry"),
            std::string::npos);
  // A regime calibrated at one length only: a long job routed there would have no parameters.
  const std::string both = R"([{"grid_frames": 16, "regimes": {"fast": {"params": {}}, "slow": {"params": {}}}},)"
                           R"( {"grid_frames": 64, )" + fast + "}]";
  EXPECT_NE(message(both).find("horizon of 64 frames has regimes {fast}"), std::string::npos) << message(both);
  EXPECT_NE(message(R"([{"grid_frames": 64, "regimes": {}}])").find("horizon of 64 frames: has no regimes"), std::string::npos);
  const std::string bad = R"([{"grid_frames": 64, "regimes": {"fast": {"params": {"warp": 1}}}}])";
  EXPECT_NE(message(bad).find("warp"), std::string::npos) << message(bad);
  std::filesystem::remove(path);
}

TEST(LookupTable, MinSparsityMarginParsesAndIsRefusedOutOfRange) {
  ObjectiveSpec o;
  parse_sparsity_floor("defaults+0.01", o);
  EXPECT_EQ(o.floor, SparsityFloor::Defaults);
  EXPECT_DOUBLE_EQ(o.floor_margin, 0.01);
  parse_sparsity_floor("defaults", o);
  EXPECT_DOUBLE_EQ(o.floor_margin, 0.0);
  for (const char* bad : {"defaults+", "defaults+x", "defaults+-0.1", "defaults+0.6", "defaults+0.01x", "defaults+nan"})
    EXPECT_NE(error_of([&] { parse_sparsity_floor(bad, o); }).find("min-sparsity"), std::string::npos) << bad;
}

// The margin raises the defaults' (rescaled) floor by exactly X, the search keeps above it, and
// the table records it. 24 × 4 × 8 tokens, block 16, as tests/calibrate/test_sparsity_floor.cpp.
TEST(LookupTable, MinSparsityMarginRaisesTheFloor) {
  ObjectiveSpec o;
  o.mode = "dynamicrad";
  o.target_sparsity = 0.0;
  o.fixed["dense_steps"] = 11;
  o.schedule_steps = 20;
  parse_sparsity_floor("defaults+0.02", o);
  ProxySpec proxy;
  proxy.grid = attention::TokenGrid{24, 4, 8};
  proxy.block_size = 16;
  TpeOptions options;
  options.trials = 14;
  options.startup_trials = 6;
  const auto t = calibrate::calibrate(o, parse_regimes("fast"), proxy, search_box("dynamicrad"), options);
  const auto& r = t.regimes.at(0);
  const double mode_floor = 1.0 - (4.0 * 24 - 4) / (24.0 * 24);  // the defaults keep no far pair here
  EXPECT_NEAR(r.floor, mode_floor * 8.0 / 9.0 + 0.02, 1e-12);
  EXPECT_GE(r.best.sparsity, r.floor - 1e-12);
  size_t refused = 0;
  for (const auto& tr : r.search.trace) {
    const bool below = tr.outcome.metrics.at("sparsity") < r.floor;
    EXPECT_EQ(tr.outcome.metrics.at("refused") != 0.0, below) << "trial " << tr.index;
    refused += below;
  }
  const std::string path = temp_path("margin.json");
  write_table(t, path);
  std::ifstream in(path);
  const auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j["objective"]["min_sparsity"], "defaults");
  EXPECT_DOUBLE_EQ(j["objective"]["min_sparsity_margin"].get<double>(), 0.02);
  std::printf("margin 0.02: floor %.4f, best sparsity %.4f nmse %.5f, %zu of %zu trials refused\n", r.floor,
              r.best.sparsity, r.best.nmse, refused, r.search.trace.size());
  std::filesystem::remove(path);
}

// One table for several sizes: the job's tokens per frame and block pick among the horizons
// calibrated at them (whatever their length), and only a job at no calibrated geometry picks by
// length among all (the caller warns then, tests/pipeline/test_regime.cpp).
TEST(LookupTable, TheJobsGeometryPicksAmongTheHorizonsCalibratedAtIt) {
  const std::string out = temp_path("geometries.json");
  combine_tables({run_table("g1.json", "16x8x8", 0.9), run_table("g4.json", "64x8x8", 0.5),
                  run_table("i1.json", "16x16x16", 0.3, {"static", "slow", "fast"}, "dynamicrad", 128)},
                 out);
  const LoadedTable t = read_table(out);
  ASSERT_EQ(t.horizons.size(), 3u);
  auto decay = [&](const TableHorizon& h) { return h.regimes.at("static").at("decay"); };
  EXPECT_DOUBLE_EQ(decay(t.horizon_for(16, 8, 8, 32)), 0.9);
  EXPECT_DOUBLE_EQ(decay(t.horizon_for(64, 8, 8, 32)), 0.5);
  EXPECT_DOUBLE_EQ(decay(t.horizon_for(16, 16, 16, 128)), 0.3);
  EXPECT_DOUBLE_EQ(decay(t.horizon_for(64, 16, 16, 128)), 0.3);  // the only one at 16x16, block 128
  EXPECT_DOUBLE_EQ(decay(t.horizon_for(64, 16, 16, 64)), 0.3);   // block 64: the same tokens per frame come first
  EXPECT_DOUBLE_EQ(decay(t.horizon_for(16, 8, 8, 64)), 0.9);
  EXPECT_DOUBLE_EQ(decay(t.horizon_for(64, 8, 8, 128)), 0.5);
  EXPECT_DOUBLE_EQ(decay(t.horizon_for(64, 4, 4, 32)), 0.5);
  EXPECT_DOUBLE_EQ(decay(t.horizon_for(16)), 0.9);                // no geometry: a length tie goes to the first
  EXPECT_TRUE(t.horizon_for(64, 16, 16, 128).same_geometry(16, 16, 128));
  EXPECT_FALSE(t.horizon_for(64, 16, 16, 64).same_geometry(16, 16, 64));
  EXPECT_DOUBLE_EQ(decay(t.horizon_for(64, 12, 12, 32)), 0.5);  // no horizon at 12x12: every one, by length
  std::filesystem::remove(out);
}
