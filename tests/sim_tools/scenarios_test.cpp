// Goal: every zkr-sim scenario is deterministic and tells the story it claims.
// Method: each scenario function runs with string streams as its outputs. The same seed twice
// must give the same bytes (timeline + summary, JSON lines) and the same hash; a run without
// outputs must give the same hash (tracing to a stream changes nothing); another seed must
// give different bytes; and the scenario's own story checks must pass on a sweep of seeds.
// A failure prints the seed and the command that replays it.
#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

#include "scenarios.hpp"

namespace {

namespace tools = zkr::sim::tools;

struct outputs {
  std::string text;
  std::string json;
  tools::run_result result;
};

outputs run(const tools::scenario& s, std::uint64_t seed) {
  std::ostringstream text, json;
  tools::run_config cfg;
  cfg.seed = seed;
  cfg.out = &text;
  cfg.json = &json;
  outputs o;
  o.result = s.run(cfg);
  o.text = text.str();
  o.json = json.str();
  return o;
}

std::string replay(const tools::scenario& s, std::uint64_t seed) {
  return "replay: zkr-sim run " + std::string(s.name) + " --seed " + std::to_string(seed);
}

class scenario_test : public ::testing::TestWithParam<std::string_view> {
 protected:
  const tools::scenario& sc() const {
    const auto* s = tools::find_scenario(GetParam());
    EXPECT_NE(s, nullptr);
    return *s;
  }
};

TEST_P(scenario_test, same_seed_gives_the_same_bytes) {
  const auto a = run(sc(), 7);
  const auto b = run(sc(), 7);
  ASSERT_FALSE(a.text.empty());
  ASSERT_FALSE(a.json.empty());
  EXPECT_EQ(a.text, b.text) << replay(sc(), 7);
  EXPECT_EQ(a.json, b.json) << replay(sc(), 7);
  EXPECT_EQ(a.result.trace_hash, b.result.trace_hash);
  EXPECT_EQ(a.result.scheduler_events, b.result.scheduler_events);
  EXPECT_GT(a.result.trace_events, 0u);
  EXPECT_EQ(a.text.find(tools::nbsp), std::string::npos) << "an unbreakable space leaked into the output";
  EXPECT_EQ(a.json.find("\\u001f"), std::string::npos) << "an unbreakable space leaked into the trace";
  EXPECT_NE(a.text.find("checks: all passed"), std::string::npos) << replay(sc(), 7);
}

TEST_P(scenario_test, outputs_do_not_change_the_run) {
  const auto a = run(sc(), 3);
  tools::run_config quiet;
  quiet.seed = 3;
  const auto r = sc().run(quiet);
  EXPECT_EQ(r.trace_hash, a.result.trace_hash) << replay(sc(), 3);
  EXPECT_EQ(r.trace_events, a.result.trace_events);
  EXPECT_EQ(r.scheduler_events, a.result.scheduler_events);
  EXPECT_EQ(r.ok, a.result.ok);
}

TEST_P(scenario_test, another_seed_differs) {
  const auto a = run(sc(), 1);
  const auto b = run(sc(), 2);
  EXPECT_NE(a.json, b.json);
  EXPECT_NE(a.text, b.text);
  EXPECT_NE(a.result.trace_hash, b.result.trace_hash);
}

TEST_P(scenario_test, story_holds_across_seeds) {
  constexpr std::uint64_t seeds = 100;
  for (std::uint64_t seed = 0; seed < seeds; ++seed) {
    tools::run_config cfg;
    cfg.seed = seed;
    const auto r = sc().run(cfg);
    EXPECT_TRUE(r.ok) << "seed " << seed << ": " << (r.failed_checks.empty() ? "" : r.failed_checks.front())
                      << " (" << r.failed_checks.size() << " failed); " << replay(sc(), seed);
  }
}

INSTANTIATE_TEST_SUITE_P(all, scenario_test, ::testing::Values("demo", "gc-pause", "stale-read"),
                         [](const auto& info) {
                           std::string n(info.param);
                           for (auto& ch : n) {
                             if (ch == '-') ch = '_';
                           }
                           return n;
                         });

TEST(scenarios, every_listed_scenario_is_tested_and_described) {
  std::size_t n = 0;
  for (const auto& s : tools::scenarios()) {
    ++n;
    EXPECT_FALSE(s.description.empty()) << s.name;
    EXPECT_EQ(s.description.find('\n'), std::string_view::npos) << s.name;
    EXPECT_EQ(tools::find_scenario(s.name), &s);
  }
  EXPECT_EQ(n, 3u) << "a new scenario needs its line in INSTANTIATE_TEST_SUITE_P above";
  EXPECT_EQ(tools::find_scenario("no-such-scenario"), nullptr);
}

}  // namespace
