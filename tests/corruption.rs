//! Damaged files: bytes flipped, files truncated, index files deleted or filled with garbage,
//! junk appended to `.log` files — after a clean close and after a crash. Reopening must
//! give either a log whose every record is exactly what was appended (fewer only when the
//! shutdown was unclean, and then only records at or past the recovery point), or a typed
//! error (`Error::Corrupt` naming a file in the directory). Never a panic, never wrong data.
//! Reads may find damage a clean open did not look for: they must end with
//! `Error::Corrupt`, never hand out a wrong record.
//!
//! Also the specific loader cases of Kafka's `LogLoaderTest` (section 6d of
//! KAFKA-TESTS-STORAGE.md): index rebuild, torn/garbage tail, stray and leftover files,
//! clean shutdown skipping recovery.

mod common;

use common::Rng;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use streamlog::{
    Clock, Compression, Env, Error, FlushPolicy, LogConfig, LogRecord, ManualClock, Partition,
    PowerLoss, Record, SimStorage, Storage,
};

const CLEAN_SHUTDOWN: &str = ".clean-shutdown";
const CHECKPOINT: &str = "log-state.checkpoint";

fn dir() -> PathBuf {
    PathBuf::from("data/orders-0")
}

fn config(compression: Compression) -> LogConfig {
    LogConfig::default()
        .segment_bytes(700)
        .segment_index_bytes(160)
        .index_interval_bytes(100)
        .compression(compression)
}

fn sim_env(sim: &SimStorage, clock: &ManualClock) -> Env {
    Env {
        storage: Arc::new(sim.clone()),
        clock: Arc::new(clock.clone()),
    }
}

/// `n` records with increasing timestamps, as the log must return them.
fn make_records(rng: &mut Rng, n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let mut r = Record::new(rng.blob(0, 40)).with_timestamp(10_000 + i as i64 * 3);
            if i % 3 != 0 {
                r = r.with_key(format!("key-{i}").into_bytes());
            }
            if i % 4 == 1 {
                r = r.with_header("h", Some(vec![i as u8]));
            }
            r
        })
        .collect()
}

/// Appends `records` in batches of 1-4.
fn append_all(log: &Partition, records: &[Record], rng: &mut Rng) {
    let mut i = 0;
    while i < records.len() {
        let n = (rng.range(1, 4) as usize).min(records.len() - i);
        let range = log
            .append_batch(records[i..i + n].to_vec())
            .expect("append");
        assert_eq!(range.start, i as u64);
        i += n;
        if rng.below(10) == 0 {
            log.flush().expect("flush");
        }
    }
}

fn same(got: &LogRecord, want: &Record) -> bool {
    got.key() == want.key()
        && got.value() == want.value()
        && Some(got.timestamp()) == want.timestamp()
        && got.owned_headers() == want.headers()
}

fn assert_same(got: &LogRecord, want: &Record, ctx: &str) {
    assert!(
        same(got, want),
        "{ctx}: WRONG DATA at offset {}: got {got:?} ({:?}), appended {want:?}",
        got.offset(),
        got.value()
    );
}

fn assert_corrupt_in_dir(err: &Error, dir: &Path, ctx: &str) {
    match err {
        Error::Corrupt { path, .. } => assert!(
            path.starts_with(dir),
            "{ctx}: Corrupt names {} outside {}",
            path.display(),
            dir.display()
        ),
        other => panic!("{ctx}: expected Error::Corrupt, got {other:?}"),
    }
    let message = err.to_string();
    assert_eq!(
        message.matches("corrupt data in").count(),
        1,
        "{ctx}: the message names its file once: {message}"
    );
}

/// What a read of the whole log found.
struct ReadOutcome {
    /// Offsets read, in order (each record checked against what was appended).
    offsets: Vec<u64>,
    /// The read ended with a corruption error.
    corrupt: bool,
}

/// Reads the whole log; every record must be exactly what was appended at its offset and
/// offsets must increase; the only error allowed is `Corrupt` (which ends the read).
fn read_all(log: &Partition, records: &[Record], dir: &Path, ctx: &str) -> ReadOutcome {
    let mut out = ReadOutcome {
        offsets: Vec::new(),
        corrupt: false,
    };
    let start = log.log_start_offset();
    let iter = match log.read_to_log_end(start) {
        Ok(iter) => iter,
        Err(e) => panic!("{ctx}: read_to_log_end({start}) failed: {e:?}"),
    };
    for item in iter {
        match item {
            Ok(r) => {
                let o = r.offset();
                assert!(
                    (o as usize) < records.len(),
                    "{ctx}: WRONG DATA: offset {o} was never appended ({} records)",
                    records.len()
                );
                if let Some(&prev) = out.offsets.last() {
                    assert!(o > prev, "{ctx}: offsets went from {prev} to {o}");
                }
                assert_same(&r, &records[o as usize], ctx);
                out.offsets.push(o);
            }
            Err(e) => {
                assert_corrupt_in_dir(&e, dir, ctx);
                out.corrupt = true;
                break;
            }
        }
    }
    // The borrowed path finds the same: the same records, then the same kind of error.
    let mut viewed = Vec::new();
    let result = log
        .read_to_log_end(start)
        .expect("read_to_log_end")
        .try_for_each_view(|r| {
            let o = r.offset() as usize;
            let want = records.get(o).map(|w| (w.key(), w.value()));
            assert_eq!(
                Some((r.key(), r.value())),
                want,
                "{ctx}: WRONG DATA from try_for_each_view at offset {o}"
            );
            viewed.push(r.offset());
            Ok::<(), Error>(())
        });
    assert_eq!(viewed, out.offsets, "{ctx}: try_for_each_view offsets");
    match result {
        Ok(()) => assert!(
            !out.corrupt,
            "{ctx}: try_for_each_view missed the corruption"
        ),
        Err(e) => {
            assert!(out.corrupt, "{ctx}: try_for_each_view failed alone: {e}");
            assert_corrupt_in_dir(&e, dir, ctx);
        }
    }
    out
}

/// The segment files (and checkpoint) in the directory.
fn files(storage: &dyn Storage, dir: &Path) -> Vec<PathBuf> {
    storage
        .list_dir(dir)
        .expect("list_dir")
        .into_iter()
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.ends_with(".log")
                || name.ends_with(".index")
                || name.ends_with(".timeindex")
                || name == CHECKPOINT
        })
        .collect()
}

fn with_suffix<'a>(paths: &'a [PathBuf], suffix: &str) -> Vec<&'a PathBuf> {
    paths
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect()
}

/// One kind of damage.
#[derive(Debug, Clone, Copy)]
enum Damage {
    FlipBytes,
    Truncate,
    DeleteIndexes,
    GarbageIndex,
    JunkAfterLog,
}

const DAMAGES: [Damage; 5] = [
    Damage::FlipBytes,
    Damage::Truncate,
    Damage::DeleteIndexes,
    Damage::GarbageIndex,
    Damage::JunkAfterLog,
];

/// Applies `damage` to the simulated disk; returns a description.
fn damage_sim(sim: &SimStorage, damage: Damage, rng: &mut Rng) -> String {
    let all = files(sim, &dir());
    let pick = |rng: &mut Rng, list: &[&PathBuf]| -> Option<PathBuf> {
        (!list.is_empty()).then(|| list[rng.below(list.len() as u64) as usize].clone())
    };
    let every: Vec<&PathBuf> = all.iter().collect();
    match damage {
        Damage::FlipBytes => {
            let Some(path) = pick(rng, &every) else {
                return "nothing to flip".into();
            };
            let mut bytes = sim.read_file(&path).unwrap_or_default();
            if bytes.is_empty() {
                return format!("{} empty", path.display());
            }
            let mut at = Vec::new();
            for _ in 0..rng.range(1, 3) {
                let i = rng.below(bytes.len() as u64) as usize;
                let bit = 1u8 << rng.below(8);
                bytes[i] ^= bit;
                at.push((i, bit));
            }
            sim.write_file(&path, &bytes);
            format!("flipped {at:?} in {}", path.display())
        }
        Damage::Truncate => {
            let Some(path) = pick(rng, &every) else {
                return "nothing to truncate".into();
            };
            let bytes = sim.read_file(&path).unwrap_or_default();
            let len = rng.below(bytes.len() as u64 + 1) as usize;
            sim.write_file(&path, &bytes[..len]);
            format!("truncated {} from {} to {len}", path.display(), bytes.len())
        }
        Damage::DeleteIndexes => {
            let mut gone = Vec::new();
            for path in with_suffix(&all, "index") {
                if rng.below(2) == 0 {
                    sim.remove_file(path).expect("remove");
                    gone.push(path.clone());
                }
            }
            format!("deleted {gone:?}")
        }
        Damage::GarbageIndex => {
            let Some(path) = pick(rng, &with_suffix(&all, "index")) else {
                return "no index".into();
            };
            let len = rng.range(0, 200) as usize;
            sim.write_file(&path, &rng.bytes(len));
            format!("{len} bytes of garbage in {}", path.display())
        }
        Damage::JunkAfterLog => {
            let logs = with_suffix(&all, ".log");
            let Some(path) = pick(rng, &logs) else {
                return "no log".into();
            };
            let mut bytes = sim.read_file(&path).unwrap_or_default();
            let junk = rng.range(1, 300) as usize;
            bytes.extend(rng.bytes(junk));
            sim.write_file(&path, &bytes);
            format!("{junk} junk bytes after {}", path.display())
        }
    }
}

/// Opens after damage and checks the outcome. `durable` is how many records must be there
/// (all of them after a clean close; those below the recovery point after a crash).
/// Returns whether the open succeeded.
fn check_reopen(
    storage: Arc<dyn Storage>,
    dir: &Path,
    config: &LogConfig,
    records: &[Record],
    durable: u64,
    ctx: &str,
) -> Result<bool, String> {
    let clock = ManualClock::new(20_000);
    let env = Env {
        storage,
        clock: Arc::new(clock.clone()),
    };
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let log = match Partition::open_with_env(dir, config.clone(), env) {
            Ok(log) => log,
            Err(e) => {
                assert_corrupt_in_dir(&e, dir, ctx);
                return false;
            }
        };
        let leo = log.log_end_offset();
        assert!(
            leo <= records.len() as u64,
            "{ctx}: log end {leo} past the {} records appended",
            records.len()
        );
        let read = read_all(&log, records, dir, ctx);
        if !read.corrupt {
            // Nothing was reported: then nothing may be missing that had to be there.
            let want: Vec<u64> = (log.log_start_offset()..leo).collect();
            assert_eq!(
                read.offsets, want,
                "{ctx}: records silently missing from the log"
            );
            assert_eq!(log.log_start_offset(), 0, "{ctx}: log start moved");
            assert!(
                leo >= durable,
                "{ctx}: silently lost durable records: log end {leo} < {durable}"
            );
            // The log still takes appends, at its end.
            let offset = log
                .append(Record::new(b"after".to_vec()).with_timestamp(clock.now_ms()))
                .unwrap_or_else(|e| panic!("{ctx}: append after reopen: {e:?}"));
            assert_eq!(offset, leo, "{ctx}: append after reopen");
        }
        true
    }));
    outcome.map_err(|panic| {
        let msg = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
            .unwrap_or_default();
        if msg.contains(ctx) {
            msg
        } else {
            format!("{ctx}: PANIC in the library: {msg}")
        }
    })
}

/// A log of several segments on a simulated disk, closed cleanly or cut by a power loss.
/// Returns the disk, the records, and how many must survive.
fn build_sim(seed: u64, clean: bool) -> (SimStorage, LogConfig, Vec<Record>, u64) {
    let mut rng = Rng::new(seed);
    let compression = Compression::ALL[rng.below(5) as usize];
    let config = config(compression).flush_policy(if rng.below(2) == 0 {
        FlushPolicy::Never
    } else {
        FlushPolicy::EveryMessages(rng.range(1, 10))
    });
    let n = rng.range(1, 80) as usize;
    let records = make_records(&mut rng, n);
    let sim = SimStorage::new();
    let clock = ManualClock::new(10_000);
    let log = Partition::open_with_env(dir(), config.clone(), sim_env(&sim, &clock)).expect("open");
    append_all(&log, &records, &mut rng);
    if clean {
        log.close().expect("close");
        (sim, config, records.clone(), records.len() as u64)
    } else {
        let durable = log.recovery_point();
        let after = sim.power_loss(seed);
        drop(log);
        (after, config, records, durable)
    }
}

/// Random damage of every kind, after clean closes and after crashes, on the simulated disk.
#[test]
fn random_damage_gives_the_right_records_or_a_typed_error() {
    let (mut opened, mut refused, mut cases) = (0, 0, 0);
    let mut failures = Vec::new();
    // `STREAMLOG_CORRUPTION_CASES=<n>` runs more (or fewer) cases than the default.
    let total_cases = std::env::var("STREAMLOG_CORRUPTION_CASES")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(1500);
    for seed in 0..total_cases {
        let clean = seed % 2 == 0;
        let (sim, config, records, durable) = build_sim(seed, clean);
        let mut rng = Rng::new(seed ^ 0xDA_3A6E);
        let damage = DAMAGES[(seed / 2 % 5) as usize];
        let what = damage_sim(&sim, damage, &mut rng);
        let ctx = format!(
            "seed {seed} ({} close, {damage:?}: {what}, {} records, {durable} durable, {:?})",
            if clean { "clean" } else { "unclean" },
            records.len(),
            config.compression
        );
        match check_reopen(Arc::new(sim), &dir(), &config, &records, durable, &ctx) {
            Ok(true) => opened += 1,
            Ok(false) => refused += 1,
            Err(failure) => failures.push(failure),
        }
        cases += 1;
    }
    eprintln!("damage cases: {cases}, opened: {opened}, refused with Corrupt: {refused}");
    assert!(
        failures.is_empty(),
        "{} of {cases} damage cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Deleting every index file and reopening (after a clean close, and unclean) rebuilds
/// them: every offset is readable from itself, and every timestamp resolves.
#[test]
fn deleted_index_files_are_rebuilt() {
    for seed in 0..40u64 {
        for clean in [true, false] {
            let mut rng = Rng::new(seed);
            let config = config(Compression::ALL[(seed % 5) as usize]);
            let records = make_records(&mut rng, 60);
            let sim = SimStorage::new();
            let clock = ManualClock::new(10_000);
            let log = Partition::open_with_env(dir(), config.clone(), sim_env(&sim, &clock))
                .expect("open");
            append_all(&log, &records, &mut rng);
            log.flush().expect("flush");
            let sim = if clean {
                log.close().expect("close");
                sim
            } else {
                let after = sim.power_loss_with(
                    seed,
                    PowerLoss {
                        garbage: false,
                        lose_indexes: false,
                    },
                );
                drop(log);
                after
            };
            let ctx = format!("seed {seed} clean={clean}");
            let before = files(&sim, &dir());
            let indexes: Vec<&PathBuf> = with_suffix(&before, "index");
            assert!(indexes.len() >= 4, "{ctx}: want several segments");
            for path in &indexes {
                sim.remove_file(path).expect("remove");
            }
            let log = Partition::open_with_env(dir(), config.clone(), sim_env(&sim, &clock))
                .unwrap_or_else(|e| panic!("{ctx}: open without indexes: {e:?}"));
            assert_eq!(log.log_end_offset(), 60, "{ctx}");
            for path in &indexes {
                assert!(
                    sim.file_len(path).is_some(),
                    "{ctx}: {path:?} not recreated"
                );
            }
            assert!(
                log.segments()
                    .iter()
                    .any(|s| s.offset_index_entries() > 0 && s.time_index_entries() > 0),
                "{ctx}: indexes rebuilt empty"
            );
            for (o, want) in records.iter().enumerate() {
                let got = log
                    .read_from(o as u64)
                    .expect("read_from")
                    .next()
                    .unwrap_or_else(|| panic!("{ctx}: nothing at {o}"))
                    .unwrap_or_else(|e| panic!("{ctx}: read {o}: {e:?}"));
                assert_eq!(got.offset(), o as u64, "{ctx}");
                assert_same(&got, want, &ctx);
                let ts = want.timestamp().expect("timestamp");
                let found = log
                    .offset_for_timestamp(ts)
                    .expect("offset_for_timestamp")
                    .unwrap_or_else(|| panic!("{ctx}: timestamp {ts} not found"));
                assert_eq!((found.offset, found.timestamp), (o as u64, ts), "{ctx}");
            }
            // Before the first timestamp: the first record (the segment base).
            let first = log.offset_for_timestamp(0).expect("lookup").expect("some");
            assert_eq!(first.offset, 0, "{ctx}");
        }
    }
}

/// Kafka's testCorruptLog: random garbage appended to the active segment's `.log` and
/// `.index`, then an unclean open: LEO is the number of valid records, all identical.
#[test]
fn garbage_after_the_active_segment_is_cut_on_an_unclean_open() {
    for seed in 0..60u64 {
        let mut rng = Rng::new(seed);
        let config = config(Compression::ALL[(seed % 5) as usize]);
        let n = rng.range(1, 70) as usize;
        let records = make_records(&mut rng, n);
        let sim = SimStorage::new();
        let clock = ManualClock::new(10_000);
        let log =
            Partition::open_with_env(dir(), config.clone(), sim_env(&sim, &clock)).expect("open");
        append_all(&log, &records, &mut rng);
        log.flush().expect("flush");
        // Unclean: the disk as it is while the log is open (everything was flushed).
        let disk = sim.power_loss_with(
            seed,
            PowerLoss {
                garbage: false,
                lose_indexes: false,
            },
        );
        let active = log.segments().last().expect("active").base_offset();
        drop(log);
        let ctx = format!("seed {seed} ({n} records, active segment {active})");
        let log_path = dir().join(format!("{active:020}.log"));
        let index_path = dir().join(format!("{active:020}.index"));
        for path in [&log_path, &index_path] {
            let mut bytes = disk.read_file(path).unwrap_or_default();
            let junk = rng.range(1, 200) as usize;
            bytes.extend(rng.bytes(junk));
            disk.write_file(path, &bytes);
        }
        assert!(!disk.exists(&dir().join(CLEAN_SHUTDOWN)), "{ctx}");
        let log = Partition::open_with_env(dir(), config.clone(), sim_env(&disk, &clock))
            .unwrap_or_else(|e| panic!("{ctx}: open: {e:?}"));
        assert_eq!(log.log_end_offset(), n as u64, "{ctx}");
        let read = read_all(&log, &records, &dir(), &ctx);
        assert!(!read.corrupt, "{ctx}: corrupt read after recovery");
        assert_eq!(read.offsets, (0..n as u64).collect::<Vec<_>>(), "{ctx}");
    }
}

/// Index files without a `.log`, and `.deleted` / `.cleaned` / checkpoint temp files, are
/// removed on open; the index of an existing log that is missing is recreated.
#[test]
fn stray_and_leftover_files_are_removed_on_open() {
    let sim = SimStorage::new();
    let clock = ManualClock::new(10_000);
    let mut rng = Rng::new(7);
    let records = make_records(&mut rng, 30);
    let config = config(Compression::None);
    let log = Partition::open_with_env(dir(), config.clone(), sim_env(&sim, &clock)).expect("open");
    append_all(&log, &records, &mut rng);
    log.close().expect("close");
    let d = dir();
    let strays = [
        d.join("00000000000000099999.index"),
        d.join("00000000000000099999.timeindex"),
        d.join("00000000000000000000.log.deleted"),
        d.join("00000000000000000005.index.deleted"),
        d.join("00000000000000000007.log.cleaned"),
    ];
    for path in &strays {
        sim.write_file(path, &rng.bytes(40));
    }
    let missing = d.join("00000000000000000000.timeindex");
    sim.remove_file(&missing).expect("remove");
    let log = Partition::open_with_env(&d, config.clone(), sim_env(&sim, &clock)).expect("reopen");
    for path in &strays {
        assert!(!sim.exists(path), "{} was not removed", path.display());
    }
    assert!(sim.exists(&missing), "missing time index not recreated");
    assert_eq!(log.log_end_offset(), 30);
    let read = read_all(&log, &records, &d, "strays");
    assert_eq!(read.offsets, (0..30).collect::<Vec<_>>());
    assert_eq!(
        log.offset_for_timestamp(records[29].timestamp().expect("ts"))
            .expect("lookup")
            .map(|o| o.offset),
        Some(29)
    );
}

/// A checkpoint with the given recovery point (format in `src/log/checkpoint.rs`).
fn checkpoint_bytes(log_start: u64, recovery_point: u64, hw: u64) -> Vec<u8> {
    let mut buf = Vec::with_capacity(38);
    buf.extend_from_slice(b"SLCP");
    buf.extend_from_slice(&1u16.to_be_bytes());
    buf.extend_from_slice(&log_start.to_be_bytes());
    buf.extend_from_slice(&recovery_point.to_be_bytes());
    buf.extend_from_slice(&hw.to_be_bytes());
    let crc = crc32fast::hash(&buf);
    buf.extend_from_slice(&crc.to_be_bytes());
    buf
}

/// Kafka's testCleanShutdownFile: a clean shutdown skips recovery even with a recovery
/// point of 0. Observable here: a batch damaged inside the first segment (behind its last
/// index entry checks nothing) is not found at open after a clean close — LEO unchanged,
/// the read ends with `Corrupt` at that batch — while the same damage with the marker
/// removed is found by recovery from 0 and cut there (documented: damage at or past the
/// recovery point is cut, later segments deleted).
#[test]
fn clean_shutdown_skips_recovery_even_with_recovery_point_zero() {
    let sim = SimStorage::new();
    let clock = ManualClock::new(10_000);
    let mut rng = Rng::new(11);
    let records = make_records(&mut rng, 50);
    let config = config(Compression::None);
    let log = Partition::open_with_env(dir(), config.clone(), sim_env(&sim, &clock)).expect("open");
    for r in &records {
        log.append(r.clone()).expect("append");
    }
    let first_segment_end = log.segments()[1].base_offset();
    log.close().expect("close");
    let d = dir();
    sim.write_file(d.join(CHECKPOINT), &checkpoint_bytes(0, 0, 50));
    // Damage a value byte of the first segment's second batch (one record per batch, so
    // the record is the batch's last bytes minus the header count).
    let first_log = d.join("00000000000000000000.log");
    let mut bytes = sim.read_file(&first_log).expect("log");
    let batch0 = i32::from_be_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize + 12;
    // Inside batch 1's records, just after its 61-byte header: covered by its CRC.
    let damaged_at = batch0 + 61 + 2;
    assert!(damaged_at < bytes.len() && first_segment_end > 2);
    bytes[damaged_at] ^= 0x40;
    sim.write_file(&first_log, &bytes);
    let unclean = sim.power_loss_with(
        0,
        PowerLoss {
            garbage: false,
            lose_indexes: false,
        },
    );
    unclean
        .remove_file(&d.join(CLEAN_SHUTDOWN))
        .expect("rm marker");

    // Clean: no recovery, LEO as before; reading finds the damage.
    let log = Partition::open_with_env(&d, config.clone(), sim_env(&sim, &clock)).expect("open");
    assert_eq!(log.log_end_offset(), 50);
    let read = read_all(&log, &records, &d, "clean");
    assert_eq!(
        read.offsets,
        vec![0],
        "clean: the read stops at the damaged batch"
    );
    assert!(
        read.corrupt,
        "clean: the damage must be reported at read time"
    );
    drop(log);

    // Unclean with recovery point 0: recovery finds the batch and cuts the log there.
    let log =
        Partition::open_with_env(&d, config.clone(), sim_env(&unclean, &clock)).expect("open");
    assert_eq!(log.log_end_offset(), 1, "unclean: cut at the damaged batch");
    assert_eq!(log.segment_count(), 1, "unclean: later segments deleted");
    let read = read_all(&log, &records, &d, "unclean");
    assert_eq!(read.offsets, vec![0]);
    assert!(!read.corrupt);
}

/// Damage below the recovery point after a crash is never cut silently: flushed data
/// fails the open with `Corrupt` naming the file.
#[test]
fn damage_below_the_recovery_point_fails_the_open() {
    for seed in 0..30u64 {
        let mut rng = Rng::new(seed);
        let config = config(Compression::ALL[(seed % 5) as usize]);
        let records = make_records(&mut rng, 60);
        let sim = SimStorage::new();
        let clock = ManualClock::new(10_000);
        let log =
            Partition::open_with_env(dir(), config.clone(), sim_env(&sim, &clock)).expect("open");
        append_all(&log, &records, &mut rng);
        log.close().expect("close");
        let d = dir();
        sim.remove_file(&d.join(CLEAN_SHUTDOWN)).expect("rm marker");
        // The checkpoint says everything is flushed; damage the last segment's first batch.
        let all = files(&sim, &d);
        let last_log = with_suffix(&all, ".log")
            .last()
            .map(|p| (*p).clone())
            .expect("log");
        let mut bytes = sim.read_file(&last_log).expect("bytes");
        let at = rng.range(21, 60) as usize; // CRC-covered header bytes of the first batch
        bytes[at] ^= 1 << rng.below(8);
        sim.write_file(&last_log, &bytes);
        let ctx = format!("seed {seed}");
        match Partition::open_with_env(&d, config.clone(), sim_env(&sim, &clock)) {
            Err(e) => assert_corrupt_in_dir(&e, &d, &ctx),
            Ok(log) => panic!(
                "{ctx}: opened with damaged flushed data (log end {})",
                log.log_end_offset()
            ),
        }
    }
}

// --- the same on real files -----------------------------------------------------------------

fn real_log(dir: &Path, seed: u64, n: usize) -> (LogConfig, Vec<Record>) {
    let mut rng = Rng::new(seed);
    let config = config(Compression::ALL[(seed % 5) as usize]);
    let records = make_records(&mut rng, n);
    let log = Partition::open(dir, config.clone()).expect("open");
    append_all(&log, &records, &mut rng);
    log.close().expect("close");
    (config, records)
}

fn real_files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    out.sort();
    out
}

#[test]
fn real_files_random_damage() {
    let root = tempfile::tempdir().expect("tempdir");
    for seed in 0..25u64 {
        let d = root.path().join(format!("p-{seed}"));
        let (config, records) = real_log(&d, seed, 50);
        let clean = seed % 2 == 0;
        if !clean {
            std::fs::remove_file(d.join(CLEAN_SHUTDOWN)).expect("rm marker");
        }
        let mut rng = Rng::new(seed ^ 0xF11E);
        let damage = DAMAGES[(seed % 5) as usize];
        let logs = real_files(&d, ".log");
        let indexes = real_files(&d, "index");
        let what = match damage {
            Damage::FlipBytes | Damage::Truncate | Damage::JunkAfterLog => {
                let all: Vec<&PathBuf> = logs.iter().chain(&indexes).collect();
                let path = all[rng.below(all.len() as u64) as usize].clone();
                let mut bytes = std::fs::read(&path).expect("read");
                match damage {
                    Damage::FlipBytes if !bytes.is_empty() => {
                        let i = rng.below(bytes.len() as u64) as usize;
                        bytes[i] ^= 1 << rng.below(8);
                    }
                    Damage::Truncate => bytes.truncate(rng.below(bytes.len() as u64 + 1) as usize),
                    _ => bytes.extend(rng.blob(1, 100)),
                }
                std::fs::write(&path, &bytes).expect("write");
                format!("{damage:?} {}", path.display())
            }
            Damage::DeleteIndexes => {
                for p in &indexes {
                    std::fs::remove_file(p).expect("rm");
                }
                "deleted every index".into()
            }
            Damage::GarbageIndex => {
                let path = &indexes[rng.below(indexes.len() as u64) as usize];
                std::fs::write(path, rng.blob(0, 100)).expect("write");
                format!("garbage in {}", path.display())
            }
        };
        let ctx = format!("real files seed {seed} (clean={clean}, {what})");
        // A clean close flushed everything; so did the close before the marker removal.
        if let Err(failure) = check_reopen(
            Arc::new(streamlog::FileStorage),
            &d,
            &config,
            &records,
            records.len() as u64,
            &ctx,
        ) {
            panic!("{failure}");
        }
    }
}

#[test]
fn real_files_deleted_indexes_rebuilt_and_strays_removed() {
    let root = tempfile::tempdir().expect("tempdir");
    let d = root.path().join("p");
    let (config, records) = real_log(&d, 3, 60);
    for p in real_files(&d, "index") {
        std::fs::remove_file(p).expect("rm");
    }
    let strays = [
        d.join("00000000000000099999.index"),
        d.join("00000000000000000000.log.deleted"),
        d.join("00000000000000000003.log.cleaned"),
    ];
    for p in &strays {
        std::fs::write(p, b"junk").expect("write");
    }
    let log = Partition::open(&d, config).expect("reopen");
    for p in &strays {
        assert!(!p.exists(), "{} not removed", p.display());
    }
    assert_eq!(log.log_end_offset(), 60);
    assert!(real_files(&d, ".index").len() >= 2);
    for (o, want) in records.iter().enumerate() {
        let got = log
            .read_from(o as u64)
            .expect("read")
            .next()
            .expect("some")
            .expect("ok");
        assert_eq!(got.offset(), o as u64);
        assert_same(&got, want, "real files");
        let ts = want.timestamp().expect("ts");
        let found = log.offset_for_timestamp(ts).expect("lookup").expect("some");
        assert_eq!(found.offset, o as u64);
    }
}
