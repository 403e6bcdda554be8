//! Putting a cleaned segment in place of the segments it replaces, so that a crash at any
//! point leaves either the old segments or the new one (Kafka's `replaceSegments`), and
//! finishing or undoing an interrupted swap when the log opens.
//!
//! Swap, under the writer lock, once `<base>.log.cleaned` (+ `.index.cleaned`,
//! `.timeindex.cleaned`) are complete and synced:
//! 1. check the replaced segments are still the log's, unchanged (else discard the output);
//! 2. rename each `.cleaned` file to `.swap`, sync the directory — the commit point;
//! 3. delete the old segments' files (readers holding them keep their open handles), rename
//!    each `.swap` file to its final name (the `.log` first), sync the directory;
//! 4. open the new segment and swap it into the segment map in one step.
//!
//! On open ([`complete_interrupted_swaps`]), per base offset: any `.cleaned` file means the
//! swap never committed — all its `.cleaned` and `.swap` files are removed and the old
//! segments stand. A `.log.swap` without `.cleaned` files is a committed swap: every
//! segment file based in `[base, end of the swap log)` is removed and the `.swap` files
//! take their final names. Index `.swap` files alone (the `.log` already renamed) are
//! renamed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::error::{Error, Result};
use crate::log::Inner;
use crate::segment::{
    BatchScanner, CLEANED_SUFFIX, SWAP_SUFFIX, Segment, SegmentFile, parse_segment_file_name,
};
use crate::storage::{OpenMode, Storage};

/// What a segment looked like when the cleaner read it: if it changes before the swap
/// (truncated, or no longer in the log), the cleaned output is stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen {
    truncations: u64,
    size_bytes: u64,
}

impl Seen {
    pub(crate) fn of(segment: &Segment) -> Self {
        Seen {
            truncations: segment.truncations(),
            size_bytes: segment.size_bytes(),
        }
    }
}

fn renamed(path: &Path, from: &str, to: &str) -> PathBuf {
    let name = path.as_os_str().to_string_lossy();
    PathBuf::from(format!("{}{to}", name.strip_suffix(from).unwrap_or(&name)))
}

fn remove_all(storage: &dyn Storage, paths: &[PathBuf]) -> Result<()> {
    paths.iter().try_for_each(|p| storage.remove_file(p))
}

fn rename_all(storage: &dyn Storage, from: &[PathBuf], to: &[PathBuf]) -> Result<()> {
    from.iter()
        .zip(to)
        .try_for_each(|(f, t)| storage.rename(f, t))
}

/// Whether the log was not truncated since the pass began (its offset map may hold
/// records that are gone), and every segment of `group` is still in the log's map, not
/// active, and as seen.
fn unchanged(inner: &Inner, group: &[Arc<Segment>], seen: &[Seen], truncations: u64) -> bool {
    if inner.cleaner.truncations() != truncations {
        return false;
    }
    let segments = inner.segments.read();
    let active = segments.keys().next_back().copied();
    group.len() == seen.len()
        && group.iter().zip(seen).all(|(segment, seen)| {
            let base = segment.base_offset();
            segments.get(&base).is_some_and(|s| Arc::ptr_eq(s, segment))
                && Some(base) != active
                && Seen::of(segment) == *seen
        })
}

/// Swaps `cleaned` (complete, durable, named `.cleaned`) in for `group`. Returns false —
/// with the output discarded and the log untouched — when the group changed since it was
/// read or the log was truncated since the pass began (`truncations` then). An error
/// after the commit point closes the log; reopening completes the swap.
pub(crate) fn replace(
    inner: &Inner,
    group: &[Arc<Segment>],
    seen: &[Seen],
    truncations: u64,
    cleaned: Segment,
) -> Result<bool> {
    let storage = &*inner.env.storage;
    let dir = &inner.dir;
    let base = cleaned.base_offset();
    let cleaned_paths = cleaned.paths().to_vec();
    drop(cleaned);
    let _writer = inner.writer.lock();
    if inner.closed.load(Ordering::Acquire) {
        // The directory may not be ours any more; the next open removes `.cleaned` files.
        return Err(Error::Closed { path: dir.clone() });
    }
    if !unchanged(inner, group, seen, truncations) {
        remove_all(storage, &cleaned_paths)?;
        return Ok(false);
    }
    let swap_paths: Vec<PathBuf> = cleaned_paths
        .iter()
        .map(|p| renamed(p, CLEANED_SUFFIX, SWAP_SUFFIX))
        .collect();
    let committed =
        rename_all(storage, &cleaned_paths, &swap_paths).and_then(|()| storage.sync_dir(dir));
    if let Err(e) = committed {
        let discarded = remove_all(storage, &cleaned_paths)
            .and_then(|()| remove_all(storage, &swap_paths))
            .and_then(|()| storage.sync_dir(dir));
        if discarded.is_err() {
            // A complete set of `.swap` files may remain: reopening must decide.
            inner.closed.store(true, Ordering::Release);
        }
        return Err(e);
    }
    let final_paths: Vec<PathBuf> = swap_paths
        .iter()
        .map(|p| renamed(p, SWAP_SUFFIX, ""))
        .collect();
    let now_ms = inner.env.clock.now_ms();
    let installed = (|| {
        for segment in group {
            segment.delete(storage)?;
        }
        // The deletions are durable before the `.swap` files (recovery's sign that the old
        // segments may remain) go: a file system that persisted the renames first could
        // otherwise leave the new segment beside old ones holding the same offsets.
        storage.sync_dir(dir)?;
        rename_all(storage, &swap_paths, &final_paths)?;
        storage.sync_dir(dir)?;
        let segment = Segment::open(storage, dir, base, inner.limits.clone(), now_ms)?;
        segment.reload_tail(now_ms)?;
        Ok::<_, Error>(segment)
    })();
    match installed {
        Ok(segment) => {
            let mut segments = inner.segments.write();
            for old in group {
                segments.remove(&old.base_offset());
            }
            segments.insert(base, Arc::new(segment));
            Ok(true)
        }
        Err(e) => {
            // Files and the segment map disagree: refuse further use; reopening finishes
            // the swap from the files.
            inner.closed.store(true, Ordering::Release);
            Err(e)
        }
    }
}

/// The `.cleaned` and `.swap` files found for one base offset.
#[derive(Debug, Default)]
struct Pending {
    cleaned: Vec<PathBuf>,
    swap: Vec<(PathBuf, SegmentFile)>,
}

/// Finishes (or undoes) a swap that a crash interrupted; see the module doc. Called when
/// the log opens, before the segments are loaded.
pub(crate) fn complete_interrupted_swaps(storage: &dyn Storage, dir: &Path) -> Result<()> {
    let paths = storage.list_dir(dir)?;
    let mut pending: BTreeMap<u64, Pending> = BTreeMap::new();
    for path in &paths {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if let Some(stem) = name.strip_suffix(CLEANED_SUFFIX) {
            match parse_segment_file_name(Path::new(stem)) {
                Some((base, _)) => pending.entry(base).or_default().cleaned.push(path.clone()),
                None => storage.remove_file(path)?,
            }
        } else if let Some(stem) = name.strip_suffix(SWAP_SUFFIX)
            && let Some((base, kind)) = parse_segment_file_name(Path::new(stem))
        {
            pending
                .entry(base)
                .or_default()
                .swap
                .push((path.clone(), kind));
        }
    }
    for (base, mut files) in pending.iter_mut().map(|(b, f)| (*b, std::mem::take(f))) {
        if !files.cleaned.is_empty() {
            remove_all(storage, &files.cleaned)?;
            for (path, _) in &files.swap {
                storage.remove_file(path)?;
            }
            continue;
        }
        if let Some((log_swap, _)) = files.swap.iter().find(|(_, k)| *k == SegmentFile::Log) {
            let end = swap_end(storage, log_swap, base)?;
            for path in &paths {
                if parse_segment_file_name(path).is_some_and(|(b, _)| (base..end).contains(&b)) {
                    storage.remove_file(path)?;
                }
            }
        }
        files
            .swap
            .sort_by_key(|(_, kind)| *kind != SegmentFile::Log);
        for (path, kind) in &files.swap {
            storage.rename(path, &kind.path(dir, base))?;
        }
    }
    if !pending.is_empty() {
        storage.sync_dir(dir)?;
    }
    Ok(())
}

/// One past the last offset in the swap log at `path` (at least `base + 1`, so the segment
/// it replaces at `base` is always covered).
fn swap_end(storage: &dyn Storage, path: &Path, base: u64) -> Result<u64> {
    let file = storage.open(path, OpenMode::Existing)?;
    let len = file.len()?;
    let mut scanner = BatchScanner::new(&*file, 0, len);
    let mut end = base + 1;
    while let Some((_, batch)) = scanner.next_batch()? {
        end = end.max(batch.header().last_offset().max(0) as u64 + 1);
    }
    if scanner.position() != len {
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            position: scanner.position(),
            reason: "a compacted segment waiting to be swapped in is incomplete".into(),
        });
    }
    Ok(end)
}
