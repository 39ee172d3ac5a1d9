#!/bin/sh
# Install leakscope under a prefix:
#   PREFIX/bin/leakscope                          the command
#   PREFIX/lib/leakscope/libleakscope_preload.so  the preload library (found by the command)
#   PREFIX/lib/libleakscope.so                    a link to it, for -lleakscope
#   PREFIX/include/leakscope.h                    source locations and tracing control
#   PREFIX/lib/pkgconfig/leakscope.pc             pkg-config --cflags --libs leakscope
#
# Usage: scripts/install.sh [--prefix DIR] [--from DIR] [--no-build]
#   --prefix DIR  where to install (default: $PREFIX, else /usr/local)
#   --from DIR    take the built files from DIR (default: target/release)
#   --no-build    do not run `cargo build --release` first
set -eu
root="$(cd "$(dirname "$0")/.." && pwd)"
prefix="${PREFIX:-/usr/local}"
from="$root/target/release"
build=1
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix="$2"; shift 2 ;;
        --prefix=*) prefix="${1#--prefix=}"; shift ;;
        --from) from="$2"; build=0; shift 2 ;;
        --from=*) from="${1#--from=}"; build=0; shift ;;
        --no-build) build=0; shift ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
done
case "$prefix" in
    /*) ;;
    *) prefix="$(pwd)/$prefix" ;;
esac
if [ "$build" = 1 ]; then
    (cd "$root" && cargo build --release --quiet -p leakscope -p leakscope-preload)
fi
for f in leakscope libleakscope_preload.so; do
    if [ ! -f "$from/$f" ]; then
        echo "install.sh: $from/$f is missing; build first (cargo build --release)" >&2
        exit 1
    fi
done
install -d "$prefix/bin" "$prefix/lib/leakscope" "$prefix/include" "$prefix/lib/pkgconfig"
install -m 755 "$from/leakscope" "$prefix/bin/leakscope"
install -m 755 "$from/libleakscope_preload.so" "$prefix/lib/leakscope/libleakscope_preload.so"
# A link, not a copy: a program linked with -lleakscope and run by
# `leakscope run` must load the library once.
ln -sf leakscope/libleakscope_preload.so "$prefix/lib/libleakscope.so"
install -m 644 "$root/include/leakscope.h" "$prefix/include/leakscope.h"
sed "s|^prefix=.*|prefix=$prefix|" "$root/pkgconfig/leakscope.pc" > "$prefix/lib/pkgconfig/leakscope.pc"
chmod 644 "$prefix/lib/pkgconfig/leakscope.pc"
echo "leakscope installed under $prefix"
