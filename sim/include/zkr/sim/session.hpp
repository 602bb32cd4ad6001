// zkr/sim/session.hpp: the simulator backend. `zkr::sim::session` is a ZooKeeper client
// session against a `zkr::sim::cluster`, in virtual time; it satisfies `zkr::backend`
// (zkr/backend.hpp) with the same contract as the real backend (docs/backend.md), so any
// recipe runs on it unchanged.
//
// It models the ZooKeeper client's side: one connection at a time to a server from the
// connect string (host order shuffled from the seed); a handshake (new session, or the old
// one with its password and last seen zxid); pings when idle for a third of the negotiated
// timeout; a read timeout of two thirds of it, after which the connection is dropped and the
// next host tried; requests made while disconnected wait for the next connection, and fail
// with connection_loss when an attempt fails; in-flight requests complete with connection_loss
// when the connection drops (their outcome is unknown); watches re-registered after a
// reconnect (SetWatches with the last zxid seen), so a change missed meanwhile fires at once;
// credentials re-sent on every connection. Session states as the real backend: suspended at
// a disconnect, reconnected on the same session, lost when the server says expired or when no
// server was heard for the negotiated timeout (presumed, counted from the last packet heard;
// the session is abandoned for good), then a new generation unless `reopen_on_expiry` is off.
//
// Threads: none of its own. Everything runs inside the cluster's run calls, as events of the
// session's process (process()), which a fault can pause. Call it from the cluster's thread.
//
// Lifetime: the cluster must outlive the session. Destroying an open session closes it.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_signal.hpp>

#include <zkr/backend.hpp>
#include <zkr/connect_string.hpp>
#include <zkr/detail/pending.hpp>
#include <zkr/error.hpp>
#include <zkr/path.hpp>
#include <zkr/request_size.hpp>
#include <zkr/sim/cluster.hpp>
#include <zkr/sim/scheduler.hpp>

namespace zkr::sim {

/// Options of a simulated session; the same knobs as zkr::zookeeper::options where they
/// exist there. Only `connect_string` is required.
struct session_options {
  /// "s0:2181,s1:2181[/chroot]" (cluster::connect_string). Hosts must name servers of the
  /// cluster; otherwise the constructor throws.
  std::string connect_string{};
  /// Requested session timeout; the servers clamp it to [2, 20] x tickTime.
  std::chrono::milliseconds session_timeout{15000};
  /// After expiry (or presumed loss), open a new session automatically.
  bool reopen_on_expiry = true;
  /// Client-side size check (0 disables it: the server then drops the connection).
  std::size_t max_request_bytes = default_max_request_bytes;
  /// Seed of the session's prng (host order, recipe randomness). Empty: drawn from
  /// the cluster's prng, so the cluster's seed decides it.
  std::optional<std::uint64_t> seed{};
  /// Name in the trace; empty: "c<process id>".
  std::string name{};
};

namespace detail {

using zkr::detail::pending;
using watch_pending = pending<void(std::error_code, watch_event)>;

/// A request waiting for its reply: turns the reply into the handler's arguments.
struct reply_sink {
  virtual ~reply_sink() = default;
  /// Completes with the reply (`ec` overrides: connection_loss, operation_aborted ...).
  virtual void complete(const executor& ex, reply* r, std::error_code ec) = 0;
};

template <class Sig, class Convert>
struct sink_impl;

template <class... R, class Convert>
struct sink_impl<void(std::error_code, R...), Convert> final : reply_sink {
  sink_impl(pending<void(std::error_code, R...)> h, Convert c) : handler(std::move(h)), convert(std::move(c)) {}
  void complete(const executor& ex, reply* r, std::error_code ec) override {
    if (r != nullptr && !ec) {
      std::apply([&](auto&&... a) { std::move(handler).post_complete(ex, r->ec, std::move(a)...); }, convert(*r));
    } else {
      std::move(handler).post_complete(ex, ec, R{}...);
    }
  }
  pending<void(std::error_code, R...)> handler;
  Convert convert;
};

enum class watch_kind : std::uint8_t { none, data, exist, child };

class session_impl final : public client_port, public std::enable_shared_from_this<session_impl> {
 public:
  session_impl(cluster& c, session_options o) : cluster_(c), opts_(std::move(o)), rng_(0) {}

  /// Validates the options, registers with the cluster and starts connecting.
  void start() {
    connect_string parsed;
    if (auto ec = parse_connect_string(opts_.connect_string, parsed)) {
      throw std::system_error(ec, "zkr::sim::session: bad connect string '" + opts_.connect_string + "'");
    }
    for (const auto& hp : parsed.hosts) {
      const auto idx = cluster_.server_index(hp.host);
      if (!idx) {
        throw std::system_error(make_error_code(errc::invalid_argument),
                                "zkr::sim::session: no server '" + hp.host + "' in the cluster");
      }
      hosts_.push_back(*idx);
    }
    if (opts_.session_timeout <= std::chrono::milliseconds::zero() ||
        opts_.session_timeout > std::chrono::hours(24)) {
      throw std::system_error(make_error_code(errc::invalid_argument),
                              "zkr::sim::session: session_timeout must be in (0, 24h]");
    }
    chroot_ = parsed.chroot;
    rng_ = prng(opts_.seed ? *opts_.seed : cluster_.random().next_u64());
    // The C client shuffles its host list; the seed decides the order.
    for (std::size_t i = hosts_.size(); i > 1; --i) std::swap(hosts_[i - 1], hosts_[rng_.uniform(i)]);
    process_ = cluster_.add_client(weak_from_this(), opts_.name);
    ex_.emplace(cluster_.get_scheduler().get_executor(process_));
    conn_timer_.emplace(*ex_);
    hb_timer_.emplace(*ex_);
    lost_timer_.emplace(*ex_);
    generation_ = 1;
    post([self = shared_from_this()] { self->try_connect(); });
  }

  ~session_impl() override { cluster_.remove_client(process_); }

  const executor& get_executor() const noexcept { return *ex_; }
  prng& random() noexcept { return rng_; }
  session_state state() const noexcept { return state_; }
  std::uint64_t generation() const noexcept { return generation_; }
  std::int64_t session_id() const noexcept { return session_id_; }
  std::string password() const { return password_; }
  std::chrono::milliseconds negotiated_timeout() const noexcept { return std::chrono::milliseconds(negotiated_ms_); }
  process_id process() const noexcept { return process_; }
  const session_options& opts() const noexcept { return opts_; }
  cluster& get_cluster() const noexcept { return cluster_; }

  // ---- state channel ----------------------------------------------------------------------

  std::function<void()> add_listener(state_listener fn) {
    const std::uint64_t id = next_listener_++;
    listeners_.emplace(id, std::move(fn));
    return [weak = weak_from_this(), id] {
      if (auto self = weak.lock()) self->listeners_.erase(id);
    };
  }

  void wait_connected(pending<void(std::error_code)> h, boost::asio::cancellation_slot slot) {
    if (is_connected(state_)) return std::move(h).post_complete(*ex_, std::error_code{});
    if (state_ == session_state::closed) return std::move(h).post_complete(*ex_, make_error_code(errc::closing));
    if (final_loss_) return std::move(h).post_complete(*ex_, final_loss_);
    const auto id = next_waiter_++;
    waiters_.emplace(id, std::move(h));
    if (slot.is_connected()) {
      // Honoured: every cancellation type; waiting has no side effect to undo.
      slot.assign([weak = weak_from_this(), id](boost::asio::cancellation_type) {
        if (auto self = weak.lock()) {
          auto it = self->waiters_.find(id);
          if (it == self->waiters_.end()) return;
          auto h2 = std::move(it->second);
          self->waiters_.erase(it);
          std::move(h2).post_complete(*self->ex_, zkr::operation_aborted());
        }
      });
    }
  }

  // ---- operations ---------------------------------------------------------------------------

  template <class... R>
  using handler_t = pending<void(std::error_code, R...)>;

  void create(std::string path, std::string data, create_options o, handler_t<std::string, zkr::stat> h) {
    if (auto ec = validate_path(path, is_sequential(o.mode))) return fail(std::move(h), ec);
    if (!chroot_.empty() && path == "/") return fail(std::move(h), make_error_code(errc::invalid_path));
    if (is_ttl(o.mode) != (o.ttl > std::chrono::milliseconds::zero()) || o.ttl.count() < 0) {
      return fail(std::move(h), make_error_code(errc::invalid_argument));
    }
    request r;
    r.type = req_type::create;
    r.path = apply_chroot(chroot_, path);
    r.data = std::move(data);
    if (auto ec = check_request_size(create_request_size(r.path, r.data, o), opts_.max_request_bytes)) {
      return fail(std::move(h), ec);
    }
    auto x = std::make_shared<request_extra>();
    x->create = std::move(o);
    r.extra = std::move(x);
    submit(std::move(r), std::move(h), watch_pending{}, watch_kind::none, [this](reply& rep) {
      return std::make_tuple(strip(rep.path), rep.stat);
    });
  }

  void remove(std::string path, std::int32_t version, handler_t<> h) {
    if (auto ec = validate_path(path)) return fail(std::move(h), ec);
    request r;
    r.type = req_type::remove;
    r.path = apply_chroot(chroot_, path);
    r.version = version;
    submit(std::move(r), std::move(h), watch_pending{}, watch_kind::none, [](reply&) { return std::tuple<>(); });
  }

  void exists(std::string path, watch_handler w, handler_t<zkr::stat> h) {
    read(req_type::exists, std::move(path), std::move(w), watch_kind::exist, std::move(h),
         [](reply& rep) { return std::make_tuple(rep.stat); });
  }
  void get(std::string path, watch_handler w, handler_t<std::string, zkr::stat> h) {
    read(req_type::get, std::move(path), std::move(w), watch_kind::data, std::move(h),
         [](reply& rep) { return std::make_tuple(std::move(rep.data), rep.stat); });
  }
  void get_children(std::string path, watch_handler w, handler_t<std::vector<std::string>, zkr::stat> h) {
    read(req_type::get_children, std::move(path), std::move(w), watch_kind::child, std::move(h),
         [](reply& rep) { return std::make_tuple(std::move(rep.children), rep.stat); });
  }

  void set(std::string path, std::string data, std::int32_t version, handler_t<zkr::stat> h) {
    if (auto ec = validate_path(path)) return fail(std::move(h), ec);
    request r;
    r.type = req_type::set;
    r.path = apply_chroot(chroot_, path);
    r.data = std::move(data);
    r.version = version;
    if (auto ec = check_request_size(set_request_size(r.path, r.data), opts_.max_request_bytes)) {
      return fail(std::move(h), ec);
    }
    submit(std::move(r), std::move(h), watch_pending{}, watch_kind::none,
           [](reply& rep) { return std::make_tuple(rep.stat); });
  }

  void get_acl(std::string path, handler_t<acl_list, zkr::stat> h) {
    if (auto ec = validate_path(path)) return fail(std::move(h), ec);
    request r;
    r.type = req_type::get_acl;
    r.path = apply_chroot(chroot_, path);
    submit(std::move(r), std::move(h), watch_pending{}, watch_kind::none,
           [](reply& rep) { return std::make_tuple(std::move(rep.acls), rep.stat); });
  }

  void set_acl(std::string path, acl_list acls, std::int32_t version, handler_t<> h) {
    if (auto ec = validate_path(path)) return fail(std::move(h), ec);
    request r;
    r.type = req_type::set_acl;
    r.path = apply_chroot(chroot_, path);
    r.version = version;
    if (auto ec = check_request_size(set_acl_request_size(r.path, acls), opts_.max_request_bytes)) {
      return fail(std::move(h), ec);
    }
    auto x = std::make_shared<request_extra>();
    x->acls = std::move(acls);
    r.extra = std::move(x);
    submit(std::move(r), std::move(h), watch_pending{}, watch_kind::none, [](reply&) { return std::tuple<>(); });
  }

  void multi(std::vector<zkr::op> ops, handler_t<std::vector<op_result>> h) {
    for (auto& o : ops) {
      const bool seq = o.type == zkr::op::kind::create && is_sequential(o.create.mode);
      if (auto ec = validate_path(o.path, seq)) return fail(std::move(h), ec);
      if (o.type == zkr::op::kind::create && is_ttl(o.create.mode)) {
        // The same contract as the real backend, whose C client has no TTL create in a multi.
        return fail(std::move(h), make_error_code(errc::unimplemented));
      }
      o.path = apply_chroot(chroot_, o.path);
    }
    if (auto ec = check_request_size(multi_request_size(ops), opts_.max_request_bytes)) return fail(std::move(h), ec);
    if (ops.empty()) return fail(std::move(h), std::error_code{});
    request r;
    r.type = req_type::multi;
    auto x = std::make_shared<request_extra>();
    x->ops = std::move(ops);
    r.extra = std::move(x);
    submit(std::move(r), std::move(h), watch_pending{}, watch_kind::none, [this](reply& rep) {
      for (auto& res : rep.results) {
        if (!res.path.empty()) {
          res.path = strip(res.path);
          // The real backend's C client returns no stat for a create in a multi: neither do
          // we, so a recipe cannot come to rely on one here (docs/backend.md, Multi).
          res.stat = zkr::stat{};
        }
      }
      return std::make_tuple(std::move(rep.results));
    });
  }

  void sync(std::string path, handler_t<> h) {
    if (auto ec = validate_path(path)) return fail(std::move(h), ec);
    request r;
    r.type = req_type::sync;
    r.path = apply_chroot(chroot_, path);
    submit(std::move(r), std::move(h), watch_pending{}, watch_kind::none, [](reply&) { return std::tuple<>(); });
  }

  /// Records the credential for every later connection and generation and sends it now if
  /// connected; the caller sees success either way for digest (it cannot fail).
  void add_auth(std::string scheme, std::string credential, handler_t<> h) {
    if (state_ == session_state::closed) return fail(std::move(h), make_error_code(errc::closing));
    auths_.emplace_back(scheme, credential);
    if (!ready_) return fail(std::move(h), std::error_code{});  // sent at the next handshake
    request r;
    r.type = req_type::add_auth;
    auto x = std::make_shared<request_extra>();
    x->scheme = std::move(scheme);
    r.extra = std::move(x);
    r.data = std::move(credential);
    submit(std::move(r), std::move(h), watch_pending{}, watch_kind::none, [](reply&) { return std::tuple<>(); });
  }

  void close(pending<void(std::error_code)> h) {
    if (state_ == session_state::closed) {
      if (h) std::move(h).post_complete(*ex_, std::error_code{});  // closing twice is harmless
      return;
    }
    transition(session_state::closed, {});
    complete_waiters(make_error_code(errc::closing));
    lost_timer_->cancel();
    fail_all(zkr::operation_aborted(), zkr::operation_aborted());
    end_watches(make_error_code(errc::closing));
    if (ready_) {
      // closeSession: the server deletes our ephemeral nodes; done when it answers or the
      // connection ends (then the server expires the session later).
      request r;
      r.type = req_type::close;
      r.xid = next_xid_++;
      close_handler_.emplace(std::move(h));
      close_xid_ = r.xid;
      cluster_.send(conn_, std::move(r));
      last_sent_ = now();
      arm_heartbeat();
      return;
    }
    drop_connection();
    if (h) std::move(h).post_complete(*ex_, std::error_code{});
  }

  // ---- client_port: messages from the cluster ------------------------------------------------

  void on_connect_reply(std::uint64_t conn, connect_reply r) override {
    if (conn != conn_ || ready_ || state_ == session_state::closed) return;
    conn_timer_->cancel();
    last_heard_ = now();
    if (r.session_id == 0) {
      // The server says our session expired.
      drop_connection();
      return lose(make_error_code(errc::session_expired));
    }
    const bool same = session_id_ == r.session_id;
    session_id_ = r.session_id;
    password_ = r.password;
    negotiated_ms_ = r.timeout_ms;
    ready_ = true;
    lost_timer_->cancel();
    // As the C client: credentials, then the watches to re-register, then queued requests.
    for (const auto& [scheme, cred] : auths_) {
      request a;
      a.type = req_type::add_auth;
      a.xid = auth_xid;
      auto x = std::make_shared<request_extra>();
      x->scheme = scheme;
      a.extra = std::move(x);
      a.data = cred;
      send_raw(std::move(a));
    }
    if (same && (!data_w_.empty() || !exist_w_.empty() || !child_w_.empty())) {
      request sw;
      sw.type = req_type::set_watches;
      sw.xid = set_watches_xid;
      auto x = std::make_shared<request_extra>();
      x->relative_zxid = last_zxid_;
      for (const auto& [p, v] : data_w_) x->data_watches.push_back(p);
      for (const auto& [p, v] : exist_w_) x->exist_watches.push_back(p);
      for (const auto& [p, v] : child_w_) x->child_watches.push_back(p);
      sw.extra = std::move(x);
      send_raw(std::move(sw));
    }
    auto queued = std::move(queued_);
    queued_.clear();
    for (auto& q : queued) send_outstanding(std::move(q));
    arm_heartbeat();
    const session_state next = same && generation_seen_connected_ == generation_ ? session_state::reconnected
                                                                                : session_state::connected;
    generation_seen_connected_ = generation_;
    transition(next, {});
    complete_waiters({});
  }

  void on_reply(std::uint64_t conn, reply r) override {
    if (conn != conn_) return;
    last_heard_ = now();
    if (r.zxid > last_zxid_) last_zxid_ = r.zxid;
    if (r.xid == ping_xid || r.xid == auth_xid || r.xid == set_watches_xid) {
      if (r.xid == auth_xid && r.ec == errc::auth_failed) {
        drop_connection();
        lose(make_error_code(errc::auth_failed));
      }
      return;
    }
    if (r.xid == close_xid_ && close_handler_) {
      finish_close();
      return;
    }
    if (outstanding_.empty()) return;
    outstanding o = std::move(outstanding_.front());
    outstanding_.pop_front();
    sim_check(o.xid == r.xid, "sim session: replies out of order");
    // The watch is set if the read succeeded (exists: also on no_node).
    if (o.wkind != watch_kind::none && o.watch &&
        (!r.ec || (o.wkind == watch_kind::exist && r.ec == errc::no_node))) {
      table(o.wkind)[o.server_path].push_back(std::move(o.watch));
    }
    o.sink->complete(*ex_, &r, {});
  }

  void on_watch(std::uint64_t conn, watch_event ev) override {
    if (conn != conn_) return;
    last_heard_ = now();
    // The C client's dispatch: created / data_changed -> exists and get watchers; deleted ->
    // all three kinds; children_changed -> children watchers. Each fires once.
    std::vector<watch_pending> fire;
    const auto take = [&](std::map<std::string, std::vector<watch_pending>>& t) {
      auto it = t.find(ev.path);
      if (it == t.end()) return;
      for (auto& w : it->second) fire.push_back(std::move(w));
      t.erase(it);
    };
    switch (ev.type) {
      case event_type::created:
      case event_type::data_changed:
        take(data_w_);
        take(exist_w_);
        break;
      case event_type::deleted:
        take(data_w_);
        take(exist_w_);
        take(child_w_);
        break;
      case event_type::children_changed: take(child_w_); break;
    }
    const watch_event user{ev.type, strip(ev.path)};
    for (auto& w : fire) std::move(w).post_complete(*ex_, std::error_code{}, user);
  }

  void on_closed(std::uint64_t conn) override {
    if (conn != conn_) return;
    connection_failed();
  }

 private:
  static constexpr std::int32_t ping_xid = -2;
  static constexpr std::int32_t auth_xid = -4;
  static constexpr std::int32_t set_watches_xid = -8;

  struct outstanding {
    outstanding(request r, std::unique_ptr<reply_sink> s, watch_kind k, watch_pending w)
        : req(std::move(r)), sink(std::move(s)), wkind(k), server_path(req.path), watch(std::move(w)) {}
    outstanding(outstanding&&) = default;
    std::int32_t xid = 0;
    request req;
    std::unique_ptr<reply_sink> sink;
    watch_kind wkind = watch_kind::none;
    std::string server_path;
    watch_pending watch;
  };

  static void sim_check(bool ok, const char* what) { zkr::sim::detail::sim_check(ok, what); }

  clock_time now() const { return cluster_.now(); }

  template <class F>
  void post(F&& f) {
    cluster_.get_scheduler().post_at(process_, now(), std::forward<F>(f));
  }

  std::string strip(const std::string& p) const {
    if (chroot_.empty()) return p;
    if (p == chroot_) return "/";
    if (p.size() > chroot_.size() && p.compare(0, chroot_.size(), chroot_) == 0) return p.substr(chroot_.size());
    return p;
  }

  std::map<std::string, std::vector<watch_pending>>& table(watch_kind k) {
    switch (k) {
      case watch_kind::data: return data_w_;
      case watch_kind::exist: return exist_w_;
      case watch_kind::child: return child_w_;
      case watch_kind::none: break;
    }
    zkr::sim::detail::sim_fail("watch table of watch_kind::none");
  }

  template <class... R>
  void fail(handler_t<R...> h, std::error_code ec) {
    std::move(h).post_complete(*ex_, ec, R{}...);
  }

  template <class... R, class Convert>
  void read(req_type t, std::string path, watch_handler w, watch_kind k, handler_t<R...> h, Convert conv) {
    if (auto ec = validate_path(path)) return fail(std::move(h), ec);
    request r;
    r.type = t;
    r.path = apply_chroot(chroot_, path);
    r.watch = static_cast<bool>(w);
    submit(std::move(r), std::move(h), w ? watch_pending(std::move(w), *ex_) : watch_pending{}, w ? k : watch_kind::none,
           std::move(conv));
  }

  template <class... R, class Convert>
  void submit(request r, handler_t<R...> h, watch_pending w, watch_kind k, Convert conv) {
    if (state_ == session_state::closed) return fail(std::move(h), make_error_code(errc::closing));
    if (state_ == session_state::lost && !opts_.reopen_on_expiry) {
      return fail(std::move(h), make_error_code(errc::session_expired));
    }
    outstanding o(std::move(r),
                  std::make_unique<sink_impl<void(std::error_code, R...), Convert>>(std::move(h), std::move(conv)), k,
                  std::move(w));
    if (ready_) {
      send_outstanding(std::move(o));
    } else {
      queued_.push_back(std::move(o));
    }
  }

  void send_outstanding(outstanding o) {
    o.xid = next_xid_++;
    o.req.xid = o.xid;
    cluster_.send(conn_, o.req);
    last_sent_ = now();
    outstanding_.push_back(std::move(o));
  }
  void send_raw(request r) {
    cluster_.send(conn_, std::move(r));
    last_sent_ = now();
  }

  // ---- connecting ----------------------------------------------------------------------------

  void try_connect() {
    if (state_ == session_state::closed || conn_ != 0) return;
    if (state_ == session_state::lost && !opts_.reopen_on_expiry) return;
    const std::size_t server = hosts_[next_host_ % hosts_.size()];
    ++next_host_;
    connect_request creq;
    creq.session_id = session_id_;
    creq.password = password_;
    creq.timeout_ms = static_cast<std::int32_t>(opts_.session_timeout.count());
    creq.last_zxid = last_zxid_;
    conn_ = cluster_.connect(process_, server, std::move(creq));
    ready_ = false;
    last_sent_ = last_heard_ = now();
    // Java's connect timeout: the session timeout over the number of hosts.
    conn_timer_->expires_after(opts_.session_timeout / static_cast<int>(hosts_.size()));
    conn_timer_->async_wait([weak = weak_from_this(), conn = conn_](std::error_code ec) {
      auto self = weak.lock();
      if (ec || !self || self->conn_ != conn || self->ready_) return;
      self->connection_failed();
    });
  }

  /// The connection (or the attempt) is over: in-flight requests complete with
  /// connection_loss, requests waiting for a connection too (as the C client's do), the
  /// session is suspended if it was connected, and the next host is tried.
  void connection_failed() {
    const bool was_ready = ready_;
    const clock_time last_heard = last_heard_;
    drop_connection();
    fail_all(make_error_code(errc::connection_loss), make_error_code(errc::connection_loss));
    if (close_handler_) finish_close();
    if (state_ == session_state::closed) return;
    if (was_ready && is_connected(state_)) {
      transition(session_state::suspended, {});
      // Presumed lost once no server has been heard for the negotiated timeout: by then the
      // leader may have expired the session (it expires a session a timeout after its last
      // packet), so a holder's belief must end. Counted from the last packet heard, not from
      // the disconnect: the read timeout already used two thirds of it. (The real backend
      // cannot see when the C client last heard its server and counts from the disconnect,
      // late by up to that much; docs/backend.md.)
      lost_timer_->expires_at(last_heard + std::chrono::duration_cast<clock_duration>(negotiated_timeout()));
      lost_timer_->async_wait([weak = weak_from_this(), gen = generation_](std::error_code ec) {
        auto self = weak.lock();
        if (ec || !self) return;
        if (self->generation_ == gen && self->state_ == session_state::suspended) {
          self->drop_connection();
          self->lose(make_error_code(errc::session_lost));
        }
      });
    }
    schedule_retry();
  }

  void schedule_retry() {
    // As the C client (zookeeper_interest): the next host at once; after trying every host,
    // wait a sixtieth of the session timeout so as not to spin.
    const bool round_done = next_host_ % hosts_.size() == 0;
    const auto timeout = negotiated_ms_ > 0 ? std::chrono::milliseconds(negotiated_ms_) : opts_.session_timeout;
    const auto delay = round_done ? std::chrono::duration_cast<clock_duration>(timeout) / 60 : clock_duration::zero();
    conn_timer_->expires_after(delay);
    conn_timer_->async_wait([weak = weak_from_this()](std::error_code ec) {
      auto self = weak.lock();
      if (ec || !self) return;
      self->try_connect();
    });
  }

  /// The closeSession was answered, or its connection ended: drop the connection and
  /// complete the caller's close (if it gave a handler).
  void finish_close() {
    auto h = std::move(*close_handler_);
    close_handler_.reset();
    drop_connection();
    if (h) std::move(h).post_complete(*ex_, std::error_code{});
  }

  void drop_connection() {
    if (conn_ == 0) return;
    cluster_.disconnect(conn_);
    conn_ = 0;
    ready_ = false;
    hb_timer_->cancel();
    conn_timer_->cancel();
  }

  /// The session of this generation is over: report it, end its watches and waiting
  /// requests, and open a new session unless told not to.
  void lose(std::error_code reason) {
    lost_timer_->cancel();
    fail_all(make_error_code(errc::connection_loss), make_error_code(errc::session_expired));
    end_watches(reason);
    transition(session_state::lost, reason);
    session_id_ = 0;
    password_.clear();
    last_zxid_ = 0;
    if (state_ == session_state::closed) return;
    if (reason == errc::auth_failed || !opts_.reopen_on_expiry) {
      // No new session will come: waiters for `connected` learn why now.
      final_loss_ = reason;
      complete_waiters(reason);
      return;
    }
    ++generation_;
    schedule_retry();
  }

  void fail_all(std::error_code sent_ec, std::error_code queued_ec) {
    auto sent = std::move(outstanding_);
    outstanding_.clear();
    auto queued = std::move(queued_);
    queued_.clear();
    for (auto& o : sent) o.sink->complete(*ex_, nullptr, sent_ec);
    for (auto& o : queued) o.sink->complete(*ex_, nullptr, queued_ec);
  }

  void end_watches(std::error_code ec) {
    for (auto* t : {&data_w_, &exist_w_, &child_w_}) {
      auto copy = std::move(*t);
      t->clear();
      for (auto& [p, v] : copy) {
        for (auto& w : v) std::move(w).post_complete(*ex_, ec, watch_event{});
      }
    }
  }

  /// Pings when idle for a third of the timeout; drops the connection when nothing was
  /// heard for two thirds of it (the client's read timeout).
  void arm_heartbeat() {
    if (!ready_) return;
    const auto neg = std::chrono::duration_cast<clock_duration>(negotiated_timeout());
    const clock_time ping_at = last_sent_ + neg / 3;
    const clock_time dead_at = last_heard_ + neg * 2 / 3;
    hb_timer_->expires_at(std::min(ping_at, dead_at));
    hb_timer_->async_wait([weak = weak_from_this(), conn = conn_](std::error_code ec) {
      auto self = weak.lock();
      if (ec || !self || self->conn_ != conn || !self->ready_) return;
      self->heartbeat();
    });
  }
  void heartbeat() {
    const auto neg = std::chrono::duration_cast<clock_duration>(negotiated_timeout());
    if (now() >= last_heard_ + neg * 2 / 3) {
      cluster_.trace_client(process_, trace_kind::note, [&](trace::fields& f) { f.add("read_timeout", true); });
      return connection_failed();
    }
    if (now() >= last_sent_ + neg / 3) {
      request p;
      p.type = req_type::ping;
      p.xid = ping_xid;
      send_raw(std::move(p));
    }
    arm_heartbeat();
  }

  void transition(session_state s, std::error_code reason) {
    state_ = s;
    cluster_.trace_client(process_, trace_kind::session, [&](trace::fields& f) {
      f.add("state", to_string(s));
      f.add("generation", generation_);
      f.add("session", cluster::hex(session_id_));
      if (reason) f.add("reason", reason.message());
    });
    const session_event ev{s, generation_, reason};
    // A copy: a listener may unsubscribe (itself or another) while we notify.
    std::vector<std::uint64_t> ids;
    for (const auto& [id, fn] : listeners_) ids.push_back(id);
    for (const auto id : ids) {
      auto it = listeners_.find(id);
      if (it == listeners_.end()) continue;
      auto fn = it->second;
      if (fn) fn(ev);
    }
  }

  void complete_waiters(std::error_code ec) {
    auto w = std::move(waiters_);
    waiters_.clear();
    for (auto& [id, h] : w) std::move(h).post_complete(*ex_, ec);
  }

  cluster& cluster_;
  session_options opts_;
  prng rng_;
  std::string chroot_;
  std::vector<std::size_t> hosts_;
  std::size_t next_host_ = 0;
  process_id process_ = 0;
  std::optional<executor> ex_;
  std::optional<timer> conn_timer_, hb_timer_, lost_timer_;

  session_state state_ = session_state::connecting;
  std::uint64_t generation_ = 0;
  std::uint64_t generation_seen_connected_ = 0;
  std::int64_t session_id_ = 0;
  std::string password_;
  std::int32_t negotiated_ms_ = 0;
  std::int64_t last_zxid_ = 0;

  std::uint64_t conn_ = 0;  // the current connection (or attempt), 0 if none
  bool ready_ = false;      // handshake done on conn_
  clock_time last_sent_{}, last_heard_{};
  std::int32_t next_xid_ = 1;
  std::deque<outstanding> outstanding_;  // sent, in xid order
  std::vector<outstanding> queued_;      // waiting for a connection
  std::map<std::string, std::vector<watch_pending>> data_w_, exist_w_, child_w_;
  std::vector<std::pair<std::string, std::string>> auths_;
  std::optional<pending<void(std::error_code)>> close_handler_;
  std::int32_t close_xid_ = 0;

  std::map<std::uint64_t, state_listener> listeners_;
  std::uint64_t next_listener_ = 1;
  std::map<std::uint64_t, pending<void(std::error_code)>> waiters_;
  std::error_code final_loss_;  // why the session is lost for good (no reopen); else empty
  std::uint64_t next_waiter_ = 1;
};

}  // namespace detail

/// A simulated ZooKeeper session. See the file comment; the member functions have the same
/// contract as zkr::zookeeper::session's (docs/backend.md): every operation completes exactly
/// once, never inside the initiating call, on the session's executor, in ZooKeeper's order.
class session {
 public:
  using executor_type = executor;  ///< the session's process on the cluster's scheduler
  using timer_type = timer;        ///< a virtual-time timer

  /// Registers with `c` and starts connecting (state `connecting` until the first
  /// `connected`). Throws std::system_error for a bad connect string (or a host that is not
  /// a server of `c`) or session timeout. Never runs the cluster.
  session(cluster& c, session_options opts) : impl_(std::make_shared<detail::session_impl>(c, std::move(opts))) {
    impl_->start();
  }
  session(const session&) = delete;
  session& operator=(const session&) = delete;
  /// Closes the session if async_close was not called (the close runs in later events).
  ~session() { impl_->close({}); }

  /// The executor every completion of this session runs on (its process).
  const executor_type& get_executor() const noexcept { return impl_->get_executor(); }
  /// Virtual steady time.
  std::chrono::steady_clock::time_point steady_now() const noexcept { return impl_->get_cluster().now(); }
  /// Virtual wall time (virtual zero is 2020-01-01T00:00:00Z).
  std::chrono::system_clock::time_point wall_now() const noexcept {
    return impl_->get_cluster().get_scheduler().wall_now();
  }
  /// The session's random source, seeded from session_options::seed or the cluster's seed.
  prng& random() noexcept { return impl_->random(); }

  /// The current state.
  session_state state() const noexcept { return impl_->state(); }
  /// 1 for the first ZooKeeper session, +1 for each re-opened one.
  std::uint64_t generation() const noexcept { return impl_->generation(); }
  /// The ZooKeeper session id of the current generation, 0 before the first connect and
  /// after a loss until the next one.
  std::int64_t session_id() const noexcept { return impl_->session_id(); }
  /// The session's password (16 bytes).
  std::string session_password() const { return impl_->password(); }
  /// The timeout the server granted, 0 before the first connect.
  std::chrono::milliseconds negotiated_timeout() const noexcept { return impl_->negotiated_timeout(); }
  /// The options the session was created with.
  const session_options& get_options() const noexcept { return impl_->opts(); }
  /// The session's simulated process: for endpoint::client and cluster::pause_process.
  process_id process() const noexcept { return impl_->process(); }

  /// Calls `listener` for every state transition, in order, until the subscription dies.
  subscription subscribe(state_listener listener) { return subscription(impl_->add_listener(std::move(listener))); }

  /// Waits until connected (at once, posted, if it is). Signature: void(std::error_code).
  /// Errors: errc::closing if closed; the loss reason (session_expired, session_lost,
  /// auth_failed) once the session is lost for good (reopen_on_expiry off, or auth failed).
  /// Per-Operation Cancellation: all types; operation_aborted.
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
  template <class Token>
  auto async_create(std::string_view path, std::string_view data, const create_options& opts, Token&& token) {
    return initiate<std::string, zkr::stat>(token, &impl_type::create, std::string(path), std::string(data), opts);
  }
  /// Removes a node if `version` matches (-1: any). Signature: void(std::error_code).
  template <class Token>
  auto async_remove(std::string_view path, std::int32_t version, Token&& token) {
    return initiate<>(token, &impl_type::remove, std::string(path), version);
  }
  /// Reads a node's stat. Signature: void(std::error_code, zkr::stat).
  template <class Token>
  auto async_exists(std::string_view path, Token&& token) {
    return initiate<zkr::stat>(token, &impl_type::exists, std::string(path), watch_handler{});
  }
  /// As above, with a watch (set also when the node is missing).
  template <class Token>
  auto async_exists(std::string_view path, watch_handler watch, Token&& token) {
    return initiate<zkr::stat>(token, &impl_type::exists, std::string(path), std::move(watch));
  }
  /// Reads data and stat. Signature: void(std::error_code, std::string, zkr::stat).
  template <class Token>
  auto async_get(std::string_view path, Token&& token) {
    return initiate<std::string, zkr::stat>(token, &impl_type::get, std::string(path), watch_handler{});
  }
  /// As above, with a watch (not set if the node is missing).
  template <class Token>
  auto async_get(std::string_view path, watch_handler watch, Token&& token) {
    return initiate<std::string, zkr::stat>(token, &impl_type::get, std::string(path), std::move(watch));
  }
  /// Lists children. Signature: void(std::error_code, std::vector<std::string>, zkr::stat).
  /// The simulator lists them sorted; ZooKeeper promises no order.
  template <class Token>
  auto async_get_children(std::string_view path, Token&& token) {
    return initiate<std::vector<std::string>, zkr::stat>(token, &impl_type::get_children, std::string(path),
                                                         watch_handler{});
  }
  /// As above, with a watch (not set if the node is missing).
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
  /// Sets a node's ACL if its aversion matches. Signature: void(std::error_code).
  template <class Token>
  auto async_set_acl(std::string_view path, const acl_list& acls, std::int32_t version, Token&& token) {
    return initiate<>(token, &impl_type::set_acl, std::string(path), acls, version);
  }
  /// Applies `ops` atomically. Signature: void(std::error_code, std::vector<zkr::op_result>).
  /// Like the real backend: a TTL create inside a multi fails with errc::unimplemented.
  template <class Token>
  auto async_multi(std::vector<op> ops, Token&& token) {
    return initiate<std::vector<op_result>>(token, &impl_type::multi, std::move(ops));
  }
  /// Makes the connected server catch up with the leader. Signature: void(std::error_code).
  template <class Token>
  auto async_sync(std::string_view path, Token&& token) {
    return initiate<>(token, &impl_type::sync, std::string(path));
  }
  /// Adds credentials to this and every later connection and generation.
  template <class Token>
  auto async_add_auth(std::string_view scheme, std::string_view credential, Token&& token) {
    return initiate<>(token, &impl_type::add_auth, std::string(scheme), std::string(credential));
  }
  /// Closes the session: state `closed`, pending operations complete with operation_aborted,
  /// watches with errc::closing; completes once the server has closed it (its ephemeral
  /// nodes are gone there) or the connection ended. Idempotent.
  template <class Token>
  auto async_close(Token&& token) {
    return boost::asio::async_initiate<Token, void(std::error_code)>(
        [impl = impl_](auto handler) {
          impl->close(zkr::detail::pending<void(std::error_code)>(std::move(handler), impl->get_executor()));
        },
        token);
  }

 private:
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

static_assert(backend<session>, "zkr::sim::session must satisfy zkr::backend");

}  // namespace zkr::sim
