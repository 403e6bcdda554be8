//! Splitting a segment whose batches overflow its relative offsets (Kafka's
//! `splitOverflowedSegment`): the batches from the first one that does not fit move to a
//! new segment based at that batch's base offset.
//!
//! streamlog never writes such a segment (its appends and its cleaner roll before an
//! offset passes `i32::MAX` beyond the base), but files from other writers may hold one,
//! and recovery must keep their records rather than cut them as a torn tail.
//!
//! Crash-safe at every step: the moved bytes are written to `<new base>.log.cleaned`,
//! synced, and renamed to `<new base>.log` (a leftover `.cleaned` file is removed by the
//! next open); only then is the old segment cut, and the cut synced. A crash between the
//! two leaves the old segment whole beside a new one that starts with the same batch: the
//! next open sees that and only cuts.

use std::path::Path;

use super::{Overflow, Segment, SegmentFile};
use crate::error::{Error, Result};
use crate::segment::CLEANED_SUFFIX;
use crate::storage::{OpenMode, Storage};

impl Segment {
    /// Moves the batches from `at` to the end of the `.log` into a new segment based at
    /// `at.base_offset` (unless an earlier split already made it), cuts them from this one,
    /// and returns the new segment, whose indexes the caller rebuilds with
    /// [`Segment::recover`]. Call it after a [`Segment::recover`] that reported `at`.
    ///
    /// Errors: [`Error::Corrupt`] when a segment at `at.base_offset` exists but does not
    /// start with the batch at `at` (the files disagree; nothing is cut).
    pub(crate) fn split_off(
        &self,
        storage: &dyn Storage,
        dir: &Path,
        at: Overflow,
        now_ms: i64,
    ) -> Result<Segment> {
        let new_path = SegmentFile::Log.path(dir, at.base_offset);
        if storage.exists(&new_path) {
            self.check_split_done(storage, &new_path, at)?;
        } else {
            let mut temp = new_path.clone().into_os_string();
            temp.push(CLEANED_SUFFIX);
            let temp = Path::new(&temp);
            self.copy_log_into(storage, temp, at.position..self.log.len()?)?;
            storage.rename(temp, &new_path)?;
            storage.sync_dir(dir)?;
        }
        self.log.set_len(at.position)?;
        // Durable now: a later flush syncs only from the recovery point's segment on, and
        // the recovery point may already lie past this one. A power loss that brought the
        // cut bytes back would leave two segments holding the same offsets.
        self.log.sync_data()?;
        Segment::open(storage, dir, at.base_offset, self.limits.clone(), now_ms)
    }

    /// Whether the segment at `path` starts with this segment's batch at `at`: the sign of
    /// a split that a crash interrupted before its cut.
    fn check_split_done(&self, storage: &dyn Storage, path: &Path, at: Overflow) -> Result<()> {
        let mut header = [0u8; crate::record::BATCH_OVERHEAD];
        let read = self.read_at(&mut header, at.position)?;
        let other = storage.open(path, OpenMode::Existing)?;
        let mut theirs = [0u8; crate::record::BATCH_OVERHEAD];
        let their_read = crate::storage::read_fully_at(&*other, &mut theirs, 0)?;
        if read == header.len() && their_read == theirs.len() && header == theirs {
            return Ok(());
        }
        Err(Error::Corrupt {
            path: self.log_path().to_path_buf(),
            position: at.position,
            reason: format!(
                "the batch at offset {} overflows this segment, and the segment {} that \
                 should hold it starts with another batch",
                at.base_offset,
                path.display()
            ),
        })
    }
}
