// tests/recipes/scripted_session.hpp: a backend session whose replies the test writes.
//
// Beast's test stream, for zkr: `scripted_session` satisfies zkr::backend, but sends nothing.
// Reads (get, get_children, exists) and syncs wait in `ops` until the test answers them, in any
// order it likes, with any result; watches are kept per path and kind and fired by the test;
// session transitions are announced by the test. Everything runs on a strand of an io_context
// that the test polls on its own thread. It reaches the interleavings a real server makes rare
// (a list read that overtakes a child read, a stale reply, a read failing while the session
// still says connected) deterministically. Writes are refused (errc::unimplemented).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <zkr/backend.hpp>
#include <zkr/error.hpp>

namespace zkr::test {

class scripted_session {
 public:
  using executor_type = boost::asio::strand<boost::asio::io_context::executor_type>;
  using timer_type = boost::asio::basic_waitable_timer<std::chrono::steady_clock,
                                                       boost::asio::wait_traits<std::chrono::steady_clock>, executor_type>;

  enum class kind { get, children, exists, sync };
  using get_handler = boost::asio::any_completion_handler<void(std::error_code, std::string, zkr::stat)>;
  using children_handler = boost::asio::any_completion_handler<void(std::error_code, std::vector<std::string>, zkr::stat)>;
  using exists_handler = boost::asio::any_completion_handler<void(std::error_code, zkr::stat)>;
  using sync_handler = boost::asio::any_completion_handler<void(std::error_code)>;
  /// One request waiting for the test's answer. Built whole and never assigned: Boost 1.81's
  /// any_completion_handler move assignment recurses (see zkr/detail/pending.hpp).
  struct op {
    op(kind k, std::string p, watch_handler w, get_handler g, children_handler c, exists_handler e, sync_handler s)
        : k(k), path(std::move(p)), watched(static_cast<bool>(w)), watch(std::move(w)), on_get(std::move(g)),
          on_children(std::move(c)), on_exists(std::move(e)), on_sync(std::move(s)) {}
    kind k;
    std::string path;
    bool watched;
    watch_handler watch;
    get_handler on_get;
    children_handler on_children;
    exists_handler on_exists;
    sync_handler on_sync;
  };

  explicit scripted_session(boost::asio::io_context& io) : io_(io), strand_(boost::asio::make_strand(io)), rng_(7) {}

  // ---- the backend concept ----------------------------------------------------------------
  executor_type get_executor() const { return strand_; }
  std::chrono::steady_clock::time_point steady_now() const { return std::chrono::steady_clock::now(); }
  std::chrono::system_clock::time_point wall_now() const { return std::chrono::system_clock::now(); }
  prng& random() { return rng_; }
  session_state state() const { return state_; }
  std::uint64_t generation() const { return generation_; }
  std::int64_t session_id() const { return 0x100 + static_cast<std::int64_t>(generation_); }
  std::chrono::milliseconds negotiated_timeout() const { return std::chrono::milliseconds(4000); }
  subscription subscribe(state_listener l) {
    const auto id = ++next_listener_;
    listeners_->emplace(id, std::move(l));
    // Weak, as the real backends: a subscription may outlive the session.
    return subscription([weak = std::weak_ptr<listener_map>(listeners_), id] {
      if (auto m = weak.lock()) m->erase(id);
    });
  }
  template <class T>
  auto async_wait_connected(T&& t) {
    return refuse<>(std::forward<T>(t));
  }
  template <class T>
  auto async_create(std::string_view, std::string_view, const create_options&, T&& t) {
    return refuse<std::string, zkr::stat>(std::forward<T>(t));
  }
  template <class T>
  auto async_remove(std::string_view, std::int32_t, T&& t) {
    return refuse<>(std::forward<T>(t));
  }
  template <class T>
  auto async_set(std::string_view, std::string_view, std::int32_t, T&& t) {
    return refuse<zkr::stat>(std::forward<T>(t));
  }
  template <class T>
  auto async_get_acl(std::string_view, T&& t) {
    return refuse<acl_list, zkr::stat>(std::forward<T>(t));
  }
  template <class T>
  auto async_set_acl(std::string_view, const acl_list&, std::int32_t, T&& t) {
    return refuse<>(std::forward<T>(t));
  }
  template <class T>
  auto async_multi(std::vector<zkr::op>, T&& t) {
    return refuse<std::vector<op_result>>(std::forward<T>(t));
  }
  template <class T>
  auto async_add_auth(std::string_view, std::string_view, T&& t) {
    return refuse<>(std::forward<T>(t));
  }
  template <class T>
  auto async_close(T&& t) {
    return refuse<>(std::forward<T>(t));
  }

  template <class T>
  auto async_get(std::string_view p, T&& t) {
    return async_get(p, watch_handler{}, std::forward<T>(t));
  }
  template <class T>
  auto async_get(std::string_view p, watch_handler w, T&& t) {
    return boost::asio::async_initiate<T, void(std::error_code, std::string, zkr::stat)>(
        [this, path = std::string(p)](auto h, watch_handler wh) {
          ops.push_back(std::make_unique<op>(kind::get, path, std::move(wh), get_handler(std::move(h)), children_handler{},
                                             exists_handler{}, sync_handler{}));
        },
        t, std::move(w));
  }
  template <class T>
  auto async_get_children(std::string_view p, T&& t) {
    return async_get_children(p, watch_handler{}, std::forward<T>(t));
  }
  template <class T>
  auto async_get_children(std::string_view p, watch_handler w, T&& t) {
    return boost::asio::async_initiate<T, void(std::error_code, std::vector<std::string>, zkr::stat)>(
        [this, path = std::string(p)](auto h, watch_handler wh) {
          ops.push_back(std::make_unique<op>(kind::children, path, std::move(wh), get_handler{},
                                             children_handler(std::move(h)), exists_handler{}, sync_handler{}));
        },
        t, std::move(w));
  }
  template <class T>
  auto async_exists(std::string_view p, T&& t) {
    return async_exists(p, watch_handler{}, std::forward<T>(t));
  }
  template <class T>
  auto async_exists(std::string_view p, watch_handler w, T&& t) {
    return boost::asio::async_initiate<T, void(std::error_code, zkr::stat)>(
        [this, path = std::string(p)](auto h, watch_handler wh) {
          ops.push_back(std::make_unique<op>(kind::exists, path, std::move(wh), get_handler{}, children_handler{},
                                             exists_handler(std::move(h)), sync_handler{}));
        },
        t, std::move(w));
  }
  template <class T>
  auto async_sync(std::string_view p, T&& t) {
    return boost::asio::async_initiate<T, void(std::error_code)>(
        [this, path = std::string(p)](auto h) {
          ops.push_back(std::make_unique<op>(kind::sync, path, watch_handler{}, get_handler{}, children_handler{},
                                             exists_handler{}, sync_handler(std::move(h))));
        },
        t);
  }

  // ---- the script -------------------------------------------------------------------------

  /// Requests waiting for an answer, oldest first.
  std::deque<std::unique_ptr<op>> ops;

  /// Runs what is ready on the io_context.
  void poll() {
    io_.restart();
    io_.poll();
  }

  /// Index of the oldest waiting request of kind `k` on `path`; throws if none.
  std::size_t find(kind k, std::string_view path) const {
    for (std::size_t i = 0; i < ops.size(); ++i) {
      if (ops[i]->k == k && ops[i]->path == path) return i;
    }
    throw std::logic_error("no waiting request for " + std::string(path));
  }

  /// Answers a get: success (data, stat) or `ec`. A watch it carried is registered on success.
  void answer_get(std::size_t i, std::error_code ec, std::string data = {}, zkr::stat st = {}) {
    auto o = take(i, kind::get);
    if (!ec && o->watched) data_w_[o->path].push_back(std::move(o->watch));
    post([h = std::move(o->on_get), ec, data = std::move(data), st]() mutable { std::move(h)(ec, std::move(data), st); });
  }
  /// Answers a get_children (sorted names, the parent's stat) or `ec`.
  void answer_children(std::size_t i, std::error_code ec, std::vector<std::string> kids = {}, zkr::stat st = {}) {
    auto o = take(i, kind::children);
    if (!ec && o->watched) child_w_[o->path].push_back(std::move(o->watch));
    post([h = std::move(o->on_children), ec, kids = std::move(kids), st]() mutable { std::move(h)(ec, std::move(kids), st); });
  }
  /// Answers an exists: present (stat), or `ec` (no_node: the watch is registered too).
  void answer_exists(std::size_t i, std::error_code ec, zkr::stat st = {}) {
    auto o = take(i, kind::exists);
    if ((!ec || ec == errc::no_node) && o->watched) data_w_[o->path].push_back(std::move(o->watch));
    post([h = std::move(o->on_exists), ec, st]() mutable { std::move(h)(ec, st); });
  }
  void answer_sync(std::size_t i, std::error_code ec = {}) {
    auto o = take(i, kind::sync);
    post([h = std::move(o->on_sync), ec]() mutable { std::move(h)(ec); });
  }

  /// Fires the data (get/exists) watches on `path` with `type`.
  void fire_data(const std::string& path, event_type type) { fire(data_w_, path, {}, type); }
  /// Fires the child watches on `path` (children_changed, or deleted).
  void fire_children(const std::string& path, event_type type = event_type::children_changed) {
    fire(child_w_, path, {}, type);
  }
  std::size_t data_watches(const std::string& path) const { return count(data_w_, path); }
  std::size_t child_watches(const std::string& path) const { return count(child_w_, path); }

  /// Announces a transition. `lost` ends every watch with session_expired; a new generation
  /// starts with the `connected` that follows.
  void transition(session_state s) {
    if (s == session_state::lost) {
      for (auto* t : {&data_w_, &child_w_}) {
        std::vector<std::string> paths;
        for (const auto& [p, v] : *t) paths.push_back(p);
        for (const auto& p : paths) fire(*t, p, make_error_code(errc::session_expired), event_type::deleted);
      }
    }
    if (s == session_state::connected && state_ == session_state::lost) ++generation_;
    state_ = s;
    const session_event ev{s, generation_, {}};
    const auto copy = *listeners_;
    for (const auto& [id, l] : copy) l(ev);
  }

 private:
  template <class... R, class T>
  auto refuse(T&& t) {
    return boost::asio::async_initiate<T, void(std::error_code, R...)>(
        [this](auto h) { post([h = std::move(h)]() mutable { std::move(h)(make_error_code(errc::unimplemented), R{}...); }); },
        t);
  }
  template <class F>
  void post(F&& f) {
    boost::asio::post(strand_, std::forward<F>(f));
  }
  std::unique_ptr<op> take(std::size_t i, kind k) {
    if (i >= ops.size() || ops[i]->k != k) throw std::logic_error("answering the wrong request");
    auto o = std::move(ops[i]);
    ops.erase(ops.begin() + static_cast<std::ptrdiff_t>(i));
    return o;
  }
  void fire(std::map<std::string, std::vector<watch_handler>>& t, const std::string& path, std::error_code ec,
            event_type type) {
    const auto it = t.find(path);
    if (it == t.end()) return;
    auto ws = std::move(it->second);
    t.erase(it);
    for (auto& w : ws) {
      post([w = std::move(w), ec, ev = watch_event{type, path}]() mutable { std::move(w)(ec, ev); });
    }
  }
  static std::size_t count(const std::map<std::string, std::vector<watch_handler>>& t, const std::string& path) {
    const auto it = t.find(path);
    return it == t.end() ? 0 : it->second.size();
  }

  boost::asio::io_context& io_;
  executor_type strand_;
  prng rng_;
  session_state state_ = session_state::connected;
  std::uint64_t generation_ = 1;
  using listener_map = std::map<std::uint64_t, state_listener>;
  std::shared_ptr<listener_map> listeners_ = std::make_shared<listener_map>();
  std::uint64_t next_listener_ = 0;
  std::map<std::string, std::vector<watch_handler>> data_w_, child_w_;
};

static_assert(zkr::backend<scripted_session>);

}  // namespace zkr::test
