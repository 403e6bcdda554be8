//! Segment recovery after a crash: re-validate every batch from the start of the `.log`,
//! rebuild both indexes with the append cadence, and cut the file at the first batch that
//! is torn, fails its CRC, or breaks the offset order. Everything after that point is gone,
//! disk blocks reserved past the end included. A valid batch whose offsets lie more than
//! `i32::MAX` past the segment's base (which other writers' files can hold) is not cut:
//! the scan stops there and reports it, for the log to split it off (`split.rs`).

use std::sync::atomic::Ordering;

use super::{BatchScanner, Segment, WriteState};
use crate::error::Result;
use crate::record::NO_TIMESTAMP;

/// What [`Segment::recover`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Bytes cut from the end of the `.log` (0 when every byte was valid).
    pub truncated_bytes: u64,
    /// Why the scan stopped early, when it did.
    pub reason: Option<String>,
    /// A valid batch, in order, whose offsets the segment cannot index (more than
    /// `i32::MAX` past its base): the scan stopped before it and nothing was cut. It and
    /// what follows it are still in the file, past [`Segment::size_bytes`].
    pub overflow: Option<Overflow>,
}

/// Where a segment's batches stop fitting its relative offsets: see
/// [`Recovered::overflow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow {
    /// Byte position of the first batch that does not fit.
    pub position: u64,
    /// Its base offset: the base of the segment it starts when split off.
    pub base_offset: u64,
}

impl Segment {
    /// Rebuilds this segment's indexes from its `.log`, validating every batch (CRC-32C,
    /// offsets increasing and inside the segment), and truncates the `.log` at the first
    /// invalid or incomplete batch — unless that would drop an offset below
    /// `keep_offsets_below` (data known to be flushed): then nothing is cut and the result
    /// is [`crate::Error::Corrupt`] naming the file and byte. A valid batch in order whose
    /// offsets overflow the segment ends the scan without a cut ([`Recovered::overflow`]).
    pub fn recover(&self, keep_offsets_below: u64, now_ms: i64) -> Result<Recovered> {
        {
            let mut indexes = self.indexes.write();
            indexes.offsets.reset();
            indexes.times.reset();
            indexes.offsets.resize(self.limits.index_bytes)?;
            indexes.times.resize(self.limits.index_bytes)?;
        }
        let mut state = self.state.lock();
        *state = WriteState::new(self.base_offset, now_ms);
        self.max_timestamp.store(NO_TIMESTAMP, Ordering::Release);
        self.next_offset.store(self.base_offset, Ordering::Release);

        let size = self.log.len()?;
        let mut scanner = BatchScanner::new(&*self.log, 0, size);
        let mut valid_end = 0;
        let mut reason = None;
        let mut overflow = None;
        loop {
            let (position, batch) = match scanner.next_batch() {
                Ok(Some(found)) => found,
                Ok(None) => break,
                Err(e) => {
                    reason = Some(cause(e));
                    break;
                }
            };
            let header = *batch.header();
            if let Err(e) = batch.ensure_valid() {
                reason = Some(format!("batch at byte {position}: {}", cause(e)));
                break;
            }
            let next = self.next_offset();
            let base = header.base_offset;
            let last = header.last_offset();
            let follows = if self.limits.offset_gaps.allowed() {
                base >= 0 && base as u64 >= next
            } else {
                base >= 0 && base as u64 == next
            };
            let in_order = follows && last >= base;
            let fits =
                last >= 0 && (last as u64).saturating_sub(self.base_offset) <= i32::MAX as u64;
            if in_order && !fits {
                overflow = Some(Overflow {
                    position,
                    base_offset: base as u64,
                });
                break;
            }
            if !in_order {
                reason = Some(format!(
                    "batch at byte {position} holds offsets [{base}, {last}], which do not \
                     follow {next} in a segment based at {}",
                    self.base_offset
                ));
                break;
            }
            self.track_batch(&mut state, position, &header)?;
            self.next_offset.store(last as u64 + 1, Ordering::Release);
            valid_end = position + header.size_bytes() as u64;
        }
        if let Some(overflow) = overflow {
            self.size_bytes.store(valid_end, Ordering::Release);
            return Ok(Recovered {
                truncated_bytes: 0,
                reason: None,
                overflow: Some(overflow),
            });
        }
        if reason.is_none() && valid_end != size {
            reason = Some(format!("incomplete batch at byte {valid_end}"));
        }
        if valid_end != size && self.next_offset() < keep_offsets_below {
            return Err(crate::Error::Corrupt {
                path: self.log.path().to_path_buf(),
                position: valid_end,
                reason: format!(
                    "{}; offsets from {} are below the recovery point {keep_offsets_below}: \
                     they were flushed, so they are not dropped",
                    reason.unwrap_or_default(),
                    self.next_offset()
                ),
            });
        }
        // Also when nothing is cut: setting the length gives back the disk blocks a crash
        // left reserved past the end (`Segment::reserve`), which nothing else would release
        // if the segment stopped being active before its next append.
        self.log.set_len(valid_end)?;
        self.size_bytes.store(valid_end, Ordering::Release);
        Ok(Recovered {
            truncated_bytes: size - valid_end,
            reason,
            overflow: None,
        })
    }
}

/// What went wrong, without the file and byte a `Corrupt` error names: the error recovery
/// may return names them itself.
fn cause(error: crate::Error) -> String {
    match error {
        crate::Error::Corrupt { reason, .. } => reason,
        other => other.to_string(),
    }
}
