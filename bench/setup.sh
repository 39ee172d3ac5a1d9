#!/usr/bin/env bash
# bench/setup.sh - installs what the benchmark needs (Debian 12 packages): the anchor tools
# (heaptrack, valgrind, GCC's LeakSanitizer runtime), the real-program workloads (sqlite3,
# python3, perl, gcc's cc1) and gcc for the synthetic programs and the harness helpers.
# Run once as root (or with sudo). Rust/cargo for leakscope itself is not installed here.
set -eu
SUDO=
[ "$(id -u)" -ne 0 ] && SUDO=sudo
PKGS="heaptrack valgrind liblsan0 sqlite3 python3 perl gcc"
missing=
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    $SUDO apt-get update
fi
# apt-get install is a no-op for packages already installed
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y $PKGS
for t in heaptrack heaptrack_print valgrind sqlite3 gcc /usr/bin/python3 /usr/bin/perl; do
    command -v "$t" >/dev/null || { echo "setup.sh: $t still missing" >&2; exit 1; }
done
[ -e /usr/lib/x86_64-linux-gnu/liblsan.so.0 ] || { echo "setup.sh: liblsan.so.0 missing" >&2; exit 1; }
echo "setup.sh: benchmark dependencies present"
