//! [`TopicDescription`] and [`PartitionDescription`]: what
//! [`crate::Broker::describe_topic`] reports, like `kafka-topics --describe` plus each
//! partition's offsets and size on disk.

use crate::log::Partition;
use crate::topic::{Topic, TopicConfig};

/// A topic's config and the state of each of its partitions (a snapshot).
#[derive(Debug, Clone, PartialEq)]
pub struct TopicDescription {
    /// The topic's name.
    pub name: String,
    /// Whether it is an internal topic (name starting with `__`, such as
    /// `__consumer_offsets`).
    pub internal: bool,
    /// The stored config, `partitions` the current count. After
    /// [`crate::Broker::alter_topic_config`] this is the new config, which the partitions
    /// use from the broker's next open (see `config_pending_reopen`).
    pub config: TopicConfig,
    /// Whether `config` differs from the config the partitions run with now, because it
    /// was altered since the broker opened them.
    pub config_pending_reopen: bool,
    /// Every partition, in order.
    pub partitions: Vec<PartitionDescription>,
}

/// One partition's offsets and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionDescription {
    /// The partition number.
    pub partition: u32,
    /// The first offset still in the log.
    pub log_start_offset: u64,
    /// The offset the next record will get.
    pub log_end_offset: u64,
    /// The end of what consumers can read.
    pub high_watermark: u64,
    /// Bytes of all its `.log` files.
    pub size_bytes: u64,
    /// How many segments it has.
    pub segment_count: usize,
}

impl TopicDescription {
    /// Describes `topic`, whose stored config is `stored`.
    pub(super) fn new(topic: &Topic, stored: &TopicConfig) -> Self {
        let config = stored.clone().partitions(topic.partition_count());
        // `auto_high_watermark` is not a stored setting: only compare the stored ones.
        let running = topic
            .config()
            .auto_high_watermark(config.log_config().auto_high_watermark);
        TopicDescription {
            name: topic.name().to_owned(),
            internal: topic.name().starts_with("__"),
            config_pending_reopen: config != running,
            config,
            partitions: topic
                .partitions()
                .iter()
                .zip(0..)
                .map(|(p, i)| PartitionDescription::new(i, p))
                .collect(),
        }
    }
}

impl PartitionDescription {
    fn new(partition: u32, log: &Partition) -> Self {
        PartitionDescription {
            partition,
            log_start_offset: log.log_start_offset(),
            log_end_offset: log.log_end_offset(),
            high_watermark: log.high_watermark(),
            size_bytes: log.size_bytes(),
            segment_count: log.segment_count(),
        }
    }
}
