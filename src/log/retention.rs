//! Retention: deleting a partition's oldest segments by time (`retention.ms`), by size
//! (`retention.bytes`) and below the log start offset, by Kafka's rules, and removing their
//! files after `file.delete.delay.ms`.
//!
//! Rules (Kafka's `UnifiedLog.deleteOldSegments`), in this order:
//! 1. log start: a segment whose upper bound (the next segment's base, or the log end for
//!    the last one) is ≤ the log start offset; whatever the `cleanup.policy`;
//! 2. size (only when the policy deletes): oldest segments go while
//!    `total size − retention.bytes ≥ the segment's size`;
//! 3. time (only when the policy deletes): `now − largest timestamp > retention.ms`. A
//!    segment without timestamps counts from its last append, truncation, creation or
//!    load ([`Segment::largest_timestamp`]).
//!
//! Each rule scans from the oldest segment and stops at the first that must stay, so a
//! kept segment also protects the newer ones behind it. Only segments whose upper bound is
//! ≤ the high watermark are candidates, and an empty last segment never is. When the
//! active segment is to go, an empty segment is rolled at the log end first: the log keeps
//! at least one segment and its end offset never moves back. Afterwards the log start
//! offset moves up to the first remaining segment's base.
//!
//! Deletion is asynchronous, like Kafka's: the log start offset moves and is checkpointed,
//! the segments leave the segment map, and their files are renamed `*.deleted` (`.log`
//! first) oldest segment first, then the directory is synced. Readers that already hold a
//! segment keep reading it through their open handles. The renamed files are removed once
//! `file.delete.delay.ms` has passed, by the first deletion or [`Partition::enforce_retention`]
//! call after that, or when the log closes; whatever is left (a crash, a failed removal) is
//! removed when the log is next opened, before anything else is loaded.
//!
//! Crash safety: every step leaves files that open to either the log before the call or
//! the log after it, or in between — a suffix of the old segments, because segments are
//! renamed oldest first and a segment without its `.log` is no segment at all. A log start
//! checkpointed ahead of the files is harmless: opening takes the larger of the two, and
//! the next pass deletes the segments below it.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use parking_lot::Mutex;

use super::{Inner, Partition};
use crate::config::CleanupPolicy;
use crate::error::Result;
use crate::segment::{DELETED_SUFFIX, Segment};
use crate::storage::Storage;

/// What one [`Partition::enforce_retention`] call deleted, by rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionOutcome {
    /// Segments deleted because they lay wholly below the log start offset.
    pub log_start_segments: usize,
    /// Bytes of `.log` in those segments.
    pub log_start_bytes: u64,
    /// Segments deleted because the log was larger than `retention.bytes`.
    pub size_segments: usize,
    /// Bytes of `.log` in those segments.
    pub size_bytes: u64,
    /// Segments deleted because their newest record was older than `retention.ms`.
    pub time_segments: usize,
    /// Bytes of `.log` in those segments.
    pub time_bytes: u64,
    /// The log start offset after the call.
    pub log_start_offset: u64,
}

impl RetentionOutcome {
    /// Segments deleted, all rules together.
    pub fn segments_deleted(&self) -> usize {
        self.log_start_segments + self.size_segments + self.time_segments
    }

    /// Bytes of `.log` deleted, all rules together.
    pub fn bytes_deleted(&self) -> u64 {
        self.log_start_bytes + self.size_bytes + self.time_bytes
    }
}

/// Whether retention by time and size applies (`delete` or `compact,delete`).
fn deletes(policy: CleanupPolicy) -> bool {
    matches!(
        policy,
        CleanupPolicy::Delete | CleanupPolicy::CompactAndDelete
    )
}

impl Partition {
    /// Deletes the oldest segments that break the log start offset, `retention.bytes` or
    /// `retention.ms` (the last two only when `cleanup.policy` includes `delete`), never
    /// at or past the high watermark, with time from the log's [`crate::Clock`]; then
    /// removes the files of earlier deletions whose `file.delete.delay.ms` has passed.
    /// See the module documentation of `log::retention` for the exact rules.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use streamlog::{Env, LogConfig, ManualClock, Partition, Record};
    /// # fn main() -> streamlog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let clock = ManualClock::new(1_000_000);
    /// let config = LogConfig::default().retention_ms(60_000);
    /// let log = Partition::open_with_env(dir.path(), config, Env::with_clock(Arc::new(clock.clone())))?;
    /// log.append_batch(vec![Record::new(b"old".to_vec()); 3])?;
    /// clock.advance_ms(60_001);
    /// let outcome = log.enforce_retention()?;
    /// assert_eq!((outcome.time_segments, outcome.log_start_offset), (1, 3));
    /// assert_eq!((log.segment_count(), log.log_end_offset()), (1, 3));
    /// # Ok(()) }
    /// ```
    pub fn enforce_retention(&self) -> Result<RetentionOutcome> {
        let inner = &*self.inner;
        let _writer = inner.writer.lock();
        inner.ensure_open()?;
        inner.enforce_retention_locked(inner.env.clock.now_ms())
    }
}

impl Inner {
    fn enforce_retention_locked(&self, now_ms: i64) -> Result<RetentionOutcome> {
        let mut outcome = RetentionOutcome::default();
        (outcome.log_start_segments, outcome.log_start_bytes) =
            self.delete_segments_below_log_start(now_ms)?;
        if deletes(self.config.cleanup_policy) {
            (outcome.size_segments, outcome.size_bytes) = self.delete_for_size(now_ms)?;
            (outcome.time_segments, outcome.time_bytes) = self.delete_for_time(now_ms)?;
        }
        self.pending_deletions
            .purge_due(&*self.env.storage, now_ms)?;
        outcome.log_start_offset = self.log_start_offset.load(Ordering::Acquire);
        Ok(outcome)
    }

    /// Deletes the segments that lie wholly below the log start offset; returns how many
    /// and their bytes. Caller holds `writer`.
    pub(super) fn delete_segments_below_log_start(&self, now_ms: i64) -> Result<(usize, u64)> {
        let log_start = self.log_start_offset.load(Ordering::Acquire);
        self.delete_oldest_while(now_ms, |_, upper_bound| upper_bound <= log_start)
    }

    fn delete_for_size(&self, now_ms: i64) -> Result<(usize, u64)> {
        let Ok(retention_bytes) = u64::try_from(self.config.retention_bytes) else {
            return Ok((0, 0)); // -1: no size limit
        };
        let mut excess = self
            .segments
            .read()
            .values()
            .map(|s| s.size_bytes())
            .sum::<u64>()
            .saturating_sub(retention_bytes);
        self.delete_oldest_while(now_ms, |segment, _| {
            let size = segment.size_bytes();
            let breached = excess >= size;
            if breached {
                excess -= size;
            }
            breached
        })
    }

    fn delete_for_time(&self, now_ms: i64) -> Result<(usize, u64)> {
        let retention_ms = self.config.retention_ms;
        if retention_ms < 0 {
            return Ok((0, 0)); // -1: no time limit
        }
        self.delete_oldest_while(now_ms, |segment, _| {
            now_ms.saturating_sub(segment.largest_timestamp()) > retention_ms
        })
    }

    /// Deletes segments oldest first while `breached(segment, upper bound)` holds, stopping
    /// at the first that must stay, at the high watermark, or at an empty last segment.
    /// Returns how many were deleted and their bytes. Caller holds `writer`.
    fn delete_oldest_while(
        &self,
        now_ms: i64,
        mut breached: impl FnMut(&Segment, u64) -> bool,
    ) -> Result<(usize, u64)> {
        let high_watermark = self.high_watermark.load(Ordering::Acquire);
        let log_end = self.log_end_offset.load(Ordering::Acquire);
        let doomed: Vec<Arc<Segment>> = {
            let segments = self.segments.read();
            let mut doomed = Vec::new();
            let mut iter = segments.values().peekable();
            while let Some(segment) = iter.next() {
                let next = iter.peek().map(|s| s.base_offset());
                if next.is_none() && segment.is_empty() {
                    break;
                }
                let upper_bound = next.unwrap_or(log_end);
                if upper_bound > high_watermark || !breached(segment, upper_bound) {
                    break;
                }
                doomed.push(segment.clone());
            }
            doomed
        };
        let Some(last) = doomed.last() else {
            return Ok((0, 0));
        };
        if last.base_offset() == self.active()?.base_offset() {
            // The log keeps at least one segment: a fresh one at the log end.
            self.roll_locked(log_end, now_ms)?;
        }
        self.delete_segments(&doomed, now_ms)?;
        Ok((doomed.len(), doomed.iter().map(|s| s.size_bytes()).sum()))
    }

    /// Removes `doomed` (the oldest segments, oldest first; never all of them) from the
    /// log: moves the log start offset up to the first remaining base and checkpoints it,
    /// takes them out of the segment map, renames their files `*.deleted` and schedules
    /// the files' removal. Caller holds `writer`.
    fn delete_segments(&self, doomed: &[Arc<Segment>], now_ms: i64) -> Result<()> {
        let storage = &*self.env.storage;
        let first_kept = {
            let segments = self.segments.read();
            let last = doomed.last().map_or(0, |s| s.base_offset());
            let after = (Bound::Excluded(last), Bound::Unbounded);
            segments.range(after).next().map(|(base, _)| *base)
        };
        // Moved (and durable) before the segments leave the map, so that a reader that
        // misses one finds the log start past it.
        let base = first_kept.unwrap_or(0);
        let moved = {
            let _bounds = self.bounds.lock();
            let moved = self.log_start_offset.fetch_max(base, Ordering::AcqRel) < base;
            // The high watermark read above may have been lowered since: it never stays
            // below the log start.
            self.high_watermark.fetch_max(base, Ordering::AcqRel);
            moved
        };
        if moved {
            self.write_checkpoint()?;
        }
        // Even when the start did not move here: an earlier deletion whose trim failed (a
        // full disk) left epoch entries below it.
        let start = self.log_start_offset.load(Ordering::Acquire);
        self.update_epochs(|c| c.truncate_from_start(start))?;
        // Oldest first, each leaving the map once its files are renamed, so the segments
        // left on disk always run on from the log start without a gap: a failed rename (a
        // full disk) keeps that segment and the later ones for the next pass to retry.
        let due_ms = now_ms.saturating_add(self.config.file_delete_delay_ms);
        for segment in doomed {
            let paths = segment.rename_to_deleted(storage)?;
            self.segments.write().remove(&segment.base_offset());
            self.pending_deletions.schedule(paths, due_ms);
        }
        storage.sync_dir(&self.dir)?;
        self.pending_deletions.purge_due(storage, now_ms)
    }
}

/// Files renamed `*.deleted` that wait for `file.delete.delay.ms` before removal.
#[derive(Debug, Default)]
pub(super) struct PendingDeletions {
    /// `(due time in ms, path)`, in the order they were scheduled.
    files: Mutex<Vec<(i64, PathBuf)>>,
}

impl PendingDeletions {
    fn schedule(&self, paths: impl IntoIterator<Item = PathBuf>, due_ms: i64) {
        let mut files = self.files.lock();
        files.extend(paths.into_iter().map(|path| (due_ms, path)));
    }

    /// Removes the files due at `now_ms`; a file that cannot be removed stays listed.
    fn purge_due(&self, storage: &dyn Storage, now_ms: i64) -> Result<()> {
        let mut files = self.files.lock();
        let mut result = Ok(());
        files.retain(|(due_ms, path)| {
            if *due_ms > now_ms || result.is_err() {
                return true;
            }
            result = storage.remove_file(path);
            result.is_err()
        });
        result
    }

    /// Removes every listed file, due or not (the log is closing).
    pub(super) fn purge_all(&self, storage: &dyn Storage) -> Result<()> {
        self.purge_due(storage, i64::MAX)
    }
}

/// Removes the `*.deleted` files an earlier run left behind (a crash, or a close before
/// their delay passed). Called first thing when a log opens.
pub(super) fn remove_deleted_files(storage: &dyn Storage, dir: &Path) -> Result<()> {
    for path in storage.list_dir(dir)? {
        let deleted = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(DELETED_SUFFIX));
        if deleted {
            storage.remove_file(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
