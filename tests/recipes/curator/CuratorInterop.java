// Curator 5.4's service discovery, run against the registry zkr writes: the Java half of the
// interop test in tests/recipes/service_discovery_test.cpp (curator_interop). Started with
// Java's single-file source launcher, on Debian's jars (libcurator-discovery-java):
//
//   java -cp <curator-x-discovery, curator-framework, curator-client, zookeeper, jackson-*,
//            guava, slf4j-api, slf4j-nop> CuratorInterop.java <connect string> <base path> <service>
//
// It prints, one per line:
//   JAVA_SEES <id> <payload class> <uri> <json>     every instance Curator reads (queryForInstances)
//   JAVA_REGISTERED <id>                          after registering its own DYNAMIC instance
//   JAVA_CACHE <ids, comma separated>             what a started ServiceCache holds
//   JAVA_PROVIDER <id>                            what a round-robin ServiceProvider picks
//   JAVA_DONE                                     after unregistering and closing
// and keeps its instance registered until the node <base>/done exists (the C++ side creates it).
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.retry.RetryOneTime;
import org.apache.curator.x.discovery.ServiceCache;
import org.apache.curator.x.discovery.ServiceDiscovery;
import org.apache.curator.x.discovery.ServiceDiscoveryBuilder;
import org.apache.curator.x.discovery.ServiceInstance;
import org.apache.curator.x.discovery.ServiceProvider;
import org.apache.curator.x.discovery.ServiceType;
import org.apache.curator.x.discovery.UriSpec;
import org.apache.curator.x.discovery.details.JsonInstanceSerializer;

public class CuratorInterop {
  public static void main(String[] args) throws Exception {
    String connect = args[0], base = args[1], service = args[2];
    try (CuratorFramework client = CuratorFrameworkFactory.newClient(connect, 10000, 10000, new RetryOneTime(100))) {
      client.start();
      client.blockUntilConnected();
      JsonInstanceSerializer<Object> serializer = new JsonInstanceSerializer<Object>(Object.class);
      ServiceDiscovery<Object> discovery =
          ServiceDiscoveryBuilder.builder(Object.class).client(client).basePath(base).serializer(serializer).build();
      discovery.start();
      for (ServiceInstance<Object> i : discovery.queryForInstances(service)) {
        Object p = i.getPayload();
        System.out.println("JAVA_SEES " + i.getId() + " " + (p == null ? "null" : p.getClass().getName()) + " "
            + i.buildUriSpec() + " " + new String(serializer.serialize(i), StandardCharsets.UTF_8));
      }
      Map<String, Object> payload = new LinkedHashMap<>();
      payload.put("lang", "java");
      ServiceInstance<Object> mine = ServiceInstance.builder()
          .name(service).id("java-1").address("10.0.0.9").port(9090).payload(payload)
          .uriSpec(new UriSpec("{scheme}://{address}:{port}")).serviceType(ServiceType.DYNAMIC).build();
      discovery.registerService(mine);
      System.out.println("JAVA_REGISTERED java-1");
      ServiceCache<Object> cache = discovery.serviceCacheBuilder().name(service).build();
      cache.start();
      List<String> ids = new ArrayList<>();
      for (ServiceInstance<Object> i : cache.getInstances()) ids.add(i.getId());
      java.util.Collections.sort(ids);
      System.out.println("JAVA_CACHE " + String.join(",", ids));
      ServiceProvider<Object> provider = discovery.serviceProviderBuilder().serviceName(service).build();
      provider.start();
      System.out.println("JAVA_PROVIDER " + provider.getInstance().getId());
      System.out.flush();
      long deadline = System.currentTimeMillis() + 60000;
      while (client.checkExists().forPath(base + "/done") == null && System.currentTimeMillis() < deadline) {
        Thread.sleep(50);
      }
      provider.close();
      cache.close();
      discovery.unregisterService(mine);
      discovery.close();
      System.out.println("JAVA_DONE");
    }
  }
}
