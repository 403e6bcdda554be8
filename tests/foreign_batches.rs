//! Batches written by another Kafka implementation decode here: test vectors from the Go
//! client sarama's record-batch tests (one record: key 01 02 03 04, value 05 06 07, one
//! header 08 09 0a → 0b 0c, first timestamp 1479847795000 ms, timestamp delta 5 ms), as
//! uncompressed, gzip, raw snappy and LZ4 batches. Each must pass its CRC-32C check, decode
//! to the same record, and be accepted by `Partition::append_encoded`.
//!
//! And what Kafka's `LogValidator` does with a produced batch whose header a client got
//! wrong: the max timestamp and create time are set from the records (CRC recomputed),
//! and control batches or producer ids without a base sequence are refused.

use streamlog::record::{BatchIter, RecordBatch, RecordIter, encode_batch};
use streamlog::{Compression, LogConfig, Partition, Record};

/// The 61-byte header shared by the vectors, with its length, CRC and codec filled in.
fn header(length: u8, crc: [u8; 4], codec: u8) -> Vec<u8> {
    let mut h = vec![0u8; 8]; // base offset
    h.extend([0, 0, 0, length]);
    h.extend([0, 0, 0, 0]); // partition leader epoch
    h.push(2); // magic
    h.extend(crc);
    h.extend([0, codec]); // attributes
    h.extend([0, 0, 0, 0]); // last offset delta
    h.extend([0, 0, 1, 88, 141, 205, 89, 56]); // first timestamp 1479847795000
    h.extend([0; 8]); // max timestamp 0
    h.extend([0; 8]); // producer id 0
    h.extend([0, 0]); // producer epoch
    h.extend([0, 0, 0, 0]); // base sequence
    h.extend([0, 0, 0, 1]); // one record
    h
}

const RECORD: [u8; 21] = [
    40, 0, 10, 0, 8, 1, 2, 3, 4, 6, 5, 6, 7, 2, 6, 8, 9, 10, 4, 11, 12,
];

fn vectors() -> Vec<(&'static str, Compression, Vec<u8>)> {
    let mut plain = header(70, [84, 121, 97, 253], 0);
    plain.extend(RECORD);
    let mut gzip = header(95, [231, 74, 206, 165], 1);
    gzip.extend([
        31, 139, 8, 0, 0, 9, 110, 136, 0, 255, 0, 21, 0, 234, 255, 40, 0, 10, 0, 8, 1, 2, 3, 4, 6,
        5, 6, 7, 2, 6, 8, 9, 10, 4, 11, 12, 3, 0, 173, 201, 88, 103, 21, 0, 0, 0,
    ]);
    let mut snappy = header(72, [21, 0, 159, 97], 2);
    snappy.extend([
        21, 80, 40, 0, 10, 0, 8, 1, 2, 3, 4, 6, 5, 6, 7, 2, 6, 8, 9, 10, 4, 11, 12,
    ]);
    let mut lz4 = header(89, [169, 74, 119, 197], 3);
    lz4.extend([
        4, 34, 77, 24, 100, 112, 185, 21, 0, 0, 128, 40, 0, 10, 0, 8, 1, 2, 3, 4, 6, 5, 6, 7, 2, 6,
        8, 9, 10, 4, 11, 12, 0, 0, 0, 0, 12, 59, 239, 146,
    ]);
    vec![
        ("uncompressed", Compression::None, plain),
        ("gzip", Compression::Gzip, gzip),
        ("snappy (raw block)", Compression::Snappy, snappy),
        ("lz4 frame", Compression::Lz4, lz4),
    ]
}

#[test]
fn batches_from_another_kafka_client_decode_to_the_same_record() {
    for (name, codec, bytes) in vectors() {
        let batch = RecordBatch::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(batch.size_bytes(), bytes.len(), "{name}");
        batch
            .ensure_valid()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        batch
            .validate_for_append()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(batch.header().compression().unwrap(), codec, "{name}");
        let records = batch.records_bytes().unwrap();
        let decoded: Vec<_> = RecordIter::new(batch.header(), &records)
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(decoded.len(), 1, "{name}");
        let r = &decoded[0];
        assert_eq!(r.offset(), 0, "{name}");
        assert_eq!(r.timestamp(), 1_479_847_795_005, "{name}");
        assert_eq!(r.key(), Some(&[1u8, 2, 3, 4][..]), "{name}");
        assert_eq!(r.value(), Some(&[5u8, 6, 7][..]), "{name}");
        let headers: Vec<_> = r.headers().collect::<Result<_, _>>().unwrap();
        assert_eq!(headers.len(), 1, "{name}");
        assert_eq!(headers[0].key.as_bytes(), [8, 9, 10], "{name}");
        assert_eq!(headers[0].value, Some(&[11u8, 12][..]), "{name}");
    }
}

#[test]
fn foreign_batches_are_accepted_by_the_log_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open(dir.path(), LogConfig::default()).unwrap();
    let vectors = vectors();
    for (i, (name, _, bytes)) in vectors.iter().enumerate() {
        assert_eq!(
            log.append_encoded(bytes).unwrap(),
            i as u64..i as u64 + 1,
            "{name}"
        );
    }
    let records: Vec<_> = log.read_from(0).unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(records.len(), vectors.len());
    for (i, r) in records.iter().enumerate() {
        assert_eq!((r.offset(), r.value()), (i as u64, Some(&[5u8, 6, 7][..])));
    }
    // The stored file is the vectors end to end, with offsets assigned and, as Kafka's
    // validator does, the max timestamp the vectors leave at 0 set from the record
    // (first timestamp + 5 ms) under a new CRC; the records are untouched.
    let path = dir.path().join("00000000000000000000.log");
    let file = std::fs::read(path).unwrap();
    let stored: Vec<_> = BatchIter::new(&file, usize::MAX)
        .map(|b| b.unwrap().1)
        .collect();
    assert_eq!(stored.len(), vectors.len());
    for (batch, (name, _, original)) in stored.iter().zip(&vectors) {
        assert!(batch.is_valid(), "{name}");
        assert_eq!(batch.header().max_timestamp, 1_479_847_795_005, "{name}");
        assert_eq!(batch.as_bytes()[61..], original[61..], "{name}");
    }
}

/// Rewrites the CRC field (bytes 17..21) over bytes 21..end.
fn recrc(batch: &mut [u8]) {
    let crc = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, &batch[21..]) as u32;
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

fn batch_of(records: &[Record]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_batch(records, Compression::None, 0, &mut out).unwrap();
    out
}

/// Kafka's `LogValidator` (assignOffsetsNonCompressed / validateMessagesAndAssignOffsets-
/// Compressed) recomputes a produced batch's `maxTimestamp` from its records
/// (`batch.setMaxTimestamp(CREATE_TIME, maxBatchTimestamp)`): trusting the header, a
/// producer's wrong one would hide the records from time lookups (and time retention).
#[test]
fn a_produced_batch_gets_the_max_timestamp_of_its_records() {
    let mut batch = batch_of(&[
        Record::new(b"a".to_vec()).with_timestamp(1_000),
        Record::new(b"b".to_vec()).with_timestamp(2_000),
    ]);
    // A client that leaves maxTimestamp at 0 (CRC valid).
    batch[35..43].copy_from_slice(&0i64.to_be_bytes());
    recrc(&mut batch);
    assert!(RecordBatch::parse(&batch).unwrap().is_valid());

    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open(dir.path(), LogConfig::default()).unwrap();
    let offsets = log.append_encoded(&batch).unwrap();
    assert_eq!(offsets, 0..2);
    assert_eq!(log.high_watermark(), 2);
    // The record at offset 1 has timestamp 2000 ≥ 1500: Kafka answers offset 1.
    let found = log.offset_for_timestamp(1_500).unwrap();
    assert_eq!(
        found.map(|f| (f.offset, f.timestamp)),
        Some((1, 2_000)),
        "the record with timestamp 2000 is not found by time"
    );
}

/// Kafka's `LogValidator.validateBatch` refuses, from a client, a control batch ("Clients
/// are not allowed to write control records") and an idempotent batch (producerId ≥ 0)
/// without a base sequence ("Invalid sequence number"); so does `validate_for_append`.
#[test]
fn a_control_batch_from_a_producer_is_refused() {
    let mut batch = batch_of(&[Record::new(b"x".to_vec()).with_key(b"k".to_vec())]);
    batch[22] |= 0x20; // attributes bit 5: control
    recrc(&mut batch);
    let parsed = RecordBatch::parse(&batch).unwrap();
    assert!(parsed.header().is_control());
    assert!(
        parsed.validate_for_append().is_err(),
        "a client's control batch was accepted for append"
    );
}

#[test]
fn a_producer_id_without_a_base_sequence_is_refused() {
    let mut batch = batch_of(&[Record::new(b"x".to_vec())]);
    batch[43..51].copy_from_slice(&7i64.to_be_bytes()); // producerId 7
    batch[51..53].copy_from_slice(&0i16.to_be_bytes()); // producerEpoch 0
    // baseSequence stays -1
    recrc(&mut batch);
    let parsed = RecordBatch::parse(&batch).unwrap();
    assert_eq!(parsed.header().base_sequence, -1);
    assert!(
        parsed.validate_for_append().is_err(),
        "an idempotent batch without a base sequence was accepted for append"
    );
}

/// Kafka's `setMaxTimestamp(CREATE_TIME, max)` on a create-time topic also clears a
/// client's log-append-time bit, so records keep their own timestamps (stored as it came,
/// every record would read the header's max timestamp).
#[test]
fn a_produced_log_append_time_batch_keeps_its_record_timestamps() {
    let mut batch = batch_of(&[
        Record::new(b"a".to_vec()).with_timestamp(1_000),
        Record::new(b"b".to_vec()).with_timestamp(2_000),
    ]);
    batch[22] |= 0x08; // attributes bit 3: log-append time
    batch[35..43].copy_from_slice(&5_000i64.to_be_bytes());
    recrc(&mut batch);
    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open(dir.path(), LogConfig::default()).unwrap();
    log.append_encoded(&batch).unwrap();
    let timestamps: Vec<i64> = log
        .read_from(0)
        .unwrap()
        .map(|r| r.unwrap().timestamp())
        .collect();
    assert_eq!(timestamps, [1_000, 2_000]);
}

/// Kafka reads a header key with `Utils.utf8(buffer, size)` (Java's lossy UTF-8 decoding:
/// bad bytes become U+FFFD) and never rejects it; only a negative key length is an
/// `InvalidRecordException`. Non-Java clients (librdkafka, sarama, franz-go) take header
/// keys as raw bytes, so such a batch is produced and stored by Kafka: it is accepted, read
/// with U+FFFD in the key, and kept byte for byte.
#[test]
fn a_header_key_that_is_not_utf8_is_accepted_as_kafka_does() {
    let record = Record::new(b"value".to_vec()).with_header("QQ", Some(b"v".to_vec()));
    let mut batch = Vec::new();
    encode_batch(&[record], Compression::None, 1_000, &mut batch).unwrap();
    let at = batch.windows(2).position(|w| w == b"QQ").unwrap();
    batch[at..at + 2].copy_from_slice(&[0xff, 0xfe]);
    recrc(&mut batch);
    let parsed = RecordBatch::parse(&batch).unwrap();
    assert!(parsed.is_valid());

    let section = parsed.records_bytes().unwrap();
    let decoded: Vec<_> = RecordIter::new(parsed.header(), &section).collect();
    assert!(
        decoded.iter().all(Result::is_ok),
        "a record Kafka reads is refused: {decoded:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open(dir.path(), LogConfig::default()).unwrap();
    let appended = log.append_encoded(&batch);
    assert!(appended.is_ok(), "Kafka accepts this produce: {appended:?}");
    let read: Vec<_> = log.read_from(0).unwrap().collect();
    assert_eq!(read.len(), 1);
    let record = read[0].as_ref().unwrap();
    assert_eq!(record.header_count(), 1);
    assert_eq!(record.headers()[0].key, "\u{fffd}\u{fffd}");
    let stored = log
        .read(0, streamlog::ReadOptions::default())
        .unwrap()
        .next_batch()
        .unwrap()
        .unwrap();
    // The log stamps the base offset (0 already) and nothing else of this batch.
    assert_eq!(
        &stored[..],
        &batch[..],
        "the stored bytes are the produced ones"
    );
}
