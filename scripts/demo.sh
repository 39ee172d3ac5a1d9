#!/bin/sh
# Set up, build leakscope, and run it on examples/leaky.c.
set -eu
cd "$(dirname "$0")/.."
./scripts/setup.sh --build-only
cargo build --release --quiet
gcc -g -O2 -fomit-frame-pointer -o target/leaky examples/leaky.c
exec ./target/release/leakscope run -- ./target/leaky
