// zkr/recipes/protected_name.hpp: the naming rules the sequential recipes share with Curator.
//
// Curator's "protected" creates prefix a node's name with `_c_<uuid>-` (CreateBuilderImpl's
// PROTECTED_PREFIX), so that after a create whose reply was lost (connection loss: outcome
// unknown) the client can find its node again among the parent's children. zkr's leader latch
// and mutex use exactly Curator's names, so C++ and Java contenders share one path:
//
//   <lock path>/_c_<uuid>-lock-0000000007      (InterProcessMutex)
//   <latch path>/_c_<uuid>-latch-0000000003    (LeaderLatch)
//
// Contenders are ordered by the sequence suffix only (StandardLockInternalsDriver.fixForSorting:
// the text after the recipe's marker), never by the full name, whose protected prefixes differ.
// The suffix is ZooKeeper's `%010d` of the parent's cversion, negative after it wraps, so it
// is parsed as a signed number.
//
// Thread safety: pure functions; `make_protected_prefix` uses the caller's prng (the
// session's), which must not be used concurrently.
#pragma once

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <zkr/random.hpp>

namespace zkr::recipes {

/// Curator's protected-name marker.
inline constexpr std::string_view protected_marker = "_c_";

/// A random version-4 UUID in canonical lower-case form (36 characters), drawn from `rng`
/// (the session's prng, so the simulator replays it). Never fails.
inline std::string make_uuid(prng& rng) {
  const std::uint64_t hi = (rng.next_u64() & 0xFFFFFFFFFFFF0FFFull) | 0x0000000000004000ull;  // version 4
  const std::uint64_t lo = (rng.next_u64() & 0x3FFFFFFFFFFFFFFFull) | 0x8000000000000000ull;  // variant 10
  static constexpr char hex[] = "0123456789abcdef";
  std::string s;
  s.reserve(36);
  const auto put = [&](std::uint64_t v, int nibbles) {
    for (int i = nibbles - 1; i >= 0; --i) s += hex[(v >> (4 * i)) & 0xF];
  };
  put(hi >> 32, 8);
  s += '-';
  put((hi >> 16) & 0xFFFF, 4);
  s += '-';
  put(hi & 0xFFFF, 4);
  s += '-';
  put(lo >> 48, 4);
  s += '-';
  put(lo & 0xFFFFFFFFFFFFull, 12);
  return s;
}

/// "_c_<uuid>-": the protected prefix of one contender. Draw one per create attempt series
/// (a retry after connection loss must reuse it, or the node cannot be found again).
inline std::string make_protected_prefix(prng& rng) { return std::string(protected_marker) + make_uuid(rng) + "-"; }

/// True if `name` is a child created with `prefix` (a protected prefix).
constexpr bool has_prefix(std::string_view name, std::string_view prefix) noexcept {
  return name.substr(0, prefix.size()) == prefix;
}

/// The signed sequence number after `marker` in a child's name ("lock-", "latch-"), or
/// nullopt if the child is not one of the recipe's (no marker, or no `%010d` number right
/// after its last occurrence). `"_c_...-lock-0000000007"` -> 7; `"lock--000000001"` -> -1.
/// zkr orders the suffixes as numbers (Curator sorts them as strings). Neither order is right
/// across the wrap of the parent's int32 child counter: a post-wrap node (negative) sorts below
/// every older one. The latch and the mutex therefore refuse to contend with a node whose
/// sequence is negative (errc::sequence_exhausted).
inline std::optional<std::int64_t> sequence_of(std::string_view name, std::string_view marker) {
  const auto at = name.rfind(marker);
  if (at == std::string_view::npos) return std::nullopt;
  const std::string_view digits = name.substr(at + marker.size());
  // %010d: ten characters, or eleven for -2147483648 (the sign does not count in the width
  // once the number has ten digits).
  if (digits.size() != 10 && !(digits.size() == 11 && digits.front() == '-')) return std::nullopt;
  std::int64_t v = 0;
  const auto* first = digits.data();
  const auto* last = digits.data() + digits.size();
  const auto r = std::from_chars(first, last, v);
  if (r.ec != std::errc{} || r.ptr != last) return std::nullopt;
  return v;
}

/// The children that belong to the recipe (those with a sequence after `marker`), ordered by
/// that sequence (ties, which ZooKeeper never produces under one parent, by name). Others are
/// ignored, as Curator ignores them.
inline std::vector<std::string> sorted_contenders(std::vector<std::string> children, std::string_view marker) {
  std::vector<std::pair<std::int64_t, std::string>> keyed;
  keyed.reserve(children.size());
  for (auto& c : children) {
    if (const auto seq = sequence_of(c, marker)) keyed.emplace_back(*seq, std::move(c));
  }
  std::sort(keyed.begin(), keyed.end());
  std::vector<std::string> out;
  out.reserve(keyed.size());
  for (auto& [seq, name] : keyed) out.push_back(std::move(name));
  return out;
}

/// The child created with `prefix`, if any (the one with the highest sequence if, against
/// the rules, there are several).
inline std::optional<std::string> find_protected(const std::vector<std::string>& children, std::string_view prefix,
                                                 std::string_view marker) {
  std::optional<std::string> best;
  std::int64_t best_seq = 0;
  for (const auto& c : children) {
    if (!has_prefix(c, prefix)) continue;
    const auto seq = sequence_of(c, marker);
    if (!seq) continue;
    if (!best || *seq > best_seq) {
      best = c;
      best_seq = *seq;
    }
  }
  return best;
}

}  // namespace zkr::recipes
