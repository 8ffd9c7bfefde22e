//! Unit tests of `AsyncResult` driven without MPI: the controller's side is
//! played by calling `complete`/`resolve`/`fail` on the shared state.

use std::sync::atomic::AtomicUsize;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use super::*;
use crate::protocol::{Done, Outcome};

/// A result over `engines` whose value is the number of parts.
fn pending(task: TaskId, engines: &[usize]) -> (Arc<ResultState>, AsyncResult<usize>) {
    let state = ResultState::new(task, engines, &"test", false);
    let result = AsyncResult::new(state.clone(), |outcomes: &mut [_]| {
        for (_, outcome) in outcomes.iter() {
            if let Err(e) = outcome {
                return Err(e.clone());
            }
        }
        Ok(outcomes.len())
    });
    (state, result)
}

/// What engine `engine` replies to `task`: times and output of its own.
fn done(task: TaskId, engine: usize) -> Done {
    let base = 1_000_000 * (engine as u64 + 1);
    Done {
        task,
        started_us: base,
        completed_us: base + 500,
        stdout: format!("out of {engine}\n"),
        stderr: format!("err of {engine}\n"),
        hops: 0,
        outcome: Outcome::Unit,
    }
}

const WAIT: Duration = Duration::from_secs(5);

fn micros_to_time(us: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_micros(us)
}

#[test]
fn a_joined_result_carries_every_part_metadata() {
    let (first, a) = pending(7, &[2]);
    let (second, b) = pending(8, &[0, 1]);
    let joined = AsyncResult::join(vec![a, b]);
    assert!(!joined.ready());
    first.complete(0, done(7, 2), 2);
    assert!(!joined.ready(), "one submission of two is in");
    second.complete(1, done(8, 1), 1);
    second.complete(0, done(8, 0), 0);
    assert!(joined.ready() && joined.successful());
    assert_eq!(joined.get().unwrap(), vec![1, 2]);
    let meta = joined.metadata();
    let summary: Vec<(usize, TaskId, &str, &str)> = meta
        .iter()
        .map(|m| (m.engine, m.task, m.stdout.as_str(), m.stderr.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (2, 7, "out of 2\n", "err of 2\n"),
            (0, 8, "out of 0\n", "err of 0\n"),
            (1, 8, "out of 1\n", "err of 1\n"),
        ]
    );
    for m in &meta {
        let base = 1_000_000 * (m.engine as u64 + 1);
        assert_eq!(m.started, Some(micros_to_time(base)), "{m:?}");
        assert_eq!(m.completed, Some(micros_to_time(base + 500)), "{m:?}");
        assert!(m.received.is_some(), "{m:?}");
    }
    assert_eq!(joined.serial_time(), Some(Duration::from_micros(1500)));
    assert!(joined.outputs().contains("[stdout:2] out of 2\n"));
}

#[test]
fn a_joined_result_shows_the_failures_of_its_parts() {
    let (first, a) = pending(1, &[0]);
    let (second, b) = pending(2, &[1]);
    let joined = AsyncResult::join(vec![a, b]);
    first.complete(0, done(1, 0), 0);
    second.fail(0, Error::Shutdown);
    assert!(joined.ready());
    assert!(!joined.successful());
    assert!(matches!(joined.get(), Err(Error::Shutdown)));
    assert_eq!(joined.metadata()[0].stdout, "out of 0\n");
}

#[test]
fn successful_does_not_decode() {
    let state = ResultState::new(3, &[0], &"test", false);
    let decoded = Arc::new(AtomicUsize::new(0));
    let count = decoded.clone();
    let result = AsyncResult::new(state.clone(), move |_: &mut [_]| {
        count.fetch_add(1, Ordering::Relaxed);
        Ok(())
    });
    assert!(!result.successful(), "pending");
    state.resolve(0, Ok(Payload::Unit));
    assert!(result.successful());
    assert_eq!(decoded.load(Ordering::Relaxed), 0);
    result.get().unwrap();
    result.get().unwrap();
    assert_eq!(decoded.load(Ordering::Relaxed), 2, "each get decodes");
}

#[test]
fn get_inside_a_callback_of_a_joined_result_does_not_deadlock() {
    // A callback that waits for a joined result (as `map_sync` inside
    // `on_done` does) while the parts of that result complete.
    let (inner, part) = pending(1, &[0]);
    let joined = AsyncResult::join(vec![part]);
    let watched = joined.state.clone();
    let (outer, trigger) = pending(2, &[0]);
    let (tx, rx) = mpsc::channel();
    trigger.on_done(move |_| {
        let _ = tx.send(joined.get());
    });
    outer.resolve(0, Ok(Payload::Unit));
    // Only once the callback sleeps in `joined.get()` does the part come
    // in: otherwise the get would find it done and test nothing.
    let start = Instant::now();
    while watched.sleepers.load(Ordering::Acquire) == 0 {
        assert!(
            start.elapsed() < WAIT,
            "the callback never waited for the join"
        );
        std::thread::yield_now();
    }
    inner.resolve(0, Ok(Payload::Unit));
    match rx.recv_timeout(WAIT) {
        Ok(value) => assert_eq!(value.unwrap(), vec![1]),
        Err(_) => panic!("the callback never returned: the join waits behind it"),
    }
}

#[test]
fn a_blocking_callback_does_not_stop_the_others() {
    let (first, a) = pending(1, &[0]);
    let (second, b) = pending(2, &[0]);
    let (release, released) = mpsc::channel::<()>();
    let (tx, rx) = mpsc::channel();
    let first_done = tx.clone();
    a.on_done(move |_| {
        // Blocks until the second callback has run.
        let ok = released.recv_timeout(WAIT).is_ok();
        let _ = first_done.send(("first", ok));
    });
    b.on_done(move |_| {
        let _ = release.send(());
        let _ = tx.send(("second", true));
    });
    first.resolve(0, Ok(Payload::Unit));
    second.resolve(0, Ok(Payload::Unit));
    let mut seen = vec![
        rx.recv_timeout(WAIT).unwrap(),
        rx.recv_timeout(WAIT).unwrap(),
    ];
    seen.sort();
    assert_eq!(seen, vec![("first", true), ("second", true)]);
}

#[test]
fn callbacks_may_wait_for_each_other_in_chains() {
    // Callback k waits until callback k + 1 has run: the pool must grow to
    // as many threads as the chain is deep.
    const DEPTH: usize = 8;
    let states: Vec<_> = (0..DEPTH).map(|k| pending(k as TaskId, &[0])).collect();
    let (tx, rx) = mpsc::channel();
    let mut waits: Vec<Option<mpsc::Receiver<()>>> = vec![None];
    let mut signals = Vec::new();
    for _ in 1..DEPTH {
        let (signal, wait) = mpsc::channel::<()>();
        signals.push(Some(signal));
        waits.push(Some(wait));
    }
    signals.push(None);
    for (k, (_, result)) in states.iter().enumerate() {
        // Callback k waits on channel k + 1's receiver and signals channel k.
        let wait = waits.get_mut(k + 1).and_then(Option::take);
        let signal = if k == 0 { None } else { signals[k - 1].take() };
        let tx = tx.clone();
        result.on_done(move |_| {
            let ok = wait.map_or(true, |w| w.recv_timeout(WAIT).is_ok());
            if let Some(signal) = signal {
                let _ = signal.send(());
            }
            let _ = tx.send((k, ok));
        });
    }
    for (state, _) in &states {
        state.resolve(0, Ok(Payload::Unit));
    }
    let mut seen: Vec<(usize, bool)> = (0..DEPTH)
        .map(|_| rx.recv_timeout(2 * WAIT).expect("a callback never ran"))
        .collect();
    seen.sort();
    assert_eq!(seen, (0..DEPTH).map(|k| (k, true)).collect::<Vec<_>>());
}

/// The controller's end of a result's link, as a channel of what results
/// asked.
struct Asked(mpsc::Sender<&'static str>);

impl Link for Asked {
    fn forget(&self, _: Forgotten) -> Result<()> {
        self.0.send("forget").map_err(|_| Error::Shutdown)
    }

    fn abort(&self, _: Vec<TaskId>) -> Result<()> {
        self.0.send("abort").map_err(|_| Error::Shutdown)
    }

    fn abort_direct(&self, _: TaskId, _: Arc<[usize]>) -> Result<()> {
        self.0.send("abort direct").map_err(|_| Error::Shutdown)
    }
}

/// A finished load-balanced `apply` as the user holds it: its handle (tied
/// to the controller as a view ties it) and the shared state, settled by an
/// empty reply.
fn held_apply(task: TaskId, link: &Arc<dyn Link>) -> AsyncResult<()> {
    let state = ResultState::new(task, &[usize::MAX], &"test::noop", false);
    let result = AsyncResult::new(state.clone(), |_: &mut [_]| Ok(())).with_control(Control {
        link: link.clone(),
        work: Behind::Task,
    });
    state.complete_task(state::empty_reply(task), 1, false, SystemTime::now());
    result
}

#[test]
fn a_held_finished_apply_costs_little_memory() {
    const N: usize = 10_000;
    let (asked, _controller) = mpsc::channel();
    let link: Arc<dyn Link> = Arc::new(Asked(asked));
    let mut held = Vec::with_capacity(N);
    let ((), holding) = crate::codec::allocations::measure(|| {
        held.extend((0..N).map(|i| held_apply(i as TaskId, &link)));
    });
    let ((), dropped) = crate::codec::allocations::measure(|| held.clear());
    let per = |bytes: usize| bytes as f64 / N as f64;
    println!(
        "held finished apply: {:.0} bytes in {:.1} allocations ({:.0} at peak); \
         {:.0} freed on drop; size_of AsyncResult {} ResultState {} Part {} Metadata {} \
         Payload {} Control {} Behind {}",
        per(holding.live),
        holding.allocations as f64 / N as f64,
        per(holding.peak),
        per(holding.live) - per(dropped.live),
        std::mem::size_of::<AsyncResult<()>>(),
        std::mem::size_of::<ResultState>(),
        std::mem::size_of::<part::Part>(),
        std::mem::size_of::<Metadata>(),
        std::mem::size_of::<Payload>(),
        std::mem::size_of::<Control>(),
        std::mem::size_of::<Behind>(),
    );
    assert_eq!(holding.allocations, N, "one allocation per held result");
    // 168 bytes fill glibc's 176-byte chunk (bench `w13`).
    assert!(per(holding.live) <= 168.0, "a held result stays small");
}

#[test]
fn the_last_handle_of_a_task_forgets_it_without_allocating() {
    /// Records what results let go, in room made beforehand.
    struct Recorded(std::sync::Mutex<Vec<TaskId>>);
    impl Link for Recorded {
        fn forget(&self, tasks: Forgotten) -> Result<()> {
            let mut seen = self.0.lock().unwrap();
            seen.extend_from_slice(tasks.as_slice());
            Ok(())
        }
        fn abort(&self, _: Vec<TaskId>) -> Result<()> {
            Ok(())
        }
        fn abort_direct(&self, _: TaskId, _: Arc<[usize]>) -> Result<()> {
            Ok(())
        }
    }
    let recorded = Arc::new(Recorded(std::sync::Mutex::new(Vec::with_capacity(8))));
    let link: Arc<dyn Link> = recorded.clone();
    let result = held_apply(41, &link);
    let ((), dropping) = crate::codec::allocations::measure(|| drop(result));
    assert_eq!(
        dropping.allocations, 0,
        "dropping a task's result allocates"
    );
    assert_eq!(*recorded.0.lock().unwrap(), vec![41]);
    // A result of several tasks (a map's) names them all.
    let state = ResultState::new(50, &[usize::MAX], &"test::noop", false);
    let mapped = AsyncResult::new(state, |_: &mut [_]| Ok(())).with_control(Control {
        link: link.clone(),
        work: Behind::balanced(vec![50, 51, 52]),
    });
    drop(mapped);
    assert_eq!(*recorded.0.lock().unwrap(), vec![41, 50, 51, 52]);
}

#[test]
fn the_last_handle_of_a_balanced_result_lets_its_task_go_once() {
    let (asked, controller) = mpsc::channel();
    let link: Arc<dyn Link> = Arc::new(Asked(asked));
    let result = held_apply(4, &link);
    let clone = result.clone();
    let mapped = clone.clone().map(|()| 1u8);
    result.abort().unwrap();
    assert_eq!(controller.try_recv(), Ok("abort"));
    drop(result);
    drop(clone);
    assert!(controller.try_recv().is_err(), "a handle is left");
    assert_eq!(mapped.get().unwrap(), 1);
    assert_eq!(mapped.metadata()[0].engine, 1, "where it ran");
    drop(mapped);
    assert_eq!(controller.try_recv(), Ok("forget"));
    assert!(controller.try_recv().is_err(), "forgotten once");
}

#[test]
fn a_direct_result_aborts_its_task_on_its_engines() {
    struct Direct(mpsc::Sender<(TaskId, Vec<usize>)>);
    impl Link for Direct {
        fn forget(&self, _: Forgotten) -> Result<()> {
            Err(Error::Shutdown)
        }
        fn abort(&self, _: Vec<TaskId>) -> Result<()> {
            Err(Error::Shutdown)
        }
        fn abort_direct(&self, task: TaskId, engines: Arc<[usize]>) -> Result<()> {
            self.0
                .send((task, engines.to_vec()))
                .map_err(|_| Error::Shutdown)
        }
    }
    let (asked, controller) = mpsc::channel();
    let (state, result) = pending(9, &[2, 0]);
    let result = result.with_control(Control {
        link: Arc::new(Direct(asked)),
        work: Behind::Direct,
    });
    result.abort().unwrap();
    assert_eq!(controller.try_recv(), Ok((9, vec![2, 0])));
    state.complete(0, done(9, 2), 2);
    state.complete(1, done(9, 0), 0);
    assert_eq!(result.get().unwrap(), 2);
    drop(result);
    assert!(
        controller.try_recv().is_err(),
        "a direct result forgets nothing"
    );
}

#[test]
fn a_part_logs_the_times_its_metadata_gives_to_the_microsecond() {
    let whole_micros = |t: SystemTime| {
        let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap();
        SystemTime::UNIX_EPOCH + Duration::from_micros(since.as_micros() as u64)
    };
    let submitted = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
    let mut part = part::Part::new(9, 3, &"f", part::Stamp::nanos(submitted), true);
    let log = crate::timeline::JobLog::new(4);
    log.record(part.log_entry());
    part.record(&mut done(9, 1), Some((1, true)));
    part.mark_received(SystemTime::now);
    log.record(part.log_entry());
    let records = log.timeline();
    let (pending, settled) = (&records.records()[0], &records.records()[1]);
    assert_eq!(pending.engine, Some(3));
    assert_eq!(pending.submitted, whole_micros(submitted));
    assert_eq!(
        (pending.started, pending.completed, pending.received),
        (None, None, None)
    );
    let meta = part.timing();
    let mut want = crate::TimelineRecord::from(&meta);
    want.submitted = whole_micros(want.submitted);
    want.received = want.received.map(whole_micros);
    assert_eq!(*settled, want);
    assert!(settled.stolen && settled.engine == Some(1) && settled.started.is_some());
}

#[test]
fn one_outcome_collects_as_it_would_among_several() {
    use crate::view::{Many, One};
    let first_byte = |_: usize, p: &mut part::Payload| match p {
        part::Payload::Value(bytes) => bytes.first().copied().ok_or(Error::Shutdown),
        _ => Err(Error::Shutdown),
    };
    let value = || (3, Ok(part::Payload::Value(vec![7])));
    let failed = || (3, Err(Error::Timeout(WAIT)));
    assert_eq!(
        crate::client::collect::<One, u8>(&mut [value()], &first_byte).unwrap(),
        7
    );
    assert_eq!(
        crate::client::collect::<Many, u8>(&mut [value()], &first_byte).unwrap(),
        vec![7]
    );
    assert_eq!(
        crate::client::collect::<One, u8>(&mut [failed()], &first_byte).unwrap_err(),
        Error::Timeout(WAIT)
    );
    assert_eq!(
        crate::client::collect::<Many, u8>(&mut [failed()], &first_byte).unwrap_err(),
        Error::Composite(vec![Error::Timeout(WAIT)])
    );
    // The same rules as for several outcomes.
    assert_eq!(
        crate::client::collect::<Many, u8>(&mut [value(), failed()], &first_byte).unwrap_err(),
        Error::Composite(vec![Error::Timeout(WAIT)])
    );
    // A decoding failure of the one value is its error.
    let mut empty = [(3, Ok(part::Payload::Value(Vec::new())))];
    assert_eq!(
        crate::client::collect::<One, u8>(&mut empty, &first_byte).unwrap_err(),
        Error::Shutdown
    );
}
