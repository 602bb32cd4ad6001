// zkr/recipes/node_cache.hpp: a local copy of one znode, kept up to date (Curator's
// NodeCache).
//
//   zkr::recipes::watch_hub hub(session);
//   zkr::recipes::node_cache cache(hub, "/config/limits");
//   cache.add_listener([](const zkr::recipes::node_state& s) { reload(s); });
//   std::error_code ec = co_await cache.async_start(asio::use_awaitable);  // no throw: the code
//   if (auto s = cache.current(); s && s->exists) use(s->data);
//
// Guarantees:
//   - Converges: once the server is quiet and the session connected, current() equals the
//     node on the server (data and stat; exists == false when it is missing).
//   - The view only moves forward: states in mzxid order, each one the node really had, never
//     an older one after a newer one (also across reconnection and session expiry); a node
//     deleted and re-created is seen as such (czxid), even at the same version.
//   - Listeners are called on the session's executor for every accepted state (the first one
//     too, with node_change::initial), after current() shows it.
//   - Shares its watch and reads with every other subscriber of the path on the same hub.
// Non-guarantees: it's not possible to stay transactionally in sync (Curator's words): fast
// changes coalesce (one-shot watches), the view lags the server by a round trip and by the
// whole disconnection while suspended (the view is kept, not cleared, on suspended and lost),
// so use the stat's version for conditional writes. The cache never creates the node.
//
// Znode layout: none of its own; it reads `path` and keeps a watch on it (an exists watch
// while it is missing).
//
// Thread safety: every member may be called from any thread; listeners run on the session's
// executor, one at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

#include <zkr/backend.hpp>
#include <zkr/recipes/impl/node_cache.hpp>
#include <zkr/recipes/watch_hub.hpp>

namespace zkr::recipes {

/// A cached copy of one node; see the file comment. Lifecycle latent -> started -> closed
/// (a cancelled start goes back to latent).
template <zkr::backend Session>
class node_cache {
  using core_type = detail::node_cache_core<Session>;

 public:
  /// Called on the session's executor with each new state (change relative to the previous).
  using listener_type = std::function<void(const node_state&)>;

  /// Caches `path` through `hub`. Throws std::system_error(errc::invalid_path) for a path
  /// ZooKeeper would refuse.
  node_cache(const watch_hub<Session>& hub, std::string path)
      : core_(std::make_shared<core_type>(hub.core(), detail::checked_path(std::move(path), "node_cache"))) {}
  /// Caches `path` through a hub of its own (no sharing).
  node_cache(Session& s, std::string path) : node_cache(watch_hub<Session>(s), std::move(path)) {}

  node_cache(const node_cache&) = delete;
  node_cache& operator=(const node_cache&) = delete;
  node_cache(node_cache&&) noexcept = default;
  node_cache& operator=(node_cache&&) = delete;

  /// Closes the cache (see close()).
  ~node_cache() {
    if (core_) (void)core_->close();
  }

  /// Registers a listener (any thread); returns its id. Listeners added before start see the
  /// initial state.
  std::uint64_t add_listener(listener_type l) { return core_->listeners().add(std::move(l)); }
  /// Unregisters one (any thread). On the session's executor: no call after it returns.
  void remove_listener(std::uint64_t id) { core_->listeners().remove(id); }

  /// Starts the cache and completes once the initial read is in current() (node present or
  /// missing). Signature: void(std::error_code).
  /// Handler: called exactly once, on its associated executor, never from within this call.
  /// Waits as long as it takes while the session is disconnected (cancel it for a deadline).
  /// Errors: operation_aborted() if closed meanwhile; errc::closing if the session was
  /// closed; no_auth if the read is refused (the cache is then closed).
  /// Per-operation cancellation: terminal, partial, total: before the initial read arrived,
  /// the start is undone (no subscription, empty view; the cache is latent again and may be
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

  /// The cached state: nullopt before the initial read, else the node's latest known state
  /// (exists == false: missing). Any thread; a snapshot.
  std::optional<node_state> current() const { return core_->current(); }

  /// True once the initial read arrived.
  bool initialized() const noexcept { return core_->initialized(); }

  /// Why the cache stopped by itself (errc::closing, no_auth), {} otherwise.
  std::error_code error() const { return core_->error(); }

  const std::string& path() const noexcept { return core_->path(); }

 private:
  std::shared_ptr<core_type> core_;
};

}  // namespace zkr::recipes
