// zkr/recipes/leader_latch.hpp: leader election among processes, as Curator's LeaderLatch.
//
// Every started latch on one path is a contender; the contender whose znode has the lowest
// sequence number is the leader. A latch keeps contending until it is closed: when the leader
// goes (closes, or its session ends), the next contender in line becomes leader.
//
// Znode layout (Curator's, so C++ and Java contenders share one election):
//
//   <latch path>/_c_<uuid>-latch-0000000007     ephemeral sequential, data = participant id
//
// The `_c_<uuid>-` prefix is Curator's protected-create prefix (zkr/recipes/protected_name.hpp);
// contenders are ordered by the 10-digit suffix only, and children without "latch-" and a
// sequence are ignored. Missing parents are created as container nodes (Curator's
// creatingParentContainersIfNeeded), with world-readable-and-writable ACLs.
//
// Guarantees, and what they rest on:
//   - At most one contender's node is the lowest at any time, so at most one latch *that sees
//     the current state* believes it leads. A belief is local and can be stale: `has_leadership()`
//     may still say true for up to the session's read timeout (2/3 of the negotiated session
//     timeout) after the connection was lost, by default; with
//     `keep_leadership_when_suspended` until the session's presumed-lost deadline (a session
//     timeout without a server, docs/backend.md). A process paused (GC, swapped out) keeps its
//     belief until it runs again. Use the fencing token to protect resources against such
//     stale leaders.
//   - Fencing: each term of leadership has a token, the czxid of the leader's znode. Tokens of
//     later terms are higher (a later leader's node was created later), also across sessions
//     and re-created parents, unlike sequence numbers.
//   - A closed or failed latch leaves no znode behind once `async_close` has completed
//     successfully (or, if the session was lost, once the server expires that session).
//
// Connection states (Curator 5's rules, the default "standard" error policy):
//   - suspended (connection lost, the session may live): leadership is given up at once
//     (listeners hear `not leader`). The option `keep_leadership_when_suspended` keeps it until
//     `lost` instead: at the risk that the server expires the session and another contender
//     leads while this one still believes it does, for as long as the presumed-lost deadline
//     comes after the server's expiry (up to the read timeout on the real backend, which
//     counts the deadline from the disconnect).
//   - reconnected (same session): the children are listed again; leadership is regained if our
//     node is still the lowest, and if our node is gone the latch creates a new one.
//   - lost (expired, or presumed so at the deadline): leadership is given up; the old node is
//     deleted as soon as a new session can (it may still exist if the session was only presumed
//     lost), and a new node is created in the new session.
//
// Threads: member functions may be called from any thread (on the real backend). The latch's
// state lives on the session's executor: initiating functions post there; `has_leadership()`,
// `fencing_token()`, `get_state()` and `our_path()` read snapshots. Listeners and completion
// handlers run on the session's executor (then on each handler's associated executor).
//
// Lifetime: the session must outlive the latch and every operation the latch started,
// including the background close a destroyed latch performs.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/async_result.hpp>

#include <zkr/backend.hpp>
#include <zkr/error.hpp>
#include <zkr/retry.hpp>
#include <zkr/types.hpp>

namespace zkr::recipes {

/// One contender of an election, as Curator's Participant: its id (the node's data), whether
/// it is the leader (the first contender whose node still existed when read), plus the node's
/// name and czxid (the fencing token it has or would have as leader).
struct participant {
  std::string id;
  bool is_leader = false;
  std::string node;
  std::int64_t czxid = 0;
  friend bool operator==(const participant&, const participant&) = default;
};

/// A transition of a latch's leadership, as its listeners see it. `token` is the fencing token
/// of the term that begins (is_leader) or ends (!is_leader).
struct leadership_change {
  bool is_leader = false;
  std::int64_t token = 0;
  friend bool operator==(const leadership_change&, const leadership_change&) = default;
};
inline std::ostream& operator<<(std::ostream& os, const leadership_change& c) {
  return os << (c.is_leader ? "is_leader" : "not_leader") << "(token=" << c.token << ")";
}

/// Called on the session's executor for every transition of leadership, in order (never twice
/// in a row with the same `is_leader`). Must not throw and must not block.
using leadership_listener = std::function<void(const leadership_change&)>;

/// Options of a leader latch.
struct leader_latch_options {
  /// This contender's participant id: the data of its node (Curator's LeaderLatch `id`).
  std::string id{};
  /// Keep leadership while the connection is suspended and give it up only when the session is
  /// lost. RISK: while suspended, the server may expire the session and another contender may
  /// lead; this one still believes it leads until the presumed-lost deadline (on the real
  /// backend up to 2/3 of the session timeout after the server's expiry). Use fencing tokens.
  /// Off by default, as Curator's standard error policy.
  bool keep_leadership_when_suspended = false;
  /// Tell listeners `not leader` when the latch is closed while leading (Curator's
  /// CloseMode.NOTIFY_LEADER). Off by default (CloseMode.SILENT).
  bool notify_on_close = false;
  /// A cancelled or timed-out `async_await_leadership` closes the latch (deletes its node)
  /// before it completes, as a cancelled lock acquire withdraws. Off by default: an await is
  /// only a wait, and the latch keeps contending (Curator's await(timeout)).
  bool withdraw_on_await_abort = false;
  /// Bounds the retries of a request that failed while the session stayed connected
  /// (throttled, or a connection loss reported before the disconnect). Work that failed
  /// because the connection went is redone at the next (re)connection instead. When the
  /// policy gives up, the latch fails (see `leader_latch::error`).
  any_retry_policy retry = exponential_backoff{std::chrono::milliseconds(50), std::chrono::seconds(5), 10};
  /// ACL of our node.
  acl_list acl = open_acl_unsafe();
};

/// A latch's lifecycle (Curator's LeaderLatch.State).
enum class latch_state : int { latent, started, closed };

/// Counters of the latch's rarer paths, for tests and monitoring. Read on the session's
/// executor (in the simulator: between run calls).
struct leader_latch_stats {
  std::uint64_t creates = 0;             ///< creates of our node sent
  std::uint64_t elections = 0;           ///< times this latch became leader
  std::uint64_t adopted = 0;             ///< nodes found by prefix after an unknown create outcome, ours: adopted
  std::uint64_t not_adopted = 0;         ///< nodes found by prefix owned by an earlier session: deleted
  std::uint64_t orphans = 0;             ///< extra nodes with our prefix (late creates, old sessions): deleted
  std::uint64_t resets = 0;              ///< our node found gone: a new one created
  std::uint64_t abandoned = 0;           ///< nodes of a lost session, deleted from the next one
  std::uint64_t stale_creates = 0;       ///< creates that succeeded for a session no longer current: deleted
  std::uint64_t predecessor_gone = 0;    ///< the predecessor vanished before its watch was set: checked again
  std::uint64_t watch_kept = 0;          ///< re-checks that found the predecessor's watch still armed
  std::uint64_t retries = 0;             ///< backoffs under the retry policy
  std::uint64_t removal_failures = 0;    ///< deletes of our nodes refused (e.g. no_auth)
};

namespace detail {
template <class Session>
class leader_latch_impl;
}  // namespace detail

/// A leader latch on `latch_path`: see the file comment for guarantees, the znode layout and
/// the connection-state rules.
///
/// Lifecycle latent -> started -> closed: `start()` once, `async_close` once. A second start,
/// or a close of a latent or closed latch, is an error (an exception, resp. `invalid_state`).
/// Destroying a started latch closes it in the background (its node is deleted; listeners are
/// not called any more).
///
/// Non-guarantees: `has_leadership()` is a local view, stale by up to the session timeout (see
/// the file comment); `async_get_participants` and `async_get_leader` read the server and may
/// disagree with it; `our_path()` may change at any time (a reset creates a new node). If
/// another client deletes the leader's node, the leader does not notice until its next
/// re-check (a reconnect): only the predecessor is watched, as in Curator.
template <zkr::backend Session>
class leader_latch {
 public:
  using session_type = Session;
  using executor_type = typename Session::executor_type;

  /// A latent latch on `latch_path` (not yet contending). Throws std::system_error
  /// (errc::invalid_path) if the path breaks ZooKeeper's rules. Sends nothing.
  leader_latch(Session& session, std::string latch_path, leader_latch_options options = {})
      : impl_(std::make_shared<detail::leader_latch_impl<Session>>(session, std::move(latch_path),
                                                                    std::move(options))) {}
  leader_latch(const leader_latch&) = delete;
  leader_latch& operator=(const leader_latch&) = delete;
  leader_latch(leader_latch&&) noexcept = default;
  leader_latch& operator=(leader_latch&&) = delete;
  /// Closes a started latch in the background (no listener is called). Never blocks.
  ~leader_latch() {
    if (impl_) impl_->detach();
  }

  /// Joins the election: creates our node (once the session is connected) and works towards
  /// leadership in the background. Returns at once.
  /// Throws std::system_error(errc::invalid_state) if the latch was started or closed before.
  void start() { impl_->start(); }

  /// Waits until this latch leads. Signature: void(std::error_code, std::int64_t token), the
  /// token being the fencing token of the term (its node's czxid). Completes at once (posted)
  /// if the latch leads already. The handler is called once, on its associated executor
  /// (default: the session's), never from within this call.
  /// Errors: errc::invalid_state (latch not started), errc::closing (the latch was closed,
  /// before or while waiting), the latch's failure (see `error()`), operation_aborted
  /// (cancelled).
  /// Per-Operation Cancellation: terminal, partial and total. Cancelling ends the wait only:
  /// the latch keeps contending, as the wait itself created nothing (with
  /// `withdraw_on_await_abort`, the latch is closed and its node deleted first).
  /// Suspended/lost: the wait goes on; leadership won after a reconnect completes it.
  /// Non-guarantee: leadership may be lost again by the time the handler runs.
  template <class Token>
  auto async_await_leadership(Token&& token) {
    return async_await_impl(std::nullopt, std::forward<Token>(token));
  }

  /// As above, giving up after `timeout` with errc::operation_timeout (the latch keeps
  /// contending, unless `withdraw_on_await_abort`). A timeout <= 0 does not wait: it completes
  /// with the token if the latch leads now, else with operation_timeout (Curator's
  /// await(0, unit)).
  template <class Token>
  auto async_await_leadership(std::chrono::milliseconds timeout, Token&& token) {
    return async_await_impl(timeout, std::forward<Token>(token));
  }

  /// Leaves the election: gives leadership up (listeners hear it only with `notify_on_close`),
  /// ends every pending await with errc::closing, and deletes our node. Completes once no node
  /// of ours is left: signature void(std::error_code). A create in flight is awaited, and a node
  /// whose create had an unknown outcome is found by its prefix and deleted. Called once, on
  /// the handler's associated executor, never from within this call.
  /// Errors: errc::invalid_state (latent or already closed latch), or the error of a delete
  /// that could not be done (e.g. no_auth, or the retry policy gave up); the node then stays
  /// until its session ends.
  /// Suspended: the close waits for the reconnection. Lost: the nodes belong to a lost session;
  /// the close completes at once, and the server deletes them when it expires that session.
  /// Not cancellable.
  template <class Token>
  auto async_close(Token&& token) {
    return boost::asio::async_initiate<Token, void(std::error_code)>(
        [impl = impl_](auto handler) { impl->close(std::move(handler)); }, token);
  }

  /// Whether this latch leads, as far as it knows now: a local view, stale by up to the
  /// session's read timeout (2/3 of the session timeout), or the whole presumed-lost deadline
  /// with `keep_leadership_when_suspended`, or a process pause. Never blocks.
  bool has_leadership() const noexcept { return impl_->has_leadership(); }
  /// The fencing token of the current term (our node's czxid), or 0 when not leading.
  std::int64_t fencing_token() const noexcept { return impl_->fencing_token(); }
  /// latent, started or closed.
  latch_state get_state() const noexcept { return impl_->get_state(); }
  /// The path of our node now, or "" if none (not yet created, being re-created, closed).
  /// For reference only: it may change at any time.
  std::string our_path() const { return impl_->our_path(); }
  /// The failure that made the latch stop contending (a retry policy that gave up, an error
  /// that retrying cannot mend such as no_auth, errc::sequence_exhausted when the latch path's
  /// int32 child counter has wrapped, or errc::closing when the session was closed),
  /// or an empty error_code. A failed latch has given leadership up and deleted its node; it
  /// still needs `async_close`.
  std::error_code error() const { return impl_->error(); }
  /// The participant id.
  const std::string& id() const noexcept { return impl_->options().id; }
  /// The latch path.
  const std::string& path() const noexcept { return impl_->path(); }
  /// Counters of rare paths (read on the session's executor).
  leader_latch_stats stats() const { return impl_->stats(); }

  /// Calls `listener` on every transition of leadership, until the subscription is reset or
  /// destroyed (from the executor: no call after reset() returns; from another thread, a call
  /// already running may finish). Transitions only: never is_leader twice in a row.
  subscription subscribe(leadership_listener listener) { return impl_->subscribe(std::move(listener)); }

  /// The contenders in order, as Curator's getParticipants: reads the children, then each
  /// node's data; nodes gone meanwhile are skipped; the first one read is marked leader.
  /// Signature: void(std::error_code, std::vector<participant>). No node: an empty list.
  /// Errors: the read's (connection_loss, session_expired, no_auth...). Called once, never
  /// from within this call. Does not need the latch to be started. Not cancellable.
  /// Non-guarantee: a snapshot of the server, which may disagree with has_leadership().
  template <class Token>
  auto async_get_participants(Token&& token) {
    return impl_->async_get_participants(std::forward<Token>(token));
  }
  /// The leader, as Curator's getLeader: the first contender whose node still exists, or a
  /// participant with an empty id and is_leader false if there is none.
  /// Signature: void(std::error_code, participant). Otherwise as async_get_participants.
  template <class Token>
  auto async_get_leader(Token&& token) {
    return impl_->async_get_leader(std::forward<Token>(token));
  }

  /// The session's executor.
  executor_type get_executor() const { return impl_->get_executor(); }

 private:
  template <class Token>
  auto async_await_impl(std::optional<std::chrono::milliseconds> timeout, Token&& token) {
    return boost::asio::async_initiate<Token, void(std::error_code, std::int64_t)>(
        [impl = impl_](auto handler, std::optional<std::chrono::milliseconds> t) {
          auto slot = boost::asio::get_associated_cancellation_slot(handler);
          impl->await(std::move(handler), t, slot);
        },
        token, timeout);
  }

  std::shared_ptr<detail::leader_latch_impl<Session>> impl_;
};

}  // namespace zkr::recipes

#include <zkr/recipes/impl/leader_latch.hpp>
