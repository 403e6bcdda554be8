//! [`Records`]: the lazy reader behind `Partition::read_from` and friends.
//!
//! It finds the first batch (S17: floor segment → floor index entry → forward scan), then
//! reads whole batches in growing chunks (16 KiB up to 1 MiB) with positional reads,
//! checks each batch's CRC-32C, and hands out [`LogRecord`]s that share the chunk's buffer
//! instead of copying keys and values. It stops at the bound (high watermark or log end,
//! fixed when the read starts) or once `max_bytes` of batches were read — after at least
//! one batch. Segments deleted or rolled meanwhile are handled: the reader keeps the
//! segment it is in alive and moves to the next one by base offset.

use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::Inner;
use crate::error::{Error, Result};
use crate::record::{Compression, LogRecord, RecordBatch, RecordIter, next_batch_size};
use crate::segment::Segment;

const FIRST_CHUNK_BYTES: usize = 16 << 10;
const MAX_CHUNK_BYTES: usize = 1 << 20;

/// Up to where a read may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadBound {
    /// Up to the high watermark: what consumers see (committed records).
    #[default]
    HighWatermark,
    /// Up to the log end offset, including records not yet replicated.
    LogEnd,
}

/// Options for [`crate::Partition::read`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadOptions {
    /// Stop after this many bytes of batches (at least one batch is always read).
    /// `None` reads to the bound.
    pub max_bytes: Option<usize>,
    /// Up to where to read.
    pub bound: ReadBound,
}

impl ReadOptions {
    /// Sets [`ReadOptions::max_bytes`].
    #[must_use]
    pub fn max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = Some(max_bytes);
        self
    }

    /// Sets [`ReadOptions::bound`].
    #[must_use]
    pub fn bound(mut self, bound: ReadBound) -> Self {
        self.bound = bound;
        self
    }
}

/// Records read from a partition, in offset order: an iterator of `Result<LogRecord>`.
/// After an error it ends.
#[derive(Debug)]
pub struct Records {
    inner: Arc<Inner>,
    /// Next offset wanted.
    next_offset: u64,
    /// Offsets at or past this are not returned.
    bound: u64,
    /// Bytes of batches still allowed, if limited.
    budget: Option<usize>,
    read_a_batch: bool,
    segment: Option<Arc<Segment>>,
    /// File position of `chunk[0]` in the current segment.
    chunk_start: u64,
    chunk: Bytes,
    /// Position in `chunk` of the next batch.
    chunk_pos: usize,
    next_chunk_bytes: usize,
    pending: std::vec::IntoIter<LogRecord>,
    /// One past the last offset of the batch in `pending` (compaction can leave the last
    /// offsets of a batch without records; they are passed over, not re-read).
    batch_end: u64,
    done: bool,
}

impl Records {
    pub(super) fn new(inner: Arc<Inner>, offset: u64, options: ReadOptions) -> Result<Self> {
        let log_start = inner.log_start_offset.load(Ordering::Acquire);
        let log_end = inner.log_end_offset.load(Ordering::Acquire);
        if offset < log_start || offset > log_end {
            return Err(Error::OffsetOutOfRange {
                requested: offset,
                log_start,
                log_end,
            });
        }
        let bound = match options.bound {
            ReadBound::HighWatermark => inner.high_watermark.load(Ordering::Acquire),
            ReadBound::LogEnd => log_end,
        };
        Ok(Self {
            inner,
            next_offset: offset,
            bound,
            budget: options.max_bytes,
            read_a_batch: false,
            segment: None,
            chunk_start: 0,
            chunk: Bytes::new(),
            chunk_pos: 0,
            next_chunk_bytes: FIRST_CHUNK_BYTES,
            pending: Vec::new().into_iter(),
            batch_end: offset,
            done: offset >= bound,
        })
    }

    /// The offset after the last record returned: where a follow-up read should start.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// Positions the reader on the batch holding `next_offset`, moving through segments
    /// as needed. Returns false when nothing is left.
    fn seek(&mut self) -> Result<bool> {
        let mut candidate = {
            let segments = self.inner.segments.read();
            segments
                .range(..=self.next_offset)
                .next_back()
                .or_else(|| segments.iter().next())
                .map(|(_, s)| s.clone())
        };
        while let Some(segment) = candidate {
            if let Some(found) = segment.find_batch(self.next_offset)? {
                self.chunk_start = found.position;
                self.chunk = Bytes::new();
                self.chunk_pos = 0;
                self.segment = Some(segment);
                return Ok(true);
            }
            let segments = self.inner.segments.read();
            candidate = segments
                .range((Bound::Excluded(segment.base_offset()), Bound::Unbounded))
                .next()
                .map(|(_, s)| s.clone());
        }
        Ok(false)
    }

    /// Decodes the next batch into `pending`. Returns false when the read is over.
    fn load_next_batch(&mut self) -> Result<bool> {
        loop {
            if self.next_offset >= self.bound {
                return Ok(false);
            }
            if self.read_a_batch && self.budget == Some(0) {
                return Ok(false);
            }
            let Some(segment) = self.segment.clone() else {
                if !self.seek()? {
                    return Ok(false);
                }
                continue;
            };
            let Some((position, size)) = self.buffer_next_batch(&segment)? else {
                // End of this segment: move on by offset.
                self.segment = None;
                if !self.seek()? {
                    return Ok(false);
                }
                continue;
            };
            if let Some(budget) = self.budget {
                if self.read_a_batch && size > budget {
                    return Ok(false);
                }
                self.budget = Some(budget.saturating_sub(size));
            }
            self.read_a_batch = true;
            let bytes = self.chunk.slice(self.chunk_pos..self.chunk_pos + size);
            self.chunk_pos += size;
            let (records, last_offset) = decode(&bytes, &segment, position)?;
            self.pending = records.into_iter();
            self.batch_end = last_offset + 1;
            return Ok(true);
        }
    }

    /// Makes sure the next whole batch is in `chunk`; returns its position and size, or
    /// `None` at the end of the segment's published bytes.
    fn buffer_next_batch(&mut self, segment: &Segment) -> Result<Option<(u64, usize)>> {
        let end = segment.size_bytes();
        let position = self.chunk_start + self.chunk_pos as u64;
        let path = segment.log_path();
        let header_len = crate::record::HEADER_SIZE_UP_TO_MAGIC;
        let mut size =
            peek_size(&self.chunk[self.chunk_pos..]).map_err(|e| e.in_file(path, position))?;
        if size.is_none_or(|s| self.chunk.len() - self.chunk_pos < s) {
            if end.saturating_sub(position) < header_len as u64 {
                return Ok(None);
            }
            let want = self.next_chunk_bytes.max(size.unwrap_or(header_len));
            let len = usize::try_from(end - position)
                .unwrap_or(usize::MAX)
                .min(want);
            let mut buf = vec![0u8; len];
            let n = segment.read_at(&mut buf, position)?;
            buf.truncate(n);
            self.chunk = Bytes::from(buf);
            self.chunk_start = position;
            self.chunk_pos = 0;
            self.next_chunk_bytes = (self.next_chunk_bytes * 2).min(MAX_CHUNK_BYTES);
            size = peek_size(&self.chunk).map_err(|e| e.in_file(path, position))?;
            let Some(s) = size else { return Ok(None) };
            if self.chunk.len() < s {
                if (end - position) < s as u64 {
                    return Ok(None);
                }
                // The batch is larger than the chunk: read exactly it.
                let mut buf = vec![0u8; s];
                let n = segment.read_at(&mut buf, position)?;
                if n < s {
                    return Ok(None);
                }
                self.chunk = Bytes::from(buf);
            }
        }
        Ok(size.map(|s| (position, s)))
    }
}

/// The size of the batch at the start of `bytes`, or `None` if its header isn't there.
fn peek_size(bytes: &[u8]) -> Result<Option<usize>> {
    next_batch_size(bytes)
}

/// Validates one batch and turns its records into `LogRecord`s sharing `bytes`.
/// Also returns the batch's last offset.
fn decode(bytes: &Bytes, segment: &Segment, position: u64) -> Result<(Vec<LogRecord>, u64)> {
    let path = segment.log_path();
    let batch = RecordBatch::parse(bytes).map_err(|e| e.in_file(path, position))?;
    batch
        .ensure_valid()
        .map_err(|e| e.in_file(path, position))?;
    let header = *batch.header();
    let compression = header
        .compression()
        .map_err(|e| e.in_file(path, position))?;
    let records = if compression == Compression::None {
        bytes.slice(crate::record::BATCH_OVERHEAD..)
    } else {
        let decompressed = batch
            .records_bytes()
            .map_err(|e| e.in_file(path, position))?;
        Bytes::from(decompressed.into_owned())
    };
    let mut out = Vec::with_capacity(
        usize::try_from(header.records_count)
            .unwrap_or(0)
            .min(1 << 16),
    );
    for view in RecordIter::new(&header, &records) {
        let view = view.map_err(|e| e.in_file(path, position))?;
        out.push(LogRecord::from_view(&records, &view));
    }
    Ok((out, header.last_offset().max(0) as u64))
}

impl Iterator for Records {
    type Item = Result<LogRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            for record in self.pending.by_ref() {
                if record.offset() >= self.bound {
                    self.done = true;
                    self.pending = Vec::new().into_iter();
                    return None;
                }
                if record.offset() >= self.next_offset {
                    self.next_offset = record.offset() + 1;
                    return Some(Ok(record));
                }
            }
            if self.done {
                return None;
            }
            self.next_offset = self.next_offset.max(self.batch_end.min(self.bound));
            match self.load_next_batch() {
                Ok(true) => {}
                Ok(false) => self.done = true,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}
