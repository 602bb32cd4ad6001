// tests/interop/peer.hpp: runs the Java peer (tests/interop/CuratorPeer.java, Apache Curator
// 5.4) as a child process of a GoogleTest program and follows its output line by line.
//
// Compile with
//   -DZKR_CURATOR_PEER="<abs path to tests/interop/curator-peer>"         (required)
//   -DZKR_CURATOR_PEER_CLASSES="<abs dir for the compiled classes>"       (required)
//   -DZKR_TEST_RUN_DIR="<abs scratch dir>"   (optional; stderr files, logs; default $TMPDIR/zkr-test)
//
// `peer_toolchain_error()` compiles the peer once per program (javac, a few seconds) and says
// why it cannot run (Java or a Curator jar missing: the message carries the install command);
// tests FAIL with that message, they never skip.
//
// A `peer` is one `curator-peer <subcommand> ...` process: stdin a pipe (`send`, `close_stdin`),
// stdout read by a thread into lines (`expect` waits for one), stderr into a file (shown in
// `diagnostics()`). Its destructor SIGKILLs the process if it still runs (by its pid: only
// our own child) and reaps it. The Java peers also exit by themselves: mutex and counter when
// done, the others at stdin EOF (which they see if this process dies) or after their deadline.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef ZKR_CURATOR_PEER
#error "peer.hpp: compile with -DZKR_CURATOR_PEER=\"/abs/path/to/tests/interop/curator-peer\""
#endif
#ifndef ZKR_CURATOR_PEER_CLASSES
#error "peer.hpp: compile with -DZKR_CURATOR_PEER_CLASSES=\"/abs/dir/for/classes\""
#endif

extern char** environ;

namespace zkr::test::interop {

inline std::filesystem::path scratch_dir() {
#ifdef ZKR_TEST_RUN_DIR
  std::filesystem::path p(ZKR_TEST_RUN_DIR);
#else
  std::filesystem::path p = std::filesystem::temp_directory_path() / "zkr-test";
#endif
  std::error_code ec;
  std::filesystem::create_directories(p, ec);
  return p;
}

/// A unique file name in the scratch dir: "interop-<pid>-<n>-<stem>".
inline std::filesystem::path scratch_file(std::string_view stem) {
  static std::atomic<int> counter{0};
  return scratch_dir() /
         ("interop-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" + std::string(stem));
}

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// One running `curator-peer <args...>` process. Not copyable, not movable (its reader thread
/// points at it): hold it in a unique_ptr (see start()).
class peer {
 public:
  /// Starts `curator-peer --classes <classes> <args...>`. Throws std::runtime_error if the
  /// process cannot be spawned.
  static std::unique_ptr<peer> start(std::vector<std::string> args) {
    return std::unique_ptr<peer>(new peer(std::move(args)));
  }

  peer(const peer&) = delete;
  peer& operator=(const peer&) = delete;

  ~peer() {
    close_stdin();
    if (!exited_) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
    }
    if (reader_.joinable()) reader_.join();
    if (!::testing::Test::HasFailure() && std::getenv("ZKR_KEEP_TEST_RUNS") == nullptr) {
      std::error_code ec;
      std::filesystem::remove(err_path_, ec);
    }
  }

  /// Waits for the first line not taken yet that is `word` or starts with `word` + ' ', takes
  /// it and returns it. Throws std::runtime_error (with diagnostics()) if the process's stdout
  /// ends first or `limit` passes.
  std::string expect(std::string_view word, std::chrono::milliseconds limit = std::chrono::seconds(60)) {
    std::unique_lock lock(mu_);
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      for (std::size_t i = 0; i < lines_.size(); ++i) {
        if (!taken_[i] && matches(lines_[i], word)) {
          taken_[i] = true;
          return lines_[i];
        }
      }
      if (eof_) break;
      if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) break;
    }
    const bool eof = eof_;
    lock.unlock();
    throw std::runtime_error("Curator peer: no line '" + std::string(word) + "' " +
                             (eof ? "before its stdout ended" : "within " + std::to_string(limit.count()) + " ms") +
                             "\n" + diagnostics());
  }

  /// Whether a line `word` (or `word ...`) has been printed so far, taken or not.
  bool saw(std::string_view word) const {
    std::lock_guard lock(mu_);
    return std::any_of(lines_.begin(), lines_.end(), [&](const std::string& l) { return matches(l, word); });
  }

  /// Writes `line` + '\n' to the process's stdin. Throws if stdin is closed or the write fails.
  void send(const std::string& line) {
    if (in_fd_ < 0) throw std::runtime_error("Curator peer: stdin is closed");
    std::string s = line + "\n";
    std::size_t off = 0;
    while (off < s.size()) {
      ssize_t n = ::write(in_fd_, s.data() + off, s.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw std::runtime_error("Curator peer: writing to its stdin failed: " + std::string(std::strerror(errno)));
      off += static_cast<std::size_t>(n);
    }
  }

  void close_stdin() {
    if (in_fd_ >= 0) {
      ::close(in_fd_);
      in_fd_ = -1;
    }
  }

  /// Waits until the process exits and returns its exit status (128 + signal if killed).
  /// After `limit` SIGKILLs it and throws std::runtime_error with diagnostics().
  int wait_exit(std::chrono::milliseconds limit = std::chrono::seconds(60)) {
    if (exited_) return status_;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      int status = 0;
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        exited_ = true;
        status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (reader_.joinable()) reader_.join();
        return status_;
      }
      if (r < 0 && errno != EINTR) throw std::runtime_error("Curator peer: waitpid: " + std::string(std::strerror(errno)));
      if (std::chrono::steady_clock::now() >= deadline) {
        ::kill(pid_, SIGKILL);
        throw std::runtime_error("Curator peer: still running after " + std::to_string(limit.count()) +
                                 " ms (killed)\n" + diagnostics());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  /// The command, its stdout so far and its stderr, for failure messages.
  std::string diagnostics() const {
    std::string d = "----- " + command_ + "\n----- stdout:\n";
    {
      std::lock_guard lock(mu_);
      for (const auto& l : lines_) d += l + "\n";
    }
    d += "----- stderr (" + err_path_.string() + "):\n" + read_file(err_path_) + "-----";
    return d;
  }

  std::vector<std::string> lines() const {
    std::lock_guard lock(mu_);
    return lines_;
  }

 private:
  explicit peer(std::vector<std::string> args) : err_path_(scratch_file("peer.err")) {
    std::vector<std::string> argv_s = {ZKR_CURATOR_PEER, "--classes", ZKR_CURATOR_PEER_CLASSES};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    for (const auto& a : argv_s) command_ += (command_.empty() ? "" : " ") + a;
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);

    int in_pipe[2];
    int out_pipe[2];
    if (::pipe2(in_pipe, O_CLOEXEC) != 0) throw std::runtime_error("Curator peer: pipe2 failed");
    if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
      ::close(in_pipe[0]);
      ::close(in_pipe[1]);
      throw std::runtime_error("Curator peer: pipe2 failed");
    }
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_adddup2(&actions, in_pipe[0], 0);
    ::posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
    ::posix_spawn_file_actions_addopen(&actions, 2, err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    // The ZooKeeper C client's sockets are not close-on-exec: keep them out of the JVM.
    ::posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    ::posix_spawnattr_init(&attr);
    sigset_t none;
    sigset_t defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (int s : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD}) sigaddset(&defaults, s);
    ::posix_spawnattr_setsigmask(&attr, &none);
    ::posix_spawnattr_setsigdefault(&attr, &defaults);
    ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    int rc = ::posix_spawn(&pid_, argv[0], &actions, &attr, argv.data(), environ);
    ::posix_spawn_file_actions_destroy(&actions);
    ::posix_spawnattr_destroy(&attr);
    ::close(in_pipe[0]);
    ::close(out_pipe[1]);
    if (rc != 0) {
      ::close(in_pipe[1]);
      ::close(out_pipe[0]);
      throw std::runtime_error("Curator peer: cannot run " + command_ + ": " + std::strerror(rc));
    }
    in_fd_ = in_pipe[1];
    reader_ = std::thread([this, fd = out_pipe[0]] { read_stdout(fd); });
  }

  static bool matches(const std::string& line, std::string_view word) {
    return line.size() >= word.size() && line.compare(0, word.size(), word) == 0 &&
           (line.size() == word.size() || line[word.size()] == ' ');
  }

  void read_stdout(int fd) {
    std::string partial;
    char buf[4096];
    for (;;) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      partial.append(buf, static_cast<std::size_t>(n));
      std::size_t nl;
      while ((nl = partial.find('\n')) != std::string::npos) {
        std::string line = partial.substr(0, nl);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        partial.erase(0, nl + 1);
        std::lock_guard lock(mu_);
        lines_.push_back(std::move(line));
        taken_.push_back(false);
        cv_.notify_all();
      }
    }
    ::close(fd);
    std::lock_guard lock(mu_);
    if (!partial.empty()) {
      lines_.push_back(partial);
      taken_.push_back(false);
    }
    eof_ = true;
    cv_.notify_all();
  }

  std::filesystem::path err_path_;
  std::string command_;
  pid_t pid_ = -1;
  int in_fd_ = -1;
  bool exited_ = false;
  int status_ = -1;
  std::thread reader_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> lines_;
  std::vector<bool> taken_;
  bool eof_ = false;
};

/// Compiles the peer (once per program) and returns "" if it can run, else why not: Java or a
/// Curator jar missing (with the install command), or javac's errors.
inline const std::string& peer_toolchain_error() {
  static const std::string error = [] {
    try {
      auto p = peer::start({"compile"});
      p->close_stdin();
      int rc = p->wait_exit(std::chrono::minutes(5));
      if (rc == 0) return std::string();
      return "cannot compile/run the Apache Curator peer (exit " + std::to_string(rc) + "):\n" + p->diagnostics();
    } catch (const std::exception& e) {
      return std::string("cannot run the Apache Curator peer: ") + e.what();
    }
  }();
  return error;
}

}  // namespace zkr::test::interop
