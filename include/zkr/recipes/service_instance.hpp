// zkr/recipes/service_instance.hpp: Curator's service-discovery record (curator-x-discovery
// ServiceInstance, UriSpec, ServiceType) and its JSON form, byte for byte as Curator 5.4's
// JsonInstanceSerializer (Jackson 2.x) writes it and as it reads it.
//
// Znode layout (ServiceDiscoveryImpl): `<base path>/<service name>/<instance id>`, the
// instance's JSON as the node's data. A registered instance of type DYNAMIC is an ephemeral
// node (zkr/recipes/service_discovery.hpp).
//
// The JSON, in Jackson's property order (the fields' declaration order), compact:
//
//   {"name":"orders","id":"6f1c...","address":"10.0.0.7","port":8080,"sslPort":null,
//    "payload":{"@class":"java.util.LinkedHashMap","zone":"eu-west-1a"},
//    "registrationTimeUTC":1577836800123,"serviceType":"DYNAMIC",
//    "uriSpec":{"parts":[{"value":"scheme","variable":true},{"value":"://","variable":false}]}}
//
// followed by `,"enabled":true` only when `write_enabled` is set: Curator 5.4's default
// serializer (`new JsonInstanceSerializer<>(payloadClass)`, which ServiceDiscoveryBuilder
// uses) runs in "compatible serialization mode" (CURATOR-275) and leaves `enabled` out, so
// that pre-2.10 readers do not fail on an unknown property; `new JsonInstanceSerializer<>(
// payloadClass, false)` writes it. Readers treat a missing `enabled` as true.
//
// The payload carries Jackson's type id (`@JsonTypeInfo(use = CLASS)` on getPayload()):
//   - an object as a property: {"@class":"java.util.LinkedHashMap", ...members} (the class
//     defaults to java.util.LinkedHashMap, which a Java reader with payload class Map or
//     Object accepts; set `payload_class` for a POJO such as com.example.InstanceDetails);
//   - Jackson's "natural" types untagged: a string (java.lang.String), an integer that fits
//     32 bits (java.lang.Integer), a finite double (java.lang.Double), a boolean;
//   - anything else as a wrapper array [class, value]: ["java.lang.Long",123456789012],
//     ["java.util.ArrayList",[1,"x"]].
// These forms were checked against Curator 5.4 itself (Debian's jars): tests/core/
// service_instance_test.cpp holds the bytes it wrote.
//
// Reading follows Curator's reader (FAIL_ON_UNKNOWN_PROPERTIES off): unknown members are
// ignored, missing ones take ServiceInstance()'s defaults (name "", id "", no address/ports/
// payload/uriSpec, time 0, DYNAMIC, enabled). It is stricter than Jackson on types: where
// Jackson would coerce ("8080" for a port, 8080.0, a string time), zkr reports an error naming
// the field. Invalid JSON is an error with its byte offset, never a crash.
//
// Thread safety: plain values and pure functions.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <zkr/detail/json.hpp>

namespace zkr::recipes {

/// Curator's ServiceType. DYNAMIC instances are ephemeral nodes; the others are only read by
/// zkr (Curator writes STATIC and PERMANENT as persistent nodes, DYNAMIC_SEQUENTIAL as
/// ephemeral sequential ones).
enum class service_type { dynamic, static_, permanent, dynamic_sequential };

/// The JSON name: "DYNAMIC", "STATIC", "PERMANENT", "DYNAMIC_SEQUENTIAL".
constexpr std::string_view to_string(service_type t) noexcept {
  switch (t) {
    case service_type::dynamic: return "DYNAMIC";
    case service_type::static_: return "STATIC";
    case service_type::permanent: return "PERMANENT";
    case service_type::dynamic_sequential: return "DYNAMIC_SEQUENTIAL";
  }
  return "?";
}

/// One token of a uri spec: literal text, or the name of a replacement field.
struct uri_part {
  std::string value;
  bool variable = false;
  friend bool operator==(const uri_part&, const uri_part&) = default;
};

struct service_instance;

/// Curator's UriSpec: "{scheme}://{address}:{port}/api" as a list of parts.
struct uri_spec {
  std::vector<uri_part> parts;

  /// Parses a raw spec as Curator's UriSpec(String) does: text between '{' and '}' is a
  /// variable (trimmed of spaces), empty tokens vanish ("{}" adds nothing). Returns nullopt
  /// and sets `*error` for a '{' inside a variable, a '}' without '{', or an unclosed '{'.
  static std::optional<uri_spec> parse(std::string_view raw, std::string* error = nullptr);

  /// Builds the URI as Curator's UriSpec.build(instance, variables): predefined fields
  /// scheme ("http", "https" if the instance has an sslPort), name, id, address, port,
  /// ssl-port, registration-time-utc, service-type (lower case), "[" -> "{", "]" -> "}";
  /// `variables` override them; an unknown variable is left out. `inst` may be null.
  std::string build(const service_instance* inst, const std::map<std::string, std::string>& variables = {}) const;

  friend bool operator==(const uri_spec&, const uri_spec&) = default;
};

/// One registered instance of a service (Curator's ServiceInstance<T>).
struct service_instance {
  std::string name;                             ///< the service; a znode name under the base path
  std::string id;                               ///< unique per service; a znode name
  std::optional<std::string> address;           ///< null in JSON if empty
  std::optional<std::int32_t> port;             ///< Java Integer: null or a 32-bit value
  std::optional<std::int32_t> ssl_port;
  json::value payload;                          ///< null: no payload
  std::string payload_class;                    ///< Java class of the payload; "" = natural (see file comment)
  std::int64_t registration_time_utc = 0;       ///< ms since the epoch (the registrar's wall clock)
  std::optional<service_type> type = service_type::dynamic;  ///< nullopt: JSON null
  std::optional<uri_spec> uri;                  ///< null in JSON if absent
  bool enabled = true;                          ///< disabled instances are never selected

  /// `uri->build(this, variables)`, or "" without a uri spec (Curator's buildUriSpec).
  std::string build_uri(const std::map<std::string, std::string>& variables = {}) const {
    return uri ? uri->build(this, variables) : std::string();
  }

  friend bool operator==(const service_instance&, const service_instance&) = default;
};

/// How instances are written.
struct serializer_options {
  /// Write the `enabled` property (Curator's JsonInstanceSerializer(cls, false)). Off by
  /// default, as Curator 5.4's default serializer (compatible mode) leaves it out.
  bool write_enabled = false;
};

/// The JSON text of an instance, or why it cannot be written.
struct serialize_result {
  std::string text;
  std::string error;  ///< empty on success, e.g. "payload: an object payload must not have a member \"@class\""
  bool ok() const noexcept { return error.empty(); }
};

/// An instance read from JSON, or why it could not be read.
struct deserialize_result {
  service_instance instance;
  std::string error;  ///< empty on success, e.g. "port: expected an integer or null, got string"
  bool ok() const noexcept { return error.empty(); }
};

/// Writes `inst` as Curator's JsonInstanceSerializer does (see the file comment). Errors:
/// a string that is not valid UTF-8, a non-finite payload number, an object payload that has
/// its own "@class" member. Throws only std::bad_alloc.
serialize_result to_json(const service_instance& inst, const serializer_options& opts = {});

/// Reads an instance as Curator's JsonInstanceSerializer does (see the file comment). Never
/// throws but std::bad_alloc; every malformed input gives an error naming the field or the
/// byte offset.
deserialize_result from_json(std::string_view text);

// -------------------------------------------------------------------------------------------
// Implementation
// -------------------------------------------------------------------------------------------

inline std::optional<uri_spec> uri_spec::parse(std::string_view raw, std::string* error) {
  uri_spec spec;
  bool inside = false;
  std::size_t i = 0;
  auto set_error = [&](const char* what) {
    if (error != nullptr) *error = what;
    return std::nullopt;
  };
  while (i < raw.size()) {
    const char c = raw[i];
    if (c == '{') {
      if (inside) return set_error("{ is not allowed inside of a variable specification");
      inside = true;
      ++i;
      continue;
    }
    if (c == '}') {
      if (!inside) return set_error("} must be preceded by {");
      inside = false;
      ++i;
      continue;
    }
    const std::size_t end = raw.find_first_of("{}", i);
    std::string token(raw.substr(i, end == std::string_view::npos ? std::string_view::npos : end - i));
    i = end == std::string_view::npos ? raw.size() : end;
    if (inside) {
      // Java's String.trim(): strips every character <= U+0020 at both ends.
      std::size_t b = 0, e = token.size();
      while (b < e && static_cast<unsigned char>(token[b]) <= 0x20) ++b;
      while (e > b && static_cast<unsigned char>(token[e - 1]) <= 0x20) --e;
      token = token.substr(b, e - b);
    }
    spec.parts.push_back({std::move(token), inside});
  }
  if (inside) return set_error("Final variable not closed - expected }");
  return spec;
}

inline std::string uri_spec::build(const service_instance* inst,
                                   const std::map<std::string, std::string>& variables) const {
  std::map<std::string, std::string> local{{"[", "{"}, {"]", "}"}, {"scheme", "http"}};
  if (inst != nullptr) {
    const auto opt_int = [](const std::optional<std::int32_t>& v) { return v ? std::to_string(*v) : std::string(); };
    local["name"] = inst->name;
    local["id"] = inst->id;
    local["address"] = inst->address.value_or("");
    local["port"] = opt_int(inst->port);
    local["ssl-port"] = opt_int(inst->ssl_port);
    local["registration-time-utc"] = std::to_string(inst->registration_time_utc);
    std::string type;
    if (inst->type) {
      for (char ch : to_string(*inst->type)) type += static_cast<char>(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
    }
    local["service-type"] = type;
    if (inst->ssl_port) local["scheme"] = "https";
  }
  for (const auto& [k, v] : variables) local[k] = v;
  std::string out;
  for (const auto& p : parts) {
    if (!p.variable) {
      out += p.value;
    } else if (auto it = local.find(p.value); it != local.end()) {
      out += it->second;
    }
  }
  return out;
}

namespace detail {

inline constexpr std::string_view java_linked_hash_map = "java.util.LinkedHashMap";
inline constexpr std::string_view java_string = "java.lang.String";
inline constexpr std::string_view java_integer = "java.lang.Integer";
inline constexpr std::string_view java_long = "java.lang.Long";
inline constexpr std::string_view java_double = "java.lang.Double";
inline constexpr std::string_view java_boolean = "java.lang.Boolean";
inline constexpr std::string_view java_array_list = "java.util.ArrayList";

/// The payload as Jackson writes it with its type id; sets `error` if it cannot be.
inline json::value tagged_payload(const service_instance& inst, std::string& error) {
  const json::value& p = inst.payload;
  const std::string& cls = inst.payload_class;
  auto natural = [&](std::string_view natural_class) { return cls.empty() || cls == natural_class; };
  auto wrapped = [&](std::string_view default_class) {
    return json::value(json::value::array_type{json::value(cls.empty() ? std::string(default_class) : cls), p});
  };
  switch (p.type()) {
    case json::kind::null: return p;
    case json::kind::object: {
      json::value::object_type members;
      members.reserve(p.if_object()->size() + 1);
      members.push_back({"@class", json::value(cls.empty() ? std::string(java_linked_hash_map) : cls)});
      for (const auto& m : *p.if_object()) {
        if (m.key == "@class") {
          error = "payload: an object payload must not have a member \"@class\" (set payload_class instead)";
          return {};
        }
        members.push_back(m);
      }
      return json::value(std::move(members));
    }
    case json::kind::string: return natural(java_string) ? p : wrapped(java_string);
    case json::kind::boolean: return natural(java_boolean) ? p : wrapped(java_boolean);
    case json::kind::real: return natural(java_double) ? p : wrapped(java_double);
    case json::kind::integer: {
      const std::int64_t v = *p.if_integer();
      const bool fits_int = v >= std::numeric_limits<std::int32_t>::min() && v <= std::numeric_limits<std::int32_t>::max();
      return fits_int && natural(java_integer) ? p : wrapped(java_long);
    }
    case json::kind::array: return wrapped(java_array_list);
  }
  error = "payload: unknown value kind";
  return {};
}

inline json::value opt_string(const std::optional<std::string>& s) { return s ? json::value(*s) : json::value(); }
inline json::value opt_int(const std::optional<std::int32_t>& i) { return i ? json::value(*i) : json::value(); }

inline std::string got(const json::value& v) { return std::string(json::to_string(v.type())); }

}  // namespace detail

inline serialize_result to_json(const service_instance& inst, const serializer_options& opts) {
  serialize_result r;
  json::value::object_type o;
  o.reserve(11);
  o.push_back({"name", inst.name});
  o.push_back({"id", inst.id});
  o.push_back({"address", detail::opt_string(inst.address)});
  o.push_back({"port", detail::opt_int(inst.port)});
  o.push_back({"sslPort", detail::opt_int(inst.ssl_port)});
  o.push_back({"payload", detail::tagged_payload(inst, r.error)});
  if (!r.error.empty()) return r;
  o.push_back({"registrationTimeUTC", inst.registration_time_utc});
  o.push_back({"serviceType", inst.type ? json::value(to_string(*inst.type)) : json::value()});
  if (inst.uri) {
    json::value::array_type parts;
    parts.reserve(inst.uri->parts.size());
    for (const auto& p : inst.uri->parts) {
      parts.push_back(json::value::object_type{{"value", p.value}, {"variable", p.variable}});
    }
    o.push_back({"uriSpec", json::value::object_type{{"parts", std::move(parts)}}});
  } else {
    o.push_back({"uriSpec", nullptr});
  }
  if (opts.write_enabled) o.push_back({"enabled", inst.enabled});
  auto w = json::write(json::value(std::move(o)));
  if (!w.ok()) {
    r.error = w.err.message;
    return r;
  }
  r.text = std::move(w.text);
  return r;
}

inline deserialize_result from_json(std::string_view text) {
  deserialize_result r;
  auto parsed = json::parse(text);
  if (!parsed.ok()) {
    r.error = "invalid JSON: " + parsed.err.what();
    return r;
  }
  const auto* obj = parsed.val.if_object();
  if (obj == nullptr) {
    r.error = "expected a JSON object, got " + detail::got(parsed.val);
    return r;
  }
  service_instance& inst = r.instance;
  inst.type = service_type::dynamic;  // ServiceInstance()'s defaults for what is missing
  auto fail = [&](std::string_view field, std::string what) {
    r.error = std::string(field) + ": " + std::move(what);
    r.instance = {};
    return std::move(r);
  };
  for (const auto& [key, v] : *obj) {
    if (key == "name" || key == "id") {
      if (!v.is_string()) return fail(key, "expected a string, got " + detail::got(v));
      (key == "name" ? inst.name : inst.id) = *v.if_string();
    } else if (key == "address") {
      if (v.is_null()) {
        inst.address.reset();
      } else if (v.is_string()) {
        inst.address = *v.if_string();
      } else {
        return fail(key, "expected a string or null, got " + detail::got(v));
      }
    } else if (key == "port" || key == "sslPort") {
      auto& field = key == "port" ? inst.port : inst.ssl_port;
      if (v.is_null()) {
        field.reset();
      } else if (const auto* i = v.if_integer();
                 i != nullptr && *i >= std::numeric_limits<std::int32_t>::min() &&
                 *i <= std::numeric_limits<std::int32_t>::max()) {
        field = static_cast<std::int32_t>(*i);
      } else {
        return fail(key, v.is_integer() ? std::string("out of the 32-bit range")
                                        : "expected an integer or null, got " + detail::got(v));
      }
    } else if (key == "registrationTimeUTC") {
      // A Java long: JSON null reads as 0 (Jackson's default for primitives).
      if (v.is_null()) {
        inst.registration_time_utc = 0;
      } else if (const auto* i = v.if_integer()) {
        inst.registration_time_utc = *i;
      } else {
        return fail(key, "expected an integer, got " + detail::got(v));
      }
    } else if (key == "serviceType") {
      if (v.is_null()) {
        inst.type.reset();
      } else if (const auto* s = v.if_string()) {
        bool found = false;
        for (auto t : {service_type::dynamic, service_type::static_, service_type::permanent,
                       service_type::dynamic_sequential}) {
          if (*s == to_string(t)) {
            inst.type = t;
            found = true;
          }
        }
        if (!found) return fail(key, "unknown service type \"" + *s + "\"");
      } else {
        return fail(key, "expected a string or null, got " + detail::got(v));
      }
    } else if (key == "enabled") {
      // A Java boolean: JSON null reads as false (Jackson's default for primitives).
      if (v.is_null()) {
        inst.enabled = false;
      } else if (const auto* b = v.if_bool()) {
        inst.enabled = *b;
      } else {
        return fail(key, "expected a boolean, got " + detail::got(v));
      }
    } else if (key == "uriSpec") {
      if (v.is_null()) {
        inst.uri.reset();
        continue;
      }
      if (!v.is_object()) return fail(key, "expected an object or null, got " + detail::got(v));
      uri_spec spec;
      if (const auto* parts = v.find("parts"); parts != nullptr && !parts->is_null()) {
        const auto* arr = parts->if_array();
        if (arr == nullptr) return fail("uriSpec.parts", "expected an array, got " + detail::got(*parts));
        for (const auto& p : *arr) {
          if (!p.is_object()) return fail("uriSpec.parts", "expected objects, got " + detail::got(p));
          uri_part part;  // Part()'s defaults: "" and false
          if (const auto* val = p.find("value"); val != nullptr && !val->is_null()) {
            if (!val->is_string()) return fail("uriSpec.parts.value", "expected a string, got " + detail::got(*val));
            part.value = *val->if_string();
          }
          if (const auto* var = p.find("variable"); var != nullptr && !var->is_null()) {
            if (!var->is_bool()) return fail("uriSpec.parts.variable", "expected a boolean, got " + detail::got(*var));
            part.variable = *var->if_bool();
          }
          spec.parts.push_back(std::move(part));
        }
      }
      inst.uri = std::move(spec);
    } else if (key == "payload") {
      inst.payload_class.clear();
      if (v.is_null()) {
        inst.payload = nullptr;
      } else if (v.is_object()) {
        // The type id may stand anywhere among the members (Jackson buffers until it finds it).
        json::value::object_type members;
        for (const auto& m : *v.if_object()) {
          if (m.key == "@class") {
            if (!m.val.is_string()) return fail("payload.@class", "expected a string, got " + detail::got(m.val));
            inst.payload_class = *m.val.if_string();
          } else {
            members.push_back(m);
          }
        }
        inst.payload = json::value(std::move(members));
      } else if (v.is_array()) {
        const auto& a = *v.if_array();
        if (a.size() != 2 || !a[0].is_string()) {
          return fail(key, "an array payload must be Jackson's wrapper [\"<java class>\", value]");
        }
        inst.payload_class = *a[0].if_string();
        inst.payload = a[1];
      } else {
        inst.payload = v;  // a natural type, untagged
      }
    }
    // Unknown members are ignored, as Curator's reader (FAIL_ON_UNKNOWN_PROPERTIES off) does.
  }
  return r;
}

}  // namespace zkr::recipes
