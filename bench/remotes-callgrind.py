#!/usr/bin/env python3
"""Instructions a tcprelay worker spends per new connection, with R remotes, counted
by callgrind (deterministic, unlike CPU time on a shared machine).

    bench/remotes-callgrind.py [--binary PATH] REMOTES...

For each number of remotes: one backend (bench/scaleproc.py serve) listening on that
many ports of 127.0.2.1, a relay with one worker under
`valgrind --tool=callgrind --trace-children=yes` and those remotes, 300 connections
to warm it, then N new connections (connect, "PING\\r\\n", its echo, close; 20 at a
time), the relay stopped and the worker's instructions read from its callgrind file.
Each count is run twice, with N = 500 and N = 2,500: the difference divided by 2,000
is the instructions per connection, start-up and warm-up left out. Prints a line per
count and the ratio to the first. Python standard library only; needs valgrind.
"""

import argparse
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCALEPROC = os.path.join(ROOT, "bench", "scaleproc.py")
CC = os.path.join(ROOT, "target", "release", "tcprelay-cc")


def worker_instructions(binary, remotes, n, work):
    be = subprocess.Popen([sys.executable, SCALEPROC, "serve", f"127.0.2.1:{remotes}"],
                          stdout=subprocess.PIPE, start_new_session=True)
    relay = None
    try:
        ports = json.loads(be.stdout.readline())["ports"]
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cfg = ("id = spawnd {\n"
               f"    listen = {{ address = 127.0.0.1 port = {port} backlog = 4096 }}\n"
               "    spawn = { servers min = 1 servers max = 1 users max = 9000 }\n}\n"
               "id = tcprelay {\n"
               + "".join(f"    remote = {{ address = {a} port = {p} }}\n" for a, p in ports)
               + "}\n")
        with open(os.path.join(work, "r.cfg"), "w") as f:
            f.write(cfg)
        subprocess.run([CC, "compile", "r.cfg", "-o", "r.plan"], cwd=work, check=True)
        # The output file's name in ./.valgrindrc, not on the command line: the relay
        # rewrites its argument area for its process titles, where valgrind keeps the
        # texts of its command line's options.
        with open(os.path.join(work, ".valgrindrc"), "w") as f:
            f.write(f"--callgrind-out-file={work}/cg.%p\n")
        relay = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--trace-children=yes", binary, "run", "-f", "r.plan"],
            stdout=open(os.path.join(work, "relay.log"), "w"), stderr=subprocess.STDOUT,
            start_new_session=True, cwd=work)
        deadline = time.time() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError("the relay did not start")
                time.sleep(0.1)

        def churn(count, src):
            r = subprocess.run([sys.executable, SCALEPROC, "churn", "--src", src,
                                "--dst", f"127.0.0.1:{port}", "--n", str(count),
                                "--concurrency", "20", "--timeout", "600"],
                               capture_output=True, text=True, timeout=700)
            return json.loads(r.stdout)

        churn(300, "127.0.0.201")
        done = churn(n, "127.0.0.202")
        if done["done"] != n:
            raise RuntimeError(f"{done}")
        os.killpg(relay.pid, signal.SIGTERM)
        relay.wait(timeout=120)
        counts = []
        for path in glob.glob(os.path.join(work, "cg.*")):
            m = re.search(r"^totals: (\d+)", open(path, errors="replace").read(), re.M)
            if m:
                counts.append(int(m.group(1)))
        return max(counts)  # the worker's (the master's is a few million)
    finally:
        for p in (relay, be):
            if p is not None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "tcprelay"))
    ap.add_argument("remotes", type=int, nargs="+")
    args = ap.parse_args()
    first = None
    for r in args.remotes:
        per = []
        for n in (500, 2500):
            work = tempfile.mkdtemp(prefix="tcprelay-cg-")
            try:
                per.append(worker_instructions(args.binary, r, n, work))
            finally:
                shutil.rmtree(work, ignore_errors=True)
        each = (per[1] - per[0]) / 2000
        first = first or each
        print(f"{r} remotes: {each:,.0f} instructions a new connection "
              f"({per[0]:,} for 500, {per[1]:,} for 2,500; {each / first:.3f}× the first)",
              flush=True)


if __name__ == "__main__":
    main()
