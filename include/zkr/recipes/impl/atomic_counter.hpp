// zkr/recipes/impl/atomic_counter.hpp: the counter's logic (see zkr/recipes/atomic_counter.hpp).
//
// `detail::counter_fsm` is one operation's algorithm, sans-IO: it answers each reply with
// the next backend call or the completion, and is stepped by hand in the tests. The composed
// operation `detail::counter_op` (Asio's async_compose) runs it on the session's executor: it
// resumes the FSM, makes the one call it asks for, or completes.
//
// The rule that keeps increments exactly-once lives in on_written(): a write whose outcome is
// unknown (connection loss) ends the operation with errc::connection_loss; only writes known
// not to have been applied (bad_version, node_exists, no_node, throttled) are retried.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>

#include <zkr/backend.hpp>
#include <zkr/error.hpp>
#include <zkr/recipes/atomic_counter.hpp>
#include <zkr/recipes/impl/invariant.hpp>
#include <zkr/recipes/mutex.hpp>
#include <zkr/types.hpp>

namespace zkr::recipes::detail {

/// The one backend call (or wait) an FSM step asks for.
enum class counter_io : std::uint8_t {
  none,            ///< the operation is done (see `done`)
  read,            ///< getData(path)
  set,             ///< setData(path, data, version)
  create,          ///< create(path, data), persistent
  create_parents,  ///< create the missing ancestors of path as containers
  backoff,         ///< wait `delay` (cancellable)
  lock,            ///< acquire the promotion mutex
  unlock,          ///< release the promotion mutex
};

struct counter_action {
  counter_io io = counter_io::none;
  std::string data;
  std::int32_t version = -1;
  std::chrono::milliseconds delay{0};
  bool done = false;
  std::error_code ec;
  atomic_result result{};
};

/// One counter operation's algorithm. Invariants: one step in flight at a time; `done` once;
/// a write is never re-sent after an unknown outcome.
class counter_fsm {
 public:
  enum class kind : std::uint8_t {
    get,         ///< read only
    add,         ///< value + a
    set,         ///< a (Curator's trySet)
    cas,         ///< a -> b, one attempt
    force,       ///< a, unconditionally
    initialize,  ///< create with a, only if missing
  };
  using retry_fn = std::function<std::optional<std::chrono::milliseconds>(int)>;

  counter_fsm(kind k, std::int64_t a, std::int64_t b, retry_fn optimistic, retry_fn promoted, bool can_promote)
      : kind_(k), a_(a), b_(b), optimistic_(std::move(optimistic)), promoted_(std::move(promoted)),
        can_promote_(can_promote && (k == kind::add || k == kind::set)) {}

  bool locked() const noexcept { return locked_; }
  bool promoted() const noexcept { return promoted_phase_; }
  counter_io in_flight() const noexcept { return pending_; }

  counter_action start() {
    ZKR_INVARIANT(pending_ == counter_io::none && !finished_, "counter_fsm::start twice");
    switch (kind_) {
      case kind::force: return write_set(-1, a_);
      case kind::initialize: return write_create(a_);
      case kind::get:
      case kind::add:
      case kind::set:
      case kind::cas: return read();
    }
    return read();
  }

  counter_action on_read(std::error_code ec, std::string_view data, const zkr::stat& st) {
    expect(counter_io::read);
    if (ec == errc::no_node) {
      exists_ = false;
      pre_ = 0;
    } else if (ec) {
      // A read changes nothing: retrying it after any transient error is safe.
      if (transient(ec)) return retry(ec);
      return finish(ec);
    } else {
      const auto v = decode_counter_value(data);
      if (!v) return finish(make_error_code(errc::data_inconsistency));
      exists_ = true;
      pre_ = *v;
      version_ = st.version;
    }
    result_.pre_value = pre_;
    switch (kind_) {
      case kind::get: {
        result_.succeeded = true;
        result_.post_value = pre_;
        return finish({});
      }
      case kind::cas:
        if (!exists_ || pre_ != a_) return finish({});  // no match: not an error (Curator)
        return write_set(version_, b_);
      case kind::add: {
        // Java's long arithmetic wraps; unsigned arithmetic does the same without UB.
        const auto next = static_cast<std::int64_t>(static_cast<std::uint64_t>(pre_) + static_cast<std::uint64_t>(a_));
        return exists_ ? write_set(version_, next) : write_create(next);
      }
      case kind::set: return exists_ ? write_set(version_, a_) : write_create(a_);
      case kind::force:
      case kind::initialize: break;
    }
    ZKR_INVARIANT(false, "counter_fsm::on_read for a write-only kind");
    return {};
  }

  /// The reply to a set or a create.
  counter_action on_written(std::error_code ec) {
    ZKR_INVARIANT(pending_ == counter_io::set || pending_ == counter_io::create, "counter_fsm: no write in flight");
    const bool was_create = pending_ == counter_io::create;
    pending_ = counter_io::none;
    if (!ec) {
      result_.succeeded = true;
      result_.post_value = next_;
      return finish({});
    }
    if (outcome_unknown(ec)) {
      // Applied or not, we cannot tell: report it, never retry (a retry could apply it twice).
      result_.post_value = next_;
      return finish(make_error_code(errc::connection_loss));
    }
    if (ec == errc::throttled) return retry(ec);  // not executed: safe to retry
    switch (kind_) {
      case kind::cas:
        if (ec == errc::bad_version || ec == errc::no_node) return finish({});  // lost the race: not succeeded
        return finish(ec);
      case kind::initialize:
        if (ec == errc::node_exists) return finish({});  // result.succeeded == false: it existed
        if (ec == errc::no_node && !parents_tried_) return create_parents();
        return finish(ec);
      case kind::force:
        if (ec == errc::no_node && !was_create) return write_create(a_);
        if (ec == errc::no_node && !parents_tried_) return create_parents();
        if (ec == errc::node_exists) return retry(ec);  // created meanwhile: set it
        return finish(ec);
      case kind::add:
      case kind::set:
        if (was_create && ec == errc::no_node && !parents_tried_) return create_parents();
        if (ec == errc::bad_version || ec == errc::node_exists || ec == errc::no_node) return retry(ec);  // not applied
        return finish(ec);
      case kind::get: break;
    }
    ZKR_INVARIANT(false, "counter_fsm::on_written for a read-only kind");
    return {};
  }

  counter_action on_parents(std::error_code ec) {
    expect(counter_io::create_parents);
    parents_tried_ = true;
    if (ec && transient(ec)) return retry(ec);
    if (ec) return finish(ec);
    return write_create(kind_ == kind::add ? next_ : a_);
  }

  /// The backoff ended; `cancelled`: the operation was cancelled meanwhile.
  counter_action on_backoff_done(bool cancelled) {
    expect(counter_io::backoff);
    if (cancelled) return finish(zkr::operation_aborted());
    switch (kind_) {
      case kind::force: return write_set(-1, a_);
      case kind::initialize: return write_create(a_);
      case kind::get:
      case kind::add:
      case kind::set:
      case kind::cas: return read();
    }
    return read();
  }

  counter_action on_locked(std::error_code ec) {
    expect(counter_io::lock);
    if (ec) return finish(ec);  // timed_out, operation_aborted, session errors: nothing applied
    locked_ = true;
    promoted_phase_ = true;
    retries_ = 0;
    return read();
  }

  counter_action on_unlocked(std::error_code) {
    expect(counter_io::unlock);
    locked_ = false;
    counter_action a;
    a.done = true;
    a.ec = final_ec_;
    a.result = result_;
    return a;
  }

  /// Tries per phase, for the stats.
  int optimistic_tries() const noexcept { return optimistic_tries_; }
  int promoted_tries() const noexcept { return promoted_tries_; }

 private:
  static bool transient(std::error_code ec) noexcept { return outcome_unknown(ec) || ec == errc::throttled; }

  counter_action read() {
    (promoted_phase_ ? promoted_tries_ : optimistic_tries_)++;
    return issue(counter_io::read);
  }
  counter_action write_set(std::int32_t version, std::int64_t value) {
    if (kind_ == kind::force) (promoted_phase_ ? promoted_tries_ : optimistic_tries_)++;
    next_ = value;
    result_.pre_value = pre_;
    auto a = issue(counter_io::set);
    a.version = version;
    a.data = encode_counter_value(value);
    return a;
  }
  counter_action write_create(std::int64_t value) {
    if (kind_ == kind::initialize) (promoted_phase_ ? promoted_tries_ : optimistic_tries_)++;
    next_ = value;
    result_.pre_value = pre_;
    auto a = issue(counter_io::create);
    a.data = encode_counter_value(value);
    return a;
  }
  counter_action create_parents() {
    parents_tried_ = true;
    return issue(counter_io::create_parents);
  }

  /// A retryable failure: back off per the phase's policy; when spent, promote (once) or give
  /// up with bad_version (contention) or the error itself.
  counter_action retry(std::error_code ec) {
    const auto& policy = promoted_phase_ ? promoted_ : optimistic_;
    if (const auto delay = policy ? policy(retries_++) : std::nullopt) {
      auto a = issue(counter_io::backoff);
      a.delay = *delay;
      return a;
    }
    if (!promoted_phase_ && can_promote_) {
      retries_ = 0;
      return issue(counter_io::lock);
    }
    const bool contention = ec == errc::bad_version || ec == errc::node_exists || ec == errc::no_node;
    return finish(contention ? make_error_code(errc::bad_version) : ec);
  }

  counter_action finish(std::error_code ec) {
    ZKR_INVARIANT(!finished_, "counter_fsm: finished twice");
    finished_ = true;
    result_.stats.optimistic_tries = optimistic_tries_;
    result_.stats.promoted_tries = promoted_tries_;
    if (kind_ != kind::cas && kind_ != kind::initialize && ec) result_.succeeded = false;
    if (locked_) {
      final_ec_ = ec;
      return issue(counter_io::unlock);
    }
    counter_action a;
    a.done = true;
    a.ec = ec;
    a.result = result_;
    return a;
  }

  counter_action issue(counter_io io) {
    ZKR_INVARIANT(pending_ == counter_io::none, "counter_fsm: two steps in flight");
    pending_ = io;
    counter_action a;
    a.io = io;
    return a;
  }
  void expect(counter_io io) {
    ZKR_INVARIANT(pending_ == io, "counter_fsm: a reply for a step not in flight");
    pending_ = counter_io::none;
  }

  kind kind_;
  std::int64_t a_, b_;
  retry_fn optimistic_, promoted_;
  bool can_promote_;

  counter_io pending_ = counter_io::none;
  bool finished_ = false;
  bool exists_ = false;
  bool parents_tried_ = false;
  bool locked_ = false;
  bool promoted_phase_ = false;
  int retries_ = 0;
  int optimistic_tries_ = 0, promoted_tries_ = 0;
  std::int64_t pre_ = 0, next_ = 0;
  std::int32_t version_ = -1;
  atomic_result result_{};
  std::error_code final_ec_;
};

/// What a counter's operations share: kept alive by the counter and by each operation.
template <class Session>
struct counter_state {
  counter_state(Session& s, std::string p, atomic_counter_options o) : session(s), path(std::move(p)), opts(std::move(o)) {
    if (opts.promote) lock = std::make_unique<mutex<Session>>(s, opts.promote->lock_path);
  }
  Session& session;
  std::string path;
  atomic_counter_options opts;
  std::unique_ptr<mutex<Session>> lock;
};

/// How an operation's result becomes its completion.
enum class counter_completion : std::uint8_t { value, result, plain, created };

/// The composed operation: resume the FSM, make its call, repeat; complete once.
template <class Session, counter_completion C>
class counter_op {
 public:
  using timer_type = typename Session::timer_type;

  counter_op(std::shared_ptr<counter_state<Session>> st, counter_fsm::kind k, std::int64_t a, std::int64_t b)
      : st_(std::move(st)),
        fsm_(std::make_unique<counter_fsm>(
            k, a, b, policy(st_, st_->opts.retry),
            st_->opts.promote ? policy(st_, st_->opts.promote->retry) : counter_fsm::retry_fn{},
            st_->opts.promote.has_value())) {}

  /// First entry (inside the initiating function): hop to the session's executor, so that the
  /// FSM only ever runs there and no completion can happen inline.
  template <class Self>
  void operator()(Self& self) {
    if (!started_) {
      started_ = true;
      // Waits honour every cancellation type (see the class comment of atomic_counter).
      self.reset_cancellation_state(boost::asio::enable_total_cancellation());
      return boost::asio::post(st_->session.get_executor(), std::move(self));
    }
    t0_ = st_->session.steady_now();
    step(self, fsm_->start());
  }
  /// getData or create replies (the counter's node, or one of its parents).
  template <class Self>
  void operator()(Self& self, std::error_code ec, std::string data, zkr::stat st) {
    switch (fsm_->in_flight()) {
      case counter_io::read: return step(self, fsm_->on_read(ec, data, st));
      case counter_io::create_parents:
        if (ec && ec != errc::node_exists) return step(self, fsm_->on_parents(ec));
        return create_parents(self, parents_next_);
      case counter_io::create:
      case counter_io::set: return step(self, fsm_->on_written(ec));
      case counter_io::none:
      case counter_io::backoff:
      case counter_io::lock:
      case counter_io::unlock: break;
    }
    ZKR_INVARIANT(false, "counter_op: an unexpected reply");
  }
  /// setData replies.
  template <class Self>
  void operator()(Self& self, std::error_code ec, zkr::stat) {
    step(self, fsm_->on_written(ec));
  }
  /// The backoff timer, the parents' creation, or the mutex release.
  template <class Self>
  void operator()(Self& self, std::error_code ec) {
    switch (fsm_->in_flight()) {
      case counter_io::backoff:
        return step(self, fsm_->on_backoff_done(self.get_cancellation_state().cancelled() !=
                                                boost::asio::cancellation_type::none));
      case counter_io::unlock: return step(self, fsm_->on_unlocked(ec));
      case counter_io::create_parents:  // create replies carry a path: the overload above
      case counter_io::none:
      case counter_io::read:
      case counter_io::set:
      case counter_io::create:
      case counter_io::lock: break;
    }
    ZKR_INVARIANT(false, "counter_op: an unexpected completion");
  }
  /// The mutex acquire.
  template <class Self>
  void operator()(Self& self, std::error_code ec, std::int64_t) {
    t_lock_ = st_->session.steady_now();
    step(self, fsm_->on_locked(ec));
  }

 private:
  /// The FSM's view of a policy: the elapsed time counts from the phase's first retry (as
  /// Curator's startMs per phase); the jitter comes from the session's prng. Runs on the
  /// session's executor only. Captures nothing of the op (which moves between steps).
  static counter_fsm::retry_fn policy(const std::shared_ptr<counter_state<Session>>& st, const any_retry_policy& p) {
    auto since = std::make_shared<std::chrono::steady_clock::time_point>();
    return [st, p, since](int n) -> std::optional<std::chrono::milliseconds> {
      const auto now = st->session.steady_now();
      if (n == 0) *since = now;
      return p.next_delay(n, std::chrono::duration_cast<std::chrono::milliseconds>(now - *since),
                          st->session.random());
    };
  }

  template <class Self>
  void step(Self& self, counter_action a) {
    auto& s = st_->session;
    switch (a.io) {
      case counter_io::none: return complete(self, std::move(a));
      case counter_io::read: return s.async_get(st_->path, std::move(self));
      case counter_io::set: return s.async_set(st_->path, a.data, a.version, std::move(self));
      case counter_io::create:
        return s.async_create(st_->path, a.data, create_options{create_mode::persistent, st_->opts.acl, {}},
                              std::move(self));
      case counter_io::create_parents: return create_parents(self, 1);
      case counter_io::backoff:
        if (self.get_cancellation_state().cancelled() != boost::asio::cancellation_type::none) {
          return step(self, fsm_->on_backoff_done(true));
        }
        timer_ = std::make_unique<timer_type>(s.get_executor());
        timer_->expires_after(a.delay);
        return timer_->async_wait(std::move(self));
      case counter_io::lock:
        ZKR_INVARIANT(st_->lock != nullptr, "counter_op: promotion without a mutex");
        if (self.get_cancellation_state().cancelled() != boost::asio::cancellation_type::none) {
          return step(self, fsm_->on_locked(zkr::operation_aborted()));
        }
        t_lock_ = s.steady_now();
        return st_->lock->async_acquire(st_->opts.promote->max_lock_time, std::move(self));
      case counter_io::unlock: return st_->lock->async_release(std::move(self));
    }
  }

  /// Creates the missing ancestors of the counter's path as containers, one per step
  /// (Curator's EnsureContainers, which excludes the counter's own node).
  template <class Self>
  void create_parents(Self& self, std::size_t from) {
    const std::size_t next = st_->path.find('/', from);
    if (next == std::string::npos) return step(self, fsm_->on_parents({}));
    parents_next_ = next + 1;
    st_->session.async_create(st_->path.substr(0, next), "",
                              create_options{create_mode::container, st_->opts.acl, {}}, std::move(self));
  }

  template <class Self>
  void complete(Self& self, counter_action a) {
    ZKR_INVARIANT(a.done, "counter_op: completing before the FSM is done");
    const auto now = st_->session.steady_now();
    const auto ms = [](auto d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d); };
    if (fsm_->promoted() || t_lock_ != std::chrono::steady_clock::time_point{}) {
      a.result.stats.optimistic_time = ms(t_lock_ - t0_);
      a.result.stats.promoted_time = ms(now - t_lock_);
    } else {
      a.result.stats.optimistic_time = ms(now - t0_);
    }
    timer_.reset();
    fsm_.reset();  // temporaries go before the handler runs
    if constexpr (C == counter_completion::value) {
      self.complete(a.ec, a.result.post_value);
    } else if constexpr (C == counter_completion::result) {
      self.complete(a.ec, a.result);
    } else if constexpr (C == counter_completion::plain) {
      self.complete(a.ec);
    } else {
      self.complete(a.ec, a.result.succeeded);
    }
  }

  std::shared_ptr<counter_state<Session>> st_;
  std::unique_ptr<counter_fsm> fsm_;
  std::unique_ptr<timer_type> timer_;
  bool started_ = false;
  std::size_t parents_next_ = 0;
  std::chrono::steady_clock::time_point t0_{}, t_lock_{};
};

template <class Session, counter_completion C, class Sig, class Token>
auto start_counter_op(const std::shared_ptr<counter_state<Session>>& st, counter_fsm::kind k, std::int64_t a,
                      std::int64_t b, Token&& token) {
  return boost::asio::async_compose<Token, Sig>(counter_op<Session, C>(st, k, a, b), token,
                                                st->session.get_executor());
}

}  // namespace zkr::recipes::detail

namespace zkr::recipes {

template <backend Session>
atomic_counter<Session>::atomic_counter(Session& session, std::string path, atomic_counter_options options) {
  if (!is_valid_path(path)) throw std::invalid_argument("zkr::recipes::atomic_counter: invalid path '" + path + "'");
  if (options.promote && !is_valid_path(options.promote->lock_path)) {
    throw std::invalid_argument("zkr::recipes::atomic_counter: invalid lock path '" + options.promote->lock_path + "'");
  }
  state_ = std::make_shared<detail::counter_state<Session>>(session, std::move(path), std::move(options));
}

template <backend Session>
const std::string& atomic_counter<Session>::path() const noexcept {
  return state_->path;
}

template <backend Session>
template <class Token>
auto atomic_counter<Session>::async_get(Token&& token) {
  return detail::start_counter_op<Session, detail::counter_completion::value, void(std::error_code, std::int64_t)>(
      state_, detail::counter_fsm::kind::get, 0, 0, std::forward<Token>(token));
}

template <backend Session>
template <class Token>
auto atomic_counter<Session>::async_add(std::int64_t delta, Token&& token) {
  return detail::start_counter_op<Session, detail::counter_completion::result, void(std::error_code, atomic_result)>(
      state_, detail::counter_fsm::kind::add, delta, 0, std::forward<Token>(token));
}

template <backend Session>
template <class Token>
auto atomic_counter<Session>::async_compare_and_set(std::int64_t expected, std::int64_t desired, Token&& token) {
  return detail::start_counter_op<Session, detail::counter_completion::result, void(std::error_code, atomic_result)>(
      state_, detail::counter_fsm::kind::cas, expected, desired, std::forward<Token>(token));
}

template <backend Session>
template <class Token>
auto atomic_counter<Session>::async_try_set(std::int64_t value, Token&& token) {
  return detail::start_counter_op<Session, detail::counter_completion::result, void(std::error_code, atomic_result)>(
      state_, detail::counter_fsm::kind::set, value, 0, std::forward<Token>(token));
}

template <backend Session>
template <class Token>
auto atomic_counter<Session>::async_force_set(std::int64_t value, Token&& token) {
  return detail::start_counter_op<Session, detail::counter_completion::plain, void(std::error_code)>(
      state_, detail::counter_fsm::kind::force, value, 0, std::forward<Token>(token));
}

template <backend Session>
template <class Token>
auto atomic_counter<Session>::async_initialize(std::int64_t value, Token&& token) {
  return detail::start_counter_op<Session, detail::counter_completion::created, void(std::error_code, bool)>(
      state_, detail::counter_fsm::kind::initialize, value, 0, std::forward<Token>(token));
}

}  // namespace zkr::recipes
