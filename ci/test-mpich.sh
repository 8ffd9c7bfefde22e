#!/usr/bin/env bash
# The same binaries against MPICH: installs mpich beside OpenMPI when missing,
# builds every example with MPICC=mpicc.mpich into target/mpich, and runs the
# examples and check programs under mpirun.mpich on 3 and 5 ranks, plus a
# failing client (which must end the job at once, non-zero).
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/setup.sh
if ! command -v mpicc.mpich >/dev/null 2>&1 || ! command -v mpirun.mpich >/dev/null 2>&1; then
    echo "ci/test-mpich.sh: installing mpich" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mpich libmpich-dev >/dev/null
fi
export CARGO_TARGET_DIR="$PWD/target/mpich"
MPICC=mpicc.mpich cargo build --examples
bin="$CARGO_TARGET_DIR/debug/examples"
passed=0
failed=0
run() {
    local expect=$1; shift
    local status=0
    timeout 120 mpirun.mpich "$@" >/tmp/rankview-mpich.out 2>&1 || status=$?
    if { [ "$expect" = ok ] && [ $status -eq 0 ]; } || { [ "$expect" = fail ] && [ $status -ne 0 ] && [ $status -ne 124 ]; }; then
        passed=$((passed + 1))
        echo "ok: mpirun.mpich $*"
    else
        failed=$((failed + 1))
        echo "FAIL: mpirun.mpich $* (exit $status)"
        tail -20 /tmp/rankview-mpich.out
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
