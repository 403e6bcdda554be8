//! Opening a partition directory: lock it, clear leftovers of interrupted deletes and
//! compactions, load the segments, and — after a crash — recover.
//!
//! Rules (Kafka's `LogLoader`, made stricter where Kafka can lose flushed data):
//! - a clean close left `.clean-shutdown`: trust the files, but still sanity-check every
//!   index and rebuild one that fails;
//! - otherwise every segment from the one holding the recovery point onward is re-validated
//!   batch by batch and its indexes rebuilt; the first bad batch cuts the log there and
//!   every later segment is deleted;
//! - a segment below the recovery point that turns out damaged is never cut silently: open
//!   fails with [`Error::Corrupt`] naming the file and byte;
//! - index files without a `.log` are removed; missing index files are rebuilt;
//! - offsets must follow each other exactly (each batch starting where the previous one
//!   ended) unless the log may hold offset gaps: its policy compacts now, or it compacted
//!   before or copied a leader's gaps (the `.offset-gaps` marker, see `offset_gaps`),
//!   whatever the policy is today;
//! - the log start offset is `max(checkpointed log start, first segment's base)`; if the
//!   log end falls below it, the log restarts as one empty segment at the log start;
//! - the leader epochs come from `leader-epoch-checkpoint`, completed from the batches
//!   recovery re-validated and trimmed to the log start and end; when that file is missing
//!   or unreadable they are rebuilt from every batch header.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};

use parking_lot::{Mutex, RwLock};

use super::checkpoint::CheckpointFile;
use super::durability::{Flusher, SyncState};
use super::leader_epoch::{EpochCache, EpochCheckpoint};
use super::{CLEAN_SHUTDOWN_FILE, FSYNC_FAILED_FILE, Inner, Writer};
use crate::config::{FlushPolicy, LogConfig};
use crate::error::{Error, Result};
use crate::segment::{
    CLEANED_SUFFIX, OffsetGaps, REWRITE_SUFFIX, SWAP_SUFFIX, Segment, SegmentFile, SegmentLimits,
    parse_segment_file_name,
};
use crate::storage::{Env, Storage};

pub(super) fn open(dir: &Path, config: LogConfig, env: Env) -> Result<Arc<Inner>> {
    config.validate()?;
    let storage = &*env.storage;
    crate::storage::create_dir_all_durably(storage, dir)?;
    let lock = storage.lock_dir(dir)?;
    super::retention::remove_deleted_files(storage, dir)?;
    let now_ms = env.clock.now_ms();
    let offset_gaps = OffsetGaps::new(super::offset_gaps::may_hold_gaps(
        storage,
        dir,
        config.cleanup_policy,
    )?);
    let limits = SegmentLimits {
        index_bytes: config.segment_index_bytes,
        index_interval_bytes: config.index_interval_bytes,
        map_bytes: usize::try_from(config.segment_bytes)
            .unwrap_or(usize::MAX)
            .max(config.max_message_bytes),
        offset_gaps,
    };
    let clean = storage.exists(&dir.join(CLEAN_SHUTDOWN_FILE));
    let (checkpoint_file, checkpoint) = CheckpointFile::open(storage, dir)?;
    let checkpoint = checkpoint.unwrap_or_default();

    super::cleaner::complete_interrupted_swaps(storage, dir)?;
    let (bases, missing_index) = scan_directory(storage, dir)?;
    let mut segments = BTreeMap::new();
    for base in bases {
        segments.insert(
            base,
            Arc::new(Segment::open(storage, dir, base, limits.clone(), now_ms)?),
        );
    }
    let recover_from = if clean {
        u64::MAX
    } else {
        segments
            .range(..=checkpoint.recovery_point)
            .next_back()
            .map_or(0, |(base, _)| *base)
    };
    load_segments(
        storage,
        dir,
        &mut segments,
        recover_from,
        checkpoint.recovery_point,
        &missing_index,
        now_ms,
    )?;
    check_continuity(
        &segments,
        checkpoint.recovery_point,
        limits.offset_gaps.allowed(),
    )?;
    write_again_after_failed_fsync(storage, dir, &segments, checkpoint.recovery_point)?;

    let first_base = segments
        .keys()
        .next()
        .copied()
        .unwrap_or(checkpoint.log_start_offset);
    let mut log_start = checkpoint.log_start_offset.max(first_base);
    let mut log_end = segments
        .values()
        .next_back()
        .map_or(log_start, |s| s.next_offset());
    if log_end < log_start || segments.is_empty() {
        for segment in std::mem::take(&mut segments).into_values() {
            segment.delete(storage)?;
        }
        let fresh = Segment::create(storage, dir, log_start, limits.clone(), now_ms)?;
        segments.insert(log_start, Arc::new(fresh));
        log_end = log_start;
    }
    log_start = log_start.min(log_end);
    if let Some(active) = segments.values().next_back() {
        active.resize_indexes(config.segment_index_bytes)?;
    }
    let recovery_point = if clean {
        log_end
    } else {
        checkpoint.recovery_point.min(log_end)
    };
    let high_watermark = if config.auto_high_watermark {
        log_end
    } else {
        checkpoint.high_watermark.clamp(log_start, log_end)
    };

    let epoch_file = EpochCheckpoint::new(dir);
    let epochs = load_epochs(
        storage,
        &epoch_file,
        &segments,
        recover_from,
        (log_start, log_end),
    )?;

    // From here on a crash must trigger recovery: the marker goes before any append.
    storage.remove_file(&dir.join(CLEAN_SHUTDOWN_FILE))?;
    storage.sync_dir(dir)?;

    let inner = Arc::new(Inner {
        dir: dir.to_path_buf(),
        env: env.clone(),
        limits,
        bounds: Mutex::new(()),
        writer: Mutex::new(Writer {
            unflushed_messages: 0,
            last_flush_ms: now_ms,
            scratch: Vec::new(),
        }),
        segments: RwLock::new(segments),
        log_start_offset: AtomicU64::new(log_start),
        log_end_offset: AtomicU64::new(log_end),
        high_watermark: AtomicU64::new(high_watermark),
        recovery_point: AtomicU64::new(recovery_point),
        sync: SyncState::new(recovery_point),
        checkpoint_file: Mutex::new(checkpoint_file),
        closed: AtomicBool::new(false),
        closing: AtomicBool::new(false),
        flusher: Mutex::new(None),
        lock: Mutex::new(Some(lock)),
        pending_deletions: Default::default(),
        cleaner: Default::default(),
        epochs: RwLock::new(epochs),
        epoch_file,
        config,
    });
    inner.write_checkpoint()?;
    if let FlushPolicy::Interval(interval) = inner.config.flush_policy {
        *inner.flusher.lock() = Some(Flusher::start(Arc::downgrade(&inner), interval));
    }
    Ok(inner)
}

/// The leader epochs as stored, trimmed to `[log_start, log_end)`; rebuilt from the batch
/// headers (the first batch of each newer epoch) when the file is missing or invalid,
/// and completed from the headers of the segments recovery re-validated (from base
/// `recovered_from`), as Kafka's segment recovery does: a newer epoch a recovered batch
/// carries is never missing, whatever the file says. Rewritten when anything changed.
fn load_epochs(
    storage: &dyn Storage,
    file: &EpochCheckpoint,
    segments: &BTreeMap<u64, Arc<Segment>>,
    recovered_from: u64,
    (log_start, log_end): (u64, u64),
) -> Result<EpochCache> {
    let stored = file.read(storage)?;
    let (mut epochs, scan_from) = match &stored {
        Some(cache) => (cache.clone(), recovered_from),
        None => (EpochCache::default(), 0),
    };
    for segment in segments.range(scan_from..).map(|(_, s)| s) {
        let mut scanner = segment.scan_batches();
        while let Some((_, batch)) = scanner.next_batch()? {
            let header = batch.header();
            let epoch = header.partition_leader_epoch;
            if epoch >= 0 && epochs.latest().is_none_or(|l| l.epoch < epoch) {
                epochs.assign(epoch, header.base_offset as u64);
            }
        }
    }
    epochs.truncate_from_end(log_end);
    epochs.truncate_from_start(log_start);
    if stored.as_ref() != Some(&epochs) {
        file.write(storage, &epochs)?;
    }
    Ok(epochs)
}

/// After a failed fsync (its marker `FSYNC_FAILED_FILE` is there), writes the records
/// above the recovery point again and syncs them, then removes the marker. Linux marks the
/// pages a failed fsync covered clean without writing them: recovery found them valid in
/// the page cache, and a later fsync would succeed without them ("fsyncgate"). Bytes
/// below the recovery point were synced and are never rewritten in place.
fn write_again_after_failed_fsync(
    storage: &dyn Storage,
    dir: &Path,
    segments: &BTreeMap<u64, Arc<Segment>>,
    recovery_point: u64,
) -> Result<()> {
    let marker = dir.join(FSYNC_FAILED_FILE);
    if !storage.exists(&marker) {
        return Ok(());
    }
    for segment in segments.values() {
        if segment.next_offset() > recovery_point {
            segment.write_again_from(recovery_point)?;
            segment.sync_log()?;
        }
    }
    storage.remove_file(&marker)?;
    storage.sync_dir(dir)
}

/// Deletes leftovers and stray index files; returns the base offsets that have a `.log`
/// and those whose index files are missing.
fn scan_directory(storage: &dyn Storage, dir: &Path) -> Result<(BTreeSet<u64>, BTreeSet<u64>)> {
    let mut logs = BTreeSet::new();
    let mut indexes: BTreeMap<u64, Vec<(SegmentFile, std::path::PathBuf)>> = BTreeMap::new();
    for path in storage.list_dir(dir)? {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.ends_with(CLEANED_SUFFIX) || name.ends_with(REWRITE_SUFFIX) {
            storage.remove_file(&path)?;
            continue;
        }
        if let Some(original) = name.strip_suffix(SWAP_SUFFIX) {
            // A swap file is complete by construction: finish the interrupted swap.
            storage.rename(&path, &dir.join(original))?;
            if let Some((base, kind)) = parse_segment_file_name(&dir.join(original)) {
                record(&mut logs, &mut indexes, base, kind, dir.join(original));
            }
            continue;
        }
        if let Some((base, kind)) = parse_segment_file_name(&path) {
            record(&mut logs, &mut indexes, base, kind, path);
        }
    }
    let mut missing_index = BTreeSet::new();
    for (base, files) in &indexes {
        if !logs.contains(base) {
            for (_, path) in files {
                storage.remove_file(path)?;
            }
        }
    }
    for base in &logs {
        let present = indexes.get(base).map_or(0, Vec::len);
        if present < 2 {
            missing_index.insert(*base);
        }
    }
    Ok((logs, missing_index))
}

fn record(
    logs: &mut BTreeSet<u64>,
    indexes: &mut BTreeMap<u64, Vec<(SegmentFile, std::path::PathBuf)>>,
    base: u64,
    kind: SegmentFile,
    path: std::path::PathBuf,
) {
    match kind {
        SegmentFile::Log => {
            logs.insert(base);
        }
        _ => indexes.entry(base).or_default().push((kind, path)),
    }
}

/// Flushed data must all be there: the log may not end before the recovery point, and in
/// a log without offset gaps every segment must end exactly where the next one begins.
/// Whole batches cut at a batch boundary, or a whole segment emptied, pass every batch
/// check; this is what catches them.
fn check_continuity(
    segments: &BTreeMap<u64, Arc<Segment>>,
    recovery_point: u64,
    offset_gaps: bool,
) -> Result<()> {
    let missing = |segment: &Segment, reason: String| Error::Corrupt {
        path: segment.log_path().to_path_buf(),
        position: segment.size_bytes(),
        reason,
    };
    if !offset_gaps {
        for (a, b) in segments.values().zip(segments.values().skip(1)) {
            if a.next_offset() != b.base_offset() {
                return Err(missing(
                    a,
                    format!(
                        "the segment ends at offset {} but the next one starts at {}",
                        a.next_offset(),
                        b.base_offset()
                    ),
                ));
            }
        }
    }
    match segments.values().next_back() {
        Some(last) if last.next_offset() < recovery_point => Err(missing(
            last,
            format!(
                "the log ends at offset {}, below the recovery point {recovery_point}: flushed records are missing",
                last.next_offset()
            ),
        )),
        _ => Ok(()),
    }
}

/// Brings every segment's bookkeeping up to date, recovering those at or after
/// `recover_from` (and any whose indexes are missing or fail their sanity check). A
/// segment whose `.log` an earlier log on this directory still maps (its readers outlive
/// it) is recovered on a copy, since recovery may cut the file. A segment whose batches
/// overflow its relative offsets is split, and the new segment is recovered in turn.
fn load_segments(
    storage: &dyn Storage,
    dir: &Path,
    segments: &mut BTreeMap<u64, Arc<Segment>>,
    recover_from: u64,
    recovery_point: u64,
    missing_index: &BTreeSet<u64>,
    now_ms: i64,
) -> Result<()> {
    let mut split_off = None;
    let mut next = segments.keys().next().copied();
    while let Some(base) = next {
        next = segments.range(base + 1..).next().map(|(b, _)| *b);
        let Some(segment) = segments.get(&base).cloned() else {
            continue;
        };
        let must_recover = base >= recover_from
            || split_off == Some(base)
            || missing_index.contains(&base)
            || segment.sanity_check().is_err()
            || segment.reload_tail(now_ms).is_err();
        if !must_recover {
            continue;
        }
        let segment = if segment.is_mapped() {
            let copy = Arc::new(segment.rewrite(storage, dir, now_ms)?);
            segments.insert(base, copy.clone());
            copy
        } else {
            segment
        };
        let outcome = segment.recover(recovery_point, now_ms)?;
        if let Some(overflow) = outcome.overflow {
            if next.is_some_and(|n| n < overflow.base_offset) {
                return Err(Error::Corrupt {
                    path: segment.log_path().to_path_buf(),
                    position: overflow.position,
                    reason: format!(
                        "the batch at offset {} overflows this segment and comes after the \
                         next segment's base {}",
                        overflow.base_offset,
                        next.unwrap_or_default()
                    ),
                });
            }
            let split = segment.split_off(storage, dir, overflow, now_ms)?;
            segments.insert(overflow.base_offset, Arc::new(split));
            split_off = Some(overflow.base_offset);
            next = Some(overflow.base_offset);
            continue;
        }
        if outcome.truncated_bytes == 0 {
            continue;
        }
        // Newest first, so that a crash part way leaves no hole between segments.
        let later: Vec<u64> = segments.range(base + 1..).map(|(b, _)| *b).collect();
        for later in later.into_iter().rev() {
            if let Some(doomed) = segments.remove(&later) {
                doomed.delete(storage)?;
            }
        }
        break;
    }
    Ok(())
}
