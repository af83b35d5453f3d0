#!/usr/bin/env bash
# Times `tcprelay-cc check` and `tcprelay-cc compile` on a generated configuration of
# 1,000,000 lines (DESIGN §3: compile under 2 s).
# Usage: bench/compile-1m.sh [RUNS]   (prints the line count and each run's times)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}

cargo build --release -q -p tcprelay-cc
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cfg=$work/big.cfg

# 100,000 three-line listeners on distinct loopback addresses and 140,000 five-line
# remotes (bench/check-100k.sh's file, ten times over), plus the section lines.
# `users max` lets a worker reach every remote, so the file draws no warning.
python3 bench/bigconfig.py 10 200000 "$cfg"
echo "lines: $(wc -l < "$cfg")"

# Each run's elapsed, user and system time and peak RSS, from the child's rusage.
python3 - "$runs" target/release/tcprelay-cc "$cfg" "$work/plan" <<'PY'
import resource, subprocess, sys, time
runs, cc, cfg, plan = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
for what, extra in (("check", []), ("compile", ["-o", plan])):
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        p = subprocess.run([cc, what, cfg, *extra], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        elapsed = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if p.returncode != 0:
            sys.exit(f"{what} failed:\n{p.stderr}")
        print(f"{what}: {elapsed:.2f} s elapsed, {after.ru_utime - before.ru_utime:.2f} s user, "
              f"{after.ru_stime - before.ru_stime:.2f} s system, {after.ru_maxrss // 1024} MiB max RSS")
PY
