#!/usr/bin/python3
"""bench/kazoo/recipe_bench.py: the measurements of bench/recipes.cpp (zkr_bench_recipes),
made with kazoo (Debian's python3-kazoo), against a real ZooKeeper server.

Goal: put zkr's numbers next to the Python library whose short recipes zkr's style follows,
measured the same way on the same server (scripts/bench-recipes runs zkr, Curator and this
side by side).

Method: one KazooClient per simulated process (session timeout 10 s, as zkr's benchmark),
all in this process; kazoo's blocking calls on one thread per contender (the GIL serialises
the Python parts: this is how a kazoo user would run several contenders in one process, and
part of what is measured). Throughput benchmarks warm up for 0.5 s and then count for
<seconds> (default 2) of real time; latency benchmarks average a fixed number of rounds (as
zkr's). Requests are counted by the server: the difference of `mntr`'s zk_packets_received
around the measurement (zkr reports the same figure for itself as server_packets_per_*).
  lock_handoff/contenders:C            kazoo Lock, C clients looping acquire -> release
  lock_requests_per_handoff/...        server packets per acquisition
  atomic_counter_add/sessions:S        kazoo Counter (`counter += 1`: get, then set with the
                                       version, retried on BadVersion by the client's command
                                       retry: KazooRetry(max_tries=10, delay=10 ms, backoff 2,
                                       max_delay=0.5 s), zkr's default atomic_counter policy)
  sequence_next/in_flight:F            no kazoo recipe: set_async(path, b"") with F in flight,
                                       the new version being the value (zkr's sequence
                                       algorithm written with the client)
  leader_failover                      3 clients, kazoo Election (on its Lock); the leader's
                                       client is stopped (its session closed); time until
                                       another contender's leader function runs
  watch_fanout_sessions/N              N clients with a DataWatch each on one node; a writer
                                       client sets it; time until all N callbacks saw it
  watch_fanout_local/N                 one client with N DataWatch on the node
  watch_fanout_local_requests_per_change/N   server packets per change (incl. the set)
Output: one line per result, "name value unit", on stdout; progress on stderr.
No assertions on the numbers.

Run (Debian's python3, which has python3-kazoo; scripts/bench-recipes does it):
  /usr/bin/python3 bench/kazoo/recipe_bench.py 127.0.0.1:2181 [seconds]
"""
import logging
import os
import socket
import sys
import threading
import time

try:
    from kazoo.client import KazooClient
    from kazoo.retry import KazooRetry
except ImportError:
    sys.exit("recipe_bench.py: kazoo is missing: apt-get install python3-kazoo "
             "(and run Debian's /usr/bin/python3)")

CONNECT = None
SECONDS = 2.0
ROOT = "/kazoo-bench/%d" % os.getpid()
_runs = 0


def result(name, value, unit):
    print("%s %.6g %s" % (name, value, unit), flush=True)


def progress(what):
    print("recipe_bench.py: " + what, file=sys.stderr, flush=True)


def path(what):
    global _runs
    _runs += 1
    return "%s-%d-%s" % (ROOT, _runs, what)


def client():
    c = KazooClient(hosts=CONNECT, timeout=10.0,
                    command_retry=KazooRetry(max_tries=10, delay=0.01, backoff=2, max_delay=0.5))
    c.start(timeout=30)
    return c


def stop_all(clients):
    for c in clients:
        c.stop()
        c.close()


def server_packets():
    """zk_packets_received from the server's `mntr`, or None."""
    hp = CONNECT.split(",")[0].split("/")[0]
    host, _, port = hp.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2) as s:
            s.sendall(b"mntr")
            data = b""
            while True:
                b = s.recv(4096)
                if not b:
                    break
                data += b
    except OSError as e:
        progress("mntr failed: %s" % e)
        return None
    for line in data.decode("ascii", "replace").splitlines():
        k, _, v = line.partition("\t")
        if k == "zk_packets_received":
            return int(v)
    return None


def closed_loop(steps):
    """Runs each step function in a loop on a thread of its own: 0.5 s warm-up, then SECONDS
    counted. Returns (successes, elapsed seconds, server packets during the count or None)."""
    done = [0]
    errors = [0]
    lock = threading.Lock()
    stop = threading.Event()

    def loop(step):
        while not stop.is_set():
            try:
                n = step()
            except Exception:  # noqa: BLE001 - counted, the loop goes on
                with lock:
                    errors[0] += 1
                continue
            with lock:
                done[0] += n

    threads = [threading.Thread(target=loop, args=(s,)) for s in steps]
    for t in threads:
        t.start()
    time.sleep(0.5)
    p0 = server_packets()
    with lock:
        n0 = done[0]
    t0 = time.monotonic()
    time.sleep(SECONDS)
    with lock:
        n1 = done[0]
    t1 = time.monotonic()
    p1 = server_packets()
    stop.set()
    for t in threads:
        t.join()
    if errors[0]:
        progress("%d operations failed" % errors[0])
    packets = p1 - p0 if p0 is not None and p1 is not None else None
    return n1 - n0, t1 - t0, packets


# ---- lock -------------------------------------------------------------------------------------

def lock_handoff(contenders):
    progress("lock_handoff/contenders:%d" % contenders)
    cs = [client() for _ in range(contenders)]
    p = path("lock") + "/lock"

    def step_of(c):
        lock = c.Lock(p)

        def step():
            lock.acquire()
            lock.release()
            return 1
        return step

    n, secs, packets = closed_loop([step_of(c) for c in cs])
    result("lock_handoff/contenders:%d" % contenders, n / secs, "handoffs/s")
    if packets is not None:
        result("lock_requests_per_handoff/contenders:%d" % contenders, packets / n, "requests")
    stop_all(cs)


# ---- counters ---------------------------------------------------------------------------------

def atomic_counter_add(sessions):
    progress("atomic_counter_add/sessions:%d" % sessions)
    cs = [client() for _ in range(sessions)]
    p = path("counter") + "/counter"

    def step_of(c):
        counter = c.Counter(p)

        def step():
            counter.__add__(1)  # what `counter += 1` does, without rebinding the name
            return 1
        return step

    n, secs, _ = closed_loop([step_of(c) for c in cs])
    result("atomic_counter_add/sessions:%d" % sessions, n / secs, "increments/s")
    stop_all(cs)


def sequence_next(in_flight):
    progress("sequence_next/in_flight:%d" % in_flight)
    c = client()
    p = path("sequence") + "/seq"
    c.create(p, b"", makepath=True)
    slots = threading.Semaphore(in_flight)
    lock = threading.Lock()
    values = [0]
    errors = [0]
    stop = threading.Event()

    def done(async_result):
        try:
            stat = async_result.get_nowait()
            ok = stat.version > 0
        except Exception:  # noqa: BLE001 - counted
            ok = False
        with lock:
            if ok:
                values[0] += 1
            else:
                errors[0] += 1
        slots.release()

    def pump():
        while True:
            slots.acquire()
            if stop.is_set():
                return
            c.set_async(p, b"").rawlink(done)

    t = threading.Thread(target=pump)
    t.start()
    time.sleep(0.5)
    with lock:
        n0 = values[0]
    t0 = time.monotonic()
    time.sleep(SECONDS)
    with lock:
        n1 = values[0]
    t1 = time.monotonic()
    stop.set()
    slots.release()
    t.join()
    for _ in range(in_flight):  # the calls in flight have completed
        slots.acquire()
    if errors[0]:
        progress("%d sets failed" % errors[0])
    result("sequence_next/in_flight:%d" % in_flight, (n1 - n0) / (t1 - t0), "values/s")
    stop_all([c])


# ---- leader failover --------------------------------------------------------------------------

class Contender:
    """A client contending in a kazoo Election on a thread of its own."""

    def __init__(self, p, ident, last, cond):
        self.ident = ident
        self.client = client()
        self.election = self.client.Election(p, "c%d" % ident)
        self.done = threading.Event()
        self.joined = threading.Event()

        def lead():
            with cond:
                last[:] = [ident, time.monotonic()]
                cond.notify_all()
            self.done.wait()  # leads until told to stop

        def run():
            try:
                self.election.run(lead)
            except Exception:  # noqa: BLE001 - the session was closed under it: expected
                pass

        # Joined once its lock node exists (kazoo's Lock names it <uuid>__lock__<seq>).
        self.thread = threading.Thread(target=run)
        self.thread.start()
        deadline = time.monotonic() + 30
        while self.election.lock.node is None:
            if time.monotonic() > deadline:
                raise RuntimeError("contender did not join")
            time.sleep(0.0002)

    def stop(self):
        self.client.stop()
        self.done.set()
        self.thread.join()
        self.client.close()


def leader_failover(contenders, rounds):
    progress("leader_failover")
    p = path("latch") + "/latch"
    last = [0, 0.0]
    cond = threading.Condition()
    live = []
    next_id = 1
    for _ in range(contenders):
        live.append(Contender(p, next_id, last, cond))
        next_id += 1
    with cond:
        if not cond.wait_for(lambda: last[0] != 0, timeout=30):
            raise RuntimeError("no leader")
    total_ms = 0.0
    for _ in range(rounds):
        with cond:
            old = last[0]
        leader = next(c for c in live if c.ident == old)
        t0 = time.monotonic()
        leader.client.stop()  # closes the session: the server deletes its lock node
        with cond:
            if not cond.wait_for(lambda: last[0] != old, timeout=30):
                raise RuntimeError("no new leader")
            total_ms += (last[1] - t0) * 1000
        leader.stop()
        live.remove(leader)
        live.append(Contender(p, next_id, last, cond))
        next_id += 1
    result("leader_failover", total_ms / rounds, "ms")
    for c in live:
        c.stop()


# ---- watch fan-out ----------------------------------------------------------------------------

def watch_fanout(n, local, rounds):
    name = ("watch_fanout_local/%d" if local else "watch_fanout_sessions/%d") % n
    progress(name)
    writer = client()
    watchers = [client() for _ in range(1 if local else n)]
    p = path("fanout-local" if local else "fanout-sessions") + "/node"
    writer.create(p, b"v0", makepath=True)

    cond = threading.Condition()
    state = {"target": b"v0", "seen": 0, "first": 0.0, "last": 0.0}

    def on_data(data, stat):
        with cond:
            if data == state["target"]:
                now = time.monotonic()
                if state["seen"] == 0:
                    state["first"] = now
                state["seen"] += 1
                state["last"] = now
                cond.notify_all()

    for i in range(n):
        watchers[0 if local else i].DataWatch(p, on_data)
    with cond:
        if not cond.wait_for(lambda: state["seen"] >= n, timeout=30):
            raise RuntimeError("the watchers did not start")
    p0 = server_packets()
    all_ms = first_ms = 0.0
    for r in range(1, rounds + 1):
        value = b"v%d" % r
        with cond:
            state.update(target=value, seen=0)
        t0 = time.monotonic()
        writer.set(p, value)
        with cond:
            if not cond.wait_for(lambda: state["seen"] >= n, timeout=30):
                raise RuntimeError("%s: not all watchers saw %r" % (name, value))
            all_ms += (state["last"] - t0) * 1000
            first_ms += (state["first"] - t0) * 1000
    p1 = server_packets()
    result(name, all_ms / rounds, "ms")
    result(name.replace("/", "_first/"), first_ms / rounds, "ms")
    if p0 is not None and p1 is not None:
        result(name.replace("/", "_requests_per_change/"), (p1 - p0) / rounds, "requests")
    stop_all(watchers + [writer])


def main():
    global CONNECT, SECONDS
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: recipe_bench.py <connect> [seconds per throughput benchmark]")
    CONNECT = sys.argv[1]
    if len(sys.argv) == 3:
        SECONDS = float(sys.argv[2])
    logging.basicConfig(level=logging.CRITICAL)  # closed sessions make kazoo log; not results
    for c in (4, 2):
        lock_handoff(c)
    for s in (1, 4):
        atomic_counter_add(s)
    for f in (1, 16):
        sequence_next(f)
    leader_failover(3, 30)
    for local in (False, True):
        for n in (10, 100):
            watch_fanout(n, local, 100)


if __name__ == "__main__":
    main()
