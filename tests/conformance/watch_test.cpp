// Goal: ZooKeeper's watch rules, alike on real ZooKeeper and on the simulator: which read sets
// which watch, which change fires it with which event and path, one-shot delivery, no watch
// after a failed read (but one after exists on a missing node), a watch event before the data
// it reports, and how watches end when their session is closed.
// Method: the typed fixture (fixture.hpp); watches record into a watch_log (whose handlers
// fail the test if called twice). "Nothing else fired" is proven without waiting: ZooKeeper
// delivers a watch event before any later reply that reflects the change, so once a read on
// the watching session sees the change, every event it caused has been delivered. The
// server's own table of data watches is read too (real: the 4-letter word `wchp`; simulator:
// the leader's data tree).
#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "fixture.hpp"

namespace zkr::conformance {
namespace {

template <class B>
class watches : public fixture<B> {};
TYPED_TEST_SUITE(watches, backends, backend_names);

TYPED_TEST(watches, exists_on_a_missing_node_sets_a_watch_that_fires_created) {
  auto& t = *this;
  auto& s = t.first();
  const auto p = t.path("later");
  auto& log = t.new_watch_log();
  ASSERT_EQ(t.err(s.async_exists(p, log.handler(1), tok)), errc::no_node);
  EXPECT_TRUE(t.b_.server_has_data_watch(p, s.session_id()));
  auto [ec, created, st] = t.await(t.open().async_create(p, "", {}, tok));
  ASSERT_FALSE(ec);
  ASSERT_TRUE(t.wait_watches(log, 1));
  const auto r = log.items()[0];
  EXPECT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.event, (watch_event{event_type::created, p}));
  EXPECT_FALSE(t.b_.server_has_data_watch(p, s.session_id())) << "a fired watch is gone from the server";
}

TYPED_TEST(watches, exists_watch_on_a_node_fires_data_changed_then_deleted) {
  auto& t = *this;
  auto& s = t.first();
  auto& other = t.open();
  const auto p = t.path("node");
  ASSERT_FALSE(t.err(s.async_create(p, "a", {}, tok)));
  auto& log = t.new_watch_log();
  ASSERT_FALSE(t.err(s.async_exists(p, log.handler(1), tok)));
  ASSERT_FALSE(t.err(other.async_set(p, "b", -1, tok)));
  ASSERT_TRUE(t.wait_watches(log, 1));
  ASSERT_FALSE(t.err(s.async_exists(p, log.handler(2), tok)));
  ASSERT_FALSE(t.err(other.async_remove(p, -1, tok)));
  ASSERT_TRUE(t.wait_watches(log, 2));
  const auto items = log.items();
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].id, 1);
  EXPECT_EQ(items[0].event, (watch_event{event_type::data_changed, p}));
  EXPECT_EQ(items[1].id, 2);
  EXPECT_EQ(items[1].event, (watch_event{event_type::deleted, p}));
}

TYPED_TEST(watches, get_watch_fires_data_changed_on_set_and_deleted_on_remove) {
  auto& t = *this;
  auto& s = t.first();
  auto& other = t.open();
  const auto p = t.path("node");
  ASSERT_FALSE(t.err(s.async_create(p, "a", {}, tok)));
  auto& log = t.new_watch_log();
  ASSERT_FALSE(t.err(s.async_get(p, log.handler(1), tok)));
  ASSERT_FALSE(t.err(other.async_set(p, "b", -1, tok)));
  ASSERT_TRUE(t.wait_watches(log, 1));
  ASSERT_FALSE(t.err(s.async_get(p, log.handler(2), tok)));
  ASSERT_FALSE(t.err(other.async_remove(p, -1, tok)));
  ASSERT_TRUE(t.wait_watches(log, 2));
  const auto items = log.items();
  ASSERT_EQ(items.size(), 2u);
  EXPECT_FALSE(items[0].ec);
  EXPECT_EQ(items[0].id, 1);
  EXPECT_EQ(items[0].event, (watch_event{event_type::data_changed, p}));
  EXPECT_FALSE(items[1].ec);
  EXPECT_EQ(items[1].id, 2);
  EXPECT_EQ(items[1].event, (watch_event{event_type::deleted, p}));
}

TYPED_TEST(watches, data_watches_ignore_child_changes_and_acl_changes) {
  auto& t = *this;
  auto& s = t.first();
  auto& other = t.open();
  const auto p = t.path("node");
  ASSERT_FALSE(t.err(s.async_create(p, "a", {}, tok)));
  auto& log = t.new_watch_log();
  ASSERT_FALSE(t.err(s.async_get(p, log.handler(1), tok)));
  ASSERT_FALSE(t.err(s.async_exists(p, log.handler(2), tok)));
  ASSERT_FALSE(t.err(other.async_create(p + "/c", "", {}, tok)));
  ASSERT_FALSE(t.err(other.async_remove(p + "/c", -1, tok)));
  ASSERT_FALSE(t.err(other.async_set_acl(p, open_acl_unsafe(), -1, tok)));
  // The watching session sees all three changes: any event they caused has been delivered.
  auto [ec, acls, st] = t.await(s.async_get_acl(p, tok));
  ASSERT_FALSE(ec);
  ASSERT_EQ(st.aversion, 1);
  ASSERT_EQ(st.cversion, 2);
  t.drain();
  EXPECT_EQ(log.size(), 0u) << "a child or ACL change fired a data watch";
  ASSERT_FALSE(t.err(other.async_set(p, "b", -1, tok)));
  ASSERT_TRUE(t.wait_watches(log, 2));
  for (const auto& r : log.items()) EXPECT_EQ(r.event, (watch_event{event_type::data_changed, p})) << r.id;
}

TYPED_TEST(watches, children_watch_fires_on_child_create_child_delete_and_node_delete) {
  auto& t = *this;
  auto& s = t.first();
  auto& other = t.open();
  const auto p = t.path("parent");
  ASSERT_FALSE(t.err(s.async_create(p, "", {}, tok)));
  auto& log = t.new_watch_log();
  ASSERT_FALSE(t.err(s.async_get_children(p, log.handler(1), tok)));
  ASSERT_FALSE(t.err(other.async_create(p + "/c", "", {}, tok)));
  ASSERT_TRUE(t.wait_watches(log, 1));
  ASSERT_FALSE(t.err(s.async_get_children(p, log.handler(2), tok)));
  ASSERT_FALSE(t.err(other.async_remove(p + "/c", -1, tok)));
  ASSERT_TRUE(t.wait_watches(log, 2));
  ASSERT_FALSE(t.err(s.async_get_children(p, log.handler(3), tok)));
  ASSERT_FALSE(t.err(other.async_remove(p, -1, tok)));
  ASSERT_TRUE(t.wait_watches(log, 3));
  const auto items = log.items();
  ASSERT_EQ(items.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(items[i].ec) << items[i].ec.message();
    EXPECT_EQ(items[i].id, i + 1);
    EXPECT_EQ(items[i].event.path, p) << "a child event names the watched parent, not the child";
  }
  EXPECT_EQ(items[0].event.type, event_type::children_changed);
  EXPECT_EQ(items[1].event.type, event_type::children_changed);
  EXPECT_EQ(items[2].event.type, event_type::deleted);
}

TYPED_TEST(watches, children_watch_ignores_data_changes_and_grandchildren) {
  auto& t = *this;
  auto& s = t.first();
  auto& other = t.open();
  const auto p = t.path("parent");
  ASSERT_FALSE(t.err(s.async_create(p, "", {}, tok)));
  ASSERT_FALSE(t.err(s.async_create(p + "/c", "", {}, tok)));
  auto& log = t.new_watch_log();
  ASSERT_FALSE(t.err(s.async_get_children(p, log.handler(1), tok)));
  ASSERT_FALSE(t.err(other.async_set(p, "x", -1, tok)));
  ASSERT_FALSE(t.err(other.async_set(p + "/c", "x", -1, tok)));
  ASSERT_FALSE(t.err(other.async_create(p + "/c/g", "", {}, tok)));
  auto [ec, children, st] = t.await(s.async_get_children(p + "/c", tok));
  ASSERT_FALSE(ec);
  ASSERT_EQ(children, std::vector<std::string>{"g"});
  t.drain();
  EXPECT_EQ(log.size(), 0u);
  // Still set: a child change fires it.
  ASSERT_FALSE(t.err(other.async_create(p + "/d", "", {}, tok)));
  ASSERT_TRUE(t.wait_watches(log, 1));
  EXPECT_EQ(log.items()[0].event, (watch_event{event_type::children_changed, p}));
}

TYPED_TEST(watches, is_one_shot) {
  auto& t = *this;
  auto& s = t.first();
  auto& other = t.open();
  const auto p = t.path("once");
  ASSERT_FALSE(t.err(s.async_create(p, "0", {}, tok)));
  auto& log = t.new_watch_log();
  ASSERT_FALSE(t.err(s.async_get(p, log.handler(1), tok)));
  ASSERT_FALSE(t.err(other.async_set(p, "1", -1, tok)));
  ASSERT_FALSE(t.err(other.async_set(p, "2", -1, tok)));
  // Once the watching session reads "2", both sets' events (if any) have been delivered.
  auto [ec, data, st] = t.await(s.async_get(p, tok));
  ASSERT_FALSE(ec);
  ASSERT_EQ(data, "2");
  t.drain();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log.items()[0].event, (watch_event{event_type::data_changed, p}));
}

TYPED_TEST(watches, a_read_that_fails_with_no_node_sets_no_watch) {
  auto& t = *this;
  auto& s = t.first();
  const auto missing = t.path("missing");
  const auto control = t.path("control");
  auto& log = t.new_watch_log();
  EXPECT_EQ(t.err(s.async_get(missing, log.handler(1), tok)), errc::no_node);
  EXPECT_EQ(t.err(s.async_get_children(missing, log.handler(2), tok)), errc::no_node);
  EXPECT_EQ(t.err(s.async_exists(control, log.handler(3), tok)), errc::no_node);
  // The server agrees: no watch on `missing`, this session's exists-watch on `control`.
  EXPECT_FALSE(t.b_.server_has_data_watch(missing, s.session_id()));
  EXPECT_TRUE(t.b_.server_has_data_watch(control, s.session_id()));

  auto& other = t.open();
  ASSERT_FALSE(t.err(other.async_create(missing, "", {}, tok)));
  ASSERT_FALSE(t.err(other.async_create(missing + "/child", "", {}, tok)));
  ASSERT_FALSE(t.err(other.async_set(missing, "x", -1, tok)));
  ASSERT_FALSE(t.err(other.async_create(control, "", {}, tok)));
  ASSERT_TRUE(t.wait_watches(log, 1));
  // The session sees all four changes, so any event they caused has been delivered.
  auto [ec, children, st] = t.await(s.async_get_children(missing, tok));
  ASSERT_FALSE(ec);
  ASSERT_EQ(children, std::vector<std::string>{"child"});
  ASSERT_FALSE(t.err(s.async_exists(control, tok)));
  t.drain();
  const auto items = log.items();
  ASSERT_EQ(items.size(), 1u) << "the failed get / get_children must not have left a watch";
  EXPECT_EQ(items[0].id, 3);
  EXPECT_EQ(items[0].event, (watch_event{event_type::created, control}));
}

TYPED_TEST(watches, a_read_that_fails_with_no_auth_sets_no_watch_and_drops_the_handler) {
  auto& t = *this;
  auto& s = t.first();
  auto& owner = t.open();
  const auto p = t.path("private");
  ASSERT_FALSE(t.err(owner.async_add_auth("digest", "owner:pw", tok)));
  ASSERT_FALSE(t.err(owner.async_create(p, "", {.acl = creator_all_acl()}, tok)));
  // The handler is destroyed without being called: the read's error says it all.
  auto alive = std::make_shared<int>(0);
  std::weak_ptr<int> weak = alive;
  EXPECT_EQ(t.err(s.async_get(p, [keep = std::move(alive)](std::error_code, watch_event) { ADD_FAILURE(); }, tok)),
            errc::no_auth);
  t.drain();
  EXPECT_TRUE(weak.expired()) << "the watch handler of a failed read was kept";
  EXPECT_FALSE(t.b_.server_has_data_watch(p, s.session_id()));
  ASSERT_FALSE(t.err(owner.async_set(p, "x", -1, tok)));
  ASSERT_FALSE(t.err(owner.async_remove(p, -1, tok)));
  EXPECT_EQ(t.err(s.async_exists(p, tok)), errc::no_node);
  t.drain();
}

TYPED_TEST(watches, a_multi_fires_the_watches_of_each_op_and_a_failed_one_none) {
  auto& t = *this;
  auto& s = t.first();
  auto& other = t.open();
  const auto a = t.path("a"), b = t.path("b"), c = t.path("c");
  ASSERT_FALSE(t.err(s.async_create(a, "", {}, tok)));
  ASSERT_FALSE(t.err(s.async_create(c, "", {}, tok)));
  auto& log = t.new_watch_log();
  ASSERT_FALSE(t.err(s.async_get(a, log.handler(1), tok)));
  ASSERT_EQ(t.err(s.async_exists(b, log.handler(2), tok)), errc::no_node);
  ASSERT_FALSE(t.err(s.async_get_children(t.root_, log.handler(3), tok)));
  ASSERT_FALSE(t.err(s.async_exists(c, log.handler(4), tok)));
  // A failed multi fires nothing.
  EXPECT_EQ(t.err(other.async_multi({op::make_set(a, "x"), op::make_create(b, ""), op::make_check(c, 7)}, tok)),
            errc::bad_version);
  ASSERT_FALSE(t.err(s.async_sync(t.root_, tok)));
  t.drain();
  EXPECT_EQ(log.size(), 0u);
  // A committed one fires every watch its ops trigger.
  ASSERT_FALSE(t.err(other.async_multi({op::make_set(a, "x"), op::make_create(b, ""), op::make_remove(c)}, tok)));
  ASSERT_TRUE(t.wait_watches(log, 4));
  ASSERT_FALSE(t.err(s.async_exists(b, tok)));
  t.drain();
  std::map<int, watch_event> by_id;
  for (const auto& r : log.items()) {
    EXPECT_FALSE(r.ec);
    by_id[r.id] = r.event;
  }
  ASSERT_EQ(by_id.size(), 4u);
  EXPECT_EQ(by_id[1], (watch_event{event_type::data_changed, a}));
  EXPECT_EQ(by_id[2], (watch_event{event_type::created, b}));
  EXPECT_EQ(by_id[3], (watch_event{event_type::children_changed, t.root_}));
  EXPECT_EQ(by_id[4], (watch_event{event_type::deleted, c}));
}

TYPED_TEST(watches, event_is_delivered_before_the_data_it_reports) {
  auto& t = *this;
  auto& a = t.first();
  auto& b = t.open();
  const auto p = t.path("ordered");
  ASSERT_FALSE(t.err(a.async_create(p, "0", {}, tok)));
  for (int round = 1; round <= 20; ++round) {
    struct order {
      std::atomic<int> next{1};
      std::atomic<int> watch_at{0};
      std::atomic<int> read_at{0};
    };
    auto o = std::make_shared<order>();
    ASSERT_FALSE(t.err(a.async_get(p, [o](std::error_code ec, watch_event) { o->watch_at = ec ? -1 : o->next++; }, tok)));
    const auto value = std::to_string(round);
    ASSERT_FALSE(t.err(b.async_set(p, value, -1, tok)));
    // Issued right after the set, without waiting for the event.
    std::promise<std::string> read;
    a.async_get(p, [o, &read](std::error_code ec, std::string data, zkr::stat) {
      o->read_at = o->next++;
      read.set_value(ec ? "error: " + ec.message() : data);
    });
    ASSERT_EQ(t.await(read.get_future()), value) << "the second read must see the new data";
    EXPECT_GT(o->watch_at.load(), 0) << "round " << round << ": the watch had not fired";
    EXPECT_LT(o->watch_at.load(), o->read_at.load()) << "round " << round;
  }
}

TYPED_TEST(watches, event_paths_are_full_paths) {
  auto& t = *this;
  auto& s = t.first();
  const auto mid = t.path("a");
  const auto leaf = mid + "/b";
  ASSERT_FALSE(t.err(s.async_create(mid, "", {}, tok)));
  auto& log = t.new_watch_log();
  ASSERT_EQ(t.err(s.async_exists(leaf, log.handler(1), tok)), errc::no_node);
  ASSERT_FALSE(t.err(s.async_get_children(mid, log.handler(2), tok)));
  ASSERT_FALSE(t.err(s.async_create(leaf, "", {}, tok)));
  ASSERT_TRUE(t.wait_watches(log, 2));
  for (const auto& r : log.items()) {
    EXPECT_FALSE(r.ec);
    EXPECT_EQ(r.event.path, r.id == 1 ? leaf : mid) << "watch " << r.id;
    EXPECT_EQ(r.event.type, r.id == 1 ? event_type::created : event_type::children_changed);
  }
}

TYPED_TEST(watches, one_change_fires_every_watch_of_every_session_on_it) {
  auto& t = *this;
  auto& a = t.first();
  auto& b = t.open();
  auto& writer = t.open();
  const auto p = t.path("shared");
  ASSERT_FALSE(t.err(a.async_create(p, "", {}, tok)));
  auto& log = t.new_watch_log();
  ASSERT_FALSE(t.err(a.async_get(p, log.handler(1), tok)));
  ASSERT_FALSE(t.err(a.async_exists(p, log.handler(2), tok)));
  ASSERT_FALSE(t.err(a.async_get_children(p, log.handler(3), tok)));
  ASSERT_FALSE(t.err(b.async_get(p, log.handler(4), tok)));
  ASSERT_FALSE(t.err(b.async_get(p, log.handler(5), tok)));  // the same watch twice on one session
  ASSERT_FALSE(t.err(writer.async_remove(p, -1, tok)));
  ASSERT_TRUE(t.wait_watches(log, 5));
  EXPECT_EQ(t.err(a.async_exists(p, tok)), errc::no_node);
  EXPECT_EQ(t.err(b.async_exists(p, tok)), errc::no_node);
  t.drain();
  const auto items = log.items();
  ASSERT_EQ(items.size(), 5u);
  std::set<int> ids;
  for (const auto& r : items) {
    EXPECT_FALSE(r.ec);
    EXPECT_EQ(r.event, (watch_event{event_type::deleted, p})) << r.id;
    ids.insert(r.id);
  }
  EXPECT_EQ(ids, (std::set<int>{1, 2, 3, 4, 5}));
}

TYPED_TEST(watches, closing_the_session_ends_each_watch_once_with_closing) {
  auto& t = *this;
  auto& s = t.open();
  const auto p = t.path("n");
  ASSERT_FALSE(t.err(t.first().async_create(p, "", {}, tok)));
  auto& log = t.new_watch_log();
  ASSERT_FALSE(t.err(s.async_exists(p, log.handler(1), tok)));
  ASSERT_FALSE(t.err(s.async_get(p, log.handler(2), tok)));
  ASSERT_FALSE(t.err(s.async_get_children(p, log.handler(3), tok)));
  ASSERT_EQ(t.err(s.async_exists(t.path("none"), log.handler(4), tok)), errc::no_node);
  ASSERT_FALSE(t.err(s.async_close(tok)));
  ASSERT_TRUE(t.wait_watches(log, 4));
  // Changes after the close reach no watch (a second call of a handler fails the test).
  ASSERT_FALSE(t.err(t.first().async_create(t.path("none"), "", {}, tok)));
  ASSERT_FALSE(t.err(t.first().async_create(p + "/c", "", {}, tok)));
  ASSERT_FALSE(t.err(t.first().async_set(p, "x", -1, tok)));
  t.drain();
  const auto items = log.items();
  ASSERT_EQ(items.size(), 4u);
  std::set<int> ids;
  for (const auto& r : items) {
    EXPECT_EQ(r.ec, errc::closing) << "watch " << r.id << ": " << r.ec.message();
    ids.insert(r.id);
  }
  EXPECT_EQ(ids, (std::set<int>{1, 2, 3, 4}));
  EXPECT_FALSE(t.b_.server_has_data_watch(p, s.session_id()));
}

TYPED_TEST(watches, a_hundred_watches_each_fire_exactly_once) {
  auto& t = *this;
  auto& s = t.first();
  auto& other = t.open();
  constexpr int n = 100;
  std::vector<op> creates, sets;
  for (int i = 0; i < n; ++i) {
    creates.push_back(op::make_create(t.path("n" + std::to_string(i)), ""));
    sets.push_back(op::make_set(t.path("n" + std::to_string(i)), "x"));
  }
  ASSERT_FALSE(t.err(s.async_multi(creates, tok)));
  auto& log = t.new_watch_log();
  std::vector<std::future<std::tuple<std::error_code, std::string, zkr::stat>>> reads;
  for (int i = 0; i < n; ++i) reads.push_back(s.async_get(t.path("n" + std::to_string(i)), log.handler(i), tok));
  for (auto& f : reads) ASSERT_FALSE(t.err(std::move(f)));
  ASSERT_FALSE(t.err(other.async_multi(sets, tok)));
  ASSERT_TRUE(t.wait_watches(log, n));
  ASSERT_FALSE(t.err(other.async_multi(sets, tok)));  // fires nothing more
  auto [ec, data, st] = t.await(s.async_get(t.path("n99"), tok));
  ASSERT_EQ(st.version, 2);
  t.drain();
  const auto items = log.items();
  ASSERT_EQ(items.size(), static_cast<std::size_t>(n));
  std::set<int> ids;
  for (const auto& r : items) {
    EXPECT_FALSE(r.ec);
    EXPECT_EQ(r.event, (watch_event{event_type::data_changed, t.path("n" + std::to_string(r.id))}));
    ids.insert(r.id);
  }
  EXPECT_EQ(ids.size(), static_cast<std::size_t>(n));
}

}  // namespace
}  // namespace zkr::conformance
