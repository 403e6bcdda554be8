//! [`BatchScanner`]: walks the batches of a `.log` file between two byte positions, in place
//! in the segment's read map when it has one, else reading windows of the file at a time
//! so that scanning many small batches costs few syscalls.
//!
//! It stops (returns `None`) at the end or at a torn tail — fewer bytes than a batch header
//! through its magic byte, or a declared size running past the end — and reports
//! [`Error::Corrupt`] with the file and position for a header that can never be valid
//! (including a size over [`MAX_STORED_BATCH_BYTES`]). The caller compares
//! [`BatchScanner::position`] with the end to tell the two apart. The config's
//! `max.message.bytes` plays no part: it limits appends, not what is already stored. Reads
//! are bounded by the end given (at most the file's size), never by a declared length.

use bytes::Bytes;

use super::MAX_STORED_BATCH_BYTES;
use crate::error::{Error, Result};
use crate::record::{RecordBatch, next_batch_size};
use crate::storage::{StorageFile, read_fully_at};

/// Default bytes read per window.
pub(crate) const SCAN_WINDOW_BYTES: usize = 64 << 10;

/// Walks batches of a `.log` from `position` up to `end`.
pub(crate) struct BatchScanner<'f> {
    file: &'f dyn StorageFile,
    position: u64,
    end: u64,
    window_bytes: usize,
    buf: Vec<u8>,
    /// File position of `buf[0]`.
    buf_start: u64,
    /// The whole file mapped, when it covers `end`: read in place, never into `buf`.
    mapped: Option<Bytes>,
}

impl<'f> BatchScanner<'f> {
    /// A scanner over `[position, end)` of `file`.
    pub(crate) fn new(file: &'f dyn StorageFile, position: u64, end: u64) -> Self {
        Self {
            file,
            position,
            end,
            window_bytes: SCAN_WINDOW_BYTES,
            buf: Vec::new(),
            buf_start: position,
            mapped: None,
        }
    }

    /// Reads from `map` (the file's bytes from position 0) instead of the file, when it
    /// covers the scanned range.
    pub(crate) fn mapped(mut self, map: Option<Bytes>) -> Self {
        let end = usize::try_from(self.end).unwrap_or(usize::MAX);
        self.mapped = map.filter(|m| m.len() >= end);
        self
    }

    /// The buffered bytes and the file position of their first byte.
    fn buffered(&self) -> (&[u8], u64) {
        match &self.mapped {
            Some(map) => (map, 0),
            None => (&self.buf, self.buf_start),
        }
    }

    /// Reads windows of `bytes` instead of the default (small for point lookups).
    pub(crate) fn window_bytes(mut self, bytes: usize) -> Self {
        self.window_bytes = bytes.max(crate::record::BATCH_OVERHEAD);
        self
    }

    /// Position of the next batch: after the last one returned.
    pub(crate) fn position(&self) -> u64 {
        self.position
    }

    /// The next batch and its file position, or `None` at the end or at a torn tail.
    pub(crate) fn next_batch(&mut self) -> Result<Option<(u64, RecordBatch<'_>)>> {
        let remaining = self.end.saturating_sub(self.position);
        if remaining < crate::record::HEADER_SIZE_UP_TO_MAGIC as u64 {
            return Ok(None);
        }
        self.fill(crate::record::HEADER_SIZE_UP_TO_MAGIC)?;
        let path = self.file.path();
        let size = match next_batch_size(self.window()) {
            Ok(Some(size)) => size,
            Ok(None) => return Ok(None),
            Err(e) => return Err(e.in_file(path, self.position)),
        };
        if size > MAX_STORED_BATCH_BYTES {
            return Err(Error::Corrupt {
                path: path.to_path_buf(),
                position: self.position,
                reason: format!(
                    "batch size {size} exceeds {MAX_STORED_BATCH_BYTES}, the most a segment holds"
                ),
            });
        }
        if size as u64 > remaining {
            // Past the end (a torn tail, or a damaged length): nothing is read or allocated.
            return Ok(None);
        }
        self.fill(size)?;
        let position = self.position;
        self.position += size as u64;
        let (buf, buf_start) = self.buffered();
        let start = (position - buf_start) as usize;
        let bytes = buf.get(start..start + size).ok_or_else(|| Error::Corrupt {
            path: path.to_path_buf(),
            position,
            reason: "the file shrank while it was read".into(),
        })?;
        let batch = RecordBatch::parse(bytes).map_err(|e| e.in_file(path, position))?;
        Ok(Some((position, batch)))
    }

    /// The buffered bytes from the current position.
    fn window(&self) -> &[u8] {
        let (buf, buf_start) = self.buffered();
        let start = (self.position - buf_start) as usize;
        buf.get(start..).unwrap_or(&[])
    }

    /// Makes sure at least `needed` bytes from the current position are buffered (the file
    /// may hold fewer; the caller has checked against `end`).
    fn fill(&mut self, needed: usize) -> Result<()> {
        if self.mapped.is_some() || self.window().len() >= needed {
            return Ok(());
        }
        let want = needed
            .max(self.window_bytes)
            .min(usize::try_from(self.end - self.position).unwrap_or(usize::MAX));
        self.buf.resize(want, 0);
        let n = read_fully_at(self.file, &mut self.buf, self.position)?;
        self.buf.truncate(n);
        self.buf_start = self.position;
        Ok(())
    }
}
