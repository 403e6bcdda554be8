//! Replication (issue 6; S2, S3, S6, S10, S11, S13, S16): the sans-IO pieces a broker runs
//! for each partition it replicates.
//!
//! - [`messages`]: the requests and responses replicas and producers exchange (produce,
//!   fetch, offsets-for-leader-epoch, metadata) as plain Rust types, and the errors a
//!   replica answers with ([`ReplicaError`], Kafka's error codes).
//! - [`PartitionState`]: what the consensus store holds for a partition — replicas,
//!   leader, leader epoch, ISR — written with compare-and-set on its version.
//! - [`LeaderState`] (`leader.rs`): the leader's view of its followers
//!   ([`RemoteReplica`]), the ISR and its two-phase changes, the high watermark, and the
//!   `acks=all` gates.
//! - [`validate_fetch`] (`fetch_validation.rs`): leader-epoch fencing and divergence.
//! - [`truncation_offset`] (`truncation.rs`): where a follower cuts its log.
//! - [`consensus`]: the [`ConsensusStore`] trait (what ZooKeeper held for Kafka: broker
//!   leases, the controller seat, topics and partition states with compare-and-set, a
//!   change feed) and [`InMemoryConsensus`], its in-process implementation with fault
//!   hooks.
//! - [`Replica`] (`replica.rs`): one hosted partition — log, applied state, role — and
//!   the leader's answers to fetch, epoch and produce requests.
//! - [`controller`]: the controller's decisions — replica placement (S6), clean and
//!   unclean leader election, ISR cleanup, preferred-leader rebalancing.
//! - [`ReplicaManager`] (`manager.rs`): all of a broker's replicas; the followers'
//!   fetching, waiting `acks=all` produces, ISR proposals, as [`ReplicaOutput`]s.
//! - [`transport`]: the [`Transport`] trait that carries these messages between brokers,
//!   their versioned binary encoding, and [`InMemoryTransport`], an in-process network
//!   with seeded faults for simulation.
//!
//! The state machines take inputs (a request, a response, the time) and return outputs;
//! they own no threads, sockets or sleeps, so a seeded simulation can drive them.

pub mod consensus;
pub mod controller;
mod fetch_validation;
mod leader;
mod manager;
pub mod messages;
mod partition_state;
mod remote_replica;
mod replica;
pub mod transport;
mod truncation;

pub use consensus::{
    BrokerRegistration, Change, Changes, ConsensusSession, ConsensusStore, Controller,
    InMemoryConsensus, TopicRecord, Versioned,
};
pub use fetch_validation::{FetchPosition, check_leader_epoch, validate_fetch};
pub use leader::{IsrChange, LeaderConfig, LeaderState};
pub use manager::{
    PreparedProduce, ProduceOutcome, ProduceToken, ReplicaConfig, ReplicaManager, ReplicaOutput,
    ReplicaRequest, ReplicaResponse,
};
pub use messages::{Acks, BrokerId, EpochEndOffset, PartitionKey, ReplicaError};
pub use partition_state::{LeaderRecoveryState, PartitionState};
pub use remote_replica::RemoteReplica;
pub use replica::{Applied, FollowerPhase, FollowerState, LeaderAppend, Replica, Role};
pub use transport::{Envelope, InMemoryTransport, NetworkFaults, Transport, TransportStats};
pub use truncation::{Truncation, truncation_offset};
