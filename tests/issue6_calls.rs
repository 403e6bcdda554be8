//! The calls issue 6 shows users writing, compiled and run: a three-broker cluster, a
//! replicated topic, `acks=all`, a leader stopped and started again, and reads on the new
//! leader.

use std::time::{Duration, Instant};

use streamlog::{Acks, Cluster, ClusterConfig, Error, ProducerConfig, Record, TopicConfig};

#[test]
fn the_issue_calls_work() -> streamlog::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cluster-data");
    let cluster = Cluster::start(ClusterConfig::in_memory(3).data_dir(&data).lease_ms(300))?; // brokers 0, 1, 2
    cluster.create_topic(
        "orders",
        TopicConfig::default().partitions(3).replication_factor(3),
    )?;
    let producer = cluster.producer(ProducerConfig::default().acks(Acks::All))?;
    let (partition, offset) = producer.send("orders", Record::new(b"v".to_vec()))?;
    let leader: u32 = cluster.leader("orders", partition)?;
    cluster.stop_broker(leader)?; // as if its process died; its data dir stays
    let (p2, o2) = producer.send(
        "orders",
        Record::new(b"after".to_vec()).with_key(b"k".to_vec()),
    )?;
    cluster.start_broker(leader)?; // comes back as a follower and catches up
    let records = cluster
        .broker(cluster.leader("orders", partition)?)?
        .topic("orders")?
        .partition(partition)?
        .read_from(offset)?;
    let first = records
        .into_iter()
        .next()
        .transpose()?
        .expect("the acked record");
    assert_eq!(first.value(), Some(&b"v"[..]));
    assert_ne!(
        cluster.leader("orders", partition)?,
        leader,
        "a follower took over"
    );
    assert!(data.join(format!("broker-{leader}")).exists());
    // The returning broker catches up on the partition written while it was gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = cluster.broker(leader)?.topic("orders")?.partition(p2)?;
        if log.high_watermark() > o2 {
            let value = log
                .read_from(o2)?
                .next()
                .transpose()?
                .and_then(|r| r.value().map(<[u8]>::to_vec));
            assert_eq!(value, Some(b"after".to_vec()));
            break;
        }
        assert!(Instant::now() < deadline, "broker {leader} never caught up");
        std::thread::sleep(Duration::from_millis(5));
    }
    cluster.shutdown()
}

#[test]
fn placement_errors_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(ClusterConfig::in_memory(3).data_dir(dir.path())).unwrap();
    for rf in [0u16, 4, 11] {
        match cluster.create_topic("t", TopicConfig::default().replication_factor(rf)) {
            Err(Error::InvalidReplicationFactor {
                requested,
                live_brokers,
                ..
            }) => {
                assert_eq!((requested, live_brokers), (rf, 3));
            }
            other => panic!("rf {rf}: {other:?}"),
        }
    }
    assert!(matches!(
        cluster.create_topic("bad name", TopicConfig::default()),
        Err(Error::InvalidTopicName { .. })
    ));
    // Kafka's controller refuses more than 10,000 partitions in one creation.
    let huge = TopicConfig::default().partitions(i32::MAX as u32);
    assert!(matches!(
        cluster.create_topic("huge", huge),
        Err(Error::InvalidConfig {
            name: "partitions",
            ..
        })
    ));
    cluster.create_topic("t", TopicConfig::default()).unwrap();
    assert!(matches!(
        cluster.create_topic("t", TopicConfig::default()),
        Err(Error::TopicExists { .. })
    ));
    assert!(matches!(
        cluster.broker(7),
        Err(Error::UnknownBroker { broker: 7, .. })
    ));
    assert!(matches!(
        cluster.leader("nope", 0),
        Err(Error::UnknownTopic { .. })
    ));
    assert!(matches!(
        cluster.leader("t", 5),
        Err(Error::UnknownPartition { .. })
    ));
    cluster.stop_broker(2).unwrap();
    assert!(matches!(
        cluster.broker(2),
        Err(Error::BrokerStopped { broker: 2 })
    ));
}

#[test]
fn min_insync_replicas_refuses_acks_all_when_too_few_are_in_sync() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(
        ClusterConfig::in_memory(2)
            .data_dir(dir.path())
            .lease_ms(200)
            .replica_lag_time_max_ms(300),
    )
    .unwrap();
    cluster
        .create_topic(
            "t",
            TopicConfig::default()
                .replication_factor(2)
                .min_insync_replicas(2),
        )
        .unwrap();
    let producer = cluster
        .producer(ProducerConfig::default().acks(Acks::All).retries(0))
        .unwrap();
    producer.send("t", Record::new(b"ok".to_vec())).unwrap();
    let follower = 1 - cluster.leader("t", 0).unwrap();
    cluster.stop_broker(follower).unwrap();
    // Once the follower leaves the ISR, acks=all is refused before anything is written.
    let deadline = Instant::now() + Duration::from_secs(10);
    while cluster.partition_state("t", 0).unwrap().isr.len() > 1 {
        assert!(Instant::now() < deadline, "the ISR never shrank");
        std::thread::sleep(Duration::from_millis(10));
    }
    let leader = cluster.leader("t", 0).unwrap();
    let log = cluster
        .broker(leader)
        .unwrap()
        .topic("t")
        .unwrap()
        .partition(0)
        .unwrap();
    // The leader may not have applied the shrink yet: a send racing it is written and then
    // refused with NotEnoughReplicasAfterAppend; once applied, nothing is written.
    let end = loop {
        let end = log.log_end_offset();
        match producer.send("t", Record::new(b"refused".to_vec())) {
            Err(Error::Produce {
                error, attempts, ..
            }) => {
                assert_eq!(attempts, 1);
                match error {
                    streamlog::ReplicaError::NotEnoughReplicas => break end,
                    streamlog::ReplicaError::NotEnoughReplicasAfterAppend => {}
                    other => panic!("{other:?}"),
                }
            }
            other => panic!("{other:?}"),
        }
        assert!(Instant::now() < deadline, "acks=all never refused up front");
    };
    assert_eq!(log.log_end_offset(), end, "nothing written");
    // acks=1 still works.
    let one = cluster
        .producer(ProducerConfig::default().acks(Acks::Leader))
        .unwrap();
    one.send("t", Record::new(b"one".to_vec())).unwrap();
    assert_eq!(log.log_end_offset(), end + 1);
}

#[test]
fn sends_in_flight_get_consecutive_offsets_and_bad_targets_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(ClusterConfig::in_memory(3).data_dir(dir.path())).unwrap();
    cluster
        .create_topic(
            "t",
            TopicConfig::default().partitions(2).replication_factor(3),
        )
        .unwrap();
    let producer = cluster.producer(ProducerConfig::default()).unwrap();
    let batch: Vec<Record> = (0..10).map(|i| Record::new(vec![i as u8])).collect();
    let pending: Vec<_> = (0..20)
        .map(|_| producer.send_async("t", 1, &batch).unwrap())
        .collect();
    let ranges: Vec<_> = pending.into_iter().map(|p| p.wait().unwrap()).collect();
    for (i, range) in ranges.iter().enumerate() {
        assert_eq!(*range, (i as u64 * 10)..(i as u64 * 10 + 10));
    }
    let leader = cluster.leader("t", 1).unwrap();
    let log = cluster
        .broker(leader)
        .unwrap()
        .topic("t")
        .unwrap()
        .partition(1)
        .unwrap();
    assert_eq!(
        log.high_watermark(),
        200,
        "acks=all: all replicated before answered"
    );
    assert!(matches!(
        producer.send_to("t", 2, &batch),
        Err(Error::UnknownPartition {
            partition: 2,
            partitions: 2,
            ..
        })
    ));
    assert!(matches!(
        producer.send("missing", Record::new(b"x".to_vec())),
        Err(Error::UnknownTopic { .. })
    ));
    let fire_and_forget = cluster
        .producer(ProducerConfig::default().acks(Acks::None))
        .unwrap();
    let (partition, offset) = fire_and_forget
        .send("t", Record::new(b"x".to_vec()).with_key(b"k".to_vec()))
        .unwrap();
    assert_eq!(offset, streamlog::cluster::UNKNOWN_OFFSET);
    assert!(partition < 2);
}

#[test]
fn every_replica_applies_retention_to_its_own_log() {
    use std::sync::Arc;
    use streamlog::{InMemoryConsensus, InMemoryTransport, LogConfig, ManualClock};
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000);
    let shared: Arc<dyn streamlog::Clock> = Arc::new(clock.clone());
    let cluster = Cluster::start_with(
        ClusterConfig::in_memory(3)
            .data_dir(dir.path())
            .lease_ms(3_600_000)
            .log_retention_check_interval_ms(10_000),
        Arc::new(InMemoryConsensus::new(shared.clone())),
        Arc::new(InMemoryTransport::new(shared.clone(), 0)),
        shared,
    )
    .unwrap();
    let log_config = LogConfig::default()
        .segment_bytes(4096)
        .retention_ms(60_000);
    cluster
        .create_topic(
            "t",
            TopicConfig::default()
                .replication_factor(3)
                .with_log_config(log_config),
        )
        .unwrap();
    let producer = cluster.producer(ProducerConfig::default()).unwrap();
    let records: Vec<Record> = (0..20).map(|_| Record::new(vec![7; 100])).collect();
    for _ in 0..20 {
        producer.send_to("t", 0, &records).unwrap();
    }
    let logs: Vec<_> = (0..3).map(|b| replica_of_t0(&cluster, b)).collect();
    assert!(
        logs.iter()
            .all(|l| l.segment_count() > 5 && l.log_start_offset() == 0)
    );
    clock.advance_ms(120_000);
    let deadline = Instant::now() + Duration::from_secs(10);
    // A follower's log start may move first with its leader's (from a fetch answer); its
    // own retention pass, at its next step, leaves only the active segment.
    while !logs
        .iter()
        .all(|l| l.log_start_offset() > 0 && l.segment_count() == 1)
    {
        assert!(
            Instant::now() < deadline,
            "retention never ran on every replica"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    for log in &logs {
        assert!(
            log.log_start_offset() <= log.high_watermark(),
            "never past the HW"
        );
    }
}

#[test]
fn any_broker_answers_who_leads_what_over_the_transport() {
    use std::sync::Arc;
    use streamlog::replication::messages::MetadataRequest;
    use streamlog::replication::transport::{Envelope, Message, Request, Response};
    use streamlog::{InMemoryConsensus, InMemoryTransport, SystemClock, Transport};
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(SystemClock);
    let network = Arc::new(InMemoryTransport::new(clock.clone(), 0));
    let cluster = Cluster::start_with(
        ClusterConfig::in_memory(3).data_dir(dir.path()),
        Arc::new(InMemoryConsensus::new(clock.clone())),
        network.clone(),
        clock,
    )
    .unwrap();
    cluster
        .create_topic(
            "t",
            TopicConfig::default().partitions(2).replication_factor(2),
        )
        .unwrap();
    const CLIENT: u32 = 100;
    let request = Request::Metadata(MetadataRequest {
        topics: Some(vec!["t".into(), "missing".into()]),
    });
    network
        .send(Envelope {
            from: CLIENT,
            to: 2,
            message: Message::Request {
                correlation_id: 7,
                request,
            },
        })
        .unwrap();
    let answer = network
        .receive(CLIENT, 1, Some(Duration::from_secs(5)))
        .unwrap()
        .pop()
        .expect("an answer");
    let Message::Response {
        correlation_id: 7,
        response: Response::Metadata(metadata),
    } = answer.message
    else {
        panic!("{answer:?}");
    };
    assert_eq!(
        (answer.from, metadata.brokers.as_slice()),
        (2, &[0, 1, 2][..])
    );
    assert!(metadata.controller.is_some());
    let t = &metadata.topics[0];
    assert_eq!(
        (t.name.as_str(), t.error, t.partitions.len()),
        ("t", None, 2)
    );
    for p in &t.partitions {
        assert_eq!(p.leader, Some(cluster.leader("t", p.partition).unwrap()));
        assert_eq!((p.replicas.len(), p.isr.len()), (2, 2));
    }
    assert_eq!(
        metadata.topics[1].error,
        Some(streamlog::ReplicaError::UnknownTopicOrPartition)
    );
}

#[test]
fn followers_move_their_log_start_with_the_leaders() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(ClusterConfig::in_memory(3).data_dir(dir.path())).unwrap();
    cluster
        .create_topic("t", TopicConfig::default().replication_factor(3))
        .unwrap();
    let producer = cluster.producer(ProducerConfig::default()).unwrap();
    let records: Vec<Record> = (0..10).map(|i| Record::new(vec![i])).collect();
    for _ in 0..5 {
        producer.send_to("t", 0, &records).unwrap();
    }
    let leader = cluster.leader("t", 0).unwrap();
    let log = |b: u32| replica_of_t0(&cluster, b);
    assert_eq!(log(leader).delete_records_before(30).unwrap(), 30);
    let deadline = Instant::now() + Duration::from_secs(10);
    for b in 0..3 {
        while log(b).log_start_offset() != 30 {
            assert!(Instant::now() < deadline, "broker {b} kept its log start");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(log(b).read_from(30).unwrap().count(), 20);
    }
}

/// Broker `b`'s replica of partition 0 of topic `t`.
fn replica_of_t0(cluster: &Cluster, b: u32) -> std::sync::Arc<streamlog::Partition> {
    cluster
        .broker(b)
        .unwrap()
        .topic("t")
        .unwrap()
        .partition(0)
        .unwrap()
}

/// A broker renews its lease between waits, and a stopping broker finishes its wait
/// first: a tick beyond a third of the lease is refused, naming the valid range. Found
/// in review: `tick_ms = 600_000` was accepted, and `stop_broker` then hung for the
/// rest of the ten-minute wait.
#[test]
fn a_tick_that_is_zero_or_over_a_third_of_the_lease_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for tick_ms in [0, 501, 600_000] {
        let mut config = ClusterConfig::in_memory(1)
            .data_dir(dir.path())
            .lease_ms(1_500);
        config.tick_ms = tick_ms;
        match Cluster::start(config) {
            Err(streamlog::Error::InvalidConfig { name, reason }) => {
                assert_eq!(name, "tick_ms");
                assert!(reason.contains("1..=500"), "{reason}");
            }
            other => panic!("tick_ms {tick_ms}: {other:?}"),
        }
    }
    let config = ClusterConfig::in_memory(1).data_dir(dir.path()).lease_ms(2);
    assert!(matches!(
        Cluster::start(config),
        Err(streamlog::Error::InvalidConfig {
            name: "lease_ms",
            ..
        })
    ));
}

/// An interval too long for the clock's milliseconds never passes. Found in review:
/// `log_retention_check_interval_ms(u64::MAX)` wrapped to -1 and ran retention on every
/// step.
#[test]
fn a_retention_check_interval_of_u64_max_never_runs_retention() {
    let dir = tempfile::tempdir().unwrap();
    let config = ClusterConfig::in_memory(1)
        .data_dir(dir.path())
        .log_retention_check_interval_ms(u64::MAX);
    let cluster = Cluster::start(config).unwrap();
    let topic = TopicConfig::default()
        .segment_bytes(200)
        .retention_bytes(200);
    cluster.create_topic("r", topic).unwrap();
    let producer = cluster.producer(ProducerConfig::default()).unwrap();
    for _ in 0..20 {
        producer
            .send_to("r", 0, &[Record::new(vec![7; 100])])
            .unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let log = cluster
        .broker(0)
        .unwrap()
        .topic("r")
        .unwrap()
        .partition(0)
        .unwrap();
    assert_eq!(log.log_end_offset(), 20);
    assert_eq!(log.log_start_offset(), 0, "retention ran");
}
