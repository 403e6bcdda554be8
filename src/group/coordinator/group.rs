//! [`Group`]: one group's members, generation, protocol, timers and offset cache, with the
//! bookkeeping that does not drive the protocol (adding, removing, voting on a protocol).

use std::collections::{BTreeMap, BTreeSet};

use crate::group::GroupError;
use crate::group::assignor::TopicPartition;
use crate::group::offsets::{GroupMetadata, MemberMetadata, OffsetAndMetadata};

use super::context::Ctx;
use super::member::Member;
use super::requests::GroupProtocol;
use super::responses::Response;
use super::state::GroupState;

/// The timer of a PreparingRebalance phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct JoinTimer {
    pub deadline: i64,
    /// `Some(ms of rebalance timeout left)` during the initial delay of an empty group,
    /// which only completes on the timer; `None` for a normal phase.
    pub initial_remaining: Option<i64>,
}

/// One group.
#[derive(Debug)]
pub(super) struct Group {
    pub id: String,
    pub state: GroupState,
    pub state_timestamp: i64,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Ids handed out with `MemberIdRequired`, with the time they expire.
    pub pending_members: BTreeMap<String, i64>,
    /// Members of the generation that have not sent SyncGroup yet.
    pub pending_sync: BTreeSet<String>,
    pub join_timer: Option<JoinTimer>,
    pub sync_deadline: Option<i64>,
    /// A member joined during the initial delay: extend it once more.
    pub new_member_added: bool,
    /// Installed offsets with the `__consumer_offsets` offset of their record.
    pub offsets: BTreeMap<TopicPartition, (OffsetAndMetadata, u64)>,
    next_seq: u64,
}

impl Group {
    pub fn new(id: &str, now: i64) -> Self {
        Self {
            id: id.to_string(),
            state: GroupState::Empty,
            state_timestamp: now,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            pending_sync: BTreeSet::new(),
            join_timer: None,
            sync_deadline: None,
            new_member_added: false,
            offsets: BTreeMap::new(),
            next_seq: 0,
        }
    }

    /// Moves to `to`; an illegal move is a bug in this module, caught in debug builds.
    pub fn transition(&mut self, to: GroupState, now: i64) {
        debug_assert!(
            self.state.can_transition_to(to),
            "illegal group transition {:?} -> {to:?}",
            self.state
        );
        self.state = to;
        self.state_timestamp = now;
    }

    /// Undoes a deletion whose tombstones could not be appended: the Dead group is Empty
    /// again, with the state timestamp it had (offset expiry counts from it). Not a
    /// transition — Kafka has no Dead → Empty — but the deletion that never happened: while
    /// Dead the group refused every request, so it has no members and all its offsets.
    pub fn undo_delete(&mut self, state_timestamp: i64) {
        if self.state == GroupState::Dead {
            self.state = GroupState::Empty;
            self.state_timestamp = state_timestamp;
        }
    }

    /// Whether nothing is left worth keeping (a group created by a request that failed).
    pub fn is_vacant(&self) -> bool {
        self.state == GroupState::Empty
            && self.generation == 0
            && self.members.is_empty()
            && self.pending_members.is_empty()
            && self.offsets.is_empty()
    }

    /// Adds a member; the first one fixes the protocol type, the first joiner leads.
    pub fn add(&mut self, mut member: Member) {
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(member.id.clone());
        }
        member.seq = self.next_seq;
        self.next_seq += 1;
        self.pending_members.remove(&member.id);
        self.members.insert(member.id.clone(), member);
    }

    /// Removes a member, answering its waiting requests with `UnknownMemberId`; the
    /// earliest remaining joiner takes over as leader.
    pub fn remove(&mut self, member_id: &str, cx: &mut Ctx) {
        self.pending_members.remove(member_id);
        self.pending_sync.remove(member_id);
        if let Some(member) = self.members.remove(member_id) {
            if let Some(to) = member.awaiting_join {
                cx.join_error(to, member_id, GroupError::UnknownMemberId);
            }
            if let Some(to) = member.awaiting_sync {
                cx.sync_error(to, GroupError::UnknownMemberId);
            }
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = self.first_member(|_| true);
        }
    }

    /// The earliest joiner passing `filter`.
    pub fn first_member(&self, filter: impl Fn(&Member) -> bool) -> Option<String> {
        self.members
            .values()
            .filter(|m| filter(m))
            .min_by_key(|m| m.seq)
            .map(|m| m.id.clone())
    }

    /// Members in join order.
    pub fn members_in_order(&self) -> Vec<&Member> {
        let mut members: Vec<&Member> = self.members.values().collect();
        members.sort_by_key(|m| m.seq);
        members
    }

    /// Whether a member with this protocol type and protocols may join: any non-empty
    /// choice for a group without members, otherwise the same type and a protocol every
    /// member supports.
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[GroupProtocol]) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|p| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|q| q.name == p.name))
            })
    }

    /// The protocol vote: each member votes for its first protocol that every member
    /// supports; most votes wins, ties go to the smallest name.
    pub fn select_protocol(&self) -> Option<String> {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            let choice = member.protocols.iter().find(|p| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|q| q.name == p.name))
            });
            if let Some(p) = choice {
                *votes.entry(p.name.as_str()).or_default() += 1;
            }
        }
        let best = votes.values().copied().max()?;
        votes
            .into_iter()
            .find(|(_, v)| *v == best)
            .map(|(name, _)| name.to_string())
    }

    /// The group's rebalance timeout: the largest of its members'.
    pub fn rebalance_timeout(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    /// Whether every member has rejoined and no id handed out is still outstanding.
    pub fn all_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    /// Whether a join by `member_id` fits under `group.max.size`.
    pub fn accepts(&self, member_id: &str, max_size: usize) -> bool {
        match self.state {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                let awaiting = self
                    .members
                    .values()
                    .filter(|m| m.awaiting_join.is_some())
                    .count();
                self.members
                    .get(member_id)
                    .is_some_and(|m| m.awaiting_join.is_some())
                    || awaiting < max_size
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.members.contains_key(member_id) || self.members.len() < max_size
            }
        }
    }

    /// Answers every waiting SyncGroup with `error` and clears the assignments.
    pub fn reset_and_propagate(&mut self, error: GroupError, cx: &mut Ctx) {
        for member in self.members.values_mut() {
            member.assignment.clear();
            if let Some(to) = member.awaiting_sync.take() {
                cx.reply(
                    to,
                    Response::Sync(super::responses::SyncGroupResponse::failed(error)),
                );
            }
        }
    }

    /// The group's metadata record, with `assignments` when given.
    pub fn snapshot(&self, assignments: Option<&BTreeMap<String, Vec<u8>>>) -> GroupMetadata {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        GroupMetadata {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol_name.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: Some(self.state_timestamp),
            members: self
                .members_in_order()
                .into_iter()
                .map(|m| MemberMetadata {
                    member_id: m.id.clone(),
                    group_instance_id: None,
                    client_id: m.client_id.clone(),
                    client_host: String::new(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata(&protocol),
                    assignment: assignments
                        .and_then(|a| a.get(&m.id).cloned())
                        .unwrap_or_else(|| m.assignment.clone()),
                })
                .collect(),
        }
    }
}
