// Goal: the shared value types behave as documented: create-mode predicates match the wire
// flags, op factories fill the right fields, subscriptions unsubscribe exactly once.
#include <gtest/gtest.h>

#include <zkr/backend.hpp>
#include <zkr/op.hpp>
#include <zkr/types.hpp>

namespace zkr {
namespace {

TEST(types, create_mode_flags_match_the_wire_and_predicates) {
  EXPECT_EQ(static_cast<int>(create_mode::persistent), 0);
  EXPECT_EQ(static_cast<int>(create_mode::ephemeral_sequential), 3);
  EXPECT_EQ(static_cast<int>(create_mode::persistent_sequential_with_ttl), 6);
  EXPECT_TRUE(is_sequential(create_mode::persistent_sequential_with_ttl));
  EXPECT_FALSE(is_sequential(create_mode::container));
  EXPECT_TRUE(is_ephemeral(create_mode::ephemeral));
  EXPECT_FALSE(is_ephemeral(create_mode::persistent_with_ttl));
  EXPECT_TRUE(is_ttl(create_mode::persistent_with_ttl));
  EXPECT_FALSE(is_ttl(create_mode::ephemeral_sequential));
}

TEST(types, session_states_print_and_classify) {
  EXPECT_EQ(to_string(session_state::suspended), "suspended");
  EXPECT_TRUE(is_connected(session_state::reconnected));
  EXPECT_FALSE(is_connected(session_state::suspended));
  EXPECT_FALSE(is_connected(session_state::lost));
}

TEST(types, op_factories) {
  auto c = op::make_create("/a", "d", {.mode = create_mode::ephemeral});
  EXPECT_EQ(c.type, op::kind::create);
  EXPECT_EQ(c.create.mode, create_mode::ephemeral);
  EXPECT_EQ(c.data, "d");
  auto r = op::make_remove("/a", 3);
  EXPECT_EQ(r.type, op::kind::remove);
  EXPECT_EQ(r.version, 3);
  EXPECT_EQ(op::make_check("/a").version, -1);
  EXPECT_EQ(op::make_set("/a", "x", 2).data, "x");
}

TEST(types, subscription_cancels_once_on_reset_move_and_destruction) {
  int cancelled = 0;
  {
    subscription s([&] { ++cancelled; });
    subscription t = std::move(s);
    EXPECT_FALSE(s);
    EXPECT_TRUE(t);
    t.reset();
    t.reset();
    EXPECT_EQ(cancelled, 1);
    t = subscription([&] { ++cancelled; });
  }
  EXPECT_EQ(cancelled, 2);
}

TEST(types, default_acls) {
  EXPECT_EQ(open_acl_unsafe().at(0).perms, perms::all);
  EXPECT_EQ(open_acl_unsafe().at(0).scheme, "world");
  EXPECT_EQ(creator_all_acl().at(0).scheme, "auth");
  EXPECT_EQ(read_acl_unsafe().at(0).perms, perms::read);
}

}  // namespace
}  // namespace zkr
