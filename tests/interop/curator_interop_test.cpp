// tests/interop/curator_interop_test.cpp: zkr's recipes against Apache Curator 5.4 itself.
//
// Goal: show that zkr's recipes that have a Curator twin share their znodes with Curator for
// real: a zkr process and a Java process using Curator (Debian's jars) on the same paths
// exclude each other (mutex), elect one leader and hand leadership over both ways (leader
// latch), see each other's service instances with their payloads (service discovery), and
// add up to exact counts (atomic counter).
//
// Method: one shared standalone ZooKeeper server (tests/support/zk_server.hpp) and a fresh
// root per test; the Java side is tests/interop/CuratorPeer.java, compiled at test time by
// tests/interop/curator-peer into the build dir and run as a child process whose stdout lines
// the test follows (tests/interop/peer.hpp). Both sides act at once on the same path; the
// checks are on what both wrote (a shared log, the znodes, the counts), never on timings.
// If Java or the Curator jars are missing, every test FAILS with the install command.
//
// Cases exist for the recipe headers present when CMake configured the build
// (ZKR_INTEROP_<RECIPE> definitions, see tests/CMakeLists.txt).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "interop/peer.hpp"
#include "zookeeper/fixture.hpp"

#ifdef ZKR_INTEROP_MUTEX
#include <zkr/recipes/mutex.hpp>
#endif
#ifdef ZKR_INTEROP_LEADER_LATCH
#include <zkr/recipes/leader_latch.hpp>
#endif
#ifdef ZKR_INTEROP_ATOMIC_COUNTER
#include <zkr/recipes/atomic_counter.hpp>
#endif
#ifdef ZKR_INTEROP_SERVICE_DISCOVERY
#include <zkr/detail/json.hpp>
#include <zkr/recipes/service_discovery.hpp>
#endif

namespace zkr::test {
namespace {

using interop::peer;

// Whether `name` is a Curator protected sequential name: "_c_" + a lower-case UUID + "-" +
// `marker` + 10 digits, e.g. "_c_0e0b4add-c1e4-4b1d-9a91-26250101587d-latch-0000000000".
// (No std::regex: GCC 12 warns inside <regex> at -O1 with sanitizers, and the build uses -Werror.)
[[maybe_unused]] bool is_protected_name(std::string_view name, std::string_view marker) {
  constexpr std::string_view uuid_shape = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
  const auto is_hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); };
  const auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  if (name.size() != 3 + uuid_shape.size() + 1 + marker.size() + 10 || name.substr(0, 3) != "_c_") return false;
  for (std::size_t i = 0; i < uuid_shape.size(); ++i) {
    const char c = name[3 + i];
    if (uuid_shape[i] == '-' ? c != '-' : !is_hex(c)) return false;
  }
  std::string_view rest = name.substr(3 + uuid_shape.size());
  if (rest.substr(0, 1) != "-" || rest.substr(1, marker.size()) != marker) return false;
  rest.remove_prefix(1 + marker.size());
  return std::all_of(rest.begin(), rest.end(), is_digit);
}

class curator_interop : public zk_test {
 protected:
  void SetUp() override {
    zk_test::SetUp();
    if (HasFatalFailure()) return;
    const std::string& why = interop::peer_toolchain_error();
    ASSERT_TRUE(why.empty()) << why;
  }

  /// Starts the Java peer with `args` (see CuratorPeer.java).
  static std::unique_ptr<peer> java(std::vector<std::string> args) { return peer::start(std::move(args)); }

  /// The children of `p`, or an empty list if it is missing.
  std::vector<std::string> children(const std::string& p) {
    auto [ec, kids, st] = await(first().async_get_children(p, tok));
    EXPECT_TRUE(!ec || ec == errc::no_node) << ec.message();
    std::sort(kids.begin(), kids.end());
    return kids;
  }
  zkr::stat stat_of(const std::string& p) {
    auto [ec, st] = await(first().async_exists(p, tok));
    EXPECT_FALSE(ec) << p << ": " << ec.message();
    return st;
  }
};

#ifdef ZKR_INTEROP_MUTEX
// =============================================================================================
// Mutex vs InterProcessMutex
// =============================================================================================

/// One hold as the shared log shows it.
struct hold {
  std::string who;
  std::int64_t token = 0;
};

/// Checks the shared log: every line "enter|exit cpp|java <token>", strictly alternating
/// enter/exit with the same holder and token (no overlap), tokens strictly increasing from
/// hold to hold. Fills `holds` in order.
::testing::AssertionResult check_lock_log(const std::string& text, std::vector<hold>& holds) {
  std::istringstream in(text);
  std::string line;
  bool inside = false;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    std::istringstream fields(line);
    std::string what;
    std::string who;
    std::string number;
    std::string extra;
    fields >> what >> who >> number >> extra;
    const bool well_formed = (what == "enter" || what == "exit") && (who == "cpp" || who == "java") &&
                             !number.empty() && number.size() <= 18 && extra.empty() &&
                             std::all_of(number.begin(), number.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
                             line == what + " " + who + " " + number;
    if (!well_formed) {
      return ::testing::AssertionFailure() << "line " << n << " malformed: '" << line << "'\n" << text;
    }
    const bool enter = what == "enter";
    const std::int64_t token = std::stoll(number);
    if (enter) {
      if (inside) {
        return ::testing::AssertionFailure() << "line " << n << ": " << who << " entered while " << holds.back().who
                                             << " held (token " << holds.back().token << ")\n" << text;
      }
      if (!holds.empty() && token <= holds.back().token) {
        return ::testing::AssertionFailure() << "line " << n << ": token " << token << " of " << who
                                             << " does not grow past " << holds.back().token << "\n" << text;
      }
      holds.push_back({who, token});
      inside = true;
    } else {
      if (!inside || holds.back().who != who || holds.back().token != token) {
        return ::testing::AssertionFailure() << "line " << n << ": exit without its enter: '" << line << "'\n" << text;
      }
      inside = false;
    }
  }
  if (inside) return ::testing::AssertionFailure() << "the log ends inside a hold\n" << text;
  return ::testing::AssertionSuccess();
}

// Method: we take the lock first and start Curator, which queues behind us (we wait until its
// node shows up: a certain C++ -> Java hand-off); then both sides run their rounds at once. Each
// hold appends "enter <who> <token>" and "exit <who> <token>" to one log (O_APPEND, one write
// per line), the token being the lock node's czxid (ours: the mutex's fencing token; Curator's:
// the stat of its getLockPath()). The log must show no overlap, all rounds of both, growing
// tokens (holders in node-creation order, Curator's and ours alike), and a hand-off each way.
TEST_F(curator_interop, mutex_and_interprocessmutex_exclude_each_other) {
  constexpr int rounds = 12;
  const std::string lock = path("lock");
  const auto log_path = interop::scratch_file("mutex.log");
  const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << log_path;
  auto append = [fd](const std::string& what, std::int64_t token) {
    const std::string line = what + " cpp " + std::to_string(token) + "\n";
    EXPECT_EQ(::write(fd, line.data(), line.size()), static_cast<ssize_t>(line.size()));
  };

  auto& s = open();
  zkr::recipes::mutex<zkr::zookeeper::session> m(s, lock);
  auto [ec0, t0] = await(m.async_acquire(tok));
  ASSERT_FALSE(ec0) << ec0.message();
  EXPECT_EQ(m.fencing_token(), t0);

  auto j = java({"mutex", connect_, lock, std::to_string(rounds), log_path.string(), "5"});
  j->expect("ready");
  std::vector<std::string> kids;
  ASSERT_TRUE(eventually([&] { return (kids = children(lock)).size() == 2; }, 60s))
      << "Curator's contender never queued; children: " << ::testing::PrintToString(kids) << "\n" << j->diagnostics();

  // The layout: both nodes are Curator's protected "lock-" names, ours is the one with our
  // token and session, and Curator's has the higher sequence number (it queued behind us).
  std::string ours;
  std::string theirs;
  for (const auto& k : kids) {
    EXPECT_TRUE(is_protected_name(k, "lock-")) << k;
    const auto st = stat_of(lock + "/" + k);
    if (st.czxid == t0) {
      EXPECT_EQ(st.ephemeral_owner, s.session_id());
      ours = k;
    } else {
      EXPECT_NE(st.ephemeral_owner, s.session_id());
      EXPECT_GT(st.czxid, t0);
      theirs = k;
    }
  }
  ASSERT_FALSE(ours.empty()) << "no child has our token " << t0 << ": " << ::testing::PrintToString(kids);
  ASSERT_FALSE(theirs.empty()) << ::testing::PrintToString(kids);
  EXPECT_LT(ours.substr(ours.size() - 10), theirs.substr(theirs.size() - 10));

  append("enter", t0);
  std::this_thread::sleep_for(5ms);
  append("exit", t0);
  ASSERT_FALSE(std::get<0>(await(m.async_release(tok))));
  for (int i = 1; i < rounds; ++i) {
    auto [ec, t] = await(m.async_acquire(tok), 120s);
    ASSERT_FALSE(ec) << "round " << i << ": " << ec.message();
    append("enter", t);
    std::this_thread::sleep_for(5ms);
    append("exit", t);
    ASSERT_FALSE(std::get<0>(await(m.async_release(tok))));
  }
  EXPECT_EQ(j->expect("done", 120s), "done " + std::to_string(rounds));
  EXPECT_EQ(j->wait_exit(), 0) << j->diagnostics();
  ::close(fd);

  std::vector<hold> holds;
  const std::string text = interop::read_file(log_path);
  ASSERT_TRUE(check_lock_log(text, holds));
  const auto count = [&](const char* who) {
    return std::count_if(holds.begin(), holds.end(), [&](const hold& h) { return h.who == who; });
  };
  EXPECT_EQ(count("cpp"), rounds) << text;
  EXPECT_EQ(count("java"), rounds) << text;
  ASSERT_GE(holds.size(), 2u);
  EXPECT_EQ(holds[0].who, "cpp") << text;
  EXPECT_EQ(holds[1].who, "java") << "Curator was queued behind our first hold\n" << text;
  // Our second node was created after Curator's first, so a Java -> C++ hand-off follows.
  bool java_to_cpp = false;
  for (std::size_t i = 1; i < holds.size(); ++i) java_to_cpp |= holds[i - 1].who == "java" && holds[i].who == "cpp";
  EXPECT_TRUE(java_to_cpp) << text;
  // Curator's tokens (czxid of its getLockPath()) are the ones it printed.
  for (const auto& h : holds) {
    if (h.who == "java") {
      EXPECT_TRUE(j->saw("acquired " + std::to_string(h.token))) << h.token;
    }
  }
  EXPECT_TRUE(children(lock).empty()) << "lock nodes left behind";
  std::error_code ec;
  if (!HasFailure() && std::getenv("ZKR_KEEP_TEST_RUNS") == nullptr) std::filesystem::remove(log_path, ec);
}
#endif  // ZKR_INTEROP_MUTEX

#ifdef ZKR_INTEROP_LEADER_LATCH
// =============================================================================================
// Leader latch vs LeaderLatch
// =============================================================================================

// Method: our latch "cpp-1" leads first; Curator's "java-1" joins and must see cpp-1 as leader
// (it reads our node's data as the participant id) and follow; we close and Curator must take
// over; a second latch of ours "cpp-2" joins, sees java-1 lead and follows; Curator closes and
// cpp-2 must take over with a higher fencing token. The nodes are Curator's "latch-" names.
TEST_F(curator_interop, leader_latch_and_curator_leaderlatch_elect_one_and_hand_over) {
  using latch_t = zkr::recipes::leader_latch<zkr::zookeeper::session>;
  const std::string lp = path("election");
  auto& s = open();
  auto participants = [](latch_t& l) {
    auto [ec, ps] = await(l.async_get_participants(tok));
    EXPECT_FALSE(ec) << ec.message();
    std::string out;
    for (const auto& p : ps) out += (out.empty() ? "" : ",") + p.id + (p.is_leader ? ":L" : ":F");
    return out;
  };

  latch_t first_latch(s, lp, {.id = "cpp-1"});
  first_latch.start();
  auto [ec1, t1] = await(first_latch.async_await_leadership(30s, tok));
  ASSERT_FALSE(ec1) << ec1.message();

  auto j = java({"latch", connect_, lp, "java-1", "120"});
  j->expect("ready");
  std::string seen;
  ASSERT_TRUE(eventually([&] { return (seen = participants(first_latch)) == "cpp-1:L,java-1:F"; }, 60s))
      << seen << "\n" << j->diagnostics();
  for (const auto& k : children(lp)) {
    EXPECT_TRUE(is_protected_name(k, "latch-")) << k;
    auto [ec, data, st] = await(s.async_get(lp + "/" + k, tok));
    EXPECT_TRUE(data == "cpp-1" || data == "java-1") << "node data (participant id): '" << data << "'";
  }
  // Curator sees the same election: our node's data is the id it reports.
  j->send("leader?");
  EXPECT_EQ(j->expect("leader-is"), "leader-is cpp-1");
  j->send("participants?");
  EXPECT_EQ(j->expect("participants"), "participants cpp-1:L,java-1:F");
  EXPECT_FALSE(j->saw("leader")) << j->diagnostics();
  EXPECT_TRUE(first_latch.has_leadership());

  // Hand-over C++ -> Java.
  ASSERT_FALSE(std::get<0>(await(first_latch.async_close(tok))));
  EXPECT_FALSE(first_latch.has_leadership());
  j->expect("leader");

  // Hand-over Java -> C++.
  latch_t second_latch(s, lp, {.id = "cpp-2"});
  second_latch.start();
  ASSERT_TRUE(eventually([&] { return (seen = participants(second_latch)) == "java-1:L,cpp-2:F"; }, 60s)) << seen;
  {
    auto [ec, leader] = await(second_latch.async_get_leader(tok));
    EXPECT_FALSE(ec);
    EXPECT_EQ(leader.id, "java-1");
  }
  j->send("leader?");
  EXPECT_EQ(j->expect("leader-is"), "leader-is java-1");
  EXPECT_FALSE(second_latch.has_leadership());
  j->send("close");
  j->expect("closed");
  auto [ec2, t2] = await(second_latch.async_await_leadership(30s, tok));
  ASSERT_FALSE(ec2) << ec2.message();
  EXPECT_GT(t2, t1);
  EXPECT_EQ(second_latch.fencing_token(), t2);
  EXPECT_EQ(j->wait_exit(), 0) << j->diagnostics();
  EXPECT_EQ(participants(second_latch), "cpp-2:L");
  ASSERT_FALSE(std::get<0>(await(second_latch.async_close(tok))));
  EXPECT_TRUE(children(lp).empty());
}
#endif  // ZKR_INTEROP_LEADER_LATCH


#ifdef ZKR_INTEROP_SERVICE_DISCOVERY
// =============================================================================================
// Service discovery vs ServiceDiscovery (JsonInstanceSerializer<Map>, Curator's default)
// =============================================================================================

json::value parse_json(std::string_view text) {
  auto r = json::parse(text);
  EXPECT_TRUE(r.ok()) << r.err.what() << ": " << text;
  return r.val;
}

/// What Curator listed: the `instance` lines (CuratorPeer's field summary) and the
/// `serialized` lines (JsonInstanceSerializer's bytes), by instance id.
struct curator_listing {
  std::map<std::string, json::value> instances;
  std::map<std::string, std::string> serialized;
  std::size_t count = 0;
};

/// Takes one listing (`instance`/`serialized` pairs, then `count`) from the peer's output.
curator_listing take_listing(peer& p) {
  curator_listing out;
  out.count = std::stoul(p.expect("count").substr(6));
  for (std::size_t i = 0; i < out.count; ++i) {
    auto v = parse_json(std::string_view(p.expect("instance")).substr(9));
    const auto* id = v.find("id");
    const std::string key = id != nullptr && id->is_string() ? *id->if_string() : "?";
    out.instances[key] = std::move(v);
    out.serialized[key] = p.expect("serialized").substr(11);
  }
  EXPECT_EQ(out.instances.size(), out.count) << p.diagnostics();
  return out;
}

// Method: we register "cpp-1" (an object payload with nested values, a uri spec), Curator
// registers "java-1" (an object payload with a long, a double, nested values). Curator lists
// both: every field of ours as Curator read it, and Curator's serializer must write our node's
// bytes again, byte for byte. We list both: Curator's instance with its payload, and our writer
// must write Curator's node's bytes again. Then each side unregisters, and the other side's
// listing shows it. (One JVM: the registering peer also answers `list`.)
TEST_F(curator_interop, service_discovery_and_curator_servicediscovery_see_each_other) {
  using namespace zkr::recipes;
  const std::string base = path("services");
  auto& s = open();
  service_discovery<zkr::zookeeper::session> d(s, base);

  service_instance me;
  me.name = "orders";
  me.id = "cpp-1";
  me.address = "127.0.0.1";
  me.port = 9090;
  me.payload = parse_json(R"({"zone":"eu-west-1a","weight":3,"tags":["a","b"],"nested":{"x":1.5,"ok":true}})");
  me.uri = uri_spec::parse("{scheme}://{address}:{port}/api");
  ASSERT_TRUE(me.uri.has_value());
  auto [ec, registered] = await(d.async_register(me, tok));
  ASSERT_FALSE(ec) << ec.message();
  const std::string our_path = instance_path(base, "orders", "cpp-1");
  auto [gec, our_bytes, our_stat] = await(s.async_get(our_path, tok));
  ASSERT_FALSE(gec) << our_path << ": " << gec.message();
  EXPECT_EQ(our_stat.ephemeral_owner, s.session_id());

  const std::string java_payload = R"({"zone":"us-east-1b","n":3,"big":12345678901,"f":0.25,"nested":{"a":[1,"x",null]}})";
  auto j = java({"discovery-register", connect_, base, "orders", "java-1", "8080", java_payload});
  j->expect("registered");

  // Curator's view of ours.
  j->send("list orders");
  {
    auto listing = take_listing(*j);
    ASSERT_EQ(listing.count, 2u);
    ASSERT_TRUE(listing.instances.count("cpp-1"));
    ASSERT_TRUE(listing.instances.count("java-1"));
    const auto& v = listing.instances["cpp-1"];
    EXPECT_EQ(*v.find("name"), json::value("orders"));
    EXPECT_EQ(*v.find("address"), json::value("127.0.0.1"));
    EXPECT_EQ(*v.find("port"), json::value(9090));
    EXPECT_EQ(*v.find("sslPort"), json::value());
    EXPECT_EQ(*v.find("payloadClass"), json::value("java.util.LinkedHashMap"));
    EXPECT_EQ(*v.find("payload"), me.payload) << v;
    EXPECT_EQ(*v.find("registrationTimeUTC"), json::value(registered.registration_time_utc));
    EXPECT_EQ(*v.find("serviceType"), json::value("DYNAMIC"));
    EXPECT_EQ(*v.find("enabled"), json::value(true));
    EXPECT_EQ(*v.find("uri"), json::value("http://127.0.0.1:9090/api"));
    EXPECT_EQ(listing.serialized["cpp-1"], our_bytes) << "Curator re-serialises our node differently";
  }

  // Our view of theirs.
  {
    auto [qec, found] = await(d.async_query_for_instances("orders", tok));
    ASSERT_FALSE(qec) << qec.message();
    EXPECT_TRUE(found.unreadable.empty()) << found.unreadable.front().id << ": " << found.unreadable.front().error;
    ASSERT_EQ(found.instances.size(), 2u);
    EXPECT_EQ(found.instances[0].id, "cpp-1");
    // Ours reads back as registered (the payload's class, left implicit, now named).
    EXPECT_EQ(found.instances[0].payload_class, "java.util.LinkedHashMap");
    EXPECT_EQ(to_json(found.instances[0]).text, our_bytes);
    const service_instance& theirs = found.instances[1];
    EXPECT_EQ(theirs.id, "java-1");
    EXPECT_EQ(theirs.name, "orders");
    EXPECT_EQ(theirs.address, std::optional<std::string>("127.0.0.1"));
    EXPECT_EQ(theirs.port, std::optional<std::int32_t>(8080));
    EXPECT_EQ(theirs.ssl_port, std::nullopt);
    EXPECT_EQ(theirs.payload, parse_json(java_payload)) << theirs.payload;
    EXPECT_EQ(theirs.payload_class, "java.util.LinkedHashMap");
    EXPECT_EQ(theirs.type, std::optional<service_type>(service_type::dynamic));
    EXPECT_TRUE(theirs.enabled);
    EXPECT_GT(theirs.registration_time_utc, 0);
    EXPECT_EQ(theirs.build_uri(), "http://127.0.0.1:8080");

    // Our writer writes Curator's bytes again, byte for byte.
    auto [jec, their_bytes, their_stat] = await(s.async_get(instance_path(base, "orders", "java-1"), tok));
    ASSERT_FALSE(jec);
    EXPECT_NE(their_stat.ephemeral_owner, 0);
    EXPECT_NE(their_stat.ephemeral_owner, s.session_id());
    auto again = to_json(theirs);
    ASSERT_TRUE(again.ok()) << again.error;
    EXPECT_EQ(again.text, their_bytes);

    auto [iec, one] = await(d.async_query_for_instance("orders", "java-1", tok));
    EXPECT_FALSE(iec) << iec.message();
    EXPECT_EQ(one, theirs);
  }

  // We unregister: gone for Curator. Curator unregisters: gone for us.
  ASSERT_FALSE(std::get<0>(await(d.async_unregister("orders", "cpp-1", tok))));
  j->send("list orders");
  {
    auto listing = take_listing(*j);
    EXPECT_EQ(listing.count, 1u);
    EXPECT_TRUE(listing.instances.count("java-1"));
  }
  j->send("close");
  j->expect("unregistered");
  EXPECT_EQ(j->wait_exit(), 0) << j->diagnostics();
  {
    auto [qec, found] = await(d.async_query_for_instances("orders", tok));
    ASSERT_FALSE(qec);
    EXPECT_TRUE(found.instances.empty());
  }
  ASSERT_FALSE(std::get<0>(await(d.async_close(tok))));
}
#endif  // ZKR_INTEROP_SERVICE_DISCOVERY


#ifdef ZKR_INTEROP_ATOMIC_COUNTER
// =============================================================================================
// Atomic counter vs DistributedAtomicLong
// =============================================================================================

// Method: the counter node does not exist yet (nor its parent), so both sides race to create it.
// Curator (RetryNTimes(1000, 1)) and we (retry_n_times{1000, 1 ms}, four increments in flight
// at a time) increment at once. Every acknowledged increment must count exactly once: the value
// read by us, by Curator and from the raw bytes (8 bytes, big-endian) is the sum of both sides'
// acknowledged increments, and our acknowledged post-values are all distinct.
TEST_F(curator_interop, atomic_counter_and_distributedatomiclong_sum_exactly) {
  using namespace zkr::recipes;
  constexpr int java_n = 150;
  constexpr int cpp_n = 150;
  constexpr int in_flight = 4;
  const std::string cp = path("counters/hits");
  auto& s = open();
  atomic_counter<zkr::zookeeper::session> c(s, cp, {.retry = zkr::retry_n_times{.max_retries = 1000, .delay = 1ms}});

  auto j = java({"counter", connect_, cp, std::to_string(java_n)});
  j->expect("ready");
  std::int64_t acked = 0;
  int retried = 0;
  std::set<std::int64_t> post_values;
  for (int started = 0; started < cpp_n;) {
    std::vector<std::future<std::tuple<std::error_code, atomic_result>>> batch;
    for (int k = 0; k < in_flight && started < cpp_n; ++k, ++started) batch.push_back(c.async_increment(tok));
    for (auto& f : batch) {
      auto [ec, r] = await(std::move(f));
      // connection_loss (outcome unknown) would make the exact sum unknowable: fail loudly.
      ASSERT_FALSE(ec) << ec.message();
      ASSERT_TRUE(r.succeeded);
      EXPECT_EQ(r.post_value, r.pre_value + 1);
      EXPECT_TRUE(post_values.insert(r.post_value).second) << "two increments ended at " << r.post_value;
      ++acked;
      if (r.stats.optimistic_tries > 1) ++retried;
    }
  }
  const std::string ack_line = j->expect("acknowledged", 120s);
  const std::int64_t java_acked = std::stoll(ack_line.substr(13));
  EXPECT_EQ(java_acked, java_n);
  const std::int64_t total = acked + java_acked;
  EXPECT_LE(*post_values.rbegin(), total);

  auto [gec, ours] = await(c.async_get(tok));
  ASSERT_FALSE(gec) << gec.message();
  EXPECT_EQ(ours, total);
  j->send("get");
  EXPECT_EQ(j->expect("value"), "value " + std::to_string(total));
  auto [rec, raw, st] = await(s.async_get(cp, tok));
  ASSERT_FALSE(rec) << rec.message();
  EXPECT_EQ(raw.size(), 8u);
  EXPECT_EQ(raw, encode_counter_value(total));
  EXPECT_EQ(st.ephemeral_owner, 0);  // a persistent node
  j->send("close");
  EXPECT_EQ(j->wait_exit(), 0) << j->diagnostics();
  // How often our increments met a conflict (informative: contention depends on timing).
  RecordProperty("cpp_increments_retried", retried);
}
#endif  // ZKR_INTEROP_ATOMIC_COUNTER

}  // namespace
}  // namespace zkr::test
