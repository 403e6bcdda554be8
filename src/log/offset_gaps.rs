//! `.offset-gaps`: an empty file marking a log that may hold offset gaps — batches that
//! do not start where the previous one ended. Compaction makes them, in this log or in a
//! leader's log that this one copies as a follower.
//!
//! How strictly a log's offsets are checked depends on it (`SegmentLimits::offset_gaps`):
//! a log that never held gaps needs every batch to start exactly where the previous one
//! ended, which catches damage to a base offset (outside the batch CRC); a log that may
//! hold them needs offsets to increase only, as Kafka does. The current `cleanup.policy`
//! cannot tell on its own: it may go from `compact` to `delete` at any time (Kafka allows
//! it) and the compacted segments stay. So the fact is persisted:
//! - a log opened under a compacting policy creates the marker during the open, durably
//!   (file synced, then the directory), before anything can write a gap: compaction and
//!   follower appends run only once the open has returned;
//! - the marker is never removed, so a log that compacted once keeps accepting its gaps
//!   whatever its policy becomes;
//! - a replica whose leader's log may hold gaps (its topic compacted, then switched to
//!   `delete` before this replica was created) gets the marker while open, durably, just
//!   before it writes the first gap it copies; only then does its in-memory setting (one
//!   for all its segments) turn on;
//! - a log without the marker whose directory holds `cleaner-offset.checkpoint` was
//!   compacted before the marker existed: it counts as marked, and gets the marker. (An
//!   older follower log that copied gaps without compacting itself has neither; its first
//!   open under a compacting policy marks it.)
//!
//! A log without the marker never held a gap (none can be written before the marker is
//! durable), so keeping the strict check for it loses nothing that is stored.

use std::path::Path;

use super::Inner;
use super::cleaner::CLEANER_CHECKPOINT_FILE;
use crate::config::CleanupPolicy;
use crate::error::Result;
use crate::storage::{OpenMode, Storage};

/// Name of the marker inside the partition directory.
pub(crate) const OFFSET_GAPS_FILE: &str = ".offset-gaps";

/// Whether the log in `dir`, opening under `policy`, may hold offset gaps: its policy
/// compacts, or it was compacted under an earlier one. When it may, the marker is on disk
/// (durably) by the time this returns.
pub(super) fn may_hold_gaps(
    storage: &dyn Storage,
    dir: &Path,
    policy: CleanupPolicy,
) -> Result<bool> {
    let marker = dir.join(OFFSET_GAPS_FILE);
    if storage.exists(&marker) {
        return Ok(true);
    }
    let compacted_before = storage.exists(&dir.join(CLEANER_CHECKPOINT_FILE));
    if !policy.allows_offset_gaps() && !compacted_before {
        return Ok(false);
    }
    write_marker(storage, dir, |synced| synced)?;
    Ok(true)
}

/// Writes the marker durably: the file, synced, then the directory, synced. `synced`
/// sees each sync's result before it is passed on (a live log closes on a failed one).
fn write_marker(
    storage: &dyn Storage,
    dir: &Path,
    synced: impl Fn(Result<()>) -> Result<()>,
) -> Result<()> {
    let file = storage.open(&dir.join(OFFSET_GAPS_FILE), OpenMode::Create)?;
    synced(file.sync_data())?;
    drop(file);
    synced(storage.sync_dir(dir))
}

impl Inner {
    /// Lets this open log hold offset gaps from now on (a replica of a leader whose log
    /// may hold them): the marker is made durable first, and only then does the setting
    /// turn on, for every segment at once. No gap is written before a reopen would accept
    /// it. A failed sync closes the log. Caller holds `writer`.
    pub(super) fn allow_offset_gaps_locked(&self) -> Result<()> {
        if self.limits.offset_gaps.allowed() {
            return Ok(());
        }
        write_marker(&*self.env.storage, &self.dir, |synced| {
            self.poison_on_failure(synced)
        })?;
        self.limits.offset_gaps.allow();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::SimStorage;

    #[test]
    fn the_marker_is_written_durably_under_a_compacting_policy_and_kept() {
        let sim = SimStorage::new();
        let dir = Path::new("/p");
        crate::storage::create_dir_all_durably(&sim, dir).unwrap();
        assert!(!may_hold_gaps(&sim, dir, CleanupPolicy::Delete).unwrap());
        assert!(!sim.exists(&dir.join(OFFSET_GAPS_FILE)));

        let dir_syncs = sim.sync_dir_count();
        assert!(may_hold_gaps(&sim, dir, CleanupPolicy::CompactAndDelete).unwrap());
        assert_eq!(sim.sync_dir_count(), dir_syncs + 1);
        let after_crash = sim.power_loss(7);
        assert!(may_hold_gaps(&after_crash, dir, CleanupPolicy::Delete).unwrap());
    }

    #[test]
    fn a_cleaner_checkpoint_without_the_marker_counts_as_compacted() {
        let sim = SimStorage::new();
        let dir = Path::new("/p");
        crate::storage::create_dir_all_durably(&sim, dir).unwrap();
        sim.write_file(dir.join(CLEANER_CHECKPOINT_FILE), b"");
        assert!(may_hold_gaps(&sim, dir, CleanupPolicy::Delete).unwrap());
        assert!(sim.exists(&dir.join(OFFSET_GAPS_FILE)));
    }
}
