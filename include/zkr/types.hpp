// zkr/types.hpp: the value types of the ZooKeeper data model that every backend shares:
// node stat, create modes, ACLs, watch events and session states.
//
// Thread safety: plain values; distinct objects may be used from distinct threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace zkr {

/// A znode's metadata, as ZooKeeper's `Stat` record. Zxids only grow across the ensemble's
/// life; `version` counts data changes, `cversion` child changes, `aversion` ACL changes.
struct stat {
  std::int64_t czxid = 0;            ///< zxid of the create
  std::int64_t mzxid = 0;            ///< zxid of the last data change
  std::int64_t ctime = 0;            ///< create time, ms since the epoch (leader's clock)
  std::int64_t mtime = 0;            ///< last data change time, ms since the epoch
  std::int32_t version = 0;          ///< number of data changes
  std::int32_t cversion = 0;         ///< number of child changes
  std::int32_t aversion = 0;         ///< number of ACL changes
  std::int64_t ephemeral_owner = 0;  ///< owning session id, 0 if not ephemeral
  std::int32_t data_length = 0;      ///< bytes of data
  std::int32_t num_children = 0;     ///< number of children
  std::int64_t pzxid = 0;            ///< zxid of the last child change

  friend bool operator==(const stat&, const stat&) = default;
};

/// How `async_create` creates a node. Values equal the C client's and the wire's flags.
enum class create_mode : int {
  persistent = 0,
  ephemeral = 1,
  persistent_sequential = 2,
  ephemeral_sequential = 3,
  container = 4,                        ///< deleted by the server once its last child goes
  persistent_with_ttl = 5,              ///< deleted once unmodified for ttl and childless
  persistent_sequential_with_ttl = 6,
};

/// True if the server appends a 10-digit sequence number to the path.
constexpr bool is_sequential(create_mode m) noexcept {
  return m == create_mode::persistent_sequential || m == create_mode::ephemeral_sequential ||
         m == create_mode::persistent_sequential_with_ttl;
}
/// True if the node dies with the creating session.
constexpr bool is_ephemeral(create_mode m) noexcept {
  return m == create_mode::ephemeral || m == create_mode::ephemeral_sequential;
}
/// True if the mode requires a positive TTL.
constexpr bool is_ttl(create_mode m) noexcept {
  return m == create_mode::persistent_with_ttl || m == create_mode::persistent_sequential_with_ttl;
}

/// ACL permission bits (ZooDefs.Perms).
namespace perms {
inline constexpr std::int32_t read = 1;
inline constexpr std::int32_t write = 2;
inline constexpr std::int32_t create = 4;
inline constexpr std::int32_t remove = 8;  // ZooKeeper's DELETE
inline constexpr std::int32_t admin = 16;
inline constexpr std::int32_t all = 31;
}  // namespace perms

/// One ACL entry: who (`scheme`:`id`) may do what (`perms`).
struct acl {
  std::int32_t perms = 0;
  std::string scheme;
  std::string id;
  friend bool operator==(const acl&, const acl&) = default;
};
using acl_list = std::vector<acl>;

/// world:anyone may do everything (ZooDefs.Ids.OPEN_ACL_UNSAFE).
inline acl_list open_acl_unsafe() { return {{perms::all, "world", "anyone"}}; }
/// Only the authenticated creator may do anything (ZooDefs.Ids.CREATOR_ALL_ACL); the
/// session must have added auth first, else the create fails with `invalid_acl`.
inline acl_list creator_all_acl() { return {{perms::all, "auth", ""}}; }
/// world:anyone may read (ZooDefs.Ids.READ_ACL_UNSAFE).
inline acl_list read_acl_unsafe() { return {{perms::read, "world", "anyone"}}; }

/// Options of a create. `ttl` is required (> 0) for the TTL modes and must be zero otherwise.
struct create_options {
  create_mode mode = create_mode::persistent;
  acl_list acl = open_acl_unsafe();
  std::chrono::milliseconds ttl{0};
};

/// What a fired watch reports.
enum class event_type : int {
  created = 1,           ///< exists-watch: the node was created
  deleted = 2,           ///< any watch: the node was deleted
  data_changed = 3,      ///< exists/get watch: the node's data was set
  children_changed = 4,  ///< children watch: a child was created or deleted
};

/// The one completion of a one-shot watch. Delivered with an empty error_code and a node
/// event, or with `errc::session_expired` (the watch died with its session) or
/// `errc::closing` (the session was closed); `path` is relative to the chroot.
struct watch_event {
  event_type type = event_type::created;
  std::string path;
  friend bool operator==(const watch_event&, const watch_event&) = default;
};

/// Session states as recipes see them, after Curator's ConnectionState.
///   connecting   -> connected                   first connection of a generation
///   connected    -> suspended                   connection to the server lost; session may live
///   suspended    -> reconnected                 same session, another (or the same) server
///   suspended    -> lost                        expired, or presumed so (no server for the timeout)
///   lost         -> connected                   a new session (generation + 1), opened automatically
///   any          -> closed                      the user closed the session
enum class session_state : int { connecting, connected, suspended, reconnected, lost, closed };

constexpr std::string_view to_string(session_state s) noexcept {
  switch (s) {
    case session_state::connecting: return "connecting";
    case session_state::connected: return "connected";
    case session_state::suspended: return "suspended";
    case session_state::reconnected: return "reconnected";
    case session_state::lost: return "lost";
    case session_state::closed: return "closed";
  }
  return "?";
}
inline std::ostream& operator<<(std::ostream& os, session_state s) { return os << to_string(s); }

constexpr std::string_view to_string(event_type t) noexcept {
  switch (t) {
    case event_type::created: return "created";
    case event_type::deleted: return "deleted";
    case event_type::data_changed: return "data_changed";
    case event_type::children_changed: return "children_changed";
  }
  return "?";
}
inline std::ostream& operator<<(std::ostream& os, event_type t) { return os << to_string(t); }

/// True while requests can be served (connected or reconnected).
constexpr bool is_connected(session_state s) noexcept {
  return s == session_state::connected || s == session_state::reconnected;
}

/// One transition on a session's state channel. `generation` counts sessions opened by the
/// same session object (1 for the first); `reason` says why a session was lost
/// (`session_expired` from the server, `session_lost` when presumed, `auth_failed`).
struct session_event {
  session_state state = session_state::connecting;
  std::uint64_t generation = 0;
  std::error_code reason;
};

}  // namespace zkr
