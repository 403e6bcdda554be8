//! [`LeaderState`]: one partition's leader side, sans-IO — the followers it tracks, the ISR
//! (committed, and the change in flight), the high watermark, and the `acks=all` /
//! `min.insync.replicas` gates (S13).
//!
//! ISR changes are two-phase as in Kafka: the leader proposes a new ISR (returned as an
//! [`IsrChange`]), the driver writes it to the consensus store with compare-and-set, and
//! reports back with [`LeaderState::isr_change_committed`] or
//! [`LeaderState::isr_change_failed`]. Only one change is in flight at a time. While an
//! expansion is pending the "maximal" ISR already counts the new member (so the high
//! watermark waits for it); a pending shrink still counts the leaving one.

use std::collections::BTreeMap;

use super::messages::{BrokerId, ReplicaError};
use super::partition_state::PartitionState;
use super::remote_replica::RemoteReplica;

/// The settings a leader reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderConfig {
    /// `min.insync.replicas` (1).
    pub min_insync_replicas: usize,
    /// `replica.lag.time.max.ms` (30 s).
    pub replica_lag_time_max_ms: i64,
}

impl Default for LeaderConfig {
    fn default() -> Self {
        Self {
            min_insync_replicas: 1,
            replica_lag_time_max_ms: 30_000,
        }
    }
}

/// A proposed ISR, to be written to the consensus store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChange {
    /// The new ISR, leader first then in assignment order.
    pub isr: Vec<BrokerId>,
    /// The partition epoch the proposal is based on (compare-and-set).
    pub partition_epoch: i32,
}

/// The leader side of one partition.
#[derive(Debug, Clone)]
pub struct LeaderState {
    me: BrokerId,
    config: LeaderConfig,
    replicas: Vec<BrokerId>,
    leader_epoch: i32,
    partition_epoch: i32,
    /// The log end offset when this broker became leader of `leader_epoch`: a follower
    /// joins the ISR only once it has reached it.
    epoch_start_offset: u64,
    isr: Vec<BrokerId>,
    pending: Option<Vec<BrokerId>>,
    followers: BTreeMap<BrokerId, RemoteReplica>,
    /// Followers that must not hold the high watermark back or join the ISR (their broker
    /// is gone or shutting down).
    fenced: Vec<BrokerId>,
    high_watermark: u64,
}

impl LeaderState {
    /// `me` becomes leader of `state` with its log ending at `log_end_offset` and its high
    /// watermark checkpointed at `high_watermark` (capped at the log end). When `previous`
    /// led the same epoch (a repeat or a partition-epoch-only change, e.g. reassignment),
    /// the followers' fetch state and the epoch start offset are kept; otherwise every
    /// follower starts unknown, caught up as of `now_ms` if in the ISR.
    pub fn new(
        me: BrokerId,
        state: &PartitionState,
        config: LeaderConfig,
        log_end_offset: u64,
        high_watermark: u64,
        now_ms: i64,
        previous: Option<&LeaderState>,
    ) -> Self {
        let same_epoch = previous.filter(|p| p.leader_epoch == state.leader_epoch);
        let followers = state
            .replicas
            .iter()
            .filter(|&&b| b != me)
            .map(|&b| {
                let kept = same_epoch.and_then(|p| p.followers.get(&b)).cloned();
                let replica = kept.unwrap_or_else(|| {
                    let mut r = RemoteReplica::new(b);
                    r.reset(now_ms, state.in_isr(b));
                    r
                });
                (b, replica)
            })
            .collect();
        Self {
            me,
            config,
            replicas: state.replicas.clone(),
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
            epoch_start_offset: same_epoch.map_or(log_end_offset, |p| p.epoch_start_offset),
            isr: state.isr.clone(),
            pending: None,
            followers,
            fenced: Vec::new(),
            high_watermark: high_watermark.min(log_end_offset),
        }
    }

    /// The leader epoch.
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    /// The partition epoch the committed ISR belongs to.
    pub fn partition_epoch(&self) -> i32 {
        self.partition_epoch
    }

    /// The log end offset at which this leader epoch began.
    pub fn epoch_start_offset(&self) -> u64 {
        self.epoch_start_offset
    }

    /// The high watermark: every offset below it is on every replica of the ISR.
    pub fn high_watermark(&self) -> u64 {
        self.high_watermark
    }

    /// The committed ISR (as the consensus store holds it).
    pub fn isr(&self) -> &[BrokerId] {
        &self.isr
    }

    /// The ISR counting a change in flight: an expansion's new member is in, a shrink's
    /// leaving member still in.
    pub fn maximal_isr(&self) -> Vec<BrokerId> {
        match &self.pending {
            Some(proposed) => self.ordered(|b| self.isr.contains(&b) || proposed.contains(&b)),
            None => self.isr.clone(),
        }
    }

    /// Whether an ISR change is in flight.
    pub fn has_pending_isr_change(&self) -> bool {
        self.pending.is_some()
    }

    /// What the leader knows of follower `broker`.
    pub fn follower(&self, broker: BrokerId) -> Option<&RemoteReplica> {
        self.followers.get(&broker)
    }

    /// Marks followers whose broker is gone or shutting down: they are proposed out of the
    /// ISR, do not join it again nor count towards `min.insync.replicas`, and hold the
    /// high watermark back only while the committed ISR still holds them.
    pub fn set_fenced(&mut self, fenced: Vec<BrokerId>) {
        self.fenced = fenced;
    }

    /// `min(min.insync.replicas, replication factor)`.
    pub fn effective_min_isr(&self) -> usize {
        self.config
            .min_insync_replicas
            .min(self.replicas.len())
            .max(1)
    }

    /// Fewer in-sync replicas than assigned.
    pub fn is_under_replicated(&self) -> bool {
        self.isr.len() < self.replicas.len()
    }

    /// Exactly `min.insync.replicas` in sync.
    pub fn is_at_min_isr(&self) -> bool {
        self.isr.len() == self.config.min_insync_replicas
    }

    /// Fewer in sync than `min.insync.replicas`.
    pub fn is_under_min_isr(&self) -> bool {
        self.isr.len() < self.effective_min_isr()
    }

    /// ISR members not on a fenced (gone) broker: a fenced follower still holds the high
    /// watermark back until the ISR drops it, but it keeps no live copy, so it does not
    /// count towards `min.insync.replicas`.
    fn live_isr_len(&self) -> usize {
        self.isr.iter().filter(|b| !self.fenced.contains(b)).count()
    }

    /// The gate before an `acks=all` append: [`ReplicaError::NotEnoughReplicas`] when the
    /// committed ISR is smaller than the effective minimum (nothing may be written).
    pub fn check_before_append(&self, acks_all: bool) -> Result<(), ReplicaError> {
        if acks_all && self.live_isr_len() < self.effective_min_isr() {
            return Err(ReplicaError::NotEnoughReplicas);
        }
        Ok(())
    }

    /// Whether an `acks=all` append ending at `required_offset` (its last offset + 1) is
    /// done: `None` while the high watermark is below it; then `Ok` or, if the ISR has
    /// shrunk below the minimum meanwhile, [`ReplicaError::NotEnoughReplicasAfterAppend`].
    /// Below it the committed ISR also fails the append at once: the high watermark does
    /// not move while the committed ISR is under `min.insync.replicas`, so waiting could
    /// only end in a timeout.
    pub fn check_replicated(&self, required_offset: u64) -> Option<Result<(), ReplicaError>> {
        if self.high_watermark < required_offset {
            return self
                .is_under_min_isr()
                .then_some(Err(ReplicaError::NotEnoughReplicasAfterAppend));
        }
        let live = self
            .maximal_isr()
            .iter()
            .filter(|b| !self.fenced.contains(b))
            .count();
        if live < self.effective_min_isr() {
            return Some(Err(ReplicaError::NotEnoughReplicasAfterAppend));
        }
        Some(Ok(()))
    }

    /// A follower fetched at `fetch_offset` while the leader's log ended at
    /// `leader_log_end`: updates its state, proposes adding it to the ISR if it has caught
    /// up (to the high watermark and to this epoch's start), and moves the high watermark.
    /// Returns the ISR proposal, if one is made. A fetch from a broker that is not a
    /// replica changes nothing (the caller answers it with an error first).
    pub fn on_follower_fetch(
        &mut self,
        broker: BrokerId,
        fetch_offset: u64,
        log_start_offset: Option<u64>,
        now_ms: i64,
        leader_log_end: u64,
    ) -> Option<IsrChange> {
        let replica = self.followers.get_mut(&broker)?;
        replica.update_fetch_state(fetch_offset, log_start_offset, now_ms, leader_log_end);
        let change = self.maybe_expand_isr(broker, fetch_offset);
        self.maybe_advance_high_watermark(leader_log_end, now_ms);
        change
    }

    fn maybe_expand_isr(&mut self, broker: BrokerId, fetch_offset: u64) -> Option<IsrChange> {
        if self.pending.is_some()
            || self.isr.contains(&broker)
            || self.fenced.contains(&broker)
            || fetch_offset < self.high_watermark
            || fetch_offset < self.epoch_start_offset
        {
            return None;
        }
        let isr = self.ordered(|b| self.isr.contains(&b) || b == broker);
        Some(self.propose(isr))
    }

    /// Proposes removing followers that have not caught up within
    /// `replica.lag.time.max.ms` (and fenced ones) from the ISR; `None` when all are in
    /// sync or a change is already in flight.
    pub fn maybe_shrink_isr(&mut self, now_ms: i64, leader_log_end: u64) -> Option<IsrChange> {
        if self.pending.is_some() {
            return None;
        }
        let lag = self.config.replica_lag_time_max_ms;
        let out_of_sync: Vec<BrokerId> = self
            .isr
            .iter()
            .copied()
            .filter(|&b| b != self.me)
            .filter(|b| {
                self.fenced.contains(b)
                    || self
                        .followers
                        .get(b)
                        .is_none_or(|r| !r.is_caught_up(leader_log_end, now_ms, lag))
            })
            .collect();
        if out_of_sync.is_empty() {
            return None;
        }
        let isr = self.ordered(|b| self.isr.contains(&b) && !out_of_sync.contains(&b));
        Some(self.propose(isr))
    }

    fn propose(&mut self, isr: Vec<BrokerId>) -> IsrChange {
        self.pending = Some(isr.clone());
        IsrChange {
            isr,
            partition_epoch: self.partition_epoch,
        }
    }

    /// The leader, then the other brokers of `keep` in assignment order.
    fn ordered(&self, keep: impl Fn(BrokerId) -> bool) -> Vec<BrokerId> {
        let mut isr = vec![self.me];
        isr.extend(
            self.replicas
                .iter()
                .copied()
                .filter(|&b| b != self.me && keep(b)),
        );
        isr
    }

    /// The proposed ISR was written with partition epoch `partition_epoch`; the high
    /// watermark may move (a shrink can let it jump to the log end).
    pub fn isr_change_committed(
        &mut self,
        isr: Vec<BrokerId>,
        partition_epoch: i32,
        leader_log_end: u64,
        now_ms: i64,
    ) {
        self.pending = None;
        self.isr = isr;
        self.partition_epoch = partition_epoch;
        self.maybe_advance_high_watermark(leader_log_end, now_ms);
    }

    /// The proposal was refused (a newer state exists): the committed ISR stays and the
    /// driver awaits the new partition state; a later proposal may be made after it.
    pub fn isr_change_failed(&mut self) {
        self.pending = None;
    }

    /// Recomputes the high watermark: the smallest log end offset among the leader and
    /// every follower that is in the maximal ISR, or caught up and not fenced. It never
    /// moves back, never passes the leader's log end, and does not move while the
    /// committed ISR is below `min.insync.replicas` (Kafka 4). Returns the new value if it
    /// moved.
    pub fn maybe_advance_high_watermark(
        &mut self,
        leader_log_end: u64,
        now_ms: i64,
    ) -> Option<u64> {
        if self.isr.len() < self.effective_min_isr() {
            return None;
        }
        let maximal = self.maximal_isr();
        let lag = self.config.replica_lag_time_max_ms;
        let mut candidate = leader_log_end;
        for (b, r) in &self.followers {
            // Every member of the maximal ISR holds it back, fenced or not: a fenced
            // member stays electable until the ISR that drops it is committed, so
            // passing it would acknowledge records a clean election could lose. A
            // follower outside the ISR counts once it has fetched in this epoch and is
            // caught up, unless fenced (Kafka: the ISR may have just shrunk past it).
            let counts = maximal.contains(b)
                || (!self.fenced.contains(b)
                    && r.log_end_offset.is_some()
                    && r.is_caught_up(leader_log_end, now_ms, lag));
            if counts {
                candidate = candidate.min(r.log_end_offset.unwrap_or(0));
            }
        }
        if candidate > self.high_watermark {
            self.high_watermark = candidate;
            Some(candidate)
        } else {
            None
        }
    }
}
