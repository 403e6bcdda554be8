//! Real threads against leader changes: a producer thread sends `acks=all` batches without
//! pause while the main thread stops and restarts the partition's leader several times.
//! The leader writes a produce outside the broker's lock (fenced by the replica's leader
//! gate), so this is where a write of an old leadership could land after the replica
//! became a follower. After the brokers converge, every acknowledged record must be on
//! every replica at the offset it was acknowledged with, and the replicas must agree.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use streamlog::replication::PartitionState;
use streamlog::{Acks, Cluster, ClusterConfig, Partition, ProducerConfig, Record, TopicConfig};

const BROKERS: u32 = 3;
const FAILOVERS: usize = 4;
/// The producer's `request.timeout.ms` (Kafka's default).
const REQUEST_TIMEOUT_SECS: u64 = 30;

/// `(offset, value)` of every record of `log` from its log start to its high watermark.
fn contents(log: &Partition) -> Vec<(u64, Vec<u8>)> {
    log.read_from(log.log_start_offset())
        .expect("read")
        .map(|r| {
            let r = r.expect("record");
            (r.offset(), r.value().unwrap_or_default().to_vec())
        })
        .collect()
}

fn replica(cluster: &Cluster, broker: u32) -> Arc<Partition> {
    cluster
        .broker(broker)
        .and_then(|b| b.topic("t"))
        .and_then(|t| t.partition(0))
        .expect("the replica of t-0")
}

#[test]
fn acknowledged_records_survive_leaders_stopped_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Arc::new(
        Cluster::start(
            ClusterConfig::in_memory(BROKERS)
                .data_dir(dir.path())
                .lease_ms(300),
        )
        .unwrap(),
    );
    cluster
        .create_topic(
            "t",
            TopicConfig::default().partitions(1).replication_factor(3),
        )
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (cluster, stop) = (cluster.clone(), stop.clone());
        std::thread::spawn(move || {
            let producer = cluster
                .producer(
                    ProducerConfig::default()
                        .acks(Acks::All)
                        .request_timeout_ms(REQUEST_TIMEOUT_SECS as u32 * 1000),
                )
                .unwrap();
            let mut acked = Vec::new();
            let mut refused = 0;
            let mut slowest = Duration::ZERO;
            let mut n = 0u64;
            while !stop.load(Ordering::Acquire) {
                let values: Vec<Vec<u8>> =
                    (0..10).map(|i| format!("r{n}-{i}").into_bytes()).collect();
                let records: Vec<Record> = values.iter().cloned().map(Record::new).collect();
                let sent = Instant::now();
                match producer.send_to("t", 0, &records) {
                    Ok(range) => acked.extend(range.zip(values)),
                    Err(_) => refused += 1,
                }
                slowest = slowest.max(sent.elapsed());
                n += 1;
            }
            (acked, refused, slowest)
        })
    };
    for _ in 0..FAILOVERS {
        std::thread::sleep(Duration::from_millis(150));
        let leader = cluster.leader("t", 0).unwrap();
        cluster.stop_broker(leader).unwrap();
        std::thread::sleep(Duration::from_millis(400));
        cluster.start_broker(leader).unwrap();
    }
    std::thread::sleep(Duration::from_millis(150));
    stop.store(true, Ordering::Release);
    let (acked, refused, slowest) = producer.join().unwrap();
    assert!(
        acked.len() > 100,
        "{} acknowledged, {refused} refused",
        acked.len()
    );
    // Liveness, not speed: a stopped leader answers the produces waiting on it at once
    // (`NotLeaderOrFollower`, then the producer retries elsewhere); before it did, such a
    // send waited out its request timeout.
    assert!(
        slowest < Duration::from_secs(REQUEST_TIMEOUT_SECS / 2),
        "a send waited {slowest:?}"
    );

    // Converged: every replica has the same log end and a high watermark at it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let logs = loop {
        let logs: Vec<Arc<Partition>> = (0..BROKERS).map(|b| replica(&cluster, b)).collect();
        let end = logs[0].log_end_offset();
        if logs
            .iter()
            .all(|l| l.log_end_offset() == end && l.high_watermark() == end)
        {
            break logs;
        }
        assert!(Instant::now() < deadline, "the replicas never converged");
        std::thread::sleep(Duration::from_millis(10));
    };
    let leader_records = contents(&logs[0]);
    for (b, log) in logs.iter().enumerate().skip(1) {
        assert!(
            contents(log) == leader_records,
            "broker {b} disagrees with broker 0"
        );
    }
    let stored: std::collections::BTreeMap<u64, Vec<u8>> = leader_records.into_iter().collect();
    for (offset, value) in &acked {
        assert_eq!(
            stored.get(offset),
            Some(value),
            "acknowledged record at offset {offset} lost or changed"
        );
    }
    let Ok(cluster) = Arc::try_unwrap(cluster) else {
        panic!("the producer thread still holds the cluster");
    };
    cluster.shutdown().unwrap();
}

/// Waits (real time, at most 20 s) until `done`.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A leader whose process restarts before its lease runs out, having lost the tail its
/// page cache held (durability comes from replication), must not lead on that log: as
/// if the controller had seen it go, an in-sync follower leads in a new epoch, and every
/// acknowledged record survives on every replica (before, it kept leading in the same
/// epoch and its followers truncated to its empty log).
#[test]
fn a_leader_restarted_within_its_lease_steps_down_and_acknowledged_records_survive() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = five_acknowledged_records(dir.path(), 10_000);
    let before = cluster.partition_state("t", 0).unwrap();
    let old = before.leader.unwrap();
    cluster.stop_broker(old).unwrap();
    lose_page_cache(dir.path(), old);
    cluster.start_broker(old).unwrap();

    wait_until("a new epoch", || {
        cluster
            .partition_state("t", 0)
            .is_ok_and(|s| s.leader_epoch > before.leader_epoch && s.leader.is_some())
    });
    // `contents` reads to the high watermark, which a follower learns a fetch later.
    wait_until("every replica holds the five records", || {
        (0..BROKERS).all(|b| replica(&cluster, b).high_watermark() == 5)
    });
    let expected = five_records();
    for b in 0..BROKERS {
        assert_eq!(contents(&replica(&cluster, b)), expected, "broker {b}");
    }
    cluster.shutdown().unwrap();
}

/// As if `broker`'s crash lost everything its page cache held: its log files of `t-0`
/// are empty and it left no clean-shutdown marker.
fn lose_page_cache(data_dir: &std::path::Path, broker: u32) {
    let partition_dir = data_dir.join(format!("broker-{broker}")).join("t-0");
    for entry in std::fs::read_dir(&partition_dir).unwrap() {
        let path = entry.unwrap().path();
        match path.extension().and_then(|e| e.to_str()) {
            Some("log") => std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(0)
                .unwrap(),
            Some("index" | "timeindex" | "checkpoint") => std::fs::remove_file(&path).unwrap(),
            _ => {}
        }
    }
    let _ = std::fs::remove_file(partition_dir.join(".clean-shutdown"));
}

/// The same loss when every broker was down as its lease ran out, so that no controller
/// saw it go: its restart finds its old registration expired and registers afresh. A new
/// process must still not lead, or be the ISR's last member, on what its last run held
/// (before, a leader led again in the old epoch and both followers truncated to its
/// empty log). Here it starts first, alone: the partition waits offline for an in-sync
/// replica that kept its records. Run for the leader and for the ISR's last member (the
/// one an ISR reduced to one member keeps).
#[test]
fn a_broker_restarted_after_a_lease_nobody_saw_expire_steps_down_too() {
    let leader = |s: &PartitionState| s.leader.unwrap();
    let last_in_sync = |s: &PartitionState| *s.isr.last().unwrap();
    for (what, pick) in [
        ("leader", &leader as &dyn Fn(&PartitionState) -> u32),
        ("last ISR member", &last_in_sync),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cluster = five_acknowledged_records(dir.path(), 300);
        let state = cluster.partition_state("t", 0).unwrap();
        assert_eq!(state.isr.len(), 3, "{state:?}");
        let lost = pick(&state);
        for b in 0..BROKERS {
            cluster.stop_broker(b).unwrap();
        }
        lose_page_cache(dir.path(), lost);
        std::thread::sleep(Duration::from_millis(700));
        cluster.start_broker(lost).unwrap();
        for b in (0..BROKERS).filter(|&b| b != lost) {
            cluster.start_broker(b).unwrap();
        }
        wait_until("every replica holds the five records", || {
            cluster.leader("t", 0).is_ok()
                && (0..BROKERS).all(|b| replica(&cluster, b).high_watermark() == 5)
        });
        let expected = five_records();
        for b in 0..BROKERS {
            assert_eq!(
                contents(&replica(&cluster, b)),
                expected,
                "broker {b}, {what} {lost} lost its tail"
            );
        }
        cluster.shutdown().unwrap();
    }
}

/// Every broker stopped at once (each closing its logs cleanly), so the ISR still names
/// all three. One restarted alone holds everything acknowledged: it must stay in sync
/// and lead, instead of stepping down as a crashed process must (which would leave the
/// partition offline until another replica returned).
#[test]
fn a_broker_restarted_after_a_clean_stop_stays_in_sync_and_leads() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = five_acknowledged_records(dir.path(), 300);
    for b in 0..BROKERS {
        cluster.stop_broker(b).unwrap();
    }
    assert_eq!(cluster.partition_state("t", 0).unwrap().isr.len(), 3);
    std::thread::sleep(Duration::from_millis(400));
    cluster.start_broker(0).unwrap();
    wait_until("broker 0 leads with every record", || {
        cluster.leader("t", 0).is_ok_and(|l| l == 0) && replica(&cluster, 0).high_watermark() == 5
    });
    let expected = five_records();
    assert_eq!(contents(&replica(&cluster, 0)), expected);
    cluster.shutdown().unwrap();
}

/// A cluster of three brokers with leases of `lease_ms` and topic `t` (one partition on
/// all three) holding five records sent with `acks=all`: `[i]` at offset `i`.
fn five_acknowledged_records(dir: &std::path::Path, lease_ms: u64) -> Cluster {
    let cluster = Cluster::start(
        ClusterConfig::in_memory(BROKERS)
            .data_dir(dir)
            .lease_ms(lease_ms),
    )
    .unwrap();
    cluster
        .create_topic(
            "t",
            TopicConfig::default().partitions(1).replication_factor(3),
        )
        .unwrap();
    let producer = cluster
        .producer(ProducerConfig::default().acks(Acks::All))
        .unwrap();
    for i in 0..5u8 {
        producer.send_to("t", 0, &[Record::new(vec![i])]).unwrap();
    }
    cluster
}

/// What [`five_acknowledged_records`] wrote, as `contents` reads it back.
fn five_records() -> Vec<(u64, Vec<u8>)> {
    (0..5u8).map(|i| (u64::from(i), vec![i])).collect()
}
