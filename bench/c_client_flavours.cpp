// c_client_flavours.cpp: the ZooKeeper C client's two flavours, side by side.
//
// Goal: give docs/backend.md numbers for choosing between libzookeeper_mt (THREADED: the
// library runs its own I/O thread and completion thread) and libzookeeper_st (the caller
// runs the I/O loop) as the engine of zkr's real backend.
//
// Method: one program, built twice. The two libraries export the same symbols, so each
// flavour gets its own executable (zkr_bench_c_client_mt, zkr_bench_c_client_st); the
// benchmark code is identical, only the delivery of completions differs:
//   mt  completions run on the C client's completion thread; each one copies its result
//       and hands it to the benchmark thread through a mutex + condition variable (what
//       zkr's backend does when it posts a completion to the session's Asio strand).
//   st  the benchmark thread drives the handle itself: zookeeper_interest, poll(2),
//       zookeeper_process (what an Asio reactor would do); completions run inline.
// Benchmarks (wall time; the CPU column is the whole process's CPU time, all threads):
//   BM_get_round_trip      one zoo_aget of a small node, wait, repeat: latency per op
//   BM_get_pipelined/N     N zoo_aget back to back, wait for all: throughput (items/s)
//   BM_set_round_trip      one zoo_aset of 100 bytes, wait, repeat: latency per write
//
// Run against a throw-away server:
//   export ZKR_BENCH_ZK=$(scripts/zk start --dir /tmp/zkr-bench-zk)
//   build/bench/zkr_bench_c_client_mt --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
//   build/bench/zkr_bench_c_client_st --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
//   scripts/zk stop --dir /tmp/zkr-bench-zk

#include <zookeeper/zookeeper.h>

#include <benchmark/benchmark.h>

#include <poll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace {

#ifdef THREADED
constexpr const char* flavour = "mt";
#else
constexpr const char* flavour = "st";
#endif

using steady = std::chrono::steady_clock;
constexpr int session_timeout_ms = 10'000;
constexpr auto connect_timeout = std::chrono::seconds(15);
constexpr auto op_timeout = std::chrono::seconds(10);

// A failed set-up or a lost completion leaves nothing worth measuring: stop at once
// (_Exit: the mt flavour's threads may still be calling back into this program).
[[noreturn]] void die(const std::string& what) {
  std::fflush(stdout);
  std::fprintf(stderr, "zkr_bench_c_client_%s: %s\n", flavour, what.c_str());
  std::_Exit(1);
}

// What a C callback hands to the caller. It is built on the thread the C client calls
// back on, because the C client's buffers (a node's data) live only during the callback.
struct Event {
  enum class Kind { reply, session } kind;
  int rc;            // reply: ZooKeeper's return code; session: the new session state
  std::string data;  // reply to a get: the node's data
};

// One ZooKeeper session and the loop that delivers its completions to the calling thread.
class Session {
 public:
  explicit Session(const char* hosts) {
    zh_ = zookeeper_init(hosts, &Session::on_watch, session_timeout_ms, nullptr, this, 0);
    if (zh_ == nullptr) die(std::string("zookeeper_init failed: ") + std::strerror(errno));
    if (!drive_until([&] { return state_ == ZOO_CONNECTED_STATE; }, steady::now() + connect_timeout))
      die(std::string("could not connect to ZooKeeper at ") + hosts);
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Closes the session and returns how long zookeeper_close blocked the caller.
  std::chrono::duration<double, std::milli> close() {
    const auto start = steady::now();
    zookeeper_close(zh_);
    zh_ = nullptr;
    return steady::now() - start;
  }

  // Requests. Each completes exactly once, through deliver().
  void get(const char* path) { submitted(zoo_aget(zh_, path, 0, &Session::on_data, this)); }
  void set(const char* path, const std::string& value) {
    submitted(zoo_aset(zh_, path, value.data(), static_cast<int>(value.size()), -1,
                       &Session::on_stat, this));
  }
  void create(const char* path, const std::string& value, int flags) {
    submitted(zoo_acreate(zh_, path, value.data(), static_cast<int>(value.size()),
                          &ZOO_OPEN_ACL_UNSAFE, flags, &Session::on_string, this));
  }
  void remove(const char* path) { submitted(zoo_adelete(zh_, path, -1, &Session::on_void, this)); }

  // Waits on the calling thread until every request issued so far has completed; returns
  // the first error among their replies (ZOK if none).
  int wait_all() {
    if (!drive_until([&] { return completed_ == issued_; }, steady::now() + op_timeout))
      die("timed out waiting for " + std::to_string(issued_ - completed_) + " completions");
    return std::exchange(first_error_, ZOK);
  }

  std::size_t bytes_received() const { return bytes_; }

 private:
  static Session& self(const void* context) {
    return *static_cast<Session*>(const_cast<void*>(context));
  }
  static void on_watch(zhandle_t*, int type, int state, const char*, void* context) {
    if (type == ZOO_SESSION_EVENT) self(context).deliver({Event::Kind::session, state, {}});
  }
  static void on_data(int rc, const char* value, int len, const Stat*, const void* context) {
    self(context).deliver({Event::Kind::reply, rc,
                           value != nullptr && len > 0 ? std::string(value, len) : std::string()});
  }
  static void on_stat(int rc, const Stat*, const void* context) {
    self(context).deliver({Event::Kind::reply, rc, {}});
  }
  static void on_string(int rc, const char*, const void* context) {
    self(context).deliver({Event::Kind::reply, rc, {}});
  }
  static void on_void(int rc, const void* context) {
    self(context).deliver({Event::Kind::reply, rc, {}});
  }

  // A negative state is final: the session expired or its authentication failed.
  [[noreturn]] static void lost(int state) {
    die(state == ZOO_EXPIRED_SESSION_STATE ? "session expired"
                                           : "session lost (state " + std::to_string(state) + ")");
  }

  void submitted(int rc) {
    if (rc != ZOK) die(std::string("request not accepted: ") + zerror(rc));
    ++issued_;
  }

  // Runs on the thread that waits (the benchmark thread), in both flavours.
  void handle(const Event& e) {
    if (e.kind == Event::Kind::session) {
      state_ = e.rc;
      if (state_ < 0) lost(state_);
      return;
    }
    ++completed_;
    bytes_ += e.data.size();
    if (e.rc != ZOK && first_error_ == ZOK) first_error_ = e.rc;
  }

#ifdef THREADED
  // mt: called on the C client's completion thread. Hand the event over and wake the waiter.
  void deliver(Event&& e) {
    {
      std::lock_guard lock(mutex_);
      inbox_.push_back(std::move(e));
    }
    ready_.notify_one();
  }

  template <class Done>
  bool drive_until(Done done, steady::time_point deadline) {
    while (!done()) {
      {
        std::unique_lock lock(mutex_);
        if (!ready_.wait_until(lock, deadline, [&] { return !inbox_.empty(); })) return false;
        batch_.swap(inbox_);
      }
      for (const Event& e : batch_) handle(e);
      batch_.clear();
    }
    return true;
  }

  std::mutex mutex_;
  std::condition_variable ready_;
  std::vector<Event> inbox_;  // guarded by mutex_
  std::vector<Event> batch_;  // the waiter's side of the hand-over
#else
  // st: completions run inside zookeeper_process, on the thread that drives the handle.
  void deliver(Event&& e) { handle(e); }

  template <class Done>
  bool drive_until(Done done, steady::time_point deadline) {
    while (!done()) {
      const auto now = steady::now();
      if (now >= deadline) return false;
      pump(std::chrono::ceil<std::chrono::milliseconds>(deadline - now));
    }
    return true;
  }

  // One turn of the loop the mt flavour's I/O thread runs (mt_adaptor.c, do_io): ask the
  // handle what it waits for and until when (its deadline drives connects and pings),
  // wait for that, let it process. zookeeper_process reads at most one reply per call.
  void pump(std::chrono::milliseconds limit) {
    int fd = -1;
    int interest = 0;
    timeval tv{};
    zookeeper_interest(zh_, &fd, &interest, &tv);
    const auto wait = std::min<std::chrono::milliseconds::rep>(
        limit.count(), tv.tv_sec * 1000 + tv.tv_usec / 1000);
    pollfd p{fd, 0, 0};
    if (interest & ZOOKEEPER_READ) p.events |= POLLIN;
    if (interest & ZOOKEEPER_WRITE) p.events |= POLLOUT;
    if (::poll(&p, fd != -1 ? 1 : 0, static_cast<int>(wait)) < 0 && errno != EINTR)
      die(std::string("poll: ") + std::strerror(errno));
    int events = 0;
    if (p.revents & POLLIN) events |= ZOOKEEPER_READ;
    if (p.revents & (POLLOUT | POLLHUP)) events |= ZOOKEEPER_WRITE;
    zookeeper_process(zh_, events);
    // Like do_io, ignore the return codes: a timeout or a connection loss makes the client
    // reconnect (ZINVALIDSTATE too, while it has no socket); it tells the watcher, and fails
    // the outstanding requests, which wait_all reports. Only a negative state is final.
    if (zoo_state(zh_) < 0) lost(zoo_state(zh_));
  }
#endif

  zhandle_t* zh_ = nullptr;
  int state_ = 0;
  std::size_t issued_ = 0;
  std::size_t completed_ = 0;
  std::size_t bytes_ = 0;
  int first_error_ = ZOK;
};

Session* session = nullptr;
std::string root, small_node, set_node;

void check(benchmark::State& state, int rc) {
  if (rc != ZOK) state.SkipWithError(zerror(rc));
}

void BM_get_round_trip(benchmark::State& state) {
  for (auto _ : state) {
    session->get(small_node.c_str());
    if (int rc = session->wait_all(); rc != ZOK) { check(state, rc); break; }
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_get_pipelined(benchmark::State& state) {
  const auto n = state.range(0);
  for (auto _ : state) {
    for (std::int64_t i = 0; i < n; ++i) session->get(small_node.c_str());
    if (int rc = session->wait_all(); rc != ZOK) { check(state, rc); break; }
  }
  state.SetItemsProcessed(state.iterations() * n);
}

void BM_set_round_trip(benchmark::State& state) {
  const std::string value(100, 'v');
  for (auto _ : state) {
    session->set(set_node.c_str(), value);
    if (int rc = session->wait_all(); rc != ZOK) { check(state, rc); break; }
  }
  state.SetItemsProcessed(state.iterations());
}

// The benchmark thread mostly waits: time is wall time, and CPU time counts every thread of
// the process (the mt flavour's I/O and completion threads included).
BENCHMARK(BM_get_round_trip)->UseRealTime()->MeasureProcessCPUTime();
BENCHMARK(BM_get_pipelined)->Arg(64)->Arg(512)->UseRealTime()->MeasureProcessCPUTime();
BENCHMARK(BM_set_round_trip)->UseRealTime()->MeasureProcessCPUTime();

int process_threads() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("Threads:", 0) == 0) return std::atoi(line.c_str() + 8);
  return -1;
}

double cpu_seconds(const timeval& tv) { return static_cast<double>(tv.tv_sec) + tv.tv_usec / 1e6; }

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const char* hosts = std::getenv("ZKR_BENCH_ZK");
  if (hosts == nullptr || *hosts == '\0') {
    std::fprintf(stderr,
                 "zkr_bench_c_client_%s: set ZKR_BENCH_ZK to a ZooKeeper connect string, e.g.\n"
                 "  export ZKR_BENCH_ZK=$(scripts/zk start --dir /tmp/zkr-bench-zk)\n",
                 flavour);
    return 2;
  }
  zoo_set_debug_level(ZOO_LOG_LEVEL_WARN);

  const auto wall_start = steady::now();
  Session s(hosts);
  session = &s;
  root = "/zkr-bench-c-client-" + std::string(flavour) + "-" + std::to_string(::getpid());
  small_node = root + "/small";
  set_node = root + "/set";
  s.create(root.c_str(), "", 0);
  s.create(small_node.c_str(), std::string(32, 's'), ZOO_EPHEMERAL);
  s.create(set_node.c_str(), std::string(100, 'v'), ZOO_EPHEMERAL);
  if (int rc = s.wait_all(); rc != ZOK) die("creating " + root + ": " + zerror(rc));

  benchmark::AddCustomContext("zookeeper_client_flavour", flavour);
  benchmark::AddCustomContext("process_threads", std::to_string(process_threads()));
  benchmark::RunSpecifiedBenchmarks();

  s.remove(small_node.c_str());
  s.remove(set_node.c_str());
  s.remove(root.c_str());
  if (int rc = s.wait_all(); rc != ZOK) die("removing " + root + ": " + zerror(rc));
  const auto close_ms = s.close();
  const std::chrono::duration<double> wall = steady::now() - wall_start;

  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  std::fprintf(stderr,
               "zkr_bench_c_client_%s: whole run: wall %.2f s, process CPU user %.2f s + sys %.2f s;"
               " zookeeper_close blocked %.1f ms\n",
               flavour, wall.count(), cpu_seconds(usage.ru_utime), cpu_seconds(usage.ru_stime),
               close_ms.count());
  benchmark::Shutdown();
}
