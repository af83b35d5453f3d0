#!/usr/bin/env python3
"""The helper processes of the scale figure (bench/scale.py): a backend and two
clients, each one Python process on epoll (standard library only), so that 100,000
connections can be spread over processes that each stay under the open-file limit.

    scaleproc.py serve ADDRESS:COUNT...
        Listens on COUNT ports (chosen by the OS) of each ADDRESS, prints one JSON line
        {"ports": [[address, port], ...]}, then echoes back what every connection sends.
        SIGUSR1 prints {"conns": N}, the connections it holds.

    scaleproc.py hold --src ADDRESS --dst ADDRESS:PORT --n N
        Opens N connections from ADDRESS (bound before the connect, the port left to the
        connect: IP_BIND_ADDRESS_NO_PORT), prints {"connected": K, "failed": {...}},
        then reads commands on standard input, one a line, each answered with a JSON line:
        `ping R` sends "PING\\r\\n" on every connection and awaits its echo, R rounds
        ({"served": connections answered in every round, "requests": replies, ...});
        `close` closes them all and exits.

    scaleproc.py churn --src ADDRESS --dst ADDRESS:PORT --n N --concurrency C
        N new connections, C at a time, each "PING\\r\\n", its echo awaited, closed;
        prints {"done": K, "failed": {...}, "seconds": S}.
"""

import argparse
import errno
import json
import resource
import select
import signal
import socket
import sys
import time
from collections import Counter

IP_BIND_ADDRESS_NO_PORT = 24  # linux/in.h
PING = b"PING\r\n"


def say(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def addr(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


def why(err):
    return errno.errorcode.get(err, str(err))


# --------------------------------------------------------------------------------------


def serve(specs):
    raise_nofile()
    ep = select.epoll()
    listeners, conns, ports = {}, {}, []
    for spec in specs:
        host, count = spec.rsplit(":", 1)
        for _ in range(int(count)):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, 0))
            s.listen(4096)
            s.setblocking(False)
            listeners[s.fileno()] = s
            ep.register(s.fileno(), select.EPOLLIN)
            ports.append([host, s.getsockname()[1]])
    say({"ports": ports})
    signal.signal(signal.SIGUSR1, lambda *_: say({"conns": len(conns)}))
    refused = 0
    while True:
        for fd, _ in ep.poll(1.0, 1024):
            ls = listeners.get(fd)
            if ls is not None:
                while True:
                    try:
                        c, _ = ls.accept()
                    except BlockingIOError:
                        break
                    except OSError as e:
                        # EMFILE: leave the rest in the queue a moment.
                        refused += 1
                        if refused in (1, 1000):
                            print(f"accept: {e}", file=sys.stderr, flush=True)
                        break
                    c.setblocking(False)
                    conns[c.fileno()] = c
                    ep.register(c.fileno(), select.EPOLLIN)
                continue
            c = conns.get(fd)
            if c is None:
                continue
            try:
                data = c.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:
                try:
                    c.send(data)
                    continue
                except OSError:
                    pass
            ep.unregister(fd)
            del conns[fd]
            c.close()


# --------------------------------------------------------------------------------------


def new_socket(src):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
    s.bind((src, 0))
    s.setblocking(False)
    return s


def open_all(src, dst, n, batch=500, timeout=10.0):
    """n connections from src to dst, `batch` connects in flight at a time."""
    ep = select.epoll()
    socks, failed, pending = [], Counter(), {}
    started = 0
    deadline = time.time() + max(60.0, n / 500)
    while (started < n or pending) and time.time() < deadline:
        while started < n and len(pending) < batch:
            started += 1
            try:
                s = new_socket(src)
            except OSError as e:
                failed[why(e.errno)] += 1
                continue
            err = s.connect_ex(dst)
            if err in (0, errno.EINPROGRESS):
                pending[s.fileno()] = (s, time.time() + timeout)
                ep.register(s.fileno(), select.EPOLLOUT)
            else:
                failed[why(err)] += 1
                s.close()
        for fd, _ in ep.poll(0.2, 1024):
            s, _ = pending.pop(fd)
            ep.unregister(fd)
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err == 0:
                socks.append(s)
            else:
                failed[why(err)] += 1
                s.close()
        now = time.time()
        for fd, (s, until) in list(pending.items()):
            if now > until:
                del pending[fd]
                ep.unregister(fd)
                s.close()
                failed["connect timeout"] += 1
    for fd, (s, _) in pending.items():
        s.close()
        failed["connect timeout"] += 1
    failed["not started"] += n - started
    ep.close()
    return socks, +failed


def ping_rounds(ep, live, rounds, timeout):
    """`rounds` times: PING on every live socket (fd -> socket, registered for
    EPOLLIN in `ep`), then every echo awaited. A socket that fails leaves `live`.
    Returns (served in every round, replies, failures)."""
    outcome, replies = Counter(), 0
    deadline = time.time() + timeout

    def drop(fd, reason):
        outcome[reason] += 1
        ep.unregister(fd)
        live.pop(fd).close()

    for _ in range(rounds):
        waiting = {}
        for fd, s in list(live.items()):
            try:
                s.send(PING)
                waiting[fd] = 0
            except OSError as e:
                drop(fd, f"send {why(e.errno)}")
        while waiting and time.time() < deadline:
            for fd, _ in ep.poll(0.2, 4096):
                s = live.get(fd)
                if s is None:
                    continue
                try:
                    data = s.recv(4096)
                except BlockingIOError:
                    continue
                except OSError as e:
                    waiting.pop(fd, None)
                    drop(fd, f"recv {why(e.errno)}")
                    continue
                if not data:
                    waiting.pop(fd, None)
                    drop(fd, "closed")
                elif fd in waiting:
                    waiting[fd] += len(data)
                    if waiting[fd] >= len(PING):
                        del waiting[fd]
                        replies += 1
        for fd in waiting:
            drop(fd, "no reply in time")
    return len(live), replies, outcome


def hold(args):
    raise_nofile()
    t0 = time.time()
    socks, failed = open_all(args.src, addr(args.dst), args.n)
    say({"connected": len(socks), "failed": dict(failed), "seconds": round(time.time() - t0, 2)})
    ep = select.epoll()
    live = {}
    for s in socks:
        ep.register(s.fileno(), select.EPOLLIN)
        live[s.fileno()] = s
    del socks
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "ping":
            t0 = time.time()
            rounds = int(cmd[1]) if len(cmd) > 1 else 1
            served, replies, outcome = ping_rounds(ep, live, rounds, args.timeout)
            say({"served": served, "requests": replies, "failed": dict(outcome),
                 "seconds": round(time.time() - t0, 2)})
        elif cmd[0] == "close":
            n = len(live)
            for s in live.values():
                s.close()
            say({"closed": n})
            return
    for s in live.values():
        s.close()


def churn(args):
    """New connections, `concurrency` at a time: connect, PING, echo, close."""
    raise_nofile()
    dst = addr(args.dst)
    ep = select.epoll()
    state = {}  # fd -> [socket, phase, bytes, deadline]
    failed, done, started = Counter(), 0, 0
    t0 = time.time()
    deadline = t0 + args.timeout
    while (started < args.n or state) and time.time() < deadline:
        while started < args.n and len(state) < args.concurrency:
            started += 1
            try:
                s = new_socket(args.src)
            except OSError as e:
                failed[why(e.errno)] += 1
                continue
            err = s.connect_ex(dst)
            if err not in (0, errno.EINPROGRESS):
                failed[why(err)] += 1
                s.close()
                continue
            state[s.fileno()] = [s, "connect", 0, time.time() + 10]
            ep.register(s.fileno(), select.EPOLLOUT)
        for fd, _ in ep.poll(0.2, 1024):
            st = state.get(fd)
            if st is None:
                continue
            s = st[0]
            if st[1] == "connect":
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    failed[why(err)] += 1
                else:
                    try:
                        s.send(PING)
                        st[1] = "reply"
                        ep.modify(fd, select.EPOLLIN)
                        continue
                    except OSError as e:
                        failed[f"send {why(e.errno)}"] += 1
            else:
                try:
                    data = s.recv(4096)
                except BlockingIOError:
                    continue
                except OSError as e:
                    data = None
                    failed[f"recv {why(e.errno)}"] += 1
                if data:
                    st[2] += len(data)
                    if st[2] < len(PING):
                        continue
                    done += 1
                elif data is not None:
                    failed["closed"] += 1
            ep.unregister(fd)
            del state[fd]
            s.close()
        now = time.time()
        for fd, st in list(state.items()):
            if now > st[3]:
                ep.unregister(fd)
                st[0].close()
                del state[fd]
                failed["timeout"] += 1
    for st in state.values():
        st[0].close()
        failed["timeout"] += 1
    say({"done": done, "failed": dict(failed), "seconds": round(time.time() - t0, 2)})


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve")
    p.add_argument("specs", nargs="+")
    for name in ("hold", "churn"):
        p = sub.add_parser(name)
        p.add_argument("--src", required=True)
        p.add_argument("--dst", required=True)
        p.add_argument("--n", type=int, required=True)
        p.add_argument("--concurrency", type=int, default=50)
        p.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args()
    if args.cmd == "serve":
        serve(args.specs)
    elif args.cmd == "hold":
        hold(args)
    else:
        churn(args)


if __name__ == "__main__":
    main()
