//! Unit tests of the scheduling policy: placement, prefetch, batching,
//! victim choice, stealing, exactly-once under randomized interleavings (of
//! the queues alone, and of the whole protocol with delayed messages),
//! dependencies, timeouts, retries, aborts, queue status, and `map`'s
//! chunking, assembly and window. No MPI, no threads, no clock: time is
//! made up, randomness comes from a seeded PRNG.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::map::{default_chunksize, Assembly, Chunks, Window};
use super::*;
use crate::error::Error;

/// A small deterministic PRNG (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability `p` percent.
    fn percent(&mut self, p: u64) -> bool {
        self.next() % 100 < p
    }
}

fn config(min_depth: usize, max_depth: usize) -> Config {
    Config {
        min_depth,
        max_depth,
        ..Config::default()
    }
}

fn table(engines: usize, depth: usize) -> TaskTable<u64> {
    TaskTable::new(engines, config(depth, depth))
}

fn all(n: usize) -> EngineSet {
    EngineSet::all(n)
}

/// Submits a plain task over every engine.
fn plain(t: &mut TaskTable<u64>, id: TaskId, engines: usize) {
    t.submit(Task::new(id, id * 10, all(engines)), Instant::now);
}

/// Dispatches and returns, per task, the engine it was sent to.
fn placed(t: &mut TaskTable<u64>) -> Vec<(TaskId, EngineId)> {
    let mut v: Vec<_> = t
        .dispatch(&Fence::none())
        .into_iter()
        .flat_map(|b| b.tasks.into_iter().map(move |q| (q.task, b.engine)))
        .collect();
    v.sort_unstable();
    v
}

fn ok(hops: u32) -> Report {
    Report {
        ok: true,
        hops,
        duration: None,
    }
}

fn failed() -> Report {
    Report {
        ok: false,
        hops: 0,
        duration: None,
    }
}

/// Runs `task` on `engine` to the end with `report`.
fn run(t: &mut TaskTable<u64>, engine: EngineId, task: TaskId, report: Report) -> Completion {
    t.started(engine, task);
    t.completed(engine, task, report)
}

fn queued(task: TaskId, stealable: Stealable) -> Queued<u64> {
    Queued {
        task,
        payload: task,
        stealable,
        hops: 0,
        stolen_from: None,
        fence: Fence::none(),
    }
}

// ---------------------------------------------------------------- placement

#[test]
fn depth_rule() {
    let c = Config {
        round_trip: Duration::from_millis(2),
        ..config(2, 512)
    };
    assert_eq!(c.depth(None), 2, "unknown durations: the least depth");
    assert_eq!(c.depth(Some(Duration::ZERO)), 512);
    assert_eq!(c.depth(Some(Duration::from_millis(20))), 2);
    // 2 ms round trip over 500 µs tasks: one running and four ahead.
    assert_eq!(c.depth(Some(Duration::from_micros(500))), 5);
    assert_eq!(c.depth(Some(Duration::from_micros(10))), 201);
    assert_eq!(c.depth(Some(Duration::from_nanos(10))), 512, "clamped");
    assert_eq!(config(0, 0).depth(None), 1, "never below 1");
}

#[test]
fn placement_goes_to_the_least_loaded_engine_lowest_id_first() {
    let mut t = table(3, 2);
    for id in 0..6 {
        plain(&mut t, id, 3);
    }
    assert_eq!(
        placed(&mut t),
        vec![(0, 0), (1, 1), (2, 2), (3, 0), (4, 1), (5, 2)]
    );
    // Engine 1 finishes both of its tasks: the next two go there.
    for id in 6..9 {
        plain(&mut t, id, 3);
    }
    assert_eq!(
        run(&mut t, 1, 1, ok(0)),
        Completion::Final { stolen: false }
    );
    assert_eq!(
        run(&mut t, 1, 4, ok(0)),
        Completion::Final { stolen: false }
    );
    assert_eq!(placed(&mut t), vec![(6, 1), (7, 1)]);
    assert_eq!(t.state(8), Some(State::Ready));
}

#[test]
fn direct_work_steers_placement_to_idle_engines() {
    let mut t = table(3, 2);
    // Engine 0 runs a direct request, engine 1 a direct request and a
    // gather: new tasks go to the engine with nothing first.
    assert!(!t.set_direct(0, 1), "no task live: nothing to redo");
    t.set_direct(1, 2);
    for id in 0..5 {
        plain(&mut t, id, 3);
    }
    // Loads (tasks + direct) 1, 2, 0: task 0 to engine 2; then 1, 2, 1:
    // task 1 to engine 0 (tie, lowest id); 2, 2, 1: task 2 to engine 2
    // (full now); 2, 2, -: task 3 to engine 0 (full), task 4 to engine 1.
    assert_eq!(placed(&mut t), vec![(0, 2), (1, 0), (2, 2), (3, 0), (4, 1)]);
    assert!(t.set_direct(1, 0), "a change while tasks are live");
    assert!(!t.set_direct(1, 0), "no change");
    assert_eq!(t.status().engines[0].direct, 1);
}

#[test]
fn prefetch_is_bounded_per_engine() {
    let mut t = table(2, 3);
    for id in 0..100 {
        plain(&mut t, id, 2);
    }
    let first = placed(&mut t);
    assert_eq!(first.len(), 6, "3 per engine");
    assert_eq!(t.status().unassigned, 94);
    assert!(
        t.dispatch(&Fence::none()).is_empty(),
        "full queues: nothing more"
    );
    // A start does not free room (running counts); a completion frees one.
    t.started(0, 0);
    assert!(t.dispatch(&Fence::none()).is_empty());
    t.completed(0, 0, ok(0));
    assert_eq!(placed(&mut t), vec![(6, 0)]);
    let s = t.status();
    assert_eq!((s.engines[0].queued, s.engines[1].queued), (3, 3));
    assert_eq!(s.unassigned, 93);
}

#[test]
fn prefetch_depth_follows_task_durations() {
    let mut t: TaskTable<u64> = TaskTable::new(1, config(2, 64));
    for id in 0..200 {
        plain(&mut t, id, 1);
    }
    assert_eq!(placed(&mut t).len(), 2, "min depth before any reply");
    let tiny = Report {
        duration: Some(Duration::from_micros(1)),
        ..ok(0)
    };
    run(&mut t, 0, 0, tiny);
    assert_eq!(t.depth(0), 64, "tiny tasks: the greatest depth");
    assert_eq!(placed(&mut t).len(), 63);
    // Long tasks pull the moving average up and the depth down.
    let long = Report {
        duration: Some(Duration::from_secs(1)),
        ..ok(0)
    };
    for id in 1..40 {
        run(&mut t, 0, id, long);
    }
    assert_eq!(t.depth(0), 2);
}

#[test]
fn batches_carry_many_tasks_and_respect_max_batch() {
    let mut t: TaskTable<u64> = TaskTable::new(
        2,
        Config {
            max_batch: 3,
            ..config(10, 10)
        },
    );
    for id in 0..20 {
        plain(&mut t, id, 2);
    }
    let batches: Vec<Batch<u64>> = t.dispatch(&Fence::none());
    let sizes: Vec<(EngineId, usize)> = batches.iter().map(|b| (b.engine, b.tasks.len())).collect();
    assert_eq!(
        sizes,
        vec![
            (0, 3),
            (0, 3),
            (0, 3),
            (0, 1),
            (1, 3),
            (1, 3),
            (1, 3),
            (1, 1)
        ]
    );
    // Payloads travel with their ids; every task exactly once.
    let mut ids: Vec<TaskId> = batches
        .iter()
        .flat_map(|b| b.tasks.iter().map(|q| (q.task, q.payload)))
        .map(|(id, payload)| {
            assert_eq!(payload, id * 10);
            id
        })
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..20).collect::<Vec<_>>());
    // One batch per engine when it fits.
    let mut t = table(2, 10);
    for id in 0..20 {
        plain(&mut t, id, 2);
    }
    assert_eq!(t.dispatch(&Fence::none()).len(), 2);
}

#[test]
fn a_view_limits_placement_and_stealing() {
    let mut t = table(4, 4);
    let view = EngineSet::new([2, 1]);
    for id in 0..6 {
        t.submit(Task::new(id, id, view.clone()), Instant::now);
    }
    plain(&mut t, 6, 4);
    let batches = t.dispatch(&Fence::none());
    for b in &batches {
        for q in &b.tasks {
            if q.task < 6 {
                assert!(
                    b.engine == 1 || b.engine == 2,
                    "task {} on {}",
                    q.task,
                    b.engine
                );
                assert_eq!(q.stealable, Stealable::Only(view.clone()));
            } else {
                assert_eq!(b.engine, 0, "the whole view's least-loaded engine");
                assert_eq!(q.stealable, Stealable::Anyone);
            }
        }
    }
    assert_eq!(batches.iter().map(|b| b.tasks.len()).sum::<usize>(), 7);
}

#[test]
fn invalid_views_fail_at_submission() {
    let mut t = table(2, 2);
    t.submit(Task::new(1, 0, EngineSet::new([])), Instant::now);
    t.submit(Task::new(2, 0, EngineSet::new([0, 5])), Instant::now);
    plain(&mut t, 3, 2);
    plain(&mut t, 3, 2);
    let failed = t.take_failed();
    assert!(matches!(failed[0], (1, Error::Usage(_))));
    assert_eq!(
        failed[1],
        (
            2,
            Error::InvalidTarget {
                index: 5,
                engines: 2
            }
        )
    );
    assert!(matches!(failed[2], (3, Error::Usage(_))), "a repeated id");
    assert_eq!(failed.len(), 3);
}

// ---------------------------------------------------------------- stealing: victim choice

#[test]
fn victim_is_the_busiest_peer_never_self() {
    let mut th = Thief::new(1, 4);
    assert_eq!(th.victim(), None, "no estimates, no victim");
    th.update(&[3, 99, 7, 5], &Fence::none());
    assert_eq!(th.estimate(1), 0, "own figure ignored");
    assert_eq!(th.victim(), Some(2));
    th.update(&[0, 0, 0, 0], &Fence::none());
    assert_eq!(th.victim(), None, "peers at 0 are not victims");
}

#[test]
fn victim_ties_go_to_the_next_peer_in_cyclic_order() {
    let loads = [4, 4, 4, 4];
    let victims: Vec<Option<EngineId>> = (0..4)
        .map(|me| {
            let mut th = Thief::new(me, 4);
            th.update(&loads, &Fence::none());
            th.victim()
        })
        .collect();
    assert_eq!(victims, vec![Some(1), Some(2), Some(3), Some(0)]);
    let mut th = Thief::new(2, 4);
    th.update(&[5, 5, 0, 1], &Fence::none());
    assert_eq!(
        th.victim(),
        Some(0),
        "3 is next but lighter; 0 beats 1 cyclically"
    );
}

#[test]
fn a_steal_is_asked_only_when_idle_and_one_at_a_time() {
    let mut th = Thief::new(0, 3);
    th.update(&[0, 5, 2], &Fence::none());
    assert_eq!(th.want(false), None, "busy engines do not steal");
    assert_eq!(
        th.want(true),
        Some(StealRequest {
            victim: 1,
            max: 5,
            seen: 0
        }),
        "at most the estimate (the victim gives at most half)"
    );
    assert_eq!(th.in_flight(), Some(1));
    assert_eq!(th.want(true), None, "one steal in flight at most");
    // The steal failed (stale estimate): the next one goes elsewhere.
    th.answered(1, 0);
    assert_eq!(
        th.want(true),
        Some(StealRequest {
            victim: 2,
            max: 2,
            seen: 0
        })
    );
    th.answered(2, 0);
    assert_eq!(
        th.want(true),
        None,
        "every estimate at 0: wait for the controller"
    );
    th.update(&[0, 1, 0], &Fence::none());
    assert_eq!(
        th.want(true),
        Some(StealRequest {
            victim: 1,
            max: 1,
            seen: 0
        })
    );
    // An answer from a peer not asked does not clear the one in flight.
    th.answered(2, 4);
    assert_eq!(th.in_flight(), Some(1));
}

#[test]
fn idle_engines_get_fresh_loads_once_per_change() {
    let mut t = table(2, 2);
    for id in 0..4 {
        plain(&mut t, id, 2);
    }
    assert_eq!(placed(&mut t), vec![(0, 0), (1, 1), (2, 0), (3, 1)]);
    assert!(t.refreshes().is_empty(), "nobody is idle");
    // Engine 1 is done; engine 0 holds two (one of which a thief would get).
    run(&mut t, 1, 1, ok(0));
    run(&mut t, 1, 3, ok(0));
    assert_eq!(t.refreshes(), vec![1]);
    assert!(t.refreshes().is_empty(), "once per change");
    // Engine 1 steals one: busy again; engine 0, free with one, gives none.
    t.stolen(0, 1, &[(2, 1)]);
    assert!(t.refreshes().is_empty(), "engine 1 is busy");
    run(&mut t, 1, 2, ok(1));
    assert!(
        t.refreshes().is_empty(),
        "engine 0 will run its last task itself"
    );
    // A direct request occupies engine 0: its last task may go now.
    t.set_direct(0, 1);
    assert_eq!(t.refreshes(), vec![1]);
    assert!(t.refreshes().is_empty());
    // Direct work on engine 1 makes it busy; once answered, nothing changed.
    t.set_direct(1, 1);
    assert!(t.refreshes().is_empty(), "engine 1 is busy");
    t.set_direct(1, 0);
    assert!(t.refreshes().is_empty(), "its figures are still right");
    // Engine 0's own tasks do not count for it.
    run(&mut t, 0, 0, ok(0));
    t.set_direct(0, 0);
    assert!(t.refreshes().is_empty());
}

/// Each step of the fix for a steal that reaches its victim before the
/// batch the thief was told about: engine 0, held by a direct request, is
/// sent a task in the same dispatch as engine 1's batch, engine 1 runs its
/// own and asks engine 0 before engine 0's batch has arrived. Without the
/// refresh, the thief's figure stays 0; without the newer-figures rule, the
/// late `left 0` erases the refresh; without parking, the second steal gets
/// `left 0` too. Any of them strands the task until engine 0 is free.
#[test]
fn a_steal_that_overtakes_its_victims_batch_still_gets_the_task() {
    let mut t = table(2, 2);
    // The controller sent engine 0 a direct request (its first message).
    let mut sent = [1u64, 0];
    t.set_direct(0, 1);
    for id in 0..3 {
        plain(&mut t, id, 2);
    }
    let before = Fence::new(sent.to_vec());
    let batches = t.dispatch(&before);
    let loads = t.loads();
    let placed: Vec<(EngineId, Vec<TaskId>)> = batches
        .iter()
        .map(|b| (b.engine, b.tasks.iter().map(|q| q.task).collect()))
        .collect();
    assert_eq!(placed, vec![(0, vec![1]), (1, vec![0, 2])]);
    let mut batches = batches.into_iter();
    let (to_0, to_1) = (batches.next().unwrap(), batches.next().unwrap());
    sent[0] += 1;
    sent[1] += 1;
    assert!(t.refreshes().is_empty(), "nobody idle");

    let mut q0: LocalQueue<u64> = LocalQueue::new(0);
    let mut q1: LocalQueue<u64> = LocalQueue::new(1);
    let mut thief = Thief::new(1, 2);
    q0.received(1); // the direct request; engine 0's batch is on its way
    q1.received(1);
    q1.extend(to_1.tasks);
    thief.update(&loads, &before);
    // Engine 1 runs its two tasks and says so: it is idle.
    for task in [0, 2] {
        assert_eq!(q1.start_next().map(|q| q.task), Some(task));
        q1.finish();
        run(&mut t, 1, task, ok(0));
    }
    let first = thief.want(q1.is_idle()).expect("a steal");
    assert_eq!((first.victim, first.seen), (0, 1));
    // The controller sends engine 1 the loads, with the counts after
    // engine 0's batch.
    assert_eq!(t.refreshes(), vec![1]);
    let after = Fence::new(sent.to_vec());
    assert!(t.refreshes().is_empty(), "once per change");
    // The first steal reaches engine 0 before its batch: nothing to give.
    assert!(q0.may_answer(first.seen));
    assert!(q0.steal(first.max, 1, true).is_empty());
    let left = q0.share(1, true) as u32;
    assert_eq!(left, 0);
    // The refresh reaches engine 1 before that answer, which is older.
    thief.update(&t.loads(), &after);
    thief.answered(0, left);
    assert_eq!(
        thief.estimate(0),
        1,
        "an answer older than the figures keeps them"
    );
    let second = thief.want(q1.is_idle()).expect("a second steal");
    assert_eq!((second.victim, second.seen), (0, 2));
    assert!(
        !q0.may_answer(second.seen),
        "engine 0 has not seen its batch"
    );
    q0.park(1, second.max, second.seen);
    assert!(q0.due_steals().is_empty());
    // Engine 0's batch arrives: the parked steal is answered, and gets it.
    q0.received(2);
    q0.extend(to_0.tasks);
    assert_eq!(q0.due_steals(), vec![(1, second.max)]);
    assert_eq!(ids(q0.steal(second.max, 1, true)), vec![1]);
    thief.answered(0, q0.share(1, true) as u32);
    assert_eq!(thief.want(true), None, "nothing more to ask");
}

// ---------------------------------------------------------------- stealing: the victim's queue

#[test]
fn local_queue_runs_in_order_and_steals_from_the_back() {
    let mut q = LocalQueue::new(0);
    q.extend((0..6).map(|t| queued(t, Stealable::Anyone)));
    assert_eq!(q.start_next().map(|e| e.task), Some(0));
    // Running: half of 5 rounded up is 3, capped by max 2.
    let stolen = q.steal(2, 1, false);
    assert_eq!(
        stolen.iter().map(|e| e.task).collect::<Vec<_>>(),
        vec![4, 5]
    );
    assert!(stolen
        .iter()
        .all(|e| e.hops == 1 && e.stolen_from == Some(0)));
    assert_eq!(q.tasks().collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(
        q.steal(10, 1, false)
            .iter()
            .map(|e| e.task)
            .collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert_eq!(q.tasks().collect::<Vec<_>>(), vec![1]);
    assert!(q.steal(10, 0, false).is_empty(), "never to itself");
    assert!(q.steal(0, 1, false).is_empty());
    q.finish();
    assert!(
        q.steal(10, 1, false).is_empty(),
        "idle: it keeps its last task, it starts it now"
    );
    assert_eq!(q.running(), 0);
}

fn ids(tasks: Vec<Queued<u64>>) -> Vec<TaskId> {
    tasks.iter().map(|e| e.task).collect()
}

#[test]
fn the_last_task_of_an_occupied_victim_can_be_stolen() {
    let mut q = LocalQueue::new(0);
    q.extend((0..2).map(|t| queued(t, Stealable::Anyone)));
    assert_eq!(q.share(1, false), 1, "free: half, rounded down");
    // A direct job holds the execution thread (or waits, and runs first):
    // half rounded up, down to the last task.
    assert_eq!(q.share(1, true), 1);
    assert_eq!(ids(q.steal(10, 1, true)), vec![1]);
    assert_eq!(q.share(1, false), 0, "free, it starts its last task itself");
    assert_eq!(q.share(1, true), 1, "occupied, its last task can go");
    assert_eq!(ids(q.steal(10, 1, true)), vec![0]);
    assert!(q.is_empty());
    assert_eq!(q.share(1, true), 0);
    // A load-balanced task running occupies it too.
    q.extend([queued(5, Stealable::Anyone), queued(6, Stealable::Anyone)]);
    q.start_next();
    assert_eq!(ids(q.steal(10, 1, false)), vec![6]);
    assert_eq!(q.share(1, false), 0);
    // Only what the thief may take counts, and never to itself.
    q.extend([
        queued(7, Stealable::Never),
        queued(8, Stealable::Only(EngineSet::new([2]))),
    ]);
    assert_eq!(
        (q.share(1, true), q.share(2, true), q.share(0, true)),
        (0, 1, 0)
    );
}

#[test]
fn left_is_the_share_so_a_failed_steal_is_not_repeated() {
    // Victim 0 is free with one task queued: it will run it itself.
    let mut q = LocalQueue::new(0);
    q.extend([queued(0, Stealable::Anyone)]);
    let mut th = Thief::new(1, 3);
    th.update(&[1, 0, 0], &Fence::none());
    let ask = th.want(true).expect("a steal");
    assert_eq!(
        ask,
        StealRequest {
            victim: 0,
            max: 1,
            seen: 0
        }
    );
    assert!(q.steal(ask.max, 1, false).is_empty());
    th.answered(0, q.share(1, false) as u32);
    assert_eq!(
        th.want(true),
        None,
        "an unchanged victim is not asked again"
    );
    // Victim 2 is occupied with three tasks: the thief takes two, then the
    // last one, then stops.
    let mut q = LocalQueue::new(2);
    q.extend((10..13).map(|t| queued(t, Stealable::Anyone)));
    th.update(&[0, 0, 3], &Fence::none());
    let mut got = Vec::new();
    let mut asks = 0;
    while let Some(ask) = th.want(true) {
        asks += 1;
        assert!(asks <= 3, "the thief keeps asking");
        got.extend(ids(q.steal(ask.max, 1, true)));
        th.answered(2, q.share(1, true) as u32);
    }
    assert_eq!(got, vec![11, 12, 10]);
    assert_eq!(asks, 2);
}

#[test]
fn steal_never_takes_pinned_or_forbidden_or_started_tasks() {
    let mut q = LocalQueue::new(0);
    q.extend([
        queued(0, Stealable::Anyone),
        queued(1, Stealable::Never),
        queued(2, Stealable::Only(EngineSet::new([2]))),
        queued(3, Stealable::Never),
        queued(4, Stealable::Anyone),
        queued(5, Stealable::Never),
    ]);
    let started = q.start_next().map(|e| e.task);
    assert_eq!(started, Some(0));
    assert_eq!(q.stealable_by(1), 1);
    assert_eq!(q.stealable_by(2), 2);
    let to_1: Vec<TaskId> = q.steal(100, 1, false).iter().map(|e| e.task).collect();
    assert_eq!(to_1, vec![4]);
    let to_2: Vec<TaskId> = q.steal(100, 2, false).iter().map(|e| e.task).collect();
    assert_eq!(to_2, vec![2]);
    assert!(q.steal(100, 2, false).is_empty());
    assert_eq!(
        q.tasks().collect::<Vec<_>>(),
        vec![1, 3, 5],
        "pinned ones stay, in order"
    );
    assert_eq!((q.len(), q.running()), (3, 1));
}

#[test]
fn a_stolen_task_waits_for_the_thiefs_stream_to_catch_up() {
    let mut q = LocalQueue::new(1);
    q.received(3);
    let fenced = |task, sent: [u64; 2]| Queued {
        fence: Fence::new(sent.to_vec()),
        ..queued(task, Stealable::Anyone)
    };
    // Engine 1 had been sent 5 messages when task 7 left, 3 when task 8 did.
    q.extend([fenced(7, [9, 5]), fenced(8, [9, 3])]);
    assert_eq!(q.len(), 2);
    assert!(!q.is_idle(), "a held task is work: no stealing");
    assert_eq!(q.stealable_by(0), 1, "held tasks are not stolen on");
    assert_eq!(q.start_next().map(|e| e.task), Some(8));
    assert_eq!(q.start_next().map(|e| e.task), None, "7 is held");
    q.received(4);
    assert_eq!(q.start_next().map(|e| e.task), None);
    q.received(5);
    assert_eq!(q.start_next().map(|e| e.task), Some(7));
    // Held tasks can be aborted.
    q.extend([fenced(9, [0, 6])]);
    assert_eq!(q.abort(&[9]), vec![9]);
    q.received(6);
    assert!(q.start_next().is_none());
}

#[test]
fn local_abort_removes_only_what_is_still_queued() {
    let mut q = LocalQueue::new(0);
    q.extend((0..5).map(|t| queued(t, Stealable::Anyone)));
    q.start_next();
    let _gone = q.steal(1, 1, false);
    assert_eq!(q.abort(&[0, 4, 2, 9, 3]), vec![2, 3]);
    assert_eq!(q.tasks().collect::<Vec<_>>(), vec![1]);
    assert!(!q.is_idle());
}

/// The exactly-once invariant of `LocalQueue`, under random interleavings
/// of starts, steals and aborts over four engines: 10,000 tiny tasks, a
/// third of them pinned. Every task leaves a queue exactly once for good
/// (started once, or aborted), pinned ones on their own engine, and a
/// started task is never seen again.
#[test]
fn exactly_once_under_random_interleavings_of_start_and_steal() {
    for seed in 1..=3 {
        let mut rng = Rng(seed);
        const ENGINES: usize = 4;
        const TASKS: u64 = 10_000;
        let mut queues: Vec<LocalQueue<EngineId>> = (0..ENGINES).map(LocalQueue::new).collect();
        // Tasks arrive in random small batches on random engines.
        let mut next: u64 = 0;
        let mut home = HashMap::new();
        let mut starts = vec![0u32; TASKS as usize];
        let mut aborted = vec![false; TASKS as usize];
        let mut steals = 0;
        while next < TASKS || queues.iter().any(|q| !q.is_idle()) {
            let e = rng.below(ENGINES);
            match rng.below(10) {
                0 if next < TASKS => {
                    let n = 1 + rng.below(4) as u64;
                    let batch: Vec<_> = (next..(next + n).min(TASKS))
                        .map(|t| {
                            home.insert(t, e);
                            let stealable = match t % 3 {
                                0 => Stealable::Never,
                                1 => Stealable::Anyone,
                                _ => Stealable::Only(EngineSet::new([(e + 1) % ENGINES, e])),
                            };
                            Queued {
                                task: t,
                                payload: e,
                                stealable,
                                hops: 0,
                                stolen_from: None,
                                fence: Fence::none(),
                            }
                        })
                        .collect();
                    next = (next + n).min(TASKS);
                    queues[e].extend(batch);
                }
                2..=4 => {
                    if queues[e].running() > 0 {
                        queues[e].finish();
                    }
                    if let Some(task) = queues[e].start_next() {
                        let t = task.task as usize;
                        starts[t] += 1;
                        assert!(!aborted[t], "task {t} started after its abort");
                        if task.stealable == Stealable::Never {
                            assert_eq!(home[&task.task], e, "pinned task {t} moved");
                        }
                    }
                }
                5..=8 => {
                    let thief = rng.below(ENGINES);
                    let max = 1 + rng.below(8);
                    let taken = queues[e].steal(max, thief, rng.percent(30));
                    for task in &taken {
                        assert_ne!(task.stealable, Stealable::Never);
                        assert!(task.stealable.by(thief));
                        assert_eq!(task.stolen_from, Some(e));
                    }
                    steals += taken.len();
                    queues[thief].extend(taken);
                }
                _ => {
                    let ids: Vec<TaskId> = (0..3)
                        .map(|_| rng.below(next.max(1) as usize) as u64)
                        .collect();
                    for id in queues[e].abort(&ids) {
                        assert!(!aborted[id as usize]);
                        aborted[id as usize] = true;
                    }
                }
            }
        }
        for t in 0..TASKS as usize {
            let ways = starts[t] + u32::from(aborted[t]);
            assert_eq!(ways, 1, "seed {seed}: task {t} left {ways} times");
        }
        assert!(
            steals > 1_000,
            "seed {seed}: only {steals} steals; the test must exercise them"
        );
    }
}

// ---------------------------------------------------------------- the whole protocol, simulated

/// Controller → engine.
enum Down {
    /// Tasks (maybe none: figures alone), loads, and the fence of the figures.
    Batch(Vec<Queued<u64>>, Vec<u32>, Fence),
    Abort(Vec<TaskId>),
    /// A direct request: it runs before any task and takes a while.
    Direct,
}

/// Engine → controller.
enum Up {
    Started(TaskId),
    Done {
        task: TaskId,
        ok: bool,
        hops: u32,
    },
    Stolen {
        victim: EngineId,
        tasks: Vec<(TaskId, u32)>,
    },
    Aborted(Vec<TaskId>),
    /// A direct request's reply.
    DirectDone,
}

/// Engine → engine.
enum Peer {
    /// At most `max`, once the victim has received `seen` controller messages.
    Ask(usize, u64),
    Give(Vec<Queued<u64>>, u32),
}

struct Node {
    queue: LocalQueue<u64>,
    thief: Thief,
    running: Option<Queued<u64>>,
    /// Direct requests waiting (they run before any task).
    direct: usize,
    /// A direct request is running.
    direct_running: bool,
    /// Percent chance that an execution step makes progress (engine speed).
    speed: u64,
}

impl Node {
    /// The execution thread has other work than load-balanced tasks.
    fn occupied(&self) -> bool {
        self.direct_running || self.direct > 0
    }
}

/// Answers a steal of at most `max` tasks by `thief` from `victim`.
fn answer(
    nodes: &mut [Node],
    peer: &mut HashMap<(EngineId, EngineId), VecDeque<Peer>>,
    victim: EngineId,
    thief: EngineId,
    max: usize,
) {
    let occupied = nodes[victim].occupied();
    let given = nodes[victim].queue.steal(max, thief, occupied);
    let left = nodes[victim].queue.share(thief, occupied) as u32;
    peer.entry((victim, thief))
        .or_default()
        .push_back(Peer::Give(given, left));
}

/// Random delivery of every message with MPI's guarantee only (one FIFO per
/// sender and receiver), random engine speeds, failures, retries, `follow`
/// and `after` dependencies, aborts, and direct requests that hold engines
/// for a while; then checks that every task ran exactly as often as the
/// controller accounted for, pinned tasks where their dependency ran, that
/// the controller's counts add up, and that steals do not storm: every
/// failed steal used up a figure the thief was given (loads from the
/// controller, or a victim's nonzero `left`).
#[test]
fn whole_protocol_runs_every_task_exactly_once_under_random_delivery() {
    for seed in 1..=3 {
        simulate(seed, 4, 3_000, false);
    }
}

/// The whole protocol with engine 0 held by one direct request from the
/// start until every task has ended (a long `apply` on a direct view), and
/// tasks submitted in waves (no dependencies, no retries: a task pinned to
/// engine 0, or a retry that failed everywhere else, would rightly wait for
/// it). Placement sends engine 0 tasks once the others are as loaded, and
/// every one of them must be stolen (the run never ends otherwise), however
/// the messages are delivered: a steal may reach engine 0 before the batch
/// the thief was told about, an idle engine may learn of engine 0's tasks
/// only from refreshed loads, and engine 0's last queued task must go too.
/// No task runs on engine 0, and steals do not storm.
#[test]
fn no_task_is_stranded_behind_a_busy_engine_under_random_delivery() {
    for seed in 1..=20 {
        simulate(seed, 3, 400, true);
    }
}

/// `hold`: engine 0 runs one direct request until every task has ended.
fn simulate(seed: u64, engines: usize, tasks: u64, hold: bool) {
    let mut rng = Rng(seed);
    let mut table: TaskTable<u64> = TaskTable::new(engines, config(1, 6));
    let mut nodes: Vec<Node> = (0..engines)
        .map(|e| Node {
            queue: LocalQueue::new(e),
            thief: Thief::new(e, engines),
            running: None,
            direct: 0,
            direct_running: false,
            speed: 10 + 25 * e as u64,
        })
        .collect();
    let mut down: Vec<VecDeque<Down>> = (0..engines).map(|_| VecDeque::new()).collect();
    let mut up: Vec<VecDeque<Up>> = (0..engines).map(|_| VecDeque::new()).collect();
    let mut peer: HashMap<(EngineId, EngineId), VecDeque<Peer>> = HashMap::new();
    // Controller messages sent to, and received by, each engine.
    let mut sent = vec![0u64; engines];
    let mut received = vec![0u64; engines];
    let now = Instant::now();
    // Direct requests sent to each engine and not answered.
    let mut direct = vec![0usize; engines];
    if hold {
        sent[0] += 1;
        down[0].push_back(Down::Direct);
        direct[0] += 1;
        table.set_direct(0, direct[0]);
    }

    let mut submitted: u64 = 0;
    let mut follows: HashMap<TaskId, TaskId> = HashMap::new();
    let mut starts = vec![0u32; tasks as usize];
    let mut ran_on: Vec<Option<EngineId>> = vec![None; tasks as usize];
    let mut retried = vec![0u32; tasks as usize];
    let mut finals = vec![0u32; tasks as usize];
    let mut errors = vec![0u32; tasks as usize];
    let mut dones = 0usize;
    let mut moved = 0usize;
    // Figures delivered to thieves, load refreshes sent, steals.
    let (mut figures, mut refreshes) = (0usize, 0usize);
    let (mut failed_steals, mut given_steals) = (0usize, 0usize);

    let mut steps = 0u64;
    loop {
        steps += 1;
        assert!(steps < 20_000_000, "seed {seed}: no end in sight");
        let quiet = down.iter().all(VecDeque::is_empty)
            && up.iter().all(VecDeque::is_empty)
            && peer.values().all(VecDeque::is_empty)
            && nodes.iter().all(|n| {
                n.running.is_none()
                    && n.queue.is_empty()
                    && !n.occupied()
                    && n.thief.in_flight().is_none()
            });
        if submitted == tasks && table.is_idle() && quiet {
            break;
        }
        match rng.below(12) {
            // With engine 0 held, the client submits waves of up to 20
            // tasks, each once the last has ended: every wave finds the
            // other engines idle and fills engine 0 last.
            0 if hold && submitted < tasks && table.is_idle() => {
                let wave = (1 + rng.below(20) as u64).min(tasks - submitted);
                for id in submitted..submitted + wave {
                    table.submit(Task::new(id, id, all(engines)), || now);
                }
                submitted += wave;
            }
            // The client submits.
            0 if !hold && submitted < tasks => {
                let id = submitted;
                submitted += 1;
                let mut task = Task::new(id, id, all(engines)).retries(rng.below(3) as u32);
                if id > 10 && rng.percent(15) {
                    let dep = id - 1 - rng.below(10) as u64;
                    follows.insert(id, dep);
                    task = task.follow(DepSet::all([dep]).or_failure());
                } else if id > 10 && rng.percent(15) {
                    task = task.after(DepSet::any([id - 3, id - 7]));
                }
                table.submit(task, || now);
            }
            // The controller places work, and tells idle engines of loads
            // that changed (with the counts after the batches).
            1 => {
                let before = Fence::new(sent.clone());
                let batches = table.dispatch(&before);
                let refresh = table.refreshes();
                let loads = table.loads();
                for b in batches {
                    sent[b.engine] += 1;
                    down[b.engine].push_back(Down::Batch(b.tasks, loads.clone(), before.clone()));
                }
                let after = Fence::new(sent.clone());
                for e in refresh {
                    refreshes += 1;
                    sent[e] += 1;
                    down[e].push_back(Down::Batch(Vec::new(), loads.clone(), after.clone()));
                }
            }
            // The client sends a direct request.
            7 if !hold && submitted < tasks && rng.percent(3) => {
                let e = rng.below(engines);
                sent[e] += 1;
                down[e].push_back(Down::Direct);
                direct[e] += 1;
                table.set_direct(e, direct[e]);
            }
            // The client aborts something.
            2 if !hold && rng.percent(5) && submitted > 0 => {
                let ids: Vec<TaskId> = (0..2)
                    .map(|_| rng.below(submitted as usize) as u64)
                    .collect();
                for order in table.abort(&ids) {
                    sent[order.engine] += 1;
                    down[order.engine].push_back(Down::Abort(order.tasks));
                }
            }
            // A controller message reaches an engine.
            3 => {
                let e = rng.below(engines);
                let msg = down[e].pop_front();
                if msg.is_some() {
                    received[e] += 1;
                    nodes[e].queue.received(received[e]);
                }
                match msg {
                    Some(Down::Batch(batch, loads, fence)) => {
                        nodes[e].queue.extend(batch);
                        nodes[e].thief.update(&loads, &fence);
                        figures += 1;
                    }
                    Some(Down::Abort(ids)) => {
                        let removed = nodes[e].queue.abort(&ids);
                        if !removed.is_empty() {
                            up[e].push_back(Up::Aborted(removed));
                        }
                    }
                    Some(Down::Direct) => nodes[e].direct += 1,
                    None => {}
                }
                // Steals parked until this message are answered now.
                for (thief, max) in nodes[e].queue.due_steals() {
                    answer(&mut nodes, &mut peer, e, thief, max);
                }
            }
            // An engine message reaches the controller.
            4 => {
                let e = rng.below(engines);
                let at = |table: &TaskTable<u64>, task| match table.state(task) {
                    Some(State::Queued { engine, .. } | State::Running { engine, .. }) => engine,
                    other => panic!("seed {seed}: task {task} is {other:?}"),
                };
                match up[e].pop_front() {
                    Some(Up::Started(task)) => {
                        assert_eq!(
                            at(&table, task),
                            e,
                            "seed {seed}: task {task} accounted elsewhere"
                        );
                        table.started(e, task);
                    }
                    Some(Up::Done { task, ok, hops }) => {
                        // The runner's steal notice came first: the
                        // controller's account already says where it runs.
                        assert_eq!(
                            at(&table, task),
                            e,
                            "seed {seed}: task {task} accounted elsewhere"
                        );
                        dones += 1;
                        let report = Report {
                            ok,
                            hops,
                            duration: Some(Duration::from_micros(50)),
                        };
                        match table.completed(e, task, report) {
                            Completion::Final { stolen } => {
                                finals[task as usize] += 1;
                                assert!(!stolen || hops > 0, "only a stolen task is reported so");
                            }
                            Completion::Retry { .. } => retried[task as usize] += 1,
                            Completion::Unknown => {
                                panic!("seed {seed}: reply for task {task} not running")
                            }
                        }
                    }
                    Some(Up::Stolen { victim, tasks }) => {
                        for order in table.stolen(victim, e, &tasks) {
                            sent[order.engine] += 1;
                            down[order.engine].push_back(Down::Abort(order.tasks));
                        }
                    }
                    Some(Up::Aborted(ids)) => {
                        for id in ids {
                            assert!(table.aborted(id), "seed {seed}: abort of {id} not queued");
                        }
                    }
                    Some(Up::DirectDone) => {
                        direct[e] -= 1;
                        table.set_direct(e, direct[e]);
                    }
                    None => {}
                }
                for (task, _) in table.take_failed() {
                    errors[task as usize] += 1;
                }
            }
            // An engine-to-engine message arrives.
            5 => {
                let from = rng.below(engines);
                let to = rng.below(engines);
                let msg = peer.get_mut(&(from, to)).and_then(VecDeque::pop_front);
                match msg {
                    Some(Peer::Ask(max, seen)) => {
                        if nodes[to].queue.may_answer(seen) {
                            answer(&mut nodes, &mut peer, to, from, max);
                        } else {
                            nodes[to].queue.park(from, max, seen);
                        }
                    }
                    Some(Peer::Give(given, left)) => {
                        failed_steals += usize::from(given.is_empty());
                        given_steals += usize::from(!given.is_empty());
                        let notice: Vec<(TaskId, u32)> =
                            given.iter().map(|q| (q.task, q.hops)).collect();
                        moved += notice.len();
                        nodes[to].queue.extend(given);
                        if !notice.is_empty() {
                            up[to].push_back(Up::Stolen {
                                victim: from,
                                tasks: notice,
                            });
                        }
                        nodes[to].thief.answered(from, left);
                    }
                    None => {}
                }
            }
            // An engine's thief looks for work.
            6 => {
                let e = rng.below(engines);
                let idle = nodes[e].queue.is_idle() && !nodes[e].occupied();
                if let Some(req) = nodes[e].thief.want(idle) {
                    assert_ne!(req.victim, e);
                    peer.entry((e, req.victim))
                        .or_default()
                        .push_back(Peer::Ask(req.max, req.seen));
                }
            }
            // An engine's execution thread makes progress.
            _ => {
                let e = rng.below(engines);
                let node = &mut nodes[e];
                if !rng.percent(node.speed) {
                    continue;
                }
                match node.running.take() {
                    Some(task) => {
                        node.queue.finish();
                        up[e].push_back(Up::Done {
                            task: task.task,
                            ok: rng.percent(80),
                            hops: task.hops,
                        });
                    }
                    // A direct request takes a while, and runs first.
                    None if node.direct_running => {
                        let held = hold && e == 0 && !(submitted == tasks && table.is_idle());
                        if !held && rng.percent(10) {
                            node.direct_running = false;
                            up[e].push_back(Up::DirectDone);
                        }
                    }
                    None if node.direct > 0 => {
                        node.direct -= 1;
                        node.direct_running = true;
                    }
                    None => {
                        if let Some(task) = node.queue.start_next() {
                            let t = task.task as usize;
                            // Whatever the controller sent this engine before
                            // the task left has arrived (stream fence).
                            assert!(
                                task.fence.for_engine(e) <= received[e],
                                "seed {seed}: task {t} overtook a controller message to engine {e}"
                            );
                            assert!(
                                !(hold && e == 0),
                                "seed {seed}: task {t} ran on the busy engine 0"
                            );
                            starts[t] += 1;
                            ran_on[t] = Some(e);
                            if task.stealable == Stealable::Never {
                                assert_eq!(task.hops, 0, "a pinned task was stolen");
                            }
                            if rng.percent(50) {
                                up[e].push_back(Up::Started(task.task));
                            }
                            node.running = Some(task);
                        }
                    }
                }
            }
        }
    }
    for (task, _) in table.take_failed() {
        errors[task as usize] += 1;
    }
    for t in 0..tasks as usize {
        // Each run is one try: the failed ones retried, and the last one final.
        assert_eq!(
            starts[t],
            retried[t] + finals[t],
            "seed {seed}: task {t} started {} times, {} retries, {} final",
            starts[t],
            retried[t],
            finals[t]
        );
        assert_eq!(
            finals[t] + errors[t],
            1,
            "seed {seed}: task {t} must end once"
        );
        if let (Some(&dep), 1) = (follows.get(&(t as u64)), finals[t]) {
            assert_eq!(
                ran_on[t], ran_on[dep as usize],
                "seed {seed}: task {t} did not follow {dep}"
            );
        }
    }
    let s = table.status();
    assert!(
        s.engines.iter().all(|e| e.queued == 0 && e.running == 0),
        "{s}"
    );
    assert_eq!(s.engines.iter().map(|e| e.completed).sum::<usize>(), dones);
    assert_eq!(s.engines.iter().map(|e| e.stolen_in).sum::<usize>(), moved);
    assert_eq!(s.engines.iter().map(|e| e.stolen_out).sum::<usize>(), moved);
    if hold {
        // Every task placed on engine 0 was stolen.
        assert!(moved > 0, "seed {seed}: no steal");
    } else {
        assert!(moved > 50, "seed {seed}: only {moved} steals");
    }
    // No storms: each failed steal used up one positive estimate, which
    // only figures (each covering the other engines) and the `left` of a
    // steal that gave something set (a failed one answers `left 0`).
    assert!(
        failed_steals <= figures * (engines - 1) + given_steals,
        "seed {seed}: {failed_steals} failed steals, {figures} figures, {given_steals} steals that gave"
    );
    eprintln!(
        "seed {seed}: {moved} tasks stolen by {given_steals} steals, {failed_steals} failed \
         steals, {figures} figures ({refreshes} alone)"
    );
    assert!(hold || follows.len() > 100);
    assert_eq!((s.waiting, s.unassigned), (0, 0));
}

// ---------------------------------------------------------------- dependencies

/// A table with tasks 0 and 1 sent: 0 to engine 0, 1 to engine 1.
fn two_sent(engines: usize) -> TaskTable<u64> {
    let mut t = table(engines, 1);
    plain(&mut t, 0, engines);
    plain(&mut t, 1, engines);
    assert_eq!(placed(&mut t), vec![(0, 0), (1, 1)]);
    t
}

fn submit(t: &mut TaskTable<u64>, task: Task<u64>) {
    t.submit(task, Instant::now);
}

fn impossible(t: &mut TaskTable<u64>, task: TaskId, dependency: TaskId, reason_has: &str) {
    let failed = t.take_failed();
    let hit = failed.iter().find(|(id, _)| *id == task);
    match hit {
        Some((
            _,
            Error::ImpossibleDependency {
                task: tt,
                dependency: d,
                reason,
            },
        )) => {
            assert_eq!((*tt, *d), (task, dependency), "{reason}");
            assert!(
                reason.contains(reason_has),
                "{reason:?} lacks {reason_has:?}"
            );
        }
        other => panic!("task {task}: expected ImpossibleDependency, got {other:?} in {failed:?}"),
    }
    assert_eq!(t.state(task), Some(State::Done(Outcome::NotRun)));
}

#[test]
fn after_all_waits_for_every_dependency() {
    let mut t = two_sent(2);
    submit(&mut t, Task::new(2, 0, all(2)).after(DepSet::all([0, 1])));
    assert_eq!(t.state(2), Some(State::Waiting));
    run(&mut t, 0, 0, ok(0));
    assert_eq!(t.state(2), Some(State::Waiting));
    run(&mut t, 1, 1, ok(0));
    assert_eq!(t.state(2), Some(State::Ready));
    assert_eq!(t.status().waiting, 0);
}

#[test]
fn after_any_waits_for_one() {
    let mut t = two_sent(2);
    let any = DepSet::any([0, 1]);
    assert_eq!((any.mode, any.success_only), (Mode::Any, true));
    submit(&mut t, Task::new(2, 0, all(2)).after(any));
    run(&mut t, 1, 1, ok(0));
    assert_eq!(t.state(2), Some(State::Ready));
}

#[test]
fn after_a_failure_with_success_only_is_impossible_at_once() {
    let mut t = two_sent(2);
    submit(&mut t, Task::new(2, 0, all(2)).after(DepSet::all([0, 1])));
    run(&mut t, 1, 1, failed());
    impossible(&mut t, 2, 1, "failed");
    // Its message names task and dependency.
    let e = Error::ImpossibleDependency {
        task: 2,
        dependency: 1,
        reason: "failed".into(),
    };
    assert_eq!(e.to_string(), "task 2 can never run: dependency 1 failed");
}

#[test]
fn after_also_on_failure_runs_after_a_failure() {
    let mut t = two_sent(2);
    submit(
        &mut t,
        Task::new(2, 0, all(2)).after(DepSet::all([0, 1]).or_failure()),
    );
    run(&mut t, 1, 1, failed());
    run(&mut t, 0, 0, ok(0));
    assert_eq!(t.state(2), Some(State::Ready));
    assert!(t.take_failed().is_empty());
}

#[test]
fn after_any_is_impossible_only_when_every_dependency_failed() {
    let mut t = two_sent(2);
    submit(&mut t, Task::new(2, 0, all(2)).after(DepSet::any([0, 1])));
    run(&mut t, 0, 0, failed());
    assert_eq!(t.state(2), Some(State::Waiting));
    assert!(t.take_failed().is_empty());
    run(&mut t, 1, 1, failed());
    impossible(&mut t, 2, 0, "no other dependency of the `any` set");
}

#[test]
fn dependencies_already_finished_are_judged_at_submission() {
    let mut t = two_sent(2);
    run(&mut t, 0, 0, ok(0));
    run(&mut t, 1, 1, failed());
    submit(&mut t, Task::new(2, 0, all(2)).after(DepSet::all([0])));
    assert_eq!(t.state(2), Some(State::Ready));
    submit(&mut t, Task::new(3, 0, all(2)).after(DepSet::all([0, 1])));
    impossible(&mut t, 3, 1, "failed");
    submit(&mut t, Task::new(4, 0, all(2)).after(DepSet::all([77])));
    impossible(&mut t, 4, 77, "not a known task");
    submit(&mut t, Task::new(5, 0, all(2)).after(DepSet::all([])));
    assert_eq!(t.state(5), Some(State::Ready), "an empty set is met");
    submit(
        &mut t,
        Task::new(6, 0, all(2)).after(DepSet::all([0, 0, 0])),
    );
    assert_eq!(t.state(6), Some(State::Ready), "repeats count once");
}

#[test]
fn follow_pins_the_task_to_the_engine_where_its_dependency_ran() {
    let mut t = two_sent(3);
    submit(&mut t, Task::new(2, 0, all(3)).follow(DepSet::all([1])));
    assert_eq!(t.state(2), Some(State::Waiting));
    run(&mut t, 1, 1, ok(0));
    assert_eq!(t.state(2), Some(State::Ready));
    // Engine 1 is not the least loaded (0 holds task 0, 2 holds nothing),
    // but the pin wins, and the task may not be stolen.
    let batches = t.dispatch(&Fence::none());
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].engine, 1);
    assert_eq!(batches[0].tasks[0].stealable, Stealable::Never);
    assert_eq!(
        t.loads(),
        vec![1, 0, 0],
        "pinned tasks are not stealable load"
    );
}

#[test]
fn follow_all_of_tasks_on_different_engines_is_impossible_at_once() {
    let mut t = table(3, 1);
    for id in 0..3 {
        plain(&mut t, id, 3);
    }
    assert_eq!(placed(&mut t), vec![(0, 0), (1, 1), (2, 2)]);
    submit(
        &mut t,
        Task::new(3, 0, all(3)).follow(DepSet::all([0, 1, 2])),
    );
    run(&mut t, 0, 0, ok(0));
    assert_eq!(t.state(3), Some(State::Waiting));
    // Task 2 is still running: the conflict is known without it.
    run(&mut t, 1, 1, ok(0));
    impossible(&mut t, 3, 1, "but dependency 0 ran on engine 0");
}

#[test]
fn follow_any_runs_where_the_first_met_dependency_ran() {
    let mut t = two_sent(2);
    submit(&mut t, Task::new(2, 0, all(2)).follow(DepSet::any([0, 1])));
    run(&mut t, 1, 1, ok(0));
    assert_eq!(t.state(2), Some(State::Ready));
    assert_eq!(placed(&mut t), vec![(2, 1)]);
}

#[test]
fn follow_target_outside_the_view_is_impossible() {
    let mut t = two_sent(2);
    submit(
        &mut t,
        Task::new(2, 0, EngineSet::new([0])).follow(DepSet::all([1])),
    );
    run(&mut t, 1, 1, ok(0));
    impossible(&mut t, 2, 1, "outside the view");
    // With `any`, only once no dependency can be followed.
    let mut t = two_sent(2);
    submit(
        &mut t,
        Task::new(2, 0, EngineSet::new([0])).follow(DepSet::any([0, 1])),
    );
    run(&mut t, 1, 1, ok(0));
    assert_eq!(t.state(2), Some(State::Waiting));
    run(&mut t, 0, 0, ok(0));
    assert_eq!(t.state(2), Some(State::Ready));
}

#[test]
fn follow_of_a_task_that_never_ran_is_impossible_even_on_failure() {
    let mut t = two_sent(2);
    plain(&mut t, 2, 2);
    submit(
        &mut t,
        Task::new(3, 0, all(2)).follow(DepSet::all([2]).or_failure()),
    );
    t.abort(&[2]);
    impossible(&mut t, 3, 2, "never ran");
    // A failure that did run can be followed when failures count.
    submit(
        &mut t,
        Task::new(4, 0, all(2)).follow(DepSet::all([1]).or_failure()),
    );
    run(&mut t, 1, 1, failed());
    assert_eq!(t.state(4), Some(State::Ready));
    assert_eq!(placed(&mut t), vec![(4, 1)]);
}

#[test]
fn after_and_follow_together() {
    let mut t = two_sent(2);
    submit(
        &mut t,
        Task::new(2, 0, all(2))
            .follow(DepSet::all([0]))
            .after(DepSet::all([1])),
    );
    run(&mut t, 0, 0, ok(0));
    assert_eq!(t.state(2), Some(State::Waiting), "after is not met yet");
    run(&mut t, 1, 1, ok(0));
    assert_eq!(placed(&mut t), vec![(2, 0)]);
    // Either one impossible is enough.
    let mut t = two_sent(2);
    submit(
        &mut t,
        Task::new(2, 0, all(2))
            .follow(DepSet::all([0]))
            .after(DepSet::all([1])),
    );
    run(&mut t, 1, 1, failed());
    impossible(&mut t, 2, 1, "failed");
}

#[test]
fn impossibility_cascades_down_long_chains_without_recursion() {
    let mut t = table(2, 1);
    plain(&mut t, 0, 2);
    placed(&mut t);
    const CHAIN: u64 = 30_000;
    for id in 1..=CHAIN {
        submit(
            &mut t,
            Task::new(id, 0, all(2)).after(DepSet::all([id - 1])),
        );
    }
    assert_eq!(t.status().waiting, CHAIN as usize);
    run(&mut t, 0, 0, failed());
    let failed = t.take_failed();
    assert_eq!(failed.len(), CHAIN as usize);
    for (task, e) in &failed {
        match e {
            Error::ImpossibleDependency { dependency, .. } => assert_eq!(*dependency, task - 1),
            other => panic!("{other:?}"),
        }
    }
    assert!(t.is_idle());
    assert_eq!(t.status().waiting, 0);
}

#[test]
fn a_task_with_many_dependencies_is_judged_incrementally() {
    let mut t = table(2, 20_000);
    const N: u64 = 20_000;
    for id in 0..N {
        plain(&mut t, id, 2);
    }
    placed(&mut t);
    submit(&mut t, Task::new(N, 0, all(2)).after(DepSet::all(0..N)));
    for id in 0..N {
        assert_eq!(t.state(N), Some(State::Waiting));
        run(&mut t, (id % 2) as usize, id, ok(0));
    }
    assert_eq!(t.state(N), Some(State::Ready));
}

// ---------------------------------------------------------------- timeouts

#[test]
fn dependency_timeout_fails_a_task_still_waiting() {
    let mut t = two_sent(2);
    let t0 = Instant::now();
    t.submit(
        Task::new(2, 0, all(2))
            .after(DepSet::all([0]))
            .timeout(Duration::from_secs(5)),
        || t0,
    );
    t.submit(
        Task::new(3, 0, all(2))
            .after(DepSet::all([1]))
            .timeout(Duration::from_secs(5)),
        || t0,
    );
    t.submit(Task::new(4, 0, all(2)).after(DepSet::all([2])), || t0);
    assert_eq!(t.next_deadline(), Some(t0 + Duration::from_secs(5)));
    t.tick(t0 + Duration::from_secs(4));
    assert!(t.take_failed().is_empty());
    run(&mut t, 1, 1, ok(0));
    assert_eq!(t.state(3), Some(State::Ready), "met in time");
    t.tick(t0 + Duration::from_secs(5));
    let failed = t.take_failed();
    assert_eq!(
        failed[0],
        (
            2,
            Error::DependencyTimeout {
                task: 2,
                timeout: Duration::from_secs(5)
            }
        )
    );
    // Its own dependent cannot run either (it waits for a success).
    assert!(matches!(
        failed[1],
        (4, Error::ImpossibleDependency { dependency: 2, .. })
    ));
    assert_eq!(failed.len(), 2);
    assert_eq!(
        t.state(3),
        Some(State::Ready),
        "a met task is not timed out later"
    );
    assert_eq!(t.state(2), Some(State::Done(Outcome::NotRun)));
}

#[test]
fn a_timeout_does_not_apply_to_a_task_that_is_only_waiting_for_room() {
    let mut t = table(1, 1);
    let t0 = Instant::now();
    plain(&mut t, 0, 1);
    t.submit(
        Task::new(1, 0, all(1)).timeout(Duration::from_millis(1)),
        || t0,
    );
    placed(&mut t);
    t.tick(t0 + Duration::from_secs(60));
    assert!(t.take_failed().is_empty());
    assert_eq!(t.state(1), Some(State::Ready));
}

// ---------------------------------------------------------------- retries

#[test]
fn a_retry_lands_on_another_engine_and_the_error_comes_after_the_last_try() {
    let mut t = table(2, 4);
    t.submit(Task::new(7, 70, all(2)).retries(2), Instant::now);
    assert_eq!(placed(&mut t), vec![(7, 0)]);
    assert_eq!(
        run(&mut t, 0, 7, failed()),
        Completion::Retry { attempt: 2 }
    );
    assert_eq!(
        t.state(7),
        Some(State::Retrying {
            attempt: 2,
            failed_on: 0
        })
    );
    // Engine 0 is idle and lowest, but the task failed there.
    let batches = t.dispatch(&Fence::none());
    assert_eq!(batches[0].engine, 1);
    assert_eq!(
        batches[0].tasks[0].payload, 70,
        "the payload is kept for retries"
    );
    assert_eq!(
        batches[0].tasks[0].stealable,
        Stealable::Only(EngineSet::new([1]))
    );
    assert_eq!(
        run(&mut t, 1, 7, failed()),
        Completion::Retry { attempt: 3 }
    );
    // Every engine failed it once: any engine will do now.
    assert_eq!(placed(&mut t), vec![(7, 0)]);
    assert_eq!(
        run(&mut t, 0, 7, failed()),
        Completion::Final { stolen: false }
    );
    assert_eq!(t.state(7), Some(State::Done(Outcome::Failed(0))));
    assert!(
        t.take_failed().is_empty(),
        "the error is the engine's reply, not the table's"
    );
}

#[test]
fn a_retry_that_succeeds_is_final_and_a_single_engine_view_retries_in_place() {
    let mut t = table(3, 4);
    t.submit(
        Task::new(1, 0, EngineSet::new([2])).retries(1),
        Instant::now,
    );
    assert_eq!(placed(&mut t), vec![(1, 2)]);
    assert_eq!(
        run(&mut t, 2, 1, failed()),
        Completion::Retry { attempt: 2 }
    );
    assert_eq!(placed(&mut t), vec![(1, 2)], "no other engine in its view");
    assert_eq!(
        run(&mut t, 2, 1, ok(0)),
        Completion::Final { stolen: false }
    );
    assert_eq!(t.state(1), Some(State::Done(Outcome::Succeeded(2))));
}

#[test]
fn a_pinned_retry_stays_on_its_engine() {
    let mut t = two_sent(2);
    submit(
        &mut t,
        Task::new(2, 0, all(2)).follow(DepSet::all([1])).retries(1),
    );
    run(&mut t, 1, 1, ok(0));
    assert_eq!(placed(&mut t), vec![(2, 1)]);
    assert_eq!(
        run(&mut t, 1, 2, failed()),
        Completion::Retry { attempt: 2 }
    );
    let batches = t.dispatch(&Fence::none());
    assert_eq!(
        (batches[0].engine, &batches[0].tasks[0].stealable),
        (1, &Stealable::Never)
    );
}

#[test]
fn dependents_see_only_the_final_try() {
    let mut t = table(2, 4);
    t.submit(Task::new(0, 0, all(2)).retries(1), Instant::now);
    submit(&mut t, Task::new(1, 0, all(2)).after(DepSet::all([0])));
    placed(&mut t);
    run(&mut t, 0, 0, failed());
    assert_eq!(
        t.state(1),
        Some(State::Waiting),
        "a failed try with a retry left is not an end"
    );
    placed(&mut t);
    run(&mut t, 1, 0, ok(0));
    assert_eq!(t.state(1), Some(State::Ready));
}

// ---------------------------------------------------------------- abort

#[test]
fn abort_of_tasks_not_sent_fails_them_at_once() {
    let mut t = table(1, 1);
    plain(&mut t, 0, 1);
    plain(&mut t, 1, 1);
    submit(&mut t, Task::new(2, 0, all(1)).after(DepSet::all([0])));
    submit(&mut t, Task::new(3, 0, all(1)).after(DepSet::all([2])));
    placed(&mut t);
    assert!(
        t.abort(&[1, 2]).is_empty(),
        "nothing to send: neither was sent"
    );
    let failed = t.take_failed();
    assert_eq!(failed[0], (1, Error::TaskAborted { task: 1 }));
    assert_eq!(failed[1], (2, Error::TaskAborted { task: 2 }));
    assert!(matches!(
        failed[2],
        (3, Error::ImpossibleDependency { dependency: 2, .. })
    ));
    assert_eq!(t.state(1), Some(State::Aborted));
    assert_eq!(t.status().unassigned, 0);
    // The aborted ready task is not sent later.
    run(&mut t, 0, 0, ok(0));
    assert!(t.dispatch(&Fence::none()).is_empty());
    assert!(t.is_idle());
}

#[test]
fn abort_of_queued_tasks_asks_their_engine_and_running_tasks_keep_their_result() {
    let mut t = table(2, 2);
    for id in 0..4 {
        t.submit(Task::new(id, 0, all(2)).retries(3), Instant::now);
    }
    placed(&mut t);
    t.started(0, 0);
    let orders = t.abort(&[0, 1, 2, 3]);
    assert_eq!(
        orders,
        vec![
            AbortOrder {
                engine: 0,
                tasks: vec![2]
            },
            AbortOrder {
                engine: 1,
                tasks: vec![1, 3]
            }
        ]
    );
    assert!(
        t.take_failed().is_empty(),
        "queued tasks end when their engine says so"
    );
    assert!(t.aborted(2));
    assert!(t.aborted(3));
    // Task 1 had started on engine 1 before the abort arrived: it keeps its
    // result, and a failure is final (no retry after an abort).
    assert_eq!(
        run(&mut t, 1, 1, failed()),
        Completion::Final { stolen: false }
    );
    assert_eq!(t.state(1), Some(State::Done(Outcome::Failed(1))));
    assert_eq!(
        t.completed(0, 0, ok(0)),
        Completion::Final { stolen: false }
    );
    assert_eq!(
        t.take_failed(),
        vec![
            (2, Error::TaskAborted { task: 2 }),
            (3, Error::TaskAborted { task: 3 })
        ]
    );
    assert!(!t.aborted(1), "finished");
    let s = t.status();
    assert!(s.engines.iter().all(|e| e.queued == 0 && e.running == 0));
    assert!(t.is_idle());
}

#[test]
fn abort_of_a_running_task_stops_its_retries() {
    let mut t = table(2, 2);
    t.submit(Task::new(0, 0, all(2)).retries(3), Instant::now);
    placed(&mut t);
    t.started(0, 0);
    assert!(
        t.abort(&[0]).is_empty(),
        "a running task has nothing to remove"
    );
    // Its try fails: that is its result, with three retries left.
    assert_eq!(
        run(&mut t, 0, 0, failed()),
        Completion::Final { stolen: false }
    );
    assert_eq!(t.state(0), Some(State::Done(Outcome::Failed(0))));
    assert!(t.dispatch(&Fence::none()).is_empty());
    assert!(t.is_idle());
}

#[test]
fn a_submission_that_never_ran_is_a_failed_dependency() {
    let mut t = table(2, 2);
    t.never_ran(7);
    submit(&mut t, Task::new(8, 0, all(2)).after(DepSet::all([7])));
    impossible(&mut t, 8, 7, "");
    let failed_ok = DepSet::all([7]).or_failure();
    submit(&mut t, Task::new(9, 0, all(2)).after(failed_ok));
    assert!(t.take_failed().is_empty());
    assert_eq!(placed(&mut t), vec![(9, 0)]);
    // It is a row like any final one: forgetting it lets it go.
    t.forget(7);
    submit(&mut t, Task::new(10, 0, all(2)).after(DepSet::all([7])));
    impossible(&mut t, 10, 7, "not a known task");
}

#[test]
fn a_dependency_timeout_past_the_clock_is_no_timeout() {
    let mut t = table(1, 1);
    plain(&mut t, 0, 1);
    submit(
        &mut t,
        Task::new(1, 0, all(1))
            .after(DepSet::all([0]))
            .timeout(Duration::MAX),
    );
    assert_eq!(t.next_deadline(), None);
    t.tick(Instant::now() + Duration::from_secs(3600));
    assert!(t.take_failed().is_empty());
    placed(&mut t);
    run(&mut t, 0, 0, ok(0));
    assert_eq!(placed(&mut t), vec![(1, 0)]);
}

#[test]
fn an_abort_follows_a_task_that_was_stolen() {
    let mut t = table(2, 4);
    plain(&mut t, 0, 2);
    placed(&mut t);
    let orders = t.abort(&[0]);
    assert_eq!(orders[0].engine, 0);
    // Engine 1 stole it before the abort reached engine 0: the abort is
    // sent on to engine 1.
    let more = t.stolen(0, 1, &[(0, 1)]);
    assert_eq!(
        more,
        vec![AbortOrder {
            engine: 1,
            tasks: vec![0]
        }]
    );
    assert!(t.aborted(0));
    assert_eq!(t.state(0), Some(State::Aborted));
}

// ---------------------------------------------------------------- steal accounting and status

#[test]
fn steals_move_the_controllers_account_to_the_thief() {
    let mut t = table(2, 4);
    for id in 0..4 {
        t.submit(Task::new(id, 0, EngineSet::new([0])), Instant::now);
    }
    placed(&mut t);
    assert_eq!(t.loads(), vec![4, 0]);
    assert!(t.stolen(0, 1, &[(2, 1), (3, 1)]).is_empty());
    assert_eq!(
        t.state(3),
        Some(State::Queued {
            engine: 1,
            stolen: true
        })
    );
    assert_eq!(t.loads(), vec![2, 2]);
    // A stale notice (an older hop of task 3, from another engine) moves
    // nothing but is counted.
    t.stolen(0, 1, &[(3, 1)]);
    assert_eq!(
        t.state(3),
        Some(State::Queued {
            engine: 1,
            stolen: true
        })
    );
    assert_eq!(run(&mut t, 1, 3, ok(1)), Completion::Final { stolen: true });
    assert_eq!(
        run(&mut t, 0, 0, ok(0)),
        Completion::Final { stolen: false }
    );
    // A completion from an engine the table did not expect (its notice is
    // late) still frees the right queue.
    assert_eq!(t.completed(1, 1, ok(1)), Completion::Final { stolen: true });
    let s = t.status();
    let e0 = s.engines[0];
    let e1 = s.engines[1];
    assert_eq!(
        (e0.queued, e0.completed, e0.stolen_out, e0.stolen_in),
        (0, 1, 3, 0)
    );
    assert_eq!(
        (e1.queued, e1.completed, e1.stolen_in, e1.stolen_out),
        (1, 2, 3, 0)
    );
    assert_eq!(
        t.completed(1, 1, ok(1)),
        Completion::Unknown,
        "a repeat is ignored"
    );
    assert_eq!(
        t.completed(9, 2, ok(1)),
        Completion::Unknown,
        "no such engine"
    );
}

#[test]
fn steal_notices_from_different_engines_are_ordered_by_steal_count() {
    let mut t = table(3, 4);
    t.submit(Task::new(0, 0, EngineSet::new([0])), Instant::now);
    placed(&mut t);
    // 0 → 1 → 2: engine 2's notice (second steal) arrives before engine 1's.
    t.stolen(1, 2, &[(0, 2)]);
    assert_eq!(
        t.state(0),
        Some(State::Queued {
            engine: 2,
            stolen: true
        })
    );
    t.stolen(0, 1, &[(0, 1)]);
    assert_eq!(
        t.state(0),
        Some(State::Queued {
            engine: 2,
            stolen: true
        }),
        "the late notice moves nothing"
    );
    let loads = t.loads();
    assert_eq!(loads, vec![0, 0, 1]);
    let s = t.status();
    let moves: Vec<(usize, usize)> = s
        .engines
        .iter()
        .map(|e| (e.stolen_in, e.stolen_out))
        .collect();
    assert_eq!(moves, vec![(0, 1), (1, 1), (1, 0)]);
}

#[test]
fn queue_status_counts_and_table() {
    let mut t = table(2, 2);
    for id in 0..6 {
        plain(&mut t, id, 2);
    }
    submit(&mut t, Task::new(6, 0, all(2)).after(DepSet::all([5])));
    placed(&mut t);
    t.started(0, 0);
    t.started(1, 1);
    run(&mut t, 1, 3, ok(0));
    t.stolen(0, 1, &[(2, 1)]);
    // Engine 1 also has a direct request and a gather it has not answered.
    t.set_direct(1, 2);
    let s = t.status();
    assert_eq!(
        s.engines,
        vec![
            EngineStatus {
                engine: 0,
                queued: 0,
                running: 1,
                completed: 0,
                stolen_in: 0,
                stolen_out: 1,
                direct: 0,
            },
            EngineStatus {
                engine: 1,
                queued: 1,
                running: 1,
                completed: 1,
                stolen_in: 1,
                stolen_out: 0,
                direct: 2,
            },
        ]
    );
    assert_eq!((s.waiting, s.unassigned), (1, 2));
    assert_eq!(
        s.to_string(),
        "engine  queued  running  completed  stolen in  stolen out  direct\n\
         \x20    0       0        1          0          0           1       0\n\
         \x20    1       1        1          1          1           0       2\n\
         controller: 1 waiting on dependencies, 2 not sent yet\n"
    );
    t.set_direct(1, 0);
    assert_eq!(t.status().engines[1].direct, 0, "answered");
}

#[test]
fn forgotten_rows_go_once_final_and_dependents_still_resolve() {
    let mut t = two_sent(2);
    submit(&mut t, Task::new(2, 0, all(2)).after(DepSet::all([0, 1])));
    assert_eq!(t.rows(), 3);
    t.forget(0);
    t.forget(1);
    assert_eq!(t.rows(), 3, "not final yet");
    run(&mut t, 0, 0, ok(0));
    assert_eq!(t.rows(), 2);
    run(&mut t, 1, 1, ok(0));
    assert_eq!(t.rows(), 1);
    assert_eq!(t.state(2), Some(State::Ready));
    placed(&mut t);
    run(&mut t, 0, 2, ok(0));
    t.forget(2);
    assert_eq!(t.rows(), 0);
    assert!(t.is_idle());
}

// ---------------------------------------------------------------- map

#[test]
fn default_chunksize_rule() {
    assert_eq!(default_chunksize(0, 4, false), 1);
    assert_eq!(default_chunksize(1, 4, false), 1);
    assert_eq!(default_chunksize(10, 4, false), 1);
    assert_eq!(default_chunksize(1000, 4, false), 32);
    assert_eq!(default_chunksize(997, 3, false), 42, "ceil(997 / 24)");
    assert_eq!(default_chunksize(100_000, 2, false), 1024, "capped");
    assert_eq!(default_chunksize(1_000_000, 2, false), 1024);
    assert_eq!(
        default_chunksize(100, 0, false),
        13,
        "no engines counts as one"
    );
    assert_eq!(
        default_chunksize(1_000_000, 2, true),
        8192,
        "raw: capped higher"
    );
    assert_eq!(
        default_chunksize(1000, 4, true),
        32,
        "raw: same rule below the cap"
    );
    for (items, engines) in [(1000, 4), (100_000, 7), (64, 2)] {
        let size = default_chunksize(items, engines, false);
        let chunks = Chunks::new(items, size).count();
        assert!(
            chunks >= 8 * engines || size == 1,
            "{items}/{engines}: {chunks} chunks"
        );
    }
}

#[test]
fn chunks_cover_every_item_once_in_order() {
    for (len, size) in [(0, 1), (1, 1), (1, 5), (997, 42), (100_000, 1024), (10, 3)] {
        let c = Chunks::new(len, size);
        let ranges: Vec<_> = c.iter().collect();
        assert_eq!(ranges.len(), c.count());
        let mut at = 0;
        for (i, r) in ranges.iter().enumerate() {
            assert_eq!(r.start, at);
            assert!(!r.is_empty() && r.len() <= size);
            assert_eq!(c.chunk_of(r.start), i);
            at = r.end;
        }
        assert_eq!(at, len);
    }
    assert_eq!(Chunks::new(10, 3).count(), 4);
    assert_eq!(Chunks::new(10, 3).range(3), 9..10);
    assert_eq!(Chunks::new(10, 3).range(7), 10..10);
    assert_eq!(Chunks::new(10, 0).count(), 10, "size 0 is 1");
}

#[test]
fn ordered_assembly_gives_input_order() {
    let mut a = Assembly::new(true);
    assert!(a.insert(2, "c"));
    assert!(a.insert(1, "b"));
    assert_eq!(a.pop(), None, "0 is missing");
    assert_eq!(a.held(), 2);
    assert!(a.insert(0, "a"));
    assert!(!a.insert(1, "again"), "a repeat is refused");
    let out: Vec<_> = std::iter::from_fn(|| a.pop()).collect();
    assert_eq!(out, vec![(0, "a"), (1, "b"), (2, "c")]);
    assert!(!a.insert(0, "late"));
    assert_eq!(a.held(), 0);
}

#[test]
fn unordered_assembly_gives_completion_order() {
    let mut a = Assembly::new(false);
    a.insert(2, "c");
    assert_eq!(a.pop(), Some((2, "c")), "at once");
    a.insert(0, "a");
    a.insert(1, "b");
    assert_eq!(a.pop(), Some((0, "a")));
    assert_eq!(a.pop(), Some((1, "b")));
    assert_eq!(a.pop(), None);
}

#[test]
fn imap_window_keeps_at_most_max_outstanding() {
    for ordered in [true, false] {
        let mut rng = Rng(42);
        const ITEMS: u64 = 100_000;
        const MAX: usize = 1_000;
        let mut w = Window::new(MAX);
        let mut a = Assembly::new(ordered);
        let mut in_flight: Vec<u64> = Vec::new();
        let mut out = Vec::new();
        while (out.len() as u64) < ITEMS {
            // Submit while the window allows.
            while w.submitted() < ITEMS {
                match w.submit() {
                    Some(i) => in_flight.push(i),
                    None => break,
                }
            }
            assert!(w.outstanding() <= MAX);
            assert!(in_flight.len() + a.held() <= MAX);
            // Some results arrive, in random order.
            for _ in 0..1 + rng.below(50) {
                if in_flight.is_empty() {
                    break;
                }
                let i = in_flight.swap_remove(rng.below(in_flight.len()));
                a.insert(i, i * 2);
            }
            // The consumer reads some.
            for _ in 0..rng.below(60) {
                match a.pop() {
                    Some((i, v)) => {
                        assert_eq!(v, i * 2);
                        out.push(i);
                        w.consumed();
                    }
                    None => break,
                }
            }
        }
        assert_eq!(w.outstanding(), 0);
        if ordered {
            assert!(out.iter().copied().eq(0..ITEMS), "input order");
        } else {
            assert!(
                !out.windows(2).all(|p| p[0] < p[1]),
                "completion order differs"
            );
            out.sort_unstable();
            assert!(out.iter().copied().eq(0..ITEMS), "every item once");
        }
    }
    let mut w = Window::new(0);
    assert_eq!(w.submit(), Some(0), "a window of 0 is 1");
    assert_eq!(w.submit(), None);
    w.consumed();
    w.consumed();
    assert_eq!(w.outstanding(), 0);
    assert_eq!(w.submit(), Some(1));
}

#[test]
fn a_dispatch_allocates_batches_only_for_the_engines_that_get_tasks() {
    let dispatch_one = |engines: usize| {
        let mut t = table(engines, 512);
        plain(&mut t, 1, engines);
        let (batches, used) = crate::codec::allocations::measure(|| t.dispatch(&Fence::none()));
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].tasks.capacity(), 1, "sized for what could come");
        used.allocations
    };
    assert_eq!(
        dispatch_one(16),
        dispatch_one(2),
        "engines that got nothing allocated a batch"
    );
    // A burst is sized at the first task, not grown by doubling.
    let mut t = table(2, 512);
    for id in 0..1000 {
        plain(&mut t, id, 2);
    }
    let (batches, used) = crate::codec::allocations::measure(|| t.dispatch(&Fence::none()));
    assert_eq!(batches.iter().map(|b| b.tasks.len()).sum::<usize>(), 1000);
    assert!(batches.iter().all(|b| b.tasks.capacity() <= 512));
    assert!(used.allocations < 12, "{} allocations", used.allocations);
}
