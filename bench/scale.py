"""The scale figure of bench/run.sh (`--only scale`; not run by default: about 15
minutes): how the relays' costs grow with the work.

1. Concurrent connections: 1,000, 10,000 and 100,000 relayed connections opened and
   held, then a request and its reply on every one, several rounds; the relay's RSS
   per connection (the sum of VmRSS over its processes, held minus before) and its
   CPU per request (the on-CPU time of its threads, /proc/PID/task/TID/schedstat, in
   nanoseconds), beside the kernel's socket memory (/proc/net/sockstat's TCP pages and
   the socket slabs of /proc/slabinfo, which count the clients' and the backends'
   sockets too: four a relayed connection).
2. Remotes: 10, 100 and 1,000 remotes, all live (one backend process listening on
   1,000 ports of 127.0.2.1): the relay's CPU per new connection and per request and
   its RSS per held connection, interleaved over the rounds.
3. Reload: SIGHUP with 20,000 live sessions; every session asked again after the
   reload; the old generation's workers must exit once the sessions end, and the
   relay's RSS come back near the new generation's.

The open-file limit here is 20,000 a process and cannot be raised, so everything is
spread over processes: clients (bench/scaleproc.py hold, at most 16,000 connections
each, from their own source address 127.0.0.N, bound before the connect), backends
(bench/scaleproc.py serve, 16,000 each, on 127.0.1.N, so no local port range runs
out), and tcprelay's workers (9,000 sessions each: two descriptors a session).
HAProxy is one process (nbthread 2): it needs two descriptors a connection in that
process, so it holds at most `maxconn` 9,990 here; it is measured up to that.

A/B comparison of two tcprelay builds: with TCPRELAY_SCALE_COMPARE=PATH in the
environment, the binary at PATH is measured too, as a third relay ("tcprelay B"),
interleaved with the others in the remotes curve.

Every process is started through the benchmark's process groups and stopped with
them. Python standard library only.
"""

import math
import os
import select
import signal
import statistics
import subprocess
import sys
import time

import svgplot

HERE = os.path.dirname(os.path.abspath(__file__))
SCALEPROC = os.path.join(HERE, "scaleproc.py")
PER_CLIENT = 16000
PER_BACKEND = 16000
PER_WORKER = 9000
COMPARE = os.environ.get("TCPRELAY_SCALE_COMPARE")
KINDS = ["tcprelay", "haproxy"] + (["compare"] if COMPARE else [])


class Helper:
    """A bench/scaleproc.py process, its standard input and output as pipes, in its own
    process group registered with the benchmark's (stopped with the others)."""

    def __init__(self, bench, name, argv):
        self.name = name
        log = open(bench.path(f"{name}.log"), "ab")
        self.p = subprocess.Popen(
            [sys.executable, SCALEPROC] + argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=log, start_new_session=True, cwd=bench.workdir)
        bench.procs.live.append((name, self.p))
        bench.procs.pgids.add(self.p.pid)
        bench.procs.started += 1
        self.buf = b""

    def send(self, line):
        self.p.stdin.write((line + "\n").encode())
        self.p.stdin.flush()

    def read(self, timeout):
        deadline = time.time() + timeout
        fd = self.p.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.time()
            if left <= 0:
                raise RuntimeError(f"{self.name}: no answer in {timeout:.0f} s")
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise RuntimeError(f"{self.name} exited ({self.p.poll()})")
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        import json
        return json.loads(line)


# --------------------------------------------------------------------------------------
# Measures


def cpu_ns(m, root):
    """On-CPU time (ns) of every thread of a process and its descendants."""
    total = 0
    for pid in m.tree(root):
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    return total


def sockstat_pages():
    """TCP memory in pages (/proc/net/sockstat: buffers charged to TCP sockets)."""
    for line in open("/proc/net/sockstat"):
        if line.startswith("TCP:"):
            f = line.split()
            return int(f[f.index("mem") + 1])
    return 0


SLABS = ("TCP", "request_sock_TCP", "tw_sock_TCP", "sock_inode_cache", "filp", "dentry",
         "eventpoll_epi", "eventpoll_pwq", "skbuff_head_cache")


def slab_kib():
    """KiB in the slabs a TCP socket with a descriptor uses (None: unreadable)."""
    try:
        lines = open("/proc/slabinfo").read().splitlines()[2:]
    except OSError:
        return None
    total = 0
    for line in lines:
        f = line.split()
        if f and f[0] in SLABS:
            total += int(f[2]) * int(f[3])  # num_objs * objsize
    return total / 1024


def snapshot(m, root):
    rss, nproc = m.rss_kib(root)
    return {"rss": rss, "nproc": nproc, "tcp_pages": sockstat_pages(), "slab": slab_kib()}


def per(after, before, key, n):
    if after.get(key) is None or before.get(key) is None or n <= 0:
        return None
    return (after[key] - before[key]) / n


# --------------------------------------------------------------------------------------
# Processes of the figure


class Scale:
    def __init__(self, bench, args, m):
        self.bench, self.args, self.m = bench, args, m
        self.quick = args.quick
        self.src_next = 10  # the clients' source addresses, 127.0.0.N, one per process
        self.notes = []

    def src(self):
        self.src_next = self.src_next + 1 if self.src_next < 250 else 10
        return f"127.0.0.{self.src_next}"

    def backends(self, name, specs):
        """Starts a backend process per spec; their (address, port) lists."""
        out = []
        for i, spec in enumerate(specs):
            h = Helper(self.bench, f"{name}-{i}", ["serve", spec])
            out.append((h, [tuple(x) for x in h.read(30)["ports"]]))
        return out

    def conns(self, backends):
        """Connections the backends hold (each asked with SIGUSR1)."""
        total = 0
        for h, _ in backends:
            os.kill(h.p.pid, signal.SIGUSR1)
        for h, _ in backends:
            total += h.read(20)["conns"]
        return total

    def wait_conns(self, backends, want, timeout):
        deadline = time.time() + timeout
        while True:
            have = self.conns(backends)
            if have >= want or time.time() > deadline:
                return have
            time.sleep(0.3)

    def tcprelay(self, name, remotes, workers, binary=None):
        m = self.m
        port = m.free_port()
        lines = "".join(f"    remote = {{ address = {a} port = {p} }}\n" for a, p in remotes)
        cfg = (
            "id = spawnd {\n"
            f"    listen = {{ address = {m.HOST} port = {port} backlog = 4096 }}\n"
            f"    spawn = {{ servers min = {workers} servers max = {workers} "
            f"users max = {PER_WORKER} }}\n"
            "}\n"
            "id = tcprelay {\n"
            # No record per connection, as in the other figures (HAProxy has no `log`).
            "    connection log = no\n"
            f"{lines}"
            "}\n")
        shown = cfg if len(remotes) <= 3 else cfg.replace(
            lines, f"    remote = {{ ... }}   # {len(remotes)} remotes\n")
        path = self.bench.write(f"{name}.cfg", cfg)
        self.bench.configs[f"scale: tcprelay, {len(remotes)} remotes, {workers} workers"] = \
            self.bench.placeholders(shown, [(port, "PORT")] + [(p, "BACKEND_PORT") for _, p in remotes])
        plan = self.bench.path(f"{name}.plan")
        r = subprocess.run([m.TCPRELAY_CC, "compile", path, "-o", plan],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"tcprelay-cc compile {path}: {r.stderr.strip()}")
        p = self.bench.procs.start(name, [binary or m.TCPRELAY, "run", "-f", plan])
        m.wait_port(port, p)
        return p, port

    def haproxy(self, name, remotes):
        m = self.m
        port = m.free_port()
        maxconn = self.bench.haproxy_maxconn()
        servers = "".join(f"    server s{i} {a}:{p}\n" for i, (a, p) in enumerate(remotes))
        cfg = (
            "global\n"
            f"    maxconn {maxconn}\n"
            "    nbthread 2\n"
            "defaults\n"
            "    mode tcp\n"
            f"    maxconn {maxconn}\n"
            "    timeout connect 10s\n"
            "    timeout client 1h\n"
            "    timeout server 1h\n"
            "frontend in\n"
            f"    bind {m.HOST}:{port}\n"
            "    backlog 4096\n"
            "    default_backend out\n"
            "backend out\n"
            "    balance leastconn\n"
            f"{servers}")
        shown = cfg if len(remotes) <= 3 else cfg.replace(
            servers, f"    server ...   # {len(remotes)} servers\n")
        path = self.bench.write(f"{name}.cfg", cfg)
        self.bench.configs[f"scale: HAProxy, {len(remotes)} servers"] = self.bench.placeholders(
            shown, [(port, "PORT")] + [(p, "BACKEND_PORT") for _, p in remotes])
        p = self.bench.procs.start(name, ["haproxy", "-db", "-f", path])
        m.wait_port(port, p)
        return p, port

    def relay(self, kind, name, remotes, workers=2):
        if kind == "tcprelay":
            return self.tcprelay(name, remotes, workers)
        if kind == "compare":
            return self.tcprelay(name, remotes, workers, COMPARE)
        return self.haproxy(name, remotes)

    def clients(self, port, n, tag):
        """Client processes holding n connections to the relay in all."""
        k = max(1, math.ceil(n / PER_CLIENT))
        hs = []
        for i in range(k):
            share = n // k + (1 if i < n % k else 0)
            hs.append(Helper(self.bench, f"hold-{tag}-{i}",
                             ["hold", "--src", self.src(), "--dst", f"{self.m.HOST}:{port}",
                              "--n", str(share)]))
        return hs

    def gather(self, hs, timeout):
        return [h.read(timeout) for h in hs]

    def ping(self, hs, rounds, n):
        """A request on every connection, `rounds` times: (served, requests, failures)."""
        timeout = 60 + rounds * n / 2000
        for h in hs:
            h.send(f"ping {rounds}")
        res = self.gather(hs, timeout + 30)
        failed = {}
        for r in res:
            for k, v in r["failed"].items():
                failed[k] = failed.get(k, 0) + v
        return sum(r["served"] for r in res), sum(r["requests"] for r in res), failed

    def close(self, hs):
        for h in hs:
            try:
                h.send("close")
                h.read(30)
            except (OSError, RuntimeError):
                pass
            self.bench.procs.stop(h.p, grace=2)

    # ----------------------------------------------------------------------------------
    # 1. concurrent connections

    def held(self, kind, n, backends):
        remotes = [a for _, ports in backends for a in ports]
        workers = max(2, math.ceil(n / PER_WORKER) + 1)
        p, port = self.relay(kind, f"scale-{kind}-{n}", remotes, workers)
        hs = []
        try:
            self.bench.warm_up(port)
            base = self.conns(backends)
            before = snapshot(self.m, p.pid)
            t0 = time.time()
            hs = self.clients(port, n, f"{kind}-{n}")
            opened = self.gather(hs, 120 + n / 500)
            connected = sum(r["connected"] for r in opened)
            relayed = self.wait_conns(backends, base + connected, 60 + n / 2000) - base
            t_open = time.time() - t0
            time.sleep(1.0)
            held = snapshot(self.m, p.pid)
            requests_wanted = 50000 if self.quick else 200000
            rounds = max(2, math.ceil(requests_wanted / max(1, connected)))
            c0 = cpu_ns(self.m, p.pid)
            t1 = time.time()
            served, requests, failed = self.ping(hs, rounds, connected)
            t_ping = time.time() - t1
            c1 = cpu_ns(self.m, p.pid)
            after = snapshot(self.m, p.pid)
            if p.poll() is not None:
                raise RuntimeError(f"{kind} exited ({p.returncode})")
            return {
                "relay": kind, "n": n, "workers": workers if kind == "tcprelay" else None,
                "connected": connected, "relayed": relayed, "served": served,
                "rounds": rounds, "requests": requests, "failed": failed,
                "open_s": round(t_open, 1), "ping_s": round(t_ping, 1),
                "rss_before": before["rss"], "rss_held": held["rss"], "rss_served": after["rss"],
                "nproc": held["nproc"],
                "rss_per_conn": per(held, before, "rss", connected),
                "rss_per_conn_served": per(after, before, "rss", connected),
                "cpu_per_request_us": (c1 - c0) / 1000 / max(1, requests),
                "tcp_pages_per_conn": per(held, before, "tcp_pages", connected),
                "slab_per_conn": per(held, before, "slab", connected),
            }
        finally:
            self.close(hs)
            self.bench.procs.stop(p)
            self.wait_conns(backends, 0, 30)

    # ----------------------------------------------------------------------------------
    # 2. remotes

    def remotes_point(self, kind, r, ports, backends):
        remotes = ports[:r]
        p, port = self.relay(kind, f"scale-{kind}-r{r}", remotes, 2)
        hs = []
        try:
            self.bench.warm_up(port)
            n_new = 4000 if self.quick else 20000
            k = 2
            c0 = cpu_ns(self.m, p.pid)
            churns = [Helper(self.bench, f"churn-{kind}-{r}-{i}",
                             ["churn", "--src", self.src(), "--dst", f"{self.m.HOST}:{port}",
                              "--n", str(n_new // k), "--concurrency", "50"]) for i in range(k)]
            done = self.gather(churns, 300)
            c1 = cpu_ns(self.m, p.pid)
            for h in churns:
                self.bench.procs.stop(h.p, grace=2)
            n_done = sum(x["done"] for x in done)
            failed = {}
            for x in done:
                for a, b in x["failed"].items():
                    failed[a] = failed.get(a, 0) + b
            self.wait_conns(backends, 0, 30)
            n_held = 2000
            before = snapshot(self.m, p.pid)
            hs = self.clients(port, n_held, f"{kind}-r{r}")
            connected = sum(x["connected"] for x in self.gather(hs, 120))
            self.wait_conns(backends, connected, 60)
            time.sleep(0.5)
            held = snapshot(self.m, p.pid)
            rounds = 10 if self.quick else 25
            c2 = cpu_ns(self.m, p.pid)
            served, requests, pfailed = self.ping(hs, rounds, connected)
            c3 = cpu_ns(self.m, p.pid)
            return {
                "relay": kind, "remotes": r, "new": n_done, "new_failed": failed,
                "cpu_per_conn_us": (c1 - c0) / 1000 / max(1, n_done),
                "held": connected, "served": served, "requests": requests,
                "cpu_per_request_us": (c3 - c2) / 1000 / max(1, requests),
                "rss_per_conn": per(held, before, "rss", connected),
                "failed": pfailed,
            }
        finally:
            self.close(hs)
            self.bench.procs.stop(p)
            self.wait_conns(backends, 0, 30)

    # ----------------------------------------------------------------------------------
    # 3. reload

    def reload(self, n, backends):
        m = self.m
        remotes = [a for _, ports in backends for a in ports]
        workers = max(2, math.ceil(n / PER_WORKER) + 1)
        p, port = self.tcprelay(f"scale-reload-{n}", remotes, workers)
        hs = []
        try:
            self.bench.warm_up(port)
            fresh = m.rss_kib(p.pid)[0]
            hs = self.clients(port, n, "reload")
            connected = sum(x["connected"] for x in self.gather(hs, 120 + n / 500))
            self.wait_conns(backends, connected, 60)
            served_before, _, failed_before = self.ping(hs, 1, connected)
            old = set(m.tree(p.pid)) - {p.pid}
            rss_old = m.rss_kib(p.pid)[0]
            t0 = time.time()
            os.kill(p.pid, signal.SIGHUP)
            new = set()
            deadline = time.time() + 60
            while time.time() < deadline:
                new = set(m.tree(p.pid)) - old - {p.pid}
                if len(new) >= len(old):
                    break
                time.sleep(0.1)
            t_new = time.time() - t0
            time.sleep(1.0)
            rss_new_gen = sum(rss_one(q) for q in new | {p.pid})
            served_after, _, failed_after = self.ping(hs, 1, connected)
            still_old = [q for q in old if m.proc_stat(q) and m.proc_stat(q)[2] != "Z"]
            # New connections go to the new generation.
            ok_new = sum(exchange(m.HOST, port) for _ in range(50))
            rss_both = m.rss_kib(p.pid)[0]
            self.close(hs)
            hs = []
            t1 = time.time()
            deadline = time.time() + 60
            while time.time() < deadline:
                alive = [q for q in old if m.proc_stat(q) and m.proc_stat(q)[2] != "Z"]
                if not alive:
                    break
                time.sleep(0.1)
            t_exit = time.time() - t1
            time.sleep(2.0)
            rss_end = m.rss_kib(p.pid)[0]
            return {
                "n": n, "workers": workers, "connected": connected,
                "served_before": served_before, "served_after": served_after,
                "failed_before": failed_before, "failed_after": failed_after,
                "old_workers": len(old), "old_alive_after_reload": len(still_old),
                "old_alive_at_end": len(alive), "new_workers": len(new),
                "new_gen_s": round(t_new, 1), "old_exit_s": round(t_exit, 1),
                "new_conns_ok": ok_new, "rss_fresh": fresh, "rss_old_gen": rss_old,
                "rss_new_gen": rss_new_gen, "rss_both": rss_both, "rss_end": rss_end,
            }
        finally:
            self.close(hs)
            self.bench.procs.stop(p)
            self.wait_conns(backends, 0, 30)


def rss_one(pid):
    """VmRSS (KiB) of one process (0 if it is gone)."""
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def exchange(host, port):
    import socket
    try:
        with socket.create_connection((host, port), timeout=5) as s:
            s.sendall(b"PING\r\n")
            return 1 if s.recv(64) == b"PING\r\n" else 0
    except OSError:
        return 0


# --------------------------------------------------------------------------------------
# The figure


def run(bench, args, m):
    """Runs the scale figure; returns (markdown, data, plots)."""
    s = Scale(bench, args, m)
    quick = args.quick
    rounds = 1 if quick else max(1, min(args.rounds, 3))
    levels = [1000, 10000] if quick else [1000, 10000, 100000]
    remote_counts = [10, 100, 1000]
    reload_n = 4000 if quick else 20000
    hap_max = bench.haproxy_maxconn()
    data = {"levels": [], "remotes": [], "reload": None, "rounds": rounds,
            "haproxy_maxconn": hap_max}
    t_start = time.time()

    nb = max(2, math.ceil(max(levels) / PER_BACKEND) + 1)
    m.log(f"scale: {nb} backend processes on 127.0.1.1-{nb}")
    pool = s.backends("scale-backend", [f"127.0.1.{i + 1}:1" for i in range(nb)])
    try:
        # 1. Concurrent connections (the largest level once, in the first round).
        for r in range(rounds):
            plan = [(kind, n) for n in levels for kind in ("tcprelay", "haproxy")
                    if (n < 100000 or r == 0)]
            plan = plan[r % len(plan):] + plan[:r % len(plan)]
            for kind, n in plan:
                if kind == "haproxy" and n > hap_max:
                    if n > 2 * hap_max:
                        continue
                    n = hap_max  # where it stops: see the note
                t0 = time.time()
                try:
                    res = s.held(kind, n, pool)
                except RuntimeError as e:
                    bench.anomalies.append(f"scale, {kind}, {n:,} connections: {e}")
                    m.log(f"  scale {kind} {n}: FAILED {e}")
                    continue
                res["round"] = r + 1
                data["levels"].append(res)
                m.log(f"  scale {kind:<8} {n:>7,} conns: served {res['served']:,}, "
                      f"RSS {fmtn(res['rss_per_conn'])} KiB/conn, CPU "
                      f"{res['cpu_per_request_us']:.2f} µs/request ({time.time() - t0:.0f} s)")
        # 3. Reload with live sessions.
        try:
            data["reload"] = s.reload(reload_n, pool)
            m.log(f"  scale reload: {data['reload']}")
        except RuntimeError as e:
            bench.anomalies.append(f"scale, reload: {e}")
    finally:
        for h, _ in pool:
            bench.procs.stop(h.p, grace=2)

    # 2. Remotes: one backend process listening on 1,000 ports of 127.0.2.1.
    many = s.backends("scale-remotes", [f"127.0.2.1:{max(remote_counts)}"])
    ports = many[0][1]
    try:
        for r in range(rounds):
            plan = [(kind, k) for k in remote_counts for kind in KINDS]
            plan = plan[r % len(plan):] + plan[:r % len(plan)]
            for kind, k in plan:
                t0 = time.time()
                try:
                    res = s.remotes_point(kind, k, ports, many)
                except RuntimeError as e:
                    bench.anomalies.append(f"scale, {kind}, {k} remotes: {e}")
                    m.log(f"  scale {kind} {k} remotes: FAILED {e}")
                    continue
                res["round"] = r + 1
                data["remotes"].append(res)
                m.log(f"  scale {kind:<8} {k:>5} remotes: {res['cpu_per_conn_us']:.1f} µs/conn, "
                      f"{res['cpu_per_request_us']:.2f} µs/request, "
                      f"RSS {fmtn(res['rss_per_conn'])} KiB/conn ({time.time() - t0:.0f} s)")
    finally:
        for h, _ in many:
            bench.procs.stop(h.p, grace=2)
    data["seconds"] = round(time.time() - t_start)
    return data


def fmtn(v, digits=2):
    return "–" if v is None else f"{v:.{digits}f}"


def med(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


NAMES = {"tcprelay": "tcprelay", "haproxy": "HAProxy", "compare": "tcprelay B"}


def report(data, plot_paths):
    """Markdown for the scale figure."""
    out = []
    w = out.append
    w(f"#### Scale (`--only scale`, {data['seconds'] // 60} min {data['seconds'] % 60} s)")
    w("")
    w(f"Concurrent connections: held, then a request and its echo on every one, "
      f"several rounds (medians of {data['rounds']} round(s) below 100,000; 100,000 once). "
      "RSS: the relay's processes, held minus before; CPU: its threads' on-CPU time "
      "over the requests (schedstat); kernel: /proc/net/sockstat TCP pages and the socket "
      "slabs, after minus before, for the four sockets of a relayed connection "
      "(client, relay ×2, backend).")
    w("")
    w("| relay | connections | workers | relayed | served (every round) | rounds | open s "
      "| RSS KiB/conn held | after served | CPU µs/request | kernel TCP pages/conn "
      "| slab KiB/conn |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    groups = {}
    for row in data["levels"]:
        groups.setdefault((row["relay"], row["n"]), []).append(row)
    for (kind, n), rows in sorted(groups.items(), key=lambda x: (x[0][0] != "tcprelay", x[0][1])):
        last = rows[-1]
        w(f"| {NAMES[kind]} | {n:,} | {last['workers'] or '1 (nbthread 2)'} | "
          f"{min(r['relayed'] for r in rows):,} | {min(r['served'] for r in rows):,} | "
          f"{last['rounds']} | {med(rows, 'open_s'):.1f} | {fmtn(med(rows, 'rss_per_conn'))} | "
          f"{fmtn(med(rows, 'rss_per_conn_served'))} | {fmtn(med(rows, 'cpu_per_request_us'))} | "
          f"{fmtn(med(rows, 'tcp_pages_per_conn'), 3)} | {fmtn(med(rows, 'slab_per_conn'))} |")
    w("")
    big = groups.get(("tcprelay", 100000))
    if big:
        r = big[0]
        ok = r["served"] == 100000 and r["relayed"] >= 100000
        mem = r["rss_per_conn"]
        w(f"- 100,000 held then all served: {'met' if ok else '**not met**'} "
          f"({r['served']:,} served of {r['connected']:,} connected; failures: "
          f"{r['failed'] or 'none'}).")
        w(f"- RSS per connection ≤ 0.5 KiB: {'met' if mem is not None and mem <= 0.5 else '**not met**'}"
          f" ({fmtn(mem)} KiB: {r['rss_before']:,} → {r['rss_held']:,} KiB over "
          f"{r['nproc']} processes; the kernel's: {fmtn(r['tcp_pages_per_conn'], 3)} TCP pages "
          f"and {fmtn(r['slab_per_conn'])} KiB of slab a relayed connection).")
    hm = data["haproxy_maxconn"]
    w(f"- HAProxy stops at {hm:,} connections: one process, two descriptors a relayed "
      f"connection, and an open-file limit of 20,000 that cannot be raised here "
      f"(`maxconn {hm}`); it is measured at 1,000 and at {hm:,}, not at 100,000.")
    w("")
    w("Remotes, all live (one backend process on as many ports of 127.0.2.1), "
      f"2 tcprelay workers / HAProxy nbthread 2 with `balance leastconn`; medians of "
      f"{data['rounds']} interleaved round(s): new connections (connect, one request, "
      "close; 50 at a time from 2 clients), requests on 2,000 held connections.")
    w("")
    w("| relay | remotes | CPU µs/new connection | per round | CPU µs/request | per round "
      "| RSS KiB/conn | vs 10 remotes (per connection) |")
    w("|---|---:|---:|---|---:|---|---:|---:|")
    rg = {}
    for row in data["remotes"]:
        rg.setdefault((row["relay"], row["remotes"]), []).append(row)
    verdict = None
    for (kind, k), rows in sorted(rg.items(), key=lambda x: (list(NAMES).index(x[0][0]), x[0][1])):
        c = med(rows, "cpu_per_conn_us")
        base = med(rg.get((kind, 10), []), "cpu_per_conn_us")
        ratio = c / base if c and base else None
        if kind == "tcprelay" and k == 1000 and ratio:
            verdict = ratio
        w(f"| {NAMES[kind]} | {k:,} | {fmtn(c, 1)} | "
          + " ".join(fmtn(r["cpu_per_conn_us"], 1) for r in rows)
          + f" | {fmtn(med(rows, 'cpu_per_request_us'))} | "
          + " ".join(fmtn(r["cpu_per_request_us"]) for r in rows)
          + f" | {fmtn(med(rows, 'rss_per_conn'))} | {fmtn(ratio)}× |")
    w("")
    if verdict is not None:
        w(f"- 1,000 remotes cost no more per connection than 10 (within 5 %): "
          f"{'met' if verdict <= 1.05 else '**not met**'} ({verdict:.2f}×).")
        w("")
    rl = data.get("reload")
    if rl:
        cut = rl["connected"] - rl["served_after"]
        w(f"Reload (SIGHUP) with {rl['n']:,} live sessions ({rl['workers']} workers a generation):")
        w("")
        w(f"- sessions cut by the reload: {cut} ({rl['served_after']:,} of {rl['connected']:,} "
          f"answered a request after it, {rl['served_before']:,} before; failures "
          f"{rl['failed_after'] or 'none'}): {'met' if cut == 0 else '**not met**'}.")
        w(f"- the new generation's {rl['new_workers']} workers were up {rl['new_gen_s']} s after "
          f"the signal; {rl['new_conns_ok']}/50 new connections served by it; the old "
          f"generation's {rl['old_workers']} workers exited {rl['old_exit_s']} s after the sessions "
          f"closed ({rl['old_alive_at_end']} left).")
        back = rl["rss_end"] <= 1.2 * max(rl["rss_fresh"], rl["rss_new_gen"])
        w(f"- RSS of the relay (KiB): fresh {rl['rss_fresh']:,}; with the sessions "
          f"{rl['rss_old_gen']:,}; both generations {rl['rss_both']:,} (the new one "
          f"{rl['rss_new_gen']:,} with the master); once the sessions ended and the old workers "
          f"exited {rl['rss_end']:,}: {'returned' if back else '**not returned**'}.")
        w("")
    if plot_paths:
        w("Plots: " + ", ".join(f"[{os.path.basename(p)}]({os.path.basename(p)})" for p in plot_paths))
        w("")
    return "\n".join(out) + "\n"


def plots(data, prefix):
    """The SVG charts; returns their paths (prefix + NAME.svg)."""
    paths = []

    def series(rows, key_x, key_y, kind):
        pts = {}
        for r in rows:
            if r["relay"] == kind and r.get(key_y) is not None:
                pts.setdefault(r[key_x], []).append(r[key_y])
        return [(x, statistics.median(v)) for x, v in sorted(pts.items())]

    hm = data["haproxy_maxconn"]
    note = (f"HAProxy stops at {hm:,}: one process, 2 descriptors a connection, "
            "open-file limit 20,000")
    charts = [
        ("conns-cpu", data["levels"], "n", "cpu_per_request_us",
         "Relay CPU per request against concurrent connections",
         "concurrent connections", "relay CPU per request (µs)", note),
        ("conns-rss", data["levels"], "n", "rss_per_conn",
         "Relay memory per connection against concurrent connections",
         "concurrent connections", "relay RSS per connection (KiB)", note),
        ("remotes-newconn", data["remotes"], "remotes", "cpu_per_conn_us",
         "Relay CPU per new connection against the number of remotes",
         "remotes (all live)", "relay CPU per new connection (µs)", None),
        ("remotes-request", data["remotes"], "remotes", "cpu_per_request_us",
         "Relay CPU per request against the number of remotes",
         "remotes (all live)", "relay CPU per request (µs)", None),
        ("remotes-rss", data["remotes"], "remotes", "rss_per_conn",
         "Relay memory per connection against the number of remotes",
         "remotes (all live)", "relay RSS per connection (KiB)", None),
    ]
    for name, rows, kx, ky, title, xl, yl, footnote in charts:
        lines = [(NAMES[k], series(rows, kx, ky, k)) for k in KINDS]
        lines = [(n, pts) for n, pts in lines if pts]
        if not lines:
            continue
        path = f"{prefix}{name}.svg"
        with open(path, "w") as f:
            f.write(svgplot.line_chart(title, xl, yl, lines, xlog=True, note=footnote))
        paths.append(path)
    return paths
