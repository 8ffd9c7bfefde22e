//! The order of a client's requests, as every engine sees it, and requests
//! that must not wait for unrelated engines. Run it with
//! `rankview run -n 3 --package rankview-checks --bin check_order` (or `mpirun -n 3
//! target/debug/check_order [large]`); `tests/order.rs` runs it on
//! 2, 3 and 5 ranks.
//!
//! Owns the checks of the protocol's ordering guarantee (an `apply` after a
//! `push` or `scatter` sees the new value, whichever engines are busy and
//! whichever collectives wait), of independence (a push to one engine does
//! not wait for a gather held up by another), of overlapping gathers, and of
//! many distinct views (sub-communicators are freed; `RANKVIEW_GROUP_CACHE`
//! makes the cache small), and of the threading mode (threads waiting for
//! MPI help their rank's MPI loop, unless `RANKVIEW_FUNNELED` keeps every
//! MPI call on the MPI threads). With the argument `large`, it instead
//! moves data past MPI's 2^31 count limit: a gather of 1.1e9 bytes from
//! each of two engines, a reply of 2.2e9 bytes, a scatter and a broadcast
//! of more than 2^31 bytes. With `stuck`, it leaves a task running for an hour and
//! returns: the job must end after the shutdown grace. Prints one line per
//! check and exits non-zero unless every check held.

mod checklist;
mod gate;

use std::time::Duration;

use checklist::{skip, Checklist};
use rankview::{Client, TaskResult};

#[rankview::remote]
fn sleep_for(seconds: f64) -> f64 {
    std::thread::sleep(Duration::from_secs_f64(seconds));
    seconds
}

/// The engine's string `s`.
#[rankview::remote]
fn read_s() -> TaskResult<String> {
    Ok((*rankview::globals().get::<String>("s")?).clone())
}

/// The engine's block of strings `v`.
#[rankview::remote]
fn read_v() -> TaskResult<Vec<String>> {
    Ok((*rankview::globals().get::<Vec<String>>("v")?).clone())
}

/// Whether this rank runs with `RANKVIEW_FUNNELED`, and how many passes of
/// its MPI loop threads other than the MPI thread have made.
fn threading() -> (bool, u64) {
    (
        std::env::var_os("RANKVIEW_FUNNELED").is_some(),
        rankview::__private::helped_passes(),
    )
}

#[rankview::remote]
fn engine_threading() -> (bool, u64) {
    threading()
}

/// The engine's block of numbers `m`.
#[rankview::remote]
fn read_m() -> TaskResult<Vec<u64>> {
    Ok((*rankview::globals().get::<Vec<u64>>("m")?).clone())
}

/// The sum of the engine's numbers `x`.
#[rankview::remote]
fn sum_x() -> TaskResult<f64> {
    Ok(rankview::globals().get::<Vec<f64>>("x")?.iter().sum())
}

/// Stores `n` bytes equal to `fill` (and the last one `fill + 1`) as `big`.
#[rankview::remote]
fn make_big(n: usize, fill: u8) -> TaskResult<()> {
    let mut big = vec![fill; n];
    if let Some(last) = big.last_mut() {
        *last = fill.wrapping_add(1);
    }
    rankview::globals().insert("big", big)?;
    Ok(())
}

/// Length, first and last byte of the engine's `big`, then frees it.
#[rankview::remote]
fn big_summary() -> TaskResult<(usize, u8, u8)> {
    let g = rankview::globals();
    let summary = {
        let big = g.get::<Vec<u8>>("big")?;
        (
            big.len(),
            big.first().copied().unwrap_or(0),
            big.last().copied().unwrap_or(0),
        )
    };
    g.remove("big")?;
    Ok(summary)
}

/// A string of `n` bytes: `'a'` then `'z'`s.
#[rankview::remote]
fn long_string(n: usize) -> String {
    let mut s = String::with_capacity(n);
    if n > 0 {
        s.push('a');
        s.push_str(&"z".repeat(n - 1));
    }
    s
}

fn strings(tag: usize, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{tag}-{i}")).collect()
}

/// The block rule: the items engine `k` of `p` gets out of `items`.
fn block<T: Clone>(items: &[T], p: usize, k: usize) -> Vec<T> {
    let (n, base, extra) = (items.len(), items.len() / p, items.len() % p);
    let start = k * base + k.min(extra);
    let count = base + usize::from(k < extra);
    items[start.min(n)..(start + count).min(n)].to_vec()
}

fn order(rc: &Client, list: &mut Checklist) {
    let dv = rc.all();
    let p = rc.len();

    list.check("section_then_collectives_on_the_same_ranks", || {
        // The section is the first message about the group of every engine;
        // the broadcast, scatter and gather after it use the same group.
        rc.mpi_section("noop").get()?;
        dv.push("x", &vec![0.5f64; 16]).get()?;
        assert_eq!(dv.apply_sync(sum_x, ())?, vec![8.0; p]);
        dv.scatter("v", &strings(7, 5)).get()?;
        assert_eq!(dv.gather::<Vec<String>>("v").get()?, strings(7, 5));
        rc.mpi_section("noop").get()?;
        Ok(())
    });

    list.check("push_after_waiting_gather", || {
        dv.set("s", &"old".to_string())?;
        dv.scatter("v", &strings(0, 10)).get()?;
        let busy = rc.engine(0)?.apply(sleep_for, (0.5,));
        let gathered = dv.gather::<Vec<String>>("v");
        let push = dv.push("s", &"new".to_string());
        let seen = dv.apply(read_s, ());
        assert_eq!(seen.get()?, vec!["new".to_string(); p]);
        push.get()?;
        assert_eq!(gathered.get()?, strings(0, 10));
        busy.get()?;
        Ok(())
    });

    list.check("scatter_after_waiting_gather", || {
        let busy = rc.engine(-1)?.apply(sleep_for, (0.3,));
        let old = dv.gather::<Vec<String>>("v");
        let _scattered = dv.scatter("v", &strings(1, 7));
        let seen = dv.apply_sync(read_v, ())?;
        for (k, part) in seen.iter().enumerate() {
            assert_eq!(part, &block(&strings(1, 7), p, k));
        }
        assert_eq!(old.get()?, strings(0, 10));
        busy.get()?;
        Ok(())
    });

    list.check("interleavings_on_busy_and_idle_engines", || {
        // The client's model of what every engine holds.
        let mut s = "old".to_string();
        let mut v = strings(1, 7);
        let mut x = 0.0f64;
        dv.set("x", &vec![0.0f64; 3])?;
        let mut pending = Vec::new();
        for round in 0..24usize {
            if round % 3 == 0 {
                let engine = (round / 3 % p) as i64;
                pending.push(rc.engine(engine)?.apply(sleep_for, (0.02,)));
            }
            match round % 5 {
                0 => {
                    s = format!("s{round}");
                    dv.push("s", &s);
                }
                1 => {
                    v = strings(round, round + 2);
                    dv.scatter("v", &v);
                }
                2 => {
                    x = round as f64;
                    dv.push("x", &vec![x; 3]);
                }
                3 => {
                    let back = dv.gather::<Vec<String>>("v").get()?;
                    assert_eq!(back, v, "round {round}: gather");
                }
                _ => {
                    let sums = dv.apply_sync(sum_x, ())?;
                    assert_eq!(sums, vec![3.0 * x; p], "round {round}: sum_x");
                }
            }
            let seen_s = dv.apply(read_s, ());
            let seen_v = dv.apply(read_v, ());
            assert_eq!(seen_s.get()?, vec![s.clone(); p], "round {round}: s");
            for (k, part) in seen_v.get()?.iter().enumerate() {
                assert_eq!(part, &block(&v, p, k), "round {round}: v on engine {k}");
            }
        }
        for busy in pending {
            busy.get()?;
        }
        Ok(())
    });

    list.check("push_does_not_wait_for_other_engines", || {
        if p < 2 {
            return skip("one engine: no other engine to push to");
        }
        // Engine 0 is held at the gate until the end: a gather held up by
        // it holds up nothing on engine 1, and no submission blocks the
        // caller (either would wait for the gate).
        let generation = gate::closed();
        let busy = rc.engine(0)?.apply(gate::hold, (generation,));
        let gathered = rc.engine(0)?.gather::<Vec<String>>("v");
        let numbers = vec![1.5f64; 1 << 20];
        let push = rc.engine(-1)?.push("x", &numbers);
        assert!(
            push.wait_timeout(Duration::from_secs(20)) && !busy.ready(),
            "the push waited for the engine held at the gate"
        );
        push.get()?;
        assert_eq!(
            rc.engine(-1)?.apply_sync(sum_x, ())?,
            1.5 * (1 << 20) as f64
        );
        // Behind a gather that includes engine 1, a push waits its turn on
        // engine 1 (order), but submitting it does not block the caller.
        let both = dv.gather::<Vec<String>>("v");
        let push = rc.engine(-1)?.push("x", &vec![2.5f64; 8]);
        assert!(
            !busy.ready(),
            "submitting a push behind a waiting gather waited for the gate"
        );
        gate::open(rc)?;
        push.get()?;
        assert_eq!(rc.engine(-1)?.apply_sync(sum_x, ())?, 20.0);
        both.get()?;
        gathered.get()?;
        busy.get()?;
        Ok(())
    });

    list.check("gathers_on_disjoint_views_overlap", || {
        if p < 2 {
            return skip("one engine: no two disjoint views");
        }
        let first = rc.view(vec![0])?;
        let rest = rc.view(1..p)?;
        first.scatter("v", &strings(9, 3)).get()?;
        rest.scatter("v", &strings(8, 5)).get()?;
        // Engine 0 is held at the gate until the gather of the others is
        // done.
        let generation = gate::closed();
        let busy = rc.engine(0)?.apply(gate::hold, (generation,));
        let slow = first.gather::<Vec<String>>("v");
        let fast = rest.gather::<Vec<String>>("v");
        assert!(
            fast.wait_timeout(Duration::from_secs(20)) && !busy.ready(),
            "a gather on engines 1.. waited for engine 0, held at the gate"
        );
        assert_eq!(fast.get()?, strings(8, 5));
        assert!(!slow.ready(), "the gather of engine 0 did not wait for it");
        gate::open(rc)?;
        assert_eq!(slow.get()?, strings(9, 3));
        busy.get()?;
        Ok(())
    });

    list.check("many_distinct_views", || {
        // Every non-empty subset of the engines, over and over: with a small
        // group cache every view's first collective makes a new
        // sub-communicator and frees an old one.
        let subsets: Vec<Vec<usize>> = (1..(1usize << p.min(12)))
            .map(|mask| (0..p).filter(|k| mask & (1 << k) != 0).collect())
            .collect();
        // Each scatter deals one number to each engine of its view, and
        // each engine says what it holds right after: every block must
        // have landed on its own engine.
        let total = 5_000usize;
        let mut sent = Vec::with_capacity(total);
        for i in 0..total {
            let view = rc.view(subsets[i % subsets.len()].clone())?;
            let blocks: Vec<u64> = (0..view.len()).map(|k| (i * 16 + k) as u64).collect();
            let scattered = view.scatter("m", &blocks);
            sent.push((i, blocks, scattered, view.apply(read_m, ())));
        }
        for (i, blocks, scattered, held) in sent {
            scattered.get()?;
            let held: Vec<u64> = held.get()?.concat();
            assert_eq!(held, blocks, "view {i}: the engines' blocks");
        }
        Ok(())
    });

    list.check("waiting_threads_help_unless_funneled", || {
        // Open MPI and MPICH grant MPI_THREAD_SERIALIZED: a client thread
        // waiting for a reply, and an engine's execution thread waiting for
        // work, then make their MPI loop's passes themselves. With
        // RANKVIEW_FUNNELED set, only the MPI threads call MPI. After the
        // round trips of the checks above (and 50 more), each rank must
        // show the mode it was asked for.
        for _ in 0..50 {
            dv.apply_sync(sum_x, ())?;
        }
        let mut ranks = vec![threading()];
        ranks.extend(dv.apply_sync(engine_threading, ())?);
        for (rank, &(funneled, helped)) in ranks.iter().enumerate() {
            match funneled {
                true => assert_eq!(helped, 0, "rank {rank}: helpers made passes, funneled"),
                false => assert!(helped > 0, "rank {rank}: no thread helped its MPI loop"),
            }
        }
        println!(
            "(funneled: {}; passes helped per rank: {:?})",
            ranks[0].0,
            ranks.iter().map(|r| r.1).collect::<Vec<_>>()
        );
        Ok(())
    });
}

fn large(rc: &Client, list: &mut Checklist) {
    const EACH: usize = 1_100_000_000;
    list.check("gather_past_the_count_limit", || {
        let two = rc.view(0..2)?;
        two.apply_sync(make_big, (EACH, 3u8))?;
        let all: Vec<u8> = two.gather("big").get()?;
        assert_eq!(all.len(), 2 * EACH);
        assert_eq!(
            (all[0], all[EACH - 1], all[EACH], all[2 * EACH - 1]),
            (3, 4, 3, 4)
        );
        drop(all);
        two.apply_sync(big_summary, ())?;
        Ok(())
    });

    list.check("reply_past_the_count_limit", || {
        let n = 2 * EACH;
        let s = rc.engine(0)?.apply_sync(long_string, (n,))?;
        assert_eq!(s.len(), n);
        assert!(s.starts_with("az") && s.ends_with("zz"));
        Ok(())
    });

    list.check("scatter_and_broadcast_past_the_count_limit", || {
        let two = rc.view(0..2)?;
        let mut data = vec![5u8; 2 * EACH];
        data[EACH - 1] = 6;
        data[2 * EACH - 1] = 6;
        two.scatter("big", &data).get()?;
        let summaries = two.apply_sync(big_summary, ())?;
        assert_eq!(summaries, vec![(EACH, 5, 6), (EACH, 5, 6)]);
        rc.engine(0)?.push("big", &data).get()?;
        let one = rc.engine(0)?.apply_sync(big_summary, ())?;
        assert_eq!(one, (2 * EACH, 5, 6));
        Ok(())
    });
}

/// Leaves a task running "forever" on engine 0 and returns at once: the job
/// must still end, after the shutdown grace, naming the engine and task.
fn stuck(rc: &Client) -> Result<(), String> {
    let forever = rc
        .engine(0)
        .map_err(|e| e.to_string())?
        .apply(sleep_for, (3600.0,));
    println!(
        "check_order: left task {} running",
        forever.metadata()[0].task
    );
    Ok(())
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let large_mode = mode == "large";
    let launch = gate::sections(rankview::Launch::new().mpi_section("noop", |_| {}));
    launch.run(|rc| -> Result<(), String> {
        if mode == "stuck" {
            return stuck(rc);
        }
        let mut list = Checklist::new("check_order");
        if large_mode {
            if rc.len() < 2 {
                return Err("large mode needs 3 ranks".into());
            }
            large(rc, &mut list);
        } else {
            order(rc, &mut list);
        }
        list.finish()
    });
}
