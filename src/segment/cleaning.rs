//! What the log cleaner (`log::cleaner`) needs from a segment beyond appending and
//! reading: a segment written under temporary names (`<base>.log.cleaned`, ...), a scan of
//! every batch, and the timestamp of the first batch (for `max.compaction.lag.ms`).

use std::path::PathBuf;

use super::{BatchScanner, Segment, SegmentFile, SegmentLimits};
use crate::error::Result;
use crate::storage::{OpenMode, Storage};

/// `path` with `suffix` appended to its file name (`x.log` + `.cleaned` → `x.log.cleaned`).
pub(crate) fn with_suffix(path: PathBuf, suffix: &str) -> PathBuf {
    if suffix.is_empty() {
        return path;
    }
    let mut name = path.into_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

impl Segment {
    /// Creates an empty segment based at `base_offset` whose three files carry `suffix`
    /// after their usual names (replacing any such files). The cleaner writes its output
    /// this way and renames the files once they are complete and durable.
    pub(crate) fn create_with_suffix(
        storage: &dyn Storage,
        dir: &std::path::Path,
        base_offset: u64,
        limits: SegmentLimits,
        now_ms: i64,
        suffix: &str,
    ) -> Result<Self> {
        for kind in [SegmentFile::Index, SegmentFile::TimeIndex] {
            storage.remove_file(&with_suffix(kind.path(dir, base_offset), suffix))?;
        }
        let log_path = with_suffix(SegmentFile::Log.path(dir, base_offset), suffix);
        let log = storage.open(&log_path, OpenMode::Create)?;
        log.set_len(0)?;
        Self::with_files(storage, dir, base_offset, log, limits, now_ms, suffix)
    }

    /// A scanner over every batch of the `.log`, from byte 0 to the published size. It
    /// ends early at a torn tail; compare its position with [`Segment::size_bytes`].
    pub(crate) fn scan_batches(&self) -> BatchScanner<'_> {
        BatchScanner::new(&*self.log, 0, self.size_bytes())
    }

    /// The max timestamp of the segment's first batch (what time-based rolls count from),
    /// if it has a batch with a timestamp.
    pub(crate) fn first_batch_timestamp(&self) -> Option<i64> {
        self.state
            .lock()
            .first_batch_timestamp
            .filter(|&t| t != crate::record::NO_TIMESTAMP)
    }
}
