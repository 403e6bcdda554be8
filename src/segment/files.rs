//! Segment file names: the base offset zero-padded to 20 digits plus a suffix
//! (`00000000000000000156.log`, `.index`, `.timeindex`), and parsing them back.

use std::path::{Path, PathBuf};

/// Suffix of a segment's record file.
pub const LOG_SUFFIX: &str = ".log";
/// Suffix of a segment's offset index.
pub const INDEX_SUFFIX: &str = ".index";
/// Suffix of a segment's time index.
pub const TIME_INDEX_SUFFIX: &str = ".timeindex";
/// Suffix added to files that are being deleted.
pub const DELETED_SUFFIX: &str = ".deleted";
/// Suffix of files written by compaction before they are swapped in.
pub const CLEANED_SUFFIX: &str = ".cleaned";
/// Suffix of a sealed segment's copy being written before a truncation cuts it (its own
/// name: compaction may be writing the same segment's `.cleaned` file meanwhile).
pub const REWRITE_SUFFIX: &str = ".rewrite";
/// Suffix of compacted files waiting to replace the originals.
pub const SWAP_SUFFIX: &str = ".swap";

/// The kinds of file that make up a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentFile {
    /// `.log`: record batches.
    Log,
    /// `.index`: offset → position.
    Index,
    /// `.timeindex`: timestamp → offset.
    TimeIndex,
}

impl SegmentFile {
    /// The file suffix, with its dot.
    pub fn suffix(self) -> &'static str {
        match self {
            SegmentFile::Log => LOG_SUFFIX,
            SegmentFile::Index => INDEX_SUFFIX,
            SegmentFile::TimeIndex => TIME_INDEX_SUFFIX,
        }
    }

    /// The path of this file for the segment based at `base_offset` in `dir`.
    pub fn path(self, dir: &Path, base_offset: u64) -> PathBuf {
        dir.join(format!("{base_offset:020}{}", self.suffix()))
    }
}

/// Parses `00000000000000000156.log` (or `.index`, `.timeindex`) into `(156, kind)`.
/// Names with other suffixes, or stems that are not exactly 20 digits, give `None`.
pub fn parse_segment_file_name(path: &Path) -> Option<(u64, SegmentFile)> {
    let name = path.file_name()?.to_str()?;
    let (stem, kind) = [SegmentFile::Log, SegmentFile::Index, SegmentFile::TimeIndex]
        .into_iter()
        .find_map(|kind| name.strip_suffix(kind.suffix()).map(|stem| (stem, kind)))?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok().map(|base| (base, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_twenty_digit_base_offsets_and_parse_back() {
        let dir = Path::new("/d");
        for (kind, suffix) in [
            (SegmentFile::Log, "log"),
            (SegmentFile::Index, "index"),
            (SegmentFile::TimeIndex, "timeindex"),
        ] {
            let path = kind.path(dir, 156);
            assert_eq!(
                path,
                Path::new(&format!("/d/00000000000000000156.{suffix}"))
            );
            assert_eq!(parse_segment_file_name(&path), Some((156, kind)));
        }
        let max = SegmentFile::Log.path(dir, u64::MAX);
        assert_eq!(
            parse_segment_file_name(&max),
            Some((u64::MAX, SegmentFile::Log))
        );
    }

    #[test]
    fn other_names_are_not_segment_files() {
        for name in [
            "156.log",
            "0000000000000000015a.log",
            "00000000000000000156.log.deleted",
            "00000000000000000156.snapshot",
            "leader-epoch-checkpoint",
            "99999999999999999999.log",
        ] {
            assert_eq!(parse_segment_file_name(Path::new(name)), None, "{name}");
        }
    }
}
