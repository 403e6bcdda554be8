//! Fuzz target `segment_recovery`: a partition directory on a `SimStorage` whose `.log`
//! holds an optional prefix of real batches (built with `streamlog::record::encode_batch`)
//! followed by arbitrary bytes, opened without a clean-shutdown marker so every segment is
//! recovered, then read end to end with `read_to_log_end(log_start)`, appended to, closed
//! and reopened (the clean path). Nothing may panic; errors are fine. The records read must
//! come in strictly increasing offsets inside `[log_start, log_end)`.
//!
//! Input layout: `[flags, records per batch, checkpoint recovery point, bytes...]`.
//! flags bits 0-1: how many valid batches come first (0-3); bits 2-4: their codec (id mod
//! 5); bit 5: put the arbitrary bytes in a second segment after the valid ones instead of
//! after them in the same file; bit 6: write a valid `log-state.checkpoint` whose recovery
//! point is the third byte (damage below it must be an error, not a silent cut); bit 7:
//! write the first 64 arbitrary bytes as the first segment's `.index` too.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use streamlog::record::encode_batch;
use streamlog::{Compression, Env, LogConfig, ManualClock, Partition, Record, SimStorage};

const NOW_MS: i64 = 1_700_000_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((&[flags, per_batch, recovery_point], tail)) = data.split_first_chunk::<3>() else {
        return;
    };
    let batches = usize::from(flags & 3);
    let codec = Compression::ALL[usize::from((flags >> 2) & 7) % Compression::ALL.len()];
    let per_batch = usize::from(per_batch % 16) + 1;

    let storage = SimStorage::new();
    let dir = Path::new("/fuzz/topic-0");

    let mut prefix = Vec::new();
    let mut next_offset = 0u64;
    for b in 0..batches {
        let records: Vec<Record> = (0..per_batch)
            .map(|i| {
                let n = b * per_batch + i;
                Record::new(vec![n as u8; n % 40])
                    .with_key(format!("k{n}").into_bytes())
                    .with_timestamp(NOW_MS - 10_000 + n as i64)
            })
            .collect();
        let start = prefix.len();
        if encode_batch(&records, codec, NOW_MS, &mut prefix).is_err() {
            return;
        }
        // baseOffset is outside the CRC: the log stamps it, so do the same here.
        if let Some(field) = prefix.get_mut(start..start + 8) {
            field.copy_from_slice(&(next_offset as i64).to_be_bytes());
        }
        next_offset += per_batch as u64;
    }

    let log_path = |base: u64| -> PathBuf { dir.join(format!("{base:020}.log")) };
    if flags & 0x20 != 0 && batches > 0 {
        storage.write_file(log_path(0), &prefix);
        storage.write_file(log_path(next_offset), tail);
    } else {
        let mut file = prefix;
        file.extend_from_slice(tail);
        storage.write_file(log_path(0), &file);
    }
    if flags & 0x40 != 0 {
        storage.write_file(
            dir.join("log-state.checkpoint"),
            &checkpoint(0, recovery_point.into(), 0),
        );
    }
    if flags & 0x80 != 0 {
        let index = &tail[..tail.len().min(64)];
        storage.write_file(dir.join(format!("{:020}.index", 0)), index);
    }

    let config = LogConfig::default()
        .segment_index_bytes(1024)
        .index_interval_bytes(64);
    let env = || Env {
        storage: Arc::new(storage.clone()),
        clock: Arc::new(ManualClock::new(NOW_MS)),
    };
    let Ok(log) = Partition::open_with_env(dir, config.clone(), env()) else {
        return;
    };
    read_all(&log);
    let _ = log.offset_for_timestamp(NOW_MS - 10_000);
    let _ = log.read_from(log.high_watermark()).map(|mut r| r.next());
    if log.append(Record::new(b"after recovery".to_vec())).is_ok() {
        read_all(&log);
    }
    if log.close().is_err() {
        return;
    }
    // Reopen after a clean close: the files are trusted, indexes only sanity-checked.
    if let Ok(log) = Partition::open_with_env(dir, config, env()) {
        read_all(&log);
    }
});

/// Reads from the log start to the log end, checking the offsets that come back.
fn read_all(log: &Partition) {
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    let Ok(records) = log.read_to_log_end(start) else {
        return;
    };
    let mut last: Option<u64> = None;
    for record in records {
        let Ok(record) = record else { break };
        let offset = record.offset();
        assert!(
            (start..end).contains(&offset),
            "offset {offset} outside [{start}, {end})"
        );
        assert!(
            last.is_none_or(|l| offset > l),
            "offset {offset} after {last:?}"
        );
        last = Some(offset);
        let _ = (
            record.key(),
            record.value(),
            record.timestamp(),
            record.headers(),
        );
    }
}

/// A valid `log-state.checkpoint` (layout in src/log/checkpoint.rs): one 64-byte slot of
/// magic `SLCP`, version 2, sequence 1, log start, recovery point, high watermark, CRC-32
/// of what comes before, zero padding.
fn checkpoint(log_start: u64, recovery_point: u64, high_watermark: u64) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64);
    buf.extend_from_slice(b"SLCP");
    buf.extend_from_slice(&2u16.to_be_bytes());
    buf.extend_from_slice(&1u64.to_be_bytes());
    buf.extend_from_slice(&log_start.to_be_bytes());
    buf.extend_from_slice(&recovery_point.to_be_bytes());
    buf.extend_from_slice(&high_watermark.to_be_bytes());
    let crc = crc32fast::hash(&buf);
    buf.extend_from_slice(&crc.to_be_bytes());
    buf.resize(64, 0);
    buf
}
