//! The crate's one error type, [`Error`], and its [`Result`] alias.
//!
//! Every variant carries what a caller needs to act on it: the valid offset range, the limit
//! that was exceeded, or the file and byte position where the disk is at fault.

use std::path::PathBuf;

/// `Result<T, streamlog::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in streamlog.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The requested offset is outside `[log_start, log_end]`.
    #[error("offset {requested} is out of range: the log holds [{log_start}, {log_end})")]
    OffsetOutOfRange {
        /// The offset asked for.
        requested: u64,
        /// The first offset still in the log.
        log_start: u64,
        /// The log end offset: the offset the next appended record will get. For
        /// `delete_records_before`, which may not pass the high watermark, it is the
        /// high watermark.
        log_end: u64,
    },

    /// A batch is larger than `max.message.bytes`.
    #[error("record batch of {size} bytes exceeds the limit of {max} bytes")]
    MessageTooLarge {
        /// Encoded size of the batch in bytes.
        size: usize,
        /// The configured limit in bytes.
        max: usize,
    },

    /// A batch is larger than a whole segment (`segment.bytes`), so it can never be stored.
    #[error("record batch of {size} bytes does not fit in a segment of {segment_bytes} bytes")]
    BatchLargerThanSegment {
        /// Encoded size of the batch in bytes.
        size: usize,
        /// The configured segment size in bytes.
        segment_bytes: u64,
    },

    /// Bytes handed to the library are not a valid record batch.
    #[error("invalid record batch at byte {position}: {reason}")]
    InvalidBatch {
        /// Byte position of the fault, relative to the start of the bytes given.
        position: u64,
        /// What is wrong.
        reason: String,
    },

    /// Bytes handed to the transport codec are not a valid frame (wrong version, unknown
    /// api key, truncated or trailing bytes, a field out of range).
    #[error("invalid transport frame at byte {position}: {reason}")]
    InvalidFrame {
        /// Byte position of the fault, relative to the start of the bytes given.
        position: usize,
        /// What is wrong.
        reason: String,
    },

    /// A transport frame would be (or claims to be) larger than the codec carries.
    #[error("transport frame of {size} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// Size of the frame in bytes.
        size: usize,
        /// The limit in bytes.
        max: usize,
    },

    /// A file on disk holds bytes that fail validation.
    #[error("corrupt data in {} at byte {position}: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte position of the first invalid byte.
        position: u64,
        /// What is wrong.
        reason: String,
    },

    /// A batch appended with pre-assigned offsets does not continue the log.
    #[error("batch offsets [{first}, {last}] do not continue the log, whose end is {log_end}")]
    UnexpectedAppendOffset {
        /// First offset of the batch.
        first: u64,
        /// Last offset of the batch.
        last: u64,
        /// The log end offset the batch had to start at or after.
        log_end: u64,
    },

    /// An offset past the largest a Kafka log can hold (`i64::MAX`, exclusive: the log
    /// end must stay an `i64` too).
    #[error("offset {offset} is past the largest log offset {max}")]
    OffsetLimit {
        /// The offset asked for, or the last offset an append would have given.
        offset: u64,
        /// The largest offset a log can hold.
        max: u64,
    },

    /// An offset cannot be stored in a segment: it is below the segment's base offset or
    /// more than `i32::MAX` above it.
    #[error("offset {offset} cannot be stored in the segment based at {base_offset}")]
    SegmentOffsetOverflow {
        /// The segment's base offset.
        base_offset: u64,
        /// The offset that does not fit.
        offset: u64,
    },

    /// A record without a key was appended to a compacted log (`cleanup.policy` `compact`
    /// or `compact,delete`), which keeps records by key.
    #[error("record {index} of the batch has no key, which a compacted log requires")]
    MissingKey {
        /// Position of the first record without a key in the appended batch (from 0).
        index: usize,
    },

    /// An empty batch was given where at least one record is needed.
    #[error("a batch needs at least one record")]
    EmptyBatch,

    /// The batch uses a compression codec this build does not include (or an unknown one).
    #[error("compression codec {codec} is not supported by this build")]
    UnsupportedCompression {
        /// The codec id from the batch attributes (bits 0-2).
        codec: u8,
    },

    /// A configuration value is out of its allowed range.
    #[error("invalid configuration `{name}`: {reason}")]
    InvalidConfig {
        /// The setting, by its Kafka name where it has one.
        name: &'static str,
        /// Why the value is refused.
        reason: String,
    },

    /// A topic name breaks Kafka's rules: 1 to 249 characters of `[a-zA-Z0-9._-]`, and not
    /// `.` or `..`.
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName {
        /// The name refused.
        name: String,
        /// Which rule it breaks.
        reason: String,
    },

    /// No topic of that name exists.
    #[error("unknown topic {name:?}")]
    UnknownTopic {
        /// The name asked for.
        name: String,
    },

    /// A topic has no partition with that number.
    #[error("topic {topic:?} has no partition {partition}: it has {partitions} (0..{partitions})")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
        /// How many partitions the topic has; valid numbers are `0..partitions`.
        partitions: u32,
    },

    /// A topic of that name already exists.
    #[error("topic {name:?} already exists")]
    TopicExists {
        /// The name asked for.
        name: String,
    },

    /// A topic name differs from an existing one only by `.` versus `_`; Kafka refuses it
    /// because both map to the same metric names.
    #[error(
        "topic {name:?} collides with existing topic {existing:?} ('.' and '_' are treated alike)"
    )]
    TopicCollision {
        /// The name asked for.
        name: String,
        /// The existing topic it collides with.
        existing: String,
    },

    /// Another process (or another handle in this one) holds the directory.
    #[error("directory {} is locked by another open log", path.display())]
    DirectoryLocked {
        /// The directory whose lock file could not be taken.
        path: PathBuf,
    },

    /// A broker data directory belongs to another broker: its `meta.properties` holds a
    /// different `broker.id` than the one the broker was opened with.
    #[error(
        "data directory {} belongs to broker {stored}, not broker {configured}",
        path.display()
    )]
    BrokerIdMismatch {
        /// The data directory's `meta.properties`.
        path: PathBuf,
        /// The broker id stored there.
        stored: i32,
        /// The broker id the broker was opened with.
        configured: i32,
    },

    /// An index was used against its rules: appended to when full, with an offset or timestamp
    /// that does not increase, or read past its last entry.
    #[error("index {} refused the operation: {reason}", path.display())]
    IndexMisuse {
        /// The index file.
        path: PathBuf,
        /// Which rule was broken.
        reason: String,
    },

    /// A file was about to be cut in place while a memory map of it is alive in this
    /// process — a segment's `.log` that readers (maybe of an earlier, closed log on the
    /// same directory) still hold: an internal rule, such a segment is rewritten to new
    /// files first.
    #[error("{} is mapped and cannot be cut in place", path.display())]
    SegmentInUse {
        /// The segment's `.log` file.
        path: PathBuf,
    },

    /// The log was closed; no more operations are accepted on this handle.
    #[error("the log at {} is closed", path.display())]
    Closed {
        /// Directory of the closed log.
        path: PathBuf,
    },

    /// The log was truncated below an append's records before they became durable
    /// (with [`FlushPolicy::Always`](crate::FlushPolicy::Always)): the records are gone
    /// and the append did not happen. Append again if they are still wanted.
    #[error(
        "records below offset {append_end} were truncated away (the log was cut to end at {log_end}) before they became durable"
    )]
    TruncatedBeforeDurable {
        /// The end of the append's offset range.
        append_end: u64,
        /// Where the truncation cut the log.
        log_end: u64,
    },

    /// A consumer group id is empty or longer than
    /// [`MAX_GROUP_ID_BYTES`](crate::group::offsets::MAX_GROUP_ID_BYTES).
    #[error("invalid group id {group:?}: {reason}")]
    InvalidGroupId {
        /// The group id refused.
        group: String,
        /// Which rule it breaks.
        reason: String,
    },

    /// Offset commit metadata is longer than `offset.metadata.max.bytes`.
    #[error("offset metadata of {size} bytes exceeds the limit of {max} bytes")]
    OffsetMetadataTooLarge {
        /// The metadata's length in bytes.
        size: usize,
        /// The configured limit in bytes.
        max: usize,
    },

    /// A record in `__consumer_offsets` does not decode as Kafka's offset-commit or
    /// group-metadata format.
    #[error("record at offset {offset} of __consumer_offsets partition {partition}: {source}")]
    InvalidOffsetsRecord {
        /// The `__consumer_offsets` partition.
        partition: u32,
        /// The record's offset.
        offset: u64,
        /// What is wrong with it.
        #[source]
        source: crate::group::offsets::RecordFormatError,
    },

    /// A value cannot be written in Kafka's `__consumer_offsets` format (a string longer
    /// than 32767 bytes, an offset above `i64::MAX`, a partition above `i32::MAX`).
    #[error("cannot encode a __consumer_offsets record: {0}")]
    OffsetsRecordFormat(#[from] crate::group::offsets::RecordFormatError),

    /// A consumer has no position for a partition: nothing committed and
    /// `auto.offset.reset` is `none` (or the position fell out of the log).
    #[error("no committed offset for {topic}-{partition} and auto.offset.reset is none")]
    NoOffsetForPartition {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
    },

    /// A consumer was asked about a partition it is not assigned.
    #[error("partition {topic}-{partition} is not assigned to this consumer")]
    NotAssigned {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
    },

    /// The group coordinator refused a consumer's request with an error the consumer
    /// cannot recover from by itself (e.g. a commit after its generation ended, a full
    /// group).
    #[error("group {group:?}: {operation} failed: {error}")]
    Group {
        /// The group.
        group: String,
        /// What the consumer was doing (`commit`, `join`, ...).
        operation: &'static str,
        /// The coordinator's error.
        error: crate::group::GroupError,
    },

    /// A consumer call that its current mode does not allow (commit without a group id,
    /// `subscribe` after `assign`, any call after `close`).
    #[error("consumer: {reason}")]
    IllegalConsumerState {
        /// What is wrong.
        reason: String,
    },

    // --- Consensus store ---
    /// A broker tried to register while a live lease for its id exists: another process
    /// runs with the same id, or this one registered before and its lease has not lapsed
    /// (renew it instead).
    #[error("broker {broker} is already registered with a live lease")]
    BrokerAlreadyRegistered {
        /// The broker id.
        broker: crate::replication::BrokerId,
    },

    /// The broker holds no live lease in the consensus store: it lapsed (the broker did not
    /// renew in time, so the cluster already counts it as gone) or was never taken. The
    /// broker must register again, and gets a new broker epoch.
    #[error("broker {broker} has no live lease: register again")]
    LeaseExpired {
        /// The broker id.
        broker: crate::replication::BrokerId,
    },

    /// A compare-and-set write was based on a stale read: the key changed since. Read it
    /// again, decide again, and retry with the version read.
    #[error("version conflict on {key}: expected version {expected}, the store holds {actual}")]
    VersionConflict {
        /// The key written (`/brokers/topics/<topic>` or
        /// `/brokers/topics/<topic>/partitions/<n>/state`).
        key: String,
        /// The version the writer expected.
        expected: u64,
        /// The version the store holds.
        actual: u64,
    },

    /// The change log no longer holds the changes after `requested`; the caller fell too far
    /// behind. Read the whole state again, then follow changes from `revision()`.
    #[error(
        "changes after revision {requested} were compacted; the oldest resumable revision is {oldest}"
    )]
    ChangesCompacted {
        /// The revision asked for.
        requested: u64,
        /// The oldest revision `changes_since` still answers for.
        oldest: u64,
    },

    /// The consensus store cannot be reached: it is down, or this broker is cut off from it.
    /// Nothing was read or written; retry later. A broker cut off for longer than its
    /// lease loses it.
    #[error("consensus store unavailable{}: {reason}", broker.map_or_else(String::new, |b| format!(" to broker {b}")))]
    ConsensusUnavailable {
        /// The broker cut off from the store, or `None` when the store itself is down.
        broker: Option<crate::replication::BrokerId>,
        /// What is wrong.
        reason: String,
    },

    // --- Cluster ---
    /// A replication factor the cluster cannot place (S6): below 1, above 10, or above
    /// the number of live brokers.
    #[error(
        "replication factor {requested} is invalid: {reason} (max {max}, {live_brokers} live brokers)"
    )]
    InvalidReplicationFactor {
        /// The replication factor asked for.
        requested: u16,
        /// The largest replication factor allowed.
        max: u16,
        /// How many brokers are live.
        live_brokers: usize,
        /// Which rule it breaks.
        reason: String,
    },

    /// A partition has no leader right now (an election is under way, or no eligible
    /// replica is live and unclean election is off).
    #[error("partition {partition} of topic {topic:?} has no leader")]
    LeaderNotAvailable {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
    },

    /// No broker of that id belongs to the cluster.
    #[error("no broker {broker} in the cluster (brokers: {brokers:?})")]
    UnknownBroker {
        /// The id asked for.
        broker: u32,
        /// The cluster's broker ids.
        brokers: Vec<u32>,
    },

    /// The broker is stopped; start it with `Cluster::start_broker`.
    #[error("broker {broker} is stopped")]
    BrokerStopped {
        /// The broker.
        broker: u32,
    },

    /// A produce failed after every retry (or with an error not worth retrying).
    #[error(
        "produce to partition {partition} of {topic:?} failed after {attempts} attempts: {error}"
    )]
    Produce {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The last error a broker answered with.
        error: crate::replication::ReplicaError,
        /// How many times the batch was sent.
        attempts: u32,
    },

    /// An operating-system I/O error, with the file it happened on.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Wraps an [`std::io::Error`] with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// An [`Error::InvalidBatch`] at `position` for `reason`.
    pub(crate) fn invalid_batch(position: usize, reason: impl Into<String>) -> Self {
        Error::InvalidBatch {
            position: position as u64,
            reason: reason.into(),
        }
    }

    /// Moves an [`Error::InvalidBatch`] found in bytes that start at `base` of `path` to an
    /// [`Error::Corrupt`] naming the file and absolute position; other errors pass through.
    pub(crate) fn in_file(self, path: &std::path::Path, base: u64) -> Self {
        match self {
            Error::InvalidBatch { position, reason } => Error::Corrupt {
                path: path.to_path_buf(),
                position: base + position,
                reason,
            },
            other => other,
        }
    }
}

/// Attaches a path to an I/O result.
pub(crate) trait IoContext<T> {
    /// Maps an `io::Error` to [`Error::Io`] naming `path`.
    fn at(self, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|source| Error::io(path, source))
    }
}
