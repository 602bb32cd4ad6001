// zkr/sim/detail/digest.hpp: SHA-1 and base64, just enough for ZooKeeper's digest
// authentication (DigestAuthenticationProvider): the id of credentials "user:password" is
// "user:" + base64(sha1("user:password")).
//
// Thread safety: pure functions.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace zkr::sim::detail {

/// SHA-1 (FIPS 180-4) of `message`. Never fails; throws only std::bad_alloc.
inline std::array<std::uint8_t, 20> sha1(std::string_view message) {
  std::uint32_t h[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u};
  std::string m(message);
  const std::uint64_t bits = static_cast<std::uint64_t>(m.size()) * 8u;
  m += '\x80';
  while (m.size() % 64 != 56) m += '\0';
  for (int i = 7; i >= 0; --i) m += static_cast<char>((bits >> (8 * i)) & 0xFFu);
  for (std::size_t block = 0; block < m.size(); block += 64) {
    std::uint32_t w[80];
    for (std::size_t i = 0; i < 16; ++i) {
      w[i] = 0;
      for (std::size_t j = 0; j < 4; ++j) {
        w[i] = (w[i] << 8) | static_cast<std::uint8_t>(m[block + 4 * i + j]);
      }
    }
    for (std::size_t i = 16; i < 80; ++i) w[i] = std::rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    std::uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (std::size_t i = 0; i < 80; ++i) {
      std::uint32_t f = 0, k = 0;
      if (i < 20) {
        f = (b & c) | (~b & d);
        k = 0x5A827999u;
      } else if (i < 40) {
        f = b ^ c ^ d;
        k = 0x6ED9EBA1u;
      } else if (i < 60) {
        f = (b & c) | (b & d) | (c & d);
        k = 0x8F1BBCDCu;
      } else {
        f = b ^ c ^ d;
        k = 0xCA62C1D6u;
      }
      const std::uint32_t t = std::rotl(a, 5) + f + e + k + w[i];
      e = d;
      d = c;
      c = std::rotl(b, 30);
      b = a;
      a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
  }
  std::array<std::uint8_t, 20> out{};
  for (std::size_t i = 0; i < 20; ++i) {
    out[i] = static_cast<std::uint8_t>(h[i / 4] >> (24 - 8 * (i % 4)));
  }
  return out;
}

/// Standard base64 (RFC 4648, with '=' padding) of `bytes`. Throws only std::bad_alloc.
inline std::string base64(const std::uint8_t* bytes, std::size_t n) {
  static constexpr char table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  for (std::size_t i = 0; i < n; i += 3) {
    std::uint32_t v = std::uint32_t{bytes[i]} << 16;
    if (i + 1 < n) v |= std::uint32_t{bytes[i + 1]} << 8;
    if (i + 2 < n) v |= bytes[i + 2];
    out += table[(v >> 18) & 63u];
    out += table[(v >> 12) & 63u];
    out += i + 1 < n ? table[(v >> 6) & 63u] : '=';
    out += i + 2 < n ? table[v & 63u] : '=';
  }
  return out;
}

inline std::string base64(std::string_view s) {
  return base64(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}

}  // namespace zkr::sim::detail

namespace zkr::sim {

/// The id ZooKeeper's digest provider gives credentials "user:password": the text before
/// the first ':' (the whole credential if there is none), then ':' and
/// base64(sha1(credential)). As Java's generateDigest; never fails (bad_alloc only).
inline std::string digest_id(std::string_view credential) {
  const std::size_t colon = credential.find(':');
  const auto hash = detail::sha1(credential);
  return std::string(credential.substr(0, colon)) + ":" + detail::base64(hash.data(), hash.size());
}

}  // namespace zkr::sim
