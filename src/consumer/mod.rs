//! [`Consumer`]: the application-facing consumer (issue 5; S8, S9, S16): subscribe to
//! topics as a member of a consumer group, or [`Consumer::assign`] partitions without one;
//! [`Consumer::poll`] records from each partition's leader up to its high watermark;
//! commit positions to `__consumer_offsets`; seek; positions, committed offsets and lag.
//!
//! Files: `config.rs` ([`ConsumerConfig`], [`AutoOffsetReset`], [`RebalanceListener`]),
//! `record.rs` ([`ConsumerRecord`]), `membership.rs` (join / sync / rebalance inside
//! `poll`), `fetch.rs` (positions and reads), `backend.rs` (a broker or a cluster). The
//! group coordinator runs in a group service (`group/service.rs`): the broker's, or on a
//! cluster the one of the broker leading the group's `__consumer_offsets` partition, found
//! again whenever it answers that it is not (or no longer) the coordinator.

pub(crate) mod backend;
mod config;
mod fetch;
mod membership;
mod record;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::broker::Broker;
use crate::clock::deadline_after;
use crate::error::{Error, Result};
use crate::group::RebalanceProtocol;
use crate::group::coordinator::{LeaveGroupRequest, OffsetCommit, OffsetCommitRequest, Response};
use crate::group::service::GroupService;

pub use config::{AutoOffsetReset, ConsumerConfig, RebalanceListener};
pub use record::ConsumerRecord;

use backend::{Backend, BrokerBackend, is_coordinator_error};
use config::SharedListener;

/// The group service coordinating the consumer's group, and the consumer's registration
/// with it (its id for the heartbeat duty).
#[derive(Debug, Clone)]
pub(crate) struct Coordinator {
    service: Arc<GroupService>,
    registration: u64,
}

/// Where a consumer is in its group's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Membership {
    Unjoined,
    /// A JoinGroup is waiting for its answer (token).
    Joining(u64),
    /// A SyncGroup is waiting for its answer (token).
    Syncing(u64),
    Stable,
}

/// How the consumer gets its partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    None,
    Subscribed,
    Assigned,
}

#[derive(Debug)]
struct Inner {
    mode: Mode,
    subscription: Vec<String>,
    /// The subscription the last JoinGroup was sent with: a Stable member whose
    /// subscription differs (it changed while Stable, or while that join was in flight)
    /// rejoins, as Kafka's `joinedSubscription`.
    joined_subscription: Vec<String>,
    /// Rejoin on the next poll: a cooperative rebalance revoked partitions (they are given
    /// out in a follow-up rebalance).
    rejoin_needed: bool,
    /// As the leader of the current generation: the partition counts its assignment was
    /// computed from (Kafka's `assignmentSnapshot`); it rejoins when they change.
    assignment_snapshot: Option<membership::PartitionCounts>,
    /// When (broker clock) the leader last compared its snapshot with the topics.
    metadata_checked_ms: i64,
    membership: Membership,
    member_id: String,
    generation: i32,
    assignment: Vec<(String, u32)>,
    /// The next offset to read per assigned partition; `None` until resolved from the
    /// committed offset or `auto.offset.reset`.
    positions: BTreeMap<(String, u32), Option<u64>>,
    /// Which assigned partition the next fetch starts with (fairness).
    next_partition: usize,
    last_auto_commit_ms: i64,
    closed: bool,
}

impl Inner {
    fn resolved_positions(&self, partitions: &[(String, u32)]) -> Vec<((String, u32), u64)> {
        partitions
            .iter()
            .filter_map(|tp| Some((tp.clone(), (*self.positions.get(tp)?)?)))
            .collect()
    }
}

/// A consumer: reads records of the partitions it is assigned, as a member of a consumer
/// group (its partitions come from the group's assignor and change with rebalances) or
/// standalone ([`Consumer::assign`]). Create it with [`Broker::consumer`]. It is `Send`:
/// use one per thread; many consumers in many threads of one process share the broker's
/// group coordinator. Joins, syncs, heartbeats, auto-commits and rebalance callbacks all
/// happen inside [`Consumer::poll`].
///
/// ```
/// use std::time::Duration;
/// use streamlog::{AutoOffsetReset, Broker, BrokerConfig, ConsumerConfig, Record, TopicConfig};
/// # fn main() -> streamlog::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let mut config = BrokerConfig::default();
/// config.group_coordinator.initial_rebalance_delay_ms = 0; // form the first generation at once
/// let broker = Broker::open(dir.path(), config)?;
/// let orders = broker.create_topic("orders", TopicConfig::default().partitions(2))?;
/// orders.append(Record::new(b"coffee".to_vec()).with_key(b"alice".to_vec()))?;
///
/// let consumer = broker.consumer(ConsumerConfig::new("billing")
///     .auto_offset_reset(AutoOffsetReset::Earliest))?;
/// consumer.subscribe(&["orders"])?;
/// let records = consumer.poll(500, Duration::from_secs(5))?;
/// assert_eq!(records[0].value(), Some(&b"coffee"[..]));
/// assert_eq!(consumer.assignment(), [("orders".to_string(), 0), ("orders".to_string(), 1)]);
/// consumer.commit()?;
/// let (topic, partition) = (records[0].topic(), records[0].partition());
/// assert_eq!(consumer.committed(topic, partition)?, Some(records[0].offset() + 1));
/// assert_eq!(consumer.lag(topic, partition)?, 0);
/// consumer.close()?; // leaves the group at once
/// # Ok(()) }
/// ```
pub struct Consumer {
    config: ConsumerConfig,
    /// The broker or cluster it reads from.
    backend: Arc<dyn Backend>,
    /// The group's coordinator; `None` for a consumer without a group id, or while a
    /// cluster has none to offer.
    coordinator: Mutex<Option<Coordinator>>,
    /// Eager or cooperative, from the configured assignors.
    protocol: RebalanceProtocol,
    listener: Option<SharedListener>,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("config", &self.config)
            .field("inner", &*self.inner.lock())
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// A consumer with `config` ([`ConsumerConfig::validate`] first: an empty or oversize
    /// group id is [`Error::InvalidGroupId`]). The first consumer with a group id opens the
    /// broker's group coordinator, which creates `__consumer_offsets` if needed and
    /// rebuilds every group from it.
    pub fn consumer(&self, config: ConsumerConfig) -> Result<Consumer> {
        config.validate()?;
        let service = match config.group_id {
            Some(_) => Some(self.group_service()?),
            None => None,
        };
        let backend = BrokerBackend {
            broker: self.handle(),
            service,
        };
        Consumer::with_backend(config, Arc::new(backend))
    }
}

impl Consumer {
    /// A consumer over `backend` (a broker or a cluster); `config` is validated first.
    pub(crate) fn with_backend(config: ConsumerConfig, backend: Arc<dyn Backend>) -> Result<Self> {
        config.validate()?;
        let service = match config.group_id.as_deref() {
            Some(group) => Some(backend.group_service(group)?),
            None => None,
        };
        let now = service.as_ref().map_or(0, |s| s.now_ms());
        let coordinator = service.map(|service| Coordinator {
            registration: service.token(),
            service,
        });
        Ok(Consumer {
            listener: config.listener(),
            backend,
            coordinator: Mutex::new(coordinator),
            protocol: config.rebalance_protocol(),
            inner: Mutex::new(Inner {
                mode: Mode::None,
                subscription: Vec::new(),
                joined_subscription: Vec::new(),
                rejoin_needed: false,
                assignment_snapshot: None,
                metadata_checked_ms: now,
                membership: Membership::Unjoined,
                member_id: String::new(),
                generation: -1,
                assignment: Vec::new(),
                positions: BTreeMap::new(),
                next_partition: 0,
                last_auto_commit_ms: now,
                closed: false,
            }),
            config,
        })
    }
}

impl Consumer {
    /// The settings.
    pub fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    /// The group's coordinator: the one known, else found afresh (`None` without a group
    /// id, or while none can be found).
    fn coordinator(&self) -> Option<Coordinator> {
        if let Some(known) = self.coordinator.lock().clone() {
            return Some(known);
        }
        self.find_coordinator()
    }

    /// Looks the group's coordinator up again (it said it is not the coordinator, or its
    /// broker stopped). When it moved, the consumer's heartbeat duty moves along with its
    /// member id and generation (the new coordinator loaded the group from
    /// `__consumer_offsets`), and a JoinGroup or SyncGroup still waiting at the old one is
    /// dropped: the next poll joins again. When no coordinator can be found, the known one
    /// is kept.
    fn find_coordinator(&self) -> Option<Coordinator> {
        let group = self.config.group_id.as_deref()?;
        let Ok(service) = self.backend.group_service(group) else {
            return self.coordinator.lock().clone();
        };
        let mut slot = self.coordinator.lock();
        if let Some(known) = &*slot
            && Arc::ptr_eq(&known.service, &service)
        {
            return Some(known.clone());
        }
        let found = Coordinator {
            registration: service.token(),
            service,
        };
        let old = slot.replace(found.clone());
        drop(slot);
        if let Some(old) = old {
            if let Some(mut live) = old.service.take_live(old.registration) {
                live.rejoin = live
                    .rejoin
                    .filter(|r| *r != crate::group::service::Rejoin::Coordinator);
                found.service.set_live(found.registration, Some(live));
            }
            let mut inner = self.inner.lock();
            if let Membership::Joining(t) | Membership::Syncing(t) = inner.membership {
                old.service.forget(t);
                inner.membership = Membership::Unjoined;
            }
        }
        Some(found)
    }

    fn group_id(&self) -> Result<&str> {
        self.config
            .group_id
            .as_deref()
            .ok_or_else(|| Error::IllegalConsumerState {
                reason: "the consumer has no group id".into(),
            })
    }

    fn check_open(inner: &Inner) -> Result<()> {
        if inner.closed {
            return Err(Error::IllegalConsumerState {
                reason: "the consumer is closed".into(),
            });
        }
        Ok(())
    }

    /// Subscribes to `topics` as a member of the group (replacing an earlier subscription;
    /// the group rebalances on the next poll, or once a join still in flight completes).
    /// Topics that do not exist yet are ignored by the assignment. Needs a group id; not
    /// after [`Consumer::assign`].
    pub fn subscribe(&self, topics: &[&str]) -> Result<()> {
        self.group_id()?;
        let mut inner = self.inner.lock();
        Self::check_open(&inner)?;
        if inner.mode == Mode::Assigned {
            return Err(Error::IllegalConsumerState {
                reason: "subscribe after assign".into(),
            });
        }
        let mut topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
        topics.sort();
        topics.dedup();
        inner.mode = Mode::Subscribed;
        inner.subscription = topics;
        Ok(())
    }

    /// Reads exactly these partitions, without group membership (a standalone consumer;
    /// with a group id, commits go to that group as a simple group). Every partition must
    /// exist ([`Error::UnknownTopic`], [`Error::UnknownPartition`]); not after
    /// [`Consumer::subscribe`].
    pub fn assign(&self, partitions: &[(&str, u32)]) -> Result<()> {
        for (topic, partition) in partitions {
            self.check_partition(topic, *partition)?;
        }
        let mut inner = self.inner.lock();
        Self::check_open(&inner)?;
        if inner.mode == Mode::Subscribed {
            return Err(Error::IllegalConsumerState {
                reason: "assign after subscribe".into(),
            });
        }
        let mut list: Vec<(String, u32)> = partitions
            .iter()
            .map(|(t, p)| ((*t).to_owned(), *p))
            .collect();
        list.sort();
        list.dedup();
        let old = std::mem::take(&mut inner.positions);
        inner.positions = list
            .iter()
            .map(|tp| (tp.clone(), old.get(tp).copied().flatten()))
            .collect();
        inner.assignment = list;
        inner.mode = Mode::Assigned;
        Ok(())
    }

    /// The generation of the group this consumer is a Stable member of, if it is one.
    pub fn generation(&self) -> Option<i32> {
        let inner = self.inner.lock();
        (inner.membership == Membership::Stable && inner.generation > 0).then_some(inner.generation)
    }

    /// The partitions currently assigned, sorted.
    pub fn assignment(&self) -> Vec<(String, u32)> {
        self.inner.lock().assignment.clone()
    }

    /// Up to `max_records` records from the assigned partitions, waiting up to `timeout`
    /// for some (an empty vector when none came; `Duration::MAX` waits as long as it
    /// takes). A subscribed consumer first runs its
    /// group's protocol (join, sync, heartbeat; rebalance callbacks run here, on this
    /// thread) and auto-commits when due. Every assigned partition's position is resolved
    /// before anything is read, and positions move past the records returned, only those:
    /// a poll that fails returns nothing and consumes nothing.
    /// Errors: [`Error::NoOffsetForPartition`] under `auto.offset.reset = none`,
    /// [`Error::Group`] for a group error the consumer cannot handle, storage errors.
    pub fn poll(&self, max_records: usize, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        let deadline = deadline_after(timeout);
        let mode = {
            let inner = self.inner.lock();
            Self::check_open(&inner)?;
            inner.mode
        };
        if mode == Mode::Subscribed {
            self.ensure_active(deadline)?;
        }
        self.maybe_auto_commit();
        loop {
            let records = self.fetch(max_records)?;
            if !records.is_empty() || Instant::now() >= deadline {
                return Ok(records);
            }
            match self.coordinator() {
                Some(c) => c.service.idle(deadline),
                None => std::thread::sleep(
                    deadline
                        .saturating_duration_since(Instant::now())
                        .min(crate::group::service::WAIT_STEP),
                ),
            }
            if mode == Mode::Subscribed {
                self.ensure_active(deadline)?;
            }
        }
    }

    /// Commits the positions of every assigned partition (synchronously). Needs a group id.
    /// A member whose generation ended gets [`Error::Group`] (Kafka's
    /// `CommitFailedException`); its next poll rejoins. A cooperative member keeps its
    /// partitions while it rejoins; between its JoinGroup and SyncGroup answers its commits
    /// get [`Error::Group`] with `RebalanceInProgress` (commit again after a later poll, or
    /// in `on_partitions_revoked`, where commits succeed). A partition whose topic was
    /// deleted does not stop the others: they are committed (Kafka answers a commit per
    /// partition), then its [`Error::UnknownTopic`] (or [`Error::UnknownPartition`]) is
    /// returned.
    pub fn commit(&self) -> Result<()> {
        let group = self.group_id()?.to_owned();
        let positions = {
            let inner = self.inner.lock();
            Self::check_open(&inner)?;
            inner.resolved_positions(&inner.assignment)
        };
        self.commit_positions(&group, &positions)
    }

    /// Commits these offsets (the next offset to read, per partition). Every partition must
    /// exist and every offset be at most the partition's log end offset
    /// ([`Error::UnknownTopic`], [`Error::UnknownPartition`], [`Error::OffsetOutOfRange`]);
    /// nothing is committed otherwise.
    pub fn commit_offsets(&self, offsets: &[(&str, u32, u64)]) -> Result<()> {
        let group = self.group_id()?.to_owned();
        Self::check_open(&self.inner.lock())?;
        let list: Vec<((String, u32), u64)> = offsets
            .iter()
            .map(|(t, p, o)| (((*t).to_owned(), *p), *o))
            .collect();
        self.send_commit(&group, &list)
    }

    /// Checks that `partition` of `topic` exists ([`Error::UnknownTopic`],
    /// [`Error::UnknownPartition`]).
    fn check_partition(&self, topic: &str, partition: u32) -> Result<()> {
        let partitions = self.backend.partition_count(topic)?;
        if partition >= partitions {
            return Err(Error::UnknownPartition {
                topic: topic.to_owned(),
                partition,
                partitions,
            });
        }
        Ok(())
    }

    /// Commits the consumer's own positions (an explicit commit, an auto-commit, one before
    /// a rebalance or a close): those of partitions that still exist, then the first
    /// `UnknownTopic` / `UnknownPartition` of one deleted meanwhile. (Offsets a caller
    /// names go through [`Consumer::commit_offsets`], all or nothing.)
    fn commit_positions(&self, group: &str, positions: &[((String, u32), u64)]) -> Result<()> {
        let mut gone = None;
        let live: Vec<((String, u32), u64)> = positions
            .iter()
            .filter(
                |((topic, partition), _)| match self.check_partition(topic, *partition) {
                    Err(e @ (Error::UnknownTopic { .. } | Error::UnknownPartition { .. })) => {
                        gone.get_or_insert(e);
                        false
                    }
                    _ => true,
                },
            )
            .cloned()
            .collect();
        if !live.is_empty() {
            self.send_commit(group, &live)?;
        }
        gone.map_or(Ok(()), Err)
    }

    /// Validates and sends an OffsetCommit (as a member when Stable, else as a simple
    /// group). A coordinator that moved is found again and the commit retried, for up to
    /// `default.api.timeout.ms`.
    fn send_commit(&self, group: &str, offsets: &[((String, u32), u64)]) -> Result<()> {
        let deadline = deadline_after(self.config.default_api_timeout);
        for ((topic, partition), offset) in offsets {
            self.check_partition(topic, *partition)?;
            let p = loop {
                match self.backend.partition(topic, *partition) {
                    Err(e)
                        if backend::is_moving(&e)
                            && Instant::now() < deadline
                            && !self.backend.is_shut_down() =>
                    {
                        std::thread::sleep(crate::group::service::WAIT_STEP);
                    }
                    other => break other?,
                }
            };
            let log_end = p.log_end_offset();
            if *offset > log_end {
                return Err(Error::OffsetOutOfRange {
                    requested: *offset,
                    log_start: p.log_start_offset(),
                    log_end,
                });
            }
        }
        if offsets.is_empty() {
            return Ok(());
        }
        self.group_id()?;
        let failed = |error| Error::Group {
            group: group.to_owned(),
            operation: "commit",
            error,
        };
        loop {
            let error = match self.try_commit(group, offsets) {
                Ok(()) => return Ok(()),
                Err(error) => error,
            };
            if !is_coordinator_error(error)
                || Instant::now() >= deadline
                || self.backend.is_shut_down()
            {
                return Err(failed(error));
            }
            std::thread::sleep(crate::group::service::WAIT_STEP);
            self.find_coordinator();
        }
    }

    /// One OffsetCommit to the current coordinator: the first partition's error, if any.
    fn try_commit(
        &self,
        group: &str,
        offsets: &[((String, u32), u64)],
    ) -> std::result::Result<(), crate::group::GroupError> {
        let Some(coordinator) = self.coordinator() else {
            return Err(crate::group::GroupError::CoordinatorNotAvailable);
        };
        let (member_id, generation) = {
            let inner = self.inner.lock();
            if inner.mode == Mode::Subscribed && inner.generation > 0 {
                (inner.member_id.clone(), inner.generation)
            } else {
                (String::new(), -1)
            }
        };
        let req = OffsetCommitRequest {
            group_id: group.to_owned(),
            member_id,
            generation,
            retention_ms: None,
            offsets: offsets
                .iter()
                .map(|(tp, offset)| {
                    let commit = OffsetCommit {
                        offset: *offset,
                        leader_epoch: None,
                        metadata: String::new(),
                    };
                    (tp.clone(), commit)
                })
                .collect(),
        };
        let response = coordinator
            .service
            .call(|c, now, to| c.commit_offsets(now, to, req));
        match response {
            Some(Response::Commit(r)) => match r.partitions.iter().find(|(_, r)| r.is_err()) {
                Some((_, Err(error))) => Err(*error),
                _ => Ok(()),
            },
            _ => Err(crate::group::GroupError::UnknownServerError),
        }
    }

    fn maybe_auto_commit(&self) {
        let Some(group) = self.config.group_id.as_deref() else {
            return;
        };
        if !self.config.enable_auto_commit {
            return;
        }
        let Some(coordinator) = self.coordinator() else {
            return;
        };
        let now = coordinator.service.now_ms();
        let interval =
            i64::try_from(self.config.auto_commit_interval.as_millis()).unwrap_or(i64::MAX);
        let positions = {
            let mut inner = self.inner.lock();
            if now.saturating_sub(inner.last_auto_commit_ms) < interval {
                return;
            }
            inner.last_auto_commit_ms = now;
            inner.resolved_positions(&inner.assignment)
        };
        // Kafka logs auto-commit failures and goes on; so do we.
        let _ = self.commit_positions(group, &positions);
    }

    /// The committed offset of a partition for this consumer's group (`None` if none).
    /// A coordinator that moved is found again, for up to `default.api.timeout.ms`.
    pub fn committed(&self, topic: &str, partition: u32) -> Result<Option<u64>> {
        let group = self.group_id()?;
        let deadline = deadline_after(self.config.default_api_timeout);
        let tp = [(topic.to_owned(), partition)];
        loop {
            let Some(coordinator) = self.coordinator() else {
                if Instant::now() >= deadline || self.backend.is_shut_down() {
                    return Err(Error::Group {
                        group: group.to_owned(),
                        operation: "fetch offsets",
                        error: crate::group::GroupError::CoordinatorNotAvailable,
                    });
                }
                std::thread::sleep(crate::group::service::WAIT_STEP);
                continue;
            };
            let fetched = coordinator
                .service
                .read_current(|c| c.fetch_offsets(group, Some(&tp)));
            match fetched {
                Ok(fetched) => {
                    return Ok(fetched
                        .into_iter()
                        .next()
                        .and_then(|(_, o)| o)
                        .map(|o| o.offset));
                }
                Err(error)
                    if is_coordinator_error(error)
                        && Instant::now() < deadline
                        && !self.backend.is_shut_down() =>
                {
                    std::thread::sleep(crate::group::service::WAIT_STEP);
                    self.find_coordinator();
                }
                Err(error) => {
                    return Err(Error::Group {
                        group: group.to_owned(),
                        operation: "fetch offsets",
                        error,
                    });
                }
            }
        }
    }

    /// Leaves the group at once (after an auto-commit and the revoked callback with every
    /// partition it owns), so the others rebalance without waiting for a timeout. Dropping
    /// a consumer does the same. The result is the auto-commit's: a cooperative member
    /// closed between its JoinGroup and SyncGroup answers gets [`Error::Group`]
    /// (`RebalanceInProgress`), as its commits do then.
    pub fn close(self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&self) -> Result<()> {
        let (revoked, positions, was_member, commits) = {
            let inner = self.inner.lock();
            if inner.closed {
                return Ok(());
            }
            // A cooperative member keeps its partitions while it rejoins; an eager one owns
            // nothing outside Stable.
            let was_member = inner.mode == Mode::Subscribed
                && (inner.membership == Membership::Stable || !inner.assignment.is_empty());
            let positions = inner.resolved_positions(&inner.assignment);
            let commits = was_member || inner.mode == Mode::Assigned;
            (inner.assignment.clone(), positions, was_member, commits)
        };
        let mut result = Ok(());
        if let Some(group) = self.config.group_id.as_deref()
            && self.config.enable_auto_commit
            && commits
        {
            result = self.commit_positions(group, &positions);
        }
        if was_member {
            self.fire_revoked(&revoked);
        }
        let coordinator = self.coordinator.lock().clone();
        let mut inner = self.inner.lock();
        inner.closed = true;
        if let (
            Some(Coordinator {
                service,
                registration,
            }),
            Some(group),
        ) = (coordinator, self.config.group_id.as_deref())
        {
            service.set_live(registration, None);
            if let Membership::Joining(t) | Membership::Syncing(t) = inner.membership {
                service.forget(t);
            }
            if !inner.member_id.is_empty() {
                let req = LeaveGroupRequest {
                    group_id: group.to_owned(),
                    member_ids: vec![inner.member_id.clone()],
                };
                let token = service.submit(|c, now, to| c.leave_group(now, to, req));
                service.forget(token);
            }
        }
        inner.assignment.clear();
        inner.positions.clear();
        inner.membership = Membership::Unjoined;
        result
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
