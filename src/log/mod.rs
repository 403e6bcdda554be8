//! [`Partition`]: a partition's log — a directory of segments ordered by base offset, with
//! the log start offset, log end offset (LEO), high watermark (HW) and recovery point.
//!
//! One writer at a time appends (a `parking_lot::Mutex` around the append path); readers on
//! any thread read without taking it. Appends assign offsets from the LEO, roll segments
//! when they fill (S14), and make data durable per [`FlushPolicy`]. Reads find an offset by
//! a floor lookup of the segment, then of the sparse index, then a short forward scan (S17).
//!
//! Files in the directory: the segments (`<20-digit base>.log/.index/.timeindex`),
//! `log-state.checkpoint` (log start, recovery point, HW), `cleaner-offset.checkpoint`
//! (compacted logs: the first dirty offset), `leader-epoch-checkpoint` (the first offset of
//! each leader epoch, see `leader_epoch`), `.offset-gaps` (the log may hold offset gaps:
//! it compacts or once did, see `offset_gaps`), `.clean-shutdown` (present only between a
//! clean close and the next open), `.fsync-failed` (a sync failed: the next open writes
//! the unflushed records again, see `load`), `.lock`, and `*.deleted` files of segments
//! deleted by retention, waiting out `file.delete.delay.ms` (see `retention`).

mod checkpoint;
mod cleaner;
mod durability;
mod follower;
mod leader_epoch;
mod load;
mod offset_gaps;
mod reader;
mod retention;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::config::{FlushPolicy, LogConfig};
use crate::error::{Error, Result};
use crate::record::{
    BATCH_OVERHEAD, BatchHeader, BatchSummary, NO_TIMESTAMP, Record, RecordBatch, encode_in_place,
    is_create_time_stamped, restamp_create_time,
};
use crate::segment::{IncomingBatch, Segment, SegmentLimits};
use crate::storage::{DirLock, Env, OpenMode};

use checkpoint::{Checkpoint, CheckpointFile};
use durability::{Flusher, SyncState};
use leader_epoch::{EpochCache, EpochCheckpoint};

pub use cleaner::CleanerStats;
pub use leader_epoch::EpochEntry;
pub use reader::{ReadBound, ReadOptions, Records};
pub use retention::RetentionOutcome;

/// The `partitionLeaderEpoch` of batches written without a leader epoch.
const NO_EPOCH: i32 = -1;

/// Name of the marker file a clean close leaves behind.
pub(crate) const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";

/// Left in the directory when a sync fails: the next open writes the records above the
/// recovery point again before trusting a sync of them (`load.rs`). Not synced itself: it
/// matters only while the page cache that may hide dropped pages lives.
pub(crate) const FSYNC_FAILED_FILE: &str = ".fsync-failed";

/// The first record at or after a timestamp, from [`Partition::offset_for_timestamp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetAndTimestamp {
    /// The record's offset.
    pub offset: u64,
    /// The record's timestamp (ms).
    pub timestamp: i64,
}

/// A partition's append-only log of records, stored as segment files in one directory.
///
/// `Partition` is `Send + Sync` and every method takes `&self`: share it with an `Arc`.
///
/// ```
/// use streamlog::{LogConfig, Partition, Record};
/// # fn main() -> streamlog::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let log = Partition::open(dir.path().join("orders-0"), LogConfig::default())?;
/// let first = log.append(Record::new(b"hello".to_vec()).with_key(b"user-1".to_vec()))?;
/// let more = log.append_batch(vec![Record::new(b"a".to_vec()), Record::new(b"b".to_vec())])?;
/// assert_eq!((first, more), (0, 1..3));
/// let values: Vec<Vec<u8>> = log
///     .read_from(1)?
///     .map(|r| r.map(|r| r.value().unwrap_or_default().to_vec()))
///     .collect::<streamlog::Result<_>>()?;
/// assert_eq!(values, [b"a".to_vec(), b"b".to_vec()]);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Partition {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    config: LogConfig,
    env: Env,
    limits: SegmentLimits,
    /// The single-writer lock: appends, rolls, truncation, deletion, close.
    writer: Mutex<Writer>,
    /// Held while the high watermark is stored and while the log start moves up or the
    /// log end down, so that the high watermark is clamped to bounds that still hold when
    /// it is stored — without waiting for an append's write. Taken after `writer`.
    bounds: Mutex<()>,
    /// Segments by base offset; the last one is active. Written only under `writer`.
    segments: RwLock<BTreeMap<u64, Arc<Segment>>>,
    log_start_offset: AtomicU64,
    log_end_offset: AtomicU64,
    high_watermark: AtomicU64,
    /// Every offset below it is flushed, log and indexes; recovery starts here.
    recovery_point: AtomicU64,
    sync: SyncState,
    /// Where `checkpoint()` is persisted (on flush, roll, truncation, deletion, close).
    checkpoint_file: Mutex<CheckpointFile>,
    closed: AtomicBool,
    /// Set as `close` starts: reads stop ([`Error::Closed`]), since once the directory
    /// is released another open may change the files. (A storage failure sets only
    /// `closed`: the directory stays locked and what was written stays readable.)
    closing: AtomicBool,
    flusher: Mutex<Option<Flusher>>,
    lock: Mutex<Option<Box<dyn DirLock>>>,
    /// Files of deleted segments, renamed `*.deleted`, waiting for `file.delete.delay.ms`.
    pending_deletions: retention::PendingDeletions,
    /// Compaction: one pass at a time, and the first dirty offset.
    cleaner: cleaner::CleanerState,
    /// The first offset of each leader epoch. Changed only under `writer`, and persisted
    /// to `epoch_file` before the change is visible to appends.
    epochs: RwLock<EpochCache>,
    epoch_file: EpochCheckpoint,
}

#[derive(Debug)]
struct Writer {
    /// Records appended since the last flush (for `FlushPolicy::EveryMessages`).
    unflushed_messages: u64,
    /// When the last flush happened (for `FlushPolicy::Interval`).
    last_flush_ms: i64,
    /// Reused encode buffer.
    scratch: Vec<u8>,
}

impl Partition {
    /// Opens the log in `dir` (created when missing) on the real file system, recovering
    /// from a crash when the last close was not clean.
    pub fn open(dir: impl AsRef<Path>, config: LogConfig) -> Result<Self> {
        Self::open_with_env(dir, config, Env::default())
    }

    /// Opens the log in `dir` with the given storage and clock.
    pub fn open_with_env(dir: impl AsRef<Path>, config: LogConfig, env: Env) -> Result<Self> {
        load::open(dir.as_ref(), config, env).map(|inner| Self { inner })
    }

    /// The directory holding the segments.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The configuration the log was opened with.
    pub fn config(&self) -> &LogConfig {
        &self.inner.config
    }

    /// The first offset still in the log.
    pub fn log_start_offset(&self) -> u64 {
        self.inner.log_start_offset.load(Ordering::Acquire)
    }

    /// Whether the log is closed: by [`Partition::close`] (or its broker), or by a storage
    /// failure — a failed fsync or checkpoint write, or a truncation that failed half way
    /// — after which every call answers [`Error::Closed`] and only reopening the
    /// directory recovers the log from its files.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Whether this log may hold offset gaps (batches not starting where the previous one
    /// ended): it was opened under a compacting policy, now or before (the `.offset-gaps`
    /// marker), or it copies a leader's log that may hold them
    /// ([`Partition::append_from_leader`]). Once true, it stays true.
    pub fn may_hold_offset_gaps(&self) -> bool {
        self.inner.limits.offset_gaps.allowed()
    }

    /// The offset the next appended record will get.
    pub fn log_end_offset(&self) -> u64 {
        self.inner.log_end_offset.load(Ordering::Acquire)
    }

    /// The offset up to which (exclusive) records are visible to `read_from`.
    pub fn high_watermark(&self) -> u64 {
        self.inner.high_watermark.load(Ordering::Acquire)
    }

    /// Every offset below this is flushed to disk with its indexes.
    pub fn recovery_point(&self) -> u64 {
        self.inner.recovery_point.load(Ordering::Acquire)
    }

    /// Moves the high watermark to `offset`, clamped to `[log_start, log_end]`; returns the
    /// value set. For logs opened with `auto_high_watermark(false)` (replication).
    pub fn set_high_watermark(&self, offset: u64) -> u64 {
        let _bounds = self.inner.bounds.lock();
        let value = offset
            .min(self.log_end_offset())
            .max(self.log_start_offset());
        self.inner.high_watermark.store(value, Ordering::Release);
        value
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.inner.segments.read().len()
    }

    /// The segments, oldest first (a snapshot).
    pub fn segments(&self) -> Vec<Arc<Segment>> {
        self.inner.segments.read().values().cloned().collect()
    }

    /// Total bytes of all `.log` files.
    pub fn size_bytes(&self) -> u64 {
        self.inner
            .segments
            .read()
            .values()
            .map(|s| s.size_bytes())
            .sum()
    }

    /// The latest leader epoch recorded in the log, if any (replicated logs only).
    pub fn latest_epoch(&self) -> Option<i32> {
        self.inner.epochs.read().latest().map(|e| e.epoch)
    }

    /// The leader epochs recorded in the log with the first offset of each, oldest first.
    pub fn leader_epochs(&self) -> Vec<EpochEntry> {
        self.inner.epochs.read().entries().to_vec()
    }

    /// Records that leader epoch `epoch` starts at the log end: what a replica does as it
    /// becomes leader. From then on every batch appended through [`Partition::append`] and
    /// friends carries `epoch`. Later epochs already recorded are dropped (Kafka's rule);
    /// a repeat of the latest epoch changes nothing.
    pub fn assign_leader_epoch(&self, epoch: i32) -> Result<()> {
        leader_epoch::check_epoch(epoch)?;
        let inner = &*self.inner;
        let _writer = inner.writer.lock();
        inner.ensure_open()?;
        let log_end = inner.log_end_offset.load(Ordering::Acquire);
        inner.update_epochs(|c| c.assign(epoch, log_end))
    }

    /// The answer to an offsets-for-leader-epoch query: for the latest epoch, `(epoch,
    /// log end)`; otherwise the start offset of the first epoch above `epoch`, paired
    /// with the largest known epoch ≤ `epoch` (or `epoch` itself when every known epoch
    /// is larger). `None` when no epoch ≥ `epoch` is known.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, u64)> {
        let epochs = self.inner.epochs.read();
        epochs.end_offset_for(epoch, self.log_end_offset())
    }

    /// Deletes every segment and starts over, empty, at `offset`: log start, log end,
    /// high watermark and recovery point all become `offset` and the leader epochs are
    /// forgotten. What a follower does when it has fallen behind its leader's log start.
    /// An offset past the largest a log holds (`i64::MAX - 1`) is [`Error::OffsetLimit`].
    pub fn truncate_fully_and_start_at(&self, offset: u64) -> Result<u64> {
        let inner = &*self.inner;
        let _writer = inner.writer.lock();
        inner.ensure_open()?;
        within_offset_limit(offset)?;
        inner.start_over_at(offset)
    }

    /// Appends one record; returns its offset.
    pub fn append(&self, record: Record) -> Result<u64> {
        self.append_records(std::slice::from_ref(&record))
            .map(|range| range.start)
    }

    /// Appends records as one batch; returns their offsets.
    pub fn append_batch(&self, records: Vec<Record>) -> Result<Range<u64>> {
        self.append_records(&records)
    }

    /// Appends borrowed records as one batch; returns their offsets.
    pub fn append_records(&self, records: &[Record]) -> Result<Range<u64>> {
        let inner = &*self.inner;
        cleaner::check_keys(&inner.config, records)?;
        let now_ms = inner.env.clock.now_ms();
        let mut writer = inner.writer.lock();
        // The scratch buffer keeps its length across appends (see `encode_in_place`).
        let mut buf = std::mem::take(&mut writer.scratch);
        let result = encode_in_place(records, inner.config.compression, now_ms, &mut buf).and_then(
            |summary| {
                let batch = buf.get_mut(..summary.size_bytes).unwrap_or_default();
                inner.append_locked(&mut writer, batch, &[], summary, now_ms)
            },
        );
        writer.scratch = buf;
        inner.after_append(writer, result)
    }

    /// Appends one already-encoded v2 batch (as a Kafka producer sends it): validated
    /// ([`RecordBatch::validate_for_append`]), then given offsets from the log end without
    /// re-encoding (the CRC does not cover them). As in Kafka, a header whose max
    /// timestamp disagrees with its records, or that claims log-append time, is corrected
    /// (topics here keep create time).
    pub fn append_encoded(&self, batch: &[u8]) -> Result<Range<u64>> {
        let parsed = RecordBatch::parse(batch)?;
        if parsed.size_bytes() != batch.len() {
            return Err(Error::invalid_batch(
                parsed.size_bytes(),
                "an append must hold exactly one batch",
            ));
        }
        let max_timestamp = parsed.validate_for_append()?;
        cleaner::check_batch_keys(&self.inner.config, &parsed)?;
        let header = *parsed.header();
        let summary = BatchSummary {
            record_count: header.records_count as u32,
            last_offset_delta: header.last_offset_delta as u32,
            first_timestamp: header.base_timestamp,
            max_timestamp,
            offset_delta_of_max_timestamp: header.last_offset_delta as u32,
            size_bytes: batch.len(),
        };
        let inner = &*self.inner;
        let now_ms = inner.env.clock.now_ms();
        // Offsets and epoch go into a copy of the header; the records are written from
        // `batch` itself. Only a header that Kafka's rule corrects (its max timestamp and
        // create time are the records') needs the whole batch copied, for a new CRC.
        let restamp = !is_create_time_stamped(batch, max_timestamp);
        let head_len = if restamp { batch.len() } else { BATCH_OVERHEAD };
        let (head, tail) = batch.split_at_checked(head_len).unwrap_or((batch, &[]));
        let mut writer = inner.writer.lock();
        let mut buf = std::mem::take(&mut writer.scratch);
        if buf.len() < head.len() {
            buf.resize(head.len(), 0);
        }
        let copy = buf.get_mut(..head.len()).unwrap_or_default();
        copy.copy_from_slice(head);
        if restamp {
            restamp_create_time(copy, max_timestamp);
        }
        let result = inner.append_locked(&mut writer, copy, tail, summary, now_ms);
        writer.scratch = buf;
        inner.after_append(writer, result)
    }

    /// Records from `offset` up to the high watermark, read lazily in offset order.
    /// `offset == log_end_offset` gives nothing; outside `[log_start, log_end]` is
    /// [`Error::OffsetOutOfRange`]. Once the log is closed ([`Partition::close`], a drop,
    /// or its broker's close), [`Error::Closed`] — also from readers made before, at
    /// their next batch. (A log closed by a storage failure stays readable.)
    pub fn read_from(&self, offset: u64) -> Result<Records> {
        self.read(offset, ReadOptions::default())
    }

    /// Like [`Partition::read_from`], stopping once `max_bytes` of batches were read — but
    /// always returning at least one whole batch, so a reader never gets stuck.
    pub fn read_max_bytes(&self, offset: u64, max_bytes: usize) -> Result<Records> {
        self.read(offset, ReadOptions::default().max_bytes(max_bytes))
    }

    /// Like [`Partition::read_from`], but up to the log end instead of the high watermark.
    pub fn read_to_log_end(&self, offset: u64) -> Result<Records> {
        self.read(offset, ReadOptions::default().bound(ReadBound::LogEnd))
    }

    /// Reads from `offset` with explicit options.
    pub fn read(&self, offset: u64, options: ReadOptions) -> Result<Records> {
        Records::new(self.inner.clone(), offset, options)
    }

    /// Kafka's ListOffsets `LATEST_TIMESTAMP`: [`Partition::offset_for_timestamp`] answers
    /// the high watermark.
    pub const LATEST_TIMESTAMP: i64 = -1;
    /// Kafka's ListOffsets `EARLIEST_TIMESTAMP`: [`Partition::offset_for_timestamp`]
    /// answers the log start offset.
    pub const EARLIEST_TIMESTAMP: i64 = -2;
    /// Kafka's ListOffsets `MAX_TIMESTAMP` (KIP-734): [`Partition::offset_for_timestamp`]
    /// answers the first record holding the largest timestamp.
    pub const MAX_TIMESTAMP: i64 = -3;

    /// The first record (below the high watermark) whose timestamp is ≥ `timestamp`, as
    /// Kafka's ListOffsets answers a consumer; `None` when there is none.
    ///
    /// Kafka's special timestamps: [`Self::LATEST_TIMESTAMP`] gives the high watermark and
    /// [`Self::EARLIEST_TIMESTAMP`] the log start offset, both with timestamp -1 (even on an
    /// empty log); [`Self::MAX_TIMESTAMP`] gives the first record holding the largest
    /// timestamp (`None` if it is not below the high watermark, or the log holds no
    /// record with a timestamp). Other negative timestamps are searched as they are.
    ///
    /// ```
    /// use streamlog::{LogConfig, Partition, Record};
    /// # fn main() -> streamlog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let log = Partition::open(dir.path(), LogConfig::default())?;
    /// for ts in [100, 300, 200] {
    ///     log.append(Record::new(b"v".to_vec()).with_timestamp(ts))?;
    /// }
    /// assert_eq!(log.offset_for_timestamp(150)?.map(|o| o.offset), Some(1));
    /// assert_eq!(log.offset_for_timestamp(Partition::MAX_TIMESTAMP)?.map(|o| o.offset), Some(1));
    /// assert_eq!(log.offset_for_timestamp(Partition::LATEST_TIMESTAMP)?.map(|o| o.offset), Some(3));
    /// # Ok(()) }
    /// ```
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<OffsetAndTimestamp>> {
        self.inner.ensure_readable()?;
        let at = |offset| {
            Some(OffsetAndTimestamp {
                offset,
                timestamp: NO_TIMESTAMP,
            })
        };
        match timestamp {
            Self::LATEST_TIMESTAMP => Ok(at(self.high_watermark())),
            Self::EARLIEST_TIMESTAMP => Ok(at(self.log_start_offset())),
            Self::MAX_TIMESTAMP => {
                let log_start = self.log_start_offset();
                let largest = self
                    .segments()
                    .iter()
                    .filter(|s| s.next_offset() > log_start)
                    .map(|s| s.max_timestamp())
                    .max()
                    .filter(|&ts| ts >= 0);
                // The first record at or after the largest timestamp holds it.
                largest.map_or(Ok(None), |ts| self.first_at_or_after(ts))
            }
            _ => self.first_at_or_after(timestamp),
        }
    }

    /// The first record below the high watermark whose timestamp is ≥ `timestamp`.
    fn first_at_or_after(&self, timestamp: i64) -> Result<Option<OffsetAndTimestamp>> {
        let log_start = self.log_start_offset();
        let hw = self.high_watermark();
        for segment in self.segments() {
            if segment.next_offset() <= log_start || segment.max_timestamp() < timestamp {
                continue;
            }
            if let Some((offset, ts)) = segment.find_offset_by_timestamp(timestamp, log_start)? {
                return Ok((offset < hw).then_some(OffsetAndTimestamp {
                    offset,
                    timestamp: ts,
                }));
            }
        }
        Ok(None)
    }

    /// Removes every record at or after `offset` (a batch holding `offset` is removed
    /// whole); returns the new log end offset. `offset >= log_end` changes nothing. If the
    /// disk fails part way, the log closes ([`Error::Closed`] from then on); reopening it
    /// recovers a consistent log from the files.
    pub fn truncate_to(&self, offset: u64) -> Result<u64> {
        let inner = &*self.inner;
        let _writer = inner.writer.lock();
        let _bounds = inner.bounds.lock();
        inner.ensure_open()?;
        inner.truncating(|| inner.truncate_locked(offset), |new_end| new_end)
    }

    /// Moves the log start offset to `offset` (≤ the high watermark) and deletes the
    /// segments wholly below it, as retention does (files renamed `*.deleted`, removed
    /// after `file.delete.delay.ms`). Returns the new log start offset. If the new start
    /// cannot be recorded, the log closes, as on any failed write, and nothing is deleted
    /// while it stays open; after a failed sync (the checkpoint written, its durability
    /// unknown) a reopen may find either start, as a crash mid-call would. Once the start
    /// is recorded the call succeeds: segments or leader-epoch entries it could not clear
    /// then (a full disk) are cleared by the next segment deletion or open.
    pub fn delete_records_before(&self, offset: u64) -> Result<u64> {
        let inner = &*self.inner;
        let _writer = inner.writer.lock();
        inner.ensure_open()?;
        inner.delete_records_before_locked(offset)
    }

    /// Rolls to a new, empty active segment at the log end (unless the active one is empty).
    pub fn roll(&self) -> Result<()> {
        let inner = &*self.inner;
        let _writer = inner.writer.lock();
        inner.ensure_open()?;
        if !inner.active()?.is_empty() {
            inner.roll_locked(
                inner.log_end_offset.load(Ordering::Acquire),
                inner.env.clock.now_ms(),
            )?;
        }
        Ok(())
    }

    /// Makes every appended record durable (log and indexes) and moves the recovery point
    /// to the log end. If a sync fails the log closes ([`Error::Closed`] from then on: a
    /// retried fsync could report success for pages the failed one dropped); reopening
    /// recovers from the files.
    pub fn flush(&self) -> Result<()> {
        let inner = &*self.inner;
        let mut writer = inner.writer.lock();
        inner.ensure_open()?;
        inner.flush_locked(&mut writer)
    }

    /// Flushes, writes the checkpoint and the clean-shutdown marker, and releases the
    /// directory. Dropping a `Partition` does the same but cannot report errors. Readers
    /// of the log answer [`Error::Closed`] from their next batch on; records they handed
    /// out stay valid, also when the directory is opened again and truncated.
    ///
    /// A log a failure already closed (a failed sync or write, [`Error::Closed`] since)
    /// is only released: `Ok`, with nothing flushed and no clean-shutdown marker, so that
    /// the next open recovers from the files. `close` is no durability barrier for such a
    /// log; [`Partition::flush`] is the call that reports whether records are durable.
    pub fn close(self) -> Result<()> {
        self.inner.close()
    }

    /// Closes the log through a shared handle, as [`Partition::close`] does: every handle
    /// gets [`Error::Closed`] from then on and the directory lock is released. For owners
    /// (the broker) that must close a partition applications may still hold.
    pub(crate) fn shutdown(&self) -> Result<()> {
        self.inner.close()
    }
}

/// The largest offset a log can hold: its log end (one past it) must be an `i64` too.
const MAX_OFFSET: u64 = i64::MAX as u64 - 1;

/// `offset`, or [`Error::OffsetLimit`] past [`MAX_OFFSET`].
fn within_offset_limit(offset: u64) -> Result<u64> {
    if offset > MAX_OFFSET {
        return Err(Error::OffsetLimit {
            offset,
            max: MAX_OFFSET,
        });
    }
    Ok(offset)
}

impl Drop for Partition {
    fn drop(&mut self) {
        let _ = self.inner.close();
    }
}

impl Inner {
    fn ensure_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed {
                path: self.dir.clone(),
            });
        }
        Ok(())
    }

    /// [`Error::Closed`] once `close` has started: the directory is (about to be)
    /// released, and another open may cut or replace the files. A log closed by a
    /// storage failure stays readable until then.
    fn ensure_readable(&self) -> Result<()> {
        if self.closing.load(Ordering::Acquire) {
            return Err(Error::Closed {
                path: self.dir.clone(),
            });
        }
        Ok(())
    }

    /// Passes a sync's result on; a failed sync closes the log. After a failed fsync the
    /// kernel may have dropped the dirty pages and a retry may report success without
    /// them (as PostgreSQL learned in 2018), so nothing this log wrote since its last good
    /// sync can be vouched for until reopening recovers it from the files. Kafka likewise
    /// takes a log directory offline on an I/O error.
    fn poison_on_failure<T>(&self, result: Result<T>) -> Result<T> {
        if result.is_err() {
            self.closed.store(true, Ordering::Release);
            // Best effort: on a disk that fails, this may fail too.
            let marker = self.dir.join(FSYNC_FAILED_FILE);
            let _ = self.env.storage.open(&marker, OpenMode::Create);
        }
        result
    }

    /// The segment appends go to. The map is empty only after a restart that failed
    /// midway, which also closed the log (reopening recovers from the files).
    fn active(&self) -> Result<Arc<Segment>> {
        let segments = self.segments.read();
        segments
            .values()
            .next_back()
            .cloned()
            .ok_or_else(|| Error::Closed {
                path: self.dir.clone(),
            })
    }

    /// Applies `change` to the leader epochs and, when it changed them, persists them.
    /// Caller holds `writer`.
    fn update_epochs(&self, change: impl FnOnce(&mut EpochCache) -> bool) -> Result<()> {
        let mut next = self.epochs.read().clone();
        if !change(&mut next) {
            return Ok(());
        }
        self.epoch_file.write(&*self.env.storage, &next)?;
        *self.epochs.write() = next;
        Ok(())
    }

    /// Records the epoch of a batch copied from a leader when it is newer than the
    /// latest known. Caller holds `writer`.
    fn observe_batch_epoch(&self, header: &BatchHeader) -> Result<()> {
        let epoch = header.partition_leader_epoch;
        if epoch < 0
            || self
                .epochs
                .read()
                .latest()
                .is_some_and(|l| l.epoch >= epoch)
        {
            return Ok(());
        }
        self.update_epochs(|c| c.assign(epoch, header.base_offset as u64))
    }

    fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            log_start_offset: self.log_start_offset.load(Ordering::Acquire),
            recovery_point: self.recovery_point.load(Ordering::Acquire),
            high_watermark: self.high_watermark.load(Ordering::Acquire),
        }
    }

    /// Persists the log's bounds. A failure closes the log: the bounds in memory may
    /// already be ahead of the durable ones (a moved log start would come back after a
    /// crash although the call that moved it could be retried and answered), and only
    /// reopening reconciles the two.
    fn write_checkpoint(&self) -> Result<()> {
        let written = self.checkpoint_file.lock().write(&self.checkpoint());
        self.poison_on_failure(written)
    }

    /// Assigns offsets to the encoded batch in `buf` and appends it. Caller holds `writer`.
    fn append_locked(
        &self,
        _writer: &mut Writer,
        buf: &mut [u8],
        tail: &[u8],
        summary: BatchSummary,
        now_ms: i64,
    ) -> Result<Range<u64>> {
        self.ensure_open()?;
        let size = buf.len() + tail.len();
        if size > self.config.max_message_bytes {
            return Err(Error::MessageTooLarge {
                size,
                max: self.config.max_message_bytes,
            });
        }
        let base = self.log_end_offset.load(Ordering::Acquire);
        let last = within_offset_limit(base.saturating_add(u64::from(summary.last_offset_delta)))?;
        crate::record::set_base_offset(buf, base as i64);
        let epoch = self.epochs.read().latest().map_or(NO_EPOCH, |e| e.epoch);
        crate::record::set_partition_leader_epoch(buf, epoch);
        let header = BatchHeader::parse(buf)?;
        self.write_batch(&[buf, tail], &header, now_ms)?;
        Ok(base..last + 1)
    }

    /// Writes one batch whose offsets are set (in `header` and `bytes`) at the log end,
    /// rolling first when the active segment cannot take it, then publishes the new log
    /// end (and high watermark when it follows the log end). A roll for relative-offset
    /// overflow starts the new segment at `max(log end, the batch's first offset)`.
    /// Caller holds `writer`.
    fn write_batch(&self, parts: &[&[u8]], header: &BatchHeader, now_ms: i64) -> Result<()> {
        let size_bytes = parts.iter().map(|p| p.len()).sum::<usize>();
        if size_bytes as u64 > self.config.segment_bytes {
            return Err(Error::BatchLargerThanSegment {
                size: size_bytes,
                segment_bytes: self.config.segment_bytes,
            });
        }
        let last = within_offset_limit(header.last_offset().max(0) as u64)?;
        let incoming = IncomingBatch {
            size_bytes,
            max_timestamp: header.max_timestamp,
            last_offset: last,
        };
        let mut active = self.active()?;
        if active.should_roll(
            &incoming,
            self.config.segment_bytes,
            cleaner::max_segment_ms(&self.config),
            now_ms,
        ) {
            let log_end = self.log_end_offset.load(Ordering::Acquire);
            active = self.roll_locked(log_end.max(header.base_offset as u64), now_ms)?;
        }
        if let Err(e) = active.append_parts(parts, header) {
            // A write that failed part way (a disk filling up mid-batch) left bytes past the
            // segment's end: a shorter batch would not cover them, and a roll or a clean
            // close would leave them behind flushed records, where an open finds damage.
            // As after a failed fsync, the log closes; reopening recovers (cuts them).
            if active.holds_bytes_past_end() {
                self.closed.store(true, Ordering::Release);
            }
            return Err(e);
        }
        active.touch(now_ms);
        self.log_end_offset.store(last + 1, Ordering::Release);
        if self.config.auto_high_watermark {
            let _bounds = self.bounds.lock();
            self.high_watermark.store(last + 1, Ordering::Release);
        }
        Ok(())
    }

    /// Applies the flush policy after an append and returns its result.
    fn after_append(
        &self,
        mut writer: parking_lot::MutexGuard<'_, Writer>,
        result: Result<Range<u64>>,
    ) -> Result<Range<u64>> {
        let range = result?;
        writer.unflushed_messages += range.end - range.start;
        match self.config.flush_policy {
            FlushPolicy::Never => {}
            FlushPolicy::EveryMessages(n) => {
                if writer.unflushed_messages >= n {
                    self.flush_locked(&mut writer)?;
                }
            }
            FlushPolicy::Interval(interval) => {
                let now = self.env.clock.now_ms();
                if durability::interval_passed(writer.last_flush_ms, now, interval) {
                    self.flush_locked(&mut writer)?;
                }
            }
            FlushPolicy::Always => {
                let wait = self.register_durable_wait(range.end);
                drop(writer);
                self.sync_to(wait)?;
            }
        }
        Ok(range)
    }

    /// Makes the outgoing active segment read-only and durable, then starts a new one at
    /// `new_base`. Caller holds `writer`.
    fn roll_locked(&self, new_base: u64, now_ms: i64) -> Result<Arc<Segment>> {
        let old = self.active()?;
        if old.is_empty() && old.base_offset() == new_base {
            old.resize_indexes(self.config.segment_index_bytes)?;
            return Ok(old);
        }
        old.on_become_inactive()?;
        self.poison_on_failure(old.flush())?;
        let storage = &*self.env.storage;
        let segment = Arc::new(Segment::create(
            storage,
            &self.dir,
            new_base,
            self.limits.clone(),
            now_ms,
        )?);
        storage.sync_dir(&self.dir)?;
        self.segments.write().insert(new_base, segment.clone());
        // Every segment before the new one has been flushed as it rolled.
        self.recovery_point.fetch_max(new_base, Ordering::AcqRel);
        self.sync.mark_durable(new_base);
        self.write_checkpoint()?;
        Ok(segment)
    }

    fn flush_locked(&self, writer: &mut Writer) -> Result<()> {
        let end = self.log_end_offset.load(Ordering::Acquire);
        let from = self.recovery_point.load(Ordering::Acquire);
        let synced = self
            .segments_holding(from)
            .iter()
            .try_for_each(|s| s.flush());
        self.poison_on_failure(synced)?;
        self.sync.mark_durable(end);
        self.recovery_point.fetch_max(end, Ordering::AcqRel);
        // Persisted now, so recovery never mistakes flushed data for a torn tail.
        self.write_checkpoint()?;
        writer.unflushed_messages = 0;
        writer.last_flush_ms = self.env.clock.now_ms();
        Ok(())
    }

    /// The segments that may hold offsets at or after `offset`.
    fn segments_holding(&self, offset: u64) -> Vec<Arc<Segment>> {
        let segments = self.segments.read();
        let first = segments
            .range(..=offset)
            .next_back()
            .map_or(0, |(base, _)| *base);
        segments.range(first..).map(|(_, s)| s.clone()).collect()
    }

    /// Runs `truncate` (which returns the new log end) as a truncation group commit
    /// knows of: appenders waiting for records at or past `kept_below(new end)` fail. If
    /// it fails, files and bookkeeping may disagree half way through: the log closes
    /// (reopening recovers from the files) and so do the waiters. Caller holds `writer`.
    fn truncating(
        &self,
        truncate: impl FnOnce() -> Result<u64>,
        kept_below: impl FnOnce(u64) -> u64,
    ) -> Result<u64> {
        self.sync.begin_truncation();
        let result = truncate();
        match result {
            Ok(new_end) => self.sync.end_truncation(kept_below(new_end), new_end),
            Err(_) => {
                self.closed.store(true, Ordering::Release);
                self.sync.abort_truncation();
            }
        }
        result
    }

    /// [`Partition::truncate_fully_and_start_at`] once checked. Caller holds `writer`.
    fn start_over_at(&self, offset: u64) -> Result<u64> {
        self.start_over(offset, false)
    }

    /// Starts an empty log over at `base`, below its end, for a copied batch that holds
    /// the end (see `follower`). The log end and high watermark stay where they are: the
    /// batch written next moves the end past them, so a reader (which reads them without
    /// the writer lock) never sees either go back, and the recorded high watermark stays.
    /// Until then the log holds no record, as before. Caller holds `writer`.
    fn start_over_below(&self, base: u64) -> Result<u64> {
        self.start_over(base, true)
    }

    fn start_over(&self, offset: u64, keep_end: bool) -> Result<u64> {
        let _bounds = self.bounds.lock();
        // Every record goes: appenders still waiting for theirs fail.
        self.truncating(|| self.restart_fully_at(offset, keep_end), |_| 0)?;
        self.sync.mark_durable(offset);
        Ok(offset)
    }

    /// [`Partition::truncate_fully_and_start_at`] under its locks; with `keep_end`, the
    /// log end and high watermark are left as they are (see `start_over_below`).
    fn restart_fully_at(&self, offset: u64, keep_end: bool) -> Result<u64> {
        // Starting over below the recovery point (at the base of a batch holding the old
        // start): the recovery point comes down durably first, so a crash before the new
        // bounds are written never leaves a log that ends below its persisted one.
        if self.recovery_point.load(Ordering::Acquire) > offset {
            self.recovery_point.store(offset, Ordering::Release);
            self.write_checkpoint()?;
        }
        self.restart_at(offset, self.env.clock.now_ms())?;
        self.env.storage.sync_dir(&self.dir)?;
        cleaner::after_truncation(self, offset)?;
        let moved: &[&AtomicU64] = if keep_end {
            &[&self.recovery_point]
        } else {
            &[
                &self.log_end_offset,
                &self.high_watermark,
                &self.recovery_point,
            ]
        };
        for value in moved {
            value.store(offset, Ordering::Release);
        }
        self.write_checkpoint()?;
        self.update_epochs(EpochCache::clear)?;
        Ok(offset)
    }

    fn truncate_locked(&self, offset: u64) -> Result<u64> {
        let end = self.log_end_offset.load(Ordering::Acquire);
        if offset >= end {
            // An epoch begun at the log end holds no records yet: it goes (as in Kafka,
            // which truncates the cache from the log end, whatever the offset asked).
            self.update_epochs(|c| c.truncate_from_end(end))?;
            return Ok(end);
        }
        let now_ms = self.env.clock.now_ms();
        let storage = &*self.env.storage;
        let log_start = self.log_start_offset.load(Ordering::Acquire);
        // The new log end is at least the base of the segment holding `offset`; the
        // recovery point goes there (durably) before any byte is cut, so a crash in
        // between never leaves a log that ends below its persisted recovery point.
        let floor_base = self
            .segments
            .read()
            .range(..=offset)
            .next_back()
            .map_or(offset, |(base, _)| *base)
            .min(offset);
        if self.recovery_point.load(Ordering::Acquire) > floor_base {
            self.recovery_point.store(floor_base, Ordering::Release);
            self.write_checkpoint()?;
        }
        let mut restarted = offset < log_start;
        let mut new_end = if restarted {
            // Nothing at or after `offset` may stay and nothing before it exists: start over.
            self.restart_at(offset, now_ms)?
        } else {
            let doomed: Vec<Arc<Segment>> = {
                let mut segments = self.segments.write();
                segments.split_off(&(offset + 1)).into_values().collect()
            };
            // Newest first: a crash part way leaves a gapless log, longer than asked,
            // that the caller truncates again (oldest first would leave a hole).
            for segment in doomed.iter().rev() {
                segment.delete(storage)?;
            }
            let mut active = self.active()?;
            if active.release_map() {
                // Readers hold a map of it (maybe readers of an earlier, closed log on this
                // directory): cut a copy, never the file under them. (The old segment stays
                // blocked from mapping; only its current readers use it.) The copy is cut
                // before it is published: once in the segment map a reader could map it,
                // and the cut would then be refused.
                let copy = active.rewrite(storage, &self.dir, now_ms)?;
                copy.recover(active.next_offset(), now_ms)?;
                copy.truncate_to(offset, now_ms)?;
                let copy = Arc::new(copy);
                self.segments
                    .write()
                    .insert(copy.base_offset(), copy.clone());
                active = copy;
            } else {
                active.truncate_to(offset, now_ms)?;
            }
            active.resize_indexes(self.config.segment_index_bytes)?;
            active.next_offset()
        };
        if new_end < self.log_start_offset.load(Ordering::Acquire) {
            // The cut batch straddled the log start: nothing visible is left, and the log
            // start never moves back, so the log restarts empty there.
            new_end = self.restart_at(log_start, now_ms)?;
            restarted = true;
        }
        storage.sync_dir(&self.dir)?;
        cleaner::after_truncation(self, new_end)?;
        self.log_end_offset.store(new_end, Ordering::Release);
        self.high_watermark.fetch_min(new_end, Ordering::AcqRel);
        self.recovery_point.fetch_min(new_end, Ordering::AcqRel);
        self.write_checkpoint()?;
        if restarted {
            self.update_epochs(EpochCache::clear)?;
        } else {
            self.update_epochs(|c| c.truncate_from_end(new_end))?;
        }
        Ok(new_end)
    }

    /// Replaces every segment with one empty segment at `offset`, which becomes the log
    /// start. Returns `offset`. Caller holds `writer`.
    fn restart_at(&self, offset: u64, now_ms: i64) -> Result<u64> {
        let result = self.replace_segments_with_empty(offset, now_ms);
        if result.is_err() {
            // Files may be half deleted: refuse further use; reopening recovers.
            self.closed.store(true, Ordering::Release);
        }
        result
    }

    fn replace_segments_with_empty(&self, offset: u64, now_ms: i64) -> Result<u64> {
        let storage = &*self.env.storage;
        let old: Vec<Arc<Segment>> = std::mem::take(&mut *self.segments.write())
            .into_values()
            .collect();
        for segment in &old {
            segment.delete(storage)?;
        }
        let fresh = Segment::create(storage, &self.dir, offset, self.limits.clone(), now_ms)?;
        self.segments.write().insert(offset, Arc::new(fresh));
        self.log_start_offset.store(offset, Ordering::Release);
        Ok(offset)
    }

    fn delete_records_before_locked(&self, offset: u64) -> Result<u64> {
        let log_start = {
            let _bounds = self.bounds.lock();
            let log_start = self.log_start_offset.load(Ordering::Acquire);
            let hw = self.high_watermark.load(Ordering::Acquire);
            if offset > hw {
                return Err(Error::OffsetOutOfRange {
                    requested: offset,
                    log_start,
                    log_end: hw,
                });
            }
            if offset <= log_start {
                return Ok(log_start);
            }
            self.log_start_offset.store(offset, Ordering::Release);
            log_start
        };
        if let Err(e) = self.write_checkpoint() {
            // Not recorded, so not done: the records stay readable, as they are on disk.
            let _bounds = self.bounds.lock();
            self.log_start_offset.store(log_start, Ordering::Release);
            return Err(e);
        }
        // The checkpoint is the commit point: the records below `offset` are gone from here
        // on, whatever follows. Trimming the epoch cache and deleting the segments below
        // the new start are clean-up that the next segment deletion (retention's) or open
        // redoes, so their failure (a full disk) is not this call's: an error would tell
        // the caller the records were kept.
        let _ = self.update_epochs(|c| c.truncate_from_start(offset));
        // Retention's log-start rule: renamed `*.deleted`, removed after the delay.
        let _ = self.delete_segments_below_log_start(self.env.clock.now_ms());
        Ok(offset)
    }

    /// Flushes and marks a clean shutdown, unless a storage failure closed the log
    /// already, or a group-commit fsync still in flight fails (then nothing is written:
    /// recovery at the next open vouches for the files). Either way the directory is
    /// released once no write or compaction pass is in flight, so the log can be reopened
    /// while old handles still exist.
    fn close(&self) -> Result<()> {
        self.closing.store(true, Ordering::Release);
        let failed_before = self.closed.swap(true, Ordering::AcqRel);
        if let Some(flusher) = self.flusher.lock().take() {
            flusher.stop();
        }
        let mut writer = self.writer.lock();
        // A group-commit fsync may still be in flight: if it fails, the flush here would be
        // a retried fsync, which is never trusted, so the close then writes nothing.
        let result = if failed_before || self.sync.wait_for_fsyncs() {
            Ok(())
        } else {
            self.close_locked(&mut writer)
        };
        self.sync.close_ended();
        drop(writer);
        // A compaction pass still running writes `.cleaned` files into the directory: the
        // directory is released only once it has ended (it stops at its next swap, which
        // finds the log closed), or a new open's pass could share those files.
        self.cleaner.wait_for_pass();
        // The maps go before the directory does: the next open may cut these files, and
        // must find them mapped only where readers still hold bytes (it rewrites those).
        for segment in self.segments.read().values() {
            segment.unmap_for_close();
        }
        self.lock.lock().take();
        result
    }

    fn close_locked(&self, writer: &mut Writer) -> Result<()> {
        self.active()?.on_become_inactive()?;
        self.flush_locked(writer)?;
        let storage = &*self.env.storage;
        let marker = storage.open(
            &self.dir.join(CLEAN_SHUTDOWN_FILE),
            crate::storage::OpenMode::Create,
        )?;
        marker.sync_data()?;
        storage.sync_dir(&self.dir)?;
        // Readers still holding a deleted segment keep their open handles; whatever
        // cannot be removed now goes at the next open.
        self.pending_deletions.purge_all(storage)
    }
}

#[cfg(test)]
mod tests;
