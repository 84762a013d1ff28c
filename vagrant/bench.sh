#!/usr/bin/env bash
# The benchmarks (as root): builds in release mode, then runs, each in a
# throwaway host of its own, examples/bench (rkt run end to end, phases,
# 1000 pods, peak memory; writes bench-results.json) and
# examples/bench_plugins (each plugin's ADD and DEL against the reference
# plugins, and ADD at the 1st vs the 1000th pod of a network) and
# examples/bench_portmap (our portmap over 1000 pods, and against the
# reference portmap).
# BENCH_N (runs per figure, 30), BENCH_PODS (1000), BENCH_REF_PODS (200),
# BENCH_PLUGIN_ROUNDS (30).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --bins --examples
out="target/$(rustc --print host-tuple)/release"
"$out/examples/bench"
echo
"$out/examples/bench_plugins" "${BENCH_PLUGIN_ROUNDS:-30}"
echo
exec "$out/examples/bench_portmap" "${BENCH_PODS:-1000}" "${BENCH_REF_PODS:-200}"
