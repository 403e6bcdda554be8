//! The in-memory view of `__consumer_offsets`: per group, its metadata and committed
//! offsets. It only ever changes by applying records that are already in the log, in log
//! order, so replaying the log rebuilds it exactly.

use std::collections::{BTreeMap, HashMap};

use super::commit_value::OffsetAndMetadata;
use super::group_value::GroupMetadata;
use super::record::OffsetsRecord;

/// Every group's stored state.
#[derive(Debug, Default)]
pub(super) struct Cache {
    groups: HashMap<String, GroupEntry>,
}

/// One group's metadata and committed offsets (topic → partition → offset).
#[derive(Debug, Default, Clone)]
pub(super) struct GroupEntry {
    pub(super) metadata: Option<GroupMetadata>,
    pub(super) offsets: BTreeMap<String, BTreeMap<u32, OffsetAndMetadata>>,
}

impl GroupEntry {
    /// How many partitions have a committed offset.
    pub(super) fn offset_count(&self) -> usize {
        self.offsets.values().map(BTreeMap::len).sum()
    }

    /// The committed offset of `topic`/`partition`.
    pub(super) fn offset(&self, topic: &str, partition: u32) -> Option<&OffsetAndMetadata> {
        self.offsets.get(topic)?.get(&partition)
    }

    /// Every committed offset as `(topic, partition, offset)`, in order.
    pub(super) fn iter_offsets(&self) -> impl Iterator<Item = (&str, u32, &OffsetAndMetadata)> {
        self.offsets.iter().flat_map(|(topic, partitions)| {
            partitions.iter().map(move |(p, o)| (topic.as_str(), *p, o))
        })
    }

    fn is_empty(&self) -> bool {
        self.metadata.is_none() && self.offsets.is_empty()
    }
}

impl Cache {
    /// Applies one record: a value replaces what its key held, a tombstone removes it.
    pub(super) fn apply(&mut self, record: OffsetsRecord) {
        let group = match record {
            OffsetsRecord::OffsetCommit {
                group,
                topic,
                partition,
                value: Some(value),
            } => {
                let entry = self.groups.entry(group).or_default();
                entry
                    .offsets
                    .entry(topic)
                    .or_default()
                    .insert(partition, value);
                return;
            }
            OffsetsRecord::GroupMetadata {
                group,
                value: Some(value),
            } => {
                self.groups.entry(group).or_default().metadata = Some(value);
                return;
            }
            OffsetsRecord::OffsetCommit {
                group,
                topic,
                partition,
                value: None,
            } => {
                if let Some(entry) = self.groups.get_mut(&group)
                    && let Some(partitions) = entry.offsets.get_mut(&topic)
                {
                    partitions.remove(&partition);
                    if partitions.is_empty() {
                        entry.offsets.remove(&topic);
                    }
                }
                group
            }
            OffsetsRecord::GroupMetadata { group, value: None } => {
                if let Some(entry) = self.groups.get_mut(&group) {
                    entry.metadata = None;
                }
                group
            }
        };
        if self.groups.get(&group).is_some_and(GroupEntry::is_empty) {
            self.groups.remove(&group);
        }
    }

    /// The group's state, if it has metadata or offsets.
    pub(super) fn group(&self, group: &str) -> Option<&GroupEntry> {
        self.groups.get(group)
    }

    /// Every group with metadata or offsets, unordered.
    pub(super) fn group_ids(&self) -> impl Iterator<Item = &str> {
        self.groups.keys().map(String::as_str)
    }

    /// Keeps only the groups whose id passes `keep`.
    pub(super) fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.groups.retain(|group, _| keep(group));
    }

    /// Adds `other`'s groups (replacing any held under the same id).
    pub(super) fn merge(&mut self, other: Cache) {
        self.groups.extend(other.groups);
    }

    /// How many groups and committed offsets the cache holds.
    pub(super) fn counts(&self) -> (usize, usize) {
        let offsets = self.groups.values().map(GroupEntry::offset_count).sum();
        (self.groups.len(), offsets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(group: &str, topic: &str, partition: u32, offset: Option<u64>) -> OffsetsRecord {
        OffsetsRecord::OffsetCommit {
            group: group.into(),
            topic: topic.into(),
            partition,
            value: offset.map(|o| OffsetAndMetadata::new(o, 0)),
        }
    }

    #[test]
    fn later_records_win_and_tombstones_remove() {
        let mut cache = Cache::default();
        cache.apply(commit("g", "t", 0, Some(1)));
        cache.apply(commit("g", "t", 0, Some(5)));
        cache.apply(commit("g", "t", 1, Some(7)));
        let entry = cache.group("g").unwrap();
        assert_eq!(entry.offset("t", 0).unwrap().offset, 5);
        assert_eq!(entry.offset_count(), 2);
        cache.apply(commit("g", "t", 0, None));
        assert!(cache.group("g").unwrap().offset("t", 0).is_none());
        cache.apply(commit("g", "t", 1, None));
        assert!(
            cache.group("g").is_none(),
            "a group with nothing left is gone"
        );
        cache.apply(commit("other", "t", 0, None)); // a tombstone for nothing is harmless
        assert_eq!(cache.counts(), (0, 0));
    }

    #[test]
    fn group_metadata_and_its_tombstone() {
        let mut cache = Cache::default();
        let metadata = GroupMetadata {
            protocol_type: "consumer".into(),
            generation: 3,
            ..GroupMetadata::default()
        };
        cache.apply(OffsetsRecord::GroupMetadata {
            group: "g".into(),
            value: Some(metadata.clone()),
        });
        cache.apply(commit("g", "t", 0, Some(1)));
        assert_eq!(cache.group("g").unwrap().metadata, Some(metadata));
        cache.apply(OffsetsRecord::GroupMetadata {
            group: "g".into(),
            value: None,
        });
        assert_eq!(cache.counts(), (1, 1), "the offsets stay");
        assert!(cache.group("g").unwrap().metadata.is_none());
    }
}
