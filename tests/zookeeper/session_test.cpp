// Goal: the session-state contract against a real server: a brief disconnect keeps the
// session and its ephemeral nodes (suspended -> reconnected); a session expired by the server
// is reported as lost and replaced by a new generation; a session that hears no server for
// its negotiated timeout presumes itself lost without waiting for the server.
// Method: tests that stop servers start their own (zk_cluster); expiry is forced for real
// by attaching a second handle to the same session and closing it (Curator's KillSession).
#include <chrono>
#include <thread>

#include "fixture.hpp"

#include <zookeeper/zookeeper.h>

namespace zkr::test {
namespace {

using clock = std::chrono::steady_clock;

/// Records the session events of one session.
struct state_log : recorder<session_event> {
  bool wait_for_state(session_state s, std::chrono::milliseconds limit = 30s) {
    const auto deadline = clock::now() + limit;
    for (std::size_t n = 1; clock::now() < deadline; ++n) {
      if (!wait_for(n, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()))) return false;
      if (items()[n - 1].state == s) return true;
    }
    return false;
  }
  std::vector<session_state> states() const {
    std::vector<session_state> out;
    for (const auto& e : items()) out.push_back(e.state);
    return out;
  }
};

class zk_session_test : public zk_test {};

TEST_F(zk_session_test, brief_disconnect_keeps_the_session_and_its_ephemeral_nodes) {
  auto cluster = zk_cluster::start(1, "disconnect");
  auto& s = open({.connect_string = cluster.connect_string(), .session_timeout = 20s});
  state_log log;
  auto sub = s.subscribe([&](const session_event& e) { log.push(e); });
  const auto id = s.session_id();
  ASSERT_NE(id, 0);
  ASSERT_FALSE(std::get<0>(await(s.async_create("/eph", "", {.mode = create_mode::ephemeral}, tok))));

  cluster.stop(0);
  ASSERT_TRUE(log.wait_for_state(session_state::suspended)) << "no suspended after the server stopped";
  // A request while no server is reachable fails with connection loss (outcome unknown).
  auto [ec, data, st] = await(s.async_get("/eph", tok));
  EXPECT_EQ(ec, errc::connection_loss) << ec.message();

  cluster.restart(0);
  ASSERT_TRUE(log.wait_for_state(session_state::reconnected)) << "no reconnect after restart";
  EXPECT_EQ(s.session_id(), id);
  EXPECT_EQ(s.generation(), 1u);
  auto [ec2, st2] = await(s.async_exists("/eph", tok));
  EXPECT_FALSE(ec2) << "an ephemeral node must survive a brief disconnect: " << ec2.message();
  EXPECT_EQ(st2.ephemeral_owner, id);
  EXPECT_EQ(log.states(), (std::vector<session_state>{session_state::suspended, session_state::reconnected}));
}

/// Attaches a raw C-client handle to `s`'s session and closes it, which makes the server
/// close (expire) the session. Returns false if the second handle never connected.
bool kill_session(const std::string& connect, const zkr::zookeeper::session& s) {
  clientid_t id{};
  id.client_id = s.session_id();
  const auto pw = s.session_password();
  std::memcpy(id.passwd, pw.data(), std::min(pw.size(), sizeof(id.passwd)));
  zhandle_t* zh = zookeeper_init(connect.c_str(), nullptr, 10000, &id, nullptr, 0);
  if (zh == nullptr) return false;
  const bool connected = eventually([&] { return zoo_state(zh) == ZOO_CONNECTED_STATE; }, 10s);
  zookeeper_close(zh);  // sends closeSession: the server expires the session now
  return connected;
}

TEST_F(zk_session_test, server_side_expiry_is_lost_then_a_new_generation) {
  auto& s = open({.session_timeout = 6s});
  state_log log;
  auto sub = s.subscribe([&](const session_event& e) { log.push(e); });
  watch_log watches;
  const auto eph = path("eph");
  ASSERT_FALSE(std::get<0>(await(s.async_create(eph, "", {.mode = create_mode::ephemeral}, tok))));
  ASSERT_FALSE(std::get<0>(await(s.async_get(root_, watches.handler(1), tok))));
  const auto old_id = s.session_id();

  bool lost = false;
  for (int attempt = 0; attempt < 5 && !lost; ++attempt) {
    ASSERT_TRUE(kill_session(connect_, s));
    lost = log.wait_for_state(session_state::lost, 15s);
  }
  ASSERT_TRUE(lost) << "the session never learned of its expiry";
  ASSERT_TRUE(log.wait_for_state(session_state::connected)) << "no new session after expiry";
  const auto events = log.items();
  const auto lost_it = std::find_if(events.begin(), events.end(), [](auto& e) { return e.state == session_state::lost; });
  EXPECT_EQ(lost_it->reason, errc::session_expired) << lost_it->reason.message();
  EXPECT_EQ(lost_it->generation, 1u);
  EXPECT_EQ(events.back().generation, 2u);
  EXPECT_EQ(s.generation(), 2u);
  EXPECT_NE(s.session_id(), old_id);

  // The watch of the dead session completed exactly once, with the session's end.
  ASSERT_TRUE(watches.wait_for(1));
  EXPECT_EQ(watches.items()[0].ec, errc::session_expired) << watches.items()[0].ec.message();
  // Its ephemeral node is gone; the new session works.
  EXPECT_EQ(std::get<0>(await(s.async_exists(eph, tok))), errc::no_node);
  EXPECT_FALSE(std::get<0>(await(s.async_create(eph, "", {.mode = create_mode::ephemeral}, tok))));
}

TEST_F(zk_session_test, silence_for_the_negotiated_timeout_is_presumed_lost) {
  auto cluster = zk_cluster::start(1, "presumed");
  auto& s = open({.connect_string = cluster.connect_string(), .session_timeout = 2s});
  ASSERT_FALSE(std::get<0>(await(s.async_add_auth("digest", "app:pw", tok))));
  ASSERT_FALSE(std::get<0>(await(s.async_create("/secret", "s", {.acl = creator_all_acl()}, tok))));
  state_log log;
  auto sub = s.subscribe([&](const session_event& e) { log.push(e); });
  watch_log watches;
  ASSERT_FALSE(std::get<0>(await(s.async_exists("/secret", watches.handler(7), tok))));
  const auto timeout = s.negotiated_timeout();
  ASSERT_EQ(timeout, 2s);

  cluster.kill(0);
  ASSERT_TRUE(log.wait_for_state(session_state::suspended));
  const auto suspended_at = clock::now();
  ASSERT_TRUE(log.wait_for_state(session_state::lost, 10s)) << "no lost while the server is down";
  const auto waited = clock::now() - suspended_at;
  EXPECT_GE(waited, timeout - 100ms);
  EXPECT_LE(waited, timeout + 2s);
  const auto lost = log.items().back();
  EXPECT_EQ(lost.reason, errc::session_lost) << lost.reason.message();
  ASSERT_TRUE(watches.wait_for(1));
  EXPECT_EQ(watches.items()[0].ec, errc::session_lost);

  // When a server is back, a new session opens by itself, with the credentials re-added.
  cluster.restart(0);
  ASSERT_TRUE(log.wait_for_state(session_state::connected));
  EXPECT_EQ(s.generation(), 2u);
  auto [ec, data, st] = await(s.async_get("/secret", tok));
  EXPECT_FALSE(ec) << "auth must be re-added to the new session: " << ec.message();
  EXPECT_EQ(data, "s");
}

TEST_F(zk_session_test, without_reopen_a_lost_session_stays_lost) {
  auto cluster = zk_cluster::start(1, "noreopen");
  auto& s = open({.connect_string = cluster.connect_string(), .session_timeout = 2s, .reopen_on_expiry = false});
  state_log log;
  auto sub = s.subscribe([&](const session_event& e) { log.push(e); });
  cluster.kill(0);
  ASSERT_TRUE(log.wait_for_state(session_state::lost, 15s));
  cluster.restart(0);
  std::this_thread::sleep_for(1s);  // give a (wrong) reopen or resurrection the chance to show up
  EXPECT_EQ(s.state(), session_state::lost);
  EXPECT_EQ(s.generation(), 1u);
  EXPECT_EQ(log.states(), (std::vector<session_state>{session_state::suspended, session_state::lost}));
  EXPECT_EQ(std::get<0>(await(s.async_get("/", tok))), errc::session_expired);
}

}  // namespace
}  // namespace zkr::test
