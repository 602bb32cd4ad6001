// Goal: the simulated ensemble's fault behaviour, which a real server cannot show on demand
// or exactly: elections that sessions survive, partitions that expire a session, presumed
// loss, the two views of a long election, stale reads until sync, GC pauses, oversized
// requests, in-flight writes of unknown outcome, quorum loss, and determinism (same seed,
// same trace, byte for byte; another seed, another trace).
// Method: one cluster per test in virtual time; operations complete through futures and
// the cluster runs until they are ready (a virtual-time limit turns a hang into a failure).
// The ZooKeeper semantics of each operation are in the conformance suite (both backends).
#include <chrono>
#include <future>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include <zkr/sim/cluster.hpp>
#include <zkr/sim/session.hpp>

namespace zkr::sim {
namespace {

using namespace std::chrono_literals;

/// A completion token: a std::future of the completion's arguments as a tuple.
struct fut_t {};
constexpr fut_t fut{};

}  // namespace
}  // namespace zkr::sim

template <class... Args>
struct boost::asio::async_result<zkr::sim::fut_t, void(Args...)> {
  using return_type = std::future<std::tuple<std::decay_t<Args>...>>;
  template <class Initiation, class... InitArgs>
  static return_type initiate(Initiation&& init, zkr::sim::fut_t, InitArgs&&... args) {
    auto promise = std::make_shared<std::promise<std::tuple<std::decay_t<Args>...>>>();
    auto future = promise->get_future();
    std::forward<Initiation>(init)([promise](Args... a) { promise->set_value(std::make_tuple(std::move(a)...)); },
                                   std::forward<InitArgs>(args)...);
    return future;
  }
};

namespace zkr::sim {
namespace {

template <class T>
T wait(cluster& c, std::future<T> f, clock_duration limit = 120s) {
  const bool ok = c.run_until([&] { return f.wait_for(0s) == std::future_status::ready; }, limit);
  if (!ok) throw std::runtime_error("operation did not complete within the virtual time limit");
  return f.get();
}

struct state_log {
  std::vector<session_event> events;
  subscription sub;
  explicit state_log(session& s) : sub(s.subscribe([this](const session_event& e) { events.push_back(e); })) {}
  std::vector<session_state> states() const {
    std::vector<session_state> out;
    for (const auto& e : events) out.push_back(e.state);
    return out;
  }
  bool saw(session_state s) const {
    for (const auto& e : events) {
      if (e.state == s) return true;
    }
    return false;
  }
};

cluster_options test_options(std::uint64_t seed = 1, std::size_t servers = 3) {
  cluster_options o;
  o.seed = seed;
  o.servers = servers;
  o.tick_time = 200ms;
  o.container_check_interval = 100ms;
  return o;
}

session_options sopts(const cluster& c, std::chrono::milliseconds timeout = 4000ms, std::string chroot = {}) {
  session_options o;
  o.connect_string = c.connect_string(chroot);
  o.session_timeout = timeout;
  return o;
}

bool connect(cluster& c, session& s) { return !std::get<0>(wait(c, s.async_wait_connected(fut))); }

TEST(sim_cluster, a_fresh_ensemble_has_one_leader_and_every_server_serves) {
  cluster c(test_options());
  ASSERT_TRUE(c.leader().has_value());
  for (std::size_t i = 0; i < c.size(); ++i) EXPECT_TRUE(c.serving(i)) << i;
  EXPECT_EQ(c.connect_string("/app"), "s0:2181,s1:2181,s2:2181/app");
}

TEST(sim_cluster, bad_options_and_connect_strings_are_refused_clearly) {
  EXPECT_THROW(cluster(cluster_options{.servers = 0}), std::invalid_argument);
  cluster c(test_options());
  EXPECT_THROW(session(c, {.connect_string = "nohost:2181"}), std::system_error);
  EXPECT_THROW(session(c, {.connect_string = ""}), std::system_error);
  EXPECT_THROW(session(c, {.connect_string = c.connect_string(), .session_timeout = 0ms}), std::system_error);
}

TEST(sim_cluster, session_timeout_is_negotiated_within_2_and_20_ticks) {
  cluster c(test_options());
  session low(c, sopts(c, 100ms));
  session mid(c, sopts(c, 1000ms));
  session high(c, sopts(c, 100s));
  ASSERT_TRUE(connect(c, low));
  ASSERT_TRUE(connect(c, mid));
  ASSERT_TRUE(connect(c, high));
  EXPECT_EQ(low.negotiated_timeout(), 400ms);
  EXPECT_EQ(mid.negotiated_timeout(), 1000ms);
  EXPECT_EQ(high.negotiated_timeout(), 4000ms);
}

TEST(sim_cluster, host_order_is_shuffled_from_the_seed) {
  // Which server a session reaches first depends on the seed, and only on it.
  std::set<std::int64_t> first_servers;
  for (std::uint64_t seed = 1; seed <= 12; ++seed) {
    cluster c(test_options(seed));
    session s(c, sopts(c));
    ASSERT_TRUE(connect(c, s));
    first_servers.insert(s.session_id() >> 56);  // the id carries the server's number
  }
  EXPECT_EQ(first_servers.size(), 3u);
}

TEST(sim_cluster, killing_the_leader_is_survived_by_every_session) {
  cluster c(test_options());
  session a(c, sopts(c));
  session b(c, sopts(c));
  ASSERT_TRUE(connect(c, a));
  ASSERT_TRUE(connect(c, b));
  state_log la(a);
  const auto id = a.session_id();
  ASSERT_FALSE(std::get<0>(wait(c, a.async_create("/eph", "", {.mode = create_mode::ephemeral}, fut))));
  const auto old_leader = *c.leader();
  c.kill_leader();
  EXPECT_FALSE(c.leader().has_value());
  c.run_for(3s);
  ASSERT_TRUE(c.leader().has_value());
  EXPECT_NE(*c.leader(), old_leader);
  EXPECT_EQ(la.states(), (std::vector<session_state>{session_state::suspended, session_state::reconnected}));
  EXPECT_EQ(a.session_id(), id);
  auto [ec, st] = wait(c, b.async_exists("/eph", fut));
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(st.ephemeral_owner, id);
  // Zxids carry the new epoch.
  auto [ec2, p, st2] = wait(c, b.async_create("/after", "", {}, fut));
  ASSERT_FALSE(ec2);
  EXPECT_GT(st2.czxid >> 32, st.czxid >> 32);
}

TEST(sim_cluster, a_partition_longer_than_the_timeout_expires_the_session) {
  cluster c(test_options());
  session a(c, sopts(c));
  session b(c, sopts(c));
  ASSERT_TRUE(connect(c, a));
  ASSERT_TRUE(connect(c, b));
  ASSERT_FALSE(std::get<0>(wait(c, a.async_create("/eph", "", {.mode = create_mode::ephemeral}, fut))));
  std::vector<watch_event> seen;
  auto [ec0, st0] = wait(c, b.async_exists("/eph", [&](std::error_code ec, watch_event ev) {
    EXPECT_FALSE(ec);
    seen.push_back(ev);
  }, fut));
  ASSERT_FALSE(ec0);
  state_log la(a);
  const auto old_id = a.session_id();
  c.isolate(endpoint::client(a.process()));
  c.run_for(10s);
  // The client presumed its session lost (no server heard for the timeout) ...
  ASSERT_GE(la.events.size(), 2u);
  EXPECT_EQ(la.events[0].state, session_state::suspended);
  EXPECT_EQ(la.events[1].state, session_state::lost);
  EXPECT_EQ(la.events[1].reason, errc::session_lost);
  // ... and the leader expired it: its ephemeral node is gone, b's watch fired.
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].type, event_type::deleted);
  c.heal();
  ASSERT_TRUE(c.run_until([&] { return is_connected(a.state()); }, 10s));
  EXPECT_EQ(a.generation(), 2u);
  EXPECT_NE(a.session_id(), old_id);
  EXPECT_EQ(la.states().back(), session_state::connected);
}

TEST(sim_cluster, a_long_election_shows_both_views_of_the_session) {
  // The client cannot reach a serving server for longer than its timeout and presumes its
  // session lost; the new leader gives every session a fresh timeout, so the server kept it:
  // its ephemeral node stays until that fresh timeout runs out.
  cluster c(test_options());
  session a(c, sopts(c, 2000ms));
  session b(c, sopts(c, 4000ms));
  ASSERT_TRUE(connect(c, a));
  ASSERT_TRUE(connect(c, b));
  ASSERT_FALSE(std::get<0>(wait(c, a.async_create("/eph", "", {.mode = create_mode::ephemeral}, fut))));
  state_log la(a);
  const auto old_id = a.session_id();
  c.start_election(30s);
  c.run_for(30s);
  ASSERT_TRUE(la.saw(session_state::lost));
  EXPECT_EQ(la.events[1].reason, errc::session_lost);
  ASSERT_TRUE(c.run_until([&] { return c.leader().has_value(); }, 5s));
  // Right after the election, the old session still exists on the servers.
  EXPECT_TRUE(c.sessions(*c.leader()).contains(old_id));
  ASSERT_TRUE(c.run_until([&] { return is_connected(b.state()); }, 5s));
  auto [ec, st] = wait(c, b.async_exists("/eph", fut));
  ASSERT_FALSE(ec) << "the server kept the old session: " << ec.message();
  EXPECT_EQ(st.ephemeral_owner, old_id);
  // It expires a timeout later, and the client has a new generation meanwhile.
  c.run_for(3s);
  EXPECT_EQ(std::get<0>(wait(c, b.async_exists("/eph", fut))), errc::no_node);
  EXPECT_FALSE(c.sessions(*c.leader()).contains(old_id));
  EXPECT_TRUE(is_connected(a.state()));
  EXPECT_EQ(a.generation(), 2u);
}

TEST(sim_cluster, a_lagging_follower_serves_stale_reads_until_sync) {
  cluster c(test_options());
  const std::size_t lead = *c.leader();
  const std::size_t follower = (lead + 1) % 3;
  session writer(c, sopts(c));
  session_options ro = sopts(c);
  ro.connect_string = "s" + std::to_string(follower) + ":2181";
  session reader(c, ro);
  ASSERT_TRUE(connect(c, writer));
  ASSERT_TRUE(connect(c, reader));
  ASSERT_FALSE(std::get<0>(wait(c, writer.async_create("/x", "1", {}, fut))));
  ASSERT_FALSE(std::get<0>(wait(c, reader.async_sync("/x", fut))));
  c.set_lag(follower, 1s);
  ASSERT_FALSE(std::get<0>(wait(c, writer.async_set("/x", "2", -1, fut))));
  auto [ec, data, st] = wait(c, reader.async_get("/x", fut));
  ASSERT_FALSE(ec);
  EXPECT_EQ(data, "1") << "the follower has not applied the write yet";
  ASSERT_FALSE(std::get<0>(wait(c, reader.async_sync("/x", fut))));
  auto [ec2, data2, st2] = wait(c, reader.async_get("/x", fut));
  EXPECT_EQ(data2, "2") << "sync makes the follower catch up";
}

TEST(sim_cluster, a_lagging_follower_still_shows_an_expired_sessions_ephemeral_node) {
  cluster c(test_options());
  const std::size_t follower = (*c.leader() + 1) % 3;
  session owner(c, sopts(c));
  session_options ro = sopts(c);
  ro.connect_string = "s" + std::to_string(follower) + ":2181";
  session reader(c, ro);
  ASSERT_TRUE(connect(c, owner));
  ASSERT_TRUE(connect(c, reader));
  ASSERT_FALSE(std::get<0>(wait(c, owner.async_create("/eph", "", {.mode = create_mode::ephemeral}, fut))));
  ASSERT_FALSE(std::get<0>(wait(c, reader.async_sync("/", fut))));
  c.set_lag(follower, 2s);
  ASSERT_TRUE(c.expire_session(owner.session_id()));
  c.run_for(500ms);
  EXPECT_EQ(c.tree(*c.leader()).find("/eph"), nullptr);
  EXPECT_FALSE(std::get<0>(wait(c, reader.async_exists("/eph", fut)))) << "stale: still there on the follower";
  ASSERT_FALSE(std::get<0>(wait(c, reader.async_sync("/", fut))));
  EXPECT_EQ(std::get<0>(wait(c, reader.async_exists("/eph", fut))), errc::no_node);
}

TEST(sim_cluster, expire_session_makes_the_client_lose_it_and_open_a_new_one) {
  cluster c(test_options());
  session s(c, sopts(c));
  ASSERT_TRUE(connect(c, s));
  state_log log(s);
  bool watch_ended = false;
  auto [ec0, st0] = wait(c, s.async_exists("/w", [&](std::error_code ec, watch_event) {
    EXPECT_EQ(ec, errc::session_expired);
    watch_ended = true;
  }, fut));
  EXPECT_EQ(ec0, errc::no_node);
  const auto id = s.session_id();
  ASSERT_TRUE(c.expire_session(id));
  ASSERT_TRUE(c.run_until([&] { return s.generation() == 2 && is_connected(s.state()); }, 10s));
  EXPECT_TRUE(watch_ended);
  // As with the C client: the server closes the expired session's connection (suspended),
  // the reconnect is told "expired" (lost), and a new session opens (connected, gen 2).
  ASSERT_EQ(log.events.size(), 3u);
  EXPECT_EQ(log.events[0].state, session_state::suspended);
  EXPECT_EQ(log.events[1].state, session_state::lost);
  EXPECT_EQ(log.events[1].reason, errc::session_expired);
  EXPECT_EQ(log.events[1].generation, 1u);
  EXPECT_EQ(log.events[2].state, session_state::connected);
  EXPECT_EQ(log.events[2].generation, 2u);
  EXPECT_FALSE(c.expire_session(id)) << "an expired session is unknown to the leader";
}

TEST(sim_cluster, a_gc_pause_longer_than_the_timeout_loses_the_session) {
  cluster c(test_options());
  session s(c, sopts(c));
  session other(c, sopts(c));
  ASSERT_TRUE(connect(c, s));
  ASSERT_TRUE(connect(c, other));
  ASSERT_FALSE(std::get<0>(wait(c, s.async_create("/eph", "", {.mode = create_mode::ephemeral}, fut))));
  state_log log(s);
  c.pause_process(s.process(), 8s);
  c.run_for(6s);
  EXPECT_TRUE(log.events.empty()) << "a paused process sees nothing while paused";
  EXPECT_EQ(std::get<0>(wait(c, other.async_exists("/eph", fut))), errc::no_node) << "the leader expired it";
  ASSERT_TRUE(c.run_until([&] { return s.generation() == 2 && is_connected(s.state()); }, 20s));
  EXPECT_TRUE(log.saw(session_state::lost));
}

TEST(sim_cluster, a_short_gc_pause_is_survived) {
  cluster c(test_options());
  session s(c, sopts(c));
  ASSERT_TRUE(connect(c, s));
  state_log log(s);
  c.pause_process(s.process(), 1s);
  c.run_for(5s);
  EXPECT_FALSE(log.saw(session_state::lost));
  EXPECT_TRUE(is_connected(s.state()));
  EXPECT_EQ(s.generation(), 1u);
}

TEST(sim_cluster, an_oversized_request_that_skips_the_client_check_drops_the_connection) {
  cluster c(test_options());
  session_options o = sopts(c);
  o.max_request_bytes = 0;
  session s(c, o);
  ASSERT_TRUE(connect(c, s));
  state_log log(s);
  const std::string huge(default_max_request_bytes + 1024, 'x');
  auto [ec, p, st] = wait(c, s.async_create("/huge", huge, {}, fut));
  EXPECT_EQ(ec, errc::connection_loss) << ec.message();
  ASSERT_TRUE(c.run_until([&] { return is_connected(s.state()); }, 5s));
  EXPECT_EQ(log.states(), (std::vector<session_state>{session_state::suspended, session_state::reconnected}));
  EXPECT_EQ(std::get<0>(wait(c, s.async_exists("/huge", fut))), errc::no_node);
}

TEST(sim_cluster, a_write_in_flight_at_a_leader_crash_may_or_may_not_be_applied) {
  // Over seeds, both outcomes occur; the client always sees connection_loss.
  int applied = 0, lost = 0;
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    cluster c(test_options(seed));
    session s(c, sopts(c));
    session check(c, sopts(c));
    ASSERT_TRUE(connect(c, s));
    ASSERT_TRUE(connect(c, check));
    auto f = s.async_create("/maybe", "", {}, fut);
    // Crash the leader while the write is on its way (forwarded, proposed or committing).
    c.run_for(300us);
    c.kill_leader();
    auto [ec, p, st] = wait(c, std::move(f));
    if (!ec) continue;  // committed before the crash: an ordinary success
    EXPECT_EQ(ec, errc::connection_loss) << ec.message();
    c.run_for(3s);  // a new leader, and `check` reconnected
    ASSERT_TRUE(is_connected(check.state()));
    auto [ec2, st2] = wait(c, check.async_exists("/maybe", fut));
    if (!ec2) {
      ++applied;
    } else {
      EXPECT_EQ(ec2, errc::no_node);
      ++lost;
    }
  }
  EXPECT_GT(applied, 0);
  EXPECT_GT(lost, 0);
}

TEST(sim_cluster, without_quorum_nothing_is_served_and_sessions_survive_a_short_outage) {
  cluster c(test_options());
  session s(c, sopts(c, 4000ms));
  ASSERT_TRUE(connect(c, s));
  ASSERT_FALSE(std::get<0>(wait(c, s.async_create("/eph", "", {.mode = create_mode::ephemeral}, fut))));
  const auto id = s.session_id();
  const std::size_t lead = *c.leader();
  c.kill_server((lead + 1) % 3);
  c.kill_server((lead + 2) % 3);
  c.run_for(1s);
  EXPECT_FALSE(c.leader().has_value());
  EXPECT_EQ(s.state(), session_state::suspended);
  EXPECT_EQ(std::get<0>(wait(c, s.async_get("/eph", fut))), errc::connection_loss);
  c.restart_server((lead + 1) % 3);
  ASSERT_TRUE(c.run_until([&] { return is_connected(s.state()); }, 3s));
  EXPECT_EQ(s.session_id(), id);
  EXPECT_FALSE(std::get<0>(wait(c, s.async_exists("/eph", fut))));
}

TEST(sim_cluster, watches_are_re_registered_after_a_reconnect_and_changes_missed_meanwhile_fire) {
  cluster c(test_options());
  session w(c, sopts(c, 10000ms));
  session other(c, sopts(c));
  ASSERT_TRUE(connect(c, w));
  ASSERT_TRUE(connect(c, other));
  ASSERT_FALSE(std::get<0>(wait(c, other.async_create("/n", "0", {}, fut))));
  std::vector<watch_event> seen;
  auto [ec, d, st] = wait(c, w.async_get("/n", [&](std::error_code e, watch_event ev) {
    EXPECT_FALSE(e) << e.message();
    seen.push_back(ev);
  }, fut));
  ASSERT_FALSE(ec);
  c.isolate(endpoint::client(w.process()));
  ASSERT_FALSE(std::get<0>(wait(c, other.async_set("/n", "1", -1, fut))));
  // The read timeout suspends w well within its session timeout.
  ASSERT_TRUE(c.run_until([&] { return w.state() == session_state::suspended; }, 10s));
  EXPECT_TRUE(seen.empty());
  c.heal();
  ASSERT_TRUE(c.run_until([&] { return is_connected(w.state()); }, 5s));
  c.run_for(100ms);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], (watch_event{event_type::data_changed, "/n"}));
}

/// A fixed workload with faults; returns the trace hash.
std::uint64_t workload_hash(std::uint64_t seed, std::size_t* events = nullptr) {
  cluster_options o = test_options(seed);
  o.trace.hash_only = true;
  cluster c(o);
  std::vector<std::unique_ptr<session>> ss;
  for (int i = 0; i < 4; ++i) ss.push_back(std::make_unique<session>(c, sopts(c)));
  c.at(2s, "kill leader", [](cluster& cl) { cl.kill_leader(); });
  c.at(4s, "partition c1", [p = ss[1]->process()](cluster& cl) { cl.isolate(endpoint::client(p)); });
  c.at(12s, "heal", [](cluster& cl) { cl.heal(); });
  c.at(13s, "restart", [](cluster& cl) {
    for (std::size_t i = 0; i < cl.size(); ++i) cl.restart_server(i);
  });
  int done = 0;
  for (int i = 0; i < 4; ++i) {
    auto* s = ss[static_cast<std::size_t>(i)].get();
    const std::string p = "/n" + std::to_string(i);
    s->async_create(p, "", {.mode = create_mode::ephemeral}, [](std::error_code, std::string, zkr::stat) {});
    for (int k = 0; k < 50; ++k) {
      s->async_set(p, std::to_string(k), -1, [&done](std::error_code, zkr::stat) { ++done; });
    }
  }
  c.run_for(20s);
  for (auto& s : ss) s->async_close([](std::error_code) {});
  c.run_for(1s);
  if (events) *events = c.get_trace().events();
  EXPECT_EQ(done, 200);
  return c.get_trace().hash();
}

TEST(sim_cluster, the_same_seed_gives_the_same_trace_and_another_seed_another) {
  std::size_t n1 = 0, n2 = 0;
  const auto h1 = workload_hash(42, &n1);
  const auto h2 = workload_hash(42, &n2);
  EXPECT_EQ(h1, h2);
  EXPECT_EQ(n1, n2);
  EXPECT_GT(n1, 100u);
  EXPECT_NE(workload_hash(43), h1);
}

TEST(sim_cluster, the_trace_is_the_same_in_every_build) {
  // The release and the sanitizer builds (and any other) must replay a seed identically.
  // A deliberate model change alters the trace: then update the constant (the failure
  // message shows the new value) and say so in the commit.
  constexpr std::uint64_t golden = 0x514eeac2928073be;
  const auto h = workload_hash(42);
  EXPECT_EQ(h, golden) << "trace hash 0x" << std::hex << h;
}

TEST(sim_cluster, a_sessions_pipelined_writes_through_a_follower_apply_in_order) {
  // FIFO per session: writes forwarded by a follower reach the leader in the order sent,
  // and the replies come back in that order with growing versions.
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    cluster c(test_options(seed));
    const std::size_t follower = (*c.leader() + 1) % 3;
    session_options o = sopts(c);
    o.connect_string = "s" + std::to_string(follower) + ":2181";
    session s(c, o);
    ASSERT_TRUE(connect(c, s));
    ASSERT_FALSE(std::get<0>(wait(c, s.async_create("/n", "", {}, fut))));
    std::vector<std::int32_t> versions;
    for (int k = 0; k < 300; ++k) {
      s.async_set("/n", std::to_string(k), -1, [&](std::error_code ec, zkr::stat st) {
        EXPECT_FALSE(ec);
        versions.push_back(st.version);
      });
    }
    ASSERT_TRUE(c.run_until([&] { return versions.size() == 300; }, 30s));
    for (std::size_t k = 0; k < versions.size(); ++k) EXPECT_EQ(versions[k], static_cast<std::int32_t>(k + 1));
    EXPECT_EQ(std::get<1>(wait(c, s.async_get("/n", fut))), "299");
  }
}

TEST(sim_cluster, a_server_down_while_the_log_is_compacted_catches_up_from_a_snapshot) {
  cluster c(test_options());
  session s(c, sopts(c));
  ASSERT_TRUE(connect(c, s));
  const std::size_t down = (*c.leader() + 1) % 3;
  c.kill_server(down);
  ASSERT_FALSE(std::get<0>(wait(c, s.async_create("/n", "", {}, fut))));
  int acked = 0;
  for (int k = 0; k < 6000; ++k) {
    s.async_set("/n", std::to_string(k), -1, [&](std::error_code ec, zkr::stat) { acked += ec ? 0 : 1; });
  }
  ASSERT_TRUE(c.run_until([&] { return acked == 6000; }, 60s));
  c.restart_server(down);
  ASSERT_TRUE(c.run_until([&] { return c.serving(down); }, 5s));
  EXPECT_EQ(c.last_zxid(down), c.last_zxid(*c.leader()));
  const auto* n = c.tree(down).find("/n");
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->data, "5999");
  EXPECT_EQ(n->version, 6000);
  EXPECT_EQ(c.tree(down).watch_count(), 0u);
}

TEST(sim_cluster, a_fault_schedule_drawn_from_the_seed_replays_and_keeps_the_ensemble_consistent) {
  const auto run = [](std::uint64_t seed) {
    cluster_options o = test_options(seed);
    o.trace.hash_only = true;
    cluster c(o);
    std::vector<std::unique_ptr<session>> ss;
    std::vector<process_id> procs;
    for (int i = 0; i < 3; ++i) {
      ss.push_back(std::make_unique<session>(c, sopts(c)));
      procs.push_back(ss.back()->process());
    }
    cluster::fault_plan plan;
    plan.count = 12;
    plan.span = 30s;
    plan.max_length = 6s;
    auto lines = c.schedule_random_faults(plan, procs);
    int acked = 0;
    for (int k = 0; k < 100; ++k) {
      c.at(std::chrono::milliseconds(300 * k), "write", [&, k](cluster&) {
        ss[static_cast<std::size_t>(k) % 3]->async_create("/w" + std::to_string(k), "", {},
                                                          [&](std::error_code ec, std::string, zkr::stat) {
                                                            if (!ec) ++acked;
                                                          });
      });
    }
    c.run_for(60s);
    // Every live server that serves holds the same tree once quiet (replicas converge).
    const auto lead = c.leader();
    EXPECT_TRUE(lead.has_value());
    if (lead) {
      for (std::size_t i = 0; i < c.size(); ++i) {
        if (c.serving(i)) {
          EXPECT_EQ(c.last_zxid(i), c.last_zxid(*lead)) << "server " << i;
        }
      }
      // Every acknowledged create is there.
      std::size_t present = 0;
      for (int k = 0; k < 100; ++k) present += c.tree(*lead).find("/w" + std::to_string(k)) ? 1 : 0;
      EXPECT_GE(present, static_cast<std::size_t>(acked));
    }
    for (auto& s : ss) s->async_close([](std::error_code) {});
    c.run_for(1s);
    return std::make_pair(lines, c.get_trace().hash());
  };
  const auto a = run(7);
  const auto b = run(7);
  EXPECT_EQ(a.first, b.first);
  EXPECT_EQ(a.second, b.second);
  EXPECT_EQ(a.first.size(), 12u);
  EXPECT_NE(run(8).first, a.first);
}

TEST(sim_cluster, healing_one_cut_leaves_an_overlapping_cut_in_place) {
  cluster c(test_options());
  session a(c, sopts(c));
  const auto client = endpoint::client(a.process());
  const auto s0 = endpoint::server(0);
  const auto whole = c.isolate(client);        // a from everyone
  const auto one = c.partition({client}, {s0});  // and, overlapping, a from s0 alone
  EXPECT_FALSE(c.reachable(client, s0));
  c.heal(whole);
  EXPECT_FALSE(c.reachable(client, s0)) << "the other cut still holds this link";
  EXPECT_TRUE(c.reachable(client, endpoint::server(1)));
  c.heal(whole);  // twice: ignored
  EXPECT_FALSE(c.reachable(client, s0));
  c.heal(one);
  EXPECT_TRUE(c.reachable(client, s0));
  const auto again = c.isolate(client);
  c.heal();  // all
  EXPECT_TRUE(c.reachable(client, s0));
  c.heal(again);  // already healed by heal(): ignored
  EXPECT_TRUE(c.reachable(client, s0));
}

}  // namespace
}  // namespace zkr::sim
