// Goal: a client of a 3-node ensemble keeps its session and keeps being served when the
// leader is killed, and when the server it is connected to dies.
// Method: a fresh 3-node ensemble per test (zk_cluster), a writer that retries on
// connection loss with a deadline, and the session-state log to prove the session survived.
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include <zkr/zookeeper/session.hpp>

#include "support/runner.hpp"
#include "support/zk_server.hpp"

namespace zkr::test {
namespace {

using clock = std::chrono::steady_clock;

/// Retries `start()` (which returns a future of a tuple whose first element is an
/// error_code) while it fails with connection loss or session moved, up to `limit`.
template <class Start>
auto retry_until_served(Start start, std::chrono::milliseconds limit = 30s) {
  const auto deadline = clock::now() + limit;
  for (;;) {
    auto r = await(start());
    const auto ec = std::get<0>(r);
    if (!(ec == errc::connection_loss || ec == errc::session_moved) || clock::now() > deadline) return r;
    std::this_thread::sleep_for(100ms);
  }
}

class ensemble_test : public ::testing::Test {
 protected:
  void SetUp() override { zkr::zookeeper::set_log_level(zkr::zookeeper::log_level::error); }
  io_thread io_;
};

TEST_F(ensemble_test, killing_the_leader_keeps_the_session_and_service) {
  auto cluster = zk_cluster::start(3, "leader-kill");
  zkr::zookeeper::session s(io_.executor(), {.connect_string = cluster.connect_string(), .session_timeout = 10s});
  recorder<session_event> states;
  auto sub = s.subscribe([&](const session_event& e) { states.push(e); });
  ASSERT_FALSE(std::get<0>(await(s.async_wait_connected(tok))));
  const auto id = s.session_id();
  ASSERT_FALSE(std::get<0>(await(s.async_create("/counter", "0", {}, tok))));
  ASSERT_FALSE(std::get<0>(await(s.async_create("/eph", "", {.mode = create_mode::ephemeral}, tok))));

  const int leader = cluster.leader();
  ASSERT_GE(leader, 0);
  cluster.kill(leader);

  // Writes go on: each one succeeds after at most a retry window covering the election.
  const auto t0 = clock::now();
  for (int i = 1; i <= 20; ++i) {
    auto [ec, st] = retry_until_served([&] { return s.async_set("/counter", std::to_string(i), -1, tok); });
    ASSERT_FALSE(ec) << "write " << i << ": " << ec.message();
  }
  const auto served_after = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - t0);
  std::cout << "20 writes done " << served_after.count() << " ms after the leader was killed\n";
  auto [ec, data, st] = await(s.async_get("/counter", tok));
  ASSERT_FALSE(ec);
  EXPECT_EQ(data, "20");
  EXPECT_EQ(st.version, 20);

  // Same session, same generation; its ephemeral node is still there.
  EXPECT_EQ(s.session_id(), id);
  EXPECT_EQ(s.generation(), 1u);
  for (const auto& e : states.items()) EXPECT_NE(e.state, session_state::lost);
  EXPECT_FALSE(std::get<0>(await(s.async_exists("/eph", tok))));
  EXPECT_GE(cluster.leader(), 0) << "the two survivors elect a new leader";
  EXPECT_NE(cluster.leader(), leader);
  (void)await(s.async_close(tok));
}

TEST_F(ensemble_test, the_clients_own_server_dying_moves_it_to_another) {
  auto cluster = zk_cluster::start(3, "own-server");
  // Connect to server 0 only first, so we know which server the session is on...
  zkr::zookeeper::session s(io_.executor(), {.connect_string = cluster.connect_string(), .session_timeout = 10s});
  recorder<session_event> states;
  auto sub = s.subscribe([&](const session_event& e) { states.push(e); });
  ASSERT_FALSE(std::get<0>(await(s.async_wait_connected(tok))));
  ASSERT_FALSE(std::get<0>(await(s.async_create("/x", "", {}, tok))));
  // ...it may be any of the three: kill them one at a time except the last, each time
  // waiting for service again. A majority (2) must stay up, so kill one and restart it.
  for (int victim = 0; victim < 3; ++victim) {
    cluster.kill(victim);
    auto [ec, st] = retry_until_served([&] { return s.async_set("/x", std::to_string(victim), -1, tok); });
    ASSERT_FALSE(ec) << "with server " << victim << " down: " << ec.message();
    cluster.restart(victim);
  }
  EXPECT_EQ(s.generation(), 1u);
  for (const auto& e : states.items()) EXPECT_NE(e.state, session_state::lost);
  (void)await(s.async_close(tok));
}

}  // namespace
}  // namespace zkr::test
