// zkr/retry.hpp: retry policies, after Curator's RetryPolicy implementations.
//
// A policy answers one question: after `retries_so_far` failed retries (0 before the first
// retry) and `elapsed` time since the first attempt, how long to wait before the next try,
// or give up (nullopt). A policy never reads a clock and never draws its own randomness:
// the caller passes the elapsed time from the session's clock and the session's `prng`, so
// the same recipe code backs off in real time against ZooKeeper and in virtual time,
// reproducibly, in the simulator.
//
// Policies are immutable values; `next_delay` is const, so one policy may serve many
// operations. Arguments are validated on every call instead of asserted: a negative count,
// delay or elapsed time makes the policy give up at once (nullopt), never undefined
// behaviour.
//
// What is retryable is the caller's decision (see zkr::retryable and zkr::outcome_unknown in
// zkr/error.hpp): after connection loss a non-idempotent request must first find out whether
// it was applied.
//
// Thread safety: policies are immutable; `any_retry_policy` copies are independent. The
// `prng` passed in must not be used concurrently.
#pragma once

#include <chrono>
#include <concepts>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <type_traits>
#include <utility>

#include <zkr/random.hpp>

namespace zkr {

/// A retry policy: `p.next_delay(retries_so_far, elapsed, rng)` returns the delay before
/// the next attempt, or nullopt to give up. Must be copyable and callable on a const object.
template <class P>
concept retry_policy =
    std::copy_constructible<P> &&
    requires(const P& p, int retries_so_far, std::chrono::milliseconds elapsed, prng& rng) {
      { p.next_delay(retries_so_far, elapsed, rng) } -> std::same_as<std::optional<std::chrono::milliseconds>>;
    };

/// Never retries (Curator's RetryNTimes(0, ...)): always gives up.
struct retry_none {
  std::optional<std::chrono::milliseconds> next_delay(int, std::chrono::milliseconds,
                                                      prng&) const noexcept {
    return std::nullopt;
  }
};

/// Retries up to `max_retries` times, waiting `delay` before each retry (Curator's
/// RetryNTimes). Gives up when retries_so_far >= max_retries, or at once if any count,
/// delay or elapsed time is negative. Draws no randomness.
struct retry_n_times {
  int max_retries = 0;
  std::chrono::milliseconds delay{0};

  std::optional<std::chrono::milliseconds> next_delay(int retries_so_far,
                                                      std::chrono::milliseconds elapsed,
                                                      prng&) const noexcept {
    if (max_retries < 0 || delay.count() < 0 || retries_so_far < 0 || elapsed.count() < 0) {
      return std::nullopt;
    }
    if (retries_so_far >= max_retries) return std::nullopt;
    return delay;
  }
};

/// Retries up to `max_retries` times (at most 29, as Curator pins it) with a randomised
/// exponential backoff, exactly as Curator's ExponentialBackoffRetry (from Hadoop): before
/// retry number r (0-based, = retries_so_far) it waits
///     base * max(1, uniform{0 .. 2^(r+1) - 1})
/// capped at `max_delay`. So the multiplier lies in [1, 2^(r+1)), with 1 twice as likely as
/// the others (Curator's max(1, nextInt(...))); the first retry always waits `base`.
/// Unlike Curator's int arithmetic, the product never overflows: it saturates at
/// `max_delay`. Gives up at once if base, max_delay, max_retries, retries_so_far or elapsed is
/// negative. Draws exactly one value from `rng` per retry granted, none when giving up.
struct exponential_backoff {
  static constexpr int max_retries_limit = 29;  ///< Curator's MAX_RETRIES_LIMIT

  std::chrono::milliseconds base{0};
  std::chrono::milliseconds max_delay{std::numeric_limits<std::int32_t>::max()};  ///< Curator's default
  int max_retries = 0;

  std::optional<std::chrono::milliseconds> next_delay(int retries_so_far,
                                                      std::chrono::milliseconds elapsed,
                                                      prng& rng) const noexcept {
    if (base.count() < 0 || max_delay.count() < 0 || max_retries < 0 || retries_so_far < 0 ||
        elapsed.count() < 0) {
      return std::nullopt;
    }
    const int limit = max_retries < max_retries_limit ? max_retries : max_retries_limit;
    if (retries_so_far >= limit) return std::nullopt;
    // retries_so_far <= 28 here, so the shift stays below 2^30.
    const std::uint64_t bound = std::uint64_t{1} << (retries_so_far + 1);
    const std::uint64_t draw = rng.uniform(bound);
    const std::int64_t multiplier = draw == 0 ? 1 : static_cast<std::int64_t>(draw);
    const std::int64_t b = base.count();
    const std::int64_t cap = max_delay.count();
    // b * multiplier > cap  <=>  multiplier > cap / b (integer division, b > 0): no overflow.
    if (b != 0 && multiplier > cap / b) return max_delay;
    return std::chrono::milliseconds(b * multiplier);
  }
};

/// Retries while less than `max_elapsed` has passed since the first attempt, waiting
/// `delay` before each retry (Curator's RetryUntilElapsed). As in Curator, the wait is not
/// shortened to the time left, so the last attempt may start up to `delay` after
/// `max_elapsed`. Gives up at once if any argument is negative, and (as Curator's
/// SleepingRetry) when retries_so_far reaches INT_MAX. Draws no randomness.
struct retry_until_elapsed {
  std::chrono::milliseconds max_elapsed{0};
  std::chrono::milliseconds delay{0};

  std::optional<std::chrono::milliseconds> next_delay(int retries_so_far,
                                                      std::chrono::milliseconds elapsed,
                                                      prng&) const noexcept {
    if (max_elapsed.count() < 0 || delay.count() < 0 || retries_so_far < 0 ||
        elapsed.count() < 0) {
      return std::nullopt;
    }
    if (retries_so_far == std::numeric_limits<int>::max()) return std::nullopt;
    if (elapsed >= max_elapsed) return std::nullopt;
    return delay;
  }
};

/// Holds any retry policy by value (type erasure), so sessions and recipes can store a
/// user-chosen policy without being templates over it. Copyable: copies are independent.
/// A default-constructed or moved-from one behaves as `retry_none`. Itself a
/// `retry_policy`; its `next_delay` returns what the held policy returns, and throws only if
/// that does.
class any_retry_policy {
 public:
  /// Behaves as `retry_none`. Never fails.
  any_retry_policy() noexcept = default;

  /// Holds a copy of `policy` (implicit, like std::function). Throws only std::bad_alloc.
  template <class P>
    requires(!std::same_as<std::remove_cvref_t<P>, any_retry_policy> &&
             retry_policy<std::remove_cvref_t<P>>)
  any_retry_policy(P&& policy)  // NOLINT(google-explicit-constructor): a policy is-a policy
      : impl_([p = std::remove_cvref_t<P>(std::forward<P>(policy))](
                  int retries_so_far, std::chrono::milliseconds elapsed, prng& rng) {
          return p.next_delay(retries_so_far, elapsed, rng);
        }) {}

  /// The held policy's answer (nullopt for a moved-from object).
  std::optional<std::chrono::milliseconds> next_delay(int retries_so_far,
                                                      std::chrono::milliseconds elapsed,
                                                      prng& rng) const {
    // Empty when default-constructed or moved from: give up, as retry_none.
    if (!impl_) return std::nullopt;
    return impl_(retries_so_far, elapsed, rng);
  }

 private:
  std::function<std::optional<std::chrono::milliseconds>(int, std::chrono::milliseconds, prng&)>
      impl_;
};

static_assert(retry_policy<retry_none>);
static_assert(retry_policy<retry_n_times>);
static_assert(retry_policy<exponential_backoff>);
static_assert(retry_policy<retry_until_elapsed>);
static_assert(retry_policy<any_retry_policy>);

}  // namespace zkr
