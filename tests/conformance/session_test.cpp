// Goal: the session-level contract, alike on real ZooKeeper and on the simulator: the
// negotiated timeout, a session expired by the server (lost with session_expired, its watches
// ended with session_expired, its ephemeral nodes gone for everyone, a new generation
// connected), requests in flight when the connection breaks (connection_loss = outcome
// unknown) and a brief outage that keeps the session, and a session presumed lost after its
// negotiated timeout without a server.
// Method: the typed fixture (fixture.hpp). Expiry is forced by the backend: on the real
// server a second C-client handle attaches to the session and closes it (Curator's
// KillSession); in the simulator cluster::expire_session. The outage cases stop the server:
// on the real side a standalone server of the test's own (tickTime 1 s), in the simulator a
// 1-server cluster with the same tick. What the timing of a real outage decides (which
// in-flight request was applied) is asserted as a set of allowed outcomes on the real server
// and exactly on the simulator, where nothing runs between the requests and the crash.
#include <algorithm>
#include <string>
#include <vector>

#include "fixture.hpp"

namespace zkr::conformance {
namespace {

template <class B>
class sessions : public fixture<B> {};
TYPED_TEST_SUITE(sessions, backends, backend_names);

template <class B>
class outages : public fixture<B, topology::own_single> {};
TYPED_TEST_SUITE(outages, backends, backend_names);

/// The transitions of a forced expiry: exactly `tail` in the simulator. On the real server the
/// KillSession trick adds a prefix: the second handle takes the session over (the server
/// closes the first connection: suspended, then reconnected to the still-live session) before
/// it closes it; so there any number of {suspended, reconnected} pairs may come first.
bool ends_with_expiry(const std::vector<session_state>& got, const std::vector<session_state>& tail, bool exact) {
  if (got.size() < tail.size() || !std::equal(tail.begin(), tail.end(), got.end() - static_cast<std::ptrdiff_t>(tail.size()))) {
    return false;
  }
  const std::size_t prefix = got.size() - tail.size();
  if (exact) return prefix == 0;
  if (prefix % 2 != 0) return false;
  for (std::size_t i = 0; i < prefix; i += 2) {
    if (got[i] != session_state::suspended || got[i + 1] != session_state::reconnected) return false;
  }
  return true;
}

TYPED_TEST(sessions, the_timeout_is_negotiated_within_the_servers_bounds) {
  // The test servers' bounds: minSessionTimeout = 2 ticks (400 ms), maxSessionTimeout = 60 s.
  auto& t = *this;
  EXPECT_EQ(t.open({.session_timeout = 100ms}).negotiated_timeout(), 400ms);
  EXPECT_EQ(t.open({.session_timeout = 400ms}).negotiated_timeout(), 400ms);
  EXPECT_EQ(t.open({.session_timeout = 1234ms}).negotiated_timeout(), 1234ms);
  EXPECT_EQ(t.open({.session_timeout = 15s}).negotiated_timeout(), 15s);
  EXPECT_EQ(t.open({.session_timeout = 100s}).negotiated_timeout(), 60s);
  auto& s = t.first();
  EXPECT_NE(s.session_id(), 0);
  EXPECT_EQ(s.generation(), 1u);
  EXPECT_EQ(s.state(), session_state::connected);
  EXPECT_EQ(s.session_password().size(), 16u);
  EXPECT_NE(t.open().session_id(), s.session_id());
}

TYPED_TEST(sessions, server_side_expiry_is_lost_then_a_new_generation) {
  auto& t = *this;
  auto& observer = t.first();
  auto& s = t.open();
  state_log states;
  auto sub = s.subscribe([&](const session_event& e) { states.push(e); });
  auto& watches = t.new_watch_log();
  auto& observed = t.new_watch_log();
  const auto eph = t.path("eph");
  ASSERT_FALSE(t.err(s.async_create(eph, "", {.mode = create_mode::ephemeral}, tok)));
  ASSERT_FALSE(t.err(s.async_get(t.root_, watches.handler(1), tok)));
  ASSERT_EQ(t.err(s.async_exists(t.path("missing"), watches.handler(2), tok)), errc::no_node);
  ASSERT_FALSE(t.err(s.async_get_children(t.root_, watches.handler(3), tok)));
  ASSERT_FALSE(t.err(observer.async_exists(eph, observed.handler(1), tok)));
  const auto old_id = s.session_id();

  bool lost = false;
  for (int attempt = 0; attempt < 5 && !lost; ++attempt) {
    ASSERT_TRUE(t.b_.expire(s)) << "the backend could not expire the session";
    lost = t.wait_state(states, session_state::lost, 15s);
  }
  ASSERT_TRUE(lost) << "the session never learned of its expiry";
  ASSERT_TRUE(t.eventually([&] { return states.size() >= 1 && states.items().back().state == session_state::connected; }))
      << "no new session after expiry";
  const auto events = states.items();
  EXPECT_TRUE(ends_with_expiry(states.states(), {session_state::suspended, session_state::lost, session_state::connected},
                               TestFixture::simulated))
      << testing::PrintToString(states.states());
  const auto lost_it = std::find_if(events.begin(), events.end(), [](auto& e) { return e.state == session_state::lost; });
  EXPECT_EQ(lost_it->reason, errc::session_expired) << lost_it->reason.message();
  EXPECT_EQ(lost_it->generation, 1u);
  EXPECT_EQ(events.back().generation, 2u);
  EXPECT_EQ(s.generation(), 2u);
  EXPECT_NE(s.session_id(), old_id);
  EXPECT_NE(s.session_id(), 0);

  // Each watch of the dead session completed exactly once, with the session's end. One
  // exception on a real server: the test expires the session with a closeSession from a
  // second connection. If `s` had reconnected by then, the server deletes `eph` while the
  // session's own connection still holds the children watch on the root, so watch 3 may
  // fire with that deletion before the connection is closed. The simulator's leader
  // expires a session as its tracker does, after the connection is gone: exactly expired.
  ASSERT_TRUE(t.wait_watches(watches, 3));
  for (const auto& w : watches.items()) {
    const bool own_deletion_seen = !TestFixture::simulated && w.id == 3 && !w.ec &&
                                   w.event == watch_event{event_type::children_changed, t.root_};
    if (!own_deletion_seen) {
      EXPECT_EQ(w.ec, errc::session_expired) << w.id << ": " << w.ec.message();
    }
  }
  // Its ephemeral node is gone, for everyone; the new session works.
  ASSERT_TRUE(t.wait_watches(observed, 1));
  EXPECT_FALSE(observed.items()[0].ec);
  EXPECT_EQ(observed.items()[0].event, (watch_event{event_type::deleted, eph}));
  EXPECT_EQ(t.err(observer.async_exists(eph, tok)), errc::no_node);
  EXPECT_EQ(t.err(s.async_exists(eph, tok)), errc::no_node);
  auto [ec, created, st] = t.await(s.async_create(eph, "", {.mode = create_mode::ephemeral}, tok));
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(st.ephemeral_owner, s.session_id());
  // The old watches are not re-armed on the new session: a change fires nothing more.
  ASSERT_FALSE(t.err(observer.async_create(t.path("missing"), "", {}, tok)));
  ASSERT_FALSE(t.err(s.async_exists(t.path("missing"), tok)));
  t.drain();
  EXPECT_EQ(watches.size(), 3u);
}

TYPED_TEST(sessions, without_reopen_an_expired_session_stays_lost) {
  auto& t = *this;
  auto& s = t.open({.reopen_on_expiry = false});
  state_log states;
  // A wait for `connected` that starts while the session is being lost (from the listener)
  // must end too: nothing will ever connect again.
  zkr::test::recorder<std::error_code> waits;
  auto sub = s.subscribe([&](const session_event& e) {
    if (e.state == session_state::lost) s.async_wait_connected([&waits](std::error_code ec) { waits.push(ec); });
    states.push(e);
  });
  bool lost = false;
  for (int attempt = 0; attempt < 5 && !lost; ++attempt) {
    ASSERT_TRUE(t.b_.expire(s));
    lost = t.wait_state(states, session_state::lost, 15s);
  }
  ASSERT_TRUE(lost);
  t.advance(1s);  // give a (wrong) reopen the chance to show up
  EXPECT_EQ(s.state(), session_state::lost);
  EXPECT_EQ(s.generation(), 1u);
  EXPECT_TRUE(ends_with_expiry(states.states(), {session_state::suspended, session_state::lost}, TestFixture::simulated))
      << testing::PrintToString(states.states());
  EXPECT_EQ(t.err(s.async_get("/", tok)), errc::session_expired);
  EXPECT_EQ(t.err(s.async_create(t.path("x"), "", {}, tok)), errc::session_expired);
  EXPECT_EQ(t.err(s.async_wait_connected(tok)), errc::session_expired);
  ASSERT_TRUE(t.eventually([&] { return waits.size() >= 1; })) << "a wait for `connected` never ended";
  EXPECT_EQ(waits.items()[0], errc::session_expired) << waits.items()[0].message();
}

TYPED_TEST(outages, in_flight_requests_at_a_crash_are_connection_loss_and_maybe_applied) {
  auto& t = *this;
  auto& s = t.open({.session_timeout = 15s});
  ASSERT_EQ(s.negotiated_timeout(), 15s);
  state_log states;
  auto sub = s.subscribe([&](const session_event& e) { states.push(e); });
  const auto id = s.session_id();
  ASSERT_FALSE(t.err(s.async_add_auth("digest", "app:pw", tok)));
  ASSERT_FALSE(t.err(s.async_create(t.path("eph"), "", {.mode = create_mode::ephemeral}, tok)));
  auto& watches = t.new_watch_log();
  ASSERT_EQ(t.err(s.async_exists(t.path("w"), watches.handler(1), tok)), errc::no_node);

  constexpr int n = 10;
  std::vector<std::future<std::tuple<std::error_code, std::string, zkr::stat>>> creates;
  for (int i = 0; i < n; ++i) creates.push_back(s.async_create(t.path("f" + std::to_string(i)), "", {}, tok));
  t.b_.kill_server(0);
  std::vector<std::error_code> outcomes;
  for (auto& f : creates) {
    const auto ec = t.err(std::move(f));
    EXPECT_TRUE(!ec || ec == errc::connection_loss) << ec.message();
    outcomes.push_back(ec);
  }
  if constexpr (TestFixture::simulated) {
    // Nothing ran between the requests and the crash: none reached the server.
    for (const auto& ec : outcomes) EXPECT_EQ(ec, errc::connection_loss);
  }
  ASSERT_TRUE(t.wait_state(states, session_state::suspended));
  // A request while no server is reachable fails with connection loss (outcome unknown).
  EXPECT_EQ(t.err(s.async_get(t.path("eph"), tok)), errc::connection_loss);

  t.b_.restart_server(0);
  ASSERT_TRUE(t.wait_state(states, session_state::reconnected)) << "no reconnect after restart";
  EXPECT_EQ(states.states(), (std::vector<session_state>{session_state::suspended, session_state::reconnected}));
  EXPECT_EQ(s.session_id(), id);
  EXPECT_EQ(s.generation(), 1u);
  auto [ec2, st2] = t.await(s.async_exists(t.path("eph"), tok));
  EXPECT_FALSE(ec2) << "an ephemeral node must survive a brief outage: " << ec2.message();
  EXPECT_EQ(st2.ephemeral_owner, id);
  // A succeeded create was applied; a connection-lost one may or may not have been.
  for (int i = 0; i < n; ++i) {
    const auto ec = t.err(s.async_exists(t.path("f" + std::to_string(i)), tok));
    if (!outcomes[static_cast<std::size_t>(i)]) {
      EXPECT_FALSE(ec) << "create " << i << " succeeded but its node is missing";
    } else {
      EXPECT_TRUE(!ec || ec == errc::no_node) << ec.message();
      if constexpr (TestFixture::simulated) {
        EXPECT_EQ(ec, errc::no_node) << "create " << i;
      }
    }
  }
  // The credential was sent again on the new connection, and counts once.
  ASSERT_FALSE(t.err(s.async_create(t.path("mine"), "", {.acl = creator_all_acl()}, tok)));
  auto [ec3, acls, st3] = t.await(s.async_get_acl(t.path("mine"), tok));
  ASSERT_FALSE(ec3) << ec3.message();
  EXPECT_EQ(acls.size(), 1u) << testing::PrintToString(acls);
  // The watch survived the outage (re-registered on reconnect) and fires as usual.
  ASSERT_FALSE(t.err(s.async_create(t.path("w"), "", {}, tok)));
  ASSERT_TRUE(t.wait_watches(watches, 1));
  EXPECT_FALSE(watches.items()[0].ec) << watches.items()[0].ec.message();
  EXPECT_EQ(watches.items()[0].event, (watch_event{event_type::created, t.path("w")}));
}

TYPED_TEST(outages, silence_for_the_negotiated_timeout_is_presumed_lost) {
  auto& t = *this;
  auto& s = t.open({.session_timeout = 2s});
  ASSERT_EQ(s.negotiated_timeout(), 2s);
  ASSERT_FALSE(t.err(s.async_add_auth("digest", "app:pw", tok)));
  ASSERT_FALSE(t.err(s.async_create(t.path("secret"), "s", {.acl = creator_all_acl()}, tok)));
  state_log states;
  auto sub = s.subscribe([&](const session_event& e) { states.push(e); });
  auto& watches = t.new_watch_log();
  ASSERT_FALSE(t.err(s.async_exists(t.path("secret"), watches.handler(7), tok)));

  t.b_.kill_server(0);
  ASSERT_TRUE(t.wait_state(states, session_state::suspended));
  const auto suspended_at = t.now();
  ASSERT_TRUE(t.wait_state(states, session_state::lost, 10s)) << "no lost while the server is down";
  const auto waited = t.now() - suspended_at;
  EXPECT_GE(waited, 2s - 100ms);
  EXPECT_LE(waited, 2s + (TestFixture::simulated ? 50ms : 2000ms));
  const auto lost = states.items().back();
  EXPECT_EQ(lost.reason, errc::session_lost) << lost.reason.message();
  EXPECT_EQ(lost.generation, 1u);
  ASSERT_TRUE(t.wait_watches(watches, 1));
  EXPECT_EQ(watches.items()[0].ec, errc::session_lost);

  // When a server is back, a new session opens by itself, with the credentials re-added.
  t.b_.restart_server(0);
  ASSERT_TRUE(t.eventually([&] { return states.items().back().state == session_state::connected; }, 30s));
  EXPECT_EQ(states.states(),
            (std::vector<session_state>{session_state::suspended, session_state::lost, session_state::connected}));
  EXPECT_EQ(s.generation(), 2u);
  auto [ec, data, st] = t.await(s.async_get(t.path("secret"), tok));
  EXPECT_FALSE(ec) << "auth must be re-added to the new session: " << ec.message();
  EXPECT_EQ(data, "s");
}

}  // namespace
}  // namespace zkr::conformance
