//! Fuzz target `record_batch`: arbitrary bytes as a chunk of a `.log` file. Walks it with
//! `BatchIter`, and for every batch runs `RecordBatch::parse`, `ensure_valid`,
//! `records_bytes`, a `RecordIter` over the records (keys, values, headers) and
//! `validate_for_append`. Nothing may panic; errors are fine.
//!
//! The first input byte is a mode: when its low bit is set, the CRC-32C of every batch is
//! repaired before checking, so the fuzzer gets past the checksum into the records and the
//! codecs (it would almost never guess a valid CRC on its own).
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamlog::record::{BatchIter, RecordBatch, RecordIter, next_batch_size};

/// Largest batch accepted by the iterator (small, so huge length fields are refused fast).
const MAX_BATCH_BYTES: usize = 1 << 20;
/// Where the CRC field lives and where the bytes it covers start.
const CRC_AT: usize = 17;
const CRC_COVERS_FROM: usize = 21;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if mode & 1 == 1 {
        repair_crcs(&mut bytes);
    }
    let _ = next_batch_size(&bytes);
    // Parsing at the start of the buffer, whatever it holds.
    if let Ok(batch) = RecordBatch::parse(&bytes) {
        exercise(&batch);
    }
    let mut iter = BatchIter::new(&bytes, MAX_BATCH_BYTES);
    for item in iter.by_ref() {
        match item {
            Ok((position, batch)) => {
                assert!(position + batch.size_bytes() <= bytes.len());
                exercise(&batch);
            }
            Err(_) => break,
        }
    }
    assert!(iter.position() <= bytes.len());
});

/// Everything a reader or an appender does with one batch.
fn exercise(batch: &RecordBatch<'_>) {
    let header = *batch.header();
    let _ = (
        header.size_bytes(),
        header.last_offset(),
        header.compression(),
        header.timestamp_type(),
        header.is_transactional(),
        header.is_control(),
        header.has_delete_horizon(),
    );
    let _ = batch.is_valid();
    let _ = batch.ensure_valid();
    if let Ok(records) = batch.records_bytes() {
        for record in RecordIter::new(&header, &records) {
            let Ok(record) = record else { break };
            let _ = (
                record.offset(),
                record.timestamp(),
                record.offset_delta(),
                record.timestamp_delta(),
                record.sequence(),
                record.key().map(<[u8]>::len),
                record.value().map(<[u8]>::len),
                record.header_count(),
            );
            for h in record.headers() {
                // The view promises every header already validated.
                let h = h.expect("RecordIter yielded a record with an invalid header");
                let _ = (h.key.len(), h.value.map(<[u8]>::len));
            }
        }
    }
    let _ = batch.validate_for_append();
}

/// Rewrites the CRC field of each batch laid end to end in `bytes` to the right value.
fn repair_crcs(bytes: &mut [u8]) {
    let mut position = 0;
    while let Some(rest) = bytes.get(position..) {
        let Ok(Some(size)) = next_batch_size(rest) else {
            return;
        };
        let Some(end) = position.checked_add(size).filter(|&e| e <= bytes.len()) else {
            return;
        };
        let Some(batch) = bytes.get(position..end) else {
            return;
        };
        let Ok(parsed) = RecordBatch::parse(batch) else {
            return;
        };
        let crc = parsed.compute_crc();
        if let Some(field) = bytes.get_mut(position + CRC_AT..position + CRC_COVERS_FROM) {
            field.copy_from_slice(&crc.to_be_bytes());
        }
        position = end;
    }
}
