//! `cleaner-offset.checkpoint`: the first dirty offset (everything below it has been
//! compacted), Kafka's `cleaner-offset-checkpoint` for one partition.
//!
//! Layout, 18 bytes, big-endian: magic `SLCO` · version u16 = 1 · offset u64 · CRC-32C of
//! the 14 bytes before it. Written to `cleaner-offset.checkpoint.tmp`, synced, renamed
//! over the checkpoint and the directory synced, so a crash leaves the old or the new
//! value. A missing or damaged file reads as `None`: the cleaner then starts from the log
//! start, which costs a full pass but loses nothing.

use std::path::Path;

use byteorder::{BigEndian, ByteOrder};

use crate::error::Result;
use crate::storage::{OpenMode, Storage, read_fully_at};

/// File name inside the partition directory.
pub(crate) const CLEANER_CHECKPOINT_FILE: &str = "cleaner-offset.checkpoint";
const TEMP_SUFFIX: &str = ".tmp";
const MAGIC: &[u8; 4] = b"SLCO";
const VERSION: u16 = 1;
const FIELDS: usize = 4 + 2 + 8;
const SIZE: usize = FIELDS + 4;

fn encode(offset: u64) -> [u8; SIZE] {
    let mut bytes = [0u8; SIZE];
    bytes[..4].copy_from_slice(MAGIC);
    BigEndian::write_u16(&mut bytes[4..6], VERSION);
    BigEndian::write_u64(&mut bytes[6..14], offset);
    let crc = crate::record::crc32c(&bytes[..FIELDS]);
    BigEndian::write_u32(&mut bytes[FIELDS..SIZE], crc);
    bytes
}

fn decode(bytes: &[u8]) -> Option<u64> {
    let bytes = bytes.get(..SIZE)?;
    let valid = &bytes[..4] == MAGIC
        && BigEndian::read_u16(&bytes[4..6]) == VERSION
        && crate::record::crc32c(&bytes[..FIELDS]) == BigEndian::read_u32(&bytes[FIELDS..SIZE]);
    valid.then(|| BigEndian::read_u64(&bytes[6..14]))
}

/// The first dirty offset stored in `dir`, if a valid one is there.
pub(crate) fn read(storage: &dyn Storage, dir: &Path) -> Result<Option<u64>> {
    let path = dir.join(CLEANER_CHECKPOINT_FILE);
    if !storage.exists(&path) {
        return Ok(None);
    }
    let file = storage.open(&path, OpenMode::Existing)?;
    let mut bytes = [0u8; SIZE];
    let n = read_fully_at(&*file, &mut bytes, 0)?;
    Ok(decode(bytes.get(..n).unwrap_or_default()))
}

/// Durably replaces the stored first dirty offset with `offset`.
pub(crate) fn write(storage: &dyn Storage, dir: &Path, offset: u64) -> Result<()> {
    let path = dir.join(CLEANER_CHECKPOINT_FILE);
    let temp = dir.join(format!("{CLEANER_CHECKPOINT_FILE}{TEMP_SUFFIX}"));
    let file = storage.open(&temp, OpenMode::Create)?;
    file.set_len(0)?;
    file.write_all_at(&encode(offset), 0)?;
    file.sync_data()?;
    drop(file);
    storage.rename(&temp, &path)?;
    storage.sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::SimStorage;

    #[test]
    fn round_trips_and_reads_damage_as_absent() {
        let sim = SimStorage::new();
        let dir = Path::new("/p");
        crate::storage::create_dir_all_durably(&sim, dir).unwrap();
        assert_eq!(read(&sim, dir).unwrap(), None);
        write(&sim, dir, 42).unwrap();
        write(&sim, dir, 7_206_178).unwrap();
        assert_eq!(read(&sim, dir).unwrap(), Some(7_206_178));
        // Survives power loss: synced before the rename.
        assert_eq!(read(&sim.power_loss(3), dir).unwrap(), Some(7_206_178));

        let path = dir.join(CLEANER_CHECKPOINT_FILE);
        let mut bytes = sim.read_file(&path).unwrap();
        bytes[10] ^= 1;
        sim.write_file(&path, &bytes);
        assert_eq!(read(&sim, dir).unwrap(), None);
        sim.write_file(&path, b"SLCO");
        assert_eq!(read(&sim, dir).unwrap(), None);
    }
}
