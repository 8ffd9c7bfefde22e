//! The ranks of a rankview job: rank 0 is the controller, every other rank
//! an engine, so a job has at least [`MIN_RANKS`].
//!
//! Below everything that checks a rank count: `cli` (`-n`), `allocation`
//! (an allocation's size) and `batch::script` (a job script's size).

/// The fewest ranks a rankview job can have: one controller, one engine.
pub const MIN_RANKS: u32 = 2;

/// `ranks` itself if a job can have that many, else why not.
pub fn check(ranks: u32) -> Result<u32, String> {
    if ranks < MIN_RANKS {
        return Err(format!(
            "rankview needs at least {MIN_RANKS} ranks: rank 0 is the controller, the others are engines"
        ));
    }
    Ok(ranks)
}
