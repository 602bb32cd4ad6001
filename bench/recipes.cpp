// recipes: what zkr's recipes cost, on the simulator and on a real ZooKeeper server, measured
// the same way as Apache Curator and kazoo do it (bench/curator/RecipeBench.java,
// bench/kazoo/recipe_bench.py; scripts/bench-recipes runs all three side by side).
//
// Goal: numbers for the questions a user of the recipes asks: how many lock hand-offs per
// second among contenders in different sessions, and how many requests each costs (with and
// without the mutex's hand-off shortcut, mutex_options::sole_predecessor_handoff); how many
// counter increments per second (atomic_counter, optimistic, and sequence, one setData); how
// long a leader failover takes; how long a change takes to reach N watchers (N sessions, or
// N local subscribers of one session's watch_hub).
//
// Method: every benchmark exists twice, `.../sim/...` and `.../zk/...`.
//   sim  A fresh simulated ensemble per run (zkr::sim::cluster, seed 1, ONE server like the
//        real run below, tickTime 200 ms, default client links of 50-250 us per message, no
//        faults). The simulator models message delays, not CPU: its *_per_s and *_ms counters
//        are in VIRTUAL time (what the protocol costs in round trips on such links); the wall
//        rates say how fast the simulator computes them.
//   zk   A real server at $ZKR_BENCH_ZK (a connect string; scripts/bench-recipes starts a
//        standalone one on loopback). Without it these report an error and are skipped.
//        Counters are in real time. The benchmark's thread runs the sessions' io_context
//        itself (one thread: the recipes' handlers never run concurrently, as on the sim).
// Every session has a 10 s timeout. Every run works under a path of its own. The throughput
// benchmarks on the real server run for at least $ZKR_BENCH_SECONDS (default 2) seconds each.
//
//   BM_lock_handoff/B/shortcut:S[/contenders:2]
//        4 (or 2) contenders, one session and one zkr::recipes::mutex each, loop acquire ->
//        release -> acquire. Each iteration waits for 20 more acquisitions. Counters:
//        handoffs_per_s (session time: virtual on the sim), handoffs (per wall second),
//        requests_per_handoff (every request the mutexes sent, counted by a pass-through
//        session wrapper, over the acquisitions), shortcut_share (mutex_stats:
//        shortcut_handoffs / acquisitions), server_packets_per_handoff (zk only: the server's
//        mntr zk_packets_received, which is how the Curator and kazoo programs count), errors.
//   BM_atomic_counter_add/B/sessions:S
//        S sessions, one atomic_counter each on one node, each keeping one increment in flight
//        (default retry policy). Counters: increments_per_s, tries_per_increment
//        (atomic_stats::optimistic_tries), gave_up (bad_version after the retries), errors.
//   BM_sequence_next/B/in_flight:F
//        One session, one sequence, F calls of async_next in flight (pipelined). Counters:
//        values_per_s, errors.
//   BM_leader_failover/B
//        3 contenders (a session and a leader_latch each). Each iteration closes the leader's
//        session and waits until another latch's listener hears is_leader; then (not timed) a
//        new contender joins to keep 3. Counter: failover_ms (mean; virtual ms on the sim).
//   BM_watch_fanout_sessions/B/N
//        N sessions, each with a node_watch (its own hub) on one node; a writer session sets
//        the node once per iteration. Counters: all_saw_ms (from the set until the last of the
//        N listeners saw the new data; mean), first_saw_ms, and the request counts below.
//   BM_watch_fanout_local/B/N
//        One session, one watch_hub, N node_watch subscribers on it; the writer as above.
//        Counters: all_saw_ms, first_saw_ms, requests_per_change (the writer's set plus the
//        reads and syncs the watchers' hubs sent, watch_hub_stats), server_packets_per_change
//        (zk only; the server's count of the same).
// No timed assertions anywhere: the numbers, with the command that produced them, are written
// down in docs/recipes.md ("Recipe benchmarks"). On a shared machine the real-time numbers
// move with the load: compare columns measured in one run.
//
//   cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release && ninja -C build-bench zkr_bench_recipes
//   build-bench/bench/zkr_bench_recipes --benchmark_filter=/sim/        # simulator only
//   scripts/bench-recipes                                                # all, with a server
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <benchmark/benchmark.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <zkr/backend.hpp>
#include <zkr/recipes/atomic_counter.hpp>
#include <zkr/recipes/leader_latch.hpp>
#include <zkr/recipes/mutex.hpp>
#include <zkr/recipes/node_watch.hpp>
#include <zkr/recipes/sequence.hpp>
#include <zkr/recipes/watch_hub.hpp>
#include <zkr/sim/cluster.hpp>
#include <zkr/sim/session.hpp>
#include <zkr/zookeeper/session.hpp>

namespace {

namespace asio = boost::asio;
namespace sim = zkr::sim;
namespace rec = zkr::recipes;
using namespace std::chrono_literals;
using time_point = std::chrono::steady_clock::time_point;

constexpr std::chrono::milliseconds session_timeout = 10s;
/// How long one step may take before the benchmark gives up (real or virtual time).
constexpr std::chrono::milliseconds step_limit = 30s;

double ms_between(time_point a, time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); }
double s_between(time_point a, time_point b) { return std::chrono::duration<double>(b - a).count(); }

// ---------------------------------------------------------------------------------------------
// A pass-through session that counts the requests a recipe sends
// ---------------------------------------------------------------------------------------------

/// Forwards every member of zkr::backend to `S`, counting the ZooKeeper requests (every async_*
/// operation except async_wait_connected). The recipes see only the concept, so they run
/// unchanged on it; the count is what they sent, whatever the server does with it.
template <zkr::backend S>
class counting_session {
 public:
  using executor_type = typename S::executor_type;
  using timer_type = typename S::timer_type;

  explicit counting_session(S& s) : s_(&s) {}

  std::uint64_t requests() const noexcept { return requests_.load(std::memory_order_relaxed); }

  executor_type get_executor() const noexcept { return s_->get_executor(); }
  std::chrono::steady_clock::time_point steady_now() const noexcept { return s_->steady_now(); }
  std::chrono::system_clock::time_point wall_now() const noexcept { return s_->wall_now(); }
  zkr::prng& random() noexcept { return s_->random(); }
  zkr::session_state state() const noexcept { return s_->state(); }
  std::uint64_t generation() const noexcept { return s_->generation(); }
  std::int64_t session_id() const noexcept { return s_->session_id(); }
  std::chrono::milliseconds negotiated_timeout() const noexcept { return s_->negotiated_timeout(); }
  zkr::subscription subscribe(zkr::state_listener l) { return s_->subscribe(std::move(l)); }
  template <class T>
  auto async_wait_connected(T&& t) {
    return s_->async_wait_connected(std::forward<T>(t));
  }

  template <class T>
  auto async_create(std::string_view p, std::string_view d, const zkr::create_options& o, T&& t) {
    count();
    return s_->async_create(p, d, o, std::forward<T>(t));
  }
  template <class T>
  auto async_remove(std::string_view p, std::int32_t v, T&& t) {
    count();
    return s_->async_remove(p, v, std::forward<T>(t));
  }
  template <class T>
  auto async_exists(std::string_view p, T&& t) {
    count();
    return s_->async_exists(p, std::forward<T>(t));
  }
  template <class T>
  auto async_exists(std::string_view p, zkr::watch_handler w, T&& t) {
    count();
    return s_->async_exists(p, std::move(w), std::forward<T>(t));
  }
  template <class T>
  auto async_get(std::string_view p, T&& t) {
    count();
    return s_->async_get(p, std::forward<T>(t));
  }
  template <class T>
  auto async_get(std::string_view p, zkr::watch_handler w, T&& t) {
    count();
    return s_->async_get(p, std::move(w), std::forward<T>(t));
  }
  template <class T>
  auto async_get_children(std::string_view p, T&& t) {
    count();
    return s_->async_get_children(p, std::forward<T>(t));
  }
  template <class T>
  auto async_get_children(std::string_view p, zkr::watch_handler w, T&& t) {
    count();
    return s_->async_get_children(p, std::move(w), std::forward<T>(t));
  }
  template <class T>
  auto async_set(std::string_view p, std::string_view d, std::int32_t v, T&& t) {
    count();
    return s_->async_set(p, d, v, std::forward<T>(t));
  }
  template <class T>
  auto async_get_acl(std::string_view p, T&& t) {
    count();
    return s_->async_get_acl(p, std::forward<T>(t));
  }
  template <class T>
  auto async_set_acl(std::string_view p, const zkr::acl_list& a, std::int32_t v, T&& t) {
    count();
    return s_->async_set_acl(p, a, v, std::forward<T>(t));
  }
  template <class T>
  auto async_multi(std::vector<zkr::op> ops, T&& t) {
    count();
    return s_->async_multi(std::move(ops), std::forward<T>(t));
  }
  template <class T>
  auto async_sync(std::string_view p, T&& t) {
    count();
    return s_->async_sync(p, std::forward<T>(t));
  }
  template <class T>
  auto async_add_auth(std::string_view scheme, std::string_view cred, T&& t) {
    count();
    return s_->async_add_auth(scheme, cred, std::forward<T>(t));
  }
  template <class T>
  auto async_close(T&& t) {
    count();
    return s_->async_close(std::forward<T>(t));
  }

 private:
  void count() noexcept { requests_.fetch_add(1, std::memory_order_relaxed); }

  S* s_;
  std::atomic<std::uint64_t> requests_{0};
};

static_assert(zkr::backend<counting_session<sim::session>>);
static_assert(zkr::backend<counting_session<zkr::zookeeper::session>>);

// ---------------------------------------------------------------------------------------------
// The two environments: how to make a session, wait, and tell time
// ---------------------------------------------------------------------------------------------

/// A run directory name unique to this process and run.
std::string unique_root(std::string_view what) {
  static int runs = 0;
  return "/zkr-bench/" + std::to_string(::getpid()) + "-" + std::to_string(++runs) + "-" + std::string(what);
}

/// The simulator: one server, virtual time, everything on the calling thread.
struct sim_env {
  using session = sim::session;
  static constexpr std::string_view name = "sim";

  sim::cluster cluster{options()};

  static sim::cluster_options options() {
    sim::cluster_options o;
    o.seed = 1;
    o.servers = 1;
    o.tick_time = 200ms;  // as scripts/zk's servers
    return o;             // default client links (50-250 us per message), no faults, trace off
  }
  static std::unique_ptr<sim_env> open(benchmark::State&) { return std::make_unique<sim_env>(); }

  std::unique_ptr<session> make_session() {
    sim::session_options o;
    o.connect_string = cluster.connect_string();
    o.session_timeout = session_timeout;
    return std::make_unique<session>(cluster, std::move(o));
  }
  /// Runs the simulation until `pred` holds (true) or `limit` of virtual time passed (false).
  template <class Pred>
  bool run_until(Pred pred, std::chrono::milliseconds limit) {
    return cluster.run_until(std::move(pred), limit);
  }
  time_point now() const { return cluster.now(); }
  /// The server's received-packet count: not modelled (the wrapper's count is the measure).
  std::optional<std::uint64_t> server_packets() const { return std::nullopt; }
};

/// "zk_packets_received" from the server's `mntr` four-letter word, or nullopt.
std::optional<std::uint64_t> mntr_packets_received(const std::string& connect) {
  // The first host:port of the connect string (a chroot, if any, ends it).
  std::string hp = connect.substr(0, connect.find_first_of(",/"));
  const auto colon = hp.rfind(':');
  if (colon == std::string::npos) return std::nullopt;
  const std::string host = hp.substr(0, colon);
  const std::string port = hp.substr(colon + 1);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || res == nullptr) return std::nullopt;
  const int fd = ::socket(res->ai_family, res->ai_socktype, res->ai_protocol);
  std::string out;
  if (fd >= 0) {
    timeval tv{2, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (::connect(fd, res->ai_addr, res->ai_addrlen) == 0 && ::send(fd, "mntr", 4, 0) == 4) {
      char buf[4096];
      for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
  }
  ::freeaddrinfo(res);
  constexpr std::string_view key = "zk_packets_received\t";
  const auto at = out.find(key);
  if (at == std::string::npos) return std::nullopt;
  return std::strtoull(out.c_str() + at + key.size(), nullptr, 10);
}

/// A real server at $ZKR_BENCH_ZK, real time. The calling thread runs the io_context.
struct zk_env {
  using session = zkr::zookeeper::session;
  static constexpr std::string_view name = "zk";

  std::string connect;
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};

  explicit zk_env(std::string c) : connect(std::move(c)) {}
  static std::unique_ptr<zk_env> open(benchmark::State& state) {
    const char* c = std::getenv("ZKR_BENCH_ZK");
    if (c == nullptr || *c == '\0') {
      state.SkipWithError("set ZKR_BENCH_ZK=host:port (scripts/bench-recipes starts a server)");
      return nullptr;
    }
    return std::make_unique<zk_env>(c);
  }

  std::unique_ptr<session> make_session() {
    zkr::zookeeper::options o;
    o.connect_string = connect;
    o.session_timeout = session_timeout;
    return std::make_unique<session>(io.get_executor(), std::move(o));
  }
  /// Runs the sessions' handlers until `pred` holds (true) or `limit` passed (false).
  template <class Pred>
  bool run_until(Pred pred, std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) return false;
      io.run_one_for(std::min<std::chrono::steady_clock::duration>(deadline - now, 100ms));
    }
    return true;
  }
  time_point now() const { return std::chrono::steady_clock::now(); }
  std::optional<std::uint64_t> server_packets() const { return mntr_packets_received(connect); }
};

/// Sessions of one benchmark run: made and connected together, closed together.
template <class Env>
struct session_set {
  using session = typename Env::session;
  std::vector<std::unique_ptr<session>> all;

  /// Adds `n` sessions and waits until all are connected.
  bool add(Env& env, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) all.push_back(env.make_session());
    return env.run_until(
        [&] { return std::all_of(all.begin(), all.end(), [](const auto& s) { return zkr::is_connected(s->state()); }); },
        step_limit);
  }
  /// Closes every session still open and waits for the closes (best effort).
  void close(Env& env) {
    std::size_t pending = 0;
    for (auto& s : all) {
      if (s->state() == zkr::session_state::closed) continue;
      ++pending;
      s->async_close([&pending](std::error_code) { --pending; });
    }
    (void)env.run_until([&] { return pending == 0; }, step_limit);
  }
};

/// Creates `path` (and its missing ancestors) with `data`, through `s`. False on failure.
template <class Env, class S>
bool create_node(Env& env, S& s, const std::string& path, const std::string& data) {
  std::size_t pending = 0;
  bool ok = true;
  for (std::size_t at = 1; at != std::string::npos; at = path.find('/', at + 1)) {
    const bool last = path.find('/', at + 1) == std::string::npos;
    const std::string p = last ? path : path.substr(0, path.find('/', at + 1));
    ++pending;
    // One session's requests are served in order: parents before children.
    s.async_create(p, last ? data : "", zkr::create_options{},
                   [&pending, &ok](std::error_code ec, std::string, zkr::stat) {
                     if (ec && ec != zkr::errc::node_exists) ok = false;
                     --pending;
                   });
  }
  return env.run_until([&] { return pending == 0; }, step_limit) && ok;
}

void set_time_label(benchmark::State& state, std::string_view env) {
  state.SetLabel(env == "sim" ? "*_per_s, *_ms: virtual time" : "real time");
}

/// The timed loop of a throughput benchmark: each iteration runs until `done` has grown by
/// `batch`. False if it stopped growing (the loop then ends early).
template <class Env>
bool run_batches(benchmark::State& state, Env& env, const std::uint64_t& done, std::uint64_t batch) {
  for (auto _ : state) {
    const std::uint64_t target = done + batch;
    if (!env.run_until([&] { return done >= target; }, step_limit)) return false;
  }
  return true;
}

/// Lets the closed loops flagged in `active` finish their operation in flight.
template <class Env>
void drain(Env& env, const std::vector<char>& active) {
  (void)env.run_until([&] { return std::none_of(active.begin(), active.end(), [](char a) { return a != 0; }); },
                      step_limit);
}

// ---------------------------------------------------------------------------------------------
// Lock hand-offs
// ---------------------------------------------------------------------------------------------

template <class Env>
void lock_handoff(benchmark::State& state, std::size_t contenders, bool shortcut) {
  using S = typename Env::session;
  using CS = counting_session<S>;
  auto env = Env::open(state);
  if (!env) return;
  session_set<Env> ss;
  if (!ss.add(*env, contenders)) {
    state.SkipWithError("the sessions did not connect");
    return;
  }
  {
    const std::string path = unique_root("lock") + "/lock";
    std::vector<std::unique_ptr<CS>> counted;
    std::vector<std::unique_ptr<rec::mutex<CS>>> mutexes;
    rec::mutex_options opts;
    opts.sole_predecessor_handoff = shortcut;
    for (auto& s : ss.all) {
      counted.push_back(std::make_unique<CS>(*s));
      mutexes.push_back(std::make_unique<rec::mutex<CS>>(*counted.back(), path, opts));
    }

    std::uint64_t acquisitions = 0;
    std::uint64_t errors = 0;
    bool stopping = false;
    std::vector<char> active(contenders, 0);
    std::function<void(std::size_t)> cycle = [&](std::size_t i) {
      if (stopping) {
        active[i] = 0;
        return;
      }
      active[i] = 1;
      mutexes[i]->async_acquire([&, i](std::error_code ec, std::int64_t) {
        if (ec) {
          ++errors;
          cycle(i);
          return;
        }
        ++acquisitions;
        mutexes[i]->async_release([&, i](std::error_code rec_ec) {
          if (rec_ec) ++errors;
          cycle(i);
        });
      });
    };
    for (std::size_t i = 0; i < contenders; ++i) cycle(i);

    const auto totals = [&] {
      std::uint64_t req = 0, acq = 0, shortcuts = 0;
      for (const auto& c : counted) req += c->requests();
      for (const auto& m : mutexes) {
        const auto st = m->stats();
        acq += st.acquisitions;
        shortcuts += st.shortcut_handoffs;
      }
      return std::tuple{req, acq, shortcuts};
    };

    // Warm up: every contender has held once (the parents exist, the queue is full).
    bool ok = env->run_until([&] { return acquisitions >= 2 * contenders; }, step_limit);
    const auto [req0, stat_acq0, shortcuts0] = totals();
    const std::uint64_t acq0 = acquisitions;
    const auto packets0 = env->server_packets();
    const time_point t0 = env->now();
    ok = ok && run_batches(state, *env, acquisitions, 20);
    const time_point t1 = env->now();
    const auto packets1 = env->server_packets();
    const auto [req1, stat_acq1, shortcuts1] = totals();

    if (!ok) {
      state.SkipWithError("the contenders stopped making progress");
    } else {
      const auto n = static_cast<double>(acquisitions - acq0);
      state.counters["handoffs_per_s"] = n / s_between(t0, t1);
      state.counters["handoffs"] = benchmark::Counter(n, benchmark::Counter::kIsRate);
      state.counters["requests_per_handoff"] = static_cast<double>(req1 - req0) / n;
      state.counters["shortcut_share"] =
          static_cast<double>(shortcuts1 - shortcuts0) / static_cast<double>(std::max<std::uint64_t>(1, stat_acq1 - stat_acq0));
      if (packets0 && packets1) state.counters["server_packets_per_handoff"] = static_cast<double>(*packets1 - *packets0) / n;
      state.counters["errors"] = static_cast<double>(errors);
      set_time_label(state, Env::name);
    }
    stopping = true;
    drain(*env, active);
    ss.close(*env);
  }
}

// ---------------------------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------------------------

template <class Env>
void atomic_counter_add(benchmark::State& state, std::size_t sessions) {
  using S = typename Env::session;
  auto env = Env::open(state);
  if (!env) return;
  session_set<Env> ss;
  if (!ss.add(*env, sessions)) {
    state.SkipWithError("the sessions did not connect");
    return;
  }
  {
    const std::string path = unique_root("counter") + "/counter";
    std::vector<std::unique_ptr<rec::atomic_counter<S>>> counters;
    for (auto& s : ss.all) counters.push_back(std::make_unique<rec::atomic_counter<S>>(*s, path));

    std::uint64_t increments = 0, tries = 0, gave_up = 0, errors = 0;
    bool stopping = false;
    std::vector<char> active(sessions, 0);
    std::function<void(std::size_t)> next = [&](std::size_t i) {
      if (stopping) {
        active[i] = 0;
        return;
      }
      active[i] = 1;
      counters[i]->async_increment([&, i](std::error_code ec, rec::atomic_result r) {
        if (!ec && r.succeeded) {
          ++increments;
          tries += static_cast<std::uint64_t>(r.stats.optimistic_tries);
        } else if (ec == zkr::errc::bad_version) {
          ++gave_up;
        } else {
          ++errors;
        }
        next(i);
      });
    };
    for (std::size_t i = 0; i < sessions; ++i) next(i);

    bool ok = env->run_until([&] { return increments >= 2 * sessions; }, step_limit);
    const std::uint64_t inc0 = increments, tries0 = tries;
    const time_point t0 = env->now();
    ok = ok && run_batches(state, *env, increments, 20);
    const time_point t1 = env->now();
    if (!ok) {
      state.SkipWithError("the counters stopped making progress");
    } else {
      const auto n = static_cast<double>(increments - inc0);
      state.counters["increments_per_s"] = n / s_between(t0, t1);
      state.counters["increments"] = benchmark::Counter(n, benchmark::Counter::kIsRate);
      state.counters["tries_per_increment"] = static_cast<double>(tries - tries0) / n;
      state.counters["gave_up"] = static_cast<double>(gave_up);
      state.counters["errors"] = static_cast<double>(errors);
      set_time_label(state, Env::name);
    }
    stopping = true;
    drain(*env, active);
    ss.close(*env);
  }
}

template <class Env>
void sequence_next(benchmark::State& state, std::size_t in_flight) {
  using S = typename Env::session;
  auto env = Env::open(state);
  if (!env) return;
  session_set<Env> ss;
  if (!ss.add(*env, 1)) {
    state.SkipWithError("the session did not connect");
    return;
  }
  {
    rec::sequence<S> seq(*ss.all.front(), unique_root("sequence") + "/seq");
    std::uint64_t values = 0, errors = 0;
    std::size_t active = 0;
    bool stopping = false;
    std::function<void()> next = [&] {
      if (stopping) return;
      ++active;
      seq.async_next([&](std::error_code ec, std::int64_t) {
        --active;
        if (ec) {
          ++errors;
        } else {
          ++values;
        }
        next();
      });
    };
    // The first call creates the node; the pipeline starts once it exists.
    next();
    bool ok = env->run_until([&] { return values >= 1; }, step_limit);
    for (std::size_t i = 1; i < in_flight; ++i) next();
    const std::uint64_t v0 = values;
    const time_point t0 = env->now();
    ok = ok && run_batches(state, *env, values, 50);
    const time_point t1 = env->now();
    if (!ok) {
      state.SkipWithError("the sequence stopped making progress");
    } else {
      const auto n = static_cast<double>(values - v0);
      state.counters["values_per_s"] = n / s_between(t0, t1);
      state.counters["values"] = benchmark::Counter(n, benchmark::Counter::kIsRate);
      state.counters["errors"] = static_cast<double>(errors);
      set_time_label(state, Env::name);
    }
    stopping = true;
    (void)env->run_until([&] { return active == 0; }, step_limit);
    ss.close(*env);
  }
}

// ---------------------------------------------------------------------------------------------
// Leader failover
// ---------------------------------------------------------------------------------------------

template <class Env>
void leader_failover(benchmark::State& state) {
  using S = typename Env::session;
  auto env = Env::open(state);
  if (!env) return;
  constexpr std::size_t contenders = 3;
  const std::string path = unique_root("latch") + "/latch";

  // Who became leader last, and when (session time).
  struct election {
    std::uint64_t id = 0;
    time_point at{};
  } last;
  struct contender {
    std::uint64_t id = 0;
    std::unique_ptr<S> session;
    std::unique_ptr<rec::leader_latch<S>> latch;
    zkr::subscription sub;
  };
  std::vector<contender> live;
  std::vector<contender> closed;  // kept until the end: a latch must not outlive its session
  std::uint64_t next_id = 1;

  const auto join = [&]() -> bool {
    contender c;
    c.id = next_id++;
    c.session = env->make_session();
    rec::leader_latch_options o;
    o.id = "c" + std::to_string(c.id);
    c.latch = std::make_unique<rec::leader_latch<S>>(*c.session, path, std::move(o));
    c.sub = c.latch->subscribe([&env, &last, id = c.id](const rec::leadership_change& ch) {
      if (ch.is_leader) last = {id, env->now()};
    });
    c.latch->start();
    auto* latch = c.latch.get();
    live.push_back(std::move(c));
    // Joined: its node exists (it queues behind the others).
    return env->run_until([&] { return !latch->our_path().empty(); }, step_limit);
  };

  bool ok = true;
  for (std::size_t i = 0; ok && i < contenders; ++i) ok = join();
  ok = ok && env->run_until([&] { return last.id != 0; }, step_limit);
  double total_ms = 0;
  for (auto _ : state) {
    if (!ok) break;
    const auto leader = std::find_if(live.begin(), live.end(), [&](const contender& c) { return c.id == last.id; });
    if (leader == live.end()) {
      ok = false;
      break;
    }
    const std::uint64_t old = last.id;
    const time_point t0 = env->now();
    leader->session->async_close([](std::error_code) {});
    ok = env->run_until([&] { return last.id != old; }, step_limit);
    if (!ok) break;
    total_ms += ms_between(t0, last.at);

    state.PauseTiming();
    ok = env->run_until([&] { return leader->session->state() == zkr::session_state::closed; }, step_limit);
    closed.push_back(std::move(*leader));
    live.erase(leader);
    ok = ok && join();
    state.ResumeTiming();
  }
  if (!ok) {
    state.SkipWithError("no new leader was elected");
  } else {
    state.counters["failover_ms"] = benchmark::Counter(total_ms, benchmark::Counter::kAvgIterations);
    set_time_label(state, Env::name);
  }
  // Close the live sessions; then the latches go, then (at scope end) the sessions.
  std::size_t pending = 0;
  for (auto& c : live) {
    ++pending;
    c.session->async_close([&pending](std::error_code) { --pending; });
  }
  (void)env->run_until([&] { return pending == 0; }, step_limit);
  for (auto* v : {&live, &closed}) {
    for (auto& c : *v) {
      c.sub.reset();
      c.latch.reset();
    }
  }
  (void)env->run_until([] { return false; }, 100ms);  // let the latches' background closes finish
}

// ---------------------------------------------------------------------------------------------
// Watch fan-out
// ---------------------------------------------------------------------------------------------

/// Fan-out of one change to `watchers` node_watch listeners: spread over `watchers` sessions
/// (local = false), or all on one session's hub (local = true).
template <class Env>
void watch_fanout(benchmark::State& state, std::size_t watchers, bool local) {
  using S = typename Env::session;
  auto env = Env::open(state);
  if (!env) return;
  session_set<Env> ss;
  // ss.all[0] writes; the watchers use ss.all[1..] (one session if local).
  if (!ss.add(*env, 1 + (local ? 1 : watchers))) {
    state.SkipWithError("the sessions did not connect");
    return;
  }
  {
    const std::string path = unique_root(local ? "fanout-local" : "fanout-sessions") + "/node";
    S& writer = *ss.all.front();
    bool ok = create_node(*env, writer, path, "v0");

    std::vector<rec::watch_hub<S>> hubs;
    for (std::size_t i = 1; i < ss.all.size(); ++i) hubs.emplace_back(*ss.all[i]);
    std::string target = "v0";
    std::size_t seen = 0;
    time_point first{}, last{};
    std::vector<std::unique_ptr<rec::node_watch<S>>> watches;
    for (std::size_t i = 0; i < watchers; ++i) {
      auto& hub = hubs[local ? 0 : i];
      watches.push_back(std::make_unique<rec::node_watch<S>>(hub, path));
      watches.back()->start([&](std::error_code ec, const rec::node_state& s) {
        if (ec) return false;
        if (s.exists && s.data == target) {
          const time_point now = env->now();
          if (seen++ == 0) first = now;
          last = now;
        }
        return true;
      });
    }
    ok = ok && env->run_until([&] { return seen == watchers; }, step_limit);

    // What the watchers' hubs sent: reads (with their watches) and syncs.
    const auto hub_reads = [&] {
      std::uint64_t r = 0;
      for (const auto& h : hubs) r += h.stats().reads + h.stats().syncs;
      return r;
    };
    const std::uint64_t reads0 = hub_reads();
    const auto packets0 = env->server_packets();
    double all_ms = 0, first_ms = 0;
    std::uint64_t version = 0, errors = 0;
    for (auto _ : state) {
      if (!ok) break;
      target = "v" + std::to_string(++version);
      seen = 0;
      const time_point t0 = env->now();
      writer.async_set(path, target, -1, [&errors](std::error_code ec, zkr::stat) {
        if (ec) ++errors;
      });
      ok = env->run_until([&] { return seen == watchers; }, step_limit);
      all_ms += ms_between(t0, last);
      first_ms += ms_between(t0, first);
    }
    const auto packets1 = env->server_packets();
    if (!ok) {
      state.SkipWithError("the watchers did not all see the change");
    } else {
      const auto n = static_cast<double>(version);
      state.counters["all_saw_ms"] = all_ms / n;
      state.counters["first_saw_ms"] = first_ms / n;
      state.counters["requests_per_change"] = static_cast<double>(hub_reads() - reads0) / n + 1;  // + the set
      if (packets0 && packets1) state.counters["server_packets_per_change"] = static_cast<double>(*packets1 - *packets0) / n;
      state.counters["errors"] = static_cast<double>(errors);
      set_time_label(state, Env::name);
    }
    watches.clear();
    ss.close(*env);
  }
}

// ---------------------------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------------------------

template <class Env>
void register_all() {
  const std::string b(Env::name);
  const bool real = b != "sim";
  // Real runs: long enough to average over the noise of a shared machine, short enough that
  // the whole program takes about a minute. The simulator's runs are cheap in wall time.
  // $ZKR_BENCH_SECONDS (default 2) is also what scripts/bench-recipes gives Curator and kazoo.
  const char* secs = std::getenv("ZKR_BENCH_SECONDS");
  const double min_time = secs != nullptr && std::strtod(secs, nullptr) > 0 ? std::strtod(secs, nullptr) : 2.0;
  const auto timed = [real, min_time](benchmark::internal::Benchmark* bm) {
    bm->UseRealTime()->Unit(benchmark::kMillisecond);
    if (real) bm->MinTime(min_time);
  };
  for (const std::size_t contenders : {4, 2}) {
    for (const bool shortcut : {false, true}) {
      std::string name = "BM_lock_handoff/" + b + "/shortcut:" + (shortcut ? "1" : "0");
      if (contenders != 4) name += "/contenders:" + std::to_string(contenders);
      timed(benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) {
        lock_handoff<Env>(st, contenders, shortcut);
      }));
    }
  }
  for (const std::size_t sessions : {1, 4}) {
    timed(benchmark::RegisterBenchmark(("BM_atomic_counter_add/" + b + "/sessions:" + std::to_string(sessions)).c_str(),
                                       [=](benchmark::State& st) { atomic_counter_add<Env>(st, sessions); }));
  }
  for (const std::size_t in_flight : {1, 16}) {
    timed(benchmark::RegisterBenchmark(("BM_sequence_next/" + b + "/in_flight:" + std::to_string(in_flight)).c_str(),
                                       [=](benchmark::State& st) { sequence_next<Env>(st, in_flight); }));
  }
  benchmark::RegisterBenchmark(("BM_leader_failover/" + b).c_str(), [](benchmark::State& st) { leader_failover<Env>(st); })
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond)
      ->Iterations(real ? 30 : 200);
  for (const bool local : {false, true}) {
    for (const std::size_t n : {10, 100}) {
      const std::string name =
          std::string(local ? "BM_watch_fanout_local/" : "BM_watch_fanout_sessions/") + b + "/" + std::to_string(n);
      benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) { watch_fanout<Env>(st, n, local); })
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond)
          ->Iterations(real ? 100 : 500);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  zkr::zookeeper::set_log_level(zkr::zookeeper::log_level::error);
  register_all<sim_env>();
  register_all<zk_env>();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
