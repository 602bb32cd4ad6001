// zkr/zookeeper/impl/session_impl.hpp: the state behind zkr::zookeeper::session.
//
// Threads: the C client (mt flavour) runs an I/O thread and a completion thread per handle.
// Completion callbacks and watcher calls arrive on the completion thread, in ZooKeeper's
// order; they copy what they need and post to the session's strand, which preserves that
// order. Everything the recipes observe (state, listeners, watches, timers) runs on the
// strand. `mu_` guards the current handle so that requests from any thread never race a
// handle swap or close. zookeeper_close() may block (it waits for the close-session reply
// and joins the C client's threads), so it runs on a reaper thread, never on the strand.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include <zookeeper/zookeeper.h>

#include <zkr/backend.hpp>
#include <zkr/connect_string.hpp>
#include <zkr/detail/pending.hpp>
#include <zkr/error.hpp>
#include <zkr/op.hpp>
#include <zkr/path.hpp>
#include <zkr/random.hpp>
#include <zkr/request_size.hpp>
#include <zkr/types.hpp>
#include <zkr/zookeeper/impl/c_client.hpp>
#include <zkr/zookeeper/options.hpp>

namespace zkr::zookeeper::detail {

namespace asio = boost::asio;
using zkr::detail::pending;

class session_impl : public std::enable_shared_from_this<session_impl> {
 public:
  using executor_type = asio::strand<asio::any_io_executor>;
  using timer_type = asio::basic_waitable_timer<std::chrono::steady_clock,
                                                asio::wait_traits<std::chrono::steady_clock>, executor_type>;

  session_impl(asio::any_io_executor ex, options opts)
      : strand_(asio::make_strand(ex)),
        opts_(std::move(opts)),
        rng_(opts_.seed ? *opts_.seed : (std::uint64_t{std::random_device{}()} << 32) ^ std::random_device{}()),
        lost_timer_(strand_),
        reopen_timer_(strand_) {}

  ~session_impl() {
    // Reapers hold a shared_ptr to us, so by now each has finished or is this thread.
    for (auto& r : reapers_) {
      if (r.thread.get_id() == std::this_thread::get_id()) {
        r.thread.detach();
      } else if (r.thread.joinable()) {
        r.thread.join();
      }
    }
    log_registry::instance().release(log_slot_);
  }

  session_impl(const session_impl&) = delete;
  session_impl& operator=(const session_impl&) = delete;

  /// Validates the options and opens the first handle. Throws std::system_error on a bad
  /// connect string, session timeout or size limit (configuration errors, not I/O).
  void start() {
    connect_string parsed;
    if (auto ec = parse_connect_string(opts_.connect_string, parsed)) {
      throw std::system_error(ec, "zkr::zookeeper::session: bad connect string '" + opts_.connect_string + "'");
    }
    chroot_ = parsed.chroot;
    if (opts_.session_timeout <= std::chrono::milliseconds::zero() ||
        opts_.session_timeout > std::chrono::hours(24)) {
      throw std::system_error(make_error_code(errc::invalid_argument),
                              "zkr::zookeeper::session: session_timeout must be in (0, 24h]");
    }
    if (opts_.log) {
      log_slot_ = log_registry::instance().acquire(opts_.log);
      if (log_slot_ < 0) {
        opts_.log("zkr: all " + std::to_string(log_slot_count) +
                  " per-session log slots are taken; this session's C-client log goes to stderr");
      }
    }
    std::lock_guard lock(mu_);
    if (auto ec = open_handle_locked()) {
      throw std::system_error(ec, "zkr::zookeeper::session: zookeeper_init failed");
    }
  }

  const executor_type& get_executor() const noexcept { return strand_; }
  prng& random() noexcept { return rng_; }
  session_state state() const noexcept { return state_.load(); }
  std::uint64_t generation() const noexcept { return generation_.load(); }
  std::int64_t session_id() const noexcept { return session_id_.load(); }
  std::chrono::milliseconds negotiated_timeout() const noexcept {
    return std::chrono::milliseconds(negotiated_ms_.load());
  }
  const options& opts() const noexcept { return opts_; }
  std::string password() const {
    std::lock_guard lock(mu_);
    return password_;
  }

  // ---- session-state channel ------------------------------------------------------------

  struct listener_entry {
    state_listener fn;
    std::atomic<bool> active{true};
  };

  std::function<void()> add_listener(state_listener fn) {
    auto entry = std::make_shared<listener_entry>();
    entry->fn = std::move(fn);
    {
      std::lock_guard lock(listeners_mu_);
      listeners_.push_back(entry);
    }
    std::weak_ptr<session_impl> weak = weak_from_this();
    return [weak, entry] {
      entry->active = false;
      if (auto self = weak.lock()) {
        std::lock_guard lock(self->listeners_mu_);
        std::erase(self->listeners_, entry);
      }
    };
  }

  void wait_connected(pending<void(std::error_code)> h, asio::cancellation_slot slot) {
    asio::post(strand_, [self = shared_from_this(), h = std::move(h), slot]() mutable {
      const auto s = self->state_.load();
      if (is_connected(s)) return std::move(h).dispatch_complete(std::error_code{});
      if (s == session_state::closed) return std::move(h).dispatch_complete(make_error_code(errc::closing));
      if (self->final_loss_) return std::move(h).dispatch_complete(self->final_loss_);
      const auto id = self->next_waiter_id_++;
      self->waiters_.emplace_back(id, std::move(h));
      if (slot.is_connected()) {
        // Honoured: every cancellation type; waiting has no side effect to undo.
        slot.assign([weak = self->weak_from_this(), id](asio::cancellation_type) {
          if (auto me = weak.lock()) {
            asio::post(me->strand_, [me, id] { me->cancel_waiter(id); });
          }
        });
      }
    });
  }

  // ---- operations -------------------------------------------------------------------------

  template <class... R>
  using handler_t = pending<void(std::error_code, R...)>;

  void create(std::string path, std::string data, create_options o, handler_t<std::string, zkr::stat> h) {
    if (auto ec = validate_path(path, is_sequential(o.mode))) return fail(std::move(h), ec);
    if (!chroot_.empty() && path == "/") {
      // The C client maps "/" to the chroot itself: a sequential create would make a sibling.
      return fail(std::move(h), make_error_code(errc::invalid_path));
    }
    if (is_ttl(o.mode) != (o.ttl > std::chrono::milliseconds::zero()) || o.ttl.count() < 0) {
      return fail(std::move(h), make_error_code(errc::invalid_argument));
    }
    if (auto ec = check_request_size(create_request_size(apply_chroot(chroot_, path), data, o), opts_.max_request_bytes)) {
      return fail(std::move(h), ec);
    }
    c_acl_vector acl(o.acl);
    submit(std::move(h), 0, [&](zhandle_t* zh, void* ctx) {
      if (is_ttl(o.mode)) {
        return zoo_acreate2_ttl(zh, path.c_str(), data.data(), static_cast<int>(data.size()), acl.get(),
                                static_cast<int>(o.mode), o.ttl.count(), &on_string_stat, ctx);
      }
      return zoo_acreate2(zh, path.c_str(), data.data(), static_cast<int>(data.size()), acl.get(),
                          static_cast<int>(o.mode), &on_string_stat, ctx);
    });
  }

  void remove(std::string path, std::int32_t version, handler_t<> h) {
    if (auto ec = validate_path(path)) return fail(std::move(h), ec);
    submit(std::move(h), 0, [&](zhandle_t* zh, void* ctx) {
      return zoo_adelete(zh, path.c_str(), version, &on_void, ctx);
    });
  }

  void exists(std::string path, watch_handler w, handler_t<zkr::stat> h) {
    if (auto ec = validate_path(path)) return fail(std::move(h), ec);
    submit(std::move(h), std::move(w), [&](zhandle_t* zh, void* ctx, void* wctx) {
      return zoo_awexists(zh, path.c_str(), wctx ? &path_watcher : nullptr, wctx, &on_stat_exists, ctx);
    });
  }

  void get(std::string path, watch_handler w, handler_t<std::string, zkr::stat> h) {
    if (auto ec = validate_path(path)) return fail(std::move(h), ec);
    submit(std::move(h), std::move(w), [&](zhandle_t* zh, void* ctx, void* wctx) {
      return zoo_awget(zh, path.c_str(), wctx ? &path_watcher : nullptr, wctx, &on_data, ctx);
    });
  }

  void get_children(std::string path, watch_handler w, handler_t<std::vector<std::string>, zkr::stat> h) {
    if (auto ec = validate_path(path)) return fail(std::move(h), ec);
    submit(std::move(h), std::move(w), [&](zhandle_t* zh, void* ctx, void* wctx) {
      return zoo_awget_children2(zh, path.c_str(), wctx ? &path_watcher : nullptr, wctx, &on_strings_stat, ctx);
    });
  }

  void set(std::string path, std::string data, std::int32_t version, handler_t<zkr::stat> h) {
    if (auto ec = validate_path(path)) return fail(std::move(h), ec);
    if (auto ec = check_request_size(set_request_size(apply_chroot(chroot_, path), data), opts_.max_request_bytes)) {
      return fail(std::move(h), ec);
    }
    submit(std::move(h), 0, [&](zhandle_t* zh, void* ctx) {
      return zoo_aset(zh, path.c_str(), data.data(), static_cast<int>(data.size()), version, &on_stat, ctx);
    });
  }

  void get_acl(std::string path, handler_t<acl_list, zkr::stat> h) {
    if (auto ec = validate_path(path)) return fail(std::move(h), ec);
    submit(std::move(h), 0, [&](zhandle_t* zh, void* ctx) {
      return zoo_aget_acl(zh, path.c_str(), &on_acl, ctx);
    });
  }

  void set_acl(std::string path, acl_list acls, std::int32_t version, handler_t<> h) {
    if (auto ec = validate_path(path)) return fail(std::move(h), ec);
    if (auto ec = check_request_size(set_acl_request_size(apply_chroot(chroot_, path), acls), opts_.max_request_bytes)) {
      return fail(std::move(h), ec);
    }
    c_acl_vector acl(acls);
    submit(std::move(h), 0, [&](zhandle_t* zh, void* ctx) {
      return zoo_aset_acl(zh, path.c_str(), version, acl.get(), &on_void, ctx);
    });
  }

  void multi(std::vector<op> ops, handler_t<std::vector<op_result>> h) {
    for (const auto& o : ops) {
      const bool seq = o.type == op::kind::create && is_sequential(o.create.mode);
      if (auto ec = validate_path(o.path, seq)) return fail(std::move(h), ec);
      if (o.type == op::kind::create && is_ttl(o.create.mode)) {
        // The C client's multi has no TTL create (zoo_create_op_init takes no TTL).
        return fail(std::move(h), make_error_code(errc::unimplemented));
      }
    }
    if (auto ec = check_request_size(multi_request_size(ops) + ops.size() * chroot_.size(), opts_.max_request_bytes)) {
      return fail(std::move(h), ec);
    }
    if (ops.empty()) {
      return fail(std::move(h), std::error_code{});  // ZooKeeper answers an empty multi with success
    }
    auto m = std::make_unique<multi_state>(std::move(ops));
    multi_state* raw = m.get();
    submit(std::move(h), 0, [&](zhandle_t* zh, void* ctx) {
      static_cast<op_ctx<std::vector<op_result>>*>(ctx)->multi = std::move(m);
      return zoo_amulti(zh, static_cast<int>(raw->c_ops.size()), raw->c_ops.data(), raw->results.data(), &on_multi,
                        ctx);
    });
  }

  void sync(std::string path, handler_t<> h) {
    if (auto ec = validate_path(path)) return fail(std::move(h), ec);
    submit(std::move(h), 0, [&](zhandle_t* zh, void* ctx) {
      return zoo_async(zh, path.c_str(), &on_string_void, ctx);
    });
  }

  /// Records the credential for every later handle and hands it to the current one. If the
  /// C client refuses it now (between two connection attempts), it is handed over, with the
  /// others, before the next request (ensure_auth_locked); the caller sees success either way,
  /// as digest auth cannot fail.
  void add_auth(std::string scheme, std::string credential, handler_t<> h) {
    std::unique_lock lock(mu_);
    if (handle_ == nullptr) {
      lock.unlock();
      return fail(std::move(h), make_error_code(closing_ ? errc::closing : errc::session_expired));
    }
    auths_.emplace_back(scheme, credential);
    if (!handle_->auth_ready) {
      ensure_auth_locked();
      lock.unlock();
      return fail(std::move(h), std::error_code{});
    }
    auto ctx = std::make_unique<op_ctx<>>(shared_from_this(), std::move(h));
    ctx->handle = handle_.get();
    handle_->add_op(ctx.get());
    const int rc = zoo_add_auth(handle_->zh, scheme.c_str(), credential.data(), static_cast<int>(credential.size()),
                                &on_void, ctx.get());
    if (rc == ZOK) {
      (void)ctx.release();  // the C client owns it until its completion
      return;
    }
    handle_->auth_ready = false;
    handle_->release_op(ctx.get(), [] {});
    lock.unlock();
    fail(std::move(ctx->handler), std::error_code{});
  }

  void close(pending<void(std::error_code)> h) {
    asio::post(strand_, [self = shared_from_this(), h = std::move(h)]() mutable { self->close_on_strand(std::move(h)); });
  }

  /// Close without a handler (the public session's destructor).
  void close_detached() { close({}); }

 private:
  // ---- operation contexts -----------------------------------------------------------------

  struct multi_state {
    explicit multi_state(std::vector<op> o) : ops(std::move(o)), c_ops(ops.size()), results(ops.size()) {
      path_buffers.resize(ops.size());
      stats.resize(ops.size());
      acls.reserve(ops.size());
      for (std::size_t i = 0; i < ops.size(); ++i) {
        const op& x = ops[i];
        switch (x.type) {
          case op::kind::create: {
            path_buffers[i].assign(x.path.size() + 64, '\0');  // room for a sequence suffix and chroot
            acls.push_back(std::make_unique<c_acl_vector>(x.create.acl));
            zoo_create_op_init(&c_ops[i], x.path.c_str(), x.data.data(), static_cast<int>(x.data.size()),
                               acls.back()->get(), static_cast<int>(x.create.mode), path_buffers[i].data(),
                               static_cast<int>(path_buffers[i].size()));
            break;
          }
          case op::kind::remove: zoo_delete_op_init(&c_ops[i], x.path.c_str(), x.version); break;
          case op::kind::set:
            zoo_set_op_init(&c_ops[i], x.path.c_str(), x.data.data(), static_cast<int>(x.data.size()), x.version,
                            &stats[i]);
            break;
          case op::kind::check: zoo_check_op_init(&c_ops[i], x.path.c_str(), x.version); break;
        }
      }
    }
    std::vector<op> ops;
    std::vector<zoo_op_t> c_ops;
    std::vector<zoo_op_result_t> results;
    std::vector<std::string> path_buffers;
    std::vector<Stat> stats;
    std::vector<std::unique_ptr<c_acl_vector>> acls;
  };

  template <class... R>
  struct op_ctx final : op_base {
    op_ctx(std::shared_ptr<session_impl> o, handler_t<R...> h) : owner(std::move(o)), handler(std::move(h)) {}
    std::shared_ptr<session_impl> owner;
    handler_t<R...> handler;       // empty once completed (by the C client's callback or an abort)
    handle_ctx* handle = nullptr;  // valid until the handle is closed, i.e. past our completion
    std::uintptr_t watch_key = 0;  // non-zero if this read asked for a watch
    std::unique_ptr<multi_state> multi;

    /// Called from the completion: drops the watch if the read did not set it.
    void settle_watch(bool armed) {
      if (watch_key != 0 && !armed) handle->take_watch(watch_key);
    }
    /// The C client's completion: unregister, and complete unless an abort came first.
    void finish(int rc, R... r) {
      std::optional<handler_t<R...>> h;
      handle->release_op(this, [&] {
        if (handler) h.emplace(std::move(handler));
      });
      if (h) std::move(*h).post_complete(owner->strand_, owner->map_rc(rc), std::move(r)...);
    }
    void abort(std::error_code ec) override {
      if (handler) handler_t<R...>(std::move(handler)).post_complete(owner->strand_, ec, R{}...);
    }
  };

  template <class... R>
  static std::unique_ptr<op_ctx<R...>> take(const void* data) {
    return std::unique_ptr<op_ctx<R...>>(static_cast<op_ctx<R...>*>(const_cast<void*>(data)));
  }

  static void on_void(int rc, const void* data) { take<>(data)->finish(rc); }
  static void on_string_void(int rc, const char*, const void* data) { take<>(data)->finish(rc); }
  static void on_stat(int rc, const Stat* st, const void* data) { take<zkr::stat>(data)->finish(rc, to_stat(st)); }
  static void on_stat_exists(int rc, const Stat* st, const void* data) {
    auto op = take<zkr::stat>(data);
    op->settle_watch(rc == ZOK || rc == ZNONODE);  // exists leaves a watch on a missing node
    op->finish(rc, rc == ZOK ? to_stat(st) : zkr::stat{});
  }
  static void on_data(int rc, const char* value, int len, const Stat* st, const void* data) {
    auto op = take<std::string, zkr::stat>(data);
    op->settle_watch(rc == ZOK);
    op->finish(rc, rc == ZOK && value && len > 0 ? std::string(value, static_cast<std::size_t>(len)) : std::string{},
               rc == ZOK ? to_stat(st) : zkr::stat{});
  }
  static void on_strings_stat(int rc, const String_vector* v, const Stat* st, const void* data) {
    auto op = take<std::vector<std::string>, zkr::stat>(data);
    op->settle_watch(rc == ZOK);
    op->finish(rc, rc == ZOK ? from_c_strings(v) : std::vector<std::string>{}, rc == ZOK ? to_stat(st) : zkr::stat{});
  }
  static void on_string_stat(int rc, const char* value, const Stat* st, const void* data) {
    take<std::string, zkr::stat>(data)->finish(rc, rc == ZOK && value ? std::string(value) : std::string{},
                                               rc == ZOK ? to_stat(st) : zkr::stat{});
  }
  static void on_acl(int rc, ACL_vector* acl, Stat* st, const void* data) {
    take<acl_list, zkr::stat>(data)->finish(rc, rc == ZOK ? from_c_acls(acl) : acl_list{},
                                            rc == ZOK ? to_stat(st) : zkr::stat{});
  }
  static void on_multi(int rc, const void* data) {
    auto op = take<std::vector<op_result>>(data);
    std::vector<op_result> results;
    if (op->multi && (rc == ZOK || rc < ZAPIERROR)) {  // API errors carry per-op results
      const auto& m = *op->multi;
      results.resize(m.ops.size());
      for (std::size_t i = 0; i < m.ops.size(); ++i) {
        results[i].ec = from_zk_code(m.results[i].err);
        if (m.results[i].err == ZOK && m.ops[i].type == op::kind::create && m.results[i].value) {
          results[i].path.assign(m.results[i].value);
        }
        if (m.results[i].err == ZOK && m.ops[i].type == op::kind::set) results[i].stat = to_stat(&m.stats[i]);
      }
    }
    if (rc != ZOK && rc > ZAPIERROR) results.clear();  // a system error: no per-op outcome known
    op->finish(rc, std::move(results));
  }

  /// Translates a C-client code in one place. ZCLOSING means the handle was closed under a
  /// pending request: by the user (operation_aborted) or because the session was presumed
  /// lost (connection_loss: the request may have been applied). ZINVALIDSTATE means the
  /// handle is expired and not yet replaced.
  std::error_code map_rc(int rc) const noexcept {
    if (rc == ZCLOSING) {
      return user_closed_.load() ? zkr::operation_aborted() : make_error_code(errc::connection_loss);
    }
    if (rc == ZINVALIDSTATE) return make_error_code(errc::session_expired);
    return from_zk_code(rc);
  }

  template <class... R>
  void fail(handler_t<R...> h, std::error_code ec) {
    std::move(h).post_complete(strand_, ec, R{}...);
  }

  /// Sends one request on the current handle. `call(zh, ctx)` (or `call(zh, ctx, wctx)` for
  /// reads that may set a watch) issues the C request and returns its immediate rc.
  template <class... R, class Call>
  void submit(handler_t<R...> h, watch_handler w, Call&& call) {
    std::unique_lock lock(mu_);
    if (handle_ == nullptr) {
      lock.unlock();
      return fail(std::move(h), make_error_code(closing_ ? errc::closing : errc::session_expired));
    }
    if (!ensure_auth_locked()) {
      // The credentials could not be handed to the C client (it refuses while between two
      // connection attempts). Sending the request now could run it unauthenticated, so it
      // is not sent: connection_loss, which every caller already treats as "retry".
      lock.unlock();
      return fail(std::move(h), make_error_code(errc::connection_loss));
    }
    auto ctx = std::make_unique<op_ctx<R...>>(shared_from_this(), std::move(h));
    ctx->handle = handle_.get();
    if (w) ctx->watch_key = handle_->add_watch(watch_pending(std::move(w), strand_));
    handle_->add_op(ctx.get());
    int rc = 0;
    if constexpr (std::is_invocable_v<Call, zhandle_t*, void*, void*>) {
      rc = call(handle_->zh, ctx.get(), reinterpret_cast<void*>(ctx->watch_key));
    } else {
      rc = call(handle_->zh, ctx.get());
    }
    if (rc == ZOK) {
      (void)ctx.release();  // the C client owns it until its completion
      return;
    }
    ctx->settle_watch(false);
    handle_->release_op(ctx.get(), [] {});
    lock.unlock();
    fail(std::move(ctx->handler), map_rc(rc));
  }
  template <class... R, class Call>
  void submit(handler_t<R...> h, int /*no watch*/, Call&& call) {
    submit(std::move(h), watch_handler{}, std::forward<Call>(call));
  }

  /// Makes sure the current handle holds every credential before a request goes out on it.
  /// The C client refuses zoo_add_auth (ZINVALIDSTATE) while it is between two connection
  /// attempts (its state is 0 then), so a handle opened while no server answers cannot take
  /// them at once; they are handed over before the first request that finds the C client
  /// willing. A credential handed over while connecting is sent ahead of every queued request
  /// when the handshake completes. Requires mu_ and a handle.
  bool ensure_auth_locked() {
    if (handle_->auth_ready) return true;
    for (const auto& [scheme, cred] : auths_) {
      if (zoo_add_auth(handle_->zh, scheme.c_str(), cred.data(), static_cast<int>(cred.size()), nullptr, nullptr) !=
          ZOK) {
        return false;  // nothing was sent for this one; all are retried next time
      }
    }
    handle_->auth_ready = true;
    return true;
  }

  // ---- handles, states, expiry --------------------------------------------------------------

  /// Opens a new C handle (a new session generation). Requires mu_.
  std::error_code open_handle_locked() {
    auto h = std::make_unique<handle_ctx>();
    h->generation = generation_.load() + 1;
    std::weak_ptr<session_impl> weak = weak_from_this();
    const auto gen = h->generation;
    h->on_state = [weak, gen](int zstate) {
      if (auto self = weak.lock()) {
        asio::post(self->strand_, [self, gen, zstate] { self->on_zk_state(gen, zstate); });
      }
    };
    h->deliver = [weak](watch_pending w, std::error_code ec, watch_event ev) {
      if (auto self = weak.lock()) std::move(w).post_complete(self->strand_, ec, std::move(ev));
    };
    const log_callback_fn log_fn =
        log_slot_ >= 0 ? log_trampolines[static_cast<std::size_t>(log_slot_)] : nullptr;
    // The generation is published before the C client starts: its first CONNECTED event may
    // reach the strand before zookeeper_init2 returns, and must not be taken for an old
    // handle's. (on_zk_state then waits on mu_ until handle_ is set.)
    const auto previous = generation_.exchange(gen);
    h->zh = zookeeper_init2(opts_.connect_string.c_str(), &global_watcher,
                            static_cast<int>(opts_.session_timeout.count()), nullptr, h.get(), 0, log_fn);
    if (h->zh == nullptr) {
      const int err = errno != 0 ? errno : EINVAL;
      generation_.store(previous);
      return {err, std::generic_category()};
    }
    handle_ = std::move(h);
    handle_->auth_ready = auths_.empty();
    ensure_auth_locked();
    return {};
  }

  void on_zk_state(std::uint64_t gen, int zstate) {
    if (gen != generation_.load() || state_.load() == session_state::closed) return;  // an old handle
    const auto cur = state_.load();
    if (zstate == ZOO_CONNECTED_STATE) {
      if (is_connected(cur)) return;
      lost_timer_.cancel();
      {
        std::lock_guard lock(mu_);
        if (handle_ != nullptr) {
          negotiated_ms_.store(zoo_recv_timeout(handle_->zh));
          if (const clientid_t* id = zoo_client_id(handle_->zh)) {
            session_id_.store(id->client_id);
            password_.assign(id->passwd, sizeof(id->passwd));
          }
        }
      }
      transition(cur == session_state::suspended ? session_state::reconnected : session_state::connected, {});
      complete_waiters({});
    } else if (zstate == ZOO_CONNECTING_STATE || zstate == ZOO_ASSOCIATING_STATE) {
      if (!is_connected(cur)) return;
      transition(session_state::suspended, {});
      // Presumed lost once no server has been heard for the negotiated timeout (Curator's
      // rule): the C client noticed the silence already, so this errs on the late side.
      lost_timer_.expires_after(negotiated_timeout());
      lost_timer_.async_wait([weak = weak_from_this(), gen](std::error_code ec) {
        auto self = weak.lock();
        if (ec || !self) return;
        if (self->generation_.load() == gen && self->state_.load() == session_state::suspended) {
          self->lose(gen, make_error_code(errc::session_lost));
        }
      });
    } else if (zstate == ZOO_EXPIRED_SESSION_STATE) {
      if (cur != session_state::lost) lose(gen, make_error_code(errc::session_expired));
    } else if (zstate == ZOO_AUTH_FAILED_STATE) {
      if (cur != session_state::lost) lose(gen, make_error_code(errc::auth_failed));
    }
  }

  /// The session of generation `gen` is gone (expired, presumed lost or auth failed): report
  /// it, end its watches, abandon its handle and, unless configured otherwise, open a new one.
  void lose(std::uint64_t gen, std::error_code reason) {
    lost_timer_.cancel();
    transition(session_state::lost, reason);
    std::unique_ptr<handle_ctx> old;
    {
      std::lock_guard lock(mu_);
      if (handle_ == nullptr || handle_->generation != gen) return;
      end_watches(*handle_, reason);
      // The generation is over: its handle is abandoned (a presumed-lost session must not
      // come back to life if its server reappears), and a new one opened unless told not to.
      old = std::move(handle_);
      if (reason != errc::auth_failed && opts_.reopen_on_expiry) {
        if (auto ec = open_handle_locked()) schedule_reopen();
      } else {
        final_loss_ = reason;  // strand only; no new session will come
      }
    }
    // Without a new session nothing will ever connect: waiters learn why now.
    if (final_loss_) complete_waiters(final_loss_);
    reap(std::move(old), {});
  }

  void schedule_reopen() {
    reopen_timer_.expires_after(std::chrono::seconds(1));
    reopen_timer_.async_wait([weak = weak_from_this()](std::error_code ec) {
      auto self = weak.lock();
      if (ec || !self) return;
      std::lock_guard lock(self->mu_);
      if (self->closing_ || self->handle_ != nullptr) return;
      if (self->open_handle_locked()) self->schedule_reopen();
    });
  }

  void transition(session_state s, std::error_code reason) {
    state_.store(s);
    const session_event ev{s, generation_.load(), reason};
    std::vector<std::shared_ptr<listener_entry>> copy;
    {
      std::lock_guard lock(listeners_mu_);
      copy = listeners_;
    }
    for (auto& l : copy) {
      if (l->active.load() && l->fn) l->fn(ev);
    }
  }

  /// Completes every async_wait_connected waiter with `ec`. Strand only.
  void complete_waiters(std::error_code ec) {
    auto waiters = std::move(waiters_);
    waiters_.clear();
    for (auto& [id, w] : waiters) std::move(w).dispatch_complete(ec);
  }

  /// Ends every watch still registered on `h` with `ec` (its session is over or closed).
  void end_watches(handle_ctx& h, std::error_code ec) {
    for (auto& w : h.take_all_watches()) std::move(w).post_complete(strand_, ec, watch_event{});
  }

  void cancel_waiter(std::uint64_t id) {
    for (auto it = waiters_.begin(); it != waiters_.end(); ++it) {
      if (it->first == id) {
        auto h = std::move(it->second);
        waiters_.erase(it);
        std::move(h).dispatch_complete(zkr::operation_aborted());
        return;
      }
    }
  }

  void close_on_strand(pending<void(std::error_code)> h) {
    std::unique_ptr<handle_ctx> old;
    {
      std::lock_guard lock(mu_);
      if (closing_) {
        if (h) std::move(h).post_complete(strand_, std::error_code{});  // closing twice is harmless
        return;
      }
      closing_ = true;
      user_closed_.store(true);
      old = std::move(handle_);
    }
    lost_timer_.cancel();
    reopen_timer_.cancel();
    transition(session_state::closed, {});
    complete_waiters(make_error_code(errc::closing));
    if (old) {
      old->abort_ops(zkr::operation_aborted());
      end_watches(*old, make_error_code(errc::closing));
    }
    reap(std::move(old), std::move(h));
  }

  /// Closes a handle on a thread of its own (zookeeper_close may block), then frees it and
  /// completes `h` (if any) on the strand. Pending requests of that handle complete first.
  void reap(std::unique_ptr<handle_ctx> h, pending<void(std::error_code)> done) {
    std::lock_guard lock(reapers_mu_);
    // Join reapers that have finished, so a session that expires often keeps no threads.
    std::erase_if(reapers_, [](reaper& r) {
      if (!r.finished->load()) return false;
      r.thread.join();
      return true;
    });
    auto finished = std::make_shared<std::atomic<bool>>(false);
    reapers_.push_back({std::thread([self = shared_from_this(), h = std::move(h), done = std::move(done),
                                     finished]() mutable {
                          if (h && h->zh) zookeeper_close(h->zh);
                          if (h) {
                            h->delete_ops(self->user_closed_.load() ? zkr::operation_aborted()
                                                                    : make_error_code(errc::connection_loss));
                          }
                          h.reset();
                          // Let go of the session before telling anyone the close is done: once
                          // told, the owner may destroy the executor, and our timers must die
                          // before it does. The pending `done` keeps the executor alive till then.
                          const auto strand = self->strand_;
                          self.reset();
                          if (done) std::move(done).post_complete(strand, std::error_code{});
                          finished->store(true);
                        }),
                        finished});
  }

  executor_type strand_;
  options opts_;
  std::string chroot_;  // from the connect string; the server sees chroot_ + path
  prng rng_;
  int log_slot_ = -1;

  // Guarded by mu_: the current handle and what every handle needs.
  mutable std::mutex mu_;
  std::unique_ptr<handle_ctx> handle_;
  std::string password_;  // of the current generation's ZooKeeper session
  bool closing_ = false;
  std::vector<std::pair<std::string, std::string>> auths_;

  // Readable from any thread; written on the strand (generation_ also under mu_).
  std::atomic<session_state> state_{session_state::connecting};
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<std::int64_t> session_id_{0};
  std::atomic<std::int64_t> negotiated_ms_{0};
  std::atomic<bool> user_closed_{false};

  // Strand only.
  timer_type lost_timer_;
  timer_type reopen_timer_;
  std::uint64_t next_waiter_id_ = 1;
  std::list<std::pair<std::uint64_t, pending<void(std::error_code)>>> waiters_;
  std::error_code final_loss_;  // strand only: why the session is lost for good (no reopen)

  std::mutex listeners_mu_;
  std::vector<std::shared_ptr<listener_entry>> listeners_;

  struct reaper {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> finished;
  };
  std::mutex reapers_mu_;
  std::vector<reaper> reapers_;
};

}  // namespace zkr::zookeeper::detail
