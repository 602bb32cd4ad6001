// zkr/recipes/watch_hub.hpp: one ZooKeeper watch per (session, path), shared by every local
// subscriber.
//
// ZooKeeper keeps one watch per (session, path) on the server whatever the client asks, but
// every read the client makes costs a round trip: N local subscribers of one path that each
// re-arm their own one-shot watch cost N reads per change (and N client-side watchers). A
// `watch_hub` multiplexes them: one *channel* per (kind, path) runs the re-arm loop (read
// with a watch, deliver, read again when it fires) and hands each state to all its
// subscribers. N subscribers cost one server-side watch and one read per change.
//
// node_watch, children_watch, node_cache and children_cache take a hub; give the same hub
// to all the recipes of one session that watch the same paths. A recipe built from a bare
// session makes a hub of its own (no sharing).
//
// Channel guarantees (what the recipes above inherit):
//   - Delivers only states the node really had, each read from the server, in mzxid order
//     (data) or in the parent's pzxid order (children), never going backwards, not even
//     across reconnections and session expiry (a new session syncs before it reads again).
//   - Re-arms after every watch event, after `reconnected` (re-reading, so what changed while
//     away is reported) and in every new session generation.
//   - Compares czxid too: a node deleted and re-created meanwhile is a new state even at the
//     same version and data.
//   - Bounded: a channel holds one state (the last) and runs at most one refresh at a time;
//     events that arrive meanwhile coalesce into one more refresh. No queue grows.
// Non-guarantees: a one-shot watch cannot see every intermediate version: changes made
// between a watch firing and the re-read coalesce, so a subscriber sees a subsequence of the
// node's history (always the latest state eventually). A subscriber's view lags the server
// by a round trip, and by the whole disconnection while the session is suspended.
//
// Failure behaviour: a transient read error (connection loss, throttled) is retried at the
// next `reconnected`/`connected` or, while the session still says connected, after a backoff
// (watch_hub_options::retry, bounded). A fatal one (no_auth) ends the channel: its
// subscribers are told once with the error. A closed session ends every channel with
// `errc::closing`. Suspended and lost keep the last state (subscribers are not told; the
// caches forward session transitions to their listeners).
//
// Cost of leaving: a subscriber that leaves cannot take back a watch already armed on the
// server (ZooKeeper 3.8's C client has no removeWatches in zkr's contract); the channel
// stays dormant until it fires or the session ends, and a new subscriber in the meantime
// reuses it with no read.
//
// Thread safety: a watch_hub is a handle (copies share one hub). Construct it on any thread;
// stats() from any thread; everything else happens on the session's executor.
#pragma once

#include <memory>
#include <utility>

#include <zkr/backend.hpp>
#include <zkr/recipes/impl/watch_hub.hpp>

namespace zkr::recipes {

/// The watch multiplexer of one session. See the file comment.
template <zkr::backend Session>
class watch_hub {
 public:
  using session_type = Session;

  /// Subscribes to `s`'s state transitions. `s` must outlive every copy of the hub and every
  /// recipe using it. Never fails (but may throw std::bad_alloc).
  explicit watch_hub(Session& s, watch_hub_options o = {})
      : core_(std::make_shared<detail::hub_core<Session>>(s, std::move(o))) {
    core_->attach();
  }

  /// The session the hub reads and watches through. Never fails.
  Session& session() const noexcept { return core_->session(); }

  /// Counters (reads, syncs, watches armed, deliveries, stale results dropped, channels,
  /// subscribers). Any thread; a snapshot.
  watch_hub_stats stats() const noexcept { return core_->stats(); }

  /// The shared state; for zkr's own recipes (a detail type: no stability promised).
  const std::shared_ptr<detail::hub_core<Session>>& core() const noexcept { return core_; }

 private:
  std::shared_ptr<detail::hub_core<Session>> core_;
};

}  // namespace zkr::recipes
