//! Log configuration: [`LogConfig`] (Kafka's topic-level storage settings, with Kafka's
//! names and defaults) and [`FlushPolicy`] (when appended bytes are fsynced).

use std::time::Duration;

use crate::error::{Error, Result};
use crate::record::Compression;

/// When appended data is made durable with `fdatasync`.
///
/// Whatever the policy, [`crate::Partition::flush`] flushes on demand, a segment is flushed
/// when it rolls, and the log is flushed when it closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlushPolicy {
    /// Leave it to the OS page cache (Kafka's default: durability comes from replication).
    #[default]
    Never,
    /// Flush after every `n` appended records (Kafka's `flush.messages`).
    EveryMessages(u64),
    /// Flush when this much time has passed since the last flush (Kafka's `flush.ms`),
    /// checked on append and by a background thread.
    Interval(Duration),
    /// Every append returns only once its bytes are durable. Concurrent appenders share one
    /// fsync (group commit), so many threads cost little more than one.
    Always,
}

/// `cleanup.policy`: what happens to old segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CleanupPolicy {
    /// Old segments are deleted by retention (Kafka's default).
    #[default]
    Delete,
    /// Old segments are compacted: the last record per key is kept, offsets keep their gaps.
    Compact,
    /// Both: compacted, and deleted by retention.
    CompactAndDelete,
}

impl CleanupPolicy {
    /// Whether a log under this policy can hold offset gaps (only compaction makes them).
    /// A log that cannot checks that every batch starts where the previous one ended, which
    /// catches damage to the base-offset field that the batch CRC does not cover.
    pub fn allows_offset_gaps(self) -> bool {
        self != CleanupPolicy::Delete
    }
}

/// Storage settings of one partition log. Field names follow Kafka's topic configs
/// (`segment.bytes` → `segment_bytes`); every field has a builder setter of the same name.
///
/// ```
/// use streamlog::{FlushPolicy, LogConfig};
/// let config = LogConfig::default()
///     .segment_bytes(64 << 20)
///     .flush_policy(FlushPolicy::Always);
/// assert_eq!(config.index_interval_bytes, 4096);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: a segment rolls when the next batch would pass this size.
    pub segment_bytes: u64,
    /// `segment.ms`: a segment rolls when its records span more than this (ms).
    pub segment_ms: i64,
    /// `segment.index.bytes`: preallocated size of each index file.
    pub segment_index_bytes: usize,
    /// `index.interval.bytes`: one offset-index entry per this many bytes of log.
    pub index_interval_bytes: usize,
    /// `max.message.bytes`: the largest batch accepted, in bytes.
    pub max_message_bytes: usize,
    /// `compression.type` for batches built by `append`/`append_batch`.
    pub compression: Compression,
    /// `flush.messages` / `flush.ms`, as one policy.
    pub flush_policy: FlushPolicy,
    /// `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
    /// When true (no replication), the high watermark follows the log end offset on every
    /// append. When false, the owner (a replication layer) moves it with
    /// [`crate::Partition::set_high_watermark`].
    pub auto_high_watermark: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            segment_index_bytes: 10 << 20,
            index_interval_bytes: 4096,
            max_message_bytes: 1_048_588,
            compression: Compression::None,
            flush_policy: FlushPolicy::Never,
            cleanup_policy: CleanupPolicy::Delete,
            auto_high_watermark: true,
        }
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty),* $(,)?) => {
        impl LogConfig {
            $(
                $(#[$doc])*
                #[must_use]
                pub fn $name(mut self, value: $ty) -> Self {
                    self.$name = value;
                    self
                }
            )*
        }
    };
}

setters! {
    /// Sets [`LogConfig::segment_bytes`].
    segment_bytes: u64,
    /// Sets [`LogConfig::segment_ms`].
    segment_ms: i64,
    /// Sets [`LogConfig::segment_index_bytes`].
    segment_index_bytes: usize,
    /// Sets [`LogConfig::index_interval_bytes`].
    index_interval_bytes: usize,
    /// Sets [`LogConfig::max_message_bytes`].
    max_message_bytes: usize,
    /// Sets [`LogConfig::compression`].
    compression: Compression,
    /// Sets [`LogConfig::flush_policy`].
    flush_policy: FlushPolicy,
    /// Sets [`LogConfig::cleanup_policy`].
    cleanup_policy: CleanupPolicy,
    /// Sets [`LogConfig::auto_high_watermark`].
    auto_high_watermark: bool,
}

/// Smallest segment that can hold one batch header.
const MIN_SEGMENT_BYTES: u64 = crate::record::BATCH_OVERHEAD as u64;
/// Segment files are addressed by 32-bit positions in the offset index.
const MAX_SEGMENT_BYTES: u64 = i32::MAX as u64;

impl LogConfig {
    /// Checks every value against its allowed range.
    pub fn validate(&self) -> Result<()> {
        let refuse = |name, reason: String| Err(Error::InvalidConfig { name, reason });
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&self.segment_bytes) {
            return refuse(
                "segment.bytes",
                format!(
                    "{} is outside [{MIN_SEGMENT_BYTES}, {MAX_SEGMENT_BYTES}]",
                    self.segment_bytes
                ),
            );
        }
        if self.segment_ms <= 0 {
            return refuse(
                "segment.ms",
                format!("{} must be positive", self.segment_ms),
            );
        }
        if self.segment_index_bytes < 24 {
            return refuse(
                "segment.index.bytes",
                format!(
                    "{} must be at least 24 (two time-index entries)",
                    self.segment_index_bytes
                ),
            );
        }
        if self.max_message_bytes < crate::record::BATCH_OVERHEAD {
            return refuse(
                "max.message.bytes",
                format!("{} is smaller than a batch header", self.max_message_bytes),
            );
        }
        match self.flush_policy {
            FlushPolicy::EveryMessages(0) => refuse("flush.messages", "must be at least 1".into()),
            FlushPolicy::Interval(d) if d.is_zero() => {
                refuse("flush.ms", "must be positive".into())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kafkas() {
        let c = LogConfig::default();
        assert_eq!(c.segment_bytes, 1_073_741_824);
        assert_eq!(c.segment_ms, 604_800_000);
        assert_eq!(c.segment_index_bytes, 10_485_760);
        assert_eq!(c.index_interval_bytes, 4096);
        assert_eq!(c.max_message_bytes, 1_048_588);
        assert_eq!(c.flush_policy, FlushPolicy::Never);
        c.validate().unwrap();
    }

    #[test]
    fn out_of_range_values_are_refused_with_their_kafka_name() {
        let err = LogConfig::default()
            .segment_bytes(10)
            .validate()
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidConfig {
                    name: "segment.bytes",
                    ..
                }
            ),
            "{err}"
        );
        let err = LogConfig::default()
            .flush_policy(FlushPolicy::EveryMessages(0))
            .validate()
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidConfig {
                    name: "flush.messages",
                    ..
                }
            ),
            "{err}"
        );
    }
}
