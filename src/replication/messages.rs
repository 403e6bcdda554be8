//! The requests and responses of replication and producing, as plain Rust types: produce,
//! fetch (followers and consumers), offsets-for-leader-epoch and metadata. Their binary
//! encoding lives with the transport; the state machines only see these types.
//!
//! Offsets are `u64` (Kafka's `-1` "none" is `None`), epochs `i32` with `None` for "not
//! given", broker ids `u32`.

use bytes::Bytes;

/// A broker's id (S3).
pub type BrokerId = u32;

/// A topic partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKey {
    /// The topic.
    pub topic: String,
    /// The partition's index in the topic.
    pub partition: u32,
}

impl PartitionKey {
    /// Partition `partition` of `topic`.
    pub fn new(topic: impl Into<String>, partition: u32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl std::fmt::Display for PartitionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// How many replicas must have a produced batch before the producer hears back (S13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Acks {
    /// `acks=0`: the producer awaits no answer.
    None,
    /// `acks=1`: answered after the leader's local append.
    Leader,
    /// `acks=all` (`-1`): answered once the high watermark passes the batch, with
    /// `min.insync.replicas` checked before and after the append.
    #[default]
    All,
}

impl Acks {
    /// Kafka's wire value: 0, 1 or -1.
    pub fn code(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }

    /// The setting for Kafka's wire value; [`ReplicaError::InvalidRequiredAcks`] for any
    /// other than 0, 1 and -1.
    pub fn from_code(code: i16) -> Result<Self, ReplicaError> {
        match code {
            0 => Ok(Acks::None),
            1 => Ok(Acks::Leader),
            -1 => Ok(Acks::All),
            _ => Err(ReplicaError::InvalidRequiredAcks),
        }
    }
}

/// The errors a replica answers with, as Kafka names them. They are data in responses,
/// not [`crate::Error`]: a producer or follower acts on them (retry elsewhere, truncate,
/// back off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ReplicaError {
    /// `NOT_LEADER_OR_FOLLOWER` (6): this broker does not lead (or follow) the partition;
    /// `leader` is the current leader if this broker knows it (S11: retry there).
    #[error("not the leader or a follower of the partition (leader: {leader:?})")]
    NotLeaderOrFollower {
        /// The current leader, if known.
        leader: Option<BrokerId>,
    },
    /// `FENCED_LEADER_EPOCH` (74): the request's leader epoch is older than the replica's.
    #[error("the request's leader epoch is older than the replica's")]
    FencedLeaderEpoch,
    /// `UNKNOWN_LEADER_EPOCH` (75): the request's leader epoch is newer than the replica's.
    #[error("the request's leader epoch is newer than the replica's")]
    UnknownLeaderEpoch,
    /// `OFFSET_OUT_OF_RANGE` (1).
    #[error("the offset is out of range")]
    OffsetOutOfRange,
    /// `UNKNOWN_TOPIC_OR_PARTITION` (3).
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    /// `NOT_ENOUGH_REPLICAS` (19): the ISR was smaller than `min.insync.replicas` before
    /// the append; nothing was written.
    #[error("fewer in-sync replicas than min.insync.replicas; nothing was written")]
    NotEnoughReplicas,
    /// `NOT_ENOUGH_REPLICAS_AFTER_APPEND` (20): written on the leader, but the ISR shrank
    /// below `min.insync.replicas` before the batch was replicated.
    #[error("written, but the ISR shrank below min.insync.replicas before replication")]
    NotEnoughReplicasAfterAppend,
    /// `INVALID_REQUIRED_ACKS` (21).
    #[error("acks must be 0, 1 or -1")]
    InvalidRequiredAcks,
    /// `REQUEST_TIMED_OUT` (7): an `acks=all` produce was not replicated in time.
    #[error("the request timed out")]
    RequestTimedOut,
    /// `MESSAGE_TOO_LARGE` (10).
    #[error("the batch is larger than the partition accepts")]
    MessageTooLarge,
    /// `CORRUPT_MESSAGE` (2): the batch's bytes are damaged (its CRC or its structure);
    /// retriable, as Kafka's `CorruptRecordException` (they may have been damaged on the
    /// way).
    #[error("the batch is corrupt")]
    CorruptMessage,
    /// `INVALID_RECORD` (87): a well-formed batch the partition refuses by its rules (a
    /// record without a key on a compacted topic, a batch of no records). Not retriable:
    /// sending it again gets the same answer (Kafka's `InvalidRecordException`).
    #[error("the partition refuses a record of the batch")]
    InvalidRecord,
    /// `KAFKA_STORAGE_ERROR` (56): the replica's disk failed.
    #[error("the replica's storage failed")]
    StorageError,
    /// `INVALID_REQUEST` (42).
    #[error("invalid request")]
    InvalidRequest,
}

impl ReplicaError {
    /// Kafka's error code.
    pub fn code(self) -> i16 {
        match self {
            ReplicaError::OffsetOutOfRange => 1,
            ReplicaError::CorruptMessage => 2,
            ReplicaError::UnknownTopicOrPartition => 3,
            ReplicaError::NotLeaderOrFollower { .. } => 6,
            ReplicaError::RequestTimedOut => 7,
            ReplicaError::MessageTooLarge => 10,
            ReplicaError::NotEnoughReplicas => 19,
            ReplicaError::NotEnoughReplicasAfterAppend => 20,
            ReplicaError::InvalidRequiredAcks => 21,
            ReplicaError::InvalidRequest => 42,
            ReplicaError::StorageError => 56,
            ReplicaError::FencedLeaderEpoch => 74,
            ReplicaError::UnknownLeaderEpoch => 75,
            ReplicaError::InvalidRecord => 87,
        }
    }

    /// The error for Kafka's code (`leader` fills `NotLeaderOrFollower`); `None` for codes
    /// this crate does not use.
    pub fn from_code(code: i16, leader: Option<BrokerId>) -> Option<Self> {
        Some(match code {
            1 => ReplicaError::OffsetOutOfRange,
            2 => ReplicaError::CorruptMessage,
            3 => ReplicaError::UnknownTopicOrPartition,
            6 => ReplicaError::NotLeaderOrFollower { leader },
            7 => ReplicaError::RequestTimedOut,
            10 => ReplicaError::MessageTooLarge,
            19 => ReplicaError::NotEnoughReplicas,
            20 => ReplicaError::NotEnoughReplicasAfterAppend,
            21 => ReplicaError::InvalidRequiredAcks,
            42 => ReplicaError::InvalidRequest,
            56 => ReplicaError::StorageError,
            74 => ReplicaError::FencedLeaderEpoch,
            75 => ReplicaError::UnknownLeaderEpoch,
            87 => ReplicaError::InvalidRecord,
            _ => return None,
        })
    }

    /// Whether a producer should refresh metadata and retry (Kafka's retriable errors).
    pub fn is_retriable(self) -> bool {
        matches!(
            self,
            ReplicaError::NotLeaderOrFollower { .. }
                | ReplicaError::FencedLeaderEpoch
                | ReplicaError::UnknownLeaderEpoch
                | ReplicaError::UnknownTopicOrPartition
                | ReplicaError::NotEnoughReplicas
                | ReplicaError::NotEnoughReplicasAfterAppend
                | ReplicaError::RequestTimedOut
                | ReplicaError::CorruptMessage
                | ReplicaError::StorageError
        )
    }
}

/// An epoch and where it ends: the answer to offsets-for-leader-epoch, and a fetch
/// response's diverging epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EpochEndOffset {
    /// The largest epoch at or below the one asked for.
    pub epoch: i32,
    /// The offset after that epoch's last record (the next epoch's start, or the log end
    /// offset for the current epoch).
    pub end_offset: u64,
}

/// Produce a batch to one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceRequest {
    /// How many replicas must have it before the answer.
    pub acks: Acks,
    /// How long an `acks=all` produce waits for replication.
    pub timeout_ms: u32,
    /// The partition.
    pub partition: PartitionKey,
    /// One or more Kafka v2 record batches, as a producer sends them.
    pub records: Bytes,
}

/// The answer to a [`ProduceRequest`] (none for `acks=0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceResponse {
    /// The partition.
    pub partition: PartitionKey,
    /// Why the batch was refused (or not replicated in time).
    pub error: Option<ReplicaError>,
    /// The offset given to the first record, when written.
    pub base_offset: Option<u64>,
    /// The partition's log start offset.
    pub log_start_offset: u64,
}

/// Fetch records from the leaders of some partitions: a follower (with `replica_id`)
/// reads up to the log end, a consumer up to the high watermark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    /// The fetching follower's broker id; `None` for a consumer.
    pub replica_id: Option<BrokerId>,
    /// At most this many bytes over all partitions (at least one batch is returned).
    pub max_bytes: u32,
    /// The partitions, in order.
    pub partitions: Vec<FetchPartition>,
}

/// One partition of a [`FetchRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPartition {
    /// The partition.
    pub partition: PartitionKey,
    /// The leader epoch the fetcher believes current (fencing); `None` skips the check.
    pub current_leader_epoch: Option<i32>,
    /// The first offset wanted (a follower's log end offset).
    pub fetch_offset: u64,
    /// The epoch of the fetcher's last record, for divergence detection; `None` when the
    /// fetcher's log is empty or it does not track epochs.
    pub last_fetched_epoch: Option<i32>,
    /// The follower's log start offset.
    pub log_start_offset: Option<u64>,
    /// At most this many bytes of this partition.
    pub max_bytes: u32,
}

/// The answer to a [`FetchRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchResponse {
    /// One entry per partition asked for, in order.
    pub partitions: Vec<FetchedPartition>,
}

/// One partition of a [`FetchResponse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedPartition {
    /// The partition.
    pub partition: PartitionKey,
    /// Why nothing was read.
    pub error: Option<ReplicaError>,
    /// The request's `fetch_offset`, echoed: a follower takes records only from the
    /// answer to the fetch it has in flight, and this tells an answer to another fetch
    /// (an earlier run's, whose correlation id it reuses) from it.
    pub fetch_offset: u64,
    /// The leader's high watermark (before this fetch was processed).
    pub high_watermark: u64,
    /// The leader's log start offset.
    pub log_start_offset: u64,
    /// Whether the leader's log may hold offset gaps (its topic compacts, or did before a
    /// switch to `delete`; [`crate::Partition::may_hold_offset_gaps`]). A follower's copy
    /// then accepts the gaps too ([`crate::Partition::append_from_leader`]); when not, it
    /// refuses any gap.
    pub log_may_hold_gaps: bool,
    /// Set when the fetcher's log diverges from the leader's: the fetcher truncates to
    /// (at most) `end_offset` of this epoch before fetching again; no records come with it.
    pub diverging_epoch: Option<EpochEndOffset>,
    /// Whole record batches from `fetch_offset` on.
    pub records: Bytes,
}

/// Ask leaders where some epochs end (a follower of a new leader finds its divergence
/// point this way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetsForLeaderEpochRequest {
    /// The asking follower's broker id; `None` for a client.
    pub replica_id: Option<BrokerId>,
    /// The partitions and epochs.
    pub partitions: Vec<EpochQuery>,
}

/// One partition of an [`OffsetsForLeaderEpochRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochQuery {
    /// The partition.
    pub partition: PartitionKey,
    /// The leader epoch the asker believes current (fencing); `None` skips the check.
    pub current_leader_epoch: Option<i32>,
    /// The epoch whose end is wanted.
    pub leader_epoch: i32,
}

/// The answer to an [`OffsetsForLeaderEpochRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetsForLeaderEpochResponse {
    /// One entry per partition asked for, in order.
    pub partitions: Vec<EpochAnswer>,
}

/// One partition of an [`OffsetsForLeaderEpochResponse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochAnswer {
    /// The partition.
    pub partition: PartitionKey,
    /// Why there is no answer.
    pub error: Option<ReplicaError>,
    /// The largest epoch ≤ the one asked and its end offset; `None` is Kafka's
    /// `UNDEFINED` (-1, -1): the leader knows no such epoch.
    pub end: Option<EpochEndOffset>,
}

/// Ask a broker which brokers are alive and who leads which partition (S11).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetadataRequest {
    /// The topics; `None` for all.
    pub topics: Option<Vec<String>>,
}

/// The answer to a [`MetadataRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetadataResponse {
    /// The live brokers.
    pub brokers: Vec<BrokerId>,
    /// The controller, if one is elected.
    pub controller: Option<BrokerId>,
    /// The topics asked for.
    pub topics: Vec<TopicMetadata>,
}

/// One topic of a [`MetadataResponse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    /// The topic.
    pub name: String,
    /// `UnknownTopicOrPartition` when there is no such topic.
    pub error: Option<ReplicaError>,
    /// Its partitions, by index.
    pub partitions: Vec<PartitionMetadata>,
}

/// One partition of a [`TopicMetadata`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    /// The partition's index.
    pub partition: u32,
    /// The leader, if the partition is online.
    pub leader: Option<BrokerId>,
    /// The current leader epoch.
    pub leader_epoch: i32,
    /// The assigned replicas.
    pub replicas: Vec<BrokerId>,
    /// The in-sync replicas.
    pub isr: Vec<BrokerId>,
}
