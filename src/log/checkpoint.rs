//! `log-state.checkpoint`: the partition's log start offset, recovery point and high
//! watermark, written atomically (temp file, fsync, rename, fsync of the directory).
//!
//! Layout (big-endian, 38 bytes): magic `SLCP` · version u16 = 1 · log start u64 ·
//! recovery point u64 · high watermark u64 · CRC-32 (IEEE, crc32fast) of the bytes before it.
//! A missing or damaged checkpoint reads as `None`: the log then recovers from its first
//! segment, which is slower but loses nothing.

use std::path::Path;

use byteorder::{BigEndian, ByteOrder};

use crate::error::Result;
use crate::storage::{OpenMode, Storage, read_fully_at};

/// File name inside the partition directory.
pub(crate) const CHECKPOINT_FILE: &str = "log-state.checkpoint";
const MAGIC: &[u8; 4] = b"SLCP";
const VERSION: u16 = 1;
const LEN: usize = 4 + 2 + 8 + 8 + 8 + 4;

/// Offsets that must survive a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Checkpoint {
    pub(crate) log_start_offset: u64,
    pub(crate) recovery_point: u64,
    pub(crate) high_watermark: u64,
}

impl Checkpoint {
    fn encode(&self) -> [u8; LEN] {
        let mut buf = [0u8; LEN];
        buf[..4].copy_from_slice(MAGIC);
        BigEndian::write_u16(&mut buf[4..6], VERSION);
        BigEndian::write_u64(&mut buf[6..14], self.log_start_offset);
        BigEndian::write_u64(&mut buf[14..22], self.recovery_point);
        BigEndian::write_u64(&mut buf[22..30], self.high_watermark);
        let crc = crc32fast::hash(&buf[..LEN - 4]);
        BigEndian::write_u32(&mut buf[LEN - 4..], crc);
        buf
    }

    fn decode(buf: &[u8]) -> Option<Self> {
        if buf.len() != LEN || &buf[..4] != MAGIC || BigEndian::read_u16(&buf[4..6]) != VERSION {
            return None;
        }
        if crc32fast::hash(&buf[..LEN - 4]) != BigEndian::read_u32(&buf[LEN - 4..]) {
            return None;
        }
        Some(Self {
            log_start_offset: BigEndian::read_u64(&buf[6..14]),
            recovery_point: BigEndian::read_u64(&buf[14..22]),
            high_watermark: BigEndian::read_u64(&buf[22..30]),
        })
    }

    /// Reads the checkpoint in `dir`; `None` when missing or damaged.
    pub(crate) fn read(storage: &dyn Storage, dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(CHECKPOINT_FILE);
        if !storage.exists(&path) {
            return Ok(None);
        }
        let file = storage.open(&path, OpenMode::Existing)?;
        let mut buf = [0u8; LEN + 1];
        let n = read_fully_at(&*file, &mut buf, 0)?;
        Ok(Self::decode(&buf[..n]))
    }

    /// Replaces the checkpoint in `dir` atomically and durably.
    pub(crate) fn write(&self, storage: &dyn Storage, dir: &Path) -> Result<()> {
        let path = dir.join(CHECKPOINT_FILE);
        let tmp = dir.join(format!("{CHECKPOINT_FILE}.tmp"));
        let file = storage.open(&tmp, OpenMode::Create)?;
        file.set_len(0)?;
        file.write_all_at(&self.encode(), 0)?;
        file.sync_data()?;
        drop(file);
        storage.rename(&tmp, &path)?;
        storage.sync_dir(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::SimStorage;

    #[test]
    fn checkpoint_round_trips_and_damage_reads_as_missing() {
        let storage = SimStorage::default();
        let dir = Path::new("/p");
        storage.create_dir_all(dir).unwrap();
        assert_eq!(Checkpoint::read(&storage, dir).unwrap(), None);
        let cp = Checkpoint {
            log_start_offset: 5,
            recovery_point: 70,
            high_watermark: 66,
        };
        cp.write(&storage, dir).unwrap();
        assert_eq!(Checkpoint::read(&storage, dir).unwrap(), Some(cp));
        let mut bytes = cp.encode().to_vec();
        for i in 0..bytes.len() {
            bytes[i] ^= 0x40;
            assert_eq!(Checkpoint::decode(&bytes), None, "flipped byte {i}");
            bytes[i] ^= 0x40;
        }
        assert_eq!(Checkpoint::decode(&bytes[..LEN - 1]), None);
    }
}
