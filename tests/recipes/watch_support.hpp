// tests/recipes/watch_support.hpp: what the watch and cache tests share.
//
// - `reads(probe)`: the reads a probe_session (probe_session.hpp) forwarded: an independent
//   witness of what a watch_hub costs, on both backends.
// - `history`: the states one consumer was handed, in order, checked for the monotonicity
//   rules of node_watch / children_watch (never backwards, re-creation after a delete has a
//   later czxid) by `check_*`.
// - `leader_node` / `leader_children`: what the simulated ensemble's leader holds.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include <zkr/backend.hpp>
#include <zkr/recipes/impl/watch_loop.hpp>

#include "recipes/probe_session.hpp"

#if __has_include(<zkr/sim/cluster.hpp>)
#include <zkr/sim/cluster.hpp>
#endif

namespace zkr::test::watch {

/// Reads (get, get_children, exists) a probe_session (probe_session.hpp) has forwarded.
template <class P>
std::uint64_t reads(P& probe) {
  auto& c = probe.counts();
  return c.get.load() + c.get_children.load() + c.exists.load();
}

/// Thread-safe list of the states one consumer received, in order.
template <class State>
class history {
 public:
  void push(const State& s) {
    std::lock_guard lock(mu_);
    items_.push_back(s);
  }
  std::vector<State> items() const {
    std::lock_guard lock(mu_);
    return items_;
  }
  std::size_t size() const {
    std::lock_guard lock(mu_);
    return items_.size();
  }
  std::optional<State> back() const {
    std::lock_guard lock(mu_);
    if (items_.empty()) return std::nullopt;
    return items_.back();
  }

 private:
  mutable std::mutex mu_;
  std::vector<State> items_;
};

inline std::int64_t key_of(const recipes::node_state& s) { return s.stat.mzxid; }
inline std::int64_t key_of(const recipes::children_state& s) { return s.stat.pzxid; }

/// Checks the rules a consumer's sequence must follow; returns "" or what broke, naming the
/// positions. Present states: order key (mzxid / pzxid) strictly increasing; a present state
/// after an absent one: czxid above every key seen before (a re-creation, not an old state);
/// the change field agrees with the previous state; no two equal states in a row.
template <class State>
std::string check_sequence(const std::vector<State>& xs) {
  std::ostringstream bad;
  std::int64_t high = 0;
  const State* prev = nullptr;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const auto& s = xs[i];
    recipes::node_change want = recipes::node_change::initial;
    if (prev != nullptr) {
      if (!prev->exists && !s.exists) bad << "#" << i << ": absent twice in a row; ";
      if (!prev->exists) {
        want = recipes::node_change::created;
      } else if (!s.exists) {
        want = recipes::node_change::deleted;
      } else {
        want = prev->stat.czxid != s.stat.czxid ? recipes::node_change::recreated : recipes::node_change::changed;
      }
    }
    if (s.change != want) bad << "#" << i << ": change " << to_string(s.change) << ", expected " << to_string(want) << "; ";
    if (s.exists) {
      if (key_of(s) <= high) bad << "#" << i << ": key " << key_of(s) << " not above " << high << " (backwards); ";
      if (prev != nullptr && !prev->exists && s.stat.czxid <= high) {
        bad << "#" << i << ": present after absent with czxid " << s.stat.czxid << " <= " << high
            << " (an old incarnation came back); ";
      }
      high = std::max(high, key_of(s));
    }
    prev = &s;
  }
  return bad.str();
}

#if __has_include(<zkr/sim/cluster.hpp>)
/// The node at `path` as the leader (or server 0 without one) holds it, or nullptr.
inline const zkr::sim::data_tree::node* leader_node(const zkr::sim::cluster& c, std::string_view path) {
  return c.tree(c.leader().value_or(0)).find(path);
}
/// Sum of server-side watches over every server.
inline std::size_t server_watches(const zkr::sim::cluster& c) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < c.size(); ++i) n += c.tree(i).watch_count();
  return n;
}
#endif

}  // namespace zkr::test::watch
