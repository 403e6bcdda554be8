//! The compaction driver: [`Broker::compact`] runs one [`crate::Partition::compact`] pass
//! on every partition whose log needs it ([`crate::Partition::needs_compaction`]: a
//! `compact` or `compact,delete` log whose dirty ratio is above `min.cleanable.dirty.ratio`
//! or whose oldest dirty segment passed `max.compaction.lag.ms`). The background thread
//! runs it after each retention pass.

use super::{Broker, Shared};
use crate::error::Result;
use crate::log::CleanerStats;

/// What one compaction pass over the broker did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionReport {
    /// Each partition compacted, by topic then partition (partitions that did not need it
    /// are left out).
    pub partitions: Vec<PartitionCompaction>,
}

/// One partition's part of a [`CompactionReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionCompaction {
    /// The topic.
    pub topic: String,
    /// The partition number.
    pub partition: u32,
    /// What the cleaner did there.
    pub stats: CleanerStats,
}

impl Broker {
    /// Compacts now every partition that needs it (see the module doc), reading the
    /// broker's clock for `min.compaction.lag.ms` and tombstone horizons. Every partition is
    /// tried even when one fails; the first error is returned then.
    pub fn compact(&self) -> Result<CompactionReport> {
        self.shared.compact()
    }
}

impl Shared {
    /// One compaction pass; see [`Broker::compact`].
    pub(super) fn compact(&self) -> Result<CompactionReport> {
        let done = self.each_partition(|log| {
            if log.needs_compaction() {
                log.compact().map(Some)
            } else {
                Ok(None)
            }
        })?;
        let partitions = done
            .into_iter()
            .map(|(topic, partition, stats)| PartitionCompaction {
                topic,
                partition,
                stats,
            })
            .collect();
        Ok(CompactionReport { partitions })
    }
}
