//! Topics at the edges of their life, on a real file system: a name of Kafka's longest
//! length (249), and a topic deleted under consumers that read it with others (they go
//! on with the others, and commit what still exists, as Kafka's do).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use streamlog::{
    AutoOffsetReset, Broker, BrokerConfig, Consumer, ConsumerConfig, Env, Error, FileStorage,
    ManualClock, Record, TopicConfig,
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

fn poll_until(c: &Consumer, mut done: impl FnMut(usize) -> bool) -> Vec<(String, u32, u64)> {
    let start = Instant::now();
    let mut seen = Vec::new();
    while !done(seen.len()) {
        assert!(
            start.elapsed() < WAIT,
            "timed out; assignment {:?}",
            c.assignment()
        );
        for r in c.poll(1000, SHORT).unwrap() {
            seen.push((r.topic().to_owned(), r.partition(), r.offset()));
        }
    }
    seen
}

/// Kafka accepts topic names of up to 249 characters, and so does `validate_topic_name`;
/// on a real file system (255-byte file names) such a topic is created, reopened and
/// deleted (its catalogue file was `<name>.properties.tmp`: too long).
#[test]
fn a_topic_with_a_249_character_name_lives_and_dies_on_a_real_file_system() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let name = "x".repeat(249);
    let created = broker.create_topic(&name, TopicConfig::default());
    assert!(created.is_ok(), "{:?}", created.err());
    produce(&broker, &name, 3);
    broker.close().unwrap();
    let broker = open(dir.path());
    assert_eq!(
        broker
            .topic(&name)
            .unwrap()
            .partition(0)
            .unwrap()
            .log_end_offset(),
        3
    );
    broker.delete_topic(&name).unwrap();
    broker.close().unwrap();
    let broker = open(dir.path());
    assert!(broker.topic(&name).is_err());
    assert!(broker.topics().is_empty(), "{:?}", broker.topics());
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
    let clock = ManualClock::new(1_000_000);
    let env = Env {
        storage: Arc::new(FileStorage),
        clock: Arc::new(clock.clone()),
    };
    let broker = Broker::open_with_env(dir.path(), config(), env).unwrap();
    broker.create_topic("a", TopicConfig::default()).unwrap();
    broker.create_topic("b", TopicConfig::default()).unwrap();
    produce(&broker, "a", 3);
    produce(&broker, "b", 3);
    let c = broker.consumer(earliest("g")).unwrap();
    c.subscribe(&["a", "b"]).unwrap();
    poll_until(&c, |n| n >= 6);
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
    let first = poll_until(&c, |n| n >= 3);
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
    poll_until(&c, |n| n >= 6);
    broker.delete_topic("b").unwrap();
    let answer = c.commit();
    assert!(
        matches!(answer, Err(Error::UnknownTopic { ref name }) if name == "b"),
        "{answer:?}"
    );
    assert_eq!(c.committed("a", 0).unwrap(), Some(3));
}
