//! [`ConsumerConfig`] (Kafka's consumer settings, names and defaults), [`AutoOffsetReset`]
//! and the [`RebalanceListener`] callbacks.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::Consumer;
use crate::error::{Error, Result};
use crate::group::offsets::validate_group_id;
use crate::group::{RebalanceProtocol, assignor_by_name};

/// `auto.offset.reset`: where a consumer starts on a partition without a committed offset
/// (or whose position is no longer in the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AutoOffsetReset {
    /// The log start offset.
    Earliest,
    /// The high watermark: only records produced from now on (Kafka's default).
    #[default]
    Latest,
    /// No reset: [`Error::NoOffsetForPartition`].
    None,
}

/// Called by [`Consumer::poll`] around rebalances, on the polling thread, with the
/// consumer itself so that the application can commit (e.g. [`Consumer::commit`]) before
/// it loses partitions. Do not call `poll` from a callback.
pub trait RebalanceListener: Send {
    /// The consumer gives up `partitions`; commits of them still succeed here (with
    /// auto-commit on, their positions were just committed). Eager protocol: before every
    /// rebalance, with the whole assignment (possibly empty). Cooperative protocol
    /// (`cooperative-sticky`): after a rebalance, with only the partitions that move to
    /// another member, and only when there are some; also before a rejoin for the
    /// partitions of topics no longer subscribed. On [`Consumer::close`]: everything owned.
    fn on_partitions_revoked(&mut self, consumer: &Consumer, partitions: &[(String, u32)]);

    /// After a rebalance. Eager protocol: the consumer's whole new assignment. Cooperative
    /// protocol: only the partitions added to what it kept (called even when that is
    /// empty); [`Consumer::assignment`] has the whole assignment.
    fn on_partitions_assigned(&mut self, consumer: &Consumer, partitions: &[(String, u32)]);

    /// The consumer was already out of the group (it stopped polling for longer than
    /// `max.poll.interval.ms`, or its session expired): `partitions` may already belong to
    /// others and commits for them fail. By default nothing is done.
    fn on_partitions_lost(&mut self, consumer: &Consumer, partitions: &[(String, u32)]) {
        let _ = (consumer, partitions);
    }
}

/// A shared listener.
pub(crate) type SharedListener = Arc<Mutex<dyn RebalanceListener>>;

/// A consumer's settings, with Kafka's names and defaults.
///
/// ```
/// use std::time::Duration;
/// use streamlog::{AutoOffsetReset, ConsumerConfig};
/// let config = ConsumerConfig::new("billing")
///     .auto_offset_reset(AutoOffsetReset::Earliest)
///     .auto_commit_interval(Duration::from_secs(1));
/// assert_eq!(config.group_id.as_deref(), Some("billing"));
/// assert!(config.enable_auto_commit);
/// ```
#[derive(Clone)]
pub struct ConsumerConfig {
    /// `group.id`; `None` for a standalone consumer ([`ConsumerConfig::standalone`]),
    /// which can only [`Consumer::assign`] and cannot commit.
    pub group_id: Option<String>,
    /// `client.id` (member ids start with it).
    pub client_id: String,
    /// `auto.offset.reset` (`latest`).
    pub auto_offset_reset: AutoOffsetReset,
    /// `enable.auto.commit` (true): `poll` commits the positions every
    /// `auto_commit_interval`, and before a rebalance and on `close`.
    pub enable_auto_commit: bool,
    /// `auto.commit.interval.ms` (5 s).
    pub auto_commit_interval: Duration,
    /// `session.timeout.ms` (45 s).
    pub session_timeout: Duration,
    /// `heartbeat.interval.ms` (3 s).
    pub heartbeat_interval: Duration,
    /// `max.poll.interval.ms` (5 min): a consumer that does not poll for this long leaves
    /// the group and loses its partitions; also the rebalance timeout.
    pub max_poll_interval: Duration,
    /// `partition.assignment.strategy` (`range`): `range`, `roundrobin`, `sticky` or
    /// `cooperative-sticky`, or several separated by commas in order of preference (the
    /// group uses one that every member lists). When every listed assignor is cooperative
    /// (`cooperative-sticky`) the consumer uses Kafka's incremental cooperative rebalance
    /// protocol (KIP-429): it keeps its partitions and keeps reading them through a
    /// rebalance, and gives up only those that move, in a follow-up rebalance. Otherwise
    /// it uses the eager protocol: it gives up everything before each rebalance. A
    /// member listing `cooperative-sticky,range` can join a group of `range` members
    /// (the group then uses `range`, eagerly) and of `cooperative-sticky` members.
    pub assignor: String,
    /// `default.api.timeout.ms` (60 s): how long `commit` and `committed` keep looking
    /// for a group coordinator that moved (on a [`crate::Cluster`]) before they fail.
    pub default_api_timeout: Duration,
    listener: Option<SharedListener>,
}

impl fmt::Debug for ConsumerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerConfig")
            .field("group_id", &self.group_id)
            .field("client_id", &self.client_id)
            .field("auto_offset_reset", &self.auto_offset_reset)
            .field("enable_auto_commit", &self.enable_auto_commit)
            .field("auto_commit_interval", &self.auto_commit_interval)
            .field("session_timeout", &self.session_timeout)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("max_poll_interval", &self.max_poll_interval)
            .field("assignor", &self.assignor)
            .field("default_api_timeout", &self.default_api_timeout)
            .field("listener", &self.listener.is_some())
            .finish()
    }
}

impl ConsumerConfig {
    /// A consumer of group `group_id` with Kafka's defaults.
    pub fn new(group_id: impl Into<String>) -> Self {
        Self {
            group_id: Some(group_id.into()),
            ..Self::standalone()
        }
    }

    /// A consumer without a group: it reads the partitions it is given with
    /// [`Consumer::assign`] and cannot commit.
    pub fn standalone() -> Self {
        Self {
            group_id: None,
            client_id: "consumer".into(),
            auto_offset_reset: AutoOffsetReset::Latest,
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            session_timeout: Duration::from_secs(45),
            heartbeat_interval: Duration::from_secs(3),
            max_poll_interval: Duration::from_secs(300),
            assignor: "range".into(),
            default_api_timeout: Duration::from_secs(60),
            listener: None,
        }
    }

    /// Sets `auto.offset.reset`.
    #[must_use]
    pub fn auto_offset_reset(mut self, reset: AutoOffsetReset) -> Self {
        self.auto_offset_reset = reset;
        self
    }

    /// Sets `client.id`.
    #[must_use]
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = client_id.into();
        self
    }

    /// Sets `enable.auto.commit`.
    #[must_use]
    pub fn enable_auto_commit(mut self, enable: bool) -> Self {
        self.enable_auto_commit = enable;
        self
    }

    /// Sets `auto.commit.interval.ms`.
    #[must_use]
    pub fn auto_commit_interval(mut self, interval: Duration) -> Self {
        self.auto_commit_interval = interval;
        self
    }

    /// Sets `session.timeout.ms`.
    #[must_use]
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// Sets `heartbeat.interval.ms`.
    #[must_use]
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// Sets `default.api.timeout.ms`.
    #[must_use]
    pub fn default_api_timeout(mut self, timeout: Duration) -> Self {
        self.default_api_timeout = timeout;
        self
    }

    /// Sets `max.poll.interval.ms`.
    #[must_use]
    pub fn max_poll_interval(mut self, interval: Duration) -> Self {
        self.max_poll_interval = interval;
        self
    }

    /// Sets `partition.assignment.strategy`: one assignor name, or several separated by
    /// commas in order of preference (see [`ConsumerConfig::assignor`]).
    #[must_use]
    pub fn assignor(mut self, name: impl Into<String>) -> Self {
        self.assignor = name.into();
        self
    }

    /// Sets the rebalance callbacks.
    #[must_use]
    pub fn rebalance_listener(mut self, listener: impl RebalanceListener + 'static) -> Self {
        self.listener = Some(Arc::new(Mutex::new(listener)));
        self
    }

    pub(crate) fn listener(&self) -> Option<SharedListener> {
        self.listener.clone()
    }

    /// The assignor names of `partition.assignment.strategy`, in order of preference.
    pub(crate) fn assignor_names(&self) -> Vec<&str> {
        self.assignor.split(',').map(str::trim).collect()
    }

    /// The rebalance protocol this consumer follows: cooperative when every listed
    /// assignor is cooperative, else eager (Kafka's `ConsumerCoordinator` rule).
    pub(crate) fn rebalance_protocol(&self) -> RebalanceProtocol {
        let cooperative = self.assignor_names().iter().all(|name| {
            assignor_by_name(name)
                .is_some_and(|a| a.rebalance_protocol() == RebalanceProtocol::Cooperative)
        });
        if cooperative {
            RebalanceProtocol::Cooperative
        } else {
            RebalanceProtocol::Eager
        }
    }

    /// Checks every value: [`Error::InvalidGroupId`], or [`Error::InvalidConfig`] naming
    /// the setting.
    pub fn validate(&self) -> Result<()> {
        if let Some(group) = &self.group_id {
            validate_group_id(group)?;
        }
        let invalid = |name: &'static str, reason: &str| {
            Err(Error::InvalidConfig {
                name,
                reason: reason.to_owned(),
            })
        };
        let names = self.assignor_names();
        if names.iter().any(|name| assignor_by_name(name).is_none()) {
            return invalid("partition.assignment.strategy", "unknown assignor");
        }
        if (1..names.len()).any(|i| names[..i].contains(&names[i])) {
            return invalid("partition.assignment.strategy", "an assignor listed twice");
        }
        let ms = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
        if ms(self.session_timeout) < 1 || ms(self.max_poll_interval) < 1 {
            return invalid(
                "session.timeout.ms",
                "session and max poll intervals must be at least 1 ms",
            );
        }
        if self.heartbeat_interval >= self.session_timeout {
            return invalid(
                "heartbeat.interval.ms",
                "must be lower than session.timeout.ms",
            );
        }
        if self.auto_commit_interval.is_zero() && self.enable_auto_commit {
            return invalid("auto.commit.interval.ms", "must be at least 1 ms");
        }
        Ok(())
    }
}
