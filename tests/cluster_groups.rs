//! Consumer groups on a [`Cluster`]: the coordinator of a group lives on the leader of
//! the group's `__consumer_offsets` partition; commits are replicated with `acks=all`;
//! stopping that broker moves the coordinator and loses no committed progress.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use streamlog::{
    Acks, AutoOffsetReset, Cluster, ClusterConfig, Consumer, ConsumerConfig, Error, OffsetsConfig,
    ProducerConfig, Record, TopicConfig, partition_for_group,
};

const OFFSETS: &str = "__consumer_offsets";
const OFFSETS_PARTITIONS: u32 = 4;

fn cluster(dir: &std::path::Path) -> Cluster {
    let mut config = ClusterConfig::in_memory(3)
        .data_dir(dir)
        .lease_ms(300)
        .leader_imbalance_check_interval_ms(300)
        .offsets(OffsetsConfig::default().num_partitions(OFFSETS_PARTITIONS));
    config.group_coordinator.initial_rebalance_delay_ms = 300;
    config.group_coordinator.min_session_timeout_ms = 100;
    Cluster::start(config).unwrap()
}

fn consumer_config(group: &str) -> ConsumerConfig {
    ConsumerConfig::new(group)
        .auto_offset_reset(AutoOffsetReset::Earliest)
        .enable_auto_commit(false)
        .session_timeout(Duration::from_secs(6))
        .heartbeat_interval(Duration::from_millis(100))
        .default_api_timeout(Duration::from_secs(20))
}

/// Produces `n` records `"{tag}-{i}"` with acks=all; returns their values.
fn produce(cluster: &Cluster, topic: &str, tag: &str, n: usize) -> BTreeSet<String> {
    let producer = cluster
        .producer(
            ProducerConfig::default()
                .acks(Acks::All)
                .retry_backoff_ms(20),
        )
        .unwrap();
    (0..n)
        .map(|i| {
            let value = format!("{tag}-{i}");
            let record =
                Record::new(value.clone().into_bytes()).with_key(value.clone().into_bytes());
            producer.send(topic, record).unwrap();
            value
        })
        .collect()
}

/// Polls (committing after each poll) until `want` values were seen or 30 s passed.
fn consume_until(consumer: &Consumer, seen: &mut Vec<String>, want: &BTreeSet<String>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !want.iter().all(|v| seen.contains(v)) {
        assert!(
            Instant::now() < deadline,
            "missing {:?}",
            want.len() - seen.len()
        );
        let records = consumer.poll(100, Duration::from_millis(100)).unwrap();
        for r in &records {
            seen.push(String::from_utf8(r.value().unwrap().to_vec()).unwrap());
        }
        if !records.is_empty() {
            consumer.commit().unwrap();
        }
    }
}

fn coordinator_of(cluster: &Cluster, group: &str) -> u32 {
    cluster
        .leader(OFFSETS, partition_for_group(group, OFFSETS_PARTITIONS))
        .unwrap()
}

fn committed(consumer: &Consumer, topic: &str, partitions: u32) -> BTreeMap<u32, Option<u64>> {
    (0..partitions)
        .map(|p| (p, consumer.committed(topic, p).unwrap()))
        .collect()
}

#[test]
fn a_group_of_three_consumes_everything_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path());
    cluster
        .create_topic(
            "orders",
            TopicConfig::default().partitions(6).replication_factor(3),
        )
        .unwrap();
    let want = produce(&cluster, "orders", "a", 600);
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let done = Arc::new(AtomicBool::new(false));
    let cluster = Arc::new(cluster);
    let threads: Vec<_> = (0..3)
        .map(|i| {
            let (cluster, seen, done) = (cluster.clone(), seen.clone(), done.clone());
            std::thread::spawn(move || {
                let consumer = cluster
                    .consumer(consumer_config("billing").client_id(format!("c{i}")))
                    .unwrap();
                consumer.subscribe(&["orders"]).unwrap();
                let deadline = Instant::now() + Duration::from_secs(60);
                let mut mine = 0;
                while !done.load(Ordering::Acquire) && Instant::now() < deadline {
                    let records = consumer.poll(50, Duration::from_millis(100)).unwrap();
                    if records.is_empty() {
                        continue;
                    }
                    mine += records.len();
                    seen.lock().extend(
                        records
                            .iter()
                            .map(|r| String::from_utf8(r.value().unwrap().to_vec()).unwrap()),
                    );
                    consumer.commit().unwrap();
                }
                consumer.close().unwrap();
                mine
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.lock().len() < want.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300)); // duplicates would show up meanwhile
    done.store(true, Ordering::Release);
    let per_consumer: Vec<usize> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let seen = seen.lock().clone();
    let distinct: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(distinct, want, "nothing missing");
    assert_eq!(seen.len(), want.len(), "no duplicates");
    assert!(
        per_consumer.iter().filter(|n| **n > 0).count() >= 2,
        "the work was shared: {per_consumer:?}"
    );
}

#[test]
fn the_group_survives_the_coordinators_broker_and_comes_back_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path());
    cluster
        .create_topic(
            "orders",
            TopicConfig::default().partitions(3).replication_factor(3),
        )
        .unwrap();
    let first = produce(&cluster, "orders", "a", 90);
    let consumer = cluster.consumer(consumer_config("audit")).unwrap();
    consumer.subscribe(&["orders"]).unwrap();
    let mut seen = Vec::new();
    consume_until(&consumer, &mut seen, &first);
    let before = committed(&consumer, "orders", 3);
    assert_eq!(
        before.values().map(|o| o.unwrap_or(0)).sum::<u64>(),
        90,
        "every record consumed was committed: {before:?}"
    );

    // The coordinator's broker dies: its lease runs out and another replica of the
    // group's offsets partition takes over, loading the group from the replicated log.
    let old = coordinator_of(&cluster, "audit");
    cluster.stop_broker(old).unwrap();
    assert_eq!(
        committed(&consumer, "orders", 3),
        before,
        "commits survived"
    );
    assert_ne!(coordinator_of(&cluster, "audit"), old);

    // Consumption goes on; new commits go to the new coordinator.
    let second = produce(&cluster, "orders", "b", 60);
    consume_until(&consumer, &mut seen, &second);
    let all: BTreeSet<String> = first.union(&second).cloned().collect();
    assert!(all.iter().all(|v| seen.contains(v)), "at least once");
    let after = committed(&consumer, "orders", 3);
    assert_eq!(after.values().map(|o| o.unwrap_or(0)).sum::<u64>(), 150);
    consumer.close().unwrap();

    // A new member of the group resumes after the last commit: nothing again.
    let third = produce(&cluster, "orders", "c", 30);
    let resumed = cluster.consumer(consumer_config("audit")).unwrap();
    resumed.subscribe(&["orders"]).unwrap();
    let mut again = Vec::new();
    consume_until(&resumed, &mut again, &third);
    assert!(
        again.iter().all(|v| v.starts_with("c-")),
        "resumed after the last commit: {again:?}"
    );
    let at_restart = committed(&resumed, "orders", 3);
    resumed.close().unwrap();

    // The old broker returns, catches up, and (preferred leader) becomes coordinator
    // again: it rebuilds the group from its log.
    cluster.start_broker(old).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while coordinator_of(&cluster, "audit") != old {
        assert!(Instant::now() < deadline, "broker {old} never led again");
        std::thread::sleep(Duration::from_millis(20));
    }
    let back = cluster.consumer(consumer_config("audit")).unwrap();
    assert_eq!(committed(&back, "orders", 3), at_restart);
    back.subscribe(&["orders"]).unwrap();
    let fourth = produce(&cluster, "orders", "d", 15);
    let mut last = Vec::new();
    consume_until(&back, &mut last, &fourth);
    assert!(last.iter().all(|v| v.starts_with("d-")), "{last:?}");
    back.close().unwrap();
}

#[test]
fn bad_input_gives_the_brokers_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path());
    cluster
        .create_topic(
            "orders",
            TopicConfig::default().partitions(2).replication_factor(2),
        )
        .unwrap();
    assert!(matches!(
        cluster.consumer(ConsumerConfig::new("")),
        Err(Error::InvalidGroupId { .. })
    ));
    assert!(matches!(
        cluster.create_topic(OFFSETS, TopicConfig::default()),
        Err(Error::InvalidTopicName { .. })
    ));
    let consumer = cluster.consumer(consumer_config("g")).unwrap();
    assert!(matches!(
        consumer.assign(&[("nope", 0)]),
        Err(Error::UnknownTopic { .. })
    ));
    assert!(matches!(
        consumer.assign(&[("orders", 7)]),
        Err(Error::UnknownPartition {
            partition: 7,
            partitions: 2,
            ..
        })
    ));
    assert!(matches!(
        consumer.commit_offsets(&[("nope", 0, 1)]),
        Err(Error::UnknownTopic { .. })
    ));
    assert!(matches!(
        consumer.commit_offsets(&[("orders", 0, 5)]),
        Err(Error::OffsetOutOfRange { requested: 5, .. })
    ));
    assert!(matches!(
        consumer.seek("orders", 0, 0),
        Err(Error::NotAssigned { .. })
    ));
    consumer.assign(&[("orders", 0)]).unwrap();
    assert!(matches!(
        consumer.subscribe(&["orders"]),
        Err(Error::IllegalConsumerState { .. })
    ));
    let standalone = cluster.consumer(ConsumerConfig::standalone()).unwrap();
    assert!(matches!(
        standalone.commit(),
        Err(Error::IllegalConsumerState { .. })
    ));
}

#[test]
fn three_consumers_carry_on_when_the_coordinators_broker_stops() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Arc::new(cluster(dir.path()));
    cluster
        .create_topic(
            "orders",
            TopicConfig::default().partitions(6).replication_factor(3),
        )
        .unwrap();
    let mut want = produce(&cluster, "orders", "a", 300);
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let done = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..3)
        .map(|i| {
            let (cluster, seen, done) = (cluster.clone(), seen.clone(), done.clone());
            std::thread::spawn(move || {
                let consumer = cluster
                    .consumer(consumer_config("payments").client_id(format!("c{i}")))
                    .unwrap();
                consumer.subscribe(&["orders"]).unwrap();
                while !done.load(Ordering::Acquire) {
                    let records = consumer.poll(50, Duration::from_millis(100)).unwrap();
                    if records.is_empty() {
                        continue;
                    }
                    seen.lock().extend(
                        records
                            .iter()
                            .map(|r| String::from_utf8(r.value().unwrap().to_vec()).unwrap()),
                    );
                    // A commit refused by a rebalance only means these records may come
                    // again (at least once); the next poll rejoins.
                    let _ = consumer.commit();
                }
                consumer.close().unwrap();
            })
        })
        .collect();
    let wait_for = |want: &BTreeSet<String>| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let seen: BTreeSet<String> = seen.lock().iter().cloned().collect();
            if want.is_subset(&seen) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "missing {}",
                want.difference(&seen).count()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for(&want);
    let old = coordinator_of(&cluster, "payments");
    cluster.stop_broker(old).unwrap();
    want.extend(produce(&cluster, "orders", "b", 300));
    wait_for(&want);
    assert_ne!(coordinator_of(&cluster, "payments"), old);
    done.store(true, Ordering::Release);
    for t in threads {
        t.join().unwrap();
    }
    // Committed progress covers everything: a new member finds nothing to redo.
    let check = cluster.consumer(consumer_config("payments")).unwrap();
    let total: u64 = committed(&check, "orders", 6)
        .values()
        .map(|o| o.unwrap_or(0))
        .sum();
    assert_eq!(total, 600, "every record's commit survived the failover");
    let seen = seen.lock();
    let duplicates = seen.len() - want.len();
    assert!(duplicates <= 300, "{duplicates} duplicates");
}

#[test]
fn the_cluster_lists_and_describes_groups_and_their_commits() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path());
    assert_eq!(cluster.list_groups().unwrap(), Vec::<String>::new());
    assert_eq!(cluster.describe_group("billing").unwrap(), None);
    cluster
        .create_topic(
            "orders",
            TopicConfig::default().partitions(2).replication_factor(3),
        )
        .unwrap();
    let want = produce(&cluster, "orders", "o", 20);
    let consumer = cluster.consumer(consumer_config("billing")).unwrap();
    consumer.subscribe(&["orders"]).unwrap();
    let mut seen = Vec::new();
    consume_until(&consumer, &mut seen, &want);
    assert_eq!(cluster.list_groups().unwrap(), ["billing"]);
    let description = cluster.describe_group("billing").unwrap().expect("a group");
    assert_eq!(description.state, streamlog::GroupState::Stable);
    assert_eq!(description.members.len(), 1);
    let committed = cluster.committed_offsets("billing").unwrap();
    for (partition, offset) in committed_by_partition(&consumer) {
        let key = ("orders".to_string(), partition);
        assert_eq!(committed.get(&key).map(|o| o.offset), offset);
    }
    assert_eq!(
        committed.values().map(|o| o.offset).sum::<u64>(),
        20,
        "every record's offset committed"
    );
    assert!(matches!(
        cluster.describe_group(""),
        Err(Error::InvalidGroupId { .. })
    ));
}

fn committed_by_partition(consumer: &Consumer) -> BTreeMap<u32, Option<u64>> {
    committed(consumer, "orders", 2)
}

#[test]
fn a_member_that_stops_polling_leaves_even_when_no_one_calls_in() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path());
    cluster
        .create_topic(
            "orders",
            TopicConfig::default().partitions(2).replication_factor(3),
        )
        .unwrap();
    let want = produce(&cluster, "orders", "o", 4);
    let consumer = cluster
        .consumer(consumer_config("idle").max_poll_interval(Duration::from_millis(500)))
        .unwrap();
    consumer.subscribe(&["orders"]).unwrap();
    let mut seen = Vec::new();
    consume_until(&consumer, &mut seen, &want);
    let members = |c: &Cluster| c.describe_group("idle").unwrap().map(|d| d.members.len());
    assert_eq!(members(&cluster), Some(1));
    // The consumer is alive but stops polling; nothing else calls the coordinator.
    let deadline = Instant::now() + Duration::from_secs(10);
    while members(&cluster) != Some(0) {
        assert!(
            Instant::now() < deadline,
            "the idle member was never removed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(consumer);
}
