// tests/conformance/fixture.hpp: one test body, two backends.
//
// The conformance suite runs the same GoogleTest TYPED_TESTs against a real ZooKeeper server
// (`zk_backend`: zkr::zookeeper::session, the C client) and against the simulator
// (`sim_backend`: zkr::sim::session in a zkr::sim::cluster). A difference between the two is
// a simulator bug (DESIGN.md, "Testing"); /work/notes/conformance_diffs.md lists the known ones.
//
// A test body never waits by itself. It goes through its fixture, whose backend decides what
// waiting means:
//   await(future)        real: wait up to 30 s of real time; sim: run the cluster until the
//                        future is ready, up to 60 s of virtual time (or until events ran out)
//   eventually(pred, d)  real: poll pred every 10 ms for d of real time; sim: run the cluster in
//                        10 ms steps of virtual time until pred holds or d of virtual time passed
//                        (pred may itself await: it runs between the steps)
//   advance(d)           real: sleep d; sim: run the cluster for d of virtual time
//   drain()              real: let the handlers queued on the io_context run; sim: run what is
//                        runnable now without moving the clock
// and `now()` is the first session's steady_now() (real or virtual).
//
// Servers. The real side shares one standalone server per program (zk_environment), a shared
// 3-node ensemble for the `ensemble` fixture (started on first use) and a fresh standalone
// server per test for the `outages` fixture (tests that stop it). The simulator side makes
// a fresh cluster per test with the test servers' configuration (scripts/zk): tickTime 200 ms
// (1000 ms for `outages`, so that a session can outlive a restart), session timeouts within
// [2 ticks, 60 s], container/TTL check every 100 ms, 1 or 3 servers. The seed is 1, or
// $ZKR_CONFORMANCE_SEED for a sweep.
//
// Every test gets its own root path (test_root()), created by SetUp, so that tests sharing a
// real server never see each other's nodes; the simulator side uses the same paths.
//
// The simulator side is compiled only once <zkr/sim/session.hpp> exists.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <iostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <boost/asio/strand.hpp>
#include <gtest/gtest.h>
#include <zookeeper/zookeeper.h>

#include <zkr/zookeeper/session.hpp>

#if __has_include(<zkr/sim/session.hpp>)
#define ZKR_CONFORMANCE_SIM 1
#include <zkr/sim/cluster.hpp>
#include <zkr/sim/session.hpp>
#else
#define ZKR_CONFORMANCE_SIM 0
#endif

#include "support/runner.hpp"
#include "support/zk_server.hpp"

// GoogleTest printers for zkr's value types, so that a failed comparison says what differs.
namespace zkr {
inline void PrintTo(const stat& s, std::ostream* os) {
  *os << "{czxid " << s.czxid << ", mzxid " << s.mzxid << ", pzxid " << s.pzxid << ", ctime " << s.ctime
      << ", mtime " << s.mtime << ", version " << s.version << ", cversion " << s.cversion << ", aversion "
      << s.aversion << ", ephemeral_owner " << s.ephemeral_owner << ", data_length " << s.data_length
      << ", num_children " << s.num_children << "}";
}
inline void PrintTo(const acl& a, std::ostream* os) { *os << "{" << a.perms << ", " << a.scheme << ":" << a.id << "}"; }
inline void PrintTo(const watch_event& e, std::ostream* os) { *os << "{" << e.type << ", " << e.path << "}"; }
}  // namespace zkr

namespace zkr::conformance {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using zkr::test::recorder;
using zkr::test::tok;
using zkr::test::watch_log;
using zkr::test::watch_record;

/// How a test session connects; translated into each backend's own options.
struct connect_options {
  std::string chroot{};  ///< appended to the connect string, e.g. "/zkr-test/x"
  /// 4 s: short enough that the tests' sessions of a real server end soon after a crash.
  std::chrono::milliseconds session_timeout{4000};
  bool reopen_on_expiry = true;
  std::size_t max_request_bytes = default_max_request_bytes;
  int server = -1;  ///< -1: every server of the cluster; otherwise only this one
};

/// The servers a fixture runs against.
enum class topology {
  shared_single,    ///< real: the program's standalone server; sim: 1 server
  shared_ensemble,  ///< real: the program's 3-node ensemble; sim: 3 servers
  own_single,       ///< real: a standalone server of the test's own; sim: 1 server (tick 1 s)
};

/// Session state transitions, recorded by a subscription.
struct state_log : recorder<session_event> {
  std::vector<session_state> states() const {
    std::vector<session_state> out;
    for (const auto& e : items()) out.push_back(e.state);
    return out;
  }
  bool has(session_state s) const {
    const auto st = states();
    return std::find(st.begin(), st.end(), s) != st.end();
  }
};

// ----------------------------------------------------------------------------------------
// The real side
// ----------------------------------------------------------------------------------------
inline const auto* const zk_env = ::testing::AddGlobalTestEnvironment(new zkr::test::zk_environment);

namespace detail {
struct shared_ensemble_state {
  std::mutex mu;
  std::optional<zkr::test::zk_cluster> cluster;
  std::string error;
};
inline shared_ensemble_state& ensemble_state() {
  static shared_ensemble_state s;
  return s;
}
}  // namespace detail

/// The 3-node ensemble shared by the `ensemble` fixture's real tests (started on first use,
/// tickTime 200 ms). Fails the calling test loudly if it cannot start.
inline zkr::test::zk_cluster& shared_ensemble() {
  auto& s = detail::ensemble_state();
  std::lock_guard lock(s.mu);
  if (!s.cluster && s.error.empty()) {
    try {
      s.cluster.emplace(zkr::test::zk_cluster::start(3, "conformance-ensemble"));
    } catch (const std::exception& e) {
      s.error = e.what();
    }
  }
  if (!s.cluster) {
    ADD_FAILURE() << "cannot start the shared ZooKeeper ensemble: " << s.error;
    throw std::runtime_error("the shared ZooKeeper ensemble is unavailable (see the failure above)");
  }
  return *s.cluster;
}

/// Stops the shared ensemble at the end of the program (printing its logs if a test failed).
class ensemble_environment : public ::testing::Environment {
 public:
  void TearDown() override {
    auto& s = detail::ensemble_state();
    std::lock_guard lock(s.mu);
    if (!s.cluster) return;
    if (::testing::UnitTest::GetInstance()->Failed()) {
      std::cerr << "\n===== a test failed: logs of the shared ZooKeeper ensemble =====\n" << s.cluster->logs(100);
    }
    s.cluster.reset();
  }
};
inline const auto* const ensemble_env = ::testing::AddGlobalTestEnvironment(new ensemble_environment);

/// Real ZooKeeper through the C client, in real time.
class zk_backend {
 public:
  using session = zkr::zookeeper::session;
  static constexpr bool simulated = false;
  static constexpr std::string_view name = "zookeeper";

  explicit zk_backend(topology t) {
    zkr::zookeeper::set_log_level(zkr::zookeeper::log_level::error);
    switch (t) {
      case topology::shared_single: cluster_ = &zkr::test::shared_server(); break;
      case topology::shared_ensemble: cluster_ = &shared_ensemble(); break;
      case topology::own_single:
        own_.emplace(zkr::test::zk_cluster::start(1, "conformance-own", 1000));
        cluster_ = &*own_;
        break;
    }
  }

  std::string connect_string(const connect_options& o) const {
    return (o.server < 0 ? cluster_->connect_string() : cluster_->connect_string(o.server)) + o.chroot;
  }
  std::unique_ptr<session> make_session(const connect_options& o) {
    zkr::zookeeper::options z;
    z.connect_string = connect_string(o);
    z.session_timeout = o.session_timeout;
    z.reopen_on_expiry = o.reopen_on_expiry;
    z.max_request_bytes = o.max_request_bytes;
    return std::make_unique<session>(io_.executor(), std::move(z));
  }

  template <class T>
  T await(std::future<T> f) {
    return zkr::test::await(std::move(f), 30s);
  }
  template <class Pred>
  bool eventually(Pred pred, std::chrono::milliseconds limit) {
    return zkr::test::eventually(std::move(pred), limit, 10ms);
  }
  void advance(std::chrono::milliseconds d) { std::this_thread::sleep_for(d); }
  void drain() { io_.drain(); }

  /// Another executor than the session's, to check that a handler's associated executor is
  /// honoured (running_in_this_thread() tells whether a handler runs on it).
  auto other_executor() { return asio::make_strand(io_.context()); }

  /// Forces the expiry of `s`'s session, as Curator's KillSession did: a second C-client
  /// handle attaches to the session (same id and password) and closes it, so the server
  /// closes the session.
  ///
  /// The attempt races with `s` itself: the second handle's connect drops `s`'s connection,
  /// and if `s` reconnects before the closeSession arrives, the session has moved back to
  /// `s` and the server refuses the close (about 1 attempt in 4 on loopback). So this
  /// returns only once `s` has learned of the expiry (a new generation, or `lost` for good),
  /// trying again (up to 5 times) when `s` comes back with its old session instead.
  bool expire(const session& s) {
    const auto gen = s.generation();
    const auto sid = s.session_id();
    const auto learned = [&] { return s.generation() != gen || s.state() == session_state::lost; };
    for (int attempt = 0; attempt < 5; ++attempt) {
      clientid_t id{};
      id.client_id = sid;
      const auto pw = s.session_password();
      std::memcpy(id.passwd, pw.data(), std::min(pw.size(), sizeof(id.passwd)));
      zhandle_t* zh = zookeeper_init(cluster_->connect_string().c_str(), nullptr, 10000, &id, nullptr, 0);
      if (zh == nullptr) return false;
      const bool connected = zkr::test::eventually([&] { return zoo_state(zh) == ZOO_CONNECTED_STATE; }, 10s, 10ms);
      zookeeper_close(zh);  // sends closeSession: the server ends the session now (unless moved)
      if (connected && zkr::test::eventually(learned, 10s, 10ms)) return true;
      if (learned()) return true;
    }
    return false;
  }

  /// Whether the server (the standalone one) holds a data watch (exists / get) of
  /// `session_id` on `path`: the 4-letter word `wchp` lists each path with data watches
  /// (DataTree.getWatchesByPath: child watches are not listed), then one "\t0x<session id>"
  /// line per watcher.
  bool server_has_data_watch(const std::string& path, std::int64_t session_id) {
    const std::string out = four_letter_word(cluster_->connect_string(0), "wchp");
    EXPECT_FALSE(out.empty()) << "wchp answered nothing (is it whitelisted?)";
    std::istringstream in(out);
    std::string line;
    bool under = false;
    while (std::getline(in, line)) {
      if (!line.empty() && line[0] == '\t') {
        if (under && static_cast<std::int64_t>(std::stoull(line.substr(3), nullptr, 16)) == session_id) return true;
      } else {
        under = line == path;
      }
    }
    return false;
  }

  /// Index of the leader (ensemble), -1 if none now.
  int leader() const { return cluster_->leader(); }
  /// Makes follower `server` apply commits late. A real follower's lag is whatever it is:
  /// nothing to do here (the tests accept both outcomes on the real side).
  void lag_follower(int /*server*/, std::chrono::milliseconds /*extra*/) {}

  /// Stops server `i` abruptly (SIGKILL) / starts it again (own_single only).
  void kill_server(int i) { cluster_->kill(i); }
  void restart_server(int i) { cluster_->restart(i); }

 private:
  static std::string four_letter_word(const std::string& host_port, const std::string& word) {
    const auto colon = host_port.rfind(':');
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(std::stoi(host_port.substr(colon + 1))));
    if (::inet_pton(AF_INET, host_port.substr(0, colon).c_str(), &addr.sin_addr) != 1) {
      throw std::runtime_error("bad server address " + host_port);
    }
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) throw std::runtime_error("socket failed");
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::send(fd, word.data(), word.size(), 0) != static_cast<ssize_t>(word.size())) {
      ::close(fd);
      throw std::runtime_error("cannot send '" + word + "' to " + host_port);
    }
    std::string out;
    char buf[4096];
    ssize_t n = 0;
    while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<std::size_t>(n));
    ::close(fd);
    if (n < 0) throw std::runtime_error("reading the answer to '" + word + "' failed or timed out");
    return out;
  }

  std::optional<zkr::test::zk_cluster> own_;  // destroyed last: the sessions die first
  zkr::test::zk_cluster* cluster_ = nullptr;
  zkr::test::io_thread io_;
};

// ----------------------------------------------------------------------------------------
// The simulated side
// ----------------------------------------------------------------------------------------
#if ZKR_CONFORMANCE_SIM
/// The deterministic simulator, in virtual time, on the test's thread.
class sim_backend {
 public:
  using session = zkr::sim::session;
  static constexpr bool simulated = true;
  static constexpr std::string_view name = "sim";

  explicit sim_backend(topology t) {
    zkr::sim::cluster_options o;
    o.seed = seed();
    o.servers = t == topology::shared_ensemble ? 3 : 1;
    o.tick_time = t == topology::own_single ? 1000ms : 200ms;
    o.min_session_timeout = 2 * o.tick_time;  // scripts/zk's zoo.cfg
    o.max_session_timeout = 60000ms;
    o.container_check_interval = 100ms;
    cluster_ = std::make_unique<zkr::sim::cluster>(o);
  }

  /// $ZKR_CONFORMANCE_SEED, or 1.
  static std::uint64_t seed() {
    const char* s = std::getenv("ZKR_CONFORMANCE_SEED");
    return s != nullptr && *s != '\0' ? std::stoull(s) : 1;
  }

  std::string connect_string(const connect_options& o) const {
    if (o.server < 0) return cluster_->connect_string(o.chroot);
    return "s" + std::to_string(o.server) + ":2181" + o.chroot;
  }
  std::unique_ptr<session> make_session(const connect_options& o) {
    zkr::sim::session_options so;
    so.connect_string = connect_string(o);
    so.session_timeout = o.session_timeout;
    so.reopen_on_expiry = o.reopen_on_expiry;
    so.max_request_bytes = o.max_request_bytes;
    return std::make_unique<session>(*cluster_, std::move(so));
  }

  template <class T>
  T await(std::future<T> f) {
    const auto deadline = cluster_->now() + 60s;
    auto ready = [&] { return f.wait_for(0s) == std::future_status::ready; };
    const bool more = cluster_->run_until([&] { return ready() || cluster_->now() >= deadline; });
    if (!ready()) {
      throw std::runtime_error(more ? "operation did not complete within 60 s of virtual time"
                                    : "the simulation ran out of events before the operation completed");
    }
    return f.get();
  }
  template <class Pred>
  bool eventually(Pred pred, std::chrono::milliseconds limit) {
    const auto deadline = cluster_->now() + limit;
    while (!pred()) {
      if (cluster_->now() >= deadline) return false;
      cluster_->run_for(std::min<zkr::sim::clock_duration>(10ms, deadline - cluster_->now()));
    }
    return true;
  }
  void advance(std::chrono::milliseconds d) { cluster_->run_for(d); }
  void drain() { cluster_->get_scheduler().poll(); }

  /// The world's executor: not the session's (a session belongs to a client process).
  auto other_executor() { return cluster_->get_scheduler().get_executor(); }

  bool expire(const session& s) { return cluster_->expire_session(s.session_id()); }

  bool server_has_data_watch(const std::string& path, std::int64_t session_id) {
    return cluster_->tree(cluster_->leader().value_or(0)).has_data_watch(session_id, path);
  }

  int leader() const {
    const auto l = cluster_->leader();
    return l ? static_cast<int>(*l) : -1;
  }
  void lag_follower(int server, std::chrono::milliseconds extra) {
    cluster_->set_lag(static_cast<std::size_t>(server), extra);
  }
  void kill_server(int i) { cluster_->kill_server(static_cast<std::size_t>(i)); }
  void restart_server(int i) { cluster_->restart_server(static_cast<std::size_t>(i)); }

  zkr::sim::cluster& cluster() { return *cluster_; }

 private:
  std::unique_ptr<zkr::sim::cluster> cluster_;
};
#endif

#if ZKR_CONFORMANCE_SIM
using backends = ::testing::Types<zk_backend, sim_backend>;
#else
using backends = ::testing::Types<zk_backend>;
#endif

/// Names the instantiations "zookeeper" and "sim": e.g. operations/sim.multi_...
struct backend_names {
  template <class B>
  static std::string GetName(int) {
    return std::string(B::name);
  }
};

// ----------------------------------------------------------------------------------------
// The fixture
// ----------------------------------------------------------------------------------------
template <class B, topology T = topology::shared_single>
class fixture : public ::testing::Test {
 protected:
  using backend = B;
  using session = typename B::session;
  static constexpr bool simulated = B::simulated;

  fixture() : b_(T) {}

  void SetUp() override {
    root_ = zkr::test::test_root();
    auto& s = open();
    ASSERT_TRUE(is_connected(s.state())) << s.state();
    const auto ec1 = err(s.async_create("/zkr-test", "", {}, tok));
    ASSERT_TRUE(!ec1 || ec1 == errc::node_exists) << ec1.message();
    const auto ec2 = err(s.async_create(root_, "", {}, tok));
    ASSERT_FALSE(ec2) << ec2.message();
  }

  void TearDown() override {
    try {
      for (auto& s : sessions_) (void)await(s->async_close(tok));
      drain();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "closing the sessions failed: " << e.what();
    }
    sessions_.clear();
  }

  /// Opens a session and waits until it is connected. Owned by the fixture.
  session& open(connect_options o = {}) {
    auto& s = open_unconnected(std::move(o));
    auto [ec] = await(s.async_wait_connected(tok));
    EXPECT_FALSE(ec) << ec.message();
    return s;
  }
  /// Opens a session without waiting for it to connect.
  session& open_unconnected(connect_options o = {}) {
    sessions_.push_back(b_.make_session(o));
    return *sessions_.back();
  }
  session& first() { return *sessions_.front(); }
  /// root_ + "/" + name
  std::string path(const std::string& name) const { return root_ + "/" + name; }

  template <class R>
  R await(std::future<R> f) {
    return b_.await(std::move(f));
  }
  /// The error code of an operation's completion.
  template <class R>
  std::error_code err(std::future<R> f) {
    return std::get<0>(await(std::move(f)));
  }
  template <class Pred>
  bool eventually(Pred pred, std::chrono::milliseconds limit = 20s) {
    return b_.eventually(std::move(pred), limit);
  }
  void advance(std::chrono::milliseconds d) { b_.advance(d); }
  void drain() { b_.drain(); }
  /// Steady time of the backend (virtual in the simulator).
  std::chrono::steady_clock::time_point now() { return first().steady_now(); }

  /// A watch log that outlives the test's sessions (and the backend's threads and events):
  /// a watch still set at the end of a test completes with `closing` when TearDown closes
  /// its session, after the test body's locals are gone.
  watch_log& new_watch_log() {
    logs_.push_back(std::make_unique<watch_log>());
    return *logs_.back();
  }

  /// Waits until `log` holds at least n watch completions.
  bool wait_watches(const watch_log& log, std::size_t n, std::chrono::milliseconds limit = 20s) {
    return eventually([&] { return log.size() >= n; }, limit);
  }
  /// Waits until `log` has recorded a transition to `s`.
  bool wait_state(const state_log& log, session_state s, std::chrono::milliseconds limit = 30s) {
    return eventually([&] { return log.has(s); }, limit);
  }

  /// Polls exists(p) on `s` every 100 ms until it reports no_node; false after `limit`.
  bool gone_within(session& s, const std::string& p, std::chrono::milliseconds limit = 10s) {
    return eventually(
        [&] {
          const auto ec = err(s.async_exists(p, tok));
          EXPECT_TRUE(!ec || ec == errc::no_node) << ec.message();
          if (ec == errc::no_node) return true;
          advance(90ms);
          return false;
        },
        limit);
  }
  /// Checks every 100 ms for `window` that p still exists; false as soon as it does not.
  bool stays_for(session& s, const std::string& p, std::chrono::milliseconds window) {
    const auto until = now() + window;
    while (now() < until) {
      if (err(s.async_exists(p, tok))) return false;
      advance(100ms);
    }
    return !err(s.async_exists(p, tok));
  }

  std::vector<std::unique_ptr<watch_log>> logs_;  // destroyed after b_: no handler runs later
  B b_;
  std::string root_;
  std::vector<std::unique_ptr<session>> sessions_;  // destroyed before b_ (its cluster, its io)
};

}  // namespace zkr::conformance
