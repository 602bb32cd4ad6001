// Real ZooKeeper servers for GoogleTest programs, driven through scripts/zk.
//
// Test programs are compiled with
//   -DZKR_ZK_SCRIPT="<abs path to scripts/zk>"        (required)
//   -DZKR_TEST_RUN_DIR="<abs path to a scratch dir>"  (optional; default $TMPDIR/zkr-test)
// Each cluster lives in ZKR_TEST_RUN_DIR/<name>-<pid>-<counter>: configs, data, server logs
// and the script's state file. A cluster is stopped by its destructor; the script's watchdog
// also stops it if the test process dies (even by SIGKILL). Run directories are removed after
// a clean stop unless a test has failed (they are kept for post-mortems) or the environment
// variable ZKR_KEEP_TEST_RUNS is set.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef ZKR_ZK_SCRIPT
#error "zk_server.hpp: compile with -DZKR_ZK_SCRIPT=\"/abs/path/to/scripts/zk\""
#endif

extern char** environ;

namespace zkr::test {

namespace detail {

struct script_result {
  int exit_code = -1;  // exit status, or 128 + signal number if the script was killed
  std::string out;
  std::string err;
};

// Runs scripts/zk with `args` (no shell: argv is passed as is) and captures its stdout and
// stderr. The child gets an empty signal mask and default dispositions so the servers it
// launches react to SIGTERM normally. Throws std::runtime_error if the script cannot be run.
inline script_result run_script(const std::vector<std::string>& args) {
  std::vector<std::string> argv_s;
  argv_s.reserve(args.size() + 1);
  argv_s.emplace_back(ZKR_ZK_SCRIPT);
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);

  int out_pipe[2];
  int err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    throw std::runtime_error(std::string("zk_server: pipe2: ") + std::strerror(errno));
  }
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    int e = errno;
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    throw std::runtime_error(std::string("zk_server: pipe2: ") + std::strerror(e));
  }

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  ::posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  ::posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  ::posix_spawnattr_init(&attr);
  sigset_t none;
  sigset_t defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int s : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD}) sigaddset(&defaults, s);
  ::posix_spawnattr_setsigmask(&attr, &none);
  ::posix_spawnattr_setsigdefault(&attr, &defaults);
  ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, argv[0], &actions, &attr, argv.data(), environ);
  ::posix_spawn_file_actions_destroy(&actions);
  ::posix_spawnattr_destroy(&attr);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (rc != 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    throw std::runtime_error(std::string("zk_server: cannot run ") + ZKR_ZK_SCRIPT + ": " +
                             std::strerror(rc));
  }

  script_result r;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&r.out, &r.err};
  int open_fds = 2;
  char buf[4096];
  while (open_fds > 0) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& f : fds) {
    if (f.fd >= 0) ::close(f.fd);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

inline std::string describe(const std::vector<std::string>& args, const script_result& r) {
  std::string cmd = "scripts/zk";
  for (const auto& a : args) cmd += " " + a;
  return cmd + " failed (exit " + std::to_string(r.exit_code) + "):\n" + r.err;
}

// Runs the script and throws std::runtime_error (with its stderr) unless it exits 0.
inline std::string run_checked(const std::vector<std::string>& args) {
  script_result r = run_script(args);
  if (r.exit_code != 0) throw std::runtime_error(describe(args, r));
  return r.out;
}

inline std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// Keeps [A-Za-z0-9._-], replaces anything else (e.g. '/' of parameterised tests) by '_'.
inline std::string sanitize(std::string_view s) {
  std::string r;
  r.reserve(s.size());
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    r += ok ? c : '_';
  }
  return r.empty() ? std::string("_") : r;
}

inline std::filesystem::path run_root() {
#ifdef ZKR_TEST_RUN_DIR
  return std::filesystem::path(ZKR_TEST_RUN_DIR);
#else
  return std::filesystem::temp_directory_path() / "zkr-test";
#endif
}

inline bool any_test_failed() {
  auto* ut = ::testing::UnitTest::GetInstance();
  return ut->Failed() || ::testing::Test::HasFailure();
}

}  // namespace detail

// One running ZooKeeper server or ensemble started by scripts/zk on free loopback ports.
// Stops it in its destructor (even when a test failed). Not copyable; movable (a moved-from
// object owns nothing and all its operations are no-ops or throw std::logic_error).
// Member functions other than the destructor report failures by throwing
// std::runtime_error carrying the script's stderr (which includes server log tails).
class zk_cluster {
 public:
  // Starts `servers` servers (1: standalone; N: an ensemble, waits for a single leader) with
  // tickTime `tick_ms` in ZKR_TEST_RUN_DIR/<name>-<pid>-<counter>, passing --parent-pid
  // getpid() so the servers die with this process. Returns once every server serves.
  // Throws std::runtime_error with the script's stderr on failure: ZooKeeper or Java missing
  // (the message says how to install them), start-up timeout (60 s; includes log tails).
  static zk_cluster start(int servers = 1, const std::string& name = "zk", int tick_ms = 200) {
    static std::atomic<int> counter{0};
    auto dir = detail::run_root() / (detail::sanitize(name) + "-" + std::to_string(::getpid()) +
                                     "-" + std::to_string(counter++));
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);  // the script reports what went wrong
    std::vector<std::string> args = {"start",     "--dir",       dir.string(),
                                     "--servers", std::to_string(servers),
                                     "--tick-ms", std::to_string(tick_ms),
                                     "--parent-pid", std::to_string(::getpid())};
    std::string out = detail::run_checked(args);
    zk_cluster c;
    c.dir_ = dir.string();
    c.connect_ = detail::trim(out);
    for (std::size_t pos = 0; pos <= c.connect_.size();) {
      std::size_t comma = c.connect_.find(',', pos);
      if (comma == std::string::npos) comma = c.connect_.size();
      c.hosts_.push_back(c.connect_.substr(pos, comma - pos));
      pos = comma + 1;
    }
    if (c.connect_.empty() || static_cast<int>(c.hosts_.size()) != servers) {
      throw std::runtime_error("zk_server: unexpected output of scripts/zk start: '" + out + "'");
    }
    return c;
  }

  zk_cluster(const zk_cluster&) = delete;
  zk_cluster& operator=(const zk_cluster&) = delete;
  zk_cluster(zk_cluster&& o) noexcept
      : dir_(std::exchange(o.dir_, {})),
        connect_(std::exchange(o.connect_, {})),
        hosts_(std::exchange(o.hosts_, {})),
        stopped_(std::exchange(o.stopped_, true)) {}
  zk_cluster& operator=(zk_cluster&& o) noexcept {
    if (this != &o) {
      stop_quietly();
      dir_ = std::exchange(o.dir_, {});
      connect_ = std::exchange(o.connect_, {});
      hosts_ = std::exchange(o.hosts_, {});
      stopped_ = std::exchange(o.stopped_, true);
    }
    return *this;
  }
  // Stops all servers; never throws (a failure to stop is printed to stderr, and the
  // watchdog still stops the servers when this process exits).
  ~zk_cluster() { stop_quietly(); }

  // "127.0.0.1:p1,127.0.0.1:p2,...": all servers, in index order. Stays valid after stops.
  const std::string& connect_string() const { return connect_; }
  // "127.0.0.1:port" of server `server` (0-based). Throws std::out_of_range on a bad index.
  std::string connect_string(int server) const { return hosts_.at(index(server)); }
  // Number of servers in the cluster (0 for a moved-from object).
  int size() const { return static_cast<int>(hosts_.size()); }
  // The run directory (configs, data, logs, cluster.json).
  const std::string& dir() const { return dir_; }

  // SIGKILLs server `server` and waits until it is gone. No-op if it is already dead.
  void kill(int server) { server_cmd("kill", server); }
  // Stops server `server` gracefully (SIGTERM; SIGKILL after 5 s) and waits until it is gone.
  void stop(int server) { server_cmd("stop-server", server); }
  // Starts server `server` again with the same config, ports and data (stopping it gracefully
  // first if it still runs). With `wait` (the default), returns once it serves (in an
  // ensemble: once it has a Mode, which needs a quorum of live servers, otherwise this throws
  // after 60 s); with wait = false returns right after launching it.
  void restart(int server, bool wait = true) {
    std::vector<std::string> args = {"restart", "--dir", dir_or_throw(), "--server",
                                     std::to_string(index(server))};
    if (!wait) args.emplace_back("--no-wait");
    detail::run_checked(args);
  }
  // 0-based index of the current leader (or of the standalone server); -1 if no server is
  // leading right now (e.g. during an election). Throws if the script itself fails.
  int leader() const {
    std::vector<std::string> args = {"leader", "--dir", dir_or_throw()};
    auto r = detail::run_script(args);
    if (r.exit_code == 1) return -1;
    if (r.exit_code != 0) throw std::runtime_error(detail::describe(args, r));
    return std::stoi(r.out);
  }
  // The last `lines` lines of every server's log, each under a "===== server I ..." header.
  // Never throws: on failure returns a description of the failure instead.
  std::string logs(int lines = 200) const {
    if (dir_.empty()) return "(no cluster)\n";
    try {
      auto r = detail::run_script({"logs", "--dir", dir_, "--lines", std::to_string(lines)});
      return r.exit_code == 0 ? r.out : "scripts/zk logs failed:\n" + r.err;
    } catch (const std::exception& e) {
      return std::string("scripts/zk logs failed: ") + e.what() + "\n";
    }
  }
  // Stops every server and the watchdog. Idempotent. Removes the run directory unless a test
  // has failed or ZKR_KEEP_TEST_RUNS is set. Throws std::runtime_error if stopping failed.
  void stop_all() {
    if (dir_.empty() || stopped_) return;
    detail::run_checked({"stop", "--dir", dir_});
    stopped_ = true;
    if (!detail::any_test_failed() && std::getenv("ZKR_KEEP_TEST_RUNS") == nullptr) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }

 private:
  zk_cluster() = default;

  std::size_t index(int server) const {
    if (server < 0 || server >= size()) {
      throw std::out_of_range("zk_cluster: server index " + std::to_string(server) +
                              " out of range 0.." + std::to_string(size() - 1));
    }
    return static_cast<std::size_t>(server);
  }
  const std::string& dir_or_throw() const {
    if (dir_.empty()) throw std::logic_error("zk_cluster: use of a moved-from cluster");
    return dir_;
  }
  void server_cmd(const char* cmd, int server) {
    detail::run_checked({cmd, "--dir", dir_or_throw(), "--server", std::to_string(index(server))});
  }
  void stop_quietly() noexcept {
    try {
      stop_all();
    } catch (const std::exception& e) {
      std::cerr << "zk_cluster: stopping " << dir_ << " failed: " << e.what() << "\n";
    }
  }

  std::string dir_;
  std::string connect_;
  std::vector<std::string> hosts_;
  bool stopped_ = false;
};

namespace detail {
struct shared_state {
  std::mutex mu;
  std::optional<zk_cluster> cluster;
  std::string error;  // non-empty once a start attempt failed; not retried
};
inline shared_state& shared() {
  static shared_state s;
  return s;
}
}  // namespace detail

// The standalone server shared by every test of this program, started on first use (about
// 0.5 s). Thread-safe. If it cannot start (or could not on an earlier call) this records a
// GoogleTest failure carrying the script's message (with the install hint) and throws
// std::runtime_error, so each test using it fails loudly instead of being skipped.
// Give each test its own subtree (see test_root()). Stopped by zk_environment::TearDown,
// or at static destruction if no environment is registered.
inline zk_cluster& shared_server() {
  auto& s = detail::shared();
  std::lock_guard lock(s.mu);
  if (!s.cluster && s.error.empty()) {
    try {
      s.cluster.emplace(zk_cluster::start(1, "shared"));
    } catch (const std::exception& e) {
      s.error = e.what();
      if (s.error.empty()) s.error = "unknown error";
    }
  }
  if (!s.cluster) {
    ADD_FAILURE() << "cannot start the shared ZooKeeper server: " << s.error;
    throw std::runtime_error("the shared ZooKeeper server is unavailable (see the failure above)");
  }
  return *s.cluster;
}

// Register once per test program:
//   static auto* const zk_env = ::testing::AddGlobalTestEnvironment(new zkr::test::zk_environment);
// The shared server starts lazily (see shared_server()). TearDown prints the server logs to
// stderr if any test failed, then stops the server. Never throws.
class zk_environment : public ::testing::Environment {
 public:
  void SetUp() override {}
  void TearDown() override {
    auto& s = detail::shared();
    std::lock_guard lock(s.mu);
    if (!s.cluster) return;
    if (detail::any_test_failed()) {
      std::cerr << "\n===== a test failed: logs of the shared ZooKeeper server ("
                << s.cluster->dir() << ") =====\n"
                << s.cluster->logs() << std::flush;
    }
    s.cluster.reset();  // the destructor stops it and never throws
  }
};

// A fresh root path for the current test: "/zkr-test/<TestSuite>.<TestName>-<counter>", each
// component sanitised to [A-Za-z0-9._-] (so "/" of parameterised names becomes "_"). Unique
// within the process; the caller creates the node (and its parent "/zkr-test"). Outside a
// test it returns "/zkr-test/no-test-<counter>". Never throws except std::bad_alloc.
inline std::string test_root() {
  static std::atomic<int> counter{0};
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = info ? std::string(info->test_suite_name()) + "." + info->name() : "no-test";
  return "/zkr-test/" + detail::sanitize(name) + "-" + std::to_string(counter++);
}

}  // namespace zkr::test
