#!/usr/bin/env bash
# Runs tcprelay on examples/relay.cfg with two small echo backends, sends a few
# clients through it, and stops everything again. Run from anywhere:
#   examples/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/packages.sh

echo "== checking the Debian packages the build uses (pkg-config, libssl-dev)"
need_packages pkg-config libssl-dev
echo "== cargo build --release: tcprelay-cc, tcprelay and the echo backend (several minutes the first time)"
cargo build --release --workspace --bins --examples
bin=target/release
pids=()
cleanup() {
    [ ${#pids[@]} -eq 0 ] && return
    echo "== stopping the backends and tcprelay"
    kill "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT

echo "== tcprelay-cc check examples/relay.cfg"
$bin/tcprelay-cc check examples/relay.cfg && echo "clean"
echo "== tcprelay-cc compile examples/relay.cfg -o target/relay.plan"
$bin/tcprelay-cc compile examples/relay.cfg -o target/relay.plan
echo "== tcprelay-cc explain target/relay.plan"
$bin/tcprelay-cc explain target/relay.plan

echo "== backends on 127.0.0.1:9001 and :9002, tcprelay on 127.0.0.1:8080"
$bin/examples/echo 127.0.0.1:9001 backend-1 & pids+=($!)
$bin/examples/echo 127.0.0.1:9002 backend-2 & pids+=($!)
$bin/tcprelay run -f target/relay.plan & pids+=($!)
echo "== waiting until the backends and tcprelay listen"
for port in 9001 9002 8080; do
    for try in $(seq 100); do
        (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
        if [ "$try" -eq 100 ]; then
            echo "error: nothing listens on 127.0.0.1:$port after 10 s (is the port taken?)" >&2
            exit 1
        fi
        sleep 0.1
    done
done
if ! kill -0 "${pids[@]}" 2>/dev/null; then
    echo "error: a backend or tcprelay has exited (the lines above say why: a port taken?)" >&2
    exit 1
fi

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
