//! The group side of a [`Consumer`]: joining, the leader's assignment, syncing, reacting to
//! rebalances (auto-commit, revoked / lost / assigned callbacks) — all driven from `poll`.
//!
//! Two rebalance protocols, as Kafka's `ConsumerCoordinator` runs them:
//! - eager: before rejoining, the member auto-commits, calls `on_partitions_revoked` with
//!   everything and gives it all up; after SyncGroup it calls `on_partitions_assigned` with
//!   the new assignment, whose positions are resolved afresh.
//! - cooperative (KIP-429; every configured assignor cooperative): the member rejoins
//!   keeping its partitions (it auto-commits, and gives up only those of topics it no
//!   longer subscribes to) and sends them with its generation in its subscription; the
//!   cooperative-sticky leader never hands a partition to a new owner in the rebalance
//!   that takes it from the old one. After SyncGroup: `revoked = owned − assigned` is
//!   committed (auto-commit), passed to `on_partitions_revoked` if not empty and dropped;
//!   `added = assigned − owned` goes to `on_partitions_assigned` (even when empty); kept
//!   partitions keep their positions; and if anything was revoked the member rejoins at
//!   once so the follow-up rebalance gives those partitions out.
//!
//! Either way a member that is out of the group (session expired, fenced, late for
//! `max.poll.interval.ms`) calls `on_partitions_lost` and joins afresh, and a Stable member
//! whose subscription is not the one its last JoinGroup carried (it changed while Stable,
//! or while that join was in flight) rejoins. So does a leader that finds the partition
//! counts of the group's topics changed since its assignment (partitions added, a topic
//! created or deleted), so that new partitions get an owner.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use super::{Consumer, Membership};
use crate::error::{Error, Result};
use crate::group::assignor::assignor_by_name;
use crate::group::assignor::protocol::{Assignment, Subscription};
use crate::group::coordinator::{
    GroupProtocol, JoinGroupRequest, JoinGroupResponse, Response, SyncGroupRequest,
};
use crate::group::service::{Liveness, Rejoin};
use crate::group::{GroupError, RebalanceProtocol};

/// The protocol type of consumer groups.
const CONSUMER: &str = "consumer";

/// What to do after one step of the join loop.
enum Step {
    /// Call the listener, then go on.
    Callback(Callback, Vec<(String, u32)>),
    /// Go on at once.
    Continue,
    /// Stop for this poll (Stable, or waiting past the deadline).
    Done,
    /// The coordinator moved: find it again, then go on.
    FindCoordinator,
}

#[derive(Clone, Copy)]
enum Callback {
    Revoked,
    Lost,
    Assigned,
}

/// The partition count of each topic of a group's subscription, `None` for a topic that
/// does not exist.
pub(super) type PartitionCounts = BTreeMap<String, Option<u32>>;

/// How often (broker clock) a leader compares the partition counts its assignment was
/// computed from with the current ones. Kafka's leader sees a change with its next metadata
/// refresh (`metadata.max.age.ms`, 5 minutes); here a look-up is cheap.
const METADATA_CHECK_INTERVAL_MS: i64 = 100;

fn ms(d: std::time::Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

impl Consumer {
    /// Runs the group protocol until the consumer is Stable in its group or `deadline`
    /// passes. Only for a subscribed consumer.
    pub(super) fn ensure_active(&self, deadline: Instant) -> Result<()> {
        loop {
            match self.join_step(deadline)? {
                Step::Done => return Ok(()),
                Step::Continue => {}
                Step::FindCoordinator => {
                    self.find_coordinator();
                }
                Step::Callback(which, partitions) => self.fire(which, &partitions),
            }
        }
    }

    /// Calls the listener (the consumer's lock is not held).
    pub(super) fn fire_revoked(&self, partitions: &[(String, u32)]) {
        self.fire(Callback::Revoked, partitions);
    }

    fn fire(&self, which: Callback, partitions: &[(String, u32)]) {
        let Some(listener) = &self.listener else {
            return;
        };
        let mut listener = listener.lock();
        match which {
            Callback::Revoked => listener.on_partitions_revoked(self, partitions),
            Callback::Lost => listener.on_partitions_lost(self, partitions),
            Callback::Assigned => listener.on_partitions_assigned(self, partitions),
        }
    }

    fn join_step(&self, deadline: Instant) -> Result<Step> {
        let Some(coordinator) = self.coordinator() else {
            if self.config.group_id.is_some() && Instant::now() < deadline {
                // No coordinator yet (a cluster electing one): wait a little, look again.
                std::thread::sleep(crate::group::service::WAIT_STEP);
                return Ok(Step::FindCoordinator);
            }
            return Ok(Step::Done);
        };
        let (service, registration) = (&coordinator.service, coordinator.registration);
        let group = self.group_id()?.to_owned();
        let rejoin = service.polled(registration);
        if rejoin == Some(Rejoin::Coordinator) {
            // The coordinator moved: a Stable member keeps its partitions and goes on at the
            // new one (found now, or on a later poll while none is ready).
            let found = self.find_coordinator();
            if found.is_some_and(|c| !Arc::ptr_eq(&c.service, service)) {
                return Ok(Step::Continue);
            }
            // Not ready yet: keep fetching this poll, ask again on the next.
            service.clear_rejoin(registration, Rejoin::Coordinator);
            return Ok(Step::Done);
        }
        let mut inner = self.inner.lock();
        let membership = inner.membership;
        let resubscribed = inner.joined_subscription != inner.subscription;
        let repartitioned =
            membership == Membership::Stable && self.metadata_changed(&mut inner, service.now_ms());
        let rebalance = inner.rejoin_needed || resubscribed || repartitioned;
        let reason = rejoin.or(rebalance.then_some(Rejoin::Rebalance));
        if let (Membership::Stable, Some(reason)) = (membership, reason) {
            inner.rejoin_needed = false;
            service.set_live(registration, None);
            if reason == Rejoin::Lost {
                let lost = std::mem::take(&mut inner.assignment);
                inner.positions.clear();
                inner.membership = Membership::Unjoined;
                inner.member_id.clear();
                inner.generation = -1;
                return Ok(Step::Callback(Callback::Lost, lost));
            }
            if self.protocol == RebalanceProtocol::Cooperative {
                return Ok(self.prepare_cooperative_rejoin(inner, &group));
            }
            // Kafka's onJoinPrepare: auto-commit, then the revoked callback, while the
            // consumer still owns its partitions in the current generation, so that
            // commits succeed.
            let revoked = inner.assignment.clone();
            let positions = inner.resolved_positions(&revoked);
            drop(inner);
            if self.config.enable_auto_commit {
                let _ = self.commit_positions(&group, &positions);
            }
            self.fire(Callback::Revoked, &revoked);
            let mut inner = self.inner.lock();
            inner.assignment.clear();
            inner.positions.clear();
            inner.membership = Membership::Unjoined;
            return Ok(Step::Continue);
        }
        match membership {
            Membership::Stable => Ok(Step::Done),
            Membership::Unjoined => {
                let subscription = match self.protocol {
                    RebalanceProtocol::Eager => Subscription {
                        topics: inner.subscription.clone(),
                        ..Subscription::default()
                    },
                    // What the member keeps through the rebalance, and since when.
                    RebalanceProtocol::Cooperative => Subscription {
                        topics: inner.subscription.clone(),
                        user_data: None,
                        owned_partitions: inner.assignment.clone(),
                        generation: (inner.generation > 0).then_some(inner.generation),
                    },
                };
                let metadata = subscription.encode();
                let protocols = self
                    .config
                    .assignor_names()
                    .into_iter()
                    .map(|name| GroupProtocol::new(name, metadata.clone()))
                    .collect();
                let req =
                    JoinGroupRequest::new(&group, &self.config.client_id, CONSUMER, protocols)
                        .member_id(inner.member_id.clone())
                        .timeouts(
                            ms(self.config.session_timeout),
                            ms(self.config.max_poll_interval),
                        );
                let token = service.submit(|c, now, to| c.join_group(now, to, req));
                inner.membership = Membership::Joining(token);
                inner.joined_subscription = inner.subscription.clone();
                inner.assignment_snapshot = None;
                Ok(Step::Continue)
            }
            Membership::Joining(token) => {
                let Some(response) = service.wait(token, deadline) else {
                    return Ok(Step::Done);
                };
                let Response::Join(join) = response else {
                    inner.membership = Membership::Unjoined;
                    return Ok(Step::Continue);
                };
                if let Some(error) = join.error {
                    inner.membership = Membership::Unjoined;
                    return self.join_error(
                        &mut inner,
                        &group,
                        "join",
                        error,
                        join.member_id,
                        deadline,
                    );
                }
                inner.member_id = join.member_id.clone();
                inner.generation = join.generation;
                let assignments = if join.is_leader() {
                    let (assignments, snapshot) = self.assign_as_leader(&join)?;
                    inner.assignment_snapshot = Some(snapshot);
                    inner.metadata_checked_ms = service.now_ms();
                    assignments
                } else {
                    BTreeMap::new()
                };
                let req = SyncGroupRequest {
                    group_id: group.clone(),
                    member_id: join.member_id,
                    generation: join.generation,
                    protocol_type: Some(CONSUMER.to_owned()),
                    protocol_name: join.protocol_name,
                    assignments,
                };
                let token = service.submit(|c, now, to| c.sync_group(now, to, req));
                inner.membership = Membership::Syncing(token);
                Ok(Step::Continue)
            }
            Membership::Syncing(token) => {
                let Some(response) = service.wait(token, deadline) else {
                    return Ok(Step::Done);
                };
                let Response::Sync(sync) = response else {
                    inner.membership = Membership::Unjoined;
                    return Ok(Step::Continue);
                };
                if let Some(error) = sync.error {
                    inner.membership = Membership::Unjoined;
                    let id = inner.member_id.clone();
                    return self.join_error(&mut inner, &group, "sync", error, id, deadline);
                }
                let assignment = Assignment::decode(&sync.assignment).unwrap_or_default();
                let mut partitions = assignment.partitions;
                partitions.sort();
                partitions.dedup();
                if self.protocol == RebalanceProtocol::Eager {
                    inner.assignment = partitions.clone();
                    inner.positions = partitions.iter().map(|tp| (tp.clone(), None)).collect();
                }
                inner.membership = Membership::Stable;
                let now = service.now_ms();
                service.set_live(
                    registration,
                    Some(Liveness {
                        group_id: group.clone(),
                        member_id: inner.member_id.clone(),
                        generation: inner.generation,
                        last_poll_ms: now,
                        last_heartbeat_ms: now,
                        heartbeat_interval_ms: self
                            .config
                            .heartbeat_interval
                            .as_millis()
                            .try_into()
                            .unwrap_or(i64::MAX),
                        max_poll_interval_ms: self
                            .config
                            .max_poll_interval
                            .as_millis()
                            .try_into()
                            .unwrap_or(i64::MAX),
                        rejoin: None,
                    }),
                );
                match self.protocol {
                    RebalanceProtocol::Eager => Ok(Step::Callback(Callback::Assigned, partitions)),
                    RebalanceProtocol::Cooperative => {
                        Ok(self.complete_cooperative(inner, &group, partitions))
                    }
                }
            }
        }
    }

    /// Kafka's cooperative `onJoinPrepare`: auto-commit, give up only the partitions of
    /// topics no longer subscribed (revoked callback), keep the rest with their positions
    /// and rejoin.
    fn prepare_cooperative_rejoin(
        &self,
        inner: parking_lot::MutexGuard<'_, super::Inner>,
        group: &str,
    ) -> Step {
        let unsubscribed: Vec<(String, u32)> = inner
            .assignment
            .iter()
            .filter(|(topic, _)| !inner.subscription.contains(topic))
            .cloned()
            .collect();
        let positions = inner.resolved_positions(&inner.assignment);
        drop(inner);
        if self.config.enable_auto_commit {
            // As Kafka: a failed auto-commit before a rebalance is not an error of poll.
            let _ = self.commit_positions(group, &positions);
        }
        if !unsubscribed.is_empty() {
            self.fire(Callback::Revoked, &unsubscribed);
        }
        let mut inner = self.inner.lock();
        inner.assignment.retain(|tp| !unsubscribed.contains(tp));
        inner.positions.retain(|tp, _| !unsubscribed.contains(tp));
        inner.membership = Membership::Unjoined;
        Step::Continue
    }

    /// Kafka's cooperative `onJoinComplete`, once the member is Stable in the new
    /// generation with `assigned`: revoke `owned − assigned` (auto-commit, then the revoked
    /// callback while the member still holds them, so commits of them succeed), keep the
    /// positions of what stays, and ask for a follow-up rebalance if anything was revoked;
    /// the caller then fires the assigned callback with `assigned − owned`.
    fn complete_cooperative(
        &self,
        inner: parking_lot::MutexGuard<'_, super::Inner>,
        group: &str,
        assigned: Vec<(String, u32)>,
    ) -> Step {
        let owned = inner.assignment.clone();
        let revoked: Vec<(String, u32)> = owned
            .iter()
            .filter(|tp| assigned.binary_search(tp).is_err())
            .cloned()
            .collect();
        let added: Vec<(String, u32)> = assigned
            .iter()
            .filter(|tp| owned.binary_search(tp).is_err())
            .cloned()
            .collect();
        let positions = inner.resolved_positions(&revoked);
        drop(inner);
        if !revoked.is_empty() {
            if self.config.enable_auto_commit {
                let _ = self.commit_positions(group, &positions);
            }
            self.fire(Callback::Revoked, &revoked);
        }
        let mut inner = self.inner.lock();
        inner
            .positions
            .retain(|tp, _| assigned.binary_search(tp).is_ok());
        for tp in &added {
            inner.positions.entry(tp.clone()).or_insert(None);
        }
        inner.assignment = assigned;
        if !revoked.is_empty() {
            inner.rejoin_needed = true;
        }
        Step::Callback(Callback::Assigned, added)
    }

    /// A JoinGroup or SyncGroup error: rejoin for the ones a member recovers from, a typed
    /// error for the others.
    fn join_error(
        &self,
        inner: &mut super::Inner,
        group: &str,
        operation: &'static str,
        error: GroupError,
        member_id: String,
        deadline: Instant,
    ) -> Result<Step> {
        // A cooperative member holds its partitions while it rejoins; once the group no
        // longer knows it (or its generation), they may be someone else's: lost.
        let fenced = matches!(
            error,
            GroupError::UnknownMemberId | GroupError::IllegalGeneration
        );
        if fenced && self.protocol == RebalanceProtocol::Cooperative {
            if error == GroupError::UnknownMemberId {
                inner.member_id.clear();
            }
            inner.generation = -1;
            inner.positions.clear();
            let lost = std::mem::take(&mut inner.assignment);
            if !lost.is_empty() {
                return Ok(Step::Callback(Callback::Lost, lost));
            }
            return Ok(Step::Continue);
        }
        match error {
            GroupError::MemberIdRequired => inner.member_id = member_id,
            GroupError::UnknownMemberId => inner.member_id.clear(),
            GroupError::RebalanceInProgress | GroupError::IllegalGeneration => {}
            GroupError::CoordinatorNotAvailable
            | GroupError::NotCoordinator
            | GroupError::UnknownServerError => {
                if let Some(c) = self.coordinator.lock().clone() {
                    c.service.idle(deadline);
                }
                if Instant::now() >= deadline {
                    return Ok(Step::Done);
                }
                return Ok(Step::FindCoordinator);
            }
            error => {
                return Err(Error::Group {
                    group: group.to_owned(),
                    operation,
                    error,
                });
            }
        }
        Ok(Step::Continue)
    }

    /// The leader's assignment of every member, with the configured assignor, and the
    /// partition counts it was computed from.
    fn assign_as_leader(
        &self,
        join: &JoinGroupResponse,
    ) -> Result<(BTreeMap<String, Vec<u8>>, PartitionCounts)> {
        let protocol = join.protocol_name.clone().unwrap_or_default();
        let assignor = assignor_by_name(&protocol).ok_or_else(|| Error::InvalidConfig {
            name: "partition.assignment.strategy",
            reason: format!("the group chose {protocol:?}, which this consumer does not know"),
        })?;
        let members: Vec<_> = join
            .members
            .iter()
            .map(|m| {
                Subscription::decode(&m.metadata)
                    .unwrap_or_default()
                    .into_member(m.member_id.clone())
            })
            .collect();
        // A topic that cannot be looked up now is left out, as one that does not exist.
        let snapshot: PartitionCounts = members
            .iter()
            .flat_map(|m| m.topics.iter())
            .map(|topic| (topic.clone(), self.partition_count(topic).ok().flatten()))
            .collect();
        let partitions_per_topic = snapshot
            .iter()
            .filter_map(|(topic, count)| Some((topic.clone(), (*count)?)))
            .collect();
        let assignments = assignor
            .assign(&members, &partitions_per_topic)
            .into_iter()
            .map(|(member, partitions)| {
                let bytes = Assignment {
                    partitions,
                    user_data: None,
                }
                .encode();
                (member, bytes)
            })
            .collect();
        Ok((assignments, snapshot))
    }

    /// How many partitions `topic` has; `None` if it does not exist.
    fn partition_count(&self, topic: &str) -> Result<Option<u32>> {
        match self.backend.partition_count(topic) {
            Ok(count) => Ok(Some(count)),
            Err(Error::UnknownTopic { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether, as the leader, it finds the partition counts its assignment was computed
    /// from changed (looked at every `METADATA_CHECK_INTERVAL_MS` at most; a topic that
    /// cannot be looked up now counts as unchanged).
    fn metadata_changed(&self, inner: &mut super::Inner, now_ms: i64) -> bool {
        let Some(snapshot) = &inner.assignment_snapshot else {
            return false;
        };
        if now_ms.saturating_sub(inner.metadata_checked_ms) < METADATA_CHECK_INTERVAL_MS {
            return false;
        }
        inner.metadata_checked_ms = now_ms;
        snapshot
            .iter()
            .any(|(topic, count)| self.partition_count(topic).is_ok_and(|now| now != *count))
    }
}
