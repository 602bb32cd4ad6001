// Goal: node_cache and children_cache converge to the server's state, never go backwards,
// report re-creations (czxid), start once (awaitably, cancellably: a cancelled start is
// undone), close cleanly, forward session transitions, and share their watches.
// Method: typed cases on both backends (tests/conformance/fixture.hpp: a real ZooKeeper
// server and the simulator); a cache's view is compared with what a plain read of the server
// returns, its listener's events are replayed into a view of their own that must equal
// current() at every event. A seeded fault sweep on the simulator (writers churning children
// and data, partitions, expiry, elections, GC pauses, server crashes; one cache started in the
// middle of it) checks every event sequence per child and, once quiet, that every cache equals
// the leader's tree. A failure prints the seed and the replay command; ZKR_TIMELINE=FILE
// with ZKR_SEED=N writes that run's simulator timeline.
#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <chrono>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <zkr/recipes/children_cache.hpp>
#include <zkr/recipes/node_cache.hpp>
#include <zkr/recipes/watch_hub.hpp>

#include "conformance/fixture.hpp"
#include "recipes/scripted_session.hpp"
#include "recipes/sim_harness.hpp"
#include "recipes/watch_support.hpp"

namespace zkr::recipes::test {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using ev = children_cache_event_type;
using zkr::conformance::tok;
using zkr::test::watch::check_sequence;
using zkr::test::watch::reads;
using zkr::test::watch::history;

using view_type = std::map<std::string, child_data, std::less<>>;

/// Replays a cache's events into a view and checks them as they come: `added` only for a
/// child not in the view, `updated`/`removed` only for one in it, per child mzxid going up and
/// a child added again after a removal being a later incarnation; and the cache's current()
/// already shows each change. At the end the replayed view must equal current() (the caller
/// checks). Thread-safe (the real backend calls it on its strand).
class event_checker {
 public:
  template <class Cache>
  auto listener(const Cache& cache) {
    return [this, &cache](const children_cache_event& e) { on(e, cache.current()); };
  }
  void on(const children_cache_event& e, const std::shared_ptr<const view_type>& now) {
    std::lock_guard lock(mu_);
    events_.push_back(e);
    const auto& name = e.child.name;
    switch (e.type) {
      case ev::added:
        if (view_.contains(name)) bad_ << "added " << name << " twice; ";
        if (const auto it = high_.find(name); it != high_.end() && e.child.stat.czxid != 0 && e.child.stat.czxid <= it->second) {
          bad_ << name << " came back with czxid " << e.child.stat.czxid << " <= " << it->second << "; ";
        }
        view_[name] = e.child;
        break;
      case ev::updated: {
        const auto it = view_.find(name);
        if (it == view_.end()) {
          bad_ << "updated " << name << " not in the view; ";
        } else if (e.child.stat.mzxid <= it->second.stat.mzxid) {
          bad_ << "updated " << name << " backwards: " << e.child.stat.mzxid << " <= " << it->second.stat.mzxid << "; ";
        } else if (e.child.stat.czxid != it->second.stat.czxid) {
          ++recreations_;
        }
        view_[name] = e.child;
        break;
      }
      case ev::removed: {
        const auto it = view_.find(name);
        if (it == view_.end()) {
          bad_ << "removed " << name << " not in the view; ";
        } else {
          high_[name] = std::max(high_[name], it->second.stat.mzxid);
          view_.erase(it);
        }
        break;
      }
      case ev::initialized: ++initialized_; break;
      case ev::suspended: ++suspended_; break;
      case ev::reconnected: ++reconnected_; break;
      case ev::lost: ++lost_; break;
    }
    // current() already shows this change (and maybe others of the same read after it).
    if (e.type == ev::added || e.type == ev::updated) {
      const auto it = now->find(name);
      if (it == now->end() || it->second != e.child) bad_ << "current() does not show " << to_string(e.type) << " " << name << "; ";
    } else if (e.type == ev::removed && now->contains(name)) {
      bad_ << "current() still shows removed " << name << "; ";
    }
  }
  std::string problems() const {
    std::lock_guard lock(mu_);
    return bad_.str();
  }
  view_type view() const {
    std::lock_guard lock(mu_);
    return view_;
  }
  std::vector<children_cache_event> events() const {
    std::lock_guard lock(mu_);
    return events_;
  }
  std::size_t count(ev type) const {
    std::lock_guard lock(mu_);
    return static_cast<std::size_t>(std::count_if(events_.begin(), events_.end(), [&](const auto& e) { return e.type == type; }));
  }
  int recreations() const {
    std::lock_guard lock(mu_);
    return recreations_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<children_cache_event> events_;
  view_type view_;
  std::map<std::string, std::int64_t> high_;
  std::ostringstream bad_;
  int recreations_ = 0, initialized_ = 0, suspended_ = 0, reconnected_ = 0, lost_ = 0;
};

// ---- interleavings a server makes rare, scripted (tests/recipes/scripted_session.hpp) ----------

using zkr::test::scripted_session;
using sk = scripted_session::kind;

zkr::stat at(std::int64_t czxid, std::int64_t mzxid, std::int64_t pzxid = 0) {
  zkr::stat st;
  st.czxid = czxid;
  st.mzxid = mzxid;
  st.pzxid = pzxid == 0 ? czxid : pzxid;
  return st;
}

// A child deleted and re-created between two reads: its own read (first) finds it gone, the
// list read (after) names it again. Only a second read of the child brings it back.
TEST(children_cache_scripted, a_child_found_gone_but_named_by_a_newer_list_is_read_again) {
  boost::asio::io_context io;
  scripted_session ss(io);
  watch_hub<scripted_session> hub(ss);
  children_cache<scripted_session> cache(hub, "/svc");
  event_checker check;
  cache.add_listener(check.listener(cache));
  std::optional<std::error_code> started;
  cache.async_start([&](std::error_code ec) { started = ec; });
  ss.poll();
  ss.answer_children(ss.find(sk::children, "/svc"), {}, {"c"}, at(1, 1, 5));
  ss.poll();
  ss.answer_get(ss.find(sk::get, "/svc/c"), {}, "C1", at(5, 5));
  ss.poll();
  ASSERT_TRUE(started.has_value());
  EXPECT_FALSE(*started);
  // Deleted (both watches fire), then re-created before the list read but after the child's.
  ss.fire_data("/svc/c", event_type::deleted);
  ss.fire_children("/svc");
  ss.poll();
  ss.answer_get(ss.find(sk::get, "/svc/c"), make_error_code(errc::no_node));
  ss.poll();
  EXPECT_FALSE(cache.get("c").has_value());
  EXPECT_EQ(ss.data_watches("/svc/c"), 0u) << "no watch left on a child that is gone";
  ss.answer_children(ss.find(sk::children, "/svc"), {}, {"c"}, at(1, 1, 9));
  ss.poll();
  ASSERT_EQ(ss.ops.size(), 1u) << "the child named again by a newer list was not read again";
  ss.answer_get(ss.find(sk::get, "/svc/c"), {}, "C2", at(8, 8));
  ss.poll();
  ASSERT_TRUE(cache.get("c").has_value());
  EXPECT_EQ(cache.get("c")->data, "C2");
  EXPECT_EQ(check.problems(), "");
  const auto es = check.events();
  ASSERT_EQ(es.size(), 4u);
  EXPECT_EQ(es[0].type, ev::added);
  EXPECT_EQ(es[1].type, ev::initialized);
  EXPECT_EQ(es[2].type, ev::removed);
  EXPECT_EQ(es[3].type, ev::added);
  EXPECT_EQ(es[3].child.stat.czxid, 8);
}

TEST(children_cache_scripted, no_auth_on_the_list_fails_the_start_and_closes_the_cache) {
  boost::asio::io_context io;
  scripted_session ss(io);
  children_cache<scripted_session> cache(ss, "/secret");
  std::optional<std::error_code> started;
  cache.async_start([&](std::error_code ec) { started = ec; });
  ss.poll();
  ss.answer_children(0, make_error_code(errc::no_auth));
  ss.poll();
  ASSERT_TRUE(started.has_value());
  EXPECT_EQ(*started, make_error_code(errc::no_auth));
  EXPECT_EQ(cache.error(), make_error_code(errc::no_auth));
  EXPECT_EQ(cache.close(), make_error_code(errc::closing)) << "it closed itself";
}

template <class B>
class caches : public zkr::conformance::fixture<B> {
 protected:
  using S = typename B::session;

  void settle(S& s) {
    std::promise<void> done;
    auto f = done.get_future();
    asio::post(s.get_executor(), [&done] { done.set_value(); });
    this->await(std::move(f));
  }

  /// What plain reads of the server show under `p`: children with data and stat.
  view_type server_view(S& s, const std::string& p, bool with_data = true) {
    view_type out;
    auto [ec, kids, st] = this->await(s.async_get_children(p, tok));
    if (ec) return out;
    for (const auto& k : kids) {
      if (!with_data) {
        out[k] = child_data{k, {}, {}};
        continue;
      }
      auto [e2, data, cst] = this->await(s.async_get(p + "/" + k, tok));
      if (!e2) out[k] = child_data{k, cst, data};
    }
    return out;
  }
};
TYPED_TEST_SUITE(caches, zkr::conformance::backends, zkr::conformance::backend_names);

// ---- node_cache ------------------------------------------------------------------------------

TYPED_TEST(caches, node_cache_start_loads_the_node_then_follows_it) {
  auto& t = *this;
  using S = typename TestFixture::S;
  auto& s = t.first();
  auto& w = t.open();
  const auto p = t.path("n");
  auto [e0, created, st0] = t.await(w.async_create(p, "a", {}, tok));
  ASSERT_FALSE(e0);
  watch_hub<S> hub(s);
  node_cache<S> nc(hub, p);
  auto h = std::make_shared<history<node_state>>();
  nc.add_listener([h](const node_state& st) { h->push(st); });
  EXPECT_FALSE(nc.current().has_value());
  ASSERT_FALSE(t.err(nc.async_start(tok)));
  EXPECT_TRUE(nc.initialized());
  ASSERT_TRUE(nc.current().has_value());
  EXPECT_EQ(nc.current()->data, "a");
  EXPECT_EQ(nc.current()->stat, st0);
  EXPECT_THROW((void)nc.async_start(tok), std::logic_error);

  ASSERT_FALSE(t.err(w.async_set(p, "b", -1, tok)));
  ASSERT_TRUE(t.eventually([&] { return nc.current()->data == "b"; }));
  ASSERT_FALSE(t.err(w.async_remove(p, -1, tok)));
  ASSERT_TRUE(t.eventually([&] { return !nc.current()->exists; }));
  ASSERT_FALSE(t.err(w.async_create(p, "b", {}, tok)));
  ASSERT_TRUE(t.eventually([&] { return nc.current()->exists; }));
  ASSERT_FALSE(std::get<0>(t.await(w.async_multi({op::make_remove(p), op::make_create(p, "b")}, tok))));
  auto [e1, data, now] = t.await(s.async_get(p, tok));
  ASSERT_FALSE(e1);
  ASSERT_TRUE(t.eventually([&] { return nc.current()->stat == now; })) << "converges to the server's node";
  const auto xs = h->items();
  EXPECT_EQ(check_sequence(xs), "");
  EXPECT_EQ(xs.front().change, node_change::initial) << "a listener added before start sees the initial state";
  EXPECT_EQ(xs.back().change, node_change::recreated);
  EXPECT_FALSE(nc.close());
  EXPECT_EQ(nc.close(), make_error_code(errc::closing));
  EXPECT_TRUE(nc.current().has_value()) << "the view stays readable after close";
  EXPECT_THROW((void)nc.async_start(tok), std::logic_error);
}

TYPED_TEST(caches, node_cache_on_a_missing_node_starts_empty_and_sees_it_created) {
  auto& t = *this;
  using S = typename TestFixture::S;
  auto& s = t.first();
  auto& w = t.open();
  const auto p = t.path("later");
  node_cache<S> nc(s, p);
  ASSERT_FALSE(t.err(nc.async_start(tok)));
  ASSERT_TRUE(nc.current().has_value());
  EXPECT_FALSE(nc.current()->exists);
  ASSERT_FALSE(t.err(w.async_create(p, "x", {}, tok)));
  ASSERT_TRUE(t.eventually([&] { return nc.current()->exists && nc.current()->data == "x"; }));
  EXPECT_EQ(nc.current()->change, node_change::created);
}

TYPED_TEST(caches, node_cache_a_cancelled_start_is_undone_and_may_be_started_again) {
  auto& t = *this;
  using S = typename TestFixture::S;
  auto& s = t.first();
  auto& w = t.open();
  const auto p = t.path("n");
  ASSERT_FALSE(t.err(w.async_create(p, "a", {}, tok)));
  watch_hub<S> hub(s);
  node_cache<S> nc(hub, p);
  for (const auto type : {asio::cancellation_type::terminal, asio::cancellation_type::partial,
                          asio::cancellation_type::total}) {
    asio::cancellation_signal sig;
    auto f = nc.async_start(asio::bind_cancellation_slot(sig.slot(), tok));
    // Runs on the session's executor right after the start began there, before any reply.
    asio::post(s.get_executor(), [&sig, type] { sig.emit(type); });
    EXPECT_EQ(std::get<0>(t.await(std::move(f))), zkr::operation_aborted()) << static_cast<int>(type);
    EXPECT_FALSE(nc.initialized());
    EXPECT_FALSE(nc.current().has_value());
    t.settle(s);
    EXPECT_EQ(hub.stats().subscribers, 0u) << "a cancelled start leaves no subscription";
  }
  if constexpr (TestFixture::simulated) {
    // Emitted right after the call returns: hooked in the initiating call, not lost. (Only
    // where the caller runs on the session's executor: Asio's cancellation signals are not
    // thread-safe, so on the real backend a signal must be emitted on the strand, as above.)
    asio::cancellation_signal sig;
    auto f = nc.async_start(asio::bind_cancellation_slot(sig.slot(), tok));
    sig.emit(asio::cancellation_type::total);
    EXPECT_EQ(std::get<0>(t.await(std::move(f))), zkr::operation_aborted());
    EXPECT_FALSE(nc.initialized());
  }
  ASSERT_FALSE(t.err(nc.async_start(tok)));
  EXPECT_EQ(nc.current()->data, "a");
}

// ---- children_cache ---------------------------------------------------------------------------

TYPED_TEST(caches, children_cache_initial_load_reports_each_child_then_initialized) {
  auto& t = *this;
  using S = typename TestFixture::S;
  auto& s = t.first();
  auto& w = t.open();
  const auto p = t.path("svc");
  ASSERT_FALSE(t.err(w.async_create(p, "", {}, tok)));
  for (const char* c : {"b", "a", "c"}) ASSERT_FALSE(t.err(w.async_create(p + "/" + c, std::string("data-") + c, {}, tok)));
  watch_hub<S> hub(s);
  children_cache<S> cache(hub, p);
  event_checker check;
  cache.add_listener(check.listener(cache));
  ASSERT_FALSE(t.err(cache.async_start(tok)));
  EXPECT_TRUE(cache.initialized());
  EXPECT_TRUE(cache.parent_exists());
  EXPECT_EQ(*cache.current(), t.server_view(s, p));
  const auto es = check.events();
  ASSERT_EQ(es.size(), 4u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(es[i].type, ev::added);
  EXPECT_EQ(es[3].type, ev::initialized);
  EXPECT_EQ(check.problems(), "");
  ASSERT_TRUE(cache.get("a").has_value());
  EXPECT_EQ(cache.get("a")->data, "data-a");
  EXPECT_FALSE(cache.get("zz").has_value());
}

TYPED_TEST(caches, children_cache_follows_adds_updates_removes_and_recreations) {
  auto& t = *this;
  using S = typename TestFixture::S;
  auto& s = t.first();
  auto& w = t.open();
  const auto p = t.path("svc");
  ASSERT_FALSE(t.err(w.async_create(p, "", {}, tok)));
  ASSERT_FALSE(t.err(w.async_create(p + "/a", "A", {}, tok)));
  children_cache<S> cache(s, p);
  event_checker check;
  cache.add_listener(check.listener(cache));
  ASSERT_FALSE(t.err(cache.async_start(tok)));
  ASSERT_FALSE(t.err(w.async_create(p + "/b", "B", {}, tok)));
  ASSERT_TRUE(t.eventually([&] { return cache.get("b").has_value(); }));
  ASSERT_FALSE(t.err(w.async_set(p + "/a", "A2", -1, tok)));
  ASSERT_TRUE(t.eventually([&] { return cache.get("a")->data == "A2"; }));
  ASSERT_FALSE(t.err(w.async_remove(p + "/b", -1, tok)));
  ASSERT_TRUE(t.eventually([&] { return !cache.get("b").has_value(); }));
  const auto czxid = cache.get("a")->stat.czxid;
  ASSERT_FALSE(std::get<0>(t.await(w.async_multi({op::make_remove(p + "/a"), op::make_create(p + "/a", "A2")}, tok))));
  ASSERT_TRUE(t.eventually([&] { return cache.get("a") && cache.get("a")->stat.czxid != czxid; }));
  EXPECT_EQ(*cache.current(), t.server_view(s, p));
  EXPECT_EQ(check.problems(), "");
  EXPECT_EQ(check.count(ev::added), 2u);
  EXPECT_EQ(check.count(ev::removed), 1u);
  const auto es = check.events();
  EXPECT_EQ(es.back().type, ev::updated) << "a re-created child with the same data is an update (czxid)";
  EXPECT_EQ(es.back().child.data, "A2");
  EXPECT_EQ(check.recreations(), 1);
}

TYPED_TEST(caches, children_cache_on_a_missing_parent_waits_for_it) {
  auto& t = *this;
  using S = typename TestFixture::S;
  auto& s = t.first();
  auto& w = t.open();
  const auto p = t.path("svc");
  children_cache<S> cache(s, p);
  event_checker check;
  cache.add_listener(check.listener(cache));
  ASSERT_FALSE(t.err(cache.async_start(tok)));
  EXPECT_TRUE(cache.initialized());
  EXPECT_FALSE(cache.parent_exists());
  EXPECT_TRUE(cache.current()->empty());
  ASSERT_FALSE(t.err(w.async_create(p, "", {}, tok)));
  ASSERT_TRUE(t.eventually([&] { return cache.parent_exists(); }));
  ASSERT_FALSE(t.err(w.async_create(p + "/x", "X", {}, tok)));
  ASSERT_TRUE(t.eventually([&] { return cache.get("x").has_value(); }));
  ASSERT_FALSE(t.err(w.async_remove(p + "/x", -1, tok)));
  ASSERT_FALSE(t.err(w.async_remove(p, -1, tok)));
  ASSERT_TRUE(t.eventually([&] { return !cache.parent_exists(); }));
  EXPECT_TRUE(cache.current()->empty());
  EXPECT_EQ(check.problems(), "");
}

TYPED_TEST(caches, children_cache_without_data_costs_one_watch) {
  auto& t = *this;
  using S = typename TestFixture::S;
  auto& s = t.first();
  auto& w = t.open();
  const auto p = t.path("svc");
  ASSERT_FALSE(t.err(w.async_create(p, "", {}, tok)));
  for (const char* c : {"a", "b"}) ASSERT_FALSE(t.err(w.async_create(p + "/" + c, "D", {}, tok)));
  children_cache<S> names(s, p, {.cache_data = false});
  ASSERT_FALSE(t.err(names.async_start(tok)));
  EXPECT_EQ(*names.current(), t.server_view(s, p, false));
  if constexpr (TypeParam::simulated) {
    // (ZooKeeper 3.8.0's wchp lists data watches only: a child watch is visible here alone.)
    const auto& tree = t.b_.cluster().tree(0);
    EXPECT_TRUE(tree.has_child_watch(s.session_id(), p));
  }
  EXPECT_FALSE(t.b_.server_has_data_watch(p + "/a", s.session_id())) << "names only: no watch on a child";
  auto& s2 = t.open();
  children_cache<S> full(s2, p);
  ASSERT_FALSE(t.err(full.async_start(tok)));
  EXPECT_TRUE(t.b_.server_has_data_watch(p + "/a", s2.session_id()));
  if constexpr (TypeParam::simulated) {
    EXPECT_EQ(zkr::test::watch::server_watches(t.b_.cluster()), 1u + 3u) << "names: 1; with data: 1 + one per child";
  }
  ASSERT_FALSE(t.err(w.async_create(p + "/c", "", {}, tok)));
  ASSERT_TRUE(t.eventually([&] { return names.get("c").has_value() && full.get("c").has_value(); }));
  EXPECT_EQ(names.get("c")->stat, zkr::stat{}) << "names only: no read of the child";
}

TYPED_TEST(caches, children_cache_a_cancelled_start_is_undone_and_may_be_started_again) {
  auto& t = *this;
  using S = typename TestFixture::S;
  auto& s = t.first();
  auto& w = t.open();
  const auto p = t.path("svc");
  ASSERT_FALSE(t.err(w.async_create(p, "", {}, tok)));
  ASSERT_FALSE(t.err(w.async_create(p + "/a", "A", {}, tok)));
  watch_hub<S> hub(s);
  children_cache<S> cache(hub, p);
  asio::cancellation_signal sig;
  auto f = cache.async_start(asio::bind_cancellation_slot(sig.slot(), tok));
  asio::post(s.get_executor(), [&sig] { sig.emit(asio::cancellation_type::total); });
  EXPECT_EQ(std::get<0>(t.await(std::move(f))), zkr::operation_aborted());
  EXPECT_FALSE(cache.initialized());
  EXPECT_TRUE(cache.current()->empty());
  t.settle(s);
  EXPECT_EQ(hub.stats().subscribers, 0u);
  ASSERT_FALSE(t.err(cache.async_start(tok)));
  EXPECT_EQ(*cache.current(), t.server_view(s, p));
}

TYPED_TEST(caches, children_cache_close_stops_the_listeners_and_keeps_the_view) {
  auto& t = *this;
  using S = typename TestFixture::S;
  auto& s = t.first();
  auto& w = t.open();
  const auto p = t.path("svc");
  ASSERT_FALSE(t.err(w.async_create(p, "", {}, tok)));
  ASSERT_FALSE(t.err(w.async_create(p + "/a", "A", {}, tok)));
  watch_hub<S> hub(s);
  children_cache<S> cache(hub, p);
  event_checker check;
  cache.add_listener(check.listener(cache));
  ASSERT_FALSE(t.err(cache.async_start(tok)));
  EXPECT_EQ(hub.stats().channels, 2u);
  EXPECT_FALSE(cache.close());
  EXPECT_EQ(cache.close(), make_error_code(errc::closing));
  EXPECT_THROW((void)cache.async_start(tok), std::logic_error);
  t.settle(s);
  const auto n = check.events().size();
  // The parent's channel is dormant (its watch still armed); when that watch fires it goes
  // without a read and without telling anyone.
  ASSERT_FALSE(t.err(w.async_create(p + "/b", "", {}, tok)));
  ASSERT_TRUE(t.eventually([&] { return hub.stats().channels == 1; }));
  EXPECT_EQ(check.events().size(), n);
  EXPECT_TRUE(cache.get("a").has_value());
}

TYPED_TEST(caches, children_cache_forwards_session_events_and_rereads_after_expiry) {
  auto& t = *this;
  using S = typename TestFixture::S;
  auto& s = t.open();
  auto& w = t.open();
  const auto p = t.path("svc");
  ASSERT_FALSE(t.err(w.async_create(p, "", {}, tok)));
  ASSERT_FALSE(t.err(w.async_create(p + "/a", "A", {}, tok)));
  children_cache<S> cache(s, p);
  event_checker check;
  cache.add_listener(check.listener(cache));
  ASSERT_FALSE(t.err(cache.async_start(tok)));
  ASSERT_TRUE(t.b_.expire(s));
  ASSERT_FALSE(t.err(w.async_set(p + "/a", "A2", -1, tok)));
  ASSERT_FALSE(t.err(w.async_create(p + "/b", "B", {}, tok)));
  ASSERT_TRUE(t.eventually([&] { return check.count(ev::reconnected) >= 1; }, 30s));
  ASSERT_TRUE(t.eventually([&] { return *cache.current() == t.server_view(w, p); }));
  EXPECT_GE(check.count(ev::lost), 1u);
  EXPECT_EQ(check.problems(), "");
  EXPECT_EQ(cache.get("a")->data, "A2");
}

TYPED_TEST(caches, two_caches_on_one_hub_cost_one_read_per_change) {
  auto& t = *this;
  using S = typename TestFixture::S;
  using CS = zkr::test::probe_session<S>;
  auto& s = t.first();
  auto& w = t.open();
  const auto p = t.path("svc");
  ASSERT_FALSE(t.err(w.async_create(p, "", {}, tok)));
  CS counted(s);
  watch_hub<CS> hub(counted);
  children_cache<CS> one(hub, p), two(hub, p);
  node_cache<CS> parent(hub, p);
  ASSERT_FALSE(t.err(one.async_start(tok)));
  ASSERT_FALSE(t.err(two.async_start(tok)));
  ASSERT_FALSE(t.err(parent.async_start(tok)));
  const auto reads0 = reads(counted);
  ASSERT_FALSE(t.err(w.async_create(p + "/c", "C", {}, tok)));
  ASSERT_TRUE(t.eventually([&] { return one.get("c").has_value() && two.get("c").has_value(); }));
  EXPECT_EQ(reads(counted) - reads0, 2u) << "one list read and one read of the new child, for two caches";
  ASSERT_FALSE(t.err(w.async_set(p + "/c", "C2", -1, tok)));
  ASSERT_TRUE(t.eventually([&] { return one.get("c")->data == "C2" && two.get("c")->data == "C2"; }));
  EXPECT_EQ(reads(counted) - reads0, 3u);
  EXPECT_EQ(hub.stats().channels, 3u) << "the parent's list, the parent's data, the child's data";
  // `counted` dies with this scope: let the closes run first.
  one.close();
  two.close();
  parent.close();
  t.settle(s);
}

TYPED_TEST(caches, start_from_a_coroutine_as_the_docs_show) {
  auto& t = *this;
  using S = typename TestFixture::S;
  using ex_t = typename S::executor_type;
  auto& s = t.first();
  auto& w = t.open();
  const auto p = t.path("svc");
  ASSERT_FALSE(t.err(w.async_create(p, "", {}, tok)));
  ASSERT_FALSE(t.err(w.async_create(p + "/a", "A", {}, tok)));
  watch_hub<S> hub(s);
  children_cache<S> cache(hub, p);
  node_cache<S> parent(hub, p);
  std::promise<std::vector<std::string>> done;
  auto fut = done.get_future();
  asio::co_spawn(
      s.get_executor(),
      [&]() -> asio::awaitable<void, ex_t> {
        std::vector<std::string> out;
        // zkr completes with std::error_code: co_await yields it (no exception).
        const std::error_code ec = co_await cache.async_start(asio::use_awaitable_t<ex_t>{});
        out.push_back(ec ? ec.message() : "started");
        const std::error_code ec2 = co_await parent.async_start(asio::use_awaitable_t<ex_t>{});
        out.push_back(ec2 ? ec2.message() : "started");
        for (const auto& [name, child] : *cache.current()) out.push_back(name + "=" + child.data);
        done.set_value(out);
      },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  const auto out = t.await(std::move(fut));
  EXPECT_EQ(out, (std::vector<std::string>{"started", "started", "a=A"}));
  cache.close();
  parent.close();
  t.settle(s);
}

// ---- fault sweep (simulator) ---------------------------------------------------------------

namespace simx = zkr::sim;
using sim_session = simx::session;

/// Every 10-150 ms of virtual time, one random change: children /svc/c0..c5 created, removed,
/// set, re-created in a multi; /cfg set, removed, created.
struct churner {
  churner(simx::cluster& c, int id)
      : id(id), s(c, {.connect_string = c.connect_string(), .session_timeout = 4s}), timer(s.get_executor()) {}
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
    const std::string child = "/svc/c" + std::to_string(s.random().uniform(6));
    const std::string data = "u" + std::to_string(id) + "-" + std::to_string(++n);
    const auto ignore = [](auto&&...) {};
    switch (s.random().uniform(10)) {
      case 0:
      case 1:
      case 2:
      case 3: s.async_set(child, data, -1, ignore); break;
      case 4:
      case 5: s.async_create(child, data, {}, ignore); break;
      case 6: s.async_remove(child, -1, ignore); break;
      case 7: s.async_multi({op::make_remove(child), op::make_create(child, data)}, ignore); break;
      case 8: s.async_set("/cfg", data, -1, ignore); break;
      case 9:
        if (s.random().uniform(2) == 0) {
          s.async_remove("/cfg", -1, ignore);
        } else {
          s.async_create("/cfg", data, {}, ignore);
        }
        break;
    }
  }
  int id;
  sim_session s;
  simx::timer timer;
  bool stopped = false;
  int n = 0;
};

/// One session with a shared hub: a data cache and a names-only cache of /svc, a node cache
/// of /cfg.
struct cacher {
  explicit cacher(simx::cluster& c)
      : s(c, {.connect_string = c.connect_string(), .session_timeout = 2s}),
        hub(s),
        data(hub, "/svc"),
        names(hub, "/svc", {.cache_data = false}),
        cfg(hub, "/cfg") {
    data.add_listener(data_check.listener(data));
    names.add_listener(names_check.listener(names));
    cfg.add_listener([h = cfg_h](const node_state& st) { h->push(st); });
  }
  void start() {
    data.async_start([this](std::error_code ec) { started += !ec; });
    names.async_start([this](std::error_code ec) { started += !ec; });
    cfg.async_start([this](std::error_code ec) { started += !ec; });
  }
  sim_session s;
  watch_hub<sim_session> hub;
  children_cache<sim_session> data;
  children_cache<sim_session> names;
  node_cache<sim_session> cfg;
  event_checker data_check, names_check;
  std::shared_ptr<history<node_state>> cfg_h = std::make_shared<history<node_state>>();
  int started = 0;
};

/// The leader's children of `p` (with data and stat).
view_type leader_view(const simx::cluster& c, const std::string& p, bool with_data) {
  view_type out;
  const auto* n = zkr::test::watch::leader_node(c, p);
  if (n == nullptr) return out;
  for (const auto& k : n->children) {
    if (!with_data) {
      out[k] = child_data{k, {}, {}};
      continue;
    }
    const auto* cn = zkr::test::watch::leader_node(c, p + "/" + k);
    out[k] = child_data{k, simx::data_tree::render(*cn), cn->data};
  }
  return out;
}
bool same_node(const simx::cluster& c, const std::string& p, const std::optional<node_state>& st) {
  if (!st) return false;
  const auto* n = zkr::test::watch::leader_node(c, p);
  if ((n != nullptr) != st->exists) return false;
  return n == nullptr || simx::data_tree::render(*n) == st->stat;
}
std::string describe(const view_type& v) {
  std::ostringstream o;
  for (const auto& [k, d] : v) o << k << "='" << d.data << "'@" << d.stat.mzxid << " ";
  return o.str();
}

struct cache_totals {
  std::uint64_t events = 0, recreations = 0, lost = 0, reconnected = 0, syncs = 0, stale = 0;
};

void run_cache_seed(std::uint64_t seed, cache_totals& tot) {
  // Client links of 1-20 ms keep reads in flight long enough for faults to catch some.
  // ZKR_TIMELINE=FILE writes the run's timeline there (replay one seed with ZKR_SEED).
  std::ofstream timeline;
  if (const char* f = std::getenv("ZKR_TIMELINE")) timeline.open(f);
  simx::cluster c({.seed = seed,
                   .servers = 3,
                   .tick_time = 200ms,
                   .client_links = {.delay_min = 1ms, .delay_max = 20ms},
                   .trace = {.timeline = timeline.is_open() ? &timeline : nullptr}});
  churner u1(c, 1), u2(c, 2);
  ASSERT_TRUE(c.run_until([&] { return is_connected(u1.s.state()) && is_connected(u2.s.state()); }, 30s));
  ASSERT_FALSE(std::get<0>(zkr::test::sim::wait(c, u1.s.async_create("/svc", "", {}, zkr::test::sim::fut))));
  cacher a(c), b(c);
  a.start();
  // One session's caches start in the middle of the faults (at 5 s).
  std::vector<simx::process_id> procs{a.s.process(), b.s.process(), u1.s.process(), u2.s.process()};
  const auto faults = c.schedule_random_faults({.start = 1s, .span = 15s, .count = 12, .min_length = 100ms, .max_length = 3s}, procs);
  std::ostringstream plan;
  for (const auto& f : faults) plan << "\n  " << f;
  SCOPED_TRACE("faults:" + plan.str());
  c.at(5s, "start caches of b", [&b](simx::cluster&) { b.start(); });
  u1.step();
  u2.step();
  c.run_for(20s);
  u1.stopped = u2.stopped = true;
  u1.timer.cancel();
  u2.timer.cancel();
  c.heal();
  const auto converged = [&] {
    const auto full = leader_view(c, "/svc", true);
    const auto names = leader_view(c, "/svc", false);
    for (auto* x : {&a, &b}) {
      if (!is_connected(x->s.state()) || x->started != 3) return false;
      if (*x->data.current() != full || *x->names.current() != names) return false;
      if (!same_node(c, "/cfg", x->cfg.current())) return false;
    }
    return true;
  };
  const bool ok = c.run_until(converged, 120s);
  EXPECT_TRUE(ok) << "caches did not converge to the leader's tree";
  if (!ok) {
    for (auto* x : {&a, &b}) {
      ADD_FAILURE() << "started " << x->started << "; data cache: " << describe(*x->data.current())
                    << "\n  leader:     " << describe(leader_view(c, "/svc", true));
    }
  }
  if (ok) {
    // Views can converge while a read of a just-deleted child is still in flight (its channel
    // retires when the reply comes): let every reply arrive (nothing writes any more).
    c.run_for(5s);
    EXPECT_TRUE(converged()) << "the caches moved after they had converged";
    // No channel or watch left behind by the churn: the parent's list, /cfg, one per child,
    // and on the servers exactly those watches (one table entry each).
    const auto n = leader_view(c, "/svc", false).size();
    for (auto* x : {&a, &b}) {
      std::string chans;
      for (const auto& l : x->hub.core()->describe_channels()) chans += "\n  " + l;
      EXPECT_EQ(x->hub.stats().channels, 2 + n) << "channels of one hub:" << chans;
    }
    EXPECT_EQ(zkr::test::watch::server_watches(c), 2 * (2 + n)) << "server-side watches of both sessions";
  }
  for (auto* x : {&a, &b}) {
    EXPECT_EQ(x->data_check.problems(), "") << "data cache events";
    EXPECT_EQ(x->names_check.problems(), "") << "names cache events";
    EXPECT_EQ(x->data_check.view(), *x->data.current()) << "the events replayed give the view";
    EXPECT_EQ(x->names_check.view(), *x->names.current()) << "the events replayed give the view";
    EXPECT_EQ(check_sequence(x->cfg_h->items()), "") << "node cache";
    EXPECT_EQ(x->data_check.count(ev::initialized), 1u);
    tot.events += x->data_check.events().size() + x->names_check.events().size();
    tot.recreations += static_cast<std::uint64_t>(x->data_check.recreations());
    tot.lost += x->data_check.count(ev::lost);
    tot.reconnected += x->data_check.count(ev::reconnected);
    tot.syncs += x->hub.stats().syncs;
    tot.stale += x->hub.stats().stale_dropped;
  }
}

TEST(cache_sweep, caches_equal_the_servers_state_once_quiet_and_events_never_go_backwards) {
  cache_totals tot;
  const auto first = zkr::test::sim::first_seed();
  for (int i = 0; i < zkr::test::sim::sweep_count(); ++i) {
    const auto seed = first + static_cast<std::uint64_t>(i);
    ZKR_SEED_TRACE(seed);
    run_cache_seed(seed, tot);
    if (HasFatalFailure()) return;
  }
  std::cout << "[ coverage ] events " << tot.events << ", child re-creations seen as updates " << tot.recreations
            << ", lost " << tot.lost << ", reconnected " << tot.reconnected << ", syncs " << tot.syncs
            << ", stale results dropped " << tot.stale << std::endl;
  if (zkr::test::sim::sweep_count() >= 10) {
    EXPECT_GT(tot.recreations, 0u) << "no child re-creation was reported as an update";
    EXPECT_GT(tot.reconnected, 0u) << "no cache saw a reconnection";
    EXPECT_GT(tot.lost, 0u) << "no cache saw its session lost";
  }
}

}  // namespace
}  // namespace zkr::recipes::test
