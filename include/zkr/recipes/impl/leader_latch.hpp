// zkr/recipes/impl/leader_latch.hpp: the leader latch's logic (zkr/recipes/leader_latch.hpp).
//
// `detail::leader_latch_fsm` is the whole algorithm, sans-IO: `resume(event, now, rng)` takes
// one input (start, a session transition, a reply, a watch firing, a timer, close) and returns
// what to do (`latch_actions`): at most one main request, deletes of our old nodes, a backoff,
// a leadership transition, failure or the end of a close. It never calls a backend, so the
// tests step it by hand.
//
// The FSM reconciles rather than scripts: after every input it derives the next request from
// its state (is a create's outcome unknown? have we a node? must leadership be checked?), so
// a reconnect, a watch and a failed request all just mark what is needed and the same code
// issues it. One main request is in flight at a time; deletes run beside it.
//
// `detail::leader_latch_impl<Session>` drives the FSM on the session's executor: it turns
// actions into backend calls and their completions into events, keeps the waiters of
// async_await_leadership and async_close, the listeners and the snapshots read from other
// threads. `detail::participants_op` reads the contenders for async_get_participants /
// async_get_leader.
#pragma once

#include <zkr/recipes/leader_latch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>

#include <zkr/detail/pending.hpp>
#include <zkr/error.hpp>
#include <zkr/path.hpp>
#include <zkr/random.hpp>
#include <zkr/recipes/impl/invariant.hpp>
#include <zkr/recipes/protected_name.hpp>
#include <zkr/retry.hpp>
#include <zkr/types.hpp>

namespace zkr::recipes::detail {

/// Curator's LeaderLatch LOCK_NAME: the marker before the sequence number.
inline constexpr std::string_view latch_marker = "latch-";

// ---- inputs ---------------------------------------------------------------------------------

/// The FSM's inputs. Paths are full paths; children are node names.
namespace latch_ev {
/// The latch was started. `prefix` is this latch's protected prefix ("_c_<uuid>-"), drawn
/// once per latch: every node of ours carries it, so any child with it is ours.
struct start {
  std::string prefix;
  session_state state = session_state::connecting;
  std::int64_t session_id = 0;
};
/// A session transition, with the session id it left the session with (0 after lost).
struct session {
  session_state state = session_state::connecting;
  std::int64_t session_id = 0;
};
struct created {
  std::error_code ec;
  std::string path;
  zkr::stat stat;
};
struct parents_created {
  std::error_code ec;
};
/// The children, read to check leadership.
struct listed {
  std::error_code ec;
  std::vector<std::string> children;
};
/// The children, read to find our node by prefix after a create of unknown outcome.
struct found {
  std::error_code ec;
  std::vector<std::string> children;
};
/// The stat of the node found by prefix: whose session owns it.
struct candidate_read {
  std::error_code ec;
  zkr::stat stat;
};
/// The predecessor's getData (with a watch) completed.
struct predecessor_read {
  std::error_code ec;
};
/// A watch on a predecessor fired (with an event, or ended with its session).
struct predecessor_changed {
  std::error_code ec;
  std::string path;
};
struct removed {
  std::error_code ec;
  std::string path;
};
struct backoff_elapsed {};
struct close {};
}  // namespace latch_ev

using latch_event = std::variant<latch_ev::start, latch_ev::session, latch_ev::created, latch_ev::parents_created,
                                 latch_ev::listed, latch_ev::found, latch_ev::candidate_read,
                                 latch_ev::predecessor_read, latch_ev::predecessor_changed, latch_ev::removed,
                                 latch_ev::backoff_elapsed, latch_ev::close>;

// ---- outputs --------------------------------------------------------------------------------

/// The main request the FSM asks for (one at a time).
enum class latch_io : std::uint8_t {
  none,
  create,            ///< create <path> ephemeral sequential, data = id
  create_parents,    ///< create every ancestor of <path> and <path> itself as containers
  list,              ///< get_children(<path>) to check leadership   -> listed
  find,              ///< get_children(<path>) to find our node      -> found
  read_candidate,    ///< exists(<path>): whose is the node found    -> candidate_read
  read_predecessor,  ///< get(<path>) with a watch on the predecessor -> predecessor_read
};

constexpr std::string_view to_string(latch_io io) noexcept {
  switch (io) {
    case latch_io::none: return "none";
    case latch_io::create: return "create";
    case latch_io::create_parents: return "create_parents";
    case latch_io::list: return "list";
    case latch_io::find: return "find";
    case latch_io::read_candidate: return "read_candidate";
    case latch_io::read_predecessor: return "read_predecessor";
  }
  return "?";
}
inline std::ostream& operator<<(std::ostream& os, latch_io io) { return os << to_string(io); }

/// What one step asks the driver to do, in this order: report the leadership transition,
/// report a failure, cancel/start the backoff, start the deletes and the request, then finish
/// a close.
struct latch_actions {
  latch_io io = latch_io::none;
  std::string io_path;
  std::vector<std::string> removals;
  std::optional<std::chrono::milliseconds> backoff;
  bool cancel_backoff = false;
  std::optional<leadership_change> leadership;
  std::optional<std::error_code> failed;
  std::optional<std::error_code> closed;
};

inline std::ostream& operator<<(std::ostream& os, const latch_actions& a) {
  os << "{io=" << a.io;
  if (!a.io_path.empty()) os << " " << a.io_path;
  for (const auto& r : a.removals) os << " remove=" << r;
  if (a.backoff) os << " backoff=" << a.backoff->count() << "ms";
  if (a.cancel_backoff) os << " cancel_backoff";
  if (a.leadership) os << " " << *a.leadership;
  if (a.failed) os << " failed=" << a.failed->message();
  if (a.closed) os << " closed=" << (*a.closed ? a.closed->message() : std::string("ok"));
  return os << "}";
}

/// Errors after which the request is redone once the session is connected again: the
/// connection went (outcome unknown) or the session ended.
inline bool connection_trouble(const std::error_code& ec) noexcept {
  return outcome_unknown(ec) || ec == errc::session_expired || ec == errc::session_lost || ec == errc::session_moved;
}
/// The session was closed under the request (its ephemeral nodes went with it).
inline bool session_closed_error(const std::error_code& ec) noexcept {
  return ec == errc::closing || ec == std::errc::operation_canceled;
}

// ---- the FSM --------------------------------------------------------------------------------

/// The leader latch's algorithm, sans-IO. See the file comment.
class leader_latch_fsm {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  struct config {
    std::string latch_path;
    bool keep_leadership_when_suspended = false;
    any_retry_policy retry{};
    /// Consecutive create attempts that find the parent missing before giving up.
    int max_parent_attempts = 10;
  };

  struct our_node {
    std::string name;
    std::int64_t czxid = 0;
    std::int64_t owner = 0;  ///< ephemeral owner: the session that created it
  };

  explicit leader_latch_fsm(config c) : cfg_(std::move(c)) {
    ZKR_INVARIANT(is_valid_path(cfg_.latch_path), "leader_latch_fsm: an invalid latch path");
    ZKR_INVARIANT(cfg_.max_parent_attempts > 0, "leader_latch_fsm: max_parent_attempts must be positive");
  }

  /// Takes one input; returns what to do. `now` and `rng` feed the retry policy.
  latch_actions resume(const latch_event& ev, time_point now, prng& rng) {
    latch_actions a;
    step s{a, now, rng};
    std::visit([&](const auto& e) { on(e, s); }, ev);
    reconcile(s);
    check_invariants(a);
    return a;
  }

  // ---- snapshots (for the driver and the tests) ----
  bool leader() const noexcept { return leader_; }
  std::int64_t token() const noexcept { return leader_ ? token_ : 0; }
  const std::optional<our_node>& node() const noexcept { return node_; }
  std::string our_path() const { return node_ ? path_of(node_->name) : std::string(); }
  const std::string& prefix() const noexcept { return prefix_; }
  latch_io in_flight() const noexcept { return in_flight_; }
  bool started() const noexcept { return phase_ != phase::latent; }
  /// Withdrawn completely: no request in flight and no node of ours left to delete.
  bool done() const noexcept { return phase_ == phase::done; }
  bool closing() const noexcept { return closing_; }
  std::error_code failure() const noexcept { return failed_; }
  const leader_latch_stats& stats() const noexcept { return stats_; }
  bool connected() const noexcept { return connected_; }
  const std::string& watching() const noexcept { return watching_; }

 private:
  enum class phase : std::uint8_t {
    latent,       // not started
    running,      // contending
    withdrawing,  // closing or failed: deleting what is ours, creating nothing
    done,         // withdrawn
  };

  struct step {
    latch_actions& a;
    time_point now;
    prng& rng;
  };

  std::string path_of(std::string_view name) const { return join_path(cfg_.latch_path, name); }
  bool withdrawing() const noexcept { return phase_ == phase::withdrawing || phase_ == phase::done; }
  bool tracked(const std::string& path) const { return to_remove_.contains(path) || removing_.contains(path); }
  void remove_later(const std::string& path) {
    if (!removing_.contains(path)) to_remove_.insert(path);
  }

  void issue(latch_io io, std::string path, step& s) {
    ZKR_INVARIANT(in_flight_ == latch_io::none, "leader_latch_fsm: a second request while one is in flight");
    ZKR_INVARIANT(io != latch_io::none && connected_, "leader_latch_fsm: a request while disconnected");
    in_flight_ = io;
    s.a.io = io;
    s.a.io_path = std::move(path);
  }
  void finished(latch_io expected) {
    // A reply comes only for the request in flight: anything else is a driver bug.
    ZKR_INVARIANT(in_flight_ == expected, "leader_latch_fsm: a reply for a request that is not in flight");
    in_flight_ = latch_io::none;
  }

  void set_leader(bool v, step& s) {
    if (leader_ == v) return;
    // One transition per step: listeners must never miss one.
    ZKR_INVARIANT(!s.a.leadership.has_value(), "leader_latch_fsm: two leadership transitions in one step");
    ZKR_INVARIANT(!v || (node_ && phase_ == phase::running), "leader_latch_fsm: leading without a node, or while withdrawing");
    leader_ = v;
    if (v) {
      token_ = node_->czxid;
      ++stats_.elections;
    }
    s.a.leadership = leadership_change{v, token_};
  }

  void success() {
    retries_ = 0;
    failing_since_.reset();
  }

  /// The request failed and is to be redone: at the next (re)connection if the connection
  /// is gone (that transition restarts the work), else after a backoff from the retry
  /// policy, which bounds the loop.
  void retry_later(const std::error_code& ec, step& s) {
    if (!connected_ || session_closed_) return;
    if (!failing_since_) failing_since_ = s.now;
    const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(s.now - *failing_since_);
    const auto delay = cfg_.retry.next_delay(retries_, elapsed, s.rng);
    if (!delay) return give_up(ec, s);
    ++retries_;
    ++stats_.retries;
    backing_off_ = true;
    s.a.backoff = *delay;
  }

  /// Stops contending: gives leadership up, and marks every node of ours for deletion.
  void withdraw(step& s) {
    ZKR_INVARIANT(phase_ == phase::running, "leader_latch_fsm: withdrawing twice");
    phase_ = phase::withdrawing;
    set_leader(false, s);
    if (node_) remove_later(path_of(node_->name));
    node_.reset();
    if (candidate_) {
      remove_later(path_of(*candidate_));
      candidate_.reset();
      create_unknown_ = false;
    }
    check_needed_ = false;
    parents_missing_ = false;
    predecessor_.clear();
  }

  /// A node whose sequence is not a non-negative 10-digit number: the parent's int32 child
  /// counter wrapped (ZooKeeper names the next child "-2147483648"). It would sort below every
  /// older contender and lead beside the current leader: the latch refuses to contend with it.
  static bool valid_sequence(std::string_view name) {
    const auto seq = sequence_of(name, latch_marker);
    return seq && *seq >= 0;
  }

  void give_up(const std::error_code& ec, step& s) {
    if (phase_ == phase::running) {
      failed_ = ec;
      s.a.failed = ec;
      withdraw(s);
      return;
    }
    // Withdrawing already: what cannot be deleted stays until its session ends.
    if (closing_ && !close_error_) close_error_ = ec;
    to_remove_.clear();
    create_unknown_ = false;
    candidate_.reset();
  }

  /// Our node belongs to a session that is over (or not current): delete it when we can,
  /// and contend with a new one.
  void abandon_node(step& s) {
    set_leader(false, s);
    if (!node_) return;
    remove_later(path_of(node_->name));
    node_.reset();
    predecessor_.clear();
    ++stats_.abandoned;
  }

  // ---- inputs ----

  void on(const latch_ev::start& e, step& s) {
    ZKR_INVARIANT(phase_ == phase::latent, "leader_latch_fsm: started twice");
    ZKR_INVARIANT(e.prefix.starts_with(protected_marker) && e.prefix.ends_with("-"), "leader_latch_fsm: not a protected prefix");
    phase_ = phase::running;
    prefix_ = e.prefix;
    connected_ = is_connected(e.state);
    session_lost_ = e.state == session_state::lost;
    session_id_ = connected_ ? e.session_id : 0;
    if (e.state == session_state::closed) {
      session_closed_ = true;
      give_up(make_error_code(errc::closing), s);
    }
  }

  void on(const latch_ev::session& e, step& s) {
    if (phase_ == phase::latent || phase_ == phase::done) return;
    switch (e.state) {
      case session_state::connecting: break;
      case session_state::connected:
      case session_state::reconnected:
        connected_ = true;
        session_lost_ = false;
        if (e.session_id != session_id_) {
          // A new session: a node of an earlier one cannot be ours to lead with.
          session_id_ = e.session_id;
          if (node_ && node_->owner != session_id_) abandon_node(s);
          // A candidate found by prefix stays: its owner is compared with the new session.
          watching_.clear();
        }
        success();
        // Whatever we learnt before may be stale: list again (Curator: RECONNECTED -> getChildren).
        if (node_) check_needed_ = true;
        break;
      case session_state::suspended:
        connected_ = false;
        if (!cfg_.keep_leadership_when_suspended) set_leader(false, s);
        break;
      case session_state::lost:
        connected_ = false;
        session_lost_ = true;
        session_id_ = 0;
        watching_.clear();
        abandon_node(s);
        break;
      case session_state::closed:
        connected_ = false;
        session_closed_ = true;
        session_id_ = 0;
        watching_.clear();
        set_leader(false, s);
        // The server deleted the session's ephemeral nodes; older sessions' go at their expiry.
        node_.reset();
        candidate_.reset();
        to_remove_.clear();
        create_unknown_ = false;
        if (phase_ == phase::running) give_up(make_error_code(errc::closing), s);
        break;
    }
  }

  void on(const latch_ev::created& e, step& s) {
    finished(latch_io::create);
    if (!e.ec) {
      success();
      parent_attempts_ = 0;
      if (phase_ != phase::running || session_id_ == 0 || e.stat.ephemeral_owner != session_id_) {
        // Closed meanwhile, or made by a session that is no longer current: not ours to lead with.
        if (phase_ == phase::running) ++stats_.stale_creates;
        remove_later(e.path);
        return;
      }
      node_ = our_node{std::string(node_name(e.path)), e.stat.czxid, e.stat.ephemeral_owner};
      if (!valid_sequence(node_->name)) return give_up(make_error_code(errc::sequence_exhausted), s);
      check_needed_ = true;
      return;
    }
    if (e.ec == errc::no_node) {
      // The latch path (or an ancestor) is missing: create it, within a bound.
      if (++parent_attempts_ > cfg_.max_parent_attempts) return give_up(e.ec, s);
      if (phase_ == phase::running) parents_missing_ = true;
      return;
    }
    if (connection_trouble(e.ec)) {
      // Outcome unknown: our node may exist. Find it by its prefix before creating again
      // (while closing only if it may belong to the current session; nodes of a lost one go
      // with it).
      if (phase_ == phase::running || !session_lost_) create_unknown_ = true;
      return retry_later(e.ec, s);
    }
    if (e.ec == errc::throttled) return retry_later(e.ec, s);  // not applied
    if (session_closed_error(e.ec)) return;                     // the session's closed event says it all
    give_up(e.ec, s);                                           // no_auth, invalid_acl, ...: retrying cannot help
  }

  void on(const latch_ev::parents_created& e, step& s) {
    finished(latch_io::create_parents);
    if (!e.ec) {
      success();
      parents_missing_ = false;
      return;
    }
    if (connection_trouble(e.ec) || e.ec == errc::throttled) return retry_later(e.ec, s);
    if (session_closed_error(e.ec)) return;
    give_up(e.ec, s);
  }

  /// Our nodes among `children`, newest (highest sequence) first; unsequenced ones last.
  std::vector<std::string> ours(const std::vector<std::string>& children) const {
    std::vector<std::pair<std::int64_t, std::string>> mine;
    for (const auto& c : children) {
      if (!has_prefix(c, prefix_) || tracked(path_of(c))) continue;
      mine.emplace_back(sequence_of(c, latch_marker).value_or(INT64_MIN), c);
    }
    std::sort(mine.begin(), mine.end(), [](const auto& x, const auto& y) { return x > y; });
    std::vector<std::string> out;
    for (auto& m : mine) out.push_back(std::move(m.second));
    return out;
  }

  void on(const latch_ev::found& e, step& s) {
    finished(latch_io::find);
    if (!e.ec) {
      success();
      auto mine = ours(e.children);
      if (phase_ != phase::running) {
        for (const auto& m : mine) remove_later(path_of(m));
        create_unknown_ = false;
        return;
      }
      if (mine.empty()) {
        create_unknown_ = false;  // the create was not applied: create again
        return;
      }
      // The newest is the create we lost track of (its owner is read next); any older one is
      // an orphan of ours.
      candidate_ = mine.front();
      for (std::size_t i = 1; i < mine.size(); ++i) {
        ++stats_.orphans;
        remove_later(path_of(mine[i]));
      }
      return;
    }
    if (e.ec == errc::no_node) {
      // No latch path, so no node of ours under it.
      success();
      create_unknown_ = false;
      if (phase_ == phase::running) parents_missing_ = true;
      return;
    }
    if (connection_trouble(e.ec) || e.ec == errc::throttled) return retry_later(e.ec, s);
    if (session_closed_error(e.ec)) return;
    give_up(e.ec, s);
  }

  void on(const latch_ev::candidate_read& e, step& s) {
    finished(latch_io::read_candidate);
    ZKR_INVARIANT(candidate_.has_value() || phase_ != phase::running, "leader_latch_fsm: a candidate read without a candidate");
    const std::string name = candidate_.value_or(std::string());
    candidate_.reset();
    if (!e.ec) {
      success();
      create_unknown_ = false;
      if (phase_ == phase::running && session_id_ != 0 && e.stat.ephemeral_owner == session_id_) {
        // Ours, made by this very session: adopt it (Curator's protected mode).
        node_ = our_node{name, e.stat.czxid, e.stat.ephemeral_owner};
        ++stats_.adopted;
        if (!valid_sequence(name)) return give_up(make_error_code(errc::sequence_exhausted), s);
        check_needed_ = true;
      } else if (!name.empty()) {
        // Made by an earlier session (Curator's ProtectedMode.validateFoundNode): delete it.
        ++stats_.not_adopted;
        remove_later(path_of(name));
      }
      return;
    }
    if (e.ec == errc::no_node) {
      success();
      create_unknown_ = false;  // it went with its session: create anew
      return;
    }
    if (connection_trouble(e.ec) || e.ec == errc::throttled) return retry_later(e.ec, s);  // find again
    if (session_closed_error(e.ec)) return;
    give_up(e.ec, s);
  }

  void on(const latch_ev::listed& e, step& s) {
    finished(latch_io::list);
    // Closed meanwhile, or our node was abandoned (session lost) while the list ran: stale.
    if (phase_ != phase::running || !node_) return;
    if (!e.ec) {
      success();
      std::vector<std::string> contenders;
      for (auto& c : sorted_contenders(e.children, latch_marker)) {
        if (c != node_->name && has_prefix(c, prefix_)) {
          // Ours but not our node: a late create or an earlier session's. Delete, and do not
          // wait behind it.
          if (!tracked(path_of(c))) {
            ++stats_.orphans;
            remove_later(path_of(c));
          }
          continue;
        }
        contenders.push_back(std::move(c));
      }
      const auto it = std::find(contenders.begin(), contenders.end(), node_->name);
      if (it == contenders.end()) {
        // Our node is gone (Curator: "Can't find our node. Resetting."): contend anew.
        ++stats_.resets;
        node_.reset();
        set_leader(false, s);
        return;
      }
      if (it == contenders.begin()) {
        // A listing that completes after a disconnect is as of before it: lead only while
        // connected (or when told to keep leadership through suspended).
        if (connected_ || cfg_.keep_leadership_when_suspended) {
          set_leader(true, s);
        } else {
          check_needed_ = true;
        }
        return;
      }
      set_leader(false, s);
      predecessor_ = *(it - 1);
      return;
    }
    if (e.ec == errc::no_node) {
      // The latch path itself is gone, and our node with it.
      success();
      ++stats_.resets;
      node_.reset();
      set_leader(false, s);
      parents_missing_ = true;
      return;
    }
    if (connection_trouble(e.ec) || e.ec == errc::throttled) {
      check_needed_ = true;
      return retry_later(e.ec, s);
    }
    if (session_closed_error(e.ec)) return;
    give_up(e.ec, s);
  }

  void on(const latch_ev::predecessor_read& e, step& s) {
    finished(latch_io::read_predecessor);
    const std::string name = std::exchange(reading_, std::string());
    if (phase_ != phase::running || !node_) return;
    if (!e.ec) {
      success();
      watching_ = name;  // its watch is armed now
      return;
    }
    if (e.ec == errc::no_node) {
      // Gone before the watch was set (getData sets none then): check again now.
      success();
      ++stats_.predecessor_gone;
      check_needed_ = true;
      return;
    }
    if (connection_trouble(e.ec) || e.ec == errc::throttled) {
      check_needed_ = true;
      return retry_later(e.ec, s);
    }
    if (session_closed_error(e.ec)) return;
    give_up(e.ec, s);
  }

  void on(const latch_ev::predecessor_changed& e, step&) {
    // A watch that ended with its session: the session transition handles that.
    if (e.ec) return;
    if (node_name(e.path) == watching_) watching_.clear();
    // Deleted (or its data changed, which consumed the watch too): list again.
    if (phase_ == phase::running && node_) check_needed_ = true;
  }

  void on(const latch_ev::removed& e, step& s) {
    ZKR_INVARIANT(removing_.contains(e.path), "leader_latch_fsm: a delete reply for a delete not in flight");
    removing_.erase(e.path);
    if (!e.ec || e.ec == errc::no_node) return success();
    if (session_closed_error(e.ec)) return;  // gone with the closed session
    if (connection_trouble(e.ec) || e.ec == errc::throttled) {
      to_remove_.insert(e.path);
      return retry_later(e.ec, s);
    }
    // Not ours to delete after all (no_auth ...): it stays until its session ends.
    ++stats_.removal_failures;
    if (closing_ && !close_error_) close_error_ = e.ec;
  }

  void on(const latch_ev::backoff_elapsed&, step&) { backing_off_ = false; }

  void on(const latch_ev::close&, step& s) {
    ZKR_INVARIANT(!closing_, "leader_latch_fsm: closed twice");
    closing_ = true;
    if (phase_ == phase::latent) phase_ = phase::withdrawing;  // nothing made: done at once
    if (phase_ == phase::running) withdraw(s);
    if (backing_off_) {
      // Deletes need not wait for a backoff of the request we no longer want.
      backing_off_ = false;
      s.a.cancel_backoff = true;
    }
    if (phase_ == phase::done) s.a.closed = close_error_;
  }

  // ---- the next request ----

  void reconcile(step& s) {
    if (phase_ == phase::latent || phase_ == phase::done) return;
    if (withdrawing() && (session_lost_ || session_closed_)) {
      // Nodes of a lost session are deleted by the server when it expires the session: a
      // closing latch does not wait for a new session that may never come.
      to_remove_.clear();
      create_unknown_ = false;
      candidate_.reset();
    }
    const bool can_send = connected_ && !backing_off_ && !session_closed_;
    if (can_send) {
      for (const auto& p : to_remove_) {
        removing_.insert(p);
        s.a.removals.push_back(p);
      }
      to_remove_.clear();
    }
    if (can_send && in_flight_ == latch_io::none) {
      if (create_unknown_) {
        if (candidate_) {
          issue(latch_io::read_candidate, path_of(*candidate_), s);
        } else {
          issue(latch_io::find, cfg_.latch_path, s);
        }
      } else if (phase_ == phase::running) {
        if (!node_) {
          if (parents_missing_) {
            issue(latch_io::create_parents, cfg_.latch_path, s);
          } else {
            ++stats_.creates;
            issue(latch_io::create, path_of(prefix_ + std::string(latch_marker)), s);
          }
        } else if (check_needed_) {
          check_needed_ = false;
          predecessor_.clear();
          issue(latch_io::list, cfg_.latch_path, s);
        } else if (!predecessor_.empty()) {
          if (predecessor_ == watching_) {
            // Its watch is still armed (the client re-registers watches after a reconnect
            // and fires those whose node went meanwhile): nothing to read.
            ++stats_.watch_kept;
            predecessor_.clear();
          } else {
            reading_ = std::exchange(predecessor_, std::string());
            issue(latch_io::read_predecessor, path_of(reading_), s);
          }
        }
      }
    }
    if (phase_ == phase::withdrawing && in_flight_ == latch_io::none && !create_unknown_ && to_remove_.empty() &&
        removing_.empty()) {
      phase_ = phase::done;
      if (closing_) s.a.closed = close_error_;
    }
  }

  void check_invariants(const latch_actions& a) const {
    ZKR_INVARIANT(!leader_ || (node_ && phase_ == phase::running), "leader_latch_fsm: a leader without a node");
    ZKR_INVARIANT(!(node_ && create_unknown_), "leader_latch_fsm: a node and an unknown create at once");
    ZKR_INVARIANT(!candidate_ || create_unknown_, "leader_latch_fsm: a candidate without an unknown create");
    ZKR_INVARIANT(phase_ != phase::done || (in_flight_ == latch_io::none && removing_.empty() && to_remove_.empty()), "leader_latch_fsm: done with work left");
    ZKR_INVARIANT(!withdrawing() || (!node_ && !leader_), "leader_latch_fsm: withdrawing yet holding a node");
    ZKR_INVARIANT(a.io == latch_io::none || a.io == in_flight_, "leader_latch_fsm: an action that is not the request in flight");
    ZKR_INVARIANT(!a.closed || (closing_ && phase_ == phase::done), "leader_latch_fsm: a close finished before it was done");
  }

  config cfg_;
  phase phase_ = phase::latent;
  std::string prefix_;
  bool closing_ = false;
  std::error_code failed_;
  std::error_code close_error_;

  bool connected_ = false;
  bool session_lost_ = false;    // lost, and no new session yet
  bool session_closed_ = false;  // the session was closed: nothing more can be sent
  std::int64_t session_id_ = 0;

  latch_io in_flight_ = latch_io::none;
  bool backing_off_ = false;
  int retries_ = 0;
  std::optional<time_point> failing_since_;
  int parent_attempts_ = 0;

  std::optional<our_node> node_;
  bool create_unknown_ = false;           // a create of ours may have been applied
  std::optional<std::string> candidate_;  // the node found by prefix, owner to be read
  bool parents_missing_ = false;
  bool check_needed_ = false;             // leadership must be checked by listing
  std::string predecessor_;               // to be read with a watch
  std::string reading_;                   // the predecessor being read
  std::string watching_;                  // the predecessor whose watch is armed
  bool leader_ = false;
  std::int64_t token_ = 0;

  std::set<std::string> to_remove_;  // our nodes to delete (full paths)
  std::set<std::string> removing_;   // deletes in flight
  leader_latch_stats stats_;
};

// ---- reading the contenders -----------------------------------------------------------------

/// async_get_participants / async_get_leader: lists the children, then reads each contender's
/// data in order (one request at a time); for the leader, stops at the first that exists.
template <class Session, bool LeaderOnly>
struct participants_op {
  Session& session;
  std::string latch_path;
  std::vector<std::string> nodes{};
  std::size_t next = 0;
  std::vector<participant> out{};

  template <class Self>
  void operator()(Self& self) {
    session.async_get_children(latch_path, std::move(self));
  }

  template <class Self>
  void operator()(Self& self, std::error_code ec, std::vector<std::string> children, zkr::stat) {
    if (ec == errc::no_node) return finish(self, {});  // no latch path: no contender
    if (ec) return finish(self, ec);
    nodes = sorted_contenders(std::move(children), latch_marker);
    read_next(self);
  }

  template <class Self>
  void operator()(Self& self, std::error_code ec, std::string data, zkr::stat st) {
    ZKR_INVARIANT(next > 0 && next <= nodes.size(), "participants_op: a read reply without a read");
    if (!ec) {
      out.push_back(participant{std::move(data), out.empty(), nodes[next - 1], st.czxid});
      if (LeaderOnly) return finish(self, {});
    } else if (ec != errc::no_node) {
      return finish(self, ec);  // a node gone meanwhile is skipped; anything else is reported
    }
    read_next(self);
  }

 private:
  template <class Self>
  void read_next(Self& self) {
    if (next == nodes.size()) return finish(self, {});
    const std::string p = join_path(latch_path, nodes[next++]);
    session.async_get(p, std::move(self));
  }

  template <class Self>
  void finish(Self& self, std::error_code ec) {
    // Free the temporaries before the handler runs.
    std::vector<std::string>().swap(nodes);
    auto result = std::move(out);
    if constexpr (LeaderOnly) {
      participant leader = result.empty() || ec ? participant{} : std::move(result.front());
      self.complete(ec, std::move(leader));
    } else {
      if (ec) result.clear();
      self.complete(ec, std::move(result));
    }
  }
};

// ---- the driver -----------------------------------------------------------------------------

/// Runs a leader_latch_fsm on a session. Lives in a shared_ptr: requests in flight keep it
/// alive; watches and the session subscription hold it weakly.
template <class Session>
class leader_latch_impl : public std::enable_shared_from_this<leader_latch_impl<Session>> {
 public:
  using executor_type = typename Session::executor_type;
  using timer_type = typename Session::timer_type;
  using await_pending = zkr::detail::pending<void(std::error_code, std::int64_t)>;
  using close_pending = zkr::detail::pending<void(std::error_code)>;

  leader_latch_impl(Session& s, std::string path, leader_latch_options o)
      : s_(s),
        path_(checked(std::move(path))),
        opts_(std::move(o)),
        fsm_({path_, opts_.keep_leadership_when_suspended, opts_.retry}),
        backoff_timer_(s.get_executor()) {}

  const leader_latch_options& options() const noexcept { return opts_; }
  const std::string& path() const noexcept { return path_; }
  executor_type get_executor() const { return s_.get_executor(); }

  // ---- snapshots (any thread) ----
  bool has_leadership() const noexcept {
    return state_.load() == latch_state::started && leader_.load();
  }
  std::int64_t fencing_token() const noexcept { return has_leadership() ? token_.load() : 0; }
  latch_state get_state() const noexcept { return state_.load(); }
  std::string our_path() const {
    std::lock_guard lock(mu_);
    return our_path_;
  }
  std::error_code error() const {
    std::lock_guard lock(mu_);
    return error_;
  }
  leader_latch_stats stats() const { return fsm_.stats(); }

  // ---- lifecycle ----
  void start() {
    auto expected = latch_state::latent;
    if (!state_.compare_exchange_strong(expected, latch_state::started)) {
      throw std::system_error(make_error_code(errc::invalid_state),
                              "zkr::recipes::leader_latch::start: the latch was started or closed before");
    }
    boost::asio::post(s_.get_executor(), [self = this->shared_from_this()] { self->on_start(); });
  }

  template <class Handler>
  void close(Handler&& handler) {
    close_pending h(std::forward<Handler>(handler), s_.get_executor());
    auto expected = latch_state::started;
    if (!state_.compare_exchange_strong(expected, latch_state::closed)) {
      // A latent or closed latch: a programmer error, reported (posted) as invalid_state.
      return std::move(h).post_complete(s_.get_executor(), make_error_code(errc::invalid_state));
    }
    boost::asio::post(s_.get_executor(), [self = this->shared_from_this(), h = std::move(h)]() mutable {
      self->close_handler_.emplace(std::move(h));
      self->on_close(/*silent=*/!self->opts_.notify_on_close);
    });
  }

  /// The latch handle is going: close in the background, tell nobody.
  void detach() {
    clear_listeners();
    auto expected = latch_state::started;
    if (!state_.compare_exchange_strong(expected, latch_state::closed)) return;
    boost::asio::post(s_.get_executor(), [self = this->shared_from_this()] { self->on_close(/*silent=*/true); });
  }

  // ---- await ----
  template <class Handler>
  void await(Handler&& handler, std::optional<std::chrono::milliseconds> timeout, boost::asio::cancellation_slot slot) {
    await_pending h(std::forward<Handler>(handler), s_.get_executor());
    boost::asio::post(s_.get_executor(), [self = this->shared_from_this(), h = std::move(h), timeout, slot]() mutable {
      self->on_await(std::move(h), timeout, slot);
    });
  }

  // ---- listeners ----
  subscription subscribe(leadership_listener fn) {
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

  // ---- participants ----
  template <class Token>
  auto async_get_leader(Token&& token) {
    return boost::asio::async_compose<Token, void(std::error_code, participant)>(
        participants_op<Session, true>{s_, path_}, token, s_.get_executor());
  }
  template <class Token>
  auto async_get_participants(Token&& token) {
    return boost::asio::async_compose<Token, void(std::error_code, std::vector<participant>)>(
        participants_op<Session, false>{s_, path_}, token, s_.get_executor());
  }

 private:
  struct listener_entry {
    explicit listener_entry(leadership_listener f) : fn(std::move(f)) {}
    leadership_listener fn;
    std::atomic<bool> active{true};
  };

  struct waiter {
    explicit waiter(await_pending p) : handler(std::move(p)) {}
    await_pending handler;
    std::unique_ptr<timer_type> timer;
    boost::asio::cancellation_slot slot;
  };

  static std::string checked(std::string path) {
    if (auto ec = validate_path(path)) {
      throw std::system_error(ec, "zkr::recipes::leader_latch: invalid latch path '" + path + "'");
    }
    return path;
  }

  // ---- on the executor ----

  void on_start() {
    std::weak_ptr<leader_latch_impl> weak = this->weak_from_this();
    sub_ = s_.subscribe([weak](const session_event& e) {
      if (auto self = weak.lock()) self->feed(latch_ev::session{e.state, self->s_.session_id()});
    });
    feed(latch_ev::start{make_protected_prefix(s_.random()), s_.state(), s_.session_id()});
  }

  void on_close(bool silent) {
    if (silent) clear_listeners();  // Curator's CloseMode.SILENT: listeners go before leadership does
    // Waiting for leadership ends with the latch (Curator's await throws EOFException).
    auto waiting = std::move(waiters_);
    waiters_.clear();
    for (auto& [id, w] : waiting) complete_waiter(w, make_error_code(errc::closing), 0);
    feed(latch_ev::close{});
  }

  void on_await(await_pending h, std::optional<std::chrono::milliseconds> timeout, boost::asio::cancellation_slot slot) {
    switch (state_.load()) {
      case latch_state::latent: return std::move(h).dispatch_complete(make_error_code(errc::invalid_state), 0);
      case latch_state::closed: return std::move(h).dispatch_complete(make_error_code(errc::closing), 0);
      case latch_state::started: break;
    }
    if (fsm_.failure()) return std::move(h).dispatch_complete(fsm_.failure(), 0);
    if (fsm_.leader()) return std::move(h).dispatch_complete(std::error_code{}, fsm_.token());
    const std::uint64_t id = next_waiter_++;
    waiter w(std::move(h));
    if (timeout && *timeout <= std::chrono::milliseconds::zero()) {
      return abort_waiter(std::move(w), make_error_code(errc::operation_timeout));
    }
    if (timeout) {
      w.timer = std::make_unique<timer_type>(s_.get_executor());
      w.timer->expires_after(*timeout);
      w.timer->async_wait([weak = this->weak_from_this(), id](std::error_code ec) {
        auto self = weak.lock();
        if (ec || !self) return;  // cancelled: the waiter completed otherwise
        self->abort_waiter(id, make_error_code(errc::operation_timeout));
      });
    }
    if (slot.is_connected()) {
      // Honoured: terminal, partial and total. The wait made nothing of its own, so ending it
      // leaves no side effect (withdraw_on_await_abort closes the latch as asked).
      w.slot = slot;
      slot.assign([weak = this->weak_from_this(), ex = s_.get_executor(), id](boost::asio::cancellation_type type) {
        if (type == boost::asio::cancellation_type::none) return;
        boost::asio::post(ex, [weak, id] {
          if (auto self = weak.lock()) self->abort_waiter(id, zkr::operation_aborted());
        });
      });
    }
    waiters_.emplace(id, std::move(w));
  }

  void abort_waiter(std::uint64_t id, std::error_code ec) {
    auto it = waiters_.find(id);
    if (it == waiters_.end()) return;  // completed meanwhile
    waiter w = std::move(it->second);
    waiters_.erase(it);
    abort_waiter(std::move(w), ec);
  }

  void abort_waiter(waiter w, std::error_code ec) {
    if (!opts_.withdraw_on_await_abort) return complete_waiter(w, ec, 0);
    // Withdraw first: the await completes once our node is gone.
    auto expected = latch_state::started;
    if (state_.compare_exchange_strong(expected, latch_state::closed)) on_close(/*silent=*/!opts_.notify_on_close);
    if (fsm_.done() && fsm_.closing()) return complete_waiter(w, ec, 0);
    after_close_.emplace_back(std::move(w), ec);
  }

  void complete_waiter(waiter& w, std::error_code ec, std::int64_t token) {
    if (w.timer) w.timer->cancel();
    if (w.slot.is_connected()) w.slot.clear();
    std::move(w.handler).dispatch_complete(ec, token);
  }

  void clear_listeners() {
    std::lock_guard lock(mu_);
    for (auto& l : listeners_) l->active.store(false);
    listeners_.clear();
  }

  void notify(const leadership_change& c) {
    std::vector<std::shared_ptr<listener_entry>> copy;
    {
      std::lock_guard lock(mu_);
      copy = listeners_;
    }
    for (const auto& l : copy) {
      if (l->active.load()) l->fn(c);
    }
  }

  /// Steps the FSM and performs its actions. An input that arrives while actions are being
  /// performed (a listener or handler that runs inline and makes the session report
  /// something) waits in a queue, so steps never nest and transitions keep their order.
  void feed(latch_event ev) {
    // A few inputs at most can arrive while one step is performed (a transition, a reply):
    // a long queue means something feeds back in a loop.
    ZKR_INVARIANT(queue_.size() < 64, "leader_latch: inputs feed back in a loop");
    queue_.push_back(std::move(ev));
    if (feeding_) return;
    feeding_ = true;
    struct reset_flag {
      bool& flag;
      ~reset_flag() { flag = false; }
    } guard{feeding_};
    while (!queue_.empty()) {
      latch_event next = std::move(queue_.front());
      queue_.pop_front();
      perform(fsm_.resume(next, s_.steady_now(), s_.random()));
    }
  }

  void perform(latch_actions a) {
    ZKR_INVARIANT(!a.leadership || a.leadership->is_leader == fsm_.leader(), "leader_latch: a transition the FSM does not hold");
    ZKR_INVARIANT(!a.closed || state_.load() == latch_state::closed, "leader_latch: a close finished without a close request");  // closes follow a close request
    {
      std::lock_guard lock(mu_);
      our_path_ = fsm_.our_path();
      if (a.failed) error_ = *a.failed;
    }
    if (a.leadership) {
      token_.store(a.leadership->token);
      leader_.store(a.leadership->is_leader);
      notify(*a.leadership);
      if (a.leadership->is_leader) {
        auto waiting = std::move(waiters_);
        waiters_.clear();
        for (auto& [id, w] : waiting) complete_waiter(w, {}, a.leadership->token);
      }
    }
    if (a.failed) {
      auto waiting = std::move(waiters_);
      waiters_.clear();
      for (auto& [id, w] : waiting) complete_waiter(w, *a.failed, 0);
    }
    if (a.cancel_backoff) {
      ++backoff_epoch_;
      backoff_timer_.cancel();
    }
    if (a.backoff) start_backoff(*a.backoff);
    for (auto& p : a.removals) start_remove(std::move(p));
    if (a.io != latch_io::none) start_io(a.io, std::move(a.io_path));
    if (a.closed) finish_close(*a.closed);
  }

  void finish_close(std::error_code ec) {
    ZKR_INVARIANT(fsm_.done() && fsm_.closing(), "leader_latch: finishing a close that is not done");
    ZKR_INVARIANT(waiters_.empty(), "leader_latch: awaits left at the end of a close");  // ended with closing when the close began
    ++backoff_epoch_;
    backoff_timer_.cancel();
    sub_.reset();
    clear_listeners();
    if (close_handler_) {
      auto h = std::move(*close_handler_);
      close_handler_.reset();
      std::move(h).dispatch_complete(ec);
    }
    auto after = std::move(after_close_);
    after_close_.clear();
    for (auto& [w, wec] : after) complete_waiter(w, wec, 0);
  }

  void start_backoff(std::chrono::milliseconds d) {
    const std::uint64_t epoch = ++backoff_epoch_;
    backoff_timer_.expires_after(d);
    backoff_timer_.async_wait([self = this->shared_from_this(), epoch](std::error_code) {
      if (epoch == self->backoff_epoch_) self->feed(latch_ev::backoff_elapsed{});
    });
  }

  void start_remove(std::string path) {
    s_.async_remove(path, -1, [self = this->shared_from_this(), path](std::error_code ec) {
      self->feed(latch_ev::removed{ec, path});
    });
  }

  void start_io(latch_io io, std::string path) {
    ZKR_INVARIANT(io == fsm_.in_flight(), "leader_latch: starting a request the FSM does not expect");
    ZKR_INVARIANT(!path.empty() && path.front() == '/', "leader_latch: a request without an absolute path");
    auto self = this->shared_from_this();
    switch (io) {
      case latch_io::none: return;
      case latch_io::create:
        s_.async_create(path, opts_.id, create_options{create_mode::ephemeral_sequential, opts_.acl, {}},
                        [self](std::error_code ec, std::string p, zkr::stat st) {
                          self->feed(latch_ev::created{ec, std::move(p), st});
                        });
        return;
      case latch_io::create_parents: {
        // Each ancestor, then the latch path, as containers; node_exists is fine.
        auto levels = std::make_shared<std::vector<std::string>>();
        for (std::string_view p = path; p.size() > 1; p = parent_path(p)) levels->emplace_back(p);
        std::reverse(levels->begin(), levels->end());
        create_parent(std::move(levels), 0);
        return;
      }
      case latch_io::list:
        s_.async_get_children(path, [self](std::error_code ec, std::vector<std::string> c, zkr::stat) {
          self->feed(latch_ev::listed{ec, std::move(c)});
        });
        return;
      case latch_io::find:
        s_.async_get_children(path, [self](std::error_code ec, std::vector<std::string> c, zkr::stat) {
          self->feed(latch_ev::found{ec, std::move(c)});
        });
        return;
      case latch_io::read_candidate:
        s_.async_exists(path, [self](std::error_code ec, zkr::stat st) { self->feed(latch_ev::candidate_read{ec, st}); });
        return;
      case latch_io::read_predecessor:
        // getData, not exists: a missing node then leaves no watch behind (Curator's choice).
        s_.async_get(
            path,
            watch_handler([weak = this->weak_from_this()](std::error_code ec, watch_event ev) {
              if (auto me = weak.lock()) me->feed(latch_ev::predecessor_changed{ec, std::move(ev.path)});
            }),
            [self](std::error_code ec, std::string, zkr::stat) { self->feed(latch_ev::predecessor_read{ec}); });
        return;
    }
  }

  void create_parent(std::shared_ptr<std::vector<std::string>> levels, std::size_t i) {
    if (i == levels->size()) {
      // Nothing to create (the latch path is "/"): still complete through the executor.
      boost::asio::post(s_.get_executor(),
                        [self = this->shared_from_this()] { self->feed(latch_ev::parents_created{}); });
      return;
    }
    const std::string p = (*levels)[i];
    s_.async_create(p, "", create_options{create_mode::container, open_acl_unsafe(), {}},
                    [self = this->shared_from_this(), levels, i](std::error_code ec, std::string, zkr::stat) mutable {
                      if (ec && ec != errc::node_exists) return self->feed(latch_ev::parents_created{ec});
                      if (i + 1 == levels->size()) return self->feed(latch_ev::parents_created{});
                      self->create_parent(std::move(levels), i + 1);
                    });
  }

  Session& s_;
  const std::string path_;
  const leader_latch_options opts_;
  leader_latch_fsm fsm_;
  timer_type backoff_timer_;
  std::uint64_t backoff_epoch_ = 0;
  subscription sub_;
  bool feeding_ = false;
  std::deque<latch_event> queue_;

  std::atomic<latch_state> state_{latch_state::latent};
  std::atomic<bool> leader_{false};
  std::atomic<std::int64_t> token_{0};

  std::map<std::uint64_t, waiter> waiters_;
  std::uint64_t next_waiter_ = 1;
  std::vector<std::pair<waiter, std::error_code>> after_close_;
  std::optional<close_pending> close_handler_;

  mutable std::mutex mu_;  // guards the snapshots below and the listener list
  std::string our_path_;
  std::error_code error_;
  std::vector<std::shared_ptr<listener_entry>> listeners_;
};

}  // namespace zkr::recipes::detail
