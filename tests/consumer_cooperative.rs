//! The consumer with the `cooperative-sticky` assignor: Kafka's incremental cooperative
//! rebalance protocol (KIP-429), through the public API, on a real broker in a temp dir.
//!
//! The broker runs on a frozen `ManualClock` and every consumer is polled from the test's
//! one thread with zero timeouts, one poll each per round, so no timer fires unasked and the
//! order of events is the same on every run. A ledger fed by the rebalance callbacks
//! (assigned adds an owner, revoked and lost remove it) checks on every add that nobody
//! else owns the partition; after every round the consumers' own assignments must not
//! overlap either, and every record read must come from a partition its reader owns.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use streamlog::{
    AutoOffsetReset, Broker, BrokerConfig, Consumer, ConsumerConfig, Env, FileStorage, ManualClock,
    RebalanceListener, Record, TopicConfig,
};

type Tp = (String, u32);

/// The most rounds any phase of a test may take.
const ROUNDS: usize = 200;
const COOPERATIVE: &str = "cooperative-sticky";
const START_MS: i64 = 1_700_000_000_000;

fn open(dir: &Path, clock: &ManualClock) -> Broker {
    let mut config = BrokerConfig::default().background_threads(false);
    config.group_coordinator.initial_rebalance_delay_ms = 0;
    config.offsets = config.offsets.num_partitions(4);
    let env = Env {
        storage: Arc::new(FileStorage),
        clock: Arc::new(clock.clone()),
    };
    Broker::open_with_env(dir, config, env).unwrap()
}

fn partitions(topic: &str, n: u32) -> Vec<Tp> {
    (0..n).map(|p| (topic.to_owned(), p)).collect()
}

/// What the callbacks and the driver saw, shared by every consumer of a test.
#[derive(Default)]
struct Ledger {
    owners: BTreeMap<Tp, String>,
    /// (consumer, "assigned" | "revoked" | "lost", partitions), in order.
    events: Vec<(String, &'static str, Vec<Tp>)>,
    /// Broken rules, asserted by the driver after every round (a panic inside a callback
    /// would unwind through the consumer).
    violations: Vec<String>,
    /// Commits in the revoked callback that failed.
    commit_failures: Vec<String>,
    /// Times each record (topic, partition, offset) was processed.
    processed: BTreeMap<(String, u32, u64), u32>,
    /// Records read by a consumer that was in the middle of a rebalance.
    read_while_rebalancing: usize,
}

impl Ledger {
    fn events_of(&self, name: &str) -> Vec<(&'static str, Vec<Tp>)> {
        self.events
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, kind, tps)| (*kind, tps.clone()))
            .collect()
    }
}

type Shared = Arc<Mutex<Ledger>>;

/// Keeps the ledger and commits in `on_partitions_revoked`, as an application that
/// processes records between polls does.
struct Tracker {
    name: String,
    ledger: Shared,
}

impl RebalanceListener for Tracker {
    fn on_partitions_revoked(&mut self, consumer: &Consumer, partitions: &[Tp]) {
        let committed = consumer.commit();
        let mut l = self.ledger.lock();
        if let Err(e) = committed {
            let v = format!(
                "{}: the commit in the revoked callback failed: {e}",
                self.name
            );
            l.commit_failures.push(v);
        }
        for tp in partitions {
            match l.owners.remove(tp) {
                Some(owner) if owner == self.name => {}
                other => {
                    let v = format!("{} revoked {tp:?}, owned by {other:?}", self.name);
                    l.violations.push(v);
                }
            }
        }
        l.events
            .push((self.name.clone(), "revoked", partitions.to_vec()));
    }

    fn on_partitions_assigned(&mut self, _: &Consumer, partitions: &[Tp]) {
        let mut l = self.ledger.lock();
        for tp in partitions {
            if let Some(owner) = l.owners.insert(tp.clone(), self.name.clone()) {
                let v = format!("{} was assigned {tp:?} while {owner} owns it", self.name);
                l.violations.push(v);
            }
        }
        l.events
            .push((self.name.clone(), "assigned", partitions.to_vec()));
    }

    fn on_partitions_lost(&mut self, _: &Consumer, partitions: &[Tp]) {
        let mut l = self.ledger.lock();
        for tp in partitions {
            if l.owners.get(tp) == Some(&self.name) {
                l.owners.remove(tp);
            }
        }
        l.events
            .push((self.name.clone(), "lost", partitions.to_vec()));
    }
}

/// The members of group "g", polled in order each round.
struct Group<'a> {
    broker: &'a Broker,
    ledger: Shared,
    topics: Vec<&'static str>,
    members: Vec<(String, Consumer)>,
    rounds: std::cell::Cell<usize>,
}

impl<'a> Group<'a> {
    fn new(broker: &'a Broker, topics: &[&'static str]) -> Self {
        Self {
            broker,
            ledger: Shared::default(),
            topics: topics.to_vec(),
            members: Vec::new(),
            rounds: std::cell::Cell::new(0),
        }
    }

    /// A new member named `name` (its client id) with these assignors, subscribed.
    fn join_with(&mut self, name: &str, assignor: &str) {
        let listener = Tracker {
            name: name.to_owned(),
            ledger: self.ledger.clone(),
        };
        let config = ConsumerConfig::new("g")
            .client_id(name)
            .assignor(assignor)
            .auto_offset_reset(AutoOffsetReset::Earliest)
            .enable_auto_commit(false)
            .rebalance_listener(listener);
        let consumer = self.broker.consumer(config).unwrap();
        consumer.subscribe(&self.topics).unwrap();
        self.members.push((name.to_owned(), consumer));
    }

    fn join(&mut self, name: &str) {
        self.join_with(name, COOPERATIVE);
    }

    /// Closes a member: it commits and revokes everything in its callback, then leaves.
    fn close(&mut self, name: &str) {
        let i = self.members.iter().position(|(n, _)| n == name).unwrap();
        let (_, consumer) = self.members.remove(i);
        consumer.close().unwrap();
        self.check();
    }

    /// Every member polls once (zero timeout) and processes what it got; then the rules
    /// are checked. Each round starts with the next member, so that newcomers and old
    /// owners take their turns in every order.
    fn round(&self) {
        let n = self.members.len();
        let start = self.rounds.get();
        self.rounds.set(start + 1);
        for i in 0..n {
            let (name, consumer) = &self.members[(start + i) % n];
            let records = consumer.poll(50, Duration::ZERO).unwrap();
            let rebalancing = consumer.generation().is_none();
            let mut l = self.ledger.lock();
            for r in &records {
                let tp = (r.topic().to_owned(), r.partition());
                if l.owners.get(&tp) != Some(name) {
                    let v = format!("{name} read {tp:?}, owned by {:?}", l.owners.get(&tp));
                    l.violations.push(v);
                }
                *l.processed.entry((tp.0, tp.1, r.offset())).or_default() += 1;
            }
            if rebalancing {
                l.read_while_rebalancing += records.len();
            }
        }
        self.check();
    }

    /// No broken rule so far, and the consumers' assignments do not overlap.
    fn check(&self) {
        let l = self.ledger.lock();
        assert!(
            l.violations.is_empty() && l.commit_failures.is_empty(),
            "{:#?}\n{:#?}\nevents: {:#?}",
            l.violations,
            l.commit_failures,
            l.events
        );
        let mut owner: BTreeMap<Tp, &str> = BTreeMap::new();
        for (name, consumer) in &self.members {
            for tp in consumer.assignment() {
                if let Some(other) = owner.insert(tp.clone(), name) {
                    panic!("{tp:?} is in the assignments of {other} and {name}");
                }
            }
        }
    }

    fn assignments(&self) -> BTreeMap<String, Vec<Tp>> {
        self.members
            .iter()
            .map(|(name, c)| (name.clone(), c.assignment()))
            .collect()
    }

    /// The generation when every member is Stable in the same one and every partition of
    /// `all` is assigned.
    fn settled(&self, all: &[Tp]) -> Option<i32> {
        let generations: BTreeSet<Option<i32>> =
            self.members.iter().map(|(_, c)| c.generation()).collect();
        let [Some(generation)] = generations.into_iter().collect::<Vec<_>>()[..] else {
            return None;
        };
        let owned: BTreeSet<Tp> = self.assignments().into_values().flatten().collect();
        (owned == all.iter().cloned().collect()).then_some(generation)
    }

    /// Rounds (calling `between` before each) until the group is settled, then a few more
    /// to see that nothing changes; returns the generation.
    fn settle(&self, all: &[Tp], mut between: impl FnMut(&Self)) -> i32 {
        for _ in 0..ROUNDS {
            between(self);
            self.round();
            if let Some(generation) = self.settled(all) {
                let before = self.assignments();
                for _ in 0..5 {
                    self.round();
                }
                assert_eq!(self.settled(all), Some(generation), "the group moved on");
                assert_eq!(self.assignments(), before, "the assignment moved");
                return generation;
            }
        }
        panic!(
            "not settled after {ROUNDS} rounds: generations {:?}, assignments {:?}, events {:#?}",
            self.members
                .iter()
                .map(|(_, c)| c.generation())
                .collect::<Vec<_>>(),
            self.assignments(),
            self.ledger.lock().events
        );
    }
}

/// Every member holds the same number of partitions, give or take one.
fn assert_balanced(assignments: &BTreeMap<String, Vec<Tp>>) {
    let counts: Vec<usize> = assignments.values().map(Vec::len).collect();
    let (min, max) = (counts.iter().min(), counts.iter().max());
    assert!(
        max.zip(min).is_some_and(|(max, min)| max - min <= 1),
        "unbalanced: {assignments:?}"
    );
}

fn set(tps: &[Tp]) -> BTreeSet<Tp> {
    tps.iter().cloned().collect()
}

#[test]
fn a_third_member_takes_only_what_moves_and_no_partition_ever_has_two_owners() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS);
    let broker = open(dir.path(), &clock);
    broker
        .create_topic("t", TopicConfig::default().partitions(7))
        .unwrap();
    let all = partitions("t", 7);
    let mut group = Group::new(&broker, &["t"]);
    group.join("a");
    group.settle(&all, |_| {});
    group.join("b");
    let g2 = group.settle(&all, |_| {});
    let before = group.assignments();
    assert_balanced(&before);
    group.ledger.lock().events.clear();

    group.join("c");
    let g3 = group.settle(&all, |_| {});
    let after = group.assignments();
    assert_balanced(&after);
    assert_eq!(
        g3,
        g2 + 2,
        "the rebalance c's join starts, and the follow-up that hands out what it revoked"
    );

    let l = group.ledger.lock();
    let mut revoked = BTreeSet::new();
    for old in ["a", "b"] {
        let events = l.events_of(old);
        let kept = set(&after[old]);
        assert!(
            kept.is_subset(&set(&before[old])),
            "{old} gained: {after:?}"
        );
        let moved: Vec<Tp> = before[old]
            .iter()
            .filter(|tp| !kept.contains(*tp))
            .cloned()
            .collect();
        // Revoked at most once, exactly what moved; nothing added in either rebalance (a
        // member whose SyncGroup meets the follow-up rebalance sees one assigned call).
        let revokes: Vec<Vec<Tp>> = events
            .iter()
            .filter(|(kind, _)| *kind == "revoked")
            .map(|(_, tps)| tps.clone())
            .collect();
        let expected = if moved.is_empty() {
            vec![]
        } else {
            vec![moved.clone()]
        };
        assert_eq!(revokes, expected, "{old}: {events:?}");
        assert!(
            events
                .iter()
                .all(|(kind, tps)| *kind == "revoked" || tps.is_empty()),
            "{old}: {events:?}"
        );
        revoked.extend(moved);
    }
    assert!(!revoked.is_empty());
    // c gets nothing while the partitions are being revoked, then exactly those.
    let c_events = l.events_of("c");
    let (last, first) = c_events.split_last().unwrap();
    assert_eq!(last, &("assigned", after["c"].clone()));
    assert!(
        first.iter().all(|e| e == &("assigned", vec![])),
        "{c_events:?}"
    );
    assert_eq!(set(&after["c"]), revoked);
    assert!(l.events.iter().all(|(_, kind, _)| *kind != "lost"));
}

#[test]
fn records_produced_before_and_during_a_rebalance_are_processed_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS);
    let broker = open(dir.path(), &clock);
    let topic = broker
        .create_topic("t", TopicConfig::default().partitions(6))
        .unwrap();
    let all = partitions("t", 6);
    let produced = std::cell::Cell::new(0u32);
    let produce = |n: u32| {
        for _ in 0..n {
            let i = produced.get();
            let value = Record::new(i.to_be_bytes().to_vec());
            topic.append_to(i % 6, vec![value]).unwrap();
            produced.set(i + 1);
        }
    };
    produce(60);
    let mut group = Group::new(&broker, &["t"]);
    group.join("a");
    group.join("b");
    group.settle(&all, |_| produce(1));
    let before_c = produced.get();

    group.join("c");
    group.ledger.lock().read_while_rebalancing = 0;
    let mut during = 0;
    group.settle(&all, |g| {
        if g.settled(&all).is_none() {
            during += 1;
        }
        produce(1);
    });
    assert!(during > 0, "records were produced during the rebalance");
    assert!(produced.get() > before_c);
    let l = group.ledger.lock();
    assert!(
        l.read_while_rebalancing > 0,
        "members keep reading the partitions they keep while they rebalance"
    );
    assert!(
        l.events.iter().any(|(_, kind, _)| *kind == "revoked"),
        "{:?}",
        l.events
    );
    drop(l);

    // Drain, then check every record once.
    for _ in 0..ROUNDS {
        if group.ledger.lock().processed.len() >= produced.get() as usize {
            break;
        }
        group.round();
    }
    {
        let l = group.ledger.lock();
        assert_eq!(l.processed.len(), produced.get() as usize);
        let twice: Vec<_> = l.processed.iter().filter(|(_, n)| **n != 1).collect();
        assert!(twice.is_empty(), "processed more than once: {twice:?}");
    }

    // Everyone leaves, committing in the revoked callback; a newcomer finds nothing left.
    for name in ["a", "b", "c"] {
        group.close(name);
    }
    group.join("d");
    let done = group.settle(&all, |_| {});
    assert!(done > 0);
    for p in 0..6 {
        let d = &group.members[0].1;
        assert_eq!(
            d.committed("t", p).unwrap(),
            Some(topic.partition(p).unwrap().log_end_offset())
        );
    }
    let l = group.ledger.lock();
    assert_eq!(l.processed.len(), produced.get() as usize);
    assert!(l.processed.values().all(|n| *n == 1));
}

#[test]
fn a_member_that_leaves_hands_its_partitions_over_in_one_rebalance() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS);
    let broker = open(dir.path(), &clock);
    broker
        .create_topic("t", TopicConfig::default().partitions(7))
        .unwrap();
    let all = partitions("t", 7);
    let mut group = Group::new(&broker, &["t"]);
    for name in ["a", "b", "c"] {
        group.join(name);
    }
    let g = group.settle(&all, |_| {});
    let before = group.assignments();
    assert_balanced(&before);
    group.ledger.lock().events.clear();

    group.close("c");
    assert_eq!(
        group.ledger.lock().events_of("c"),
        [("revoked", before["c"].clone())]
    );
    let g_after = group.settle(&all, |_| {});
    assert_eq!(g_after, g + 1, "one rebalance");
    let after = group.assignments();
    assert_balanced(&after);
    let l = group.ledger.lock();
    let mut added = BTreeSet::new();
    for name in ["a", "b"] {
        let gained: Vec<Tp> = after[name]
            .iter()
            .filter(|tp| !before[name].contains(tp))
            .cloned()
            .collect();
        assert!(set(&before[name]).is_subset(&set(&after[name])));
        assert_eq!(l.events_of(name), [("assigned", gained.clone())], "{name}");
        added.extend(gained);
    }
    assert_eq!(added, set(&before["c"]));
}

#[test]
fn assignments_stay_balanced_and_complete_as_members_come_and_go() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS);
    let broker = open(dir.path(), &clock);
    broker
        .create_topic("s", TopicConfig::default().partitions(5))
        .unwrap();
    broker
        .create_topic("t", TopicConfig::default().partitions(4))
        .unwrap();
    let mut all = partitions("s", 5);
    all.extend(partitions("t", 4));
    let mut group = Group::new(&broker, &["s", "t"]);
    for name in ["a", "b", "c", "d"] {
        group.join(name);
        group.settle(&all, |_| {});
        assert_balanced(&group.assignments());
    }
    for name in ["b", "d"] {
        group.close(name);
        group.settle(&all, |_| {});
        assert_balanced(&group.assignments());
    }
    group.join("e");
    group.settle(&all, |_| {});
    assert_balanced(&group.assignments());
    let l = group.ledger.lock();
    assert!(l.events.iter().all(|(_, kind, _)| *kind != "lost"));
    assert_eq!(
        l.owners.keys().cloned().collect::<Vec<_>>(),
        all,
        "the callbacks' view agrees"
    );
}

#[test]
fn a_group_whose_members_all_list_an_eager_assignor_stays_eager() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS);
    let broker = open(dir.path(), &clock);
    broker
        .create_topic("t", TopicConfig::default().partitions(4))
        .unwrap();
    let all = partitions("t", 4);
    let mut group = Group::new(&broker, &["t"]);
    // Kafka's upgrade path: cooperative-sticky listed first, but with range as well the
    // member follows the eager protocol; with a range-only member the group uses range.
    group.join_with("a", "cooperative-sticky,range");
    let g = group.settle(&all, |_| {});
    group.join_with("b", "range");
    assert_eq!(group.settle(&all, |_| {}), g + 1);
    let l = group.ledger.lock();
    assert_eq!(
        l.events_of("a"),
        [
            ("assigned", all.clone()),
            ("revoked", all.clone()),
            ("assigned", all[..2].to_vec())
        ],
        "eager: everything revoked before the rebalance, then the new assignment (range)"
    );
    assert_eq!(l.events_of("b"), [("assigned", all[2..].to_vec())]);
}

#[test]
fn cooperative_and_eager_members_share_a_cooperative_sticky_group_safely() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS);
    let broker = open(dir.path(), &clock);
    broker
        .create_topic("t", TopicConfig::default().partitions(6))
        .unwrap();
    let all = partitions("t", 6);
    let mut group = Group::new(&broker, &["t"]);
    group.join("a"); // cooperative
    group.settle(&all, |_| {});
    group.join_with("b", "cooperative-sticky,range"); // eager, same assignor chosen
    group.settle(&all, |_| {});
    assert_balanced(&group.assignments());
    group.join("c");
    group.settle(&all, |_| {});
    assert_balanced(&group.assignments());
    let l = group.ledger.lock();
    // The eager member revokes its whole assignment at each rebalance, the cooperative
    // ones only what moves.
    let b_revoked: Vec<usize> = l
        .events_of("b")
        .iter()
        .filter(|(kind, _)| *kind == "revoked")
        .map(|(_, tps)| tps.len())
        .collect();
    assert!(b_revoked.iter().any(|n| *n > 0), "{:?}", l.events);
    let a_revoked: usize = l
        .events_of("a")
        .iter()
        .filter(|(kind, _)| *kind == "revoked")
        .map(|(_, tps)| tps.len())
        .sum();
    assert!(a_revoked < 6, "a kept some partitions: {:?}", l.events);
}

#[test]
fn a_member_past_max_poll_interval_loses_its_partitions_and_rejoins() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS);
    let broker = open(dir.path(), &clock);
    broker
        .create_topic("t", TopicConfig::default().partitions(4))
        .unwrap();
    let all = partitions("t", 4);
    let ledger = Shared::default();
    let member = |name: &str, max_poll: Duration| {
        let listener = Tracker {
            name: name.to_owned(),
            ledger: ledger.clone(),
        };
        let config = ConsumerConfig::new("g")
            .client_id(name)
            .assignor(COOPERATIVE)
            .enable_auto_commit(false)
            .max_poll_interval(max_poll)
            .rebalance_listener(listener);
        let c = broker.consumer(config).unwrap();
        c.subscribe(&["t"]).unwrap();
        c
    };
    let slow = member("slow", Duration::from_millis(1000));
    let fast = member("fast", Duration::from_secs(300));
    let both = |done: &dyn Fn() -> bool| {
        for _ in 0..ROUNDS {
            if done() {
                return;
            }
            slow.poll(10, Duration::ZERO).unwrap();
            fast.poll(10, Duration::ZERO).unwrap();
        }
        panic!("stuck: {:?}", ledger.lock().events);
    };
    both(&|| slow.assignment().len() == 2 && fast.assignment().len() == 2);
    let slow_had = slow.assignment();
    ledger.lock().events.clear();

    // Only the fast one polls while the clock moves past slow's max.poll.interval.ms: the
    // group drops slow and fast takes everything.
    for _ in 0..ROUNDS {
        if fast.assignment().len() == 4 {
            break;
        }
        clock.advance_ms(200);
        fast.poll(10, Duration::ZERO).unwrap();
    }
    assert_eq!(fast.assignment(), all);
    assert_eq!(slow.assignment(), slow_had, "it does not know yet");
    {
        // As Kafka's lost partitions: another member may own them before the callback.
        let mut l = ledger.lock();
        assert_eq!(l.violations.len(), 2, "{:?}", l.violations);
        l.violations.clear();
    }

    // Slow polls again: its partitions are lost (never revoked), it rejoins, and fast
    // gives two up cooperatively.
    both(&|| slow.assignment().len() == 2 && fast.assignment().len() == 2);
    let l = ledger.lock();
    assert!(l.violations.is_empty(), "{:?}", l.violations);
    let slow_events = l.events_of("slow");
    assert_eq!(slow_events[0], ("lost", slow_had));
    assert!(slow_events.iter().all(|(kind, _)| *kind != "revoked"));
    assert_eq!(
        slow_events.last().map(|(_, tps)| tps.clone()),
        Some(slow.assignment())
    );
    let fast_revoked: Vec<_> = l
        .events_of("fast")
        .into_iter()
        .filter(|(kind, _)| *kind == "revoked")
        .collect();
    assert_eq!(fast_revoked, [("revoked", slow.assignment())]);
}

#[test]
fn four_consumers_in_four_threads_process_every_record_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS);
    let broker = Arc::new(open(dir.path(), &clock));
    let topic = broker
        .create_topic("t", TopicConfig::default().partitions(8))
        .unwrap();
    for i in 0..400u32 {
        let value = Record::new(i.to_be_bytes().to_vec());
        topic.append_to(i % 8, vec![value]).unwrap();
    }
    // Each consumer also produces one record on each of its first 50 polls, so records
    // keep coming while the group rebalances.
    let total = 400 + 4 * 50;
    let ledger = Shared::default();
    // Nobody closes until everybody has stopped polling: a member that closes while the
    // group is between its JoinGroup and SyncGroup answers cannot commit (Kafka's
    // RebalanceInProgress), and a member still polling would then take its partitions
    // over from the older commit and read those records again, as Kafka's would.
    let all_stopped = Arc::new(std::sync::Barrier::new(4));
    let failures_while_polling = Arc::new(Mutex::new(None));
    let threads: Vec<_> = (0..4u32)
        .map(|i| {
            let (broker, ledger, topic) = (broker.clone(), ledger.clone(), topic.clone());
            let (all_stopped, failures_while_polling) =
                (all_stopped.clone(), failures_while_polling.clone());
            std::thread::spawn(move || {
                let name = format!("m{i}");
                let listener = Tracker {
                    name: name.clone(),
                    ledger: ledger.clone(),
                };
                let config = ConsumerConfig::new("g")
                    .client_id(name.clone())
                    .assignor(COOPERATIVE)
                    .auto_offset_reset(AutoOffsetReset::Earliest)
                    .enable_auto_commit(false)
                    .rebalance_listener(listener);
                let c = broker.consumer(config).unwrap();
                c.subscribe(&["t"]).unwrap();
                let start = std::time::Instant::now();
                for n in 0.. {
                    if ledger.lock().processed.len() >= total {
                        break;
                    }
                    assert!(
                        start.elapsed() < Duration::from_secs(60),
                        "{name} stuck at {} of {total}",
                        ledger.lock().processed.len()
                    );
                    if n < 50 {
                        let value = Record::new(vec![u8::try_from(i).unwrap_or(0)]);
                        topic.append_to(n % 8, vec![value]).unwrap();
                    }
                    let records = c.poll(50, Duration::from_millis(20)).unwrap();
                    let mut l = ledger.lock();
                    for r in &records {
                        let tp = (r.topic().to_owned(), r.partition());
                        if l.owners.get(&tp) != Some(&name) {
                            let v = format!("{name} read {tp:?}, owned by {:?}", l.owners.get(&tp));
                            l.violations.push(v);
                        }
                        *l.processed.entry((tp.0, tp.1, r.offset())).or_default() += 1;
                    }
                }
                if all_stopped.wait().is_leader() {
                    *failures_while_polling.lock() = Some(ledger.lock().commit_failures.clone());
                }
                all_stopped.wait();
                c.close().unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let l = ledger.lock();
    // Commits made while closing may fail (see `all_stopped`); everything was processed
    // by then, so only those made while the group was polling are checked.
    let failures = failures_while_polling.lock().take();
    assert_eq!(failures, Some(Vec::new()));
    assert!(l.violations.is_empty(), "{:#?}", l.violations);
    assert_eq!(l.processed.len(), total);
    let twice: Vec<_> = l.processed.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "processed more than once: {twice:?}");
    assert!(
        l.events.iter().all(|(_, kind, _)| *kind != "lost"),
        "{:?}",
        l.events
    );
}
