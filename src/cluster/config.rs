//! [`ClusterConfig`] and [`ProducerConfig`]: the settings of an in-process cluster and of
//! its producers, with Kafka's names and defaults where Kafka has them.

use std::path::PathBuf;

use crate::group::coordinator::CoordinatorConfig;
use crate::group::offsets::OffsetsConfig;
use crate::record::Compression;
use crate::replication::{Acks, ReplicaConfig};

/// The settings of a [`Cluster`](super::Cluster).
///
/// ```
/// use streamlog::ClusterConfig;
/// let config = ClusterConfig::in_memory(3).data_dir("cluster-data").lease_ms(500);
/// assert_eq!(config.brokers, 3);
/// ```
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// How many brokers (ids `0..brokers`).
    pub brokers: u32,
    /// Broker `n` keeps its partitions under `<data_dir>/broker-<n>`.
    pub data_dir: PathBuf,
    /// A broker that has not renewed its lease for this long is gone
    /// (`broker.session.timeout.ms`, 9 s in Kafka; 1.5 s here, in one process); at
    /// least 3.
    pub lease_ms: u64,
    /// How long a broker thread waits for a message before doing its periodic work
    /// (renewing its lease, ISR checks, controller duties): 1 to `lease_ms / 3`
    /// ([`crate::Error::InvalidConfig`] otherwise), since a broker renews its lease only
    /// between waits and a stopping broker first finishes its wait.
    pub tick_ms: u64,
    /// How long a leader holds a follower's fetch that finds nothing new
    /// (`replica.fetch.wait.max.ms`, 500 ms).
    pub replica_fetch_wait_max_ms: u64,
    /// Hand leadership back to the preferred replica once it is in sync again
    /// (`auto.leader.rebalance.enable`).
    pub auto_leader_rebalance: bool,
    /// How often the controller looks for partitions led by a non-preferred replica
    /// (`leader.imbalance.check.interval.seconds`, 300 s in Kafka; 5 s here).
    pub leader_imbalance_check_interval_ms: u64,
    /// The replicas' settings (fetch sizes, timeouts, `replica.lag.time.max.ms`).
    pub replica: ReplicaConfig,
    /// How often each broker applies retention and compaction to the logs it hosts
    /// (`log.retention.check.interval.ms`, 5 minutes).
    pub log_retention_check_interval_ms: u64,
    /// `__consumer_offsets` (created by the cluster on the first consumer with a group
    /// id; `num_partitions`, 50 by default, may be set smaller), replicated to
    /// `min(3, live brokers)` brokers with `min.insync.replicas = min(2, replicas)`.
    pub offsets: OffsetsConfig,
    /// The group coordinators' settings (every broker runs one for the
    /// `__consumer_offsets` partitions it leads).
    pub group_coordinator: CoordinatorConfig,
}

impl ClusterConfig {
    /// `brokers` brokers in this process over the in-memory transport and consensus
    /// store, keeping their data under `./streamlog-cluster` until
    /// [`ClusterConfig::data_dir`] says otherwise.
    pub fn in_memory(brokers: u32) -> Self {
        Self {
            brokers,
            data_dir: PathBuf::from("streamlog-cluster"),
            lease_ms: 1_500,
            tick_ms: 10,
            replica_fetch_wait_max_ms: 500,
            auto_leader_rebalance: true,
            leader_imbalance_check_interval_ms: 5_000,
            replica: ReplicaConfig::default(),
            log_retention_check_interval_ms: 300_000,
            offsets: OffsetsConfig::default(),
            group_coordinator: CoordinatorConfig::default(),
        }
    }

    /// Sets the `__consumer_offsets` settings.
    pub fn offsets(mut self, offsets: OffsetsConfig) -> Self {
        self.offsets = offsets;
        self
    }

    /// Sets the group coordinators' settings.
    pub fn group_coordinator(mut self, config: CoordinatorConfig) -> Self {
        self.group_coordinator = config;
        self
    }

    /// Keeps the brokers' data under `dir`.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = dir.into();
        self
    }

    /// Sets the broker lease (ms).
    pub fn lease_ms(mut self, ms: u64) -> Self {
        self.lease_ms = ms;
        self
    }

    /// Sets `replica.lag.time.max.ms`.
    pub fn replica_lag_time_max_ms(mut self, ms: i64) -> Self {
        self.replica.leader.replica_lag_time_max_ms = ms;
        self
    }

    /// Sets `log.retention.check.interval.ms`.
    pub fn log_retention_check_interval_ms(mut self, ms: u64) -> Self {
        self.log_retention_check_interval_ms = ms;
        self
    }

    /// Turns preferred-leader rebalancing on or off.
    pub fn auto_leader_rebalance(mut self, on: bool) -> Self {
        self.auto_leader_rebalance = on;
        self
    }

    /// Sets how often the controller rebalances leadership (ms).
    pub fn leader_imbalance_check_interval_ms(mut self, ms: u64) -> Self {
        self.leader_imbalance_check_interval_ms = ms;
        self
    }
}

/// The settings of a [`Producer`](super::Producer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerConfig {
    /// `acks` (S13): `All` by default, as in Kafka 3+.
    pub acks: Acks,
    /// How many times a retriable failure (no leader, not the leader, not enough
    /// replicas, timeout) is retried after the first attempt (`retries`).
    pub retries: u32,
    /// The pause before a retry (`retry.backoff.ms`, 100 ms).
    pub retry_backoff_ms: u64,
    /// How long the leader may wait for `acks=all` replication (`request.timeout.ms`,
    /// 30 s).
    pub request_timeout_ms: u32,
    /// The codec batches are written with (`compression.type`).
    pub compression: Compression,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            acks: Acks::All,
            retries: 50,
            retry_backoff_ms: 100,
            request_timeout_ms: 30_000,
            compression: Compression::None,
        }
    }
}

impl ProducerConfig {
    /// Sets `acks`.
    pub fn acks(mut self, acks: Acks) -> Self {
        self.acks = acks;
        self
    }

    /// Sets `retries`.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Sets `retry.backoff.ms`.
    pub fn retry_backoff_ms(mut self, ms: u64) -> Self {
        self.retry_backoff_ms = ms;
        self
    }

    /// Sets `request.timeout.ms`.
    pub fn request_timeout_ms(mut self, ms: u32) -> Self {
        self.request_timeout_ms = ms;
        self
    }

    /// Sets `compression.type`.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }
}
