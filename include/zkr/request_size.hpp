// zkr/request_size.hpp: the encoded size of a request, to refuse an oversized one early.
//
// A ZooKeeper server reads each request's 4-byte length and, if it exceeds jute.maxbuffer
// (default 0xfffff bytes), drops the connection ("Len error"): the client sees connection
// loss, reconnects, and a blind retry fails the same way, forever. zkr computes the size a
// request will have in ZooKeeper's jute encoding and fails it with `errc::data_too_large`
// before sending instead.
//
// Jute's binary encoding (BinaryOutputArchive): int = 4 bytes, long = 8, bool = 1,
// string and buffer = 4-byte length + bytes, vector = 4-byte count + elements. A request
// is RequestHeader {xid int, type int} = 8 bytes followed by its body record. The 4-byte
// length prefix on the wire is not counted: the server compares the length field itself
// with jute.maxbuffer, and accepts a length equal to it.
//
// The server's limit is its own configuration; pass the one it runs with. The default is
// ZooKeeper's. Other limits apply later and are not modelled here: a server with a small
// jute.maxbuffer may still accept a request whose transaction (slightly larger than the
// request) followers then refuse.
//
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <limits>
#include <string_view>
#include <system_error>
#include <vector>

#include <zkr/error.hpp>
#include <zkr/op.hpp>
#include <zkr/types.hpp>

namespace zkr {

/// ZooKeeper's default jute.maxbuffer: the largest request length a server accepts.
inline constexpr std::size_t default_max_request_bytes = 0xfffff;

namespace detail {

// Saturating arithmetic: a size that would wrap reports SIZE_MAX, which every limit refuses.
constexpr std::size_t size_add(std::size_t a, std::size_t b) noexcept {
  return a > std::numeric_limits<std::size_t>::max() - b ? std::numeric_limits<std::size_t>::max()
                                                         : a + b;
}

inline constexpr std::size_t jute_int = 4;
inline constexpr std::size_t jute_long = 8;
inline constexpr std::size_t jute_bool = 1;
inline constexpr std::size_t request_header_bytes = jute_int + jute_int;           // xid, type
inline constexpr std::size_t multi_header_bytes = jute_int + jute_bool + jute_int;  // type, done, err

/// ustring or buffer: length prefix + bytes.
constexpr std::size_t jute_bytes(std::size_t n) noexcept { return size_add(jute_int, n); }

/// ACL {perms int, Id {scheme ustring, id ustring}}.
inline std::size_t jute_acl(const acl& a) noexcept {
  return size_add(jute_int, size_add(jute_bytes(a.scheme.size()), jute_bytes(a.id.size())));
}

/// vector<ACL>: count + elements.
inline std::size_t jute_acl_list(const acl_list& acls) noexcept {
  std::size_t bytes = jute_int;
  for (const acl& a : acls) bytes = size_add(bytes, jute_acl(a));
  return bytes;
}

/// CreateRequest {path, data, acl, flags}, or CreateTTLRequest (+ ttl long) for TTL modes.
/// (create2 and createContainer use the same CreateRequest body.)
inline std::size_t create_body_bytes(std::string_view path, std::string_view data,
                                     const create_options& options) noexcept {
  std::size_t bytes = size_add(jute_bytes(path.size()), jute_bytes(data.size()));
  bytes = size_add(bytes, jute_acl_list(options.acl));
  bytes = size_add(bytes, jute_int);
  if (is_ttl(options.mode)) bytes = size_add(bytes, jute_long);
  return bytes;
}

/// SetDataRequest {path, data, version}.
constexpr std::size_t set_body_bytes(std::string_view path, std::string_view data) noexcept {
  return size_add(size_add(jute_bytes(path.size()), jute_bytes(data.size())), jute_int);
}

/// DeleteRequest and CheckVersionRequest {path, version}.
constexpr std::size_t path_version_body_bytes(std::string_view path) noexcept {
  return size_add(jute_bytes(path.size()), jute_int);
}

}  // namespace detail

/// Encoded size of a create (create, create2, createContainer, or createTTL for the TTL
/// modes) of `path` with `data` and `options.acl`. `path` as sent: with the chroot
/// applied, without the sequence suffix (the server appends it). Never fails; saturates
/// at SIZE_MAX.
inline std::size_t create_request_size(std::string_view path, std::string_view data,
                                       const create_options& options) noexcept {
  return detail::size_add(detail::request_header_bytes,
                          detail::create_body_bytes(path, data, options));
}

/// Encoded size of a setData of `path` to `data` (the version does not change the size).
/// Never fails; saturates at SIZE_MAX.
constexpr std::size_t set_request_size(std::string_view path, std::string_view data) noexcept {
  return detail::size_add(detail::request_header_bytes, detail::set_body_bytes(path, data));
}

/// Encoded size of a setACL of `path` to `acls`. Never fails; saturates at SIZE_MAX.
inline std::size_t set_acl_request_size(std::string_view path, const acl_list& acls) noexcept {
  // SetACLRequest {path, acl, version}
  std::size_t body = detail::size_add(detail::jute_bytes(path.size()), detail::jute_acl_list(acls));
  body = detail::size_add(body, detail::jute_int);
  return detail::size_add(detail::request_header_bytes, body);
}

/// Encoded size of a multi: the request header, then per operation a MultiHeader {type int,
/// done bool, err int} (9 bytes) and the operation's body (as create, delete, setData or
/// check alone), then the closing MultiHeader {-1, true, -1}. An empty multi is 8 + 9 = 17
/// bytes. Never fails; saturates at SIZE_MAX.
inline std::size_t multi_request_size(const std::vector<op>& ops) noexcept {
  std::size_t bytes = detail::request_header_bytes;
  for (const op& o : ops) {
    std::size_t body = 0;
    switch (o.type) {
      case op::kind::create: body = detail::create_body_bytes(o.path, o.data, o.create); break;
      case op::kind::remove: body = detail::path_version_body_bytes(o.path); break;
      case op::kind::set: body = detail::set_body_bytes(o.path, o.data); break;
      case op::kind::check: body = detail::path_version_body_bytes(o.path); break;
    }
    bytes = detail::size_add(bytes, detail::size_add(detail::multi_header_bytes, body));
  }
  return detail::size_add(bytes, detail::multi_header_bytes);
}

/// {} if a request of `bytes` fits a server whose jute.maxbuffer is `limit` (bytes <=
/// limit), else `errc::data_too_large`. `limit == 0` disables the check. Never fails.
inline std::error_code check_request_size(std::size_t bytes, std::size_t limit) noexcept {
  if (limit != 0 && bytes > limit) return make_error_code(errc::data_too_large);
  return {};
}

}  // namespace zkr
