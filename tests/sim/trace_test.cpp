// Tests of zkr::sim::trace: off means free, JSON escaping and line format, the timeline's
// columns, determinism of hash(), and several outputs at once.
#include <gtest/gtest.h>

#include <zkr/sim/trace.hpp>

#include <chrono>
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace {

using zkr::sim::clock_time;
using zkr::sim::trace;
using zkr::sim::trace_kind;
using namespace std::chrono_literals;

clock_time at(std::chrono::nanoseconds d) { return clock_time{} + d; }

// The JSON string that `s` escapes to, via a one-field event.
std::string escaped(std::string_view s) {
  trace t(trace::options{.collect_json = true});
  t.record(at(0ns), trace_kind::note, "a", [&](trace::fields& f) { f.add("v", s); });
  const std::string& line = t.json_text();
  const std::string prefix = R"({"t_us":0,"kind":"note","actor":"a","v":)";
  EXPECT_EQ(line.substr(0, prefix.size()), prefix);
  EXPECT_EQ(line.substr(line.size() - 2), "}\n");
  return line.substr(prefix.size(), line.size() - prefix.size() - 2);
}

TEST(trace, disabled_by_default_and_never_calls_the_builder) {
  trace t;
  EXPECT_FALSE(t.enabled());
  int calls = 0;
  std::string path = "/a/b";
  for (int i = 0; i < 100; ++i) {
    t.record(at(1s), trace_kind::request, "client-1", [&](trace::fields& f) {
      ++calls;
      f.add("path", path + "/expensive");
    });
    t.record(at(1s), trace_kind::note, "client-1");
  }
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(t.events(), 0u);
  EXPECT_TRUE(t.json_text().empty());
  EXPECT_EQ(t.hash(), trace{}.hash());
  // Options with no output also give a disabled trace.
  trace none{trace::options{}};
  EXPECT_FALSE(none.enabled());
}

TEST(trace, enabled_calls_the_builder_exactly_once_per_event) {
  trace t(trace::options{.hash_only = true});
  EXPECT_TRUE(t.enabled());
  int calls = 0;
  t.record(at(1s), trace_kind::request, "client-1", [&](trace::fields& f) {
    ++calls;
    f.add("n", 1);
    EXPECT_EQ(f.size(), 1u);
  });
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(t.events(), 1u);
  EXPECT_NE(t.hash(), trace{}.hash());
  EXPECT_TRUE(t.json_text().empty());  // hash_only keeps nothing
}

TEST(trace, exact_json_line) {
  std::ostringstream out;
  trace t(trace::options{.json = &out, .collect_json = true});
  const std::string path = "/app/lock";
  t.record(at(1'250'000'999ns), trace_kind::request, "client-2", [&](trace::fields& f) {
    f.add("op", "create");
    f.add("path", path);
    f.add("xid", std::int32_t{-7});
    f.add("zxid", std::uint64_t{18446744073709551615ULL});
    f.add("ephemeral", true);
    f.add("sequential", false);
  });
  const std::string expected =
      R"({"t_us":1250000,"kind":"request","actor":"client-2","op":"create","path":"/app/lock",)"
      R"("xid":-7,"zxid":18446744073709551615,"ephemeral":true,"sequential":false})"
      "\n";
  EXPECT_EQ(out.str(), expected);
  EXPECT_EQ(t.json_text(), expected);

  t.record(at(2s), trace_kind::election, "server-3");
  EXPECT_EQ(out.str(), expected + R"({"t_us":2000000,"kind":"election","actor":"server-3"})" "\n");
}

TEST(trace, kind_names) {
  EXPECT_EQ(to_string(trace_kind::request), "request");
  EXPECT_EQ(to_string(trace_kind::response), "response");
  EXPECT_EQ(to_string(trace_kind::watch), "watch");
  EXPECT_EQ(to_string(trace_kind::session), "session");
  EXPECT_EQ(to_string(trace_kind::election), "election");
  EXPECT_EQ(to_string(trace_kind::fault), "fault");
  EXPECT_EQ(to_string(trace_kind::note), "note");
  EXPECT_EQ(to_string(static_cast<trace_kind>(200)), "unknown");
  static_assert(std::is_same_v<trace::kind, trace_kind>);
}

TEST(trace, json_escaping_table) {
  struct row {
    std::string in;
    std::string out;
  };
  const row rows[] = {
      {"", R"("")"},
      {"plain /path-1_x", R"("plain /path-1_x")"},
      {"a\"b", R"("a\"b")"},
      {"a\\b", R"("a\\b")"},
      {"\n\t\r", R"("\u000a\u0009\u000d")"},
      {std::string("\0x", 2), R"("\u0000x")"},
      {"\x1f\x7f", "\"\\u001f\x7f\""},            // DEL passes through
      {"caf\xc3\xa9", "\"caf\xc3\xa9\""},          // valid 2-byte UTF-8 passes through
      {"\xe2\x82\xac", "\"\xe2\x82\xac\""},        // U+20AC, 3 bytes
      {"\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\""},  // U+1F600, 4 bytes
      {"\xef\xbf\xbf", "\"\xef\xbf\xbf\""},        // U+FFFF is well-formed
      {"\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\""},  // U+10FFFF, the last code point
      {"caf\xe9", R"("caf\u00e9")"},               // Latin-1 byte: escaped
      {"\x80", R"("\u0080")"},                     // lone continuation byte
      {"\xc3", R"("\u00c3")"},                     // truncated sequence at the end
      {"\xc3(", R"("\u00c3(")"},                   // bad continuation: resume at next byte
      {"\xc0\xaf", R"("\u00c0\u00af")"},           // overlong '/'
      {"\xe0\x80\xaf", R"("\u00e0\u0080\u00af")"},  // overlong 3-byte
      {"\xed\xa0\x80", R"("\u00ed\u00a0\u0080")"},  // surrogate U+D800
      {"\xf4\x90\x80\x80", R"("\u00f4\u0090\u0080\u0080")"},  // above U+10FFFF
      {"\xff\xfe", R"("\u00ff\u00fe")"},
      {"\xe2\x82", R"("\u00e2\u0082")"},           // truncated 3-byte sequence
  };
  for (const row& r : rows) {
    EXPECT_EQ(escaped(r.in), r.out) << "input bytes: " << ::testing::PrintToString(r.in);
  }
}

TEST(trace, keys_and_actor_are_escaped_too) {
  trace t(trace::options{.collect_json = true});
  t.record(at(0ns), trace_kind::note, "odd \"actor\"", [](trace::fields& f) { f.add("k\n", 1); });
  EXPECT_EQ(t.json_text(), R"({"t_us":0,"kind":"note","actor":"odd \"actor\"","k\u000a":1})" "\n");
}

TEST(trace, bad_keys_throw_and_record_nothing) {
  std::ostringstream json;
  std::ostringstream timeline;
  trace t(trace::options{.json = &json, .collect_json = true, .timeline = &timeline});
  for (const char* key : {"t_us", "kind", "actor", ""}) {
    EXPECT_THROW(t.record(at(1s), trace_kind::note, "x", [&](trace::fields& f) { f.add(key, 1); }),
                 std::invalid_argument)
        << key;
  }
  EXPECT_THROW(t.record(at(1s), trace_kind::note, "x",
                        [](trace::fields& f) {
                          f.add("a", 1);
                          f.add("a", 2);
                        }),
               std::invalid_argument);
  EXPECT_THROW(t.record(at(1s), trace_kind::note, "x", [](trace::fields&) { throw std::runtime_error("builder"); }),
               std::runtime_error);
  EXPECT_EQ(t.events(), 0u);
  EXPECT_EQ(t.hash(), trace{}.hash());
  EXPECT_TRUE(json.str().empty());
  EXPECT_TRUE(timeline.str().empty());
  EXPECT_TRUE(t.json_text().empty());
  // Still usable afterwards, with no leftovers from the failed events.
  t.record(at(1s), trace_kind::note, "x", [](trace::fields& f) { f.add("a", 1); });
  EXPECT_EQ(json.str(), R"({"t_us":1000000,"kind":"note","actor":"x","a":1})" "\n");
  EXPECT_EQ(timeline.str(), "   1.000000  x          note      a=1\n");
}

TEST(trace, timeline_format) {
  std::ostringstream out;
  trace t(trace::options{.timeline = &out});
  t.record(at(1250ms), trace_kind::session, "client-2", [](trace::fields& f) {
    f.add("state", "suspended");
    f.add("reason", "connection lost");
    f.add("timeout_ms", 4000);
  });
  t.record(at(0ns), trace_kind::election, "server-1", [](trace::fields& f) { f.add("leader", true); });
  t.record(at(999ns), trace_kind::note, "world");
  t.record(at(12345s + 678901us), trace_kind::fault, "a-very-long-actor-name",
           [](trace::fields& f) {
             f.add("what", "a=b");
             f.add("empty", "");
             f.add("line", "x\ny");
           });
  t.record(at(-1us), trace_kind::response, "server-2", [](trace::fields& f) { f.add("rc", -101); });
  EXPECT_EQ(out.str(),
            "   1.250000  client-2   session   state=suspended reason=\"connection lost\" timeout_ms=4000\n"
            "   0.000000  server-1   election  leader=true\n"
            "   0.000000  world      note\n"
            "12345.678901  a-very-long-actor-name fault     what=\"a=b\" empty=\"\" line=\"x\\u000ay\"\n"
            "  -0.000001  server-2   response  rc=-101\n");
}

TEST(trace, micros_rounds_down) {
  EXPECT_EQ(trace::micros(at(0ns)), 0);
  EXPECT_EQ(trace::micros(at(1999ns)), 1);
  EXPECT_EQ(trace::micros(at(-1ns)), -1);
  EXPECT_EQ(trace::micros(at(3600s)), 3'600'000'000);
}

void run(trace& t, std::string_view last_value) {
  t.record(at(1ms), trace_kind::request, "client-1", [](trace::fields& f) {
    f.add("op", "get_data");
    f.add("path", "/a");
  });
  t.record(at(2ms), trace_kind::response, "client-1", [&](trace::fields& f) {
    f.add("rc", 0);
    f.add("data", last_value);
  });
}

TEST(trace, same_events_same_hash_different_events_different_hash) {
  trace a(trace::options{.collect_json = true});
  trace b(trace::options{.hash_only = true});
  trace c(trace::options{.hash_only = true});
  run(a, "v1");
  run(b, "v1");
  run(c, "v2");
  EXPECT_EQ(a.hash(), b.hash());
  EXPECT_NE(a.hash(), c.hash());
  EXPECT_EQ(a.events(), 2u);

  // hash() is FNV-1a 64 over the exact JSON bytes.
  std::uint64_t h = 14695981039346656037ULL;
  for (const char ch : a.json_text()) {
    h ^= static_cast<unsigned char>(ch);
    h *= 1099511628211ULL;
  }
  EXPECT_EQ(a.hash(), h);

  // FNV-1a 64 reference value: "a" -> 0xaf63dc4c8601ec8c.
  trace empty;
  EXPECT_EQ(empty.hash(), 14695981039346656037ULL);
  EXPECT_EQ(zkr::sim::detail::trace_fmt::fnv1a(14695981039346656037ULL, "a"), 0xaf63dc4c8601ec8cULL);

  // Order, time and kind all count.
  trace d(trace::options{.hash_only = true});
  trace e(trace::options{.hash_only = true});
  d.record(at(1ms), trace_kind::note, "x");
  e.record(at(1ms + 1us), trace_kind::note, "x");
  EXPECT_NE(d.hash(), e.hash());
  trace g(trace::options{.hash_only = true});
  g.record(at(1ms), trace_kind::fault, "x");
  EXPECT_NE(d.hash(), g.hash());
  // Sub-microsecond differences are below the trace's resolution.
  trace i(trace::options{.hash_only = true});
  i.record(at(1ms + 999ns), trace_kind::note, "x");
  EXPECT_EQ(d.hash(), i.hash());
}

TEST(trace, both_sinks_at_once_agree) {
  std::ostringstream json;
  std::ostringstream timeline;
  trace both(trace::options{.json = &json, .collect_json = true, .timeline = &timeline});
  trace json_only(trace::options{.json = nullptr, .collect_json = true});
  std::ostringstream timeline_alone;
  trace timeline_only(trace::options{.timeline = &timeline_alone});
  int calls = 0;
  for (trace* t : {&both, &json_only, &timeline_only}) {
    run(*t, "v1");
    t->record(at(3ms), trace_kind::watch, "client-1", [&](trace::fields& f) {
      ++calls;
      f.add("type", "data_changed");
      f.add("path", "/a");
    });
  }
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(json.str(), both.json_text());
  EXPECT_EQ(json.str(), json_only.json_text());
  EXPECT_EQ(timeline.str(), timeline_alone.str());
  EXPECT_EQ(both.hash(), json_only.hash());
  EXPECT_EQ(both.hash(), timeline_only.hash());  // the hash does not depend on the outputs
  EXPECT_EQ(json.str(),
            R"({"t_us":1000,"kind":"request","actor":"client-1","op":"get_data","path":"/a"})" "\n"
            R"({"t_us":2000,"kind":"response","actor":"client-1","rc":0,"data":"v1"})" "\n"
            R"({"t_us":3000,"kind":"watch","actor":"client-1","type":"data_changed","path":"/a"})" "\n");
  EXPECT_EQ(timeline.str(),
            "   0.001000  client-1   request   op=get_data path=/a\n"
            "   0.002000  client-1   response  rc=0 data=v1\n"
            "   0.003000  client-1   watch     type=data_changed path=/a\n");
}

TEST(trace, is_move_only_and_moves_keep_state) {
  static_assert(!std::is_copy_constructible_v<trace>);
  static_assert(std::is_nothrow_move_constructible_v<trace>);
  trace a(trace::options{.collect_json = true});
  a.record(at(1ms), trace_kind::note, "x");
  const auto h = a.hash();
  trace b = std::move(a);
  EXPECT_TRUE(b.enabled());
  EXPECT_EQ(b.hash(), h);
  EXPECT_EQ(b.events(), 1u);
  b.record(at(2ms), trace_kind::note, "x");
  EXPECT_EQ(b.events(), 2u);
}

}  // namespace
