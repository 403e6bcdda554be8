//! Encoding records as one v2 batch: [`encode_batch`] (the hot path, writing straight into
//! the caller's buffer) and the incremental [`BatchBuilder`].
//!
//! Batches are written with base offset 0, partition leader epoch -1, create-time
//! timestamps and the producer fields -1 unless set. `baseTimestamp` is the *first*
//! record's timestamp (deltas may be negative), `maxTimestamp` the largest.

use super::batch::{at, put};
use super::varint::size_of_varint;
use super::{
    BATCH_OVERHEAD, Compression, LOG_OVERHEAD, MAGIC_V2, NO_PARTITION_LEADER_EPOCH,
    NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE, Record,
};
use crate::{Error, Result};

/// What an encoded batch holds, for the log's indexes and offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSummary {
    /// Number of records.
    pub record_count: u32,
    /// `record_count - 1`: the last record's offset delta.
    pub last_offset_delta: u32,
    /// The first record's timestamp (the batch's `baseTimestamp`).
    pub first_timestamp: i64,
    /// The largest record timestamp (the batch's `maxTimestamp`).
    pub max_timestamp: i64,
    /// Offset delta of the first record carrying `max_timestamp`.
    pub offset_delta_of_max_timestamp: u32,
    /// Size of the encoded batch in bytes.
    pub size_bytes: usize,
}

/// Per-batch state while records are encoded.
#[derive(Debug, Clone, Copy, Default)]
struct Encoder {
    count: u32,
    base_timestamp: i64,
    max_timestamp: i64,
    delta_of_max: u32,
}

fn too_large(size: usize) -> Error {
    Error::MessageTooLarge {
        size,
        max: i32::MAX as usize,
    }
}

fn len_i32(len: usize) -> Result<i32> {
    i32::try_from(len).map_err(|_| too_large(len))
}

fn nullable_size(bytes: Option<&[u8]>) -> Result<usize> {
    Ok(match bytes {
        Some(b) => size_of_varint(len_i32(b.len())?) + b.len(),
        None => 1,
    })
}

/// A varint encoded in registers: its first 8 bytes in `low` (little-endian: the first
/// byte lowest), the 9th and 10th (only a varlong of a huge value has them) in `high`.
/// Encoding this way and storing 8 bytes at once is what makes [`encode_batch`] cost
/// little more than copying the values.
#[derive(Debug, Clone, Copy)]
struct Varint {
    low: u64,
    high: u16,
    len: usize,
}

impl Varint {
    #[inline]
    fn unsigned(mut v: u64) -> Self {
        let mut low = 0u64;
        let mut len = 0;
        while v >= 0x80 && len < 8 {
            low |= ((v & 0x7f) | 0x80) << (8 * len);
            v >>= 7;
            len += 1;
        }
        if len < 8 {
            return Varint {
                low: low | (v << (8 * len)),
                high: 0,
                len: len + 1,
            };
        }
        // 56 bits are in `low`; `v` has at most 8 left: one or two more bytes.
        let (high, len) = if v >= 0x80 {
            (((v & 0x7f) | 0x80) | ((v >> 7) << 8), 10)
        } else {
            (v, 9)
        };
        Varint {
            low,
            high: high as u16,
            len,
        }
    }

    #[inline]
    fn of_i32(v: i32) -> Self {
        Self::unsigned(u64::from(((v << 1) ^ (v >> 31)) as u32))
    }

    #[inline]
    fn of_i64(v: i64) -> Self {
        Self::unsigned(((v << 1) ^ (v >> 63)) as u64)
    }
}

/// Writes at a moving position of a buffer that only grows (zero-filled when it does), so
/// a buffer reused across batches is filled once, not per batch.
struct Writer<'a> {
    buf: &'a mut Vec<u8>,
    pos: usize,
}

impl<'a> Writer<'a> {
    fn at(buf: &'a mut Vec<u8>, pos: usize) -> Self {
        Writer { buf, pos }
    }

    /// For a buffer with no capacity past the position (a fresh one): grows it once to hold
    /// `header` bytes and then `records` (an upper bound of their encoded size), instead of
    /// doubling it record by record, so it is zero-filled once and never copied. A reused
    /// buffer keeps its room and is spared the pass over the records.
    fn reserve_for(&mut self, header: usize, records: &[Record]) {
        if self.buf.capacity() > self.pos {
            return;
        }
        // Every varint of a record at its longest: length, timestamp delta, offset delta,
        // key and value lengths, header count; two lengths per header.
        const RECORD_VARINTS: usize = 5 + 10 + 5 + 5 + 5 + 5;
        const HEADER_VARINTS: usize = 5 + 5;
        // Beyond this the buffer grows as records come (the batch may be refused anyway).
        const MAX_RESERVE: usize = 64 << 20;
        let mut bound = header;
        for r in records {
            let headers: usize = r.headers().iter().fold(0, |n, h| {
                n.saturating_add(h.key.len() + h.value.as_deref().map_or(0, <[u8]>::len))
                    .saturating_add(HEADER_VARINTS)
            });
            bound = bound
                .saturating_add(1 + RECORD_VARINTS)
                .saturating_add(r.key().map_or(0, <[u8]>::len))
                .saturating_add(r.value().map_or(0, <[u8]>::len))
                .saturating_add(headers);
        }
        if bound <= MAX_RESERVE {
            self.slot(bound);
        }
    }

    /// Moves past `n` bytes (growing the buffer if needed) that are written later.
    fn skip(&mut self, n: usize) {
        self.slot(n);
        self.pos += n;
    }

    /// Room for `n` more bytes at the position, plus [`Slot::SLACK`].
    #[inline]
    fn slot(&mut self, n: usize) -> Slot<'_> {
        let need = self.pos.saturating_add(n).saturating_add(Slot::SLACK);
        if self.buf.len() < need {
            let grown = need.max(self.buf.len().saturating_mul(2));
            self.buf.resize(grown, 0);
        }
        Slot {
            out: self.buf.get_mut(self.pos..need).unwrap_or_default(),
            at: 0,
        }
    }
}

/// The bytes one record is written into. A local slice, so the compiler keeps its
/// address and length in registers (writes through a `&mut Vec` make it reload them after
/// every store). Every write is bounds-checked; the slot's size makes the checks pass.
struct Slot<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl Slot<'_> {
    /// Bytes a slot has beyond what it was asked for: varints are stored 8 or 10 bytes at
    /// a time.
    const SLACK: usize = 16;

    #[inline]
    fn varint(&mut self, v: Varint) {
        if let Some(slot) = self.out.get_mut(self.at..self.at + 8) {
            slot.copy_from_slice(&v.low.to_le_bytes());
        }
        if v.len > 8
            && let Some(slot) = self.out.get_mut(self.at + 8..self.at + 10)
        {
            slot.copy_from_slice(&v.high.to_le_bytes());
        }
        self.at += v.len;
    }

    #[inline]
    fn byte(&mut self, b: u8) {
        if let Some(slot) = self.out.get_mut(self.at) {
            *slot = b;
        }
        self.at += 1;
    }

    #[inline]
    fn bytes(&mut self, b: &[u8]) {
        let end = self.at + b.len();
        if let Some(slot) = self.out.get_mut(self.at..end) {
            slot.copy_from_slice(b);
        }
        self.at = end;
    }

    /// A length-prefixed byte string, `-1` for null (length checked by the caller).
    #[inline]
    fn nullable(&mut self, bytes: Option<&[u8]>) {
        match bytes {
            Some(b) => {
                self.varint(Varint::of_i32(b.len() as i32));
                self.bytes(b);
            }
            None => self.varint(Varint::of_i32(-1)),
        }
    }
}

impl Encoder {
    /// Writes `record` (length prefix and body) at `w`'s position. Every length is
    /// checked before the first byte is written, so on error nothing moved.
    #[inline(always)]
    fn push(
        &mut self,
        writer: &mut Writer<'_>,
        record: &Record,
        default_timestamp: i64,
    ) -> Result<()> {
        let (key, value, headers) = (record.key(), record.value(), record.headers());
        let key_bytes = key.map_or(0, <[u8]>::len);
        let value_bytes = value.map_or(0, <[u8]>::len);
        // Plain comparisons rather than `?` on each conversion: a `Result` per field costs
        // more than the rest of the record here.
        let limit = i32::MAX as usize;
        if key_bytes > limit || value_bytes > limit || headers.len() > limit {
            return Err(too_large(key_bytes.max(value_bytes).max(headers.len())));
        }
        if self.count > i32::MAX as u32 {
            return Err(too_large(usize::MAX));
        }
        let timestamp = record.timestamp().unwrap_or(default_timestamp);
        if self.count == 0 {
            self.base_timestamp = timestamp;
        }
        // Each varint is encoded once, up front; its length gives the body's size.
        let timestamp_delta = Varint::of_i64(timestamp.wrapping_sub(self.base_timestamp));
        let offset_delta = Varint::of_i32(self.count as i32);
        let key_len = Varint::of_i32(key.map_or(-1, |_| key_bytes as i32));
        let value_len = Varint::of_i32(value.map_or(-1, |_| value_bytes as i32));
        let header_count = Varint::of_i32(headers.len() as i32);
        let mut body = 1
            + timestamp_delta.len
            + offset_delta.len
            + key_len.len
            + key_bytes
            + value_len.len
            + value_bytes
            + header_count.len;
        for h in headers {
            body = body
                .saturating_add(nullable_size(Some(h.key.as_bytes()))?)
                .saturating_add(nullable_size(h.value.as_deref())?);
        }
        if body > limit {
            return Err(too_large(body));
        }
        let body_len = Varint::of_i32(body as i32);

        let mut w = writer.slot(body + body_len.len);
        w.varint(body_len);
        w.byte(0); // record attributes: unused
        w.varint(timestamp_delta);
        w.varint(offset_delta);
        w.varint(key_len);
        if let Some(key) = key {
            w.bytes(key);
        }
        w.varint(value_len);
        if let Some(value) = value {
            w.bytes(value);
        }
        w.varint(header_count);
        for h in headers {
            w.nullable(Some(h.key.as_bytes()));
            w.nullable(h.value.as_deref());
        }
        let written = w.at;
        writer.pos += written;

        if self.count == 0 || timestamp > self.max_timestamp {
            self.max_timestamp = timestamp;
            self.delta_of_max = self.count;
        }
        self.count += 1;
        Ok(())
    }

    /// Fills in the 61-byte header at `out[start..]` (records follow it) and the CRC.
    fn finish(
        &self,
        out: &mut [u8],
        compression: Compression,
        producer: (i64, i16, i32),
    ) -> Result<BatchSummary> {
        let size = out.len();
        let batch_length = i32::try_from(size - LOG_OVERHEAD).map_err(|_| too_large(size))?;
        let last_offset_delta = self.count.saturating_sub(1);
        put(out, at::BASE_OFFSET, &0i64.to_be_bytes());
        put(out, at::BATCH_LENGTH, &batch_length.to_be_bytes());
        put(
            out,
            at::PARTITION_LEADER_EPOCH,
            &NO_PARTITION_LEADER_EPOCH.to_be_bytes(),
        );
        put(out, at::MAGIC, &MAGIC_V2.to_be_bytes());
        put(
            out,
            at::ATTRIBUTES,
            &i16::from(compression.id()).to_be_bytes(),
        );
        put(out, at::LAST_OFFSET_DELTA, &last_offset_delta.to_be_bytes());
        put(out, at::BASE_TIMESTAMP, &self.base_timestamp.to_be_bytes());
        put(out, at::MAX_TIMESTAMP, &self.max_timestamp.to_be_bytes());
        put(out, at::PRODUCER_ID, &producer.0.to_be_bytes());
        put(out, at::PRODUCER_EPOCH, &producer.1.to_be_bytes());
        put(out, at::BASE_SEQUENCE, &producer.2.to_be_bytes());
        put(out, at::RECORDS_COUNT, &self.count.to_be_bytes());
        let crc = crate::record::crc32c(out.get(at::ATTRIBUTES..).unwrap_or_default());
        put(out, at::CRC, &crc.to_be_bytes());
        Ok(BatchSummary {
            record_count: self.count,
            last_offset_delta,
            first_timestamp: self.base_timestamp,
            max_timestamp: self.max_timestamp,
            offset_delta_of_max_timestamp: self.delta_of_max,
            size_bytes: size,
        })
    }
}

const NO_PRODUCER: (i64, i16, i32) = (NO_PRODUCER_ID, NO_PRODUCER_EPOCH, NO_SEQUENCE);

/// Encodes `records` as one batch appended to `out` (hot path: reuse `out` across calls).
/// Records without a timestamp get `default_timestamp_ms`. No records is
/// [`Error::EmptyBatch`]; on any error `out` is left as it was.
pub fn encode_batch(
    records: &[Record],
    compression: Compression,
    default_timestamp_ms: i64,
    out: &mut Vec<u8>,
) -> Result<BatchSummary> {
    let start = out.len();
    let result = encode_at(records, compression, default_timestamp_ms, out, start);
    out.truncate(start + result.as_ref().map_or(0, |summary| summary.size_bytes));
    result
}

/// Encodes `records` as one batch into `buf[..size_bytes]`, leaving whatever length `buf`
/// has beyond it: the log's reused scratch buffer then never shrinks, and is zero-filled
/// only when it grows. On error the batch's bytes are garbage.
pub(crate) fn encode_in_place(
    records: &[Record],
    compression: Compression,
    default_timestamp_ms: i64,
    buf: &mut Vec<u8>,
) -> Result<BatchSummary> {
    encode_at(records, compression, default_timestamp_ms, buf, 0)
}

/// Encodes the batch at `buf[start..start + size_bytes]`; `buf` may be left longer.
fn encode_at(
    records: &[Record],
    compression: Compression,
    default_timestamp_ms: i64,
    buf: &mut Vec<u8>,
    start: usize,
) -> Result<BatchSummary> {
    if records.is_empty() {
        return Err(Error::EmptyBatch);
    }
    let mut enc = Encoder::default();
    let end = if compression == Compression::None {
        let mut w = Writer::at(buf, start);
        w.reserve_for(BATCH_OVERHEAD, records);
        w.skip(BATCH_OVERHEAD); // the header, filled in by `finish`
        for r in records {
            enc.push(&mut w, r, default_timestamp_ms)?;
        }
        w.pos
    } else {
        let mut raw = Vec::new();
        let mut w = Writer::at(&mut raw, 0);
        w.reserve_for(0, records);
        for r in records {
            enc.push(&mut w, r, default_timestamp_ms)?;
        }
        let used = w.pos;
        raw.truncate(used);
        buf.truncate(start);
        buf.reserve(BATCH_OVERHEAD + used / 2);
        buf.extend_from_slice(&[0; BATCH_OVERHEAD]);
        compression.compress(&raw, buf)?;
        buf.len()
    };
    let batch = buf.get_mut(start..end).unwrap_or_default();
    enc.finish(batch, compression, NO_PRODUCER)
}

/// Builds one batch record by record; [`Self::finish_into`] writes it out.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    compression: Compression,
    default_timestamp_ms: i64,
    producer: (i64, i16, i32),
    enc: Encoder,
    /// Encoded records in `records[..encoded_len]`; the buffer grows ahead of them.
    records: Vec<u8>,
    encoded_len: usize,
}

impl BatchBuilder {
    /// An empty builder; records without a timestamp get `default_timestamp_ms`.
    pub fn new(compression: Compression, default_timestamp_ms: i64) -> Self {
        BatchBuilder {
            compression,
            default_timestamp_ms,
            producer: NO_PRODUCER,
            enc: Encoder::default(),
            records: Vec::new(),
            encoded_len: 0,
        }
    }

    /// Sets the idempotent-producer fields (otherwise -1).
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer = (producer_id, producer_epoch, base_sequence);
        self
    }

    /// Encodes `record` as the next record of the batch.
    pub fn append(&mut self, record: &Record) -> Result<()> {
        let mut w = Writer::at(&mut self.records, self.encoded_len);
        let result = self.enc.push(&mut w, record, self.default_timestamp_ms);
        self.encoded_len = w.pos;
        result
    }

    /// Records appended so far.
    pub fn record_count(&self) -> usize {
        self.enc.count as usize
    }

    /// Whether no record was appended.
    pub fn is_empty(&self) -> bool {
        self.enc.count == 0
    }

    /// Size of the batch if written uncompressed (exact for [`Compression::None`]; compressed
    /// batches are usually smaller).
    pub fn estimated_size_bytes(&self) -> usize {
        BATCH_OVERHEAD + self.encoded_len
    }

    /// Appends the encoded batch to `out`. No records is [`Error::EmptyBatch`]; on error
    /// `out` is left as it was.
    pub fn finish_into(self, out: &mut Vec<u8>) -> Result<BatchSummary> {
        if self.is_empty() {
            return Err(Error::EmptyBatch);
        }
        let start = out.len();
        let records = self.records.get(..self.encoded_len).unwrap_or_default();
        out.reserve(BATCH_OVERHEAD + records.len());
        out.extend_from_slice(&[0; BATCH_OVERHEAD]);
        let result = self.compression.compress(records, out).and_then(|()| {
            let batch = out.get_mut(start..).unwrap_or_default();
            self.enc.finish(batch, self.compression, self.producer)
        });
        if result.is_err() {
            out.truncate(start);
        }
        result
    }
}

#[cfg(all(
    test,
    feature = "gzip",
    feature = "snappy",
    feature = "lz4",
    feature = "zstd"
))]
pub(crate) mod tests;
