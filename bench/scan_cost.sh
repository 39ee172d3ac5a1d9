#!/bin/sh
# Cost of the reachability scan at exit: milliseconds per million live blocks
# and per 100 MB of live heap, from the scan time leakscope records in its
# JSON report (`reachability.millis`). usage: bench/scan_cost.sh [N...]
set -eu
cd "$(dirname "$0")/.."
mkdir -p bench/build
gcc -O2 -g -o bench/build/scanheap bench/src/scanheap.c
[ -x target/release/leakscope ] || cargo build --release --quiet
for n in ${*:-250000 1000000 2000000}; do
    out=$(mktemp)
    ./target/release/leakscope run --output /dev/null --json "$out" -- bench/build/scanheap "$n" >/dev/null
    python3 - "$out" "$n" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); n = int(sys.argv[2])
p = r["processes"][0]; ms = p["reachability"]["millis"]
blocks = sum(l["blocks"] for l in p["leaks"]) ; heap = sum(l["bytes"] for l in p["leaks"])
print(f"{blocks:>9} live blocks, {heap/1e6:7.1f} MB: scan {ms:7.1f} ms = {ms*1e6/blocks:6.1f} ms per million blocks, {ms*1e8/heap:6.1f} ms per 100 MB")
PY
    rm -f "$out"
done
