// sim/tools/scenario_demo.hpp: the `demo` scenario, zkr's main tour (no ZooKeeper needed).
//
// Story. Three clients, alice, bob and carol (session timeout 6 s), on a 3-server ensemble,
// each register an ephemeral node under /demo/members and watch the group with a children
// watch re-armed on every event. Then two faults:
//   1. At 3 s the leader is killed: an election pause (0.4-0.6 s) during which the servers
//      refuse clients. Every session survives it: each client is suspended, then
//      reconnected with the same session, and its node stays, because no session expires
//      because of an election (the new leader gives every session a fresh timeout). The
//      killed server restarts at 8 s.
//   2. At 12 s carol is cut off from every server for 15 s, longer than her session timeout.
//      She is suspended, then lost: presumed lost by her own deadline (no server heard for
//      her timeout) before any server could tell her. The leader expires her session and
//      deletes her node, which alice's and bob's watches show. After the heal at 27 s she
//      opens a new session (generation 2) and registers again; the others see her node
//      come back.
// At the end all three close, and the summary says what each client saw and why.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "member.hpp"
#include "scenario_support.hpp"

namespace zkr::sim::tools {

namespace demo_detail {

/// Names in `a` that are not in `b` (both sorted).
inline std::vector<std::string> minus(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::vector<std::string> out;
  std::ranges::set_difference(a, b, std::back_inserter(out));
  return out;
}

}  // namespace demo_detail

inline run_result run_demo(const run_config& cfg) {
  using demo_detail::minus;
  constexpr std::chrono::milliseconds session_timeout{6000};
  constexpr auto kill_at = 3s;
  constexpr auto restart_at = 8s;
  constexpr auto partition_at = 12s;
  constexpr auto heal_at = 27s;
  constexpr auto limit = 90s;  // the story takes ~30 s; a run that goes on is a failure
  const std::string group = "/demo/members";

  cluster_options o = base_options(cfg);
  o.servers = 3;
  cluster c(o);
  narrator n(c);
  report rep("demo", cfg.seed);

  n.note("demo", {{"plan", "alice, bob and carol register under /demo/members and watch each other"}});
  std::vector<std::unique_ptr<member>> ms;
  for (const char* name : {"alice", "bob", "carol"}) {
    ms.push_back(std::make_unique<member>(c, n, name, group, session_timeout, true));
  }
  member& carol = *ms[2];

  // The faults, scheduled up front (virtual offsets from time 0).
  std::optional<std::size_t> killed;
  std::optional<clock_time> kill_time, partition_time, heal_time;
  std::vector<std::string> owners_kept;  // god's view of the nodes just before the partition
  c.at(kill_at, "kill-leader", [&](cluster& cl) {
    killed = cl.leader();
    kill_time = cl.now();
    n.note("demo", {{"why", "kill the leader: the ensemble refuses clients while it elects a new one"}});
    cl.kill_leader();
  });
  c.at(restart_at, "restart-server", [&](cluster& cl) {
    if (killed) cl.restart_server(*killed);
  });
  c.at(partition_at, "isolate-carol", [&](cluster& cl) {
    partition_time = cl.now();
    if (const auto l = cl.leader()) {
      for (const auto& m : ms) {
        const auto* node = cl.tree(*l).find(m->path());
        if (node != nullptr && !m->registrations().empty() && node->owner == m->registrations().front().session_id) {
          owners_kept.push_back(m->name());
        }
      }
    }
    n.note("demo", {{"why", "cut carol off from every server for 15 s, longer than her 6 s session timeout"}});
    cl.isolate(endpoint::client(carol.get_session().process()));
  });
  c.at(heal_at, "heal", [&](cluster& cl) {
    heal_time = cl.now();
    cl.heal();
  });

  // Run until carol is back (generation 2) and both others see her again, then close.
  const auto story_done = [&] {
    if (!heal_time || carol.registrations().empty() || carol.registrations().back().generation < 2) return false;
    const clock_time back = carol.registrations().back().t;
    for (const auto& m : ms) {
      if (m.get() == &carol) continue;
      if (m->views().empty() || m->views().back().t < back || !m->sees("carol")) return false;
    }
    return true;
  };
  c.run_until(story_done, limit);
  c.run_for(1s);
  n.note("demo", {{"why", "the story is over: everyone closes (their ephemeral nodes go with their sessions)"}});
  for (auto& m : ms) m->close();
  c.run_until([&] { return std::ranges::all_of(ms, [](const auto& m) { return m->closed(); }); }, 10s);

  // ---- checks ---------------------------------------------------------------------------
  rep.check(kill_time && partition_time && heal_time, "the faults ran");
  const clock_time t_kill = kill_time.value_or(clock_time::max());
  const clock_time t_part = partition_time.value_or(clock_time::max());
  const clock_time t_heal = heal_time.value_or(clock_time::max());
  for (const auto& m : ms) {
    const auto& name = m->name();
    rep.check(!m->registrations().empty() && m->registrations().front().t < t_kill,
              name + " registered before the leader was killed");
    const auto* v = m->view_at(t_kill);
    rep.check(v != nullptr && v->members.size() == 3, name + " saw all three members before the leader was killed");
    const auto* susp = first_after(m->transitions(), session_state::suspended, t_kill);
    const auto* reco = first_after(m->transitions(), session_state::reconnected, t_kill);
    rep.check(susp != nullptr && susp->t < t_part, name + " was suspended by the election");
    rep.check(reco != nullptr && reco->t < t_part && susp != nullptr && reco->session_id == susp->session_id,
              name + " reconnected with the same session after the election");
    for (const auto& t : with_state(m->transitions(), session_state::lost)) {
      rep.check(t.t >= t_part, name + " lost no session before the partition (lost at " + secs(t.t) + ")");
    }
    rep.check(std::ranges::find(owners_kept, name) != owners_kept.end(),
              name + "'s node survived the election with its first session as owner");
    rep.check(m->closed(), name + " closed");
  }
  {
    const auto* susp = first_after(carol.transitions(), session_state::suspended, t_part);
    const auto* lost = first_after(carol.transitions(), session_state::lost, t_part);
    rep.check(susp != nullptr && susp->t < t_heal, "carol was suspended while cut off");
    rep.check(lost != nullptr && lost->t < t_heal && (susp == nullptr || lost->t > susp->t),
              "carol was lost while cut off, after being suspended");
    rep.check(lost != nullptr && lost->reason == zkr::errc::session_lost,
              "carol's first loss was presumed by her own deadline (session_lost)");
    const auto* conn = first_after(carol.transitions(), session_state::connected, t_heal);
    rep.check(conn != nullptr && conn->generation == 2, "carol connected a new session (generation 2) after the heal");
    rep.check(!carol.registrations().empty() && carol.registrations().back().generation == 2 &&
                  carol.registrations().back().t >= t_heal,
              "carol registered again with her new session");
  }
  for (const auto& m : ms) {
    if (m.get() == &carol) continue;
    bool left = false, back = false;
    for (const auto& v : m->views()) {
      const bool has = std::ranges::find(v.members, "carol") != v.members.end();
      if (!has && v.t > t_part && v.t < t_heal) left = true;
      if (has && left && v.t >= t_heal) back = true;
    }
    rep.check(left, m->name() + "'s watch showed carol's node leaving while she was cut off");
    rep.check(back, m->name() + "'s watch showed carol's node coming back after the heal");
  }

  // ---- summary --------------------------------------------------------------------------
  const std::string killed_name = killed ? "s" + std::to_string(*killed) : "no server (there was no leader)";
  rep.para("Three clients (alice, bob, carol; session timeout " + millis(session_timeout) +
           ") on a 3-server ensemble each registered an ephemeral node under " + group +
           " and watched the group with a children watch re-armed on every event. Faults: the leader " + killed_name +
           " was killed at " + (kill_time ? secs(*kill_time) : "-") + " (restarted at " + secs(clock_time(restart_at)) +
           "); carol was cut off from every server from " + (partition_time ? secs(*partition_time) : "-") + " to " +
           (heal_time ? secs(*heal_time) : "-") + ", longer than her session timeout.");
  for (const auto& m : ms) {
    const auto& name = m->name();
    std::string p = name + " (negotiated timeout " + millis(m->get_session().negotiated_timeout()) +
                    "): " + transitions_text(*m) + ".";
    // The election.
    const auto* susp = first_after(m->transitions(), session_state::suspended, t_kill);
    const auto* reco = first_after(m->transitions(), session_state::reconnected, t_kill);
    if (susp != nullptr && reco != nullptr && susp->t < t_part && reco->t < t_part) {
      p += " Suspended at " + secs(susp->t) + " and reconnected at " + secs(reco->t) +
           " with the same session: the leader was killed and the servers refused clients during the election; "
           "no session expires because of an election (the new leader gives every session a fresh timeout), so " +
           name + "'s node stayed.";
    }
    // The partition (carol).
    if (m.get() == &carol) {
      // When another member first saw carol's node gone during the partition.
      std::optional<clock_time> gone_seen;
      for (const auto& other : ms) {
        for (const auto& v : other->views()) {
          if (other.get() == &carol || v.t <= t_part || v.t >= t_heal) continue;
          if (std::ranges::find(v.members, "carol") == v.members.end() && (!gone_seen || v.t < *gone_seen)) {
            gone_seen = v.t;
          }
        }
      }
      const auto* s2 = first_after(m->transitions(), session_state::suspended, t_part);
      const auto* lost = first_after(m->transitions(), session_state::lost, t_part);
      const auto* conn = first_after(m->transitions(), session_state::connected, t_heal);
      if (s2 != nullptr) {
        p += " Cut off at " + secs(t_part) + ", she noticed at " + secs(s2->t) +
             " (suspended: no reply from her server, so her session might still be alive).";
      }
      if (lost != nullptr) {
        if (lost->reason == zkr::errc::session_lost) {
          p += " At " + secs(lost->t) + " she was lost with reason session_lost: presumed expired by her own deadline "
               "(no server heard for her session timeout: her last reply came before the cut), before any server could tell her.";
          if (gone_seen && *gone_seen < lost->t) {
            p += " The servers had expired her session earlier: the others saw her node go at " + secs(*gone_seen) +
                 ". A client learns of its expiry late, which is why `suspended`, not `lost`, is when a lock holder "
                 "or leader must stop acting as one.";
          }
        } else {
          p += " At " + secs(lost->t) + " she was lost with reason " + reason_name(lost->reason) + ".";
        }
      }
      for (const auto& t : with_state(m->transitions(), session_state::lost)) {
        if (&t != lost && lost != nullptr && t.t > lost->t) {
          p += " At " + secs(t.t) + " she was told " + reason_name(t.reason) + " again.";
        }
      }
      if (conn != nullptr) {
        p += " After the heal she opened a new session at " + secs(conn->t) + " (generation " +
             std::to_string(conn->generation) + ", session " + hex_id(conn->session_id) + ")";
        if (!m->registrations().empty() && m->registrations().back().generation == conn->generation) {
          p += " and registered " + m->path() + " again at " + secs(m->registrations().back().t);
        }
        p += ".";
      }
      if (!m->waited_for_old_node().empty()) {
        p += " Her create first found the node still held by her old session and waited for the servers to "
             "expire it.";
      }
    }
    // The watch.
    std::vector<std::string> seen;
    const member::view* prev = nullptr;
    for (const auto& v : m->views()) {
      std::string s = "[" + join(v.members) + "] at " + secs(v.t);
      if (prev != nullptr) {
        std::vector<std::string> why;
        for (const auto& gone : minus(prev->members, v.members)) {
          why.push_back(gone + " left" +
                        (gone == "carol" && v.t > t_part && v.t < t_heal
                             ? " (the leader expired her session while she was cut off; ephemeral nodes go on "
                               "expiry, never on a mere disconnect)"
                             : ""));
        }
        for (const auto& came : minus(v.members, prev->members)) {
          why.push_back(came + " joined" + (came == "carol" && v.t >= t_heal ? " (back with her new session)" : ""));
        }
        if (!why.empty()) s += ": " + join(why, "; ");
      }
      seen.push_back(std::move(s));
      prev = &v;
    }
    p += " Its watch on " + group + " showed " + join(seen, ", then ", "nothing") + ".";
    rep.para(std::move(p));
  }
  return rep.finish(c, cfg.out);
}

}  // namespace zkr::sim::tools
