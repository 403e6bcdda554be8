//! Log configuration: [`LogConfig`] (Kafka's topic-level storage settings, with Kafka's
//! names and defaults, except `retention.bytes`: 1 GiB here, where Kafka has no size
//! limit) and [`FlushPolicy`] (when appended bytes are fsynced).

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
    /// Whether a log under this policy can come to hold offset gaps (only compaction makes
    /// them). A log that never could checks that every batch starts where the previous one
    /// ended, which catches damage to the base-offset field that the batch CRC does not
    /// cover. A log keeps its gaps when its policy changes to `delete`: it remembers that
    /// it compacted once, and keeps accepting them.
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
    /// `segment.bytes`: a segment rolls when the next batch would pass this size
    /// (61 to `i32::MAX`).
    pub segment_bytes: u64,
    /// `segment.ms`: a segment rolls when its records span more than this (ms).
    pub segment_ms: i64,
    /// `segment.index.bytes`: preallocated size of each index file (24 to `i32::MAX`).
    pub segment_index_bytes: usize,
    /// `index.interval.bytes`: one offset-index entry per this many bytes of log (at most
    /// `i32::MAX`).
    pub index_interval_bytes: usize,
    /// `max.message.bytes`: the largest batch an append accepts, in bytes (61 to
    /// `i32::MAX`). Lowering it leaves larger batches already stored readable.
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
    /// `retention.ms`: a segment whose newest record is older than this is deleted
    /// (`-1`: no time limit).
    pub retention_ms: i64,
    /// `retention.bytes`: oldest segments are deleted while the log is larger than this
    /// by at least a whole segment (`-1`, or any negative value: no size limit). 1 GiB
    /// by default, unlike Kafka's -1: an embedded log should not fill the disk unasked.
    pub retention_bytes: i64,
    /// `delete.retention.ms`: how long compaction keeps a tombstone after first seeing it.
    pub delete_retention_ms: i64,
    /// `file.delete.delay.ms`: how long a segment renamed `.deleted` stays on disk (readers
    /// that already hold it keep working meanwhile).
    pub file_delete_delay_ms: i64,
    /// `min.cleanable.dirty.ratio`: compaction runs when the uncompacted share of the log
    /// is above this (as Kafka: strictly above).
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: a record stays uncompacted at least this long.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a record is compacted at most this long after it is written,
    /// whatever the dirty ratio. A compacting log's active segment also rolls once its
    /// records span more than this (when shorter than `segment.ms` and not 0), since the
    /// active segment is never cleaned (Kafka's `maxSegmentMs`).
    pub max_compaction_lag_ms: i64,
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
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: 1 << 30,
            delete_retention_ms: 24 * 60 * 60 * 1000,
            file_delete_delay_ms: 60_000,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
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
    /// Sets [`LogConfig::retention_ms`].
    retention_ms: i64,
    /// Sets [`LogConfig::retention_bytes`].
    retention_bytes: i64,
    /// Sets [`LogConfig::delete_retention_ms`].
    delete_retention_ms: i64,
    /// Sets [`LogConfig::file_delete_delay_ms`].
    file_delete_delay_ms: i64,
    /// Sets [`LogConfig::min_cleanable_dirty_ratio`].
    min_cleanable_dirty_ratio: f64,
    /// Sets [`LogConfig::min_compaction_lag_ms`].
    min_compaction_lag_ms: i64,
    /// Sets [`LogConfig::max_compaction_lag_ms`].
    max_compaction_lag_ms: i64,
}

/// Smallest segment that can hold one batch header.
const MIN_SEGMENT_BYTES: u64 = crate::record::BATCH_OVERHEAD as u64;
/// Segment files are addressed by 32-bit positions in the offset index.
const MAX_SEGMENT_BYTES: u64 = i32::MAX as u64;
/// Smallest index file: two time-index entries.
const MIN_INDEX_BYTES: usize = 24;
/// Largest value of the size settings Kafka types as `int` (`segment.index.bytes`,
/// `index.interval.bytes`, `max.message.bytes`; `segment.bytes` has its own bound, the same).
const MAX_INT_SETTING: usize = i32::MAX as usize;

impl LogConfig {
    /// Checks every value against its allowed range: Kafka's, where Kafka has one (the size
    /// settings Kafka stores as an `int` are at most `i32::MAX`).
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
        for (name, value, min, min_means) in [
            (
                "segment.index.bytes",
                self.segment_index_bytes,
                MIN_INDEX_BYTES,
                " (two time-index entries)",
            ),
            ("index.interval.bytes", self.index_interval_bytes, 0, ""),
            (
                "max.message.bytes",
                self.max_message_bytes,
                crate::record::BATCH_OVERHEAD,
                " (a batch header)",
            ),
        ] {
            if !(min..=MAX_INT_SETTING).contains(&value) {
                return refuse(
                    name,
                    format!(
                        "{value} is outside [{min}{min_means}, {MAX_INT_SETTING}] (an int in Kafka)"
                    ),
                );
            }
        }
        if self.retention_ms < -1 {
            return refuse(
                "retention.ms",
                format!("{} must be -1 (unlimited) or at least 0", self.retention_ms),
            );
        }
        // Any negative `retention.bytes` means no size limit: Kafka defines it without a
        // validator.
        for (name, value) in [
            ("delete.retention.ms", self.delete_retention_ms),
            ("file.delete.delay.ms", self.file_delete_delay_ms),
            ("min.compaction.lag.ms", self.min_compaction_lag_ms),
        ] {
            if value < 0 {
                return refuse(name, format!("{value} must not be negative"));
            }
        }
        if self.max_compaction_lag_ms < 1 {
            return refuse(
                "max.compaction.lag.ms",
                format!("{} must be at least 1", self.max_compaction_lag_ms),
            );
        }
        if self.min_compaction_lag_ms > self.max_compaction_lag_ms {
            return refuse(
                "min.compaction.lag.ms",
                format!(
                    "{} is larger than max.compaction.lag.ms {}",
                    self.min_compaction_lag_ms, self.max_compaction_lag_ms
                ),
            );
        }
        if !(0.0..=1.0).contains(&self.min_cleanable_dirty_ratio) {
            return refuse(
                "min.cleanable.dirty.ratio",
                format!("{} is outside [0, 1]", self.min_cleanable_dirty_ratio),
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
        assert_eq!(c.retention_ms, 604_800_000);
        assert_eq!(
            c.retention_bytes, 1_073_741_824,
            "the seed's 1 GiB, not Kafka's -1"
        );
        assert_eq!(c.delete_retention_ms, 86_400_000);
        assert_eq!(c.file_delete_delay_ms, 60_000);
        assert_eq!(c.min_cleanable_dirty_ratio, 0.5);
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

    #[test]
    fn int_sized_settings_stop_at_i32_max_as_in_kafka() {
        let max = i32::MAX as usize;
        let at_max = LogConfig::default()
            .segment_bytes(max as u64)
            .segment_index_bytes(max)
            .index_interval_bytes(max)
            .max_message_bytes(max);
        at_max.validate().unwrap();
        let over: [(&str, LogConfig); 4] = [
            (
                "segment.bytes",
                at_max.clone().segment_bytes(max as u64 + 1),
            ),
            (
                "segment.index.bytes",
                at_max.clone().segment_index_bytes(max + 1),
            ),
            (
                "index.interval.bytes",
                at_max.clone().index_interval_bytes(max + 1),
            ),
            (
                "max.message.bytes",
                at_max.clone().max_message_bytes(usize::MAX),
            ),
        ];
        for (setting, config) in over {
            let err = config.validate().unwrap_err();
            assert!(
                matches!(&err, Error::InvalidConfig { name, reason }
                    if *name == setting && reason.contains("2147483647")),
                "{setting}: {err}"
            );
        }
    }

    #[test]
    fn compaction_lags_and_dirty_ratio_are_checked() {
        let err = LogConfig::default()
            .min_compaction_lag_ms(10)
            .max_compaction_lag_ms(5)
            .validate()
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidConfig {
                    name: "min.compaction.lag.ms",
                    ..
                }
            ),
            "{err}"
        );
        let err = LogConfig::default()
            .min_cleanable_dirty_ratio(1.5)
            .validate()
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidConfig {
                    name: "min.cleanable.dirty.ratio",
                    ..
                }
            ),
            "{err}"
        );
        LogConfig::default()
            .retention_ms(-1)
            .retention_bytes(-1)
            .validate()
            .unwrap();
    }
}
