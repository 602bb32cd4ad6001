// Goal: sessions whose connect string carries a chroot ("hosts/some/root") see a tree rooted
// there, alike on real ZooKeeper and on the simulator: every path they send and every path
// they get back (created names, sequential names, multi results, watch events, children of
// "/") is relative to the chroot, while an ordinary session sees the same nodes under the
// chroot's full path; and what happens with a chroot that does not exist yet.
// Method: the typed fixture (fixture.hpp); the per-test root is the chroot, created by the
// fixture's first session before the chrooted one is opened.
#include <algorithm>
#include <string>
#include <vector>

#include "fixture.hpp"

namespace zkr::conformance {
namespace {

template <class B>
class chroots : public fixture<B> {};
TYPED_TEST_SUITE(chroots, backends, backend_names);

TYPED_TEST(chroots, paths_are_relative_to_the_chroot_both_ways) {
  auto& t = *this;
  auto& plain = t.first();
  auto& jailed = t.open({.chroot = t.root_});
  auto [ec, created, st] = t.await(jailed.async_create("/x", "in-jail", {}, tok));
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(created, "/x");

  auto [ec2, data, st2] = t.await(plain.async_get(t.root_ + "/x", tok));
  ASSERT_FALSE(ec2) << "the plain session sees the node under the chroot: " << ec2.message();
  EXPECT_EQ(data, "in-jail");
  EXPECT_EQ(st2, st);

  ASSERT_FALSE(t.err(plain.async_set(t.root_ + "/x", "changed", -1, tok)));
  auto [ec3, data3, st3] = t.await(jailed.async_get("/x", tok));
  ASSERT_FALSE(ec3);
  EXPECT_EQ(data3, "changed");
  // The chroot's own full path means something else inside it.
  EXPECT_EQ(t.err(jailed.async_exists(t.root_, tok)), errc::no_node);
  // "/" is the chroot itself.
  auto [ec4, st4] = t.await(jailed.async_exists("/", tok));
  ASSERT_FALSE(ec4);
  auto [ec5, st5] = t.await(plain.async_exists(t.root_, tok));
  ASSERT_FALSE(ec5);
  EXPECT_EQ(st4, st5);
  // Every other operation too.
  ASSERT_FALSE(t.err(jailed.async_set_acl("/x", read_acl_unsafe(), -1, tok)));
  auto [ec6, acls, st6] = t.await(plain.async_get_acl(t.root_ + "/x", tok));
  ASSERT_FALSE(ec6);
  EXPECT_EQ(acls, read_acl_unsafe());
  ASSERT_FALSE(t.err(jailed.async_sync("/x", tok)));
  ASSERT_FALSE(t.err(jailed.async_remove("/x", -1, tok)));
  EXPECT_EQ(t.err(plain.async_exists(t.root_ + "/x", tok)), errc::no_node);
}

TYPED_TEST(chroots, sequential_create_returns_a_chroot_relative_name) {
  auto& t = *this;
  auto& jailed = t.open({.chroot = t.root_});
  auto [ec, created, st] = t.await(jailed.async_create("/seq-", "", {.mode = create_mode::persistent_sequential}, tok));
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(created, "/seq-0000000000");
  auto [ec2, created2, st2] =
      t.await(jailed.async_create("/eph-", "", {.mode = create_mode::ephemeral_sequential}, tok));
  ASSERT_FALSE(ec2) << ec2.message();
  EXPECT_EQ(created2, "/eph-0000000001");
  EXPECT_EQ(st2.ephemeral_owner, jailed.session_id());
  EXPECT_FALSE(t.err(t.first().async_exists(t.root_ + "/seq-0000000000", tok)));
  EXPECT_FALSE(t.err(t.first().async_exists(t.root_ + "/eph-0000000001", tok)));
  // A sequential create of "/" itself is refused before it is sent: the C client would make
  // it a sibling of the chroot.
  EXPECT_EQ(t.err(jailed.async_create("/", "", {.mode = create_mode::persistent_sequential}, tok)),
            errc::invalid_path);
}

TYPED_TEST(chroots, watch_event_paths_are_chroot_relative) {
  auto& t = *this;
  auto& plain = t.first();
  auto& jailed = t.open({.chroot = t.root_});
  auto& log = t.new_watch_log();
  ASSERT_EQ(t.err(jailed.async_exists("/w", log.handler(1), tok)), errc::no_node);
  ASSERT_FALSE(t.err(jailed.async_get_children("/", log.handler(2), tok)));
  ASSERT_FALSE(t.err(plain.async_create(t.root_ + "/w", "", {}, tok)));
  ASSERT_TRUE(t.wait_watches(log, 2));
  ASSERT_FALSE(t.err(jailed.async_get("/w", log.handler(3), tok)));
  ASSERT_FALSE(t.err(plain.async_remove(t.root_ + "/w", -1, tok)));
  ASSERT_TRUE(t.wait_watches(log, 3));
  const auto items = log.items();
  ASSERT_EQ(items.size(), 3u);
  for (const auto& r : items) {
    EXPECT_FALSE(r.ec) << r.ec.message();
    switch (r.id) {
      case 1: EXPECT_EQ(r.event, (watch_event{event_type::created, "/w"})); break;
      case 2: EXPECT_EQ(r.event, (watch_event{event_type::children_changed, "/"})); break;
      case 3: EXPECT_EQ(r.event, (watch_event{event_type::deleted, "/w"})); break;
      default: ADD_FAILURE() << "unexpected watch " << r.id;
    }
  }
}

TYPED_TEST(chroots, children_of_root_are_the_chroots_children) {
  auto& t = *this;
  auto& plain = t.first();
  for (const char* n : {"a", "b"}) ASSERT_FALSE(t.err(plain.async_create(t.path(n), "", {}, tok)));
  auto& jailed = t.open({.chroot = t.root_});
  ASSERT_FALSE(t.err(jailed.async_create("/c", "", {}, tok)));
  ASSERT_FALSE(t.err(jailed.async_create("/c/d", "", {}, tok)));
  auto [ec, children, st] = t.await(jailed.async_get_children("/", tok));
  ASSERT_FALSE(ec) << ec.message();
  std::sort(children.begin(), children.end());
  EXPECT_EQ(children, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(st.num_children, 3);
  auto [ec2, grandchildren, st2] = t.await(jailed.async_get_children("/c", tok));
  ASSERT_FALSE(ec2);
  EXPECT_EQ(grandchildren, std::vector<std::string>{"d"});
}

TYPED_TEST(chroots, multi_results_are_chroot_relative) {
  auto& t = *this;
  auto& jailed = t.open({.chroot = t.root_});
  auto [ec, results] = t.await(jailed.async_multi(
      {op::make_create("/m", "1"), op::make_create("/m/seq-", "", {.mode = create_mode::persistent_sequential}),
       op::make_set("/m", "2", 0), op::make_check("/m", 1)},
      tok));
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_EQ(results.size(), 4u);
  for (const auto& r : results) EXPECT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(results[0].path, "/m");
  EXPECT_EQ(results[1].path, "/m/seq-0000000000");
  EXPECT_EQ(results[2].stat.version, 1);
  auto [ec2, data, st] = t.await(t.first().async_get(t.root_ + "/m", tok));
  ASSERT_FALSE(ec2);
  EXPECT_EQ(data, "2");
  EXPECT_EQ(results[2].stat, st);
  EXPECT_FALSE(t.err(t.first().async_exists(t.root_ + "/m/seq-0000000000", tok)));

  // A failing multi under the chroot: per-op errors, nothing applied.
  auto [ec3, r3] = t.await(jailed.async_multi({op::make_create("/n", ""), op::make_remove("/absent")}, tok));
  EXPECT_EQ(ec3, errc::no_node);
  ASSERT_EQ(r3.size(), 2u);
  EXPECT_FALSE(r3[0].ec);
  EXPECT_EQ(r3[1].ec, errc::no_node);
  EXPECT_EQ(t.err(t.first().async_exists(t.root_ + "/n", tok)), errc::no_node);
}

TYPED_TEST(chroots, that_does_not_exist_yet_connects_and_fails_with_no_node) {
  // The server does not check the chroot at connect time: the session connects, and every
  // operation resolves its path under the missing chroot, so it fails with no_node (a create
  // because its parent is missing). Once the chroot exists, the same session works.
  auto& t = *this;
  const std::string chroot = t.path("later");
  auto& jailed = t.open({.chroot = chroot});
  ASSERT_EQ(jailed.state(), session_state::connected);
  EXPECT_EQ(t.err(jailed.async_exists("/", tok)), errc::no_node);
  EXPECT_EQ(t.err(jailed.async_get("/", tok)), errc::no_node);
  EXPECT_EQ(t.err(jailed.async_get_children("/", tok)), errc::no_node);
  EXPECT_EQ(t.err(jailed.async_create("/x", "", {}, tok)), errc::no_node);
  EXPECT_EQ(t.err(jailed.async_set("/", "", -1, tok)), errc::no_node);
  auto& log = t.new_watch_log();  // an exists-watch on the chroot itself fires when it is created
  EXPECT_EQ(t.err(jailed.async_exists("/", log.handler(1), tok)), errc::no_node);

  ASSERT_FALSE(t.err(t.first().async_create(chroot, "", {}, tok)));
  ASSERT_TRUE(t.wait_watches(log, 1));
  EXPECT_FALSE(log.items()[0].ec);
  EXPECT_EQ(log.items()[0].event, (watch_event{event_type::created, "/"}));
  auto [ec, created, st] = t.await(jailed.async_create("/x", "", {}, tok));
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(created, "/x");
  EXPECT_FALSE(t.err(t.first().async_exists(chroot + "/x", tok)));
}

}  // namespace
}  // namespace zkr::conformance
