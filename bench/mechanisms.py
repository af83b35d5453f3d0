#!/usr/bin/env python3
"""tcprelay's event mechanisms compared: IO_POLL_MECHANISM=4 (epoll) against 64
(io_uring), the two run in turn (A B, then B A) in each round.

    bench/mechanisms.py [ROUNDS]

For each mechanism and round a fresh release tcprelay (two workers) relays
redis-benchmark's PING to a redis-server on loopback, with keep-alive (200,000
requests, 50 clients) and with a new connection per request (20,000): its rate, the
relay's CPU per operation (/proc ticks of the master and workers) and its system calls
per operation (perf stat on the syscalls:sys_enter_* tracepoints of its processes).
Needs perf, redis-server, redis-benchmark and `cargo build --release -p tcprelay -p
tcprelay-cc`. Python standard library only; everything it starts is stopped."""
import os, re, shutil, signal, socket, subprocess, sys, tempfile, time
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = ROOT + "/target/release"
W = tempfile.mkdtemp(prefix="tcprelay-mechanisms-")
SYSCALLS = ["io_uring_enter", "epoll_wait", "epoll_pwait", "epoll_ctl", "read", "write",
            "recvfrom", "sendto", "accept4", "connect", "close", "shutdown", "socket",
            "setsockopt", "getsockopt", "splice", "getsockname", "getpeername", "fcntl", "ioctl"]

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def wait_port(port):
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close(); return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("port")

def tree(root):
    pids = [root]
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(root)], capture_output=True, text=True).stdout.split()
    pids += [int(x) for x in out]
    return pids

def ticks(pids):
    t = 0
    for p in pids:
        try:
            f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
            t += int(f[11]) + int(f[12])
        except OSError:
            pass
    return t

redis_port = free_port()
redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no"],
                         stdout=subprocess.DEVNULL, start_new_session=True)
wait_port(redis_port)

def relay(mech):
    port = free_port()
    cfg = (f"id = spawnd {{\n    listen = {{ address = 127.0.0.1 port = {port} backlog = 4096 }}\n"
           "    spawn = { servers min = 2 servers max = 2 users max = 20000 }\n}\n"
           f"id = tcprelay {{\n    remote = {{ address = 127.0.0.1 port = {redis_port} }}\n}}\n")
    open(f"{W}/r.cfg", "w").write(cfg)
    subprocess.run([f"{BIN}/tcprelay-cc", "compile", f"{W}/r.cfg", "-o", f"{W}/r.plan"], check=True)
    env = dict(os.environ, IO_POLL_MECHANISM=str(mech))
    p = subprocess.Popen([f"{BIN}/tcprelay", "run", "-f", f"{W}/r.plan"], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_port(port)
    time.sleep(0.3)
    return p, port

def measure(mech, keepalive, n):
    p, port = relay(mech)
    try:
        pids = tree(p.pid)
        # warm-up
        subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", "ping_mbulk", "-c", "50", "-n", "2000", "-q"],
                       capture_output=True)
        ev = ",".join(f"syscalls:sys_enter_{s}" for s in SYSCALLS)
        perf = subprocess.Popen(["perf", "stat", "-x", ",", "-e", ev, "-p", ",".join(map(str, pids))],
                                stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        t0 = ticks(pids)
        argv = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", "ping_mbulk", "-c", "50", "-n", str(n), "-q"]
        if not keepalive:
            argv += ["-k", "0"]
        out = subprocess.run(argv, capture_output=True, text=True).stdout
        t1 = ticks(pids)
        perf.send_signal(signal.SIGINT)
        err = perf.communicate()[1]
        rate = float(re.findall(r"PING_MBULK: ([\d.]+) requests per second", out.replace("\r", "\n"))[-1])
        counts = {}
        for line in err.splitlines():
            f = line.split(",")
            if len(f) > 2 and f[2].startswith("syscalls:sys_enter_"):
                counts[f[2][len("syscalls:sys_enter_"):]] = int(f[0]) if f[0].isdigit() else 0
        cpu_us = (t1 - t0) / os.sysconf("SC_CLK_TCK") * 1e6 / n
        return rate, cpu_us, {k: v / n for k, v in counts.items() if v}
    finally:
        os.killpg(p.pid, signal.SIGTERM); p.wait()

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
try:
    for r in range(rounds):
        order = [4, 64] if r % 2 == 0 else [64, 4]
        for keepalive, n in ((True, 200000), (False, 20000)):
            for mech in order:
                rate, cpu, sc = measure(mech, keepalive, n)
                kind = "keepalive" if keepalive else "newconn"
                total = sum(sc.values())
                print(f"round {r} {kind:9} mech {mech:2}: {rate/1000:6.1f} k/s, relay CPU {cpu:5.1f} us/op, syscalls/op {total:5.2f}: "
                      + " ".join(f"{k}={v:.2f}" for k, v in sorted(sc.items())), flush=True)
finally:
    os.killpg(redis.pid, signal.SIGTERM)
    redis.wait()
    shutil.rmtree(W, ignore_errors=True)
