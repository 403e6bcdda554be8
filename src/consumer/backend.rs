//! [`Backend`]: what a [`super::Consumer`] needs from where it runs — a single
//! [`crate::Broker`] or a [`crate::Cluster`]: the log to read a partition from (on a
//! cluster, the current leader's), a topic's partition count, and the group service
//! coordinating a group (on a cluster it moves with the leadership of the group's
//! `__consumer_offsets` partition, so a consumer asks again on a coordinator error).

use std::sync::Arc;

use crate::broker::BrokerHandle;
use crate::error::{Error, Result};
use crate::group::GroupError;
use crate::group::service::GroupService;
use crate::log::Partition;

/// A consumer's view of the brokers.
pub(crate) trait Backend: Send + Sync + std::fmt::Debug {
    /// The log to read `partition` of `topic` from, up to its high watermark.
    /// Errors: [`Error::UnknownTopic`], [`Error::UnknownPartition`], and on a cluster
    /// [`Error::LeaderNotAvailable`] while the partition has no serving leader.
    fn partition(&self, topic: &str, partition: u32) -> Result<Arc<Partition>>;

    /// How many partitions `topic` has ([`Error::UnknownTopic`]).
    fn partition_count(&self, topic: &str) -> Result<u32>;

    /// The group service coordinating `group` now.
    fn group_service(&self, group: &str) -> Result<Arc<GroupService>>;

    /// Whether the brokers were shut down for good (a consumer stops retrying then).
    fn is_shut_down(&self) -> bool {
        false
    }
}

/// A single broker: its topics, and its one group service (opened when the consumer was
/// created, if it has a group id).
#[derive(Debug)]
pub(crate) struct BrokerBackend {
    pub(crate) broker: BrokerHandle,
    pub(crate) service: Option<Arc<GroupService>>,
}

impl Backend for BrokerBackend {
    fn partition(&self, topic: &str, partition: u32) -> Result<Arc<Partition>> {
        self.broker.topic(topic)?.partition(partition)
    }

    fn partition_count(&self, topic: &str) -> Result<u32> {
        Ok(self.broker.topic(topic)?.partition_count())
    }

    fn group_service(&self, _group: &str) -> Result<Arc<GroupService>> {
        self.service
            .clone()
            .ok_or_else(|| Error::IllegalConsumerState {
                reason: "the consumer has no group id".into(),
            })
    }
}

/// Whether `error` only says that a leader or coordinator is moving (a cluster broker
/// stopped, an election is under way): the consumer retries later instead of failing.
pub(crate) fn is_moving(error: &Error) -> bool {
    match error {
        Error::LeaderNotAvailable { .. } | Error::BrokerStopped { .. } => true,
        Error::Group { error, .. } => is_coordinator_error(*error),
        _ => false,
    }
}

/// The group errors that mean "find the coordinator again".
pub(crate) fn is_coordinator_error(error: GroupError) -> bool {
    matches!(
        error,
        GroupError::NotCoordinator | GroupError::CoordinatorNotAvailable
    )
}
