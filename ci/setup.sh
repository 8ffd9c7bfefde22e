#!/usr/bin/env bash
# Installs what rankview needs on a fresh Debian machine with Rust, when it is
# missing, and checks each thing the way its user will use it:
# - cargo on PATH (rustup's ~/.cargo/bin is added when a non-login shell
#   lacks it);
# - a C compiler (rsmpi compiles a C shim; Rust links with `cc` too);
# - Open MPI's compiler wrapper and launcher (`mpicc` answering
#   `--showme:version`, `mpirun --version` saying Open MPI), each checked on
#   its own, since either can be there without the other;
# - the libclang bindgen loads and clang's headers (ci/find-libclang.sh:
#   clang-sys's own search, so an LLVM without libclang counts as missing);
# - procps (`pgrep`, `kill`), which the launcher's tests run;
# - cargo-nextest.
# Packages come from ci/apt-install.sh (root or password-less sudo).
# Idempotent: does nothing when everything is there. Source it
# (`. ci/setup.sh`) to also get the environment: OpenMPI's permission to run
# as root, and MPICC/MPIEXEC pointing at Open MPI when the machine's default
# `mpicc`/`mpirun` belong to another MPI. Sourcing it changes no option of
# your shell.

# Everything that may fail runs in a subshell, so a sourcing shell keeps its
# own options and is only told whether setup worked. Each step checks its own
# failure (errexit would be ignored here: the caller tests the status).
_rankview_setup() (
    set -uo pipefail
    here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd) || exit 1
    . "$here/find-libclang.sh" || exit 1
    . "$here/apt-install.sh" || exit 1

    need=()
    command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
    if ! command -v mpicc.openmpi >/dev/null 2>&1 &&
        ! mpicc --showme:version 2>/dev/null | grep -q "Open MPI"; then
        need+=(libopenmpi-dev)
    fi
    if ! command -v mpirun.openmpi >/dev/null 2>&1 &&
        ! mpirun --version 2>/dev/null | grep -q "Open MPI"; then
        need+=(openmpi-bin)
    fi
    libclang_ok() {
        local lib
        lib=$(find_libclang) && libclang_headers "$lib"
    }
    libclang_ok || need+=(libclang-dev)
    command -v pgrep >/dev/null 2>&1 || need+=(procps)
    if [ ${#need[@]} -gt 0 ]; then
        apt_install ci/setup.sh "${need[@]}" || exit 1
    fi
    if ! libclang_ok; then
        echo "ci/setup.sh: bindgen will not find libclang (or clang's stddef.h beside it);" \
            "set LIBCLANG_PATH to the directory of libclang.so" >&2
        exit 1
    fi

    if ! cargo nextest --version >/dev/null 2>&1; then
        echo "ci/setup.sh: installing cargo-nextest" >&2
        if ! cargo install cargo-nextest --locked; then
            echo "ci/setup.sh: cargo install cargo-nextest failed with $(rustc --version 2>&1);" \
                "a newer Rust (rustup update) may be needed" >&2
            exit 1
        fi
    fi
)

_rankview_env() {
    if ! command -v cargo >/dev/null 2>&1 && [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]; then
        export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        echo "ci/setup.sh: cargo not found: install Rust first (https://rustup.rs)" >&2
        return 1
    fi
    _rankview_setup || return 1
    # Debian's `mpicc`/`mpirun` are alternatives: with MPICH installed first
    # they may be MPICH's. The default build and launcher must be Open MPI's.
    if ! mpicc --showme:version 2>/dev/null | grep -q "Open MPI" && command -v mpicc.openmpi >/dev/null 2>&1; then
        export MPICC=mpicc.openmpi
    fi
    if [ -z "${MPIEXEC:-}" ] && ! mpirun --version 2>/dev/null | grep -q "Open MPI" &&
        command -v mpirun.openmpi >/dev/null 2>&1; then
        export MPIEXEC=mpirun.openmpi
    fi
    # Open MPI refuses to run as root without these.
    if [ "$(id -u)" -eq 0 ]; then
        export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    fi
}

_rankview_env
