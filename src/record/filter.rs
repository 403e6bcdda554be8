//! Rewriting a v2 batch with only some of its records: the compaction filter
//! ([`filter_batch`]), Kafka's `MemoryRecords.filterTo` for one batch.
//!
//! A rewritten batch keeps everything that ties it to the log: base offset, last offset
//! delta (a batch keeping only its middle record still spans its original offsets, so the
//! log end never moves), partition leader epoch, producer id / epoch / base sequence, codec
//! (records are recompressed with it), timestamp type and the transactional and control
//! bits. It recomputes the record count, the max timestamp (from the kept records under
//! create time; log-append time keeps the batch's) and the CRC.
//!
//! Delete horizon (attributes bit 6, Kafka's KIP-534): when a kept record is a tombstone,
//! the batch's base-timestamp slot holds the delete horizon — the time after which a
//! later clean may drop those tombstones — instead of the first record's timestamp. Every
//! record keeps its own timestamp: deltas are rebased on the horizon, so `base_timestamp +
//! delta` still reads the original time. As in Kafka's `MemoryRecords.filterTo`, a batch
//! that has a horizon keeps it when rewritten, even without tombstones left; one without
//! a horizon and without a kept tombstone gets none.
//!
//! A batch left with no record is dropped, or, when asked, kept as a bare 61-byte header
//! with count 0 (no codec, no horizon, base and max timestamp = the old max timestamp),
//! which keeps the batch's offsets, sequences and leader epoch.

use super::batch::{
    COMPRESSION_MASK, CONTROL_BIT, DELETE_HORIZON_BIT, TIMESTAMP_TYPE_BIT, TRANSACTIONAL_BIT, at,
    put,
};
use super::{
    BATCH_OVERHEAD, BatchHeader, LOG_OVERHEAD, MAGIC_V2, RecordBatch, RecordIter, RecordView,
    TimestampType,
};
use crate::{Error, Result};

/// How [`filter_batch`] rewrites a batch, beyond which records it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterOptions {
    /// Keep a batch left with no record as a 61-byte header with count 0, instead of
    /// dropping it (the cleaner does this for the last batch of a cleaned segment).
    pub retain_empty: bool,
    /// The delete horizon (ms) to stamp on a batch that keeps a tombstone and has no
    /// horizon yet; a batch that has one keeps it.
    pub new_delete_horizon_ms: i64,
}

/// What [`filter_batch`] did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOutcome {
    /// Every record was kept (or an empty batch stays empty) and the header needs no
    /// change: the original bytes stand. Nothing was written.
    Unchanged,
    /// A new batch holding `kept` records was written.
    Rewritten {
        /// Records in the new batch.
        kept: usize,
    },
    /// No record was kept; an empty 61-byte header (count 0) was written.
    Emptied,
    /// No record was kept; nothing was written.
    Dropped,
}

impl BatchHeader {
    /// The delete horizon in ms (held in the base-timestamp slot), when attributes bit 6
    /// is set: tombstones in this batch may be dropped by a clean at or after it.
    pub fn delete_horizon_ms(&self) -> Option<i64> {
        self.has_delete_horizon().then_some(self.base_timestamp)
    }
}

/// Rewrites `batch` keeping the records for which `keep` returns true, appending the new
/// batch (if any) to `out`. The batch must be valid (CRC checked by the caller); a record
/// that fails to decode is an error and leaves `out` as it was.
pub fn filter_batch(
    batch: &RecordBatch<'_>,
    options: &FilterOptions,
    mut keep: impl FnMut(&RecordView<'_>) -> bool,
    out: &mut Vec<u8>,
) -> Result<FilterOutcome> {
    let header = *batch.header();
    let section = batch.records_bytes()?;
    let mut kept = Vec::new();
    let mut total = 0usize;
    for record in RecordIter::new(&header, &section) {
        let record = record?;
        total += 1;
        if keep(&record) {
            kept.push(record);
        }
    }
    if kept.is_empty() {
        if !options.retain_empty {
            return Ok(FilterOutcome::Dropped);
        }
        if total == 0 {
            // Already an empty batch (an earlier clean's): it stands as it is.
            return Ok(FilterOutcome::Unchanged);
        }
        write_empty_header(&header, out);
        return Ok(FilterOutcome::Emptied);
    }
    let keeps_tombstone = kept.iter().any(|r| r.value().is_none());
    if kept.len() == total && (!keeps_tombstone || header.has_delete_horizon()) {
        return Ok(FilterOutcome::Unchanged);
    }
    let start = out.len();
    let result = write_filtered(&header, &kept, keeps_tombstone, options, out);
    if result.is_err() {
        out.truncate(start);
    }
    result.map(|()| FilterOutcome::Rewritten { kept: kept.len() })
}

/// The timestamp a record was written with (before log-append time replaced it on
/// reading): the stored base timestamp plus its delta.
fn stored_timestamp(header: &BatchHeader, record: &RecordView<'_>) -> i64 {
    header.base_timestamp.wrapping_add(record.timestamp_delta())
}

fn write_filtered(
    header: &BatchHeader,
    kept: &[RecordView<'_>],
    keeps_tombstone: bool,
    options: &FilterOptions,
    out: &mut Vec<u8>,
) -> Result<()> {
    let codec = header.compression()?;
    let first_timestamp = kept
        .first()
        .map_or(header.max_timestamp, |r| stored_timestamp(header, r));
    // Kafka's `filterTo`: a batch that has a horizon keeps it, even once its tombstones
    // are gone; one that has none gets the new one if it keeps a tombstone.
    let horizon = header
        .delete_horizon_ms()
        .or_else(|| keeps_tombstone.then_some(options.new_delete_horizon_ms));
    let base_timestamp = horizon.unwrap_or(first_timestamp);
    let max_timestamp = match header.timestamp_type() {
        TimestampType::LogAppendTime => header.max_timestamp,
        TimestampType::CreateTime => kept
            .iter()
            .map(|r| stored_timestamp(header, r))
            .max()
            .unwrap_or(header.max_timestamp),
    };
    let mut section = Vec::new();
    for record in kept {
        encode_record(
            &mut section,
            record,
            stored_timestamp(header, record).wrapping_sub(base_timestamp),
        )?;
    }
    let start = out.len();
    out.extend_from_slice(&[0u8; BATCH_OVERHEAD]);
    codec.compress(&section, out)?;
    let mut attributes = header.attributes & !DELETE_HORIZON_BIT;
    if horizon.is_some() {
        attributes |= DELETE_HORIZON_BIT;
    }
    let count = i32::try_from(kept.len()).map_err(|_| too_large(kept.len()))?;
    let batch = out.get_mut(start..).unwrap_or_default();
    write_header(
        batch,
        header,
        HeaderFields {
            attributes,
            base_timestamp,
            max_timestamp,
            count,
        },
    )
}

/// The header fields a filter changes; the rest are copied from the original.
struct HeaderFields {
    attributes: i16,
    base_timestamp: i64,
    max_timestamp: i64,
    count: i32,
}

/// Fills in the 61-byte header of `batch` (records already follow it) and its CRC.
fn write_header(batch: &mut [u8], original: &BatchHeader, fields: HeaderFields) -> Result<()> {
    let size = batch.len();
    let batch_length = i32::try_from(size - LOG_OVERHEAD).map_err(|_| too_large(size))?;
    put(batch, at::BASE_OFFSET, &original.base_offset.to_be_bytes());
    put(batch, at::BATCH_LENGTH, &batch_length.to_be_bytes());
    put(
        batch,
        at::PARTITION_LEADER_EPOCH,
        &original.partition_leader_epoch.to_be_bytes(),
    );
    put(batch, at::MAGIC, &MAGIC_V2.to_be_bytes());
    put(batch, at::ATTRIBUTES, &fields.attributes.to_be_bytes());
    put(
        batch,
        at::LAST_OFFSET_DELTA,
        &original.last_offset_delta.to_be_bytes(),
    );
    put(
        batch,
        at::BASE_TIMESTAMP,
        &fields.base_timestamp.to_be_bytes(),
    );
    put(
        batch,
        at::MAX_TIMESTAMP,
        &fields.max_timestamp.to_be_bytes(),
    );
    put(batch, at::PRODUCER_ID, &original.producer_id.to_be_bytes());
    put(
        batch,
        at::PRODUCER_EPOCH,
        &original.producer_epoch.to_be_bytes(),
    );
    put(
        batch,
        at::BASE_SEQUENCE,
        &original.base_sequence.to_be_bytes(),
    );
    put(batch, at::RECORDS_COUNT, &fields.count.to_be_bytes());
    let crc = crate::record::crc32c(batch.get(at::ATTRIBUTES..).unwrap_or_default());
    put(batch, at::CRC, &crc.to_be_bytes());
    Ok(())
}

/// Appends the 61-byte, zero-record header Kafka's `writeEmptyHeader` writes for `header`.
fn write_empty_header(header: &BatchHeader, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0u8; BATCH_OVERHEAD]);
    let keep_bits = TIMESTAMP_TYPE_BIT | TRANSACTIONAL_BIT | CONTROL_BIT;
    let fields = HeaderFields {
        attributes: header.attributes & keep_bits & !COMPRESSION_MASK,
        base_timestamp: header.max_timestamp,
        max_timestamp: header.max_timestamp,
        count: 0,
    };
    // 61 bytes always fit the length field.
    let _ = write_header(out.get_mut(start..).unwrap_or_default(), header, fields);
}

fn too_large(size: usize) -> Error {
    Error::MessageTooLarge {
        size,
        max: i32::MAX as usize,
    }
}

fn put_unsigned(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_varint(out: &mut Vec<u8>, v: i32) {
    put_unsigned(out, u64::from(((v << 1) ^ (v >> 31)) as u32));
}

fn put_varlong(out: &mut Vec<u8>, v: i64) {
    put_unsigned(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn put_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) -> Result<()> {
    match bytes {
        Some(b) => {
            put_varint(out, i32::try_from(b.len()).map_err(|_| too_large(b.len()))?);
            out.extend_from_slice(b);
        }
        None => put_varint(out, -1),
    }
    Ok(())
}

/// Appends `record` (length prefix and body) with a new timestamp delta; its offset
/// delta, key, value and headers are copied as they are.
fn encode_record(out: &mut Vec<u8>, record: &RecordView<'_>, timestamp_delta: i64) -> Result<()> {
    let mut body = Vec::with_capacity(
        16 + record.key().map_or(0, <[u8]>::len)
            + record.value().map_or(0, <[u8]>::len)
            + record.header_bytes().len(),
    );
    body.push(0); // record attributes: unused
    put_varlong(&mut body, timestamp_delta);
    put_varint(&mut body, record.offset_delta());
    put_nullable(&mut body, record.key())?;
    put_nullable(&mut body, record.value())?;
    let headers = record.header_count();
    put_varint(
        &mut body,
        i32::try_from(headers).map_err(|_| too_large(headers))?,
    );
    body.extend_from_slice(record.header_bytes());
    put_varint(
        out,
        i32::try_from(body.len()).map_err(|_| too_large(body.len()))?,
    );
    out.extend_from_slice(&body);
    Ok(())
}

#[cfg(all(
    test,
    feature = "gzip",
    feature = "snappy",
    feature = "lz4",
    feature = "zstd"
))]
mod tests;
