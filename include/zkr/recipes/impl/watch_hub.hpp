// zkr/recipes/impl/watch_hub.hpp: the logic behind zkr/recipes/watch_hub.hpp.
//
// Three layers, each testable alone:
//   - `classify` (pure): is a read result newer than what a channel delivered, the same, or
//     stale? Data: ordered by mzxid; children: by the parent's pzxid; czxid tells a re-created
//     node from the one we knew. An absent result is trusted to be newer (see below).
//   - `refresh_fsm` (sans-IO): the reads of one refresh of a channel: [sync], get or
//     get_children (with a watch unless one of ours is already armed), and when the node is
//     missing exists (with a watch, to hear of its creation).
//   - `hub_core` (I/O): the channels of one session, keyed by (kind, path). A channel runs the
//     re-arm loop: refresh, arm one watch, deliver what is newer to its sinks, and refresh
//     again when the watch fires, after `reconnected` and in a new session generation.
//
// Why an absent result can be trusted: within one session, reads are answered in order and
// a client never reconnects to a server behind the last zxid it saw, so a later read never
// shows an earlier state. A new session (generation) has no such floor: a channel with
// history therefore syncs first (the server catches up with the leader) and reads after the
// sync; a refresh that spans a generation change is discarded and run again.
//
// Everything here runs on the session's executor (asserted), except the atomics of `stats`.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/asio/post.hpp>

#include <zkr/backend.hpp>
#include <zkr/error.hpp>
#include <zkr/recipes/impl/invariant.hpp>
#include <zkr/retry.hpp>
#include <zkr/types.hpp>

/// Aborts on a broken invariant of the watch recipes (a bug, never an operating error): the
/// recipes' shared check (impl/invariant.hpp), naming the condition.
#define ZKR_WATCH_ASSERT(cond) ZKR_INVARIANT(cond, #cond)

namespace zkr::recipes {

/// What changed between two states a watch delivered (relative to the previous one it
/// delivered to the same consumer; fast changes in between may have coalesced).
enum class node_change : std::uint8_t {
  initial,    ///< the first state delivered
  created,    ///< absent before, present now
  changed,    ///< present before and now, same incarnation (czxid), other version
  deleted,    ///< present before, absent now
  recreated,  ///< present before and now, but another incarnation (czxid differs): deleted
              ///< and created again in between, possibly even at the same version
};

constexpr std::string_view to_string(node_change c) noexcept {
  switch (c) {
    case node_change::initial: return "initial";
    case node_change::created: return "created";
    case node_change::changed: return "changed";
    case node_change::deleted: return "deleted";
    case node_change::recreated: return "recreated";
  }
  return "?";
}

/// Options of a watch_hub.
struct watch_hub_options {
  /// Backoff for a read that failed transiently (connection loss, throttled) while the
  /// session still says connected. When it gives up, the channel waits for the next session
  /// transition or watch event. Never unbounded.
  any_retry_policy retry = exponential_backoff{std::chrono::milliseconds(50), std::chrono::seconds(5), 10};
};

/// Counters of a watch_hub (cumulative, readable from any thread).
struct watch_hub_stats {
  std::uint64_t reads = 0;          ///< get / get_children / exists requests sent
  std::uint64_t syncs = 0;          ///< sync requests sent (new generation, channel with history)
  std::uint64_t watches_armed = 0;  ///< client-side watches registered (one per read with a watch that set one)
  std::uint64_t deliveries = 0;     ///< newer states handed to the sinks of a channel (once per channel)
  std::uint64_t stale_dropped = 0;  ///< read results older than what was delivered, dropped
  std::uint64_t failed_reads = 0;   ///< reads (or syncs) that failed (connection loss ...)
  std::uint64_t retries = 0;        ///< backoff retries after transient errors
  std::uint64_t channels = 0;       ///< channels alive now (one per watched (kind, path))
  std::uint64_t subscribers = 0;    ///< local subscribers now, over all channels
};

namespace detail {

/// Which read a channel repeats.
enum class channel_kind : std::uint8_t { data, children };

/// One state of a node as a read saw it.
struct node_snapshot {
  bool exists = false;
  std::string data;
  zkr::stat stat{};
  friend bool operator==(const node_snapshot&, const node_snapshot&) = default;
};

/// One state of a node's child list as a read saw it (names sorted).
struct children_snapshot {
  bool exists = false;
  std::vector<std::string> children;
  zkr::stat stat{};
  friend bool operator==(const children_snapshot&, const children_snapshot&) = default;
};

template <class Snap>
inline constexpr channel_kind kind_of = std::is_same_v<Snap, node_snapshot> ? channel_kind::data : channel_kind::children;

/// The zxid that orders the states of a channel: a data change moves mzxid, a child change
/// moves the parent's pzxid; a (re)create sets both to its own zxid, so the order holds
/// across incarnations too.
inline std::int64_t order_key(const node_snapshot& s) noexcept { return s.stat.mzxid; }
inline std::int64_t order_key(const children_snapshot& s) noexcept { return s.stat.pzxid; }

enum class order : std::uint8_t { newer, same, stale };

/// Where `next` stands against the last delivered state `last` (nullptr: none yet), `high`
/// being the highest order key ever delivered (it outlives an absent state). Pure.
template <class Snap>
order classify(const Snap* last, std::int64_t high, const Snap& next) noexcept {
  if (last == nullptr) return order::newer;
  if (!next.exists) return last->exists ? order::newer : order::same;
  const std::int64_t key = order_key(next);
  ZKR_WATCH_ASSERT(next.stat.czxid <= key);
  if (key > high) return order::newer;
  if (key == high && last->exists && last->stat.czxid == next.stat.czxid) return order::same;
  return order::stale;
}

/// The change a consumer sees from `prev` (nullptr: nothing delivered yet) to `next`.
template <class Snap>
node_change change_between(const Snap* prev, const Snap& next) noexcept {
  if (prev == nullptr) return node_change::initial;
  if (!prev->exists) return node_change::created;
  if (!next.exists) return node_change::deleted;
  return prev->stat.czxid != next.stat.czxid ? node_change::recreated : node_change::changed;
}

/// Which of our one-shot watches are registered (client side) on a channel's path.
struct armed_watches {
  bool data = false;   // a get watch (data kind, node present)
  bool exist = false;  // an exists watch (node missing, or present after a create we raced)
  bool child = false;  // a get_children watch (children kind, node present)
};

/// The reads of one refresh, sans I/O. Data: [sync] get -> (no_node) exists -> (exists after
/// all) get once more. Children: the same with get_children. A read carries a watch unless
/// one of ours already covers the change it would report: for data, a get or exists watch
/// (both fire on set and delete); for children, only a child watch; exists carries one
/// unless an exists watch is armed. Without `follow_creation` a missing node ends the
/// refresh with no watch left on it (Curator: no watch left on a missing node).
class refresh_fsm {
 public:
  enum class input : std::uint8_t { start, synced, read_ok, read_no_node, exists_ok, exists_no_node };
  enum class step : std::uint8_t {
    sync,             ///< send sync(path)
    read,             ///< send get / get_children (watch: with a watch)
    exists,           ///< send exists (watch: with a watch)
    deliver_present,  ///< done: the last read's result is the state
    deliver_absent,   ///< done: the node is missing
    settle,           ///< done without a state: the node came and went between our reads;
                      ///< the exists watch armed meanwhile has fired or will fire
  };
  struct action {
    step what = step::settle;
    bool watch = false;
  };

  refresh_fsm(channel_kind kind, bool need_sync, bool follow_creation) noexcept
      : kind_(kind), need_sync_(need_sync), follow_(follow_creation) {}

  action resume(input in, armed_watches armed) noexcept {
    switch (phase_) {
      case phase::idle:
        ZKR_WATCH_ASSERT(in == input::start);
        if (need_sync_) {
          phase_ = phase::syncing;
          return {step::sync, false};
        }
        return read(armed, phase::reading);
      case phase::syncing:
        ZKR_WATCH_ASSERT(in == input::synced);
        return read(armed, phase::reading);
      case phase::reading:
        ZKR_WATCH_ASSERT(in == input::read_ok || in == input::read_no_node);
        if (in == input::read_ok) return finish(step::deliver_present);
        if (!follow_) return finish(step::deliver_absent);
        phase_ = phase::checking;
        return {step::exists, !armed.exist};
      case phase::checking:
        ZKR_WATCH_ASSERT(in == input::exists_ok || in == input::exists_no_node);
        if (in == input::exists_no_node) return finish(step::deliver_absent);
        // Created between our read and exists: read once more. If it is gone again, the
        // exists watch (armed now, or armed before) reports that: no loop here.
        return read(armed, phase::rereading);
      case phase::rereading:
        ZKR_WATCH_ASSERT(in == input::read_ok || in == input::read_no_node);
        return finish(in == input::read_ok ? step::deliver_present : step::settle);
      case phase::done: break;
    }
    invariant_failed("refresh_fsm resumed after it finished", __FILE__, __LINE__);
  }

  bool done() const noexcept { return phase_ == phase::done; }

 private:
  enum class phase : std::uint8_t { idle, syncing, reading, checking, rereading, done };

  action read(armed_watches armed, phase next) noexcept {
    phase_ = next;
    const bool covered = kind_ == channel_kind::data ? (armed.data || armed.exist) : armed.child;
    return {step::read, !covered};
  }
  action finish(step s) noexcept {
    ZKR_WATCH_ASSERT(s == step::deliver_present || s == step::deliver_absent || s == step::settle);
    phase_ = phase::done;
    return {s, false};
  }

  channel_kind kind_;
  bool need_sync_;
  bool follow_;
  phase phase_ = phase::idle;
};

/// How a channel reacts to a failed read.
enum class failure : std::uint8_t {
  transient,  ///< try again: at once if something asked for it, after backoff if connected,
              ///< else at the next session transition
  closed,     ///< the session is closed: the channel ends with errc::closing
  fatal,      ///< the read cannot succeed (no_auth, invalid_path ...): the channel ends with it
};

inline failure classify_failure(const std::error_code& ec) noexcept {
  if (ec == errc::closing || ec == zkr::operation_aborted()) return failure::closed;
  if (ec == errc::connection_loss || ec == errc::session_expired || ec == errc::session_lost ||
      ec == errc::operation_timeout || ec == errc::throttled || ec == errc::session_moved) {
    return failure::transient;
  }
  return failure::fatal;
}

/// A local subscriber of a channel. Called on the session's executor only.
template <class Snap>
struct sink {
  virtual ~sink() = default;
  /// A state newer than the last one the channel delivered. A sink may also get, once, the
  /// channel's current state when it joins (catch-up): it must itself ignore what is not
  /// newer than what it already has (detail::classify).
  virtual void on_state(const Snap& s) = 0;
  /// The channel ended (session closed: errc::closing; or a fatal read error). Last call.
  virtual void on_end(std::error_code ec) = 0;

  bool follow_creation = true;  ///< keep an exists watch on the path while it is missing
  bool active = true;           ///< false once unsubscribed: no more calls
};

/// The channels of one session.
template <class Session>
class hub_core : public std::enable_shared_from_this<hub_core<Session>> {
 public:
  using executor_type = typename Session::executor_type;
  using timer_type = typename Session::timer_type;

  hub_core(Session& s, watch_hub_options o) : session_(s), ex_(s.get_executor()), opts_(std::move(o)) {}

  hub_core(const hub_core&) = delete;
  hub_core& operator=(const hub_core&) = delete;

  /// Subscribes to the session's states; call once, right after construction.
  void attach() {
    ZKR_WATCH_ASSERT(!sub_);
    sub_ = session_.subscribe([weak = this->weak_from_this()](const session_event& ev) {
      // Posted, not handled inline: the session notifies from inside its own transition.
      if (auto self = weak.lock()) {
        boost::asio::post(self->ex_, [weak, ev] {
          if (auto me = weak.lock()) me->on_session(ev);
        });
      }
    });
  }

  Session& session() const noexcept { return session_; }
  /// The session's executor, copied at construction: teardown (unsubscribe, retire) never
  /// touches the session, so a recipe destroyed right before its session is safe as long as
  /// the executor still runs.
  const executor_type& get_executor() const noexcept { return ex_; }

  watch_hub_stats stats() const noexcept {
    watch_hub_stats s;
    s.reads = reads_.load();
    s.syncs = syncs_.load();
    s.watches_armed = armed_.load();
    s.deliveries = deliveries_.load();
    s.stale_dropped = stale_.load();
    s.failed_reads = failed_.load();
    s.retries = retries_.load();
    s.channels = channels_.load();
    s.subscribers = subscribers_.load();
    return s;
  }

  /// For diagnostics: one line per channel ("data|children <path> sinks=N watches=dec busy").
  /// Executor only.
  std::vector<std::string> describe_channels() const {
    std::vector<std::string> out;
    const auto line = [&](const char* kind, const auto& ch) {
      out.push_back(std::string(kind) + " " + ch->path + " sinks=" + std::to_string(ch->sinks.size()) +
                    " watches=" + std::to_string(ch->data_watch != 0) + std::to_string(ch->exist_watch != 0) +
                    std::to_string(ch->child_watch != 0) + (ch->busy ? " busy" : "") +
                    (ch->retry_pending ? " retry" : "") + (ch->ended ? " ended" : ""));
    };
    for (const auto& [p, ch] : data_) line("data", ch);
    for (const auto& [p, ch] : children_) line("children", ch);
    return out;
  }

  /// Adds `s` to the channel of (kind of Snap, path), creating it (and reading) if needed.
  /// Executor only.
  template <class Snap>
  void subscribe(const std::string& path, std::shared_ptr<sink<Snap>> s) {
    ZKR_WATCH_ASSERT(ex_.running_in_this_thread());
    ZKR_WATCH_ASSERT(s && s->active);
    if (closed_) {
      boost::asio::post(ex_, [s] {
        if (s->active) {
          s->active = false;
          s->on_end(make_error_code(errc::closing));
        }
      });
      return;
    }
    auto& tab = table<Snap>();
    auto [it, fresh] = tab.try_emplace(path);
    if (fresh) {
      it->second = std::make_shared<channel<Snap>>(path);
      channels_.fetch_add(1);
    }
    const auto ch = it->second;
    ch->sinks.push_back(s);
    subscribers_.fetch_add(1);
    if (ch->last) {
      // Catch-up: the newcomer gets the channel's state without a read of its own. Posted,
      // so that a subscribe made inside a delivery does not re-enter it.
      boost::asio::post(ex_,
                        [wch = std::weak_ptr<channel<Snap>>(ch), ws = std::weak_ptr<sink<Snap>>(s)] {
                          auto c = wch.lock();
                          auto k = ws.lock();
                          if (c && k && k->active && !c->ended && c->last) k->on_state(*c->last);
                        });
    }
    // No watch of ours on the path: nothing would tell us of the next change. Read.
    if (!ch->busy && !has_watch(*ch)) kick(ch);
  }

  /// Removes `s` from its channel; the channel goes once it has no sink and no armed watch.
  /// Executor only. Idempotent.
  template <class Snap>
  void unsubscribe(const std::string& path, const sink<Snap>* s) {
    ZKR_WATCH_ASSERT(ex_.running_in_this_thread());
    auto& tab = table<Snap>();
    const auto it = tab.find(path);
    if (it == tab.end()) return;
    const auto ch = it->second;
    const auto before = ch->sinks.size();
    std::erase_if(ch->sinks, [s](const auto& p) { return p.get() == s; });
    subscribers_.fetch_sub(before - ch->sinks.size());
    maybe_retire(ch);
  }

 private:
  template <class Snap>
  struct channel {
    explicit channel(std::string p) : path(std::move(p)) {}
    std::string path;
    std::vector<std::shared_ptr<sink<Snap>>> sinks;
    std::optional<Snap> last;        // the last state delivered
    std::int64_t high = 0;           // the highest order key delivered
    std::uint64_t gen = 0;           // generation of `last` (or of the last sync)
    std::uint64_t data_watch = 0;    // ids of our armed watches, 0: none
    std::uint64_t exist_watch = 0;
    std::uint64_t child_watch = 0;
    bool busy = false;               // a refresh is running
    bool dirty = false;              // run another refresh after it
    bool ended = false;
    std::optional<refresh_fsm> fsm;
    std::uint64_t run_gen = 0;       // the generation the running refresh started in
    std::uint64_t issued_watch = 0;  // id of the watch sent with the read in flight, 0: none
    Snap result{};                   // the running refresh's last read
    int failures = 0;                // transient failures in a row while connected
    std::chrono::steady_clock::time_point first_failure{};
    std::optional<timer_type> retry_timer;
    std::uint64_t retry_token = 0;   // a backoff wait is current iff its token matches
    bool retry_pending = false;
  };

  enum class which : std::uint8_t { data, exist, child };

  template <class Snap>
  std::map<std::string, std::shared_ptr<channel<Snap>>>& table() {
    if constexpr (kind_of<Snap> == channel_kind::data) {
      return data_;
    } else {
      return children_;
    }
  }

  template <class Snap>
  static bool has_watch(const channel<Snap>& ch) noexcept {
    return ch.data_watch != 0 || ch.exist_watch != 0 || ch.child_watch != 0;
  }
  template <class Snap>
  static armed_watches armed(const channel<Snap>& ch) noexcept {
    return {ch.data_watch != 0, ch.exist_watch != 0, ch.child_watch != 0};
  }
  template <class Snap>
  static bool follow(const channel<Snap>& ch) noexcept {
    return std::any_of(ch.sinks.begin(), ch.sinks.end(), [](const auto& s) { return s->active && s->follow_creation; });
  }

  /// Something may have changed: refresh now, or right after the running refresh.
  template <class Snap>
  void kick(const std::shared_ptr<channel<Snap>>& ch) {
    if (ch->ended) return;
    if (ch->busy) {
      ch->dirty = true;
      return;
    }
    if (ch->retry_pending) {
      // A backoff wait is superseded by a reason to read now.
      ch->retry_pending = false;
      ++ch->retry_token;
      ch->retry_timer->cancel();
    }
    start_refresh(ch);
  }

  template <class Snap>
  void start_refresh(const std::shared_ptr<channel<Snap>>& ch) {
    ZKR_WATCH_ASSERT(!ch->busy && !ch->ended);
    ZKR_WATCH_ASSERT(!ch->retry_pending);
    const auto st = session_.state();
    if (st == session_state::closed) return end_channel(ch, make_error_code(errc::closing));
    // Between a loss and the next session nothing is sent: a request made now would run in
    // the new session before we could sync it. `connected` kicks every channel.
    if (st == session_state::lost) return;
    if (ch->sinks.empty()) return maybe_retire(ch);
    ch->busy = true;
    ch->dirty = false;
    ch->run_gen = session_.generation();
    const bool need_sync = ch->last.has_value() && ch->gen != ch->run_gen;
    ch->fsm.emplace(kind_of<Snap>, need_sync, follow(*ch));
    act(ch, ch->fsm->resume(refresh_fsm::input::start, armed(*ch)));
  }

  template <class Snap>
  void act(const std::shared_ptr<channel<Snap>>& ch, refresh_fsm::action a) {
    ZKR_WATCH_ASSERT(ch->busy && ch->fsm);
    using step = refresh_fsm::step;
    switch (a.what) {
      case step::sync: {
        syncs_.fetch_add(1);
        session_.async_sync(ch->path, [wself = this->weak_from_this(), wch = weak(ch)](std::error_code ec) {
          if (auto [self, c] = lock(wself, wch); self) self->on_synced(c, ec);
        });
        return;
      }
      case step::read: {
        reads_.fetch_add(1);
        ch->issued_watch = a.watch ? ++next_watch_id_ : 0;
        if constexpr (kind_of<Snap> == channel_kind::data) {
          auto done = [wself = this->weak_from_this(), wch = weak(ch)](std::error_code ec, std::string data, zkr::stat st) {
            if (auto [self, c] = lock(wself, wch); self) self->on_read(c, ec, node_snapshot{true, std::move(data), st});
          };
          if (a.watch) {
            session_.async_get(ch->path, make_watch(ch, which::data, ch->issued_watch), std::move(done));
          } else {
            session_.async_get(ch->path, std::move(done));
          }
        } else {
          auto done = [wself = this->weak_from_this(), wch = weak(ch)](std::error_code ec, std::vector<std::string> kids,
                                                                      zkr::stat st) {
            std::sort(kids.begin(), kids.end());
            if (auto [self, c] = lock(wself, wch); self) self->on_read(c, ec, children_snapshot{true, std::move(kids), st});
          };
          if (a.watch) {
            session_.async_get_children(ch->path, make_watch(ch, which::child, ch->issued_watch), std::move(done));
          } else {
            session_.async_get_children(ch->path, std::move(done));
          }
        }
        return;
      }
      case step::exists: {
        reads_.fetch_add(1);
        ch->issued_watch = a.watch ? ++next_watch_id_ : 0;
        auto done = [wself = this->weak_from_this(), wch = weak(ch)](std::error_code ec, zkr::stat) {
          if (auto [self, c] = lock(wself, wch); self) self->on_exists(c, ec);
        };
        if (a.watch) {
          session_.async_exists(ch->path, make_watch(ch, which::exist, ch->issued_watch), std::move(done));
        } else {
          session_.async_exists(ch->path, std::move(done));
        }
        return;
      }
      case step::deliver_present: return finish(ch, &ch->result);
      case step::deliver_absent: {
        Snap absent{};
        return finish(ch, &absent);
      }
      case step::settle: return finish(ch, static_cast<const Snap*>(nullptr));
    }
  }

  template <class Snap>
  watch_handler make_watch(const std::shared_ptr<channel<Snap>>& ch, which w, std::uint64_t id) {
    return [wself = this->weak_from_this(), wch = weak(ch), w, id](std::error_code ec, watch_event) {
      if (auto [self, c] = lock(wself, wch); self) self->on_watch(c, w, id, ec);
    };
  }

  /// True (and the refresh restarted or parked) if the session's generation moved since the
  /// refresh started: its results may predate what a sync would guarantee.
  template <class Snap>
  bool generation_moved(const std::shared_ptr<channel<Snap>>& ch) {
    if (session_.generation() == ch->run_gen) return false;
    ch->busy = false;
    ch->fsm.reset();
    ch->issued_watch = 0;
    start_refresh(ch);
    return true;
  }

  template <class Snap>
  void on_synced(const std::shared_ptr<channel<Snap>>& ch, std::error_code ec) {
    if (ch->ended) return;
    ZKR_WATCH_ASSERT(ch->busy && ch->fsm);
    if (generation_moved(ch)) return;
    if (ec && ec != errc::no_node) return fail(ch, ec);
    act(ch, ch->fsm->resume(refresh_fsm::input::synced, armed(*ch)));
  }

  template <class Snap>
  void on_read(const std::shared_ptr<channel<Snap>>& ch, std::error_code ec, Snap snap) {
    if (ch->ended) return;
    ZKR_WATCH_ASSERT(ch->busy && ch->fsm);
    const auto id = std::exchange(ch->issued_watch, 0);
    if (generation_moved(ch)) return;
    if (ec == errc::no_node) return act(ch, ch->fsm->resume(refresh_fsm::input::read_no_node, armed(*ch)));
    if (ec) return fail(ch, ec);
    if (id != 0) {
      // The read succeeded, so the backend registered our watch.
      (kind_of<Snap> == channel_kind::data ? ch->data_watch : ch->child_watch) = id;
      armed_.fetch_add(1);
    }
    ch->result = std::move(snap);
    act(ch, ch->fsm->resume(refresh_fsm::input::read_ok, armed(*ch)));
  }

  template <class Snap>
  void on_exists(const std::shared_ptr<channel<Snap>>& ch, std::error_code ec) {
    if (ch->ended) return;
    ZKR_WATCH_ASSERT(ch->busy && ch->fsm);
    const auto id = std::exchange(ch->issued_watch, 0);
    if (generation_moved(ch)) return;
    if (ec && ec != errc::no_node) return fail(ch, ec);
    if (id != 0) {
      // exists sets its watch whether or not the node exists.
      ch->exist_watch = id;
      armed_.fetch_add(1);
    }
    act(ch, ch->fsm->resume(ec ? refresh_fsm::input::exists_no_node : refresh_fsm::input::exists_ok, armed(*ch)));
  }

  template <class Snap>
  void on_watch(const std::shared_ptr<channel<Snap>>& ch, which w, std::uint64_t id, std::error_code ec) {
    if (ch->ended) return;
    std::uint64_t& slot = w == which::data ? ch->data_watch : w == which::exist ? ch->exist_watch : ch->child_watch;
    if (slot != id) return;  // superseded: a watch of an earlier generation
    slot = 0;
    if (ec) return maybe_retire(ch);  // its session ended: the session transition drives what follows
    // An exists watch on a present parent reports only the parent's own changes; its child
    // watch reports the list (and the delete).
    if (kind_of<Snap> == channel_kind::children && w == which::exist && ch->child_watch != 0) return;
    if (ch->sinks.empty()) return maybe_retire(ch);  // nobody listens: do not re-arm
    kick(ch);
  }

  template <class Snap>
  void finish(const std::shared_ptr<channel<Snap>>& ch, const Snap* result) {
    ZKR_WATCH_ASSERT(ch->busy && ch->fsm && ch->fsm->done());
    ch->busy = false;
    ch->fsm.reset();
    ch->failures = 0;
    ch->gen = ch->run_gen;
    if (result != nullptr) deliver(ch, *result);
    if (ch->ended) return;
    // A subscriber that follows creation joined while a refresh without exists ran, and the
    // node is missing: look again, this time leaving an exists watch.
    if (!has_watch(*ch) && follow(*ch)) ch->dirty = true;
    if (ch->dirty) return start_refresh(ch);
    maybe_retire(ch);
  }

  template <class Snap>
  void deliver(const std::shared_ptr<channel<Snap>>& ch, const Snap& snap) {
    const auto o = classify(ch->last ? &*ch->last : nullptr, ch->high, snap);
    if (o == order::stale) {
      stale_.fetch_add(1);
      return;
    }
    const bool newer = o == order::newer;
    ch->last = snap;
    if (snap.exists) {
      ZKR_WATCH_ASSERT(order_key(snap) >= ch->high);
      ch->high = order_key(snap);
    }
    if (!newer) return;  // the same state (its stat may show changes that are not ours to report)
    deliveries_.fetch_add(1);
    // A copy: a sink may unsubscribe itself or others, or subscribe new ones, meanwhile.
    const auto sinks = ch->sinks;
    for (const auto& s : sinks) {
      if (s->active && !ch->ended) s->on_state(*ch->last);
    }
  }

  template <class Snap>
  void fail(const std::shared_ptr<channel<Snap>>& ch, std::error_code ec) {
    failed_.fetch_add(1);
    ch->busy = false;
    ch->fsm.reset();
    ch->issued_watch = 0;
    switch (classify_failure(ec)) {
      case failure::closed: return end_channel(ch, make_error_code(errc::closing));
      case failure::fatal: return end_channel(ch, ec);
      case failure::transient: break;
    }
    // Everyone left while the read ran: nothing to retry for (and no session transition
    // would retire the channel later).
    if (ch->sinks.empty()) return maybe_retire(ch);
    if (ch->dirty) return start_refresh(ch);  // a watch or a session transition asked meanwhile
    if (!is_connected(session_.state())) return;  // reconnected / connected will kick it
    schedule_retry(ch);
  }

  template <class Snap>
  void schedule_retry(const std::shared_ptr<channel<Snap>>& ch) {
    ZKR_WATCH_ASSERT(!ch->busy && !ch->retry_pending);
    const auto now = session_.steady_now();
    if (ch->failures == 0) ch->first_failure = now;
    const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(now - ch->first_failure);
    const auto delay = opts_.retry.next_delay(ch->failures, elapsed, session_.random());
    if (!delay) {
      // Given up: wait for the next session transition or watch event.
      ch->failures = 0;
      return;
    }
    ++ch->failures;
    retries_.fetch_add(1);
    if (!ch->retry_timer) ch->retry_timer.emplace(ex_);
    ch->retry_pending = true;
    const auto token = ++ch->retry_token;
    ch->retry_timer->expires_after(*delay);
    ch->retry_timer->async_wait([wself = this->weak_from_this(), wch = weak(ch), token](std::error_code) {
      auto [self, c] = lock(wself, wch);
      if (!self || c->retry_token != token || !c->retry_pending || c->ended) return;
      c->retry_pending = false;
      self->start_refresh(c);
    });
  }

  template <class Snap>
  void end_channel(const std::shared_ptr<channel<Snap>>& ch, std::error_code ec) {
    if (ch->ended) return;
    ch->ended = true;
    if (ch->retry_pending) {
      ch->retry_pending = false;
      ++ch->retry_token;
      ch->retry_timer->cancel();
    }
    erase(ch);
    const auto sinks = std::move(ch->sinks);
    ch->sinks.clear();
    subscribers_.fetch_sub(sinks.size());
    for (const auto& s : sinks) {
      if (!s->active) continue;
      s->active = false;
      s->on_end(ec);
    }
  }

  /// Drops a channel that nobody listens to and no watch of ours covers (a channel whose
  /// watch is still armed stays, dormant, so that a new subscriber needs no read and no
  /// second client-side watch; it goes when that watch fires or its session ends).
  template <class Snap>
  void maybe_retire(const std::shared_ptr<channel<Snap>>& ch) {
    if (ch->ended || !ch->sinks.empty() || ch->busy || has_watch(*ch)) return;
    ch->ended = true;
    if (ch->retry_pending) {
      ch->retry_pending = false;
      ++ch->retry_token;
      ch->retry_timer->cancel();
    }
    erase(ch);
  }

  template <class Snap>
  void erase(const std::shared_ptr<channel<Snap>>& ch) {
    auto& tab = table<Snap>();
    const auto it = tab.find(ch->path);
    if (it != tab.end() && it->second == ch) {
      tab.erase(it);
      channels_.fetch_sub(1);
    }
  }

  void on_session(const session_event& ev) {
    ZKR_WATCH_ASSERT(ex_.running_in_this_thread());
    if (closed_) return;
    switch (ev.state) {
      case session_state::connecting:
      case session_state::suspended:
        // Nothing to do: our watches survive a disconnection (the client re-registers them),
        // and a read that fails meanwhile waits for `reconnected`.
        break;
      case session_state::reconnected:
        // Re-read what we watch: a read that failed while away left no watch, and the
        // re-read reports what changed while away even if a watch would have too.
        for_each_channel([&](const auto& ch) {
          ch->failures = 0;
          if (ch->sinks.empty()) return maybe_retire(ch);  // dormant (a watch armed) stays
          kick(ch);
        });
        break;
      case session_state::lost:
        // Every watch of that session is gone (their handlers complete with the reason, and
        // are ignored: we forget their ids here).
        for_each_channel([&](const auto& ch) {
          ch->data_watch = ch->exist_watch = ch->child_watch = 0;
          ch->failures = 0;
          maybe_retire(ch);
        });
        break;
      case session_state::connected:
        // The first session, or a new one after a loss: read everything again (a channel
        // with history syncs first, see start_refresh).
        for_each_channel([&](const auto& ch) {
          if (ch->gen != ev.generation && ch->gen != 0) ch->data_watch = ch->exist_watch = ch->child_watch = 0;
          ch->failures = 0;
          if (ch->sinks.empty()) return maybe_retire(ch);
          // A read queued before the first connect runs in this generation: no need to kick.
          if (ch->busy && ch->run_gen == ev.generation) return;
          kick(ch);
        });
        break;
      case session_state::closed:
        closed_ = true;
        for_each_channel([&](const auto& ch) { end_channel(ch, make_error_code(errc::closing)); });
        break;
    }
  }

  template <class F>
  void for_each_channel(F&& f) {
    // Copies: f may end or retire channels.
    std::vector<std::shared_ptr<channel<node_snapshot>>> d;
    for (const auto& [p, ch] : data_) d.push_back(ch);
    std::vector<std::shared_ptr<channel<children_snapshot>>> c;
    for (const auto& [p, ch] : children_) c.push_back(ch);
    for (const auto& ch : d) {
      if (!ch->ended) f(ch);
    }
    for (const auto& ch : c) {
      if (!ch->ended) f(ch);
    }
  }

  template <class T>
  static std::weak_ptr<T> weak(const std::shared_ptr<T>& p) noexcept {
    return p;
  }
  template <class T>
  static std::pair<std::shared_ptr<hub_core>, std::shared_ptr<T>> lock(const std::weak_ptr<hub_core>& a,
                                                                       const std::weak_ptr<T>& b) {
    auto x = a.lock();
    auto y = b.lock();
    if (!x || !y) return {nullptr, nullptr};
    return {std::move(x), std::move(y)};
  }

  Session& session_;
  executor_type ex_;
  watch_hub_options opts_;
  subscription sub_;
  bool closed_ = false;
  std::uint64_t next_watch_id_ = 0;
  std::map<std::string, std::shared_ptr<channel<node_snapshot>>> data_;
  std::map<std::string, std::shared_ptr<channel<children_snapshot>>> children_;
  std::atomic<std::uint64_t> reads_{0}, syncs_{0}, armed_{0}, deliveries_{0}, stale_{0}, failed_{0}, retries_{0};
  std::atomic<std::uint64_t> channels_{0}, subscribers_{0};
};

}  // namespace detail
}  // namespace zkr::recipes
