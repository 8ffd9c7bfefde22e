#!/usr/bin/env bash
# Installs what rankview needs on a fresh Debian machine with Rust, when it is
# missing: OpenMPI (mpicc, mpirun) and libclang (for rsmpi's bindgen), and
# cargo-nextest. Idempotent: does nothing when everything is there.
# Source it (`. ci/setup.sh`) to also get the environment OpenMPI needs as root.
set -euo pipefail

need=()
command -v mpicc >/dev/null 2>&1 || need+=(libopenmpi-dev)
command -v mpirun >/dev/null 2>&1 || need+=(openmpi-bin)
ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || ls /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1 || need+=(libclang-dev)
if [ ${#need[@]} -gt 0 ]; then
    echo "ci/setup.sh: installing ${need[*]}" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "ci/setup.sh: installing cargo-nextest" >&2
    cargo install cargo-nextest --locked
fi

# Open MPI refuses to run as root without these.
if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
