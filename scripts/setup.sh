#!/bin/sh
# Installs what leakscope needs to build and to symbolise glibc's frames and,
# unless --build-only, what its tests use too (gdb and dwz for cross-checks;
# python3 as a real Debian program for the stack-walk cross-check;
# chromium, chromium-driver and golang-go read the HTML and pprof exports)
# (Debian 12). Uses sudo when not run as root.
set -eu
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
packages="gcc g++ libc6-dbg binutils pkg-config"
[ "${1:-}" = "--build-only" ] || packages="$packages gdb dwz python3 chromium chromium-driver golang-go"
need=""
for pkg in $packages; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need="$need $pkg"
done
if [ -n "$need" ]; then
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq $need
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo is not installed; install Rust from https://rustup.rs first" >&2
    exit 1
fi
