// zkr/sim/trace.hpp: the simulator's observability sink. Requests, responses, watch events,
// session transitions, elections and faults are recorded through one `trace`, which writes
// them as JSON lines (one object per line) and/or as a compact human-readable timeline.
//
// Off by default and cheap when off: a default-constructed trace is disabled, `enabled()` is
// one bool load, and `record()` on a disabled trace returns before calling the field builder,
// so nothing is formatted or allocated. Callers build fields in a lambda:
//
//   t.record(sched.now(), trace_kind::session, "client-2", [&](trace::fields& f) {
//     f.add("state", "suspended");
//     f.add("reason", reason);
//   });
//
// JSON line format, fixed key order (fields in insertion order), no spaces:
//   {"t_us":1250000,"kind":"session","actor":"client-2","state":"suspended","reason":"..."}
// `t_us` is the virtual time in whole microseconds since the simulation's start (the epoch of
// clock_time), rounded down.
//
// Timeline format, one line per event, fixed columns (wider values push the rest right):
//   <seconds, 6 decimals, right-aligned in 11>  <actor, left in 10> <kind, left in 9> k=v k=v
//   "   1.250000  client-2   session   state=suspended reason=timeout"
// A timeline string value (or actor) is printed bare when it is non-empty and made only of
// printable ASCII other than space, '"', '\\' and '='; otherwise it is printed as a quoted JSON
// string (same escaping as below), so one event is always exactly one line.
//
// JSON string escaping (keys and values alike): '"' -> \", '\\' -> \\, every byte below 0x20
// -> \u00xx (lowercase hex, also for \n and \t: one uniform rule). DEL (0x7f) passes through.
// Bytes >= 0x80 pass through when they form a well-formed UTF-8 sequence (no overlong forms,
// no surrogates, nothing above U+10FFFF); each byte of an ill-formed sequence is written as
// \u00xx of that byte, and decoding resumes at the next byte. So the output is always valid
// UTF-8 JSON; the price is that an invalid byte 0xE9 and a valid "é" (U+00E9) decode to the
// same JSON string (the raw bytes differ, so hash() still tells them apart).
//
// Determinism: the output depends only on the recorded events (no pointers, no wall clock,
// no locale: integers go through std::to_chars). hash() is FNV-1a 64 over the exact JSON bytes
// produced so far (including each '\n'), computed whenever the trace is enabled, whether or
// not the JSON is written anywhere.
//
// Thread safety: none. A trace and its fields belong to one thread (the simulator's).
#pragma once

#include <array>
#include <charconv>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <zkr/sim/scheduler.hpp>

namespace zkr::sim {

/// What an event is about. Extensible: add enumerators (and their names in to_string); the
/// names are the output format, so existing ones never change.
enum class trace_kind : std::uint8_t { request, response, watch, session, election, fault, note };

/// The name written for `k` ("request", ...); "unknown" for a value outside the enumeration.
/// Never fails, never allocates.
constexpr std::string_view to_string(trace_kind k) noexcept {
  switch (k) {
    case trace_kind::request: return "request";
    case trace_kind::response: return "response";
    case trace_kind::watch: return "watch";
    case trace_kind::session: return "session";
    case trace_kind::election: return "election";
    case trace_kind::fault: return "fault";
    case trace_kind::note: return "note";
  }
  return "unknown";
}

namespace detail::trace_fmt {

/// Length of the well-formed UTF-8 sequence starting at s[i] (s[i] >= 0x80), or 0 if ill-formed.
/// Follows the Unicode "well-formed byte sequences" table (no overlongs, no surrogates).
constexpr std::size_t utf8_sequence_length(std::string_view s, std::size_t i) noexcept {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  const std::size_t left = s.size() - i;
  const auto cont = [&](std::size_t k, unsigned char lo = 0x80, unsigned char hi = 0xBF) {
    return k < s.size() && b(k) >= lo && b(k) <= hi;
  };
  if (c >= 0xC2 && c <= 0xDF) return left >= 2 && cont(i + 1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    const unsigned char lo = c == 0xE0 ? 0xA0 : 0x80;
    const unsigned char hi = c == 0xED ? 0x9F : 0xBF;
    return cont(i + 1, lo, hi) && cont(i + 2) ? 3 : 0;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    const unsigned char lo = c == 0xF0 ? 0x90 : 0x80;
    const unsigned char hi = c == 0xF4 ? 0x8F : 0xBF;
    return cont(i + 1, lo, hi) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  }
  return 0;
}

inline void append_u00(std::string& out, unsigned char c) {
  constexpr std::string_view hex = "0123456789abcdef";
  out += "\\u00";
  out += hex[c >> 4];
  out += hex[c & 0xF];
}

/// Appends `s` as a quoted JSON string with the escaping described at the top of this file.
inline void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
      ++i;
    } else if (c < 0x20) {
      append_u00(out, c);
      ++i;
    } else if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
    } else if (const std::size_t n = utf8_sequence_length(s, i); n != 0) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      append_u00(out, c);
      ++i;
    }
  }
  out += '"';
}

/// True if the timeline can print `s` without quotes (see the top of this file).
constexpr bool timeline_bare(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c >= 0x7F || c == '"' || c == '\\' || c == '=') return false;
  }
  return true;
}

inline void append_timeline_string(std::string& out, std::string_view s) {
  if (timeline_bare(s)) {
    out.append(s);
  } else {
    append_json_string(out, s);
  }
}

template <class I>
void append_integer(std::string& out, I v) {
  std::array<char, 24> buf{};
  const auto r = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  out.append(buf.data(), r.ptr);
}

inline void pad_to(std::string& out, std::size_t start, std::size_t width) {
  const std::size_t used = out.size() - start;
  if (used < width) out.append(width - used, ' ');
}

/// Appends `us` microseconds as seconds with exactly 6 decimals ("-0.000001", "12.500000").
inline void append_seconds(std::string& out, std::int64_t us) {
  std::uint64_t mag = us < 0 ? std::uint64_t{0} - static_cast<std::uint64_t>(us) : static_cast<std::uint64_t>(us);
  if (us < 0) out += '-';
  append_integer(out, mag / 1'000'000);
  out += '.';
  std::array<char, 6> frac{};
  std::uint64_t f = mag % 1'000'000;
  for (std::size_t k = frac.size(); k-- > 0;) {
    frac[k] = static_cast<char>('0' + f % 10);
    f /= 10;
  }
  out.append(frac.data(), frac.size());
}

inline constexpr std::uint64_t fnv_offset = 14695981039346656037ULL;
inline constexpr std::uint64_t fnv_prime = 1099511628211ULL;

constexpr std::uint64_t fnv1a(std::uint64_t h, std::string_view bytes) noexcept {
  for (const char ch : bytes) {
    h ^= static_cast<unsigned char>(ch);
    h *= fnv_prime;
  }
  return h;
}

template <class T>
concept field_integer = std::integral<T> && !std::same_as<std::remove_cv_t<T>, bool> &&
                        !std::same_as<std::remove_cv_t<T>, char> && !std::same_as<std::remove_cv_t<T>, wchar_t> &&
                        !std::same_as<std::remove_cv_t<T>, char8_t> && !std::same_as<std::remove_cv_t<T>, char16_t> &&
                        !std::same_as<std::remove_cv_t<T>, char32_t>;

}  // namespace detail::trace_fmt

/// The observability sink. Default-constructed: disabled (records nothing, costs one branch
/// per call). Constructed from `options` with at least one output: enabled for its lifetime.
/// Move-only (a copy would silently duplicate output into the same streams).
/// Thread safety: none; one thread (the simulator's) owns a trace.
class trace {
 public:
  using kind = trace_kind;

  /// Where an enabled trace writes. The streams are not owned and must outlive the trace
  /// (or the last record() call). Any combination works; all null/false means disabled.
  struct options {
    std::ostream* json = nullptr;      ///< JSON lines go here as they are recorded.
    bool collect_json = false;         ///< Also keep the JSON lines in memory (json_text()).
    std::ostream* timeline = nullptr;  ///< The human-readable timeline goes here.
    bool hash_only = false;            ///< Enable even with no output, just to compute hash().
  };

  /// The ordered key/value fields of one event, filled by the builder passed to record().
  /// Only an enabled trace ever creates one. Keys must be non-empty, unique within the event
  /// and not "t_us", "kind" or "actor": add() throws std::invalid_argument otherwise (the
  /// event is then not recorded; see record()). May allocate (enabled path only).
  /// Thread safety: none.
  class fields {
   public:
    /// A string value (any bytes; escaped on output).
    void add(std::string_view key, std::string_view value) {
      begin(key);
      detail::trace_fmt::append_json_string(json_, value);
      if (timeline_) detail::trace_fmt::append_timeline_string(*timeline_, value);
    }
    /// A C string value (so a literal is a string, not a bool). `value` must not be null.
    void add(std::string_view key, const char* value) { add(key, std::string_view(value)); }
    /// A boolean value: true / false in both outputs.
    void add(std::string_view key, bool value) { add_raw(key, value ? "true" : "false"); }
    /// An integer value (any integer type except bool and the character types), exact in
    /// decimal. Note that JSON readers using doubles lose precision beyond 2^53.
    template <detail::trace_fmt::field_integer I>
    void add(std::string_view key, I value) {
      std::array<char, 24> buf{};
      const auto r = std::to_chars(buf.data(), buf.data() + buf.size(), value);
      add_raw(key, std::string_view(buf.data(), static_cast<std::size_t>(r.ptr - buf.data())));
    }

    /// How many fields have been added to this event so far.
    std::size_t size() const noexcept { return keys_.size(); }

   private:
    friend class trace;
    fields() = default;

    void reset(std::string* timeline) {
      json_.clear();
      keys_.clear();
      timeline_ = timeline;
    }

    void begin(std::string_view key) {
      if (key.empty() || key == "t_us" || key == "kind" || key == "actor") {
        throw std::invalid_argument("zkr::sim::trace: reserved or empty field key");
      }
      for (const auto& k : keys_) {
        if (k == key) throw std::invalid_argument("zkr::sim::trace: duplicate field key");
      }
      keys_.emplace_back(key);
      json_ += ',';
      detail::trace_fmt::append_json_string(json_, key);
      json_ += ':';
      if (timeline_) {
        *timeline_ += ' ';
        detail::trace_fmt::append_timeline_string(*timeline_, key);
        *timeline_ += '=';
      }
    }

    void add_raw(std::string_view key, std::string_view literal) {
      begin(key);
      json_.append(literal);
      if (timeline_) timeline_->append(literal);
    }

    std::string json_;                 // ,"k":v,... for the current event
    std::string* timeline_ = nullptr;  // the current timeline line, or null if no timeline
    std::vector<std::string> keys_;    // keys of the current event (uniqueness check)
  };

  /// A disabled trace. Never fails.
  trace() noexcept = default;

  /// An enabled trace if `o` names at least one output (or hash_only), else a disabled one.
  explicit trace(const options& o)
      : enabled_(o.json != nullptr || o.collect_json || o.timeline != nullptr || o.hash_only),
        json_out_(o.json),
        collect_(o.collect_json),
        timeline_out_(o.timeline) {}

  trace(trace&&) noexcept = default;
  trace& operator=(trace&&) noexcept = default;
  trace(const trace&) = delete;
  trace& operator=(const trace&) = delete;
  ~trace() = default;

  /// Whether record() does anything. A plain bool read; never fails.
  bool enabled() const noexcept { return enabled_; }

  /// Records one event at virtual time `t` by `actor`, with the fields `build` adds.
  /// Disabled: returns at once; `build` is not called, nothing is formatted or allocated.
  /// Enabled: calls build(fields&) exactly once, then emits the event to every output.
  /// If `build` (or a fields::add) throws, the exception propagates and nothing is recorded
  /// (outputs, json_text(), hash() and events() are unchanged). A stream error is left to the
  /// stream (its state, or an exception if the caller enabled them); json_text(), hash() and
  /// events() already include the event by the time the streams are written.
  template <class Build>
    requires std::invocable<Build&, fields&>
  void record(clock_time t, trace_kind k, std::string_view actor, Build&& build) {
    if (!enabled_) return;
    emit(t, k, actor, build);
  }

  /// Records one event with no fields. Same guarantees as the other overload.
  void record(clock_time t, trace_kind k, std::string_view actor) {
    if (!enabled_) return;
    auto none = [](fields&) {};
    emit(t, k, actor, none);
  }

  /// FNV-1a 64 of the JSON bytes recorded so far (the offset basis when nothing is). Two
  /// runs that recorded the same events have the same hash. Never fails.
  std::uint64_t hash() const noexcept { return hash_; }

  /// Number of events recorded so far (0 when disabled). Never fails.
  std::size_t events() const noexcept { return events_; }

  /// The JSON lines recorded so far if options::collect_json, else empty. Never fails.
  const std::string& json_text() const noexcept { return collected_; }

  /// Virtual time `t` in whole microseconds since the simulation's start (rounded down).
  static std::int64_t micros(clock_time t) noexcept {
    return std::chrono::floor<std::chrono::microseconds>(t.time_since_epoch()).count();
  }

 private:
  template <class Build>
  void emit(clock_time t, trace_kind k, std::string_view actor, Build& build) {
    namespace f = detail::trace_fmt;
    const std::int64_t us = micros(t);
    const bool tl = timeline_out_ != nullptr;
    timeline_line_.clear();
    fields_.reset(tl ? &timeline_line_ : nullptr);
    if (tl) {
      f::append_seconds(timeline_line_, us);
      if (timeline_line_.size() < 11) timeline_line_.insert(0, 11 - timeline_line_.size(), ' ');
      timeline_line_ += "  ";
      std::size_t start = timeline_line_.size();
      f::append_timeline_string(timeline_line_, actor);
      f::pad_to(timeline_line_, start, 10);
      timeline_line_ += ' ';
      start = timeline_line_.size();
      timeline_line_ += to_string(k);
      f::pad_to(timeline_line_, start, 9);
      // The fields start with ' ', so the kind column is followed by at least two spaces.
    }
    std::invoke(build, fields_);  // may throw: nothing has been emitted yet

    line_.clear();
    line_ += "{\"t_us\":";
    f::append_integer(line_, us);
    line_ += ",\"kind\":";
    f::append_json_string(line_, to_string(k));
    line_ += ",\"actor\":";
    f::append_json_string(line_, actor);
    line_ += fields_.json_;
    line_ += "}\n";

    hash_ = f::fnv1a(hash_, line_);
    ++events_;
    if (collect_) collected_ += line_;
    if (json_out_ != nullptr) json_out_->write(line_.data(), static_cast<std::streamsize>(line_.size()));
    if (tl) {
      while (!timeline_line_.empty() && timeline_line_.back() == ' ') timeline_line_.pop_back();
      timeline_line_ += '\n';
      timeline_out_->write(timeline_line_.data(), static_cast<std::streamsize>(timeline_line_.size()));
    }
  }

  bool enabled_ = false;
  std::ostream* json_out_ = nullptr;
  bool collect_ = false;
  std::ostream* timeline_out_ = nullptr;
  std::uint64_t hash_ = detail::trace_fmt::fnv_offset;
  std::size_t events_ = 0;
  std::string collected_;
  std::string line_;           // reused: the current JSON line
  std::string timeline_line_;  // reused: the current timeline line
  fields fields_;              // reused: the current event's fields
};

}  // namespace zkr::sim
