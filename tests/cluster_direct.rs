//! Brokers answering each other's replication requests on the sending thread
//! (`DirectReceiver`, registered with the transport as `Cluster` does): a broker never
//! waits on another's lock, and one whose log closed under it serves nothing before it
//! halts.
//!
//! Three `Node`s over `SimStorage`, `ManualClock`, `InMemoryTransport` and
//! `InMemoryConsensus`, stepped by hand as in `tests/cluster_node.rs`; one test steps
//! two of them on threads of their own.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use streamlog::cluster::{ClusterConfig, Node, Submitted};
use streamlog::replication::consensus::{
    BrokerRegistration, Changes, ConsensusSession, Controller, TopicRecord, Versioned,
};
use streamlog::replication::messages::{ProduceRequest, ReplicaError};
use streamlog::replication::transport::DirectReceiver;
use streamlog::storage::Env;
use streamlog::{
    Acks, BrokerId, Clock, Compression, ConsensusStore, InMemoryConsensus, InMemoryTransport,
    ManualClock, PartitionKey, PartitionState, Record, SimStorage, TopicConfig, Transport,
};

/// A consensus session whose `revision()` (called by every step under the node's state
/// lock) blocks while `stalled` is set, after saying so through `entered`.
struct Stalling {
    inner: ConsensusSession,
    stalled: Mutex<bool>,
    released: Condvar,
    entered: AtomicBool,
}

impl Stalling {
    fn gate(&self) {
        let mut stalled = self.stalled.lock();
        while *stalled {
            self.entered.store(true, Ordering::Release);
            self.released.wait(&mut stalled);
        }
    }

    fn release(&self) {
        *self.stalled.lock() = false;
        self.released.notify_all();
    }
}

impl ConsensusStore for Stalling {
    fn register_broker(&self, b: BrokerId, lease_ms: u64) -> streamlog::Result<BrokerRegistration> {
        self.inner.register_broker(b, lease_ms)
    }
    fn renew_lease(&self, b: BrokerId) -> streamlog::Result<()> {
        self.inner.renew_lease(b)
    }
    fn unregister_broker(&self, b: BrokerId) -> streamlog::Result<()> {
        self.inner.unregister_broker(b)
    }
    fn live_brokers(&self) -> streamlog::Result<Vec<BrokerId>> {
        self.inner.live_brokers()
    }
    fn live_broker_epochs(&self) -> streamlog::Result<Vec<(BrokerId, u64)>> {
        self.inner.live_broker_epochs()
    }
    fn try_become_controller(&self, b: BrokerId) -> streamlog::Result<Controller> {
        self.inner.try_become_controller(b)
    }
    fn controller(&self) -> streamlog::Result<Option<Controller>> {
        self.inner.controller()
    }
    fn create_topic(&self, name: &str, record: TopicRecord) -> streamlog::Result<u64> {
        self.inner.create_topic(name, record)
    }
    fn topic(&self, name: &str) -> streamlog::Result<Option<Versioned<TopicRecord>>> {
        self.inner.topic(name)
    }
    fn topics(&self) -> streamlog::Result<Vec<String>> {
        self.inner.topics()
    }
    fn set_topic(&self, name: &str, record: TopicRecord, v: u64) -> streamlog::Result<u64> {
        self.inner.set_topic(name, record, v)
    }
    fn add_partitions(&self, name: &str, p: Vec<PartitionState>) -> streamlog::Result<u64> {
        self.inner.add_partitions(name, p)
    }
    fn delete_topic(&self, name: &str) -> streamlog::Result<()> {
        self.inner.delete_topic(name)
    }
    fn partition_state(
        &self,
        topic: &str,
        partition: u32,
    ) -> streamlog::Result<Option<Versioned<PartitionState>>> {
        self.inner.partition_state(topic, partition)
    }
    fn set_partition_state(
        &self,
        topic: &str,
        partition: u32,
        state: PartitionState,
        v: u64,
    ) -> streamlog::Result<u64> {
        self.inner.set_partition_state(topic, partition, state, v)
    }
    fn revision(&self) -> streamlog::Result<u64> {
        self.gate();
        self.inner.revision()
    }
    fn changes_since(&self, revision: u64) -> streamlog::Result<Changes> {
        self.inner.changes_since(revision)
    }
}

struct Cluster3 {
    clock: ManualClock,
    consensus: Arc<InMemoryConsensus>,
    transport: Arc<InMemoryTransport>,
    disks: Vec<SimStorage>,
    nodes: Vec<Arc<Node>>,
}

impl Cluster3 {
    /// Brokers 0, 1, 2, each its transport's direct receiver, broker 0 over `store0`
    /// when given; topic `t` with one partition led by 0, stepped until settled.
    fn new(
        store0: Option<Arc<dyn ConsensusStore>>,
        consensus: Arc<InMemoryConsensus>,
        clock: ManualClock,
    ) -> Self {
        let shared: Arc<dyn Clock> = Arc::new(clock.clone());
        let transport = Arc::new(InMemoryTransport::new(shared, 7));
        let disks: Vec<SimStorage> = (0..3).map(|_| SimStorage::new()).collect();
        let mut config = ClusterConfig::in_memory(3).lease_ms(300);
        config.replica_fetch_wait_max_ms = 20;
        let nodes = (0..3u32)
            .map(|b| {
                let store: Arc<dyn ConsensusStore> = match (&store0, b) {
                    (Some(store), 0) => store.clone(),
                    _ => Arc::new(consensus.session(b)),
                };
                let node = Node::open(
                    b,
                    &PathBuf::from(format!("/broker-{b}")),
                    config.clone(),
                    store,
                    transport.clone(),
                    Env {
                        storage: Arc::new(disks[b as usize].clone()),
                        clock: Arc::new(clock.clone()),
                    },
                )
                .unwrap();
                let node = Arc::new(node);
                let receiver: Arc<dyn DirectReceiver> = node.clone();
                transport.set_direct_receiver(b, Some(Arc::downgrade(&receiver)));
                node
            })
            .collect();
        let topic = TopicConfig::default().partitions(1).replication_factor(3);
        // Small indexes: the simulated disk copies a whole map back when it is dropped.
        let log_config = topic.log_config().clone().segment_index_bytes(4 << 10);
        let topic = topic.with_log_config(log_config);
        consensus
            .create_topic(
                "t",
                TopicRecord::new(topic, vec![PartitionState::new(vec![0, 1, 2])]),
            )
            .unwrap();
        let cluster = Self {
            clock,
            consensus,
            transport,
            disks,
            nodes,
        };
        cluster.run(20);
        let state = cluster
            .consensus
            .partition_state("t", 0)
            .unwrap()
            .unwrap()
            .value;
        assert_eq!((state.leader, state.isr.len()), (Some(0), 3));
        // Past their wait, 0 answers the followers' parked fetches (empty), so each
        // follower's next step sends it a new fetch.
        cluster.clock.advance_ms(25);
        cluster.nodes[0].step(None).unwrap();
        cluster
    }

    fn run(&self, rounds: usize) {
        for _ in 0..rounds {
            for node in &self.nodes {
                let _ = node.step(None);
            }
            self.clock.advance_ms(5);
        }
    }
}

/// A broker's step never waits for another broker's lock. Found in review: a follower
/// sending its fetch to a leader whose thread held its lock across a slow call (here the
/// store's `revision()`; opening a log, a controller round or an ISR compare-and-set are
/// as long) blocked in the leader's `take_direct` for as long as the leader was slow, and
/// its whole step with it (lease renewal, controller duties, fetches parked on it). Now
/// a busy leader gives the fetch back, to be answered from its queue.
#[test]
fn a_followers_step_does_not_wait_for_a_slow_leaders_lock() {
    let clock = ManualClock::new(1_000_000);
    let consensus = Arc::new(InMemoryConsensus::new(Arc::new(clock.clone())));
    let stalling = Arc::new(Stalling {
        inner: consensus.session(0),
        stalled: Mutex::new(false),
        released: Condvar::new(),
        entered: AtomicBool::new(false),
    });
    let c = Cluster3::new(Some(stalling.clone()), consensus, clock);
    assert!(
        c.transport.pending() > 0,
        "answers queued for the followers"
    );

    // Leader 0's next step stalls under its lock.
    *stalling.stalled.lock() = true;
    let leader = {
        let node = c.nodes[0].clone();
        std::thread::spawn(move || node.step(None))
    };
    while !stalling.entered.load(Ordering::Acquire) {
        std::thread::yield_now();
    }
    // Follower 1 steps on a thread of its own: it sends its next fetch to 0.
    let (done, finished) = mpsc::channel();
    let follower = {
        let node = c.nodes[1].clone();
        std::thread::spawn(move || {
            let result = node.step(None);
            let _ = done.send(());
            result
        })
    };
    let returned = finished.recv_timeout(Duration::from_secs(10)).is_ok();
    stalling.release();
    leader.join().unwrap().unwrap();
    follower.join().unwrap().unwrap();
    assert!(
        returned,
        "follower 1's step waited on leader 0's lock for as long as 0 was slow"
    );
    // The fetch it gave back is answered by the leader's own thread.
    c.run(3);
    assert_eq!(c.transport.pending(), 0, "nothing left unanswered");
}

/// A broker whose log closed under it (a failed fsync, checkpoint write or truncation)
/// serves nothing from it. Found in review: `Node::step` halts before it answers
/// anything when a hosted log has closed, but a direct fetch, taken on a follower's
/// thread before the leader's thread stepped again, read the closed log: the followers
/// copied the batch, the high watermark passed it and the `acks=all` produce was
/// answered with success by a broker that can no longer vouch for its data. Now the
/// fetch is given back, and the leader's next step halts first.
#[test]
fn a_leader_with_a_closed_log_serves_no_direct_fetch_before_it_halts() {
    let clock = ManualClock::new(1_000_000);
    let consensus = Arc::new(InMemoryConsensus::new(Arc::new(clock.clone())));
    let c = Cluster3::new(None, consensus, clock);
    let key = PartitionKey::new("t", 0);
    let mut buf = Vec::new();
    let records = [Record::new(b"x".to_vec())];
    streamlog::record::encode_batch(&records, Compression::None, c.clock.now_ms(), &mut buf)
        .unwrap();
    let request = ProduceRequest {
        acks: Acks::All,
        timeout_ms: 10_000,
        partition: key.clone(),
        records: Bytes::from(buf),
    };
    let Submitted::Waiting(token) = c.nodes[0].submit_produce(&request).unwrap() else {
        panic!("acks=all waits for the followers");
    };

    // Leader 0's disk fails an fsync: the log closes; 0's thread has not stepped since.
    c.disks[0].fail_syncs(true);
    let log = c.nodes[0].log(&key).unwrap();
    assert!(log.flush().is_err());
    assert!(log.is_closed());
    drop(log);

    // Only the followers step: enough to fetch the batch and fetch past it.
    for _ in 0..3 {
        c.nodes[1].step(None).unwrap();
        c.nodes[2].step(None).unwrap();
    }
    assert_eq!(c.nodes[1].log(&key).unwrap().log_end_offset(), 0);
    assert_eq!(c.nodes[2].log(&key).unwrap().log_end_offset(), 0);
    assert_eq!(c.nodes[0].take_answer(token), None, "not answered yet");

    let _ = c.nodes[0].step(None);
    assert!(c.nodes[0].is_halted());
    let answer = c.nodes[0].take_answer(token).expect("answered by the halt");
    assert!(
        matches!(answer.error, Some(ReplicaError::NotLeaderOrFollower { .. })),
        "{answer:?}"
    );
}
