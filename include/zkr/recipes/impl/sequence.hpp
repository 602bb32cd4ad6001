// zkr/recipes/impl/sequence.hpp: the sequence's operation (see zkr/recipes/sequence.hpp).
//
// One composed operation per value: setData(path, "", -1) and a check of the returned stat.
// Only when the node is missing (and create_if_missing) does it create the node (after its
// missing parents) and set once more. The set is sent from the initiating function itself,
// not after a hop to the executor: a session's requests keep their order, so values come
// back in the order the calls were made on one thread, and a burst of calls is pipelined.
#pragma once

#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <system_error>
#include <utility>

#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>

#include <zkr/backend.hpp>
#include <zkr/error.hpp>
#include <zkr/recipes/impl/invariant.hpp>
#include <zkr/recipes/sequence.hpp>
#include <zkr/types.hpp>

namespace zkr::recipes::detail {

template <class Session>
struct sequence_state {
  sequence_state(Session& s, std::string p, sequence_options o) : session(s), path(std::move(p)), opts(std::move(o)) {}
  Session& session;
  const std::string path;
  const sequence_options opts;
  std::atomic<bool> exhausted{false};  ///< a version <= 0, or 2147483647, was seen
  std::atomic<std::int64_t> czxid{0};  ///< the node's czxid as first seen; 0 before
};

/// What one set's stat means: the value, or why there is none. Updates the shared state.
template <class Session>
std::error_code judge_version(sequence_state<Session>& st, const zkr::stat& s) {
  ZKR_INVARIANT(s.czxid != 0, "sequence: a set's stat without a czxid");
  std::int64_t expected = 0;
  if (!st.czxid.compare_exchange_strong(expected, s.czxid) && expected != s.czxid) {
    return make_error_code(errc::data_inconsistency);  // the node was re-created: values would repeat
  }
  if (s.version <= 0) {
    // The server's int32 wrapped (2147483647 + 1 -> -2147483648): never hand out a wrapped
    // value, and never send again.
    st.exhausted.store(true);
    return make_error_code(errc::sequence_exhausted);
  }
  if (s.version == std::numeric_limits<std::int32_t>::max()) st.exhausted.store(true);  // the last value
  return {};
}

template <class Session>
class sequence_op {
 public:
  explicit sequence_op(std::shared_ptr<sequence_state<Session>> st) : st_(std::move(st)) {}

  /// First entry, inside the initiating function.
  template <class Self>
  void operator()(Self& self) {
    if (step_ == step::refuse) return self.complete(make_error_code(errc::sequence_exhausted), std::int64_t{0});
    if (st_->exhausted.load()) {
      step_ = step::refuse;  // complete after a hop: never inside the initiating function
      return boost::asio::post(st_->session.get_executor(), std::move(self));
    }
    set(self);
  }

  /// The set's reply.
  template <class Self>
  void operator()(Self& self, std::error_code ec, zkr::stat s) {
    ZKR_INVARIANT(step_ == step::set, "sequence_op: a set reply out of turn");
    if (!ec) {
      if (const auto bad = judge_version(*st_, s)) return self.complete(bad, std::int64_t{0});
      return self.complete(std::error_code{}, std::int64_t{s.version});
    }
    if (ec == errc::no_node && st_->opts.create_if_missing && !created_) {
      created_ = true;
      return create(self);
    }
    // connection_loss included: the set may have been applied; a retry would only consume
    // another value, so the caller decides (the value, if any, is a gap).
    self.complete(ec, std::int64_t{0});
  }

  /// The create's reply (the node, or one of its parents).
  template <class Self>
  void operator()(Self& self, std::error_code ec, std::string, zkr::stat) {
    ZKR_INVARIANT(step_ == step::create || step_ == step::parents, "sequence_op: a create reply out of turn");
    if (step_ == step::parents) {
      if (ec && ec != errc::node_exists) return self.complete(ec, std::int64_t{0});
      return parents(self, next_);
    }
    if (!ec || ec == errc::node_exists) return set(self);  // ours or someone else's: set it
    if (ec == errc::no_node && !parents_tried_) {
      parents_tried_ = true;
      return parents(self, 1);
    }
    self.complete(ec, std::int64_t{0});
  }

 private:
  enum class step : std::uint8_t { set, create, parents, refuse };

  template <class Self>
  void set(Self& self) {
    step_ = step::set;
    st_->session.async_set(st_->path, "", -1, std::move(self));
  }
  template <class Self>
  void create(Self& self) {
    step_ = step::create;
    st_->session.async_create(st_->path, "", create_options{create_mode::persistent, st_->opts.acl, {}},
                              std::move(self));
  }
  /// The missing ancestors, as containers, one per round trip; then the node itself.
  template <class Self>
  void parents(Self& self, std::size_t from) {
    const std::size_t next = st_->path.find('/', from);
    if (next == std::string::npos) return create(self);
    step_ = step::parents;
    next_ = next + 1;
    st_->session.async_create(st_->path.substr(0, next), "",
                              create_options{create_mode::container, st_->opts.acl, {}}, std::move(self));
  }

  std::shared_ptr<sequence_state<Session>> st_;
  step step_ = step::set;
  bool created_ = false;
  bool parents_tried_ = false;
  std::size_t next_ = 0;
};

}  // namespace zkr::recipes::detail

namespace zkr::recipes {

template <backend Session>
sequence<Session>::sequence(Session& session, std::string path, sequence_options options) {
  if (!is_valid_path(path)) throw std::invalid_argument("zkr::recipes::sequence: invalid path '" + path + "'");
  state_ = std::make_shared<detail::sequence_state<Session>>(session, std::move(path), std::move(options));
}

template <backend Session>
const std::string& sequence<Session>::path() const noexcept {
  return state_->path;
}

template <backend Session>
template <class Token>
auto sequence<Session>::async_next(Token&& token) {
  return boost::asio::async_compose<Token, void(std::error_code, std::int64_t)>(
      detail::sequence_op<Session>(state_), token, state_->session.get_executor());
}

}  // namespace zkr::recipes
