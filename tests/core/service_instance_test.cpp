// Goal: zkr writes a service instance exactly as Curator 5.4 writes it (the same bytes), and
// reads what Curator writes (and what it reads) to the same values.
// Method: golden bytes produced by running Curator 5.4 itself (Debian's libcurator-discovery-
// java 5.4.0 with Jackson 2.14 on OpenJDK 17; tests/core/curator_golden/CuratorGolden.java
// prints them, with the command to run it): to_json must reproduce each byte for byte,
// from_json must read each back to the instance it came from. The texts Curator's reader was
// fed in CuratorGolden.java, with what it made of them, are checked here against from_json.
// Malformed records are table-driven: each gives an error naming the field.
#include <zkr/recipes/service_instance.hpp>

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace {

using zkr::json::value;
using zkr::recipes::from_json;
using zkr::recipes::service_instance;
using zkr::recipes::service_type;
using zkr::recipes::to_json;
using zkr::recipes::uri_spec;

// ---- bytes written by Curator 5.4 (CuratorGolden.java) --------------------------------------
const std::string sample_default =
    "{\"name\":\"orders\",\"id\":\"6f1c2d4e-8a9b-4c3d-9e8f-0a1b2c3d4e5f\",\"address\":\"10.0.0.7\",\"port\":8080,\"sslPort\":null,\"payload\":{\"@class\":\"java.util.LinkedHashMap\",\"zone\":\"eu-west-1a\",\"weight\":10,\"big\":123456789012,\"ratio\":0.25,\"tags\":[\"a\",\"b\"],\"on\":true,\"none\":null},\"registrationTimeUTC\":1577836800123,\"serviceType\":\"DYNAMIC\",\"uriSpec\":{\"parts\":[{\"value\":\"scheme\",\"variable\":true},{\"value\":\"://\",\"variable\":false},{\"value\":\"address\",\"variable\":true},{\"value\":\":\",\"variable\":false},{\"value\":\"port\",\"variable\":true},{\"value\":\"/api\",\"variable\":false}]}}";
const std::string sample_with_enabled =
    "{\"name\":\"orders\",\"id\":\"6f1c2d4e-8a9b-4c3d-9e8f-0a1b2c3d4e5f\",\"address\":\"10.0.0.7\",\"port\":8080,\"sslPort\":null,\"payload\":{\"@class\":\"java.util.LinkedHashMap\",\"zone\":\"eu-west-1a\",\"weight\":10,\"big\":123456789012,\"ratio\":0.25,\"tags\":[\"a\",\"b\"],\"on\":true,\"none\":null},\"registrationTimeUTC\":1577836800123,\"serviceType\":\"DYNAMIC\",\"uriSpec\":{\"parts\":[{\"value\":\"scheme\",\"variable\":true},{\"value\":\"://\",\"variable\":false},{\"value\":\"address\",\"variable\":true},{\"value\":\":\",\"variable\":false},{\"value\":\"port\",\"variable\":true},{\"value\":\"/api\",\"variable\":false}]},\"enabled\":true}";
const std::string payload_null =
    "{\"name\":\"s\",\"id\":\"i\",\"address\":null,\"port\":null,\"sslPort\":8443,\"payload\":null,\"registrationTimeUTC\":0,\"serviceType\":\"STATIC\",\"uriSpec\":null,\"enabled\":false}";
const std::string payload_string =
    "{\"name\":\"s\",\"id\":\"i\",\"address\":null,\"port\":null,\"sslPort\":8443,\"payload\":\"hello\",\"registrationTimeUTC\":0,\"serviceType\":\"STATIC\",\"uriSpec\":null,\"enabled\":false}";
const std::string payload_integer =
    "{\"name\":\"s\",\"id\":\"i\",\"address\":null,\"port\":null,\"sslPort\":8443,\"payload\":42,\"registrationTimeUTC\":0,\"serviceType\":\"STATIC\",\"uriSpec\":null,\"enabled\":false}";
const std::string payload_long =
    "{\"name\":\"s\",\"id\":\"i\",\"address\":null,\"port\":null,\"sslPort\":8443,\"payload\":[\"java.lang.Long\",123456789012],\"registrationTimeUTC\":0,\"serviceType\":\"STATIC\",\"uriSpec\":null,\"enabled\":false}";
const std::string payload_double =
    "{\"name\":\"s\",\"id\":\"i\",\"address\":null,\"port\":null,\"sslPort\":8443,\"payload\":1.5,\"registrationTimeUTC\":0,\"serviceType\":\"STATIC\",\"uriSpec\":null,\"enabled\":false}";
const std::string payload_boolean =
    "{\"name\":\"s\",\"id\":\"i\",\"address\":null,\"port\":null,\"sslPort\":8443,\"payload\":true,\"registrationTimeUTC\":0,\"serviceType\":\"STATIC\",\"uriSpec\":null,\"enabled\":false}";
const std::string payload_list =
    "{\"name\":\"s\",\"id\":\"i\",\"address\":null,\"port\":null,\"sslPort\":8443,\"payload\":[\"java.util.ArrayList\",[1,\"x\"]],\"registrationTimeUTC\":0,\"serviceType\":\"STATIC\",\"uriSpec\":null,\"enabled\":false}";
const std::string payload_double_1e10 =
    "{\"name\":\"s\",\"id\":\"i\",\"address\":null,\"port\":null,\"sslPort\":8443,\"payload\":1.0E10,\"registrationTimeUTC\":0,\"serviceType\":\"STATIC\",\"uriSpec\":null,\"enabled\":false}";
const std::string payload_double_0_001 =
    "{\"name\":\"s\",\"id\":\"i\",\"address\":null,\"port\":null,\"sslPort\":8443,\"payload\":0.001,\"registrationTimeUTC\":0,\"serviceType\":\"STATIC\",\"uriSpec\":null,\"enabled\":false}";
const std::string payload_double_9_99e_4 =
    "{\"name\":\"s\",\"id\":\"i\",\"address\":null,\"port\":null,\"sslPort\":8443,\"payload\":9.99E-4,\"registrationTimeUTC\":0,\"serviceType\":\"STATIC\",\"uriSpec\":null,\"enabled\":false}";
const std::string payload_double_minus_zero =
    "{\"name\":\"s\",\"id\":\"i\",\"address\":null,\"port\":null,\"sslPort\":8443,\"payload\":-0.0,\"registrationTimeUTC\":0,\"serviceType\":\"STATIC\",\"uriSpec\":null,\"enabled\":false}";
const std::string payload_double_1e_5 =
    "{\"name\":\"s\",\"id\":\"i\",\"address\":null,\"port\":null,\"sslPort\":8443,\"payload\":1.0E-5,\"registrationTimeUTC\":0,\"serviceType\":\"STATIC\",\"uriSpec\":null,\"enabled\":false}";
const std::string payload_empty_map =
    "{\"name\":\"s\",\"id\":\"i\",\"address\":null,\"port\":null,\"sslPort\":8443,\"payload\":{\"@class\":\"java.util.LinkedHashMap\"},\"registrationTimeUTC\":0,\"serviceType\":\"STATIC\",\"uriSpec\":null,\"enabled\":false}";
const std::string escapes =
    "{\"name\":\"n\\\"\\\\/\\b\\f\\n\\r\\t\\u0001\\u001F\x7f" "\xc3" "\xa9" "\xe2" "\x82" "\xac" "\\uD83D\\uDE00<>&'\",\"id\":\"id\",\"address\":\"::1\",\"port\":-1,\"sslPort\":2147483647,\"payload\":null,\"registrationTimeUTC\":-5,\"serviceType\":\"DYNAMIC_SEQUENTIAL\",\"uriSpec\":{\"parts\":[{\"value\":\"a\",\"variable\":true},{\"value\":\"b\",\"variable\":true},{\"value\":\"lit\",\"variable\":false},{\"value\":\"[\",\"variable\":true},{\"value\":\"x\",\"variable\":false},{\"value\":\"]\",\"variable\":true}]},\"enabled\":true}";
const std::string null_service_type =
    "{\"name\":\"s\",\"id\":\"i\",\"address\":null,\"port\":null,\"sslPort\":null,\"payload\":null,\"registrationTimeUTC\":7,\"serviceType\":null,\"uriSpec\":null}";

// ---------------------------------------------------------------------------------------------

service_instance sample() {
  service_instance i;
  i.name = "orders";
  i.id = "6f1c2d4e-8a9b-4c3d-9e8f-0a1b2c3d4e5f";
  i.address = "10.0.0.7";
  i.port = 8080;
  i.payload = value::object_type{{"zone", "eu-west-1a"},
                                 {"weight", 10},
                                 {"big", std::int64_t{123456789012}},
                                 {"ratio", 0.25},
                                 {"tags", value::array_type{"a", "b"}},
                                 {"on", true},
                                 {"none", nullptr}};
  i.registration_time_utc = 1577836800123;
  i.type = service_type::dynamic;
  i.uri = uri_spec::parse("{scheme}://{address}:{port}/api");
  return i;
}

service_instance with_payload(value payload) {
  service_instance i;
  i.name = "s";
  i.id = "i";
  i.ssl_port = 8443;
  i.payload = std::move(payload);
  i.type = service_type::static_;
  i.enabled = false;
  return i;
}

std::string written(const service_instance& i, bool with_enabled) {
  const auto r = to_json(i, {.write_enabled = with_enabled});
  EXPECT_TRUE(r.ok()) << r.error;
  return r.text;
}

TEST(service_instance, writes_the_bytes_curator_writes_for_a_sample_instance) {
  EXPECT_EQ(written(sample(), false), sample_default);  // Curator's default serializer
  EXPECT_EQ(written(sample(), true), sample_with_enabled);
}

TEST(service_instance, reads_curators_bytes_back_to_the_same_instance) {
  for (const auto* text : {&sample_default, &sample_with_enabled}) {
    const auto r = from_json(*text);
    ASSERT_TRUE(r.ok()) << r.error;
    auto expected = sample();
    expected.payload_class = "java.util.LinkedHashMap";  // read from the type id
    EXPECT_EQ(r.instance, expected);
    EXPECT_EQ(r.instance.build_uri(), "http://10.0.0.7:8080/api");  // Curator's buildUriSpec()
    // And written again, the bytes do not change.
    EXPECT_EQ(written(r.instance, text == &sample_with_enabled), *text);
  }
}

struct payload_case {
  const char* what;
  value payload;
  const std::string& golden;
  std::string class_read;  // payload_class after reading the golden back
};

TEST(service_instance, payload_type_ids_are_jacksons) {
  const std::vector<payload_case> cases = {
      {"null", nullptr, payload_null, ""},
      {"string (natural: untagged)", "hello", payload_string, ""},
      {"int32 (natural: untagged)", 42, payload_integer, ""},
      {"beyond int32: java.lang.Long wrapper", std::int64_t{123456789012}, payload_long, "java.lang.Long"},
      {"double (natural)", 1.5, payload_double, ""},
      {"boolean (natural)", true, payload_boolean, ""},
      {"array: java.util.ArrayList wrapper", value::array_type{1, "x"}, payload_list, "java.util.ArrayList"},
      {"1e10", 1e10, payload_double_1e10, ""},
      {"0.001", 0.001, payload_double_0_001, ""},
      {"9.99e-4", 9.99e-4, payload_double_9_99e_4, ""},
      {"-0.0", -0.0, payload_double_minus_zero, ""},
      {"1e-5", 1e-5, payload_double_1e_5, ""},
      {"empty object: @class only", value::object_type{}, payload_empty_map, "java.util.LinkedHashMap"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    const auto inst = with_payload(c.payload);
    EXPECT_EQ(written(inst, true), c.golden);
    const auto r = from_json(c.golden);
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.instance.payload, c.payload);
    EXPECT_EQ(r.instance.payload_class, c.class_read);
    EXPECT_EQ(written(r.instance, true), c.golden);  // stable through a read
  }
}

TEST(service_instance, escapes_limits_and_every_service_type_as_curator_writes_them) {
  service_instance e;
  e.name = "n\"\\/\b\f\n\r\t\x01\x1f\x7f\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80<>&'";
  e.id = "id";
  e.address = "::1";
  e.port = -1;
  e.ssl_port = 2147483647;
  e.registration_time_utc = -5;
  e.type = service_type::dynamic_sequential;
  e.uri = uri_spec::parse("{a}{b}lit{[}x{]}");
  EXPECT_EQ(written(e, true), escapes);
  const auto r = from_json(escapes);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.instance, e);
  EXPECT_EQ(e.uri->build(&e), "lit{x}");  // {a} and {b} are unknown: left out

  service_instance n;
  n.name = "s";
  n.id = "i";
  n.registration_time_utc = 7;
  n.type.reset();
  EXPECT_EQ(written(n, false), null_service_type);
  const auto rn = from_json(null_service_type);
  ASSERT_TRUE(rn.ok()) << rn.error;
  EXPECT_EQ(rn.instance, n);
}

TEST(service_instance, reads_what_curators_reader_reads) {
  // Each text and what Curator 5.4's JsonInstanceSerializer made of it (CuratorGolden.java).
  auto r = from_json(
      R"({"name":"s","id":"i","payload":{"k":1},"registrationTimeUTC":5,"serviceType":"DYNAMIC","enabled":false})");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.instance.payload, value(value::object_type{{"k", 1}}));
  EXPECT_EQ(r.instance.payload_class, "");  // untagged: Jackson's defaultImpl, a LinkedHashMap
  EXPECT_FALSE(r.instance.enabled);
  EXPECT_EQ(r.instance.registration_time_utc, 5);
  EXPECT_FALSE(r.instance.address.has_value());

  r = from_json(R"({"name":"s","id":"i","payload":"str","serviceType":"DYNAMIC"})");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.instance.payload, value("str"));
  EXPECT_TRUE(r.instance.enabled);  // missing: true
  EXPECT_EQ(r.instance.registration_time_utc, 0);

  r = from_json(R"({"name":"s","id":"i","payload":["java.lang.Long",7]})");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.instance.payload, value(7));
  EXPECT_EQ(r.instance.payload_class, "java.lang.Long");
  EXPECT_EQ(r.instance.type, service_type::dynamic);  // missing: DYNAMIC

  // The type id need not come first; unknown members are ignored.
  r = from_json(R"({"payload":{"k":1,"@class":"java.util.LinkedHashMap"},"name":"s","id":"i","unknown":[1]})");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.instance.payload_class, "java.util.LinkedHashMap");
  EXPECT_EQ(r.instance.payload, value(value::object_type{{"k", 1}}));

  r = from_json(
      R"({"name":"s","id":"i","uriSpec":{"parts":[{"value":"scheme","variable":true},{"value":"://x","variable":false}]}})");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.instance.build_uri(), "http://x");  // Curator: "http://x"

  // A POJO payload keeps its class, so it can be written back for Java readers.
  r = from_json(R"({"name":"s","id":"i","payload":{"@class":"com.example.InstanceDetails","zone":"a"}})");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.instance.payload_class, "com.example.InstanceDetails");
  EXPECT_NE(written(r.instance, false).find(R"("payload":{"@class":"com.example.InstanceDetails","zone":"a"})"),
            std::string::npos);
}

struct bad_record {
  std::string text;
  std::string error;
};

TEST(service_instance, malformed_records_give_an_error_naming_the_field) {
  const std::vector<bad_record> cases = {
      {"", "invalid JSON: unexpected end of input (expected a value) at byte 0"},
      {"{\"name\":\"s\",", "invalid JSON: unterminated object at byte 12"},
      {"[1]", "expected a JSON object, got array"},
      {R"({"name":1})", "name: expected a string, got integer"},
      {R"({"id":null})", "id: expected a string, got null"},
      {R"({"address":5})", "address: expected a string or null, got integer"},
      {R"({"port":"8080"})", "port: expected an integer or null, got string"},
      {R"({"port":8080.0})", "port: expected an integer or null, got real"},
      {R"({"sslPort":2147483648})", "sslPort: out of the 32-bit range"},
      {R"({"registrationTimeUTC":"5"})", "registrationTimeUTC: expected an integer, got string"},
      {R"({"serviceType":"dynamic"})", "serviceType: unknown service type \"dynamic\""},
      {R"({"serviceType":3})", "serviceType: expected a string or null, got integer"},
      {R"({"enabled":"yes"})", "enabled: expected a boolean, got string"},
      {R"({"uriSpec":"x"})", "uriSpec: expected an object or null, got string"},
      {R"({"uriSpec":{"parts":{}}})", "uriSpec.parts: expected an array, got object"},
      {R"({"uriSpec":{"parts":[1]}})", "uriSpec.parts: expected objects, got integer"},
      {R"({"uriSpec":{"parts":[{"value":1}]}})", "uriSpec.parts.value: expected a string, got integer"},
      {R"({"uriSpec":{"parts":[{"variable":"t"}]}})", "uriSpec.parts.variable: expected a boolean, got string"},
      {R"({"payload":[1,2]})", "payload: an array payload must be Jackson's wrapper [\"<java class>\", value]"},
      {R"({"payload":["a"]})", "payload: an array payload must be Jackson's wrapper [\"<java class>\", value]"},
      {R"({"payload":{"@class":1}})", "payload.@class: expected a string, got integer"},
      {"{\"name\":\"\xff\"}", "invalid JSON: invalid UTF-8 in string at byte 9"},
  };
  for (const auto& c : cases) {
    const auto r = from_json(c.text);
    EXPECT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.error, c.error) << c.text;
    EXPECT_EQ(r.instance, service_instance{}) << c.text;  // nothing half-read leaks out
  }
  // Jackson's primitive defaults for null.
  const auto r = from_json(R"({"registrationTimeUTC":null,"enabled":null})");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.instance.registration_time_utc, 0);
  EXPECT_FALSE(r.instance.enabled);
}

TEST(service_instance, unwritable_instances_give_an_error) {
  auto i = with_payload(value::object_type{{"@class", "x"}});
  auto r = to_json(i);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.error, "payload: an object payload must not have a member \"@class\" (set payload_class instead)");
  i = with_payload(std::nan(""));
  EXPECT_EQ(to_json(i).error, "a non-finite number (NaN or infinity) cannot be written as JSON");
  i = with_payload(nullptr);
  i.name = "\xc3";
  EXPECT_EQ(to_json(i).error, "a string is not valid UTF-8");
  EXPECT_TRUE(to_json(i).text.empty());
}

TEST(service_instance, payload_class_overrides_the_natural_type) {
  auto i = with_payload("RED");
  i.payload_class = "com.example.Color";
  EXPECT_NE(written(i, false).find(R"("payload":["com.example.Color","RED"])"), std::string::npos);
  i = with_payload(value::object_type{{"a", 1}});
  i.payload_class = "com.example.Details";
  EXPECT_NE(written(i, false).find(R"("payload":{"@class":"com.example.Details","a":1})"), std::string::npos);
  i = with_payload(5);
  i.payload_class = "java.lang.Long";
  EXPECT_NE(written(i, false).find(R"("payload":["java.lang.Long",5])"), std::string::npos);
}

TEST(uri_spec, parses_and_builds_as_curator) {
  auto s = uri_spec::parse("{scheme}://foo.com:{ port }/{}x{[}");
  ASSERT_TRUE(s);
  const std::vector<zkr::recipes::uri_part> expected = {
      {"scheme", true}, {"://foo.com:", false}, {"port", true}, {"/", false}, {"x", false}, {"[", true}};
  EXPECT_EQ(s->parts, expected);
  EXPECT_EQ(s->build(nullptr), "http://foo.com:/x{");
  service_instance i;
  i.port = 81;
  i.ssl_port = 443;
  EXPECT_EQ(s->build(&i), "https://foo.com:81/x{");
  EXPECT_EQ(s->build(&i, {{"port", "9"}}), "https://foo.com:9/x{");
  i.type = service_type::dynamic_sequential;
  EXPECT_EQ(uri_spec::parse("{service-type}")->build(&i), "dynamic_sequential");

  std::string err;
  EXPECT_FALSE(uri_spec::parse("{a{b}}", &err));
  EXPECT_EQ(err, "{ is not allowed inside of a variable specification");
  EXPECT_FALSE(uri_spec::parse("a}", &err));
  EXPECT_EQ(err, "} must be preceded by {");
  EXPECT_FALSE(uri_spec::parse("{a", &err));
  EXPECT_EQ(err, "Final variable not closed - expected }");
  EXPECT_TRUE(uri_spec::parse("")->parts.empty());
}

}  // namespace
