#!/usr/bin/env bash
# Side-by-side benchmark of tcprelay against HAProxy, socat and stunnel (DESIGN §3).
# Usage: bench/run.sh [--rounds N] [--quick] [--only FIGURE,...] [--keep] [--plots DIR]
#
# `--only scale` runs the long scale figure (bench/scale.py, about 15 minutes: 100,000
# connections, cost curves against connections and remotes, a reload with 20,000 live
# sessions, SVG plots beside the results and, with --plots DIR, in DIR); it runs only
# when named, never by default.
#
# Installs the peers from Debian packages when absent (as root; `apt-get update` only
# when something must be installed), builds the release binaries, raises the
# open-file limit, and runs bench/bench.py: everything on 127.0.0.1 with ports chosen
# by the OS, all targets in one run, interleaved over the rounds. Prints a markdown
# table of medians and ratios, also saved as bench/results-DATE.md.
set -euo pipefail
cd "$(dirname "$0")/.."

# package -> a program it provides
declare -A provides=(
    [haproxy]=haproxy [socat]=socat [stunnel4]=stunnel4 [iperf3]=iperf3
    [redis-server]=redis-server [redis-tools]=redis-benchmark [openssl]=openssl
    [python3]=python3
)
need=()
for pkg in "${!provides[@]}"; do
    command -v "${provides[$pkg]}" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "bench: missing ${need[*]}; run as root to install them" >&2
        exit 1
    fi
    echo "bench: installing ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    # The packages' own services (haproxy, redis-server, ...) are not wanted: the
    # benchmark starts its own. Debian's policy-rc.d keeps them from starting.
    policy=/usr/sbin/policy-rc.d ours=
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# bench/run.sh: no service starts during its install\nexit 101\n' > "$policy"
        chmod 755 "$policy"
        ours=1
        trap 'rm -f "$policy"' EXIT
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
    if [ -n "$ours" ]; then
        rm -f "$policy"
        trap - EXIT
    fi
fi

cargo build --release --workspace --bins --examples >&2

# Up to 65,536 descriptors for everything started from here (as far as the hard
# limit allows: raising it needs CAP_SYS_RESOURCE).
ulimit -Hn 65536 2>/dev/null || true
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -ge 65536 ]; then
    ulimit -n 65536
else
    ulimit -n "$hard"
fi

exec python3 bench/bench.py "$@"
