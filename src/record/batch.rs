//! Parsing and validating v2 batches in place: [`BatchHeader`], [`RecordBatch`],
//! [`BatchIter`] and [`next_batch_size`].
//!
//! Nothing here copies records or panics on bad bytes; every fault is an
//! [`Error::InvalidBatch`] whose position is relative to the bytes given (for
//! [`BatchIter`], to the whole buffer).

use std::borrow::Cow;

use super::compression::{Compression, MAX_DECOMPRESSED_BYTES};
use super::view::{RecordIter, records_in_order};
use super::{
    BATCH_OVERHEAD, HEADER_SIZE_UP_TO_MAGIC, LOG_OVERHEAD, MAGIC_V2, MIN_BATCH_LENGTH_FIELD,
    NO_TIMESTAMP,
};
use crate::{Error, Result};

/// Attributes bits 0-2: the codec.
pub(crate) const COMPRESSION_MASK: i16 = 0x07;
/// Attributes bit 3: timestamps are log-append time.
pub(crate) const TIMESTAMP_TYPE_BIT: i16 = 0x08;
/// Attributes bit 4: part of a transaction.
pub(crate) const TRANSACTIONAL_BIT: i16 = 0x10;
/// Attributes bit 5: a control batch (transaction markers).
pub(crate) const CONTROL_BIT: i16 = 0x20;
/// Attributes bit 6: the base-timestamp slot holds the delete horizon.
pub(crate) const DELETE_HORIZON_BIT: i16 = 0x40;

/// Byte offsets of the header fields.
pub(crate) mod at {
    pub(crate) const BASE_OFFSET: usize = 0;
    pub(crate) const BATCH_LENGTH: usize = 8;
    pub(crate) const PARTITION_LEADER_EPOCH: usize = 12;
    pub(crate) const MAGIC: usize = 16;
    pub(crate) const CRC: usize = 17;
    pub(crate) const ATTRIBUTES: usize = 21;
    pub(crate) const LAST_OFFSET_DELTA: usize = 23;
    pub(crate) const BASE_TIMESTAMP: usize = 27;
    pub(crate) const MAX_TIMESTAMP: usize = 35;
    pub(crate) const PRODUCER_ID: usize = 43;
    pub(crate) const PRODUCER_EPOCH: usize = 51;
    pub(crate) const BASE_SEQUENCE: usize = 53;
    pub(crate) const RECORDS_COUNT: usize = 57;
}

/// How a batch's record timestamps were assigned (attributes bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// Set by the producer.
    CreateTime,
    /// Set by the log on append: every record reads the batch's `max_timestamp`.
    LogAppendTime,
}

/// The 61-byte header of a v2 batch, field by field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after this field: the batch is `12 + batch_length` bytes.
    pub batch_length: i32,
    /// Epoch of the leader that appended the batch (-1 when none).
    pub partition_leader_epoch: i32,
    /// Format version; always 2 once parsed.
    pub magic: i8,
    /// CRC-32C of bytes 21..end, as stored.
    pub crc: u32,
    /// Codec, timestamp type, transactional, control and delete-horizon bits.
    pub attributes: i16,
    /// Offset of the last record minus `base_offset`.
    pub last_offset_delta: i32,
    /// First record's timestamp (or the delete horizon, see [`Self::has_delete_horizon`]).
    pub base_timestamp: i64,
    /// Largest record timestamp (the append time under log-append time).
    pub max_timestamp: i64,
    /// Idempotent producer id (-1 when none).
    pub producer_id: i64,
    /// Producer epoch (-1 when none).
    pub producer_epoch: i16,
    /// Sequence number of the first record (-1 when none).
    pub base_sequence: i32,
    /// Number of records in the batch, as declared.
    pub records_count: i32,
}

fn field<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut a = [0u8; N];
    if let Some(s) = bytes.get(at..at + N) {
        a.copy_from_slice(s);
    }
    a
}

/// Writes `value` at `at`; a slice too short to hold it is left alone.
pub(super) fn put(bytes: &mut [u8], at: usize, value: &[u8]) {
    if let Some(dst) = bytes.get_mut(at..at + value.len()) {
        dst.copy_from_slice(value);
    }
}

/// Checks the 17-byte prefix; `Err` holds the reason.
fn check_prefix(bytes: &[u8]) -> Result<Option<usize>, String> {
    if bytes.len() < HEADER_SIZE_UP_TO_MAGIC {
        return Ok(None);
    }
    let length = i32::from_be_bytes(field(bytes, at::BATCH_LENGTH));
    if length < MIN_BATCH_LENGTH_FIELD {
        return Err(format!(
            "batch length field {length} is below the minimum {MIN_BATCH_LENGTH_FIELD}"
        ));
    }
    let magic = i8::from_be_bytes(field(bytes, at::MAGIC));
    if magic != MAGIC_V2 {
        return Err(format!(
            "unsupported magic {magic} (only {MAGIC_V2} is supported)"
        ));
    }
    Ok(Some(LOG_OVERHEAD + length as usize))
}

/// Kafka's `nextBatchSize`: `Ok(None)` when fewer than 17 bytes (through the magic byte) are
/// present; otherwise `Ok(Some(12 + batchLength))`, even when the body is not all there.
/// An error when the length field is below 49 or the magic is not 2.
pub fn next_batch_size(bytes: &[u8]) -> Result<Option<usize>> {
    check_prefix(bytes).map_err(|reason| Error::invalid_batch(0, reason))
}

impl BatchHeader {
    /// Parses the first 61 bytes of `bytes`. Needs at least 61 bytes, magic 2 and a
    /// `batch_length` of at least 49. The CRC is not checked here.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < BATCH_OVERHEAD {
            return Err(Error::invalid_batch(
                0,
                format!(
                    "{} bytes are too few for a {BATCH_OVERHEAD}-byte batch header",
                    bytes.len()
                ),
            ));
        }
        check_prefix(bytes).map_err(|reason| Error::invalid_batch(0, reason))?;
        Ok(BatchHeader {
            base_offset: i64::from_be_bytes(field(bytes, at::BASE_OFFSET)),
            batch_length: i32::from_be_bytes(field(bytes, at::BATCH_LENGTH)),
            partition_leader_epoch: i32::from_be_bytes(field(bytes, at::PARTITION_LEADER_EPOCH)),
            magic: i8::from_be_bytes(field(bytes, at::MAGIC)),
            crc: u32::from_be_bytes(field(bytes, at::CRC)),
            attributes: i16::from_be_bytes(field(bytes, at::ATTRIBUTES)),
            last_offset_delta: i32::from_be_bytes(field(bytes, at::LAST_OFFSET_DELTA)),
            base_timestamp: i64::from_be_bytes(field(bytes, at::BASE_TIMESTAMP)),
            max_timestamp: i64::from_be_bytes(field(bytes, at::MAX_TIMESTAMP)),
            producer_id: i64::from_be_bytes(field(bytes, at::PRODUCER_ID)),
            producer_epoch: i16::from_be_bytes(field(bytes, at::PRODUCER_EPOCH)),
            base_sequence: i32::from_be_bytes(field(bytes, at::BASE_SEQUENCE)),
            records_count: i32::from_be_bytes(field(bytes, at::RECORDS_COUNT)),
        })
    }

    /// Size of the whole batch: `12 + batch_length`.
    pub fn size_bytes(&self) -> usize {
        LOG_OVERHEAD + usize::try_from(self.batch_length).unwrap_or(0)
    }

    /// Offset of the last record: `base_offset + last_offset_delta` (wrapping, so corrupt
    /// fields cannot overflow; validation rejects such batches).
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .wrapping_add(i64::from(self.last_offset_delta))
    }

    /// The codec (attributes bits 0-2); ids 5-7 are [`Error::UnsupportedCompression`].
    pub fn compression(&self) -> Result<Compression> {
        Compression::from_id((self.attributes & COMPRESSION_MASK) as u8)
    }

    /// Create time or log-append time (attributes bit 3).
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Whether the batch is part of a transaction (attributes bit 4).
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    /// Whether the batch holds control records (attributes bit 5).
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// Whether `base_timestamp` holds the compaction delete horizon (attributes bit 6).
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & DELETE_HORIZON_BIT != 0
    }
}

/// One whole batch borrowed from a buffer.
#[derive(Debug, Clone, Copy)]
pub struct RecordBatch<'a> {
    header: BatchHeader,
    bytes: &'a [u8],
}

impl<'a> RecordBatch<'a> {
    /// Parses the batch at the start of `bytes`, keeping exactly its
    /// [`BatchHeader::size_bytes`] bytes (fewer is an error). The CRC is not checked.
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        let header = BatchHeader::parse(bytes)?;
        let size = header.size_bytes();
        let bytes = bytes.get(..size).ok_or_else(|| {
            Error::invalid_batch(
                0,
                format!(
                    "batch of {size} bytes is cut short at {} bytes",
                    bytes.len()
                ),
            )
        })?;
        Ok(RecordBatch { header, bytes })
    }

    /// The parsed header.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The batch's bytes, exactly `size_bytes()` of them.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Size of the batch in bytes.
    pub fn size_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// CRC-32C of bytes 21..end (what the `crc` field should hold).
    pub fn compute_crc(&self) -> u32 {
        crate::record::crc32c(self.bytes.get(at::ATTRIBUTES..).unwrap_or_default())
    }

    /// Whether [`Self::ensure_valid`] passes.
    pub fn is_valid(&self) -> bool {
        self.ensure_valid().is_ok()
    }

    /// Checks the CRC and that `records_count` is not negative.
    pub fn ensure_valid(&self) -> Result<()> {
        let computed = self.compute_crc();
        if computed != self.header.crc {
            return Err(Error::invalid_batch(
                at::CRC,
                format!(
                    "CRC mismatch: expected {:#010x} (stored), found {computed:#010x}",
                    self.header.crc
                ),
            ));
        }
        if self.header.records_count < 0 {
            return Err(Error::invalid_batch(
                at::RECORDS_COUNT,
                format!("negative records count {}", self.header.records_count),
            ));
        }
        Ok(())
    }

    /// The records section: borrowed when uncompressed, otherwise decompressed (at most
    /// 64 MiB).
    pub fn records_bytes(&self) -> Result<Cow<'a, [u8]>> {
        let raw = self.bytes.get(BATCH_OVERHEAD..).unwrap_or_default();
        match self.header.compression()? {
            Compression::None => Ok(Cow::Borrowed(raw)),
            codec => codec
                .decompress(raw, MAX_DECOMPRESSED_BYTES)
                .map(Cow::Owned),
        }
    }

    /// Checks a batch a producer hands in for appending, as Kafka's `LogValidator` does:
    /// [`Self::ensure_valid`], at least one record ([`Error::EmptyBatch`]),
    /// `records_count == last_offset_delta + 1`, every record decodes with offset deltas
    /// exactly `0..records_count` and nothing left over, no control batch (only the log
    /// writes transaction markers) and no producer id without a base sequence. Returns
    /// the batch's true max timestamp: the largest record timestamp (base + delta, or -1
    /// if all are smaller), which the log stores whatever the header says.
    pub fn validate_for_append(&self) -> Result<i64> {
        self.ensure_valid()?;
        let h = &self.header;
        if h.records_count == 0 {
            return Err(Error::EmptyBatch);
        }
        if i64::from(h.records_count) != i64::from(h.last_offset_delta) + 1 {
            return Err(Error::invalid_batch(
                at::LAST_OFFSET_DELTA,
                format!(
                    "records count {} does not match last offset delta {}",
                    h.records_count, h.last_offset_delta
                ),
            ));
        }
        if h.is_control() {
            return Err(Error::invalid_batch(
                at::ATTRIBUTES,
                "clients may not write control batches",
            ));
        }
        if h.producer_id >= 0 && h.base_sequence < 0 {
            return Err(Error::invalid_batch(
                at::BASE_SEQUENCE,
                format!(
                    "producer id {} with no base sequence ({})",
                    h.producer_id, h.base_sequence
                ),
            ));
        }
        let records = self.records_bytes()?;
        // The fast pass checks the deltas; the offsets they give are in range when the
        // first and the last are.
        let offsets_in_range = h.base_offset >= 0
            && h.base_offset
                .checked_add(i64::from(h.last_offset_delta))
                .is_some();
        let fast = usize::try_from(h.records_count)
            .ok()
            .and_then(|n| records_in_order(&records, n, h.base_timestamp));
        let max_timestamp = match fast {
            Some(max_timestamp) if offsets_in_range => max_timestamp,
            _ => check_records_in_order(h, &records)?,
        };
        Ok(max_timestamp.max(NO_TIMESTAMP))
    }
}

/// Whether `header` (the first [`BATCH_OVERHEAD`] bytes of a valid batch, or more) is
/// already a create-time header holding `max_timestamp`: then
/// [`restamp_create_time`] has nothing to change.
pub(crate) fn is_create_time_stamped(header: &[u8], max_timestamp: i64) -> bool {
    let (Some(attributes), Some(stored)) = (
        header.get(at::ATTRIBUTES..at::ATTRIBUTES + 2),
        header.get(at::MAX_TIMESTAMP..at::MAX_TIMESTAMP + 8),
    ) else {
        return true;
    };
    let attributes = i16::from_be_bytes([attributes[0], attributes[1]]);
    attributes & TIMESTAMP_TYPE_BIT == 0 && stored == max_timestamp.to_be_bytes()
}

/// Makes `batch` (valid, as [`RecordBatch::validate_for_append`] checked it) a create-time
/// batch whose header holds `max_timestamp`, as Kafka's `setMaxTimestamp(CREATE_TIME, ..)`
/// does for a produced batch whose header disagrees with its records: the attributes'
/// timestamp-type bit cleared, the max timestamp set, the CRC computed again. Returns
/// whether anything changed.
pub(crate) fn restamp_create_time(batch: &mut [u8], max_timestamp: i64) -> bool {
    if is_create_time_stamped(batch, max_timestamp) {
        return false;
    }
    let Some(attributes) = batch.get(at::ATTRIBUTES..at::ATTRIBUTES + 2) else {
        return false;
    };
    let create_time = i16::from_be_bytes([attributes[0], attributes[1]]) & !TIMESTAMP_TYPE_BIT;
    let mut put = |at: usize, bytes: &[u8]| {
        if let Some(slot) = batch.get_mut(at..at + bytes.len()) {
            slot.copy_from_slice(bytes);
        }
    };
    put(at::ATTRIBUTES, &create_time.to_be_bytes());
    put(at::MAX_TIMESTAMP, &max_timestamp.to_be_bytes());
    let crc = crate::record::crc32c(batch.get(at::ATTRIBUTES..).unwrap_or_default());
    if let Some(slot) = batch.get_mut(at::CRC..at::CRC + 4) {
        slot.copy_from_slice(&crc.to_be_bytes());
    }
    true
}

/// Decodes every record of the records section `records` with an exact error for the
/// first one that is malformed or whose offset delta is not its index; gives the largest
/// record timestamp (base plus delta, wrapping).
fn check_records_in_order(header: &BatchHeader, records: &[u8]) -> Result<i64> {
    let mut max_timestamp = i64::MIN;
    for (i, record) in RecordIter::new(header, records).enumerate() {
        let record = record?;
        if i64::from(record.offset_delta()) != i as i64 {
            return Err(Error::invalid_batch(
                BATCH_OVERHEAD,
                format!("record {i} has offset delta {}", record.offset_delta()),
            ));
        }
        max_timestamp =
            max_timestamp.max(header.base_timestamp.wrapping_add(record.timestamp_delta()));
    }
    Ok(max_timestamp)
}

/// Writes `base` into a batch's `baseOffset` field (outside the CRC: no re-checksum).
pub(crate) fn set_base_offset(batch: &mut [u8], base: i64) {
    put(batch, at::BASE_OFFSET, &base.to_be_bytes());
}

/// Writes `epoch` into a batch's `partitionLeaderEpoch` field (outside the CRC).
pub(crate) fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    put(batch, at::PARTITION_LEADER_EPOCH, &epoch.to_be_bytes());
}

/// Iterates the batches laid end to end in a buffer (a chunk of a .log file).
///
/// Like Kafka's file iterator: fewer than 17 bytes left ends iteration; a length field
/// below 49, a magic other than 2 or a batch larger than `max_batch_bytes` yields one
/// [`Error::InvalidBatch`] (at the batch's position in the buffer) and then ends; a batch
/// running past the end of the buffer (a torn tail) ends iteration silently. CRCs are not
/// checked.
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    bytes: &'a [u8],
    position: usize,
    max_batch_bytes: usize,
    done: bool,
}

impl<'a> BatchIter<'a> {
    /// Iterates `bytes`, refusing batches larger than `max_batch_bytes`.
    pub fn new(bytes: &'a [u8], max_batch_bytes: usize) -> Self {
        BatchIter {
            bytes,
            position: 0,
            max_batch_bytes,
            done: false,
        }
    }

    /// Byte position after the last batch yielded: where a torn tail starts.
    pub fn position(&self) -> usize {
        self.position
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<(usize, RecordBatch<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let start = self.position;
        let rest = self.bytes.get(start..).unwrap_or_default();
        let fail = |done: &mut bool, reason: String| {
            *done = true;
            Some(Err(Error::invalid_batch(start, reason)))
        };
        let size = match check_prefix(rest) {
            Ok(Some(size)) => size,
            Ok(None) => {
                self.done = true;
                return None;
            }
            Err(reason) => return fail(&mut self.done, reason),
        };
        if size > self.max_batch_bytes {
            let max = self.max_batch_bytes;
            return fail(
                &mut self.done,
                format!("batch of {size} bytes exceeds the limit of {max} bytes"),
            );
        }
        let Some(batch_bytes) = rest.get(..size) else {
            self.done = true;
            return None;
        };
        match RecordBatch::parse(batch_bytes) {
            Ok(batch) => {
                self.position = start + size;
                Some(Ok((start, batch)))
            }
            Err(e) => fail(&mut self.done, e.to_string()),
        }
    }
}

#[cfg(all(
    test,
    feature = "gzip",
    feature = "snappy",
    feature = "lz4",
    feature = "zstd"
))]
mod tests;
