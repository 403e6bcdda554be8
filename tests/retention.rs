//! Retention through the public API: Kafka's retention behaviours (`UnifiedLogTest`, see
//! `KAFKA-TESTS-STORAGE.md` §7), asynchronous `.deleted` files, readers racing deletion,
//! a model-based property test, and crashes in the middle of a deletion.
//!
//! Time only moves through a `ManualClock`; nothing sleeps.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::tap::{DiskOp, Hook, Tap};
use proptest::prelude::*;
use streamlog::{
    CleanupPolicy, Clock, Env, Error, LogConfig, ManualClock, Partition, Record, SimStorage,
    Storage,
};

const NOW_MS: i64 = 1_700_000_000_000;

/// Small indexes keep real and simulated files cheap.
fn base() -> LogConfig {
    LogConfig::default().segment_index_bytes(4096)
}

fn env_with(storage: Arc<dyn Storage>, clock: &ManualClock) -> Env {
    Env {
        storage,
        clock: Arc::new(clock.clone()),
    }
}

/// A log in a temporary directory on the real file system, with a manual clock.
struct Fixture {
    dir: tempfile::TempDir,
    clock: ManualClock,
    log: Partition,
}

impl Fixture {
    fn open(config: LogConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(NOW_MS);
        let log =
            Partition::open_with_env(dir.path(), config, Env::with_clock(Arc::new(clock.clone())))
                .unwrap();
        Fixture { dir, clock, log }
    }

    fn reopen(self, config: LogConfig) -> Self {
        let Fixture { dir, clock, log } = self;
        log.close().unwrap();
        let log =
            Partition::open_with_env(dir.path(), config, Env::with_clock(Arc::new(clock.clone())))
                .unwrap();
        Fixture { dir, clock, log }
    }

    fn bases(&self) -> Vec<u64> {
        bases(&self.log)
    }

    fn files(&self) -> BTreeSet<String> {
        std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }
}

fn bases(log: &Partition) -> Vec<u64> {
    log.segments().iter().map(|s| s.base_offset()).collect()
}

fn offsets(log: &Partition, from: u64) -> Vec<u64> {
    log.read_to_log_end(from)
        .unwrap()
        .map(|r| r.unwrap().offset())
        .collect()
}

/// One single-record batch; with the same timestamp and value length they all have the
/// same encoded size.
fn record(timestamp: i64) -> Record {
    Record::new(b"test".to_vec()).with_timestamp(timestamp)
}

/// The encoded size of `record` as a batch of its own.
fn batch_size(record: Record) -> u64 {
    let f = Fixture::open(base());
    f.log.append(record).unwrap();
    f.log.size_bytes()
}

/// The encoded size of one `record(..)` batch.
fn record_size() -> u64 {
    batch_size(record(NOW_MS))
}

/// `n` single-record appends; with `segment_bytes = 5 × record_size()` that is a segment
/// per 5 records.
fn append_n(log: &Partition, n: u64, timestamp: i64) {
    for _ in 0..n {
        log.append(record(timestamp)).unwrap();
    }
}

fn five_per_segment() -> LogConfig {
    base().segment_bytes(record_size() * 5)
}

// ─── Time ───────────────────────────────────────────────────────────────────────────────

#[test]
fn expired_segments_are_deleted_leaving_one_new_empty_segment_at_the_log_end() {
    let f = Fixture::open(five_per_segment().retention_ms(10_000));
    append_n(&f.log, 15, 10);
    assert_eq!(f.bases(), [0, 5, 10]);
    let outcome = f.log.enforce_retention().unwrap();
    assert_eq!(
        (outcome.time_segments, outcome.time_bytes),
        (3, 15 * record_size())
    );
    assert_eq!(
        (outcome.segments_deleted(), outcome.log_start_offset),
        (3, 15)
    );
    assert_eq!(
        f.bases(),
        [15],
        "the active segment was rolled, then deleted"
    );
    assert!(f.log.segments()[0].is_empty());
    assert_eq!((f.log.log_start_offset(), f.log.log_end_offset()), (15, 15));
    assert_eq!(f.log.append(record(NOW_MS)).unwrap(), 15);
    let f = f.reopen(five_per_segment().retention_ms(10_000));
    assert_eq!((f.log.log_start_offset(), f.log.log_end_offset()), (15, 16));
    assert_eq!(offsets(&f.log, 15), [15]);
}

#[test]
fn segments_that_have_not_expired_are_all_kept() {
    let f = Fixture::open(five_per_segment().retention_ms(10_000_000));
    append_n(&f.log, 15, NOW_MS);
    let outcome = f.log.enforce_retention().unwrap();
    assert_eq!(outcome.segments_deleted(), 0);
    assert_eq!(f.bases(), [0, 5, 10]);
    assert_eq!(offsets(&f.log, 0), (0..15).collect::<Vec<_>>());
}

#[test]
fn expiry_is_strictly_more_than_retention_ms_after_the_newest_record() {
    let f = Fixture::open(five_per_segment().retention_ms(1_000));
    append_n(&f.log, 5, NOW_MS);
    append_n(&f.log, 5, NOW_MS + 500);
    f.clock.advance_ms(1_000);
    assert_eq!(f.log.enforce_retention().unwrap().segments_deleted(), 0);
    f.clock.advance_ms(1);
    assert_eq!(f.log.enforce_retention().unwrap().time_segments, 1);
    assert_eq!(f.bases(), [5]);
    f.clock.advance_ms(500);
    assert_eq!(f.log.enforce_retention().unwrap().time_segments, 1);
    assert_eq!((f.bases(), f.log.log_start_offset()), (vec![10], 10));
}

#[test]
fn garbage_collecting_segments_never_moves_the_log_end() {
    for n in [0, 1, 25] {
        let f = Fixture::open(five_per_segment().retention_ms(10_000));
        append_n(&f.log, n, 10);
        let first = f.log.enforce_retention().unwrap();
        assert_eq!(
            first.segments_deleted() as u64,
            n.div_ceil(5),
            "{n} records"
        );
        assert_eq!(f.log.log_end_offset(), n);
        assert_eq!(f.log.segment_count(), 1);
        assert_eq!(f.log.enforce_retention().unwrap().segments_deleted(), 0);
        assert_eq!(f.log.append(record(NOW_MS)).unwrap(), n);
    }
}

#[test]
fn an_older_segment_that_must_stay_blocks_newer_expired_ones() {
    // testRetentionIdempotency, through the public API: the unexpired first segment keeps
    // the expired second one until the log start offset passes it.
    let config = base()
        .retention_ms(900)
        .retention_bytes(-1)
        .file_delete_delay_ms(0);
    let f = Fixture::open(config);
    f.log.append(record(NOW_MS + 100)).unwrap();
    f.log.roll().unwrap();
    f.log.append(record(NOW_MS)).unwrap();
    f.log.roll().unwrap();
    f.log.append(record(NOW_MS + 100)).unwrap();
    f.clock.advance_ms(901);
    assert_eq!(f.log.enforce_retention().unwrap().segments_deleted(), 0);
    assert_eq!(f.log.delete_records_before(1).unwrap(), 1);
    assert_eq!(f.bases(), [1, 2]);
    let outcome = f.log.enforce_retention().unwrap();
    assert_eq!((outcome.time_segments, outcome.log_start_offset), (1, 2));
    assert_eq!(f.log.enforce_retention().unwrap().segments_deleted(), 0);
    assert_eq!(f.bases(), [2]);
}

// ─── Size ───────────────────────────────────────────────────────────────────────────────

#[test]
fn size_retention_deletes_whole_oldest_segments_while_the_rest_stays_above_the_limit() {
    let size = record_size();
    let f = Fixture::open(five_per_segment().retention_bytes((size * 10) as i64));
    append_n(&f.log, 15, NOW_MS);
    let outcome = f.log.enforce_retention().unwrap();
    assert_eq!((outcome.size_segments, outcome.size_bytes), (1, 5 * size));
    assert_eq!(f.bases(), [5, 10]);
    assert_eq!(f.log.log_start_offset(), 5);
    assert_eq!(f.log.enforce_retention().unwrap().segments_deleted(), 0);

    let f = Fixture::open(five_per_segment().retention_bytes((size * 15) as i64));
    append_n(&f.log, 15, NOW_MS);
    assert_eq!(f.log.enforce_retention().unwrap().segments_deleted(), 0);
    assert_eq!(f.bases(), [0, 5, 10]);
}

#[test]
fn size_retention_can_delete_the_active_segment_too() {
    let f = Fixture::open(five_per_segment().retention_bytes(0));
    append_n(&f.log, 12, NOW_MS);
    let outcome = f.log.enforce_retention().unwrap();
    assert_eq!(outcome.size_segments, 3);
    assert_eq!((f.bases(), f.log.log_end_offset()), (vec![12], 12));
}

// ─── Cleanup policy ─────────────────────────────────────────────────────────────────────

#[test]
fn compact_only_logs_are_never_deleted_by_time_or_size() {
    let keyed = |i: u8| record(10).with_key(vec![i]);
    let config = base()
        .segment_bytes(batch_size(keyed(0)) * 5)
        .retention_ms(10_000)
        .retention_bytes(0)
        .cleanup_policy(CleanupPolicy::Compact);
    let f = Fixture::open(config);
    for i in 0..15 {
        f.log.append(keyed(i)).unwrap();
    }
    assert_eq!(f.bases(), [0, 5, 10]);
    assert_eq!(f.log.enforce_retention().unwrap().segments_deleted(), 0);
    assert_eq!(f.log.segment_count(), 3);
    // The log start offset rule applies whatever the policy: 1, 6 and 15 leave 3, 2, 1.
    for (start, left) in [(1, 3), (6, 2), (15, 1)] {
        f.log.delete_records_before(start).unwrap();
        assert_eq!(f.log.segment_count(), left, "log start {start}");
    }
    assert_eq!(f.log.log_end_offset(), 15);
}

#[test]
fn compact_and_delete_logs_are_deleted_by_time() {
    let config = five_per_segment()
        .retention_ms(10_000)
        .cleanup_policy(CleanupPolicy::CompactAndDelete);
    let f = Fixture::open(config);
    for i in 0..15u8 {
        f.log.append(record(10).with_key(vec![i])).unwrap();
    }
    assert!(f.log.segment_count() > 1);
    assert!(f.log.enforce_retention().unwrap().time_segments > 1);
    assert_eq!((f.log.segment_count(), f.log.log_start_offset()), (1, 15));
}

// ─── High watermark and log start ───────────────────────────────────────────────────────

#[test]
fn nothing_at_or_above_the_high_watermark_is_deleted() {
    let config = base()
        .segment_bytes(512)
        .retention_ms(999)
        .auto_high_watermark(false);
    let f = Fixture::open(config);
    for i in 0..100 {
        f.log
            .append(Record::new(format!("test{i}").into_bytes()).with_timestamp(NOW_MS - 1000))
            .unwrap();
    }
    assert!(f.log.segment_count() > 5);
    assert_eq!((f.log.high_watermark(), f.log.log_end_offset()), (0, 100));
    assert_eq!(f.log.enforce_retention().unwrap().segments_deleted(), 0);
    for hw in 0..=100 {
        assert_eq!(f.log.set_high_watermark(hw), hw);
        f.log.enforce_retention().unwrap();
        let start = f.log.log_start_offset();
        assert!(start <= hw, "log start {start} passed HW {hw}");
        let segments = f.log.segments();
        assert!(segments[0].base_offset() <= hw && segments[0].base_offset() >= start);
        for later in &segments[1..] {
            assert!(later.base_offset() > hw, "HW {hw}: {:?}", bases(&f.log));
        }
        assert_eq!(f.log.log_end_offset(), 100);
    }
    assert_eq!((f.bases(), f.log.log_start_offset()), (vec![100], 100));
}

#[test]
fn the_segment_holding_the_log_start_offset_stays() {
    let f = Fixture::open(five_per_segment().retention_ms(-1).retention_bytes(-1));
    append_n(&f.log, 15, NOW_MS);
    assert_eq!(f.log.delete_records_before(7).unwrap(), 7);
    assert_eq!(f.bases(), [5, 10]);
    let outcome = f.log.enforce_retention().unwrap();
    assert_eq!(
        (outcome.segments_deleted(), outcome.log_start_offset),
        (0, 7)
    );
    assert_eq!(offsets(&f.log, 7), (7..15).collect::<Vec<_>>());
}

// ─── Asynchronous file deletion ─────────────────────────────────────────────────────────

fn deleted_name(path: &Path) -> String {
    format!("{}.deleted", path.file_name().unwrap().to_string_lossy())
}

#[test]
fn deleted_segments_are_renamed_then_removed_after_the_file_delete_delay() {
    let config = five_per_segment()
        .retention_ms(999)
        .file_delete_delay_ms(1_000);
    let f = Fixture::open(config);
    append_n(&f.log, 100, NOW_MS - 1_000);
    let segments = f.log.segments();
    let originals: Vec<PathBuf> = segments.iter().flat_map(|s| s.paths()).collect();
    assert_eq!(originals.len(), 60);
    assert_eq!(f.log.enforce_retention().unwrap().time_segments, 20);
    assert_eq!(
        f.log.segment_count(),
        1,
        "only the new empty segment remains"
    );
    let files = f.files();
    for path in &originals {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(!files.contains(&name), "{name} still there");
        assert!(
            files.contains(&deleted_name(path)),
            "{name}.deleted missing"
        );
    }
    f.clock.advance_ms(999);
    f.log.enforce_retention().unwrap();
    assert_eq!(
        f.files().iter().filter(|n| n.ends_with(".deleted")).count(),
        60
    );
    f.clock.advance_ms(1);
    assert_eq!(f.log.enforce_retention().unwrap().segments_deleted(), 0);
    assert!(
        f.files().iter().all(|n| !n.ends_with(".deleted")),
        "{:?}",
        f.files()
    );
}

#[test]
fn delete_records_before_renames_files_and_close_removes_them() {
    let f = Fixture::open(five_per_segment().file_delete_delay_ms(60_000));
    append_n(&f.log, 15, NOW_MS);
    let first = f.log.segments()[0].paths();
    f.log.delete_records_before(10).unwrap();
    let files = f.files();
    for path in &first {
        assert!(files.contains(&deleted_name(path)), "{files:?}");
    }
    let dir = f.dir.path().to_path_buf();
    f.log.close().unwrap();
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".deleted"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn leftover_deleted_files_are_removed_when_the_log_opens() {
    let f = Fixture::open(five_per_segment());
    append_n(&f.log, 7, NOW_MS);
    let dir = f.dir.path().to_path_buf();
    for name in [
        "00000000000000000000.log.deleted",
        "00000000000000000000.index.deleted",
        "00000000000000000000.timeindex.deleted",
        "00000000000000000099.log.deleted",
    ] {
        std::fs::write(dir.join(name), b"junk").unwrap();
    }
    let f = f.reopen(five_per_segment());
    assert!(
        f.files().iter().all(|n| !n.ends_with(".deleted")),
        "{:?}",
        f.files()
    );
    assert_eq!(offsets(&f.log, 0), (0..7).collect::<Vec<_>>());
}

// ─── Readers racing deletion ────────────────────────────────────────────────────────────

#[test]
fn a_reader_inside_a_deleted_segment_finishes_it_then_reports_out_of_range() {
    // Delay 0: the files are unlinked at once; the reader's open handle keeps working.
    // Batches of 10 KB: the reader's first 16 KiB chunk cannot hold the whole segment.
    let big = || Record::new(vec![7; 10_000]).with_timestamp(10);
    let config = base()
        .segment_bytes(batch_size(big()) * 5)
        .retention_ms(10_000)
        .file_delete_delay_ms(0);
    let f = Fixture::open(config);
    for _ in 0..15 {
        f.log.append(big()).unwrap();
    }
    assert_eq!(f.bases(), [0, 5, 10]);
    let mut reader = f.log.read_from(0).unwrap();
    let not_started = f.log.read_from(6).unwrap();
    assert_eq!(reader.next().unwrap().unwrap().offset(), 0);
    assert_eq!(f.log.enforce_retention().unwrap().time_segments, 3);
    assert!(f.files().iter().all(|n| !n.ends_with(".deleted")));
    let rest: Vec<u64> = reader
        .by_ref()
        .take(4)
        .map(|r| r.unwrap().offset())
        .collect();
    assert_eq!(rest, [1, 2, 3, 4], "the held segment reads to its end");
    for (mut records, expected) in [(reader, 5), (not_started, 6)] {
        match records.next() {
            Some(Err(Error::OffsetOutOfRange {
                requested,
                log_start,
                ..
            })) => assert_eq!((requested, log_start), (expected, 15)),
            other => panic!("expected OffsetOutOfRange at {expected}, got {other:?}"),
        }
    }
}

#[test]
fn readers_on_other_threads_never_see_corruption_while_retention_runs() {
    let config = base()
        .segment_bytes(record_size() * 3)
        .retention_bytes((record_size() * 9) as i64)
        .file_delete_delay_ms(0);
    let f = Fixture::open(config);
    let log = Arc::new(f.log);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (log, stop) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::Acquire) {
                let Ok(records) = log.read_from(log.log_start_offset()) else {
                    continue;
                };
                let mut expected = None;
                for record in records {
                    match record {
                        Ok(r) => {
                            assert!(expected.is_none_or(|e| e == r.offset()));
                            expected = Some(r.offset() + 1);
                        }
                        Err(Error::OffsetOutOfRange { .. }) => break,
                        Err(e) => panic!("reader saw {e}"),
                    }
                }
                reads += 1;
            }
            reads
        })
    };
    for _ in 0..300 {
        log.append(record(NOW_MS)).unwrap();
        log.enforce_retention().unwrap();
    }
    stop.store(true, Ordering::Release);
    assert!(reader.join().unwrap() > 0);
    assert_eq!(log.log_end_offset(), 300);
    assert!(log.size_bytes() <= record_size() * 12);
}

// ─── Model-based property test ──────────────────────────────────────────────────────────

#[derive(Debug, Clone)]
enum Op {
    /// Append `n` records, each `age_ms` older than the clock.
    Append {
        n: u64,
        age_ms: i64,
    },
    AdvanceMs(i64),
    /// Move the high watermark to this share (per mille) of the way to the log end.
    SetHw(u64),
    /// `delete_records_before` this share (per mille) of the way from log start to HW.
    DeleteRecords(u64),
    Retention {
        ms: i64,
        bytes: i64,
    },
    Enforce,
}

fn retention() -> impl Strategy<Value = Op> {
    // Times on a 250 ms grid, so that ages often equal retention.ms exactly.
    let ms = prop_oneof![1 => Just(-1i64), 4 => (0..16i64).prop_map(|k| k * 250)];
    let bytes = prop_oneof![1 => Just(-1i64), 3 => 0..2_000i64];
    (ms, bytes).prop_map(|(ms, bytes)| Op::Retention { ms, bytes })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (1..8u64, 0..20i64).prop_map(|(n, k)| Op::Append { n, age_ms: k * 250 }),
        2 => (0..12i64).prop_map(|k| Op::AdvanceMs(k * 250)),
        4 => prop_oneof![Just(1000u64), 0..=1000u64].prop_map(Op::SetHw),
        1 => (0..=1000u64).prop_map(Op::DeleteRecords),
        1 => retention(),
        4 => Just(Op::Enforce),
    ]
}

/// A retention setting first, then the operations.
fn ops() -> impl Strategy<Value = Vec<Op>> {
    (retention(), prop::collection::vec(op(), 1..80)).prop_map(|(first, mut ops)| {
        ops.insert(0, first);
        ops
    })
}

/// `(base, upper bound, size)` of each segment.
fn layout(log: &Partition) -> Vec<(u64, u64, u64)> {
    let segments = log.segments();
    let ends = segments.iter().skip(1).map(|s| s.base_offset());
    let ends = ends.chain([log.log_end_offset()]);
    segments
        .iter()
        .zip(ends)
        .map(|(s, end)| (s.base_offset(), end, s.size_bytes()))
        .collect()
}

/// What the log must hold: every record ever appended (offset = index, with its
/// timestamp), the log start and the high watermark.
struct Model {
    timestamps: Vec<i64>,
    log_start: u64,
    hw: u64,
}

impl Model {
    /// The segments Kafka's rules keep, from `(base, upper bound, size)` of the segments
    /// before the pass; returns the kept bases and the new log start offset.
    fn expected(
        &self,
        segments: &[(u64, u64, u64)],
        config: &LogConfig,
        now_ms: i64,
    ) -> (Vec<u64>, u64) {
        let leo = self.timestamps.len() as u64;
        let mut kept: Vec<(u64, u64, u64)> = segments.to_vec();
        let max_ts = |(base, end, _): (u64, u64, u64)| {
            self.timestamps[base as usize..end as usize]
                .iter()
                .max()
                .copied()
        };
        let log_start = self.log_start;
        let total: u64 = segments.iter().map(|s| s.2).sum();
        let mut excess = u64::try_from(config.retention_bytes).map(|r| total.saturating_sub(r));
        let rules: [&mut dyn FnMut((u64, u64, u64)) -> bool; 3] = [
            &mut |(_, end, _)| end <= log_start,
            &mut |(_, _, size)| match &mut excess {
                Ok(excess) if *excess >= size => {
                    *excess -= size;
                    true
                }
                _ => false,
            },
            &mut |segment| {
                config.retention_ms >= 0
                    && max_ts(segment).is_some_and(|ts| now_ms - ts > config.retention_ms)
            },
        ];
        for rule in rules {
            while let Some(&first) = kept.first() {
                let (_, end, size) = first;
                let last_and_empty = kept.len() == 1 && size == 0;
                if last_and_empty || end > self.hw || !rule(first) {
                    break;
                }
                kept.remove(0);
                if kept.is_empty() {
                    kept.push((leo, leo, 0));
                }
            }
        }
        let start = log_start.max(kept[0].0);
        (kept.iter().map(|s| s.0).collect(), start)
    }
}

fn model_config(ms: i64, bytes: i64) -> LogConfig {
    base()
        .segment_bytes(300)
        .auto_high_watermark(false)
        .retention_ms(ms)
        .retention_bytes(bytes)
        .file_delete_delay_ms(500)
}

fn run_model(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let storage = SimStorage::default();
    let clock = ManualClock::new(NOW_MS);
    let dir = Path::new("/sim/t-0");
    let open = |config: &LogConfig| {
        Partition::open_with_env(
            dir,
            config.clone(),
            env_with(Arc::new(storage.clone()), &clock),
        )
        .unwrap()
    };
    let mut config = model_config(-1, -1);
    let mut log = open(&config);
    let mut model = Model {
        timestamps: Vec::new(),
        log_start: 0,
        hw: 0,
    };
    for op in ops {
        match op {
            Op::Append { n, age_ms } => {
                let ts = clock.now_ms() - age_ms;
                let records: Vec<Record> = (0..n).map(|_| record(ts)).collect();
                log.append_batch(records).unwrap();
                model.timestamps.extend((0..n).map(|_| ts));
            }
            Op::AdvanceMs(ms) => clock.advance_ms(ms),
            Op::SetHw(share) => {
                let leo = model.timestamps.len() as u64;
                let hw = model.log_start + (leo - model.log_start) * share / 1000;
                model.hw = log.set_high_watermark(hw);
                prop_assert_eq!(model.hw, hw);
            }
            Op::DeleteRecords(share) => {
                // The log start rule alone, right away.
                let at = model.log_start + (model.hw - model.log_start) * share / 1000;
                let before = layout(&log);
                model.log_start = model.log_start.max(at);
                let only_log_start = model_config(-1, -1);
                let (bases_kept, _) = model.expected(&before, &only_log_start, clock.now_ms());
                prop_assert_eq!(log.delete_records_before(at).unwrap(), model.log_start);
                prop_assert_eq!(bases(&log), bases_kept, "before: {:?}", before);
            }
            Op::Retention { ms, bytes } => config = model_config(ms, bytes),
            Op::Enforce => {
                let before = layout(&log);
                let (bases_kept, start) = model.expected(&before, &config, clock.now_ms());
                let leo = log.log_end_offset();
                log.enforce_retention().unwrap();
                prop_assert_eq!(bases(&log), bases_kept, "before: {:?}", before);
                prop_assert_eq!(log.log_start_offset(), start);
                prop_assert_eq!(log.log_end_offset(), leo);
                prop_assert!(start <= model.hw.max(model.log_start));
                model.log_start = start;
            }
        }
        // The same state after a clean reopen (with the retention settings to use next).
        drop(log);
        log = open(&config);
        let leo = model.timestamps.len() as u64;
        prop_assert_eq!(log.log_end_offset(), leo);
        prop_assert_eq!(log.log_start_offset(), model.log_start);
        prop_assert_eq!(log.high_watermark(), model.hw);
        let read: Vec<(u64, i64)> = log
            .read_to_log_end(model.log_start)
            .unwrap()
            .map(|r| r.map(|r| (r.offset(), r.timestamp())).unwrap())
            .collect();
        let want: Vec<(u64, i64)> = (model.log_start..leo)
            .map(|o| (o, model.timestamps[o as usize]))
            .collect();
        prop_assert_eq!(read, want);
        let deleted = storage.list_dir(dir).unwrap();
        prop_assert!(
            !deleted
                .iter()
                .any(|p| p.to_string_lossy().ends_with(".deleted"))
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("STREAMLOG_MODEL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    #[test]
    fn retention_matches_a_model_of_kafkas_rules(ops in ops()) {
        run_model(ops)?;
    }
}

// ─── Crashes during deletion ────────────────────────────────────────────────────────────

/// While armed, counts the operations that change the disk and fails number `fail_at`
/// instead of running it, and takes a snapshot of the disk (after a power loss or a process
/// crash) after every other one. Region flushes are not counted: index files are rebuilt
/// when in doubt anyway.
#[derive(Debug, Default)]
struct Crashes {
    armed: AtomicBool,
    ops: AtomicU64,
    fail_at: Option<u64>,
    seed: u64,
    snaps: Mutex<Vec<SimStorage>>,
}

impl Crashes {
    fn counts(&self, op: DiskOp) -> bool {
        self.armed.load(Ordering::Acquire) && !matches!(op, DiskOp::Flush | DiskOp::Unmap)
    }
}

impl Hook for Crashes {
    fn before(&self, op: DiskOp, path: &Path) -> streamlog::Result<()> {
        if self.counts(op) {
            let n = self.ops.fetch_add(1, Ordering::AcqRel);
            if self.fail_at == Some(n) {
                return Err(Error::io(path, std::io::Error::other("injected failure")));
            }
        }
        Ok(())
    }

    fn after(&self, op: DiskOp, disk: &SimStorage) {
        if self.counts(op) {
            let n = self.ops.load(Ordering::Acquire) - 1;
            let snap = if (n + self.seed).is_multiple_of(2) {
                disk.process_crash()
            } else {
                disk.power_loss(self.seed.wrapping_mul(31).wrapping_add(n))
            };
            self.snaps.lock().unwrap().push(snap);
        }
    }
}

fn crash_config() -> LogConfig {
    let size = record_size();
    base()
        .segment_bytes(size * 5)
        .retention_ms(60_000)
        .retention_bytes((size * 17) as i64)
        .file_delete_delay_ms(0)
}

const CRASH_DIR: &str = "/sim/c-0";

/// Appends 30 records in segments of 5, the first 15 two minutes old, and flushes; then,
/// with `tap` armed, deletes records before 5 and runs one retention pass, which deletes
/// a segment by size ([5, 10)) and one by time ([10, 15)). Returns the log, left open.
fn crash_workload(tap: &Tap<Crashes>, clock: &ManualClock) -> (Partition, streamlog::Result<u64>) {
    let env = env_with(Arc::new(tap.clone()), clock);
    let log = Partition::open_with_env(CRASH_DIR, crash_config(), env).unwrap();
    append_n(&log, 15, clock.now_ms() - 120_000);
    append_n(&log, 15, clock.now_ms());
    log.flush().unwrap();
    tap.hook.armed.store(true, Ordering::Release);
    let result = log
        .delete_records_before(5)
        .and_then(|_| log.enforce_retention())
        .map(|outcome| outcome.log_start_offset);
    tap.hook.armed.store(false, Ordering::Release);
    (log, result)
}

/// Whether the log on `disk` opens to the records from one of the states the pass goes
/// through (log start 0, 5, 10 or 15, always up to 30), without `.deleted` files, and
/// whether the next pass then completes the deletion.
fn check_reopened(disk: SimStorage, ctx: &str) {
    let dir = Path::new(CRASH_DIR);
    let clock = ManualClock::new(NOW_MS);
    let env = env_with(Arc::new(disk.clone()), &clock);
    let log = Partition::open_with_env(dir, crash_config(), env)
        .unwrap_or_else(|e| panic!("{ctx}: reopen failed: {e}"));
    let start = log.log_start_offset();
    assert!([0, 5, 10, 15].contains(&start), "{ctx}: log start {start}");
    assert_eq!(log.log_end_offset(), 30, "{ctx}");
    let read: Vec<u64> = log
        .read_to_log_end(start)
        .unwrap()
        .map(|r| r.unwrap_or_else(|e| panic!("{ctx}: {e}")).offset())
        .collect();
    assert_eq!(read, (start..30).collect::<Vec<_>>(), "{ctx}");
    let files = disk.list_dir(dir).unwrap();
    let leftover = files
        .iter()
        .any(|p| p.to_string_lossy().ends_with(".deleted"));
    assert!(!leftover, "{ctx}: {files:?}");
    // Size (17 records' worth kept) and time take the log to 15 whatever was done before.
    log.enforce_retention().unwrap();
    assert_eq!(log.log_start_offset(), 15, "{ctx}");
    assert_eq!(offsets(&log, 15), (15..30).collect::<Vec<_>>(), "{ctx}");
}

#[test]
fn a_crash_or_failure_during_deletion_leaves_the_log_before_or_after_it() {
    let mut points = 0;
    for seed in 0..4u64 {
        // A clean run: how many operations the pass takes; a snapshot after each one.
        let clock = ManualClock::new(NOW_MS);
        let tap = Tap::new(
            SimStorage::default(),
            Crashes {
                seed,
                ..Crashes::default()
            },
        );
        let (log, result) = crash_workload(&tap, &clock);
        assert_eq!(result.unwrap(), 15);
        assert_eq!(log.segment_count(), 3);
        let ops = tap.hook.ops.load(Ordering::Acquire);
        let snaps = std::mem::take(&mut *tap.hook.snaps.lock().unwrap());
        assert!(ops > 5 && snaps.len() as u64 == ops, "{ops} ops");
        for (i, disk) in snaps.into_iter().enumerate() {
            check_reopened(disk, &format!("seed {seed}, crash after op {i}"));
            points += 1;
        }
        // The same pass failing at each operation in turn: the error is reported, the
        // open log still reads a suffix, and after a crash the disk opens like above.
        for fail_at in 0..ops {
            let ctx = format!("seed {seed}, op {fail_at} fails");
            let clock = ManualClock::new(NOW_MS);
            let sim = SimStorage::default();
            let tap = Tap::new(
                sim.clone(),
                Crashes {
                    fail_at: Some(fail_at),
                    seed,
                    ..Crashes::default()
                },
            );
            let (log, result) = crash_workload(&tap, &clock);
            // Once `delete_records_before` has recorded its new start the deletion is done:
            // its clean-up failing (the epochs' trim, a segment's rename) is not reported,
            // and retention's pass that follows redoes it and completes.
            let completed = result.is_ok() && log.log_start_offset() == 15;
            assert!(
                result.is_err() || completed,
                "{ctx}: the failure was neither reported nor made good: {result:?}"
            );
            let start = log.log_start_offset();
            assert_eq!(
                offsets(&log, start),
                (start..30).collect::<Vec<_>>(),
                "{ctx}"
            );
            std::mem::forget(log); // crash: no close
            check_reopened(sim.process_crash(), &ctx);
            points += 1;
        }
    }
    assert!(points > 40, "{points} crash points");
}

/// Kafka's `LogSegment.largestTimestamp` falls back on the file's last-modified time when
/// a segment holds no record timestamp: a segment still being appended to is young, so a
/// segment created 61 s ago but last written 2 s ago stays under a 60 s retention, and
/// goes once its last write is older than that.
#[test]
fn a_segment_without_timestamps_is_kept_while_it_was_appended_to_within_retention_ms() {
    let fx = Fixture::open(base().retention_bytes(-1).retention_ms(60_000));
    let (clock, log) = (&fx.clock, &fx.log);
    log.append(Record::new(b"a".to_vec()).with_timestamp(-1))
        .unwrap();
    clock.advance_ms(59_000);
    log.append(Record::new(b"b".to_vec()).with_timestamp(-1))
        .unwrap();
    clock.advance_ms(2_000); // 61 s after the segment was created, 2 s after its last write
    let outcome = log.enforce_retention().unwrap();
    assert_eq!(
        (outcome.time_segments, log.log_start_offset()),
        (0, 0),
        "the segment was modified 2 s ago: Kafka keeps it"
    );
    assert_eq!(log.read_from(0).unwrap().count(), 2);
    clock.advance_ms(58_001);
    assert_eq!(log.enforce_retention().unwrap().time_segments, 1);
    assert_eq!(log.log_start_offset(), 2);
}
