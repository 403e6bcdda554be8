//! OffsetCommit validation (member, generation and state checks), installing commits once
//! their append succeeded, and OffsetFetch from the cache.

use std::collections::{BTreeMap, BTreeSet};

use crate::group::GroupError;
use crate::group::assignor::TopicPartition;
use crate::group::offsets::OffsetAndMetadata;

use super::context::Ctx;
use super::group::Group;
use super::persist::{AppendError, Pending, PersistRecord};
use super::requests::OffsetCommitRequest;
use super::responses::{OffsetCommitResponse, ReplyTo, Response};
use super::state::GroupState;

/// Handles an OffsetCommit whose group id already passed the coordinator checks: answers
/// at once when nothing is to be stored, otherwise asks for the append.
pub(super) fn commit(
    groups: &mut BTreeMap<String, Group>,
    req: OffsetCommitRequest,
    reply_to: ReplyTo,
    cx: &mut Ctx,
) {
    let fail_all = |cx: &mut Ctx, error: GroupError| {
        let partitions = req
            .offsets
            .iter()
            .map(|(tp, _)| (tp.clone(), Err(error)))
            .collect();
        cx.reply(
            reply_to,
            Response::Commit(OffsetCommitResponse { partitions }),
        );
    };
    if !groups.contains_key(&req.group_id) {
        if req.generation >= 0 {
            return fail_all(cx, GroupError::IllegalGeneration);
        }
        // A commit outside group management creates an Empty ("simple") group.
        groups.insert(req.group_id.clone(), Group::new(&req.group_id, cx.now));
    }
    let Some(group) = groups.get_mut(&req.group_id) else {
        return;
    };
    if let Err(error) = validate(group, &req) {
        fail_all(cx, error);
        if group.is_vacant() {
            groups.remove(&req.group_id);
        }
        return;
    }
    if let Some(member) = group.members.get_mut(&req.member_id) {
        member.heartbeat(cx.now);
    }
    let mut stored = Vec::new();
    let mut refused = Vec::new();
    for (tp, commit) in req.offsets {
        if commit.metadata.len() > cx.cfg.offset_metadata_max_bytes {
            refused.push((tp, GroupError::OffsetMetadataTooLarge));
            continue;
        }
        let value = OffsetAndMetadata {
            offset: commit.offset,
            leader_epoch: commit.leader_epoch,
            metadata: commit.metadata,
            commit_timestamp: cx.now,
            expire_timestamp: req.retention_ms.map(|r| cx.now.saturating_add(r)),
        };
        stored.push((tp, value));
    }
    if stored.is_empty() {
        let partitions = refused.into_iter().map(|(tp, e)| (tp, Err(e))).collect();
        cx.reply(
            reply_to,
            Response::Commit(OffsetCommitResponse { partitions }),
        );
        if group.is_vacant() {
            groups.remove(&req.group_id);
        }
        return;
    }
    let record = PersistRecord::Offsets(stored.clone());
    let pending = Pending::Commit {
        group_id: group.id.clone(),
        reply_to,
        stored,
        refused,
        superseded: BTreeSet::new(),
    };
    cx.persist(&group.id, record, pending);
}

/// Kafka's classic commit checks, in order: Dead → `CoordinatorNotAvailable`; generation -1
/// with no member on an Empty group → accepted; a member or generation given → it must be a
/// member (`UnknownMemberId`) of this generation (`IllegalGeneration`); no member on a
/// non-empty group → `UnknownMemberId`; CompletingRebalance → `RebalanceInProgress`.
/// PreparingRebalance accepts commits (members learn of the rebalance from heartbeats).
fn validate(group: &Group, req: &OffsetCommitRequest) -> Result<(), GroupError> {
    if group.state == GroupState::Dead {
        return Err(GroupError::CoordinatorNotAvailable);
    }
    if req.generation < 0 && group.state == GroupState::Empty {
        return Ok(());
    }
    if req.generation >= 0 || !req.member_id.is_empty() {
        if !group.members.contains_key(&req.member_id) {
            return Err(GroupError::UnknownMemberId);
        }
        if req.generation != group.generation {
            return Err(GroupError::IllegalGeneration);
        }
    } else if group.state != GroupState::Empty {
        return Err(GroupError::UnknownMemberId);
    }
    if group.state == GroupState::CompletingRebalance {
        return Err(GroupError::RebalanceInProgress);
    }
    Ok(())
}

/// A commit's append completed: install the values (unless a later record of the log
/// already holds the partition, or a later tombstone already deleted it) and answer.
pub(super) fn commit_stored(
    mut group: Option<&mut Group>,
    reply_to: ReplyTo,
    stored: Vec<(TopicPartition, OffsetAndMetadata)>,
    refused: Vec<(TopicPartition, GroupError)>,
    superseded: &BTreeSet<TopicPartition>,
    result: Result<u64, AppendError>,
    cx: &mut Ctx,
) {
    let mut partitions = Vec::new();
    for (tp, value) in stored {
        match result {
            Ok(log_offset) => {
                if let Some(group) = group.as_deref_mut()
                    && !superseded.contains(&tp)
                {
                    // `<=`: a partition listed twice in one request shares the batch's log
                    // offset, and the later entry wins, as it does when the log is replayed.
                    let newer = group
                        .offsets
                        .get(&tp)
                        .is_none_or(|(_, at)| *at <= log_offset);
                    if newer {
                        group.offsets.insert(tp.clone(), (value, log_offset));
                    }
                }
                partitions.push((tp, Ok(())));
            }
            Err(error) => partitions.push((tp, Err(error.commit_error()))),
        }
    }
    partitions.extend(refused.into_iter().map(|(tp, e)| (tp, Err(e))));
    cx.reply(
        reply_to,
        Response::Commit(OffsetCommitResponse { partitions }),
    );
}

/// The committed offsets of `partitions` (`None` where nothing was committed), or of every
/// committed partition when `partitions` is `None`. A Dead group (its deletion being
/// appended) has none, as in Kafka; they are back if the deletion fails.
pub(super) fn fetch(
    group: Option<&Group>,
    partitions: Option<&[TopicPartition]>,
) -> Vec<(TopicPartition, Option<OffsetAndMetadata>)> {
    let group = group.filter(|g| g.state != GroupState::Dead);
    let lookup = |tp: &TopicPartition| {
        group
            .and_then(|g| g.offsets.get(tp))
            .map(|(v, _)| v.clone())
    };
    match partitions {
        Some(list) => list.iter().map(|tp| (tp.clone(), lookup(tp))).collect(),
        None => group
            .map(|g| {
                g.offsets
                    .iter()
                    .map(|(tp, (v, _))| (tp.clone(), Some(v.clone())))
                    .collect()
            })
            .unwrap_or_default(),
    }
}
