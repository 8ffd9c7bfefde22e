//! The shortest useful rankview program: run it with
//! `rankview run -n 3 --example quickstart`.
//!
//! Every engine squares a number and reports its process id; the client
//! checks the answers and prints them.

#[rankview::remote]
fn square_and_pid(x: u64) -> (u64, u32) {
    (x * x, std::process::id())
}

fn main() {
    rankview::launch(|rc| -> rankview::Result<()> {
        let answers = rc.all().apply_sync(square_and_pid, (12,))?;
        for (engine, (square, pid)) in answers.iter().enumerate() {
            println!("engine {engine} (pid {pid}): 12 * 12 = {square}");
            assert_eq!(*square, 144);
        }
        let mut pids: Vec<u32> = answers.iter().map(|a| a.1).collect();
        pids.sort();
        pids.dedup();
        assert_eq!(pids.len(), rc.len(), "every engine is its own process");
        println!("quickstart: {} engines answered", rc.len());
        Ok(())
    });
}
