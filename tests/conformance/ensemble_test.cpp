// Goal: what a 3-server ensemble adds to the contract, alike on real ZooKeeper and on the
// simulator: a follower may serve stale reads to a session that did not write, `sync` makes
// it current, a session always reads its own writes, and a watch set on a follower fires for
// a write made through the leader, before the read that shows the change.
// Method: the typed fixture (fixture.hpp) over a 3-node ensemble (real: one shared by this
// program, tickTime 200 ms; simulator: 3 servers); sessions are pinned to one server by a
// connect string naming only that server. Whether a follower lags is up to the real ensemble,
// so a read without sync is asserted as {old, new} there; the simulator is told to let the
// follower lag (set_lag) and must then serve exactly the old value.
#include <string>

#include "fixture.hpp"

namespace zkr::conformance {
namespace {

template <class B>
class ensemble : public fixture<B, topology::shared_ensemble> {
 protected:
  /// A leader and one of its followers, as server indices.
  std::pair<int, int> leader_and_follower() {
    int leader = -1;
    EXPECT_TRUE(this->eventually([&] { return (leader = this->b_.leader()) >= 0; }, 30s)) << "no leader";
    return {leader, (leader + 1) % 3};
  }
};
TYPED_TEST_SUITE(ensemble, backends, backend_names);

TYPED_TEST(ensemble, sync_makes_a_lagging_follower_current) {
  auto& t = *this;
  const auto [leader, follower] = t.leader_and_follower();
  ASSERT_GE(leader, 0);
  auto& writer = t.open({.server = leader});
  auto& reader = t.open({.server = follower});
  const auto p = t.path("v");
  ASSERT_FALSE(t.err(writer.async_create(p, "0", {}, tok)));
  ASSERT_FALSE(t.err(reader.async_sync(p, tok)));
  auto [ec0, d0, st0] = t.await(reader.async_get(p, tok));
  ASSERT_FALSE(ec0) << ec0.message();
  ASSERT_EQ(d0, "0");

  t.b_.lag_follower(follower, 1000ms);
  auto [ec1, st1] = t.await(writer.async_set(p, "1", -1, tok));
  ASSERT_FALSE(ec1) << ec1.message();
  auto [ec2, d2, st2] = t.await(reader.async_get(p, tok));
  ASSERT_FALSE(ec2) << ec2.message();
  if constexpr (TestFixture::simulated) {
    EXPECT_EQ(d2, "0") << "the lagging follower has not applied the set yet";
    EXPECT_EQ(st2, st0);
  } else {
    EXPECT_TRUE(d2 == "0" || d2 == "1") << d2;
  }
  ASSERT_FALSE(t.err(reader.async_sync(p, tok)));
  auto [ec3, d3, st3] = t.await(reader.async_get(p, tok));
  ASSERT_FALSE(ec3) << ec3.message();
  EXPECT_EQ(d3, "1") << "after sync the follower has every write committed before it";
  EXPECT_EQ(st3, st1);
}

TYPED_TEST(ensemble, a_session_reads_its_own_writes_on_a_lagging_follower) {
  auto& t = *this;
  const auto [leader, follower] = t.leader_and_follower();
  ASSERT_GE(leader, 0);
  auto& s = t.open({.server = follower});
  t.b_.lag_follower(follower, 1000ms);
  const auto p = t.path("mine");
  auto [ec, created, st] = t.await(s.async_create(p, "a", {}, tok));
  ASSERT_FALSE(ec) << ec.message();
  auto [ec1, st1] = t.await(s.async_set(p, "b", 0, tok));
  ASSERT_FALSE(ec1) << ec1.message();
  auto [ec2, data, st2] = t.await(s.async_get(p, tok));
  ASSERT_FALSE(ec2) << "a read waits for the session's own writes: " << ec2.message();
  EXPECT_EQ(data, "b");
  EXPECT_EQ(st2, st1);
  // Pipelined: a read issued right after a write, without waiting, sees it too.
  auto set = s.async_set(p, "c", 1, tok);
  auto get = s.async_get(p, tok);
  ASSERT_FALSE(t.err(std::move(set)));
  auto [ec3, data3, st3] = t.await(std::move(get));
  ASSERT_FALSE(ec3);
  EXPECT_EQ(data3, "c");
  EXPECT_EQ(st3.version, 2);
}

TYPED_TEST(ensemble, a_watch_on_a_follower_fires_before_the_read_that_shows_the_change) {
  auto& t = *this;
  const auto [leader, follower] = t.leader_and_follower();
  ASSERT_GE(leader, 0);
  auto& writer = t.open({.server = leader});
  auto& reader = t.open({.server = follower});
  const auto p = t.path("w");
  ASSERT_FALSE(t.err(writer.async_create(p, "0", {}, tok)));
  ASSERT_FALSE(t.err(reader.async_sync(p, tok)));
  auto& log = t.new_watch_log();
  ASSERT_FALSE(t.err(reader.async_get(p, log.handler(1), tok)));
  t.b_.lag_follower(follower, 300ms);
  ASSERT_FALSE(t.err(writer.async_set(p, "1", -1, tok)));
  ASSERT_FALSE(t.err(reader.async_sync(p, tok)));
  // The sync's reply comes after the follower applied the set, so after its event.
  EXPECT_EQ(log.size(), 1u) << "the watch event must arrive before the sync's completion";
  auto [ec, data, st] = t.await(reader.async_get(p, tok));
  ASSERT_FALSE(ec);
  EXPECT_EQ(data, "1");
  ASSERT_EQ(log.size(), 1u);
  EXPECT_FALSE(log.items()[0].ec);
  EXPECT_EQ(log.items()[0].event, (watch_event{event_type::data_changed, p}));
}

TYPED_TEST(ensemble, sessions_on_different_servers_agree_on_every_stat) {
  auto& t = *this;
  std::vector<typename TestFixture::session*> on;
  for (int i = 0; i < 3; ++i) on.push_back(&t.open({.server = i}));
  const auto p = t.path("n");
  auto [ec, created, st] = t.await(on[0]->async_create(p, "x", {}, tok));
  ASSERT_FALSE(ec);
  ASSERT_FALSE(t.err(on[1]->async_create(p + "/c", "", {}, tok)));
  auto [ec2, st2] = t.await(on[2]->async_set(p, "y", 0, tok));
  ASSERT_FALSE(ec2);
  for (int i = 0; i < 3; ++i) {
    ASSERT_FALSE(t.err(on[i]->async_sync(p, tok)));
    auto [e, data, s] = t.await(on[i]->async_get(p, tok));
    ASSERT_FALSE(e);
    EXPECT_EQ(data, "y") << "server " << i;
    EXPECT_EQ(s, st2) << "server " << i;
    EXPECT_EQ(s.num_children, 1);
    EXPECT_EQ(s.czxid, st.czxid);
  }
}

}  // namespace
}  // namespace zkr::conformance
