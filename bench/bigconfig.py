#!/usr/bin/env python3
"""Writes a large generated configuration for timing tcprelay-cc.

Usage: bench/bigconfig.py SCALE USERS_MAX OUT

SCALE × 10,000 three-line listeners on distinct loopback addresses and SCALE × 14,000
five-line remotes, plus the section lines: SCALE 1 is 100,006 lines
(bench/check-100k.sh), SCALE 10 is 1,000,006 (bench/compile-1m.sh). USERS_MAX is the
spawn section's `users max` (1000 leaves most remotes out of a worker's reach: one
E0074 warning each; 200000 reaches every one).
"""
import sys


def main():
    scale, users_max, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    out = ["id = spawnd {"]
    for i in range(10000 * scale):
        out.append("  listen = {")
        out.append(f"    address = 127.{i // 62500}.{(i // 250) % 250}.{i % 250 + 1} "
                   f"port = {10000 + i % 50000}")
        out.append("  }")
    out.append(f"  spawn = {{ users max = {users_max} servers max = 8 }}")
    out.append("}")
    out.append("id = tcprelay {")
    for i in range(14000 * scale):
        out.append("  remote = {")
        out.append(f"    address = 127.{1 + i // 65536}.{(i // 256) % 256}.{i % 256}")
        out.append(f"    port = {1 + i % 65000}")
        out.append(f"    weight = {1 + i % 7}")
        out.append("  }")
    out.append("  idle timeout = 60")
    out.append("}")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
