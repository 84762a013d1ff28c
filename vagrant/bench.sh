#!/usr/bin/env bash
# The benchmark (as root): builds in release mode, then runs examples/bench
# in a throwaway host. Prints markdown tables; writes bench-results.json.
# BENCH_N (runs per figure, 30), BENCH_PODS (1000), BENCH_REF_PODS (200).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --bins --examples
exec target/release/examples/bench
