#!/usr/bin/env bash
# The test suite, as CI runs it (.ci/run calls this script): installs with apt-get
# what the build and the tests use besides the Rust toolchain when it is missing
# (through sudo when not root), then runs every test, and the relay and process
# integration tests again under poll(2) and select(2). Run from anywhere:
#   scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/packages.sh

echo "== checking the Debian packages the build and the tests use"
# pkg-config and libssl-dev build openssl-sys (openssl is its library at run time);
# netbase has the /etc/services that `port = ssh` is checked against; chromium renders the manual; groff-base,
# man-db, vim and systemd check the man pages, the editor integration and the
# systemd unit; iproute2 (ss) shows a listening socket's backlog to the overload
# test; procps has the kill(1) the integration tests signal the relay with;
# prometheus has promtool, which checks the metrics exposition; haproxy, nginx-light
# with libnginx-mod-stream, redis-server and stunnel4 are the peers the PROXY protocol,
# TLS-towards-remotes and health-check tests talk to (their services are not started);
# dnsmasq-base is the DNS server the discovery tests start on loopback (tests/it/dns.rs).
need_packages pkg-config libssl-dev openssl netbase chromium groff-base man-db vim \
    systemd iproute2 procps prometheus haproxy nginx-light libnginx-mod-stream redis-server stunnel4 \
    dnsmasq-base

echo "== cargo test --workspace (the worker's own tests run under every event mechanism)"
cargo test --workspace
# The binaries the relay and process tests start inherit IO_POLL_MECHANISM; the
# harness checks that it took effect.
echo "== the relay and process integration tests again, under poll(2)"
IO_POLL_MECHANISM=8 cargo test -p tcprelay-tests -- relay:: process::
echo "== the relay and process integration tests again, under select(2)"
IO_POLL_MECHANISM=16 cargo test -p tcprelay-tests -- relay:: process::
# io_uring, unless the kernel is set to refuse it (kernel.io_uring_disabled; a
# container's seccomp profile that refuses it makes tcprelay exit with that reason).
if [ "$(cat /proc/sys/kernel/io_uring_disabled 2>/dev/null || echo 0)" = 0 ]; then
    echo "== the relay and process integration tests again, under io_uring"
    IO_POLL_MECHANISM=64 cargo test -p tcprelay-tests -- relay:: process::
fi
echo "== all tests passed"
