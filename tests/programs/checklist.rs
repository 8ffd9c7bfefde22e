//! The checklist of the MPI test programs in `tests/programs/`.
//!
//! A program's client runs its checks through a [`Checklist`]: each check
//! is a closure that returns `Ok(())`, an error, or panics (an `assert!`),
//! or returns [`skip`] when the job cannot test it (two engines are needed
//! and there is one); the checklist prints one line per check (`ok: NAME`,
//! `FAIL: NAME: why` or `skip: NAME: why`) and a summary (`PROGRAM: N
//! passed, M failed, K skipped`), and [`Checklist::finish`] turns any
//! failure into an `Err`, so that the job exits non-zero. What each check
//! asserts is the program's business; which checks must pass and which may
//! be skipped is the integration test's (`Run::assert_checks` in
//! `tests/common`), so that a check never passes by doing nothing.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// What a check returns: `?` works on rankview errors and on strings.
pub type Outcome<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// The checks run so far and how they ended.
pub struct Checklist {
    program: &'static str,
    passed: usize,
    skipped: usize,
    failed: Vec<String>,
}

/// Why a check did not run: what [`skip`] returns.
#[derive(Debug)]
struct Skipped(String);

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Skipped {}

/// What a check returns when this job cannot test it, saying why: the
/// check is reported as `skip: NAME: why`, not as passed.
#[allow(dead_code)]
pub fn skip(why: &str) -> Outcome {
    Err(Box::new(Skipped(why.to_string())))
}

impl Checklist {
    /// An empty checklist for the program called `program`.
    pub fn new(program: &'static str) -> Self {
        Checklist {
            program,
            passed: 0,
            skipped: 0,
            failed: Vec::new(),
        }
    }

    /// Runs the check `name` and prints its line.
    pub fn check(&mut self, name: &str, body: impl FnOnce() -> Outcome) {
        let why = match catch_unwind(AssertUnwindSafe(body)) {
            Ok(Ok(())) => {
                println!("ok: {name}");
                self.passed += 1;
                return;
            }
            Ok(Err(error)) if error.is::<Skipped>() => {
                println!("skip: {name}: {error}");
                self.skipped += 1;
                return;
            }
            Ok(Err(error)) => error.to_string(),
            Err(payload) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-string panic".into());
                format!("panicked: {message}")
            }
        };
        println!("FAIL: {name}: {}", why.replace('\n', "\n    "));
        self.failed.push(name.to_string());
    }

    /// Prints the summary; `Err` naming the failed checks if there are any.
    pub fn finish(self) -> Result<(), String> {
        println!(
            "{}: {} passed, {} failed, {} skipped",
            self.program,
            self.passed,
            self.failed.len(),
            self.skipped
        );
        if self.failed.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} of {} checks failed: {}",
                self.failed.len(),
                self.passed + self.failed.len(),
                self.failed.join(", ")
            ))
        }
    }
}

/// `Ok(error)` when `r` failed as `want` says, else why not: for checks
/// that expect a particular error.
#[allow(dead_code)]
pub fn expect_err<T: std::fmt::Debug>(
    r: rankview::Result<T>,
    want: impl Fn(&rankview::Error) -> bool,
) -> Result<rankview::Error, String> {
    match r {
        Err(e) if want(&e) => Ok(e),
        other => Err(format!("unexpected: {other:?}")),
    }
}

/// Polls `ready` until it says true; an error naming `what` when it fails
/// or has not said so within 30 s. For checks that wait for a state (a
/// task started, a steal made) instead of sleeping.
#[allow(dead_code)]
pub fn wait_until(what: &str, mut ready: impl FnMut() -> Outcome<bool>) -> Outcome {
    let start = std::time::Instant::now();
    while !ready()? {
        if start.elapsed() > std::time::Duration::from_secs(30) {
            return Err(format!("waited 30 s for {what}").into());
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Ok(())
}

/// What `f` wrote to this process's stderr (descriptor 2, pointed at a
/// temporary file meanwhile): for checks of what the library reports there.
#[allow(dead_code)]
pub fn stderr_of(f: impl FnOnce()) -> Outcome<String> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut file = tempfile::tempfile()?;
    std::io::stderr().flush()?;
    let saved = nix::unistd::dup(std::io::stderr())?;
    nix::unistd::dup2_stderr(&file)?;
    let outcome = catch_unwind(AssertUnwindSafe(f));
    let _ = std::io::stderr().flush();
    nix::unistd::dup2_stderr(&saved)?;
    if let Err(payload) = outcome {
        std::panic::resume_unwind(payload);
    }
    file.seek(SeekFrom::Start(0))?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    Ok(text)
}
