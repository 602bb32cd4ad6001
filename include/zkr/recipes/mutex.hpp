// zkr/recipes/mutex.hpp: a distributed mutex, wire-compatible with Curator's InterProcessMutex.
//
// Znode layout (Curator's, so C++ and Java processes can share one lock):
//
//   <path>                                   container node, created on first use
//   <path>/_c_<uuid>-lock-0000000007         one ephemeral sequential node per contender
//
// A contender creates its node (protected: `_c_<uuid>-` lets it find the node again after a
// create whose reply was lost), lists the children, and holds the lock when its node has the
// lowest 10-digit sequence suffix among the `lock-` children; otherwise it watches only its
// predecessor (getData with a watch: no herd) and checks again when that one goes. Children
// that are not `lock-` nodes are ignored, as Curator ignores them.
//
// What zkr adds to Curator's algorithm:
//   - The hand-off shortcut: a waiter whose last listing showed exactly one contender below
//     it takes the lock on that predecessor's deletion without listing again, saving the
//     round trip Curator and kazoo pay on every hand-off. Why that is safe: the comment at the
//     top of zkr/recipes/impl/mutex.hpp. `mutex_options::sole_predecessor_handoff` turns it off.
//   - A lock-loss signal (`subscribe`): `lost` when the session is suspended (default, Curator
//     5's "may no longer hold"), lost or closed, and when the holder's own node is deleted by
//     someone else (the holder watches its node).
//   - A fencing token: the czxid of the lock node, which only grows across holders (unlike the
//     sequence number, which restarts when the lock's parent is re-created).
//   - Re-entrancy tied to an explicit owner handle (`mutex_owner`), not to a thread: coroutines
//     move between threads.
//
// Thread safety: every member function may be called from any thread the backend allows (the
// ZooKeeper backend: any; the simulator: its own). Completions, lock events and the internal
// state run on the session's executor; `is_held()` and `fencing_token()` read atomics.
//
// Lifetime: the session must outlive the mutex and its pending operations. Destroying the mutex
// aborts its waiting acquires (operation_aborted) and releases a hold (its node is deleted in
// the background while the session lives).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/post.hpp>

#include <zkr/backend.hpp>
#include <zkr/detail/pending.hpp>
#include <zkr/error.hpp>
#include <zkr/path.hpp>
#include <zkr/retry.hpp>
#include <zkr/types.hpp>

namespace zkr::recipes {

/// Options of a `mutex`.
struct mutex_options {
  /// false (default, Curator 5's standard policy): on `suspended` the holder is told it may no
  /// longer hold (`lost`, reason errc::connection_loss) and the hold ends.
  /// true: the hold continues through `suspended` (event `suspended`), is verified on
  /// `reconnected` (event `reconnected`, or `lost` if the node is gone) and ends at `lost`, at
  /// the latest at the session's presumed-lost deadline (the negotiated timeout after
  /// `suspended`). RISK: the ensemble may expire the session and give the lock to another
  /// contender before this process presumes its session lost (up to two thirds of the session
  /// timeout earlier, more with clock drift or a long GC pause): two processes then believe
  /// they hold. Use it only with fencing (`fencing_token()` checked by the guarded resource).
  bool hold_through_suspended = false;
  /// The hand-off shortcut (see the file comment). Off: list after every wake-up, as Curator.
  bool sole_predecessor_handoff = true;
  /// Data of the lock nodes (Curator stores the client's IP address; zkr none by default).
  std::string node_data{};
  /// ACL of the lock nodes and of the parents created for them.
  acl_list acl = open_acl_unsafe();
  /// Bounds the retries of one step after connection loss, throttling or a vanished own node
  /// (per step: the count restarts after every successful reply).
  any_retry_policy retry = exponential_backoff{.base = std::chrono::milliseconds(50),
                                               .max_delay = std::chrono::milliseconds(1000),
                                               .max_retries = 10};
};

/// Who holds, for re-entrancy. Acquires with the same owner nest (one znode, a count);
/// acquires with different owners (or none) exclude each other. Create one per logical task
/// (a coroutine, a request), with `mutex::make_owner()`. A plain value: copy it freely.
struct mutex_owner {
  std::uint64_t id = 0;
  friend bool operator==(const mutex_owner&, const mutex_owner&) = default;
};

/// What happened to the lock, as the `subscribe` listeners hear it (on the session's executor).
enum class lock_event_kind : std::uint8_t {
  acquired,     ///< the hold begins (before the acquire's completion runs)
  released,     ///< the hold ended by the last release (the node is being deleted)
  suspended,    ///< hold_through_suspended only: disconnected, still holding, at risk
  reconnected,  ///< hold_through_suspended only: reconnected and the node is still ours
  lost,         ///< the hold ended otherwise; see `reason`
};

constexpr std::string_view to_string(lock_event_kind k) noexcept {
  switch (k) {
    case lock_event_kind::acquired: return "acquired";
    case lock_event_kind::released: return "released";
    case lock_event_kind::suspended: return "suspended";
    case lock_event_kind::reconnected: return "reconnected";
    case lock_event_kind::lost: return "lost";
  }
  return "?";
}
inline std::ostream& operator<<(std::ostream& os, lock_event_kind k) { return os << to_string(k); }

/// One lock event. `token` is the hold's fencing token. For `lost`, `reason` says why:
///   errc::connection_loss   the session was suspended: we MAY no longer hold (default policy)
///   errc::session_expired / errc::session_lost / errc::auth_failed   the session is over
///   errc::no_node           our lock node was deleted by someone else
///   errc::closing           the session was closed
struct lock_event {
  lock_event_kind kind = lock_event_kind::acquired;
  std::int64_t token = 0;
  std::error_code reason{};
  friend bool operator==(const lock_event&, const lock_event&) = default;
};

/// Counters for tests and benchmarks (snapshots).
struct mutex_stats {
  std::uint64_t acquisitions = 0;       ///< holds obtained (re-entrant levels not counted)
  std::uint64_t shortcut_handoffs = 0;  ///< of those, taken on a predecessor's deletion without a listing
  std::uint64_t adoptions = 0;          ///< nodes found by their prefix and adopted after a lost create reply
  std::uint64_t stalls = 0;             ///< waits in which the executor stalled (the shortcut was off)
};

namespace detail {
template <class Session>
class mutex_core;
}

/// A distributed mutex on `path` (Curator's InterProcessMutex layout, see the file comment).
///
/// Guarantees: at most one holder at a time among contenders that follow the protocol, under
/// ZooKeeper's timing assumption (a session is expired no earlier than its timeout after the
/// client was last heard); holding is a belief that ends at `suspended` (default) or at the
/// presumed-lost deadline (hold_through_suspended) at the latest. Fencing tokens grow with
/// every new holder. An acquire that fails, times out or is cancelled leaves no node of ours.
///
/// Non-guarantees: fairness only among contenders already queued in ZooKeeper (local acquires
/// of one mutex object queue locally first); `is_held()` is a local view, stale by up to the
/// session timeout; a process paused (GC) longer than the session timeout resumes believing
/// it holds until it processes its session's events: guard writes with the fencing token.
template <backend Session>
class mutex {
 public:
  using session_type = Session;
  using executor_type = typename Session::executor_type;

  /// A contender for the lock at `path` (the parent of the lock nodes). Sends nothing until
  /// the first acquire. Throws std::invalid_argument if `path` is not a valid ZooKeeper path.
  mutex(Session& session, std::string path, mutex_options options = {});
  mutex(const mutex&) = delete;
  mutex& operator=(const mutex&) = delete;
  /// Aborts waiting acquires (operation_aborted) and releases a hold; never blocks.
  ~mutex();

  /// The lock path given at construction.
  const std::string& path() const noexcept { return path_; }
  /// The session's executor: every completion and event of this mutex runs there.
  executor_type get_executor() const noexcept { return session_->get_executor(); }

  /// A new owner handle, unique for this mutex object. Thread-safe.
  mutex_owner make_owner() noexcept;

  /// Acquires the lock, waiting as long as it takes (see the timed overload).
  template <class Token>
  auto async_acquire(Token&& token) {
    return initiate_acquire(mutex_owner{}, std::nullopt, std::forward<Token>(token));
  }

  /// Acquires the lock, waiting at most `timeout`.
  ///
  /// Signature: void(std::error_code, std::int64_t fencing_token). The handler is called
  /// exactly once, on its associated executor (default: the session's), never from within
  /// this call. On success the token is the lock node's czxid.
  ///
  /// Without an owner the acquire is not re-entrant: it waits while this mutex object is
  /// held, by anyone. Local acquires on one mutex object queue in FIFO order and contend in
  /// ZooKeeper one at a time.
  ///
  /// The timeout bounds the waiting: like Curator's acquire(time), the create and the first
  /// check always run, so a zero timeout is a try-lock.
  ///
  /// Errors (no node of ours is left in every case):
  ///   errc::operation_timeout         the timeout passed first (== std::errc::timed_out; unlike
  ///                                   a request's timeout, nothing is unknown here)
  ///   zkr::operation_aborted()        cancelled, or the mutex was destroyed
  ///   errc::session_expired / session_lost / auth_failed   the session ended while waiting
  ///   errc::closing                   the session is closed
  ///   errc::connection_loss           a step kept failing beyond the retry policy
  ///   errc::no_node                   our node kept vanishing beyond the retry policy
  ///   errc::sequence_exhausted        the parent's int32 sequence counter wrapped: delete the
  ///                                   lock's parent node when no one holds it (a container
  ///                                   parent goes by itself once empty) to restart it
  ///   other backend errors (no_auth, invalid_acl, invalid_path ...)
  ///
  /// Per-Operation Cancellation: terminal, partial and total are all honoured, the same way:
  /// the acquire stops contending, deletes our node (a create in flight: its reply is awaited
  /// first; disconnected: the deletion is left to the background and the acquire completes
  /// at once), then completes with operation_aborted. Cancelling after the lock was taken has
  /// no effect: release it.
  ///
  /// While waiting, `suspended` changes nothing; `reconnected` re-checks the children; `lost`
  /// fails the acquire (the next one starts in the new session).
  template <class Token>
  auto async_acquire(std::chrono::milliseconds timeout, Token&& token) {
    return initiate_acquire(mutex_owner{}, timeout, std::forward<Token>(token));
  }

  /// As above, re-entrant for `owner`: if `owner` holds the lock already the acquire
  /// completes at once (posted) with the same token, and one more release is needed.
  template <class Token>
  auto async_acquire(mutex_owner owner, std::chrono::milliseconds timeout, Token&& token) {
    return initiate_acquire(owner, timeout, std::forward<Token>(token));
  }

  /// Releases one level of the current hold, whoever holds it. At the last level the hold
  /// ends (event `released`) and our node is deleted.
  ///
  /// Signature: void(std::error_code). Completes once the node is deleted. Errors:
  ///   errc::invalid_state   nothing is held and no hold was lost since the last acquire
  ///   errc::connection_loss the deletion kept failing: the hold is over all the same, and
  ///                         the node is deleted in the background (or goes with the session)
  ///   other backend errors (no_auth ...): the node stays until our session ends
  /// A release after the hold was lost (event `lost`) completes with success.
  /// Not cancellable (it is short).
  template <class Token>
  auto async_release(Token&& token) {
    return initiate_release(std::nullopt, std::forward<Token>(token));
  }

  /// As above, but only if `owner` holds (errc::invalid_state otherwise).
  template <class Token>
  auto async_release(mutex_owner owner, Token&& token) {
    return initiate_release(owner, std::forward<Token>(token));
  }

  /// Whether this mutex object holds the lock now (a local, possibly stale view). Any thread.
  bool is_held() const noexcept;
  /// The fencing token of the current hold (the lock node's czxid), 0 if not held. Any thread.
  std::int64_t fencing_token() const noexcept;
  /// Counters (snapshots). Any thread.
  mutex_stats stats() const noexcept;

  /// Calls `listener` on the session's executor for every lock event of this mutex object,
  /// until the returned subscription dies. Any thread.
  subscription subscribe(std::function<void(const lock_event&)> listener);

 private:
  template <class Token>
  auto initiate_acquire(mutex_owner owner, std::optional<std::chrono::milliseconds> timeout, Token&& token);
  template <class Token>
  auto initiate_release(std::optional<mutex_owner> owner, Token&& token);

  Session* session_;
  std::string path_;
  std::shared_ptr<detail::mutex_core<Session>> core_;
};

}  // namespace zkr::recipes

#include <zkr/recipes/impl/mutex.hpp>
