//! [`BrokerConfig`]: a broker's own settings, with Kafka's names and defaults where Kafka
//! has them (`broker.id`, `log.retention.check.interval.ms`).
//!
//! The storage and clock a broker runs on are not settings: they are passed to
//! [`crate::Broker::open_with_env`] as an [`crate::Env`], as for
//! [`crate::Partition::open_with_env`], so a config stays plain data that can be compared,
//! cloned and printed.

use crate::error::{Error, Result};
use crate::group::coordinator::CoordinatorConfig;
use crate::group::offsets::OffsetsConfig;
use crate::topic::TopicConfig;

/// Kafka's default `log.retention.check.interval.ms`: five minutes.
pub const DEFAULT_RETENTION_CHECK_INTERVAL_MS: u64 = 300_000;

/// A broker's settings. Every field has a builder setter of the same name.
///
/// ```
/// use streamlog::{BrokerConfig, TopicConfig};
/// let config = BrokerConfig::default()
///     .broker_id(3)
///     .log_retention_check_interval_ms(60_000)
///     .default_topic_config(TopicConfig::default().partitions(4))
///     .background_threads(false);
/// assert_eq!(config.broker_id, 3);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerConfig {
    /// `broker.id`: the broker's numeric id (S3), at least 0. It is stored in the data
    /// directory's `meta.properties`; opening the directory with another id is
    /// [`Error::BrokerIdMismatch`].
    pub broker_id: i32,
    /// `log.retention.check.interval.ms`: how often the background thread runs retention
    /// (and compaction) over every partition. At least 1. Measured in real time: the
    /// thread waits on the OS clock, while retention itself reads the broker's `Clock`.
    pub log_retention_check_interval_ms: u64,
    /// The config of topics created with [`crate::Broker::create_topic_with_defaults`].
    /// A topic's whole config is stored when it is created, so changing this later does
    /// not change existing topics.
    pub default_topic_config: TopicConfig,
    /// Whether the broker runs its background retention thread (default on). Tests turn it
    /// off and call [`crate::Broker::enforce_retention`] themselves.
    pub background_threads: bool,
    /// The consumer-group coordinator's settings (`group.*` in Kafka). Its
    /// `offsets_topic_partitions` is replaced by the actual partition count of
    /// `__consumer_offsets`.
    pub group_coordinator: CoordinatorConfig,
    /// `__consumer_offsets` settings (`offsets.*` in Kafka).
    pub offsets: OffsetsConfig,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            broker_id: 0,
            log_retention_check_interval_ms: DEFAULT_RETENTION_CHECK_INTERVAL_MS,
            default_topic_config: TopicConfig::default(),
            background_threads: true,
            group_coordinator: CoordinatorConfig::default(),
            offsets: OffsetsConfig::default(),
        }
    }
}

macro_rules! setters {
    ($($field:ident: $ty:ty),* $(,)?) => {
        impl BrokerConfig {
            $(
                #[doc = concat!("Sets [`BrokerConfig::", stringify!($field), "`].")]
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
    broker_id: i32,
    log_retention_check_interval_ms: u64,
    default_topic_config: TopicConfig,
    background_threads: bool,
    group_coordinator: CoordinatorConfig,
    offsets: OffsetsConfig,
}

impl BrokerConfig {
    /// Checks every value: [`Error::InvalidConfig`] names the setting out of range.
    pub fn validate(&self) -> Result<()> {
        if self.broker_id < 0 {
            return Err(Error::InvalidConfig {
                name: "broker.id",
                reason: format!("{} is negative", self.broker_id),
            });
        }
        if self.log_retention_check_interval_ms == 0 {
            return Err(Error::InvalidConfig {
                name: "log.retention.check.interval.ms",
                reason: "must be at least 1".into(),
            });
        }
        self.group_coordinator.validate()?;
        self.offsets.validate()?;
        self.default_topic_config.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kafkas() {
        let c = BrokerConfig::default();
        assert_eq!(c.broker_id, 0);
        assert_eq!(c.log_retention_check_interval_ms, 300_000);
        assert!(c.background_threads);
        assert_eq!(c.default_topic_config, TopicConfig::default());
        c.validate().unwrap();
    }

    #[test]
    fn out_of_range_values_name_the_setting() {
        let err = BrokerConfig::default()
            .broker_id(-1)
            .validate()
            .unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidConfig {
                name: "broker.id",
                ..
            }
        ));
        let err = BrokerConfig::default()
            .log_retention_check_interval_ms(0)
            .validate()
            .unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidConfig {
                name: "log.retention.check.interval.ms",
                ..
            }
        ));
        let bad_topic = TopicConfig::default().partitions(0);
        let err = BrokerConfig::default()
            .default_topic_config(bad_topic)
            .validate()
            .unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidConfig {
                name: "partitions",
                ..
            }
        ));
    }
}
