// zkr/recipes/service_cache.hpp: a watched, local copy of one service's instances, and
// instance selection on it (Curator's ServiceCache and ServiceProvider with its
// ProviderStrategy implementations).
//
//   zkr::recipes::service_cache<zkr::zookeeper::session> cache(session, "/services", "orders");
//   cache.async_start([](std::error_code ec) { ... });
//   zkr::recipes::service_provider provider(cache, zkr::recipes::round_robin_strategy{});
//   auto pick = provider.get_instance();      // any thread, no I/O
//   if (pick.instance) call(pick.instance->build_uri());   // pick.stale: the registry is unreachable
//
// A registry must stay a weak dependency of the calls it routes: when ZooKeeper is
// unreachable (the session suspended or lost, the ensemble electing a leader), the cache keeps
// the last instances it knew and selection keeps answering from them, and says so: every
// `selection` carries `stale` and the session state the cache last heard. Callers decide
// whether a stale answer is good enough (it usually is: the instances were alive a moment
// ago; the calls themselves will tell).
//
// Built on children_cache (zkr/recipes/children_cache.hpp) with cache_data on: one child
// watch on <base>/<name> and one data watch per instance, shared through a watch_hub with
// every other recipe of the hub. Each instance node's data is parsed with from_json
// (zkr/recipes/service_instance.hpp); a node whose data is not an instance is listed in
// `unreadable` and never selected.
//
// Guarantees (the children_cache's, carried over):
//   - Converges: once the server is quiet and the session connected, instances() equals the
//     instances under <base>/<name> (and unreadable() the nodes that do not parse).
//   - Never goes backwards: each instance's data follows its node's mzxid order.
//   - Listeners run on the session's executor after view() shows the change.
//   - stale() is true from `suspended` or `lost` until the session is connected again
//     (reconnected, or connected in a new session); then the cache re-reads the service and
//     delivers the differences. Before the initial load it is true.
// Non-guarantees: the view lags the server by a round trip, and by the whole disconnection
// while stale; a stale view may name instances that are gone and miss new ones. One-shot
// watches coalesce fast changes.
//
// Selection (service_provider): only enabled instances are candidates (Curator's
// ServiceProviderImpl filters on isEnabled). Strategies, as Curator's:
//   - round_robin_strategy: the next candidate in id order, per provider (RoundRobinStrategy);
//   - random_strategy: a uniformly drawn candidate, from a prng seeded from the session's
//     prng (RandomStrategy), so a simulator run replays its choices;
//   - sticky_strategy<S>: the same instance while it is a candidate, else S picks a new one
//     (StickyStrategy; zkr sticks to the instance's id, Curator to an equal instance).
//
// Threads: every member may be called from any thread; listeners run on the session's
// executor. get_instance() takes two short locks and makes no request.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <zkr/backend.hpp>
#include <zkr/random.hpp>
#include <zkr/recipes/children_cache.hpp>
#include <zkr/recipes/impl/cache_support.hpp>
#include <zkr/recipes/impl/invariant.hpp>
#include <zkr/recipes/service_discovery.hpp>
#include <zkr/recipes/service_instance.hpp>
#include <zkr/recipes/watch_hub.hpp>

namespace zkr::recipes {

/// What a service_cache holds: the instances that parsed (sorted by id, enabled or not) and
/// the nodes that did not.
struct service_cache_view {
  std::vector<service_instance> instances;
  std::vector<unreadable_instance> unreadable;
};

/// What a service_cache listener is told (the children_cache's event types).
struct service_cache_event {
  children_cache_event_type type = children_cache_event_type::initialized;
  std::string id;  ///< added/updated/removed: the instance node's name
  /// added/updated: the instance as now read (nullopt: its data did not parse); removed: the
  /// last one (nullopt if it was unreadable). Empty for the session events and initialized.
  std::optional<service_instance> instance;
};

/// The answer of a service_provider.
struct selection {
  std::optional<service_instance> instance;  ///< nullopt: no enabled instance is known
  /// The cache could not follow the registry lately (the session is suspended or lost, e.g.
  /// while the ensemble elects a leader): the answer comes from the last known instances.
  bool stale = true;
  session_state state = session_state::connecting;  ///< as the cache last heard it
};

namespace detail {

template <class Session>
class service_cache_core : public std::enable_shared_from_this<service_cache_core<Session>> {
 public:
  service_cache_core(const watch_hub<Session>& hub, std::string base, std::string name)
      : hub_(hub),
        name_(std::move(name)),
        cache_(hub, service_path(base, name_), children_cache_options{.cache_data = true}),
        view_(std::make_shared<const service_cache_view>()) {}

  void attach() {
    listener_id_ = cache_.add_listener([weak = this->weak_from_this()](const children_cache_event& e) {
      if (auto self = weak.lock()) self->on_event(e);
    });
  }

  children_cache<Session>& cache() noexcept { return cache_; }
  listener_set<service_cache_event>& listeners() noexcept { return listeners_; }
  const std::string& name() const noexcept { return name_; }

  std::shared_ptr<const service_cache_view> view() const {
    std::lock_guard lock(mu_);
    return view_;
  }
  bool stale() const noexcept { return stale_.load(); }
  session_state state() const noexcept { return state_.load(); }
  /// A seed for a provider's prng: drawn from the session's prng at the initial load, mixed
  /// with a per-provider counter.
  std::uint64_t provider_seed() noexcept {
    std::uint64_t s = seed_.load() + 0x9E3779B97F4A7C15ull * providers_.fetch_add(1);
    return zkr::detail::splitmix64_next(s);
  }

  ~service_cache_core() { cache_.remove_listener(listener_id_); }

 private:
  struct parsed {
    std::int64_t mzxid = 0;
    std::int64_t czxid = 0;
    std::optional<service_instance> instance;
    std::string error;
  };

  /// On the session's executor (children_cache listeners run there).
  void on_event(const children_cache_event& e) {
    using t = children_cache_event_type;
    service_cache_event out{e.type, e.child.name, std::nullopt};
    switch (e.type) {
      case t::added:
      case t::updated: {
        parsed p{e.child.stat.mzxid, e.child.stat.czxid, std::nullopt, {}};
        auto r = from_json(e.child.data);
        if (r.ok()) {
          p.instance = std::move(r.instance);
        } else {
          p.error = std::move(r.error);
        }
        out.instance = p.instance;
        known_[e.child.name] = std::move(p);
        publish();
        break;
      }
      case t::removed: {
        const auto it = known_.find(e.child.name);
        if (it != known_.end()) {
          out.instance = std::move(it->second.instance);
          known_.erase(it);
        }
        publish();
        break;
      }
      case t::initialized:
        seed_.store(hub_.session().random().next_u64());
        set_state(hub_.session().state());
        break;
      case t::suspended: set_state(session_state::suspended); break;
      case t::lost: set_state(session_state::lost); break;
      case t::reconnected: set_state(hub_.session().state()); break;
    }
    listeners_.notify(out);
  }

  void set_state(session_state s) {
    state_.store(s);
    stale_.store(!is_connected(s));
  }

  void publish() {
    auto v = std::make_shared<service_cache_view>();
    for (const auto& [id, p] : known_) {  // known_ is ordered by id
      if (p.instance) {
        v->instances.push_back(*p.instance);
      } else {
        v->unreadable.push_back({id, p.error});
      }
    }
    ZKR_INVARIANT(v->instances.size() + v->unreadable.size() == known_.size(), "service_cache: view lost a node");
    std::lock_guard lock(mu_);
    view_ = std::move(v);
  }

  watch_hub<Session> hub_;
  std::string name_;
  children_cache<Session> cache_;
  std::uint64_t listener_id_ = 0;
  listener_set<service_cache_event> listeners_;
  std::map<std::string, parsed, std::less<>> known_;  // executor only
  std::atomic<bool> stale_{true};
  std::atomic<session_state> state_{session_state::connecting};
  std::atomic<std::uint64_t> seed_{0};
  std::atomic<std::uint64_t> providers_{0};
  mutable std::mutex mu_;
  std::shared_ptr<const service_cache_view> view_;
};

}  // namespace detail

/// A watched copy of one service's instances; see the file comment. Lifecycle latent ->
/// started -> closed (a cancelled start goes back to latent), as children_cache.
template <zkr::backend Session>
class service_cache {
  using core_type = detail::service_cache_core<Session>;

 public:
  using listener_type = std::function<void(const service_cache_event&)>;

  /// Caches the instances of service `name` under `base_path`, sharing watches through `hub`.
  /// Throws std::system_error(errc::invalid_path) for a path ZooKeeper would refuse or a name
  /// that is not one znode name.
  service_cache(const watch_hub<Session>& hub, std::string base_path, std::string name)
      : core_(make(hub, std::move(base_path), std::move(name))) {}
  /// Caches through a hub of its own.
  service_cache(Session& s, std::string base_path, std::string name)
      : service_cache(watch_hub<Session>(s), std::move(base_path), std::move(name)) {}

  service_cache(const service_cache&) = delete;
  service_cache& operator=(const service_cache&) = delete;
  /// Closes the cache (its watches go with their next event); listeners are not called
  /// after. Never fails.
  ~service_cache() {
    if (core_) (void)core_->cache().close();
  }

  /// Starts the cache; completes once the initial load is in view(): the service's instance
  /// list read once (a missing service counts: empty) and every listed instance read.
  /// Signature: void(std::error_code).
  /// Handler: called exactly once, on its associated executor, never from within this call.
  /// Waits as long as it takes while the session is disconnected (cancel it for a deadline).
  /// Errors: operation_aborted() if closed meanwhile; errc::closing if the session was closed;
  /// no_auth if the list is refused (the cache is then closed).
  /// Per-operation cancellation: terminal, partial, total: the start is undone (the cache is
  /// latent again) and completes with operation_aborted().
  /// Throws std::logic_error (when initiated) if started or closed already.
  template <class Token>
  auto async_start(Token&& token) {
    return core_->cache().async_start(std::forward<Token>(token));
  }

  /// Stops following the registry; the view stays readable (and stale() stays as it was).
  /// Returns {} if it closed now, errc::closing if already closed.
  std::error_code close() { return core_->cache().close(); }

  /// The view (never null; empty before the initial load). Any thread; an immutable snapshot.
  std::shared_ptr<const service_cache_view> view() const { return core_->view(); }
  /// The instances of the view (a copy).
  std::vector<service_instance> instances() const { return core_->view()->instances; }
  /// The nodes of the view whose data is not an instance (a copy).
  std::vector<unreadable_instance> unreadable() const { return core_->view()->unreadable; }
  /// True while the view cannot follow the registry (see the file comment). Any thread.
  bool stale() const noexcept { return core_->stale(); }
  /// The session state as the cache last heard it. Any thread.
  session_state state() const noexcept { return core_->state(); }
  /// True once the initial load is in.
  bool initialized() const noexcept { return core_->cache().initialized(); }
  /// Why the cache stopped by itself (errc::closing, no_auth), {} otherwise.
  std::error_code error() const { return core_->cache().error(); }

  /// Registers a listener (any thread); returns its id (never 0).
  std::uint64_t add_listener(listener_type l) { return core_->listeners().add(std::move(l)); }
  /// Unregisters one (any thread). On the session's executor: no call after it returns.
  void remove_listener(std::uint64_t id) { core_->listeners().remove(id); }

  const std::string& name() const noexcept { return core_->name(); }

  /// For service_provider: a fresh prng seed derived from the session's prng.
  std::uint64_t provider_seed() const noexcept { return core_->provider_seed(); }

 private:
  static std::shared_ptr<core_type> make(const watch_hub<Session>& hub, std::string base, std::string name) {
    if (!detail::valid_node_name(name) || validate_path(service_path(base, name))) {
      throw std::system_error(make_error_code(errc::invalid_path),
                              "zkr::recipes::service_cache: invalid service '" + base + "' / '" + name + "'");
    }
    auto core = std::make_shared<core_type>(hub, std::move(base), std::move(name));
    core->attach();
    return core;
  }

  std::shared_ptr<core_type> core_;
};

// ---- strategies -----------------------------------------------------------------------------

/// Picks among `n` candidates (n > 0) and returns the index. `draw(bound)` gives a uniform
/// number in [0, bound) from the provider's prng. A strategy may keep state (it is called
/// under the provider's lock).
template <class S>
concept provider_strategy = requires(S& s, const std::vector<service_instance>& candidates,
                                     std::function<std::uint64_t(std::uint64_t)> draw) {
  { s.pick(candidates, draw) } -> std::same_as<std::size_t>;
};

/// Curator's RoundRobinStrategy: candidates in turn (id order).
struct round_robin_strategy {
  std::uint64_t next = 0;
  std::size_t pick(const std::vector<service_instance>& c, const std::function<std::uint64_t(std::uint64_t)>&) {
    ZKR_INVARIANT(!c.empty(), "round_robin_strategy: no candidate");
    return static_cast<std::size_t>(next++ % c.size());
  }
};

/// Curator's RandomStrategy: a uniform draw from the provider's prng (seeded from the
/// session's prng).
struct random_strategy {
  std::size_t pick(const std::vector<service_instance>& c, const std::function<std::uint64_t(std::uint64_t)>& draw) {
    ZKR_INVARIANT(!c.empty(), "random_strategy: no candidate");
    return static_cast<std::size_t>(draw(c.size()));
  }
};

/// Curator's StickyStrategy: the same instance (by id) while it is a candidate; otherwise
/// `master` picks a new one. The member `instance_number` counts the new picks, from -1 before
/// the first (Curator's getInstanceNumber).
template <provider_strategy Master = round_robin_strategy>
struct sticky_strategy {
  Master master{};
  std::optional<std::string> id{};
  int instance_number = -1;
  std::size_t pick(const std::vector<service_instance>& c, const std::function<std::uint64_t(std::uint64_t)>& draw) {
    ZKR_INVARIANT(!c.empty(), "sticky_strategy: no candidate");
    if (id) {
      for (std::size_t i = 0; i < c.size(); ++i) {
        if (c[i].id == *id) return i;
      }
    }
    const std::size_t i = master.pick(c, draw);
    ZKR_INVARIANT(i < c.size(), "sticky_strategy: master picked out of range");
    id = c[i].id;
    ++instance_number;
    return i;
  }
};

static_assert(provider_strategy<round_robin_strategy>);
static_assert(provider_strategy<random_strategy>);
static_assert(provider_strategy<sticky_strategy<random_strategy>>);

/// Selects instances of a started service_cache (Curator's ServiceProvider); see the file
/// comment. The cache must outlive the provider.
template <zkr::backend Session, provider_strategy Strategy = round_robin_strategy>
class service_provider {
 public:
  /// Serves from `cache`, started or not (before the cache's initial load it knows no
  /// instance). The random draws come from a prng seeded by the cache's session, so the
  /// simulator replays them. Never fails.
  explicit service_provider(const service_cache<Session>& cache, Strategy strategy = {})
      : cache_(cache), strategy_(std::move(strategy)), rng_(cache.provider_seed()) {}

  /// One enabled instance by the strategy, with how fresh the answer is. Never makes a
  /// request; answers from the last known instances while the registry is unreachable
  /// (`stale`). `instance` is nullopt when no enabled instance is known. Any thread.
  selection get_instance() {
    selection out;
    out.state = cache_.state();
    out.stale = cache_.stale();
    auto candidates = get_all_instances();
    if (candidates.empty()) return out;
    std::lock_guard lock(mu_);
    if (!seeded_ && cache_.initialized()) {
      // The first pick after the initial load: the session's prng has seeded the cache by now.
      rng_ = prng(cache_.provider_seed());
      seeded_ = true;
    }
    const std::size_t i = strategy_.pick(candidates, [this](std::uint64_t bound) { return rng_.uniform(bound); });
    ZKR_INVARIANT(i < candidates.size(), "service_provider: strategy picked out of range");
    out.instance = std::move(candidates[i]);
    return out;
  }

  /// The candidates: the cache's enabled instances, in id order. Any thread.
  std::vector<service_instance> get_all_instances() const {
    const auto view = cache_.view();
    std::vector<service_instance> out;
    out.reserve(view->instances.size());
    for (const auto& i : view->instances) {
      if (i.enabled) out.push_back(i);
    }
    return out;
  }

  /// The strategy (for its counters); hold no reference across get_instance() calls from
  /// other threads.
  const Strategy& strategy() const noexcept { return strategy_; }

 private:
  const service_cache<Session>& cache_;
  std::mutex mu_;
  Strategy strategy_;
  prng rng_;
  bool seeded_ = false;
};

}  // namespace zkr::recipes
