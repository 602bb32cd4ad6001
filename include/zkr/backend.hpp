// zkr/backend.hpp: the contract every zkr backend satisfies, as a C++20 concept.
//
// Recipes are templates over a type `S` with `zkr::backend<S>`: a *session* of a ZooKeeper
// client (real: zkr::zookeeper::session; simulated: zkr::sim::session). A recipe uses the
// session and nothing else: its executor, its timers, its steady and wall clocks and its
// random source all come from the session, which is what lets the same recipe code run in
// real time against ZooKeeper and in virtual time inside the simulator.
//
// The full contract (ordering, errors per operation, watch and session-state rules) is
// documented in docs/backend.md. In short:
//   - Every async_* operation takes an Asio completion token (callback, use_future,
//     use_awaitable, deferred) and completes exactly once, never from within the initiating
//     call. Completions and watch events of one session run on its executor (a strand), in
//     the order ZooKeeper guarantees: FIFO per session, a watch event before the data it
//     reports. From there each handler runs on its associated executor.
//   - A watch handler completes exactly once: with a node event, or with
//     `errc::session_expired` / `errc::session_lost` (its session died) or `errc::closing`
//     (the session was closed). A watch is set only if its read succeeded (or, for exists,
//     reported no_node); otherwise the watch handler is destroyed without being invoked.
//   - Session transitions (connected, suspended, reconnected, lost, closed) go only to the
//     session-state channel (`subscribe`), never to watches.
//
// Thread safety: which threads may call a session is each backend's to say (the ZooKeeper
// backend: any; the simulator: its own thread). A `subscription` object has one owner at a
// time, like any value; the unsubscription it performs is safe from any thread.
#pragma once

#include <chrono>
#include <concepts>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <boost/asio/any_completion_handler.hpp>

#include <zkr/op.hpp>
#include <zkr/random.hpp>
#include <zkr/types.hpp>

namespace zkr {

/// The handler of a one-shot watch: `void(std::error_code, watch_event)`. Any callable of that
/// signature converts to it (move-only callables too); its associated executor is honoured.
using watch_handler = boost::asio::any_completion_handler<void(std::error_code, watch_event)>;

/// A state-change listener: called on the session's executor for every transition, in order.
using state_listener = std::function<void(const session_event&)>;

/// Keeps a `subscribe` registration alive; destroying or reset()ing it unsubscribes.
/// Guarantee: after reset() returns on the session's executor, the listener is not called
/// again; from another thread, a notification already running may still finish.
class subscription {
 public:
  subscription() = default;
  explicit subscription(std::function<void()> cancel) : cancel_(std::move(cancel)) {}
  subscription(subscription&& o) noexcept : cancel_(std::exchange(o.cancel_, nullptr)) {}
  subscription& operator=(subscription&& o) noexcept {
    if (this != &o) {
      reset();
      cancel_ = std::exchange(o.cancel_, nullptr);
    }
    return *this;
  }
  subscription(const subscription&) = delete;
  subscription& operator=(const subscription&) = delete;
  ~subscription() { reset(); }
  /// Unsubscribes now; idempotent.
  void reset() noexcept {
    if (auto f = std::exchange(cancel_, nullptr)) f();
  }
  explicit operator bool() const noexcept { return static_cast<bool>(cancel_); }

 private:
  std::function<void()> cancel_;
};

namespace detail {
/// A completion handler of signature Sig, used only to check the concept.
template <class Sig>
struct archetype_handler;
template <class... Args>
struct archetype_handler<void(Args...)> {
  void operator()(Args...) {}
};
template <class... Args>
using handler_of = archetype_handler<void(std::error_code, Args...)>;
}  // namespace detail

/// A session of a ZooKeeper backend. See the file comment and docs/backend.md.
template <class S>
concept backend = requires(S& s, const S& cs, std::string_view path, std::string_view data,
                           const create_options& copts, std::int32_t version, const acl_list& acls,
                           std::vector<op> ops, watch_handler w, state_listener l,
                           std::chrono::milliseconds d) {
  // --- what a recipe may use besides the operations --------------------------------------
  typename S::executor_type;  // an ordered executor (strand): completions run in ZK order
  typename S::timer_type;     // a waitable timer in the session's time (real or virtual)
  { s.get_executor() } -> std::convertible_to<typename S::executor_type>;
  requires std::constructible_from<typename S::timer_type, typename S::executor_type>;
  requires requires(typename S::timer_type& t) {
    t.expires_after(d);
    t.async_wait(detail::archetype_handler<void(std::error_code)>{});
    t.cancel();
  };
  { cs.steady_now() } -> std::same_as<std::chrono::steady_clock::time_point>;
  { cs.wall_now() } -> std::same_as<std::chrono::system_clock::time_point>;
  { s.random() } -> std::same_as<prng&>;

  // --- session state ---------------------------------------------------------------------
  { cs.state() } -> std::same_as<session_state>;
  { cs.generation() } -> std::same_as<std::uint64_t>;
  { cs.session_id() } -> std::same_as<std::int64_t>;
  { cs.negotiated_timeout() } -> std::same_as<std::chrono::milliseconds>;
  { s.subscribe(l) } -> std::same_as<subscription>;
  s.async_wait_connected(detail::handler_of<>{});

  // --- operations --------------------------------------------------------------------------
  s.async_create(path, data, copts, detail::handler_of<std::string, stat>{});
  s.async_remove(path, version, detail::handler_of<>{});
  s.async_exists(path, detail::handler_of<stat>{});
  s.async_exists(path, std::move(w), detail::handler_of<stat>{});
  s.async_get(path, detail::handler_of<std::string, stat>{});
  s.async_get(path, std::move(w), detail::handler_of<std::string, stat>{});
  s.async_get_children(path, detail::handler_of<std::vector<std::string>, stat>{});
  s.async_get_children(path, std::move(w), detail::handler_of<std::vector<std::string>, stat>{});
  s.async_set(path, data, version, detail::handler_of<stat>{});
  s.async_get_acl(path, detail::handler_of<acl_list, stat>{});
  s.async_set_acl(path, acls, version, detail::handler_of<>{});
  s.async_multi(std::move(ops), detail::handler_of<std::vector<op_result>>{});
  s.async_sync(path, detail::handler_of<>{});
  s.async_add_auth(data, data, detail::handler_of<>{});
  s.async_close(detail::handler_of<>{});
};

}  // namespace zkr
