//! Kafka v2 record batches ("magic 2"), byte for byte as Kafka writes them.
//!
//! Layout (all integers big-endian; see ARCHITECTURE.md § On disk and
//! `../shared/KAFKA-REFERENCE.md`):
//!
//! ```text
//! 0  baseOffset i64 | 8 batchLength i32 | 12 partitionLeaderEpoch i32 | 16 magic i8 = 2
//! 17 crc u32 (CRC-32C of bytes 21..end) | 21 attributes i16 | 23 lastOffsetDelta i32
//! 27 baseTimestamp i64 | 35 maxTimestamp i64 | 43 producerId i64 | 51 producerEpoch i16
//! 53 baseSequence i32 | 57 recordsCount i32 | 61 records (one compressed block if a codec is set)
//! ```
//!
//! - [`Record`]: what an application appends (owned key, value, headers, timestamp).
//! - [`BatchBuilder`] / [`encode_batch`]: records → one encoded batch.
//! - [`BatchHeader`], [`RecordBatch`], [`BatchIter`]: parse and validate batches without copying.
//! - [`filter_batch`]: a batch rewritten with only some of its records (compaction).
//! - [`RecordView`]: a borrowed record inside a batch; [`LogRecord`]: an owned record read
//!   back from the log, sharing the fetched buffer instead of copying it.

mod batch;
mod builder;
mod compression;
mod filter;
mod log_record;
mod record;
mod varint;
mod view;

pub use batch::{BatchHeader, BatchIter, RecordBatch, TimestampType, next_batch_size};
pub(crate) use batch::{
    is_create_time_stamped, restamp_create_time, set_base_offset, set_partition_leader_epoch,
};
pub(crate) use builder::encode_in_place;
pub use builder::{BatchBuilder, BatchSummary, encode_batch};
pub use compression::Compression;
pub use filter::{FilterOptions, FilterOutcome, filter_batch};
pub use log_record::LogRecord;
pub use record::{Header, Record};
pub(crate) use varint::Cursor;
pub use view::{HeaderView, RecordIter, RecordView};
pub(crate) use view::{RecordContext, skip_records};

/// Bytes of a batch header before the records: 61.
pub const BATCH_OVERHEAD: usize = 61;
/// Bytes before `batchLength` counts: baseOffset (8) + batchLength (4).
pub const LOG_OVERHEAD: usize = 12;
/// Bytes from the start of a batch through the magic byte: enough to know its size and format.
pub const HEADER_SIZE_UP_TO_MAGIC: usize = 17;
/// The only record format streamlog reads and writes.
pub const MAGIC_V2: i8 = 2;
/// Smallest legal `batchLength` field (`BATCH_OVERHEAD - LOG_OVERHEAD`).
pub const MIN_BATCH_LENGTH_FIELD: i32 = (BATCH_OVERHEAD - LOG_OVERHEAD) as i32;
/// `producerId`, `producerEpoch`, `baseSequence` and `partitionLeaderEpoch` when absent.
pub const NO_PRODUCER_ID: i64 = -1;
/// See [`NO_PRODUCER_ID`].
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// See [`NO_PRODUCER_ID`].
pub const NO_SEQUENCE: i32 = -1;
/// See [`NO_PRODUCER_ID`].
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;
/// Timestamp of a record that has none.
pub const NO_TIMESTAMP: i64 = -1;

/// CRC-32C (Castagnoli), the checksum of Kafka batches; also used for our own metadata
/// files. One place, so the implementation (`crc-fast`) can change without touching callers.
#[inline]
pub(crate) fn crc32c(bytes: &[u8]) -> u32 {
    // CRC-32C is 32 bits wide: the value always fits.
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, bytes) as u32
}
