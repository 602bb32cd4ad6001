// Goal: zkr::sim::scheduler, executor and timer form a deterministic discrete-event loop in
// virtual time that Asio code (post/dispatch/defer, bind_executor, strands, any_io_executor,
// cancellation slots, co_spawn with awaitables) runs on unchanged: FIFO at equal times, the
// clock jumping to the next event, exact run_for/run_until ends, timers that complete once
// (success at expiry, operation_aborted when cancelled, re-armed or destroyed) and never
// inline, GC pauses that hold one process's events in order while others go on, and the same
// trace from the same seed.
// Method: small handlers append to a trace; each test asserts the trace, the virtual clock
// and the event count exactly. The determinism test drives a pseudo-random workload from
// zkr::prng and compares trace hashes across runs and seeds. One test prints throughput
// (events per wall second); nothing asserts on wall time.
#include <gtest/gtest.h>

#include <boost/asio/any_io_executor.hpp>  // before pending.hpp, which uses it without including it
#include <zkr/detail/pending.hpp>
#include <zkr/random.hpp>
#include <zkr/sim/scheduler.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/defer.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace zkr::sim {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

std::int64_t ms_of(clock_time t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

/// Records each handler call as "name@ms/p" (virtual ms, running process).
struct trace {
  scheduler& s;
  std::vector<std::string> lines;
  void add(const std::string& name) {
    lines.push_back(name + "@" + std::to_string(ms_of(s.now())) + "/" + std::to_string(s.current_process()));
  }
  auto rec(std::string name) {
    return [this, name = std::move(name)] { add(name); };
  }
  auto rec_ec(std::string name) {
    return [this, name = std::move(name)](std::error_code ec) { add(name + (ec ? ":aborted" : ":ok")); };
  }
};

using lines = std::vector<std::string>;

TEST(Scheduler, StartsAtEpochWithFixedWallEpoch) {
  scheduler s;
  EXPECT_EQ(s.now().time_since_epoch().count(), 0);
  EXPECT_EQ(std::chrono::system_clock::to_time_t(scheduler::wall_epoch()), 1'577'836'800);  // 2020-01-01Z
  s.run_for(1500ms);
  EXPECT_EQ(s.wall_now() - scheduler::wall_epoch(), 1500ms);
}

TEST(Scheduler, PostsAtEqualTimeRunFifoAcrossProcessesAndTimers) {
  scheduler s;
  trace t{s, {}};
  timer due(s.get_executor(3));  // expiry = epoch: already due, queued at async_wait time
  asio::post(s.get_executor(1), t.rec("a"));
  due.async_wait(t.rec_ec("timer"));
  asio::post(s.get_executor(2), t.rec("b"));
  asio::post(s.get_executor(), [&] {
    t.add("c");
    asio::post(s.get_executor(1), t.rec("e"));  // behind d, which was queued first
  });
  asio::post(s.get_executor(1), t.rec("d"));
  EXPECT_EQ(s.run(), 6u);
  EXPECT_EQ(t.lines, (lines{"a@0/1", "timer:ok@0/3", "b@0/2", "c@0/0", "d@0/1", "e@0/1"}));
  EXPECT_EQ(s.events_run(), 6u);
}

TEST(Scheduler, ClockJumpsToNextEventAndTimedEventsKeepInsertionOrder) {
  scheduler s;
  trace t{s, {}};
  timer late(s.get_executor(1), 5s), early(s.get_executor(2), 2s), same(s.get_executor(3), 5s);
  late.async_wait(t.rec_ec("late"));
  early.async_wait([&](std::error_code) {
    t.add("early");
    asio::post(s.get_executor(4), t.rec("posted"));  // runs at 2 s, before the clock moves
  });
  same.async_wait(t.rec_ec("same"));
  s.run();
  EXPECT_EQ(t.lines, (lines{"early@2000/2", "posted@2000/4", "late:ok@5000/1", "same:ok@5000/3"}));
  EXPECT_EQ(s.now(), clock_time(5s));
}

TEST(Scheduler, RunForEndsExactlyEvenWhenIdle) {
  scheduler s;
  EXPECT_EQ(s.run_for(1s), 0u);
  EXPECT_EQ(s.now(), clock_time(1s));
  trace t{s, {}};
  timer tm(s.get_executor(), 1500ms);
  tm.async_wait(t.rec_ec("tm"));  // due at 2.5 s
  EXPECT_EQ(s.run_for(1s), 0u);
  EXPECT_EQ(s.now(), clock_time(2s));
  EXPECT_EQ(s.run_for(1s), 1u);
  EXPECT_EQ(s.now(), clock_time(3s));
  EXPECT_EQ(t.lines, (lines{"tm:ok@2500"
                            "/0"}));
  EXPECT_EQ(s.run_until(clock_time(10s)), 0u);
  EXPECT_EQ(s.now(), clock_time(10s));
  s.run_until(clock_time(4s));  // the past: nothing, the clock does not go back
  EXPECT_EQ(s.now(), clock_time(10s));
}

TEST(Scheduler, RunUntilPredicateStopsRightAfterTheEventThatMakesItTrue) {
  scheduler s;
  int ticks = 0;
  timer tm(s.get_executor(1));
  std::function<void(std::error_code)> tick = [&](std::error_code ec) {
    if (ec) return;
    ++ticks;
    tm.expires_after(100ms);
    tm.async_wait(tick);
  };
  tm.async_wait(tick);
  EXPECT_TRUE(s.run_until([&] { return ticks == 3; }));
  EXPECT_EQ(ticks, 3);
  EXPECT_EQ(s.now(), clock_time(200ms));
  EXPECT_TRUE(s.run_until([&] { return ticks == 3; }));  // already true: runs nothing
  EXPECT_EQ(ticks, 3);
  tm.cancel();
  EXPECT_FALSE(s.run_until([&] { return ticks == 100; }));  // events run out first
  EXPECT_EQ(ticks, 3);
}

TEST(Scheduler, PollRunsOnlyWhatIsRunnableNowAndStopRestart) {
  scheduler s;
  trace t{s, {}};
  timer tm(s.get_executor(), 1s);
  tm.async_wait(t.rec_ec("tm"));
  asio::post(s.get_executor(), [&] {
    t.add("a");
    asio::post(s.get_executor(), t.rec("b"));
  });
  EXPECT_EQ(s.poll(), 2u);
  EXPECT_EQ(s.now(), clock_time());
  asio::post(s.get_executor(), [&] {
    t.add("stopper");
    s.stop();
  });
  asio::post(s.get_executor(), t.rec("after"));
  EXPECT_EQ(s.run(), 1u);
  EXPECT_TRUE(s.stopped());
  EXPECT_EQ(s.run(), 0u);
  s.restart();
  EXPECT_EQ(s.run(), 2u);
  EXPECT_EQ(t.lines, (lines{"a@0/0", "b@0/0", "stopper@0/0", "after@0/0", "tm:ok@1000/0"}));
}

TEST(Scheduler, ZeroDelayLivelockThrowsInsteadOfSpinning) {
  scheduler s(scheduler::options{.max_events_per_instant = 1000, .max_events = 0});
  std::function<void()> again = [&] { asio::post(s.get_executor(), again); };
  asio::post(s.get_executor(), again);
  EXPECT_THROW(s.run(), event_limit_error);
  EXPECT_EQ(s.events_run(), 1000u);
  EXPECT_EQ(s.pending_events(), 1u);  // the next event is still queued, not lost
}

TEST(Scheduler, TotalEventLimitAndHandlerExceptionsLeaveItUsable) {
  scheduler s(scheduler::options{.max_events_per_instant = 0, .max_events = 3});
  int ran = 0;
  asio::post(s.get_executor(), [] { throw std::runtime_error("handler failed"); });
  for (int i = 0; i < 3; ++i) asio::post(s.get_executor(), [&] { ++ran; });
  EXPECT_THROW(s.run(), std::runtime_error);  // the handler's own exception; that event is consumed
  EXPECT_EQ(s.events_run(), 1u);
  EXPECT_THROW(s.run(), event_limit_error);  // two more ran, then the lifetime limit
  EXPECT_EQ(ran, 2);
  EXPECT_THROW(s.run_one(), event_limit_error);  // stays at the limit
  EXPECT_EQ(s.pending_events(), 1u);
}

TEST(Scheduler, RunOneAdvancesToTheNextEvent) {
  scheduler s;
  trace t{s, {}};
  timer tm(s.get_executor(2), 3s);
  tm.async_wait(t.rec_ec("tm"));
  asio::post(s.get_executor(1), t.rec("now"));
  EXPECT_EQ(s.run_one(), 1u);
  EXPECT_EQ(s.now(), clock_time());
  EXPECT_EQ(s.run_one(), 1u);
  EXPECT_EQ(s.now(), clock_time(3s));
  EXPECT_EQ(s.run_one(), 0u);
  EXPECT_EQ(t.lines, (lines{"now@0/1", "tm:ok@3000/2"}));
}

TEST(Timer, CompletesOnceWithAbortedOnCancelRearmAndDestroy) {
  scheduler s;
  trace t{s, {}};
  timer a(s.get_executor(1), 1s);
  a.async_wait(t.rec_ec("a1"));
  a.async_wait(t.rec_ec("a2"));  // several pending waits, like Asio
  auto b = std::make_unique<timer>(s.get_executor(2), 1s);
  b->async_wait(t.rec_ec("b"));
  timer c(s.get_executor(3), 1s);
  c.async_wait(t.rec_ec("c"));
  asio::post(s.get_executor(), [&] {
    EXPECT_EQ(a.cancel(), 2u);
    EXPECT_EQ(a.cancel(), 0u);
    b.reset();
    EXPECT_EQ(c.expires_after(2s), 1u);
    c.async_wait(t.rec_ec("c2"));
  });
  EXPECT_TRUE(t.lines.empty());
  s.run();
  EXPECT_EQ(t.lines, (lines{"a1:aborted@0/1", "a2:aborted@0/1", "b:aborted@0/2", "c:aborted@0/3", "c2:ok@2000/3"}));
}

TEST(Timer, CancelAfterExpiryButBeforeTheHandlerRanStillAborts) {
  scheduler s;
  trace t{s, {}};
  timer a(s.get_executor(1), 1s);
  timer b(s.get_executor(2), 1s);
  a.async_wait([&](std::error_code ec) {
    t.add(ec ? "a:aborted" : "a:ok");
    EXPECT_EQ(b.cancel(), 1u);  // b's expiry is queued behind a's at the same instant
  });
  b.async_wait(t.rec_ec("b"));
  s.run();
  EXPECT_EQ(t.lines, (lines{"a:ok@1000/1", "b:aborted@1000/2"}));
}

TEST(Timer, MovedTimerKeepsItsPendingWaits) {
  scheduler s;
  trace t{s, {}};
  timer a(s.get_executor(1), 1s);
  a.async_wait(t.rec_ec("w1"));
  a.async_wait(t.rec_ec("w2"));
  timer b(std::move(a));
  EXPECT_EQ(a.cancel(), 0u);
  timer c(s.get_executor(1), 2s);
  c.async_wait(t.rec_ec("c"));
  c = std::move(b);  // c's own wait is cancelled; b's two now belong to c
  EXPECT_EQ(c.expiry(), clock_time(1s));
  s.run_for(500ms);
  EXPECT_EQ(c.cancel(), 2u);
  s.run();
  EXPECT_EQ(t.lines, (lines{"c:aborted@0/1", "w1:aborted@500/1", "w2:aborted@500/1"}));
}

TEST(Timer, CompletionIsNeverInline) {
  scheduler s;
  bool called = false;
  timer expired(s.get_executor());
  asio::post(s.get_executor(), [&] {
    expired.async_wait([&](std::error_code ec) {
      EXPECT_FALSE(ec);
      called = true;
    });
    EXPECT_FALSE(called);
    asio::post(s.get_executor(), [&] { EXPECT_TRUE(called); });  // queued after the wait
  });
  s.run();
  EXPECT_TRUE(called);
  EXPECT_EQ(s.events_run(), 3u);
}

TEST(Timer, PerOperationCancellationCancelsOnlyThatWait) {
  for (auto type : {asio::cancellation_type::terminal, asio::cancellation_type::partial,
                    asio::cancellation_type::total}) {
    scheduler s;
    trace t{s, {}};
    asio::cancellation_signal sig;
    timer tm(s.get_executor(1), 1s);
    tm.async_wait(asio::bind_cancellation_slot(sig.slot(), t.rec_ec("bound")));
    tm.async_wait(t.rec_ec("other"));
    timer canceller(s.get_executor(2), 300ms);
    canceller.async_wait([&](std::error_code) { sig.emit(type); });
    s.run();
    EXPECT_EQ(t.lines, (lines{"bound:aborted@300/1", "other:ok@1000/1"})) << static_cast<int>(type);
    sig.emit(type);  // after completion the slot is cleared: nothing happens
  }
}

TEST(Timer, HonoursTheHandlersAssociatedExecutor) {
  scheduler s;
  trace t{s, {}};
  timer tm(s.get_executor(1), 1s);
  tm.async_wait(asio::bind_executor(s.get_executor(7), t.rec_ec("bound")));
  auto strand = asio::make_strand(s.get_executor(8));
  tm.async_wait(asio::bind_executor(strand, [&](std::error_code) {
    t.add(strand.running_in_this_thread() ? "strand" : "not-strand");
  }));
  s.run();
  // Both are re-queued from the expiry (process 1) to their own executors, in wait order.
  EXPECT_EQ(t.lines, (lines{"bound:ok@1000/7", "strand@1000/8"}));
}

TEST(Executor, WorksWithPostDispatchDeferAndBindExecutor) {
  scheduler s;
  trace t{s, {}};
  auto e1 = s.get_executor(1);
  asio::post(e1, [&] {
    // The default executor is blocking.never, so dispatch queues like post (Boost 1.81's
    // dispatch executes with the executor's own blocking property); the possibly-blocking
    // executor runs inline when its process is the one running.
    asio::dispatch(e1, t.rec("dispatch-same"));
    asio::require(e1, asio::execution::blocking.possibly).execute(t.rec("possibly-inline"));
    asio::require(s.get_executor(2), asio::execution::blocking.possibly).execute(t.rec("possibly-other"));
    asio::dispatch(s.get_executor(2), t.rec("dispatch-other"));
    asio::defer(e1, t.rec("defer"));
    asio::post(e1, asio::bind_executor(s.get_executor(3), t.rec("bound")));
    t.add("end-of-first");
  });
  asio::dispatch(e1, t.rec("dispatch-from-outside"));  // not running: queued, never inline
  s.run();
  EXPECT_EQ(t.lines, (lines{"possibly-inline@0/1", "end-of-first@0/1", "dispatch-from-outside@0/1",
                            "dispatch-same@0/1", "possibly-other@0/2", "dispatch-other@0/2", "defer@0/1",
                            "bound@0/3"}));
  EXPECT_EQ(e1, s.get_executor(1));
  EXPECT_NE(e1, s.get_executor(2));
  EXPECT_EQ(&asio::query(e1, asio::execution::context), &s);
  EXPECT_EQ(asio::query(e1, asio::execution::blocking), asio::execution::blocking.never);
  EXPECT_EQ(asio::prefer(e1, asio::execution::outstanding_work.tracked), e1);
  EXPECT_EQ(asio::prefer(e1, asio::execution::outstanding_work.untracked), e1);
  EXPECT_EQ(asio::prefer(e1, asio::execution::relationship.fork), e1);
  EXPECT_EQ(asio::prefer(e1, asio::execution::relationship.continuation), e1);
  EXPECT_EQ(asio::require(e1, asio::execution::blocking.never), e1);
}

TEST(Executor, ConvertsToAnyIoExecutorAndWorksWithPendingAndStrand) {
  scheduler s;
  trace t{s, {}};
  asio::any_io_executor any = s.get_executor(4);
  auto tracked = asio::prefer(any, asio::execution::outstanding_work.tracked);
  asio::post(tracked, t.rec("any"));
  EXPECT_EQ(any.target<executor>()->process(), 4u);
  EXPECT_EQ(&asio::query(any, asio::execution::context), static_cast<asio::execution_context*>(&s));

  // zkr::detail::pending (what the backends use) over the sim executor as the "strand".
  auto strand = asio::make_strand(s.get_executor(5));
  zkr::detail::pending<void(std::error_code)> p(
      asio::any_completion_handler<void(std::error_code)>([&](std::error_code ec) {
        t.add(std::string("pending:") + (ec ? "aborted" : "ok"));
      }),
      strand);
  std::move(p).post_complete(strand, zkr::operation_aborted());
  s.run();
  EXPECT_EQ(t.lines, (lines{"any@0/4", "pending:aborted@0/5"}));
}

asio::awaitable<int, executor> three_waits(trace& t) {
  auto ex = co_await asio::this_coro::executor;
  timer tm(ex);
  int ok = 0;
  for (int i = 0; i < 3; ++i) {
    tm.expires_after(250ms);
    std::error_code ec = co_await tm.async_wait(asio::use_awaitable_t<executor>{});
    t.add("woke");
    if (!ec) ++ok;
  }
  co_return ok;
}

TEST(Executor, CoSpawnAwaitableAdvancesVirtualTimeExactly) {
  scheduler s;
  trace t{s, {}};
  std::optional<int> result;
  asio::co_spawn(s.get_executor(6), three_waits(t), [&](std::exception_ptr e, int ok) {
    EXPECT_FALSE(e);
    result = ok;
    t.add("done");
  });
  s.run();
  ASSERT_TRUE(result);
  EXPECT_EQ(*result, 3);
  EXPECT_EQ(s.now(), clock_time(750ms));
  EXPECT_EQ(t.lines, (lines{"woke@250/6", "woke@500/6", "woke@750/6", "done@750/6"}));
}

asio::awaitable<std::error_code, executor> wait_long() {
  timer tm(co_await asio::this_coro::executor, 1h);
  co_return co_await tm.async_wait(asio::use_awaitable_t<executor>{});  // std::error_code: returned, not thrown
}

TEST(Executor, CoSpawnCancellationReachesTheTimerWait) {
  scheduler s;
  asio::cancellation_signal sig;
  std::optional<std::error_code> result;
  asio::co_spawn(s.get_executor(2), wait_long(),
                 asio::bind_cancellation_slot(sig.slot(), [&](std::exception_ptr e, std::error_code ec) {
                   EXPECT_FALSE(e);
                   result = ec;
                 }));
  s.run_for(1s);
  EXPECT_FALSE(result);
  sig.emit(asio::cancellation_type::terminal);
  s.run();
  ASSERT_TRUE(result);
  EXPECT_EQ(*result, zkr::operation_aborted());
  EXPECT_EQ(s.now(), clock_time(1s));
}

asio::awaitable<void, executor> wait_forever(bool& destroyed) {
  struct flag {
    bool& f;
    ~flag() { f = true; }
  } guard{destroyed};
  timer tm(co_await asio::this_coro::executor);
  tm.expires_at(clock_time::max());
  co_await tm.async_wait(asio::use_awaitable_t<executor>{});
}

TEST(Scheduler, RunReturnsOnNeverExpiringWaitsAndDestructionFreesThem) {
  bool destroyed = false;
  {
    scheduler s;
    asio::co_spawn(s.get_executor(1), wait_forever(destroyed), asio::detached);
    s.run();
    EXPECT_EQ(s.now(), clock_time());  // the clock did not jump to the end of time
    EXPECT_FALSE(destroyed);
    auto dropped = std::make_shared<int>(0);
    asio::post(s.get_executor(2), [dropped] {});
    EXPECT_EQ(dropped.use_count(), 2);
  }
  EXPECT_TRUE(destroyed);  // the coroutine frame (and its timer) died with the scheduler
}

TEST(Pause, HoldsOneProcessInOrderWhileOthersRun) {
  scheduler s;
  trace t{s, {}};
  timer p1_timer(s.get_executor(1), 20ms), p2_timer(s.get_executor(2), 20ms);
  p1_timer.async_wait(t.rec_ec("p1-timer"));
  p2_timer.async_wait(t.rec_ec("p2-timer"));
  asio::post(s.get_executor(), [&] {
    s.pause(1, clock_time(100ms));
    asio::post(s.get_executor(1), t.rec("p1-a"));
    asio::post(s.get_executor(2), t.rec("p2-a"));
    asio::post(s.get_executor(1), t.rec("p1-b"));
  });
  timer world(s.get_executor(), 50ms);
  world.async_wait([&](std::error_code) {
    t.add("world");
    EXPECT_TRUE(s.paused(1));
    EXPECT_EQ(s.held_events(1), 3u);
    asio::post(s.get_executor(1), t.rec("p1-c"));  // held behind the others
  });
  s.run();
  EXPECT_FALSE(s.paused(1));
  EXPECT_EQ(s.held_events(1), 0u);
  EXPECT_EQ(t.lines, (lines{"p2-a@0/2", "p2-timer:ok@20/2", "world@50/0", "p1-a@100/1", "p1-b@100/1",
                            "p1-timer:ok@100/1", "p1-c@100/1"}));
}

TEST(Pause, ResumeKeepsFifoWithEventsAlreadyQueued) {
  // Queue: A(p1) resume(p1) B(p1). A is held (paused); after the resume, B must still run
  // after A, although B was in the ready queue before A was released.
  scheduler s;
  trace t{s, {}};
  s.pause(1, clock_time::max());
  asio::post(s.get_executor(1), t.rec("A"));
  asio::post(s.get_executor(), [&] { s.resume(1); });
  asio::post(s.get_executor(1), [&] {
    t.add("B");
    asio::post(s.get_executor(1), t.rec("D"));
  });
  asio::post(s.get_executor(2), t.rec("C"));
  s.run();
  EXPECT_EQ(t.lines, (lines{"C@0/2", "A@0/1", "B@0/1", "D@0/1"}));
}

TEST(Pause, IndefinitePauseHoldsUntilResumeAndExtendsKeepTheLaterEnd) {
  scheduler s;
  trace t{s, {}};
  s.pause(3, clock_time(1s));
  s.pause(3, clock_time(500ms));  // earlier end: ignored
  timer tm(s.get_executor(3), 10ms);
  tm.async_wait(t.rec_ec("tm"));
  s.run();
  EXPECT_EQ(t.lines, (lines{"tm:ok@1000/3"}));

  s.pause(3, clock_time::max());
  asio::post(s.get_executor(3), t.rec("held"));
  EXPECT_EQ(s.run(), 0u);  // nothing can resume it: run returns
  EXPECT_EQ(s.held_events(3), 1u);
  s.run_for(2s);
  s.resume(3);
  s.run();
  EXPECT_EQ(t.lines.back(), "held@3000/3");
  // A cancel while held: the held expiry completes with the error at the resume.
  tm.expires_after(10ms);
  tm.async_wait(t.rec_ec("tm2"));
  s.pause_for(3, 1s);
  s.run_for(100ms);
  EXPECT_EQ(tm.cancel(), 1u);
  s.run();
  EXPECT_EQ(t.lines.back(), "tm2:aborted@4000/3");
}

/// A pseudo-random workload: processes post and arm timers with random delays, cancel,
/// pause and resume each other. Returns the trace's FNV-1a hash.
std::uint64_t random_workload(std::uint64_t seed, std::size_t* events = nullptr) {
  scheduler s;
  prng rng(seed);
  std::string out;
  constexpr process_id processes = 8;
  std::vector<std::unique_ptr<timer>> timers;
  for (process_id p = 0; p < processes; ++p) timers.push_back(std::make_unique<timer>(s.get_executor(p)));
  int budget = 20'000;  // ids below wrap modulo 2^64 (well defined for unsigned)
  std::function<void(std::uint64_t)> act = [&](std::uint64_t id) {
    out += std::to_string(s.now().time_since_epoch().count()) + " p" + std::to_string(s.current_process()) + " #" +
           std::to_string(id) + "\n";
    if (--budget <= 0) return;
    const auto p = static_cast<process_id>(rng.uniform(processes));
    switch (rng.uniform(6)) {
      case 0:
      case 1:
        asio::post(s.get_executor(p), [&act, id] { act(id * 3 + 1); });
        break;
      case 2:
      case 3:
        timers[p]->expires_after(rng.uniform_duration<clock_duration::rep, std::nano>(0ns, 5ms));
        timers[p]->async_wait([&act, id](std::error_code ec) { act(id * 3 + (ec ? 2 : 0)); });
        break;
      case 4:
        if (p != world_process) s.pause_for(p, rng.uniform_duration<clock_duration::rep, std::nano>(0ns, 3ms));
        asio::post(s.get_executor(p), [&act, id] { act(id * 5); });
        break;
      default:
        s.resume(p);
        timers[p]->cancel();
        asio::post(s.get_executor(p), [&act, id] { act(id * 7); });
        break;
    }
  };
  for (process_id p = 0; p < processes; ++p) asio::post(s.get_executor(p), [&act, p] { act(p); });
  s.run();
  timers.clear();
  if (events) *events = s.events_run();
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : out) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

TEST(Determinism, SameSeedSameTraceOtherSeedOtherTrace) {
  std::size_t events = 0;
  const std::uint64_t a = random_workload(42, &events);
  // Printed so that builds (normal, sanitizer, other compilers) can be compared by hand.
  std::printf("random_workload(42): %zu events, trace hash %016llx\n", events, static_cast<unsigned long long>(a));
  EXPECT_GT(events, 1000u);
  EXPECT_EQ(a, random_workload(42));
  EXPECT_NE(a, random_workload(43));
}

TEST(Throughput, PrintsEventsPerWallSecond) {
  // 64 processes, each a chain of posts and short timers: a mix like a busy simulation.
  scheduler s;
  constexpr int processes = 64;
  constexpr int rounds = 20'000;
  std::vector<std::unique_ptr<timer>> timers;
  std::vector<int> left(processes, rounds);
  std::function<void(int)> step = [&](int p) {
    if (--left[static_cast<std::size_t>(p)] <= 0) return;
    if (left[static_cast<std::size_t>(p)] % 2 == 0) {
      asio::post(s.get_executor(static_cast<process_id>(p)), [&step, p] { step(p); });
    } else {
      auto& tm = *timers[static_cast<std::size_t>(p)];
      tm.expires_after(std::chrono::microseconds(1 + p));
      tm.async_wait([&step, p](std::error_code) { step(p); });
    }
  };
  for (int p = 0; p < processes; ++p) {
    timers.push_back(std::make_unique<timer>(s.get_executor(static_cast<process_id>(p))));
    asio::post(s.get_executor(static_cast<process_id>(p)), [&step, p] { step(p); });
  }
  const auto start = std::chrono::steady_clock::now();
  s.run();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("zkr::sim::scheduler: %llu events in %.3f s wall = %.2f M events/s (virtual %.3f s)\n",
              static_cast<unsigned long long>(s.events_run()), secs, static_cast<double>(s.events_run()) / secs / 1e6,
              std::chrono::duration<double>(s.now().time_since_epoch()).count());
  EXPECT_EQ(s.events_run(), static_cast<std::uint64_t>(processes) * rounds);
}

}  // namespace
}  // namespace zkr::sim
