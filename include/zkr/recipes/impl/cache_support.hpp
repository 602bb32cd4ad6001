// zkr/recipes/impl/cache_support.hpp: what node_cache and children_cache share.
//
//   - `listener_set<Event>`: listeners added and removed from any thread, called on the
//     session's executor. Removal on the executor is immediate (no call after it returns);
//     from another thread a call already under way may finish.
//   - `waiter_slot<Args...>`: the one pending operation (a cache's start, a watch's next), with
//     its cancellation hooked in the initiating call.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>
#include <utility>
#include <vector>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/dispatch.hpp>

#include <zkr/detail/pending.hpp>
#include <zkr/recipes/impl/watch_hub.hpp>

namespace zkr::recipes::detail {

template <class Event>
class listener_set {
 public:
  using listener_type = std::function<void(const Event&)>;

  /// Registers `f`; returns its id (never 0). Any thread.
  std::uint64_t add(listener_type f) {
    ZKR_WATCH_ASSERT(static_cast<bool>(f));
    auto e = std::make_shared<entry>();
    e->f = std::move(f);
    std::lock_guard lock(mu_);
    e->id = ++next_;
    entries_.push_back(std::move(e));
    return entries_.back()->id;
  }

  /// Unregisters `id` (unknown ids are ignored). Any thread.
  void remove(std::uint64_t id) {
    std::lock_guard lock(mu_);
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if ((*it)->id == id) {
        (*it)->alive.store(false);
        entries_.erase(it);
        return;
      }
    }
  }

  /// Calls every registered listener with `e`, in registration order. Executor only. A
  /// listener may add or remove listeners (itself too) meanwhile.
  void notify(const Event& e) const {
    std::vector<std::shared_ptr<entry>> copy;
    {
      std::lock_guard lock(mu_);
      copy = entries_;
    }
    for (const auto& x : copy) {
      if (x->alive.load()) x->f(e);
    }
  }

  std::size_t size() const {
    std::lock_guard lock(mu_);
    return entries_.size();
  }

 private:
  struct entry {
    std::uint64_t id = 0;
    listener_type f;
    std::atomic<bool> alive{true};
  };
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<entry>> entries_;
  std::uint64_t next_ = 0;
};

/// At most one pending operation and its cancellation slot.
///
/// Cancellation is hooked in the initiating call (`prepare`, any thread), on the slot of the
/// *type-erased* handler: `any_completion_handler` installs its own cancellation state on the
/// caller's slot, so assigning that slot again would replace it (and a cancellation emitted
/// before a later assignment, on the executor, would be lost). The hook dispatches
/// `on_cancel(id)` to the executor, where it runs after the operation's own dispatched start
/// (both are queued there in that order). Everything else runs on the executor.
template <class... Args>
class waiter_slot {
 public:
  using pending_type = zkr::detail::pending<void(std::error_code, Args...)>;

  /// A handler ready to be armed on the executor.
  struct prepared {
    pending_type w;
    boost::asio::cancellation_slot slot;
    std::uint64_t id = 0;
  };

  /// In the initiating function: type-erases `h`, hooks its cancellation, returns it. Never
  /// invokes anything.
  template <class Handler, class Executor, class OnCancel>
  static prepared prepare(Handler&& h, const Executor& ex, std::uint64_t id, OnCancel on_cancel) {
    boost::asio::any_completion_handler<void(std::error_code, Args...)> erased(std::forward<Handler>(h));
    auto slot = erased.get_cancellation_slot();
    if (slot.is_connected()) {
      slot.assign([ex, on_cancel = std::move(on_cancel), id](boost::asio::cancellation_type) mutable {
        boost::asio::dispatch(ex, [on_cancel, id]() mutable { on_cancel(id); });
      });
    }
    return prepared{pending_type(std::move(erased), ex), slot, id};
  }

  bool armed() const noexcept { return w_.has_value(); }
  std::uint64_t id() const noexcept { return id_; }

  /// Holds the operation until complete(). Requires !armed().
  void arm(prepared p) {
    ZKR_WATCH_ASSERT(!w_.has_value());
    ZKR_WATCH_ASSERT(p.id != 0);
    w_.emplace(std::move(p.w));
    slot_ = p.slot;
    id_ = p.id;
  }

  /// Completes the held operation (posted on `ex`: never inline). Requires armed().
  template <class Executor>
  void complete(const Executor& ex, std::error_code ec, Args... a) {
    ZKR_WATCH_ASSERT(w_.has_value());
    if (slot_.is_connected()) slot_.clear();
    slot_ = {};
    auto w = std::move(*w_);
    w_.reset();
    std::move(w).post_complete(ex, ec, std::move(a)...);
  }

  /// Completes an operation that was never armed (refused at once), posted on `ex`.
  template <class Executor>
  static void refuse(prepared p, const Executor& ex, std::error_code ec, Args... a) {
    if (p.slot.is_connected()) p.slot.clear();
    std::move(p.w).post_complete(ex, ec, std::move(a)...);
  }

 private:
  std::optional<pending_type> w_;
  boost::asio::cancellation_slot slot_;
  std::uint64_t id_ = 0;
};

}  // namespace zkr::recipes::detail
