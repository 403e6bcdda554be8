//! Consumer groups in the simulation.
//!
//! `__consumer_offsets` is a replicated topic of the simulated cluster (3 partitions,
//! replication factor 3, `min.insync.replicas` 2, as `cluster/groups.rs` creates it). For
//! every live broker the harness hosts a sans-IO [`GroupCoordinator`] (a "host"), which
//! serves the groups of the `__consumer_offsets` partitions that broker leads: when the
//! broker comes to lead one and its high watermark has reached its log end, the host loads
//! that partition's groups from the broker's replica with the real load code
//! ([`OffsetsStore::load_partition`], [`GroupCoordinator::load_partition`]); when it stops
//! leading it (or leads it in another epoch), the host fails its appends in flight and
//! unloads it. The host dies with its broker; each host is a coordinator instance of its
//! own ([`CoordinatorConfig::instance`]), as a `Cluster` makes each group service. A `Persist` output becomes an `acks=all`
//! produce of [`OffsetsStore::persist_records`] through [`Node::submit_produce`]; its
//! answer, polled later with [`Node::take_answer`], goes to `append_completed`. Nothing
//! blocks: the single thread steps the followers that replicate the append.
//!
//! Members (client state machines of Kafka's eager consumer, one process each, all with
//! Kafka's default `client.id` of their group, so member ids differ only by the
//! coordinator's suffix) find the coordinator as the
//! leader the consensus store names for their group's partition, and talk to its host over
//! a reliable connection (a request to a host that died or moved fails, as a reset
//! connection does): JoinGroup (with the KIP-394 member-id round trip), SyncGroup (the
//! leader computes the assignment with the `range` or `roundrobin` assignor), Heartbeat,
//! OffsetCommit of the positions they consumed from the leaders of the topic's partitions,
//! LeaveGroup. They crash (stop heartbeating; come back as new members), and rejoin after
//! `NotCoordinator`, `UnknownMemberId`, `IllegalGeneration` or a rebalance.

use std::collections::{BTreeMap, BTreeSet};

use streamlog::group::assignor::protocol::{Assignment, Subscription};
use streamlog::group::assignor::{MemberSubscription, TopicPartition, assignor_by_name};
use streamlog::group::coordinator::{
    AppendError, CoordinatorConfig, GroupProtocol, HeartbeatRequest, JoinGroupRequest,
    LeaveGroupRequest, OffsetCommit, OffsetCommitRequest, Output, PersistId, ReplyTo, Response,
    SyncGroupRequest,
};
use streamlog::group::offsets::{CONSUMER_OFFSETS_TOPIC, OffsetsConfig, partition_for_group};
use streamlog::{GroupCoordinator, GroupError, OffsetsStore};

use super::*;

/// Partitions of `__consumer_offsets`.
pub(super) const OFFSETS_PARTITIONS: u32 = 3;
const SESSION_MS: i32 = 250;
const REBALANCE_MS: i32 = 300;
const HEARTBEAT_MS: i64 = 50;
/// Steps after the cluster settled within which every group must settle too.
const GROUPS_SETTLE_STEPS: u32 = 300;
/// How long a member waits for an answer before it gives the coordinator up.
const REQUEST_TIMEOUT_MS: i64 = 2_000;

pub(super) fn offsets_config() -> OffsetsConfig {
    OffsetsConfig::default().num_partitions(OFFSETS_PARTITIONS)
}

/// `__consumer_offsets` as `cluster/groups.rs` creates it on three brokers (with the
/// simulation's small segments).
pub(super) fn offsets_topic() -> TopicConfig {
    small_log(
        offsets_config()
            .topic_config()
            .replication_factor(3)
            .min_insync_replicas(2),
    )
}

fn offsets_key(partition: u32) -> PartitionKey {
    PartitionKey::new(CONSUMER_OFFSETS_TOPIC, partition)
}

/// A broker's group coordinator.
struct Host {
    /// The broker generation it belongs to.
    incarnation: u64,
    coordinator: GroupCoordinator,
    /// Loaded `__consumer_offsets` partitions and the leader epoch each was loaded in.
    loaded: BTreeMap<u32, i32>,
    /// Appends in flight: the produce, the persist and how many records it holds.
    inflight: Vec<Inflight>,
}

struct Inflight {
    partition: u32,
    token: ProduceToken,
    id: PersistId,
    records: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Must (re)join.
    Out,
    /// JoinGroup or SyncGroup sent.
    Joining,
    /// Holds the assignment of its generation.
    Stable,
}

#[derive(Debug, Clone)]
enum Kind {
    Join,
    Sync,
    Heartbeat,
    /// Per partition: the commit's sequence number and offset.
    Commit(Vec<(TopicPartition, u64, u64)>),
    Leave,
}

#[derive(Debug, Clone)]
struct Waiting {
    broker: usize,
    incarnation: u64,
    token: u64,
    kind: Kind,
    deadline_ms: i64,
}

#[derive(Debug)]
struct Member {
    group: String,
    /// Kafka's default `client.id` (`consumer-<group>-<n>`, `n` counting per process):
    /// the same for every member, each in its own process.
    client_id: String,
    /// The member's name in the trace.
    name: String,
    /// Bumped at every restart: `name#incarnation` is one consumer process.
    incarnation: u32,
    assignor: &'static str,
    member_id: String,
    generation: i32,
    phase: Phase,
    assigned: Vec<TopicPartition>,
    positions: BTreeMap<TopicPartition, u64>,
    waiting: Option<Waiting>,
    last_heartbeat_ms: i64,
    crashed: bool,
}

#[derive(Default, Debug, Clone)]
pub(super) struct GroupStats {
    pub generations: u64,
    pub assignments: u64,
    pub commits_acked: u64,
    pub loads: u64,
    pub unloads: u64,
    pub member_crashes: u64,
    pub leaves: u64,
}

impl GroupStats {
    pub(super) fn add(&mut self, o: &GroupStats) {
        self.generations += o.generations;
        self.assignments += o.assignments;
        self.commits_acked += o.commits_acked;
        self.loads += o.loads;
        self.unloads += o.unloads;
        self.member_crashes += o.member_crashes;
        self.leaves += o.leaves;
    }
}

pub(super) struct Groups {
    rng: fastrand::Rng,
    hosts: Vec<Option<Host>>,
    members: Vec<Member>,
    next_token: u64,
    mailbox: BTreeMap<u64, Response>,
    /// Invariant 6: (group, generation) → partition → the consumer process (`name#incarnation`)
    /// and member id SyncGroup gave it to.
    owners: BTreeMap<(String, i32), BTreeMap<TopicPartition, (String, String)>>,
    /// Invariant 7: (group, partition) → the acknowledged commit with the highest
    /// sequence number: (sequence, offset).
    acked: BTreeMap<(String, TopicPartition), (u64, u64)>,
    next_seq: u64,
    pub(super) stats: GroupStats,
}

impl Groups {
    pub(super) fn new(seed: u64) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed ^ 0x6_7209);
        let mut members = Vec::new();
        let groups = 1 + rng.usize(0..2);
        for g in 0..groups {
            let assignor = if rng.bool() { "range" } else { "roundrobin" };
            for m in 0..3 + rng.usize(0..2) {
                members.push(Member {
                    group: format!("group-{g}"),
                    client_id: format!("consumer-group-{g}-1"),
                    name: format!("g{g}m{m}"),
                    incarnation: 0,
                    assignor,
                    member_id: String::new(),
                    generation: -1,
                    phase: Phase::Out,
                    assigned: Vec::new(),
                    positions: BTreeMap::new(),
                    waiting: None,
                    last_heartbeat_ms: 0,
                    crashed: false,
                });
            }
        }
        Self {
            rng,
            hosts: (0..BROKERS).map(|_| None).collect(),
            members,
            next_token: 0,
            mailbox: BTreeMap::new(),
            owners: BTreeMap::new(),
            acked: BTreeMap::new(),
            next_seq: 0,
            stats: GroupStats::default(),
        }
    }
}

impl Sim {
    /// Broker `b`'s coordinator settings: an instance of its own per broker and
    /// restart, as a `Cluster` gives each group service it creates.
    fn coordinator_config(&self, b: usize) -> CoordinatorConfig {
        let instance = ((b as u64) << 32) | self.brokers[b].generation;
        CoordinatorConfig {
            min_session_timeout_ms: 100,
            initial_rebalance_delay_ms: 30,
            new_member_join_timeout_ms: 1_000,
            offsets_topic_partitions: OFFSETS_PARTITIONS,
            member_id_seed: self.seed,
            ..CoordinatorConfig::default()
        }
        .instance(instance)
    }

    /// Brings every host in line with its broker: created for a (re)started broker,
    /// dropped with a stopped one; partitions loaded and unloaded as leadership moves;
    /// timers fired; appends whose produce was answered completed.
    pub(super) fn drive_groups(&mut self) {
        if self.groups.is_none() {
            return;
        }
        let now = self.clock.now_ms();
        for b in 0..BROKERS as usize {
            let incarnation = self.brokers[b].generation;
            let groups = self.groups.as_mut().unwrap();
            if self.brokers[b].node.is_none() {
                groups.hosts[b] = None;
                continue;
            }
            if groups.hosts[b]
                .as_ref()
                .is_none_or(|h| h.incarnation != incarnation)
            {
                let mut coordinator = GroupCoordinator::new(self.coordinator_config(b)).unwrap();
                coordinator.set_owned_partitions([]);
                self.groups.as_mut().unwrap().hosts[b] = Some(Host {
                    incarnation,
                    coordinator,
                    loaded: BTreeMap::new(),
                    inflight: Vec::new(),
                });
            }
            self.sync_ownership(b, now);
            self.complete_appends(b, now);
            let out = self.host_mut(b).coordinator.tick(now);
            self.route(b, now, out);
        }
    }

    fn host_mut(&mut self, b: usize) -> &mut Host {
        self.groups.as_mut().unwrap().hosts[b].as_mut().unwrap()
    }

    fn sync_ownership(&mut self, b: usize, now: i64) {
        for p in 0..OFFSETS_PARTITIONS {
            let key = offsets_key(p);
            let node = self.brokers[b].node.as_ref().unwrap();
            let epoch = node.leader_epoch(&key);
            let log = node.log(&key);
            let loaded = self.host_mut(b).loaded.get(&p).copied();
            if loaded.is_some() && loaded != epoch {
                // Leadership moved: what waits for an append of this partition fails
                // (the append may still be in the log: not acknowledged is not lost).
                let host = self.host_mut(b);
                host.loaded.remove(&p);
                let (gone, kept): (Vec<Inflight>, Vec<Inflight>) =
                    std::mem::take(&mut host.inflight)
                        .into_iter()
                        .partition(|i| i.partition == p);
                host.inflight = kept;
                for i in gone {
                    let out = self.host_mut(b).coordinator.append_completed(
                        now,
                        i.id,
                        Err(AppendError::NotLeaderOrFollower),
                    );
                    self.route(b, now, out);
                }
                let out = self.host_mut(b).coordinator.unload_partition(p);
                self.route(b, now, out);
                self.groups.as_mut().unwrap().stats.unloads += 1;
                self.note(format!(
                    "broker {b} unloads offsets partition {p} (epoch {loaded:?} -> {epoch:?})"
                ));
            }
            let (Some(epoch), Some(log)) = (epoch, log) else {
                continue;
            };
            if self.host_mut(b).loaded.contains_key(&p)
                || log.high_watermark() < log.log_end_offset()
            {
                continue;
            }
            let store = OffsetsStore::read_only(
                OFFSETS_PARTITIONS,
                offsets_config(),
                BTreeMap::from([(p, log.clone())]),
            );
            match store.load_partition(p) {
                Ok(report) => {
                    let host = self.host_mut(b);
                    let groups = host.coordinator.load_partition(now, &store, p);
                    host.loaded.insert(p, epoch);
                    self.groups.as_mut().unwrap().stats.loads += 1;
                    self.note(format!(
                        "broker {b} loads offsets partition {p} in epoch {epoch}: {groups} groups, {} records up to {}",
                        report.records,
                        log.high_watermark()
                    ));
                }
                Err(e) => self.note(format!("broker {b} cannot load offsets partition {p}: {e}")),
            }
        }
    }

    fn complete_appends(&mut self, b: usize, now: i64) {
        let mut i = 0;
        while i < self.host_mut(b).inflight.len() {
            let token = self.host_mut(b).inflight[i].token;
            let answer = self.brokers[b].node.as_ref().unwrap().take_answer(token);
            let Some(response) = answer else {
                i += 1;
                continue;
            };
            let done = self.host_mut(b).inflight.swap_remove(i);
            self.append_answered(b, now, done.id, done.records, &response);
        }
    }

    fn append_answered(
        &mut self,
        b: usize,
        now: i64,
        id: PersistId,
        records: u64,
        response: &ProduceResponse,
    ) {
        let result = match (response.error, response.base_offset) {
            (None, Some(base)) => Ok(base + records - 1),
            (Some(e), _) => Err(AppendError::from_replica_error(e)),
            (None, None) => Err(AppendError::Other),
        };
        let out = self
            .host_mut(b)
            .coordinator
            .append_completed(now, id, result);
        self.route(b, now, out);
    }

    /// Delivers replies to the mailbox and turns appends into `acks=all` produces.
    fn route(&mut self, b: usize, now: i64, out: Vec<Output>) {
        let mut queue = out;
        while !queue.is_empty() {
            let mut next = Vec::new();
            for output in queue {
                match output {
                    Output::Reply { to, response } => {
                        self.groups.as_mut().unwrap().mailbox.insert(to.0, response);
                    }
                    Output::Persist(request) => {
                        let records = OffsetsStore::persist_records(&request)
                            .expect("the coordinator's records encode");
                        let key = offsets_key(request.offsets_partition);
                        let node = self.brokers[b].node.as_ref().unwrap();
                        if records.is_empty() {
                            let end = node.log(&key).map_or(0, |l| l.log_end_offset());
                            next.extend(self.host_mut(b).coordinator.append_completed(
                                now,
                                request.id,
                                Ok(end),
                            ));
                            continue;
                        }
                        let mut buf = Vec::new();
                        streamlog::record::encode_batch(&records, Compression::None, now, &mut buf)
                            .unwrap();
                        let produce = ProduceRequest {
                            acks: Acks::All,
                            timeout_ms: 1_000,
                            partition: key,
                            records: Bytes::from(buf),
                        };
                        let count = records.len() as u64;
                        match node.submit_produce(&produce) {
                            Ok(Submitted::Waiting(token)) => {
                                self.host_mut(b).inflight.push(Inflight {
                                    partition: request.offsets_partition,
                                    token,
                                    id: request.id,
                                    records: count,
                                })
                            }
                            Ok(Submitted::Done(response)) => {
                                let result = match (response.error, response.base_offset) {
                                    (None, Some(base)) => Ok(base + count - 1),
                                    (Some(e), _) => Err(AppendError::from_replica_error(e)),
                                    (None, None) => Err(AppendError::Other),
                                };
                                next.extend(
                                    self.host_mut(b)
                                        .coordinator
                                        .append_completed(now, request.id, result),
                                );
                            }
                            Ok(Submitted::NoAnswer) | Err(_) => {
                                next.extend(self.host_mut(b).coordinator.append_completed(
                                    now,
                                    request.id,
                                    Err(AppendError::Other),
                                ));
                            }
                        }
                    }
                }
            }
            queue = next;
        }
    }

    /// The broker the consensus store names as `group`'s coordinator, if it runs.
    fn find_coordinator(&self, group: &str) -> Option<usize> {
        let p = partition_for_group(group, OFFSETS_PARTITIONS);
        let leader = self
            .consensus
            .partition_state(CONSUMER_OFFSETS_TOPIC, p)
            .ok()??
            .value
            .leader? as usize;
        self.live(leader).then_some(leader)
    }

    /// Sends member `m`'s request to its coordinator's host; `false` when there is none.
    fn send(
        &mut self,
        m: usize,
        kind: Kind,
        f: impl FnOnce(&mut GroupCoordinator, i64, ReplyTo) -> Vec<Output>,
    ) -> bool {
        let group = self.groups.as_ref().unwrap().members[m].group.clone();
        let Some(b) = self.find_coordinator(&group) else {
            return false;
        };
        let now = self.clock.now_ms();
        let groups = self.groups.as_mut().unwrap();
        let Some(host) = groups.hosts[b].as_mut() else {
            return false;
        };
        groups.next_token += 1;
        let token = groups.next_token;
        let incarnation = host.incarnation;
        let out = f(&mut host.coordinator, now, ReplyTo(token));
        groups.members[m].waiting = Some(Waiting {
            broker: b,
            incarnation,
            token,
            kind,
            deadline_ms: now + REQUEST_TIMEOUT_MS,
        });
        self.route(b, now, out);
        true
    }

    /// One group action, drawn from the groups' own random stream.
    pub(super) fn group_act(&mut self) {
        if self.groups.is_none() {
            return;
        }
        self.drive_groups();
        let groups = self.groups.as_mut().unwrap();
        let m = groups.rng.usize(0..groups.members.len());
        let roll = groups.rng.u32(0..100);
        match roll {
            0..=79 => self.poll_member(m),
            80 => {
                let member = &mut self.groups.as_mut().unwrap().members[m];
                if !member.crashed {
                    member.crashed = true;
                    member.waiting = None;
                    let what = format!("member {} ({}) crashes", member.name, member.member_id);
                    self.groups.as_mut().unwrap().stats.member_crashes += 1;
                    self.note(what);
                }
            }
            81..=83 => {
                let member = &mut self.groups.as_mut().unwrap().members[m];
                if member.crashed {
                    // A restarted consumer process: a new member.
                    member.crashed = false;
                    member.incarnation += 1;
                    member.member_id.clear();
                    member.generation = -1;
                    member.phase = Phase::Out;
                    member.assigned.clear();
                    member.positions.clear();
                    let what = format!("member {} restarts", member.name);
                    self.note(what);
                }
            }
            84 => {
                let member = &self.groups.as_ref().unwrap().members[m];
                if !member.crashed && member.waiting.is_none() && !member.member_id.is_empty() {
                    let req = LeaveGroupRequest {
                        group_id: member.group.clone(),
                        member_ids: vec![member.member_id.clone()],
                    };
                    let what = format!("member {} ({}) leaves", member.name, member.member_id);
                    if self.send(m, Kind::Leave, |c, now, to| c.leave_group(now, to, req)) {
                        self.groups.as_mut().unwrap().stats.leaves += 1;
                        self.note(what);
                    }
                }
            }
            _ => {}
        }
        self.drive_groups();
    }

    /// Every live member polls (settling).
    pub(super) fn poll_all_members(&mut self) {
        if self.groups.is_none() {
            return;
        }
        for m in 0..self.groups.as_ref().unwrap().members.len() {
            self.poll_member(m);
        }
        self.drive_groups();
    }

    /// Member `m`'s poll loop: take an answer, give up on a dead connection, or send the
    /// next request.
    fn poll_member(&mut self, m: usize) {
        let now = self.clock.now_ms();
        let groups = self.groups.as_mut().unwrap();
        if groups.members[m].crashed {
            return;
        }
        if let Some(w) = groups.members[m].waiting.clone() {
            if let Some(response) = groups.mailbox.remove(&w.token) {
                groups.members[m].waiting = None;
                self.answered_member(m, w, response);
                return;
            }
            let alive = groups.hosts[w.broker]
                .as_ref()
                .is_some_and(|h| h.incarnation == w.incarnation);
            if alive && now < w.deadline_ms {
                return;
            }
            // The connection broke (the broker died) or the answer is overdue.
            groups.members[m].waiting = None;
            if !matches!(w.kind, Kind::Heartbeat | Kind::Commit(_)) {
                groups.members[m].phase = Phase::Out;
            }
            return;
        }
        let member = &groups.members[m];
        match member.phase {
            Phase::Out => self.join(m),
            Phase::Joining => {}
            Phase::Stable => {
                if now - member.last_heartbeat_ms >= HEARTBEAT_MS {
                    let req = HeartbeatRequest {
                        group_id: member.group.clone(),
                        member_id: member.member_id.clone(),
                        generation: member.generation,
                    };
                    if self.send(m, Kind::Heartbeat, |c, now, to| c.heartbeat(now, to, req)) {
                        self.groups.as_mut().unwrap().members[m].last_heartbeat_ms = now;
                    }
                } else {
                    self.consume_and_commit(m);
                }
            }
        }
    }

    fn join(&mut self, m: usize) {
        let member = &mut self.groups.as_mut().unwrap().members[m];
        // Eager protocol: everything is revoked before rejoining.
        member.assigned.clear();
        member.positions.clear();
        let subscription = Subscription {
            topics: vec![TOPIC.to_string()],
            ..Default::default()
        };
        let protocols = vec![GroupProtocol::new(member.assignor, subscription.encode())];
        let req = JoinGroupRequest::new(
            member.group.clone(),
            member.client_id.clone(),
            "consumer",
            protocols,
        )
        .member_id(member.member_id.clone())
        .timeouts(SESSION_MS, REBALANCE_MS);
        if self.send(m, Kind::Join, |c, now, to| c.join_group(now, to, req)) {
            self.groups.as_mut().unwrap().members[m].phase = Phase::Joining;
        }
    }

    fn answered_member(&mut self, m: usize, w: Waiting, response: Response) {
        let now = self.clock.now_ms();
        match (w.kind, response) {
            (Kind::Join, Response::Join(resp)) => match resp.error {
                None => {
                    let is_leader = resp.is_leader();
                    let what = format!(
                        "{} ({}) joined generation {}{}",
                        self.groups.as_ref().unwrap().members[m].name,
                        resp.member_id,
                        resp.generation,
                        if is_leader { " as leader" } else { "" }
                    );
                    self.note(what);
                    let member = &mut self.groups.as_mut().unwrap().members[m];
                    member.member_id = resp.member_id.clone();
                    member.generation = resp.generation;
                    let mut assignments = BTreeMap::new();
                    if is_leader {
                        let name = resp.protocol_name.clone().unwrap_or_default();
                        let assignor = assignor_by_name(&name).expect("a known assignor");
                        let subscriptions: Vec<MemberSubscription> = resp
                            .members
                            .iter()
                            .map(|j| {
                                Subscription::decode(&j.metadata)
                                    .expect("a subscription")
                                    .into_member(j.member_id.clone())
                            })
                            .collect();
                        let partitions =
                            BTreeMap::from([(TOPIC.to_string(), self.keys().len() as u32)]);
                        for (id, tps) in assignor.assign(&subscriptions, &partitions) {
                            let bytes = Assignment {
                                partitions: tps,
                                user_data: None,
                            }
                            .encode();
                            assignments.insert(id, bytes);
                        }
                        self.groups.as_mut().unwrap().stats.generations += 1;
                    }
                    let member = &self.groups.as_ref().unwrap().members[m];
                    let req = SyncGroupRequest {
                        group_id: member.group.clone(),
                        member_id: member.member_id.clone(),
                        generation: member.generation,
                        protocol_type: Some("consumer".into()),
                        protocol_name: resp.protocol_name.clone(),
                        assignments,
                    };
                    if !self.send(m, Kind::Sync, |c, now, to| c.sync_group(now, to, req)) {
                        self.groups.as_mut().unwrap().members[m].phase = Phase::Out;
                    }
                }
                Some(error) => self.member_error(m, error, &resp.member_id),
            },
            (Kind::Sync, Response::Sync(resp)) => match resp.error {
                None => {
                    let assignment = Assignment::decode(&resp.assignment).expect("an assignment");
                    self.assigned(m, w.broker, assignment.partitions);
                }
                Some(error) => self.member_error(m, error, ""),
            },
            (Kind::Heartbeat, Response::Heartbeat(result)) => match result {
                Ok(()) => self.groups.as_mut().unwrap().members[m].last_heartbeat_ms = now,
                Err(GroupError::NotCoordinator | GroupError::CoordinatorNotAvailable) => {
                    // Find the coordinator again and go on there.
                }
                Err(error) => self.member_error(m, error, ""),
            },
            (Kind::Commit(sent), Response::Commit(resp)) => {
                for (tp, result) in resp.partitions {
                    let Some((_, seq, offset)) = sent.iter().find(|(t, _, _)| *t == tp) else {
                        self.fail(format!("a commit answered for {tp:?}, not committed"));
                    };
                    match result {
                        Ok(()) => {
                            let member = &self.groups.as_ref().unwrap().members[m];
                            let what = format!(
                                "{} acked commit #{seq} {}-{} at {offset} (generation {})",
                                member.name, tp.0, tp.1, member.generation
                            );
                            let groups = self.groups.as_mut().unwrap();
                            groups.stats.commits_acked += 1;
                            let key = (groups.members[m].group.clone(), tp.clone());
                            let entry = groups.acked.entry(key).or_insert((*seq, *offset));
                            if *seq >= entry.0 {
                                *entry = (*seq, *offset);
                            }
                            self.note(what);
                        }
                        Err(
                            error @ (GroupError::UnknownMemberId
                            | GroupError::IllegalGeneration
                            | GroupError::RebalanceInProgress),
                        ) => {
                            self.member_error(m, error, "");
                            break;
                        }
                        Err(_) => {}
                    }
                }
            }
            (Kind::Leave, Response::Leave(_)) => {
                let member = &mut self.groups.as_mut().unwrap().members[m];
                member.member_id.clear();
                member.generation = -1;
                member.phase = Phase::Out;
                member.assigned.clear();
            }
            (kind, response) => {
                self.fail(format!("member {m}: {kind:?} answered with {response:?}"));
            }
        }
    }

    fn member_error(&mut self, m: usize, error: GroupError, given_id: &str) {
        let member = &self.groups.as_ref().unwrap().members[m];
        let what = format!("{} ({}): {error:?}", member.name, member.member_id);
        self.note(what);
        let member = &mut self.groups.as_mut().unwrap().members[m];
        member.phase = Phase::Out;
        member.assigned.clear();
        match error {
            GroupError::MemberIdRequired => member.member_id = given_id.to_string(),
            GroupError::UnknownMemberId => {
                member.member_id.clear();
                member.generation = -1;
            }
            GroupError::IllegalGeneration => member.generation = -1,
            _ => {}
        }
    }

    /// Member `m` got its assignment from SyncGroup on broker `b`: invariant 6, then it
    /// starts from the committed offsets.
    fn assigned(&mut self, m: usize, b: usize, partitions: Vec<TopicPartition>) {
        let groups = self.groups.as_mut().unwrap();
        groups.stats.assignments += 1;
        let member = &groups.members[m];
        let (group, generation, id) = (
            member.group.clone(),
            member.generation,
            member.member_id.clone(),
        );
        let process = format!("{}#{}", member.name, member.incarnation);
        let owners = groups
            .owners
            .entry((group.clone(), generation))
            .or_default();
        let mut clash = None;
        for tp in &partitions {
            match owners.get(tp) {
                Some(other) if other.0 != process => clash = Some((tp.clone(), other.clone())),
                _ => {
                    owners.insert(tp.clone(), (process.clone(), id.clone()));
                }
            }
        }
        self.note(format!(
            "{process} ({id}) of {group} generation {generation} assigned {partitions:?} by broker {b}"
        ));
        if let Some((tp, other)) = clash {
            self.fail(format!(
                "invariant 6: {}-{} of {group} owned by both {} ({}) and {process} ({id}) in generation {generation}",
                tp.0, tp.1, other.0, other.1
            ));
        }
        let host = self.groups.as_ref().unwrap().hosts[b].as_ref();
        let committed: BTreeMap<TopicPartition, u64> = host
            .and_then(|h| h.coordinator.fetch_offsets(&group, Some(&partitions)).ok())
            .into_iter()
            .flatten()
            .filter_map(|(tp, o)| Some((tp, o?.offset)))
            .collect();
        let member = &mut self.groups.as_mut().unwrap().members[m];
        member.positions = partitions
            .iter()
            .map(|tp| (tp.clone(), committed.get(tp).copied().unwrap_or(0)))
            .collect();
        member.assigned = partitions;
        member.phase = Phase::Stable;
    }

    /// Member `m` reads a few records of one of its partitions from its leader and
    /// commits its new position.
    fn consume_and_commit(&mut self, m: usize) {
        let groups = self.groups.as_mut().unwrap();
        let member = &groups.members[m];
        if member.assigned.is_empty() {
            return;
        }
        let tp = member.assigned[groups.rng.usize(0..member.assigned.len())].clone();
        let mut position = member.positions.get(&tp).copied().unwrap_or(0);
        let key = PartitionKey::new(tp.0.clone(), tp.1);
        let leader = self
            .consensus
            .partition_state(TOPIC, tp.1)
            .ok()
            .flatten()
            .and_then(|s| s.value.leader);
        let Some(log) = leader
            .and_then(|l| self.brokers[l as usize].node.as_ref())
            .filter(|n| n.leads(&key))
            .and_then(|n| n.log(&key))
        else {
            return;
        };
        position = position.max(log.log_start_offset());
        if let Ok(records) = log.read_from(position) {
            for r in records.flatten().take(5) {
                position = r.offset() + 1;
            }
        }
        let groups = self.groups.as_mut().unwrap();
        groups.next_seq += 1;
        let seq = groups.next_seq;
        let member = &mut groups.members[m];
        member.positions.insert(tp.clone(), position);
        let req = OffsetCommitRequest {
            group_id: member.group.clone(),
            member_id: member.member_id.clone(),
            generation: member.generation,
            retention_ms: None,
            offsets: vec![(
                tp.clone(),
                OffsetCommit {
                    offset: position,
                    leader_epoch: None,
                    metadata: seq.to_string(),
                },
            )],
        };
        self.send(m, Kind::Commit(vec![(tp, seq, position)]), |c, now, to| {
            c.commit_offsets(now, to, req)
        });
    }

    /// Liveness after settling: within `GROUPS_SETTLE_STEPS` more steps (a preferred
    /// leader may move a coordinator at the very end), each group's coordinator has
    /// loaded it, and it is Stable with exactly the members that did not crash, each
    /// holding the current generation's assignment.
    pub(super) fn settle_groups(&mut self) {
        if self.groups.is_none() {
            return;
        }
        for _ in 0..GROUPS_SETTLE_STEPS {
            if self.groups_converged().is_ok() {
                return;
            }
            self.step += 1;
            self.step_all();
            self.poll_all_members();
            self.checked();
        }
        if let Err(e) = self.groups_converged() {
            self.fail(e);
        }
    }

    fn groups_converged(&self) -> Check {
        let Some(groups) = &self.groups else {
            return Ok(());
        };
        let names: BTreeSet<String> = groups.members.iter().map(|m| m.group.clone()).collect();
        for group in names {
            let Some(b) = self.find_coordinator(&group) else {
                return Err(format!("{group} has no coordinator after settling"));
            };
            let p = partition_for_group(&group, OFFSETS_PARTITIONS);
            let host = groups.hosts[b].as_ref();
            if host.is_none_or(|h| !h.loaded.contains_key(&p)) {
                return Err(format!(
                    "{group}: broker {b} has not loaded offsets partition {p} after settling"
                ));
            }
            let description = host.unwrap().coordinator.describe_group(&group);
            let live: BTreeMap<&str, (Phase, i32)> = groups
                .members
                .iter()
                .filter(|m| m.group == group && !m.crashed)
                .map(|m| (m.member_id.as_str(), (m.phase, m.generation)))
                .collect();
            let converged = match &description {
                // Every member crashed: the group is empty, or was never stored.
                None => live.is_empty(),
                Some(d) if live.is_empty() => d.state == streamlog::GroupState::Empty,
                Some(d) => {
                    d.state == streamlog::GroupState::Stable
                        && d.members.len() == live.len()
                        && d.members.iter().all(|(id, _)| {
                            live.get(id.as_str()) == Some(&(Phase::Stable, d.generation))
                        })
                }
            };
            if !converged {
                return Err(format!(
                    "{group} not converged after settling on broker {b}: {description:?}, live members (id, phase, generation): {live:?}"
                ));
            }
        }
        Ok(())
    }

    /// Invariant 7: the coordinator the store names, once it has loaded the group's
    /// partition, serves every acknowledged commit or a later one.
    pub(super) fn check_groups(&self) -> Check {
        let Some(groups) = &self.groups else {
            return Ok(());
        };
        for ((group, tp), (seq, offset)) in &groups.acked {
            let p = partition_for_group(group, OFFSETS_PARTITIONS);
            let Some(state) = self
                .consensus
                .partition_state(CONSUMER_OFFSETS_TOPIC, p)
                .unwrap()
                .map(|s| s.value)
            else {
                continue;
            };
            let Some(b) = state.leader.map(|l| l as usize) else {
                continue;
            };
            let Some(host) = groups.hosts[b].as_ref() else {
                continue;
            };
            if host.loaded.get(&p) != Some(&state.leader_epoch) {
                continue;
            }
            let served = host
                .coordinator
                .fetch_offsets(group, Some(std::slice::from_ref(tp)))
                .map_err(|e| format!("invariant 7: fetch_offsets of {group} on broker {b}: {e}"))?;
            let value = served.into_iter().next().and_then(|(_, v)| v);
            let served_seq = value.as_ref().and_then(|v| v.metadata.parse::<u64>().ok());
            let ok = match (&value, served_seq) {
                (Some(v), Some(s)) => s > *seq || (s == *seq && v.offset == *offset),
                _ => false,
            };
            if !ok {
                return Err(format!(
                    "invariant 7: {group} {}-{}: commit #{seq} at {offset} was acknowledged, \
                     coordinator broker {b} (epoch {}) serves {value:?}",
                    tp.0, tp.1, state.leader_epoch
                ));
            }
        }
        Ok(())
    }
}
