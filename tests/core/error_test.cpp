// Tests of zkr/error.hpp.
//
// Goal: zkr's error codes carry ZooKeeper's numbers, each has its own message, the
// "outcome unknown" and "retryable" predicates keep connection loss and throttling apart,
// raw C-client codes map one to one, and the std::error_condition mapping lets callers test
// portable conditions.
// Method: one table of every enumerator with ZooKeeper's number, taken from zookeeper.h
// (C client 3.8) and org.apache.zookeeper.KeeperException.Code (3.8); checks over the table.

#include <zkr/error.hpp>

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <system_error>
#include <type_traits>
#include <vector>

namespace {

using zkr::errc;

struct code_row {
  errc e;
  int zookeeper_value;  // ZooKeeper's number (zkr's own client-side codes: zkr's number)
  const char* zookeeper_name;
};

// Every enumerator of zkr::errc. C++ cannot enumerate an enum, so every_enumerator_is_listed
// cross-checks the table against the values the category has messages for.
const std::vector<code_row> all_codes = {
    {errc::ok, 0, "ZOK"},
    {errc::system_error, -1, "ZSYSTEMERROR"},
    {errc::runtime_inconsistency, -2, "ZRUNTIMEINCONSISTENCY"},
    {errc::data_inconsistency, -3, "ZDATAINCONSISTENCY"},
    {errc::connection_loss, -4, "ZCONNECTIONLOSS"},
    {errc::marshalling_error, -5, "ZMARSHALLINGERROR"},
    {errc::unimplemented, -6, "ZUNIMPLEMENTED"},
    {errc::operation_timeout, -7, "ZOPERATIONTIMEOUT"},
    {errc::bad_arguments, -8, "ZBADARGUMENTS"},
    {errc::invalid_state, -9, "ZINVALIDSTATE"},
    {errc::new_config_no_quorum, -13, "ZNEWCONFIGNOQUORUM"},
    {errc::reconfig_in_progress, -14, "ZRECONFIGINPROGRESS"},
    {errc::ssl_connection_error, -15, "ZSSLCONNECTIONERROR"},
    {errc::api_error, -100, "ZAPIERROR"},
    {errc::no_node, -101, "ZNONODE"},
    {errc::no_auth, -102, "ZNOAUTH"},
    {errc::bad_version, -103, "ZBADVERSION"},
    {errc::no_children_for_ephemerals, -108, "ZNOCHILDRENFOREPHEMERALS"},
    {errc::node_exists, -110, "ZNODEEXISTS"},
    {errc::not_empty, -111, "ZNOTEMPTY"},
    {errc::session_expired, -112, "ZSESSIONEXPIRED"},
    {errc::invalid_callback, -113, "ZINVALIDCALLBACK"},
    {errc::invalid_acl, -114, "ZINVALIDACL"},
    {errc::auth_failed, -115, "ZAUTHFAILED"},
    {errc::closing, -116, "ZCLOSING"},
    {errc::nothing, -117, "ZNOTHING"},
    {errc::session_moved, -118, "ZSESSIONMOVED"},
    {errc::not_read_only, -119, "ZNOTREADONLY"},
    {errc::ephemeral_on_local_session, -120, "ZEPHEMERALONLOCALSESSION"},
    {errc::no_watcher, -121, "ZNOWATCHER"},
    {errc::reconfig_disabled, -123, "ZRECONFIGDISABLED"},
    {errc::session_closed_require_sasl_auth, -124, "ZSESSIONCLOSEDREQUIRESASLAUTH"},
    {errc::quota_exceeded, -125, "QUOTAEXCEEDED (Java; not in the 3.8 C header)"},
    {errc::throttled, -127, "ZTHROTTLEDOP"},
    {errc::invalid_path, 1, "zkr"},
    {errc::data_too_large, 2, "zkr"},
    {errc::invalid_argument, 3, "zkr"},
    {errc::session_lost, 4, "zkr"},
    {errc::sequence_exhausted, 5, "zkr"},
};

TEST(error, codes_equal_zookeepers_numbers) {
  for (const code_row& row : all_codes) {
    EXPECT_EQ(static_cast<int>(row.e), row.zookeeper_value) << row.zookeeper_name;
    EXPECT_EQ(zkr::make_error_code(row.e).value(), row.zookeeper_value) << row.zookeeper_name;
  }
}

TEST(error, every_enumerator_is_listed) {
  std::set<int> values;
  for (const code_row& row : all_codes) values.insert(static_cast<int>(row.e));
  EXPECT_EQ(values.size(), all_codes.size()) << "duplicate value in the table";
  // The category names exactly the listed values: a value with a message of its own that is
  // missing from the table is an enumerator this test does not know about.
  for (int v = -1000; v <= 1000; ++v) {
    const bool named = zkr::category().message(v).rfind("unknown zkr error", 0) != 0;
    EXPECT_EQ(named, values.count(v) == 1) << "value " << v;
  }
  // ZooKeeper's server/API errors are negative; zkr's client-side ones positive.
  for (const code_row& row : all_codes) {
    if (std::string(row.zookeeper_name) == "zkr") {
      EXPECT_GT(static_cast<int>(row.e), 0);
    } else {
      EXPECT_LE(static_cast<int>(row.e), 0) << row.zookeeper_name;
    }
  }
}

TEST(error, every_enumerator_has_its_own_message) {
  // The category's fallback for values it does not know starts "unknown zkr error".
  const std::string fallback = "unknown zkr error";
  EXPECT_EQ(zkr::category().message(12345).rfind(fallback, 0), 0u);
  std::set<std::string> messages;
  for (const code_row& row : all_codes) {
    const std::string m = zkr::make_error_code(row.e).message();
    EXPECT_FALSE(m.empty()) << row.zookeeper_name;
    EXPECT_NE(m.rfind(fallback, 0), 0u) << row.zookeeper_name << " has no message of its own";
    EXPECT_TRUE(messages.insert(m).second) << row.zookeeper_name << " repeats: " << m;
  }
}

TEST(error, category_identity) {
  EXPECT_STREQ(zkr::category().name(), "zkr");
  EXPECT_EQ(&zkr::category(), &zkr::category());
  const std::error_code ec = errc::no_node;  // implicit through is_error_code_enum + ADL
  EXPECT_EQ(&ec.category(), &zkr::category());
  EXPECT_EQ(ec.value(), -101);
  static_assert(std::is_error_code_enum_v<errc>);
  EXPECT_FALSE(zkr::make_error_code(errc::ok)) << "ok must be falsy";
  EXPECT_TRUE(zkr::make_error_code(errc::no_node));
}

TEST(error, connection_loss_means_outcome_unknown) {
  EXPECT_TRUE(zkr::outcome_unknown(errc::connection_loss));
  EXPECT_TRUE(zkr::outcome_unknown(errc::operation_timeout));
  EXPECT_TRUE(zkr::retryable(errc::connection_loss));
}

TEST(error, throttled_means_not_executed) {
  // Throttled: the server did not run the request, so the outcome is known and a retry is
  // always safe; connection loss: the outcome is unknown.
  EXPECT_FALSE(zkr::outcome_unknown(errc::throttled));
  EXPECT_TRUE(zkr::retryable(errc::throttled));
  EXPECT_NE(zkr::make_error_code(errc::throttled), zkr::make_error_code(errc::connection_loss));
}

TEST(error, definite_results_are_neither_unknown_nor_retryable) {
  for (const errc e : {errc::ok, errc::no_node, errc::node_exists, errc::bad_version, errc::not_empty,
                       errc::no_auth, errc::invalid_acl, errc::session_expired, errc::invalid_path,
                       errc::data_too_large, errc::invalid_argument}) {
    EXPECT_FALSE(zkr::outcome_unknown(e)) << zkr::make_error_code(e).message();
    EXPECT_FALSE(zkr::retryable(e)) << zkr::make_error_code(e).message();
  }
  EXPECT_TRUE(zkr::retryable(errc::session_moved));
  EXPECT_FALSE(zkr::outcome_unknown(std::error_code{}));
}

TEST(error, predicates_ignore_other_categories) {
  // -4 in another category is not connection loss.
  const std::error_code foreign(-4, std::generic_category());
  EXPECT_FALSE(zkr::outcome_unknown(foreign));
  EXPECT_FALSE(zkr::retryable(foreign));
  EXPECT_NE(foreign, errc::connection_loss);
}

TEST(error, from_zk_code_maps_one_to_one) {
  EXPECT_FALSE(zkr::from_zk_code(0));
  for (const code_row& row : all_codes) {
    if (row.zookeeper_value >= 0) continue;  // only ZooKeeper's codes come from the C client
    const std::error_code ec = zkr::from_zk_code(row.zookeeper_value);
    EXPECT_EQ(ec, row.e) << row.zookeeper_name;
    EXPECT_EQ(&ec.category(), &zkr::category());
  }
  EXPECT_EQ(zkr::from_zk_code(-101), errc::no_node);
  EXPECT_EQ(zkr::from_zk_code(-127), errc::throttled);
  // A code zkr does not name keeps its value and gets a generic message.
  const std::error_code unknown = zkr::from_zk_code(-12);  // Java's UNKNOWNSESSION
  EXPECT_EQ(unknown.value(), -12);
  EXPECT_EQ(unknown.message().rfind("unknown zkr error", 0), 0u);
}

TEST(error, portable_conditions) {
  EXPECT_EQ(zkr::make_error_code(errc::invalid_path), std::errc::invalid_argument);
  EXPECT_EQ(zkr::make_error_code(errc::invalid_argument), std::errc::invalid_argument);
  EXPECT_EQ(zkr::make_error_code(errc::bad_arguments), std::errc::invalid_argument);
  EXPECT_EQ(zkr::make_error_code(errc::data_too_large), std::errc::message_size);
  EXPECT_EQ(zkr::make_error_code(errc::operation_timeout), std::errc::timed_out);
  // The condition is shared; the codes stay distinct.
  EXPECT_NE(zkr::make_error_code(errc::invalid_path), zkr::make_error_code(errc::invalid_argument));
  // Codes without a portable equivalent map to themselves.
  const std::error_condition cond = zkr::make_error_code(errc::no_node).default_error_condition();
  EXPECT_EQ(&cond.category(), &zkr::category());
  EXPECT_EQ(cond.value(), -101);
  EXPECT_NE(zkr::make_error_code(errc::no_node), std::errc::invalid_argument);
  EXPECT_NE(zkr::make_error_code(errc::connection_loss), std::errc::timed_out);
}

}  // namespace
