// zkr/recipes/ephemeral_node.hpp: an ephemeral node that stays registered, as Curator's
// PersistentNode with an EPHEMERAL mode (what ServiceDiscovery builds on).
//
// An ephemeral_node keeps one ephemeral znode at a fixed path, with the caller's data, for as
// long as it is started and not closed: it creates the node, re-creates it after the session
// expired (in the session's next generation) and after someone deleted it (a watch tells),
// writes new data on request, and removes the node on close.
//
//   zkr::recipes::ephemeral_node<zkr::zookeeper::session> node(session, "/services/api/host-1", json);
//   node.subscribe([](const zkr::recipes::ephemeral_node_event& e) { log(e.state, e.error); });
//   node.start();
//   node.async_wait_registered([](std::error_code ec) { ... });
//
// Znode layout: `path` itself, EPHEMERAL, ACL from the options (world by default); missing
// parents are created as containers (Curator's creatingParentContainersIfNeeded), so they
// vanish by themselves once empty. A plain create, as Curator's PersistentNode does for a
// non-sequential ephemeral node (no protected `_c_` prefix: the name is fixed, so a create
// whose reply was lost is found again by reading the node).
//
// A node already at the path (the create said node_exists, or its outcome was unknown) is
// settled by its ephemeralOwner, read with getData (which also sets the watch):
//   - the current session: it is ours (a retried create, or we never saw the reply): adopted,
//     and our data written over it if it differs;
//   - an earlier session of this session object (one that was presumed lost but still lives
//     on the server until the server expires it; the last 16 are remembered): we wait for its
//     deletion (the watch) and then create again. `blocking_owner` names that session.
//   - anyone else (another session, or a persistent node): reported as errc::node_exists
//     with `blocking_owner`, and, like Curator's PersistentNode (whose exists-watch re-creates
//     the node once it is deleted), the node keeps waiting for its deletion and then creates
//     again. Unlike Curator it never writes over someone else's node (PersistentNode does a
//     setData on any existing node): two registrars of one path would otherwise overwrite
//     each other's data.
//
// Guarantees:
//   - While started and connected, the node is present with our data and owned by the
//     current session, except: (a) from a deletion (or a foreign write) until its watch event
//     arrives and the create (write) completes, a round trip or two; (b) from a session's
//     expiry until the next generation is connected and the create completes; (c) after a
//     presumed loss, until the server expires the old session (at most its negotiated timeout
//     after the server last heard from it) and the create completes; (d) while someone else's
//     node is in the way; (e) while the retry policy has given up (see below).
//   - Someone else's writes to our node are undone: the watch reports them and our data is
//     written back (Curator writes its data back only after a reconnect).
//   - `async_close` removes the node if it is ours: it reads the node and deletes it at the
//     version it read, so it never deletes a node that another session re-created.
// Non-guarantees: `state()` is a local view: `registered` stays through a suspended session
// (the node lives until the session expires on the server, which may already have happened);
// after a write by someone else, `registered` holds while our data is written back.
//
// Failures: connection loss, a lost or expired session are waited out (the next `reconnected`
// or `connected` resumes). Other errors (no_auth, invalid_acl, data_too_large,
// no_children_for_ephemerals when a parent is ephemeral, ...) are reported in the state
// (`error`) and retried with the retry policy's backoff (throttled is retried silently and
// reported only when the policy gives up); once the policy gives up, the
// node waits for a session transition, a watch event or new data (set_data) before it tries
// again. A closed session (async_close on the session) ends the node: state `closed`, error
// errc::closing.
//
// Session states: suspended keeps the state (the node still exists on the server unless the
// session has expired there); reconnected re-reads the node (a reply lost with the connection
// may have left it unsure); lost makes the node pending (it is gone, or will be when the server
// expires the session); a new generation's `connected` creates it again.
//
// Threads: member functions may be called from any thread (real backend). The node's state
// lives on the session's executor; `state()`, `error()`, `blocking_owner()` and `data()` read
// snapshots. Listeners and completion handlers run on the session's executor (then on each
// handler's associated executor).
//
// Lifetime: the session must outlive the node and the background close that destroying a
// started node begins. Closing or destroying the session first is safe too: the node then
// stops (its ephemeral znode goes with the session).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <utility>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/async_result.hpp>

#include <zkr/backend.hpp>
#include <zkr/error.hpp>
#include <zkr/path.hpp>
#include <zkr/recipes/impl/ephemeral_node.hpp>
#include <zkr/retry.hpp>
#include <zkr/types.hpp>

namespace zkr::recipes {

/// Options of an ephemeral_node.
struct ephemeral_node_options {
  /// The node's ACL (the parents created for it get world:anyone, as Curator's containers).
  acl_list acl = open_acl_unsafe();
  /// Create missing parents as containers (Curator's creatingParentContainersIfNeeded).
  /// Off: a missing parent is reported as errc::no_node and retried by the policy.
  bool create_parents = true;
  /// Backoff between retries after failures other than connection and session trouble; a
  /// success resets it. Once it gives up the node waits for a session transition, a watch
  /// event or set_data.
  any_retry_policy retry = exponential_backoff{std::chrono::milliseconds(100), std::chrono::seconds(10), 29};
};

/// Listener of an ephemeral_node: called on the session's executor on every change of the
/// state, the error or the blocking owner (never twice with the same values).
using ephemeral_node_listener = std::function<void(const ephemeral_node_event&)>;

/// An ephemeral node kept present; see the file comment. Lifecycle latent -> started -> closed.
template <zkr::backend Session>
class ephemeral_node {
  using impl_type = detail::ephemeral_node_impl<Session>;

 public:
  /// A latent node for `path` with `data`. Throws std::system_error(errc::invalid_path) for a
  /// path ZooKeeper would refuse (or "/"). Makes no request.
  ephemeral_node(Session& s, std::string path, std::string data, ephemeral_node_options o = {})
      : impl_(std::make_shared<impl_type>(s, checked(std::move(path)), std::move(data),
                                          typename impl_type::options{std::move(o.acl), o.create_parents,
                                                                      std::move(o.retry)})) {}

  ephemeral_node(const ephemeral_node&) = delete;
  ephemeral_node& operator=(const ephemeral_node&) = delete;

  /// Closes in the background if started and not closed (the node is removed; no listener or
  /// handler of this object is called any more). The session must stay alive meanwhile, or
  /// be closed (which removes the node anyway).
  ~ephemeral_node() { impl_->detach(); }

  /// Starts keeping the node. Throws std::system_error(errc::invalid_state) if started or
  /// closed before. Returns at once; the node is created on the session's executor.
  void start() { impl_->start(); }

  /// Waits until the node is registered, or until the attempt reports an error.
  /// Signature: void(std::error_code).
  /// Handler: called exactly once, on its associated executor, never from within this call.
  /// Completes with {} once the node is ours (at once if it is); with the error the node
  /// reports (errc::node_exists when someone else's node is in the way, no_auth, ...) if one
  /// is reported before (at once if one is: the node keeps trying in the background); with
  /// errc::closing if the node or its session is closed first; with errc::invalid_state if
  /// not started. While disconnected or waiting for an earlier session's node it keeps
  /// waiting: cancel it for a deadline.
  /// Per-operation cancellation: terminal, partial, total: completes with operation_aborted();
  /// the node is not affected.
  template <class Token>
  auto async_wait_registered(Token&& token) {
    return boost::asio::async_initiate<Token, void(std::error_code)>(
        [](auto handler, std::shared_ptr<impl_type> impl) {
          auto slot = boost::asio::get_associated_cancellation_slot(handler);
          typename impl_type::void_pending h(std::move(handler), impl->get_executor());
          impl->wait_registered(std::move(h), slot);
        },
        token, impl_);
  }

  /// Replaces the node's data: every later create uses it, and a registered node is written
  /// now (setData at the version we last saw; someone else's write meanwhile makes us read
  /// and write again). Signature: void(std::error_code).
  /// Handler: called exactly once, on its associated executor, never from within this call.
  /// Completes with {} once the server's node holds this data (or newer data set later), at
  /// once if not started yet (the start creates it with this data); errc::closing if closed
  /// first. While pending it keeps waiting (cancel it for a deadline).
  /// Per-operation cancellation: terminal, partial, total: completes with operation_aborted();
  /// the data stays set (the node keeps bringing it to the server).
  template <class Token>
  auto async_set_data(std::string data, Token&& token) {
    return boost::asio::async_initiate<Token, void(std::error_code)>(
        [](auto handler, std::shared_ptr<impl_type> impl, std::string d) {
          auto slot = boost::asio::get_associated_cancellation_slot(handler);
          typename impl_type::void_pending h(std::move(handler), impl->get_executor());
          impl->set_data(std::move(d), std::move(h), slot);
        },
        token, impl_, std::move(data));
  }

  /// Stops keeping the node and removes it if it is ours (read first: only a node owned by the
  /// current session is deleted, at the version read). Signature: void(std::error_code).
  /// Handler: called exactly once, on its associated executor, never from within this call.
  /// Completes with {} once the node is gone or known not to be ours; while the session is
  /// suspended it waits for reconnected (then deletes) or lost (then the node goes with the
  /// session on the server): at most the session timeout. Connection loss during the delete
  /// is retried (read, then delete) with the retry policy. A closed session completes it at
  /// once (the node went with the session). errc::invalid_state if closed before (a second
  /// close). Listeners hear `closed` when the close begins, then nothing more.
  /// Per-operation cancellation: none (a close always finishes).
  template <class Token>
  auto async_close(Token&& token) {
    return boost::asio::async_initiate<Token, void(std::error_code)>(
        [](auto handler, std::shared_ptr<impl_type> impl) {
          impl->close(typename impl_type::void_pending(std::move(handler), impl->get_executor()));
        },
        token, impl_);
  }

  /// Calls `l` on every change (see ephemeral_node_listener) until the subscription dies or
  /// the node is closed. Any thread.
  subscription subscribe(ephemeral_node_listener l) { return impl_->subscribe(std::move(l)); }

  /// The state (a snapshot; `closed` from the moment async_close is called).
  ephemeral_node_state state() const noexcept { return impl_->state(); }
  /// Why the node is pending, if by an error (see ephemeral_node_event::error). A snapshot.
  std::error_code error() const { return impl_->last_event().error; }
  /// The ephemeralOwner of the node in the way, 0 if none. A snapshot.
  std::int64_t blocking_owner() const { return impl_->last_event().blocking_owner; }
  /// What the node did so far (requests, adoptions, waits, retries). A snapshot.
  ephemeral_node_stats stats() const { return impl_->stats(); }
  /// The data the node is kept with (the last set_data's, at once).
  std::string data() const { return impl_->data(); }
  const std::string& path() const noexcept { return impl_->path(); }

 private:
  static std::string checked(std::string path) {
    if (validate_path(path) || path == "/") {
      throw std::system_error(make_error_code(errc::invalid_path),
                              "zkr::recipes::ephemeral_node: invalid node path '" + path + "'");
    }
    return path;
  }

  std::shared_ptr<impl_type> impl_;
};

}  // namespace zkr::recipes
