// zkr/sim/data_tree.hpp: a sans-IO model of ZooKeeper 3.8's data tree, its ACL checks and its
// server-side watch manager, which the simulator's servers apply requests to.
//
// It follows the 3.8.0 server (the one the conformance suite runs against) operation by
// operation: PrepRequestProcessor's checks in their order, DataTree's updates, DataNode's
// stat rendering, FinalRequestProcessor's reads, ContainerManager's reaping and WatchManager's
// trigger rules. Determinism: ordered containers only, no clock (the caller passes
// `now_ms`, ms since the epoch, as the leader's txn time), no randomness. Every zxid is
// given by the caller (the leader). As in ZooKeeper, a write that FAILS still consumes its
// zxid (the server logs an error txn); that is the caller's business.
//
// Errors are std::error_code values in the zkr category with ZooKeeper's numbers.
// A path the server rejects gives `errc::bad_arguments` (as the server does; the client
// normally catches it first as `invalid_path`).
//
// Watches live on the server per (session, path) in two tables like WatchManager's: a data
// table (exists and get_data watches; the server cannot tell them apart) and a child table.
// A firing delivers at most one event per session per trigger; the session's client side
// dispatches it to its own watchers as the C client does (created/data_changed -> exists and
// get watchers; deleted -> all three; children_changed -> children watchers).
//
// Thread safety: none; one simulated server owns one tree.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <zkr/error.hpp>
#include <zkr/op.hpp>
#include <zkr/path.hpp>
#include <zkr/sim/detail/digest.hpp>
#include <zkr/types.hpp>

namespace zkr::sim {

/// One watch event to deliver to one session.
struct watch_delivery {
  std::int64_t session_id = 0;
  watch_event event;
  friend bool operator==(const watch_delivery&, const watch_delivery&) = default;
};

/// What kind of life a node has.
enum class node_kind : int { persistent, ephemeral, container, ttl };

/// One authenticated identity of a session (ZooKeeper's Id).
struct auth_id {
  std::string scheme;
  std::string id;
  friend bool operator==(const auth_id&, const auth_id&) = default;
};

/// The outcome of a write. `path` is the created path (create only); `stat` is filled for
/// create and set_data; `events` are the watch events it fired, in delivery order (empty
/// unless `ec` is success).
struct write_result {
  std::error_code ec;
  std::string path;
  zkr::stat stat{};
  std::vector<watch_delivery> events;
};

/// The outcome of a multi: `ec` is the first failing op's error (success if none);
/// `results` has one entry per op as ZooKeeper reports them (ok before the failing op, its
/// error, runtime_inconsistency after it); `events` as for write_result.
struct multi_outcome {
  std::error_code ec;
  std::vector<op_result> results;
  std::vector<watch_delivery> events;
};

/// The outcome of exists / get_data. `data` is empty for exists.
struct read_result {
  std::error_code ec;
  std::string data;
  zkr::stat stat{};
};

/// The outcome of get_children: names sorted (the real server returns hash-set order).
struct children_result {
  std::error_code ec;
  std::vector<std::string> children;
  zkr::stat stat{};
};

/// The outcome of get_acl.
struct acl_result {
  std::error_code ec;
  acl_list acl;
  zkr::stat stat{};
};

/// The largest TTL ZooKeeper accepts (EphemeralType.TTL's 40-bit field), in ms.
inline constexpr std::int64_t max_ttl_ms = (std::int64_t{1} << 40) - 1;

class data_tree {
 public:
  /// One znode as stored. `child_creates` is the server's stored cversion: the number of
  /// child creates (int32, wrapping). Clients see `2 * child_creates - num_children`.
  struct node {
    std::string data;
    acl_list acl;
    node_kind kind = node_kind::persistent;
    std::int64_t owner = 0;   ///< owning session of an ephemeral node
    std::int64_t ttl_ms = 0;  ///< TTL of a ttl node
    std::int64_t czxid = 0, mzxid = 0, pzxid = 0, ctime = 0, mtime = 0;
    std::int32_t version = 0, child_creates = 0, aversion = 0;
    std::set<std::string> children;
  };

  /// A fresh tree as a freshly started 3.8 server has it: "/", "/zookeeper",
  /// "/zookeeper/config" (read-only ACL, aversion -1) and "/zookeeper/quota", all with
  /// zero zxids and times.
  data_tree() {
    const auto builtin = [this](const char* path, acl_list acl, std::set<std::string> children) -> node& {
      node& n = nodes_[path];
      n.acl = std::move(acl);
      n.children = std::move(children);
      return n;
    };
    builtin("/", open_acl_unsafe(), {"zookeeper"});
    builtin("/zookeeper", open_acl_unsafe(), {"config", "quota"});
    builtin("/zookeeper/quota", open_acl_unsafe(), {});
    builtin("/zookeeper/config", read_acl_unsafe(), {}).aversion = -1;
  }

  // ---- sessions and auth ---------------------------------------------------------------

  /// Adds credentials to a session (AuthPacket). "digest" never fails (a wrong password
  /// shows as no_auth later) and adds id digest_id(credential); any other scheme fails
  /// with `auth_failed` and adds nothing (the real server then closes the connection).
  std::error_code add_auth(std::int64_t session_id, std::string_view scheme, std::string_view credential) {
    if (scheme != "digest") return errc::auth_failed;
    // ServerCnxn.addAuthInfo keeps each id once: a repeated credential adds nothing.
    auth_id id{"digest", digest_id(credential)};
    auto& ids = auth_[session_id];
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(std::move(id));
    return {};
  }

  /// The ids a session has authenticated as, in the order first added (each once, as the
  /// server's list). Empty for an unknown session.
  std::vector<auth_id> auth_info(std::int64_t session_id) const {
    const auto it = auth_.find(session_id);
    return it == auth_.end() ? std::vector<auth_id>{} : it->second;
  }

  /// Replaces a session's ids with `ids` (empty: forgets them). The simulated ensemble uses
  /// it to apply a transaction with the credentials its request carried, as the server's
  /// PrepRequestProcessor checks ACLs with the request's own auth info. Never fails.
  void set_auth(std::int64_t session_id, std::vector<auth_id> ids) {
    if (ids.empty()) {
      auth_.erase(session_id);
    } else {
      auth_[session_id] = std::move(ids);
    }
  }

  /// Ends a session (close or expiry) as the closeSession txn `zxid` does: its watches and
  /// credentials are dropped first (it receives no event), then its ephemeral nodes are
  /// deleted in path order, each like a remove. Returns the events fired for other sessions.
  std::vector<watch_delivery> close_session(std::int64_t zxid, std::int64_t session_id) {
    remove_watches(session_id);
    auth_.erase(session_id);
    txn t;
    for (const auto& p : ephemerals(session_id)) apply_remove(t, zxid, p);
    return fire(t.triggers);
  }

  /// Paths of the session's ephemeral nodes, sorted.
  std::vector<std::string> ephemerals(std::int64_t session_id) const {
    std::vector<std::string> out;
    for (const auto& [p, n] : nodes_) {
      if (n.kind == node_kind::ephemeral && n.owner == session_id) out.push_back(p);
    }
    return out;
  }

  // ---- writes ---------------------------------------------------------------------------

  /// Creates a node as create2/createContainer/createTTL. Checks, in the server's order:
  /// TTL valid for the mode (else bad_arguments), path has a '/' and no NUL (bad_arguments),
  /// ACL (invalid_acl: empty, unknown scheme, malformed digest id, "auth" without digest
  /// credentials), parent exists (no_node), CREATE on the parent (no_auth), the path with the
  /// sequence suffix is valid (bad_arguments), the node exists (node_exists), the parent is
  /// ephemeral (no_children_for_ephemerals). The sequence suffix is the parent's stored
  /// cversion (child creates) rendered %010d, negative after it wraps.
  write_result create(std::int64_t zxid, std::int64_t now_ms, std::int64_t session_id, std::string_view path,
                      std::string_view data, const create_options& options) {
    txn t;
    write_result r;
    r.ec = apply_create(t, zxid, now_ms, session_id, path, data, options, r.path, r.stat);
    if (!r.ec) r.events = fire(t.triggers);
    return r;
  }

  /// Deletes a node. Checks, in the server's order: a special path ("/", "/zookeeper",
  /// "/zookeeper/quota", "/zookeeper/config") or NUL (bad_arguments), parent exists
  /// (no_node), DELETE on the parent (no_auth), node exists (no_node), version (-1: any;
  /// bad_version), no children (not_empty). The parent's pzxid becomes `zxid`.
  write_result remove(std::int64_t zxid, std::int64_t session_id, std::string_view path, std::int32_t version) {
    txn t;
    write_result r;
    r.ec = check_remove(session_id, path, version);
    if (!r.ec) {
      apply_remove(t, zxid, std::string(path));
      r.events = fire(t.triggers);
    }
    return r;
  }

  /// Sets a node's data. Checks: valid path (bad_arguments), exists (no_node), WRITE
  /// (no_auth), version (-1: any; bad_version). version + 1, mzxid, mtime change.
  write_result set_data(std::int64_t zxid, std::int64_t now_ms, std::int64_t session_id, std::string_view path,
                        std::string_view data, std::int32_t version) {
    txn t;
    write_result r;
    r.ec = apply_set(t, zxid, now_ms, session_id, path, data, version, r.stat);
    if (!r.ec) r.events = fire(t.triggers);
    return r;
  }

  /// Replaces a node's ACL. Checks: valid path (bad_arguments), ACL (invalid_acl), exists
  /// (no_node), ADMIN (no_auth), aversion (-1: any; bad_version). aversion + 1; nothing
  /// else in the stat changes and no watch fires. `zxid` is unused (kept for symmetry).
  write_result set_acl(std::int64_t /*zxid*/, std::int64_t session_id, std::string_view path, const acl_list& acl,
                       std::int32_t aversion) {
    write_result r;
    if (!is_valid_path(path)) return r.ec = errc::bad_arguments, r;
    acl_list fixed;
    if (auto ec = fixup_acl(session_id, acl, fixed)) return r.ec = ec, r;
    node* n = find_mut(path);
    if (n == nullptr) return r.ec = errc::no_node, r;
    if (!permitted(session_id, *n, perms::admin)) return r.ec = errc::no_auth, r;
    if (aversion != -1 && aversion != n->aversion) return r.ec = errc::bad_version, r;
    n->acl = std::move(fixed);
    n->aversion = inc(n->aversion);
    r.stat = render(*n);
    return r;
  }

  /// The check op of a multi, alone: valid path (bad_arguments), exists (no_node), READ
  /// (no_auth), version (-1: any; bad_version). Changes nothing.
  write_result check(std::int64_t session_id, std::string_view path, std::int32_t version) const {
    write_result r;
    r.ec = check_version(session_id, path, version);
    return r;
  }

  /// Applies `ops` atomically with one zxid and one time, each op seeing the effects of the
  /// ones before it (a sequential create after another under the same parent gets the next
  /// number). On failure nothing is applied and no watch fires; results are ok for the ops
  /// before the failing one, its error, runtime_inconsistency for the rest. An empty multi
  /// succeeds with no results. Ops of kind other than create/remove/set/check fail with
  /// `unimplemented`.
  multi_outcome multi(std::int64_t zxid, std::int64_t now_ms, std::int64_t session_id, const std::vector<op>& ops) {
    multi_outcome out;
    txn t;
    t.journal.emplace();
    std::size_t failed = ops.size();
    for (std::size_t i = 0; i < ops.size(); ++i) {
      const op& o = ops[i];
      op_result res;
      switch (o.type) {
        case op::kind::create:
          res.ec = apply_create(t, zxid, now_ms, session_id, o.path, o.data, o.create, res.path, res.stat);
          break;
        case op::kind::remove:
          res.ec = check_remove(session_id, o.path, o.version);
          if (!res.ec) apply_remove(t, zxid, o.path);
          break;
        case op::kind::set:
          res.ec = apply_set(t, zxid, now_ms, session_id, o.path, o.data, o.version, res.stat);
          break;
        case op::kind::check:
          res.ec = check_version(session_id, o.path, o.version);
          break;
        default:
          res.ec = errc::unimplemented;
      }
      if (res.ec) {
        failed = i;
        out.ec = res.ec;
        break;
      }
      out.results.push_back(std::move(res));
    }
    if (failed == ops.size()) {
      out.events = fire(t.triggers);
      return out;
    }
    rollback(t);
    out.results.clear();
    for (std::size_t i = 0; i < ops.size(); ++i) {
      op_result res;
      res.ec = i < failed ? std::error_code{} : i == failed ? out.ec : make_error_code(errc::runtime_inconsistency);
      out.results.push_back(std::move(res));
    }
    return out;
  }

  // ---- containers and TTL nodes ---------------------------------------------------------

  /// What ContainerManager would delete now, sorted by path: containers without children
  /// whose stored cversion is > 0 (they had a child; maxNeverUsedIntervalMs = 0 keeps the
  /// never-used ones), and TTL nodes without children with now_ms - mtime > ttl.
  std::vector<std::string> reap_candidates(std::int64_t now_ms) const {
    std::vector<std::string> out;
    for (const auto& [p, n] : nodes_) {
      if (!n.children.empty()) continue;
      if (n.kind == node_kind::container && n.child_creates > 0) out.push_back(p);
      if (n.kind == node_kind::ttl && n.ttl_ms != 0 && now_ms - n.mtime > n.ttl_ms) out.push_back(p);
    }
    return out;
  }

  /// The deleteContainer txn: no ACL check. Checks: special path (bad_arguments), exists
  /// (no_node), no children (not_empty), not an ephemeral node (bad_version, as the server
  /// says; like the server it would delete a childless persistent node).
  write_result remove_container(std::int64_t zxid, std::string_view path) {
    write_result r;
    if (is_special(path)) return r.ec = errc::bad_arguments, r;
    const node* n = find(path);
    if (n == nullptr) return r.ec = errc::no_node, r;
    if (!n->children.empty()) return r.ec = errc::not_empty, r;
    if (n->kind == node_kind::ephemeral) return r.ec = errc::bad_version, r;
    txn t;
    apply_remove(t, zxid, std::string(path));
    r.events = fire(t.triggers);
    return r;
  }

  /// One reaper pass: deletes every reap_candidates(now_ms) entry, each with its own zxid
  /// from `next_zxid()` (called once per candidate, in path order). Returns all events.
  template <class NextZxid>
  std::vector<watch_delivery> reap(NextZxid&& next_zxid, std::int64_t now_ms) {
    std::vector<watch_delivery> events;
    for (const auto& p : reap_candidates(now_ms)) {
      auto r = remove_container(next_zxid(), p);
      events.insert(events.end(), r.events.begin(), r.events.end());
    }
    return events;
  }

  // ---- reads ----------------------------------------------------------------------------

  /// exists: no ACL check (3.8.0; READ is checked from 3.8.4 on). A NUL in the path gives
  /// bad_arguments. With `watch`, a data watch is set whether or not the node exists.
  read_result exists(std::int64_t session_id, std::string_view path, bool watch) {
    read_result r;
    if (path.find('\0') != std::string_view::npos) return r.ec = errc::bad_arguments, r;
    if (watch) data_watches_[std::string(path)].insert(session_id);
    const node* n = find(path);
    if (n == nullptr) return r.ec = errc::no_node, r;
    r.stat = render(*n);
    return r;
  }

  /// get_data: no_node, then READ (no_auth). A watch is set only on success.
  read_result get_data(std::int64_t session_id, std::string_view path, bool watch) {
    read_result r;
    const node* n = find(path);
    if (n == nullptr) return r.ec = errc::no_node, r;
    if (!permitted(session_id, *n, perms::read)) return r.ec = errc::no_auth, r;
    if (watch) data_watches_[std::string(path)].insert(session_id);
    r.data = n->data;
    r.stat = render(*n);
    return r;
  }

  /// get_children (getChildren2): no_node, then READ (no_auth). Names sorted. A watch is
  /// set only on success.
  children_result get_children(std::int64_t session_id, std::string_view path, bool watch) {
    children_result r;
    const node* n = find(path);
    if (n == nullptr) return r.ec = errc::no_node, r;
    if (!permitted(session_id, *n, perms::read)) return r.ec = errc::no_auth, r;
    if (watch) child_watches_[std::string(path)].insert(session_id);
    r.children.assign(n->children.begin(), n->children.end());
    r.stat = render(*n);
    return r;
  }

  /// get_acl: no_node, then READ or ADMIN (no_auth). Without ADMIN, digest ids are shown
  /// as "user:x" (the server hides the hashes from readers).
  acl_result get_acl(std::int64_t session_id, std::string_view path) const {
    acl_result r;
    const node* n = find(path);
    if (n == nullptr) return r.ec = errc::no_node, r;
    if (!permitted(session_id, *n, perms::read | perms::admin)) return r.ec = errc::no_auth, r;
    r.acl = n->acl;
    if (!permitted(session_id, *n, perms::admin)) {
      for (auto& a : r.acl) {
        if (a.scheme == "digest") a.id = a.id.substr(0, a.id.find(':')) + ":x";
      }
    }
    r.stat = render(*n);
    return r;
  }

  // ---- watches --------------------------------------------------------------------------

  /// True if the session has a data (exists/get) watch on `path`.
  bool has_data_watch(std::int64_t session_id, std::string_view path) const {
    return has(data_watches_, session_id, path);
  }
  /// True if the session has a child watch on `path`.
  bool has_child_watch(std::int64_t session_id, std::string_view path) const {
    return has(child_watches_, session_id, path);
  }
  /// Number of (session, path) watches in both tables.
  std::size_t watch_count() const {
    std::size_t n = 0;
    for (const auto& [p, s] : data_watches_) n += s.size();
    for (const auto& [p, s] : child_watches_) n += s.size();
    return n;
  }
  /// Sets a data (exists/get) watch for the session without reading or checking anything,
  /// as SetWatches does for a reconnecting client. Never fails.
  void add_data_watch(std::int64_t session_id, std::string_view path) {
    data_watches_[std::string(path)].insert(session_id);
  }
  /// Sets a child watch for the session without reading or checking anything (SetWatches).
  void add_child_watch(std::int64_t session_id, std::string_view path) {
    child_watches_[std::string(path)].insert(session_id);
  }
  /// Drops every watch of every session (a server that loads a snapshot). No event.
  void clear_watches() {
    data_watches_.clear();
    child_watches_.clear();
  }
  /// Drops all of a session's watches (its connection closed). No event.
  void remove_watches(std::int64_t session_id) {
    drop(data_watches_, session_id);
    drop(child_watches_, session_id);
  }

  // ---- inspection -----------------------------------------------------------------------

  /// The node at `path` as stored, or nullptr.
  const node* find(std::string_view path) const {
    const auto it = nodes_.find(path);
    return it == nodes_.end() ? nullptr : &it->second;
  }
  /// The stat a client would see for a stored node: ephemeral_owner 0 unless ephemeral,
  /// cversion = 2 * child creates - children (int32 arithmetic, as DataNode.copyStat).
  static zkr::stat render(const node& n) {
    zkr::stat s;
    s.czxid = n.czxid;
    s.mzxid = n.mzxid;
    s.pzxid = n.pzxid;
    s.ctime = n.ctime;
    s.mtime = n.mtime;
    s.version = n.version;
    s.aversion = n.aversion;
    s.ephemeral_owner = n.kind == node_kind::ephemeral ? n.owner : 0;
    s.data_length = static_cast<std::int32_t>(n.data.size());
    s.num_children = static_cast<std::int32_t>(n.children.size());
    const auto c = static_cast<std::uint32_t>(n.child_creates);
    s.cversion = static_cast<std::int32_t>(c * 2u - static_cast<std::uint32_t>(n.children.size()));
    return s;
  }
  /// Number of nodes, the four built-in ones included.
  std::size_t size() const { return nodes_.size(); }
  /// Every node by path, in path order.
  const std::map<std::string, node, std::less<>>& nodes() const { return nodes_; }

  /// Test hook: sets a node's stored child-create counter (the cversion the next sequence
  /// number comes from), to reach the int32 wrap without 2^31 creates. Returns false if
  /// there is no such node.
  bool set_child_creates_for_test(std::string_view path, std::int32_t creates) {
    node* n = find_mut(path);
    if (n == nullptr) return false;
    n->child_creates = creates;
    return true;
  }

 private:
  struct trigger {
    event_type type;
    std::string path;
  };
  // One transaction in progress: triggers to fire on success, and for a multi a journal of
  // each touched node's state before the txn (nullopt: it did not exist).
  struct txn {
    std::vector<trigger> triggers;
    std::optional<std::map<std::string, std::optional<node>>> journal;
  };
  using watch_table = std::map<std::string, std::set<std::int64_t>, std::less<>>;

  static std::int32_t inc(std::int32_t v) {
    return static_cast<std::int32_t>(static_cast<std::uint32_t>(v) + 1u);
  }
  static bool is_special(std::string_view p) {
    return p == "/" || p == "/zookeeper" || p == "/zookeeper/quota" || p == "/zookeeper/config";
  }
  // Java's path.substring(0, lastSlash), with "" meaning the root.
  static std::string parent_of(std::string_view p) {
    const auto slash = p.rfind('/');
    return slash == 0 ? std::string("/") : std::string(p.substr(0, slash));
  }

  node* find_mut(std::string_view path) {
    const auto it = nodes_.find(path);
    return it == nodes_.end() ? nullptr : &it->second;
  }
  static bool has(const watch_table& t, std::int64_t session_id, std::string_view path) {
    const auto it = t.find(path);
    return it != t.end() && it->second.contains(session_id);
  }
  static void drop(watch_table& t, std::int64_t session_id) {
    for (auto it = t.begin(); it != t.end();) {
      it->second.erase(session_id);
      it = it->second.empty() ? t.erase(it) : std::next(it);
    }
  }

  // ZooKeeperServer.checkACL: an empty ACL allows all; world:anyone, or a digest entry
  // equal to one of the session's ids, with a bit of `perm`.
  bool permitted(std::int64_t session_id, const node& n, std::int32_t perm) const {
    if (n.acl.empty()) return true;
    const auto it = auth_.find(session_id);
    for (const auto& a : n.acl) {
      if ((a.perms & perm) == 0) continue;
      if (a.scheme == "world" && a.id == "anyone") return true;
      if (a.scheme != "digest" || it == auth_.end()) continue;
      for (const auto& id : it->second) {
        if (id.scheme == a.scheme && id.id == a.id) return true;
      }
    }
    return false;
  }

  // PrepRequestProcessor.fixupACL: dedupe, refuse empty, expand "auth" to the session's
  // digest ids, accept world:anyone and well-formed digest ids ("user:hash"), refuse the rest.
  std::error_code fixup_acl(std::int64_t session_id, const acl_list& in, acl_list& out) const {
    acl_list unique;
    for (const auto& a : in) {
      if (std::find(unique.begin(), unique.end(), a) == unique.end()) unique.push_back(a);
    }
    if (unique.empty()) return errc::invalid_acl;
    out.clear();
    for (const auto& a : unique) {
      if (a.scheme == "world" && a.id == "anyone") {
        out.push_back(a);
      } else if (a.scheme == "auth") {
        const auto it = auth_.find(session_id);
        if (it == auth_.end() || it->second.empty()) return errc::invalid_acl;
        for (const auto& id : it->second) out.push_back({a.perms, id.scheme, id.id});
      } else if (a.scheme == "digest" && valid_digest_id(a.id)) {
        out.push_back(a);
      } else {
        return errc::invalid_acl;  // ip ACLs are not modelled
      }
    }
    return {};
  }
  // Java's id.split(":").length == 2: trailing empty strings are dropped by split.
  static bool valid_digest_id(std::string_view id) {
    while (!id.empty() && id.back() == ':') id.remove_suffix(1);
    if (id.empty()) return false;
    return std::count(id.begin(), id.end(), ':') == 1;
  }

  // Saves a node's state before its first change in a multi.
  void touch(txn& t, const std::string& path) {
    if (!t.journal) return;
    if (t.journal->contains(path)) return;
    const auto it = nodes_.find(path);
    t.journal->emplace(path, it == nodes_.end() ? std::nullopt : std::optional<node>(it->second));
  }
  void rollback(txn& t) {
    for (auto& [p, before] : *t.journal) {
      if (before) {
        nodes_[p] = std::move(*before);
      } else {
        nodes_.erase(p);
      }
    }
    t.journal->clear();
    t.triggers.clear();
  }

  std::error_code apply_create(txn& t, std::int64_t zxid, std::int64_t now_ms, std::int64_t session_id,
                               std::string_view path_in, std::string_view data, const create_options& o,
                               std::string& created, zkr::stat& st) {
    const create_mode mode = o.mode;
    const auto ttl = static_cast<std::int64_t>(o.ttl.count());
    if (static_cast<int>(mode) < 0 || static_cast<int>(mode) > 6) return errc::bad_arguments;
    if (is_ttl(mode) ? (ttl <= 0 || ttl > max_ttl_ms) : ttl != 0) return errc::bad_arguments;
    if (path_in.find('/') == std::string_view::npos || path_in.find('\0') != std::string_view::npos) {
      return errc::bad_arguments;
    }
    acl_list acl;
    if (auto ec = fixup_acl(session_id, o.acl, acl)) return ec;
    const std::string parent_path = parent_of(path_in);
    node* parent = find_mut(parent_path);
    if (parent == nullptr) return errc::no_node;
    if (!permitted(session_id, *parent, perms::create)) return errc::no_auth;
    std::string path(path_in);
    if (is_sequential(mode)) path += sequence_string(parent->child_creates);
    if (!is_valid_path(path)) return errc::bad_arguments;
    if (find(path) != nullptr) return errc::node_exists;
    if (parent->kind == node_kind::ephemeral) return errc::no_children_for_ephemerals;

    touch(t, parent_path);
    touch(t, path);
    parent = find_mut(parent_path);
    parent->child_creates = inc(parent->child_creates);
    parent->pzxid = zxid;
    parent->children.insert(std::string(node_name(path)));
    node n;
    n.data = std::string(data);
    n.acl = std::move(acl);
    n.kind = mode == create_mode::container ? node_kind::container
             : is_ttl(mode)                 ? node_kind::ttl
             : is_ephemeral(mode)           ? node_kind::ephemeral
                                            : node_kind::persistent;
    n.owner = n.kind == node_kind::ephemeral ? session_id : 0;
    n.ttl_ms = n.kind == node_kind::ttl ? ttl : 0;
    n.czxid = n.mzxid = n.pzxid = zxid;
    n.ctime = n.mtime = now_ms;
    st = render(n);
    nodes_.emplace(path, std::move(n));
    t.triggers.push_back({event_type::created, path});
    t.triggers.push_back({event_type::children_changed, parent_path});
    created = std::move(path);
    return {};
  }

  std::error_code check_remove(std::int64_t session_id, std::string_view path, std::int32_t version) const {
    if (path.find('/') == std::string_view::npos || path.find('\0') != std::string_view::npos || is_special(path)) {
      return errc::bad_arguments;
    }
    const node* parent = find(parent_of(path));
    if (parent == nullptr) return errc::no_node;
    if (!permitted(session_id, *parent, perms::remove)) return errc::no_auth;
    const node* n = find(path);
    if (n == nullptr) return errc::no_node;
    if (version != -1 && version != n->version) return errc::bad_version;
    if (!n->children.empty()) return errc::not_empty;
    return {};
  }

  // DataTree.deleteNode; the caller has checked that the node exists and is childless.
  void apply_remove(txn& t, std::int64_t zxid, const std::string& path) {
    const std::string parent_path = parent_of(path);
    touch(t, parent_path);
    touch(t, path);
    node& parent = nodes_.at(parent_path);
    parent.children.erase(std::string(node_name(path)));
    if (zxid > parent.pzxid) parent.pzxid = zxid;
    nodes_.erase(path);
    t.triggers.push_back({event_type::deleted, path});
    t.triggers.push_back({event_type::children_changed, parent_path});
  }

  std::error_code apply_set(txn& t, std::int64_t zxid, std::int64_t now_ms, std::int64_t session_id,
                            std::string_view path, std::string_view data, std::int32_t version, zkr::stat& st) {
    if (!is_valid_path(path)) return errc::bad_arguments;
    node* n = find_mut(path);
    if (n == nullptr) return errc::no_node;
    if (!permitted(session_id, *n, perms::write)) return errc::no_auth;
    if (version != -1 && version != n->version) return errc::bad_version;
    touch(t, std::string(path));
    n = find_mut(path);
    n->data = std::string(data);
    n->version = inc(n->version);
    n->mzxid = zxid;
    n->mtime = now_ms;
    st = render(*n);
    t.triggers.push_back({event_type::data_changed, std::string(path)});
    return {};
  }

  std::error_code check_version(std::int64_t session_id, std::string_view path, std::int32_t version) const {
    if (!is_valid_path(path)) return errc::bad_arguments;
    const node* n = find(path);
    if (n == nullptr) return errc::no_node;
    if (!permitted(session_id, *n, perms::read)) return errc::no_auth;
    if (version != -1 && version != n->version) return errc::bad_version;
    return {};
  }

  // WatchManager.triggerWatch for each trigger in order; per trigger, sessions ascending.
  std::vector<watch_delivery> fire(const std::vector<trigger>& triggers) {
    std::vector<watch_delivery> out;
    const auto take = [](watch_table& table, const std::string& path) {
      std::set<std::int64_t> s;
      const auto it = table.find(path);
      if (it != table.end()) {
        s = std::move(it->second);
        table.erase(it);
      }
      return s;
    };
    for (const auto& tr : triggers) {
      std::set<std::int64_t> sessions;
      switch (tr.type) {
        case event_type::created:
        case event_type::data_changed:
          sessions = take(data_watches_, tr.path);
          break;
        case event_type::children_changed:
          sessions = take(child_watches_, tr.path);
          break;
        case event_type::deleted: {
          sessions = take(data_watches_, tr.path);
          // childWatches.triggerWatch(path, NodeDeleted, processed): one event per session.
          sessions.merge(take(child_watches_, tr.path));
          break;
        }
      }
      for (const auto s : sessions) out.push_back({s, watch_event{tr.type, tr.path}});
    }
    return out;
  }

  std::map<std::string, node, std::less<>> nodes_;
  std::map<std::int64_t, std::vector<auth_id>> auth_;
  watch_table data_watches_;
  watch_table child_watches_;
};

}  // namespace zkr::sim
