//! [`OffsetsStore`]: committed offsets and group metadata kept as records in the broker's
//! compacted internal topic `__consumer_offsets`, with an in-memory cache in front.
//!
//! A group's records all go to partition [`partition_for_group`]. Every write validates
//! its input, encodes its records, appends them as one batch, and only after the append
//! succeeded applies them to the cache — under a per-partition lock, so the cache follows
//! the log's order. [`OffsetsStore::load`] rebuilds the cache from the log alone (S18).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard, RwLock};

use super::cache::Cache;
use super::config::{CONSUMER_OFFSETS_TOPIC, MAX_GROUP_ID_BYTES, OffsetsConfig};
use super::error::RecordFormatError;
use super::expiry::{GroupActivity, expired_offsets};
use super::hash::partition_for_group;
use super::log::OffsetsLog;
use super::{GroupMetadata, OffsetAndMetadata, OffsetsRecord};
use crate::broker::Broker;
use crate::error::{Error, Result};
use crate::group::coordinator::{PersistRecord, PersistRequest};
use crate::log::Partition;
use crate::record::Record;
use crate::topic::{Topic, validate_topic_name};

/// Committed offsets and group metadata, stored in `__consumer_offsets` and cached in
/// memory. `Send + Sync`: share it with an `Arc`. Writes to groups on different partitions
/// proceed in parallel.
///
/// ```
/// use streamlog::{Broker, BrokerConfig, OffsetAndMetadata, OffsetsConfig, OffsetsStore};
/// # fn main() -> streamlog::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let config = BrokerConfig::default().background_threads(false);
/// let broker = Broker::open(dir.path(), config.clone())?;
/// let store = OffsetsStore::open(&broker, OffsetsConfig::default().num_partitions(5))?;
/// store.commit("billing", [("orders", 0, OffsetAndMetadata::new(42, 1_000))])?;
/// assert_eq!(store.fetch("billing", "orders", 0).map(|o| o.offset), Some(42));
/// assert_eq!(store.fetch("billing", "orders", 1), None);
/// drop(store);
/// broker.close()?;
///
/// // The offsets live in the log: a new store on the reopened broker replays them.
/// let broker = Broker::open(dir.path(), config)?;
/// let store = OffsetsStore::open(&broker, OffsetsConfig::default())?;
/// assert_eq!(store.partition_count(), 5); // the existing topic's count wins
/// assert_eq!(store.fetch("billing", "orders", 0).map(|o| o.offset), Some(42));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct OffsetsStore {
    /// The broker's topic, for a store opened on a [`Broker`] (a cluster node's store has
    /// none: it appends through the node's replica manager).
    topic: Option<Arc<Topic>>,
    log: Arc<dyn OffsetsLog>,
    config: OffsetsConfig,
    /// The topic's partition count when the store opened: groups are placed by it.
    partitions: u32,
    cache: RwLock<Cache>,
    /// One lock per partition, held from reading the cache to applying the appended
    /// records, so that the cache changes in log order.
    locks: Vec<Mutex<()>>,
}

/// What [`OffsetsStore::load`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Records replayed (values and tombstones).
    pub records: u64,
    /// Records skipped: without a key, or with a key version this library does not know
    /// (newer Kafka record types), which Kafka's loader skips too.
    pub skipped: u64,
    /// Groups with metadata or offsets afterwards.
    pub groups: usize,
    /// Committed offsets afterwards.
    pub offsets: usize,
}

/// What [`OffsetsStore::expire`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpiryReport {
    /// `(group, topic, partition)` of every offset expired (a tombstone was written).
    pub offsets: Vec<(String, String, u32)>,
    /// Empty groups left without offsets whose metadata was deleted too, as Kafka does;
    /// the coordinator should consider them Dead.
    pub groups: Vec<String>,
}

/// Checks a group id: not empty, at most [`MAX_GROUP_ID_BYTES`] bytes;
/// [`Error::InvalidGroupId`] otherwise.
pub fn validate_group_id(group: &str) -> Result<()> {
    let reason = if group.is_empty() {
        "it is empty".to_owned()
    } else if group.len() > MAX_GROUP_ID_BYTES {
        format!(
            "it is {} bytes, over the limit of {MAX_GROUP_ID_BYTES}",
            group.len()
        )
    } else {
        return Ok(());
    };
    Err(Error::InvalidGroupId {
        group: group.to_owned(),
        reason,
    })
}

impl OffsetsStore {
    /// Opens the store on `broker`: creates `__consumer_offsets` (compacted, with
    /// `config.num_partitions` partitions) when it does not exist, then [`load`]s it.
    /// An existing topic keeps its partition count. Errors: [`Error::InvalidConfig`],
    /// whatever creating or reading the topic reports, and
    /// [`Error::InvalidOffsetsRecord`] for a record that does not decode.
    ///
    /// [`load`]: OffsetsStore::load
    pub fn open(broker: &Broker, config: OffsetsConfig) -> Result<Self> {
        config.validate()?;
        let topic = match broker.topic(CONSUMER_OFFSETS_TOPIC) {
            Ok(topic) => topic,
            Err(Error::UnknownTopic { .. }) => {
                match broker.create_internal_topic(CONSUMER_OFFSETS_TOPIC, config.topic_config()) {
                    Err(Error::TopicExists { .. }) => broker.topic(CONSUMER_OFFSETS_TOPIC)?,
                    other => other?,
                }
            }
            Err(e) => return Err(e),
        };
        let partitions = topic.partition_count().max(1);
        let mut store = Self::over(Arc::new(topic.clone()), partitions, config);
        store.topic = Some(topic);
        store.load()?;
        Ok(store)
    }

    /// A store over `log` with `partitions` partitions and nothing loaded: a cluster node
    /// replays only the partitions it leads ([`OffsetsStore::load_partition`]).
    pub(crate) fn over(log: Arc<dyn OffsetsLog>, partitions: u32, config: OffsetsConfig) -> Self {
        let partitions = partitions.max(1);
        Self {
            topic: None,
            log,
            config,
            partitions,
            cache: RwLock::new(Cache::default()),
            locks: (0..partitions).map(|_| Mutex::new(())).collect(),
        }
    }

    /// A store that reads the given replicas of `__consumer_offsets` partitions and
    /// writes nowhere, with nothing loaded: for a driver that executes the coordinator's
    /// [`PersistRequest`]s itself without blocking (e.g. as `acks=all` produces built
    /// with [`OffsetsStore::persist_records`], completed later from the produce answer)
    /// and loads a partition it came to lead with [`OffsetsStore::load_partition`] and
    /// [`crate::GroupCoordinator::load_partition`]. Its writes fail with
    /// [`Error::LeaderNotAvailable`].
    pub fn read_only(
        partitions: u32,
        config: OffsetsConfig,
        logs: BTreeMap<u32, Arc<Partition>>,
    ) -> Self {
        Self::over(Arc::new(ReadOnlyLogs(logs)), partitions, config)
    }

    /// The records [`OffsetsStore::persist`] appends for `request`, as one batch, in
    /// order: what a non-blocking driver produces to partition
    /// `request.offsets_partition` (then reports the offset of the last one with
    /// [`crate::GroupCoordinator::append_completed`]). Errors as for `persist`; may be
    /// empty.
    pub fn persist_records(request: &PersistRequest) -> Result<Vec<Record>> {
        validate_group_id(&request.group_id)?;
        Ok(build_persist(request)?
            .iter()
            .map(OffsetsRecord::to_record)
            .collect::<Result<Vec<Record>, RecordFormatError>>()?)
    }

    /// The settings the store was opened with.
    pub fn config(&self) -> &OffsetsConfig {
        &self.config
    }

    /// The `__consumer_offsets` topic of the broker the store was opened on (`None` for
    /// a cluster node's store, whose partitions are replicas).
    pub fn topic(&self) -> Option<&Arc<Topic>> {
        self.topic.as_ref()
    }

    /// How many partitions `__consumer_offsets` has (groups are spread over them).
    pub fn partition_count(&self) -> u32 {
        self.partitions
    }

    /// The partition holding `group`'s records: [`partition_for_group`].
    pub fn partition_for(&self, group: &str) -> u32 {
        partition_for_group(group, self.partitions)
    }

    /// Rebuilds the cache by replaying every partition from its log start, in offset
    /// order: later records replace earlier ones with the same key, tombstones remove them.
    /// Writes wait meanwhile. On error the cache is left as it was.
    pub fn load(&self) -> Result<LoadReport> {
        let _all: Vec<MutexGuard<'_, ()>> = self.locks.iter().map(|l| l.lock()).collect();
        let mut cache = Cache::default();
        let mut report = LoadReport::default();
        for index in 0..self.partitions {
            self.replay(index, &mut cache, &mut report)?;
        }
        (report.groups, report.offsets) = cache.counts();
        *self.cache.write() = cache;
        Ok(report)
    }

    /// Replays one partition (a cluster node that became its leader): its groups in the
    /// cache are replaced by what its log holds up to the high watermark; other
    /// partitions' groups are untouched. On error the cache is left as it was.
    pub fn load_partition(&self, partition: u32) -> Result<LoadReport> {
        let _lock = self.lock_checked(partition)?;
        let mut loaded = Cache::default();
        let mut report = LoadReport::default();
        self.replay(partition, &mut loaded, &mut report)?;
        (report.groups, report.offsets) = loaded.counts();
        let mut cache = self.cache.write();
        cache.retain(|group| partition_for_group(group, self.partitions) != partition);
        cache.merge(loaded);
        Ok(report)
    }

    /// Forgets the groups of `partition` (a cluster node that stopped leading it).
    pub fn unload_partition(&self, partition: u32) {
        let Ok(_lock) = self.lock_checked(partition) else {
            return;
        };
        let mut cache = self.cache.write();
        cache.retain(|group| partition_for_group(group, self.partitions) != partition);
    }

    /// Applies partition `index`'s records, from its log start to its high watermark.
    fn replay(&self, index: u32, cache: &mut Cache, report: &mut LoadReport) -> Result<()> {
        let partition = self.log.partition(index)?;
        for record in partition.read_from(partition.log_start_offset())? {
            let record = record?;
            let Some(key) = record.key() else {
                report.skipped += 1;
                continue;
            };
            match OffsetsRecord::decode(key, record.value()) {
                Ok(decoded) => {
                    cache.apply(decoded);
                    report.records += 1;
                }
                Err(RecordFormatError::UnknownKeyVersion { .. }) => report.skipped += 1,
                Err(source) => {
                    return Err(Error::InvalidOffsetsRecord {
                        partition: index,
                        offset: record.offset(),
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    fn lock_checked(&self, partition: u32) -> Result<MutexGuard<'_, ()>> {
        match self.locks.get(partition as usize) {
            Some(lock) => Ok(lock.lock()),
            None => Err(Error::UnknownPartition {
                topic: CONSUMER_OFFSETS_TOPIC.to_owned(),
                partition,
                partitions: self.partitions,
            }),
        }
    }

    /// Commits offsets of `group`: one record per `(topic, partition, offset)`, appended as
    /// one batch; the cache changes only once the append succeeded. Nothing is written
    /// when any input is invalid: [`Error::InvalidGroupId`], [`Error::InvalidTopicName`],
    /// [`Error::OffsetMetadataTooLarge`] (over `offset.metadata.max.bytes`), or
    /// [`Error::OffsetsRecordFormat`] (an offset above `i64::MAX`, a partition above
    /// `i32::MAX`). An empty list writes nothing. Within one call a later entry for the
    /// same partition wins.
    pub fn commit<T: Into<String>>(
        &self,
        group: &str,
        offsets: impl IntoIterator<Item = (T, u32, OffsetAndMetadata)>,
    ) -> Result<()> {
        validate_group_id(group)?;
        let mut records = Vec::new();
        for (topic, partition, value) in offsets {
            let topic = topic.into();
            validate_topic_name(&topic)?;
            let max = self.config.metadata_max_bytes;
            if value.metadata.len() > max {
                return Err(Error::OffsetMetadataTooLarge {
                    size: value.metadata.len(),
                    max,
                });
            }
            records.push(OffsetsRecord::OffsetCommit {
                group: group.to_owned(),
                topic,
                partition,
                value: Some(value),
            });
        }
        self.write(group, |_| Ok(records)).map(drop)
    }

    /// The committed offset of `group` for `topic`/`partition`, if any.
    pub fn fetch(&self, group: &str, topic: &str, partition: u32) -> Option<OffsetAndMetadata> {
        let cache = self.cache.read();
        cache.group(group)?.offset(topic, partition).cloned()
    }

    /// Every committed offset of `group`, by `(topic, partition)`; empty for a group with
    /// none.
    pub fn fetch_all(&self, group: &str) -> BTreeMap<(String, u32), OffsetAndMetadata> {
        let cache = self.cache.read();
        let Some(entry) = cache.group(group) else {
            return BTreeMap::new();
        };
        entry
            .iter_offsets()
            .map(|(topic, partition, o)| ((topic.to_owned(), partition), o.clone()))
            .collect()
    }

    /// The stored metadata of `group`, if any.
    pub fn group(&self, group: &str) -> Option<GroupMetadata> {
        self.cache.read().group(group)?.metadata.clone()
    }

    /// Every group with stored metadata or committed offsets, sorted.
    pub fn groups(&self) -> Vec<String> {
        let cache = self.cache.read();
        let ids: BTreeSet<&str> = cache.group_ids().collect();
        ids.into_iter().map(str::to_owned).collect()
    }

    /// Stores `metadata` as `group`'s metadata (a `GroupMetadataValue` v3 record).
    /// [`Error::InvalidGroupId`], or [`Error::OffsetsRecordFormat`] for a string or bytes
    /// field too long for Kafka's format; nothing is written then.
    pub fn store_group(&self, group: &str, metadata: &GroupMetadata) -> Result<()> {
        validate_group_id(group)?;
        let record = OffsetsRecord::GroupMetadata {
            group: group.to_owned(),
            value: Some(metadata.clone()),
        };
        self.write(group, |_| Ok(vec![record])).map(drop)
    }

    /// Deletes `group`: tombstones for its metadata and every committed offset, in one
    /// batch. Returns how many tombstones were written (0 for a group with nothing
    /// stored). Whether the group may be deleted (it must be Empty) is the coordinator's
    /// rule.
    pub fn delete_group(&self, group: &str) -> Result<usize> {
        validate_group_id(group)?;
        self.write(group, |cache| {
            let Some(entry) = cache.group(group) else {
                return Ok(Vec::new());
            };
            let mut records: Vec<OffsetsRecord> = entry
                .iter_offsets()
                .map(|(topic, partition, _)| commit_tombstone(group, topic, partition))
                .collect();
            if entry.metadata.is_some() {
                records.push(OffsetsRecord::GroupMetadata {
                    group: group.to_owned(),
                    value: None,
                });
            }
            Ok(records)
        })
    }

    /// Deletes committed offsets of `group`: a tombstone for each listed `(topic,
    /// partition)` that has one, in one batch. Returns how many were deleted.
    pub fn delete_offsets<T: AsRef<str>>(
        &self,
        group: &str,
        partitions: impl IntoIterator<Item = (T, u32)>,
    ) -> Result<usize> {
        validate_group_id(group)?;
        let wanted: BTreeSet<(String, u32)> = partitions
            .into_iter()
            .map(|(t, p)| (t.as_ref().to_owned(), p))
            .collect();
        self.write(group, |cache| {
            let Some(entry) = cache.group(group) else {
                return Ok(Vec::new());
            };
            Ok(wanted
                .iter()
                .filter(|(topic, partition)| entry.offset(topic, *partition).is_some())
                .map(|(topic, partition)| commit_tombstone(group, topic, *partition))
                .collect())
        })
    }

    /// Expires offsets with [`OffsetsStore::expire_with`], where `group_is_empty` says
    /// whether a group has no members (Kafka's Empty state): `true` is
    /// [`GroupActivity::Empty`], `false` is [`GroupActivity::Active`].
    pub fn expire(
        &self,
        now_ms: i64,
        retention_ms: i64,
        group_is_empty: impl Fn(&str) -> bool,
    ) -> Result<ExpiryReport> {
        self.expire_with(now_ms, retention_ms, |group| {
            if group_is_empty(group) {
                GroupActivity::Empty
            } else {
                GroupActivity::Active
            }
        })
    }

    /// Writes tombstones for every offset expired at `now_ms` under Kafka's rules (see
    /// [`GroupActivity`]; `retention_ms` is `offsets.retention.minutes` in ms, e.g.
    /// [`OffsetsConfig::retention_ms`]), one batch per partition. An Empty group left
    /// without offsets also loses its metadata, as in Kafka. `activity` is asked once per
    /// group, before any lock is taken. On error, partitions already done stay done; the
    /// next call finishes the rest.
    pub fn expire_with(
        &self,
        now_ms: i64,
        retention_ms: i64,
        activity: impl Fn(&str) -> GroupActivity,
    ) -> Result<ExpiryReport> {
        let mut by_partition: BTreeMap<u32, Vec<(String, GroupActivity)>> = BTreeMap::new();
        for group in self.groups() {
            let state = activity(&group);
            by_partition
                .entry(self.partition_for(&group))
                .or_default()
                .push((group, state));
        }
        let mut report = ExpiryReport::default();
        for (partition, groups) in by_partition {
            let mut done = ExpiryReport::default();
            let _lock = self.lock(partition);
            let records = {
                let cache = self.cache.read();
                let mut records = Vec::new();
                for (group, state) in &groups {
                    let Some(entry) = cache.group(group) else {
                        continue;
                    };
                    let expired = expired_offsets(entry, state, now_ms, retention_ms);
                    let none_left = expired.len() == entry.offset_count();
                    for (topic, p) in expired {
                        records.push(commit_tombstone(group, topic, p));
                        done.offsets.push((group.clone(), topic.to_owned(), p));
                    }
                    if *state == GroupActivity::Empty && none_left && entry.metadata.is_some() {
                        records.push(OffsetsRecord::GroupMetadata {
                            group: group.clone(),
                            value: None,
                        });
                        done.groups.push(group.clone());
                    }
                }
                records
            };
            self.append_locked(partition, records)?;
            report.offsets.append(&mut done.offsets);
            report.groups.append(&mut done.groups);
        }
        Ok(report)
    }

    /// Locks `group`'s partition, builds its records from the cache, appends them and
    /// applies them; returns how many were written.
    fn write(
        &self,
        group: &str,
        build: impl FnOnce(&Cache) -> Result<Vec<OffsetsRecord>>,
    ) -> Result<usize> {
        let partition = self.partition_for(group);
        let _lock = self.lock(partition);
        let records = build(&self.cache.read())?;
        let written = records.len();
        self.append_locked(partition, records)?;
        Ok(written)
    }

    fn lock(&self, partition: u32) -> MutexGuard<'_, ()> {
        // `partition` < `self.partitions` == `self.locks.len()`, both fixed at open.
        self.locks[partition as usize].lock()
    }

    /// Appends `records` to `partition` as one batch, then applies them to the cache. The
    /// caller holds the partition's lock.
    /// Returns the offset of the last record appended (`None` when there was none).
    fn append_locked(&self, partition: u32, records: Vec<OffsetsRecord>) -> Result<Option<u64>> {
        if records.is_empty() {
            return Ok(None);
        }
        let encoded = records
            .iter()
            .map(OffsetsRecord::to_record)
            .collect::<Result<Vec<Record>, RecordFormatError>>()?;
        let range = self.log.append(partition, &encoded)?;
        let mut cache = self.cache.write();
        for record in records {
            cache.apply(record);
        }
        Ok(range.end.checked_sub(1))
    }

    /// Makes what was appended to `__consumer_offsets` partition `partition` durable
    /// ([`Partition::flush`]), for a write that must survive a power loss whatever the
    /// topic's flush policy (the tombstones of a deleted topic's offsets).
    pub(crate) fn flush_partition(&self, partition: u32) -> Result<()> {
        self.log.partition(partition)?.flush()
    }

    /// Executes a coordinator's [`PersistRequest`]: offset commits, a group-metadata
    /// record, or the tombstones of a deleted group, appended as one batch to the group's
    /// partition. Returns the `__consumer_offsets` offset of the last record written (for
    /// [`crate::GroupCoordinator::append_completed`]); an empty write returns the
    /// partition's log end. Errors as for [`OffsetsStore::commit`]; nothing is written then.
    pub fn persist(&self, request: &PersistRequest) -> Result<u64> {
        validate_group_id(&request.group_id)?;
        let partition = self.partition_for(&request.group_id);
        let _lock = self.lock(partition);
        let records = build_persist(request)?;
        match self.append_locked(partition, records)? {
            Some(offset) => Ok(offset),
            None => Ok(self.log.partition(partition)?.log_end_offset()),
        }
    }
}

/// The records of a coordinator's [`PersistRequest`] (its group id validated).
fn build_persist(request: &PersistRequest) -> Result<Vec<OffsetsRecord>> {
    let group = request.group_id.as_str();
    Ok(match &request.record {
        PersistRecord::Offsets(offsets) => {
            let mut records = Vec::with_capacity(offsets.len());
            for ((topic, p), value) in offsets {
                validate_topic_name(topic)?;
                records.push(OffsetsRecord::OffsetCommit {
                    group: group.to_owned(),
                    topic: topic.clone(),
                    partition: *p,
                    value: Some(value.clone()),
                });
            }
            records
        }
        PersistRecord::Group(metadata) => vec![OffsetsRecord::GroupMetadata {
            group: group.to_owned(),
            value: Some(metadata.clone()),
        }],
        PersistRecord::DeleteGroup { offsets } => {
            let mut records: Vec<OffsetsRecord> = offsets
                .iter()
                .map(|(topic, p)| commit_tombstone(group, topic, *p))
                .collect();
            records.push(OffsetsRecord::GroupMetadata {
                group: group.to_owned(),
                value: None,
            });
            records
        }
        PersistRecord::DeleteOffsets(offsets) => offsets
            .iter()
            .map(|(topic, p)| commit_tombstone(group, topic, *p))
            .collect(),
    })
}

/// Replicas read by a [`OffsetsStore::read_only`] store.
#[derive(Debug)]
struct ReadOnlyLogs(BTreeMap<u32, Arc<Partition>>);

impl OffsetsLog for ReadOnlyLogs {
    fn partition(&self, partition: u32) -> Result<Arc<Partition>> {
        self.0
            .get(&partition)
            .cloned()
            .ok_or_else(|| Error::LeaderNotAvailable {
                topic: CONSUMER_OFFSETS_TOPIC.to_string(),
                partition,
            })
    }

    fn append(&self, partition: u32, _records: &[Record]) -> Result<std::ops::Range<u64>> {
        Err(Error::LeaderNotAvailable {
            topic: CONSUMER_OFFSETS_TOPIC.to_string(),
            partition,
        })
    }
}

fn commit_tombstone(group: &str, topic: &str, partition: u32) -> OffsetsRecord {
    OffsetsRecord::OffsetCommit {
        group: group.to_owned(),
        topic: topic.to_owned(),
        partition,
        value: None,
    }
}
