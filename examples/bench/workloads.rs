//! The rankview side of every workload: what a user's program does, timed,
//! its results checked, and its figures printed beside the raw side's
//! (which `raw` records in the job's MPI sections and each workload runs
//! once per repetition through `rc.mpi_section`). Also `metg_step`, the
//! rankview side of the `metg` workload's steps (the steps are `metg`'s).

use std::time::{Duration, Instant};

use rankview::{Client, DirectView, Many};

use crate::metg;
use crate::raw::raw_idle_ns;
use crate::report::{report, report_kept, report_metg, report_rates};
use crate::sizes::*;
use crate::stats::{greedy_efficiency, median, quantile, raw_median, rss_bytes, Samples};
use crate::tasks::{
    count_strings, engine_cpu_ns, increment, noop, spin, w10_strings, w4_durations_us,
};

/// `w1` roundtrip_latency: `apply_sync` of a no-op on engine 0, in ten
/// slices alternating with the raw ping-pong.
pub fn w1(rc: &Client, raw: &Samples, json: bool) -> rankview::Result<()> {
    // Ten alternating slices of raw and rankview round trips.
    let e0 = rc.engine(0)?;
    for _ in 0..PING_WARMUP {
        e0.apply_sync(noop, ())?;
    }
    rc.mpi_section("w1").get()?;
    raw.lock().map(|mut m| m.remove("w1")).ok();
    let mut samples = Vec::with_capacity(PING_ROUNDS);
    for _ in 0..10 {
        rc.mpi_section("w1").get()?;
        for _ in 0..PING_ROUNDS / 10 {
            let t = Instant::now();
            e0.apply_sync(noop, ())?;
            samples.push(t.elapsed());
        }
    }
    let raw_samples = raw
        .lock()
        .ok()
        .and_then(|mut m| m.remove("w1"))
        .ok_or_else(|| rankview::Error::Usage("raw figures for w1 missing".into()))?;
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let at = |v: &[Duration], q| us(quantile(v, q));
    let (o50, o90, o99) = (at(&samples, 0.5), at(&samples, 0.9), at(&samples, 0.99));
    let (r50, r90, r99) = (
        at(&raw_samples, 0.5),
        at(&raw_samples, 0.9),
        at(&raw_samples, 0.99),
    );
    let (ratio, p99_ratio) = (o50 / r50, o99 / r50);
    if json {
        println!(
            "{{\"workload\":\"w1\",\"rankview_us\":{o50:.3},\"raw_us\":{r50:.3},\"ratio\":{ratio:.3},\"rankview_p90_us\":{o90:.3},\"rankview_p99_us\":{o99:.3},\"raw_p90_us\":{r90:.3},\"raw_p99_us\":{r99:.3},\"p99_over_raw_median\":{p99_ratio:.3}}}"
        );
    } else {
        println!(
            "w1 roundtrip_latency           rankview p50 {o50:>7.2} p90 {o90:>7.2} p99 {o99:>7.2} us  raw MPI p50 {r50:>6.2} p90 {r90:>6.2} p99 {r99:>6.2} us  ratio {ratio:>6.2} (p99/raw p50 {p99_ratio:.1})"
        );
    }
    Ok(())
}

/// `w3` scatter_gather_bandwidth: `scatter` then `gather` over every
/// engine, nothing kept between repetitions.
pub fn w3(rc: &Client, all: &DirectView<Many>, raw: &Samples, json: bool) -> rankview::Result<()> {
    let data: Vec<f64> = (0..W3_ELEMENTS).map(|i| i as f64).collect();
    let mut samples = Vec::new();
    for _ in 0..W3_REPS {
        let t = Instant::now();
        all.scatter("w3", &data).get()?;
        let back: Vec<f64> = all.gather("w3").into_value()?;
        samples.push(t.elapsed());
        assert!(back == data, "gather(scatter(x)) != x");
        drop(back);
        // Moving data once: no value to receive into next time.
        all.clear().get()?;
        rc.mpi_section("w3").get()?;
    }
    report(
        json,
        "w3",
        "scatter_gather_bandwidth",
        median(samples),
        raw_median(raw, "w3")?,
        "s",
    );
    Ok(())
}

/// `w8` broadcast_bandwidth: `push` to every engine, nothing kept between
/// repetitions.
pub fn w8(rc: &Client, all: &DirectView<Many>, raw: &Samples, json: bool) -> rankview::Result<()> {
    let data: Vec<f64> = (0..W8_ELEMENTS).map(|i| i as f64).collect();
    let mut samples = Vec::new();
    for _ in 0..W8_REPS {
        rc.mpi_section("w8").get()?;
        let t = Instant::now();
        all.push("w8", &data).get()?;
        samples.push(t.elapsed());
        // Moving data once: no value to receive into next time.
        all.clear().get()?;
    }
    report(
        json,
        "w8",
        "broadcast_bandwidth",
        median(samples),
        raw_median(raw, "w8")?,
        "s",
    );
    Ok(())
}

/// `w1idle` latency_after_idle: `apply_sync` of a no-op after quiet.
pub fn w1idle(rc: &Client, raw: &Samples, json: bool) -> rankview::Result<()> {
    let e0 = rc.engine(0)?;
    let mut samples = Vec::with_capacity(IDLE_ROUNDS);
    for _ in 0..IDLE_ROUNDS {
        std::thread::sleep(IDLE_GAP);
        let t = Instant::now();
        e0.apply_sync(noop, ())?;
        samples.push(t.elapsed());
    }
    rc.mpi_section("w1idle").get()?;
    let raw_samples = raw
        .lock()
        .ok()
        .and_then(|mut m| m.remove("w1idle"))
        .unwrap_or_default();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let (ours50, ours99) = (quantile(&samples, 0.5), quantile(&samples, 0.99));
    let (raw50, raw99) = (quantile(&raw_samples, 0.5), quantile(&raw_samples, 0.99));
    if json {
        println!(
            "{{\"workload\":\"w1idle\",\"rankview_median_us\":{:.3},\"rankview_p99_us\":{:.3},\"raw_median_us\":{:.3},\"raw_p99_us\":{:.3}}}",
            us(ours50), us(ours99), us(raw50), us(raw99)
        );
    } else {
        println!(
            "w1idle latency_after_idle        rankview median {:>9.1} us p99 {:>9.1} us  raw MPI median {:>7.1} us p99 {:>7.1} us",
            us(ours50), us(ours99), us(raw50), us(raw99)
        );
    }
    Ok(())
}

/// `w3loop` scatter_gather_loop: `w3` into a name the engines hold and a
/// buffer the client keeps.
pub fn w3loop(
    rc: &Client,
    all: &DirectView<Many>,
    raw: &Samples,
    json: bool,
) -> rankview::Result<()> {
    // Scatter into the same name and gather into the same
    // buffer every time, as a compute loop does.
    let data: Vec<f64> = (0..W3_ELEMENTS).map(|i| i as f64).collect();
    let mut back = vec![-1.0f64; W3_ELEMENTS];
    let mut samples = Vec::new();
    for _ in 0..W3_REPS {
        rc.mpi_section("w3loop").get()?;
        let t = Instant::now();
        all.scatter("w3loop", &data).get()?;
        all.gather_into("w3loop", &mut back)?;
        samples.push(t.elapsed());
        assert!(back == data, "gather(scatter(x)) != x");
        back[0] = -1.0;
    }
    all.clear().get()?;
    report_kept(
        json,
        "w3loop",
        "scatter_gather_loop",
        median(samples),
        raw_median(raw, "w3loop")?,
        raw_median(raw, "w3loop_huge")?,
    );
    Ok(())
}

/// `w8loop` broadcast_loop: `w8` into a name the engines hold.
pub fn w8loop(
    rc: &Client,
    all: &DirectView<Many>,
    raw: &Samples,
    json: bool,
) -> rankview::Result<()> {
    let data: Vec<f64> = (0..W8_ELEMENTS).map(|i| i as f64).collect();
    let mut samples = Vec::new();
    for _ in 0..W8_REPS {
        rc.mpi_section("w8loop").get()?;
        let t = Instant::now();
        all.push("w8loop", &data).get()?;
        samples.push(t.elapsed());
    }
    all.clear().get()?;
    report_kept(
        json,
        "w8loop",
        "broadcast_loop",
        median(samples),
        raw_median(raw, "w8loop")?,
        raw_median(raw, "w8loop_huge")?,
    );
    Ok(())
}

/// `w9` pull_bandwidth: `get` into a new `Vec` and `pull_into` a kept
/// buffer, from engine 0.
pub fn w9(rc: &Client, raw: &Samples, json: bool) -> rankview::Result<()> {
    // Alternating: a pull into a new Vec (the user's
    // `get`), a pull into a kept buffer, the raw transfer.
    let data: Vec<f64> = (0..W9_ELEMENTS).map(|i| i as f64).collect();
    let e0 = rc.engine(0)?;
    e0.push("w9", &data).get()?;
    let mut kept = vec![-1.0f64; W9_ELEMENTS];
    let (mut fresh, mut into) = (Vec::new(), Vec::new());
    for _ in 0..W9_REPS {
        rc.mpi_section("w9").get()?;
        let t = Instant::now();
        let back: Vec<f64> = e0.get("w9")?;
        fresh.push(t.elapsed());
        // Checked after both pulls: like the raw side
        // (right behind a barrier), each starts while
        // the engine is still polling eagerly, not after
        // 10 ms spent comparing (see w1idle for that).
        let t = Instant::now();
        e0.pull_into("w9", &mut kept)?;
        into.push(t.elapsed());
        assert!(back == data, "pull(push(x)) != x");
        drop(back);
        assert!(kept == data, "pull_into(push(x)) != x");
        kept[0] = -1.0;
    }
    e0.clear().get()?;
    let raw_s = raw_median(raw, "w9")?.as_secs_f64();
    let huge_s = raw_median(raw, "w9_huge")?.as_secs_f64();
    let fresh_s = raw_median(raw, "w9_fresh")?.as_secs_f64();
    let (fresh, into) = (median(fresh).as_secs_f64(), median(into).as_secs_f64());
    let (ratio, ratio_into) = (fresh / raw_s, into / raw_s);
    let (ratio_huge, ratio_into_huge) = (fresh / huge_s, into / huge_s);
    let ratio_fresh = fresh / fresh_s;
    if json {
        println!(
            "{{\"workload\":\"w9\",\"rankview_s\":{fresh:.6},\"rankview_into_s\":{into:.6},\"raw_s\":{raw_s:.6},\"ratio\":{ratio:.3},\"ratio_into\":{ratio_into:.3},\"raw_huge_s\":{huge_s:.6},\"ratio_huge\":{ratio_huge:.3},\"ratio_into_huge\":{ratio_into_huge:.3},\"raw_fresh_s\":{fresh_s:.6},\"ratio_fresh\":{ratio_fresh:.3}}}"
        );
    } else {
        println!(
            "w9 pull_bandwidth             get {fresh:.6} s  pull_into {into:.6} s  raw MPI {raw_s:.6} s  ratio {ratio:>7.3}  into {ratio_into:>7.3}  huge pages {huge_s:.6} s  ratio {ratio_huge:>7.3}  into {ratio_into_huge:>7.3}  raw into a fresh Vec {fresh_s:.6} s  get's ratio {ratio_fresh:>7.3}"
        );
    }
    Ok(())
}

/// `w10` object_bandwidth: `push`, `apply` and `pull` of a `Vec<String>`
/// on engine 0.
pub fn w10(rc: &Client, raw: &Samples, json: bool) -> rankview::Result<()> {
    let data = w10_strings();
    let e0 = rc.engine(0)?;
    let (mut push, mut apply, mut pull) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..W10_REPS {
        rc.mpi_section("w10").get()?;
        let t = Instant::now();
        e0.push("w10", &data).get()?;
        push.push(t.elapsed());
        let t = Instant::now();
        let n = e0.apply_sync(count_strings, (&data,))?;
        apply.push(t.elapsed());
        assert_eq!(n, W10_STRINGS);
        let t = Instant::now();
        let back: Vec<String> = e0.pull("w10").get()?;
        pull.push(t.elapsed());
        assert!(back == data, "pull(push(x)) != x");
    }
    e0.clear().get()?;
    let raw_s = raw_median(raw, "w10")?.as_secs_f64();
    let (push, apply, pull) = (
        median(push).as_secs_f64(),
        median(apply).as_secs_f64(),
        median(pull).as_secs_f64(),
    );
    let ratio = push.max(apply).max(pull) / raw_s;
    if json {
        println!(
            "{{\"workload\":\"w10\",\"rankview_push_s\":{push:.6},\"rankview_apply_s\":{apply:.6},\"rankview_pull_s\":{pull:.6},\"raw_s\":{raw_s:.6},\"ratio\":{ratio:.3}}}"
        );
    } else {
        println!(
            "w10 object_bandwidth             push {push:.4} s  apply {apply:.4} s  pull {pull:.4} s  raw MPI {raw_s:.4} s  ratio {ratio:>7.3} (slowest)"
        );
    }
    Ok(())
}

/// `w2` task_throughput: no-op `apply`s on the load-balanced view, all
/// submitted, then all collected.
pub fn w2(rc: &Client, raw: &Samples, json: bool) -> rankview::Result<()> {
    let lv = rc.load_balanced_view().chunksize(1);
    let mut samples = Vec::with_capacity(W2_REPS);
    for _ in 0..W2_REPS {
        rc.mpi_section("w2").get()?;
        let t = Instant::now();
        let pending: Vec<_> = (0..W2_TASKS).map(|_| lv.apply(noop, ())).collect();
        for result in pending {
            result.get()?;
        }
        samples.push(t.elapsed());
    }
    let per_s = |d: Duration| W2_TASKS as f64 / d.as_secs_f64();
    report_rates(
        json,
        "w2",
        "task_throughput",
        "tasks",
        per_s(median(samples)),
        per_s(raw_median(raw, "w2")?),
        "≥ 200,000 tasks/s, ratio ≥ 1",
    );
    Ok(())
}

/// `w2map` map_throughput: `map` of `x + 1` on the load-balanced view.
pub fn w2map(rc: &Client, raw: &Samples, json: bool) -> rankview::Result<()> {
    let lv = rc.load_balanced_view();
    let items: Vec<u64> = (0..W2MAP_ITEMS as u64).collect();
    let mut samples = Vec::with_capacity(W2MAP_REPS);
    for _ in 0..W2MAP_REPS {
        rc.mpi_section("w2map").get()?;
        let t = Instant::now();
        let back = lv.map(increment, items.iter().copied()).get()?;
        samples.push(t.elapsed());
        assert!(
            back.len() == items.len() && back.iter().zip(&items).all(|(b, x)| *b == x + 1),
            "map(x + 1) gave wrong results"
        );
    }
    let per_s = |d: Duration| W2MAP_ITEMS as f64 / d.as_secs_f64();
    report_rates(
        json,
        "w2map",
        "map_throughput",
        "items",
        per_s(median(samples)),
        per_s(raw_median(raw, "w2map")?),
        "≥ 50,000,000 items/s",
    );
    Ok(())
}

/// `metg`: the efficiency curves, their METG(50 %), and `--metg-svg`
/// (the steps are `metg`'s, each run by [`metg_step`]).
pub fn metg(rc: &Client, json: bool, metg_svg: Option<&str>) -> rankview::Result<()> {
    let curves = metg::run(rc, metg_step)?;
    report_metg(json, &curves);
    if let Some(path) = metg_svg {
        metg::draw(&curves, path).map_err(rankview::Error::Usage)?;
    }
    Ok(())
}

/// `w4` balance: tasks of exponentially distributed durations on the
/// load-balanced view; efficiency against the raw greedy farm.
pub fn w4(rc: &Client, raw: &Samples, json: bool) -> rankview::Result<()> {
    let lv = rc.load_balanced_view();
    let durations = w4_durations_us();
    let total: u64 = durations.iter().sum();
    let mut samples = Vec::with_capacity(W4_REPS);
    for _ in 0..W4_REPS {
        rc.mpi_section("w4").get()?;
        let t = Instant::now();
        let pending: Vec<_> = durations.iter().map(|&us| lv.apply(spin, (us,))).collect();
        let mut done = 0u64;
        for result in pending {
            done += result.get()?;
        }
        samples.push(t.elapsed());
        assert_eq!(done, total, "a w4 task came back wrong");
    }
    let engines = rc.ids().len();
    let efficiency =
        |makespan: Duration| total as f64 / 1e6 / (engines as f64 * makespan.as_secs_f64());
    let (ours, raw) = (
        efficiency(median(samples)),
        efficiency(raw_median(raw, "w4")?),
    );
    let bound = greedy_efficiency(&durations, engines);
    if json {
        println!(
            "{{\"workload\":\"w4\",\"efficiency\":{ours:.4},\"raw_efficiency\":{raw:.4},\"ideal_greedy\":{bound:.4}}}"
        );
    } else {
        println!(
            "w4 {:<26} rankview {ours:>12.4}        raw MPI {raw:>12.4}        (efficiency; ideal greedy {bound:.4}; goal ≥ 0.97)",
            "balance"
        );
    }
    Ok(())
}

/// `w6` imap_memory: the client's RSS growth through a bounded `imap`
/// (no raw side).
pub fn w6(rc: &Client, json: bool) -> rankview::Result<()> {
    let lv = rc.load_balanced_view().max_outstanding(W6_WINDOW);
    let t = Instant::now();
    let (mut read, mut sum, mut first_window) = (0usize, 0u64, 0u64);
    for result in lv.imap(increment, 0..W6_TASKS) {
        sum += result?;
        read += 1;
        if read == W6_WINDOW {
            first_window = rss_bytes();
        }
    }
    let elapsed = t.elapsed();
    let growth = rss_bytes() as f64 - first_window as f64;
    assert_eq!(read as u64, W6_TASKS, "imap lost results");
    assert_eq!(
        sum,
        W6_TASKS * (W6_TASKS + 1) / 2,
        "imap gave wrong results"
    );
    let mib = growth / (1u64 << 20) as f64;
    let per_s = W6_TASKS as f64 / elapsed.as_secs_f64();
    if json {
        println!("{{\"workload\":\"w6\",\"rss_growth_mib\":{mib:.3},\"tasks_per_s\":{per_s:.0}}}");
    } else {
        println!(
            "w6 {:<26} rankview {mib:>12.3} MiB of RSS growth after the first window, {per_s:.0} tasks/s (goal ≤ 32 MiB)",
            "imap_memory"
        );
    }
    Ok(())
}

/// `w13` held_result_memory: rank 0's RSS per held finished result, and
/// what stays once they are dropped (no raw side).
pub fn w13(rc: &Client, json: bool) -> rankview::Result<()> {
    let before = rss_bytes();
    let lv = rc.load_balanced_view();
    let held: Vec<_> = (0..W13_RESULTS).map(|_| lv.apply(noop, ())).collect();
    for result in &held {
        result.get()?;
    }
    // A round trip to the controller: the pending tasks' memory it frees
    // and trims when the burst ends is gone by the time it answers.
    rc.queue_status()?;
    let holding = rss_bytes();
    drop(held);
    // The controller takes the handles' Forget commands
    // in order: once it answers, it has taken them all.
    rc.queue_status()?;
    let after = rss_bytes();
    let growth = (holding as f64 - before as f64).max(1.0);
    let per_result = growth / W13_RESULTS as f64;
    let kept = (after as f64 - before as f64) / growth;
    if json {
        println!(
            "{{\"workload\":\"w13\",\"bytes_per_held_result\":{per_result:.0},\"rss_growth_mib\":{:.1},\"kept_after_drop\":{kept:.3}}}",
            growth / (1u64 << 20) as f64
        );
    } else {
        println!(
            "w13 {:<25} rankview {per_result:>12.0} bytes per held finished result ({W13_RESULTS} held; {:.0} % of the growth kept after dropping them; goal ≤ 256 bytes, ≤ 10 %)",
            "held_result_memory",
            kept * 100.0
        );
    }
    Ok(())
}

/// `w5` idle: the busiest engine's CPU while the client does nothing,
/// against ranks waiting in `MPI_Barrier`.
pub fn w5(rc: &Client, all: &DirectView<Many>, json: bool) -> rankview::Result<()> {
    let before = all.apply_sync(engine_cpu_ns, ())?;
    std::thread::sleep(IDLE);
    let after = all.apply_sync(engine_cpu_ns, ())?;
    let ours = before
        .iter()
        .zip(&after)
        .map(|(b, a)| a - b)
        .max()
        .unwrap_or(0);
    rc.mpi_section("w5").get()?;
    let raw = all
        .apply_sync(raw_idle_ns, ())?
        .into_iter()
        .max()
        .unwrap_or(0);
    let pct = |ns: u64| ns as f64 / IDLE.as_nanos() as f64 * 100.0;
    if json {
        println!(
            "{{\"workload\":\"w5\",\"rankview_core_pct\":{:.3},\"raw_core_pct\":{:.3}}}",
            pct(ours),
            pct(raw)
        );
    } else {
        println!(
            "w5 idle_engine_cpu             rankview {:>10.3} %    raw MPI {:>10.3} % (of one core, busiest engine)",
            pct(ours),
            pct(raw)
        );
    }
    Ok(())
}

/// Tasks a `metg` step keeps submitted and not read, for the series that
/// submit one call per task.
pub const METG_WINDOW: usize = 10_000;

/// Runs one `metg` step of `count` tasks spinning `us` µs as `series` does.
pub fn metg_step(
    rc: &rankview::Client,
    series: metg::Series,
    us: u64,
    count: usize,
) -> rankview::Result<()> {
    let lv = rc.load_balanced_view();
    let engines: Vec<_> = rc
        .ids()
        .into_iter()
        .map(|e| rc.engine(e as i64))
        .collect::<rankview::Result<_>>()?;
    let call = |i: usize| match series {
        metg::Series::Direct => engines[i % engines.len()].apply(spin, (us,)),
        _ => lv.chunksize(1).apply(spin, (us,)),
    };
    match series {
        metg::Series::Map => {
            lv.map(spin, vec![us; count]).get()?;
        }
        metg::Series::Apply | metg::Series::Direct => {
            let mut pending = std::collections::VecDeque::with_capacity(METG_WINDOW);
            for i in 0..count {
                if pending.len() == METG_WINDOW {
                    if let Some(r) = pending.pop_front() {
                        rankview::AsyncResult::get(&r)?;
                    }
                }
                pending.push_back(call(i));
            }
            for r in pending {
                r.get()?;
            }
        }
        metg::Series::Raw => {}
    }
    Ok(())
}
