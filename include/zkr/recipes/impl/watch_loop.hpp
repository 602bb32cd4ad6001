// zkr/recipes/impl/watch_loop.hpp: the subscriber behind node_watch and children_watch.
//
// A `watch_loop` is one local subscriber of a watch_hub channel. It keeps the latest state it
// accepted (newer than the one before, by detail::classify: catch-ups and duplicates are
// ignored) and hands it on in two ways, both bounded to one slot:
//   - push: a listener called for every accepted state (kazoo's DataWatch / ChildrenWatch);
//     returning false stops the watch;
//   - pull: `async_next` completes with the latest state not yet pulled (coalescing what a
//     slow consumer missed), or waits for one.
// Lifecycle latent -> started -> closed, changed by compare-and-set from any thread; the
// rest runs on the session's executor.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <boost/asio/async_result.hpp>
#include <boost/asio/dispatch.hpp>

#include <zkr/error.hpp>
#include <zkr/path.hpp>
#include <zkr/recipes/impl/cache_support.hpp>
#include <zkr/recipes/impl/watch_hub.hpp>

namespace zkr::recipes {

/// One state of a watched node, as node_watch delivers it.
struct node_state {
  bool exists = false;     ///< false: the node was missing (data empty, stat zero)
  std::string data;        ///< its data at that state
  zkr::stat stat{};        ///< its stat at that state (mzxid orders states; czxid names the incarnation)
  node_change change = node_change::initial;  ///< against the previous state this consumer got
  friend bool operator==(const node_state&, const node_state&) = default;
};

/// One state of a watched node's child list, as children_watch delivers it.
struct children_state {
  bool exists = false;                ///< false: the parent was missing (no children, stat zero)
  std::vector<std::string> children;  ///< child names, sorted
  zkr::stat stat{};                   ///< the parent's stat at that state (pzxid orders states)
  node_change change = node_change::initial;  ///< against the previous state this consumer got
  friend bool operator==(const children_state&, const children_state&) = default;
};

/// Options of node_watch / children_watch.
struct watch_options {
  /// While the node is missing, keep an exists watch on it and report its creation (kazoo's
  /// DataWatch does). Off: a missing node is reported once and nothing more is watched until
  /// it shows up by other means (no watch left on a missing node).
  bool follow_creation = true;
};

namespace detail {

inline node_state make_state(const node_snapshot& s, node_change c) { return {s.exists, s.data, s.stat, c}; }
inline children_state make_state(const children_snapshot& s, node_change c) {
  return {s.exists, s.children, s.stat, c};
}

enum class life : std::uint8_t { latent, started, closed };

template <class Session, class Snap>
class watch_loop final : public sink<Snap>, public std::enable_shared_from_this<watch_loop<Session, Snap>> {
 public:
  using state_type = decltype(make_state(std::declval<const Snap&>(), node_change::initial));
  using listener_type = std::function<bool(std::error_code, const state_type&)>;

  watch_loop(std::shared_ptr<hub_core<Session>> hub, std::string path, watch_options o)
      : hub_(std::move(hub)), path_(std::move(path)) {
    this->follow_creation = o.follow_creation;
  }

  const std::string& path() const noexcept { return path_; }

  /// latent -> started with `l` (may be empty: pull only). Throws std::logic_error otherwise.
  void start(listener_type l, const char* who) {
    auto expected = life::latent;
    if (!life_.compare_exchange_strong(expected, life::started)) {
      throw std::logic_error(std::string(who) + (expected == life::started ? ": already started" : ": closed"));
    }
    boost::asio::dispatch(hub_->get_executor(), [self = this->shared_from_this(), l = std::move(l)]() mutable {
      self->begin(std::move(l));
    });
  }

  /// Starts in pull mode if latent (async_next's convenience); no-op otherwise.
  void ensure_started() {
    auto expected = life::latent;
    if (life_.compare_exchange_strong(expected, life::started)) {
      boost::asio::dispatch(hub_->get_executor(), [self = this->shared_from_this()] { self->begin({}); });
    }
  }

  /// started/latent -> closed. {} if it closed now, errc::closing if it was closed already.
  std::error_code close() {
    auto cur = life_.load();
    while (cur != life::closed) {
      if (life_.compare_exchange_weak(cur, life::closed)) {
        boost::asio::dispatch(hub_->get_executor(), [self = this->shared_from_this()] {
          self->teardown(zkr::operation_aborted());
        });
        return {};
      }
    }
    return make_error_code(errc::closing);
  }

  life lifecycle() const noexcept { return life_.load(); }

  std::optional<state_type> current() const {
    std::lock_guard lock(mu_);
    return current_;
  }

  template <class Token>
  auto async_next(Token&& token) {
    return boost::asio::async_initiate<Token, void(std::error_code, state_type)>(
        [](auto handler, std::shared_ptr<watch_loop> self) {
          const auto& ex = self->hub_->get_executor();
          auto w = waiter_slot<state_type>::prepare(std::move(handler), ex, self->next_ids_.fetch_add(1) + 1,
                                                    [weak = std::weak_ptr<watch_loop>(self)](std::uint64_t id) {
                                                      if (auto me = weak.lock()) me->cancel_next(id);
                                                    });
          boost::asio::dispatch(ex, [self, w = std::move(w)]() mutable { self->next(std::move(w)); });
        },
        token, this->shared_from_this());
  }

  // ---- sink (executor) ---------------------------------------------------------------------

  void on_state(const Snap& snap) override {
    ZKR_WATCH_ASSERT(hub_->get_executor().running_in_this_thread());
    if (life_.load() != life::started || !this->active) return;
    const Snap* prev = latest_ ? &*latest_ : nullptr;
    if (classify(prev, high_, snap) != order::newer) return;  // a catch-up or duplicate
    const auto change = change_between(prev, snap);
    latest_ = snap;
    if (snap.exists) high_ = order_key(snap);
    ++version_;
    ZKR_WATCH_ASSERT(version_ > pulled_version_);
    {
      std::lock_guard lock(mu_);
      current_ = make_state(snap, change);
    }
    if (listener_) {
      in_callback_ = true;
      const bool go = listener_(std::error_code{}, make_state(snap, change));
      in_callback_ = false;
      if (!go) {
        // The listener asked to stop (kazoo: returning False).
        auto expected = life::started;
        if (life_.compare_exchange_strong(expected, life::closed)) teardown(zkr::operation_aborted());
        return;
      }
      if (drop_listener_) listener_ = nullptr;
    }
    if (waiter_.armed()) hand_over();
  }

  void on_end(std::error_code ec) override {
    ZKR_WATCH_ASSERT(hub_->get_executor().running_in_this_thread());
    ZKR_WATCH_ASSERT(ec);
    this->active = false;
    if (fwd_) fwd_->active = false;
    if (ended_) return;
    ended_ = ec;
    life_.store(life::closed);
    if (auto l = std::move(listener_)) {
      listener_ = nullptr;
      in_callback_ = true;
      (void)l(ec, state_type{});
      in_callback_ = false;
    }
    if (waiter_.armed()) complete_waiter(ec);
  }

 private:
  void begin(listener_type l) {
    ZKR_WATCH_ASSERT(!subscribed_);
    if (life_.load() != life::started) return;  // closed before it began
    listener_ = std::move(l);
    subscribed_ = true;
    fwd_ = std::make_shared<forwarder>();
    fwd_->loop = this->weak_from_this();
    fwd_->follow_creation = this->follow_creation;
    hub_->template subscribe<Snap>(path_, std::static_pointer_cast<sink<Snap>>(fwd_));
  }

  void teardown(std::error_code for_waiter) {
    ZKR_WATCH_ASSERT(hub_->get_executor().running_in_this_thread());
    ZKR_WATCH_ASSERT(life_.load() == life::closed);
    this->active = false;
    if (subscribed_) {
      subscribed_ = false;
      fwd_->active = false;
      hub_->template unsubscribe<Snap>(path_, fwd_.get());
    }
    if (!ended_) ended_ = for_waiter;
    // Never destroy the listener while it runs (it may have closed us): drop it after.
    if (in_callback_) {
      drop_listener_ = true;
    } else {
      listener_ = nullptr;
    }
    if (waiter_.armed()) complete_waiter(for_waiter);
  }

  void next(typename waiter_slot<state_type>::prepared w) {
    ZKR_WATCH_ASSERT(hub_->get_executor().running_in_this_thread());
    const auto& ex = hub_->get_executor();
    if (ended_) return waiter_slot<state_type>::refuse(std::move(w), ex, ended_, state_type{});
    if (waiter_.armed()) {
      return waiter_slot<state_type>::refuse(std::move(w), ex, make_error_code(std::errc::operation_in_progress),
                                             state_type{});
    }
    waiter_.arm(std::move(w));
    if (version_ > pulled_version_) hand_over();
  }

  /// Honoured: terminal, partial and total. Waiting has no side effect: the state that would
  /// have completed this wait stays for the next async_next.
  void cancel_next(std::uint64_t id) {
    if (waiter_.armed() && waiter_.id() == id) complete_waiter(zkr::operation_aborted());
  }

  void hand_over() {
    ZKR_WATCH_ASSERT(waiter_.armed() && latest_);
    ZKR_WATCH_ASSERT(version_ > pulled_version_);
    const Snap* prev = pulled_ ? &*pulled_ : nullptr;
    auto st = make_state(*latest_, change_between(prev, *latest_));
    pulled_ = latest_;
    pulled_version_ = version_;
    complete_waiter(std::error_code{}, std::move(st));
  }

  void complete_waiter(std::error_code ec, state_type st = {}) {
    ZKR_WATCH_ASSERT(waiter_.armed());
    waiter_.complete(hub_->get_executor(), ec, std::move(st));
  }

  /// The sink the hub's channel holds. It refers to the loop weakly: the loop holds the hub,
  /// so a channel holding the loop would make a cycle that only the loop's teardown breaks,
  /// and a loop dropped with its executor stopped (its teardown never run) would leak.
  struct forwarder final : sink<Snap> {
    std::weak_ptr<watch_loop> loop;
    void on_state(const Snap& s) override {
      if (auto l = loop.lock()) l->on_state(s);
    }
    void on_end(std::error_code ec) override {
      if (auto l = loop.lock()) l->on_end(ec);
    }
  };

  std::shared_ptr<hub_core<Session>> hub_;
  std::shared_ptr<forwarder> fwd_;  // executor only; set at begin
  std::string path_;
  std::atomic<life> life_{life::latent};
  // executor only:
  listener_type listener_;
  bool in_callback_ = false;
  bool drop_listener_ = false;
  bool subscribed_ = false;
  std::error_code ended_;
  std::optional<Snap> latest_;
  std::int64_t high_ = 0;
  std::uint64_t version_ = 0;         // accepted states so far
  std::optional<Snap> pulled_;        // the last state async_next returned
  std::uint64_t pulled_version_ = 0;
  waiter_slot<state_type> waiter_;
  std::atomic<std::uint64_t> next_ids_{0};  // ids of async_next calls (cancellation hooks name them)
  // any thread:
  mutable std::mutex mu_;
  std::optional<state_type> current_;
};

/// Validates a recipe's path at construction: throws std::system_error(errc::invalid_path).
inline std::string checked_path(std::string path, const char* who) {
  if (auto ec = validate_path(path)) throw std::system_error(ec, std::string(who) + ": path '" + path + "'");
  return path;
}

}  // namespace detail
}  // namespace zkr::recipes
