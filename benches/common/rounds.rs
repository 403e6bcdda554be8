//! Timing in rounds for benches that write hundreds of megabytes (`benches/log.rs`,
//! `benches/replication.rs`): every round starts on fresh state with a clean page cache.

use std::time::Duration;

use crate::common::timed;

/// Runs `iters` steps in rounds of at most `round`, each on fresh state from `setup` that
/// is dropped after its round: [`timed`] per round, summed. This machine's page cache
/// takes about 1 GB of writes at memory speed and then holds writers to the disk's pace
/// (0.44 GB/s for a 5 GB `dd`), so one long run would measure the disk, not the code.
pub fn timed_rounds<S>(
    iters: u64,
    round: u64,
    mut setup: impl FnMut() -> S,
    mut step: impl FnMut(&mut S),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(round.max(1));
        total += timed(n, &mut setup, &mut step);
        left -= n;
    }
    total
}
