#!/usr/bin/env bash
# rankview against a real Slurm (issue 22): installs Debian's slurm-wlm and
# munge when missing, starts a one-node cluster (munged, slurmctld, slurmd;
# slurm.conf in a temporary directory, MpiDefault left at Slurm's default,
# none) and runs, each counted as one `ok: NAME` or `FAIL: NAME` line:
# - `rankview batch slurm --submit`, waited for (the script picks srun's
#   PMI plugin itself); `rankview run` inside `salloc` (srun, the
#   allocation's size, said in --dry-run); a job scancel'led while running;
#   a rank killed under srun (the job ends within seconds, the rank named);
#   SIGINT to `rankview run` under srun; no rank started (the PMI hint).
# Then, where network namespaces can be made, two slurmd in two namespaces
# joined by a veth pair (each with its own host name and TmpFS), where the
# one-node case hides that a dead rank alone on its node leaves the others
# waiting: the same under salloc and in a batch script; MPI inside tasks
# across the nodes (`mpi_psum`, and `ensemble` on groups of two that each
# span both nodes, srun's cyclic distribution); and `mpirun` across
# the two namespaces with a fake rsh agent (the example runs, a remote
# engine killed ends the job, SIGINT leaves nothing on either node).
# Prints `N passed, M failed`; exits 1 when a check failed. Skips, with one
# line, where this machine cannot: not root, no apt-get to install Slurm,
# no network namespaces (the two-node part only). Stops every daemon it
# started, removes the namespaces and its directory (trap on EXIT); it
# changes no file outside its directory. Holds the MPI job lock of the
# tests (<target>/rankview-mpi-tests.lock) throughout.
set -uo pipefail
cd "$(dirname "$0")/.."
here=$PWD
. ci/setup.sh || exit 1
. ci/apt-install.sh

if [ "$(id -u)" -ne 0 ]; then
    echo "skip: ci/test-slurm.sh needs root (it starts munged, slurmctld and slurmd)"
    exit 0
fi
need=()
for tool in slurmctld slurmd srun; do command -v $tool >/dev/null 2>&1 || need=(slurm-wlm); done
command -v munged >/dev/null 2>&1 || need+=(munge)
command -v nsenter >/dev/null 2>&1 || need+=(util-linux)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
if [ ${#need[@]} -gt 0 ] && ! apt_install ci/test-slurm.sh "${need[@]}"; then
    echo "skip: ci/test-slurm.sh could not install ${need[*]} (see above)"
    exit 0
fi

set -e
target="${CARGO_TARGET_DIR:-$here/target}"
cargo build -q -p rankview-launcher
cargo build -q -p rankview --example quickstart --example mpi_psum --example ensemble
cargo build -q -p rankview-checks --bin check_failures
set +e

tmp=$(mktemp -d /tmp/rankview-slurm.XXXXXX)
chmod 755 "$tmp"
daemons=()
namespaces=()
mounts=()
cleanup() {
    local pid ns
    for pid in "${daemons[@]}"; do kill "$pid" 2>/dev/null; done
    sleep 0.5
    for pid in "${daemons[@]}"; do kill -9 "$pid" 2>/dev/null; done
    # Whatever a failed check left of the jobs' programs.
    pkill -9 -f "$tmp/bin/" 2>/dev/null
    for ns in "${namespaces[@]}"; do ip netns del "$ns" 2>/dev/null; done
    for m in "${mounts[@]}"; do umount "$m" 2>/dev/null; done
    # RANKVIEW_SLURM_KEEP=1 keeps the logs, to see why a check failed.
    if [ -n "${RANKVIEW_SLURM_KEEP:-}" ]; then
        echo "test-slurm: logs kept in $tmp"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT

# The job lock of the tests: no other MPI job runs meanwhile.
exec 9>"$target/rankview-mpi-tests.lock"
flock 9

# Binaries of their own: the target directory may be rebuilt meanwhile, and
# the second node must see the same files.
mkdir -p "$tmp/bin"
cp "$target/debug/rankview" "$target/debug/examples/quickstart" \
    "$target/debug/examples/mpi_psum" "$target/debug/examples/ensemble" \
    "$target/debug/check_failures" "$tmp/bin/"
rankview=$tmp/bin/rankview
quickstart=$tmp/bin/quickstart
long=$tmp/bin/check_failures
export SLURM_CONF=$tmp/slurm.conf
# No client waits for a broken cluster, or a job that hangs, for long.
limit=(timeout 60)
unset SLURM_JOB_ID SLURM_NTASKS SLURM_NPROCS SLURM_MPI_TYPE SLURM_KILL_BAD_EXIT MPIEXEC

passed=0
failed=0
out=$tmp/out
# check NAME OK: counts one check; a failed one shows what it printed.
check() {
    if [ "$2" = yes ]; then
        passed=$((passed + 1))
        echo "ok: $1"
    else
        failed=$((failed + 1))
        echo "FAIL: $1"
        tail -25 "$out" 2>/dev/null | sed 's/^/    /'
    fi
}
# yes_if COMMAND...: `yes` when it succeeds.
yes_if() { if "$@"; then echo yes; else echo no; fi; }
# has TEXT: whether $out has this line fragment.
has() { grep -qF -- "$1" "$out"; }
# elapsed_under SECS: whether the last timed command took less.
elapsed_under() { awk -v t="$took" -v m="$1" 'BEGIN { exit !(t < m) }'; }
now() { date +%s.%N; }
# since START: seconds from START (a `now`) to now.
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
# left_running: processes of the jobs' programs still alive.
left_running() { pgrep -f "$tmp/bin/(quickstart|check_failures)" || true; }
# wait_for TEXT FILE SECS: waits until FILE has TEXT.
wait_for() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -qF -- "$1" "$2" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
# pid_of_rank RANK FILE: the pid check_failures long_task printed for RANK.
pid_of_rank() { grep "check_failures: pids" "$2" | awk -v r="$1" '{ print $(r + 3) }'; }
# job_state ID: Slurm's state of a job.
job_state() { timeout 5 scontrol show job "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2; }
# wait_job ID SECS: waits until the job has ended; prints its state.
wait_job() {
    local until=$((SECONDS + $2)) state=
    while [ $SECONDS -lt $until ]; do
        state=$(job_state "$1")
        case $state in PENDING | RUNNING | CONFIGURING | COMPLETING | "") sleep 0.1 ;; *) break ;; esac
    done
    echo "$state"
}
# in NS COMMAND...: runs it in network (and UTS) namespace NS, or here.
inside() {
    local ns=$1
    shift
    if [ "$ns" = - ]; then "$@"; else nsenter --net="/run/netns/$ns" --uts="$tmp/uts-$ns" "$@"; fi
}
# start_daemon NS PIDFILE COMMAND...: starts a daemon that writes PIDFILE.
start_daemon() {
    local ns=$1 pidfile=$2 i
    shift 2
    inside "$ns" "$@" || return 1
    for ((i = 0; i < 50; i++)); do
        [ -s "$pidfile" ] && daemons+=("$(cat "$pidfile")") && return 0
        sleep 0.1
    done
    return 1
}

# ------------------------------------------------------------ the cluster

dd if=/dev/urandom of="$tmp/munge.key" bs=1024 count=1 2>/dev/null
chmod 400 "$tmp/munge.key"
mkdir -m 700 "$tmp/munge"
if ! start_daemon - "$tmp/munge/munged.pid" munged --force --key-file="$tmp/munge.key" \
    --socket="$tmp/munge/socket" --pid-file="$tmp/munge/munged.pid" \
    --log-file="$tmp/munge/munged.log" --seed-file="$tmp/munge/seed"; then
    echo "FAIL: munged did not start"
    tail "$tmp/munge/munged.log"
    exit 1
fi

# write_conf FILE CTLD_HOST CTLD_ADDR TMPFS NODE_LINES...: a slurm.conf
# (slurmctld runs only on a host of that name); MpiDefault is not set
# (Slurm's default: none).
write_conf() {
    local file=$1 host=$2 ctld=$3 tmpfs=$4
    shift 4
    mkdir -p "$tmpfs" "$tmp/state-$ctld"
    cat >"$file" <<EOF
ClusterName=rankview
SlurmctldHost=$host($ctld)
SlurmctldPort=16917
SlurmdPort=16918
AuthType=auth/munge
AuthInfo=socket=$tmp/munge/socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$tmp/state-$ctld
SlurmdSpoolDir=$tmp/spool-%n
SlurmctldPidFile=$tmp/slurmctld-$ctld.pid
SlurmdPidFile=$tmp/slurmd-%n.pid
SlurmctldLogFile=$tmp/slurmctld-$ctld.log
SlurmdLogFile=$tmp/slurmd-%n.log
TmpFS=$tmpfs
PlugStackConfig=$tmp/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=600
KillWait=5
$(printf '%s\n' "$@")
EOF
}
: >"$tmp/plugstack.conf"

# wait_idle NODES: waits (up to 20 s) until sinfo shows that many idle
# nodes.
wait_idle() {
    local until=$((SECONDS + 20))
    while [ $SECONDS -lt $until ]; do
        [ "$(timeout 5 sinfo -h -t idle -o %D 2>/dev/null | head -1)" = "$1" ] && return 0
        sleep 0.2
    done
    return 1
}

write_conf "$tmp/slurm.conf" "$(hostname)" 127.0.0.1 "$tmp/tmpfs" \
    "NodeName=one NodeHostname=$(hostname) NodeAddr=127.0.0.1 CPUs=8 State=UNKNOWN" \
    "PartitionName=main Nodes=one Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES"
if ! start_daemon - "$tmp/slurmctld-127.0.0.1.pid" slurmctld -i ||
    ! start_daemon - "$tmp/slurmd-one.pid" slurmd -N one || ! wait_idle 1; then
    echo "FAIL: the one-node Slurm cluster did not start"
    tail -5 "$tmp"/slurm*.log
    exit 1
fi

# ------------------------------------------------- scenarios on one node

# The quickstart as a batch job: submitted, waited for, its output checked.
( cd "$tmp" && "${limit[@]}" "$rankview" batch slurm -n 3 -t 2 --script "$tmp/quick.sh" --submit "$quickstart" ) >"$out" 2>&1
id=$(tail -1 "$out")
state=$(wait_job "$id" 60)
cat "$tmp/quick.sh" "$tmp"/quickstart-"$id".out >>"$out" 2>/dev/null
check "batch --submit: the job completes (state $state)" \
    "$(yes_if [ "$state" = COMPLETED ] && has "quickstart: 2 engines answered" &&
        has "--kill-on-bad-exit=1 --mpi=pmix")"

"${limit[@]}" salloc -N 1 -n 3 "$rankview" run "$quickstart" >"$out" 2>&1
status=$?
check "run inside salloc: srun, the allocation's 3 ranks" \
    "$(yes_if [ $status -eq 0 ] && has "quickstart: 2 engines answered" &&
        has "rankview: job finished: 3 ranks, exit 0")"

"${limit[@]}" salloc -N 1 --exclusive "$rankview" run --dry-run "$quickstart" >"$out" 2>&1
check "run --dry-run inside salloc -N 1: the size from the allocation's CPUs, and why srun" \
    "$(yes_if has "# -n 8: the Slurm allocation's CPUs (SLURM_JOB_CPUS_PER_NODE=8)" &&
        has "# srun: inside the Slurm allocation SLURM_JOB_ID=")"

"${limit[@]}" salloc -N 1 -n 3 "$rankview" run --mpi-arg=--mpi=none "$quickstart" >"$out" 2>&1
check "no rank started (--mpi=none): the hint names the PMI plugin" \
    "$(yes_if has "rankview: no rank started: if they died in MPI_Init, srun's PMI plugin (--mpi=none)")"

# A running batch job scancel'led: it ends, no rank is left.
( cd "$tmp" && "${limit[@]}" "$rankview" batch slurm -n 3 -t 2 -J cancelled --submit "$long" long_task ) >"$out" 2>&1
id=$(tail -1 "$out")
wait_for "check_failures: pids" "$tmp/cancelled-$id.out" 30
scancel "$id"
start=$(now)
state=$(wait_job "$id" 30)
took=$(since "$start")
sleep 0.3
check "scancel of a running job ends it in ${took} s (state $state), no rank left" \
    "$(yes_if [ "$state" = CANCELLED ] && elapsed_under 10 && [ -z "$(left_running)" ])"

# run_then WHAT NS COMMAND...: COMMAND (a `rankview run` of check_failures
# long_task) in NS; once the job runs, WHAT: `kill-R` SIGKILLs rank R,
# `interrupt` sends `rankview` SIGINT. Sets $status and $took (seconds from
# then to the end).
run_then() {
    local what=$1 ns=$2 pid start i
    shift 2
    # Emptied first: the job's output must not be read before it starts.
    : >"$out"
    inside "$ns" "$@" >"$out" 2>&1 &
    pid=$!
    status=-1
    took=999
    if wait_for "check_failures: pids" "$out" 30; then
        start=$(now)
        case $what in
        kill-*) kill -9 "$(pid_of_rank "${what#kill-}" "$out")" ;;
        *)
            # The rankview process itself (salloc or timeout runs it).
            for ((i = 0; i < 50; i++)); do
                pkill -INT -f "^$rankview run" && break
                sleep 0.1
            done
            ;;
        esac
        wait "$pid"
        status=$?
        took=$(since "$start")
    else
        kill "$pid"
        wait "$pid"
    fi
    sleep 0.3
}
run_then kill-3 - "${limit[@]}" salloc -N 1 -n 4 "$rankview" run "$long" long_task
check "rank 3 killed under srun: the job ends in ${took} s, rank 3 named" \
    "$(yes_if elapsed_under 10 && has "rankview: rank 3: first to fail: killed by SIGKILL (signal 9)")"

run_then interrupt - "${limit[@]}" salloc -N 1 -n 3 "$rankview" run "$long" long_task
check "SIGINT to rankview run under srun: stopped in ${took} s, exit 130, no rank left" \
    "$(yes_if elapsed_under 10 && [ $status -eq 130 ] && has "rankview: job interrupted by SIGINT: 3 ranks" &&
        [ -z "$(left_running)" ])"

# --------------------------------------------- two nodes in namespaces

two_nodes() {
    local ns
    ip netns add rvslurm1 2>/dev/null || return 1
    namespaces+=(rvslurm1)
    ip netns add rvslurm2 || return 1
    namespaces+=(rvslurm2)
    ip link add rvslurm-a netns rvslurm1 type veth peer name rvslurm-b netns rvslurm2 || return 1
    ip -n rvslurm1 addr add 10.213.7.1/24 dev rvslurm-a &&
        ip -n rvslurm2 addr add 10.213.7.2/24 dev rvslurm-b || return 1
    for ns in rvslurm1 rvslurm2; do
        ip -n $ns link set lo up && ip -n $ns link set "$([ $ns = rvslurm1 ] && echo rvslurm-a || echo rvslurm-b)" up || return 1
        # A host name of its own: a UTS namespace kept in a file.
        touch "$tmp/uts-$ns"
        unshare --uts="$tmp/uts-$ns" hostname "node${ns#rvslurm}" || return 1
        mounts+=("$tmp/uts-$ns")
    done
}

if ! two_nodes; then
    echo "skip: two nodes: this machine cannot make network namespaces (ip netns add)"
else
    # Stop the one-node cluster; the two-node one has a configuration per
    # node (each its own TmpFS: two slurmd sharing one collide on PMIx
    # directories).
    for pid in "${daemons[@]:1}"; do kill "$pid" 2>/dev/null; done
    daemons=("${daemons[0]}")
    sleep 1
    nodes=("NodeName=node1 NodeAddr=10.213.7.1 CPUs=4 State=UNKNOWN"
        "NodeName=node2 NodeAddr=10.213.7.2 CPUs=4 State=UNKNOWN"
        "PartitionName=main Nodes=node[1-2] Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES")
    write_conf "$tmp/slurm.conf" node1 10.213.7.1 "$tmp/tmpfs1" "${nodes[@]}"
    write_conf "$tmp/slurm-node2.conf" node1 10.213.7.1 "$tmp/tmpfs2" "${nodes[@]}"
    # `ip netns exec` remounts /sys, which slurmd dislikes: nsenter instead.
    if ! start_daemon rvslurm1 "$tmp/slurmctld-10.213.7.1.pid" slurmctld -i ||
        ! start_daemon rvslurm1 "$tmp/slurmd-node1.pid" slurmd -N node1 ||
        ! start_daemon rvslurm2 "$tmp/slurmd-node2.pid" slurmd -N node2 -f "$tmp/slurm-node2.conf" ||
        ! inside rvslurm1 bash -c "$(declare -f wait_idle); wait_idle 2"; then
        echo "FAIL: the two-node Slurm cluster did not start"
        failed=$((failed + 1))
        tail -5 "$tmp"/slurm*.log
    else
        inside rvslurm1 "${limit[@]}" salloc -N 2 -n 4 "$rankview" run "$quickstart" >"$out" 2>&1
        status=$?
        check "two nodes: run inside salloc -N 2, engines on node2 answer" \
            "$(yes_if [ $status -eq 0 ] && has "quickstart: 3 engines answered" && has " on node2): ")"

        # MPI inside tasks across the nodes: ranks dealt out in turn (0, 2,
        # 4 on node1; 1, 3 on node2), so that each team communicator, and
        # each group of two engines, has a member on each node.
        inside rvslurm1 env SLURM_DISTRIBUTION=cyclic "${limit[@]}" salloc -N 2 -n 5 \
            srun -l hostname >"$out" 2>&1
        check "two nodes: srun's cyclic distribution puts rank 1 on node2 and rank 2 on node1" \
            "$(yes_if has "1: node2" && has "2: node1")"
        inside rvslurm1 env SLURM_DISTRIBUTION=cyclic "${limit[@]}" salloc -N 2 -n 5 \
            "$rankview" run "$tmp/bin/mpi_psum" >"$out" 2>&1
        status=$?
        check "two nodes: mpi_psum (a communicator of engines on both nodes)" \
            "$(yes_if [ $status -eq 0 ] && has "mpi_psum: every engine's psum is the local sum")"
        inside rvslurm1 env SLURM_DISTRIBUTION=cyclic "${limit[@]}" salloc -N 2 -n 5 \
            "$rankview" run "$tmp/bin/ensemble" >"$out" 2>&1
        status=$?
        check "two nodes: ensemble on groups of two that span both nodes" \
            "$(yes_if [ $status -eq 0 ] && has "ensemble: 32 solves on 2 group(s) of 2" &&
                has "match the serial solve")"

        # Rank 3 alone on node2: without --kill-on-bad-exit the others
        # waited for it until the time limit.
        run_then kill-3 rvslurm1 "${limit[@]}" salloc -N 2 -n 4 --ntasks-per-node=3 "$rankview" run "$long" long_task
        check "two nodes: rank 3 (alone on node2) killed: the job ends in ${took} s, rank 3 named" \
            "$(yes_if elapsed_under 10 && has "rankview: rank 3: first to fail: killed by SIGKILL (signal 9)" &&
                has "srun: error: node2: task 3: Killed")"

        ( cd "$tmp" && inside rvslurm1 "${limit[@]}" "$rankview" batch slurm -N 2 -n 4 --tasks-per-node 3 --cpus-per-rank 1 -t 2 \
            -J killed --submit "$long" long_task ) >"$out" 2>&1
        id=$(tail -1 "$out")
        if wait_for "check_failures: pids" "$tmp/killed-$id.out" 30; then
            kill -9 "$(pid_of_rank 3 "$tmp/killed-$id.out")"
        fi
        start=$(now)
        state=$(inside rvslurm1 bash -c "$(declare -f wait_job job_state); wait_job $id 30")
        took=$(since "$start")
        sleep 0.3
        cat "$tmp/killed-$id.out" >>"$out" 2>/dev/null
        check "two nodes: a batch job whose rank 3 (alone on node2) is killed ends in ${took} s (state $state)" \
            "$(yes_if [ "$state" = FAILED ] && elapsed_under 10 && [ -z "$(left_running)" ])"

        run_then interrupt rvslurm1 "${limit[@]}" salloc -N 2 -n 4 "$rankview" run "$long" long_task
        check "two nodes: SIGINT under srun stops the job in ${took} s, nothing left on either node" \
            "$(yes_if elapsed_under 10 && [ $status -eq 130 ] && has "rankview: job interrupted by SIGINT: 4 ranks" &&
                [ -z "$(left_running)" ])"
    fi

    # mpirun across the namespaces: a fake rsh agent starts Open MPI's
    # daemon in the other one.
    cat >"$tmp/fake-rsh" <<EOF
#!/bin/sh
host=\$1
shift
case \$host in
    10.213.7.1 | node1) ns=rvslurm1 ;;
    *) ns=rvslurm2 ;;
esac
exec nsenter --net=/run/netns/\$ns --uts=$tmp/uts-\$ns sh -c "\$*"
EOF
    chmod 755 "$tmp/fake-rsh"
    printf '10.213.7.1 slots=2\n10.213.7.2 slots=2\n' >"$tmp/hosts"
    mpi=(run -n 4 --hostfile "$tmp/hosts" --mpi-args
        "--mca plm_rsh_agent $tmp/fake-rsh --mca btl tcp,self --mca btl_tcp_if_include 10.213.7.0/24 --mca oob_tcp_if_include 10.213.7.0/24")
    inside rvslurm1 "${limit[@]}" "$rankview" "${mpi[@]}" "$quickstart" >"$out" 2>&1
    status=$?
    check "mpirun across two namespaces: the quickstart runs, engines on node2 answer" \
        "$(yes_if [ $status -eq 0 ] && has "quickstart: 3 engines answered" && has " on node2): ")"

    run_then kill-3 rvslurm1 "${limit[@]}" "$rankview" "${mpi[@]}" "$long" long_task
    check "mpirun across two namespaces: rank 3 (on node2) killed ends the job in ${took} s, named" \
        "$(yes_if elapsed_under 10 && has "rankview: rank 3: first to fail: killed by SIGKILL (signal 9)" &&
            [ -z "$(left_running)" ])"

    run_then interrupt rvslurm1 "${limit[@]}" "$rankview" "${mpi[@]}" "$long" long_task
    check "mpirun across two namespaces: SIGINT stops the job in ${took} s, nothing left on either node" \
        "$(yes_if elapsed_under 10 && [ $status -eq 130 ] && has "rankview: job interrupted by SIGINT: 4 ranks" &&
            [ -z "$(left_running)" ])"
fi

echo "test-slurm: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
