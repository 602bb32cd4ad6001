// zkr/sim/scheduler.hpp: the simulator's deterministic discrete-event scheduler, its Asio
// executor and its virtual-time timer.
//
// `scheduler` is a single-threaded event loop over a virtual clock (steady_clock time points
// starting at the epoch, nanosecond resolution). Every event has a time and a sequence number
// drawn from one counter; events run in (time, sequence) order, never in pointer or hash
// order, so the same program gives the same order of events, byte for byte, on every run.
// When nothing is runnable now, the clock jumps to the next timed event: an hour of simulated
// life costs only the events in it.
//
// `executor` is an Asio standard executor (Boost 1.81 `execution::executor`) that posts to a
// scheduler on behalf of a *process* (a simulated client process; 0 is the "world": servers,
// links, fault injection). It works with post, dispatch, defer, bind_executor, strand,
// any_io_executor and co_spawn (`awaitable<T, executor>`, `use_awaitable_t<executor>`).
// `timer` is a waitable timer in virtual time with Asio's async_wait contract.
//
// Processes can be paused (a GC pause): their events (posted handlers, timer expiries and
// cancellations) are held, in their original order, while other processes go on, and run at
// the resume time.
//
// Thread safety: none. A scheduler, its executors and its timers are used from one thread:
// the thread that runs the scheduler (before, between and during run calls).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution/blocking.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/execution/executor.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/execution/relationship.hpp>
#include <boost/asio/execution_context.hpp>

#include <zkr/error.hpp>

namespace zkr::sim {

/// A point in virtual time. The simulation starts at the epoch (time_since_epoch() == 0).
using clock_time = std::chrono::steady_clock::time_point;
/// A span of virtual time (nanoseconds).
using clock_duration = std::chrono::steady_clock::duration;
static_assert(std::is_same_v<clock_duration::period, std::nano>, "zkr::sim needs a nanosecond steady_clock");

/// Identifies a simulated process. Process 0 (`world_process`) is the world: servers, links,
/// faults; it can never be paused.
using process_id = std::uint32_t;
inline constexpr process_id world_process = 0;

class scheduler;
class executor;
class timer;

/// Thrown by the run functions when an event limit of `scheduler::options` is reached: the
/// simulated program is most likely in a livelock (a handler that re-posts itself at zero
/// delay forever). The event that would have exceeded the limit has not run; the scheduler is
/// consistent (call restart() to reset the per-instant count and go on, or destroy it).
class event_limit_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {

/// Broken invariants crash (a simulator bug or API misuse, never an operating error).
[[noreturn]] inline void sim_fail(const char* what) noexcept {
  std::fprintf(stderr, "zkr::sim: broken invariant: %s\n", what);
  std::abort();
}
inline void sim_check(bool ok, const char* what) noexcept {
  if (!ok) [[unlikely]]
    sim_fail(what);
}

inline constexpr std::size_t not_in_heap = std::numeric_limits<std::size_t>::max();

/// One event. Owned by the scheduler while queued (ready queue, timer heap or a process's
/// held queue); `complete` consumes it: it frees the op before running user code, so a
/// handler may reuse the memory and an exception from it leaks nothing. Deleting an op
/// destroys it without running it (at scheduler destruction).
struct op {
  op* next = nullptr;                  // ready / held queue link
  clock_time time{};                   // when it is due
  std::uint64_t seq = 0;               // tie-break among equal times: insertion order
  std::size_t heap_index = not_in_heap;
  process_id process = world_process;  // whose event this is (pause holds it)

  op() = default;
  op(const op&) = delete;
  op& operator=(const op&) = delete;
  virtual ~op() = default;
  virtual void complete(scheduler& s) = 0;
};

/// An intrusive FIFO of ops.
struct op_queue {
  op* head = nullptr;
  op* tail = nullptr;
  std::size_t size = 0;

  bool empty() const noexcept { return head == nullptr; }
  void push_back(op* o) noexcept {
    o->next = nullptr;
    if (tail) {
      tail->next = o;
    } else {
      head = o;
    }
    tail = o;
    ++size;
  }
  op* pop_front() noexcept {
    op* o = head;
    head = o->next;
    if (!head) tail = nullptr;
    o->next = nullptr;
    --size;
    return o;
  }
};

/// A posted function object.
template <class F>
struct post_op final : op {
  template <class G>
  explicit post_op(G&& g) : f(std::forward<G>(g)) {}
  void complete(scheduler&) override {
    F local(std::move(f));
    delete this;
    std::move(local)();
  }
  F f;
};

}  // namespace detail

/// The simulator's event loop. See the file comment.
/// Thread safety: one thread (the one that runs it) for everything, executors and timers
/// included. Not copyable or movable (executors and timers point at it).
class scheduler : public boost::asio::execution_context {
 public:
  /// Limits on a run (a limit on everything: a livelocked simulation must fail loudly, not
  /// spin). Exceeding one throws event_limit_error from the run function.
  struct options {
    /// Events that may run at one virtual instant before the clock moves (0: no limit). A
    /// handler that re-posts itself with zero delay never lets time advance; real work in a
    /// simulation takes virtual time, so ten million events at one instant is a bug, and
    /// the limit turns that hang into an exception in well under a second of wall time.
    std::uint64_t max_events_per_instant = 10'000'000;
    /// Events over the scheduler's whole life (0: no limit); for seed sweeps that must end.
    std::uint64_t max_events = 0;
  };

  scheduler() : scheduler(options{}) {}
  explicit scheduler(options o) : options_(o) {}
  scheduler(const scheduler&) = delete;
  scheduler& operator=(const scheduler&) = delete;

  /// Destroys every queued, timed and held event without running it (their handlers'
  /// destructors may post or cancel timers; those events are destroyed too). Timers must be
  /// destroyed before their scheduler, except those owned by handlers destroyed here.
  ~scheduler() {
    discard_pending();
    destroy();
  }

  /// Destroys every queued, timed and held event without running it, as the destructor does
  /// (services are shut down too: nothing may run on the scheduler afterwards). For an owner
  /// about to be destroyed whose handlers reach into it (the cluster): it discards them first,
  /// while it is still whole. Never fails.
  void discard_pending() {
    shutdown();  // services (e.g. strands) drop their handlers first
    for (;;) {
      if (!ready_.empty()) {
        delete ready_.pop_front();
      } else if (!heap_.empty()) {
        detail::op* o = heap_.back();
        heap_.pop_back();  // removing the last element keeps the heap a heap
        o->heap_index = detail::not_in_heap;
        delete o;
      } else if (!processes_.empty()) {
        auto it = processes_.begin();
        if (it->second.held.empty()) {
          processes_.erase(it);
        } else {
          delete it->second.held.pop_front();
        }
      } else {
        break;
      }
    }
  }

  /// An executor whose events belong to `process` (default: the world). Never fails.
  inline executor get_executor(process_id process = world_process) noexcept;

  /// The virtual time: the due time of the event running now, or where the last run call
  /// left the clock. Starts at the epoch; never goes back.
  clock_time now() const noexcept { return now_; }

  /// The fixed wall-clock instant that virtual time zero stands for: 2020-01-01T00:00:00Z
  /// (1,577,836,800 s after the Unix epoch), so simulated wall time is reproducible.
  static constexpr std::chrono::system_clock::time_point wall_epoch() noexcept {
    return std::chrono::system_clock::time_point(std::chrono::seconds(1'577'836'800));
  }
  /// wall_epoch() + the virtual time elapsed since the start.
  std::chrono::system_clock::time_point wall_now() const noexcept {
    return wall_epoch() + std::chrono::duration_cast<std::chrono::system_clock::duration>(now_.time_since_epoch());
  }

  /// Runs events until none is left (or stop()). Returns how many ran. Events held by a
  /// paused process with no resume time, and timer waits with expiry time_point::max(), do
  /// not keep it running: they can never become due by themselves.
  /// Throws event_limit_error (see options) or whatever a handler throws (that event is
  /// consumed; call run again to go on). Must not be called from within a handler.
  std::size_t run() { return run_impl(clock_time::max() - clock_duration(1), false); }

  /// Runs at most one event, advancing the clock to it if nothing is runnable now. Returns
  /// 1 if an event ran, else 0.
  std::size_t run_one() {
    run_guard guard(*this);
    for (;;) {
      if (stopped_) return 0;
      const step s = step_once(clock_time::max() - clock_duration(1));
      if (s == step::ran) return 1;
      if (s == step::none) return 0;
    }
  }

  /// Runs events due until `now() + d`, then sets the clock to exactly now() + d (even if
  /// idle), unless stop() was called. Returns how many events ran. Saturates at the end of
  /// time. Same errors as run().
  std::size_t run_for(clock_duration d) { return run_until(saturating_add(now_, d)); }

  /// Runs events due at or before `deadline`, then sets the clock to `deadline` unless
  /// stop() was called. A deadline before now() runs what is runnable now, like poll().
  std::size_t run_until(clock_time deadline) { return run_impl(deadline, true); }

  /// Runs events until `pred()` is true, checking it first and then after every event.
  /// Returns true when it is, false if the events ran out (as in run()) or stop() was
  /// called first. The clock stays at the last event's time.
  template <class Pred>
    requires std::is_invocable_r_v<bool, Pred&>
  bool run_until(Pred pred) {
    run_guard guard(*this);
    if (pred()) return true;
    while (!stopped_) {
      const step s = step_once(clock_time::max() - clock_duration(1));
      if (s == step::none) return false;
      if (s == step::ran && pred()) return true;
    }
    return false;
  }

  /// Runs events due at or before `deadline` until `pred()` is true (checked first, then
  /// after every event). Returns true when it is; false if `deadline` came first (the clock
  /// is then at `deadline`, as run_until(deadline) leaves it), the events ran out, or stop()
  /// was called. Leaves nothing behind in the queue.
  template <class Pred>
    requires std::is_invocable_r_v<bool, Pred&>
  bool run_until(Pred pred, clock_time deadline) {
    {
      run_guard guard(*this);
      if (pred()) return true;
      while (!stopped_) {
        const step s = step_once(deadline);
        if (s == step::none) break;
        if (s == step::ran && pred()) return true;
      }
    }
    if (!stopped_ && deadline > now_ && deadline != clock_time::max()) {
      now_ = deadline;
      events_this_instant_ = 0;
    }
    return pred();
  }

  /// Runs the events runnable now (including those they post for now), never advancing
  /// the clock. Returns how many ran.
  std::size_t poll() { return run_impl(now_, false); }

  /// Queues `f` as an event of `process` due at `t` (now if `t <= now()`), in (time, sequence)
  /// order like every event. The simulator's network uses it for message delivery: a message
  /// to a paused client process is held with the rest of that process's events.
  /// Throws only std::bad_alloc (nothing is queued then).
  template <class F>
  void post_at(process_id process, clock_time t, F&& f) {
    auto* o = new detail::post_op<std::decay_t<F>>(std::forward<F>(f));
    o->process = process;
    schedule(o, t);
  }
  /// post_at(process, now() + d, f), saturating.
  template <class F>
  void post_after(process_id process, clock_duration d, F&& f) {
    post_at(process, saturating_add(now_, d), std::forward<F>(f));
  }

  /// Makes the current run call return after the event running now; later run calls return
  /// at once until restart(). Events stay queued.
  void stop() noexcept { stopped_ = true; }
  /// Whether stop() was called since the last restart().
  bool stopped() const noexcept { return stopped_; }
  /// Clears the stopped state and the per-instant event count.
  void restart() noexcept {
    stopped_ = false;
    events_this_instant_ = 0;
  }

  /// Events run so far (posted handlers, timer completions, held events released).
  std::uint64_t events_run() const noexcept { return events_run_; }
  /// Events waiting: runnable now, timed, or held by paused processes (including the
  /// scheduler's own pause-end and release events, so use it for "is anything left").
  std::size_t pending_events() const noexcept {
    std::size_t n = ready_.size + heap_.size();
    for (const auto& [pid, st] : processes_) n += st.held.size;
    return n;
  }
  /// The process whose event is running, or world_process between events.
  process_id current_process() const noexcept { return current_; }
  /// True while a handler of `process` runs inside this scheduler's run call (so a dispatch
  /// to that process may run inline).
  bool running_in(process_id process) const noexcept { return running_ && current_ == process; }

  /// Pauses `process` (a GC pause) from now until `until`, or until resume(): its events
  /// (posted handlers, timer expiries and cancellations) are held in the order they would
  /// have run; other processes' events go on. At the resume time the held events run, in
  /// that order, before any later event of the process. Pausing a paused process extends
  /// the pause to the later of the two ends. `until <= now()` does nothing; `clock_time::max()`
  /// pauses until resume(). A pause takes effect from the next event: a handler of the
  /// process that pauses it runs to its end. Crashes if `process` is the world.
  void pause(process_id process, clock_time until) {
    detail::sim_check(process != world_process, "pause: the world process cannot be paused");
    if (until <= now_) return;
    process_state& st = processes_[process];
    if (st.paused && st.until >= until) return;
    st.paused = true;
    st.until = until;
    if (st.auto_resume) {
      heap_remove(st.auto_resume);
      delete st.auto_resume;
      st.auto_resume = nullptr;
    }
    if (until != clock_time::max()) {
      st.auto_resume = new resume_op(process);
      schedule(st.auto_resume, until);
    }
  }
  /// pause(process, now() + d), saturating.
  void pause_for(process_id process, clock_duration d) { pause(process, saturating_add(now_, d)); }

  /// Ends a pause now: the held events are released, in order, at the current instant.
  /// Resuming a process that is not paused does nothing.
  void resume(process_id process) {
    auto it = processes_.find(process);
    if (it == processes_.end() || !it->second.paused) return;
    process_state& st = it->second;
    st.paused = false;
    if (st.auto_resume) {
      heap_remove(st.auto_resume);
      delete st.auto_resume;
      st.auto_resume = nullptr;
    }
    if (!st.held.empty() && !st.release_queued) {
      st.release_queued = true;
      schedule(new release_op(process), now_);
    }
    erase_if_idle(it);
  }
  /// Whether `process` is paused now.
  bool paused(process_id process) const noexcept {
    auto it = processes_.find(process);
    return it != processes_.end() && it->second.paused;
  }
  /// How many events of `process` are held (paused, or released but not yet run).
  std::size_t held_events(process_id process) const noexcept {
    auto it = processes_.find(process);
    return it == processes_.end() ? 0 : it->second.held.size;
  }

 private:
  friend class executor;
  friend class timer;

  enum class step { none, ran, held };

  struct process_state {
    bool paused = false;
    bool release_queued = false;  // a release_op for it is in the ready queue
    clock_time until{};
    detail::op* auto_resume = nullptr;  // in the heap while the pause has an end
    detail::op_queue held;
  };

  /// Ends a timed pause (a world event at the pause's end).
  struct resume_op final : detail::op {
    explicit resume_op(process_id p) : target(p) {}
    void complete(scheduler& s) override {
      auto it = s.processes_.find(target);
      sim_check_owner(it != s.processes_.end() && it->second.auto_resume == this);
      it->second.auto_resume = nullptr;
      const process_id p = target;
      delete this;
      s.resume(p);
    }
    static void sim_check_owner(bool ok) noexcept { detail::sim_check(ok, "resume_op without its pause"); }
    process_id target;
  };

  /// Runs the oldest held event of a resumed process, and queues itself again behind the
  /// events now runnable while more are held. One held event per step keeps the per-process
  /// FIFO exact: an event of the process reaching the front of the ready queue meanwhile is
  /// newer than every held one, so it is held behind them (see step_once).
  struct release_op final : detail::op {
    explicit release_op(process_id p) : target(p) {}
    void complete(scheduler& s) override {
      const process_id p = target;
      delete this;
      s.release_one(p);
    }
    process_id target;
  };

  struct run_guard {
    explicit run_guard(scheduler& s) : s_(s) {
      detail::sim_check(!s.running_, "scheduler run called from within a handler");
      s.running_ = true;
    }
    ~run_guard() {
      s_.running_ = false;
      s_.current_ = world_process;
    }
    run_guard(const run_guard&) = delete;
    run_guard& operator=(const run_guard&) = delete;
    scheduler& s_;
  };

  struct current_guard {
    current_guard(scheduler& s, process_id p) : s_(s), saved_(s.current_) { s.current_ = p; }
    ~current_guard() { s_.current_ = saved_; }
    current_guard(const current_guard&) = delete;
    current_guard& operator=(const current_guard&) = delete;
    scheduler& s_;
    process_id saved_;
  };

  static clock_time saturating_add(clock_time t, clock_duration d) noexcept {
    if (d <= clock_duration::zero()) return t;
    if (d > clock_time::max() - t) return clock_time::max();
    return t + d;
  }

  std::size_t run_impl(clock_time deadline, bool set_clock) {
    run_guard guard(*this);
    std::size_t n = 0;
    while (!stopped_) {
      const step s = step_once(deadline);
      if (s == step::none) break;
      if (s == step::ran) ++n;
    }
    if (set_clock && !stopped_ && deadline > now_) {
      now_ = deadline;
      events_this_instant_ = 0;
    }
    return n;
  }

  /// Runs (or holds) the next event due at or before `deadline`. Never advances the clock
  /// past `deadline`, nor to clock_time::max() (a wait that never expires).
  step step_once(clock_time deadline) {
    if (ready_.empty()) {
      if (heap_.empty()) return step::none;
      const clock_time t = heap_.front()->time;
      if (t > deadline || t == clock_time::max()) return step::none;
      advance_to(t);
    }
    check_limits();
    detail::op* o = ready_.pop_front();
    if (o->process != world_process && !processes_.empty()) {
      auto it = processes_.find(o->process);
      if (it != processes_.end() && (it->second.paused || !it->second.held.empty())) {
        it->second.held.push_back(o);
        return step::held;
      }
    }
    ++events_run_;
    ++events_this_instant_;
    current_guard cg(*this, o->process);
    o->complete(*this);
    return step::ran;
  }

  void check_limits() const {
    if (options_.max_events_per_instant != 0 && events_this_instant_ >= options_.max_events_per_instant) {
      throw event_limit_error("zkr::sim: " + std::to_string(events_this_instant_) +
                              " events at virtual time " + std::to_string(now_.time_since_epoch().count()) +
                              " ns without the clock moving (livelock?)");
    }
    if (options_.max_events != 0 && events_run_ >= options_.max_events) {
      throw event_limit_error("zkr::sim: event limit of " + std::to_string(options_.max_events) + " reached");
    }
  }

  /// Moves the clock to `t` (> now) and makes every event due at `t` runnable, in order.
  void advance_to(clock_time t) {
    detail::sim_check(t > now_ && ready_.empty(), "advance_to: time goes back or events runnable");
    now_ = t;
    events_this_instant_ = 0;
    while (!heap_.empty() && heap_.front()->time == t) ready_.push_back(heap_pop());
  }

  void release_one(process_id p) {
    auto it = processes_.find(p);
    detail::sim_check(it != processes_.end() && it->second.release_queued, "release without a process");
    process_state& st = it->second;
    st.release_queued = false;
    if (st.paused || st.held.empty()) {  // paused again before the release ran
      erase_if_idle(it);
      return;
    }
    detail::op* o = st.held.pop_front();
    if (!st.held.empty()) {
      st.release_queued = true;
      schedule(new release_op(p), now_);
    } else {
      erase_if_idle(it);
    }
    current_guard cg(*this, o->process);
    o->complete(*this);
  }

  void erase_if_idle(std::map<process_id, process_state>::iterator it) {
    const process_state& st = it->second;
    if (!st.paused && !st.release_queued && st.held.empty() && st.auto_resume == nullptr) processes_.erase(it);
  }

  /// Queues `o` to run at `t`: at the back of the ready queue if `t <= now()` (FIFO at equal
  /// times), else in the timer heap by (time, seq).
  void schedule(detail::op* o, clock_time t) {
    o->seq = next_seq_++;
    if (t <= now_) {
      o->time = now_;
      ready_.push_back(o);
    } else {
      o->time = t;
      heap_push(o);
    }
  }

  template <class F>
  void post_fn(process_id p, F&& f) {
    auto* o = new detail::post_op<std::decay_t<F>>(std::forward<F>(f));
    o->process = p;
    schedule(o, now_);
  }

  // --- the timer heap: a binary min-heap of ops by (time, seq), each op knowing its index.
  static bool before(const detail::op* a, const detail::op* b) noexcept {
    return a->time < b->time || (a->time == b->time && a->seq < b->seq);
  }
  void heap_set(std::size_t i, detail::op* o) noexcept {
    heap_[i] = o;
    o->heap_index = i;
  }
  void sift_up(std::size_t i) noexcept {
    detail::op* o = heap_[i];
    while (i > 0) {
      const std::size_t parent = (i - 1) / 2;
      if (!before(o, heap_[parent])) break;
      heap_set(i, heap_[parent]);
      i = parent;
    }
    heap_set(i, o);
  }
  void sift_down(std::size_t i) noexcept {
    detail::op* o = heap_[i];
    const std::size_t n = heap_.size();
    for (;;) {
      std::size_t child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && before(heap_[child + 1], heap_[child])) ++child;
      if (!before(heap_[child], o)) break;
      heap_set(i, heap_[child]);
      i = child;
    }
    heap_set(i, o);
  }
  void heap_push(detail::op* o) {
    heap_.push_back(o);
    sift_up(heap_.size() - 1);
  }
  detail::op* heap_pop() noexcept {
    detail::op* top = heap_.front();
    detail::op* last = heap_.back();
    heap_.pop_back();
    top->heap_index = detail::not_in_heap;
    if (last != top) {
      heap_set(0, last);
      sift_down(0);  // the root's replacement only moves down
    }
    return top;
  }
  void heap_remove(detail::op* o) noexcept {
    const std::size_t i = o->heap_index;
    detail::sim_check(i < heap_.size() && heap_[i] == o, "heap_remove: op not in the heap");
    detail::op* last = heap_.back();
    heap_.pop_back();
    o->heap_index = detail::not_in_heap;
    if (last != o) {
      heap_set(i, last);
      sift_up(i);
      sift_down(last->heap_index);
    }
  }

  options options_;
  clock_time now_{};
  std::uint64_t next_seq_ = 0;
  std::uint64_t events_run_ = 0;
  std::uint64_t events_this_instant_ = 0;
  bool stopped_ = false;
  bool running_ = false;
  process_id current_ = world_process;
  detail::op_queue ready_;
  std::vector<detail::op*> heap_;
  std::map<process_id, process_state> processes_;  // ordered: iteration is deterministic
};

/// A lightweight handle that submits function objects to a scheduler as events of one
/// process. An Asio standard executor (Boost 1.81 `execution::executor`):
///   - query(context) is the scheduler; query(blocking) is `never` by default: execute()
///     queues the function at the back of the ready queue and never runs it inline.
///   - require(blocking.possibly) gives an executor whose execute() runs the function inline
///     when the scheduler is already running an event of the same process, else queues it.
///     Boost 1.81's asio::dispatch executes with the executor's own blocking property, so
///     dispatch on the default executor queues like post (always correct, one event more);
///     timer completions on their own process's executor run inline from the expiry event.
///     The default is `never` so that execute() never runs user code inside the caller.
///   - outstanding_work (tracked/untracked) and relationship (fork/continuation) are
///     accepted and change nothing: the scheduler runs while events exist, not while work
///     is counted, and all events of a process are FIFO whatever their relationship.
/// Converts to asio::any_io_executor. Copies are cheap (a pointer and two words).
/// Thread safety: the scheduler's thread only. The scheduler must outlive every use.
class executor {
 public:
  executor(scheduler& s, process_id process) noexcept : sched_(&s), process_(process) {}

  /// The scheduler (as the execution context Asio asks for).
  scheduler& query(boost::asio::execution::context_t) const noexcept { return *sched_; }
  /// never (default) or possibly (after require(blocking.possibly)).
  boost::asio::execution::blocking_t query(boost::asio::execution::blocking_t) const noexcept {
    return may_block_ ? boost::asio::execution::blocking_t(boost::asio::execution::blocking.possibly)
                      : boost::asio::execution::blocking_t(boost::asio::execution::blocking.never);
  }
  executor require(boost::asio::execution::blocking_t::never_t) const noexcept { return with_blocking(false); }
  executor require(boost::asio::execution::blocking_t::possibly_t) const noexcept { return with_blocking(true); }
  executor require(boost::asio::execution::outstanding_work_t::tracked_t) const noexcept { return *this; }
  executor require(boost::asio::execution::outstanding_work_t::untracked_t) const noexcept { return *this; }
  executor require(boost::asio::execution::relationship_t::fork_t) const noexcept { return *this; }
  executor require(boost::asio::execution::relationship_t::continuation_t) const noexcept { return *this; }

  /// Submits `f` as an event of this executor's process (see the class comment for when it
  /// runs inline). Throws only std::bad_alloc (nothing is queued then).
  template <class F>
  void execute(F&& f) const {
    if (may_block_ && sched_->running_in(process_)) {
      std::decay_t<F> local(std::forward<F>(f));
      std::move(local)();
      return;
    }
    sched_->post_fn(process_, std::forward<F>(f));
  }

  /// The scheduler.
  scheduler& context() const noexcept { return *sched_; }
  /// The process whose events this executor submits.
  process_id process() const noexcept { return process_; }
  /// True while the scheduler runs an event of this executor's process.
  bool running_in_this_thread() const noexcept { return sched_->running_in(process_); }

  /// Equal when they submit to the same scheduler, for the same process, with the same
  /// blocking property.
  friend bool operator==(const executor& a, const executor& b) noexcept {
    return a.sched_ == b.sched_ && a.process_ == b.process_ && a.may_block_ == b.may_block_;
  }
  friend bool operator!=(const executor& a, const executor& b) noexcept { return !(a == b); }

 private:
  executor with_blocking(bool may_block) const noexcept {
    executor e = *this;
    e.may_block_ = may_block;
    return e;
  }

  scheduler* sched_;
  process_id process_;
  bool may_block_ = false;
};

static_assert(boost::asio::execution::is_executor<executor>::value, "zkr::sim::executor must be an Asio executor");

inline executor scheduler::get_executor(process_id process) noexcept { return executor(*this, process); }

namespace detail {

/// A pending async_wait. Linked in its timer's list until it completes or is cancelled;
/// queued in the scheduler (heap until its expiry, then the ready queue, or a held queue).
struct wait_op_base : op {
  timer* owner = nullptr;  // null once cancelled (or its timer is gone)
  wait_op_base* prev_in_timer = nullptr;
  wait_op_base* next_in_timer = nullptr;
  std::error_code ec{};
};

}  // namespace detail

/// A waitable timer in virtual time, on one process's executor; the counterpart of
/// asio::steady_timer. A wait completes with success when the virtual clock reaches the
/// expiry, or with zkr::operation_aborted() (== std::errc::operation_canceled) when the
/// timer is cancelled, re-armed (expires_at/expires_after) or destroyed before its
/// completion has run: unlike Asio, cancel() also catches a wait whose expiry has been
/// reached but whose handler has not run yet (e.g. held by a paused process), so no handler
/// sees success after cancel(). Several waits may be pending at once.
/// Expiry clock_time::max() never fires: run() does not wait for such waits.
/// Thread safety: the scheduler's thread only. Destroy timers before their scheduler.
class timer {
 public:
  using executor_type = executor;
  using clock_type = std::chrono::steady_clock;
  using duration = clock_duration;
  using time_point = clock_time;

  /// A timer whose expiry is the epoch (already expired), like Asio's.
  explicit timer(const executor& ex) noexcept : ex_(ex) {}
  /// A timer expiring at now() + d.
  timer(const executor& ex, duration d) : ex_(ex) { expires_after(d); }

  /// Moves the pending waits too: they stay pending on the new timer.
  timer(timer&& o) noexcept
      : ex_(o.ex_), expiry_(o.expiry_), head_(std::exchange(o.head_, nullptr)), tail_(std::exchange(o.tail_, nullptr)) {
    for (auto* w = head_; w; w = w->next_in_timer) w->owner = this;
  }
  /// Cancels this timer's waits, then takes over `o`'s expiry and waits.
  timer& operator=(timer&& o) noexcept {
    if (this != &o) {
      cancel();
      ex_ = o.ex_;
      expiry_ = o.expiry_;
      head_ = std::exchange(o.head_, nullptr);
      tail_ = std::exchange(o.tail_, nullptr);
      for (auto* w = head_; w; w = w->next_in_timer) w->owner = this;
    }
    return *this;
  }
  timer(const timer&) = delete;
  timer& operator=(const timer&) = delete;
  /// Cancels the pending waits (they complete with operation_aborted, through the scheduler).
  ~timer() { cancel(); }

  executor get_executor() const noexcept { return ex_; }
  time_point expiry() const noexcept { return expiry_; }

  /// Cancels the pending waits and sets the expiry. Returns how many waits were cancelled.
  std::size_t expires_at(time_point t) {
    const std::size_t n = cancel();
    expiry_ = t;
    return n;
  }
  /// expires_at(now() + d), saturating at clock_time::max(); d <= 0 means now.
  std::size_t expires_after(duration d) { return expires_at(scheduler::saturating_add(ex_.context().now(), d)); }

  /// Cancels every pending wait: each completes once, with operation_aborted, as an event
  /// of this timer's process queued now (a wait already due keeps its place in the queue
  /// but completes with the error). Returns how many. Never throws.
  std::size_t cancel() noexcept {
    std::size_t n = 0;
    while (head_) {
      cancel_wait(head_);
      ++n;
    }
    return n;
  }

  /// Waits for the expiry. Signature `void(std::error_code)`.
  /// The handler is called exactly once, never from within this call (an expired timer
  /// completes through the scheduler too), on its associated executor (default: this
  /// timer's): inline from the expiry event when that is this scheduler's executor for the
  /// process whose event runs, else dispatched to it.
  /// Errors: success at expiry; operation_aborted if cancelled, re-armed or destroyed first.
  /// Per-Operation Cancellation: all types (terminal, partial, total) cancel this wait only.
  template <class Token = boost::asio::default_completion_token_t<executor>>
  auto async_wait(Token&& token = boost::asio::default_completion_token_t<executor>()) {
    return boost::asio::async_initiate<Token, void(std::error_code)>(initiate_wait{this}, token);
  }

 private:
  friend class scheduler;

  template <class Handler>
  struct wait_op;

  struct cancel_handler {
    detail::wait_op_base* op;
    void operator()(boost::asio::cancellation_type_t type) const {
      if (type != boost::asio::cancellation_type::none && op->owner) op->owner->cancel_wait(op);
    }
  };

  struct initiate_wait {
    using executor_type = executor;
    executor_type get_executor() const noexcept { return self->ex_; }
    template <class Handler>
    void operator()(Handler&& handler) const {
      self->start_wait(std::forward<Handler>(handler));
    }
    timer* self;
  };

  template <class Handler>
  void start_wait(Handler&& handler) {
    using op_type = wait_op<std::decay_t<Handler>>;
    auto* o = new op_type(std::forward<Handler>(handler), ex_);
    o->process = ex_.process();
    link(o);
    if (o->slot.is_connected()) o->slot.template emplace<cancel_handler>(cancel_handler{o});
    ex_.context().schedule(o, expiry_);
  }

  /// Appends: cancel() completes waits oldest first, as Asio does.
  void link(detail::wait_op_base* w) noexcept {
    w->owner = this;
    w->next_in_timer = nullptr;
    w->prev_in_timer = tail_;
    if (tail_) {
      tail_->next_in_timer = w;
    } else {
      head_ = w;
    }
    tail_ = w;
  }
  void unlink(detail::wait_op_base* w) noexcept {
    detail::sim_check(w->owner == this, "timer: unlinking a wait of another timer");
    if (w->prev_in_timer) {
      w->prev_in_timer->next_in_timer = w->next_in_timer;
    } else {
      head_ = w->next_in_timer;
    }
    if (w->next_in_timer) {
      w->next_in_timer->prev_in_timer = w->prev_in_timer;
    } else {
      tail_ = w->prev_in_timer;
    }
    w->prev_in_timer = w->next_in_timer = nullptr;
    w->owner = nullptr;
  }
  /// Marks `w` aborted; if it is still waiting for its expiry, queues it now.
  void cancel_wait(detail::wait_op_base* w) noexcept {
    unlink(w);
    w->ec = zkr::operation_aborted();
    scheduler& s = ex_.context();
    if (w->heap_index != detail::not_in_heap) {
      s.heap_remove(w);
      s.schedule(w, s.now());  // schedule never throws: the ready queue is intrusive
    }
  }

  executor ex_;
  time_point expiry_{};
  detail::wait_op_base* head_ = nullptr;
  detail::wait_op_base* tail_ = nullptr;
};

template <class Handler>
struct timer::wait_op final : detail::wait_op_base {
  using slot_type = boost::asio::associated_cancellation_slot_t<Handler>;

  wait_op(Handler&& h, const executor& ex)
      : handler(std::move(h)), timer_ex(ex), slot(boost::asio::get_associated_cancellation_slot(handler)) {}
  wait_op(const Handler& h, const executor& ex)
      : handler(h), timer_ex(ex), slot(boost::asio::get_associated_cancellation_slot(handler)) {}

  /// Destroyed without completing (scheduler destruction): leave the timer and the slot.
  ~wait_op() override {
    if (owner) owner->unlink(this);
    if (slot.is_connected()) slot.clear();
  }

  void complete(scheduler& s) override {
    if (owner) owner->unlink(this);
    if (slot.is_connected()) slot.clear();
    Handler h(std::move(handler));
    const std::error_code result = ec;
    const executor tex = timer_ex;
    delete this;  // free before the handler runs; ~wait_op finds nothing left to undo
    auto ex = boost::asio::get_associated_executor(h, tex);
    if constexpr (std::is_same_v<decltype(ex), executor>) {
      if (&ex.context() == &s && s.running_in(ex.process())) {
        std::move(h)(result);
        return;
      }
    }
    boost::asio::dispatch(ex, [h = std::move(h), result]() mutable { std::move(h)(result); });
  }

  Handler handler;
  executor timer_ex;
  slot_type slot;
};

}  // namespace zkr::sim
