//! Sparse, memory-mapped segment indexes: [`SparseIndex`] (`.index`, offset → byte position
//! in the segment's `.log`) and [`TimeIndex`] (`.timeindex`, timestamp → offset).
//!
//! Both are files of fixed-width, big-endian entries, preallocated to
//! `segment.index.bytes` and trimmed to their used length when the segment rolls or closes:
//!
//! ```text
//! .index      8 bytes/entry:  relative offset u32 BE | position u32 BE
//! .timeindex 12 bytes/entry:  timestamp i64 BE       | relative offset u32 BE
//! ```
//!
//! A relative offset is `offset − base_offset` and must fit in an `i32` (Kafka's rule).
//! An existing index file is trusted for its length only: every whole slot counts as an
//! entry, so recovery must run `sanity_check` and rebuild an index that fails it.
//! All reads (`lookup`, `entry`, …) take `&self` and only read the map, so a shared lock
//! is enough for readers; appends, truncation and resizing take `&mut self`.

mod mapped_file;
mod offset_index;
mod time_index;

pub use offset_index::{IndexEntry, SparseIndex};
pub use time_index::{TimeEntry, TimeIndex};

use std::path::Path;

use crate::error::{Error, Result};

/// The largest relative offset an index can store (relative offsets are `i32` on disk).
pub const MAX_RELATIVE_OFFSET: u64 = i32::MAX as u64;

/// `offset − base_offset` as stored on disk, or [`Error::IndexMisuse`] when it does not fit
/// in `[0, i32::MAX]`.
fn relative_offset(path: &Path, base_offset: u64, offset: u64) -> Result<u32> {
    offset
        .checked_sub(base_offset)
        .filter(|rel| *rel <= MAX_RELATIVE_OFFSET)
        .and_then(|rel| u32::try_from(rel).ok())
        .ok_or_else(|| {
            misuse(
                path,
                format!(
                    "offset {offset} is outside [{base_offset}, {base_offset} + {MAX_RELATIVE_OFFSET}]"
                ),
            )
        })
}

/// An [`Error::IndexMisuse`] on `path`.
fn misuse(path: &Path, reason: impl Into<String>) -> Error {
    Error::IndexMisuse {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// An [`Error::Corrupt`] on `path` at byte `position`.
fn corrupt(path: &Path, position: usize, reason: impl Into<String>) -> Error {
    Error::Corrupt {
        path: path.to_path_buf(),
        position: position as u64,
        reason: reason.into(),
    }
}
