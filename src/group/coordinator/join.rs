//! JoinGroup: validation, new members (with the KIP-394 member-id round trip), and rejoins
//! of known members in each state.

use std::collections::BTreeMap;

use crate::group::GroupError;

use super::context::Ctx;
use super::group::Group;
use super::requests::JoinGroupRequest;
use super::responses::{JoinGroupResponse, JoinedMember, ReplyTo, Response};
use super::state::GroupState;

/// Handles a JoinGroup whose group id already passed the coordinator checks.
pub(super) fn join(
    groups: &mut BTreeMap<String, Group>,
    req: &JoinGroupRequest,
    reply_to: ReplyTo,
    cx: &mut Ctx,
) {
    let session = req.session_timeout_ms;
    if session < cx.cfg.min_session_timeout_ms || session > cx.cfg.max_session_timeout_ms {
        return cx.join_error(reply_to, &req.member_id, GroupError::InvalidSessionTimeout);
    }
    let unknown = req.member_id.is_empty();
    if !groups.contains_key(&req.group_id) {
        if !unknown {
            return cx.join_error(reply_to, &req.member_id, GroupError::UnknownMemberId);
        }
        groups.insert(req.group_id.clone(), Group::new(&req.group_id, cx.now));
    }
    let Some(group) = groups.get_mut(&req.group_id) else {
        return;
    };
    if !group.accepts(&req.member_id, cx.cfg.group_max_size) {
        group.remove(&req.member_id, cx);
        cx.join_error(reply_to, "", GroupError::GroupMaxSizeReached);
    } else if unknown {
        new_member_join(group, req, reply_to, cx);
    } else {
        current_member_join(group, req, reply_to, cx);
    }
    if group.state == GroupState::PreparingRebalance {
        group.try_complete_join(cx);
    }
    if group.is_vacant() {
        groups.remove(&req.group_id);
    }
}

fn new_member_join(group: &mut Group, req: &JoinGroupRequest, reply_to: ReplyTo, cx: &mut Ctx) {
    if group.state == GroupState::Dead {
        return cx.join_error(reply_to, "", GroupError::CoordinatorNotAvailable);
    }
    if !group.supports_protocols(&req.protocol_type, &req.protocols) {
        return cx.join_error(reply_to, "", GroupError::InconsistentGroupProtocol);
    }
    // Ids repeat when a coordinator reuses a seed (a restart without its own
    // `CoordinatorConfig::instance`): never hand out one this group already knows.
    let mut member_id = cx.ids.next(&req.client_id);
    while group.members.contains_key(&member_id) || group.pending_members.contains_key(&member_id) {
        member_id = cx.ids.next(&req.client_id);
    }
    if req.require_known_member_id {
        let expiry = cx.now.saturating_add(i64::from(req.session_timeout_ms));
        group.pending_members.insert(member_id.clone(), expiry);
        cx.join_error(reply_to, &member_id, GroupError::MemberIdRequired);
    } else {
        group.add_member_and_rebalance(member_id, req, reply_to, cx);
    }
}

fn current_member_join(group: &mut Group, req: &JoinGroupRequest, reply_to: ReplyTo, cx: &mut Ctx) {
    let id = req.member_id.as_str();
    if group.state == GroupState::Dead {
        return cx.join_error(reply_to, id, GroupError::CoordinatorNotAvailable);
    }
    if !group.supports_protocols(&req.protocol_type, &req.protocols) {
        return cx.join_error(reply_to, id, GroupError::InconsistentGroupProtocol);
    }
    if group.pending_members.contains_key(id) {
        return group.add_member_and_rebalance(id.to_string(), req, reply_to, cx);
    }
    let Some(member) = group.members.get(id) else {
        return cx.join_error(reply_to, id, GroupError::UnknownMemberId);
    };
    let unchanged = member.protocols == req.protocols;
    let is_leader = group.leader.as_deref() == Some(id);
    match group.state {
        GroupState::PreparingRebalance => group.update_member_and_rebalance(req, reply_to, cx),
        // Same metadata: it probably lost the JoinGroup answer; send it again.
        GroupState::CompletingRebalance if unchanged => {
            let response = current_generation(group, id, is_leader);
            cx.reply(reply_to, Response::Join(response));
        }
        // A follower with unchanged metadata just gets the current generation; the leader
        // (who may have seen topic changes) or a changed member forces a rebalance.
        GroupState::Stable if unchanged && !is_leader => {
            let response = current_generation(group, id, false);
            cx.reply(reply_to, Response::Join(response));
        }
        GroupState::CompletingRebalance | GroupState::Stable => {
            group.update_member_and_rebalance(req, reply_to, cx);
        }
        GroupState::Empty | GroupState::Dead => {
            cx.join_error(reply_to, id, GroupError::UnknownMemberId);
        }
    }
}

/// The JoinGroup answer for the current generation, with everyone's metadata for the leader.
fn current_generation(group: &Group, member_id: &str, with_members: bool) -> JoinGroupResponse {
    let protocol = group.protocol_name.clone().unwrap_or_default();
    JoinGroupResponse {
        error: None,
        member_id: member_id.to_string(),
        generation: group.generation,
        protocol_type: group.protocol_type.clone(),
        protocol_name: group.protocol_name.clone(),
        leader_id: group.leader.clone(),
        members: if with_members {
            group
                .members_in_order()
                .into_iter()
                .map(|m| JoinedMember {
                    member_id: m.id.clone(),
                    metadata: m.metadata(&protocol),
                })
                .collect()
        } else {
            Vec::new()
        },
    }
}
