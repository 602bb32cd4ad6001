// tests/recipes/sim_harness.hpp: what the recipes' simulator tests share.
//
// - `fut`: a completion token giving a std::future of the completion's arguments as a tuple;
//   `wait(cluster, future)` runs the cluster until it is ready (a virtual-time limit turns a
//   hang into an exception).
// - `seed_count()`: how many seeds a fault sweep runs: the environment variable ZKR_SEEDS,
//   default 20; printed once per program so a log says what was covered.
// - `seed_trace`: a GoogleTest scoped trace naming the seed and the command that replays it,
//   so every failure inside a sweep says how to reproduce it.
// - `fenced_resource`: a simulated resource guarded by fencing tokens; it refuses (and
//   counts) a write whose token is lower than the highest it has seen.
// - `holder_checker`: records who believes it holds (a lock, leadership) over virtual time
//   and fails on two believers at one instant among processes that are not paused.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>

#include <gtest/gtest.h>

#include <zkr/sim/cluster.hpp>
#include <zkr/sim/session.hpp>

namespace zkr::test::sim {

using namespace std::chrono_literals;

struct fut_t {};
inline constexpr fut_t fut{};

}  // namespace zkr::test::sim

template <class... Args>
struct boost::asio::async_result<zkr::test::sim::fut_t, void(Args...)> {
  using return_type = std::future<std::tuple<std::decay_t<Args>...>>;
  template <class Initiation, class... InitArgs>
  static return_type initiate(Initiation&& init, zkr::test::sim::fut_t, InitArgs&&... args) {
    auto promise = std::make_shared<std::promise<std::tuple<std::decay_t<Args>...>>>();
    auto future = promise->get_future();
    std::forward<Initiation>(init)([promise](Args... a) { promise->set_value(std::make_tuple(std::move(a)...)); },
                                   std::forward<InitArgs>(args)...);
    return future;
  }
};

namespace zkr::test::sim {

/// Runs `c` until `f` is ready and returns its value; throws after `limit` of virtual time.
template <class T>
T wait(zkr::sim::cluster& c, std::future<T> f, zkr::sim::clock_duration limit = 300s) {
  const bool ok = c.run_until([&] { return f.wait_for(0s) == std::future_status::ready; }, limit);
  if (!ok) throw std::runtime_error("operation did not complete within the virtual time limit");
  return f.get();
}

/// Seeds per sweep: $ZKR_SEEDS or 20.
inline int seed_count() {
  static const int n = [] {
    int v = 20;
    if (const char* env = std::getenv("ZKR_SEEDS")) {
      try {
        v = std::stoi(env);
      } catch (...) {
        v = 20;
      }
      if (v < 1) v = 1;
    }
    std::cout << "[ seeds    ] fault sweeps run " << v << " seeds each (ZKR_SEEDS)" << std::endl;
    return v;
  }();
  return n;
}

/// Names the seed in every failure of its scope, with a command that replays it.
#define ZKR_SEED_TRACE(seed)                                                                                        \
  SCOPED_TRACE(::testing::Message() << "seed " << (seed) << " (replay: ZKR_SEED=" << (seed) << " "                 \
                                    << ::testing::UnitTest::GetInstance()->current_test_info()->test_suite_name() \
                                    << " --gtest_filter="                                                          \
                                    << ::testing::UnitTest::GetInstance()->current_test_info()->test_suite_name() \
                                    << "." << ::testing::UnitTest::GetInstance()->current_test_info()->name() << ")")

/// The first seed of a sweep: $ZKR_SEED (to replay one) or 1.
inline std::uint64_t first_seed() {
  if (const char* env = std::getenv("ZKR_SEED")) return std::strtoull(env, nullptr, 10);
  return 1;
}
/// Seeds to sweep: just $ZKR_SEED if set, else seed_count() of them.
inline int sweep_count() { return std::getenv("ZKR_SEED") ? 1 : seed_count(); }

/// A resource that only accepts writes with a fencing token at least as high as any it has
/// seen (what a storage system does with zkr's czxid tokens).
class fenced_resource {
 public:
  /// Returns true if accepted.
  bool write(std::int64_t token) {
    if (token < highest_) {
      ++refused_;
      return false;
    }
    highest_ = token;
    ++accepted_;
    return true;
  }
  std::int64_t highest() const noexcept { return highest_; }
  int refused() const noexcept { return refused_; }
  int accepted() const noexcept { return accepted_; }

 private:
  std::int64_t highest_ = 0;
  int refused_ = 0;
  int accepted_ = 0;
};

/// Tracks beliefs of holding (a lock, leadership) and checks mutual exclusion at every
/// change: among holders whose process is not paused, at most one at any virtual instant.
class holder_checker {
 public:
  explicit holder_checker(zkr::sim::cluster& c) : c_(c) {}
  /// `who` (a process) now believes it holds / no longer does.
  void set(zkr::sim::process_id who, bool holds) {
    if (holds) {
      holders_[who] = c_.now();
    } else {
      holders_.erase(who);
    }
    check();
  }
  /// Fails the test if two unpaused processes believe they hold. Returns the count of such.
  std::size_t check() {
    std::size_t n = 0;
    for (const auto& [p, since] : holders_) {
      if (!c_.get_scheduler().paused(p)) ++n;
    }
    if (n > 1) {
      ++violations_;
      ADD_FAILURE() << n << " processes believe they hold at t=" << c_.now().time_since_epoch().count() << " ns";
    }
    max_ = std::max(max_, n);
    return n;
  }
  bool holds(zkr::sim::process_id who) const { return holders_.contains(who); }
  int violations() const noexcept { return violations_; }

 private:
  zkr::sim::cluster& c_;
  std::map<zkr::sim::process_id, zkr::sim::clock_time> holders_;
  std::size_t max_ = 0;
  int violations_ = 0;
};

/// True if `name` is Curator's protected sequential name for `marker` ("lock-", "latch-"):
/// "_c_" + a lower-case version-4 UUID + "-" + marker + ten digits. (No std::regex: GCC 12's
/// <regex> trips -Wmaybe-uninitialized in the ASan build.)
inline bool is_curator_protected_name(std::string_view name, std::string_view marker) {
  constexpr std::size_t uuid_len = 36;
  if (!name.starts_with("_c_") || name.size() != 3 + uuid_len + 1 + marker.size() + 10) return false;
  const auto uuid = name.substr(3, uuid_len);
  for (std::size_t i = 0; i < uuid_len; ++i) {
    const char c = uuid[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  if (uuid[14] != '4' || std::string_view("89ab").find(uuid[19]) == std::string_view::npos) return false;
  if (name[3 + uuid_len] != '-' || name.substr(3 + uuid_len + 1, marker.size()) != marker) return false;
  const auto digits = name.substr(name.size() - 10);
  return std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace zkr::test::sim
