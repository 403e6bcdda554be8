//! The follower's truncation decision, sans-IO (Kafka's `getOffsetTruncationState`): given
//! the leader's answer for an epoch — from offsets-for-leader-epoch, or a fetch response's
//! diverging epoch — and the follower's own epoch cache, where to cut the follower's log.
//! Never blindly to the high watermark when the leader gave an answer: that loses
//! acknowledged records in known scenarios.

use super::messages::EpochEndOffset;

/// Where to truncate, and whether that settles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncation {
    /// Cut the log here (records at and above it go).
    pub offset: u64,
    /// `false` when the follower's epoch differs from the leader's answer: after cutting,
    /// ask the leader again for the follower's epoch (a second round trip).
    pub completed: bool,
}

/// The truncation for the leader's `answer` (`None` is Kafka's UNDEFINED: the leader
/// knows no such epoch) by a follower whose log ends at `log_end`, whose high watermark is
/// `high_watermark`, and whose own epoch cache answers `own_end_for(epoch)`.
///
/// - No answer: cut to the high watermark (the only offset known to be safe).
/// - The follower has no epoch at or below the leader's: cut to the smaller of the leader's
///   end and the follower's log end.
/// - The follower's largest epoch at or below it is the same epoch: cut to the smaller of
///   the two ends; done.
/// - It is an older epoch: cut to the smaller end, then ask again for that epoch.
pub fn truncation_offset(
    answer: Option<EpochEndOffset>,
    log_end: u64,
    high_watermark: u64,
    own_end_for: impl Fn(i32) -> Option<EpochEndOffset>,
) -> Truncation {
    let Some(leader) = answer else {
        return Truncation {
            offset: high_watermark.min(log_end),
            completed: true,
        };
    };
    match own_end_for(leader.epoch) {
        None => Truncation {
            offset: leader.end_offset.min(log_end),
            completed: true,
        },
        Some(own) => Truncation {
            offset: leader.end_offset.min(own.end_offset).min(log_end),
            completed: own.epoch == leader.epoch,
        },
    }
}
