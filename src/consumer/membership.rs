//! The group side of a [`Consumer`]: joining, the leader's assignment, syncing, reacting to
//! rebalances (auto-commit, revoked / lost / assigned callbacks) — all driven from `poll`.

use std::collections::BTreeMap;
use std::time::Instant;

use super::{Consumer, Membership};
use crate::error::{Error, Result};
use crate::group::GroupError;
use crate::group::assignor::assignor_by_name;
use crate::group::assignor::protocol::{Assignment, Subscription};
use crate::group::coordinator::{
    GroupProtocol, JoinGroupRequest, JoinGroupResponse, Response, SyncGroupRequest,
};
use crate::group::service::{Liveness, Rejoin};

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
}

#[derive(Clone, Copy)]
enum Callback {
    Revoked,
    Lost,
    Assigned,
}

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
        let Some(service) = &self.service else {
            return Ok(Step::Done);
        };
        let group = self.group_id()?.to_owned();
        let rejoin = service.polled(self.registration);
        let mut inner = self.inner.lock();
        let membership = inner.membership;
        let reason = rejoin.or(inner.resubscribe.then_some(Rejoin::Rebalance));
        if let (Membership::Stable, Some(reason)) = (membership, reason) {
            inner.resubscribe = false;
            service.set_live(self.registration, None);
            if reason == Rejoin::Lost {
                let lost = std::mem::take(&mut inner.assignment);
                inner.positions.clear();
                inner.membership = Membership::Unjoined;
                inner.member_id.clear();
                inner.generation = -1;
                return Ok(Step::Callback(Callback::Lost, lost));
            }
            // Kafka's onJoinPrepare: auto-commit, then the revoked callback, while the
            // consumer still owns its partitions in the current generation, so that
            // commits succeed.
            let revoked = inner.assignment.clone();
            let positions = inner.resolved_positions(&revoked);
            drop(inner);
            if self.config.enable_auto_commit {
                let _ = self.send_commit(&group, &positions);
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
                let subscription = Subscription {
                    topics: inner.subscription.clone(),
                    ..Subscription::default()
                };
                let protocol =
                    GroupProtocol::new(self.config.assignor.clone(), subscription.encode());
                let req =
                    JoinGroupRequest::new(&group, &self.config.client_id, CONSUMER, vec![protocol])
                        .member_id(inner.member_id.clone())
                        .timeouts(
                            ms(self.config.session_timeout),
                            ms(self.config.max_poll_interval),
                        );
                let token = service.submit(|c, now, to| c.join_group(now, to, req));
                inner.membership = Membership::Joining(token);
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
                    self.assign_as_leader(&join)?
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
                inner.assignment = partitions.clone();
                inner.positions = partitions.iter().map(|tp| (tp.clone(), None)).collect();
                inner.membership = Membership::Stable;
                let now = service.now_ms();
                service.set_live(
                    self.registration,
                    Some(Liveness {
                        group_id: group,
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
                Ok(Step::Callback(Callback::Assigned, partitions))
            }
        }
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
        match error {
            GroupError::MemberIdRequired => inner.member_id = member_id,
            GroupError::UnknownMemberId => inner.member_id.clear(),
            GroupError::RebalanceInProgress | GroupError::IllegalGeneration => {}
            GroupError::CoordinatorNotAvailable
            | GroupError::NotCoordinator
            | GroupError::UnknownServerError => {
                if let Some(service) = &self.service {
                    service.idle(deadline);
                }
                if Instant::now() >= deadline {
                    return Ok(Step::Done);
                }
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

    /// The leader's assignment of every member, with the configured assignor.
    fn assign_as_leader(&self, join: &JoinGroupResponse) -> Result<BTreeMap<String, Vec<u8>>> {
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
        let mut partitions_per_topic = BTreeMap::new();
        for topic in members.iter().flat_map(|m| m.topics.iter()) {
            if let Ok(t) = self.broker.topic(topic) {
                partitions_per_topic.insert(topic.clone(), t.partition_count());
            }
        }
        Ok(assignor
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
            .collect())
    }
}
