//! Log compaction through the public API: Kafka's `LogCleanerTest` behaviours (latest value
//! per key, uncleanable tail, active segment, tombstones and their delete horizon, unkeyed
//! records, filtered and emptied batches, compaction lag, offset holes, segment grouping),
//! readers during a swap, the keyless-append check, and the dirty ratio.
//!
//! The model-based property test and the crash tests live in `compaction_model.rs` and
//! `compaction_crash.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;

use streamlog::record::{BatchHeader, BatchIter, encode_batch};
use streamlog::{
    CleanupPolicy, Compression, Env, Error, LogConfig, ManualClock, Partition, Record, SimStorage,
    Storage,
};

const DIR: &str = "/data/topic-0";

struct Fixture {
    sim: SimStorage,
    clock: ManualClock,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            sim: SimStorage::new(),
            clock: ManualClock::new(1_000_000),
        }
    }

    fn env(&self) -> Env {
        Env {
            storage: Arc::new(self.sim.clone()),
            clock: Arc::new(self.clock.clone()),
        }
    }

    fn open(&self, config: LogConfig) -> Partition {
        Partition::open_with_env(DIR, config, self.env()).unwrap()
    }
}

fn compacted() -> LogConfig {
    LogConfig::default()
        .cleanup_policy(CleanupPolicy::Compact)
        .segment_bytes(1 << 20)
        .segment_index_bytes(4096)
        .index_interval_bytes(64)
}

fn kv(key: &str, value: &str) -> Record {
    Record::new(value.as_bytes().to_vec()).with_key(key.as_bytes().to_vec())
}

/// `(offset, key, value)` of every record up to the log end.
type Row = (u64, String, Option<String>);

fn rows(log: &Partition) -> Vec<Row> {
    let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
    log.read_to_log_end(log.log_start_offset())
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            (
                r.offset(),
                text(r.key()).unwrap_or_default(),
                text(r.value()),
            )
        })
        .collect()
}

/// The last row of each key.
fn latest(rows: &[Row]) -> BTreeMap<String, (u64, Option<String>)> {
    rows.iter()
        .map(|(o, k, v)| (k.clone(), (*o, v.clone())))
        .collect()
}

/// Batch headers of every segment, as stored.
fn batches(fx: &Fixture, log: &Partition) -> Vec<Vec<BatchHeader>> {
    log.segments()
        .iter()
        .map(|s| {
            let bytes = fx.sim.read_file(s.log_path()).unwrap();
            let bytes = &bytes[..s.size_bytes() as usize];
            BatchIter::new(bytes, usize::MAX)
                .map(|b| *b.unwrap().1.header())
                .collect()
        })
        .collect()
}

/// `rounds` writes of each of `keys` keys, one record per append, rolling every `per_segment`.
fn fill(log: &Partition, keys: usize, rounds: usize, per_segment: usize) {
    let mut n = 0;
    for round in 0..rounds {
        for key in 0..keys {
            log.append(kv(&format!("k{key}"), &format!("v{round}")))
                .unwrap();
            n += 1;
            if n % per_segment == 0 {
                log.roll().unwrap();
            }
        }
    }
}

#[test]
fn compaction_keeps_the_latest_value_of_each_key_at_its_offset() {
    let fx = Fixture::new();
    let log = fx.open(compacted());
    fill(&log, 10, 5, 7);
    log.roll().unwrap();
    let before = rows(&log);
    let segments = log.segments();
    let cleanable_bytes: u64 = segments[..segments.len() - 1]
        .iter()
        .map(|s| s.size_bytes())
        .sum();
    let end = log.log_end_offset();

    let stats = log.compact().unwrap();
    let after = rows(&log);
    assert_eq!(after.len(), 10);
    assert_eq!(latest(&after), latest(&before));
    assert!(after.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(after.iter().all(|(_, _, v)| v.as_deref() == Some("v4")));
    assert_eq!(stats.records_read, 50);
    assert_eq!(stats.records_written, 10);
    assert_eq!(stats.bytes_read, cleanable_bytes);
    assert_eq!((stats.first_dirty_offset, stats.end_offset), (0, end));
    assert_eq!(log.log_end_offset(), end);
    // The next append continues where the log ended.
    assert_eq!(log.append(kv("k0", "new")).unwrap(), end);
}

#[test]
fn stats_count_records_and_bytes_read_and_written() {
    let fx = Fixture::new();
    let log = fx.open(compacted());
    for key in ["0", "1", "0", "1", "0"] {
        log.append(kv(key, "value")).unwrap();
    }
    log.roll().unwrap();
    let size_before = log.segments()[0].size_bytes();
    let stats = log.compact().unwrap();
    assert_eq!((stats.records_read, stats.records_written), (5, 2));
    assert_eq!(stats.bytes_read, size_before);
    assert_eq!(stats.bytes_written, log.segments()[0].size_bytes());
    assert_eq!((stats.segments_read, stats.segments_written), (1, 1));
    assert_eq!(stats.map_keys, 2);
    let offsets: Vec<u64> = rows(&log).iter().map(|r| r.0).collect();
    assert_eq!(offsets, [3, 4]);
}

#[test]
fn the_active_segment_is_never_cleaned() {
    let fx = Fixture::new();
    let log = fx.open(compacted());
    fill(&log, 3, 4, usize::MAX);
    let before = rows(&log);
    let stats = log.compact().unwrap();
    assert_eq!(stats.segments_read, 0);
    assert_eq!(rows(&log), before);
    assert_eq!(log.cleanable_dirty_ratio(), 0.0);
    assert!(!log.needs_compaction());
    // Even with the log start inside it.
    log.delete_records_before(5).unwrap();
    let stats = log.compact().unwrap();
    assert_eq!((stats.first_dirty_offset, stats.segments_read), (5, 0));
    assert_eq!(rows(&log), before[5..]);
}

#[test]
fn segments_at_or_after_the_high_watermark_keep_every_value() {
    let fx = Fixture::new();
    let log = fx.open(compacted().auto_high_watermark(false));
    fill(&log, 4, 6, 6); // 24 records, segments of 6
    log.roll().unwrap();
    let before = rows(&log);
    // HW inside the third segment: only the first two are cleanable.
    log.set_high_watermark(14);
    let stats = log.compact().unwrap();
    assert_eq!(stats.end_offset, 12);
    let after = rows(&log);
    let (cleaned, tail): (Vec<Row>, Vec<Row>) = after.iter().cloned().partition(|r| r.0 < 12);
    assert_eq!(tail, before[12..]);
    assert_eq!(cleaned.len(), 4);
    assert_eq!(latest(&cleaned), latest(&before[..12]));
}

#[test]
fn tombstones_live_until_the_delete_horizon_a_clean_stamps() {
    let fx = Fixture::new();
    let config = compacted().delete_retention_ms(1_000);
    let log = fx.open(config);
    log.append(kv("a", "1")).unwrap();
    log.append(kv("b", "2")).unwrap();
    // A tombstone timestamped long ago: its own time does not matter.
    log.append(Record::tombstone(b"a".to_vec()).with_timestamp(5))
        .unwrap();
    log.roll().unwrap();

    let stats = log.compact().unwrap();
    assert_eq!(stats.tombstones_removed, 0);
    let after: Vec<Row> = rows(&log);
    assert_eq!(
        after,
        [(1, "b".into(), Some("2".into())), (2, "a".into(), None)]
    );
    let horizon = 1_000_000 + 1_000;
    let tombstone_batch = batches(&fx, &log)[0][1];
    assert_eq!(tombstone_batch.delete_horizon_ms(), Some(horizon));
    // The record keeps its own timestamp although the batch's base slot holds the horizon.
    let ts: Vec<i64> = log
        .read_from(2)
        .unwrap()
        .map(|r| r.unwrap().timestamp())
        .collect();
    assert_eq!(ts, [5]);
    assert_eq!(
        log.offset_for_timestamp(0).unwrap().map(|o| o.offset),
        Some(1)
    );

    // Before the horizon another clean keeps it (and its horizon).
    fx.clock.set_ms(horizon - 1);
    log.append(kv("c", "3")).unwrap();
    log.roll().unwrap();
    let stats = log.compact().unwrap();
    assert_eq!(stats.tombstones_removed, 0);
    assert!(rows(&log).contains(&(2, "a".into(), None)));
    assert_eq!(
        batches(&fx, &log)
            .concat()
            .iter()
            .find_map(|b| b.delete_horizon_ms()),
        Some(horizon)
    );

    // At the horizon, the next clean drops it.
    fx.clock.set_ms(horizon);
    log.append(kv("d", "4")).unwrap();
    log.roll().unwrap();
    let stats = log.compact().unwrap();
    assert_eq!(stats.tombstones_removed, 1);
    let keys: Vec<String> = rows(&log).into_iter().map(|r| r.1).collect();
    assert_eq!(keys, ["b", "c", "d"]);
}

#[test]
fn deletes_leave_no_value_for_deleted_keys() {
    let fx = Fixture::new();
    let log = fx.open(compacted().delete_retention_ms(0));
    fill(&log, 10, 3, 8);
    for key in (0..10).step_by(2) {
        log.append(Record::tombstone(format!("k{key}").into_bytes()))
            .unwrap();
    }
    log.roll().unwrap();
    log.compact().unwrap();
    let first = latest(&rows(&log));
    for key in (0..10).step_by(2) {
        assert_eq!(first[&format!("k{key}")].1, None);
    }
    // A later clean past the horizon drops the tombstones themselves.
    log.append(kv("z", "z")).unwrap();
    log.roll().unwrap();
    log.compact().unwrap();
    let second = latest(&rows(&log));
    assert_eq!(second.len(), 6);
    assert!(second.values().all(|(_, v)| v.is_some()));
}

#[test]
fn records_without_keys_are_dropped_and_counted() {
    let fx = Fixture::new();
    // Written while the log was not compacted, then reopened as compacted.
    let log = fx.open(LogConfig::default().segment_index_bytes(4096));
    for i in 0..6 {
        log.append(Record::new(format!("unkeyed{i}").into_bytes()))
            .unwrap();
        log.append(kv(&format!("k{}", i % 2), "keyed")).unwrap();
    }
    log.close().unwrap();
    let log = fx.open(compacted());
    log.roll().unwrap();
    let stats = log.compact().unwrap();
    assert_eq!(stats.records_without_key, 6);
    let after = rows(&log);
    assert_eq!(after.len(), 2);
    assert!(after.iter().all(|r| r.2.as_deref() == Some("keyed")));
}

#[test]
fn keyless_appends_to_a_compacted_log_are_refused_with_the_record_index() {
    for policy in [CleanupPolicy::Compact, CleanupPolicy::CompactAndDelete] {
        let fx = Fixture::new();
        let log = fx.open(compacted().cleanup_policy(policy));
        let batch = vec![kv("a", "1"), kv("b", "2"), Record::new(b"no key".to_vec())];
        let err = log.append_batch(batch.clone()).unwrap_err();
        assert!(matches!(err, Error::MissingKey { index: 2 }), "{err}");
        let mut encoded = Vec::new();
        encode_batch(&batch, Compression::Lz4, 0, &mut encoded).unwrap();
        let err = log.append_encoded(&encoded).unwrap_err();
        assert!(matches!(err, Error::MissingKey { index: 2 }), "{err}");
        assert_eq!(log.log_end_offset(), 0);
        assert_eq!(log.append_batch(batch[..2].to_vec()).unwrap(), 0..2);
    }
    let fx = Fixture::new();
    let log = fx.open(LogConfig::default().segment_index_bytes(4096));
    assert_eq!(log.append(Record::new(b"fine".to_vec())).unwrap(), 0);
}

#[test]
fn filtered_batches_keep_their_base_and_last_offsets() {
    let fx = Fixture::new();
    let log = fx.open(compacted().compression(Compression::Gzip));
    log.append_batch(["a", "b", "c", "d", "e"].map(|k| kv(k, "old")).to_vec())
        .unwrap();
    log.append_batch(["a", "b", "d", "e"].map(|k| kv(k, "new")).to_vec())
        .unwrap();
    log.roll().unwrap();
    log.compact().unwrap();
    let stored = batches(&fx, &log);
    let first = stored[0][0];
    assert_eq!((first.base_offset, first.last_offset()), (0, 4));
    assert_eq!(first.records_count, 1);
    assert_eq!(first.compression().unwrap(), Compression::Gzip);
    let offsets: Vec<u64> = rows(&log).iter().map(|r| r.0).collect();
    assert_eq!(offsets, [2, 5, 6, 7, 8]);
    assert_eq!(log.log_end_offset(), 9);
}

#[test]
fn an_emptied_last_batch_stays_as_a_61_byte_header() {
    let fx = Fixture::new();
    // Two small segments that do not fit one output segment: two groups.
    let log = fx.open(compacted().segment_bytes(200));
    log.append(kv("x", "1")).unwrap();
    log.append(kv("y", "1")).unwrap();
    log.roll().unwrap();
    log.append(kv("y", "2")).unwrap();
    log.append(kv("x", "2")).unwrap();
    log.roll().unwrap();
    let stats = log.compact().unwrap();
    assert_eq!(stats.segments_written, 1);
    let stored = batches(&fx, &log);
    assert_eq!(stored[0].len(), 1);
    let empty = stored[0][0];
    assert_eq!((empty.base_offset, empty.last_offset()), (1, 1));
    assert_eq!((empty.records_count, empty.size_bytes()), (0, 61));
    assert_eq!(log.segments()[0].next_offset(), 2);
    let offsets: Vec<u64> = rows(&log).iter().map(|r| r.0).collect();
    assert_eq!(offsets, [2, 3]);
    // Reading from inside the emptied batch moves on to the next record.
    assert_eq!(
        log.read_from(0).unwrap().next().unwrap().unwrap().offset(),
        2
    );
    assert_eq!(
        log.read_from(1).unwrap().next().unwrap().unwrap().offset(),
        2
    );
}

#[test]
fn nothing_is_cleaned_before_min_compaction_lag() {
    let fx = Fixture::new();
    let log = fx.open(compacted().min_compaction_lag_ms(1_000));
    fill(&log, 2, 3, 3);
    log.roll().unwrap();
    let before = rows(&log);
    let stats = log.compact().unwrap();
    assert_eq!((stats.segments_read, stats.end_offset), (0, 0));
    assert_eq!(rows(&log), before);
    fx.clock.advance_ms(1_001);
    let stats = log.compact().unwrap();
    assert_eq!(stats.end_offset, 6);
    assert_eq!(rows(&log).len(), 2);
}

#[test]
fn the_active_segment_rolls_once_max_compaction_lag_has_passed() {
    // Kafka's `LogConfig.maxSegmentMs`: a compacting log rolls at min(segment.ms,
    // max.compaction.lag.ms), or its records would wait in the active segment, which is
    // never cleaned, for up to segment.ms (7 days).
    let fx = Fixture::new();
    let log = fx.open(compacted().max_compaction_lag_ms(60_000));
    log.append(kv("a", "1")).unwrap();
    log.append(kv("a", "2")).unwrap();
    fx.clock.advance_ms(60_001);
    log.append(kv("b", "1")).unwrap();
    assert_eq!(log.segment_count(), 2);
    assert!(log.needs_compaction());
    log.compact().unwrap();
    let row = |o: u64, k: &str, v: &str| (o, k.to_owned(), Some(v.to_owned()));
    assert_eq!(rows(&log), [row(1, "a", "2"), row(2, "b", "1")]);

    // Not for a `delete` log (Kafka's rule).
    let fx = Fixture::new();
    let log = fx.open(
        LogConfig::default()
            .max_compaction_lag_ms(60_000)
            .segment_index_bytes(4096),
    );
    log.append(kv("a", "1")).unwrap();
    fx.clock.advance_ms(60_001);
    log.append(kv("a", "2")).unwrap();
    assert_eq!(log.segment_count(), 1);
}

/// Encodes keyed records as one batch based at `base` (as a replica receives it).
fn batch_at(base: u64, keys: &[&str]) -> Vec<u8> {
    let records: Vec<Record> = keys.iter().map(|k| kv(k, "v")).collect();
    let mut out = Vec::new();
    encode_batch(&records, Compression::None, 0, &mut out).unwrap();
    out[..8].copy_from_slice(&(base as i64).to_be_bytes());
    out
}

#[test]
fn offset_holes_end_the_clean_at_the_active_segment_base() {
    let fx = Fixture::new();
    let log = fx.open(compacted());
    log.append_as_follower(&batch_at(0, &["a", "b"])).unwrap();
    log.roll().unwrap();
    log.append_as_follower(&batch_at(11, &["a"])).unwrap();
    log.roll().unwrap();
    log.append_as_follower(&batch_at(15, &["b", "c"])).unwrap();
    log.roll().unwrap();
    let active_base = log.segments().last().unwrap().base_offset();
    assert_eq!(active_base, 17);
    let stats = log.compact().unwrap();
    assert_eq!(stats.end_offset, active_base);
    let offsets: Vec<u64> = rows(&log).iter().map(|r| r.0).collect();
    assert_eq!(offsets, [11, 15, 16]);
    assert_eq!(log.log_end_offset(), 17);
}

#[test]
fn segments_are_grouped_within_segment_bytes() {
    let fx = Fixture::new();
    let log = fx.open(compacted().segment_bytes(4096));
    // 20 one-record segments of distinct keys: nothing to drop, but they merge.
    for i in 0..20 {
        log.append(kv(&format!("k{i}"), "v")).unwrap();
        log.roll().unwrap();
    }
    let before = rows(&log);
    let stats = log.compact().unwrap();
    assert_eq!(stats.segments_read, 20);
    assert_eq!(log.segment_count(), 2);
    assert_eq!(rows(&log), before);

    // Tiny segments cannot merge: each is its own group and, unchanged, stays as it was.
    let fx = Fixture::new();
    let log = fx.open(compacted().segment_bytes(100));
    for i in 0..5 {
        log.append(kv(&format!("k{i}"), "v")).unwrap();
    }
    let stats = log.compact().unwrap();
    let count = log.segment_count();
    assert!(count >= 5, "{count}");
    assert_eq!(stats.segments_written, 0);
    assert!(log.segments().iter().all(|s| s.size_bytes() <= 100));
}

#[test]
fn a_group_never_spans_more_than_i32_max_offsets() {
    let fx = Fixture::new();
    let log = fx.open(compacted());
    let far = 3_000_000_000u64;
    log.append_as_follower(&batch_at(0, &["a", "b"])).unwrap();
    log.roll().unwrap();
    log.append_as_follower(&batch_at(far, &["b"])).unwrap();
    log.roll().unwrap();
    let stats = log.compact().unwrap();
    // Segments 0 and the empty one rolled at 2 merge; the far one cannot join them and,
    // with nothing to drop, stays as it was.
    assert_eq!((stats.segments_read, stats.segments_written), (3, 1));
    let bases: Vec<u64> = log.segments().iter().map(|s| s.base_offset()).collect();
    assert_eq!(bases, [0, far, far + 1]);
    let offsets: Vec<u64> = rows(&log).iter().map(|r| r.0).collect();
    assert_eq!(offsets, [0, far]);
}

#[test]
fn a_reader_keeps_reading_the_segments_a_compaction_replaces() {
    let fx = Fixture::new();
    let log = fx.open(compacted().segment_bytes(600));
    fill(&log, 5, 8, 5);
    log.roll().unwrap();
    let before: BTreeMap<u64, Row> = rows(&log).into_iter().map(|r| (r.0, r)).collect();
    let mut reader = log.read_from(0).unwrap();
    let first = reader.next().unwrap().unwrap();
    assert_eq!(first.offset(), 0);
    log.compact().unwrap();
    let mut last = 0;
    for record in reader {
        let record = record.unwrap();
        assert!(record.offset() > last);
        last = record.offset();
        let original = &before[&last];
        assert_eq!(record.key(), Some(original.1.as_bytes()));
    }
    assert_eq!(last, log.log_end_offset() - 1);
    assert_eq!(rows(&log).len(), 5);
}

#[test]
fn the_checkpoint_survives_a_reopen_and_the_next_pass_starts_there() {
    let fx = Fixture::new();
    let log = fx.open(compacted());
    fill(&log, 4, 4, 5);
    log.roll().unwrap();
    let stats = log.compact().unwrap();
    let after = rows(&log);
    log.close().unwrap();
    assert!(
        fx.sim
            .read_file(format!("{DIR}/cleaner-offset.checkpoint"))
            .is_some()
    );

    let log = fx.open(compacted());
    assert_eq!(rows(&log), after);
    let again = log.compact().unwrap();
    assert_eq!(again.first_dirty_offset, stats.end_offset);
    assert_eq!(again.segments_read, 0);
    // A truncation below the checkpoint brings it down with the log end.
    log.truncate_to(10).unwrap();
    log.append(kv("k0", "rewritten")).unwrap();
    log.roll().unwrap();
    let third = log.compact().unwrap();
    assert!(third.first_dirty_offset <= 10, "{third:?}");
    assert_eq!(latest(&rows(&log))["k0"].1.as_deref(), Some("rewritten"));
}

#[test]
fn the_dirty_ratio_tells_a_background_cleaner_when_to_run() {
    let fx = Fixture::new();
    let log = fx.open(
        compacted()
            .min_cleanable_dirty_ratio(0.5)
            .max_compaction_lag_ms(60_000),
    );
    fill(&log, 4, 10, 10);
    log.roll().unwrap();
    assert_eq!(log.cleanable_dirty_ratio(), 1.0);
    assert!(log.needs_compaction());
    log.compact().unwrap();
    assert_eq!(log.cleanable_dirty_ratio(), 0.0);
    assert!(!log.needs_compaction());
    // A little dirt: below the ratio...
    log.append(kv("k0", "x")).unwrap();
    log.roll().unwrap();
    let ratio = log.cleanable_dirty_ratio();
    assert!(ratio > 0.0 && ratio < 0.5, "{ratio}");
    assert!(!log.needs_compaction());
    // ...until it has waited longer than max.compaction.lag.ms.
    fx.clock.advance_ms(60_001);
    assert!(log.needs_compaction());

    // As Kafka's `grabFilthiestCompactedLog`, a ratio at the minimum is not above it: a
    // log that is all dirt waits under `min.cleanable.dirty.ratio = 1`.
    let fx = Fixture::new();
    let strict = fx.open(
        compacted()
            .min_cleanable_dirty_ratio(1.0)
            .max_compaction_lag_ms(60_000),
    );
    fill(&strict, 4, 10, 10);
    strict.roll().unwrap();
    assert_eq!(strict.cleanable_dirty_ratio(), 1.0);
    assert!(!strict.needs_compaction());
    fx.clock.advance_ms(60_001);
    assert!(strict.needs_compaction());

    let plain = Fixture::new().open(LogConfig::default().segment_index_bytes(4096));
    plain.append(kv("a", "1")).unwrap();
    plain.roll().unwrap();
    assert_eq!(plain.cleanable_dirty_ratio(), 0.0);
    assert!(!plain.needs_compaction());
    assert_eq!(plain.compact().unwrap().segments_read, 0);
}

#[test]
fn compaction_of_every_codec_reads_back_the_same_latest_values() {
    for codec in Compression::ALL {
        let fx = Fixture::new();
        let log = fx.open(compacted().compression(codec).segment_bytes(700));
        for round in 0..6 {
            let batch: Vec<Record> = (0..5)
                .map(|k| kv(&format!("k{k}"), &format!("{round}")))
                .collect();
            log.append_batch(batch).unwrap();
        }
        log.roll().unwrap();
        let before = latest(&rows(&log));
        log.compact().unwrap();
        assert_eq!(latest(&rows(&log)), before, "{codec:?}");
        assert_eq!(rows(&log).len(), 5, "{codec:?}");
    }
}

#[test]
fn compaction_runs_beside_appends_and_readers() {
    let fx = Fixture::new();
    let log = Arc::new(fx.open(compacted().segment_bytes(2048)));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut expected = BTreeMap::new();
            for i in 0..1500u64 {
                let key = format!("k{}", (i * 7919) % 23);
                let value = format!("{i}");
                let offset = log.append(kv(&key, &value)).unwrap();
                expected.insert(key, (offset, Some(value)));
                if i % 97 == 0 {
                    log.roll().unwrap();
                }
            }
            expected
        })
    };
    let reader = {
        let (log, done) = (log.clone(), done.clone());
        std::thread::spawn(move || {
            let mut passes = 0;
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                let mut last = None;
                for record in log.read_from(log.log_start_offset()).unwrap() {
                    let offset = record.unwrap().offset();
                    assert!(last.is_none_or(|l| l < offset), "{last:?} then {offset}");
                    last = Some(offset);
                }
                passes += 1;
            }
            passes
        })
    };
    let mut passes = 0;
    while !writer.is_finished() {
        let stats = log.compact().unwrap();
        assert!(!stats.aborted);
        passes += 1;
    }
    let expected = writer.join().unwrap();
    done.store(true, std::sync::atomic::Ordering::Release);
    assert!(reader.join().unwrap() > 0);
    assert!(passes > 0);
    log.roll().unwrap();
    log.compact().unwrap();
    let after = rows(&log);
    assert_eq!(latest(&after), expected);
    assert_eq!(after.len(), expected.len());
}

#[test]
fn a_damaged_segment_stops_the_pass_as_corrupt_and_leaves_the_log_as_it_was() {
    // Damage in the dirty section (found while building the map) and in the clean section
    // (found while rewriting, with a `.cleaned` output already started).
    for (damage, in_clean_section) in [
        ("crc", false),
        ("magic", false),
        ("size", false),
        ("crc", true),
        ("size", true),
    ] {
        let what = format!("{damage}, clean section: {in_clean_section}");
        let fx = Fixture::new();
        let log = fx.open(compacted());
        fill(&log, 3, 4, 6);
        log.roll().unwrap();
        if in_clean_section {
            log.compact().unwrap();
            fill(&log, 3, 1, 3);
        }
        let victim_index = usize::from(!in_clean_section);
        let victim = log.segments()[victim_index].clone();
        let mut bytes = fx.sim.read_file(victim.log_path()).unwrap();
        match damage {
            "crc" => *bytes.last_mut().unwrap() ^= 0xFF,
            "magic" => bytes[16] = 7,
            _ => bytes[8..12].copy_from_slice(&100_000i32.to_be_bytes()),
        }
        fx.sim.write_file(victim.log_path(), &bytes);
        let err = log.compact().unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{what}: {err}");
        for path in fx.sim.list_dir(std::path::Path::new(DIR)).unwrap() {
            assert!(
                !path.to_string_lossy().ends_with(".cleaned"),
                "{what}: {path:?}"
            );
        }
        // The segments that are not damaged still read in full.
        let other = log.segments()[1 - victim_index].clone();
        let records: Vec<u64> = log
            .read_from(other.base_offset())
            .unwrap()
            .map_while(Result::ok)
            .map(|r| r.offset())
            .take_while(|&o| o < other.next_offset())
            .collect();
        assert!(!records.is_empty(), "{what}");
        assert_eq!(*records.last().unwrap(), other.next_offset() - 1, "{what}");
    }
}

// ─── A compacted log whose policy becomes `delete` ──────────────────────────────────────

fn switched_to_delete() -> LogConfig {
    compacted().cleanup_policy(CleanupPolicy::Delete)
}

/// Offsets of every record up to the log end.
fn offsets(log: &Partition) -> Vec<u64> {
    rows(log).iter().map(|r| r.0).collect()
}

/// A crash after a compaction, then an open under `delete` (the policy changed meanwhile):
/// recovery must take the compacted segments' gaps as they are, neither refusing the open
/// nor cutting records, and later appends continue after them.
#[test]
fn a_crash_after_compaction_and_a_switch_to_delete_loses_no_record() {
    let fx = Fixture::new();
    let log = fx.open(compacted());
    fill(&log, 5, 4, 6);
    log.roll().unwrap();
    log.compact().unwrap();
    log.append(kv("k0", "after")).unwrap();
    let before = rows(&log);
    let end = log.log_end_offset();
    let crashed = Fixture {
        sim: fx.sim.process_crash(),
        clock: fx.clock.clone(),
    };
    drop(log);
    let log = crashed.open(switched_to_delete());
    assert_eq!(rows(&log), before);
    assert_eq!(log.append(kv("k1", "later")).unwrap(), end);
}

/// A follower of a compacted topic copies its leader's gaps. A crash before they were
/// flushed leaves them above the recovery point, where recovery re-validates every batch:
/// under the `delete` policy the log was switched to, the gaps must not look like damage
/// (recovery would cut the log at the first one and silently drop the records after it).
#[test]
fn a_crash_after_a_switch_to_delete_keeps_a_followers_unflushed_gaps() {
    let fx = Fixture::new();
    let log = fx.open(compacted());
    log.append_as_follower(&batch_at(0, &["a", "b"])).unwrap();
    log.append_as_follower(&batch_at(5, &["c"])).unwrap();
    log.append_as_follower(&batch_at(9, &["d", "e"])).unwrap();
    let crashed = Fixture {
        sim: fx.sim.process_crash(),
        clock: fx.clock.clone(),
    };
    drop(log);
    let log = crashed.open(switched_to_delete());
    assert_eq!(offsets(&log), [0, 1, 5, 9, 10]);
    assert_eq!(log.log_end_offset(), 11);
}

/// A replica of a topic that compacted keeps copying its leader's gaps after the policy
/// becomes `delete`: its log may hold gaps anyway. A log that never compacted still needs
/// each batch to start at its log end.
#[test]
fn a_follower_switched_to_delete_still_copies_its_leaders_gaps() {
    let fx = Fixture::new();
    let log = fx.open(compacted());
    log.append_as_follower(&batch_at(0, &["a"])).unwrap();
    log.close().unwrap();
    let log = fx.open(switched_to_delete());
    let mut input = batch_at(3, &["b"]);
    input.extend(batch_at(7, &["c", "d"]));
    assert_eq!(log.append_as_follower(&input).unwrap(), 3..9);
    assert_eq!(offsets(&log), [0, 3, 7, 8]);

    let plain = Fixture::new();
    let log = plain.open(switched_to_delete());
    log.append_as_follower(&batch_at(0, &["a"])).unwrap();
    assert!(matches!(
        log.append_as_follower(&batch_at(3, &["b"])),
        Err(Error::UnexpectedAppendOffset { log_end: 1, .. })
    ));
}

/// A log compacted by a version that kept no `.offset-gaps` marker is known by its
/// `cleaner-offset.checkpoint`: it opens under `delete` with its gaps, and gets the marker.
#[test]
fn a_log_compacted_before_the_gap_marker_existed_opens_under_delete() {
    let fx = Fixture::new();
    let log = fx.open(compacted());
    fill(&log, 5, 4, 6);
    log.roll().unwrap();
    log.compact().unwrap();
    let before = rows(&log);
    log.close().unwrap();
    let marker = std::path::Path::new(DIR).join(".offset-gaps");
    assert!(fx.sim.exists(&marker));
    fx.sim.remove_file(&marker).unwrap();

    let log = fx.open(switched_to_delete());
    assert_eq!(rows(&log), before);
    assert!(fx.sim.exists(&marker));
}

/// Kafka's `LogCleanerManager.cleanableOffsets` compares `segment.largestTimestamp` (the
/// largest record timestamp, or the file's mtime when the segment holds none) with
/// `now - min.compaction.lag.ms`. A segment written just now whose records carry no
/// timestamp (-1, which producers may send) is therefore still too new to clean (the
/// cleaner read the raw max timestamp, -1, and compacted such a segment at once).
#[test]
fn min_compaction_lag_holds_back_segments_whose_records_have_no_timestamp() {
    let f = Fixture::new();
    let log = f.open(compacted().min_compaction_lag_ms(60_000));
    for i in 0..6 {
        log.append(kv(&format!("k{}", i % 2), &format!("v{i}")).with_timestamp(-1))
            .unwrap();
    }
    log.roll().unwrap();
    log.append(kv("z", "v")).unwrap();
    // The segment was written at 1_000_000: its largest timestamp (Kafka's mtime fallback,
    // streamlog's `Segment::largest_timestamp`) is within the lag.
    assert_eq!(log.segments()[0].largest_timestamp(), 1_000_000);

    let stats = log.compact().unwrap();
    let offsets: Vec<u64> = log
        .read_to_log_end(0)
        .unwrap()
        .map(|r| r.unwrap().offset())
        .collect();
    assert_eq!(
        offsets,
        [0, 1, 2, 3, 4, 5, 6],
        "records younger than min.compaction.lag.ms were compacted ({stats:?})"
    );
    assert_eq!(
        stats.end_offset, 0,
        "the pass must not advance past the too-new segment"
    );
}

/// Kafka's `MemoryRecords.filterTo`: a batch rewritten without setting a new horizon keeps
/// the one it has (`deleteHorizonMs = batch.deleteHorizonMs().orElse(NO_TIMESTAMP)`), even
/// when the tombstones that earned it were dropped.
#[test]
fn a_rewritten_batch_keeps_its_delete_horizon_as_kafka_does() {
    let records = [
        Record::tombstone(b"gone".to_vec()).with_timestamp(10),
        Record::new(b"v".to_vec())
            .with_key(b"kept".to_vec())
            .with_timestamp(20),
        Record::new(b"w".to_vec())
            .with_key(b"also".to_vec())
            .with_timestamp(30),
    ];
    let mut original = Vec::new();
    encode_batch(&records, Compression::None, 0, &mut original).unwrap();
    let options = streamlog::record::FilterOptions {
        retain_empty: false,
        new_delete_horizon_ms: 1_000,
    };

    // First clean: everything kept, the tombstone stamps the horizon.
    let mut first = Vec::new();
    let outcome = streamlog::record::filter_batch(
        &streamlog::record::RecordBatch::parse(&original).unwrap(),
        &options,
        |_| true,
        &mut first,
    )
    .unwrap();
    assert_eq!(
        outcome,
        streamlog::record::FilterOutcome::Rewritten { kept: 3 }
    );
    assert_eq!(
        streamlog::record::RecordBatch::parse(&first)
            .unwrap()
            .header()
            .delete_horizon_ms(),
        Some(1_000)
    );

    // Second clean, past the horizon: the tombstone goes, the other records stay.
    let mut second = Vec::new();
    let later = streamlog::record::FilterOptions {
        new_delete_horizon_ms: 5_000,
        ..options
    };
    let batch = streamlog::record::RecordBatch::parse(&first).unwrap();
    let outcome =
        streamlog::record::filter_batch(&batch, &later, |r| r.value().is_some(), &mut second)
            .unwrap();
    assert_eq!(
        outcome,
        streamlog::record::FilterOutcome::Rewritten { kept: 2 }
    );
    let rewritten = streamlog::record::RecordBatch::parse(&second).unwrap();
    rewritten.ensure_valid().unwrap();
    let header = rewritten.header();
    assert_eq!(
        (header.has_delete_horizon(), header.base_timestamp),
        (true, 1_000),
        "the batch's delete horizon was dropped (attributes {:#06x})",
        header.attributes
    );
    // The records keep their own timestamps either way.
    let section = rewritten.records_bytes().unwrap();
    let timestamps: Vec<i64> = streamlog::record::RecordIter::new(header, &section)
        .map(|r| r.unwrap().timestamp())
        .collect();
    assert_eq!(timestamps, [20, 30]);
}
