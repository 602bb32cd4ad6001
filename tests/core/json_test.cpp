// Goal: zkr/detail/json.hpp reads exactly RFC 8259 JSON (and refuses everything else with an
// error naming the byte offset, never a crash), and writes exactly the bytes Jackson 2.14
// writes for the same value.
// Method: table-driven cases for every rule of the grammar and of the writer; the expected
// writer bytes come from running Jackson 2.14 (Debian's jars, ObjectMapper.writeValueAsBytes
// on OpenJDK 17); a seeded fuzz loop feeds random and mutated texts to the parser (the ASan
// build turns any memory error into a failure) and checks that whatever parses also writes
// and re-parses to the same value.
#include <zkr/detail/json.hpp>

#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <zkr/random.hpp>

namespace {

using zkr::json::kind;
using zkr::json::parse;
using zkr::json::value;
using zkr::json::write;

value obj(value::object_type o) { return value(std::move(o)); }
value arr(value::array_type a) { return value(std::move(a)); }

TEST(json, parses_every_kind) {
  const auto r = parse(R"( {"a": null, "b": [true, false], "c": -12, "d": 1.5e2, "e": "x\ty", "f": {}} )");
  ASSERT_TRUE(r.ok()) << r.err.what();
  const value expected = obj({{"a", nullptr},
                              {"b", arr({true, false})},
                              {"c", -12},
                              {"d", 150.0},
                              {"e", "x\ty"},
                              {"f", value::object_type{}}});
  EXPECT_EQ(r.val, expected);
  EXPECT_EQ(r.val.find("c")->type(), kind::integer);
  EXPECT_EQ(r.val.find("d")->type(), kind::real);
  EXPECT_EQ(r.val.find("zz"), nullptr);
  // Members keep their order.
  const auto* o = r.val.if_object();
  ASSERT_NE(o, nullptr);
  EXPECT_EQ((*o)[0].key, "a");
  EXPECT_EQ((*o)[5].key, "f");
}

TEST(json, integers_are_exact_within_64_bits) {
  EXPECT_EQ(parse("9223372036854775807").val, value(std::int64_t{9223372036854775807}));
  EXPECT_EQ(parse("-9223372036854775808").val, value(std::numeric_limits<std::int64_t>::min()));
  EXPECT_EQ(parse("0").val, value(0));
  EXPECT_EQ(parse("-0").val, value(0));
  const auto big = parse("9223372036854775808");
  EXPECT_FALSE(big.ok());
  EXPECT_EQ(big.err.message, "integer out of range (beyond 64 signed bits)");
  EXPECT_EQ(big.err.offset, 0u);
  // The same magnitude as a real is fine.
  ASSERT_TRUE(parse("9223372036854775808.0").ok());
  EXPECT_TRUE(parse("9223372036854775808.0").val.is_real());
}

TEST(json, reals_overflow_is_an_error_and_underflow_is_zero) {
  EXPECT_EQ(parse("1e308").val, value(1e308));
  const auto huge = parse("[1, 1e309]");
  EXPECT_FALSE(huge.ok());
  EXPECT_EQ(huge.err.message, "number out of range (beyond a double)");
  EXPECT_EQ(huge.err.offset, 4u);
  EXPECT_FALSE(parse("-123456789e999999999999999999").ok());
  EXPECT_EQ(parse("1000000000000000000000000000000000000000e-10000000000000000000000").val, value(0.0));
  const auto tiny = parse("1e-400");
  ASSERT_TRUE(tiny.ok()) << tiny.err.what();
  EXPECT_EQ(*tiny.val.if_real(), 0.0);
  const auto neg_tiny = parse("-1e-400");
  ASSERT_TRUE(neg_tiny.ok());
  EXPECT_TRUE(std::signbit(*neg_tiny.val.if_real()));
  // A long mantissa with a negative exponent can still be huge.
  EXPECT_FALSE(parse("1" + std::string(400, '0') + "e-10").ok());
  EXPECT_TRUE(parse("0." + std::string(400, '0') + "1").ok());
  EXPECT_EQ(parse("0e999999").val, value(0.0));
}

TEST(json, strings_decode_escapes_and_surrogate_pairs) {
  EXPECT_EQ(parse(R"("\"\\\/\b\f\n\r\t")").val, value("\"\\/\b\f\n\r\t"));
  EXPECT_EQ(parse(R"("\u0041\u00e9\u20AC")").val, value("A\xc3\xa9\xe2\x82\xac"));
  EXPECT_EQ(parse(R"("\uD83D\uDE00")").val, value("\xf0\x9f\x98\x80"));
  EXPECT_EQ(parse("\"\xf0\x9f\x98\x80\"").val, value("\xf0\x9f\x98\x80"));
  EXPECT_EQ(parse(R"("\u0000")").val, value(std::string(1, '\0')));
}

struct bad_case {
  std::string text;
  std::string message;
  std::size_t offset;
};

TEST(json, refuses_what_rfc_8259_does_not_allow_with_a_clear_error) {
  const std::vector<bad_case> cases = {
      {"", "unexpected end of input (expected a value)", 0},
      {"   ", "unexpected end of input (expected a value)", 3},
      {"nul", "invalid literal (expected 'null')", 0},
      {"True", "unexpected character (expected a value)", 0},
      {"NaN", "unexpected character (expected a value)", 0},
      {"Infinity", "unexpected character (expected a value)", 0},
      {"+1", "unexpected character (expected a value)", 0},
      {"01", "invalid number (leading zero)", 0},
      {"-", "invalid number (expected a digit)", 1},
      {"1.", "invalid number (expected a digit after '.')", 2},
      {".5", "unexpected character (expected a value)", 0},
      {"1e", "invalid number (expected a digit in the exponent)", 2},
      {"1e+", "invalid number (expected a digit in the exponent)", 3},
      {"0x10", "unexpected data after the JSON value", 1},
      {"[1,]", "trailing comma in array", 3},
      {"[1 2]", "expected ',' or ']' in array", 3},
      {"[1", "unterminated array", 2},
      {"{\"a\":1,}", "trailing comma in object", 7},
      {"{\"a\" 1}", "expected ':' after an object key", 5},
      {"{a:1}", "expected a string key in object", 1},
      {"{'a':1}", "expected a string key in object", 1},
      {"{\"a\":1", "unterminated object", 6},
      {"{\"a\":1,\"a\":2}", "duplicate key \"a\" in object", 7},
      {"\"abc", "unterminated string", 4},
      {"\"a\tb\"", "unescaped control character in string", 2},
      {"\"\\x41\"", "invalid escape in string", 1},
      {"\"\\u12G4\"", "invalid hex digit in \\u escape", 3},
      {"\"\\u12", "truncated \\u escape", 3},
      {"\"\\uDE00\"", "unpaired low surrogate in \\u escape", 1},
      {"\"\\uD83D\"", "unpaired high surrogate in \\u escape", 1},
      {"\"\\uD83Dx\"", "unpaired high surrogate in \\u escape", 1},
      {"\"\\uD83D\\u0041\"", "unpaired high surrogate in \\u escape", 1},
      {"\"\xc0\x80\"", "invalid UTF-8 in string", 1},          // overlong NUL
      {"\"\xe0\x80\xaf\"", "invalid UTF-8 in string", 1},      // overlong '/'
      {"\"\xed\xa0\x80\"", "invalid UTF-8 in string", 1},      // an encoded surrogate
      {"\"\xf4\x90\x80\x80\"", "invalid UTF-8 in string", 1},  // above U+10FFFF
      {"\"\x80\"", "invalid UTF-8 in string", 1},              // a lone continuation byte
      {"\"\xe2\x82\"", "invalid UTF-8 in string", 1},          // truncated
      {"\"\xff\"", "invalid UTF-8 in string", 1},
      {"\xef\xbb\xbf{}", "unexpected character (expected a value)", 0},  // a BOM is not JSON
      {"{} {}", "unexpected data after the JSON value", 3},
      {"/* c */ 1", "unexpected character (expected a value)", 0},
  };
  for (const auto& c : cases) {
    const auto r = parse(c.text);
    EXPECT_FALSE(r.ok()) << "accepted: " << c.text;
    EXPECT_EQ(r.err.message, c.message) << "for: " << c.text;
    EXPECT_EQ(r.err.offset, c.offset) << "for: " << c.text;
    EXPECT_TRUE(r.val.is_null()) << "for: " << c.text;
  }
}

TEST(json, nesting_is_bounded_and_deep_input_never_overflows_the_stack) {
  const std::string ok_depth = std::string(256, '[') + std::string(256, ']');
  EXPECT_TRUE(parse(ok_depth).ok());
  const std::string too_deep = std::string(257, '[') + std::string(257, ']');
  const auto r = parse(too_deep);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.err.message, "nesting deeper than 256");
  EXPECT_EQ(r.err.offset, 256u);
  const std::string hostile(1'000'000, '[');
  EXPECT_FALSE(parse(hostile).ok());
  const std::string hostile_obj = [] {
    std::string s;
    for (int i = 0; i < 100000; ++i) s += "{\"a\":";
    return s;
  }();
  EXPECT_FALSE(parse(hostile_obj).ok());
  EXPECT_EQ(parse(std::string(10, '['), {.max_depth = 10}).err.message, "unexpected end of input (expected a value)");
  EXPECT_EQ(parse(std::string(11, '['), {.max_depth = 10}).err.message, "nesting deeper than 10");
}

TEST(json, writes_strings_as_jackson_does) {
  // Jackson 2.14: ObjectMapper.writeValueAsBytes(Map.of("k\u007f\u0080\u2028\u00ff",
  //   "\u007f\u0000\u001b\u2028\uffff")) ==
  const std::string jackson =
      "{\"k\x7f\xc2\x80\xe2\x80\xa8\xc3\xbf\":\"\x7f\\u0000\\u001B\xe2\x80\xa8\xef\xbf\xbf\"}";
  const value v = obj({{"k\x7f\xc2\x80\xe2\x80\xa8\xc3\xbf", std::string("\x7f\0\x1b\xe2\x80\xa8\xef\xbf\xbf", 9)}});
  const auto w = write(v);
  ASSERT_TRUE(w.ok()) << w.err.message;
  EXPECT_EQ(w.text, jackson);
  EXPECT_EQ(parse(w.text).val, v);

  std::string out;
  EXPECT_TRUE(zkr::json::write_string(out, "\"\\/\b\f\n\r\t\x01\x1f"));
  EXPECT_EQ(out, R"("\"\\/\b\f\n\r\t\u0001\u001F")");
  out.clear();
  EXPECT_TRUE(zkr::json::write_string(out, "\xf0\x9f\x98\x80"));
  EXPECT_EQ(out, R"("\uD83D\uDE00")");
}

TEST(json, writes_doubles_as_java_double_to_string) {
  // Jackson 2.14 on OpenJDK 17, writeValueAsString(double) for each.
  const std::vector<std::pair<double, std::string>> cases = {
      {1e7, "1.0E7"},         {9999999.0, "9999999.0"}, {1e-3, "0.001"},   {9.99e-4, "9.99E-4"},
      {123456.789, "123456.789"}, {-0.0, "-0.0"},       {1e21, "1.0E21"},  {1e300, "1.0E300"},
      {2e-3, "0.002"},        {100.0, "100.0"},         {1e22, "1.0E22"},  {0.1 + 0.2, "0.30000000000000004"},
      {0.25, "0.25"},         {1.5, "1.5"},             {1e10, "1.0E10"},  {1e-5, "1.0E-5"},
      {-2.5e-7, "-2.5E-7"},   {0.0, "0.0"},             {12.0, "12.0"},    {1234567.0, "1234567.0"},
  };
  for (const auto& [d, text] : cases) {
    std::string out;
    EXPECT_TRUE(zkr::json::write_double(out, d));
    EXPECT_EQ(out, text) << d;
    const auto back = parse(out);
    ASSERT_TRUE(back.ok()) << out;
    EXPECT_EQ(*back.val.if_real(), d) << out;
  }
}

TEST(json, writes_integers_and_structure_compactly) {
  const value v = arr({std::numeric_limits<std::int32_t>::min(), std::numeric_limits<std::int64_t>::min(),
                       std::int64_t{2147483648}, obj({}), arr({}), nullptr, false});
  // Jackson: [-2147483648,-9223372036854775808,2147483648,{},[],null,false]
  EXPECT_EQ(write(v).text, "[-2147483648,-9223372036854775808,2147483648,{},[],null,false]");
}

TEST(json, writer_refuses_invalid_utf8_and_non_finite_numbers) {
  auto w = write(obj({{"a", "\xc3"}}));
  EXPECT_FALSE(w.ok());
  EXPECT_EQ(w.err.message, "a string is not valid UTF-8");
  EXPECT_TRUE(w.text.empty());
  w = write(obj({{"\xff", 1}}));
  EXPECT_EQ(w.err.message, "an object key is not valid UTF-8");
  w = write(arr({1, std::nan("")}));
  EXPECT_EQ(w.err.message, "a non-finite number (NaN or infinity) cannot be written as JSON");
  w = write(value(HUGE_VAL));
  EXPECT_FALSE(w.ok());
  std::string out = "x";
  EXPECT_FALSE(zkr::json::write_string(out, "ok\xed\xa0\x80"));
  EXPECT_EQ(out, "x");  // nothing appended on failure
}

// Random bytes, and valid texts with random byte edits: the parser must answer every one
// without a crash; what it accepts must write and re-parse to an equal value.
TEST(json, fuzz_never_crashes_and_accepted_input_round_trips) {
  zkr::prng rng(20240601);
  const std::vector<std::string> seeds = {
      R"({"name":"orders","id":"x","port":8080,"payload":{"@class":"java.util.LinkedHashMap","a":[1,2.5,"\u00e9"]}})",
      R"([true,false,null,-0.5e-3,"\uD83D\uDE00",{"k":{}}])",
      R"("plain \"string\" \\ \/")",
  };
  const std::string alphabet = "{}[]\",:\\/ -+.0123456789eEtrufalsn\x80\xc3\xa9\xed\xff\x01";
  int accepted = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string text;
    if (round % 2 == 0) {
      const auto len = rng.uniform(40);
      for (std::uint64_t i = 0; i < len; ++i) text += alphabet[rng.uniform(alphabet.size())];
    } else {
      text = seeds[rng.uniform(seeds.size())];
      const auto edits = 1 + rng.uniform(4);
      for (std::uint64_t e = 0; e < edits && !text.empty(); ++e) {
        const auto at = rng.uniform(text.size());
        switch (rng.uniform(3)) {
          case 0: text[at] = alphabet[rng.uniform(alphabet.size())]; break;
          case 1: text.erase(at, 1); break;
          default: text.insert(at, 1, alphabet[rng.uniform(alphabet.size())]); break;
        }
      }
    }
    const auto r = parse(text);
    if (!r.ok()) {
      EXPECT_FALSE(r.err.message.empty());
      EXPECT_LE(r.err.offset, text.size());
      continue;
    }
    ++accepted;
    const auto w = write(r.val);
    ASSERT_TRUE(w.ok()) << "parsed but unwritable: " << text << ": " << w.err.message;
    const auto again = parse(w.text);
    ASSERT_TRUE(again.ok()) << w.text;
    EXPECT_EQ(again.val, r.val) << text;
  }
  EXPECT_GT(accepted, 100);  // the loop exercised the accepting path too
}

}  // namespace
