// tests/interop/CuratorPeer.java: the Java side of the interop tests, Apache Curator 5.4 itself
// (Debian's jars), driven by tests/interop/curator_interop_test.cpp through
// tests/interop/curator-peer (which finds the jars, compiles this file and runs it).
//
// Every subcommand connects a CuratorFramework to <connect>, prints `ready` once connected, and
// then prints one line per event on stdout (flushed at once), so the C++ test can follow it:
//
//   mutex <connect> <path> <rounds> <logfile> [hold-ms]
//       InterProcessMutex on <path>: <rounds> times acquire, append "enter java <token>\n" to
//       <logfile> (O_APPEND, one write per line), hold <hold-ms> (default 5), append
//       "exit java <token>\n", release. <token> is the czxid of our lock node (InterProcessMutex
//       has no token API: its protected getLockPath() names our node, whose stat we read).
//       Prints `node <name>` and `acquired <token>` per round, then `done <rounds>`.
//   latch <connect> <path> <id> <seconds>
//       LeaderLatch(<path>, <id>): prints `leader` / `not-leader` as its listener hears them.
//       Commands on stdin: `leader?` -> `leader-is <id>|<none>` (getLeader()),
//       `participants?` -> `participants <id>:<L|F>,...` (getParticipants(), in order),
//       `our-path?` -> `our-path <path>`, `close` -> closes the latch, prints `closed`, exits.
//       Stdin at EOF or <seconds> passed: closes and exits as well.
//   discovery-register <connect> <base> <service> <id> <port> <payload-json>
//       ServiceDiscovery (JsonInstanceSerializer<Map>, Curator's default serializer) registers
//       a DYNAMIC instance: name <service>, id <id>, address 127.0.0.1, port <port>, payload
//       <payload-json> read by Jackson as a Map (a LinkedHashMap), uriSpec
//       "{scheme}://{address}:{port}". Prints `registered`; then serves commands on stdin:
//       `list <service>` prints what discovery-list prints; `close` (or EOF, or 60 s without a
//       command) unregisters, closes, prints `unregistered`.
//   discovery-list <connect> <base> <service>
//       queryForInstances(<service>): per instance one line `instance <json>`, the JSON being
//       {"id","name","address","port","sslPort","payloadClass","payload","registrationTimeUTC",
//       "serviceType","enabled","uri"} as Curator read them (payload re-serialised by Jackson,
//       uri = buildUriSpec()), followed by `serialized <json>`, the instance as Curator's default
//       JsonInstanceSerializer writes it; then `count <n>`.
//   counter <connect> <path> <n>
//       DistributedAtomicLong(<path>, RetryNTimes(1000, 1)): <n> increments, each counted if
//       Curator acknowledged it (succeeded()). Prints `acknowledged <k>`; then serves commands
//       on stdin: `get` -> `value <v>` (get()); `close` (or EOF, or 60 s without a command) exits.
//
// Exit status: 0 done, 2 usage error, 1 anything else (stack trace on stderr).
import java.io.BufferedReader;
import java.io.FileOutputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import com.fasterxml.jackson.databind.ObjectMapper;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.atomic.AtomicValue;
import org.apache.curator.framework.recipes.atomic.DistributedAtomicLong;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.LeaderLatchListener;
import org.apache.curator.framework.recipes.leader.Participant;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.curator.retry.RetryNTimes;
import org.apache.curator.x.discovery.ServiceDiscovery;
import org.apache.curator.x.discovery.ServiceDiscoveryBuilder;
import org.apache.curator.x.discovery.ServiceInstance;
import org.apache.curator.x.discovery.ServiceType;
import org.apache.curator.x.discovery.UriSpec;
import org.apache.curator.x.discovery.details.JsonInstanceSerializer;
import org.apache.zookeeper.data.Stat;

public final class CuratorPeer {
  private static final ObjectMapper JSON = new ObjectMapper();

  private static synchronized void say(String line) {
    System.out.println(line);
    System.out.flush();
  }

  private static void usage(String why) {
    System.err.println("CuratorPeer: " + why);
    System.err.println("usage: mutex <connect> <path> <rounds> <logfile> [hold-ms]");
    System.err.println("       latch <connect> <path> <id> <seconds>");
    System.err.println("       discovery-register <connect> <base> <service> <id> <port> <payload-json>");
    System.err.println("       discovery-list <connect> <base> <service>");
    System.err.println("       counter <connect> <path> <n>");
    System.exit(2);
  }

  private static CuratorFramework connect(String connect) throws Exception {
    CuratorFramework client = CuratorFrameworkFactory.builder()
        .connectString(connect)
        .sessionTimeoutMs(4000)
        .connectionTimeoutMs(4000)
        .retryPolicy(new ExponentialBackoffRetry(100, 5))
        .build();
    client.start();
    if (!client.blockUntilConnected(20, TimeUnit.SECONDS)) {
      throw new IllegalStateException("could not connect to " + connect + " within 20 s");
    }
    return client;
  }

  /// Reads stdin lines on a daemon thread; EOF arrives as the line "<eof>".
  private static LinkedBlockingQueue<String> stdinLines() {
    LinkedBlockingQueue<String> q = new LinkedBlockingQueue<>();
    Thread t = new Thread(() -> {
      try (BufferedReader r = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
        for (String l; (l = r.readLine()) != null;) q.add(l.trim());
      } catch (Exception e) {
        // treated as EOF
      }
      q.add("<eof>");
    }, "stdin");
    t.setDaemon(true);
    t.start();
    return q;
  }

  // ---- mutex -------------------------------------------------------------------------------

  /// Exposes the lock node's path, which InterProcessMutex keeps protected.
  static final class PeerMutex extends InterProcessMutex {
    PeerMutex(CuratorFramework client, String path) { super(client, path); }
    String ourLockPath() { return getLockPath(); }
  }

  private static void mutex(String[] a) throws Exception {
    if (a.length < 5 || a.length > 6) usage("mutex takes 4 or 5 arguments");
    int rounds = Integer.parseInt(a[3]);
    long holdMs = a.length == 6 ? Long.parseLong(a[5]) : 5;
    try (CuratorFramework client = connect(a[1]);
         FileOutputStream log = new FileOutputStream(a[4], true)) {  // O_APPEND
      PeerMutex m = new PeerMutex(client, a[2]);
      say("ready");
      for (int i = 0; i < rounds; ++i) {
        m.acquire();
        try {
          String ours = m.ourLockPath();
          if (ours == null) throw new IllegalStateException("acquired, but no lock path");
          Stat st = client.checkExists().forPath(ours);
          if (st == null) throw new IllegalStateException("our lock node " + ours + " is gone");
          long token = st.getCzxid();
          log.write(("enter java " + token + "\n").getBytes(StandardCharsets.US_ASCII));
          say("node " + ours.substring(ours.lastIndexOf('/') + 1));
          say("acquired " + token);
          Thread.sleep(holdMs);
          log.write(("exit java " + token + "\n").getBytes(StandardCharsets.US_ASCII));
        } finally {
          m.release();
        }
      }
      say("done " + rounds);
    }
  }

  // ---- leader latch ------------------------------------------------------------------------

  private static void latch(String[] a) throws Exception {
    if (a.length != 5) usage("latch takes 4 arguments");
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(Long.parseLong(a[4]));
    try (CuratorFramework client = connect(a[1])) {
      LeaderLatch latch = new LeaderLatch(client, a[2], a[3]);
      latch.addListener(new LeaderLatchListener() {
        @Override public void isLeader() { say("leader"); }
        @Override public void notLeader() { say("not-leader"); }
      });
      LinkedBlockingQueue<String> in = stdinLines();
      latch.start();
      say("ready");
      while (true) {
        long left = deadline - System.nanoTime();
        String cmd = left > 0 ? in.poll(left, TimeUnit.NANOSECONDS) : null;
        if (cmd == null || cmd.equals("<eof>") || cmd.equals("close")) break;
        switch (cmd) {
          case "leader?": {
            Participant p = latch.getLeader();
            say("leader-is " + (p.isLeader() ? p.getId() : "<none>"));
            break;
          }
          case "participants?": {
            List<String> parts = new ArrayList<>();
            for (Participant p : latch.getParticipants()) parts.add(p.getId() + ":" + (p.isLeader() ? "L" : "F"));
            say("participants " + String.join(",", parts));
            break;
          }
          case "our-path?":
            say("our-path " + latch.getOurPath());
            break;
          default:
            say("error unknown command '" + cmd + "'");
        }
      }
      latch.close();
      say("closed");
    }
  }

  // ---- service discovery -------------------------------------------------------------------

  @SuppressWarnings({"rawtypes", "unchecked"})
  private static ServiceDiscovery<Map> discovery(CuratorFramework client, String base) throws Exception {
    ServiceDiscovery<Map> d = ServiceDiscoveryBuilder.builder(Map.class)
        .client(client)
        .basePath(base)
        .serializer(new JsonInstanceSerializer<>(Map.class))
        .watchInstances(false)
        .build();
    d.start();
    return d;
  }

  @SuppressWarnings({"rawtypes", "unchecked"})
  private static void discoveryRegister(String[] a) throws Exception {
    if (a.length != 7) usage("discovery-register takes 6 arguments");
    Map payload = JSON.readValue(a[6], LinkedHashMap.class);
    try (CuratorFramework client = connect(a[1]);
         ServiceDiscovery<Map> d = discovery(client, a[2])) {
      ServiceInstance<Map> inst = ServiceInstance.<Map>builder()
          .name(a[3])
          .id(a[4])
          .address("127.0.0.1")
          .port(Integer.parseInt(a[5]))
          .payload(payload)
          .serviceType(ServiceType.DYNAMIC)
          .uriSpec(new UriSpec("{scheme}://{address}:{port}"))
          .build();
      LinkedBlockingQueue<String> in = stdinLines();
      say("ready");
      d.registerService(inst);
      say("registered");
      while (true) {
        String cmd = in.poll(60, TimeUnit.SECONDS);
        if (cmd == null || cmd.equals("close") || cmd.equals("<eof>")) break;
        if (cmd.startsWith("list ")) {
          printInstances(d, cmd.substring(5).trim());
        } else {
          say("error unknown command '" + cmd + "'");
        }
      }
      d.unregisterService(inst);
      say("unregistered");
    }
  }

  @SuppressWarnings({"rawtypes", "unchecked"})
  private static void printInstances(ServiceDiscovery<Map> d, String service) throws Exception {
    Collection<ServiceInstance<Map>> all = d.queryForInstances(service);
    JsonInstanceSerializer<Map> serializer = new JsonInstanceSerializer<>(Map.class);
    for (ServiceInstance<Map> i : all) {
      Map<String, Object> out = new LinkedHashMap<>();
      out.put("id", i.getId());
      out.put("name", i.getName());
      out.put("address", i.getAddress());
      out.put("port", i.getPort());
      out.put("sslPort", i.getSslPort());
      out.put("payloadClass", i.getPayload() == null ? null : i.getPayload().getClass().getName());
      out.put("payload", i.getPayload());
      out.put("registrationTimeUTC", i.getRegistrationTimeUTC());
      out.put("serviceType", i.getServiceType() == null ? null : i.getServiceType().name());
      out.put("enabled", i.isEnabled());
      out.put("uri", i.getUriSpec() == null ? null : i.buildUriSpec());
      say("instance " + JSON.writeValueAsString(out));
      say("serialized " + new String(serializer.serialize(i), StandardCharsets.UTF_8));
    }
    say("count " + all.size());
  }

  @SuppressWarnings("rawtypes")
  private static void discoveryList(String[] a) throws Exception {
    if (a.length != 4) usage("discovery-list takes 3 arguments");
    try (CuratorFramework client = connect(a[1]);
         ServiceDiscovery<Map> d = discovery(client, a[2])) {
      say("ready");
      printInstances(d, a[3]);
    }
  }

  // ---- counter -----------------------------------------------------------------------------

  private static void counter(String[] a) throws Exception {
    if (a.length != 4) usage("counter takes 3 arguments");
    int n = Integer.parseInt(a[3]);
    try (CuratorFramework client = connect(a[1])) {
      DistributedAtomicLong c = new DistributedAtomicLong(client, a[2], new RetryNTimes(1000, 1));
      say("ready");
      int acknowledged = 0;
      for (int i = 0; i < n; ++i) {
        AtomicValue<Long> v = c.increment();
        if (v.succeeded()) ++acknowledged;
      }
      say("acknowledged " + acknowledged);
      LinkedBlockingQueue<String> in = stdinLines();
      while (true) {
        String cmd = in.poll(60, TimeUnit.SECONDS);
        if (cmd == null || cmd.equals("close") || cmd.equals("<eof>")) break;
        if (cmd.equals("get")) {
          AtomicValue<Long> v = c.get();
          say("value " + (v.succeeded() ? v.postValue().toString() : "<failed>"));
        } else {
          say("error unknown command '" + cmd + "'");
        }
      }
    }
  }

  public static void main(String[] a) {
    if (a.length < 1) usage("no subcommand");
    try {
      switch (a[0]) {
        case "mutex": mutex(a); break;
        case "latch": latch(a); break;
        case "discovery-register": discoveryRegister(a); break;
        case "discovery-list": discoveryList(a); break;
        case "counter": counter(a); break;
        default: usage("unknown subcommand " + a[0]);
      }
    } catch (Throwable t) {
      System.out.flush();
      System.err.println("CuratorPeer " + a[0] + " failed:");
      t.printStackTrace();
      System.exit(1);
    }
    System.exit(0);
  }
}
