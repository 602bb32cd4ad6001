// sim/tools/scenarios.hpp: the scenarios `zkr-sim` knows, in the order `zkr-sim list` shows
// them. Each lives in its own header (scenario_*.hpp) with its story at the top; to add one,
// write `run_result run_x(const run_config&)` there and add a line below.
#pragma once

#include <array>
#include <span>
#include <string>
#include <string_view>

#include "scenario_demo.hpp"
#include "scenario_gc_pause.hpp"
#include "scenario_stale_read.hpp"
#include "scenario_support.hpp"

namespace zkr::sim::tools {

inline constexpr std::array<scenario, 3> all_scenarios{{
    {"demo",
     "three clients register and watch each other through a leader election and a partition that expires one of them",
     &run_demo},
    {"gc-pause", "a worker paused longer than its session timeout loses its node while it still believes it holds it",
     &run_gc_pause},
    {"stale-read", "a lagging follower serves a stale read after an acknowledged write, until sync", &run_stale_read},
}};

/// The scenarios, in listing order.
inline std::span<const scenario> scenarios() { return all_scenarios; }

/// The scenario called `name`, or null.
inline const scenario* find_scenario(std::string_view name) {
  for (const auto& s : all_scenarios) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

/// "demo, gc-pause, stale-read".
inline std::string scenario_names() {
  std::string out;
  for (const auto& s : all_scenarios) {
    if (!out.empty()) out += ", ";
    out += s.name;
  }
  return out;
}

}  // namespace zkr::sim::tools
