//! The [`Broker`] (S3, S4): one data directory holding many topics, with a numeric broker
//! id, a persisted topic catalogue, topic administration (create, list, describe, delete,
//! add partitions, alter config) and retention over every partition.
//!
//! On disk (`<data>/`):
//! ```text
//! .lock                     held (flock) while a broker has the directory open
//! meta.properties           version=1, broker.id=<id>          (meta.rs)
//! __topics/<topic>.properties   the topic's whole config      (catalog.rs)
//! __topics/<topic>.deleting     a delete that started; finished on the next open
//! <topic>-<partition>/      one partition's segments, as Kafka lays them out
//! ```
//! Metadata files carry a CRC-32C line and are replaced atomically (temp file, fsync,
//! rename, directory fsync — `store.rs`), all through [`crate::Storage`], so simulated
//! power loss covers them.
//!
//! Creating a topic stores its config before any partition directory exists (a crash in
//! between leaves a topic whose partitions are created on the next open); a create that
//! fails afterwards is undone as a delete. Deleting renames the topic's file to
//! `.deleting` first — from then on the topic is gone, even across a crash — then closes
//! its partitions, removes their directories and the groups' committed offsets of the topic
//! (through the group coordinator), and removes the marker (`delete.rs`).
//! Kafka instead renames each partition directory to `<topic>-<p>.<uuid>-delete` and
//! removes it later; one marker per topic does the same job with a synchronous delete, and
//! a re-created topic of the same name waits until the old directories are gone.
//!
//! Retention and compaction: [`Broker::enforce_retention`] runs retention over every
//! partition now, reading the broker's clock (`retention.rs`); [`Broker::compact`] runs a
//! cleaner pass on every partition that needs one (`compaction.rs`). With
//! `background_threads` on, one thread per broker runs both, retention first, every
//! `log.retention.check.interval.ms` (`background.rs`); it holds the broker weakly, waits
//! on a condition variable, and is stopped and joined by `close` or drop before the topics
//! close. Its last error is kept for [`Broker::last_background_error`].

mod admin;
pub(crate) mod background;
mod catalog;
mod compaction;
mod config;
mod delete;
mod describe;
mod groups;
mod meta;
mod pass;
mod retention;
mod store;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};
use crate::group::service::GroupService;
use crate::storage::{DirLock, Env};
use crate::topic::{Topic, TopicConfig};

use background::Background;
use catalog::Catalog;

pub use compaction::{CompactionReport, PartitionCompaction};
pub use config::{BrokerConfig, DEFAULT_RETENTION_CHECK_INTERVAL_MS};
pub use describe::{PartitionDescription, TopicDescription};
pub(crate) use groups::BrokerHandle;
use groups::GroupsSlot;
pub use retention::{PartitionRetention, RetentionReport};

/// Names starting with this are internal topics (Kafka's `__consumer_offsets`), created
/// only through [`Broker::create_internal_topic`].
pub const INTERNAL_TOPIC_PREFIX: &str = "__";

/// A topic name a user may create: valid, and not in the internal namespace.
pub(crate) fn validate_user_topic_name(name: &str) -> Result<()> {
    crate::topic::validate_topic_name(name)?;
    if name.starts_with(INTERNAL_TOPIC_PREFIX) {
        return Err(Error::InvalidTopicName {
            name: name.to_owned(),
            reason: format!(
                "names starting with {INTERNAL_TOPIC_PREFIX:?} are reserved for internal topics"
            ),
        });
    }
    Ok(())
}

/// A broker: many topics in one data directory, each a set of partitions in
/// `<data>/<topic>-<partition>/`. Reopening the directory restores every topic with its
/// partitions, config and offsets.
///
/// `Broker` is `Send + Sync` and every method but `close` takes `&self`: share it with an
/// `Arc`. Topics come back as `Arc<Topic>`; closing (or dropping) the broker closes them,
/// after which their appends fail with [`Error::Closed`].
///
/// ```
/// use streamlog::{Broker, BrokerConfig, Record, TopicConfig};
/// # fn main() -> streamlog::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let broker = Broker::open(dir.path(), BrokerConfig::default().broker_id(1))?;
/// let topic = broker.create_topic("orders", TopicConfig::default().partitions(3))?;
/// let (partition, offset) = topic.append(Record::new(b"v".to_vec()).with_key(b"k".to_vec()))?;
/// assert_eq!(broker.topics(), ["orders"]);
/// assert_eq!(broker.describe_topic("orders")?.partitions.len(), 3);
/// broker.close()?;
///
/// // Reopening restores the topic and its records.
/// let broker = Broker::open(dir.path(), BrokerConfig::default().broker_id(1))?;
/// let record = broker.topic("orders")?.partition(partition)?.read_from(offset)?.next();
/// assert_eq!(record.transpose()?.and_then(|r| r.value().map(<[u8]>::to_vec)), Some(b"v".to_vec()));
/// assert!(matches!(broker.topic("nope"), Err(streamlog::Error::UnknownTopic { .. })));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Broker {
    shared: Arc<Shared>,
    /// The retention thread, when `background_threads` is on.
    background: Option<Background>,
}

/// What the broker's methods and its background thread share.
#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    config: BrokerConfig,
    env: Env,
    catalog: Catalog,
    /// Open topics by name, with their stored configs.
    topics: RwLock<BTreeMap<String, Entry>>,
    /// Serialises create, delete, add-partitions and alter-config.
    admin: Mutex<()>,
    closed: AtomicBool,
    lock: Mutex<Option<Box<dyn DirLock>>>,
    /// The last error of a background pass, cleared by a pass that succeeds.
    background_error: Mutex<Option<String>>,
    /// The consumer-group coordinator and `__consumer_offsets` store, opened when the
    /// broker opens if the topic exists, else on first use (`groups.rs`), with the thread
    /// that fires its timers.
    groups: Mutex<Option<GroupsSlot>>,
}

/// An open topic and its stored config (which `alter_topic_config` may have changed since
/// the topic was opened).
#[derive(Debug, Clone)]
struct Entry {
    topic: Arc<Topic>,
    config: TopicConfig,
}

impl Broker {
    /// Opens (or creates) the broker data directory `dir` on the real file system with the
    /// system clock. See [`Broker::open_with_env`].
    pub fn open(dir: impl AsRef<Path>, config: BrokerConfig) -> Result<Broker> {
        Self::open_with_env(dir, config, Env::default())
    }

    /// Opens (or creates) the broker data directory `dir` with the given storage and clock:
    /// locks it ([`Error::DirectoryLocked`] when another broker has it), checks or writes
    /// `meta.properties` ([`Error::BrokerIdMismatch`] when it names another broker),
    /// finishes deletions a crash interrupted, and opens every topic in the catalogue
    /// (recovering its partitions as [`crate::Partition::open_with_env`] does).
    pub fn open_with_env(dir: impl AsRef<Path>, config: BrokerConfig, env: Env) -> Result<Broker> {
        config.validate()?;
        let dir = dir.as_ref().to_path_buf();
        let storage = &*env.storage;
        crate::storage::create_dir_all_durably(storage, &dir)?;
        let lock = storage.lock_dir(&dir)?;
        meta::check_or_write(storage, &dir, config.broker_id)?;
        let catalog = Catalog::open(storage, &dir)?;
        let scan = catalog.scan(storage)?;
        // Interrupted deletes: the files go now; the groups' offsets of the topic, and
        // then the marker, once the groups are loaded (below).
        for name in &scan.deleting {
            delete::remove_partition_dirs(storage, &dir, name)?;
        }
        let mut topics = BTreeMap::new();
        for (name, topic_config) in scan.topics {
            let topic = Topic::open(&dir, &name, topic_config.clone(), env.clone())?;
            let entry = Entry {
                topic: Arc::new(topic),
                config: topic_config,
            };
            topics.insert(name, entry);
        }
        let shared = Shared {
            dir,
            config,
            env,
            catalog,
            topics: RwLock::new(topics),
            admin: Mutex::new(()),
            closed: AtomicBool::new(false),
            lock: Mutex::new(Some(lock)),
            background_error: Mutex::new(None),
            groups: Mutex::new(None),
        };
        let shared = Arc::new(shared);
        let background = if shared.config.background_threads {
            Some(start_background(&shared)?)
        } else {
            None
        };
        let broker = Broker { shared, background };
        broker.load_groups()?;
        let groups = broker.open_group_service()?;
        let shared = &*broker.shared;
        for name in &scan.deleting {
            shared.finish_delete(name, groups.as_deref())?;
        }
        Ok(broker)
    }

    /// The broker's id (`broker.id`).
    pub fn broker_id(&self) -> i32 {
        self.shared.config.broker_id
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The settings the broker was opened with.
    pub fn config(&self) -> &BrokerConfig {
        &self.shared.config
    }

    /// The topic `name`; [`Error::UnknownTopic`] when there is none.
    pub fn topic(&self, name: &str) -> Result<Arc<Topic>> {
        self.shared.entry(name).map(|e| e.topic)
    }

    /// Every topic's name, sorted (internal topics included).
    pub fn topics(&self) -> Vec<String> {
        self.shared.topics.read().keys().cloned().collect()
    }

    /// The topic's stored config and each partition's offsets, size and segment count;
    /// [`Error::UnknownTopic`] when there is none.
    pub fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        let entry = self.shared.entry(name)?;
        Ok(TopicDescription::new(&entry.topic, &entry.config))
    }

    /// The error of the background thread's last pass, if it failed (the thread keeps
    /// running and tries again after the interval); `None` after a pass that succeeded.
    pub fn last_background_error(&self) -> Option<String> {
        self.shared.background_error.lock().clone()
    }

    /// Flushes every partition of every topic ([`crate::Partition::flush`]).
    pub fn flush(&self) -> Result<()> {
        self.shared.open_topics().iter().try_for_each(|t| t.flush())
    }

    /// Closes every topic (flushing and closing each partition, even those applications
    /// still hold) and releases the directory; returns the first error. Dropping a broker
    /// does the same but cannot report errors.
    pub fn close(mut self) -> Result<()> {
        self.shutdown()
    }

    /// Stops the background thread, then closes the topics; idempotent.
    fn shutdown(&mut self) -> Result<()> {
        if let Some(mut background) = self.background.take() {
            background.stop();
        }
        self.shared.shutdown()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Starts the thread that runs a retention pass, then a compaction pass, every
/// `log.retention.check.interval.ms`.
/// It holds the broker weakly and ends when the broker is gone.
fn start_background(shared: &Arc<Shared>) -> Result<Background> {
    let interval = Duration::from_millis(shared.config.log_retention_check_interval_ms);
    let name = format!("streamlog-broker-{}", shared.config.broker_id);
    let weak: Weak<Shared> = Arc::downgrade(shared);
    Background::start(name, interval, move || {
        if let Some(shared) = weak.upgrade() {
            let retention = shared.enforce_retention().map(drop);
            let compaction = shared.compact().map(drop);
            let error = retention.and(compaction).err().map(|e| e.to_string());
            *shared.background_error.lock() = error;
        }
    })
}

impl Shared {
    /// Finishes the delete of topic `name` marked deleting ([`delete::finish`]).
    fn finish_delete(&self, name: &str, groups: Option<&GroupService>) -> Result<()> {
        delete::finish(&*self.env.storage, &self.catalog, &self.dir, name, groups)
    }

    /// [`Error::Closed`] once the broker closed.
    fn ensure_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed {
                path: self.dir.clone(),
            });
        }
        Ok(())
    }

    /// The entry of topic `name`, or [`Error::UnknownTopic`].
    fn entry(&self, name: &str) -> Result<Entry> {
        self.topics
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UnknownTopic {
                name: name.to_owned(),
            })
    }

    /// Every open topic (a snapshot).
    fn open_topics(&self) -> Vec<Arc<Topic>> {
        let topics = self.topics.read();
        topics.values().map(|e| e.topic.clone()).collect()
    }

    /// Closes every topic and releases the directory lock; idempotent.
    fn shutdown(&self) -> Result<()> {
        let _admin = self.admin.lock();
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.groups.lock().take();
        let topics = std::mem::take(&mut *self.topics.write());
        let mut first_error = None;
        for entry in topics.values() {
            if let Err(e) = entry.topic.shutdown() {
                first_error.get_or_insert(e);
            }
        }
        self.lock.lock().take();
        first_error.map_or(Ok(()), Err)
    }
}
