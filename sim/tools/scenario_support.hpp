// sim/tools/scenario_support.hpp: what every zkr-sim scenario shares: how a run is configured
// and what it returns, deterministic formatting of times and ids, narration into the trace,
// the summary printed at the end, and the scenario's own checks of its story.
//
// A scenario is a plain function `run_result run_x(const run_config&)`: it builds a cluster
// from the seed, drives it in virtual time, and prints the cluster's timeline (the trace) and
// then a plain-English summary to `run_config::out`. Everything it prints depends only on the
// seed: no wall clock, no pointers, no unordered containers, integers through std::to_chars.
// So the same seed gives the same output, byte for byte (tests/sim_tools checks that).
//
// A scenario also checks that its story happened (e.g. "carol's session expired and came
// back with generation 2"). A failed check is printed in the summary and makes the run fail:
// either the simulator or the recipe code of the scenario is wrong, and the seed reproduces it.
//
// Thread safety: none; everything runs on the thread that calls the scenario.
#pragma once

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <ostream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <zkr/sim/cluster.hpp>
#include <zkr/sim/session.hpp>
#include <zkr/sim/trace.hpp>

namespace zkr::sim::tools {

using namespace std::chrono_literals;

/// How to run a scenario.
struct run_config {
  std::uint64_t seed = 1;
  /// The timeline (one line per trace event) and the summary; null prints nothing.
  std::ostream* out = nullptr;
  /// The trace as JSON lines (zkr/sim/trace.hpp); null writes none.
  std::ostream* json = nullptr;
};

/// What a run did. `ok` is false if a check of the scenario's story failed.
struct run_result {
  bool ok = false;
  std::vector<std::string> failed_checks;
  std::uint64_t trace_hash = 0;       ///< FNV-1a of the JSON lines (computed even when not written)
  std::size_t trace_events = 0;
  std::uint64_t scheduler_events = 0;
  std::int64_t end_us = 0;            ///< virtual time at the end, microseconds
};

/// One entry of `zkr-sim list`.
struct scenario {
  std::string_view name;
  std::string_view description;  ///< one line
  run_result (*run)(const run_config&);
};

// ---- deterministic formatting -------------------------------------------------------------

/// Microseconds since the start of the simulation.
inline std::int64_t micros(clock_time t) { return trace::micros(t); }

/// A space the summary never breaks a line at ("12.5 s" stays on one line); printed as ' '.
inline constexpr char nbsp = '\x1f';

/// Virtual time as seconds with 6 decimals, as the timeline prints it ("12.345678 s"),
/// rounded down to the microsecond, so a summary's times can be found in the timeline.
inline std::string secs(clock_time t) {
  const std::int64_t us = micros(t);
  std::string out = std::to_string(us / 1'000'000);
  out += '.';
  const auto frac = std::to_string(1'000'000 + us % 1'000'000);  // "1xxxxxx": keeps the leading zeros
  out.append(frac, 1, 6);
  out += nbsp;
  out += 's';
  return out;
}

/// Turns the summary's unbreakable spaces into spaces.
inline std::string plain(std::string s) {
  std::ranges::replace(s, nbsp, ' ');
  return s;
}

/// A duration in milliseconds ("6000 ms"), rounded down.
inline std::string millis(clock_duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) + nbsp + "ms";
}

/// A session id as ZooKeeper prints it ("0x100000000000001").
inline std::string hex_id(std::int64_t id) {
  std::array<char, 20> buf{};
  const auto r = std::to_chars(buf.data(), buf.data() + buf.size(), static_cast<std::uint64_t>(id), 16);
  return "0x" + std::string(buf.data(), r.ptr);
}

/// "a, b, c" (or the `empty` text for no items).
inline std::string join(const std::vector<std::string>& items, std::string_view sep = ", ",
                        std::string_view empty = "") {
  if (items.empty()) return std::string(empty);
  std::string out;
  for (const auto& s : items) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

/// The host:port entries of a connect string, in order, without the chroot.
inline std::vector<std::string> split_hosts(std::string_view connect_string) {
  const auto slash = connect_string.find('/');
  if (slash != std::string_view::npos) connect_string = connect_string.substr(0, slash);
  std::vector<std::string> hosts;
  while (!connect_string.empty()) {
    const auto comma = connect_string.find(',');
    hosts.emplace_back(connect_string.substr(0, comma));
    if (comma == std::string_view::npos) break;
    connect_string.remove_prefix(comma + 1);
  }
  return hosts;
}

/// The cluster options every scenario starts from: the seed and the trace outputs. The hash
/// is always computed, so a run without outputs still has a fingerprint.
inline cluster_options base_options(const run_config& cfg) {
  cluster_options o;
  o.seed = cfg.seed;
  o.trace.json = cfg.json;
  o.trace.timeline = cfg.out;
  o.trace.hash_only = true;
  return o;
}

// ---- narration ------------------------------------------------------------------------------

/// Writes the scenario's own remarks into the trace as `note` events, so they appear in the
/// timeline and the JSON lines in order with the simulator's events.
class narrator {
 public:
  explicit narrator(cluster& c) : c_(c) {}

  /// One note by `actor` with string fields in the given order (values may come from
  /// secs() or millis(): their unbreakable spaces are written as spaces).
  void note(std::string_view actor, std::initializer_list<std::pair<std::string_view, std::string_view>> fields) {
    c_.get_trace().record(c_.now(), trace_kind::note, actor, [&](trace::fields& f) {
      for (const auto& [k, v] : fields) f.add(k, plain(std::string(v)));
    });
  }

 private:
  cluster& c_;
};

// ---- checks and the summary -----------------------------------------------------------------

/// The scenario's story checks and the summary text, printed at the end of the run.
class report {
 public:
  report(std::string_view scenario, std::uint64_t seed) : scenario_(scenario), seed_(seed) {}

  /// Records a check of the story; a false one fails the run.
  void check(bool ok, std::string what) {
    if (!ok) failed_.push_back(plain(std::move(what)));
  }
  /// A paragraph of the summary (wrapped at print time).
  void para(std::string text) { paras_.push_back(std::move(text)); }

  /// Prints the summary to `out` (if any) and fills the result from the cluster's trace.
  run_result finish(cluster& c, std::ostream* out) const {
    run_result r;
    r.ok = failed_.empty();
    r.failed_checks = failed_;
    r.trace_hash = c.get_trace().hash();
    r.trace_events = c.get_trace().events();
    r.scheduler_events = c.get_scheduler().events_run();
    r.end_us = micros(c.now());
    if (out == nullptr) return r;
    std::ostream& os = *out;
    os << "\n==== summary: " << scenario_ << ", seed " << seed_ << " ====\n";
    for (const auto& p : paras_) os << wrap(p) << '\n';
    if (failed_.empty()) {
      os << "checks: all passed\n";
    } else {
      for (const auto& f : failed_) os << "CHECK FAILED: " << f << '\n';
    }
    std::array<char, 20> buf{};
    const auto h = std::to_chars(buf.data(), buf.data() + buf.size(), r.trace_hash, 16);
    os << "trace: " << r.trace_events << " events, hash " << std::string(buf.data(), h.ptr) << ", "
       << r.scheduler_events << " scheduler events, ended at " << plain(secs(c.now())) << '\n';
    os << "replay: zkr-sim run " << scenario_ << " --seed " << seed_ << " --trace " << scenario_ << "-" << seed_
       << ".jsonl\n";
    return r;
  }

 private:
  /// Wraps at 96 columns; continuation lines are indented by 2 (a paragraph starting with
  /// "- " is a bullet and its continuation lines by 4).
  static std::string wrap(const std::string& text) {
    constexpr std::size_t width = 96;
    const std::size_t indent = text.rfind("  - ", 0) == 0 ? 4 : 2;
    std::string out;
    out.reserve(text.size() + text.size() / width * (indent + 1));
    std::size_t line_len = 0;
    std::size_t i = 0;
    while (i < text.size()) {
      std::size_t j = text.find(' ', i);
      if (j == std::string::npos) j = text.size();
      const std::string_view word(text.data() + i, j - i);
      if (line_len > 0 && line_len + 1 + word.size() > width) {
        out += '\n';
        out.append(indent, ' ');
        line_len = indent;
      } else if (i > 0) {
        out += ' ';
        ++line_len;
      }
      out.append(word);
      line_len += word.size();
      i = j + 1;
    }
    return plain(std::move(out));
  }



  std::string scenario_;
  std::uint64_t seed_;
  std::vector<std::string> paras_;
  std::vector<std::string> failed_;
};

// ---- what a client saw ----------------------------------------------------------------------

/// A session's state transitions as its listener saw them, with the virtual time.
struct transition {
  clock_time t{};
  session_state state = session_state::connecting;
  std::uint64_t generation = 0;
  std::error_code reason;
  std::int64_t session_id = 0;  ///< the session's id when the listener ran
};

/// The transitions of `log` with state `s`, in order.
inline std::vector<transition> with_state(const std::vector<transition>& log, session_state s) {
  std::vector<transition> out;
  std::copy_if(log.begin(), log.end(), std::back_inserter(out), [s](const transition& t) { return t.state == s; });
  return out;
}

/// First transition to `s` at or after `from`, or null.
inline const transition* first_after(const std::vector<transition>& log, session_state s, clock_time from) {
  for (const auto& t : log) {
    if (t.state == s && t.t >= from) return &t;
  }
  return nullptr;
}

/// "session_lost" / "session_expired" (the zkr::errc name of a lost reason), or its message.
inline std::string reason_name(const std::error_code& ec) {
  if (ec == zkr::errc::session_lost) return "session_lost";
  if (ec == zkr::errc::session_expired) return "session_expired";
  if (ec == zkr::errc::auth_failed) return "auth_failed";
  if (!ec) return "none";
  return ec.message();
}

}  // namespace zkr::sim::tools
