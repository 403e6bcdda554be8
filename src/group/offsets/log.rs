//! [`OffsetsLog`]: where an [`super::OffsetsStore`] reads and appends the records of
//! `__consumer_offsets`. A single [`crate::Broker`] appends to its own topic's partitions;
//! a cluster node appends as the partition's leader with `acks=all`, so a write returns
//! only once it is replicated (`src/cluster/groups.rs`).

use std::ops::Range;
use std::sync::Arc;

use crate::error::Result;
use crate::log::Partition;
use crate::record::Record;
use crate::topic::Topic;

/// The partitions of `__consumer_offsets`, as the store reads and writes them.
pub(crate) trait OffsetsLog: Send + Sync + std::fmt::Debug {
    /// The log of `partition`, replayed by a load up to its high watermark.
    fn partition(&self, partition: u32) -> Result<Arc<Partition>>;

    /// Appends `records` to `partition` as one batch; returns their offsets once the
    /// append is as durable as this log promises.
    fn append(&self, partition: u32, records: &[Record]) -> Result<Range<u64>>;
}

impl OffsetsLog for Arc<Topic> {
    fn partition(&self, partition: u32) -> Result<Arc<Partition>> {
        Topic::partition(self, partition)
    }

    fn append(&self, partition: u32, records: &[Record]) -> Result<Range<u64>> {
        Topic::partition(self, partition)?.append_records(records)
    }
}
