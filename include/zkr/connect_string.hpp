// zkr/connect_string.hpp: ZooKeeper connect strings ("h1:2181,h2:2182/app/root") and the
// chroot path arithmetic a client applies to every path it sends and receives.
//
// The syntax follows ZooKeeper's ConnectStringParser: everything from the first '/' on is
// the chroot; the rest is a comma-separated host list, each "host", "host:port",
// "[ipv6]" or "[ipv6]:port", with surrounding whitespace trimmed and port 2181 by default.
// zkr is stricter than the Java parser where Java silently accepts a mistake:
//   - an empty entry ("h1,,h2", a trailing comma) is an error, Java skips it;
//   - "host:" (a colon without a port) is an error, Java uses 2181;
//   - a port must be 1..65535 written in decimal digits only (Java also takes "+80" and 0);
//   - a host may not contain whitespace, control characters, '[' or ']'.
// Like Java, an unbracketed host splits at its LAST ':', so "fe80::1:2181" is host "fe80::1"
// port 2181; bracket IPv6 addresses to avoid surprises.
//
// Thread safety: pure functions on values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <zkr/error.hpp>
#include <zkr/path.hpp>

namespace zkr {

/// ZooKeeper's client port when a connect string names none.
inline constexpr std::uint16_t default_client_port = 2181;

/// One server of a connect string. `host` is a name or an address, IPv6 without brackets.
struct host_port {
  std::string host;
  std::uint16_t port = default_client_port;
  friend bool operator==(const host_port&, const host_port&) = default;
};

/// A parsed connect string: at least one server, and the chroot every path is relative to
/// ("" if none; never "/", never with a trailing '/').
struct connect_string {
  std::vector<host_port> hosts;
  std::string chroot;
  friend bool operator==(const connect_string&, const connect_string&) = default;
};

namespace detail {

// Java's String.trim() removes every char <= ' '; zkr trims the ASCII whitespace a config
// file can carry and rejects other control characters inside the host.
constexpr bool is_connect_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

constexpr std::string_view trim_connect_space(std::string_view s) noexcept {
  while (!s.empty() && is_connect_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_connect_space(s.back())) s.remove_suffix(1);
  return s;
}

constexpr bool is_valid_host(std::string_view host) noexcept {
  if (host.empty()) return false;
  for (const char c : host) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7F || c == '[' || c == ']') return false;
  }
  return true;
}

/// A decimal port 1..65535: digits only (leading zeros allowed, as Integer.parseInt does).
constexpr bool parse_port(std::string_view s, std::uint16_t& port) noexcept {
  if (s.empty()) return false;
  std::uint32_t value = 0;
  for (const char c : s) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<std::uint32_t>(c - '0');
    if (value > 65535) return false;  // also keeps `value` from overflowing
  }
  if (value == 0) return false;
  port = static_cast<std::uint16_t>(value);
  return true;
}

/// One trimmed host list entry -> host_port, or false.
inline bool parse_host_entry(std::string_view entry, host_port& out) {
  std::string_view host;
  std::uint16_t port = default_client_port;
  if (!entry.empty() && entry.front() == '[') {
    // IPv6 in brackets, as NetUtils.getIPV6HostAndPort: "[addr]" or "[addr]:port".
    const std::size_t close = entry.find(']');
    if (close == std::string_view::npos) return false;
    host = entry.substr(1, close - 1);
    const std::string_view rest = entry.substr(close + 1);
    if (!rest.empty() && (rest.front() != ':' || !parse_port(rest.substr(1), port))) return false;
  } else {
    const std::size_t colon = entry.rfind(':');
    if (colon != std::string_view::npos) {
      if (!parse_port(entry.substr(colon + 1), port)) return false;
      host = entry.substr(0, colon);
    } else {
      host = entry;
    }
  }
  if (!is_valid_host(host)) return false;
  out.host.assign(host);
  out.port = port;
  return true;
}

}  // namespace detail

/// Parses a ZooKeeper connect string into `out`.
/// Returns {} on success; `errc::invalid_argument` for an empty string, an empty host or
/// entry, a missing, malformed, zero or out-of-range port, or an unclosed '['; and
/// `errc::invalid_path` for a chroot that `validate_path` rejects (a chroot of "/" means no
/// chroot). On error `out` is left unchanged. Throws only std::bad_alloc.
inline std::error_code parse_connect_string(std::string_view s, connect_string& out) {
  connect_string parsed;
  std::string_view hosts = s;
  if (const std::size_t slash = s.find('/'); slash != std::string_view::npos) {
    const std::string_view chroot = s.substr(slash);
    hosts = s.substr(0, slash);
    if (chroot.size() > 1) {  // "/" is the same as no chroot
      if (const std::error_code ec = validate_path(chroot)) return ec;
      parsed.chroot.assign(chroot);
    }
  }
  // Every comma-separated entry must name a host: this also rejects "" and "/chroot".
  std::size_t begin = 0;
  for (;;) {
    const std::size_t comma = hosts.find(',', begin);
    const std::size_t end = comma == std::string_view::npos ? hosts.size() : comma;
    const std::string_view entry = detail::trim_connect_space(hosts.substr(begin, end - begin));
    host_port hp;
    if (!detail::parse_host_entry(entry, hp)) return make_error_code(errc::invalid_argument);
    parsed.hosts.push_back(std::move(hp));
    if (comma == std::string_view::npos) break;
    begin = comma + 1;
  }
  out = std::move(parsed);
  return {};
}

/// The canonical text of `cs`: "host:port" entries joined by ',' (IPv6 hosts, i.e. hosts
/// containing ':', in brackets; the port always written), then the chroot. Parsing the
/// result gives `cs` back. Throws only std::bad_alloc.
inline std::string to_string(const connect_string& cs) {
  std::string text;
  for (std::size_t i = 0; i < cs.hosts.size(); ++i) {
    if (i != 0) text.push_back(',');
    const host_port& hp = cs.hosts[i];
    const bool bracket = hp.host.find(':') != std::string::npos;
    if (bracket) text.push_back('[');
    text.append(hp.host);
    if (bracket) text.push_back(']');
    text.push_back(':');
    text.append(std::to_string(hp.port));
  }
  text.append(cs.chroot);
  return text;
}

/// The server-side path of a client path under `chroot` (as ZooKeeper's prependChroot):
/// "/" maps to the chroot itself, any other path to chroot + path. With no chroot ("" or
/// "/") the path is returned as is. Expects a valid path; validates nothing. Throws only
/// std::bad_alloc.
inline std::string apply_chroot(std::string_view chroot, std::string_view path) {
  if (chroot.empty() || chroot == "/") return std::string(path);
  if (path == "/") return std::string(chroot);
  std::string server_path;
  server_path.reserve(chroot.size() + path.size());
  server_path.append(chroot).append(path);
  return server_path;
}

/// The client path of a path the server reports (watch events, created paths): the chroot
/// itself becomes "/", chroot + "/x" becomes "/x". A path that is not under the chroot is
/// returned unchanged (ZooKeeper never reports one; its client would cut it blindly). With
/// no chroot ("" or "/") the path is returned as is. Throws only std::bad_alloc.
inline std::string strip_chroot(std::string_view chroot, std::string_view server_path) {
  if (chroot.empty() || chroot == "/") return std::string(server_path);
  if (server_path == chroot) return "/";
  if (server_path.size() > chroot.size() && server_path.substr(0, chroot.size()) == chroot &&
      server_path[chroot.size()] == '/') {
    return std::string(server_path.substr(chroot.size()));
  }
  return std::string(server_path);
}

}  // namespace zkr
