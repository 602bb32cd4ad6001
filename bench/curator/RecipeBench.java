// bench/curator/RecipeBench.java: the measurements of bench/recipes.cpp (zkr_bench_recipes),
// made with Apache Curator 5.4 (Debian's jars), against a real ZooKeeper server.
//
// Goal: put zkr's numbers next to the Java library whose recipes zkr's follow, measured the
// same way on the same server (scripts/bench-recipes runs both, and kazoo, side by side).
//
// Method: one CuratorFramework per simulated process (session timeout 10 s, as zkr's
// benchmark), all in this JVM; blocking Curator calls on one thread per contender. Throughput
// benchmarks warm up for 0.5 s and then count for <seconds> (default 2) of real time; latency
// benchmarks average a fixed number of rounds (as zkr's). Requests are counted by the server:
// the difference of `mntr`'s zk_packets_received around the measurement (the zkr benchmark
// reports the same figure for itself as server_packets_per_*).
//   lock_handoff/contenders:C            InterProcessMutex, C clients looping acquire -> release
//   lock_requests_per_handoff/...         server packets per acquisition
//   atomic_counter_add/sessions:S        DistributedAtomicLong.increment(), one thread per client,
//                                         ExponentialBackoffRetry(10 ms, 10 retries, max 500 ms)
//                                         (zkr's default atomic_counter policy)
//   atomic_counter_tries_per_increment/sessions:S   AtomicStats.getOptimisticTries()
//   sequence_next/in_flight:F            no Curator recipe: setData(-1) in the background, F in
//                                         flight, the new version being the value (zkr's
//                                         sequence algorithm written with the framework)
//   leader_failover                      3 LeaderLatch clients; the leader's client is closed;
//                                         time until another latch's listener hears isLeader()
//   watch_fanout_sessions/N              N clients with a NodeCache each on one node; a writer
//                                         client sets it; time until all N listeners saw it
//   watch_fanout_local/N                 one client with N NodeCaches on the node
//   watch_fanout_local_requests_per_change/N   server packets per change (incl. the set)
// Output: one line per result, "name value unit", on stdout; progress on stderr.
// No assertions on the numbers.
//
// Run (Java's single-file source launcher; scripts/bench-recipes does it):
//   java -cp "$(tests/interop/curator-peer check)" bench/curator/RecipeBench.java 127.0.0.1:2181 [seconds]
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.atomic.AtomicValue;
import org.apache.curator.framework.recipes.atomic.DistributedAtomicLong;
import org.apache.curator.framework.recipes.cache.ChildData;
import org.apache.curator.framework.recipes.cache.NodeCache;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.LeaderLatchListener;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.retry.ExponentialBackoffRetry;

public final class RecipeBench {
  private static String connect;
  private static double seconds = 2.0;
  private static final String ROOT = "/curator-bench/" + ProcessHandle.current().pid();
  private static int runs = 0;

  public static void main(String[] args) throws Exception {
    if (args.length < 1 || args.length > 2) {
      System.err.println("usage: RecipeBench <connect> [seconds per throughput benchmark]");
      System.exit(2);
    }
    connect = args[0];
    if (args.length == 2) seconds = Double.parseDouble(args[1]);
    for (int c : new int[] {4, 2}) lockHandoff(c);
    for (int s : new int[] {1, 4}) atomicCounterAdd(s);
    for (int f : new int[] {1, 16}) sequenceNext(f);
    leaderFailover(3, 30);
    for (int n : new int[] {10, 100}) watchFanout(n, false, 100);
    for (int n : new int[] {10, 100}) watchFanout(n, true, 100);
    System.exit(0);  // Curator's and ZooKeeper's non-daemon threads
  }

  // ---- helpers -------------------------------------------------------------------------------

  private static void result(String name, double value, String unit) {
    System.out.printf("%s %.6g %s%n", name, value, unit);
    System.out.flush();
  }

  private static void progress(String what) {
    System.err.println("RecipeBench: " + what);
  }

  private static String path(String what) {
    return ROOT + "-" + (++runs) + "-" + what;
  }

  private static CuratorFramework client() throws InterruptedException {
    CuratorFramework c = CuratorFrameworkFactory.builder()
        .connectString(connect)
        .sessionTimeoutMs(10000)
        .connectionTimeoutMs(10000)
        .retryPolicy(new ExponentialBackoffRetry(100, 5))
        .build();
    c.start();
    if (!c.blockUntilConnected(30, TimeUnit.SECONDS)) throw new IllegalStateException("cannot connect to " + connect);
    return c;
  }

  private static List<CuratorFramework> clients(int n) throws InterruptedException {
    List<CuratorFramework> out = new ArrayList<>();
    for (int i = 0; i < n; ++i) out.add(client());
    return out;
  }

  private static void closeAll(List<CuratorFramework> cs) {
    for (CuratorFramework c : cs) c.close();
  }

  /// zk_packets_received from the server's `mntr`, or -1.
  static long serverPackets() {
    String hp = connect.split("[,/]")[0];
    int colon = hp.lastIndexOf(':');
    try (Socket s = new Socket(hp.substring(0, colon), Integer.parseInt(hp.substring(colon + 1)))) {
      s.setSoTimeout(2000);
      OutputStream out = s.getOutputStream();
      out.write("mntr".getBytes(StandardCharsets.US_ASCII));
      out.flush();
      InputStream in = s.getInputStream();
      ByteArrayOutputStream buf = new ByteArrayOutputStream();
      byte[] b = new byte[4096];
      for (int n; (n = in.read(b)) > 0;) buf.write(b, 0, n);
      for (String line : buf.toString(StandardCharsets.US_ASCII).split("\n")) {
        String[] kv = line.split("\t");
        if (kv.length == 2 && kv[0].equals("zk_packets_received")) return Long.parseLong(kv[1].trim());
      }
    } catch (Exception e) {
      progress("mntr failed: " + e);
    }
    return -1;
  }

  interface Step {
    /// One operation of a loop; returns how many successes it counts.
    long run() throws Exception;
  }

  /// Runs `steps` on one thread each: 0.5 s warm-up, then `seconds` counted.
  /// Returns {successes, elapsed seconds, server packets during the count}.
  private static double[] closedLoop(List<Step> steps) throws Exception {
    AtomicLong done = new AtomicLong();
    AtomicLong errors = new AtomicLong();
    AtomicBoolean stop = new AtomicBoolean();
    List<Thread> threads = new ArrayList<>();
    for (Step st : steps) {
      Thread t = new Thread(() -> {
        while (!stop.get()) {
          try {
            done.addAndGet(st.run());
          } catch (Exception e) {
            errors.incrementAndGet();
          }
        }
      });
      t.start();
      threads.add(t);
    }
    Thread.sleep(500);
    long p0 = serverPackets();
    long n0 = done.get();
    long t0 = System.nanoTime();
    Thread.sleep((long) (seconds * 1000));
    long n1 = done.get();
    long t1 = System.nanoTime();
    long p1 = serverPackets();
    stop.set(true);
    for (Thread t : threads) t.join();
    if (errors.get() > 0) progress(errors.get() + " operations failed");
    return new double[] {n1 - n0, (t1 - t0) / 1e9, (p0 >= 0 && p1 >= 0) ? p1 - p0 : -1};
  }

  // ---- lock ----------------------------------------------------------------------------------

  private static void lockHandoff(int contenders) throws Exception {
    progress("lock_handoff/contenders:" + contenders);
    List<CuratorFramework> cs = clients(contenders);
    String p = path("lock") + "/lock";
    List<Step> steps = new ArrayList<>();
    for (CuratorFramework c : cs) {
      InterProcessMutex m = new InterProcessMutex(c, p);
      steps.add(() -> {
        m.acquire();
        m.release();
        return 1;
      });
    }
    double[] r = closedLoop(steps);
    result("lock_handoff/contenders:" + contenders, r[0] / r[1], "handoffs/s");
    if (r[2] >= 0) result("lock_requests_per_handoff/contenders:" + contenders, r[2] / r[0], "requests");
    closeAll(cs);
  }

  // ---- counters ------------------------------------------------------------------------------

  private static void atomicCounterAdd(int sessions) throws Exception {
    progress("atomic_counter_add/sessions:" + sessions);
    List<CuratorFramework> cs = clients(sessions);
    String p = path("counter") + "/counter";
    AtomicLong tries = new AtomicLong();
    AtomicLong ok = new AtomicLong();
    List<Step> steps = new ArrayList<>();
    for (CuratorFramework c : cs) {
      DistributedAtomicLong counter = new DistributedAtomicLong(c, p, new ExponentialBackoffRetry(10, 10, 500));
      steps.add(() -> {
        AtomicValue<Long> v = counter.increment();
        if (!v.succeeded()) return 0;
        tries.addAndGet(v.getStats().getOptimisticTries());
        ok.incrementAndGet();
        return 1;
      });
    }
    double[] r = closedLoop(steps);
    result("atomic_counter_add/sessions:" + sessions, r[0] / r[1], "increments/s");
    result("atomic_counter_tries_per_increment/sessions:" + sessions, (double) tries.get() / ok.get(), "tries");
    closeAll(cs);
  }

  private static void sequenceNext(int inFlight) throws Exception {
    progress("sequence_next/in_flight:" + inFlight);
    CuratorFramework c = client();
    String p = path("sequence") + "/seq";
    c.create().creatingParentContainersIfNeeded().forPath(p, new byte[0]);
    Semaphore slots = new Semaphore(inFlight);
    AtomicLong values = new AtomicLong();
    AtomicLong errors = new AtomicLong();
    AtomicBoolean stop = new AtomicBoolean();
    Thread pump = new Thread(() -> {
      try {
        while (true) {
          slots.acquire();
          if (stop.get()) return;
          c.setData().inBackground((cl, event) -> {
            if (event.getResultCode() == 0 && event.getStat().getVersion() > 0) {
              values.incrementAndGet();
            } else {
              errors.incrementAndGet();
            }
            slots.release();
          }).forPath(p, new byte[0]);
        }
      } catch (Exception e) {
        errors.incrementAndGet();
      }
    });
    pump.start();
    Thread.sleep(500);
    long n0 = values.get();
    long t0 = System.nanoTime();
    Thread.sleep((long) (seconds * 1000));
    long n1 = values.get();
    long t1 = System.nanoTime();
    stop.set(true);
    slots.release();
    pump.join();
    slots.acquire(inFlight);  // the calls in flight have completed
    if (errors.get() > 0) progress(errors.get() + " sets failed");
    result("sequence_next/in_flight:" + inFlight, (n1 - n0) / ((t1 - t0) / 1e9), "values/s");
    c.close();
  }

  // ---- leader failover -----------------------------------------------------------------------

  private static final class Contender {
    final CuratorFramework client;
    final LeaderLatch latch;

    Contender(CuratorFramework client, LeaderLatch latch) {
      this.client = client;
      this.latch = latch;
    }
  }

  private static void leaderFailover(int contenders, int rounds) throws Exception {
    progress("leader_failover");
    String p = path("latch") + "/latch";
    // Who became leader last, and when (System.nanoTime()).
    AtomicReference2 last = new AtomicReference2();
    List<Contender> live = new ArrayList<>();
    int[] nextId = {1};
    for (int i = 0; i < contenders; ++i) live.add(join(p, nextId[0]++, last));
    waitFor(() -> last.id() != 0);
    double totalMs = 0;
    for (int r = 0; r < rounds; ++r) {
      long old = last.id();
      Contender leader = null;
      for (Contender c : live) {
        if (c.latch.getId().equals("c" + old)) leader = c;
      }
      if (leader == null) throw new IllegalStateException("the leader is not a live contender");
      long t0 = System.nanoTime();
      leader.client.close();  // ends the session: the server deletes its latch node
      waitFor(() -> last.id() != old);
      totalMs += (last.at() - t0) / 1e6;
      live.remove(leader);
      live.add(join(p, nextId[0]++, last));
    }
    result("leader_failover", totalMs / rounds, "ms");
    for (Contender c : live) {
      c.latch.close();
      c.client.close();
    }
  }

  /// (id, time) of the last election, updated together.
  private static final class AtomicReference2 {
    private long id = 0;
    private long at = 0;

    synchronized void set(long id, long at) {
      this.id = id;
      this.at = at;
    }

    synchronized long id() {
      return id;
    }

    synchronized long at() {
      return at;
    }
  }

  private static Contender join(String p, long id, AtomicReference2 last) throws Exception {
    CuratorFramework c = client();
    LeaderLatch latch = new LeaderLatch(c, p, "c" + id);
    latch.addListener(new LeaderLatchListener() {
      @Override
      public void isLeader() {
        last.set(id, System.nanoTime());
      }

      @Override
      public void notLeader() {}
    });
    latch.start();
    waitFor(() -> latch.getOurPath() != null);
    return new Contender(c, latch);
  }

  interface Cond {
    boolean holds() throws Exception;
  }

  private static void waitFor(Cond cond) throws Exception {
    long deadline = System.nanoTime() + 30_000_000_000L;
    while (!cond.holds()) {
      if (System.nanoTime() > deadline) throw new IllegalStateException("timed out");
      Thread.sleep(0, 200_000);
    }
  }

  // ---- watch fan-out -------------------------------------------------------------------------

  @SuppressWarnings("deprecation")  // NodeCache: Curator 5 prefers CuratorCache, but NodeCache is zkr's model
  private static void watchFanout(int n, boolean local, int rounds) throws Exception {
    String name = (local ? "watch_fanout_local/" : "watch_fanout_sessions/") + n;
    progress(name);
    CuratorFramework writer = client();
    List<CuratorFramework> watchers = clients(local ? 1 : n);
    String p = path(local ? "fanout-local" : "fanout-sessions") + "/node";
    writer.create().creatingParentContainersIfNeeded().forPath(p, "v0".getBytes(StandardCharsets.UTF_8));

    final String[] target = {"v0"};
    AtomicInteger seen = new AtomicInteger();
    AtomicLong first = new AtomicLong();
    AtomicLong last = new AtomicLong();
    final CountDownLatch[] all = {new CountDownLatch(n)};
    List<NodeCache> caches = new ArrayList<>();
    for (int i = 0; i < n; ++i) {
      NodeCache cache = new NodeCache(watchers.get(local ? 0 : i), p);
      cache.getListenable().addListener(() -> {
        ChildData d = cache.getCurrentData();
        String want;
        CountDownLatch done;
        synchronized (target) {
          want = target[0];
          done = all[0];
        }
        if (d != null && want.equals(new String(d.getData(), StandardCharsets.UTF_8))) {
          long now = System.nanoTime();
          if (seen.getAndIncrement() == 0) first.set(now);
          last.accumulateAndGet(now, Math::max);
          done.countDown();
        }
      });
      cache.start(true);  // the initial read happens here, before the rounds
      caches.add(cache);
    }
    long p0 = serverPackets();
    double allMs = 0;
    double firstMs = 0;
    for (int r = 1; r <= rounds; ++r) {
      CountDownLatch done = new CountDownLatch(n);
      String value = "v" + r;
      synchronized (target) {
        target[0] = value;
        all[0] = done;
      }
      seen.set(0);
      last.set(0);
      long t0 = System.nanoTime();
      writer.setData().forPath(p, value.getBytes(StandardCharsets.UTF_8));
      if (!done.await(30, TimeUnit.SECONDS)) throw new IllegalStateException(name + ": not all watchers saw " + value);
      allMs += (last.get() - t0) / 1e6;
      firstMs += (first.get() - t0) / 1e6;
    }
    long p1 = serverPackets();
    result(name, allMs / rounds, "ms");
    result(name.replace("/", "_first/"), firstMs / rounds, "ms");
    if (p0 >= 0 && p1 >= 0) {
      result(name.replace("/", "_requests_per_change/"), (double) (p1 - p0) / rounds, "requests");
    }
    for (NodeCache c : caches) c.close();
    closeAll(watchers);
    writer.close();
  }
}
