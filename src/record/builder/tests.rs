//! Encoding tests: Kafka's golden batch, round trips for every codec, builder behaviour,
//! and a property test round-tripping arbitrary records.

use proptest::prelude::*;

use super::*;
use crate::record::{RecordBatch, RecordIter};

/// Decodes a batch back into records with their offsets (timestamps always set).
fn decode(bytes: &[u8]) -> Vec<(u64, Record)> {
    let batch = RecordBatch::parse(bytes).unwrap();
    assert_eq!(batch.size_bytes(), bytes.len());
    batch.ensure_valid().unwrap();
    batch.validate_for_append().unwrap();
    let section = batch.records_bytes().unwrap();
    RecordIter::new(batch.header(), &section)
        .map(|r| {
            let r = r.unwrap();
            let mut rec = Record::default()
                .with_value(r.value().map(<[u8]>::to_vec))
                .with_timestamp(r.timestamp());
            if let Some(k) = r.key() {
                rec = rec.with_key(k.to_vec());
            }
            for h in r.headers() {
                let h = h.unwrap();
                rec = rec.with_header(h.key, h.value.map(<[u8]>::to_vec));
            }
            (r.offset(), rec)
        })
        .collect()
}

fn golden_records() -> Vec<Record> {
    vec![
        Record::new(b"value1".to_vec())
            .with_key(b"key1".to_vec())
            .with_timestamp(283843),
        Record::new(b"value2".to_vec())
            .with_key(b"key2".to_vec())
            .with_timestamp(1234),
    ]
}

#[test]
fn golden_batch_matches_kafka_size_and_crc() {
    let mut out = Vec::new();
    let summary = encode_batch(&golden_records(), Compression::None, 0, &mut out).unwrap();
    assert_eq!(out.len(), 97);
    assert_eq!(summary.size_bytes, 97);
    let h = crate::record::BatchHeader::parse(&out).unwrap();
    assert_eq!(h.crc, 3851219455);
    assert_eq!(h.crc, 0xE58C_F1FF);
    assert_eq!(
        (h.base_offset, h.partition_leader_epoch, h.magic),
        (0, -1, 2)
    );
    assert_eq!((h.base_timestamp, h.max_timestamp), (283843, 283843));
    assert_eq!(
        (h.records_count, h.last_offset_delta, h.attributes),
        (2, 1, 0)
    );
    assert_eq!(
        summary,
        BatchSummary {
            record_count: 2,
            last_offset_delta: 1,
            first_timestamp: 283843,
            max_timestamp: 283843,
            offset_delta_of_max_timestamp: 0,
            size_bytes: 97,
        }
    );
    let back = decode(&out);
    assert_eq!(back[1].1.timestamp(), Some(1234));
}

#[test]
fn builder_and_encode_batch_write_identical_bytes() {
    for codec in Compression::ALL {
        let mut a = vec![9, 9];
        encode_batch(&golden_records(), codec, 0, &mut a).unwrap();
        let mut builder = BatchBuilder::new(codec, 0);
        let mut sizes = vec![builder.estimated_size_bytes()];
        for r in golden_records() {
            builder.append(&r).unwrap();
            sizes.push(builder.estimated_size_bytes());
        }
        assert!(sizes.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(builder.record_count(), 2);
        if codec == Compression::None {
            assert_eq!(builder.estimated_size_bytes(), 97);
        }
        let mut b = vec![9, 9];
        builder.finish_into(&mut b).unwrap();
        assert_eq!(a, b, "{codec:?}");
        assert_eq!(&a[..2], [9, 9]);
    }
}

#[test]
fn every_shape_of_record_round_trips_with_every_codec() {
    let big = vec![0xab; 200_000];
    let records = vec![
        Record::new(b"v".to_vec()).with_key(b"k".to_vec()),
        Record::new(b"v".to_vec()),
        Record::tombstone(b"k".to_vec()),
        Record::default(),
        Record::new(big),
        Record::new(vec![])
            .with_header("a", Some(b"1".to_vec()))
            .with_header("null-value", None)
            .with_header("ключ-ü", Some(vec![])),
    ];
    for codec in Compression::ALL {
        let mut out = Vec::new();
        encode_batch(&records, codec, 42, &mut out).unwrap();
        let back = decode(&out);
        let expected: Vec<(u64, Record)> = records
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, r)| (i as u64, r.with_timestamp(42)))
            .collect();
        assert_eq!(back, expected, "{codec:?}");
    }
}

#[test]
fn no_records_is_an_empty_batch_error() {
    let mut out = vec![1];
    assert!(matches!(
        encode_batch(&[], Compression::None, 0, &mut out),
        Err(Error::EmptyBatch)
    ));
    let builder = BatchBuilder::new(Compression::Gzip, 0);
    assert!(builder.is_empty());
    assert!(matches!(
        builder.finish_into(&mut out),
        Err(Error::EmptyBatch)
    ));
    assert_eq!(out, [1]);
}

#[test]
fn timestamps_use_the_first_as_base_and_track_the_max() {
    let records: Vec<Record> = [0i64, 2, 1]
        .iter()
        .map(|&t| Record::new(vec![]).with_timestamp(t))
        .collect();
    let mut out = Vec::new();
    let s = encode_batch(&records, Compression::None, 0, &mut out).unwrap();
    assert_eq!((s.first_timestamp, s.max_timestamp), (0, 2));
    assert_eq!(
        (s.offset_delta_of_max_timestamp, s.last_offset_delta),
        (1, 2)
    );
    let records = [
        Record::new(vec![]).with_timestamp(i64::MAX),
        Record::new(vec![]).with_timestamp(i64::MIN),
        Record::new(vec![]),
    ];
    out.clear();
    encode_batch(&records, Compression::None, -1, &mut out).unwrap();
    let ts: Vec<_> = decode(&out).iter().map(|(_, r)| r.timestamp()).collect();
    assert_eq!(ts, [Some(i64::MAX), Some(i64::MIN), Some(-1)]);
}

#[test]
fn producer_fields_are_written_and_sequences_wrap() {
    let mut b = BatchBuilder::new(Compression::None, 0).producer(7, 3, i32::MAX - 1);
    for _ in 0..3 {
        b.append(&Record::new(vec![1])).unwrap();
    }
    let mut out = Vec::new();
    b.finish_into(&mut out).unwrap();
    let batch = RecordBatch::parse(&out).unwrap();
    let h = batch.header();
    assert_eq!(
        (h.producer_id, h.producer_epoch, h.base_sequence),
        (7, 3, i32::MAX - 1)
    );
    let section = batch.records_bytes().unwrap();
    let seqs: Vec<i32> = RecordIter::new(h, &section)
        .map(|r| r.unwrap().sequence())
        .collect();
    assert_eq!(seqs, [i32::MAX - 1, i32::MAX, 0]);
}

fn arb_record() -> impl Strategy<Value = Record> {
    let bytes = || proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40));
    (
        bytes(),
        bytes(),
        proptest::option::of(any::<i64>()),
        proptest::collection::vec((".{0,8}", bytes()), 0..4),
    )
        .prop_map(|(key, value, ts, headers)| {
            let mut r = Record::default().with_value(value);
            if let Some(k) = key {
                r = r.with_key(k);
            }
            if let Some(t) = ts {
                r = r.with_timestamp(t);
            }
            for (k, v) in headers {
                r = r.with_header(k, v);
            }
            r
        })
}

proptest! {
    #[test]
    fn arbitrary_records_round_trip_through_every_codec(
        records in proptest::collection::vec(arb_record(), 1..20),
        codec in proptest::sample::select(Compression::ALL.to_vec()),
        default_ts in any::<i64>(),
    ) {
        let mut out = Vec::new();
        let s = encode_batch(&records, codec, default_ts, &mut out).unwrap();
        prop_assert_eq!(s.size_bytes, out.len());
        prop_assert_eq!(s.record_count as usize, records.len());
        let back = decode(&out);
        for (i, (orig, (offset, got))) in records.iter().zip(&back).enumerate() {
            prop_assert_eq!(*offset, i as u64);
            let expected = orig.clone().with_timestamp(orig.timestamp().unwrap_or(default_ts));
            prop_assert_eq!(got, &expected);
        }
        prop_assert_eq!(back.len(), records.len());
        let max = back.iter().filter_map(|(_, r)| r.timestamp()).max();
        prop_assert_eq!(Some(s.max_timestamp), max);
    }
}

/// `put_varint` against the byte-at-a-time reference writer, at every encoded length
/// from 1 to 10 bytes, with `varint_len` agreeing.
fn put_varint_bytes(v: u64) -> Vec<u8> {
    let mut buf = vec![0xAA; 16];
    let end = put_varint(&mut buf, 3, v);
    assert_eq!(end - 3, varint_len(v), "{v}");
    buf[3..end].to_vec()
}

#[test]
fn varints_match_the_reference_writer_at_every_length() {
    let mut lengths = std::collections::BTreeSet::new();
    for bits in 0..64 {
        let p = 1i64 << bits;
        for v in [p, p.wrapping_neg(), p.wrapping_sub(1), i64::MAX, i64::MIN] {
            let mut expected = Vec::new();
            crate::record::varint::write_varlong(&mut expected, v);
            assert_eq!(put_varint_bytes(zigzag64(v)), expected, "{v}");
            lengths.insert(expected.len());
        }
    }
    assert_eq!(
        lengths.into_iter().collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
}

proptest! {
    #[test]
    fn varints_match_the_reference_writer(v in any::<i64>(), i in any::<i32>()) {
        let mut expected = Vec::new();
        crate::record::varint::write_varlong(&mut expected, v);
        prop_assert_eq!(put_varint_bytes(zigzag64(v)), expected);
        let mut expected = Vec::new();
        crate::record::varint::write_varint(&mut expected, i);
        prop_assert_eq!(put_varint_bytes(zigzag32(i)), expected);
    }

    /// The log encodes into a reused scratch buffer longer than the batch, full of an
    /// earlier batch's bytes; the batch must come out the same as into an empty `Vec`,
    /// and so must one built record by record.
    #[test]
    fn in_place_and_builder_encodings_match_encode_batch(
        earlier in proptest::collection::vec(arb_record(), 1..20),
        records in proptest::collection::vec(arb_record(), 1..20),
        codec in proptest::sample::select(Compression::ALL.to_vec()),
    ) {
        let mut expected = Vec::new();
        let s = encode_batch(&records, codec, 5, &mut expected).unwrap();
        let mut scratch = Vec::new();
        encode_in_place(&earlier, codec, 9, &mut scratch).unwrap();
        let t = encode_in_place(&records, codec, 5, &mut scratch).unwrap();
        prop_assert_eq!(s, t);
        prop_assert_eq!(&scratch[..t.size_bytes], &expected[..]);
        if codec == Compression::None {
            let mut b = BatchBuilder::new(codec, 5);
            for r in &records {
                b.append(r).unwrap();
            }
            let mut built = Vec::new();
            b.finish_into(&mut built).unwrap();
            prop_assert_eq!(built, expected);
        }
    }
}

/// Records without headers (what the plain encoder takes): lengths whose varints take
/// one, two and three bytes, and timestamps up to the longest varlong.
fn arb_plain_record() -> impl Strategy<Value = Record> {
    let len = prop_oneof![0..200usize, 8190..8200usize, 16380..16390usize];
    let bytes = move || proptest::option::of(len.clone().prop_map(|n| vec![0xA5; n]));
    let timestamp = prop_oneof![
        Just(None),
        (-300i64..300).prop_map(Some),
        any::<i64>().prop_map(Some)
    ];
    (bytes(), bytes(), timestamp).prop_map(|(key, value, ts)| {
        let mut r = Record::default().with_value(value);
        if let Some(k) = key {
            r = r.with_key(k);
        }
        if let Some(t) = ts {
            r = r.with_timestamp(t);
        }
        r
    })
}

proptest! {
    /// Batches without headers take the plain encoder; record by record, the builder
    /// takes the general one. Both must write the same bytes and summary, into a fresh
    /// buffer and into a longer scratch buffer full of an earlier batch.
    #[test]
    fn plain_and_general_encoders_write_identical_batches(
        records in proptest::collection::vec(arb_plain_record(), 1..40),
        default_timestamp in prop_oneof![Just(0i64), any::<i64>()],
    ) {
        let mut plain = Vec::new();
        let s = encode_batch(&records, Compression::None, default_timestamp, &mut plain).unwrap();
        let mut b = BatchBuilder::new(Compression::None, default_timestamp);
        for r in &records {
            b.append(r).unwrap();
        }
        let mut general = Vec::new();
        let t = b.finish_into(&mut general).unwrap();
        prop_assert_eq!(s, t);
        prop_assert_eq!(&plain, &general);
        let mut scratch = vec![0xFF; plain.len() * 2];
        let u = encode_in_place(&records, Compression::None, default_timestamp, &mut scratch).unwrap();
        prop_assert_eq!(s, u);
        prop_assert_eq!(&scratch[..u.size_bytes], &plain[..]);
        let back: Vec<Record> = decode(&plain).into_iter().map(|(_, r)| r).collect();
        let expected: Vec<Record> = records
            .iter()
            .map(|r| r.clone().with_timestamp(r.timestamp().unwrap_or(default_timestamp)))
            .collect();
        prop_assert_eq!(back, expected);
    }
}
