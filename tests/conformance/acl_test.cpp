// Goal: digest authentication and ACLs, alike on real ZooKeeper and on the simulator: what
// add_auth does (and does not) check, the ACL the server stores for creator_all_acl, which
// permission each operation needs and who gets no_auth, which ACLs are invalid, and set_acl's
// version check. Method: the typed fixture (fixture.hpp); several sessions with different
// credentials; the expected digest id "user:base64(sha1(user:password))" (ZooKeeper's
// DigestAuthenticationProvider) is computed here by a small SHA-1 and base64.
#include <array>
#include <bit>
#include <cstdint>
#include <string>
#include <string_view>

#include "fixture.hpp"

namespace zkr::conformance {
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

template <class B>
class acls : public fixture<B> {
 protected:
  /// Authenticates `a` as alice, then creates `p` with creator_all_acl and data "private".
  void alice_creates(typename B::session& a, const std::string& p) {
    auto ec = this->err(a.async_add_auth("digest", "alice:secret", tok));
    ASSERT_FALSE(ec) << ec.message();
    auto ec2 = this->err(a.async_create(p, "private", {.acl = creator_all_acl()}, tok));
    ASSERT_FALSE(ec2) << ec2.message();
  }
};
TYPED_TEST_SUITE(acls, backends, backend_names);

TYPED_TEST(acls, sha1_and_base64_of_the_test_match_known_vectors) {
  EXPECT_EQ(base64(sha1("abc")), "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=");  // FIPS 180-1 vector a9993e36...
  EXPECT_EQ(base64(sha1("")), "2jmj7l5rSw0yVb/vlWAYkK/YBwk=");    // da39a3ee...
  EXPECT_EQ(digest_id("alice", "secret").size(), 6u + 28u);
}

TYPED_TEST(acls, creator_all_acl_is_stored_as_the_creators_digest_id) {
  auto& t = *this;
  const auto p = t.path("alice");
  auto& a = t.first();
  ASSERT_NO_FATAL_FAILURE(t.alice_creates(a, p));
  auto [ec, acls, st] = t.await(a.async_get_acl(p, tok));
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_EQ(acls.size(), 1u);
  EXPECT_EQ(acls[0], (acl{perms::all, "digest", digest_id("alice", "secret")}));
  EXPECT_EQ(st.aversion, 0);
  auto [ec2, data, st2] = t.await(a.async_get(p, tok));
  ASSERT_FALSE(ec2) << ec2.message();
  EXPECT_EQ(data, "private");
  EXPECT_EQ(st2, st);
}

TYPED_TEST(acls, creator_all_acl_names_every_identity_of_the_session) {
  auto& t = *this;
  auto& s = t.first();
  ASSERT_FALSE(t.err(s.async_add_auth("digest", "alice:secret", tok)));
  ASSERT_FALSE(t.err(s.async_add_auth("digest", "bob:pw", tok)));
  ASSERT_FALSE(t.err(s.async_add_auth("digest", "alice:secret", tok)));  // the same identity again
  const auto p = t.path("both");
  ASSERT_FALSE(t.err(s.async_create(p, "", {.acl = creator_all_acl()}, tok)));
  auto [ec, acls, st] = t.await(s.async_get_acl(p, tok));
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(acls, (acl_list{{perms::all, "digest", digest_id("alice", "secret")},
                            {perms::all, "digest", digest_id("bob", "pw")}}));
  // Either identity alone opens it.
  auto& bob = t.open();
  ASSERT_FALSE(t.err(bob.async_add_auth("digest", "bob:pw", tok)));
  EXPECT_FALSE(t.err(bob.async_get(p, tok)));
}

TYPED_TEST(acls, sessions_without_the_right_credentials_get_no_auth) {
  auto& t = *this;
  const auto p = t.path("alice");
  ASSERT_NO_FATAL_FAILURE(t.alice_creates(t.first(), p));

  auto& anonymous = t.open();
  EXPECT_EQ(t.err(anonymous.async_get(p, tok)), errc::no_auth);
  EXPECT_EQ(t.err(anonymous.async_set(p, "x", -1, tok)), errc::no_auth);
  EXPECT_EQ(t.err(anonymous.async_get_children(p, tok)), errc::no_auth);
  EXPECT_EQ(t.err(anonymous.async_create(p + "/c", "", {}, tok)), errc::no_auth);
  EXPECT_EQ(t.err(anonymous.async_set_acl(p, open_acl_unsafe(), -1, tok)), errc::no_auth);
  EXPECT_EQ(t.err(anonymous.async_multi({op::make_set(p, "x")}, tok)), errc::no_auth);
  // exists checks no permission (anyone may learn that the node exists and its stat);
  // get_acl needs read or admin (ZooKeeper >= 3.6, ZOOKEEPER-1392).
  auto [ec0, st0] = t.await(anonymous.async_exists(p, tok));
  EXPECT_FALSE(ec0) << ec0.message();
  EXPECT_EQ(st0.data_length, 7);
  EXPECT_EQ(t.err(anonymous.async_get_acl(p, tok)), errc::no_auth);
  // Removing the node needs the delete permission on its parent (open), not on the node.
  auto& wrong = t.open();
  auto ec = t.err(wrong.async_add_auth("digest", "alice:wrong", tok));
  EXPECT_FALSE(ec) << "digest auth always succeeds, even with a wrong password: " << ec.message();
  EXPECT_EQ(wrong.state(), session_state::connected);
  EXPECT_EQ(t.err(wrong.async_get(p, tok)), errc::no_auth);
  EXPECT_EQ(t.err(wrong.async_set(p, "x", -1, tok)), errc::no_auth);

  auto& right = t.open();
  ASSERT_FALSE(t.err(right.async_add_auth("digest", "alice:secret", tok)));
  auto [ec2, data, st] = t.await(right.async_get(p, tok));
  ASSERT_FALSE(ec2) << ec2.message();
  EXPECT_EQ(data, "private");
  EXPECT_FALSE(t.err(right.async_set(p, "shared", 0, tok)));
  EXPECT_FALSE(t.err(anonymous.async_remove(p, -1, tok)))
      << "delete is checked against the parent's ACL (world:anyone here), not the node's";
}

TYPED_TEST(acls, each_operation_needs_its_own_permission) {
  auto& t = *this;
  auto& s = t.first();
  auto& other = t.open();  // anonymous: world:anyone only
  ASSERT_FALSE(t.err(s.async_add_auth("digest", "owner:pw", tok)));
  const acl owner{perms::all, "digest", digest_id("owner", "pw")};
  const auto p = t.path("p");
  ASSERT_FALSE(t.err(s.async_create(p, "d", {}, tok)));
  ASSERT_FALSE(t.err(s.async_create(p + "/old", "", {}, tok)));
  // Everything but create and delete (of children).
  ASSERT_FALSE(t.err(s.async_set_acl(p, {owner, {perms::read | perms::write | perms::admin, "world", "anyone"}}, -1, tok)));
  EXPECT_EQ(t.err(other.async_create(p + "/new", "", {}, tok)), errc::no_auth);
  EXPECT_EQ(t.err(other.async_remove(p + "/old", -1, tok)), errc::no_auth);
  EXPECT_FALSE(t.err(other.async_get(p, tok)));
  EXPECT_FALSE(t.err(other.async_get_children(p, tok)));
  EXPECT_FALSE(t.err(other.async_set(p, "e", -1, tok)));
  // Create and delete only.
  ASSERT_FALSE(t.err(s.async_set_acl(p, {owner, {perms::create | perms::remove, "world", "anyone"}}, -1, tok)));
  EXPECT_EQ(t.err(other.async_get(p, tok)), errc::no_auth);
  EXPECT_EQ(t.err(other.async_get_children(p, tok)), errc::no_auth);
  EXPECT_EQ(t.err(other.async_set(p, "f", -1, tok)), errc::no_auth);
  EXPECT_EQ(t.err(other.async_get_acl(p, tok)), errc::no_auth);
  EXPECT_EQ(t.err(other.async_set_acl(p, open_acl_unsafe(), -1, tok)), errc::no_auth);
  EXPECT_FALSE(t.err(other.async_create(p + "/new", "", {}, tok)));
  EXPECT_FALSE(t.err(other.async_remove(p + "/old", -1, tok)));
  // Admin alone: get_acl and set_acl.
  ASSERT_FALSE(t.err(s.async_set_acl(p, {owner, {perms::admin, "world", "anyone"}}, -1, tok)));
  EXPECT_EQ(t.err(other.async_get(p, tok)), errc::no_auth);
  auto [ec, acls, st] = t.await(other.async_get_acl(p, tok));
  EXPECT_FALSE(ec) << "admin suffices for get_acl: " << ec.message();
  EXPECT_EQ(acls, (acl_list{owner, {perms::admin, "world", "anyone"}}));
  EXPECT_EQ(st.aversion, 3);
  EXPECT_FALSE(t.err(other.async_set_acl(p, open_acl_unsafe(), 3, tok)));
  auto [ec2, data, st2] = t.await(other.async_get(p, tok));
  ASSERT_FALSE(ec2);
  EXPECT_EQ(data, "e");
  EXPECT_EQ(st2.aversion, 4);
  EXPECT_EQ(st2.version, 1);
  EXPECT_EQ(st2.cversion, 3);
}

TYPED_TEST(acls, an_explicit_digest_acl_lets_that_identity_in) {
  auto& t = *this;
  auto& s = t.first();
  const auto p = t.path("for-bob");
  ASSERT_FALSE(t.err(s.async_create(p, "hi", {.acl = {{perms::read, "digest", digest_id("bob", "pw")}}}, tok)))
      << "the creator needs no credentials to give a node to someone else";
  EXPECT_EQ(t.err(s.async_get(p, tok)), errc::no_auth);
  auto& bob = t.open();
  ASSERT_FALSE(t.err(bob.async_add_auth("digest", "bob:pw", tok)));
  auto [ec, data, st] = t.await(bob.async_get(p, tok));
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(data, "hi");
  EXPECT_EQ(t.err(bob.async_set(p, "x", -1, tok)), errc::no_auth) << "read only";
}

TYPED_TEST(acls, set_acl_checks_the_aversion_and_takes_effect) {
  auto& t = *this;
  const auto p = t.path("alice");
  auto& a = t.first();
  ASSERT_NO_FATAL_FAILURE(t.alice_creates(a, p));
  EXPECT_EQ(t.err(a.async_set_acl(p, read_acl_unsafe(), 1, tok)), errc::bad_version);
  auto [ec0, acls0, st0] = t.await(a.async_get_acl(p, tok));
  ASSERT_FALSE(ec0);
  EXPECT_EQ(st0.aversion, 0) << "a set_acl with a wrong version changed nothing";
  EXPECT_EQ(acls0.size(), 1u);

  ASSERT_FALSE(t.err(a.async_set_acl(p, read_acl_unsafe(), st0.aversion, tok)));
  auto [ec1, acls1, st1] = t.await(a.async_get_acl(p, tok));
  ASSERT_FALSE(ec1);
  EXPECT_EQ(acls1, read_acl_unsafe());
  EXPECT_EQ(st1.aversion, 1);
  EXPECT_EQ(st1.version, 0) << "an ACL change is not a data change";
  EXPECT_EQ(st1.mzxid, st0.mzxid) << "an ACL change leaves mzxid alone";
  EXPECT_EQ(st1.mtime, st0.mtime);

  auto& anonymous = t.open();
  auto [ec2, data, st2] = t.await(anonymous.async_get(p, tok));
  ASSERT_FALSE(ec2) << ec2.message();
  EXPECT_EQ(data, "private");
  EXPECT_EQ(t.err(anonymous.async_set(p, "x", -1, tok)), errc::no_auth);
  auto [ec3, acls3, st3] = t.await(anonymous.async_get_acl(p, tok));  // read suffices for get_acl
  ASSERT_FALSE(ec3) << ec3.message();
  EXPECT_EQ(acls3, read_acl_unsafe());
  // The ACL no longer names alice: she has lost write and admin too.
  EXPECT_EQ(t.err(a.async_set(p, "x", -1, tok)), errc::no_auth);
  EXPECT_EQ(t.err(a.async_set_acl(p, open_acl_unsafe(), -1, tok)), errc::no_auth);
}

TYPED_TEST(acls, invalid_acls_are_refused) {
  auto& t = *this;
  auto& s = t.first();
  auto [ec, created, st] = t.await(s.async_create(t.path("nobody"), "", {.acl = creator_all_acl()}, tok));
  EXPECT_EQ(ec, errc::invalid_acl) << "creator_all_acl without credentials: " << ec.message();
  EXPECT_EQ(t.err(s.async_exists(t.path("nobody"), tok)), errc::no_node);
  EXPECT_EQ(t.err(s.async_create(t.path("empty"), "", {.acl = {}}, tok)), errc::invalid_acl);
  EXPECT_EQ(t.err(s.async_create(t.path("scheme"), "", {.acl = {{perms::all, "nosuchscheme", "x"}}}, tok)),
            errc::invalid_acl);
  EXPECT_EQ(t.err(s.async_create(t.path("digest"), "", {.acl = {{perms::all, "digest", "no-colon"}}}, tok)),
            errc::invalid_acl);
  EXPECT_EQ(t.err(s.async_create(t.path("world"), "", {.acl = {{perms::all, "world", "someone"}}}, tok)),
            errc::invalid_acl);
  ASSERT_FALSE(t.err(s.async_create(t.path("ok"), "", {}, tok)));
  EXPECT_EQ(t.err(s.async_set_acl(t.path("ok"), {}, -1, tok)), errc::invalid_acl);
  EXPECT_EQ(t.err(s.async_set_acl(t.path("ok"), creator_all_acl(), -1, tok)), errc::invalid_acl);
  auto [ec2, acls, st2] = t.await(s.async_get_acl(t.path("ok"), tok));
  ASSERT_FALSE(ec2);
  EXPECT_EQ(acls, open_acl_unsafe());
  EXPECT_EQ(st2.aversion, 0);
}

}  // namespace
}  // namespace zkr::conformance
