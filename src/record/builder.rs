//! Encoding records as one v2 batch: [`encode_batch`] (the hot path, writing straight into
//! the caller's buffer) and the incremental [`BatchBuilder`].
//!
//! Batches are written with base offset 0, partition leader epoch -1, create-time
//! timestamps and the producer fields -1 unless set. `baseTimestamp` is the *first*
//! record's timestamp (deltas may be negative), `maxTimestamp` the largest.

use super::batch::{at, put};
use super::varint::{size_of_varint, size_of_varlong};
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

/// Writes into a buffer sized in advance from [`max_record_size`], so each write is one
/// bounds check rather than a `Vec` growth check. A write past the end is dropped and
/// reported by [`SliceWriter::finish`] (it cannot happen: the size is an upper bound).
struct SliceWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> SliceWriter<'a> {
    fn new(buf: &'a mut [u8]) -> Self {
        SliceWriter { buf, pos: 0 }
    }

    #[inline]
    fn byte(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.pos) {
            *slot = b;
        }
        self.pos += 1;
    }

    #[inline]
    fn bytes(&mut self, b: &[u8]) {
        let end = self.pos + b.len();
        if let Some(slot) = self.buf.get_mut(self.pos..end) {
            slot.copy_from_slice(b);
        }
        self.pos = end;
    }

    #[inline]
    fn unsigned(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.byte((v as u8) | 0x80);
            v >>= 7;
        }
        self.byte(v as u8);
    }

    #[inline]
    fn varint(&mut self, v: i32) {
        self.unsigned(u64::from(((v << 1) ^ (v >> 31)) as u32));
    }

    #[inline]
    fn varlong(&mut self, v: i64) {
        self.unsigned(((v << 1) ^ (v >> 63)) as u64);
    }

    /// A length-prefixed byte string, `-1` for null. Lengths were checked by
    /// [`nullable_size`] before anything was written.
    #[inline]
    fn nullable(&mut self, bytes: Option<&[u8]>) {
        match bytes {
            Some(b) => {
                self.varint(b.len() as i32);
                self.bytes(b);
            }
            None => self.varint(-1),
        }
    }

    /// Bytes written; an error if any write fell past the end.
    fn finish(self) -> Result<usize> {
        if self.pos > self.buf.len() {
            return Err(Error::invalid_batch(
                self.buf.len(),
                "encoder size bound exceeded",
            ));
        }
        Ok(self.pos)
    }
}

/// Encodes `record` with `enc` at the end of `out`, growing `out` once by the record's
/// size bound and trimming it after. On error `out` is unchanged.
fn push_to_vec(
    enc: &mut Encoder,
    out: &mut Vec<u8>,
    record: &Record,
    default_timestamp: i64,
) -> Result<()> {
    let start = out.len();
    out.resize(start.saturating_add(max_record_size(record)), 0);
    let mut w = SliceWriter::new(out.get_mut(start..).unwrap_or_default());
    let result = enc
        .push(&mut w, record, default_timestamp)
        .and_then(|()| w.finish());
    out.truncate(start + *result.as_ref().unwrap_or(&0));
    result.map(|_| ())
}

/// An upper bound on the encoded size of `record`, for reserving.
fn max_record_size(record: &Record) -> usize {
    let headers = record.headers().iter().fold(0usize, |acc, h| {
        acc.saturating_add(10 + h.key.len() + h.value.as_ref().map_or(0, Vec::len))
    });
    36usize
        .saturating_add(record.key().map_or(0, <[u8]>::len))
        .saturating_add(record.value().map_or(0, <[u8]>::len))
        .saturating_add(headers)
}

impl Encoder {
    /// Appends `record` (length prefix and body) to `out`. On error `out` is unchanged.
    #[inline]
    fn push(
        &mut self,
        w: &mut SliceWriter<'_>,
        record: &Record,
        default_timestamp: i64,
    ) -> Result<()> {
        let timestamp = record.timestamp().unwrap_or(default_timestamp);
        let offset_delta = i32::try_from(self.count).map_err(|_| too_large(usize::MAX))?;
        if self.count == 0 {
            self.base_timestamp = timestamp;
        }
        let timestamp_delta = timestamp.wrapping_sub(self.base_timestamp);
        let header_count = len_i32(record.headers().len())?;
        let mut body = 1
            + size_of_varlong(timestamp_delta)
            + size_of_varint(offset_delta)
            + nullable_size(record.key())?
            + nullable_size(record.value())?
            + size_of_varint(header_count);
        for h in record.headers() {
            body = body
                .saturating_add(nullable_size(Some(h.key.as_bytes()))?)
                .saturating_add(nullable_size(h.value.as_deref())?);
        }
        let body_len = len_i32(body)?;

        w.varint(body_len);
        w.byte(0); // record attributes: unused
        w.varlong(timestamp_delta);
        w.varint(offset_delta);
        w.nullable(record.key());
        w.nullable(record.value());
        w.varint(header_count);
        for h in record.headers() {
            w.nullable(Some(h.key.as_bytes()));
            w.nullable(h.value.as_deref());
        }

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
    if records.is_empty() {
        return Err(Error::EmptyBatch);
    }
    let start = out.len();
    let bound = records
        .iter()
        .fold(0usize, |acc, r| acc.saturating_add(max_record_size(r)));
    let mut enc = Encoder::default();
    let result = (|| {
        if compression == Compression::None {
            // One zero-filled region for header and records, trimmed to what was written.
            let records_at = start + BATCH_OVERHEAD;
            out.resize(records_at.saturating_add(bound), 0);
            let mut w = SliceWriter::new(out.get_mut(records_at..).unwrap_or_default());
            for r in records {
                enc.push(&mut w, r, default_timestamp_ms)?;
            }
            let used = w.finish()?;
            out.truncate(records_at + used);
        } else {
            let mut scratch = vec![0; bound];
            let mut w = SliceWriter::new(&mut scratch);
            for r in records {
                enc.push(&mut w, r, default_timestamp_ms)?;
            }
            let used = w.finish()?;
            scratch.truncate(used);
            out.reserve(BATCH_OVERHEAD + scratch.len() / 2);
            out.extend_from_slice(&[0; BATCH_OVERHEAD]);
            compression.compress(&scratch, out)?;
        }
        let batch = out.get_mut(start..).unwrap_or_default();
        enc.finish(batch, compression, NO_PRODUCER)
    })();
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Builds one batch record by record; [`Self::finish_into`] writes it out.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    compression: Compression,
    default_timestamp_ms: i64,
    producer: (i64, i16, i32),
    enc: Encoder,
    records: Vec<u8>,
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
        }
    }

    /// Sets the idempotent-producer fields (otherwise -1).
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer = (producer_id, producer_epoch, base_sequence);
        self
    }

    /// Encodes `record` as the next record of the batch.
    pub fn append(&mut self, record: &Record) -> Result<()> {
        push_to_vec(
            &mut self.enc,
            &mut self.records,
            record,
            self.default_timestamp_ms,
        )
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
        BATCH_OVERHEAD + self.records.len()
    }

    /// Appends the encoded batch to `out`. No records is [`Error::EmptyBatch`]; on error
    /// `out` is left as it was.
    pub fn finish_into(self, out: &mut Vec<u8>) -> Result<BatchSummary> {
        if self.is_empty() {
            return Err(Error::EmptyBatch);
        }
        let start = out.len();
        out.reserve(BATCH_OVERHEAD + self.records.len());
        out.extend_from_slice(&[0; BATCH_OVERHEAD]);
        let result = self
            .compression
            .compress(&self.records, out)
            .and_then(|()| {
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
