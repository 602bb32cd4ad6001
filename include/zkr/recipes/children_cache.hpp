// zkr/recipes/children_cache.hpp: a local copy of one znode's children, optionally with
// each child's data, kept up to date (Curator's PathChildrenCache).
//
//   zkr::recipes::watch_hub hub(session);
//   zkr::recipes::children_cache cache(hub, "/services/api");
//   cache.add_listener([](const zkr::recipes::children_cache_event& e) {
//     if (e.type == zkr::recipes::children_cache_event_type::added) connect_to(e.child.data);
//   });
//   cache.async_start([&](std::error_code ec) { if (!ec) for (auto& [name, c] : *cache.current()) ...; });
//
// Guarantees:
//   - Converges: once the server is quiet and the session connected, current() holds exactly
//     the path's children (and, with cache_data, each child's data and stat).
//   - Never goes backwards: the list follows the parent's pzxid order and each child's data its
//     own mzxid order, each state one the server really had, across reconnection and session
//     expiry too. A child deleted and re-created is reported (czxid differs), even at the
//     same version.
//   - Listeners run on the session's executor, one event at a time, after current() shows the
//     change. A start reports each initial child as `added`, then `initialized`.
//   - Session transitions are forwarded (suspended, reconnected, lost) and the view is kept
//     through them; after `reconnected` and in a new session everything is read again and the
//     differences are delivered as events.
//   - Bounded: one state per channel and per child; events are delivered as they are found,
//     never queued beyond the handful one read produces.
//   - Shares its watches and reads through the watch_hub with every other subscriber of the
//     same paths (node_watch, children_watch, node_cache, other caches).
// Non-guarantees: one-shot watches do not see every intermediate state (a child created and
// deleted quickly may never be seen; fast writes to a child coalesce); the view lags the server
// (a round trip; the whole disconnection while suspended); the cache never creates the path.
// Cost: one child watch on the path (+ one exists watch while the path is missing); with
// cache_data one data watch and one read per child, and a copy of the map per change
// (current() hands out immutable snapshots).
//
// Znode layout: none of its own; it reads `path` and its children.
//
// Thread safety: every member may be called from any thread; listeners run on the session's
// executor.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <zkr/backend.hpp>
#include <zkr/recipes/impl/children_cache.hpp>
#include <zkr/recipes/watch_hub.hpp>

namespace zkr::recipes {

/// A cached copy of one node's children; see the file comment. Lifecycle latent -> started
/// -> closed (a cancelled start goes back to latent).
template <zkr::backend Session>
class children_cache {
  using core_type = detail::children_cache_core<Session>;

 public:
  using listener_type = std::function<void(const children_cache_event&)>;
  /// The view: child name -> child_data, sorted by name.
  using snapshot_type = typename core_type::snapshot_type;

  /// Caches the children of `path` through `hub`. Throws std::system_error(errc::invalid_path)
  /// for a path ZooKeeper would refuse.
  children_cache(const watch_hub<Session>& hub, std::string path, children_cache_options o = {})
      : core_(std::make_shared<core_type>(hub.core(), detail::checked_path(std::move(path), "children_cache"), o)) {}
  /// Caches through a hub of its own (no sharing).
  children_cache(Session& s, std::string path, children_cache_options o = {})
      : children_cache(watch_hub<Session>(s), std::move(path), o) {}

  children_cache(const children_cache&) = delete;
  children_cache& operator=(const children_cache&) = delete;
  children_cache(children_cache&&) noexcept = default;
  children_cache& operator=(children_cache&&) = delete;

  /// Closes the cache (see close()).
  ~children_cache() {
    if (core_) (void)core_->close();
  }

  /// Registers a listener (any thread); returns its id (never 0).
  std::uint64_t add_listener(listener_type l) { return core_->listeners().add(std::move(l)); }
  /// Unregisters one (any thread). On the session's executor: no call after it returns.
  void remove_listener(std::uint64_t id) { core_->listeners().remove(id); }

  /// Starts the cache; completes once the initial load is in current(): the path's child list
  /// read once (a missing path counts: empty view, and the cache waits for its creation) and,
  /// with cache_data, every child of that list read (or found gone).
  /// Signature: void(std::error_code).
  /// Handler: called exactly once, on its associated executor, never from within this call.
  /// Waits as long as it takes while the session is disconnected (cancel it for a deadline).
  /// Errors: operation_aborted() if closed meanwhile; errc::closing if the session was
  /// closed; no_auth if the list is refused (the cache is then closed).
  /// Per-operation cancellation: terminal, partial, total: before the initial load is in, the
  /// start is undone (no subscription, empty view; the cache is latent again and may be
  /// started again) and completes with operation_aborted(). After it, nothing to cancel.
  /// Throws std::logic_error (when initiated) if the cache was started or closed already.
  template <class Token>
  auto async_start(Token&& token) {
    return core_->async_start(std::forward<Token>(token));
  }

  /// Stops updating: no listener call once it took effect on the session's executor; a
  /// pending start completes with operation_aborted(). The view stays readable. Returns {}
  /// if it closed now, errc::closing if already closed.
  std::error_code close() { return core_->close(); }

  /// The view (never null; empty before the initial load). Any thread; an immutable snapshot.
  std::shared_ptr<const snapshot_type> current() const { return core_->current(); }
  /// One child of the view, if present.
  std::optional<child_data> get(std::string_view name) const { return core_->get(name); }
  /// True once the initial load is in.
  bool initialized() const noexcept { return core_->initialized(); }
  /// Whether the path existed at the last list read.
  bool parent_exists() const noexcept { return core_->parent_exists(); }
  /// Why the cache stopped by itself (errc::closing, no_auth), {} otherwise.
  std::error_code error() const { return core_->error(); }

  const std::string& path() const noexcept { return core_->path(); }

 private:
  std::shared_ptr<core_type> core_;
};

}  // namespace zkr::recipes
