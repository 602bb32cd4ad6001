// zkr/zookeeper/session.hpp: the real ZooKeeper backend, on the ZooKeeper C client (mt).
//
// `zkr::zookeeper::session` satisfies `zkr::backend` (zkr/backend.hpp); docs/backend.md is the
// contract it implements, with the errors each operation can return.
//
// Threads: the member functions may be called from any thread. Handlers, watch handlers
// and state listeners run on the session's strand (`get_executor()`), in ZooKeeper's order,
// and from there on each handler's associated executor. The C client runs two threads of its
// own per handle; zkr never runs user code on them.
//
// Lifetime: close the session with async_close and let it complete. Destroying a session that
// is still open closes it in the background: pending operations complete with
// operation_aborted, watches with errc::closing, provided the executor still runs.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/async_result.hpp>

#include <zkr/backend.hpp>
#include <zkr/zookeeper/impl/session_impl.hpp>
#include <zkr/zookeeper/options.hpp>

namespace zkr::zookeeper {

/// The C client's process-wide log level.
enum class log_level : int { error = 1, warn = 2, info = 3, debug = 4 };

/// Sets the C client's log level for every session of the process (it is a global of the
/// C client). Safe to call from any thread at any time.
inline void set_log_level(log_level level) noexcept { zoo_set_debug_level(static_cast<ZooLogLevel>(level)); }

/// A ZooKeeper session: one logical client of the ensemble, re-opened after expiry.
class session {
 public:
  using executor_type = detail::session_impl::executor_type;  ///< a strand
  using timer_type = detail::session_impl::timer_type;        ///< steady_clock timer on the strand

  /// Starts connecting (the state is `connecting` until the first `connected`).
  /// Throws std::system_error for an invalid connect string or timeout, or if the C client
  /// refuses to create a handle. Never blocks on the network.
  session(boost::asio::any_io_executor ex, options opts)
      : impl_(std::make_shared<detail::session_impl>(std::move(ex), std::move(opts))) {
    impl_->start();
  }
  session(const session&) = delete;
  session& operator=(const session&) = delete;
  /// Closes the session in the background if async_close was not called (never blocks).
  ~session() { impl_->close_detached(); }

  /// The strand every completion of this session runs on.
  const executor_type& get_executor() const noexcept { return impl_->get_executor(); }
  /// Real steady time.
  std::chrono::steady_clock::time_point steady_now() const noexcept { return std::chrono::steady_clock::now(); }
  /// Real wall time.
  std::chrono::system_clock::time_point wall_now() const noexcept { return std::chrono::system_clock::now(); }
  /// The session's random source. Use on the strand only.
  prng& random() noexcept { return impl_->random(); }

  /// The current state (a snapshot: it may change right after the call).
  session_state state() const noexcept { return impl_->state(); }
  /// 1 for the first ZooKeeper session, +1 for each re-opened one.
  std::uint64_t generation() const noexcept { return impl_->generation(); }
  /// The ZooKeeper session id of the current generation, 0 before the first connect.
  std::int64_t session_id() const noexcept { return impl_->session_id(); }
  /// The password of the current ZooKeeper session (16 bytes, empty before the first
  /// connect). With session_id() it lets a tool attach to the same session, e.g. a test
  /// that forces expiry the way Curator's KillSession did. Treat it as a secret.
  std::string session_password() const { return impl_->password(); }
  /// The timeout the server granted, 0 before the first connect.
  std::chrono::milliseconds negotiated_timeout() const noexcept { return impl_->negotiated_timeout(); }
  /// The options the session was created with.
  const options& get_options() const noexcept { return impl_->opts(); }

  /// Calls `listener` on the strand for every state transition, in order, until the returned
  /// subscription is destroyed. Listeners must not block.
  subscription subscribe(state_listener listener) { return subscription(impl_->add_listener(std::move(listener))); }

  /// Waits until the session is connected (completes at once, posted, if it is).
  /// Signature: void(std::error_code). Errors: errc::closing if closed; the loss reason
  /// (session_expired, session_lost, auth_failed) once the session is lost for good
  /// (reopen_on_expiry off, or auth failed), also for a wait already pending then.
  /// Per-Operation Cancellation: all types; completes with operation_aborted.
  template <class Token>
  auto async_wait_connected(Token&& token) {
    return boost::asio::async_initiate<Token, void(std::error_code)>(
        [impl = impl_](auto handler) {
          auto slot = boost::asio::get_associated_cancellation_slot(handler);
          impl->wait_connected(zkr::detail::pending<void(std::error_code)>(std::move(handler), impl->get_executor()),
                              slot);
        },
        token);
  }

  /// Creates a node. Signature: void(std::error_code, std::string created_path, zkr::stat).
  /// Errors: node_exists, no_node (parent), no_children_for_ephemerals, no_auth, invalid_acl,
  /// invalid_path, data_too_large, invalid_argument (TTL given/missing), connection_loss
  /// (outcome unknown), session_expired, closing, operation_aborted (closed while pending).
  template <class Token>
  auto async_create(std::string_view path, std::string_view data, const create_options& opts, Token&& token) {
    return initiate<std::string, zkr::stat>(token, &impl_type::create, std::string(path), std::string(data), opts);
  }
  /// Removes a node if `version` matches (-1: any). Signature: void(std::error_code).
  /// Errors: no_node, bad_version, not_empty, no_auth, plus the session errors of create.
  template <class Token>
  auto async_remove(std::string_view path, std::int32_t version, Token&& token) {
    return initiate<>(token, &impl_type::remove, std::string(path), version);
  }
  /// Reads a node's stat. Signature: void(std::error_code, zkr::stat). no_node if missing.
  template <class Token>
  auto async_exists(std::string_view path, Token&& token) {
    return initiate<zkr::stat>(token, &impl_type::exists, std::string(path), watch_handler{});
  }
  /// As above, and sets a watch for created / deleted / data_changed, also when the node is
  /// missing (then the read completes with no_node and the watch is set).
  template <class Token>
  auto async_exists(std::string_view path, watch_handler watch, Token&& token) {
    return initiate<zkr::stat>(token, &impl_type::exists, std::string(path), std::move(watch));
  }
  /// Reads data and stat. Signature: void(std::error_code, std::string, zkr::stat).
  template <class Token>
  auto async_get(std::string_view path, Token&& token) {
    return initiate<std::string, zkr::stat>(token, &impl_type::get, std::string(path), watch_handler{});
  }
  /// As above, and sets a watch for deleted / data_changed. A missing node sets no watch.
  template <class Token>
  auto async_get(std::string_view path, watch_handler watch, Token&& token) {
    return initiate<std::string, zkr::stat>(token, &impl_type::get, std::string(path), std::move(watch));
  }
  /// Lists children (names, unordered) and the parent's stat.
  /// Signature: void(std::error_code, std::vector<std::string>, zkr::stat).
  template <class Token>
  auto async_get_children(std::string_view path, Token&& token) {
    return initiate<std::vector<std::string>, zkr::stat>(token, &impl_type::get_children, std::string(path),
                                                    watch_handler{});
  }
  /// As above, and sets a watch for children_changed / deleted. A missing node sets none.
  template <class Token>
  auto async_get_children(std::string_view path, watch_handler watch, Token&& token) {
    return initiate<std::vector<std::string>, zkr::stat>(token, &impl_type::get_children, std::string(path),
                                                    std::move(watch));
  }
  /// Sets data if `version` matches (-1: any). Signature: void(std::error_code, zkr::stat).
  template <class Token>
  auto async_set(std::string_view path, std::string_view data, std::int32_t version, Token&& token) {
    return initiate<zkr::stat>(token, &impl_type::set, std::string(path), std::string(data), version);
  }
  /// Reads a node's ACL. Signature: void(std::error_code, zkr::acl_list, zkr::stat).
  template <class Token>
  auto async_get_acl(std::string_view path, Token&& token) {
    return initiate<acl_list, zkr::stat>(token, &impl_type::get_acl, std::string(path));
  }
  /// Sets a node's ACL if its aversion matches `version` (-1: any). Signature: void(std::error_code).
  template <class Token>
  auto async_set_acl(std::string_view path, const acl_list& acls, std::int32_t version, Token&& token) {
    return initiate<>(token, &impl_type::set_acl, std::string(path), acls, version);
  }
  /// Applies `ops` atomically. Signature: void(std::error_code, std::vector<zkr::op_result>).
  /// On an operation's failure the error is that operation's; results hold success before it,
  /// its error, runtime_inconsistency after it. On a session error the results are empty.
  /// Limitation of the C client: a TTL create in a multi fails with errc::unimplemented, and
  /// create results carry the path but no stat.
  template <class Token>
  auto async_multi(std::vector<op> ops, Token&& token) {
    return initiate<std::vector<op_result>>(token, &impl_type::multi, std::move(ops));
  }
  /// Makes the connected server catch up with the leader, so that later reads on this
  /// session see every write committed before the sync. Signature: void(std::error_code).
  template <class Token>
  auto async_sync(std::string_view path, Token&& token) {
    return initiate<>(token, &impl_type::sync, std::string(path));
  }
  /// Adds credentials (e.g. "digest", "user:password") to this and every later generation.
  /// Signature: void(std::error_code). Digest auth always succeeds; a wrong password shows
  /// as no_auth on the protected node.
  template <class Token>
  auto async_add_auth(std::string_view scheme, std::string_view credential, Token&& token) {
    return initiate<>(token, &impl_type::add_auth, std::string(scheme), std::string(credential));
  }
  /// Closes the session: state `closed`, pending operations complete with operation_aborted,
  /// watches with errc::closing, ephemeral nodes go. Never blocks the executor (the C client's
  /// blocking close runs on a thread of its own). Signature: void(std::error_code). Idempotent.
  template <class Token>
  auto async_close(Token&& token) {
    return boost::asio::async_initiate<Token, void(std::error_code)>(
        [impl = impl_](auto handler) {
          impl->close(zkr::detail::pending<void(std::error_code)>(std::move(handler), impl->get_executor()));
        },
        token);
  }

 private:
  // The initiation owns its arguments (decay-copied by async_initiate), so deferred tokens
  // that start the operation later never see dangling views.
  template <class... R, class Token, class Fn, class... Args>
  auto initiate(Token& token, Fn fn, Args&&... args) {
    return boost::asio::async_initiate<Token, void(std::error_code, R...)>(
        [impl = impl_, fn](auto handler, auto&&... a) {
          ((*impl).*fn)(std::move(a)..., zkr::detail::pending<void(std::error_code, R...)>(std::move(handler),
                                                                                          impl->get_executor()));
        },
        token, std::forward<Args>(args)...);
  }

  using impl_type = detail::session_impl;
  std::shared_ptr<impl_type> impl_;
};

static_assert(backend<session>, "zkr::zookeeper::session must satisfy zkr::backend");

}  // namespace zkr::zookeeper
