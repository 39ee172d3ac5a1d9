#!/usr/bin/env bash
# bench/run.sh - leakscope's overhead benchmark: the same workloads natively and under leakscope,
# heaptrack, Valgrind memcheck and LeakSanitizer, paired A/B runs, one markdown table set.
# See bench/README.md. Knobs (environment variables):
#   QUICK=1            smaller inputs, N=3, NV=1 (a few minutes)
#   ONLY="churn1 py"   workloads: py perl sqlite cc1 churn1 churn2 churn4 manylive realloc threads
#   TOOLS="leakscope heaptrack valgrind lsan lsanrb"   (also: leakscope-rec lsanslow)
#   N=5 NV=2 WARMUP=1  timed pairs per tool / for valgrind / unmeasured warm-up runs
#   LEAKSCOPE_MODE=auto|cli|preload   cli: `leakscope run --output /dev/null -- CMD`;
#                      preload: LEAKSCOPE_SESSION=DIR LD_PRELOAD=libleakscope_preload.so CMD
#   LEAKSCOPE_BUILD=1  cargo build --release first (0: use target/release as it is)
#   LEAKSCOPE_ARGS="--output /dev/null"  LEAKSCOPE_ENV="NAME=VALUE ..."  TIMEOUT=1800  OUT=stem
set -eu
BENCH=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$BENCH")
cd "$BENCH"

for t in heaptrack heaptrack_print valgrind sqlite3 gcc /usr/bin/python3 /usr/bin/perl; do
    command -v "$t" >/dev/null || { echo "run.sh: $t missing; run bench/setup.sh first" >&2; exit 1; }
done

# one benchmark at a time (two at once disturb each other, and a cargo build would swap the binaries)
mkdir -p build
exec 9>build/bench.lock
if ! flock -n 9; then
    echo "run.sh: another benchmark run is in progress (pid $(cat build/bench.pid 2>/dev/null)); waiting for it" >&2
    flock 9
fi
echo $$ > build/bench.pid   # the same pid once this shell execs bench.py, which keeps the lock

# leakscope
if [ "${LEAKSCOPE_BUILD:-1}" != 0 ]; then
    if ! (cd "$ROOT" && cargo build --release -p leakscope -p leakscope-preload); then
        echo "run.sh: building the CLI failed; building the preload library alone (LEAKSCOPE_MODE=auto falls back to preload)" >&2
        (cd "$ROOT" && cargo build --release -p leakscope-preload)
    fi
fi

# synthetic programs, harness helpers, generated inputs (rebuilt when the source is newer)
mkdir -p build/tmp
CFLAGS="-O2 -g -pthread"   # -O2 on x86-64 omits frame pointers, as the anchors' builds did
newer() { [ ! -e "$1" ] || [ "$2" -nt "$1" ] || { [ -n "${3:-}" ] && [ "$3" -nt "$1" ]; }; }
for p in churn manylive reallocgrow shortthreads; do
    newer build/$p src/$p.c src/common.h && gcc $CFLAGS -o build/$p src/$p.c
    newer build/$p.lsan src/$p.c src/common.h && gcc $CFLAGS -fsanitize=leak -o build/$p.lsan src/$p.c
done
newer build/runrec tools/runrec.c && gcc -O2 -Wall -o build/runrec tools/runrec.c
newer build/count_allocs.so tools/count_allocs.c && gcc -O2 -Wall -shared -fPIC -o build/count_allocs.so tools/count_allocs.c
for n in 70 20 5; do
    newer build/big-$n.c inputs/gen_c.py && /usr/bin/python3 inputs/gen_c.py $n > build/big-$n.c
done
for n in 50000 20000; do   # smaller variants of churn.sql for QUICK=1
    newer build/churn-$n.sql inputs/churn.sql && sed "s/x < 200000/x < $n/" inputs/churn.sql > build/churn-$n.sql
    grep -q "x < $n" build/churn-$n.sql
done

exec /usr/bin/python3 "$BENCH/bench.py" run
