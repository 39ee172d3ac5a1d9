#!/bin/sh
# The test suite runs the debug build; users run the release build. This runs
# a few fixtures under the release build and fails on any heap error or
# unexpected leak: optimisation-only bugs have happened (internal frees seen
# as invalid at thread exit).
set -eu
cd "$(dirname "$0")/.."
cargo build --release --quiet
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
gcc -O2 -g -pthread -o "$out/stress" tests/fixtures/reach_stress.c -ldl
gcc -O2 -g -pthread -o "$out/threads" tests/fixtures/clean_threads.c
g++ -O2 -g -o "$out/cxx" tests/fixtures/clean_cxx.cpp
for prog in stress threads cxx; do
    ./target/release/leakscope run --error-exitcode 99 --output "$out/$prog.txt" -- "$out/$prog" >/dev/null || {
        echo "release smoke: $prog reported leaks or heap errors:" >&2
        cat "$out/$prog.txt" >&2
        exit 1
    }
done
echo "release smoke: ok"
