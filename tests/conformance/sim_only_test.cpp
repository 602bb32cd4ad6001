// Goal: the cases of the contract that only the simulator can stage, each with the reason it
// cannot run against a real server: outcomes that a real network decides by timing, which
// the simulator decides exactly. Their real-server twins, where there are any, are the typed
// cases with the set of outcomes allowed there (session_test.cpp, ensemble_test.cpp).
// Method: the same fixture as the typed cases, on the simulator only (fixture<sim_backend>),
// with the cluster's faults called between two runs of the cluster.
#include "fixture.hpp"

#if ZKR_CONFORMANCE_SIM

namespace zkr::conformance {
namespace {

class sim_only : public fixture<sim_backend> {};
class sim_only_ensemble : public fixture<sim_backend, topology::shared_ensemble> {};

// Real-server impossible: a real client's TCP connection cannot be cut after the ensemble
// has committed a request and before the reply leaves its server. Here the session is on a
// follower that applies commits late (set_lag); once the leader has applied the create, the
// client is cut off, so the follower's reply is lost: the client sees connection_loss
// although the write was applied, which is exactly why connection_loss means "unknown".
TEST_F(sim_only_ensemble, a_write_whose_reply_is_lost_is_connection_loss_yet_applied) {
  const int leader = b_.leader();
  ASSERT_GE(leader, 0);
  const int follower = (leader + 1) % 3;
  auto& s = open({.server = follower});
  state_log states;
  auto sub = s.subscribe([&](const session_event& e) { states.push(e); });
  const auto id = s.session_id();
  const auto p = path("applied");
  b_.lag_follower(follower, 500ms);
  auto f = s.async_create(p, "x", {}, tok);
  auto& c = b_.cluster();
  ASSERT_TRUE(c.run_until([&] { return c.tree(static_cast<std::size_t>(leader)).find(p) != nullptr; }, 5s))
      << "the leader never applied the create";
  ASSERT_EQ(f.wait_for(0s), std::future_status::timeout) << "the reply came before the follower applied it";
  c.isolate(zkr::sim::endpoint::client(s.process()));
  auto [ec, created, st] = await(std::move(f));
  EXPECT_EQ(ec, errc::connection_loss) << ec.message();
  ASSERT_TRUE(wait_state(states, session_state::suspended));
  c.heal();
  ASSERT_TRUE(wait_state(states, session_state::reconnected));
  EXPECT_EQ(states.states(), (std::vector<session_state>{session_state::suspended, session_state::reconnected}));
  EXPECT_EQ(s.session_id(), id);
  auto [ec2, data, st2] = await(s.async_get(p, tok));
  EXPECT_FALSE(ec2) << "connection_loss, yet the node is there: " << ec2.message();
  EXPECT_EQ(data, "x");
  // Retrying blindly fails: that is what recipes must handle.
  EXPECT_EQ(err(s.async_create(p, "x", {}, tok)), errc::node_exists);
}

// Real-server impossible: the moment a real server expires a session is up to its clock and
// its session tracker; the simulator's leader expires it exactly when told. An observer's
// watch on the ephemeral node fires before the owner, cut off from the ensemble, even knows.
TEST_F(sim_only, an_isolated_owners_ephemeral_node_goes_at_expiry_before_it_notices) {
  auto& observer = first();
  auto& owner = open({.session_timeout = 4000ms});
  ASSERT_FALSE(err(owner.async_create(path("eph"), "", {.mode = create_mode::ephemeral}, tok)));
  auto& log = new_watch_log();
  ASSERT_FALSE(err(observer.async_exists(path("eph"), log.handler(1), tok)));
  state_log states;
  auto sub = owner.subscribe([&](const session_event& e) { states.push(e); });
  b_.cluster().isolate(zkr::sim::endpoint::client(owner.process()));
  ASSERT_TRUE(b_.expire(owner));
  ASSERT_TRUE(wait_watches(log, 1, 1s));
  EXPECT_EQ(log.items()[0].event, (watch_event{event_type::deleted, path("eph")}));
  EXPECT_EQ(owner.state(), session_state::connected) << "the owner cannot know yet";
  EXPECT_TRUE(states.items().empty());
  // It learns at its read timeout (suspended), then at most the negotiated timeout later it
  // presumes the session lost (the server cannot tell it: it is cut off).
  ASSERT_TRUE(wait_state(states, session_state::lost, 10s));
  EXPECT_EQ(states.items().back().reason, errc::session_lost);
  b_.cluster().heal();
  ASSERT_TRUE(eventually([&] { return states.items().back().state == session_state::connected; }));
  EXPECT_EQ(states.states(),
            (std::vector<session_state>{session_state::suspended, session_state::lost, session_state::connected}));
}

}  // namespace
}  // namespace zkr::conformance

#endif
