// tests/recipes/watch_support.hpp: what the watch and cache tests share.
//
// - `counting_session<S>`: a backend session that forwards everything to a real one and
//   counts the reads it is asked for (get, get_children, exists; with and without a watch)
//   and syncs: an independent witness of what a watch_hub costs, on both backends.
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

#if __has_include(<zkr/sim/cluster.hpp>)
#include <zkr/sim/cluster.hpp>
#endif

namespace zkr::test::watch {

/// Forwards to `S` and counts reads. Counters are atomics (the real backend's handlers run
/// on its strand, the test reads them from its own thread).
template <zkr::backend S>
class counting_session {
 public:
  using executor_type = typename S::executor_type;
  using timer_type = typename S::timer_type;

  explicit counting_session(S& s) : s_(s) {}

  S& inner() noexcept { return s_; }

  executor_type get_executor() const { return s_.get_executor(); }
  std::chrono::steady_clock::time_point steady_now() const { return s_.steady_now(); }
  std::chrono::system_clock::time_point wall_now() const { return s_.wall_now(); }
  prng& random() { return s_.random(); }
  session_state state() const { return s_.state(); }
  std::uint64_t generation() const { return s_.generation(); }
  std::int64_t session_id() const { return s_.session_id(); }
  std::chrono::milliseconds negotiated_timeout() const { return s_.negotiated_timeout(); }
  subscription subscribe(state_listener l) { return s_.subscribe(std::move(l)); }

  template <class T>
  auto async_wait_connected(T&& t) {
    return s_.async_wait_connected(std::forward<T>(t));
  }
  template <class T>
  auto async_create(std::string_view p, std::string_view d, const create_options& o, T&& t) {
    return s_.async_create(p, d, o, std::forward<T>(t));
  }
  template <class T>
  auto async_remove(std::string_view p, std::int32_t v, T&& t) {
    return s_.async_remove(p, v, std::forward<T>(t));
  }
  template <class T>
  auto async_exists(std::string_view p, T&& t) {
    ++exists_;
    return s_.async_exists(p, std::forward<T>(t));
  }
  template <class T>
  auto async_exists(std::string_view p, watch_handler w, T&& t) {
    ++exists_;
    ++with_watch_;
    return s_.async_exists(p, std::move(w), std::forward<T>(t));
  }
  template <class T>
  auto async_get(std::string_view p, T&& t) {
    ++gets_;
    return s_.async_get(p, std::forward<T>(t));
  }
  template <class T>
  auto async_get(std::string_view p, watch_handler w, T&& t) {
    ++gets_;
    ++with_watch_;
    return s_.async_get(p, std::move(w), std::forward<T>(t));
  }
  template <class T>
  auto async_get_children(std::string_view p, T&& t) {
    ++children_;
    return s_.async_get_children(p, std::forward<T>(t));
  }
  template <class T>
  auto async_get_children(std::string_view p, watch_handler w, T&& t) {
    ++children_;
    ++with_watch_;
    return s_.async_get_children(p, std::move(w), std::forward<T>(t));
  }
  template <class T>
  auto async_set(std::string_view p, std::string_view d, std::int32_t v, T&& t) {
    return s_.async_set(p, d, v, std::forward<T>(t));
  }
  template <class T>
  auto async_get_acl(std::string_view p, T&& t) {
    return s_.async_get_acl(p, std::forward<T>(t));
  }
  template <class T>
  auto async_set_acl(std::string_view p, const acl_list& a, std::int32_t v, T&& t) {
    return s_.async_set_acl(p, a, v, std::forward<T>(t));
  }
  template <class T>
  auto async_multi(std::vector<op> ops, T&& t) {
    return s_.async_multi(std::move(ops), std::forward<T>(t));
  }
  template <class T>
  auto async_sync(std::string_view p, T&& t) {
    ++syncs_;
    return s_.async_sync(p, std::forward<T>(t));
  }
  template <class T>
  auto async_add_auth(std::string_view scheme, std::string_view cred, T&& t) {
    return s_.async_add_auth(scheme, cred, std::forward<T>(t));
  }
  template <class T>
  auto async_close(T&& t) {
    return s_.async_close(std::forward<T>(t));
  }

  /// Reads of any kind so far.
  std::uint64_t reads() const noexcept { return gets_.load() + children_.load() + exists_.load(); }
  std::uint64_t gets() const noexcept { return gets_.load(); }
  std::uint64_t children_reads() const noexcept { return children_.load(); }
  std::uint64_t exists_reads() const noexcept { return exists_.load(); }
  /// Reads that asked for a watch (client-side watcher registrations, at most).
  std::uint64_t reads_with_watch() const noexcept { return with_watch_.load(); }
  std::uint64_t syncs() const noexcept { return syncs_.load(); }

 private:
  S& s_;
  std::atomic<std::uint64_t> gets_{0}, children_{0}, exists_{0}, with_watch_{0}, syncs_{0};
};

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
