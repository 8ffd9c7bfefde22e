#!/usr/bin/env bash
# Benchmarks (the project's benchmark targets): rankview beside raw MPI in the same job, as JSON lines.
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/setup.sh
target="${CARGO_TARGET_DIR:-target}"
cargo build -p rankview-launcher
"$target/debug/rankview" run -n "${RANKS:-3}" --release --example bench -- \
    --workload w1 --workload w1idle --workload w3 --workload w3loop --workload w5 --workload w8 \
    --workload w8loop --workload w9 --workload w10 \
    --workload w12 \
    --workload w2 --workload w2map --workload w4 --workload w6 --workload w13 --workload metg --json
# Start-up at 2 to 32 ranks: the bench starts its own jobs, so it runs alone.
cargo build --release --example bench
"$target/release/examples/bench" --workload startup --json
