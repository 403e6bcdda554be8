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

#[test]
fn a_broker_halted_by_a_closed_log_is_not_running_and_starts_again() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(ClusterConfig::in_memory(3).data_dir(dir.path())).unwrap();
    cluster
        .create_topic(
            "t",
            TopicConfig::default().partitions(1).replication_factor(3),
        )
        .unwrap();
    let producer = cluster
        .producer(ProducerConfig::default().acks(Acks::All))
        .unwrap();
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
    let cluster = Cluster::start(ClusterConfig::in_memory(3).data_dir(dir.path())).unwrap();
    cluster
        .create_topic(
            "t",
            TopicConfig::default().partitions(1).replication_factor(3),
        )
        .unwrap();
    let producer = cluster
        .producer(ProducerConfig::default().acks(Acks::All))
        .unwrap();
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
