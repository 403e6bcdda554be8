//! `log-state.checkpoint`: the partition's log start offset, recovery point and high
//! watermark, rewritten on every flush, roll and close.
//!
//! Two 64-byte slots, written in turn, each updated in place with one `fdatasync`: a write
//! torn by power loss damages only the slot being written, and the other still holds the
//! previous checkpoint. Slot layout (big-endian): magic `SLCP` · version u16 = 2 ·
//! sequence u64 · log start u64 · recovery point u64 · high watermark u64 · CRC-32 (IEEE,
//! crc32fast) of the bytes before it · zero padding. Reading takes the valid slot with the
//! highest sequence. No valid slot reads as `None`: the log then recovers from its first
//! segment, which is slower but loses nothing.

use std::path::Path;
use std::sync::Arc;

use byteorder::{BigEndian, ByteOrder};

use crate::error::Result;
use crate::storage::{OpenMode, Storage, StorageFile, read_fully_at};

/// File name inside the partition directory.
pub(crate) const CHECKPOINT_FILE: &str = "log-state.checkpoint";
const MAGIC: &[u8; 4] = b"SLCP";
const VERSION: u16 = 2;
const SLOT_BYTES: usize = 64;
/// Bytes covered by the CRC: magic, version, sequence and the three offsets.
const FIELDS: usize = 4 + 2 + 8 + 8 + 8 + 8;
/// Bytes used in a slot: the fields and their CRC.
const USED: usize = FIELDS + 4;

/// Offsets that must survive a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Checkpoint {
    pub(crate) log_start_offset: u64,
    pub(crate) recovery_point: u64,
    pub(crate) high_watermark: u64,
}

/// The open checkpoint file and the sequence number of its newest slot.
#[derive(Debug)]
pub(crate) struct CheckpointFile {
    file: Arc<dyn StorageFile>,
    sequence: u64,
}

impl Checkpoint {
    fn encode(&self, sequence: u64) -> [u8; SLOT_BYTES] {
        let mut slot = [0u8; SLOT_BYTES];
        slot[..4].copy_from_slice(MAGIC);
        BigEndian::write_u16(&mut slot[4..6], VERSION);
        BigEndian::write_u64(&mut slot[6..14], sequence);
        BigEndian::write_u64(&mut slot[14..22], self.log_start_offset);
        BigEndian::write_u64(&mut slot[22..30], self.recovery_point);
        BigEndian::write_u64(&mut slot[30..38], self.high_watermark);
        let crc = crc32fast::hash(&slot[..FIELDS]);
        BigEndian::write_u32(&mut slot[FIELDS..USED], crc);
        slot
    }

    /// `(sequence, checkpoint)` of a valid slot.
    fn decode(slot: &[u8]) -> Option<(u64, Self)> {
        let slot = slot.get(..USED)?;
        if &slot[..4] != MAGIC || BigEndian::read_u16(&slot[4..6]) != VERSION {
            return None;
        }
        if crc32fast::hash(&slot[..FIELDS]) != BigEndian::read_u32(&slot[FIELDS..USED]) {
            return None;
        }
        let checkpoint = Self {
            log_start_offset: BigEndian::read_u64(&slot[14..22]),
            recovery_point: BigEndian::read_u64(&slot[22..30]),
            high_watermark: BigEndian::read_u64(&slot[30..38]),
        };
        Some((BigEndian::read_u64(&slot[6..14]), checkpoint))
    }
}

impl CheckpointFile {
    /// Opens (or creates) the checkpoint in `dir`; returns it with the newest valid
    /// checkpoint, `None` when there is none.
    pub(crate) fn open(storage: &dyn Storage, dir: &Path) -> Result<(Self, Option<Checkpoint>)> {
        let path = dir.join(CHECKPOINT_FILE);
        let existed = storage.exists(&path);
        let file = storage.open(&path, OpenMode::Create)?;
        if !existed {
            storage.sync_dir(dir)?;
        }
        let mut buf = [0u8; 2 * SLOT_BYTES];
        let n = read_fully_at(&*file, &mut buf, 0)?;
        let newest = buf[..n]
            .chunks(SLOT_BYTES)
            .filter_map(Checkpoint::decode)
            .max_by_key(|(sequence, _)| *sequence);
        let sequence = newest.map_or(0, |(sequence, _)| sequence);
        Ok((Self { file, sequence }, newest.map(|(_, c)| c)))
    }

    /// Durably records `checkpoint` in the slot not holding the newest one.
    pub(crate) fn write(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        let sequence = self.sequence + 1;
        let slot = (sequence % 2) * SLOT_BYTES as u64;
        self.file.write_all_at(&checkpoint.encode(sequence), slot)?;
        self.file.sync_data()?;
        self.sequence = sequence;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::SimStorage;

    fn cp(n: u64) -> Checkpoint {
        Checkpoint {
            log_start_offset: n,
            recovery_point: n + 70,
            high_watermark: n + 66,
        }
    }

    #[test]
    fn the_newest_checkpoint_is_read_back() {
        let storage = SimStorage::default();
        let dir = Path::new("/p");
        crate::storage::create_dir_all_durably(&storage, dir).unwrap();
        let (mut file, found) = CheckpointFile::open(&storage, dir).unwrap();
        assert_eq!(found, None);
        for n in 0..5 {
            file.write(&cp(n)).unwrap();
            let (_, found) = CheckpointFile::open(&storage, dir).unwrap();
            assert_eq!(found, Some(cp(n)));
        }
    }

    #[test]
    fn a_damaged_slot_falls_back_to_the_other() {
        let storage = SimStorage::default();
        let dir = Path::new("/p");
        crate::storage::create_dir_all_durably(&storage, dir).unwrap();
        let (mut file, _) = CheckpointFile::open(&storage, dir).unwrap();
        file.write(&cp(1)).unwrap();
        file.write(&cp(2)).unwrap();
        let path = dir.join(CHECKPOINT_FILE);
        let good = storage.read_file(&path).unwrap();
        for i in 0..USED {
            // Damage the newest slot (sequence 2 lives in slot 0).
            let mut bytes = good.clone();
            bytes[i] ^= 0x40;
            storage.write_file(&path, &bytes);
            let (_, found) = CheckpointFile::open(&storage, dir).unwrap();
            assert_eq!(found, Some(cp(1)), "flipped byte {i}");
        }
    }

    #[test]
    fn a_power_loss_during_a_write_keeps_a_valid_checkpoint() {
        let storage = SimStorage::default();
        let dir = Path::new("/p");
        crate::storage::create_dir_all_durably(&storage, dir).unwrap();
        let (mut file, _) = CheckpointFile::open(&storage, dir).unwrap();
        file.write(&cp(1)).unwrap();
        file.file.write_all_at(&cp(2).encode(2), 0).unwrap(); // not synced
        for seed in 0..200 {
            let after = storage.power_loss(seed);
            let (_, found) = CheckpointFile::open(&after, dir).unwrap();
            assert!(
                found == Some(cp(1)) || found == Some(cp(2)),
                "seed {seed}: {found:?}"
            );
        }
    }
}
