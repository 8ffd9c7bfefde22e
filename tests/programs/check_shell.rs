//! Shell commands on engines as a user runs them. Run it with
//! `rankview run -n 3 --package rankview-checks --bin check_shell` (or `mpirun -n 3
//! target/debug/check_shell`); `tests/shell.rs` runs it on 2 and
//! 3 ranks.
//!
//! Owns the checks of `view.shell` and `shell_status`: output of every
//! engine in target order, a failing command (`Error::Shell` naming the
//! engine, the status and stderr), statuses returned when asked, a missing
//! command (127), a signal, 1 MiB and more of output intact and in order,
//! `display_outputs`' `[stdout:N]` blocks, and a command's background
//! process not writing into a later task's output; the metadata keeps the
//! capture limit's worth (`RANKVIEW_CAPTURE_LIMIT` in the job's environment,
//! in bytes or `K`). With the argument `no_capture` (run with
//! `RANKVIEW_NO_CAPTURE=1` on the engines) it checks instead that tasks'
//! output stays on the engines' own streams and shell output is still
//! whole. Prints one line per check and exits non-zero unless every check
//! held.

mod checklist;

use std::time::Duration;

use checklist::{Checklist, Outcome};
use rankview::{Client, Error, ShellStatus};

/// The MPI rank as the shell sees it (Open MPI or MPICH).
const RANK: &str = "${OMPI_COMM_WORLD_RANK:-$PMI_RANK}";

#[rankview::remote]
fn quiet() -> u8 {
    std::thread::sleep(Duration::from_millis(700));
    7
}

/// The bytes the engines keep of each stream per task: the job's
/// `RANKVIEW_CAPTURE_LIMIT` (in bytes, or in KiB with a `K`), else 1 MiB.
fn capture_limit() -> Outcome<usize> {
    let Ok(text) = std::env::var("RANKVIEW_CAPTURE_LIMIT") else {
        return Ok(1 << 20);
    };
    Ok(match text.strip_suffix('K') {
        Some(kib) => kib.parse::<usize>()? << 10,
        None => text.parse()?,
    })
}

fn shell_checks(rc: &Client, list: &mut Checklist) {
    let n = rc.len();
    list.check("every_engine_in_target_order", || {
        let reversed: Vec<usize> = (0..n).rev().collect();
        let outputs = rc
            .view(reversed.clone())?
            .shell(&format!("echo {RANK}; echo to-stderr >&2"))
            .get()?;
        let engines: Vec<usize> = outputs.iter().map(|o| o.engine).collect();
        assert_eq!(engines, reversed);
        for o in &outputs {
            assert_eq!(
                o.stdout,
                format!("{}\n", o.engine + 1),
                "engine {}",
                o.engine
            );
            assert_eq!(o.stderr, "to-stderr\n");
            assert_eq!(o.status, ShellStatus::Exited(0));
        }
        let one = rc.engine(-1)?.shell("echo one").get()?;
        assert_eq!((one.engine, one.stdout.as_str()), (n - 1, "one\n"));
        Ok(())
    });
    list.check("a_failing_command_names_engine_and_status", || {
        let last = n - 1;
        match rc
            .engine(-1)?
            .shell("echo partial; echo it broke >&2; exit 3")
            .get()
        {
            Err(e @ Error::Shell { .. }) => {
                let text = e.to_string();
                let Error::Shell {
                    engine,
                    status,
                    stderr,
                } = e
                else {
                    unreachable!()
                };
                assert_eq!((engine, status), (last, ShellStatus::Exited(3)));
                assert_eq!(stderr, "it broke");
                assert!(
                    text.contains(&format!("engine {last}")) && text.contains("status 3"),
                    "{text}"
                );
            }
            other => return Err(format!("expected Error::Shell, got {other:?}").into()),
        }
        // A view of several engines: one error per engine, in target order
        // (a composite even when the view has one engine).
        match rc.all().shell("exit 3").get() {
            Err(Error::Composite(errors)) => {
                let engines: Vec<_> = errors.iter().map(|e| e.engine()).collect();
                assert_eq!(engines, (0..n).map(Some).collect::<Vec<_>>());
                assert!(errors.iter().all(|e| matches!(
                    e,
                    Error::Shell {
                        status: ShellStatus::Exited(3),
                        ..
                    }
                )));
            }
            other => return Err(format!("expected one error per engine, got {other:?}").into()),
        }
        // The engines keep working.
        assert_eq!(rc.all().shell("true").get()?.len(), n);
        Ok(())
    });
    list.check("statuses_when_asked", || {
        let outputs = rc
            .all()
            .shell_status(&format!("echo out; exit $(({RANK} + 40))"))
            .get()?;
        for o in &outputs {
            let code = i32::try_from(o.engine + 41)?;
            assert_eq!(o.status, ShellStatus::Exited(code));
            assert_eq!(o.stdout, "out\n");
        }
        let killed = rc.engine(0)?.shell_status("kill -9 $$").get()?;
        assert_eq!(killed.status, ShellStatus::Signalled(9));
        assert!(matches!(
            rc.engine(0)?.shell("kill -9 $$").get(),
            Err(Error::Shell {
                status: ShellStatus::Signalled(9),
                ..
            })
        ));
        Ok(())
    });
    list.check("a_missing_command_is_127", || {
        match rc.engine(0)?.shell("rankview-no-such-command --now").get() {
            Err(Error::Shell {
                engine: 0,
                status,
                stderr,
            }) => {
                assert_eq!(status, ShellStatus::Exited(127));
                assert!(stderr.contains("not found"), "{stderr}");
            }
            other => return Err(format!("expected exit 127, got {other:?}").into()),
        }
        Ok(())
    });
    list.check("one_mib_and_more_intact_in_order", || {
        // seq 1 300000 is 1,988,895 bytes: past the 1 MiB capture limit.
        let expected: String = (1..=300_000).map(|i| format!("{i}\n")).collect();
        let limit = capture_limit()?;
        assert!(expected.len() > limit);
        let ar = rc.all().shell("seq 1 300000; seq 1 5 >&2");
        for o in ar.get()? {
            assert!(
                o.stdout == expected,
                "engine {}: {} bytes",
                o.engine,
                o.stdout.len()
            );
            assert_eq!(o.stderr, "1\n2\n3\n4\n5\n");
        }
        // The metadata keeps exactly the last `limit` bytes, as for any
        // task, after a line saying how much was cut.
        let cut = expected.len() - limit;
        let kept = format!("[rankview: {cut} earlier bytes cut]\n{}", &expected[cut..]);
        for m in ar.metadata() {
            assert!(
                m.stdout == kept,
                "engine {}: the metadata kept {} bytes, not the last {limit} and the line",
                m.engine,
                m.stdout.len()
            );
            assert_eq!(m.stderr, "1\n2\n3\n4\n5\n");
        }
        Ok(())
    });
    list.check("display_outputs_blocks", || {
        let ar = rc
            .all()
            .shell(&format!("echo hello from {RANK}; echo warn {RANK} >&2"));
        ar.get()?;
        let mut expected = String::new();
        for e in 0..n {
            expected.push_str(&format!("[stdout:{e}] hello from {}\n", e + 1));
        }
        for e in 0..n {
            expected.push_str(&format!("[stderr:{e}] warn {}\n", e + 1));
        }
        assert_eq!(ar.outputs(), expected);
        ar.display_outputs();
        Ok(())
    });
    list.check("a_background_process_stays_out_of_later_tasks", || {
        // A background process writes a line 0.3 s after its command, to
        // the command's stdout (its stderr sent away), then to its stderr
        // (its stdout sent away). It holds that pipe of the command, so
        // the task waits for it and the line is this command's output; a
        // task right behind it, running 0.7 s, gets none of it (it would,
        // were the command writing into the engine's own descriptors: its
        // task would end at once).
        let e0 = rc.engine(0)?;
        for (command, on_stderr) in [
            ("(sleep 0.3; echo late) 2>/dev/null &", false),
            ("(sleep 0.3; echo late >&2) >/dev/null &", true),
        ] {
            let ar = e0.shell(command);
            let later = e0.apply(quiet, ());
            assert_eq!(later.get()?, 7);
            let meta = &later.metadata()[0];
            assert!(
                meta.stdout.is_empty() && meta.stderr.is_empty(),
                "a later task's output: {:?} {:?}",
                meta.stdout,
                meta.stderr
            );
            let out = ar.get()?;
            let (line, other) = match on_stderr {
                false => (&out.stdout, &out.stderr),
                true => (&out.stderr, &out.stdout),
            };
            assert_eq!((line.as_str(), other.as_str()), ("late\n", ""));
            assert!(ar.elapsed() >= Duration::from_millis(300));
        }
        Ok(())
    });
    list.check("shell_parts_are_named_in_the_metadata", || {
        let ar = rc.all().shell("true");
        ar.get()?;
        for m in ar.metadata() {
            assert!(m.function.ends_with("shell_command"), "{}", m.function);
        }
        Ok(())
    });
}

/// Writes a line to this engine's stdout and one to its stderr, each in
/// one write (the engines share the job's streams); returns the engine id.
#[rankview::remote]
fn announce() -> rankview::TaskResult<usize> {
    use std::io::Write;
    let engine = rankview::globals().engine()?;
    std::io::stdout().write_all(format!("engine {engine}: a line on stdout\n").as_bytes())?;
    std::io::stderr().write_all(format!("engine {engine}: a line on stderr\n").as_bytes())?;
    Ok(engine)
}

/// With `RANKVIEW_NO_CAPTURE` set on the engines: their output is theirs.
fn no_capture_checks(rc: &Client, list: &mut Checklist) {
    list.check("output_stays_on_the_engines_streams", || {
        let ar = rc.all().apply(announce, ());
        assert_eq!(ar.get()?, rc.ids());
        for m in ar.metadata() {
            assert!(
                m.stdout.is_empty() && m.stderr.is_empty(),
                "engine {} captured {:?} {:?}",
                m.engine,
                m.stdout,
                m.stderr
            );
        }
        Ok(())
    });
    list.check("shell_output_is_whole_without_capture", || {
        let ar = rc.all().shell("echo out; echo err >&2");
        for o in ar.get()? {
            assert_eq!((o.stdout.as_str(), o.stderr.as_str()), ("out\n", "err\n"));
        }
        assert!(ar.metadata().iter().all(|m| m.stdout.is_empty()));
        Ok(())
    });
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    rankview::launch(|rc| -> Result<(), String> {
        let mut list = Checklist::new("check_shell");
        match mode.as_str() {
            "no_capture" => no_capture_checks(rc, &mut list),
            _ => shell_checks(rc, &mut list),
        }
        list.finish()
    });
}
