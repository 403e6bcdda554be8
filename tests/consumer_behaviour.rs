//! The `Consumer` through the public API: subscribe / poll / commit, restart from committed
//! offsets (S18), `auto.offset.reset`, seek, standalone `assign`, bad input (seeks, commits
//! by an assigned or a subscribed consumer, group ids: typed errors that change nothing),
//! rebalances when consumers join and leave (threads, bounded waits), rebalance callbacks,
//! `max.poll.interval.ms`, a topic deleted under consumers that read it with others (they
//! go on with the others and commit what still exists, as Kafka's do), and a property test
//! of at-least-once / exactly-once processing by a changing group.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use proptest::prelude::*;
use streamlog::{
    AutoOffsetReset, Broker, BrokerConfig, Consumer, ConsumerConfig, Error, RebalanceListener,
    Record, TopicConfig,
};

const SHORT: Duration = Duration::from_millis(20);
const WAIT: Duration = Duration::from_secs(20);

fn config() -> BrokerConfig {
    let mut config = BrokerConfig::default().background_threads(false);
    config.group_coordinator.initial_rebalance_delay_ms = 0;
    config.offsets = config.offsets.num_partitions(4);
    config
}

fn open(dir: &Path) -> Broker {
    Broker::open(dir, config()).unwrap()
}

fn produce(broker: &Broker, topic: &str, n: u32) {
    let t = broker.topic(topic).unwrap();
    for i in 0..n {
        t.append_to(
            i % t.partition_count(),
            vec![Record::new(i.to_be_bytes().to_vec())],
        )
        .unwrap();
    }
}

fn earliest(group: &str) -> ConsumerConfig {
    ConsumerConfig::new(group)
        .auto_offset_reset(AutoOffsetReset::Earliest)
        .enable_auto_commit(false)
}

/// Polls until `done` or WAIT passes; returns every record's (partition, offset).
fn poll_until(c: &Consumer, mut done: impl FnMut(&Consumer, usize) -> bool) -> Vec<(u32, u64)> {
    let start = Instant::now();
    let mut seen = Vec::new();
    while !done(c, seen.len()) {
        assert!(
            start.elapsed() < WAIT,
            "timed out; assignment {:?}",
            c.assignment()
        );
        for r in c.poll(1000, SHORT).unwrap() {
            seen.push((r.partition(), r.offset()));
        }
    }
    seen
}

#[test]
fn subscribe_poll_commit_and_resume_after_a_broker_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    broker
        .create_topic("orders", TopicConfig::default().partitions(3))
        .unwrap();
    produce(&broker, "orders", 30);
    let c = broker.consumer(earliest("billing")).unwrap();
    c.subscribe(&["orders"]).unwrap();
    let seen = poll_until(&c, |_, n| n >= 30);
    assert_eq!(seen.len(), 30);
    c.commit().unwrap();
    for p in 0..3 {
        assert_eq!(c.committed("orders", p).unwrap(), Some(10));
        assert_eq!(c.position("orders", p).unwrap(), 10);
        assert_eq!(c.lag("orders", p).unwrap(), 0);
    }
    c.close().unwrap();
    produce(&broker, "orders", 6);
    broker.close().unwrap();

    let broker = open(dir.path());
    let c = broker.consumer(earliest("billing")).unwrap();
    c.subscribe(&["orders"]).unwrap();
    let seen = poll_until(&c, |_, n| n >= 6);
    assert_eq!(
        seen.len(),
        6,
        "resumed from the committed offsets: {seen:?}"
    );
    assert!(seen.iter().all(|(_, o)| *o >= 10));
    assert!(c.poll(100, SHORT).unwrap().is_empty());
}

#[test]
fn auto_offset_reset_earliest_latest_and_none() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    broker
        .create_topic("t", TopicConfig::default().partitions(1))
        .unwrap();
    produce(&broker, "t", 5);
    let latest = broker
        .consumer(ConsumerConfig::new("g-latest").enable_auto_commit(false))
        .unwrap();
    latest.assign(&[("t", 0)]).unwrap();
    assert!(latest.poll(10, SHORT).unwrap().is_empty());
    assert_eq!(latest.position("t", 0).unwrap(), 5);
    produce(&broker, "t", 1);
    let got = latest.poll(10, SHORT).unwrap();
    assert_eq!(got.iter().map(|r| r.offset()).collect::<Vec<_>>(), [5]);

    let early = broker.consumer(earliest("g-early")).unwrap();
    early.assign(&[("t", 0)]).unwrap();
    assert_eq!(early.poll(100, SHORT).unwrap().len(), 6);

    let none = broker
        .consumer(ConsumerConfig::new("g-none").auto_offset_reset(AutoOffsetReset::None))
        .unwrap();
    none.assign(&[("t", 0)]).unwrap();
    assert!(matches!(
        none.poll(10, SHORT),
        Err(Error::NoOffsetForPartition { partition: 0, .. })
    ));
    // A committed offset is a position: none is satisfied.
    none.commit_offsets(&[("t", 0, 4)]).unwrap();
    let got = none.poll(10, SHORT).unwrap();
    assert_eq!(got.first().map(|r| r.offset()), Some(4));
}

/// Positions are resolved before anything is read (Kafka's `updateFetchPositions`): a poll
/// that fails on a partition without an offset (`auto.offset.reset = none`) has taken
/// nothing off the others, so their records are delivered by the next poll.
#[test]
fn a_poll_failing_on_a_missing_offset_consumes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    broker
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    let t = broker.topic("t").unwrap();
    for i in 0..3u8 {
        t.append_to(0, vec![Record::new(vec![i])]).unwrap();
    }
    let c = broker
        .consumer(
            ConsumerConfig::new("g")
                .auto_offset_reset(AutoOffsetReset::None)
                .enable_auto_commit(false),
        )
        .unwrap();
    c.assign(&[("t", 0), ("t", 1)]).unwrap();
    c.commit_offsets(&[("t", 0, 0)]).unwrap();
    // t-1 has no committed offset: whichever partition the poll starts with, it fails.
    for _ in 0..2 {
        let err = c.poll(100, SHORT).unwrap_err();
        assert!(
            matches!(err, Error::NoOffsetForPartition { partition: 1, .. }),
            "{err:?}"
        );
        assert_eq!(
            c.position("t", 0).unwrap(),
            0,
            "nothing of t-0 was consumed"
        );
    }
    c.seek("t", 1, 0).unwrap();
    let got = c.poll(100, SHORT).unwrap();
    assert_eq!(
        got.iter().map(|r| r.offset()).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert_eq!(c.position("t", 0).unwrap(), 3);
}

/// As Kafka's fetcher: a read that fails on one partition after another gave records
/// returns those records (their positions move); the failing partition keeps its
/// position, and its error is the poll's once nothing else comes.
#[test]
fn a_read_error_after_records_of_another_partition_returns_them() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let t = broker
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    for p in 0..2 {
        t.append_to(p, (0..3u8).map(|i| Record::new(vec![i; 64])).collect())
            .unwrap();
    }
    // Damage the records of t-1's batch: its CRC no longer matches.
    let log = t.partition_dir(1).join("00000000000000000000.log");
    let mut bytes = std::fs::read(&log).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&log, bytes).unwrap();
    let c = broker
        .consumer(ConsumerConfig::standalone().auto_offset_reset(AutoOffsetReset::Earliest))
        .unwrap();
    c.assign(&[("t", 0), ("t", 1)]).unwrap();
    // The first poll starts with t-0, then fails on t-1.
    let got = c.poll(100, SHORT).unwrap();
    assert_eq!(
        got.iter()
            .map(|r| (r.partition(), r.offset()))
            .collect::<Vec<_>>(),
        [(0, 0), (0, 1), (0, 2)]
    );
    assert_eq!(
        (c.position("t", 0).unwrap(), c.position("t", 1).unwrap()),
        (3, 0)
    );
    let err = c.poll(100, SHORT).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    assert_eq!(c.position("t", 1).unwrap(), 0);
}

#[test]
fn seek_and_bad_input_are_typed_errors_that_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    broker
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    produce(&broker, "t", 10);
    let c = broker.consumer(earliest("g")).unwrap();
    c.assign(&[("t", 0), ("t", 1)]).unwrap();
    c.seek("t", 0, 3).unwrap();
    assert_eq!(c.position("t", 0).unwrap(), 3);
    assert!(matches!(
        c.seek("t", 0, 6),
        Err(Error::OffsetOutOfRange {
            requested: 6,
            log_end: 5,
            ..
        })
    ));
    assert!(matches!(
        c.seek("t", 7, 0),
        Err(Error::UnknownPartition { .. })
    ));
    assert!(matches!(c.seek("u", 0, 0), Err(Error::UnknownTopic { .. })));
    assert_eq!(c.position("t", 0).unwrap(), 3);
    let got = c.poll(100, SHORT).unwrap();
    assert_eq!(
        got.iter()
            .filter(|r| r.partition() == 0)
            .map(|r| r.offset())
            .min(),
        Some(3)
    );

    c.commit_offsets(&[("t", 0, 2)]).unwrap();
    assert!(matches!(
        c.commit_offsets(&[("t", 1, 1), ("nope", 0, 1)]),
        Err(Error::UnknownTopic { .. })
    ));
    assert!(matches!(
        c.commit_offsets(&[("t", 1, 1), ("t", 9, 1)]),
        Err(Error::UnknownPartition { .. })
    ));
    assert!(matches!(
        c.commit_offsets(&[("t", 1, 1), ("t", 0, 99)]),
        Err(Error::OffsetOutOfRange { .. })
    ));
    assert_eq!(c.committed("t", 0).unwrap(), Some(2));
    assert_eq!(c.committed("t", 1).unwrap(), None);
    assert!(matches!(
        c.subscribe(&["t"]),
        Err(Error::IllegalConsumerState { .. })
    ));

    assert!(matches!(
        broker.consumer(ConsumerConfig::new("")),
        Err(Error::InvalidGroupId { .. })
    ));
    let long = "g".repeat(300);
    assert!(matches!(
        broker.consumer(ConsumerConfig::new(long)),
        Err(Error::InvalidGroupId { .. })
    ));
    assert!(matches!(
        broker.consumer(ConsumerConfig::new("g").assignor("cooperative-sticky,nope")),
        Err(Error::InvalidConfig { .. })
    ));
    assert!(matches!(
        broker.consumer(ConsumerConfig::new("g").assignor("range,range")),
        Err(Error::InvalidConfig { .. })
    ));
}

/// Sum of the log end offsets of every `__consumer_offsets` partition.
fn offsets_log_end(broker: &Broker) -> u64 {
    let topic = broker.topic("__consumer_offsets").unwrap();
    (0..topic.partition_count())
        .map(|p| topic.partition(p).unwrap().log_end_offset())
        .sum()
}

#[test]
fn a_members_bad_commits_are_typed_errors_that_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    broker
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    produce(&broker, "t", 10);
    let c = broker.consumer(earliest("g")).unwrap();
    c.subscribe(&["t"]).unwrap();
    poll_until(&c, |_, n| n >= 10);
    c.commit_offsets(&[("t", 0, 2)]).unwrap();
    let generation = c.generation().expect("a Stable member");
    let state = |c: &Consumer| {
        (
            c.generation(),
            c.assignment(),
            c.committed("t", 0).unwrap(),
            c.committed("t", 1).unwrap(),
            c.position("t", 0).unwrap(),
            c.position("t", 1).unwrap(),
        )
    };
    let before = (state(&c), offsets_log_end(&broker));
    assert_eq!(before.0.2, Some(2));

    // Each bad entry comes after a good one: the whole commit is refused.
    let err = c
        .commit_offsets(&[("t", 1, 1), ("nope", 0, 1)])
        .unwrap_err();
    assert!(
        matches!(err, Error::UnknownTopic { ref name } if name == "nope"),
        "{err}"
    );
    let err = c.commit_offsets(&[("t", 1, 1), ("t", 2, 1)]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnknownPartition {
                partition: 2,
                partitions: 2,
                ..
            }
        ),
        "{err}"
    );
    let err = c.commit_offsets(&[("t", 1, 1), ("t", 0, 6)]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::OffsetOutOfRange {
                requested: 6,
                log_end: 5,
                ..
            }
        ),
        "{err}"
    );
    let err = c.commit_offsets(&[("t", 0, u64::MAX)]).unwrap_err();
    assert!(matches!(err, Error::OffsetOutOfRange { .. }), "{err}");
    assert_eq!(
        (state(&c), offsets_log_end(&broker)),
        before,
        "no offset committed, nothing appended, still the same member"
    );
    assert_eq!(c.generation(), Some(generation));

    // The log end itself is a valid commit.
    c.commit_offsets(&[("t", 0, 5), ("t", 1, 5)]).unwrap();
    assert_eq!(c.committed("t", 0).unwrap(), Some(5));
    assert_eq!(c.committed("t", 1).unwrap(), Some(5));
    c.close().unwrap();
}

#[test]
fn empty_and_oversize_group_ids_are_refused_before_anything_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    for group in [String::new(), "g".repeat(256), "é".repeat(128)] {
        let err = broker
            .consumer(ConsumerConfig::new(group.clone()))
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidGroupId { group: ref g, .. } if *g == group),
            "{err}"
        );
    }
    assert!(
        !broker.topics().contains(&"__consumer_offsets".to_string()),
        "a refused consumer does not open the group coordinator"
    );
    assert!(broker.list_groups().unwrap().is_empty());
    // 255 bytes is the limit, and is accepted.
    let c = broker
        .consumer(ConsumerConfig::new("g".repeat(255)))
        .unwrap();
    drop(c);
    assert!(broker.topics().contains(&"__consumer_offsets".to_string()));
}

#[test]
fn a_standalone_consumer_reads_what_it_is_assigned_and_cannot_commit() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    broker
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    produce(&broker, "t", 8);
    let c = broker
        .consumer(ConsumerConfig::standalone().auto_offset_reset(AutoOffsetReset::Earliest))
        .unwrap();
    assert!(matches!(
        c.assign(&[("t", 5)]),
        Err(Error::UnknownPartition { .. })
    ));
    c.assign(&[("t", 1)]).unwrap();
    let got = c.poll(100, SHORT).unwrap();
    assert_eq!(got.len(), 4);
    assert!(got.iter().all(|r| r.partition() == 1 && r.topic() == "t"));
    assert!(matches!(
        c.commit(),
        Err(Error::IllegalConsumerState { .. })
    ));
    assert!(matches!(
        c.subscribe(&["t"]),
        Err(Error::IllegalConsumerState { .. })
    ));
    assert!(!broker.topics().contains(&"__consumer_offsets".to_string()));
}

/// `Duration::MAX` means "wait as long as it takes" (Kafka's `poll(Long.MAX_VALUE)`): it
/// must not overflow the deadline. With records ready, poll returns them at once.
#[test]
fn poll_with_duration_max_returns_the_ready_records() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    broker
        .create_topic("t", TopicConfig::default().partitions(1))
        .unwrap();
    produce(&broker, "t", 1);
    let standalone = broker
        .consumer(ConsumerConfig::standalone().auto_offset_reset(AutoOffsetReset::Earliest))
        .unwrap();
    standalone.assign(&[("t", 0)]).unwrap();
    assert_eq!(standalone.poll(10, Duration::MAX).unwrap().len(), 1);
    let member = broker.consumer(earliest("g")).unwrap();
    member.subscribe(&["t"]).unwrap();
    assert_eq!(member.poll(10, Duration::MAX).unwrap().len(), 1);
}

/// `default.api.timeout.ms` bounds the retries of `commit` and `committed`; any duration
/// is accepted, so `Duration::MAX` must not overflow their deadlines.
#[test]
fn a_default_api_timeout_of_duration_max_is_accepted_by_commit_and_committed() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    broker
        .create_topic("t", TopicConfig::default().partitions(1))
        .unwrap();
    let c = broker
        .consumer(earliest("g").default_api_timeout(Duration::MAX))
        .unwrap();
    c.assign(&[("t", 0)]).unwrap();
    c.commit_offsets(&[("t", 0, 0)]).unwrap();
    c.commit().unwrap();
    assert_eq!(c.committed("t", 0).unwrap(), Some(0));
}

/// Records each generation's revoked and assigned partitions, committing on revoke.
#[derive(Default)]
struct Log {
    events: Mutex<Vec<String>>,
}

struct Listener(Arc<Log>);

impl RebalanceListener for Listener {
    fn on_partitions_revoked(&mut self, consumer: &Consumer, partitions: &[(String, u32)]) {
        consumer.commit().unwrap();
        self.0
            .events
            .lock()
            .push(format!("revoked {}", partitions.len()));
    }
    fn on_partitions_assigned(&mut self, _: &Consumer, partitions: &[(String, u32)]) {
        self.0
            .events
            .lock()
            .push(format!("assigned {}", partitions.len()));
    }
    fn on_partitions_lost(&mut self, _: &Consumer, partitions: &[(String, u32)]) {
        self.0
            .events
            .lock()
            .push(format!("lost {}", partitions.len()));
    }
}

/// A subscription changed while the consumer's JoinGroup is still waiting (here for the
/// group's initial delay) is not lost: as Kafka's consumer (its `joinedSubscription`), the
/// member rejoins once that join completes, since it was sent with the old subscription.
#[test]
fn a_subscription_changed_while_joining_is_followed_by_a_rejoin() {
    for assignor in ["range", "cooperative-sticky"] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config();
        // Long enough that the first 20 ms poll returns within it even on a loaded machine.
        config.group_coordinator.initial_rebalance_delay_ms = 1_500;
        let broker = Broker::open(dir.path(), config).unwrap();
        for topic in ["old", "new"] {
            broker
                .create_topic(topic, TopicConfig::default().partitions(1))
                .unwrap();
        }
        produce(&broker, "new", 1);
        let c = broker.consumer(earliest("g").assignor(assignor)).unwrap();
        c.subscribe(&["old"]).unwrap();
        // The JoinGroup waits for the initial delay: this poll returns first.
        assert!(c.poll(10, SHORT).unwrap().is_empty());
        assert_eq!(c.generation(), None, "{assignor}: still joining");
        c.subscribe(&["new"]).unwrap();
        let start = Instant::now();
        let mut got = Vec::new();
        while got.is_empty() {
            assert!(start.elapsed() < WAIT, "{assignor}: `new` never consumed");
            got = c.poll(10, SHORT).unwrap();
        }
        assert_eq!(c.assignment(), [("new".to_string(), 0)], "{assignor}");
        assert_eq!((got.len(), got[0].topic()), (1, "new"), "{assignor}");
    }
}

/// As Kafka's group leader (its snapshot of the partition counts the assignment was
/// computed from), the group rebalances when a subscribed topic gains partitions or a
/// subscribed topic is created, so the new partitions get an owner and are consumed.
#[test]
fn partitions_added_to_or_created_in_subscribed_topics_are_assigned_and_consumed() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    broker
        .create_topic("t", TopicConfig::default().partitions(1))
        .unwrap();
    let c = broker.consumer(earliest("g")).unwrap();
    c.subscribe(&["later", "t"]).unwrap();
    poll_until(&c, |c, _| c.generation().is_some());
    assert_eq!(c.assignment(), [("t".to_string(), 0)]);
    let first = c.generation();
    let next_record = || {
        let start = Instant::now();
        loop {
            assert!(start.elapsed() < WAIT, "assignment {:?}", c.assignment());
            if let Some(r) = c.poll(10, SHORT).unwrap().first() {
                return (
                    r.topic().to_owned(),
                    r.partition(),
                    r.value().map(<[u8]>::to_vec),
                );
            }
        }
    };

    broker.add_partitions("t", 2).unwrap();
    let t = broker.topic("t").unwrap();
    t.append_to(1, vec![Record::new(b"new partition".to_vec())])
        .unwrap();
    assert_eq!(
        next_record(),
        ("t".into(), 1, Some(b"new partition".to_vec()))
    );
    assert_eq!(c.assignment(), [("t".to_string(), 0), ("t".to_string(), 1)]);
    assert!(c.generation() > first);
    c.commit().unwrap();

    broker
        .create_topic("later", TopicConfig::default().partitions(1))
        .unwrap();
    let later = broker.topic("later").unwrap();
    later.append(Record::new(b"new topic".to_vec())).unwrap();
    assert_eq!(
        next_record(),
        ("later".into(), 0, Some(b"new topic".to_vec()))
    );
    assert_eq!(
        c.assignment(),
        [
            ("later".to_string(), 0),
            ("t".to_string(), 0),
            ("t".to_string(), 1)
        ]
    );
}

#[test]
fn the_group_rebalances_when_a_consumer_joins_and_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    broker
        .create_topic("t", TopicConfig::default().partitions(4))
        .unwrap();
    produce(&broker, "t", 40);
    let log = Arc::new(Log::default());
    let a = broker
        .consumer(earliest("g").rebalance_listener(Listener(log.clone())))
        .unwrap();
    a.subscribe(&["t"]).unwrap();
    let first = poll_until(&a, |_, n| n >= 40);
    assert_eq!(a.assignment().len(), 4);

    let joined = Arc::new(AtomicUsize::new(0));
    let b = broker.consumer(earliest("g")).unwrap();
    let flag = joined.clone();
    let second = std::thread::spawn(move || {
        b.subscribe(&["t"]).unwrap();
        poll_until(&b, |c, _| c.assignment().len() == 2);
        flag.store(1, Ordering::SeqCst);
        // Keep polling until told to leave.
        poll_until(&b, |_, _| flag.load(Ordering::SeqCst) == 2);
        b.close().unwrap();
    });
    let again = poll_until(&a, |c, _| {
        c.assignment().len() == 2 && joined.load(Ordering::SeqCst) == 1
    });
    assert!(
        again.is_empty(),
        "the revoke committed everything: {again:?}"
    );
    joined.store(2, Ordering::SeqCst);
    poll_until(&a, |c, _| c.assignment().len() == 4);
    second.join().unwrap();
    let events = log.events.lock().clone();
    assert_eq!(
        events[..3],
        ["assigned 4", "revoked 4", "assigned 2"],
        "{events:?}"
    );
    assert_eq!(events.last().map(String::as_str), Some("assigned 4"));
    assert_eq!(first.len(), 40);
}

#[test]
fn a_consumer_that_stops_polling_past_max_poll_interval_loses_its_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    broker
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    let slow_log = Arc::new(Log::default());
    let slow = broker
        .consumer(
            earliest("g")
                .max_poll_interval(Duration::from_millis(150))
                .rebalance_listener(Listener(slow_log.clone())),
        )
        .unwrap();
    let fast = broker.consumer(earliest("g")).unwrap();
    slow.subscribe(&["t"]).unwrap();
    fast.subscribe(&["t"]).unwrap();
    // Both poll (from this one thread, with zero timeouts) until the group is split.
    let start = Instant::now();
    while slow.assignment().len() != 1 || fast.assignment().len() != 1 {
        assert!(start.elapsed() < WAIT);
        slow.poll(10, Duration::ZERO).unwrap();
        fast.poll(10, Duration::ZERO).unwrap();
    }
    // Only the fast one polls: once the slow one is past its max.poll.interval.ms it is
    // removed, and the fast one takes everything.
    poll_until(&fast, |c, _| c.assignment().len() == 2);
    assert!(slow.assignment().len() == 1, "it does not know yet");
    // The slow one polls again: its partitions are lost (no commit), and it rejoins.
    let start = Instant::now();
    while slow.assignment().len() != 1 || fast.assignment().len() != 1 {
        assert!(start.elapsed() < WAIT);
        slow.poll(10, Duration::ZERO).unwrap();
        fast.poll(10, Duration::ZERO).unwrap();
    }
    let events = slow_log.events.lock().clone();
    assert_eq!(
        events,
        [
            "assigned 2",
            "revoked 2",
            "assigned 1",
            "lost 1",
            "assigned 1"
        ]
    );
}

#[test]
fn many_consumers_in_many_threads_share_the_work_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(open(dir.path()));
    broker
        .create_topic("t", TopicConfig::default().partitions(8))
        .unwrap();
    produce(&broker, "t", 400);
    let processed: Arc<Mutex<BTreeMap<(u32, u64), u32>>> = Arc::default();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (broker, processed) = (broker.clone(), processed.clone());
            std::thread::spawn(move || {
                let c = broker.consumer(earliest("g")).unwrap();
                c.subscribe(&["t"]).unwrap();
                let start = Instant::now();
                while processed.lock().len() < 400 {
                    assert!(
                        start.elapsed() < WAIT,
                        "stuck at {}",
                        processed.lock().len()
                    );
                    let records = c.poll(50, SHORT).unwrap();
                    for r in &records {
                        *processed
                            .lock()
                            .entry((r.partition(), r.offset()))
                            .or_default() += 1;
                    }
                    if !records.is_empty() {
                        c.commit().unwrap();
                    }
                }
                c.close().unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let processed = processed.lock();
    assert_eq!(processed.len(), 400);
    assert!(processed.values().all(|n| *n == 1));
}

#[derive(Debug, Clone)]
enum Op {
    Produce(u8),
    Poll(usize),
    Join,
    Leave(usize),
    Crash(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u8..20).prop_map(Op::Produce),
        6 => (0usize..4).prop_map(Op::Poll),
        1 => Just(Op::Join),
        1 => (0usize..4).prop_map(Op::Leave),
        1 => (0usize..4).prop_map(Op::Crash),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Every record produced is processed at least once by a changing group that commits
    /// after each poll; exactly once when no member dies between processing and commit.
    #[test]
    fn every_record_is_processed_at_least_once_and_exactly_once_without_crashes(
        ops in proptest::collection::vec(op(), 1..40)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let broker = open(dir.path());
        broker.create_topic("t", TopicConfig::default().partitions(3)).unwrap();
        let mut produced = 0u32;
        let mut processed: BTreeMap<(u32, u64), u32> = BTreeMap::new();
        let mut crashed = false;
        let new = |broker: &Broker| {
            let c = broker.consumer(earliest("g")).unwrap();
            c.subscribe(&["t"]).unwrap();
            c
        };
        let mut members = vec![new(&broker)];
        let poll = |c: &Consumer, processed: &mut BTreeMap<(u32, u64), u32>, commit: bool| {
            let records = c.poll(7, Duration::ZERO).unwrap();
            for r in &records {
                *processed.entry((r.partition(), r.offset())).or_default() += 1;
            }
            // A commit after the generation ended fails; the records are processed again.
            if commit && !records.is_empty() && c.commit().is_err() {
                return false;
            }
            true
        };
        for op in ops {
            match op {
                Op::Produce(n) => {
                    produce(&broker, "t", u32::from(n));
                    produced += u32::from(n);
                }
                Op::Poll(i) if !members.is_empty() => {
                    let i = i % members.len();
                    if !poll(&members[i], &mut processed, true) {
                        crashed = true;
                    }
                }
                Op::Join if members.len() < 4 => members.push(new(&broker)),
                Op::Leave(i) if !members.is_empty() => {
                    members.remove(i % members.len()).close().unwrap();
                }
                Op::Crash(i) if !members.is_empty() => {
                    let c = members.remove(i % members.len());
                    let got = c.poll(7, Duration::ZERO).unwrap();
                    for r in &got {
                        *processed.entry((r.partition(), r.offset())).or_default() += 1;
                    }
                    crashed |= !got.is_empty();
                    drop(c); // no commit
                }
                _ => {}
            }
        }
        if members.is_empty() {
            members.push(new(&broker));
        }
        let start = Instant::now();
        while processed.len() < produced as usize {
            prop_assert!(start.elapsed() < WAIT, "stuck: {} of {produced}", processed.len());
            for c in &members {
                if !poll(c, &mut processed, true) {
                    crashed = true;
                }
            }
        }
        prop_assert_eq!(processed.len(), produced as usize);
        if !crashed {
            let twice: Vec<_> = processed.iter().filter(|(_, n)| **n > 1).collect();
            prop_assert!(twice.is_empty(), "processed twice: {:?}", twice);
        }
    }
}

/// A standalone consumer assigned two topics: one is deleted. Kafka's fetcher skips a
/// partition it gets UNKNOWN_TOPIC_OR_PARTITION for (and refreshes metadata); the records
/// of the other topic still come. Here every poll fails with UnknownTopic.
#[test]
fn a_deleted_topic_does_not_stop_an_assigned_consumer_reading_its_other_topic() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    broker.create_topic("a", TopicConfig::default()).unwrap();
    broker.create_topic("b", TopicConfig::default()).unwrap();
    produce(&broker, "a", 3);
    let c = broker
        .consumer(ConsumerConfig::standalone().auto_offset_reset(AutoOffsetReset::Earliest))
        .unwrap();
    c.assign(&[("a", 0), ("b", 0)]).unwrap();
    let got = c.poll(100, SHORT).unwrap();
    assert_eq!(got.len(), 3);
    broker.delete_topic("b").unwrap();
    produce(&broker, "a", 2);
    let got = c.poll(100, SHORT);
    assert!(got.is_ok(), "poll failed: {:?}", got.err());
    assert_eq!(got.unwrap().len(), 2);
}

/// A group member subscribed to two topics: one is deleted. Until the group rebalances
/// the deleted topic away (the leader looks every 100 ms of broker time; here 50 ms pass),
/// the member must keep getting the other topic's records: Kafka's fetcher skips a
/// partition whose topic is unknown, a poll does not fail.
#[test]
fn a_deleted_topic_does_not_make_a_subscribed_consumers_poll_fail() {
    let dir = tempfile::tempdir().unwrap();
    let clock = streamlog::ManualClock::new(1_000_000);
    let env = streamlog::Env {
        storage: Arc::new(streamlog::FileStorage),
        clock: Arc::new(clock.clone()),
    };
    let broker = Broker::open_with_env(dir.path(), config(), env).unwrap();
    broker.create_topic("a", TopicConfig::default()).unwrap();
    broker.create_topic("b", TopicConfig::default()).unwrap();
    produce(&broker, "a", 3);
    produce(&broker, "b", 3);
    let c = broker.consumer(earliest("g")).unwrap();
    c.subscribe(&["a", "b"]).unwrap();
    poll_until(&c, |_, n| n >= 6);
    c.commit().unwrap();
    broker.delete_topic("b").unwrap();
    produce(&broker, "a", 2);
    clock.advance_ms(50);
    match c.poll(100, SHORT) {
        Ok(records) => {
            let offsets: Vec<u64> = records.iter().map(|r| r.offset()).collect();
            assert_eq!(offsets, [3, 4]);
        }
        Err(e) => panic!("poll failed after the delete: {e}"),
    }
}

/// Auto-commit on, subscribed to `a` and `b`; `a`'s records are consumed, then `b` is
/// deleted. The rebalance that follows auto-commits the positions first (Kafka's
/// onJoinPrepare): `a-0`'s position must be committed even though `b-0` no longer exists
/// (Kafka's OffsetCommit fails per partition), so `a`'s records are not delivered again.
#[test]
fn deleting_one_subscribed_topic_does_not_make_the_group_reread_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    broker.create_topic("a", TopicConfig::default()).unwrap();
    broker.create_topic("b", TopicConfig::default()).unwrap();
    produce(&broker, "a", 3);
    let c = broker
        .consumer(
            ConsumerConfig::new("g")
                .auto_offset_reset(AutoOffsetReset::Earliest)
                .enable_auto_commit(true)
                .auto_commit_interval(Duration::from_secs(3600)),
        )
        .unwrap();
    c.subscribe(&["a", "b"]).unwrap();
    let first = poll_until(&c, |_, n| n >= 3);
    assert_eq!(first.len(), 3);
    broker.delete_topic("b").unwrap();
    // Let the leader notice the deleted topic and rebalance; collect what comes.
    let start = Instant::now();
    let mut again = Vec::new();
    while start.elapsed() < Duration::from_secs(2) {
        if let Ok(records) = c.poll(100, SHORT) {
            again.extend(records.iter().map(|r| (r.topic().to_owned(), r.offset())));
        }
    }
    assert_eq!(c.assignment(), [("a".to_string(), 0)]);
    assert!(
        again.is_empty(),
        "records of `a` delivered twice: {again:?}"
    );
}

/// A commit of several partitions where one topic was deleted meanwhile: Kafka's
/// OffsetCommit answers per partition, so the partitions that exist are committed.
#[test]
fn commit_still_commits_the_partitions_that_exist_when_one_topic_was_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    broker.create_topic("a", TopicConfig::default()).unwrap();
    broker.create_topic("b", TopicConfig::default()).unwrap();
    produce(&broker, "a", 3);
    produce(&broker, "b", 3);
    let c = broker.consumer(earliest("g")).unwrap();
    c.assign(&[("a", 0), ("b", 0)]).unwrap();
    poll_until(&c, |_, n| n >= 6);
    broker.delete_topic("b").unwrap();
    let answer = c.commit();
    assert!(
        matches!(answer, Err(Error::UnknownTopic { ref name }) if name == "b"),
        "{answer:?}"
    );
    assert_eq!(c.committed("a", 0).unwrap(), Some(3));
}
