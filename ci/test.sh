#!/usr/bin/env bash
# The whole test suite: unit tests, integration tests that launch real MPI
# jobs (every example on 2, 3 and 5 ranks, error and failure programs, the
# launcher), and doc tests. MPI jobs never run concurrently (nextest group).
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/setup.sh
cargo build --workspace --all-targets
cargo nextest run --workspace --no-fail-fast
cargo test --workspace --doc
