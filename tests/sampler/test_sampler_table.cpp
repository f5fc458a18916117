// The sampler and grid tables (registries built the same way as the others, docs/architecture.md):
// no name twice, every listed name builds its sampler and schedule, and unknown names are refused
// with messages listing the valid ones.
#include <gtest/gtest.h>

#include <functional>
#include <set>
#include <string>

#include "engine/common/error.h"
#include "engine/sampler/flow_matching.h"

using namespace longshot;
using namespace longshot::sampler;

namespace {
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ParameterError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(SamplerTable, NoNameTwiceAndEveryNameBuilds) {
  EXPECT_EQ(sampler_names(), (std::vector<std::string>{"unipc", "euler", "dpm++2m"}));
  std::set<std::string> seen;
  for (const auto& name : sampler_names()) {
    EXPECT_TRUE(seen.insert(name).second) << "'" << name << "' is listed twice";
    const auto s = make_sampler(name, 4, 3.0);
    EXPECT_EQ(s->name(), name);
    EXPECT_EQ(s->num_steps(), 4);
    // Auto picks the reference grid the sampler was verified on.
    EXPECT_EQ(s->grid(), name == "euler" ? Grid::Wan : Grid::Diffusers) << name;
    for (Grid g : {Grid::Wan, Grid::Diffusers}) {
      EXPECT_EQ(make_sampler(name, 4, 3.0, g)->sigmas(), make_schedule(name, 4, 3.0, g).sigmas) << name;
      EXPECT_EQ(make_schedule(name, 4, 3.0, g).grid, g) << name;
    }
  }
  // The Wan and diffusers grids differ for every sampler (a table entry wired to the wrong builder
  // would give the same σ twice).
  for (const auto& name : sampler_names())
    EXPECT_NE(make_schedule(name, 4, 3.0, Grid::Wan).timesteps, make_schedule(name, 4, 3.0, Grid::Diffusers).timesteps)
        << name;
}

TEST(SamplerTable, UnknownSamplerListsEveryName) {
  for (const auto& msg : {error_of([] { make_sampler("heun", 4, 3.0); }), error_of([] { make_schedule("heun", 4, 3.0); })}) {
    EXPECT_EQ(msg, "invalid parameter 'sampler': unknown sampler 'heun' (known: unipc, euler, dpm++2m)");
  }
}

TEST(SamplerTable, GridNamesRoundTrip) {
  for (Grid g : {Grid::Auto, Grid::Wan, Grid::Diffusers}) EXPECT_EQ(parse_grid(grid_name(g)), g);
  EXPECT_STREQ(grid_name(Grid::Diffusers), "diffusers");
  EXPECT_EQ(error_of([] { parse_grid("karras"); }), "invalid parameter 'schedule': expected auto, wan or diffusers, got 'karras'");
}
