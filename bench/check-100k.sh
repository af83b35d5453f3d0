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
python3 bench/bigconfig.py 1 1000 "$cfg"
echo "lines: $(wc -l < "$cfg")"

if command -v hyperfine >/dev/null; then
    hyperfine --warmup 2 --runs 10 "target/release/tcprelay-cc check $cfg"
else
    TIMEFORMAT='%R s'
    for i in 1 2 3 4 5; do
        time target/release/tcprelay-cc check "$cfg"
    done
fi
