// zkr/recipes/impl/children_cache.hpp: the logic behind zkr/recipes/children_cache.hpp.
//
// A children_cache subscribes to the watch_hub children channel of its path (the parent
// list) and, with cache_data, to the data channel of every listed child (follow_creation
// off: no watch is left on a child that is gone). Its view is a map name -> child_data:
//   - a child enters the view when its first data read arrives (or at once, without
//     cache_data), leaves it when a newer list no longer names it or its data read finds it
//     gone, and is updated when its data channel delivers a newer state (mzxid or czxid);
//   - a child whose data read found it gone stays *tracked* (absent) while the list names
//     it, and is read again when a newer list still names it (it was re-created): that is how
//     a child deleted and re-created between two list reads converges.
// Each start is a *run* with its own sink objects, so a start cancelled back to latent and
// started again never sees a callback of the old run.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <boost/asio/async_result.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>

#include <zkr/error.hpp>
#include <zkr/recipes/impl/cache_support.hpp>
#include <zkr/recipes/impl/watch_hub.hpp>
#include <zkr/recipes/impl/watch_loop.hpp>

namespace zkr::recipes {

/// One child as a children_cache holds it.
struct child_data {
  std::string name;  ///< the child's name under the cache's path (no '/')
  zkr::stat stat{};  ///< with cache_data: the child's stat at its last read; without: all zero
  std::string data;  ///< with cache_data: its data at its last read; without: empty
  friend bool operator==(const child_data&, const child_data&) = default;
};

/// What a children_cache listener is told.
enum class children_cache_event_type : std::uint8_t {
  added,        ///< a child entered the view (`child`: its state)
  updated,      ///< a child's data/stat changed, or it was re-created (czxid differs)
  removed,      ///< a child left the view (`child`: its last state)
  initialized,  ///< the initial load is complete (once per start)
  suspended,    ///< the session was disconnected: the view may be stale
  reconnected,  ///< the session is back (same or, after `lost`, a new one); the view is re-read
  lost,         ///< the session expired or was presumed lost; the view is kept until re-read
};

constexpr std::string_view to_string(children_cache_event_type t) noexcept {
  switch (t) {
    case children_cache_event_type::added: return "added";
    case children_cache_event_type::updated: return "updated";
    case children_cache_event_type::removed: return "removed";
    case children_cache_event_type::initialized: return "initialized";
    case children_cache_event_type::suspended: return "suspended";
    case children_cache_event_type::reconnected: return "reconnected";
    case children_cache_event_type::lost: return "lost";
  }
  return "?";
}

/// One event of a children_cache.
struct children_cache_event {
  children_cache_event_type type = children_cache_event_type::initialized;
  child_data child{};  ///< added/updated: the new state; removed: the last one; otherwise empty
};

/// Options of a children_cache.
struct children_cache_options {
  /// Read and watch every child's data (one more watch and one read per child and change).
  /// Off: names only (one watch in all), stat and data stay empty.
  bool cache_data = true;
};

namespace detail {

template <class Session>
class children_cache_core : public std::enable_shared_from_this<children_cache_core<Session>> {
 public:
  using snapshot_type = std::map<std::string, child_data, std::less<>>;

  children_cache_core(std::shared_ptr<hub_core<Session>> hub, std::string path, children_cache_options o)
      : hub_(std::move(hub)), path_(std::move(path)), opts_(o), published_(std::make_shared<const snapshot_type>()) {}

  const std::string& path() const noexcept { return path_; }
  listener_set<children_cache_event>& listeners() noexcept { return listeners_; }
  life lifecycle() const noexcept { return life_.load(); }
  bool initialized() const noexcept { return initialized_.load(); }
  bool parent_exists() const noexcept { return parent_exists_.load(); }

  std::shared_ptr<const snapshot_type> current() const {
    std::lock_guard lock(mu_);
    return published_;
  }
  std::optional<child_data> get(std::string_view name) const {
    const auto snap = current();
    const auto it = snap->find(name);
    if (it == snap->end()) return std::nullopt;
    return it->second;
  }
  std::error_code error() const {
    std::lock_guard lock(mu_);
    return error_;
  }

  template <class Token>
  auto async_start(Token&& token) {
    return boost::asio::async_initiate<Token, void(std::error_code)>(
        [](auto handler, std::shared_ptr<children_cache_core> self) {
          auto expected = life::latent;
          if (!self->life_.compare_exchange_strong(expected, life::started)) {
            throw std::logic_error(expected == life::started ? "children_cache: already started"
                                                             : "children_cache: closed");
          }
          const auto& ex = self->hub_->get_executor();
          auto w = waiter_slot<>::prepare(std::move(handler), ex, self->start_ids_.fetch_add(1) + 1,
                                          [weak = std::weak_ptr<children_cache_core>(self)](std::uint64_t id) {
                                            if (auto me = weak.lock()) me->cancel_start(id);
                                          });
          boost::asio::dispatch(ex, [self, w = std::move(w)]() mutable { self->begin(std::move(w)); });
        },
        token, this->shared_from_this());
  }

  std::error_code close() {
    auto cur = life_.load();
    while (cur != life::closed) {
      if (life_.compare_exchange_weak(cur, life::closed)) {
        boost::asio::dispatch(hub_->get_executor(), [self = this->shared_from_this()] {
          self->end_run(false);  // the view stays readable after close
          if (self->waiter_.armed()) self->waiter_.complete(self->hub_->get_executor(), zkr::operation_aborted());
        });
        return {};
      }
    }
    return make_error_code(errc::closing);
  }

 private:
  struct parent_sink final : sink<children_snapshot> {
    std::weak_ptr<children_cache_core> owner;
    std::uint64_t run = 0;
    void on_state(const children_snapshot& s) override {
      if (auto o = owner.lock()) o->on_parent(run, s);
    }
    void on_end(std::error_code ec) override {
      if (auto o = owner.lock()) o->on_parent_end(run, ec);
    }
  };
  struct child_sink final : sink<node_snapshot> {
    std::weak_ptr<children_cache_core> owner;
    std::uint64_t run = 0;
    std::string name;
    void on_state(const node_snapshot& s) override {
      if (auto o = owner.lock()) o->on_child(run, this, s);
    }
    void on_end(std::error_code ec) override {
      if (auto o = owner.lock()) o->on_child_end(run, this, ec);
    }
  };
  enum class child_status : std::uint8_t { pending, present, absent, failed };
  struct tracked {
    std::shared_ptr<child_sink> sink;
    child_status status = child_status::pending;
    std::optional<node_snapshot> last;  // the child's last accepted state (kept across resubscriptions)
    std::int64_t high = 0;
  };

  std::string child_path(std::string_view name) const {
    std::string p = path_;
    if (p != "/") p += '/';
    p += name;
    return p;
  }

  void begin(typename waiter_slot<>::prepared w) {
    ZKR_WATCH_ASSERT(hub_->get_executor().running_in_this_thread());
    if (life_.load() != life::started) {
      // Closed between the initiation and now.
      return waiter_slot<>::refuse(std::move(w), hub_->get_executor(), zkr::operation_aborted());
    }
    ZKR_WATCH_ASSERT(!parent_ && tracked_.empty() && !waiter_.armed());
    waiter_.arm(std::move(w));
    const auto run = ++run_;
    first_generation_ = hub_->session().generation();
    session_sub_ = hub_->session().subscribe([weak = this->weak_from_this(), run](const session_event& ev) {
      // Posted: the session notifies from inside its transition; listeners are user code.
      if (auto self = weak.lock()) {
        boost::asio::post(self->hub_->get_executor(), [weak, run, ev] {
          if (auto me = weak.lock()) me->on_session(run, ev);
        });
      }
    });
    parent_ = std::make_shared<parent_sink>();
    parent_->owner = this->weak_from_this();
    parent_->run = run;
    parent_->follow_creation = true;
    hub_->template subscribe<children_snapshot>(path_, parent_);
  }

  void on_parent(std::uint64_t run, const children_snapshot& snap) {
    ZKR_WATCH_ASSERT(hub_->get_executor().running_in_this_thread());
    if (run != run_ || !parent_ || life_.load() != life::started) return;
    const children_snapshot* prev = parent_last_ ? &*parent_last_ : nullptr;
    if (classify(prev, parent_high_, snap) != order::newer) return;
    parent_last_ = snap;
    if (snap.exists) parent_high_ = order_key(snap);
    parent_exists_.store(snap.exists);
    const std::vector<std::string> none;
    const auto& names = snap.exists ? snap.children : none;
    ZKR_WATCH_ASSERT(std::is_sorted(names.begin(), names.end()));
    const auto listed = [&](std::string_view n) { return std::binary_search(names.begin(), names.end(), n); };

    // Gone from the list: out of the view, and no longer tracked.
    for (auto it = view_.begin(); it != view_.end();) {
      if (listed(it->first)) {
        ++it;
        continue;
      }
      events_.push_back({children_cache_event_type::removed, std::move(it->second)});
      it = view_.erase(it);
    }
    for (auto it = tracked_.begin(); it != tracked_.end();) {
      if (listed(it->first)) {
        ++it;
        continue;
      }
      drop(it->first, *it->second.sink);
      initial_pending_.erase(it->first);
      it = tracked_.erase(it);
    }
    // Listed: in the view (names only), or tracked and read (with data).
    for (const auto& name : names) {
      if (!opts_.cache_data) {
        if (!view_.contains(name)) {
          const auto [at, fresh] = view_.emplace(name, child_data{name, {}, {}});
          events_.push_back({children_cache_event_type::added, at->second});
        }
        continue;
      }
      const auto it = tracked_.find(name);
      if (it == tracked_.end()) {
        track(name, tracked{});
      } else if (it->second.status == child_status::absent || it->second.status == child_status::failed) {
        // Its last read found it gone (or failed), yet a newer list names it: read it again.
        auto t = std::move(it->second);
        tracked_.erase(it);
        drop(name, *t.sink);
        t.status = child_status::pending;
        track(name, std::move(t));
      }
    }
    if (!got_parent_) {
      got_parent_ = true;
      if (opts_.cache_data) initial_pending_.insert(names.begin(), names.end());
    }
    flush();
  }

  void on_parent_end(std::uint64_t run, std::error_code ec) {
    ZKR_WATCH_ASSERT(ec);
    if (run != run_ || !parent_) return;
    {
      std::lock_guard lock(mu_);
      error_ = ec;
    }
    life_.store(life::closed);
    end_run(false);
    if (waiter_.armed()) waiter_.complete(hub_->get_executor(), ec);
  }

  void on_child(std::uint64_t run, const child_sink* s, const node_snapshot& snap) {
    ZKR_WATCH_ASSERT(hub_->get_executor().running_in_this_thread());
    if (run != run_ || life_.load() != life::started) return;
    const auto it = tracked_.find(s->name);
    if (it == tracked_.end() || it->second.sink.get() != s) return;
    auto& t = it->second;
    const node_snapshot* prev = t.last ? &*t.last : nullptr;
    if (classify(prev, t.high, snap) != order::newer) return;
    t.last = snap;
    if (snap.exists) t.high = order_key(snap);
    const auto v = view_.find(s->name);
    if (snap.exists) {
      t.status = child_status::present;
      child_data d{s->name, snap.stat, snap.data};
      if (v == view_.end()) {
        view_.emplace(s->name, d);
        events_.push_back({children_cache_event_type::added, std::move(d)});
      } else {
        ZKR_WATCH_ASSERT(v->second.stat.mzxid < d.stat.mzxid);
        v->second = d;
        events_.push_back({children_cache_event_type::updated, std::move(d)});
      }
    } else {
      t.status = child_status::absent;
      if (v != view_.end()) {
        events_.push_back({children_cache_event_type::removed, std::move(v->second)});
        view_.erase(v);
      }
    }
    initial_pending_.erase(s->name);
    flush();
  }

  void on_child_end(std::uint64_t run, const child_sink* s, std::error_code ec) {
    if (run != run_ || life_.load() != life::started) return;
    const auto it = tracked_.find(s->name);
    if (it == tracked_.end() || it->second.sink.get() != s) return;
    // A closed session ends the parent channel too (that ends the cache). Otherwise the
    // child cannot be read (no_auth): out of the view until a newer list names it again.
    it->second.status = child_status::failed;
    if (ec == errc::closing) return;
    if (const auto v = view_.find(s->name); v != view_.end()) {
      events_.push_back({children_cache_event_type::removed, std::move(v->second)});
      view_.erase(v);
    }
    initial_pending_.erase(s->name);
    flush();
  }

  void on_session(std::uint64_t run, const session_event& ev) {
    if (run != run_ || life_.load() != life::started) return;
    using t = children_cache_event_type;
    switch (ev.state) {
      case session_state::suspended: return listeners_.notify({t::suspended, {}});
      case session_state::reconnected: return listeners_.notify({t::reconnected, {}});
      case session_state::lost: return listeners_.notify({t::lost, {}});
      case session_state::connected:
        // A new session after `lost` (Curator reports RECONNECTED then too).
        if (ev.generation > first_generation_) listeners_.notify({t::reconnected, {}});
        return;
      case session_state::connecting:
      case session_state::closed:
        // Nothing to say: closed ends every channel, which ends the cache.
        return;
    }
  }

  void track(const std::string& name, tracked t) {
    t.sink = std::make_shared<child_sink>();
    t.sink->owner = this->weak_from_this();
    t.sink->run = run_;
    t.sink->name = name;
    t.sink->follow_creation = false;  // no watch left on a child that is gone
    const auto s = t.sink;
    tracked_.emplace(name, std::move(t));
    hub_->template subscribe<node_snapshot>(child_path(name), s);
  }

  void drop(std::string_view name, child_sink& s) {
    s.active = false;
    hub_->template unsubscribe<node_snapshot>(child_path(name), &s);
  }

  /// Publishes the view, tells the listeners what changed, and completes the start once the
  /// initial load is in.
  void flush() {
    auto evs = std::move(events_);
    events_.clear();
    if (!evs.empty()) {
      auto snap = std::make_shared<const snapshot_type>(view_);
      std::lock_guard lock(mu_);
      published_ = std::move(snap);
    }
    bool now_initialized = false;
    if (got_parent_ && initial_pending_.empty() && !initialized_.load()) {
      initialized_.store(true);
      now_initialized = true;
    }
    const auto run = run_;
    for (const auto& e : evs) {
      if (run != run_) return;  // a listener closed the cache
      listeners_.notify(e);
    }
    if (now_initialized && run == run_) {
      listeners_.notify({children_cache_event_type::initialized, {}});
      if (run == run_ && waiter_.armed()) waiter_.complete(hub_->get_executor(), std::error_code{});
    }
  }

  /// Total cancellation of a start: undo it (no subscription, empty view), back to latent.
  void cancel_start(std::uint64_t id) {
    if (!waiter_.armed() || waiter_.id() != id) return;
    auto expected = life::started;
    if (initialized_.load() || !life_.compare_exchange_strong(expected, life::latent)) return;
    end_run(true);
    waiter_.complete(hub_->get_executor(), zkr::operation_aborted());
  }

  void end_run(bool clear_view) {
    ZKR_WATCH_ASSERT(hub_->get_executor().running_in_this_thread());
    ++run_;
    if (parent_) {
      parent_->active = false;
      hub_->template unsubscribe<children_snapshot>(path_, parent_.get());
      parent_.reset();
    }
    for (auto& [name, t] : tracked_) drop(name, *t.sink);
    tracked_.clear();
    session_sub_.reset();
    initial_pending_.clear();
    got_parent_ = false;
    events_.clear();
    if (!clear_view) return;
    parent_last_.reset();
    parent_high_ = 0;
    view_.clear();
    initialized_.store(false);
    parent_exists_.store(false);
    std::lock_guard lock(mu_);
    published_ = std::make_shared<const snapshot_type>();
  }

  std::shared_ptr<hub_core<Session>> hub_;
  std::string path_;
  children_cache_options opts_;
  std::atomic<life> life_{life::latent};
  std::atomic<bool> initialized_{false};
  std::atomic<bool> parent_exists_{false};
  listener_set<children_cache_event> listeners_;
  // executor only:
  std::uint64_t run_ = 0;
  std::shared_ptr<parent_sink> parent_;
  std::optional<children_snapshot> parent_last_;
  std::int64_t parent_high_ = 0;
  std::map<std::string, tracked, std::less<>> tracked_;
  snapshot_type view_;
  std::set<std::string, std::less<>> initial_pending_;
  bool got_parent_ = false;
  std::vector<children_cache_event> events_;  // of one callback; at most 2 per child
  waiter_slot<> waiter_;
  std::atomic<std::uint64_t> start_ids_{0};  // ids of starts (cancellation hooks name them)
  subscription session_sub_;
  std::uint64_t first_generation_ = 0;
  // any thread:
  mutable std::mutex mu_;
  std::shared_ptr<const snapshot_type> published_;
  std::error_code error_;
};

}  // namespace detail
}  // namespace zkr::recipes
