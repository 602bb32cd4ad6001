// sim/tools/scenario_stale_read.hpp: the `stale-read` scenario.
//
// Story. A writer is connected to the leader, a reader to a follower that applies commits
// 3 s late (a slow disk, a long GC on the follower). The writer sets /config from v1 to v2
// and, once the write is acknowledged, tells the reader out of band ("read it now"). The
// reader's plain read returns v1: its server answers from its own replica, which has not
// applied the commit yet. ZooKeeper's reads are sequentially consistent per client, not
// linearizable. The reader then calls sync("/config"), which completes once its server has
// caught up with the leader, and reads again: v2.
#pragma once

#include <optional>
#include <string>

#include <boost/asio/post.hpp>

#include "scenario_support.hpp"

namespace zkr::sim::tools {

inline run_result run_stale_read(const run_config& cfg) {
  constexpr std::chrono::milliseconds session_timeout{6000};
  constexpr auto lag = 3s;
  constexpr auto limit = 60s;
  const std::string path = "/config";

  cluster_options o = base_options(cfg);
  o.servers = 3;
  cluster c(o);
  narrator n(c);
  report rep("stale-read", cfg.seed);

  const std::size_t leader = c.leader().value_or(0);  // a fresh ensemble has elected one at time 0
  const std::size_t follower = (leader + 1) % c.size();
  const auto hosts = split_hosts(c.connect_string());
  session_options wo;
  wo.connect_string = hosts.at(leader);
  wo.session_timeout = session_timeout;
  wo.name = "writer";
  session_options ro;
  ro.connect_string = hosts.at(follower);
  ro.session_timeout = session_timeout;
  ro.name = "reader";
  session writer(c, wo);
  session reader(c, ro);
  n.note("demo", {{"plan", "writer on " + hosts[leader] + " (leader), reader on " + hosts[follower] +
                               " (a follower that will apply commits " + millis(lag) + " late)"}});

  struct read_record {
    clock_time t{};
    std::string value;
    std::error_code ec;
  };
  std::optional<clock_time> v1_written, lag_set, v2_written, sync_started, sync_done, closed_w, closed_r;
  std::optional<read_record> first_read, stale_read, synced_read;
  std::error_code write_error;

  // Step 4: after v2 is acknowledged, the reader reads (stale), syncs, reads again.
  const auto read_after_write = [&] {
    reader.async_get(path, [&](std::error_code ec, std::string value, zkr::stat) {
      stale_read = read_record{c.now(), value, ec};
      n.note("reader", {{"read", ec ? ec.message() : value}, {"why", "served by its follower's replica"}});
      sync_started = c.now();
      reader.async_sync(path, [&](std::error_code sec) {
        sync_done = c.now();
        if (sec) n.note("reader", {{"sync_failed", sec.message()}});
        reader.async_get(path, [&](std::error_code gec, std::string v, zkr::stat) {
          synced_read = read_record{c.now(), v, gec};
          n.note("reader", {{"read_after_sync", gec ? gec.message() : v}});
        });
      });
    });
  };
  // Step 3: the follower starts lagging; the writer writes v2 and tells the reader.
  const auto write_v2 = [&] {
    c.at(0s, "lag-follower", [&](cluster& cl) {
      lag_set = cl.now();
      cl.set_lag(follower, lag);
      boost::asio::post(writer.get_executor(), [&] {
        writer.async_set(path, "v2", -1, [&](std::error_code ec, zkr::stat) {
          if (ec) {
            write_error = ec;
            return;
          }
          v2_written = c.now();
          n.note("writer", {{"wrote", "v2"}, {"then", "tells the reader out of band to read now"}});
          boost::asio::post(reader.get_executor(), read_after_write);
        });
      });
    });
  };
  // Steps 1-2: the writer creates v1; the reader syncs and sees it (no lag yet).
  writer.async_wait_connected([&](std::error_code ec) {
    if (ec) return;
    writer.async_create(path, "v1", {}, [&](std::error_code cec, std::string, zkr::stat) {
      if (cec) {
        write_error = cec;
        return;
      }
      v1_written = c.now();
      boost::asio::post(reader.get_executor(), [&] {
        reader.async_wait_connected([&](std::error_code wec) {
          if (wec) return;
          reader.async_sync(path, [&](std::error_code) {
            reader.async_get(path, [&](std::error_code gec, std::string v, zkr::stat) {
              first_read = read_record{c.now(), v, gec};
              n.note("reader", {{"read", gec ? gec.message() : v}});
              write_v2();
            });
          });
        });
      });
    });
  });

  c.run_until([&] { return synced_read.has_value() || write_error; }, limit);
  c.set_lag(follower, 0s);
  writer.async_close([&](std::error_code) { closed_w = c.now(); });
  reader.async_close([&](std::error_code) { closed_r = c.now(); });
  c.run_until([&] { return closed_w && closed_r; }, 10s);

  // ---- checks ---------------------------------------------------------------------------
  rep.check(!write_error, "the writer's writes succeeded" + (write_error ? " (" + write_error.message() + ")" : ""));
  rep.check(first_read && !first_read->ec && first_read->value == "v1", "the reader saw v1 before the lag");
  rep.check(stale_read && !stale_read->ec && stale_read->value == "v1" && v2_written && stale_read->t > *v2_written,
            "the reader's plain read after the acknowledged write of v2 returned the stale v1");
  rep.check(synced_read && !synced_read->ec && synced_read->value == "v2", "the read after sync returned v2");
  rep.check(closed_w && closed_r, "both sessions closed");

  // ---- summary --------------------------------------------------------------------------
  rep.para("The writer was connected to " + hosts[leader] + ", the leader; the reader to " + hosts[follower] +
           ", a follower made to apply commits " + millis(lag) + " late from " + (lag_set ? secs(*lag_set) : "-") + ".");
  std::string w = "writer: created " + path + " = v1" + (v1_written ? " at " + secs(*v1_written) : "");
  if (v2_written) {
    w += ", set it to v2, acknowledged at " + secs(*v2_written) +
         " (a write is acknowledged once a quorum has logged it, whatever a lagging follower has applied)";
  }
  rep.para(w + ".");
  std::string r = "reader:";
  if (first_read) r += " read " + (first_read->ec ? first_read->ec.message() : first_read->value) + " at " + secs(first_read->t) + ";";
  if (stale_read) {
    r += " told of the new value, it read again at " + secs(stale_read->t) + " and got " +
         (stale_read->ec ? stale_read->ec.message() : stale_read->value);
    if (!stale_read->ec && stale_read->value == "v1") {
      r += ", a stale value after the write had been acknowledged: a server answers reads from its own replica, "
           "so ZooKeeper reads are sequentially consistent per client, not linearizable";
    }
    r += ".";
  }
  if (sync_started && sync_done) {
    r += " It called sync at " + secs(*sync_started) + "; the sync completed at " + secs(*sync_done) +
         ", once its server had caught up with the leader";
  }
  if (synced_read) {
    r += ", and the next read returned " + (synced_read->ec ? synced_read->ec.message() : synced_read->value) +
         ". sync then read is how a client reads the latest committed value (at the price of a round trip "
         "through the leader).";
  }
  rep.para(r);
  return rep.finish(c, cfg.out);
}

}  // namespace zkr::sim::tools
