//! Consumer groups (issue 5): the sans-IO [`GroupCoordinator`] that runs Kafka's classic
//! group protocol for many groups ([`coordinator`]), the partition assignors a group
//! leader uses to split partitions among members ([`assignor`]), and committed offsets and
//! group metadata stored in the internal compacted topic `__consumer_offsets` ([`offsets`]).
//!
//! Group errors a member can act on travel inside responses as [`GroupError`] values; they
//! are data, not [`crate::Error`].

pub mod assignor;
pub mod coordinator;
mod error;
pub mod offsets;
pub(crate) mod service;

pub use assignor::{
    Assignor, CooperativeStickyAssignor, MemberAssignment, MemberId, MemberSubscription,
    RangeAssignor, RebalanceProtocol, RoundRobinAssignor, StickyAssignor, TopicPartition,
    assignor_by_name,
};
pub use coordinator::{GroupCoordinator, GroupDescription, GroupState};
pub use error::GroupError;
