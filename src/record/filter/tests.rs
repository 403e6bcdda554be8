//! Filter tests: offsets, producer fields, codecs, timestamps, the delete horizon and
//! emptied batches, each checked by parsing the output back (CRC and records).

use super::*;
use crate::record::batch::set_partition_leader_epoch;
use crate::record::{BatchBuilder, Compression, Record, encode_batch, set_base_offset};

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

fn keyed(key: &str, value: Option<&str>, ts: i64) -> Record {
    Record::default()
        .with_key(key.as_bytes().to_vec())
        .with_value(value.map(|v| v.as_bytes().to_vec()))
        .with_timestamp(ts)
        .with_header("h", Some(key.as_bytes().to_vec()))
}

/// Keys a..e at timestamps 10, 50, 20, 40, 30, based at offset 100.
fn five(codec: Compression) -> Vec<u8> {
    let records: Vec<Record> = [("a", 10), ("b", 50), ("c", 20), ("d", 40), ("e", 30)]
        .into_iter()
        .map(|(k, ts)| keyed(k, Some(&format!("v-{k}")), ts))
        .collect();
    let mut out = Vec::new();
    encode_batch(&records, codec, 0, &mut out).unwrap();
    set_base_offset(&mut out, 100);
    out
}

fn options() -> FilterOptions {
    FilterOptions {
        retain_empty: false,
        new_delete_horizon_ms: 1_000_000,
    }
}

/// (offset, timestamp, key, value) of every record of the single batch in `bytes`.
type Row = (u64, i64, Vec<u8>, Option<Vec<u8>>);

fn rows(bytes: &[u8]) -> Vec<Row> {
    let batch = RecordBatch::parse(bytes).unwrap();
    assert_eq!(batch.size_bytes(), bytes.len());
    batch.ensure_valid().unwrap();
    let section = batch.records_bytes().unwrap();
    RecordIter::new(batch.header(), &section)
        .map(|r| {
            let r = r.unwrap();
            (
                r.offset(),
                r.timestamp(),
                r.key().unwrap().to_vec(),
                r.value().map(<[u8]>::to_vec),
            )
        })
        .collect()
}

fn filter(bytes: &[u8], options: &FilterOptions, keep: &[&str]) -> (FilterOutcome, Vec<u8>) {
    let batch = RecordBatch::parse(bytes).unwrap();
    let mut out = Vec::new();
    let outcome = filter_batch(
        &batch,
        options,
        |r| keep.iter().any(|k| r.key() == Some(k.as_bytes())),
        &mut out,
    )
    .unwrap();
    (outcome, out)
}

#[test]
fn a_batch_keeping_only_its_middle_record_still_spans_its_offsets() {
    for codec in CODECS {
        let input = five(codec);
        let (outcome, out) = filter(&input, &options(), &["c"]);
        assert_eq!(outcome, FilterOutcome::Rewritten { kept: 1 }, "{codec:?}");
        let h = BatchHeader::parse(&out).unwrap();
        assert_eq!((h.base_offset, h.last_offset()), (100, 104));
        assert_eq!(h.records_count, 1);
        assert_eq!(h.compression().unwrap(), codec);
        assert_eq!((h.base_timestamp, h.max_timestamp), (20, 20));
        assert!(!h.has_delete_horizon());
        assert_eq!(
            rows(&out),
            [(102, 20, b"c".to_vec(), Some(b"v-c".to_vec()))]
        );
        // Headers survive byte for byte.
        let batch = RecordBatch::parse(&out).unwrap();
        let section = batch.records_bytes().unwrap();
        let r = RecordIter::new(batch.header(), &section)
            .next()
            .unwrap()
            .unwrap();
        let headers: Vec<_> = r.headers().map(|h| h.unwrap()).collect();
        assert_eq!(headers[0].key, "h");
        assert_eq!(headers[0].value, Some(&b"c"[..]));
    }
}

#[test]
fn edge_records_removed_keep_base_and_last_offset_and_recompute_max_timestamp() {
    let (outcome, out) = filter(&five(Compression::Lz4), &options(), &["c", "d"]);
    assert_eq!(outcome, FilterOutcome::Rewritten { kept: 2 });
    let h = BatchHeader::parse(&out).unwrap();
    assert_eq!((h.base_offset, h.last_offset_delta), (100, 4));
    assert_eq!((h.base_timestamp, h.max_timestamp), (20, 40));
    let offsets: Vec<u64> = rows(&out).into_iter().map(|r| r.0).collect();
    assert_eq!(offsets, [102, 103]);
    // A filtered batch is not a producer batch: its offset deltas have holes.
    assert!(
        RecordBatch::parse(&out)
            .unwrap()
            .validate_for_append()
            .is_err()
    );
}

#[test]
fn producer_fields_leader_epoch_and_log_append_time_are_preserved() {
    let mut builder = BatchBuilder::new(Compression::Snappy, 0).producer(77, 3, 1000);
    for (k, ts) in [("a", 5), ("b", 6), ("c", 7)] {
        builder.append(&keyed(k, Some("v"), ts)).unwrap();
    }
    let mut input = Vec::new();
    builder.finish_into(&mut input).unwrap();
    set_base_offset(&mut input, 40);
    set_partition_leader_epoch(&mut input, 9);
    // Log-append time 999: every record reads it.
    input[at::ATTRIBUTES + 1] |= TIMESTAMP_TYPE_BIT as u8;
    put(&mut input, at::MAX_TIMESTAMP, &999i64.to_be_bytes());
    let crc = crate::record::crc32c(&input[at::ATTRIBUTES..]);
    put(&mut input, at::CRC, &crc.to_be_bytes());

    let (_, out) = filter(&input, &options(), &["b"]);
    let h = BatchHeader::parse(&out).unwrap();
    assert_eq!(
        (h.producer_id, h.producer_epoch, h.base_sequence),
        (77, 3, 1000)
    );
    assert_eq!(h.partition_leader_epoch, 9);
    assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(h.max_timestamp, 999);
    assert_eq!(h.compression().unwrap(), Compression::Snappy);
    assert_eq!(rows(&out), [(41, 999, b"b".to_vec(), Some(b"v".to_vec()))]);
    // The kept record keeps its producer sequence: base sequence + offset delta.
    let batch = RecordBatch::parse(&out).unwrap();
    let section = batch.records_bytes().unwrap();
    let r = RecordIter::new(batch.header(), &section)
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(r.sequence(), 1001);
}

#[test]
fn keeping_everything_without_tombstones_leaves_the_batch_unchanged() {
    let (outcome, out) = filter(
        &five(Compression::Gzip),
        &options(),
        &["a", "b", "c", "d", "e"],
    );
    assert_eq!(outcome, FilterOutcome::Unchanged);
    assert!(out.is_empty());
}

fn with_tombstones() -> Vec<u8> {
    let records = vec![
        keyed("a", Some("1"), 500),
        keyed("b", None, 100),
        keyed("c", Some("3"), 300),
    ];
    let mut out = Vec::new();
    encode_batch(&records, Compression::Zstd, 0, &mut out).unwrap();
    set_base_offset(&mut out, 7);
    out
}

#[test]
fn a_kept_tombstone_stamps_the_delete_horizon_and_records_keep_their_timestamps() {
    let input = with_tombstones();
    let (outcome, out) = filter(&input, &options(), &["a", "b", "c"]);
    assert_eq!(outcome, FilterOutcome::Rewritten { kept: 3 });
    let h = BatchHeader::parse(&out).unwrap();
    assert!(h.has_delete_horizon());
    assert_eq!(h.delete_horizon_ms(), Some(1_000_000));
    assert_eq!(h.base_timestamp, 1_000_000);
    assert_eq!(h.max_timestamp, 500);
    assert_eq!(
        rows(&out),
        [
            (7, 500, b"a".to_vec(), Some(b"1".to_vec())),
            (8, 100, b"b".to_vec(), None),
            (9, 300, b"c".to_vec(), Some(b"3".to_vec())),
        ]
    );

    // A later filter keeps the horizon it finds, whatever horizon it was offered.
    let later = FilterOptions {
        new_delete_horizon_ms: 5_000_000,
        ..options()
    };
    let (outcome, again) = filter(&out, &later, &["b", "c"]);
    assert_eq!(outcome, FilterOutcome::Rewritten { kept: 2 });
    let h = BatchHeader::parse(&again).unwrap();
    assert_eq!(h.delete_horizon_ms(), Some(1_000_000));
    let ts: Vec<i64> = rows(&again).into_iter().map(|r| r.1).collect();
    assert_eq!(ts, [100, 300]);
    // Keeping everything of a batch that already has its horizon changes nothing.
    assert_eq!(
        filter(&out, &later, &["a", "b", "c"]).0,
        FilterOutcome::Unchanged
    );

    // Once the tombstone is gone, the horizon stays (Kafka's `filterTo` keeps a batch's
    // horizon whatever it keeps of the batch).
    let (_, plain) = filter(&out, &later, &["a", "c"]);
    let h = BatchHeader::parse(&plain).unwrap();
    assert_eq!(h.delete_horizon_ms(), Some(1_000_000));
    assert_eq!((h.base_timestamp, h.max_timestamp), (1_000_000, 500));
    let ts: Vec<i64> = rows(&plain).into_iter().map(|r| r.1).collect();
    assert_eq!(ts, [500, 300]);
}

#[test]
fn an_emptied_batch_is_dropped_or_kept_as_a_61_byte_header() {
    let mut input = Vec::new();
    let mut builder = BatchBuilder::new(Compression::Gzip, 0).producer(5, 1, 20);
    for (k, ts) in [("a", 10), ("b", 30), ("c", 20)] {
        builder.append(&keyed(k, Some("v"), ts)).unwrap();
    }
    builder.finish_into(&mut input).unwrap();
    set_base_offset(&mut input, 1000);
    let (outcome, out) = filter(&input, &options(), &[]);
    assert_eq!((outcome, out.len()), (FilterOutcome::Dropped, 0));

    let retain = FilterOptions {
        retain_empty: true,
        ..options()
    };
    let (outcome, out) = filter(&input, &retain, &[]);
    assert_eq!(outcome, FilterOutcome::Emptied);
    assert_eq!(out.len(), BATCH_OVERHEAD);
    let batch = RecordBatch::parse(&out).unwrap();
    batch.ensure_valid().unwrap();
    let h = *batch.header();
    assert_eq!(h.batch_length, 49);
    assert_eq!((h.base_offset, h.last_offset()), (1000, 1002));
    assert_eq!(h.records_count, 0);
    assert_eq!(h.compression().unwrap(), Compression::None);
    assert_eq!((h.base_timestamp, h.max_timestamp), (30, 30));
    assert_eq!(
        (h.producer_id, h.producer_epoch, h.base_sequence),
        (5, 1, 20)
    );
    assert!(rows(&out).is_empty());
    assert!(matches!(
        batch.validate_for_append(),
        Err(crate::Error::EmptyBatch)
    ));
}

#[test]
fn the_output_has_kafkas_golden_header_layout() {
    let (_, out) = filter(&five(Compression::None), &options(), &["b", "d"]);
    // baseOffset, batchLength, partitionLeaderEpoch, magic, then the CRC over 21..end.
    assert_eq!(&out[0..8], &100i64.to_be_bytes());
    assert_eq!(&out[8..12], &((out.len() - 12) as i32).to_be_bytes());
    assert_eq!(&out[12..16], &(-1i32).to_be_bytes());
    assert_eq!(out[16], 2);
    assert_eq!(
        &out[17..21],
        &crate::record::crc32c(&out[21..]).to_be_bytes()
    );
    assert_eq!(&out[21..23], &0i16.to_be_bytes());
    assert_eq!(&out[23..27], &4i32.to_be_bytes());
    assert_eq!(&out[27..35], &50i64.to_be_bytes());
    assert_eq!(&out[35..43], &50i64.to_be_bytes());
    assert_eq!(&out[43..51], &(-1i64).to_be_bytes());
    assert_eq!(&out[51..53], &(-1i16).to_be_bytes());
    assert_eq!(&out[53..57], &(-1i32).to_be_bytes());
    assert_eq!(&out[57..61], &2i32.to_be_bytes());
    // Records start at 61: b at delta 1 (timestamp delta 0), d at delta 3 (-10).
    let rows = rows(&out);
    assert_eq!(rows[0].0, 101);
    assert_eq!((rows[1].0, rows[1].1), (103, 40));
}

#[test]
fn a_record_that_fails_to_decode_is_an_error_and_writes_nothing() {
    let mut input = five(Compression::None);
    // Claim one record more than present, keeping the CRC right.
    put(&mut input, at::RECORDS_COUNT, &6i32.to_be_bytes());
    let crc = crate::record::crc32c(&input[at::ATTRIBUTES..]);
    put(&mut input, at::CRC, &crc.to_be_bytes());
    let batch = RecordBatch::parse(&input).unwrap();
    let mut out = vec![1, 2, 3];
    assert!(filter_batch(&batch, &options(), |_| true, &mut out).is_err());
    assert_eq!(out, [1, 2, 3]);
}
