// zkr/zookeeper/impl/c_client.hpp: the glue between libzookeeper's C callbacks and zkr.
//
// Ownership rules (each callback context is freed exactly once, never while the C client
// may still call it):
//   - An operation context (`op_ctx`) is handed to the C client as the `data` of exactly one
//     completion. The C client calls every completion exactly once, including from
//     zookeeper_close() with ZCLOSING, so the completion takes the context back
//     (unique_ptr) and frees it. If the C call fails synchronously, the caller frees it.
//   - A watch context is owned by its handle's registry (`handle_ctx::watches`), keyed by a
//     number the C client sees as `watcherCtx`. Whoever extracts it from the registry (a node
//     event, the session's death, close, or the read that failed to set it) completes or
//     drops it; the key is never dereferenced, so a late call from the C client finds nothing.
//   - A `handle_ctx` lives until zookeeper_close() on its handle has returned (after which
//     the C client calls nothing), and is freed by the thread that closed it.
// Memory the C client lends to a callback (strings, Stat, vectors) is copied before return.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <zookeeper/zookeeper.h>

#include <zkr/detail/pending.hpp>
#include <zkr/error.hpp>
#include <zkr/types.hpp>

namespace zkr::zookeeper::detail {

// ---- conversions -------------------------------------------------------------------------

inline zkr::stat to_stat(const Stat* s) noexcept {
  if (s == nullptr) return {};
  return {s->czxid, s->mzxid,          s->ctime,      s->mtime,       s->version, s->cversion,
          s->aversion, s->ephemeralOwner, s->dataLength, s->numChildren, s->pzxid};
}

inline event_type to_event_type(int type) noexcept {
  if (type == ZOO_CREATED_EVENT) return event_type::created;
  if (type == ZOO_DELETED_EVENT) return event_type::deleted;
  if (type == ZOO_CHANGED_EVENT) return event_type::data_changed;
  return event_type::children_changed;
}

/// ACLs as the C client wants them. The C client serialises a request during the call, so
/// the pointers into `source` need only live for the call.
class c_acl_vector {
 public:
  explicit c_acl_vector(const acl_list& source) {
    entries_.reserve(source.size());
    for (const auto& a : source) {
      entries_.push_back(ACL{a.perms, Id{const_cast<char*>(a.scheme.c_str()), const_cast<char*>(a.id.c_str())}});
    }
    vector_.count = static_cast<std::int32_t>(entries_.size());
    vector_.data = entries_.data();
  }
  c_acl_vector(const c_acl_vector&) = delete;
  c_acl_vector& operator=(const c_acl_vector&) = delete;
  ACL_vector* get() noexcept { return &vector_; }

 private:
  std::vector<ACL> entries_;
  ACL_vector vector_{};
};

inline acl_list from_c_acls(const ACL_vector* v) {
  acl_list out;
  if (v == nullptr) return out;
  out.reserve(static_cast<std::size_t>(v->count));
  for (std::int32_t i = 0; i < v->count; ++i) {
    const ACL& a = v->data[i];
    out.push_back({a.perms, a.id.scheme ? a.id.scheme : "", a.id.id ? a.id.id : ""});
  }
  return out;
}

inline std::vector<std::string> from_c_strings(const String_vector* v) {
  std::vector<std::string> out;
  if (v == nullptr) return out;
  out.reserve(static_cast<std::size_t>(v->count));
  for (std::int32_t i = 0; i < v->count; ++i) out.emplace_back(v->data[i] ? v->data[i] : "");
  return out;
}

// ---- per-session log routing -------------------------------------------------------------
// The C client's log callback is a bare function pointer with no context, so each session
// that wants its own log lines gets one of a fixed set of trampolines. When all are taken,
// the session logs through the C client's default (stderr) and says so once.

inline constexpr std::size_t log_slot_count = 128;

class log_registry {
 public:
  using sink = std::function<void(std::string_view)>;
  static log_registry& instance() {
    static log_registry r;
    return r;
  }
  /// Returns a slot index for `fn`, or -1 if every slot is taken.
  int acquire(sink fn) {
    std::lock_guard lock(mu_);
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      if (!slots_[i]) {
        slots_[i] = std::make_shared<sink>(std::move(fn));
        return static_cast<int>(i);
      }
    }
    return -1;
  }
  void release(int slot) {
    if (slot < 0) return;
    std::lock_guard lock(mu_);
    slots_[static_cast<std::size_t>(slot)].reset();
  }
  void log(std::size_t slot, const char* message) {
    std::shared_ptr<sink> s;
    {
      std::lock_guard lock(mu_);
      s = slots_[slot];
    }
    if (s && *s) (*s)(message ? std::string_view(message) : std::string_view{});
  }

 private:
  std::mutex mu_;
  std::array<std::shared_ptr<sink>, log_slot_count> slots_{};
};

template <std::size_t I>
void log_trampoline(const char* message) {
  log_registry::instance().log(I, message);
}
template <std::size_t... I>
constexpr std::array<log_callback_fn, sizeof...(I)> make_log_trampolines(std::index_sequence<I...>) {
  return {&log_trampoline<I>...};
}
inline constexpr auto log_trampolines = make_log_trampolines(std::make_index_sequence<log_slot_count>{});

// ---- watches -----------------------------------------------------------------------------

using watch_pending = zkr::detail::pending<void(std::error_code, watch_event)>;

/// A request the C client holds. The C client should call each completion exactly once,
/// but libzookeeper-mt 3.8's zookeeper_close can drop completions it has already failed
/// with ZCLOSING (its completion thread may exit before running them), so every request is
/// also registered with its handle, and whatever is left after zookeeper_close is completed
/// and freed by zkr.
struct op_base {
  op_base() = default;
  op_base(const op_base&) = delete;
  op_base& operator=(const op_base&) = delete;
  virtual ~op_base() = default;
  /// Completes the handler with `ec` unless it has completed already. Requires the handle's mu.
  virtual void abort(std::error_code ec) = 0;
  std::uint64_t id = 0;
};

/// One C handle (one ZooKeeper session generation) and the watches registered on it.
struct handle_ctx {
  std::uint64_t generation = 0;
  zhandle_t* zh = nullptr;
  bool auth_ready = true;  // every credential handed to the C client (guarded by the session's mu_)
  std::function<void(int /*zk state*/)> on_state;  // posts to the session's strand
  std::function<void(watch_pending, std::error_code, watch_event)> deliver;  // likewise

  std::mutex mu;
  std::uint64_t next_key = 1;
  std::map<std::uintptr_t, watch_pending> watches;  // guarded by mu
  std::uint64_t next_op = 1;
  std::map<std::uint64_t, op_base*> ops;  // requests the C client holds; guarded by mu

  void add_op(op_base* o) {
    std::lock_guard lock(mu);
    o->id = next_op++;
    ops.emplace(o->id, o);
  }
  /// Unregisters `o` and runs `f` under the lock (the completion takes its handler there).
  template <class F>
  void release_op(op_base* o, F&& f) {
    std::lock_guard lock(mu);
    ops.erase(o->id);
    f();
  }
  /// Completes every registered request's handler now (they stay registered: the C client
  /// still owns their memory).
  void abort_ops(std::error_code ec) {
    std::lock_guard lock(mu);
    for (auto& [id, o] : ops) o->abort(ec);
  }
  /// After zookeeper_close returned: the C client calls nothing any more, so what is left is
  /// ours to complete and free.
  void delete_ops(std::error_code ec) {
    std::lock_guard lock(mu);
    for (auto& [id, o] : ops) {
      o->abort(ec);
      delete o;
    }
    ops.clear();
  }

  /// Registers a watch before its read is sent; returns the key the C client will see.
  std::uintptr_t add_watch(watch_pending w) {
    std::lock_guard lock(mu);
    const auto key = static_cast<std::uintptr_t>(next_key++);
    watches.emplace(key, std::move(w));
    return key;
  }
  /// Removes a watch; the returned pending is empty if someone else took it first.
  watch_pending take_watch(std::uintptr_t key) {
    std::lock_guard lock(mu);
    auto it = watches.find(key);
    if (it == watches.end()) return {};
    auto w = std::move(it->second);
    watches.erase(it);
    return w;
  }
  std::vector<watch_pending> take_all_watches() {
    std::lock_guard lock(mu);
    std::vector<watch_pending> out;
    out.reserve(watches.size());
    for (auto& [k, w] : watches) out.push_back(std::move(w));
    watches.clear();
    return out;
  }
};

inline handle_ctx* handle_of(zhandle_t* zh) noexcept {
  return static_cast<handle_ctx*>(const_cast<void*>(zoo_get_context(zh)));
}

/// The session watcher given to zookeeper_init: forwards state changes of this handle.
inline void global_watcher(zhandle_t* zh, int type, int state, const char*, void*) {
  if (type != ZOO_SESSION_EVENT) return;  // zkr never asks for default-watcher node events
  if (auto* h = handle_of(zh); h != nullptr && h->on_state) h->on_state(state);
}

/// The watcher of one read. The C client also calls it for every session event while it is
/// registered: only expiry and auth failure end the watch; other session events go to the
/// session-state channel alone.
inline void path_watcher(zhandle_t* zh, int type, int state, const char* path, void* watcher_ctx) {
  auto* h = handle_of(zh);
  if (h == nullptr) return;
  std::error_code ec;
  watch_event ev;
  if (type == ZOO_SESSION_EVENT) {
    if (state == ZOO_EXPIRED_SESSION_STATE) {
      ec = errc::session_expired;
    } else if (state == ZOO_AUTH_FAILED_STATE) {
      ec = errc::auth_failed;
    } else {
      return;
    }
  } else if (type == ZOO_NOTWATCHING_EVENT) {
    return;  // zkr never removes watches through the C client
  } else {
    ev.type = to_event_type(type);
    ev.path = path ? path : "";
  }
  auto w = h->take_watch(reinterpret_cast<std::uintptr_t>(watcher_ctx));
  if (w && h->deliver) h->deliver(std::move(w), ec, std::move(ev));
}

}  // namespace zkr::zookeeper::detail
