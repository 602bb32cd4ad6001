// zkr/recipes/node_watch.hpp: watch one znode's data for as long as you like (kazoo's
// DataWatch, done right).
//
// ZooKeeper's watches are one-shot: after each event the client must read again with a new
// watch, and must do so again after a reconnection and in every new session. node_watch
// runs that loop (through a watch_hub channel, shared with every other subscriber of the
// same path on the same hub) and hands you the node's states:
//
//   zkr::recipes::watch_hub hub(session);
//   zkr::recipes::node_watch w(hub, "/config/feature-x");
//   w.start([](std::error_code ec, const zkr::recipes::node_state& s) {
//     if (ec) return false;                 // the watch ended (session closed, no_auth)
//     if (s.exists) apply(s.data, s.stat.version);
//     return true;                          // false stops the watch
//   });
//
// Guarantees:
//   - Every state delivered is one the node really had (data and stat from one read), in
//     mzxid order; a consumer never sees an older state after a newer one, including across
//     reconnection and session expiry (a new session syncs before it reads again).
//   - The first state comes at once (read after start), then one per observed change.
//   - After `reconnected`, and in a new session generation, the node is read again and what
//     changed while away is delivered; a node deleted and re-created meanwhile is reported
//     (`node_change::recreated`) even at the same version and data, by its czxid.
//   - Bounded: one state slot per consumer; nothing queues.
// Non-guarantees:
//   - One-shot watches cannot see every intermediate version: writes that land between an
//     event and the re-read coalesce (you get the latest). Use the stat's version with
//     conditional writes, never the number of callbacks, to reason about updates.
//   - The view lags the server (a round trip; the whole disconnection while suspended).
//     Nothing is reported on `suspended`/`lost`: the last state stays the last one known.
// Failure behaviour: transient read failures are retried (watch_hub); a fatal one (no_auth)
// ends the watch: the listener is called once with it, `async_next` completes with it. A
// closed session ends it with `errc::closing`.
//
// Thread safety: all members may be called from any thread (the ZooKeeper backend) or the
// simulation's thread. Listeners and completions run on the session's executor (then each
// completion's associated executor), never two at once for one watch.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

#include <zkr/backend.hpp>
#include <zkr/recipes/impl/watch_loop.hpp>
#include <zkr/recipes/watch_hub.hpp>

namespace zkr::recipes {

/// Watches one node's data; see the file comment. Lifecycle latent -> started -> closed.
template <zkr::backend Session>
class node_watch {
  using core_type = detail::watch_loop<Session, detail::node_snapshot>;

 public:
  /// Called on the session's executor with ({}, state) for every new state, or once with
  /// (error, {}) when the watch ends for a reason other than close() or your `false`.
  /// Return false to stop watching (the watch closes; no further call).
  using listener_type = std::function<bool(std::error_code, const node_state&)>;

  /// Watches `path` through `hub` (shared with the hub's other subscribers of the path).
  /// Throws std::system_error(errc::invalid_path) for a path ZooKeeper would refuse.
  node_watch(const watch_hub<Session>& hub, std::string path, watch_options o = {})
      : core_(std::make_shared<core_type>(hub.core(), detail::checked_path(std::move(path), "node_watch"), o)) {}

  /// Watches `path` through a hub of its own (no sharing with other recipes).
  node_watch(Session& s, std::string path, watch_options o = {})
      : node_watch(watch_hub<Session>(s), std::move(path), o) {}

  node_watch(const node_watch&) = delete;
  node_watch& operator=(const node_watch&) = delete;
  node_watch(node_watch&&) noexcept = default;
  node_watch& operator=(node_watch&&) = delete;

  /// Closes the watch (see close()).
  ~node_watch() {
    if (core_) (void)core_->close();
  }

  /// Starts watching and calls `listener` for each state (push mode). `async_next` works
  /// too. Throws std::logic_error if already started or closed (a second start is a bug).
  void start(listener_type listener) { core_->start(std::move(listener), "node_watch"); }

  /// Starts watching without a listener (pull mode: async_next). Same errors.
  void start() { core_->start({}, "node_watch"); }

  /// Waits for the next state this consumer has not pulled yet: completes at once (posted)
  /// if there is one, else at the next change. States missed by a slow consumer coalesce
  /// into the latest; `change` is relative to the previous state pulled.
  /// Signature: void(std::error_code, node_state). Starts the watch if it is latent.
  /// Handler: called exactly once, on its associated executor (default: the session's),
  /// never from within this call.
  /// Errors: operation_aborted() after close() (and for a wait pending then);
  /// errc::closing if the session was closed; no_auth & co. if the read is refused;
  /// std::errc::operation_in_progress if another async_next of this watch is pending.
  /// Per-operation cancellation: terminal, partial, total: completes with
  /// operation_aborted(); the watch goes on and the state stays for the next call.
  template <class Token>
  auto async_next(Token&& token) {
    core_->ensure_started();
    return core_->async_next(std::forward<Token>(token));
  }

  /// Stops watching: no listener call after it takes effect on the session's executor (at
  /// once when called there); a pending async_next completes with operation_aborted().
  /// Returns {} if it closed the watch now, errc::closing if it was closed already. The
  /// server-side watch armed last cannot be taken back; it fires once into nothing (or
  /// serves the hub's other subscribers).
  std::error_code close() { return core_->close(); }

  /// The latest state delivered (nullopt before the first), with its change against the
  /// state before. Any thread; a snapshot.
  std::optional<node_state> current() const { return core_->current(); }

  /// True once started and until closed or ended.
  bool running() const noexcept { return core_->lifecycle() == detail::life::started; }

  const std::string& path() const noexcept { return core_->path(); }

 private:
  std::shared_ptr<core_type> core_;
};

}  // namespace zkr::recipes
