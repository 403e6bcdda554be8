//! Property test of the group coordinator with simulated consumers: random joins, leaves,
//! crashes (members that stop heartbeating), commits and clock advances, with the leader
//! computing assignments with a chosen assignor. After every step: generations never go
//! down, no partition has two owners in one generation, and a Stable group with members
//! has every subscribed partition owned exactly once (eager assignors) with members beyond
//! the partition count idle.

use std::collections::{BTreeMap, VecDeque};

use proptest::prelude::*;
use streamlog::group::assignor::protocol::{Assignment, Subscription};
use streamlog::group::coordinator::*;
use streamlog::{GroupError, MemberSubscription, assignor_by_name};

const G: &str = "g";
const SESSION: i32 = 300;
const REBALANCE: i32 = 400;

#[derive(Debug, Clone)]
enum Step {
    Join(usize),
    Leave(usize),
    Crash(usize),
    Commit(usize),
    Heartbeats,
    Advance(i64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..6usize).prop_map(Step::Join),
        1 => (0..6usize).prop_map(Step::Leave),
        1 => (0..6usize).prop_map(Step::Crash),
        1 => (0..6usize).prop_map(Step::Commit),
        4 => Just(Step::Heartbeats),
        3 => (1..250i64).prop_map(Step::Advance),
    ]
}

#[derive(Debug, Default, Clone)]
struct Client {
    member_id: String,
    generation: i32,
    alive: bool,
    in_group: bool,
    owned: Vec<(String, u32)>,
}

struct Sim {
    c: GroupCoordinator,
    now: i64,
    clients: Vec<Client>,
    /// Which client a reply token belongs to.
    tokens: BTreeMap<u64, usize>,
    next_token: u64,
    protocol: String,
    topics: BTreeMap<String, u32>,
    /// Per generation: partition → member, from the assignments handed out.
    owners: BTreeMap<i32, BTreeMap<(String, u32), String>>,
    last_generation: i32,
    log_end: u64,
}

impl Sim {
    fn token(&mut self, client: usize) -> ReplyTo {
        self.next_token += 1;
        self.tokens.insert(self.next_token, client);
        ReplyTo(self.next_token)
    }

    fn join(&mut self, i: usize) {
        let client = &self.clients[i];
        let subscription = Subscription {
            topics: self.topics.keys().cloned().collect(),
            owned_partitions: client.owned.clone(),
            generation: Some(client.generation).filter(|g| *g > 0),
            user_data: None,
        };
        let req = JoinGroupRequest::new(
            G,
            format!("c{i}"),
            "consumer",
            vec![GroupProtocol::new(
                self.protocol.clone(),
                subscription.encode(),
            )],
        )
        .member_id(client.member_id.clone())
        .timeouts(SESSION, REBALANCE);
        let to = self.token(i);
        let out = self.c.join_group(self.now, to, req);
        self.pump(out);
    }

    fn pump(&mut self, out: Vec<Output>) {
        let mut queue: VecDeque<Output> = out.into();
        while let Some(o) = queue.pop_front() {
            let more = match o {
                Output::Persist(p) => {
                    self.log_end += 1;
                    self.c.append_completed(self.now, p.id, Ok(self.log_end))
                }
                Output::Reply { to, response } => {
                    let Some(&i) = self.tokens.get(&to.0) else {
                        continue;
                    };
                    if !self.clients[i].alive {
                        continue;
                    }
                    self.on_reply(i, response)
                }
            };
            queue.extend(more);
        }
    }

    fn on_reply(&mut self, i: usize, response: Response) -> Vec<Output> {
        match response {
            Response::Join(r) => match r.error {
                Some(GroupError::MemberIdRequired) => {
                    self.clients[i].member_id = r.member_id;
                    self.rejoin_later(i)
                }
                Some(GroupError::UnknownMemberId) => {
                    self.clients[i].member_id.clear();
                    self.clients[i].in_group = false;
                    Vec::new()
                }
                Some(_) => {
                    self.clients[i].in_group = false;
                    Vec::new()
                }
                None => {
                    self.clients[i].generation = r.generation;
                    self.clients[i].in_group = true;
                    let mut assignments = BTreeMap::new();
                    if r.is_leader() {
                        let members: Vec<MemberSubscription> = r
                            .members
                            .iter()
                            .map(|m| {
                                Subscription::decode(&m.metadata)
                                    .unwrap()
                                    .into_member(m.member_id.clone())
                            })
                            .collect();
                        let name = r.protocol_name.clone().unwrap();
                        let assignor = assignor_by_name(&name).unwrap();
                        for (member, partitions) in assignor.assign(&members, &self.topics) {
                            assignments.insert(
                                member,
                                Assignment {
                                    partitions,
                                    user_data: None,
                                }
                                .encode(),
                            );
                        }
                    }
                    let req = SyncGroupRequest {
                        group_id: G.into(),
                        member_id: r.member_id,
                        generation: r.generation,
                        assignments,
                        ..Default::default()
                    };
                    let to = self.token(i);
                    self.c.sync_group(self.now, to, req)
                }
            },
            Response::Sync(r) => {
                if r.error.is_none() {
                    let a = Assignment::decode(&r.assignment).unwrap();
                    let client = &mut self.clients[i];
                    let owners = self.owners.entry(client.generation).or_default();
                    for tp in &a.partitions {
                        let previous = owners.insert(tp.clone(), client.member_id.clone());
                        assert!(
                            previous.is_none_or(|p| p == client.member_id),
                            "{tp:?} has two owners in generation {}",
                            client.generation
                        );
                    }
                    client.owned = a.partitions;
                }
                Vec::new()
            }
            Response::Heartbeat(Err(
                GroupError::RebalanceInProgress | GroupError::IllegalGeneration,
            )) => self.rejoin_later(i),
            Response::Heartbeat(Err(_)) => {
                self.clients[i].member_id.clear();
                self.clients[i].in_group = false;
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn rejoin_later(&mut self, i: usize) -> Vec<Output> {
        // Rejoin right away (through the pump, so nesting stays flat).
        let client = &self.clients[i];
        let subscription = Subscription {
            topics: self.topics.keys().cloned().collect(),
            owned_partitions: client.owned.clone(),
            generation: Some(client.generation).filter(|g| *g > 0),
            user_data: None,
        };
        let req = JoinGroupRequest::new(
            G,
            format!("c{i}"),
            "consumer",
            vec![GroupProtocol::new(
                self.protocol.clone(),
                subscription.encode(),
            )],
        )
        .member_id(client.member_id.clone())
        .timeouts(SESSION, REBALANCE);
        let to = self.token(i);
        self.c.join_group(self.now, to, req)
    }

    fn apply(&mut self, step: &Step) {
        match *step {
            Step::Join(i) => {
                if !self.clients[i].alive {
                    self.clients[i] = Client {
                        alive: true,
                        ..Client::default()
                    };
                }
                self.join(i);
            }
            Step::Leave(i) if self.clients[i].alive && !self.clients[i].member_id.is_empty() => {
                let req = LeaveGroupRequest {
                    group_id: G.into(),
                    member_ids: vec![self.clients[i].member_id.clone()],
                };
                self.clients[i] = Client::default();
                let to = self.token(i);
                let out = self.c.leave_group(self.now, to, req);
                self.pump(out);
            }
            Step::Crash(i) => self.clients[i].alive = false,
            Step::Commit(i) if self.clients[i].alive && self.clients[i].in_group => {
                let client = &self.clients[i];
                let req = OffsetCommitRequest {
                    group_id: G.into(),
                    member_id: client.member_id.clone(),
                    generation: client.generation,
                    retention_ms: None,
                    offsets: client
                        .owned
                        .iter()
                        .map(|tp| {
                            (
                                tp.clone(),
                                OffsetCommit {
                                    offset: 1,
                                    leader_epoch: None,
                                    metadata: String::new(),
                                },
                            )
                        })
                        .collect(),
                };
                let to = self.token(i);
                let out = self.c.commit_offsets(self.now, to, req);
                self.pump(out);
            }
            Step::Heartbeats => {
                for i in 0..self.clients.len() {
                    let client = &self.clients[i];
                    if client.alive && client.in_group {
                        let req = HeartbeatRequest {
                            group_id: G.into(),
                            member_id: client.member_id.clone(),
                            generation: client.generation,
                        };
                        let to = self.token(i);
                        let out = self.c.heartbeat(self.now, to, req);
                        self.pump(out);
                    }
                }
            }
            Step::Advance(ms) => {
                self.now += ms;
                let out = self.c.tick(self.now);
                self.pump(out);
            }
            _ => {}
        }
    }

    fn check(&mut self) {
        let Some(d) = self.c.describe_group(G) else {
            return;
        };
        assert!(d.generation >= self.last_generation, "generation went down");
        self.last_generation = d.generation;
        if d.state != GroupState::Stable || d.members.is_empty() {
            return;
        }
        let mut owned: BTreeMap<(String, u32), usize> = BTreeMap::new();
        let mut busy = 0;
        for (_, bytes) in &d.members {
            let a = Assignment::decode(bytes).unwrap();
            busy += usize::from(!a.partitions.is_empty());
            for tp in a.partitions {
                *owned.entry(tp).or_default() += 1;
            }
        }
        assert!(
            owned.values().all(|n| *n == 1),
            "a partition owned twice: {owned:?}"
        );
        let total: u32 = self.topics.values().sum();
        assert!(busy <= total as usize);
        if self.protocol != "cooperative-sticky" {
            assert_eq!(
                owned.len(),
                total as usize,
                "Stable with unowned partitions"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn group_invariants_hold_under_random_membership(
        protocol in prop::sample::select(vec!["range", "roundrobin", "sticky", "cooperative-sticky"]),
        steps in prop::collection::vec(step(), 1..120),
    ) {
        let config = CoordinatorConfig {
            min_session_timeout_ms: 10,
            initial_rebalance_delay_ms: 30,
            ..CoordinatorConfig::default()
        };
        let mut sim = Sim {
            c: GroupCoordinator::new(config).unwrap(),
            now: 0,
            clients: vec![Client::default(); 6],
            tokens: BTreeMap::new(),
            next_token: 0,
            protocol: protocol.to_string(),
            topics: BTreeMap::from([("a".to_string(), 3), ("b".to_string(), 2)]),
            owners: BTreeMap::new(),
            last_generation: 0,
            log_end: 0,
        };
        for step in &steps {
            sim.apply(step);
            sim.check();
        }
    }
}
