//! The storage seam: every byte the log writes, reads, maps or syncs goes through the
//! [`Storage`] and [`StorageFile`] traits.
//!
//! Production uses [`FileStorage`] (plain files, `pread`/`pwrite`, `fdatasync`, memmap2 for
//! indexes and sealed segments). Tests use [`SimStorage`], a simulated disk that can lose power: it keeps only
//! what was synced plus a random torn part of the rest, so durability claims can be checked
//! thousands of times without root or special kernels (the idea of redb's `StorageBackend`).

mod file;
mod sim;

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::Result;
use crate::clock::{Clock, SystemClock};

pub use file::FileStorage;
pub use sim::{PowerLoss, SimStorage};

/// How [`Storage::open`] treats a missing or existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Open an existing file; a missing one is an error.
    Existing,
    /// Open the file, creating it empty when missing.
    Create,
}

/// A file system: directories, names, and files to open.
pub trait Storage: Send + Sync + Debug {
    /// Opens (or creates, per `mode`) the file at `path` for reading and writing.
    fn open(&self, path: &Path, mode: OpenMode) -> Result<Arc<dyn StorageFile>>;
    /// Whether a file or directory exists at `path`.
    fn exists(&self, path: &Path) -> bool;
    /// Removes the file at `path`; a missing file is not an error.
    fn remove_file(&self, path: &Path) -> Result<()>;
    /// Renames `from` to `to`, replacing `to` if present.
    fn rename(&self, from: &Path, to: &Path) -> Result<()>;
    /// Creates `path` and its parents.
    fn create_dir_all(&self, path: &Path) -> Result<()>;
    /// Removes the empty directory at `path`; a missing directory is not an error, one that
    /// still holds entries is.
    fn remove_dir(&self, path: &Path) -> Result<()>;
    /// The full paths of the files directly inside `dir`.
    fn list_dir(&self, dir: &Path) -> Result<Vec<PathBuf>>;
    /// Makes creations, renames and removals inside `dir` durable.
    fn sync_dir(&self, dir: &Path) -> Result<()>;
    /// Takes an exclusive lock on `dir`, held until the returned guard drops.
    /// A lock held elsewhere is [`crate::Error::DirectoryLocked`].
    fn lock_dir(&self, dir: &Path) -> Result<Box<dyn DirLock>>;
}

/// An exclusive lock on a directory; dropping it releases the lock.
pub trait DirLock: Send + Sync + Debug {}

/// One open file. All methods take `&self`: positional reads and writes never move a shared
/// cursor, so readers on other threads never disturb the writer.
pub trait StorageFile: Send + Sync + Debug {
    /// The path the file was opened at.
    fn path(&self) -> &Path;
    /// The file's length in bytes.
    fn len(&self) -> Result<u64>;
    /// Whether the file is empty.
    fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Reads up to `buf.len()` bytes at `position`; fewer only at the end of the file.
    fn read_at(&self, buf: &mut [u8], position: u64) -> Result<usize>;
    /// Writes all of `buf` at `position`, growing the file when needed.
    fn write_all_at(&self, buf: &[u8], position: u64) -> Result<()>;
    /// Writes `parts` back to back from `position`, as [`StorageFile::write_all_at`] of
    /// their concatenation would: a produced batch whose header the leader restamped goes
    /// out as that header and the producer's records, without copying them together
    /// first. One `pwritev` on Linux; part after part elsewhere.
    fn write_all_parts_at(&self, parts: &[&[u8]], position: u64) -> Result<()> {
        let mut at = position;
        for part in parts {
            self.write_all_at(part, at)?;
            at += part.len() as u64;
        }
        Ok(())
    }
    /// Sets the file's length, cutting or zero-extending it. Cutting a file while a map
    /// of it is alive ([`StorageFile::is_mapped`]) is refused with
    /// [`crate::Error::SegmentInUse`]: the map's pages past the new end would fault.
    fn set_len(&self, len: u64) -> Result<()>;
    /// Reserves the disk blocks of `len` bytes from `position` without changing the
    /// file's length (Linux `fallocate` with `FALLOC_FL_KEEP_SIZE`, as RocksDB does for its
    /// files): writes there then skip the file system's block allocation. A hint: `false`
    /// where nothing was reserved (unsupported, or no space: the write reports that).
    /// Setting the file's length ([`StorageFile::set_len`], even to what it is) releases
    /// the blocks past the end.
    fn preallocate(&self, position: u64, len: u64) -> Result<bool> {
        let _ = (position, len);
        Ok(false)
    }
    /// Makes the file's data durable (`fdatasync`).
    fn sync_data(&self) -> Result<()>;
    /// Maps the first `len` bytes of the file for reading and writing. The file must already
    /// be at least `len` bytes long (call [`StorageFile::set_len`] first).
    fn map_mut(&self, len: usize) -> Result<Box<dyn MappedRegion>>;
    /// Maps `len` bytes of the file read-only; `len` may exceed the file's length, and
    /// later appends show through the map. The caller must touch only bytes the file
    /// holds, and must not cut the file while the map is alive: touching a mapped page
    /// past the end of a file is a bus error. (A copy on the simulated disk: it holds
    /// what the file held when mapped, and may be shorter than `len`.)
    fn map_read(&self, len: usize) -> Result<ReadMap>;
    /// Whether a map of this file ([`StorageFile::map_read`] or
    /// [`StorageFile::map_mut`]) is alive in this process, made through any handle — also
    /// one of a log closed since, whose readers still hold its bytes. Such a file must be
    /// rewritten, never cut in place. The same file is the same inode, not the same name:
    /// a file renamed over it, or created after it was unlinked, is another file.
    fn is_mapped(&self) -> bool;
}

/// Read-only bytes of a file that no longer changes: a memory map on real files, a copy on
/// the simulated disk. Shared by every reader of the file.
pub type ReadMap = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// A writable memory map of a file (or the simulated disk's equivalent).
pub trait MappedRegion: Send + Sync + Debug {
    /// The mapped bytes.
    fn bytes(&self) -> &[u8];
    /// The mapped bytes, writable.
    fn bytes_mut(&mut self) -> &mut [u8];
    /// Writes the mapped bytes back to the file and makes them durable.
    fn flush(&self) -> Result<()>;
}

/// Reads exactly `buf.len()` bytes at `position`, or reports how many were there.
/// Returns the number of bytes read, which is less than `buf.len()` only at the end of file.
pub(crate) fn read_fully_at(
    file: &dyn StorageFile,
    buf: &mut [u8],
    position: u64,
) -> Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        let n = file.read_at(&mut buf[done..], position + done as u64)?;
        if n == 0 {
            break;
        }
        done += n;
    }
    Ok(done)
}

/// Creates `dir` and any missing parents, and makes each new directory's name durable
/// by syncing its parent (as Kafka does since KAFKA-3968): an fsync of what is written
/// inside a new directory does not make the directory itself survive a power loss.
pub(crate) fn create_dir_all_durably(storage: &dyn Storage, dir: &Path) -> Result<()> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !storage.exists(d))
        .collect();
    storage.create_dir_all(dir)?;
    for created in missing {
        match created.parent() {
            Some(parent) if parent.as_os_str().is_empty() => storage.sync_dir(Path::new("."))?,
            Some(parent) => storage.sync_dir(parent)?,
            None => {}
        }
    }
    Ok(())
}

/// What a log needs from its surroundings: where bytes go and what time it is.
///
/// `Env::default()` is the real file system and the system clock; tests swap in
/// [`SimStorage`] and a [`crate::ManualClock`].
#[derive(Debug, Clone)]
pub struct Env {
    /// Where files live.
    pub storage: Arc<dyn Storage>,
    /// Where time comes from.
    pub clock: Arc<dyn Clock>,
}

impl Default for Env {
    fn default() -> Self {
        Self {
            storage: Arc::new(FileStorage),
            clock: Arc::new(SystemClock),
        }
    }
}

impl Env {
    /// The real file system with the given clock.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            ..Self::default()
        }
    }
}
