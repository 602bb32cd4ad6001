// sim_throughput: how fast the simulator runs, in wall time.
//
// Goal: know what a seed sweep or a simulated test costs: how many simulated ZooKeeper
// operations and scheduler events the simulator gets through per wall second under load, and
// how much virtual time per wall second an idle cluster (only pings and session bookkeeping)
// costs.
//
// Method: one cluster per benchmark run, built before the timed loop (seed 1, 3 servers,
// default link delays of 50-250 us per message, tracing off: a disabled trace costs one
// branch per event).
//   BM_fixed_mix/S/F   S sessions, each on its own persistent node /bench/n<i>, each keeping
//                      F operations in flight (pipelined: every completion starts the next),
//                      alternating get and set. Each iteration runs 10 ms of virtual time.
//                      Counters (per wall second): ops (completed operations), events
//                      (scheduler events), virtual_s (virtual seconds).
//   BM_idle/S          S connected sessions doing nothing (each pings every third of its
//                      15 s timeout). Each iteration runs a virtual minute. Counters:
//                      virtual_s and events per wall second.
// Rates use wall time (UseRealTime); on a shared machine also read the *_per_cpu_s counters,
// which divide by the thread's CPU time in the timed loop. No timed assertions: numbers are written down in
// docs/simulator.md with the command that produced them.
//
//   cmake -S . -B build-rel -G Ninja -DCMAKE_BUILD_TYPE=Release && cmake --build build-rel --target zkr_bench_sim_throughput
//   build-rel/bench/zkr_bench_sim_throughput
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include <time.h>

#include <benchmark/benchmark.h>

#include <zkr/sim/cluster.hpp>
#include <zkr/sim/session.hpp>

namespace {

using namespace std::chrono_literals;
namespace sim = zkr::sim;

/// This thread's CPU time in seconds. The rates per wall second suffer when the machine is
/// shared; the `*_per_cpu_s` counters divide by the CPU time the loop actually got instead.
double thread_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

/// One client of the fixed mix: its session, its node, and its pipelined loops.
struct worker {
  std::unique_ptr<sim::session> s;
  std::string path;
  std::uint64_t next = 0;  // even: get, odd: set
  bool ready = false;
};

struct totals {
  std::uint64_t ops = 0;
  std::uint64_t errors = 0;
  bool stopping = false;
};

/// Starts the next operation of one of `w`'s loops; its completion starts the one after.
void loop(worker& w, totals& t) {
  if (t.stopping) return;
  const bool get = (w.next++ % 2) == 0;
  if (get) {
    w.s->async_get(w.path, [&w, &t](std::error_code ec, std::string, zkr::stat) {
      ++t.ops;
      if (ec) ++t.errors;
      loop(w, t);
    });
  } else {
    w.s->async_set(w.path, "value", -1, [&w, &t](std::error_code ec, zkr::stat) {
      ++t.ops;
      if (ec) ++t.errors;
      loop(w, t);
    });
  }
}

sim::cluster_options bench_options() {
  sim::cluster_options o;
  o.seed = 1;
  o.servers = 3;
  return o;  // default link delays, trace off
}

void BM_fixed_mix(benchmark::State& state) {
  const auto sessions = static_cast<std::size_t>(state.range(0));
  const auto in_flight = static_cast<int>(state.range(1));
  sim::cluster c(bench_options());
  totals t;
  std::vector<std::unique_ptr<worker>> ws;
  for (std::size_t i = 0; i < sessions; ++i) {
    auto w = std::make_unique<worker>();
    sim::session_options so;
    so.connect_string = c.connect_string();
    so.session_timeout = 15000ms;
    w->s = std::make_unique<sim::session>(c, so);
    w->path = "/bench/n" + std::to_string(i);
    worker* wp = w.get();
    wp->s->async_create("/bench", "", {}, [wp](std::error_code, std::string, zkr::stat) {
      wp->s->async_create(wp->path, "value", {}, [wp](std::error_code ec, std::string, zkr::stat) {
        wp->ready = !ec || ec == zkr::errc::node_exists;
      });
    });
    ws.push_back(std::move(w));
  }
  const bool all_ready = c.run_until(
      [&] {
        for (const auto& w : ws) {
          if (!w->ready) return false;
        }
        return true;
      },
      60s);
  if (!all_ready) {
    state.SkipWithError("the sessions did not all create their nodes within 60 virtual seconds");
    return;
  }
  for (auto& w : ws) {
    for (int k = 0; k < in_flight; ++k) loop(*w, t);
  }

  const std::uint64_t ops0 = t.ops;
  const std::uint64_t events0 = c.get_scheduler().events_run();
  const auto virtual0 = c.now();
  const double cpu0 = thread_cpu_s();
  for (auto _ : state) {
    c.run_for(10ms);
  }
  const double cpu_s = thread_cpu_s() - cpu0;
  const double virtual_s = std::chrono::duration<double>(c.now() - virtual0).count();
  state.counters["ops"] = benchmark::Counter(static_cast<double>(t.ops - ops0), benchmark::Counter::kIsRate);
  state.counters["events"] =
      benchmark::Counter(static_cast<double>(c.get_scheduler().events_run() - events0), benchmark::Counter::kIsRate);
  state.counters["virtual_s"] = benchmark::Counter(virtual_s, benchmark::Counter::kIsRate);
  state.counters["ops_per_virtual_s"] = static_cast<double>(t.ops - ops0) / virtual_s;
  state.counters["ops_per_cpu_s"] = static_cast<double>(t.ops - ops0) / cpu_s;
  state.counters["events_per_cpu_s"] = static_cast<double>(c.get_scheduler().events_run() - events0) / cpu_s;
  state.counters["errors"] = static_cast<double>(t.errors);
  t.stopping = true;
}
BENCHMARK(BM_fixed_mix)->Args({100, 4})->Args({100, 1})->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_idle(benchmark::State& state) {
  const auto sessions = static_cast<std::size_t>(state.range(0));
  sim::cluster c(bench_options());
  std::vector<std::unique_ptr<sim::session>> ss;
  for (std::size_t i = 0; i < sessions; ++i) {
    sim::session_options so;
    so.connect_string = c.connect_string();
    so.session_timeout = 15000ms;
    ss.push_back(std::make_unique<sim::session>(c, so));
  }
  const bool connected = c.run_until(
      [&] {
        for (const auto& s : ss) {
          if (!zkr::is_connected(s->state())) return false;
        }
        return true;
      },
      60s);
  if (!connected) {
    state.SkipWithError("the sessions did not all connect within 60 virtual seconds");
    return;
  }
  const std::uint64_t events0 = c.get_scheduler().events_run();
  const auto virtual0 = c.now();
  const double cpu0 = thread_cpu_s();
  for (auto _ : state) {
    c.run_for(60s);
  }
  const double cpu_s = thread_cpu_s() - cpu0;
  const double virtual_s = std::chrono::duration<double>(c.now() - virtual0).count();
  state.counters["virtual_s_per_cpu_s"] = virtual_s / cpu_s;
  state.counters["virtual_s"] = benchmark::Counter(virtual_s, benchmark::Counter::kIsRate);
  state.counters["events"] =
      benchmark::Counter(static_cast<double>(c.get_scheduler().events_run() - events0), benchmark::Counter::kIsRate);
  std::size_t still_connected = 0;
  for (const auto& s : ss) still_connected += zkr::is_connected(s->state()) ? 1 : 0;
  state.counters["connected"] = static_cast<double>(still_connected);
}
BENCHMARK(BM_idle)->Arg(1000)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
