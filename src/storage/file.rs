//! [`FileStorage`]: the real file system, with positional I/O, `fdatasync`, memmap2 maps for
//! indexes, and `flock`-style directory locks (`std::fs::File::try_lock`).

use std::fs::{self, File, OpenOptions, TryLockError};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::MmapMut;

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
        Ok(Arc::new(OsFile {
            path: path.to_path_buf(),
            file,
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

#[derive(Debug)]
struct OsFile {
    path: PathBuf,
    file: File,
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

    fn set_len(&self, len: u64) -> Result<()> {
        self.file.set_len(len).at(&self.path)
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
        // owned by one open log (the directory lock keeps other processes out), and within the
        // process only the owning index cuts the file, after dropping this map.
        let map =
            unsafe { memmap2::MmapOptions::new().len(len).map_mut(&self.file) }.at(&self.path)?;
        // Only a hint: a kernel that refuses it maps the index as before.
        let _ = map.advise(memmap2::Advice::Random);
        Ok(Box::new(OsMap {
            path: self.path.clone(),
            map,
        }))
    }

    fn map_read(&self, len: usize) -> Result<ReadMap> {
        if len == 0 {
            return Ok(Arc::new(Vec::new()));
        }
        // SAFETY: segment `.log` files are mapped for reading. Readers touch only bytes
        // below the segment's published size, which were written (by `pwrite`) before the
        // size was published and never change afterwards: appends go past them, and the
        // log cuts a file in place only when no map of it is alive, otherwise it rewrites
        // the segment to a new file first (`Segment::release_map`, `Segment::rewrite`). A
        // segment file is created only after any file of that name is unlinked, and the
        // directory lock keeps other processes out. A disk read error on a mapped page is
        // a SIGBUS rather than an `Error::Io`, as for every mmap-based store.
        let map = unsafe { memmap2::MmapOptions::new().len(len).map(&self.file) }.at(&self.path)?;
        Ok(Arc::new(map))
    }
}

#[derive(Debug)]
struct OsMap {
    path: PathBuf,
    map: MmapMut,
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
