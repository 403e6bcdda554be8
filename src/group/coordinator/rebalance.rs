//! The rebalance protocol proper: starting a PreparingRebalance phase, completing it into a
//! new generation, and what removing or adding a member does to the phase.

use crate::group::GroupError;

use super::context::Ctx;
use super::group::{Group, JoinTimer};
use super::member::Member;
use super::persist::{Pending, PersistRecord};
use super::requests::JoinGroupRequest;
use super::responses::{JoinGroupResponse, JoinedMember, ReplyTo, Response};
use super::state::GroupState;

impl Group {
    /// Starts a rebalance if the state allows one (Empty, CompletingRebalance, Stable).
    pub fn maybe_prepare_rebalance(&mut self, cx: &mut Ctx) {
        if self.state.can_rebalance() {
            self.prepare_rebalance(cx);
        }
    }

    /// Enters PreparingRebalance: waiting syncs get `RebalanceInProgress`; an empty group
    /// waits the initial delay, any other the rebalance timeout (or less, if all rejoin).
    pub fn prepare_rebalance(&mut self, cx: &mut Ctx) {
        if self.state == GroupState::CompletingRebalance {
            self.reset_and_propagate(GroupError::RebalanceInProgress, cx);
        }
        self.sync_deadline = None;
        self.pending_sync.clear();
        let timeout = self.rebalance_timeout();
        let delay = cx.cfg.initial_rebalance_delay_ms;
        self.join_timer = Some(if self.state == GroupState::Empty && delay > 0 {
            JoinTimer {
                deadline: cx.now.saturating_add(delay),
                initial_remaining: Some(timeout.saturating_sub(delay).max(0)),
            }
        } else {
            JoinTimer {
                deadline: cx.now.saturating_add(timeout),
                initial_remaining: None,
            }
        });
        self.new_member_added = false;
        self.transition(GroupState::PreparingRebalance, cx.now);
        self.try_complete_join(cx);
    }

    /// Completes the phase early when everyone has rejoined (never during the initial delay).
    pub fn try_complete_join(&mut self, cx: &mut Ctx) {
        let initial = self
            .join_timer
            .is_some_and(|t| t.initial_remaining.is_some());
        if self.state == GroupState::PreparingRebalance && !initial && self.all_joined() {
            self.complete_join(cx);
        }
    }

    /// Ends the phase: members that did not rejoin are dropped, the generation goes up by
    /// one (from `i32::MAX` it wraps to 1: generations are always positive), and every
    /// joined member gets its JoinGroup answer (the leader with everyone's metadata). With
    /// no member left the group is Empty.
    pub fn complete_join(&mut self, cx: &mut Ctx) {
        self.join_timer = None;
        self.new_member_added = false;
        let absent: Vec<String> = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in absent {
            self.remove(&id, cx);
        }
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let leader_joined = self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l));
        if !leader_joined {
            self.leader = self.first_member(|_| true);
        }
        self.generation = next_generation(self.generation);
        debug_assert!(self.generation > 0, "generation {}", self.generation);
        self.pending_sync.clear();
        if self.members.is_empty() {
            self.protocol_name = None;
            self.leader = None;
            self.transition(GroupState::Empty, cx.now);
            let record = PersistRecord::Group(self.snapshot(None));
            cx.persist(&self.id, record, Pending::Metadata);
            return;
        }
        self.protocol_name = self.select_protocol();
        self.transition(GroupState::CompletingRebalance, cx.now);
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let everyone: Vec<JoinedMember> = self
            .members_in_order()
            .into_iter()
            .map(|m| JoinedMember {
                member_id: m.id.clone(),
                metadata: m.metadata(&protocol),
            })
            .collect();
        let mut order: Vec<(u64, String)> = self
            .members
            .values()
            .map(|m| (m.seq, m.id.clone()))
            .collect();
        order.sort();
        for (_, id) in order {
            let leader = self.leader.clone();
            let response = JoinGroupResponse {
                error: None,
                member_id: id.clone(),
                generation: self.generation,
                protocol_type: self.protocol_type.clone(),
                protocol_name: self.protocol_name.clone(),
                members: if leader.as_deref() == Some(id.as_str()) {
                    everyone.clone()
                } else {
                    Vec::new()
                },
                leader_id: leader,
            };
            if let Some(member) = self.members.get_mut(&id) {
                member.is_new = false;
                member.heartbeat(cx.now);
                self.pending_sync.insert(id.clone());
                if let Some(to) = member.awaiting_join.take() {
                    cx.reply(to, Response::Join(response));
                }
            }
        }
        self.sync_deadline = Some(cx.now.saturating_add(self.rebalance_timeout()));
    }

    /// Removes a member (left, expired) and moves the group on: a rebalance from Stable or
    /// CompletingRebalance, a possible completion in PreparingRebalance.
    pub fn remove_member_and_update(&mut self, member_id: &str, cx: &mut Ctx) {
        self.remove(member_id, cx);
        match self.state {
            GroupState::Dead | GroupState::Empty => {}
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance(cx);
            }
            GroupState::PreparingRebalance => self.try_complete_join(cx),
        }
    }

    /// Adds a joining member (waiting for the phase) and starts a rebalance if needed.
    pub fn add_member_and_rebalance(
        &mut self,
        member_id: String,
        req: &JoinGroupRequest,
        reply_to: ReplyTo,
        cx: &mut Ctx,
    ) {
        if self.state == GroupState::PreparingRebalance && self.generation == 0 {
            self.new_member_added = true;
        }
        self.add(Member {
            id: member_id,
            client_id: req.client_id.clone(),
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            protocol_type: req.protocol_type.clone(),
            protocols: req.protocols.clone(),
            assignment: Vec::new(),
            awaiting_join: Some(reply_to),
            awaiting_sync: None,
            is_new: true,
            heartbeat_deadline: cx.now.saturating_add(cx.cfg.new_member_join_timeout_ms),
            seq: 0,
        });
        self.maybe_prepare_rebalance(cx);
    }

    /// Updates a known member's protocols, marks it as rejoined and starts a rebalance if
    /// needed. A JoinGroup it already had waiting is answered `RebalanceInProgress`.
    pub fn update_member_and_rebalance(
        &mut self,
        req: &JoinGroupRequest,
        reply_to: ReplyTo,
        cx: &mut Ctx,
    ) {
        if let Some(member) = self.members.get_mut(&req.member_id) {
            member.protocols = req.protocols.clone();
            member.session_timeout_ms = req.session_timeout_ms;
            member.rebalance_timeout_ms = req.rebalance_timeout_ms;
            if let Some(old) = member.awaiting_join.replace(reply_to) {
                cx.join_error(old, &req.member_id, GroupError::RebalanceInProgress);
            }
        }
        self.maybe_prepare_rebalance(cx);
    }
}

/// The generation after `generation`: one more, or 1 after `i32::MAX` (and after a
/// negative one, which no coordinator writes), so that a formed generation is never 0 or
/// negative, the values that mean "no generation" to members and commits.
fn next_generation(generation: i32) -> i32 {
    generation.checked_add(1).filter(|g| *g > 0).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::next_generation;

    #[test]
    fn generations_go_up_by_one_and_wrap_to_one() {
        assert_eq!(next_generation(0), 1);
        assert_eq!(next_generation(41), 42);
        assert_eq!(next_generation(i32::MAX), 1);
        assert_eq!(next_generation(-5), 1);
        assert_eq!(next_generation(i32::MIN), 1);
    }
}
