//! [`FileStorage`]: the real file system, with positional I/O, `fdatasync`, memmap2 maps for
//! indexes and segment logs, and `flock`-style directory locks (`std::fs::File::try_lock`).
//!
//! Maps and cuts: touching a mapped page past the end of a file is a bus error (SIGBUS),
//! not an error value, and a map outlives the log that made it when readers hold its
//! bytes — also after that log closed and the directory was opened again. So every map
//! made here is counted in one process-wide registry by file identity (device and inode),
//! whichever handle or log made it: [`StorageFile::is_mapped`] answers from it (the log
//! then rewrites a file instead of cutting it), and [`StorageFile::set_len`] refuses to
//! shrink a file that any live map covers. Maps made by other processes are not counted:
//! the directory lock keeps other processes from opening the log at all.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::{Mmap, MmapMut};
use parking_lot::Mutex;

use super::{DirLock, MappedRegion, OpenMode, ReadMap, Storage, StorageFile};
use crate::error::{Error, IoContext, Result};

/// The operating system's file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct FileStorage;

/// Name of the lock file inside a locked directory.
const LOCK_FILE: &str = ".lock";

impl Storage for FileStorage {
    fn open(&self, path: &Path, mode: OpenMode) -> Result<Arc<dyn StorageFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(mode == OpenMode::Create)
            .truncate(false)
            .open(path)
            .at(path)?;
        let metadata = file.metadata().at(path)?;
        Ok(Arc::new(OsFile {
            path: path.to_path_buf(),
            file,
            id: (metadata.dev(), metadata.ino()),
        }))
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn remove_file(&self, path: &Path) -> Result<()> {
        match fs::remove_file(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other.at(path),
        }
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        fs::rename(from, to).at(from)
    }

    fn create_dir_all(&self, path: &Path) -> Result<()> {
        fs::create_dir_all(path).at(path)
    }

    fn remove_dir(&self, path: &Path) -> Result<()> {
        match fs::remove_dir(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other.at(path),
        }
    }

    fn list_dir(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir).at(dir)? {
            out.push(entry.at(dir)?.path());
        }
        Ok(out)
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        File::open(dir).and_then(|d| d.sync_all()).at(dir)
    }

    fn lock_dir(&self, dir: &Path) -> Result<Box<dyn DirLock>> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .at(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(Box::new(OsDirLock { _file: file })),
            Err(TryLockError::WouldBlock) => Err(Error::DirectoryLocked {
                path: dir.to_path_buf(),
            }),
            Err(TryLockError::Error(e)) => Err(Error::io(path, e)),
        }
    }
}

/// Holds the lock file open; the OS releases the lock when it closes.
#[derive(Debug)]
struct OsDirLock {
    _file: File,
}

impl DirLock for OsDirLock {}

/// A file's identity: device and inode. A mapped inode stays allocated (the map holds
/// it), so no other file can take its number while it has maps.
type FileId = (u64, u64);

/// How many maps of each file are alive in this process, made through any handle by any
/// log. Held while a map is made and while a file's length is set, so no map can appear
/// between the check and the cut.
static LIVE_MAPS: Mutex<BTreeMap<FileId, usize>> = Mutex::new(BTreeMap::new());

/// Counts one live map of a file in [`LIVE_MAPS`] until it drops. Declared after the map
/// in the structs holding both, so it drops after the map is unmapped.
#[derive(Debug)]
struct MapCount(FileId);

impl Drop for MapCount {
    fn drop(&mut self) {
        let mut maps = LIVE_MAPS.lock();
        if let Some(count) = maps.get_mut(&self.0) {
            *count -= 1;
            if *count == 0 {
                maps.remove(&self.0);
            }
        }
    }
}

#[derive(Debug)]
struct OsFile {
    path: PathBuf,
    file: File,
    id: FileId,
}

impl OsFile {
    /// Makes a map of the file with `map` and counts it, under the registry's lock.
    fn counted<M>(&self, map: impl FnOnce(&File) -> std::io::Result<M>) -> Result<(M, MapCount)> {
        let mut maps = LIVE_MAPS.lock();
        let made = map(&self.file).at(&self.path)?;
        *maps.entry(self.id).or_default() += 1;
        Ok((made, MapCount(self.id)))
    }
}

impl StorageFile for OsFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn len(&self) -> Result<u64> {
        Ok(self.file.metadata().at(&self.path)?.len())
    }

    fn read_at(&self, buf: &mut [u8], position: u64) -> Result<usize> {
        loop {
            match self.file.read_at(buf, position) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                other => return other.at(&self.path),
            }
        }
    }

    fn write_all_at(&self, buf: &[u8], position: u64) -> Result<()> {
        self.file.write_all_at(buf, position).at(&self.path)
    }

    #[cfg(target_os = "linux")]
    fn write_all_parts_at(&self, parts: &[&[u8]], position: u64) -> Result<()> {
        use std::io::IoSlice;
        let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
        let mut left = &mut slices[..];
        IoSlice::advance_slices(&mut left, 0);
        let mut at = position;
        while !left.is_empty() {
            match rustix::io::pwritev(&self.file, left, at) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()).at(&self.path),
                Ok(n) => {
                    at += n as u64;
                    IoSlice::advance_slices(&mut left, n);
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(std::io::Error::from(e)).at(&self.path),
            }
        }
        Ok(())
    }

    #[cfg(target_os = "linux")]
    fn preallocate(&self, position: u64, len: u64) -> Result<bool> {
        use rustix::fs::{FallocateFlags, fallocate};
        use rustix::io::Errno;
        match fallocate(&self.file, FallocateFlags::KEEP_SIZE, position, len) {
            Ok(()) => Ok(true),
            // Not supported here (or interrupted): the writes go on without it.
            Err(Errno::OPNOTSUPP | Errno::NOSYS | Errno::INVAL | Errno::FBIG | Errno::INTR) => {
                Ok(false)
            }
            // No room (on the disk or in the quota): the writes go on without it, and
            // report a full disk themselves. ext4 keeps the blocks a failed call took
            // before running out, past the end where nothing uses them, and they would
            // take the disk's last free bytes from every other file (a write to a mapped
            // index page then faults): setting the length gives them back.
            Err(Errno::NOSPC | Errno::DQUOT) => {
                let len = self.len()?;
                self.file.set_len(len).at(&self.path)?;
                Ok(false)
            }
            Err(e) => Err(std::io::Error::from(e)).at(&self.path),
        }
    }

    fn set_len(&self, len: u64) -> Result<()> {
        let maps = LIVE_MAPS.lock();
        if maps.contains_key(&self.id) && len < self.len()? {
            return Err(Error::SegmentInUse {
                path: self.path.clone(),
            });
        }
        self.file.set_len(len).at(&self.path)
    }

    fn is_mapped(&self) -> bool {
        LIVE_MAPS.lock().contains_key(&self.id)
    }

    fn sync_data(&self) -> Result<()> {
        self.file.sync_data().at(&self.path)
    }

    fn map_mut(&self, len: usize) -> Result<Box<dyn MappedRegion>> {
        if len == 0 {
            // A zero-length map is not allowed by mmap(2); an empty region needs no mapping.
            return Ok(Box::new(EmptyRegion));
        }
        // SAFETY: the map covers `len` bytes the caller has sized the file to. Index files are
        // owned by one open log (the directory lock keeps other processes out); within the
        // process only the owning index cuts the file, after dropping this map, and
        // `set_len` refuses to shrink a file while any map of it is counted alive.
        let (map, count) =
            self.counted(|file| unsafe { memmap2::MmapOptions::new().len(len).map_mut(file) })?;
        // Only a hint: a kernel that refuses it maps the index as before.
        let _ = map.advise(memmap2::Advice::Random);
        Ok(Box::new(OsMap {
            path: self.path.clone(),
            map,
            _count: count,
        }))
    }

    fn map_read(&self, len: usize) -> Result<ReadMap> {
        if len == 0 {
            return Ok(Arc::new(Vec::new()));
        }
        // SAFETY: segment `.log` files are mapped for reading. Readers touch only bytes
        // below the segment's published size, which were written (by `pwrite`) before the
        // size was published and never change afterwards: appends go past them, and no
        // file is cut while a map of it is alive — `set_len` refuses to shrink a file any
        // map counted in `LIVE_MAPS` covers, whichever handle or log (also one closed
        // since) made it, and the log asks `is_mapped` first and rewrites such a segment
        // to a new file instead (`Segment::release_map`, `Segment::rewrite`). A segment
        // file is created only after any file of that name is unlinked, and the directory
        // lock keeps other processes out. A disk read error on a mapped page is a SIGBUS
        // rather than an `Error::Io`, as for every mmap-based store.
        let (map, count) =
            self.counted(|file| unsafe { memmap2::MmapOptions::new().len(len).map(file) })?;
        Ok(Arc::new(ReadOnlyMap { map, _count: count }))
    }
}

/// A read-only map of a `.log`, counted in [`LIVE_MAPS`] while it lives.
struct ReadOnlyMap {
    map: Mmap,
    _count: MapCount,
}

impl AsRef<[u8]> for ReadOnlyMap {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

#[derive(Debug)]
struct OsMap {
    path: PathBuf,
    map: MmapMut,
    _count: MapCount,
}

impl MappedRegion for OsMap {
    fn bytes(&self) -> &[u8] {
        &self.map
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.map
    }

    fn flush(&self) -> Result<()> {
        self.map.flush().at(&self.path)
    }
}

/// The region of a zero-length file.
#[derive(Debug)]
pub(crate) struct EmptyRegion;

impl MappedRegion for EmptyRegion {
    fn bytes(&self) -> &[u8] {
        &[]
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut []
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file with 8 KiB of sevens at `name` in `dir`, open.
    fn file_of_sevens(dir: &Path, name: &str) -> Arc<dyn StorageFile> {
        let file = FileStorage.open(&dir.join(name), OpenMode::Create).unwrap();
        file.write_all_at(&[7; 8192], 0).unwrap();
        file
    }

    #[test]
    fn parts_are_written_back_to_back_like_their_concatenation() {
        let dir = tempfile::tempdir().unwrap();
        let file = file_of_sevens(dir.path(), "0.log");
        let big = vec![3u8; 300_000]; // more than one page, as a batch's records are
        file.write_all_parts_at(&[b"head", &[], &big, b"!"], 8000)
            .unwrap();
        assert_eq!(file.len().unwrap(), 8000 + 4 + 300_000 + 1);
        let mut back = vec![0u8; 4 + 300_000 + 1 + 8];
        let n = file.read_at(&mut back, 7992).unwrap();
        assert_eq!(n, 8 + 4 + 300_000 + 1);
        let mut expected = vec![7u8; 8];
        expected.extend_from_slice(b"head");
        expected.extend_from_slice(&big);
        expected.push(b'!');
        assert_eq!(back[..n], expected[..]);
        file.write_all_parts_at(&[], 0).unwrap(); // nothing to write
        assert_eq!(file.len().unwrap(), 8000 + 4 + 300_000 + 1);
    }

    #[test]
    fn a_file_mapped_through_one_handle_is_not_cut_through_another() {
        let dir = tempfile::tempdir().unwrap();
        let first = file_of_sevens(dir.path(), "0.log");
        let map = first.map_read(1 << 20).unwrap();
        // Another handle on the same file, as a later open of the directory makes.
        let second = FileStorage
            .open(&dir.path().join("0.log"), OpenMode::Existing)
            .unwrap();
        assert!(second.is_mapped());
        assert!(matches!(
            second.set_len(10),
            Err(Error::SegmentInUse { .. })
        ));
        second.set_len(9000).unwrap(); // growing is harmless
        assert_eq!((*map).as_ref()[..8192], [7; 8192]);
        drop(map);
        assert!(!second.is_mapped());
        second.set_len(10).unwrap();
        assert_eq!(first.len().unwrap(), 10);
    }

    #[test]
    fn maps_count_by_inode_not_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let old = file_of_sevens(dir.path(), "0.log");
        let index = file_of_sevens(dir.path(), "0.index");
        let _map = old.map_read(8192).unwrap();
        let region = index.map_mut(8192).unwrap();
        assert!(index.is_mapped());
        drop(region);
        assert!(!index.is_mapped());
        // A copy renamed over the mapped file is another file: free to cut.
        file_of_sevens(dir.path(), "0.log.rewrite");
        let (from, to) = (dir.path().join("0.log.rewrite"), dir.path().join("0.log"));
        FileStorage.rename(&from, &to).unwrap();
        let fresh = FileStorage.open(&to, OpenMode::Existing).unwrap();
        assert!(old.is_mapped() && !fresh.is_mapped());
        fresh.set_len(0).unwrap();
    }
}
