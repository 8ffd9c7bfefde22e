#!/usr/bin/env bash
# The same binaries against MPICH: installs mpich beside OpenMPI when missing,
# builds every example with MPICC=mpicc.mpich into target/mpich, and runs the
# examples and check programs under mpirun.mpich on 3 and 5 ranks, plus a
# failing client (which must end the job at once, non-zero).
# The compiler wrapper and the launcher are checked apart (libmpich-dev brings
# mpicc.mpich, the mpich package mpirun.mpich); the MPICH build goes into
# mpich/ under the caller's target directory.
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/setup.sh
. ci/apt-install.sh
need=()
command -v mpicc.mpich >/dev/null 2>&1 || need+=(libmpich-dev)
command -v mpirun.mpich >/dev/null 2>&1 || need+=(mpich)
[ ${#need[@]} -eq 0 ] || apt_install ci/test-mpich.sh "${need[@]}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/mpich"
MPICC=mpicc.mpich cargo build --examples
bin="$CARGO_TARGET_DIR/debug/examples"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
passed=0
failed=0
run() {
    local expect=$1; shift
    local status=0
    timeout 120 mpirun.mpich "$@" >"$out" 2>&1 || status=$?
    if { [ "$expect" = ok ] && [ $status -eq 0 ]; } || { [ "$expect" = fail ] && [ $status -ne 0 ] && [ $status -ne 124 ]; }; then
        passed=$((passed + 1))
        echo "ok: mpirun.mpich $*"
    else
        failed=$((failed + 1))
        echo "FAIL: mpirun.mpich $* (exit $status)"
        tail -20 "$out"
    fi
}
for n in 3 5; do
    for example in quickstart basic_interface going_parallel scatter_gather check_errors check_async check_collectives; do
        run ok -n "$n" "$bin/$example"
    done
done
run fail -n 3 "$bin/check_failures" err
run fail -n 3 "$bin/check_failures" panic
echo "mpich: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
