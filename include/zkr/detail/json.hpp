// zkr/detail/json.hpp: a small, strict JSON reader and a Jackson-compatible writer.
//
// zkr needs JSON for one purpose: reading and writing Curator's service-discovery records
// (zkr/recipes/service_instance.hpp) byte for byte as Curator's JsonInstanceSerializer
// (Jackson) writes them. That is all this file is for; it is not a general JSON library.
//
// Reader (`json::parse`): RFC 8259, strictly. One value, optionally surrounded by whitespace;
// no comments, no trailing commas, no single quotes, no NaN/Infinity, no leading zeros or
// '+', no control characters in strings, only the escapes JSON defines, `\u` surrogates in
// valid pairs only, valid UTF-8 only (no overlong forms, no encoded surrogates, nothing above
// U+10FFFF), no duplicate keys in an object, nesting at most `max_depth` deep. Integers (no
// fraction, no exponent) that fit 64 signed bits are kept exactly; other numbers become
// doubles, and a number beyond a double's range is an error. Any input, however broken,
// yields either a value or an error naming the byte offset and what was wrong: never a crash,
// an exception or unbounded recursion.
//
// Writer (`json::write`): compact output exactly as Jackson 2.14's ObjectMapper writes it
// (checked against Jackson itself, tests/core/json_test.cpp): no whitespace; object members
// in insertion order; strings escaped as Jackson does (`\"`, `\\`, `\b \t \n \f \r`, other
// control characters as `\u00XX` with upper-case hex, U+007F and all other BMP characters
// raw UTF-8, characters beyond U+FFFF as a `\uD8xx\uDCxx` surrogate pair); integers in
// decimal; doubles as Java's Double.toString (`1.5`, `0.001`, `1.0E10`, `9.99E-4`), from the
// shortest round-trip digits (JDK 19+; JDK 17 prints a few rare values with more digits,
// e.g. 1.0E23 as 9.999999999999999E22: both read back as the same double). The writer refuses
// (with an error) strings that are not valid UTF-8 and non-finite doubles.
//
// Thread safety: values are plain values; the functions are pure.
#pragma once

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <concepts>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace zkr::json {

class value;

/// One member of an object: key and value. Objects keep their members in insertion order
/// (Jackson writes a bean's properties and a LinkedHashMap's entries in order).
struct member;

/// The kinds of JSON value. `integer` is a number written without fraction or exponent that
/// fits 64 signed bits; every other number is a `real` (a double).
enum class kind : std::uint8_t { null, boolean, integer, real, string, array, object };

constexpr std::string_view to_string(kind k) noexcept {
  switch (k) {
    case kind::null: return "null";
    case kind::boolean: return "boolean";
    case kind::integer: return "integer";
    case kind::real: return "real";
    case kind::string: return "string";
    case kind::array: return "array";
    case kind::object: return "object";
  }
  return "?";
}

/// A JSON value: null, boolean, integer (int64), real (double), string (UTF-8), array or
/// object (members in order). Compares by value (an integer never equals a real).
class value {
 public:
  using array_type = std::vector<value>;
  using object_type = std::vector<member>;

  value() noexcept = default;
  value(std::nullptr_t) noexcept {}                         // NOLINT(google-explicit-constructor)
  value(bool b) noexcept : v_(b) {}                         // NOLINT(google-explicit-constructor)
  template <std::integral I>
    requires(!std::same_as<I, bool>)
  value(I i) noexcept : v_(static_cast<std::int64_t>(i)) {  // NOLINT(google-explicit-constructor)
    static_assert(sizeof(I) < 8 || std::is_signed_v<I>, "json::value holds signed 64-bit integers only");
  }
  value(double d) noexcept : v_(d) {}                        // NOLINT(google-explicit-constructor)
  value(std::string s) noexcept : v_(std::move(s)) {}        // NOLINT(google-explicit-constructor)
  value(std::string_view s) : v_(std::string(s)) {}          // NOLINT(google-explicit-constructor)
  value(const char* s) : v_(std::string(s)) {}               // NOLINT(google-explicit-constructor)
  value(array_type a) noexcept : v_(std::move(a)) {}         // NOLINT(google-explicit-constructor)
  value(object_type o) noexcept : v_(std::move(o)) {}        // NOLINT(google-explicit-constructor)

  kind type() const noexcept { return static_cast<kind>(v_.index()); }
  bool is_null() const noexcept { return type() == kind::null; }
  bool is_bool() const noexcept { return type() == kind::boolean; }
  bool is_integer() const noexcept { return type() == kind::integer; }
  bool is_real() const noexcept { return type() == kind::real; }
  bool is_number() const noexcept { return is_integer() || is_real(); }
  bool is_string() const noexcept { return type() == kind::string; }
  bool is_array() const noexcept { return type() == kind::array; }
  bool is_object() const noexcept { return type() == kind::object; }

  /// Pointers to the held value, or nullptr if the value is of another kind.
  const bool* if_bool() const noexcept { return std::get_if<bool>(&v_); }
  const std::int64_t* if_integer() const noexcept { return std::get_if<std::int64_t>(&v_); }
  const double* if_real() const noexcept { return std::get_if<double>(&v_); }
  const std::string* if_string() const noexcept { return std::get_if<std::string>(&v_); }
  const array_type* if_array() const noexcept { return std::get_if<array_type>(&v_); }
  const object_type* if_object() const noexcept { return std::get_if<object_type>(&v_); }
  array_type* if_array() noexcept { return std::get_if<array_type>(&v_); }
  object_type* if_object() noexcept { return std::get_if<object_type>(&v_); }

  /// The member `key` of an object, or nullptr (not an object, or no such member).
  const value* find(std::string_view key) const noexcept;

  friend bool operator==(const value& a, const value& b) noexcept;

 private:
  std::variant<std::nullptr_t, bool, std::int64_t, double, std::string, array_type, object_type> v_{nullptr};
};

struct member {
  std::string key;
  value val;
  friend bool operator==(const member& a, const member& b) noexcept { return a.key == b.key && a.val == b.val; }
};

inline bool operator==(const value& a, const value& b) noexcept { return a.v_ == b.v_; }

inline const value* value::find(std::string_view key) const noexcept {
  const auto* o = if_object();
  if (o == nullptr) return nullptr;
  for (const auto& m : *o) {
    if (m.key == key) return &m.val;
  }
  return nullptr;
}

/// Where and why input was refused (parse), or why a value cannot be written (write).
struct error {
  std::size_t offset = 0;  ///< byte offset into the input (parse only)
  std::string message;     ///< e.g. "unterminated string"; empty: no error
  explicit operator bool() const noexcept { return !message.empty(); }
  /// "<message> at byte <offset>"
  std::string what() const { return message + " at byte " + std::to_string(offset); }
};

/// A parsed value or an error.
struct parse_result {
  value val;
  error err;
  bool ok() const noexcept { return !err; }
};

struct parse_options {
  /// Deepest nesting of arrays and objects accepted (the parser recurses once per level).
  std::size_t max_depth = 256;
};

/// The result of writing: the text, or an error (`text` is then empty).
struct write_result {
  std::string text;
  error err;
  bool ok() const noexcept { return !err; }
};

namespace detail {

/// Decodes one UTF-8 sequence at `s[i]`, strictly (RFC 3629: shortest form only, no
/// surrogates, at most U+10FFFF). Returns the code point and advances `i`, or -1 (and leaves
/// `i`) for an invalid sequence.
inline std::int32_t decode_utf8(std::string_view s, std::size_t& i) noexcept {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  std::size_t len = 0;
  std::uint32_t cp = 0;
  std::uint32_t min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return -1;  // a continuation byte or 0xF8..0xFF where a sequence must start
  }
  if (s.size() - i < len) return -1;
  for (std::size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return -1;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
  i += len;
  return static_cast<std::int32_t>(cp);
}

inline void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

class parser {
 public:
  parser(std::string_view in, const parse_options& o) : in_(in), opts_(o) {}

  parse_result run() {
    parse_result r;
    skip_ws();
    if (!parse_value(r.val, 0)) {
      r.val = value{};
      r.err = err_;
      return r;
    }
    skip_ws();
    if (pos_ != in_.size()) {
      r.val = value{};
      r.err = {pos_, "unexpected data after the JSON value"};
    }
    return r;
  }

 private:
  bool fail(std::string msg) {
    // The first error wins: inner failures are more precise than the outer ones they cause.
    if (!err_) err_ = {pos_, std::move(msg)};
    return false;
  }
  bool fail_at(std::size_t at, std::string msg) {
    pos_ = at;
    return fail(std::move(msg));
  }

  void skip_ws() noexcept {
    while (pos_ < in_.size() && (in_[pos_] == ' ' || in_[pos_] == '\t' || in_[pos_] == '\n' || in_[pos_] == '\r')) {
      ++pos_;
    }
  }

  bool literal(std::string_view word) {
    if (in_.substr(pos_, word.size()) != word) return fail("invalid literal (expected '" + std::string(word) + "')");
    pos_ += word.size();
    return true;
  }

  bool parse_value(value& out, std::size_t depth) {
    if (pos_ >= in_.size()) return fail("unexpected end of input (expected a value)");
    switch (in_[pos_]) {
      case 'n':
        if (!literal("null")) return false;
        out = value{};
        return true;
      case 't':
        if (!literal("true")) return false;
        out = value{true};
        return true;
      case 'f':
        if (!literal("false")) return false;
        out = value{false};
        return true;
      case '"': {
        std::string s;
        if (!parse_string(s)) return false;
        out = value{std::move(s)};
        return true;
      }
      case '[': return parse_array(out, depth + 1);
      case '{': return parse_object(out, depth + 1);
      default:
        if (in_[pos_] == '-' || (in_[pos_] >= '0' && in_[pos_] <= '9')) return parse_number(out);
        return fail("unexpected character (expected a value)");
    }
  }

  bool parse_array(value& out, std::size_t depth) {
    if (depth > opts_.max_depth) return fail("nesting deeper than " + std::to_string(opts_.max_depth));
    ++pos_;  // '['
    value::array_type items;
    skip_ws();
    if (pos_ < in_.size() && in_[pos_] == ']') {
      ++pos_;
      out = value{std::move(items)};
      return true;
    }
    for (;;) {
      skip_ws();
      value v;
      if (!parse_value(v, depth)) return false;
      items.push_back(std::move(v));
      skip_ws();
      if (pos_ >= in_.size()) return fail("unterminated array");
      if (in_[pos_] == ',') {
        ++pos_;
        skip_ws();
        if (pos_ < in_.size() && in_[pos_] == ']') return fail("trailing comma in array");
        continue;
      }
      if (in_[pos_] == ']') {
        ++pos_;
        out = value{std::move(items)};
        return true;
      }
      return fail("expected ',' or ']' in array");
    }
  }

  bool parse_object(value& out, std::size_t depth) {
    if (depth > opts_.max_depth) return fail("nesting deeper than " + std::to_string(opts_.max_depth));
    ++pos_;  // '{'
    value::object_type members;
    skip_ws();
    if (pos_ < in_.size() && in_[pos_] == '}') {
      ++pos_;
      out = value{std::move(members)};
      return true;
    }
    for (;;) {
      skip_ws();
      if (pos_ >= in_.size()) return fail("unterminated object");
      if (in_[pos_] != '"') return fail("expected a string key in object");
      const std::size_t key_at = pos_;
      std::string key;
      if (!parse_string(key)) return false;
      for (const auto& m : members) {
        if (m.key == key) return fail_at(key_at, "duplicate key \"" + key + "\" in object");
      }
      skip_ws();
      if (pos_ >= in_.size() || in_[pos_] != ':') return fail("expected ':' after an object key");
      ++pos_;
      skip_ws();
      value v;
      if (!parse_value(v, depth)) return false;
      members.push_back({std::move(key), std::move(v)});
      skip_ws();
      if (pos_ >= in_.size()) return fail("unterminated object");
      if (in_[pos_] == ',') {
        ++pos_;
        skip_ws();
        if (pos_ < in_.size() && in_[pos_] == '}') return fail("trailing comma in object");
        continue;
      }
      if (in_[pos_] == '}') {
        ++pos_;
        out = value{std::move(members)};
        return true;
      }
      return fail("expected ',' or '}' in object");
    }
  }

  static int hex_digit(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  /// Reads 4 hex digits after "\u" at pos_; advances past them.
  bool hex4(std::uint32_t& out) {
    if (in_.size() - pos_ < 4) return fail("truncated \\u escape");
    std::uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const int d = hex_digit(in_[pos_ + static_cast<std::size_t>(k)]);
      if (d < 0) return fail("invalid hex digit in \\u escape");
      v = (v << 4) | static_cast<std::uint32_t>(d);
    }
    pos_ += 4;
    out = v;
    return true;
  }

  bool parse_string(std::string& out) {
    ++pos_;  // opening quote
    for (;;) {
      if (pos_ >= in_.size()) return fail("unterminated string");
      const auto c = static_cast<unsigned char>(in_[pos_]);
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c < 0x20) return fail("unescaped control character in string");
      if (c == '\\') {
        const std::size_t esc_at = pos_;
        ++pos_;
        if (pos_ >= in_.size()) return fail("unterminated escape in string");
        const char e = in_[pos_++];
        switch (e) {
          case '"': out += '"'; break;
          case '\\': out += '\\'; break;
          case '/': out += '/'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'n': out += '\n'; break;
          case 'r': out += '\r'; break;
          case 't': out += '\t'; break;
          case 'u': {
            std::uint32_t cp = 0;
            if (!hex4(cp)) return false;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return fail_at(esc_at, "unpaired low surrogate in \\u escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
              std::uint32_t lo = 0;
              if (in_.substr(pos_, 2) != "\\u") return fail_at(esc_at, "unpaired high surrogate in \\u escape");
              pos_ += 2;
              if (!hex4(lo)) return false;
              if (lo < 0xDC00 || lo > 0xDFFF) return fail_at(esc_at, "unpaired high surrogate in \\u escape");
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            append_utf8(out, cp);
            break;
          }
          default: return fail_at(esc_at, "invalid escape in string");
        }
        continue;
      }
      const std::size_t at = pos_;
      if (decode_utf8(in_, pos_) < 0) return fail_at(at, "invalid UTF-8 in string");
      out.append(in_.substr(at, pos_ - at));
    }
  }

  bool parse_number(value& out) {
    const std::size_t start = pos_;
    auto digit = [&](std::size_t i) { return i < in_.size() && in_[i] >= '0' && in_[i] <= '9'; };
    if (in_[pos_] == '-') ++pos_;
    if (!digit(pos_)) return fail("invalid number (expected a digit)");
    if (in_[pos_] == '0') {
      ++pos_;
      if (digit(pos_)) return fail_at(start, "invalid number (leading zero)");
    } else {
      while (digit(pos_)) ++pos_;
    }
    bool integral = true;
    if (pos_ < in_.size() && in_[pos_] == '.') {
      integral = false;
      ++pos_;
      if (!digit(pos_)) return fail("invalid number (expected a digit after '.')");
      while (digit(pos_)) ++pos_;
    }
    if (pos_ < in_.size() && (in_[pos_] == 'e' || in_[pos_] == 'E')) {
      integral = false;
      ++pos_;
      if (pos_ < in_.size() && (in_[pos_] == '+' || in_[pos_] == '-')) ++pos_;
      if (!digit(pos_)) return fail("invalid number (expected a digit in the exponent)");
      while (digit(pos_)) ++pos_;
    }
    const char* first = in_.data() + start;
    const char* last = in_.data() + pos_;
    if (integral) {
      std::int64_t i = 0;
      const auto r = std::from_chars(first, last, i);
      if (r.ec == std::errc{} && r.ptr == last) {
        out = value{i};
        return true;
      }
      return fail_at(start, "integer out of range (beyond 64 signed bits)");
    }
    double d = 0;
    const auto r = std::from_chars(first, last, d);
    if (r.ec == std::errc::result_out_of_range && r.ptr == last && decimal_magnitude(first, last) < 0) {
      // Underflow: the number is closer to zero than the smallest subnormal. Like Java's
      // Double.parseDouble (and so Jackson), read it as a zero of its sign.
      out = value{*first == '-' ? -0.0 : 0.0};
      return true;
    }
    if (r.ec != std::errc{} || r.ptr != last || !std::isfinite(d)) {
      return fail_at(start, "number out of range (beyond a double)");
    }
    out = value{d};
    return true;
  }

  /// The decimal exponent of the first non-zero digit of a (grammatically valid) number:
  /// 0 for "1.5", 2 for "123", -3 for "0.001", 4 for "1e4". Saturates instead of overflowing.
  static std::int64_t decimal_magnitude(const char* first, const char* last) noexcept {
    const char* p = first;
    if (*p == '-') ++p;
    std::int64_t int_len = 0;
    std::int64_t first_nonzero = -1;  // index among all mantissa digits
    std::int64_t index = 0;
    for (; p != last && *p >= '0' && *p <= '9'; ++p, ++index, ++int_len) {
      if (first_nonzero < 0 && *p != '0') first_nonzero = index;
    }
    if (p != last && *p == '.') {
      for (++p; p != last && *p >= '0' && *p <= '9'; ++p, ++index) {
        if (first_nonzero < 0 && *p != '0') first_nonzero = index;
      }
    }
    std::int64_t exp = 0;
    if (p != last && (*p == 'e' || *p == 'E')) {
      ++p;
      const bool neg = *p == '-';
      if (*p == '+' || *p == '-') ++p;
      for (; p != last; ++p) {
        if (exp < 1'000'000'000) exp = exp * 10 + (*p - '0');
      }
      if (neg) exp = -exp;
    }
    if (first_nonzero < 0) return 0;  // zero: never out of range
    return int_len - 1 - first_nonzero + exp;
  }

  std::string_view in_;
  parse_options opts_;
  std::size_t pos_ = 0;
  error err_;
};

inline constexpr char upper_hex[] = "0123456789ABCDEF";

inline void append_u_escape(std::string& out, std::uint32_t unit) {
  out += "\\u";
  out += upper_hex[(unit >> 12) & 0xF];
  out += upper_hex[(unit >> 8) & 0xF];
  out += upper_hex[(unit >> 4) & 0xF];
  out += upper_hex[unit & 0xF];
}

}  // namespace detail

/// Appends `s` as a JSON string literal, escaped as Jackson escapes it. Returns false (and
/// appends nothing) if `s` is not valid UTF-8.
inline bool write_string(std::string& out, std::string_view s) {
  std::string buf;
  buf.reserve(s.size() + 2);
  buf += '"';
  std::size_t i = 0;
  while (i < s.size()) {
    const std::int32_t cp = detail::decode_utf8(s, i);
    if (cp < 0) return false;
    switch (cp) {
      case '"': buf += "\\\""; continue;
      case '\\': buf += "\\\\"; continue;
      case '\b': buf += "\\b"; continue;
      case '\t': buf += "\\t"; continue;
      case '\n': buf += "\\n"; continue;
      case '\f': buf += "\\f"; continue;
      case '\r': buf += "\\r"; continue;
      default: break;
    }
    if (cp < 0x20) {
      detail::append_u_escape(buf, static_cast<std::uint32_t>(cp));
    } else if (cp > 0xFFFF) {
      // Jackson 2.14 writes a supplementary character as its two UTF-16 units, escaped.
      const auto v = static_cast<std::uint32_t>(cp) - 0x10000;
      detail::append_u_escape(buf, 0xD800 + (v >> 10));
      detail::append_u_escape(buf, 0xDC00 + (v & 0x3FF));
    } else {
      detail::append_utf8(buf, static_cast<std::uint32_t>(cp));
    }
  }
  buf += '"';
  out += buf;
  return true;
}

/// Appends `d` as Java's Double.toString writes it (see the file comment). Returns false
/// (and appends nothing) for NaN and infinities, which JSON cannot carry as numbers.
inline bool write_double(std::string& out, double d) {
  if (!std::isfinite(d)) return false;
  if (d == 0) {
    out += std::signbit(d) ? "-0.0" : "0.0";
    return true;
  }
  // The shortest digits that read back as d: "d.ddde+XX" (or "de+XX").
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string_view sci(buf, static_cast<std::size_t>(r.ptr - buf));
  std::string sign;
  if (sci.front() == '-') {
    sign = "-";
    sci.remove_prefix(1);
  }
  const auto e_at = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e_at)) {
    if (c != '.') digits += c;
  }
  int exp = 0;
  std::from_chars(sci.data() + e_at + 1 + (sci[e_at + 1] == '+' ? 1 : 0), sci.data() + sci.size(), exp);
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  std::string s = sign;
  if (exp >= -3 && exp < 7) {
    // Plain notation, at least one digit after the point.
    if (exp >= 0) {
      const auto int_len = static_cast<std::size_t>(exp) + 1;
      if (digits.size() <= int_len) {
        s += digits + std::string(int_len - digits.size(), '0') + ".0";
      } else {
        s += digits.substr(0, int_len) + "." + digits.substr(int_len);
      }
    } else {
      s += "0." + std::string(static_cast<std::size_t>(-exp - 1), '0') + digits;
    }
  } else {
    s += digits.substr(0, 1) + "." + (digits.size() > 1 ? digits.substr(1) : std::string("0")) + "E" +
         std::to_string(exp);
  }
  out += s;
  return true;
}

namespace detail {
inline bool write_value(std::string& out, const value& v, error& err, std::size_t depth) {
  if (depth > 1024) {
    err.message = "nesting deeper than 1024";
    return false;
  }
  switch (v.type()) {
    case kind::null: out += "null"; return true;
    case kind::boolean: out += *v.if_bool() ? "true" : "false"; return true;
    case kind::integer: {
      char buf[24];
      const auto r = std::to_chars(buf, buf + sizeof buf, *v.if_integer());
      out.append(buf, r.ptr);
      return true;
    }
    case kind::real:
      if (!write_double(out, *v.if_real())) {
        err.message = "a non-finite number (NaN or infinity) cannot be written as JSON";
        return false;
      }
      return true;
    case kind::string:
      if (!write_string(out, *v.if_string())) {
        err.message = "a string is not valid UTF-8";
        return false;
      }
      return true;
    case kind::array: {
      out += '[';
      bool first = true;
      for (const auto& item : *v.if_array()) {
        if (!first) out += ',';
        first = false;
        if (!write_value(out, item, err, depth + 1)) return false;
      }
      out += ']';
      return true;
    }
    case kind::object: {
      out += '{';
      bool first = true;
      for (const auto& m : *v.if_object()) {
        if (!first) out += ',';
        first = false;
        if (!write_string(out, m.key)) {
          err.message = "an object key is not valid UTF-8";
          return false;
        }
        out += ':';
        if (!write_value(out, m.val, err, depth + 1)) return false;
      }
      out += '}';
      return true;
    }
  }
  err.message = "unknown value kind";
  return false;
}
}  // namespace detail

/// Parses one JSON text. Never throws (except std::bad_alloc), never crashes.
inline parse_result parse(std::string_view text, const parse_options& opts = {}) {
  return detail::parser(text, opts).run();
}

/// Writes `v` compactly, as Jackson would. Errors: a string or key that is not valid UTF-8,
/// a non-finite real, nesting deeper than 1024.
inline write_result write(const value& v) {
  write_result r;
  if (!detail::write_value(r.text, v, r.err, 0)) r.text.clear();
  return r;
}

/// For test output: the value as JSON, or "<unwritable: reason>".
inline std::ostream& operator<<(std::ostream& os, const value& v) {
  auto r = write(v);
  return os << (r.ok() ? r.text : "<unwritable: " + r.err.message + ">");
}

}  // namespace zkr::json
