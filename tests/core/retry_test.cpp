// Tests of zkr/retry.hpp.
//
// Goal: each policy retries exactly as its Curator twin (RetryNTimes, ExponentialBackoffRetry,
// RetryUntilElapsed), gives up at once on negative arguments, draws randomness only from the
// caller's prng (so a seed replays the delays), and any_retry_policy is a faithful copyable
// wrapper.
// Method: table checks at the boundaries, bounds over 1,000 seeds, draw-count checks by
// comparing the caller's prng with a copy advanced by hand, and the Curator formula
// recomputed from a twin generator.

#include <zkr/retry.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <climits>
#include <cstdint>
#include <map>
#include <optional>
#include <utility>
#include <vector>

namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using opt_ms = std::optional<milliseconds>;

// ---- the concept -------------------------------------------------------------------------

struct custom_policy {  // a user-written policy: retries twice after 7 ms
  opt_ms next_delay(int retries, milliseconds, zkr::prng&) const {
    return retries < 2 ? opt_ms(7ms) : std::nullopt;
  }
};
struct non_const_policy {
  opt_ms next_delay(int, milliseconds, zkr::prng&) { return std::nullopt; }
};
struct wrong_return_policy {
  milliseconds next_delay(int, milliseconds, zkr::prng&) const { return 0ms; }
};

static_assert(zkr::retry_policy<zkr::retry_none>);
static_assert(zkr::retry_policy<zkr::retry_n_times>);
static_assert(zkr::retry_policy<zkr::exponential_backoff>);
static_assert(zkr::retry_policy<zkr::retry_until_elapsed>);
static_assert(zkr::retry_policy<zkr::any_retry_policy>);
static_assert(zkr::retry_policy<custom_policy>);
static_assert(!zkr::retry_policy<non_const_policy>);
static_assert(!zkr::retry_policy<wrong_return_policy>);
static_assert(!zkr::retry_policy<int>);

// ---- retry_none and retry_n_times --------------------------------------------------------

TEST(retry_none, always_gives_up_without_drawing) {
  zkr::prng rng(1);
  const zkr::prng before = rng;
  const zkr::retry_none p;
  for (int r : {0, 1, 100}) EXPECT_EQ(p.next_delay(r, 0ms, rng), std::nullopt);
  EXPECT_EQ(rng, before);
}

TEST(retry_n_times, retries_max_retries_times_with_fixed_delay) {
  zkr::prng rng(2);
  const zkr::prng before = rng;
  const zkr::retry_n_times p{3, 250ms};
  EXPECT_EQ(p.next_delay(0, 0ms, rng), 250ms);
  EXPECT_EQ(p.next_delay(1, 10s, rng), 250ms);
  EXPECT_EQ(p.next_delay(2, 1h, rng), 250ms);  // elapsed time is irrelevant
  EXPECT_EQ(p.next_delay(3, 0ms, rng), std::nullopt);
  EXPECT_EQ(p.next_delay(INT_MAX, 0ms, rng), std::nullopt);
  EXPECT_EQ(rng, before) << "retry_n_times must not draw";
}

TEST(retry_n_times, zero_retries_and_zero_delay) {
  zkr::prng rng(3);
  EXPECT_EQ((zkr::retry_n_times{0, 100ms}.next_delay(0, 0ms, rng)), std::nullopt);
  EXPECT_EQ((zkr::retry_n_times{1, 0ms}.next_delay(0, 0ms, rng)), 0ms);
  EXPECT_EQ(zkr::retry_n_times{}.next_delay(0, 0ms, rng), std::nullopt);
}

TEST(retry_n_times, negative_arguments_give_up) {
  zkr::prng rng(4);
  EXPECT_EQ((zkr::retry_n_times{-1, 100ms}.next_delay(0, 0ms, rng)), std::nullopt);
  EXPECT_EQ((zkr::retry_n_times{3, -1ms}.next_delay(0, 0ms, rng)), std::nullopt);
  EXPECT_EQ((zkr::retry_n_times{3, 100ms}.next_delay(-1, 0ms, rng)), std::nullopt);
  EXPECT_EQ((zkr::retry_n_times{3, 100ms}.next_delay(0, -1ms, rng)), std::nullopt);
}

// ---- exponential_backoff -----------------------------------------------------------------

TEST(exponential_backoff, matches_curator_formula) {
  // Curator: sleep = base * max(1, random.nextInt(1 << (retryCount + 1))), pinned to max.
  const zkr::exponential_backoff p{100ms, 5s, 10};
  zkr::prng rng(5), twin(5);
  for (int r = 0; r < 10; ++r) {
    for (int k = 0; k < 50; ++k) {
      const std::uint64_t draw = twin.uniform(std::uint64_t{1} << (r + 1));
      const std::int64_t expected = std::min<std::int64_t>(100 * std::max<std::int64_t>(1, static_cast<std::int64_t>(draw)), 5000);
      ASSERT_EQ(p.next_delay(r, 0ms, rng), milliseconds(expected)) << "retry " << r;
    }
  }
  EXPECT_EQ(rng, twin) << "one draw per granted retry";
  EXPECT_EQ(p.next_delay(10, 0ms, rng), std::nullopt);
  EXPECT_EQ(rng, twin) << "no draw when giving up";
}

TEST(exponential_backoff, first_retry_waits_base) {
  const zkr::exponential_backoff p{40ms, 10s, 3};
  for (std::uint64_t seed = 0; seed < 200; ++seed) {
    zkr::prng rng(seed);
    ASSERT_EQ(p.next_delay(0, 0ms, rng), 40ms);
  }
}

TEST(exponential_backoff, bounds_over_many_seeds) {
  const zkr::exponential_backoff p{10ms, std::chrono::milliseconds(INT32_MAX), 12};
  for (std::uint64_t seed = 0; seed < 1000; ++seed) {
    zkr::prng rng(seed);
    for (int r = 0; r < 12; ++r) {
      const opt_ms d = p.next_delay(r, milliseconds(r * 1000), rng);
      ASSERT_TRUE(d.has_value());
      ASSERT_GE(*d, 10ms);
      ASSERT_LT(*d, 10ms * (std::int64_t{1} << (r + 1)));  // multiplier in [1, 2^(r+1))
      ASSERT_EQ(d->count() % 10, 0);
    }
    ASSERT_EQ(p.next_delay(12, 0ms, rng), std::nullopt);
  }
}

TEST(exponential_backoff, multiplier_distribution_is_curators) {
  // For retry 2 the multiplier is max(1, uniform{0..7}): 1 has weight 2/8, 2..7 1/8 each.
  const zkr::exponential_backoff p{1ms, 1h, 5};
  zkr::prng rng(6);
  std::map<std::int64_t, int> counts;
  constexpr int n = 80000;
  for (int i = 0; i < n; ++i) ++counts[p.next_delay(2, 0ms, rng)->count()];
  ASSERT_EQ(counts.size(), 7u);
  EXPECT_NEAR(counts[1], n / 4, 600);
  for (std::int64_t m = 2; m <= 7; ++m) EXPECT_NEAR(counts[m], n / 8, 500) << m;
}

TEST(exponential_backoff, capped_at_max_delay) {
  const zkr::exponential_backoff p{1000ms, 1500ms, 8};
  bool capped = false;
  for (std::uint64_t seed = 0; seed < 100; ++seed) {
    zkr::prng rng(seed);
    for (int r = 0; r < 8; ++r) {
      const opt_ms d = p.next_delay(r, 0ms, rng);
      ASSERT_TRUE(d);
      ASSERT_LE(*d, 1500ms);
      capped |= *d == 1500ms;
    }
  }
  EXPECT_TRUE(capped);
}

TEST(exponential_backoff, max_retries_pinned_to_29) {
  const zkr::exponential_backoff p{1ms, milliseconds::max(), 1000};
  zkr::prng rng(7);
  const opt_ms last = p.next_delay(28, 0ms, rng);
  ASSERT_TRUE(last);
  EXPECT_LT(*last, milliseconds(std::int64_t{1} << 29));
  EXPECT_EQ(p.next_delay(29, 0ms, rng), std::nullopt);
  EXPECT_EQ(p.next_delay(999, 0ms, rng), std::nullopt);
  EXPECT_EQ(zkr::exponential_backoff::max_retries_limit, 29);
}

TEST(exponential_backoff, huge_base_saturates_instead_of_overflowing) {
  const zkr::exponential_backoff p{milliseconds(INT64_MAX / 2), milliseconds::max(), 29};
  for (std::uint64_t seed = 0; seed < 50; ++seed) {
    zkr::prng rng(seed);
    for (int r = 0; r < 29; ++r) {
      const opt_ms d = p.next_delay(r, 0ms, rng);
      ASSERT_TRUE(d);
      ASSERT_GE(*d, milliseconds(INT64_MAX / 2)) << "overflowed at retry " << r;
    }
  }
}

TEST(exponential_backoff, zero_base_waits_zero) {
  const zkr::exponential_backoff p{0ms, 10s, 3};
  zkr::prng rng(8);
  for (int r = 0; r < 3; ++r) EXPECT_EQ(p.next_delay(r, 0ms, rng), 0ms);
}

TEST(exponential_backoff, negative_arguments_give_up_without_drawing) {
  zkr::prng rng(9);
  const zkr::prng before = rng;
  EXPECT_EQ((zkr::exponential_backoff{-1ms, 10s, 3}.next_delay(0, 0ms, rng)), std::nullopt);
  EXPECT_EQ((zkr::exponential_backoff{1ms, -1ms, 3}.next_delay(0, 0ms, rng)), std::nullopt);
  EXPECT_EQ((zkr::exponential_backoff{1ms, 10s, -3}.next_delay(0, 0ms, rng)), std::nullopt);
  EXPECT_EQ((zkr::exponential_backoff{1ms, 10s, 3}.next_delay(-1, 0ms, rng)), std::nullopt);
  EXPECT_EQ((zkr::exponential_backoff{1ms, 10s, 3}.next_delay(0, -5ms, rng)), std::nullopt);
  EXPECT_EQ(rng, before);
}

TEST(exponential_backoff, same_seed_same_delays) {
  const zkr::exponential_backoff p{50ms, 30s, 20};
  const auto delays = [&](std::uint64_t seed) {
    zkr::prng rng(seed);
    std::vector<std::int64_t> out;
    for (int r = 0; r < 20; ++r) out.push_back(p.next_delay(r, 0ms, rng)->count());
    return out;
  };
  EXPECT_EQ(delays(42), delays(42));
  EXPECT_NE(delays(42), delays(43));
}

// ---- retry_until_elapsed -----------------------------------------------------------------

TEST(retry_until_elapsed, retries_while_time_remains) {
  zkr::prng rng(10);
  const zkr::prng before = rng;
  const zkr::retry_until_elapsed p{1000ms, 100ms};
  EXPECT_EQ(p.next_delay(0, 0ms, rng), 100ms);
  EXPECT_EQ(p.next_delay(1000000, 999ms, rng), 100ms);  // no count limit below INT_MAX
  EXPECT_EQ(p.next_delay(5, 1000ms, rng), std::nullopt);
  EXPECT_EQ(p.next_delay(5, 1h, rng), std::nullopt);
  EXPECT_EQ(p.next_delay(INT_MAX, 0ms, rng), std::nullopt);  // Curator's SleepingRetry(MAX_VALUE)
  EXPECT_EQ(rng, before) << "retry_until_elapsed must not draw";
}

TEST(retry_until_elapsed, negative_arguments_give_up) {
  zkr::prng rng(11);
  EXPECT_EQ((zkr::retry_until_elapsed{-1ms, 100ms}.next_delay(0, 0ms, rng)), std::nullopt);
  EXPECT_EQ((zkr::retry_until_elapsed{1000ms, -100ms}.next_delay(0, 0ms, rng)), std::nullopt);
  EXPECT_EQ((zkr::retry_until_elapsed{1000ms, 100ms}.next_delay(-1, 0ms, rng)), std::nullopt);
  EXPECT_EQ((zkr::retry_until_elapsed{1000ms, 100ms}.next_delay(0, -1ms, rng)), std::nullopt);
  EXPECT_EQ((zkr::retry_until_elapsed{0ms, 100ms}.next_delay(0, 0ms, rng)), std::nullopt);
}

// ---- any_retry_policy --------------------------------------------------------------------

TEST(any_retry_policy, default_gives_up) {
  zkr::prng rng(12);
  const zkr::any_retry_policy p;
  EXPECT_EQ(p.next_delay(0, 0ms, rng), std::nullopt);
}

TEST(any_retry_policy, forwards_to_the_held_policy) {
  const auto same_as = [](const auto& direct) {
    const zkr::any_retry_policy erased = direct;
    zkr::prng a(13), b(13);
    for (int r = 0; r < 8; ++r) {
      for (const milliseconds elapsed : {0ms, 500ms, 5000ms}) {
        ASSERT_EQ(erased.next_delay(r, elapsed, a), direct.next_delay(r, elapsed, b));
      }
    }
    ASSERT_EQ(a, b);
  };
  same_as(zkr::retry_none{});
  same_as(zkr::retry_n_times{3, 100ms});
  same_as(zkr::exponential_backoff{100ms, 2s, 6});
  same_as(zkr::retry_until_elapsed{1s, 100ms});
  same_as(custom_policy{});
}

TEST(any_retry_policy, copies_are_independent_values) {
  zkr::prng rng(14);
  zkr::any_retry_policy a = zkr::retry_n_times{5, 10ms};
  const zkr::any_retry_policy b = a;
  a = zkr::retry_none{};
  EXPECT_EQ(a.next_delay(0, 0ms, rng), std::nullopt);
  EXPECT_EQ(b.next_delay(0, 0ms, rng), 10ms);
  const zkr::any_retry_policy c(b);  // copy, not a wrapper around a wrapper
  EXPECT_EQ(c.next_delay(4, 0ms, rng), 10ms);
  EXPECT_EQ(c.next_delay(5, 0ms, rng), std::nullopt);
}

TEST(any_retry_policy, moved_from_gives_up) {
  zkr::prng rng(15);
  zkr::any_retry_policy a = zkr::retry_n_times{5, 10ms};
  const zkr::any_retry_policy b = std::move(a);
  EXPECT_EQ(b.next_delay(0, 0ms, rng), 10ms);
  // NOLINTNEXTLINE(bugprone-use-after-move): the documented moved-from behaviour
  EXPECT_EQ(a.next_delay(0, 0ms, rng), std::nullopt);
}

}  // namespace
