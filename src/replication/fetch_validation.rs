//! The leader's checks on a fetch or epoch query, sans-IO: leader-epoch fencing, and where
//! a follower's log diverges from the leader's (Kafka's
//! `validateFetchOffsetAndMaybeGetDivergingEpoch`).

use super::messages::{EpochEndOffset, ReplicaError};

/// Checks the epoch a request believes current against the replica's `leader_epoch`:
/// none or equal passes; older is [`ReplicaError::FencedLeaderEpoch`], newer
/// [`ReplicaError::UnknownLeaderEpoch`].
pub fn check_leader_epoch(current: Option<i32>, leader_epoch: i32) -> Result<(), ReplicaError> {
    match current {
        Some(e) if e < leader_epoch => Err(ReplicaError::FencedLeaderEpoch),
        Some(e) if e > leader_epoch => Err(ReplicaError::UnknownLeaderEpoch),
        _ => Ok(()),
    }
}

/// Where a fetch stands against the leader's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchPosition {
    /// Read from the fetch offset.
    Read,
    /// The fetcher's log diverges: it truncates to at most this epoch's end, then fetches
    /// again. No records are returned.
    Diverging(EpochEndOffset),
}

/// Validates a fetch at `fetch_offset` whose last record had epoch `last_fetched_epoch`,
/// against a leader log `[log_start, log_end)` whose epoch cache answers
/// `end_offset_for(epoch)` (largest epoch ≤ asked, and its end). In Kafka's order: below
/// the log start is out of range even if the logs also diverge; then divergence; then
/// past the log end is out of range. A last fetched epoch the leader cannot place (newer
/// than its own) is out of range.
pub fn validate_fetch(
    fetch_offset: u64,
    last_fetched_epoch: Option<i32>,
    log_start: u64,
    log_end: u64,
    end_offset_for: impl Fn(i32) -> Option<EpochEndOffset>,
) -> Result<FetchPosition, ReplicaError> {
    if fetch_offset < log_start {
        return Err(ReplicaError::OffsetOutOfRange);
    }
    if let Some(epoch) = last_fetched_epoch {
        let end = end_offset_for(epoch).ok_or(ReplicaError::OffsetOutOfRange)?;
        if end.epoch < epoch || end.end_offset < fetch_offset {
            return Ok(FetchPosition::Diverging(end));
        }
    }
    if fetch_offset > log_end {
        return Err(ReplicaError::OffsetOutOfRange);
    }
    Ok(FetchPosition::Read)
}
