//! Log compaction (`cleanup.policy=compact`, Kafka's log cleaner): keep the latest record
//! of every key, drop tombstones once `delete.retention.ms` has passed since a clean first
//! saw them, never move an offset, never touch the active segment, and survive a crash at
//! any point.
//!
//! A pass ([`Partition::compact`]):
//! 1. finds the cleanable range (`range`): from the first dirty offset (persisted in
//!    `cleaner-offset.checkpoint`, see `checkpoint`) up to the first uncleanable offset;
//! 2. reads the dirty section into a key → latest offset map (`offset_map`, `clean`);
//! 3. rewrites every cleanable segment from the log start, grouped so that one output
//!    segment stays within `segment.bytes`, keeping only the records the map allows
//!    (`clean`, with `record::filter_batch`);
//! 4. swaps each output in for its group crash-safely (`swap`), and moves the checkpoint.
//!
//! Readers never block and never see a mix: the segment map changes in one step, and a
//! reader holding an old segment keeps reading it through its open files.

mod checkpoint;
mod clean;
mod offset_map;
mod range;
mod swap;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::{Inner, Partition};
use crate::config::{CleanupPolicy, LogConfig};
use crate::error::{Error, Result};
use crate::record::{Record, RecordBatch, RecordIter};
use crate::segment::Segment;

pub(crate) use checkpoint::CLEANER_CHECKPOINT_FILE;
pub(crate) use swap::complete_interrupted_swaps;

use clean::KeepRule;
use offset_map::{DEFAULT_MAP_BYTES, OffsetMap};
use range::{CleanableRange, GroupLimits, LogOffsets};

/// What one [`Partition::compact`] pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanerStats {
    /// First offset not yet compacted when the pass started (after any reset).
    pub first_dirty_offset: u64,
    /// First offset not compacted when the pass ended: the next pass starts here.
    pub end_offset: u64,
    /// Distinct keys in the offset map.
    pub map_keys: usize,
    /// Records read to build the offset map.
    pub map_records_read: u64,
    /// Bytes of batches read to build the offset map.
    pub map_bytes_read: u64,
    /// Segments read while rewriting.
    pub segments_read: usize,
    /// Cleaned segments swapped into the log.
    pub segments_written: usize,
    /// Records in the segments read while rewriting.
    pub records_read: u64,
    /// Bytes of the segments read while rewriting.
    pub bytes_read: u64,
    /// Records in the cleaned segments swapped in.
    pub records_written: u64,
    /// Bytes of the cleaned segments swapped in.
    pub bytes_written: u64,
    /// Records dropped because they have no key (invalid in a compacted log).
    pub records_without_key: u64,
    /// Tombstones dropped because their delete horizon had passed.
    pub tombstones_removed: u64,
    /// Whether the pass stopped early because the log changed under it (truncated,
    /// segments deleted); the next pass starts over from the same checkpoint.
    pub aborted: bool,
}

/// Per-partition cleaner state: one pass at a time, and the cached first dirty offset.
#[derive(Debug)]
pub(crate) struct CleanerState {
    running: Mutex<()>,
    /// The stored first dirty offset; `UNKNOWN` until read from the checkpoint file,
    /// `NONE` when there is none.
    first_dirty: AtomicU64,
    /// Truncations so far: a pass that saw one start after it must not store its result.
    truncations: AtomicU64,
}

const UNKNOWN: u64 = u64::MAX;
const NONE: u64 = u64::MAX - 1;

impl CleanerState {
    /// Returns once no pass is running (the log closing waits so: see `Inner::close`).
    pub(crate) fn wait_for_pass(&self) {
        drop(self.running.lock());
    }
}

impl Default for CleanerState {
    fn default() -> Self {
        Self {
            running: Mutex::new(()),
            first_dirty: AtomicU64::new(UNKNOWN),
            truncations: AtomicU64::new(0),
        }
    }
}

impl CleanerState {
    /// The stored first dirty offset, read from disk the first time.
    fn checkpoint(&self, inner: &Inner) -> Result<Option<u64>> {
        let cached = self.first_dirty.load(Ordering::Acquire);
        if cached != UNKNOWN {
            return Ok((cached != NONE).then_some(cached));
        }
        let stored = checkpoint::read(&*inner.env.storage, &inner.dir)?;
        self.first_dirty
            .store(stored.unwrap_or(NONE), Ordering::Release);
        Ok(stored)
    }

    fn store(&self, inner: &Inner, offset: u64) -> Result<()> {
        checkpoint::write(&*inner.env.storage, &inner.dir, offset)?;
        self.first_dirty.store(offset, Ordering::Release);
        Ok(())
    }

    /// Truncations of the log so far.
    fn truncations(&self) -> u64 {
        self.truncations.load(Ordering::Acquire)
    }

    /// Stores `offset` unless the log was truncated since `truncations` was read (then the
    /// pass's view of the log is stale); returns whether it stored.
    fn store_unless_truncated(&self, inner: &Inner, offset: u64, truncations: u64) -> Result<bool> {
        let _writer = inner.writer.lock();
        if self.truncations.load(Ordering::Acquire) != truncations {
            return Ok(false);
        }
        self.store(inner, offset)?;
        Ok(true)
    }
}

fn compacts(policy: CleanupPolicy) -> bool {
    policy != CleanupPolicy::Delete
}

/// How long the active segment may span before it rolls (Kafka's `LogConfig.maxSegmentMs`):
/// `segment.ms`, or for a compacting log `max.compaction.lag.ms` when that is shorter (and
/// not 0). The active segment is never cleaned, so without this a record could wait there
/// for up to `segment.ms` before any pass may compact it.
pub(crate) fn max_segment_ms(config: &LogConfig) -> i64 {
    if compacts(config.cleanup_policy) && config.max_compaction_lag_ms > 0 {
        config.segment_ms.min(config.max_compaction_lag_ms)
    } else {
        config.segment_ms
    }
}

/// A compacted log needs a key on every record: the index of the first record without
/// one is [`Error::MissingKey`] (Kafka's `LogValidator` for compacted topics).
pub(crate) fn check_keys(config: &LogConfig, records: &[Record]) -> Result<()> {
    if !compacts(config.cleanup_policy) {
        return Ok(());
    }
    match records.iter().position(|r| r.key().is_none()) {
        Some(index) => Err(Error::MissingKey { index }),
        None => Ok(()),
    }
}

/// [`check_keys`] for an encoded batch (already validated).
pub(crate) fn check_batch_keys(config: &LogConfig, batch: &RecordBatch<'_>) -> Result<()> {
    if !compacts(config.cleanup_policy) || batch.header().is_control() {
        return Ok(());
    }
    let section = batch.records_bytes()?;
    for (index, record) in RecordIter::new(batch.header(), &section).enumerate() {
        if record?.key().is_none() {
            return Err(Error::MissingKey { index });
        }
    }
    Ok(())
}

/// After a truncation to `log_end`: a first dirty offset above it would call records
/// appended later "clean" although no map has seen them, so it comes down. Caller holds
/// the writer lock.
pub(crate) fn after_truncation(inner: &Inner, log_end: u64) -> Result<()> {
    let state = &inner.cleaner;
    state.truncations.fetch_add(1, Ordering::AcqRel);
    match state.checkpoint(inner)? {
        Some(offset) if offset > log_end => state.store(inner, log_end),
        _ => Ok(()),
    }
}

impl Inner {
    fn log_offsets(&self, checkpoint: Option<u64>, now_ms: i64) -> LogOffsets {
        LogOffsets {
            log_start: self.log_start_offset.load(Ordering::Acquire),
            log_end: self.log_end_offset.load(Ordering::Acquire),
            high_watermark: self.high_watermark.load(Ordering::Acquire),
            checkpoint,
            now_ms,
            min_compaction_lag_ms: self.config.min_compaction_lag_ms,
        }
    }

    fn cleanable_range(&self, now_ms: i64) -> Result<CleanableRange> {
        let checkpoint = self.cleaner.checkpoint(self)?;
        let segments: Vec<Arc<Segment>> = self.segments.read().values().cloned().collect();
        Ok(CleanableRange::compute(
            &segments,
            &self.log_offsets(checkpoint, now_ms),
        ))
    }
}

impl Partition {
    /// Compacts the log once (for `cleanup.policy` `compact` or `compact,delete`; a
    /// `delete` log is left alone): every cleanable segment keeps only the latest record of
    /// each key, with its original offset. See [`CleanerStats`] for what it reports.
    ///
    /// Cleanable means below the high watermark, below the active segment, and older than
    /// `min.compaction.lag.ms`. Tombstones are kept by the first pass that sees them, which
    /// stamps their batch with a delete horizon of now + `delete.retention.ms`; a pass at
    /// or after the horizon drops them. Records without a key are dropped. Appends and
    /// reads go on while a pass runs; only the final swap of each segment takes the
    /// writer lock.
    ///
    /// ```
    /// use streamlog::{CleanupPolicy, LogConfig, Partition, Record};
    /// # fn main() -> streamlog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let log = Partition::open(
    ///     dir.path(),
    ///     LogConfig::default().cleanup_policy(CleanupPolicy::Compact),
    /// )?;
    /// for (key, value) in [("a", "1"), ("b", "2"), ("a", "3")] {
    ///     log.append(Record::new(value.into()).with_key(key.into()))?;
    /// }
    /// log.roll()?; // the active segment is never compacted
    /// let stats = log.compact()?;
    /// assert_eq!((stats.records_read, stats.records_written), (3, 2));
    /// let offsets: Vec<u64> = log.read_from(0)?.map(|r| r.map(|r| r.offset())).collect::<Result<_, _>>()?;
    /// assert_eq!(offsets, [1, 2]);
    /// # Ok(()) }
    /// ```
    pub fn compact(&self) -> Result<CleanerStats> {
        self.compact_with_map_bytes(DEFAULT_MAP_BYTES)
    }

    /// [`Partition::compact`] with an offset map bounded to about `max_map_bytes`.
    pub(crate) fn compact_with_map_bytes(&self, max_map_bytes: usize) -> Result<CleanerStats> {
        let inner = &*self.inner;
        let mut stats = CleanerStats::default();
        if !compacts(inner.config.cleanup_policy) {
            return Ok(stats);
        }
        let _running = inner.cleaner.running.lock();
        inner.ensure_open()?;
        let now_ms = inner.env.clock.now_ms();
        let truncations = inner.cleaner.truncations.load(Ordering::Acquire);
        let range = inner.cleanable_range(now_ms)?;
        if range.reset
            && !inner
                .cleaner
                .store_unless_truncated(inner, range.first_dirty, truncations)?
        {
            stats.aborted = true;
            return Ok(stats);
        }
        stats.first_dirty_offset = range.first_dirty;
        stats.end_offset = range.first_dirty;
        if range.first_dirty >= range.clean_end {
            return Ok(stats);
        }
        let mut map = OffsetMap::new(max_map_bytes);
        let map_end = clean::build_offset_map(
            range.dirty_segments(),
            range.first_dirty,
            range.clean_end,
            &mut map,
            &mut stats,
        )?;
        let rule = KeepRule {
            map: &map,
            map_end,
            now_ms,
            new_delete_horizon_ms: now_ms.saturating_add(inner.config.delete_retention_ms),
        };
        let to_clean: Vec<Arc<Segment>> = range
            .segments
            .iter()
            .filter(|s| s.base_offset() < map_end)
            .cloned()
            .collect();
        let limits = GroupLimits {
            max_log_bytes: inner.config.segment_bytes,
            max_index_bytes: inner.config.segment_index_bytes as u64,
        };
        for group in range::group_segments(&to_clean, limits) {
            if group.iter().all(|s| s.is_empty()) {
                continue;
            }
            let seen: Vec<swap::Seen> = group.iter().map(|s| swap::Seen::of(s)).collect();
            let Some(cleaned) = clean::clean_group(inner, &group, &rule, &mut stats)? else {
                continue;
            };
            if !swap::replace(inner, &group, &seen, truncations, cleaned)? {
                stats.aborted = true;
                return Ok(stats);
            }
            stats.segments_written += 1;
        }
        if !inner
            .cleaner
            .store_unless_truncated(inner, map_end, truncations)?
        {
            stats.aborted = true;
            return Ok(stats);
        }
        stats.end_offset = map_end;
        Ok(stats)
    }

    /// Share of the cleanable bytes that are dirty (not compacted since they were
    /// written): Kafka's dirty ratio, in `[0, 1]`; 0 for a `delete` log. Cheap: no I/O
    /// beyond reading the cleaner checkpoint once.
    pub fn cleanable_dirty_ratio(&self) -> f64 {
        let inner = &*self.inner;
        if !compacts(inner.config.cleanup_policy) {
            return 0.0;
        }
        inner
            .cleanable_range(inner.env.clock.now_ms())
            .map_or(0.0, |range| range.dirty_ratio())
    }

    /// Whether a background cleaner should call [`Partition::compact`] now: the log
    /// compacts, has dirty cleanable bytes, and either the dirty ratio is above
    /// `min.cleanable.dirty.ratio` or its oldest dirty segment started more than
    /// `max.compaction.lag.ms` ago.
    pub fn needs_compaction(&self) -> bool {
        let inner = &*self.inner;
        if !compacts(inner.config.cleanup_policy) || inner.closed.load(Ordering::Acquire) {
            return false;
        }
        let now_ms = inner.env.clock.now_ms();
        let Ok(range) = inner.cleanable_range(now_ms) else {
            return false;
        };
        let (_, dirty_bytes) = range.bytes();
        if dirty_bytes == 0 {
            return false;
        }
        let overdue = range
            .dirty_segments()
            .next()
            .and_then(|s| s.first_batch_timestamp())
            .is_some_and(|t| now_ms.saturating_sub(t) > inner.config.max_compaction_lag_ms);
        // Kafka's `grabFilthiestCompactedLog`: a ratio strictly above the minimum.
        overdue || range.dirty_ratio() > inner.config.min_cleanable_dirty_ratio
    }
}
