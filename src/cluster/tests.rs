//! The cluster's handling of a broker that halted on a storage failure, with real
//! threads and files (the node-level behaviour is in `tests/broker_halt.rs`).

use std::time::{Duration, Instant};

use super::*;
use crate::{Acks, ProducerConfig, Record};

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Three brokers in `dir`, topic `t` (one partition, replication factor 3), and an
/// `acks=all` producer.
fn three_brokers_with_topic_t(dir: &std::path::Path) -> (Cluster, crate::Producer) {
    let cluster = Cluster::start(ClusterConfig::in_memory(3).data_dir(dir)).unwrap();
    cluster
        .create_topic(
            "t",
            TopicConfig::default().partitions(1).replication_factor(3),
        )
        .unwrap();
    let producer = cluster
        .producer(ProducerConfig::default().acks(Acks::All))
        .unwrap();
    (cluster, producer)
}

#[test]
fn a_broker_halted_by_a_closed_log_is_not_running_and_starts_again() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, producer) = three_brokers_with_topic_t(dir.path());
    assert_eq!(
        producer.send("t", Record::new(b"a".to_vec())).unwrap(),
        (0, 0)
    );
    let old = cluster.leader("t", 0).unwrap();
    let key = PartitionKey::new("t", 0);

    // What a failed fsync does to the leader's log.
    let log = cluster.broker(old).unwrap().node.log(&key).unwrap();
    log.shutdown().unwrap();
    drop(log);

    wait_until("the leader halts", || {
        !cluster.running_brokers().contains(&old)
    });
    assert!(matches!(
        cluster.broker(old),
        Err(Error::BrokerStopped { broker }) if broker == old
    ));
    wait_until("another broker leads", || {
        cluster.leader("t", 0).is_ok_and(|l| l != old)
    });
    assert_eq!(
        producer.send("t", Record::new(b"b".to_vec())).unwrap(),
        (0, 1)
    );

    cluster.start_broker(old).unwrap();
    assert!(cluster.running_brokers().contains(&old));
    wait_until("the restarted broker catches up", || {
        cluster
            .broker(old)
            .and_then(|b| b.topic("t"))
            .and_then(|t| t.partition(0))
            .is_ok_and(|p| p.log_end_offset() == 2)
    });
    let replica = cluster
        .broker(old)
        .unwrap()
        .topic("t")
        .unwrap()
        .partition(0)
        .unwrap();
    let values: Vec<Vec<u8>> = replica
        .read_to_log_end(0)
        .unwrap()
        .map(|r| r.unwrap().value().unwrap().to_vec())
        .collect();
    assert_eq!(values, vec![b"a".to_vec(), b"b".to_vec()]);
    cluster.shutdown().unwrap();
}

#[test]
fn answers_to_sends_dropped_without_waiting_are_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, producer) = three_brokers_with_topic_t(dir.path());
    for i in 0..20u8 {
        // Dropped at once: some are answered before the drop, most after.
        drop(
            producer
                .send_async("t", 0, &[Record::new(vec![i])])
                .unwrap(),
        );
    }
    let last = producer.send_to("t", 0, &[Record::new(b"last".to_vec())]);
    assert_eq!(last.unwrap(), 20..21, "the dropped sends still happened");
    let leader = cluster.broker(cluster.leader("t", 0).unwrap()).unwrap();
    wait_until("every dropped send is answered", || {
        leader.node.held_answers() == (0, 0)
    });
    cluster.shutdown().unwrap();
}

/// Every batch of `log` from its log start to its log end, as stored.
fn stored_batches(log: &Partition) -> Vec<bytes::Bytes> {
    let mut records = log.read_to_log_end(log.log_start_offset()).unwrap();
    let mut batches = Vec::new();
    while let Some(batch) = records.next_batch() {
        batches.push(batch.unwrap());
    }
    batches
}

/// The partition `t-0` on broker `id`.
fn replica_log(cluster: &Cluster, id: BrokerId) -> Result<Arc<Partition>> {
    cluster.broker(id)?.topic("t")?.partition(0)
}

/// A leader whose log compaction left with offset gaps keeps them after its topic
/// switches to `cleanup.policy=delete`. A follower replica created after the switch (its
/// directory wiped, so it opens under `delete` without the `.offset-gaps` marker) must
/// still copy that log: it catches up to the leader's log end with the same batches,
/// gaps included, and its log keeps the marker.
#[test]
fn a_new_follower_copies_the_gaps_of_a_leader_compacted_before_a_switch_to_delete() {
    use crate::CleanupPolicy;

    let dir = tempfile::tempdir().unwrap();
    let config = ClusterConfig::in_memory(2)
        .data_dir(dir.path())
        .lease_ms(300);
    let cluster = Cluster::start(config).unwrap();
    let topic = TopicConfig::default().partitions(1).replication_factor(2);
    let log_config = topic
        .log_config()
        .clone()
        .cleanup_policy(CleanupPolicy::Compact)
        .segment_bytes(1024);
    let topic = topic.with_log_config(log_config);
    cluster.create_topic("t", topic).unwrap();
    let producer = cluster
        .producer(ProducerConfig::default().acks(Acks::All))
        .unwrap();
    // One batch per send; four keys, each overwritten ten times.
    for i in 0..40u32 {
        let record = Record::new(format!("value-{i}").into_bytes())
            .with_key(format!("key-{}", i % 4).into_bytes());
        assert_eq!(producer.send_to("t", 0, &[record]).unwrap(), {
            let i = u64::from(i);
            i..i + 1
        });
    }
    let leader = cluster.leader("t", 0).unwrap();
    let follower = 1 - leader;

    // Compaction on the leader drops whole batches: its log now has gaps.
    let leader_log = replica_log(&cluster, leader).unwrap();
    leader_log.roll().unwrap();
    leader_log.compact().unwrap();
    let ranges: Vec<(i64, i64)> = stored_batches(&leader_log)
        .iter()
        .flat_map(|b| crate::record::BatchIter::new(b, usize::MAX))
        .map(|item| {
            let header = *item.unwrap().1.header();
            (header.base_offset, header.last_offset())
        })
        .collect();
    assert!(
        ranges.first().is_some_and(|r| r.0 > 0) || ranges.windows(2).any(|w| w[1].0 != w[0].1 + 1),
        "compaction left gaps between batches: {ranges:?}"
    );
    drop(leader_log);

    // The follower goes first (so it cannot take over), then the leader; meanwhile the
    // topic switches to `delete` and the follower's replica is wiped.
    cluster.stop_broker(follower).unwrap();
    wait_until("the follower leaves the ISR", || {
        cluster
            .partition_state("t", 0)
            .is_ok_and(|s| s.isr == [leader])
    });
    cluster.stop_broker(leader).unwrap();
    loop {
        let current = cluster.consensus().topic("t").unwrap().unwrap();
        let mut record = current.value;
        let delete = record
            .config
            .log_config()
            .clone()
            .cleanup_policy(CleanupPolicy::Delete);
        record.config = record.config.with_log_config(delete);
        match cluster.consensus().set_topic("t", record, current.version) {
            Ok(_) => break,
            Err(Error::VersionConflict { .. }) => continue,
            Err(e) => panic!("{e}"),
        }
    }
    let follower_dir = dir.path().join(format!("broker-{follower}")).join("t-0");
    std::fs::remove_dir_all(&follower_dir).unwrap();

    cluster.start_broker(leader).unwrap();
    wait_until("the leader leads again", || {
        cluster.leader("t", 0).is_ok_and(|l| l == leader)
    });
    let leader_log = replica_log(&cluster, leader).unwrap();
    assert_eq!(leader_log.config().cleanup_policy, CleanupPolicy::Delete);
    let leader_end = leader_log.log_end_offset();
    assert_eq!(leader_end, 40);

    cluster.start_broker(follower).unwrap();
    let follower_log = replica_log(&cluster, follower).unwrap();
    assert_eq!(follower_log.config().cleanup_policy, CleanupPolicy::Delete);
    wait_until("the new follower reaches the leader's log end", || {
        follower_log.log_end_offset() == leader_end
    });
    assert_eq!(stored_batches(&follower_log), stored_batches(&leader_log));
    assert!(follower_dir.join(".offset-gaps").exists());
    wait_until("the follower is back in the ISR", || {
        cluster
            .partition_state("t", 0)
            .is_ok_and(|s| s.isr.contains(&follower))
    });
    drop((leader_log, follower_log));
    cluster.shutdown().unwrap();
}
