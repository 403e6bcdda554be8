//! Heartbeat and LeaveGroup.

use crate::group::GroupError;

use super::context::Ctx;
use super::group::Group;
use super::requests::{HeartbeatRequest, LeaveGroupRequest};
use super::responses::LeaveGroupResponse;
use super::state::GroupState;

/// The heartbeat answer; a known member of the current generation restarts its session.
pub(super) fn heartbeat(
    group: Option<&mut Group>,
    req: &HeartbeatRequest,
    cx: &mut Ctx,
) -> Result<(), GroupError> {
    let group = group.ok_or(GroupError::UnknownMemberId)?;
    if group.state == GroupState::Dead {
        return Err(GroupError::CoordinatorNotAvailable);
    }
    let member = group
        .members
        .get_mut(&req.member_id)
        .ok_or(GroupError::UnknownMemberId)?;
    if req.generation != group.generation {
        return Err(GroupError::IllegalGeneration);
    }
    match group.state {
        GroupState::Empty => Err(GroupError::UnknownMemberId),
        GroupState::Dead => Err(GroupError::CoordinatorNotAvailable),
        GroupState::CompletingRebalance | GroupState::Stable => {
            member.heartbeat(cx.now);
            Ok(())
        }
        GroupState::PreparingRebalance => {
            member.heartbeat(cx.now);
            Err(GroupError::RebalanceInProgress)
        }
    }
}

/// Removes each leaving member (or outstanding member id) at once.
pub(super) fn leave(
    group: Option<&mut Group>,
    req: &LeaveGroupRequest,
    cx: &mut Ctx,
) -> LeaveGroupResponse {
    let Some(group) = group else {
        return LeaveGroupResponse {
            error: None,
            members: req
                .member_ids
                .iter()
                .map(|id| (id.clone(), Err(GroupError::UnknownMemberId)))
                .collect(),
        };
    };
    if group.state == GroupState::Dead {
        return LeaveGroupResponse {
            error: Some(GroupError::CoordinatorNotAvailable),
            members: Vec::new(),
        };
    }
    let mut members = Vec::new();
    for id in &req.member_ids {
        let result = if !id.is_empty() && group.pending_members.remove(id).is_some() {
            if group.state == GroupState::PreparingRebalance {
                group.try_complete_join(cx);
            }
            Ok(())
        } else if group.members.contains_key(id) {
            group.remove_member_and_update(id, cx);
            Ok(())
        } else {
            Err(GroupError::UnknownMemberId)
        };
        members.push((id.clone(), result));
    }
    LeaveGroupResponse {
        error: None,
        members,
    }
}
