//! [`TopicConfig`]: a topic's settings — partition count, replication settings and the
//! [`LogConfig`] of its partitions — with Kafka's names and defaults, and their persisted
//! form, a Java-style properties text (`segment.bytes=1048576`, one setting a line).
//!
//! The properties code is one table ([`PROPERTIES`]) of Kafka name, writer and parser.
//! Two Kafka settings map onto one [`FlushPolicy`]: `flush.messages=n` is
//! `EveryMessages(n)`, `flush.ms=d` is `Interval(d ms)`, `flush.ms=0` is `Always`, and
//! `9223372036854775807` (Kafka's default, `Long.MAX_VALUE`) in both is `Never`. A text
//! setting both to other values is refused: the policy holds one.
//! `auto_high_watermark` is decided by the owner of the log, not stored.

use std::time::Duration;

use crate::config::{CleanupPolicy, FlushPolicy, LogConfig};
use crate::error::{Error, Result};
use crate::record::Compression;

/// A topic's settings. Every field has a builder setter of the same name, and so does every
/// [`LogConfig`] field (they apply to each partition's log).
///
/// ```
/// use streamlog::TopicConfig;
/// # fn main() -> streamlog::Result<()> {
/// let config = TopicConfig::default()
///     .partitions(6)
///     .segment_bytes(1 << 20)
///     .retention_bytes(8 << 20);
/// let text = config.to_properties();
/// assert!(text.contains("segment.bytes=1048576\n"));
/// assert_eq!(TopicConfig::from_properties(&text)?, config);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    /// `partitions`: how many partitions the topic has (at least 1).
    pub partitions: u32,
    /// `replication.factor`: copies of each partition (used by replication).
    pub replication_factor: u16,
    /// `min.insync.replicas`: in-sync copies an `acks=all` write needs (≤ the replication
    /// factor).
    pub min_insync_replicas: u16,
    /// `unclean.leader.election.enable`: whether an out-of-sync replica may become leader.
    pub unclean_leader_election_enable: bool,
    log: LogConfig,
}

impl Default for TopicConfig {
    fn default() -> Self {
        Self {
            partitions: 1,
            replication_factor: 1,
            min_insync_replicas: 1,
            unclean_leader_election_enable: false,
            log: LogConfig::default(),
        }
    }
}

macro_rules! setters {
    ($($field:ident: $ty:ty),* $(,)?) => {
        impl TopicConfig {
            $(
                #[doc = concat!("Sets [`TopicConfig::", stringify!($field), "`].")]
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
    partitions: u32,
    replication_factor: u16,
    min_insync_replicas: u16,
    unclean_leader_election_enable: bool,
}

macro_rules! log_setters {
    ($($field:ident: $ty:ty),* $(,)?) => {
        impl TopicConfig {
            $(
                #[doc = concat!("Sets [`LogConfig::", stringify!($field), "`].")]
                #[must_use]
                pub fn $field(mut self, value: $ty) -> Self {
                    self.log.$field = value;
                    self
                }
            )*
        }
    };
}

log_setters! {
    segment_bytes: u64,
    segment_ms: i64,
    segment_index_bytes: usize,
    index_interval_bytes: usize,
    max_message_bytes: usize,
    compression: Compression,
    flush_policy: FlushPolicy,
    cleanup_policy: CleanupPolicy,
    auto_high_watermark: bool,
    retention_ms: i64,
    retention_bytes: i64,
    delete_retention_ms: i64,
    file_delete_delay_ms: i64,
    min_cleanable_dirty_ratio: f64,
    min_compaction_lag_ms: i64,
    max_compaction_lag_ms: i64,
}

/// Why a text setting both `flush.messages` and `flush.ms` is refused: one
/// [`FlushPolicy`] holds one of them (Kafka flushes on whichever comes first), and
/// keeping only the last line read would drop the other without a word.
const ONE_FLUSH_SETTING: &str =
    "flush.messages and flush.ms are both set; streamlog's FlushPolicy takes one of them";

/// Kafka's "no limit" for `flush.messages` and `flush.ms` (`Long.MAX_VALUE`).
const FLUSH_NEVER: i64 = i64::MAX;

impl TopicConfig {
    /// The settings of each partition's log.
    pub fn log_config(&self) -> &LogConfig {
        &self.log
    }

    /// Replaces the whole log configuration.
    #[must_use]
    pub fn with_log_config(mut self, log: LogConfig) -> Self {
        self.log = log;
        self
    }

    /// Checks every value: at least one partition (at most `i32::MAX`, Kafka's partition
    /// ids are 32-bit), `1 ≤ min.insync.replicas ≤ replication.factor`, and the log settings.
    pub fn validate(&self) -> Result<()> {
        let refuse = |name, reason: String| Err(Error::InvalidConfig { name, reason });
        if self.partitions == 0 || self.partitions > i32::MAX as u32 {
            return refuse(
                "partitions",
                format!("{} is outside [1, {}]", self.partitions, i32::MAX),
            );
        }
        if self.replication_factor == 0 {
            return refuse("replication.factor", "must be at least 1".into());
        }
        if !(1..=self.replication_factor).contains(&self.min_insync_replicas) {
            return refuse(
                "min.insync.replicas",
                format!(
                    "{} is outside [1, replication.factor = {}]",
                    self.min_insync_replicas, self.replication_factor
                ),
            );
        }
        self.log.validate()
    }

    /// The settings as a properties text, one `name=value` line per setting, Kafka's names.
    /// [`TopicConfig::from_properties`] reads it back to an equal config.
    pub fn to_properties(&self) -> String {
        PROPERTIES
            .iter()
            .map(|p| format!("{}={}\n", p.name, (p.write)(self)))
            .collect()
    }

    /// Reads a properties text: `name=value` lines; blank lines and lines starting with `#`
    /// or `!` are skipped; a later line overrides an earlier one; settings not given keep
    /// their defaults. An unknown name, a malformed line or a bad value is
    /// [`Error::InvalidConfig`]; the result is validated as a whole.
    pub fn from_properties(text: &str) -> Result<TopicConfig> {
        let mut config = TopicConfig::default();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let Some((name, value)) = line.split_once('=') else {
                return Err(Error::InvalidConfig {
                    name: "properties",
                    reason: format!("line {line:?} is not `name=value`"),
                });
            };
            config.apply(name.trim(), value.trim())?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Sets one setting by its Kafka name, as `kafka-configs --alter --add-config` does.
    /// On error (unknown name, unparsable or out-of-range value) nothing changes.
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        let mut changed = self.clone();
        changed.apply(name, value.trim())?;
        changed.validate()?;
        *self = changed;
        Ok(())
    }

    /// Parses `value` into the setting `name`, without validating ranges.
    fn apply(&mut self, name: &str, value: &str) -> Result<()> {
        let Some(property) = PROPERTIES.iter().find(|p| p.name == name) else {
            return Err(Error::InvalidConfig {
                name: "topic config",
                reason: format!("unknown topic config {name:?}"),
            });
        };
        (property.read)(self, value).map_err(|reason| Error::InvalidConfig {
            name: property.name,
            reason: format!("{value:?}: {reason}"),
        })
    }
}

/// One persisted setting: its Kafka name, how to write it, how to read it back.
struct Property {
    name: &'static str,
    write: fn(&TopicConfig) -> String,
    read: fn(&mut TopicConfig, &str) -> Result<(), String>,
}

/// A setting stored in a field whose type has `Display` and `FromStr` that round-trip.
macro_rules! plain {
    ($name:literal, $($field:ident).+) => {
        Property {
            name: $name,
            write: |c| c.$($field).+.to_string(),
            read: |c, v| {
                c.$($field).+ = v.parse().map_err(|e| format!("{e}"))?;
                Ok(())
            },
        }
    };
}

/// Every persisted setting, in the order `to_properties` writes them.
static PROPERTIES: &[Property] = &[
    plain!("partitions", partitions),
    plain!("replication.factor", replication_factor),
    plain!("min.insync.replicas", min_insync_replicas),
    Property {
        name: "unclean.leader.election.enable",
        write: |c| c.unclean_leader_election_enable.to_string(),
        read: |c, v| {
            c.unclean_leader_election_enable = parse_bool(v)?;
            Ok(())
        },
    },
    Property {
        name: "cleanup.policy",
        write: |c| cleanup_policy_name(c.log.cleanup_policy).into(),
        read: |c, v| {
            c.log.cleanup_policy = parse_cleanup_policy(v)?;
            Ok(())
        },
    },
    Property {
        name: "compression.type",
        write: |c| compression_name(c.log.compression).into(),
        read: |c, v| {
            c.log.compression = parse_compression(v)?;
            Ok(())
        },
    },
    plain!("segment.bytes", log.segment_bytes),
    plain!("segment.ms", log.segment_ms),
    plain!("segment.index.bytes", log.segment_index_bytes),
    plain!("index.interval.bytes", log.index_interval_bytes),
    plain!("max.message.bytes", log.max_message_bytes),
    plain!("retention.ms", log.retention_ms),
    plain!("retention.bytes", log.retention_bytes),
    plain!("delete.retention.ms", log.delete_retention_ms),
    plain!("file.delete.delay.ms", log.file_delete_delay_ms),
    plain!("min.cleanable.dirty.ratio", log.min_cleanable_dirty_ratio),
    plain!("min.compaction.lag.ms", log.min_compaction_lag_ms),
    plain!("max.compaction.lag.ms", log.max_compaction_lag_ms),
    Property {
        name: "flush.messages",
        write: |c| match c.log.flush_policy {
            FlushPolicy::EveryMessages(n) => n.to_string(),
            _ => FLUSH_NEVER.to_string(),
        },
        read: |c, v| {
            let n: u64 = v.parse().map_err(|e| format!("{e}"))?;
            let policy = &mut c.log.flush_policy;
            if n == FLUSH_NEVER as u64 {
                if matches!(policy, FlushPolicy::EveryMessages(_)) {
                    *policy = FlushPolicy::Never;
                }
            } else if matches!(policy, FlushPolicy::Always | FlushPolicy::Interval(_)) {
                return Err(ONE_FLUSH_SETTING.into());
            } else {
                *policy = FlushPolicy::EveryMessages(n);
            }
            Ok(())
        },
    },
    Property {
        name: "flush.ms",
        write: |c| match c.log.flush_policy {
            FlushPolicy::Always => "0".into(),
            FlushPolicy::Interval(d) => d.as_millis().to_string(),
            _ => FLUSH_NEVER.to_string(),
        },
        read: |c, v| {
            let ms: u64 = v.parse().map_err(|e| format!("{e}"))?;
            let policy = c.log.flush_policy;
            if ms != FLUSH_NEVER as u64 && matches!(policy, FlushPolicy::EveryMessages(_)) {
                return Err(ONE_FLUSH_SETTING.into());
            }
            c.log.flush_policy = match ms {
                0 => FlushPolicy::Always,
                ms if ms == FLUSH_NEVER as u64 => match policy {
                    FlushPolicy::Always | FlushPolicy::Interval(_) => FlushPolicy::Never,
                    other => other,
                },
                ms => FlushPolicy::Interval(Duration::from_millis(ms)),
            };
            Ok(())
        },
    },
];

fn cleanup_policy_name(policy: CleanupPolicy) -> &'static str {
    match policy {
        CleanupPolicy::Delete => "delete",
        CleanupPolicy::Compact => "compact",
        CleanupPolicy::CompactAndDelete => "compact,delete",
    }
}

/// `delete`, `compact`, or both in either order, comma-separated.
fn parse_cleanup_policy(value: &str) -> Result<CleanupPolicy, String> {
    let (mut compact, mut delete) = (false, false);
    for part in value.split(',').map(str::trim) {
        match part {
            "compact" => compact = true,
            "delete" => delete = true,
            _ => return Err("expected `delete`, `compact` or `compact,delete`".into()),
        }
    }
    Ok(match (compact, delete) {
        (true, true) => CleanupPolicy::CompactAndDelete,
        (true, false) => CleanupPolicy::Compact,
        _ => CleanupPolicy::Delete,
    })
}

fn compression_name(compression: Compression) -> &'static str {
    match compression {
        Compression::None => "uncompressed",
        Compression::Gzip => "gzip",
        Compression::Snappy => "snappy",
        Compression::Lz4 => "lz4",
        Compression::Zstd => "zstd",
    }
}

/// Kafka's booleans: `true` or `false` in any case (`ConfigDef` uses `equalsIgnoreCase`).
fn parse_bool(value: &str) -> Result<bool, String> {
    if value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err("expected `true` or `false`".into())
    }
}

/// Kafka's codec names. `producer` (Kafka's default: keep the producer's codec) is read as
/// no compression for the batches streamlog builds; encoded batches are always kept as given.
/// `none` is a producer's name, not a topic's: Kafka refuses it here, and so does this.
fn parse_compression(value: &str) -> Result<Compression, String> {
    match value {
        "uncompressed" | "producer" => Ok(Compression::None),
        _ => Compression::ALL
            .into_iter()
            .find(|&c| compression_name(c) == value)
            .ok_or_else(|| {
                "expected `uncompressed`, `producer`, `gzip`, `snappy`, `lz4` or `zstd`".into()
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn defaults_are_kafkas() {
        let c = TopicConfig::default();
        assert_eq!(
            (c.partitions, c.replication_factor, c.min_insync_replicas),
            (1, 1, 1)
        );
        assert!(!c.unclean_leader_election_enable);
        assert_eq!(c.log_config(), &LogConfig::default());
        c.validate().unwrap();
    }

    #[test]
    fn properties_use_kafka_names() {
        let text = TopicConfig::default()
            .partitions(6)
            .segment_bytes(1 << 20)
            .cleanup_policy(CleanupPolicy::CompactAndDelete)
            .flush_policy(FlushPolicy::EveryMessages(10))
            .to_properties();
        for line in [
            "partitions=6",
            "segment.bytes=1048576",
            "retention.ms=604800000",
            "retention.bytes=1073741824",
            "cleanup.policy=compact,delete",
            "compression.type=uncompressed",
            "max.message.bytes=1048588",
            "min.insync.replicas=1",
            "replication.factor=1",
            "unclean.leader.election.enable=false",
            "min.cleanable.dirty.ratio=0.5",
            "max.compaction.lag.ms=9223372036854775807",
            "flush.messages=10",
            "flush.ms=9223372036854775807",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        assert_eq!(text.lines().count(), PROPERTIES.len());
    }

    #[test]
    fn flush_messages_and_flush_ms_together_are_refused_in_either_order() {
        for text in [
            "flush.messages=10\nflush.ms=1000\n",
            "flush.ms=1000\nflush.messages=10\n",
            "flush.ms=0\nflush.messages=10\n",
        ] {
            let err = TopicConfig::from_properties(text).unwrap_err();
            assert!(err.to_string().contains("flush.m"), "{text}: {err}");
        }
        // Kafka's "never" in the other one is no conflict (the persisted form has both).
        let one = TopicConfig::from_properties("flush.messages=10\nflush.ms=9223372036854775807\n");
        assert_eq!(
            one.unwrap().log.flush_policy,
            FlushPolicy::EveryMessages(10)
        );
    }

    #[test]
    fn unknown_names_and_bad_values_are_refused_naming_the_setting() {
        let err = TopicConfig::from_properties("retention.mss=5").unwrap_err();
        assert!(err.to_string().contains("retention.mss"), "{err}");
        let err = TopicConfig::from_properties("segment.bytes=big").unwrap_err();
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
        let err = TopicConfig::from_properties("cleanup.policy=forever").unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidConfig {
                    name: "cleanup.policy",
                    ..
                }
            ),
            "{err}"
        );
        let err = TopicConfig::from_properties("no equals sign").unwrap_err();
        assert!(err.to_string().contains("no equals sign"), "{err}");
    }

    #[test]
    fn set_changes_one_setting_or_nothing() {
        let mut c = TopicConfig::default();
        c.set("retention.ms", "1000").unwrap();
        c.set("cleanup.policy", "delete, compact").unwrap();
        c.set("compression.type", "zstd").unwrap();
        assert_eq!(c.log_config().retention_ms, 1000);
        assert_eq!(
            c.log_config().cleanup_policy,
            CleanupPolicy::CompactAndDelete
        );
        assert_eq!(c.log_config().compression, Compression::Zstd);
        let before = c.clone();
        let err = c.set("min.insync.replicas", "2").unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidConfig {
                name: "min.insync.replicas",
                ..
            }
        ));
        assert!(c.set("partitions", "0").is_err());
        assert!(c.set("segment.bytes", "-1").is_err());
        assert_eq!(c, before);
    }

    #[test]
    fn flush_settings_map_to_one_policy() {
        let read = |text: &str| {
            TopicConfig::from_properties(text)
                .unwrap()
                .log_config()
                .flush_policy
        };
        assert_eq!(read(""), FlushPolicy::Never);
        assert_eq!(read("flush.messages=1"), FlushPolicy::EveryMessages(1));
        assert_eq!(read("flush.ms=0"), FlushPolicy::Always);
        assert_eq!(
            read("flush.ms=250"),
            FlushPolicy::Interval(Duration::from_millis(250))
        );
        assert_eq!(
            read("flush.ms=250\nflush.ms=9223372036854775807"),
            FlushPolicy::Never
        );
        assert!(TopicConfig::from_properties("flush.messages=0").is_err());
    }

    #[test]
    fn comments_blank_lines_and_later_lines_win() {
        let c = TopicConfig::from_properties(
            "# written by streamlog\n\n! old style\n partitions = 3 \npartitions=4\n",
        )
        .unwrap();
        assert_eq!(c.partitions, 4);
    }

    fn flush_policy() -> impl Strategy<Value = FlushPolicy> {
        prop_oneof![
            Just(FlushPolicy::Never),
            Just(FlushPolicy::Always),
            (1u64..1_000_000).prop_map(FlushPolicy::EveryMessages),
            (1u64..1_000_000).prop_map(|ms| FlushPolicy::Interval(Duration::from_millis(ms))),
        ]
    }

    prop_compose! {
        fn topic_config()(
            partitions in 1u32..10_000,
            (replication_factor, min_insync_replicas) in (1u16..8).prop_flat_map(|rf| (Just(rf), 1..=rf)),
            unclean in any::<bool>(),
            segment_bytes in 100u64..i32::MAX as u64,
            segment_ms in 1i64..i64::MAX,
            segment_index_bytes in 24usize..1 << 30,
            index_interval_bytes in 0usize..1 << 20,
            max_message_bytes in 100usize..1 << 30,
            compression in proptest::sample::select(Compression::ALL.to_vec()),
            flush in flush_policy(),
            cleanup in proptest::sample::select(vec![CleanupPolicy::Delete, CleanupPolicy::Compact, CleanupPolicy::CompactAndDelete]),
            retention_ms in -1i64..i64::MAX,
            retention_bytes in -1i64..i64::MAX,
            delete_retention_ms in 0i64..i64::MAX,
            file_delete_delay_ms in 0i64..i64::MAX,
            ratio in 0.0f64..=1.0,
            (min_lag, max_lag) in (0i64..i64::MAX).prop_flat_map(|max| (0..=max, Just(max))),
        ) -> TopicConfig {
            TopicConfig::default()
                .partitions(partitions)
                .replication_factor(replication_factor)
                .min_insync_replicas(min_insync_replicas)
                .unclean_leader_election_enable(unclean)
                .segment_bytes(segment_bytes)
                .segment_ms(segment_ms)
                .segment_index_bytes(segment_index_bytes)
                .index_interval_bytes(index_interval_bytes)
                .max_message_bytes(max_message_bytes)
                .compression(compression)
                .flush_policy(flush)
                .cleanup_policy(cleanup)
                .retention_ms(retention_ms)
                .retention_bytes(retention_bytes)
                .delete_retention_ms(delete_retention_ms)
                .file_delete_delay_ms(file_delete_delay_ms)
                .min_cleanable_dirty_ratio(ratio)
                .min_compaction_lag_ms(min_lag)
                .max_compaction_lag_ms(max_lag)
        }
    }

    proptest! {
        #[test]
        fn properties_round_trip_exactly(config in topic_config()) {
            config.validate().unwrap();
            let text = config.to_properties();
            prop_assert_eq!(TopicConfig::from_properties(&text).unwrap(), config.clone());
            // Each line alone, through `set`, also lands on the same config.
            let mut by_set = TopicConfig::default();
            for line in text.lines() {
                let (name, value) = line.split_once('=').unwrap();
                by_set.set(name, value).unwrap();
            }
            prop_assert_eq!(by_set, config);
        }
    }
}
