// zkr/op.hpp: the operations of a multi (transaction) and their per-operation results.
//
// A multi applies all of its operations atomically or none. On failure the results are:
// success for the operations before the failing one, its error for it, and
// `errc::runtime_inconsistency` for the ones after it (none of them was applied).
//
// Thread safety: plain values.
#pragma once

#include <cstdint>
#include <string>
#include <system_error>
#include <vector>

#include <zkr/types.hpp>

namespace zkr {

/// One operation of a multi. Build it with the factory functions.
struct op {
  enum class kind : int { create = 1, remove = 2, set = 5, check = 13 };  // wire op codes
  kind type = kind::check;
  std::string path;
  std::string data;
  std::int32_t version = -1;  ///< -1 matches any version (remove, set, check)
  create_options create{};

  /// Create `path` with `data` (fails the multi if it exists, unless sequential).
  static op make_create(std::string path, std::string data, create_options opts = {}) {
    op o;
    o.type = kind::create;
    o.path = std::move(path);
    o.data = std::move(data);
    o.create = std::move(opts);
    return o;
  }
  /// Remove `path` if its version matches (-1: any).
  static op make_remove(std::string path, std::int32_t version = -1) {
    op o;
    o.type = kind::remove;
    o.path = std::move(path);
    o.version = version;
    return o;
  }
  /// Set `path`'s data if its version matches (-1: any).
  static op make_set(std::string path, std::string data, std::int32_t version = -1) {
    op o;
    o.type = kind::set;
    o.path = std::move(path);
    o.data = std::move(data);
    o.version = version;
    return o;
  }
  /// Fail the multi unless `path` exists with this version (-1: any).
  static op make_check(std::string path, std::int32_t version = -1) {
    op o;
    o.type = kind::check;
    o.path = std::move(path);
    o.version = version;
    return o;
  }
};

/// The result of one operation of a multi. `path` is the created path (create only, relative
/// to the chroot); `stat` is filled for create and set.
struct op_result {
  std::error_code ec;
  std::string path;
  zkr::stat stat{};
};

}  // namespace zkr
