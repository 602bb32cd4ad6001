// tests/recipes/mutex_test.cpp: the distributed mutex (zkr/recipes/mutex.hpp).
//
// Goal: show that the mutex keeps Curator's InterProcessMutex contract and layout, that its
// hand-off shortcut (no listing when the last listing showed only the predecessor below us)
// is safe, and measure the round trips it saves.
//
// Method, in three parts:
//   1. The FSM (detail::mutex_fsm) stepped by hand: every input, the action it answers with,
//      including the shortcut's preconditions one by one, connection loss mid-create
//      (adoption by prefix and ephemeral owner), the int32 sequence wrap, deadlines,
//      aborts, and the session states.
//   2. Typed cases on both backends (tests/conformance/fixture.hpp: a real ZooKeeper server
//      and the simulator): layout and fencing token, hand-off, timeout and try-lock, the three
//      cancellation types, re-entrancy by owner, loss by node deletion and by session expiry,
//      completion tokens, and the get_children count per hand-off with and without the
//      shortcut (tests/recipes/probe_session.hpp counts the requests).
//   3. Fault sweeps on the simulator over ZKR_SEEDS seeds: four contenders loop acquire ->
//      write to a fenced resource -> release under random faults (server kills, leader kills,
//      partitions, elections, connection loss mid-create, GC pauses, forced expiries). They
//      assert at most one unpaused believer at any instant (holder_checker), no refused fenced
//      write by a holder that was neither paused nor force-expired, every belief ended by its
//      presumed-lost deadline, progress, and no lock node left once everyone stopped.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <gtest/gtest.h>

#include <zkr/recipes/mutex.hpp>

#include "conformance/fixture.hpp"
#include "recipes/probe_session.hpp"
#include "recipes/sim_harness.hpp"

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using zkr::errc;
using zkr::recipes::lock_event;
using zkr::recipes::lock_event_kind;
using zkr::recipes::detail::mutex_action;
using zkr::recipes::detail::mutex_fsm;
using zkr::recipes::detail::mutex_io;

// =============================================================================================
// 1. The FSM by hand
// =============================================================================================

std::string seq10(std::int64_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%010lld", static_cast<long long>(v));
  return buf;
}

zkr::stat stat_with(std::int64_t czxid, std::int64_t owner = 0) {
  zkr::stat s;
  s.czxid = czxid;
  s.ephemeral_owner = owner;
  return s;
}

const zkr::watch_event deleted_event{zkr::event_type::deleted, "/x"};
const zkr::watch_event changed_event{zkr::event_type::data_changed, "/x"};

/// One FSM with a retry policy of `retries` immediate retries, and helpers that play the
/// backend: create our node with sequence `seq`, answer the check, the predecessor read.
struct fsm_rig {
  explicit fsm_rig(bool hold_through = false, int retries = 3, bool shortcut = true)
      : rng(7), fsm(config(hold_through, retries, shortcut), rng) {}

  static mutex_fsm::config config(bool hold_through, int retries, bool shortcut) {
    mutex_fsm::config c;
    c.hold_through_suspended = hold_through;
    c.sole_predecessor_handoff = shortcut;
    c.retry = [retries](int n) -> std::optional<std::chrono::milliseconds> {
      if (n >= retries) return std::nullopt;
      return 10ms;
    };
    return c;
  }

  std::string mine(std::int64_t seq) const { return fsm.prefix() + "lock-" + seq10(seq); }

  /// start -> create -> created(seq, czxid) ; returns the check action.
  mutex_action create_node(std::int64_t seq, std::int64_t czxid = 100) {
    auto a = fsm.start(true);
    EXPECT_EQ(a.io, mutex_io::create);
    EXPECT_EQ(a.name.substr(0, 3), "_c_");
    EXPECT_EQ(a.name.size(), 3u + 36u + 1u);
    a = fsm.on_created({}, mine(seq), stat_with(czxid));
    EXPECT_EQ(a.io, mutex_io::check);
    EXPECT_TRUE(a.read_own);
    EXPECT_EQ(a.own, mine(seq));
    own_watch = a.watch_id;
    return a;
  }
  /// Answers a check (own read ok if it was asked for) with `children`.
  mutex_action answer_check(const mutex_action& check, const std::vector<std::string>& children) {
    EXPECT_EQ(check.io, mutex_io::check);
    if (check.read_own) {
      own_watch = check.watch_id;
      EXPECT_EQ(fsm.on_own_read({}, stat_with(100)).io, mutex_io::none);
    }
    return fsm.on_listed({}, children);
  }
  /// Creates our node (sequence 0) and holds the lock with token `czxid`.
  void hold(std::int64_t czxid) {
    auto check = create_node(0, czxid);
    auto a = answer_check(check, {mine(0)});
    EXPECT_TRUE(a.complete);
    EXPECT_EQ(fsm.current(), mutex_fsm::phase::holding);
  }
  /// A waiter behind `below` contenders (sequences 0..below-1), our node at `below`; the
  /// predecessor read done and its watch armed. Returns the predecessor watch id.
  std::uint64_t wait_behind(int below) {
    std::vector<std::string> children;
    for (int i = 0; i < below; ++i) children.push_back("_c_other" + std::to_string(i) + "-lock-" + seq10(i));
    auto check = create_node(below);
    children.push_back(mine(below));
    auto a = answer_check(check, children);
    EXPECT_EQ(a.io, mutex_io::read_pred);
    EXPECT_EQ(a.name, children[static_cast<std::size_t>(below) - 1]);
    const auto id = a.watch_id;
    EXPECT_EQ(fsm.on_pred_read({}).io, mutex_io::none);
    return id;
  }

  zkr::prng rng;
  mutex_fsm fsm;
  std::uint64_t own_watch = 0;
};

TEST(mutex_fsm, lowest_node_holds_after_one_listing_with_the_czxid_as_token) {
  fsm_rig r;
  auto check = r.create_node(0, 4242);
  auto a = r.answer_check(check, {r.mine(0), "not-a-lock-node", "_c_x-latch-0000000000"});
  EXPECT_TRUE(a.complete);
  EXPECT_FALSE(a.ec);
  EXPECT_EQ(a.token, 4242);
  ASSERT_TRUE(a.notify);
  EXPECT_EQ(a.notify->kind, lock_event_kind::acquired);
  EXPECT_EQ(a.io, mutex_io::none);
  EXPECT_EQ(r.fsm.current(), mutex_fsm::phase::holding);
}

TEST(mutex_fsm, sole_predecessor_deleted_hands_over_without_a_listing) {
  fsm_rig r;
  const auto pred = r.wait_behind(1);
  auto a = r.fsm.on_pred_watch(pred, {}, deleted_event);
  EXPECT_TRUE(a.complete);
  EXPECT_FALSE(a.ec);
  EXPECT_EQ(a.io, mutex_io::none) << "the shortcut sends nothing";
  EXPECT_EQ(r.fsm.shortcut_handoffs(), 1u);
  EXPECT_EQ(r.fsm.current(), mutex_fsm::phase::holding);
}

TEST(mutex_fsm, sole_predecessor_already_gone_at_its_read_hands_over_too) {
  fsm_rig r;
  auto check = r.create_node(1);
  auto a = r.answer_check(check, {"_c_o-lock-" + seq10(0), r.mine(1)});
  ASSERT_EQ(a.io, mutex_io::read_pred);
  a = r.fsm.on_pred_read(make_error_code(errc::no_node));
  EXPECT_TRUE(a.complete);
  EXPECT_EQ(a.io, mutex_io::none);
  EXPECT_EQ(r.fsm.shortcut_handoffs(), 1u);
}

TEST(mutex_fsm, a_stall_while_waiting_disables_the_shortcut) {
  fsm_rig r;
  const auto pred = r.wait_behind(1);
  EXPECT_EQ(r.fsm.on_stall().io, mutex_io::none);
  auto a = r.fsm.on_pred_watch(pred, {}, deleted_event);
  EXPECT_FALSE(a.complete) << "an event found after a stall may be older than the session";
  ASSERT_EQ(a.io, mutex_io::check);
  EXPECT_TRUE(a.read_own);
  a = r.answer_check(a, {r.mine(1)});
  EXPECT_TRUE(a.complete) << "the fresh listing decides";
  EXPECT_EQ(r.fsm.shortcut_handoffs(), 0u);
}

TEST(mutex_fsm, a_listing_read_after_a_stall_is_not_trusted) {
  fsm_rig r;
  auto check = r.create_node(0);
  r.fsm.on_stall();  // the process froze while the listing was on its way
  EXPECT_EQ(r.fsm.on_own_read({}, stat_with(100)).io, mutex_io::none);
  auto a = r.fsm.on_listed({}, {r.mine(0)});
  EXPECT_FALSE(a.complete) << "the answer may predate our session's expiry";
  ASSERT_EQ(a.io, mutex_io::check) << "ask again: only a live session answers";
  a = r.answer_check(a, {r.mine(0)});
  EXPECT_TRUE(a.complete);
}

TEST(mutex_fsm, two_contenders_below_take_a_fresh_listing) {
  fsm_rig r;
  const auto pred = r.wait_behind(2);
  auto a = r.fsm.on_pred_watch(pred, {}, deleted_event);
  EXPECT_FALSE(a.complete);
  ASSERT_EQ(a.io, mutex_io::check);
  EXPECT_FALSE(a.read_own) << "the own watch is armed in this epoch";
  a = r.answer_check(a, {"_c_other0-lock-" + seq10(0), r.mine(2)});
  EXPECT_EQ(a.io, mutex_io::read_pred) << "the holder is still there";
  EXPECT_EQ(r.fsm.shortcut_handoffs(), 0u);
}

TEST(mutex_fsm, no_shortcut_when_it_is_turned_off) {
  fsm_rig r(false, 3, /*shortcut=*/false);
  const auto pred = r.wait_behind(1);
  auto a = r.fsm.on_pred_watch(pred, {}, deleted_event);
  EXPECT_FALSE(a.complete);
  EXPECT_EQ(a.io, mutex_io::check);
}

TEST(mutex_fsm, a_suspension_after_the_listing_disables_the_shortcut) {
  fsm_rig r;
  const auto pred = r.wait_behind(1);
  EXPECT_EQ(r.fsm.on_session({zkr::session_state::suspended, 1, {}}).io, mutex_io::none);
  // The re-registered watch fires after the reconnect: not in the listing's epoch.
  auto a = r.fsm.on_session({zkr::session_state::reconnected, 1, {}});
  ASSERT_EQ(a.io, mutex_io::check) << "reconnected: re-check the children";
  EXPECT_TRUE(a.read_own) << "the own watch must be re-registered in the new epoch";
  EXPECT_FALSE(r.fsm.on_pred_watch(pred, {}, deleted_event).complete) << "a stale predecessor watch";
}

TEST(mutex_fsm, a_predecessor_event_delivered_during_the_suspension_takes_a_listing) {
  fsm_rig r;
  const auto pred = r.wait_behind(1);
  r.fsm.on_session({zkr::session_state::suspended, 1, {}});
  auto a = r.fsm.on_pred_watch(pred, {}, deleted_event);
  EXPECT_FALSE(a.complete);
  EXPECT_EQ(a.io, mutex_io::none) << "disconnected: nothing is sent";
  a = r.fsm.on_session({zkr::session_state::reconnected, 1, {}});
  EXPECT_EQ(a.io, mutex_io::check);
}

TEST(mutex_fsm, own_node_deleted_before_the_predecessor_means_no_hold_and_a_new_node) {
  fsm_rig r;
  const auto pred = r.wait_behind(1);
  const auto old_prefix = r.fsm.prefix();
  auto a = r.fsm.on_own_watch(r.own_watch, {}, deleted_event);
  ASSERT_EQ(a.io, mutex_io::create) << "Curator: a vanished own node means a new one";
  EXPECT_NE(a.name, old_prefix);
  EXPECT_FALSE(r.fsm.on_pred_watch(pred, {}, deleted_event).complete);
}

TEST(mutex_fsm, a_node_that_keeps_vanishing_ends_the_acquire) {
  fsm_rig r(false, /*retries=*/2);
  auto a = r.fsm.start(true);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(a.io, mutex_io::create) << i;
    a = r.fsm.on_created({}, r.mine(i), stat_with(10 + i));
    ASSERT_EQ(a.io, mutex_io::check);
    EXPECT_EQ(r.fsm.on_own_read(make_error_code(errc::no_node), {}).io, mutex_io::none);
    a = r.fsm.on_listed({}, {});
  }
  EXPECT_TRUE(a.complete);
  EXPECT_EQ(a.ec, errc::no_node);
}

TEST(mutex_fsm, a_data_change_on_the_own_node_disables_the_shortcut_until_re_armed) {
  fsm_rig r;
  const auto pred = r.wait_behind(1);
  auto a = r.fsm.on_own_watch(r.own_watch, {}, changed_event);
  ASSERT_EQ(a.io, mutex_io::read_own);
  // The predecessor goes while the re-arming read is in flight: no shortcut.
  EXPECT_FALSE(r.fsm.on_pred_watch(pred, {}, deleted_event).complete);
  a = r.fsm.on_own_read({}, stat_with(100));
  EXPECT_EQ(a.io, mutex_io::check);
}

TEST(mutex_fsm, a_data_change_on_the_predecessor_takes_a_listing) {
  fsm_rig r;
  const auto pred = r.wait_behind(1);
  auto a = r.fsm.on_pred_watch(pred, {}, changed_event);
  EXPECT_FALSE(a.complete);
  EXPECT_EQ(a.io, mutex_io::check);
}

TEST(mutex_fsm, a_watch_from_an_earlier_listing_does_not_count) {
  fsm_rig r;
  const auto pred = r.wait_behind(2);
  // The predecessor changes its data: a fresh listing, which now shows one below.
  auto a = r.fsm.on_pred_watch(pred, {}, changed_event);
  ASSERT_EQ(a.io, mutex_io::check);
  a = r.answer_check(a, {"_c_other1-lock-" + seq10(1), r.mine(2)});
  ASSERT_EQ(a.io, mutex_io::read_pred);
  EXPECT_FALSE(r.fsm.on_pred_watch(pred, {}, deleted_event).complete) << "the old watch's id is dead";
}

TEST(mutex_fsm, a_negative_or_eleven_character_sequence_is_refused_and_deleted) {
  for (const std::string& seq : {std::string("-000000001"), std::string("-2147483648")}) {
    fsm_rig r;
    auto a = r.fsm.start(true);
    a = r.fsm.on_created({}, r.fsm.prefix() + "lock-" + seq, stat_with(5));
    ASSERT_EQ(a.io, mutex_io::remove) << seq;
    EXPECT_FALSE(a.complete);
    a = r.fsm.on_removed({});
    EXPECT_TRUE(a.complete);
    EXPECT_EQ(a.ec, errc::sequence_exhausted) << seq;
    EXPECT_TRUE(r.fsm.ready());
  }
}

TEST(mutex_fsm, connection_loss_mid_create_finds_and_adopts_our_node) {
  fsm_rig r;
  auto a = r.fsm.start(true);
  a = r.fsm.on_created(make_error_code(errc::connection_loss), "", {});
  ASSERT_EQ(a.io, mutex_io::backoff);
  a = r.fsm.on_backoff_done();
  ASSERT_EQ(a.io, mutex_io::find) << "sync + list, looking for our prefix";
  a = r.fsm.on_found({}, {"_c_x-lock-" + seq10(3), r.mine(4)});
  ASSERT_EQ(a.io, mutex_io::read_found);
  EXPECT_EQ(a.name, r.mine(4));
  a = r.fsm.on_found_read({}, stat_with(77, /*owner=*/0x55), /*session=*/0x55);
  ASSERT_EQ(a.io, mutex_io::check);
  EXPECT_FALSE(a.read_own) << "the read that found it armed the own watch";
  EXPECT_EQ(r.fsm.adoptions(), 1u);
  a = r.answer_check(a, {"_c_x-lock-" + seq10(3), r.mine(4)});
  EXPECT_EQ(a.io, mutex_io::read_pred);
}

TEST(mutex_fsm, a_found_node_of_another_session_is_deleted_not_adopted) {
  fsm_rig r;
  r.fsm.start(true);
  r.fsm.on_created(make_error_code(errc::connection_loss), "", {});
  r.fsm.on_backoff_done();
  const auto old_name = r.mine(4);
  const auto old_prefix = r.fsm.prefix();
  auto a = r.fsm.on_found({}, {old_name});
  a = r.fsm.on_found_read({}, stat_with(77, /*owner=*/0x11), /*session=*/0x55);
  ASSERT_EQ(a.io, mutex_io::remove);
  EXPECT_EQ(a.name, old_name);
  a = r.fsm.on_removed({});
  ASSERT_EQ(a.io, mutex_io::create);
  EXPECT_NE(a.name, old_prefix) << "a new prefix for the new node";
  EXPECT_EQ(r.fsm.adoptions(), 0u);
}

TEST(mutex_fsm, connection_loss_mid_create_and_not_found_creates_again) {
  fsm_rig r;
  r.fsm.start(true);
  r.fsm.on_created(make_error_code(errc::connection_loss), "", {});
  r.fsm.on_backoff_done();
  auto a = r.fsm.on_found({}, {"_c_x-lock-" + seq10(3)});
  ASSERT_EQ(a.io, mutex_io::create);
}

TEST(mutex_fsm, another_node_with_our_prefix_is_a_ghost_and_is_deleted_first) {
  fsm_rig r;
  auto check = r.create_node(5);
  const auto ghost = r.fsm.prefix() + "lock-" + seq10(3);
  auto a = r.answer_check(check, {ghost, r.mine(5)});
  ASSERT_EQ(a.io, mutex_io::remove);
  EXPECT_EQ(a.name, ghost);
  a = r.fsm.on_removed({});
  EXPECT_EQ(a.io, mutex_io::read_pred);
}

TEST(mutex_fsm, an_abort_while_the_create_is_in_flight_awaits_it_then_deletes) {
  fsm_rig r;
  r.fsm.start(true);
  auto a = r.fsm.abort(zkr::operation_aborted());
  EXPECT_EQ(a.io, mutex_io::none);
  EXPECT_FALSE(a.complete) << "a create is in flight";
  a = r.fsm.on_created({}, r.mine(0), stat_with(9));
  ASSERT_EQ(a.io, mutex_io::remove);
  EXPECT_FALSE(a.complete);
  a = r.fsm.on_removed({});
  EXPECT_TRUE(a.complete);
  EXPECT_EQ(a.ec, zkr::operation_aborted());
  EXPECT_TRUE(r.fsm.ready());
}

TEST(mutex_fsm, an_abort_while_waiting_deletes_the_node_then_completes) {
  fsm_rig r;
  r.wait_behind(3);
  auto a = r.fsm.abort(zkr::operation_aborted());
  ASSERT_EQ(a.io, mutex_io::remove);
  EXPECT_EQ(a.name, r.mine(3));
  a = r.fsm.on_removed(make_error_code(errc::no_node));
  EXPECT_TRUE(a.complete);
  EXPECT_EQ(a.ec, zkr::operation_aborted());
}

TEST(mutex_fsm, an_abort_while_disconnected_leaves_the_node_to_the_background) {
  fsm_rig r;
  r.wait_behind(1);
  r.fsm.on_session({zkr::session_state::suspended, 1, {}});
  auto a = r.fsm.abort(zkr::operation_aborted());
  EXPECT_TRUE(a.complete);
  EXPECT_EQ(a.io, mutex_io::none);
  ASSERT_EQ(a.orphan_names.size(), 1u);
  EXPECT_EQ(a.orphan_names[0], r.mine(1));
}

TEST(mutex_fsm, a_deadline_lets_the_first_check_finish_then_gives_up_while_waiting) {
  fsm_rig r;
  auto a = r.fsm.start(true);
  EXPECT_EQ(r.fsm.deadline(std::make_error_code(std::errc::timed_out)).io, mutex_io::none);
  a = r.fsm.on_created({}, r.mine(1), stat_with(3));
  ASSERT_EQ(a.io, mutex_io::check) << "a zero timeout still checks once (try-lock)";
  a = r.answer_check(a, {"_c_o-lock-" + seq10(0), r.mine(1)});
  ASSERT_EQ(a.io, mutex_io::read_pred);
  a = r.fsm.on_pred_read({});
  ASSERT_EQ(a.io, mutex_io::remove) << "about to wait: give up";
  a = r.fsm.on_removed({});
  EXPECT_TRUE(a.complete);
  EXPECT_EQ(a.ec, std::errc::timed_out);
}

TEST(mutex_fsm, a_deadline_does_not_stop_a_free_lock_from_being_taken) {
  fsm_rig r;
  r.fsm.start(true);
  r.fsm.deadline(std::make_error_code(std::errc::timed_out));
  auto a = r.fsm.on_created({}, r.mine(0), stat_with(3));
  a = r.answer_check(a, {r.mine(0)});
  EXPECT_TRUE(a.complete);
  EXPECT_FALSE(a.ec);
}

TEST(mutex_fsm, suspended_ends_the_hold_by_default) {
  fsm_rig r;
  r.hold(11);
  auto a = r.fsm.on_session({zkr::session_state::suspended, 1, {}});
  ASSERT_TRUE(a.notify);
  EXPECT_EQ(a.notify->kind, lock_event_kind::lost);
  EXPECT_EQ(a.notify->reason, errc::connection_loss);
  EXPECT_EQ(a.notify->token, 11);
  ASSERT_EQ(a.orphan_names.size(), 1u) << "disconnected: deleted in the background";
  EXPECT_TRUE(r.fsm.ready());
}

TEST(mutex_fsm, hold_through_suspended_keeps_holding_and_verifies_on_reconnect) {
  fsm_rig r(/*hold_through=*/true);
  r.hold(11);
  auto a = r.fsm.on_session({zkr::session_state::suspended, 1, {}});
  ASSERT_TRUE(a.notify);
  EXPECT_EQ(a.notify->kind, lock_event_kind::suspended);
  EXPECT_EQ(r.fsm.current(), mutex_fsm::phase::holding);
  a = r.fsm.on_session({zkr::session_state::reconnected, 1, {}});
  ASSERT_EQ(a.io, mutex_io::read_own);
  a = r.fsm.on_own_read({}, stat_with(11));
  ASSERT_TRUE(a.notify);
  EXPECT_EQ(a.notify->kind, lock_event_kind::reconnected);
  // ... and the session's loss ends it.
  a = r.fsm.on_session({zkr::session_state::suspended, 1, {}});
  a = r.fsm.on_session({zkr::session_state::lost, 1, make_error_code(errc::session_lost)});
  ASSERT_TRUE(a.notify);
  EXPECT_EQ(a.notify->kind, lock_event_kind::lost);
  EXPECT_EQ(a.notify->reason, errc::session_lost);
  EXPECT_EQ(a.orphan_names.size(), 1u) << "a presumed-lost session may still hold the node";
}

TEST(mutex_fsm, hold_through_suspended_loses_if_the_node_is_gone_on_reconnect) {
  fsm_rig r(/*hold_through=*/true);
  r.hold(11);
  r.fsm.on_session({zkr::session_state::suspended, 1, {}});
  auto a = r.fsm.on_session({zkr::session_state::reconnected, 1, {}});
  a = r.fsm.on_own_read(make_error_code(errc::no_node), {});
  ASSERT_TRUE(a.notify);
  EXPECT_EQ(a.notify->kind, lock_event_kind::lost);
  EXPECT_EQ(a.notify->reason, errc::no_node);
}

TEST(mutex_fsm, own_node_deleted_while_holding_is_lock_loss) {
  fsm_rig r;
  r.hold(11);
  auto a = r.fsm.on_own_watch(r.own_watch, {}, deleted_event);
  ASSERT_TRUE(a.notify);
  EXPECT_EQ(a.notify->kind, lock_event_kind::lost);
  EXPECT_EQ(a.notify->reason, errc::no_node);
  EXPECT_EQ(a.io, mutex_io::none) << "nothing to delete";
  EXPECT_TRUE(r.fsm.ready());
}

TEST(mutex_fsm, session_loss_fails_a_waiting_acquire_and_orphans_its_node) {
  fsm_rig r;
  r.wait_behind(1);
  auto a = r.fsm.on_session({zkr::session_state::lost, 1, make_error_code(errc::session_expired)});
  EXPECT_TRUE(a.complete);
  EXPECT_EQ(a.ec, errc::session_expired);
  EXPECT_EQ(a.orphan_names.size(), 1u);
}

TEST(mutex_fsm, session_loss_with_a_create_in_flight_orphans_its_prefix) {
  fsm_rig r;
  r.fsm.start(true);
  const auto prefix = r.fsm.prefix();
  auto a = r.fsm.on_session({zkr::session_state::lost, 1, make_error_code(errc::session_lost)});
  ASSERT_EQ(a.orphan_prefixes.size(), 1u);
  EXPECT_EQ(a.orphan_prefixes[0], prefix);
  EXPECT_FALSE(a.complete) << "the create's reply is still due";
  a = r.fsm.on_created(make_error_code(errc::connection_loss), "", {});
  EXPECT_TRUE(a.complete);
  EXPECT_EQ(a.ec, errc::session_lost);
}

TEST(mutex_fsm, release_deletes_the_node_then_reports) {
  fsm_rig r;
  r.hold(11);
  auto a = r.fsm.release();
  ASSERT_TRUE(a.notify);
  EXPECT_EQ(a.notify->kind, lock_event_kind::released);
  ASSERT_EQ(a.io, mutex_io::remove);
  EXPECT_FALSE(a.release_done);
  a = r.fsm.on_removed({});
  EXPECT_TRUE(a.release_done);
  EXPECT_FALSE(a.release_ec);
  EXPECT_TRUE(r.fsm.ready());
}

TEST(mutex_fsm, missing_parents_are_created_once) {
  fsm_rig r;
  r.fsm.start(true);
  auto a = r.fsm.on_created(make_error_code(errc::no_node), "", {});
  ASSERT_EQ(a.io, mutex_io::create_parents);
  a = r.fsm.on_parents({});
  ASSERT_EQ(a.io, mutex_io::create);
  a = r.fsm.on_created(make_error_code(errc::no_node), "", {});
  EXPECT_TRUE(a.complete);
  EXPECT_EQ(a.ec, errc::no_node);
}

TEST(mutex_fsm, retries_are_bounded_by_the_policy) {
  fsm_rig r(false, /*retries=*/2);
  r.fsm.start(true);
  auto a = r.fsm.on_created(make_error_code(errc::connection_loss), "", {});
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(a.io, mutex_io::backoff) << i;
    a = r.fsm.on_backoff_done();
    ASSERT_EQ(a.io, mutex_io::find);
    a = r.fsm.on_found(make_error_code(errc::connection_loss), {});
  }
  // Given up: no node can be known, so the prefix goes to the background cleanup.
  EXPECT_EQ(a.io, mutex_io::find) << "dropping: one more look before giving up for good";
}

// =============================================================================================
// 2. Both backends
// =============================================================================================

template <class B>
class mutex_both : public zkr::conformance::fixture<B> {
 protected:
  using session = typename B::session;
  using mutex_type = zkr::recipes::mutex<session>;

  std::vector<std::string> children(session& s, const std::string& p) {
    auto [ec, kids, st] = this->await(s.async_get_children(p, zkr::test::tok));
    EXPECT_TRUE(!ec || ec == errc::no_node) << ec.message();
    return kids;
  }
  template <class M>
  std::int64_t acquire(M& m, std::chrono::milliseconds timeout = 20s) {
    auto [ec, token] = this->await(m.async_acquire(timeout, zkr::test::tok));
    EXPECT_FALSE(ec) << ec.message();
    return token;
  }
  template <class M>
  void release(M& m) {
    auto [ec] = this->await(m.async_release(zkr::test::tok));
    EXPECT_FALSE(ec) << ec.message();
  }
};

TYPED_TEST_SUITE(mutex_both, zkr::conformance::backends, zkr::conformance::backend_names);

/// A thread-safe log of lock events.
struct event_log : zkr::test::recorder<lock_event> {
  bool has(lock_event_kind k) const {
    const auto v = items();
    return std::any_of(v.begin(), v.end(), [&](const lock_event& e) { return e.kind == k; });
  }
};

TYPED_TEST(mutex_both, acquire_uses_curators_layout_and_the_czxid_as_fencing_token) {
  auto& s = this->first();
  const auto lock = this->path("locks/a");  // the parent chain is created (as containers)
  typename TestFixture::mutex_type m(s, lock);
  event_log events;
  auto sub = m.subscribe([&](const lock_event& e) { events.push(e); });
  const auto token = this->acquire(m);
  EXPECT_TRUE(m.is_held());
  EXPECT_EQ(m.fencing_token(), token);
  const auto kids = this->children(s, lock);
  ASSERT_EQ(kids.size(), 1u);
  EXPECT_TRUE(zkr::test::sim::is_curator_protected_name(kids[0], "lock-"))
      << kids[0];
  auto [ec, st] = this->await(s.async_exists(lock + "/" + kids[0], zkr::test::tok));
  ASSERT_FALSE(ec);
  EXPECT_EQ(st.czxid, token);
  EXPECT_EQ(st.ephemeral_owner, s.session_id());
  auto [ec2, pst] = this->await(s.async_exists(lock, zkr::test::tok));
  ASSERT_FALSE(ec2);
  this->release(m);
  EXPECT_FALSE(m.is_held());
  EXPECT_EQ(m.fencing_token(), 0);
  EXPECT_TRUE(this->children(s, lock).empty());
  ASSERT_TRUE(this->eventually([&] { return events.size() >= 2; }));
  const auto ev = events.items();
  EXPECT_EQ(ev[0], (lock_event{lock_event_kind::acquired, token, {}}));
  EXPECT_EQ(ev[1], (lock_event{lock_event_kind::released, token, {}}));
}

TYPED_TEST(mutex_both, a_waiter_takes_over_on_release_with_a_higher_token) {
  auto& s1 = this->first();
  auto& s2 = this->open();
  const auto lock = this->path("lock");
  typename TestFixture::mutex_type m1(s1, lock), m2(s2, lock);
  const auto t1 = this->acquire(m1);
  auto f2 = m2.async_acquire(20s, zkr::test::tok);
  ASSERT_TRUE(this->eventually([&] { return this->children(s1, lock).size() == 2; }));
  this->advance(200ms);
  EXPECT_NE(f2.wait_for(0s), std::future_status::ready) << "two holders";
  EXPECT_FALSE(m2.is_held());
  this->release(m1);
  auto [ec, t2] = this->await(std::move(f2));
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_GT(t2, t1);
  EXPECT_TRUE(m2.is_held());
  // (Whether this hand-off took the shortcut depends on timing on a real server; the
  // hand-off test below pins it down with a probe.)
  this->release(m2);
}

TYPED_TEST(mutex_both, a_timed_out_acquire_leaves_no_node_and_a_zero_timeout_is_a_try_lock) {
  auto& s1 = this->first();
  auto& s2 = this->open();
  const auto lock = this->path("lock");
  typename TestFixture::mutex_type m1(s1, lock), m2(s2, lock);
  {
    auto [ec, t] = this->await(m1.async_acquire(0ms, zkr::test::tok));
    ASSERT_FALSE(ec) << "a free lock is taken with a zero timeout: " << ec.message();
  }
  for (const auto timeout : {0ms, 300ms}) {
    auto [ec, t] = this->await(m2.async_acquire(timeout, zkr::test::tok));
    EXPECT_EQ(ec, errc::operation_timeout) << ec.message();
    EXPECT_EQ(t, 0);
    EXPECT_EQ(this->children(s1, lock).size(), 1u) << "the timed-out contender's node is gone";
  }
  this->release(m1);
}

TYPED_TEST(mutex_both, every_cancellation_type_deletes_the_node_and_completes_aborted) {
  auto& s1 = this->first();
  auto& s2 = this->open();
  const auto lock = this->path("lock");
  typename TestFixture::mutex_type m1(s1, lock), m2(s2, lock);
  this->acquire(m1);
  for (const auto type : {asio::cancellation_type::terminal, asio::cancellation_type::partial,
                          asio::cancellation_type::total}) {
    SCOPED_TRACE(static_cast<int>(type));
    asio::cancellation_signal signal;
    auto f = m2.async_acquire(60s, asio::bind_cancellation_slot(signal.slot(), zkr::test::tok));
    ASSERT_TRUE(this->eventually([&] { return this->children(s1, lock).size() == 2; }));
    signal.emit(type);  // from the test's thread: the mutex hops to its executor
    auto [ec, t] = this->await(std::move(f));
    EXPECT_EQ(ec, zkr::operation_aborted()) << ec.message();
    EXPECT_EQ(this->children(s1, lock).size(), 1u);
  }
  // Cancelling before the create was even answered: its reply is awaited, then it is deleted.
  asio::cancellation_signal signal;
  auto f = m2.async_acquire(60s, asio::bind_cancellation_slot(signal.slot(), zkr::test::tok));
  signal.emit(asio::cancellation_type::terminal);
  auto [ec, t] = this->await(std::move(f));
  EXPECT_EQ(ec, zkr::operation_aborted());
  EXPECT_EQ(this->children(s1, lock).size(), 1u);
  this->release(m1);
}

TYPED_TEST(mutex_both, an_owner_re_enters_and_other_owners_of_the_same_object_wait) {
  auto& s = this->first();
  const auto lock = this->path("lock");
  typename TestFixture::mutex_type m(s, lock);
  const auto a = m.make_owner();
  const auto b = m.make_owner();
  EXPECT_NE(a, b);
  auto [ec1, t1] = this->await(m.async_acquire(a, 10s, zkr::test::tok));
  ASSERT_FALSE(ec1);
  auto [ec2, t2] = this->await(m.async_acquire(a, 10s, zkr::test::tok));
  ASSERT_FALSE(ec2);
  EXPECT_EQ(t1, t2);
  EXPECT_EQ(this->children(s, lock).size(), 1u) << "one node for both levels";
  auto [ec3, t3] = this->await(m.async_acquire(b, 300ms, zkr::test::tok));
  EXPECT_EQ(ec3, errc::operation_timeout);
  auto [ec4, t4] = this->await(m.async_acquire(300ms, zkr::test::tok));
  EXPECT_EQ(ec4, errc::operation_timeout) << "an anonymous acquire never re-enters";
  auto [ec5] = this->await(m.async_release(b, zkr::test::tok));
  EXPECT_EQ(ec5, errc::invalid_state) << "b holds nothing";
  auto fb = m.async_acquire(b, 20s, zkr::test::tok);  // queued behind a's hold
  auto [ec6] = this->await(m.async_release(a, zkr::test::tok));
  EXPECT_FALSE(ec6);
  EXPECT_TRUE(m.is_held()) << "one level left";
  EXPECT_NE(fb.wait_for(0s), std::future_status::ready);
  auto [ec7] = this->await(m.async_release(a, zkr::test::tok));
  EXPECT_FALSE(ec7);
  auto [ec8, t8] = this->await(std::move(fb));
  ASSERT_FALSE(ec8) << ec8.message();
  EXPECT_GT(t8, t1);
  auto [ec9] = this->await(m.async_release(zkr::test::tok));
  EXPECT_FALSE(ec9);
  EXPECT_TRUE(this->children(s, lock).empty());
  auto [ec10] = this->await(m.async_release(zkr::test::tok));
  EXPECT_EQ(ec10, errc::invalid_state);
}

TYPED_TEST(mutex_both, deleting_the_holders_node_is_lock_loss) {
  auto& s1 = this->first();
  auto& s2 = this->open();
  const auto lock = this->path("lock");
  typename TestFixture::mutex_type m1(s1, lock);
  event_log events;
  auto sub = m1.subscribe([&](const lock_event& e) { events.push(e); });
  const auto t = this->acquire(m1);
  const auto kids = this->children(s2, lock);
  ASSERT_EQ(kids.size(), 1u);
  auto [ec] = this->await(s2.async_remove(lock + "/" + kids[0], -1, zkr::test::tok));
  ASSERT_FALSE(ec);
  ASSERT_TRUE(this->eventually([&] { return events.has(lock_event_kind::lost); }));
  EXPECT_EQ(events.items().back(), (lock_event{lock_event_kind::lost, t, make_error_code(errc::no_node)}));
  EXPECT_FALSE(m1.is_held());
  auto [ec2] = this->await(m1.async_release(zkr::test::tok));
  EXPECT_FALSE(ec2) << "releasing a lost hold is fine";
}

TYPED_TEST(mutex_both, the_holders_session_expiry_is_lock_loss_and_hands_over) {
  auto& s1 = this->first();
  auto& s2 = this->open();
  const auto lock = this->path("lock");
  typename TestFixture::mutex_type m1(s1, lock), m2(s2, lock);
  event_log events;
  auto sub = m1.subscribe([&](const lock_event& e) { events.push(e); });
  const auto t1 = this->acquire(m1);
  auto f2 = m2.async_acquire(60s, zkr::test::tok);
  ASSERT_TRUE(this->eventually([&] { return this->children(s2, lock).size() == 2; }));
  ASSERT_TRUE(this->b_.expire(s1));
  auto [ec, t2] = this->await(std::move(f2));
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_GT(t2, t1);
  ASSERT_TRUE(this->eventually([&] { return events.has(lock_event_kind::lost); }));
  EXPECT_FALSE(m1.is_held());
  this->release(m2);
}

TYPED_TEST(mutex_both, callbacks_deferred_and_futures_all_work) {
  auto& s = this->first();
  typename TestFixture::mutex_type m(s, this->path("lock"));
  std::promise<std::int64_t> got;
  m.async_acquire(10s, [&](std::error_code ec, std::int64_t t) {
    EXPECT_FALSE(ec);
    got.set_value(t);
  });
  const auto t = this->await(got.get_future());
  EXPECT_GT(t, 0);
  auto op = m.async_release(asio::deferred);  // nothing happens until it is started
  EXPECT_TRUE(m.is_held());
  auto [ec] = this->await(std::move(op)(zkr::test::tok));
  EXPECT_FALSE(ec);
  EXPECT_FALSE(m.is_held());
}

TYPED_TEST(mutex_both, the_shortcut_saves_one_listing_per_hand_off) {
  // Two contenders take turns: A holds, B queues behind it (its listing shows only A), A
  // releases, B takes over; then the other way round. With the shortcut a contended acquire
  // lists the children once (the check after its create); without it twice (again after the
  // wake-up, as Curator and kazoo do).
  using probe = zkr::test::probe_session<typename TestFixture::session>;
  const auto run = [&](bool shortcut, const std::string& lock) {
    probe pa(this->first()), pb(this->open());
    zkr::recipes::mutex_options o;
    o.sole_predecessor_handoff = shortcut;
    zkr::recipes::mutex<probe> ma(pa, lock, o), mb(pb, lock, o);
    auto [ec0, t0] = this->await(ma.async_acquire(20s, zkr::test::tok));
    EXPECT_FALSE(ec0);
    constexpr int handoffs = 10;
    zkr::recipes::mutex<probe>* holder = &ma;
    zkr::recipes::mutex<probe>* waiter = &mb;
    probe* waiter_probe = &pb;
    std::uint64_t listings_before = pa.counts().get_children + pb.counts().get_children;
    for (int i = 0; i < handoffs; ++i) {
      const auto gets = waiter_probe->counts().get.load();
      auto f = waiter->async_acquire(20s, zkr::test::tok);
      // Wait until the waiter has read its predecessor (own read + predecessor read sent).
      EXPECT_TRUE(this->eventually([&] { return waiter_probe->counts().get.load() >= gets + 2; }));
      this->advance(50ms);
      auto [ecr] = this->await(holder->async_release(zkr::test::tok));
      EXPECT_FALSE(ecr);
      auto [eca, ta] = this->await(std::move(f));
      EXPECT_FALSE(eca) << eca.message();
      std::swap(holder, waiter);
      waiter_probe = waiter_probe == &pb ? &pa : &pb;
    }
    const std::uint64_t listings = pa.counts().get_children + pb.counts().get_children - listings_before;
    const auto shortcuts = ma.stats().shortcut_handoffs + mb.stats().shortcut_handoffs;
    auto [ecr] = this->await(holder->async_release(zkr::test::tok));
    EXPECT_FALSE(ecr);
    return std::make_pair(listings, shortcuts);
  };
  const auto [with, with_shortcuts] = run(true, this->path("on"));
  const auto [without, without_shortcuts] = run(false, this->path("off"));
  std::cout << "[ measured ] " << TypeParam::name << ": get_children per contended hand-off: "
            << static_cast<double>(with) / 10 << " with the shortcut, " << static_cast<double>(without) / 10
            << " without (Curator's count); saved " << static_cast<double>(without - with) / 10 << " round trip(s)"
            << std::endl;
  EXPECT_EQ(with_shortcuts, 10u);
  EXPECT_EQ(without_shortcuts, 0u);
  EXPECT_EQ(with, 10u) << "one listing per contended acquire";
  EXPECT_EQ(without, 20u) << "two listings per contended acquire";
}

// A coroutine holds the lock (simulator: the session's executor runs awaitable<T, executor>).
TEST(mutex_sim, a_coroutine_acquires_and_releases) {
  zkr::sim::cluster c({.seed = 3, .servers = 1, .tick_time = 200ms});
  zkr::sim::session s(c, {.connect_string = c.connect_string(), .session_timeout = 4s});
  zkr::recipes::mutex<zkr::sim::session> m(s, "/co-lock");
  using exec = zkr::sim::session::executor_type;
  constexpr asio::use_awaitable_t<exec> use_aw;
  std::int64_t token = 0;
  bool done = false;
  asio::co_spawn(
      s.get_executor(),
      [&]() -> asio::awaitable<void, exec> {
        // zkr completes with std::error_code first: use_awaitable gives the whole tuple.
        auto [ec, t] = co_await m.async_acquire(5s, use_aw);
        EXPECT_FALSE(ec);
        token = t;
        EXPECT_TRUE(m.is_held());
        const std::error_code ec2 = co_await m.async_release(use_aw);
        EXPECT_FALSE(ec2);
        done = true;
      },
      asio::detached);
  ASSERT_TRUE(c.run_until([&] { return done; }, 30s));
  EXPECT_GT(token, 0);
  EXPECT_FALSE(m.is_held());
}

// The shortcut's case that needed the argument: the predecessor goes because its session
// expired, while a newer contender queues. The waiter takes the lock without a listing; the
// newer one queues behind it (sequence numbers only grow).
TEST(mutex_sim, the_predecessor_expiring_while_a_new_contender_arrives) {
  zkr::sim::cluster c({.seed = 11, .servers = 3, .tick_time = 200ms});
  const auto so = [&] { return zkr::sim::session_options{.connect_string = c.connect_string(), .session_timeout = 4s}; };
  zkr::sim::session sa(c, so()), sb(c, so()), sc(c, so());
  zkr::recipes::mutex<zkr::sim::session> ma(sa, "/l"), mb(sb, "/l"), mc(sc, "/l");
  zkr::test::sim::holder_checker checker(c);
  std::vector<zkr::subscription> subs;
  using entry = std::pair<zkr::recipes::mutex<zkr::sim::session>*, zkr::sim::session*>;
  for (const entry& pair : {entry{&ma, &sa}, entry{&mb, &sb}, entry{&mc, &sc}}) {
    const auto p = pair.second->process();
    subs.push_back(pair.first->subscribe([&checker, p](const lock_event& e) {
      if (e.kind == lock_event_kind::acquired) checker.set(p, true);
      if (e.kind == lock_event_kind::lost || e.kind == lock_event_kind::released) checker.set(p, false);
    }));
  }
  auto [eca, ta] = zkr::test::sim::wait(c, ma.async_acquire(5s, zkr::test::sim::fut));
  ASSERT_FALSE(eca);
  auto fb = mb.async_acquire(60s, zkr::test::sim::fut);
  c.run_for(100ms);
  // A is partitioned away: it suspends (and stops believing) long before the ensemble expires
  // it; C arrives meanwhile, after B's listing.
  c.isolate(zkr::sim::endpoint::client(sa.process()));
  auto fc = mc.async_acquire(60s, zkr::test::sim::fut);
  auto [ecb, tb] = zkr::test::sim::wait(c, std::move(fb));
  ASSERT_FALSE(ecb) << ecb.message();
  EXPECT_EQ(mb.stats().shortcut_handoffs, 1u);
  EXPECT_GT(tb, ta);
  EXPECT_FALSE(ma.is_held());
  c.run_for(2s);
  EXPECT_NE(fc.wait_for(0s), std::future_status::ready) << "C must queue behind B";
  auto [ecr] = zkr::test::sim::wait(c, mb.async_release(zkr::test::sim::fut));
  EXPECT_FALSE(ecr);
  auto [ecc, tc] = zkr::test::sim::wait(c, std::move(fc));
  ASSERT_FALSE(ecc);
  EXPECT_GT(tc, tb);
  EXPECT_EQ(checker.violations(), 0);
  c.heal();
}

/// Three contenders a, b, c on one lock, each with a holder_checker entry (the harness's,
/// strict: any two running believers fail the test).
struct trio {
  explicit trio(std::uint64_t seed, std::chrono::milliseconds timeout = 2s)
      : c({.seed = seed, .servers = 3, .tick_time = 200ms}),
        sa(c, so(timeout)),
        sb(c, so(timeout)),
        sc(c, so(timeout)),
        sd(c, so(timeout)),
        ma(sa, "/l"),
        mb(sb, "/l"),
        mc(sc, "/l"),
        checker(c) {
    using entry = std::pair<zkr::recipes::mutex<zkr::sim::session>*, zkr::sim::session*>;
    for (const entry& e : {entry{&ma, &sa}, entry{&mb, &sb}, entry{&mc, &sc}}) {
      const auto p = e.second->process();
      subs.push_back(e.first->subscribe([this, p](const lock_event& ev) {
        if (ev.kind == lock_event_kind::acquired) checker.set(p, true);
        if (ev.kind == lock_event_kind::lost || ev.kind == lock_event_kind::released) checker.set(p, false);
      }));
    }
  }
  zkr::sim::session_options so(std::chrono::milliseconds timeout) {
    return {.connect_string = c.connect_string(), .session_timeout = timeout};
  }
  /// The one child of /l whose czxid is `token`, or "".
  std::string node_of(std::int64_t token) {
    auto [ec, kids, st] = zkr::test::sim::wait(c, sd.async_get_children("/l", zkr::test::sim::fut));
    for (const auto& k : kids) {
      auto [ec2, st2] = zkr::test::sim::wait(c, sd.async_exists("/l/" + k, zkr::test::sim::fut));
      if (!ec2 && st2.czxid == token) return k;
    }
    return {};
  }
  zkr::sim::cluster c;
  zkr::sim::session sa, sb, sc, sd;  // sd: an observer / administrator
  zkr::recipes::mutex<zkr::sim::session> ma, mb, mc;
  zkr::test::sim::holder_checker checker;
  std::vector<zkr::subscription> subs;
};

// The stall guard. b waits behind a (its listing showed only a). b's process freezes; a
// releases (b's watch event is queued, unread); b's session expires in silence; c takes the
// lock. When b wakes, the queued event must not make it a second holder: it lists again, and
// that round trip finds its session gone.
TEST(mutex_sim, a_waiter_frozen_past_its_session_does_not_take_the_lock_on_waking) {
  trio t(17);
  auto [eca, ta] = zkr::test::sim::wait(t.c, t.ma.async_acquire(5s, zkr::test::sim::fut));
  ASSERT_FALSE(eca);
  auto fb = t.mb.async_acquire(60s, zkr::test::sim::fut);
  t.c.run_for(300ms);  // b has listed and armed its predecessor watch
  t.c.pause_process(t.sb.process(), 8s);
  auto [ecr] = zkr::test::sim::wait(t.c, t.ma.async_release(zkr::test::sim::fut));
  ASSERT_FALSE(ecr);
  auto [ecc, tc] = zkr::test::sim::wait(t.c, t.mc.async_acquire(20s, zkr::test::sim::fut));
  ASSERT_FALSE(ecc) << "c gets the lock once b's session has expired";
  auto [ecb, tb] = zkr::test::sim::wait(t.c, std::move(fb));  // b wakes at +8 s
  EXPECT_TRUE(ecb == errc::session_expired || ecb == errc::session_lost) << ecb.message();
  EXPECT_FALSE(t.mb.is_held());
  EXPECT_TRUE(t.mc.is_held());
  EXPECT_EQ(t.checker.violations(), 0);
  EXPECT_GE(t.mb.stats().stalls, 1u) << "b noticed its stall";
  EXPECT_EQ(t.mb.stats().shortcut_handoffs, 0u);
}

// The classic pause hazard, which Curator has: b lists a free lock and freezes before it reads
// the answer ("you are first"); its session expires in silence and c takes the lock. On waking,
// b must not believe the stale answer: it lists again, and that round trip fails.
TEST(mutex_sim, a_listing_read_after_a_long_freeze_is_not_trusted) {
  zkr::sim::cluster c({.seed = 23, .servers = 3, .tick_time = 200ms});
  const auto so = [&] { return zkr::sim::session_options{.connect_string = c.connect_string(), .session_timeout = 2s}; };
  zkr::sim::session sb(c, so()), sc(c, so());
  zkr::test::probe_session<zkr::sim::session> pb(sb);
  zkr::recipes::mutex<zkr::test::probe_session<zkr::sim::session>> mb(pb, "/l");
  zkr::recipes::mutex<zkr::sim::session> mc(sc, "/l");
  zkr::test::sim::holder_checker checker(c);
  auto sub_b = mb.subscribe([&](const lock_event& e) {
    if (e.kind == lock_event_kind::acquired) checker.set(sb.process(), true);
    if (e.kind == lock_event_kind::lost || e.kind == lock_event_kind::released) checker.set(sb.process(), false);
  });
  auto sub_c = mc.subscribe([&](const lock_event& e) {
    if (e.kind == lock_event_kind::acquired) checker.set(sc.process(), true);
    if (e.kind == lock_event_kind::lost || e.kind == lock_event_kind::released) checker.set(sc.process(), false);
  });
  bool armed = true;
  pb.set_before_send([&](std::string_view op, std::string_view) {
    if (op == "get_children" && std::exchange(armed, false)) c.pause_process(sb.process(), 8s);
  });
  c.run_until([&] { return zkr::is_connected(sb.state()) && zkr::is_connected(sc.state()); }, 5s);
  auto fb = mb.async_acquire(60s, zkr::test::sim::fut);
  c.run_for(3s);  // b froze with the answer on its way; its session expired meanwhile
  auto [ecc, tc] = zkr::test::sim::wait(c, mc.async_acquire(20s, zkr::test::sim::fut));
  ASSERT_FALSE(ecc) << ecc.message();
  auto [ecb, tb] = zkr::test::sim::wait(c, std::move(fb));
  EXPECT_TRUE(ecb == errc::session_expired || ecb == errc::session_lost) << ecb.message();
  EXPECT_FALSE(mb.is_held());
  EXPECT_EQ(checker.violations(), 0);
}

// The epoch rule after a reconnect. b waits behind a; b is cut off for a second (its session
// survives); meanwhile an administrator deletes b's node and a releases. On reconnect the
// re-registered watches fire in table order, not in zxid order, so a's deletion may be read
// before b's own: b must not take the lock with its vanished node.
TEST(mutex_sim, a_waiter_whose_node_vanished_during_a_disconnect_does_not_hold_with_it) {
  for (std::uint64_t seed = 1; seed <= 8; ++seed) {  // both orders of the two watch events
    SCOPED_TRACE(seed);
    trio t(seed, 4s);
    auto [eca, ta] = zkr::test::sim::wait(t.c, t.ma.async_acquire(5s, zkr::test::sim::fut));
    ASSERT_FALSE(eca);
    std::vector<lock_event> b_events;
    auto sub = t.mb.subscribe([&](const lock_event& e) { b_events.push_back(e); });
    auto fb = t.mb.async_acquire(60s, zkr::test::sim::fut);
    t.c.run_for(300ms);
    std::string b_node;
    {
      auto [ec, kids, st] = zkr::test::sim::wait(t.c, t.sd.async_get_children("/l", zkr::test::sim::fut));
      const auto a_node = t.node_of(ta);
      for (const auto& k : kids) {
        if (k != a_node) b_node = k;
      }
    }
    ASSERT_FALSE(b_node.empty());
    auto [ecs, bst] = zkr::test::sim::wait(t.c, t.sd.async_exists("/l/" + b_node, zkr::test::sim::fut));
    ASSERT_FALSE(ecs);
    t.c.isolate(zkr::sim::endpoint::client(t.sb.process()));
    auto [ecd] = zkr::test::sim::wait(t.c, t.sd.async_remove("/l/" + b_node, -1, zkr::test::sim::fut));
    ASSERT_FALSE(ecd);
    auto [ecr] = zkr::test::sim::wait(t.c, t.ma.async_release(zkr::test::sim::fut));
    ASSERT_FALSE(ecr);
    t.c.run_for(1s);
    t.c.heal();
    auto [ecb, tb] = zkr::test::sim::wait(t.c, std::move(fb));
    ASSERT_FALSE(ecb) << ecb.message();
    EXPECT_NE(tb, bst.czxid) << "b held with the node that was deleted";
    for (const auto& e : b_events) EXPECT_NE(e.token, bst.czxid) << to_string(e.kind);
    EXPECT_FALSE(t.node_of(tb).empty()) << "b's token names no existing node";
    EXPECT_EQ(t.checker.violations(), 0);
  }
}

// =============================================================================================
// 3. Fault sweeps
// =============================================================================================

using sim_probe = zkr::test::probe_session<zkr::sim::session>;
using sim_mutex = zkr::recipes::mutex<sim_probe>;

std::string reason_name(std::error_code ec) {
  if (ec == errc::connection_loss) return "suspended";
  if (ec == errc::session_expired) return "expired";
  if (ec == errc::session_lost) return "presumed lost";
  if (ec == errc::no_node) return "node deleted";
  if (ec == errc::closing) return "closed";
  return ec.message();
}

struct sweep_options {
  bool strict = true;           ///< also run the harness's holder_checker (no excuses at all)
  bool hold_through_suspended = false;
  bool cut_mid_create = false;  ///< cut a client's link right after a lock create reached its server
  bool pauses = false;          ///< GC pauses (excused: fencing must refuse their late writes)
  bool forced_expiries = false; ///< the leader expires a session at once (excused likewise)
  bool random_faults = true;    ///< kills, leader kills, partitions, elections
  int clients = 4;
};

/// Four contenders in a faulty world, and what the checks need.
class lock_world {
 public:
  lock_world(std::uint64_t seed, sweep_options o) : o_(o), c_(options(seed)), rng_(seed * 7919 + 1) {
    if (o_.strict) checker_.emplace(c_);
    for (int i = 0; i < o_.clients; ++i) add_client(i);
  }
  ~lock_world() { stop_and_close(); }

  static zkr::sim::cluster_options options(std::uint64_t seed) {
    zkr::sim::cluster_options co;
    co.seed = seed;
    co.servers = 3;
    co.tick_time = 200ms;
    // Fixed 1 ms links: a create reaches its server after 1 ms and its reply leaves no sooner
    // than 2 ms later (forward, quorum), so a cut at +1.5 ms lands between the two.
    co.client_links = {1ms, 1ms, 0};
    co.server_links = {1ms, 1ms, 0};
    const char* tl = std::getenv("ZKR_TIMELINE");
    if (tl != nullptr && *tl != '\0') co.trace.timeline = &std::cout;
    return co;
  }

  void run(std::chrono::seconds faults_span) {
    std::vector<zkr::sim::process_id> procs;
    for (auto& cl : clients_) procs.push_back(cl->s->process());
    if (o_.random_faults || o_.pauses || o_.forced_expiries) {
      zkr::sim::cluster::fault_plan plan;
      plan.start = 2s;
      plan.span = faults_span;
      plan.count = 14;
      plan.max_length = 6s;
      plan.kill_servers = plan.kill_leader = plan.partitions = plan.elections = o_.random_faults;
      plan.pauses = false;  // our own, below: we must know who was paused
      plan.expiries = false;
      if (o_.random_faults) faults_ = c_.schedule_random_faults(plan, procs);
    }
    if (o_.pauses || o_.forced_expiries) schedule_excused_faults(faults_span);
    for (std::size_t i = 0; i < clients_.size(); ++i) contend(i);
    c_.run_for(faults_span + 10s);
    stop_and_settle();
  }

  int acquisitions() const {
    int n = 0;
    for (const auto& cl : clients_) n += cl->acquired;
    return n;
  }
  std::uint64_t shortcuts() const {
    std::uint64_t n = 0;
    for (const auto& cl : clients_) n += cl->m->stats().shortcut_handoffs;
    return n;
  }
  std::uint64_t adoptions() const {
    std::uint64_t n = 0;
    for (const auto& cl : clients_) n += cl->m->stats().adoptions;
    return n;
  }
  /// Two or more believers, none paused now, none excused (paused or force-expired since its
  /// acquire began: any lock recipe can be fooled then, which is what fencing is for).
  int violations() const { return (checker_ ? checker_->violations() : 0) + unexcused_overlaps_; }
  /// Overlaps that involved an excused believer (reported, not failures).
  int excused_overlaps() const { return excused_overlaps_; }
  std::uint64_t stalls() const {
    std::uint64_t n = 0;
    for (const auto& cl : clients_) n += cl->m->stats().stalls;
    return n;
  }
  int unexcused_refusals() const { return unexcused_refusals_; }
  int refusals() const { return resource_.refused(); }
  int deadline_misses() const { return deadline_misses_; }
  int stale_beliefs() const { return stale_beliefs_; }
  int held_through() const { return held_through_; }
  int held_through_reconnected() const { return held_through_reconnected_; }
  const std::map<std::string, int>& losses() const { return losses_; }
  int cuts() const { return cuts_; }
  std::size_t nodes_left() const {
    const auto lead = c_.leader();
    if (!lead) return 9999;
    const auto* n = c_.tree(*lead).find("/sweep/lock");
    return n == nullptr ? 0 : n->children.size();
  }
  std::string describe() const {
    std::ostringstream os;
    for (const auto& f : faults_) os << "  fault " << f << "\n";
    for (const auto& f : excused_faults_) os << "  fault " << f << "\n";
    return os.str();
  }

 private:
  struct client {
    std::unique_ptr<zkr::sim::session> s;
    std::unique_ptr<sim_probe> p;
    std::unique_ptr<sim_mutex> m;
    std::unique_ptr<zkr::sim::timer> t;
    zkr::subscription lock_sub, state_sub;
    bool stop = false;
    bool holding = false;
    bool contending = false;
    bool excused = false;         // paused or force-expired since the current acquire began
    bool force_expired = false;   // force-expired since the current acquire began
    bool suspended = false;
    zkr::sim::clock_time suspended_at{};
    int acquired = 0;
  };

  void add_client(int i) {
    auto cl = std::make_unique<client>();
    cl->s = std::make_unique<zkr::sim::session>(
        c_, zkr::sim::session_options{.connect_string = c_.connect_string(), .session_timeout = 2s,
                                      .name = "m" + std::to_string(i)});
    cl->p = std::make_unique<sim_probe>(*cl->s);
    client* raw = cl.get();
    const auto proc = cl->s->process();
    // Subscribed before the mutex: on `suspended` this runs first, so the lock's `lost`
    // can be compared with the suspension time.
    cl->state_sub = cl->s->subscribe([this, raw](const zkr::session_event& e) {
      if (e.state == zkr::session_state::suspended) {
        raw->suspended = true;
        raw->suspended_at = c_.now();
      } else if (zkr::is_connected(e.state)) {
        raw->suspended = false;
      }
    });
    zkr::recipes::mutex_options mo;
    mo.hold_through_suspended = o_.hold_through_suspended;
    cl->m = std::make_unique<sim_mutex>(*cl->p, "/sweep/lock", mo);
    cl->t = std::make_unique<zkr::sim::timer>(cl->s->get_executor());
    cl->lock_sub = cl->m->subscribe([this, raw, proc](const lock_event& e) { on_lock_event(*raw, proc, e); });
    if (o_.cut_mid_create) {
      cl->p->set_before_send([this, proc](std::string_view op, std::string_view path) {
        if (op != "create" || path.find("lock-") == std::string_view::npos) return;
        if (rng_.uniform(3) != 0) return;
        ++cuts_;
        c_.at(1500us, "cut", [proc](zkr::sim::cluster& cc) { cc.isolate(zkr::sim::endpoint::client(proc)); });
        const auto heal_after = std::chrono::milliseconds(100 + rng_.uniform(2500));
        c_.at(heal_after, "heal", [](zkr::sim::cluster& cc) { cc.heal(); });
      });
    }
    clients_.push_back(std::move(cl));
  }

  void on_lock_event(client& cl, zkr::sim::process_id proc, const lock_event& e) {
    switch (e.kind) {
      case lock_event_kind::acquired:
        cl.holding = true;
        ++cl.acquired;
        if (const auto lead = c_.leader(); lead && !c_.sessions(*lead).contains(cl.s->session_id())) {
          // The belief starts on a session the ensemble no longer has: only a process that
          // was frozen can get here (a reply or event processed after a long pause).
          ++stale_beliefs_;
          // A pause does not excuse it: a stalled contender lists again before it believes.
          if (!cl.force_expired) ADD_FAILURE() << "a belief started on an expired session";
        }
        if (checker_) checker_->set(proc, true);
        check_beliefs();
        break;
      case lock_event_kind::released:
      case lock_event_kind::lost:
        if (e.kind == lock_event_kind::lost) ++losses_[reason_name(e.reason)];
        // The belief ends: at `suspended` by default, by the presumed-lost deadline at the
        // latest with hold_through_suspended.
        if (e.kind == lock_event_kind::lost && cl.suspended) {
          const auto limit = o_.hold_through_suspended ? cl.s->negotiated_timeout() : std::chrono::milliseconds(0);
          if (c_.now() - cl.suspended_at > limit && !cl.excused) ++deadline_misses_;
        }
        cl.holding = false;
        if (checker_) checker_->set(proc, false);
        break;
      case lock_event_kind::suspended:
        // hold_through_suspended: holding at risk, by the option's documented contract.
        cl.excused = true;
        ++held_through_;
        break;
      case lock_event_kind::reconnected: ++held_through_reconnected_; break;
    }
  }

  /// GC pauses and forced expiries: scheduled here so we know whom they hit.
  void schedule_excused_faults(std::chrono::seconds span) {
    for (int k = 0; k < 8; ++k) {
      const auto at = 2s + std::chrono::milliseconds(rng_.uniform(static_cast<std::uint64_t>(span / 1ms)));
      const std::size_t who = rng_.uniform(clients_.size());
      client* cl = clients_[who].get();
      const auto proc = cl->s->process();
      if (o_.pauses && (!o_.forced_expiries || rng_.uniform(2) == 0)) {
        const auto len = std::chrono::milliseconds(100 + rng_.uniform(5000));
        excused_faults_.push_back(std::to_string(at / 1ms) + " pause m" + std::to_string(who) + " " +
                                  std::to_string(len.count()));
        c_.at(at, "pause", [cl, proc, len](zkr::sim::cluster& cc) {
          if (cl->holding || cl->contending) cl->excused = true;
          cc.pause_process(proc, len);
        });
      } else if (o_.forced_expiries) {
        excused_faults_.push_back(std::to_string(at / 1ms) + " expire m" + std::to_string(who));
        c_.at(at, "expire", [cl](zkr::sim::cluster& cc) {
          if (cl->holding || cl->contending) cl->excused = cl->force_expired = true;
          if (const auto sid = cc.session_of(cl->s->process())) cc.expire_session(*sid);
        });
      }
    }
  }

  void contend(std::size_t i) {
    client& cl = *clients_[i];
    if (cl.stop) return;
    const auto timeout = std::chrono::milliseconds(100 + rng_.uniform(3000));
    cl.contending = true;
    cl.excused = false;
    cl.force_expired = false;
    cl.m->async_acquire(timeout, [this, i](std::error_code ec, std::int64_t) {
      client& c = *clients_[i];
      c.contending = false;
      if (ec) return think(i);
      write(i);
      // Mostly short holds; one in five long enough for faults to land inside it.
      const auto hold = rng_.uniform(5) == 0 ? 300 + rng_.uniform(2700) : rng_.uniform(300);
      c.t->expires_after(std::chrono::milliseconds(hold));
      c.t->async_wait([this, i](std::error_code) {
        write(i);
        clients_[i]->m->async_release([this, i](std::error_code) { think(i); });
      });
    });
  }
  void think(std::size_t i) {
    client& c = *clients_[i];
    if (c.stop) return;
    c.t->expires_after(std::chrono::milliseconds(rng_.uniform(200)));
    c.t->async_wait([this, i](std::error_code ec) {
      if (!ec) contend(i);
    });
  }
  /// Counts the believers that are not paused now; fails on two unexcused ones.
  void check_beliefs() {
    int unpaused = 0, unexcused = 0;
    for (const auto& cl : clients_) {
      if (!cl->holding || c_.get_scheduler().paused(cl->s->process())) continue;
      ++unpaused;
      if (!cl->excused) ++unexcused;
    }
    if (unexcused > 1) {
      ++unexcused_overlaps_;
      ADD_FAILURE() << unexcused << " unexcused believers at t=" << c_.now().time_since_epoch().count() << " ns";
    } else if (unpaused > 1) {
      ++excused_overlaps_;
    }
  }

  /// The holder writes to the fenced resource while it believes it holds.
  void write(std::size_t i) {
    client& c = *clients_[i];
    if (!c.m->is_held()) return;
    if (!resource_.write(c.m->fencing_token()) && !c.excused) {
      ++unexcused_refusals_;
      ADD_FAILURE() << "a fenced write of m" << i << " was refused at t=" << c_.now().time_since_epoch().count()
                    << " ns, and it was neither paused nor force-expired";
    }
  }

  void stop_and_settle() {
    for (auto& cl : clients_) cl->stop = true;
    c_.heal();
    // Waiting acquires time out (<= 3.1 s), holds end (<= 0.3 s); orphans of presumed-lost
    // sessions are deleted by the background cleanup or expire with their sessions.
    c_.run_for(30s);
  }
  void stop_and_close() {
    for (auto& cl : clients_) {
      cl->stop = true;
      cl->lock_sub.reset();
      cl->state_sub.reset();
    }
    for (auto& cl : clients_) cl->m.reset();
    for (auto& cl : clients_) cl->s->async_close([](std::error_code) {});
    c_.run_for(2s);
    for (auto& cl : clients_) {
      cl->t.reset();
      cl->p.reset();
      cl->s.reset();
    }
  }

  sweep_options o_;
  zkr::sim::cluster c_;
  zkr::prng rng_;
  std::optional<zkr::test::sim::holder_checker> checker_;
  zkr::test::sim::fenced_resource resource_;
  std::vector<std::unique_ptr<client>> clients_;
  std::vector<std::string> faults_, excused_faults_;
  int unexcused_refusals_ = 0;
  int stale_beliefs_ = 0;
  int held_through_ = 0, held_through_reconnected_ = 0;
  std::map<std::string, int> losses_;
  int unexcused_overlaps_ = 0;
  int excused_overlaps_ = 0;
  int deadline_misses_ = 0;
  int cuts_ = 0;
};

struct sweep_totals {
  int acquisitions = 0;
  std::uint64_t shortcuts = 0, adoptions = 0, stalls = 0;
  int refusals = 0, cuts = 0, excused_overlaps = 0, stale_beliefs = 0, held_through = 0, held_through_reconnected = 0;
  std::map<std::string, int> losses;  ///< lost holds by reason
};

sweep_totals sweep(const sweep_options& o) {
  sweep_totals t;
  const auto first = zkr::test::sim::first_seed();
  for (int k = 0; k < zkr::test::sim::sweep_count(); ++k) {
    const std::uint64_t seed = first + static_cast<std::uint64_t>(k);
    ZKR_SEED_TRACE(seed);
    lock_world w(seed, o);
    w.run(20s);
    SCOPED_TRACE(w.describe());
    EXPECT_EQ(w.violations(), 0);
    EXPECT_EQ(w.unexcused_refusals(), 0);
    EXPECT_EQ(w.deadline_misses(), 0) << "a belief outlived its deadline";
    // Some seeds draw back-to-back elections of several seconds: a few holds is all they allow.
    EXPECT_GE(w.acquisitions(), 1) << "no progress at all";
    EXPECT_EQ(w.nodes_left(), 0u) << "a lock node was left behind";
    t.acquisitions += w.acquisitions();
    t.shortcuts += w.shortcuts();
    t.adoptions += w.adoptions();
    t.refusals += w.refusals();
    t.cuts += w.cuts();
    t.stalls += w.stalls();
    t.excused_overlaps += w.excused_overlaps();
    t.stale_beliefs += w.stale_beliefs();
    t.held_through += w.held_through();
    t.held_through_reconnected += w.held_through_reconnected();
    for (const auto& [why, n] : w.losses()) t.losses[why] += n;
  }
  EXPECT_GE(t.acquisitions, 20 * zkr::test::sim::sweep_count()) << "too little progress across the sweep";
  std::cout << "[ sweep    ] holds lost:";
  for (const auto& [why, n] : t.losses) std::cout << " " << n << " (" << why << ")";
  std::cout << "; held through suspended " << t.held_through << " (reconnected and kept " << t.held_through_reconnected
            << "); beliefs begun on an expired session " << t.stale_beliefs << std::endl;
  std::cout << "[ sweep    ] acquisitions " << t.acquisitions << ", shortcut hand-offs " << t.shortcuts
            << ", adoptions after a lost create reply " << t.adoptions << ", mid-create cuts " << t.cuts
            << ", stalls noticed " << t.stalls << ", refused fenced writes " << t.refusals
            << ", overlaps with an excused believer " << t.excused_overlaps << std::endl;
  return t;
}

TEST(mutex_sweep, one_believer_at_a_time_under_server_and_network_faults) {
  const auto t = sweep({});
  EXPECT_GT(t.shortcuts, 0u) << "the shortcut never ran: the sweep does not cover it";
  EXPECT_TRUE(t.losses.contains("suspended"))
      << "no hold ever ended at `suspended`: the faults miss the holds";
  EXPECT_EQ(t.refusals, 0);
}

TEST(mutex_sweep, connection_loss_mid_create_adopts_or_cleans_up) {
  sweep_options o;
  o.cut_mid_create = true;
  const auto t = sweep(o);
  EXPECT_GT(t.cuts, 0);
  EXPECT_GT(t.adoptions, 0u) << "no create's node was ever adopted: the path is not covered";
  EXPECT_EQ(t.refusals, 0);
}

TEST(mutex_sweep, paused_or_force_expired_holders_are_fenced_off) {
  sweep_options o;
  o.pauses = true;
  o.forced_expiries = true;
  // Two believers can overlap here whatever the recipe (the ensemble expires a session whose
  // owner cannot know yet; a reply processed after a long pause is stale): overlaps are
  // asserted only among believers that were neither paused nor force-expired since their
  // acquire began; for the others, fencing must refuse the late writes. And no belief may
  // begin on a session the ensemble has already expired unless that expiry was forced: a
  // contender that was frozen lists again before it believes (the stall guard).
  o.strict = false;
  const auto t = sweep(o);
  EXPECT_GT(t.stalls, 0u) << "no waiter ever noticed a stall: the guard is not covered";
}

TEST(mutex_sweep, hold_through_suspended_ends_every_belief_by_the_presumed_lost_deadline) {
  sweep_options o;
  o.hold_through_suspended = true;
  // The option's documented risk is an overlap between a holder that is still within its
  // presumed-lost deadline and a successor: not asserted (strict off), the deadline is.
  o.strict = false;
  const auto t = sweep(o);
  EXPECT_GT(t.held_through_reconnected, 0) << "no hold survived a suspension: the option is not covered";
}

}  // namespace
