// zkr/recipes/children_watch.hpp: watch one znode's child list for as long as you like
// (kazoo's ChildrenWatch, done right).
//
// The same loop as node_watch (read with a watch, re-arm after every event, after
// reconnection and in every new session), with get_children: through a watch_hub channel
// shared with every other subscriber of the same path on the same hub.
//
//   zkr::recipes::watch_hub hub(session);
//   zkr::recipes::children_watch w(hub, "/services/api");
//   w.start([](std::error_code ec, const zkr::recipes::children_state& s) {
//     if (ec) return false;
//     for (const auto& name : s.children) use(name);
//     return true;                          // false stops the watch
//   });
//
// Guarantees:
//   - Every list delivered is one the parent really had (from one read, names sorted), in the
//     order of the parent's pzxid (moved by every child create and delete); a consumer never
//     sees an older list after a newer one, including across reconnection and session expiry.
//   - The first list comes at once; a missing parent is delivered as `exists == false` and
//     (with follow_creation, the default) its creation is reported.
//   - After `reconnected` and in a new session generation the list is read again and what
//     changed while away is delivered; a parent deleted and re-created meanwhile is reported
//     (`node_change::recreated`, by czxid) even with the same children.
//   - Bounded: one state slot per consumer; nothing queues.
// Non-guarantees:
//   - One-shot watches cannot see every intermediate list: a child created and deleted
//     between an event and the re-read may never be seen. Children's data is not watched
//     (children_cache does that).
//   - A change of the parent's own data is not a new state (its stat in the last state may
//     lag in fields other than pzxid/cversion/num_children).
//   - The view lags the server (a round trip; the whole disconnection while suspended).
// Failure behaviour: as node_watch (transient failures retried; no_auth ends the watch;
// a closed session ends it with errc::closing; nothing reported on suspended/lost).
//
// Thread safety: as node_watch.
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

/// Watches one node's child list; see the file comment. Lifecycle latent -> started -> closed.
template <zkr::backend Session>
class children_watch {
  using core_type = detail::watch_loop<Session, detail::children_snapshot>;

 public:
  /// Called on the session's executor with ({}, state) for every new state, or once with
  /// (error, {}) when the watch ends for a reason other than close() or your `false`.
  /// Return false to stop watching (the watch closes; no further call).
  using listener_type = std::function<bool(std::error_code, const children_state&)>;

  /// Watches `path` through `hub` (shared with the hub's other subscribers of the path).
  /// Throws std::system_error(errc::invalid_path) for a path ZooKeeper would refuse.
  children_watch(const watch_hub<Session>& hub, std::string path, watch_options o = {})
      : core_(std::make_shared<core_type>(hub.core(), detail::checked_path(std::move(path), "children_watch"), o)) {}

  /// Watches `path` through a hub of its own (no sharing with other recipes).
  children_watch(Session& s, std::string path, watch_options o = {})
      : children_watch(watch_hub<Session>(s), std::move(path), o) {}

  children_watch(const children_watch&) = delete;
  children_watch& operator=(const children_watch&) = delete;
  children_watch(children_watch&&) noexcept = default;
  children_watch& operator=(children_watch&&) = delete;

  /// Closes the watch (see close()).
  ~children_watch() {
    if (core_) (void)core_->close();
  }

  /// Starts watching and calls `listener` for each state (push mode). `async_next` works
  /// too. Throws std::logic_error if already started or closed (a second start is a bug).
  void start(listener_type listener) { core_->start(std::move(listener), "children_watch"); }

  /// Starts watching without a listener (pull mode: async_next). Same errors.
  void start() { core_->start({}, "children_watch"); }

  /// Waits for the next state this consumer has not pulled yet: completes at once (posted)
  /// if there is one, else at the next change. States missed by a slow consumer coalesce
  /// into the latest; `change` is relative to the previous state pulled.
  /// Signature: void(std::error_code, children_state). Starts the watch if it is latent.
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
  std::optional<children_state> current() const { return core_->current(); }

  /// True once started and until closed or ended.
  bool running() const noexcept { return core_->lifecycle() == detail::life::started; }

  const std::string& path() const noexcept { return core_->path(); }

 private:
  std::shared_ptr<core_type> core_;
};

}  // namespace zkr::recipes
