#!/usr/bin/env bash
# The whole test suite: the examples and check programs against MPICH
# (ci/test-mpich.sh), then unit tests, integration tests that launch real
# OpenMPI jobs (every example on 2, 3 and 5 ranks, error, failure and
# collective programs, the launcher), and doc tests. MPI jobs never run
# concurrently (nextest group).
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/setup.sh
bash ci/test-setup.sh
bash ci/test-mpich.sh
cargo build --workspace --all-targets
cargo test -p rankview --doc
cargo nextest run --workspace --no-fail-fast
