//! Crash-safe small files for the broker's metadata (`meta.properties` and the topic
//! catalogue): a properties text behind a checksum line, replaced atomically.
//!
//! Format: the first line is `#crc32c=<8 lowercase hex digits>`, the CRC-32C of every byte
//! after that line; the rest is `name=value` lines. The `#` keeps the file a valid Java
//! properties file (Kafka's tools read it as a comment).
//!
//! Write protocol, all through [`Storage`] so simulated power loss covers it: write
//! `<file>.tmp`, `fdatasync` it, rename it over `<file>`, sync the directory. A crash leaves
//! either the old file or the new one whole; a leftover `.tmp` is removed by the reader of
//! the directory ([`is_temp`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::storage::{OpenMode, Storage, read_fully_at};

/// Suffix of a file being written.
pub(super) const TEMP_SUFFIX: &str = ".tmp";

/// Prefix of the checksum line.
const CRC_PREFIX: &str = "#crc32c=";

/// Largest metadata file read back (a topic's properties are under 1 KiB).
const MAX_LEN: u64 = 1 << 20;

/// Whether `path` is a temporary file left by an interrupted [`write_durably`].
pub(super) fn is_temp(path: &Path) -> bool {
    path.to_str().is_some_and(|p| p.ends_with(TEMP_SUFFIX))
}

/// Replaces the file at `path` with `body` behind a checksum line, atomically and durably.
pub(super) fn write_durably(storage: &dyn Storage, path: &Path, body: &str) -> Result<()> {
    let temp = temp_path(path);
    let text = format!(
        "{CRC_PREFIX}{:08x}\n{body}",
        crate::record::crc32c(body.as_bytes())
    );
    storage.remove_file(&temp)?;
    let written = storage.open(&temp, OpenMode::Create).and_then(|file| {
        file.write_all_at(text.as_bytes(), 0)?;
        file.sync_data()
    });
    if let Err(e) = written.and_then(|()| storage.rename(&temp, path)) {
        // Best effort: the reader of the directory removes a leftover temp file anyway.
        let _ = storage.remove_file(&temp);
        return Err(e);
    }
    match path.parent() {
        Some(dir) => storage.sync_dir(dir),
        None => Ok(()),
    }
}

/// The body of a file written by [`write_durably`], its checksum checked:
/// [`Error::Corrupt`] naming the file when it does not match.
pub(super) fn read_checked(storage: &dyn Storage, path: &Path) -> Result<String> {
    let corrupt = |position: u64, reason: &str| Error::Corrupt {
        path: path.to_path_buf(),
        position,
        reason: reason.to_owned(),
    };
    let file = storage.open(path, OpenMode::Existing)?;
    let len = file.len()?;
    if len > MAX_LEN {
        return Err(corrupt(MAX_LEN, "metadata file larger than 1 MiB"));
    }
    let mut bytes = vec![0; len as usize];
    let read = read_fully_at(&*file, &mut bytes, 0)?;
    bytes.truncate(read);
    let text = String::from_utf8(bytes).map_err(|e| {
        let position = e.utf8_error().valid_up_to() as u64;
        corrupt(position, "not UTF-8 text")
    })?;
    let (first, body) = text.split_once('\n').unwrap_or((&text, ""));
    let stored = first
        .strip_prefix(CRC_PREFIX)
        .and_then(|hex| u32::from_str_radix(hex, 16).ok())
        .ok_or_else(|| corrupt(0, "the first line is not `#crc32c=<hex>`"))?;
    if stored != crate::record::crc32c(body.as_bytes()) {
        return Err(corrupt(first.len() as u64 + 1, "checksum mismatch"));
    }
    Ok(body.to_owned())
}

/// The `name=value` lines of a properties body, in order; comments and blank lines skipped.
pub(super) fn properties(path: &Path, body: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut position = 0;
    for line in body.split_inclusive('\n') {
        let trimmed = line.trim();
        if !(trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!')) {
            let (name, value) = trimmed.split_once('=').ok_or_else(|| Error::Corrupt {
                path: path.to_path_buf(),
                position,
                reason: format!("line {trimmed:?} is not `name=value`"),
            })?;
            out.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        position += line.len() as u64;
    }
    Ok(out)
}

/// `<path>.tmp`.
fn temp_path(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(TEMP_SUFFIX);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::SimStorage;

    fn disk() -> SimStorage {
        let sim = SimStorage::new();
        crate::storage::create_dir_all_durably(&sim, Path::new("d")).unwrap();
        sim
    }

    #[test]
    fn a_written_file_reads_back_and_survives_power_loss() {
        let sim = disk();
        let path = Path::new("d/x.properties");
        write_durably(&sim, path, "a=1\n").unwrap();
        write_durably(&sim, path, "a=2\n").unwrap();
        assert_eq!(read_checked(&sim, path).unwrap(), "a=2\n");
        for seed in 0..20 {
            assert_eq!(read_checked(&sim.power_loss(seed), path).unwrap(), "a=2\n");
        }
        assert!(!sim.exists(&temp_path(path)));
    }

    #[test]
    fn a_damaged_file_is_corrupt_naming_it() {
        let sim = disk();
        let path = Path::new("d/x.properties");
        write_durably(&sim, path, "broker.id=1\n").unwrap();
        let mut bytes = sim.read_file(path).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 1;
        sim.write_file(path, &bytes);
        let err = read_checked(&sim, path).unwrap_err();
        assert!(
            matches!(&err, Error::Corrupt { path: p, .. } if p == path),
            "{err}"
        );
        sim.write_file(path, b"broker.id=1\n");
        assert!(matches!(
            read_checked(&sim, path),
            Err(Error::Corrupt { position: 0, .. })
        ));
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_leaves_no_temp() {
        let sim = disk();
        let path = Path::new("d/x.properties");
        write_durably(&sim, path, "a=1\n").unwrap();
        sim.fail_writes(true);
        assert!(matches!(
            write_durably(&sim, path, "a=2\n"),
            Err(Error::Io { .. })
        ));
        sim.fail_writes(false);
        assert_eq!(read_checked(&sim, path).unwrap(), "a=1\n");
        assert!(!sim.exists(&temp_path(path)));
        assert!(is_temp(&temp_path(path)));
    }

    #[test]
    fn properties_skip_comments_and_name_bad_lines() {
        let path = Path::new("p");
        let got = properties(path, "# c\n\n a = 1 \nb=2=3\n").unwrap();
        assert_eq!(got, [("a".into(), "1".into()), ("b".into(), "2=3".into())]);
        assert!(matches!(
            properties(path, "a=1\nnonsense\n"),
            Err(Error::Corrupt { position: 4, .. })
        ));
    }
}
