// Goal: every operation of the backend contract, its results, stats and error paths, exactly
// alike on real ZooKeeper and on the simulator: zxids, versions, times and counts of each
// stat field, sequential names, multi results, client-side limits, sync, close, and how
// completions are delivered. Method: the typed fixture (fixture.hpp) runs each body once
// against the shared standalone server and once against a fresh 1-server simulated cluster;
// outcomes that depend on timing on a real server are asserted as the set of allowed outcomes
// there and exactly on the simulator.
#include <algorithm>
#include <string>
#include <vector>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/post.hpp>

#include "fixture.hpp"

namespace zkr::conformance {
namespace {

template <class B>
class operations : public fixture<B> {};
TYPED_TEST_SUITE(operations, backends, backend_names);

TYPED_TEST(operations, create_get_set_remove_round_trip_with_stats) {
  auto& t = *this;
  auto& s = t.first();
  const auto p = t.path("node");
  auto [ec0, root_before] = t.await(s.async_exists(t.root_, tok));
  ASSERT_FALSE(ec0);

  auto [ec, created, st] = t.await(s.async_create(p, "hello", {}, tok));
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(created, p);
  EXPECT_EQ(st.version, 0);
  EXPECT_EQ(st.cversion, 0);
  EXPECT_EQ(st.aversion, 0);
  EXPECT_EQ(st.data_length, 5);
  EXPECT_EQ(st.num_children, 0);
  EXPECT_EQ(st.ephemeral_owner, 0);
  EXPECT_GT(st.czxid, root_before.czxid);
  EXPECT_EQ(st.mzxid, st.czxid);
  EXPECT_EQ(st.pzxid, st.czxid) << "a new node's pzxid is its create's zxid";
  EXPECT_GT(st.ctime, 0);
  EXPECT_EQ(st.mtime, st.ctime);
  EXPECT_GE(st.ctime, root_before.ctime);

  auto [ec2, data, st2] = t.await(s.async_get(p, tok));
  ASSERT_FALSE(ec2);
  EXPECT_EQ(data, "hello");
  EXPECT_EQ(st2, st);

  // The parent: one child more, pzxid = the child's create, its own data untouched.
  auto [ec5, parent_st] = t.await(s.async_exists(t.root_, tok));
  ASSERT_FALSE(ec5);
  EXPECT_EQ(parent_st.num_children, 1);
  EXPECT_EQ(parent_st.cversion, root_before.cversion + 1);
  EXPECT_EQ(parent_st.pzxid, st.czxid);
  EXPECT_EQ(parent_st.mzxid, root_before.mzxid);
  EXPECT_EQ(parent_st.mtime, root_before.mtime);
  EXPECT_EQ(parent_st.version, root_before.version);

  EXPECT_EQ(t.err(s.async_set(p, "x", 1, tok)), errc::bad_version);
  auto [ec3, st3] = t.await(s.async_set(p, "world!", 0, tok));
  ASSERT_FALSE(ec3);
  EXPECT_EQ(st3.version, 1);
  EXPECT_EQ(st3.data_length, 6);
  EXPECT_GT(st3.mzxid, st.mzxid);
  EXPECT_EQ(st3.czxid, st.czxid);
  EXPECT_EQ(st3.pzxid, st.pzxid) << "a data change is not a child change";
  EXPECT_EQ(st3.cversion, 0);
  EXPECT_EQ(st3.ctime, st.ctime);
  EXPECT_GE(st3.mtime, st.mtime);

  auto [ec4, st4] = t.await(s.async_exists(p, tok));
  ASSERT_FALSE(ec4);
  EXPECT_EQ(st4, st3);

  // Unconditional set (-1) counts as well.
  auto [ec6, st6] = t.await(s.async_set(p, "", -1, tok));
  ASSERT_FALSE(ec6);
  EXPECT_EQ(st6.version, 2);
  EXPECT_EQ(st6.data_length, 0);
  EXPECT_GT(st6.mzxid, st3.mzxid);

  EXPECT_EQ(t.err(s.async_remove(p, 1, tok)), errc::bad_version);
  ASSERT_FALSE(t.err(s.async_remove(p, 2, tok)));
  EXPECT_EQ(t.err(s.async_exists(p, tok)), errc::no_node);
  auto [ec7, parent_after] = t.await(s.async_exists(t.root_, tok));
  ASSERT_FALSE(ec7);
  EXPECT_EQ(parent_after.num_children, 0);
  EXPECT_EQ(parent_after.cversion, root_before.cversion + 2) << "a delete counts as a child change";
  EXPECT_GT(parent_after.pzxid, st6.mzxid) << "pzxid is the delete's zxid";
  EXPECT_EQ(parent_after.mzxid, root_before.mzxid);
}

TYPED_TEST(operations, zxids_grow_with_every_write_failed_ones_too) {
  auto& t = *this;
  auto& s = t.first();
  auto& other = t.open();
  const auto a = t.path("a");
  const auto b = t.path("b");
  auto [e1, c1, sa] = t.await(s.async_create(a, "", {}, tok));
  auto [e2, c2, sb] = t.await(other.async_create(b, "", {}, tok));
  ASSERT_FALSE(e1);
  ASSERT_FALSE(e2);
  EXPECT_EQ(sb.czxid, sa.czxid + 1) << "one zxid order across sessions, no gaps";
  // Reads take no zxid; a failed write takes one (the leader logs an error transaction).
  (void)t.await(s.async_get(a, tok));
  (void)t.await(s.async_get_children(t.root_, tok));
  EXPECT_EQ(t.err(s.async_create(a, "", {}, tok)), errc::node_exists);
  EXPECT_EQ(t.err(s.async_set(a, "", 5, tok)), errc::bad_version);
  auto [e3, sa2] = t.await(s.async_set(a, "x", -1, tok));
  ASSERT_FALSE(e3);
  EXPECT_EQ(sa2.mzxid, sb.czxid + 3);
}

TYPED_TEST(operations, errors_of_each_operation) {
  auto& t = *this;
  auto& s = t.first();
  const auto p = t.path("e");
  EXPECT_EQ(t.err(s.async_get(p, tok)), errc::no_node);
  EXPECT_EQ(t.err(s.async_exists(p, tok)), errc::no_node);
  EXPECT_EQ(t.err(s.async_set(p, "x", -1, tok)), errc::no_node);
  EXPECT_EQ(t.err(s.async_remove(p, -1, tok)), errc::no_node);
  EXPECT_EQ(t.err(s.async_get_children(p, tok)), errc::no_node);
  EXPECT_EQ(t.err(s.async_get_acl(p, tok)), errc::no_node);
  EXPECT_EQ(t.err(s.async_set_acl(p, open_acl_unsafe(), -1, tok)), errc::no_node);
  EXPECT_EQ(t.err(s.async_create(p + "/child", "", {}, tok)), errc::no_node);  // no parent

  ASSERT_FALSE(t.err(s.async_create(p, "", {}, tok)));
  EXPECT_EQ(t.err(s.async_create(p, "", {}, tok)), errc::node_exists);
  EXPECT_EQ(t.err(s.async_create(p, "", {.mode = create_mode::ephemeral}, tok)), errc::node_exists);
  EXPECT_EQ(t.err(s.async_set(p, "x", 7, tok)), errc::bad_version);
  EXPECT_EQ(t.err(s.async_remove(p, 7, tok)), errc::bad_version);
  ASSERT_FALSE(t.err(s.async_create(p + "/c", "", {}, tok)));
  EXPECT_EQ(t.err(s.async_remove(p, -1, tok)), errc::not_empty);
  EXPECT_EQ(t.err(s.async_remove(p, 0, tok)), errc::not_empty);
  EXPECT_EQ(t.err(s.async_remove(p, 3, tok)), errc::bad_version) << "the version is checked before emptiness";

  const auto eph = t.path("eph");
  ASSERT_FALSE(t.err(s.async_create(eph, "", {.mode = create_mode::ephemeral}, tok)));
  EXPECT_EQ(t.err(s.async_create(eph + "/c", "", {}, tok)), errc::no_children_for_ephemerals);
  EXPECT_EQ(t.err(s.async_create(eph + "/c", "", {.mode = create_mode::ephemeral}, tok)),
            errc::no_children_for_ephemerals);
  EXPECT_EQ(t.err(s.async_create(eph + "/s-", "", {.mode = create_mode::persistent_sequential}, tok)),
            errc::no_children_for_ephemerals);
  auto [ec, st] = t.await(s.async_exists(eph, tok));
  ASSERT_FALSE(ec);
  EXPECT_EQ(st.cversion, 0) << "failed creates changed nothing";
}

TYPED_TEST(operations, the_root_node_cannot_be_removed_or_recreated) {
  auto& t = *this;
  auto& s = t.first();
  EXPECT_EQ(t.err(s.async_create("/", "", {}, tok)), errc::node_exists);
  EXPECT_EQ(t.err(s.async_remove("/", -1, tok)), errc::bad_arguments);
  EXPECT_FALSE(t.err(s.async_exists("/", tok)));
}

TYPED_TEST(operations, the_builtin_zookeeper_nodes) {
  // What a fresh 3.8 server has besides "/": /zookeeper with config (read-only, aversion -1)
  // and quota, all with zero zxids and times; the server refuses to delete them.
  auto& t = *this;
  auto& s = t.first();
  auto [ec, root_children, root_st] = t.await(s.async_get_children("/", tok));
  ASSERT_FALSE(ec);
  EXPECT_NE(std::find(root_children.begin(), root_children.end(), "zookeeper"), root_children.end());
  EXPECT_EQ(root_st.num_children, static_cast<std::int32_t>(root_children.size()));
  auto [ec1, children, st] = t.await(s.async_get_children("/zookeeper", tok));
  ASSERT_FALSE(ec1);
  std::sort(children.begin(), children.end());
  EXPECT_EQ(children, (std::vector<std::string>{"config", "quota"}));
  EXPECT_EQ(st.czxid, 0);
  EXPECT_EQ(st.ctime, 0);
  EXPECT_EQ(st.num_children, 2);
  EXPECT_EQ(st.cversion, -2) << "no child creates recorded, two children: 0 * 2 - 2";
  auto [ec2, acls, config_st] = t.await(s.async_get_acl("/zookeeper/config", tok));
  ASSERT_FALSE(ec2);
  EXPECT_EQ(acls, read_acl_unsafe());
  EXPECT_EQ(config_st.aversion, -1);
  EXPECT_EQ(config_st.mzxid, 0);
  EXPECT_EQ(t.err(s.async_set("/zookeeper/config", "x", -1, tok)), errc::no_auth);
  EXPECT_EQ(t.err(s.async_remove("/zookeeper/quota", -1, tok)), errc::bad_arguments);
  EXPECT_EQ(t.err(s.async_remove("/zookeeper", -1, tok)), errc::bad_arguments);
  // Ordinary nodes may go under /zookeeper and /zookeeper/quota.
  ASSERT_FALSE(t.err(s.async_create("/zookeeper/quota/q", "", {}, tok)));
  ASSERT_FALSE(t.err(s.async_remove("/zookeeper/quota/q", -1, tok)));
  auto [ec3, quota_st] = t.await(s.async_exists("/zookeeper/quota", tok));
  ASSERT_FALSE(ec3);
  EXPECT_EQ(quota_st.cversion, 2);
  EXPECT_EQ(quota_st.num_children, 0);
}

TYPED_TEST(operations, invalid_paths_fail_before_any_request) {
  auto& t = *this;
  auto& s = t.first();
  for (const char* bad : {"", "a", "/a/", "//a", "/a//b", "/a/./b", "/a/../b", "/.", "/..", "/a\x01"}) {
    EXPECT_EQ(t.err(s.async_get(bad, tok)), errc::invalid_path) << bad;
    EXPECT_EQ(t.err(s.async_exists(bad, tok)), errc::invalid_path) << bad;
    EXPECT_EQ(t.err(s.async_set(bad, "", -1, tok)), errc::invalid_path) << bad;
    EXPECT_EQ(t.err(s.async_remove(bad, -1, tok)), errc::invalid_path) << bad;
    EXPECT_EQ(t.err(s.async_get_children(bad, tok)), errc::invalid_path) << bad;
    EXPECT_EQ(t.err(s.async_create(bad, "", {}, tok)), errc::invalid_path) << bad;
  }
  // A sequential create may end in '/': ZooKeeper appends the number to it.
  auto [ec, created, st] = t.await(s.async_create(t.root_ + "/", "", {.mode = create_mode::persistent_sequential}, tok));
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(created, t.root_ + "/0000000000");
  // A TTL must come with a TTL mode, and only with one.
  EXPECT_EQ(t.err(s.async_create(t.path("t"), "", {.mode = create_mode::persistent_with_ttl}, tok)),
            errc::invalid_argument);
  EXPECT_EQ(t.err(s.async_create(t.path("t"), "", {.mode = create_mode::persistent, .ttl = 5s}, tok)),
            errc::invalid_argument);
  EXPECT_EQ(t.err(s.async_exists(t.path("t"), tok)), errc::no_node);
}

TYPED_TEST(operations, sequential_names_are_ten_digits_counting_the_parents_child_creates) {
  // ZooKeeper numbers a sequential node with the parent's persisted cversion, which counts
  // child creates only. The cversion a client sees counts deletes too: the server reports
  // creates * 2 - numChildren (DataNode.copyStat). So after a create and a delete the parent
  // shows cversion 2 while the next sequential name ends in 1.
  auto& t = *this;
  auto& s = t.first();
  ASSERT_FALSE(t.err(s.async_create(t.path("other"), "", {}, tok)));  // 1 create
  ASSERT_FALSE(t.err(s.async_remove(t.path("other"), -1, tok)));      // a delete: shown, not counted
  auto [ec0, st0] = t.await(s.async_exists(t.root_, tok));
  ASSERT_FALSE(ec0);
  EXPECT_EQ(st0.cversion, 2);
  ASSERT_FALSE(t.err(s.async_set(t.root_, "data", -1, tok)));  // a data change counts for neither
  EXPECT_EQ(t.err(s.async_create(t.path("x"), "", {.acl = {}}, tok)), errc::invalid_acl);  // a failed create neither
  std::vector<std::string> names;
  for (int i = 0; i < 3; ++i) {
    auto [ec, created, st] =
        t.await(s.async_create(t.path("lock-"), "", {.mode = create_mode::ephemeral_sequential}, tok));
    ASSERT_FALSE(ec) << ec.message();
    names.push_back(created);
    EXPECT_NE(st.ephemeral_owner, 0);
    EXPECT_EQ(st.ephemeral_owner, s.session_id());
  }
  EXPECT_EQ(names[0], t.path("lock-0000000001"));
  EXPECT_EQ(names[1], t.path("lock-0000000002"));
  EXPECT_EQ(names[2], t.path("lock-0000000003"));
  // Persistent and ephemeral sequential nodes share the parent's counter; so do other prefixes.
  auto [ec2, created2, st2] = t.await(s.async_create(t.path("p-"), "", {.mode = create_mode::persistent_sequential}, tok));
  ASSERT_FALSE(ec2);
  EXPECT_EQ(created2, t.path("p-0000000004"));
  EXPECT_EQ(st2.ephemeral_owner, 0);
  // Deleting the newest does not give its number back.
  ASSERT_FALSE(t.err(s.async_remove(created2, -1, tok)));
  auto [ec5, created5, st5] = t.await(s.async_create(t.path("p-"), "", {.mode = create_mode::persistent_sequential}, tok));
  ASSERT_FALSE(ec5);
  EXPECT_EQ(created5, t.path("p-0000000005"));
  // The counter is per parent: a new parent starts at 0.
  ASSERT_FALSE(t.err(s.async_create(t.path("sub"), "", {}, tok)));
  auto [ec3, created3, st3] =
      t.await(s.async_create(t.path("sub/n"), "", {.mode = create_mode::persistent_sequential}, tok));
  ASSERT_FALSE(ec3);
  EXPECT_EQ(created3, t.path("sub/n0000000000"));
  auto [ec4, parent] = t.await(s.async_exists(t.root_, tok));
  ASSERT_FALSE(ec4);
  // 7 creates (other, 3 locks, 2 p-, sub), 5 children: 7 * 2 - 5.
  EXPECT_EQ(parent.num_children, 5);
  EXPECT_EQ(parent.cversion, 9);
  EXPECT_EQ(parent.version, 1);
}

TYPED_TEST(operations, get_children_with_stat) {
  auto& t = *this;
  auto& s = t.first();
  for (const char* n : {"a", "b", "c"}) ASSERT_FALSE(t.err(s.async_create(t.path(n), "", {}, tok)));
  ASSERT_FALSE(t.err(s.async_create(t.path("a/grandchild"), "", {}, tok)));
  auto [ec, children, st] = t.await(s.async_get_children(t.root_, tok));
  ASSERT_FALSE(ec);
  std::sort(children.begin(), children.end());
  EXPECT_EQ(children, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(st.num_children, 3);
  EXPECT_EQ(st.cversion, 3);
  auto [ec1, st1] = t.await(s.async_exists(t.root_, tok));
  ASSERT_FALSE(ec1);
  EXPECT_EQ(st, st1);
  auto [ec2, leaf_children, leaf_st] = t.await(s.async_get_children(t.path("b"), tok));
  ASSERT_FALSE(ec2);
  EXPECT_TRUE(leaf_children.empty());
  EXPECT_EQ(leaf_st.num_children, 0);
}

TYPED_TEST(operations, oversized_requests_get_data_too_large_and_the_limit_is_exact) {
  auto& t = *this;
  auto& s = t.first();
  const auto p = t.path("big");
  // Largest data that fits: limit - header(8) - path(4+n) - data prefix(4) - acl vector - flags(4).
  const std::string probe;
  const std::size_t overhead = create_request_size(p, probe, {});
  const std::string fits(default_max_request_bytes - overhead, 'x');
  const std::string too_big(fits.size() + 1, 'x');
  EXPECT_EQ(t.err(s.async_create(p, too_big, {}, tok)), errc::data_too_large);
  auto [ec, created, st] = t.await(s.async_create(p, fits, {}, tok));
  ASSERT_FALSE(ec) << "the largest request the limit admits must succeed: " << ec.message();
  EXPECT_EQ(st.data_length, static_cast<std::int32_t>(fits.size()));
  // A set carries no ACL and no flags: its largest data is larger than a create's.
  const std::string set_fits(default_max_request_bytes - set_request_size(p, probe), 'y');
  EXPECT_EQ(t.err(s.async_set(p, set_fits + "y", -1, tok)), errc::data_too_large);
  auto [ec2, st2] = t.await(s.async_set(p, set_fits, -1, tok));
  EXPECT_FALSE(ec2) << ec2.message();
  EXPECT_EQ(st2.data_length, static_cast<std::int32_t>(set_fits.size()));
  EXPECT_EQ(t.err(s.async_multi({op::make_set(p, set_fits)}, tok)), errc::data_too_large);
  auto [ec3, data, st3] = t.await(s.async_get(p, tok));
  ASSERT_FALSE(ec3);
  EXPECT_EQ(data, set_fits);
  EXPECT_EQ(st3.version, 1) << "the refused requests changed nothing";
}

TYPED_TEST(operations, without_the_size_check_the_server_drops_the_connection) {
  // Why the client-side check exists: the server answers an oversized request by closing the
  // connection ("Len error"), which the caller sees as connection_loss, the "maybe applied"
  // error, although the server never read the request. The session itself survives.
  auto& t = *this;
  auto& s = t.open({.max_request_bytes = 0});
  state_log states;
  auto sub = s.subscribe([&](const session_event& e) { states.push(e); });
  const auto id = s.session_id();
  const std::string huge(default_max_request_bytes + 1024, 'x');
  auto [ec, created, st] = t.await(s.async_create(t.path("huge"), huge, {}, tok));
  EXPECT_EQ(ec, errc::connection_loss) << ec.message();
  ASSERT_TRUE(t.wait_state(states, session_state::reconnected));
  EXPECT_EQ(states.states(), (std::vector<session_state>{session_state::suspended, session_state::reconnected}));
  EXPECT_EQ(s.session_id(), id);
  EXPECT_EQ(t.err(s.async_exists(t.path("huge"), tok)), errc::no_node) << "the server never applied it";
}

TYPED_TEST(operations, multi_commits_all_in_one_transaction) {
  auto& t = *this;
  auto& s = t.first();
  const auto a = t.path("a"), b = t.path("b"), c = t.path("c");
  ASSERT_FALSE(t.err(s.async_create(a, "0", {}, tok)));
  auto [ec, results] = t.await(s.async_multi({op::make_check(a, 0), op::make_set(a, "1", 0), op::make_create(b, "bee"),
                                              op::make_create(c + "-", "", {.mode = create_mode::persistent_sequential})},
                                             tok));
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_EQ(results.size(), 4u);
  for (const auto& r : results) EXPECT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(results[0].path, "");
  EXPECT_EQ(results[0].stat, zkr::stat{});
  EXPECT_EQ(results[2].path, b);
  EXPECT_EQ(results[3].path, c + "-0000000002") << "the sequence number counts the create of b before it";
  // The C client's create results carry no stat (docs/backend.md); the simulator must agree.
  EXPECT_EQ(results[2].stat, zkr::stat{});
  EXPECT_EQ(results[3].stat, zkr::stat{});

  auto [ec2, data_a, st_a] = t.await(s.async_get(a, tok));
  ASSERT_FALSE(ec2);
  EXPECT_EQ(data_a, "1");
  EXPECT_EQ(results[1].stat, st_a) << "a set's result is the node's full stat";
  auto [ec3, data_b, st_b] = t.await(s.async_get(b, tok));
  ASSERT_FALSE(ec3);
  EXPECT_EQ(data_b, "bee");
  EXPECT_EQ(st_b.czxid, st_a.mzxid) << "one transaction, one zxid";
  auto [ec4, st_c] = t.await(s.async_exists(results[3].path, tok));
  ASSERT_FALSE(ec4);
  EXPECT_EQ(st_c.czxid, st_a.mzxid);
  auto [ec5, root_st] = t.await(s.async_exists(t.root_, tok));
  ASSERT_FALSE(ec5);
  EXPECT_EQ(root_st.pzxid, st_a.mzxid);
  EXPECT_EQ(root_st.cversion, 3);

  // A create and a remove of the same node in one multi: applied in order.
  auto [ec6, r6] = t.await(s.async_multi({op::make_create(t.path("d"), ""), op::make_remove(t.path("d"), 0)}, tok));
  ASSERT_FALSE(ec6) << ec6.message();
  ASSERT_EQ(r6.size(), 2u);
  EXPECT_EQ(r6[0].path, t.path("d"));
  EXPECT_EQ(r6[1].path, "");
  EXPECT_EQ(t.err(s.async_exists(t.path("d"), tok)), errc::no_node);
}

TYPED_TEST(operations, multi_failure_reports_per_op_results_and_applies_nothing) {
  auto& t = *this;
  auto& s = t.first();
  const auto a = t.path("a"), b = t.path("b");
  ASSERT_FALSE(t.err(s.async_create(a, "1", {}, tok)));
  auto [e0, st0] = t.await(s.async_exists(t.root_, tok));
  ASSERT_FALSE(e0);

  // The third op fails: ok, ok, its error, then runtime_inconsistency; nothing applied.
  auto [ec2, r2] = t.await(s.async_multi(
      {op::make_set(a, "2", 0), op::make_create(b, ""), op::make_set(a, "3", 99), op::make_remove(a, -1)}, tok));
  EXPECT_EQ(ec2, errc::bad_version);
  ASSERT_EQ(r2.size(), 4u);
  EXPECT_FALSE(r2[0].ec);
  EXPECT_FALSE(r2[1].ec);
  EXPECT_EQ(r2[2].ec, errc::bad_version);
  EXPECT_EQ(r2[3].ec, errc::runtime_inconsistency);
  auto [ec3, data, st] = t.await(s.async_get(a, tok));
  EXPECT_EQ(data, "1");
  EXPECT_EQ(st.version, 0);
  EXPECT_EQ(t.err(s.async_exists(b, tok)), errc::no_node);
  auto [e4, st4] = t.await(s.async_exists(t.root_, tok));
  EXPECT_EQ(st4, st0) << "the parent's cversion and pzxid are untouched";

  // The first op fails: its error, then runtime_inconsistency for every other.
  auto [ec5, r5] = t.await(s.async_multi({op::make_check(t.path("absent")), op::make_create(b, "")}, tok));
  EXPECT_EQ(ec5, errc::no_node);
  ASSERT_EQ(r5.size(), 2u);
  EXPECT_EQ(r5[0].ec, errc::no_node);
  EXPECT_EQ(r5[1].ec, errc::runtime_inconsistency);

  // Each op sees the effect of those before it: a create then a create of the same node.
  auto [ec6, r6] = t.await(s.async_multi({op::make_create(b, ""), op::make_create(b, "")}, tok));
  EXPECT_EQ(ec6, errc::node_exists);
  ASSERT_EQ(r6.size(), 2u);
  EXPECT_FALSE(r6[0].ec);
  EXPECT_EQ(r6[1].ec, errc::node_exists);
  EXPECT_EQ(t.err(s.async_exists(b, tok)), errc::no_node);

  // A check with a wrong version, a remove of a node with children.
  ASSERT_FALSE(t.err(s.async_create(a + "/child", "", {}, tok)));
  auto [ec7, r7] = t.await(s.async_multi({op::make_check(a, 0), op::make_remove(a, 0)}, tok));
  EXPECT_EQ(ec7, errc::not_empty);
  ASSERT_EQ(r7.size(), 2u);
  EXPECT_FALSE(r7[0].ec);
  EXPECT_EQ(r7[1].ec, errc::not_empty);
  auto [ec8, r8] = t.await(s.async_multi({op::make_check(a, 3)}, tok));
  EXPECT_EQ(ec8, errc::bad_version);
  ASSERT_EQ(r8.size(), 1u);
  EXPECT_EQ(r8[0].ec, errc::bad_version);
}

TYPED_TEST(operations, an_empty_multi_succeeds_with_no_results) {
  auto& t = *this;
  auto [ec, results] = t.await(t.first().async_multi({}, tok));
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_TRUE(results.empty());
}

TYPED_TEST(operations, sync_then_read_sees_a_write_of_another_session) {
  auto& t = *this;
  auto& a = t.first();
  auto& b = t.open();
  const auto p = t.path("s");
  ASSERT_FALSE(t.err(b.async_create(p, "v", {}, tok)));
  ASSERT_FALSE(t.err(a.async_sync(p, tok)));
  auto [ec, data, st] = t.await(a.async_get(p, tok));
  ASSERT_FALSE(ec);
  EXPECT_EQ(data, "v");
  // sync of a path that does not exist, or of "/", succeeds: the server does not look it up.
  EXPECT_FALSE(t.err(a.async_sync(t.path("absent"), tok)));
  EXPECT_FALSE(t.err(a.async_sync("/", tok)));
  EXPECT_EQ(t.err(a.async_sync("no-slash", tok)), errc::invalid_path);
}

TYPED_TEST(operations, completions_of_one_session_come_in_request_order) {
  auto& t = *this;
  auto& s = t.first();
  std::vector<int> order;
  std::promise<void> done;
  const auto p = t.path("fifo");
  // Writes and reads pipelined without waiting: FIFO per session.
  s.async_create(p, "0", {}, [&](std::error_code ec, std::string, zkr::stat) {
    EXPECT_FALSE(ec);
    order.push_back(0);
  });
  for (int i = 1; i <= 20; ++i) {
    if (i % 2) {
      s.async_set(p, std::to_string(i), -1, [&order, i](std::error_code ec, zkr::stat st) {
        EXPECT_FALSE(ec);
        EXPECT_EQ(st.version, (i + 1) / 2);
        order.push_back(i);
      });
    } else {
      s.async_get(p, [&order, i](std::error_code ec, std::string data, zkr::stat) {
        EXPECT_FALSE(ec);
        EXPECT_EQ(data, std::to_string(i - 1)) << "a read sees every write made before it";
        order.push_back(i);
      });
    }
  }
  s.async_exists(p, [&](std::error_code, zkr::stat) { done.set_value(); });
  t.await(done.get_future());
  ASSERT_EQ(order.size(), 21u);
  for (int i = 0; i <= 20; ++i) EXPECT_EQ(order[static_cast<std::size_t>(i)], i);
}

TYPED_TEST(operations, handlers_never_run_inside_the_initiating_call_and_honour_their_executor) {
  auto& t = *this;
  auto& s = t.first();
  // Initiate on the session's strand: an inline completion would see `inside` still true;
  // a posted one runs only after the initiating lambda has returned.
  bool inside = false;
  std::promise<bool> ran_inline;
  asio::post(s.get_executor(), [&] {
    inside = true;
    s.async_get("not-a-path", [&](std::error_code ec, std::string, zkr::stat) {
      EXPECT_EQ(ec, errc::invalid_path);
      ran_inline.set_value(inside);
    });
    inside = false;
  });
  EXPECT_FALSE(t.await(ran_inline.get_future()));

  auto other = t.b_.other_executor();
  std::promise<bool> on_other;
  s.async_exists(t.root_, asio::bind_executor(other, [&](std::error_code, zkr::stat) {
                   on_other.set_value(other.running_in_this_thread());
                 }));
  EXPECT_TRUE(t.await(on_other.get_future()));
  std::promise<bool> on_session;
  s.async_exists(t.root_, [&](std::error_code, zkr::stat) {
    on_session.set_value(s.get_executor().running_in_this_thread() && !other.running_in_this_thread());
  });
  EXPECT_TRUE(t.await(on_session.get_future()));
}

TYPED_TEST(operations, deferred_tokens_own_their_arguments) {
  auto& t = *this;
  auto& s = t.first();
  auto op = [&] {
    std::string p = t.path("deferred");  // dies before the operation starts
    std::string data = "d";
    return s.async_create(p, data, {}, asio::deferred);
  }();
  auto [ec, created, st] = t.await(std::move(op)(tok));
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(created, t.path("deferred"));
  EXPECT_EQ(st.data_length, 1);
}

TYPED_TEST(operations, close_aborts_pending_operations_and_ends_watches) {
  auto& t = *this;
  auto& s = t.open();
  auto& log = t.new_watch_log();
  ASSERT_EQ(t.err(s.async_exists(t.path("w"), log.handler(1), tok)), errc::no_node);
  std::vector<std::future<std::tuple<std::error_code, std::string, zkr::stat>>> pending;
  for (int i = 0; i < 50; ++i) pending.push_back(s.async_get(t.root_, tok));
  auto closed = s.async_close(tok);
  int aborted = 0;
  for (auto& f : pending) {
    auto ec = t.err(std::move(f));
    EXPECT_TRUE(!ec || ec == std::errc::operation_canceled) << ec.message();
    aborted += ec == std::errc::operation_canceled;
  }
  if constexpr (TestFixture::simulated) {
    // Nothing ran between the requests and the close: all 50 were pending when it came.
    EXPECT_EQ(aborted, 50);
  }
  EXPECT_FALSE(t.err(std::move(closed)));
  EXPECT_EQ(s.state(), session_state::closed);
  ASSERT_TRUE(t.wait_watches(log, 1));
  EXPECT_EQ(log.items()[0].ec, errc::closing);
  EXPECT_EQ(t.err(s.async_get(t.root_, tok)), errc::closing);
  EXPECT_EQ(t.err(s.async_create(t.path("after"), "", {}, tok)), errc::closing);
  EXPECT_FALSE(t.err(s.async_close(tok)));  // idempotent
  EXPECT_EQ(t.err(s.async_wait_connected(tok)), errc::closing);
}

}  // namespace
}  // namespace zkr::conformance
