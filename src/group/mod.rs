//! Consumer groups (issue 5): the sans-IO [`GroupCoordinator`] that runs Kafka's classic
//! group protocol for many groups ([`coordinator`]), and the partition assignors a group
//! leader uses to split partitions among members ([`assignor`]).
//!
//! Group errors a member can act on travel inside responses as [`GroupError`] values; they
//! are data, not [`crate::Error`].

pub mod assignor;
pub mod coordinator;
mod error;

pub use assignor::{
    Assignor, CooperativeStickyAssignor, MemberAssignment, MemberId, MemberSubscription,
    RangeAssignor, RebalanceProtocol, RoundRobinAssignor, StickyAssignor, TopicPartition,
    assignor_by_name,
};
pub use coordinator::GroupCoordinator;
pub use error::GroupError;
