//! [`OffsetsConfig`]: the settings of `__consumer_offsets` and of offset commits, with
//! Kafka's names and defaults where Kafka has them.

use crate::config::{CleanupPolicy, FlushPolicy};
use crate::error::{Error, Result};
use crate::topic::TopicConfig;

use super::wire::MAX_STRING_BYTES;

/// The name of the internal topic that stores committed offsets and group metadata.
pub const CONSUMER_OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The longest group id accepted, in UTF-8 bytes. Kafka itself only refuses an empty id;
/// this bound keeps keys small and every group id representable in Kafka's format.
pub const MAX_GROUP_ID_BYTES: usize = 255;

/// Settings of the offsets store. Every field has a builder setter of the same name.
///
/// ```
/// use streamlog::OffsetsConfig;
/// let config = OffsetsConfig::default().num_partitions(10).retention_minutes(60);
/// assert_eq!(config.retention_ms(), 3_600_000);
/// assert_eq!(OffsetsConfig::default().num_partitions, 50);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct OffsetsConfig {
    /// `offsets.topic.num.partitions` (default 50): partitions of `__consumer_offsets`
    /// when the store creates it. An existing topic keeps the count it was created with,
    /// and groups are placed by that count.
    pub num_partitions: u32,
    /// `offsets.topic.segment.bytes`: segment size of the topic (default 8 MiB, smaller
    /// than Kafka's 100 MiB so that compaction, which skips the active segment, starts
    /// sooner on a small embedded log).
    pub segment_bytes: u64,
    /// `segment.index.bytes` of the topic (default 128 KiB: ample for an 8 MiB segment, and
    /// fifty partitions preallocate only a little).
    pub segment_index_bytes: usize,
    /// When commits are fsynced (default [`FlushPolicy::Never`], as every Kafka topic).
    pub flush_policy: FlushPolicy,
    /// `offsets.retention.minutes` (default 10080, seven days): how long an offset of an
    /// Empty group is kept. Kafka's type is `i32`; converted to ms without overflow.
    pub retention_minutes: i32,
    /// `offset.metadata.max.bytes` (default 4096): the longest commit metadata, in UTF-8
    /// bytes (Kafka counts UTF-16 units; the two agree on ASCII). At most 32767.
    pub metadata_max_bytes: usize,
}

impl Default for OffsetsConfig {
    fn default() -> Self {
        Self {
            num_partitions: 50,
            segment_bytes: 8 << 20,
            segment_index_bytes: 128 << 10,
            flush_policy: FlushPolicy::Never,
            retention_minutes: 7 * 24 * 60,
            metadata_max_bytes: 4096,
        }
    }
}

macro_rules! setters {
    ($($field:ident: $ty:ty),* $(,)?) => {
        impl OffsetsConfig {
            $(
                #[doc = concat!("Sets [`OffsetsConfig::", stringify!($field), "`].")]
                #[must_use]
                pub fn $field(mut self, value: $ty) -> Self {
                    self.$field = value;
                    self
                }
            )*
        }
    };
}

setters! {
    num_partitions: u32,
    segment_bytes: u64,
    segment_index_bytes: usize,
    flush_policy: FlushPolicy,
    retention_minutes: i32,
    metadata_max_bytes: usize,
}

impl OffsetsConfig {
    /// `offsets.retention.minutes` in ms, computed in `i64`: `i32::MAX` minutes does not
    /// overflow.
    pub fn retention_ms(&self) -> i64 {
        i64::from(self.retention_minutes) * 60_000
    }

    /// The config `__consumer_offsets` is created with: compacted, `num_partitions`
    /// partitions, the segment settings and flush policy above.
    pub fn topic_config(&self) -> TopicConfig {
        TopicConfig::default()
            .partitions(self.num_partitions)
            .cleanup_policy(CleanupPolicy::Compact)
            .segment_bytes(self.segment_bytes)
            .segment_index_bytes(self.segment_index_bytes)
            .flush_policy(self.flush_policy)
    }

    /// Checks every value: [`Error::InvalidConfig`] names the setting out of range.
    pub fn validate(&self) -> Result<()> {
        let refuse = |name, reason: String| Err(Error::InvalidConfig { name, reason });
        if self.retention_minutes < 1 {
            return refuse(
                "offsets.retention.minutes",
                format!("{} is below 1", self.retention_minutes),
            );
        }
        if self.metadata_max_bytes > MAX_STRING_BYTES {
            return refuse(
                "offset.metadata.max.bytes",
                format!(
                    "{} is above {MAX_STRING_BYTES}, the longest string Kafka's format holds",
                    self.metadata_max_bytes
                ),
            );
        }
        self.topic_config().validate().map_err(|e| match e {
            Error::InvalidConfig {
                name: "partitions",
                reason,
            } => Error::InvalidConfig {
                name: "offsets.topic.num.partitions",
                reason,
            },
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kafkas_where_kafka_has_them() {
        let c = OffsetsConfig::default();
        assert_eq!(c.num_partitions, 50);
        assert_eq!(c.retention_minutes, 10_080);
        assert_eq!(c.metadata_max_bytes, 4096);
        assert_eq!(
            c.topic_config().log_config().cleanup_policy,
            CleanupPolicy::Compact
        );
        c.validate().unwrap();
    }

    #[test]
    fn retention_of_i32_max_minutes_does_not_overflow() {
        let c = OffsetsConfig::default().retention_minutes(i32::MAX);
        assert_eq!(c.retention_ms(), i64::from(i32::MAX) * 60 * 1000);
        assert!(c.retention_ms() > 0);
    }

    #[test]
    fn out_of_range_values_name_the_setting() {
        let name = |c: OffsetsConfig| match c.validate() {
            Err(Error::InvalidConfig { name, .. }) => name,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            name(OffsetsConfig::default().num_partitions(0)),
            "offsets.topic.num.partitions"
        );
        assert_eq!(
            name(OffsetsConfig::default().retention_minutes(0)),
            "offsets.retention.minutes"
        );
        assert_eq!(
            name(OffsetsConfig::default().metadata_max_bytes(40_000)),
            "offset.metadata.max.bytes"
        );
    }
}
