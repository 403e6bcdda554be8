//! [`MappedFile`]: the machinery shared by both indexes — a file of fixed-width `N`-byte
//! entries, opened through [`Storage`], preallocated and memory-mapped through
//! [`StorageFile::set_len`] and [`StorageFile::map_mut`].
//!
//! Byte layout: `entries × N` bytes of entries from byte 0, then free slots up to the mapped
//! length (`max_entries × N`). The meaning of an entry's bytes belongs to the index using it
//! (see `offset_index.rs` and `time_index.rs`). A new (or empty) file is preallocated to the
//! maximum size rounded down to a multiple of `N`, with no entries; an existing non-empty file
//! is mapped at exactly its length and every whole slot in it counts as an entry (Kafka's
//! rule), so a reopened index is full until it is resized.
//!
//! Invariant: `entries ≤ max_entries = mapped length / N`, so every slot below `entries` is
//! inside the map and reads never go out of bounds, whatever the file holds.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::storage::{MappedRegion, OpenMode, Storage, StorageFile};

/// A preallocated, mapped file of `N`-byte entries with an entry count.
#[derive(Debug)]
pub(crate) struct MappedFile<const N: usize> {
    /// Where the file lives now (follows [`MappedFile::rename_to`]).
    path: PathBuf,
    /// The open file, used to resize it.
    file: Arc<dyn StorageFile>,
    /// The map of the whole file; `None` only while resizing, or if remapping failed.
    map: Option<Box<dyn MappedRegion>>,
    /// How many slots from the start hold entries.
    entries: usize,
}

/// `size` rounded down to a multiple of `N`.
fn round_down<const N: usize>(size: usize) -> usize {
    size - size % N
}

impl<const N: usize> MappedFile<N> {
    /// Opens or creates the file at `path` (see the module doc for the sizing rules).
    pub(crate) fn open(storage: &dyn Storage, path: &Path, max_size_bytes: usize) -> Result<Self> {
        let file = storage.open(path, OpenMode::Create)?;
        let existing = file.len()?;
        let (len, entries) = if existing == 0 {
            let len = round_down::<N>(max_size_bytes);
            file.set_len(len as u64)?;
            (len, 0)
        } else {
            let len = usize::try_from(existing).map_err(|_| Error::Corrupt {
                path: path.to_path_buf(),
                position: 0,
                reason: format!("index file of {existing} bytes is too large to map"),
            })?;
            (len, len / N)
        };
        let map = file.map_mut(len)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            map: Some(map),
            entries,
        })
    }

    /// The file's current path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The mapped bytes (empty when there is no map).
    fn bytes(&self) -> &[u8] {
        match &self.map {
            Some(map) => map.bytes(),
            None => &[],
        }
    }

    /// The mapped length in bytes.
    pub(crate) fn size_bytes(&self) -> usize {
        self.bytes().len()
    }

    /// How many entries the index holds.
    pub(crate) fn entries(&self) -> usize {
        self.entries
    }

    /// How many entries fit in the mapped length.
    pub(crate) fn max_entries(&self) -> usize {
        self.size_bytes() / N
    }

    /// The slots that hold entries, in order; never reaches past the map.
    pub(crate) fn slots(&self) -> &[[u8; N]] {
        let (chunks, _) = self.bytes().as_chunks::<N>();
        chunks.get(..self.entries).unwrap_or(chunks)
    }

    /// The `n`th entry, if there is one.
    pub(crate) fn slot(&self, n: usize) -> Option<&[u8; N]> {
        self.slots().get(n)
    }

    /// The last entry, if any.
    pub(crate) fn last_slot(&self) -> Option<&[u8; N]> {
        self.slots().last()
    }

    /// Writes `entry` into the next free slot; `false` (and nothing written) when full.
    pub(crate) fn push(&mut self, entry: [u8; N]) -> bool {
        let Some(map) = self.map.as_mut() else {
            return false;
        };
        let (chunks, _) = map.bytes_mut().as_chunks_mut::<N>();
        match chunks.get_mut(self.entries) {
            Some(slot) => {
                *slot = entry;
                self.entries += 1;
                true
            }
            None => false,
        }
    }

    /// Keeps only the first `n` entries (no-op when `n ≥ entries`).
    pub(crate) fn truncate_entries(&mut self, n: usize) {
        self.entries = self.entries.min(n);
    }

    /// Sets the file and map to `new_size_bytes` rounded down to a multiple of `N`, keeping
    /// as many entries as fit. Returns `false`, doing nothing, when the size is unchanged.
    ///
    /// The old map is flushed (so a storage whose maps are copies keeps the entries) and
    /// dropped before the file is resized, then the file is mapped again.
    pub(crate) fn resize(&mut self, new_size_bytes: usize) -> Result<bool> {
        let new_len = round_down::<N>(new_size_bytes);
        let old_len = self.size_bytes();
        if new_len == old_len {
            return Ok(false);
        }
        if let Some(map) = &self.map {
            map.flush()?;
        }
        self.map = None;
        let remapped = self
            .file
            .set_len(new_len as u64)
            .and_then(|()| self.file.map_mut(new_len));
        match remapped {
            Ok(map) => {
                self.map = Some(map);
                self.entries = self.entries.min(new_len / N);
                Ok(true)
            }
            Err(e) => {
                // Put back what we had; if even that fails the index is left empty and full.
                let restored = self.file.len().ok().and_then(|len| {
                    let len = usize::try_from(len).ok()?.min(old_len);
                    self.file.map_mut(len).ok()
                });
                self.map = restored;
                self.entries = self.entries.min(self.max_entries());
                Err(e)
            }
        }
    }

    /// Shrinks the file to exactly the entries it holds.
    pub(crate) fn trim_to_valid_size(&mut self) -> Result<()> {
        self.resize(self.entries * N).map(|_| ())
    }

    /// Writes the mapped bytes back to the file and makes them durable.
    pub(crate) fn flush(&self) -> Result<()> {
        self.map.as_ref().map_or(Ok(()), |m| m.flush())
    }

    /// Drops the map for good, with every entry, for an index whose log closed: a later
    /// open of the same files may then resize them, which a live map would forbid (its
    /// pages past a new end would fault). Lookups find no entry from then on.
    pub(crate) fn unmap(&mut self) {
        self.map = None;
        self.entries = 0;
    }

    /// Renames the file to `new_path`; the open file and its map stay in use.
    pub(crate) fn rename_to(&mut self, storage: &dyn Storage, new_path: &Path) -> Result<()> {
        storage.rename(&self.path, new_path)?;
        self.path = new_path.to_path_buf();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::FileStorage;

    fn open4(dir: &Path, max: usize) -> MappedFile<4> {
        MappedFile::<4>::open(&FileStorage, &dir.join("f.idx"), max).unwrap()
    }

    #[test]
    fn new_file_is_preallocated_rounded_down_with_no_entries() {
        let dir = tempfile::tempdir().unwrap();
        let f = open4(dir.path(), 23);
        assert_eq!(f.size_bytes(), 20);
        assert_eq!(f.max_entries(), 5);
        assert_eq!(f.entries(), 0);
        assert_eq!(
            std::fs::metadata(dir.path().join("f.idx")).unwrap().len(),
            20
        );
    }

    #[test]
    fn push_fills_slots_until_full() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = open4(dir.path(), 8);
        assert!(f.push([1; 4]));
        assert!(f.push([2; 4]));
        assert!(!f.push([3; 4]));
        assert_eq!(f.slots(), &[[1; 4], [2; 4]]);
    }

    #[test]
    fn zero_size_index_has_no_slots() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = open4(dir.path(), 3);
        assert_eq!(f.max_entries(), 0);
        assert!(!f.push([0; 4]));
        assert!(f.slots().is_empty());
    }

    #[test]
    fn reopen_counts_every_slot_and_resize_keeps_what_fits() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = open4(dir.path(), 40);
        for i in 0..4 {
            assert!(f.push([i; 4]));
        }
        f.trim_to_valid_size().unwrap();
        drop(f);
        let mut f = open4(dir.path(), 40);
        assert_eq!((f.entries(), f.max_entries()), (4, 4));
        assert!(!f.push([9; 4]));
        assert!(f.resize(40).unwrap());
        assert!(f.push([9; 4]));
        assert!(f.resize(9).unwrap());
        assert_eq!(f.slots(), &[[0; 4], [1; 4]]);
        assert!(!f.resize(11).unwrap());
    }

    #[test]
    fn rename_moves_the_file_and_keeps_the_map() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = open4(dir.path(), 8);
        assert!(f.push([7; 4]));
        let new_path = dir.path().join("g.idx");
        f.rename_to(&FileStorage, &new_path).unwrap();
        assert_eq!(f.path(), new_path);
        assert!(!dir.path().join("f.idx").exists());
        assert!(f.push([8; 4]));
        f.flush().unwrap();
        assert_eq!(std::fs::read(&new_path).unwrap(), [7, 7, 7, 7, 8, 8, 8, 8]);
    }
}
