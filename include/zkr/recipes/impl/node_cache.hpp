// zkr/recipes/impl/node_cache.hpp: the logic behind zkr/recipes/node_cache.hpp.
//
// A node_cache is one subscriber of a watch_hub data channel (follow_creation on) that keeps
// the latest state it accepted as its view, tells listeners, and completes its start when the
// first state arrives. Each start is a *run* with its own sink object, so that a start
// cancelled back to latent and started again never sees a stale callback of the old run.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#include <boost/asio/async_result.hpp>
#include <boost/asio/dispatch.hpp>

#include <zkr/error.hpp>
#include <zkr/recipes/impl/cache_support.hpp>
#include <zkr/recipes/impl/watch_hub.hpp>
#include <zkr/recipes/impl/watch_loop.hpp>

namespace zkr::recipes::detail {

template <class Session>
class node_cache_core : public std::enable_shared_from_this<node_cache_core<Session>> {
 public:
  using listener_type = std::function<void(const node_state&)>;

  node_cache_core(std::shared_ptr<hub_core<Session>> hub, std::string path)
      : hub_(std::move(hub)), path_(std::move(path)) {}

  const std::string& path() const noexcept { return path_; }
  listener_set<node_state>& listeners() noexcept { return listeners_; }
  life lifecycle() const noexcept { return life_.load(); }
  bool initialized() const noexcept { return initialized_.load(); }

  std::optional<node_state> current() const {
    std::lock_guard lock(mu_);
    return current_;
  }
  std::error_code error() const {
    std::lock_guard lock(mu_);
    return error_;
  }

  template <class Token>
  auto async_start(Token&& token) {
    return boost::asio::async_initiate<Token, void(std::error_code)>(
        [](auto handler, std::shared_ptr<node_cache_core> self) {
          auto expected = life::latent;
          if (!self->life_.compare_exchange_strong(expected, life::started)) {
            throw std::logic_error(expected == life::started ? "node_cache: already started" : "node_cache: closed");
          }
          const auto& ex = self->hub_->get_executor();
          auto w = waiter_slot<>::prepare(std::move(handler), ex, self->start_ids_.fetch_add(1) + 1,
                                          [weak = std::weak_ptr<node_cache_core>(self)](std::uint64_t id) {
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
  struct run_sink final : sink<node_snapshot> {
    std::weak_ptr<node_cache_core> owner;
    std::uint64_t run = 0;
    void on_state(const node_snapshot& s) override {
      if (auto o = owner.lock()) o->on_state(run, s);
    }
    void on_end(std::error_code ec) override {
      if (auto o = owner.lock()) o->on_end(run, ec);
    }
  };

  void begin(typename waiter_slot<>::prepared w) {
    ZKR_WATCH_ASSERT(hub_->get_executor().running_in_this_thread());
    if (life_.load() != life::started) {
      // Closed between the initiation and now.
      return waiter_slot<>::refuse(std::move(w), hub_->get_executor(), zkr::operation_aborted());
    }
    ZKR_WATCH_ASSERT(!sink_ && !waiter_.armed());
    waiter_.arm(std::move(w));
    sink_ = std::make_shared<run_sink>();
    sink_->owner = this->weak_from_this();
    sink_->run = ++run_;
    sink_->follow_creation = true;
    hub_->template subscribe<node_snapshot>(path_, sink_);
  }

  void on_state(std::uint64_t run, const node_snapshot& snap) {
    ZKR_WATCH_ASSERT(hub_->get_executor().running_in_this_thread());
    if (run != run_ || !sink_ || life_.load() != life::started) return;
    const node_snapshot* prev = latest_ ? &*latest_ : nullptr;
    if (classify(prev, high_, snap) != order::newer) return;
    const auto change = change_between(prev, snap);
    latest_ = snap;
    if (snap.exists) high_ = order_key(snap);
    const auto st = make_state(snap, change);
    {
      std::lock_guard lock(mu_);
      current_ = st;
    }
    if (!initialized_.exchange(true) && waiter_.armed()) waiter_.complete(hub_->get_executor(), std::error_code{});
    listeners_.notify(st);
  }

  void on_end(std::uint64_t run, std::error_code ec) {
    ZKR_WATCH_ASSERT(ec);
    if (run != run_ || !sink_) return;
    sink_->active = false;
    sink_.reset();
    {
      std::lock_guard lock(mu_);
      error_ = ec;
    }
    life_.store(life::closed);
    if (waiter_.armed()) waiter_.complete(hub_->get_executor(), ec);
  }

  /// Total cancellation of a start: undo it (no subscription, no view), back to latent.
  void cancel_start(std::uint64_t id) {
    if (!waiter_.armed() || waiter_.id() != id) return;
    auto expected = life::started;
    if (initialized_.load() || !life_.compare_exchange_strong(expected, life::latent)) return;
    end_run(true);
    waiter_.complete(hub_->get_executor(), zkr::operation_aborted());
  }

  void end_run(bool clear_view) {
    ZKR_WATCH_ASSERT(hub_->get_executor().running_in_this_thread());
    if (sink_) {
      sink_->active = false;
      hub_->template unsubscribe<node_snapshot>(path_, sink_.get());
      sink_.reset();
    }
    ++run_;
    if (!clear_view) return;
    latest_.reset();
    high_ = 0;
    initialized_.store(false);
    std::lock_guard lock(mu_);
    current_.reset();
  }

  std::shared_ptr<hub_core<Session>> hub_;
  std::string path_;
  std::atomic<life> life_{life::latent};
  std::atomic<bool> initialized_{false};
  listener_set<node_state> listeners_;
  // executor only:
  std::shared_ptr<run_sink> sink_;
  std::uint64_t run_ = 0;
  std::optional<node_snapshot> latest_;
  std::int64_t high_ = 0;
  waiter_slot<> waiter_;
  std::atomic<std::uint64_t> start_ids_{0};  // ids of starts (cancellation hooks name them)
  // any thread:
  mutable std::mutex mu_;
  std::optional<node_state> current_;
  std::error_code error_;
};

}  // namespace zkr::recipes::detail
