//! The leader-epoch cache: for each leader epoch of the partition, the first offset written
//! in it — what a follower of a new leader compares to find where the two logs diverge
//! (offsets-for-leader-epoch), instead of truncating blindly to its high watermark.
//!
//! Rules (Kafka's `LeaderEpochFileCache`):
//! - entries increase in both epoch and start offset; assigning an entry first removes
//!   every entry with an epoch ≥ its epoch or a start offset ≥ its start offset, and a
//!   repeat of the latest epoch at a later offset changes nothing;
//! - [`EpochCache::end_offset_for`] answers offsets-for-leader-epoch: for the latest epoch
//!   the log end; otherwise the start offset of the next higher epoch, paired with the
//!   largest epoch ≤ the requested one;
//! - truncating the log from the end drops entries starting at or after the new end;
//!   moving the log start drops entries wholly below it and moves the last of them up.
//!
//! Persisted as `leader-epoch-checkpoint` in Kafka's text format (`0`, the entry count,
//! then one `epoch start_offset` line per entry), replaced atomically: written to a
//! `.tmp` file, synced, renamed over the old one, and the directory synced.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::storage::{OpenMode, Storage, read_fully_at};

/// File name inside the partition directory.
pub(crate) const LEADER_EPOCH_FILE: &str = "leader-epoch-checkpoint";
const TMP_SUFFIX: &str = ".tmp";
const FORMAT_VERSION: &str = "0";
/// Larger files are not leader-epoch checkpoints (a million entries at ~20 bytes).
const MAX_FILE_BYTES: u64 = 20 << 20;

/// One leader epoch and the first offset written in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EpochEntry {
    /// The leader epoch.
    pub epoch: i32,
    /// The first offset of the epoch.
    pub start_offset: u64,
}

/// The epochs of one partition, oldest first. Pure bookkeeping: persisting is
/// [`EpochCheckpoint`]'s job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EpochCache {
    entries: Vec<EpochEntry>,
}

impl EpochCache {
    pub(crate) fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub(crate) fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// Records that `epoch` starts at `start_offset`; returns whether anything changed.
    /// Negative epochs (batches written without one) are ignored.
    pub(crate) fn assign(&mut self, epoch: i32, start_offset: u64) -> bool {
        if epoch < 0 {
            return false;
        }
        let needed = self
            .latest()
            .is_none_or(|l| l.epoch != epoch || start_offset < l.start_offset);
        if !needed {
            return false;
        }
        while let Some(last) = self.entries.last() {
            if last.epoch >= epoch || last.start_offset >= start_offset {
                self.entries.pop();
            } else {
                break;
            }
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// The answer to offsets-for-leader-epoch for `requested`, on a log ending at
    /// `log_end`: `(epoch, end offset)`, or `None` when this log knows no epoch ≥
    /// `requested`, or `requested` is negative (Kafka's undefined epoch and offset).
    pub(crate) fn end_offset_for(&self, requested: i32, log_end: u64) -> Option<(i32, u64)> {
        let latest = self.latest().filter(|_| requested >= 0)?;
        if requested == latest.epoch {
            return Some((latest.epoch, log_end));
        }
        let higher = self.entries.iter().find(|e| e.epoch > requested)?;
        let floor = self.entries.iter().rev().find(|e| e.epoch <= requested);
        Some((floor.map_or(requested, |f| f.epoch), higher.start_offset))
    }

    /// Drops entries starting at or after `end` (the log was truncated to `end`).
    pub(crate) fn truncate_from_end(&mut self, end: u64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end);
        self.entries.len() != before
    }

    /// Drops entries wholly below `start` (the new log start) and moves the last epoch
    /// that began at or before it to start there.
    pub(crate) fn truncate_from_start(&mut self, start: u64) -> bool {
        let at_or_below = self.entries.partition_point(|e| e.start_offset <= start);
        let Some(last_below) = at_or_below.checked_sub(1) else {
            return false;
        };
        if last_below == 0 && self.entries[0].start_offset == start {
            return false;
        }
        let epoch = self.entries[last_below].epoch;
        self.entries.drain(..=last_below);
        self.entries.insert(
            0,
            EpochEntry {
                epoch,
                start_offset: start,
            },
        );
        true
    }

    pub(crate) fn clear(&mut self) -> bool {
        let changed = !self.entries.is_empty();
        self.entries.clear();
        changed
    }

    fn encode(&self) -> String {
        let mut text = format!("{FORMAT_VERSION}\n{}\n", self.entries.len());
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        text
    }

    /// Parses Kafka's text format; the reason it is not one on failure.
    fn decode(text: &str) -> std::result::Result<Self, String> {
        let mut lines = text.lines();
        match lines.next() {
            Some(FORMAT_VERSION) => {}
            other => return Err(format!("unknown version line {other:?}")),
        }
        let count: usize = lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or("missing entry count")?;
        let mut entries = Vec::with_capacity(count.min(1 << 16));
        for i in 0..count {
            let line = lines
                .next()
                .ok_or(format!("entry {i} of {count} missing"))?;
            let mut fields = line.split_whitespace();
            let (Some(epoch), Some(start), None) = (fields.next(), fields.next(), fields.next())
            else {
                return Err(format!("entry {i} is not `epoch offset`: {line:?}"));
            };
            let epoch: i32 = epoch.parse().map_err(|_| format!("bad epoch {epoch:?}"))?;
            let start: u64 = start.parse().map_err(|_| format!("bad offset {start:?}"))?;
            if epoch < 0 {
                return Err(format!("negative epoch {epoch}"));
            }
            if entries
                .last()
                .is_some_and(|p: &EpochEntry| p.epoch >= epoch || p.start_offset >= start)
            {
                return Err(format!("entry {i} ({epoch} {start}) does not increase"));
            }
            entries.push(EpochEntry {
                epoch,
                start_offset: start,
            });
        }
        if lines.any(|l| !l.trim().is_empty()) {
            return Err("more entries than the count says".into());
        }
        Ok(Self { entries })
    }
}

/// The `leader-epoch-checkpoint` file of one partition directory.
#[derive(Debug)]
pub(crate) struct EpochCheckpoint {
    path: PathBuf,
    dir: PathBuf,
}

impl EpochCheckpoint {
    pub(crate) fn new(dir: &Path) -> Self {
        Self {
            path: dir.join(LEADER_EPOCH_FILE),
            dir: dir.to_path_buf(),
        }
    }

    /// The stored cache; `None` when the file is missing or not a valid checkpoint (the
    /// caller rebuilds the cache from the batches). A leftover `.tmp` is removed.
    pub(crate) fn read(&self, storage: &dyn Storage) -> Result<Option<EpochCache>> {
        let tmp = self.tmp_path();
        if storage.exists(&tmp) {
            storage.remove_file(&tmp)?;
        }
        if !storage.exists(&self.path) {
            return Ok(None);
        }
        let file = storage.open(&self.path, OpenMode::Existing)?;
        let len = file.len()?;
        if len > MAX_FILE_BYTES {
            return Ok(None);
        }
        let mut buf = vec![0u8; len as usize];
        let n = read_fully_at(&*file, &mut buf, 0)?;
        buf.truncate(n);
        Ok(std::str::from_utf8(&buf)
            .ok()
            .and_then(|text| EpochCache::decode(text).ok()))
    }

    /// Durably replaces the file with `cache`.
    pub(crate) fn write(&self, storage: &dyn Storage, cache: &EpochCache) -> Result<()> {
        let tmp = self.tmp_path();
        let file = storage.open(&tmp, OpenMode::Create)?;
        file.set_len(0)?;
        file.write_all_at(cache.encode().as_bytes(), 0)?;
        file.sync_data()?;
        drop(file);
        storage.rename(&tmp, &self.path)?;
        storage.sync_dir(&self.dir)
    }

    fn tmp_path(&self) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(TMP_SUFFIX);
        PathBuf::from(name)
    }
}

/// Refuses a negative leader epoch from a caller.
pub(crate) fn check_epoch(epoch: i32) -> Result<()> {
    if epoch < 0 {
        return Err(Error::InvalidConfig {
            name: "leader_epoch",
            reason: format!("a leader epoch is ≥ 0, got {epoch}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
