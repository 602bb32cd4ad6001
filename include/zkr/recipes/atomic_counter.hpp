// zkr/recipes/atomic_counter.hpp: a distributed counter, compatible with Curator's
// DistributedAtomicLong.
//
// Znode layout (Curator's, so C++ and Java processes can share one counter):
//
//   <path>        persistent node; data = the value as 8 bytes, big-endian, two's complement
//                 (Java's ByteBuffer.putLong). A missing node or empty data reads as 0.
//                 Missing parents are created as containers, as Curator's EnsureContainers.
//
// Every change is optimistic, as Curator's: read the value and its version, write the new
// value only if the version is unchanged (setData with version; create if the node is
// missing); on a conflict, retry per the retry policy. Optionally, once those retries are
// spent, take a distributed mutex and try again with a second policy (Curator's
// PromotedToLock): under heavy contention the lock orders the writers instead of letting them
// collide. The mutex only reduces collisions; every write stays conditional, so writers that
// do not take the lock stay correct.
//
// Exactly once: an acknowledged change was applied exactly once (a conditional write succeeds
// once or fails). After connection loss on a write the outcome is UNKNOWN: the operation
// completes with errc::connection_loss and is never retried, because a retry after a write
// that was in fact applied would apply it twice. Curator retries such writes inside its
// RetryLoop; zkr does not. A caller who needs to know must read the value (and ideally make
// its change recognisable, e.g. a version-checked compare_and_set of a value it can tell).
//
// Thread safety: member functions may be called from any thread the backend allows; each
// operation runs on the session's executor. Operations are independent (several may be in
// flight; they may conflict with each other like any other writers).
//
// Lifetime: the session must outlive the counter's pending operations (they keep the counter's
// shared state, and the promotion mutex, alive themselves).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <boost/asio/async_result.hpp>

#include <zkr/backend.hpp>
#include <zkr/error.hpp>
#include <zkr/path.hpp>
#include <zkr/recipes/mutex.hpp>
#include <zkr/retry.hpp>
#include <zkr/types.hpp>

namespace zkr::recipes {

/// Curator's PromotedToLock: after the optimistic retries, take the mutex at `lock_path`
/// (waiting at most `max_lock_time`) and retry with `retry`.
struct promoted_to_lock {
  std::string lock_path;
  std::chrono::milliseconds max_lock_time{std::chrono::seconds(10)};
  any_retry_policy retry = retry_n_times{.max_retries = 10, .delay = std::chrono::milliseconds(10)};
};

/// Options of an `atomic_counter`.
struct atomic_counter_options {
  /// Retries of the optimistic attempts after a conflict (bad_version, node_exists), a
  /// throttled request or a failed read. Curator takes this policy as a constructor argument.
  any_retry_policy retry = exponential_backoff{.base = std::chrono::milliseconds(10),
                                               .max_delay = std::chrono::milliseconds(500),
                                               .max_retries = 10};
  /// Fall back to a mutex once the optimistic retries are spent (none by default).
  std::optional<promoted_to_lock> promote{};
  /// ACL of the counter node and of the parents created for it.
  acl_list acl = open_acl_unsafe();
};

/// Curator's AtomicStats.
struct atomic_stats {
  int optimistic_tries = 0;  ///< attempts before promotion (reads that led to a write or an answer)
  int promoted_tries = 0;    ///< attempts under the mutex
  std::chrono::milliseconds optimistic_time{0};
  std::chrono::milliseconds promoted_time{0};
};

/// Curator's AtomicValue<Long>: whether the change was made, the value before and after.
/// For compare_and_set that failed, `pre_value` is the value found (0 if the node is missing).
struct atomic_result {
  bool succeeded = false;
  std::int64_t pre_value = 0;
  std::int64_t post_value = 0;
  atomic_stats stats{};
};

/// The 8-byte big-endian encoding of `v` (Java's ByteBuffer.putLong).
inline std::string encode_counter_value(std::int64_t v) {
  std::string out(8, '\0');
  auto u = static_cast<std::uint64_t>(v);
  for (int i = 7; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = static_cast<char>(u & 0xFF);
    u >>= 8;
  }
  return out;
}

/// The value of counter data: empty -> 0; 8 bytes -> big-endian; anything else nullopt
/// (Curator throws "Corrupted data" for short data and reads the first 8 bytes of longer
/// data; zkr refuses any length but 0 and 8).
inline std::optional<std::int64_t> decode_counter_value(std::string_view data) noexcept {
  if (data.empty()) return 0;
  if (data.size() != 8) return std::nullopt;
  std::uint64_t u = 0;
  for (const char c : data) u = (u << 8) | static_cast<unsigned char>(c);
  return static_cast<std::int64_t>(u);
}

namespace detail {
template <class Session>
struct counter_state;
}

/// A distributed counter at `path` (see the file comment).
///
/// Errors common to the operations below (the handler is called exactly once, on its
/// associated executor, never from within the initiating call):
///   errc::connection_loss     the outcome of the final write is unknown (it may have been
///                             applied, once). Never retried into a double apply. Also when a
///                             read kept failing (then nothing was written).
///   errc::bad_version         gave up under contention: retries (and the promotion, if
///                             configured) spent; nothing was applied
///   errc::operation_timeout   the promotion mutex was not obtained within max_lock_time;
///                             nothing was applied (despite what zkr::outcome_unknown says
///                             of this code in general)
///   errc::data_inconsistency  the node's data is not a counter (length neither 0 nor 8)
///   zkr::operation_aborted()  cancelled while waiting (see below); nothing was applied
///   errc::session_expired / closing / no_auth ...  passed through; nothing was applied
///                             (a write in flight when a session ends reports connection_loss)
///
/// Per-Operation Cancellation: terminal, partial and total are honoured while the operation
/// waits (a retry backoff, the promotion mutex); a read or write in flight is never abandoned:
/// cancellation takes effect at the next wait, or not at all if the write succeeds.
///
/// Suspended/lost: requests made while disconnected wait for the next connection (the
/// backend's rule); a write in flight at a disconnect completes with connection_loss.
template <backend Session>
class atomic_counter {
 public:
  /// Throws std::invalid_argument if `path` (or the promotion's lock path) is invalid.
  atomic_counter(Session& session, std::string path, atomic_counter_options options = {});

  const std::string& path() const noexcept;

  /// The current value (0 if the node is missing). Signature: void(std::error_code, std::int64_t).
  template <class Token>
  auto async_get(Token&& token);

  /// Adds `delta` (wrapping as Java's long). Signature: void(std::error_code, atomic_result).
  /// On success result.succeeded is true and post_value = pre_value + delta.
  template <class Token>
  auto async_add(std::int64_t delta, Token&& token);
  template <class Token>
  auto async_subtract(std::int64_t delta, Token&& token) {
    return async_add(static_cast<std::int64_t>(0ULL - static_cast<std::uint64_t>(delta)), std::forward<Token>(token));
  }
  template <class Token>
  auto async_increment(Token&& token) {
    return async_add(1, std::forward<Token>(token));
  }
  template <class Token>
  auto async_decrement(Token&& token) {
    return async_add(-1, std::forward<Token>(token));
  }

  /// Sets the value to `desired` if it equals `expected` (one attempt, as Curator's: a
  /// mismatch or a concurrent change completes with success and result.succeeded == false,
  /// pre_value = the value found). A missing node never matches.
  /// Signature: void(std::error_code, atomic_result).
  template <class Token>
  auto async_compare_and_set(std::int64_t expected, std::int64_t desired, Token&& token);

  /// Sets the value to `value`, optimistically with retries (Curator's trySet).
  /// Signature: void(std::error_code, atomic_result).
  template <class Token>
  auto async_try_set(std::int64_t value, Token&& token);

  /// Sets the value unconditionally, without atomicity (Curator's forceSet).
  /// Signature: void(std::error_code).
  template <class Token>
  auto async_force_set(std::int64_t value, Token&& token);

  /// Creates the node with `value` if it does not exist (Curator's initialize).
  /// Signature: void(std::error_code, bool created).
  template <class Token>
  auto async_initialize(std::int64_t value, Token&& token);

 private:
  std::shared_ptr<detail::counter_state<Session>> state_;
};

}  // namespace zkr::recipes

#include <zkr/recipes/impl/atomic_counter.hpp>
