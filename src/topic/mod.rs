//! Topics (S5, S12): [`Topic`], a named set of [`Partition`]s, each in its own directory
//! `<data_dir>/<topic>-<partition>/` as Kafka lays them out, and the partition choice for
//! records appended without an explicit partition ([`Partitioner`]).
//!
//! Also here: topic-name rules ([`validate_topic_name`], [`collision_key`]) and
//! [`TopicConfig`] with its persisted properties form. Creating, listing and deleting
//! topics, and persisting their configs, is the broker's job.

mod config;
mod name;
mod partitioner;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::RwLock;

use crate::error::{Error, Result};
use crate::log::Partition;
use crate::record::Record;
use crate::storage::{Env, Storage};

pub use config::TopicConfig;
pub use name::{MAX_TOPIC_NAME_LEN, collision_key, validate_topic_name};
pub use partitioner::{
    DefaultPartitioner, Partitioner, StickyPartitioner, murmur2, partition_for_key, to_positive,
};

/// A named set of partitions. Records go to the partition a [`Partitioner`] picks (by
/// default [`DefaultPartitioner`]: the key's murmur2 hash, round-robin without a key), or
/// to an explicit one with [`Topic::append_to`]. Partitions can be added, never removed.
///
/// `Topic` is `Send + Sync` and every method but `close` takes `&self`: share it with an
/// `Arc`. Appends to different partitions proceed in parallel.
///
/// ```
/// use streamlog::{Env, Record, Topic, TopicConfig};
/// # fn main() -> streamlog::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let config = TopicConfig::default().partitions(3).segment_bytes(1 << 20);
/// let topic = Topic::open(dir.path(), "orders", config, Env::default())?;
///
/// // A key picks its partition as the Java client would; no key goes round-robin.
/// let (partition, offset) = topic.append(Record::new(b"v".to_vec()).with_key(b"user-1".to_vec()))?;
/// assert_eq!(partition, streamlog::topic::partition_for_key(b"user-1", 3));
/// let placed = topic.append_batch(vec![Record::new(b"a".to_vec()), Record::new(b"b".to_vec())])?;
/// assert_eq!(placed.len(), 2);
/// let offsets = topic.append_to(2, vec![Record::new(b"c".to_vec())])?; // explicit partition
/// assert_eq!(offsets.end - offsets.start, 1);
///
/// let record = topic.partition(partition)?.read_from(offset)?.next().transpose()?;
/// assert_eq!(record.and_then(|r| r.value().map(<[u8]>::to_vec)), Some(b"v".to_vec()));
/// assert!(dir.path().join("orders-2").is_dir());
/// topic.close()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Topic {
    name: String,
    data_dir: PathBuf,
    /// The config the topic was opened with; `partitions` there may be stale (see `config`).
    config: TopicConfig,
    env: Env,
    partitioner: Arc<dyn Partitioner>,
    /// Partition `i` at index `i`. Appends hold the read lock; `add_partitions` writes.
    partitions: RwLock<Vec<Arc<Partition>>>,
    /// Set by `shutdown`: no partition may be added (its directory would outlive a delete).
    closed: AtomicBool,
}

impl Topic {
    /// Opens the topic `name` in `data_dir` (created when missing): partitions
    /// `0..config.partitions`, each opened (or created, or recovered) with
    /// [`Partition::open_with_env`]. Partition directories already on disk beyond that
    /// count (from [`Topic::add_partitions`]) are opened too, so none is ever dropped.
    ///
    /// Errors: [`Error::InvalidTopicName`], [`Error::InvalidConfig`], and whatever opening a
    /// partition reports (e.g. [`Error::DirectoryLocked`] when the topic is already open).
    pub fn open(
        data_dir: impl AsRef<Path>,
        name: &str,
        config: TopicConfig,
        env: Env,
    ) -> Result<Topic> {
        validate_topic_name(name)?;
        config.validate()?;
        let data_dir = data_dir.as_ref().to_path_buf();
        crate::storage::create_dir_all_durably(&*env.storage, &data_dir)?;
        let on_disk = partitions_on_disk(&*env.storage, &data_dir, name)?;
        let topic = Topic {
            name: name.to_owned(),
            data_dir,
            partitions: RwLock::new(Vec::new()),
            closed: AtomicBool::new(false),
            partitioner: Arc::new(DefaultPartitioner::default()),
            env,
            config,
        };
        topic.add_partitions(topic.config.partitions.max(on_disk))?;
        Ok(topic)
    }

    /// Uses `partitioner` for records appended without an explicit partition.
    #[must_use]
    pub fn with_partitioner(mut self, partitioner: Arc<dyn Partitioner>) -> Self {
        self.partitioner = partitioner;
        self
    }

    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The topic's config, with `partitions` the current count.
    pub fn config(&self) -> TopicConfig {
        self.config.clone().partitions(self.partition_count())
    }

    /// How many partitions the topic has; they are numbered `0..partition_count()`.
    pub fn partition_count(&self) -> u32 {
        self.partitions.read().len() as u32
    }

    /// Every partition, in order.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().clone()
    }

    /// Partition `partition`, for reading (or appending to directly);
    /// [`Error::UnknownPartition`] when the topic has no such partition.
    pub fn partition(&self, partition: u32) -> Result<Arc<Partition>> {
        self.get(&self.partitions.read(), partition).cloned()
    }

    /// The directory of partition `partition`: `<data_dir>/<topic>-<partition>`.
    pub fn partition_dir(&self, partition: u32) -> PathBuf {
        self.data_dir.join(format!("{}-{partition}", self.name))
    }

    /// Appends one record to the partition the partitioner picks (a batch of its own);
    /// returns `(partition, offset)`. A topic of one partition takes every record there
    /// without asking the partitioner.
    pub fn append(&self, record: Record) -> Result<(u32, u64)> {
        let partitions = self.partitions.read();
        if let [only] = partitions.as_slice() {
            return Ok((0, only.append(record)?));
        }
        self.partitioner.on_new_batch(partitions.len() as u32);
        let partition = self.choose(&partitions, &record)?;
        let offset = self.get(&partitions, partition)?.append(record)?;
        Ok((partition, offset))
    }

    /// Appends records as one batch per partition they go to (one
    /// [`Partition::append_records`] call each); returns each record's `(partition, offset)`
    /// in input order. Every partition is chosen before anything is written; if a partition
    /// then fails to append, the error is returned and the batches already written to other
    /// partitions stay. An empty `records` is [`Error::EmptyBatch`]. Records that all go to
    /// one partition (always, on a topic of one partition) are appended without regrouping.
    pub fn append_batch(&self, records: Vec<Record>) -> Result<Vec<(u32, u64)>> {
        if records.is_empty() {
            return Err(Error::EmptyBatch);
        }
        let partitions = self.partitions.read();
        if let [only] = partitions.as_slice() {
            // One partition: the only answer a partitioner may give, without asking it.
            let offsets = only.append_records(&records)?;
            return Ok(offsets.map(|offset| (0, offset)).collect());
        }
        self.partitioner.on_new_batch(partitions.len() as u32);
        let chosen = records
            .iter()
            .map(|record| self.choose(&partitions, record))
            .collect::<Result<Vec<u32>>>()?;
        if let Some(&first) = chosen.first()
            && chosen.iter().all(|&p| p == first)
        {
            // All to one partition (a sticky batch, or keys that agree): no regrouping.
            let offsets = self.get(&partitions, first)?.append_records(&records)?;
            return Ok(offsets.map(|offset| (first, offset)).collect());
        }
        let mut placed = vec![(0, 0); records.len()];
        let mut groups: BTreeMap<u32, (Vec<usize>, Vec<Record>)> = BTreeMap::new();
        for (i, (record, partition)) in records.into_iter().zip(chosen).enumerate() {
            let (indices, group) = groups.entry(partition).or_default();
            indices.push(i);
            group.push(record);
        }
        for (partition, (indices, group)) in groups {
            let offsets = self.get(&partitions, partition)?.append_records(&group)?;
            for (i, offset) in indices.into_iter().zip(offsets) {
                placed[i] = (partition, offset);
            }
        }
        Ok(placed)
    }

    /// Appends records as one batch to partition `partition` (the explicit choice, which
    /// wins over the partitioner); returns their offsets.
    pub fn append_to(&self, partition: u32, records: Vec<Record>) -> Result<Range<u64>> {
        self.get(&self.partitions.read(), partition)?
            .append_batch(records)
    }

    /// Grows the topic to `new_total` partitions, creating the new ones empty. Partitions
    /// are never removed: fewer than now is [`Error::InvalidConfig`] (`partitions`); the
    /// same count changes nothing. Keys map to new partitions from then on (`murmur2 % n`
    /// changes with `n`), as in Kafka.
    pub fn add_partitions(&self, new_total: u32) -> Result<()> {
        let mut partitions = self.partitions.write();
        let current = partitions.len() as u32;
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed {
                path: self.partition_dir(current),
            });
        }
        if new_total < current {
            return Err(Error::InvalidConfig {
                name: "partitions",
                reason: format!(
                    "topic {:?} has {current} partitions; partitions can be added, not removed \
                     (asked for {new_total})",
                    self.name
                ),
            });
        }
        self.config.clone().partitions(new_total).validate()?;
        for i in current..new_total {
            let log_config = self.config.log_config().clone();
            let partition =
                Partition::open_with_env(self.partition_dir(i), log_config, self.env.clone())?;
            partitions.push(Arc::new(partition));
        }
        Ok(())
    }

    /// Flushes every partition ([`Partition::flush`]).
    pub fn flush(&self) -> Result<()> {
        self.partitions().iter().try_for_each(|p| p.flush())
    }

    /// Closes every partition ([`Partition::close`]), trying all and returning the first
    /// error. A partition still shared elsewhere (an `Arc` from [`Topic::partition`]) is
    /// flushed now and closes when its last handle drops.
    pub fn close(self) -> Result<()> {
        let mut first_error = None;
        for partition in self.partitions.into_inner() {
            let result = match Arc::try_unwrap(partition) {
                Ok(partition) => partition.close(),
                Err(shared) => shared.flush(),
            };
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Closes every partition through the shared handles ([`Partition::shutdown`]), trying
    /// all and returning the first error; appends and admin calls on any handle of this
    /// topic then fail with [`Error::Closed`]. For the broker, which closes or deletes
    /// topics applications may still hold.
    pub(crate) fn shutdown(&self) -> Result<()> {
        let partitions = self.partitions.write();
        self.closed.store(true, Ordering::Release);
        let mut first_error = None;
        for partition in partitions.iter() {
            if let Err(e) = partition.shutdown() {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The partition the partitioner picks for `record`, checked against the count.
    fn choose(&self, partitions: &[Arc<Partition>], record: &Record) -> Result<u32> {
        let partition = self.partitioner.partition(record, partitions.len() as u32);
        self.get(partitions, partition).map(|_| partition)
    }

    /// Partition `partition` of `partitions`, or [`Error::UnknownPartition`].
    fn get<'a>(
        &self,
        partitions: &'a [Arc<Partition>],
        partition: u32,
    ) -> Result<&'a Arc<Partition>> {
        partitions
            .get(partition as usize)
            .ok_or_else(|| Error::UnknownPartition {
                topic: self.name.clone(),
                partition,
                partitions: partitions.len() as u32,
            })
    }
}

/// One more than the highest partition number with a directory `<name>-<n>` in `data_dir`
/// (0 when there is none).
pub(crate) fn partitions_on_disk(
    storage: &dyn Storage,
    data_dir: &Path,
    name: &str,
) -> Result<u32> {
    let prefix = format!("{name}-");
    let mut count = 0;
    for path in storage.list_dir(data_dir)? {
        let file_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let number = file_name
            .strip_prefix(&prefix)
            .and_then(|n| n.parse::<u32>().ok());
        // Only canonical numbers: `orders-01` is not partition 1.
        if let Some(n) = number.filter(|n| file_name.ends_with(&format!("-{n}"))) {
            count = count.max(n.saturating_add(1));
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::SimStorage;

    fn sim_env() -> Env {
        Env {
            storage: Arc::new(SimStorage::new()),
            ..Env::default()
        }
    }

    fn unkeyed(i: usize) -> Record {
        Record::new(i.to_string().into_bytes())
    }

    #[test]
    fn partitions_on_disk_counts_only_this_topics_canonical_dirs() {
        let env = sim_env();
        let dir = Path::new("data");
        for sub in [
            "orders-0",
            "orders-4",
            "orders-01",
            "orders-x-7",
            "orders",
            "other-9",
        ] {
            env.storage.create_dir_all(&dir.join(sub)).unwrap();
        }
        assert_eq!(partitions_on_disk(&*env.storage, dir, "orders").unwrap(), 5);
        assert_eq!(
            partitions_on_disk(&*env.storage, dir, "orders-x").unwrap(),
            8
        );
        assert_eq!(partitions_on_disk(&*env.storage, dir, "none").unwrap(), 0);
    }

    #[test]
    fn a_partitioner_out_of_range_is_unknown_partition() {
        #[derive(Debug)]
        struct Broken;
        impl Partitioner for Broken {
            fn partition(&self, _: &Record, partitions: u32) -> u32 {
                partitions
            }
        }
        let topic = Topic::open("data", "t", TopicConfig::default().partitions(2), sim_env())
            .unwrap()
            .with_partitioner(Arc::new(Broken));
        let err = topic.append(unkeyed(0)).unwrap_err();
        assert!(
            matches!(&err, Error::UnknownPartition { topic, partition: 2, partitions: 2 } if topic == "t"),
            "{err}"
        );
        assert!(matches!(
            topic.append_batch(vec![unkeyed(1)]),
            Err(Error::UnknownPartition { .. })
        ));
        assert!(topic.partitions().iter().all(|p| p.log_end_offset() == 0));
    }

    #[test]
    fn open_refuses_bad_names_and_configs() {
        let err = Topic::open("data", "..", TopicConfig::default(), sim_env()).unwrap_err();
        assert!(matches!(err, Error::InvalidTopicName { .. }), "{err}");
        let err =
            Topic::open("data", "t", TopicConfig::default().partitions(0), sim_env()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidConfig {
                    name: "partitions",
                    ..
                }
            ),
            "{err}"
        );
    }
}
