#!/usr/bin/env bash
# Times `tcprelay-cc check` on a generated configuration of 100,000 lines.
# Usage: bench/check-100k.sh   (prints the line count and the timings)
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -q -p tcprelay-cc
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cfg=$work/big.cfg

# 10,000 three-line listeners and 14,000 five-line remotes, plus the section lines.
python3 - "$cfg" <<'PY'
import sys
out = []
out.append("id = spawnd {")
for i in range(10000):
    out.append("  listen = {")
    out.append(f"    address = 127.0.{i // 250}.{i % 250 + 1} port = {10000 + i}")
    out.append("  }")
out.append("  spawn = { users max = 1000 servers max = 8 }")
out.append("}")
out.append("id = tcprelay {")
for i in range(14000):
    out.append("  remote = {")
    out.append(f"    address = 127.{1 + i // 65536}.{(i // 256) % 256}.{i % 256}")
    out.append(f"    port = {1 + i % 65000}")
    out.append(f"    weight = {1 + i % 7}")
    out.append("  }")
out.append("  idle timeout = 60")
out.append("}")
open(sys.argv[1], "w").write("\n".join(out) + "\n")
PY
echo "lines: $(wc -l < "$cfg")"

if command -v hyperfine >/dev/null; then
    hyperfine --warmup 2 --runs 10 "target/release/tcprelay-cc check $cfg"
else
    TIMEFORMAT='%R s'
    for i in 1 2 3 4 5; do
        time target/release/tcprelay-cc check "$cfg"
    done
fi
