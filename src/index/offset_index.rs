//! [`SparseIndex`]: a segment's offset index (`.index`), mapping offsets to byte positions in
//! its `.log`, for the floor lookup that starts every read.
//!
//! Byte layout: 8-byte entries, big-endian, in increasing offset order:
//!
//! ```text
//! 0..4  relative offset u32 BE   offset − base_offset, at most i32::MAX
//! 4..8  position        u32 BE   byte position of the batch in the .log file
//! ```
//!
//! An entry maps a batch's last offset to the batch's start position. Sizing, preallocation
//! and mapping are in `mapped_file.rs`.

use std::path::Path;

use super::mapped_file::MappedFile;
use super::{corrupt, misuse, relative_offset};
use crate::error::Result;
use crate::storage::Storage;

/// Bytes per `.index` entry.
pub const OFFSET_ENTRY_SIZE: usize = 8;

/// One `.index` entry: the batch ending at `offset` starts at byte `position` of the `.log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// Absolute offset (the base offset plus the stored relative offset).
    pub offset: u64,
    /// Byte position in the segment's `.log` file.
    pub position: u32,
}

/// Maps offsets to byte positions in a segment's `.log`, one entry per index interval.
///
/// ```
/// # fn main() -> streamlog::Result<()> {
/// use streamlog::{FileStorage, IndexEntry, SparseIndex};
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("00000000000000000100.index");
/// let mut index = SparseIndex::open(&FileStorage, &path, 100, 4096)?;
/// index.append(110, 4100)?;
/// index.append(125, 8300)?;
/// assert_eq!(index.lookup(120), IndexEntry { offset: 110, position: 4100 });
/// assert_eq!(index.lookup(105), IndexEntry { offset: 100, position: 0 });
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct SparseIndex {
    file: MappedFile<OFFSET_ENTRY_SIZE>,
    base_offset: u64,
}

/// Decodes one slot; never fails, whatever the bytes.
fn decode(base_offset: u64, slot: &[u8; OFFSET_ENTRY_SIZE]) -> IndexEntry {
    let [r0, r1, r2, r3, p0, p1, p2, p3] = *slot;
    IndexEntry {
        offset: base_offset.saturating_add(u64::from(u32::from_be_bytes([r0, r1, r2, r3]))),
        position: u32::from_be_bytes([p0, p1, p2, p3]),
    }
}

/// The stored relative offset of a slot.
fn raw_relative(slot: &[u8; OFFSET_ENTRY_SIZE]) -> u32 {
    let [r0, r1, r2, r3, ..] = *slot;
    u32::from_be_bytes([r0, r1, r2, r3])
}

impl SparseIndex {
    /// Opens the index at `path`, creating it when missing.
    ///
    /// A new (or empty) file is preallocated to `max_index_size_bytes` rounded down to a
    /// multiple of 8, with no entries. An existing non-empty file is mapped at exactly its
    /// length and every slot counts as an entry, so it is full until [`Self::resize`]; a
    /// length that is not a multiple of 8 is reported by [`Self::sanity_check`], not here.
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

    /// Whether no further entry fits.
    pub fn is_full(&self) -> bool {
        self.entries() >= self.max_entries()
    }

    /// The mapped length in bytes.
    pub fn size_bytes(&self) -> usize {
        self.file.size_bytes()
    }

    /// The offset of the last entry, or the base offset when empty.
    pub fn last_offset(&self) -> u64 {
        self.file
            .last_slot()
            .map_or(self.base_offset, |s| decode(self.base_offset, s).offset)
    }

    /// The entry with the largest offset ≤ `target_offset`, or `(base_offset, 0)` when there
    /// is none: where a scan of the `.log` for `target_offset` may start.
    pub fn lookup(&self, target_offset: u64) -> IndexEntry {
        let slots = self.file.slots();
        let after = slots.partition_point(|s| decode(self.base_offset, s).offset <= target_offset);
        after.checked_sub(1).and_then(|i| slots.get(i)).map_or(
            IndexEntry {
                offset: self.base_offset,
                position: 0,
            },
            |s| decode(self.base_offset, s),
        )
    }

    /// The first entry whose position is at least `start.position + fetch_size_bytes`: where
    /// a read of that many bytes from `start` can stop. `None` when no entry lies that far.
    pub fn fetch_upper_bound(
        &self,
        start: IndexEntry,
        fetch_size_bytes: u32,
    ) -> Option<IndexEntry> {
        let target = u64::from(start.position) + u64::from(fetch_size_bytes);
        let slots = self.file.slots();
        let n = slots.partition_point(|s| u64::from(decode(self.base_offset, s).position) < target);
        slots.get(n).map(|s| decode(self.base_offset, s))
    }

    /// The `n`th entry; [`crate::Error::IndexMisuse`] when `n ≥ entries()`.
    pub fn entry(&self, n: usize) -> Result<IndexEntry> {
        self.file
            .slot(n)
            .map(|s| decode(self.base_offset, s))
            .ok_or_else(|| {
                misuse(
                    self.path(),
                    format!(
                        "entry {n} requested from an index of {} entries",
                        self.entries()
                    ),
                )
            })
    }

    /// Appends `offset → position`.
    ///
    /// [`crate::Error::IndexMisuse`] when the index is full, when `offset` is not greater than
    /// the last entry's (the first entry may equal the base offset), or when `offset` is
    /// below the base offset or more than `i32::MAX` above it.
    pub fn append(&mut self, offset: u64, position: u32) -> Result<()> {
        if self.is_full() {
            return Err(misuse(
                self.path(),
                format!("append to a full index ({} entries)", self.entries()),
            ));
        }
        let relative = relative_offset(self.path(), self.base_offset, offset)?;
        if self.entries() > 0 && offset <= self.last_offset() {
            return Err(misuse(
                self.path(),
                format!(
                    "offset {offset} is not greater than the last offset {}",
                    self.last_offset()
                ),
            ));
        }
        let mut slot = [0; OFFSET_ENTRY_SIZE];
        let (rel, pos) = slot.split_at_mut(4);
        rel.copy_from_slice(&relative.to_be_bytes());
        pos.copy_from_slice(&position.to_be_bytes());
        if self.file.push(slot) {
            Ok(())
        } else {
            Err(misuse(self.path(), "no free slot in the index"))
        }
    }

    /// Removes every entry with an offset ≥ `offset`.
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

    /// Resizes the file to `new_size_bytes` rounded down to a multiple of 8 and maps it
    /// again, keeping the entries that fit. `Ok(false)` when the size does not change.
    pub fn resize(&mut self, new_size_bytes: usize) -> Result<bool> {
        self.file.resize(new_size_bytes)
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

    /// [`crate::Error::Corrupt`] when the file length is not a multiple of 8, an entry lies
    /// below the base offset (a negative relative offset), offsets do not strictly increase,
    /// or positions decrease.
    pub fn sanity_check(&self) -> Result<()> {
        let len = self.size_bytes();
        if !len.is_multiple_of(OFFSET_ENTRY_SIZE) {
            return Err(corrupt(
                self.path(),
                len - len % OFFSET_ENTRY_SIZE,
                format!("index length {len} is not a multiple of {OFFSET_ENTRY_SIZE}"),
            ));
        }
        let slots = self.file.slots();
        if let Some((i, _)) = slots
            .iter()
            .enumerate()
            .find(|(_, s)| raw_relative(s) > i32::MAX as u32)
        {
            return Err(corrupt(
                self.path(),
                i * OFFSET_ENTRY_SIZE,
                format!("entry {i} is below the base offset {}", self.base_offset),
            ));
        }
        for (i, (a, b)) in slots.iter().zip(slots.iter().skip(1)).enumerate() {
            let (a, b) = (decode(self.base_offset, a), decode(self.base_offset, b));
            if b.offset <= a.offset || b.position < a.position {
                return Err(corrupt(
                    self.path(),
                    (i + 1) * OFFSET_ENTRY_SIZE,
                    format!(
                        "entry {} ({}, {}) does not follow ({}, {})",
                        i + 1,
                        b.offset,
                        b.position,
                        a.offset,
                        a.position
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
