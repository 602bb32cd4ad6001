// Tests of zkr/connect_string.hpp.
//
// Goal: parse_connect_string reads what ZooKeeper's ConnectStringParser reads (hosts, default
// port 2181, bracketed IPv6, chroot after the first '/'), refuses the mistakes it documents,
// leaves its output untouched on error, and to_string/apply_chroot/strip_chroot round-trip.
// Method: table tests; the accepted rows give the same hosts, ports and chroot as ZooKeeper
// 3.8's Java parser.

#include <zkr/connect_string.hpp>

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using zkr::connect_string;
using zkr::host_port;

connect_string parse_ok(const std::string& s) {
  connect_string cs;
  const std::error_code ec = zkr::parse_connect_string(s, cs);
  EXPECT_FALSE(ec) << '"' << s << "\": " << ec.message();
  return cs;
}

std::error_code parse_error(const std::string& s) {
  connect_string cs;
  return zkr::parse_connect_string(s, cs);
}

TEST(connect_string, single_host_default_port) {
  EXPECT_EQ(parse_ok("zk1"), (connect_string{{{"zk1", 2181}}, ""}));
  EXPECT_EQ(zkr::default_client_port, 2181);
}

TEST(connect_string, several_hosts_and_ports) {
  EXPECT_EQ(parse_ok("h1:2181,h2:2182,h3"),
            (connect_string{{{"h1", 2181}, {"h2", 2182}, {"h3", 2181}}, ""}));
  EXPECT_EQ(parse_ok("10.0.0.1:1,10.0.0.2:65535"),
            (connect_string{{{"10.0.0.1", 1}, {"10.0.0.2", 65535}}, ""}));
  EXPECT_EQ(parse_ok("h:02181"), (connect_string{{{"h", 2181}}, ""}));  // Integer.parseInt
}

TEST(connect_string, chroot) {
  EXPECT_EQ(parse_ok("h1:2181,h2:2182/app/root"),
            (connect_string{{{"h1", 2181}, {"h2", 2182}}, "/app/root"}));
  EXPECT_EQ(parse_ok("h1/app"), (connect_string{{{"h1", 2181}}, "/app"}));
  EXPECT_EQ(parse_ok("h1:2181/"), (connect_string{{{"h1", 2181}}, ""}));  // "/" = no chroot
}

TEST(connect_string, whitespace_around_hosts_is_trimmed) {
  EXPECT_EQ(parse_ok(" h1:2181 ,\th2:2182\n,  h3  "),
            (connect_string{{{"h1", 2181}, {"h2", 2182}, {"h3", 2181}}, ""}));
  EXPECT_EQ(parse_ok(" h1 /app"), (connect_string{{{"h1", 2181}}, "/app"}));
}

TEST(connect_string, ipv6) {
  EXPECT_EQ(parse_ok("[::1]:2181"), (connect_string{{{"::1", 2181}}, ""}));
  EXPECT_EQ(parse_ok("[::1]"), (connect_string{{{"::1", 2181}}, ""}));
  EXPECT_EQ(parse_ok("[2001:db8::1]:2888, [fe80::1%eth0]:3000/x"),
            (connect_string{{{"2001:db8::1", 2888}, {"fe80::1%eth0", 3000}}, "/x"}));
  // Unbracketed, the last ':' separates the port, as in Java.
  EXPECT_EQ(parse_ok("fe80::1:2181"), (connect_string{{{"fe80::1", 2181}}, ""}));
}

TEST(connect_string, invalid_argument_errors) {
  for (const char* s :
       {"", " ", ",", "h1,", ",h1", "h1,,h2", "h1, ,h2",   // empty string, host or entry
        ":2181", " :2181", "/app",                         // no host
        "h1:", "h1:0", "h1:65536", "h1:99999", "h1:4294967297", "h1:-1", "h1:+80", "h1:80a",
        "h1:8 0", "h1:2181x",                              // bad port
        "[::1", "[]:2181", "[]", "[::1]x", "[::1]:", "[::1]:0", "[::1]:70000",  // bad IPv6
        "h 1:2181", "h\x01:2181", "a]:1"}) {              // bad host characters
    EXPECT_EQ(parse_error(s), zkr::errc::invalid_argument) << '"' << s << '"';
  }
}

TEST(connect_string, invalid_chroot_is_invalid_path) {
  for (const char* s : {"h1/app/", "h1//app", "h1/app//x", "h1/app/../x", "h1/./x", "h1/app\x01",
                        "h1:2181/app/", "h1/\xC3"}) {
    EXPECT_EQ(parse_error(s), zkr::errc::invalid_path) << '"' << s << '"';
  }
}

TEST(connect_string, output_untouched_on_error) {
  connect_string cs{{{"keep", 1}}, "/keep"};
  const connect_string before = cs;
  EXPECT_TRUE(zkr::parse_connect_string("h1:0", cs));
  EXPECT_EQ(cs, before);
  EXPECT_TRUE(zkr::parse_connect_string("h1/bad/", cs));
  EXPECT_EQ(cs, before);
  EXPECT_FALSE(zkr::parse_connect_string("h2", cs));
  EXPECT_EQ(cs, (connect_string{{{"h2", 2181}}, ""}));
}

TEST(connect_string, to_string_is_canonical) {
  EXPECT_EQ(zkr::to_string(parse_ok("h1,h2:2182/app")), "h1:2181,h2:2182/app");
  EXPECT_EQ(zkr::to_string(parse_ok("[::1]")), "[::1]:2181");
  EXPECT_EQ(zkr::to_string(parse_ok(" fe80::1:2181 ")), "[fe80::1]:2181");
  EXPECT_EQ(zkr::to_string(parse_ok("h/")), "h:2181");
}

TEST(connect_string, to_string_round_trips) {
  for (const char* s : {"zk1", "h1:2181,h2:2182,h3/app/root", "[::1]:2181,[2001:db8::2]",
                        " a : ", "x:1,y:65535/a/b/c", "fe80::1:99"}) {
    connect_string first;
    if (zkr::parse_connect_string(s, first)) continue;  // only the valid ones round-trip
    connect_string second;
    ASSERT_FALSE(zkr::parse_connect_string(zkr::to_string(first), second)) << s;
    EXPECT_EQ(second, first) << s;
  }
}

// ---- chroot arithmetic -------------------------------------------------------------------

TEST(chroot, apply) {
  EXPECT_EQ(zkr::apply_chroot("", "/a"), "/a");
  EXPECT_EQ(zkr::apply_chroot("/", "/a"), "/a");
  EXPECT_EQ(zkr::apply_chroot("/app", "/"), "/app");
  EXPECT_EQ(zkr::apply_chroot("/app", "/a"), "/app/a");
  EXPECT_EQ(zkr::apply_chroot("/app/root", "/a/b"), "/app/root/a/b");
}

TEST(chroot, strip) {
  EXPECT_EQ(zkr::strip_chroot("", "/a"), "/a");
  EXPECT_EQ(zkr::strip_chroot("/", "/a"), "/a");
  EXPECT_EQ(zkr::strip_chroot("/app", "/app"), "/");
  EXPECT_EQ(zkr::strip_chroot("/app", "/app/a"), "/a");
  EXPECT_EQ(zkr::strip_chroot("/app/root", "/app/root/a/b"), "/a/b");
  // Not under the chroot: returned unchanged (never cut in the middle of a name).
  EXPECT_EQ(zkr::strip_chroot("/app", "/appx"), "/appx");
  EXPECT_EQ(zkr::strip_chroot("/app", "/other/a"), "/other/a");
  EXPECT_EQ(zkr::strip_chroot("/app", "/"), "/");
}

TEST(chroot, strip_undoes_apply) {
  for (const char* chroot : {"", "/", "/app", "/a/b/c"}) {
    for (const char* path : {"/", "/x", "/x/y", "/app", "/x-0000000001"}) {
      EXPECT_EQ(zkr::strip_chroot(chroot, zkr::apply_chroot(chroot, path)), path)
          << chroot << " " << path;
      EXPECT_FALSE(zkr::validate_path(zkr::apply_chroot(chroot, path))) << chroot << " " << path;
    }
  }
}

}  // namespace
