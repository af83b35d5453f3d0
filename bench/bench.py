#!/usr/bin/env python3
"""Side-by-side benchmark of tcprelay against HAProxy, socat and stunnel (DESIGN §3).

Run it through bench/run.sh, which installs the peers and builds the binaries:

    bench/run.sh [--rounds N] [--quick]

Everything runs on 127.0.0.1 with ports chosen by the OS (a socket bound to port 0).
Each round measures every figure, and within a figure every target, in an order that
rotates from round to round, so a slow minute of the machine does not fall on one
target only. The table reports the median of the rounds and the ratios
tcprelay / peer and tcprelay / direct, against the targets of DESIGN §3.

Every process started here is in its own process group and is stopped (SIGTERM, then
SIGKILL) when the benchmark ends, fails or is interrupted; at the end the script
checks that none is left. Python standard library only.
"""

import argparse
import atexit
import datetime
import errno
import json
import os
import platform
import re
import resource
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")
TCPRELAY = os.path.join(BIN, "tcprelay")
TCPRELAY_CC = os.path.join(BIN, "tcprelay-cc")
TLSLOAD = os.path.join(BIN, "examples", "tlsload")
# The kernel floor (runtime/examples/floor.rs): a minimal relay making only the system
# calls a relay must, in the redis figures beside the relays (not a peer: a yardstick);
# twice: on edge-triggered epoll ("floor") and on io_uring's completions ("floor-uring").
FLOOR = os.path.join(BIN, "examples", "floor")
HOST = "127.0.0.1"
# The one TLS 1.3 suite the load client offers, so that every terminator is measured
# on the same cipher (left to themselves, tcprelay picks this one and HAProxy and
# stunnel TLS_AES_256_GCM_SHA384).
TLS_SUITE = "TLS_AES_128_GCM_SHA256"


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------
# Processes


class Procs:
    """Every process the benchmark starts; each leads its own process group, so its
    children (tcprelay's workers, socat's forks) are stopped with it."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.live = []  # (name, Popen)
        self.pgids = set()
        self.started = 0

    def start(self, name, argv, stdout=None):
        out = stdout or open(os.path.join(self.workdir, f"{name}.log"), "ab")
        err = open(os.path.join(self.workdir, f"{name}.log"), "ab")
        p = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            cwd=self.workdir,
        )
        self.live.append((name, p))
        self.pgids.add(p.pid)
        self.started += 1
        return p

    def stop(self, p, grace=5.0):
        """SIGTERM to the process, as a service manager would (tcprelay's master then
        stops its workers itself); after `grace` seconds SIGTERM to what is left of
        its group (socat's forks), and SIGKILL two seconds later."""
        for sig, wait in ((signal.SIGTERM, grace), ("group", 2.0), (signal.SIGKILL, 0)):
            if not group_members(p.pid) and p.poll() is not None:
                break
            try:
                if sig == "group":
                    os.killpg(p.pid, signal.SIGTERM)
                elif sig == signal.SIGTERM:
                    os.kill(p.pid, sig)
                else:
                    os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
            deadline = time.time() + wait
            while time.time() < deadline:
                p.poll()
                if p.returncode is not None and not group_members(p.pid):
                    break
                time.sleep(0.05)
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.live = [(n, q) for (n, q) in self.live if q is not p]

    def stop_all(self):
        for _, p in list(reversed(self.live)):
            self.stop(p)

    def leftovers(self):
        return [pid for g in self.pgids for pid in group_members(g)]


def stat_fields(pid):
    """The fields of /proc/PID/stat after the command name (state first), or None
    if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    return s[s.rindex(")") + 2 :].split()


def cpu_of(fields):
    """utime + stime + cutime + cstime, in clock ticks, from stat_fields()."""
    return sum(int(x) for x in fields[11:15])


def proc_stat(pid):
    """(ppid, pgrp, state) of a process, or None if it is gone."""
    fields = stat_fields(pid)
    if fields is None:
        return None
    return int(fields[1]), int(fields[2]), fields[0]


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def group_members(pgid):
    """Live (not zombie) processes of a process group."""
    out = []
    for pid in all_pids():
        st = proc_stat(pid)
        if st and st[1] == pgid and st[2] != "Z":
            out.append(pid)
    return out


def tree(root):
    """A process and all its descendants."""
    children = {}
    for pid in all_pids():
        st = proc_stat(pid)
        if st:
            children.setdefault(st[0], []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def rss_kib(root):
    """Sum of VmRSS (KiB) of a process and all its descendants, and their count."""
    total, n = 0, 0
    for pid in tree(root):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        n += 1
        except OSError:
            pass
    return total, n


def pss_kib(root):
    """Sum of Pss (KiB) of a process and its descendants: shared pages divided among
    the processes that share them (socat's forks share most of their pages)."""
    total = 0
    for pid in tree(root):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def tree_cpu_ticks(root):
    """CPU time (user + system, clock ticks) of a process and its live descendants,
    with the children they reaped."""
    total = 0
    for pid in tree(root):
        fields = stat_fields(pid)
        if fields is not None:
            total += cpu_of(fields)
    return total


def system_busy():
    """Busy CPU time of the whole machine, in clock ticks (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...
    return sum(fields[:3]) + sum(fields[5:7])


def system_idle():
    """(idle ticks, all ticks) of the whole machine so far (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal
    return fields[3] + fields[4], sum(fields[:8])


def own_cpu(pgids):
    """CPU time, in clock ticks, of this process, its reaped children and every live
    process of the benchmark's process groups (with their reaped children)."""
    hz = os.sysconf("SC_CLK_TCK")
    t = os.times()
    total = (t.user + t.system + t.children_user + t.children_system) * hz
    for pid in all_pids():
        fields = stat_fields(pid)
        if fields is not None and int(fields[2]) in pgids:
            total += cpu_of(fields)
    return total


class Interference:
    """How much of the machine's CPU something other than the benchmark used during a
    measurement, as a share of all cores (0.0 to 1.0)."""

    def __init__(self, procs):
        self.procs = procs

    def __enter__(self):
        self.t0 = time.time()
        self.busy0 = system_busy()
        self.own0 = own_cpu(self.procs.pgids)
        return self

    def __exit__(self, *exc):
        hz = os.sysconf("SC_CLK_TCK")
        wall = (time.time() - self.t0) * hz * os.cpu_count()
        other = (system_busy() - self.busy0) - (own_cpu(self.procs.pgids) - self.own0)
        self.share = max(0.0, other / wall) if wall > 0 else 0.0
        return False


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_port(port, proc=None, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args[0]} exited with {proc.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def run(argv, timeout):
    """Runs a client to completion; (exit code, stdout, stderr)."""
    try:
        r = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, cwd=ROOT
        )
        return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace")
        return None, out, f"timed out after {timeout} s"


# --------------------------------------------------------------------------------------
# Relays under test


class Bench:
    def __init__(self, args, workdir):
        self.args = args
        self.workdir = workdir
        self.procs = Procs(workdir)
        self.nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self.configs = {}  # name -> text, shown in the results
        self.notes = []
        self.anomalies = []
        self.tls_seen = {}
        # (figure, target) -> per round: CPU µs per operation of the client, the
        # backend and the relay, and the share of the cores left idle
        self.costs = {}

    def path(self, name):
        return os.path.join(self.workdir, name)

    def write(self, name, text, show=None, ports=()):
        with open(self.path(name), "w") as f:
            f.write(text)
        if show:
            self.configs[show] = self.placeholders(text, ports)
        return self.path(name)

    def placeholders(self, text, ports):
        """The configuration as shown in the results: ports and the work directory
        replaced by names, as they change from run to run."""
        for port, name in ports:
            text = re.sub(rf"\b{port}\b", name, text)
        return text.replace(self.workdir, "$WORK")

    # -- backends --

    def start_backends(self):
        self.iperf_port = free_port()
        self.iperf = self.procs.start(
            "iperf3-server", ["iperf3", "-s", "-B", HOST, "-p", str(self.iperf_port)]
        )
        wait_port(self.iperf_port, self.iperf)
        self.redis_port = free_port()
        self.redis = self.procs.start(
            "redis-server",
            [
                "redis-server", "--port", str(self.redis_port), "--bind", HOST,
                "--save", "", "--appendonly", "no", "--maxclients", str(self.nofile - 1000),
                "--logfile", "",
            ],
        )
        wait_port(self.redis_port, self.redis)
        sink_out = self.path("sink.out")
        self.sink = self.procs.start("tls-sink", [TLSLOAD, "sink", f"{HOST}:0"],
                                     stdout=open(sink_out, "wb"))
        deadline = time.time() + 10
        self.sink_port = None
        while time.time() < deadline and self.sink_port is None:
            m = re.search(r"listening on [\d.]+:(\d+)", open(sink_out).read())
            if m:
                self.sink_port = int(m.group(1))
            else:
                time.sleep(0.05)
        if self.sink_port is None:
            raise RuntimeError("the TLS sink did not start")
        # The same self-signed EC P-256 certificate for every TLS terminator.
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:P-256", "-nodes", "-keyout", self.path("key.pem"),
             "-out", self.path("cert.pem"), "-days", "30", "-subj", "/CN=localhost"],
            check=True, capture_output=True,
        )
        os.chmod(self.path("key.pem"), 0o600)
        with open(os.open(self.path("combined.pem"), os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(open(self.path("cert.pem")).read() + open(self.path("key.pem")).read())
        # The TLS server behind the relays that originate TLS (tcprelay's tls = yes
        # remotes, stunnel's client mode): the sink behind TLS, with that certificate.
        tls_sink_out = self.path("tls-sink.out")
        self.tls_sink = self.procs.start(
            "tls-sink-server",
            [TLSLOAD, "tls-sink", "--cert", self.path("cert.pem"), "--key", self.path("key.pem"),
             f"{HOST}:0"],
            stdout=open(tls_sink_out, "wb"))
        deadline = time.time() + 10
        self.tls_sink_port = None
        while time.time() < deadline and self.tls_sink_port is None:
            m = re.search(r"listening on [\d.]+:(\d+)", open(tls_sink_out).read())
            if m:
                self.tls_sink_port = int(m.group(1))
            else:
                time.sleep(0.05)
        if self.tls_sink_port is None:
            raise RuntimeError("the TLS sink server did not start")

    # -- relays: each returns (Popen, port) --

    def tcprelay(self, name, backend_port, tls=False):
        port = free_port()
        tls_listen = " tls = yes" if tls else ""
        tls_files = (
            f"    tls cert-file = {self.path('cert.pem')}\n"
            f"    tls key-file = {self.path('key.pem')}\n" if tls else ""
        )
        cfg = (
            "id = spawnd {\n"
            f"    listen = {{ address = {HOST} port = {port} backlog = 4096{tls_listen} }}\n"
            "    spawn = { servers min = 2 servers max = 2 users max = 20000 }\n"
            "}\n"
            "id = tcprelay {\n"
            # No log line per connection, like the others (HAProxy has no `log`,
            # stunnel debug = 4): tcprelay's connection records are on by default,
            # two lines per session, a cost the others do not pay here.
            "    connection log = no\n"
            f"    remote = {{ address = {HOST} port = {backend_port} }}\n"
            f"{tls_files}"
            "}\n"
        )
        show = "tcprelay (TLS)" if tls else "tcprelay"
        cfgpath = self.write(f"{name}.cfg", cfg, show=show,
                             ports=[(port, "PORT"), (backend_port, "BACKEND_PORT")])
        plan = self.path(f"{name}.plan")
        r = subprocess.run([TCPRELAY_CC, "compile", cfgpath, "-o", plan],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"tcprelay-cc compile {cfgpath}: {r.stderr.strip()}")
        p = self.procs.start(name, [TCPRELAY, "run", "-f", plan])
        wait_port(port, p)
        return p, port

    def tcprelay_originating(self, name, backend_port):
        """tcprelay as stunnel's client mode: plain clients, TLS to the remote, whose
        certificate is verified (the CA file, the name localhost)."""
        port = free_port()
        cfg = (
            "id = spawnd {\n"
            f"    listen = {{ address = {HOST} port = {port} backlog = 4096 }}\n"
            "    spawn = { servers min = 2 servers max = 2 users max = 20000 }\n"
            "}\n"
            "id = tcprelay {\n"
            "    connection log = no\n"
            f"    remote = {{ address = {HOST} port = {backend_port} tls = yes "
            f"tls sni = localhost tls ca-file = {self.path('cert.pem')} }}\n"
            "}\n"
        )
        cfgpath = self.write(f"{name}.cfg", cfg, show="tcprelay (TLS client)",
                             ports=[(port, "PORT"), (backend_port, "BACKEND_PORT")])
        plan = self.path(f"{name}.plan")
        r = subprocess.run([TCPRELAY_CC, "compile", cfgpath, "-o", plan],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"tcprelay-cc compile {cfgpath}: {r.stderr.strip()}")
        p = self.procs.start(name, [TCPRELAY, "run", "-f", plan])
        wait_port(port, p)
        return p, port

    def stunnel_client(self, name, backend_port):
        """stunnel in client mode, verifying the remote as tcprelay does."""
        port = free_port()
        cfg = (
            "foreground = yes\n"
            "pid =\n"
            "debug = 4\n"
            "[bench]\n"
            "client = yes\n"
            f"accept = {HOST}:{port}\n"
            f"connect = {HOST}:{backend_port}\n"
            "sni = localhost\n"
            "verifyChain = yes\n"
            f"CAfile = {self.path('cert.pem')}\n"
            "checkHost = localhost\n"
        )
        cfgpath = self.write(f"{name}.conf", cfg, show="stunnel (client)",
                             ports=[(port, "PORT"), (backend_port, "BACKEND_PORT")])
        p = self.procs.start(name, ["stunnel4", cfgpath])
        wait_port(port, p)
        return p, port

    def haproxy_maxconn(self):
        # HAProxy needs two descriptors per connection plus a few, in ONE process, and
        # refuses to start if maxconn does not fit in the open-file limit.
        return min(20000, (self.nofile - 20) // 2)

    def haproxy(self, name, backend_port, tls=False, originate=False):
        """HAProxy in mode tcp: terminating TLS (`tls`), or originating it towards the
        remote (`originate`: verified as tcprelay and stunnel verify it, the CA file
        and the name localhost; HAProxy keeps the server's session for reuse)."""
        port = free_port()
        ssl = f" ssl crt {self.path('combined.pem')}" if tls else ""
        server_ssl = (
            f" ssl verify required ca-file {self.path('cert.pem')}"
            " sni str(localhost) verifyhost localhost"
            if originate else ""
        )
        cfg = (
            "global\n"
            f"    maxconn {self.haproxy_maxconn()}\n"
            "    nbthread 2\n"
            "defaults\n"
            "    mode tcp\n"
            "    timeout connect 10s\n"
            "    timeout client 1h\n"
            "    timeout server 1h\n"
            "frontend in\n"
            f"    bind {HOST}:{port}{ssl}\n"
            "    backlog 4096\n"
            "    default_backend out\n"
            "backend out\n"
            f"    server s1 {HOST}:{backend_port}{server_ssl}\n"
        )
        show = "HAProxy (TLS)" if tls else "HAProxy (TLS client)" if originate else "HAProxy"
        cfgpath = self.write(f"{name}.cfg", cfg, show=show,
                             ports=[(port, "PORT"), (backend_port, "BACKEND_PORT")])
        p = self.procs.start(name, ["haproxy", "-db", "-f", cfgpath])
        wait_port(port, p)
        return p, port

    def socat(self, name, backend_port):
        port = free_port()
        argv = ["socat", f"TCP-LISTEN:{port},bind={HOST},fork,reuseaddr,backlog=4096",
                f"TCP:{HOST}:{backend_port}"]
        self.configs["socat"] = self.placeholders(
            " ".join(argv) + "\n", [(port, "PORT"), (backend_port, "BACKEND_PORT")])
        p = self.procs.start(name, argv)
        wait_port(port, p)
        return p, port

    def stunnel(self, name, backend_port):
        port = free_port()
        cfg = (
            "foreground = yes\n"
            "pid =\n"
            "; warnings and worse only: no log line per connection, like the others\n"
            "debug = 4\n"
            "[bench]\n"
            f"accept = {HOST}:{port}\n"
            f"connect = {HOST}:{backend_port}\n"
            f"cert = {self.path('combined.pem')}\n"
        )
        cfgpath = self.write(f"{name}.conf", cfg, show="stunnel",
                             ports=[(port, "PORT"), (backend_port, "BACKEND_PORT")])
        p = self.procs.start(name, ["stunnel4", cfgpath])
        wait_port(port, p)
        return p, port

    def floor(self, name, backend_port, uring=False):
        """The kernel floor: 2 threads, as the relays use both cores; on epoll, or on
        io_uring (`uring`: receives and sends completed by the kernel)."""
        port = free_port()
        argv = [FLOOR, f"{HOST}:{port}", f"{HOST}:{backend_port}", "2"] + (["--uring"] if uring else [])
        self.configs["floor-uring" if uring else "floor"] = self.placeholders(
            " ".join(argv).replace(FLOOR, "floor") + "\n",
            [(port, "PORT"), (backend_port, "BACKEND_PORT")])
        p = self.procs.start(name, argv)
        wait_port(port, p)
        return p, port

    def start_relays(self):
        self.plain = {}  # target -> {"iperf": (p, port), "redis": (p, port)}
        for backend, bport in (("iperf", self.iperf_port), ("redis", self.redis_port)):
            self.plain.setdefault("tcprelay", {})[backend] = self.tcprelay(f"tcprelay-{backend}", bport)
            self.plain.setdefault("haproxy", {})[backend] = self.haproxy(f"haproxy-{backend}", bport)
            self.plain.setdefault("socat", {})[backend] = self.socat(f"socat-{backend}", bport)
        self.plain["floor"] = {"redis": self.floor("floor-redis", self.redis_port)}
        self.plain["floor-uring"] = {"redis": self.floor("floor-uring-redis", self.redis_port, uring=True)}
        self.tls = {
            "tcprelay": self.tcprelay("tcprelay-tls", self.sink_port, tls=True),
            "stunnel": self.stunnel("stunnel-tls", self.sink_port),
            "haproxy": self.haproxy("haproxy-tls", self.sink_port, tls=True),
        }
        # TLS origination: plain clients, the relay is the TLS client.
        self.tlso = {
            "tcprelay": self.tcprelay_originating("tcprelay-tlso", self.tls_sink_port),
            "stunnel": self.stunnel_client("stunnel-tlso", self.tls_sink_port),
            "haproxy": self.haproxy("haproxy-tlso", self.tls_sink_port, originate=True),
        }

    def fresh_relay(self, target, tag):
        """A new relay to redis, for the tests whose figure depends on the relay's
        history (memory) or that fill it up (10,000 connections)."""
        name = f"{target}-{tag}"
        if target == "tcprelay":
            return self.tcprelay(name, self.redis_port)
        if target == "haproxy":
            return self.haproxy(name, self.redis_port)
        if target == "socat":
            return self.socat(name, self.redis_port)
        raise ValueError(target)

    # -- figures: each returns (value, detail) for one target --

    def port_of(self, target, backend):
        if target == "direct":
            return self.iperf_port if backend == "iperf" else self.redis_port
        return self.plain[target][backend][1]

    def bulk(self, target):
        port = self.port_of(target, "iperf")
        secs = self.args.iperf_seconds
        for attempt in range(3):
            rc, out, err = run(["iperf3", "-c", HOST, "-p", str(port), "-t", str(secs), "-J"],
                               timeout=secs + 30)
            try:
                j = json.loads(out)
                if "error" in j:
                    raise ValueError(j["error"])
                bps = j["end"]["sum_received"]["bits_per_second"]
                return bps / 1e9, ""
            except (ValueError, KeyError) as e:
                last = f"iperf3 rc={rc}: {e} {err.strip()[:200]}"
                time.sleep(1)
        raise RuntimeError(last)

    def redis_bench(self, target, keepalive):
        port = self.port_of(target, "redis")
        n = self.args.ping_requests if keepalive else self.args.newconn_requests
        argv = ["redis-benchmark", "-h", HOST, "-p", str(port), "-t", "ping_mbulk",
                "-c", "50", "-n", str(n), "-q"]
        if not keepalive:
            argv += ["-k", "0"]
        # The relay's own CPU time per request, beside the rate: on 2 cores shared
        # with the client and the server, a relay's rate depends on scheduling as
        # much as on its own cost. socat's exited forks are not counted: left out.
        # Beside it, the client's and redis's (from the client's rusage and redis's
        # /proc/PID/stat) and the share of the cores left idle: the rate two cores
        # give at those costs is what bounds every relay (see ceilings()).
        root = None if target in ("direct", "socat") else self.plain[target]["redis"][0].pid
        key = "keepalive" if keepalive else "newconn"
        cpu0 = tree_cpu_ticks(root) if root else 0
        redis0 = tree_cpu_ticks(self.redis.pid)
        idle0 = system_idle()
        kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        rc, out, err = run(argv, timeout=300)
        kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        idle1 = system_idle()
        redis1 = tree_cpu_ticks(self.redis.pid)
        cpu1 = tree_cpu_ticks(root) if root else 0
        m = re.findall(r"PING_MBULK: ([\d.]+) requests per second", out.replace("\r", "\n"))
        if rc != 0 or not m:
            raise RuntimeError(f"redis-benchmark rc={rc}: {(out + err).strip()[-300:]}")
        per_op = 1e6 / n
        hz = os.sysconf("SC_CLK_TCK")
        cost = {
            "client": ((kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)) * per_op,
            "backend": (redis1 - redis0) / hz * per_op,
            "relay": (cpu1 - cpu0) / hz * per_op if root else None,
            "idle": (idle1[0] - idle0[0]) / max(1, idle1[1] - idle0[1]),
        }
        self.costs.setdefault((key, target), []).append(cost)
        what = "request" if keepalive else "connection"
        detail = f"client {cost['client']:.1f} µs, redis {cost['backend']:.1f} µs"
        if root:
            detail += f", relay {cost['relay']:.1f} µs"
        detail += f" CPU per {what}; cores idle {cost['idle'] * 100:.0f} %"
        return float(m[-1]) / 1000.0, detail

    def keepalive(self, target):
        return self.redis_bench(target, True)

    def newconn(self, target):
        return self.redis_bench(target, False)

    def redis_clients(self):
        r = subprocess.run(["redis-cli", "-h", HOST, "-p", str(self.redis_port), "info",
                            "clients"], capture_output=True, text=True, timeout=10)
        m = re.search(r"connected_clients:(\d+)", r.stdout)
        return int(m.group(1)) if m else -1

    def warm_up(self, port):
        """A few request/reply exchanges, so each worker or thread has run its code
        paths and allocated what it keeps for its lifetime before 'before'."""
        for _ in range(16):
            try:
                with socket.create_connection((HOST, port), timeout=5) as s:
                    s.sendall(b"PING\r\n")
                    s.recv(64)
            except OSError:
                pass
        time.sleep(0.5)

    def idle_memory(self, target):
        n = self.args.idle_conns if target != "socat" else self.args.socat_idle_conns
        if target == "direct":
            return None, "n/a"
        p, port = self.fresh_relay(target, "idle")
        try:
            self.warm_up(port)
            base_clients = self.redis_clients()
            before, nproc_before = rss_kib(p.pid)
            pss_before = pss_kib(p.pid)
            socks, failed = open_many(port, n)
            # Wait until the relay has connected every one to the backend.
            deadline = time.time() + 30
            while time.time() < deadline and self.redis_clients() < base_clients + len(socks):
                time.sleep(0.2)
            relayed = self.redis_clients() - base_clients
            time.sleep(1.0)
            after, nproc_after = rss_kib(p.pid)
            pss_after = pss_kib(p.pid)
            for s in socks:
                s.close()
            if len(socks) < n or relayed < len(socks):
                raise RuntimeError(
                    f"only {len(socks)}/{n} connected, {relayed} relayed ({dict(failed)})")
            per = (after - before) / n
            return per, (f"{n} conns: RSS {before} KiB -> {after} KiB over "
                         f"{nproc_before}->{nproc_after} processes; PSS "
                         f"{(pss_after - pss_before) / n:.2f} KiB/conn")
        finally:
            self.procs.stop(p)

    def concurrent(self, target):
        n = self.args.concurrent_conns
        p = None
        if target == "direct":
            port = self.redis_port
        else:
            p, port = self.fresh_relay(target, "10k")
        try:
            if p:
                self.warm_up(port)
                before, _ = rss_kib(p.pid)
            t0 = time.time()
            socks, failed = open_many(port, n)
            t_open = time.time() - t0
            served, outcome = ping_all(socks, timeout=20)
            t_all = time.time() - t0
            detail = (f"{len(socks)} connected ({dict(failed) or 'no failure'}) in "
                      f"{t_open:.1f} s; {served} served ({dict(outcome) or 'all +PONG'}), "
                      f"{t_all:.1f} s in all")
            if p:
                after, _ = rss_kib(p.pid)
                detail += f"; RSS {(after - before) / max(1, len(socks)):.2f} KiB/conn after one PING each"
                if p.poll() is not None:
                    self.anomalies.append(f"{target} exited ({p.returncode}) in the 10,000 test")
                if target == "tcprelay" and served < len(socks):
                    # Its own words on what it closed (warnings and errors are logged
                    # at the default level), kept in the results.
                    try:
                        with open(self.path(f"{target}-10k.log"), errors="replace") as f:
                            tail = f.read().splitlines()[-15:]
                    except OSError:
                        tail = []
                    self.anomalies.append(
                        f"tcprelay served {served} of {len(socks)} in the 10,000 test "
                        f"({dict(outcome)}); its log ends: " + " | ".join(tail))
            for s in socks:
                s.close()
            return float(served), detail
        finally:
            if p:
                self.procs.stop(p)

    def tls_hs(self, target):
        port = self.tls[target][1]
        rc, out, err = run([TLSLOAD, "handshakes", "--seconds", str(self.args.tls_seconds),
                            "--concurrency", str(self.args.tls_concurrency),
                            "--ciphersuites", TLS_SUITE, f"{HOST}:{port}"],
                           timeout=self.args.tls_seconds + 60)
        j = parse_json_line(out, rc, err)
        self.tls_seen[target] = f"{j['protocol']} {j['cipher']}"
        detail = f"{j['count']} in {j['seconds']} s, {j['errors']} errors"
        if j["errors"]:
            detail += f" ({'; '.join(j['first_errors'])})"
        return j["rate"], detail

    def tls_bulk(self, target):
        port = self.tls[target][1]
        rc, out, err = run([TLSLOAD, "bulk", "--seconds", str(self.args.tls_seconds),
                            "--ciphersuites", TLS_SUITE, f"{HOST}:{port}"],
                           timeout=self.args.tls_seconds + 60)
        j = parse_json_line(out, rc, err)
        self.tls_seen[target] = f"{j['protocol']} {j['cipher']}"
        if j["errors"]:
            raise RuntimeError(f"tlsload bulk: {'; '.join(j['first_errors'])}")
        return j["mb_per_s"], ""


    def tlso_hs(self, target):
        """New sessions through a relay that originates TLS: each a TCP connect from
        the plain client and a handshake of the relay with the TLS sink (resumed as
        the relay resumes: both offer the last session)."""
        port = self.tlso[target][1]
        rc, out, err = run([TLSLOAD, "handshakes", "--plain", "--seconds", str(self.args.tls_seconds),
                            "--concurrency", str(self.args.tls_concurrency), f"{HOST}:{port}"],
                           timeout=self.args.tls_seconds + 60)
        j = parse_json_line(out, rc, err)
        detail = f"{j['count']} in {j['seconds']} s, {j['errors']} errors"
        if j["errors"]:
            detail += f" ({'; '.join(j['first_errors'])})"
        return j["rate"], detail

    def tlso_bulk(self, target):
        port = self.tlso[target][1]
        rc, out, err = run([TLSLOAD, "bulk", "--plain", "--seconds", str(self.args.tls_seconds),
                            f"{HOST}:{port}"],
                           timeout=self.args.tls_seconds + 60)
        j = parse_json_line(out, rc, err)
        if j["errors"]:
            raise RuntimeError(f"tlsload bulk: {'; '.join(j['first_errors'])}")
        return j["mb_per_s"], ""


def parse_json_line(out, rc, err):
    for line in out.splitlines():
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"tlsload rc={rc}: {err.strip()[-300:]}")


# --------------------------------------------------------------------------------------
# Many connections from one Python process


def open_many(port, n, batch=250, timeout=5.0):
    """Opens n connections in batches of non-blocking connects, each given `timeout`
    seconds (SYN retries included). Returns (connected sockets, Counter of failures)."""
    socks, failed = [], Counter()
    sel = selectors.DefaultSelector()
    for start in range(0, n, batch):
        pending = 0
        for _ in range(min(batch, n - start)):
            try:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            except OSError as e:
                failed[errno.errorcode.get(e.errno, str(e))] += 1
                continue
            s.setblocking(False)
            err = s.connect_ex((HOST, port))
            if err in (0, errno.EINPROGRESS):
                sel.register(s, selectors.EVENT_WRITE)
                pending += 1
            else:
                failed[errno.errorcode.get(err, str(err))] += 1
                s.close()
        deadline = time.time() + timeout
        while pending and time.time() < deadline:
            for key, _ in sel.select(max(0.01, deadline - time.time())):
                s = key.fileobj
                sel.unregister(s)
                pending -= 1
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err == 0:
                    socks.append(s)
                else:
                    failed[errno.errorcode.get(err, str(err))] += 1
                    s.close()
        for key in list(sel.get_map().values()):
            sel.unregister(key.fileobj)
            key.fileobj.close()
            failed["connect timeout"] += 1
    sel.close()
    return socks, failed


def ping_all(socks, timeout):
    """Sends an inline PING on every socket and counts the +PONG replies."""
    sel = selectors.DefaultSelector()
    outcome = Counter()
    bufs = {}
    for s in socks:
        try:
            s.send(b"PING\r\n")
            sel.register(s, selectors.EVENT_READ)
            bufs[s] = b""
        except OSError as e:
            outcome[f"send {errno.errorcode.get(e.errno, e)}"] += 1
    served = 0
    deadline = time.time() + timeout
    while bufs and time.time() < deadline:
        for key, _ in sel.select(max(0.01, deadline - time.time())):
            s = key.fileobj
            try:
                data = s.recv(64)
            except OSError as e:
                data, why = None, f"recv {errno.errorcode.get(e.errno, e)}"
            if data:
                bufs[s] += data
                if b"+PONG\r\n" not in bufs[s]:
                    continue
                served += 1
            elif data is not None:
                why = "closed"
            if not data:
                outcome[why] += 1
            sel.unregister(s)
            del bufs[s]
    if bufs:
        outcome["no reply in time"] += len(bufs)
    sel.close()
    return served, outcome


# --------------------------------------------------------------------------------------
# Figures, targets, report

FIGURES = [
    # key, title, unit, targets, higher is better
    ("bulk", "bulk throughput (iperf3, 1 stream)", "Gbit/s",
     ["tcprelay", "haproxy", "socat", "direct"], True),
    ("keepalive", "keep-alive request rate (redis-benchmark PING_MBULK, 50 clients)",
     "k req/s", ["tcprelay", "haproxy", "socat", "direct", "floor", "floor-uring"], True),
    ("newconn", "new connections (redis-benchmark PING_MBULK -k 0, 50 clients)",
     "k conn/s", ["tcprelay", "haproxy", "socat", "direct", "floor", "floor-uring"], True),
    ("idle_memory", "memory per idle relayed connection (RSS of all relay processes)",
     "KiB/conn", ["tcprelay", "haproxy", "socat"], False),
    ("tls_hs", "TLS handshakes (full, TLS 1.3, P-256 cert, 8 clients, 1-byte request each)",
     "handshakes/s", ["tcprelay", "stunnel", "haproxy"], True),
    ("tls_bulk", "TLS bulk throughput (TLS_AES_128_GCM_SHA256, 1 connection, 64 KiB writes)", "MB/s",
     ["tcprelay", "stunnel", "haproxy"], True),
    ("tlso_hs", "TLS origination: sessions/s (plain client, relay is the TLS client, "
     "verifying; 8 clients, 1-byte request each)", "sessions/s", ["tcprelay", "haproxy", "stunnel"], True),
    ("tlso_bulk", "TLS origination throughput (plain client, 1 connection, 64 KiB writes)",
     "MB/s", ["tcprelay", "haproxy", "stunnel"], True),
    ("concurrent", "concurrent connections held, then one PING each", "served",
     ["tcprelay", "haproxy", "direct"], True),
]

# DESIGN §3: figure -> [(peer, ratio, "ge"|"le")]. The keep-alive and new-connection
# targets are on the relay's CPU per operation, not the rate (CPU_TARGETS).
TARGETS = {
    "bulk": [("haproxy", 1.4, "ge"), ("direct", 0.7, "ge")],
    "idle_memory": [("haproxy", 0.5, "le")],
    "tls_hs": [("stunnel", 1.0, "ge"), ("haproxy", 1.0, "ge")],
    "tls_bulk": [("stunnel", 1.5, "ge"), ("haproxy", 1.5, "ge")],
}

# DESIGN §3: tcprelay's CPU per operation at most this many times HAProxy's.
CPU_TARGETS = {"keepalive": 0.85, "newconn": 0.9}

NAMES = {"tcprelay": "tcprelay", "haproxy": "HAProxy", "socat": "socat",
         "stunnel": "stunnel", "direct": "direct", "floor": "floor",
         "floor-uring": "floor (io_uring)"}
COLUMNS = ["tcprelay", "haproxy", "socat", "stunnel", "direct", "floor", "floor-uring"]


def fmt(v, unit):
    if v is None:
        return "–"
    if unit == "served":
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def fmt_ratio(r):
    return f"{r:.2f}" if r >= 0.1 else f"{r:.2g}"


def median(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def report(bench, results, details, args, meta):
    lines = []
    w = lines.append
    w(f"### Side-by-side run of {meta['date']}")
    w("")
    w(f"`{meta['command']}` — {meta['rounds']} round(s), medians; machine: {meta['machine']}; "
      f"load average {meta['load_start']} at the start, {meta['load_end']} at the end; "
      f"tcprelay {meta['git']}.")
    w("")
    w("| figure | unit | " + " | ".join(NAMES[c] for c in COLUMNS) + " | "
      + " | ".join(f"tcprelay / {NAMES[c]}" for c in COLUMNS[1:]) + " | target (DESIGN §3) | result |")
    w("|---|---|" + "---:|" * (2 * len(COLUMNS) - 1) + "---|---|")
    verdicts = []
    for key, title, unit, targets, _ in FIGURES:
        if key not in results:
            continue
        med = {t: median(results[key].get(t, [])) for t in targets}
        cells = [fmt(med.get(c), unit) if c in targets else "" for c in COLUMNS]
        ratios = []
        for c in COLUMNS[1:]:
            a, b = med.get("tcprelay"), med.get(c)
            if c in targets and a is not None and b:
                ratios.append(fmt_ratio(a / b) + "×")
            else:
                ratios.append("")
        if key == "concurrent":
            n = args.concurrent_conns
            a = med.get("tcprelay")
            target = f"all {n:,} served"
            ok = a is not None and all(v == n for v in results[key]["tcprelay"] if v is not None)
            result = "met" if ok else "**not met**"
            verdicts.append((title, target, result, f"{fmt(a, unit)} / {n:,} served (median)"))
        else:
            parts, oks, measured = [], [], []
            for peer, ratio, how in TARGETS.get(key, []):
                a, b = med.get("tcprelay"), med.get(peer)
                sign = "≥" if how == "ge" else "≤"
                parts.append(f"{sign} {ratio} × {NAMES[peer]}")
                if a is None or not b:
                    oks.append(None)
                    measured.append(f"{NAMES[peer]}: no figure")
                    continue
                # Two estimates: the ratio of the medians, and the median of the
                # ratios of each round (the two targets ran minutes apart at most).
                # A target is met when both meet it, borderline when one does.
                r = a / b
                paired = median([x / y for x, y in zip(results[key]["tcprelay"], results[key][peer])
                                 if x is not None and y])
                good = [v >= ratio if how == "ge" else v <= ratio for v in (r, paired)]
                oks.append("met" if all(good) else "borderline" if any(good) else "not met")
                measured.append(f"{fmt_ratio(r)} × {NAMES[peer]} (per round: {fmt_ratio(paired)} ×)")
            target = ", ".join(parts)
            if not oks:
                result = ""
            elif None in oks:
                result = "not measured"
            elif all(o == "met" for o in oks):
                result = "met"
            elif all(o == "not met" for o in oks):
                result = "**not met**"
            elif "not met" in oks:
                result = "**partly met**"
            else:
                result = "borderline"
            if parts:
                verdicts.append((title, target, result, ", ".join(measured)))
        w(f"| {title} | {unit} | " + " | ".join(cells) + " | " + " | ".join(ratios)
          + f" | {target} | {result} |")
    w("")
    w("Per round. The targets ran in an order that rotates from round to round; "
      "load average at the start of the figure (the benchmark's own load included); "
      "CPU used by others: the largest share of the 2 cores that processes not started "
      "by the benchmark used during one of the figure's measurements.")
    w("")
    w("| figure | round | " + " | ".join(NAMES[c] for c in COLUMNS)
      + " | tcprelay / HAProxy | tcprelay / direct | load average | CPU used by others |")
    w("|---|---:|" + "---:|" * len(COLUMNS) + "---:|---:|---|---:|")
    for key, title, unit, targets, _ in FIGURES:
        if key not in results:
            continue
        for r in range(args.rounds):
            cells = []
            for c in COLUMNS:
                vals = results[key].get(c)
                cells.append(fmt(vals[r], unit) if vals and r < len(vals) else "")
            load = meta["round_loads"].get((key, r), "")
            shares = meta["other_cpu"].get((key, r), [])
            other = f"{max(shares) * 100:.0f} %" if shares else ""
            pair = []
            for peer in ("haproxy", "direct"):
                a, b = (results[key].get(t) or [] for t in ("tcprelay", peer))
                ok = r < len(a) and r < len(b) and a[r] is not None and b[r]
                pair.append(fmt_ratio(a[r] / b[r]) + "×" if ok else "")
            w(f"| {key} | {r + 1} | " + " | ".join(cells) + f" | {pair[0]} | {pair[1]} | "
              f"{load} | {other} |")
    w("")
    if details:
        w("Details (last round):")
        w("")
        for (key, target), d in sorted(details.items()):
            if d:
                w(f"- {key} / {NAMES[target]}: {d}")
        w("")
    if bench.tls_seen:
        w("Negotiated TLS: " + "; ".join(f"{NAMES[t]} {v}" for t, v in sorted(bench.tls_seen.items())) + ".")
        w("")
    for note in bench.notes:
        w(f"- {note}")
    if bench.notes:
        w("")
    if bench.anomalies:
        w("Anomalies:")
        w("")
        for a in bench.anomalies:
            w(f"- {a}")
        w("")
    lines.extend(ceilings(getattr(bench, "costs", {}), results))
    w("Targets:")
    w("")
    for title, target, result, measured in verdicts:
        w(f"- {title}: {target} — {result} ({measured})")
    w("")
    w("<details><summary>Configurations used</summary>")
    w("")
    for name, text in bench.configs.items():
        w(f"{name}:")
        w("")
        w("```")
        w(text.rstrip())
        w("```")
        w("")
    w("</details>")
    return "\n".join(lines) + "\n"


def ceilings(costs, results):
    """Markdown: the CPU each process spent per operation in the redis figures
    (medians of the rounds) and what that leaves a relay. Every operation costs the
    client and redis their part and the relay its own, on the same cores; so no
    relay, however cheap, exceeds cores / (client + redis) per second, nor what the
    single-threaded client or redis can do on one core (1 / its cost); and a target
    rate R leaves a relay at most cores / R - (client + redis) of CPU per operation
    even with no core ever idle, and needs client × R of the client's one core."""
    out = []
    if not costs:
        return out
    cores = os.cpu_count() or 2
    out.append("CPU per operation in the redis figures (medians of the rounds; user + "
               "system time of each process over the run, divided by the operations), "
               "and what it leaves a relay on these cores:")
    out.append("")
    out.append("| figure | through | client µs | redis µs | relay µs | cores idle "
               "| rate | no-cost relay ceiling | CPU a relay may use at the target rate "
               "| the client's core at the target rate |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key in ("keepalive", "newconn"):
        target_ratio = {k: r for k, rs in TARGETS.items() for p, r, _ in rs if p == "haproxy"}.get(key)
        hap = median((results.get(key) or {}).get("haproxy") or [])
        goal = hap * target_ratio if hap and target_ratio else None
        for target in COLUMNS:
            rounds = costs.get((key, target))
            if not rounds:
                continue
            client = median([c["client"] for c in rounds])
            backend = median([c["backend"] for c in rounds])
            relay = median([c["relay"] for c in rounds if c["relay"] is not None])
            idle = median([c["idle"] for c in rounds])
            rate = median((results.get(key) or {}).get(target) or [])
            # redis-benchmark and redis are single-threaded: each one core at most.
            ceiling = (min(cores * 1e6 / (client + backend), 1e6 / client, 1e6 / backend) / 1000
                       if client > 0 and backend > 0 else None)
            budget, client_share = "", ""
            if goal and target != "direct":
                budget = f"{cores * 1e6 / (goal * 1000) - (client + backend):.1f} µs"
                client_share = f"{client * goal * 1000 / 1e6 * 100:.0f} %"
            out.append(
                f"| {key} | {NAMES[target]} | {client:.1f} | {backend:.1f} | "
                + (f"{relay:.1f}" if relay is not None else "") + f" | {idle * 100:.0f} % | "
                + (f"{fmt(rate, 'k/s')}k/s" if rate else "") + " | "
                + (f"{ceiling:.1f}k/s" if ceiling and target != "direct" else "") + f" | {budget} | {client_share} |")
        if goal:
            out.append(f"| {key} | target: {target_ratio} × HAProxy | | | | | {goal:.1f}k/s | | | |")
    out.append("")
    out.extend(above_floor(costs))
    return out


def above_floor(costs):
    """Markdown: each relay's CPU per operation above the kernel floor's (the minimal
    relay of runtime/examples/floor.rs, measured in the same rounds), and tcprelay's
    against HAProxy's: its CPU, and its overhead above the floor. Medians of the
    rounds, and the median of each round's own difference (the targets of a round ran
    minutes apart at most)."""
    out = []
    rows = []
    verdicts = []
    urings = []
    for key in ("keepalive", "newconn"):
        floor = [c["relay"] for c in costs.get((key, "floor"), []) if c["relay"] is not None]
        if not floor:
            continue
        f = median(floor)
        # The io_uring floor: what completions instead of readiness leave of the epoll
        # floor's kernel cost, and where that puts a relay against HAProxy.
        uring = [c["relay"] for c in costs.get((key, "floor-uring"), []) if c["relay"] is not None]
        haps = [c["relay"] for c in costs.get((key, "haproxy"), []) if c["relay"] is not None]
        if uring:
            u = median(uring)
            line = (f"- {key}: the io_uring floor {u:.1f} µs, {u / f:.2f} × the epoll floor's "
                    f"(per round {median([a / b for a, b in zip(uring, floor) if b]):.2f} ×)")
            if haps:
                line += (f", {u / median(haps):.2f} × HAProxy's (per round "
                         f"{median([a / b for a, b in zip(uring, haps) if b]):.2f} ×; the epoll "
                         f"floor {f / median(haps):.2f} ×)")
            urings.append(line)
        over = {}
        for target in ("tcprelay", "haproxy", "socat"):
            rounds = [c["relay"] for c in costs.get((key, target), []) if c["relay"] is not None]
            if not rounds:
                continue
            r = median(rounds)
            paired = median([a - b for a, b in zip(rounds, floor)])
            over[target] = (r, r - f, paired)
        for target, (r, o, paired) in over.items():
            vs = ""
            if target == "tcprelay" and "haproxy" in over:
                h, ho, _ = over["haproxy"]
                if key in CPU_TARGETS:
                    haps = [c["relay"] for c in costs.get((key, "haproxy"), []) if c["relay"] is not None]
                    ours = [c["relay"] for c in costs.get((key, "tcprelay"), []) if c["relay"] is not None]
                    per_round = median([a / b for a, b in zip(ours, haps) if b])
                    goal = CPU_TARGETS[key]
                    good = [v <= goal for v in (r / h, per_round) if v is not None]
                    verdict = "met" if good and all(good) else "borderline" if any(good) else "**not met**"
                    verdicts.append(f"- {key}: tcprelay CPU per operation ≤ {goal} × HAProxy's — "
                                    f"{verdict} ({r / h:.2f} ×, per round {per_round:.2f} ×)")
                # A ratio of overheads means something only when both are above it.
                vs = f"{r / h:.2f}× | " + (
                    f"{o / ho:.2f}×" if ho > 0 and o > 0
                    else "at the floor" if o <= 0 else "HAProxy at the floor")
            else:
                vs = " | "
            rows.append(f"| {key} | {NAMES[target]} | {r:.1f} | {f:.1f} | {o:.1f} | {paired:.1f} | {vs} |")
    if not rows:
        return out
    out.append("Relay CPU per operation above the kernel floor (`runtime/examples/floor.rs`: "
               "edge-triggered epoll, accept4, connect, recv/send, shutdown, close and "
               "nothing else, 2 threads), medians of the rounds:")
    out.append("")
    out.append("| figure | relay | relay µs | floor µs | above the floor µs | per round µs "
               "| tcprelay / HAProxy CPU | tcprelay / HAProxy above the floor |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|")
    out.extend(rows)
    out.append("")
    if urings:
        out.append("The kernel floor on io_uring (`floor --uring`: multishot receives into "
                   "provided buffers, sends completed by the kernel, one `io_uring_enter` per "
                   "loop turn), measured in the same rounds:")
        out.append("")
        out.extend(urings)
        out.append("")
    if verdicts:
        out.append("Targets on CPU per operation (DESIGN §3):")
        out.append("")
        out.extend(verdicts)
        out.append("")
    return out


def dump(bench, results, details, args, meta):
    """Everything the report is made from, as JSON (see --report-from)."""
    return {
        "meta": {**{k: v for k, v in meta.items() if k not in ("round_loads", "other_cpu")},
                 "round_loads": {f"{k}/{r}": v for (k, r), v in meta["round_loads"].items()},
                 "other_cpu": {f"{k}/{r}": v for (k, r), v in meta["other_cpu"].items()}},
        "args": {"rounds": args.rounds, "concurrent_conns": args.concurrent_conns},
        "results": results,
        "details": {f"{k}/{t}": d for (k, t), d in details.items()},
        "configs": bench.configs, "tls_seen": bench.tls_seen,
        "costs": {f"{k}/{t}": v for (k, t), v in bench.costs.items()},
        "anomalies": bench.anomalies, "notes": bench.notes,
    }


def report_from(path):
    """Renders the report of a saved run again (for changes to the report's form)."""
    d = json.load(open(path))

    def keyed(m):
        return {(k.rsplit("/", 1)[0], int(k.rsplit("/", 1)[1])): v for k, v in m.items()}

    meta = dict(d["meta"])
    meta["round_loads"] = keyed(meta["round_loads"])
    meta["other_cpu"] = keyed(meta["other_cpu"])
    bench = argparse.Namespace(configs=d["configs"], tls_seen=d["tls_seen"],
                               anomalies=d["anomalies"], notes=d["notes"],
                               costs={tuple(k.split("/", 1)): v
                                      for k, v in d.get("costs", {}).items()})
    details = {tuple(k.split("/", 1)): v for k, v in d["details"].items()}
    text = report(bench, d["results"], details, argparse.Namespace(**d["args"]), meta)
    if d.get("scale"):
        import scale
        text += "\n" + scale.report(d["scale"], [])
    return text


def machine():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, Linux {platform.release()}"


def loadavg():
    return " ".join(open("/proc/loadavg").read().split()[:3])


def git_state():
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--",
                                "runtime", "compiler"],
                               capture_output=True, text=True).stdout.strip()
        return f"{rev}{' + uncommitted changes' if dirty else ''}"
    except OSError:
        return "?"


def versions():
    def first(argv, pat=None):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            text = r.stdout + r.stderr
        except (OSError, subprocess.TimeoutExpired):
            return "?"
        if pat:
            m = re.search(pat, text)
            return m.group(1) if m else "?"
        return text.strip().splitlines()[0] if text.strip() else "?"
    return {
        "HAProxy": first(["haproxy", "-v"], r"version (\S+)"),
        "socat": first(["socat", "-V"], r"socat version (\S+)"),
        "stunnel": first(["stunnel4", "-version"], r"stunnel (\S+)"),
        "iperf3": first(["iperf3", "--version"], r"iperf (\S+)"),
        "redis": first(["redis-server", "--version"], r"v=(\S+)"),
        "OpenSSL": first(["openssl", "version"], r"OpenSSL (\S+)"),
    }


def main():
    global TCPRELAY, TCPRELAY_CC, TLSLOAD, FLOOR
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true",
                    help="1 round, short durations: a smoke test")
    ap.add_argument("--only", help="comma-separated figures: " + ",".join(f[0] for f in FIGURES)
                    + ", and scale (bench/scale.py: about 15 minutes, run only when named)")
    ap.add_argument("--plots", metavar="DIR",
                    help="also write the scale figure's SVG plots to DIR/scale-NAME.svg")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    ap.add_argument("--output", help="the results file (default bench/results-DATE.md)")
    ap.add_argument("--report-from", metavar="JSON",
                    help="print the report of a saved run (bench/results-DATE.json) and exit")
    args = ap.parse_args()
    if args.report_from:
        print(report_from(args.report_from))
        return
    args.iperf_seconds, args.ping_requests, args.newconn_requests = 5, 200000, 50000
    args.tls_seconds, args.tls_concurrency = 5, 8
    args.idle_conns, args.socat_idle_conns, args.concurrent_conns = 5000, 200, 10000
    if args.quick:
        args.rounds = 1
        args.iperf_seconds, args.ping_requests, args.newconn_requests = 2, 50000, 10000
        args.tls_seconds = 2
    only = set(args.only.split(",")) if args.only else None

    # Descriptors: as many as allowed, up to 65,536 (children inherit the limit).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))

    for exe in (TCPRELAY, TCPRELAY_CC, TLSLOAD, FLOOR):
        if not os.access(exe, os.X_OK):
            sys.exit(f"bench: {exe} is missing: run bench/run.sh (it builds it)")
    for exe in ("haproxy", "socat", "stunnel4", "iperf3", "redis-server",
                "redis-benchmark", "redis-cli", "openssl"):
        if not shutil.which(exe):
            sys.exit(f"bench: {exe} is missing: run bench/run.sh (it installs it)")

    workdir = tempfile.mkdtemp(prefix="tcprelay-bench-")
    # A copy of the binaries: a rebuild in the work tree during the run (others work
    # there too) must not change what a relay started in a later round runs.
    os.mkdir(os.path.join(workdir, "bin"))
    copies = []
    for exe in (TCPRELAY, TCPRELAY_CC, TLSLOAD, FLOOR):
        copies.append(os.path.join(workdir, "bin", os.path.basename(exe)))
        shutil.copy2(exe, copies[-1])
    TCPRELAY, TCPRELAY_CC, TLSLOAD, FLOOR = copies
    bench = Bench(args, workdir)
    stopped = {"done": False}

    def cleanup():
        if stopped["done"]:
            return
        stopped["done"] = True
        bench.procs.stop_all()

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    atexit.register(cleanup)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    meta = {
        "date": datetime.date.today().isoformat(),
        "command": "bench/run.sh " + " ".join(
            (["--quick"] if args.quick else [f"--rounds {args.rounds}"])
            + ([f"--only {args.only}"] if args.only else [])),
        "rounds": args.rounds,
        "machine": machine(),
        "load_start": loadavg(),
        "git": git_state(),
        "round_loads": {},
        "other_cpu": {},
    }
    results, details, scale_data = {}, {}, None
    other_cpu = meta["other_cpu"] = {}
    failed = False
    try:
        log(f"work directory {workdir}; open-file limit {bench.nofile}; load {meta['load_start']}")
        if not only or only - {"scale"}:
            bench.start_backends()
            bench.start_relays()
        nofile = bench.nofile
        if nofile < 65536:
            bench.notes.append(
                f"The open-file limit is {nofile} (the hard limit here; raising it needs "
                f"CAP_SYS_RESOURCE), not 65,536. HAProxy, one process, runs with "
                f"maxconn {bench.haproxy_maxconn()}: it refuses to start when maxconn "
                f"does not fit in the limit (2 descriptors per connection), so it cannot "
                f"hold {args.concurrent_conns:,} relayed connections; tcprelay's two "
                f"worker processes each have the limit to themselves.")
        bench.notes.append(
            f"socat forks one process per connection: the idle-memory figure for socat "
            f"is measured with {args.socat_idle_conns} connections (not "
            f"{args.idle_conns:,}), and socat is left out of the "
            f"{args.concurrent_conns:,}-connection test.")
        for r in range(args.rounds if not only or only - {"scale"} else 0):
            log(f"round {r + 1}/{args.rounds} (load {loadavg()})")
            for key, title, unit, targets, _ in FIGURES:
                if only and key not in only:
                    continue
                meta["round_loads"][(key, r)] = loadavg()
                k = r % len(targets)
                order = targets[k:] + targets[:k]
                for target in order:
                    fn = getattr(bench, key)
                    try:
                        with Interference(bench.procs) as load:
                            value, detail = fn(target)
                        other_cpu.setdefault((key, r), []).append(load.share)
                    except RuntimeError as e:
                        value, detail = None, f"FAILED: {e}"
                        bench.anomalies.append(f"round {r + 1}, {key}, {NAMES[target]}: {e}")
                    results.setdefault(key, {}).setdefault(target, []).append(value)
                    details[(key, target)] = detail
                    log(f"  {key:<12} {NAMES[target]:<9} {fmt(value, unit):>10} {unit} {detail}")
                    for role in ("iperf", "redis"):
                        pp = bench.plain.get(target, {}).get(role)
                        if pp and pp[0].poll() is not None:
                            bench.anomalies.append(
                                f"{NAMES[target]} relay to {role} exited ({pp[0].returncode}) "
                                f"during {key}; see {pp[0].args}")
                            raise RuntimeError(f"{target} died")
                    tp = bench.tls.get(target)
                    if tp and tp[0].poll() is not None:
                        bench.anomalies.append(f"{NAMES[target]} TLS exited ({tp[0].returncode})")
                        raise RuntimeError(f"{target} died")
                    op = bench.tlso.get(target)
                    if op and op[0].poll() is not None:
                        bench.anomalies.append(
                            f"{NAMES[target]} TLS client exited ({op[0].returncode})")
                        raise RuntimeError(f"{target} died")
        if only and "scale" in only:
            import scale
            log(f"scale figure (load {loadavg()})")
            scale_data = scale.run(bench, args, sys.modules[__name__])
        meta["load_end"] = loadavg()
        # tcprelay's own complaints, if any.
        for name in sorted(os.listdir(workdir)):
            if name.startswith("tcprelay") and name.endswith(".log"):
                for line in open(os.path.join(workdir, name), errors="replace"):
                    if re.search(r"panic|error|crit|alert|emerg", line, re.I):
                        bench.anomalies.append(f"{name}: {line.strip()}")
        bench.notes.insert(0, "Versions: " + ", ".join(f"{k} {v}" for k, v in versions().items())
                           + ". Each relay runs on both cores: tcprelay with 2 worker processes, "
                             "HAProxy with nbthread 2, socat and stunnel with a process or "
                             "thread per connection; the clients share the same 2 cores.")
    except KeyboardInterrupt as e:
        log(f"interrupted ({e}); stopping everything")
        failed = True
    except Exception:
        failed = True
        raise
    finally:
        cleanup()
        left = bench.procs.leftovers()
        if left:
            log(f"ERROR: processes left: {left}")
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        else:
            log(f"all {bench.procs.started} started processes (and their children) are stopped")
        assert not left, f"processes left behind: {left}"
    if failed:
        log(f"logs kept in {workdir}")
        sys.exit(1)
    meta.setdefault("load_end", loadavg())
    out = args.output or os.path.join(ROOT, "bench", f"results-{time.strftime('%Y%m%d-%H%M%S')}.md")
    if results or scale_data is None:
        text = report(bench, results, details, args, meta)
    else:
        text = (f"### Scale run of {meta['date']}\n\n`{meta['command']}`; machine: "
                f"{meta['machine']}; load average {meta['load_start']} at the start, "
                f"{meta['load_end']} at the end; tcprelay {meta['git']}.\n")
        if bench.anomalies:
            text += "\nAnomalies:\n\n" + "".join(f"- {a}\n" for a in bench.anomalies)
    if scale_data is not None:
        import scale
        # The plots beside the results (bench/results-DATE-scale-NAME.svg), and a
        # stable copy under --plots DIR (scale-NAME.svg) for docs/benchmarks.md.
        svgs = scale.plots(scale_data, os.path.splitext(out)[0] + "-scale-")
        if args.plots:
            os.makedirs(args.plots, exist_ok=True)
            for svg in svgs:
                shutil.copyfile(svg, os.path.join(
                    args.plots, "scale-" + svg.rsplit("-scale-", 1)[1]))
        text += "\n" + scale.report(scale_data, svgs)
    print(text)
    with open(out, "w") as f:
        f.write(text)
    with open(os.path.splitext(out)[0] + ".json", "w") as f:
        json.dump({**dump(bench, results, details, args, meta), "scale": scale_data}, f, indent=1)
    log(f"results written to {out}")
    if args.keep or bench.anomalies:
        log(f"logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
