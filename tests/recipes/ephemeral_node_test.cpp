// Goal: zkr::recipes::ephemeral_node keeps an ephemeral node with the caller's data present
// for as long as it is started, as Curator's PersistentNode (EPHEMERAL) does, and keeps its
// promises under faults: the node is present again within a bounded time after a session
// expiry, a deletion by someone else, a partition, a long election (which leaves an earlier
// session's node to wait for) and random fault schedules; someone else's node is never written
// over (their data stays theirs); a closed node leaves no znode.
//
// Method, in three parts:
//   1. fsm.*: the sans-IO ephemeral_node_fsm stepped by hand, one input at a time, checking
//      the request it asks for and the state it reports (create, settle node_exists by the
//      ephemeralOwner: ours / an earlier session's / someone else's, outcome-unknown creates
//      settled by a read, parents, write-back, the retry bound, close).
//   2. node/<backend>.*: the recipe against real ZooKeeper and against the simulator through
//      the conformance suite's typed fixture (tests/conformance/fixture.hpp): layout and data,
//      re-creation after deletion and after expiry, someone else's node in the way, data
//      updates, lifecycle errors, cancellation of every type, every completion token.
//   3. sweep.*: simulator fault sweeps over ZKR_SEEDS seeds (ZKR_SEED=N replays one). A
//      `presence` monitor samples the leader's tree every 20 ms of virtual time and measures,
//      after each fault ends, how long until the node is there again owned by the client's
//      current session with its data; each sweep asserts a bound on that time and prints the
//      worst case seen. A failing seed prints its faults and a timeline.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <gtest/gtest.h>

#include <zkr/recipes/ephemeral_node.hpp>

#include "conformance/fixture.hpp"
#include "recipes/sim_harness.hpp"

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using zkr::errc;
using zkr::session_state;
using zkr::recipes::ephemeral_node;
using zkr::recipes::ephemeral_node_event;
using zkr::recipes::ephemeral_node_options;
using zkr::recipes::ephemeral_node_state;

// =============================================================================================
// 1. The FSM, stepped by hand
// =============================================================================================
namespace fsm {

using namespace zkr::recipes::detail;
using view = ephemeral_node_fsm::view;

const std::string path = "/services/api/host-1";

zkr::stat owned(std::int64_t owner, std::int32_t version = 0) {
  zkr::stat st;
  st.ephemeral_owner = owner;
  st.version = version;
  st.czxid = 100;
  return st;
}

struct env_t final : eph_env {
  std::chrono::steady_clock::time_point t{};
  zkr::prng rng{7};
  std::chrono::steady_clock::time_point now() override { return t; }
  zkr::prng& random() override { return rng; }
};

/// One FSM with a retry policy of a known bound (3 retries, 10 ms apart).
struct harness {
  explicit harness(zkr::any_retry_policy retry = zkr::retry_n_times{3, 10ms}, bool parents = true)
      : f({path, "data-1", parents, std::move(retry)}) {}

  eph_actions step(eph_event ev) {
    auto a = f.resume(ev, env);
    env.t += 1ms;
    return a;
  }
  eph_actions session(session_state st, std::int64_t sid) { return step(eph_ev::session{st, sid}); }
  /// Started on connected session 1, created and read back: registered, watch armed.
  void registered() {
    EXPECT_EQ(step(eph_ev::start{session_state::connected, 1}).io, eph_io::create);
    const auto a = step(eph_ev::created{{}, owned(1)});
    EXPECT_EQ(a.io, eph_io::read_watch);
    watch = a.watch_id;
    const auto b = step(eph_ev::read{{}, "data-1", owned(1)});
    EXPECT_EQ(b.io, eph_io::none);
    EXPECT_EQ(f.state(), ephemeral_node_state::registered);
  }

  ephemeral_node_fsm f;
  env_t env;
  std::uint64_t watch = 0;
};

TEST(fsm, starts_with_a_plain_create_and_arms_a_get_watch_once_created) {
  harness h;
  const auto a = h.step(eph_ev::start{session_state::connected, 1});
  EXPECT_EQ(a.io, eph_io::create);
  EXPECT_EQ(a.data, "data-1");
  ASSERT_TRUE(a.changed);
  EXPECT_EQ(a.changed->state, ephemeral_node_state::pending);
  const auto b = h.step(eph_ev::created{{}, owned(1)});
  EXPECT_EQ(b.io, eph_io::read_watch) << "getData with a watch, to see a deletion";
  ASSERT_TRUE(b.changed);
  EXPECT_EQ(b.changed->state, ephemeral_node_state::registered);
  const auto c = h.step(eph_ev::read{{}, "data-1", owned(1)});
  EXPECT_EQ(c.io, eph_io::none);
  EXPECT_FALSE(c.changed) << "listeners fire on transitions only";
  EXPECT_EQ(h.f.server_seq(), h.f.data_seq());
  EXPECT_EQ(h.f.stats().creates, 1u);
}

TEST(fsm, waits_for_the_connection_before_anything) {
  harness h;
  EXPECT_EQ(h.step(eph_ev::start{session_state::connecting, 0}).io, eph_io::none);
  EXPECT_EQ(h.session(session_state::connected, 1).io, eph_io::create);
}

TEST(fsm, node_exists_owned_by_the_current_session_is_adopted_and_our_data_written) {
  harness h;
  h.step(eph_ev::start{session_state::connected, 1});
  const auto a = h.step(eph_ev::created{errc::node_exists, {}});
  EXPECT_EQ(a.io, eph_io::read_watch) << "settled by its ephemeralOwner";
  const auto b = h.step(eph_ev::read{{}, "old-data", owned(1, 4)});
  EXPECT_EQ(h.f.state(), ephemeral_node_state::registered);
  EXPECT_EQ(b.io, eph_io::write) << "the data differs: ours is written";
  EXPECT_EQ(b.data, "data-1");
  EXPECT_EQ(b.version, 4);
  h.step(eph_ev::written{{}, owned(1, 5)});
  EXPECT_EQ(h.f.server_seq(), h.f.data_seq());
  EXPECT_EQ(h.f.stats().adopted, 1u);
}

TEST(fsm, a_create_with_an_unknown_outcome_is_settled_by_a_read_never_repeated_blindly) {
  harness h;
  h.step(eph_ev::start{session_state::connected, 1});
  // Connection loss while the session still says connected: back off, then READ.
  const auto a = h.step(eph_ev::created{errc::connection_loss, {}});
  EXPECT_EQ(a.io, eph_io::none);
  ASSERT_TRUE(a.backoff);
  EXPECT_FALSE(a.changed && a.changed->error) << "connection trouble is not reported as an error";
  EXPECT_EQ(h.step(eph_ev::backoff_elapsed{}).io, eph_io::read_watch);
  // It was applied: ours, same data: adopted, nothing to write.
  const auto b = h.step(eph_ev::read{{}, "data-1", owned(1)});
  EXPECT_EQ(b.io, eph_io::none);
  EXPECT_EQ(h.f.state(), ephemeral_node_state::registered);
  EXPECT_EQ(h.f.stats().creates, 1u);

  // Disconnected: nothing until reconnected, then a read.
  harness g;
  g.step(eph_ev::start{session_state::connected, 1});
  g.session(session_state::suspended, 1);
  const auto c = g.step(eph_ev::created{errc::connection_loss, {}});
  EXPECT_EQ(c.io, eph_io::none);
  EXPECT_FALSE(c.backoff);
  EXPECT_EQ(g.session(session_state::reconnected, 1).io, eph_io::read_watch);
  EXPECT_EQ(g.step(eph_ev::read{errc::no_node, {}, {}}).io, eph_io::create) << "not applied: create now";
}

TEST(fsm, an_earlier_sessions_node_is_waited_out_then_created_again) {
  harness h;
  h.registered();
  // Presumed lost; the new session finds the old session's node still there.
  const auto lost = h.session(session_state::lost, 0);
  ASSERT_TRUE(lost.changed);
  EXPECT_EQ(lost.changed->state, ephemeral_node_state::pending);
  EXPECT_EQ(h.session(session_state::connected, 2).io, eph_io::create);
  const auto settle = h.step(eph_ev::created{errc::node_exists, {}});
  ASSERT_EQ(settle.io, eph_io::read_watch);
  const auto r = h.step(eph_ev::read{{}, "data-1", owned(1)});
  EXPECT_EQ(r.io, eph_io::none) << "wait for its deletion; never adopt an earlier session's node";
  ASSERT_TRUE(r.changed);
  EXPECT_EQ(r.changed->state, ephemeral_node_state::pending);
  EXPECT_FALSE(r.changed->error) << "waiting for our own earlier session is no error";
  EXPECT_EQ(r.changed->blocking_owner, 1);
  EXPECT_EQ(h.f.node_view(), view::earlier);
  EXPECT_EQ(h.f.stats().waited_earlier, 1u);
  // The server expires session 1: the watch fires, we create in session 2.
  const auto del = h.step(eph_ev::node_changed{settle.watch_id, {}, zkr::event_type::deleted});
  EXPECT_EQ(del.io, eph_io::create);
  h.step(eph_ev::created{{}, owned(2)});
  EXPECT_EQ(h.f.state(), ephemeral_node_state::registered);
  EXPECT_EQ(h.f.event().blocking_owner, 0);
}

TEST(fsm, someone_elses_node_is_reported_never_written_and_replaced_once_deleted) {
  harness h;
  h.step(eph_ev::start{session_state::connected, 1});
  const auto a = h.step(eph_ev::created{errc::node_exists, {}});
  ASSERT_EQ(a.io, eph_io::read_watch);
  const auto r = h.step(eph_ev::read{{}, "theirs", owned(77)});
  EXPECT_EQ(r.io, eph_io::none) << "their data is left alone";
  ASSERT_TRUE(r.changed);
  EXPECT_EQ(r.changed->error, errc::node_exists);
  EXPECT_EQ(r.changed->blocking_owner, 77);
  EXPECT_EQ(h.f.stats().waited_foreign, 1u);
  // Their data changes: we read again (re-arm), still theirs: no write.
  EXPECT_EQ(h.step(eph_ev::node_changed{a.watch_id, {}, zkr::event_type::data_changed}).io, eph_io::read_watch);
  const auto again = h.step(eph_ev::read{{}, "theirs-2", owned(77, 1)});
  EXPECT_EQ(again.io, eph_io::none);
  EXPECT_EQ(h.f.stats().writes, 0u);
  // A persistent node (owner 0) is someone else's too.
  harness p;
  p.step(eph_ev::start{session_state::connected, 1});
  p.step(eph_ev::created{errc::node_exists, {}});
  p.step(eph_ev::read{{}, "", owned(0)});
  EXPECT_EQ(p.f.event().error, errc::node_exists);
  EXPECT_EQ(p.f.event().blocking_owner, 0);
}

TEST(fsm, only_the_latest_watch_counts) {
  harness h;
  h.step(eph_ev::start{session_state::connected, 1});
  const auto first = h.step(eph_ev::created{errc::node_exists, {}});
  h.step(eph_ev::read{{}, "theirs", owned(77)});
  // A reconnect re-reads: a second watch; the first one's news is stale from then on.
  const auto second = h.session(session_state::reconnected, 1);
  ASSERT_EQ(second.io, eph_io::read_watch);
  EXPECT_NE(second.watch_id, first.watch_id);
  EXPECT_EQ(h.step(eph_ev::node_changed{first.watch_id, {}, zkr::event_type::deleted}).io, eph_io::none);
  EXPECT_EQ(h.f.node_view(), view::foreign);
  h.step(eph_ev::read{{}, "theirs", owned(77)});
  const auto del = h.step(eph_ev::node_changed{second.watch_id, {}, zkr::event_type::deleted});
  EXPECT_EQ(del.io, eph_io::create);
  ASSERT_TRUE(del.changed);
  EXPECT_FALSE(del.changed->error) << "what was in the way is gone";
  EXPECT_EQ(del.changed->blocking_owner, 0);
}

TEST(fsm, a_deleted_node_is_created_again_and_a_foreign_write_is_undone) {
  harness h;
  h.step(eph_ev::start{session_state::connected, 1});
  const auto armed = h.step(eph_ev::created{{}, owned(1)});
  h.step(eph_ev::read{{}, "data-1", owned(1)});
  const auto changed = h.step(eph_ev::node_changed{armed.watch_id, {}, zkr::event_type::data_changed});
  ASSERT_EQ(changed.io, eph_io::read_watch);
  const auto back = h.step(eph_ev::read{{}, "vandal", owned(1, 1)});
  EXPECT_EQ(back.io, eph_io::write);
  EXPECT_EQ(back.data, "data-1");
  EXPECT_EQ(back.version, 1);
  EXPECT_EQ(h.step(eph_ev::written{{}, owned(1, 2)}).io, eph_io::none);
  const auto del = h.step(eph_ev::node_changed{changed.watch_id, {}, zkr::event_type::deleted});
  EXPECT_EQ(del.io, eph_io::create);
  ASSERT_TRUE(del.changed);
  EXPECT_EQ(del.changed->state, ephemeral_node_state::pending);
  EXPECT_EQ(h.f.stats().deletions, 1u);
}

TEST(fsm, set_data_writes_at_the_version_seen_and_a_conflict_reads_again) {
  harness h;
  h.registered();
  const auto w = h.step(eph_ev::set_data{"data-2"});
  EXPECT_EQ(w.io, eph_io::write);
  EXPECT_EQ(w.data, "data-2");
  EXPECT_EQ(w.version, 0);
  EXPECT_EQ(h.f.data_seq(), 2u);
  const auto conflict = h.step(eph_ev::written{errc::bad_version, {}});
  ASSERT_TRUE(conflict.backoff);
  EXPECT_FALSE(h.f.event().error) << "a write conflict is not reported";
  EXPECT_EQ(h.step(eph_ev::backoff_elapsed{}).io, eph_io::read_watch);
  EXPECT_EQ(h.step(eph_ev::read{{}, "vandal", owned(1, 3)}).version, 3);
  h.step(eph_ev::written{{}, owned(1, 4)});
  EXPECT_EQ(h.f.server_seq(), 2u);
}

TEST(fsm, missing_parents_are_created_first_and_a_vanishing_parent_is_bounded) {
  harness h;
  h.step(eph_ev::start{session_state::connected, 1});
  EXPECT_EQ(h.step(eph_ev::created{errc::no_node, {}}).io, eph_io::create_parents);
  EXPECT_EQ(h.step(eph_ev::parents_created{}).io, eph_io::create);
  // The container went again before our create: retried with the policy, then it stalls.
  int rounds = 0;
  for (;;) {
    auto a = h.step(eph_ev::created{errc::no_node, {}});
    if (!a.backoff) break;
    ++rounds;
    EXPECT_EQ(h.step(eph_ev::backoff_elapsed{}).io, eph_io::create_parents);
    EXPECT_EQ(h.step(eph_ev::parents_created{}).io, eph_io::create);
    ASSERT_LT(rounds, 10);
  }
  EXPECT_EQ(rounds, 3) << "retry_n_times{3}";
  EXPECT_TRUE(h.f.stalled());
  EXPECT_EQ(h.f.event().error, errc::no_node);
  // Without parent creation a missing parent is an error at once.
  harness n(zkr::retry_none{}, false);
  n.step(eph_ev::start{session_state::connected, 1});
  EXPECT_EQ(n.step(eph_ev::created{errc::no_node, {}}).io, eph_io::none);
  EXPECT_EQ(n.f.event().error, errc::no_node);
}

TEST(fsm, errors_are_reported_retried_within_the_bound_and_resumed_by_new_data_or_a_transition) {
  harness h;
  h.step(eph_ev::start{session_state::connected, 1});
  for (int i = 0; i < 3; ++i) {
    const auto a = h.step(eph_ev::created{errc::no_auth, {}});
    ASSERT_TRUE(a.backoff) << i;
    EXPECT_EQ(*a.backoff, 10ms);
    EXPECT_EQ(h.f.event().error, errc::no_auth);
    EXPECT_EQ(h.step(eph_ev::backoff_elapsed{}).io, eph_io::create);
  }
  const auto gave_up = h.step(eph_ev::created{errc::no_auth, {}});
  EXPECT_FALSE(gave_up.backoff);
  EXPECT_EQ(gave_up.io, eph_io::none);
  EXPECT_TRUE(h.f.stalled());
  EXPECT_EQ(h.f.stats().retries, 3u);
  EXPECT_EQ(h.step(eph_ev::set_data{"data-2"}).io, eph_io::create) << "new data: try again";
  h.step(eph_ev::created{errc::no_auth, {}});
  h.step(eph_ev::backoff_elapsed{});
  // A reconnect also resumes a stalled node.
  harness g(zkr::retry_none{});
  g.step(eph_ev::start{session_state::connected, 1});
  g.step(eph_ev::created{errc::invalid_acl, {}});
  EXPECT_TRUE(g.f.stalled());
  g.session(session_state::suspended, 1);
  EXPECT_EQ(g.session(session_state::reconnected, 1).io, eph_io::create);
}

TEST(fsm, a_new_session_creates_again_and_remembers_the_old_one) {
  harness h;
  h.registered();
  h.session(session_state::suspended, 1);
  EXPECT_EQ(h.f.state(), ephemeral_node_state::registered) << "suspended keeps the node's state";
  h.session(session_state::lost, 0);
  EXPECT_EQ(h.f.state(), ephemeral_node_state::pending);
  EXPECT_EQ(h.session(session_state::connected, 2).io, eph_io::create);
  h.step(eph_ev::created{{}, owned(2)});
  EXPECT_EQ(h.f.state(), ephemeral_node_state::registered);
  EXPECT_EQ(h.f.session_id(), 2);
}

TEST(fsm, close_reads_then_deletes_only_our_node_at_the_version_read) {
  harness h;
  h.registered();
  const auto c = h.step(eph_ev::close{});
  EXPECT_EQ(c.io, eph_io::read) << "a fresh read first: never delete what is not ours";
  ASSERT_TRUE(c.changed);
  EXPECT_EQ(c.changed->state, ephemeral_node_state::closed);
  const auto r = h.step(eph_ev::read{{}, "data-1", owned(1, 6)});
  EXPECT_EQ(r.io, eph_io::remove);
  EXPECT_EQ(r.version, 6);
  EXPECT_FALSE(r.closed);
  const auto done = h.step(eph_ev::removed{{}});
  ASSERT_TRUE(done.closed);
  EXPECT_FALSE(*done.closed);

  // Someone else's node at close: left alone.
  harness f;
  f.registered();
  f.step(eph_ev::close{});
  const auto theirs = f.step(eph_ev::read{{}, "x", owned(9)});
  EXPECT_EQ(theirs.io, eph_io::none);
  ASSERT_TRUE(theirs.closed);
}

TEST(fsm, close_with_a_create_in_flight_awaits_its_reply_then_deletes) {
  harness h;
  h.step(eph_ev::start{session_state::connected, 1});
  const auto c = h.step(eph_ev::close{});
  EXPECT_EQ(c.io, eph_io::none) << "one request at a time: the create's reply first";
  EXPECT_EQ(h.step(eph_ev::created{{}, owned(1)}).io, eph_io::read);
  EXPECT_EQ(h.step(eph_ev::read{{}, "data-1", owned(1)}).io, eph_io::remove);
  EXPECT_TRUE(h.step(eph_ev::removed{errc::no_node}).closed) << "already gone is fine";
}

TEST(fsm, a_close_while_suspended_waits_and_ends_when_the_session_is_lost) {
  harness h;
  h.registered();
  h.session(session_state::suspended, 1);
  const auto c = h.step(eph_ev::close{});
  EXPECT_EQ(c.io, eph_io::none);
  EXPECT_FALSE(c.closed);
  const auto l = h.session(session_state::lost, 0);
  ASSERT_TRUE(l.closed) << "the node goes with the lost session";
  // And a close whose delete loses the connection retries: read, then delete.
  harness g;
  g.registered();
  g.step(eph_ev::close{});
  g.step(eph_ev::read{{}, "data-1", owned(1)});
  const auto lossy = g.step(eph_ev::removed{errc::connection_loss});
  ASSERT_TRUE(lossy.backoff);
  EXPECT_EQ(g.step(eph_ev::backoff_elapsed{}).io, eph_io::read);
  EXPECT_EQ(g.step(eph_ev::read{errc::no_node, {}, {}}).closed, std::optional<std::error_code>{std::error_code{}});
}

TEST(fsm, a_closed_session_ends_the_node_and_a_close_then_finishes_at_once) {
  harness h;
  h.registered();
  const auto a = h.session(session_state::closed, 1);
  ASSERT_TRUE(a.changed);
  EXPECT_EQ(a.changed->state, ephemeral_node_state::closed);
  EXPECT_EQ(a.changed->error, errc::closing);
  EXPECT_TRUE(h.step(eph_ev::close{}).closed);
  // A request aborted by a closed (or destroyed) session: never touch the session again.
  harness g;
  g.step(eph_ev::start{session_state::connected, 1});
  const auto b = g.step(eph_ev::created{zkr::operation_aborted(), {}});
  EXPECT_EQ(b.io, eph_io::none);
  EXPECT_FALSE(b.backoff);
  EXPECT_EQ(g.f.state(), ephemeral_node_state::closed);
}

TEST(fsm, a_node_started_on_a_closed_session_is_closed_at_once) {
  harness h;
  const auto a = h.step(eph_ev::start{session_state::closed, 0});
  EXPECT_EQ(a.io, eph_io::none);
  ASSERT_TRUE(a.changed);
  EXPECT_EQ(a.changed->state, ephemeral_node_state::closed);
  EXPECT_EQ(a.changed->error, errc::closing);
}

TEST(fsm, closing_a_node_never_started_finishes_at_once) {
  harness h;
  const auto a = h.step(eph_ev::close{});
  ASSERT_TRUE(a.closed);
  EXPECT_EQ(a.io, eph_io::none);
}

}  // namespace fsm

// =============================================================================================
// 2. The node on both backends
// =============================================================================================
namespace both {

using zkr::conformance::backend_names;
using zkr::conformance::backends;
using zkr::conformance::fixture;
using zkr::test::recorder;
using zkr::test::tok;

template <class B>
class node : public fixture<B> {
 protected:
  using session = typename B::session;
  using node_type = ephemeral_node<session>;

  std::unique_ptr<node_type> make(session& s, std::string data, ephemeral_node_options o = {}) {
    return std::make_unique<node_type>(s, this->path("svc/api/host-1"), std::move(data), std::move(o));
  }
  /// The node's data and stat as `s` reads it now (ec no_node if missing).
  std::tuple<std::error_code, std::string, zkr::stat> read(session& s) {
    return this->await(s.async_get(this->path("svc/api/host-1"), tok));
  }
  /// Expires `s`'s session and waits for its next generation. A forced expiry on the real
  /// server (a second handle attaching to the session and closing it, as Curator's
  /// KillSession) does not always take (the client can win the session back first); like the
  /// conformance suite, try up to 5 times.
  bool expire_and_reconnect(session& s) {
    const auto old_id = s.session_id();
    for (int attempt = 0; attempt < 5; ++attempt) {
      if (!this->b_.expire(s)) return false;
      if (this->eventually([&] { return s.session_id() != old_id && is_connected(s.state()); }, 15s)) return true;
    }
    return false;
  }
  /// True once the node holds `data` and belongs to `s`'s current session.
  bool present(session& s, const std::string& data, std::chrono::milliseconds limit = 20s) {
    return this->eventually(
        [&] {
          auto [ec, d, st] = read(s);
          return !ec && d == data && st.ephemeral_owner == s.session_id() && s.session_id() != 0;
        },
        limit);
  }
};
TYPED_TEST_SUITE(node, backends, backend_names);

TYPED_TEST(node, registers_with_its_data_and_close_removes_it) {
  auto& t = *this;
  auto& s = t.first();
  recorder<ephemeral_node_event> heard;
  auto n = t.make(s, R"({"name":"api"})");
  auto sub = n->subscribe([&](const ephemeral_node_event& e) { heard.push(e); });
  EXPECT_EQ(n->state(), ephemeral_node_state::latent);
  n->start();
  auto [ec] = t.await(n->async_wait_registered(tok));
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(n->state(), ephemeral_node_state::registered);
  auto [rec, data, st] = t.read(s);
  ASSERT_FALSE(rec);
  EXPECT_EQ(data, R"({"name":"api"})");
  EXPECT_EQ(st.ephemeral_owner, s.session_id());
  // The parents are there (containers, created for us).
  EXPECT_FALSE(std::get<0>(t.await(s.async_exists(t.path("svc/api"), tok))));
  auto [cec] = t.await(n->async_close(tok));
  EXPECT_FALSE(cec) << cec.message();
  EXPECT_EQ(n->state(), ephemeral_node_state::closed);
  EXPECT_EQ(std::get<0>(t.read(s)), errc::no_node) << "a closed node leaves no znode";
  t.drain();
  const auto items = heard.items();
  ASSERT_EQ(items.size(), 3u) << "pending, registered, closed: transitions only";
  EXPECT_EQ(items[0].state, ephemeral_node_state::pending);
  EXPECT_EQ(items[1].state, ephemeral_node_state::registered);
  EXPECT_EQ(items[2].state, ephemeral_node_state::closed);
  EXPECT_EQ(n->stats().creates, 2u) << "one refused for the missing parents, then ours";
}

TYPED_TEST(node, lifecycle_misuse_is_reported_not_undefined) {
  auto& t = *this;
  auto n = t.make(t.first(), "x");
  EXPECT_EQ(std::get<0>(t.await(n->async_wait_registered(tok))), errc::invalid_state) << "not started";
  n->start();
  EXPECT_THROW(n->start(), std::system_error);
  ASSERT_FALSE(std::get<0>(t.await(n->async_wait_registered(tok))));
  EXPECT_FALSE(std::get<0>(t.await(n->async_close(tok))));
  EXPECT_EQ(std::get<0>(t.await(n->async_close(tok))), errc::invalid_state) << "closed twice";
  EXPECT_THROW(n->start(), std::system_error);
  EXPECT_EQ(std::get<0>(t.await(n->async_wait_registered(tok))), errc::closing);
  EXPECT_EQ(std::get<0>(t.await(n->async_set_data("y", tok))), errc::closing);
  using node_type = typename TestFixture::node_type;
  EXPECT_THROW(node_type(t.first(), "relative", "x"), std::system_error);
  EXPECT_THROW(node_type(t.first(), "/", "x"), std::system_error);
  EXPECT_THROW(node_type(t.first(), "/a//b", "x"), std::system_error);
}

TYPED_TEST(node, is_created_again_after_someone_deletes_it) {
  auto& t = *this;
  auto& s = t.first();
  auto& other = t.open();
  auto n = t.make(s, "mine");
  n->start();
  ASSERT_FALSE(std::get<0>(t.await(n->async_wait_registered(tok))));
  auto [st_ec, d0, st0] = t.read(s);
  ASSERT_FALSE(st_ec);
  for (int i = 0; i < 3; ++i) {
    ASSERT_FALSE(std::get<0>(t.await(other.async_remove(t.path("svc/api/host-1"), -1, tok))));
    ASSERT_TRUE(t.present(s, "mine")) << "round " << i;
  }
  auto [ec, d1, st1] = t.read(s);
  ASSERT_FALSE(ec);
  EXPECT_GT(st1.czxid, st0.czxid) << "a new node";
  // Each deletion was followed by a create (the watch saw it, or a read right after our
  // create found the node gone already): 2 at the start (one refused for the parents) + 3.
  EXPECT_GE(n->stats().creates, 5u);
  EXPECT_FALSE(std::get<0>(t.await(n->async_close(tok))));
}

TYPED_TEST(node, someone_elses_write_is_undone) {
  auto& t = *this;
  auto& s = t.first();
  auto& other = t.open();
  auto n = t.make(s, "mine");
  n->start();
  ASSERT_FALSE(std::get<0>(t.await(n->async_wait_registered(tok))));
  ASSERT_FALSE(std::get<0>(t.await(other.async_set(t.path("svc/api/host-1"), "vandal", -1, tok))));
  ASSERT_TRUE(t.present(s, "mine"));
  EXPECT_GE(n->stats().writes, 1u);
  EXPECT_EQ(n->state(), ephemeral_node_state::registered);
}

TYPED_TEST(node, is_created_again_in_the_next_session_after_expiry) {
  auto& t = *this;
  auto& s = t.first();
  auto n = t.make(s, "mine");
  recorder<ephemeral_node_event> heard;
  auto sub = n->subscribe([&](const ephemeral_node_event& e) { heard.push(e); });
  n->start();
  ASSERT_FALSE(std::get<0>(t.await(n->async_wait_registered(tok))));
  ASSERT_TRUE(t.expire_and_reconnect(s));
  ASSERT_TRUE(t.present(s, "mine"));
  EXPECT_TRUE(t.eventually([&] { return n->state() == ephemeral_node_state::registered; }));
  t.drain();
  const auto items = heard.items();
  ASSERT_GE(items.size(), 4u);
  EXPECT_EQ(items[2].state, ephemeral_node_state::pending) << "lost: pending";
  EXPECT_EQ(items.back().state, ephemeral_node_state::registered);
  EXPECT_FALSE(std::get<0>(t.await(n->async_close(tok))));
}

TYPED_TEST(node, someone_elses_node_is_reported_left_alone_and_replaced_once_it_goes) {
  auto& t = *this;
  auto& s = t.first();
  auto& other = t.open();
  ASSERT_FALSE(std::get<0>(t.await(other.async_create(t.path("svc"), "", {}, tok))));
  ASSERT_FALSE(std::get<0>(t.await(other.async_create(t.path("svc/api"), "", {}, tok))));
  ASSERT_FALSE(std::get<0>(t.await(
      other.async_create(t.path("svc/api/host-1"), "theirs", {.mode = zkr::create_mode::ephemeral}, tok))));
  auto n = t.make(s, "mine");
  n->start();
  auto [ec] = t.await(n->async_wait_registered(tok));
  EXPECT_EQ(ec, errc::node_exists) << ec.message();
  EXPECT_EQ(n->state(), ephemeral_node_state::pending);
  EXPECT_EQ(n->error(), errc::node_exists);
  EXPECT_EQ(n->blocking_owner(), other.session_id());
  t.advance(300ms);
  auto [rec, data, st] = t.read(s);
  ASSERT_FALSE(rec);
  EXPECT_EQ(data, "theirs") << "never written over";
  EXPECT_EQ(st.ephemeral_owner, other.session_id());
  // The other session ends: its node goes, ours takes its place.
  auto wait = n->async_wait_registered(asio::deferred);  // started below, after the error cleared
  ASSERT_FALSE(std::get<0>(t.await(other.async_close(tok))));
  ASSERT_TRUE(t.present(s, "mine"));
  EXPECT_FALSE(std::get<0>(t.await(std::move(wait)(tok))));
  EXPECT_FALSE(n->error());
  EXPECT_EQ(n->blocking_owner(), 0);
  EXPECT_FALSE(std::get<0>(t.await(n->async_close(tok))));
}

TYPED_TEST(node, set_data_reaches_the_server_and_every_later_create) {
  auto& t = *this;
  auto& s = t.first();
  auto& other = t.open();
  auto n = t.make(s, "v1");
  EXPECT_FALSE(std::get<0>(t.await(n->async_set_data("v0", tok)))) << "latent: kept for the start";
  EXPECT_EQ(n->data(), "v0");
  n->start();
  ASSERT_FALSE(std::get<0>(t.await(n->async_wait_registered(tok))));
  ASSERT_TRUE(t.present(s, "v0"));
  auto [ec] = t.await(n->async_set_data("v2", tok));
  ASSERT_FALSE(ec) << ec.message();
  auto [rec, data, st] = t.read(s);
  EXPECT_EQ(data, "v2") << "completed only once the server holds it";
  ASSERT_FALSE(std::get<0>(t.await(other.async_remove(t.path("svc/api/host-1"), -1, tok))));
  ASSERT_TRUE(t.present(s, "v2")) << "re-created with the new data";
  EXPECT_FALSE(std::get<0>(t.await(n->async_close(tok))));
}

TYPED_TEST(node, waits_end_with_every_cancellation_type_and_leave_the_node_alone) {
  auto& t = *this;
  auto& s = t.first();
  auto& other = t.open();
  ASSERT_FALSE(std::get<0>(t.await(other.async_create(t.path("svc"), "", {}, tok))));
  ASSERT_FALSE(std::get<0>(t.await(other.async_create(t.path("svc/api"), "", {}, tok))));
  // Someone else's node: set_data waits until ours is there.
  ASSERT_FALSE(std::get<0>(t.await(
      other.async_create(t.path("svc/api/host-1"), "theirs", {.mode = zkr::create_mode::ephemeral}, tok))));
  auto n = t.make(s, "mine");
  n->start();
  EXPECT_EQ(std::get<0>(t.await(n->async_wait_registered(tok))), errc::node_exists);
  for (const auto type : {asio::cancellation_type::terminal, asio::cancellation_type::partial,
                          asio::cancellation_type::total}) {
    SCOPED_TRACE(static_cast<int>(type));
    asio::cancellation_signal sig;
    auto f = n->async_set_data("mine-2", asio::bind_cancellation_slot(sig.slot(), tok));
    t.advance(50ms);
    asio::post(s.get_executor(), [&sig, type] { sig.emit(type); });
    auto [ec] = t.await(std::move(f));
    EXPECT_EQ(ec, std::errc::operation_canceled) << ec.message();
  }
  EXPECT_EQ(n->data(), "mine-2") << "the data stays set";
  ASSERT_FALSE(std::get<0>(t.await(other.async_close(tok))));
  ASSERT_TRUE(t.present(s, "mine-2"));
  EXPECT_FALSE(std::get<0>(t.await(n->async_close(tok))));
}

TYPED_TEST(node, every_completion_token_works) {
  auto& t = *this;
  auto& s = t.first();
  auto n = t.make(s, "tokens");
  n->start();
  // 1. A callback: runs on the session's executor.
  std::promise<std::error_code> p;
  n->async_wait_registered([&](std::error_code ec) { p.set_value(ec); });
  EXPECT_FALSE(t.await(p.get_future()));
  // 2. A future (with zkr's std::error_code the future holds the whole tuple).
  const std::error_code fec = t.await(n->async_set_data("tokens-2", asio::use_future));
  EXPECT_FALSE(fec);
  // 3. A coroutine on the session's executor.
  using ex_t = typename TestFixture::session::executor_type;
  auto coro = [](ephemeral_node<typename TestFixture::session>& node) -> asio::awaitable<bool, ex_t> {
    const std::error_code ec1 = co_await node.async_set_data("tokens-3", asio::use_awaitable_t<ex_t>{});
    const std::error_code ec2 = co_await node.async_wait_registered(asio::use_awaitable_t<ex_t>{});
    co_return !ec1 && !ec2;
  };
  auto [eptr, ok] = t.await(asio::co_spawn(s.get_executor(), coro(*n), tok));
  EXPECT_FALSE(eptr);
  EXPECT_TRUE(ok);
  EXPECT_TRUE(t.present(s, "tokens-3"));
  // 4. Deferred: nothing happens until it is started.
  auto op = n->async_close(asio::deferred);
  t.advance(50ms);
  EXPECT_EQ(n->state(), ephemeral_node_state::registered);
  auto [ec] = t.await(std::move(op)(tok));
  EXPECT_FALSE(ec);
  EXPECT_EQ(std::get<0>(t.read(s)), errc::no_node);
}

TYPED_TEST(node, destroying_a_started_node_removes_it_in_the_background) {
  auto& t = *this;
  auto& s = t.first();
  {
    auto n = t.make(s, "gone-soon");
    n->start();
    ASSERT_FALSE(std::get<0>(t.await(n->async_wait_registered(tok))));
  }
  EXPECT_TRUE(t.eventually([&] { return std::get<0>(t.read(s)) == errc::no_node; }));
}

}  // namespace both

// =============================================================================================
// 3. Fault sweeps in the simulator
// =============================================================================================
namespace sweep {

using namespace zkr::test::sim;
using zkr::sim::clock_duration;
using zkr::sim::clock_time;
using zkr::sim::cluster;
using zkr::sim::endpoint;
using zkr::sim::process_id;

constexpr auto session_timeout = 4000ms;
const std::string base = "/services/api";

double secs(clock_time t) { return std::chrono::duration<double>(t.time_since_epoch()).count(); }
std::int64_t ms(clock_duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); }

/// A simulated session that can run a hook right before it sends a create of its node, so a
/// test can cut its link while the create is in flight (its outcome unknown to the client).
class cutting_session : public zkr::sim::session {
 public:
  cutting_session(cluster& c, zkr::sim::session_options o) : zkr::sim::session(c, std::move(o)) {}
  std::function<void()> before_create;

  template <class Token>
  auto async_create(std::string_view path, std::string_view data, const zkr::create_options& opts, Token&& token) {
    if (before_create && opts.mode == zkr::create_mode::ephemeral) before_create();
    return zkr::sim::session::async_create(path, data, opts, std::forward<Token>(token));
  }
};
static_assert(zkr::backend<cutting_session>);

struct totals {
  zkr::recipes::ephemeral_node_stats stats{};
  clock_duration worst{};  // the longest time from a fault's end to the node being back
  int recoveries = 0;
  void add(const zkr::recipes::ephemeral_node_stats& s) {
    stats.creates += s.creates;
    stats.adopted += s.adopted;
    stats.waited_earlier += s.waited_earlier;
    stats.waited_foreign += s.waited_foreign;
    stats.deletions += s.deletions;
    stats.writes += s.writes;
    stats.retries += s.retries;
  }
};

template <class S>
struct world {
  struct client {
    std::unique_ptr<S> session;
    std::unique_ptr<ephemeral_node<S>> node;
    zkr::subscription sub;
    process_id proc = 0;
    std::string name;
    std::string path;
    std::string data;
    // presence monitor
    bool present = false;
    std::optional<clock_time> due;  // a fault ended: the node must be back by then
    clock_time fault_end{};
  };

  world(std::uint64_t seed, std::size_t n, clock_duration bound_)
      : c({.seed = seed, .servers = 3, .tick_time = 200ms}), bound(bound_) {
    for (std::size_t i = 0; i < n; ++i) {
      auto cl = std::make_unique<client>();
      cl->session = std::make_unique<S>(
          c, zkr::sim::session_options{.connect_string = c.connect_string(), .session_timeout = session_timeout});
      cl->proc = cl->session->process();
      cl->name = "c" + std::to_string(cl->proc);
      cl->path = base + "/" + cl->name;
      cl->data = R"({"name":"api","id":")" + cl->name + R"("})";
      cl->node = std::make_unique<ephemeral_node<S>>(*cl->session, cl->path, cl->data);
      client* raw = cl.get();
      cl->sub = cl->node->subscribe([this, raw](const ephemeral_node_event& e) {
        log(raw->name + " " + std::string(to_string(e.state)) + (e.error ? " error=" + e.error.message() : "") +
            (e.blocking_owner ? " blocked-by=" + std::to_string(e.blocking_owner) : ""));
      });
      clients.push_back(std::move(cl));
    }
    admin = std::make_unique<zkr::sim::session>(
        c, zkr::sim::session_options{.connect_string = c.connect_string(), .session_timeout = session_timeout,
                                     .name = "admin"});
  }

  void start() {
    for (auto& cl : clients) cl->node->start();
    sample();
  }

  /// Every 20 ms: is each client's node on the leader's tree, owned by its current session,
  /// with its data? Checks the deadline set by fault ends; never sees foreign data under a
  /// client's session.
  void sample() {
    const auto lead = c.leader();
    for (auto& cl : clients) {
      bool here = false;
      if (lead) {
        if (const auto* n = c.tree(*lead).find(cl->path)) {
          const bool mine = n->kind == zkr::sim::node_kind::ephemeral && n->owner == cl->session->session_id();
          here = mine && n->data == cl->data && cl->session->session_id() != 0;
          // Only a registrar writes its node; an admin's data shows up only between its write
          // and the write-back, which the sweep that writes checks separately.
          if (mine && n->data != cl->data && !vandalism) ADD_FAILURE() << cl->name << " holds foreign data: " << n->data;
        }
      }
      if (here && !cl->present) log(cl->name + " present on the leader");
      if (!here && cl->present) log(cl->name + " absent on the leader");
      cl->present = here;
      if (here && cl->due) {
        const auto took = c.now() - cl->fault_end;
        worst = std::max(worst, took);
        ++recoveries;
        cl->due.reset();
      }
      if (!here && cl->due && c.now() > *cl->due) {
        ADD_FAILURE() << cl->name << " not back " << ms(bound) << " ms after the fault ended at " << secs(cl->fault_end);
        cl->due.reset();
      }
    }
    if (stopped) return;
    sampler = std::make_unique<zkr::sim::timer>(c.get_scheduler().get_executor());
    sampler->expires_after(20ms);
    sampler->async_wait([this](std::error_code ec) {
      if (!ec) sample();
    });
  }

  /// A fault touching `cl` (or everyone, if null) begins: no deadline runs until it ends.
  void fault_started(client* cl) {
    for (auto& x : clients) {
      if (cl == nullptr || x.get() == cl) x->due.reset();
    }
  }

  /// A fault touching `cl` (or everyone, if null) ends now: its node must be back within the bound.
  void fault_ended(client* cl) {
    for (auto& x : clients) {
      if (cl != nullptr && x.get() != cl) continue;
      x->fault_end = c.now();
      x->due = c.now() + bound;
    }
  }

  void log(const std::string& what) {
    std::ostringstream os;
    os.setf(std::ios::fixed);
    os.precision(6);
    os << secs(c.now()) << "  " << what;
    timeline.push_back(os.str());
  }

  /// Runs until `until`, then checks every node is back, closes them all and checks that no
  /// node is left.
  void finish(clock_time until, totals& sum) {
    c.run_until(until);
    for (auto& cl : clients) {
      EXPECT_TRUE(cl->present) << cl->name << " not present after the quiet period";
      EXPECT_FALSE(cl->due) << cl->name << " still due";
      EXPECT_EQ(cl->node->state(), ephemeral_node_state::registered) << cl->name;
      EXPECT_FALSE(cl->node->error()) << cl->name << ": " << cl->node->error().message();
      sum.add(cl->node->stats());
    }
    stopped = true;
    for (auto& cl : clients) {
      auto [ec] = wait(c, cl->node->async_close(fut));
      EXPECT_FALSE(ec) << cl->name << " close: " << ec.message();
      const auto lead = c.leader();
      ASSERT_TRUE(lead);
      EXPECT_EQ(c.tree(*lead).find(cl->path), nullptr) << cl->name << ": a closed node leaves no znode";
    }
    sum.worst = std::max(sum.worst, worst);
    sum.recoveries += recoveries;
    for (auto& cl : clients) {
      cl->sub.reset();
      cl->node.reset();
      wait(c, cl->session->async_close(fut));
    }
    wait(c, admin->async_close(fut));
    sampler.reset();
  }

  void report(const std::vector<std::string>& faults) const {
    std::cout << "---- faults\n";
    for (const auto& f : faults) std::cout << "  " << f << "\n";
    std::cout << "---- timeline\n";
    for (const auto& l : timeline) std::cout << "  " << l << "\n";
  }

  client* pick() { return clients[static_cast<std::size_t>(c.random().uniform(clients.size()))].get(); }
  clock_duration draw(clock_duration from, clock_duration to) { return c.random().uniform_duration(from, to); }

  cluster c;
  clock_duration bound;
  std::vector<std::unique_ptr<client>> clients;
  std::unique_ptr<zkr::sim::session> admin;
  std::unique_ptr<zkr::sim::timer> sampler;
  clock_duration worst{};
  int recoveries = 0;
  bool stopped = false;
  bool vandalism = false;
  std::vector<std::string> timeline;
};

/// Runs `scenario(world, faults)` for every seed, then the common checks at `end`.
template <class S = zkr::sim::session, class Scenario>
totals run_sweep(std::size_t clients, clock_duration bound, clock_duration end, Scenario scenario) {
  totals sum;
  const auto first = first_seed();
  for (int i = 0; i < sweep_count(); ++i) {
    const std::uint64_t seed = first + static_cast<std::uint64_t>(i);
    ZKR_SEED_TRACE(seed);
    world<S> w(seed, clients, bound);
    std::vector<std::string> faults;
    w.start();
    scenario(w, faults);
    w.finish(clock_time{} + end, sum);
    if (::testing::Test::HasFailure()) {
      w.report(faults);
      break;
    }
  }
  return sum;
}

void print(const char* what, const totals& sum) {
  std::cout << "[ measured ] " << what << ": worst time back after a fault " << ms(sum.worst) << " ms over "
            << sum.recoveries << " recoveries; creates=" << sum.stats.creates << " adopted=" << sum.stats.adopted
            << " waited_earlier=" << sum.stats.waited_earlier << " waited_foreign=" << sum.stats.waited_foreign
            << " deletions=" << sum.stats.deletions << " writes=" << sum.stats.writes << " retries=" << sum.stats.retries
            << std::endl;
}

std::string at_s(clock_time t) { return std::to_string(secs(t)); }

TEST(sweep, session_expiry) {
  // The leader expires a random client's session at random times. The client hears of it when
  // it next talks to its server, opens a new session and creates its node there.
  // Bound: the session timeout (the client notices within its ping interval, T/3, and
  // reconnects at once), with room for a connect attempt.
  const auto sum = run_sweep(3, session_timeout + 2s, 60s, [](world<zkr::sim::session>& w, std::vector<std::string>& faults) {
    for (int k = 0; k < 6; ++k) {
      const auto t = w.draw(2s, 45s);
      auto* cl = w.pick();
      faults.push_back(at_s(clock_time{} + t) + " expire " + cl->name);
      w.c.at(t, "expire", [&w, cl](cluster& c) {
        if (c.expire_session(cl->session->session_id())) w.fault_ended(cl);
      });
    }
  });
  print("session expiry", sum);
  EXPECT_GT(sum.recoveries, 0);
}

TEST(sweep, deletion_and_writes_by_someone_else) {
  // An admin session deletes a client's node, or writes other data into it, at random times:
  // the watch brings the node (or our data) back within a few round trips.
  const auto sum = run_sweep(3, 1s, 40s, [](world<zkr::sim::session>& w, std::vector<std::string>& faults) {
    w.vandalism = true;
    for (int k = 0; k < 12; ++k) {
      const auto t = w.draw(1s, 30s);
      auto* cl = w.pick();
      const bool del = w.c.random().uniform(2) == 0;
      faults.push_back(at_s(clock_time{} + t) + (del ? " delete " : " overwrite ") + cl->name);
      w.c.at(t, del ? "delete" : "overwrite", [&w, cl, del](cluster&) {
        auto done = [&w, cl](std::error_code ec) {
          if (!ec) w.fault_ended(cl);
        };
        if (del) {
          w.admin->async_remove(cl->path, -1, done);
        } else {
          w.admin->async_set(cl->path, "vandal", -1, [done](std::error_code ec, zkr::stat) { done(ec); });
        }
      });
    }
  });
  print("deletion and foreign writes", sum);
  EXPECT_GT(sum.stats.deletions, 0u);
  EXPECT_GT(sum.stats.writes, 0u);
}

TEST(sweep, partitions) {
  // A client is cut off from every server for 0.1-12 s: shorter than its timeout (the same
  // session resumes), or longer (presumed lost: a new session; the old one's node stays until
  // the server expires it, and is waited out). Bound after the heal: the old session's expiry
  // on the server (at most T after its last touch, rounded up to a tick) plus a connect
  // attempt that was under way to a cut-off server (T/3) and a backoff (250 ms).
  const auto sum = run_sweep(3, session_timeout + session_timeout / 3 + 1500ms, 60s,
                             [](world<zkr::sim::session>& w, std::vector<std::string>& faults) {
                               clock_duration t = 1s;
                               for (int k = 0; k < 4; ++k) {
                                 t += w.draw(500ms, 3s);
                                 const auto len = w.draw(100ms, 12s);
                                 auto* cl = w.pick();
                                 faults.push_back(at_s(clock_time{} + t) + " isolate " + cl->name + " for " +
                                                  std::to_string(ms(len)) + " ms");
                                 w.c.at(t, "isolate", [&w, cl](cluster& c) {
                                   w.fault_started(cl);
                                   c.isolate(endpoint::client(cl->proc));
                                 });
                                 w.c.at(t + len, "heal", [&w, cl](cluster& c) {
                                   c.heal();
                                   w.fault_ended(cl);
                                 });
                                 t += len;
                               }
                             });
  print("partitions", sum);
  EXPECT_GT(sum.recoveries, 0);
}

TEST(sweep, long_elections_leave_an_earlier_sessions_node_to_wait_out) {
  // The ensemble elects for 5-9 s, longer than a client's presumed-lost deadline: every client
  // gives its session up and opens a new one after the election, while the new leader kept the
  // old sessions (fresh timeout): the old nodes are still there, owned by the clients' earlier
  // sessions. The node must wait for their expiry (never adopt them) and then register.
  // Bound after the election: T (old session's fresh timeout) + a tick + a connect attempt.
  const auto sum = run_sweep(3, session_timeout + session_timeout / 3 + 1500ms, 50s,
                             [](world<zkr::sim::session>& w, std::vector<std::string>& faults) {
                               const auto t = w.draw(2s, 10s);
                               const auto len = w.draw(5s, 9s);
                               faults.push_back(at_s(clock_time{} + t) + " election for " + std::to_string(ms(len)) + " ms");
                               w.c.at(t, "election", [&w, len](cluster& c) {
                                 w.fault_started(nullptr);
                                 c.start_election(len);
                               });
                               w.c.at(t + len, "election over", [&w](cluster&) { w.fault_ended(nullptr); });
                             });
  print("long elections", sum);
  if (sweep_count() >= 5) {
    EXPECT_GT(sum.stats.waited_earlier, 0u) << "no earlier session's node was waited out";
  }
}

TEST(sweep, connection_loss_right_after_a_create_is_sent) {
  // A client's link is cut 0-1.5 ms after it sends its create (before, while or after the
  // server applies it) for 0.1-6 s: the create's outcome is unknown; the node must settle it by
  // reading (adopt our node if it was applied in this session), never create blindly.
  const auto sum = run_sweep<cutting_session>(
      3, session_timeout + session_timeout / 3 + 1500ms, 50s,
      [](world<cutting_session>& w, std::vector<std::string>& faults) {
        auto cuts = std::make_shared<int>(0);
        for (auto& cl : w.clients) {
          auto* raw = cl.get();
          cl->session->before_create = [&w, &faults, raw, cuts] {
            if (w.c.now() > clock_time{} + 30s || *cuts >= 6 || w.c.random().uniform(3) == 0) return;
            ++*cuts;
            const auto after = w.draw(0us, 1500us);
            const auto len = w.draw(100ms, 6s);
            faults.push_back(at_s(w.c.now()) + " cut " + raw->name + " +" +
                             std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(after).count()) +
                             "us for " + std::to_string(ms(len)) + " ms");
            w.c.at(after, "cut", [&w, raw](cluster& c) {
              w.fault_started(raw);
              c.isolate(endpoint::client(raw->proc));
            });
            w.c.at(after + len, "heal", [&w, raw](cluster& c) {
              c.heal();
              w.fault_ended(raw);
            });
          };
        }
        // Deletions make the clients create again (and so meet more cuts).
        for (int k = 0; k < 8; ++k) {
          const auto t = w.draw(1s, 30s);
          auto* cl = w.pick();
          w.c.at(t, "delete", [&w, cl](cluster&) { w.admin->async_remove(cl->path, -1, [](std::error_code) {}); });
        }
      });
  print("connection loss mid-create", sum);
  if (sweep_count() >= 10) {
    EXPECT_GT(sum.stats.adopted, 0u) << "no create was adopted after a connection loss";
  }
}

TEST(sweep, client_gc_pauses) {
  // A client process stops for 0.1-10 s (its session may expire meanwhile); once it runs
  // again its node must come back within the bound.
  const auto sum = run_sweep(3, session_timeout + session_timeout / 3 + 1500ms, 50s,
                             [](world<zkr::sim::session>& w, std::vector<std::string>& faults) {
                               clock_duration t = 1s;
                               for (int k = 0; k < 3; ++k) {
                                 t += w.draw(1s, 4s);
                                 const auto len = w.draw(100ms, 10s);
                                 auto* cl = w.pick();
                                 faults.push_back(at_s(clock_time{} + t) + " pause " + cl->name + " " +
                                                  std::to_string(ms(len)) + " ms");
                                 w.c.at(t, "pause", [&w, cl, len](cluster& c) {
                                   w.fault_started(cl);
                                   c.pause_process(cl->proc, len);
                                 });
                                 w.c.at(t + len, "resumed", [&w, cl](cluster&) { w.fault_ended(cl); });
                                 t += len;
                               }
                             });
  print("client GC pauses", sum);
}

TEST(sweep, random_fault_schedules) {
  // Kills, restarts, partitions, elections, GC pauses and expiries drawn from the seed over
  // 40 s; afterwards every node must be back within the bound (from the last fault's end: a
  // killed leader's election, an old session's expiry, a connect attempt) and stay.
  const auto sum = run_sweep(3, 2 * session_timeout + 2s, 80s, [](world<zkr::sim::session>& w, std::vector<std::string>& faults) {
    std::vector<process_id> procs;
    for (auto& cl : w.clients) procs.push_back(cl->proc);
    cluster::fault_plan plan;
    plan.start = 1s;
    plan.span = 35s;
    plan.count = 12;
    plan.max_length = 8s;
    faults = w.c.schedule_random_faults(plan, procs);
    // Every fault is undone by 35 s + 8 s: from then on each node must be back in the bound.
    w.c.at(plan.start + plan.span + plan.max_length, "faults over", [&w](cluster& c) {
      for (std::size_t i = 0; i < c.size(); ++i) {
        if (!c.alive(i)) c.restart_server(i);
      }
      c.heal();
      w.fault_ended(nullptr);
    });
  });
  print("random fault schedules", sum);
}

TEST(sweep, two_registrars_of_one_path_never_overwrite_each_other) {
  // Two clients register the same path with different data: one wins; the other reports
  // node_exists and waits. Whenever the winner's session ends (expiry) or it closes, the other
  // takes over. The node's data is always its owner's.
  for (int i = 0; i < sweep_count(); ++i) {
    const std::uint64_t seed = first_seed() + static_cast<std::uint64_t>(i);
    ZKR_SEED_TRACE(seed);
    cluster c({.seed = seed, .servers = 3, .tick_time = 200ms});
    std::vector<std::unique_ptr<zkr::sim::session>> ss;
    std::vector<std::unique_ptr<ephemeral_node<zkr::sim::session>>> ns;
    for (int k = 0; k < 2; ++k) {
      ss.push_back(std::make_unique<zkr::sim::session>(
          c, zkr::sim::session_options{.connect_string = c.connect_string(), .session_timeout = session_timeout}));
      ns.push_back(std::make_unique<ephemeral_node<zkr::sim::session>>(*ss.back(), base + "/shared", "data-" + std::to_string(k)));
      ns.back()->start();
    }
    int violations = 0;
    int takeovers = 0;
    std::int64_t last_owner = 0;
    const auto check = [&] {
      const auto lead = c.leader();
      if (!lead) return;
      const auto* n = c.tree(*lead).find(base + "/shared");
      if (n == nullptr) return;
      for (int k = 0; k < 2; ++k) {
        if (n->owner == ss[static_cast<std::size_t>(k)]->session_id() && n->data != "data-" + std::to_string(k)) ++violations;
      }
      if (n->owner != last_owner) {
        if (last_owner != 0) ++takeovers;
        last_owner = n->owner;
      }
    };
    for (int step = 0; step < 2000; ++step) {
      c.run_for(20ms);
      check();
      if (step % 400 == 200) {
        // Expire whoever owns it now.
        for (auto& s : ss) {
          if (s->session_id() == last_owner) c.expire_session(s->session_id());
        }
      }
    }
    EXPECT_EQ(violations, 0) << "someone's node carried the other's data";
    EXPECT_GT(takeovers, 0);
    // Exactly one is registered, the other reports the owner in its way.
    const int registered = (ns[0]->state() == ephemeral_node_state::registered) + (ns[1]->state() == ephemeral_node_state::registered);
    EXPECT_EQ(registered, 1);
    for (auto& n : ns) {
      if (n->state() != ephemeral_node_state::registered) {
        EXPECT_EQ(n->error(), errc::node_exists);
        EXPECT_EQ(n->blocking_owner(), last_owner);
      }
    }
    for (auto& n : ns) EXPECT_FALSE(std::get<0>(wait(c, n->async_close(fut))));
    ns.clear();
    for (auto& s : ss) wait(c, s->async_close(fut));
    if (::testing::Test::HasFailure()) break;
  }
}

}  // namespace sweep

}  // namespace
