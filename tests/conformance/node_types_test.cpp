// Goal: the node types whose life the server ends, alike on real ZooKeeper and on the
// simulator: containers (deleted once their last child goes), TTL nodes (deleted once
// unmodified for their TTL and childless), ephemeral nodes (deleted with their session; no
// children), plus the backend's limit on TTL creates in a multi.
// Method: the typed fixture (fixture.hpp). Both sides run the container/TTL reaper every
// 100 ms (real: -Dznode.container.checkIntervalMs=100, extendedTypesEnabled=true; simulator:
// container_check_interval). Deletions are awaited by polling exists every 100 ms up to a
// deadline, or by an exists-watch; "still there" is checked over a window of several reaper
// runs or session heartbeats. Time is the session's steady time (virtual in the simulator),
// where the simulator's bounds are exact and the real server's are loose.
#include <chrono>
#include <string>

#include "fixture.hpp"

namespace zkr::conformance {
namespace {

template <class B>
class node_types : public fixture<B> {};
TYPED_TEST_SUITE(node_types, backends, backend_names);

TYPED_TEST(node_types, container_is_deleted_after_its_last_child_is_removed) {
  auto& t = *this;
  auto& s = t.first();
  const auto c = t.path("container");
  auto [ec, created, st] = t.await(s.async_create(c, "", {.mode = create_mode::container}, tok));
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(created, c);
  EXPECT_EQ(st.ephemeral_owner, 0) << "the server stores a container marker there but reports 0";
  ASSERT_FALSE(t.err(s.async_create(c + "/a", "", {}, tok)));
  ASSERT_FALSE(t.err(s.async_create(c + "/b", "", {}, tok)));
  ASSERT_FALSE(t.err(s.async_remove(c + "/a", -1, tok)));
  EXPECT_TRUE(t.stays_for(s, c, 1s)) << "a container that still has a child was deleted";

  auto& log = t.new_watch_log();
  ASSERT_FALSE(t.err(s.async_exists(c, log.handler(1), tok)));
  ASSERT_FALSE(t.err(s.async_remove(c + "/b", -1, tok)));
  EXPECT_TRUE(t.gone_within(s, c)) << "the empty container was not deleted within 10 s";
  ASSERT_TRUE(t.wait_watches(log, 1));
  EXPECT_FALSE(log.items()[0].ec);
  EXPECT_EQ(log.items()[0].event, (watch_event{event_type::deleted, c}));
}

TYPED_TEST(node_types, container_that_never_had_a_child_is_kept) {
  // The reaper deletes only containers whose cversion > 0 (maxNeverUsedIntervalMs=0).
  auto& t = *this;
  auto& s = t.first();
  const auto c = t.path("unused");
  ASSERT_FALSE(t.err(s.async_create(c, "", {.mode = create_mode::container}, tok)));
  EXPECT_TRUE(t.stays_for(s, c, 1s));
}

TYPED_TEST(node_types, container_emptied_by_an_ephemeral_childs_session_ending_is_deleted) {
  auto& t = *this;
  auto& s = t.first();
  auto& owner = t.open();
  const auto c = t.path("members");
  ASSERT_FALSE(t.err(s.async_create(c, "", {.mode = create_mode::container}, tok)));
  ASSERT_FALSE(t.err(owner.async_create(c + "/m-", "", {.mode = create_mode::ephemeral_sequential}, tok)));
  EXPECT_TRUE(t.stays_for(s, c, 500ms));
  ASSERT_FALSE(t.err(owner.async_close(tok)));
  EXPECT_TRUE(t.gone_within(s, c));
}

TYPED_TEST(node_types, ttl_node_is_deleted_after_its_ttl) {
  auto& t = *this;
  auto& s = t.first();
  const auto p = t.path("ttl");
  const auto ttl = 500ms;
  const auto start = t.now();
  auto [ec, created, st] = t.await(s.async_create(p, "t", {.mode = create_mode::persistent_with_ttl, .ttl = ttl}, tok));
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(created, p);
  // The server keeps the TTL in the node's persisted ephemeralOwner (tagged 0xFF in the top
  // byte) but reports 0 to clients, as for containers: no owner, nothing to read the TTL from.
  EXPECT_EQ(st.ephemeral_owner, 0);
  EXPECT_TRUE(t.gone_within(s, p)) << "the TTL node was not deleted within 10 s";
  // Deleted only once unmodified for longer than the TTL (measured from before the create,
  // so the bound holds whatever the reaper's phase; 10 ms for the server's ms clock).
  const auto took = t.now() - start;
  EXPECT_GE(took, ttl - 10ms);
  if constexpr (TestFixture::simulated) {
    // The reaper's next run after the TTL, plus the 100 ms polling of gone_within.
    EXPECT_LE(took, ttl + 250ms);
  }
}

TYPED_TEST(node_types, ttl_counts_from_the_last_modification) {
  auto& t = *this;
  auto& s = t.first();
  const auto p = t.path("touched");
  ASSERT_FALSE(t.err(s.async_create(p, "", {.mode = create_mode::persistent_with_ttl, .ttl = 1000ms}, tok)));
  t.advance(600ms);
  ASSERT_FALSE(t.err(s.async_set(p, "again", -1, tok)));
  // 1100 ms after the create, 500 ms after the set: still there.
  EXPECT_TRUE(t.stays_for(s, p, 500ms)) << "a set must restart the TTL";
  EXPECT_TRUE(t.gone_within(s, p));
}

TYPED_TEST(node_types, ttl_node_with_a_child_is_kept_until_the_child_goes) {
  auto& t = *this;
  auto& s = t.first();
  const auto p = t.path("ttl-parent");
  ASSERT_FALSE(t.err(s.async_create(p, "", {.mode = create_mode::persistent_with_ttl, .ttl = 200ms}, tok)));
  ASSERT_FALSE(t.err(s.async_create(p + "/child", "", {}, tok)));
  EXPECT_TRUE(t.stays_for(s, p, 1s)) << "a TTL node with a child was deleted";
  ASSERT_FALSE(t.err(s.async_remove(p + "/child", -1, tok)));
  EXPECT_TRUE(t.gone_within(s, p));
}

TYPED_TEST(node_types, sequential_ttl_node_gets_a_sequence_suffix) {
  auto& t = *this;
  auto& s = t.first();
  ASSERT_FALSE(t.err(s.async_create(t.path("other"), "", {}, tok)));  // cversion 1
  auto [ec, created, st] = t.await(
      s.async_create(t.path("seq-"), "", {.mode = create_mode::persistent_sequential_with_ttl, .ttl = 60s}, tok));
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(created, t.path("seq-0000000001"));
  EXPECT_EQ(st.ephemeral_owner, 0);
  auto [ec2, st2] = t.await(s.async_exists(created, tok));
  ASSERT_FALSE(ec2) << ec2.message();
  EXPECT_EQ(st2, st);
  // Not left for the reaper of a later test's time (it would take a zxid then).
  EXPECT_FALSE(t.err(s.async_remove(created, -1, tok)));
}

TYPED_TEST(node_types, ttl_create_in_a_multi_is_unimplemented) {
  // A limit of the C client (zoo_create_op_init has no TTL), documented in docs/backend.md;
  // the simulator must have it too, or a recipe tested on it would fail on ZooKeeper.
  auto& t = *this;
  auto& s = t.first();
  const auto plain = t.path("plain");
  const auto ttl = t.path("ttl");
  auto [ec, results] = t.await(s.async_multi(
      {op::make_create(plain, ""), op::make_create(ttl, "", {.mode = create_mode::persistent_with_ttl, .ttl = 5s})},
      tok));
  EXPECT_EQ(ec, errc::unimplemented) << ec.message();
  EXPECT_TRUE(results.empty());
  EXPECT_EQ(t.err(s.async_exists(plain, tok)), errc::no_node) << "nothing may be applied";
  EXPECT_EQ(t.err(s.async_exists(ttl, tok)), errc::no_node);
}

TYPED_TEST(node_types, ttl_beyond_the_maximum_is_refused) {
  // ZooKeeper's TTLs fit in 40 bits of milliseconds (EphemeralType.TTL's maximum).
  auto& t = *this;
  auto& s = t.first();
  const auto max = std::chrono::milliseconds((std::int64_t{1} << 40) - 1);
  EXPECT_FALSE(t.err(s.async_create(t.path("max"), "", {.mode = create_mode::persistent_with_ttl, .ttl = max}, tok)));
  EXPECT_FALSE(t.err(s.async_remove(t.path("max"), -1, tok)));
  const auto ec = t.err(s.async_create(t.path("over"), "", {.mode = create_mode::persistent_with_ttl, .ttl = max + 1ms}, tok));
  EXPECT_TRUE(ec == errc::invalid_argument || ec == errc::bad_arguments) << ec.message();
  EXPECT_EQ(t.err(s.async_exists(t.path("over"), tok)), errc::no_node);
}

TYPED_TEST(node_types, ephemeral_lives_with_its_session_and_goes_when_it_is_closed) {
  auto& t = *this;
  auto& observer = t.first();
  auto& owner = t.open({.session_timeout = 1000ms});
  ASSERT_EQ(owner.negotiated_timeout(), 1000ms);
  const auto p = t.path("eph");
  auto [ec, created, st] = t.await(owner.async_create(p, "", {.mode = create_mode::ephemeral}, tok));
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(st.ephemeral_owner, owner.session_id());
  // Alive for 2.5 session timeouts: the owner's heartbeats keep its session and node.
  EXPECT_TRUE(t.stays_for(observer, p, 2500ms));
  EXPECT_EQ(owner.state(), session_state::connected);

  auto& log = t.new_watch_log();
  auto [ec2, st2] = t.await(observer.async_exists(p, log.handler(1), tok));
  ASSERT_FALSE(ec2);
  EXPECT_EQ(st2.ephemeral_owner, owner.session_id());
  EXPECT_EQ(st2, st);
  ASSERT_FALSE(t.err(owner.async_close(tok)));
  // Closing deletes the session's ephemerals at once, not after the session timeout.
  ASSERT_TRUE(t.wait_watches(log, 1, 900ms)) << "no deleted event within the session timeout";
  EXPECT_FALSE(log.items()[0].ec);
  EXPECT_EQ(log.items()[0].event, (watch_event{event_type::deleted, p}));
  EXPECT_EQ(t.err(observer.async_exists(p, tok)), errc::no_node);
}

TYPED_TEST(node_types, ephemeral_nodes_of_a_closed_session_go_in_one_transaction) {
  auto& t = *this;
  auto& observer = t.first();
  auto& owner = t.open();
  for (const char* n : {"e1", "e2", "e3"}) {
    ASSERT_FALSE(t.err(owner.async_create(t.path(n), "", {.mode = create_mode::ephemeral}, tok)));
  }
  ASSERT_FALSE(t.err(observer.async_create(t.path("keep"), "", {}, tok)));
  auto [ec0, before] = t.await(observer.async_exists(t.root_, tok));
  ASSERT_FALSE(ec0);
  ASSERT_FALSE(t.err(owner.async_close(tok)));
  ASSERT_FALSE(t.err(observer.async_sync(t.root_, tok)));
  auto [ec, children, st] = t.await(observer.async_get_children(t.root_, tok));
  ASSERT_FALSE(ec);
  EXPECT_EQ(children, std::vector<std::string>{"keep"});
  EXPECT_EQ(st.cversion, before.cversion + 3);
  // One closeSession transaction deletes them all: the parent's pzxid is that one zxid, the
  // next zxid after the observer's create.
  auto [ec2, c2, next] = t.await(observer.async_create(t.path("after"), "", {}, tok));
  ASSERT_FALSE(ec2);
  EXPECT_EQ(next.czxid, st.pzxid + 1);
}

}  // namespace
}  // namespace zkr::conformance
