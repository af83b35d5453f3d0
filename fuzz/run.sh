#!/usr/bin/env bash
# Runs every fuzz target for a bounded time each (default 60 s), with seeds from the
# project's own configurations and a fresh plan. Usage: fuzz/run.sh [SECONDS]
# Needs cargo-fuzz (installed here when missing); the stable toolchain builds the
# sanitizer flags with RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1

mkdir -p corpus/compile corpus/plan_decode corpus/proxy_header corpus/client_hello
printf 'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET /' >corpus/proxy_header/v1
printf 'PROXY UNKNOWN\r\n' >corpus/proxy_header/unknown
printf '\r\n\r\n\0\r\nQUIT\n\x21\x11\0\x0c\x0a\0\0\x01\x0a\0\0\x02\x03\xe8\0\x50' >corpus/proxy_header/v2
# A ClientHello naming a host (the framed form: record size, then the message).
printf '\xff\x01\x00\x00\x3a\x03\x03AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\x00\x00\x02\x13\x01\x01\x00\x00\x0f\x00\x00\x00\x0b\x00\x09\x00\x00\x06a.test' >corpus/client_hello/framed
printf '\x16\x03\x01\x00\x05\x01\x00\x00\x01\x03' >corpus/client_hello/partial
cp ../examples/*.cfg ../tests/ui/pass/*.cfg ../tests/ui/fail/*.cfg corpus/compile/ 2>/dev/null || true
(cd .. && cargo run -q --release -p tcprelay-cc -- compile examples/relay.cfg -o fuzz/corpus/plan_decode/relay.plan)

for target in compile plan_decode proxy_header client_hello; do
    echo "== $target for ${seconds}s"
    cargo fuzz run "$target" "corpus/$target" -- -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 2>&1 \
        | grep -E "^(#[0-9]+.*(DONE|pulse)|Done|==[0-9]+== ERROR|SUMMARY|artifact)" || true
    if ls artifacts/"$target"/crash-* >/dev/null 2>&1; then
        echo "$target: crash found, see fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
echo "no crash, no hang"
