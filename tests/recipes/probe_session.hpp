// tests/recipes/probe_session.hpp: a backend session that forwards to another and watches
// what a recipe sends.
//
// `probe_session<S>` satisfies zkr::backend by forwarding every member to a session `S` it
// refers to, and
//   - counts the requests a recipe makes, per operation (`counts()`), so a test can measure
//     round trips (e.g. get_children per lock hand-off) on either backend;
//   - calls `before_send(op, path)` before forwarding a request, so a simulator test can
//     schedule a fault relative to that request (e.g. cut the client's link once a create has
//     reached the server, before its reply comes back: connection loss mid-create), or slip
//     a request of its own in ahead of it;
//   - passes every successful setData reply's stat through `set_reply_filter`, so a test can
//     show a recipe versions that take 2^31 sets to reach for real.
// The recipe under test is instantiated on probe_session<S> instead of S; nothing else changes.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_executor.hpp>

#include <zkr/backend.hpp>

namespace zkr::test {

/// Requests seen by a probe_session, per operation.
struct request_counts {
  std::atomic<std::uint64_t> create{0}, remove{0}, exists{0}, get{0}, get_children{0}, set{0}, multi{0}, sync{0};
  std::uint64_t total() const {
    return create + remove + exists + get + get_children + set + multi + sync;
  }
};

template <zkr::backend S>
class probe_session {
 public:
  using executor_type = typename S::executor_type;
  using timer_type = typename S::timer_type;
  /// Called before a request is forwarded: (operation, path). Runs where the recipe calls.
  using hook = std::function<void(std::string_view, std::string_view)>;

  explicit probe_session(S& inner) : s_(&inner) {}
  probe_session(const probe_session&) = delete;
  probe_session& operator=(const probe_session&) = delete;

  S& inner() noexcept { return *s_; }
  request_counts& counts() noexcept { return counts_; }
  void set_before_send(hook h) { before_ = std::move(h); }
  void set_reply_filter(std::function<void(zkr::stat&)> f) { set_filter_ = std::move(f); }

  executor_type get_executor() const noexcept { return s_->get_executor(); }
  std::chrono::steady_clock::time_point steady_now() const noexcept { return s_->steady_now(); }
  std::chrono::system_clock::time_point wall_now() const noexcept { return s_->wall_now(); }
  prng& random() noexcept { return s_->random(); }
  session_state state() const noexcept { return s_->state(); }
  std::uint64_t generation() const noexcept { return s_->generation(); }
  std::int64_t session_id() const noexcept { return s_->session_id(); }
  std::chrono::milliseconds negotiated_timeout() const noexcept { return s_->negotiated_timeout(); }
  subscription subscribe(state_listener l) { return s_->subscribe(std::move(l)); }

  template <class Token>
  auto async_wait_connected(Token&& token) {
    return s_->async_wait_connected(std::forward<Token>(token));
  }
  template <class Token>
  auto async_create(std::string_view path, std::string_view data, const create_options& o, Token&& token) {
    note(counts_.create, "create", path);
    return s_->async_create(path, data, o, std::forward<Token>(token));
  }
  template <class Token>
  auto async_remove(std::string_view path, std::int32_t version, Token&& token) {
    note(counts_.remove, "remove", path);
    return s_->async_remove(path, version, std::forward<Token>(token));
  }
  template <class Token>
  auto async_exists(std::string_view path, Token&& token) {
    note(counts_.exists, "exists", path);
    return s_->async_exists(path, std::forward<Token>(token));
  }
  template <class Token>
  auto async_exists(std::string_view path, watch_handler w, Token&& token) {
    note(counts_.exists, "exists", path);
    return s_->async_exists(path, std::move(w), std::forward<Token>(token));
  }
  template <class Token>
  auto async_get(std::string_view path, Token&& token) {
    note(counts_.get, "get", path);
    return s_->async_get(path, std::forward<Token>(token));
  }
  template <class Token>
  auto async_get(std::string_view path, watch_handler w, Token&& token) {
    note(counts_.get, "get", path);
    return s_->async_get(path, std::move(w), std::forward<Token>(token));
  }
  template <class Token>
  auto async_get_children(std::string_view path, Token&& token) {
    note(counts_.get_children, "get_children", path);
    return s_->async_get_children(path, std::forward<Token>(token));
  }
  template <class Token>
  auto async_get_children(std::string_view path, watch_handler w, Token&& token) {
    note(counts_.get_children, "get_children", path);
    return s_->async_get_children(path, std::move(w), std::forward<Token>(token));
  }
  template <class Token>
  auto async_set(std::string_view path, std::string_view data, std::int32_t version, Token&& token) {
    note(counts_.set, "set", path);
    return boost::asio::async_initiate<Token, void(std::error_code, zkr::stat)>(
        [this](auto handler, std::string p, std::string d, std::int32_t v) {
          auto ex = boost::asio::get_associated_executor(handler, s_->get_executor());
          s_->async_set(p, d, v,
                        boost::asio::bind_executor(ex, [h = std::move(handler), f = set_filter_](
                                                           std::error_code ec, zkr::stat st) mutable {
                          if (!ec && f) f(st);
                          std::move(h)(ec, st);
                        }));
        },
        token, std::string(path), std::string(data), version);
  }
  template <class Token>
  auto async_get_acl(std::string_view path, Token&& token) {
    return s_->async_get_acl(path, std::forward<Token>(token));
  }
  template <class Token>
  auto async_set_acl(std::string_view path, const acl_list& acls, std::int32_t version, Token&& token) {
    return s_->async_set_acl(path, acls, version, std::forward<Token>(token));
  }
  template <class Token>
  auto async_multi(std::vector<op> ops, Token&& token) {
    note(counts_.multi, "multi", ops.empty() ? std::string_view{} : std::string_view(ops.front().path));
    return s_->async_multi(std::move(ops), std::forward<Token>(token));
  }
  template <class Token>
  auto async_sync(std::string_view path, Token&& token) {
    note(counts_.sync, "sync", path);
    return s_->async_sync(path, std::forward<Token>(token));
  }
  template <class Token>
  auto async_add_auth(std::string_view scheme, std::string_view credential, Token&& token) {
    return s_->async_add_auth(scheme, credential, std::forward<Token>(token));
  }
  template <class Token>
  auto async_close(Token&& token) {
    return s_->async_close(std::forward<Token>(token));
  }

 private:
  void note(std::atomic<std::uint64_t>& n, std::string_view op, std::string_view path) {
    n.fetch_add(1, std::memory_order_relaxed);
    if (before_) before_(op, path);
  }

  S* s_;
  request_counts counts_;
  hook before_;
  std::function<void(zkr::stat&)> set_filter_;
};

}  // namespace zkr::test
