//! The right to run a real MPI job, shared by the `rankview` package's test
//! harness (`tests/common`) and the launcher's (`launcher/tests/common`,
//! which includes this file by path): one job per process (a mutex) and one
//! per machine (an exclusive `flock` on `<target>/rankview-mpi-tests.lock`),
//! so that jobs never overlap whether tests run as threads (`cargo test`)
//! or as processes (`cargo nextest`). Where the target directory is, is
//! left to each harness.

use std::fs::File;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// Held while a test runs an MPI job; released when dropped.
pub struct JobLock {
    _file: File,
    _thread: MutexGuard<'static, ()>,
}

impl JobLock {
    /// Waits for the right to run an MPI job; `target` is the cargo target
    /// directory, where the lock file lives.
    pub fn acquire_in(target: &Path) -> JobLock {
        static IN_PROCESS: Mutex<()> = Mutex::new(());
        let thread = IN_PROCESS.lock().unwrap_or_else(|p| p.into_inner());
        let path = target.join("rankview-mpi-tests.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("cannot open the job lock {}: {e}", path.display()));
        // File::lock is stable since Rust 1.89; the tests need that toolchain
        // even though the crates' MSRV is older.
        #[allow(clippy::incompatible_msrv)]
        file.lock()
            .unwrap_or_else(|e| panic!("cannot lock {}: {e}", path.display()));
        JobLock {
            _file: file,
            _thread: thread,
        }
    }
}
