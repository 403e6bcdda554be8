//! Removing the committed offsets of a deleted topic from every group (Kafka's
//! `GroupCoordinator.onPartitionsDeleted` → `GroupMetadataManager.cleanupGroupMetadata`):
//! each group drops the topic's offsets from its cache and asks for offset tombstones,
//! which also cover its commits of the topic still being appended (those are in the log
//! before them); the cache is put back if their append fails, as a failed group deletion
//! keeps its offsets. An Empty group left without offsets (and committing nothing else)
//! turns Dead and its metadata is tombstoned with them — every such group, as Kafka's
//! cleanup does, not only those that held offsets of the topic (Kafka skips the metadata
//! tombstone of a generation-0 group; we always write it, so no stored metadata can bring
//! the group back).

use std::collections::BTreeMap;

use super::context::Ctx;
use super::group::Group;
use super::persist::{Pending, PersistRecord};
use super::state::GroupState;

/// Removes `topic`'s offsets from every group of `groups` (their timers already fired) and
/// asks for the tombstones, one append per group that has any. Returns how many offsets
/// were removed from the caches.
pub(super) fn delete_topic_offsets(
    groups: &mut BTreeMap<String, Group>,
    topic: &str,
    cx: &mut Ctx,
) -> usize {
    let mut removed_total = 0;
    for (group_id, group) in groups.iter_mut() {
        let keys: Vec<_> = group
            .offsets
            .keys()
            .filter(|(t, _)| t == topic)
            .cloned()
            .collect();
        let removed: Vec<_> = keys
            .into_iter()
            .filter_map(|tp| group.offsets.remove(&tp).map(|v| (tp, v)))
            .collect();
        // Commits of the topic still being appended are in the log before the tombstones:
        // those cover them too, and they install nothing once the tombstones are in.
        let (in_flight, mut tombstoned) = cx.persists.commits_in_flight(group_id, Some(topic));
        tombstoned.extend(removed.iter().map(|(tp, _)| tp.clone()));
        removed_total += removed.len();
        let (_, committing) = cx.persists.commits_in_flight(group_id, None);
        let dies = group.state == GroupState::Empty
            && group.pending_members.is_empty()
            && group.offsets.is_empty()
            && committing.iter().all(|(t, _)| t == topic);
        if !dies && tombstoned.is_empty() {
            continue;
        }
        let state_timestamp = group.state_timestamp;
        let offsets = tombstoned.iter().cloned().collect();
        let record = if dies {
            group.transition(GroupState::Dead, cx.now);
            PersistRecord::DeleteGroup { offsets }
        } else {
            PersistRecord::DeleteOffsets(offsets)
        };
        let pending = Pending::TopicDeleted {
            group_id: group_id.clone(),
            dead: dies.then_some(state_timestamp),
            removed,
            tombstoned,
            in_flight,
        };
        cx.persist(group_id, record, pending);
    }
    removed_total
}
