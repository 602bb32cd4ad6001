// Goal: zkr::sim::data_tree reproduces ZooKeeper 3.8.0's data tree exactly: each operation's
// results, error precedence (PrepRequestProcessor's order), stat fields, sequential naming
// and its int32 wrap, multi results, ephemeral cleanup, container/TTL reaping, ACLs with
// digest auth, and every watch trigger rule with one-shot semantics.
// Method: drive the tree directly with explicit zxids and times (it is sans-IO) and compare
// with what the real server does: values observed on the shared 3.8.0 server (zkCli `stat`
// of the built-in nodes, cversion after deletes) and in tests/zookeeper/*.cpp, and the
// server's source (PrepRequestProcessor, DataTree, DataNode.copyStat, ContainerManager).
#include <gtest/gtest.h>

#include <zkr/sim/data_tree.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace zkr::sim {
namespace {

using namespace std::chrono_literals;
using ev = watch_delivery;

constexpr std::int64_t s1 = 0x101, s2 = 0x102, s3 = 0x103;
constexpr std::int64_t t0 = 1'700'000'000'000;

struct data_tree_fixture : ::testing::Test {
  data_tree tree;
  std::int64_t zxid = 0;

  write_result create(const std::string& p, const std::string& d = "", create_options o = {}, std::int64_t s = s1,
                      std::int64_t now = t0) {
    return tree.create(++zxid, now, s, p, d, o);
  }
  void must_create(const std::string& p, create_options o = {}, std::int64_t s = s1) {
    auto r = create(p, "", std::move(o), s);
    ASSERT_FALSE(r.ec) << p << ": " << r.ec.message();
  }
  zkr::stat stat_of(const std::string& p) {
    auto r = tree.exists(s1, p, false);
    EXPECT_FALSE(r.ec) << p;
    return r.stat;
  }
};

using data_tree_test = data_tree_fixture;

// ---- digest ---------------------------------------------------------------------------

TEST(data_tree_digest, sha1_and_base64_known_answers) {
  const auto b64 = [](std::string_view s) {
    const auto h = detail::sha1(s);
    return detail::base64(h.data(), h.size());
  };
  EXPECT_EQ(b64("abc"), "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=");  // FIPS 180-1 a9993e36...
  EXPECT_EQ(b64(""), "2jmj7l5rSw0yVb/vlWAYkK/YBwk=");
  EXPECT_EQ(b64(std::string(1000, 'a')).size(), 28u);  // multi-block input
  EXPECT_EQ(detail::base64("f"), "Zg==");
  EXPECT_EQ(detail::base64("fo"), "Zm8=");
  EXPECT_EQ(detail::base64("foo"), "Zm9v");
  EXPECT_EQ(digest_id("alice:secret"), "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=");
}

// ---- initial tree ---------------------------------------------------------------------

TEST_F(data_tree_test, fresh_tree_matches_a_fresh_server) {
  auto root = tree.get_children(s1, "/", false);
  ASSERT_FALSE(root.ec);
  EXPECT_EQ(root.children, std::vector<std::string>{"zookeeper"});
  EXPECT_EQ(root.stat.cversion, -1);  // zkCli on 3.8.0: stored 0, 2*0 - 1 child
  EXPECT_EQ(root.stat.num_children, 1);
  auto zk = tree.get_children(s1, "/zookeeper", false);
  EXPECT_EQ(zk.children, (std::vector<std::string>{"config", "quota"}));
  EXPECT_EQ(zk.stat.cversion, -2);
  auto cfg = tree.get_acl(s1, "/zookeeper/config");
  ASSERT_FALSE(cfg.ec);
  EXPECT_EQ(cfg.acl, read_acl_unsafe());
  EXPECT_EQ(cfg.stat.aversion, -1);
  EXPECT_EQ(tree.size(), 4u);
}

// ---- create ---------------------------------------------------------------------------

TEST_F(data_tree_test, create_sets_every_stat_field_and_updates_the_parent) {
  auto r = create("/a", "hello", {}, s1, t0 + 5);
  ASSERT_FALSE(r.ec);
  EXPECT_EQ(r.path, "/a");
  zkr::stat want{.czxid = 1, .mzxid = 1, .ctime = t0 + 5, .mtime = t0 + 5, .version = 0, .cversion = 0,
                 .aversion = 0, .ephemeral_owner = 0, .data_length = 5, .num_children = 0, .pzxid = 1};
  EXPECT_EQ(r.stat, want);
  EXPECT_EQ(stat_of("/a"), want);
  auto got = tree.get_data(s2, "/a", false);
  EXPECT_EQ(got.data, "hello");
  const auto root = stat_of("/");
  EXPECT_EQ(root.pzxid, 1);
  EXPECT_EQ(root.num_children, 2);
  EXPECT_EQ(root.cversion, 0);  // stored 1, 2*1 - 2
}

TEST_F(data_tree_test, create_error_precedence_follows_prep_request_processor) {
  must_create("/eph", {.mode = create_mode::ephemeral});
  // no_node (parent) before everything on the node itself
  EXPECT_EQ(create("/missing/x").ec, errc::no_node);
  // invalid_acl (fixupACL) before the parent lookup
  EXPECT_EQ(create("/missing/x", "", {.acl = {}}).ec, errc::invalid_acl);
  // bad TTL before everything
  EXPECT_EQ(create("/missing/x", "", {.mode = create_mode::persistent_with_ttl}).ec, errc::bad_arguments);
  EXPECT_EQ(create("/x", "", {.mode = create_mode::persistent, .ttl = 5ms}).ec, errc::bad_arguments);
  // node_exists is checked before the ephemeral parent (ephemerals have no children, so
  // only their own name can clash)
  EXPECT_EQ(create("/eph").ec, errc::node_exists);
  EXPECT_EQ(create("/eph/c").ec, errc::no_children_for_ephemerals);
  // an invalid final path (after the parent check) is bad_arguments
  must_create("/p");
  EXPECT_EQ(create("/p/").ec, errc::bad_arguments);
  EXPECT_EQ(create("/q/").ec, errc::no_node);
}

TEST_F(data_tree_test, create_under_a_parent_without_create_permission_is_no_auth_before_node_exists) {
  ASSERT_FALSE(tree.add_auth(s1, "digest", "alice:secret"));
  must_create("/d", {.acl = {{perms::all, "auth", ""}}});
  must_create("/d/kid");
  EXPECT_EQ(create("/d/kid", "", {}, s2).ec, errc::no_auth);  // s2 is anonymous
  EXPECT_EQ(create("/d/kid", "", {}, s1).ec, errc::node_exists);
}

TEST_F(data_tree_test, a_failed_create_changes_nothing_and_fires_nothing) {
  must_create("/a");
  ASSERT_EQ(tree.exists(s2, "/a/b", true).ec, errc::no_node);
  const auto before = stat_of("/a");
  EXPECT_EQ(create("/a/b", "", {.acl = {}}).ec, errc::invalid_acl);
  EXPECT_EQ(stat_of("/a"), before);
  EXPECT_TRUE(tree.has_data_watch(s2, "/a/b"));
}

// ---- sequential names -------------------------------------------------------------------

TEST_F(data_tree_test, sequential_names_come_from_the_stored_child_create_count) {
  must_create("/p");
  must_create("/p/other");  // creates: 1
  auto a = create("/p/lock-", "", {.mode = create_mode::ephemeral_sequential});
  auto b = create("/p/lock-", "", {.mode = create_mode::ephemeral_sequential});
  EXPECT_EQ(a.path, "/p/lock-0000000001");
  EXPECT_EQ(b.path, "/p/lock-0000000002");
  EXPECT_EQ(a.stat.ephemeral_owner, s1);
  // A delete does not change the counter, but the reported cversion = 2*creates - children.
  ASSERT_FALSE(tree.remove(++zxid, s1, "/p/other", -1).ec);
  EXPECT_EQ(stat_of("/p").cversion, 2 * 3 - 2);
  EXPECT_EQ(create("/p/lock-", "", {.mode = create_mode::persistent_sequential}).path, "/p/lock-0000000003");
  // a sequential create of "/p/" names the node by its number alone
  EXPECT_EQ(create("/p/", "", {.mode = create_mode::persistent_sequential}).path, "/p/0000000004");
}

TEST_F(data_tree_test, cversion_after_creates_and_deletes_matches_the_server) {
  // Observed with zkCli on 3.8.0: create /p, /p/a, /p/b, delete /p/a -> cversion 3, pzxid
  // the delete's zxid; then create /p/c -> cversion 4.
  must_create("/p");
  must_create("/p/a");
  must_create("/p/b");
  ASSERT_FALSE(tree.remove(++zxid, s1, "/p/a", -1).ec);
  EXPECT_EQ(stat_of("/p").cversion, 3);
  EXPECT_EQ(stat_of("/p").pzxid, zxid);
  must_create("/p/c");
  EXPECT_EQ(stat_of("/p").cversion, 4);
  EXPECT_EQ(stat_of("/p").pzxid, zxid);
}

TEST_F(data_tree_test, sequence_wraps_to_negative_numbers_like_java) {
  must_create("/p");
  ASSERT_TRUE(tree.set_child_creates_for_test("/p", 2147483647));
  const create_options seq{.mode = create_mode::persistent_sequential};
  EXPECT_EQ(create("/p/n-", "", seq).path, "/p/n-2147483647");
  EXPECT_EQ(create("/p/n-", "", seq).path, "/p/n--2147483648");
  EXPECT_EQ(create("/p/n-", "", seq).path, "/p/n--2147483647");
  ASSERT_TRUE(tree.set_child_creates_for_test("/p", -1));
  EXPECT_EQ(create("/p/n-", "", seq).path, "/p/n--000000001");
  EXPECT_EQ(create("/p/n-", "", seq).path, "/p/n-0000000000");
  // A name taken by an earlier create is node_exists, as on the server.
  ASSERT_TRUE(tree.set_child_creates_for_test("/p", 0));
  EXPECT_EQ(create("/p/n-", "", seq).ec, errc::node_exists);
}

// ---- remove, set, set_acl, check ----------------------------------------------------------

TEST_F(data_tree_test, remove_error_precedence) {
  EXPECT_EQ(tree.remove(++zxid, s1, "/", -1).ec, errc::bad_arguments);
  EXPECT_EQ(tree.remove(++zxid, s1, "/zookeeper", -1).ec, errc::bad_arguments);
  EXPECT_EQ(tree.remove(++zxid, s1, "/zookeeper/quota", -1).ec, errc::bad_arguments);
  EXPECT_EQ(tree.remove(++zxid, s1, "/a/b", -1).ec, errc::no_node);
  must_create("/a");
  must_create("/a/b");
  EXPECT_EQ(tree.remove(++zxid, s1, "/a/x", 5).ec, errc::no_node);
  EXPECT_EQ(tree.remove(++zxid, s1, "/a", 5).ec, errc::bad_version);  // before not_empty
  EXPECT_EQ(tree.remove(++zxid, s1, "/a", 0).ec, errc::not_empty);
  // no_auth (DELETE on the parent) comes before no_node on the node
  ASSERT_FALSE(tree.add_auth(s1, "digest", "alice:secret"));
  must_create("/g", {.acl = {{perms::all, "auth", ""}}});
  EXPECT_EQ(tree.remove(++zxid, s2, "/g/none", -1).ec, errc::no_auth);
  EXPECT_EQ(tree.remove(++zxid, s1, "/g/none", -1).ec, errc::no_node);
}

TEST_F(data_tree_test, set_data_stats_and_errors) {
  must_create("/a");
  const auto c = stat_of("/a");
  EXPECT_EQ(tree.set_data(++zxid, t0, s1, "/none", "x", -1).ec, errc::no_node);
  EXPECT_EQ(tree.set_data(++zxid, t0, s1, "/a", "x", 3).ec, errc::bad_version);
  auto r = tree.set_data(++zxid, t0 + 9, s1, "/a", "world!", 0);
  ASSERT_FALSE(r.ec);
  EXPECT_EQ(r.stat.version, 1);
  EXPECT_EQ(r.stat.mzxid, zxid);
  EXPECT_EQ(r.stat.mtime, t0 + 9);
  EXPECT_EQ(r.stat.czxid, c.czxid);
  EXPECT_EQ(r.stat.ctime, c.ctime);
  EXPECT_EQ(r.stat.pzxid, c.pzxid);
  EXPECT_EQ(r.stat.data_length, 6);
  EXPECT_EQ(stat_of("/a"), r.stat);
  EXPECT_EQ(tree.set_data(++zxid, t0, s1, "/bad//path", "x", -1).ec, errc::bad_arguments);
}

TEST_F(data_tree_test, check_reports_version_and_changes_nothing) {
  must_create("/a");
  EXPECT_FALSE(tree.check(s1, "/a", 0).ec);
  EXPECT_FALSE(tree.check(s1, "/a", -1).ec);
  EXPECT_EQ(tree.check(s1, "/a", 1).ec, errc::bad_version);
  EXPECT_EQ(tree.check(s1, "/b", -1).ec, errc::no_node);
}

// ---- ACLs ---------------------------------------------------------------------------------

TEST_F(data_tree_test, creator_all_acl_is_stored_as_the_creators_digest_id) {
  EXPECT_EQ(create("/nobody", "", {.acl = creator_all_acl()}).ec, errc::invalid_acl);
  ASSERT_FALSE(tree.add_auth(s1, "digest", "alice:secret"));
  must_create("/alice", {.acl = creator_all_acl()});
  auto r = tree.get_acl(s1, "/alice");
  ASSERT_FALSE(r.ec);
  EXPECT_EQ(r.acl, (acl_list{{perms::all, "digest", "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E="}}));
  EXPECT_EQ(tree.add_auth(s1, "sasl", "x"), errc::auth_failed);
}

TEST_F(data_tree_test, acl_permission_checks_per_operation) {
  ASSERT_FALSE(tree.add_auth(s1, "digest", "alice:secret"));
  ASSERT_FALSE(tree.add_auth(s2, "digest", "alice:wrong"));  // digest auth never fails
  ASSERT_FALSE(tree.create(++zxid, t0, s1, "/p", "private", {.acl = creator_all_acl()}).ec);
  for (const auto s : {s2, s3}) {
    EXPECT_EQ(tree.get_data(s, "/p", false).ec, errc::no_auth);
    EXPECT_EQ(tree.get_children(s, "/p", false).ec, errc::no_auth);
    EXPECT_EQ(tree.get_acl(s, "/p").ec, errc::no_auth);
    EXPECT_EQ(tree.set_data(++zxid, t0, s, "/p", "x", -1).ec, errc::no_auth);
    EXPECT_EQ(tree.set_acl(++zxid, s, "/p", open_acl_unsafe(), -1).ec, errc::no_auth);
    EXPECT_EQ(tree.check(s, "/p", -1).ec, errc::no_auth);
    EXPECT_EQ(create("/p/c", "", {}, s).ec, errc::no_auth);
    auto e = tree.exists(s, "/p", false);  // exists checks nothing in 3.8.0
    EXPECT_FALSE(e.ec);
    EXPECT_EQ(e.stat.data_length, 7);
  }
  auto mine = tree.get_data(s1, "/p", false);
  EXPECT_EQ(mine.data, "private");
}

TEST_F(data_tree_test, set_acl_checks_aversion_and_readers_see_redacted_digests) {
  ASSERT_FALSE(tree.add_auth(s1, "digest", "alice:secret"));
  must_create("/p", {.acl = creator_all_acl()});
  EXPECT_EQ(tree.set_acl(++zxid, s1, "/p", read_acl_unsafe(), 1).ec, errc::bad_version);
  EXPECT_EQ(tree.set_acl(++zxid, s1, "/p", {}, -1).ec, errc::invalid_acl);
  EXPECT_EQ(tree.set_acl(++zxid, s1, "/none", {}, -1).ec, errc::invalid_acl);  // before no_node
  EXPECT_EQ(tree.set_acl(++zxid, s1, "/none", read_acl_unsafe(), -1).ec, errc::no_node);
  acl_list mixed{{perms::read, "world", "anyone"}, {perms::all, "digest", digest_id("alice:secret")}};
  ASSERT_FALSE(tree.set_acl(++zxid, s1, "/p", mixed, 0).ec);
  const auto st = stat_of("/p");
  EXPECT_EQ(st.aversion, 1);
  EXPECT_EQ(st.version, 0);
  EXPECT_EQ(tree.get_acl(s1, "/p").acl, mixed);
  auto reader = tree.get_acl(s2, "/p");
  ASSERT_FALSE(reader.ec);
  EXPECT_EQ(reader.acl[1].id, "alice:x");
  EXPECT_EQ(tree.set_acl(++zxid, s1, "/p", {{perms::all, "digest", "nocolon"}}, -1).ec, errc::invalid_acl);
  EXPECT_EQ(tree.set_acl(++zxid, s1, "/p", {{perms::all, "world", "someone"}}, -1).ec, errc::invalid_acl);
}

// ---- multi --------------------------------------------------------------------------------

TEST_F(data_tree_test, multi_applies_all_with_one_zxid) {
  must_create("/a");
  ASSERT_EQ(tree.exists(s2, "/b", true).ec, errc::no_node);
  const std::int64_t z = ++zxid;
  auto m = tree.multi(z, t0 + 1, s1,
                      {op::make_check("/a", 0), op::make_set("/a", "1", 0), op::make_create("/b", "bee"),
                       op::make_create("/b/s-", "", {.mode = create_mode::persistent_sequential}),
                       op::make_create("/b/s-", "", {.mode = create_mode::persistent_sequential})});
  ASSERT_FALSE(m.ec) << m.ec.message();
  ASSERT_EQ(m.results.size(), 5u);
  EXPECT_EQ(m.results[1].stat.version, 1);
  EXPECT_EQ(m.results[1].stat.mzxid, z);
  EXPECT_EQ(m.results[2].path, "/b");
  EXPECT_EQ(m.results[2].stat.czxid, z);
  EXPECT_EQ(m.results[3].path, "/b/s-0000000000");
  EXPECT_EQ(m.results[4].path, "/b/s-0000000001");
  EXPECT_EQ(stat_of("/b").pzxid, z);
  EXPECT_EQ(m.events, (std::vector<ev>{{s2, {event_type::created, "/b"}}}));
}

TEST_F(data_tree_test, multi_failure_reports_per_op_results_and_applies_nothing) {
  must_create("/a");
  ASSERT_FALSE(tree.get_data(s2, "/a", true).ec);
  const auto before = tree.nodes();
  auto m = tree.multi(++zxid, t0, s1,
                      {op::make_set("/a", "2", 0), op::make_create("/b", ""), op::make_remove("/a", -1),
                       op::make_set("/a", "3", 99), op::make_remove("/b", -1)});
  EXPECT_EQ(m.ec, errc::no_node);  // the set of /a after its remove in the same multi
  ASSERT_EQ(m.results.size(), 5u);
  EXPECT_FALSE(m.results[0].ec);
  EXPECT_FALSE(m.results[1].ec);
  EXPECT_FALSE(m.results[2].ec);
  EXPECT_EQ(m.results[3].ec, errc::no_node);
  EXPECT_EQ(m.results[4].ec, errc::runtime_inconsistency);
  EXPECT_TRUE(m.events.empty());
  EXPECT_EQ(tree.nodes().size(), before.size());
  EXPECT_EQ(tree.get_data(s1, "/a", false).data, "");
  EXPECT_EQ(stat_of("/a").version, 0);
  EXPECT_EQ(tree.exists(s1, "/b", false).ec, errc::no_node);
  EXPECT_EQ(stat_of("/").cversion, -1 + 1);  // only /a's create counted
  EXPECT_TRUE(tree.has_data_watch(s2, "/a")) << "a failed multi fires no watch";
}

// ---- ephemerals ---------------------------------------------------------------------------

TEST_F(data_tree_test, close_session_removes_its_ephemerals_and_watches) {
  must_create("/p");
  must_create("/p/e1", {.mode = create_mode::ephemeral}, s1);
  must_create("/p/e2", {.mode = create_mode::ephemeral}, s1);
  must_create("/p/other", {.mode = create_mode::ephemeral}, s2);
  ASSERT_FALSE(tree.get_children(s2, "/p", true).ec);
  ASSERT_FALSE(tree.exists(s2, "/p/e2", true).ec);
  ASSERT_FALSE(tree.exists(s1, "/p/other", true).ec);
  EXPECT_EQ(tree.ephemerals(s1), (std::vector<std::string>{"/p/e1", "/p/e2"}));
  const std::int64_t z = ++zxid;
  auto events = tree.close_session(z, s1);
  EXPECT_EQ(events, (std::vector<ev>{{s2, {event_type::children_changed, "/p"}},
                                     {s2, {event_type::deleted, "/p/e2"}}}));
  EXPECT_TRUE(tree.ephemerals(s1).empty());
  EXPECT_EQ(tree.exists(s3, "/p/e1", false).ec, errc::no_node);
  EXPECT_FALSE(tree.exists(s3, "/p/other", false).ec);
  EXPECT_FALSE(tree.has_data_watch(s1, "/p/other"));
  EXPECT_EQ(stat_of("/p").pzxid, z);
  EXPECT_EQ(stat_of("/p").num_children, 1);
}

// ---- containers and TTL -------------------------------------------------------------------

TEST_F(data_tree_test, containers_are_reaped_once_their_last_child_goes) {
  must_create("/c", {.mode = create_mode::container});
  must_create("/unused", {.mode = create_mode::container});
  EXPECT_EQ(stat_of("/c").ephemeral_owner, 0);
  must_create("/c/a");
  EXPECT_TRUE(tree.reap_candidates(t0).empty());
  ASSERT_FALSE(tree.exists(s2, "/c", true).ec);
  ASSERT_FALSE(tree.remove(++zxid, s1, "/c/a", -1).ec);
  EXPECT_EQ(tree.reap_candidates(t0), std::vector<std::string>{"/c"});
  auto events = tree.reap([&] { return ++zxid; }, t0);
  EXPECT_EQ(events, (std::vector<ev>{{s2, {event_type::deleted, "/c"}}}));
  EXPECT_EQ(tree.exists(s1, "/c", false).ec, errc::no_node);
  EXPECT_FALSE(tree.exists(s1, "/unused", false).ec) << "a container never used is kept";
  EXPECT_EQ(stat_of("/").pzxid, zxid);
}

TEST_F(data_tree_test, ttl_nodes_are_reaped_when_unmodified_longer_than_the_ttl_and_childless) {
  const create_options ttl{.mode = create_mode::persistent_with_ttl, .ttl = 500ms};
  ASSERT_FALSE(create("/t", "", ttl, s1, t0).ec);
  ASSERT_FALSE(create("/tp", "", ttl, s1, t0).ec);
  EXPECT_EQ(stat_of("/t").ephemeral_owner, 0);
  must_create("/tp/child");
  EXPECT_TRUE(tree.reap_candidates(t0 + 500).empty()) << "elapsed must exceed the ttl";
  ASSERT_FALSE(tree.set_data(++zxid, t0 + 400, s1, "/t", "touch", -1).ec);
  EXPECT_TRUE(tree.reap_candidates(t0 + 900).empty()) << "a set restarts the ttl";
  EXPECT_EQ(tree.reap_candidates(t0 + 901), std::vector<std::string>{"/t"});
  (void)tree.reap([&] { return ++zxid; }, t0 + 901);
  EXPECT_EQ(tree.exists(s1, "/t", false).ec, errc::no_node);
  ASSERT_FALSE(tree.remove(++zxid, s1, "/tp/child", -1).ec);
  EXPECT_EQ(tree.reap_candidates(t0 + 901), std::vector<std::string>{"/tp"});
  auto seq = create("/s-", "", {.mode = create_mode::persistent_sequential_with_ttl, .ttl = 60s});
  EXPECT_EQ(seq.stat.ephemeral_owner, 0);
  EXPECT_EQ(tree.remove_container(++zxid, "/none").ec, errc::no_node);
}

// ---- watches ------------------------------------------------------------------------------

TEST_F(data_tree_test, exists_watch_on_a_missing_node_fires_created_once) {
  ASSERT_EQ(tree.exists(s1, "/later", true).ec, errc::no_node);
  auto r = create("/later", "", {}, s2);
  EXPECT_EQ(r.events, (std::vector<ev>{{s1, {event_type::created, "/later"}}}));
  EXPECT_TRUE(tree.remove(++zxid, s2, "/later", -1).events.empty()) << "one-shot";
}

TEST_F(data_tree_test, get_watch_fires_data_changed_on_set_and_deleted_on_remove) {
  must_create("/n");
  ASSERT_FALSE(tree.get_data(s1, "/n", true).ec);
  ASSERT_FALSE(tree.exists(s2, "/n", true).ec);
  auto set = tree.set_data(++zxid, t0, s3, "/n", "b", -1);
  EXPECT_EQ(set.events, (std::vector<ev>{{s1, {event_type::data_changed, "/n"}}, {s2, {event_type::data_changed, "/n"}}}));
  EXPECT_TRUE(tree.set_data(++zxid, t0, s3, "/n", "c", -1).events.empty()) << "one-shot";
  ASSERT_FALSE(tree.get_data(s1, "/n", true).ec);
  auto rm = tree.remove(++zxid, s3, "/n", -1);
  EXPECT_EQ(rm.events, (std::vector<ev>{{s1, {event_type::deleted, "/n"}}}));
  EXPECT_EQ(tree.watch_count(), 0u);
}

TEST_F(data_tree_test, child_watch_fires_on_child_create_child_delete_and_node_delete) {
  must_create("/p");
  ASSERT_FALSE(tree.get_children(s1, "/p", true).ec);
  EXPECT_EQ(create("/p/c", "", {}, s2).events, (std::vector<ev>{{s1, {event_type::children_changed, "/p"}}}));
  EXPECT_TRUE(tree.set_data(++zxid, t0, s2, "/p", "x", -1).events.empty()) << "a set fires no child watch";
  ASSERT_FALSE(tree.get_children(s1, "/p", true).ec);
  EXPECT_TRUE(tree.set_data(++zxid, t0, s2, "/p/c", "x", -1).events.empty());
  EXPECT_EQ(tree.remove(++zxid, s2, "/p/c", -1).events, (std::vector<ev>{{s1, {event_type::children_changed, "/p"}}}));
  ASSERT_FALSE(tree.get_children(s1, "/p", true).ec);
  EXPECT_EQ(tree.remove(++zxid, s2, "/p", -1).events, (std::vector<ev>{{s1, {event_type::deleted, "/p"}}}));
}

TEST_F(data_tree_test, delete_fires_node_then_parent_and_one_event_per_session) {
  must_create("/p");
  must_create("/p/c");
  ASSERT_FALSE(tree.get_data(s1, "/p/c", true).ec);
  ASSERT_FALSE(tree.get_children(s1, "/p/c", true).ec);  // same session: one deleted event
  ASSERT_FALSE(tree.get_children(s2, "/p/c", true).ec);
  ASSERT_FALSE(tree.get_children(s3, "/p", true).ec);
  ASSERT_FALSE(tree.exists(s3, "/p", true).ec);
  auto rm = tree.remove(++zxid, s1, "/p/c", -1);
  EXPECT_EQ(rm.events, (std::vector<ev>{{s1, {event_type::deleted, "/p/c"}},
                                        {s2, {event_type::deleted, "/p/c"}},
                                        {s3, {event_type::children_changed, "/p"}}}));
  EXPECT_TRUE(tree.has_data_watch(s3, "/p")) << "a child change does not fire the parent's data watch";
  EXPECT_FALSE(tree.has_child_watch(s1, "/p/c"));
}

TEST_F(data_tree_test, create_fires_exists_watch_and_parent_child_watch_in_that_order) {
  must_create("/a");
  ASSERT_EQ(tree.exists(s1, "/a/b", true).ec, errc::no_node);
  ASSERT_FALSE(tree.get_children(s1, "/a", true).ec);
  ASSERT_FALSE(tree.exists(s2, "/a", true).ec);
  auto r = create("/a/b");
  EXPECT_EQ(r.events, (std::vector<ev>{{s1, {event_type::created, "/a/b"}}, {s1, {event_type::children_changed, "/a"}}}));
  EXPECT_TRUE(tree.has_data_watch(s2, "/a"));
}

TEST_F(data_tree_test, failed_reads_set_no_watch_except_exists) {
  EXPECT_EQ(tree.get_data(s1, "/m", true).ec, errc::no_node);
  EXPECT_EQ(tree.get_children(s1, "/m", true).ec, errc::no_node);
  EXPECT_EQ(tree.watch_count(), 0u);
  ASSERT_FALSE(tree.add_auth(s2, "digest", "bob:pw"));
  ASSERT_FALSE(tree.create(++zxid, t0, s2, "/bob", "", {.acl = creator_all_acl()}).ec);
  EXPECT_EQ(tree.get_data(s1, "/bob", true).ec, errc::no_auth);
  EXPECT_EQ(tree.watch_count(), 0u);
  EXPECT_EQ(tree.exists(s1, "/m", true).ec, errc::no_node);
  EXPECT_TRUE(tree.has_data_watch(s1, "/m"));
  tree.remove_watches(s1);
  EXPECT_EQ(tree.watch_count(), 0u);
}

TEST_F(data_tree_test, set_acl_fires_no_watch) {
  must_create("/a");
  ASSERT_FALSE(tree.get_data(s1, "/a", true).ec);
  EXPECT_TRUE(tree.set_acl(++zxid, s1, "/a", read_acl_unsafe(), -1).events.empty());
  EXPECT_TRUE(tree.has_data_watch(s1, "/a"));
}

}  // namespace
}  // namespace zkr::sim
