// tests/zookeeper/fixture.hpp: the fixture of the real-server tests.
//
// One standalone server per test program (zk_environment), an io_context on a thread, and a
// fresh root path per test so tests never see each other's nodes.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <zkr/zookeeper/session.hpp>

#include "support/runner.hpp"
#include "support/zk_server.hpp"

namespace zkr::test {

inline const auto* const zk_env = ::testing::AddGlobalTestEnvironment(new zk_environment);

class zk_test : public ::testing::Test {
 protected:
  using session = zkr::zookeeper::session;

  void SetUp() override {
    zkr::zookeeper::set_log_level(zkr::zookeeper::log_level::error);
    connect_ = shared_server().connect_string();
    root_ = test_root();
    auto& s = open();
    // The per-test root and its parent; node_exists on the parent is expected.
    auto [ec1, p1, st1] = await(s.async_create("/zkr-test", "", {}, tok));
    ASSERT_TRUE(!ec1 || ec1 == errc::node_exists) << ec1.message();
    auto [ec2, p2, st2] = await(s.async_create(root_, "", {}, tok));
    ASSERT_FALSE(ec2) << ec2.message();
  }

  void TearDown() override {
    for (auto& s : sessions_) (void)await(s->async_close(tok));
    io_.drain();
    sessions_.clear();
  }

  /// Opens a session and waits until it is connected. Owned by the fixture.
  session& open(zkr::zookeeper::options o = {}) {
    if (o.connect_string.empty()) o.connect_string = connect_;
    sessions_.push_back(std::make_unique<session>(io_.executor(), std::move(o)));
    auto& s = *sessions_.back();
    auto [ec] = await(s.async_wait_connected(tok));
    EXPECT_FALSE(ec) << ec.message();
    return s;
  }
  session& first() { return *sessions_.front(); }
  /// root_ + "/" + name
  std::string path(const std::string& name) const { return root_ + "/" + name; }

  io_thread io_;
  std::string connect_;
  std::string root_;
  std::vector<std::unique_ptr<session>> sessions_;
};

}  // namespace zkr::test
