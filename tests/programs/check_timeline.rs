//! Timelines of a job as a user makes them. Run it with
//! `rankview run -n 3 --package rankview-checks --bin check_timeline -- DIR` (or `mpirun -n 3
//! target/debug/check_timeline DIR`); `tests/timeline.rs` runs it
//! on 2 and 3 ranks and reads the pictures it writes.
//!
//! Owns the checks of the records behind a picture: a direct `apply` of
//! `direct_work` on every engine (one part per engine), then a load-balanced
//! `map` of `balanced_work` over 12 items in tasks of one item (12 parts),
//! their functions, engines and times in `ar.timeline()` and
//! `rc.timeline()`, adding timelines up, and the names that collectives and
//! other requests get in the metadata. It writes `results.svg` and
//! `results.html` (the two results' timelines together) and `job.svg`
//! (`rc.timeline()`) into DIR, where the test counts lanes and bars. Prints
//! one line per check and exits non-zero unless every check held.

mod checklist;

use std::path::{Path, PathBuf};
use std::time::Duration;

use checklist::Checklist;
use rankview::{Client, Timeline};

#[rankview::remote]
fn direct_work(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

#[rankview::remote]
fn balanced_work(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// Items of the load-balanced map.
const ITEMS: usize = 12;

fn timeline_checks(rc: &Client, dir: &Path, list: &mut Checklist) {
    let n = rc.len();
    let direct = rc.all().apply(direct_work, (30,));
    let balanced = rc
        .load_balanced_view()
        .chunksize(1)
        .map(balanced_work, vec![10u64; ITEMS]);
    list.check("records_of_a_direct_result", || {
        direct.get()?;
        let t = direct.timeline();
        assert_eq!(t.len(), n);
        let engines: Vec<_> = t.records().iter().map(|r| r.engine).collect();
        assert_eq!(engines, (0..n).map(Some).collect::<Vec<_>>());
        for r in t.records() {
            assert!(
                r.function.ends_with("check_timeline::direct_work"),
                "{}",
                r.function
            );
            let (started, completed) = (r.started.ok_or("no start")?, r.completed.ok_or("no end")?);
            assert!(completed.duration_since(started)? >= Duration::from_millis(30));
            assert!(r.received.ok_or("no reply")? >= r.submitted);
            assert!(!r.stolen);
        }
        Ok(())
    });
    list.check("records_of_a_load_balanced_map", || {
        assert_eq!(balanced.get()?.len(), ITEMS);
        let t = balanced.timeline();
        assert_eq!(t.len(), ITEMS);
        for r in t.records() {
            assert!(
                r.function.ends_with("check_timeline::balanced_work"),
                "{}",
                r.function
            );
            assert!(r.engine.is_some_and(|e| e < n));
            assert!(r.started.is_some() && r.completed.is_some());
        }
        Ok(())
    });
    list.check("the_job_timeline_has_every_part", || {
        let job = rc.timeline();
        assert_eq!(job.left_out(), 0);
        assert_eq!(job.len(), n + ITEMS, "{:?}", job.records());
        let mut tasks: Vec<u64> = job.records().iter().map(|r| r.task).collect();
        tasks.sort_unstable();
        let mut expected: Vec<u64> = direct
            .timeline()
            .records()
            .iter()
            .chain(balanced.timeline().records())
            .map(|r| r.task)
            .collect();
        expected.sort_unstable();
        assert_eq!(tasks, expected);
        Ok(())
    });
    list.check("timelines_add_up_and_are_written", || {
        let mut both = direct.timeline();
        both.extend(balanced.timeline());
        let collected: Timeline = [direct.timeline(), balanced.timeline()]
            .into_iter()
            .collect();
        assert_eq!(both, collected);
        assert_eq!(both.len(), n + ITEMS);
        both.write_svg(dir.join("results.svg"))?;
        both.write_html(dir.join("results.html"))?;
        rc.timeline().write_svg(dir.join("job.svg"))?;
        match both.write_svg(dir.join("no-such-dir").join("x.svg")) {
            Err(rankview::Error::Io { what, .. }) => assert!(what.contains("no-such-dir")),
            other => return Err(format!("expected Error::Io, got {other:?}").into()),
        }
        Ok(())
    });
    list.check("collectives_and_requests_are_named", || {
        let all = rc.all();
        let scatter = all.scatter("xs", &vec![1.0f64; 10 * n]);
        scatter.get()?;
        let push = rc.engine(0)?.push("label", &"a string".to_string());
        push.get()?;
        let keys = all.keys();
        keys.get()?;
        let named = |metadata: Vec<rankview::Metadata>| -> Vec<&'static str> {
            metadata.iter().map(|m| m.function).collect()
        };
        assert_eq!(named(scatter.metadata()), vec!["scatter"; n]);
        assert_eq!(named(push.metadata()), vec!["push"]);
        assert_eq!(named(keys.metadata()), vec!["keys"; n]);
        // A gather is assembled on rank 0, without engine times: its
        // records span submission to reply.
        let gather = all.gather::<Vec<f64>>("xs");
        assert_eq!(gather.get()?.len(), 10 * n);
        assert_eq!(named(gather.metadata()), vec!["gather"; n]);
        let t = gather.timeline();
        assert!(t
            .records()
            .iter()
            .all(|r| r.started.is_none() && r.received.is_some()));
        let job = rc.timeline();
        assert_eq!(job.len(), n + ITEMS + n + 1 + n + n);
        all.clear().get()?;
        Ok(())
    });
}

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| ".".into()));
    rankview::launch(|rc| -> Result<(), String> {
        let mut list = Checklist::new("check_timeline");
        timeline_checks(rc, &dir, &mut list);
        list.finish()
    });
}
