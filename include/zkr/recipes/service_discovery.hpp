// zkr/recipes/service_discovery.hpp: service registration and queries in Curator's
// curator-x-discovery layout, so C++ and Java services discover each other.
//
// Znode layout (ServiceDiscoveryImpl):
//
//   <base path>/<service name>/<instance id>      EPHEMERAL, data = the instance's JSON
//
// The JSON is byte for byte what Curator 5.4's JsonInstanceSerializer writes (see
// zkr/recipes/service_instance.hpp). Parents are created as containers, as Curator does
// (creatingParentContainersIfNeeded), so a service's node vanishes once its last instance is
// gone.
//
//   zkr::recipes::service_discovery<zkr::zookeeper::session> discovery(session, "/services");
//   zkr::recipes::service_instance me{.name = "orders", .address = "10.0.0.7", .port = 8080};
//   discovery.async_register(me, [](std::error_code ec, zkr::recipes::service_instance registered) { ... });
//   discovery.async_query_for_instances("orders", [](std::error_code ec, zkr::recipes::service_instances r) { ... });
//
// Registration: each registered instance is an ephemeral_node (zkr/recipes/ephemeral_node.hpp):
// it is re-created after its session expired and after someone deleted it, our data is
// written back over someone else's write, and an instance node of another session at the same
// path is reported (errc::node_exists) and waited out, never overwritten. Differences from
// Curator, each on purpose:
//   - Curator re-registers on every RECONNECTED by create + delete + create (deleting whatever
//     node is at the path, someone else's too); zkr re-reads and keeps its node (watchers of
//     the service see no flap), and never deletes a node that is not its own.
//   - Only DYNAMIC instances are registered (ephemeral nodes). STATIC/PERMANENT (persistent
//     nodes in Curator) and DYNAMIC_SEQUENTIAL are read by the queries and caches but
//     async_register refuses them with errc::invalid_argument.
//   - `enabled` is written only with serializer_options::write_enabled, as Curator 5.4's
//     default serializer (compatible mode) leaves it out.
//
// Queries read the registry as it is now (no cache): async_query_for_names,
// async_query_for_instances, async_query_for_instance. For a cached, watched view with
// instance selection, see zkr/recipes/service_cache.hpp.
//
// Session states: registrations behave as ephemeral_node (suspended keeps them, lost makes
// them pending, a new session registers them again). Queries fail with the session's error
// (connection_loss, session_expired, ...); reads are idempotent, so retrying them is safe.
//
// Threads: member functions may be called from any thread (real backend); registrations live
// on the session's executor; registration_state() reads a snapshot.
//
// Lifetime: the session must outlive the discovery object and the background unregistration
// that destroying it begins (each registration's node is removed).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <boost/asio/async_result.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>

#include <zkr/backend.hpp>
#include <zkr/detail/pending.hpp>
#include <zkr/error.hpp>
#include <zkr/path.hpp>
#include <zkr/recipes/ephemeral_node.hpp>
#include <zkr/recipes/impl/invariant.hpp>
#include <zkr/recipes/protected_name.hpp>
#include <zkr/recipes/service_instance.hpp>

namespace zkr::recipes {

/// An instance node whose data could not be read as an instance.
struct unreadable_instance {
  std::string id;     ///< the node's name
  std::string error;  ///< from from_json, e.g. "port: expected an integer or null, got string"
  friend bool operator==(const unreadable_instance&, const unreadable_instance&) = default;
};

/// The instances of one service, as read: sorted by id. Nodes whose data is not an instance
/// are listed in `unreadable` (Curator's cache skips them with a log line).
struct service_instances {
  std::vector<service_instance> instances;
  std::vector<unreadable_instance> unreadable;
};

/// Options of a service_discovery.
struct service_discovery_options {
  serializer_options serializer{};
  /// Options of each registration's ephemeral node (ACL, parents, retry policy).
  ephemeral_node_options node{};
};

/// The path of a service, `<base>/<name>`, and of an instance, `<base>/<name>/<id>`.
inline std::string service_path(std::string_view base, std::string_view name) { return join_path(base, name); }
inline std::string instance_path(std::string_view base, std::string_view name, std::string_view id) {
  return join_path(join_path(base, name), id);
}

namespace detail {

/// True if `s` can be one znode name (non-empty, no '/', not "." or "..", ZooKeeper's chars).
inline bool valid_node_name(std::string_view s) {
  return !s.empty() && s.find('/') == std::string_view::npos && is_valid_path("/" + std::string(s));
}

template <class Session>
class service_discovery_impl : public std::enable_shared_from_this<service_discovery_impl<Session>> {
 public:
  using node_type = ephemeral_node<Session>;
  using void_pending = zkr::detail::pending<void(std::error_code)>;
  using register_pending = zkr::detail::pending<void(std::error_code, service_instance)>;

  service_discovery_impl(Session& s, std::string base, service_discovery_options o)
      : s_(s), base_(std::move(base)), opts_(std::move(o)) {}

  Session& session() const noexcept { return s_; }
  const std::string& base() const noexcept { return base_; }
  const service_discovery_options& options() const noexcept { return opts_; }

  std::optional<ephemeral_node_state> state_of(const std::string& path) const {
    std::lock_guard lock(mu_);
    const auto it = nodes_.find(path);
    if (it == nodes_.end()) return std::nullopt;
    return it->second.node->state();
  }
  std::vector<service_instance> registered() const {
    std::lock_guard lock(mu_);
    std::vector<service_instance> out;
    for (const auto& [p, e] : nodes_) out.push_back(e.instance);
    return out;
  }

  // ---- on the executor ----

  void do_register(service_instance inst, register_pending h) {
    if (closed_) return std::move(h).dispatch_complete(make_error_code(errc::closing), std::move(inst));
    if (inst.id.empty()) inst.id = make_uuid(s_.random());  // Curator's builder: UUID.randomUUID()
    if (inst.registration_time_utc == 0) {
      // Curator's builder: System.currentTimeMillis(); here the session's wall clock.
      inst.registration_time_utc =
          std::chrono::duration_cast<std::chrono::milliseconds>(s_.wall_now().time_since_epoch()).count();
    }
    const auto ec = check(inst);
    if (ec) return std::move(h).dispatch_complete(ec, std::move(inst));
    auto json = to_json(inst, opts_.serializer);
    if (!json.ok()) return std::move(h).dispatch_complete(make_error_code(errc::invalid_argument), std::move(inst));
    const auto path = instance_path(base_, inst.name, inst.id);
    std::unique_lock lock(mu_);
    if (auto it = nodes_.find(path); it != nodes_.end()) {
      // Registered already: an update (Curator re-creates; a write keeps watchers calm).
      it->second.instance = inst;
      auto* node = it->second.node.get();
      lock.unlock();
      auto done = [h = std::move(h), inst = std::move(inst)](std::error_code e) mutable {
        std::move(h).dispatch_complete(e, std::move(inst));
      };
      if (node->state() == ephemeral_node_state::registered) {
        node->async_set_data(std::move(json.text), std::move(done));  // done once the server has it
      } else {
        // Pending: the new data goes with the next create; report as a first registration does.
        node->async_set_data(std::move(json.text), [](std::error_code) {});
        node->async_wait_registered(std::move(done));
      }
      return;
    }
    auto node = std::make_unique<node_type>(s_, path, std::move(json.text), opts_.node);
    auto* raw = node.get();
    nodes_.emplace(path, entry{inst, std::move(node)});
    lock.unlock();
    raw->start();
    raw->async_wait_registered([h = std::move(h), inst = std::move(inst)](std::error_code e) mutable {
      std::move(h).dispatch_complete(e, std::move(inst));
    });
  }

  void do_update(service_instance inst, void_pending h) {
    if (closed_) return std::move(h).dispatch_complete(make_error_code(errc::closing));
    if (const auto ec = check(inst)) return std::move(h).dispatch_complete(ec);
    auto json = to_json(inst, opts_.serializer);
    if (!json.ok()) return std::move(h).dispatch_complete(make_error_code(errc::invalid_argument));
    std::unique_lock lock(mu_);
    const auto it = nodes_.find(instance_path(base_, inst.name, inst.id));
    if (it == nodes_.end()) return std::move(h).dispatch_complete(make_error_code(errc::no_node));  // not ours
    it->second.instance = std::move(inst);
    auto* node = it->second.node.get();
    lock.unlock();
    node->async_set_data(std::move(json.text), [h = std::move(h)](std::error_code e) mutable {
      std::move(h).dispatch_complete(e);
    });
  }

  void do_unregister(const std::string& name, const std::string& id, void_pending h) {
    std::unique_ptr<node_type> node;
    {
      std::lock_guard lock(mu_);
      const auto it = nodes_.find(instance_path(base_, name, id));
      if (it != nodes_.end()) {
        node = std::move(it->second.node);
        nodes_.erase(it);
      }
    }
    if (!node) return std::move(h).dispatch_complete(std::error_code{});  // Curator: nothing to do
    auto* raw = node.get();
    raw->async_close([h = std::move(h), node = std::move(node)](std::error_code e) mutable {
      node.reset();
      std::move(h).dispatch_complete(e);
    });
  }

  void do_close(void_pending h) {
    if (closed_) return std::move(h).dispatch_complete(make_error_code(errc::invalid_state));
    closed_ = true;
    std::map<std::string, entry> all;
    {
      std::lock_guard lock(mu_);
      all.swap(nodes_);
    }
    if (all.empty()) return std::move(h).dispatch_complete(std::error_code{});
    // Close every registration; complete with the first error, once all are done.
    struct join {
      explicit join(void_pending p, std::size_t n) : h(std::move(p)), left(n) {}
      void_pending h;
      std::size_t left;
      std::error_code first;
    };
    auto j = std::make_shared<join>(std::move(h), all.size());
    for (auto& [path, e] : all) {
      auto* raw = e.node.get();
      raw->async_close([j, node = std::move(e.node)](std::error_code ec) mutable {
        node.reset();
        if (ec && !j->first) j->first = ec;
        if (--j->left == 0) std::move(j->h).dispatch_complete(j->first);
      });
    }
  }

  /// The handle is going: every registration closes in the background.
  void detach() {
    boost::asio::dispatch(s_.get_executor(), [self = this->shared_from_this()] {
      self->closed_ = true;
      std::lock_guard lock(self->mu_);
      self->nodes_.clear();  // each ephemeral_node's destructor closes it in the background
    });
  }

  std::error_code check(const service_instance& inst) const {
    if (!valid_node_name(inst.name) || !valid_node_name(inst.id) ||
        validate_path(instance_path(base_, inst.name, inst.id))) {
      return make_error_code(errc::invalid_path);
    }
    if (inst.type != service_type::dynamic) return make_error_code(errc::invalid_argument);
    return {};
  }

 private:
  struct entry {
    service_instance instance;
    std::unique_ptr<node_type> node;
  };

  Session& s_;
  const std::string base_;
  const service_discovery_options opts_;
  bool closed_ = false;  // executor only
  mutable std::mutex mu_;
  std::map<std::string, entry> nodes_;  // by path; changed on the executor, read anywhere
};

/// Reads every instance of a service: the list, then every child's data, pipelined.
template <class Session>
struct query_instances_state {
  using pending_type = zkr::detail::pending<void(std::error_code, service_instances)>;
  query_instances_state(Session& s, pending_type p) : s(s), h(std::move(p)) {}
  Session& s;
  pending_type h;
  std::size_t left = 0;
  service_instances out;
  std::error_code failed;
  void finish() {
    auto by_id = [](const auto& a, const auto& b) { return a.id < b.id; };
    std::sort(out.instances.begin(), out.instances.end(), by_id);
    std::sort(out.unreadable.begin(), out.unreadable.end(), by_id);
    if (failed) out = {};
    std::move(h).dispatch_complete(failed, std::move(out));
  }
};

}  // namespace detail

/// Registers and queries service instances; see the file comment.
template <zkr::backend Session>
class service_discovery {
  using impl_type = detail::service_discovery_impl<Session>;

 public:
  /// Discovery under `base_path` (Curator's basePath). Throws std::system_error(invalid_path)
  /// for a path ZooKeeper would refuse. Makes no request.
  service_discovery(Session& s, std::string base_path, service_discovery_options o = {})
      : impl_(std::make_shared<impl_type>(s, checked(std::move(base_path)), std::move(o))) {}
  service_discovery(const service_discovery&) = delete;
  service_discovery& operator=(const service_discovery&) = delete;
  /// Unregisters every instance in the background (their nodes are removed).
  ~service_discovery() { impl_->detach(); }

  /// Registers `inst` (an ephemeral node at <base>/<name>/<id> holding its JSON) and keeps it
  /// registered until unregistered or closed; registering an id again updates it.
  /// An empty id becomes a random UUID (from the session's prng), a zero
  /// registration_time_utc the session's wall clock in ms, as Curator's builder does.
  /// Signature: void(std::error_code, service_instance registered): the instance as written.
  /// Handler: called exactly once, on its associated executor, never from within this call.
  /// Completes once the node is registered, or with the first error it reports
  /// (errc::node_exists if another session's instance holds the path, no_auth, ...): the
  /// registration stays and keeps trying (unregister it to stop). errc::invalid_path for a
  /// name or id that is not one znode name, errc::invalid_argument for a type other than
  /// DYNAMIC or an instance that cannot be written (to_json), errc::closing once closed.
  /// While the session is disconnected it waits (a registration waits out an earlier session's
  /// node, too). No per-operation cancellation: to bound the wait, use a timer and
  /// registration_state(); giving up waiting would not undo the registration anyway.
  template <class Token>
  auto async_register(service_instance inst, Token&& token) {
    return boost::asio::async_initiate<Token, void(std::error_code, service_instance)>(
        [](auto handler, std::shared_ptr<impl_type> impl, service_instance i) {
          typename impl_type::register_pending h(std::move(handler), impl->session().get_executor());
          boost::asio::post(impl->session().get_executor(), [impl, h = std::move(h), i = std::move(i)]() mutable {
            impl->do_register(std::move(i), std::move(h));
          });
        },
        token, impl_, std::move(inst));
  }

  /// Writes a registered instance's new data (Curator's updateService). Signature:
  /// void(std::error_code). Completes once the server holds it; errc::no_node if this object
  /// has not registered <name>/<id>; errc::invalid_path / invalid_argument as async_register;
  /// errc::closing once closed. No per-operation cancellation.
  template <class Token>
  auto async_update(service_instance inst, Token&& token) {
    return boost::asio::async_initiate<Token, void(std::error_code)>(
        [](auto handler, std::shared_ptr<impl_type> impl, service_instance i) {
          typename impl_type::void_pending h(std::move(handler), impl->session().get_executor());
          boost::asio::post(impl->session().get_executor(), [impl, h = std::move(h), i = std::move(i)]() mutable {
            impl->do_update(std::move(i), std::move(h));
          });
        },
        token, impl_, std::move(inst));
  }

  /// Stops keeping <name>/<id> registered and removes its node (ephemeral_node::async_close).
  /// Signature: void(std::error_code). {} also if it was not registered (Curator's no-op).
  /// No per-operation cancellation.
  template <class Token>
  auto async_unregister(std::string name, std::string id, Token&& token) {
    return boost::asio::async_initiate<Token, void(std::error_code)>(
        [](auto handler, std::shared_ptr<impl_type> impl, std::string n, std::string i) {
          typename impl_type::void_pending h(std::move(handler), impl->session().get_executor());
          boost::asio::post(impl->session().get_executor(),
                            [impl, h = std::move(h), n = std::move(n), i = std::move(i)]() mutable {
                              impl->do_unregister(n, i, std::move(h));
                            });
        },
        token, impl_, std::move(name), std::move(id));
  }

  /// Unregisters everything; later registrations fail with errc::closing. Signature:
  /// void(std::error_code): the first error of the closes, or {}. errc::invalid_state if
  /// closed before. No per-operation cancellation.
  template <class Token>
  auto async_close(Token&& token) {
    return boost::asio::async_initiate<Token, void(std::error_code)>(
        [](auto handler, std::shared_ptr<impl_type> impl) {
          typename impl_type::void_pending h(std::move(handler), impl->session().get_executor());
          boost::asio::post(impl->session().get_executor(),
                            [impl, h = std::move(h)]() mutable { impl->do_close(std::move(h)); });
        },
        token, impl_);
  }

  /// The names of the services under the base path (Curator's queryForNames), sorted; empty
  /// if the base path does not exist. Signature: void(std::error_code, std::vector<std::string>).
  /// Errors: the session's (connection_loss, ...), no_auth. No per-operation cancellation.
  template <class Token>
  auto async_query_for_names(Token&& token) {
    return boost::asio::async_initiate<Token, void(std::error_code, std::vector<std::string>)>(
        [](auto handler, std::shared_ptr<impl_type> impl) {
          zkr::detail::pending<void(std::error_code, std::vector<std::string>)> h(std::move(handler),
                                                                                   impl->session().get_executor());
          impl->session().async_get_children(
              impl->base(), [h = std::move(h)](std::error_code ec, std::vector<std::string> names, zkr::stat) mutable {
                if (ec == errc::no_node) ec = {};
                if (ec) names.clear();
                std::sort(names.begin(), names.end());
                std::move(h).dispatch_complete(ec, std::move(names));
              });
        },
        token, impl_);
  }

  /// Every instance of service `name` now (Curator's queryForInstances): the children of
  /// <base>/<name>, each read (pipelined) and parsed. A node deleted between the list and its
  /// read is left out; a node whose data is not an instance is listed in `unreadable`. A
  /// missing service is an empty result. Signature: void(std::error_code, service_instances).
  /// Errors: errc::invalid_path for a bad name, the session's errors, no_auth (then the
  /// result is empty). No per-operation cancellation.
  template <class Token>
  auto async_query_for_instances(std::string name, Token&& token) {
    return boost::asio::async_initiate<Token, void(std::error_code, service_instances)>(
        [](auto handler, std::shared_ptr<impl_type> impl, std::string n) {
          using state_type = detail::query_instances_state<Session>;
          auto st = std::make_shared<state_type>(impl->session(),
                                                 typename state_type::pending_type(std::move(handler),
                                                                                   impl->session().get_executor()));
          if (!detail::valid_node_name(n)) {
            st->failed = make_error_code(errc::invalid_path);
            return boost::asio::post(impl->session().get_executor(), [st] { st->finish(); });
          }
          const auto dir = service_path(impl->base(), n);
          impl->session().async_get_children(dir, [st, dir](std::error_code ec, std::vector<std::string> ids, zkr::stat) {
            if (ec && ec != errc::no_node) st->failed = ec;
            if (ec || ids.empty()) return st->finish();
            st->left = ids.size();
            for (auto& id : ids) {
              const auto path = join_path(dir, id);
              st->s.async_get(path, [st, id](std::error_code gec, std::string data, zkr::stat) {
                if (gec && gec != errc::no_node && !st->failed) st->failed = gec;
                if (!gec) {
                  auto r = from_json(data);
                  if (r.ok()) {
                    st->out.instances.push_back(std::move(r.instance));
                  } else {
                    st->out.unreadable.push_back({id, std::move(r.error)});
                  }
                }
                ZKR_INVARIANT(st->left > 0, "service_discovery: more replies than reads");
                if (--st->left == 0) st->finish();
              });
            }
          });
        },
        token, impl_, std::move(name));
  }

  /// One instance (Curator's queryForInstance). Signature: void(std::error_code,
  /// service_instance). errc::no_node if there is none; errc::marshalling_error if its data is
  /// not an instance; errc::invalid_path for a bad name or id; the session's errors. No
  /// per-operation cancellation.
  template <class Token>
  auto async_query_for_instance(std::string name, std::string id, Token&& token) {
    return boost::asio::async_initiate<Token, void(std::error_code, service_instance)>(
        [](auto handler, std::shared_ptr<impl_type> impl, std::string n, std::string i) {
          zkr::detail::pending<void(std::error_code, service_instance)> h(std::move(handler),
                                                                           impl->session().get_executor());
          if (!detail::valid_node_name(n) || !detail::valid_node_name(i)) {
            return std::move(h).post_complete(impl->session().get_executor(), make_error_code(errc::invalid_path),
                                              service_instance{});
          }
          impl->session().async_get(instance_path(impl->base(), n, i),
                                    [h = std::move(h)](std::error_code ec, std::string data, zkr::stat) mutable {
                                      if (ec) return std::move(h).dispatch_complete(ec, service_instance{});
                                      auto r = from_json(data);
                                      if (!r.ok()) {
                                        return std::move(h).dispatch_complete(make_error_code(errc::marshalling_error),
                                                                              service_instance{});
                                      }
                                      std::move(h).dispatch_complete(std::error_code{}, std::move(r.instance));
                                    });
        },
        token, impl_, std::move(name), std::move(id));
  }

  /// The state of this object's registration of <name>/<id>, nullopt if it has none. A snapshot.
  std::optional<ephemeral_node_state> registration_state(std::string_view name, std::string_view id) const {
    return impl_->state_of(instance_path(impl_->base(), name, id));
  }
  /// The instances this object keeps registered (as last registered or updated). A snapshot.
  std::vector<service_instance> registered() const { return impl_->registered(); }

  const std::string& base_path() const noexcept { return impl_->base(); }

 private:
  static std::string checked(std::string path) {
    if (validate_path(path)) {
      throw std::system_error(make_error_code(errc::invalid_path),
                              "zkr::recipes::service_discovery: invalid base path '" + path + "'");
    }
    return path;
  }

  std::shared_ptr<impl_type> impl_;
};

}  // namespace zkr::recipes
