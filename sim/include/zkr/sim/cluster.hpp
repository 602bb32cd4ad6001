// zkr/sim/cluster.hpp: a simulated ZooKeeper 3.8 ensemble in virtual time, with its network
// and fault injection. Sessions (zkr/sim/session.hpp) connect to it like C clients to servers.
//
// The model, in short (docs/simulator.md has the whole of it):
//   - N servers (1, 3, 5, ...), each with a replica `data_tree`. One is the leader: it
//     orders every write (zxid = epoch << 32 | counter), checks it against its view of the
//     outstanding changes (PrepRequestProcessor), proposes it and commits it once a quorum
//     has acknowledged; every server applies committed transactions in zxid order after its
//     own link delay (plus an optional lag), so a follower can serve stale reads until sync.
//     A write that fails still takes a zxid (an error txn), as in ZooKeeper.
//   - Each client connection is FIFO. A server answers a session's requests in order: a read
//     waits for the session's earlier writes to be applied locally; a watch event reaches
//     the client before the reply that shows the change.
//   - Only the leader expires sessions (tick-rounded deadlines, as SessionTrackerImpl); a
//     client's packets touch its session at the leader. An election gives every session a
//     fresh timeout. Ephemeral nodes go only with their session (close or expiry).
//   - An election (leader death, lost quorum, or a forced one) lasts a pause drawn from the
//     seed (default 0.4-0.6 s); meanwhile servers refuse clients and drop their connections.
//     Proposals not yet committed when a leader goes may or may not survive (a prefix of
//     them, drawn from the seed): the clients saw connection loss, so both are legal.
//   - Links delay messages (uniform in a range), can lose them (a lost message black-holes its
//     TCP connection: nothing more goes through, the client notices by its read timeout) and
//     can be cut (partitions); a killed server's connections are refused at once.
// Every random choice comes from one prng seeded by `cluster_options::seed`; containers are
// ordered; so the same seed and program give the same run, and the same trace, byte for byte.
//
// Thread safety: none. A cluster, its sessions and its scheduler are used from one thread.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include <zkr/error.hpp>
#include <zkr/op.hpp>
#include <zkr/random.hpp>
#include <zkr/request_size.hpp>
#include <zkr/sim/data_tree.hpp>
#include <zkr/sim/scheduler.hpp>
#include <zkr/sim/trace.hpp>
#include <zkr/types.hpp>

namespace zkr::sim {

/// How a link behaves. Delays are drawn uniformly in [delay_min, delay_max] per message and
/// never reorder a connection's messages (TCP). `loss` is the probability that a message is
/// lost, which black-holes its connection (nothing more passes; the client's read timeout
/// notices), as a TCP connection whose peer vanished.
struct link_options {
  clock_duration delay_min = std::chrono::microseconds(50);
  clock_duration delay_max = std::chrono::microseconds(250);
  double loss = 0;
};

/// A network endpoint: a server (by index) or a client process (a session's process()).
struct endpoint {
  enum class kind : std::uint8_t { server, client };
  kind type = kind::server;
  std::uint32_t id = 0;

  static endpoint server(std::size_t index) { return {kind::server, static_cast<std::uint32_t>(index)}; }
  static endpoint client(process_id p) { return {kind::client, p}; }
  friend auto operator<=>(const endpoint&, const endpoint&) = default;
};

/// Everything a cluster run depends on: the seed and every knob (TigerBeetle's one options
/// struct). Defaults follow a real 3-node 3.8 ensemble on loopback.
struct cluster_options {
  /// Seeds the one prng behind every delay, loss, election pause and session seed.
  std::uint64_t seed = 1;
  /// Number of servers (>= 1; odd sizes make sense).
  std::size_t servers = 3;
  /// ZooKeeper's tickTime. Session timeouts are clamped to [2, 20] x tick; the leader
  /// checks session expiry once per tick.
  std::chrono::milliseconds tick_time{2000};
  /// Session timeout bounds (minSessionTimeout, maxSessionTimeout); zero: ZooKeeper's
  /// defaults, 2 and 20 x tick_time.
  std::chrono::milliseconds min_session_timeout{0};
  std::chrono::milliseconds max_session_timeout{0};
  /// Client <-> server links.
  link_options client_links{};
  /// Server <-> server links (request forwarding, proposals, commits).
  link_options server_links{};
  /// How long an election keeps the ensemble unavailable, drawn uniformly per election.
  /// Measured on a real 3-node 3.8 ensemble on loopback: writes stall about 0.4-0.6 s after
  /// the leader is killed.
  clock_duration election_min = std::chrono::milliseconds(400);
  clock_duration election_max = std::chrono::milliseconds(600);
  /// How long a follower that regained the leader takes to sync and serve again.
  clock_duration rejoin_min = std::chrono::milliseconds(50);
  clock_duration rejoin_max = std::chrono::milliseconds(200);
  /// ContainerManager's period (znode.container.checkIntervalMs): containers and TTL nodes.
  std::chrono::milliseconds container_check_interval{60000};
  /// The servers' jute.maxbuffer: a larger request makes a server drop the connection.
  std::size_t max_request_bytes = default_max_request_bytes;
  /// Trace outputs (all off by default; zkr/sim/trace.hpp).
  zkr::sim::trace::options trace{};
  /// Event limits of the scheduler (livelock guard).
  scheduler::options limits{};
};

namespace detail {

/// What a client asks of a server.
enum class req_type : std::uint8_t {
  create, remove, exists, get, get_children, set, get_acl, set_acl, multi, sync, add_auth, close, ping, set_watches
};

constexpr std::string_view to_string(req_type t) noexcept {
  switch (t) {
    case req_type::create: return "create";
    case req_type::remove: return "delete";
    case req_type::exists: return "exists";
    case req_type::get: return "getData";
    case req_type::get_children: return "getChildren";
    case req_type::set: return "setData";
    case req_type::get_acl: return "getACL";
    case req_type::set_acl: return "setACL";
    case req_type::multi: return "multi";
    case req_type::sync: return "sync";
    case req_type::add_auth: return "auth";
    case req_type::close: return "closeSession";
    case req_type::ping: return "ping";
    case req_type::set_watches: return "setWatches";
  }
  return "?";
}

constexpr bool is_write(req_type t) noexcept {
  return t == req_type::create || t == req_type::remove || t == req_type::set || t == req_type::set_acl ||
         t == req_type::multi || t == req_type::close;
}

/// The less common parts of a request, shared between its copies (the request travels
/// from client to server to leader to every replica's log).
struct request_extra {
  std::string scheme;  // add_auth
  create_options create{};
  acl_list acls;
  std::vector<zkr::op> ops;
  // set_watches
  std::int64_t relative_zxid = 0;
  std::vector<std::string> data_watches, exist_watches, child_watches;
};

/// One request as sent (paths with the chroot applied).
struct request {
  req_type type = req_type::ping;
  std::int32_t xid = 0;
  std::string path;
  std::string data;  // create/set data; add_auth credential
  std::int32_t version = -1;
  bool watch = false;
  std::shared_ptr<const request_extra> extra;

  /// The extra parts (an empty set if none were given).
  const request_extra& x() const {
    static const request_extra none{};
    return extra ? *extra : none;
  }
};

/// One reply (paths as the server knows them, with the chroot).
struct reply {
  std::int32_t xid = 0;
  std::int64_t zxid = 0;
  std::error_code ec;
  std::string path;
  std::string data;
  zkr::stat stat{};
  std::vector<std::string> children;
  acl_list acls;
  std::vector<op_result> results;
};

/// A ConnectRequest.
struct connect_request {
  std::int64_t session_id = 0;
  std::string password;
  std::int32_t timeout_ms = 0;
  std::int64_t last_zxid = 0;
};

/// A ConnectResponse: `session_id == 0` means the session expired.
struct connect_reply {
  std::int64_t session_id = 0;
  std::string password;
  std::int32_t timeout_ms = 0;
};

/// The client side of connections: implemented by a session, called by the cluster at the
/// virtual time a message arrives, as an event of the client's process.
class client_port {
 public:
  virtual ~client_port() = default;
  virtual void on_connect_reply(std::uint64_t conn, connect_reply r) = 0;
  virtual void on_reply(std::uint64_t conn, reply r) = 0;
  virtual void on_watch(std::uint64_t conn, watch_event ev) = 0;
  /// The server closed the connection, or refused it.
  virtual void on_closed(std::uint64_t conn) = 0;
};

/// Writes that go through the leader as transactions.
enum class txn_type : std::uint8_t {
  create, remove, set, set_acl, multi, create_session, close_session, remove_container
};

constexpr std::string_view to_string(txn_type t) noexcept {
  switch (t) {
    case txn_type::create: return "create";
    case txn_type::remove: return "delete";
    case txn_type::set: return "setData";
    case txn_type::set_acl: return "setACL";
    case txn_type::multi: return "multi";
    case txn_type::create_session: return "createSession";
    case txn_type::close_session: return "closeSession";
    case txn_type::remove_container: return "deleteContainer";
  }
  return "?";
}

/// One transaction: the request, its zxid and time, and what the leader's check found.
/// Replicas re-apply it (same prior state, same result); an error txn changes nothing.
struct txn {
  std::int64_t zxid = 0;
  std::int64_t time_ms = 0;
  std::int64_t session_id = 0;
  txn_type type = txn_type::create;
  request req;                   // the client request (path, data, version, ops...)
  std::vector<auth_id> auth;     // the session's ids when the request was made
  std::int32_t timeout_ms = 0;   // create_session
  std::string password;          // create_session
  // The leader's outcome.
  std::error_code ec;
  reply result;
  // Where the reply goes: the server and connection the request came from (none: internal).
  std::optional<std::size_t> origin_server;
  std::uint64_t origin_conn = 0;
};

}  // namespace detail

class session;

/// A simulated ZooKeeper ensemble, its network and its faults. See the file comment.
/// Not copyable or movable (sessions and events refer to it). Must outlive its sessions.
class cluster {
 public:
  /// Builds the ensemble and elects a first leader at virtual time 0 (no pause: a fresh
  /// ensemble is ready before the first client connects). Throws std::invalid_argument for
  /// 0 servers, a non-positive tick, or an election range with max < min.
  explicit cluster(cluster_options o = {})
      : opts_(std::move(o)), sched_(opts_.limits), rng_(opts_.seed), trace_(opts_.trace) {
    if (opts_.servers == 0) throw std::invalid_argument("zkr::sim::cluster: servers must be >= 1");
    if (opts_.tick_time <= std::chrono::milliseconds::zero()) {
      throw std::invalid_argument("zkr::sim::cluster: tick_time must be > 0");
    }
    if (opts_.election_max < opts_.election_min || opts_.rejoin_max < opts_.rejoin_min) {
      throw std::invalid_argument("zkr::sim::cluster: a delay range has max < min");
    }
    if (opts_.container_check_interval <= std::chrono::milliseconds::zero()) {
      throw std::invalid_argument("zkr::sim::cluster: container_check_interval must be > 0");
    }
    servers_.resize(opts_.servers);
    for (std::size_t i = 0; i < servers_.size(); ++i) servers_[i].name = "s" + std::to_string(i);
    electing_ = true;
    finish_election(term_);
  }
  /// Destroys the pending events first, while the cluster is whole: an event may hold the
  /// last reference to a session's state, whose destructor deregisters it here.
  ~cluster() { sched_.discard_pending(); }
  cluster(const cluster&) = delete;
  cluster& operator=(const cluster&) = delete;

  // ---- running ------------------------------------------------------------------------

  /// The scheduler every event runs on.
  scheduler& get_scheduler() noexcept { return sched_; }
  /// Virtual time.
  clock_time now() const noexcept { return sched_.now(); }
  /// The world's prng (faults drawn by the caller should use it, to replay).
  prng& random() noexcept { return rng_; }
  /// The trace sink (disabled unless options::trace names an output).
  trace& get_trace() noexcept { return trace_; }
  /// The options the cluster was built with.
  const cluster_options& options() const noexcept { return opts_; }

  /// Runs until no event is left. Sessions ping forever while connected, so this returns only
  /// once every session is closed (or stop() was called). Same errors as scheduler::run.
  std::size_t run() { return sched_.run(); }
  /// Runs `d` of virtual time.
  std::size_t run_for(clock_duration d) { return sched_.run_for(d); }
  /// Runs until virtual time `t`.
  std::size_t run_until(clock_time t) { return sched_.run_until(t); }
  /// Runs until `pred()` holds (true) or no event is left (false).
  template <class Pred>
    requires std::is_invocable_r_v<bool, Pred&>
  bool run_until(Pred pred) {
    return sched_.run_until(std::move(pred));
  }
  /// Runs until `pred()` holds (true) or `limit` of virtual time has passed (false).
  template <class Pred>
    requires std::is_invocable_r_v<bool, Pred&>
  bool run_until(Pred pred, clock_duration limit) {
    const clock_time deadline =
        limit >= clock_time::max() - now() ? clock_time::max() : now() + std::max(limit, clock_duration::zero());
    return sched_.run_until(std::move(pred), deadline);
  }

  // ---- the ensemble ---------------------------------------------------------------------

  /// "s0:2181,s1:2181,...[/chroot]": the connect string of this ensemble.
  std::string connect_string(std::string_view chroot = {}) const {
    std::string out;
    for (std::size_t i = 0; i < servers_.size(); ++i) {
      if (i) out += ',';
      out += servers_[i].name + ":2181";
    }
    out += chroot;
    return out;
  }
  /// Number of servers.
  std::size_t size() const noexcept { return servers_.size(); }
  /// The server index that a connect-string host names ("s2" or "s2:2181" -> 2), or nullopt.
  std::optional<std::size_t> server_index(std::string_view host) const {
    for (std::size_t i = 0; i < servers_.size(); ++i) {
      if (servers_[i].name == host) return i;
    }
    return std::nullopt;
  }
  /// The current leader, or nullopt during an election or without quorum.
  std::optional<std::size_t> leader() const noexcept { return leader_; }
  /// Whether server `i` runs (not killed).
  bool alive(std::size_t i) const { return server_at(i).alive; }
  /// Whether server `i` accepts clients now (alive, and leading or following a leader).
  bool serving(std::size_t i) const { return server_at(i).serving; }
  /// Server `i`'s replica of the data tree (what a read there would see).
  const data_tree& tree(std::size_t i) const { return server_at(i).tree; }
  /// The zxid of the last transaction server `i` has applied.
  std::int64_t last_zxid(std::size_t i) const {
    return server_at(i).last_zxid;
  }
  /// Committed transactions so far (error txns included).
  std::size_t committed() const noexcept { return log_end(); }
  /// Sessions the replicated session table holds (id -> timeout ms), as server `i` has them.
  const std::map<std::int64_t, std::int32_t>& sessions(std::size_t i) const { return server_at(i).sessions; }
  /// Clamps a requested session timeout to [min, max] (default [2, 20] x tick), as the
  /// server does.
  std::int32_t negotiate_timeout(std::int32_t requested_ms) const noexcept {
    const auto tick = static_cast<std::int32_t>(opts_.tick_time.count());
    const auto lo = opts_.min_session_timeout.count() > 0 ? static_cast<std::int32_t>(opts_.min_session_timeout.count())
                                                          : 2 * tick;
    const auto hi = opts_.max_session_timeout.count() > 0 ? static_cast<std::int32_t>(opts_.max_session_timeout.count())
                                                          : 20 * tick;
    return std::clamp(requested_ms, lo, std::max(lo, hi));
  }

  // ---- faults -------------------------------------------------------------------------

  /// Kills server `i` (a crash: its client connections are refused at once; its data
  /// survives, as on disk). Killing the leader starts an election. Killing a dead server
  /// does nothing.
  void kill_server(std::size_t i) {
    auto& s = server_at(i);
    if (!s.alive) return;
    note_fault("kill", s.name);
    s.alive = false;
    stop_serving(i);
    if (leader_ == i) {
      begin_election(draw_election_pause());
    } else {
      reassess();
    }
  }
  /// Restarts a killed server: it rejoins the leader (or takes part in the next election)
  /// with the transactions it had applied.
  void restart_server(std::size_t i) {
    auto& s = server_at(i);
    if (s.alive) return;
    note_fault("restart", s.name);
    s.alive = true;
    reassess();
  }
  /// Kills the current leader, if there is one.
  void kill_leader() {
    if (leader_) kill_server(*leader_);
  }
  /// Forces an election that keeps the ensemble unavailable for `pause` (e.g. 120 s, as
  /// production incidents such as ZOOKEEPER-3109 report). Sessions survive it: the new
  /// leader gives each a fresh timeout.
  void start_election(clock_duration pause) {
    note_fault("election", "ensemble", [&](trace::fields& f) { f.add("pause_ms", ms(pause)); });
    begin_election(pause);
  }
  /// Names one partition (or isolation) so that it alone can be healed: heal(cut_id).
  using cut_id = std::uint64_t;
  /// Cuts every link between a member of `a` and a member of `b`, both ways. Returns the
  /// cut's id for heal(id); overlapping cuts of one link count, so healing one of them leaves
  /// the link cut by the other.
  cut_id partition(const std::vector<endpoint>& a, const std::vector<endpoint>& b) {
    note_fault("partition", "network", [&](trace::fields& f) {
      f.add("a", describe(a));
      f.add("b", describe(b));
    });
    std::vector<link_key> keys;
    for (const auto& x : a) {
      for (const auto& y : b) {
        if (x != y && std::find(keys.begin(), keys.end(), key(x, y)) == keys.end()) keys.push_back(key(x, y));
      }
    }
    for (const auto& k : keys) ++cuts_[k];
    const cut_id id = next_cut_++;
    cut_sets_.emplace(id, std::move(keys));
    reassess();
    return id;
  }
  /// Cuts `e` from every server and every known client. Returns the cut's id for heal(id).
  cut_id isolate(endpoint e) {
    std::vector<endpoint> others;
    for (std::size_t i = 0; i < servers_.size(); ++i) others.push_back(endpoint::server(i));
    for (const auto& [p, port] : clients_) others.push_back(endpoint::client(p));
    std::erase(others, e);
    return partition({e}, others);
  }
  /// Restores every cut link (connections already black-holed stay dead, as TCP ones would).
  void heal() {
    note_fault("heal", "network");
    cuts_.clear();
    cut_sets_.clear();
    reassess();
  }
  /// Restores the links of cut `id` only (those no other cut holds). An id already healed
  /// (also by heal()) is ignored.
  void heal(cut_id id) {
    const auto it = cut_sets_.find(id);
    if (it == cut_sets_.end()) return;
    note_fault("heal", "network", [&](trace::fields& f) { f.add("cut", id); });
    for (const auto& k : it->second) {
      const auto c = cuts_.find(k);
      if (c != cuts_.end() && --c->second == 0) cuts_.erase(c);
    }
    cut_sets_.erase(it);
    reassess();
  }
  /// Whether messages pass between `a` and `b` now.
  bool reachable(endpoint a, endpoint b) const { return a == b || !cuts_.contains(key(a, b)); }
  /// Sets the behaviour of the link between `a` and `b` (both directions).
  void set_link(endpoint a, endpoint b, link_options l) {
    note_fault("link", "network", [&](trace::fields& f) {
      f.add("a", describe({a}));
      f.add("b", describe({b}));
      f.add("delay_max_us", std::chrono::duration_cast<std::chrono::microseconds>(l.delay_max).count());
      f.add("loss_ppm", static_cast<std::int64_t>(l.loss * 1e6));
    });
    links_[key(a, b)] = l;
  }
  /// Makes server `i` apply commits `extra` later than its link delay: reads there are stale
  /// for that long (until a sync). zero restores it.
  void set_lag(std::size_t i, clock_duration extra) {
    note_fault("lag", server_at(i).name, [&](trace::fields& f) { f.add("lag_ms", ms(extra)); });
    server_at(i).lag = extra;
  }
  /// Has the leader expire `session_id` now (a closeSession txn), as when its timeout runs
  /// out. Returns false if there is no leader or the leader does not know the session.
  bool expire_session(std::int64_t session_id) {
    note_fault("expire", "leader", [&](trace::fields& f) { f.add("session", hex(session_id)); });
    if (!leader_ || !tracker_.contains(session_id)) return false;
    expire(session_id);
    return true;
  }
  /// Pauses a client process for `d` (a GC pause): its timers and callbacks stop while
  /// servers and other clients go on; messages to it wait.
  void pause_process(process_id p, clock_duration d) {
    note_fault("pause", client_name(p), [&](trace::fields& f) { f.add("ms", ms(d)); });
    sched_.pause_for(p, d);
  }
  /// Runs `fault(*this)` after `after` of virtual time (a scheduled fault; `name` is traced).
  void at(clock_duration after, std::string name, std::function<void(cluster&)> fault) {
    sched_.post_after(world_process, after, [this, name = std::move(name), fault = std::move(fault)] {
      trace_.record(now(), trace_kind::note, "schedule", [&](trace::fields& f) { f.add("fault", name); });
      fault(*this);
    });
  }

  /// What a fault schedule drawn from the seed may contain (schedule_random_faults).
  struct fault_plan {
    /// Faults are drawn at uniform times in [start, start + span) from now.
    clock_duration start = std::chrono::seconds(1);
    clock_duration span = std::chrono::seconds(60);
    /// How many faults to draw.
    std::size_t count = 10;
    /// How long a fault lasts before it is undone (heal, restart, resume), drawn uniformly.
    clock_duration min_length = std::chrono::milliseconds(100);
    clock_duration max_length = std::chrono::seconds(10);
    /// Which kinds may be drawn (each equally likely among those enabled).
    bool kill_servers = true;
    bool kill_leader = true;
    bool partitions = true;   // isolate a client or a server, then heal
    bool elections = true;    // a forced election lasting the fault's length
    bool pauses = true;       // GC-pause a client
    bool expiries = true;     // expire a client's session
  };

  /// Draws `plan.count` faults from the cluster's prng and schedules each (with its undo) via
  /// at(); `clients` are the processes that client faults may hit. Returns one line per
  /// fault ("<offset ms> <kind> <target> <length ms>"), in drawing order, for a failure
  /// report. The same seed and arguments give the same schedule. Throws
  /// std::invalid_argument if no fault kind is enabled.
  std::vector<std::string> schedule_random_faults(const fault_plan& plan, const std::vector<process_id>& clients) {
    enum kind { kill, kill_lead, isolate_client, isolate_server, election, pause, expiry };
    std::vector<kind> kinds;
    if (plan.kill_servers) kinds.push_back(kill);
    if (plan.kill_leader) kinds.push_back(kill_lead);
    if (plan.partitions && !clients.empty()) kinds.push_back(isolate_client);
    if (plan.partitions) kinds.push_back(isolate_server);
    if (plan.elections) kinds.push_back(election);
    if (plan.pauses && !clients.empty()) kinds.push_back(pause);
    if (plan.expiries && !clients.empty()) kinds.push_back(expiry);
    if (kinds.empty()) throw std::invalid_argument("zkr::sim::cluster: a fault plan with no fault kind enabled");
    std::vector<std::string> lines;
    for (std::size_t n = 0; n < plan.count; ++n) {
      const clock_duration at_offset = plan.start + rng_.uniform_duration(clock_duration::zero(), plan.span);
      const clock_duration len = rng_.uniform_duration(plan.min_length, plan.max_length);
      const kind k = kinds[rng_.uniform(kinds.size())];
      const std::size_t server = rng_.uniform(servers_.size());
      const process_id client = clients.empty() ? 0 : clients[rng_.uniform(clients.size())];
      std::string line = std::to_string(ms(at_offset)) + " ";
      switch (k) {
        case kill:
          line += "kill " + servers_[server].name;
          at(at_offset, line, [server](cluster& c) { c.kill_server(server); });
          at(at_offset + len, "restart", [server](cluster& c) { c.restart_server(server); });
          break;
        case kill_lead:
          line += "kill-leader -";
          at(at_offset, line, [len](cluster& c) {
            if (!c.leader()) return;
            const std::size_t l = *c.leader();
            c.kill_server(l);
            c.at(len, "restart", [l](cluster& cc) { cc.restart_server(l); });
          });
          break;
        case isolate_client:
          line += "isolate " + client_name(client);
          at(at_offset, line, [client, len](cluster& c) {
            const auto id = c.isolate(endpoint::client(client));
            c.at(len, "heal", [id](cluster& cc) { cc.heal(id); });  // this cut only
          });
          break;
        case isolate_server:
          line += "isolate " + servers_[server].name;
          at(at_offset, line, [server, len](cluster& c) {
            const auto id = c.isolate(endpoint::server(server));
            c.at(len, "heal", [id](cluster& cc) { cc.heal(id); });  // this cut only
          });
          break;
        case election:
          line += "election -";
          at(at_offset, line, [len](cluster& c) { c.start_election(len); });
          break;
        case pause:
          line += "pause " + client_name(client);
          at(at_offset, line, [client, len](cluster& c) { c.pause_process(client, len); });
          break;
        case expiry:
          line += "expire " + client_name(client);
          at(at_offset, line, [this, client](cluster& c) {
            if (const auto sid = session_of(client)) c.expire_session(*sid);
          });
          break;
      }
      line += " " + std::to_string(ms(len));
      lines.push_back(std::move(line));
    }
    return lines;
  }

  /// The session id that client process `p` is connected with at some server, if any.
  std::optional<std::int64_t> session_of(process_id p) const {
    // Hash order is not deterministic: look at the connections in id order.
    std::optional<std::uint64_t> best;
    for (const auto& [id, c] : conns_) {
      if (c.client == p && c.handshaken && c.server_open && !c.client_gone && (!best || id < *best)) best = id;
    }
    if (!best) return std::nullopt;
    return conns_.at(*best).session_id;
  }

  // ---- for sessions (zkr/sim/session.hpp) -------------------------------------------------

  /// Registers a client process and its port; returns its process id (>= 1).
  process_id add_client(std::weak_ptr<detail::client_port> port, std::string name) {
    const process_id p = next_process_++;
    if (name.empty()) name = "c" + std::to_string(p);
    clients_.emplace(p, client_entry{std::move(port), std::move(name)});
    return p;
  }
  /// Forgets a client (its session object is gone); messages to it are dropped.
  void remove_client(process_id p) { clients_.erase(p); }
  /// The trace name of a client process.
  std::string client_name(process_id p) const {
    const auto it = clients_.find(p);
    return it == clients_.end() ? "c" + std::to_string(p) : it->second.name;
  }

  /// Opens a connection from client `p` to server `i` and sends the ConnectRequest.
  /// Returns the connection id. A dead server refuses it (on_closed after the link delay).
  std::uint64_t connect(process_id p, std::size_t i, detail::connect_request creq) {
    const std::uint64_t id = next_conn_++;
    connection& c = conns_[id];
    c.client = p;
    c.server = i;
    trace_.record(now(), trace_kind::request, client_name(p), [&](trace::fields& f) {
      f.add("op", "connect");
      f.add("server", servers_[i].name);
      f.add("session", hex(creq.session_id));
    });
    to_server(id, [this, id, creq = std::move(creq)]() mutable { server_connect(id, std::move(creq)); });
    return id;
  }
  /// Sends a request on connection `conn` (from its client).
  void send(std::uint64_t conn, detail::request r) {
    auto it = conns_.find(conn);
    if (it == conns_.end()) return;
    if (r.type != detail::req_type::ping) {
      trace_.record(now(), trace_kind::request, client_name(it->second.client), [&](trace::fields& f) {
        f.add("op", to_string(r.type));
        f.add("xid", r.xid);
        if (!r.path.empty()) f.add("path", r.path);
      });
    }
    to_server(conn, [this, conn, r = std::move(r)]() mutable { server_receive(conn, std::move(r)); });
  }
  /// The client drops connection `conn`; the server notices after the link delay (FIN),
  /// unless the link is cut.
  void disconnect(std::uint64_t conn) {
    auto it = conns_.find(conn);
    if (it == conns_.end() || it->second.client_gone) return;
    it->second.client_gone = true;
    to_server(conn, [this, conn] { server_close(conn, false); }, /*control=*/true);
  }
  /// Records a session-level event of a client in the trace.
  template <class Build>
  void trace_client(process_id p, trace_kind k, Build&& build) {
    trace_.record(now(), k, client_name(p), std::forward<Build>(build));
  }
  /// Session ids as ZooKeeper shows them: 0x... lower-case hex.
  static std::string hex(std::int64_t v) {
    static constexpr char digits[] = "0123456789abcdef";
    auto u = static_cast<std::uint64_t>(v);
    std::string s;
    do {
      s.insert(s.begin(), digits[u & 0xF]);
      u >>= 4;
    } while (u != 0);
    return "0x" + s;
  }

 private:
  struct client_entry {
    std::weak_ptr<detail::client_port> port;
    std::string name;
  };

  /// One queued request of a connection at its server: answered in order.
  struct entry {
    detail::request req;
    bool ready = false;   // the reply is known
    bool sent_to_leader = false;
    std::size_t sync_target = 0;  // sync: reply once the server applied this many txns
    bool sync_known = false;
    detail::reply rep;
  };

  struct connection {
    process_id client = 0;
    std::size_t server = 0;
    bool server_open = true;   // the server has not closed it
    bool client_gone = false;  // the client dropped it
    bool black_hole = false;   // a message was lost: nothing more passes
    bool handshaken = false;
    std::int64_t session_id = 0;
    clock_time last_to_client{}, last_to_server{};
    std::deque<entry> queue;
  };

  struct server_state {
    std::string name;
    bool alive = true;
    bool serving = false;
    bool rejoining = false;
    data_tree tree;
    std::size_t applied = 0;  // txns of the log applied (an index: log_base_ + position)
    std::int64_t last_zxid = 0;
    clock_time apply_horizon{};  // the latest scheduled apply (keeps applies in order)
    clock_duration lag{};
    std::map<std::int64_t, std::int32_t> sessions;       // replicated: id -> timeout ms
    std::map<std::int64_t, std::string> passwords;       // replicated: id -> password
    std::map<std::int64_t, std::uint64_t> session_conn;  // session -> its connection here
    std::set<std::uint64_t> sync_waiters;                 // connections with a sync waiting for applies
    std::uint64_t next_session = 0;
  };

  struct tracked {
    std::int32_t timeout_ms = 0;
    clock_time expiry{};
    bool closing = false;
    std::string password;
  };

  using txn_ptr = std::shared_ptr<detail::txn>;
  using link_key = std::pair<endpoint, endpoint>;
  static link_key key(endpoint a, endpoint b) { return a < b ? link_key{a, b} : link_key{b, a}; }

  static std::int64_t ms(clock_duration d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  }
  std::int64_t wall_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(sched_.wall_now().time_since_epoch()).count();
  }

  server_state& server_at(std::size_t i) {
    if (i >= servers_.size()) throw std::out_of_range("zkr::sim::cluster: no server " + std::to_string(i));
    return servers_[i];
  }
  const server_state& server_at(std::size_t i) const {
    if (i >= servers_.size()) throw std::out_of_range("zkr::sim::cluster: no server " + std::to_string(i));
    return servers_[i];
  }

  std::string describe(const std::vector<endpoint>& es) const {
    std::string s;
    for (const auto& e : es) {
      if (!s.empty()) s += ',';
      s += e.type == endpoint::kind::server ? servers_[e.id].name : client_name(e.id);
    }
    return s;
  }

  template <class Build>
  void note_fault(std::string_view what, std::string_view actor, Build&& build) {
    trace_.record(now(), trace_kind::fault, actor, [&](trace::fields& f) {
      f.add("fault", what);
      build(f);
    });
  }
  void note_fault(std::string_view what, std::string_view actor) {
    note_fault(what, actor, [](trace::fields&) {});
  }

  // ---- network ------------------------------------------------------------------------

  const link_options& link_for(endpoint a, endpoint b) const {
    const auto it = links_.find(key(a, b));
    if (it != links_.end()) return it->second;
    return (a.type == endpoint::kind::client || b.type == endpoint::kind::client) ? opts_.client_links
                                                                                  : opts_.server_links;
  }
  clock_duration draw_delay(const link_options& l) { return rng_.uniform_duration(l.delay_min, l.delay_max); }

  /// Sends a message from a connection's client to its server: delivered as a world event
  /// after the link delay, in order, unless the link is cut (then the connection dies
  /// silently) or a loss is drawn. `control` messages (FIN) skip the loss draw.
  template <class F>
  void to_server(std::uint64_t id, F&& f, bool control = false) {
    connection& c = conns_.at(id);
    const endpoint a = endpoint::client(c.client), b = endpoint::server(c.server);
    const link_options& l = link_for(a, b);
    const bool lost = !control && l.loss > 0 && rng_.chance(l.loss);
    if (c.black_hole || !reachable(a, b) || lost) {
      c.black_hole = true;
      return;
    }
    c.last_to_server = std::max(now() + draw_delay(l), c.last_to_server);
    sched_.post_at(world_process, c.last_to_server, [this, id, f = std::forward<F>(f)]() mutable {
      auto it = conns_.find(id);
      if (it == conns_.end() || it->second.black_hole) return;
      const connection& cc = it->second;
      if (!reachable(endpoint::client(cc.client), endpoint::server(cc.server))) {
        it->second.black_hole = true;
        return;
      }
      f();
    });
  }

  /// Sends a message from a connection's server to its client: delivered as an event of the
  /// client's process (held while it is paused), in order, unless cut or lost.
  template <class F>
  void to_client(std::uint64_t id, F&& f, bool control = false) {
    auto cit = conns_.find(id);
    if (cit == conns_.end()) return;
    connection& c = cit->second;
    if (c.client_gone) return;
    const endpoint a = endpoint::client(c.client), b = endpoint::server(c.server);
    const link_options& l = link_for(a, b);
    const bool lost = !control && l.loss > 0 && rng_.chance(l.loss);
    if (c.black_hole || !reachable(a, b) || lost) {
      c.black_hole = true;
      return;
    }
    c.last_to_client = std::max(now() + draw_delay(l), c.last_to_client);
    const process_id p = c.client;
    sched_.post_at(p, c.last_to_client, [this, id, p, f = std::forward<F>(f)]() mutable {
      auto it = conns_.find(id);
      if (it == conns_.end() || it->second.client_gone) return;
      auto client = clients_.find(p);
      if (client == clients_.end()) return;
      auto port = client->second.port.lock();
      if (!port) return;
      f(*port);
    });
  }

  /// A server-to-server message, delivered after the link delay if the link is not cut
  /// (then and at delivery time), in order per (from, to) pair: servers talk over TCP, and a
  /// session's forwarded writes must reach the leader in the order it sent them. `f` runs as
  /// a world event.
  template <class F>
  void between_servers(std::size_t from, std::size_t to, F&& f) {
    if (from == to) {
      f();
      return;
    }
    const endpoint a = endpoint::server(from), b = endpoint::server(to);
    if (!reachable(a, b)) return;
    clock_time& horizon = server_link_horizon_[{from, to}];
    horizon = std::max(now() + draw_delay(link_for(a, b)), horizon);
    sched_.post_at(world_process, horizon, [this, a, b, f = std::forward<F>(f)]() mutable {
      if (!reachable(a, b)) return;
      f();
    });
  }

  // ---- the server side of connections ------------------------------------------------------

  void server_connect(std::uint64_t id, detail::connect_request creq) {
    connection& c = conns_.at(id);
    server_state& s = servers_[c.server];
    if (!s.alive || !s.serving || !leader_) return server_close(id, true);
    if (creq.last_zxid > last_zxid(c.server)) {
      // "Refusing session request for client as it has seen zxid ... our last zxid is ...":
      // a server behind the client would show it the past.
      trace_.record(now(), trace_kind::note, s.name, [&](trace::fields& f) {
        f.add("refused", "client has seen a later zxid");
        f.add("client_zxid", hex(creq.last_zxid));
      });
      return server_close(id, true);
    }
    const std::int32_t timeout = negotiate_timeout(creq.timeout_ms);
    const std::size_t here = c.server;
    if (creq.session_id == 0) {
      // A new session: the id carries the server's number in its top byte, as ZooKeeper's.
      const std::int64_t sid = static_cast<std::int64_t>((static_cast<std::uint64_t>(here + 1) << 56) |
                                                         (static_cast<std::uint64_t>(epoch_) << 24) | ++s.next_session);
      auto tp = std::make_shared<detail::txn>();
      detail::txn& t = *tp;
      t.type = detail::txn_type::create_session;
      t.session_id = sid;
      t.timeout_ms = timeout;
      t.password = draw_password();
      t.origin_server = here;
      t.origin_conn = id;
      c.queue.push_back(entry{});  // the handshake's slot: answered when the txn applies here
      c.queue.back().req.type = detail::req_type::ping;
      c.queue.back().req.xid = handshake_xid;
      forward(here, std::move(tp));
      return;
    }
    // A reconnect: the leader says whether the session lives (and touches it).
    const std::uint64_t term = term_;
    const std::size_t lead = *leader_;
    between_servers(here, lead, [this, id, here, lead, term, creq = std::move(creq), timeout]() mutable {
      if (term != term_) return;
      bool valid = false;
      std::int32_t granted = timeout;
      if (auto it = tracker_.find(creq.session_id); it != tracker_.end() && !it->second.closing &&
                                                    it->second.password == creq.password) {
        valid = true;
        granted = it->second.timeout_ms;
        touch(creq.session_id);
      }
      between_servers(lead, here, [this, id, term, valid, granted, sid = creq.session_id, pw = creq.password] {
        if (term != term_) return;
        auto it = conns_.find(id);
        if (it == conns_.end() || !it->second.server_open) return;
        if (!valid) {
          trace_.record(now(), trace_kind::session, servers_[it->second.server].name, [&](trace::fields& f) {
            f.add("session", hex(sid));
            f.add("state", "expired");
          });
          to_client(id, [id](detail::client_port& port) { port.on_connect_reply(id, {}); });
          return server_close(id, true);
        }
        bind_session(id, sid);
        to_client(id, [id, r = detail::connect_reply{sid, pw, granted}](detail::client_port& port) mutable {
          port.on_connect_reply(id, std::move(r));
        });
      });
    });
  }

  static constexpr std::int32_t handshake_xid = -100;

  /// Makes `id` the connection of `sid` at its server (replacing an older one there).
  void bind_session(std::uint64_t id, std::int64_t sid) {
    connection& c = conns_.at(id);
    c.handshaken = true;
    c.session_id = sid;
    server_state& s = servers_[c.server];
    if (auto old = s.session_conn.find(sid); old != s.session_conn.end() && old->second != id) {
      const std::uint64_t old_id = old->second;
      s.session_conn.erase(old);
      server_close(old_id, true);
    }
    s.session_conn[sid] = id;
  }

  void server_receive(std::uint64_t id, detail::request r) {
    auto it = conns_.find(id);
    if (it == conns_.end() || !it->second.server_open) return;
    connection& c = it->second;
    server_state& s = servers_[c.server];
    if (!s.alive || !s.serving) return server_close(id, true);
    if (!c.handshaken) return;  // requests before the handshake completes: the client never sends them
    if (request_bytes(r) > opts_.max_request_bytes && opts_.max_request_bytes != 0) {
      trace_.record(now(), trace_kind::note, s.name, [&](trace::fields& f) {
        f.add("dropped", "request larger than jute.maxbuffer (Len error)");
      });
      return server_close(id, true);
    }
    touch_from(c.server, c.session_id);
    entry e;
    e.req = std::move(r);
    const auto type = e.req.type;
    if (type == detail::req_type::add_auth) {
      // Auth packets take effect on arrival (the server handles them outside the request
      // pipeline), so every later request of the connection carries the new id.
      e.ready = true;
      e.rep.xid = e.req.xid;
      e.rep.ec = s.tree.add_auth(c.session_id, e.req.x().scheme, e.req.data);
    }
    c.queue.push_back(std::move(e));
    if (detail::is_write(type)) {
      auto tp = std::make_shared<detail::txn>();
      detail::txn& t = *tp;
      t.session_id = c.session_id;
      t.req = c.queue.back().req;
      t.auth = s.tree.auth_info(c.session_id);
      t.origin_server = c.server;
      t.origin_conn = id;
      switch (type) {
        case detail::req_type::create: t.type = detail::txn_type::create; break;
        case detail::req_type::remove: t.type = detail::txn_type::remove; break;
        case detail::req_type::set: t.type = detail::txn_type::set; break;
        case detail::req_type::set_acl: t.type = detail::txn_type::set_acl; break;
        case detail::req_type::multi: t.type = detail::txn_type::multi; break;
        case detail::req_type::close: t.type = detail::txn_type::close_session; break;
        default: detail::sim_fail("server_receive: not a write");
      }
      c.queue.back().sent_to_leader = true;
      forward(c.server, std::move(tp));
    } else if (type == detail::req_type::sync) {
      const std::uint64_t term = term_;
      const std::size_t here = c.server;
      const std::size_t lead = *leader_;
      const std::int32_t xid = c.queue.back().req.xid;
      between_servers(here, lead, [this, term, here, lead, id, xid] {
        if (term != term_) return;
        const std::size_t target = log_end() + proposals_.size();
        between_servers(lead, here, [this, term, id, xid, target] {
          if (term != term_) return;
          auto it = conns_.find(id);
          if (it == conns_.end()) return;
          for (auto& e : it->second.queue) {
            if (e.req.type == detail::req_type::sync && e.req.xid == xid) {
              e.sync_known = true;
              e.sync_target = target;
              servers_[it->second.server].sync_waiters.insert(id);
            }
          }
          flush(id);
        });
      });
    }
    flush(id);
  }

  /// Answers the connection's queue from its head: reads when they reach it, writes once
  /// applied here, syncs once this server applied everything the leader had when it synced.
  void flush(std::uint64_t id) {
    auto it = conns_.find(id);
    if (it == conns_.end()) return;
    connection& c = it->second;
    server_state& s = servers_[c.server];
    s.sync_waiters.erase(id);  // put back below if a sync still waits at the head
    while (!c.queue.empty() && c.server_open) {
      entry& e = c.queue.front();
      if (e.req.xid == handshake_xid) {
        if (!e.ready) return;
        detail::reply r = std::move(e.rep);
        c.queue.pop_front();
        bind_session(id, r.stat.ephemeral_owner);
        const auto it2 = s.sessions.find(r.stat.ephemeral_owner);
        const std::int32_t to = it2 == s.sessions.end() ? 0 : it2->second;
        to_client(id, [id, cr = detail::connect_reply{r.stat.ephemeral_owner, r.data, to}](
                          detail::client_port& port) mutable { port.on_connect_reply(id, std::move(cr)); });
        continue;
      }
      if (detail::is_write(e.req.type) || e.req.type == detail::req_type::add_auth) {
        if (!e.ready) return;
      } else if (e.req.type == detail::req_type::sync) {
        if (!e.sync_known) return;
        if (s.applied < e.sync_target) {
          s.sync_waiters.insert(id);
          return;
        }
        e.rep.xid = e.req.xid;
        e.rep.path = e.req.path;
      } else {
        answer_read(id, c, s, e);
      }
      detail::reply r = std::move(e.rep);
      const auto type = e.req.type;
      c.queue.pop_front();
      r.zxid = r.zxid != 0 ? r.zxid : last_zxid(c.server);
      if (type != detail::req_type::ping) {
        trace_.record(now(), trace_kind::response, s.name, [&](trace::fields& f) {
          f.add("to", client_name(c.client));
          f.add("op", to_string(type));
          f.add("xid", r.xid);
          f.add("rc", r.ec ? r.ec.value() : 0);
        });
      }
      const bool close_after = type == detail::req_type::close ||
                               (type == detail::req_type::add_auth && r.ec == errc::auth_failed);
      to_client(id, [id, r = std::move(r)](detail::client_port& port) mutable { port.on_reply(id, std::move(r)); });
      if (close_after) return server_close(id, true);
    }
  }

  void answer_read(std::uint64_t id, connection& c, server_state& s, entry& e) {
    detail::request& q = e.req;
    detail::reply& r = e.rep;
    r.xid = q.xid;
    const std::int64_t sid = c.session_id;
    switch (q.type) {
      case detail::req_type::exists: {
        auto res = s.tree.exists(sid, q.path, q.watch);
        r.ec = res.ec;
        r.stat = res.stat;
        break;
      }
      case detail::req_type::get: {
        auto res = s.tree.get_data(sid, q.path, q.watch);
        r.ec = res.ec;
        r.data = std::move(res.data);
        r.stat = res.stat;
        break;
      }
      case detail::req_type::get_children: {
        auto res = s.tree.get_children(sid, q.path, q.watch);
        r.ec = res.ec;
        r.children = std::move(res.children);
        r.stat = res.stat;
        break;
      }
      case detail::req_type::get_acl: {
        auto res = s.tree.get_acl(sid, q.path);
        r.ec = res.ec;
        r.acls = std::move(res.acl);
        r.stat = res.stat;
        break;
      }
      case detail::req_type::set_watches: set_watches(id, c, s, q); break;
      case detail::req_type::ping: break;
      default: detail::sim_fail("answer_read: not a read");
    }
  }

  /// SetWatches as DataTree.setWatches: fire what changed since the client's last zxid,
  /// register the rest.
  void set_watches(std::uint64_t id, const connection& c, server_state& s, const detail::request& q) {
    const std::int64_t sid = c.session_id;
    std::vector<watch_event> fire;
    for (const auto& p : q.x().data_watches) {
      const auto* n = s.tree.find(p);
      if (n == nullptr) {
        fire.push_back({event_type::deleted, p});
      } else if (n->mzxid > q.x().relative_zxid) {
        fire.push_back({event_type::data_changed, p});
      } else {
        s.tree.add_data_watch(sid, p);
      }
    }
    for (const auto& p : q.x().exist_watches) {
      if (s.tree.find(p) != nullptr) {
        fire.push_back({event_type::created, p});
      } else {
        s.tree.add_data_watch(sid, p);
      }
    }
    for (const auto& p : q.x().child_watches) {
      const auto* n = s.tree.find(p);
      if (n == nullptr) {
        fire.push_back({event_type::deleted, p});
      } else if (n->pzxid > q.x().relative_zxid) {
        fire.push_back({event_type::children_changed, p});
      } else {
        s.tree.add_child_watch(sid, p);
      }
    }
    for (auto& ev : fire) send_watch(id, std::move(ev));
  }

  void send_watch(std::uint64_t id, watch_event ev) {
    const auto it = conns_.find(id);
    if (it == conns_.end()) return;
    trace_.record(now(), trace_kind::watch, servers_[it->second.server].name, [&](trace::fields& f) {
      f.add("to", client_name(it->second.client));
      f.add("type", to_string(ev.type));
      f.add("path", ev.path);
    });
    to_client(id, [id, ev = std::move(ev)](detail::client_port& port) mutable { port.on_watch(id, std::move(ev)); });
  }

  /// The server side of a connection ends: its watches go, and unless the client dropped it,
  /// the client hears of it (`refused` for a close before or instead of the handshake).
  void server_close(std::uint64_t id, bool tell_client) {
    auto it = conns_.find(id);
    if (it == conns_.end()) return;
    connection& c = it->second;
    if (c.server_open) {
      c.server_open = false;
      server_state& s = servers_[c.server];
      s.sync_waiters.erase(id);
      if (c.handshaken) {
        if (auto sc = s.session_conn.find(c.session_id); sc != s.session_conn.end() && sc->second == id) {
          s.session_conn.erase(sc);
          s.tree.remove_watches(c.session_id);
        }
      }
      c.queue.clear();
      if (tell_client) to_client(id, [id](detail::client_port& port) { port.on_closed(id); }, true);
    }
    if (c.client_gone) conns_.erase(it);
  }

  /// A server stops serving: every client connection of it closes.
  void stop_serving(std::size_t i) {
    server_state& s = servers_[i];
    s.serving = false;
    s.rejoining = false;
    std::vector<std::uint64_t> ids;
    for (const auto& [id, c] : conns_) {
      if (c.server == i && c.server_open) ids.push_back(id);
    }
    std::sort(ids.begin(), ids.end());  // hash order is not deterministic; id order is
    for (const auto id : ids) server_close(id, true);
    s.session_conn.clear();
  }

  static std::size_t request_bytes(const detail::request& r) {
    switch (r.type) {
      case detail::req_type::create: return create_request_size(r.path, r.data, r.x().create);
      case detail::req_type::set: return set_request_size(r.path, r.data);
      case detail::req_type::set_acl: return set_acl_request_size(r.path, r.x().acls);
      case detail::req_type::multi: return multi_request_size(r.x().ops);
      default: return r.path.size() + r.data.size() + 16;
    }
  }

  // ---- the leader ---------------------------------------------------------------------------

  /// Sends a write from server `from` to the leader, which prepares and proposes it.
  void forward(std::size_t from, txn_ptr t) {
    if (!leader_) return;
    const std::uint64_t term = term_;
    between_servers(from, *leader_, [this, term, t = std::move(t)]() mutable {
      if (term != term_ || !leader_) return;
      prepare(std::move(t));
    });
  }

  std::int64_t next_zxid() { return static_cast<std::int64_t>((std::uint64_t{epoch_} << 32) | ++counter_); }

  /// PrepRequestProcessor: assigns the zxid, checks the write against the outstanding
  /// changes (prep_), records the outcome, and proposes it.
  void prepare(txn_ptr tp) {
    detail::txn& t = *tp;
    t.zxid = next_zxid();
    t.time_ms = wall_ms();
    if (t.type == detail::txn_type::create_session) {
      tracker_[t.session_id] =
          tracked{t.timeout_ms, round_to_tick(now() + std::chrono::milliseconds(t.timeout_ms)), false, t.password};
    } else if (t.type != detail::txn_type::remove_container) {
      const auto it = tracker_.find(t.session_id);
      const bool closing_ok = t.type == detail::txn_type::close_session;
      if (it == tracker_.end() || (it->second.closing && !closing_ok)) {
        t.ec = make_error_code(errc::session_expired);
      }
      if (it != tracker_.end() && t.type == detail::txn_type::close_session) it->second.closing = true;
    }
    if (!t.ec) {
      std::error_code ec;
      detail::reply out;
      (void)execute(prep_, t, ec, &out);
      out.ec = ec;
      t.result = std::move(out);
      // A failed op (a multi's too) is the reply's error, not a failed txn: ZooKeeper logs an
      // error txn either way and replicas re-execute to the same outcome.
    }
    propose(std::move(tp));
  }

  void propose(txn_ptr t) {
    const std::size_t lead = *leader_;
    // Commit once a quorum has acknowledged: the leader's own ack at once, a follower's after
    // a round trip. Commits keep the proposal order.
    std::vector<clock_duration> acks;
    for (std::size_t f = 0; f < servers_.size(); ++f) {
      if (f == lead || !servers_[f].alive || !servers_[f].serving) continue;
      if (!reachable(endpoint::server(lead), endpoint::server(f))) continue;
      const auto& l = link_for(endpoint::server(lead), endpoint::server(f));
      acks.push_back(draw_delay(l) + draw_delay(l));
    }
    std::sort(acks.begin(), acks.end());
    const std::size_t need = quorum() - 1;
    if (acks.size() < need) {
      // No quorum reachable: the proposal stays uncommitted; reassess() starts an election.
      proposals_.push_back(std::move(t));
      return;
    }
    const clock_time commit_at = std::max(now() + (need == 0 ? clock_duration::zero() : acks[need - 1]), last_commit_);
    last_commit_ = commit_at;
    proposals_.push_back(std::move(t));
    const std::uint64_t term = term_;
    sched_.post_at(world_process, commit_at, [this, term] {
      if (term != term_) return;
      commit_one();
    });
  }

  void commit_one() {
    detail::sim_check(!proposals_.empty(), "commit without a proposal");
    log_.push_back(std::move(proposals_.front()));
    proposals_.pop_front();
    const std::size_t idx = log_end();
    const std::size_t lead = *leader_;
    apply_up_to(lead, idx);
    for (std::size_t f = 0; f < servers_.size(); ++f) {
      if (f == lead) continue;
      schedule_apply(f, idx);
    }
  }

  /// Schedules follower `f` to apply the log up to `idx` after its link delay and lag.
  void schedule_apply(std::size_t f, std::size_t idx) {
    server_state& s = servers_[f];
    if (!s.alive || !s.serving || !leader_) return;
    const endpoint a = endpoint::server(*leader_), b = endpoint::server(f);
    if (!reachable(a, b)) return;
    s.apply_horizon = std::max(now() + draw_delay(link_for(a, b)) + s.lag, s.apply_horizon);
    const std::uint64_t term = term_;
    sched_.post_at(world_process, s.apply_horizon, [this, f, idx, term] {
      if (term != term_ || !servers_[f].serving) return;
      apply_up_to(f, idx);
    });
  }

  std::size_t log_end() const noexcept { return log_base_ + log_.size(); }

  /// Drops the log prefix that every live server has applied (a server that is dead or far
  /// behind catches up later from a snapshot, as ZooKeeper's SNAP sync), keeping memory
  /// bounded over long runs. Runs in batches.
  void compact() {
    if (log_.size() < 4096) return;
    std::size_t keep_from = log_end();
    for (const auto& s : servers_) {
      if (s.alive) keep_from = std::min(keep_from, s.applied);
    }
    while (log_base_ < keep_from) {
      log_.pop_front();
      ++log_base_;
    }
  }

  /// Server `i` fell behind the compacted log: it takes the state of the most advanced
  /// server (its data is on disk even if that server is down), without its watches.
  void snapshot(std::size_t i) {
    std::size_t src = i;
    for (std::size_t j = 0; j < servers_.size(); ++j) {
      if (servers_[j].applied > servers_[src].applied) src = j;
    }
    detail::sim_check(servers_[src].applied >= log_base_, "no server holds the compacted log prefix");
    server_state& s = servers_[i];
    const server_state& from = servers_[src];
    s.tree = from.tree;
    s.tree.clear_watches();
    s.sessions = from.sessions;
    s.passwords = from.passwords;
    s.applied = from.applied;
    s.last_zxid = from.last_zxid;
    trace_.record(now(), trace_kind::election, s.name, [&](trace::fields& f) { f.add("sync", "snapshot"); });
  }

  void apply_up_to(std::size_t i, std::size_t idx) {
    server_state& s = servers_[i];
    if (s.applied >= idx) return;
    if (s.applied < log_base_) snapshot(i);
    std::vector<std::uint64_t> ids;  // connections whose writes were applied here
    while (s.applied < idx && s.applied < log_end()) {
      const detail::txn& t = *log_[s.applied - log_base_];
      ++s.applied;
      s.last_zxid = t.zxid;
      apply(i, t);
      if (t.origin_server == i) ids.push_back(t.origin_conn);
    }
    compact();
    // Connections waiting for these txns (their writes, their syncs) may answer now.
    ids.insert(ids.end(), s.sync_waiters.begin(), s.sync_waiters.end());
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    for (const auto id : ids) flush(id);
  }

  /// FinalRequestProcessor at server `i`: applies a committed txn to its replica, sends the
  /// watch events to its connected sessions, and marks the origin's reply ready.
  void apply(std::size_t i, const detail::txn& t) {
    server_state& s = servers_[i];
    std::vector<watch_delivery> events;
    if (!t.ec) {
      std::error_code replica_ec;
      events = execute(s.tree, t, replica_ec, nullptr);
      if (t.type == detail::txn_type::create_session) {
        s.sessions[t.session_id] = t.timeout_ms;
        s.passwords[t.session_id] = t.password;
      }
      if (t.type == detail::txn_type::close_session) {
        s.sessions.erase(t.session_id);
        s.passwords.erase(t.session_id);
        if (leader_ == i) tracker_.erase(t.session_id);
      }
      detail::sim_check(replica_ec == t.result.ec, "a replica disagrees with the leader about a txn's outcome");
    }
    for (auto& d : events) {
      const auto sc = s.session_conn.find(d.session_id);
      if (sc != s.session_conn.end()) send_watch(sc->second, std::move(d.event));
    }
    if (t.type == detail::txn_type::close_session && !t.origin_server) {
      // Expired: the server closes the session's connection, if it still has one.
      if (const auto sc = s.session_conn.find(t.session_id); sc != s.session_conn.end()) server_close(sc->second, true);
    }
    if (t.origin_server == i) {
      auto it = conns_.find(t.origin_conn);
      if (it == conns_.end() || !it->second.server_open) return;
      for (auto& e : it->second.queue) {
        const bool match = t.type == detail::txn_type::create_session ? e.req.xid == handshake_xid && !e.ready
                                                                      : e.sent_to_leader && !e.ready;
        if (!match) continue;
        e.ready = true;
        e.rep = t.result;
        e.rep.xid = e.req.xid;
        e.rep.zxid = t.zxid;
        e.rep.ec = t.ec ? t.ec : t.result.ec;
        if (t.type == detail::txn_type::create_session) {
          e.rep.stat.ephemeral_owner = t.session_id;  // carries the new id to flush()
          e.rep.data = t.password;
        }
        break;
      }
    }
  }

  /// Executes txn `t` on `tree` with the credentials it carried: the leader's prep tree (the
  /// outcome goes to `out`), or a replica (same prior state, same outcome). Returns the watch
  /// events it fired; `ec` is the operation's error.
  std::vector<watch_delivery> execute(data_tree& tree, const detail::txn& t, std::error_code& ec,
                                      detail::reply* out_reply) {
    const auto saved = tree.auth_info(t.session_id);
    tree.set_auth(t.session_id, t.auth);
    std::vector<watch_delivery> events;
    detail::reply scratch;
    detail::reply& out = out_reply ? *out_reply : scratch;
    const auto& q = t.req;
    switch (t.type) {
      case detail::txn_type::create: {
        auto r = tree.create(t.zxid, t.time_ms, t.session_id, q.path, q.data, q.x().create);
        ec = r.ec;
        out.path = std::move(r.path);
        out.stat = r.stat;
        events = std::move(r.events);
        break;
      }
      case detail::txn_type::remove: {
        auto r = tree.remove(t.zxid, t.session_id, q.path, q.version);
        ec = r.ec;
        events = std::move(r.events);
        break;
      }
      case detail::txn_type::set: {
        auto r = tree.set_data(t.zxid, t.time_ms, t.session_id, q.path, q.data, q.version);
        ec = r.ec;
        out.stat = r.stat;
        events = std::move(r.events);
        break;
      }
      case detail::txn_type::set_acl: {
        auto r = tree.set_acl(t.zxid, t.session_id, q.path, q.x().acls, q.version);
        ec = r.ec;
        break;
      }
      case detail::txn_type::multi: {
        auto r = tree.multi(t.zxid, t.time_ms, t.session_id, q.x().ops);
        ec = r.ec;
        out.results = std::move(r.results);
        events = std::move(r.events);
        break;
      }
      case detail::txn_type::create_session: break;
      case detail::txn_type::close_session:
        events = tree.close_session(t.zxid, t.session_id);
        break;
      case detail::txn_type::remove_container: {
        auto r = tree.remove_container(t.zxid, q.path);
        ec = r.ec;
        events = std::move(r.events);
        break;
      }
    }
    if (t.type != detail::txn_type::close_session) tree.set_auth(t.session_id, saved);
    return events;
  }

  std::size_t quorum() const noexcept { return servers_.size() / 2 + 1; }

  /// Touches a session at the leader on behalf of server `from`, if it can reach it.
  void touch_from(std::size_t from, std::int64_t sid) {
    if (!leader_ || !reachable(endpoint::server(from), endpoint::server(*leader_))) return;
    touch(sid);
  }
  void touch(std::int64_t sid) {
    auto it = tracker_.find(sid);
    if (it == tracker_.end() || it->second.closing) return;
    it->second.expiry = std::max(it->second.expiry, round_to_tick(now() + std::chrono::milliseconds(it->second.timeout_ms)));
  }
  /// SessionTrackerImpl.roundToNextInterval: deadlines fall on tick boundaries.
  clock_time round_to_tick(clock_time t) const {
    const auto tick = std::chrono::duration_cast<clock_duration>(opts_.tick_time);
    const auto n = t.time_since_epoch() / tick + 1;
    return clock_time(tick * n);
  }

  void expire(std::int64_t sid) {
    auto it = tracker_.find(sid);
    if (it == tracker_.end() || it->second.closing) return;
    trace_.record(now(), trace_kind::session, servers_[*leader_].name, [&](trace::fields& f) {
      f.add("session", hex(sid));
      f.add("state", "expiring");
    });
    auto tp = std::make_shared<detail::txn>();
    tp->type = detail::txn_type::close_session;
    tp->session_id = sid;
    prepare(std::move(tp));
  }

  /// The leader's tick: expire sessions whose deadline passed (in id order).
  void leader_tick(std::uint64_t term) {
    if (term != term_ || !leader_) return;
    std::vector<std::int64_t> due;
    for (const auto& [sid, tr] : tracker_) {
      if (!tr.closing && tr.expiry <= now()) due.push_back(sid);
    }
    for (const auto sid : due) expire(sid);
    sched_.post_at(world_process, round_to_tick(now()), [this, term] { leader_tick(term); });
  }

  /// ContainerManager: deletes empty used containers and expired TTL nodes.
  void container_check(std::uint64_t term) {
    if (term != term_ || !leader_) return;
    for (const auto& p : servers_[*leader_].tree.reap_candidates(wall_ms())) {
      auto tp = std::make_shared<detail::txn>();
      tp->type = detail::txn_type::remove_container;
      tp->req.path = p;
      prepare(std::move(tp));
    }
    sched_.post_after(world_process, opts_.container_check_interval, [this, term] { container_check(term); });
  }

  // ---- elections and membership --------------------------------------------------------------

  clock_duration draw_election_pause() { return rng_.uniform_duration(opts_.election_min, opts_.election_max); }

  std::string draw_password() {
    std::string pw(16, '\0');
    for (auto& ch : pw) ch = static_cast<char>(rng_.uniform(256));
    return pw;
  }

  /// Every server stops serving for `pause`; then the largest connected quorum of live
  /// servers elects the one with the highest (last zxid, index).
  void begin_election(clock_duration pause) {
    ++term_;
    const std::uint64_t term = term_;
    trace_.record(now(), trace_kind::election, "ensemble", [&](trace::fields& f) {
      f.add("state", "looking");
      f.add("pause_ms", ms(pause));
      if (leader_) f.add("old_leader", servers_[*leader_].name);
    });
    leader_.reset();
    electing_ = true;
    for (std::size_t i = 0; i < servers_.size(); ++i) stop_serving(i);
    // Proposals in flight: a prefix of them may have reached a quorum and be committed by
    // the next leader; the rest are lost. Their clients saw connection loss either way.
    if (!proposals_.empty()) {
      const auto keep = static_cast<std::size_t>(rng_.uniform(proposals_.size() + 1));
      for (std::size_t k = 0; k < keep; ++k) {
        log_.push_back(std::move(proposals_.front()));
        proposals_.pop_front();
      }
      trace_.record(now(), trace_kind::election, "ensemble", [&](trace::fields& f) {
        f.add("uncommitted_kept", static_cast<std::uint64_t>(keep));
        f.add("uncommitted_lost", static_cast<std::uint64_t>(proposals_.size()));
      });
      proposals_.clear();
    }
    tracker_.clear();
    sched_.post_after(world_process, pause, [this, term] { finish_election(term); });
  }

  void finish_election(std::uint64_t term) {
    if (term != term_) return;
    // The largest group of live servers that reach each other, if it is a quorum.
    std::vector<std::size_t> best;
    std::vector<bool> seen(servers_.size(), false);
    for (std::size_t i = 0; i < servers_.size(); ++i) {
      if (seen[i] || !servers_[i].alive) continue;
      std::vector<std::size_t> group{i};
      seen[i] = true;
      for (std::size_t k = 0; k < group.size(); ++k) {
        for (std::size_t j = 0; j < servers_.size(); ++j) {
          if (!seen[j] && servers_[j].alive && reachable(endpoint::server(group[k]), endpoint::server(j))) {
            seen[j] = true;
            group.push_back(j);
          }
        }
      }
      if (group.size() > best.size()) best = std::move(group);
    }
    if (best.size() < quorum()) {
      electing_ = true;
      awaiting_quorum_ = true;  // waits for a restart or a heal (reassess)
      trace_.record(now(), trace_kind::election, "ensemble", [&](trace::fields& f) { f.add("state", "no_quorum"); });
      return;
    }
    std::sort(best.begin(), best.end());
    std::size_t lead = best.front();
    for (const auto i : best) {
      if (std::pair(servers_[i].applied, i) > std::pair(servers_[lead].applied, lead)) lead = i;
    }
    electing_ = false;
    awaiting_quorum_ = false;
    leader_ = lead;
    ++epoch_;
    counter_ = 0;
    last_commit_ = now();
    for (const auto i : best) {
      apply_up_to(i, log_end());
      servers_[i].serving = true;
      servers_[i].apply_horizon = now();
    }
    prep_ = servers_[lead].tree;
    // 3.8's session tracker: every session gets a fresh full timeout from the new leader.
    tracker_.clear();
    for (const auto& [sid, timeout] : servers_[lead].sessions) {
      tracker_[sid] = tracked{timeout, round_to_tick(now() + std::chrono::milliseconds(timeout)), false,
                              servers_[lead].passwords.at(sid)};
    }
    trace_.record(now(), trace_kind::election, servers_[lead].name, [&](trace::fields& f) {
      f.add("state", "leading");
      f.add("epoch", static_cast<std::uint64_t>(epoch_));
      f.add("followers", static_cast<std::uint64_t>(best.size() - 1));
    });
    const std::uint64_t t2 = term_;
    sched_.post_at(world_process, round_to_tick(now()), [this, t2] { leader_tick(t2); });
    sched_.post_after(world_process, opts_.container_check_interval, [this, t2] { container_check(t2); });
    reassess();
  }

  /// After any change of liveness or links: a leader without a quorum steps down (election);
  /// followers cut off from the leader stop serving; live servers that reach the leader again
  /// rejoin after a short sync; without a leader, a new election is tried.
  void reassess() {
    if (!leader_) {
      // An election that found no quorum tries again, after a fresh pause, once a restart
      // or a heal may have made one. An election still in its pause is left alone.
      if (!awaiting_quorum_) return;
      std::size_t alive = 0;
      for (const auto& s : servers_) alive += s.alive ? 1 : 0;
      if (alive >= quorum()) {
        awaiting_quorum_ = false;
        const std::uint64_t term = ++term_;
        sched_.post_after(world_process, draw_election_pause(), [this, term] { finish_election(term); });
      }
      return;
    }
    const std::size_t lead = *leader_;
    std::size_t members = 1;
    for (std::size_t f = 0; f < servers_.size(); ++f) {
      if (f == lead || !servers_[f].alive) continue;
      if (reachable(endpoint::server(lead), endpoint::server(f))) ++members;
    }
    if (members < quorum()) {
      begin_election(draw_election_pause());
      return;
    }
    for (std::size_t f = 0; f < servers_.size(); ++f) {
      if (f == lead) continue;
      server_state& s = servers_[f];
      const bool connected = s.alive && reachable(endpoint::server(lead), endpoint::server(f));
      if (s.serving && !connected) {
        trace_.record(now(), trace_kind::election, s.name, [&](trace::fields& fl) { fl.add("state", "lost_leader"); });
        stop_serving(f);
      } else if (!s.serving && connected && !s.rejoining) {
        s.rejoining = true;
        const std::uint64_t term = term_;
        sched_.post_after(world_process, rng_.uniform_duration(opts_.rejoin_min, opts_.rejoin_max), [this, f, term] {
          server_state& ss = servers_[f];
          if (term != term_ || !ss.rejoining) return;
          ss.rejoining = false;
          if (!ss.alive || !reachable(endpoint::server(*leader_), endpoint::server(f))) return;
          apply_up_to(f, log_end());
          ss.serving = true;
          ss.apply_horizon = now();
          trace_.record(now(), trace_kind::election, ss.name, [&](trace::fields& fl) { fl.add("state", "following"); });
        });
      }
    }
  }

  cluster_options opts_;
  scheduler sched_;
  prng rng_;
  trace trace_;
  std::vector<server_state> servers_;
  // Looked up on every message, iterated only with the ids sorted (never in hash order).
  std::unordered_map<std::uint64_t, connection> conns_;
  std::map<process_id, client_entry> clients_;
  std::map<link_key, int> cuts_;                     // cut links, each with how many cuts hold it
  std::map<cut_id, std::vector<link_key>> cut_sets_;  // the links of each cut not yet healed
  cut_id next_cut_ = 1;
  std::map<std::pair<std::size_t, std::size_t>, clock_time> server_link_horizon_;  // FIFO per direction
  std::map<link_key, link_options> links_;
  process_id next_process_ = 1;
  std::uint64_t next_conn_ = 1;

  // The ensemble's replicated log and the leader's state.
  std::deque<std::shared_ptr<const detail::txn>> log_;  // committed, in zxid order, from log_base_
  std::size_t log_base_ = 0;             // index of log_.front(): earlier txns were compacted away
  std::deque<txn_ptr> proposals_;        // proposed, not yet committed
  std::optional<std::size_t> leader_;
  bool electing_ = false;
  bool awaiting_quorum_ = false;  // an election ended without quorum: retry on the next change
  std::uint64_t term_ = 0;               // bumps at every leadership change: stale events die
  std::uint32_t epoch_ = 0;
  std::uint32_t counter_ = 0;
  clock_time last_commit_{};
  data_tree prep_;                       // the leader's view with outstanding changes
  std::map<std::int64_t, tracked> tracker_;  // the leader's session deadlines
};

}  // namespace zkr::sim
