// Prints what Curator 5.4's JsonInstanceSerializer writes for the instances that
// tests/core/service_instance_test.cpp checks zkr against, as C++ string literals, and
// reads back the JSON texts zkr's tests feed it. This is how the golden bytes were made:
//
//   apt-get install libcurator-discovery-java default-jdk-headless
//   CP=$(echo /usr/share/java/{curator-x-discovery,curator-framework,curator-client,jackson-databind,jackson-core,jackson-annotations,guava,slf4j-api,slf4j-nop,zookeeper}.jar | tr ' ' ':')
//   cd tests/core/curator_golden && javac -d /tmp/cg -cp $CP CuratorGolden.java && java -cp $CP:/tmp/cg CuratorGolden
//
// (Debian 12: Curator 5.4.0, Jackson 2.14, OpenJDK 17.)
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.LinkedHashMap;
import org.apache.curator.x.discovery.ServiceInstance;
import org.apache.curator.x.discovery.ServiceType;
import org.apache.curator.x.discovery.UriSpec;
import org.apache.curator.x.discovery.details.JsonInstanceSerializer;

public class CuratorGolden {
  static String cpp(byte[] b) {
    StringBuilder sb = new StringBuilder("\"");
    for (byte x : b) {
      int c = x & 0xff;
      if (c == '"' || c == '\\') sb.append('\\').append((char) c);
      else if (c >= 0x20 && c < 0x7f) sb.append((char) c);
      else sb.append(String.format("\\x%02x\" \"", c));
    }
    return sb.append("\"").toString();
  }

  static void show(String label, byte[] b) { System.out.println(label + " = " + cpp(b) + ";"); }

  static ServiceInstance<Object> sample() throws Exception {
    LinkedHashMap<String, Object> m = new LinkedHashMap<>();
    m.put("zone", "eu-west-1a");
    m.put("weight", 10);
    m.put("big", 123456789012L);
    m.put("ratio", 0.25);
    m.put("tags", Arrays.asList("a", "b"));
    m.put("on", true);
    m.put("none", null);
    return new ServiceInstance<Object>("orders", "6f1c2d4e-8a9b-4c3d-9e8f-0a1b2c3d4e5f", "10.0.0.7", 8080, null, m,
        1577836800123L, ServiceType.DYNAMIC, new UriSpec("{scheme}://{address}:{port}/api"), true);
  }

  public static void main(String[] args) throws Exception {
    JsonInstanceSerializer<Object> compat = new JsonInstanceSerializer<Object>(Object.class);  // Curator's default
    JsonInstanceSerializer<Object> full = new JsonInstanceSerializer<Object>(Object.class, false);
    show("sample_default", compat.serialize(sample()));
    show("sample_with_enabled", full.serialize(sample()));

    Object[] payloads = {null, "hello", 42, 123456789012L, 1.5, true, new java.util.ArrayList<Object>(Arrays.asList(1, "x")),
                         1.0e10, 0.001, 9.99e-4, -0.0, 1.0e-5, new LinkedHashMap<String, Object>()};
    String[] names = {"null", "string", "integer", "long", "double", "boolean", "list", "double_1e10", "double_0_001",
                      "double_9_99e_4", "double_minus_zero", "double_1e_5", "empty_map"};
    for (int i = 0; i < payloads.length; ++i) {
      ServiceInstance<Object> p = new ServiceInstance<Object>("s", "i", null, null, 8443, payloads[i], 0L,
          ServiceType.STATIC, null, false);
      show("payload_" + names[i], full.serialize(p));
    }
    ServiceInstance<Object> esc = new ServiceInstance<Object>(
        "n\"\\/\b\f\n\r\t\u0001\u001f\u007f\u00e9\u20ac\ud83d\ude00<>&'", "id", "::1", -1, 2147483647, null, -5L,
        ServiceType.DYNAMIC_SEQUENTIAL, new UriSpec("{a}{b}lit{[}x{]}"), true);
    show("escapes", full.serialize(esc));
    ServiceInstance<Object> nulltype = new ServiceInstance<Object>("s", "i", null, null, null, null, 7L, null, null, true);
    show("null_service_type", compat.serialize(nulltype));

    // What Curator reads from JSON that zkr writes or that other writers produce.
    String[] inputs = {
        // zkr's default output for sample() minus the Long (C++ ints that fit 32 bits are untagged)
        "{\"name\":\"s\",\"id\":\"i\",\"address\":null,\"port\":null,\"sslPort\":null,\"payload\":{\"@class\":\"java.util.LinkedHashMap\",\"k\":1},\"registrationTimeUTC\":5,\"serviceType\":\"DYNAMIC\",\"uriSpec\":null}",
        "{\"name\":\"s\",\"id\":\"i\",\"payload\":{\"k\":1},\"registrationTimeUTC\":5,\"serviceType\":\"DYNAMIC\",\"enabled\":false}",
        "{\"name\":\"s\",\"id\":\"i\",\"payload\":\"str\",\"serviceType\":\"DYNAMIC\"}",
        "{\"name\":\"s\",\"id\":\"i\",\"payload\":[\"java.lang.Long\",7]}",
        "{\"payload\":{\"k\":1,\"@class\":\"java.util.LinkedHashMap\"},\"name\":\"s\",\"id\":\"i\",\"unknown\":[1]}",
        "{\"name\":\"s\",\"id\":\"i\",\"uriSpec\":{\"parts\":[{\"value\":\"scheme\",\"variable\":true},{\"value\":\"://x\",\"variable\":false}]}}",
    };
    for (String s : inputs) {
      try {
        ServiceInstance<Object> r = compat.deserialize(s.getBytes(StandardCharsets.UTF_8));
        System.out.println("// reads " + s + "\n//   as " + r + " payload class "
            + (r.getPayload() == null ? "null" : r.getPayload().getClass().getName()) + ", uri \"" + r.buildUriSpec() + "\"");
      } catch (Exception e) {
        System.out.println("// refuses " + s + ": " + e);
      }
    }
    System.out.println("// uri sample: " + sample().buildUriSpec());
  }
}
