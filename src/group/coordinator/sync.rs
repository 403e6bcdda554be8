//! SyncGroup, the end of the sync phase (the leader's assignment is stored, then handed
//! out), and the removal of members that never sync.

use crate::group::GroupError;

use super::context::Ctx;
use super::group::Group;
use super::persist::{AppendError, Pending, PersistRecord};
use super::requests::SyncGroupRequest;
use super::responses::{ReplyTo, Response, SyncGroupResponse};
use super::state::GroupState;

/// Handles a SyncGroup whose group id already passed the coordinator checks.
pub(super) fn sync(
    group: Option<&mut Group>,
    req: SyncGroupRequest,
    reply_to: ReplyTo,
    cx: &mut Ctx,
) {
    let Some(group) = group else {
        return cx.sync_error(reply_to, GroupError::UnknownMemberId);
    };
    if let Err(error) = validate(group, &req) {
        return cx.sync_error(reply_to, error);
    }
    let id = req.member_id.as_str();
    match group.state {
        GroupState::Empty => cx.sync_error(reply_to, GroupError::UnknownMemberId),
        GroupState::PreparingRebalance => cx.sync_error(reply_to, GroupError::RebalanceInProgress),
        GroupState::Dead => cx.sync_error(reply_to, GroupError::CoordinatorNotAvailable),
        GroupState::CompletingRebalance => {
            let member = group.members.get_mut(id);
            if let Some(old) = member.and_then(|m| m.awaiting_sync.replace(reply_to)) {
                cx.sync_error(old, GroupError::RebalanceInProgress);
            }
            mark_synced(group, id);
            if group.leader.as_deref() == Some(id) {
                let mut assignments = req.assignments;
                assignments.retain(|member, _| group.members.contains_key(member));
                for member in group.members.keys() {
                    assignments.entry(member.clone()).or_default();
                }
                let record = PersistRecord::Group(group.snapshot(Some(&assignments)));
                let pending = Pending::Assignment {
                    group_id: group.id.clone(),
                    generation: group.generation,
                    assignments,
                };
                cx.persist(&group.id, record, pending);
            }
        }
        GroupState::Stable => {
            mark_synced(group, id);
            if let Some(member) = group.members.get_mut(id) {
                member.heartbeat(cx.now);
                let response = SyncGroupResponse {
                    error: None,
                    protocol_type: group.protocol_type.clone(),
                    protocol_name: group.protocol_name.clone(),
                    assignment: member.assignment.clone(),
                };
                cx.reply(reply_to, Response::Sync(response));
            }
        }
    }
}

fn validate(group: &Group, req: &SyncGroupRequest) -> Result<(), GroupError> {
    if group.state == GroupState::Dead {
        return Err(GroupError::CoordinatorNotAvailable);
    }
    if !group.members.contains_key(&req.member_id) {
        return Err(GroupError::UnknownMemberId);
    }
    if req.generation != group.generation {
        return Err(GroupError::IllegalGeneration);
    }
    let mismatch = |given: &Option<String>, ours: &Option<String>| {
        given.as_ref().is_some_and(|g| Some(g) != ours.as_ref())
    };
    if mismatch(&req.protocol_type, &group.protocol_type)
        || mismatch(&req.protocol_name, &group.protocol_name)
    {
        return Err(GroupError::InconsistentGroupProtocol);
    }
    Ok(())
}

fn mark_synced(group: &mut Group, member_id: &str) {
    group.pending_sync.remove(member_id);
    if group.pending_sync.is_empty() {
        group.sync_deadline = None;
    }
}

/// The leader's assignment of `generation` was appended (or not): hand it out and turn
/// Stable, or answer the waiting members with the error and rebalance. Nothing happens if
/// the group moved on meanwhile.
pub(super) fn assignment_stored(
    group: &mut Group,
    generation: i32,
    assignments: std::collections::BTreeMap<String, Vec<u8>>,
    result: Result<u64, AppendError>,
    cx: &mut Ctx,
) {
    if group.state != GroupState::CompletingRebalance || group.generation != generation {
        return;
    }
    if let Err(error) = result {
        group.reset_and_propagate(error.group_error(), cx);
        group.maybe_prepare_rebalance(cx);
        return;
    }
    for (id, member) in &mut group.members {
        member.assignment = assignments.get(id).cloned().unwrap_or_default();
        if let Some(to) = member.awaiting_sync.take() {
            let response = SyncGroupResponse {
                error: None,
                protocol_type: group.protocol_type.clone(),
                protocol_name: group.protocol_name.clone(),
                assignment: member.assignment.clone(),
            };
            cx.reply(to, Response::Sync(response));
        }
    }
    group.transition(GroupState::Stable, cx.now);
}

/// The rebalance timeout passed with members that never sent SyncGroup: remove them and
/// rebalance (a member waiting for a leader that never synced gets `RebalanceInProgress`).
pub(super) fn sync_expired(group: &mut Group, cx: &mut Ctx) {
    group.sync_deadline = None;
    let in_sync_phase = matches!(
        group.state,
        GroupState::CompletingRebalance | GroupState::Stable
    );
    if !in_sync_phase || group.pending_sync.is_empty() {
        return;
    }
    let missing: Vec<String> = group.pending_sync.iter().cloned().collect();
    for id in missing {
        group.remove(&id, cx);
    }
    group.prepare_rebalance(cx);
}
