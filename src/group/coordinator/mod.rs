//! The group coordinator: a sans-IO state machine running Kafka's classic group protocol
//! (JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch) for every group
//! whose `__consumer_offsets` partition it owns.
//!
//! Inputs are method calls carrying the current time (`now_ms`) and a [`ReplyTo`] token;
//! outputs are [`Output`] values: responses addressed to a token (a JoinGroup or SyncGroup
//! may be answered by a later call) and [`PersistRequest`]s to append to
//! `__consumer_offsets`, whose outcome comes back through
//! [`GroupCoordinator::append_completed`]. There are no threads, sockets or sleeps inside:
//! [`GroupCoordinator::tick`] fires the timers (sessions, rebalance timeout, initial delay,
//! new-member join timeout). Every call with `now_ms` fires the group's due timers first.
//!
//! Files: `group.rs` (one group's data), `rebalance.rs` (phases and generations),
//! `join.rs`, `sync.rs`, `load.rs` (rebuilding groups on open), `heartbeat.rs` (heartbeat and leave), `commit.rs`, `timers.rs`,
//! `persist.rs` (appends), `cleanup.rs` (a deleted topic's offsets), `state.rs`, `member.rs`, `config.rs`. Placement and the stored
//! formats are [`crate::group::offsets`]'s.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::Result;
use crate::group::GroupError;
use crate::group::assignor::TopicPartition;
use crate::group::offsets::{
    GroupMetadata, MAX_GROUP_ID_BYTES, OffsetAndMetadata, OffsetsStore, partition_for_group,
};

mod cleanup;
mod commit;
mod config;
mod context;
mod group;
mod heartbeat;
mod join;
mod load;
mod member;
mod persist;
mod rebalance;
mod requests;
mod responses;
mod state;
mod sync;
mod timers;

pub use config::CoordinatorConfig;
pub use persist::{AppendError, PersistId, PersistRecord, PersistRequest};
pub use requests::{
    GroupProtocol, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, OffsetCommit,
    OffsetCommitRequest, OffsetFetchRequest, SyncGroupRequest,
};
pub use responses::{
    JoinGroupResponse, JoinedMember, LeaveGroupResponse, OffsetCommitResponse, OffsetFetchResponse,
    Output, ReplyTo, Response, SyncGroupResponse,
};
pub use state::GroupState;

use context::Ctx;
use group::Group;
use member::MemberIds;
use persist::{Pending, Persists};

/// A read-only view of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// The state.
    pub state: GroupState,
    /// The current generation (0 before the first).
    pub generation: i32,
    /// The protocol type, once a member joined.
    pub protocol_type: Option<String>,
    /// The chosen protocol of the generation.
    pub protocol_name: Option<String>,
    /// The leader.
    pub leader: Option<String>,
    /// Members in join order, with their current assignment bytes.
    pub members: Vec<(String, Vec<u8>)>,
    /// Member ids handed out with `MemberIdRequired` and not used yet.
    pub pending_members: usize,
}

/// The group coordinator for many groups.
///
/// ```
/// use streamlog::group::coordinator::*;
///
/// let config = CoordinatorConfig { initial_rebalance_delay_ms: 0, ..Default::default() };
/// let mut coordinator = GroupCoordinator::new(config)?;
/// let join = JoinGroupRequest::new("billing", "app", "consumer",
///     vec![GroupProtocol::new("range", Vec::new())]);
///
/// // A first join gets a member id to join again with (KIP-394).
/// let out = coordinator.join_group(0, ReplyTo(1), join.clone());
/// let Output::Reply { response: Response::Join(first), .. } = &out[0] else { unreachable!() };
/// assert_eq!(first.error, Some(streamlog::GroupError::MemberIdRequired));
///
/// // Joining with it forms generation 1 at once (no initial delay here); we lead.
/// let out = coordinator.join_group(0, ReplyTo(2), join.member_id(first.member_id.clone()));
/// let Output::Reply { response: Response::Join(joined), .. } = &out[0] else { unreachable!() };
/// assert_eq!((joined.generation, joined.is_leader()), (1, true));
///
/// // The leader syncs; the group turns Stable once the assignment is appended.
/// let sync = SyncGroupRequest { group_id: "billing".into(), member_id: joined.member_id.clone(),
///     generation: 1, ..Default::default() };
/// let out = coordinator.sync_group(0, ReplyTo(3), sync);
/// let Output::Persist(append) = &out[0] else { unreachable!() };
/// let out = coordinator.append_completed(0, append.id, Ok(0));
/// assert!(matches!(&out[0], Output::Reply { to: ReplyTo(3), response: Response::Sync(s) } if s.error.is_none()));
/// assert_eq!(coordinator.describe_group("billing").map(|g| g.state), Some(GroupState::Stable));
/// # Ok::<(), streamlog::Error>(())
/// ```
#[derive(Debug)]
pub struct GroupCoordinator {
    config: CoordinatorConfig,
    groups: BTreeMap<String, Group>,
    persists: Persists,
    member_ids: MemberIds,
    owned_partitions: Option<BTreeSet<u32>>,
}

impl GroupCoordinator {
    /// A coordinator owning every `__consumer_offsets` partition, with no groups.
    pub fn new(config: CoordinatorConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            member_ids: MemberIds::new(config.member_id_seed),
            config,
            groups: BTreeMap::new(),
            persists: Persists::default(),
            owned_partitions: None,
        })
    }

    /// The settings.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    /// Owns only these `__consumer_offsets` partitions from now on: requests for groups
    /// elsewhere get `NotCoordinator`.
    pub fn set_owned_partitions(&mut self, partitions: impl IntoIterator<Item = u32>) {
        self.owned_partitions = Some(partitions.into_iter().collect());
    }

    /// `InvalidGroupId` or `NotCoordinator` for a group id this coordinator cannot serve.
    fn check_group_id(&self, group_id: &str) -> Result<(), GroupError> {
        if group_id.is_empty() || group_id.len() > MAX_GROUP_ID_BYTES {
            return Err(GroupError::InvalidGroupId);
        }
        let partition = partition_for_group(group_id, self.config.offsets_topic_partitions);
        match &self.owned_partitions {
            Some(owned) if !owned.contains(&partition) => Err(GroupError::NotCoordinator),
            _ => Ok(()),
        }
    }

    /// Runs `f` on the groups with a context at `now_ms`, after firing `group_id`'s timers.
    fn with_ctx(
        &mut self,
        now_ms: i64,
        group_id: &str,
        f: impl FnOnce(&mut BTreeMap<String, Group>, &mut Ctx),
    ) -> Vec<Output> {
        let mut out = Vec::new();
        let mut cx = Ctx {
            cfg: &self.config,
            now: now_ms,
            out: &mut out,
            persists: &mut self.persists,
            ids: &mut self.member_ids,
        };
        if let Some(group) = self.groups.get_mut(group_id) {
            group.run_timers(&mut cx);
        }
        f(&mut self.groups, &mut cx);
        out
    }

    /// JoinGroup. The answer comes when the phase completes: in this call's outputs or a
    /// later call's.
    pub fn join_group(
        &mut self,
        now_ms: i64,
        reply_to: ReplyTo,
        req: JoinGroupRequest,
    ) -> Vec<Output> {
        if let Err(error) = self.check_group_id(&req.group_id) {
            let response = JoinGroupResponse::failed(&req.member_id, error);
            return vec![reply(reply_to, Response::Join(response))];
        }
        let group_id = req.group_id.clone();
        self.with_ctx(now_ms, &group_id, |groups, cx| {
            join::join(groups, &req, reply_to, cx)
        })
    }

    /// SyncGroup. A follower waits for the leader's assignment; the leader's assignment is
    /// handed out once its append completes.
    pub fn sync_group(
        &mut self,
        now_ms: i64,
        reply_to: ReplyTo,
        req: SyncGroupRequest,
    ) -> Vec<Output> {
        if let Err(error) = self.check_group_id(&req.group_id) {
            return vec![reply(
                reply_to,
                Response::Sync(SyncGroupResponse::failed(error)),
            )];
        }
        let group_id = req.group_id.clone();
        self.with_ctx(now_ms, &group_id, |groups, cx| {
            sync::sync(groups.get_mut(&group_id), req, reply_to, cx);
        })
    }

    /// Heartbeat: answered at once.
    pub fn heartbeat(
        &mut self,
        now_ms: i64,
        reply_to: ReplyTo,
        req: HeartbeatRequest,
    ) -> Vec<Output> {
        if let Err(error) = self.check_group_id(&req.group_id) {
            return vec![reply(reply_to, Response::Heartbeat(Err(error)))];
        }
        let group_id = req.group_id.clone();
        self.with_ctx(now_ms, &group_id, |groups, cx| {
            let result = heartbeat::heartbeat(groups.get_mut(&group_id), &req, cx);
            cx.reply(reply_to, Response::Heartbeat(result));
        })
    }

    /// LeaveGroup: answered at once; the group rebalances (or turns Empty).
    pub fn leave_group(
        &mut self,
        now_ms: i64,
        reply_to: ReplyTo,
        req: LeaveGroupRequest,
    ) -> Vec<Output> {
        if let Err(error) = self.check_group_id(&req.group_id) {
            let response = LeaveGroupResponse {
                error: Some(error),
                members: Vec::new(),
            };
            return vec![reply(reply_to, Response::Leave(response))];
        }
        let group_id = req.group_id.clone();
        self.with_ctx(now_ms, &group_id, |groups, cx| {
            let response = heartbeat::leave(groups.get_mut(&group_id), &req, cx);
            cx.reply(reply_to, Response::Leave(response));
        })
    }

    /// OffsetCommit: validated now; the valid offsets become visible (and the answer comes)
    /// when their append completes.
    pub fn commit_offsets(
        &mut self,
        now_ms: i64,
        reply_to: ReplyTo,
        req: OffsetCommitRequest,
    ) -> Vec<Output> {
        if let Err(error) = self.check_group_id(&req.group_id) {
            let partitions = req
                .offsets
                .iter()
                .map(|(tp, _)| (tp.clone(), Err(error)))
                .collect();
            return vec![reply(
                reply_to,
                Response::Commit(OffsetCommitResponse { partitions }),
            )];
        }
        let group_id = req.group_id.clone();
        self.with_ctx(now_ms, &group_id, |groups, cx| {
            commit::commit(groups, req, reply_to, cx)
        })
    }

    /// OffsetFetch from the cache: the committed value of each of `partitions` (`None` if
    /// never committed), or every committed partition of the group when `partitions` is
    /// `None`. An unknown group, or one being deleted (Dead), has nothing committed.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<Vec<(TopicPartition, Option<OffsetAndMetadata>)>, GroupError> {
        self.check_group_id(group_id)?;
        Ok(commit::fetch(self.groups.get(group_id), partitions))
    }

    /// DeleteGroups for one group: only an Empty group can go (`NonEmptyGroup` otherwise,
    /// `GroupIdNotFound` if there is none). It is Dead while the tombstones are appended,
    /// then gone; if the append fails, it is Empty again with its committed offsets (they
    /// are still in the log) and the answer is the error.
    pub fn delete_group(&mut self, now_ms: i64, reply_to: ReplyTo, group_id: &str) -> Vec<Output> {
        if let Err(error) = self.check_group_id(group_id) {
            return vec![reply(reply_to, Response::DeleteGroup(Err(error)))];
        }
        self.with_ctx(now_ms, group_id, |groups, cx| {
            let Some(group) = groups.get_mut(group_id) else {
                return cx.reply(
                    reply_to,
                    Response::DeleteGroup(Err(GroupError::GroupIdNotFound)),
                );
            };
            let error = match group.state {
                GroupState::Dead => Some(GroupError::GroupIdNotFound),
                // Members still to join with the id they were given (MemberIdRequired)
                // do not make a group non-empty; Kafka deletes it as well.
                GroupState::Empty => None,
                _ => Some(GroupError::NonEmptyGroup),
            };
            if let Some(error) = error {
                return cx.reply(reply_to, Response::DeleteGroup(Err(error)));
            }
            let state_timestamp = group.state_timestamp;
            group.transition(GroupState::Dead, cx.now);
            // Commits still being appended are in the log before these tombstones: they
            // need theirs too, or a reload would bring the group back with them.
            let (in_flight, mut offsets) = cx.persists.commits_in_flight(group_id, None);
            offsets.extend(group.offsets.keys().cloned());
            let pending = Pending::Delete {
                group_id: group_id.to_string(),
                reply_to,
                state_timestamp,
                in_flight,
            };
            cx.persist(
                group_id,
                persist::PersistRecord::DeleteGroup {
                    offsets: offsets.into_iter().collect(),
                },
                pending,
            );
        })
    }

    /// The append of `id` completed: `Ok(offset of its last record in __consumer_offsets)`
    /// or the error. Installs commits and hands out assignments on success; answers the
    /// waiting requests either way. An unknown id is ignored.
    pub fn append_completed(
        &mut self,
        now_ms: i64,
        id: PersistId,
        result: std::result::Result<u64, AppendError>,
    ) -> Vec<Output> {
        let Some(pending) = self.persists.take(id) else {
            return Vec::new();
        };
        let group_id = match &pending {
            Pending::Commit { group_id, .. }
            | Pending::Assignment { group_id, .. }
            | Pending::Delete { group_id, .. }
            | Pending::TopicDeleted { group_id, .. } => group_id.clone(),
            Pending::Metadata => return Vec::new(),
        };
        self.with_ctx(now_ms, &group_id, |groups, cx| match pending {
            Pending::Commit {
                reply_to,
                stored,
                refused,
                superseded,
                ..
            } => commit::commit_stored(
                groups.get_mut(&group_id),
                reply_to,
                stored,
                refused,
                &superseded,
                result,
                cx,
            ),
            Pending::Assignment {
                generation,
                assignments,
                ..
            } => {
                if let Some(group) = groups.get_mut(&group_id) {
                    sync::assignment_stored(group, generation, assignments, result, cx);
                }
            }
            Pending::Delete {
                reply_to,
                state_timestamp,
                in_flight,
                ..
            } => {
                let response = match result {
                    Ok(_) => {
                        groups.remove(&group_id);
                        cx.persists.supersede(&in_flight, None);
                        Ok(())
                    }
                    Err(error) => {
                        if let Some(group) = groups.get_mut(&group_id) {
                            group.undo_delete(state_timestamp);
                        }
                        Err(error.group_error())
                    }
                };
                cx.reply(reply_to, Response::DeleteGroup(response));
            }
            Pending::TopicDeleted {
                dead,
                removed,
                tombstoned,
                in_flight,
                ..
            } => {
                if result.is_ok() {
                    cx.persists.supersede(&in_flight, Some(&tombstoned));
                }
                let Some(group) = groups.get_mut(&group_id) else {
                    return;
                };
                match (result, dead) {
                    (Ok(_), Some(_)) if group.state == GroupState::Dead => {
                        groups.remove(&group_id);
                    }
                    (Ok(at), _) => {
                        // Commits answered meanwhile were appended before the tombstones.
                        group
                            .offsets
                            .retain(|tp, (_, written)| !tombstoned.contains(tp) || *written > at);
                    }
                    (Err(_), dead) => {
                        if let Some(state_timestamp) = dead {
                            group.undo_delete(state_timestamp);
                        }
                        for (tp, value) in removed {
                            group.offsets.entry(tp).or_insert(value);
                        }
                    }
                }
            }
            Pending::Metadata => {}
        })
    }

    /// Topic `topic` was deleted (Kafka's `onPartitionsDeleted`): every group forgets its
    /// committed offsets of that topic at once and asks for their tombstones (one
    /// [`PersistRecord::DeleteOffsets`] per group that had any), which also cover its
    /// commits of the topic still being appended: those are answered, and what they
    /// install leaves the cache again once the tombstones are in. A group being deleted
    /// gets them too, in case its deletion fails. A group left Empty, without members
    /// waiting, without offsets and committing no other topic (whether or not it had any
    /// of `topic`) turns Dead, as in Kafka's `cleanupGroupMetadata`, and its request is a
    /// [`PersistRecord::DeleteGroup`] (the metadata's tombstone with the offsets'); it is
    /// removed once that append succeeds. No reply is sent: if an append fails, its
    /// offsets are still in `__consumer_offsets`, so they go back into the group's cache
    /// (a Dead group is Empty again), as with a failed [`GroupCoordinator::delete_group`];
    /// a driver checks every append's result and calls again
    /// ([`crate::Broker::delete_topic`] keeps the topic's delete marker until all
    /// succeeded). Returns the outputs and how many offsets left the cache.
    pub fn delete_topic_offsets(&mut self, now_ms: i64, topic: &str) -> (Vec<Output>, usize) {
        let mut out = self.tick(now_ms);
        let mut cx = Ctx {
            cfg: &self.config,
            now: now_ms,
            out: &mut out,
            persists: &mut self.persists,
            ids: &mut self.member_ids,
        };
        let removed = cleanup::delete_topic_offsets(&mut self.groups, topic, &mut cx);
        (out, removed)
    }

    /// Fires every due timer of every group at `now_ms`.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Output> {
        let mut out = Vec::new();
        let mut cx = Ctx {
            cfg: &self.config,
            now: now_ms,
            out: &mut out,
            persists: &mut self.persists,
            ids: &mut self.member_ids,
        };
        for group in self.groups.values_mut() {
            group.run_timers(&mut cx);
        }
        out
    }

    /// The earliest time a timer can fire (a driver ticks just after it), if any.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.groups.values().filter_map(Group::next_deadline).min()
    }

    /// The group's state, generation, protocol, leader and members, if it exists.
    pub fn describe_group(&self, group_id: &str) -> Option<GroupDescription> {
        self.groups.get(group_id).map(|g| GroupDescription {
            state: g.state,
            generation: g.generation,
            protocol_type: g.protocol_type.clone(),
            protocol_name: g.protocol_name.clone(),
            leader: g.leader.clone(),
            members: g
                .members_in_order()
                .into_iter()
                .map(|m| (m.id.clone(), m.assignment.clone()))
                .collect(),
            pending_members: g.pending_members.len(),
        })
    }

    /// Installs a group as `__consumer_offsets` holds it (Kafka's loading rules): with
    /// members it is Stable with its generation, protocol, leader and members, each with a
    /// fresh session from `now_ms`, so members that are gone expire and the group
    /// rebalances; without members it is Empty, keeping its generation (a negative one,
    /// which no coordinator writes, loads as 0). `offsets` are its committed offsets. A
    /// group already held is replaced.
    pub fn load_group(
        &mut self,
        now_ms: i64,
        group_id: &str,
        metadata: Option<&GroupMetadata>,
        offsets: impl IntoIterator<Item = ((String, u32), OffsetAndMetadata)>,
    ) {
        let group = load::loaded_group(group_id, now_ms, metadata, offsets);
        if group.is_vacant() && metadata.is_none() {
            self.groups.remove(group_id);
        } else {
            self.groups.insert(group_id.to_string(), group);
        }
    }

    /// Loads every group of `store` (see [`GroupCoordinator::load_group`]) whose partition
    /// this coordinator owns; returns how many groups were loaded.
    pub fn load_from(&mut self, now_ms: i64, store: &OffsetsStore) -> usize {
        self.load_where(now_ms, store, |_| true)
    }

    /// Takes on `__consumer_offsets` partition `partition` (a broker that became its
    /// leader): adds it to the owned partitions and loads its groups from `store` (which
    /// must have replayed it, [`OffsetsStore::load_partition`]); groups of other partitions
    /// are left as they are. Returns how many groups were loaded.
    pub fn load_partition(&mut self, now_ms: i64, store: &OffsetsStore, partition: u32) -> usize {
        if let Some(owned) = &mut self.owned_partitions {
            owned.insert(partition);
        }
        let partitions = self.config.offsets_topic_partitions;
        self.load_where(now_ms, store, |group| {
            partition_for_group(group, partitions) == partition
        })
    }

    /// Gives up `__consumer_offsets` partition `partition` (its leadership moved): its
    /// groups are dropped, requests for them get `NotCoordinator` from now on, and members
    /// waiting for a JoinGroup or SyncGroup answer are answered with `NotCoordinator` so
    /// they look for the new coordinator (Kafka's `removeGroupsForPartition`).
    pub fn unload_partition(&mut self, partition: u32) -> Vec<Output> {
        let owned = self
            .owned_partitions
            .get_or_insert_with(|| (0..self.config.offsets_topic_partitions).collect());
        owned.remove(&partition);
        let partitions = self.config.offsets_topic_partitions;
        let gone: Vec<String> = self
            .groups
            .keys()
            .filter(|g| partition_for_group(g, partitions) == partition)
            .cloned()
            .collect();
        let mut out = Vec::new();
        for group_id in gone {
            let Some(group) = self.groups.remove(&group_id) else {
                continue;
            };
            for member in group.members.values() {
                if let Some(to) = member.awaiting_join {
                    let response =
                        JoinGroupResponse::failed(&member.id, GroupError::NotCoordinator);
                    out.push(reply(to, Response::Join(response)));
                }
                if let Some(to) = member.awaiting_sync {
                    let response = SyncGroupResponse::failed(GroupError::NotCoordinator);
                    out.push(reply(to, Response::Sync(response)));
                }
            }
        }
        out
    }

    /// The `__consumer_offsets` partitions this coordinator owns (`None`: all of them).
    pub fn owned_partitions(&self) -> Option<&BTreeSet<u32>> {
        self.owned_partitions.as_ref()
    }

    /// Loads the groups of `store` that this coordinator owns and `filter` accepts.
    fn load_where(
        &mut self,
        now_ms: i64,
        store: &OffsetsStore,
        filter: impl Fn(&str) -> bool,
    ) -> usize {
        let mut loaded = 0;
        for group_id in store.groups() {
            if !filter(&group_id) || self.check_group_id(&group_id).is_err() {
                continue;
            }
            let metadata = store.group(&group_id);
            self.load_group(
                now_ms,
                &group_id,
                metadata.as_ref(),
                store.fetch_all(&group_id),
            );
            loaded += 1;
        }
        loaded
    }

    /// The ids of the groups this coordinator holds.
    pub fn group_ids(&self) -> Vec<String> {
        self.groups.keys().cloned().collect()
    }
}

fn reply(to: ReplyTo, response: Response) -> Output {
    Output::Reply { to, response }
}
