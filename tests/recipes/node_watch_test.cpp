// Goal: node_watch and children_watch (and the watch_hub under them) deliver only states the
// node really had, in mzxid / pzxid order, never backwards; re-arm after every event, after
// reconnection and session expiry (reporting what changed while away, czxid included); stop
// when a listener says so, when closed or cancelled; and N local subscribers of one path cost
// one server-side watch and one read per change.
// Method: (1) the sans-IO parts (classify, change_between, refresh_fsm, classify_failure)
// stepped by hand, table-driven; (2) typed cases on both backends (tests/conformance/
// fixture.hpp: a real ZooKeeper server and the simulator), every delivered sequence checked
// by check_sequence, reads counted by a forwarding session (probe_session.hpp) and server-side
// watches read from the server (simulator: its data trees; real: the 4-letter word wchp);
// (3) a seeded fault sweep on the simulator (writers, partitions, expiry, elections, GC
// pauses, server crashes): every consumer's sequence is checked, every delivered state is
// checked against what the writers wrote, and once quiet every watch must equal the leader's
// tree. A failure prints the seed and the replay command.
#include <algorithm>
#include <chrono>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <zkr/recipes/children_watch.hpp>
#include <zkr/recipes/node_watch.hpp>
#include <zkr/recipes/watch_hub.hpp>

#include "conformance/fixture.hpp"
#include "recipes/scripted_session.hpp"
#include "recipes/sim_harness.hpp"
#include "recipes/watch_support.hpp"

namespace zkr::recipes::detail {
// Found by ADL, so GoogleTest prints steps by name.
inline std::ostream& operator<<(std::ostream& os, refresh_fsm::step s) {
  switch (s) {
    case refresh_fsm::step::sync: return os << "sync";
    case refresh_fsm::step::read: return os << "read";
    case refresh_fsm::step::exists: return os << "exists";
    case refresh_fsm::step::deliver_present: return os << "deliver_present";
    case refresh_fsm::step::deliver_absent: return os << "deliver_absent";
    case refresh_fsm::step::settle: return os << "settle";
  }
  return os << "?";
}
}  // namespace zkr::recipes::detail

namespace zkr::recipes::test {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using detail::armed_watches;
using detail::channel_kind;
using detail::children_snapshot;
using detail::node_snapshot;
using detail::order;
using detail::refresh_fsm;
using zkr::conformance::tok;
using zkr::test::watch::check_sequence;
using zkr::test::watch::reads;
using zkr::test::watch::history;

// ------------------------------------------------------------------------------------------
// (1) The sans-IO parts
// ------------------------------------------------------------------------------------------

node_snapshot present(std::int64_t czxid, std::int64_t mzxid, std::string data = "x") {
  node_snapshot s;
  s.exists = true;
  s.data = std::move(data);
  s.stat.czxid = czxid;
  s.stat.mzxid = mzxid;
  s.stat.pzxid = czxid;
  return s;
}
children_snapshot list(std::int64_t czxid, std::int64_t pzxid, std::vector<std::string> kids) {
  children_snapshot s;
  s.exists = true;
  s.children = std::move(kids);
  s.stat.czxid = czxid;
  s.stat.mzxid = czxid;
  s.stat.pzxid = pzxid;
  return s;
}

TEST(watch_classify, orders_data_states_by_mzxid_and_incarnations_by_czxid) {
  struct row {
    const char* name;
    std::optional<node_snapshot> last;
    std::int64_t high;
    node_snapshot next;
    order want;
  };
  const node_snapshot absent{};
  const std::vector<row> rows = {
      {"the first state is newer", std::nullopt, 0, present(5, 5), order::newer},
      {"the first state may be absent", std::nullopt, 0, absent, order::newer},
      {"a higher mzxid is newer", present(5, 5), 5, present(5, 7), order::newer},
      {"the same mzxid and czxid is the same", present(5, 7), 7, present(5, 7), order::same},
      {"a lower mzxid is stale", present(5, 7), 7, present(5, 6), order::stale},
      {"absent after present is trusted (session order)", present(5, 7), 7, absent, order::newer},
      {"absent after absent is the same", absent, 7, absent, order::same},
      {"the old incarnation after absent is stale", absent, 7, present(5, 7), order::stale},
      {"an old version after absent is stale", absent, 7, present(5, 6), order::stale},
      {"a re-creation after absent is newer", absent, 7, present(9, 9), order::newer},
      {"a re-creation seen directly is newer", present(5, 7), 7, present(9, 9), order::newer},
  };
  for (const auto& r : rows) {
    EXPECT_EQ(detail::classify(r.last ? &*r.last : nullptr, r.high, r.next), r.want) << r.name;
  }
}

TEST(watch_classify, orders_child_lists_by_pzxid) {
  const auto a = list(5, 8, {"a"});
  const auto b = list(5, 9, {"a", "b"});
  const auto re = list(12, 12, {});
  EXPECT_EQ(detail::classify(&a, 8, b), order::newer);
  EXPECT_EQ(detail::classify(&b, 9, a), order::stale);
  EXPECT_EQ(detail::classify(&b, 9, b), order::same);
  EXPECT_EQ(detail::classify(&b, 9, re), order::newer) << "a re-created parent has a later pzxid (= its czxid)";
  const children_snapshot gone{};
  EXPECT_EQ(detail::classify(&gone, 9, a), order::stale);
}

TEST(watch_classify, names_the_change_a_consumer_sees) {
  const node_snapshot absent{};
  const auto p = present(5, 5);
  EXPECT_EQ(detail::change_between<node_snapshot>(nullptr, p), node_change::initial);
  EXPECT_EQ(detail::change_between(&absent, p), node_change::created);
  EXPECT_EQ(detail::change_between(&p, absent), node_change::deleted);
  EXPECT_EQ(detail::change_between(&p, present(5, 6)), node_change::changed);
  EXPECT_EQ(detail::change_between(&p, present(9, 9)), node_change::recreated);
}

TEST(watch_classify, sorts_read_failures) {
  using detail::failure;
  EXPECT_EQ(detail::classify_failure(make_error_code(errc::connection_loss)), failure::transient);
  EXPECT_EQ(detail::classify_failure(make_error_code(errc::session_expired)), failure::transient);
  EXPECT_EQ(detail::classify_failure(make_error_code(errc::session_lost)), failure::transient);
  EXPECT_EQ(detail::classify_failure(make_error_code(errc::throttled)), failure::transient);
  EXPECT_EQ(detail::classify_failure(make_error_code(errc::closing)), failure::closed);
  EXPECT_EQ(detail::classify_failure(zkr::operation_aborted()), failure::closed);
  EXPECT_EQ(detail::classify_failure(make_error_code(errc::no_auth)), failure::fatal);
  EXPECT_EQ(detail::classify_failure(make_error_code(errc::invalid_path)), failure::fatal);
}


TEST(refresh_fsm_steps, table) {
  using in = refresh_fsm::input;
  using st = refresh_fsm::step;
  struct move {
    in input;
    armed_watches armed;
    st want;
    bool watch;
  };
  struct row {
    const char* name;
    channel_kind kind;
    bool need_sync;
    bool follow;
    std::vector<move> moves;
  };
  const armed_watches none{};
  const armed_watches get_w{true, false, false};
  const armed_watches exist_w{false, true, false};
  const armed_watches child_w{false, false, true};
  const armed_watches exist_child{false, true, true};
  const std::vector<row> rows = {
      {"data: read with a watch, deliver", channel_kind::data, false, true,
       {{in::start, none, st::read, true}, {in::read_ok, get_w, st::deliver_present, false}}},
      {"data: a new generation syncs first", channel_kind::data, true, true,
       {{in::start, none, st::sync, false}, {in::synced, none, st::read, true}, {in::read_ok, get_w, st::deliver_present, false}}},
      {"data: an armed get watch covers the re-read", channel_kind::data, false, true,
       {{in::start, get_w, st::read, false}, {in::read_ok, get_w, st::deliver_present, false}}},
      {"data: missing, exists arms a watch for the creation", channel_kind::data, false, true,
       {{in::start, none, st::read, true}, {in::read_no_node, none, st::exists, true}, {in::exists_no_node, exist_w, st::deliver_absent, false}}},
      {"data: missing, an armed exists watch covers both reads", channel_kind::data, false, true,
       {{in::start, exist_w, st::read, false}, {in::read_no_node, exist_w, st::exists, false}, {in::exists_no_node, exist_w, st::deliver_absent, false}}},
      {"data: missing without follow leaves no watch", channel_kind::data, false, false,
       {{in::start, none, st::read, true}, {in::read_no_node, none, st::deliver_absent, false}}},
      {"data: created between get and exists: read once more, no watch needed", channel_kind::data, false, true,
       {{in::start, none, st::read, true}, {in::read_no_node, none, st::exists, true}, {in::exists_ok, exist_w, st::read, false}, {in::read_ok, exist_w, st::deliver_present, false}}},
      {"data: created and deleted again between the reads: settle, the exists watch tells", channel_kind::data, false, true,
       {{in::start, none, st::read, true}, {in::read_no_node, none, st::exists, true}, {in::exists_ok, exist_w, st::read, false}, {in::read_no_node, exist_w, st::settle, false}}},
      {"children: read with a child watch", channel_kind::children, false, true,
       {{in::start, none, st::read, true}, {in::read_ok, child_w, st::deliver_present, false}}},
      {"children: an exists watch does not cover the child list", channel_kind::children, false, true,
       {{in::start, exist_w, st::read, true}, {in::read_ok, exist_child, st::deliver_present, false}}},
      {"children: missing parent, exists watch for its creation", channel_kind::children, false, true,
       {{in::start, none, st::read, true}, {in::read_no_node, none, st::exists, true}, {in::exists_no_node, exist_w, st::deliver_absent, false}}},
      {"children: parent created between the reads", channel_kind::children, true, true,
       {{in::start, none, st::sync, false}, {in::synced, none, st::read, true}, {in::read_no_node, none, st::exists, true}, {in::exists_ok, exist_w, st::read, true}, {in::read_ok, exist_child, st::deliver_present, false}}},
  };
  for (const auto& r : rows) {
    refresh_fsm fsm(r.kind, r.need_sync, r.follow);
    for (std::size_t i = 0; i < r.moves.size(); ++i) {
      const auto& m = r.moves[i];
      ASSERT_FALSE(fsm.done()) << r.name << " move " << i;
      const auto a = fsm.resume(m.input, m.armed);
      EXPECT_EQ(a.what, m.want) << r.name << " move " << i;
      EXPECT_EQ(a.watch, m.watch) << r.name << " move " << i;
    }
    EXPECT_TRUE(fsm.done()) << r.name;
  }
}

TEST(refresh_fsm_steps, resuming_a_finished_refresh_aborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        refresh_fsm fsm(channel_kind::data, false, true);
        (void)fsm.resume(refresh_fsm::input::start, {});
        (void)fsm.resume(refresh_fsm::input::read_ok, {});
        (void)fsm.resume(refresh_fsm::input::read_ok, {});
      },
      "broken invariant");
}

// ------------------------------------------------------------------------------------------
// (1b) Interleavings a server makes rare, scripted (tests/recipes/scripted_session.hpp)
// ------------------------------------------------------------------------------------------

using zkr::test::scripted_session;
using sk = scripted_session::kind;

/// A listener that records every state into `h`.
template <class State>
auto recording(std::shared_ptr<history<State>> h) {
  return [h](std::error_code ec, const State& s) {
    if (!ec) h->push(s);
    return true;
  };
}

zkr::stat at(std::int64_t czxid, std::int64_t mzxid, std::int32_t version = 0) {
  zkr::stat st;
  st.czxid = czxid;
  st.mzxid = mzxid;
  st.pzxid = czxid;
  st.version = version;
  return st;
}

TEST(node_watch_scripted, a_stale_reply_is_dropped_and_the_watch_it_armed_still_serves) {
  boost::asio::io_context io;
  scripted_session ss(io);
  watch_hub<scripted_session> hub(ss);
  node_watch<scripted_session> nw(hub, "/n");
  auto h = std::make_shared<history<node_state>>();
  nw.start(recording(h));
  ss.poll();
  ss.answer_get(ss.find(sk::get, "/n"), {}, "b", at(5, 9, 2));
  ss.poll();
  ASSERT_EQ(h->size(), 1u);
  ss.fire_data("/n", event_type::data_changed);
  ss.poll();
  // An older state than the one delivered (a lagging server, say): never delivered.
  ss.answer_get(ss.find(sk::get, "/n"), {}, "a", at(5, 7, 1));
  ss.poll();
  EXPECT_EQ(h->size(), 1u) << "went backwards";
  EXPECT_EQ(hub.stats().stale_dropped, 1u);
  EXPECT_EQ(ss.data_watches("/n"), 1u) << "the stale read still armed the watch";
  ss.fire_data("/n", event_type::data_changed);
  ss.poll();
  ss.answer_get(ss.find(sk::get, "/n"), {}, "c", at(5, 11, 3));
  ss.poll();
  ASSERT_EQ(h->size(), 2u);
  EXPECT_EQ(h->items()[1].data, "c");
  EXPECT_EQ(check_sequence(h->items()), "");
}

TEST(node_watch_scripted, a_refresh_that_spans_a_new_generation_is_discarded_and_redone_after_a_sync) {
  boost::asio::io_context io;
  scripted_session ss(io);
  watch_hub<scripted_session> hub(ss);
  node_watch<scripted_session> nw(hub, "/n");
  auto h = std::make_shared<history<node_state>>();
  nw.start(recording(h));
  ss.poll();
  ss.answer_get(ss.find(sk::get, "/n"), {}, "a", at(5, 5));
  ss.poll();
  ss.fire_data("/n", event_type::data_changed);
  ss.poll();
  const auto pending = ss.find(sk::get, "/n");
  ss.transition(session_state::suspended);
  ss.transition(session_state::lost);
  ss.transition(session_state::connected);
  ss.poll();
  ASSERT_EQ(ss.generation(), 2u);
  // The read sent in generation 1 answers after generation 2 began: not trusted.
  ss.answer_get(pending, {}, "x", at(5, 9));
  ss.poll();
  EXPECT_EQ(h->size(), 1u) << "a result read across a generation change was delivered";
  ss.answer_sync(ss.find(sk::sync, "/n"));
  ss.poll();
  ss.answer_get(ss.find(sk::get, "/n"), {}, "y", at(5, 10));
  ss.poll();
  ASSERT_EQ(h->size(), 2u);
  EXPECT_EQ(h->items()[1].data, "y");
  EXPECT_EQ(hub.stats().syncs, 1u);
  EXPECT_TRUE(ss.ops.empty());
}

TEST(node_watch_scripted, a_transient_failure_while_connected_is_retried_with_a_bounded_backoff) {
  boost::asio::io_context io;
  scripted_session ss(io);
  watch_hub<scripted_session> hub(ss, {.retry = zkr::retry_n_times{2, std::chrono::milliseconds(1)}});
  node_watch<scripted_session> nw(hub, "/n");
  auto h = std::make_shared<history<node_state>>();
  nw.start(recording(h));
  ss.poll();
  const auto wait_for_request = [&] {
    for (int i = 0; i < 5000 && ss.ops.empty(); ++i) {
      io.restart();
      io.run_for(std::chrono::milliseconds(1));
    }
    return !ss.ops.empty();
  };
  for (int attempt = 0; attempt < 3; ++attempt) {
    ASSERT_TRUE(wait_for_request()) << "attempt " << attempt;
    ss.answer_get(0, make_error_code(errc::connection_loss));
    ss.poll();
  }
  // Two retries granted, then it waits for the session: nothing more is sent...
  io.restart();
  io.run_for(std::chrono::milliseconds(50));
  EXPECT_TRUE(ss.ops.empty()) << "the retry loop is not bounded";
  EXPECT_EQ(hub.stats().retries, 2u);
  // ... until the next transition.
  ss.transition(session_state::suspended);
  ss.transition(session_state::reconnected);
  ss.poll();
  ASSERT_EQ(ss.ops.size(), 1u);
  ss.answer_get(0, {}, "a", at(3, 3));
  ss.poll();
  ASSERT_EQ(h->size(), 1u);
}

TEST(node_watch_scripted, no_auth_ends_the_watch_once_with_the_error) {
  boost::asio::io_context io;
  scripted_session ss(io);
  watch_hub<scripted_session> hub(ss);
  node_watch<scripted_session> nw(hub, "/secret");
  auto errors = std::make_shared<history<std::error_code>>();
  nw.start([errors](std::error_code ec, const node_state&) {
    if (ec) errors->push(ec);
    return true;
  });
  ss.poll();
  ss.answer_get(0, make_error_code(errc::no_auth));
  ss.poll();
  ASSERT_EQ(errors->size(), 1u);
  EXPECT_EQ(errors->items()[0], make_error_code(errc::no_auth));
  EXPECT_FALSE(nw.running());
  EXPECT_EQ(hub.stats().channels, 0u);
  std::error_code got;
  nw.async_next([&](std::error_code ec, node_state) { got = ec; });
  ss.poll();
  EXPECT_EQ(got, make_error_code(errc::no_auth));
}

// ------------------------------------------------------------------------------------------
// (2) Both backends
// ------------------------------------------------------------------------------------------

template <class B>
class node_watches : public zkr::conformance::fixture<B> {
 protected:
  using S = typename B::session;

  /// Runs what is queued on `s`'s executor before this call (a close's teardown, say).
  void settle(S& s) {
    std::promise<void> done;
    auto f = done.get_future();
    asio::post(s.get_executor(), [&done] { done.set_value(); });
    this->await(std::move(f));
  }
  template <class H>
  bool wait_size(const H& h, std::size_t n) {
    return this->eventually([&] { return h->size() >= n; });
  }
};
TYPED_TEST_SUITE(node_watches, zkr::conformance::backends, zkr::conformance::backend_names);


TYPED_TEST(node_watches, delivers_the_initial_state_then_every_spaced_change_in_mzxid_order) {
  auto& t = *this;
  using S = typename TestFixture::S;
  auto& s = t.first();
  auto& w = t.open();
  const auto p = t.path("n");
  watch_hub<S> hub(s);
  node_watch<S> nw(hub, p);
  auto h = std::make_shared<history<node_state>>();
  nw.start(recording(h));
  ASSERT_TRUE(t.wait_size(h, 1));
  EXPECT_FALSE(h->items()[0].exists);
  EXPECT_EQ(h->items()[0].change, node_change::initial);

  auto [e1, p1, created] = t.await(w.async_create(p, "one", {}, tok));
  ASSERT_FALSE(e1);
  ASSERT_TRUE(t.wait_size(h, 2));
  auto [e2, set] = t.await(w.async_set(p, "two", -1, tok));
  ASSERT_FALSE(e2);
  ASSERT_TRUE(t.wait_size(h, 3));
  ASSERT_FALSE(t.err(w.async_remove(p, -1, tok)));
  ASSERT_TRUE(t.wait_size(h, 4));
  auto [e3, p3, again] = t.await(w.async_create(p, "three", {}, tok));
  ASSERT_FALSE(e3);
  ASSERT_TRUE(t.wait_size(h, 5));

  const auto xs = h->items();
  ASSERT_EQ(xs.size(), 5u);
  EXPECT_EQ(check_sequence(xs), "");
  EXPECT_EQ(xs[1].change, node_change::created);
  EXPECT_EQ(xs[1].data, "one");
  EXPECT_EQ(xs[1].stat, created) << "the state is the node's, stat and data from one read";
  EXPECT_EQ(xs[2].change, node_change::changed);
  EXPECT_EQ(xs[2].data, "two");
  EXPECT_EQ(xs[2].stat, set);
  EXPECT_EQ(xs[3].change, node_change::deleted);
  EXPECT_EQ(xs[4].change, node_change::created);
  EXPECT_EQ(xs[4].stat, again);
  ASSERT_TRUE(nw.current().has_value());
  EXPECT_EQ(nw.current()->data, "three");
  EXPECT_TRUE(nw.running());
}

TYPED_TEST(node_watches, a_node_recreated_in_one_multi_is_recreated_even_at_the_same_version_and_data) {
  auto& t = *this;
  using S = typename TestFixture::S;
  auto& s = t.first();
  auto& w = t.open();
  const auto p = t.path("n");
  ASSERT_FALSE(t.err(w.async_create(p, "same", {}, tok)));
  node_watch<S> nw(s, p);  // a hub of its own
  auto h = std::make_shared<history<node_state>>();
  nw.start(recording(h));
  ASSERT_TRUE(t.wait_size(h, 1));
  auto [ec, results] = t.await(w.async_multi({op::make_remove(p), op::make_create(p, "same")}, tok));
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_TRUE(t.wait_size(h, 2));
  const auto xs = h->items();
  EXPECT_EQ(check_sequence(xs), "");
  EXPECT_EQ(xs[1].change, node_change::recreated);
  EXPECT_EQ(xs[1].data, "same");
  EXPECT_EQ(xs[1].stat.version, xs[0].stat.version) << "same version, yet a change: the czxid tells";
  EXPECT_GT(xs[1].stat.czxid, xs[0].stat.czxid);
}

TYPED_TEST(node_watches, a_subscriber_that_follows_creation_is_served_even_if_it_joins_a_read_that_does_not) {
  auto& t = *this;
  using S = typename TestFixture::S;
  auto& s = t.first();
  auto& w = t.open();
  const auto p = t.path("later");
  watch_hub<S> hub(s);
  node_watch<S> no_follow(hub, p, {.follow_creation = false});
  node_watch<S> follow(hub, p);
  auto h = std::make_shared<history<node_state>>();
  // Both start on the session's executor before any reply: the second joins the first's read,
  // which leaves no watch on the missing node.
  no_follow.start();
  follow.start(recording(h));
  ASSERT_TRUE(t.wait_size(h, 1));
  EXPECT_FALSE(h->items()[0].exists);
  ASSERT_FALSE(t.err(w.async_create(p, "x", {}, tok)));
  ASSERT_TRUE(t.wait_size(h, 2)) << "the creation was never reported";
  EXPECT_EQ(h->items()[1].change, node_change::created);
}

TYPED_TEST(node_watches, a_listener_returning_false_stops_the_loop) {
  auto& t = *this;
  using S = typename TestFixture::S;
  auto& s = t.first();
  auto& w = t.open();
  const auto p = t.path("n");
  ASSERT_FALSE(t.err(w.async_create(p, "0", {}, tok)));
  watch_hub<S> hub(s);
  node_watch<S> nw(hub, p);
  auto h = std::make_shared<history<node_state>>();
  nw.start([h](std::error_code ec, const node_state& st) {
    if (!ec) h->push(st);
    return h->size() < 2;  // stop after the second state
  });
  ASSERT_TRUE(t.wait_size(h, 1));
  ASSERT_FALSE(t.err(w.async_set(p, "1", -1, tok)));
  ASSERT_TRUE(t.wait_size(h, 2));
  ASSERT_TRUE(t.eventually([&] { return !nw.running(); }));
  const auto reads = hub.stats().reads;
  // The last read re-armed the watch; with nobody listening its channel stays dormant until
  // it fires, and then goes without a read.
  ASSERT_EQ(hub.stats().channels, 1u);
  ASSERT_FALSE(t.err(w.async_set(p, "2", -1, tok)));
  ASSERT_TRUE(t.eventually([&] { return hub.stats().channels == 0; }));
  EXPECT_EQ(hub.stats().reads, reads) << "a stopped watch read again";
  EXPECT_EQ(h->size(), 2u) << "a stopped watch called its listener";
  EXPECT_EQ(nw.close(), make_error_code(errc::closing)) << "stopping closed it";
}

TYPED_TEST(node_watches, pull_mode_hands_a_slow_consumer_the_latest_state) {
  auto& t = *this;
  using S = typename TestFixture::S;
  auto& s = t.first();
  auto& w = t.open();
  const auto p = t.path("n");
  ASSERT_FALSE(t.err(w.async_create(p, "0", {}, tok)));
  node_watch<S> nw(s, p);
  auto [e0, first] = t.await(nw.async_next(tok));  // starts it (pull mode)
  ASSERT_FALSE(e0) << e0.message();
  EXPECT_EQ(first.change, node_change::initial);
  EXPECT_EQ(first.data, "0");
  for (const char* d : {"1", "2", "3"}) ASSERT_FALSE(t.err(w.async_set(p, d, -1, tok)));
  ASSERT_TRUE(t.eventually([&] { return nw.current() && nw.current()->data == "3"; }));
  auto [e1, latest] = t.await(nw.async_next(tok));
  ASSERT_FALSE(e1);
  EXPECT_EQ(latest.data, "3") << "missed states coalesce into the latest";
  EXPECT_EQ(latest.stat.version, 3);
  EXPECT_EQ(latest.change, node_change::changed);
  auto pending = nw.async_next(tok);
  ASSERT_FALSE(t.err(w.async_set(p, "4", -1, tok)));
  auto [e2, next] = t.await(std::move(pending));
  ASSERT_FALSE(e2);
  EXPECT_EQ(next.data, "4");
  EXPECT_EQ(check_sequence(std::vector<node_state>{first, latest, next}), "");
}

TYPED_TEST(node_watches, async_next_is_cancellable_and_the_watch_goes_on) {
  auto& t = *this;
  using S = typename TestFixture::S;
  auto& s = t.first();
  auto& w = t.open();
  const auto p = t.path("n");
  ASSERT_FALSE(t.err(w.async_create(p, "0", {}, tok)));
  node_watch<S> nw(s, p);
  nw.start();
  ASSERT_FALSE(std::get<0>(t.await(nw.async_next(tok))));
  for (const auto type : {asio::cancellation_type::terminal, asio::cancellation_type::partial,
                          asio::cancellation_type::total}) {
    asio::cancellation_signal sig;
    auto f = nw.async_next(asio::bind_cancellation_slot(sig.slot(), tok));
    // Emitted on the session's executor, after the wait was registered there.
    asio::post(s.get_executor(), [&sig, type] { sig.emit(type); });
    auto [ec, st] = t.await(std::move(f));
    EXPECT_EQ(ec, zkr::operation_aborted()) << static_cast<int>(type);
  }
  {
    // Emitted right after the call returns, before the wait reached the session's executor:
    // the cancellation is hooked in the initiating call, so it is not lost.
    asio::cancellation_signal sig;
    auto f = nw.async_next(asio::bind_cancellation_slot(sig.slot(), tok));
    sig.emit(asio::cancellation_type::terminal);
    EXPECT_EQ(std::get<0>(t.await(std::move(f))), zkr::operation_aborted());
  }
  ASSERT_FALSE(t.err(w.async_set(p, "1", -1, tok)));
  auto [ec, st] = t.await(nw.async_next(tok));
  ASSERT_FALSE(ec);
  EXPECT_EQ(st.data, "1");
  EXPECT_TRUE(nw.running());
}

TYPED_TEST(node_watches, close_ends_a_pending_wait_and_a_second_start_or_close_is_an_error) {
  auto& t = *this;
  using S = typename TestFixture::S;
  auto& s = t.first();
  const auto p = t.path("n");
  node_watch<S> nw(s, p);
  nw.start();
  EXPECT_THROW(nw.start(), std::logic_error);
  ASSERT_FALSE(std::get<0>(t.await(nw.async_next(tok))));
  auto pending = nw.async_next(tok);
  auto busy = nw.async_next(tok);
  EXPECT_EQ(std::get<0>(t.await(std::move(busy))), std::errc::operation_in_progress);
  EXPECT_FALSE(nw.close());
  EXPECT_EQ(std::get<0>(t.await(std::move(pending))), zkr::operation_aborted());
  EXPECT_EQ(nw.close(), make_error_code(errc::closing));
  EXPECT_THROW(nw.start(), std::logic_error);
  EXPECT_EQ(std::get<0>(t.await(nw.async_next(tok))), zkr::operation_aborted());
  EXPECT_FALSE(nw.running());
  EXPECT_THROW(node_watch<S>(s, "no/leading/slash"), std::system_error);
}

TYPED_TEST(node_watches, a_closed_session_ends_the_watch_with_closing_once) {
  auto& t = *this;
  using S = typename TestFixture::S;
  auto& s = t.open();
  const auto p = t.path("n");
  watch_hub<S> hub(s);
  node_watch<S> nw(hub, p);
  children_watch<S> cw(hub, p);
  auto errors = std::make_shared<history<std::error_code>>();
  auto h = std::make_shared<history<node_state>>();
  nw.start([errors, h](std::error_code ec, const node_state& st) {
    if (ec) errors->push(ec);
    else h->push(st);
    return true;
  });
  cw.start([errors](std::error_code ec, const children_state&) {
    if (ec) errors->push(ec);
    return true;
  });
  ASSERT_TRUE(t.wait_size(h, 1));
  ASSERT_FALSE(t.err(s.async_close(tok)));
  ASSERT_TRUE(t.wait_size(errors, 2));
  t.settle(s);
  const auto es = errors->items();
  ASSERT_EQ(es.size(), 2u);
  for (const auto& e : es) EXPECT_EQ(e, make_error_code(errc::closing));
  EXPECT_FALSE(nw.running());
  EXPECT_EQ(hub.stats().channels, 0u);
  EXPECT_EQ(std::get<0>(t.await(nw.async_next(tok))), make_error_code(errc::closing));
}

TYPED_TEST(node_watches, after_expiry_it_syncs_rereads_and_reports_a_recreation_made_while_away) {
  auto& t = *this;
  using S = typename TestFixture::S;
  auto& s = t.open();
  auto& w = t.open();
  const auto p = t.path("n");
  ASSERT_FALSE(t.err(w.async_create(p, "a", {}, tok)));
  watch_hub<S> hub(s);
  node_watch<S> nw(hub, p);
  auto h = std::make_shared<history<node_state>>();
  nw.start(recording(h));
  ASSERT_TRUE(t.wait_size(h, 1));
  const auto gen = s.generation();
  ASSERT_TRUE(t.b_.expire(s));
  // Deleted and re-created with the same data, in one transaction, while the session is gone
  // (or, if its successor was quicker, while it watches: both must report it).
  ASSERT_FALSE(std::get<0>(t.await(w.async_multi({op::make_remove(p), op::make_create(p, "a")}, tok))));
  ASSERT_TRUE(t.eventually([&] { return s.generation() > gen && is_connected(s.state()); }, 30s));
  ASSERT_TRUE(t.wait_size(h, 2));
  const auto xs = h->items();
  EXPECT_EQ(check_sequence(xs), "");
  EXPECT_EQ(xs.back().change, node_change::recreated);
  EXPECT_EQ(xs.back().data, "a");
  EXPECT_EQ(xs.back().stat.version, 0);
  EXPECT_GT(xs.back().stat.czxid, xs.front().stat.czxid);
  EXPECT_GE(hub.stats().syncs, 1u) << "a channel with history syncs in a new generation";
}

TYPED_TEST(node_watches, children_watch_follows_the_list_and_the_parents_life) {
  auto& t = *this;
  using S = typename TestFixture::S;
  auto& s = t.first();
  auto& w = t.open();
  const auto p = t.path("parent");
  children_watch<S> cw(s, p);
  auto h = std::make_shared<history<children_state>>();
  cw.start(recording(h));
  ASSERT_TRUE(t.wait_size(h, 1));
  EXPECT_FALSE(h->items()[0].exists);
  ASSERT_FALSE(t.err(w.async_create(p, "", {}, tok)));
  ASSERT_TRUE(t.eventually([&] { return h->back() && h->back()->exists; }));
  ASSERT_FALSE(t.err(w.async_create(p + "/b", "", {}, tok)));
  ASSERT_FALSE(t.err(w.async_create(p + "/a", "", {}, tok)));
  ASSERT_TRUE(t.eventually([&] { return h->back()->children == std::vector<std::string>{"a", "b"}; }));
  ASSERT_FALSE(t.err(w.async_remove(p + "/a", -1, tok)));
  ASSERT_TRUE(t.eventually([&] { return h->back()->children == std::vector<std::string>{"b"}; }));
  const auto czxid = h->back()->stat.czxid;
  ASSERT_FALSE(std::get<0>(t.await(
      w.async_multi({op::make_remove(p + "/b"), op::make_remove(p), op::make_create(p, "")}, tok))));
  ASSERT_TRUE(t.eventually([&] { return h->back()->stat.czxid != czxid; }));
  const auto xs = h->items();
  EXPECT_EQ(check_sequence(xs), "");
  EXPECT_EQ(xs.back().change, node_change::recreated);
  EXPECT_TRUE(xs.back().children.empty());
  // A data change of the parent is no new list.
  const auto n = h->size();
  ASSERT_FALSE(t.err(w.async_set(p, "x", -1, tok)));
  ASSERT_FALSE(t.err(w.async_create(p + "/c", "", {}, tok)));
  ASSERT_TRUE(t.eventually([&] { return h->back()->children == std::vector<std::string>{"c"}; }));
  EXPECT_EQ(h->size(), n + 1);
}

TYPED_TEST(node_watches, works_with_a_coroutine_and_with_deferred) {
  auto& t = *this;
  using S = typename TestFixture::S;
  using ex_t = typename S::executor_type;
  auto& s = t.first();
  auto& w = t.open();
  const auto p = t.path("n");
  ASSERT_FALSE(t.err(w.async_create(p, "0", {}, tok)));
  node_watch<S> nw(s, p);
  // deferred: nothing happens until the deferred operation is launched.
  auto later = nw.async_next(asio::deferred);
  auto [e0, first] = t.await(std::move(later)(tok));
  ASSERT_FALSE(e0);
  EXPECT_EQ(first.data, "0");
  // A coroutine on the session's executor waits for the next two states.
  std::promise<std::vector<std::string>> seen;
  auto fut = seen.get_future();
  asio::co_spawn(
      s.get_executor(),
      [&nw, &seen]() -> asio::awaitable<void, ex_t> {
        std::vector<std::string> out;
        while (out.size() < 2) {
          // zkr completes with std::error_code, which Asio's awaitable does not turn into an
          // exception: the coroutine gets (ec, state) and decides.
          const auto [ec, st] = co_await nw.async_next(asio::use_awaitable_t<ex_t>{});
          if (ec) break;
          out.push_back(st.data);
        }
        seen.set_value(out);
      },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  ASSERT_FALSE(t.err(w.async_set(p, "1", -1, tok)));
  ASSERT_TRUE(t.eventually([&] { return nw.current() && nw.current()->data == "1"; }));
  ASSERT_FALSE(t.err(w.async_set(p, "2", -1, tok)));
  const auto out = t.await(std::move(fut));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out.back(), "2");
}

TYPED_TEST(node_watches, n_subscribers_share_one_server_watch_and_one_read_per_change) {
  auto& t = *this;
  using S = typename TestFixture::S;
  using CS = zkr::test::probe_session<S>;
  constexpr std::size_t n_data = 8, n_children = 4, changes = 5;
  auto& s = t.first();
  auto& w = t.open();
  const auto p = t.path("shared");
  ASSERT_FALSE(t.err(w.async_create(p, "0", {}, tok)));

  CS counted(s);
  watch_hub<CS> hub(counted);
  std::vector<std::unique_ptr<node_watch<CS>>> nws;
  std::vector<std::unique_ptr<children_watch<CS>>> cws;
  std::vector<std::shared_ptr<history<node_state>>> nh;
  std::vector<std::shared_ptr<history<children_state>>> ch;
  for (std::size_t i = 0; i < n_data; ++i) {
    nh.push_back(std::make_shared<history<node_state>>());
    nws.push_back(std::make_unique<node_watch<CS>>(hub, p));
    nws.back()->start(recording(nh.back()));
  }
  for (std::size_t i = 0; i < n_children; ++i) {
    ch.push_back(std::make_shared<history<children_state>>());
    cws.push_back(std::make_unique<children_watch<CS>>(hub, p));
    cws.back()->start(recording(ch.back()));
  }
  const auto all = [&](auto pred) {
    return t.eventually([&] {
      return std::all_of(nh.begin(), nh.end(), [&](const auto& h) { return h->back() && pred(*h->back()); });
    });
  };
  const auto all_children = [&](std::size_t k) {
    return t.eventually([&] {
      return std::all_of(ch.begin(), ch.end(), [&](const auto& h) { return h->back() && h->back()->children.size() == k; });
    });
  };
  ASSERT_TRUE(all([](const node_state& x) { return x.data == "0"; }));
  ASSERT_TRUE(all_children(0));
  EXPECT_EQ(hub.stats().channels, 2u);
  EXPECT_EQ(hub.stats().subscribers, n_data + n_children);
  EXPECT_TRUE(t.b_.server_has_data_watch(p, s.session_id()));
  if constexpr (TypeParam::simulated) {
    EXPECT_EQ(zkr::test::watch::server_watches(t.b_.cluster()), 2u) << "one data and one child watch, for 12 subscribers";
  }

  const auto reads0 = reads(counted);
  const auto watched0 = hub.stats().watches_armed;
  for (std::size_t k = 1; k <= changes; ++k) {
    const auto d = std::to_string(k);
    ASSERT_FALSE(t.err(w.async_set(p, d, -1, tok)));
    ASSERT_TRUE(all([&](const node_state& x) { return x.data == d; }));
    ASSERT_FALSE(t.err(w.async_create(p + "/c" + d, "", {}, tok)));
    ASSERT_TRUE(all_children(k));
  }
  const auto shared_reads = reads(counted) - reads0;
  EXPECT_EQ(shared_reads, 2 * changes) << "one read per change for " << n_data + n_children << " subscribers";
  EXPECT_EQ(hub.stats().watches_armed - watched0, 2 * changes) << "one client-side watcher per change";
  for (const auto& h : nh) {
    EXPECT_EQ(h->size(), changes + 1) << "every subscriber got every (spaced) change";
    EXPECT_EQ(check_sequence(h->items()), "");
  }
  for (const auto& h : ch) EXPECT_EQ(check_sequence(h->items()), "");

  // The same subscribers, each with a hub of its own, on another session: a read per
  // subscriber per change (ZooKeeper still keeps one server-side watch per session and path).
  auto& s2 = t.open();
  CS counted2(s2);
  const auto p2 = t.path("private");
  ASSERT_FALSE(t.err(w.async_create(p2, "0", {}, tok)));
  std::vector<std::unique_ptr<node_watch<CS>>> own;
  std::vector<std::shared_ptr<history<node_state>>> oh;
  for (std::size_t i = 0; i < n_data; ++i) {
    oh.push_back(std::make_shared<history<node_state>>());
    own.push_back(std::make_unique<node_watch<CS>>(counted2, p2));
    own.back()->start(recording(oh.back()));
  }
  ASSERT_TRUE(t.eventually([&] { return std::all_of(oh.begin(), oh.end(), [](const auto& h) { return h->size() >= 1; }); }));
  const auto private0 = reads(counted2);
  for (std::size_t k = 1; k <= changes; ++k) {
    const auto d = std::to_string(k);
    ASSERT_FALSE(t.err(w.async_set(p2, d, -1, tok)));
    ASSERT_TRUE(t.eventually([&] {
      return std::all_of(oh.begin(), oh.end(), [&](const auto& h) { return h->back() && h->back()->data == d; });
    }));
  }
  const auto private_reads = reads(counted2) - private0;
  EXPECT_EQ(private_reads, n_data * changes);
  EXPECT_TRUE(t.b_.server_has_data_watch(p2, s2.session_id()));
  std::cout << "[ measured ] " << TypeParam::name << ": " << n_data << " data + " << n_children
            << " children subscribers on one hub: " << shared_reads << " reads for " << 2 * changes
            << " changes; " << n_data << " subscribers with own hubs: " << private_reads << " reads for " << changes
            << " changes" << std::endl;
  for (auto& x : nws) x->close();
  for (auto& x : cws) x->close();
  for (auto& x : own) x->close();
  t.settle(s);
  t.settle(s2);
}

// ------------------------------------------------------------------------------------------
// (3) Fault sweep on the simulator
// ------------------------------------------------------------------------------------------

namespace simx = zkr::sim;
using sim_session = simx::session;

/// A writer that, every 10-150 ms of virtual time, makes one random change under /w: sets,
/// deletes and creates /w/a and /w/b, re-creates one in a multi (same data), adds and removes
/// children /w/c<k>. Remembers every data value it tried and the (mzxid -> data) of every write
/// it knows was applied.
struct writer {
  writer(simx::cluster& c, int id) : id(id), s(c, {.connect_string = c.connect_string(), .session_timeout = 4s}), timer(s.get_executor()) {}
  void start() { step(); }
  void step() {
    if (stopped) return;
    timer.expires_after(std::chrono::milliseconds(10 + s.random().uniform(140)));
    timer.async_wait([this](std::error_code ec) {
      if (ec || stopped) return;
      act();
      step();
    });
  }
  void act() {
    const std::string node = s.random().uniform(2) == 0 ? "/w/a" : "/w/b";
    const std::string data = "w" + std::to_string(id) + "-" + std::to_string(++n);
    tried->insert(data);
    switch (s.random().uniform(6)) {
      case 0:
      case 1:
        s.async_set(node, data, -1, [k = known, data](std::error_code ec, zkr::stat st) {
          if (!ec) (*k)[st.mzxid] = data;
        });
        break;
      case 2: s.async_remove(node, -1, [](std::error_code) {}); break;
      case 3:
        s.async_create(node, data, {}, [k = known, data](std::error_code ec, std::string, zkr::stat st) {
          if (!ec) (*k)[st.mzxid] = data;
        });
        break;
      case 4:
        s.async_multi({op::make_remove(node), op::make_create(node, data)},
                      [k = known, data](std::error_code ec, std::vector<op_result> rs) {
                        if (!ec && rs.size() == 2) (*k)[rs[1].stat.mzxid] = data;
                      });
        break;
      case 5: {
        const std::string child = "/w/c" + std::to_string(s.random().uniform(4));
        if (s.random().uniform(2) == 0) {
          s.async_create(child, "", {}, [](std::error_code, std::string, zkr::stat) {});
        } else {
          s.async_remove(child, -1, [](std::error_code) {});
        }
        break;
      }
    }
  }
  int id;
  sim_session s;
  simx::timer timer;
  bool stopped = false;
  int n = 0;
  std::shared_ptr<std::set<std::string>> tried = std::make_shared<std::set<std::string>>();
  std::shared_ptr<std::map<std::int64_t, std::string>> known = std::make_shared<std::map<std::int64_t, std::string>>();
};

/// One watching session: a hub with two push watches on /w/a, one on /w/b, a pull consumer
/// of /w/a, and a children watch on /w.
struct watcher {
  explicit watcher(simx::cluster& c)
      : s(c, {.connect_string = c.connect_string(), .session_timeout = 2s}), hub(s) {
    for (const char* path : {"/w/a", "/w/a", "/w/b"}) {
      data.push_back(std::make_unique<node_watch<sim_session>>(hub, path));
      data_h.push_back(std::make_shared<history<node_state>>());
      data.back()->start(recording(data_h.back()));
    }
    pull = std::make_unique<node_watch<sim_session>>(hub, "/w/a");
    pull_h = std::make_shared<history<node_state>>();
    pull_next();
    list = std::make_unique<children_watch<sim_session>>(hub, "/w");
    list_h = std::make_shared<history<children_state>>();
    list->start(recording(list_h));
  }
  void pull_next() {
    pull->async_next([this](std::error_code ec, node_state st) {
      if (ec) return;
      pull_h->push(st);
      pull_next();
    });
  }
  void close() {
    for (auto& d : data) d->close();
    pull->close();
    list->close();
  }
  sim_session s;
  watch_hub<sim_session> hub;
  std::vector<std::unique_ptr<node_watch<sim_session>>> data;
  std::vector<std::shared_ptr<history<node_state>>> data_h;
  std::unique_ptr<node_watch<sim_session>> pull;
  std::shared_ptr<history<node_state>> pull_h;
  std::unique_ptr<children_watch<sim_session>> list;
  std::shared_ptr<history<children_state>> list_h;
};

/// "" if `st` shows what the leader holds at `path`, else the difference.
std::string differs(const simx::cluster& c, const std::string& path, const node_state& st) {
  const auto* n = zkr::test::watch::leader_node(c, path);
  std::ostringstream o;
  if ((n != nullptr) != st.exists) {
    o << path << ": exists " << st.exists << " vs server " << (n != nullptr);
  } else if (n != nullptr && (n->data != st.data || n->mzxid != st.stat.mzxid || n->czxid != st.stat.czxid ||
                              n->version != st.stat.version)) {
    o << path << ": data '" << st.data << "' mzxid " << st.stat.mzxid << " vs server '" << n->data << "' mzxid " << n->mzxid;
  }
  return o.str();
}
std::string differs(const simx::cluster& c, const std::string& path, const children_state& st) {
  const auto* n = zkr::test::watch::leader_node(c, path);
  std::ostringstream o;
  if ((n != nullptr) != st.exists) {
    o << path << ": exists " << st.exists << " vs server " << (n != nullptr);
  } else if (n != nullptr) {
    const std::vector<std::string> server(n->children.begin(), n->children.end());
    if (server != st.children || n->pzxid != st.stat.pzxid) o << path << ": " << st.children.size() << " children vs " << server.size();
  }
  return o.str();
}

// A read in flight when the connection drops fails with connection_loss and leaves no watch:
// only the re-read at `reconnected` can pick the loop up again (the session survives, so no
// new generation and no watch event would).
TEST(node_watch_sim, a_read_lost_to_a_disconnection_is_made_again_after_reconnected) {
  simx::cluster c({.seed = 11, .servers = 3, .tick_time = 200ms});
  sim_session s(c, {.connect_string = c.connect_string(), .session_timeout = 4s});
  sim_session w(c, {.connect_string = c.connect_string(), .session_timeout = 4s});
  ASSERT_TRUE(c.run_until([&] { return is_connected(s.state()) && is_connected(w.state()); }, 30s));
  namespace zs = zkr::test::sim;
  ASSERT_FALSE(std::get<0>(zs::wait(c, w.async_create("/n", "0", {}, zs::fut))));
  watch_hub<sim_session> hub(s);
  node_watch<sim_session> nw(hub, "/n");
  auto h = std::make_shared<history<node_state>>();
  nw.start(recording(h));
  ASSERT_TRUE(c.run_until([&] { return h->size() == 1; }, 10s));
  // Our own watch on the same session fires with the hub's: cut the client off right then,
  // so that the hub's re-read goes into a black hole.
  bool cut = false;
  ASSERT_FALSE(std::get<0>(zs::wait(c, s.async_exists("/n", [&](std::error_code, watch_event) {
    c.isolate(simx::endpoint::client(s.process()));
    cut = true;
  }, zs::fut))));
  std::vector<session_state> states;
  auto sub = s.subscribe([&](const session_event& e) { states.push_back(e.state); });
  ASSERT_FALSE(std::get<0>(zs::wait(c, w.async_set("/n", "1", -1, zs::fut))));
  ASSERT_TRUE(c.run_until([&] { return cut; }, 10s));
  ASSERT_TRUE(c.run_until([&] { return s.state() == session_state::suspended; }, 10s));
  c.heal();
  ASSERT_TRUE(c.run_until([&] { return s.state() == session_state::reconnected; }, 10s));
  EXPECT_EQ(s.generation(), 1u) << "the session survived: no new generation to kick the loop";
  ASSERT_TRUE(c.run_until([&] { return h->back()->data == "1"; }, 10s)) << "the lost read was never made again";
  EXPECT_EQ(check_sequence(h->items()), "");
  // And the loop is armed again.
  ASSERT_FALSE(std::get<0>(zs::wait(c, w.async_set("/n", "2", -1, zs::fut))));
  ASSERT_TRUE(c.run_until([&] { return h->back()->data == "2"; }, 10s));
}

struct sweep_totals {
  std::uint64_t syncs = 0, stale = 0, reads = 0, failed = 0, retries = 0, deliveries = 0, recreated = 0, generations = 0, states = 0;
};

void run_node_watch_seed(std::uint64_t seed, sweep_totals& tot) {
  // Client links of 1-20 ms keep reads in flight long enough for faults to catch some.
  simx::cluster c({.seed = seed,
                   .servers = 3,
                   .tick_time = 200ms,
                   .client_links = {.delay_min = 1ms, .delay_max = 20ms}});
  writer w1(c, 1), w2(c, 2);
  ASSERT_TRUE(c.run_until([&] { return is_connected(w1.s.state()) && is_connected(w2.s.state()); }, 30s));
  ASSERT_FALSE(std::get<0>(zkr::test::sim::wait(c, w1.s.async_create("/w", "", {}, zkr::test::sim::fut))));
  watcher a(c), b(c);
  std::vector<simx::process_id> procs{a.s.process(), b.s.process(), w1.s.process(), w2.s.process()};
  const auto faults = c.schedule_random_faults({.start = 1s, .span = 15s, .count = 12, .min_length = 100ms, .max_length = 3s}, procs);
  std::ostringstream plan;
  for (const auto& f : faults) plan << "\n  " << f;
  SCOPED_TRACE("faults:" + plan.str());
  w1.start();
  w2.start();
  c.run_for(20s);
  w1.stopped = w2.stopped = true;
  w1.timer.cancel();
  w2.timer.cancel();
  c.heal();
  // Quiet: every fault has been undone (start + span + max_length < 20 s). Converge.
  const auto converged = [&] {
    for (auto* x : {&a, &b}) {
      if (!is_connected(x->s.state())) return false;
      for (std::size_t i = 0; i < x->data.size(); ++i) {
        const auto cur = x->data[i]->current();
        if (!cur || !differs(c, x->data[i]->path(), *cur).empty()) return false;
      }
      const auto pc = x->pull->current();
      if (!pc || !differs(c, "/w/a", *pc).empty()) return false;
      const auto lc = x->list->current();
      if (!lc || !differs(c, "/w", *lc).empty()) return false;
    }
    return true;
  };
  const bool ok = c.run_until(converged, 120s);
  EXPECT_TRUE(ok) << "watches did not converge to the leader's tree";
  if (!ok) {
    for (auto* x : {&a, &b}) {
      for (std::size_t i = 0; i < x->data.size(); ++i) {
        if (const auto cur = x->data[i]->current()) ADD_FAILURE() << differs(c, x->data[i]->path(), *cur);
      }
      if (const auto lc = x->list->current()) ADD_FAILURE() << differs(c, "/w", *lc);
    }
  }
  if (ok) {
    // Per watching session: /w/a, /w/b (get or exists watch) and /w (child watch); nothing else.
    EXPECT_EQ(zkr::test::watch::server_watches(c), 6u) << "server-side watches of both sessions";
  }
  // The pull consumer has pulled the latest too (it pulls as soon as there is one).
  ASSERT_TRUE(c.run_until([&] {
    for (auto* x : {&a, &b}) {
      if (!x->pull_h->back() || !differs(c, "/w/a", *x->pull_h->back()).empty()) return false;
    }
    return true;
  }, 10s));

  // Every sequence follows the rules; every state is one that was written.
  std::map<std::pair<std::int64_t, std::int64_t>, std::string> seen;  // (czxid, mzxid) -> data, across consumers
  const auto check_states = [&](const std::vector<node_state>& xs, const char* who) {
    EXPECT_EQ(check_sequence(xs), "") << who;
    for (const auto& x : xs) {
      ++tot.states;
      if (x.change == node_change::recreated) ++tot.recreated;
      if (!x.exists) continue;
      EXPECT_TRUE(w1.tried->contains(x.data) || w2.tried->contains(x.data)) << who << ": data '" << x.data << "' was never written";
      for (const auto* k : {w1.known.get(), w2.known.get()}) {
        if (const auto it = k->find(x.stat.mzxid); it != k->end()) {
          EXPECT_EQ(it->second, x.data) << who << ": mzxid " << x.stat.mzxid << " was written with other data";
        }
      }
      const auto [it, fresh] = seen.emplace(std::make_pair(x.stat.czxid, x.stat.mzxid), x.data);
      if (!fresh) {
        EXPECT_EQ(it->second, x.data) << who << ": two consumers saw different data at one mzxid";
      }
    }
  };
  for (auto* x : {&a, &b}) {
    for (const auto& h : x->data_h) check_states(h->items(), "push");
    check_states(x->pull_h->items(), "pull");
    EXPECT_EQ(check_sequence(x->list_h->items()), "") << "children";
    const auto st = x->hub.stats();
    tot.syncs += st.syncs;
    tot.stale += st.stale_dropped;
    tot.reads += st.reads;
    tot.failed += st.failed_reads;
    tot.retries += st.retries;
    tot.deliveries += st.deliveries;
    tot.generations += x->s.generation() - 1;
    EXPECT_EQ(st.channels, 3u) << "three paths watched";
    EXPECT_EQ(st.subscribers, 5u) << "three push, one pull, one children";
  }
  a.close();
  b.close();
  c.run_for(1s);
  for (auto* x : {&a, &b}) EXPECT_EQ(x->hub.stats().subscribers, 0u);
}

TEST(node_watch_sweep, states_never_go_backwards_are_real_and_converge_under_faults) {
  sweep_totals tot;
  const auto first = zkr::test::sim::first_seed();
  for (int i = 0; i < zkr::test::sim::sweep_count(); ++i) {
    const auto seed = first + static_cast<std::uint64_t>(i);
    ZKR_SEED_TRACE(seed);
    run_node_watch_seed(seed, tot);
    if (HasFatalFailure()) return;
  }
  std::cout << "[ coverage ] states " << tot.states << ", reads " << tot.reads << " (failed " << tot.failed
            << ", backoff retries " << tot.retries << "), deliveries " << tot.deliveries
            << ", recreated " << tot.recreated << ", new generations " << tot.generations << ", syncs " << tot.syncs
            << ", stale results dropped " << tot.stale << std::endl;
  // The sweep exercised what it claims to (rare paths did run).
  if (zkr::test::sim::sweep_count() >= 10) {
    EXPECT_GT(tot.generations, 0u) << "no session expired in the whole sweep";
    EXPECT_GT(tot.syncs, 0u) << "no channel synced in a new generation";
    EXPECT_GT(tot.recreated, 0u) << "no re-creation was reported";
    EXPECT_GT(tot.failed, 0u) << "no read was lost to a fault";
  }
}

}  // namespace
}  // namespace zkr::recipes::test
