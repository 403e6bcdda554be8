//! Replication (issue 6; S2, S3, S6, S10, S11, S13, S16): the sans-IO pieces a broker runs
//! for each partition it replicates.
//!
//! - [`messages`]: the requests and responses replicas and producers exchange (produce,
//!   fetch, offsets-for-leader-epoch, metadata) as plain Rust types, and the errors a
//!   replica answers with ([`ReplicaError`], Kafka's error codes).
//! - [`PartitionState`]: what the consensus store holds for a partition — replicas,
//!   leader, leader epoch, ISR — written with compare-and-set on its version.
//!
//! The state machines take inputs (a request, a response, the time) and return outputs;
//! they own no threads, sockets or sleeps, so a seeded simulation can drive them.

pub mod messages;
mod partition_state;

pub use messages::{Acks, BrokerId, EpochEndOffset, PartitionKey, ReplicaError};
pub use partition_state::{LeaderRecoveryState, PartitionState};
