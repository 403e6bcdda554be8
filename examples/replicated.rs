//! Three brokers, a topic with replication factor 3, `acks=all`: cut the leader off the
//! network and write three `acks=1` records only it gets, stop it, watch a follower take
//! over with a new epoch, keep producing, bring the old leader back as a follower, watch
//! it truncate its three unreplicated records and catch up, and check that every
//! `acks=all` record is readable.
//!
//! `cargo run --release --example replicated`

use std::sync::Arc;
use std::time::{Duration, Instant};

use streamlog::{
    Acks, Cluster, ClusterConfig, InMemoryConsensus, InMemoryTransport, ProducerConfig, Record,
    SystemClock, TopicConfig,
};

const TOPIC: &str = "orders";

fn main() -> streamlog::Result<()> {
    let dir = tempfile::tempdir().map_err(|e| streamlog::Error::io("tempdir", e))?;
    let clock = Arc::new(SystemClock);
    let network = Arc::new(InMemoryTransport::new(clock.clone(), 0));
    let cluster = Cluster::start_with(
        ClusterConfig::in_memory(3)
            .data_dir(dir.path().join("cluster-data"))
            .lease_ms(500),
        Arc::new(InMemoryConsensus::new(clock.clone())),
        network.clone(),
        clock,
    )?;
    cluster.create_topic(
        TOPIC,
        TopicConfig::default()
            .partitions(1)
            .replication_factor(3)
            .min_insync_replicas(2),
    )?;
    let producer = cluster.producer(ProducerConfig::default().acks(Acks::All))?;

    let mut acked = Vec::new();
    for i in 0..100 {
        acked.push(producer.send(TOPIC, Record::new(format!("order-{i}").into_bytes()))?);
    }
    let before = cluster.partition_state(TOPIC, 0)?;
    println!(
        "100 records acknowledged; leader {:?} epoch {} isr {:?}",
        before.leader, before.leader_epoch, before.isr
    );

    let old_leader = cluster.leader(TOPIC, 0)?;
    network.isolate(old_leader);
    let acks_one = cluster.producer(ProducerConfig::default().acks(Acks::Leader))?;
    for i in 0..3 {
        acks_one.send(TOPIC, Record::new(format!("unreplicated-{i}").into_bytes()))?;
    }
    let log = cluster.broker(old_leader)?.topic(TOPIC)?.partition(0)?;
    println!(
        "broker {old_leader} cut off the network took 3 acks=1 records: log end {}, high watermark {}",
        log.log_end_offset(),
        log.high_watermark()
    );
    drop(log);
    cluster.stop_broker(old_leader)?;
    network.reconnect(old_leader);
    println!("stopped broker {old_leader} (the leader)");
    let started = Instant::now();
    for i in 100..200 {
        // The first sends retry until the controller has elected a new leader.
        acked.push(producer.send(TOPIC, Record::new(format!("order-{i}").into_bytes()))?);
    }
    let during = cluster.partition_state(TOPIC, 0)?;
    println!(
        "100 more acknowledged in {:?}; new leader {:?} epoch {} isr {:?}",
        started.elapsed(),
        during.leader,
        during.leader_epoch,
        during.isr
    );

    cluster.start_broker(old_leader)?;
    let new_leader = cluster.leader(TOPIC, 0)?;
    let leader_end = cluster
        .broker(new_leader)?
        .topic(TOPIC)?
        .partition(0)?
        .log_end_offset();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = cluster.partition_state(TOPIC, 0)?;
        let log = cluster.broker(old_leader)?.topic(TOPIC)?.partition(0)?;
        if state.isr.contains(&old_leader) && log.log_end_offset() >= leader_end {
            // Offset 100 held "unreplicated-0"; now it holds the new leader's record.
            let at_100 = log.read_to_log_end(100)?.next().transpose()?;
            let value = at_100.and_then(|r| r.value().map(<[u8]>::to_vec));
            assert_eq!(value, Some(b"order-100".to_vec()));
            println!(
                "broker {old_leader} is back as a follower: truncated its 3 unreplicated records and caught up to log end {}, epochs {:?}, isr {:?}",
                log.log_end_offset(),
                log.leader_epochs()
                    .iter()
                    .map(|e| (e.epoch, e.start_offset))
                    .collect::<Vec<_>>(),
                state.isr
            );
            break;
        }
        if Instant::now() > deadline {
            println!("broker {old_leader} did not catch up within 10 s");
            std::process::exit(1);
        }
        std::thread::sleep(Duration::from_millis(10));
    }

    let leader = cluster.leader(TOPIC, 0)?;
    let log = cluster.broker(leader)?.topic(TOPIC)?.partition(0)?;
    let mut found = 0;
    for (i, (partition, offset)) in acked.iter().enumerate() {
        let record = log.read_from(*offset)?.next().transpose()?;
        let value = record.and_then(|r| r.value().map(<[u8]>::to_vec));
        assert_eq!(*partition, 0);
        assert_eq!(
            value,
            Some(format!("order-{i}").into_bytes()),
            "offset {offset}"
        );
        found += 1;
    }
    println!("all {found} acknowledged records are readable on leader {leader}");
    cluster.shutdown()
}
