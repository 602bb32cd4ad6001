// zkr/recipes/impl/ephemeral_node.hpp: the logic behind zkr/recipes/ephemeral_node.hpp.
//
// `ephemeral_node_fsm` is the whole algorithm, sans I/O: inputs are the session's transitions,
// the replies of the requests it asked for, watch events and timer expiries; outputs are at
// most one request at a time, a backoff, a state change for the listeners and the end of a
// close. The driver (`ephemeral_node_impl`) performs the outputs on a session and feeds the
// results back. Tests step the FSM by hand (tests/recipes/ephemeral_node_test.cpp).
//
// The FSM keeps one *view* of the node at `path`:
//   absent   - believed missing: create it (Curator's plain create, no protection: the name is
//              fixed, so a create whose reply was lost is found again by reading the node);
//   unknown  - a create or write may or may not have happened (connection loss, node_exists):
//              read it (getData with a watch) and let its ephemeralOwner settle it;
//   ours     - owned by the current session: registered. Its watch reports a deletion (create
//              again) or a foreign write (read, and write our data back if it differs);
//   earlier  - owned by an earlier session of this session object, not yet reaped by the
//              server (a session presumed lost lives on the server until it expires there):
//              wait for its deletion (the read's watch), then create;
//   foreign  - owned by another session, or persistent: reported as errc::node_exists with the
//              owner; wait for its deletion (the read's watch), then create.
// A retry policy bounds the retries after failures; once it gives up, the FSM waits for a
// session transition, a watch event or new data ("stalled"), with the error reported.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/post.hpp>

#include <zkr/backend.hpp>
#include <zkr/detail/pending.hpp>
#include <zkr/error.hpp>
#include <zkr/path.hpp>
#include <zkr/random.hpp>
#include <zkr/recipes/impl/invariant.hpp>
#include <zkr/retry.hpp>
#include <zkr/types.hpp>

namespace zkr::recipes {

/// What an ephemeral_node is doing, as its listeners see it.
enum class ephemeral_node_state : std::uint8_t {
  latent,      ///< not started
  pending,     ///< started, the node is not (known to be) ours: being created, or waiting
  registered,  ///< the node exists and is owned by the current session
  closed,      ///< closed (by async_close, or because the session was closed)
};

constexpr std::string_view to_string(ephemeral_node_state s) noexcept {
  switch (s) {
    case ephemeral_node_state::latent: return "latent";
    case ephemeral_node_state::pending: return "pending";
    case ephemeral_node_state::registered: return "registered";
    case ephemeral_node_state::closed: return "closed";
  }
  return "?";
}
inline std::ostream& operator<<(std::ostream& os, ephemeral_node_state s) { return os << to_string(s); }

/// A transition of an ephemeral_node (listeners fire on changes of any field only).
struct ephemeral_node_event {
  ephemeral_node_state state = ephemeral_node_state::latent;
  /// Why the node is pending, if by an error: errc::node_exists (another session's or a
  /// persistent node is in the way; see `blocking_owner`), no_auth, invalid_acl,
  /// no_children_for_ephemerals, data_too_large, ... Empty while all goes well and while
  /// waiting for an earlier session's node to be reaped. errc::closing once the session was
  /// closed under the node.
  std::error_code error;
  /// The ephemeralOwner of the node in the way (another session's, or an earlier session of
  /// ours that the server has not expired yet); 0 for a persistent node or none.
  std::int64_t blocking_owner = 0;
  friend bool operator==(const ephemeral_node_event&, const ephemeral_node_event&) = default;
};

/// Counters of what an ephemeral_node did (for tests and monitoring; a snapshot).
struct ephemeral_node_stats {
  std::uint64_t creates = 0;         ///< create requests
  std::uint64_t adopted = 0;         ///< an existing node found to be the current session's
  std::uint64_t waited_earlier = 0;  ///< an earlier session's node found in the way
  std::uint64_t waited_foreign = 0;  ///< someone else's node found in the way
  std::uint64_t deletions = 0;       ///< deletions of our node seen by its watch
  std::uint64_t writes = 0;          ///< setData requests (set_data, or writing our data back)
  std::uint64_t retries = 0;         ///< backoffs after failures
  friend bool operator==(const ephemeral_node_stats&, const ephemeral_node_stats&) = default;
};

namespace detail {

// ---- inputs -----------------------------------------------------------------------------------

namespace eph_ev {
struct start {
  session_state state;
  std::int64_t session_id;
};
struct session {
  session_state state;
  std::int64_t session_id;
};
struct created {
  std::error_code ec;
  zkr::stat st;
};
struct parents_created {
  std::error_code ec;
};
struct read {
  std::error_code ec;
  std::string data;
  zkr::stat st;
};
struct written {
  std::error_code ec;
  zkr::stat st;
};
struct removed {
  std::error_code ec;
};
struct node_changed {
  std::uint64_t watch_id;
  std::error_code ec;
  event_type type;
};
struct backoff_elapsed {};
struct set_data {
  std::string data;
};
struct close {};
}  // namespace eph_ev

using eph_event = std::variant<eph_ev::start, eph_ev::session, eph_ev::created, eph_ev::parents_created, eph_ev::read,
                               eph_ev::written, eph_ev::removed, eph_ev::node_changed, eph_ev::backoff_elapsed,
                               eph_ev::set_data, eph_ev::close>;

// ---- outputs ----------------------------------------------------------------------------------

/// The one request the FSM wants made. Every one is on the node's path (parents: its ancestors).
enum class eph_io : std::uint8_t {
  none,
  create,          ///< create path, ephemeral, with `data`
  create_parents,  ///< create every missing ancestor as a container (node_exists is fine)
  read_watch,      ///< getData with a watch tagged `watch_id`
  read,            ///< getData without a watch (closing)
  write,           ///< setData `data` at `version`
  remove,          ///< delete at `version`
};

constexpr std::string_view to_string(eph_io io) noexcept {
  switch (io) {
    case eph_io::none: return "none";
    case eph_io::create: return "create";
    case eph_io::create_parents: return "create_parents";
    case eph_io::read_watch: return "read_watch";
    case eph_io::read: return "read";
    case eph_io::write: return "write";
    case eph_io::remove: return "remove";
  }
  return "?";
}
inline std::ostream& operator<<(std::ostream& os, eph_io io) { return os << to_string(io); }

struct eph_actions {
  eph_io io = eph_io::none;
  std::string data;             ///< create / write
  std::int32_t version = -1;    ///< write / remove
  std::uint64_t watch_id = 0;   ///< read_watch
  std::optional<std::chrono::milliseconds> backoff;  ///< arm the timer, then feed backoff_elapsed
  bool cancel_backoff = false;  ///< a pending backoff is void
  std::optional<ephemeral_node_event> changed;       ///< tell the listeners
  std::optional<std::error_code> closed;             ///< the close is done (complete async_close)
};

/// Time and randomness for backoffs, asked only when a backoff is computed (so never after the
/// session is gone).
struct eph_env {
  virtual ~eph_env() = default;
  virtual std::chrono::steady_clock::time_point now() = 0;
  virtual prng& random() = 0;
};

// ---- the FSM ----------------------------------------------------------------------------------

class ephemeral_node_fsm {
 public:
  enum class view : std::uint8_t { absent, unknown, ours, earlier, foreign };
  enum class life : std::uint8_t { latent, started, closing, closed };

  struct config {
    std::string path;
    std::string data;
    bool create_parents = true;
    any_retry_policy retry;
    std::size_t remembered_sessions = 16;  ///< earlier session ids recognised as ours
  };

  explicit ephemeral_node_fsm(config c) : cfg_(std::move(c)), data_(std::move(cfg_.data)) {
    ZKR_INVARIANT(is_valid_path(cfg_.path) && cfg_.path != "/", "ephemeral_node: the path must be a valid node path");
    ZKR_INVARIANT(cfg_.remembered_sessions > 0, "ephemeral_node: remember at least one session");
  }

  eph_actions resume(const eph_event& ev, eph_env& env) {
    eph_actions a;
    std::visit([&](const auto& e) { on(e, a, env); }, ev);
    reconcile(a);
    const ephemeral_node_event now_event = event();
    if (now_event != last_event_) {
      last_event_ = now_event;
      a.changed = now_event;
    }
    check_invariants(a);
    return a;
  }

  // ---- snapshots ----
  ephemeral_node_event event() const {
    return {state(), error_, view_ == view::earlier || view_ == view::foreign ? blocking_owner_ : 0};
  }
  ephemeral_node_state state() const noexcept {
    switch (life_) {
      case life::latent: return ephemeral_node_state::latent;
      case life::started: return view_ == view::ours ? ephemeral_node_state::registered : ephemeral_node_state::pending;
      case life::closing:
      case life::closed: return ephemeral_node_state::closed;
    }
    return ephemeral_node_state::closed;
  }
  view node_view() const noexcept { return view_; }
  life lifecycle() const noexcept { return life_; }
  const std::string& data() const noexcept { return data_; }
  /// Bumped by every set_data (the initial data is 1).
  std::uint64_t data_seq() const noexcept { return data_seq_; }
  /// The data_seq the node on the server is known to hold (0: unknown or none).
  std::uint64_t server_seq() const noexcept { return server_seq_; }
  eph_io in_flight() const noexcept { return inflight_; }
  bool stalled() const noexcept { return stalled_; }
  bool backoff_pending() const noexcept { return backoff_pending_; }
  const zkr::stat& node_stat() const noexcept { return stat_; }
  std::int64_t session_id() const noexcept { return session_id_; }
  const ephemeral_node_stats& stats() const noexcept { return stats_; }

 private:
  // ---- inputs ----

  void on(const eph_ev::start& e, eph_actions&, eph_env&) {
    ZKR_INVARIANT(life_ == life::latent, "ephemeral_node: started twice");
    life_ = life::started;
    connected_ = is_connected(e.state);
    session_id_ = e.session_id;
    view_ = view::absent;  // Curator creates first; node_exists makes us read
    if (e.state == session_state::closed) session_closed();  // started on a closed session
  }

  void on(const eph_ev::session& e, eph_actions&, eph_env&) {
    switch (e.state) {
      case session_state::connecting: return;
      case session_state::connected:
        if (connected_ && e.session_id == session_id_) {
          // The same session again (a duplicate of what start() already saw): re-check.
          recheck_ = true;
          return;
        }
        new_session(e.session_id);
        return;
      case session_state::reconnected:
        if (e.session_id != session_id_) return new_session(e.session_id);
        connected_ = true;
        unstall();
        // Watches survive a reconnect, but a reply lost with the connection left the view
        // unsure: read again (Curator re-creates on RECONNECTED; a read is enough here).
        recheck_ = true;
        return;
      case session_state::suspended:
        // The node lives on the server until the session expires there: keep the view.
        connected_ = false;
        return;
      case session_state::lost:
        connected_ = false;
        remember(session_id_);
        session_id_ = 0;
        view_ = view::unknown;  // gone, or (presumed loss) an earlier session's until reaped
        watch_armed_ = false;
        server_seq_ = 0;
        return;
      case session_state::closed:
        // A closed session removed its ephemeral nodes; nothing more can be done.
        return session_closed();
    }
  }

  void on(const eph_ev::created& e, eph_actions& a, eph_env& env) {
    finished(eph_io::create);
    if (!e.ec) {
      view_ = view::ours;
      stat_ = e.st;
      server_seq_ = sent_seq_;
      watch_armed_ = false;  // arm it with a read
      parents_just_created_ = false;
      return success();
    }
    if (e.ec == errc::node_exists) {
      view_ = view::unknown;  // ours (a retried create), an earlier session's, or someone else's
      return;
    }
    if (e.ec == errc::no_node && cfg_.create_parents && !parents_just_created_) {
      need_parents_ = true;
      return;
    }
    // A create whose outcome is unknown must be settled by a read, never repeated blindly.
    if (outcome_unknown(e.ec)) view_ = view::unknown;
    if (e.ec == errc::no_node) need_parents_ = cfg_.create_parents;  // a container vanished: again, bounded
    fail(e.ec, a, env);
  }

  void on(const eph_ev::parents_created& e, eph_actions& a, eph_env& env) {
    finished(eph_io::create_parents);
    if (!e.ec) {
      need_parents_ = false;
      parents_just_created_ = true;
      return;
    }
    fail(e.ec, a, env);  // creating parents is idempotent: retried as it is
  }

  void on(const eph_ev::read& e, eph_actions& a, eph_env& env) {
    const bool watched = inflight_ == eph_io::read_watch;
    ZKR_INVARIANT(inflight_ == eph_io::read_watch || inflight_ == eph_io::read, "ephemeral_node: a read reply without a read");
    inflight_ = eph_io::none;
    if (!e.ec) {
      watch_armed_ = watched;  // getData set its watch (armed under watch_id_)
      recheck_ = false;
      const std::int64_t owner = e.st.ephemeral_owner;
      if (owner != 0 && owner == session_id_) {
        if (view_ == view::unknown) ++stats_.adopted;
        view_ = view::ours;
        stat_ = e.st;
        server_seq_ = e.data == data_ ? data_seq_ : 0;  // differs: write ours (back)
        confirmed_ = life_ == life::closing;
        return success();
      }
      blocking_owner_ = owner;
      failures_ = 0;
      if (owner != 0 && std::find(earlier_.begin(), earlier_.end(), owner) != earlier_.end()) {
        if (view_ != view::earlier) ++stats_.waited_earlier;
        view_ = view::earlier;  // reaped when the server expires that session: its watch tells
        error_ = {};
      } else {
        if (view_ != view::foreign) ++stats_.waited_foreign;
        view_ = view::foreign;  // Curator waits for its deletion as well (PersistentNode's watch)
        error_ = make_error_code(errc::node_exists);
      }
      return;
    }
    if (e.ec == errc::no_node) {
      view_ = view::absent;  // no watch was set
      watch_armed_ = false;
      return;
    }
    watch_armed_ = false;
    if (view_ != view::ours) view_ = view::unknown;
    recheck_ = true;
    fail(e.ec, a, env);
  }

  void on(const eph_ev::written& e, eph_actions& a, eph_env& env) {
    finished(eph_io::write);
    if (!e.ec) {
      stat_ = e.st;
      server_seq_ = sent_seq_;
      return success();
    }
    if (e.ec == errc::no_node) {
      view_ = view::absent;
      server_seq_ = 0;
      return;
    }
    // bad_version: someone else wrote meanwhile (or, worse, re-created the node): read again.
    // Connection loss: the write may have happened: read again. Both bounded by the policy.
    recheck_ = true;
    fail(e.ec, a, env, /*report=*/e.ec != errc::bad_version);
  }

  void on(const eph_ev::removed& e, eph_actions& a, eph_env& env) {
    finished(eph_io::remove);
    ZKR_INVARIANT(life_ == life::closing, "ephemeral_node: removed outside a close");
    if (!e.ec || e.ec == errc::no_node) {
      view_ = view::absent;
      return;  // reconcile finishes the close
    }
    confirmed_ = false;  // read the owner again before the next try
    if (outcome_unknown(e.ec)) view_ = view::unknown;
    fail(e.ec, a, env, /*report=*/false);
  }

  void on(const eph_ev::node_changed& e, eph_actions&, eph_env&) {
    if (!watch_armed_ || e.watch_id != watch_id_) return;  // an older watch: its news is stale
    watch_armed_ = false;
    if (e.ec) return;  // the session ended or closed: its transition says what to do
    if (e.type == event_type::deleted) {
      if (view_ == view::ours) ++stats_.deletions;
      view_ = view::absent;
      server_seq_ = 0;
      blocking_owner_ = 0;
      if (error_ == errc::node_exists) error_ = {};  // what was in the way is gone
      unstall();
      return;
    }
    recheck_ = true;  // data_changed: someone wrote our node (or the blocking one)
    unstall();
  }

  void on(const eph_ev::backoff_elapsed&, eph_actions&, eph_env&) { backoff_pending_ = false; }

  void on(const eph_ev::set_data& e, eph_actions&, eph_env&) {
    data_ = e.data;
    ++data_seq_;
    unstall();
  }

  void on(const eph_ev::close&, eph_actions& a, eph_env&) {
    ZKR_INVARIANT(life_ != life::closing, "ephemeral_node: closed twice");
    if (life_ == life::latent || life_ == life::closed) {
      // Never started, or the session was closed under it: nothing left to remove.
      life_ = life::closed;
      a.closed = std::error_code{};
      return;
    }
    life_ = life::closing;
    if (backoff_pending_) {
      backoff_pending_ = false;
      a.cancel_backoff = true;
    }
    stalled_ = false;
    failures_ = 0;
    confirmed_ = false;
  }

  // ---- helpers ----

  static bool outcome_unknown(std::error_code ec) noexcept {
    return ec == errc::connection_loss || ec == errc::session_expired || ec == errc::session_lost ||
           ec == errc::operation_timeout;
  }
  static bool session_ended(std::error_code ec) noexcept {
    // The session was closed (or destroyed) under the request: never touch it again.
    return ec == errc::closing || ec == zkr::operation_aborted();
  }

  void finished(eph_io expected) {
    ZKR_INVARIANT(inflight_ == expected, "ephemeral_node: a reply for a request not in flight");
    inflight_ = eph_io::none;
  }

  void new_session(std::int64_t id) {
    if (session_id_ != 0 && session_id_ != id) remember(session_id_);
    session_id_ = id;
    connected_ = true;
    watch_armed_ = false;  // watches died with the old session
    recheck_ = false;
    server_seq_ = 0;
    view_ = view::absent;  // create; node_exists reads who is in the way
    unstall();
  }

  void session_closed() {
    session_gone_ = true;
    connected_ = false;
    if (life_ != life::started) return;  // closing: reconcile finishes the close
    life_ = life::closed;
    error_ = make_error_code(errc::closing);
  }

  void remember(std::int64_t id) {
    if (id == 0 || std::find(earlier_.begin(), earlier_.end(), id) != earlier_.end()) return;
    earlier_.push_back(id);
    if (earlier_.size() > cfg_.remembered_sessions) earlier_.pop_front();
  }

  void unstall() {
    stalled_ = false;
    failures_ = 0;
  }

  void success() {
    failures_ = 0;
    stalled_ = false;
    error_ = {};
    blocking_owner_ = 0;
  }

  void fail(std::error_code ec, eph_actions& a, eph_env& env, bool report = true) {
    ZKR_INVARIANT(static_cast<bool>(ec), "ephemeral_node: fail() without an error");
    if (session_ended(ec)) return session_closed();
    const bool session_trouble = ec == errc::connection_loss || ec == errc::session_expired ||
                                 ec == errc::session_lost || ec == errc::operation_timeout;
    if (session_trouble && !connected_) return;  // the next reconnected/connected resumes
    if (report && !session_trouble && ec != errc::throttled) error_ = ec;
    const auto now = env.now();
    if (failures_ == 0) first_failure_ = now;
    const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(now - first_failure_);
    const auto delay = cfg_.retry.next_delay(failures_, elapsed, env.random());
    ++failures_;
    if (delay) {
      ++stats_.retries;
      backoff_pending_ = true;
      a.backoff = *delay;
      return;
    }
    // The policy gave up: wait for a session transition, a watch event or new data.
    stalled_ = true;
    if (!error_) error_ = ec;
  }

  // ---- the next request ----

  void issue(eph_actions& a, eph_io io) {
    ZKR_INVARIANT(inflight_ == eph_io::none && a.io == eph_io::none, "ephemeral_node: one request at a time");
    inflight_ = io;
    a.io = io;
    if (io == eph_io::create) ++stats_.creates;
    if (io == eph_io::write) ++stats_.writes;
    switch (io) {
      case eph_io::create:
      case eph_io::write:
        a.data = data_;
        sent_seq_ = data_seq_;
        a.version = stat_.version;
        break;
      case eph_io::read_watch:
        watch_id_ = ++next_watch_id_;  // from now on only this watch's news counts
        watch_armed_ = false;
        a.watch_id = watch_id_;
        break;
      case eph_io::remove: a.version = stat_.version; break;
      case eph_io::read:
      case eph_io::create_parents:
      case eph_io::none: break;
    }
  }

  void finish_close(eph_actions& a) {
    ZKR_INVARIANT(life_ == life::closing && inflight_ == eph_io::none, "ephemeral_node: close finished early");
    life_ = life::closed;
    a.closed = std::error_code{};
    if (backoff_pending_) {
      backoff_pending_ = false;
      a.cancel_backoff = true;
    }
  }

  void reconcile(eph_actions& a) {
    if (inflight_ != eph_io::none || backoff_pending_) return;
    switch (life_) {
      case life::latent:
      case life::closed: return;
      case life::started:
        if (!connected_ || stalled_ || session_gone_) return;
        switch (view_) {
          case view::unknown: return issue(a, eph_io::read_watch);
          case view::absent: return issue(a, need_parents_ ? eph_io::create_parents : eph_io::create);
          case view::ours:
            if (!watch_armed_ || recheck_) return issue(a, eph_io::read_watch);
            if (server_seq_ != data_seq_) return issue(a, eph_io::write);
            return;
          case view::earlier:
          case view::foreign:
            if (!watch_armed_ || recheck_) return issue(a, eph_io::read_watch);
            return;
        }
        return;
      case life::closing:
        if (session_gone_) return finish_close(a);  // the node went with the session
        if (!connected_) {
          // Lost: the node dies with that session (at its expiry on the server). Suspended:
          // wait for reconnected or lost, at most the session timeout.
          if (session_id_ == 0) finish_close(a);
          return;
        }
        switch (view_) {
          case view::ours:
            // Delete only what a fresh read showed to be ours, at the version it showed.
            if (!confirmed_) return issue(a, eph_io::read);
            return issue(a, eph_io::remove);
          case view::unknown: return issue(a, eph_io::read);
          case view::absent:
          case view::earlier:
          case view::foreign: return finish_close(a);
        }
        return;
    }
  }

  void check_invariants(const eph_actions& a) const {
    ZKR_INVARIANT(!(a.io != eph_io::none && backoff_pending_ && !a.backoff), "ephemeral_node: request during a backoff");
    ZKR_INVARIANT(a.io != eph_io::create || (view_ == view::absent && life_ == life::started),
                  "ephemeral_node: create only when absent and started");
    ZKR_INVARIANT(a.io != eph_io::remove || (life_ == life::closing && view_ == view::ours && confirmed_),
                  "ephemeral_node: remove only a node read as ours while closing");
    ZKR_INVARIANT(state() != ephemeral_node_state::registered || session_id_ != 0,
                  "ephemeral_node: registered without a session");
    ZKR_INVARIANT(!a.closed || life_ == life::closed, "ephemeral_node: close reported before closed");
  }

  config cfg_;
  std::string data_;
  std::uint64_t data_seq_ = 1;
  std::uint64_t sent_seq_ = 0;
  std::uint64_t server_seq_ = 0;

  life life_ = life::latent;
  view view_ = view::absent;
  bool connected_ = false;
  bool session_gone_ = false;
  std::int64_t session_id_ = 0;
  std::deque<std::int64_t> earlier_;

  eph_io inflight_ = eph_io::none;
  bool backoff_pending_ = false;
  bool stalled_ = false;
  int failures_ = 0;
  std::chrono::steady_clock::time_point first_failure_{};

  bool need_parents_ = false;
  bool parents_just_created_ = false;
  bool watch_armed_ = false;
  bool recheck_ = false;
  bool confirmed_ = false;  // closing: the last read showed the node ours (at stat_.version)
  std::uint64_t watch_id_ = 0;
  std::uint64_t next_watch_id_ = 0;

  zkr::stat stat_{};
  std::error_code error_;
  std::int64_t blocking_owner_ = 0;
  ephemeral_node_event last_event_{};
  ephemeral_node_stats stats_{};
};

// ---- the driver -------------------------------------------------------------------------------

/// Runs an ephemeral_node_fsm on a session. Lives in a shared_ptr: requests in flight keep it
/// alive; watches, timers and the session subscription hold it weakly.
template <class Session>
class ephemeral_node_impl : public std::enable_shared_from_this<ephemeral_node_impl<Session>>, private eph_env {
 public:
  using executor_type = typename Session::executor_type;
  using timer_type = typename Session::timer_type;
  using void_pending = zkr::detail::pending<void(std::error_code)>;
  using listener_type = std::function<void(const ephemeral_node_event&)>;

  struct options {
    acl_list acl;
    bool create_parents = true;
    any_retry_policy retry;
  };

  ephemeral_node_impl(Session& s, std::string path, std::string data, options o)
      : s_(s),
        path_(std::move(path)),
        acl_(std::move(o.acl)),
        fsm_({path_, data, o.create_parents, std::move(o.retry)}),
        timer_(s.get_executor()),
        data_(std::move(data)) {}

  const std::string& path() const noexcept { return path_; }
  executor_type get_executor() const { return s_.get_executor(); }

  // ---- snapshots (any thread) ----
  ephemeral_node_state state() const noexcept {
    return life_.load() == user_life::closed ? ephemeral_node_state::closed : state_.load();
  }
  ephemeral_node_event last_event() const {
    std::lock_guard lock(mu_);
    return event_;
  }
  std::string data() const {
    std::lock_guard lock(mu_);
    return data_;
  }
  ephemeral_node_stats stats() const {
    std::lock_guard lock(mu_);
    return stats_;
  }

  // ---- lifecycle (any thread) ----
  void start() {
    auto expected = user_life::latent;
    if (!life_.compare_exchange_strong(expected, user_life::started)) {
      throw std::system_error(make_error_code(errc::invalid_state),
                              "zkr::recipes::ephemeral_node::start: started or closed before");
    }
    state_.store(ephemeral_node_state::pending);
    boost::asio::post(s_.get_executor(), [self = this->shared_from_this()] { self->on_start(); });
  }

  void close(void_pending h) {
    if (life_.exchange(user_life::closed) == user_life::closed) {
      // A second close: a programmer error, reported (posted) as invalid_state.
      return std::move(h).post_complete(s_.get_executor(), make_error_code(errc::invalid_state));
    }
    boost::asio::post(s_.get_executor(), [self = this->shared_from_this(), h = std::move(h)]() mutable {
      self->close_waiters_.push_back(std::move(h));
      self->feed(eph_ev::close{});
    });
  }

  /// The handle is going: close in the background, tell no one.
  void detach() {
    clear_listeners();
    if (life_.exchange(user_life::closed) == user_life::closed) return;
    boost::asio::post(s_.get_executor(), [self = this->shared_from_this()] { self->feed(eph_ev::close{}); });
  }

  void wait_registered(void_pending h, boost::asio::cancellation_slot slot) {
    boost::asio::post(s_.get_executor(), [self = this->shared_from_this(), h = std::move(h), slot]() mutable {
      self->on_wait(waiter{wait_kind::registered, 0, std::move(h)}, slot);
    });
  }

  void set_data(std::string data, void_pending h, boost::asio::cancellation_slot slot) {
    {
      std::lock_guard lock(mu_);
      data_ = data;  // data() shows it at once
    }
    boost::asio::post(s_.get_executor(),
                      [self = this->shared_from_this(), h = std::move(h), slot, data = std::move(data)]() mutable {
                        self->on_set_data(std::move(data), std::move(h), slot);
                      });
  }

  subscription subscribe(listener_type fn) {
    auto entry = std::make_shared<listener_entry>(std::move(fn));
    {
      std::lock_guard lock(mu_);
      listeners_.push_back(entry);
    }
    return subscription([weak = this->weak_from_this(), entry] {
      entry->active.store(false);
      if (auto self = weak.lock()) {
        std::lock_guard lock(self->mu_);
        std::erase(self->listeners_, entry);
      }
    });
  }

  /// For the tests: the FSM (read on the executor only).
  const ephemeral_node_fsm& fsm() const noexcept { return fsm_; }

 private:
  enum class user_life : std::uint8_t { latent, started, closed };
  struct listener_entry {
    explicit listener_entry(listener_type f) : fn(std::move(f)) {}
    listener_type fn;
    std::atomic<bool> active{true};
  };
  enum class wait_kind : std::uint8_t { registered, data };
  struct waiter {
    wait_kind kind;
    std::uint64_t seq;  // data: the data_seq the server must hold
    void_pending handler;
    boost::asio::cancellation_slot slot{};
  };

  // eph_env: asked only while the session is alive (the FSM computes no backoff after).
  std::chrono::steady_clock::time_point now() override { return s_.steady_now(); }
  prng& random() override { return s_.random(); }

  // ---- on the executor ----

  void on_start() {
    std::weak_ptr<ephemeral_node_impl> weak = this->weak_from_this();
    sub_ = s_.subscribe([weak](const session_event& e) {
      if (auto self = weak.lock()) self->feed(eph_ev::session{e.state, self->s_.session_id()});
    });
    feed(eph_ev::start{s_.state(), s_.session_id()});
  }

  void on_set_data(std::string data, void_pending h, boost::asio::cancellation_slot slot) {
    switch (fsm_.lifecycle()) {
      case ephemeral_node_fsm::life::closing:
      case ephemeral_node_fsm::life::closed: return std::move(h).dispatch_complete(make_error_code(errc::closing));
      case ephemeral_node_fsm::life::latent:
        feed(eph_ev::set_data{std::move(data)});
        return std::move(h).dispatch_complete(std::error_code{});  // the start creates it with this data
      case ephemeral_node_fsm::life::started: break;
    }
    feed(eph_ev::set_data{std::move(data)});
    on_wait(waiter{wait_kind::data, fsm_.data_seq(), std::move(h)}, slot);
  }

  void on_wait(waiter w, boost::asio::cancellation_slot slot) {
    if (auto ec = settled(w)) return std::move(w.handler).dispatch_complete(*ec);
    const std::uint64_t id = next_waiter_++;
    if (slot.is_connected()) {
      // Honoured: terminal, partial and total. Waiting has no side effect to undo (the data
      // of a set_data stays the node's data).
      w.slot = slot;
      slot.assign([weak = this->weak_from_this(), ex = s_.get_executor(), id](boost::asio::cancellation_type type) {
        if (type == boost::asio::cancellation_type::none) return;
        boost::asio::post(ex, [weak, id] {
          if (auto self = weak.lock()) self->abort_waiter(id);
        });
      });
    }
    waiters_.emplace(id, std::move(w));
  }

  /// What a waiter completes with now, if the FSM's state settles it.
  std::optional<std::error_code> settled(const waiter& w) const {
    const auto ev = fsm_.event();
    switch (ev.state) {
      case ephemeral_node_state::latent: return make_error_code(errc::invalid_state);
      case ephemeral_node_state::closed: return make_error_code(errc::closing);
      case ephemeral_node_state::registered:
        if (w.kind == wait_kind::registered || fsm_.server_seq() >= w.seq) return std::error_code{};
        return std::nullopt;
      case ephemeral_node_state::pending:
        if (w.kind == wait_kind::registered && ev.error) return ev.error;
        return std::nullopt;
    }
    return std::nullopt;
  }

  void abort_waiter(std::uint64_t id) {
    auto it = waiters_.find(id);
    if (it == waiters_.end()) return;  // completed meanwhile
    auto w = std::move(it->second);
    waiters_.erase(it);
    std::move(w.handler).dispatch_complete(zkr::operation_aborted());
  }

  void complete_waiters() {
    std::vector<std::pair<waiter, std::error_code>> done;
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      if (auto ec = settled(it->second)) {
        done.emplace_back(std::move(it->second), *ec);
        it = waiters_.erase(it);
      } else {
        ++it;
      }
    }
    for (auto& [w, ec] : done) {
      if (w.slot.is_connected()) w.slot.clear();
      std::move(w.handler).dispatch_complete(ec);
    }
  }

  void clear_listeners() {
    std::lock_guard lock(mu_);
    for (auto& l : listeners_) l->active.store(false);
    listeners_.clear();
  }

  void notify(const ephemeral_node_event& ev) {
    std::vector<std::shared_ptr<listener_entry>> copy;
    {
      std::lock_guard lock(mu_);
      event_ = ev;
      copy = listeners_;
    }
    state_.store(ev.state);
    for (const auto& l : copy) {
      if (l->active.load()) l->fn(ev);
    }
  }

  /// Steps the FSM and performs its actions. Inputs that arrive while actions are performed
  /// (a listener that makes the session report something) wait in a queue: steps never nest.
  void feed(eph_event ev) {
    queue_.push_back(std::move(ev));
    if (feeding_) return;
    feeding_ = true;
    struct reset_flag {
      bool& flag;
      ~reset_flag() { flag = false; }
    } guard{feeding_};
    while (!queue_.empty()) {
      eph_event next = std::move(queue_.front());
      queue_.pop_front();
      perform(fsm_.resume(next, *this));
    }
  }

  void perform(eph_actions a) {
    {
      std::lock_guard lock(mu_);
      stats_ = fsm_.stats();
    }
    if (a.cancel_backoff) {
      ++backoff_epoch_;
      timer_.cancel();
    }
    if (a.backoff) start_backoff(*a.backoff);
    if (a.io != eph_io::none) start_io(a);
    if (a.changed) notify(*a.changed);
    complete_waiters();
    if (a.closed) finish_close(*a.closed);
  }

  void finish_close(std::error_code ec) {
    ++backoff_epoch_;
    timer_.cancel();
    sub_.reset();
    clear_listeners();
    auto closers = std::move(close_waiters_);
    close_waiters_.clear();
    for (auto& h : closers) std::move(h).dispatch_complete(ec);
  }

  void start_backoff(std::chrono::milliseconds d) {
    const std::uint64_t epoch = ++backoff_epoch_;
    timer_.expires_after(d);
    timer_.async_wait([weak = this->weak_from_this(), epoch](std::error_code) {
      auto self = weak.lock();
      if (self && epoch == self->backoff_epoch_) self->feed(eph_ev::backoff_elapsed{});
    });
  }

  void start_io(const eph_actions& a) {
    auto self = this->shared_from_this();
    switch (a.io) {
      case eph_io::none: return;
      case eph_io::create:
        s_.async_create(path_, a.data, create_options{create_mode::ephemeral, acl_, {}},
                        [self](std::error_code ec, std::string, zkr::stat st) { self->feed(eph_ev::created{ec, st}); });
        return;
      case eph_io::create_parents: {
        auto levels = std::make_shared<std::vector<std::string>>();
        for (std::string_view p = parent_path(path_); p.size() > 1; p = parent_path(p)) levels->emplace_back(p);
        std::reverse(levels->begin(), levels->end());
        create_parent(std::move(levels), 0);
        return;
      }
      case eph_io::read_watch:
        // getData, not exists: a missing node leaves no watch behind (Curator's choice).
        s_.async_get(path_,
                     watch_handler([weak = this->weak_from_this(), id = a.watch_id](std::error_code ec, watch_event ev) {
                       if (auto me = weak.lock()) me->feed(eph_ev::node_changed{id, ec, ev.type});
                     }),
                     [self](std::error_code ec, std::string data, zkr::stat st) {
                       self->feed(eph_ev::read{ec, std::move(data), st});
                     });
        return;
      case eph_io::read:
        s_.async_get(path_, [self](std::error_code ec, std::string data, zkr::stat st) {
          self->feed(eph_ev::read{ec, std::move(data), st});
        });
        return;
      case eph_io::write:
        s_.async_set(path_, a.data, a.version,
                     [self](std::error_code ec, zkr::stat st) { self->feed(eph_ev::written{ec, st}); });
        return;
      case eph_io::remove:
        s_.async_remove(path_, a.version, [self](std::error_code ec) { self->feed(eph_ev::removed{ec}); });
        return;
    }
  }

  void create_parent(std::shared_ptr<std::vector<std::string>> levels, std::size_t i) {
    if (i == levels->size()) {
      // Nothing (more) to create: still complete through the executor, never inline.
      boost::asio::post(s_.get_executor(), [self = this->shared_from_this()] { self->feed(eph_ev::parents_created{}); });
      return;
    }
    const std::string p = (*levels)[i];
    s_.async_create(p, "", create_options{create_mode::container, open_acl_unsafe(), {}},
                    [self = this->shared_from_this(), levels, i](std::error_code ec, std::string, zkr::stat) mutable {
                      if (ec && ec != errc::node_exists) return self->feed(eph_ev::parents_created{ec});
                      self->create_parent(std::move(levels), i + 1);
                    });
  }

  Session& s_;
  const std::string path_;
  const acl_list acl_;
  ephemeral_node_fsm fsm_;
  timer_type timer_;
  std::uint64_t backoff_epoch_ = 0;
  subscription sub_;
  bool feeding_ = false;
  std::deque<eph_event> queue_;
  std::map<std::uint64_t, waiter> waiters_;
  std::uint64_t next_waiter_ = 1;
  std::vector<void_pending> close_waiters_;

  std::atomic<user_life> life_{user_life::latent};
  std::atomic<ephemeral_node_state> state_{ephemeral_node_state::latent};
  mutable std::mutex mu_;  // guards the snapshots below and the listener list
  ephemeral_node_event event_{};
  ephemeral_node_stats stats_{};
  std::string data_;
  std::vector<std::shared_ptr<listener_entry>> listeners_;
};

}  // namespace detail
}  // namespace zkr::recipes
