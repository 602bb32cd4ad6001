// zkr/recipes/impl/invariant.hpp: the recipes' invariant check.
//
// A broken invariant is a bug in zkr, not an operating error: it prints what broke and where,
// then aborts (TigerBeetle's rule: crash on a broken invariant, handle operating errors). It is
// always on: the checks are cheap comparisons on paths that run once per ZooKeeper reply.
#pragma once

#include <cstdio>
#include <cstdlib>

namespace zkr::recipes::detail {

[[noreturn]] inline void invariant_failed(const char* what, const char* file, int line) noexcept {
  std::fprintf(stderr, "zkr: broken invariant: %s (%s:%d)\n", what, file, line);
  std::fflush(stderr);
  std::abort();
}

}  // namespace zkr::recipes::detail

#ifndef ZKR_INVARIANT
/// Aborts with `what` if `cond` is false. For invariants only, never for operating errors.
#define ZKR_INVARIANT(cond, what) \
  ((cond) ? static_cast<void>(0) : ::zkr::recipes::detail::invariant_failed((what), __FILE__, __LINE__))
#endif
