#!/usr/bin/env bash
# The same binaries against MPICH: installs mpich beside OpenMPI when missing,
# builds every example with MPICC=mpicc.mpich into target/mpich, and runs the
# examples and check programs under mpirun.mpich on 3 and 5 ranks (a check
# program must also print its whole checklist: ok lines, none failed or
# skipped, and the summary counting them), plus a failing client (which must
# end the job at once, non-zero), and a binary run under the other MPI's
# launcher (which must be named as a mismatch).
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
openmpi_target="${CARGO_TARGET_DIR:-$PWD/target}"
export CARGO_TARGET_DIR="$openmpi_target/mpich"
MPICC=mpicc.mpich cargo build -p rankview --examples
MPICC=mpicc.mpich cargo build -p rankview-checks
examples="$CARGO_TARGET_DIR/debug/examples"
checks="$CARGO_TARGET_DIR/debug"
# For the MPI-mismatch checks: the launcher, and one example built with Open MPI.
CARGO_TARGET_DIR="$openmpi_target" cargo build -p rankview-launcher
CARGO_TARGET_DIR="$openmpi_target" cargo build -p rankview --example quickstart
rankview="$openmpi_target/debug/rankview"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
passed=0
failed=0
# record WHAT STATUS PASSED: counts one check; a failed one shows the output.
record() {
    if [ "$3" = yes ]; then
        passed=$((passed + 1))
        echo "ok: $1"
    else
        failed=$((failed + 1))
        echo "FAIL: $1 (exit $2)"
        tail -20 "$out"
    fi
}
# job COMMAND...: runs it into $out, with a time limit; sets $status.
job() {
    status=0
    timeout 120 "$@" >"$out" 2>&1 || status=$?
}
# checklist PROGRAM: true when $out holds a check program's full report:
# no FAIL line, at least one ok line, none skipped (every job here has two
# engines or more), and the summary counting exactly the ok lines.
checklist() {
    local passed skipped
    passed=$(grep -c '^ok: ' "$out" || true)
    skipped=$(grep -c '^skip: ' "$out" || true)
    ! grep -q '^FAIL: ' "$out" && [ "$passed" -gt 0 ] && [ "$skipped" -eq 0 ] &&
        grep -qx "$1: $passed passed, 0 failed, 0 skipped" "$out"
}
# run ok|fail MPIRUN-ARGS...: a job that must succeed or fail. A check
# program run without a mode (check_*) must also print its full checklist.
run() {
    local expect=$1; shift
    job mpirun.mpich "$@"
    local ok=no program="" mode=no arg
    for arg in "$@"; do
        if [ -n "$program" ]; then
            mode=yes
        elif [ "${arg#"$checks"/}" != "$arg" ]; then
            program=${arg#"$checks"/}
        fi
    done
    if { [ "$expect" = ok ] && [ $status -eq 0 ]; } || { [ "$expect" = fail ] && [ $status -ne 0 ] && [ $status -ne 124 ]; }; then
        ok=yes
    fi
    if [ "$ok" = yes ] && [ "$expect" = ok ] && [ "${program#check_}" != "$program" ] &&
        [ "$mode" = no ] && ! checklist "$program"; then
        ok=no
        echo "$program: its checklist is incomplete or failed:"
        grep -E '^(FAIL|skip): |^ {4}|passed, .* failed' "$out" | head -40
    fi
    record "mpirun.mpich $*" "$status" "$ok"
}
for n in 3 5; do
    for example in quickstart basic_interface going_parallel follow_norms load_balancing scatter_gather executors mpi_psum ensemble; do
        run ok -n "$n" "$examples/$example"
    done
    for check in check_errors check_async check_collectives check_balanced check_lifecycle check_hotpath check_shell check_executors check_taskcomm; do
        run ok -n "$n" "$checks/$check"
    done
done
# Views over groups: one group of two has checks to skip, so 5 and 9 ranks.
run ok -n 5 "$checks/check_groups"
run ok -n 9 "$checks/check_groups"
run ok -n 9 "$examples/ensemble"
# An endless imap stopped early, and callbacks still running when the
# client returns: both jobs must end cleanly.
run ok -n 3 "$checks/check_lifecycle" imap_stop
run ok -n 3 "$checks/check_lifecycle" callbacks
# #[rankview::test] under MPICH: examples/sweep-crate's tests, built against
# MPICH and started by MPICH's launcher (with this repository's lock file).
sweep=examples/sweep-crate
cp Cargo.lock "$sweep/Cargo.lock"
MPICC=mpicc.mpich cargo test --no-run --manifest-path "$sweep/Cargo.toml" --test sweep
job env MPICC=mpicc.mpich MPIEXEC=mpirun.mpich cargo test --manifest-path "$sweep/Cargo.toml" --test sweep
sweep_ok=no
if [ $status -eq 0 ] && grep -q "3 passed; 0 failed" "$out"; then
    sweep_ok=yes
fi
record "cargo test of $sweep under MPICH" "$status" "$sweep_ok"
run fail -n 3 "$checks/check_failures" err
run fail -n 3 "$checks/check_failures" panic
# Request order, and 5,000 views with a cache of 3 sub-communicators: MPICH
# runs out of communicator ids after about 2,000 unless they are freed.
run ok -n 5 -env RANKVIEW_GROUP_CACHE 3 "$checks/check_order"
# Internal failures end the job, never hang (timeout gives 124).
run fail -n 3 "$checks/check_failures" section_panic_engine
run fail -n 3 "$checks/check_failures" section_panic_root
# A task left in a barrier another engine never enters: the shutdown
# grace ends the job.
run fail -n 3 -env RANKVIEW_SHUTDOWN_GRACE 2 "$checks/check_taskcomm" never_entered

# A binary run under the other MPI's launcher sees a world of one on every
# rank: the job must fail at once and name the mismatch in the summary, on
# one line for the ranks that said it (Open MPI may kill some before).
mismatch() {
    local what=$1; shift
    job "$@"
    local ok=no
    if [ $status -ne 0 ] && [ $status -ne 124 ] &&
        grep -q "^rankview: ranks [0-9, -]*: failed: .*built against a different MPI than the launcher" "$out" &&
        [ "$(grep -c "^rankview: .*failed: .*built against a different MPI" "$out")" -eq 1 ]; then
        ok=yes
    fi
    record "$what is named as an MPI mismatch" "$status" "$ok"
}
mismatch "an Open MPI binary under mpirun.mpich" \
    env MPIEXEC=mpirun.mpich "$rankview" run -n 3 "$openmpi_target/debug/examples/quickstart"
mismatch "an MPICH binary under Open MPI's mpirun" \
    env MPIEXEC=mpirun.openmpi "$rankview" run -n 3 "$examples/quickstart"
echo "mpich: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
