// Goal: digest authentication and ACLs through zkr's real backend: what add_auth does (and does
// not) check, the ACL the server stores for creator_all_acl, who gets no_auth for what, and
// set_acl's version check. Method: several sessions of the shared server with different
// credentials; the expected digest id "user:base64(sha1(user:password))" (ZooKeeper's
// DigestAuthenticationProvider) is computed here by a small SHA-1 and base64.
#include <array>
#include <bit>
#include <cstdint>
#include <string>
#include <string_view>

#include "fixture.hpp"

namespace zkr::test {
namespace {

std::array<std::uint8_t, 20> sha1(std::string_view message) {
  std::uint32_t h[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u};
  std::string m(message);
  const std::uint64_t bits = static_cast<std::uint64_t>(m.size()) * 8;
  m += '\x80';
  while (m.size() % 64 != 56) m += '\0';
  for (int i = 7; i >= 0; --i) m += static_cast<char>((bits >> (8 * i)) & 0xFF);
  for (std::size_t block = 0; block < m.size(); block += 64) {
    std::uint32_t w[80];
    for (int i = 0; i < 16; ++i) {
      w[i] = 0;
      for (int j = 0; j < 4; ++j) w[i] = (w[i] << 8) | static_cast<std::uint8_t>(m[block + 4 * i + j]);
    }
    for (int i = 16; i < 80; ++i) w[i] = std::rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    std::uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; ++i) {
      std::uint32_t f = 0, k = 0;
      if (i < 20) {
        f = (b & c) | (~b & d), k = 0x5A827999u;
      } else if (i < 40) {
        f = b ^ c ^ d, k = 0x6ED9EBA1u;
      } else if (i < 60) {
        f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDCu;
      } else {
        f = b ^ c ^ d, k = 0xCA62C1D6u;
      }
      const std::uint32_t t = std::rotl(a, 5) + f + e + k + w[i];
      e = d, d = c, c = std::rotl(b, 30), b = a, a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
  }
  std::array<std::uint8_t, 20> out{};
  for (int i = 0; i < 20; ++i) out[i] = static_cast<std::uint8_t>(h[i / 4] >> (24 - 8 * (i % 4)));
  return out;
}

template <std::size_t N>
std::string base64(const std::array<std::uint8_t, N>& in) {
  static constexpr char table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (std::size_t i = 0; i < N; i += 3) {
    std::uint32_t v = std::uint32_t{in[i]} << 16;
    if (i + 1 < N) v |= std::uint32_t{in[i + 1]} << 8;
    if (i + 2 < N) v |= in[i + 2];
    out += table[(v >> 18) & 63];
    out += table[(v >> 12) & 63];
    out += i + 1 < N ? table[(v >> 6) & 63] : '=';
    out += i + 2 < N ? table[v & 63] : '=';
  }
  return out;
}

/// The id ZooKeeper stores for digest credentials "user:password".
std::string digest_id(std::string_view user, std::string_view password) {
  return std::string(user) + ":" + base64(sha1(std::string(user) + ":" + std::string(password)));
}

TEST_F(zk_test, acl_sha1_and_base64_of_the_test_match_known_vectors) {
  EXPECT_EQ(base64(sha1("abc")), "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=");  // FIPS 180-1 vector a9993e36...
  EXPECT_EQ(base64(sha1("")), "2jmj7l5rSw0yVb/vlWAYkK/YBwk=");    // da39a3ee...
  EXPECT_EQ(digest_id("alice", "secret").size(), 6u + 28u);
}

/// Authenticates `a` as alice, then creates `p` with creator_all_acl and data "private".
void alice_creates(zkr::zookeeper::session& a, const std::string& p) {
  auto [ec] = await(a.async_add_auth("digest", "alice:secret", tok));
  ASSERT_FALSE(ec) << ec.message();
  auto [ec2, created, st] = await(a.async_create(p, "private", {.acl = creator_all_acl()}, tok));
  ASSERT_FALSE(ec2) << ec2.message();
}

TEST_F(zk_test, acl_creator_all_acl_is_stored_as_the_creators_digest_id) {
  const auto p = path("alice");
  auto& a = first();
  ASSERT_NO_FATAL_FAILURE(alice_creates(a, p));
  auto [ec, acls, st] = await(a.async_get_acl(p, tok));
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_EQ(acls.size(), 1u);
  EXPECT_EQ(acls[0], (acl{perms::all, "digest", digest_id("alice", "secret")}));
  EXPECT_EQ(st.aversion, 0);
  auto [ec2, data, st2] = await(a.async_get(p, tok));
  ASSERT_FALSE(ec2) << ec2.message();
  EXPECT_EQ(data, "private");
}

TEST_F(zk_test, acl_sessions_without_the_right_credentials_get_no_auth) {
  const auto p = path("alice");
  ASSERT_NO_FATAL_FAILURE(alice_creates(first(), p));

  auto& anonymous = open();
  EXPECT_EQ(std::get<0>(await(anonymous.async_get(p, tok))), errc::no_auth);
  EXPECT_EQ(std::get<0>(await(anonymous.async_set(p, "x", -1, tok))), errc::no_auth);
  EXPECT_EQ(std::get<0>(await(anonymous.async_get_children(p, tok))), errc::no_auth);
  EXPECT_EQ(std::get<0>(await(anonymous.async_create(p + "/c", "", {}, tok))), errc::no_auth);
  // exists checks no permission (anyone may learn that the node exists and its stat);
  // get_acl needs read or admin (ZooKeeper >= 3.6, ZOOKEEPER-1392).
  auto [ec0, st0] = await(anonymous.async_exists(p, tok));
  EXPECT_FALSE(ec0) << ec0.message();
  EXPECT_EQ(st0.data_length, 7);
  EXPECT_EQ(std::get<0>(await(anonymous.async_get_acl(p, tok))), errc::no_auth);

  auto& wrong = open();
  auto [ec] = await(wrong.async_add_auth("digest", "alice:wrong", tok));
  EXPECT_FALSE(ec) << "digest auth always succeeds, even with a wrong password: " << ec.message();
  EXPECT_EQ(wrong.state(), session_state::connected);
  EXPECT_EQ(std::get<0>(await(wrong.async_get(p, tok))), errc::no_auth);
  EXPECT_EQ(std::get<0>(await(wrong.async_set(p, "x", -1, tok))), errc::no_auth);

  auto& right = open();
  ASSERT_FALSE(std::get<0>(await(right.async_add_auth("digest", "alice:secret", tok))));
  auto [ec2, data, st] = await(right.async_get(p, tok));
  ASSERT_FALSE(ec2) << ec2.message();
  EXPECT_EQ(data, "private");
  EXPECT_FALSE(std::get<0>(await(right.async_set(p, "shared", 0, tok))));
}

TEST_F(zk_test, acl_set_acl_checks_the_aversion_and_takes_effect) {
  const auto p = path("alice");
  auto& a = first();
  ASSERT_NO_FATAL_FAILURE(alice_creates(a, p));
  EXPECT_EQ(std::get<0>(await(a.async_set_acl(p, read_acl_unsafe(), 1, tok))), errc::bad_version);
  auto [ec0, acls0, st0] = await(a.async_get_acl(p, tok));
  ASSERT_FALSE(ec0);
  EXPECT_EQ(st0.aversion, 0) << "a set_acl with a wrong version changed nothing";
  EXPECT_EQ(acls0.size(), 1u);

  ASSERT_FALSE(std::get<0>(await(a.async_set_acl(p, read_acl_unsafe(), st0.aversion, tok))));
  auto [ec1, acls1, st1] = await(a.async_get_acl(p, tok));
  ASSERT_FALSE(ec1);
  EXPECT_EQ(acls1, read_acl_unsafe());
  EXPECT_EQ(st1.aversion, 1);
  EXPECT_EQ(st1.version, 0) << "an ACL change is not a data change";

  auto& anonymous = open();
  auto [ec2, data, st2] = await(anonymous.async_get(p, tok));
  ASSERT_FALSE(ec2) << ec2.message();
  EXPECT_EQ(data, "private");
  EXPECT_EQ(std::get<0>(await(anonymous.async_set(p, "x", -1, tok))), errc::no_auth);
  auto [ec3, acls3, st3] = await(anonymous.async_get_acl(p, tok));  // read suffices for get_acl
  ASSERT_FALSE(ec3) << ec3.message();
  EXPECT_EQ(acls3, read_acl_unsafe());
  // The ACL no longer names alice: she has lost write and admin too.
  EXPECT_EQ(std::get<0>(await(a.async_set(p, "x", -1, tok))), errc::no_auth);
  EXPECT_EQ(std::get<0>(await(a.async_set_acl(p, open_acl_unsafe(), -1, tok))), errc::no_auth);
}

TEST_F(zk_test, acl_creator_all_acl_without_auth_is_an_invalid_acl) {
  auto& s = first();
  auto [ec, created, st] = await(s.async_create(path("nobody"), "", {.acl = creator_all_acl()}, tok));
  EXPECT_EQ(ec, errc::invalid_acl) << ec.message();
  EXPECT_EQ(std::get<0>(await(s.async_exists(path("nobody"), tok))), errc::no_node);
  // An empty ACL is refused the same way.
  EXPECT_EQ(std::get<0>(await(s.async_create(path("empty"), "", {.acl = {}}, tok))), errc::invalid_acl);
}

}  // namespace
}  // namespace zkr::test
