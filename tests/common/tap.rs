//! [`Tap`]: a [`Storage`] over a [`SimStorage`] that calls a test's [`Hook`] around every
//! operation that changes the disk, to fail it before it runs or to capture the disk after.
//! Reads, `exists`, `list_dir`, `lock_dir`, `map_mut` and `map_read` pass straight through.

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use streamlog::storage::{DirLock, MappedRegion, OpenMode, ReadMap, StorageFile};
use streamlog::{Result, SimStorage, Storage};

/// A disk-changing operation, as a [`Hook`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskOp {
    /// `open` of a file that exists, or with [`OpenMode::Existing`].
    Open,
    /// `open` with [`OpenMode::Create`] of a file that does not exist yet.
    Create,
    Write,
    SetLen,
    SyncData,
    /// A [`MappedRegion::flush`].
    Flush,
    /// A [`MappedRegion`] dropped (its dirty bytes written back); never fails: only
    /// [`Hook::after`] sees it.
    Unmap,
    RemoveFile,
    Rename,
    CreateDir,
    RemoveDir,
    SyncDir,
}

/// What a test does around each disk-changing operation.
pub trait Hook: Send + Sync + Debug + 'static {
    /// Before `op` on `path` (for a rename, its source) runs: an error fails the operation,
    /// which then does not happen.
    fn before(&self, _op: DiskOp, _path: &Path) -> Result<()> {
        Ok(())
    }

    /// After `op` succeeded; `disk` is the disk as it is now.
    fn after(&self, _op: DiskOp, _disk: &SimStorage) {}
}

/// A [`SimStorage`] with a [`Hook`] around every operation that changes it. Clones share
/// the disk and the hook.
#[derive(Debug)]
pub struct Tap<H> {
    pub sim: SimStorage,
    pub hook: Arc<H>,
}

impl<H> Clone for Tap<H> {
    fn clone(&self) -> Self {
        Tap {
            sim: self.sim.clone(),
            hook: self.hook.clone(),
        }
    }
}

impl<H: Hook> Tap<H> {
    pub fn new(sim: SimStorage, hook: H) -> Self {
        Tap {
            sim,
            hook: Arc::new(hook),
        }
    }

    fn op<T>(&self, op: DiskOp, path: &Path, run: impl FnOnce() -> Result<T>) -> Result<T> {
        self.hook.before(op, path)?;
        let out = run()?;
        self.hook.after(op, &self.sim);
        Ok(out)
    }
}

impl<H: Hook> Storage for Tap<H> {
    fn open(&self, path: &Path, mode: OpenMode) -> Result<Arc<dyn StorageFile>> {
        let exists = mode == OpenMode::Existing || self.sim.exists(path);
        let op = if exists { DiskOp::Open } else { DiskOp::Create };
        let inner = self.op(op, path, || self.sim.open(path, mode))?;
        let tap = self.clone();
        Ok(Arc::new(TapFile { inner, tap }))
    }
    fn exists(&self, path: &Path) -> bool {
        self.sim.exists(path)
    }
    fn remove_file(&self, path: &Path) -> Result<()> {
        self.op(DiskOp::RemoveFile, path, || self.sim.remove_file(path))
    }
    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        self.op(DiskOp::Rename, from, || self.sim.rename(from, to))
    }
    fn create_dir_all(&self, path: &Path) -> Result<()> {
        self.op(DiskOp::CreateDir, path, || self.sim.create_dir_all(path))
    }
    fn remove_dir(&self, path: &Path) -> Result<()> {
        self.op(DiskOp::RemoveDir, path, || self.sim.remove_dir(path))
    }
    fn list_dir(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        self.sim.list_dir(dir)
    }
    fn sync_dir(&self, dir: &Path) -> Result<()> {
        self.op(DiskOp::SyncDir, dir, || self.sim.sync_dir(dir))
    }
    fn lock_dir(&self, dir: &Path) -> Result<Box<dyn DirLock>> {
        self.sim.lock_dir(dir)
    }
}

#[derive(Debug)]
struct TapFile<H> {
    inner: Arc<dyn StorageFile>,
    tap: Tap<H>,
}

impl<H: Hook> StorageFile for TapFile<H> {
    fn path(&self) -> &Path {
        self.inner.path()
    }
    fn len(&self) -> Result<u64> {
        self.inner.len()
    }
    fn read_at(&self, buf: &mut [u8], position: u64) -> Result<usize> {
        self.inner.read_at(buf, position)
    }
    fn write_all_at(&self, buf: &[u8], position: u64) -> Result<()> {
        let write = || self.inner.write_all_at(buf, position);
        self.tap.op(DiskOp::Write, self.path(), write)
    }
    fn set_len(&self, len: u64) -> Result<()> {
        self.tap
            .op(DiskOp::SetLen, self.path(), || self.inner.set_len(len))
    }
    fn preallocate(&self, position: u64, len: u64) -> Result<bool> {
        // Changes no byte the file holds: not a point to crash at.
        self.inner.preallocate(position, len)
    }
    fn sync_data(&self) -> Result<()> {
        self.tap
            .op(DiskOp::SyncData, self.path(), || self.inner.sync_data())
    }
    fn map_mut(&self, len: usize) -> Result<Box<dyn MappedRegion>> {
        Ok(Box::new(TapRegion {
            inner: Some(self.inner.map_mut(len)?),
            path: self.path().to_path_buf(),
            tap: self.tap.clone(),
        }))
    }
    fn map_read(&self, len: usize) -> Result<ReadMap> {
        self.inner.map_read(len)
    }
    fn is_mapped(&self) -> bool {
        self.inner.is_mapped()
    }
}

#[derive(Debug)]
struct TapRegion<H: Hook> {
    /// `None` only while dropping.
    inner: Option<Box<dyn MappedRegion>>,
    path: PathBuf,
    tap: Tap<H>,
}

impl<H: Hook> TapRegion<H> {
    fn inner(&self) -> &dyn MappedRegion {
        self.inner.as_deref().expect("region used while dropping")
    }
}

impl<H: Hook> MappedRegion for TapRegion<H> {
    fn bytes(&self) -> &[u8] {
        self.inner().bytes()
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        self.inner
            .as_deref_mut()
            .expect("region used while dropping")
            .bytes_mut()
    }
    fn flush(&self) -> Result<()> {
        self.tap
            .op(DiskOp::Flush, &self.path, || self.inner().flush())
    }
}

impl<H: Hook> Drop for TapRegion<H> {
    fn drop(&mut self) {
        // The simulated map writes its dirty bytes back (un-synced) as it drops.
        drop(self.inner.take());
        self.tap.hook.after(DiskOp::Unmap, &self.tap.sim);
    }
}

/// A [`Hook`] that keeps the disk as power loss and as a process crash leave it after every
/// disk-changing operation: a crash-point test opens each of them.
#[derive(Debug, Default)]
pub struct CrashSnapshots(pub std::sync::Mutex<Vec<SimStorage>>);

impl CrashSnapshots {
    /// Takes the snapshots kept so far, leaving none.
    pub fn take(&self) -> Vec<SimStorage> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Hook for CrashSnapshots {
    fn after(&self, _: DiskOp, disk: &SimStorage) {
        let mut snaps = self.0.lock().unwrap();
        let seed = snaps.len() as u64;
        snaps.push(disk.power_loss(seed));
        snaps.push(disk.process_crash());
    }
}
