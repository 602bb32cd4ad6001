// Proves an installed zkr is usable: headers found, zkr::zkr links libzookeeper.
#include <zkr/backend.hpp>
#include <zkr/error.hpp>
#include <zkr/path.hpp>
#include <zkr/zookeeper/session.hpp>

#include <iostream>

static_assert(zkr::backend<zkr::zookeeper::session>);

int main() {
  zkr::zookeeper::set_log_level(zkr::zookeeper::log_level::error);
  const bool ok = !zkr::validate_path("/a/b") && zkr::validate_path("/a//b") == zkr::errc::invalid_path;
  std::cout << (ok ? "consumer ok" : "consumer FAILED") << "\n";
  return ok ? 0 : 1;
}
