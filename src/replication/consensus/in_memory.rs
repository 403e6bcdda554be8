//! [`InMemoryConsensus`]: a [`ConsensusStore`] held in one process's memory, shared by the
//! brokers of that process (or of a simulation) through an `Arc`, with fault hooks: a
//! broker cut off from the store ([`InMemoryConsensus::set_reachable`]) and the whole store
//! down ([`InMemoryConsensus::set_available`]). [`ConsensusSession`] is one broker's
//! connection to it, so a cut-off broker fails on every call, reads included.

use std::collections::BTreeSet;
use std::sync::Arc;

use parking_lot::Mutex;

use super::change_log::DEFAULT_CHANGE_CAPACITY;
use super::state::State;
use super::{BrokerRegistration, Changes, ConsensusStore, Controller, TopicRecord, Versioned};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::replication::{BrokerId, PartitionState};

/// A [`ConsensusStore`] in memory: one mutex around the whole state, leases judged by the
/// clock it is given (lazily, on every call), and the last
/// [`with_change_capacity`](Self::with_change_capacity) changes kept for watchers
/// (1024 by default).
///
/// Fault hooks for simulations: [`set_reachable`](Self::set_reachable) cuts one broker off
/// (like a broker partitioned from ZooKeeper: its calls fail, its lease is not renewed and
/// lapses on time), [`set_available`](Self::set_available) takes the whole store down.
///
/// ```
/// use std::sync::Arc;
/// use streamlog::replication::consensus::{Change, ConsensusStore, InMemoryConsensus};
/// use streamlog::{Error, ManualClock};
///
/// # fn main() -> streamlog::Result<()> {
/// let clock = ManualClock::new(0);
/// let store = Arc::new(InMemoryConsensus::new(Arc::new(clock.clone())));
/// let (one, two) = (store.session(1), store.session(2));
/// one.register_broker(1, 1_000)?;
/// two.register_broker(2, 1_000)?;
/// let seen = store.revision()?;
///
/// // Broker 1 is cut off: its calls fail and its lease lapses.
/// store.set_reachable(1, false);
/// assert!(matches!(one.renew_lease(1), Err(Error::ConsensusUnavailable { broker: Some(1), .. })));
/// clock.advance_ms(600);
/// two.renew_lease(2)?;
/// clock.advance_ms(600);
/// assert_eq!(two.live_brokers()?, vec![2]);
/// assert_eq!(two.changes_since(seen)?.changes, vec![Change::BrokerExpired { broker: 1 }]);
///
/// // Back in touch, it learns it is gone and registers again.
/// store.set_reachable(1, true);
/// assert!(matches!(one.renew_lease(1), Err(Error::LeaseExpired { broker: 1 })));
/// one.register_broker(1, 1_000)?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct InMemoryConsensus {
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: State,
    available: bool,
    unreachable: BTreeSet<BrokerId>,
    /// The latest time the clock has shown the store: leases are judged by a time that
    /// never steps back (a wall clock may), as ZooKeeper times sessions on a monotonic
    /// clock, so that a renewal never ends a lease before the deadline it had.
    latest_ms: i64,
}

impl Inner {
    /// The clock's `now`, or the latest time seen if the clock stepped back.
    fn monotonic(&mut self, now_ms: i64) -> i64 {
        self.latest_ms = self.latest_ms.max(now_ms);
        self.latest_ms
    }
}

impl InMemoryConsensus {
    /// An empty store (revision 0) reading time from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            inner: Mutex::new(Inner {
                state: State::new(DEFAULT_CHANGE_CAPACITY),
                available: true,
                unreachable: BTreeSet::new(),
                latest_ms: i64::MIN,
            }),
        }
    }

    /// Keeps the last `capacity` changes for [`ConsensusStore::changes_since`] (older ones
    /// answer [`Error::ChangesCompacted`]).
    #[must_use]
    pub fn with_change_capacity(self, capacity: usize) -> Self {
        self.inner.lock().state.set_change_capacity(capacity);
        self
    }

    /// Cuts `broker` off from the store (`false`) or reconnects it (`true`). While cut off,
    /// every call made for it fails with [`Error::ConsensusUnavailable`] before reaching
    /// the store, so its lease lapses on time unless it reconnects and renews first.
    pub fn set_reachable(&self, broker: BrokerId, reachable: bool) {
        let mut inner = self.inner.lock();
        if reachable {
            inner.unreachable.remove(&broker);
        } else {
            inner.unreachable.insert(broker);
        }
    }

    /// Takes the whole store down (`false`) or brings it back (`true`). While down, every
    /// call fails with [`Error::ConsensusUnavailable`]. Leases that lapsed before it went
    /// down are noticed then; as ZooKeeper does after a leader election, every lease gets a
    /// fresh term when it comes back, since nobody could renew meanwhile.
    pub fn set_available(&self, available: bool) {
        let mut inner = self.inner.lock();
        if available == inner.available {
            return;
        }
        let now_ms = inner.monotonic(self.clock.now_ms());
        if available {
            inner.state.refresh_leases(now_ms);
        } else {
            inner.state.expire(now_ms);
        }
        inner.available = available;
    }

    /// Broker `broker`'s connection to this store: every call through it fails while
    /// `broker` is cut off, reads included.
    pub fn session(self: &Arc<Self>, broker: BrokerId) -> ConsensusSession {
        ConsensusSession {
            store: Arc::clone(self),
            broker,
        }
    }

    /// Runs `op` on the state for a call made by `callers`, after the fault checks and
    /// after noticing lapsed leases.
    fn with<T>(
        &self,
        callers: &[BrokerId],
        op: impl FnOnce(&mut State, i64) -> Result<T>,
    ) -> Result<T> {
        let mut inner = self.inner.lock();
        if !inner.available {
            return Err(Error::ConsensusUnavailable {
                broker: None,
                reason: "the consensus store is down".into(),
            });
        }
        if let Some(&broker) = callers.iter().find(|b| inner.unreachable.contains(b)) {
            return Err(Error::ConsensusUnavailable {
                broker: Some(broker),
                reason: format!("broker {broker} is cut off from the consensus store"),
            });
        }
        let now_ms = inner.monotonic(self.clock.now_ms());
        inner.state.expire(now_ms);
        let result = op(&mut inner.state, now_ms);
        inner.state.debug_check();
        result
    }

    /// A call made for `broker` (if the call names one).
    fn run<T>(
        &self,
        broker: Option<BrokerId>,
        op: impl FnOnce(&mut State, i64) -> Result<T>,
    ) -> Result<T> {
        match broker {
            Some(broker) => self.with(&[broker], op),
            None => self.with(&[], op),
        }
    }
}

/// One broker's connection to an [`InMemoryConsensus`] (from
/// [`InMemoryConsensus::session`]): a [`ConsensusStore`] whose every call fails while that
/// broker is cut off. Give each simulated broker its own session.
#[derive(Debug, Clone)]
pub struct ConsensusSession {
    store: Arc<InMemoryConsensus>,
    broker: BrokerId,
}

impl ConsensusSession {
    /// The broker this session belongs to.
    pub fn broker(&self) -> BrokerId {
        self.broker
    }

    /// A call through this session, also made for `broker` if the call names one.
    fn run<T>(
        &self,
        broker: Option<BrokerId>,
        op: impl FnOnce(&mut State, i64) -> Result<T>,
    ) -> Result<T> {
        match broker {
            Some(broker) => self.store.with(&[self.broker, broker], op),
            None => self.store.with(&[self.broker], op),
        }
    }
}

/// Implements [`ConsensusStore`] for a type with a `run(broker, op)` method.
macro_rules! consensus_store_via_run {
    ($ty:ty) => {
        impl ConsensusStore for $ty {
            fn register_broker(
                &self,
                broker: BrokerId,
                lease_ms: u64,
            ) -> Result<BrokerRegistration> {
                self.run(Some(broker), |s, now| s.register(broker, lease_ms, now))
            }

            fn renew_lease(&self, broker: BrokerId) -> Result<()> {
                self.run(Some(broker), |s, now| s.renew(broker, now))
            }

            fn unregister_broker(&self, broker: BrokerId) -> Result<()> {
                self.run(Some(broker), |s, _| {
                    s.unregister(broker);
                    Ok(())
                })
            }

            fn live_brokers(&self) -> Result<Vec<BrokerId>> {
                self.run(None, |s, _| Ok(s.live_brokers()))
            }

            fn live_broker_epochs(&self) -> Result<Vec<(BrokerId, u64)>> {
                self.run(None, |s, _| Ok(s.live_broker_epochs()))
            }

            fn try_become_controller(&self, broker: BrokerId) -> Result<Controller> {
                self.run(Some(broker), |s, _| s.try_become_controller(broker))
            }

            fn controller(&self) -> Result<Option<Controller>> {
                self.run(None, |s, _| Ok(s.controller()))
            }

            fn create_topic(&self, name: &str, record: TopicRecord) -> Result<u64> {
                self.run(None, |s, _| s.create_topic(name, record))
            }

            fn topic(&self, name: &str) -> Result<Option<Versioned<TopicRecord>>> {
                self.run(None, |s, _| Ok(s.topic(name)))
            }

            fn topics(&self) -> Result<Vec<String>> {
                self.run(None, |s, _| Ok(s.topics()))
            }

            fn set_topic(
                &self,
                name: &str,
                record: TopicRecord,
                expected_version: u64,
            ) -> Result<u64> {
                self.run(None, |s, _| s.set_topic(name, record, expected_version))
            }

            fn add_partitions(&self, name: &str, partitions: Vec<PartitionState>) -> Result<u64> {
                self.run(None, |s, _| s.add_partitions(name, partitions))
            }

            fn delete_topic(&self, name: &str) -> Result<()> {
                self.run(None, |s, _| s.delete_topic(name))
            }

            fn partition_state(
                &self,
                topic: &str,
                partition: u32,
            ) -> Result<Option<Versioned<PartitionState>>> {
                self.run(None, |s, _| Ok(s.partition_state(topic, partition)))
            }

            fn set_partition_state(
                &self,
                topic: &str,
                partition: u32,
                state: PartitionState,
                expected_version: u64,
            ) -> Result<u64> {
                self.run(None, |s, _| {
                    s.set_partition_state(topic, partition, state, expected_version)
                })
            }

            fn revision(&self) -> Result<u64> {
                self.run(None, |s, _| Ok(s.revision()))
            }

            fn changes_since(&self, revision: u64) -> Result<Changes> {
                self.run(None, |s, _| s.changes_since(revision))
            }
        }
    };
}

consensus_store_via_run!(InMemoryConsensus);
consensus_store_via_run!(ConsensusSession);
