//! Brokers (`Node`s) meeting failures around them:
//!
//! - a broker whose disk fails halts, as a Kafka broker whose log directories are all
//!   offline does: a failed fsync closes one of its logs (its data can no longer be
//!   vouched for), so it answers what waits on it, closes its logs and leaves the
//!   cluster; the controller elects an in-sync follower, and producers carry on there.
//!   Opened again on the same disk, the broker recovers its logs and catches up;
//! - a message that cannot be sent to one broker (it is gone) fails only itself.
//!
//! Three `Node`s stepped by hand on one thread over `SimStorage`, `ManualClock`, an
//! `InMemoryTransport` (wrapped to refuse sends to chosen brokers) and
//! `InMemoryConsensus`, as in the simulation.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use streamlog::cluster::{ClusterConfig, Node, Submitted};
use streamlog::replication::ProduceToken;
use streamlog::replication::consensus::TopicRecord;
use streamlog::replication::messages::{
    FetchPartition, FetchRequest, MetadataRequest, ProduceRequest, ProduceResponse, ReplicaError,
};
use streamlog::replication::transport::{DirectReceiver, Message, Request, Response};
use streamlog::storage::Env;
use streamlog::{
    Acks, BrokerId, Clock, Compression, ConsensusStore, Envelope, Error, InMemoryConsensus,
    InMemoryTransport, ManualClock, PartitionKey, PartitionState, Record, SimStorage, TopicConfig,
    Transport,
};

const BROKERS: usize = 3;
const TOPIC: &str = "t";

/// The in-memory transport, but a send to a broker in `unreachable` fails (as a
/// connection to a dead peer is refused).
struct Refusing {
    inner: InMemoryTransport,
    unreachable: Mutex<BTreeSet<BrokerId>>,
}

impl Transport for Refusing {
    fn send(&self, envelope: Envelope) -> streamlog::Result<()> {
        if self.unreachable.lock().contains(&envelope.to) {
            return Err(Error::BrokerStopped {
                broker: envelope.to,
            });
        }
        self.inner.send(envelope)
    }

    fn receive(
        &self,
        broker: BrokerId,
        max: usize,
        wait: Option<Duration>,
    ) -> streamlog::Result<Vec<Envelope>> {
        self.inner.receive(broker, max, wait)
    }
}

struct Harness {
    clock: ManualClock,
    consensus: Arc<InMemoryConsensus>,
    transport: Arc<Refusing>,
    disks: Vec<SimStorage>,
    nodes: Vec<Option<Node>>,
    key: PartitionKey,
}

impl Harness {
    fn new() -> Self {
        let clock = ManualClock::new(1_000_000);
        let shared: Arc<dyn Clock> = Arc::new(clock.clone());
        let mut harness = Self {
            consensus: Arc::new(InMemoryConsensus::new(shared.clone())),
            transport: Arc::new(Refusing {
                inner: InMemoryTransport::new(shared, 7),
                unreachable: Mutex::new(BTreeSet::new()),
            }),
            clock,
            disks: (0..BROKERS).map(|_| SimStorage::new()).collect(),
            nodes: (0..BROKERS).map(|_| None).collect(),
            key: PartitionKey::new(TOPIC, 0),
        };
        for b in 0..BROKERS {
            harness.start(b);
        }
        let config = TopicConfig::default().partitions(1).replication_factor(3);
        // Small indexes: the simulated disk copies a whole map back when it is dropped.
        let log = config.log_config().clone().segment_index_bytes(4 << 10);
        let config = config.with_log_config(log);
        // Leader 0, followers 1 and 2.
        let states = vec![PartitionState::new(vec![0, 1, 2])];
        harness
            .consensus
            .create_topic(TOPIC, TopicRecord::new(config, states))
            .unwrap();
        harness.run(20);
        harness
    }

    fn config() -> ClusterConfig {
        let mut config = ClusterConfig::in_memory(BROKERS as u32).lease_ms(300);
        config.replica_fetch_wait_max_ms = 20;
        config.replica.fetch_backoff_ms = 50;
        config
    }

    fn start(&mut self, b: usize) {
        let node = Node::open(
            b as BrokerId,
            &PathBuf::from(format!("/broker-{b}")),
            Self::config(),
            Arc::new(self.consensus.session(b as BrokerId)),
            self.transport.clone(),
            Env {
                storage: Arc::new(self.disks[b].clone()),
                clock: Arc::new(self.clock.clone()),
            },
        )
        .unwrap();
        self.nodes[b] = Some(node);
    }

    /// Steps every node `rounds` times, 5 ms apart; returns what each step answered.
    fn run(&mut self, rounds: usize) -> Vec<streamlog::Result<()>> {
        let mut results = Vec::new();
        for _ in 0..rounds {
            for node in self.nodes.iter().flatten() {
                results.push(node.step(None));
            }
            self.clock.advance_ms(5);
        }
        results
    }

    fn step(&self, b: usize) {
        let _ = self.node(b).step(None);
    }

    fn node(&self, b: usize) -> &Node {
        self.nodes[b].as_ref().unwrap()
    }

    fn state(&self) -> PartitionState {
        self.consensus
            .partition_state(TOPIC, 0)
            .unwrap()
            .unwrap()
            .value
    }

    fn leader(&self) -> usize {
        self.state().leader.expect("a leader") as usize
    }

    fn request(&self, values: &[&str]) -> ProduceRequest {
        let records: Vec<Record> = values
            .iter()
            .map(|v| Record::new(v.as_bytes().to_vec()))
            .collect();
        let mut buf = Vec::new();
        streamlog::record::encode_batch(&records, Compression::None, self.clock.now_ms(), &mut buf)
            .unwrap();
        ProduceRequest {
            acks: Acks::All,
            timeout_ms: 1_000,
            partition: self.key.clone(),
            records: Bytes::from(buf),
        }
    }

    /// Fills follower 2's disk and sends leader 0 an `acks=all` produce, which then waits
    /// (follower 2 cannot append it) through ten rounds; returns its token.
    fn produce_while_follower_2_is_full(&mut self) -> ProduceToken {
        self.disks[2].fail_writes(true);
        let request = self.request(&["a"]);
        let Ok(Submitted::Waiting(token)) = self.node(0).submit_produce(&request) else {
            panic!("acks=all waits for the followers");
        };
        self.run(10);
        assert_eq!(self.node(0).take_answer(token), None, "still waiting");
        token
    }

    /// Produces `values` with `acks=all` to broker `b` and steps until it is answered.
    fn produce(&mut self, b: usize, values: &[&str]) -> ProduceResponse {
        let request = self.request(values);
        match self.node(b).submit_produce(&request).unwrap() {
            Submitted::Done(response) => response,
            Submitted::NoAnswer => panic!("acks=all is always answered"),
            Submitted::Waiting(token) => {
                for _ in 0..400 {
                    self.run(1);
                    if let Some(response) = self.node(b).take_answer(token) {
                        return response;
                    }
                }
                panic!("no answer to the produce");
            }
        }
    }

    fn values(&self, b: usize) -> Vec<(u64, String)> {
        let log = self.node(b).log(&self.key).expect("the replica");
        log.read_to_log_end(log.log_start_offset())
            .unwrap()
            .map(|r| {
                let r = r.unwrap();
                let value = String::from_utf8(r.value().unwrap().to_vec()).unwrap();
                (r.offset(), value)
            })
            .collect()
    }
}

#[test]
fn a_leader_whose_fsync_fails_halts_and_a_follower_takes_over() {
    let mut h = Harness::new();
    let old = h.leader();
    let before = h.state();
    assert_eq!(before.isr.len(), 3, "{before:?}");
    let first = h.produce(old, &["a", "b"]);
    assert_eq!((first.error, first.base_offset), (None, Some(0)));

    // The leader's disk fails an fsync: the log closes (nothing it wrote since its last
    // good sync can be vouched for).
    h.disks[old].fail_syncs(true);
    let log = h.node(old).log(&h.key).unwrap();
    assert!(log.flush().is_err());
    assert!(log.is_closed());

    // At its next step the broker halts and leaves the cluster at once.
    let results = h.run(1);
    assert!(h.node(old).is_halted());
    assert!(
        results
            .iter()
            .any(|r| matches!(r, Err(Error::BrokerStopped { broker }) if *broker as usize == old)),
        "{results:?}"
    );
    assert!(
        !h.consensus
            .live_brokers()
            .unwrap()
            .contains(&(old as BrokerId))
    );
    assert!(
        h.node(old).log(&h.key).is_none(),
        "its logs are closed and released"
    );
    assert!(h.node(old).last_error().unwrap().contains("halted"));

    // The controller (another broker, if it was the old leader) elects an in-sync
    // follower in a new epoch, without waiting for the halted broker's lease.
    h.run(10);
    let after = h.state();
    let new = h.leader();
    assert_ne!(new, old);
    assert!(after.leader_epoch > before.leader_epoch, "{after:?}");
    assert!(!after.isr.contains(&(old as BrokerId)), "{after:?}");

    // A produce to the halted broker is turned away; the new leader takes it.
    let refused = h.produce(old, &["lost"]);
    assert!(
        matches!(
            refused.error,
            Some(ReplicaError::NotLeaderOrFollower { .. })
        ),
        "{refused:?}"
    );
    let second = h.produce(new, &["c"]);
    assert_eq!((second.error, second.base_offset), (None, Some(2)));

    // Opened again on the same disk, the broker recovers and catches up as a follower.
    h.nodes[old] = None;
    h.disks[old].fail_syncs(false);
    h.start(old);
    h.run(40);
    let expected: Vec<(u64, String)> = vec![(0, "a".into()), (1, "b".into()), (2, "c".into())];
    assert_eq!(h.values(old), expected);
    assert_eq!(h.values(new), expected);
    assert!(
        h.state().isr.contains(&(old as BrokerId)),
        "{:?}",
        h.state()
    );
    assert!(!h.node(old).is_halted());
}

/// A leader answers the follower fetches parked on it when it appends; the answer to one
/// follower cannot be sent (its broker is gone). The other follower's fetch must still be
/// answered (before, it was dropped, so that follower replicated nothing until its
/// request timed out) and the producer must get its produce's outcome (before, an error
/// although the batch was written, so a retry would write it twice).
#[test]
fn a_reply_that_cannot_be_sent_fails_only_itself() {
    let h = Harness::new();
    assert_eq!(h.leader(), 0);
    // Both followers' fetches end up parked on the leader, broker 1's first.
    h.clock.advance_ms(25);
    h.step(0);
    h.step(1);
    h.step(2);
    h.step(0);
    h.transport.unreachable.lock().insert(1);
    let request = h.request(&["v"]);
    let submitted = h.node(0).submit_produce(&request);
    assert!(
        matches!(submitted, Ok(Submitted::Waiting(_))),
        "{submitted:?}"
    );
    let follower = h.node(2).log(&h.key).unwrap();
    for _ in 0..5 {
        h.step(0);
        h.step(2);
    }
    assert_eq!(follower.log_end_offset(), 1, "follower 2 copied the batch");
    let error = h.node(0).last_error().unwrap_or_default();
    assert!(error.contains("broker 1"), "{error}");
}

/// A follower whose disk is full fails to append what it fetched; it wrote nothing and
/// its log stays open, so once space is freed it fetches again and catches up (before,
/// it stopped fetching until the partition's next leader epoch, and an `acks=all`
/// produce waited for the ISR to drop it).
#[test]
fn a_follower_whose_disk_was_full_catches_up_once_it_has_room() {
    let mut h = Harness::new();
    let token = h.produce_while_follower_2_is_full();
    let follower = h.node(2).log(&h.key).unwrap();
    assert_eq!(follower.log_end_offset(), 0);
    assert!(!follower.is_closed() && !h.node(2).is_halted());
    h.disks[2].fail_writes(false);
    // Within `replica.fetch.backoff.ms` (50 ms here) and a round.
    let mut answer = None;
    for _ in 0..40 {
        h.run(1);
        answer = answer.or_else(|| h.node(0).take_answer(token));
    }
    let answer = answer.expect("answered once follower 2 has the batch");
    assert_eq!((answer.error, answer.base_offset), (None, Some(0)));
    assert_eq!(follower.log_end_offset(), 1);
}

/// A broker halting (its fsync failed) while a follower's fetch is parked on it whose
/// answer cannot be sent still answers the produce waiting for replication and closes
/// its logs (before, the failed reply ended the shutdown there: the producer waited for
/// its timeout and the directories stayed locked).
#[test]
fn a_halting_broker_finishes_its_shutdown_when_a_parked_reply_fails() {
    let mut h = Harness::new();
    let token = h.produce_while_follower_2_is_full();
    // Follower 1 is caught up: its next fetch finds nothing new and is parked on 0.
    h.clock.advance_ms(25);
    h.step(0);
    h.step(1);
    h.step(0);
    // Broker 1 goes away; then the leader's disk fails an fsync.
    h.transport.unreachable.lock().insert(1);
    h.disks[0].fail_syncs(true);
    let log = h.node(0).log(&h.key).unwrap();
    assert!(log.flush().is_err());
    drop(log);
    h.step(0);
    assert!(h.node(0).is_halted());
    let answer = h
        .node(0)
        .take_answer(token)
        .expect("the waiting produce is answered");
    assert!(
        matches!(answer.error, Some(ReplicaError::NotLeaderOrFollower { .. })),
        "{answer:?}"
    );
    assert!(h.node(0).log(&h.key).is_none(), "its logs are closed");
}

/// A follower's machine loses power while a fetch of its process is parked at the leader.
/// Its next process registers anew and steps down (its log lost what the page cache
/// held). The parked fetch, answered when the leader next appends, must not put it back
/// in the ISR on the log end of the process that sent it — a high watermark over records
/// it no longer has (Kafka refuses such fetches by broker epoch, KIP-903). It rejoins
/// once its own fetches have caught up.
#[test]
fn a_fetch_parked_by_a_followers_earlier_process_does_not_put_it_back_in_sync() {
    let mut h = Harness::new();
    assert_eq!(h.leader(), 0);
    assert_eq!(h.produce(0, &["a", "b"]).error, None);
    h.run(2);
    // Follower 2 fetches at its log end (2); nothing is new, so the leader parks it.
    h.step(2);
    h.step(0);
    assert_eq!(h.node(2).log(&h.key).unwrap().log_end_offset(), 2);
    // Its machine loses power: nothing was synced, so its next process finds no records.
    // (The disk is taken first: what dropping the old node writes never lands.)
    let after = h.disks[2].power_loss(7);
    h.nodes[2] = None;
    h.disks[2] = after;
    h.start(2);
    assert!(!h.state().isr.contains(&2), "stepped down: {:?}", h.state());
    // The leader learns of the new registration and appends, answering what is parked;
    // broker 2's new process is not stepped, so only its old fetch speaks for it.
    h.step(0);
    let request = h.request(&["c"]);
    let submitted = h.node(0).submit_produce(&request).unwrap();
    for _ in 0..4 {
        h.step(0);
        h.step(1);
        h.clock.advance_ms(5);
    }
    assert!(
        !h.state().isr.contains(&2),
        "back in sync on its old process's log end: {:?}",
        h.state()
    );
    // Its own fetches bring it back, with every record.
    h.run(40);
    let Submitted::Waiting(token) = submitted else {
        panic!("acks=all waits for the ISR: {submitted:?}");
    };
    assert!(
        h.node(0)
            .take_answer(token)
            .is_some_and(|r| r.error.is_none())
    );
    assert!(h.state().isr.contains(&2), "{:?}", h.state());
    let expected: Vec<(u64, String)> = vec![(0, "a".into()), (1, "b".into()), (2, "c".into())];
    assert_eq!(h.values(2), expected);
}

/// A fetch the transport hands to the leader on the fetcher's thread
/// ([`DirectReceiver`]) is answered at once, its answer queued for the fetcher; a broker
/// that has shut down gives it back (a dead process answers nothing), and so does any
/// broker for what is not a replication request.
#[test]
fn a_leader_answers_a_direct_fetch_at_once_and_a_shut_down_one_gives_it_back() {
    let mut h = Harness::new();
    assert_eq!(h.leader(), 0);
    assert_eq!(h.produce(0, &["a", "b"]).error, None);
    // Drain what the steps left for a client "broker 9".
    let _ = h.transport.receive(9, 100, None).unwrap();
    let fetch = |correlation_id| Envelope {
        from: 9,
        to: 0,
        message: Message::Request {
            correlation_id,
            request: Request::Fetch(FetchRequest {
                replica_id: None,
                max_bytes: 1 << 20,
                partitions: vec![FetchPartition {
                    partition: h.key.clone(),
                    current_leader_epoch: None,
                    fetch_offset: 0,
                    last_fetched_epoch: None,
                    log_start_offset: None,
                    max_bytes: 1 << 20,
                }],
            }),
        },
    };
    assert_eq!(h.node(0).take_direct(fetch(1)), None, "taken");
    let answers = h.transport.receive(9, 100, None).unwrap();
    let [answer] = answers.as_slice() else {
        panic!("one answer: {answers:?}");
    };
    let Message::Response {
        correlation_id: 1,
        response: Response::Fetch(response),
    } = &answer.message
    else {
        panic!("the fetch's answer: {answer:?}");
    };
    assert_eq!(response.partitions[0].error, None);
    assert!(!response.partitions[0].records.is_empty(), "{response:?}");

    let metadata = Envelope {
        from: 9,
        to: 0,
        message: Message::Request {
            correlation_id: 2,
            request: Request::Metadata(MetadataRequest::default()),
        },
    };
    assert_eq!(h.node(0).take_direct(metadata.clone()), Some(metadata));

    h.node(0).shutdown().unwrap();
    assert_eq!(h.node(0).take_direct(fetch(3)), Some(fetch(3)));
    assert!(h.transport.receive(9, 100, None).unwrap().is_empty());
}
