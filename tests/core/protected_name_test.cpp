// Goal: the naming rules the sequential recipes share with Curator: UUIDs of the right form,
// protected prefixes, ordering by the signed sequence suffix only, and finding our node.
// Method: table-driven checks, plus a property check over many drawn UUIDs.
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <zkr/recipes/protected_name.hpp>

namespace zkr::recipes {
namespace {

TEST(protected_name, uuids_are_version_4_lower_case_and_replay_from_the_seed) {
  prng a(7), b(7);
  std::set<std::string> seen;
  for (int i = 0; i < 2000; ++i) {
    const auto u = make_uuid(a);
    ASSERT_EQ(u, make_uuid(b));
    ASSERT_EQ(u.size(), 36u);
    for (std::size_t k : {8u, 13u, 18u, 23u}) ASSERT_EQ(u[k], '-') << u;
    ASSERT_EQ(u[14], '4') << u;
    ASSERT_TRUE(u[19] == '8' || u[19] == '9' || u[19] == 'a' || u[19] == 'b') << u;
    for (char c : u) ASSERT_TRUE(c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << u;
    seen.insert(u);
  }
  EXPECT_EQ(seen.size(), 2000u);
}

TEST(protected_name, prefix_has_curators_form) {
  prng r(1);
  const auto p = make_protected_prefix(r);
  EXPECT_EQ(p.substr(0, 3), "_c_");
  EXPECT_EQ(p.back(), '-');
  EXPECT_EQ(p.size(), 3u + 36u + 1u);
  EXPECT_TRUE(has_prefix(p + "lock-0000000001", p));
  EXPECT_FALSE(has_prefix("lock-0000000001", p));
}

TEST(protected_name, sequence_is_the_signed_ten_characters_after_the_last_marker) {
  EXPECT_EQ(sequence_of("_c_0b6b1a2e-1234-4abc-8def-0123456789ab-lock-0000000007", "lock-"), 7);
  EXPECT_EQ(sequence_of("lock-0000000000", "lock-"), 0);
  EXPECT_EQ(sequence_of("lock-2147483647", "lock-"), 2147483647);
  EXPECT_EQ(sequence_of("lock--000000001", "lock-"), -1);  // %010d of -1 after the wrap
  EXPECT_EQ(sequence_of("lock--2147483648", "lock-"), -2147483648LL);  // %010d: 11 characters
  EXPECT_EQ(sequence_of("lock-12147483648", "lock-"), std::nullopt);
  EXPECT_EQ(sequence_of("lock-000000001", "lock-"), std::nullopt);    // 9
  EXPECT_EQ(sequence_of("lock-00000000x1", "lock-"), std::nullopt);
  EXPECT_EQ(sequence_of("latch-0000000001", "lock-"), std::nullopt);
  EXPECT_EQ(sequence_of("my-lock-thing-lock-0000000003", "lock-"), 3);
}

TEST(protected_name, contenders_sort_by_sequence_never_by_name_and_strangers_are_ignored) {
  const std::vector<std::string> children{"_c_ffff-lock-0000000002", "_c_0000-lock-0000000010", "lock-0000000001",
                                          "readme",                  "_c_aaaa-latch-0000000000", "_c_1111-lock--000000005"};
  EXPECT_EQ(sorted_contenders(children, "lock-"),
            (std::vector<std::string>{"_c_1111-lock--000000005", "lock-0000000001", "_c_ffff-lock-0000000002",
                                      "_c_0000-lock-0000000010"}));
  EXPECT_EQ(sorted_contenders(children, "latch-"), (std::vector<std::string>{"_c_aaaa-latch-0000000000"}));
}

TEST(protected_name, our_node_is_found_by_its_prefix) {
  const std::vector<std::string> children{"_c_aaaa-lock-0000000001", "_c_bbbb-lock-0000000002", "_c_aaaa-latch-0000000009"};
  EXPECT_EQ(find_protected(children, "_c_aaaa-", "lock-"), "_c_aaaa-lock-0000000001");
  EXPECT_EQ(find_protected(children, "_c_cccc-", "lock-"), std::nullopt);
  EXPECT_EQ(find_protected(children, "_c_aaaa-", "latch-"), "_c_aaaa-latch-0000000009");
}

}  // namespace
}  // namespace zkr::recipes
