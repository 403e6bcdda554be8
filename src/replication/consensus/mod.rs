//! [`ConsensusStore`]: what ZooKeeper held for Kafka — live brokers (with leases), the
//! controller seat and its epoch, topics, and per partition the replicas, leader, leader
//! epoch and ISR, written with compare-and-set on a version — plus a change feed to watch
//! it. [`InMemoryConsensus`] (`in_memory.rs`) is the implementation for one process and
//! for simulations, with fault hooks.
//!
//! Versions and revisions: the store counts changes. Every change (a registration, a lease
//! lapsing, a new controller, a topic or partition write) takes the next *revision*, and a
//! key's *version* is the revision of the last write that changed it. Versions of a key
//! therefore only grow, and never repeat across a delete and a re-create.

mod change_log;
mod in_memory;
mod state;

pub use in_memory::{ConsensusSession, InMemoryConsensus};

use super::messages::BrokerId;
use super::partition_state::PartitionState;
use crate::error::Result;
use crate::topic::TopicConfig;

/// What the store handed a broker that registered: its lease and its broker epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BrokerRegistration {
    /// The broker.
    pub broker: BrokerId,
    /// A number that grows with every registration of any broker (the revision of this
    /// one), so a broker that lost its lease and came back is told apart from its former
    /// self (Kafka's broker epoch).
    pub broker_epoch: u64,
    /// How long the lease lasts after registering or renewing, in milliseconds.
    pub lease_ms: u64,
    /// When the lease lapses unless renewed: it is live while `now_ms < expires_at_ms`.
    pub expires_at_ms: i64,
}

/// The broker holding the controller seat, and the seat's epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Controller {
    /// The controller.
    pub broker: BrokerId,
    /// Grows by one with every new controller; a broker ignores requests stamped with an
    /// older epoch than the newest it has seen (fencing a controller that lost its seat).
    pub epoch: i32,
}

/// A topic as the store holds it: its configuration and its partitions' states.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicRecord {
    /// The topic's configuration; `config.partitions` equals `partitions.len()`.
    pub config: TopicConfig,
    /// Partition `i`'s state at index `i`.
    pub partitions: Vec<PartitionState>,
}

impl TopicRecord {
    /// A record of `partitions`, with `config.partitions` set to their count.
    pub fn new(mut config: TopicConfig, partitions: Vec<PartitionState>) -> Self {
        config.partitions = u32::try_from(partitions.len()).unwrap_or(u32::MAX);
        Self { config, partitions }
    }
}

/// A value and its version: the revision of the last write that changed it. Pass the
/// version back to a compare-and-set write.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// The version of `value`.
    pub version: u64,
    /// The value.
    pub value: T,
}

/// One change in the store; see [`ConsensusStore::changes_since`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A broker registered (a new lease).
    BrokerRegistered {
        /// The broker.
        broker: BrokerId,
        /// Its new broker epoch.
        broker_epoch: u64,
    },
    /// A broker's lease lapsed without renewal; the broker is gone.
    BrokerExpired {
        /// The broker.
        broker: BrokerId,
    },
    /// A broker gave up its lease (controlled shutdown).
    BrokerUnregistered {
        /// The broker.
        broker: BrokerId,
    },
    /// The controller seat changed hands: a new controller, or `None` when the seat
    /// freed (its holder's lease lapsed or it unregistered).
    ControllerChanged {
        /// The new controller, if any.
        controller: Option<Controller>,
    },
    /// A topic was created, with all its partitions.
    TopicCreated {
        /// The topic.
        topic: String,
        /// Its version.
        version: u64,
    },
    /// A topic's configuration or partition count changed (new partitions appear here).
    TopicChanged {
        /// The topic.
        topic: String,
        /// Its new version.
        version: u64,
    },
    /// A topic was deleted, with its partitions.
    TopicDeleted {
        /// The topic.
        topic: String,
    },
    /// An existing partition's state (leader, epochs, ISR, replicas) changed.
    PartitionChanged {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The state's new version.
        version: u64,
    },
}

/// The changes after a revision, oldest first, and the revision they bring the caller to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    /// The store's revision when read: pass it to the next `changes_since`.
    pub revision: u64,
    /// Every change after the revision asked for, up to `revision`, in order. Each change
    /// takes one revision, so `changes[i]` happened at `revision - changes.len() + 1 + i`.
    pub changes: Vec<Change>,
}

impl Changes {
    /// The changes with the revision each happened at.
    pub fn with_revisions(&self) -> impl Iterator<Item = (u64, &Change)> {
        let first = (self.revision + 1).saturating_sub(self.changes.len() as u64);
        (first..).zip(self.changes.iter())
    }
}

/// What ZooKeeper held for Kafka: live brokers with leases, the controller seat, topics and
/// partition states with compare-and-set, and a feed of changes.
///
/// Every call reads the store's clock: a lease that lapsed is noticed (and reported as
/// [`Change::BrokerExpired`]) by whichever call comes first. Calls fail with
/// [`Error::ConsensusUnavailable`](crate::Error::ConsensusUnavailable) when the store
/// cannot be reached; nothing is then read or written.
///
/// A broker registers, renews its lease well within `lease_ms`, tries for the controller
/// seat, and the controller writes partition states with the version it read:
///
/// ```
/// use std::sync::Arc;
/// use streamlog::replication::consensus::{ConsensusStore, InMemoryConsensus, TopicRecord};
/// use streamlog::replication::PartitionState;
/// use streamlog::{Error, ManualClock, TopicConfig};
///
/// # fn main() -> streamlog::Result<()> {
/// let clock = ManualClock::new(0);
/// let store: Arc<dyn ConsensusStore> = Arc::new(InMemoryConsensus::new(Arc::new(clock.clone())));
/// store.register_broker(1, 6_000)?;
/// store.register_broker(2, 6_000)?;
/// assert_eq!(store.try_become_controller(1)?.broker, 1);
/// assert_eq!(store.try_become_controller(2)?.broker, 1, "the seat is taken");
///
/// let record = TopicRecord::new(TopicConfig::default(), vec![PartitionState::new(vec![1, 2])]);
/// store.create_topic("orders", record)?;
/// let read = store.partition_state("orders", 0)?.expect("created");
/// let mut state = read.value.clone();
/// state.isr = vec![1];
/// state.partition_epoch += 1;
/// store.set_partition_state("orders", 0, state.clone(), read.version)?;
/// // A second write based on the same read is refused.
/// let stale = store.set_partition_state("orders", 0, state, read.version);
/// assert!(matches!(stale, Err(Error::VersionConflict { .. })));
///
/// // Broker 1 stops renewing: its lease lapses and the seat passes to broker 2.
/// clock.advance_ms(4_000);
/// store.renew_lease(2)?;
/// clock.advance_ms(2_000);
/// assert_eq!(store.live_brokers()?, vec![2]);
/// let controller = store.try_become_controller(2)?;
/// assert_eq!((controller.broker, controller.epoch), (2, 2));
/// # Ok(()) }
/// ```
///
/// An implementation over a real coordination service (etcd, ZooKeeper, a Raft log) maps
/// leases to sessions, versions to its modification revisions, and `changes_since` to its
/// watch API.
pub trait ConsensusStore: Send + Sync {
    /// Registers `broker` with a lease of `lease_ms` milliseconds (more than 0).
    ///
    /// Errors: [`BrokerAlreadyRegistered`](crate::Error::BrokerAlreadyRegistered) while a
    /// live lease exists for that id; `InvalidConfig` for `lease_ms == 0`.
    fn register_broker(&self, broker: BrokerId, lease_ms: u64) -> Result<BrokerRegistration>;

    /// Extends `broker`'s lease to `lease_ms` from now.
    ///
    /// Errors: [`LeaseExpired`](crate::Error::LeaseExpired) if the lease lapsed (or was
    /// never taken): the broker is already gone for the cluster and must register again.
    fn renew_lease(&self, broker: BrokerId) -> Result<()>;

    /// Gives up `broker`'s lease (and the controller seat if it holds it). A broker without
    /// a lease is not an error.
    fn unregister_broker(&self, broker: BrokerId) -> Result<()>;

    /// The brokers holding live leases, in id order.
    fn live_brokers(&self) -> Result<Vec<BrokerId>>;

    /// Each broker holding a live lease with the broker epoch of its registration (what
    /// [`ConsensusStore::register_broker`] returned), in id order. A new process of a
    /// broker registers anew with a higher epoch: a leader uses it to refuse fetches an
    /// earlier process of a follower sent (Kafka's broker epochs, KIP-903), which would
    /// vouch for records that process's crash may have lost.
    fn live_broker_epochs(&self) -> Result<Vec<(BrokerId, u64)>>;

    /// Takes the controller seat for `broker` if it is free, and returns the controller:
    /// `broker` itself if it won (or already held the seat), else the holder. Every new
    /// controller gets the next controller epoch. The seat frees when its holder's lease
    /// lapses or it unregisters.
    ///
    /// Errors: [`LeaseExpired`](crate::Error::LeaseExpired) if `broker` holds no live lease.
    fn try_become_controller(&self, broker: BrokerId) -> Result<Controller>;

    /// The controller, or `None` while the seat is free.
    fn controller(&self) -> Result<Option<Controller>>;

    /// Creates topic `name` (a valid topic name) with its partitions; returns its version.
    ///
    /// Errors: `TopicExists`, `InvalidTopicName`, `InvalidConfig` when there are no
    /// partitions or `config.partitions` differs from their count.
    fn create_topic(&self, name: &str, record: TopicRecord) -> Result<u64>;

    /// Topic `name` and its version, or `None` if there is none. The version changes with
    /// every write to the topic, its partitions' states included.
    fn topic(&self, name: &str) -> Result<Option<Versioned<TopicRecord>>>;

    /// The topics' names, in order.
    fn topics(&self) -> Result<Vec<String>>;

    /// Replaces topic `name`'s record if its version is still `expected_version`; returns
    /// the new version. Partitions may be added (not removed); partitions whose state
    /// changes get the new version too.
    ///
    /// Errors: `UnknownTopic`; [`VersionConflict`](crate::Error::VersionConflict) on a stale
    /// version; `InvalidConfig` for fewer partitions than before or a `config.partitions`
    /// that differs from their count.
    fn set_topic(&self, name: &str, record: TopicRecord, expected_version: u64) -> Result<u64>;

    /// Appends `partitions` to topic `name` (numbered from its current count) and returns
    /// the topic's new version.
    ///
    /// Errors: `UnknownTopic`; `InvalidConfig` for an empty list.
    fn add_partitions(&self, name: &str, partitions: Vec<PartitionState>) -> Result<u64>;

    /// Deletes topic `name` and its partitions.
    ///
    /// Errors: `UnknownTopic`.
    fn delete_topic(&self, name: &str) -> Result<()>;

    /// A partition's state and version, or `None` if the topic or partition does not exist.
    fn partition_state(
        &self,
        topic: &str,
        partition: u32,
    ) -> Result<Option<Versioned<PartitionState>>>;

    /// Replaces a partition's state if its version is still `expected_version`; returns the
    /// new version.
    ///
    /// Errors: `UnknownTopic`, `UnknownPartition`;
    /// [`VersionConflict`](crate::Error::VersionConflict) on a stale version.
    fn set_partition_state(
        &self,
        topic: &str,
        partition: u32,
        state: PartitionState,
        expected_version: u64,
    ) -> Result<u64>;

    /// The store's revision: the number of changes so far. It never goes down.
    fn revision(&self) -> Result<u64>;

    /// The changes after `revision`, oldest first. A `revision` past the store's own gives
    /// no changes.
    ///
    /// Errors: [`ChangesCompacted`](crate::Error::ChangesCompacted) when the store no longer
    /// holds them; read the whole state again and resume from `revision()`.
    fn changes_since(&self, revision: u64) -> Result<Changes>;
}
