// zkr/error.hpp: the error codes every zkr operation reports.
//
// zkr reports failures as std::error_code values in one category, `zkr::category()`, whose
// numeric values mirror ZooKeeper's own (ZNONODE is -101 here and on the wire), plus a few
// codes zkr detects on the client before any request is sent (positive values).
//
// Two codes are easy to confuse and must not be:
//   - `errc::connection_loss`: the outcome is UNKNOWN. The request may or may not have been
//     applied. Never retry a non-idempotent request blindly after it (find your node again).
//   - `errc::throttled`: the request was NOT executed. Retrying it is always safe.
//
// Thread safety: everything here is immutable and may be used from any thread.
#pragma once

#include <string>
#include <system_error>

namespace zkr {

/// Error values. Negative values are ZooKeeper's codes (zookeeper.h, KeeperException.Code);
/// positive values are detected by zkr on the client side.
enum class errc : int {
  ok = 0,
  // ZooKeeper system errors
  system_error = -1,
  runtime_inconsistency = -2,
  data_inconsistency = -3,
  connection_loss = -4,
  marshalling_error = -5,
  unimplemented = -6,
  operation_timeout = -7,
  bad_arguments = -8,
  invalid_state = -9,
  new_config_no_quorum = -13,
  reconfig_in_progress = -14,
  ssl_connection_error = -15,
  // ZooKeeper API errors
  api_error = -100,
  no_node = -101,
  no_auth = -102,
  bad_version = -103,
  no_children_for_ephemerals = -108,
  node_exists = -110,
  not_empty = -111,
  session_expired = -112,
  invalid_callback = -113,
  invalid_acl = -114,
  auth_failed = -115,
  closing = -116,
  nothing = -117,
  session_moved = -118,
  not_read_only = -119,
  ephemeral_on_local_session = -120,
  no_watcher = -121,
  reconfig_disabled = -123,
  session_closed_require_sasl_auth = -124,
  quota_exceeded = -125,
  throttled = -127,
  // zkr client-side errors: detected before a request is sent
  invalid_path = 1,        ///< the path breaks ZooKeeper's path rules (see zkr/path.hpp)
  data_too_large = 2,      ///< the encoded request exceeds the configured jute.maxbuffer
  invalid_argument = 3,    ///< another argument is out of range (e.g. a TTL on a non-TTL mode)
  session_lost = 4,        ///< no server heard for the negotiated timeout: presumed expired
  sequence_exhausted = 5,  ///< a 32-bit counter (version, sequence) would wrap
};

}  // namespace zkr

template <>
struct std::is_error_code_enum<zkr::errc> : std::true_type {};

namespace zkr {

}  // namespace zkr

namespace zkr {

namespace detail {
class category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "zkr"; }

  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::ok: return "success";
      case errc::system_error: return "system error";
      case errc::runtime_inconsistency:
        return "runtime inconsistency (in a multi: an earlier operation failed, this one was not applied)";
      case errc::data_inconsistency: return "data inconsistency";
      case errc::connection_loss:
        return "connection loss: the outcome of the request is unknown (it may have been applied)";
      case errc::marshalling_error: return "marshalling error";
      case errc::unimplemented: return "operation unimplemented by the server";
      case errc::operation_timeout: return "operation timeout";
      case errc::bad_arguments: return "bad arguments";
      case errc::invalid_state: return "invalid session handle state";
      case errc::new_config_no_quorum: return "no quorum of the new configuration";
      case errc::reconfig_in_progress: return "reconfiguration in progress";
      case errc::ssl_connection_error: return "SSL connection error";
      case errc::api_error: return "API error";
      case errc::no_node: return "node does not exist";
      case errc::no_auth: return "not authorized";
      case errc::bad_version: return "version conflict";
      case errc::no_children_for_ephemerals: return "ephemeral nodes may not have children";
      case errc::node_exists: return "node already exists";
      case errc::not_empty: return "node has children";
      case errc::session_expired: return "session expired";
      case errc::invalid_callback: return "invalid callback";
      case errc::invalid_acl: return "invalid ACL";
      case errc::auth_failed: return "authentication failed";
      case errc::closing: return "session is closing or closed";
      case errc::nothing: return "no server responses to process";
      case errc::session_moved: return "session moved to another server";
      case errc::not_read_only: return "write request sent to a read-only server";
      case errc::ephemeral_on_local_session: return "ephemeral node on a local session";
      case errc::no_watcher: return "no such watcher";
      case errc::reconfig_disabled: return "reconfiguration disabled";
      case errc::session_closed_require_sasl_auth: return "session closed: the server requires SASL authentication";
      case errc::quota_exceeded: return "quota exceeded";
      case errc::throttled: return "throttled: the request was not executed, retry it";
      case errc::invalid_path: return "invalid path (ZooKeeper's path rules)";
      case errc::data_too_large:
        return "request larger than jute.maxbuffer: the server would drop the connection";
      case errc::invalid_argument: return "invalid argument";
      case errc::session_lost:
        return "session presumed lost: no server heard for the negotiated session timeout";
      case errc::sequence_exhausted: return "32-bit sequence exhausted";
    }
    return "unknown zkr error " + std::to_string(value);
  }

  std::error_condition default_error_condition(int value) const noexcept override {
    switch (static_cast<errc>(value)) {
      case errc::invalid_path:
      case errc::invalid_argument:
      case errc::bad_arguments: return std::errc::invalid_argument;
      case errc::data_too_large: return std::errc::message_size;
      case errc::operation_timeout: return std::errc::timed_out;
      default: return {value, *this};
    }
  }
};
}  // namespace detail

/// The zkr error category. Guarantee: one object for the whole program.
inline const std::error_category& category() noexcept {
  static const detail::category_impl instance;
  return instance;
}

/// Makes an error_code in the zkr category (found by ADL for `std::error_code ec = errc::x`).
inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), category()};
}

/// The error of an operation that was cancelled or whose session was closed while it was
/// pending. Equal to std::errc::operation_canceled (and so to Asio's operation_aborted
/// converted to std::error_code).
inline std::error_code operation_aborted() noexcept { return std::make_error_code(std::errc::operation_canceled); }

/// True for errors after which the request's outcome is unknown (it may have been applied):
/// connection_loss (also how a request in flight ends when its session is lost) and
/// operation_timeout.
inline bool outcome_unknown(const std::error_code& ec) noexcept {
  return ec == errc::connection_loss || ec == errc::operation_timeout;
}

/// True for errors that mean "retry the same request, possibly after backoff": the request
/// certainly was not applied (throttled) or was idempotent-safe to re-issue by its caller.
/// Connection loss counts as retryable only for idempotent requests; see outcome_unknown.
inline bool retryable(const std::error_code& ec) noexcept {
  return ec == errc::throttled || ec == errc::connection_loss || ec == errc::operation_timeout ||
         ec == errc::session_moved;
}

/// Maps a raw ZooKeeper C-client return code to an error_code. 0 maps to success.
inline std::error_code from_zk_code(int rc) noexcept {
  return rc == 0 ? std::error_code{} : std::error_code{rc, category()};
}

}  // namespace zkr
