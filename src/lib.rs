#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::unwrap_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::panic))]

pub mod broker;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod consumer;
pub mod error;
pub mod group;
pub mod index;
pub mod log;
pub mod record;
pub mod replication;
pub mod segment;
pub mod storage;
pub mod topic;

pub use broker::{
    Broker, BrokerConfig, CompactionReport, INTERNAL_TOPIC_PREFIX, PartitionCompaction,
    PartitionDescription, PartitionRetention, RetentionReport, TopicDescription,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use cluster::{Cluster, ClusterConfig, Producer, ProducerConfig};
pub use config::{CleanupPolicy, FlushPolicy, LogConfig};
pub use consumer::{AutoOffsetReset, Consumer, ConsumerConfig, ConsumerRecord, RebalanceListener};
pub use error::{Error, Result};
pub use group::offsets::{
    ExpiryReport, GroupActivity, GroupMetadata, LoadReport, MemberMetadata, OffsetAndMetadata,
    OffsetsConfig, OffsetsKey, OffsetsRecord, OffsetsStore, RecordFormatError,
    java_string_hash_code, partition_for_group,
};
pub use group::{
    Assignor, CooperativeStickyAssignor, GroupCoordinator, GroupDescription, GroupError,
    GroupState, MemberAssignment, MemberSubscription, RangeAssignor, RebalanceProtocol,
    RoundRobinAssignor, StickyAssignor, assignor_by_name,
};
pub use index::{IndexEntry, SparseIndex, TimeEntry, TimeIndex};
pub use log::{
    CleanerStats, EpochEntry, OffsetAndTimestamp, Partition, ReadBound, ReadOptions, Records,
    RetentionOutcome,
};
pub use record::{Compression, Header, LogRecord, Record, RecordBatch, RecordView};
pub use replication::{
    Acks, BrokerId, ConsensusStore, InMemoryConsensus, PartitionKey, PartitionState, ReplicaError,
};
pub use replication::{Envelope, InMemoryTransport, NetworkFaults, Transport, TransportStats};
pub use segment::Segment;
pub use storage::{Env, FileStorage, PowerLoss, SimStorage, Storage};
pub use topic::{DefaultPartitioner, Partitioner, StickyPartitioner, Topic, TopicConfig, murmur2};
