// sim/tools/scenario_gc_pause.hpp: the `gc-pause` scenario.
//
// Story. A worker (session timeout 4 s) registers the ephemeral node /gc/worker, as a lock
// holder or a leader would, and does a unit of work every second while it believes it holds
// the node. An observer watches the node with an exists watch. At 5 s the worker's process
// stops for 10 s (a stop-the-world GC pause): its timers, callbacks and incoming messages
// wait; the servers and the observer go on. The servers hear nothing from the worker for its
// session timeout, expire its session and delete its node; the observer sees it go. When
// the worker wakes up, its held events run in their original order: it may do a unit of
// work still believing it holds the node before it learns that its session is gone, which
// is why a holder needs fencing (zkr hands out the node's czxid as a fencing token). Then
// it opens a new session and registers again; the observer sees the node come back.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "member.hpp"
#include "scenario_support.hpp"

namespace zkr::sim::tools {

inline run_result run_gc_pause(const run_config& cfg) {
  constexpr std::chrono::milliseconds worker_timeout{4000};
  constexpr std::chrono::milliseconds observer_timeout{10000};
  constexpr auto pause_at = 5s;
  constexpr auto pause_for = 10s;
  constexpr auto work_period = 1s;
  constexpr auto limit = 60s;

  cluster_options o = base_options(cfg);
  o.servers = 3;
  cluster c(o);
  narrator n(c);
  report rep("gc-pause", cfg.seed);

  member worker(c, n, "worker", "/gc", worker_timeout, false);
  session_options oo;
  oo.connect_string = c.connect_string();
  oo.session_timeout = observer_timeout;
  oo.name = "observer";
  session observer(c, oo);
  const std::string path = worker.path();

  // The observer: an exists watch on the worker's node, re-armed on every event.
  struct seen_event {
    clock_time t{};
    event_type type = event_type::created;
  };
  std::vector<seen_event> seen;
  bool stopping = false;
  std::function<void()> watch_node = [&] {
    observer.async_exists(
        path,
        [&](std::error_code ec, zkr::watch_event ev) {
          if (ec || stopping) return;
          seen.push_back({c.now(), ev.type});
          n.note("observer", {{"saw", to_string(ev.type)}, {"path", ev.path}});
          watch_node();
        },
        [](std::error_code, zkr::stat) {});
  };
  observer.async_wait_connected([&](std::error_code ec) {
    if (!ec) watch_node();
  });

  // The worker's unit of work: a timer on its own process, so the pause stops it too.
  struct work_record {
    clock_time t{};
    bool believed = false;      // it believed it held the node
    bool held = false;          // the leader's tree said so (god's view)
    clock_duration late{};      // how late the tick ran
  };
  std::vector<work_record> work;
  session::timer_type work_timer(worker.get_session().get_executor());
  clock_time next_tick = clock_time(work_period);
  std::function<void()> schedule_work = [&] {
    work_timer.expires_at(next_tick);
    work_timer.async_wait([&](std::error_code ec) {
      if (ec || stopping) return;
      work_record w;
      w.t = c.now();
      w.late = c.now() - next_tick;
      w.believed = worker.believes_registered();
      if (const auto l = c.leader()) {
        const auto* node = c.tree(*l).find(path);
        w.held = node != nullptr && node->owner == worker.get_session().session_id();
      }
      work.push_back(w);
      if (w.believed && !w.held) {
        n.note("worker", {{"works_as", "holder"}, {"but", "the servers deleted its node: a stale belief"},
                          {"late_by", millis(w.late)}});
      } else if (w.late >= work_period) {
        n.note("worker", {{"works_as", w.believed ? "holder" : "not holder"}, {"late_by", millis(w.late)}});
      }
      next_tick = c.now() + work_period;
      schedule_work();
    });
  };
  schedule_work();

  std::optional<clock_time> pause_time;
  c.at(pause_at, "gc-pause", [&](cluster& cl) {
    pause_time = cl.now();
    n.note("demo", {{"why", "stop the worker's process for 10 s, longer than its 4 s session timeout"}});
    cl.pause_process(worker.get_session().process(), pause_for);
  });

  const auto story_done = [&] {
    if (!pause_time || worker.registrations().empty() || worker.registrations().back().generation < 2) return false;
    return !seen.empty() && seen.back().type == event_type::created && seen.back().t > *pause_time + pause_for;
  };
  c.run_until(story_done, limit);
  c.run_for(2s);
  stopping = true;
  work_timer.cancel();
  bool observer_closed = false;
  worker.close();
  observer.async_close([&](std::error_code) { observer_closed = true; });
  c.run_until([&] { return worker.closed() && observer_closed; }, 10s);

  // ---- checks ---------------------------------------------------------------------------
  const clock_time t_pause = pause_time.value_or(clock_time::max());
  const clock_time t_wake = pause_time ? *pause_time + pause_for : clock_time::max();
  rep.check(pause_time.has_value(), "the pause ran");
  rep.check(!worker.registrations().empty() && worker.registrations().front().t < t_pause,
            "the worker registered before the pause");
  const seen_event* deleted = nullptr;
  for (const auto& e : seen) {
    if (e.type == event_type::deleted && e.t > t_pause && e.t < t_wake && deleted == nullptr) deleted = &e;
  }
  rep.check(deleted != nullptr, "the observer saw the node deleted while the worker was paused");
  const auto* lost = first_after(worker.transitions(), session_state::lost, t_pause);
  rep.check(lost != nullptr && lost->t >= t_wake, "the worker learned it was lost only after waking up");
  for (const auto& t : worker.transitions()) {
    rep.check(t.t < t_pause || t.t >= t_wake, "the worker saw no transition while paused (" + secs(t.t) + ")");
  }
  rep.check(!worker.registrations().empty() && worker.registrations().back().generation == 2 &&
                worker.registrations().back().t >= t_wake,
            "the worker registered again with a new session after waking up");
  bool back = false;
  for (const auto& e : seen) back = back || (e.type == event_type::created && e.t >= t_wake);
  rep.check(back, "the observer saw the node come back");
  rep.check(worker.closed() && observer_closed, "both sessions closed");

  // ---- summary --------------------------------------------------------------------------
  rep.para("The worker (session timeout " + millis(worker_timeout) + ") registered " + path +
           " and worked every " + millis(work_period) + " while it believed it held it; the observer watched the "
           "node. The worker's process was stopped from " + secs(t_pause) + " to " + secs(t_wake) + ".");
  std::string w = "worker: " + transitions_text(worker) + ".";
  std::vector<const work_record*> stale;
  for (const auto& r : work) {
    if (r.believed && !r.held) stale.push_back(&r);
  }
  if (!stale.empty()) {
    w += " On waking at " + secs(stale.front()->t) + " its held work tick ran first (" + millis(stale.front()->late) +
         " late) and it worked " + std::to_string(stale.size()) +
         " time(s) as the holder although the servers had already deleted its node: a paused process cannot "
         "know it was paused; a resource it guards must check a fencing token (the node's czxid).";
  } else {
    w += " On waking it learned of the loss before its next unit of work, so it never acted on a stale belief "
         "this time (another seed may order the held events differently).";
  }
  if (lost != nullptr) {
    w += " It was lost at " + secs(lost->t) + " (" + reason_name(lost->reason) + ")";
    if (!worker.registrations().empty() && worker.registrations().back().generation >= 2) {
      w += " and registered again at " + secs(worker.registrations().back().t) + " with a new session (" +
           hex_id(worker.registrations().back().session_id) + ")";
    }
    w += ".";
  }
  rep.para(w);
  std::vector<std::string> obs;
  for (const auto& e : seen) {
    std::string s = std::string(to_string(e.type)) + " at " + secs(e.t);
    if (e.type == event_type::deleted && e.t > t_pause && e.t < t_wake) {
      s += " (the leader expired the silent worker's session after its timeout and deleted its node)";
    } else if (e.type == event_type::created && e.t >= t_wake) {
      s += " (the worker's new session registered again)";
    }
    obs.push_back(std::move(s));
  }
  rep.para("observer: saw " + join(obs, ", then ", "no event") + ".");
  return rep.finish(c, cfg.out);
}

}  // namespace zkr::sim::tools
