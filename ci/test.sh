#!/usr/bin/env bash
# The whole test suite: the examples and check programs against MPICH
# (ci/test-mpich.sh), then unit tests, integration tests that launch real
# OpenMPI jobs (every example on 2, 3 and 5 ranks, error, failure and
# collective programs, the launcher, faults, protocol fuzzing), doc tests,
# the loom models of the hand-written synchronization (ci/test-loom.sh),
# a subset of the MPI tests again over Open MPI's TCP transport only (what a
# multi-node job uses), the order, collectives, balanced, taskcomm and groups
# checks on 3 ranks with RANKVIEW_FUNNELED=1 (only the MPI threads call
# MPI, as under an MPI that grants MPI_THREAD_FUNNELED; check_order checks that no other
# thread did), and last the launcher against a real Slurm, on one node and
# on two in network namespaces (ci/test-slurm.sh). MPI jobs never run
# concurrently (nextest group and a job lock).
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/setup.sh
bash ci/test-setup.sh
bash ci/test-mpich.sh
cargo build --workspace --all-targets
cargo test -p rankview --doc
bash ci/test-loom.sh
cargo nextest run --workspace --no-fail-fast
RANKVIEW_TEST_MPI_ARGS="--mca btl tcp,self" cargo nextest run -p rankview --no-fail-fast \
    --test order --test collectives --test errors --test faults --test balanced --test lifecycle \
    --test hotpath --test taskcomm --test groups --test examples \
    -E 'not test(slow_) & not test(past_the_count_limit) & (not binary(examples) | test(/^mpi_psum_/))'
RANKVIEW_TEST_MPI_ARGS="-x RANKVIEW_FUNNELED=1" cargo nextest run -p rankview --no-fail-fast \
    --test order --test collectives --test balanced --test taskcomm --test groups -E 'test(/_3_ranks$/)'
bash ci/test-slurm.sh
