//! [`CoordinatorConfig`]: the broker settings the group coordinator obeys, with Kafka's
//! names and defaults.

use crate::error::{Error, Result};

/// Settings of a [`super::GroupCoordinator`].
///
/// ```
/// let config = streamlog::group::coordinator::CoordinatorConfig::default();
/// assert_eq!(config.initial_rebalance_delay_ms, 3_000);
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorConfig {
    /// `group.min.session.timeout.ms` (6000): the smallest session timeout a member may ask.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms` (1800000): the largest session timeout a member may ask.
    pub max_session_timeout_ms: i32,
    /// `group.max.size` (unlimited): members beyond it get `GroupMaxSizeReached`.
    pub group_max_size: usize,
    /// `group.initial.rebalance.delay.ms` (3000): how long the first rebalance of an empty
    /// group waits for more members; each new joiner extends it, up to the rebalance timeout.
    pub initial_rebalance_delay_ms: i64,
    /// How long a brand-new member may wait in a rebalance before it is dropped (Kafka's fixed
    /// 5 minutes).
    pub new_member_join_timeout_ms: i64,
    /// `offset.metadata.max.bytes` (4096): the longest metadata string of a commit.
    pub offset_metadata_max_bytes: usize,
    /// `offsets.topic.num.partitions` (50): a group lives on partition
    /// `abs(javaStringHashCode(group_id)) % offsets_topic_partitions` of `__consumer_offsets`.
    pub offsets_topic_partitions: u32,
    /// Seed of the member-id suffixes, so runs are reproducible.
    pub member_id_seed: u64,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            group_max_size: usize::MAX,
            initial_rebalance_delay_ms: 3_000,
            new_member_join_timeout_ms: 300_000,
            offset_metadata_max_bytes: 4_096,
            offsets_topic_partitions: 50,
            member_id_seed: 0,
        }
    }
}

impl CoordinatorConfig {
    /// The same settings for coordinator instance `instance`: its member ids are drawn
    /// from `member_id_seed` mixed with `instance`. Every coordinator that may serve the
    /// same groups (each broker of a cluster, each restart) needs its own instance, or a
    /// new leader of a `__consumer_offsets` partition hands out the member ids its
    /// predecessor gave to members that are still there: two consumers would then share
    /// one id, and its assignment.
    ///
    /// ```
    /// use streamlog::group::coordinator::CoordinatorConfig;
    /// let a = CoordinatorConfig::default().instance(1);
    /// assert_ne!(a.member_id_seed, CoordinatorConfig::default().instance(2).member_id_seed);
    /// assert_eq!(a, CoordinatorConfig::default().instance(1));
    /// ```
    pub fn instance(mut self, instance: u64) -> Self {
        let mut z = instance.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        self.member_id_seed ^= z ^ (z >> 31);
        self
    }

    /// Refuses settings the coordinator cannot work with, as [`Error::InvalidConfig`].
    pub fn validate(&self) -> Result<()> {
        let invalid = |name, reason: &str| {
            Err(Error::InvalidConfig {
                name,
                reason: reason.to_string(),
            })
        };
        if self.min_session_timeout_ms < 0
            || self.min_session_timeout_ms > self.max_session_timeout_ms
        {
            return invalid(
                "group.min.session.timeout.ms",
                "must be at least 0 and at most group.max.session.timeout.ms",
            );
        }
        if self.group_max_size == 0 {
            return invalid("group.max.size", "must be at least 1");
        }
        if self.initial_rebalance_delay_ms < 0 || self.new_member_join_timeout_ms < 0 {
            return invalid("group.initial.rebalance.delay.ms", "must not be negative");
        }
        if self.offsets_topic_partitions == 0 {
            return invalid("offsets.topic.num.partitions", "must be at least 1");
        }
        Ok(())
    }
}
