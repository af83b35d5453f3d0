#!/usr/bin/env bash
# Runs tcprelay on examples/relay.cfg with two small echo backends, sends a few
# clients through it, and stops everything again. Run from the repository root:
#   examples/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet --workspace --bins --examples
bin=target/release
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT

echo "== tcprelay-cc check examples/relay.cfg"
$bin/tcprelay-cc check examples/relay.cfg && echo "clean"
echo "== tcprelay-cc compile examples/relay.cfg -o target/relay.plan"
$bin/tcprelay-cc compile examples/relay.cfg -o target/relay.plan
$bin/tcprelay-cc explain target/relay.plan

echo "== backends on 127.0.0.1:9001 and :9002, tcprelay on 127.0.0.1:8080"
$bin/examples/echo 127.0.0.1:9001 backend-1 & pids+=($!)
$bin/examples/echo 127.0.0.1:9002 backend-2 & pids+=($!)
$bin/tcprelay run -f target/relay.plan & pids+=($!)
for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null && break
    sleep 0.1
done

echo "== six clients, each holding its connection while the next arrives"
fds=()
for i in 1 2 3 4 5 6; do
    exec {fd}<>/dev/tcp/127.0.0.1/8080
    fds+=("$fd")
    echo "hello from client $i" >&"$fd"
    read -r -t 5 reply <&"$fd"
    echo "client $i got: $reply"
done
for fd in "${fds[@]}"; do exec {fd}>&-; done
