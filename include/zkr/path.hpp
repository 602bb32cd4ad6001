// zkr/path.hpp: ZooKeeper's znode path rules, and the path helpers recipes need.
//
// `validate_path` accepts exactly the paths ZooKeeper 3.8 accepts
// (org.apache.zookeeper.common.PathUtils.validatePath), so a bad path fails on the client
// with `errc::invalid_path` instead of costing a round trip. The Java client checks the same
// rule; the C client's isValidPath checks only a byte-level subset (no UTF-8 decoding, and a
// NUL inside a std::string would silently cut its C string short), so zkr checks first.
//
// ZooKeeper checks a path after decoding it: the server reads the UTF-8 bytes with Java's
// `new String(bytes, UTF_8)`, which turns every malformed sequence into U+FFFD, and then
// scans UTF-16 code units. zkr takes paths as `std::string_view` holding UTF-8 bytes and
// reproduces that decoding, with these consequences:
//   - malformed UTF-8 (stray continuation bytes, truncated sequences, overlong forms,
//     encoded surrogates, bytes 0xC0, 0xC1, 0xF5..0xFF) is invalid: U+FFFD is a forbidden
//     character;
//   - every code point >= U+10000 (4-byte UTF-8, e.g. emoji) is invalid: Java stores it as a
//     surrogate pair, and surrogates are forbidden;
//   - the "@N" positions in `invalid_path_reason` count UTF-16 code units, as ZooKeeper's
//     messages do; for an ASCII path they are byte offsets.
//
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include <zkr/error.hpp>

namespace zkr {

namespace detail {

/// Decodes UTF-8 bytes into UTF-16 code units with the replacement behaviour of Java's
/// `new String(bytes, StandardCharsets.UTF_8)` (OpenJDK's String.decodeUTF8_UTF16, which
/// agrees with sun.nio.cs.UTF_8): a malformed sequence becomes one U+FFFD and decoding goes
/// on after the longest prefix Java treats as that sequence; a truncated sequence at the end
/// becomes one U+FFFD and ends the input.
///
/// Invariant the path rules rely on: an ASCII byte always decodes to itself and is never
/// swallowed into a malformed sequence (Java only ever consumes continuation bytes with a
/// lead byte), so the first, last and next character can be checked on bytes.
class java_utf8_decoder {
 public:
  static constexpr char16_t replacement = 0xFFFD;

  constexpr explicit java_utf8_decoder(std::string_view bytes) noexcept : bytes_(bytes) {}

  /// The next UTF-16 code unit, or -1 once the input is exhausted.
  constexpr std::int32_t next() noexcept {
    if (pending_low_ != 0) {  // second half of a surrogate pair
      const char16_t low = pending_low_;
      pending_low_ = 0;
      return low;
    }
    const std::size_t n = bytes_.size();
    if (pos_ >= n) return -1;
    const unsigned b1 = at(pos_++);
    if (b1 < 0x80) return static_cast<std::int32_t>(b1);

    if (b1 >= 0xC2 && b1 <= 0xDF) {  // two-byte sequence
      if (pos_ >= n) return replacement;                 // truncated at the end
      const unsigned b2 = at(pos_);
      if (!is_continuation(b2)) return replacement;      // b2 decodes on its own
      ++pos_;
      return static_cast<std::int32_t>(((b1 & 0x1Fu) << 6) | (b2 & 0x3Fu));
    }

    if (b1 >= 0xE0 && b1 <= 0xEF) {  // three-byte sequence
      if (pos_ + 1 < n) {
        const unsigned b2 = at(pos_);
        const unsigned b3 = at(pos_ + 1);
        const bool bad_second = (b1 == 0xE0 && (b2 & 0xE0u) == 0x80) || !is_continuation(b2);
        if (bad_second) return replacement;              // only b1 is consumed
        if (!is_continuation(b3)) {                      // b1 b2 are consumed
          ++pos_;
          return replacement;
        }
        pos_ += 2;
        const unsigned c = ((b1 & 0x0Fu) << 12) | ((b2 & 0x3Fu) << 6) | (b3 & 0x3Fu);
        // An encoded surrogate (ED A0..BF xx) is one malformed 3-byte sequence.
        return (c >= 0xD800 && c <= 0xDFFF) ? replacement : static_cast<std::int32_t>(c);
      }
      // Fewer than two bytes follow.
      if (pos_ < n) {
        const unsigned b2 = at(pos_);
        if ((b1 == 0xE0 && (b2 & 0xE0u) == 0x80) || !is_continuation(b2)) return replacement;
      }
      pos_ = n;  // Java stops decoding: a valid but truncated prefix is one U+FFFD
      return replacement;
    }

    if (b1 >= 0xF0 && b1 <= 0xF7) {  // four-byte sequence
      if (pos_ + 2 < n) {
        const unsigned b2 = at(pos_);
        const unsigned b3 = at(pos_ + 1);
        const unsigned b4 = at(pos_ + 2);
        const std::uint32_t uc = ((b1 & 0x07u) << 18) | ((b2 & 0x3Fu) << 12) |
                                 ((b3 & 0x3Fu) << 6) | (b4 & 0x3Fu);
        const bool malformed = !is_continuation(b2) || !is_continuation(b3) ||
                               !is_continuation(b4) || uc < 0x10000 || uc > 0x10FFFF;
        if (malformed) {
          // Java's malformed4: how many bytes form the malformed sequence.
          if (b1 > 0xF4 || bad_second_of_four(b1, b2)) return replacement;
          if (!is_continuation(b3)) {
            pos_ += 1;
            return replacement;
          }
          pos_ += 2;
          return replacement;
        }
        pos_ += 3;
        pending_low_ = static_cast<char16_t>(0xDC00 + ((uc - 0x10000) & 0x3FF));
        return static_cast<std::int32_t>(0xD800 + ((uc - 0x10000) >> 10));
      }
      // Fewer than three bytes follow.
      if (b1 > 0xF4 || (pos_ < n && bad_second_of_four(b1, at(pos_)))) return replacement;
      ++pos_;  // Java consumes a valid second byte (or steps past the end)
      if (pos_ < n && !is_continuation(at(pos_))) return replacement;  // b3 decodes alone
      pos_ = n;  // Java stops decoding
      return replacement;
    }

    return replacement;  // 0x80..0xC1, 0xF8..0xFF: never a lead byte
  }

  /// Byte offset of the next undecoded byte (meaningful between whole characters).
  constexpr std::size_t position() const noexcept { return pos_; }

 private:
  constexpr unsigned at(std::size_t i) const noexcept {
    return static_cast<unsigned char>(bytes_[i]);
  }
  static constexpr bool is_continuation(unsigned b) noexcept { return (b & 0xC0u) == 0x80; }
  // Java's isMalformed4_2: a second byte that cannot follow this four-byte lead byte.
  static constexpr bool bad_second_of_four(unsigned b1, unsigned b2) noexcept {
    return (b1 == 0xF0 && (b2 < 0x90 || b2 > 0xBF)) || (b1 == 0xF4 && (b2 & 0xF0u) != 0x80) ||
           !is_continuation(b2);
  }

  std::string_view bytes_;
  std::size_t pos_ = 0;
  char16_t pending_low_ = 0;
};

/// What PathUtils.validatePath objects to, in the order it checks.
enum class path_problem {
  none,
  empty,              // "Path length must be > 0"
  no_leading_slash,   // "Path must start with / character"
  trailing_slash,     // "Path must not end with / character"
  null_character,     // "null character not allowed @i"
  empty_node_name,    // "empty node name specified @i"
  relative,           // "relative paths not allowed @i"
  invalid_character,  // "invalid character @i"
};

struct path_check {
  path_problem problem = path_problem::none;
  std::size_t index = 0;  ///< UTF-16 code unit index, for the "@i" problems
};

/// The code units PathUtils forbids: C0 controls except NUL (reported separately), DEL and
/// C1 controls, surrogates and the private use area, and U+FFF0..U+FFFF (which includes
/// the U+FFFD that malformed UTF-8 decodes to).
constexpr bool is_forbidden_unit(char16_t c) noexcept {
  return (c >= 0x0001 && c <= 0x001F) || (c >= 0x007F && c <= 0x009F) ||
         (c >= 0xD800 && c <= 0xF8FF) || c >= 0xFFF0;
}

/// PathUtils.validatePath(path + (sequential ? "1" : "")), decoding as the server does.
/// Allocation-free; one pass.
constexpr path_check check_path(std::string_view path, bool sequential) noexcept {
  // For a sequential create ZooKeeper validates the path with a "1" appended to the decoded
  // string (the server appends the 10-digit counter), so "/lock-" and "/dir/" are valid there.
  const std::size_t n = path.size();
  const std::size_t total = n + (sequential ? 1 : 0);
  if (total == 0) return {path_problem::empty, 0};
  // First/last characters are checked on bytes: ASCII bytes decode to themselves (see
  // java_utf8_decoder), and any non-empty input decodes to at least one code unit, so
  // "decoded length is 1" means "exactly one byte".
  const char first = n > 0 ? path.front() : '1';
  if (first != '/') return {path_problem::no_leading_slash, 0};
  if (total == 1) return {path_problem::none, 0};  // the root
  const char last = sequential ? '1' : path.back();
  if (last == '/') return {path_problem::trailing_slash, 0};

  java_utf8_decoder decoder(path);
  decoder.next();  // the leading '/'
  // A '.' is one byte, so after decoding it the next character is '/' iff the next byte is;
  // at the end of the bytes the next character is the appended "1" of a sequential create.
  const auto next_is_end_or_slash = [&]() noexcept {
    const std::size_t p = decoder.position();
    return p == n ? !sequential : path[p] == '/';
  };

  char16_t before_last = 0;  // chars[i - 2]; only read once i >= 2
  char16_t last_c = '/';     // chars[i - 1], as Java's lastc
  bool suffix_pending = sequential;
  for (std::size_t i = 1;; ++i) {
    std::int32_t unit = decoder.next();
    if (unit < 0) {
      if (!suffix_pending) break;
      suffix_pending = false;
      unit = '1';
    }
    const auto c = static_cast<char16_t>(unit);
    // Same branch structure as Java: a '.' that is not relative skips the character test.
    if (c == 0) return {path_problem::null_character, i};
    if (c == '/' && last_c == '/') return {path_problem::empty_node_name, i};
    if (c == '.' && last_c == '.') {
      if (before_last == '/' && next_is_end_or_slash()) return {path_problem::relative, i};
    } else if (c == '.') {
      if (last_c == '/' && next_is_end_or_slash()) return {path_problem::relative, i};
    } else if (is_forbidden_unit(c)) {
      return {path_problem::invalid_character, i};
    }
    before_last = last_c;
    last_c = c;
  }
  return {path_problem::none, 0};
}

/// Writes ZooKeeper's `String.format("%010d", v)` into `buf`; returns the length (10, or 11
/// for values below -999999999).
constexpr std::size_t format_sequence(std::int32_t v, char (&buf)[11]) noexcept {
  // Width 10 counts the sign; Java pads with zeros after it.
  const bool negative = v < 0;
  std::uint32_t magnitude = negative ? 0u - static_cast<std::uint32_t>(v)
                                     : static_cast<std::uint32_t>(v);
  char digits[10] = {};
  std::size_t count = 0;
  do {
    digits[count++] = static_cast<char>('0' + magnitude % 10);
    magnitude /= 10;
  } while (magnitude != 0);
  const std::size_t width = negative ? 9 : 10;
  std::size_t len = 0;
  if (negative) buf[len++] = '-';
  for (std::size_t pad = count; pad < width; ++pad) buf[len++] = '0';
  while (count > 0) buf[len++] = digits[--count];
  return len;
}

/// The int32 whose %010d rendering is exactly `s`, if any.
constexpr std::optional<std::int32_t> parse_sequence(std::string_view s) noexcept {
  if (s.size() != 10 && s.size() != 11) return std::nullopt;
  const bool negative = s.front() == '-';
  std::int64_t magnitude = 0;
  for (std::size_t i = negative ? 1 : 0; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return std::nullopt;
    magnitude = magnitude * 10 + (s[i] - '0');
  }
  const std::int64_t value = negative ? -magnitude : magnitude;
  if (value < std::numeric_limits<std::int32_t>::min() ||
      value > std::numeric_limits<std::int32_t>::max()) {
    return std::nullopt;
  }
  // Round trip: rejects "-000000000", "12345678901", wrong padding and other non-renderings.
  char buf[11] = {};
  const std::size_t len = format_sequence(static_cast<std::int32_t>(value), buf);
  if (std::string_view(buf, len) != s) return std::nullopt;
  return static_cast<std::int32_t>(value);
}

}  // namespace detail

/// True iff ZooKeeper accepts `path` (for a sequential create if `sequential`).
/// Never fails; usable in constant expressions.
constexpr bool is_valid_path(std::string_view path, bool sequential = false) noexcept {
  return detail::check_path(path, sequential).problem == detail::path_problem::none;
}

/// Checks `path` against ZooKeeper's rules (PathUtils.validatePath). For a sequential
/// create pass `sequential = true`: the server appends a counter, so a trailing '/' or a
/// final "." is allowed there. Returns {} if valid, else `errc::invalid_path`. Never throws,
/// never allocates.
inline std::error_code validate_path(std::string_view path, bool sequential = false) noexcept {
  return is_valid_path(path, sequential) ? std::error_code{} : make_error_code(errc::invalid_path);
}

/// Why ZooKeeper would reject `path`, in ZooKeeper's words (the text after "caused by" in
/// its IllegalArgumentException, or its whole message for the length/first/last character
/// checks), e.g. "empty node name specified @3". "@i" counts UTF-16 code units of the decoded
/// path. Returns nullopt iff `validate_path` accepts the path. Throws only std::bad_alloc.
inline std::optional<std::string> invalid_path_reason(std::string_view path,
                                                      bool sequential = false) {
  const detail::path_check check = detail::check_path(path, sequential);
  const auto at = [&](const char* what) { return what + std::to_string(check.index); };
  switch (check.problem) {
    case detail::path_problem::none: return std::nullopt;
    case detail::path_problem::empty: return "Path length must be > 0";
    case detail::path_problem::no_leading_slash: return "Path must start with / character";
    case detail::path_problem::trailing_slash: return "Path must not end with / character";
    case detail::path_problem::null_character: return at("null character not allowed @");
    case detail::path_problem::empty_node_name: return at("empty node name specified @");
    case detail::path_problem::relative: return at("relative paths not allowed @");
    case detail::path_problem::invalid_character: return at("invalid character @");
  }
  return "invalid path";  // unreachable: every problem is handled above
}

/// `parent` + "/" + `child`, without doubling the '/' when `parent` is the root "/" (an
/// empty `parent` also counts as the root). `child` is a node name or a relative path; a
/// leading '/' in it is kept and makes the result invalid. Validates nothing; throws only
/// std::bad_alloc.
inline std::string join_path(std::string_view parent, std::string_view child) {
  std::string joined;
  joined.reserve(parent.size() + 1 + child.size());
  joined.append(parent);
  if (joined.empty() || joined.back() != '/') joined.push_back('/');
  joined.append(child);
  return joined;
}

/// The parent of a valid path: "/a/b" -> "/a", "/a" -> "/", and "" for "/" (the root has
/// no parent) or for a string without '/'. A view into `path`; never fails.
constexpr std::string_view parent_path(std::string_view path) noexcept {
  const std::size_t slash = path.rfind('/');
  if (slash == std::string_view::npos || path.size() <= 1) return {};
  return slash == 0 ? path.substr(0, 1) : path.substr(0, slash);
}

/// The last segment of a path: "/a/b" -> "b", "/a" -> "a", "/" -> "". A string without '/'
/// is returned whole. A view into `path`; never fails.
constexpr std::string_view node_name(std::string_view path) noexcept {
  const std::size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

/// ZooKeeper's rendering of a sequence number: `String.format("%010d", n)`, as the server
/// appends it to a sequential node's name. 0 -> "0000000000", 42 -> "0000000042", and after
/// the parent's 32-bit cversion wraps: -1 -> "-000000001", -2147483648 -> "-2147483648"
/// (11 characters). Throws only std::bad_alloc.
inline std::string sequence_string(std::int32_t n) {
  char buf[11] = {};
  return std::string(buf, detail::format_sequence(n, buf));
}

/// The sequence number a sequential create appended to `name` (a node name or path).
/// Recognises exactly ZooKeeper's renderings (see `sequence_string`):
///   - 10 digits at the end, value <= 2147483647: that value;
///   - "-" + 9 digits at the end: a negative value -1..-999999999 (counter wrapped);
///   - "-2147483648" at the end: INT32_MIN.
/// Ambiguity: "-1000000000".."-2147483647" end in 10 digits and are read as the positive
/// number after a '-' that belongs to the prefix, as in Curator's "...-lock-1000000000"
/// (a counter reaches 10^9 long before it wraps). When the prefix is known, use the
/// two-argument overload, which is exact. Returns nullopt for anything else ("x1", a
/// 9-digit or 11-digit suffix, "-000000000"). Never fails; the value fits std::int32_t.
constexpr std::optional<std::int64_t> sequence_suffix(std::string_view name) noexcept {
  const std::size_t n = name.size();
  if (n < 10) return std::nullopt;
  if (const auto v = detail::parse_sequence(name.substr(n - 10))) return *v;
  if (n >= 11 && name.substr(n - 11) == "-2147483648") {
    return std::numeric_limits<std::int32_t>::min();
  }
  return std::nullopt;
}

/// The sequence number of `name` = `prefix` + a ZooKeeper rendering of an int32 (10
/// characters, or 11 for values below -999999999). Exact: nullopt unless `name` starts
/// with `prefix` and the rest is precisely `sequence_string(v)` for some v. Never fails.
constexpr std::optional<std::int64_t> sequence_suffix(std::string_view name,
                                                      std::string_view prefix) noexcept {
  if (name.substr(0, prefix.size()) != prefix) return std::nullopt;
  if (const auto v = detail::parse_sequence(name.substr(prefix.size()))) return *v;
  return std::nullopt;
}

}  // namespace zkr
