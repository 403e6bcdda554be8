//! Crashes and failures during compaction. A seeded workload builds a compacted log on
//! `SimStorage` (keys, tombstones, rolls, an earlier compaction) and flushes it. Then:
//!
//! - **Crash at every step**: the disk is captured after every file operation of a
//!   `compact()` call, both as a process crash leaves it and as a power loss does
//!   (`SimStorage::power_loss`: torn writes, garbage, lost indexes);
//! - **Failure at every step**: the k-th file operation of `compact()` fails, for every k.
//!
//! Whatever happened, reopening — as it was, and a copy of the disk under `delete` (the
//! topic's policy changed meanwhile) — must give a log whose latest value per key is the one
//! before compaction, whose records are all original records at their original offsets,
//! whose log end did not move, and that holds no `.cleaned` or `.swap` file; and a failed
//! pass must leave the open log readable (or closed, when it failed after its commit
//! point). Every failure message names the seed; `STREAMLOG_COMPACTION_SEEDS` runs more.

mod common;

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::Rng;
use common::tap::{DiskOp, Hook, Tap};
use streamlog::{
    CleanupPolicy, Compression, Env, Error, LogConfig, ManualClock, Partition, Record, SimStorage,
    Storage,
};

const DIR: &str = "/data/compacted-0";
const NEVER: u64 = u64::MAX;

// ---------------------------------------------------------------------------------------
// A tap hook that counts file operations, fails a chosen one, and snapshots after each.
// ---------------------------------------------------------------------------------------

#[derive(Debug)]
struct Faults {
    armed: AtomicBool,
    ops: AtomicU64,
    fail_at: AtomicU64,
    snapshot: AtomicBool,
    snaps: Mutex<Vec<SimStorage>>,
    seed: u64,
}

impl Faults {
    fn new(seed: u64) -> Self {
        Faults {
            armed: AtomicBool::default(),
            ops: AtomicU64::default(),
            fail_at: AtomicU64::new(NEVER),
            snapshot: AtomicBool::default(),
            snaps: Mutex::default(),
            seed,
        }
    }

    /// While armed, every file operation counts but opening an existing file,
    /// `create_dir_all` and dropping a map.
    fn counts(&self, op: DiskOp) -> bool {
        self.armed.load(Ordering::Acquire)
            && !matches!(op, DiskOp::Open | DiskOp::CreateDir | DiskOp::Unmap)
    }

    /// The disk as a crash right now would leave it.
    fn snap(&self, disk: &SimStorage) {
        let n = self.ops.load(Ordering::Acquire);
        let mut snaps = self.snaps.lock().unwrap();
        snaps.push(disk.process_crash());
        snaps.push(disk.power_loss(self.seed ^ n.wrapping_mul(0x9E37_79B9)));
    }
}

impl Hook for Faults {
    /// Before a file operation: fails it if it is the chosen one.
    fn before(&self, op: DiskOp, path: &Path) -> streamlog::Result<()> {
        if self.counts(op) {
            let n = self.ops.fetch_add(1, Ordering::AcqRel);
            if n == self.fail_at.load(Ordering::Acquire) {
                return Err(Error::io(path, io::Error::other("injected failure")));
            }
        }
        Ok(())
    }

    /// After a file operation succeeded: snapshots when asked to.
    fn after(&self, op: DiskOp, disk: &SimStorage) {
        if self.counts(op) && self.snapshot.load(Ordering::Acquire) {
            self.snap(disk);
        }
    }
}

// ---------------------------------------------------------------------------------------
// The workload and the checks.
// ---------------------------------------------------------------------------------------

fn config(rng: &mut Rng) -> LogConfig {
    LogConfig::default()
        .cleanup_policy(CleanupPolicy::Compact)
        .segment_bytes(rng.range(500, 1500))
        .segment_index_bytes(rng.range(64, 512) as usize)
        .index_interval_bytes(rng.range(1, 300) as usize)
        .compression(Compression::ALL[rng.below(5) as usize])
        .delete_retention_ms(rng.range(0, 50) as i64)
}

fn env(storage: Arc<dyn Storage>, clock: &ManualClock) -> Env {
    Env {
        storage,
        clock: Arc::new(clock.clone()),
    }
}

/// `offset → (key, value)` of every record up to the log end.
type Rows = BTreeMap<u64, (Vec<u8>, Option<Vec<u8>>)>;

fn rows(log: &Partition) -> streamlog::Result<Rows> {
    log.read_to_log_end(log.log_start_offset())?
        .map(|r| {
            r.map(|r| {
                let key = r.key().unwrap_or_default().to_vec();
                (r.offset(), (key, r.value().map(<[u8]>::to_vec)))
            })
        })
        .collect()
}

/// Key → value of every key whose last record is not a tombstone.
fn live(rows: &Rows) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut last = BTreeMap::new();
    for (key, value) in rows.values() {
        last.insert(key.clone(), value.clone());
    }
    last.into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
}

/// A flushed compacted log built from `seed`: returns the log, its disk and config.
fn build(seed: u64, clock: &ManualClock) -> (Partition, Tap<Faults>, LogConfig) {
    let mut rng = Rng::new(seed);
    let config = config(&mut rng);
    let faults = Tap::new(SimStorage::new(), Faults::new(seed));
    let log = Partition::open_with_env(DIR, config.clone(), env(Arc::new(faults.clone()), clock))
        .unwrap();
    let appends = rng.range(20, 70);
    for i in 0..appends {
        let n = rng.range(1, 3);
        let records: Vec<Record> = (0..n)
            .map(|_| {
                let key = format!("key-{}", rng.below(12)).into_bytes();
                if rng.chance(15) {
                    Record::tombstone(key)
                } else {
                    Record::new(rng.payload(0, 40)).with_key(key)
                }
            })
            .collect();
        log.append_batch(records).unwrap();
        if rng.chance(10) {
            log.roll().unwrap();
        }
        if i == appends / 2 && rng.chance(70) {
            // An earlier pass: a clean section, horizons stamped, a checkpoint.
            log.roll().unwrap();
            log.compact().unwrap();
            clock.advance_ms(rng.range(0, 60) as i64);
        }
    }
    log.roll().unwrap();
    log.flush().unwrap();
    (log, faults, config)
}

/// Checks a reopened (or still open) log against the records before the pass.
fn check(log: &Partition, before: &Rows, log_end: u64, what: &str) {
    let after = rows(log).unwrap_or_else(|e| panic!("{what}: read failed: {e}"));
    assert_eq!(log.log_end_offset(), log_end, "{what}: log end moved");
    assert_eq!(live(&after), live(before), "{what}: latest values differ");
    for (offset, record) in &after {
        assert_eq!(
            before.get(offset),
            Some(record),
            "{what}: offset {offset} is not the original record"
        );
    }
}

fn check_no_leftovers(sim: &dyn Storage, what: &str) {
    for path in sim.list_dir(Path::new(DIR)).unwrap() {
        let name = path.to_string_lossy();
        assert!(
            !name.ends_with(".cleaned") && !name.ends_with(".swap"),
            "{what}: {name} left behind"
        );
    }
}

/// Reopens a copy of `disk` under `delete` and checks it; then reopens `disk`, checks it,
/// compacts it again and checks once more.
fn reopen_and_check(
    disk: SimStorage,
    config: &LogConfig,
    clock: &ManualClock,
    before: &Rows,
    log_end: u64,
    what: &str,
) {
    let switched = config.clone().cleanup_policy(CleanupPolicy::Delete);
    let copy = disk.process_crash();
    let log = Partition::open_with_env(DIR, switched, env(Arc::new(copy), clock))
        .unwrap_or_else(|e| panic!("{what}: reopen under delete failed: {e}"));
    check(&log, before, log_end, &format!("{what}, under delete"));
    drop(log);
    let log = Partition::open_with_env(DIR, config.clone(), env(Arc::new(disk.clone()), clock))
        .unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
    check_no_leftovers(&disk, what);
    check(&log, before, log_end, what);
    log.compact()
        .unwrap_or_else(|e| panic!("{what}: compaction after reopen failed: {e}"));
    check(&log, before, log_end, &format!("{what}, compacted again"));
}

fn seeds() -> u64 {
    std::env::var("STREAMLOG_COMPACTION_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
}

#[test]
fn a_crash_at_any_step_of_a_compaction_recovers_the_same_latest_values() {
    for seed in 0..seeds() {
        let clock = ManualClock::new(1_000_000);
        let (log, faults, config) = build(seed, &clock);
        let before = rows(&log).unwrap();
        let log_end = log.log_end_offset();
        clock.advance_ms(100);
        faults.hook.snapshot.store(true, Ordering::Release);
        faults.hook.armed.store(true, Ordering::Release);
        faults.hook.snap(&faults.sim); // the disk before the pass
        let stats = log.compact().unwrap();
        faults.hook.armed.store(false, Ordering::Release);
        check(
            &log,
            &before,
            log_end,
            &format!("seed {seed}, after the pass"),
        );
        let snaps = std::mem::take(&mut *faults.hook.snaps.lock().unwrap());
        assert!(snaps.len() > 4, "seed {seed}: {stats:?}");
        let with = |disk: &SimStorage, suffix: &str| {
            disk.list_dir(Path::new(DIR))
                .unwrap()
                .iter()
                .any(|p| p.to_string_lossy().ends_with(suffix))
        };
        // The crash points include a pass still writing, and one between commit and rename.
        if stats.segments_written > 0 {
            assert!(snaps.iter().any(|d| with(d, ".cleaned")), "seed {seed}");
            assert!(snaps.iter().any(|d| with(d, ".swap")), "seed {seed}");
        }
        for (i, disk) in snaps.into_iter().enumerate() {
            let what = format!(
                "seed {seed}, snapshot {i} ({})",
                if i % 2 == 0 {
                    "process crash"
                } else {
                    "power loss"
                }
            );
            reopen_and_check(disk, &config, &clock, &before, log_end, &what);
        }
    }
}

#[test]
fn a_failure_at_any_step_of_a_compaction_leaves_a_log_that_recovers() {
    for seed in 0..seeds() {
        // How many file operations the pass makes.
        let clock = ManualClock::new(1_000_000);
        let (log, faults, _) = build(seed, &clock);
        clock.advance_ms(100);
        faults.hook.armed.store(true, Ordering::Release);
        log.compact().unwrap();
        let total = faults.hook.ops.load(Ordering::Acquire);
        drop(log);

        for k in 0..total {
            let what = format!("seed {seed}, failing operation {k} of {total}");
            let clock = ManualClock::new(1_000_000);
            let (log, faults, config) = build(seed, &clock);
            let before = rows(&log).unwrap();
            let log_end = log.log_end_offset();
            clock.advance_ms(100);
            faults.hook.fail_at.store(k, Ordering::Release);
            faults.hook.armed.store(true, Ordering::Release);
            let result = log.compact();
            faults.hook.armed.store(false, Ordering::Release);
            assert!(result.is_err(), "{what}: the pass did not fail");
            match log.append(Record::new(b"probe".to_vec()).with_key(b"probe".to_vec())) {
                // Still open: it reads as before, and a later pass succeeds.
                Ok(offset) => {
                    assert_eq!(offset, log_end, "{what}");
                    log.truncate_to(log_end).unwrap();
                    check(&log, &before, log_end, &format!("{what}, still open"));
                    log.compact()
                        .unwrap_or_else(|e| panic!("{what}: the next pass failed: {e}"));
                    check(&log, &before, log_end, &format!("{what}, next pass"));
                }
                Err(Error::Closed { .. }) => {}
                Err(e) => panic!("{what}: unexpected append error {e}"),
            }
            let disk = faults.sim.process_crash();
            drop(log);
            reopen_and_check(
                disk,
                &config,
                &clock,
                &before,
                log_end,
                &format!("{what}, reopened"),
            );
        }
    }
}
