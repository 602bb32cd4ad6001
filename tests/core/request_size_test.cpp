// Tests of zkr/request_size.hpp.
//
// Goal: the sizes equal the length field ZooKeeper's client writes (RequestHeader + body in
// jute's binary encoding), so check_request_size refuses exactly the requests a server with
// jute.maxbuffer = limit would drop.
// Method: sizes computed by hand, term by term, in the comments. Each expected number was
// also confirmed by serialising the same records with ZooKeeper 3.8's own jute classes
// (BinaryOutputArchive: RequestHeader + CreateRequest / CreateTTLRequest / SetDataRequest /
// SetACLRequest / MultiOperationRecord).

#include <zkr/request_size.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <limits>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;

// Term sizes used in the comments below:
//   header          xid 4 + type 4                                  = 8
//   "/a"            length 4 + 2 bytes                              = 6
//   "hello"         length 4 + 5 bytes                              = 9
//   open ACL list   count 4 + [perms 4 + "world" 4+5 + "anyone" 4+6] = 27
//   flags/version   4;  ttl 8;  MultiHeader type 4 + done 1 + err 4 = 9

TEST(request_size, create) {
  // 8 + 6 + 9 + 27 + 4
  EXPECT_EQ(zkr::create_request_size("/a", "hello", {}), 54u);
}

TEST(request_size, create_with_ttl_adds_a_long) {
  zkr::create_options ttl;
  ttl.mode = zkr::create_mode::persistent_with_ttl;
  ttl.ttl = 1000ms;
  EXPECT_EQ(zkr::create_request_size("/a", "hello", ttl), 62u);  // 54 + 8
  ttl.mode = zkr::create_mode::persistent_sequential_with_ttl;
  EXPECT_EQ(zkr::create_request_size("/a", "hello", ttl), 62u);
}

TEST(request_size, create_other_modes_share_create_request) {
  for (const zkr::create_mode m : {zkr::create_mode::persistent, zkr::create_mode::ephemeral,
                                   zkr::create_mode::persistent_sequential,
                                   zkr::create_mode::ephemeral_sequential, zkr::create_mode::container}) {
    zkr::create_options o;
    o.mode = m;
    EXPECT_EQ(zkr::create_request_size("/a", "hello", o), 54u) << static_cast<int>(m);
  }
}

TEST(request_size, create_empty_data_and_acl) {
  zkr::create_options o;
  o.acl.clear();
  // 8 + 6 + (4 + 0) + (4 + no ACLs) + 4
  EXPECT_EQ(zkr::create_request_size("/a", "", o), 26u);
}

TEST(request_size, create_several_acls) {
  zkr::create_options o;
  o.acl = zkr::creator_all_acl();                      // [4 + "auth" 4+4 + "" 4+0] = 16
  o.acl.push_back(zkr::read_acl_unsafe().front());     // [4 + "world" 9 + "anyone" 10] = 23
  // 8 + "/x/y" 8 + "abc" 7 + (4 + 16 + 23) + 4
  EXPECT_EQ(zkr::create_request_size("/x/y", "abc", o), 70u);
}

TEST(request_size, path_counts_utf8_bytes) {
  // "/\u00e9" is 3 bytes: 8 + 7 + "x" 5 + 27 + 4
  EXPECT_EQ(zkr::create_request_size("/\xC3\xA9", "x", {}), 51u);
}

TEST(request_size, set_data) {
  EXPECT_EQ(zkr::set_request_size("/a", "hello"), 27u);  // 8 + 6 + 9 + 4
  EXPECT_EQ(zkr::set_request_size("/a", ""), 22u);       // 8 + 6 + 4 + 4
}

TEST(request_size, set_acl) {
  EXPECT_EQ(zkr::set_acl_request_size("/a", zkr::open_acl_unsafe()), 45u);  // 8 + 6 + 27 + 4
  EXPECT_EQ(zkr::set_acl_request_size("/a", {}), 22u);                       // 8 + 6 + 4 + 4
}

TEST(request_size, multi_empty) {
  EXPECT_EQ(zkr::multi_request_size({}), 17u);  // 8 + closing MultiHeader 9
}

TEST(request_size, multi_each_kind) {
  const std::vector<zkr::op> ops = {
      zkr::op::make_create("/a", "hello"),  // 9 + (6 + 9 + 27 + 4) = 55
      zkr::op::make_remove("/b"),           // 9 + (6 + 4)          = 19
      zkr::op::make_set("/c", "xy"),        // 9 + (6 + 6 + 4)      = 25
      zkr::op::make_check("/d"),            // 9 + (6 + 4)          = 19
  };
  EXPECT_EQ(zkr::multi_request_size(ops), 135u);  // 8 + 55 + 19 + 25 + 19 + 9
}

TEST(request_size, multi_ttl_create_uses_create_ttl_request) {
  zkr::create_options ttl;
  ttl.mode = zkr::create_mode::persistent_with_ttl;
  ttl.ttl = 1000ms;
  zkr::create_options seq;
  seq.mode = zkr::create_mode::ephemeral_sequential;
  const std::vector<zkr::op> ops = {
      zkr::op::make_create("/t", "hello", ttl),  // 9 + (6 + 9 + 27 + 4 + 8) = 63
      zkr::op::make_create("/s-", "", seq),      // 9 + (7 + 4 + 27 + 4)     = 51
  };
  EXPECT_EQ(zkr::multi_request_size(ops), 131u);  // 8 + 63 + 51 + 9
}

TEST(request_size, multi_is_sum_of_parts) {
  // A multi of one op = the op alone - its RequestHeader is shared + two MultiHeaders.
  const std::string data(1000, 'x');
  EXPECT_EQ(zkr::multi_request_size({zkr::op::make_create("/n", data)}),
            zkr::create_request_size("/n", data, {}) + 9 + 9);
  EXPECT_EQ(zkr::multi_request_size({zkr::op::make_set("/n", data)}),
            zkr::set_request_size("/n", data) + 9 + 9);
}

TEST(request_size, check_against_limit) {
  EXPECT_FALSE(zkr::check_request_size(0, zkr::default_max_request_bytes));
  EXPECT_FALSE(zkr::check_request_size(0xfffff, zkr::default_max_request_bytes));  // equal is accepted
  EXPECT_EQ(zkr::check_request_size(0x100000, zkr::default_max_request_bytes), zkr::errc::data_too_large);
  EXPECT_EQ(zkr::check_request_size(11, 10), zkr::errc::data_too_large);
  EXPECT_FALSE(zkr::check_request_size(std::numeric_limits<std::size_t>::max(), 0));  // unchecked
  EXPECT_EQ(zkr::check_request_size(11, 10), std::errc::message_size);
  EXPECT_EQ(zkr::default_max_request_bytes, 1048575u);
}

TEST(request_size, largest_create_that_fits) {
  // Fixed part for "/a" with the open ACL: 8 + 6 + 4 + 27 + 4 = 49 bytes.
  const std::string fits(zkr::default_max_request_bytes - 49, 'x');
  const std::string too_big(zkr::default_max_request_bytes - 48, 'x');
  EXPECT_EQ(zkr::create_request_size("/a", fits, {}), zkr::default_max_request_bytes);
  EXPECT_FALSE(zkr::check_request_size(zkr::create_request_size("/a", fits, {}), zkr::default_max_request_bytes));
  EXPECT_EQ(zkr::check_request_size(zkr::create_request_size("/a", too_big, {}), zkr::default_max_request_bytes),
            zkr::errc::data_too_large);
}

}  // namespace
