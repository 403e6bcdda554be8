//! Borrowed records inside a batch's records section: [`RecordIter`] yields
//! [`RecordView`]s, whose keys, values and headers point into the section.
//!
//! Every record is fully validated when it is parsed, headers included: its length, key
//! and value lengths, header count, header keys (non-null) and that nothing is left
//! in its body. So [`RecordView::headers`] yields only `Ok` items for a view that
//! [`RecordIter`] produced; the `Result` item type is kept for API stability.
//!
//! Error positions are relative to the records section given to [`RecordIter::new`]
//! (the decompressed bytes for a compressed batch).

use std::borrow::Cow;

use super::batch::{BatchHeader, TimestampType};
use super::varint::{Cursor, fast};
use crate::{Error, Result};

/// One record borrowed from a batch.
#[derive(Debug, Clone, Copy)]
pub struct RecordView<'a> {
    offset: u64,
    timestamp: i64,
    offset_delta: i32,
    timestamp_delta: i64,
    base_sequence: i32,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    header_count: usize,
    header_bytes: &'a [u8],
}

/// One header of a [`RecordView`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderView<'a> {
    /// The header key (never null). Bytes that are not UTF-8 read as U+FFFD, as Kafka's
    /// Java client reads them; the stored bytes are not changed.
    pub key: Cow<'a, str>,
    /// The header value; `None` when encoded as null.
    pub value: Option<&'a [u8]>,
}

impl<'a> RecordView<'a> {
    /// The record's offset: the batch's base offset plus its offset delta.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The record's timestamp in ms. Under create time this is `base_timestamp +
    /// timestamp_delta`; under log-append time it is the batch's `max_timestamp`. When the
    /// batch has a delete horizon, `base_timestamp` is used as stored (it then holds the
    /// horizon), matching how the batch was written.
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// The record's offset relative to the batch's base offset.
    pub fn offset_delta(&self) -> i32 {
        self.offset_delta
    }

    /// The record's timestamp relative to the batch's base timestamp, as stored.
    pub fn timestamp_delta(&self) -> i64 {
        self.timestamp_delta
    }

    /// The key, if not null.
    pub fn key(&self) -> Option<&'a [u8]> {
        self.key
    }

    /// The value, if not null (a null value is a tombstone).
    pub fn value(&self) -> Option<&'a [u8]> {
        self.value
    }

    /// Number of headers.
    pub fn header_count(&self) -> usize {
        self.header_count
    }

    /// The headers, in order. Already validated: every item is `Ok`.
    pub fn headers(&self) -> impl Iterator<Item = Result<HeaderView<'a>>> + 'a {
        HeaderIter::new(self.header_bytes, self.header_count)
    }

    /// The producer sequence of this record: `base_sequence + offset_delta`, wrapping from
    /// `i32::MAX` to 0; -1 when the batch has no base sequence.
    pub fn sequence(&self) -> i32 {
        if self.base_sequence == super::NO_SEQUENCE {
            return super::NO_SEQUENCE;
        }
        let seq = (i64::from(self.base_sequence) + i64::from(self.offset_delta))
            .rem_euclid(i64::from(i32::MAX) + 1);
        seq as i32
    }

    /// The encoded headers (used by [`super::LogRecord`]).
    pub(crate) fn header_bytes(&self) -> &'a [u8] {
        self.header_bytes
    }
}

/// Iterates encoded headers (`count` of them in `bytes`).
#[derive(Debug, Clone)]
pub(crate) struct HeaderIter<'a> {
    cursor: Cursor<'a>,
    left: usize,
}

impl<'a> HeaderIter<'a> {
    pub(crate) fn new(bytes: &'a [u8], count: usize) -> Self {
        HeaderIter {
            cursor: Cursor::new(bytes, 0),
            left: count,
        }
    }
}

fn read_header<'a>(c: &mut Cursor<'a>) -> Result<HeaderView<'a>> {
    let at = c.position();
    let key = c
        .nullable_bytes("header key")?
        .ok_or_else(|| Error::invalid_batch(at, "null header key"))?;
    // As Kafka's `Utils.utf8`: bytes that are not UTF-8 (which non-Java clients may
    // send) read as U+FFFD; the stored bytes stay as they are.
    let key = String::from_utf8_lossy(key);
    let value = c.nullable_bytes("header value")?;
    Ok(HeaderView { key, value })
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = Result<HeaderView<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let item = read_header(&mut self.cursor);
        if item.is_err() {
            self.left = 0;
        }
        Some(item)
    }
}

/// What decoding a record needs from its batch header: the base offset and timestamp
/// the deltas apply to, the log-append time (which replaces every record's timestamp),
/// and the base sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordContext {
    base_offset: i64,
    base_timestamp: i64,
    log_append_time: Option<i64>,
    base_sequence: i32,
}

impl RecordContext {
    /// The context of the batch with `header`.
    pub(crate) fn new(header: &BatchHeader) -> Self {
        RecordContext {
            base_offset: header.base_offset,
            base_timestamp: header.base_timestamp,
            log_append_time: (header.timestamp_type() == TimestampType::LogAppendTime)
                .then_some(header.max_timestamp),
            base_sequence: header.base_sequence,
        }
    }

    /// Decodes and fully validates the record at the cursor, moving the cursor past it.
    /// Inlined so that the common case builds the view in its caller's registers.
    #[inline(always)]
    pub(crate) fn decode<'a>(&self, cursor: &mut Cursor<'a>) -> Result<RecordView<'a>> {
        match self.decode_common(cursor) {
            Some(view) => Ok(view),
            None => self.decode_any(cursor),
        }
    }

    /// The common shape — varints of at most 5 bytes — in straight-line code. `None` (the
    /// cursor unmoved) for anything else, valid or not: [`Self::decode_any`] then decides.
    #[inline(always)]
    fn decode_common<'a>(&self, cursor: &mut Cursor<'a>) -> Option<RecordView<'a>> {
        let buf = cursor.rest();
        let mut at = 0;
        let len = usize::try_from(fast::varint(buf, &mut at)?).ok()?;
        let body = buf.get(at..at.checked_add(len)?)?;
        let mut p = 1; // attributes: unused in v2
        let timestamp_delta = fast::varlong(body, &mut p)?;
        let offset_delta = fast::varint(body, &mut p)?;
        let key = fast::nullable_bytes(body, &mut p)?;
        let value = fast::nullable_bytes(body, &mut p)?;
        let header_count = usize::try_from(fast::varint(body, &mut p)?).ok()?;
        let header_start = p;
        for _ in 0..header_count {
            fast::nullable_bytes(body, &mut p)??; // key: never null
            fast::nullable_bytes(body, &mut p)?;
        }
        if p != body.len() {
            return None;
        }
        let offset = u64::try_from(self.base_offset.checked_add(i64::from(offset_delta))?).ok()?;
        cursor.advance(at + len);
        Some(RecordView {
            offset,
            timestamp: self
                .log_append_time
                .unwrap_or_else(|| self.base_timestamp.wrapping_add(timestamp_delta)),
            offset_delta,
            timestamp_delta,
            base_sequence: self.base_sequence,
            key,
            value,
            header_count,
            header_bytes: body.get(header_start..).unwrap_or_default(),
        })
    }

    /// Any record, with an exact error for a malformed one.
    #[inline(never)]
    fn decode_any<'a>(&self, cursor: &mut Cursor<'a>) -> Result<RecordView<'a>> {
        let at = cursor.position();
        let len = cursor.varint("record length")?;
        let len = usize::try_from(len)
            .map_err(|_| Error::invalid_batch(at, format!("negative record length {len}")))?;
        let body_at = cursor.position();
        let body = cursor.bytes(len, "record")?;
        let mut c = Cursor::new(body, body_at);
        let _attributes = c.u8("record attributes")?;
        let timestamp_delta = c.varlong("timestamp delta")?;
        let offset_delta = c.varint("offset delta")?;
        let key = c.nullable_bytes("key")?;
        let value = c.nullable_bytes("value")?;
        let count_at = c.position();
        let count = c.varint("header count")?;
        // Each header takes at least two bytes (two length varints).
        let header_count = usize::try_from(count)
            .ok()
            .filter(|&n| n <= c.remaining() / 2)
            .ok_or_else(|| {
                Error::invalid_batch(count_at, format!("invalid header count {count}"))
            })?;
        let header_start = c.position() - body_at;
        for _ in 0..header_count {
            read_header(&mut c)?;
        }
        if !c.is_empty() {
            return Err(c.error(format!("{} bytes left over in the record", c.remaining())));
        }
        let header_bytes = body.get(header_start..).unwrap_or_default();
        let offset = self
            .base_offset
            .checked_add(i64::from(offset_delta))
            .and_then(|o| u64::try_from(o).ok())
            .ok_or_else(|| Error::invalid_batch(at, "record offset is negative or overflows"))?;
        let timestamp = self
            .log_append_time
            .unwrap_or_else(|| self.base_timestamp.wrapping_add(timestamp_delta));
        Ok(RecordView {
            offset,
            timestamp,
            offset_delta,
            timestamp_delta,
            base_sequence: self.base_sequence,
            key,
            value,
            header_count,
            header_bytes,
        })
    }
}

/// Passes over `n` records at the cursor reading only their length prefixes: no
/// validation and no views. For batches without offset gaps, record `i` has offset delta
/// `i`, so this seeks by offset cheaply (the batch CRC has already vouched for the bytes).
pub(crate) fn skip_records(cursor: &mut Cursor<'_>, n: usize) -> Result<()> {
    for _ in 0..n {
        let at = cursor.position();
        let len = cursor.varint("record length")?;
        let len = usize::try_from(len)
            .map_err(|_| Error::invalid_batch(at, format!("negative record length {len}")))?;
        cursor.bytes(len, "record")?;
    }
    Ok(())
}

/// Whether `records` holds exactly `count` records of the common shape (varints of at
/// most 5 bytes) that [`RecordIter`] accepts, with offset deltas exactly `0..count` — what
/// an append checks — without building views; gives the largest record timestamp
/// (`base_timestamp` plus its delta, wrapping as Kafka's `long` does: a delta may wrap, so
/// the largest delta need not give the largest timestamp). `None` says only that this
/// fast pass cannot vouch for the bytes: [`RecordIter`] then decides, with an exact error.
pub(crate) fn records_in_order(records: &[u8], count: usize, base_timestamp: i64) -> Option<i64> {
    let mut at = 0;
    let mut max_timestamp = i64::MIN;
    for i in 0..count {
        let (next, timestamp_delta) = skip_common_record(records, at, i)?;
        at = next;
        max_timestamp = max_timestamp.max(base_timestamp.wrapping_add(timestamp_delta));
    }
    (at == records.len()).then_some(max_timestamp)
}

/// The end of the record at `at` and its timestamp delta, if it has the common shape, is
/// valid as [`RecordContext::decode`] checks it, and has offset delta `delta`.
#[inline(always)]
fn skip_common_record(buf: &[u8], mut at: usize, delta: usize) -> Option<(usize, i64)> {
    let len = usize::try_from(fast::varint(buf, &mut at)?).ok()?;
    let end = at.checked_add(len)?;
    let body = buf.get(at..end)?;
    let mut p = 1; // attributes: unused in v2
    let timestamp_delta = fast::varlong(body, &mut p)?;
    if usize::try_from(fast::varint(body, &mut p)?).ok()? != delta {
        return None;
    }
    fast::nullable_bytes(body, &mut p)?; // key
    fast::nullable_bytes(body, &mut p)?; // value
    let header_count = usize::try_from(fast::varint(body, &mut p)?).ok()?;
    for _ in 0..header_count {
        fast::nullable_bytes(body, &mut p)??; // key: never null
        fast::nullable_bytes(body, &mut p)?;
    }
    (p == body.len()).then_some((end, timestamp_delta))
}

/// Iterates the records of one batch's records section, checking that exactly
/// `records_count` records are present. Ends after the first error.
#[derive(Debug, Clone)]
pub struct RecordIter<'a> {
    cursor: Cursor<'a>,
    left: i64,
    context: RecordContext,
    done: bool,
}

impl<'a> RecordIter<'a> {
    /// Iterates `records` (the uncompressed records section) of the batch with `header`.
    pub fn new(header: &BatchHeader, records: &'a [u8]) -> Self {
        RecordIter {
            cursor: Cursor::new(records, 0),
            left: i64::from(header.records_count),
            context: RecordContext::new(header),
            done: false,
        }
    }

    fn read_record(&mut self) -> Result<RecordView<'a>> {
        self.context.decode(&mut self.cursor)
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<RecordView<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.left < 0 {
            self.done = true;
            return Some(Err(Error::invalid_batch(0, "negative records count")));
        }
        if self.left == 0 {
            self.done = true;
            if self.cursor.is_empty() {
                return None;
            }
            let extra = self.cursor.remaining();
            return Some(Err(self.cursor.error(format!(
                "{extra} bytes after the last of the declared records"
            ))));
        }
        if self.cursor.is_empty() {
            self.done = true;
            return Some(Err(self.cursor.error(format!(
                "records end {} records short of the declared count",
                self.left
            ))));
        }
        self.left -= 1;
        let item = self.read_record();
        if item.is_err() {
            self.done = true;
        }
        Some(item)
    }
}

#[cfg(test)]
pub(crate) mod tests;
