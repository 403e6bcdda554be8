//! Record-level decoding tests, with hand-made record bytes (helpers shared with the batch
//! tests).

use super::*;
use crate::record::varint::{write_varint, write_varlong};

/// Raw header key/value pairs (either may be null).
pub(crate) type RawHeaders<'a> = &'a [(Option<&'a [u8]>, Option<&'a [u8]>)];

/// Appends a nullable byte string (varint length, -1 for null).
pub(crate) fn put_nullable(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        Some(b) => {
            write_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
        None => write_varint(out, -1),
    }
}

/// A record body with these fields (headers as raw key/value pairs, `count` as declared).
pub(crate) fn body(
    ts_delta: i64,
    offset_delta: i32,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    count: i32,
    headers: RawHeaders,
) -> Vec<u8> {
    let mut b = vec![0u8];
    write_varlong(&mut b, ts_delta);
    write_varint(&mut b, offset_delta);
    put_nullable(&mut b, key);
    put_nullable(&mut b, value);
    write_varint(&mut b, count);
    for (k, v) in headers {
        put_nullable(&mut b, *k);
        put_nullable(&mut b, *v);
    }
    b
}

/// A body prefixed by its varint length.
pub(crate) fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_varint(&mut out, body.len() as i32);
    out.extend_from_slice(body);
    out
}

/// A simple well-formed record.
pub(crate) fn simple(offset_delta: i32, ts_delta: i64) -> Vec<u8> {
    framed(&body(
        ts_delta,
        offset_delta,
        Some(b"k"),
        Some(b"v"),
        0,
        &[],
    ))
}

pub(crate) fn header(count: i32) -> BatchHeader {
    BatchHeader {
        base_offset: 100,
        batch_length: 49,
        partition_leader_epoch: -1,
        magic: 2,
        crc: 0,
        attributes: 0,
        last_offset_delta: count - 1,
        base_timestamp: 1000,
        max_timestamp: 2000,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        records_count: count,
    }
}

fn one(bytes: &[u8]) -> Result<RecordView<'_>> {
    let h = header(1);
    let mut it = RecordIter::new(&h, bytes);
    let first = it.next().unwrap_or(Err(Error::EmptyBatch));
    if first.is_ok() {
        assert!(it.next().is_none(), "no trailing bytes expected");
    }
    first
}

fn assert_invalid(r: Result<RecordView<'_>>) {
    assert!(
        matches!(r, Err(Error::InvalidBatch { .. })),
        "expected InvalidBatch, got {r:?}"
    );
}

#[test]
fn record_fields_decode_with_offset_and_timestamp_from_the_base() {
    let hdrs: RawHeaders = &[
        (Some(b"a"), Some(b"1")),
        (Some(b"b"), None),
        (Some("ключ".as_bytes()), Some(b"")),
    ];
    let bytes = framed(&body(-7, 3, Some(b"key"), Some(b"value"), 3, hdrs));
    let r = one(&bytes).unwrap();
    assert_eq!(r.offset(), 103);
    assert_eq!(r.offset_delta(), 3);
    assert_eq!(r.timestamp(), 993);
    assert_eq!(r.timestamp_delta(), -7);
    assert_eq!(r.key(), Some(&b"key"[..]));
    assert_eq!(r.value(), Some(&b"value"[..]));
    assert_eq!(r.header_count(), 3);
    let hs: Vec<_> = r.headers().map(Result::unwrap).collect();
    assert_eq!(
        hs[0],
        HeaderView {
            key: "a".into(),
            value: Some(b"1")
        }
    );
    assert_eq!(
        hs[1],
        HeaderView {
            key: "b".into(),
            value: None
        }
    );
    assert_eq!(hs[2].key, "ключ");
    assert_eq!(r.sequence(), -1);
}

#[test]
fn null_key_and_value_decode_as_none() {
    let bytes = framed(&body(0, 0, None, None, 0, &[]));
    let r = one(&bytes).unwrap();
    assert_eq!((r.key(), r.value()), (None, None));
}

#[test]
fn log_append_time_reads_max_timestamp_for_every_record() {
    let mut h = header(2);
    h.attributes = 0x08;
    let mut bytes = simple(0, 5);
    bytes.extend(simple(1, -5));
    let ts: Vec<i64> = RecordIter::new(&h, &bytes)
        .map(|r| r.unwrap().timestamp())
        .collect();
    assert_eq!(ts, [2000, 2000]);
}

#[test]
fn sequence_is_base_plus_delta_wrapping_and_minus_one_without_base() {
    let mut h = header(3);
    h.base_sequence = i32::MAX - 1;
    let bytes: Vec<u8> = (0..3).flat_map(|i| simple(i, 0)).collect();
    let seqs: Vec<i32> = RecordIter::new(&h, &bytes)
        .map(|r| r.unwrap().sequence())
        .collect();
    assert_eq!(seqs, [i32::MAX - 1, i32::MAX, 0]);
    h.base_sequence = -1;
    assert!(RecordIter::new(&h, &bytes).all(|r| r.unwrap().sequence() == -1));
}

#[test]
fn truncated_or_malformed_varints_are_invalid() {
    // Body holding only the attributes byte.
    assert_invalid(one(&framed(&[0])));
    // Timestamp varlong cut mid-way.
    assert_invalid(one(&framed(&[0, 0x80, 0x80])));
    // 10-byte varlong with an invalid final byte.
    let mut b = vec![0u8];
    b.extend([0xff; 9]);
    b.push(0x7f);
    b.extend([0, 0, 0, 0]);
    assert_invalid(one(&framed(&b)));
    // Length prefix larger than the bytes available.
    let mut bytes = simple(0, 0);
    bytes[0] += 2;
    assert_invalid(one(&bytes));
    // Negative record length, and a length varint cut short.
    assert_invalid(one(&[0x01, 0, 0]));
    assert_invalid(one(&[0x80]));
}

#[test]
fn key_or_value_length_past_the_body_is_invalid() {
    let mut b = body(0, 0, Some(b"key"), Some(b"v"), 0, &[]);
    b[3] = 2 * 50; // key length 50
    assert_invalid(one(&framed(&b)));
    let mut b = body(0, 0, None, Some(b"v"), 0, &[]);
    b[4] = 2 * 50; // value length 50
    assert_invalid(one(&framed(&b)));
    let b = body(0, 0, Some(b"k"), None, 0, &[]);
    let mut b2 = b.clone();
    b2[3] = 3; // key length -2
    assert_invalid(one(&framed(&b2)));
}

#[test]
fn bad_header_counts_are_invalid() {
    let hdrs: RawHeaders = &[(Some(b"a"), None), (Some(b"b"), None)];
    for count in [3, 1, -1, 1000, i32::MAX] {
        let bytes = framed(&body(0, 0, None, None, count, hdrs));
        assert_invalid(one(&bytes));
    }
    assert!(one(&framed(&body(0, 0, None, None, 2, hdrs))).is_ok());
}

#[test]
fn bad_header_keys_and_values_are_invalid_but_null_values_and_non_utf8_keys_are_fine() {
    let null_key: RawHeaders = &[(None, Some(b"v"))];
    assert_invalid(one(&framed(&body(0, 0, None, None, 1, null_key))));
    // As Kafka's `Utils.utf8`: read with U+FFFD, never refused.
    let not_utf8: RawHeaders = &[(Some(&[0xff, 0xfe]), None)];
    let section = framed(&body(0, 0, None, None, 1, not_utf8));
    let record = one(&section).unwrap();
    let headers: Vec<_> = record.headers().map(Result::unwrap).collect();
    assert_eq!(headers[0].key, "\u{fffd}\u{fffd}");
    let ok: RawHeaders = &[(Some(b"k"), Some(b"v"))];
    let mut b = body(0, 0, None, None, 1, ok);
    let n = b.len();
    b[n - 2] = 2 * 9; // header value length 9
    assert_invalid(one(&framed(&b)));
    let mut b = body(0, 0, None, None, 1, ok);
    b[n - 4] = 2 * 9; // header key length 9
    assert_invalid(one(&framed(&b)));
}

#[test]
fn trailing_bytes_inside_a_record_are_invalid() {
    let mut b = body(0, 0, Some(b"k"), None, 0, &[]);
    b.push(0);
    assert_invalid(one(&framed(&b)));
}

#[test]
fn record_count_must_match_the_records_present() {
    let bytes: Vec<u8> = (0..3).flat_map(|i| simple(i, 0)).collect();
    let results: Vec<_> = RecordIter::new(&header(5), &bytes).collect();
    assert_eq!(results.len(), 4);
    assert!(results[..3].iter().all(Result::is_ok));
    assert!(matches!(results[3], Err(Error::InvalidBatch { .. })));
    let results: Vec<_> = RecordIter::new(&header(2), &bytes).collect();
    assert_eq!(results.len(), 3);
    assert!(results[2].is_err());
    let results: Vec<_> = RecordIter::new(&header(-1), &bytes).collect();
    assert_eq!(results.len(), 1);
    assert!(results[0].is_err());
    assert_eq!(RecordIter::new(&header(0), &[]).count(), 0);
}

#[test]
fn negative_offsets_are_invalid() {
    let mut h = header(1);
    h.base_offset = 0;
    let bytes = simple(-1, 0);
    let r: Vec<_> = RecordIter::new(&h, &bytes).collect();
    assert!(matches!(r[..], [Err(Error::InvalidBatch { .. })]));
}

/// The fast path decides only what the full decoder decides the same way: on every input it
/// accepts, the full decoder accepts too, with the same fields and the same end position.
mod fast_path_agrees {
    use super::*;
    use proptest::prelude::*;

    fn fields(v: &RecordView<'_>) -> impl PartialEq + std::fmt::Debug {
        let headers: Option<Vec<(String, Option<Vec<u8>>)>> = v
            .headers()
            .map(|h| h.map(|h| (h.key.into_owned(), h.value.map(<[u8]>::to_vec))))
            .collect::<Result<_>>()
            .ok();
        (
            (
                v.offset(),
                v.timestamp(),
                v.offset_delta(),
                v.timestamp_delta(),
            ),
            (v.key().map(<[u8]>::to_vec), v.value().map(<[u8]>::to_vec)),
            (v.header_count(), v.header_bytes().to_vec(), headers),
        )
    }

    fn record_bytes() -> impl Strategy<Value = Vec<u8>> {
        let bytes = prop::option::of(prop::collection::vec(any::<u8>(), 0..40));
        let header = (
            prop::option::of("[a-z]{0,4}".prop_map(String::into_bytes)),
            bytes.clone(),
        );
        (
            prop_oneof![Just(0i64), -70_000i64..70_000, any::<i64>()],
            prop_oneof![0i32..300, any::<i32>()],
            bytes.clone(),
            bytes,
            prop::collection::vec(header, 0..3),
            -2i32..4,
        )
            .prop_map(|(ts, od, key, value, headers, extra)| {
                let raw: Vec<_> = headers
                    .iter()
                    .map(|(k, v)| (k.as_deref(), v.as_deref()))
                    .collect();
                let count = headers.len() as i32 + if extra == 3 { 1 } else { 0 };
                let raw: RawHeaders = &raw;
                framed(&body(ts, od, key.as_deref(), value.as_deref(), count, raw))
            })
    }

    proptest! {
        #[test]
        fn on_valid_and_damaged_records(
            bytes in record_bytes(),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
            cut in any::<prop::sample::Index>(),
            do_cut in any::<bool>(),
        ) {
            let mut bytes = bytes;
            for (at, b) in flips {
                let i = at.index(bytes.len());
                bytes[i] = b;
            }
            if do_cut {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            let context = RecordContext::new(&header(1));
            let mut fast_cursor = Cursor::new(&bytes, 0);
            let mut full_cursor = Cursor::new(&bytes, 0);
            let full = context.decode_any(&mut full_cursor);
            match context.decode_common(&mut fast_cursor) {
                Some(view) => {
                    let full = full.expect("the full decoder accepts what the fast path does");
                    prop_assert_eq!(fields(&view), fields(&full));
                    prop_assert_eq!(fast_cursor.position(), full_cursor.position());
                }
                None => prop_assert_eq!(fast_cursor.position(), 0),
            }
        }
    }
}
