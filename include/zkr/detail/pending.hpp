// zkr/detail/pending.hpp: one pending completion, and how it is delivered.
//
// Every operation's handler is type-erased into a `pending<Sig>` that also holds work on the
// handler's associated executor and on the session's strand, so an io_context does not run
// out of work while the C client holds a request. Delivery is always two hops: post to the
// strand (which serialises completions in the order the C client produced them), then
// dispatch to the handler's associated executor (inline when that is the strand itself).
#pragma once

#include <tuple>
#include <utility>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>

namespace zkr::detail {

template <class Sig>
class pending;

/// A type-erased handler plus the work guards that keep its executors alive until it runs.
/// Guarantee: invoked at most once (complete() consumes it); a pending destroyed without
/// being completed releases its work and destroys the handler uninvoked.
template <class... Args>
class pending<void(Args...)> {
 public:
  using handler_type = boost::asio::any_completion_handler<void(Args...)>;

  pending() = default;
  pending(pending&&) = default;
  // Boost 1.81's any_completion_handler move assignment wraps the source in a new handler
  // (it forwards an lvalue to the converting constructor) and recurses: never assign.
  pending& operator=(pending&&) = delete;

  template <class Strand>
  pending(handler_type h, const Strand& strand)
      : handler_(std::move(h)),
        handler_work_(boost::asio::prefer(boost::asio::get_associated_executor(handler_, strand),
                                          boost::asio::execution::outstanding_work.tracked)),
        strand_work_(boost::asio::prefer(boost::asio::any_io_executor(strand),
                                         boost::asio::execution::outstanding_work.tracked)) {}

  explicit operator bool() const noexcept { return static_cast<bool>(handler_); }

  /// Posts the completion to `strand`, and from there dispatches it to the handler's
  /// associated executor. Never invokes the handler from within this call.
  template <class Strand>
  void post_complete(const Strand& strand, Args... args) && {
    boost::asio::post(strand, [self = std::move(*this), tup = std::make_tuple(std::move(args)...)]() mutable {
      std::move(self).dispatch_tuple(std::move(tup));
    });
  }

  /// Dispatches the completion to the handler's associated executor: inline when the
  /// caller already runs there (the strand, by default). Call only on the strand.
  void dispatch_complete(Args... args) && {
    std::move(*this).dispatch_tuple(std::make_tuple(std::move(args)...));
  }

 private:
  void dispatch_tuple(std::tuple<Args...> tup) && {
    auto ex = handler_work_;
    boost::asio::dispatch(ex, [h = std::move(handler_), tup = std::move(tup),
                               w1 = std::move(handler_work_), w2 = std::move(strand_work_)]() mutable {
      std::apply(std::move(h), std::move(tup));
    });
  }

  handler_type handler_;
  decltype(boost::asio::prefer(
      boost::asio::get_associated_executor(std::declval<handler_type&>(), std::declval<boost::asio::any_io_executor>()),
      boost::asio::execution::outstanding_work.tracked)) handler_work_;
  decltype(boost::asio::prefer(std::declval<boost::asio::any_io_executor>(),
                               boost::asio::execution::outstanding_work.tracked)) strand_work_;
};

}  // namespace zkr::detail
