// zkr/zookeeper/options.hpp: how a zkr::zookeeper::session connects.
//
// Thread safety: a plain value.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <zkr/request_size.hpp>

namespace zkr::zookeeper {

/// Options of a session. Only `connect_string` is required.
struct options {
  /// "host:port[,host:port...][/chroot]". Paths in requests and results are relative to
  /// the chroot. An invalid string makes the session's constructor throw.
  std::string connect_string{};
  /// The requested session timeout; the server clamps it to [2, 20] x its tickTime.
  /// `session::negotiated_timeout()` tells what was granted.
  std::chrono::milliseconds session_timeout{15000};
  /// After the session expires (or is presumed lost), open a new one automatically (as
  /// CuratorFramework does), re-adding every credential given to async_add_auth.
  bool reopen_on_expiry = true;
  /// Requests whose jute encoding exceeds this are refused with `errc::data_too_large`
  /// before they are sent (the server would drop the connection). 0 disables the check.
  /// Keep it equal to the servers' jute.maxbuffer.
  std::size_t max_request_bytes = default_max_request_bytes;
  /// Receives the C client's log lines for this session (from the C client's threads; the
  /// function must be thread-safe). Empty: the C client's default, stderr. The C client's
  /// log level is process-wide: see zkr::zookeeper::set_log_level.
  std::function<void(std::string_view)> log{};
  /// Seed of the session's random source (retry jitter, recipe choices). Empty: random.
  std::optional<std::uint64_t> seed{};
};

}  // namespace zkr::zookeeper
