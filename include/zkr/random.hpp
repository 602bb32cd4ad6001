// zkr/random.hpp: the one pseudo-random generator zkr uses.
//
// Recipes never draw their own randomness: jitter, backoff and tie-breaking come from the
// session's `prng`, and the simulator decides every delay, drop and fault from one seeded
// `prng`. For a seed to replay a run byte for byte on any compiler and standard library,
// the generator and every distribution are written out here: std:: distributions are
// implementation-defined and must not be used.
//
// The generator is xoshiro256** 1.0 (Blackman and Vigna, https://prng.di.unimi.it/), its
// 256-bit state filled from the 64-bit seed by splitmix64, as the authors recommend. It is
// not cryptographically secure.
//
// Thread safety: a `prng` is a plain value; use one per thread (or per session strand).
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>
#include <random>
#include <type_traits>

namespace zkr {

namespace detail {

/// splitmix64: one step of the generator that seeds xoshiro (and mixes fork seeds).
constexpr std::uint64_t splitmix64_next(std::uint64_t& state) noexcept {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

constexpr std::uint64_t rotl64(std::uint64_t x, int k) noexcept {
  return (x << k) | (x >> (64 - k));
}

/// The full 128-bit product of two 64-bit numbers, portably (no __int128, so MSVC and
/// -Wpedantic builds agree with GCC). Returns the high half; `low` receives the low half.
constexpr std::uint64_t mul_64x64(std::uint64_t a, std::uint64_t b, std::uint64_t& low) noexcept {
  const std::uint64_t a_lo = a & 0xFFFFFFFFull, a_hi = a >> 32;
  const std::uint64_t b_lo = b & 0xFFFFFFFFull, b_hi = b >> 32;
  const std::uint64_t lo_lo = a_lo * b_lo;
  const std::uint64_t hi_lo = a_hi * b_lo;
  const std::uint64_t lo_hi = a_lo * b_hi;
  const std::uint64_t hi_hi = a_hi * b_hi;
  const std::uint64_t cross = (lo_lo >> 32) + (hi_lo & 0xFFFFFFFFull) + lo_hi;
  low = (cross << 32) | (lo_lo & 0xFFFFFFFFull);
  return hi_hi + (hi_lo >> 32) + (cross >> 32);
}

}  // namespace detail

/// A deterministic pseudo-random generator: the same seed gives the same sequence of
/// results from every member function, on every platform. Satisfies
/// std::uniform_random_bit_generator, but pass it to zkr's own distributions (the member
/// functions below), not to std:: ones, whenever a result must replay.
class prng {
 public:
  using result_type = std::uint64_t;

  /// Seeds the 256-bit state from `seed` through splitmix64. Every seed (0 included) gives
  /// a valid, non-zero state: splitmix64 never yields four zero words in a row.
  constexpr explicit prng(std::uint64_t seed) noexcept {
    std::uint64_t sm = seed;
    for (auto& word : s_) word = detail::splitmix64_next(sm);
  }

  static constexpr result_type min() noexcept { return 0; }
  static constexpr result_type max() noexcept { return std::numeric_limits<result_type>::max(); }
  /// Same as next_u64().
  constexpr result_type operator()() noexcept { return next_u64(); }

  /// The next 64 uniformly distributed bits (one xoshiro256** step).
  constexpr std::uint64_t next_u64() noexcept {
    const std::uint64_t result = detail::rotl64(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = detail::rotl64(s_[3], 45);
    return result;
  }

  /// Uniform in [0, bound), without bias (Lemire's multiply-and-reject; one draw except with
  /// probability < bound / 2^64). `bound == 0` is an empty range: returns 0 and draws nothing.
  constexpr std::uint64_t uniform(std::uint64_t bound) noexcept {
    if (bound == 0) return 0;
    std::uint64_t low = 0;
    std::uint64_t high = detail::mul_64x64(next_u64(), bound, low);
    if (low < bound) {
      // 2^64 mod bound: the low products below it belong to an incomplete last interval.
      const std::uint64_t threshold = (0 - bound) % bound;
      while (low < threshold) high = detail::mul_64x64(next_u64(), bound, low);
    }
    return high;
  }

  /// Uniform in [lo, hi], both inclusive; the full int64 range works. `hi < lo` is an empty
  /// range: returns `lo` and draws nothing.
  constexpr std::int64_t uniform_int(std::int64_t lo, std::int64_t hi) noexcept {
    if (hi < lo) return lo;
    // Two's complement arithmetic modulo 2^64 (well defined in C++20).
    const std::uint64_t span = static_cast<std::uint64_t>(hi) - static_cast<std::uint64_t>(lo);
    const std::uint64_t offset = span == max() ? next_u64() : uniform(span + 1);
    return static_cast<std::int64_t>(static_cast<std::uint64_t>(lo) + offset);
  }

  /// Uniform in [0, 1): the top 53 bits of one draw, scaled; every result is a multiple of
  /// 2^-53, so 1.0 is never returned.
  constexpr double uniform_real() noexcept {
    return static_cast<double>(next_u64() >> 11) * 0x1.0p-53;
  }

  /// True with probability `p`. Always draws exactly once, whatever `p`, so the stream
  /// does not shift when a probability changes. p <= 0 (or NaN) is never, p >= 1 always.
  constexpr bool chance(double p) noexcept { return uniform_real() < p; }

  /// A duration uniform in [lo, hi], both inclusive, for integral representations (any
  /// signed or unsigned Rep up to 64 bits, full range); lo + (hi - lo) * uniform_real() for
  /// floating-point ones, i.e. [lo, hi) up to rounding. One draw (more only in Lemire's rare
  /// rejection). `hi < lo` returns `lo` and draws nothing.
  template <class Rep, class Period>
  constexpr std::chrono::duration<Rep, Period> uniform_duration(
      std::chrono::duration<Rep, Period> lo, std::chrono::duration<Rep, Period> hi) noexcept {
    static_assert(std::is_arithmetic_v<Rep>, "zkr::prng::uniform_duration needs an arithmetic Rep");
    using duration = std::chrono::duration<Rep, Period>;
    if (hi < lo) return lo;
    if constexpr (std::is_floating_point_v<Rep>) {
      return duration(lo.count() + (hi.count() - lo.count()) * static_cast<Rep>(uniform_real()));
    } else {
      static_assert(sizeof(Rep) <= sizeof(std::uint64_t), "Rep wider than 64 bits");
      // Work in uint64 modulo 2^64 so both signed and unsigned Reps use the whole range.
      const auto lo_u = static_cast<std::uint64_t>(lo.count());
      const std::uint64_t span = static_cast<std::uint64_t>(hi.count()) - lo_u;
      const std::uint64_t offset = span == max() ? next_u64() : uniform(span + 1);
      return duration(static_cast<Rep>(lo_u + offset));
    }
  }

  /// A new generator for an independent stream (e.g. one per simulated server), derived
  /// deterministically: it draws four values from this generator and mixes each through
  /// splitmix64's finalizer into the child's 256-bit state. Forking twice gives two
  /// different children; the parent moves on by four draws.
  constexpr prng fork() noexcept {
    prng child(0);
    for (auto& word : child.s_) {
      std::uint64_t mix = next_u64();
      word = detail::splitmix64_next(mix);
    }
    // An all-zero state would be stuck at zero; four mixed draws are all zero with
    // probability 2^-256, but the guard keeps the guarantee unconditional.
    if ((child.s_[0] | child.s_[1] | child.s_[2] | child.s_[3]) == 0) child.s_[0] = 1;
    return child;
  }

  /// Equal generators produce equal sequences from here on.
  friend constexpr bool operator==(const prng&, const prng&) = default;

 private:
  std::uint64_t s_[4] = {};
};

static_assert(std::uniform_random_bit_generator<prng>);

}  // namespace zkr
