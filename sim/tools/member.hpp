// sim/tools/member.hpp: a group member as the scenarios use it: one simulated client that
// registers an ephemeral node `<parent>/<name>` and, optionally, watches the group with a
// children watch re-armed on every event. It is a small, honest version of what the
// registration and watch-loop recipes do, written directly against the session API:
//
//   - On `connected` (the first session and every new one after `lost`) it creates the
//     parents (node_exists is fine), then its node, then lists the group with a watch.
//   - A create that answers node_exists is checked, not trusted: if the node's ephemeral
//     owner is this session, our own earlier create succeeded (its reply was lost); if it is
//     another (older) session, that session has not been expired by the servers yet, so the
//     member waits for the node's deletion (an exists watch) and creates it again.
//   - connection_loss means "outcome unknown": the member retries after `reconnected`, and
//     the node_exists check above finds out what happened.
//   - `reconnected` keeps the session, so the node and the watches are kept; the member only
//     re-lists if its watch was not armed when the connection dropped.
//   - `lost` ends the generation: its watch completes with the reason and the member waits
//     for the next `connected`.
// Every retry is bounded (max_attempts per generation).
//
// What it saw (state transitions, registrations, group views) is kept for the summary.
// Thread safety: none; the simulator's thread only. Must outlive nothing: the cluster must
// outlive the member (it owns a session).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "scenario_support.hpp"

namespace zkr::sim::tools {

class member {
 public:
  /// A listing of the group that differed from the previous one.
  struct view {
    clock_time t{};
    std::uint64_t generation = 0;
    std::vector<std::string> members;  ///< sorted
  };
  /// A successful registration (a create of our node, or finding our own).
  struct registration {
    clock_time t{};
    std::uint64_t generation = 0;
    std::int64_t session_id = 0;
  };

  static constexpr int max_attempts = 20;

  /// Starts the session (connecting); registration follows on `connected`.
  member(cluster& c, narrator& n, std::string name, std::string parent, std::chrono::milliseconds session_timeout,
         bool watch_group, std::string connect_string = {})
      : cluster_(c),
        narrator_(n),
        name_(std::move(name)),
        parent_(std::move(parent)),
        watch_group_(watch_group),
        session_timeout_(session_timeout) {
    session_options o;
    o.connect_string = connect_string.empty() ? c.connect_string() : std::move(connect_string);
    o.session_timeout = session_timeout;
    o.name = name_;
    session_.emplace(c, std::move(o));
    sub_ = session_->subscribe([this](const session_event& e) { on_state(e); });
  }
  member(const member&) = delete;
  member& operator=(const member&) = delete;
  ~member() = default;

  session& get_session() { return *session_; }
  const session& get_session() const { return *session_; }
  const std::string& name() const { return name_; }
  std::string path() const { return parent_ + "/" + name_; }
  std::chrono::milliseconds session_timeout() const { return session_timeout_; }

  const std::vector<transition>& transitions() const { return transitions_; }
  const std::vector<view>& views() const { return views_; }
  const std::vector<registration>& registrations() const { return registrations_; }
  /// Whether the member believes its node is registered: registered in this generation and
  /// connected. A belief: the servers may have expired the session already.
  bool believes_registered() const { return registered_ && zkr::is_connected(session_->state()); }
  bool closed() const { return closed_; }
  /// Times the member found its node held by an older session of its own and had to wait.
  const std::vector<clock_time>& waited_for_old_node() const { return waited_; }

  /// The last view at or before `t`, or null.
  const view* view_at(clock_time t) const {
    const view* v = nullptr;
    for (const auto& x : views_) {
      if (x.t <= t) v = &x;
    }
    return v;
  }
  bool sees(std::string_view who) const {
    return !views_.empty() && std::ranges::find(views_.back().members, who) != views_.back().members.end();
  }

  /// Closes the session (its ephemeral node goes with it).
  void close() {
    closing_ = true;
    session_->async_close([this](std::error_code) { closed_ = true; });
  }

 private:
  bool current(std::uint64_t gen) const { return !closing_ && session_->generation() == gen; }

  void on_state(const session_event& e) {
    transitions_.push_back({cluster_.now(), e.state, e.generation, e.reason, session_->session_id()});
    switch (e.state) {
      case session_state::connected:
        registered_ = false;
        needs_register_ = false;
        listing_ = false;
        watch_armed_ = false;
        attempts_ = 0;
        ensure_parents(e.generation, 0);
        break;
      case session_state::reconnected:
        if (needs_register_) {
          needs_register_ = false;
          ensure_parents(e.generation, 0);
        } else if (watch_group_ && registered_ && !watch_armed_ && !listing_) {
          list_group(e.generation);
        }
        break;
      case session_state::lost:
        registered_ = false;
        break;
      case session_state::connecting:
      case session_state::suspended:
      case session_state::closed:
        break;
    }
  }

  /// The parents of our node, outermost first ("/demo", "/demo/members").
  std::vector<std::string> parents() const {
    std::vector<std::string> out;
    for (std::size_t i = 1; i <= parent_.size(); ++i) {
      if (i == parent_.size() || parent_[i] == '/') out.push_back(parent_.substr(0, i));
    }
    return out;
  }

  bool give_up(std::uint64_t gen, std::string_view step) {
    if (++attempts_ <= max_attempts) return false;
    narrator_.note(name_, {{"gave_up", step}, {"generation", std::to_string(gen)}});
    return true;
  }

  /// After an operation failed with `ec`: connection loss retries on reconnect; session
  /// ends wait for the next generation; anything else is reported.
  void on_error(std::uint64_t gen, std::string_view step, const std::error_code& ec) {
    if (ec == zkr::errc::connection_loss) {
      needs_register_ = true;
      return;
    }
    if (ec == zkr::errc::session_expired || ec == zkr::errc::session_lost || ec == zkr::errc::closing ||
        ec == zkr::operation_aborted()) {
      return;
    }
    narrator_.note(name_, {{"failed", step}, {"error", ec.message()}, {"generation", std::to_string(gen)}});
  }

  void ensure_parents(std::uint64_t gen, std::size_t i) {
    const auto ps = parents();
    if (i == ps.size()) return create_own(gen);
    if (give_up(gen, "create parents")) return;
    session_->async_create(ps[i], "", {}, [this, gen, i](std::error_code ec, std::string, zkr::stat) {
      if (!current(gen)) return;
      if (ec && ec != zkr::errc::node_exists) return on_error(gen, "create parent", ec);
      ensure_parents(gen, i + 1);
    });
  }

  void create_own(std::uint64_t gen) {
    if (give_up(gen, "register")) return;
    session_->async_create(path(), name_, {.mode = zkr::create_mode::ephemeral},
                           [this, gen](std::error_code ec, std::string, zkr::stat) {
                             if (!current(gen)) return;
                             if (ec == zkr::errc::node_exists) return check_own(gen);
                             if (ec) return on_error(gen, "register", ec);
                             registered(gen);
                           });
  }

  /// Our create found the node: whose is it?
  void check_own(std::uint64_t gen) {
    session_->async_exists(
        path(),
        [this, gen](std::error_code ec, zkr::watch_event ev) {
          // Fires when the old session's node goes (or later for our own node: ignored).
          if (ec || ev.type != zkr::event_type::deleted || !current(gen) || registered_) return;
          create_own(gen);
        },
        [this, gen](std::error_code ec, zkr::stat st) {
          if (!current(gen)) return;
          if (ec == zkr::errc::no_node) return create_own(gen);  // gone meanwhile: try again now
          if (ec) return on_error(gen, "check own node", ec);
          if (st.ephemeral_owner == session_->session_id()) return registered(gen);  // our create's reply was lost
          waited_.push_back(cluster_.now());
          narrator_.note(name_, {{"waiting_for", path()}, {"held_by", hex_id(st.ephemeral_owner)}});
        });
  }

  void registered(std::uint64_t gen) {
    registered_ = true;
    registrations_.push_back({cluster_.now(), gen, session_->session_id()});
    narrator_.note(name_, {{"registered", path()}, {"generation", std::to_string(gen)},
                           {"session", hex_id(session_->session_id())}});
    if (watch_group_) list_group(gen);
  }

  /// Lists the group and sets a children watch; re-lists on every event.
  void list_group(std::uint64_t gen) {
    listing_ = true;
    session_->async_get_children(
        parent_,
        [this, gen](std::error_code ec, zkr::watch_event) {
          if (session_->generation() != gen) return;
          watch_armed_ = false;
          if (ec || closing_) return;  // the session ended: the next `connected` lists again
          list_group(gen);
        },
        [this, gen](std::error_code ec, std::vector<std::string> children, zkr::stat) {
          if (session_->generation() != gen) return;
          listing_ = false;
          if (ec) return;  // connection loss: `reconnected` lists again; session end: next generation
          watch_armed_ = true;
          std::ranges::sort(children);
          if (!views_.empty() && views_.back().members == children) return;
          views_.push_back({cluster_.now(), gen, children});
          narrator_.note(name_, {{"members", join(children, ",", "none")}});
        });
  }

  cluster& cluster_;
  narrator& narrator_;
  std::string name_;
  std::string parent_;
  bool watch_group_;
  std::chrono::milliseconds session_timeout_;
  std::optional<session> session_;
  subscription sub_;

  bool closing_ = false;
  bool closed_ = false;
  bool registered_ = false;
  bool needs_register_ = false;
  bool listing_ = false;
  bool watch_armed_ = false;
  int attempts_ = 0;

  std::vector<transition> transitions_;
  std::vector<view> views_;
  std::vector<registration> registrations_;
  std::vector<clock_time> waited_;
};

/// "connected at 0.012 s (generation 1, session 0x...), suspended at ..., ...".
inline std::string transitions_text(const member& m) {
  std::vector<std::string> parts;
  std::uint64_t gen = 0;
  for (const auto& t : m.transitions()) {
    std::string s = std::string(to_string(t.state)) + " at " + secs(t.t);
    if (t.state == session_state::connected && t.generation != gen) {
      s += " (generation " + std::to_string(t.generation) + ", session " + hex_id(t.session_id) + ")";
      gen = t.generation;
    }
    if (t.state == session_state::lost) s += " (" + reason_name(t.reason) + ")";
    parts.push_back(std::move(s));
  }
  return join(parts, ", ", "no transitions");
}

}  // namespace zkr::sim::tools
