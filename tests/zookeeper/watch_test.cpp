// Goal: ZooKeeper's watch rules as zkr's real backend delivers them: which read sets which
// watch, which change fires it with which event and path, one-shot delivery, no watch after a
// failed read, a watch event before the data it reports, and the end of watches on close.
// Method: the shared standalone server; watches record into a watch_log (whose handlers fail
// the test if called twice). "Nothing else fired" is proven without sleeping: ZooKeeper
// delivers a watch event before any later reply that reflects the change, so once a read on
// the watching session sees the change, every event it caused has already been recorded.
// The server's own watch table is read with the 4-letter word `wchp`.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <set>
#include <sstream>
#include <string>

#include "fixture.hpp"

namespace zkr::test {
namespace {

/// Sends a 4-letter word to the shared (single) server and returns its whole answer.
std::string four_letter_word(const std::string& word) {
  const std::string host_port = shared_server().connect_string(0);
  const auto colon = host_port.rfind(':');
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(std::stoi(host_port.substr(colon + 1))));
  if (::inet_pton(AF_INET, host_port.substr(0, colon).c_str(), &addr.sin_addr) != 1) {
    throw std::runtime_error("bad server address " + host_port);
  }
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::send(fd, word.data(), word.size(), 0) != static_cast<ssize_t>(word.size())) {
    ::close(fd);
    throw std::runtime_error("cannot send '" + word + "' to " + host_port);
  }
  std::string out;
  char buf[4096];
  ssize_t n = 0;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  if (n < 0) throw std::runtime_error("reading the answer to '" + word + "' failed or timed out");
  return out;
}

/// The session ids that `wchp` lists under `path` (data and child watches alike). `wchp`
/// prints each watched path on a line, then one "\t0x<session id>" line per watcher.
std::set<std::int64_t> server_watchers(const std::string& path) {
  const std::string out = four_letter_word("wchp");
  EXPECT_FALSE(out.empty()) << "wchp answered nothing (is it whitelisted?)";
  std::set<std::int64_t> ids;
  std::istringstream in(out);
  std::string line;
  bool under = false;
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] == '\t') {
      if (under) ids.insert(static_cast<std::int64_t>(std::stoull(line.substr(3), nullptr, 16)));
    } else {
      under = line == path;
    }
  }
  return ids;
}

TEST_F(zk_test, watch_exists_on_a_missing_node_fires_created) {
  auto& s = first();
  const auto p = path("later");
  watch_log log;
  ASSERT_EQ(std::get<0>(await(s.async_exists(p, log.handler(1), tok))), errc::no_node);
  ASSERT_FALSE(std::get<0>(await(open().async_create(p, "", {}, tok))));
  ASSERT_TRUE(log.wait_for(1));
  const auto r = log.items()[0];
  EXPECT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.event, (watch_event{event_type::created, p}));
}

TEST_F(zk_test, watch_get_watch_fires_data_changed_on_set_and_deleted_on_remove) {
  auto& s = first();
  auto& other = open();
  const auto p = path("node");
  ASSERT_FALSE(std::get<0>(await(s.async_create(p, "a", {}, tok))));
  watch_log log;
  ASSERT_FALSE(std::get<0>(await(s.async_get(p, log.handler(1), tok))));
  ASSERT_FALSE(std::get<0>(await(other.async_set(p, "b", -1, tok))));
  ASSERT_TRUE(log.wait_for(1));
  ASSERT_FALSE(std::get<0>(await(s.async_get(p, log.handler(2), tok))));
  ASSERT_FALSE(std::get<0>(await(other.async_remove(p, -1, tok))));
  ASSERT_TRUE(log.wait_for(2));
  const auto items = log.items();
  ASSERT_EQ(items.size(), 2u);
  EXPECT_FALSE(items[0].ec);
  EXPECT_EQ(items[0].id, 1);
  EXPECT_EQ(items[0].event, (watch_event{event_type::data_changed, p}));
  EXPECT_FALSE(items[1].ec);
  EXPECT_EQ(items[1].id, 2);
  EXPECT_EQ(items[1].event, (watch_event{event_type::deleted, p}));
}

TEST_F(zk_test, watch_children_watch_fires_on_child_create_child_delete_and_node_delete) {
  auto& s = first();
  auto& other = open();
  const auto p = path("parent");
  ASSERT_FALSE(std::get<0>(await(s.async_create(p, "", {}, tok))));
  watch_log log;
  ASSERT_FALSE(std::get<0>(await(s.async_get_children(p, log.handler(1), tok))));
  ASSERT_FALSE(std::get<0>(await(other.async_create(p + "/c", "", {}, tok))));
  ASSERT_TRUE(log.wait_for(1));
  ASSERT_FALSE(std::get<0>(await(s.async_get_children(p, log.handler(2), tok))));
  ASSERT_FALSE(std::get<0>(await(other.async_remove(p + "/c", -1, tok))));
  ASSERT_TRUE(log.wait_for(2));
  ASSERT_FALSE(std::get<0>(await(s.async_get_children(p, log.handler(3), tok))));
  ASSERT_FALSE(std::get<0>(await(other.async_remove(p, -1, tok))));
  ASSERT_TRUE(log.wait_for(3));
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

TEST_F(zk_test, watch_is_one_shot) {
  auto& s = first();
  auto& other = open();
  const auto p = path("once");
  ASSERT_FALSE(std::get<0>(await(s.async_create(p, "0", {}, tok))));
  watch_log log;
  ASSERT_FALSE(std::get<0>(await(s.async_get(p, log.handler(1), tok))));
  ASSERT_FALSE(std::get<0>(await(other.async_set(p, "1", -1, tok))));
  ASSERT_FALSE(std::get<0>(await(other.async_set(p, "2", -1, tok))));
  // Once the watching session reads "2", both sets' events (if any) have been delivered.
  auto [ec, data, st] = await(s.async_get(p, tok));
  ASSERT_FALSE(ec);
  ASSERT_EQ(data, "2");
  io_.drain();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log.items()[0].event, (watch_event{event_type::data_changed, p}));
}

TEST_F(zk_test, watch_a_read_that_fails_with_no_node_sets_no_watch) {
  auto& s = first();
  const auto missing = path("missing");
  const auto control = path("control");
  watch_log log;
  EXPECT_EQ(std::get<0>(await(s.async_get(missing, log.handler(1), tok))), errc::no_node);
  EXPECT_EQ(std::get<0>(await(s.async_get_children(missing, log.handler(2), tok))), errc::no_node);
  EXPECT_EQ(std::get<0>(await(s.async_exists(control, log.handler(3), tok))), errc::no_node);
  // The server agrees: no watch on `missing`, this session's exists-watch on `control`.
  EXPECT_TRUE(server_watchers(missing).empty());
  EXPECT_EQ(server_watchers(control), std::set<std::int64_t>{s.session_id()});

  auto& other = open();
  ASSERT_FALSE(std::get<0>(await(other.async_create(missing, "", {}, tok))));
  ASSERT_FALSE(std::get<0>(await(other.async_create(missing + "/child", "", {}, tok))));
  ASSERT_FALSE(std::get<0>(await(other.async_set(missing, "x", -1, tok))));
  ASSERT_FALSE(std::get<0>(await(other.async_create(control, "", {}, tok))));
  ASSERT_TRUE(log.wait_for(1));
  // The session sees all four changes, so any event they caused has been delivered.
  auto [ec, children, st] = await(s.async_get_children(missing, tok));
  ASSERT_FALSE(ec);
  ASSERT_EQ(children, std::vector<std::string>{"child"});
  ASSERT_FALSE(std::get<0>(await(s.async_exists(control, tok))));
  io_.drain();
  const auto items = log.items();
  ASSERT_EQ(items.size(), 1u) << "the failed get / get_children must not have left a watch";
  EXPECT_EQ(items[0].id, 3);
  EXPECT_EQ(items[0].event, (watch_event{event_type::created, control}));
}

TEST_F(zk_test, watch_event_is_delivered_before_the_data_it_reports) {
  auto& a = first();
  auto& b = open();
  const auto p = path("ordered");
  ASSERT_FALSE(std::get<0>(await(a.async_create(p, "0", {}, tok))));
  for (int round = 1; round <= 20; ++round) {
    struct order {
      std::atomic<int> next{1};
      std::atomic<int> watch_at{0};
      std::atomic<int> read_at{0};
    };
    auto o = std::make_shared<order>();
    ASSERT_FALSE(std::get<0>(await(a.async_get(
        p, [o](std::error_code ec, watch_event) { o->watch_at = ec ? -1 : o->next++; }, tok))));
    const auto value = std::to_string(round);
    ASSERT_FALSE(std::get<0>(await(b.async_set(p, value, -1, tok))));
    // Issued right after the set, without waiting for the event.
    std::promise<std::string> read;
    a.async_get(p, [o, &read](std::error_code ec, std::string data, zkr::stat) {
      o->read_at = o->next++;
      read.set_value(ec ? "error: " + ec.message() : data);
    });
    ASSERT_EQ(await(read.get_future()), value) << "the second read must see the new data";
    EXPECT_GT(o->watch_at.load(), 0) << "round " << round << ": the watch had not fired";
    EXPECT_LT(o->watch_at.load(), o->read_at.load()) << "round " << round;
  }
}

TEST_F(zk_test, watch_event_paths_are_full_paths) {
  auto& s = first();
  const auto mid = path("a");
  const auto leaf = mid + "/b";
  ASSERT_FALSE(std::get<0>(await(s.async_create(mid, "", {}, tok))));
  watch_log log;
  ASSERT_EQ(std::get<0>(await(s.async_exists(leaf, log.handler(1), tok))), errc::no_node);
  ASSERT_FALSE(std::get<0>(await(s.async_get_children(mid, log.handler(2), tok))));
  ASSERT_FALSE(std::get<0>(await(s.async_create(leaf, "", {}, tok))));
  ASSERT_TRUE(log.wait_for(2));
  for (const auto& r : log.items()) {
    EXPECT_FALSE(r.ec);
    EXPECT_EQ(r.event.path, r.id == 1 ? leaf : mid) << "watch " << r.id;
    EXPECT_EQ(r.event.type, r.id == 1 ? event_type::created : event_type::children_changed);
  }
}

TEST_F(zk_test, watch_closing_the_session_ends_each_watch_once_with_closing) {
  auto& s = open();
  const auto p = path("n");
  ASSERT_FALSE(std::get<0>(await(first().async_create(p, "", {}, tok))));
  watch_log log;
  ASSERT_FALSE(std::get<0>(await(s.async_exists(p, log.handler(1), tok))));
  ASSERT_FALSE(std::get<0>(await(s.async_get(p, log.handler(2), tok))));
  ASSERT_FALSE(std::get<0>(await(s.async_get_children(p, log.handler(3), tok))));
  ASSERT_EQ(std::get<0>(await(s.async_exists(path("none"), log.handler(4), tok))), errc::no_node);
  ASSERT_FALSE(std::get<0>(await(s.async_close(tok))));
  ASSERT_TRUE(log.wait_for(4));
  // Changes after the close reach no watch (a second call of a handler fails the test).
  ASSERT_FALSE(std::get<0>(await(first().async_create(path("none"), "", {}, tok))));
  ASSERT_FALSE(std::get<0>(await(first().async_create(p + "/c", "", {}, tok))));
  ASSERT_FALSE(std::get<0>(await(first().async_set(p, "x", -1, tok))));
  io_.drain();
  const auto items = log.items();
  ASSERT_EQ(items.size(), 4u);
  std::set<int> ids;
  for (const auto& r : items) {
    EXPECT_EQ(r.ec, errc::closing) << "watch " << r.id << ": " << r.ec.message();
    ids.insert(r.id);
  }
  EXPECT_EQ(ids, (std::set<int>{1, 2, 3, 4}));
}

TEST_F(zk_test, watch_a_hundred_watches_each_fire_exactly_once) {
  auto& s = first();
  auto& other = open();
  constexpr int n = 100;
  std::vector<op> creates, sets;
  for (int i = 0; i < n; ++i) {
    creates.push_back(op::make_create(path("n" + std::to_string(i)), ""));
    sets.push_back(op::make_set(path("n" + std::to_string(i)), "x"));
  }
  ASSERT_FALSE(std::get<0>(await(s.async_multi(creates, tok))));
  watch_log log;
  std::vector<std::future<std::tuple<std::error_code, std::string, zkr::stat>>> reads;
  for (int i = 0; i < n; ++i) reads.push_back(s.async_get(path("n" + std::to_string(i)), log.handler(i), tok));
  for (auto& f : reads) ASSERT_FALSE(std::get<0>(await(std::move(f))));
  ASSERT_FALSE(std::get<0>(await(other.async_multi(sets, tok))));
  ASSERT_TRUE(log.wait_for(n));
  ASSERT_FALSE(std::get<0>(await(other.async_multi(sets, tok))));  // fires nothing more
  auto [ec, data, st] = await(s.async_get(path("n99"), tok));
  ASSERT_EQ(st.version, 2);
  io_.drain();
  const auto items = log.items();
  ASSERT_EQ(items.size(), static_cast<std::size_t>(n));
  std::set<int> ids;
  for (const auto& r : items) {
    EXPECT_FALSE(r.ec);
    EXPECT_EQ(r.event, (watch_event{event_type::data_changed, path("n" + std::to_string(r.id))}));
    ids.insert(r.id);
  }
  EXPECT_EQ(ids.size(), static_cast<std::size_t>(n));
}

}  // namespace
}  // namespace zkr::test
