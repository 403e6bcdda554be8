//! Copy-on-cut: a segment whose `.log` is still mapped (by readers of this log, or of an
//! earlier one on the same directory) is copied to new files before a truncation or a
//! recovery cuts it, so the readers' pages never vanish under them (a mapped page past the
//! end of a file is a bus error, not an error value). And writing a recovered segment's
//! unflushed bytes again in place, so that a failed fsync's dropped pages reach the disk.

use std::ops::Range;
use std::path::Path;

use super::{Segment, SegmentFile};
use crate::error::Result;
use crate::segment::REWRITE_SUFFIX;
use crate::storage::{OpenMode, Storage};

/// Bytes copied per read/write step.
const COPY_CHUNK_BYTES: usize = 1 << 20;

impl Segment {
    /// Copies this segment's `.log` to a new file of the same name and returns the segment
    /// opened on it with new, empty indexes: the caller recovers it ([`Segment::recover`]),
    /// which rebuilds them. This object keeps the old files (unlinked or renamed over) for
    /// the readers that still hold them.
    ///
    /// Crash-safe at every step: the copy is complete and synced before it replaces the
    /// original, its content is identical, and a leftover `.rewrite` file or missing index
    /// is cleaned up or rebuilt by the next open.
    pub(crate) fn rewrite(&self, storage: &dyn Storage, dir: &Path, now_ms: i64) -> Result<Self> {
        let base = self.base_offset();
        let final_path = SegmentFile::Log.path(dir, base);
        let mut temp_name = final_path.clone().into_os_string();
        temp_name.push(REWRITE_SUFFIX);
        let temp_path = Path::new(&temp_name);
        self.copy_log_into(storage, temp_path, 0..self.size_bytes())?;
        // Fresh index files (new inodes): the old ones stay mapped by this object.
        for kind in [SegmentFile::Index, SegmentFile::TimeIndex] {
            storage.remove_file(&kind.path(dir, base))?;
        }
        storage.rename(temp_path, &final_path)?;
        storage.sync_dir(dir)?;
        Segment::open(storage, dir, base, self.limits.clone(), now_ms)
    }

    /// Writes the `.log`'s bytes from the batch holding `offset` to the end again where
    /// they are, so that the next sync writes them. After an fsync failed, Linux may have
    /// marked their pages clean without writing them ("fsyncgate"): reads still find them,
    /// recovery takes them as valid, and a later fsync would succeed without them.
    pub(crate) fn write_again_from(&self, offset: u64) -> Result<()> {
        let Ok(first) = self.locate(offset)? else {
            return Ok(());
        };
        self.each_chunk(first.position..self.size_bytes(), |bytes, position| {
            self.log.write_all_at(bytes, position)
        })
    }

    /// Writes the `.log` bytes in `range` (fewer if the file ends first) to a new file at
    /// `path`, from its start, and makes them durable.
    pub(super) fn copy_log_into(
        &self,
        storage: &dyn Storage,
        path: &Path,
        range: Range<u64>,
    ) -> Result<()> {
        let copy = storage.open(path, OpenMode::Create)?;
        copy.set_len(0)?;
        self.each_chunk(range.clone(), |bytes, position| {
            copy.write_all_at(bytes, position - range.start)
        })?;
        copy.sync_data()
    }

    /// Reads the `.log` bytes in `range` (fewer if the file ends first) in chunks of at
    /// most [`COPY_CHUNK_BYTES`], handing each to `f` with its file position.
    fn each_chunk(
        &self,
        range: Range<u64>,
        mut f: impl FnMut(&[u8], u64) -> Result<()>,
    ) -> Result<()> {
        let mut buf = vec![0u8; COPY_CHUNK_BYTES];
        let mut position = range.start;
        while position < range.end {
            let want =
                usize::try_from(range.end - position).map_or(buf.len(), |left| left.min(buf.len()));
            let read = self.read_at(&mut buf[..want], position)?;
            if read == 0 {
                break;
            }
            f(&buf[..read], position)?;
            position += read as u64;
        }
        Ok(())
    }
}
