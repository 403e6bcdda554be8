//! [`Node`]: one broker of a cluster, as a step function. Each [`Node::step`] renews the
//! broker's lease, applies partition states that changed in the consensus store (opening
//! the logs of partitions it hosts), does the controller's work when it holds the seat,
//! answers the requests other brokers sent it (fetch, offsets-for-leader-epoch), hands
//! their answers to its [`ReplicaManager`], and carries out what the manager asks for
//! (requests to leaders, ISR changes by compare-and-set, `acks=all` answers).
//!
//! The cluster runs one thread per node calling `step`; a simulation calls it from one
//! thread in a seeded order with a simulated clock. Follower fetches that find nothing
//! new are held ("parked") for up to `replica.fetch.wait.max.ms` and answered as soon as
//! the leader appends, so `acks=all` waits for replication, not for a timer.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::{Condvar, Mutex, MutexGuard};

use super::config::ClusterConfig;
use crate::error::{Error, Result};
use crate::log::{CLEAN_SHUTDOWN_FILE, Partition};
use crate::replication::consensus::{ConsensusStore, Versioned};
use crate::replication::controller::{self, Election};
use crate::replication::messages::{
    FetchRequest, FetchResponse, MetadataRequest, MetadataResponse, PartitionMetadata,
    ProduceRequest, ProduceResponse, ReplicaError, TopicMetadata,
};
use crate::replication::transport::{
    DirectReceiver, Envelope, Message, Request, Response, Transport,
};
use crate::replication::{
    BrokerId, LeaderConfig, LeaderRecoveryState, PartitionKey, PartitionState, PreparedProduce,
    ProduceOutcome, ProduceToken, ReplicaManager, ReplicaOutput, ReplicaRequest, ReplicaResponse,
};
use crate::storage::Env;
use crate::topic::TopicConfig;

/// A leader election the controller carried out (for tests and the simulation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionRecord {
    /// The partition.
    pub partition: PartitionKey,
    /// How the leader was chosen.
    pub election: Election,
    /// The state written.
    pub state: PartitionState,
}

/// What a produce submitted to a node came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// Answered at once.
    Done(ProduceResponse),
    /// `acks=0`: no answer.
    NoAnswer,
    /// `acks=all`: the answer comes later under this token ([`Node::take_answer`]).
    Waiting(ProduceToken),
}

#[derive(Debug)]
struct ParkedFetch {
    from: BrokerId,
    correlation_id: u64,
    request: FetchRequest,
    deadline_ms: i64,
}

#[derive(Debug)]
struct State {
    manager: ReplicaManager,
    logs: BTreeMap<PartitionKey, Arc<Partition>>,
    topics: BTreeMap<String, TopicConfig>,
    seen_revision: Option<u64>,
    registered: bool,
    /// A new process of this broker that has not yet stepped down from what its last run
    /// held (it does so as it registers, or at the next metadata sync if the store
    /// failed then): until then, it must not lead or count as in sync on what that run
    /// did. Kafka fences every new incarnation of a broker alike, whether or not the old
    /// one's lease had run out (when every broker was down, nobody saw it go).
    bounced: bool,
    /// The broker epoch of each live broker's registration, as of the last metadata sync.
    broker_epochs: BTreeMap<BrokerId, u64>,
    last_renew_ms: i64,
    last_control_ms: i64,
    last_rebalance_ms: i64,
    /// When retention and compaction last ran over the hosted logs.
    last_cleanup_ms: i64,
    parked: Vec<ParkedFetch>,
    /// Messages to send once the lock is released: nothing is sent under it, so a
    /// transport may hand a message to its receiver on the sending thread (see
    /// [`DirectReceiver`]) without two brokers ever waiting on each other's locks.
    outbox: Vec<Envelope>,
    /// Set by [`Node::shutdown`]: the process is gone and answers nothing more.
    closed: bool,
    next_token: u64,
    elections: Vec<ElectionRecord>,
    last_error: Option<String>,
}

/// Answers to produces that waited for replication, until their producers collect them.
#[derive(Debug, Default)]
struct Answers {
    ready: HashMap<ProduceToken, ProduceResponse>,
    /// Waiting produces nobody will collect: their answers are dropped when they come.
    /// Each waiting produce is answered once (at the latest when it times out, or when
    /// the broker stops), which removes it from here.
    abandoned: HashSet<ProduceToken>,
}

impl Answers {
    /// Keeps the answer to `token` for its producer; false if it was abandoned.
    fn deliver(&mut self, token: ProduceToken, response: ProduceResponse) -> bool {
        if self.abandoned.remove(&token) {
            return false;
        }
        self.ready.insert(token, response);
        true
    }
}

/// One broker: its replicas, its lease, and (when elected) the controller's duties.
pub struct Node {
    id: BrokerId,
    dir: PathBuf,
    config: ClusterConfig,
    consensus: Arc<dyn ConsensusStore>,
    transport: Arc<dyn Transport>,
    env: Env,
    state: Mutex<State>,
    answers: Mutex<Answers>,
    answered: Condvar,
    /// Set when a hosted log closed under the broker (a storage failure): the broker has
    /// stopped serving and left the cluster, until it is opened again.
    halted: AtomicBool,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Opens broker `id` with its data under `dir` and registers it in `consensus`.
    pub fn open(
        id: BrokerId,
        dir: &Path,
        config: ClusterConfig,
        consensus: Arc<dyn ConsensusStore>,
        transport: Arc<dyn Transport>,
        env: Env,
    ) -> Result<Self> {
        crate::storage::create_dir_all_durably(&*env.storage, dir)?;
        let now = env.clock.now_ms();
        let node = Self {
            id,
            dir: dir.to_path_buf(),
            state: Mutex::new(State {
                manager: ReplicaManager::new(id, config.replica),
                logs: BTreeMap::new(),
                topics: BTreeMap::new(),
                seen_revision: None,
                registered: false,
                bounced: true,
                broker_epochs: BTreeMap::new(),
                last_renew_ms: now,
                last_control_ms: i64::MIN,
                last_rebalance_ms: now,
                last_cleanup_ms: now,
                parked: Vec::new(),
                outbox: Vec::new(),
                closed: false,
                next_token: 0,
                elections: Vec::new(),
                last_error: None,
            }),
            config,
            consensus,
            transport,
            env,
            answers: Mutex::new(Answers::default()),
            answered: Condvar::new(),
            halted: AtomicBool::new(false),
        };
        {
            let mut state = node.state.lock();
            node.register(&mut state, now)?;
            // At once, before anything is created that the last run never held; retried
            // by the metadata syncs if the store fails now.
            if let Err(e) = node.step_down_once(&mut state) {
                state.last_error = Some(e.to_string());
            }
        }
        Ok(node)
    }

    /// The broker id.
    pub fn id(&self) -> BrokerId {
        self.id
    }

    /// The log of `partition` hosted here, if any.
    pub fn log(&self, partition: &PartitionKey) -> Option<Arc<Partition>> {
        self.state.lock().logs.get(partition).cloned()
    }

    /// Every hosted partition and its log.
    pub fn logs(&self) -> BTreeMap<PartitionKey, Arc<Partition>> {
        self.state.lock().logs.clone()
    }

    /// Whether this broker currently leads `partition`.
    pub fn leads(&self, partition: &PartitionKey) -> bool {
        self.leader_epoch(partition).is_some()
    }

    /// The partitions of `topic` this broker currently leads: number, leader epoch, log.
    pub(crate) fn led_partitions(&self, topic: &str) -> Vec<(u32, i32, Arc<Partition>)> {
        let state = self.state.lock();
        state
            .logs
            .iter()
            .filter(|(k, _)| k.topic == topic)
            .filter_map(|(k, log)| {
                let replica = state.manager.replica(k)?;
                matches!(replica.role(), crate::replication::Role::Leader(_))
                    .then(|| (k.partition, replica.leader_epoch(), log.clone()))
            })
            .collect()
    }

    /// The leader epoch under which this broker leads `partition`, or `None` when it does
    /// not lead it (the simulation checks one leader per partition per epoch).
    pub fn leader_epoch(&self, partition: &PartitionKey) -> Option<i32> {
        let state = self.state.lock();
        state
            .manager
            .replica(partition)
            .filter(|r| matches!(r.role(), crate::replication::Role::Leader(_)))
            .map(|r| r.leader_epoch())
    }

    /// The elections this broker made as controller, oldest first; drained.
    pub fn take_elections(&self) -> Vec<ElectionRecord> {
        std::mem::take(&mut self.state.lock().elections)
    }

    /// Whether the broker halted because one of its logs closed under it (a failed
    /// fsync, checkpoint write or truncation: see [`Partition::is_closed`]). Its disk
    /// can no longer be trusted, so, like a Kafka broker whose log directories are all
    /// offline, it answered what waited on it, closed its logs, left the cluster (the
    /// controller moves its leaderships to in-sync followers) and does nothing more:
    /// [`Node::step`] answers [`Error::BrokerStopped`]. Opening the broker again
    /// recovers its logs from their files and it catches up as a follower.
    pub fn is_halted(&self) -> bool {
        self.halted.load(Ordering::Acquire)
    }

    /// The last error a step met and carried on from (a store or disk failure).
    pub fn last_error(&self) -> Option<String> {
        self.state.lock().last_error.clone()
    }

    fn register(&self, state: &mut State, now: i64) -> Result<()> {
        let registration = match self
            .consensus
            .register_broker(self.id, self.config.lease_ms)
        {
            Ok(registration) => registration,
            Err(Error::BrokerAlreadyRegistered { .. }) => {
                // A restart of this broker: its old registration is this one's to replace.
                self.consensus.unregister_broker(self.id)?;
                self.consensus
                    .register_broker(self.id, self.config.lease_ms)?
            }
            Err(e) => return Err(e),
        };
        // Requests of this registration get ids no earlier run of this broker used, so
        // an answer meant for a previous process is never taken for one of ours.
        state
            .manager
            .raise_correlation_ids(registration.broker_epoch << 32);
        state.registered = true;
        state.last_renew_ms = now;
        Ok(())
    }

    /// Does one round of work, waiting up to `wait` for a message to arrive first.
    /// Failures of the consensus store or a disk are remembered ([`Node::last_error`])
    /// and retried at the next step; the node keeps serving what it can.
    pub fn step(&self, wait: Option<Duration>) -> Result<()> {
        if self.is_halted() {
            return Err(Error::BrokerStopped { broker: self.id });
        }
        let envelopes = self.transport.receive(self.id, 1024, wait)?;
        let now = self.env.clock.now_ms();
        let mut state = self.state.lock();
        if let Some(closed) = state.logs.values().find(|log| log.is_closed()) {
            let reason = format!(
                "halted: the log at {} closed under the broker (a storage failure)",
                closed.dir().display()
            );
            drop(state);
            self.halt(reason);
            return Err(Error::BrokerStopped { broker: self.id });
        }
        if let Err(e) = self.maintain(&mut state, now) {
            state.last_error = Some(e.to_string());
        }
        for envelope in envelopes {
            self.handle(&mut state, envelope, now);
        }
        let outputs = state.manager.tick(now);
        self.execute(&mut state, outputs, now);
        self.serve_parked(&mut state, now, false);
        let due = passed(
            now,
            state.last_cleanup_ms,
            self.config.log_retention_check_interval_ms,
        );
        let logs: Vec<Arc<Partition>> = if due {
            state.last_cleanup_ms = now;
            state.logs.values().cloned().collect()
        } else {
            Vec::new()
        };
        // A message that cannot be sent (its broker is gone) fails only itself: the rest
        // is sent, and the first such error is reported.
        let sent = self.send_outbox(state);
        // Outside the lock: replication goes on while segments are deleted or cleaned.
        if let Err(e) = clean_logs(&logs) {
            self.state.lock().last_error = Some(e.to_string());
        }
        sent
    }

    /// Releases the lock, then sends what the round queued; the first send error is
    /// also kept as the last error.
    fn send_outbox(&self, mut state: MutexGuard<'_, State>) -> Result<()> {
        let outbox = std::mem::take(&mut state.outbox);
        drop(state);
        let mut failed = None;
        for envelope in outbox {
            keep_first(&mut failed, self.transport.send(envelope));
        }
        match failed {
            Some(e) => {
                self.state.lock().last_error = Some(e.to_string());
                Err(e)
            }
            None => Ok(()),
        }
    }

    /// Lease, metadata and controller duties.
    fn maintain(&self, state: &mut State, now: i64) -> Result<()> {
        if !state.registered {
            self.register(state, now)?;
        } else {
            match self.renew_if_due(state) {
                Ok(()) => {}
                Err(Error::LeaseExpired { .. }) => {
                    state.registered = false;
                    self.register(state, now)?;
                }
                Err(e) => return Err(e),
            }
        }
        let revision = self.consensus.revision()?;
        let changed = state.seen_revision != Some(revision);
        if changed {
            self.sync_metadata(state, now)?;
            state.seen_revision = Some(revision);
        }
        if changed
            || passed(
                now,
                state.last_control_ms,
                (self.config.lease_ms / 4).max(1),
            )
        {
            state.last_control_ms = now;
            let controller = self.consensus.try_become_controller(self.id)?;
            if controller.broker == self.id {
                self.control(state, now)?;
            }
        }
        Ok(())
    }

    /// Renews the lease if a third of it has passed since the last renewal, by the clock
    /// as it reads now: also called between the slow parts of a step (opening logs), so
    /// that a long step does not let the lease lapse (Kafka heartbeats from a thread of
    /// its own). [`Error::LeaseExpired`] when it lapsed anyway.
    fn renew_if_due(&self, state: &mut State) -> Result<()> {
        let now = self.env.clock.now_ms();
        if state.registered && passed(now, state.last_renew_ms, self.config.lease_ms / 3) {
            self.consensus.renew_lease(self.id)?;
            state.last_renew_ms = now;
        }
        Ok(())
    }

    /// Applies every partition state to the hosted replicas, opening new ones.
    fn sync_metadata(&self, state: &mut State, now: i64) -> Result<()> {
        self.step_down_once(state)?;
        // Before the partition states: a follower that stepped down as a new process is
        // known as that process before any of its old fetches could put it back in sync.
        state.broker_epochs = self.consensus.live_broker_epochs()?.into_iter().collect();
        let live: BTreeSet<BrokerId> = state.broker_epochs.keys().copied().collect();
        let mut seen = BTreeSet::new();
        for name in self.consensus.topics()? {
            let Some(Versioned { value: record, .. }) = self.consensus.topic(&name)? else {
                continue;
            };
            state.topics.insert(name.clone(), record.config.clone());
            for (p, partition_state) in record.partitions.iter().enumerate() {
                let key = PartitionKey {
                    topic: name.clone(),
                    partition: p as u32,
                };
                if !partition_state.is_replica(self.id) {
                    continue;
                }
                seen.insert(key.clone());
                if !state.logs.contains_key(&key) {
                    self.renew_if_due(state)?;
                    self.host(state, &key, &record.config)?;
                }
                let outputs = state
                    .manager
                    .apply_state(&key, partition_state.clone(), now)?;
                self.execute(state, outputs, now);
                if partition_state.leader == Some(self.id)
                    && partition_state.leader_recovery == LeaderRecoveryState::Recovering
                {
                    self.mark_recovered(&key)?;
                }
            }
        }
        let gone: Vec<PartitionKey> = state
            .logs
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            let outputs = state.manager.remove_replica(&key);
            self.execute(state, outputs, now);
            state.logs.remove(&key);
        }
        let all: BTreeSet<BrokerId> = (0..self.config.brokers).collect();
        let fenced: Vec<BrokerId> = all.difference(&live).copied().collect();
        state.manager.set_fenced_brokers(&fenced);
        Ok(())
    }

    fn host(&self, state: &mut State, key: &PartitionKey, config: &TopicConfig) -> Result<()> {
        let dir = self.dir.join(format!("{}-{}", key.topic, key.partition));
        let log_config = config.log_config().clone().auto_high_watermark(false);
        let log = Arc::new(Partition::open_with_env(dir, log_config, self.env.clone())?);
        state.manager.add_replica(key.clone(), log.clone());
        state.manager.set_leader_config(
            key,
            LeaderConfig {
                min_insync_replicas: usize::from(config.min_insync_replicas),
                replica_lag_time_max_ms: self.config.replica.leader.replica_lag_time_max_ms,
            },
        );
        state.logs.insert(key.clone(), log);
        Ok(())
    }

    /// [`Node::step_down_after_bounce`] unless this process already has.
    fn step_down_once(&self, state: &mut State) -> Result<()> {
        if state.bounced {
            let live = self.consensus.live_brokers()?.into_iter().collect();
            self.step_down_after_bounce(&live)?;
            state.bounced = false;
        }
        Ok(())
    }

    /// After a restart, does what the controller would have done had it seen the broker
    /// go: on every partition where the store still counts this broker in the ISR and
    /// whose log its last run did not close cleanly (or that is gone), a clean election
    /// without it (a new epoch, another in-sync leader) and an ISR without it. That run
    /// may have lost an unflushed tail (durability comes from replication), so leading,
    /// or counting as in sync, on that state could lose acknowledged records; it catches
    /// up as a follower and rejoins the ISR as any follower does. When no other ISR member
    /// is live, the ISR keeps one of them (the last), not this broker, so that the
    /// partition waits offline for a replica that can vouch for its records; only a
    /// partition whose sole in-sync replica this broker was comes back on it, elected
    /// again in a new epoch (as in Kafka without eligible leader replicas, KIP-966: it is
    /// the only copy left).
    fn step_down_after_bounce(&self, live: &BTreeSet<BrokerId>) -> Result<()> {
        let mut others = live.clone();
        others.remove(&self.id);
        for name in self.consensus.topics()? {
            let Some(topic) = self.consensus.topic(&name)? else {
                continue;
            };
            for p in 0..topic.value.partitions.len() as u32 {
                self.step_down_from(&name, p, &others)?;
            }
        }
        Ok(())
    }

    /// [`Node::step_down_after_bounce`] on one partition, read again and retried when a
    /// concurrent write (the leader's ISR change, the controller) wins the
    /// compare-and-set.
    fn step_down_from(
        &self,
        topic: &str,
        partition: u32,
        others: &BTreeSet<BrokerId>,
    ) -> Result<()> {
        const ATTEMPTS: usize = 8;
        // A log its last run closed cleanly holds everything that run acknowledged (the
        // marker goes once the log is opened, which happens after this).
        let marker = self
            .dir
            .join(format!("{topic}-{partition}"))
            .join(CLEAN_SHUTDOWN_FILE);
        if self.env.storage.exists(&marker) {
            return Ok(());
        }
        let mut attempt = 0;
        loop {
            let Some(current) = self.consensus.partition_state(topic, partition)? else {
                return Ok(());
            };
            if !current.value.isr.contains(&self.id) {
                return Ok(());
            }
            // Never unclean: an out-of-sync replica is no safer than this one.
            let Some(decision) = controller::decide(&current.value, others, false, false) else {
                return Ok(());
            };
            let mut next = decision.state;
            if next.isr == [self.id]
                && let Some(&other) = current.value.isr.iter().rev().find(|&&b| b != self.id)
            {
                next.isr = vec![other];
            }
            match self
                .consensus
                .set_partition_state(topic, partition, next, current.version)
            {
                Err(Error::VersionConflict { .. }) if attempt + 1 < ATTEMPTS => attempt += 1,
                other => return other.map(|_| ()),
            }
        }
    }

    /// An uncleanly elected leader has nothing to recover (no transactions): it says so.
    fn mark_recovered(&self, key: &PartitionKey) -> Result<()> {
        let Some(current) = self.consensus.partition_state(&key.topic, key.partition)? else {
            return Ok(());
        };
        let mut next = current.value.clone();
        if next.leader != Some(self.id) || next.leader_recovery == LeaderRecoveryState::Recovered {
            return Ok(());
        }
        next.leader_recovery = LeaderRecoveryState::Recovered;
        next.partition_epoch += 1;
        ignore_conflict(self.consensus.set_partition_state(
            &key.topic,
            key.partition,
            next,
            current.version,
        ))
    }

    /// The controller's round: elect leaders, clean ISRs, rebalance leadership.
    fn control(&self, state: &mut State, now: i64) -> Result<()> {
        let live: BTreeSet<BrokerId> = self.consensus.live_brokers()?.into_iter().collect();
        let rebalance = self.config.auto_leader_rebalance
            && passed(
                now,
                state.last_rebalance_ms,
                self.config.leader_imbalance_check_interval_ms,
            );
        if rebalance {
            state.last_rebalance_ms = now;
        }
        for name in self.consensus.topics()? {
            let Some(topic) = self.consensus.topic(&name)? else {
                continue;
            };
            let unclean = topic.value.config.unclean_leader_election_enable;
            for p in 0..topic.value.partitions.len() as u32 {
                let Some(current) = self.consensus.partition_state(&name, p)? else {
                    continue;
                };
                let Some(decision) = controller::decide(&current.value, &live, unclean, rebalance)
                else {
                    continue;
                };
                let written = self.consensus.set_partition_state(
                    &name,
                    p,
                    decision.state.clone(),
                    current.version,
                );
                match written {
                    Ok(_) => {
                        if let Some(election) = decision.election {
                            state.elections.push(ElectionRecord {
                                partition: PartitionKey {
                                    topic: name.clone(),
                                    partition: p,
                                },
                                election,
                                state: decision.state,
                            });
                        }
                    }
                    Err(Error::VersionConflict { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    fn handle(&self, state: &mut State, envelope: Envelope, now: i64) {
        let from = envelope.from;
        match envelope.message {
            Message::Request {
                correlation_id,
                request,
            } => match request {
                Request::Fetch(request) => {
                    if request.replica_id.is_some()
                        && sent_by_earlier_process(state, from, correlation_id)
                    {
                        // Its sender is gone: nobody waits for the answer, and its fetch
                        // offset speaks for a log that process's crash may have lost.
                        return;
                    }
                    let (response, outputs) = state.manager.handle_fetch(&request, now);
                    self.execute(state, outputs, now);
                    if request.replica_id.is_some() && nothing_new(&response) {
                        state.parked.push(ParkedFetch {
                            from,
                            correlation_id,
                            request,
                            deadline_ms: now.saturating_add(
                                i64::try_from(self.config.replica_fetch_wait_max_ms)
                                    .unwrap_or(i64::MAX),
                            ),
                        });
                    } else {
                        self.reply(state, from, correlation_id, Response::Fetch(response));
                    }
                }
                Request::OffsetsForLeaderEpoch(request) => {
                    let response = state.manager.handle_offsets_for_leader_epoch(&request);
                    let response = Response::OffsetsForLeaderEpoch(response);
                    self.reply(state, from, correlation_id, response);
                }
                Request::Produce(request) => {
                    // A producer in another process would be answered here; in-process
                    // producers call `submit_produce`.
                    if let Submitted::Done(response) = self.submit_locked(state, &request, now) {
                        self.reply(state, from, correlation_id, Response::Produce(response));
                    }
                }
                Request::Metadata(request) => {
                    // Unanswered when the store is unreachable: the client asks another.
                    if let Ok(response) = self.metadata(&request) {
                        let response = Response::Metadata(response);
                        self.reply(state, from, correlation_id, response);
                    }
                }
                Request::Group(_) => {}
            },
            Message::Response {
                correlation_id,
                response,
            } => {
                let response = match response {
                    Response::Fetch(r) => ReplicaResponse::Fetch(r),
                    Response::OffsetsForLeaderEpoch(r) => ReplicaResponse::OffsetsForLeaderEpoch(r),
                    _ => return,
                };
                let outputs = state
                    .manager
                    .handle_response(from, correlation_id, response, now);
                self.execute(state, outputs, now);
            }
        }
    }

    /// The answer to a metadata request (S11: a producer asks any broker who leads
    /// what), from the consensus store.
    pub fn metadata(&self, request: &MetadataRequest) -> Result<MetadataResponse> {
        let consensus = &self.consensus;
        let names = match &request.topics {
            Some(names) => names.clone(),
            None => consensus.topics()?,
        };
        let mut topics = Vec::with_capacity(names.len());
        for name in names {
            let Some(topic) = consensus.topic(&name)? else {
                topics.push(TopicMetadata {
                    name,
                    error: Some(ReplicaError::UnknownTopicOrPartition),
                    partitions: Vec::new(),
                });
                continue;
            };
            let partitions = (0..)
                .zip(&topic.value.partitions)
                .map(|(partition, s)| PartitionMetadata {
                    partition,
                    leader: s.leader,
                    leader_epoch: s.leader_epoch,
                    replicas: s.replicas.clone(),
                    isr: s.isr.clone(),
                })
                .collect();
            topics.push(TopicMetadata {
                name,
                error: None,
                partitions,
            });
        }
        Ok(MetadataResponse {
            brokers: consensus.live_brokers()?,
            controller: consensus.controller()?.map(|c| c.broker),
            topics,
        })
    }

    /// Queues `response` to `correlation_id` for `to`, sent once the lock is released.
    fn reply(&self, state: &mut State, to: BrokerId, correlation_id: u64, response: Response) {
        state.outbox.push(Envelope {
            from: self.id,
            to,
            message: Message::Response {
                correlation_id,
                response,
            },
        });
    }

    /// Carries out the manager's outputs; requests to other brokers go to the outbox.
    fn execute(&self, state: &mut State, outputs: Vec<ReplicaOutput>, now: i64) {
        let mut queue = std::collections::VecDeque::from(outputs);
        while let Some(output) = queue.pop_front() {
            match output {
                ReplicaOutput::Send {
                    to,
                    correlation_id,
                    request,
                } => {
                    let request = match request {
                        ReplicaRequest::Fetch(r) => Request::Fetch(r),
                        ReplicaRequest::OffsetsForLeaderEpoch(r) => {
                            Request::OffsetsForLeaderEpoch(r)
                        }
                    };
                    state.outbox.push(Envelope {
                        from: self.id,
                        to,
                        message: Message::Request {
                            correlation_id,
                            request,
                        },
                    });
                }
                ReplicaOutput::AlterIsr { partition, change } => {
                    queue.extend(self.alter_isr(state, &partition, change, now));
                }
                ReplicaOutput::ProduceDone { token, response } => {
                    if self.answers.lock().deliver(token, response) {
                        self.answered.notify_all();
                    }
                }
            }
        }
    }

    /// Writes a leader's ISR proposal with compare-and-set on the partition epoch.
    fn alter_isr(
        &self,
        state: &mut State,
        key: &PartitionKey,
        change: crate::replication::IsrChange,
        now: i64,
    ) -> Vec<ReplicaOutput> {
        let written = (|| -> Result<Option<i32>> {
            let Some(current) = self.consensus.partition_state(&key.topic, key.partition)? else {
                return Ok(None);
            };
            let mut next = current.value.clone();
            if next.leader != Some(self.id) || next.partition_epoch != change.partition_epoch {
                return Ok(None);
            }
            next.isr = change.isr.clone();
            next.partition_epoch += 1;
            let epoch = next.partition_epoch;
            match self.consensus.set_partition_state(
                &key.topic,
                key.partition,
                next,
                current.version,
            ) {
                Ok(_) => Ok(Some(epoch)),
                Err(Error::VersionConflict { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })();
        match written {
            Ok(Some(epoch)) => state
                .manager
                .isr_change_committed(key, change.isr, epoch, now),
            Ok(None) => {
                state.manager.isr_change_failed(key);
                Vec::new()
            }
            Err(e) => {
                state.last_error = Some(e.to_string());
                state.manager.isr_change_failed(key);
                Vec::new()
            }
        }
    }

    /// Answers parked follower fetches that have something new (or whose wait is over;
    /// all of them when `all`).
    fn serve_parked(&self, state: &mut State, now: i64, all: bool) {
        if state.parked.is_empty() {
            return;
        }
        let parked = std::mem::take(&mut state.parked);
        for fetch in parked {
            if sent_by_earlier_process(state, fetch.from, fetch.correlation_id) {
                continue;
            }
            let ready = all
                || now >= fetch.deadline_ms
                || fetch.request.partitions.iter().any(|p| {
                    state
                        .logs
                        .get(&p.partition)
                        .is_none_or(|log| log.log_end_offset() != p.fetch_offset)
                });
            if !ready {
                state.parked.push(fetch);
                continue;
            }
            let (response, outputs) = state.manager.handle_fetch(&fetch.request, now);
            self.execute(state, outputs, now);
            let response = Response::Fetch(response);
            self.reply(state, fetch.from, fetch.correlation_id, response);
        }
    }

    /// Hands a produce to this broker's replica manager (as leader). The batch is written
    /// without the broker's lock, so the leader answers follower fetches meanwhile; a
    /// change of leadership during the write is caught by the replica's leader gate.
    /// Parked follower fetches are answered at once, so replication starts without
    /// waiting for a step.
    pub fn submit_produce(&self, request: &ProduceRequest) -> Result<Submitted> {
        let (token, prepared) = {
            let mut state = self.state.lock();
            state.next_token += 1;
            let token = ProduceToken(state.next_token);
            (token, state.manager.prepare_produce(request))
        };
        let outcome = match prepared {
            PreparedProduce::Answered(outcome) => outcome,
            PreparedProduce::Append(append) => {
                let appended = append.append(&request.records);
                let now = self.env.clock.now_ms();
                let mut state = self.state.lock();
                let outcome = state
                    .manager
                    .finish_produce(request, token, &append, appended, now);
                self.serve_parked(&mut state, now, false);
                // The batch is written: its outcome is the producer's, whatever happens
                // to the answers of the fetches parked here (a failed send is kept as
                // the last error).
                let _ = self.send_outbox(state);
                outcome
            }
        };
        Ok(submitted(outcome, token))
    }

    fn submit_locked(&self, state: &mut State, request: &ProduceRequest, now: i64) -> Submitted {
        state.next_token += 1;
        let token = ProduceToken(state.next_token);
        submitted(state.manager.handle_produce(request, token, now), token)
    }

    /// The answer to a waiting produce, if it has come.
    pub fn take_answer(&self, token: ProduceToken) -> Option<ProduceResponse> {
        self.answers.lock().ready.remove(&token)
    }

    /// Waits (real time) up to `timeout` for the answer to a waiting produce.
    pub fn wait_answer(&self, token: ProduceToken, timeout: Duration) -> Option<ProduceResponse> {
        let deadline = crate::clock::deadline_after(timeout);
        let mut answers = self.answers.lock();
        loop {
            if let Some(response) = answers.ready.remove(&token) {
                return Some(response);
            }
            if self.answered.wait_until(&mut answers, deadline).timed_out() {
                return answers.ready.remove(&token);
            }
        }
    }

    /// Says that nobody will collect the answer to the waiting produce `token` (its
    /// producer gave up or went away): the answer is dropped, now or when it comes,
    /// instead of being kept for ever.
    pub fn abandon_answer(&self, token: ProduceToken) {
        let mut answers = self.answers.lock();
        if answers.ready.remove(&token).is_none() {
            answers.abandoned.insert(token);
        }
    }

    /// Answers kept for producers, and abandoned produces not yet answered.
    #[cfg(test)]
    pub(crate) fn held_answers(&self) -> (usize, usize) {
        let answers = self.answers.lock();
        (answers.ready.len(), answers.abandoned.len())
    }

    /// Stops serving after a storage failure ([`Node::is_halted`]): the broker answers
    /// what waits on it, closes its logs and unregisters, so that the controller elects
    /// new leaders without waiting for the lease to run out.
    fn halt(&self, reason: String) {
        self.halted.store(true, Ordering::Release);
        let shut = self.shutdown();
        let left = self.consensus.unregister_broker(self.id);
        let mut state = self.state.lock();
        state.last_error = Some(match (shut, left) {
            (Err(e), _) | (_, Err(e)) => format!("{reason}; then {e}"),
            _ => reason,
        });
    }

    /// Answers what is parked and what waits for replication, and closes every log
    /// (flushing it). The lease is left to expire, as when a process dies.
    pub fn shutdown(&self) -> Result<()> {
        let now = self.env.clock.now_ms();
        let mut state = self.state.lock();
        state.closed = true;
        self.serve_parked(&mut state, now, true);
        // Produces waiting for replication are answered now (`NotLeaderOrFollower`), as a
        // dead broker's connections close, rather than left to their request timeout.
        let keys: Vec<PartitionKey> = state.logs.keys().cloned().collect();
        let failed: Vec<ReplicaOutput> = keys
            .iter()
            .flat_map(|key| state.manager.remove_replica(key))
            .collect();
        self.execute(&mut state, failed, now);
        let logs = std::mem::take(&mut state.logs);
        state.manager = ReplicaManager::new(self.id, self.config.replica);
        // A reply that cannot be sent (its broker is gone) stops nothing that follows:
        // the logs close even so.
        let mut first_error = self.send_outbox(state).err();
        for (_, log) in logs {
            if let Err(e) = log.shutdown() {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// A follower's fetch (or its offsets-for-leader-epoch) is answered on the follower's
/// own thread when the transport delivers at once: the leader's thread is not woken for
/// it, and an answer with records is in the follower's queue before it next receives.
/// Answers are queued as usual, so each broker applies what it is sent (a follower's
/// append) on its own thread. A broker never waits for another: when this one's lock is
/// held (its own step, a produce), the message is given back and its thread answers it.
impl DirectReceiver for Node {
    fn take_direct(&self, envelope: Envelope) -> Option<Envelope> {
        if self.is_halted() {
            return Some(envelope);
        }
        let Some(mut state) = self.state.try_lock() else {
            return Some(envelope);
        };
        if state.closed || !takes_directly(&state, &envelope.message) {
            return Some(envelope);
        }
        let now = self.env.clock.now_ms();
        self.handle(&mut state, envelope, now);
        // A failed send is kept as the last error, as in a step.
        let _ = self.send_outbox(state);
        None
    }
}

/// Whether a node takes `message` on its sender's thread: a replication request none of
/// whose partitions' logs has closed. A closed log halts the broker at its next step,
/// before that step answers anything; its queue keeps the request until then.
fn takes_directly(state: &State, message: &Message) -> bool {
    let closed = |key: &PartitionKey| state.logs.get(key).is_some_and(|log| log.is_closed());
    match message {
        Message::Request {
            request: Request::Fetch(r),
            ..
        } => !r.partitions.iter().any(|p| closed(&p.partition)),
        Message::Request {
            request: Request::OffsetsForLeaderEpoch(r),
            ..
        } => !r.partitions.iter().any(|q| closed(&q.partition)),
        _ => false,
    }
}

/// Whether `interval_ms` has passed from `since_ms` to `now_ms`, without overflow: an
/// interval beyond `i64::MAX` never passes, and a `since_ms` of `i64::MIN` (never) has.
fn passed(now_ms: i64, since_ms: i64, interval_ms: u64) -> bool {
    now_ms.saturating_sub(since_ms) >= i64::try_from(interval_ms).unwrap_or(i64::MAX)
}

/// What the producer of `token` is told about its produce.
fn submitted(outcome: ProduceOutcome, token: ProduceToken) -> Submitted {
    match outcome {
        ProduceOutcome::Done(response) => Submitted::Done(response),
        ProduceOutcome::NoAnswer => Submitted::NoAnswer,
        ProduceOutcome::Waiting => Submitted::Waiting(token),
    }
}

/// Retention (by time, size and log start; never past the high watermark) and, for
/// compacted topics that need it, compaction, on every log — each replica on its own, as
/// in Kafka. Every log is tried; the first error is returned.
fn clean_logs(logs: &[Arc<Partition>]) -> Result<()> {
    let mut first_error = None;
    for log in logs {
        let result = log.enforce_retention().and_then(|_| {
            if log.needs_compaction() {
                log.compact().map(drop)
            } else {
                Ok(())
            }
        });
        match result {
            Ok(()) | Err(Error::Closed { .. }) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Keeps the first error of steps that are each worth doing whatever the others did.
/// Whether a request `from` a broker with `correlation_id` was sent by an earlier process
/// of that broker than the registration now live: each process numbers its requests from
/// its broker epoch up (`register`), and registering anew raises the epoch.
fn sent_by_earlier_process(state: &State, from: BrokerId, correlation_id: u64) -> bool {
    state
        .broker_epochs
        .get(&from)
        .is_some_and(|&epoch| correlation_id >> 32 < epoch)
}

fn keep_first(first: &mut Option<Error>, result: Result<()>) {
    if let Err(e) = result {
        first.get_or_insert(e);
    }
}

/// A fetch answer with no records, no error and no divergence for any partition.
fn nothing_new(response: &FetchResponse) -> bool {
    response
        .partitions
        .iter()
        .all(|p| p.error.is_none() && p.diverging_epoch.is_none() && p.records.is_empty())
}

fn ignore_conflict<T>(result: Result<T>) -> Result<()> {
    match result {
        Ok(_) | Err(Error::VersionConflict { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}
