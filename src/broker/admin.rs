//! Topic administration on a [`Broker`]: create (user and internal topics), delete, add
//! partitions, alter one config setting. Each runs under the broker's admin lock, stores
//! its change in the catalogue durably, and only then reports success.

use std::sync::Arc;

use parking_lot::MutexGuard;

use super::{Broker, Entry, INTERNAL_TOPIC_PREFIX};
use crate::error::{Error, Result};
use crate::group::offsets::CONSUMER_OFFSETS_TOPIC;
use crate::group::service::GroupService;
use crate::topic::{Topic, TopicConfig, collision_key, partitions_on_disk, validate_topic_name};

impl Broker {
    /// Creates the topic `name` with `config` and returns it. The name must follow Kafka's
    /// rules ([`Error::InvalidTopicName`]) and may not start with `__`, which is kept for
    /// internal topics ([`Broker::create_internal_topic`]). A topic of that name is
    /// [`Error::TopicExists`]; one whose name differs only by `.` versus `_` is
    /// [`Error::TopicCollision`]. An invalid config is [`Error::InvalidConfig`], and so is
    /// `auto_high_watermark(false)`: a broker's partitions are their only copy.
    ///
    /// The config is stored before the partition directories are created; if creating
    /// them fails, the topic is removed again and the error returned.
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<Arc<Topic>> {
        super::validate_user_topic_name(name)?;
        self.create(name, config)
    }

    /// Creates a topic with [`crate::BrokerConfig::default_topic_config`], as Kafka does
    /// for a topic created without overrides.
    pub fn create_topic_with_defaults(&self, name: &str) -> Result<Arc<Topic>> {
        self.create_topic(name, self.shared.config.default_topic_config.clone())
    }

    /// Creates an internal topic: its name must start with `__` (such as
    /// `__consumer_offsets`, which the consumer-group coordinator creates, compacted, with
    /// `offsets.topic.num.partitions` partitions). Otherwise as [`Broker::create_topic`].
    /// Applications should not need this.
    pub fn create_internal_topic(&self, name: &str, config: TopicConfig) -> Result<Arc<Topic>> {
        validate_topic_name(name)?;
        if !name.starts_with(INTERNAL_TOPIC_PREFIX) {
            return Err(Error::InvalidTopicName {
                name: name.to_owned(),
                reason: format!("an internal topic's name starts with {INTERNAL_TOPIC_PREFIX:?}"),
            });
        }
        self.create(name, config)
    }

    /// Deletes the topic `name` and all its records: the partitions are closed (appends on
    /// handles applications still hold fail with [`Error::Closed`]) and their directories
    /// removed; then every consumer group's committed offsets of the topic are removed
    /// through the group coordinator, as Kafka's `onPartitionsDeleted` does (tombstones in
    /// `__consumer_offsets`, flushed; an Empty group left without offsets is deleted).
    /// [`Error::UnknownTopic`] when there is none.
    ///
    /// Crash-safe: the topic is gone once its catalogue entry is marked deleted, the first
    /// step; the mark is removed last, after the files are gone and the tombstones are
    /// durable. If any step fails (an error is returned), or a crash interrupts, the next
    /// open — or the next create of the same name, which fails rather than skip it —
    /// finishes the job, offsets included. So a re-created topic of the same name never
    /// starts from the old topic's committed offsets, also across crashes and power
    /// losses; between a failed delete and that retry, groups may still list them.
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        let (groups, _admin) = self.lock_admin(name)?;
        let shared = &*self.shared;
        let entry = shared.entry(name)?;
        let storage = &*shared.env.storage;
        shared.catalog.mark_deleting(storage, name)?;
        shared.topics.write().remove(name);
        // The records are being deleted: a failed final flush does not matter.
        let _ = entry.topic.shutdown();
        shared.finish_delete(name, groups.as_deref())
    }

    /// Takes the admin lock for a change to topic `name`, with the group service when the
    /// broker has `__consumer_offsets` (a delete of `name` must clean its offsets up). The
    /// service is opened before the lock is taken: opening it may create
    /// `__consumer_offsets`, which takes the admin lock. `__consumer_offsets` itself never
    /// needs it (and is created while the service is being opened).
    fn lock_admin(&self, name: &str) -> Result<(Option<Arc<GroupService>>, MutexGuard<'_, ()>)> {
        let shared = &*self.shared;
        loop {
            let wanted = name != CONSUMER_OFFSETS_TOPIC;
            let has_offsets_topic = || shared.topics.read().contains_key(CONSUMER_OFFSETS_TOPIC);
            let groups = if wanted && has_offsets_topic() {
                Some(self.group_service()?)
            } else {
                None
            };
            let admin = shared.admin.lock();
            shared.ensure_open()?;
            // Created meanwhile: go round again for its service (without the lock).
            if groups.is_some() || !wanted || !has_offsets_topic() {
                return Ok((groups, admin));
            }
        }
    }

    /// Grows topic `name` to `total` partitions (never fewer: [`Error::InvalidConfig`]),
    /// creating the new ones empty, and stores the new count. Keys map to partitions by
    /// `murmur2 % total` from then on, as in Kafka.
    pub fn add_partitions(&self, name: &str, total: u32) -> Result<()> {
        let shared = &*self.shared;
        let _admin = shared.admin.lock();
        shared.ensure_open()?;
        let entry = shared.entry(name)?;
        entry.topic.add_partitions(total)?;
        // The directories exist now; were this save lost, the next open counts them anyway.
        let config = entry.config.partitions(entry.topic.partition_count());
        shared.catalog.save(&*shared.env.storage, name, &config)?;
        shared.set_config(name, config);
        Ok(())
    }

    /// Sets one setting of topic `name` by its Kafka name (`retention.ms`,
    /// `cleanup.policy`, ...), as `kafka-configs --alter --add-config` does, and stores it.
    /// An unknown name or a bad value is [`Error::InvalidConfig`] and changes nothing;
    /// `partitions` is refused here (use [`Broker::add_partitions`]).
    ///
    /// The partitions keep running with the config they were opened with: the new value
    /// applies from the broker's next open ([`crate::TopicDescription::config_pending_reopen`]
    /// says when one is waiting). A partition's settings are fixed while it is open.
    pub fn alter_topic_config(&self, name: &str, key: &str, value: &str) -> Result<()> {
        if key == "partitions" {
            return Err(Error::InvalidConfig {
                name: "partitions",
                reason: "the partition count changes through add_partitions".into(),
            });
        }
        let shared = &*self.shared;
        let _admin = shared.admin.lock();
        shared.ensure_open()?;
        let mut config = shared.entry(name)?.config;
        config.set(key, value)?;
        shared.catalog.save(&*shared.env.storage, name, &config)?;
        shared.set_config(name, config);
        Ok(())
    }

    /// Creates topic `name` (already validated as a name) with `config`.
    fn create(&self, name: &str, config: TopicConfig) -> Result<Arc<Topic>> {
        config.validate()?;
        if !config.log_config().auto_high_watermark {
            // Not a stored setting: the topic would come back with it on after a reopen,
            // its uncommitted records suddenly visible.
            return Err(Error::InvalidConfig {
                name: "auto_high_watermark",
                reason: "a broker's partitions are their only copy: their high watermark \
                         follows the log end (open a Partition directly to set it by hand)"
                    .into(),
            });
        }
        let (groups, _admin) = self.lock_admin(name)?;
        let shared = &*self.shared;
        shared.check_free(name)?;
        let storage = &*shared.env.storage;
        if shared.catalog.is_deleting(storage, name) {
            shared.finish_delete(name, groups.as_deref())?;
        }
        if partitions_on_disk(storage, &shared.dir, name)? > 0 {
            let dir = shared.dir.join(format!("{name}-0"));
            let source = std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "partition directories of this name exist without a topic in the catalogue",
            );
            return Err(Error::io(dir, source));
        }
        shared.catalog.save(storage, name, &config)?;
        match Topic::open(&shared.dir, name, config.clone(), shared.env.clone()) {
            Ok(topic) => {
                let topic = Arc::new(topic);
                let entry = Entry {
                    topic: topic.clone(),
                    config,
                };
                shared.topics.write().insert(name.to_owned(), entry);
                Ok(topic)
            }
            Err(e) => {
                // Undo as a delete; should that fail too, the next open finishes it (or,
                // if even the marker could not be set, the topic reappears there).
                // Nothing can have committed offsets of it yet.
                let _ = shared
                    .catalog
                    .mark_deleting(storage, name)
                    .and_then(|()| shared.finish_delete(name, None));
                Err(e)
            }
        }
    }
}

impl super::Shared {
    /// [`Error::TopicExists`] or [`Error::TopicCollision`] when `name` is taken.
    fn check_free(&self, name: &str) -> Result<()> {
        let topics = self.topics.read();
        if topics.contains_key(name) {
            return Err(Error::TopicExists {
                name: name.to_owned(),
            });
        }
        let key = collision_key(name);
        match topics
            .keys()
            .find(|existing| collision_key(existing) == key)
        {
            Some(existing) => Err(Error::TopicCollision {
                name: name.to_owned(),
                existing: existing.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Records `config` as topic `name`'s stored config.
    fn set_config(&self, name: &str, config: TopicConfig) {
        if let Some(entry) = self.topics.write().get_mut(name) {
            entry.config = config;
        }
    }
}
