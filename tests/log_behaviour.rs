//! Partition-level behaviours, ported from the expectations of Kafka's own log tests
//! (UnifiedLogTest, LocalLogTest, LogLoaderTest; see `KAFKA-TESTS-STORAGE.md` §6).
//!
//! Most tests run on `SimStorage` with a `ManualClock`, so they are fast and time only moves
//! when a test says so. A few use real files in a temporary directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use streamlog::{
    Compression, Env, Error, LogConfig, LogRecord, ManualClock, OffsetAndTimestamp, Partition,
    ReadBound, ReadOptions, Record, Records, SimStorage,
};

const DIR: &str = "/sim/orders-0";
const START_MS: i64 = 1_700_000_000_000;

/// Kafka's defaults, but with 64 KiB indexes: the simulated disk copies whole index files
/// on every map and flush, and 10 MiB ones make debug-build tests take seconds each.
fn base() -> LogConfig {
    LogConfig::default().segment_index_bytes(64 << 10)
}

struct SimLog {
    log: Partition,
    storage: SimStorage,
    clock: ManualClock,
}

fn env(storage: &SimStorage, clock: &ManualClock) -> Env {
    Env {
        storage: Arc::new(storage.clone()),
        clock: Arc::new(clock.clone()),
    }
}

fn open_sim(config: LogConfig) -> SimLog {
    let storage = SimStorage::default();
    let clock = ManualClock::new(START_MS);
    let log = Partition::open_with_env(DIR, config, env(&storage, &clock)).unwrap();
    SimLog {
        log,
        storage,
        clock,
    }
}

impl SimLog {
    /// Closes the log cleanly and opens it again on the same disk and clock.
    fn reopen(self, config: LogConfig) -> SimLog {
        let SimLog {
            log,
            storage,
            clock,
        } = self;
        log.close().unwrap();
        let log = Partition::open_with_env(DIR, config, env(&storage, &clock)).unwrap();
        SimLog {
            log,
            storage,
            clock,
        }
    }
}

fn record(i: u64) -> Record {
    Record::new(format!("value-{i:06}").into_bytes()).with_key(format!("key-{i:06}").into_bytes())
}

fn collect(records: Records) -> Vec<LogRecord> {
    records.map(|r| r.unwrap()).collect()
}

fn offsets(records: &[LogRecord]) -> Vec<u64> {
    records.iter().map(LogRecord::offset).collect()
}

fn read_offsets(log: &Partition, from: u64) -> Vec<u64> {
    offsets(&collect(log.read_from(from).unwrap()))
}

fn value(r: &LogRecord) -> Vec<u8> {
    r.value().unwrap().to_vec()
}

/// The encoded size of one batch of `records` as this configuration stores it.
fn batch_size(records: &[Record], config: LogConfig) -> u64 {
    let scratch = open_sim(config);
    scratch.log.append_records(records).unwrap();
    scratch.log.size_bytes()
}

fn expect_out_of_range(result: streamlog::Result<Records>) -> (u64, u64, u64) {
    match result {
        Err(Error::OffsetOutOfRange {
            requested,
            log_start,
            log_end,
        }) => (requested, log_start, log_end),
        other => panic!("expected OffsetOutOfRange, got {other:?}"),
    }
}

// ─── 6a. Append and read ────────────────────────────────────────────────────────────────

#[test]
fn offsets_continue_across_a_roll() {
    let s = open_sim(base());
    let log = &s.log;
    let first = log
        .append_batch(vec![record(0), record(1), record(2)])
        .unwrap();
    assert_eq!(first, 0..3);
    log.roll().unwrap();
    let second = log
        .append_batch(vec![record(3), record(4), record(5)])
        .unwrap();
    assert_eq!(second, 3..6);
    log.roll().unwrap();
    assert_eq!(log.append(record(6)).unwrap(), 6);
    assert_eq!(log.log_end_offset(), 7);
    assert_eq!(log.segment_count(), 3);
    let bases: Vec<u64> = log.segments().iter().map(|s| s.base_offset()).collect();
    assert_eq!(bases, [0, 3, 6]);
    assert_eq!(read_offsets(log, 0), (0..7).collect::<Vec<_>>());
}

#[test]
fn every_offset_reads_back_its_own_record_including_null_key_null_value_and_no_timestamp() {
    let s = open_sim(base());
    let log = &s.log;
    let mut expected = Vec::new();
    for i in 0..60u64 {
        let r = match i % 4 {
            // null key
            0 => Record::new(format!("v{i}").into_bytes()),
            // null value (tombstone)
            1 => Record::tombstone(format!("k{i}").into_bytes()),
            // timestamp -1 ("no timestamp")
            2 => Record::new(format!("v{i}").into_bytes())
                .with_key(format!("k{i}").into_bytes())
                .with_timestamp(-1),
            _ => Record::new(format!("v{i}").into_bytes())
                .with_key(format!("k{i}").into_bytes())
                .with_timestamp(1_000 + i as i64)
                .with_header("h", Some(b"x".to_vec()))
                .with_header("empty", None),
        };
        assert_eq!(log.append(r.clone()).unwrap(), i);
        expected.push(r);
    }
    for (i, want) in expected.iter().enumerate() {
        let got = log.read_from(i as u64).unwrap().next().unwrap().unwrap();
        assert_eq!(got.offset(), i as u64);
        assert_eq!(got.key(), want.key(), "key of {i}");
        assert_eq!(got.value(), want.value(), "value of {i}");
        let want_ts = want.timestamp().unwrap_or(START_MS);
        assert_eq!(got.timestamp(), want_ts, "timestamp of {i}");
        assert_eq!(got.owned_headers(), want.headers(), "headers of {i}");
    }
    // Reading at the log end returns nothing.
    assert_eq!(log.read_from(60).unwrap().count(), 0);
}

#[test]
fn reading_at_log_end_is_empty() {
    let s = open_sim(base());
    assert_eq!(s.log.read_from(0).unwrap().count(), 0, "empty log");
    s.log.append_batch((0..5).map(record).collect()).unwrap();
    let mut at_end = s.log.read_from(5).unwrap();
    assert!(at_end.next().is_none());
    assert_eq!(at_end.next_offset(), 5);
    assert_eq!(s.log.read_to_log_end(5).unwrap().count(), 0);
    assert_eq!(s.log.read_max_bytes(5, 1).unwrap().count(), 0);
}

#[test]
fn read_above_log_end_is_out_of_range_carrying_the_range() {
    let s = open_sim(base());
    assert_eq!(expect_out_of_range(s.log.read_from(1)), (1, 0, 0));
    s.log.append_batch((0..5).map(record).collect()).unwrap();
    assert_eq!(expect_out_of_range(s.log.read_from(6)), (6, 0, 5));
    assert_eq!(expect_out_of_range(s.log.read_to_log_end(100)), (100, 0, 5));
    assert_eq!(expect_out_of_range(s.log.read_max_bytes(7, 1)), (7, 0, 5));
}

#[test]
fn read_below_log_start_is_out_of_range() {
    let s = open_sim(base());
    for i in 0..10 {
        s.log.append(record(i)).unwrap();
    }
    assert_eq!(s.log.delete_records_before(5).unwrap(), 5);
    assert_eq!(expect_out_of_range(s.log.read_from(4)), (4, 5, 10));
    assert_eq!(expect_out_of_range(s.log.read_from(0)), (0, 5, 10));
    assert_eq!(read_offsets(&s.log, 5), (5..10).collect::<Vec<_>>());
}

#[test]
fn read_max_bytes_returns_a_whole_batch_even_when_the_budget_is_one_byte() {
    let s = open_sim(base());
    for b in 0..4u64 {
        s.log
            .append_batch((b * 5..b * 5 + 5).map(record).collect())
            .unwrap();
    }
    let mut read = s.log.read_max_bytes(0, 1).unwrap();
    let got: Vec<u64> = read.by_ref().map(|r| r.unwrap().offset()).collect();
    assert_eq!(got, [0, 1, 2, 3, 4]);
    assert_eq!(read.next_offset(), 5);
    // From inside a batch: the rest of that batch.
    let mut read = s.log.read_max_bytes(7, 1).unwrap();
    let got: Vec<u64> = read.by_ref().map(|r| r.unwrap().offset()).collect();
    assert_eq!(got, [7, 8, 9]);
    assert_eq!(read.next_offset(), 10);
    // A budget of 0 still returns one batch, so a reader never gets stuck.
    let got = offsets(&collect(s.log.read_max_bytes(10, 0).unwrap()));
    assert_eq!(got, [10, 11, 12, 13, 14]);
}

#[test]
fn read_max_bytes_stops_at_the_budget() {
    let config = base();
    let batch: Vec<Record> = (0..5).map(record).collect();
    let size = batch_size(&batch, config.clone()) as usize;
    let s = open_sim(config);
    for b in 0..6u64 {
        // Same lengths as the scratch batch, so every batch has the same size.
        s.log
            .append_batch((b * 5..b * 5 + 5).map(record).collect())
            .unwrap();
    }
    assert_eq!(s.log.size_bytes(), 6 * size as u64);
    let read = |from, max| offsets(&collect(s.log.read_max_bytes(from, max).unwrap()));
    assert_eq!(read(0, 3 * size), (0..15).collect::<Vec<_>>());
    assert_eq!(read(0, 3 * size - 1), (0..10).collect::<Vec<_>>());
    assert_eq!(read(0, 3 * size + 1), (0..15).collect::<Vec<_>>());
    assert_eq!(read(5, 2 * size), (5..15).collect::<Vec<_>>());
    assert_eq!(read(0, 100 * size), (0..30).collect::<Vec<_>>());
    // The same limit through `read` with options.
    let opts = ReadOptions::default().max_bytes(size + 1);
    assert_eq!(
        offsets(&collect(s.log.read(12, opts).unwrap())),
        [12, 13, 14]
    );
}

#[test]
fn reads_stop_at_the_high_watermark_and_read_to_log_end_goes_past_it() {
    let config = base().auto_high_watermark(false);
    let s = open_sim(config);
    let log = &s.log;
    assert_eq!(log.high_watermark(), 0);
    log.append_batch((0..5).map(record).collect()).unwrap();
    log.append_batch((5..10).map(record).collect()).unwrap();
    assert_eq!(log.high_watermark(), 0, "appends do not move the HW");
    assert_eq!(log.read_from(0).unwrap().count(), 0);
    assert_eq!(log.set_high_watermark(3), 3);
    assert_eq!(log.high_watermark(), 3);
    // The bound can fall inside a batch.
    assert_eq!(read_offsets(log, 0), [0, 1, 2]);
    assert_eq!(read_offsets(log, 3), Vec::<u64>::new());
    // Above the HW but not above LEO: empty, not an error.
    assert_eq!(read_offsets(log, 7), Vec::<u64>::new());
    assert_eq!(
        offsets(&collect(log.read_to_log_end(0).unwrap())),
        (0..10).collect::<Vec<_>>()
    );
    let opts = ReadOptions::default().bound(ReadBound::LogEnd);
    assert_eq!(offsets(&collect(log.read(8, opts).unwrap())), [8, 9]);
    assert_eq!(log.set_high_watermark(7), 7);
    assert_eq!(read_offsets(log, 2), [2, 3, 4, 5, 6]);
    // offset_for_timestamp only sees records below the HW.
    let ts = log
        .read_to_log_end(8)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .timestamp();
    assert_eq!(log.offset_for_timestamp(ts + 1).unwrap(), None);
}

#[test]
fn high_watermark_is_clamped_to_log_end_and_truncation_lowers_it() {
    let s = open_sim(base().auto_high_watermark(false));
    let log = &s.log;
    assert_eq!(log.set_high_watermark(5), 0, "LEO is 0");
    log.append_batch((0..3).map(record).collect()).unwrap();
    assert_eq!(log.set_high_watermark(5), 3);
    assert_eq!(log.high_watermark(), 3);
    assert_eq!(log.set_high_watermark(3), 3, "setting it again is fine");
    log.append_batch((3..10).map(record).collect()).unwrap();
    for i in 10..14 {
        log.append(record(i)).unwrap();
    }
    assert_eq!(log.set_high_watermark(12), 12);
    assert_eq!(log.truncate_to(11).unwrap(), 11);
    assert_eq!(log.high_watermark(), 11);
    // Truncating into the batch 3..10 removes it whole: LEO and HW become 3.
    assert_eq!(log.truncate_to(6).unwrap(), 3);
    assert_eq!(log.high_watermark(), 3);
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(log.truncate_to(0).unwrap(), 0);
    assert_eq!(log.high_watermark(), 0);
}

/// A reader's bound is the high watermark when the read starts, lowered as each batch
/// loads. After a truncation below it (a follower after an unclean leader change) and new,
/// uncommitted appends at the same offsets, no reader that started before returns records
/// at or above the current high watermark: not as records, not as whole batches, and not
/// from inside a batch that straddles it.
#[test]
fn a_reader_never_returns_records_at_or_above_the_current_high_watermark() {
    let s = open_sim(base().auto_high_watermark(false));
    for i in 0..10 {
        s.log.append(record(i)).unwrap();
    }
    s.log.set_high_watermark(10);
    let records = s.log.read_from(0).unwrap();
    let mut batches = s.log.read_from(0).unwrap();
    let straddling = s.log.read_from(0).unwrap();

    assert_eq!(s.log.truncate_to(5).unwrap(), 5);
    assert_eq!(s.log.high_watermark(), 5);
    let uncommitted = (5..10).map(|i| Record::new(format!("new-{i}").into_bytes()));
    assert_eq!(s.log.append_batch(uncommitted.collect()).unwrap(), 5..10);
    assert_eq!(s.log.high_watermark(), 5);

    assert_eq!(offsets(&collect(records)), [0, 1, 2, 3, 4]);
    let whole: Vec<_> = std::iter::from_fn(|| batches.next_batch()).collect();
    assert_eq!(
        whole.len(),
        5,
        "one batch per old record below the high watermark"
    );
    assert_eq!(batches.next_offset(), 5);
    // The new batch 5..10 is committed up to 7: only its records below it.
    assert_eq!(s.log.set_high_watermark(7), 7);
    let got = collect(straddling);
    assert_eq!(offsets(&got), [0, 1, 2, 3, 4, 5, 6]);
    assert_eq!(value(&got[4]), b"value-000004");
    assert_eq!(value(&got[6]), b"new-6");
}

#[test]
fn auto_high_watermark_follows_log_end() {
    let s = open_sim(base());
    s.log.append_batch((0..4).map(record).collect()).unwrap();
    assert_eq!(s.log.high_watermark(), 4);
    s.log.append(record(4)).unwrap();
    assert_eq!(s.log.high_watermark(), 5);
    assert_eq!(read_offsets(&s.log, 0), [0, 1, 2, 3, 4]);
}

#[test]
fn compressed_batches_read_back_with_every_codec() {
    for codec in Compression::ALL {
        let s = open_sim(base().compression(codec));
        let log = &s.log;
        assert_eq!(
            log.append_batch(vec![record(0), record(1)]).unwrap(),
            0..2,
            "{codec:?}"
        );
        assert_eq!(log.append_batch(vec![record(2), record(3)]).unwrap(), 2..4);
        let big: Vec<Record> = (4..104)
            .map(|i| Record::new(vec![b'a' + (i % 3) as u8; 200]).with_key(vec![i as u8]))
            .collect();
        assert_eq!(log.append_batch(big.clone()).unwrap(), 4..104);

        let all = collect(log.read_from(0).unwrap());
        assert_eq!(offsets(&all), (0..104).collect::<Vec<_>>(), "{codec:?}");
        for r in &all[..4] {
            assert_eq!(value(r), format!("value-{:06}", r.offset()).into_bytes());
        }
        for (r, want) in all[4..].iter().zip(&big) {
            assert_eq!(r.value(), want.value(), "{codec:?} offset {}", r.offset());
            assert_eq!(r.key(), want.key());
        }
        // Reading an offset inside a compressed batch starts at that offset.
        assert_eq!(
            read_offsets(log, 1),
            (1..104).collect::<Vec<_>>(),
            "{codec:?}"
        );
        let from_three = collect(log.read_from(3).unwrap());
        assert_eq!(from_three[0].offset(), 3);
        assert_eq!(value(&from_three[0]), b"value-000003");
        let mut inside = log.read_max_bytes(50, 1).unwrap();
        let got: Vec<u64> = inside.by_ref().map(|r| r.unwrap().offset()).collect();
        assert_eq!(got, (50..104).collect::<Vec<_>>(), "{codec:?}");
        assert_eq!(inside.next_offset(), 104);
        if codec != Compression::None {
            assert!(
                log.size_bytes() < 100 * 200,
                "{codec:?} should compress repetitive values"
            );
        }
    }
}

#[test]
fn an_encoded_batch_gets_offsets_from_the_log_end() {
    let producer = open_sim(base());
    producer
        .log
        .append_batch(vec![record(100), record(101), record(102)])
        .unwrap();
    let path = producer.log.segments()[0].log_path().to_path_buf();
    let bytes = producer.storage.read_file(&path).unwrap();

    let s = open_sim(base());
    s.log.append_batch((0..5).map(record).collect()).unwrap();
    assert_eq!(s.log.append_encoded(&bytes).unwrap(), 5..8);
    let got = collect(s.log.read_from(5).unwrap());
    assert_eq!(offsets(&got), [5, 6, 7]);
    assert_eq!(value(&got[0]), b"value-000100");
    assert_eq!(value(&got[2]), b"value-000102");
    // Two batches in one append are refused.
    let mut two = bytes.clone();
    two.extend_from_slice(&bytes);
    assert!(s.log.append_encoded(&two).is_err());
    assert_eq!(s.log.log_end_offset(), 8);
}

// ─── 6b. Roll ───────────────────────────────────────────────────────────────────────────

#[test]
fn log_rolls_when_the_next_batch_would_pass_segment_bytes() {
    let size = batch_size(&[record(0)], base());
    let config = base().segment_bytes(10 * (size - 1));
    let s = open_sim(config);
    for i in 0..11 {
        s.log.append(record(i)).unwrap();
    }
    assert_eq!(s.log.segment_count(), 2);
    let segments = s.log.segments();
    // 9 batches fit in 10×(size−1) bytes; the 10th would pass it.
    assert_eq!(segments[0].size_bytes(), 9 * size);
    assert_eq!(segments[1].base_offset(), 9);
    assert_eq!(read_offsets(&s.log, 0), (0..11).collect::<Vec<_>>());
}

#[test]
fn an_empty_segment_never_rolls_on_time_but_the_next_append_after_segment_ms_does() {
    let s = open_sim(base().segment_ms(100));
    s.clock.advance_ms(10_000);
    s.log.append(record(0)).unwrap();
    assert_eq!(
        s.log.segment_count(),
        1,
        "an empty segment never rolls on time"
    );
    s.clock.advance_ms(100);
    s.log.append(record(1)).unwrap();
    assert_eq!(
        s.log.segment_count(),
        1,
        "exactly segment.ms is not past it"
    );
    s.clock.advance_ms(1);
    s.log.append(record(2)).unwrap();
    assert_eq!(s.log.segment_count(), 2);
    assert_eq!(s.log.segments()[1].base_offset(), 2);
    assert_eq!(read_offsets(&s.log, 0), [0, 1, 2]);
}

#[test]
fn time_roll_uses_record_timestamps_not_the_wall_clock() {
    let s = open_sim(base().segment_ms(100));
    let at = |i: u64, ts: i64| record(i).with_timestamp(ts);
    s.log.append(at(0, 5_000)).unwrap();
    // The wall clock alone does not roll a segment whose first batch has a timestamp.
    s.clock.advance_ms(1_000_000);
    s.log.append(at(1, 5_050)).unwrap();
    s.log.append(at(2, 5_100)).unwrap();
    assert_eq!(s.log.segment_count(), 1);
    // A timestamp more than segment.ms after the first batch's does.
    s.log.append(at(3, 5_101)).unwrap();
    assert_eq!(s.log.segment_count(), 2);
    assert_eq!(s.log.segments()[1].base_offset(), 3);
}

#[test]
fn time_roll_uses_the_wall_clock_when_the_first_batch_has_no_timestamp() {
    let s = open_sim(base().segment_ms(100));
    let untimed = |i: u64| record(i).with_timestamp(-1);
    s.log.append(untimed(0)).unwrap();
    s.clock.advance_ms(100);
    s.log.append(untimed(1)).unwrap();
    assert_eq!(s.log.segment_count(), 1);
    s.clock.advance_ms(1);
    s.log.append(untimed(2)).unwrap();
    assert_eq!(s.log.segment_count(), 2);
}

#[test]
fn an_explicit_roll_of_an_empty_active_segment_changes_nothing() {
    let s = open_sim(base());
    s.log.roll().unwrap();
    assert_eq!(s.log.segment_count(), 1);
    s.log.append(record(0)).unwrap();
    s.log.roll().unwrap();
    s.log.roll().unwrap();
    assert_eq!(s.log.segment_count(), 2);
    assert_eq!(s.log.segments()[1].base_offset(), 1);
}

#[test]
fn a_roll_flushes_and_moves_the_recovery_point_to_the_new_segment() {
    let s = open_sim(base());
    s.log.append_batch((0..4).map(record).collect()).unwrap();
    assert_eq!(s.log.recovery_point(), 0);
    let syncs = s.storage.sync_count();
    s.log.roll().unwrap();
    assert!(s.log.recovery_point() >= 4);
    assert!(
        s.storage.sync_count() > syncs,
        "a roll syncs the old segment"
    );
    s.log.append(record(4)).unwrap();
    assert_eq!(s.log.recovery_point(), 4);
    s.log.flush().unwrap();
    assert_eq!(s.log.recovery_point(), 5);
}

#[test]
fn a_full_index_rolls_the_segment() {
    // 48-byte indexes: 6 offset entries, 4 time entries (full one slot early, at 3).
    let config = base().segment_index_bytes(48).index_interval_bytes(1);
    let s = open_sim(config);
    for i in 0..20u64 {
        s.log
            .append(record(i).with_timestamp(1_000 + i as i64))
            .unwrap();
    }
    let segments = s.log.segments();
    // Entries go in before batches 2, 3 and 4; the time index is then full.
    let sizes: Vec<u64> = segments
        .iter()
        .map(|seg| seg.next_offset() - seg.base_offset())
        .collect();
    assert_eq!(sizes, [4, 4, 4, 4, 4]);
    for seg in &segments[..4] {
        assert!(seg.time_index_entries() <= 4);
        assert!(seg.offset_index_entries() <= 6);
    }
    assert_eq!(read_offsets(&s.log, 0), (0..20).collect::<Vec<_>>());
    // Every offset is found through the (full) indexes.
    for i in 0..20 {
        assert_eq!(read_offsets(&s.log, i)[0], i);
    }
}

#[test]
fn a_rolled_segment_trims_its_indexes_and_truncation_regrows_them() {
    let config = base().segment_index_bytes(1_200).index_interval_bytes(1);
    let s = open_sim(config);
    for i in 0..10u64 {
        s.log
            .append(record(i).with_timestamp(100 + i as i64))
            .unwrap();
    }
    s.log.roll().unwrap();
    let first = s.log.segments()[0].clone();
    assert_eq!(first.offset_index_entries(), 9);
    assert_eq!(first.time_index_entries(), 9);
    let [_, index, time_index] = first.paths();
    assert_eq!(s.storage.file_len(&index), Some(9 * 8));
    assert_eq!(s.storage.file_len(&time_index), Some(9 * 12));

    assert_eq!(s.log.truncate_to(0).unwrap(), 0);
    assert_eq!(s.log.segment_count(), 1);
    let active = s.log.segments()[0].clone();
    let [_, index, time_index] = active.paths();
    assert_eq!(s.storage.file_len(&index), Some(1_200));
    assert_eq!(s.storage.file_len(&time_index), Some(1_200));
    for i in 0..10u64 {
        s.log
            .append(record(i).with_timestamp(100 + i as i64))
            .unwrap();
    }
    assert_eq!(s.log.segment_count(), 1, "regrown indexes have room again");
}

// ─── Index cadence ──────────────────────────────────────────────────────────────────────

/// Kafka's rule: an entry goes in before a batch once more than `interval` bytes were
/// appended since the last entry; the first batch of a segment is never indexed.
fn expected_index_entries(batches: usize, batch_size: usize, interval: usize) -> usize {
    let (mut since, mut entries) = (0, 0);
    for _ in 0..batches {
        if since > interval {
            entries += 1;
            since = 0;
        }
        since += batch_size;
    }
    entries
}

#[test]
fn index_interval_of_one_byte_indexes_every_batch_but_the_first() {
    let s = open_sim(base().index_interval_bytes(1));
    for i in 0..100u64 {
        s.log
            .append(record(i).with_timestamp(10 * i as i64))
            .unwrap();
    }
    let segment = s.log.segments()[0].clone();
    assert_eq!(segment.offset_index_entries(), 99);
    assert_eq!(segment.time_index_entries(), 99);
    assert_eq!(segment.max_timestamp(), 990);
    for i in 0..100 {
        assert_eq!(read_offsets(&s.log, i).len() as u64, 100 - i);
    }
}

#[test]
fn index_entries_follow_kafkas_interval_rule() {
    let size = batch_size(&[record(0)], base()) as usize;
    for interval in [2 * size - 1, 2 * size, 3 * size + 7, 1_000] {
        let s = open_sim(base().index_interval_bytes(interval));
        for i in 0..30u64 {
            s.log.append(record(i).with_timestamp(i as i64)).unwrap();
        }
        let segment = s.log.segments()[0].clone();
        let expected = expected_index_entries(30, size, interval);
        assert_eq!(
            segment.offset_index_entries(),
            expected,
            "interval {interval}"
        );
        assert_eq!(
            segment.time_index_entries(),
            expected,
            "interval {interval}"
        );
    }
    assert_eq!(expected_index_entries(30, size, 2 * size - 1), 14);
}

// ─── 6c. Truncate ───────────────────────────────────────────────────────────────────────

fn twelve_records_rolled_every_three() -> SimLog {
    let s = open_sim(base());
    for i in 0..12 {
        s.log.append(record(i)).unwrap();
        if i % 3 == 2 {
            s.log.roll().unwrap();
        }
    }
    s
}

#[test]
fn truncate_across_segments_deletes_the_later_ones_and_appends_continue() {
    let s = twelve_records_rolled_every_three();
    assert_eq!(s.log.segment_count(), 5, "bases 0,3,6,9 and the empty 12");
    let doomed: Vec<PathBuf> = s.log.segments()[3..]
        .iter()
        .flat_map(|seg| seg.paths())
        .collect();
    assert_eq!(s.log.truncate_to(7).unwrap(), 7);
    assert_eq!(s.log.log_end_offset(), 7);
    assert_eq!(s.log.segment_count(), 3);
    let segments = s.log.segments();
    assert_eq!(segments[2].base_offset(), 6);
    assert_eq!(read_offsets(&s.log, 6), [6]);
    for path in doomed {
        assert_eq!(
            s.storage.file_len(&path),
            None,
            "{} remains",
            path.display()
        );
    }
    assert_eq!(s.log.append(record(7)).unwrap(), 7);
    assert_eq!(read_offsets(&s.log, 0), (0..8).collect::<Vec<_>>());
}

#[test]
fn truncate_to_log_end_or_beyond_changes_nothing() {
    let s = open_sim(base());
    s.log.append_batch((0..5).map(record).collect()).unwrap();
    let size = s.log.size_bytes();
    assert_eq!(s.log.truncate_to(5).unwrap(), 5);
    assert_eq!(s.log.truncate_to(500).unwrap(), 5);
    assert_eq!(s.log.size_bytes(), size);
    assert_eq!(s.log.log_end_offset(), 5);
    assert_eq!(read_offsets(&s.log, 0), [0, 1, 2, 3, 4]);
}

#[test]
fn truncate_into_a_batch_removes_the_whole_batch() {
    let s = open_sim(base());
    s.log.append_batch((0..5).map(record).collect()).unwrap();
    let size_of_first = s.log.size_bytes();
    s.log.append_batch((5..10).map(record).collect()).unwrap();
    assert_eq!(s.log.truncate_to(7).unwrap(), 5);
    assert_eq!(s.log.log_end_offset(), 5);
    assert_eq!(s.log.size_bytes(), size_of_first);
    assert_eq!(read_offsets(&s.log, 0), [0, 1, 2, 3, 4]);
    assert_eq!(s.log.append(record(5)).unwrap(), 5);
}

#[test]
fn truncate_to_a_middle_offset_shrinks_log_end_and_size() {
    let s = open_sim(base());
    for i in 0..10 {
        s.log.append(record(i)).unwrap();
    }
    let size = s.log.size_bytes();
    assert_eq!(s.log.truncate_to(4).unwrap(), 4);
    assert_eq!(s.log.size_bytes(), size * 4 / 10);
    assert_eq!(read_offsets(&s.log, 0), [0, 1, 2, 3]);
}

#[test]
fn truncate_to_zero_then_reappending_gives_the_same_size() {
    let config = base().segment_bytes(1_000);
    let s = open_sim(config);
    let records: Vec<Record> = (0..30)
        .map(|i| record(i).with_timestamp(i as i64))
        .collect();
    for r in &records {
        s.log.append(r.clone()).unwrap();
    }
    let (size, segments) = (s.log.size_bytes(), s.log.segment_count());
    assert!(segments > 1);
    assert_eq!(s.log.truncate_to(0).unwrap(), 0);
    assert_eq!(s.log.size_bytes(), 0);
    assert_eq!(s.log.log_end_offset(), 0);
    assert_eq!(s.log.segment_count(), 1);
    assert_eq!(s.log.read_from(0).unwrap().count(), 0);
    for r in &records {
        s.log.append(r.clone()).unwrap();
    }
    assert_eq!(s.log.size_bytes(), size);
    assert_eq!(s.log.segment_count(), segments);
    assert_eq!(read_offsets(&s.log, 0), (0..30).collect::<Vec<_>>());
}

#[test]
fn truncate_below_log_start_restarts_the_log_there() {
    let s = open_sim(base());
    for i in 0..10 {
        s.log.append(record(i)).unwrap();
    }
    s.log.delete_records_before(6).unwrap();
    assert_eq!(s.log.truncate_to(4).unwrap(), 4);
    assert_eq!(s.log.log_start_offset(), 4);
    assert_eq!(s.log.log_end_offset(), 4);
    assert_eq!(s.log.size_bytes(), 0);
    assert_eq!(s.log.append(record(4)).unwrap(), 4);
    assert_eq!(read_offsets(&s.log, 4), [4]);
}

// ─── Log start offset ───────────────────────────────────────────────────────────────────

#[test]
fn delete_records_before_moves_log_start_and_deletes_whole_segments_below_it() {
    let s = twelve_records_rolled_every_three();
    let first_paths = s.log.segments()[0].paths();
    assert_eq!(s.log.delete_records_before(4).unwrap(), 4);
    assert_eq!(s.log.log_start_offset(), 4);
    let bases: Vec<u64> = s
        .log
        .segments()
        .iter()
        .map(|seg| seg.base_offset())
        .collect();
    assert_eq!(bases, [3, 6, 9, 12], "the segment holding 4 stays");
    for path in first_paths {
        assert_eq!(s.storage.file_len(&path), None);
    }
    assert_eq!(expect_out_of_range(s.log.read_from(3)), (3, 4, 12));
    assert_eq!(read_offsets(&s.log, 4), (4..12).collect::<Vec<_>>());
    // Moving it backwards is a no-op.
    assert_eq!(s.log.delete_records_before(2).unwrap(), 4);
    assert_eq!(s.log.log_start_offset(), 4);
    // A segment boundary: every segment wholly below goes.
    assert_eq!(s.log.delete_records_before(9).unwrap(), 9);
    let bases: Vec<u64> = s
        .log
        .segments()
        .iter()
        .map(|seg| seg.base_offset())
        .collect();
    assert_eq!(bases, [9, 12]);
    assert_eq!(read_offsets(&s.log, 9), [9, 10, 11]);
}

#[test]
fn delete_records_before_refuses_offsets_above_the_high_watermark() {
    let s = open_sim(base().auto_high_watermark(false));
    s.log.append_batch((0..10).map(record).collect()).unwrap();
    s.log.set_high_watermark(5);
    match s.log.delete_records_before(6) {
        Err(Error::OffsetOutOfRange { requested, .. }) => assert_eq!(requested, 6),
        other => panic!("expected OffsetOutOfRange, got {other:?}"),
    }
    assert_eq!(s.log.log_start_offset(), 0);
    assert_eq!(s.log.delete_records_before(5).unwrap(), 5);
    assert_eq!(s.log.log_start_offset(), 5);

    let auto = open_sim(base());
    auto.log
        .append_batch((0..10).map(record).collect())
        .unwrap();
    assert!(matches!(
        auto.log.delete_records_before(11),
        Err(Error::OffsetOutOfRange { requested: 11, .. })
    ));
}

#[test]
fn delete_records_before_log_end_empties_the_log_and_appends_continue() {
    let s = open_sim(base());
    s.log.append_batch((0..10).map(record).collect()).unwrap();
    assert_eq!(s.log.delete_records_before(10).unwrap(), 10);
    assert_eq!(s.log.log_start_offset(), 10);
    assert_eq!(s.log.log_end_offset(), 10);
    assert_eq!(s.log.segment_count(), 1);
    assert_eq!(s.log.segments()[0].base_offset(), 10);
    assert_eq!(s.log.read_from(10).unwrap().count(), 0);
    assert_eq!(expect_out_of_range(s.log.read_from(9)), (9, 10, 10));
    assert_eq!(s.log.append(record(10)).unwrap(), 10);
    assert_eq!(read_offsets(&s.log, 10), [10]);
}

// ─── Timestamps ─────────────────────────────────────────────────────────────────────────

#[test]
fn offset_for_timestamp_finds_the_first_record_at_or_after_it() {
    let s = open_sim(base().index_interval_bytes(1));
    assert_eq!(s.log.offset_for_timestamp(0).unwrap(), None, "empty log");
    for i in 0..10u64 {
        s.log
            .append(record(i).with_timestamp(100 * (i as i64 + 1)))
            .unwrap();
        if i == 4 {
            s.log.roll().unwrap();
        }
    }
    let at = |offset, timestamp| Some(OffsetAndTimestamp { offset, timestamp });
    assert_eq!(
        s.log.offset_for_timestamp(200).unwrap(),
        at(1, 200),
        "exact"
    );
    assert_eq!(
        s.log.offset_for_timestamp(250).unwrap(),
        at(2, 300),
        "between"
    );
    assert_eq!(
        s.log.offset_for_timestamp(550).unwrap(),
        at(5, 600),
        "next segment"
    );
    assert_eq!(
        s.log.offset_for_timestamp(0).unwrap(),
        at(0, 100),
        "before all"
    );
    assert_eq!(s.log.offset_for_timestamp(1_000).unwrap(), at(9, 1_000));
    assert_eq!(
        s.log.offset_for_timestamp(1_001).unwrap(),
        None,
        "after all"
    );
    s.log.delete_records_before(3).unwrap();
    assert_eq!(
        s.log.offset_for_timestamp(0).unwrap(),
        at(3, 400),
        "from log start"
    );
}

#[test]
fn offset_for_timestamp_returns_the_first_record_holding_a_repeated_maximum() {
    let s = open_sim(base());
    let t = 5_000;
    s.log
        .append_batch(vec![
            record(0).with_timestamp(t),
            record(1).with_timestamp(t + 1),
            record(2).with_timestamp(t),
        ])
        .unwrap();
    s.log.append(record(3).with_timestamp(t + 1)).unwrap();
    assert_eq!(
        s.log.offset_for_timestamp(t + 1).unwrap(),
        Some(OffsetAndTimestamp {
            offset: 1,
            timestamp: t + 1
        })
    );
    assert_eq!(
        s.log.offset_for_timestamp(t).unwrap(),
        Some(OffsetAndTimestamp {
            offset: 0,
            timestamp: t
        })
    );
}

// ─── Size limits ────────────────────────────────────────────────────────────────────────

#[test]
fn a_batch_over_max_message_bytes_is_message_too_large_with_its_size() {
    let big = Record::new(vec![7; 500]);
    let size = batch_size(std::slice::from_ref(&big), base()) as usize;
    let s = open_sim(base().max_message_bytes(200));
    match s.log.append(big.clone()) {
        Err(Error::MessageTooLarge { size: got, max }) => {
            assert_eq!((got, max), (size, 200));
        }
        other => panic!("expected MessageTooLarge, got {other:?}"),
    }
    assert_eq!(s.log.log_end_offset(), 0);
    assert_eq!(s.log.size_bytes(), 0);
    assert_eq!(s.log.append(record(0)).unwrap(), 0);
    // Exactly the limit is accepted.
    let exact = open_sim(base().max_message_bytes(size));
    assert_eq!(exact.log.append(big).unwrap(), 0);
}

#[test]
fn a_batch_larger_than_a_segment_is_refused_with_its_size() {
    let big = Record::new(vec![7; 1_000]);
    let size = batch_size(std::slice::from_ref(&big), base()) as usize;
    let s = open_sim(base().segment_bytes(300));
    match s.log.append(big) {
        Err(Error::BatchLargerThanSegment {
            size: got,
            segment_bytes,
        }) => assert_eq!((got, segment_bytes), (size, 300)),
        other => panic!("expected BatchLargerThanSegment, got {other:?}"),
    }
    assert_eq!(s.log.log_end_offset(), 0);
    assert_eq!(s.log.append(record(0)).unwrap(), 0);
}

/// Kafka's `max.message.bytes` and `segment.bytes` limit appends only: batches stored under
/// larger values stay readable after the limits are lowered, after a clean close and after
/// a crash (recovery re-validates them), while a torn length at the tail is still cut.
#[test]
fn lowered_size_limits_keep_larger_stored_batches_across_clean_and_unclean_opens() {
    let s = open_sim(base());
    s.log.append(Record::new(vec![7; 200_000])).unwrap();
    s.log.append(record(1)).unwrap();
    s.log.flush().unwrap();
    s.log.append(record(2)).unwrap();
    let lowered = base().max_message_bytes(50_000).segment_bytes(100_000);
    let check = |log: &Partition| {
        let got = collect(log.read_from(0).unwrap());
        assert_eq!(offsets(&got), [0, 1, 2]);
        assert_eq!(value(&got[0]), vec![7; 200_000]);
        // The lowered limits apply to new appends.
        assert!(matches!(
            log.append(Record::new(vec![8; 60_000])),
            Err(Error::MessageTooLarge { max: 50_000, .. })
        ));
        assert_eq!(log.append(record(3)).unwrap(), 3);
    };

    // A crash: the segment holding the recovery point (2) is recovered batch by batch, and
    // a header whose length runs far past the end of the file is cut as a torn tail.
    let crashed = s.storage.process_crash();
    let log_path = Path::new(DIR).join(format!("{:020}.log", 0));
    let mut bytes = crashed.read_file(&log_path).unwrap();
    let intact = bytes.len();
    bytes.extend(3i64.to_be_bytes()); // baseOffset
    bytes.extend((i32::MAX - 12).to_be_bytes()); // batchLength
    bytes.extend([0, 0, 0, 0, 2]); // partitionLeaderEpoch, magic
    crashed.write_file(&log_path, &bytes);
    let log = Partition::open_with_env(DIR, lowered.clone(), env(&crashed, &s.clock)).unwrap();
    assert_eq!(crashed.file_len(&log_path), Some(intact as u64));
    check(&log);

    // A clean close: the segment's tail is reloaded and read under the lowered limits.
    let s = s.reopen(lowered.clone());
    check(&s.log);
}

#[test]
fn an_empty_batch_is_refused() {
    let s = open_sim(base());
    assert!(matches!(s.log.append_batch(vec![]), Err(Error::EmptyBatch)));
    assert_eq!(s.log.log_end_offset(), 0);
}

#[test]
fn invalid_configuration_is_refused_on_open() {
    let storage = SimStorage::default();
    let clock = ManualClock::new(START_MS);
    let result = Partition::open_with_env(DIR, base().segment_ms(0), env(&storage, &clock));
    assert!(matches!(
        result,
        Err(Error::InvalidConfig {
            name: "segment.ms",
            ..
        })
    ));
}

// ─── Open, close, reopen ────────────────────────────────────────────────────────────────

#[test]
fn a_second_open_of_the_same_directory_is_refused_until_the_first_closes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("orders-0");
    let first = Partition::open(&dir, LogConfig::default()).unwrap();
    first.append(record(0)).unwrap();
    match Partition::open(&dir, base()) {
        Err(Error::DirectoryLocked { path }) => assert_eq!(path, dir),
        other => panic!("expected DirectoryLocked, got {other:?}"),
    }
    first.close().unwrap();
    let second = Partition::open(&dir, base()).unwrap();
    assert_eq!(second.log_end_offset(), 1);
    assert_eq!(read_offsets(&second, 0), [0]);
}

#[test]
fn a_second_open_on_simulated_storage_is_refused_too() {
    let s = open_sim(base());
    let second = Partition::open_with_env(DIR, base(), env(&s.storage, &s.clock));
    assert!(matches!(second, Err(Error::DirectoryLocked { .. })));
    drop(s.log);
    let again = Partition::open_with_env(DIR, base(), env(&s.storage, &s.clock)).unwrap();
    assert_eq!(again.log_end_offset(), 0);
}

fn check_every_record(log: &Partition, from: u64, to: u64) {
    let got = collect(log.read_from(from).unwrap());
    assert_eq!(offsets(&got), (from..to).collect::<Vec<_>>());
    for r in &got {
        let i = r.offset();
        assert_eq!(value(r), format!("value-{i:06}").into_bytes());
        assert_eq!(r.key().unwrap(), format!("key-{i:06}").as_bytes());
        assert_eq!(r.timestamp(), 1_000 + i as i64);
    }
}

fn reopen_restores_everything(dir: &Path, open: &dyn Fn(&Path, LogConfig) -> Partition) {
    let config = base()
        .segment_bytes(2_000)
        .index_interval_bytes(100)
        .compression(Compression::Lz4);
    let log = open(dir, config.clone());
    let mut i = 0u64;
    while i < 200 {
        // Mostly single records, every few a batch of up to 4.
        let n = if i.is_multiple_of(7) {
            (200 - i).min(4)
        } else {
            1
        };
        let batch: Vec<Record> = (i..i + n)
            .map(|j| record(j).with_timestamp(1_000 + j as i64))
            .collect();
        assert_eq!(log.append_batch(batch).unwrap(), i..i + n);
        i += n;
    }
    log.delete_records_before(37).unwrap();
    let (segments, size) = (log.segment_count(), log.size_bytes());
    assert!(segments > 2);
    log.close().unwrap();

    let log = open(dir, config);
    assert_eq!(log.log_start_offset(), 37);
    assert_eq!(log.log_end_offset(), 200);
    assert_eq!(log.high_watermark(), 200);
    assert_eq!(log.recovery_point(), 200);
    assert_eq!(log.segment_count(), segments);
    assert_eq!(log.size_bytes(), size);
    check_every_record(&log, 37, 200);
    for i in [37, 38, 100, 150, 199] {
        assert_eq!(read_offsets(&log, i)[0], i);
        let found = log.offset_for_timestamp(1_000 + i as i64).unwrap().unwrap();
        assert_eq!(found.offset, i);
    }
    assert_eq!(log.append(record(200)).unwrap(), 200);
}

#[test]
fn reopen_after_a_clean_close_restores_offsets_and_every_record_on_real_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("orders-0");
    reopen_restores_everything(&dir, &|dir, config| Partition::open(dir, config).unwrap());
}

#[test]
fn reopen_after_a_clean_close_restores_offsets_and_every_record_on_simulated_storage() {
    let storage = SimStorage::default();
    let clock = ManualClock::new(START_MS);
    reopen_restores_everything(Path::new(DIR), &|dir, config| {
        Partition::open_with_env(dir, config, env(&storage, &clock)).unwrap()
    });
}

#[test]
fn reopen_restores_a_manual_high_watermark() {
    let config = base().auto_high_watermark(false);
    let s = open_sim(config.clone());
    s.log.append_batch((0..10).map(record).collect()).unwrap();
    s.log.set_high_watermark(7);
    let s = s.reopen(config);
    assert_eq!(s.log.high_watermark(), 7);
    assert_eq!(s.log.log_end_offset(), 10);
    assert_eq!(read_offsets(&s.log, 0), (0..7).collect::<Vec<_>>());
}

#[test]
fn a_directory_of_empty_segment_files_based_at_seven_opens_at_seven() {
    let storage = SimStorage::default();
    let clock = ManualClock::new(START_MS);
    for ext in ["log", "index", "timeindex"] {
        storage.write_file(format!("{DIR}/00000000000000000007.{ext}"), &[]);
    }
    let log = Partition::open_with_env(DIR, base(), env(&storage, &clock)).unwrap();
    assert_eq!(log.log_start_offset(), 7);
    assert_eq!(log.log_end_offset(), 7);
    assert_eq!(log.append(record(7)).unwrap(), 7);
    assert_eq!(read_offsets(&log, 7), [7]);
    assert_eq!(expect_out_of_range(log.read_from(6)), (6, 7, 8));
}

// ─── Concurrency ────────────────────────────────────────────────────────────────────────

fn concurrent_readers_see_a_gap_free_prefix(log: Partition, total: u64) {
    let log = Arc::new(log);
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (log, done) = (Arc::clone(&log), Arc::clone(&done));
            std::thread::spawn(move || {
                let (mut reads, mut last_len) = (0u64, 0u64);
                loop {
                    let finished = done.load(Ordering::Acquire);
                    let hw_before = log.high_watermark();
                    let mut n = 0u64;
                    for r in log.read_from(0).unwrap() {
                        let r = r.unwrap();
                        assert_eq!(r.offset(), n, "gap or reorder");
                        assert_eq!(value(&r), format!("value-{n:06}").into_bytes());
                        n += 1;
                    }
                    assert!(n >= hw_before, "saw {n} records, HW was {hw_before}");
                    assert!(n >= last_len, "a later read saw fewer records");
                    last_len = n;
                    reads += 1;
                    if finished {
                        assert_eq!(n, total);
                        return reads;
                    }
                }
            })
        })
        .collect();
    let mut next = 0u64;
    let mut size = 1u64;
    while next < total {
        let n = size.min(total - next);
        let batch: Vec<Record> = (next..next + n).map(record).collect();
        assert_eq!(log.append_batch(batch).unwrap(), next..next + n);
        next += n;
        size = size % 7 + 1;
    }
    done.store(true, Ordering::Release);
    for reader in readers {
        assert!(reader.join().unwrap() >= 1);
    }
    assert!(log.segment_count() > 1);
}

#[test]
fn readers_on_other_threads_see_a_gap_free_prefix_while_a_writer_appends() {
    let config = base().segment_bytes(64 << 10).index_interval_bytes(512);
    let s = open_sim(config);
    concurrent_readers_see_a_gap_free_prefix(s.log, 20_000);
}

#[test]
fn readers_see_a_gap_free_prefix_on_real_files_too() {
    let tmp = tempfile::tempdir().unwrap();
    let config = base().segment_bytes(32 << 10).index_interval_bytes(512);
    let log = Partition::open(tmp.path().join("orders-0"), config).unwrap();
    concurrent_readers_see_a_gap_free_prefix(log, 5_000);
}

#[test]
fn truncate_into_a_batch_that_straddles_the_log_start_keeps_log_start_at_most_log_end() {
    let s = open_sim(base());
    s.log.append_batch((0..5).map(record).collect()).unwrap();
    s.log.append_batch((5..10).map(record).collect()).unwrap();
    assert_eq!(s.log.delete_records_before(7).unwrap(), 7);
    // The batch 5..10 holds offset 8, so it goes whole, taking the log end below 7.
    let end = s.log.truncate_to(8).unwrap();
    assert_eq!(end, s.log.log_end_offset());
    assert!(
        s.log.log_start_offset() <= s.log.log_end_offset(),
        "log start {} is above log end {}",
        s.log.log_start_offset(),
        s.log.log_end_offset()
    );
    let start = s.log.log_start_offset();
    assert_eq!(s.log.read_from(start).unwrap().count(), 0);
    // Appends continue at the log end and are readable from the log start.
    let next = s.log.append(record(100)).unwrap();
    assert_eq!(next, end);
    assert_eq!(read_offsets(&s.log, s.log.log_start_offset()), [next]);
}

/// Sealed segments are read through a memory map. Cutting one that readers still map would
/// fault their pages (SIGBUS), so the log cuts a copy instead: records already handed out,
/// and a reader already inside the segment, keep their bytes.
#[test]
fn truncating_a_sealed_segment_that_readers_map_leaves_their_records_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("orders-0");
    let config = base().segment_bytes(4 << 10).index_interval_bytes(256);
    let log = Partition::open(&dir, config.clone()).unwrap();
    for i in 0..200 {
        log.append(record(i)).unwrap();
    }
    assert!(log.segment_count() > 3);
    let held: Vec<LogRecord> = log.read_from(0).unwrap().map(Result::unwrap).collect();
    let mut inside = log.read_from(0).unwrap();
    let first = inside.next().unwrap().unwrap();

    assert_eq!(log.truncate_to(5).unwrap(), 5);
    for (i, record) in held.iter().enumerate() {
        assert_eq!(record.offset(), i as u64);
        assert_eq!(record.value(), Some(format!("value-{i:06}").as_bytes()));
    }
    assert_eq!(first.value(), Some(&b"value-000000"[..]));
    // The reader that started before the cut goes on over the bytes it mapped.
    let rest: Vec<u64> = inside.map(|r| r.unwrap().offset()).collect();
    assert_eq!(rest.first(), Some(&1));

    assert_eq!(read_offsets(&log, 0), (0..5).collect::<Vec<_>>());
    assert_eq!(log.append(record(5)).unwrap(), 5);
    assert_eq!(read_offsets(&log, 0), (0..6).collect::<Vec<_>>());
    drop(held);
    log.close().unwrap();
    let log = Partition::open(&dir, config).unwrap();
    assert_eq!(read_offsets(&log, 0), (0..6).collect::<Vec<_>>());
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.ends_with(".cleaned")),
        "leftover copy: {names:?}"
    );
}

/// With no reader holding its map, a sealed segment is cut in place and reads stay exact.
#[test]
fn truncating_an_unread_sealed_segment_cuts_it_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("orders-0");
    let config = base().segment_bytes(4 << 10).index_interval_bytes(256);
    let log = Partition::open(&dir, config).unwrap();
    for i in 0..200 {
        log.append(record(i)).unwrap();
    }
    // Map every sealed segment, then let the reader go.
    assert_eq!(log.read_from(0).unwrap().count(), 200);
    let first_log = log.segments()[0].log_path().to_path_buf();
    let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let before = inode(&first_log);
    assert_eq!(log.truncate_to(3).unwrap(), 3);
    assert_eq!(inode(&first_log), before, "cut in place, not copied");
    assert_eq!(read_offsets(&log, 0), [0, 1, 2]);
}

/// The active segment is read through its map too (appends show through it); a record held
/// from it survives a truncation of the active segment, and appends go on after the cut.
#[test]
fn truncating_the_active_segment_under_a_held_record_cuts_a_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("orders-0");
    let log = Partition::open(&dir, base()).unwrap();
    for i in 0..50 {
        log.append(record(i)).unwrap();
    }
    assert_eq!(log.segment_count(), 1);
    let held = log.read_from(40).unwrap().next().unwrap().unwrap();
    // Appended after the map was made: read through the same map.
    for i in 50..60 {
        log.append(record(i)).unwrap();
    }
    assert_eq!(read_offsets(&log, 55), (55..60).collect::<Vec<_>>());
    assert_eq!(log.truncate_to(10).unwrap(), 10);
    assert_eq!(held.value(), Some(&b"value-000040"[..]));
    assert_eq!(read_offsets(&log, 0), (0..10).collect::<Vec<_>>());
    assert_eq!(log.append(record(10)).unwrap(), 10);
    assert_eq!(
        collect(log.read_from(10).unwrap())[0].value(),
        Some(&b"value-000010"[..])
    );
}

/// Compaction may be writing a segment's `.cleaned` file while a truncation copies the
/// same segment (readers hold its map): the copy has a name of its own, so neither
/// overwrites the other.
#[test]
fn a_truncation_copy_leaves_compactions_file_of_the_same_segment_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("orders-0");
    let log = Partition::open(&dir, base()).unwrap();
    for i in 0..50 {
        log.append(record(i)).unwrap();
    }
    let cleaned = dir.join("00000000000000000000.log.cleaned");
    std::fs::write(&cleaned, b"compaction output in progress").unwrap();
    let held = log.read_from(40).unwrap().next().unwrap().unwrap();
    assert_eq!(log.truncate_to(10).unwrap(), 10);
    assert_eq!(
        std::fs::read(&cleaned).unwrap(),
        b"compaction output in progress"
    );
    assert_eq!(held.value(), Some(&b"value-000040"[..]));
    assert_eq!(read_offsets(&log, 0), (0..10).collect::<Vec<_>>());
}

/// Kafka offsets are `i64`s: a log never starts or ends past `i64::MAX`, and an append
/// that would is refused with the limit instead of overflowing.
#[test]
fn offsets_past_the_largest_kafka_offset_are_refused() {
    let sim = open_sim(base());
    let max = i64::MAX as u64 - 1;
    assert!(matches!(
        sim.log.truncate_fully_and_start_at(u64::MAX),
        Err(Error::OffsetLimit { offset: u64::MAX, max: m }) if m == max
    ));
    assert_eq!(
        sim.log.truncate_fully_and_start_at(max - 1).unwrap(),
        max - 1
    );
    assert_eq!(sim.log.append(record(0)).unwrap(), max - 1);
    assert!(matches!(
        sim.log.append_batch(vec![record(1), record(2)]),
        Err(Error::OffsetLimit { offset, .. }) if offset == max + 1
    ));
    assert_eq!(sim.log.append(record(3)).unwrap(), max);
    assert_eq!(sim.log.log_end_offset(), max + 1);
    assert!(sim.log.append(record(4)).is_err());
    assert_eq!(read_offsets(&sim.log, max - 1), [max - 1, max]);
}

#[test]
fn try_for_each_view_returns_the_callers_error_and_a_later_call_goes_on_after_it() {
    let s = open_sim(base());
    for i in 0..3 {
        s.log
            .append_batch((i * 4..i * 4 + 4).map(record).collect())
            .unwrap();
    }
    /// The caller's own error type: its stop, or the log's error.
    #[derive(Debug)]
    enum Stop {
        Enough,
        Log(Error),
    }
    impl From<Error> for Stop {
        fn from(e: Error) -> Self {
            Stop::Log(e)
        }
    }
    let mut records = s.log.read_from(2).unwrap();
    let mut seen = Vec::new();
    let stop = records.try_for_each_view(|r| {
        seen.push(r.offset());
        if r.offset() == 5 {
            Err(Stop::Enough)
        } else {
            Ok(())
        }
    });
    match stop {
        Err(Stop::Enough) => {}
        Err(Stop::Log(e)) => panic!("the log failed: {e}"),
        Ok(()) => panic!("the caller's stop was not returned"),
    }
    assert_eq!(seen, [2, 3, 4, 5]);
    let next = records.next_view().unwrap().unwrap();
    assert_eq!(next.offset(), 6);
    let rest: Result<(), Error> = records.try_for_each_view(|r| {
        seen.push(r.offset());
        Ok(())
    });
    rest.unwrap();
    assert_eq!(seen, [2, 3, 4, 5, 7, 8, 9, 10, 11]);
    assert!(records.next_view().is_none());
}

#[test]
fn try_for_each_view_stops_at_the_high_watermark() {
    let s = open_sim(base().auto_high_watermark(false));
    s.log.append_batch((0..6).map(record).collect()).unwrap();
    s.log.set_high_watermark(4);
    let mut seen = Vec::new();
    s.log
        .read_from(1)
        .unwrap()
        .try_for_each_view(|r| {
            seen.push(r.offset());
            Ok::<(), Error>(())
        })
        .unwrap();
    assert_eq!(seen, [1, 2, 3]);
}

/// A callback that panics (caught further up) refuses its record as an error does: the
/// reader goes on after it, with the rest of its batch, instead of skipping to the next
/// batch.
#[test]
fn try_for_each_view_goes_on_after_a_record_whose_callback_panicked() {
    let s = open_sim(base());
    for i in 0..2 {
        s.log
            .append_batch((i * 4..i * 4 + 4).map(record).collect())
            .unwrap();
    }
    let mut records = s.log.read_from(0).unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        records.try_for_each_view(|r| {
            assert_ne!(r.offset(), 1, "the callback's own panic");
            Ok::<(), Error>(())
        })
    }));
    assert!(caught.is_err());
    assert_eq!(records.next_offset(), 2);
    let mut rest = Vec::new();
    while let Some(r) = records.next_view() {
        rest.push(r.unwrap().offset());
    }
    assert_eq!(rest, [2, 3, 4, 5, 6, 7]);
}

/// A batch whose CRC holds but whose records do not all decode (a follower copies it, as
/// only CRCs and offsets are checked there) ends a read with one error, whichever way
/// it is read: "after an error it ends", never the same error again and again.
#[test]
fn a_record_that_does_not_decode_ends_the_read_with_one_error() {
    use streamlog::record::{RecordBatch, encode_batch};
    let s = open_sim(base());
    let mut batch = Vec::new();
    encode_batch(
        &[record(0), record(1)],
        Compression::None,
        START_MS,
        &mut batch,
    )
    .unwrap();
    // Three records declared where two are: the third does not decode. CRC made to match.
    batch[57..61].copy_from_slice(&3i32.to_be_bytes());
    let crc = RecordBatch::parse(&batch).unwrap().compute_crc();
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(s.log.append_as_follower(&batch).unwrap(), 0..2);

    let results: Vec<_> = s.log.read_from(0).unwrap().take(10).collect();
    let oks = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!((oks, results.len()), (2, 3), "the iterator: {results:?}");

    let mut records = s.log.read_from(0).unwrap();
    let (mut items, mut errors) = (0, 0);
    while let Some(r) = records.next_view() {
        items += 1;
        errors += usize::from(r.is_err());
        if items == 10 {
            break;
        }
    }
    assert_eq!((items, errors), (3, 1), "next_view");

    let mut records = s.log.read_from(0).unwrap();
    let mut seen = Vec::new();
    let first = records.try_for_each_view(|r| {
        seen.push(r.offset());
        Ok::<(), Error>(())
    });
    assert!(matches!(first, Err(Error::Corrupt { .. })), "{first:?}");
    assert_eq!(seen, [0, 1]);
    let again: Result<(), Error> = records.try_for_each_view(|_| Ok(()));
    assert!(again.is_ok(), "try_for_each_view again: {again:?}");
}

/// A log reopened with a smaller `segment.index.bytes` than it was written with: its
/// active segment's time index shrinks. It must keep its last slot free for the entry a
/// roll writes (Kafka: a time index is full at `maxEntries - 1`); filled to the last slot,
/// the roll its next append needs failed ("no free slot in the time index"), and so did
/// every append after it.
#[test]
fn a_log_reopened_with_smaller_indexes_still_rolls_and_appends() {
    let config = LogConfig::default()
        .segment_index_bytes(12 * 100)
        .index_interval_bytes(1);
    let s = open_sim(config.clone());
    for i in 0..60 {
        s.log
            .append(Record::new(b"x".to_vec()).with_timestamp(1_000 + i))
            .unwrap();
    }
    // 10 time-index slots now; the active segment held 59 time-index entries.
    let s = s.reopen(config.segment_index_bytes(12 * 10));
    for i in 60..63 {
        s.log
            .append(Record::new(b"x".to_vec()).with_timestamp(1_000 + i))
            .unwrap_or_else(|e| panic!("append of record {i} after the reopen: {e}"));
    }
    assert_eq!(
        offsets(&collect(s.log.read_from(0).unwrap())),
        (0..63).collect::<Vec<_>>()
    );
    assert_eq!(
        s.log.offset_for_timestamp(1_062).unwrap().unwrap().offset,
        62
    );
    assert_eq!(
        s.log.offset_for_timestamp(1_010).unwrap().unwrap().offset,
        10
    );
}

/// Kafka's ListOffsets: timestamp -1 (LATEST) answers the high watermark, -2 (EARLIEST)
/// the log start offset, even on an empty log, and -3 (MAX_TIMESTAMP) the first record
/// holding the largest timestamp, if it is below the high watermark.
#[test]
fn offset_for_timestamp_answers_kafkas_special_timestamps_latest_and_max_timestamp() {
    let empty = open_sim(base()).log;
    let at = |offset| {
        Some(OffsetAndTimestamp {
            offset,
            timestamp: -1,
        })
    };
    assert_eq!(
        empty
            .offset_for_timestamp(Partition::EARLIEST_TIMESTAMP)
            .unwrap(),
        at(0)
    );
    assert_eq!(
        empty
            .offset_for_timestamp(Partition::LATEST_TIMESTAMP)
            .unwrap(),
        at(0)
    );
    assert_eq!(
        empty
            .offset_for_timestamp(Partition::MAX_TIMESTAMP)
            .unwrap(),
        None
    );
    let log = open_sim(base()).log;
    for ts in [100, 300, 200] {
        log.append(Record::new(b"v".to_vec()).with_timestamp(ts))
            .unwrap();
    }
    assert_eq!(
        log.offset_for_timestamp(-1).unwrap().map(|o| o.offset),
        Some(3),
        "LATEST (-1) is the high watermark, not the first record"
    );
    assert_eq!(
        log.offset_for_timestamp(-3).unwrap(),
        Some(OffsetAndTimestamp {
            offset: 1,
            timestamp: 300
        }),
        "MAX_TIMESTAMP (-3) is the first record holding the largest timestamp"
    );
    assert_eq!(log.offset_for_timestamp(-2).unwrap(), at(0));
    log.append(Record::new(b"v".to_vec()).with_timestamp(300))
        .unwrap();
    assert_eq!(
        log.offset_for_timestamp(-3).unwrap().unwrap().offset,
        1,
        "the first"
    );
}
