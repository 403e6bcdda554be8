//! [`TimeIndex`]: a segment's time index (`.timeindex`), mapping record timestamps to the
//! offset at which they occurred, for offset-by-timestamp lookups and time retention.
//!
//! Byte layout: 12-byte entries, big-endian, timestamps strictly increasing and offsets
//! non-decreasing:
//!
//! ```text
//! 0..8   timestamp       i64 BE   the segment's max timestamp so far
//! 8..12  relative offset u32 BE   offset − base_offset at which it occurred, at most i32::MAX
//! ```
//!
//! The last slot of the preallocated file is kept for the entry written when the segment
//! rolls or closes, so the index reports full one slot early. Sizing, preallocation and
//! mapping are in `mapped_file.rs`.

use std::path::Path;

use super::mapped_file::MappedFile;
use super::{corrupt, misuse, relative_offset};
use crate::error::Result;
use crate::storage::Storage;

/// Bytes per `.timeindex` entry.
pub const TIME_ENTRY_SIZE: usize = 12;

/// The timestamp Kafka uses for "no timestamp"; also what lookups return when nothing matches.
pub const NO_TIMESTAMP: i64 = -1;

/// One `.timeindex` entry: the segment reached max timestamp `timestamp` at `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    /// Absolute offset (the base offset plus the stored relative offset).
    pub offset: u64,
}

/// Maps timestamps to offsets in a segment, one entry each time the max timestamp grows
/// (at most one per index interval).
///
/// ```
/// # fn main() -> streamlog::Result<()> {
/// use streamlog::{FileStorage, TimeEntry, TimeIndex};
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("00000000000000000045.timeindex");
/// let mut index = TimeIndex::open(&FileStorage, &path, 45, 4096)?;
/// index.maybe_append(10, 55, false)?;
/// index.maybe_append(20, 65, false)?;
/// assert_eq!(index.lookup(25), TimeEntry { timestamp: 20, offset: 65 });
/// assert_eq!(index.lookup(5), TimeEntry { timestamp: -1, offset: 45 });
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TimeIndex {
    file: MappedFile<TIME_ENTRY_SIZE>,
    base_offset: u64,
}

/// Decodes one slot; never fails, whatever the bytes.
fn decode(base_offset: u64, slot: &[u8; TIME_ENTRY_SIZE]) -> TimeEntry {
    let [t0, t1, t2, t3, t4, t5, t6, t7, r0, r1, r2, r3] = *slot;
    TimeEntry {
        timestamp: i64::from_be_bytes([t0, t1, t2, t3, t4, t5, t6, t7]),
        offset: base_offset.saturating_add(u64::from(u32::from_be_bytes([r0, r1, r2, r3]))),
    }
}

/// The stored relative offset of a slot.
fn raw_relative(slot: &[u8; TIME_ENTRY_SIZE]) -> u32 {
    let [.., r0, r1, r2, r3] = *slot;
    u32::from_be_bytes([r0, r1, r2, r3])
}

impl TimeIndex {
    /// Opens the index at `path`, creating it when missing; the sizing rules are those of
    /// [`crate::SparseIndex::open`] with 12-byte entries.
    pub fn open(
        storage: &dyn Storage,
        path: &Path,
        base_offset: u64,
        max_index_size_bytes: usize,
    ) -> Result<Self> {
        Ok(Self {
            file: MappedFile::open(storage, path, max_index_size_bytes)?,
            base_offset,
        })
    }

    /// The file's current path.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// The segment's base offset; stored offsets are relative to it.
    pub fn base_offset(&self) -> u64 {
        self.base_offset
    }

    /// How many entries the index holds.
    pub fn entries(&self) -> usize {
        self.file.entries()
    }

    /// How many entries fit in the mapped file.
    pub fn max_entries(&self) -> usize {
        self.file.max_entries()
    }

    /// Whether only the slot kept for the roll/close entry is left (or none):
    /// `entries ≥ max_entries − 1`.
    pub fn is_full(&self) -> bool {
        self.entries() >= self.max_entries().saturating_sub(1)
    }

    /// The mapped length in bytes.
    pub fn size_bytes(&self) -> usize {
        self.file.size_bytes()
    }

    /// What "nothing indexed" reads as: `(-1, base_offset)`.
    fn none(&self) -> TimeEntry {
        TimeEntry {
            timestamp: NO_TIMESTAMP,
            offset: self.base_offset,
        }
    }

    /// The last entry, or `(-1, base_offset)` when empty.
    pub fn last_entry(&self) -> TimeEntry {
        self.file
            .last_slot()
            .map_or(self.none(), |s| decode(self.base_offset, s))
    }

    /// The entry with the largest timestamp ≤ `target_timestamp`, or `(-1, base_offset)`
    /// when there is none.
    pub fn lookup(&self, target_timestamp: i64) -> TimeEntry {
        let slots = self.file.slots();
        let after =
            slots.partition_point(|s| decode(self.base_offset, s).timestamp <= target_timestamp);
        after
            .checked_sub(1)
            .and_then(|i| slots.get(i))
            .map_or(self.none(), |s| decode(self.base_offset, s))
    }

    /// The `n`th entry; [`crate::Error::IndexMisuse`] when `n ≥ entries()`.
    pub fn entry(&self, n: usize) -> Result<TimeEntry> {
        self.file
            .slot(n)
            .map(|s| decode(self.base_offset, s))
            .ok_or_else(|| {
                misuse(
                    self.path(),
                    format!(
                        "entry {n} requested from a time index of {} entries",
                        self.entries()
                    ),
                )
            })
    }

    /// Appends `(timestamp, offset)` when `timestamp` is greater than the last entry's
    /// timestamp (`-1` when empty); otherwise, when it is equal, does nothing.
    ///
    /// [`crate::Error::IndexMisuse`] when `offset` is below the last entry's offset (even with
    /// `skip_full_check`), `timestamp` is below the last entry's, the index is full and
    /// `skip_full_check` is not set (the roll/close entry sets it), no slot is left at all,
    /// or `offset` is below the base offset or more than `i32::MAX` above it.
    pub fn maybe_append(
        &mut self,
        timestamp: i64,
        offset: u64,
        skip_full_check: bool,
    ) -> Result<()> {
        let last = self.last_entry();
        if self.entries() > 0 {
            if offset < last.offset {
                return Err(misuse(
                    self.path(),
                    format!(
                        "offset {offset} is below the last entry's offset {}",
                        last.offset
                    ),
                ));
            }
            if timestamp < last.timestamp {
                return Err(misuse(
                    self.path(),
                    format!(
                        "timestamp {timestamp} is below the last entry's timestamp {}",
                        last.timestamp
                    ),
                ));
            }
        }
        if timestamp <= last.timestamp {
            return Ok(());
        }
        if !skip_full_check && self.is_full() {
            return Err(misuse(
                self.path(),
                format!("append to a full time index ({} entries)", self.entries()),
            ));
        }
        let relative = relative_offset(self.path(), self.base_offset, offset)?;
        let mut slot = [0; TIME_ENTRY_SIZE];
        let (ts, rel) = slot.split_at_mut(8);
        ts.copy_from_slice(&timestamp.to_be_bytes());
        rel.copy_from_slice(&relative.to_be_bytes());
        if self.file.push(slot) {
            Ok(())
        } else {
            Err(misuse(self.path(), "no free slot in the time index"))
        }
    }

    /// Drops every entry with an offset ≥ `offset`.
    pub fn truncate_to(&mut self, offset: u64) {
        let keep = self
            .file
            .slots()
            .partition_point(|s| decode(self.base_offset, s).offset < offset);
        self.file.truncate_entries(keep);
    }

    /// Removes all entries.
    pub fn reset(&mut self) {
        self.file.truncate_entries(0);
    }

    /// Resizes the file to `new_size_bytes` rounded down to a multiple of 12 and maps it
    /// again, keeping the entries that fit. `Ok(false)` when the size does not change.
    pub fn resize(&mut self, new_size_bytes: usize) -> Result<bool> {
        self.file.resize(new_size_bytes)
    }

    /// Drops trailing entries until the last slot is free for the entry a roll or close
    /// writes (`is_full` keeps it so); an index shrunk to fewer slots than it held (a
    /// smaller `segment.index.bytes` on reopen) needs this, or its segment could never
    /// roll. Fewer entries only make the index sparser.
    pub fn keep_last_slot_free(&mut self) {
        self.file
            .truncate_entries(self.max_entries().saturating_sub(1));
    }

    /// Drops the map and every entry for good (its log closed), so that a later open
    /// of the same file may resize it.
    pub(crate) fn unmap(&mut self) {
        self.file.unmap();
    }

    /// Shrinks the file to exactly its entries (done when the segment rolls or closes).
    pub fn trim_to_valid_size(&mut self) -> Result<()> {
        self.file.trim_to_valid_size()
    }

    /// [`crate::Error::Corrupt`] when the file length is not a multiple of 12, the last
    /// timestamp is below the first, an entry lies below the base offset, timestamps do not
    /// strictly increase or offsets decrease.
    pub fn sanity_check(&self) -> Result<()> {
        let len = self.size_bytes();
        if !len.is_multiple_of(TIME_ENTRY_SIZE) {
            return Err(corrupt(
                self.path(),
                len - len % TIME_ENTRY_SIZE,
                format!("time index length {len} is not a multiple of {TIME_ENTRY_SIZE}"),
            ));
        }
        let slots = self.file.slots();
        if let (Some(first), Some(last)) = (slots.first(), slots.last()) {
            let (first, last) = (
                decode(self.base_offset, first),
                decode(self.base_offset, last),
            );
            if last.timestamp < first.timestamp {
                return Err(corrupt(
                    self.path(),
                    (slots.len() - 1) * TIME_ENTRY_SIZE,
                    format!(
                        "last timestamp {} is below the first timestamp {}",
                        last.timestamp, first.timestamp
                    ),
                ));
            }
        }
        if let Some((i, _)) = slots
            .iter()
            .enumerate()
            .find(|(_, s)| raw_relative(s) > i32::MAX as u32)
        {
            return Err(corrupt(
                self.path(),
                i * TIME_ENTRY_SIZE,
                format!("entry {i} is below the base offset {}", self.base_offset),
            ));
        }
        for (i, (a, b)) in slots.iter().zip(slots.iter().skip(1)).enumerate() {
            let (a, b) = (decode(self.base_offset, a), decode(self.base_offset, b));
            if b.timestamp <= a.timestamp || b.offset < a.offset {
                return Err(corrupt(
                    self.path(),
                    (i + 1) * TIME_ENTRY_SIZE,
                    format!(
                        "entry {} ({}, {}) does not follow ({}, {})",
                        i + 1,
                        b.timestamp,
                        b.offset,
                        a.timestamp,
                        a.offset
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Writes the mapped entries back to the file and makes them durable.
    pub fn flush(&self) -> Result<()> {
        self.file.flush()
    }

    /// Renames the file (for example to `.deleted` or from `.swap`); the map stays in use.
    pub fn rename_to(&mut self, storage: &dyn Storage, new_path: &Path) -> Result<()> {
        self.file.rename_to(storage, new_path)
    }
}

#[cfg(test)]
mod tests;
