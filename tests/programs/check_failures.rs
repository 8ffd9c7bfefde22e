//! How a job ends when its client fails. Run it with
//! `rankview run -n 3 --package rankview-checks --bin check_failures -- MODE` (or `mpirun -n 3
//! target/debug/check_failures MODE`); `tests/failures.rs` runs
//! every mode on 2, 3 and 5 ranks and checks status, time and messages.
//!
//! MODE is one of:
//! - `err`: the client returns `Err` while a 60 s task runs on every engine;
//! - `panic`: the client panics while a 60 s task runs on every engine;
//! - `remote_err`: the client propagates a task's panic with `?`;
//! - `engine_panic_ok`: a task panics, the client handles the error and ends
//!   normally (status 0);
//! - `section_panic_engine`: a raw MPI section panics on rank 1 (an internal
//!   failure of an engine's MPI thread) while a 60 s task runs there;
//! - `section_panic_engine_idle`: the same section right after a short task
//!   on every engine, so that the execution thread, polling MPI while it
//!   waits for work, is the one that runs it (a panic in a helper's pass);
//! - `section_panic_root`: a raw MPI section panics on rank 0 (an internal
//!   failure of the controller thread) while a 60 s task runs on every
//!   engine and the client waits for it;
//! - `long_task`: prints `check_failures: pids P0 P1 ...` (rank 0's pid, then
//!   each engine's, asked with a remote `getpid`), then waits for a 60 s task
//!   on every engine: the job to kill (`tests/faults.rs`);
//! - `dies_sending`: prints the pids as `long_task` does, then asks the
//!   last engine for a 256 MiB string and, right behind it, to kill itself
//!   with SIGKILL: the engine dies while its reply's attachment is still
//!   being sent (or just before), and rank 0 is waiting for it;
//! - `quiet_client`: the client sleeps 60 s without calling rankview, then
//!   does one apply on every engine and ends normally;
//! - `section_only_on_rank_0`: a raw MPI section registered on rank 0 only,
//!   so the engines cannot take part when rank 0 starts it (rank 0 is
//!   already inside: an engine-side failure in a collective).
//!
//! The program only produces the situations; what the job must do about them
//! (exit non-zero quickly, say why) is asserted by the integration test.

use std::time::Duration;

/// The client's error type: rankview errors and messages alike.
type Failure = Box<dyn std::error::Error>;

#[rankview::remote]
fn sleep_for(seconds: f64) -> f64 {
    std::thread::sleep(Duration::from_secs_f64(seconds));
    seconds
}

#[rankview::remote]
fn getpid() -> u32 {
    std::process::id()
}

/// A string of `mib` MiB: a reply whose value travels as an attachment.
#[rankview::remote]
fn large_string(mib: usize) -> String {
    "x".repeat(mib << 20)
}

/// Kills this engine's process with SIGKILL, as the OOM killer would.
#[rankview::remote]
fn die() -> u8 {
    // SAFETY: kill(2) on this process's own pid has no memory-safety
    // preconditions; SIGKILL ends the process here.
    unsafe {
        libc::kill(std::process::id() as libc::pid_t, libc::SIGKILL);
    }
    0
}

#[rankview::remote]
fn boom() -> u8 {
    panic!("engine-side panic from check_failures")
}

/// A raw MPI section that panics on the rank named by the mode.
fn panicking_section(mode: &str) -> impl FnMut(&rankview::World) + Send + 'static {
    use rankview::mpi::topology::Communicator;
    let target = match mode {
        "section_panic_engine" | "section_panic_engine_idle" => Some(1),
        "section_panic_root" => Some(0),
        _ => None,
    };
    move |world| {
        if Some(world.rank()) == target {
            panic!(
                "deliberate panic in an MPI section on rank {}",
                world.rank()
            );
        }
    }
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let mut launch = rankview::Launch::new().mpi_section("maybe_panic", panicking_section(&mode));
    // `section_only_on_rank_0`: the engines cannot take part in a section
    // rank 0 starts (an engine-side failure inside a collective).
    let rank_0 = ["OMPI_COMM_WORLD_RANK", "PMI_RANK"]
        .iter()
        .any(|v| std::env::var(v).as_deref() == Ok("0"));
    if mode == "section_only_on_rank_0" && rank_0 {
        launch = launch.mpi_section("only_on_rank_0", |_| {});
    }
    launch.run(|rc| -> Result<(), Failure> {
        match mode.as_str() {
            "section_only_on_rank_0" => {
                let long = rc.all().apply(sleep_for, (60.0,));
                println!(
                    "check_failures: a 60 s task is running on {} engines",
                    rc.len()
                );
                rc.mpi_section("only_on_rank_0").get()?;
                long.get()?;
                Err("the job outlived engines that could not join a section".into())
            }
            "section_panic_engine" | "section_panic_root" => {
                let long = rc.all().apply(sleep_for, (60.0,));
                println!(
                    "check_failures: a 60 s task is running on {} engines",
                    rc.len()
                );
                let section = rc.mpi_section("maybe_panic");
                long.get()?;
                section.get()?;
                Err("the job outlived a panicking MPI section".into())
            }
            "section_panic_engine_idle" => {
                for _ in 0..3 {
                    rc.all().apply_sync(sleep_for, (0.0,))?;
                }
                rc.mpi_section("maybe_panic").get()?;
                Err("the job outlived a panicking MPI section".into())
            }
            "err" | "panic" => {
                let long = rc.all().apply(sleep_for, (60.0,));
                if long.wait_timeout(Duration::from_millis(300)) {
                    return Err("the 60 s task ended early".into());
                }
                println!(
                    "check_failures: a 60 s task is running on {} engines",
                    rc.len()
                );
                if mode == "err" {
                    return Err("deliberate failure (mode err)".into());
                }
                panic!("deliberate panic (mode panic)");
            }
            "remote_err" => {
                rc.engine(-1)?.apply_sync(boom, ())?;
                Err("the panicking task succeeded".into())
            }
            "engine_panic_ok" => {
                match rc.all().apply(boom, ()).get() {
                    Err(e) => println!("check_failures: engine panic reported: {e}"),
                    Ok(v) => return Err(format!("the panicking task returned {v:?}").into()),
                }
                let answers = rc.all().apply_sync(sleep_for, (0.0,))?;
                println!("check_failures: {} engines still answer", answers.len());
                Ok(())
            }
            "long_task" | "dies_sending" => {
                let engines = rc.all().apply_sync(getpid, ())?;
                let pids: Vec<String> = std::iter::once(std::process::id())
                    .chain(engines)
                    .map(|pid| pid.to_string())
                    .collect();
                println!("check_failures: pids {}", pids.join(" "));
                if mode == "dies_sending" {
                    let last = rc.engine(-1)?;
                    let large = last.apply(large_string, (256,));
                    let dead = last.apply(die, ());
                    let got = large.get().map(|s| s.len());
                    let _ = dead.get();
                    return Err(format!("the job outlived an engine killed itself: {got:?}").into());
                }
                rc.all().apply(sleep_for, (60.0,)).get()?;
                println!("check_failures: the 60 s task ended");
                Ok(())
            }
            "quiet_client" => {
                println!("check_failures: the client sleeps 60 s");
                std::thread::sleep(Duration::from_secs(60));
                let answers = rc.all().apply_sync(getpid, ())?;
                println!(
                    "check_failures: after 60 s of quiet, {} engines answered",
                    answers.len()
                );
                Ok(())
            }
            other => Err(format!(
                "unknown mode {other:?}: use err, panic, remote_err, engine_panic_ok, \
                 section_panic_engine, section_panic_engine_idle, section_panic_root, long_task, dies_sending or quiet_client"
            )
            .into()),
        }
    });
}
