//! Appending batches whose offsets are already assigned — a follower copying its leader's
//! log, or a tool restoring one. Offsets are kept as they are (gaps allowed, as compaction
//! leaves them); they must lie at or after the log end and increase (an empty log takes a
//! first batch holding its end by starting over at its base). A batch whose offsets
//! would not fit the active segment's 32-bit relative range rolls a new segment based at
//! `max(log end, the batch's first offset)`. A batch carrying a leader epoch newer than
//! the log's latest records that epoch as starting at the batch's base offset.
//!
//! Whether gaps are accepted depends on the log (it may hold them: it compacts or once
//! did) and, for a replica, on its leader: a leader's log that may hold gaps makes the
//! copy allow them too (durably, before the first gap is written), and one that holds
//! none makes the copy refuse them.

use std::ops::Range;
use std::sync::atomic::Ordering;

use super::Partition;
use crate::error::{Error, Result};
use crate::record::{BatchHeader, BatchIter};

impl Partition {
    /// Appends batches with their offsets as given (one or more v2 batches end to end).
    /// Every batch is validated (CRC-32C, offsets increasing) before anything is written;
    /// the first offset must be ≥ the log end ([`Error::UnexpectedAppendOffset`]), except
    /// on an empty log whose end falls inside the first batch: it starts over at the
    /// batch's base (a replica that started over at its leader's log start, which deleted
    /// records can put mid-batch), keeping its high watermark. Gaps
    /// (a compacted leader's) are accepted only by logs that may hold them
    /// ([`Partition::may_hold_offset_gaps`]: opened under a compacting policy now or
    /// before — the fact is kept on disk, so a log whose policy became `delete` keeps
    /// accepting them — or made to by [`Partition::append_from_leader`]). Others need each
    /// batch to start where the previous one (or the log) ends.
    /// `max.message.bytes` is not applied: the leader already accepted these batches.
    /// If the disk fails part way, the batches before the failure stay appended (the log
    /// end shows how far it got) and the error is returned.
    /// Returns the offsets from the first batch's base to one past the last batch's end.
    pub fn append_as_follower(&self, batches: &[u8]) -> Result<Range<u64>> {
        self.append_copied(batches, Source::Unknown)
    }

    /// [`Partition::append_as_follower`] for a replica copying its leader's log, whose
    /// leader said whether its own log may hold offset gaps. When it may, gaps are
    /// accepted: a log that does not allow them yet (a replica created after its topic
    /// switched from compaction to `delete`) first writes its `.offset-gaps` marker
    /// durably (file synced, then the directory), and only then writes the gap, so a
    /// reopen accepts what was written. A failed sync of the marker closes the log, as any
    /// failed sync does. When the leader's log holds no gaps, every batch must start where
    /// the previous one (or the log) ends, whatever this log allows: a gap cannot come
    /// from such a leader.
    pub fn append_from_leader(
        &self,
        batches: &[u8],
        leader_may_hold_gaps: bool,
    ) -> Result<Range<u64>> {
        let source = if leader_may_hold_gaps {
            Source::LeaderWithGaps
        } else {
            Source::LeaderWithoutGaps
        };
        self.append_copied(batches, source)
    }

    fn append_copied(&self, batches: &[u8], source: Source) -> Result<Range<u64>> {
        let headers = validate(batches)?;
        let inner = &*self.inner;
        let segment_bytes = inner.config.segment_bytes;
        if let Some((_, too_big)) = headers
            .iter()
            .find(|(_, h)| h.size_bytes() as u64 > segment_bytes)
        {
            return Err(Error::BatchLargerThanSegment {
                size: too_big.size_bytes(),
                segment_bytes,
            });
        }
        let writer = inner.writer.lock();
        inner.ensure_open()?;
        let log_end = inner.log_end_offset.load(Ordering::Acquire);
        let (Some((_, first)), Some((_, last))) = (headers.first(), headers.last()) else {
            return Ok(log_end..log_end);
        };
        let (first_offset, last_offset) = (first.base_offset as u64, last.last_offset() as u64);
        let gaps = match source {
            Source::Unknown => inner.limits.offset_gaps.allowed(),
            Source::LeaderWithGaps => true,
            Source::LeaderWithoutGaps => false,
        };
        // An empty log whose end falls inside the first batch (it started over at a leader's
        // log start, which deleted records can put mid-batch) starts over at the batch's
        // base instead, as Kafka's follower does; its high watermark stays where it was.
        let log_start = inner.log_start_offset.load(Ordering::Acquire);
        let start_over =
            log_end == log_start && first_offset < log_end && first.last_offset() as u64 >= log_end;
        let expected = if start_over { first_offset } else { log_end };
        if first_offset < expected || (!gaps && first_offset != expected) {
            return Err(Error::UnexpectedAppendOffset {
                first: first_offset,
                last: last_offset,
                log_end,
            });
        }
        let gap = headers
            .windows(2)
            .find(|p| p[1].1.base_offset != p[0].1.last_offset() + 1);
        if let (false, Some(pair)) = (gaps, gap) {
            let why = match source {
                Source::LeaderWithoutGaps => "the leader's log holds no gaps",
                _ => "gaps need a compacted log",
            };
            return Err(Error::invalid_batch(
                pair[1].0,
                format!(
                    "batch starts at offset {} after one ending at {}: {why}",
                    pair[1].1.base_offset,
                    pair[0].1.last_offset()
                ),
            ));
        }
        if first_offset != expected || gap.is_some() {
            // Only a gapped leader's batches get here without the log allowing gaps.
            inner.allow_offset_gaps_locked()?;
        }
        if start_over {
            // The log end and high watermark stay put until the batch moves the end on.
            inner.start_over_below(first_offset)?;
        }
        let result = headers
            .iter()
            .try_for_each(|(position, header)| {
                let bytes = &batches[*position..][..header.size_bytes()];
                // The epoch first (as Kafka does): a cache entry past the log end is
                // trimmed below, while data without its epoch could never be found.
                inner.observe_batch_epoch(header)?;
                inner
                    .write_batch(&[bytes], header, inner.env.clock.now_ms())
                    .inspect_err(|_| {
                        let end = inner.log_end_offset.load(Ordering::Acquire);
                        let _ = inner.update_epochs(|c| c.truncate_from_end(end));
                    })
            })
            .map(|()| first_offset..last_offset + 1);
        if start_over && inner.log_end_offset.load(Ordering::Acquire) == log_end {
            // Nothing was written (a written batch ends past `log_end`): back to the log
            // as it was.
            inner.start_over_at(log_end)?;
        }
        inner.after_append(writer, result)
    }
}

/// Where copied batches come from, which decides whether they may leave offset gaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// Not said (a tool restoring a log, or a caller that does not know): gaps are
    /// accepted when this log may already hold them.
    Unknown,
    /// A leader whose log may hold gaps: accepted, this log being made to allow them.
    LeaderWithGaps,
    /// A leader whose log holds none: refused.
    LeaderWithoutGaps,
}

/// Parses and checks every batch; returns each one's position and header.
fn validate(batches: &[u8]) -> Result<Vec<(usize, BatchHeader)>> {
    let mut iter = BatchIter::new(batches, usize::MAX);
    let mut headers: Vec<(usize, BatchHeader)> = Vec::new();
    for item in iter.by_ref() {
        let (position, batch) = item?;
        batch.ensure_valid().map_err(|e| shift(e, position))?;
        let header = *batch.header();
        let previous_last = headers.last().map(|(_, h)| h.last_offset());
        if header.base_offset < 0
            || header.last_offset() < header.base_offset
            || previous_last.is_some_and(|last| header.base_offset <= last)
        {
            return Err(Error::invalid_batch(
                position,
                format!(
                    "batch offsets [{}, {}] are not after the previous batch's last offset {previous_last:?}",
                    header.base_offset,
                    header.last_offset()
                ),
            ));
        }
        headers.push((position, header));
    }
    if iter.position() != batches.len() {
        return Err(Error::invalid_batch(
            iter.position(),
            "incomplete batch at the end of the input",
        ));
    }
    Ok(headers)
}

/// Moves an `InvalidBatch` position from batch-relative to input-relative.
fn shift(error: Error, by: usize) -> Error {
    match error {
        Error::InvalidBatch { position, reason } => Error::InvalidBatch {
            position: position + by as u64,
            reason,
        },
        other => other,
    }
}
