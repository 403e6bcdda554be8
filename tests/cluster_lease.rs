//! A broker keeps its lease through a long step: hosting many new partitions at once on a
//! slow disk must not let its lease lapse, or it is taken for dead, its leaderships move,
//! and it comes back as a new process (steps down, re-registers) for nothing.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::tap::{DiskOp, Hook, Tap};
use streamlog::cluster::{ClusterConfig, Node};
use streamlog::replication::consensus::TopicRecord;
use streamlog::storage::Env;
use streamlog::{
    Clock, ConsensusStore, InMemoryConsensus, InMemoryTransport, ManualClock, PartitionState,
    SimStorage, TopicConfig,
};

/// A disk on which creating a file takes `ms` of the shared manual clock.
#[derive(Debug)]
struct SlowCreates {
    clock: ManualClock,
    ms: i64,
}

impl Hook for SlowCreates {
    fn after(&self, op: DiskOp, _: &SimStorage) {
        if op == DiskOp::Create {
            self.clock.advance_ms(self.ms);
        }
    }
}

#[test]
fn a_broker_hosting_many_new_partitions_on_a_slow_disk_keeps_its_lease() {
    let clock = ManualClock::new(1_000_000);
    let shared: Arc<dyn Clock> = Arc::new(clock.clone());
    let consensus = Arc::new(InMemoryConsensus::new(shared.clone()));
    let disk = Tap::new(
        SimStorage::new(),
        SlowCreates {
            clock: clock.clone(),
            ms: 20,
        },
    );
    let node = Node::open(
        0,
        &PathBuf::from("/broker-0"),
        ClusterConfig::in_memory(1).lease_ms(300),
        Arc::new(consensus.session(0)),
        Arc::new(InMemoryTransport::new(shared, 1)),
        Env {
            storage: Arc::new(disk),
            clock: Arc::new(clock.clone()),
        },
    )
    .unwrap();
    node.step(None).unwrap();
    let epochs = consensus.live_broker_epochs().unwrap();
    assert_eq!(epochs.len(), 1, "registered");

    // Thirty partitions at once: a few files each, 20 ms a file, so seconds of hosting in
    // one step against a lease of 300 ms.
    let config = TopicConfig::default().partitions(30);
    let log = config.log_config().clone().segment_index_bytes(4 << 10);
    let states = (0..30).map(|_| PartitionState::new(vec![0])).collect();
    consensus
        .create_topic("t", TopicRecord::new(config.with_log_config(log), states))
        .unwrap();
    let before = clock.now_ms();
    node.step(None).unwrap();
    assert!(
        clock.now_ms() - before > 1_000,
        "hosting took {} ms of the clock",
        clock.now_ms() - before
    );
    assert_eq!(
        consensus.live_broker_epochs().unwrap(),
        epochs,
        "the broker stayed registered as the same process through the step"
    );
    for _ in 0..5 {
        node.step(None).unwrap();
        clock.advance_ms(10);
    }
    assert_eq!(consensus.live_broker_epochs().unwrap(), epochs);
}
