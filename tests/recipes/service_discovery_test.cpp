// Goal: zkr::recipes::service_discovery registers and reads service instances exactly in
// Curator 5.4's curator-x-discovery layout and JSON (so Java and C++ services discover each
// other), and zkr::recipes::service_cache / service_provider keep a watched view of a service
// that converges to the registry and keeps answering, marked stale, while the registry is
// unreachable (a registry must stay a weak dependency of the calls it routes).
//
// Method, in three parts (Curator itself on the other side is tests/interop/):
//   1. strategy.*: the selection strategies on fixed candidate lists (round robin order,
//      random draws replayed from a seed, sticky by id).
//   2. discovery/<backend>.*, cache/<backend>.*: the recipes against real ZooKeeper and the
//      simulator through the conformance suite's typed fixture (tests/conformance/fixture.hpp):
//      the znode layout and the bytes written, queries, updates, unreadable nodes, invalid
//      input, expiry, cache events, selection, a server outage (stale answers), every
//      completion token.
//   3. sweep.*: simulator sweeps over ZKR_SEEDS seeds (ZKR_SEED=N replays one): under random
//      faults and registration churn the cache equals the leader's registry once quiet; during
//      long elections and partitions the provider keeps answering from the last instances,
//      stale, and is fresh again afterwards.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <set>
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

#include <zkr/recipes/service_cache.hpp>
#include <zkr/recipes/service_discovery.hpp>

#include "conformance/fixture.hpp"
#include "recipes/sim_harness.hpp"

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using zkr::errc;
using zkr::session_state;
using zkr::json::value;
using zkr::recipes::children_cache_event_type;
using zkr::recipes::ephemeral_node_state;
using zkr::recipes::random_strategy;
using zkr::recipes::round_robin_strategy;
using zkr::recipes::service_cache;
using zkr::recipes::service_cache_event;
using zkr::recipes::service_discovery;
using zkr::recipes::service_instance;
using zkr::recipes::service_instances;
using zkr::recipes::service_provider;
using zkr::recipes::service_type;
using zkr::recipes::sticky_strategy;
using zkr::recipes::uri_spec;

/// An instance of "orders" as a C++ service registers it.
service_instance orders(std::string id, std::int32_t port = 8080) {
  service_instance i;
  i.name = "orders";
  i.id = std::move(id);
  i.address = "10.0.0.7";
  i.port = port;
  i.payload = value::object_type{{"zone", "eu-west-1a"}, {"weight", 10}};
  i.registration_time_utc = 1577836800123;
  i.uri = uri_spec::parse("{scheme}://{address}:{port}/api");
  return i;
}

/// A canonical lower-case version-4 UUID (what Curator's builder and zkr draw for an id).
/// (No std::regex: GCC 12's <regex> trips -Wmaybe-uninitialized in the ASan build.)
bool is_uuid_v4(const std::string& s) {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return s[14] == '4' && (s[19] == '8' || s[19] == '9' || s[19] == 'a' || s[19] == 'b');
}

std::vector<std::string> ids(const std::vector<service_instance>& v) {
  std::vector<std::string> out;
  for (const auto& i : v) out.push_back(i.id);
  return out;
}

// =============================================================================================
// 1. Strategies
// =============================================================================================

std::vector<service_instance> candidates(std::initializer_list<const char*> names) {
  std::vector<service_instance> v;
  for (const char* n : names) v.push_back(orders(n));
  return v;
}

TEST(strategy, round_robin_takes_each_candidate_in_turn) {
  round_robin_strategy s;
  const auto c = candidates({"a", "b", "c"});
  auto no_draw = [](std::uint64_t) -> std::uint64_t {
    ADD_FAILURE() << "round robin draws nothing";
    return 0;
  };
  std::vector<std::size_t> picks;
  for (int i = 0; i < 7; ++i) picks.push_back(s.pick(c, no_draw));
  EXPECT_EQ(picks, (std::vector<std::size_t>{0, 1, 2, 0, 1, 2, 0}));
}

TEST(strategy, random_draws_from_the_given_prng_and_covers_every_candidate) {
  const auto c = candidates({"a", "b", "c", "d"});
  auto run = [&](std::uint64_t seed) {
    zkr::prng rng(seed);
    random_strategy s;
    std::vector<std::size_t> picks;
    for (int i = 0; i < 400; ++i) picks.push_back(s.pick(c, [&](std::uint64_t b) { return rng.uniform(b); }));
    return picks;
  };
  EXPECT_EQ(run(5), run(5)) << "the same seed replays the same choices";
  EXPECT_NE(run(5), run(6));
  const auto picks = run(5);
  for (std::size_t k = 0; k < c.size(); ++k) {
    EXPECT_GT(std::count(picks.begin(), picks.end(), k), 50) << k;
  }
}

TEST(strategy, sticky_keeps_its_instance_while_it_is_a_candidate) {
  sticky_strategy<round_robin_strategy> s;
  auto draw = [](std::uint64_t) -> std::uint64_t { return 0; };
  auto c = candidates({"a", "b", "c"});
  EXPECT_EQ(s.pick(c, draw), 0u);
  EXPECT_EQ(s.pick(c, draw), 0u);
  c = candidates({"x", "a"});  // still there, at another index
  EXPECT_EQ(s.pick(c, draw), 1u);
  EXPECT_EQ(s.instance_number, 0);
  c = candidates({"x", "y"});  // gone: the master picks again
  EXPECT_EQ(s.pick(c, draw), 1u) << "round robin's second pick";
  EXPECT_EQ(*s.id, "y");
  EXPECT_EQ(s.instance_number, 1);
}

// =============================================================================================
// 2. Both backends
// =============================================================================================
namespace both {

using zkr::conformance::backend_names;
using zkr::conformance::backends;
using zkr::conformance::fixture;
using zkr::conformance::topology;
using zkr::test::recorder;
using zkr::test::tok;

template <class B, topology T = topology::shared_single>
class discovery_base : public fixture<B, T> {
 protected:
  using session = typename B::session;
  using discovery_type = service_discovery<session>;
  using cache_type = service_cache<session>;

  std::string base() const { return this->path("services"); }
  std::unique_ptr<discovery_type> make(session& s, zkr::recipes::service_discovery_options o = {}) {
    return std::make_unique<discovery_type>(s, base(), std::move(o));
  }
  std::tuple<std::error_code, std::string, zkr::stat> read(session& s, const std::string& name, const std::string& id) {
    return this->await(s.async_get(zkr::recipes::instance_path(base(), name, id), tok));
  }
  /// Expires `s`'s session and waits for its next generation; up to 5 tries, as the
  /// conformance suite (a forced expiry on the real server does not always take).
  bool expire_and_reconnect(session& s) {
    const auto old_id = s.session_id();
    for (int attempt = 0; attempt < 5; ++attempt) {
      if (!this->b_.expire(s)) return false;
      if (this->eventually([&] { return s.session_id() != old_id && is_connected(s.state()); }, 15s)) return true;
    }
    return false;
  }
  service_instances query(discovery_type& d, const std::string& name) {
    auto [ec, r] = this->await(d.async_query_for_instances(name, tok));
    EXPECT_FALSE(ec) << ec.message();
    return r;
  }
};

template <class B>
class discovery : public discovery_base<B> {};
TYPED_TEST_SUITE(discovery, backends, backend_names);

TYPED_TEST(discovery, registers_in_curators_layout_and_the_queries_read_it_back) {
  auto& t = *this;
  auto& s = t.first();
  auto d = t.make(s);
  auto [ec, registered] = t.await(d->async_register(orders("i-1"), tok));
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(registered, orders("i-1"));
  EXPECT_EQ(d->registration_state("orders", "i-1"), ephemeral_node_state::registered);
  // <base>/<name>/<id>, ephemeral, holding exactly Curator's bytes.
  auto [rec, data, st] = t.read(s, "orders", "i-1");
  ASSERT_FALSE(rec);
  EXPECT_EQ(st.ephemeral_owner, s.session_id());
  EXPECT_EQ(data, zkr::recipes::to_json(orders("i-1")).text);
  EXPECT_EQ(data.rfind(R"({"name":"orders","id":"i-1","address":"10.0.0.7","port":8080,"sslPort":null,)"
                       R"("payload":{"@class":"java.util.LinkedHashMap","zone":"eu-west-1a","weight":10},)"
                       R"("registrationTimeUTC":1577836800123,"serviceType":"DYNAMIC","uriSpec":{"parts":[)",
                       0),
            0u)
      << data;
  EXPECT_EQ(data.find("enabled"), std::string::npos) << "Curator's default serializer leaves it out";

  ASSERT_FALSE(std::get<0>(t.await(d->async_register(orders("i-2", 8081), tok))));
  auto [nec, names] = t.await(d->async_query_for_names(tok));
  ASSERT_FALSE(nec);
  EXPECT_EQ(names, std::vector<std::string>{"orders"});
  const auto all = t.query(*d, "orders");
  // As read back, the payload carries the class its type id named.
  auto expected_1 = orders("i-1");
  auto expected_2 = orders("i-2", 8081);
  expected_1.payload_class = expected_2.payload_class = "java.util.LinkedHashMap";
  EXPECT_EQ(all.instances, (std::vector<service_instance>{expected_1, expected_2}));
  EXPECT_TRUE(all.unreadable.empty());
  auto [oec, one] = t.await(d->async_query_for_instance("orders", "i-2", tok));
  ASSERT_FALSE(oec);
  EXPECT_EQ(one, expected_2);
  EXPECT_EQ(one.build_uri(), "http://10.0.0.7:8081/api");
  EXPECT_EQ(std::get<0>(t.await(d->async_query_for_instance("orders", "nope", tok))), errc::no_node);
  EXPECT_TRUE(t.query(*d, "payments").instances.empty()) << "a missing service is empty, not an error";
  EXPECT_FALSE(std::get<0>(t.await(d->async_close(tok))));
  EXPECT_EQ(std::get<0>(t.read(s, "orders", "i-1")), errc::no_node);
  EXPECT_EQ(std::get<0>(t.read(s, "orders", "i-2")), errc::no_node);
}

TYPED_TEST(discovery, an_empty_id_becomes_a_uuid_and_the_time_comes_from_the_sessions_wall_clock) {
  auto& t = *this;
  auto& s = t.first();
  auto d = t.make(s);
  auto inst = orders("");
  inst.registration_time_utc = 0;
  const auto before = std::chrono::duration_cast<std::chrono::milliseconds>(s.wall_now().time_since_epoch()).count();
  auto [ec, r] = t.await(d->async_register(inst, tok));
  ASSERT_FALSE(ec) << ec.message();
  const auto after = std::chrono::duration_cast<std::chrono::milliseconds>(s.wall_now().time_since_epoch()).count();
  EXPECT_TRUE(is_uuid_v4(r.id)) << r.id;
  EXPECT_GE(r.registration_time_utc, before);
  EXPECT_LE(r.registration_time_utc, after);
  auto [qec, q] = t.await(d->async_query_for_instance("orders", r.id, tok));
  ASSERT_FALSE(qec);
  EXPECT_EQ(q.registration_time_utc, r.registration_time_utc);
}

TYPED_TEST(discovery, update_unregister_and_registering_again) {
  auto& t = *this;
  auto& s = t.first();
  auto d = t.make(s);
  ASSERT_FALSE(std::get<0>(t.await(d->async_register(orders("i-1"), tok))));
  auto changed = orders("i-1");
  changed.port = 9999;
  changed.enabled = false;
  EXPECT_FALSE(std::get<0>(t.await(d->async_update(changed, tok))));
  auto [qec, q] = t.await(d->async_query_for_instance("orders", "i-1", tok));
  ASSERT_FALSE(qec);
  EXPECT_EQ(q.port, 9999);
  EXPECT_TRUE(q.enabled) << "enabled is not written by default: a reader assumes true";
  EXPECT_EQ(std::get<0>(t.await(d->async_update(orders("unknown"), tok))), errc::no_node);
  // Registering the same id again is an update too.
  changed.port = 7777;
  EXPECT_FALSE(std::get<0>(t.await(d->async_register(changed, tok))));
  EXPECT_EQ(std::get<1>(t.await(d->async_query_for_instance("orders", "i-1", tok))).port, 7777);
  EXPECT_FALSE(std::get<0>(t.await(d->async_unregister("orders", "i-1", tok))));
  EXPECT_EQ(std::get<0>(t.read(s, "orders", "i-1")), errc::no_node);
  EXPECT_EQ(d->registration_state("orders", "i-1"), std::nullopt);
  EXPECT_FALSE(std::get<0>(t.await(d->async_unregister("orders", "i-1", tok)))) << "again: nothing to do";
  // With write_enabled, enabled=false reaches readers.
  auto d2 = t.make(s, {.serializer = {.write_enabled = true}});
  EXPECT_FALSE(std::get<0>(t.await(d2->async_register(changed, tok))));
  EXPECT_FALSE(std::get<1>(t.await(d2->async_query_for_instance("orders", "i-1", tok))).enabled);
  EXPECT_FALSE(std::get<0>(t.await(d2->async_close(tok))));
  EXPECT_FALSE(std::get<0>(t.await(d->async_close(tok))));
  EXPECT_EQ(std::get<0>(t.await(d->async_register(orders("late"), tok))), errc::closing);
  EXPECT_EQ(std::get<0>(t.await(d->async_close(tok))), errc::invalid_state);
}

TYPED_TEST(discovery, invalid_registrations_are_refused_before_any_request) {
  auto& t = *this;
  auto d = t.make(t.first());
  auto bad_name = orders("x");
  bad_name.name = "a/b";
  EXPECT_EQ(std::get<0>(t.await(d->async_register(bad_name, tok))), errc::invalid_path);
  auto dot = orders("..");
  EXPECT_EQ(std::get<0>(t.await(d->async_register(dot, tok))), errc::invalid_path);
  auto stat = orders("s");
  stat.type = service_type::static_;
  EXPECT_EQ(std::get<0>(t.await(d->async_register(stat, tok))), errc::invalid_argument) << "only DYNAMIC";
  auto nan = orders("n");
  nan.payload = std::nan("");
  EXPECT_EQ(std::get<0>(t.await(d->async_register(nan, tok))), errc::invalid_argument);
  EXPECT_EQ(std::get<0>(t.await(d->async_query_for_instances("a/b", tok))), errc::invalid_path);
  EXPECT_EQ(std::get<0>(t.await(d->async_query_for_instance("orders", "", tok))), errc::invalid_path);
  EXPECT_TRUE(d->registered().empty());
  using discovery_type = typename TestFixture::discovery_type;
  EXPECT_THROW(discovery_type(t.first(), "no-slash"), std::system_error);
}

TYPED_TEST(discovery, unreadable_nodes_are_listed_not_fatal) {
  auto& t = *this;
  auto& s = t.first();
  auto d = t.make(s);
  ASSERT_FALSE(std::get<0>(t.await(d->async_register(orders("good"), tok))));
  const auto dir = zkr::recipes::service_path(t.base(), "orders");
  ASSERT_FALSE(std::get<0>(t.await(s.async_create(dir + "/garbage", "{not json", {}, tok))));
  ASSERT_FALSE(std::get<0>(t.await(s.async_create(dir + "/wrong", R"({"port":"80"})", {}, tok))));
  const auto r = t.query(*d, "orders");
  EXPECT_EQ(ids(r.instances), std::vector<std::string>{"good"});
  ASSERT_EQ(r.unreadable.size(), 2u);
  EXPECT_EQ(r.unreadable[0].id, "garbage");
  EXPECT_EQ(r.unreadable[0].error, "invalid JSON: expected a string key in object at byte 1");
  EXPECT_EQ(r.unreadable[1].error, "port: expected an integer or null, got string");
  EXPECT_EQ(std::get<0>(t.await(d->async_query_for_instance("orders", "garbage", tok))), errc::marshalling_error);
}

TYPED_TEST(discovery, a_registration_comes_back_after_expiry_and_deletion) {
  auto& t = *this;
  auto& s = t.first();
  auto& other = t.open();
  auto d = t.make(s);
  ASSERT_FALSE(std::get<0>(t.await(d->async_register(orders("i-1"), tok))));
  auto back = [&] {
    return t.eventually([&] {
      auto [ec, data, st] = t.read(other, "orders", "i-1");
      return !ec && st.ephemeral_owner == s.session_id() && s.session_id() != 0;
    });
  };
  ASSERT_TRUE(t.expire_and_reconnect(s));
  EXPECT_TRUE(back()) << "after expiry";
  ASSERT_FALSE(std::get<0>(t.await(other.async_remove(zkr::recipes::instance_path(t.base(), "orders", "i-1"), -1, tok))));
  EXPECT_TRUE(back()) << "after deletion";
  EXPECT_FALSE(std::get<0>(t.await(d->async_close(tok))));
}

TYPED_TEST(discovery, an_id_held_by_another_session_is_reported_and_taken_once_free) {
  auto& t = *this;
  auto& s = t.first();
  auto& other = t.open();
  const auto dir = zkr::recipes::service_path(t.base(), "orders");
  ASSERT_FALSE(std::get<0>(t.await(other.async_create(t.base(), "", {}, tok))));
  ASSERT_FALSE(std::get<0>(t.await(other.async_create(dir, "", {}, tok))));
  ASSERT_FALSE(std::get<0>(t.await(other.async_create(dir + "/i-1", "theirs", {.mode = zkr::create_mode::ephemeral}, tok))));
  auto d = t.make(s);
  EXPECT_EQ(std::get<0>(t.await(d->async_register(orders("i-1"), tok))), errc::node_exists);
  EXPECT_EQ(d->registration_state("orders", "i-1"), ephemeral_node_state::pending) << "kept, and waiting";
  auto again = orders("i-1", 9000);
  EXPECT_EQ(std::get<0>(t.await(d->async_register(again, tok))), errc::node_exists) << "reported again, no hang";
  EXPECT_EQ(std::get<1>(t.read(s, "orders", "i-1")), "theirs") << "never overwritten";
  ASSERT_FALSE(std::get<0>(t.await(other.async_close(tok))));
  EXPECT_TRUE(t.eventually([&] {
    auto [ec, data, st] = t.read(s, "orders", "i-1");
    return !ec && data == zkr::recipes::to_json(again).text && st.ephemeral_owner == s.session_id();
  })) << "taken over with the latest data once the other session's node is gone";
  EXPECT_EQ(d->registration_state("orders", "i-1"), ephemeral_node_state::registered);
  EXPECT_FALSE(std::get<0>(t.await(d->async_close(tok))));
}

TYPED_TEST(discovery, every_completion_token_works) {
  auto& t = *this;
  auto& s = t.first();
  auto d = t.make(s);
  // 1. A callback.
  std::promise<std::error_code> p;
  d->async_register(orders("cb"), [&](std::error_code ec, service_instance) { p.set_value(ec); });
  EXPECT_FALSE(t.await(p.get_future()));
  // 2. A future.
  auto [fec, names] = t.await(d->async_query_for_names(asio::use_future));
  EXPECT_FALSE(fec);
  EXPECT_EQ(names, std::vector<std::string>{"orders"});
  // 3. A coroutine on the session's executor.
  using ex_t = typename TestFixture::session::executor_type;
  auto coro = [](service_discovery<typename TestFixture::session>& disc) -> asio::awaitable<std::size_t, ex_t> {
    auto [ec1, reg] = co_await disc.async_register(orders("co"), asio::use_awaitable_t<ex_t>{});
    auto [ec2, all] = co_await disc.async_query_for_instances("orders", asio::use_awaitable_t<ex_t>{});
    co_return ec1 || ec2 ? 0 : all.instances.size();
  };
  auto [eptr, n] = t.await(asio::co_spawn(s.get_executor(), coro(*d), tok));
  EXPECT_FALSE(eptr);
  EXPECT_EQ(n, 2u);
  // 4. Deferred: nothing happens until it is started.
  auto op = d->async_unregister("orders", "co", asio::deferred);
  t.advance(50ms);
  EXPECT_EQ(d->registration_state("orders", "co"), ephemeral_node_state::registered);
  EXPECT_FALSE(std::get<0>(t.await(std::move(op)(tok))));
  EXPECT_EQ(ids(t.query(*d, "orders").instances), std::vector<std::string>{"cb"});
}

// ---- the cache ----

template <class B>
class cache : public discovery_base<B> {};
TYPED_TEST_SUITE(cache, backends, backend_names);

TYPED_TEST(cache, follows_registrations_updates_removals_and_unreadable_nodes) {
  auto& t = *this;
  auto& s = t.first();
  auto& reader = t.open();
  auto d = t.make(s);
  ASSERT_FALSE(std::get<0>(t.await(d->async_register(orders("a"), tok))));
  typename TestFixture::cache_type c(reader, t.base(), "orders");
  recorder<service_cache_event> heard;
  c.add_listener([&](const service_cache_event& e) { heard.push(e); });
  EXPECT_TRUE(c.stale()) << "stale until the initial load";
  ASSERT_FALSE(std::get<0>(t.await(c.async_start(tok))));
  EXPECT_FALSE(c.stale());
  EXPECT_EQ(c.state(), session_state::connected);
  EXPECT_EQ(ids(c.instances()), std::vector<std::string>{"a"});
  ASSERT_FALSE(std::get<0>(t.await(d->async_register(orders("b"), tok))));
  EXPECT_TRUE(t.eventually([&] { return ids(c.instances()) == std::vector<std::string>{"a", "b"}; }));
  auto moved = orders("a", 1234);
  ASSERT_FALSE(std::get<0>(t.await(d->async_update(moved, tok))));
  EXPECT_TRUE(t.eventually([&] { return c.instances().front().port == 1234; }));
  ASSERT_FALSE(std::get<0>(t.await(s.async_create(zkr::recipes::service_path(t.base(), "orders") + "/junk", "[", {}, tok))));
  EXPECT_TRUE(t.eventually([&] { return c.unreadable().size() == 1; }));
  EXPECT_EQ(ids(c.instances()), (std::vector<std::string>{"a", "b"})) << "an unreadable node is no instance";
  ASSERT_FALSE(std::get<0>(t.await(d->async_unregister("orders", "b", tok))));
  EXPECT_TRUE(t.eventually([&] { return ids(c.instances()) == std::vector<std::string>{"a"}; }));
  t.drain();
  std::vector<std::pair<children_cache_event_type, std::string>> got;
  for (const auto& e : heard.items()) got.emplace_back(e.type, e.id);
  using ty = children_cache_event_type;
  EXPECT_EQ(got, (std::vector<std::pair<ty, std::string>>{{ty::added, "a"},
                                                          {ty::initialized, ""},
                                                          {ty::added, "b"},
                                                          {ty::updated, "a"},
                                                          {ty::added, "junk"},
                                                          {ty::removed, "b"}}));
  const auto items = heard.items();
  EXPECT_FALSE(items[4].instance.has_value()) << "junk did not parse";
  EXPECT_EQ(items[3].instance->port, 1234);
  EXPECT_FALSE(c.close());
  EXPECT_EQ(c.close(), errc::closing);
}

TYPED_TEST(cache, providers_select_enabled_instances_by_their_strategy) {
  auto& t = *this;
  auto& s = t.first();
  auto d = t.make(s, {.serializer = {.write_enabled = true}});
  for (const char* id : {"a", "b", "c", "off"}) {
    auto i = orders(id);
    i.enabled = std::string(id) != "off";
    ASSERT_FALSE(std::get<0>(t.await(d->async_register(i, tok))));
  }
  typename TestFixture::cache_type c(s, t.base(), "orders");
  ASSERT_FALSE(std::get<0>(t.await(c.async_start(tok))));
  service_provider<typename TestFixture::session> rr(c);
  std::vector<std::string> picks;
  for (int i = 0; i < 6; ++i) {
    const auto sel = rr.get_instance();
    ASSERT_TRUE(sel.instance);
    EXPECT_FALSE(sel.stale);
    picks.push_back(sel.instance->id);
  }
  EXPECT_EQ(picks, (std::vector<std::string>{"a", "b", "c", "a", "b", "c"})) << "never the disabled one";
  EXPECT_EQ(ids(rr.get_all_instances()), (std::vector<std::string>{"a", "b", "c"}));
  service_provider<typename TestFixture::session, random_strategy> rnd(c);
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) seen.insert(rnd.get_instance().instance->id);
  EXPECT_EQ(seen, (std::set<std::string>{"a", "b", "c"}));
  service_provider<typename TestFixture::session, sticky_strategy<random_strategy>> sticky(c);
  const auto first = sticky.get_instance().instance->id;
  for (int i = 0; i < 20; ++i) EXPECT_EQ(sticky.get_instance().instance->id, first);
  ASSERT_FALSE(std::get<0>(t.await(d->async_unregister("orders", first, tok))));
  EXPECT_TRUE(t.eventually([&] { return c.instances().size() == 3; }));
  const auto next = sticky.get_instance().instance->id;
  EXPECT_NE(next, first);
  EXPECT_EQ(sticky.strategy().instance_number, 1);
  EXPECT_FALSE(std::get<0>(t.await(d->async_close(tok))));
  EXPECT_TRUE(t.eventually([&] { return c.instances().empty(); }));
  EXPECT_FALSE(rr.get_instance().instance) << "nothing registered: no answer";
}

TYPED_TEST(cache, a_cancelled_start_leaves_the_cache_latent) {
  auto& t = *this;
  auto& s = t.first();
  typename TestFixture::cache_type c(s, t.base(), "orders");
  for (const auto type : {asio::cancellation_type::terminal, asio::cancellation_type::partial,
                          asio::cancellation_type::total}) {
    SCOPED_TRACE(static_cast<int>(type));
    asio::cancellation_signal sig;
    auto f = c.async_start(asio::bind_cancellation_slot(sig.slot(), tok));
    // Emitted on the session's executor after the start registered there (FIFO), before the
    // initial list read can have come back.
    asio::post(s.get_executor(), [&sig, type] { sig.emit(type); });
    const auto [ec] = t.await(std::move(f));
    EXPECT_EQ(ec, std::errc::operation_canceled) << ec.message();
    EXPECT_FALSE(c.initialized());
  }
  EXPECT_FALSE(std::get<0>(t.await(c.async_start(tok)))) << "latent again: may start again";
  EXPECT_TRUE(c.initialized());
}

// A server outage (on a server of the test's own): the cache keeps its instances and the
// provider keeps answering from them, marked stale, with the session state.
template <class B>
class outage : public discovery_base<B, topology::own_single> {};
TYPED_TEST_SUITE(outage, backends, backend_names);

TYPED_TEST(outage, selection_keeps_answering_stale_while_the_server_is_down) {
  auto& t = *this;
  auto& s = t.first();
  auto d = t.make(s);
  ASSERT_FALSE(std::get<0>(t.await(d->async_register(orders("a"), tok))));
  ASSERT_FALSE(std::get<0>(t.await(d->async_register(orders("b"), tok))));
  auto& reader = t.open({.session_timeout = 10000ms});
  typename TestFixture::cache_type c(reader, t.base(), "orders");
  ASSERT_FALSE(std::get<0>(t.await(c.async_start(tok))));
  service_provider<typename TestFixture::session> p(c);
  ASSERT_FALSE(p.get_instance().stale);
  t.b_.kill_server(0);
  ASSERT_TRUE(t.eventually([&] { return c.stale(); }, 30s));
  for (int i = 0; i < 4; ++i) {
    const auto sel = p.get_instance();
    ASSERT_TRUE(sel.instance) << "the last known instances keep serving";
    EXPECT_TRUE(sel.stale);
    EXPECT_TRUE(sel.state == session_state::suspended || sel.state == session_state::lost) << sel.state;
    t.advance(100ms);
  }
  EXPECT_EQ(ids(p.get_all_instances()), (std::vector<std::string>{"a", "b"}));
  t.b_.restart_server(0);
  ASSERT_TRUE(t.eventually([&] { return !c.stale(); }, 60s));
  EXPECT_TRUE(t.eventually([&] { return c.instances().size() == 2; }, 30s));
  EXPECT_FALSE(p.get_instance().stale);
}

}  // namespace both

// =============================================================================================
// 4. Fault sweeps in the simulator
// =============================================================================================
namespace sweep {

using namespace zkr::test::sim;
using zkr::sim::clock_duration;
using zkr::sim::clock_time;
using zkr::sim::cluster;
using zkr::sim::endpoint;
using zkr::sim::process_id;

constexpr auto session_timeout = 4000ms;
const std::string base = "/services";

double secs(clock_time t) { return std::chrono::duration<double>(t.time_since_epoch()).count(); }
std::int64_t ms(clock_duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); }

/// The instances of "orders" on the leader's tree, parsed (what a fresh reader would see).
std::vector<service_instance> on_leader(cluster& c) {
  std::vector<service_instance> out;
  const auto lead = c.leader();
  if (!lead) return out;
  const auto& tree = c.tree(*lead);
  const auto* dir = tree.find(base + "/orders");
  if (dir == nullptr) return out;
  for (const auto& child : dir->children) {
    const auto* n = tree.find(base + "/orders/" + child);
    if (n == nullptr) continue;
    auto r = zkr::recipes::from_json(n->data);
    if (r.ok()) out.push_back(std::move(r.instance));
  }
  return out;
}

zkr::sim::session_options opts(cluster& c, std::string name) {
  return {.connect_string = c.connect_string(), .session_timeout = session_timeout, .name = std::move(name)};
}

struct registrar {
  std::unique_ptr<zkr::sim::session> session;
  std::unique_ptr<service_discovery<zkr::sim::session>> discovery;
  std::string name;
};

TEST(sweep, the_cache_equals_the_registry_once_quiet_under_faults_and_churn) {
  // Four registrars register, update and unregister instances at random while the cluster
  // suffers random faults (kills, partitions, elections, pauses, expiries) for 40 s; two
  // caches (one per reader session) follow. Once the faults stop and the cluster is quiet,
  // each cache's instances must equal the registry on the leader, instance for instance.
  int checked = 0;
  for (int i = 0; i < sweep_count(); ++i) {
    const std::uint64_t seed = first_seed() + static_cast<std::uint64_t>(i);
    ZKR_SEED_TRACE(seed);
    cluster c({.seed = seed, .servers = 3, .tick_time = 200ms});
    std::vector<registrar> regs;
    std::vector<process_id> procs;
    for (int k = 0; k < 4; ++k) {
      registrar r;
      r.name = "r" + std::to_string(k);
      r.session = std::make_unique<zkr::sim::session>(c, opts(c, r.name));
      r.discovery = std::make_unique<service_discovery<zkr::sim::session>>(*r.session, base);
      procs.push_back(r.session->process());
      regs.push_back(std::move(r));
    }
    std::vector<std::unique_ptr<zkr::sim::session>> readers;
    std::vector<std::unique_ptr<service_cache<zkr::sim::session>>> caches;
    for (int k = 0; k < 2; ++k) {
      readers.push_back(std::make_unique<zkr::sim::session>(c, opts(c, "reader" + std::to_string(k))));
      procs.push_back(readers.back()->process());
      caches.push_back(std::make_unique<service_cache<zkr::sim::session>>(*readers.back(), base, "orders"));
      caches.back()->async_start([](std::error_code ec) { EXPECT_FALSE(ec) << ec.message(); });
    }
    cluster::fault_plan plan;
    plan.start = 1s;
    plan.span = 35s;
    plan.count = 10;
    plan.max_length = 6s;
    const auto faults = c.schedule_random_faults(plan, procs);
    // Churn: every 300 ms one registrar registers, updates or unregisters one of three ids.
    std::vector<std::string> churn;
    auto timer = std::make_unique<zkr::sim::timer>(c.get_scheduler().get_executor());
    std::function<void()> tick = [&] {
      if (c.now() > clock_time{} + 40s) return;
      auto& r = regs[static_cast<std::size_t>(c.random().uniform(regs.size()))];
      const auto id = r.name + "-" + std::to_string(c.random().uniform(3));
      const auto what = c.random().uniform(3);
      auto inst = orders(id, static_cast<std::int32_t>(8000 + c.random().uniform(1000)));
      if (what == 0) {
        r.discovery->async_unregister("orders", id, [](std::error_code) {});
      } else {
        r.discovery->async_register(inst, [](std::error_code, service_instance) {});
      }
      churn.push_back(std::to_string(secs(c.now())) + (what == 0 ? " unregister " : " register ") + id + " port " +
                      std::to_string(*inst.port));
      timer->expires_after(300ms);
      timer->async_wait([&](std::error_code ec) {
        if (!ec) tick();
      });
    };
    tick();
    // Every fault is undone by 35 s + 6 s; the churn stops at 40 s; then quiet.
    c.run_until(clock_time{} + 44s);
    for (std::size_t k = 0; k < c.size(); ++k) {
      if (!c.alive(k)) c.restart_server(k);
    }
    c.heal();
    c.run_until(clock_time{} + 70s);
    const auto truth = on_leader(c);
    for (std::size_t k = 0; k < caches.size(); ++k) {
      EXPECT_FALSE(caches[k]->stale()) << "cache " << k;
      EXPECT_EQ(caches[k]->instances(), truth) << "cache " << k << " differs from the registry";
      EXPECT_TRUE(caches[k]->unreadable().empty());
    }
    // And the registry holds exactly what the registrars keep registered.
    std::vector<service_instance> kept;
    for (auto& r : regs) {
      for (auto& inst : r.discovery->registered()) {
        EXPECT_EQ(r.discovery->registration_state("orders", inst.id), ephemeral_node_state::registered) << inst.id;
        kept.push_back(inst);
      }
    }
    std::sort(kept.begin(), kept.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
    for (auto& k : kept) k.payload_class = "java.util.LinkedHashMap";  // as read back
    EXPECT_EQ(truth, kept) << "the registry differs from what the registrars keep";
    ++checked;
    timer.reset();
    caches.clear();
    for (auto& r : regs) {
      wait(c, r.discovery->async_close(fut));
      r.discovery.reset();
      wait(c, r.session->async_close(fut));
    }
    for (auto& r : readers) wait(c, r->async_close(fut));
    if (::testing::Test::HasFailure()) {
      std::cout << "---- faults\n";
      for (const auto& f : faults) std::cout << "  " << f << "\n";
      std::cout << "---- churn\n";
      for (const auto& f : churn) std::cout << "  " << f << "\n";
      break;
    }
  }
  EXPECT_EQ(checked, sweep_count());
}

TEST(sweep, selection_keeps_answering_through_long_elections_and_partitions) {
  // Three registered instances, one reader with a cache and a provider that is asked every
  // 50 ms. Faults: a long election (1-15 s: the ensemble refuses every client) and a
  // partition of the reader alone (1-15 s: suspended, and lost after its timeout). Every ask
  // must return an instance, from the last known ones; while the reader is disconnected the
  // answer is stale, and after each fault the cache is fresh again (and equals the registry)
  // within a bound: the reconnect (after a long partition, a new session) and a re-read.
  int stale_answers = 0, answers = 0;
  clock_duration worst_fresh{};
  for (int i = 0; i < sweep_count(); ++i) {
    const std::uint64_t seed = first_seed() + static_cast<std::uint64_t>(i);
    ZKR_SEED_TRACE(seed);
    cluster c({.seed = seed, .servers = 3, .tick_time = 200ms});
    zkr::sim::session owner(c, opts(c, "owner"));
    service_discovery<zkr::sim::session> d(owner, base);
    for (const char* id : {"a", "b", "c"}) d.async_register(orders(id), [](std::error_code, service_instance) {});
    zkr::sim::session reader(c, opts(c, "reader"));
    service_cache<zkr::sim::session> cache(reader, base, "orders");
    auto started = cache.async_start(fut);
    ASSERT_TRUE(c.run_until([&] { return cache.instances().size() == 3; }, 30s));
    EXPECT_FALSE(std::get<0>(wait(c, std::move(started))));
    service_provider<zkr::sim::session, random_strategy> provider(cache);

    std::vector<std::string> faults;
    const auto election_at = c.random().uniform_duration(2s, 5s);
    const auto election_len = c.random().uniform_duration(1s, 15s);
    const auto partition_at = election_at + election_len + c.random().uniform_duration(8s, 12s);
    const auto partition_len = c.random().uniform_duration(1s, 15s);
    faults.push_back(std::to_string(ms(election_at)) + " ms election for " + std::to_string(ms(election_len)) + " ms");
    faults.push_back(std::to_string(ms(partition_at)) + " ms isolate the reader for " + std::to_string(ms(partition_len)) + " ms");
    c.at(election_at, "election", [election_len](cluster& cl) { cl.start_election(election_len); });
    c.at(partition_at, "isolate", [p = reader.process()](cluster& cl) { cl.isolate(endpoint::client(p)); });
    c.at(partition_at + partition_len, "heal", [](cluster& cl) { cl.heal(); });

    // Bound on being fresh again after a fault: a connect attempt to a server that was
    // unreachable (T/3), a backoff (250 ms) and, after a presumed loss, a new session; plus
    // the re-read. 2 s of slack over T/3 + 250 ms.
    const clock_duration fresh_bound = session_timeout / 3 + 2s;
    const std::vector<std::pair<clock_duration, clock_duration>> windows = {
        {election_at, election_at + election_len}, {partition_at, partition_at + partition_len}};
    const auto end = clock_time{} + partition_at + partition_len + 15s;
    while (c.now() < end) {
      c.run_for(50ms);
      const auto sel = provider.get_instance();
      ++answers;
      ASSERT_TRUE(sel.instance) << "no answer at " << secs(c.now()) << " s (stale=" << sel.stale << ")";
      EXPECT_EQ(sel.stale, !zkr::is_connected(sel.state));
      if (sel.stale) ++stale_answers;
      // After the latest fault ended, not stale for longer than the bound.
      const std::pair<clock_duration, clock_duration>* latest = nullptr;
      for (const auto& w : windows) {
        if (clock_time{} + w.first <= c.now()) latest = &w;
      }
      if (latest != nullptr && c.now() > clock_time{} + latest->second) {
        const auto since_end = c.now() - (clock_time{} + latest->second);
        if (sel.stale && since_end > fresh_bound) {
          ADD_FAILURE() << "still stale " << ms(since_end) << " ms after a fault ended at " << ms(latest->second) << " ms";
        }
        if (sel.stale) worst_fresh = std::max(worst_fresh, since_end);
      }
    }
    EXPECT_FALSE(cache.stale());
    EXPECT_EQ(cache.instances(), on_leader(c));
    EXPECT_EQ(cache.instances().size(), 3u);
    if (::testing::Test::HasFailure()) {
      for (const auto& f : faults) std::cout << "  " << f << "\n";
      break;
    }
    (void)cache.close();
    wait(c, d.async_close(fut));
    wait(c, owner.async_close(fut));
    wait(c, reader.async_close(fut));
  }
  std::cout << "[ measured ] " << answers << " answers, " << stale_answers
            << " of them stale (from the last known instances); stale at most " << ms(worst_fresh)
            << " ms after a fault ended" << std::endl;
  EXPECT_GT(stale_answers, 0) << "the faults never made the reader stale: the sweep tested nothing";
}

}  // namespace sweep

}  // namespace
