//! [`Cluster`]: N brokers in one process (S3, S6, S10, S11, S13), replicating their
//! partitions to each other over a [`Transport`] and keeping their metadata in a
//! [`ConsensusStore`] — by default the in-memory ones, so an application gets Kafka's
//! replication without a network.
//!
//! - `config.rs`: [`ClusterConfig`], [`ProducerConfig`].
//! - `node.rs`: [`Node`], one broker as a step function (lease, metadata, controller,
//!   requests, replica manager).
//! - `producer.rs`: [`Producer`], which finds leaders and retries.
//! - `groups.rs`: consumer groups — `__consumer_offsets` replicated, each broker
//!   coordinating the groups of the offsets partitions it leads ([`Cluster::consumer`]).
//!
//! Each running broker has a thread that calls [`Node::step`]; stopping a broker stops
//! its thread and closes its logs but leaves its data directory, so starting it again
//! brings it back as a follower that truncates to where it agrees with the leader and
//! catches up.

mod config;
mod groups;
mod node;
mod producer;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::broker::background::Background;
use crate::clock::{Clock, SystemClock};
use crate::consumer::{Consumer, ConsumerConfig};
use crate::error::{Error, Result};
use crate::group::GroupDescription;
use crate::group::offsets::{
    CONSUMER_OFFSETS_TOPIC, OffsetAndMetadata, partition_for_group, validate_group_id,
};
use crate::group::service::GroupService;
use crate::log::Partition;
use crate::replication::consensus::{ConsensusStore, InMemoryConsensus, TopicRecord};
use crate::replication::controller::place_replicas;
use crate::replication::transport::{DirectReceiver, InMemoryTransport, Transport};
use crate::replication::{BrokerId, PartitionKey, PartitionState};
use crate::storage::Env;
use crate::topic::{TopicConfig, validate_topic_name};

pub use config::{ClusterConfig, ProducerConfig};
pub use node::{ElectionRecord, Node, Submitted};
pub use producer::{PendingSend, Producer, UNKNOWN_OFFSET};

/// The most partitions one topic of a cluster may be created with. Every partition's
/// state lives in the consensus store and in each broker's memory; Kafka's controller
/// likewise refuses a creation of more than 10,000 partitions ("Excessively large number
/// of partitions per request").
pub const MAX_PARTITIONS_PER_TOPIC: u32 = 10_000;

/// Brokers in one process, replicating to each other.
///
/// ```
/// use streamlog::{Acks, Cluster, ClusterConfig, ProducerConfig, Record, TopicConfig};
/// # fn main() -> streamlog::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let cluster = Cluster::start(ClusterConfig::in_memory(3).data_dir(dir.path()))?;
/// cluster.create_topic("orders", TopicConfig::default().partitions(3).replication_factor(3))?;
/// let producer = cluster.producer(ProducerConfig::default().acks(Acks::All))?;
/// let (partition, offset) = producer.send("orders", Record::new(b"v".to_vec()))?;
/// let leader: u32 = cluster.leader("orders", partition)?;
/// let records = cluster.broker(leader)?.topic("orders")?.partition(partition)?.read_from(offset)?;
/// assert_eq!(records.count(), 1);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Cluster {
    inner: Arc<ClusterInner>,
}

struct Running {
    node: Arc<Node>,
    /// The broker's group service, created on first use ([`ClusterInner::group_service_of`]).
    groups: Option<Arc<GroupService>>,
    /// Ticks `groups` (sessions, rebalance timeouts) even while no consumer calls in;
    /// stopped with the broker.
    group_timer: Option<Background>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    /// Stops the broker's thread, then the broker (answering what waits on it and closing
    /// its logs).
    fn stop_and_join(mut self) -> Result<()> {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.node.shutdown()
    }
}

pub(crate) struct ClusterInner {
    config: ClusterConfig,
    consensus: Arc<dyn ConsensusStore>,
    transport: Arc<dyn Transport>,
    clock: Arc<dyn Clock>,
    env: Env,
    running: Mutex<BTreeMap<BrokerId, Running>>,
    /// Group services created so far: each gets its own coordinator instance, so no two
    /// (another broker, or the same one restarted) hand out the same member ids.
    group_services: std::sync::atomic::AtomicU64,
    /// Set by [`Cluster::shutdown`] (or drop): consumers stop looking for coordinators.
    shut_down: AtomicBool,
}

impl std::fmt::Debug for ClusterInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterInner")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Starts `config.brokers` brokers (ids `0..brokers`) over an in-memory transport and
    /// consensus store, each keeping its data under `<data_dir>/broker-<id>`.
    pub fn start(config: ClusterConfig) -> Result<Self> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let consensus = Arc::new(InMemoryConsensus::new(clock.clone()));
        let transport = Arc::new(InMemoryTransport::new(clock.clone(), 0));
        Self::start_with(config, consensus, transport, clock)
    }

    /// Starts the brokers over the given consensus store and transport (an application's
    /// own implementations of the traits).
    pub fn start_with(
        config: ClusterConfig,
        consensus: Arc<dyn ConsensusStore>,
        transport: Arc<dyn Transport>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        if config.brokers == 0 {
            return Err(Error::InvalidConfig {
                name: "brokers",
                reason: "a cluster needs at least one broker".into(),
            });
        }
        if config.lease_ms < 3 {
            return Err(Error::InvalidConfig {
                name: "lease_ms",
                reason: format!("{} ms; at least 3 ms", config.lease_ms),
            });
        }
        // A broker renews its lease between waits, and a stopping broker's thread
        // finishes its wait before it sees the stop.
        let max_tick = config.lease_ms / 3;
        if !(1..=max_tick).contains(&config.tick_ms) {
            return Err(Error::InvalidConfig {
                name: "tick_ms",
                reason: format!(
                    "{} ms; it must be 1..={max_tick} ms, at most a third of lease_ms ({} ms)",
                    config.tick_ms, config.lease_ms
                ),
            });
        }
        let env = Env::with_clock(clock.clone());
        let cluster = Self {
            inner: Arc::new(ClusterInner {
                config,
                consensus,
                transport,
                clock,
                env,
                running: Mutex::new(BTreeMap::new()),
                group_services: std::sync::atomic::AtomicU64::new(0),
                shut_down: AtomicBool::new(false),
            }),
        };
        for id in 0..cluster.inner.config.brokers {
            cluster.start_broker(id)?;
        }
        Ok(cluster)
    }

    /// The settings.
    pub fn config(&self) -> &ClusterConfig {
        &self.inner.config
    }

    /// The consensus store the brokers share.
    pub fn consensus(&self) -> &Arc<dyn ConsensusStore> {
        &self.inner.consensus
    }

    /// Creates a topic, placing its replicas on the live brokers (S6), and waits (up to
    /// 10 s) until every partition's leader serves it.
    ///
    /// Errors: [`Error::InvalidTopicName`], [`Error::InvalidConfig`] (among others, no
    /// partitions or more than [`MAX_PARTITIONS_PER_TOPIC`]),
    /// [`Error::InvalidReplicationFactor`] (0, above 10, or above the live brokers),
    /// [`Error::TopicExists`].
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<()> {
        crate::broker::validate_user_topic_name(name)?;
        self.inner.create_topic(name, config)
    }

    /// A consumer with `config` ([`ConsumerConfig::validate`] first: an empty or oversize
    /// group id is [`Error::InvalidGroupId`]; [`Error::LeaderNotAvailable`] when the
    /// `__consumer_offsets` it creates gets no leaders in time): the same [`Consumer`] as
    /// [`crate::Broker::consumer`] gives, reading each partition from its current leader up
    /// to the high watermark. With a group id, the first consumer creates the replicated
    /// `__consumer_offsets` (see [`ClusterConfig::offsets`]); the group's coordinator runs
    /// on the leader of the group's partition of it, commits are acknowledged once
    /// replicated (`acks=all`), and when that leader stops the consumers go on with the
    /// coordinator on the new leader, which reloads the group from the log.
    ///
    /// ```
    /// use std::time::Duration;
    /// use streamlog::{AutoOffsetReset, Cluster, ClusterConfig, ConsumerConfig, OffsetsConfig,
    ///     ProducerConfig, Record, TopicConfig};
    /// # fn main() -> streamlog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let mut config = ClusterConfig::in_memory(3).data_dir(dir.path())
    ///     .offsets(OffsetsConfig::default().num_partitions(5));
    /// config.group_coordinator.initial_rebalance_delay_ms = 0;
    /// let cluster = Cluster::start(config)?;
    /// cluster.create_topic("orders", TopicConfig::default().partitions(2).replication_factor(3))?;
    /// cluster.producer(ProducerConfig::default())?.send("orders", Record::new(b"tea".to_vec()))?;
    ///
    /// let consumer = cluster.consumer(ConsumerConfig::new("billing")
    ///     .auto_offset_reset(AutoOffsetReset::Earliest))?;
    /// consumer.subscribe(&["orders"])?;
    /// let mut records = Vec::new();
    /// while records.is_empty() {
    ///     records = consumer.poll(100, Duration::from_secs(1))?;
    /// }
    /// assert_eq!(records[0].value(), Some(&b"tea"[..]));
    /// consumer.commit()?; // replicated before it returns
    /// # Ok(()) }
    /// ```
    pub fn consumer(&self, config: ConsumerConfig) -> Result<Consumer> {
        let backend = groups::ClusterBackend {
            cluster: self.inner.clone(),
        };
        Consumer::with_backend(config, Arc::new(backend))
    }

    /// The consumer groups the running brokers coordinate, sorted.
    pub fn list_groups(&self) -> Result<Vec<String>> {
        if self.inner.partition_count(CONSUMER_OFFSETS_TOPIC).is_err() {
            return Ok(Vec::new());
        }
        let mut ids = Vec::new();
        for broker in self.running_brokers() {
            let service = self.inner.group_service_of(broker)?;
            ids.extend(service.read_current(|c| c.group_ids()));
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// Group `group_id`'s state, generation, protocol, leader and members, from its
    /// coordinator (the leader of its `__consumer_offsets` partition); `None` when there
    /// is no such group.
    pub fn describe_group(&self, group_id: &str) -> Result<Option<GroupDescription>> {
        match self.coordinator_service(group_id)? {
            Some(service) => Ok(service.read_current(|c| c.describe_group(group_id))),
            None => Ok(None),
        }
    }

    /// Group `group_id`'s committed offsets by (topic, partition), from its coordinator;
    /// empty when it has none.
    pub fn committed_offsets(
        &self,
        group_id: &str,
    ) -> Result<BTreeMap<(String, u32), OffsetAndMetadata>> {
        match self.coordinator_service(group_id)? {
            Some(service) => {
                service.read_current(|_| ());
                Ok(service.store().fetch_all(group_id))
            }
            None => Ok(BTreeMap::new()),
        }
    }

    /// The group service coordinating `group_id`, or `None` before any group exists.
    fn coordinator_service(&self, group_id: &str) -> Result<Option<Arc<GroupService>>> {
        validate_group_id(group_id)?;
        let Ok(partitions) = self.inner.partition_count(CONSUMER_OFFSETS_TOPIC) else {
            return Ok(None);
        };
        let partition = partition_for_group(group_id, partitions);
        let leader = self.inner.leader(CONSUMER_OFFSETS_TOPIC, partition)?;
        self.inner.group_service_of(leader).map(Some)
    }

    /// A producer with `config`.
    pub fn producer(&self, config: ProducerConfig) -> Result<Producer> {
        Ok(Producer::new(self.inner.clone(), config))
    }

    /// The current leader of `partition` of `topic`, as the consensus store has it.
    ///
    /// Errors: [`Error::UnknownTopic`], [`Error::UnknownPartition`],
    /// [`Error::LeaderNotAvailable`] while it has none.
    pub fn leader(&self, topic: &str, partition: u32) -> Result<BrokerId> {
        self.inner.leader(topic, partition)
    }

    /// The partition's state: replicas, leader, leader epoch, ISR.
    pub fn partition_state(&self, topic: &str, partition: u32) -> Result<PartitionState> {
        self.inner.partition_state(topic, partition)
    }

    /// Stops broker `id` as if its process died: its thread stops and its logs close;
    /// its data directory stays, and its lease runs out, after which the controller
    /// moves its leaderships to in-sync followers. Stopping a stopped broker does nothing.
    pub fn stop_broker(&self, id: BrokerId) -> Result<()> {
        self.inner.check_id(id)?;
        let running = self.inner.running.lock().remove(&id);
        running.map_or(Ok(()), Running::stop_and_join)
    }

    /// Starts broker `id` on its data directory (again): it registers, opens its logs,
    /// and follows (or leads) as the partition states say. Starting a running broker does
    /// nothing.
    pub fn start_broker(&self, id: BrokerId) -> Result<()> {
        self.inner.check_id(id)?;
        let mut running = self.inner.running.lock();
        if running.get(&id).is_some_and(|r| r.node.is_halted()) {
            // Halted by a storage failure: its thread has ended and its logs are closed.
            if let Some(halted) = running.remove(&id) {
                // Nothing is left to flush: what its shutdown reports is already known.
                let _ = halted.stop_and_join();
            }
        }
        if running.contains_key(&id) {
            return Ok(());
        }
        let dir = self.inner.config.data_dir.join(format!("broker-{id}"));
        let node = Arc::new(Node::open(
            id,
            &dir,
            self.inner.config.clone(),
            self.inner.consensus.clone(),
            self.inner.transport.clone(),
            self.inner.env.clone(),
        )?);
        // One step here, so that the broker hosts its partitions when this returns.
        node.step(None)?;
        let direct: Arc<dyn DirectReceiver> = node.clone();
        self.inner
            .transport
            .set_direct_receiver(id, Some(Arc::downgrade(&direct)));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (node, stop) = (node.clone(), stop.clone());
            let tick = Duration::from_millis(self.inner.config.tick_ms);
            std::thread::Builder::new()
                .name(format!("streamlog-broker-{id}"))
                .spawn(move || {
                    while !stop.load(Ordering::Acquire) && !node.is_halted() {
                        if node.step(Some(tick)).is_err() {
                            std::thread::sleep(tick);
                        }
                    }
                })
                .map_err(|e| Error::io(&dir, e))?
        };
        running.insert(
            id,
            Running {
                node,
                groups: None,
                group_timer: None,
                stop,
                thread: Some(thread),
            },
        );
        Ok(())
    }

    /// The ids of the running brokers.
    pub fn running_brokers(&self) -> Vec<BrokerId> {
        let running = self.inner.running.lock();
        running
            .iter()
            .filter(|(_, r)| !r.node.is_halted())
            .map(|(&id, _)| id)
            .collect()
    }

    /// Running broker `id`, to read its replicas.
    ///
    /// Errors: [`Error::UnknownBroker`], [`Error::BrokerStopped`].
    pub fn broker(&self, id: BrokerId) -> Result<ClusterBroker> {
        self.inner.check_id(id)?;
        let node = self
            .inner
            .node(id)
            .ok_or(Error::BrokerStopped { broker: id })?;
        Ok(ClusterBroker { node })
    }

    /// Stops every broker, closing their logs.
    pub fn shutdown(self) -> Result<()> {
        self.inner.stop_all()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.inner.stop_all();
    }
}

impl ClusterInner {
    /// Creates a topic (internal names allowed) and waits for its leaders; see
    /// [`Cluster::create_topic`].
    fn create_topic(&self, name: &str, config: TopicConfig) -> Result<()> {
        validate_topic_name(name)?;
        if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&config.partitions) {
            return Err(Error::InvalidConfig {
                name: "partitions",
                reason: format!(
                    "{} is outside [1, {MAX_PARTITIONS_PER_TOPIC}] (a cluster's topic)",
                    config.partitions
                ),
            });
        }
        let consensus = &self.consensus;
        let live: BTreeSet<BrokerId> = consensus.live_brokers()?.into_iter().collect();
        let start = name
            .bytes()
            .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
        // Placement before the other settings: a replication factor it cannot honour,
        // 0 included, is Kafka's InvalidReplicationFactor, not a config error.
        let placement = place_replicas(config.partitions, config.replication_factor, &live, start)?;
        config.validate()?;
        let states: Vec<PartitionState> = placement.into_iter().map(PartitionState::new).collect();
        consensus.create_topic(name, TopicRecord::new(config.clone(), states))?;
        self.wait_for_leaders(name, config.partitions)
    }

    /// Waits (up to 10 s) until every partition's leader serves it.
    fn wait_for_leaders(&self, name: &str, partitions: u32) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        for partition in 0..partitions {
            let key = PartitionKey {
                topic: name.to_string(),
                partition,
            };
            while !self.leader_serves(&key) {
                if Instant::now() >= deadline {
                    return Err(Error::LeaderNotAvailable {
                        topic: name.to_string(),
                        partition,
                    });
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        Ok(())
    }

    fn check_id(&self, id: BrokerId) -> Result<()> {
        if id >= self.config.brokers {
            return Err(Error::UnknownBroker {
                broker: id,
                brokers: (0..self.config.brokers).collect(),
            });
        }
        Ok(())
    }

    fn node(&self, id: BrokerId) -> Option<Arc<Node>> {
        let running = self.running.lock();
        running
            .get(&id)
            .filter(|r| !r.node.is_halted())
            .map(|r| r.node.clone())
    }

    fn partition_state(&self, topic: &str, partition: u32) -> Result<PartitionState> {
        match self.consensus.partition_state(topic, partition)? {
            Some(state) => Ok(state.value),
            None => {
                let partitions = self.partition_count(topic)?;
                Err(Error::UnknownPartition {
                    topic: topic.to_string(),
                    partition,
                    partitions,
                })
            }
        }
    }

    fn leader(&self, topic: &str, partition: u32) -> Result<BrokerId> {
        self.partition_state(topic, partition)?
            .leader
            .ok_or_else(|| Error::LeaderNotAvailable {
                topic: topic.to_string(),
                partition,
            })
    }

    fn partition_count(&self, topic: &str) -> Result<u32> {
        match self.consensus.topic(topic)? {
            Some(record) => Ok(record.value.partitions.len() as u32),
            None => Err(Error::UnknownTopic {
                name: topic.to_string(),
            }),
        }
    }

    /// Whether the partition's leader (per the store) is running and leads it.
    fn leader_serves(&self, key: &PartitionKey) -> bool {
        self.leader(&key.topic, key.partition)
            .ok()
            .and_then(|leader| self.node(leader))
            .is_some_and(|node| node.leads(key))
    }

    fn stop_all(&self) -> Result<()> {
        self.shut_down.store(true, Ordering::Release);
        let running = std::mem::take(&mut *self.running.lock());
        for r in running.values() {
            r.stop.store(true, Ordering::Release);
        }
        let mut first_error = None;
        for (_, mut r) in running {
            if let Some(thread) = r.thread.take() {
                let _ = thread.join();
            }
            if let Err(e) = r.node.shutdown() {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// A running broker of a [`Cluster`], to read the replicas it hosts.
#[derive(Debug, Clone)]
pub struct ClusterBroker {
    node: Arc<Node>,
}

impl ClusterBroker {
    /// The broker id.
    pub fn id(&self) -> BrokerId {
        self.node.id()
    }

    /// The broker's replicas of `topic`.
    ///
    /// Errors: [`Error::UnknownTopic`] when it hosts no partition of it.
    pub fn topic(&self, name: &str) -> Result<ClusterTopic> {
        let partitions: BTreeMap<u32, Arc<Partition>> = self
            .node
            .logs()
            .into_iter()
            .filter(|(k, _)| k.topic == name)
            .map(|(k, log)| (k.partition, log))
            .collect();
        if partitions.is_empty() {
            return Err(Error::UnknownTopic {
                name: name.to_string(),
            });
        }
        Ok(ClusterTopic {
            name: name.to_string(),
            partitions,
        })
    }
}

/// One broker's replicas of a topic.
#[derive(Debug, Clone)]
pub struct ClusterTopic {
    name: String,
    partitions: BTreeMap<u32, Arc<Partition>>,
}

impl ClusterTopic {
    /// The topic name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The partitions this broker hosts.
    pub fn partitions(&self) -> Vec<u32> {
        self.partitions.keys().copied().collect()
    }

    /// This broker's replica of `partition`: its log, read up to the high watermark by
    /// [`Partition::read_from`] (consumers never see records not yet replicated).
    ///
    /// Errors: [`Error::UnknownPartition`] when this broker hosts no replica of it.
    pub fn partition(&self, partition: u32) -> Result<Arc<Partition>> {
        self.partitions
            .get(&partition)
            .cloned()
            .ok_or_else(|| Error::UnknownPartition {
                topic: self.name.clone(),
                partition,
                partitions: self.partitions.len() as u32,
            })
    }
}

#[cfg(test)]
mod tests;
