//! [`Segment`]: one `.log` of record batches with its sparse `.index` and `.timeindex`,
//! all named by the segment's base offset (S14).
//!
//! A segment appends whole batches, adds an index entry before a batch once more than
//! `index.interval.bytes` were written since the last one (so the first batch is never
//! indexed), finds the byte position of an offset (S17 steps 2–3) and the first offset at or
//! after a timestamp, truncates, decides when the log must roll, and recovers itself from a
//! crash by re-validating every batch and rebuilding both indexes.
//!
//! Concurrency: the owning log calls the mutating methods under its single-writer lock.
//! Readers on other threads use `&self` methods; they see bytes up to the published
//! [`Segment::size_bytes`] and take the index lock only for a lookup.

mod cleaning;
mod files;
mod recover;
mod rewrite;
mod scan;
mod split;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};
use crate::index::{SparseIndex, TimeIndex};
use crate::record::{BatchHeader, NO_TIMESTAMP, RecordIter};
use crate::storage::{OpenMode, ReadMap, Storage, StorageFile};

pub use files::{
    CLEANED_SUFFIX, DELETED_SUFFIX, INDEX_SUFFIX, LOG_SUFFIX, REWRITE_SUFFIX, SWAP_SUFFIX,
    SegmentFile, TIME_INDEX_SUFFIX, parse_segment_file_name,
};
pub use recover::{Overflow, Recovered};
pub(crate) use scan::BatchScanner;

/// Offset-index entries checked against the `.log` by [`Segment::sanity_check`].
const INDEX_SAMPLES: usize = 8;

/// Bytes read per window when looking up one offset: an index interval plus a batch or two.
const LOOKUP_WINDOW_BYTES: usize = 16 << 10;

/// The most disk blocks reserved at a time ahead of the active segment's appends. A 110
/// KB write into reserved blocks took 27.7 instead of 36.4 µs here (ext4): the file
/// system's per-page block allocation is done once per reservation instead of per write.
const RESERVE_BYTES: u64 = 8 << 20;

/// The least reserved at a time: a reservation is as large as the segment already is,
/// between this and [`RESERVE_BYTES`], so the many small partitions of a busy broker
/// (`__consumer_offsets` has 50) hold little reserved space each.
const MIN_RESERVE_BYTES: u64 = 256 << 10;

/// `Segment::reserved_to` after a refused reservation: an append never ends past it.
const NO_RESERVATIONS: u64 = u64::MAX;

/// The largest batch a scan of stored data accepts: a segment file never passes `i32::MAX`
/// bytes (Kafka's `segment.bytes` is an int, and offset-index positions are 32-bit). A
/// batch stored under a larger `max.message.bytes` or `segment.bytes` than today's stays
/// readable; those settings limit appends only.
pub const MAX_STORED_BATCH_BYTES: usize = i32::MAX as usize;

/// Whether a log's batches may leave offset gaps: one setting shared by the log and every
/// segment it holds (clones share it), so that turning it on holds for all of them at once.
/// It only ever turns on: a log that may hold gaps keeps them.
#[derive(Debug, Clone, Default)]
pub struct OffsetGaps(Arc<AtomicBool>);

impl OffsetGaps {
    /// A setting of its own, starting as `allowed`.
    pub fn new(allowed: bool) -> Self {
        Self(Arc::new(AtomicBool::new(allowed)))
    }

    /// Whether batches may leave offset gaps.
    pub fn allowed(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// Allows gaps from now on, for every holder of this setting. The log calls it only
    /// once its `.offset-gaps` marker is durable, under its writer lock.
    pub(crate) fn allow(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// The sizes a segment needs from the log's configuration.
#[derive(Debug, Clone)]
pub struct SegmentLimits {
    /// `segment.index.bytes`: preallocated size of each index file.
    pub index_bytes: usize,
    /// `index.interval.bytes`: bytes of log between offset-index entries.
    pub index_interval_bytes: usize,
    /// Bytes the read map of a smaller segment spans: the largest a segment grows through
    /// appends (`max(segment.bytes, max.message.bytes)`), so appends show through the map.
    /// Not a limit on stored batches: a scan accepts any batch Kafka's format allows in a
    /// segment (up to [`MAX_STORED_BATCH_BYTES`]), whatever the config says now.
    pub map_bytes: usize,
    /// Whether batches may leave offset gaps: the log compacts, or did under an earlier
    /// policy (its gaps stay), or copies a leader's log that may hold them. When not,
    /// every batch must start where the previous one ended, and the first at the
    /// segment's base offset. Shared by all the log's segments.
    pub offset_gaps: OffsetGaps,
}

/// Where an offset lives in a segment: the batch that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPosition {
    /// Byte position of the batch in the `.log`.
    pub position: u64,
    /// The batch's header.
    pub header: BatchHeader,
}

/// One segment: `.log` + `.index` + `.timeindex`.
#[derive(Debug)]
pub struct Segment {
    base_offset: u64,
    log: Arc<dyn StorageFile>,
    limits: SegmentLimits,
    /// Valid bytes in the `.log`; readers never read past it.
    size_bytes: AtomicU64,
    /// One past the last offset stored (the base offset when empty).
    next_offset: AtomicU64,
    /// Largest record timestamp stored, `NO_TIMESTAMP` when none.
    max_timestamp: AtomicI64,
    /// Bumped before every truncation, so a reader that finds fewer bytes than promised
    /// can tell a concurrent truncation from damage.
    truncations: AtomicU64,
    /// End of the disk blocks reserved ahead of the appends
    /// ([`StorageFile::preallocate`]); 0 when none are, [`NO_RESERVATIONS`] once one was
    /// refused (unsupported, or no room): not asked again while the segment is active.
    /// Written under the log's writer lock.
    reserved_to: AtomicU64,
    indexes: RwLock<Indexes>,
    state: Mutex<WriteState>,
    /// Read-only map of the `.log`, made on its first read.
    mapping: Mutex<Mapping>,
}

/// The `.log`'s read map, and whether one may be made (not while a truncation runs).
struct Mapping {
    blocked: bool,
    map: Option<ReadMap>,
}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapping")
            .field("blocked", &self.blocked)
            .field("mapped", &self.map.is_some())
            .finish()
    }
}

/// A [`ReadMap`] handed to a reader as the owner of a [`Bytes`]: the map lives while any
/// slice of it does, and the storage counts it as a live map of the file meanwhile.
struct MapHolder(ReadMap);

impl AsRef<[u8]> for MapHolder {
    fn as_ref(&self) -> &[u8] {
        (*self.0).as_ref()
    }
}

#[derive(Debug)]
struct Indexes {
    offsets: SparseIndex,
    times: TimeIndex,
}

/// Writer-only bookkeeping (touched under the log's writer lock).
#[derive(Debug)]
struct WriteState {
    bytes_since_last_index_entry: usize,
    /// Last offset of the batch holding `max_timestamp`.
    offset_of_max_timestamp: u64,
    /// Max timestamp of the first batch; time-based rolls count from it.
    first_batch_timestamp: Option<i64>,
    /// Wall-clock time the segment was created or emptied, for batches without timestamps.
    created_ms: i64,
    /// Wall-clock time of the last append, truncation, creation or load: the segment's
    /// age for time retention when it holds no record timestamp (Kafka's file mtime).
    modified_ms: i64,
}

impl WriteState {
    fn new(base_offset: u64, now_ms: i64) -> Self {
        Self {
            bytes_since_last_index_entry: 0,
            offset_of_max_timestamp: base_offset,
            first_batch_timestamp: None,
            created_ms: now_ms,
            modified_ms: now_ms,
        }
    }
}

/// What the roll check needs to know about the incoming batch.
#[derive(Debug, Clone, Copy)]
pub struct IncomingBatch {
    /// Encoded size in bytes.
    pub size_bytes: usize,
    /// Largest record timestamp in it.
    pub max_timestamp: i64,
    /// Its last offset.
    pub last_offset: u64,
}

impl Segment {
    /// Creates a new, empty segment based at `base_offset` in `dir`, replacing any files of
    /// that name.
    pub fn create(
        storage: &dyn Storage,
        dir: &Path,
        base_offset: u64,
        limits: SegmentLimits,
        now_ms: i64,
    ) -> Result<Self> {
        // Unlinked, never cut in place: a reader may still map an old file of this name.
        for kind in [SegmentFile::Log, SegmentFile::Index, SegmentFile::TimeIndex] {
            storage.remove_file(&kind.path(dir, base_offset))?;
        }
        let log = storage.open(&SegmentFile::Log.path(dir, base_offset), OpenMode::Create)?;
        Self::with_files(storage, dir, base_offset, log, limits, now_ms, "")
    }

    /// Opens the existing segment based at `base_offset`, creating missing index files.
    /// Reads only the tail after the last index entry to learn the next offset and the
    /// largest timestamp; it does not validate batches (see [`Segment::recover`]).
    pub fn open(
        storage: &dyn Storage,
        dir: &Path,
        base_offset: u64,
        limits: SegmentLimits,
        now_ms: i64,
    ) -> Result<Self> {
        let log = storage.open(&SegmentFile::Log.path(dir, base_offset), OpenMode::Existing)?;
        let segment = Self::with_files(storage, dir, base_offset, log, limits, now_ms, "")?;
        segment
            .size_bytes
            .store(segment.log.len()?, Ordering::Release);
        Ok(segment)
    }

    fn with_files(
        storage: &dyn Storage,
        dir: &Path,
        base_offset: u64,
        log: Arc<dyn StorageFile>,
        limits: SegmentLimits,
        now_ms: i64,
        suffix: &str,
    ) -> Result<Self> {
        let offsets = SparseIndex::open(
            storage,
            &cleaning::with_suffix(SegmentFile::Index.path(dir, base_offset), suffix),
            base_offset,
            limits.index_bytes,
        )?;
        let times = TimeIndex::open(
            storage,
            &cleaning::with_suffix(SegmentFile::TimeIndex.path(dir, base_offset), suffix),
            base_offset,
            limits.index_bytes,
        )?;
        Ok(Self {
            base_offset,
            log,
            limits,
            size_bytes: AtomicU64::new(0),
            next_offset: AtomicU64::new(base_offset),
            max_timestamp: AtomicI64::new(NO_TIMESTAMP),
            truncations: AtomicU64::new(0),
            reserved_to: AtomicU64::new(0),
            indexes: RwLock::new(Indexes { offsets, times }),
            state: Mutex::new(WriteState::new(base_offset, now_ms)),
            mapping: Mutex::new(Mapping {
                blocked: false,
                map: None,
            }),
        })
    }

    /// The first offset this segment can hold; also its file name.
    pub fn base_offset(&self) -> u64 {
        self.base_offset
    }

    /// Valid bytes in the `.log`.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes.load(Ordering::Acquire)
    }

    /// One past the last offset stored; the base offset when empty.
    pub fn next_offset(&self) -> u64 {
        self.next_offset.load(Ordering::Acquire)
    }

    /// Largest record timestamp stored, or `-1` when none.
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp.load(Ordering::Acquire)
    }

    /// How many truncations have started on this segment.
    pub(crate) fn truncations(&self) -> u64 {
        self.truncations.load(Ordering::Acquire)
    }

    /// Whether the `.log` holds no batch.
    pub fn is_empty(&self) -> bool {
        self.size_bytes() == 0
    }

    /// Path of the `.log` file.
    pub fn log_path(&self) -> &Path {
        self.log.path()
    }

    /// Entries in the offset index.
    pub fn offset_index_entries(&self) -> usize {
        self.indexes.read().offsets.entries()
    }

    /// Entries in the time index.
    pub fn time_index_entries(&self) -> usize {
        self.indexes.read().times.entries()
    }

    /// Paths of the three files.
    pub fn paths(&self) -> [PathBuf; 3] {
        let indexes = self.indexes.read();
        [
            self.log.path().to_path_buf(),
            indexes.offsets.path().to_path_buf(),
            indexes.times.path().to_path_buf(),
        ]
    }

    /// Whether the log must roll to a new segment before `incoming` is appended here:
    /// it would pass `segment_bytes`; its records span more than `segment_ms` from this
    /// segment's first batch (wall clock since creation when that had no timestamp); an
    /// index is full; or its last offset would not fit as a 32-bit relative offset.
    /// An empty segment rolls only for the last reason.
    pub fn should_roll(
        &self,
        incoming: &IncomingBatch,
        segment_bytes: u64,
        segment_ms: i64,
        now_ms: i64,
    ) -> bool {
        let relative_overflow = incoming.last_offset.saturating_sub(self.base_offset)
            > i32::MAX as u64
            || incoming.last_offset < self.base_offset;
        if self.is_empty() {
            return relative_overflow;
        }
        let too_big = self.size_bytes() + incoming.size_bytes as u64 > segment_bytes;
        let waited_ms = {
            let state = self.state.lock();
            match state.first_batch_timestamp {
                Some(first) if first != NO_TIMESTAMP => {
                    incoming.max_timestamp.saturating_sub(first)
                }
                _ => now_ms.saturating_sub(state.created_ms),
            }
        };
        let indexes = self.indexes.read();
        too_big
            || waited_ms > segment_ms
            || indexes.offsets.is_full()
            || indexes.times.is_full()
            || relative_overflow
    }

    /// Records that the log wrote to this segment at `now_ms` (after an append): time
    /// retention counts the age of a segment without record timestamps from its last write.
    pub(crate) fn touch(&self, now_ms: i64) {
        let mut state = self.state.lock();
        state.modified_ms = state.modified_ms.max(now_ms);
    }

    /// Appends one encoded batch (offsets already assigned) at the end of the `.log`.
    pub fn append(&self, batch: &[u8], header: &BatchHeader) -> Result<()> {
        self.append_parts(&[batch], header)
    }

    /// Appends one encoded batch given as `parts` to write back to back (its header,
    /// then its records: see [`StorageFile::write_all_parts_at`]).
    pub fn append_parts(&self, parts: &[&[u8]], header: &BatchHeader) -> Result<()> {
        let len = parts.iter().map(|p| p.len() as u64).sum::<u64>();
        let last_offset = header.last_offset() as u64;
        if last_offset < self.base_offset || last_offset - self.base_offset > i32::MAX as u64 {
            return Err(Error::SegmentOffsetOverflow {
                base_offset: self.base_offset,
                offset: last_offset,
            });
        }
        let position = self.size_bytes();
        self.reserve(position + len)?;
        self.log.write_all_parts_at(parts, position)?;
        let mut state = self.state.lock();
        self.track_batch(&mut state, position, header)?;
        // Size before next offset: a reader that sees the new next offset also sees the
        // bytes that hold it (readers load them in the opposite order).
        self.size_bytes.store(position + len, Ordering::Release);
        self.next_offset.store(last_offset + 1, Ordering::Release);
        Ok(())
    }

    /// Whether the `.log` holds bytes past [`Segment::size_bytes`] (or its length cannot
    /// be read): what an append whose write failed part way leaves behind.
    pub(crate) fn holds_bytes_past_end(&self) -> bool {
        self.log.len().map_or(true, |len| len > self.size_bytes())
    }

    /// Reserves disk blocks ahead of the appends (as much as the segment holds, between
    /// [`MIN_RESERVE_BYTES`] and [`RESERVE_BYTES`] at a time, up to the largest the segment
    /// grows to) when a write would end past those reserved.
    fn reserve(&self, end: u64) -> Result<()> {
        let reserved = self.reserved_to.load(Ordering::Relaxed);
        if end <= reserved {
            return Ok(());
        }
        let from = reserved.max(self.size_bytes());
        let ahead = from.clamp(MIN_RESERVE_BYTES, RESERVE_BYTES);
        let to = end
            .saturating_add(ahead)
            .min(self.limits.map_bytes as u64)
            .max(end);
        let reserved = self.log.preallocate(from, to - from)?;
        let mark = if reserved { to } else { NO_RESERVATIONS };
        self.reserved_to.store(mark, Ordering::Relaxed);
        Ok(())
    }

    /// Updates timestamps, the roll clock and the indexes for a batch written at
    /// `position` (Kafka's cadence: index before the batch once the interval is passed).
    /// The caller publishes the new size and next offset.
    fn track_batch(
        &self,
        state: &mut WriteState,
        position: u64,
        header: &BatchHeader,
    ) -> Result<()> {
        let last_offset = header.last_offset() as u64;
        let grows = header.max_timestamp > self.max_timestamp();
        let max_timestamp = if grows {
            header.max_timestamp
        } else {
            self.max_timestamp()
        };
        let offset_of_max = if grows {
            last_offset
        } else {
            state.offset_of_max_timestamp
        };
        if state.bytes_since_last_index_entry > self.limits.index_interval_bytes {
            let mut indexes = self.indexes.write();
            // Full only in recovery (appends roll first): a segment written across a
            // reopen can need more entries than the cadence gave it. Sparser is still
            // correct, so the entry is skipped.
            if !indexes.offsets.is_full() && !indexes.times.is_full() {
                // Positions fit: segments are at most i32::MAX bytes (LogConfig::validate).
                indexes.offsets.append(last_offset, position as u32)?;
                if let Err(e) = indexes
                    .times
                    .maybe_append(max_timestamp, offset_of_max, false)
                {
                    // All or nothing: no entry may describe a batch that is not published.
                    indexes.offsets.truncate_to(last_offset);
                    return Err(e);
                }
                state.bytes_since_last_index_entry = 0;
            }
        }
        // Nothing can fail from here: commit the batch's effect on the bookkeeping.
        if position == 0 {
            state.first_batch_timestamp = Some(header.max_timestamp);
        }
        if grows {
            self.max_timestamp.store(max_timestamp, Ordering::Release);
            state.offset_of_max_timestamp = last_offset;
        }
        state.bytes_since_last_index_entry += header.size_bytes();
        Ok(())
    }

    /// The batch holding `offset`, or the first batch after it when it falls in a gap;
    /// `None` when the segment has nothing at or after `offset` (S17 steps 2–3).
    pub fn find_batch(&self, offset: u64) -> Result<Option<BatchPosition>> {
        self.locate(offset).map(Result::ok)
    }

    /// Like [`Segment::find_batch`], but when nothing is found it tells where the scan
    /// stopped (the end of the readable bytes, or the start of a batch that runs past it).
    pub(crate) fn locate(&self, offset: u64) -> Result<Result<BatchPosition, u64>> {
        let start = u64::from(self.indexes.read().offsets.lookup(offset).position);
        let mut scanner = BatchScanner::new(&*self.log, start, self.size_bytes())
            .window_bytes(LOOKUP_WINDOW_BYTES)
            .mapped(self.mapped_bytes()?);
        while let Some((position, batch)) = scanner.next_batch()? {
            let header = *batch.header();
            if header.last_offset() as u64 >= offset {
                return Ok(Ok(BatchPosition { position, header }));
            }
        }
        Ok(Err(scanner.position()))
    }

    /// The first record at or after `min_offset` whose timestamp is ≥ `timestamp`, as
    /// `(offset, timestamp)`; `None` when there is none in this segment.
    pub fn find_offset_by_timestamp(
        &self,
        timestamp: i64,
        min_offset: u64,
    ) -> Result<Option<(u64, i64)>> {
        if self.max_timestamp() < timestamp {
            return Ok(None);
        }
        let start = {
            let indexes = self.indexes.read();
            let floor = indexes.times.lookup(timestamp);
            let from = floor.offset.max(min_offset);
            u64::from(indexes.offsets.lookup(from).position)
        };
        let path = self.log.path();
        let mut scanner =
            BatchScanner::new(&*self.log, start, self.size_bytes()).mapped(self.mapped_bytes()?);
        while let Some((position, batch)) = scanner.next_batch()? {
            let header = *batch.header();
            if header.max_timestamp < timestamp || (header.last_offset() as u64) < min_offset {
                continue;
            }
            batch
                .ensure_valid()
                .map_err(|e| e.in_file(path, position))?;
            let records = batch
                .records_bytes()
                .map_err(|e| e.in_file(path, position))?;
            for record in RecordIter::new(&header, &records) {
                let record = record.map_err(|e| e.in_file(path, position))?;
                if record.offset() >= min_offset && record.timestamp() >= timestamp {
                    return Ok(Some((record.offset(), record.timestamp())));
                }
            }
        }
        Ok(None)
    }

    /// Removes every batch whose last offset is ≥ `offset` (a batch holding `offset` goes
    /// whole). Returns the bytes removed.
    ///
    /// A segment whose `.log` is still mapped — by readers of this log, or of an earlier
    /// one on the same directory — is refused with [`Error::SegmentInUse`]: cutting it
    /// would fault their pages. No map is made while the cut runs.
    pub fn truncate_to(&self, offset: u64, now_ms: i64) -> Result<u64> {
        if self.release_map() {
            self.mapping.lock().blocked = false;
            return Err(Error::SegmentInUse {
                path: self.log_path().to_path_buf(),
            });
        }
        let result = self.cut_to(offset, now_ms);
        self.mapping.lock().blocked = false;
        result
    }

    fn cut_to(&self, offset: u64, now_ms: i64) -> Result<u64> {
        let Some(cut) = self.find_batch(offset)? else {
            return Ok(0);
        };
        self.truncations.fetch_add(1, Ordering::AcqRel);
        let old_size = self.size_bytes();
        {
            let mut indexes = self.indexes.write();
            indexes.offsets.truncate_to(cut.header.base_offset as u64);
            indexes.times.truncate_to(cut.header.base_offset as u64);
            indexes.offsets.resize(self.limits.index_bytes)?;
            indexes.times.resize(self.limits.index_bytes)?;
        }
        self.size_bytes.store(cut.position, Ordering::Release);
        // Also releases the blocks reserved past the end.
        self.reserved_to.store(0, Ordering::Relaxed);
        self.log.set_len(cut.position)?;
        self.reload_tail(now_ms)?;
        // Durable before anything replaces the cut records: a power loss must not bring
        // them back under the leader epochs (checkpointed meanwhile) of their successors.
        self.log.sync_data()?;
        Ok(old_size - cut.position)
    }

    /// Recomputes the next offset, the largest timestamp and the roll clock from the time
    /// index's last entry and the batches after the last index entry, checking the CRC
    /// and offset order of each of those batches.
    pub(crate) fn reload_tail(&self, now_ms: i64) -> Result<()> {
        let (start, last_time) = {
            let indexes = self.indexes.read();
            let last_time = indexes.times.last_entry();
            let from = last_time.offset.min(indexes.offsets.last_offset());
            (u64::from(indexes.offsets.lookup(from).position), last_time)
        };
        let mut state = self.state.lock();
        *state = WriteState::new(self.base_offset, now_ms);
        self.max_timestamp
            .store(last_time.timestamp, Ordering::Release);
        state.offset_of_max_timestamp = last_time.offset;
        self.next_offset.store(self.base_offset, Ordering::Release);
        let size = self.size_bytes();
        let mut scanner = BatchScanner::new(&*self.log, start, size);
        let mut next = None;
        while let Some((position, batch)) = scanner.next_batch()? {
            // The tail decides the log end: its header fields must be the written ones.
            batch
                .ensure_valid()
                .map_err(|e| e.in_file(self.log.path(), position))?;
            let header = batch.header();
            let expected = next.or((position == 0).then_some(self.base_offset));
            self.check_follows(expected, header, position)?;
            if header.max_timestamp > self.max_timestamp() {
                self.max_timestamp
                    .store(header.max_timestamp, Ordering::Release);
                state.offset_of_max_timestamp = header.last_offset() as u64;
            }
            next = Some(header.last_offset() as u64 + 1);
        }
        if scanner.position() != size {
            return Err(Error::Corrupt {
                path: self.log.path().to_path_buf(),
                position: scanner.position(),
                reason: "incomplete batch at the end of the segment".into(),
            });
        }
        if let Some(next) = next {
            self.next_offset.store(next, Ordering::Release);
        } else {
            let last_indexed = self.indexes.read().offsets.last_offset();
            if last_indexed > self.base_offset {
                self.next_offset.store(last_indexed + 1, Ordering::Release);
            }
        }
        let last_time = self.indexes.read().times.last_entry();
        if last_time.timestamp != NO_TIMESTAMP
            && (last_time.offset >= self.next_offset()
                || last_time.timestamp > self.max_timestamp())
        {
            return Err(Error::Corrupt {
                path: self.indexes.read().times.path().to_path_buf(),
                position: 0,
                reason: format!(
                    "last entry ({}, {}) lies beyond the log (next offset {}, largest timestamp {})",
                    last_time.timestamp,
                    last_time.offset,
                    self.next_offset(),
                    self.max_timestamp()
                ),
            });
        }
        if size > 0 {
            let mut first =
                BatchScanner::new(&*self.log, 0, size).window_bytes(crate::record::BATCH_OVERHEAD);
            if let Some((_, batch)) = first.next_batch()? {
                state.first_batch_timestamp = Some(batch.header().max_timestamp);
            }
        }
        Ok(())
    }

    /// In a log without offset gaps, a batch must start exactly at `expected` (where the
    /// previous one ended, or the segment's base for the first). The batch CRC does not
    /// cover the base offset, so this is what catches damage to it.
    pub(crate) fn check_follows(
        &self,
        expected: Option<u64>,
        header: &BatchHeader,
        position: u64,
    ) -> Result<()> {
        match expected {
            Some(expected)
                if !self.limits.offset_gaps.allowed() && header.base_offset != expected as i64 =>
            {
                Err(Error::Corrupt {
                    path: self.log.path().to_path_buf(),
                    position,
                    reason: format!(
                        "batch starts at offset {} where {expected} was expected (this log has no offset gaps)",
                        header.base_offset
                    ),
                })
            }
            _ => Ok(()),
        }
    }

    /// Whether batches in this segment may leave offset gaps.
    pub(crate) fn allows_offset_gaps(&self) -> bool {
        self.limits.offset_gaps.allowed()
    }

    /// Checks both indexes: their own sanity rules, and that sampled offset-index entries
    /// (the last one and a few spread over the file) point at the start of a batch whose
    /// last offset is the entry's offset. Random garbage in an index file fails this.
    pub fn sanity_check(&self) -> Result<()> {
        let indexes = self.indexes.read();
        indexes.offsets.sanity_check()?;
        indexes.times.sanity_check()?;
        let entries = indexes.offsets.entries();
        let samples = entries.min(INDEX_SAMPLES);
        for k in 0..samples {
            // Spread over the index, always including the last entry.
            let n = entries - 1 - k * (entries / samples.max(1));
            let entry = indexes.offsets.entry(n)?;
            let mut header = [0u8; crate::record::BATCH_OVERHEAD];
            let read = self.read_at(&mut header, u64::from(entry.position))?;
            let found = header
                .get(..read)
                .and_then(|bytes| BatchHeader::parse(bytes).ok())
                .map(|h| h.last_offset());
            if found != Some(entry.offset as i64) {
                return Err(Error::Corrupt {
                    path: indexes.offsets.path().to_path_buf(),
                    position: n as u64 * 8,
                    reason: format!(
                        "entry {n} maps offset {} to byte {}, where the log holds no batch ending there",
                        entry.offset, entry.position
                    ),
                });
            }
        }
        Ok(())
    }

    /// Grows both indexes back to their preallocated size (for the active segment).
    pub fn resize_indexes(&self, bytes: usize) -> Result<()> {
        let mut indexes = self.indexes.write();
        indexes.offsets.resize(bytes)?;
        indexes.times.resize(bytes)?;
        // Smaller than it was written with: the roll's closing entry still needs a slot.
        indexes.times.keep_last_slot_free();
        Ok(())
    }

    /// Called when the segment stops being the active one (roll or close): writes the
    /// closing time-index entry (largest timestamp → its offset) and trims both indexes.
    pub fn on_become_inactive(&self) -> Result<()> {
        let offset_of_max = self.state.lock().offset_of_max_timestamp;
        let mut indexes = self.indexes.write();
        if self.max_timestamp() != NO_TIMESTAMP {
            indexes
                .times
                .maybe_append(self.max_timestamp(), offset_of_max, true)?;
        }
        indexes.offsets.trim_to_valid_size()?;
        indexes.times.trim_to_valid_size()?;
        drop(indexes);
        // Blocks reserved past the last append go back to the file system.
        let size = self.size_bytes();
        let reserved = self.reserved_to.swap(0, Ordering::Relaxed);
        if reserved > size && reserved != NO_RESERVATIONS {
            self.log.set_len(size)?;
        }
        Ok(())
    }

    /// The `.log` as shared, zero-copy bytes, for reads: a read-only map made on the first
    /// call and kept. The map spans the largest size the segment may reach, so the
    /// active segment's appends show through it without remapping; callers read only
    /// bytes below [`Segment::size_bytes`] (on the simulated disk the map is a copy and may
    /// be shorter: callers fall back to positional reads). `None` while a truncation runs.
    pub(crate) fn mapped_bytes(&self) -> Result<Option<Bytes>> {
        let mut mapping = self.mapping.lock();
        if mapping.blocked || self.is_empty() {
            return Ok(None);
        }
        let map = match &mapping.map {
            Some(map) => map.clone(),
            None => {
                let size = usize::try_from(self.size_bytes()).unwrap_or(usize::MAX);
                let map = self.log.map_read(size.max(self.limits.map_bytes))?;
                mapping.map = Some(map.clone());
                map
            }
        };
        Ok(Some(Bytes::from_owner(MapHolder(map))))
    }

    /// Drops the map and blocks new ones before the `.log` is cut (the caller unblocks
    /// when done). Returns true when the file is still mapped — by readers holding bytes
    /// of this map, or of a map an earlier log on the same directory made (it closed,
    /// but its readers and records may live on): the file must then not be cut in place
    /// (that would fault their pages) but rewritten first.
    pub(crate) fn release_map(&self) -> bool {
        let mut mapping = self.mapping.lock();
        mapping.blocked = true;
        mapping.map = None;
        self.log.is_mapped()
    }

    /// Whether the `.log` is mapped anywhere in the process (see [`Segment::release_map`]).
    pub(crate) fn is_mapped(&self) -> bool {
        self.log.is_mapped()
    }

    /// Drops the segment's maps for good as its log closes: the `.log`'s read map (no new
    /// one is made) and both index maps. A later open of the directory may then resize
    /// and cut these files; bytes of the read map that readers still hold keep it alive,
    /// and that open rewrites the `.log` rather than cut it.
    pub(crate) fn unmap_for_close(&self) {
        self.release_map();
        let mut indexes = self.indexes.write();
        indexes.offsets.unmap();
        indexes.times.unmap();
    }

    /// Makes the `.log` durable.
    pub fn sync_log(&self) -> Result<()> {
        self.log.sync_data()
    }

    /// Makes the `.log` and both indexes durable.
    pub fn flush(&self) -> Result<()> {
        self.log.sync_data()?;
        let indexes = self.indexes.read();
        indexes.offsets.flush()?;
        indexes.times.flush()
    }

    /// Removes the segment's files.
    pub fn delete(&self, storage: &dyn Storage) -> Result<()> {
        for path in self.paths() {
            storage.remove_file(&path)?;
        }
        Ok(())
    }

    /// Renames the segment's three files with the [`DELETED_SUFFIX`], `.log` first (once it
    /// is gone, a reopen no longer sees the segment), and returns the new paths. Open handles
    /// follow the rename, so readers holding the segment keep reading; [`Segment::paths`]
    /// keeps naming the files as they were created. After a call that failed part way,
    /// calling again renames the rest.
    pub fn rename_to_deleted(&self, storage: &dyn Storage) -> Result<[PathBuf; 3]> {
        let paths = self.paths();
        let mut renamed = paths.clone();
        for (from, to) in paths.iter().zip(renamed.iter_mut()) {
            to.as_mut_os_string().push(DELETED_SUFFIX);
            // Renamed already by an earlier call that failed on a later file.
            let done = !storage.exists(from) && storage.exists(to);
            if !done {
                storage.rename(from, to)?;
            }
        }
        Ok(renamed)
    }

    /// The time retention measures the segment's age from: its largest record timestamp,
    /// or, when it holds none, the time of its last append, truncation, creation or load
    /// (Kafka falls back on the file's modification time; the storage seam has none, so a
    /// load counts as a write).
    pub fn largest_timestamp(&self) -> i64 {
        match self.max_timestamp() {
            ts if ts >= 0 => ts,
            _ => self.state.lock().modified_ms,
        }
    }

    /// Reads `buf.len()` bytes of the `.log` at `position` (fewer at its end).
    pub fn read_at(&self, buf: &mut [u8], position: u64) -> Result<usize> {
        crate::storage::read_fully_at(&*self.log, buf, position)
    }
}
