#!/bin/sh
# Runs each C/C++ test fixture natively and under `leakscope run`, and prints
# the total wall time of both (the figure the core issue asks for).
# usage: scripts/fixture-timing.sh [ROUNDS]   (needs `cargo build --release` first)
set -eu
cd "$(dirname "$0")/.."
rounds=${1:-3}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
ls=./target/release/leakscope
progs=""
for src in tests/fixtures/*.c tests/fixtures/*.cpp; do
    name=$(basename "$src" | sed 's/\.[a-z]*$//')
    case "$name" in *lib|plugin|*_lib*|dlopen_main|nodebug_main|shm_*|proc_*) continue ;; esac
    case "$src" in
        *.c) gcc -O2 -g -pthread -o "$out/$name" "$src" -ldl 2>/dev/null || continue ;;
        *.cpp) g++ -O2 -g -pthread -o "$out/$name" "$src" 2>/dev/null || continue ;;
    esac
    progs="$progs $name"
done
now() { date +%s.%N; }
native=0; traced=0
for r in $(seq "$rounds"); do
    for p in $progs; do
        t0=$(now); "$out/$p" >/dev/null 2>&1 || true; t1=$(now)
        $ls run --output /dev/null -- "$out/$p" >/dev/null 2>&1 || true; t2=$(now)
        native=$(echo "$native + $t1 - $t0" | bc); traced=$(echo "$traced + $t2 - $t1" | bc)
    done
done
n=$(echo $progs | wc -w)
echo "fixtures: $n programs x $rounds rounds"
echo "native total: $(echo "scale=3; $native / $rounds" | bc) s per round"
echo "under leakscope run (record + scan + symbolise + report): $(echo "scale=3; $traced / $rounds" | bc) s per round"
echo "ratio: $(echo "scale=2; $traced / $native" | bc)"
