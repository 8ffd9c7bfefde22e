//! The `startup` workload: from starting a job to the first `apply_sync`
//! answered by every engine, against a raw MPI program's start to after
//! `MPI_Init` + `MPI_Barrier`. It starts its own jobs of this program
//! (`--startup-child raw|rankview`), so it runs alone and not under an MPI
//! launcher.

use rankview::mpi::collective::CommunicatorCollectives;
use rankview::mpi::topology::Communicator;

use crate::tasks::noop;

/// Job sizes of the `startup` workload.
pub const STARTUP_RANKS: &[usize] = &[2, 4, 8, 16, 32];
/// Jobs per size and side.
pub const STARTUP_JOBS: usize = 3;

/// Microseconds since the Unix epoch (comparable across the processes of
/// one machine).
pub fn unix_us() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

/// One job of the `startup` workload (`--startup-child raw|rankview`):
/// rank 0 prints when the job is ready.
pub fn startup_child(mode: &str) {
    if mode == "raw" {
        let Some(universe) = rankview::mpi::initialize() else {
            eprintln!("bench: MPI was already initialized");
            std::process::exit(1);
        };
        let world = universe.world();
        world.barrier();
        if world.rank() == 0 {
            println!("STARTUP_DONE {}", unix_us());
        }
        return;
    }
    rankview::launch(|rc| -> rankview::Result<()> {
        rc.all().apply_sync(noop, ())?;
        println!("STARTUP_DONE {}", unix_us());
        Ok(())
    });
}

/// Starts one startup job of `ranks` ranks; seconds from starting the
/// launcher to rank 0's report.
pub fn startup_job(mpiexec: &str, openmpi: bool, ranks: usize, mode: &str) -> Result<f64, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut command = std::process::Command::new(mpiexec);
    if openmpi {
        command
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .args(["--oversubscribe", "--bind-to", "none"]);
    }
    command
        .args(["-n", &ranks.to_string()])
        .arg(&exe)
        .args(["--startup-child", mode]);
    let start = unix_us();
    let output = command
        .output()
        .map_err(|e| format!("cannot run {mpiexec}: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let done: u128 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("STARTUP_DONE ")?.trim().parse().ok())
        .ok_or_else(|| {
            format!(
                "{mode} job of {ranks} ranks did not report ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
    Ok(done.saturating_sub(start) as f64 / 1e6)
}

/// The `startup` workload: jobs of every size, raw and rankview
/// alternating; one line per size.
pub fn startup(json: bool) -> Result<(), String> {
    if [
        "OMPI_COMM_WORLD_SIZE",
        "PMI_SIZE",
        "PMIX_RANK",
        "SLURM_PROCID",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some())
    {
        return Err(
            "the startup workload starts its own jobs: run it alone, not under an MPI \
                    launcher (target/release/examples/bench --workload startup)"
                .into(),
        );
    }
    let mpiexec = std::env::var("MPIEXEC").unwrap_or_else(|_| "mpirun".into());
    let openmpi = std::process::Command::new(&mpiexec)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("Open MPI"))
        .unwrap_or(false);
    let median_of = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for &ranks in STARTUP_RANKS {
        let (mut ours, mut raw) = (Vec::new(), Vec::new());
        for _ in 0..STARTUP_JOBS {
            raw.push(startup_job(&mpiexec, openmpi, ranks, "raw")?);
            ours.push(startup_job(&mpiexec, openmpi, ranks, "rankview")?);
        }
        let (ours, raw) = (median_of(ours), median_of(raw));
        if json {
            println!(
                "{{\"workload\":\"startup\",\"ranks\":{ranks},\"rankview_s\":{ours:.3},\"raw_s\":{raw:.3},\"added_s\":{:.3}}}",
                ours - raw
            );
        } else {
            println!(
                "startup {ranks:>3} ranks   rankview {ours:>7.3} s   raw MPI {raw:>7.3} s   added {:>7.3} s",
                ours - raw
            );
        }
    }
    Ok(())
}
