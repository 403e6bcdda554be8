//! [`SimStorage`]: an in-memory disk that can lose power, for crash tests of everything above
//! the [`Storage`] seam. This file owns the simulated disk, its file handles, maps and locks.
//!
//! What the simulated disk guarantees:
//! - Each file has `current` bytes (what reads see, like the page cache), `durable` bytes (what
//!   survives a crash) and a journal of the writes and `set_len` calls since its last
//!   `sync_data`, in order. `sync_data` makes `durable = current` and empties the journal.
//! - [`SimStorage::power_loss`] returns a new, independent disk. Each file starts from
//!   `durable`, then replays a seeded random prefix of its journal; the last replayed write may
//!   be torn (only a prefix of its bytes lands), and for about 1 file in 4 the torn part is
//!   filled with garbage instead. `.index` and `.timeindex` files are never trusted: about 1 in
//!   4 comes back as garbage of a random length, or empty. Synced bytes that no later write or
//!   `set_len` touched always survive. Locks, `fail_writes` and the counters start afresh.
//! - A new file or directory is durable only once its directory is synced (`sync_dir`), as
//!   POSIX promises (an `fdatasync` of the file covers its bytes, not its name): a power
//!   loss drops the files and directories created since their directory's last sync, with
//!   everything under them; a rename carries that to the new name. Simplification: a
//!   removal, and a rename of a durable file, are durable at once, as on a journaled file
//!   system that commits metadata in order.
//! - Maps are counted per file, as on real files: `is_mapped` is true while any map or
//!   region of the file lives, and `set_len` refuses to shrink such a file
//!   (`SegmentInUse`), so the log takes the same decisions here as on a real disk.
//! - A [`MappedRegion`] is a copy of the file's first bytes. `flush` writes the changed bytes
//!   back and makes the whole file durable (msync + fsync); dropping it unflushed writes the
//!   changed bytes back as an un-synced journal write (dirty pages left in the page cache).
//!   Bytes beyond the file's length at write-back time are dropped, never regrown.
//! - Paths are kept as given and compared component-wise. An open handle follows its file
//!   across renames and keeps working on a removed file's orphaned bytes, like a real fd.
//!   `lock_dir` creates an empty `.lock` file in the directory, as [`super::FileStorage`] does.
//! - Files are capped at 4 GiB; larger extents are `FileTooLarge` errors, never panics.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{DirLock, MappedRegion, OpenMode, ReadMap, Storage, StorageFile};
use crate::error::{Error, Result};

const DISK_FULL: &str = "simulated disk full";

/// Largest simulated file, so no input can make the disk allocate without bound.
const MAX_FILE_LEN: usize = 1 << 32;

/// A simulated disk in memory; clones share it. Reads see every write; only `sync_data` and
/// region flushes make bytes durable. [`SimStorage::power_loss`] gives the disk a crash leaves:
/// synced bytes, plus a random, possibly torn or garbled prefix of the later writes per file.
#[derive(Debug, Clone, Default)]
pub struct SimStorage {
    disk: Arc<Mutex<Disk>>,
}

/// What [`SimStorage::power_loss_with`] may do beyond losing and tearing un-synced writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PowerLoss {
    /// Let about 1 file in 4 fill its torn write with garbage instead of leaving it short.
    pub garbage: bool,
    /// Let about 1 in 4 `.index`/`.timeindex` files come back as garbage or empty.
    pub lose_indexes: bool,
}

impl Default for PowerLoss {
    /// Everything a real crash may do: both faults on.
    fn default() -> Self {
        Self {
            garbage: true,
            lose_indexes: true,
        }
    }
}

#[derive(Debug, Default)]
struct Disk {
    files: BTreeMap<PathBuf, Arc<Mutex<FileState>>>,
    dirs: BTreeSet<PathBuf>,
    /// Names (files and directories) made since their directory was last synced: a power
    /// loss drops them.
    unsynced_names: BTreeSet<PathBuf>,
    locks: BTreeSet<PathBuf>,
    fail_writes: bool,
    /// Syncs fail (as after a writeback error) while writes succeed.
    fail_syncs: bool,
    /// Syncs panic (a buggy storage), for tests of what a panic leaves behind.
    #[cfg(test)]
    panic_on_sync: bool,
    /// Bytes of writes the disk still takes (`None`: no limit), for tests of a disk that
    /// fills up part way through a write.
    room: Option<usize>,
    syncs: u64,
    dir_syncs: u64,
    /// How long each `sync_data` takes (real time, slept before it syncs).
    sync_latency: std::time::Duration,
}

#[derive(Default)]
struct FileState {
    current: Vec<u8>,
    durable: Vec<u8>,
    journal: Vec<Op>,
    /// End of the blocks reserved by `preallocate` (0: none). Like ext4's, they outlive a
    /// crash and go when the length is set; they change no byte the file holds.
    reserved_to: usize,
    /// Cloned into every live map and region of the file: the file is mapped while
    /// anyone else holds it.
    maps: Arc<()>,
    /// Byte ranges a failed sync dropped: still read from `current` (the page cache), but
    /// marked clean without reaching the disk, so no later sync writes them until they are
    /// written again (Linux since 4.13; PostgreSQL's "fsyncgate").
    lost: Vec<(usize, usize)>,
}

/// One un-synced operation: a write of bytes at a position, or a `set_len`.
enum Op {
    Write(usize, Vec<u8>),
    SetLen(usize),
}

fn io_error(path: &Path, kind: ErrorKind, message: &str) -> Error {
    Error::io(path, io::Error::new(kind, message))
}

fn not_found(path: &Path) -> Error {
    io_error(path, ErrorKind::NotFound, "no such file or directory")
}

/// Checks that `len` bytes at `position` fit in a simulated file; returns the position.
fn extent(path: &Path, position: u64, len: usize) -> Result<usize> {
    let fits = |p: &usize| p.checked_add(len).is_some_and(|end| end <= MAX_FILE_LEN);
    let too_large = || io_error(path, ErrorKind::FileTooLarge, "simulated file too large");
    usize::try_from(position)
        .ok()
        .filter(fits)
        .ok_or_else(too_large)
}

/// Writes `bytes` at `position`, zero-filling any gap.
fn put(buf: &mut Vec<u8>, position: usize, bytes: &[u8]) {
    let end = position + bytes.len();
    if buf.len() < end {
        buf.resize(end, 0);
    }
    buf[position..end].copy_from_slice(bytes);
}

/// `path` and its ancestors, leaving out the empty path a relative path ends with.
fn with_ancestors(path: &Path) -> impl Iterator<Item = PathBuf> {
    path.ancestors()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
}

impl Op {
    fn apply(&self, buf: &mut Vec<u8>) {
        match self {
            Op::Write(position, bytes) => put(buf, *position, bytes),
            Op::SetLen(len) => buf.resize(*len, 0),
        }
    }
}

impl fmt::Debug for FileState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (len, ops) = (self.current.len(), self.journal.len());
        write!(f, "FileState({len} bytes, {ops} un-synced ops)")
    }
}

impl FileState {
    /// A file whose `bytes` are all durable, with blocks reserved up to `reserved_to`.
    fn settled(bytes: Vec<u8>, reserved_to: usize) -> Arc<Mutex<Self>> {
        let journal = Vec::new();
        Arc::new(Mutex::new(Self {
            durable: bytes.clone(),
            current: bytes,
            journal,
            reserved_to,
            maps: Arc::default(),
            lost: Vec::new(),
        }))
    }

    fn write(&mut self, position: usize, bytes: &[u8]) {
        put(&mut self.current, position, bytes);
        self.journal.push(Op::Write(position, bytes.to_vec()));
        self.keep_lost_outside(position, position + bytes.len());
    }

    /// Drops `[start, end)` from the lost ranges: those bytes were written again.
    fn keep_lost_outside(&mut self, start: usize, end: usize) {
        let mut kept = Vec::with_capacity(self.lost.len());
        for &(a, b) in &self.lost {
            if b <= start || a >= end {
                kept.push((a, b));
                continue;
            }
            if a < start {
                kept.push((a, start));
            }
            if b > end {
                kept.push((end, b));
            }
        }
        self.lost = kept;
    }

    fn sync(&mut self) {
        let mut durable = self.current.clone();
        // Bytes a failed sync dropped are not written by this one: the disk keeps what it
        // had there.
        for &(a, b) in &self.lost {
            for i in a..b.min(durable.len()) {
                durable[i] = self.durable.get(i).copied().unwrap_or(0);
            }
        }
        self.durable = durable;
        self.journal.clear();
    }

    /// A failed sync: the writes since the last sync are marked clean without reaching the
    /// disk. A length change still lands at the next good sync.
    fn drop_unsynced_writes(&mut self) {
        for op in std::mem::take(&mut self.journal) {
            match op {
                Op::Write(position, bytes) => self.lost.push((position, position + bytes.len())),
                Op::SetLen(len) => self.journal.push(Op::SetLen(len)),
            }
        }
    }

    /// Writes back the bytes of a mapped copy that differ from `current`, within its length.
    fn write_back(&mut self, copy: &[u8]) {
        let copy = &copy[..copy.len().min(self.current.len())];
        let differs = |(i, b): (usize, &u8)| self.current[i] != *b;
        let first = copy.iter().enumerate().position(differs);
        let last = copy.iter().enumerate().rposition(differs);
        if let (Some(first), Some(last)) = (first, last) {
            self.write(first, &copy[first..=last]);
        }
    }

    /// The bytes left after a crash: `durable` plus a random, possibly torn journal prefix.
    fn crash(&self, rng: &mut Rng, options: PowerLoss, is_index: bool) -> Vec<u8> {
        if options.lose_indexes && is_index && rng.below(4) == 0 {
            let max = self.current.len().max(self.durable.len()).max(64);
            let len = rng.below(2) * rng.below(max + 1); // empty half of the time
            return rng.bytes(len);
        }
        let mut bytes = self.durable.clone();
        let replayed = rng.below(self.journal.len() + 1);
        let Some((last, before)) = self.journal[..replayed].split_last() else {
            return bytes;
        };
        before.iter().for_each(|op| op.apply(&mut bytes));
        match last {
            // Half the time the last write is cut short; otherwise it landed whole.
            Op::Write(position, data) if rng.below(2) == 0 => {
                let landed = rng.below(data.len() + 1);
                let mut torn = data[..landed].to_vec();
                if options.garbage && rng.below(4) == 0 {
                    torn.extend(rng.bytes(data.len() - landed));
                }
                put(&mut bytes, *position, &torn);
            }
            op => op.apply(&mut bytes),
        }
        bytes
    }
}

/// splitmix64: small, seedable, good enough to pick crash outcomes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`, or 0 when `n` is 0.
    fn below(&mut self, n: usize) -> usize {
        self.next().checked_rem(n as u64).unwrap_or(0) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

impl Disk {
    fn dir_exists(&self, dir: &Path) -> bool {
        dir.as_os_str().is_empty()
            || dir == Path::new(".")
            || dir.parent().is_none()
            || self.dirs.contains(dir)
    }

    fn parent_exists(&self, path: &Path) -> bool {
        path.parent().is_none_or(|p| self.dir_exists(p))
    }

    fn existing_dir(&self, dir: &Path) -> Result<()> {
        self.dir_exists(dir)
            .then_some(())
            .ok_or_else(|| not_found(dir))
    }

    fn check_writable(&self, path: &Path) -> Result<()> {
        if self.fail_writes {
            return Err(io_error(path, ErrorKind::StorageFull, DISK_FULL));
        }
        Ok(())
    }

    fn check_syncable(&self, path: &Path) -> Result<()> {
        #[cfg(test)]
        assert!(!self.panic_on_sync, "sync of {} panics", path.display());
        self.check_writable(path)?;
        if self.fail_syncs {
            return Err(io_error(
                path,
                ErrorKind::Other,
                "writeback failed (simulated)",
            ));
        }
        Ok(())
    }
}

impl SimStorage {
    /// An empty disk.
    pub fn new() -> Self {
        Self::default()
    }

    /// The disk as it comes back after losing power, with every fault a crash may cause.
    pub fn power_loss(&self, seed: u64) -> SimStorage {
        self.power_loss_with(seed, PowerLoss::default())
    }

    /// The disk as it comes back after losing power, with only the faults `options` allow.
    /// The result is a new disk; this one and its open handles are left as they are.
    pub fn power_loss_with(&self, seed: u64, options: PowerLoss) -> SimStorage {
        let disk = self.disk.lock();
        let mut after = Disk::default();
        let lost = |path: &Path| with_ancestors(path).any(|p| disk.unsynced_names.contains(&p));
        after.dirs = disk.dirs.iter().filter(|d| !lost(d)).cloned().collect();
        for (path, state) in disk.files.iter().filter(|(p, _)| !lost(p)) {
            // Each file gets its own stream, so a seed picks the same fate for the same file.
            let name = path.as_os_str().as_encoded_bytes();
            let fnv = |h: u64, b: &u8| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01B3);
            let mut rng = Rng(seed ^ name.iter().fold(0xCBF2_9CE4_8422_2325, fnv));
            let is_index = name.ends_with(b".index") || name.ends_with(b".timeindex");
            let state = state.lock();
            let bytes = state.crash(&mut rng, options, is_index);
            after
                .files
                .insert(path.clone(), FileState::settled(bytes, state.reserved_to));
        }
        SimStorage {
            disk: Arc::new(Mutex::new(after)),
        }
    }

    /// A new, independent disk as a process crash (SIGKILL) leaves it: every write the
    /// process made is kept, synced or not, because the page cache outlives the process.
    /// Open handles on the old disk are left alone and no longer matter.
    pub fn process_crash(&self) -> SimStorage {
        let disk = self.disk.lock();
        let mut after = Disk::default();
        after.dirs.clone_from(&disk.dirs);
        for (path, state) in &disk.files {
            let state = state.lock();
            let settled = FileState::settled(state.current.clone(), state.reserved_to);
            after.files.insert(path.clone(), settled);
        }
        SimStorage {
            disk: Arc::new(Mutex::new(after)),
        }
    }

    /// While `enabled`, writes, growing `set_len`, `sync_data` and region flushes fail with
    /// `StorageFull` and change nothing.
    pub fn fail_writes(&self, enabled: bool) {
        self.disk.lock().fail_writes = enabled;
    }

    /// While `enabled`, `sync_data` and region flushes fail with an I/O error and sync
    /// nothing, while writes still succeed: a writeback error. As on Linux, a failed
    /// `sync_data` marks the file's writes since its last sync clean without writing them:
    /// reads still see them, but no later sync makes them durable until they are written
    /// again.
    pub fn fail_syncs(&self, enabled: bool) {
        self.disk.lock().fail_syncs = enabled;
    }

    /// While `enabled`, `sync_data` and region flushes panic.
    #[cfg(test)]
    pub(crate) fn panic_on_sync(&self, enabled: bool) {
        self.disk.lock().panic_on_sync = enabled;
    }

    /// Lets writes take only `bytes` more bytes (`None`: no limit): the write that passes
    /// them lands its first bytes up to there and fails with `StorageFull`, as on a disk
    /// that fills up part way through a write; later writes fail whole. Unlike
    /// [`SimStorage::fail_writes`], syncs and region flushes still succeed.
    pub fn room_left(&self, bytes: Option<usize>) {
        self.disk.lock().room = bytes;
    }

    /// Makes every later `sync_data` take `latency` of real time before it syncs, as a
    /// disk's cache flush does (for tests of what concurrent appenders do meanwhile).
    pub fn sync_latency(&self, latency: std::time::Duration) {
        self.disk.lock().sync_latency = latency;
    }

    /// How many `sync_data` and region `flush` calls succeeded on this disk.
    pub fn sync_count(&self) -> u64 {
        self.disk.lock().syncs
    }

    /// How many `sync_dir` calls succeeded on this disk.
    pub fn sync_dir_count(&self) -> u64 {
        self.disk.lock().dir_syncs
    }

    /// The current length of the file at `path`, if there is one.
    pub fn file_len(&self, path: impl AsRef<Path>) -> Option<u64> {
        self.read_file(path).map(|b| b.len() as u64)
    }

    /// Bytes of blocks reserved past the end of the file at `path`
    /// ([`StorageFile::preallocate`]): 0 when none (or no such file).
    pub fn reserved_past_end(&self, path: impl AsRef<Path>) -> u64 {
        let file = self.disk.lock().files.get(path.as_ref()).cloned();
        file.map_or(0, |f| {
            let f = f.lock();
            f.reserved_to.saturating_sub(f.current.len()) as u64
        })
    }

    /// The current (not necessarily durable) contents of the file at `path`.
    pub fn read_file(&self, path: impl AsRef<Path>) -> Option<Vec<u8>> {
        let file = self.disk.lock().files.get(path.as_ref()).cloned();
        file.map(|f| f.lock().current.clone())
    }

    /// Replaces the file at `path` (creating it, and its directories) with `bytes`, durably.
    /// Open handles see the new bytes. Meant for tests that corrupt files on purpose.
    pub fn write_file(&self, path: impl AsRef<Path>, bytes: &[u8]) {
        let path = path.as_ref();
        let mut disk = self.disk.lock();
        let parents = path.parent().into_iter().flat_map(with_ancestors);
        disk.dirs.extend(parents);
        let durable: Vec<PathBuf> = with_ancestors(path).collect();
        disk.unsynced_names.retain(|name| !durable.contains(name));
        let mut state = disk.files.entry(path.to_path_buf()).or_default().lock();
        state.current = bytes.to_vec();
        state.sync();
    }
}

impl Storage for SimStorage {
    fn open(&self, path: &Path, mode: OpenMode) -> Result<Arc<dyn StorageFile>> {
        let mut disk = self.disk.lock();
        let state = match disk.files.get(path) {
            Some(state) => state.clone(),
            None if disk.dirs.contains(path) => {
                return Err(io_error(path, ErrorKind::IsADirectory, "is a directory"));
            }
            None if mode == OpenMode::Create && disk.parent_exists(path) => {
                disk.unsynced_names.insert(path.to_path_buf());
                disk.files.entry(path.to_path_buf()).or_default().clone()
            }
            None => return Err(not_found(path)),
        };
        let (disk, path) = (self.disk.clone(), path.to_path_buf());
        Ok(Arc::new(SimFile { disk, state, path }))
    }

    fn exists(&self, path: &Path) -> bool {
        let disk = self.disk.lock();
        disk.files.contains_key(path) || disk.dirs.contains(path)
    }

    fn remove_file(&self, path: &Path) -> Result<()> {
        let mut disk = self.disk.lock();
        disk.files.remove(path);
        disk.unsynced_names.remove(path);
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        let mut disk = self.disk.lock();
        if !disk.parent_exists(to) || disk.dirs.contains(to) {
            return Err(not_found(to));
        }
        let state = disk.files.remove(from).ok_or_else(|| not_found(from))?;
        disk.files.insert(to.to_path_buf(), state);
        if disk.unsynced_names.remove(from) {
            disk.unsynced_names.insert(to.to_path_buf());
        }
        Ok(())
    }

    fn create_dir_all(&self, path: &Path) -> Result<()> {
        let mut disk = self.disk.lock();
        if let Some(file) = with_ancestors(path).find(|d| disk.files.contains_key(d)) {
            return Err(io_error(&file, ErrorKind::NotADirectory, "not a directory"));
        }
        for dir in with_ancestors(path) {
            // A root or relative base (no parent to sync) is always there.
            if dir.parent().is_some_and(|p| !p.as_os_str().is_empty())
                && disk.dirs.insert(dir.clone())
            {
                disk.unsynced_names.insert(dir);
            } else {
                disk.dirs.insert(dir);
            }
        }
        Ok(())
    }

    fn remove_dir(&self, path: &Path) -> Result<()> {
        let mut disk = self.disk.lock();
        if disk.files.contains_key(path) {
            return Err(io_error(path, ErrorKind::NotADirectory, "not a directory"));
        }
        let mut entries = disk.files.keys().chain(&disk.dirs);
        if entries.any(|p| p.parent() == Some(path)) {
            return Err(io_error(
                path,
                ErrorKind::DirectoryNotEmpty,
                "directory not empty",
            ));
        }
        disk.dirs.remove(path);
        disk.unsynced_names.remove(path);
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let disk = self.disk.lock();
        disk.existing_dir(dir)?;
        let names = disk.files.keys().chain(&disk.dirs);
        let mut out: Vec<PathBuf> = names.filter(|p| p.parent() == Some(dir)).cloned().collect();
        out.sort();
        Ok(out)
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        let mut disk = self.disk.lock();
        disk.existing_dir(dir)?;
        disk.dir_syncs += 1;
        // `.` is the directory of relative names, whose parent reads as empty.
        let dir = if dir == Path::new(".") {
            Path::new("")
        } else {
            dir
        };
        disk.unsynced_names
            .retain(|name| name.parent() != Some(dir));
        Ok(())
    }

    fn lock_dir(&self, dir: &Path) -> Result<Box<dyn DirLock>> {
        let mut disk = self.disk.lock();
        disk.existing_dir(dir)?;
        if !disk.locks.insert(dir.to_path_buf()) {
            return Err(Error::DirectoryLocked {
                path: dir.to_path_buf(),
            });
        }
        disk.files.entry(dir.join(".lock")).or_default();
        Ok(Box::new(SimDirLock(self.disk.clone(), dir.to_path_buf())))
    }
}

/// Holds the lock on a directory (the path) of one simulated disk until dropped.
struct SimDirLock(Arc<Mutex<Disk>>, PathBuf);

impl fmt::Debug for SimDirLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SimDirLock({})", self.1.display())
    }
}

impl DirLock for SimDirLock {}

impl Drop for SimDirLock {
    fn drop(&mut self) {
        self.0.lock().locks.remove(&self.1);
    }
}

/// An open simulated file. Locks are always taken disk first, then file.
#[derive(Clone)]
struct SimFile {
    disk: Arc<Mutex<Disk>>,
    state: Arc<Mutex<FileState>>,
    path: PathBuf,
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SimFile({})", self.path.display())
    }
}

impl StorageFile for SimFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn len(&self) -> Result<u64> {
        Ok(self.state.lock().current.len() as u64)
    }

    fn read_at(&self, buf: &mut [u8], position: u64) -> Result<usize> {
        let state = self.state.lock();
        let len = state.current.len();
        let start = usize::try_from(position).unwrap_or(len).min(len);
        let n = (len - start).min(buf.len());
        buf[..n].copy_from_slice(&state.current[start..start + n]);
        Ok(n)
    }

    fn write_all_at(&self, buf: &[u8], position: u64) -> Result<()> {
        if buf.is_empty() {
            // Nothing to write, as on a real file: one ending before `position` does not grow.
            return Ok(());
        }
        let mut disk = self.disk.lock();
        disk.check_writable(&self.path)?;
        let position = extent(&self.path, position, buf.len())?;
        if let Some(room) = disk.room.as_mut() {
            if buf.len() > *room {
                let landed = std::mem::take(room);
                self.state.lock().write(position, &buf[..landed]);
                return Err(io_error(&self.path, ErrorKind::StorageFull, DISK_FULL));
            }
            *room -= buf.len();
        }
        self.state.lock().write(position, buf);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<()> {
        let disk = self.disk.lock();
        let len = extent(&self.path, len, 0)?;
        let mut state = self.state.lock();
        if len > state.current.len() {
            disk.check_writable(&self.path)?;
        }
        if len < state.current.len() && Arc::strong_count(&state.maps) > 1 {
            return Err(Error::SegmentInUse {
                path: self.path.clone(),
            });
        }
        state.current.resize(len, 0);
        state.journal.push(Op::SetLen(len));
        state.keep_lost_outside(len, usize::MAX);
        // Setting the length gives back the blocks reserved past it, as on ext4.
        state.reserved_to = 0;
        Ok(())
    }

    fn preallocate(&self, position: u64, len: u64) -> Result<bool> {
        let disk = self.disk.lock();
        if disk.check_writable(&self.path).is_err() {
            // No room: nothing reserved (the write reports the full disk).
            return Ok(false);
        }
        let end = position.saturating_add(len);
        let end = extent(&self.path, end, 0)?;
        let mut state = self.state.lock();
        state.reserved_to = state.reserved_to.max(end);
        Ok(true)
    }

    fn sync_data(&self) -> Result<()> {
        let latency = self.disk.lock().sync_latency;
        if !latency.is_zero() {
            std::thread::sleep(latency);
        }
        let mut disk = self.disk.lock();
        if let Err(e) = disk.check_syncable(&self.path) {
            if disk.fail_syncs && !disk.fail_writes {
                self.state.lock().drop_unsynced_writes();
            }
            return Err(e);
        }
        disk.syncs += 1;
        self.state.lock().sync();
        Ok(())
    }

    fn map_mut(&self, len: usize) -> Result<Box<dyn MappedRegion>> {
        let state = self.state.lock();
        let too_long = || io_error(&self.path, ErrorKind::InvalidInput, "map longer than file");
        let bytes = state.current.get(..len).ok_or_else(too_long)?.to_vec();
        let token = state.maps.clone();
        Ok(Box::new(SimRegion {
            file: self.clone(),
            bytes,
            _token: token,
        }))
    }

    fn map_read(&self, len: usize) -> Result<ReadMap> {
        // A snapshot of what the file holds now, up to `len`: later writes are not seen,
        // so readers fall back to positional reads past it.
        let state = self.state.lock();
        let end = len.min(state.current.len());
        Ok(Arc::new(SimReadMap {
            bytes: state.current[..end].to_vec(),
            _token: state.maps.clone(),
        }))
    }

    fn is_mapped(&self) -> bool {
        Arc::strong_count(&self.state.lock().maps) > 1
    }
}

/// A read map of a simulated file: a copy, counted as a map of the file while it lives.
struct SimReadMap {
    bytes: Vec<u8>,
    _token: Arc<()>,
}

impl AsRef<[u8]> for SimReadMap {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// A copy of a file's first bytes, written back on flush or drop; counted as a map of the
/// file while it lives.
struct SimRegion {
    file: SimFile,
    bytes: Vec<u8>,
    _token: Arc<()>,
}

impl fmt::Debug for SimRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SimRegion").field(&self.file).finish()
    }
}

impl MappedRegion for SimRegion {
    fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    fn flush(&self) -> Result<()> {
        let mut disk = self.file.disk.lock();
        disk.check_syncable(&self.file.path)?;
        disk.syncs += 1;
        let mut state = self.file.state.lock();
        state.write_back(&self.bytes);
        state.sync();
        Ok(())
    }
}

impl Drop for SimRegion {
    fn drop(&mut self) {
        self.file.state.lock().write_back(&self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLEAN: PowerLoss = PowerLoss {
        garbage: false,
        lose_indexes: false,
    };

    fn kind(result: Result<impl fmt::Debug>) -> ErrorKind {
        match result {
            Err(Error::Io { source, .. }) => source.kind(),
            other => panic!("expected an I/O error, got {other:?}"),
        }
    }

    /// A disk with directory `d` and the file `name` in it, open.
    fn disk_with(name: &str) -> (SimStorage, Arc<dyn StorageFile>) {
        let disk = SimStorage::new();
        disk.create_dir_all(Path::new("d")).unwrap();
        let file = disk
            .open(&Path::new("d").join(name), OpenMode::Create)
            .unwrap();
        disk.sync_dir(Path::new("d")).unwrap();
        (disk, file)
    }

    #[test]
    fn writes_a_failed_sync_dropped_never_become_durable_until_written_again() {
        let (disk, file) = disk_with("0.log");
        file.write_all_at(b"old!", 0).unwrap();
        file.sync_data().unwrap();
        file.write_all_at(b"NEW!", 0).unwrap();
        file.write_all_at(b"tail", 4).unwrap();
        disk.fail_syncs(true);
        assert!(file.sync_data().is_err());
        disk.fail_syncs(false);
        file.sync_data().unwrap();
        let mut read = [0u8; 8];
        file.read_at(&mut read, 0).unwrap();
        assert_eq!(&read, b"NEW!tail", "the page cache still has them");
        for seed in 0..50 {
            assert_eq!(
                crashed(&disk, seed, CLEAN, "0.log"),
                b"old!\0\0\0\0",
                "{seed}"
            );
        }
        // Written again, they are dirty again: the next sync makes them durable.
        file.write_all_at(b"NEW!tail", 0).unwrap();
        file.sync_data().unwrap();
        assert_eq!(crashed(&disk, 1, CLEAN, "0.log"), b"NEW!tail");
    }

    #[test]
    fn a_new_file_or_directory_survives_power_loss_only_once_its_directory_is_synced() {
        let disk = SimStorage::new();
        disk.create_dir_all(Path::new("a/b")).unwrap();
        let file = disk.open(Path::new("a/b/f"), OpenMode::Create).unwrap();
        file.write_all_at(b"bytes", 0).unwrap();
        file.sync_data().unwrap();
        let after = disk.power_loss(1);
        assert!(
            !after.exists(Path::new("a/b")),
            "b's name was never made durable"
        );
        disk.sync_dir(Path::new("a")).unwrap();
        let after = disk.power_loss(1);
        assert!(after.exists(Path::new("a/b")));
        assert!(
            !after.exists(Path::new("a/b/f")),
            "f's name was never made durable"
        );
        // A rename carries the name's state; a synced directory keeps it.
        disk.rename(Path::new("a/b/f"), Path::new("a/b/g")).unwrap();
        assert!(!disk.power_loss(1).exists(Path::new("a/b/g")));
        disk.sync_dir(Path::new("a/b")).unwrap();
        assert_eq!(disk.power_loss(1).read_file("a/b/g").unwrap(), b"bytes");
        // A process crash keeps every name: the kernel still has them.
        let fresh = disk.open(Path::new("a/b/h"), OpenMode::Create).unwrap();
        drop(fresh);
        assert!(disk.process_crash().exists(Path::new("a/b/h")));
        assert!(!disk.power_loss(1).exists(Path::new("a/b/h")));
    }

    /// The contents of `d/name` after a power loss.
    fn crashed(disk: &SimStorage, seed: u64, options: PowerLoss, name: &str) -> Vec<u8> {
        let after = disk.power_loss_with(seed, options);
        after.read_file(Path::new("d").join(name)).unwrap()
    }

    /// Every state a crash may leave without garbage: durable + a journal prefix, the last
    /// write possibly cut short.
    fn clean_outcomes(state: &FileState) -> BTreeSet<Vec<u8>> {
        let mut bytes = state.durable.clone();
        let mut out = BTreeSet::from([bytes.clone()]);
        for op in &state.journal {
            if let Op::Write(position, data) = op {
                for landed in 0..data.len() {
                    let mut torn = bytes.clone();
                    put(&mut torn, *position, &data[..landed]);
                    out.insert(torn);
                }
            }
            op.apply(&mut bytes);
            out.insert(bytes.clone());
        }
        out
    }

    #[test]
    fn synced_bytes_survive_every_power_loss() {
        let (disk, file) = disk_with("0.log");
        file.write_all_at(b"synced bytes", 0).unwrap();
        file.sync_data().unwrap();
        file.write_all_at(b" and some that are not", 12).unwrap();
        file.write_all_at(b"!", 100).unwrap();
        for seed in 0..500 {
            let after = crashed(&disk, seed, PowerLoss::default(), "0.log");
            assert_eq!(&after[..12], b"synced bytes", "seed {seed}");
        }
    }

    #[test]
    fn unsynced_writes_survive_only_as_a_prefix_in_write_order() {
        let (disk, file) = disk_with("0.log");
        file.write_all_at(b"base", 0).unwrap();
        file.sync_data().unwrap();
        file.write_all_at(b"first", 4).unwrap();
        file.write_all_at(b"XY", 1).unwrap();
        file.set_len(6).unwrap();
        file.write_all_at(b"last", 10).unwrap();
        let outcomes = clean_outcomes(&disk.disk.lock().files[Path::new("d/0.log")].lock());
        let clean: BTreeSet<_> = (0..500)
            .map(|s| crashed(&disk, s, CLEAN, "0.log"))
            .collect();
        assert!(clean.is_subset(&outcomes), "{clean:?}");
        assert!(
            clean.len() > 5,
            "crashes should vary with the seed: {clean:?}"
        );
        let mut all = (0..500).map(|s| crashed(&disk, s, PowerLoss::default(), "0.log"));
        assert!(all.any(|b| !outcomes.contains(&b)), "garbage never landed");
    }

    #[test]
    fn index_files_are_not_trusted_after_power_loss() {
        let (disk, file) = disk_with("0.index");
        file.write_all_at(&[7; 80], 0).unwrap();
        file.sync_data().unwrap();
        let all = (0..200).map(|s| crashed(&disk, s, PowerLoss::default(), "0.index"));
        assert!(all.filter(|b| b != &[7; 80]).count() > 10);
        assert!((0..200).all(|s| crashed(&disk, s, CLEAN, "0.index") == [7; 80]));
    }

    #[test]
    fn power_loss_gives_an_independent_disk_without_locks() {
        let (disk, file) = disk_with("0.log");
        let _lock = disk.lock_dir(Path::new("d")).unwrap();
        file.write_all_at(b"abc", 0).unwrap();
        file.sync_data().unwrap();
        let after = disk.power_loss(1);
        assert!(after.lock_dir(Path::new("d")).is_ok());
        file.write_all_at(b"zzz", 0).unwrap();
        assert_eq!(after.read_file("d/0.log").unwrap(), b"abc");
        assert_eq!((after.sync_count(), disk.sync_count()), (0, 1));
    }

    #[test]
    fn lock_dir_is_exclusive_until_the_guard_drops() {
        let disk = SimStorage::new();
        let dir = Path::new("a/b");
        assert_eq!(kind(disk.lock_dir(dir)), ErrorKind::NotFound);
        disk.create_dir_all(dir).unwrap();
        let lock = disk.lock_dir(dir).unwrap();
        let clone = disk.clone();
        assert!(matches!(clone.lock_dir(dir), Err(Error::DirectoryLocked { path }) if path == dir));
        drop(lock);
        assert!(clone.lock_dir(dir).is_ok());
    }

    #[test]
    fn rename_moves_content_and_open_handles_follow() {
        let (disk, file) = disk_with("a.tmp");
        let (from, to) = (Path::new("d/a.tmp"), Path::new("d/b"));
        file.write_all_at(b"old", 0).unwrap();
        disk.write_file(to, b"replaced");
        disk.rename(from, to).unwrap();
        assert!(!disk.exists(from));
        file.write_all_at(b"new", 3).unwrap();
        assert_eq!(disk.read_file(to).unwrap(), b"oldnew");
        assert_eq!(
            kind(disk.rename(from, Path::new("d/c"))),
            ErrorKind::NotFound
        );
        disk.remove_file(to).unwrap();
        disk.remove_file(to).unwrap();
        assert_eq!(
            file.len().unwrap(),
            6,
            "a removed file's handle keeps working"
        );
    }

    #[test]
    fn region_dropped_without_flush_is_visible_but_not_durable() {
        let (disk, file) = disk_with("0.index");
        file.set_len(8).unwrap();
        file.sync_data().unwrap();
        assert_eq!(kind(file.map_mut(9)), ErrorKind::InvalidInput);
        let mut region = file.map_mut(8).unwrap();
        region.bytes_mut()[2..4].copy_from_slice(b"hi");
        drop(region);
        assert_eq!(disk.read_file("d/0.index").unwrap(), b"\0\0hi\0\0\0\0");
        assert!((0..100).any(|s| crashed(&disk, s, CLEAN, "0.index") == [0; 8]));
    }

    #[test]
    fn a_mapped_file_is_not_cut_through_any_handle_until_its_maps_drop() {
        let (disk, file) = disk_with("0.log");
        file.write_all_at(b"abcdef", 0).unwrap();
        let other = disk.open(Path::new("d/0.log"), OpenMode::Existing).unwrap();
        let map = file.map_read(100).unwrap();
        let region = other.map_mut(6).unwrap();
        assert!(file.is_mapped() && other.is_mapped());
        assert!(matches!(other.set_len(2), Err(Error::SegmentInUse { .. })));
        other.set_len(8).unwrap(); // growing is harmless
        drop((map, region));
        assert!(!file.is_mapped());
        other.set_len(2).unwrap();
        assert_eq!(disk.read_file("d/0.log").unwrap(), b"ab");
    }

    #[test]
    fn region_flush_is_durable() {
        let (disk, file) = disk_with("0.index");
        file.set_len(4).unwrap();
        let mut region = file.map_mut(4).unwrap();
        region.bytes_mut().copy_from_slice(b"abcd");
        region.flush().unwrap();
        assert_eq!(disk.sync_count(), 1);
        assert!((0..100).all(|s| crashed(&disk, s, CLEAN, "0.index") == b"abcd"));
    }

    #[test]
    fn remove_dir_removes_only_empty_directories() {
        let (disk, _file) = disk_with("f");
        let d = Path::new("d");
        assert_eq!(kind(disk.remove_dir(d)), ErrorKind::DirectoryNotEmpty);
        assert_eq!(
            kind(disk.remove_dir(&d.join("f"))),
            ErrorKind::NotADirectory
        );
        disk.remove_file(&d.join("f")).unwrap();
        disk.remove_dir(d).unwrap();
        assert!(!disk.exists(d));
        disk.remove_dir(d).unwrap(); // missing is fine
        assert!(!disk.power_loss(1).exists(d));
    }

    #[test]
    fn fail_writes_errors_and_leaves_content_unchanged() {
        let (disk, file) = disk_with("0.log");
        file.write_all_at(b"abc", 0).unwrap();
        disk.fail_writes(true);
        assert_eq!(kind(file.write_all_at(b"x", 0)), ErrorKind::StorageFull);
        assert_eq!(kind(file.set_len(10)), ErrorKind::StorageFull);
        assert_eq!(kind(file.sync_data()), ErrorKind::StorageFull);
        assert_eq!(disk.read_file("d/0.log").unwrap(), b"abc");
        assert_eq!(disk.sync_count(), 0);
        disk.fail_writes(false);
        file.sync_data().unwrap();
        assert_eq!(disk.sync_count(), 1);
    }

    #[test]
    fn a_disk_filling_up_part_way_through_a_write_keeps_the_bytes_that_fit() {
        let (disk, file) = disk_with("0.log");
        disk.room_left(Some(5));
        file.write_all_at(b"abc", 0).unwrap();
        assert_eq!(kind(file.write_all_at(b"defg", 3)), ErrorKind::StorageFull);
        assert_eq!(disk.read_file("d/0.log").unwrap(), b"abcde");
        assert_eq!(kind(file.write_all_at(b"x", 0)), ErrorKind::StorageFull);
        disk.room_left(None);
        file.write_all_at(b"fg", 5).unwrap();
        assert_eq!(disk.read_file("d/0.log").unwrap(), b"abcdefg");
    }

    #[test]
    fn writing_nothing_past_the_end_leaves_the_file_as_it_was_as_on_a_real_disk() {
        let (disk, file) = disk_with("0.log");
        file.write_all_at(b"abc", 0).unwrap();
        file.write_all_at(&[], 10).unwrap();
        file.write_all_parts_at(&[&[], &[]], 20).unwrap();
        assert_eq!(file.len().unwrap(), 3);
        assert!((0..50).all(|s| crashed(&disk, s, CLEAN, "0.log").len() <= 3));
    }

    #[test]
    fn list_dir_returns_sorted_direct_children() {
        let disk = SimStorage::new();
        assert_eq!(kind(disk.list_dir(Path::new("d"))), ErrorKind::NotFound);
        disk.create_dir_all(Path::new("d/sub/deeper")).unwrap();
        for name in ["d/b.log", "d/a.log", "d/sub/c.log"] {
            disk.open(Path::new(name), OpenMode::Create).unwrap();
        }
        let want = ["d/a.log", "d/b.log", "d/sub"].map(PathBuf::from);
        assert_eq!(disk.list_dir(Path::new("d")).unwrap(), want);
    }

    #[test]
    fn open_of_a_missing_file_or_parent_is_not_found() {
        let disk = SimStorage::new();
        let path = Path::new("x/0.log");
        assert_eq!(kind(disk.open(path, OpenMode::Create)), ErrorKind::NotFound);
        disk.create_dir_all(Path::new("x")).unwrap();
        assert_eq!(
            kind(disk.open(path, OpenMode::Existing)),
            ErrorKind::NotFound
        );
        assert!(disk.open(path, OpenMode::Create).is_ok());
        assert!(disk.open(path, OpenMode::Existing).is_ok());
    }

    #[test]
    fn reads_past_the_end_are_empty_and_writes_past_it_zero_fill() {
        let (_disk, file) = disk_with("0.log");
        file.write_all_at(b"ab", 3).unwrap();
        let mut buf = [9; 8];
        assert_eq!(file.read_at(&mut buf, 0).unwrap(), 5);
        assert_eq!(&buf[..5], b"\0\0\0ab");
        assert_eq!(file.read_at(&mut buf, u64::MAX).unwrap(), 0);
        file.set_len(4).unwrap();
        file.set_len(6).unwrap();
        assert_eq!(file.read_at(&mut buf, 0).unwrap(), 6);
        assert_eq!(&buf[..6], b"\0\0\0a\0\0");
        let too_far = file.write_all_at(b"x", u64::MAX);
        assert_eq!(kind(too_far), ErrorKind::FileTooLarge);
    }
}
