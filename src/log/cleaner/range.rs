//! Which part of a log a cleaning pass may touch (Kafka's `LogCleanerManager.cleanableOffsets`
//! and `LogToClean`), and how its segments are grouped into output segments
//! (`groupSegmentsBySize`).
//!
//! - First dirty offset: the checkpoint, reset to the log start when it is below the log
//!   start or above the log end.
//! - First uncleanable offset: min(high watermark, active segment's base, base of the first
//!   dirty segment whose largest timestamp is newer than `now − min.compaction.lag.ms`).
//! - Cleanable segments: the non-active segments, oldest first, that lie wholly below the
//!   first uncleanable offset; `clean_end` is the base of the first segment after them.
//! - Dirty ratio: bytes of cleanable segments holding dirty offsets / bytes of all
//!   cleanable segments.

use std::sync::Arc;

use crate::segment::Segment;

/// Offsets and segments a cleaning pass works on.
#[derive(Debug, Clone)]
pub(crate) struct CleanableRange {
    /// First offset not yet compacted (after any reset).
    pub(crate) first_dirty: u64,
    /// Whether `first_dirty` was reset from the stored checkpoint.
    pub(crate) reset: bool,
    /// End of the cleanable segments: the base of the first segment not cleanable.
    pub(crate) clean_end: u64,
    /// The cleanable segments, oldest first.
    pub(crate) segments: Vec<Arc<Segment>>,
}

/// The log's offsets that bound a cleaning pass.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogOffsets {
    pub(crate) log_start: u64,
    pub(crate) log_end: u64,
    pub(crate) high_watermark: u64,
    /// The stored first dirty offset, if any.
    pub(crate) checkpoint: Option<u64>,
    pub(crate) now_ms: i64,
    pub(crate) min_compaction_lag_ms: i64,
}

impl CleanableRange {
    /// The range of `segments` (all of the log's, oldest first; the last is active).
    pub(crate) fn compute(segments: &[Arc<Segment>], log: &LogOffsets) -> Self {
        let stored = log.checkpoint.unwrap_or(log.log_start);
        let reset = stored < log.log_start || stored > log.log_end;
        let first_dirty = if reset { log.log_start } else { stored };
        let non_active = segments.split_last().map_or(&[][..], |(_, rest)| rest);
        let active_base = segments.last().map_or(log.log_end, |s| s.base_offset());
        let mut uncleanable = log.high_watermark.min(active_base);
        if log.min_compaction_lag_ms > 0 {
            let newest_allowed = log.now_ms.saturating_sub(log.min_compaction_lag_ms);
            let too_new = non_active
                .iter()
                .filter(|s| s.next_offset() > first_dirty)
                // Kafka's `largestTimestamp`: a segment without timestamps counts from
                // when it was created (or loaded), not as infinitely old.
                .find(|s| s.largest_timestamp() > newest_allowed);
            if let Some(segment) = too_new {
                uncleanable = uncleanable.min(segment.base_offset());
            }
        }
        let count = non_active
            .iter()
            .take_while(|s| s.next_offset() <= uncleanable && s.base_offset() < uncleanable)
            .count();
        let clean_end = segments.get(count).map_or(log.log_end, |s| s.base_offset());
        CleanableRange {
            first_dirty,
            reset,
            clean_end,
            segments: non_active.get(..count).unwrap_or_default().to_vec(),
        }
    }

    /// The cleanable segments holding offsets at or after the first dirty offset.
    pub(crate) fn dirty_segments(&self) -> impl Iterator<Item = &Arc<Segment>> {
        self.segments
            .iter()
            .filter(move |s| s.next_offset() > self.first_dirty)
    }

    /// `(clean bytes, dirty bytes)`: sizes of the cleanable segments below the first dirty
    /// offset and of those holding dirty offsets.
    pub(crate) fn bytes(&self) -> (u64, u64) {
        self.segments.iter().fold((0, 0), |(clean, dirty), s| {
            if s.next_offset() > self.first_dirty {
                (clean, dirty + s.size_bytes())
            } else {
                (clean + s.size_bytes(), dirty)
            }
        })
    }

    /// Dirty bytes over all cleanable bytes; 0 when there are none.
    pub(crate) fn dirty_ratio(&self) -> f64 {
        let (clean, dirty) = self.bytes();
        if clean + dirty == 0 {
            return 0.0;
        }
        dirty as f64 / (clean + dirty) as f64
    }
}

/// Limits on one output segment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GroupLimits {
    /// `segment.bytes`: the group's `.log` files together.
    pub(crate) max_log_bytes: u64,
    /// `segment.index.bytes`: the group's offset (8 B) or time (12 B) index entries together.
    pub(crate) max_index_bytes: u64,
}

/// Splits consecutive segments into groups that each become one cleaned segment: a group
/// holds at least one segment, and adds the next while the `.log` sizes, the offset and
/// time index sizes stay within `limits`, and its offsets stay within `i32::MAX` of the
/// group's base (so they fit a segment's relative offsets).
pub(crate) fn group_segments(
    segments: &[Arc<Segment>],
    limits: GroupLimits,
) -> Vec<Vec<Arc<Segment>>> {
    let mut groups: Vec<Vec<Arc<Segment>>> = Vec::new();
    let mut sizes = (0u64, 0u64, 0u64);
    for segment in segments {
        let next = (
            segment.size_bytes(),
            segment.offset_index_entries() as u64 * 8,
            segment.time_index_entries() as u64 * 12,
        );
        let fits = groups.last().and_then(|g| g.first()).is_some_and(|first| {
            let last_offset = segment.next_offset().max(segment.base_offset() + 1) - 1;
            sizes.0 + next.0 <= limits.max_log_bytes
                && sizes.1 + next.1 <= limits.max_index_bytes
                && sizes.2 + next.2 <= limits.max_index_bytes
                && last_offset - first.base_offset() <= i32::MAX as u64
        });
        match groups.last_mut() {
            Some(group) if fits => {
                group.push(segment.clone());
                sizes = (sizes.0 + next.0, sizes.1 + next.1, sizes.2 + next.2);
            }
            _ => {
                groups.push(vec![segment.clone()]);
                sizes = next;
            }
        }
    }
    groups
}
