//! A task's communicator (`rankview::comm()`), checked on real engines. Run
//! it with `rankview run -n 3 --package rankview-checks --bin
//! check_taskcomm`; `tests/taskcomm.rs` runs it on 3, 5 and 9 ranks, over
//! TCP only and with `RANKVIEW_FUNNELED=1`.
//!
//! Owns the checks of ipyparallel's psum (scatter, then an allreduce of
//! each part's sum, against a local sum), of ranks following the view's
//! target order (a reversed view: rank `k` is the process of target `k`),
//! of every operation (barrier, allreduce with each op, broadcast,
//! allgather, point to point), of sub-views and views sharing engines in
//! another order, of the errors (`comm()` on one engine, in a load-balanced
//! task, outside a task; bad buffers and ranks), of the MPI thread serving
//! while a task waits in a collective (a task blocked in a barrier on
//! engine 0 while the client opens, through raw MPI sections every rank's
//! MPI thread runs, the gate engine 1's task waits at before entering it),
//! of a task of several engines running although aborted once queued, and
//! of the threading mode (no helper passes under `RANKVIEW_FUNNELED`).
//! With the argument `never_entered` the client leaves a task in a barrier
//! that another engine never enters and returns (the job must end after the
//! shutdown grace, naming the engine); with `never_entered_wait` it waits
//! for that task for ever (the launcher's `--timeout` must end the job);
//! `allreduce_never_entered` and `allreduce_never_entered_wait` are the
//! same with an allreduce of one value instead of the barrier.
//! Prints one line per check and exits non-zero unless every check held.

mod checklist;
mod gate;

use checklist::{skip, Checklist, Outcome};
use rankview::{globals, Client, Error, ReduceOp, Ref, TaskResult};

/// ipyparallel's psum: this engine's part summed over the view's engines
/// (a `Ref` to a stored `Vec<f64>` arrives as `&Vec<f64>`).
#[allow(clippy::ptr_arg)]
#[rankview::remote]
fn psum(part: &Vec<f64>) -> TaskResult<f64> {
    let comm = rankview::comm()?;
    Ok(comm.all_reduce(part.iter().sum::<f64>(), ReduceOp::Sum)?)
}

/// Rank, size, engines of the communicator, this process's id, and this
/// engine's id.
#[rankview::remote]
fn whoami() -> TaskResult<(usize, usize, Vec<usize>, u32, usize)> {
    let comm = rankview::comm()?;
    Ok((
        comm.rank(),
        comm.size(),
        comm.engines(),
        std::process::id(),
        globals().engine()?,
    ))
}

#[rankview::remote]
fn pid() -> u32 {
    std::process::id()
}

/// Runs every operation and checks each result against what rank `r` of
/// `n` must see; returns the failures, one line each (empty when all held).
#[rankview::remote]
fn every_operation() -> TaskResult<Vec<String>> {
    let comm = rankview::comm()?;
    let (r, n) = (comm.rank(), comm.size());
    let mut wrong = Vec::new();
    let mut expect = |what: &str, held: bool| {
        if !held {
            wrong.push(format!("rank {r}: {what}"));
        }
    };
    comm.barrier()?;
    // Allreduce of a vector with each op: element j of rank r is r + j + 1.
    let mine: Vec<i64> = (0..5).map(|j| (r + j + 1) as i64).collect();
    let mut out = vec![0i64; 5];
    for (op, want) in [
        (
            ReduceOp::Sum,
            (0..5)
                .map(|j| (0..n).map(|q| (q + j + 1) as i64).sum())
                .collect::<Vec<i64>>(),
        ),
        (
            ReduceOp::Prod,
            (0..5)
                .map(|j| (0..n).map(|q| (q + j + 1) as i64).product())
                .collect(),
        ),
        (ReduceOp::Min, (0..5).map(|j| (j + 1) as i64).collect()),
        (ReduceOp::Max, (0..5).map(|j| (n + j) as i64).collect()),
    ] {
        comm.all_reduce_into(&mine, &mut out, op)?;
        expect(
            &format!("allreduce {op:?}: {out:?}, not {want:?}"),
            out == want,
        );
    }
    // An allreduce above the size that goes as point-to-point steps (the
    // MPI_Iallreduce path): 16 KiB.
    let big = vec![(r + 1) as f64; 2048];
    let mut big_out = vec![0.0f64; 2048];
    comm.all_reduce_into(&big, &mut big_out, ReduceOp::Sum)?;
    let want = (n * (n + 1) / 2) as f64;
    expect(
        &format!("allreduce of 2048 values: {:?}", &big_out[..2]),
        big_out.iter().all(|&x| x == want),
    );
    // Floating point whose sum depends on the order of the additions: every
    // rank gets the same bits (the smallest and the largest bit pattern
    // over the ranks agree).
    let x = 0.1 * (r + 1) as f64 + if r % 2 == 1 { 1e16 } else { -1e16 } / (r + 1) as f64;
    let sum = comm.all_reduce(x, ReduceOp::Sum)?;
    let low = comm.all_reduce(sum.to_bits(), ReduceOp::Min)?;
    let high = comm.all_reduce(sum.to_bits(), ReduceOp::Max)?;
    expect(
        &format!("float sum differs between ranks: bits {low:#x} to {high:#x}"),
        low == high,
    );
    // Broadcast from the last rank.
    let root = n - 1;
    let mut buf: Vec<f32> = if r == root {
        vec![1.5, 2.5, 3.5]
    } else {
        vec![0.0; 3]
    };
    comm.broadcast_into(root, &mut buf)?;
    expect(&format!("broadcast: {buf:?}"), buf == [1.5, 2.5, 3.5]);
    // Allgather: two numbers per rank.
    let mut all = vec![0u32; 2 * n];
    comm.all_gather_into(&[r as u32, 100 + r as u32], &mut all)?;
    let want: Vec<u32> = (0..n as u32).flat_map(|q| [q, 100 + q]).collect();
    expect(&format!("allgather: {all:?}"), all == want);
    // A ring: send to the next rank, receive from the previous (even ranks
    // send first, so that sends and receives always meet).
    let (next, prev) = ((r + 1) % n, (r + n - 1) % n);
    let mut got = [0u64; 4];
    let received = if r % 2 == 0 {
        comm.send(next, &[r as u64, 7])?;
        comm.receive_into(prev, &mut got)?
    } else {
        let received = comm.receive_into(prev, &mut got)?;
        comm.send(next, &[r as u64, 7])?;
        received
    };
    expect(
        &format!("ring: received {received} elements {got:?} from {prev}"),
        received == 2 && got[..2] == [prev as u64, 7],
    );
    Ok(wrong)
}

/// What `comm()` says here, as the task's value.
#[rankview::remote]
fn comm_error() -> String {
    match rankview::comm() {
        Ok(comm) => format!("a communicator of {} engines", comm.size()),
        Err(e) => e.to_string(),
    }
}

/// What `rankview::comm()` says in an item of a direct view's `map`.
#[rankview::remote]
fn comm_error_of_item(_item: u32) -> String {
    comm_error()
}

/// The errors of bad buffers and ranks, one per line.
#[rankview::remote]
fn misuse() -> TaskResult<Vec<String>> {
    let comm = rankview::comm()?;
    let n = comm.size();
    let mut errors = Vec::new();
    let mut out = [0.0f64; 2];
    let e = comm.all_reduce_into(&[1.0f64; 3], &mut out, ReduceOp::Sum);
    errors.push(format!("{e:?}"));
    let e = comm.send(n, &[1u8]);
    errors.push(format!("{e:?}"));
    let mut short = vec![0u8; n - 1];
    let e = comm.all_gather_into(&[1u8], &mut short);
    errors.push(format!("{e:?}"));
    // More elements than MPI counts (2 GiB each, never touched: zeroed
    // pages the kernel has not mapped yet).
    let big = vec![0u8; i32::MAX as usize + 1];
    let mut big_out = vec![0u8; big.len()];
    let e = comm.all_reduce_into(&big, &mut big_out, ReduceOp::Max);
    errors.push(format!("{e:?}"));
    // After all of these the communicator still works.
    comm.barrier()?;
    Ok(errors)
}

/// A communicator kept past its task, used by the next task.
#[rankview::remote]
fn keep_comm() -> TaskResult<()> {
    let comm = rankview::comm()?;
    KEPT.with(|k| *k.borrow_mut() = Some(comm));
    Ok(())
}

#[rankview::remote]
fn use_kept_comm() -> String {
    KEPT.with(|k| match k.borrow_mut().take() {
        Some(comm) => format!("{:?}", comm.barrier()),
        None => "nothing kept".into(),
    })
}

thread_local! {
    static KEPT: std::cell::RefCell<Option<rankview::TaskComm>> = const { std::cell::RefCell::new(None) };
}

/// Engine 0 of the view enters a barrier at once; the others first wait
/// at the gate (generation `gate`), then enter it. Returns this engine's
/// id.
#[rankview::remote]
fn barrier_after_gate(gate: u64) -> TaskResult<usize> {
    let comm = rankview::comm()?;
    if comm.rank() != 0 {
        gate::pass(gate)?;
    }
    comm.barrier()?;
    Ok(globals().engine()?)
}

/// Rank 0 of the view enters a barrier; the others never do.
#[rankview::remote]
fn barrier_alone() -> TaskResult<usize> {
    let comm = rankview::comm()?;
    if comm.rank() == 0 {
        comm.barrier()?;
    }
    Ok(comm.rank())
}

/// Rank 0 of the view enters an allreduce of one value (the task's own
/// thread runs it, under `MPI_THREAD_SERIALIZED`); the others never do.
#[rankview::remote]
fn allreduce_alone() -> TaskResult<usize> {
    let comm = rankview::comm()?;
    if comm.rank() == 0 {
        comm.all_reduce(1u64, ReduceOp::Sum)?;
    }
    Ok(comm.rank())
}

/// Whether this rank runs with `RANKVIEW_FUNNELED`, and how many passes of
/// its MPI loop threads other than the MPI thread have made.
#[rankview::remote]
fn threading() -> (bool, u64) {
    (
        std::env::var_os("RANKVIEW_FUNNELED").is_some(),
        rankview::__private::helped_passes(),
    )
}

fn checks(rc: &Client, list: &mut Checklist) {
    let n = rc.len();
    list.check("psum_matches_a_local_sum", || {
        let dv = rc.all();
        let a: Vec<f64> = (0..1003).map(|i| (i as f64) * 0.5 - 7.0).collect();
        dv.scatter("a", &a).get()?;
        let local: f64 = a.iter().sum();
        let sums = dv.apply_sync(psum, (Ref::<Vec<f64>>::new("a"),))?;
        if n < 2 {
            return skip("one engine has no communicator");
        }
        assert_eq!(sums.len(), n);
        for (k, s) in sums.iter().enumerate() {
            assert!(
                (s - local).abs() < 1e-9,
                "engine {k}: psum {s}, local sum {local}"
            );
        }
        Ok(())
    });
    list.check("ranks_follow_the_view_order", || {
        if n < 2 {
            return skip("needs two engines");
        }
        let targets: Vec<usize> = (0..n).rev().collect();
        let view = rc.view(targets.clone())?;
        let pids = rc.all().apply_sync(pid, ())?;
        let seen = view.apply_sync(whoami, ())?;
        for (k, (rank, size, engines, pid, engine)) in seen.into_iter().enumerate() {
            assert_eq!(rank, k, "target {k} (engine {engine}) has rank {rank}");
            assert_eq!(size, n);
            assert_eq!(engines, targets);
            assert_eq!(engine, targets[k]);
            assert_eq!(pid, pids[targets[k]], "rank {k} runs in another process");
        }
        Ok(())
    });
    list.check("every_operation_on_every_view_size", || {
        if n < 2 {
            return skip("needs two engines");
        }
        // The whole view, a pair in reverse, and (with three engines or
        // more) the last three in a shuffled order.
        let mut views = vec![(0..n).collect::<Vec<_>>(), vec![1, 0]];
        if n >= 3 {
            views.push(vec![n - 1, n - 3, n - 2]);
        }
        // Sizes that are not a power of two fold ranks before and after
        // the doubling steps of a small allreduce.
        for size in [5, 6, 7] {
            if n > size {
                views.push((n - size..n).rev().collect());
            }
        }
        for targets in views {
            for wrong in rc.view(targets.clone())?.apply_sync(every_operation, ())? {
                if !wrong.is_empty() {
                    return Err(format!("view {targets:?}: {wrong:?}").into());
                }
            }
        }
        Ok(())
    });
    list.check("sub_views_interleaved_keep_their_communicators", || {
        if n < 2 {
            return skip("needs two engines");
        }
        // Two pairs sharing engine 1 (the second in another order) and the
        // whole view: tasks of three teams in flight at once, twice over.
        let other = if n >= 3 { vec![n - 1, 1] } else { vec![1, 0] };
        let a = rc.view([0, 1])?;
        let b = rc.view(other.clone())?;
        let all = rc.all();
        for _ in 0..2 {
            let ra = a.apply(whoami, ());
            let rb = b.apply(whoami, ());
            let rall = all.apply(whoami, ());
            let (ra, rb, rall) = (ra.get()?, rb.get()?, rall.get()?);
            let seen = |r: &[(usize, usize, Vec<usize>, u32, usize)]| {
                r.iter().map(|w| (w.0, w.1, w.4)).collect::<Vec<_>>()
            };
            assert_eq!(seen(&ra), [(0, 2, 0), (1, 2, 1)]);
            assert_eq!(seen(&rb), [(0, 2, other[0]), (1, 2, other[1])]);
            assert!(rall
                .iter()
                .enumerate()
                .all(|(k, w)| w.0 == k && w.1 == n && w.4 == k));
        }
        Ok(())
    });
    list.check(
        "comm_is_an_error_on_one_engine_in_balanced_tasks_and_outside",
        || {
            let one = rc.engine(0)?.apply_sync(comm_error, ())?;
            assert!(one.contains("one engine"), "one engine: {one}");
            let balanced = rc.load_balanced_view().apply_sync(comm_error, ())?;
            assert!(
                balanced.contains("load-balanced"),
                "load-balanced: {balanced}"
            );
            for item in rc.all().map_sync(comm_error_of_item, 0..4u32)? {
                assert!(item.contains("direct view's map"), "map item: {item}");
            }
            let outside = rankview::comm().unwrap_err();
            assert!(matches!(outside, Error::NoComm(_)), "{outside:?}");
            assert!(outside.to_string().contains("outside a task"), "{outside}");
            // A task that returns the error fails with it.
            let failed = rc.engine(0)?.apply_sync(psum, (Ref::<Vec<f64>>::new("a"),));
            match failed {
                Err(e) => assert!(e.to_string().contains("rankview::comm()"), "{e}"),
                Ok(v) => return Err(format!("psum on one engine gave {v}").into()),
            }
            Ok(())
        },
    );
    list.check("bad_buffers_and_ranks_are_errors", || {
        if n < 2 {
            return skip("needs two engines");
        }
        for errors in rc.all().apply_sync(misuse, ())? {
            assert_eq!(errors.len(), 4);
            assert!(
                errors[0].contains("3 elements sent into a buffer of 2"),
                "{}",
                errors[0]
            );
            assert!(
                errors[1].contains(&format!("rank {n} is not in")),
                "{}",
                errors[1]
            );
            assert!(errors[2].contains("all_gather_into"), "{}", errors[2]);
            assert!(
                errors[3].contains("Usage") && errors[3].contains("MPI counts at most"),
                "{}",
                errors[3]
            );
        }
        rc.all().apply_sync(keep_comm, ())?;
        for said in rc.all().apply_sync(use_kept_comm, ())? {
            assert!(
                said.contains("NoComm") && said.contains("returned"),
                "{said}"
            );
        }
        Ok(())
    });
    list.check(
        "the_mpi_thread_serves_while_a_task_waits_in_a_barrier",
        || {
            if n < 2 {
                return skip("needs two engines");
            }
            let view = rc.view([0, 1])?;
            let generation = gate::closed();
            let waiting = view.apply(barrier_after_gate, (generation,));
            // Engine 1's task is at the gate: engine 0's is in the barrier (or
            // about to be). Every rank's MPI thread runs the gate's sections,
            // engine 0's included: they complete only if it keeps serving.
            gate::await_waiting(rc, 1)?;
            std::thread::sleep(std::time::Duration::from_millis(50));
            if waiting.ready() {
                return Err("the barrier completed before engine 1 entered it".into());
            }
            // A request queued behind the waiting task is aborted by engine 0's
            // MPI thread.
            let queued = rc.engine(0)?.apply(pid, ());
            queued.abort()?;
            match queued.get() {
                Err(Error::TaskAborted { .. }) => {}
                other => return Err(format!("the queued request gave {other:?}").into()),
            }
            gate::open(rc)?;
            assert_eq!(waiting.get()?, vec![0, 1]);
            Ok(())
        },
    );
    list.check("a_task_of_several_engines_is_not_aborted_once_sent", || {
        if n < 2 {
            return skip("needs two engines");
        }
        // Both engines held at the gate; a team task queued behind, then
        // aborted: aborting it on one member only would leave the other
        // waiting in its collectives, so it runs on both.
        let view = rc.view([0, 1])?;
        let generation = gate::closed();
        let held = view.apply(gate::hold, (generation,));
        gate::await_waiting(rc, 2)?;
        let queued = view.apply(every_operation, ());
        queued.abort()?;
        gate::open(rc)?;
        assert_eq!(held.get()?, vec![0, 1]);
        for wrong in queued.get()? {
            assert!(wrong.is_empty(), "{wrong:?}");
        }
        Ok(())
    });
    list.check("threading_mode_is_the_one_asked_for", || {
        if n < 2 {
            return skip("needs two engines");
        }
        for _ in 0..20 {
            rc.all().apply_sync(psum, (Ref::<Vec<f64>>::new("a"),))?;
        }
        for (engine, (funneled, helped)) in
            rc.all().apply_sync(threading, ())?.into_iter().enumerate()
        {
            if funneled {
                assert_eq!(helped, 0, "engine {engine}: helpers made passes, funneled");
            }
        }
        Ok(())
    });
}

/// Leaves rank 0 of a view of two engines in a barrier the other never
/// enters; with `wait`, waits for it (for ever), else returns at once.
fn never_entered(rc: &Client, wait: bool, allreduce: bool) -> Outcome {
    let view = rc.view([0, 1])?;
    let left = if allreduce {
        view.apply(allreduce_alone, ())
    } else {
        view.apply(barrier_alone, ())
    };
    let what = if allreduce {
        "an allreduce"
    } else {
        "a barrier"
    };
    println!(
        "check_taskcomm: left task {} in {what}",
        left.metadata()[0].task
    );
    if wait {
        left.get()?;
    }
    Ok(())
}

/// Run with `RANKVIEW_MAX_TEAMS=2` on 4 engines or more: the first two
/// distinct views get communicators, a third does not (its tasks still
/// run, and `comm()` says why), and the first keeps its own.
fn team_limit(rc: &Client) -> Outcome {
    let psum_of = |targets: Vec<usize>| -> Result<Vec<f64>, rankview::Error> {
        let view = rc.view(targets)?;
        view.scatter("a", &vec![1.0f64, 2.0, 3.0, 4.0]).get()?;
        view.apply_sync(psum, (Ref::<Vec<f64>>::new("a"),))
    };
    assert_eq!(psum_of(vec![0, 1])?, [10.0, 10.0]);
    assert_eq!(psum_of(vec![1, 2])?, [10.0, 10.0]);
    let third = rc.view([2, 3])?;
    let errors = third.apply_sync(comm_error, ())?;
    for e in &errors {
        assert!(e.contains("RANKVIEW_MAX_TEAMS"), "{e}");
    }
    assert_eq!(
        third.apply_sync(pid, ())?.len(),
        2,
        "a task without a communicator runs"
    );
    assert_eq!(
        psum_of(vec![0, 1])?,
        [10.0, 10.0],
        "a view made before keeps its communicator"
    );
    // Groups need a communicator each: the second group (engines 2, 3)
    // cannot have one.
    match rc.groups(2) {
        Err(rankview::Error::Usage(e)) => assert!(e.contains("RANKVIEW_MAX_TEAMS"), "{e}"),
        other => panic!("groups beyond the limit: {other:?}"),
    }
    println!("check_taskcomm: team_limit: ok ({})", errors[0]);
    Ok(())
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    gate::sections(rankview::Launch::new()).run(|rc| -> Result<(), String> {
        match mode.as_str() {
            "never_entered" => return never_entered(rc, false, false).map_err(|e| e.to_string()),
            "never_entered_wait" => {
                return never_entered(rc, true, false).map_err(|e| e.to_string())
            }
            "allreduce_never_entered" => {
                return never_entered(rc, false, true).map_err(|e| e.to_string())
            }
            "allreduce_never_entered_wait" => {
                return never_entered(rc, true, true).map_err(|e| e.to_string())
            }
            "team_limit" => return team_limit(rc).map_err(|e| e.to_string()),
            _ => {}
        }
        let mut list = Checklist::new("check_taskcomm");
        checks(rc, &mut list);
        list.finish()
    });
}
