//! [`Replica`]: one partition hosted on a broker — its log, the partition state it last
//! applied, and its role (leader, follower, or neither), with the leader's answers to
//! fetches, offsets-for-leader-epoch and produce requests. A leader's append runs outside
//! the broker's lock through a [`LeaderAppend`], fenced by the replica's leader gate.

use std::ops::Range;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parking_lot::RwLock;

use super::fetch_validation::{FetchPosition, check_leader_epoch, validate_fetch};
use super::leader::{IsrChange, LeaderConfig, LeaderState};
use super::messages::{
    BrokerId, EpochAnswer, EpochEndOffset, EpochQuery, FetchPartition, FetchedPartition,
    PartitionKey, ReplicaError,
};
use super::partition_state::PartitionState;
use crate::error::{Error, Result};
use crate::log::{Partition, ReadBound, ReadOptions};

/// Where a follower is in catching up with its leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowerPhase {
    /// Finding the divergence point with offsets-for-leader-epoch before fetching.
    Truncating,
    /// Fetching from its log end.
    Fetching,
    /// Its log closed under it (a failed sync or truncation: see
    /// [`Partition::is_closed`]); waits for a new partition state, and its broker halts.
    Failed,
}

/// A follower's view of its leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowerState {
    /// The leader, if the partition has one.
    pub leader: Option<BrokerId>,
    /// Its leader epoch.
    pub leader_epoch: i32,
    /// Where the follower is.
    pub phase: FollowerPhase,
}

/// A replica's role.
#[derive(Debug, Clone)]
pub enum Role {
    /// This broker leads the partition.
    Leader(LeaderState),
    /// This broker follows the leader.
    Follower(FollowerState),
    /// This broker is not (or no longer) a replica, or the partition is offline and this
    /// broker cannot lead it.
    None,
}

/// One partition hosted on a broker.
#[derive(Debug)]
pub struct Replica {
    key: PartitionKey,
    me: BrokerId,
    log: Arc<Partition>,
    state: Option<PartitionState>,
    role: Role,
    /// `Some(epoch)` while this broker leads in `epoch`, `None` otherwise. A
    /// [`LeaderAppend`] holds it for reading while it writes, and writes only if it still
    /// holds the epoch the append was prepared in. A change of role first stores `None`
    /// (taking it for writing, which waits out the write in flight) and the new value
    /// once the role is set, so no append of an old leadership lands after the replica
    /// became a follower or led again (Kafka's `leaderIsrUpdateLock`).
    gate: Arc<RwLock<Option<i32>>>,
}

/// A produce's append to the leader's log, prepared under the broker's lock and carried
/// out without it, so that fetches are answered while the batch is written.
#[derive(Debug)]
pub struct LeaderAppend {
    log: Arc<Partition>,
    gate: Arc<RwLock<Option<i32>>>,
    epoch: i32,
}

impl LeaderAppend {
    /// Appends `records` (one encoded batch) if this broker still leads in the epoch the
    /// append was prepared in; otherwise nothing is written and the answer is
    /// `NotLeaderOrFollower`.
    pub fn append(&self, records: &[u8]) -> Result<Range<u64>, ReplicaError> {
        let gate = self.gate.read();
        if *gate != Some(self.epoch) {
            return Err(ReplicaError::NotLeaderOrFollower { leader: None });
        }
        self.log
            .append_encoded(records)
            .map_err(|e| replica_error(&e))
    }
}

/// Maps a storage error to what a producer or follower is told.
pub(crate) fn replica_error(error: &Error) -> ReplicaError {
    match error {
        Error::MessageTooLarge { .. } | Error::BatchLargerThanSegment { .. } => {
            ReplicaError::MessageTooLarge
        }
        Error::InvalidBatch { .. } | Error::UnsupportedCompression { .. } => {
            ReplicaError::CorruptMessage
        }
        Error::EmptyBatch | Error::MissingKey { .. } => ReplicaError::InvalidRecord,
        Error::OffsetOutOfRange { .. } => ReplicaError::OffsetOutOfRange,
        Error::UnexpectedAppendOffset { .. } => ReplicaError::InvalidRequest,
        _ => ReplicaError::StorageError,
    }
}

impl Replica {
    /// Partition `key` hosted by broker `me` on `log`, with no role until a state is
    /// applied.
    pub fn new(key: PartitionKey, me: BrokerId, log: Arc<Partition>) -> Self {
        Self {
            key,
            me,
            log,
            state: None,
            role: Role::None,
            gate: Arc::new(RwLock::new(None)),
        }
    }

    /// The partition.
    pub fn key(&self) -> &PartitionKey {
        &self.key
    }

    /// The local log.
    pub fn log(&self) -> &Arc<Partition> {
        &self.log
    }

    /// The partition state last applied.
    pub fn state(&self) -> Option<&PartitionState> {
        self.state.as_ref()
    }

    /// The role.
    pub fn role(&self) -> &Role {
        &self.role
    }

    /// The leader as this replica knows it.
    pub fn leader(&self) -> Option<BrokerId> {
        self.state.as_ref().and_then(|s| s.leader)
    }

    /// The leader epoch of the state last applied (-1 before any).
    pub fn leader_epoch(&self) -> i32 {
        self.state.as_ref().map_or(-1, |s| s.leader_epoch)
    }

    pub(crate) fn leader_mut(&mut self) -> Option<&mut LeaderState> {
        match &mut self.role {
            Role::Leader(l) => Some(l),
            _ => None,
        }
    }

    pub(crate) fn follower_mut(&mut self) -> Option<&mut FollowerState> {
        match &mut self.role {
            Role::Follower(f) => Some(f),
            _ => None,
        }
    }

    /// Applies a partition state from the consensus store. Older states are ignored (a
    /// lower leader epoch, or the same one with a lower partition epoch); returns whether
    /// anything changed and whether this broker stopped leading (pending produces then
    /// fail).
    pub fn apply(
        &mut self,
        state: PartitionState,
        config: LeaderConfig,
        now_ms: i64,
    ) -> Result<Applied> {
        if let Some(current) = &self.state {
            let older = state.leader_epoch < current.leader_epoch
                || (state.leader_epoch == current.leader_epoch
                    && state.partition_epoch < current.partition_epoch);
            if older || *current == state {
                return Ok(Applied::Unchanged);
            }
        }
        // Unless this broker goes on leading in the same epoch (an ISR change), wait for
        // an append in flight and stop new ones until the new role is set.
        let leads_on = state.leader == Some(self.me)
            && matches!(&self.role, Role::Leader(l) if l.leader_epoch() == state.leader_epoch);
        if !leads_on {
            *self.gate.write() = None;
        }
        let was_leader = matches!(self.role, Role::Leader(_));
        let previous_epoch = self.leader_epoch();
        if state.leader == Some(self.me) {
            let previous = match &self.role {
                Role::Leader(l) if l.leader_epoch() == state.leader_epoch => Some(l.clone()),
                _ => None,
            };
            if previous.is_none()
                && self.log.latest_epoch() < Some(state.leader_epoch)
                && let Err(e) = self.log.assign_leader_epoch(state.leader_epoch)
            {
                // The role is unchanged: a leader of the old epoch goes on writing.
                if let Role::Leader(l) = &self.role {
                    *self.gate.write() = Some(l.leader_epoch());
                }
                return Err(e);
            }
            let mut leader = LeaderState::new(
                self.me,
                &state,
                config,
                self.log.log_end_offset(),
                self.log.high_watermark(),
                now_ms,
                previous.as_ref(),
            );
            // As Kafka's makeLeader: an ISR of this replica alone (or followers already
            // known to be caught up) moves the high watermark at once, not at the next tick.
            leader.maybe_advance_high_watermark(self.log.log_end_offset(), now_ms);
            self.log.set_high_watermark(leader.high_watermark());
            self.role = Role::Leader(leader);
            if *self.gate.read() != Some(state.leader_epoch) {
                *self.gate.write() = Some(state.leader_epoch);
            }
            self.state = Some(state);
            return Ok(Applied::Leader);
        }
        let keep_phase = match &self.role {
            Role::Follower(f) if state.leader_epoch == previous_epoch => Some(f.phase),
            _ => None,
        };
        self.role = if state.is_replica(self.me) {
            Role::Follower(FollowerState {
                leader: state.leader,
                leader_epoch: state.leader_epoch,
                phase: keep_phase.unwrap_or(FollowerPhase::Truncating),
            })
        } else {
            Role::None
        };
        self.state = Some(state);
        Ok(if was_leader {
            Applied::StoppedLeading
        } else {
            Applied::Follower
        })
    }

    /// The error a request for the leader gets here: `NotLeaderOrFollower` with the
    /// leader this broker knows of.
    pub fn not_leader(&self) -> ReplicaError {
        ReplicaError::NotLeaderOrFollower {
            leader: self.leader(),
        }
    }

    /// The leader's state, or the error a request to a non-leader gets, after checking
    /// the request's epoch (a mismatched epoch is reported first, as in Kafka).
    fn leading(
        &mut self,
        current_leader_epoch: Option<i32>,
    ) -> Result<&mut LeaderState, ReplicaError> {
        let epoch = self.leader_epoch();
        if !matches!(self.role, Role::Leader(_)) {
            return Err(match current_leader_epoch {
                Some(e) if e != epoch => check_leader_epoch(Some(e), epoch)
                    .err()
                    .unwrap_or(self.not_leader()),
                _ => self.not_leader(),
            });
        }
        check_leader_epoch(current_leader_epoch, epoch)?;
        self.leader_mut()
            .ok_or(ReplicaError::NotLeaderOrFollower { leader: None })
    }

    fn end_offset_for(&self, epoch: i32) -> Option<EpochEndOffset> {
        self.log
            .end_offset_for_epoch(epoch)
            .map(|(epoch, end_offset)| EpochEndOffset { epoch, end_offset })
    }

    /// Answers one partition of an offsets-for-leader-epoch request (leader only).
    pub fn answer_epoch_query(&mut self, query: &EpochQuery) -> EpochAnswer {
        let result = self
            .leading(query.current_leader_epoch)
            .map(|_| ())
            .map(|()| self.end_offset_for(query.leader_epoch));
        match result {
            Ok(end) => EpochAnswer {
                partition: self.key.clone(),
                error: None,
                end,
            },
            Err(error) => EpochAnswer {
                partition: self.key.clone(),
                error: Some(error),
                end: None,
            },
        }
    }

    /// Answers one partition of a fetch. A follower (`replica_id`) reads to the log end
    /// and its fetch moves the ISR and the high watermark (an ISR proposal may come out);
    /// a consumer reads to the high watermark. The response carries the high watermark as
    /// it was before this fetch.
    pub fn answer_fetch(
        &mut self,
        replica_id: Option<BrokerId>,
        fetch: &FetchPartition,
        max_bytes: u32,
        now_ms: i64,
    ) -> (FetchedPartition, Option<IsrChange>) {
        let log = self.log.clone();
        let mut answer = FetchedPartition {
            partition: self.key.clone(),
            error: None,
            fetch_offset: fetch.fetch_offset,
            high_watermark: log.high_watermark(),
            log_start_offset: log.log_start_offset(),
            log_may_hold_gaps: log.may_hold_offset_gaps(),
            diverging_epoch: None,
            records: Bytes::new(),
        };
        if let Some(id) = replica_id {
            let is_replica = self.state.as_ref().is_some_and(|s| s.is_replica(id));
            if !is_replica || id == self.me {
                answer.error = Some(if fetch.current_leader_epoch.is_some() {
                    ReplicaError::UnknownLeaderEpoch
                } else {
                    self.not_leader()
                });
                return (answer, None);
            }
        }
        let leader_epoch_ok = self.leading(fetch.current_leader_epoch).map(|_| ());
        if let Err(error) = leader_epoch_ok {
            answer.error = Some(error);
            return (answer, None);
        }
        let log_end = log.log_end_offset();
        let position = validate_fetch(
            fetch.fetch_offset,
            fetch.last_fetched_epoch,
            log.log_start_offset(),
            log_end,
            |e| self.end_offset_for(e),
        );
        match position {
            Err(error) => {
                answer.error = Some(error);
                return (answer, None);
            }
            Ok(FetchPosition::Diverging(end)) => {
                answer.diverging_epoch = Some(end);
                return (answer, None);
            }
            Ok(FetchPosition::Read) => {}
        }
        let bound = if replica_id.is_some() {
            ReadBound::LogEnd
        } else {
            ReadBound::HighWatermark
        };
        let limit = max_bytes.min(fetch.max_bytes).max(1) as usize;
        match read_batches(&log, fetch.fetch_offset, bound, limit) {
            Ok(records) => answer.records = records,
            Err(e) => {
                answer.error = Some(replica_error(&e));
                return (answer, None);
            }
        }
        let mut change = None;
        if let (Some(id), Some(leader)) = (replica_id, self.leader_mut()) {
            change = leader.on_follower_fetch(
                id,
                fetch.fetch_offset,
                fetch.log_start_offset,
                now_ms,
                log_end,
            );
            log.set_high_watermark(leader.high_watermark());
        }
        (answer, change)
    }

    /// Prepares a producer's append as leader: the `acks=all` gate first (nothing is
    /// written on failure); [`LeaderAppend::append`] then writes without the broker's
    /// lock, and [`Replica::finish_leader_append`] records it.
    pub fn prepare_leader_append(&mut self, acks_all: bool) -> Result<LeaderAppend, ReplicaError> {
        let epoch = self.leader_epoch();
        self.leading(None)?.check_before_append(acks_all)?;
        Ok(LeaderAppend {
            log: self.log.clone(),
            gate: self.gate.clone(),
            epoch,
        })
    }

    /// Whether this replica still leads in the leadership `append` was prepared in: the
    /// same replica (not one re-created since) in the same epoch.
    pub fn leads_as(&self, append: &LeaderAppend) -> bool {
        Arc::ptr_eq(&self.gate, &append.gate)
            && matches!(&self.role, Role::Leader(l) if l.leader_epoch() == append.epoch)
    }

    /// Records a leader append: the high watermark moves at once when the leader is alone
    /// in the ISR. A refused append is answered with the current leader. An append whose
    /// leadership ended meanwhile ([`Replica::leads_as`]) moves nothing.
    pub fn finish_leader_append(
        &mut self,
        append: &LeaderAppend,
        appended: Result<Range<u64>, ReplicaError>,
        now_ms: i64,
    ) -> Result<Range<u64>, ReplicaError> {
        let range = match appended {
            Err(ReplicaError::NotLeaderOrFollower { .. }) => return Err(self.not_leader()),
            other => other?,
        };
        if !self.leads_as(append) {
            return Ok(range);
        }
        let log = self.log.clone();
        if let Some(leader) = self.leader_mut() {
            leader.maybe_advance_high_watermark(log.log_end_offset(), now_ms);
            log.set_high_watermark(leader.high_watermark());
        }
        Ok(range)
    }
}

impl Drop for Replica {
    /// A replica no longer hosted takes no more appends prepared while it led.
    fn drop(&mut self) {
        *self.gate.write() = None;
    }
}

/// What applying a partition state did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The state was old or a repeat.
    Unchanged,
    /// This broker leads.
    Leader,
    /// This broker follows (or is no longer a replica).
    Follower,
    /// This broker led and no longer does.
    StoppedLeading,
}

/// Whole batches from `offset` up to `bound`, at most `max_bytes` (at least one batch);
/// to the log end (a follower's) without checking their CRC, which the follower does.
fn read_batches(log: &Partition, offset: u64, bound: ReadBound, max_bytes: usize) -> Result<Bytes> {
    let hw = log.high_watermark();
    if bound == ReadBound::HighWatermark && offset >= hw {
        return Ok(Bytes::new());
    }
    // A follower checks every batch's CRC before appending it: the leader does not check
    // them first (as Kafka's leaders send their files); a consumer's batches are checked.
    let follower = bound == ReadBound::LogEnd;
    let mut reader = log.read(
        offset,
        ReadOptions::default()
            .bound(bound)
            .max_bytes(max_bytes)
            .skip_batch_crc(follower),
    )?;
    let Some(first) = reader.next_batch().transpose()? else {
        return Ok(Bytes::new());
    };
    let Some(second) = reader.next_batch().transpose()? else {
        return Ok(first);
    };
    let mut batches = vec![first, second];
    while let Some(batch) = reader.next_batch().transpose()? {
        batches.push(batch);
    }
    // Batches end to end in the reader's current chunk (the segment's map) are handed out
    // as one slice of it; otherwise (they come from several chunks: across segments, or
    // read positionally) they are copied into a buffer of their exact size.
    if let Some(joined) = reader.joined(&batches) {
        return Ok(joined);
    }
    let mut all = BytesMut::with_capacity(batches.iter().map(Bytes::len).sum());
    for batch in &batches {
        all.extend_from_slice(batch);
    }
    Ok(all.freeze())
}
