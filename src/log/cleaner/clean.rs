//! The two passes of a clean: read the dirty section into an [`OffsetMap`], then rewrite a
//! group of segments into one `.cleaned` segment keeping, per key, only the record the map
//! says is the latest (Kafka's `LogCleaner.buildOffsetMap` and `cleanSegments`).
//!
//! A record is kept when it has a key and: its offset is at or past the end of the map
//! (not yet seen by a map); or the map has no later offset for its key and, if it is a
//! tombstone, its batch has no delete horizon or the horizon is still in the future. A
//! kept tombstone's batch gets the horizon `now + delete.retention.ms` if it has none (see
//! `record::filter`). The last batch of a group is always kept, emptied if need be, so
//! the cleaned segment ends at the same offset as the segments it replaces. Control
//! batches are copied as they are.

use std::sync::Arc;

use super::CleanerStats;
use super::offset_map::OffsetMap;
use crate::error::{Error, Result};
use crate::log::Inner;
use crate::record::{
    BatchHeader, FilterOptions, FilterOutcome, RecordBatch, RecordIter, RecordView, filter_batch,
};
use crate::segment::{CLEANED_SUFFIX, Segment};

/// Calls `visit` with every batch of `segment` (CRC-checked), in order; a torn tail or a
/// damaged batch is [`Error::Corrupt`].
fn for_each_batch(
    segment: &Segment,
    mut visit: impl FnMut(&RecordBatch<'_>) -> Result<()>,
) -> Result<()> {
    let path = segment.log_path();
    let mut scanner = segment.scan_batches();
    while let Some((position, batch)) = scanner.next_batch()? {
        batch
            .ensure_valid()
            .map_err(|e| e.in_file(path, position))?;
        visit(&batch).map_err(|e| e.in_file(path, position))?;
    }
    if scanner.position() != segment.size_bytes() {
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            position: scanner.position(),
            reason: "incomplete batch inside a segment being compacted".into(),
        });
    }
    Ok(())
}

/// Puts every keyed record with an offset in `[first_dirty, clean_end)` of `segments` into
/// `map`. Returns the end of what the map covers: `clean_end`, or — when the map filled
/// up — the offset of the first record it could not take.
pub(crate) fn build_offset_map<'a>(
    segments: impl IntoIterator<Item = &'a Arc<Segment>>,
    first_dirty: u64,
    clean_end: u64,
    map: &mut OffsetMap,
    stats: &mut CleanerStats,
) -> Result<u64> {
    let mut full_at = None;
    for segment in segments {
        for_each_batch(segment, |batch| {
            let header = batch.header();
            if full_at.is_some()
                || header.is_control()
                || (header.last_offset() as u64) < first_dirty
            {
                return Ok(());
            }
            stats.map_bytes_read += batch.size_bytes() as u64;
            let section = batch.records_bytes()?;
            for record in RecordIter::new(header, &section) {
                let record = record?;
                let offset = record.offset();
                if offset < first_dirty || offset >= clean_end {
                    continue;
                }
                stats.map_records_read += 1;
                if let Some(key) = record.key()
                    && !map.put(key, offset)
                {
                    full_at = Some(offset);
                    break;
                }
            }
            Ok(())
        })?;
        if full_at.is_some() {
            break;
        }
    }
    stats.map_keys = map.len();
    Ok(full_at.unwrap_or(clean_end))
}

/// What decides which records a cleaning pass keeps.
#[derive(Debug)]
pub(crate) struct KeepRule<'a> {
    pub(crate) map: &'a OffsetMap,
    /// End of what the map covers: records at or after it are kept.
    pub(crate) map_end: u64,
    pub(crate) now_ms: i64,
    /// `now + delete.retention.ms`: stamped on batches keeping a tombstone.
    pub(crate) new_delete_horizon_ms: i64,
}

impl KeepRule<'_> {
    fn keep(
        &self,
        header: &BatchHeader,
        record: &RecordView<'_>,
        stats: &mut CleanerStats,
    ) -> bool {
        let Some(key) = record.key() else {
            stats.records_without_key += 1;
            return false;
        };
        let offset = record.offset();
        if offset >= self.map_end {
            return true;
        }
        if self.map.get(key).is_some_and(|latest| latest > offset) {
            return false;
        }
        let expired = record.value().is_none()
            && header
                .delete_horizon_ms()
                .is_some_and(|horizon| self.now_ms >= horizon);
        if expired {
            stats.tombstones_removed += 1;
        }
        !expired
    }
}

/// Writes the kept records of `group` into a new `<base>.log.cleaned` segment (with its
/// indexes), flushed. Returns `None` — and leaves no file behind — when the output would
/// be the one input segment unchanged.
pub(crate) fn clean_group(
    inner: &Inner,
    group: &[Arc<Segment>],
    rule: &KeepRule<'_>,
    stats: &mut CleanerStats,
) -> Result<Option<Segment>> {
    let Some(first) = group.first() else {
        return Ok(None);
    };
    let storage = &*inner.env.storage;
    let out = Segment::create_with_suffix(
        storage,
        &inner.dir,
        first.base_offset(),
        inner.limits.clone(),
        rule.now_ms,
        CLEANED_SUFFIX,
    )?;
    let written = (stats.records_written, stats.bytes_written);
    let result = write_group(&out, group, rule, stats).and_then(|changed| {
        if !changed {
            return Ok(false);
        }
        out.on_become_inactive()?;
        out.flush()?;
        Ok(true)
    });
    match result {
        Ok(true) => Ok(Some(out)),
        Ok(false) => {
            // Nothing was written after all: the input stays.
            (stats.records_written, stats.bytes_written) = written;
            out.delete(storage)?;
            Ok(None)
        }
        Err(e) => {
            let _ = out.delete(storage);
            Err(e)
        }
    }
}

/// Filters every batch of `group` into `out`; returns whether anything differs from the
/// input (a merged group always does).
fn write_group(
    out: &Segment,
    group: &[Arc<Segment>],
    rule: &KeepRule<'_>,
    stats: &mut CleanerStats,
) -> Result<bool> {
    let group_end = group
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| s.next_offset())
        .max()
        .unwrap_or_default();
    let mut changed = group.len() > 1;
    let mut buf = Vec::new();
    for segment in group {
        stats.segments_read += 1;
        stats.bytes_read += segment.size_bytes();
        for_each_batch(segment, |batch| {
            let header = *batch.header();
            stats.records_read += u64::try_from(header.records_count).unwrap_or(0);
            if header.is_control() {
                return append(out, batch.as_bytes(), stats);
            }
            let options = FilterOptions {
                retain_empty: header.last_offset() as u64 + 1 == group_end,
                new_delete_horizon_ms: rule.new_delete_horizon_ms,
            };
            buf.clear();
            let outcome =
                filter_batch(batch, &options, |r| rule.keep(&header, r, stats), &mut buf)?;
            match outcome {
                FilterOutcome::Unchanged => append(out, batch.as_bytes(), stats),
                FilterOutcome::Rewritten { .. } | FilterOutcome::Emptied => {
                    changed = true;
                    append(out, &buf, stats)
                }
                FilterOutcome::Dropped => {
                    changed = true;
                    Ok(())
                }
            }
        })?;
    }
    Ok(changed)
}

fn append(out: &Segment, bytes: &[u8], stats: &mut CleanerStats) -> Result<()> {
    let header = BatchHeader::parse(bytes)?;
    out.append(bytes, &header)?;
    stats.records_written += u64::try_from(header.records_count).unwrap_or(0);
    stats.bytes_written += bytes.len() as u64;
    Ok(())
}
