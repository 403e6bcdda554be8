//! [`ReplicaManager`]: every partition a broker hosts, sans-IO. It answers produce, fetch
//! and offsets-for-leader-epoch requests as leader, drives its followers' fetching (one
//! request in flight per leader), holds `acks=all` produces until the high watermark
//! passes them, and proposes ISR changes. A driver feeds it requests, responses, partition
//! states and the time, and carries out its [`ReplicaOutput`]s.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::leader::{IsrChange, LeaderConfig};
use super::messages::{
    Acks, BrokerId, EpochQuery, FetchPartition, FetchRequest, FetchResponse, FetchedPartition,
    OffsetsForLeaderEpochRequest, OffsetsForLeaderEpochResponse, PartitionKey, ProduceRequest,
    ProduceResponse, ReplicaError,
};
use super::partition_state::PartitionState;
use super::replica::{Applied, FollowerPhase, LeaderAppend, Replica};
use super::truncation::truncation_offset;
use crate::error::Result;
use crate::log::Partition;

/// The settings of a broker's replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaConfig {
    /// The leader's settings (`min.insync.replicas`, `replica.lag.time.max.ms`).
    pub leader: LeaderConfig,
    /// `replica.fetch.max.bytes` per partition (1 MiB).
    pub fetch_max_bytes: u32,
    /// `replica.fetch.response.max.bytes` per request (10 MiB).
    pub fetch_response_max_bytes: u32,
    /// How long a follower waits for an answer before asking again (ms).
    pub request_timeout_ms: i64,
    /// How long a follower waits after an error before asking again
    /// (`replica.fetch.backoff.ms`, 1 s).
    pub fetch_backoff_ms: i64,
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        Self {
            leader: LeaderConfig::default(),
            fetch_max_bytes: 1 << 20,
            fetch_response_max_bytes: 10 << 20,
            request_timeout_ms: 30_000,
            fetch_backoff_ms: 1_000,
        }
    }
}

/// A token the driver gives with a produce, returned with its delayed answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProduceToken(pub u64);

/// A request a follower sends to its leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaRequest {
    /// Fetch records.
    Fetch(FetchRequest),
    /// Find where epochs end.
    OffsetsForLeaderEpoch(OffsetsForLeaderEpochRequest),
}

/// A leader's answer to a [`ReplicaRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaResponse {
    /// Answers a fetch.
    Fetch(FetchResponse),
    /// Answers an offsets-for-leader-epoch request.
    OffsetsForLeaderEpoch(OffsetsForLeaderEpochResponse),
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaOutput {
    /// Answer a produce that waited for replication (or failed while waiting).
    ProduceDone {
        /// The token given with the produce.
        token: ProduceToken,
        /// The answer.
        response: ProduceResponse,
    },
    /// Write this ISR to the consensus store with compare-and-set on the partition epoch,
    /// then report with [`ReplicaManager::isr_change_committed`] or
    /// [`ReplicaManager::isr_change_failed`].
    AlterIsr {
        /// The partition.
        partition: PartitionKey,
        /// The proposal.
        change: IsrChange,
    },
    /// Send a request to a leader; hand its answer to [`ReplicaManager::handle_response`].
    Send {
        /// The leader.
        to: BrokerId,
        /// Matches the answer to the request.
        correlation_id: u64,
        /// The request.
        request: ReplicaRequest,
    },
}

/// The outcome of a produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProduceOutcome {
    /// Answer now.
    Done(ProduceResponse),
    /// `acks=0`: answer nothing.
    NoAnswer,
    /// `acks=all`: the answer comes as [`ReplicaOutput::ProduceDone`].
    Waiting,
}

/// A produce after its checks: answered already, or an append to carry out.
#[derive(Debug)]
pub enum PreparedProduce {
    /// Nothing to append: the answer (an error, or none for `acks=0`).
    Answered(ProduceOutcome),
    /// Append with [`LeaderAppend::append`], then call
    /// [`ReplicaManager::finish_produce`].
    Append(LeaderAppend),
}

fn produce_answer(
    key: &PartitionKey,
    error: Option<ReplicaError>,
    base_offset: Option<u64>,
    log_start_offset: u64,
) -> ProduceResponse {
    ProduceResponse {
        partition: key.clone(),
        error,
        base_offset,
        log_start_offset,
    }
}

#[derive(Debug, Clone)]
struct PendingProduce {
    token: ProduceToken,
    partition: PartitionKey,
    base_offset: u64,
    required_offset: u64,
    deadline_ms: i64,
}

#[derive(Debug, Clone)]
struct InFlight {
    correlation_id: u64,
    sent_ms: i64,
    /// Each partition asked for, with the leader epoch and log end it was asked at.
    partitions: BTreeMap<PartitionKey, (i32, u64)>,
}

/// Every partition a broker hosts.
#[derive(Debug)]
pub struct ReplicaManager {
    me: BrokerId,
    config: ReplicaConfig,
    replicas: BTreeMap<PartitionKey, Replica>,
    /// Per-partition leader settings (a topic's `min.insync.replicas`), else the default.
    leader_configs: BTreeMap<PartitionKey, LeaderConfig>,
    pending: Vec<PendingProduce>,
    in_flight: BTreeMap<BrokerId, InFlight>,
    backoff_until: BTreeMap<BrokerId, i64>,
    next_correlation: u64,
    /// Brokers marked gone by [`ReplicaManager::set_fenced_brokers`], given to every
    /// leader state (a new state rebuilds it).
    fenced: Vec<BrokerId>,
    /// Outputs produced where they could not be returned (other produces answered by an
    /// append), handed out by the next call that returns outputs.
    deferred: Vec<ReplicaOutput>,
}

impl ReplicaManager {
    /// The replica manager of broker `me`.
    pub fn new(me: BrokerId, config: ReplicaConfig) -> Self {
        Self {
            me,
            config,
            replicas: BTreeMap::new(),
            leader_configs: BTreeMap::new(),
            pending: Vec::new(),
            in_flight: BTreeMap::new(),
            backoff_until: BTreeMap::new(),
            next_correlation: 0,
            deferred: Vec::new(),
            fenced: Vec::new(),
        }
    }

    /// Makes the next request's correlation id greater than `floor` (and never lowers
    /// it): a restarted broker passes something unique to its run (its registration
    /// epoch), so late answers to the previous run's requests match none of its own.
    pub fn raise_correlation_ids(&mut self, floor: u64) {
        self.next_correlation = self.next_correlation.max(floor);
    }

    /// The broker.
    pub fn broker_id(&self) -> BrokerId {
        self.me
    }

    /// The settings.
    pub fn config(&self) -> &ReplicaConfig {
        &self.config
    }

    /// Partition `key`, if hosted.
    pub fn replica(&self, key: &PartitionKey) -> Option<&Replica> {
        self.replicas.get(key)
    }

    /// Every hosted partition.
    pub fn replicas(&self) -> impl Iterator<Item = &Replica> {
        self.replicas.values()
    }

    /// Whether `partition` is hosted here.
    pub fn hosts(&self, partition: &PartitionKey) -> bool {
        self.replicas.contains_key(partition)
    }

    /// Hosts `key` on `log` (no role until [`ReplicaManager::apply_state`]).
    pub fn add_replica(&mut self, key: PartitionKey, log: Arc<Partition>) {
        self.replicas
            .entry(key.clone())
            .or_insert_with(|| Replica::new(key, self.me, log));
    }

    /// Leads `key` with `config` (its topic's `min.insync.replicas`) instead of the
    /// broker-wide default, from the next state applied.
    pub fn set_leader_config(&mut self, key: &PartitionKey, config: LeaderConfig) {
        self.leader_configs.insert(key.clone(), config);
    }

    /// Stops hosting `key`; its waiting produces fail with `NotLeaderOrFollower`.
    pub fn remove_replica(&mut self, key: &PartitionKey) -> Vec<ReplicaOutput> {
        self.leader_configs.remove(key);
        let leader = self.replicas.remove(key).and_then(|r| r.leader());
        // Answers left for later go out too: a broker that stops after this call would
        // otherwise drop them, leaving their producers to time out.
        let mut out = std::mem::take(&mut self.deferred);
        out.extend(self.fail_pending(key, ReplicaError::NotLeaderOrFollower { leader }));
        out
    }

    /// Applies a partition state from the consensus store to a hosted partition.
    pub fn apply_state(
        &mut self,
        key: &PartitionKey,
        state: PartitionState,
        now_ms: i64,
    ) -> Result<Vec<ReplicaOutput>> {
        let Some(replica) = self.replicas.get_mut(key) else {
            return Ok(Vec::new());
        };
        let config = self
            .leader_configs
            .get(key)
            .copied()
            .unwrap_or(self.config.leader);
        let applied = replica.apply(state, config, now_ms)?;
        if let Some(leader) = replica.leader_mut() {
            // The applied state built a fresh leader state: the gone brokers stay gone.
            leader.set_fenced(self.fenced.clone());
        }
        let leader = replica.leader();
        let mut out = std::mem::take(&mut self.deferred);
        match applied {
            Applied::StoppedLeading => {
                out.extend(self.fail_pending(key, ReplicaError::NotLeaderOrFollower { leader }));
            }
            Applied::Leader => out.extend(self.complete_pending(key)),
            Applied::Follower | Applied::Unchanged => {}
        }
        Ok(out)
    }

    fn fail_pending(&mut self, key: &PartitionKey, error: ReplicaError) -> Vec<ReplicaOutput> {
        let log_start = self
            .replicas
            .get(key)
            .map_or(0, |r| r.log().log_start_offset());
        let (failed, kept) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| &p.partition == key);
        self.pending = kept;
        failed
            .into_iter()
            .map(|p: PendingProduce| ReplicaOutput::ProduceDone {
                token: p.token,
                response: ProduceResponse {
                    partition: p.partition,
                    error: Some(error),
                    base_offset: None,
                    log_start_offset: log_start,
                },
            })
            .collect()
    }

    /// Answers the waiting produces of `key` that are replicated (or failed).
    fn complete_pending(&mut self, key: &PartitionKey) -> Vec<ReplicaOutput> {
        let Some(replica) = self.replicas.get_mut(key) else {
            return Vec::new();
        };
        let log_start = replica.log().log_start_offset();
        let Some(leader) = replica.leader_mut() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        self.pending.retain(|p| {
            if &p.partition != key {
                return true;
            }
            let Some(result) = leader.check_replicated(p.required_offset) else {
                return true;
            };
            out.push(ReplicaOutput::ProduceDone {
                token: p.token,
                response: ProduceResponse {
                    partition: p.partition.clone(),
                    error: result.err(),
                    base_offset: Some(p.base_offset),
                    log_start_offset: log_start,
                },
            });
            false
        });
        out
    }

    /// Handles a produce as leader in one call: [`ReplicaManager::prepare_produce`], the
    /// append, then [`ReplicaManager::finish_produce`]. `acks=all` answers come later as
    /// [`ReplicaOutput::ProduceDone`] with `token` (or at once on an error, or when the
    /// append itself moves the high watermark past the batch). Earlier waiting produces
    /// that this append completes are answered by the next call returning outputs.
    pub fn handle_produce(
        &mut self,
        request: &ProduceRequest,
        token: ProduceToken,
        now_ms: i64,
    ) -> ProduceOutcome {
        match self.prepare_produce(request) {
            PreparedProduce::Answered(outcome) => outcome,
            PreparedProduce::Append(append) => {
                let appended = append.append(&request.records);
                self.finish_produce(request, token, &append, appended, now_ms)
            }
        }
    }

    /// The checks of a produce before its append (leadership, `min.insync.replicas`
    /// for `acks=all`): either the answer, or the append to carry out — which a driver
    /// may do without holding whatever guards this manager.
    pub fn prepare_produce(&mut self, request: &ProduceRequest) -> PreparedProduce {
        let replica = self.replicas.get_mut(&request.partition);
        let prepared = match replica {
            None => Err((ReplicaError::NotLeaderOrFollower { leader: None }, 0)),
            Some(replica) => replica
                .prepare_leader_append(request.acks == Acks::All)
                .map_err(|e| (e, replica.log().log_start_offset())),
        };
        match (request.acks, prepared) {
            (_, Ok(append)) => PreparedProduce::Append(append),
            (Acks::None, Err(_)) => PreparedProduce::Answered(ProduceOutcome::NoAnswer),
            (_, Err((error, log_start))) => PreparedProduce::Answered(ProduceOutcome::Done(
                produce_answer(&request.partition, Some(error), None, log_start),
            )),
        }
    }

    /// Records the append of a prepared produce and answers it, or (`acks=all`) holds it
    /// until the high watermark passes the batch. An `acks=all` produce whose leadership
    /// ended between its write and this call fails: its offsets may since hold other
    /// records. (An `acks=1` one succeeds, as in Kafka; a produce answered with an error
    /// may still have been written, and a retry may then duplicate it.)
    pub fn finish_produce(
        &mut self,
        request: &ProduceRequest,
        token: ProduceToken,
        append: &LeaderAppend,
        appended: std::result::Result<std::ops::Range<u64>, ReplicaError>,
        now_ms: i64,
    ) -> ProduceOutcome {
        let key = &request.partition;
        let Some(replica) = self.replicas.get_mut(key) else {
            let error = ReplicaError::NotLeaderOrFollower { leader: None };
            return match request.acks {
                Acks::None => ProduceOutcome::NoAnswer,
                _ => ProduceOutcome::Done(produce_answer(key, Some(error), None, 0)),
            };
        };
        let same_leadership = replica.leads_as(append);
        let result = replica.finish_leader_append(append, appended, now_ms);
        let log_start = replica.log().log_start_offset();
        let answer =
            |error, base| ProduceOutcome::Done(produce_answer(key, error, base, log_start));
        match (request.acks, result) {
            (Acks::None, _) => ProduceOutcome::NoAnswer,
            (_, Err(error)) => answer(Some(error), None),
            (Acks::Leader, Ok(range)) => answer(None, Some(range.start)),
            (Acks::All, Ok(range)) => {
                if !same_leadership {
                    // Leadership moved after the batch was written (even if this broker
                    // leads again): its waiting produces have failed, and so does this one.
                    return answer(Some(replica.not_leader()), None);
                }
                // Only this produce is answered here: other produces of the partition that
                // are now replicated get their own `ProduceDone` at the next tick or fetch
                // (answering the first of them in this one's place gave it another
                // batch's offsets and lost that batch's answer).
                let done = replica
                    .leader_mut()
                    .and_then(|leader| leader.check_replicated(range.end));
                if let Some(result) = done {
                    return answer(result.err(), Some(range.start));
                }
                self.pending.push(PendingProduce {
                    token,
                    partition: key.clone(),
                    base_offset: range.start,
                    required_offset: range.end,
                    deadline_ms: now_ms.saturating_add(i64::from(request.timeout_ms)),
                });
                // The append may move the high watermark past earlier waiting produces
                // too (a follower outside the ISR that no longer counts as caught up, a
                // leader alone in the ISR): theirs come out at
                // the next call that returns outputs.
                let mut outcome = ProduceOutcome::Waiting;
                for done in self.complete_pending(key) {
                    match done {
                        ReplicaOutput::ProduceDone { token: t, response } if t == token => {
                            outcome = ProduceOutcome::Done(response)
                        }
                        other => self.deferred.push(other),
                    }
                }
                outcome
            }
        }
    }

    /// Answers a fetch: records as leader, and — for a follower's fetch — ISR proposals
    /// and produces completed by the high watermark moving.
    pub fn handle_fetch(
        &mut self,
        request: &FetchRequest,
        now_ms: i64,
    ) -> (FetchResponse, Vec<ReplicaOutput>) {
        let mut out = std::mem::take(&mut self.deferred);
        let mut budget = request.max_bytes.max(1);
        let mut partitions = Vec::with_capacity(request.partitions.len());
        for fetch in &request.partitions {
            let Some(replica) = self.replicas.get_mut(&fetch.partition) else {
                partitions.push(unknown_partition(fetch));
                continue;
            };
            let (answer, change) = replica.answer_fetch(request.replica_id, fetch, budget, now_ms);
            budget = budget.saturating_sub(answer.records.len() as u32).max(1);
            if let Some(change) = change {
                out.push(ReplicaOutput::AlterIsr {
                    partition: fetch.partition.clone(),
                    change,
                });
            }
            if request.replica_id.is_some() {
                out.extend(self.complete_pending(&fetch.partition));
            }
            partitions.push(answer);
        }
        (FetchResponse { partitions }, out)
    }

    /// Answers offsets-for-leader-epoch as leader.
    pub fn handle_offsets_for_leader_epoch(
        &mut self,
        request: &OffsetsForLeaderEpochRequest,
    ) -> OffsetsForLeaderEpochResponse {
        let partitions = request
            .partitions
            .iter()
            .map(|q| match self.replicas.get_mut(&q.partition) {
                Some(replica) => replica.answer_epoch_query(q),
                None => super::messages::EpochAnswer {
                    partition: q.partition.clone(),
                    error: Some(ReplicaError::UnknownTopicOrPartition),
                    end: None,
                },
            })
            .collect();
        OffsetsForLeaderEpochResponse { partitions }
    }

    /// The ISR proposed for `key` was written with `partition_epoch`.
    pub fn isr_change_committed(
        &mut self,
        key: &PartitionKey,
        isr: Vec<BrokerId>,
        partition_epoch: i32,
        now_ms: i64,
    ) -> Vec<ReplicaOutput> {
        let Some(replica) = self.replicas.get_mut(key) else {
            return Vec::new();
        };
        let log = replica.log().clone();
        if let Some(leader) = replica.leader_mut() {
            leader.isr_change_committed(isr.clone(), partition_epoch, log.log_end_offset(), now_ms);
            log.set_high_watermark(leader.high_watermark());
        }
        let mut out = std::mem::take(&mut self.deferred);
        out.extend(self.complete_pending(key));
        out
    }

    /// The ISR proposed for `key` was refused (a newer state exists).
    pub fn isr_change_failed(&mut self, key: &PartitionKey) {
        if let Some(leader) = self.replicas.get_mut(key).and_then(|r| r.leader_mut()) {
            leader.isr_change_failed();
        }
    }

    /// Marks followers on gone brokers: the leader proposes them out of the ISR at the
    /// next [`ReplicaManager::tick`], and they count no more towards
    /// `min.insync.replicas` nor join the ISR again; until the ISR that drops them is
    /// committed they still hold the high watermark back. The set replaces the previous
    /// one and holds for every partition this broker leads, now or after a later state.
    pub fn set_fenced_brokers(&mut self, fenced: &[BrokerId]) {
        self.fenced = fenced.to_vec();
        for replica in self.replicas.values_mut() {
            if let Some(leader) = replica.leader_mut() {
                leader.set_fenced(fenced.to_vec());
            }
        }
    }

    /// Time passes: ISR shrinks are proposed, waiting produces time out, and followers
    /// send their next requests to their leaders.
    pub fn tick(&mut self, now_ms: i64) -> Vec<ReplicaOutput> {
        let mut out = std::mem::take(&mut self.deferred);
        let keys: Vec<PartitionKey> = self.replicas.keys().cloned().collect();
        for key in &keys {
            let Some(replica) = self.replicas.get_mut(key) else {
                continue;
            };
            let log = replica.log().clone();
            if let Some(leader) = replica.leader_mut() {
                let log_end = log.log_end_offset();
                if let Some(change) = leader.maybe_shrink_isr(now_ms, log_end) {
                    out.push(ReplicaOutput::AlterIsr {
                        partition: key.clone(),
                        change,
                    });
                }
                leader.maybe_advance_high_watermark(log_end, now_ms);
                log.set_high_watermark(leader.high_watermark());
                out.extend(self.complete_pending(key));
            }
        }
        let log_starts: BTreeMap<PartitionKey, u64> = self
            .replicas
            .iter()
            .map(|(k, r)| (k.clone(), r.log().log_start_offset()))
            .collect();
        self.pending.retain(|p| {
            if now_ms < p.deadline_ms {
                return true;
            }
            out.push(ReplicaOutput::ProduceDone {
                token: p.token,
                response: ProduceResponse {
                    partition: p.partition.clone(),
                    error: Some(ReplicaError::RequestTimedOut),
                    base_offset: Some(p.base_offset),
                    log_start_offset: log_starts.get(&p.partition).copied().unwrap_or(0),
                },
            });
            false
        });
        out.extend(self.follower_requests(now_ms));
        out
    }

    /// One request per leader with nothing in flight: offsets-for-leader-epoch for the
    /// partitions still truncating, else a fetch for those fetching.
    fn follower_requests(&mut self, now_ms: i64) -> Vec<ReplicaOutput> {
        let timeout = self.config.request_timeout_ms;
        self.in_flight.retain(|_, f| now_ms - f.sent_ms < timeout);
        let mut truncating: BTreeMap<BrokerId, Vec<PartitionKey>> = BTreeMap::new();
        let mut fetching: BTreeMap<BrokerId, Vec<PartitionKey>> = BTreeMap::new();
        for (key, replica) in &mut self.replicas {
            let log = replica.log().clone();
            let Some(follower) = replica.follower_mut() else {
                continue;
            };
            let Some(leader) = follower.leader else {
                continue;
            };
            if follower.phase == FollowerPhase::Truncating && log.latest_epoch().is_none() {
                // No epochs to compare (an empty log, or records from before epochs were
                // kept): the high watermark is the only safe point.
                let hw = log.high_watermark();
                match log.truncate_to(hw) {
                    Ok(_) => follower.phase = FollowerPhase::Fetching,
                    Err(_) => follower.phase = FollowerPhase::Failed,
                }
            }
            match follower.phase {
                FollowerPhase::Truncating => {
                    truncating.entry(leader).or_default().push(key.clone())
                }
                FollowerPhase::Fetching => fetching.entry(leader).or_default().push(key.clone()),
                FollowerPhase::Failed => {}
            }
        }
        let mut out = Vec::new();
        let leaders: Vec<BrokerId> = truncating.keys().chain(fetching.keys()).copied().collect();
        for leader in leaders {
            if self.in_flight.contains_key(&leader)
                || self.backoff_until.get(&leader).is_some_and(|&t| now_ms < t)
            {
                continue;
            }
            self.next_correlation += 1;
            let correlation_id = self.next_correlation;
            let mut asked = BTreeMap::new();
            let request = if let Some(keys) = truncating.get(&leader) {
                let partitions = keys
                    .iter()
                    .filter_map(|k| {
                        let r = self.replicas.get(k)?;
                        let epoch = r.log().latest_epoch()?;
                        asked.insert(k.clone(), (r.leader_epoch(), r.log().log_end_offset()));
                        Some(EpochQuery {
                            partition: k.clone(),
                            current_leader_epoch: Some(r.leader_epoch()),
                            leader_epoch: epoch,
                        })
                    })
                    .collect();
                ReplicaRequest::OffsetsForLeaderEpoch(OffsetsForLeaderEpochRequest {
                    replica_id: Some(self.me),
                    partitions,
                })
            } else {
                let Some(keys) = fetching.get(&leader) else {
                    continue;
                };
                let partitions = keys
                    .iter()
                    .filter_map(|k| {
                        let r = self.replicas.get(k)?;
                        let log = r.log();
                        let fetch_offset = log.log_end_offset();
                        asked.insert(k.clone(), (r.leader_epoch(), fetch_offset));
                        Some(FetchPartition {
                            partition: k.clone(),
                            current_leader_epoch: Some(r.leader_epoch()),
                            fetch_offset,
                            last_fetched_epoch: log.latest_epoch(),
                            log_start_offset: Some(log.log_start_offset()),
                            max_bytes: self.config.fetch_max_bytes,
                        })
                    })
                    .collect();
                ReplicaRequest::Fetch(FetchRequest {
                    replica_id: Some(self.me),
                    max_bytes: self.config.fetch_response_max_bytes,
                    partitions,
                })
            };
            self.in_flight.insert(
                leader,
                InFlight {
                    correlation_id,
                    sent_ms: now_ms,
                    partitions: asked,
                },
            );
            out.push(ReplicaOutput::Send {
                to: leader,
                correlation_id,
                request,
            });
        }
        out
    }

    /// A leader answered a follower request. Answers that are not to the request in
    /// flight (late, duplicated) are dropped, as are partitions whose state moved on
    /// since the request was sent.
    pub fn handle_response(
        &mut self,
        from: BrokerId,
        correlation_id: u64,
        response: ReplicaResponse,
        now_ms: i64,
    ) -> Vec<ReplicaOutput> {
        let Some(in_flight) = self.in_flight.get(&from) else {
            return Vec::new();
        };
        if in_flight.correlation_id != correlation_id {
            return Vec::new();
        }
        let asked = self
            .in_flight
            .remove(&from)
            .map(|f| f.partitions)
            .unwrap_or_default();
        let mut errors = false;
        match response {
            ReplicaResponse::OffsetsForLeaderEpoch(r) => {
                for answer in r.partitions {
                    let Some(replica) = self.current(&answer.partition, from, &asked) else {
                        continue;
                    };
                    if answer.error.is_some() {
                        errors = true;
                        continue;
                    }
                    truncate_to_divergence(replica, answer.end, true);
                }
            }
            ReplicaResponse::Fetch(r) => {
                for fetched in r.partitions {
                    // An answer to a fetch from another offset is not the answer to this
                    // one (an earlier run's request reusing this correlation id): its
                    // records could start past this log's end and leave a hole.
                    let fetched_at = asked.get(&fetched.partition).map(|a| a.1);
                    if fetched_at != Some(fetched.fetch_offset) {
                        continue;
                    }
                    let Some(replica) = self.current(&fetched.partition, from, &asked) else {
                        continue;
                    };
                    errors |= apply_fetched(replica, fetched);
                }
            }
        }
        if errors {
            self.backoff_until
                .insert(from, now_ms.saturating_add(self.config.fetch_backoff_ms));
        }
        Vec::new()
    }

    /// The follower replica of `key` if it still follows `leader` in the epoch and at the
    /// log end it was asked at.
    fn current(
        &mut self,
        key: &PartitionKey,
        leader: BrokerId,
        asked: &BTreeMap<PartitionKey, (i32, u64)>,
    ) -> Option<&mut Replica> {
        let &(epoch, log_end) = asked.get(key)?;
        let replica = self.replicas.get_mut(key)?;
        let same = replica.leader_epoch() == epoch
            && replica.log().log_end_offset() == log_end
            && replica
                .follower_mut()
                .is_some_and(|f| f.leader == Some(leader) && f.phase != FollowerPhase::Failed);
        same.then_some(replica)
    }
}

fn unknown_partition(fetch: &FetchPartition) -> FetchedPartition {
    FetchedPartition {
        partition: fetch.partition.clone(),
        error: Some(ReplicaError::UnknownTopicOrPartition),
        fetch_offset: fetch.fetch_offset,
        high_watermark: 0,
        log_start_offset: 0,
        log_may_hold_gaps: false,
        diverging_epoch: None,
        records: bytes::Bytes::new(),
    }
}

/// Truncates a follower to where its log and the leader's agree. From an
/// offsets-for-leader-epoch answer (`settle`), a completed truncation moves it to
/// fetching; from a fetch's diverging epoch it keeps fetching either way.
fn truncate_to_divergence(
    replica: &mut Replica,
    leader_end: Option<super::messages::EpochEndOffset>,
    settle: bool,
) {
    let log = replica.log().clone();
    let own = |e| {
        log.end_offset_for_epoch(e)
            .map(|(epoch, end_offset)| super::messages::EpochEndOffset { epoch, end_offset })
    };
    let t = truncation_offset(leader_end, log.log_end_offset(), log.high_watermark(), own);
    // Also at the log end: that drops an epoch this replica began as leader without
    // writing to it, which the new leader does not have. Kept, it makes every later fetch
    // diverge at the log end again (and truncate nothing): the follower never catches up.
    let result = log.truncate_to(t.offset).map(drop);
    if let Some(follower) = replica.follower_mut() {
        follower.phase = match result {
            Err(_) => FollowerPhase::Failed,
            Ok(()) if settle && t.completed => FollowerPhase::Fetching,
            Ok(()) if settle => FollowerPhase::Truncating,
            Ok(()) => FollowerPhase::Fetching,
        };
    }
}

/// Applies one partition of a fetch answer to a follower; returns whether it was an
/// error worth backing off for.
fn apply_fetched(replica: &mut Replica, fetched: FetchedPartition) -> bool {
    let log = replica.log().clone();
    if let Some(error) = fetched.error {
        if error == ReplicaError::OffsetOutOfRange {
            if log.log_end_offset() < fetched.log_start_offset {
                // Behind the leader's log start: start over from there.
                let result = log.truncate_fully_and_start_at(fetched.log_start_offset);
                if let (Err(_), Some(f)) = (result, replica.follower_mut()) {
                    f.phase = FollowerPhase::Failed;
                }
            } else if let Some(f) = replica.follower_mut() {
                // Ahead of the leader's log end: find the divergence point.
                f.phase = FollowerPhase::Truncating;
            }
            return false;
        }
        return true;
    }
    if let Some(diverging) = fetched.diverging_epoch {
        truncate_to_divergence(replica, Some(diverging), false);
        return false;
    }
    if !fetched.records.is_empty() {
        // Gaps are taken only from a leader whose log may hold them; records start at the
        // log end (the fetch offset, checked by `handle_response`) or, in such a log,
        // past it, where compaction left no batch.
        let mut appended = log.append_from_leader(&fetched.records, fetched.log_may_hold_gaps);
        if let Err(crate::Error::UnexpectedAppendOffset { first, .. }) = appended
            && first < fetched.log_start_offset
            && log.high_watermark() <= fetched.log_start_offset
        {
            // The leader's batch holding its log start begins below it and runs past this
            // log's end: this log's last batch ends elsewhere, so it was written in an
            // epoch the leader no longer knows (its epochs start at its log start), and
            // nothing here below the leader's start is kept there. Start over at the
            // leader's start, which takes the batch whole.
            appended = log
                .truncate_fully_and_start_at(fetched.log_start_offset)
                .and_then(|_| log.append_from_leader(&fetched.records, fetched.log_may_hold_gaps));
        }
        match appended {
            Ok(_) => {}
            Err(crate::Error::UnexpectedAppendOffset { .. }) => {
                // Records that do not continue the log (starting below its end, or past
                // it from a leader whose log holds no gaps) cannot be appended as they
                // are: dropped, and the follower fetches again.
                return false;
            }
            Err(_) if log.is_closed() => {
                // The log can no longer be trusted (a failed sync): this replica stops,
                // and its broker halts (Kafka takes the log dir offline).
                if let Some(f) = replica.follower_mut() {
                    f.phase = FollowerPhase::Failed;
                }
                return true;
            }
            Err(_) => {
                // A write that failed (a full disk) left the log as it was: fetch the
                // same records again after the backoff.
                return true;
            }
        }
    }
    let hw = fetched.high_watermark.min(log.log_end_offset());
    if hw > log.high_watermark() {
        log.set_high_watermark(hw);
    }
    // The leader's log start moved (retention, deleted records): follow it, up to this
    // replica's high watermark (Kafka's `maybeIncrementLogStartOffset`).
    let start = fetched.log_start_offset.min(log.high_watermark());
    if start > log.log_start_offset() && log.delete_records_before(start).is_err() {
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removing_a_replica_hands_out_the_answers_left_for_later() {
        let key = PartitionKey::new("t", 0);
        let mut manager = ReplicaManager::new(0, ReplicaConfig::default());
        let response = ProduceResponse {
            partition: key.clone(),
            error: None,
            base_offset: Some(3),
            log_start_offset: 0,
        };
        let done = ReplicaOutput::ProduceDone {
            token: ProduceToken(7),
            response,
        };
        manager.deferred.push(done.clone());
        assert_eq!(manager.remove_replica(&key), vec![done]);
        assert!(manager.tick(0).is_empty(), "handed out once");
    }
}
