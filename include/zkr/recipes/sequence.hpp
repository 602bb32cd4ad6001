// zkr/recipes/sequence.hpp: a fast distributed sequence: unique values from one round trip.
//
// Znode layout:
//
//   <path>     a persistent node of its own (created on first use; missing parents as
//              containers). Its data stays empty; its version is the sequence.
//
// `async_next` sends one unconditional setData(path, "", -1). ZooKeeper applies every set
// exactly once, in zxid order, and increments the node's version by one each time, so each
// successful set returns a version no other set of the node returns: that version is the
// value. One round trip, no read, no retry, no lock; calls may be pipelined (many in flight
// on one session, or across sessions), and values are unique across all of them.
//
// Gaps: a set whose reply is lost (connection loss) may have consumed a value nobody sees;
// values are unique, not dense, and not ordered across sessions in real time (only by zxid).
//
// The end of the range: the version is an int32. Values run 1 .. 2147483647; the set after
// that wraps the server's counter to -2147483648 (ZooKeeper does not check). `async_next`
// reports any non-positive version as errc::sequence_exhausted and never returns it, and
// once it has seen 2147483647 it fails every later call with errc::sequence_exhausted
// without sending anything. Exhaustion is for good: the node's version cannot be reset
// (re-creating the node restarts it, see below); move to a new path.
//
// The node must never be deleted. A re-created node's version restarts at 0, so the values
// already handed out would be handed out again. A sequence object remembers the czxid of
// the node its first set reached and fails with errc::data_inconsistency when a later set
// reaches a node with another czxid (a re-created one); every object that saw the old node
// detects it, but a process that starts after the re-creation cannot tell. Protect the node
// with an ACL if other clients could delete it.
//
// Thread safety: `async_next` may be called from any thread the backend allows; completions
// run on the session's executor. Lifetime: the session must outlive pending calls.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#include <boost/asio/async_result.hpp>

#include <zkr/backend.hpp>
#include <zkr/error.hpp>
#include <zkr/path.hpp>
#include <zkr/types.hpp>

namespace zkr::recipes {

/// Options of a `sequence`.
struct sequence_options {
  /// Create the node (and its missing parents, as containers) when a set finds none.
  bool create_if_missing = true;
  /// ACL of the node and of the parents created for it.
  acl_list acl = open_acl_unsafe();
};

namespace detail {
template <class Session>
struct sequence_state;
}

/// Unique values from a znode's version (see the file comment).
template <backend Session>
class sequence {
 public:
  /// Throws std::invalid_argument if `path` is invalid. Sends nothing.
  sequence(Session& session, std::string path, sequence_options options = {});

  const std::string& path() const noexcept;

  /// The next value, in [1, 2147483647]. Signature: void(std::error_code, std::int64_t).
  /// The handler is called exactly once, on its associated executor, never from within this
  /// call. One setData round trip (plus a create and a second set, once, if the node is
  /// missing and create_if_missing).
  ///
  /// Errors (the value is 0):
  ///   errc::connection_loss     the set's outcome is unknown: a value may have been consumed
  ///                             (a gap). Not retried.
  ///   errc::sequence_exhausted  the int32 range is used up (see the file comment)
  ///   errc::data_inconsistency  the node was deleted and re-created since this object first
  ///                             used it: values would repeat
  ///   errc::no_node             the node is missing and create_if_missing is false
  ///   session errors, no_auth ... passed through (nothing consumed, except connection_loss)
  /// Per-Operation Cancellation: none (one round trip, nothing to wait for).
  template <class Token>
  auto async_next(Token&& token);

 private:
  std::shared_ptr<detail::sequence_state<Session>> state_;
};

}  // namespace zkr::recipes

#include <zkr/recipes/impl/sequence.hpp>
