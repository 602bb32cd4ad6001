// Goal: every operation of the ZooKeeper backend, its results and its error paths, against a
// real server. Method: one shared standalone server (zk_environment), a fresh root per test,
// operations driven through futures with a real-time limit so nothing hangs.
#include <string>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/strand.hpp>

#include "fixture.hpp"

namespace zkr::test {
namespace {

TEST_F(zk_test, create_get_set_remove_round_trip_with_stats) {
  auto& s = first();
  const auto p = path("node");
  auto [ec, created, st] = await(s.async_create(p, "hello", {}, tok));
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(created, p);
  EXPECT_EQ(st.version, 0);
  EXPECT_EQ(st.data_length, 5);
  EXPECT_EQ(st.czxid, st.mzxid);
  EXPECT_EQ(st.ephemeral_owner, 0);
  EXPECT_GT(st.ctime, 0);

  auto [ec2, data, st2] = await(s.async_get(p, tok));
  ASSERT_FALSE(ec2);
  EXPECT_EQ(data, "hello");
  EXPECT_EQ(st2, st);

  auto [ec3, st3] = await(s.async_set(p, "world!", 0, tok));
  ASSERT_FALSE(ec3);
  EXPECT_EQ(st3.version, 1);
  EXPECT_EQ(st3.data_length, 6);
  EXPECT_GT(st3.mzxid, st.mzxid);
  EXPECT_EQ(st3.czxid, st.czxid);

  auto [ec4, st4] = await(s.async_exists(p, tok));
  ASSERT_FALSE(ec4);
  EXPECT_EQ(st4, st3);

  auto [ec5, parent_st] = await(s.async_exists(root_, tok));
  ASSERT_FALSE(ec5);
  EXPECT_EQ(parent_st.num_children, 1);
  EXPECT_EQ(parent_st.cversion, 1);
  EXPECT_EQ(parent_st.pzxid, st.czxid);

  auto [ec6] = await(s.async_remove(p, 1, tok));
  ASSERT_FALSE(ec6);
  auto [ec7, st7] = await(s.async_exists(p, tok));
  EXPECT_EQ(ec7, errc::no_node);
}

TEST_F(zk_test, errors_of_each_operation) {
  auto& s = first();
  const auto p = path("e");
  EXPECT_EQ(std::get<0>(await(s.async_get(p, tok))), errc::no_node);
  EXPECT_EQ(std::get<0>(await(s.async_set(p, "x", -1, tok))), errc::no_node);
  EXPECT_EQ(std::get<0>(await(s.async_remove(p, -1, tok))), errc::no_node);
  EXPECT_EQ(std::get<0>(await(s.async_get_children(p, tok))), errc::no_node);
  EXPECT_EQ(std::get<0>(await(s.async_create(p + "/child", "", {}, tok))), errc::no_node);  // no parent

  ASSERT_FALSE(std::get<0>(await(s.async_create(p, "", {}, tok))));
  EXPECT_EQ(std::get<0>(await(s.async_create(p, "", {}, tok))), errc::node_exists);
  EXPECT_EQ(std::get<0>(await(s.async_set(p, "x", 7, tok))), errc::bad_version);
  EXPECT_EQ(std::get<0>(await(s.async_remove(p, 7, tok))), errc::bad_version);
  ASSERT_FALSE(std::get<0>(await(s.async_create(p + "/c", "", {}, tok))));
  EXPECT_EQ(std::get<0>(await(s.async_remove(p, -1, tok))), errc::not_empty);

  const auto eph = path("eph");
  ASSERT_FALSE(std::get<0>(await(s.async_create(eph, "", {.mode = create_mode::ephemeral}, tok))));
  EXPECT_EQ(std::get<0>(await(s.async_create(eph + "/c", "", {}, tok))), errc::no_children_for_ephemerals);
}

TEST_F(zk_test, invalid_paths_fail_before_any_request) {
  auto& s = first();
  for (const char* bad : {"", "a", "/a/", "//a", "/a//b", "/a/./b", "/a/../b", "/.", "/..", "/a\x01"}) {
    EXPECT_EQ(std::get<0>(await(s.async_get(bad, tok))), errc::invalid_path) << bad;
    EXPECT_EQ(std::get<0>(await(s.async_create(bad, "", {}, tok))), errc::invalid_path) << bad;
  }
  // A sequential create may end in '/': ZooKeeper appends the number to it.
  auto [ec, created, st] = await(s.async_create(root_ + "/", "", {.mode = create_mode::persistent_sequential}, tok));
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(created, root_ + "/0000000000");
  // A TTL must come with a TTL mode, and only with one.
  EXPECT_EQ(std::get<0>(await(s.async_create(path("t"), "", {.mode = create_mode::persistent_with_ttl}, tok))),
            errc::invalid_argument);
  EXPECT_EQ(std::get<0>(await(s.async_create(path("t"), "", {.mode = create_mode::persistent, .ttl = 5s}, tok))),
            errc::invalid_argument);
}

TEST_F(zk_test, sequential_names_are_ten_digits_from_the_parent_cversion) {
  auto& s = first();
  ASSERT_FALSE(std::get<0>(await(s.async_create(path("other"), "", {}, tok))));  // cversion 1
  std::vector<std::string> names;
  for (int i = 0; i < 3; ++i) {
    auto [ec, created, st] = await(s.async_create(path("lock-"), "", {.mode = create_mode::ephemeral_sequential}, tok));
    ASSERT_FALSE(ec) << ec.message();
    names.push_back(created);
    EXPECT_NE(st.ephemeral_owner, 0);
    EXPECT_EQ(st.ephemeral_owner, s.session_id());
  }
  EXPECT_EQ(names[0], path("lock-0000000001"));
  EXPECT_EQ(names[1], path("lock-0000000002"));
  EXPECT_EQ(names[2], path("lock-0000000003"));
}

TEST_F(zk_test, oversized_requests_get_data_too_large_and_the_limit_is_exact) {
  auto& s = first();
  const auto p = path("big");
  // Largest data that fits: limit - header(8) - path(4+n) - data prefix(4) - acl vector - flags(4).
  const std::string probe;
  const std::size_t overhead = create_request_size(p, probe, {});
  const std::string fits(default_max_request_bytes - overhead, 'x');
  const std::string too_big(fits.size() + 1, 'x');
  EXPECT_EQ(std::get<0>(await(s.async_create(p, too_big, {}, tok))), errc::data_too_large);
  auto [ec, created, st] = await(s.async_create(p, fits, {}, tok));
  ASSERT_FALSE(ec) << "the largest request the limit admits must succeed: " << ec.message();
  EXPECT_EQ(st.data_length, static_cast<std::int32_t>(fits.size()));
  // A set carries no ACL and no flags: its largest data is larger than a create's.
  const std::string set_fits(default_max_request_bytes - set_request_size(p, probe), 'y');
  EXPECT_EQ(std::get<0>(await(s.async_set(p, set_fits + "y", -1, tok))), errc::data_too_large);
  EXPECT_FALSE(std::get<0>(await(s.async_set(p, set_fits, -1, tok))));
  EXPECT_EQ(std::get<0>(await(s.async_multi({op::make_set(p, set_fits)}, tok))), errc::data_too_large);
}

TEST_F(zk_test, without_the_size_check_the_server_drops_the_connection) {
  // Why the client-side check exists: the server answers an oversized request by closing the
  // connection, which the caller sees as connection_loss, the "maybe applied" error.
  auto& s = open({.max_request_bytes = 0});
  const std::string huge(default_max_request_bytes + 1024, 'x');
  auto [ec, created, st] = await(s.async_create(path("huge"), huge, {}, tok));
  EXPECT_EQ(ec, errc::connection_loss) << ec.message();
}

TEST_F(zk_test, get_children_with_stat) {
  auto& s = first();
  for (const char* n : {"a", "b", "c"}) ASSERT_FALSE(std::get<0>(await(s.async_create(path(n), "", {}, tok))));
  auto [ec, children, st] = await(s.async_get_children(root_, tok));
  ASSERT_FALSE(ec);
  std::sort(children.begin(), children.end());
  EXPECT_EQ(children, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(st.num_children, 3);
}

TEST_F(zk_test, multi_commits_all_or_reports_per_op_results) {
  auto& s = first();
  const auto a = path("a"), b = path("b");
  ASSERT_FALSE(std::get<0>(await(s.async_create(a, "0", {}, tok))));
  auto [ec, results] = await(s.async_multi(
      {op::make_check(a, 0), op::make_set(a, "1", 0), op::make_create(b, "bee"), op::make_remove(b, 0)}, tok));
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_EQ(results.size(), 4u);
  for (const auto& r : results) EXPECT_FALSE(r.ec);
  EXPECT_EQ(results[1].stat.version, 1);
  EXPECT_EQ(results[2].path, b);

  // The third op fails: ok, ok, its error, then runtime_inconsistency; nothing applied.
  auto [ec2, r2] = await(s.async_multi(
      {op::make_set(a, "2", 1), op::make_create(b, ""), op::make_set(a, "3", 99), op::make_remove(a, -1)}, tok));
  EXPECT_EQ(ec2, errc::bad_version);
  ASSERT_EQ(r2.size(), 4u);
  EXPECT_FALSE(r2[0].ec);
  EXPECT_FALSE(r2[1].ec);
  EXPECT_EQ(r2[2].ec, errc::bad_version);
  EXPECT_EQ(r2[3].ec, errc::runtime_inconsistency);
  auto [ec3, data, st] = await(s.async_get(a, tok));
  EXPECT_EQ(data, "1");
  EXPECT_EQ(std::get<0>(await(s.async_exists(b, tok))), errc::no_node);
}

TEST_F(zk_test, sync_then_read_sees_a_write_of_another_session) {
  auto& a = first();
  auto& b = open();
  const auto p = path("s");
  ASSERT_FALSE(std::get<0>(await(b.async_create(p, "v", {}, tok))));
  ASSERT_FALSE(std::get<0>(await(a.async_sync(p, tok))));
  auto [ec, data, st] = await(a.async_get(p, tok));
  ASSERT_FALSE(ec);
  EXPECT_EQ(data, "v");
}

TEST_F(zk_test, handlers_never_run_inside_the_initiating_call_and_honour_their_executor) {
  auto& s = first();
  // Initiate on the session's strand: an inline completion would see `inside` still true;
  // a posted one runs only after the initiating lambda has returned.
  bool inside = false;
  std::promise<bool> ran_inline;
  asio::post(s.get_executor(), [&] {
    inside = true;
    s.async_get("not-a-path", [&](std::error_code ec, std::string, zkr::stat) {
      EXPECT_EQ(ec, errc::invalid_path);
      ran_inline.set_value(inside);
    });
    inside = false;
  });
  EXPECT_FALSE(await(ran_inline.get_future()));

  auto other = asio::make_strand(io_.context());
  std::promise<bool> on_other;
  s.async_exists(root_, asio::bind_executor(other, [&](std::error_code, zkr::stat) {
                   on_other.set_value(other.running_in_this_thread());
                 }));
  EXPECT_TRUE(await(on_other.get_future()));
}

TEST_F(zk_test, deferred_tokens_own_their_arguments) {
  auto& s = first();
  auto op = [&] {
    std::string p = path("deferred");  // dies before the operation starts
    return s.async_create(p, "d", {}, asio::deferred);
  }();
  auto [ec, created, st] = await(std::move(op)(tok));
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(created, path("deferred"));
}

TEST_F(zk_test, close_aborts_pending_operations_and_ends_watches) {
  auto& s = open();
  watch_log log;
  ASSERT_EQ(std::get<0>(await(s.async_exists(path("w"), log.handler(1), tok))), errc::no_node);
  std::vector<std::future<std::tuple<std::error_code, std::string, zkr::stat>>> pending;
  for (int i = 0; i < 50; ++i) pending.push_back(s.async_get(root_, tok));
  ASSERT_FALSE(std::get<0>(await(s.async_close(tok))));
  EXPECT_EQ(s.state(), session_state::closed);
  for (auto& f : pending) {
    auto ec = std::get<0>(await(std::move(f)));
    EXPECT_TRUE(!ec || ec == std::errc::operation_canceled) << ec.message();
  }
  ASSERT_TRUE(log.wait_for(1));
  EXPECT_EQ(log.items()[0].ec, errc::closing);
  EXPECT_EQ(std::get<0>(await(s.async_get(root_, tok))), errc::closing);
  EXPECT_FALSE(std::get<0>(await(s.async_close(tok))));  // idempotent
}

TEST_F(zk_test, close_from_inside_handlers_is_safe) {
  // From a completion handler and from a watch handler, both on the session's strand.
  auto& a = open();
  std::promise<std::error_code> closed_a;
  a.async_get(root_, [&](std::error_code, std::string, zkr::stat) {
    a.async_close([&](std::error_code ec) { closed_a.set_value(ec); });
  });
  EXPECT_FALSE(await(closed_a.get_future()));
  EXPECT_EQ(a.state(), session_state::closed);

  auto& b = open();
  std::promise<std::error_code> closed_b;
  ASSERT_EQ(std::get<0>(await(b.async_exists(path("trigger"), [&](std::error_code ec, watch_event) {
                                  EXPECT_FALSE(ec);
                                  b.async_close([&](std::error_code e) { closed_b.set_value(e); });
                                }, tok))),
            errc::no_node);
  ASSERT_FALSE(std::get<0>(await(first().async_create(path("trigger"), "", {}, tok))));
  EXPECT_FALSE(await(closed_b.get_future()));
  EXPECT_EQ(b.state(), session_state::closed);
}

TEST_F(zk_test, wait_connected_can_be_cancelled) {
  zkr::zookeeper::options o;
  o.connect_string = "127.0.0.1:1";  // nothing listens: stays connecting
  auto& s = *sessions_.emplace_back(std::make_unique<session>(io_.executor(), o));
  asio::cancellation_signal sig;
  auto f = s.async_wait_connected(asio::bind_cancellation_slot(sig.slot(), tok));
  asio::post(s.get_executor(), [&] { sig.emit(asio::cancellation_type::terminal); });
  EXPECT_EQ(std::get<0>(await(std::move(f))), std::errc::operation_canceled);
}

TEST_F(zk_test, bad_connect_strings_throw_clearly) {
  for (const char* bad : {"", "host:notaport", "h:1/bad//chroot", "h:70000"}) {
    zkr::zookeeper::options o;
    o.connect_string = bad;
    EXPECT_THROW(session(io_.executor(), o), std::system_error) << bad;
  }
}

TEST_F(zk_test, log_hook_receives_this_sessions_lines) {
  zkr::zookeeper::set_log_level(zkr::zookeeper::log_level::info);
  auto lines = std::make_shared<recorder<std::string>>();
  auto& s = open({.log = [lines](std::string_view l) { lines->push(std::string(l)); }});
  zkr::zookeeper::set_log_level(zkr::zookeeper::log_level::error);
  EXPECT_TRUE(lines->wait_for(1, 5s));
  (void)s;
}

}  // namespace
}  // namespace zkr::test
