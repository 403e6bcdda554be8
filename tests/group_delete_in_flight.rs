//! Deletions (of a group, of a topic's offsets) while commits are still being appended,
//! end to end: a driver that appends to a broker's `__consumer_offsets` at once but
//! answers later, then a reopened broker whose reloaded coordinator must not bring back
//! anything deleted.

use std::collections::BTreeMap;

use streamlog::group::coordinator::*;
use streamlog::{Broker, BrokerConfig, OffsetsConfig, OffsetsStore};

const G: &str = "group";

fn coordinator() -> GroupCoordinator {
    GroupCoordinator::new(CoordinatorConfig {
        min_session_timeout_ms: 10,
        max_session_timeout_ms: 600_000,
        initial_rebalance_delay_ms: 0,
        offsets_topic_partitions: 3,
        ..CoordinatorConfig::default()
    })
    .unwrap()
}

/// A driver that appends every `Persist` to the store at once (the record is in the log)
/// but reports the outcome to the coordinator only when told: the acks=all driver that
/// `OffsetsStore::persist_records` documents, whose produce answer comes later.
struct Async {
    c: GroupCoordinator,
    store: OffsetsStore,
    now: i64,
    token: u64,
    replies: BTreeMap<u64, Response>,
    /// Appended, not yet acknowledged: (id, offset of its last record).
    unacked: Vec<(PersistId, u64)>,
    hold: bool,
}

impl Async {
    fn new(store: OffsetsStore) -> Self {
        Self {
            c: coordinator(),
            store,
            now: 1_000,
            token: 0,
            replies: BTreeMap::new(),
            unacked: Vec::new(),
            hold: false,
        }
    }

    fn feed(&mut self, out: Vec<Output>) {
        for o in out {
            match o {
                Output::Reply { to, response } => {
                    self.replies.insert(to.0, response);
                }
                Output::Persist(p) => {
                    let offset = self.store.persist(&p).expect("append");
                    if self.hold {
                        self.unacked.push((p.id, offset));
                    } else {
                        let out = self.c.append_completed(self.now, p.id, Ok(offset));
                        self.feed(out);
                    }
                }
            }
        }
    }

    fn ack(&mut self, index: usize) {
        let (id, offset) = self.unacked.remove(index);
        let out = self.c.append_completed(self.now, id, Ok(offset));
        self.feed(out);
    }

    fn next(&mut self) -> ReplyTo {
        self.token += 1;
        ReplyTo(self.token)
    }

    /// A simple commit (generation -1) of `offset` to `topic`/`partition`.
    fn simple_commit(&mut self, topic: &str, partition: u32, offset: u64) -> u64 {
        let to = self.next();
        let req = OffsetCommitRequest {
            group_id: G.into(),
            member_id: String::new(),
            generation: -1,
            retention_ms: None,
            offsets: vec![(
                (topic.into(), partition),
                OffsetCommit {
                    offset,
                    leader_epoch: None,
                    metadata: String::new(),
                },
            )],
        };
        let out = self.c.commit_offsets(self.now, to, req);
        self.feed(out);
        to.0
    }
}

fn broker_config() -> BrokerConfig {
    BrokerConfig::default().background_threads(false)
}

fn offsets_config() -> OffsetsConfig {
    OffsetsConfig::default().num_partitions(3)
}

/// What a coordinator rebuilt from the reopened broker's `__consumer_offsets` holds for G.
fn reloaded(dir: &std::path::Path) -> Vec<((String, u32), u64)> {
    let broker = Broker::open(dir, broker_config()).unwrap();
    let store = OffsetsStore::open(&broker, offsets_config()).unwrap();
    let mut c = coordinator();
    c.load_from(0, &store);
    let fetched = c.fetch_offsets(G, None).unwrap();
    fetched
        .into_iter()
        .filter_map(|(tp, o)| o.map(|o| (tp, o.offset)))
        .collect()
}

/// A commit whose append is in the log but not yet acknowledged when the group is deleted:
/// the deletion's tombstones cover only the installed offsets, so the in-flight commit's
/// record outlives the deletion and the deleted group comes back, with that offset, when
/// the broker reopens.
#[test]
fn a_group_deleted_while_a_commit_is_in_flight_comes_back_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = Broker::open(dir.path(), broker_config()).unwrap();
        let store = OffsetsStore::open(&broker, offsets_config()).unwrap();
        let mut h = Async::new(store);
        h.simple_commit("t", 0, 5);
        h.hold = true;
        let commit = h.simple_commit("t", 1, 7); // appended, answer pending
        let to = h.next();
        let out = h.c.delete_group(h.now, to, G);
        h.feed(out);
        h.ack(1); // the deletion's tombstones
        assert!(matches!(
            h.replies.get(&to.0),
            Some(Response::DeleteGroup(Ok(())))
        ));
        h.ack(0); // the commit, appended before the deletion
        assert!(h.replies.contains_key(&commit));
        assert_eq!(h.c.describe_group(G), None, "deleted");
        // Every offset of the deleted group must be tombstoned in __consumer_offsets.
        assert_eq!(h.store.fetch_all(G), BTreeMap::new(), "left in the log");
        drop(h);
        broker.close().unwrap();
    }
    assert_eq!(reloaded(dir.path()), [], "a deleted group stays deleted");
}

/// The same with a deleted topic: a commit of the topic in flight is "answered but not
/// installed", yet no tombstone is written for it, so its record stays in
/// `__consumer_offsets` and the deleted topic's offset is back after a reopen (a re-created
/// topic of that name would then be read from the old offset).
#[test]
fn a_deleted_topics_commit_in_flight_gets_no_tombstone_and_comes_back_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = Broker::open(dir.path(), broker_config()).unwrap();
        let store = OffsetsStore::open(&broker, offsets_config()).unwrap();
        let mut h = Async::new(store);
        h.simple_commit("u", 0, 1); // keeps the group alive
        h.hold = true;
        let commit = h.simple_commit("t", 0, 9); // appended, answer pending
        let (out, _) = h.c.delete_topic_offsets(h.now, "t");
        h.feed(out);
        while !h.unacked.is_empty() {
            h.ack(0);
        }
        assert!(h.replies.contains_key(&commit));
        let tp = [("t".to_string(), 0)];
        assert_eq!(h.c.fetch_offsets(G, Some(&tp)).unwrap()[0].1, None);
        // The deleted topic's offset must be tombstoned in __consumer_offsets.
        assert_eq!(h.store.fetch(G, "t", 0), None, "left in the log");
        drop(h);
        broker.close().unwrap();
    }
    assert_eq!(reloaded(dir.path()), [(("u".to_string(), 0), 1)]);
}
