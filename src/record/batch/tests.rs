//! Batch-level tests: header fields, CRC, in-place setters, append validation, iteration
//! over a buffer of batches, and a no-panic property test on arbitrary bytes.

use proptest::prelude::*;

use super::*;
use crate::record::view::tests::simple;
use crate::record::{Record, encode_batch};

fn records(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            Record::new(format!("value{i}").into_bytes())
                .with_key(format!("key{i}").into_bytes())
                .with_timestamp(1000 + i as i64)
        })
        .collect()
}

fn batch_of(n: usize, codec: Compression) -> Vec<u8> {
    let mut out = Vec::new();
    encode_batch(&records(n), codec, 0, &mut out).unwrap();
    out
}

fn patch_i32(batch: &mut [u8], at: usize, v: i32) {
    batch[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

fn recrc(batch: &mut [u8]) {
    let crc = crate::record::crc32c(&batch[at::ATTRIBUTES..]);
    batch[at::CRC..at::CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// A batch around a hand-made records section (uncompressed bytes, compressed by `codec`).
fn craft(section: &[u8], count: i32, codec: Compression) -> Vec<u8> {
    let mut b = batch_of(1, Compression::None);
    b.truncate(BATCH_OVERHEAD);
    codec.compress(section, &mut b).unwrap();
    b[at::ATTRIBUTES + 1] = codec.id();
    let len = (b.len() - LOG_OVERHEAD) as i32;
    patch_i32(&mut b, at::BATCH_LENGTH, len);
    patch_i32(&mut b, at::RECORDS_COUNT, count);
    patch_i32(&mut b, at::LAST_OFFSET_DELTA, count - 1);
    recrc(&mut b);
    b
}

fn offsets(batch: &RecordBatch<'_>) -> Result<Vec<u64>> {
    let section = batch.records_bytes()?;
    RecordIter::new(batch.header(), &section)
        .map(|r| r.map(|r| r.offset()))
        .collect()
}

#[test]
fn header_fields_parse_as_written() {
    let b = batch_of(3, Compression::Gzip);
    let batch = RecordBatch::parse(&b).unwrap();
    let h = batch.header();
    assert_eq!(h.base_offset, 0);
    assert_eq!(h.size_bytes(), b.len());
    assert_eq!(h.last_offset(), 2);
    assert_eq!(h.partition_leader_epoch, -1);
    assert_eq!(
        (h.producer_id, h.producer_epoch, h.base_sequence),
        (-1, -1, -1)
    );
    assert_eq!(h.compression().unwrap(), Compression::Gzip);
    assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
    assert!(!h.is_transactional() && !h.is_control() && !h.has_delete_horizon());
    assert_eq!(
        (h.base_timestamp, h.max_timestamp, h.records_count),
        (1000, 1002, 3)
    );
    assert!(batch.is_valid());
    assert_eq!(batch.compute_crc(), h.crc);
    assert!(matches!(batch.records_bytes().unwrap(), Cow::Owned(_)));
    let plain = batch_of(1, Compression::None);
    let batch = RecordBatch::parse(&plain).unwrap();
    assert!(matches!(batch.records_bytes().unwrap(), Cow::Borrowed(_)));
}

#[test]
fn parse_keeps_exactly_one_batch_and_rejects_short_input() {
    let mut b = batch_of(2, Compression::None);
    let size = b.len();
    b.extend(batch_of(1, Compression::None));
    assert_eq!(RecordBatch::parse(&b).unwrap().as_bytes().len(), size);
    assert!(RecordBatch::parse(&b[..size - 1]).is_err());
    assert!(BatchHeader::parse(&b[..60]).is_err());
    let mut bad = b.clone();
    bad[at::MAGIC] = 1;
    assert!(RecordBatch::parse(&bad).is_err());
    let mut small = b.clone();
    patch_i32(&mut small, at::BATCH_LENGTH, 10);
    assert!(RecordBatch::parse(&small).is_err());
}

#[test]
fn next_batch_size_needs_seventeen_bytes() {
    let b = batch_of(2, Compression::None);
    for n in 0..17 {
        assert_eq!(next_batch_size(&b[..n]).unwrap(), None, "{n}");
    }
    assert_eq!(next_batch_size(&b[..17]).unwrap(), Some(b.len()));
    let mut bad = b.clone();
    bad[at::MAGIC] = 37;
    assert!(next_batch_size(&bad[..17]).is_err());
    let mut bad = b.clone();
    patch_i32(&mut bad, at::BATCH_LENGTH, 9);
    assert!(next_batch_size(&bad).is_err());
}

#[test]
fn a_changed_crc_covered_byte_fails_the_integrity_check() {
    let clean = batch_of(3, Compression::None);
    for at in [
        at::LAST_OFFSET_DELTA + 3,
        at::RECORDS_COUNT,
        clean.len() - 1,
    ] {
        let mut b = clean.clone();
        b[at] ^= 0x01;
        let batch = RecordBatch::parse(&b).unwrap();
        assert!(!batch.is_valid());
        let msg = batch.ensure_valid().unwrap_err().to_string();
        assert!(msg.contains("CRC"), "{msg}");
    }
    let mut b = clean.clone();
    patch_i32(&mut b, at::RECORDS_COUNT, -1);
    recrc(&mut b);
    assert!(RecordBatch::parse(&b).unwrap().ensure_valid().is_err());
}

#[test]
fn base_offset_and_leader_epoch_are_outside_the_crc() {
    let mut b = batch_of(3, Compression::Lz4);
    set_base_offset(&mut b, 498);
    set_partition_leader_epoch(&mut b, 500);
    let batch = RecordBatch::parse(&b).unwrap();
    batch.validate_for_append().unwrap();
    assert_eq!(batch.header().partition_leader_epoch, 500);
    assert_eq!(batch.header().last_offset(), 500);
    assert_eq!(offsets(&batch).unwrap(), [498, 499, 500]);
    set_base_offset(&mut b[..4], 1); // too short: ignored, no panic
}

#[test]
fn log_append_time_and_delete_horizon_timestamps() {
    let mut b = batch_of(3, Compression::None);
    b[at::ATTRIBUTES + 1] |= TIMESTAMP_TYPE_BIT as u8;
    b[at::MAX_TIMESTAMP..at::MAX_TIMESTAMP + 8].copy_from_slice(&15i64.to_be_bytes());
    recrc(&mut b);
    let batch = RecordBatch::parse(&b).unwrap();
    assert!(batch.is_valid());
    let section = batch.records_bytes().unwrap();
    assert!(RecordIter::new(batch.header(), &section).all(|r| r.unwrap().timestamp() == 15));

    // Delete horizon 100 in the base slot; deltas relative to it keep 50/100/150.
    let section: Vec<u8> = [-50i64, 0, 50]
        .iter()
        .enumerate()
        .flat_map(|(i, &d)| simple(i as i32, d))
        .collect();
    let mut b = craft(&section, 3, Compression::None);
    b[at::ATTRIBUTES + 1] |= DELETE_HORIZON_BIT as u8;
    b[at::BASE_TIMESTAMP..at::BASE_TIMESTAMP + 8].copy_from_slice(&100i64.to_be_bytes());
    recrc(&mut b);
    let batch = RecordBatch::parse(&b).unwrap();
    assert!(batch.header().has_delete_horizon());
    let section = batch.records_bytes().unwrap();
    let ts: Vec<i64> = RecordIter::new(batch.header(), &section)
        .map(|r| r.unwrap().timestamp())
        .collect();
    assert_eq!(ts, [50, 100, 150]);
}

#[test]
fn record_count_mismatch_fails_iteration_uncompressed_and_gzip() {
    for codec in [Compression::None, Compression::Gzip] {
        for declared in [5, 2] {
            let mut b = batch_of(3, codec);
            patch_i32(&mut b, at::RECORDS_COUNT, declared);
            recrc(&mut b);
            let batch = RecordBatch::parse(&b).unwrap();
            batch.ensure_valid().unwrap();
            assert!(offsets(&batch).is_err(), "{codec:?} {declared}");
            assert!(batch.validate_for_append().is_err());
        }
    }
}

#[test]
fn validate_for_append_checks_count_against_last_offset_delta() {
    let b = batch_of(3, Compression::None);
    RecordBatch::parse(&b)
        .unwrap()
        .validate_for_append()
        .unwrap();
    for delta in [0, 15, -3] {
        let mut b = b.clone();
        patch_i32(&mut b, at::LAST_OFFSET_DELTA, delta);
        recrc(&mut b);
        let err = RecordBatch::parse(&b).unwrap().validate_for_append();
        assert!(matches!(err, Err(Error::InvalidBatch { .. })), "{delta}");
    }
    for (count, delta) in [(5, 4), (1, 0)] {
        let mut b = b.clone();
        patch_i32(&mut b, at::RECORDS_COUNT, count);
        patch_i32(&mut b, at::LAST_OFFSET_DELTA, delta);
        recrc(&mut b);
        assert!(
            RecordBatch::parse(&b)
                .unwrap()
                .validate_for_append()
                .is_err()
        );
    }
}

#[test]
fn validate_for_append_rejects_empty_and_non_sequential_batches() {
    let empty = craft(&[], 0, Compression::None);
    let batch = RecordBatch::parse(&empty).unwrap();
    batch.ensure_valid().unwrap();
    assert!(matches!(
        batch.validate_for_append(),
        Err(Error::EmptyBatch)
    ));

    let all_zero: Vec<u8> = (0..3).flat_map(|_| simple(0, 0)).collect();
    let b = craft(&all_zero, 3, Compression::Gzip);
    let err = RecordBatch::parse(&b).unwrap().validate_for_append();
    assert!(matches!(err, Err(Error::InvalidBatch { .. })));
    let good: Vec<u8> = (0..3).flat_map(|i| simple(i, 0)).collect();
    let b = craft(&good, 3, Compression::Gzip);
    RecordBatch::parse(&b)
        .unwrap()
        .validate_for_append()
        .unwrap();
    let mut trailing = good.clone();
    trailing.push(0);
    let b = craft(&trailing, 3, Compression::None);
    assert!(
        RecordBatch::parse(&b)
            .unwrap()
            .validate_for_append()
            .is_err()
    );
}

#[test]
fn unknown_codec_ids_are_unsupported() {
    let mut b = batch_of(1, Compression::None);
    b[at::ATTRIBUTES + 1] = 6;
    recrc(&mut b);
    let batch = RecordBatch::parse(&b).unwrap();
    assert!(matches!(
        batch.records_bytes(),
        Err(Error::UnsupportedCompression { codec: 6 })
    ));
}

fn three_batches() -> (Vec<u8>, Vec<usize>) {
    let mut buf = Vec::new();
    let mut starts = Vec::new();
    for n in 1..=3 {
        starts.push(buf.len());
        buf.extend(batch_of(n, Compression::None));
    }
    (buf, starts)
}

fn positions(buf: &[u8], max: usize) -> (Vec<Result<usize>>, usize) {
    let mut it = BatchIter::new(buf, max);
    let items = it.by_ref().map(|r| r.map(|(p, _)| p)).collect();
    (items, it.position())
}

#[test]
fn batch_iter_ignores_a_torn_tail() {
    let (buf, starts) = three_batches();
    for junk in [0, 2, 4, 5, 6] {
        let mut b = buf.clone();
        b.extend(vec![0; junk]);
        let (items, pos) = positions(&b, usize::MAX);
        let got: Vec<usize> = items.into_iter().map(Result::unwrap).collect();
        assert_eq!(got, starts, "{junk} junk bytes");
        assert_eq!(pos, buf.len());
    }
    let cut = &buf[..starts[2] + 13];
    let (items, pos) = positions(cut, usize::MAX);
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(Result::is_ok));
    assert_eq!(pos, starts[2]);
    let cut = &buf[..buf.len() - 1];
    assert_eq!(positions(cut, usize::MAX).0.len(), 2);
}

#[test]
fn batch_iter_reports_bad_batches_only_when_reached() {
    let (buf, starts) = three_batches();
    let mut zeros = buf.clone();
    zeros.extend([0; 17]);
    let mut small = buf.clone();
    patch_i32(&mut small, starts[1] + at::BATCH_LENGTH, 9);
    let mut magic = buf.clone();
    magic[starts[1] + at::MAGIC] = 37;
    let big = starts[2] - starts[1];
    for (name, b, max, bad_at, good) in [
        ("17 zero bytes", &zeros, usize::MAX, buf.len(), 3),
        ("length 9", &small, usize::MAX, starts[1], 1),
        ("magic 37", &magic, usize::MAX, starts[1], 1),
        ("too large", &buf, big - 1, starts[1], 1),
    ] {
        let (items, pos) = positions(b, max);
        assert_eq!(items.len(), good + 1, "{name}");
        assert!(items[..good].iter().all(Result::is_ok), "{name}");
        match &items[good] {
            Err(Error::InvalidBatch { position, .. }) => {
                assert_eq!(*position, bad_at as u64, "{name}")
            }
            other => panic!("{name}: {other:?}"),
        }
        assert_eq!(
            pos,
            starts.get(good).copied().unwrap_or(buf.len()),
            "{name}"
        );
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        prefix in any::<bool>(),
        codec in 0u8..8,
    ) {
        // Half the cases start with a real batch header so decoding gets further.
        let mut buf = if prefix { batch_of(2, Compression::None)[..61].to_vec() } else { Vec::new() };
        buf.extend(bytes);
        if prefix && buf.len() >= 12 {
            let len = (buf.len() - 12) as i32;
            patch_i32(&mut buf, at::BATCH_LENGTH, len);
            buf[at::ATTRIBUTES + 1] = codec;
        }
        for item in BatchIter::new(&buf, 1 << 20) {
            let Ok((_, batch)) = item else { break };
            let _ = batch.is_valid();
            let _ = batch.validate_for_append();
            if let Ok(section) = batch.records_bytes() {
                for r in RecordIter::new(batch.header(), &section) {
                    let Ok(r) = r else { break };
                    let _ = r.headers().count();
                }
            }
        }
        let _ = RecordBatch::parse(&buf).map(|b| b.records_bytes().map(|s| s.len()));
        let _ = next_batch_size(&buf);
    }
}

/// Records of every shape the fast append check must handle or hand over: null and
/// empty keys and values, headers, and timestamps far enough apart for 10-byte deltas.
fn arb_records() -> impl Strategy<Value = Vec<Record>> {
    let bytes = || proptest::option::of(proptest::collection::vec(any::<u8>(), 0..150));
    let record = (
        bytes(),
        bytes(),
        prop_oneof![Just(0i64), -1000i64..1000, any::<i64>()],
        proptest::collection::vec((".{0,4}", bytes()), 0..3),
    )
        .prop_map(|(key, value, timestamp, headers)| {
            let mut r = Record::default()
                .with_value(value)
                .with_timestamp(timestamp);
            if let Some(key) = key {
                r = r.with_key(key);
            }
            for (k, v) in headers {
                r = r.with_header(k, v);
            }
            r
        });
    proptest::collection::vec(record, 1..30)
}

/// An edit of a records section: overwrite, insert or delete one byte.
fn edit(section: &mut Vec<u8>, kind: u8, at: usize, byte: u8) {
    if section.is_empty() {
        section.push(byte);
        return;
    }
    let at = at % section.len();
    match kind % 3 {
        0 => section[at] = byte,
        1 => section.insert(at, byte),
        _ => {
            section.remove(at);
        }
    }
}

proptest! {
    /// The fast pass of `validate_for_append` never accepts what decoding every record
    /// refuses, and hands everything else to it: on valid batches and on batches with a
    /// few bytes edited, the answer (and its error) is the one of the full decode.
    #[test]
    fn the_fast_append_check_agrees_with_decoding_every_record(
        records in arb_records(),
        edits in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 0..3),
        base in prop_oneof![Just(0i64), Just(-1), Just(i64::MAX - 3), 0i64..1000],
        count_change in prop_oneof![Just(0i32), -1i32..2],
    ) {
        let mut b = Vec::new();
        encode_batch(&records, Compression::None, 0, &mut b).unwrap();
        let mut section = b[BATCH_OVERHEAD..].to_vec();
        for &(kind, at, byte) in &edits {
            edit(&mut section, kind, at, byte);
        }
        let count = records.len() as i32 + count_change;
        let mut b = craft(&section, count, Compression::None);
        b[at::BASE_OFFSET..at::BASE_OFFSET + 8].copy_from_slice(&base.to_be_bytes());
        let batch = RecordBatch::parse(&b).unwrap();
        let expected = if count == 0 {
            Err(Error::EmptyBatch)
        } else {
            check_records_in_order(batch.header(), &section).map(|t| t.max(-1))
        };
        prop_assert_eq!(
            format!("{:?}", batch.validate_for_append()),
            format!("{:?}", expected)
        );
        if edits.is_empty() && count_change == 0 && (0..1000).contains(&base) {
            prop_assert!(batch.validate_for_append().is_ok());
        }
    }
}

proptest! {
    /// Offset deltas that are not exactly `0..count` are refused with the full decode's
    /// error, and exactly `0..count` is accepted.
    #[test]
    fn the_fast_append_check_refuses_out_of_order_deltas(
        deltas in proptest::collection::vec(prop_oneof![0i32..6, Just(-1), Just(i32::MAX)], 1..8),
    ) {
        let section: Vec<u8> = deltas.iter().flat_map(|&d| simple(d, 0)).collect();
        let b = craft(&section, deltas.len() as i32, Compression::None);
        let batch = RecordBatch::parse(&b).unwrap();
        let result = batch.validate_for_append();
        let in_order = deltas.iter().enumerate().all(|(i, &d)| d == i as i32);
        prop_assert_eq!(result.is_ok(), in_order, "{:?}", result);
        prop_assert_eq!(
            format!("{:?}", result),
            format!(
                "{:?}",
                check_records_in_order(batch.header(), &section).map(|t| t.max(-1))
            )
        );
    }
}
