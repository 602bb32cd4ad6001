// zkr/recipes/impl/mutex.hpp: the distributed mutex's logic (see zkr/recipes/mutex.hpp).
//
// Two layers:
//   - `detail::mutex_fsm`: the algorithm, sans-IO. It owns what one contender knows (its node,
//     its predecessor, which watches are armed and in which connection epoch) and answers
//     every input (a reply, a watch event, a session transition, the user's start, abort and
//     release) with one `mutex_action`: at most one backend call to make, plus what to report
//     (the acquire's completion, a lock event, nodes to delete in the background). Tests step
//     it by hand.
//   - `detail::mutex_core<Session>`: the driver. It lives on the session's executor, makes the
//     backend calls the FSM asks for and feeds the replies back, queues local acquires (one
//     contender per mutex object), counts re-entrant holds, runs the timeouts and the
//     per-operation cancellation, and deletes orphaned nodes in the background.
//
// ---------------------------------------------------------------------------------------------
// Why a waiter may take the lock on its predecessor's deletion without a new listing
// ---------------------------------------------------------------------------------------------
// Curator's LockInternals and kazoo's Lock list the children again after every wake-up: one
// round trip per hand-off. zkr skips that listing when the waiter's last listing showed exactly
// one contender below its own node (its predecessor p) and the following hold, all in the same
// *connection epoch* (no `suspended` or `lost` in between; the epoch counts those transitions):
//   (a) the listing L was answered in epoch E,
//   (b) a getData watch on our own node n was registered in epoch E (the read that set it said
//       n exists), and has not fired since,
//   (c) the deletion of p is reported in epoch E: its watch event, or a getData(p) answered
//       no_node after L.
// Claim: when (a)-(c) hold, n is the lowest contender at the zxid z_d of p's deletion, so the
// waiter holds the lock exactly as if it had listed again.
// Proof sketch. One connection delivers replies and watch events in zxid order, and a watch
// event before any reply that shows its change (ZooKeeper's ordering guarantee; the backends
// keep it, docs/backend.md). Let z_L be the zxid L reflects.
//   1. At z_L the contenders below n were exactly {p} (L is a consistent view of the parent
//      that contains n).
//   2. n still exists at z_d. Its watch was registered before z_L (b); had n been deleted
//      between then and z_d, its deletion event (zxid < z_d) would have reached us before
//      p's, on the same connection (c), and the FSM forgets n on that event (so it never acts
//      on p's afterwards). Had it been deleted before the watch, the read setting it would
//      have said no_node.
//   3. No contender created after z_L sorts below n. Sequence numbers come from the parent's
//      child-create counter, which only grows while the parent exists. The parent cannot be
//      deleted and re-created between n's creation and z_d, because n is its child all that
//      time (2) and ZooKeeper refuses to delete a node with children. The counter is an int32
//      that wraps after 2^31 creates; zkr refuses to contend with a node whose sequence is
//      negative or not 10 digits (errc::sequence_exhausted; after the wrap ZooKeeper names
//      nodes "-2147483648", 11 characters, which no contender counts as a lock node), so a
//      contender created after the wrap never believes it holds, whatever its name sorts as.
//   4. By 1 and 3 the contenders below n between z_L and z_d are a subset of {p}; p is gone at
//      z_d, and n exists at z_d (2): n is the lowest. The deletion's cause does not matter: p's
//      owner released, timed out, was cancelled, or its session expired. In the last case p's
//      owner stopped believing at its own `suspended` (default policy), before the ensemble
//      expired its session, which is the classic recipe's timing assumption too.
// Anything else takes a fresh listing: a listing with two or more contenders below n, any
// transition since (a)/(b) (after a reconnect the re-registered watches fire in table order,
// not zxid order, so 2 would not hold), a data-change event on p or n, an own watch that
// fired and is being re-armed, or a read error. A fresh listing is always safe; the shortcut
// only removes the round trip that Curator and kazoo pay on every hand-off.
//
// Stalls. The argument is about the ensemble's history; acting on it also needs our session
// to be alive when we act. A fresh listing proves that (its reply comes back only on a live
// session); an event found in the queue does not: a waiter frozen (GC pause) for longer than
// the session timeout may wake to p's deletion event, queued before its own session expired
// and its node went. So the driver ticks every quarter of the negotiated timeout while
// contending, and a tick that finds the previous one more than half a timeout ago (or an
// event that does) starts a new epoch (`on_stall`): the shortcut is off until the next
// listing. A session cannot expire in less than two thirds of its timeout of silence (the
// client pings every third), so such a stall is always noticed. Without this guard the
// shortcut would widen the classic GC-pause hazard (a reply processed after a long pause)
// from one round trip per hand-off to the whole wait. The same check closes that classic
// hazard too, which Curator has: a listing answered before a stall (or a suspension) but read
// after it is not trusted; the contender lists again, and only a live session answers.
//
// Thread safety: the FSM and the core belong to the session's executor (strand). The core's
// snapshot fields (held, token) are atomics, readable from any thread.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <list>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/post.hpp>

#include <zkr/backend.hpp>
#include <zkr/detail/pending.hpp>
#include <zkr/error.hpp>
#include <zkr/random.hpp>
#include <zkr/recipes/impl/invariant.hpp>
#include <zkr/recipes/mutex.hpp>
#include <zkr/recipes/protected_name.hpp>
#include <zkr/types.hpp>

namespace zkr::recipes::detail {

/// Curator's lock-node marker (InterProcessMutex's LOCK_NAME).
inline constexpr std::string_view lock_marker = "lock-";

/// The one backend call an FSM step asks for.
enum class mutex_io : std::uint8_t {
  none,            ///< wait for an input
  create,          ///< create <path>/<prefix>lock- (ephemeral sequential) with the prefix in `name`
  create_parents,  ///< create the lock path and its missing ancestors as containers
  find,            ///< sync, then list: find our node by its prefix after an unknown create outcome
  read_found,      ///< getData(name) with the own watch `watch_id`: adopt only if ours
  check,           ///< [getData(own node) with the own watch, if read_own] then list the children
  read_own,        ///< getData(own node) with the own watch `watch_id`
  read_pred,       ///< getData(name) with the predecessor watch `watch_id`
  remove,          ///< delete name (any version)
  backoff,         ///< wait `delay`, then report on_backoff_done
};

constexpr std::string_view to_string(mutex_io io) noexcept {
  switch (io) {
    case mutex_io::none: return "none";
    case mutex_io::create: return "create";
    case mutex_io::create_parents: return "create_parents";
    case mutex_io::find: return "find";
    case mutex_io::read_found: return "read_found";
    case mutex_io::check: return "check";
    case mutex_io::read_own: return "read_own";
    case mutex_io::read_pred: return "read_pred";
    case mutex_io::remove: return "remove";
    case mutex_io::backoff: return "backoff";
  }
  return "?";
}

/// What one FSM step asks the driver to do. Several parts may be set at once; the driver
/// applies them in this order: notify, orphans, complete/release_done, interrupt, io.
struct mutex_action {
  mutex_io io = mutex_io::none;
  std::string name;            ///< create: the prefix; reads and remove: the child name
  bool read_own = false;       ///< check: also read our node with the own watch, first
  std::string own;             ///< check/read_own: our child name
  std::uint64_t watch_id = 0;  ///< the watch to attach (read_found, check with read_own, read_own, read_pred)
  std::chrono::milliseconds delay{0};  ///< backoff

  bool interrupt = false;      ///< cancel the backoff in progress (it reports on_backoff_done)
  bool complete = false;       ///< the contending acquire completes with (ec, token)
  std::error_code ec;
  std::int64_t token = 0;
  bool release_done = false;   ///< the release in progress completes with release_ec
  std::error_code release_ec;
  std::optional<lock_event> notify;          ///< tell the listeners
  std::vector<std::string> orphan_names;     ///< delete these children in the background
  std::vector<std::string> orphan_prefixes;  ///< find and delete children with these prefixes in the background
};

/// The contender's algorithm, sans-IO. Inputs are method calls; each returns what to do.
/// Invariants: at most one backend call (or backoff) in flight; the acquire completes at most
/// once per start(); `holding` only with a known node.
class mutex_fsm {
 public:
  struct config {
    bool hold_through_suspended = false;
    bool sole_predecessor_handoff = true;
    /// Delay before retry number `n` (0-based) of a failed step, nullopt to give up.
    std::function<std::optional<std::chrono::milliseconds>(int)> retry = [](int) {
      return std::optional<std::chrono::milliseconds>{};
    };
  };

  enum class phase : std::uint8_t {
    idle,        ///< no node of ours, nothing to do
    contending,  ///< an acquire wants the lock
    holding,     ///< we hold it
    dropping,    ///< our node must go (release, abort, lost hold); then idle
  };

  mutex_fsm(config c, prng& rng) : cfg_(std::move(c)), rng_(&rng) {}

  // ---- snapshots ----------------------------------------------------------------------------
  phase current() const noexcept { return phase_; }
  /// True when a new acquire may start: nothing to do and nothing in flight.
  bool ready() const noexcept { return phase_ == phase::idle && !busy_; }
  bool busy() const noexcept { return busy_; }
  mutex_io in_flight() const noexcept { return busy_ ? busy_io_ : mutex_io::none; }
  const std::string& node() const noexcept { return node_; }
  const std::string& prefix() const noexcept { return prefix_; }
  std::int64_t token() const noexcept { return czxid_; }
  std::uint64_t epoch() const noexcept { return epoch_; }
  /// How many hand-offs took the lock without a new listing (the optimisation), so far.
  std::uint64_t shortcut_handoffs() const noexcept { return shortcuts_; }
  /// How many nodes were adopted after a create's reply was lost (found by prefix, ours).
  std::uint64_t adoptions() const noexcept { return adoptions_; }

  // ---- user inputs ---------------------------------------------------------------------------

  /// An acquire starts contending. `connected`: the session's state allows requests now.
  mutex_action start(bool connected) {
    ZKR_INVARIANT(ready(), "mutex_fsm::start while not ready");
    ZKR_INVARIANT(node_.empty() && !maybe_created_, "mutex_fsm::start with a node");
    phase_ = phase::contending;
    connected_ = connected;
    prefix_ = make_protected_prefix(*rng_);
    reset_knowledge();
    retries_ = 0;
    renewals_ = 0;
    parents_tried_ = false;
    abort_ec_.reset();
    deadline_ec_.reset();
    return next();
  }

  /// Stop contending now (cancellation): the acquire completes with `why` once no node of
  /// ours is left. No effect unless contending.
  mutex_action abort(std::error_code why) {
    mutex_action a;
    if (phase_ != phase::contending) return a;
    ZKR_INVARIANT(static_cast<bool>(why), "mutex_fsm::abort without a reason");
    abort_ec_ = why;
    phase_ = phase::dropping;
    a.interrupt = busy_ && busy_io_ == mutex_io::backoff;
    return merge(std::move(a), next());
  }

  /// The deadline passed: stop contending as soon as we would wait (after the step in flight,
  /// so that a zero timeout still makes one full attempt, as Curator's acquire(0)).
  mutex_action deadline(std::error_code why) {
    mutex_action a;
    if (phase_ != phase::contending) return a;
    deadline_ec_ = why;
    if (busy_ && busy_io_ == mutex_io::backoff) return abort(why);
    if (busy_) return a;
    return next();
  }

  /// The holder releases (its last re-entrant level). No effect unless holding.
  mutex_action release() {
    mutex_action a;
    if (phase_ != phase::holding) {
      a.release_done = true;  // nothing held: nothing to delete
      return a;
    }
    phase_ = phase::dropping;
    releasing_ = true;
    a.notify = lock_event{lock_event_kind::released, czxid_, {}};
    return merge(std::move(a), next());
  }

  // ---- replies -------------------------------------------------------------------------------

  mutex_action on_created(std::error_code ec, std::string_view name, const zkr::stat& st) {
    expect(mutex_io::create);
    mutex_action a;
    if (stale()) {  // sent in a session that is gone: anything it created is an orphan
      if (!ec) a.orphan_names.emplace_back(name);
      return merge(std::move(a), next());
    }
    if (ec == errc::connection_loss || ec == errc::operation_timeout) {
      maybe_created_ = true;  // outcome unknown: find it by its prefix before anything else
      return retry(ec);
    }
    if (!ec) {
      retries_ = 0;
      node_ = std::string(name);
      czxid_ = st.czxid;
      need_check_ = true;
      if (phase_ == phase::contending && !valid_sequence(node_)) {
        return fail(make_error_code(errc::sequence_exhausted));
      }
      return next();  // dropping: next() deletes it
    }
    if (phase_ != phase::contending) return next();  // nothing was created
    if (ec == errc::no_node && !parents_tried_) {
      parents_tried_ = true;
      return issue(mutex_io::create_parents);
    }
    if (ec == errc::throttled) return retry(ec);
    return fail(ec);
  }

  mutex_action on_parents(std::error_code ec) {
    expect(mutex_io::create_parents);
    if (stale() || phase_ != phase::contending) return next();
    if (ec == errc::connection_loss || ec == errc::operation_timeout || ec == errc::throttled) return retry(ec);
    if (ec) return fail(ec);
    return next();
  }

  /// The listing after `sync`, looking for a node with our prefix.
  mutex_action on_found(std::error_code ec, const std::vector<std::string>& children) {
    expect(mutex_io::find);
    mutex_action a;
    if (stale()) return next();
    if (ec == errc::connection_loss || ec == errc::operation_timeout || ec == errc::throttled) return retry(ec);
    if (ec == errc::no_node) {  // no parent: nothing was created
      maybe_created_ = false;
      return next();
    }
    if (ec) {
      // Cannot look: leave it to the background cleanup (it retries on reconnects).
      a.orphan_prefixes.push_back(prefix_);
      maybe_created_ = false;
      if (phase_ == phase::contending) return merge(std::move(a), fail(ec));
      return merge(std::move(a), next());
    }
    retries_ = 0;
    maybe_created_ = false;
    // Every child with our prefix is ours (the uuid is unique), whatever its suffix: a create
    // that landed after the int32 wrap has an 11-character one and must go too.
    std::vector<std::string> mine;
    for (const auto& c : children) {
      if (has_prefix(c, prefix_)) mine.push_back(c);
    }
    if (phase_ != phase::contending) {
      ghosts_.insert(ghosts_.end(), mine.begin(), mine.end());  // dropping: every one goes
      return next();
    }
    if (const auto found = find_protected(children, prefix_, lock_marker)) {
      for (const auto& m : mine) {
        if (m != *found) ghosts_.push_back(m);
      }
      found_ = *found;
      return issue_read(mutex_io::read_found, *found, own_watch_id_ = new_watch_id());
    }
    return next();  // not created: create again (same prefix)
  }

  /// getData on the node found by prefix. Adopt it only if our current session owns it.
  mutex_action on_found_read(std::error_code ec, const zkr::stat& st, std::int64_t session_id) {
    expect(mutex_io::read_found);
    mutex_action a;
    std::string found = std::exchange(found_, {});
    if (stale()) {
      if (!ec) a.orphan_names.push_back(found);
      return merge(std::move(a), next());
    }
    if (ec == errc::connection_loss || ec == errc::operation_timeout || ec == errc::throttled) {
      maybe_created_ = true;  // look again
      return retry(ec);
    }
    if (ec == errc::no_node) return next();  // gone meanwhile: create again
    if (ec) {
      a.orphan_names.push_back(found);
      return merge(std::move(a), phase_ == phase::contending ? fail(ec) : next());
    }
    retries_ = 0;
    if (phase_ != phase::contending || st.ephemeral_owner != session_id || session_id == 0) {
      // Not ours to keep: dropping anyway, or a node an earlier session of ours created
      // (its create's reply was lost with that session). Delete it; contend with a new prefix
      // so that a late listing cannot confuse the two.
      ghosts_.push_back(found);
      own_watch_id_ = 0;  // the watch set by this read is on a node we delete
      if (phase_ == phase::contending) prefix_ = make_protected_prefix(*rng_);
      return next();
    }
    node_ = std::move(found);
    czxid_ = st.czxid;
    ++adoptions_;
    own_armed_epoch_ = sent_epoch_;
    need_check_ = true;
    if (!valid_sequence(node_)) return fail(make_error_code(errc::sequence_exhausted));
    return next();
  }

  /// getData on our own node with the own watch: alone (read_own) or first half of a check.
  mutex_action on_own_read(std::error_code ec, const zkr::stat& st) {
    ZKR_INVARIANT(busy_ && (busy_io_ == mutex_io::read_own || (busy_io_ == mutex_io::check && check_parts_ == 2)),
                  "mutex_fsm::on_own_read without a read in flight");
    const bool alone = busy_io_ == mutex_io::read_own;
    if (!alone) {
      check_parts_ = 1;  // the listing follows
      if (stale()) return {};
      if (!ec) {
        own_armed_epoch_ = sent_epoch_;
      } else if (ec == errc::no_node) {
        own_gone_in_check_ = true;  // handled with the listing's reply
      }
      // Other errors: the listing on the same connection fails the same way.
      return {};
    }
    busy_ = false;
    if (stale()) return next();
    if (ec == errc::connection_loss || ec == errc::operation_timeout || ec == errc::throttled) return retry(ec);
    if (ec == errc::no_node) return own_node_gone();
    if (ec) {
      if (phase_ == phase::holding) return lose_hold(ec, false);
      return phase_ == phase::contending ? fail(ec) : next();
    }
    retries_ = 0;
    (void)st;
    own_armed_epoch_ = sent_epoch_;
    mutex_action a;
    if (phase_ == phase::holding && hold_suspended_ && sent_epoch_ == epoch_) {
      hold_suspended_ = false;
      a.notify = lock_event{lock_event_kind::reconnected, czxid_, {}};
    }
    return merge(std::move(a), next());
  }

  /// The children of the lock path (second half of a check).
  mutex_action on_listed(std::error_code ec, const std::vector<std::string>& children) {
    ZKR_INVARIANT(busy_ && busy_io_ == mutex_io::check && check_parts_ == 1, "mutex_fsm::on_listed out of order");
    busy_ = false;
    const bool own_gone = std::exchange(own_gone_in_check_, false);
    if (stale()) return next();
    if (ec == errc::connection_loss || ec == errc::operation_timeout || ec == errc::throttled) return retry(ec);
    if (phase_ != phase::contending) return next();  // aborted meanwhile: the listing is moot
    if (own_gone || own_deleted_ || ec == errc::no_node) return own_node_gone();  // no parent: no node either
    if (ec) return fail(ec);
    retries_ = 0;
    if (sent_epoch_ != epoch_) {
      // Sent before a suspension or a stall and answered before it, but read after it: the
      // session that answered may be gone by now (a frozen process reading an old reply).
      // Ask again; the new answer comes only from a live session. (Curator trusts it.)
      need_check_ = true;
      return next();
    }
    const auto sorted = sorted_contenders(children, lock_marker);
    for (const auto& c : children) {
      if (c != node_ && has_prefix(c, prefix_)) ghosts_.push_back(c);
    }
    const auto it = std::find(sorted.begin(), sorted.end(), node_);
    if (it == sorted.end()) return own_node_gone();
    need_check_ = false;
    if (it == sorted.begin()) return become_holder(false);
    const auto below = static_cast<std::size_t>(it - sorted.begin());
    pred_ = *(it - 1);
    sole_pred_ = below == 1;
    listing_epoch_ = sent_epoch_;
    pred_watch_id_ = 0;  // a watch from an earlier listing must not count for this one
    pred_armed_ = false;
    return next();
  }

  /// getData on the predecessor with its watch.
  mutex_action on_pred_read(std::error_code ec) {
    expect(mutex_io::read_pred);
    if (stale()) return next();
    if (ec == errc::connection_loss || ec == errc::operation_timeout || ec == errc::throttled) {
      need_check_ = true;
      return retry(ec);
    }
    if (phase_ != phase::contending) return next();
    if (ec == errc::no_node) {
      // Gone already. Shortcut (b): the read was answered after the listing, in its epoch.
      if (shortcut_allowed(sent_epoch_)) return become_holder(true);
      need_check_ = true;
      return next();
    }
    if (ec) return fail(ec);
    retries_ = 0;
    pred_armed_ = true;
    return next();
  }

  mutex_action on_removed(std::error_code ec) {
    expect(mutex_io::remove);
    mutex_action a;
    std::string name = std::exchange(removing_, {});
    const bool ghost = name != node_;
    if (ghost) {
      std::erase(ghosts_, name);
      if (ec == errc::connection_loss || ec == errc::operation_timeout || ec == errc::throttled) {
        a.orphan_names.push_back(name);  // the background cleanup retries it
      }
      return merge(std::move(a), next());
    }
    if (stale()) {
      if (ec && ec != errc::no_node) a.orphan_names.push_back(name);
      node_.clear();
      return merge(std::move(a), next());
    }
    if (ec == errc::connection_loss || ec == errc::operation_timeout || ec == errc::throttled) return retry(ec);
    if (ec && ec != errc::no_node) {
      // Cannot delete it (e.g. no_auth): it goes with our session. Report it on release.
      release_ec_ = ec;
    }
    retries_ = 0;
    node_.clear();
    czxid_ = 0;
    return next();
  }

  mutex_action on_backoff_done() {
    expect(mutex_io::backoff);
    return next();
  }

  // ---- watches -------------------------------------------------------------------------------

  /// The watch on our own node fired (or ended with its session: ec set).
  mutex_action on_own_watch(std::uint64_t id, std::error_code ec, const watch_event& ev) {
    if (id == 0 || id != own_watch_id_) return {};
    own_watch_id_ = 0;
    own_armed_epoch_.reset();
    if (ec) return {};  // the session ended: its transition says what that means
    if (ev.type == event_type::deleted) {
      if (busy_) {
        // A reply is on its way; the node is gone whatever it says.
        own_deleted_ = true;
        return {};
      }
      return own_node_gone();
    }
    return next();  // data changed: re-arm (the shortcut is off until then)
  }

  /// The watch on the predecessor fired (or ended with its session: ec set).
  mutex_action on_pred_watch(std::uint64_t id, std::error_code ec, const watch_event& ev) {
    if (id == 0 || id != pred_watch_id_) return {};
    pred_watch_id_ = 0;
    pred_armed_ = false;
    if (ec || phase_ != phase::contending) return {};
    // Shortcut (a): p's deletion reported in the epoch of the listing and of the own watch.
    if (ev.type == event_type::deleted && shortcut_allowed(epoch_)) return become_holder(true);
    need_check_ = true;
    if (busy_) return {};
    return next();
  }

  /// The executor did not run for a long while (a GC pause, a starved executor): an event
  /// found on waking may be older than the session timeout, and the session may have expired
  /// meanwhile. A new epoch: the shortcut does not trust anything from before; a fresh
  /// listing (a round trip, which fails if the session is gone) decides instead.
  mutex_action on_stall() {
    ++epoch_;
    ++stalls_;
    return {};
  }
  std::uint64_t stalls() const noexcept { return stalls_; }

  // ---- session -------------------------------------------------------------------------------

  mutex_action on_session(const session_event& ev) {
    mutex_action a;
    switch (ev.state) {
      case session_state::connecting: return a;
      case session_state::connected:
      case session_state::reconnected:
        connected_ = true;
        if (phase_ == phase::contending) need_check_ = true;
        return busy_ ? a : next();
      case session_state::suspended:
        ++epoch_;  // every piece of knowledge from the old connection loses the shortcut
        connected_ = false;
        if (phase_ == phase::holding) {
          if (cfg_.hold_through_suspended) {
            hold_suspended_ = true;
            a.notify = lock_event{lock_event_kind::suspended, czxid_, make_error_code(errc::connection_loss)};
            return a;
          }
          // Curator 5's default: we MAY no longer hold. The hold ends now; the node is deleted
          // once we can (by the background cleanup, as we are disconnected).
          return lose_hold(make_error_code(errc::connection_loss), false);
        }
        if (phase_ == phase::contending) need_check_ = true;
        return busy_ ? a : next();
      case session_state::lost:
        ++epoch_;
        ++generation_;
        connected_ = false;
        return session_over(ev.reason ? ev.reason : make_error_code(errc::session_expired));
      case session_state::closed:
        ++epoch_;
        ++generation_;
        connected_ = false;
        closed_ = true;
        return session_over(make_error_code(errc::closing));
    }
    return a;
  }

 private:
  // ---- the step function -----------------------------------------------------------------------

  /// What to do now, from the state alone (called whenever nothing is in flight).
  mutex_action next() {
    if (busy_) return {};
    switch (phase_) {
      case phase::idle: return {};
      case phase::dropping: return next_dropping();
      case phase::contending: return next_contending();
      case phase::holding: return next_holding();
    }
    return {};
  }

  mutex_action next_dropping() {
    mutex_action a;
    if (own_deleted_) {
      own_deleted_ = false;
      node_.clear();
    }
    if (!connected_ && (maybe_created_ || !node_.empty() || !ghosts_.empty())) {
      // Disconnected: hand the deletion to the background cleanup (it runs on reconnect, and
      // in the next session if this one is lost) rather than hold the caller hostage.
      if (maybe_created_) a.orphan_prefixes.push_back(prefix_);
      if (!node_.empty()) a.orphan_names.push_back(node_);
      a.orphan_names.insert(a.orphan_names.end(), ghosts_.begin(), ghosts_.end());
      ghosts_.clear();
      node_.clear();
      maybe_created_ = false;
    }
    if (maybe_created_) return issue(mutex_io::find);
    if (!ghosts_.empty()) return issue_remove(ghosts_.front());
    if (!node_.empty()) return issue_remove(node_);
    // Nothing of ours is left.
    phase_ = phase::idle;
    czxid_ = 0;
    if (abort_ec_) {
      a.complete = true;
      a.ec = *std::exchange(abort_ec_, std::nullopt);
    }
    if (std::exchange(releasing_, false)) {
      a.release_done = true;
      a.release_ec = std::exchange(release_ec_, {});
    }
    reset_knowledge();
    return a;
  }

  mutex_action next_contending() {
    if (own_deleted_) return own_node_gone();
    if (!connected_) return wait_or_give_up();
    if (maybe_created_) return issue(mutex_io::find);
    if (!ghosts_.empty()) return issue_remove(ghosts_.front());
    if (node_.empty()) return issue_create();
    if (need_check_) {
      mutex_action a = issue(mutex_io::check);
      a.own = node_;
      a.read_own = own_armed_epoch_ != epoch_;
      if (a.read_own) a.watch_id = own_watch_id_ = new_watch_id();
      check_parts_ = a.read_own ? 2 : 1;
      return a;
    }
    if (own_armed_epoch_ != epoch_) {
      mutex_action a = issue_read(mutex_io::read_own, node_, own_watch_id_ = new_watch_id());
      a.own = node_;
      return a;
    }
    if (!pred_.empty() && !pred_armed_) return issue_read(mutex_io::read_pred, pred_, pred_watch_id_ = new_watch_id());
    return wait_or_give_up();
  }

  mutex_action next_holding() {
    if (own_deleted_) return own_node_gone();
    // Re-arm the own watch (it fired with a data change), or verify the node after a
    // reconnect (hold_through_suspended), once connected.
    if (connected_ && own_armed_epoch_ != epoch_) {
      mutex_action a = issue_read(mutex_io::read_own, node_, own_watch_id_ = new_watch_id());
      a.own = node_;
      return a;
    }
    return {};
  }

  /// Nothing to send: wait for an event, unless the deadline has passed.
  mutex_action wait_or_give_up() {
    if (deadline_ec_) return abort(*deadline_ec_);
    return {};
  }

  // ---- transitions -----------------------------------------------------------------------------

  mutex_action become_holder(bool shortcut) {
    ZKR_INVARIANT(phase_ == phase::contending && !node_.empty(), "mutex_fsm: holder without a node");
    ZKR_INVARIANT(czxid_ != 0, "mutex_fsm: holder without a fencing token");
    phase_ = phase::holding;
    if (shortcut) ++shortcuts_;
    pred_.clear();
    pred_watch_id_ = 0;
    pred_armed_ = false;
    need_check_ = false;
    deadline_ec_.reset();
    hold_suspended_ = false;
    mutex_action a;
    a.notify = lock_event{lock_event_kind::acquired, czxid_, {}};
    a.complete = true;
    a.token = czxid_;
    return merge(std::move(a), next());
  }

  /// The hold ends for `why`; `gone`: the node is known to be gone already.
  mutex_action lose_hold(std::error_code why, bool gone) {
    ZKR_INVARIANT(phase_ == phase::holding, "mutex_fsm::lose_hold while not holding");
    mutex_action a;
    a.notify = lock_event{lock_event_kind::lost, czxid_, why};
    if (gone) node_.clear();
    phase_ = phase::dropping;
    return merge(std::move(a), next());
  }

  /// Our node disappeared (deleted by someone else, or its parent with it).
  mutex_action own_node_gone() {
    own_deleted_ = false;
    own_armed_epoch_.reset();
    own_watch_id_ = 0;
    switch (phase_) {
      case phase::holding: return lose_hold(make_error_code(errc::no_node), true);
      case phase::contending: {
        node_.clear();
        czxid_ = 0;
        reset_knowledge();
        // Curator: "Sequential path not found" -> retry per the policy with a new node. Counted
        // apart from the per-step retries (which every successful reply resets), so that a
        // node that keeps vanishing ends the acquire instead of looping.
        if (!cfg_.retry(renewals_++)) return fail(make_error_code(errc::no_node));
        prefix_ = make_protected_prefix(*rng_);
        return next();
      }
      case phase::dropping: node_.clear(); return next();
      case phase::idle: return {};
    }
    return {};
  }

  /// The session is over (lost or closed): a hold ends, an acquire fails, and whatever we
  /// created in it is left to the background cleanup (a presumed-lost session may still be
  /// alive on the servers, with our node).
  mutex_action session_over(std::error_code why) {
    mutex_action a;
    const bool maybe = maybe_created_ || (busy_ && busy_io_ == mutex_io::create);
    if (!closed_) {
      if (maybe) a.orphan_prefixes.push_back(prefix_);
      if (!node_.empty()) a.orphan_names.push_back(node_);
      a.orphan_names.insert(a.orphan_names.end(), ghosts_.begin(), ghosts_.end());
    }
    ghosts_.clear();
    node_.clear();
    maybe_created_ = false;
    own_deleted_ = false;
    switch (phase_) {
      case phase::holding: a.notify = lock_event{lock_event_kind::lost, czxid_, why}; break;
      case phase::contending:
        abort_ec_ = why;
        a.interrupt = busy_ && busy_io_ == mutex_io::backoff;
        break;
      case phase::dropping:
      case phase::idle: break;
    }
    if (phase_ != phase::idle) phase_ = phase::dropping;
    return merge(std::move(a), next());
  }

  mutex_action fail(std::error_code ec) {
    ZKR_INVARIANT(phase_ == phase::contending, "mutex_fsm::fail while not contending");
    return abort(ec);
  }

  /// A step failed for a transient reason: wait per the policy, then redo what the state asks.
  mutex_action retry(std::error_code ec) {
    const auto delay = cfg_.retry(retries_++);
    if (!delay) {
      if (phase_ == phase::contending) return fail(ec);
      if (phase_ == phase::dropping || phase_ == phase::holding) {
        // Deleting: give the node to the background cleanup. Holding (re-arming the own
        // watch): keep holding; the next session transition tries again.
        mutex_action a;
        if (phase_ == phase::dropping) {
          if (maybe_created_) a.orphan_prefixes.push_back(prefix_);
          if (!node_.empty()) a.orphan_names.push_back(node_);
          a.orphan_names.insert(a.orphan_names.end(), ghosts_.begin(), ghosts_.end());
          ghosts_.clear();
          node_.clear();
          maybe_created_ = false;
          release_ec_ = ec;
          return merge(std::move(a), next());
        }
        retries_ = 0;
        return {};
      }
      return next();
    }
    mutex_action a = issue(mutex_io::backoff);
    a.delay = *delay;
    return a;
  }

  // ---- issuing -----------------------------------------------------------------------------------

  mutex_action issue(mutex_io io) {
    ZKR_INVARIANT(!busy_, "mutex_fsm: two steps in flight");
    busy_ = true;
    busy_io_ = io;
    sent_epoch_ = epoch_;
    sent_generation_ = generation_;
    mutex_action a;
    a.io = io;
    return a;
  }
  mutex_action issue_create() {
    mutex_action a = issue(mutex_io::create);
    a.name = prefix_;
    return a;
  }
  mutex_action issue_read(mutex_io io, const std::string& name, std::uint64_t watch) {
    mutex_action a = issue(io);
    a.name = name;
    a.watch_id = watch;
    return a;
  }
  mutex_action issue_remove(const std::string& name) {
    mutex_action a = issue(mutex_io::remove);
    a.name = name;
    removing_ = name;
    return a;
  }

  void expect(mutex_io io) {
    ZKR_INVARIANT(busy_ && busy_io_ == io, "mutex_fsm: a reply for a step not in flight");
    busy_ = false;
  }
  /// The reply belongs to a session generation that is over.
  bool stale() const noexcept { return sent_generation_ != generation_; }

  bool shortcut_allowed(std::uint64_t event_epoch) const noexcept {
    return cfg_.sole_predecessor_handoff && sole_pred_ && !node_.empty() && listing_epoch_ == epoch_ &&
           own_armed_epoch_ == epoch_ && event_epoch == epoch_ && own_watch_id_ != 0 && !own_deleted_;
  }

  /// A lock node whose sequence is not a 10-digit non-negative number: the parent's int32
  /// child counter wrapped (ZooKeeper prints "-2147483648" after it). Contending with it could
  /// sort below older contenders: refuse.
  static bool valid_sequence(std::string_view name) {
    const auto seq = sequence_of(name, lock_marker);
    return seq && *seq >= 0;
  }

  void reset_knowledge() {
    need_check_ = true;
    own_armed_epoch_.reset();
    own_watch_id_ = 0;
    own_deleted_ = false;
    listing_epoch_.reset();
    sole_pred_ = false;
    pred_.clear();
    pred_watch_id_ = 0;
    pred_armed_ = false;
    ghosts_.clear();
    hold_suspended_ = false;
  }

  std::uint64_t new_watch_id() noexcept { return ++last_watch_id_; }

  static mutex_action merge(mutex_action a, mutex_action b) {
    ZKR_INVARIANT(a.io == mutex_io::none || b.io == mutex_io::none, "mutex_fsm: two steps in one action");
    ZKR_INVARIANT(!(a.complete && b.complete), "mutex_fsm: the acquire completes twice");
    if (b.io != mutex_io::none) {
      a.io = b.io;
      a.name = std::move(b.name);
      a.read_own = b.read_own;
      a.own = std::move(b.own);
      a.watch_id = b.watch_id;
      a.delay = b.delay;
    }
    a.interrupt = a.interrupt || b.interrupt;
    if (b.complete) {
      a.complete = true;
      a.ec = b.ec;
      a.token = b.token;
    }
    if (b.release_done) {
      a.release_done = true;
      a.release_ec = b.release_ec;
    }
    if (b.notify) {
      ZKR_INVARIANT(!a.notify, "mutex_fsm: two lock events in one action");
      a.notify = b.notify;
    }
    a.orphan_names.insert(a.orphan_names.end(), b.orphan_names.begin(), b.orphan_names.end());
    a.orphan_prefixes.insert(a.orphan_prefixes.end(), b.orphan_prefixes.begin(), b.orphan_prefixes.end());
    return a;
  }

  config cfg_;
  prng* rng_;
  phase phase_ = phase::idle;
  bool connected_ = false;
  bool closed_ = false;

  // The step in flight.
  bool busy_ = false;
  mutex_io busy_io_ = mutex_io::none;
  std::uint64_t sent_epoch_ = 0, sent_generation_ = 0;
  int check_parts_ = 0;
  bool own_gone_in_check_ = false;
  std::string removing_;
  std::string found_;
  int retries_ = 0;   ///< failed attempts of the current step
  int renewals_ = 0;  ///< own nodes that vanished during this acquire

  // Connection epochs (+1 at suspended, lost, closed) and session generations (+1 at lost).
  std::uint64_t epoch_ = 1, generation_ = 1;

  // Our node.
  std::string prefix_;
  std::string node_;
  bool maybe_created_ = false;  ///< a create with prefix_ has an unknown outcome
  bool parents_tried_ = false;
  std::int64_t czxid_ = 0;
  std::vector<std::string> ghosts_;  ///< other nodes with our prefix: delete them

  // What we know, and since when.
  bool need_check_ = true;
  std::optional<std::uint64_t> own_armed_epoch_;  ///< own watch registered in this epoch
  std::uint64_t own_watch_id_ = 0;
  bool own_deleted_ = false;  ///< own watch said deleted while a reply was in flight
  std::optional<std::uint64_t> listing_epoch_;
  bool sole_pred_ = false;
  std::string pred_;
  std::uint64_t pred_watch_id_ = 0;
  bool pred_armed_ = false;
  std::uint64_t last_watch_id_ = 0;

  // The outcome.
  std::optional<std::error_code> abort_ec_;     ///< the acquire completes with this once no node is left
  std::optional<std::error_code> deadline_ec_;  ///< give up at the next wait
  bool releasing_ = false;
  std::error_code release_ec_;
  bool hold_suspended_ = false;
  std::uint64_t shortcuts_ = 0;
  std::uint64_t adoptions_ = 0;
  std::uint64_t stalls_ = 0;
};

/// `parent` + "/" + `name` (the root has no trailing slash to double).
inline std::string child_path(std::string_view parent, std::string_view name) {
  std::string p(parent);
  if (p != "/") p += '/';
  p += name;
  return p;
}

/// The last segment of a path.
inline std::string_view last_segment(std::string_view path) noexcept {
  const auto at = path.rfind('/');
  return at == std::string_view::npos ? path : path.substr(at + 1);
}

/// One acquire's identity, shared with its cancellation slot's handler.
struct acquire_ticket {
  explicit acquire_ticket(std::uint64_t i) : id(i) {}
  const std::uint64_t id;
  std::atomic<bool> cancelled{false};
};

/// The driver of one mutex object: see the file comment. Lives on the session's executor;
/// kept alive by the mutex and by its own pending operations (replies hold a shared_ptr;
/// watches, timers' owners and the session listener a weak_ptr).
template <class Session>
class mutex_core : public std::enable_shared_from_this<mutex_core<Session>> {
 public:
  using executor_type = typename Session::executor_type;
  using timer_type = typename Session::timer_type;
  using acquire_handler = zkr::detail::pending<void(std::error_code, std::int64_t)>;
  using release_handler = zkr::detail::pending<void(std::error_code)>;

  mutex_core(Session& s, std::string path, mutex_options o)
      : s_(s),
        path_(std::move(path)),
        opts_(std::move(o)),
        fsm_(make_config(), s.random()),
        backoff_timer_(s.get_executor()),
        tick_timer_(s.get_executor()) {}

  /// Subscribes to the session's states (needs the shared_ptr, so not in the constructor).
  void init() {
    sub_ = s_.subscribe([weak = this->weak_from_this()](const session_event& ev) {
      if (auto self = weak.lock()) self->on_session(ev);
    });
  }

  executor_type executor() const noexcept { return s_.get_executor(); }

  std::uint64_t next_id() noexcept { return next_id_.fetch_add(1, std::memory_order_relaxed); }
  bool held() const noexcept { return held_.load(std::memory_order_acquire); }
  std::int64_t token() const noexcept { return token_.load(std::memory_order_acquire); }
  mutex_stats stats() const noexcept {
    return {acquisitions_.load(std::memory_order_relaxed), shortcuts_.load(std::memory_order_relaxed),
            adoptions_.load(std::memory_order_relaxed), stalls_.load(std::memory_order_relaxed)};
  }

  subscription add_listener(std::function<void(const lock_event&)> fn) {
    std::lock_guard lock(listeners_mu_);
    const std::uint64_t id = next_id();
    listeners_.emplace(id, std::make_shared<std::function<void(const lock_event&)>>(std::move(fn)));
    return subscription([weak = this->weak_from_this(), id] {
      if (auto self = weak.lock()) {
        std::lock_guard lock2(self->listeners_mu_);
        self->listeners_.erase(id);
      }
    });
  }

  // ---- on the executor -------------------------------------------------------------------------

  /// A new acquire. `owner` 0: anonymous (never re-enters). The ticket was made by the
  /// initiation, which also connected the cancellation slot to it.
  void acquire(std::shared_ptr<acquire_ticket> ticket, std::uint64_t owner,
               std::optional<std::chrono::milliseconds> timeout, acquire_handler h) {
    ZKR_INVARIANT(ticket && ticket->id != 0, "mutex: acquire without a ticket");
    const std::uint64_t id = ticket->id;
    if (destroyed_ || ticket->cancelled.load()) {
      return std::move(h).post_complete(executor(), zkr::operation_aborted(), std::int64_t{0});
    }
    if (closed_ || s_.state() == session_state::closed) {
      return std::move(h).post_complete(executor(), make_error_code(errc::closing), std::int64_t{0});
    }
    if (owner != 0 && hold_count_ > 0 && holder_owner_ == owner) {
      ++hold_count_;
      return std::move(h).post_complete(executor(), std::error_code{}, fsm_.token());
    }
    queue_.emplace_back(id, owner, std::move(h));
    if (timeout) {
      waiter& w = queue_.back();
      w.timer = std::make_unique<timer_type>(executor());
      w.timer->expires_after(*timeout);
      w.timer->async_wait([weak = this->weak_from_this(), id](std::error_code ec) {
        if (ec) return;  // cancelled: the acquire completed
        if (auto self = weak.lock()) self->on_deadline(id);
      });
    }
    pump();
  }

  /// The cancellation slot of acquire `id` fired (any type: all are honoured alike).
  void cancel(std::uint64_t id) {
    if (active_ && active_->id == id) return run(fsm_.abort(zkr::operation_aborted()));
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
      if (it->id == id) {
        finish(*it, zkr::operation_aborted(), 0);
        queue_.erase(it);
        return;
      }
    }
    // Not here: completed already, or not arrived yet (its ticket says cancelled then).
  }

  void release(std::optional<std::uint64_t> owner, release_handler h) {
    if (hold_count_ == 0 || (owner && *owner != holder_owner_)) {
      const bool ok = hold_count_ == 0 && std::exchange(lost_unreleased_, false);
      return std::move(h).post_complete(executor(), ok ? std::error_code{} : make_error_code(errc::invalid_state));
    }
    if (--hold_count_ > 0) return std::move(h).post_complete(executor(), std::error_code{});
    holder_owner_ = 0;
    releases_.push_back(std::move(h));
    run(fsm_.release());
  }

  /// The mutex object is gone: abort everything, release a hold.
  void shutdown() {
    destroyed_ = true;
    closed_ = true;
    abort_queue(zkr::operation_aborted());
    if (active_) run(fsm_.abort(zkr::operation_aborted()));
    if (hold_count_ > 0) {
      hold_count_ = 0;
      holder_owner_ = 0;
      run(fsm_.release());
    }
  }

 private:
  struct waiter {
    waiter(std::uint64_t i, std::uint64_t o, acquire_handler hh) : id(i), owner(o), h(std::move(hh)) {}
    std::uint64_t id;
    std::uint64_t owner;
    acquire_handler h;
    std::unique_ptr<timer_type> timer;
  };

  struct orphan {
    std::string name;    // a child to delete, or
    std::string prefix;  // a protected prefix: find and delete its children
    int attempts = 0;
  };
  static constexpr int orphan_attempts_max = 8;

  mutex_fsm::config make_config() {
    mutex_fsm::config c;
    c.hold_through_suspended = opts_.hold_through_suspended;
    c.sole_predecessor_handoff = opts_.sole_predecessor_handoff;
    // The FSM asks for retry delays; the policy gets the elapsed time since the step's first
    // failure (retries == 0 starts a new series) and the session's prng.
    c.retry = [this](int retries) -> std::optional<std::chrono::milliseconds> {
      if (retries == 0) retry_started_ = s_.steady_now();
      const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(s_.steady_now() - retry_started_);
      return opts_.retry.next_delay(retries, elapsed, s_.random());
    };
    return c;
  }

  void on_deadline(std::uint64_t id) {
    // errc::operation_timeout, as the leader latch's await (it compares equal to
    // std::errc::timed_out). Here the outcome is known: no node of ours is left.
    if (active_ && active_->id == id) return run(fsm_.deadline(make_error_code(errc::operation_timeout)));
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
      if (it->id == id) {
        finish(*it, make_error_code(errc::operation_timeout), 0);
        queue_.erase(it);
        return;
      }
    }
  }

  void on_session(const session_event& ev) {
    run(fsm_.on_session(ev));
    switch (ev.state) {
      case session_state::connected:
      case session_state::reconnected: clean_orphans(); break;
      case session_state::closed:
        closed_ = true;
        orphans_.clear();
        abort_queue(make_error_code(errc::closing));
        break;
      case session_state::connecting:
      case session_state::suspended:
      case session_state::lost: break;
    }
  }

  /// Starts the first queued acquire when nothing else is going on.
  void pump() {
    if (active_ || queue_.empty() || hold_count_ > 0 || !fsm_.ready()) return;
    active_ = std::make_unique<waiter>(std::move(queue_.front()));
    queue_.pop_front();
    run(fsm_.start(is_connected(s_.state())));
  }

  void abort_queue(std::error_code ec) {
    for (auto& w : queue_) finish(w, ec, 0);
    queue_.clear();
  }

  void finish(waiter& w, std::error_code ec, std::int64_t token) {
    if (w.timer) w.timer->cancel();
    std::move(w.h).post_complete(executor(), ec, token);
  }

  /// Applies one FSM action: reports first, then the backend call.
  void run(mutex_action a) {
    if (a.notify) deliver(*a.notify);
    for (auto& n : a.orphan_names) orphans_.push_back({std::move(n), {}, 0});
    for (auto& p : a.orphan_prefixes) orphans_.push_back({{}, std::move(p), 0});
    if (a.complete) {
      ZKR_INVARIANT(active_ != nullptr, "mutex: an acquire completes but none is active");
      if (!a.ec) {
        ZKR_INVARIANT(hold_count_ == 0, "mutex: acquired while holding");
        hold_count_ = 1;
        holder_owner_ = active_->owner;
        lost_unreleased_ = false;
        acquisitions_.fetch_add(1, std::memory_order_relaxed);
        shortcuts_.store(fsm_.shortcut_handoffs(), std::memory_order_relaxed);
        adoptions_.store(fsm_.adoptions(), std::memory_order_relaxed);
      }
      finish(*active_, a.ec, a.token);
      active_.reset();
    }
    if (a.release_done) {
      auto done = std::move(releases_);
      releases_.clear();
      for (auto& h : done) std::move(h).post_complete(executor(), a.release_ec);
    }
    if (a.interrupt) backoff_timer_.cancel();
    if (a.io != mutex_io::none) issue(std::move(a));
    if (!orphans_.empty() && !cleaning_) clean_orphans();
    pump();
    arm_tick();
  }

  // ---- stall detection (see "Stalls" in the file comment) ---------------------------------

  std::chrono::steady_clock::duration tick_period() const {
    return std::chrono::duration_cast<std::chrono::steady_clock::duration>(s_.negotiated_timeout()) / 4;
  }
  void arm_tick() {
    if (tick_armed_ || fsm_.current() != mutex_fsm::phase::contending || tick_period().count() <= 0) return;
    tick_armed_ = true;
    last_tick_ = s_.steady_now();
    wait_tick();
  }
  void wait_tick() {
    tick_timer_.expires_after(tick_period());
    tick_timer_.async_wait([weak = this->weak_from_this()](std::error_code ec) {
      auto self = weak.lock();
      if (!self) return;
      if (ec || self->fsm_.current() != mutex_fsm::phase::contending) {
        self->tick_armed_ = false;
        return;
      }
      self->check_stall();
      self->last_tick_ = self->s_.steady_now();
      self->wait_tick();
    });
  }
  /// A new epoch if the executor has not run a tick for more than two periods.
  void check_stall() {
    if (tick_armed_ && s_.steady_now() - last_tick_ > 2 * tick_period()) {
      run(fsm_.on_stall());
      stalls_.store(fsm_.stalls(), std::memory_order_relaxed);
    }
  }

  void deliver(const lock_event& ev) {
    switch (ev.kind) {
      case lock_event_kind::acquired:
        token_.store(ev.token, std::memory_order_release);
        held_.store(true, std::memory_order_release);
        break;
      case lock_event_kind::released:
      case lock_event_kind::lost:
        held_.store(false, std::memory_order_release);
        token_.store(0, std::memory_order_release);
        if (ev.kind == lock_event_kind::lost) {
          hold_count_ = 0;
          holder_owner_ = 0;
          lost_unreleased_ = true;
        }
        break;
      case lock_event_kind::suspended:
      case lock_event_kind::reconnected: break;
    }
    std::vector<std::shared_ptr<std::function<void(const lock_event&)>>> copy;
    {
      std::lock_guard lock(listeners_mu_);
      copy.reserve(listeners_.size());
      for (const auto& [id, fn] : listeners_) copy.push_back(fn);
    }
    for (const auto& fn : copy) (*fn)(ev);
  }

  watch_handler own_watch(std::uint64_t id) {
    return [weak = this->weak_from_this(), id](std::error_code ec, watch_event ev) {
      if (auto self = weak.lock()) self->run(self->fsm_.on_own_watch(id, ec, ev));
    };
  }
  watch_handler pred_watch(std::uint64_t id) {
    return [weak = this->weak_from_this(), id](std::error_code ec, watch_event ev) {
      if (auto self = weak.lock()) {
        self->check_stall();
        self->run(self->fsm_.on_pred_watch(id, ec, ev));
      }
    };
  }

  /// The backend call of an action: exactly one step (check and find pipeline two requests).
  void issue(mutex_action a) {
    auto self = this->shared_from_this();
    switch (a.io) {
      case mutex_io::none: return;
      case mutex_io::create:
        s_.async_create(child_path(path_, a.name + std::string(lock_marker)), opts_.node_data,
                        create_options{create_mode::ephemeral_sequential, opts_.acl, {}},
                        [self](std::error_code ec, std::string created, zkr::stat st) {
                          self->run(self->fsm_.on_created(ec, last_segment(created), st));
                        });
        return;
      case mutex_io::create_parents: return create_parents(1);
      case mutex_io::find:
        // sync first: the listing then shows every create the leader had taken before it
        // (a create sent on a dead connection may still be applied after a quick look).
        s_.async_sync(path_, [](std::error_code) {});
        s_.async_get_children(path_, [self](std::error_code ec, std::vector<std::string> children, zkr::stat) {
          self->run(self->fsm_.on_found(ec, children));
        });
        return;
      case mutex_io::read_found:
        s_.async_get(child_path(path_, a.name), own_watch(a.watch_id),
                     [self](std::error_code ec, std::string, zkr::stat st) {
                       self->run(self->fsm_.on_found_read(ec, st, self->s_.session_id()));
                     });
        return;
      case mutex_io::check:
        if (a.read_own) {
          s_.async_get(child_path(path_, a.own), own_watch(a.watch_id),
                       [self](std::error_code ec, std::string, zkr::stat st) {
                         self->run(self->fsm_.on_own_read(ec, st));
                       });
        }
        s_.async_get_children(path_, [self](std::error_code ec, std::vector<std::string> children, zkr::stat) {
          self->check_stall();
          self->run(self->fsm_.on_listed(ec, children));
        });
        return;
      case mutex_io::read_own:
        s_.async_get(child_path(path_, a.own), own_watch(a.watch_id),
                     [self](std::error_code ec, std::string, zkr::stat st) {
                       self->run(self->fsm_.on_own_read(ec, st));
                     });
        return;
      case mutex_io::read_pred:
        s_.async_get(child_path(path_, a.name), pred_watch(a.watch_id),
                     [self](std::error_code ec, std::string, zkr::stat) {
                       self->check_stall();
                       self->run(self->fsm_.on_pred_read(ec));
                     });
        return;
      case mutex_io::remove:
        s_.async_remove(child_path(path_, a.name), -1,
                        [self](std::error_code ec) { self->run(self->fsm_.on_removed(ec)); });
        return;
      case mutex_io::backoff:
        backoff_timer_.expires_after(a.delay);
        backoff_timer_.async_wait([self](std::error_code) { self->run(self->fsm_.on_backoff_done()); });
        return;
    }
  }

  /// Curator's creatingParentContainersIfNeeded: every missing ancestor of a lock node (the
  /// lock path included) as a container. `from`: the length of the prefix done so far.
  void create_parents(std::size_t from) {
    const std::size_t next = path_.find('/', from);
    const std::string part = next == std::string::npos ? path_ : path_.substr(0, next);
    const bool last = next == std::string::npos;
    s_.async_create(part, "", create_options{create_mode::container, opts_.acl, {}},
                    [self = this->shared_from_this(), last, next](std::error_code ec, std::string, zkr::stat) {
                      if (ec == errc::node_exists) ec = {};
                      if (ec || last) return self->run(self->fsm_.on_parents(ec));
                      self->create_parents(next + 1);
                    });
  }

  // ---- orphans: nodes of ours to delete in the background (guaranteed delete) ---------------

  void clean_orphans() {
    if (cleaning_ || orphans_.empty() || closed_session() || !is_connected(s_.state())) return;
    cleaning_ = true;
    auto self = this->shared_from_this();
    orphan& o = orphans_.front();
    if (!o.name.empty()) {
      s_.async_remove(child_path(path_, o.name), -1, [self](std::error_code ec) { self->orphan_done(ec); });
      return;
    }
    s_.async_sync(path_, [](std::error_code) {});
    s_.async_get_children(path_, [self](std::error_code ec, std::vector<std::string> children, zkr::stat) {
      if (!ec) {
        const std::string prefix = self->orphans_.front().prefix;
        for (const auto& c : children) {
          if (has_prefix(c, prefix)) self->orphans_.push_back({c, {}, 0});
        }
      }
      self->orphan_done(ec == errc::no_node ? std::error_code{} : ec);
    });
  }

  void orphan_done(std::error_code ec) {
    cleaning_ = false;
    if (orphans_.empty()) return;
    if (outcome_unknown(ec) || ec == errc::throttled || ec == errc::session_expired) {
      // Try again on the next (re)connection, a bounded number of times; after that the
      // node goes with its session (the server expires it).
      if (++orphans_.front().attempts >= orphan_attempts_max) orphans_.pop_front();
      return;
    }
    orphans_.pop_front();  // deleted, already gone, or not ours to delete (no_auth)
    clean_orphans();
  }

  bool closed_session() const noexcept { return s_.state() == session_state::closed; }

  Session& s_;
  std::string path_;
  mutex_options opts_;
  mutex_fsm fsm_;
  timer_type backoff_timer_;
  timer_type tick_timer_;
  bool tick_armed_ = false;
  std::chrono::steady_clock::time_point last_tick_{};
  subscription sub_;
  std::chrono::steady_clock::time_point retry_started_{};

  std::list<waiter> queue_;
  std::unique_ptr<waiter> active_;
  std::vector<release_handler> releases_;
  int hold_count_ = 0;
  std::uint64_t holder_owner_ = 0;
  bool lost_unreleased_ = false;
  bool closed_ = false;     // the session is closed, or the mutex destroyed: no new acquires
  bool destroyed_ = false;  // the mutex object is gone

  std::deque<orphan> orphans_;
  bool cleaning_ = false;

  std::atomic<std::uint64_t> next_id_{1};
  std::atomic<bool> held_{false};
  std::atomic<std::int64_t> token_{0};
  std::atomic<std::uint64_t> acquisitions_{0}, shortcuts_{0}, adoptions_{0}, stalls_{0};
  std::mutex listeners_mu_;
  std::map<std::uint64_t, std::shared_ptr<std::function<void(const lock_event&)>>> listeners_;
};

}  // namespace zkr::recipes::detail

namespace zkr::recipes {

template <backend Session>
mutex<Session>::mutex(Session& session, std::string path, mutex_options options)
    : session_(&session), path_(std::move(path)) {
  if (!is_valid_path(path_)) throw std::invalid_argument("zkr::recipes::mutex: invalid lock path '" + path_ + "'");
  core_ = std::make_shared<detail::mutex_core<Session>>(session, path_, std::move(options));
  core_->init();
}

template <backend Session>
mutex<Session>::~mutex() {
  boost::asio::post(core_->executor(), [core = core_] { core->shutdown(); });
}

template <backend Session>
mutex_owner mutex<Session>::make_owner() noexcept {
  return mutex_owner{core_->next_id()};
}

template <backend Session>
bool mutex<Session>::is_held() const noexcept {
  return core_->held();
}

template <backend Session>
std::int64_t mutex<Session>::fencing_token() const noexcept {
  return core_->token();
}

template <backend Session>
mutex_stats mutex<Session>::stats() const noexcept {
  return core_->stats();
}

template <backend Session>
subscription mutex<Session>::subscribe(std::function<void(const lock_event&)> listener) {
  return core_->add_listener(std::move(listener));
}

template <backend Session>
template <class Token>
auto mutex<Session>::initiate_acquire(mutex_owner owner, std::optional<std::chrono::milliseconds> timeout,
                                      Token&& token) {
  return boost::asio::async_initiate<Token, void(std::error_code, std::int64_t)>(
      [](auto handler, std::shared_ptr<detail::mutex_core<Session>> core, mutex_owner who,
         std::optional<std::chrono::milliseconds> limit) {
        auto ticket = std::make_shared<detail::acquire_ticket>(core->next_id());
        // Type-erase first: any_completion_handler installs its own cancellation state on
        // the handler's slot (replacing any handler there), and offers its slot downstream.
        // Our handler goes on that one.
        typename detail::mutex_core<Session>::acquire_handler::handler_type erased(std::move(handler));
        auto slot = erased.get_cancellation_slot();
        if (slot.is_connected()) {
          // Every type is honoured the same way (see async_acquire). The signal may be emitted
          // from any thread: mark the ticket (for a cancel that overtakes the acquire) and hop
          // to the session's executor.
          slot.assign([weak = std::weak_ptr(core), ticket](boost::asio::cancellation_type_t type) {
            if (type == boost::asio::cancellation_type::none) return;
            ticket->cancelled.store(true);
            if (auto c = weak.lock()) boost::asio::post(c->executor(), [c, id = ticket->id] { c->cancel(id); });
          });
        }
        typename detail::mutex_core<Session>::acquire_handler h(std::move(erased), core->executor());
        auto ex = core->executor();
        boost::asio::post(ex, [core = std::move(core), ticket, who, limit, h = std::move(h)]() mutable {
          core->acquire(std::move(ticket), who.id, limit, std::move(h));
        });
      },
      token, core_, owner, timeout);
}

template <backend Session>
template <class Token>
auto mutex<Session>::initiate_release(std::optional<mutex_owner> owner, Token&& token) {
  return boost::asio::async_initiate<Token, void(std::error_code)>(
      [](auto handler, std::shared_ptr<detail::mutex_core<Session>> core, std::optional<mutex_owner> who) {
        typename detail::mutex_core<Session>::release_handler h(std::move(handler), core->executor());
        auto ex = core->executor();
        boost::asio::post(ex, [core = std::move(core), who, h = std::move(h)]() mutable {
          core->release(who ? std::optional<std::uint64_t>(who->id) : std::nullopt, std::move(h));
        });
      },
      token, core_, owner);
}

}  // namespace zkr::recipes
