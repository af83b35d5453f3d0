#!/bin/bash
# Instructions a tcprelay worker spends per keep-alive request (or, with -k, per new
# connection), counted by callgrind: deterministic, unlike CPU time on a shared
# machine, and user space only (the kernel's part is the same system calls as the
# kernel floor's, runtime/examples/floor.rs, which `--floor` measures the same way).
#
#   bench/request-callgrind.sh [-k] [--floor] [A B]
#
# One worker (or one floor thread) under `valgrind --tool=callgrind`, relaying to a
# redis started here; redis-benchmark PING_MBULK with 50 clients makes A requests,
# then, in a second relay, B: (instructions at B - at A) / (B - A) is the cost per
# request with start-up and shut-down left out. Defaults: 20,000 and 100,000 (2,000
# and 6,000 with -k, a new connection per request). Needs valgrind, redis-server,
# redis-benchmark; builds the release binaries first.
set -euo pipefail
shopt -s inherit_errexit
ROOT=$(cd "$(dirname "$0")/.." && pwd)
newconn=0 floor=0
while [ $# -gt 0 ]; do
    case $1 in
        -k) newconn=1; shift ;;
        --floor) floor=1; shift ;;
        *) break ;;
    esac
done
if [ $newconn = 1 ]; then A=${1:-2000} B=${2:-6000}; else A=${1:-20000} B=${2:-100000}; fi
(cd "$ROOT" && cargo build --release -q -p tcprelay -p tcprelay-cc --example floor)
BIN=$ROOT/target/release
WORK=$(mktemp -d /tmp/request-callgrind.XXXXXX)
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
RP=$(free_port)
redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no > "$WORK/redis.log" 2>&1 &
REDIS=$!
trap 'kill $REDIS 2>/dev/null; rm -rf "$WORK"' EXIT

# Prints the relaying process's instructions after N requests.
count() {
    local n=$1 dir=$WORK/run-$1 port
    mkdir -p "$dir"
    port=$(free_port)
    # The output file's name in ./.valgrindrc: the relay rewrites its argument area
    # for its process titles, where valgrind keeps its command line's options.
    echo "--callgrind-out-file=$dir/cg.%p" > "$dir/.valgrindrc"
    if [ $floor = 1 ]; then
        (cd "$dir" && exec valgrind --tool=callgrind "$BIN/examples/floor" "127.0.0.1:$port" "127.0.0.1:$RP" 1 2> err) &
    else
        printf 'id = spawnd {\n    listen = { address = 127.0.0.1 port = %s backlog = 4096 }\n    spawn = { servers min = 1 servers max = 1 users max = 20000 }\n}\nid = tcprelay {\n    connection log = no\n    remote = { address = 127.0.0.1 port = %s }\n}\n' "$port" "$RP" > "$dir/c.cfg"
        "$BIN/tcprelay-cc" compile "$dir/c.cfg" -o "$dir/c.plan"
        (cd "$dir" && exec valgrind --tool=callgrind --trace-children=yes "$BIN/tcprelay" run -f c.plan 2> err) &
    fi
    local v=$!
    for _ in $(seq 150); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done
    sleep 1
    local k=()
    [ $newconn = 1 ] && k=(-k 0)
    timeout 300 redis-benchmark -p "$port" -t ping_mbulk -c 50 -n "$n" "${k[@]}" -q > /dev/null 2>&1
    kill -INT $v 2>/dev/null || true
    kill -TERM $v 2>/dev/null || true
    wait $v 2>/dev/null || true
    sleep 1
    # The largest count is the worker's (the master's is start-up and its loop).
    grep -h '^summary:' "$dir"/cg.* | awk '{print $2}' | sort -n | tail -1
}
a=$(count "$A")
b=$(count "$B")
what=$([ $floor = 1 ] && echo "the floor" || echo "a tcprelay worker")
unit=$([ $newconn = 1 ] && echo "new connection" || echo "keep-alive request")
python3 -c "print(f'$what: {($b - $a) / ($B - $A):.0f} instructions per $unit ($a at $A, $b at $B)')"
