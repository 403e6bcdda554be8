//! `ConsensusStore` through `InMemoryConsensus` on a manual clock: leases lapse and are
//! reported, the controller seat has one holder and a growing epoch, compare-and-set
//! refuses stale writes with the versions involved, the change feed is ordered and says
//! when it was compacted, topics are created and deleted, the fault hooks cut brokers off,
//! and a proptest holds the store to a small model under random operations.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use proptest::prelude::*;
use streamlog::replication::consensus::{
    Change, ConsensusStore, Controller, InMemoryConsensus, TopicRecord,
};
use streamlog::replication::{BrokerId, PartitionState};
use streamlog::{Error, ManualClock, TopicConfig};

fn store() -> (ManualClock, Arc<InMemoryConsensus>) {
    let clock = ManualClock::new(10_000);
    let store = Arc::new(InMemoryConsensus::new(Arc::new(clock.clone())));
    (clock, store)
}

fn record(partitions: usize) -> TopicRecord {
    TopicRecord::new(
        TopicConfig::default(),
        (0..partitions)
            .map(|_| PartitionState::new(vec![1, 2, 3]))
            .collect(),
    )
}

fn changes(store: &dyn ConsensusStore, since: u64) -> Vec<Change> {
    store.changes_since(since).unwrap().changes
}

// --- Leases ---

#[test]
fn a_lapsed_lease_leaves_the_live_set_and_is_reported() {
    let (clock, store) = store();
    store.register_broker(1, 1_000).unwrap();
    store.register_broker(2, 5_000).unwrap();
    let seen = store.revision().unwrap();
    clock.advance_ms(999);
    assert_eq!(store.live_brokers().unwrap(), vec![1, 2]);
    assert!(changes(&*store, seen).is_empty());
    clock.advance_ms(1);
    assert_eq!(store.live_brokers().unwrap(), vec![2]);
    assert_eq!(
        changes(&*store, seen),
        vec![Change::BrokerExpired { broker: 1 }]
    );
    assert_eq!(store.revision().unwrap(), seen + 1);
}

#[test]
fn renewing_keeps_a_broker_and_renewing_too_late_is_lease_expired() {
    let (clock, store) = store();
    let first = store.register_broker(1, 1_000).unwrap();
    assert_eq!(first.expires_at_ms, 11_000);
    clock.advance_ms(900);
    store.renew_lease(1).unwrap();
    clock.advance_ms(900);
    assert_eq!(store.live_brokers().unwrap(), vec![1], "renewed at 900 ms");
    clock.advance_ms(100);
    assert!(matches!(
        store.renew_lease(1),
        Err(Error::LeaseExpired { broker: 1 })
    ));
    assert!(store.live_brokers().unwrap().is_empty());
    let again = store.register_broker(1, 1_000).unwrap();
    assert!(again.broker_epoch > first.broker_epoch);
    assert!(matches!(
        store.renew_lease(7),
        Err(Error::LeaseExpired { broker: 7 })
    ));
}

#[test]
fn registering_over_a_live_lease_is_refused() {
    let (clock, store) = store();
    store.register_broker(1, 1_000).unwrap();
    assert!(matches!(
        store.register_broker(1, 1_000),
        Err(Error::BrokerAlreadyRegistered { broker: 1 })
    ));
    assert!(matches!(
        store.register_broker(2, 0),
        Err(Error::InvalidConfig {
            name: "lease_ms",
            ..
        })
    ));
    clock.advance_ms(1_000);
    store.register_broker(1, 1_000).unwrap();
}

#[test]
fn unregistering_reports_the_broker_and_frees_the_seat() {
    let (_clock, store) = store();
    store.register_broker(1, 1_000).unwrap();
    store.try_become_controller(1).unwrap();
    let seen = store.revision().unwrap();
    store.unregister_broker(1).unwrap();
    store.unregister_broker(1).unwrap();
    assert_eq!(
        changes(&*store, seen),
        vec![
            Change::BrokerUnregistered { broker: 1 },
            Change::ControllerChanged { controller: None },
        ]
    );
    assert_eq!(store.controller().unwrap(), None);
    assert!(store.live_brokers().unwrap().is_empty());
}

// --- Controller ---

#[test]
fn one_broker_wins_the_seat_and_the_others_see_it() {
    let (_clock, store) = store();
    for b in 1..=3 {
        store.register_broker(b, 1_000).unwrap();
    }
    assert_eq!(store.controller().unwrap(), None);
    let won = store.try_become_controller(2).unwrap();
    assert_eq!(
        won,
        Controller {
            broker: 2,
            epoch: 1
        }
    );
    assert_eq!(store.try_become_controller(1).unwrap(), won);
    assert_eq!(store.try_become_controller(3).unwrap(), won);
    assert_eq!(store.try_become_controller(2).unwrap(), won);
    assert_eq!(store.controller().unwrap(), Some(won));
    assert!(matches!(
        store.try_become_controller(9),
        Err(Error::LeaseExpired { broker: 9 })
    ));
}

#[test]
fn racing_threads_elect_exactly_one_controller() {
    let (_clock, store) = store();
    for b in 0..8 {
        store.register_broker(b, 1_000).unwrap();
    }
    let seen = store.revision().unwrap();
    let winners: HashSet<Controller> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|b| {
                let store = Arc::clone(&store);
                s.spawn(move || store.try_become_controller(b).unwrap())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(winners.iter().next().unwrap().epoch, 1);
    assert_eq!(changes(&*store, seen).len(), 1);
}

#[test]
fn the_seat_passes_on_when_the_controller_lease_lapses_with_a_new_epoch() {
    let (clock, store) = store();
    for b in 1..=3 {
        store.register_broker(b, 1_000).unwrap();
    }
    assert_eq!(store.try_become_controller(1).unwrap().epoch, 1);
    clock.advance_ms(600);
    store.renew_lease(2).unwrap();
    store.renew_lease(3).unwrap();
    let seen = store.revision().unwrap();
    clock.advance_ms(400);
    assert_eq!(store.controller().unwrap(), None);
    assert_eq!(
        changes(&*store, seen),
        vec![
            Change::BrokerExpired { broker: 1 },
            Change::ControllerChanged { controller: None },
        ]
    );
    let next = store.try_become_controller(3).unwrap();
    assert_eq!(
        next,
        Controller {
            broker: 3,
            epoch: 2
        }
    );
    assert_eq!(store.try_become_controller(2).unwrap(), next);
    assert!(matches!(
        store.try_become_controller(1),
        Err(Error::LeaseExpired { broker: 1 })
    ));
    assert_eq!(
        changes(&*store, seen + 2),
        vec![Change::ControllerChanged {
            controller: Some(next)
        }]
    );
}

// --- Compare-and-set ---

#[test]
fn a_stale_partition_write_is_a_version_conflict_naming_both_versions() {
    let (_clock, store) = store();
    store.create_topic("orders", record(2)).unwrap();
    let read = store.partition_state("orders", 1).unwrap().unwrap();
    let mut state = read.value.clone();
    state.isr = vec![1, 2];
    state.partition_epoch += 1;
    let written = store
        .set_partition_state("orders", 1, state.clone(), read.version)
        .unwrap();
    assert!(written > read.version);
    let now = store.partition_state("orders", 1).unwrap().unwrap();
    assert_eq!((now.version, &now.value), (written, &state));
    match store.set_partition_state("orders", 1, state, read.version) {
        Err(Error::VersionConflict {
            key,
            expected,
            actual,
        }) => {
            assert_eq!(key, "/brokers/topics/orders/partitions/1/state");
            assert_eq!((expected, actual), (read.version, written));
        }
        other => panic!("expected a version conflict, got {other:?}"),
    }
    let untouched = store.partition_state("orders", 0).unwrap().unwrap();
    assert_eq!(
        untouched.version, read.version,
        "partition 0 kept its version"
    );
}

#[test]
fn a_topic_write_based_on_a_read_before_a_partition_write_conflicts() {
    let (_clock, store) = store();
    let created = store.create_topic("orders", record(1)).unwrap();
    let read = store.topic("orders").unwrap().unwrap();
    assert_eq!(read.version, created);
    let mut isr_change = read.value.partitions[0].clone();
    isr_change.isr = vec![1];
    let written = store
        .set_partition_state("orders", 0, isr_change, created)
        .unwrap();
    let mut config_change = read.value.clone();
    config_change.config.min_insync_replicas = 2;
    match store.set_topic("orders", config_change.clone(), read.version) {
        Err(Error::VersionConflict {
            key,
            expected,
            actual,
        }) => {
            assert_eq!(key, "/brokers/topics/orders");
            assert_eq!((expected, actual), (created, written));
        }
        other => panic!("expected a version conflict, got {other:?}"),
    }
    // Re-read, re-apply, retry.
    let reread = store.topic("orders").unwrap().unwrap();
    assert_eq!(reread.value.partitions[0].isr, vec![1]);
    let mut retry = reread.value.clone();
    retry.config.min_insync_replicas = 2;
    let version = store.set_topic("orders", retry, reread.version).unwrap();
    let last = store.topic("orders").unwrap().unwrap();
    assert_eq!(last.version, version);
    assert_eq!(last.value.config.min_insync_replicas, 2);
    assert_eq!(
        store.partition_state("orders", 0).unwrap().unwrap().version,
        written,
        "an unchanged partition keeps its version"
    );
}

#[test]
fn a_topic_write_reports_each_partition_it_changes() {
    let (_clock, store) = store();
    let created = store.create_topic("orders", record(2)).unwrap();
    let seen = store.revision().unwrap();
    let mut next = record(3);
    next.partitions[1].leader = Some(2);
    next.partitions[1].leader_epoch = 1;
    let version = store.set_topic("orders", next.clone(), created).unwrap();
    assert_eq!(
        changes(&*store, seen),
        vec![
            Change::PartitionChanged {
                topic: "orders".into(),
                partition: 1,
                version
            },
            Change::TopicChanged {
                topic: "orders".into(),
                version
            },
        ]
    );
    let versions: Vec<u64> = (0..3)
        .map(|p| store.partition_state("orders", p).unwrap().unwrap().version)
        .collect();
    assert_eq!(versions, [created, version, version]);
    assert_eq!(store.topic("orders").unwrap().unwrap().value, next);
}

#[test]
fn partition_writes_name_the_missing_topic_or_partition() {
    let (_clock, store) = store();
    store.create_topic("orders", record(2)).unwrap();
    let state = PartitionState::new(vec![1]);
    assert!(matches!(
        store.set_partition_state("nope", 0, state.clone(), 1),
        Err(Error::UnknownTopic { name }) if name == "nope"
    ));
    assert!(matches!(
        store.set_partition_state("orders", 2, state, 1),
        Err(Error::UnknownPartition {
            partition: 2,
            partitions: 2,
            ..
        })
    ));
    assert_eq!(store.partition_state("orders", 2).unwrap(), None);
    assert_eq!(store.partition_state("nope", 0).unwrap(), None);
}

// --- Change feed ---

#[test]
fn changes_come_in_order_with_their_revisions() {
    let (_clock, store) = store();
    let start = store.revision().unwrap();
    assert_eq!(start, 0);
    let reg = store.register_broker(1, 1_000).unwrap();
    let leader = store.try_become_controller(1).unwrap();
    let created = store.create_topic("orders", record(1)).unwrap();
    let state = store.partition_state("orders", 0).unwrap().unwrap();
    let written = store
        .set_partition_state("orders", 0, state.value, state.version)
        .unwrap();
    store.delete_topic("orders").unwrap();
    let feed = store.changes_since(start).unwrap();
    assert_eq!(
        feed.changes,
        vec![
            Change::BrokerRegistered {
                broker: 1,
                broker_epoch: reg.broker_epoch
            },
            Change::ControllerChanged {
                controller: Some(leader)
            },
            Change::TopicCreated {
                topic: "orders".into(),
                version: created
            },
            Change::PartitionChanged {
                topic: "orders".into(),
                partition: 0,
                version: written
            },
            Change::TopicDeleted {
                topic: "orders".into()
            },
        ]
    );
    assert_eq!(feed.revision, 5);
    let revisions: Vec<u64> = feed.with_revisions().map(|(r, _)| r).collect();
    assert_eq!(revisions, [1, 2, 3, 4, 5]);
    assert_eq!(
        (reg.broker_epoch, created, written),
        (1, 3, 4),
        "versions are revisions"
    );
    let tail = store.changes_since(3).unwrap();
    assert_eq!(tail.changes, feed.changes[3..]);
    assert!(store.changes_since(5).unwrap().changes.is_empty());
}

#[test]
fn a_watcher_too_far_behind_is_told_the_changes_were_compacted() {
    let clock = ManualClock::new(0);
    let store = InMemoryConsensus::new(Arc::new(clock)).with_change_capacity(3);
    for b in 1..=5 {
        store.register_broker(b, 1_000).unwrap();
    }
    match store.changes_since(1) {
        Err(Error::ChangesCompacted { requested, oldest }) => {
            assert_eq!((requested, oldest), (1, 2));
        }
        other => panic!("expected ChangesCompacted, got {other:?}"),
    }
    let kept = store.changes_since(2).unwrap();
    assert_eq!(
        kept.changes,
        (3..=5)
            .map(|b| Change::BrokerRegistered {
                broker: b,
                broker_epoch: u64::from(b)
            })
            .collect::<Vec<_>>()
    );
}

// --- Topics ---

#[test]
fn topics_are_created_once_listed_and_deleted() {
    let (_clock, store) = store();
    let first = store.create_topic("orders", record(2)).unwrap();
    store.create_topic("audit", record(1)).unwrap();
    assert!(matches!(
        store.create_topic("orders", record(1)),
        Err(Error::TopicExists { name }) if name == "orders"
    ));
    assert!(matches!(
        store.create_topic("..", record(1)),
        Err(Error::InvalidTopicName { .. })
    ));
    assert!(matches!(
        store.create_topic("empty", record(0)),
        Err(Error::InvalidConfig {
            name: "partitions",
            ..
        })
    ));
    let mut mismatched = record(2);
    mismatched.config.partitions = 3;
    assert!(matches!(
        store.create_topic("mismatched", mismatched),
        Err(Error::InvalidConfig {
            name: "partitions",
            ..
        })
    ));
    assert_eq!(store.topics().unwrap(), ["audit", "orders"]);
    let orders = store.topic("orders").unwrap().unwrap();
    assert_eq!((orders.version, orders.value), (first, record(2)));

    store.delete_topic("orders").unwrap();
    assert_eq!(store.topic("orders").unwrap(), None);
    assert!(matches!(
        store.delete_topic("orders"),
        Err(Error::UnknownTopic { name }) if name == "orders"
    ));
    let again = store.create_topic("orders", record(1)).unwrap();
    assert!(again > first, "a re-created topic never reuses a version");
    assert_eq!(store.topics().unwrap(), ["audit", "orders"]);
}

#[test]
fn partitions_are_added_at_the_end_and_never_removed() {
    let (_clock, store) = store();
    store.create_topic("orders", record(1)).unwrap();
    let seen = store.revision().unwrap();
    let version = store
        .add_partitions("orders", vec![PartitionState::new(vec![2, 3])])
        .unwrap();
    let topic = store.topic("orders").unwrap().unwrap();
    assert_eq!(topic.version, version);
    assert_eq!(topic.value.config.partitions, 2);
    assert_eq!(topic.value.partitions[1].replicas, vec![2, 3]);
    assert_eq!(
        changes(&*store, seen),
        vec![Change::TopicChanged {
            topic: "orders".into(),
            version
        }]
    );
    assert!(matches!(
        store.set_topic("orders", record(1), version),
        Err(Error::InvalidConfig {
            name: "partitions",
            ..
        })
    ));
    assert!(matches!(
        store.add_partitions("nope", vec![PartitionState::new(vec![1])]),
        Err(Error::UnknownTopic { .. })
    ));
}

// --- Fault hooks ---

#[test]
fn a_broker_cut_off_fails_its_calls_and_loses_its_lease() {
    let (clock, store) = store();
    store.register_broker(1, 1_000).unwrap();
    store.register_broker(2, 1_000).unwrap();
    store.try_become_controller(1).unwrap();
    let one = store.session(1);
    store.set_reachable(1, false);
    for result in [one.renew_lease(1), store.renew_lease(1)] {
        assert!(matches!(
            result,
            Err(Error::ConsensusUnavailable {
                broker: Some(1),
                ..
            })
        ));
    }
    assert!(
        matches!(
            one.live_brokers(),
            Err(Error::ConsensusUnavailable {
                broker: Some(1),
                ..
            })
        ),
        "a session's reads fail too"
    );
    assert_eq!(
        store.live_brokers().unwrap(),
        vec![1, 2],
        "others still see it"
    );
    clock.advance_ms(500);
    store.renew_lease(2).unwrap();
    clock.advance_ms(500);
    assert_eq!(store.live_brokers().unwrap(), vec![2]);
    assert_eq!(
        store.try_become_controller(2).unwrap(),
        Controller {
            broker: 2,
            epoch: 2
        }
    );
    store.set_reachable(1, true);
    assert!(matches!(
        one.renew_lease(1),
        Err(Error::LeaseExpired { broker: 1 })
    ));
    one.register_broker(1, 1_000).unwrap();
    assert_eq!(one.try_become_controller(1).unwrap().broker, 2);
}

#[test]
fn a_store_outage_fails_every_call_and_leases_restart_after_it() {
    let (clock, store) = store();
    store.register_broker(1, 1_000).unwrap();
    store.register_broker(2, 400).unwrap();
    let seen = store.revision().unwrap();
    clock.advance_ms(500);
    // Broker 2's lease lapsed before the outage: it stays lapsed.
    store.set_available(false);
    for result in [
        store.live_brokers().map(drop),
        store.renew_lease(1),
        store.revision().map(drop),
        store.create_topic("orders", record(1)).map(drop),
    ] {
        assert!(matches!(
            result,
            Err(Error::ConsensusUnavailable { broker: None, .. })
        ));
    }
    clock.advance_ms(2_000);
    store.set_available(true);
    assert_eq!(
        changes(&*store, seen),
        vec![Change::BrokerExpired { broker: 2 }],
        "nothing was written during the outage"
    );
    clock.advance_ms(999);
    assert_eq!(
        store.live_brokers().unwrap(),
        vec![1],
        "the lease got a fresh term when the store came back"
    );
    clock.advance_ms(1);
    assert!(store.live_brokers().unwrap().is_empty());
}

// --- Model ---

const TOPIC: &str = "t";
const PARTITIONS: u32 = 2;
const LEASES: [u64; 3] = [100, 300, 1_000];

#[derive(Debug, Clone)]
enum Op {
    Register(BrokerId, usize),
    Renew(BrokerId),
    Unregister(BrokerId),
    Advance(i64),
    BecomeController(BrokerId),
    Write {
        partition: u32,
        stale: bool,
    },
    Reachable(BrokerId, bool),
    Available(bool),
    /// Reads everything and compares it with the model. Reads notice lapsed leases, so
    /// they come only now and then, leaving the store's laziness to be tested.
    Check,
}

fn op() -> impl Strategy<Value = Op> {
    let broker = 0..4u32;
    prop_oneof![
        3 => (broker.clone(), 0..LEASES.len()).prop_map(|(b, l)| Op::Register(b, l)),
        4 => broker.clone().prop_map(Op::Renew),
        1 => broker.clone().prop_map(Op::Unregister),
        4 => (0..400i64).prop_map(Op::Advance),
        3 => broker.clone().prop_map(Op::BecomeController),
        3 => (0..PARTITIONS, any::<bool>()).prop_map(|(p, s)| Op::Write { partition: p, stale: s }),
        1 => (broker, any::<bool>()).prop_map(|(b, r)| Op::Reachable(b, r)),
        1 => prop::bool::weighted(0.7).prop_map(Op::Available),
        2 => Just(Op::Check),
    ]
}

/// What the store should hold: leases as `(lease_ms, expires_at_ms)`.
#[derive(Debug)]
struct Model {
    now_ms: i64,
    leases: BTreeMap<BrokerId, (u64, i64)>,
    controller: Option<Controller>,
    controller_epoch: i32,
    revision: u64,
    versions: Vec<u64>,
    unreachable: BTreeSet<BrokerId>,
    available: bool,
}

/// A result reduced to what the model predicts.
#[derive(Debug, PartialEq)]
enum Outcome {
    Ok(Option<u64>),
    Controller(Controller),
    Unavailable(Option<BrokerId>),
    AlreadyRegistered(BrokerId),
    LeaseExpired(BrokerId),
    Conflict { expected: u64, actual: u64 },
    Other(String),
}

fn outcome<T>(result: streamlog::Result<T>, value: impl FnOnce(T) -> Outcome) -> Outcome {
    match result {
        Ok(v) => value(v),
        Err(Error::ConsensusUnavailable { broker, .. }) => Outcome::Unavailable(broker),
        Err(Error::BrokerAlreadyRegistered { broker }) => Outcome::AlreadyRegistered(broker),
        Err(Error::LeaseExpired { broker }) => Outcome::LeaseExpired(broker),
        Err(Error::VersionConflict {
            expected, actual, ..
        }) => Outcome::Conflict { expected, actual },
        Err(other) => Outcome::Other(other.to_string()),
    }
}

impl Model {
    /// The checks every call passes first: the store is up, the caller is reachable;
    /// then lapsed leases are noticed.
    fn enter(&mut self, caller: Option<BrokerId>) -> Result<(), Outcome> {
        if !self.available {
            return Err(Outcome::Unavailable(None));
        }
        if let Some(b) = caller.filter(|b| self.unreachable.contains(b)) {
            return Err(Outcome::Unavailable(Some(b)));
        }
        self.expire();
        Ok(())
    }

    fn expire(&mut self) {
        let lapsed: Vec<BrokerId> = self
            .leases
            .iter()
            .filter(|(_, (_, expires))| *expires <= self.now_ms)
            .map(|(&b, _)| b)
            .collect();
        for b in lapsed {
            self.gone(b);
        }
    }

    fn gone(&mut self, b: BrokerId) {
        self.leases.remove(&b);
        self.revision += 1;
        if self.controller.is_some_and(|c| c.broker == b) {
            self.controller = None;
            self.revision += 1;
        }
    }

    fn apply(&mut self, op: &Op) -> Outcome {
        let caller = match *op {
            Op::Register(b, _) | Op::Renew(b) | Op::Unregister(b) | Op::BecomeController(b) => {
                Some(b)
            }
            Op::Write { .. } => None,
            Op::Check => return Outcome::Ok(None),
            Op::Advance(ms) => {
                self.now_ms += ms;
                return Outcome::Ok(None);
            }
            Op::Reachable(b, reachable) => {
                if reachable {
                    self.unreachable.remove(&b);
                } else {
                    self.unreachable.insert(b);
                }
                return Outcome::Ok(None);
            }
            Op::Available(available) => {
                if available != self.available {
                    if available {
                        for (lease, expires) in self.leases.values_mut() {
                            *expires = (*expires).max(self.now_ms + *lease as i64);
                        }
                    } else {
                        self.expire();
                    }
                    self.available = available;
                }
                return Outcome::Ok(None);
            }
        };
        if let Err(refused) = self.enter(caller) {
            return refused;
        }
        match *op {
            Op::Register(b, lease) => {
                if self.leases.contains_key(&b) {
                    return Outcome::AlreadyRegistered(b);
                }
                self.revision += 1;
                let lease = LEASES[lease];
                self.leases.insert(b, (lease, self.now_ms + lease as i64));
                Outcome::Ok(Some(self.revision))
            }
            Op::Renew(b) => match self.leases.get_mut(&b) {
                None => Outcome::LeaseExpired(b),
                Some((lease, expires)) => {
                    *expires = self.now_ms + *lease as i64;
                    Outcome::Ok(None)
                }
            },
            Op::Unregister(b) => {
                if self.leases.contains_key(&b) {
                    self.gone(b);
                }
                Outcome::Ok(None)
            }
            Op::BecomeController(b) => {
                if !self.leases.contains_key(&b) {
                    return Outcome::LeaseExpired(b);
                }
                if self.controller.is_none() {
                    self.controller_epoch += 1;
                    self.revision += 1;
                    self.controller = Some(Controller {
                        broker: b,
                        epoch: self.controller_epoch,
                    });
                }
                Outcome::Controller(self.controller.unwrap())
            }
            Op::Write { partition, stale } => {
                let actual = self.versions[partition as usize];
                if stale {
                    return Outcome::Conflict {
                        expected: actual - 1,
                        actual,
                    };
                }
                self.revision += 1;
                self.versions[partition as usize] = self.revision;
                Outcome::Ok(Some(self.revision))
            }
            _ => unreachable!("handled above"),
        }
    }
}

/// Runs `op` on the store; a write stamps the partition with the revision it expects.
fn run(store: &InMemoryConsensus, model: &Model, clock: &ManualClock, op: &Op) -> Outcome {
    match *op {
        Op::Register(b, lease) => outcome(store.register_broker(b, LEASES[lease]), |r| {
            Outcome::Ok(Some(r.broker_epoch))
        }),
        Op::Renew(b) => outcome(store.renew_lease(b), |()| Outcome::Ok(None)),
        Op::Unregister(b) => outcome(store.unregister_broker(b), |()| Outcome::Ok(None)),
        Op::BecomeController(b) => outcome(store.try_become_controller(b), Outcome::Controller),
        Op::Write { partition, stale } => {
            let known = model.versions[partition as usize];
            let expected = if stale { known - 1 } else { known };
            let mut state = PartitionState::new(vec![0, 1, 2]);
            state.partition_epoch = i32::try_from(expected).unwrap();
            outcome(
                store.set_partition_state(TOPIC, partition, state, expected),
                |v| Outcome::Ok(Some(v)),
            )
        }
        Op::Check => Outcome::Ok(None),
        Op::Advance(ms) => {
            clock.advance_ms(ms);
            Outcome::Ok(None)
        }
        Op::Reachable(b, reachable) => {
            store.set_reachable(b, reachable);
            Outcome::Ok(None)
        }
        Op::Available(available) => {
            store.set_available(available);
            Outcome::Ok(None)
        }
    }
}

/// Live brokers and controller as a watcher following the change feed sees them.
#[derive(Debug, Default)]
struct Watcher {
    revision: u64,
    live: BTreeSet<BrokerId>,
    controller: Option<Controller>,
}

impl Watcher {
    fn follow(&mut self, store: &InMemoryConsensus) -> Result<(), TestCaseError> {
        let feed = store.changes_since(self.revision).unwrap();
        prop_assert_eq!(
            feed.changes.len() as u64,
            feed.revision - self.revision,
            "one change per revision"
        );
        for change in feed.changes {
            match change {
                Change::BrokerRegistered { broker, .. } => {
                    prop_assert!(self.live.insert(broker), "registered twice: {}", broker);
                }
                Change::BrokerExpired { broker } | Change::BrokerUnregistered { broker } => {
                    prop_assert!(self.live.remove(&broker), "{} gone twice", broker);
                }
                Change::ControllerChanged { controller } => self.controller = controller,
                Change::PartitionChanged { .. } => {}
                other => prop_assert!(false, "unexpected change {:?}", other),
            }
        }
        self.revision = feed.revision;
        Ok(())
    }
}

fn check(ops: &[Op]) -> Result<(), TestCaseError> {
    let clock = ManualClock::new(0);
    let store = InMemoryConsensus::new(Arc::new(clock.clone()));
    let created = store
        .create_topic(TOPIC, record(PARTITIONS as usize))
        .unwrap();
    let mut model = Model {
        now_ms: 0,
        leases: BTreeMap::new(),
        controller: None,
        controller_epoch: 0,
        revision: created,
        versions: vec![created; PARTITIONS as usize],
        unreachable: BTreeSet::new(),
        available: true,
    };
    let mut watcher = Watcher {
        revision: created,
        ..Watcher::default()
    };
    let mut last_revision = created;
    let mut epochs_seen: BTreeMap<i32, BrokerId> = BTreeMap::new();
    for (i, op) in ops.iter().chain([&Op::Check]).enumerate() {
        let got = run(&store, &model, &clock, op);
        let want = model.apply(op);
        prop_assert_eq!(&got, &want, "step {}: {:?}", i, op);
        if let Outcome::Controller(c) = got {
            // One controller per epoch, ever.
            prop_assert_eq!(*epochs_seen.entry(c.epoch).or_insert(c.broker), c.broker);
        }
        if !matches!(op, Op::Check) || !model.available {
            continue;
        }
        model.expire();
        let revision = store.revision().unwrap();
        prop_assert_eq!(revision, model.revision, "step {}", i);
        prop_assert!(revision >= last_revision);
        last_revision = revision;
        let live = store.live_brokers().unwrap();
        prop_assert_eq!(&live, &model.leases.keys().copied().collect::<Vec<_>>());
        let controller = store.controller().unwrap();
        prop_assert_eq!(controller, model.controller);
        if let Some(c) = controller {
            prop_assert!(
                live.contains(&c.broker),
                "the controller holds a live lease"
            );
        }
        for p in 0..PARTITIONS {
            let state = store.partition_state(TOPIC, p).unwrap().unwrap();
            prop_assert_eq!(state.version, model.versions[p as usize]);
        }
        watcher.follow(&store)?;
        prop_assert_eq!(
            &watcher.live,
            &live.iter().copied().collect::<BTreeSet<_>>()
        );
        prop_assert_eq!(watcher.controller, controller);
    }
    Ok(())
}

/// Cases per run: 256, or `STREAMLOG_MODEL_CASES` for a longer run.
fn model_cases() -> u32 {
    std::env::var("STREAMLOG_MODEL_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: model_cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_store_matches_a_model_of_leases_seat_and_versions(
        ops in prop::collection::vec(op(), 1..120),
    ) {
        check(&ops)?;
    }
}

/// Leases are judged by a time that never steps back: with a wall clock that steps back
/// between a registration and its renewal, renewing never ends the lease before the
/// deadline it already had (`renew_lease` extends a lease; ZooKeeper times sessions on a
/// monotonic clock).
#[test]
fn renewing_a_lease_never_makes_it_lapse_before_the_deadline_it_already_had() {
    let (clock, store) = store();
    clock.set_ms(10_000);
    let registration = store.register_broker(1, 1_000).unwrap();
    assert_eq!(registration.expires_at_ms, 11_000);
    clock.set_ms(5_000); // the wall clock steps back (an NTP correction)
    store.renew_lease(1).unwrap();
    clock.set_ms(10_500);
    assert_eq!(store.live_brokers().unwrap(), vec![1]);
    clock.set_ms(11_000);
    assert_eq!(
        store.live_brokers().unwrap(),
        Vec::<BrokerId>::new(),
        "lapsed on time"
    );
}
