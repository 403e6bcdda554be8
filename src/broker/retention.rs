//! The retention driver: [`Broker::enforce_retention`] runs
//! [`crate::Partition::enforce_retention`] on every partition of every topic, each reading
//! the broker's [`crate::Clock`] (the partitions share the broker's `Env`). The background
//! thread (`background.rs`) calls the same pass every `log.retention.check.interval.ms`.

use super::{Broker, Shared};
use crate::error::Result;
use crate::log::RetentionOutcome;

/// What one retention pass over the broker did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Each partition checked, with what retention deleted there, by topic then partition.
    pub partitions: Vec<PartitionRetention>,
}

/// One partition's part of a [`RetentionReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRetention {
    /// The topic.
    pub topic: String,
    /// The partition number.
    pub partition: u32,
    /// What retention deleted there.
    pub outcome: RetentionOutcome,
}

impl RetentionReport {
    /// Segments deleted over all partitions.
    pub fn segments_deleted(&self) -> usize {
        self.partitions
            .iter()
            .map(|p| p.outcome.segments_deleted())
            .sum()
    }

    /// Bytes of `.log` deleted over all partitions.
    pub fn bytes_deleted(&self) -> u64 {
        self.partitions
            .iter()
            .map(|p| p.outcome.bytes_deleted())
            .sum()
    }
}

impl Broker {
    /// Runs retention now on every partition of every topic (by `retention.ms`,
    /// `retention.bytes` and the log start offset, with the rules of
    /// [`crate::Partition::enforce_retention`]), reading the broker's clock. For
    /// applications that drive retention themselves; the background thread does the same
    /// every `log.retention.check.interval.ms` when enabled.
    ///
    /// Every partition is tried even when one fails; the first error is returned then.
    /// A topic deleted during the pass is skipped.
    pub fn enforce_retention(&self) -> Result<RetentionReport> {
        self.shared.enforce_retention()
    }
}

impl Shared {
    /// One retention pass; see [`Broker::enforce_retention`].
    pub(super) fn enforce_retention(&self) -> Result<RetentionReport> {
        let done = self.each_partition(|log| log.enforce_retention().map(Some))?;
        let partitions = done
            .into_iter()
            .map(|(topic, partition, outcome)| PartitionRetention {
                topic,
                partition,
                outcome,
            })
            .collect();
        Ok(RetentionReport { partitions })
    }
}
