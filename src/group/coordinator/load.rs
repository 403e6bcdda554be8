//! Rebuilding the coordinator's groups from what `__consumer_offsets` holds, on broker
//! open (S18), following Kafka's `GroupMetadataManager.loadGroup`: a group with stored
//! members comes back Stable with its generation, protocol, leader, members (their
//! subscription and assignment) and a fresh session for each member, so members that are
//! gone expire and the group rebalances; a group without members comes back Empty with its
//! generation. Committed offsets come back as they were committed.

use crate::group::offsets::{GroupMetadata, OffsetAndMetadata};

use super::group::Group;
use super::member::Member;
use super::requests::GroupProtocol;
use super::state::GroupState;

/// Builds a loaded group at `now`.
pub(super) fn loaded_group(
    group_id: &str,
    now: i64,
    metadata: Option<&GroupMetadata>,
    offsets: impl IntoIterator<Item = ((String, u32), OffsetAndMetadata)>,
) -> Group {
    let mut group = Group::new(group_id, now);
    for (tp, value) in offsets {
        // Loaded offsets rank below any commit appended from now on (log offset 0).
        group.offsets.insert(tp, (value, 0));
    }
    let Some(metadata) = metadata else {
        return group;
    };
    // A negative generation (never written by a coordinator) would read as "no
    // generation" to members and commits: it loads as 0, "none formed yet".
    group.generation = metadata.generation.max(0);
    group.protocol_type =
        (!metadata.protocol_type.is_empty()).then(|| metadata.protocol_type.clone());
    group.state_timestamp = metadata.current_state_timestamp.unwrap_or(now);
    if metadata.members.is_empty() {
        return group;
    }
    group.protocol_name = metadata.protocol.clone();
    let protocol = metadata.protocol.clone().unwrap_or_default();
    for m in &metadata.members {
        let mut member = Member {
            id: m.member_id.clone(),
            client_id: m.client_id.clone(),
            session_timeout_ms: m.session_timeout_ms,
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            protocol_type: metadata.protocol_type.clone(),
            protocols: vec![GroupProtocol::new(protocol.clone(), m.subscription.clone())],
            assignment: m.assignment.clone(),
            awaiting_join: None,
            awaiting_sync: None,
            is_new: false,
            heartbeat_deadline: 0,
            seq: 0,
        };
        member.heartbeat(now);
        group.add(member);
    }
    group.leader = metadata
        .leader
        .clone()
        .filter(|l| group.members.contains_key(l))
        .or_else(|| group.first_member(|_| true));
    group.state = GroupState::Stable;
    group
}
