//! A hand-driven cluster of [`ReplicaManager`]s for one partition: broker `b` hosts its
//! replica on its own log in a temp dir; a "network" queue carries the managers'
//! [`ReplicaOutput::Send`] requests to the leader's manager and the answers back; a shared
//! [`PartitionState`] plays the consensus store (ISR proposals are written into it with
//! compare-and-set on the partition epoch, then applied on every broker); the time is an
//! explicit `now` in milliseconds. Nothing happens unless a test asks for it.
#![allow(dead_code)] // each test uses a different part

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use streamlog::record::{Compression, RecordBatch, encode_batch};
use streamlog::replication::messages::{
    FetchPartition, FetchRequest, FetchedPartition, ProduceRequest, ProduceResponse,
};
use streamlog::replication::{
    Acks, BrokerId, IsrChange, LeaderConfig, PartitionKey, PartitionState, ProduceOutcome,
    ProduceToken, ReplicaConfig, ReplicaManager, ReplicaOutput, ReplicaRequest, ReplicaResponse,
};
use streamlog::{LogConfig, Partition, ReadBound, ReadOptions, Record};

/// A request on the wire.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The follower that sent it.
    pub from: BrokerId,
    /// The leader it goes to.
    pub to: BrokerId,
    /// Its correlation id.
    pub correlation_id: u64,
    /// The request.
    pub request: ReplicaRequest,
}

/// An answer on its way back: deliver it with [`Sim::respond`].
#[derive(Debug, Clone)]
pub struct Reply {
    /// The follower it goes back to.
    pub to: BrokerId,
    /// The leader that answered.
    pub from: BrokerId,
    /// The request's correlation id.
    pub correlation_id: u64,
    /// The answer.
    pub response: ReplicaResponse,
}

/// One stored batch: base offset, leader epoch and its bytes as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBatch {
    /// First offset.
    pub base_offset: u64,
    /// The epoch stamped on it.
    pub epoch: i32,
    /// The whole batch.
    pub bytes: Bytes,
}

/// The simulated cluster of one partition.
pub struct Sim {
    _dir: tempfile::TempDir,
    /// The partition.
    pub key: PartitionKey,
    /// What the consensus store holds.
    pub state: PartitionState,
    /// Broker `b`'s manager at index `b`.
    pub managers: Vec<ReplicaManager>,
    /// Broker `b`'s log.
    pub logs: Vec<Arc<Partition>>,
    /// The time (ms).
    pub now: i64,
    /// Requests sent, not yet delivered.
    pub network: VecDeque<Envelope>,
    /// ISR proposals not yet written: (proposing broker, change).
    pub alters: VecDeque<(BrokerId, IsrChange)>,
    /// Every produce answer that came as a [`ReplicaOutput::ProduceDone`], in order.
    pub done: Vec<(ProduceToken, ProduceResponse)>,
    /// Brokers that are down: they neither tick nor answer, and requests to or from them
    /// are lost.
    pub down: BTreeSet<BrokerId>,
    next_token: u64,
}

/// The settings the tests use: `replica.lag.time.max.ms` 100, request timeout 50 ms,
/// fetch backoff 10 ms.
pub fn config(min_isr: usize) -> ReplicaConfig {
    ReplicaConfig {
        leader: LeaderConfig {
            min_insync_replicas: min_isr,
            replica_lag_time_max_ms: 100,
        },
        request_timeout_ms: 50,
        fetch_backoff_ms: 10,
        ..ReplicaConfig::default()
    }
}

/// One v2 batch holding `values`, as a producer sends it.
pub fn batch(values: &[&str]) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .map(|v| Record::new(v.as_bytes().to_vec()))
        .collect();
    let mut out = Vec::new();
    encode_batch(&records, Compression::None, 1_000, &mut out).expect("encode");
    Bytes::from(out)
}

/// The log config of replicated logs: the replica manager moves the high watermark.
pub fn log_config() -> LogConfig {
    LogConfig::default().auto_high_watermark(false)
}

/// The batches of `log` from its start up to `bound`.
pub fn stored(log: &Partition, bound: ReadBound) -> Vec<StoredBatch> {
    let mut out = Vec::new();
    let start = log.log_start_offset();
    let end = match bound {
        ReadBound::HighWatermark => log.high_watermark(),
        ReadBound::LogEnd => log.log_end_offset(),
    };
    if start >= end {
        return out;
    }
    let mut reader = log
        .read(start, ReadOptions::default().bound(bound))
        .expect("read");
    while let Some(bytes) = reader.next_batch() {
        let bytes = bytes.expect("batch");
        let header = *RecordBatch::parse(&bytes).expect("parse").header();
        out.push(StoredBatch {
            base_offset: header.base_offset as u64,
            epoch: header.partition_leader_epoch,
            bytes,
        });
    }
    out
}

/// The record values of `log` from `from` up to the log end, with their offsets.
pub fn values(log: &Partition, from: u64) -> Vec<(u64, String)> {
    if from >= log.log_end_offset() {
        return Vec::new();
    }
    log.read(from, ReadOptions::default().bound(ReadBound::LogEnd))
        .expect("read")
        .map(|r| {
            let r = r.expect("record");
            (
                r.offset(),
                String::from_utf8_lossy(r.value().unwrap_or_default()).into_owned(),
            )
        })
        .collect()
}

impl Sim {
    /// `n` brokers hosting one partition replicated on all of them, broker 0 leading in
    /// epoch 0 with everyone in the ISR, at time 1000.
    pub fn new(n: u32, config: ReplicaConfig) -> Self {
        Self::with_state(PartitionState::new((0..n).collect()), n, config)
    }

    /// `n` brokers and the store holding `state` (applied on every broker).
    pub fn with_state(state: PartitionState, n: u32, config: ReplicaConfig) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = PartitionKey::new("t", 0);
        let mut managers = Vec::new();
        let mut logs = Vec::new();
        for b in 0..n {
            let log = Arc::new(
                Partition::open(dir.path().join(format!("broker-{b}")), log_config())
                    .expect("open log"),
            );
            let mut m = ReplicaManager::new(b, config);
            m.add_replica(key.clone(), log.clone());
            managers.push(m);
            logs.push(log);
        }
        let mut sim = Self {
            _dir: dir,
            key,
            state,
            managers,
            logs,
            now: 1_000,
            network: VecDeque::new(),
            alters: VecDeque::new(),
            done: Vec::new(),
            down: BTreeSet::new(),
            next_token: 0,
        };
        sim.apply_all();
        sim
    }

    /// The current leader as the store has it.
    pub fn leader(&self) -> BrokerId {
        self.state.leader.expect("a leader")
    }

    /// Broker `b`'s log.
    pub fn log(&self, b: BrokerId) -> &Partition {
        &self.logs[b as usize]
    }

    /// Broker `b`'s high watermark.
    pub fn hw(&self, b: BrokerId) -> u64 {
        self.log(b).high_watermark()
    }

    /// Broker `b`'s log end offset.
    pub fn leo(&self, b: BrokerId) -> u64 {
        self.log(b).log_end_offset()
    }

    /// Takes a broker's outputs: requests go on the network, proposals to the store's
    /// queue, produce answers to `done`.
    pub fn absorb(&mut self, from: BrokerId, outputs: Vec<ReplicaOutput>) {
        for o in outputs {
            match o {
                ReplicaOutput::Send {
                    to,
                    correlation_id,
                    request,
                } => self.network.push_back(Envelope {
                    from,
                    to,
                    correlation_id,
                    request,
                }),
                ReplicaOutput::AlterIsr { partition, change } => {
                    assert_eq!(partition, self.key);
                    self.alters.push_back((from, change));
                }
                ReplicaOutput::ProduceDone { token, response } => {
                    self.done.push((token, response));
                }
            }
        }
    }

    /// Applies the store's state on every broker that is up.
    pub fn apply_all(&mut self) {
        for b in 0..self.managers.len() as BrokerId {
            if !self.down.contains(&b) {
                self.apply_on(b);
            }
        }
    }

    /// Applies the store's state on broker `b`.
    pub fn apply_on(&mut self, b: BrokerId) {
        let out = self.managers[b as usize]
            .apply_state(&self.key, self.state.clone(), self.now)
            .expect("apply state");
        self.absorb(b, out);
    }

    /// Ticks broker `b` at the current time.
    pub fn tick(&mut self, b: BrokerId) {
        let out = self.managers[b as usize].tick(self.now);
        self.absorb(b, out);
    }

    /// Ticks every broker that is up.
    pub fn tick_all(&mut self) {
        for b in 0..self.managers.len() as BrokerId {
            if !self.down.contains(&b) {
                self.tick(b);
            }
        }
    }

    /// Hands the first request on the network to its leader; returns the answer without
    /// delivering it (`None` when either end is down: the request is lost).
    pub fn serve_next(&mut self) -> Option<Reply> {
        let e = self.network.pop_front()?;
        self.serve(e)
    }

    /// Hands `e` to its leader and returns the answer.
    pub fn serve(&mut self, e: Envelope) -> Option<Reply> {
        if self.down.contains(&e.to) || self.down.contains(&e.from) {
            return None;
        }
        let leader = &mut self.managers[e.to as usize];
        let response = match &e.request {
            ReplicaRequest::Fetch(r) => {
                let (response, out) = leader.handle_fetch(r, self.now);
                self.absorb(e.to, out);
                ReplicaResponse::Fetch(response)
            }
            ReplicaRequest::OffsetsForLeaderEpoch(r) => {
                ReplicaResponse::OffsetsForLeaderEpoch(leader.handle_offsets_for_leader_epoch(r))
            }
        };
        Some(Reply {
            to: e.from,
            from: e.to,
            correlation_id: e.correlation_id,
            response,
        })
    }

    /// Delivers an answer to its follower.
    pub fn respond(&mut self, reply: Reply) {
        if self.down.contains(&reply.to) {
            return;
        }
        let out = self.managers[reply.to as usize].handle_response(
            reply.from,
            reply.correlation_id,
            reply.response,
            self.now,
        );
        self.absorb(reply.to, out);
    }

    /// Serves and answers every request on the network (and those they cause).
    pub fn deliver_all(&mut self) {
        while let Some(e) = self.network.pop_front() {
            if let Some(reply) = self.serve(e) {
                self.respond(reply);
            }
        }
    }

    /// Writes the ISR proposals into the store, compare-and-set on the partition epoch:
    /// an accepted one bumps the partition epoch, is reported to its leader and applied on
    /// every broker; a stale one is refused.
    pub fn commit_isr(&mut self) {
        while let Some((from, change)) = self.alters.pop_front() {
            if self.down.contains(&from) {
                continue;
            }
            let accepted = self.state.leader == Some(from)
                && change.partition_epoch == self.state.partition_epoch;
            if !accepted {
                self.managers[from as usize].isr_change_failed(&self.key);
                continue;
            }
            self.state.isr = change.isr.clone();
            self.state.partition_epoch += 1;
            let out = self.managers[from as usize].isr_change_committed(
                &self.key,
                change.isr,
                self.state.partition_epoch,
                self.now,
            );
            self.absorb(from, out);
            self.apply_all();
        }
    }

    /// One round: every broker ticks, every request is served and answered, and ISR
    /// proposals are written.
    pub fn round(&mut self) {
        self.tick_all();
        self.deliver_all();
        self.commit_isr();
    }

    /// `n` rounds, `step_ms` apart.
    pub fn rounds(&mut self, n: usize, step_ms: i64) {
        for _ in 0..n {
            self.now += step_ms;
            self.round();
        }
    }

    /// `b` becomes leader: the store bumps leader and partition epochs (keeping the ISR
    /// but for brokers in `drop_from_isr`) and every broker that is up applies it.
    pub fn elect(&mut self, b: BrokerId, drop_from_isr: &[BrokerId]) {
        self.state.leader = Some(b);
        self.state.leader_epoch += 1;
        self.state.partition_epoch += 1;
        self.state.isr.retain(|x| !drop_from_isr.contains(x));
        if !self.state.isr.contains(&b) {
            self.state.isr.insert(0, b);
        }
        self.apply_all();
    }

    /// A new produce token.
    pub fn token(&mut self) -> ProduceToken {
        self.next_token += 1;
        ProduceToken(self.next_token)
    }

    /// Produces `values` as one batch to broker `b` with `acks` and `timeout_ms`.
    pub fn produce_to(
        &mut self,
        b: BrokerId,
        acks: Acks,
        values: &[&str],
        timeout_ms: u32,
    ) -> (ProduceToken, ProduceOutcome) {
        let token = self.token();
        let request = ProduceRequest {
            acks,
            timeout_ms,
            partition: self.key.clone(),
            records: batch(values),
        };
        let outcome = self.managers[b as usize].handle_produce(&request, token, self.now);
        (token, outcome)
    }

    /// Produces to the leader with a 10 s timeout.
    pub fn produce(&mut self, acks: Acks, values: &[&str]) -> (ProduceToken, ProduceOutcome) {
        let leader = self.leader();
        self.produce_to(leader, acks, values, 10_000)
    }

    /// The answer delivered for `token`, if any; panics if there were several.
    pub fn answer(&self, token: ProduceToken) -> Option<&ProduceResponse> {
        let answers: Vec<_> = self.done.iter().filter(|(t, _)| *t == token).collect();
        assert!(answers.len() <= 1, "{token:?} answered twice: {answers:?}");
        answers.first().map(|(_, r)| r)
    }

    /// A consumer's fetch (no replica id) at `offset` from broker `b`.
    pub fn consume(&mut self, b: BrokerId, offset: u64, epoch: Option<i32>) -> FetchedPartition {
        let request = FetchRequest {
            replica_id: None,
            max_bytes: 1 << 20,
            partitions: vec![FetchPartition {
                partition: self.key.clone(),
                current_leader_epoch: epoch,
                fetch_offset: offset,
                last_fetched_epoch: None,
                log_start_offset: None,
                max_bytes: 1 << 20,
            }],
        };
        let (mut response, out) = self.managers[b as usize].handle_fetch(&request, self.now);
        assert!(out.is_empty(), "a consumer fetch changes nothing: {out:?}");
        response.partitions.remove(0)
    }

    /// Appends `values` to broker `b`'s log directly as if it led in `epoch` (for setting up
    /// diverged logs); returns the offsets written.
    pub fn write_as(&mut self, b: BrokerId, epoch: i32, values: &[&str]) -> std::ops::Range<u64> {
        let log = &self.logs[b as usize];
        if log.latest_epoch() != Some(epoch) {
            log.assign_leader_epoch(epoch).expect("assign epoch");
        }
        log.append_encoded(&batch(values)).expect("append")
    }

    /// Every pair of replicas holds the same batches up to the smaller of their high
    /// watermarks.
    pub fn assert_agree_below_hw(&self) {
        let n = self.logs.len();
        for a in 0..n {
            for b in a + 1..n {
                let (la, lb) = (&self.logs[a], &self.logs[b]);
                let hw = la.high_watermark().min(lb.high_watermark());
                let cut = |log: &Partition| -> Vec<StoredBatch> {
                    stored(log, ReadBound::LogEnd)
                        .into_iter()
                        .filter(|s| s.base_offset < hw)
                        .collect()
                };
                let start = la.log_start_offset().max(lb.log_start_offset());
                let (ca, cb): (Vec<_>, Vec<_>) = (
                    cut(la)
                        .into_iter()
                        .filter(|s| s.base_offset >= start)
                        .collect(),
                    cut(lb)
                        .into_iter()
                        .filter(|s| s.base_offset >= start)
                        .collect(),
                );
                assert_eq!(
                    ca, cb,
                    "brokers {a} and {b} disagree below their high watermark {hw}"
                );
            }
        }
    }

    /// The high watermark of every broker.
    pub fn hws(&self) -> BTreeMap<BrokerId, u64> {
        (0..self.logs.len() as BrokerId)
            .map(|b| (b, self.hw(b)))
            .collect()
    }
}

impl Sim {
    /// `n` brokers with an offline partition (no leader) in leader epoch 0: nothing moves
    /// until the test writes the logs and elects a leader with [`Sim::set_leader`].
    pub fn offline(n: u32, config: ReplicaConfig) -> Self {
        let mut state = PartitionState::new((0..n).collect());
        state.leader = None;
        Self::with_state(state, n, config)
    }

    /// The store names `b` leader of `epoch` with the ISR `isr` (partition epoch bumped);
    /// applied on every broker that is up.
    pub fn set_leader(&mut self, b: BrokerId, epoch: i32, isr: &[BrokerId]) {
        self.state.leader = Some(b);
        self.state.leader_epoch = epoch;
        self.state.partition_epoch += 1;
        self.state.isr = isr.to_vec();
        self.apply_all();
    }

    /// Broker `b`'s follower phase, `None` when it does not follow.
    pub fn phase(&self, b: BrokerId) -> Option<streamlog::replication::FollowerPhase> {
        match self.managers[b as usize]
            .replica(&self.key)
            .expect("hosted")
            .role()
        {
            streamlog::replication::Role::Follower(f) => Some(f.phase),
            _ => None,
        }
    }

    /// The ISR as the leader `b` has it committed.
    pub fn leader_isr(&self, b: BrokerId) -> Vec<BrokerId> {
        match self.managers[b as usize]
            .replica(&self.key)
            .expect("hosted")
            .role()
        {
            streamlog::replication::Role::Leader(l) => l.isr().to_vec(),
            _ => panic!("broker {b} does not lead"),
        }
    }
}
