// tests/support/runner.hpp: drive asynchronous zkr operations from a test body.
//
// An io_context runs on a background thread for the whole test; the test thread starts
// operations with `tok` (as_tuple(use_future)) and waits for them with `await`, which fails
// the test (instead of hanging) after a real-time limit. Watch handlers record into a
// thread-safe `event_log`, and `once` handlers fail if called twice.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <gtest/gtest.h>

#include <zkr/types.hpp>

namespace zkr::test {

namespace asio = boost::asio;
using namespace std::chrono_literals;

/// The completion token of the tests: a std::future of std::tuple(error_code, results...).
/// (Boost 1.81's as_tuple does not compose with use_future, hence this small token.)
struct future_tuple_t {};
inline constexpr future_tuple_t tok{};

/// Waits for `f` up to `limit` of real time; throws (failing the test) if it does not come.
template <class T>
T await(std::future<T> f, std::chrono::milliseconds limit = 30s) {
  if (f.wait_for(limit) != std::future_status::ready) {
    throw std::runtime_error("operation did not complete within " + std::to_string(limit.count()) + " ms");
  }
  return f.get();
}

/// Polls `pred` every `period` until it holds or `limit` passes; returns its last value.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 20s, std::chrono::milliseconds period = 50ms) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(period);
  }
  return pred();
}

/// An io_context running on its own thread until destruction.
class io_thread {
 public:
  io_thread() : work_(asio::make_work_guard(io_)), thread_([this] { io_.run(); }) {}
  ~io_thread() {
    work_.reset();
    io_.stop();
    thread_.join();
  }
  asio::io_context& context() noexcept { return io_; }
  asio::any_io_executor executor() { return io_.get_executor(); }
  /// Lets queued handlers run out, e.g. before the sessions are destroyed.
  void drain(std::chrono::milliseconds limit = 5s) {
    std::promise<void> p;
    asio::post(io_, [&] { p.set_value(); });
    await(p.get_future(), limit);
  }

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
};

/// Thread-safe record of completions (watch events, session events), waitable by count.
template <class E>
class recorder {
 public:
  void push(E e) {
    {
      std::lock_guard lock(mu_);
      items_.push_back(std::move(e));
    }
    cv_.notify_all();
  }
  /// Waits until at least n items arrived; returns false on timeout.
  bool wait_for(std::size_t n, std::chrono::milliseconds limit = 30s) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, limit, [&] { return items_.size() >= n; });
  }
  std::vector<E> items() const {
    std::lock_guard lock(mu_);
    return items_;
  }
  std::size_t size() const {
    std::lock_guard lock(mu_);
    return items_.size();
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<E> items_;
};

struct watch_record {
  std::error_code ec;
  watch_event event;
  int id = 0;
};

/// Watch handlers that record into one log; each handler must run at most once.
class watch_log : public recorder<watch_record> {
 public:
  /// A watch handler tagged `id`. Calling it twice fails the test.
  auto handler(int id = 0) {
    return [this, id, called = std::make_shared<std::atomic<bool>>(false)](std::error_code ec, watch_event ev) {
      EXPECT_FALSE(called->exchange(true)) << "watch handler " << id << " called twice";
      push({ec, std::move(ev), id});
    };
  }
};

}  // namespace zkr::test

template <class... Args>
struct boost::asio::async_result<zkr::test::future_tuple_t, void(Args...)> {
  using return_type = std::future<std::tuple<std::decay_t<Args>...>>;
  template <class Initiation, class... InitArgs>
  static return_type initiate(Initiation&& init, zkr::test::future_tuple_t, InitArgs&&... args) {
    auto promise = std::make_shared<std::promise<std::tuple<std::decay_t<Args>...>>>();
    auto future = promise->get_future();
    std::forward<Initiation>(init)(
        [promise](Args... a) { promise->set_value(std::make_tuple(std::move(a)...)); },
        std::forward<InitArgs>(args)...);
    return future;
  }
};
