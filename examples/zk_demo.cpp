// zk_demo: a short tour of the ZooKeeper backend against a real server.
//
//   zk_demo CONNECT_STRING        (scripts/demo starts a server and runs this)
//
// It connects, registers an ephemeral-sequential member node, watches the members with a
// re-armed children watch (as recipes do), lets a second session join and leave, and prints
// every session transition and watch event with the time since start.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include <zkr/zookeeper/session.hpp>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

const auto t0 = std::chrono::steady_clock::now();

void say(const std::string& who, const std::string& what) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  std::printf("%6lld ms  %-8s %s\n", static_cast<long long>(ms.count()), who.c_str(), what.c_str());
  std::fflush(stdout);
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return "[" + out + "]";
}

/// Lists /demo/members and re-arms the one-shot children watch after every event, until
/// the watch ends with the session. `on_members` sees every listing.
template <class OnMembers>
void watch_members(zkr::zookeeper::session& s, OnMembers on_members) {
  s.async_get_children(
      "/demo/members",
      [&s, on_members](std::error_code ec, zkr::watch_event ev) {
        if (ec) return say("watcher", "watch ended: " + ec.message());
        say("watcher", std::string("event ") + std::string(zkr::to_string(ev.type)) + " on " + ev.path);
        watch_members(s, on_members);
      },
      [on_members](std::error_code ec, std::vector<std::string> children, zkr::stat) {
        if (ec) return say("watcher", "list failed: " + ec.message());
        std::sort(children.begin(), children.end());
        say("watcher", "members " + join(children));
        on_members(children);
      });
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: zk_demo CONNECT_STRING   (e.g. 127.0.0.1:2181)\n");
    return 2;
  }
  zkr::zookeeper::set_log_level(zkr::zookeeper::log_level::error);
  asio::io_context io;
  zkr::zookeeper::session alice(io.get_executor(), {.connect_string = argv[1], .session_timeout = 4s});
  auto sub = alice.subscribe([&](const zkr::session_event& e) {
    say("alice", "session " + std::string(zkr::to_string(e.state)) + " (generation " + std::to_string(e.generation) +
                     ", timeout " + std::to_string(alice.negotiated_timeout().count()) + " ms)");
  });
  std::optional<zkr::zookeeper::session> bob;
  int exit_code = 0;
  bool bob_gone = false;
  // Once bob has closed and the watch has shown alice alone, the tour is over.
  auto on_members = [&](const std::vector<std::string>& members) {
    if (bob_gone && members.size() == 1) {
      alice.async_close([&](std::error_code) { say("alice", "closed"); });
    }
  };

  alice.async_wait_connected([&](std::error_code ec) {
    if (ec) {
      say("alice", "could not connect: " + ec.message());
      exit_code = 1;
      return;
    }
    alice.async_create("/demo", "", {}, [&](std::error_code, std::string, zkr::stat) {
      alice.async_create("/demo/members", "", {}, [&](std::error_code, std::string, zkr::stat) {
        watch_members(alice, on_members);
        alice.async_create("/demo/members/alice-", "alice", {.mode = zkr::create_mode::ephemeral_sequential},
                           [&](std::error_code ec2, std::string path, zkr::stat st) {
                             if (ec2) return say("alice", "register failed: " + ec2.message());
                             say("alice", "registered " + path + " (czxid " + std::to_string(st.czxid) + ")");
                             bob.emplace(io.get_executor(), zkr::zookeeper::options{.connect_string = argv[1]});
                             bob->async_create("/demo/members/bob-", "bob", {.mode = zkr::create_mode::ephemeral_sequential},
                                               [&](std::error_code ec3, std::string p3, zkr::stat) {
                                                 say("bob", ec3 ? "register failed: " + ec3.message() : "registered " + p3);
                                                 say("bob", "closing: its ephemeral node goes with it");
                                                 bob->async_close([&](std::error_code) { bob_gone = true; });
                                               });
                           });
      });
    });
  });
  io.run_for(30s);
  return exit_code;
}
