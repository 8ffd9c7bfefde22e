//! The shortest useful rankview program: run it with
//! `rankview run -n 3 --example quickstart`.
//!
//! Every engine squares a number and says which process it is (its host and
//! pid: nodes, containers among them, may each have their own pids, so a pid
//! alone names no process); the client checks the answers and prints them.

#[rankview::remote]
fn square_and_pid(x: u64) -> (u64, String, u32) {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    (x * x, host.trim().to_string(), std::process::id())
}

fn main() {
    rankview::launch(|rc| -> rankview::Result<()> {
        let answers = rc.all().apply_sync(square_and_pid, (12,))?;
        for (engine, (square, host, pid)) in answers.iter().enumerate() {
            println!("engine {engine} (pid {pid} on {host}): 12 * 12 = {square}");
            assert_eq!(*square, 144);
        }
        let mut processes: Vec<(&str, u32)> = answers
            .iter()
            .map(|(_, host, pid)| (host.as_str(), *pid))
            .collect();
        processes.sort();
        processes.dedup();
        assert_eq!(processes.len(), rc.len(), "every engine is its own process");
        println!("quickstart: {} engines answered", rc.len());
        Ok(())
    });
}
