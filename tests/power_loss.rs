//! Power-loss tests on [`SimStorage`]: a seeded random workload runs on the simulated disk,
//! power is cut (`SimStorage::power_loss`, with torn writes, garbage and lost indexes), and
//! the log reopened from what survived must be a valid prefix of what was appended that
//! holds every record acknowledged as durable, and must accept appends at its log end.
//!
//! What "acknowledged as durable" means here, per `FlushPolicy`:
//! - `Always`: every append that returned;
//! - otherwise: every record appended before the last `flush()` that returned, before the
//!   last flush the policy ran itself (`EveryMessages(n)` after n unflushed records), and
//!   below `Partition::recovery_point()` ("every offset below this is flushed").
//!
//! Every failure message names the seed; rerun one seed with `STREAMLOG_SEED=<n>`.

mod common;

use common::Rng;
use common::tap::{DiskOp, Hook, Tap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use streamlog::{
    Clock, Compression, Env, Error, FlushPolicy, LogConfig, LogRecord, ManualClock, Partition,
    PowerLoss, Record, SimStorage, Storage,
};

// ---------------------------------------------------------------------------------------------
// Deterministic randomness and the workload model
// ---------------------------------------------------------------------------------------------

fn dir() -> PathBuf {
    PathBuf::from("data/orders-0")
}

fn env_on(storage: Arc<dyn Storage>, clock: &ManualClock) -> Env {
    Env {
        storage,
        clock: Arc::new(clock.clone()),
    }
}

fn random_compression(rng: &mut Rng) -> Compression {
    Compression::ALL[rng.below(Compression::ALL.len() as u64) as usize]
}

fn random_config(rng: &mut Rng, policy: FlushPolicy) -> LogConfig {
    LogConfig::default()
        .segment_bytes(rng.range(400, 4000))
        .segment_index_bytes(rng.range(64, 512) as usize)
        .index_interval_bytes(rng.range(1, 600) as usize)
        .compression(random_compression(rng))
        .flush_policy(policy)
}

fn random_policy(rng: &mut Rng, seed: u64) -> FlushPolicy {
    match seed % 3 {
        0 => FlushPolicy::Never,
        1 => FlushPolicy::EveryMessages(rng.range(1, 8)),
        _ => FlushPolicy::Always,
    }
}

/// Everything appended (by offset, with the timestamp the log must report) and how much
/// of it was acknowledged durable.
#[derive(Debug, Clone, Default)]
struct Model {
    records: Vec<Record>,
    /// Every offset below this was acknowledged durable.
    durable: u64,
    /// Records appended since the last flush (for `EveryMessages`).
    unflushed: u64,
    /// Largest timestamp so far: timestamps never decrease, so `offset_for_timestamp`
    /// has one right answer.
    last_ts: i64,
}

/// One record to append and the same record as the log must return it (timestamp set).
fn random_records(rng: &mut Rng, model: &mut Model, clock: &ManualClock, n: usize) -> Vec<Record> {
    let now = clock
        .now_ms()
        .max(model.last_ts)
        .saturating_add(rng.below(5) as i64);
    clock.set_ms(now);
    let explicit = rng.chance(60);
    let mut ts = now;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut r = match rng.below(10) {
            0 => Record::tombstone(rng.payload(1, 8)),
            1..=4 => Record::new(rng.payload(0, 47)).with_key(rng.payload(0, 8)),
            _ => Record::new(rng.payload(0, 63)),
        };
        for h in 0..rng.below(3) {
            let value = if rng.chance(70) {
                Some(rng.payload(0, 5))
            } else {
                None
            };
            r = r.with_header(format!("h{h}"), value);
        }
        if explicit {
            ts += rng.below(3) as i64;
            r = r.with_timestamp(ts);
        }
        out.push(r);
    }
    model.last_ts = model.last_ts.max(ts);
    out
}

/// The record as the log returns it: records without a timestamp get the append time.
fn resolved(record: &Record, now: i64) -> Record {
    let ts = record.timestamp().unwrap_or(now);
    record.clone().with_timestamp(ts)
}

/// Applies the result of one append to the model.
fn record_append(
    model: &mut Model,
    policy: FlushPolicy,
    records: &[Record],
    now: i64,
    result: streamlog::Result<std::ops::Range<u64>>,
    ctx: &str,
) {
    match result {
        Ok(range) => {
            assert_eq!(
                range,
                model.records.len() as u64..(model.records.len() + records.len()) as u64,
                "{ctx}: append got unexpected offsets"
            );
            model
                .records
                .extend(records.iter().map(|r| resolved(r, now)));
            model.unflushed += records.len() as u64;
            match policy {
                FlushPolicy::Always => model.durable = range.end,
                FlushPolicy::EveryMessages(n) if model.unflushed >= n => {
                    model.durable = range.end;
                    model.unflushed = 0;
                }
                _ => {}
            }
        }
        Err(Error::BatchLargerThanSegment { .. }) => {}
        Err(e) => panic!("{ctx}: append failed: {e}"),
    }
}

/// One random workload step.
fn step(
    rng: &mut Rng,
    log: &Partition,
    model: &mut Model,
    clock: &ManualClock,
    policy: FlushPolicy,
    ctx: &str,
) {
    match rng.below(100) {
        0..=54 => {
            let records = random_records(rng, model, clock, 1);
            let now = clock.now_ms();
            let result = log.append(records[0].clone()).map(|o| o..o + 1);
            record_append(model, policy, &records, now, result, ctx);
        }
        55..=84 => {
            let n = rng.range(1, 6) as usize;
            let records = random_records(rng, model, clock, n);
            let now = clock.now_ms();
            let result = log.append_batch(records.clone());
            record_append(model, policy, &records, now, result, ctx);
        }
        85..=94 => {
            log.flush()
                .unwrap_or_else(|e| panic!("{ctx}: flush failed: {e}"));
            model.durable = model.records.len() as u64;
            model.unflushed = 0;
        }
        _ => {
            // A read while writing: must see exactly what was appended.
            let end = model.records.len() as u64;
            if end > 0 {
                let from = rng.below(end);
                let first = log
                    .read_to_log_end(from)
                    .unwrap_or_else(|e| panic!("{ctx}: read_from({from}) failed: {e}"))
                    .next()
                    .unwrap_or_else(|| panic!("{ctx}: read_from({from}) gave nothing"))
                    .unwrap_or_else(|e| panic!("{ctx}: read_from({from}) failed: {e}"));
                assert_same(&first, &model.records[from as usize], from, ctx);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Checks after a power loss
// ---------------------------------------------------------------------------------------------

fn assert_same(got: &LogRecord, want: &Record, offset: u64, ctx: &str) {
    assert_eq!(got.offset(), offset, "{ctx}: wrong offset");
    assert_eq!(got.key(), want.key(), "{ctx}: key at offset {offset}");
    assert_eq!(got.value(), want.value(), "{ctx}: value at offset {offset}");
    assert_eq!(
        Some(got.timestamp()),
        want.timestamp(),
        "{ctx}: timestamp at offset {offset}"
    );
    assert_eq!(
        got.owned_headers(),
        want.headers(),
        "{ctx}: headers at offset {offset}"
    );
}

/// Opens the log after a power loss; it must open.
fn reopen(
    storage: Arc<dyn Storage>,
    config: &LogConfig,
    clock: &ManualClock,
    ctx: &str,
) -> Partition {
    match Partition::open_with_env(dir(), config.clone(), env_on(storage, clock)) {
        Ok(log) => log,
        Err(e) => panic!("{ctx}: open after power loss failed: {e:?}"),
    }
}

/// Checks a reopened log against what was appended: a valid prefix of `records`, at least
/// `required` long, readable from every offset, timestamps resolvable. Returns its LEO.
fn check_prefix(
    log: &Partition,
    records: &[Record],
    required: u64,
    rng: &mut Rng,
    ctx: &str,
) -> u64 {
    let leo = log.log_end_offset();
    assert_eq!(log.log_start_offset(), 0, "{ctx}: log start moved");
    assert!(
        leo <= records.len() as u64,
        "{ctx}: log end {leo} is past the {} records ever appended",
        records.len()
    );
    assert!(
        leo >= required,
        "{ctx}: lost acknowledged records: log end {leo} < {required} acknowledged durable \
         (appended {})",
        records.len()
    );
    assert!(
        log.recovery_point() <= leo,
        "{ctx}: recovery point {} past log end {leo}",
        log.recovery_point()
    );
    assert_eq!(log.high_watermark(), leo, "{ctx}: high watermark");
    let mut expected = 0u64;
    for item in log
        .read_to_log_end(0)
        .unwrap_or_else(|e| panic!("{ctx}: read_to_log_end(0): {e}"))
    {
        let got = item.unwrap_or_else(|e| panic!("{ctx}: reading offset {expected}: {e:?}"));
        assert_same(&got, &records[expected as usize], expected, ctx);
        expected += 1;
    }
    assert_eq!(
        expected, leo,
        "{ctx}: read {expected} records but log end is {leo}"
    );
    // Random starting points exercise the rebuilt (or surviving) offset indexes.
    for _ in 0..3 {
        if leo == 0 {
            break;
        }
        let from = rng.below(leo);
        let got = log
            .read_from(from)
            .unwrap_or_else(|e| panic!("{ctx}: read_from({from}): {e}"))
            .next()
            .unwrap_or_else(|| panic!("{ctx}: read_from({from}) gave nothing"))
            .unwrap_or_else(|e| panic!("{ctx}: read_from({from}): {e:?}"));
        assert_same(&got, &records[from as usize], from, ctx);
    }
    // And the time indexes: the first record whose timestamp is >= t.
    if leo > 0 {
        let (lo, hi) = (
            records[0].timestamp().unwrap_or(0),
            records[leo as usize - 1].timestamp().unwrap_or(0),
        );
        for _ in 0..3 {
            let t = lo - 1 + rng.below((hi - lo + 3) as u64) as i64;
            if (Partition::MAX_TIMESTAMP..=Partition::LATEST_TIMESTAMP).contains(&t) {
                continue; // Kafka's special timestamps, not searched as such
            }
            let want = records[..leo as usize]
                .iter()
                .position(|r| r.timestamp().unwrap_or(0) >= t)
                .map(|o| (o as u64, records[o].timestamp().unwrap_or(0)));
            let got = log
                .offset_for_timestamp(t)
                .unwrap_or_else(|e| panic!("{ctx}: offset_for_timestamp({t}): {e:?}"))
                .map(|o| (o.offset, o.timestamp));
            assert_eq!(
                got, want,
                "{ctx}: offset_for_timestamp({t}) (log end {leo})"
            );
        }
    }
    leo
}

/// Appends after the reopen: offsets continue at the log end and read back; returns the
/// records now in the log (a prefix of `records` plus the new ones).
fn check_append_after(
    log: &Partition,
    records: &[Record],
    clock: &ManualClock,
    rng: &mut Rng,
    ctx: &str,
) -> Vec<Record> {
    let leo = log.log_end_offset();
    let mut now: Vec<Record> = records[..leo as usize].to_vec();
    let mut model = Model {
        records: Vec::new(),
        last_ts: now.last().and_then(Record::timestamp).unwrap_or(0),
        ..Model::default()
    };
    let n = rng.range(1, 3) as usize;
    let batch = random_records(rng, &mut model, clock, n);
    let t = clock.now_ms();
    let range = log
        .append_batch(batch.clone())
        .unwrap_or_else(|e| panic!("{ctx}: append after reopen failed: {e}"));
    assert_eq!(
        range,
        leo..leo + batch.len() as u64,
        "{ctx}: append after reopen"
    );
    now.extend(batch.iter().map(|r| resolved(r, t)));
    let single = random_records(rng, &mut model, clock, 1);
    let t = clock.now_ms();
    let offset = log
        .append(single[0].clone())
        .unwrap_or_else(|e| panic!("{ctx}: append after reopen failed: {e}"));
    assert_eq!(
        offset,
        now.len() as u64,
        "{ctx}: second append after reopen"
    );
    now.push(resolved(&single[0], t));
    for (i, item) in log
        .read_to_log_end(leo)
        .unwrap_or_else(|e| panic!("{ctx}: read after append: {e}"))
        .enumerate()
    {
        let got = item.unwrap_or_else(|e| panic!("{ctx}: read after append: {e:?}"));
        let o = leo + i as u64;
        assert_same(&got, &now[o as usize], o, ctx);
    }
    assert_eq!(
        log.log_end_offset(),
        now.len() as u64,
        "{ctx}: LEO after appends"
    );
    now
}

/// Full check of one crashed disk: reopen, check the prefix, append, close cleanly, reopen
/// and check everything is still there.
fn verify_crash(
    after: SimStorage,
    config: &LogConfig,
    records: &[Record],
    required: u64,
    seed: u64,
    ctx: &str,
) -> u64 {
    let mut rng = Rng::new(seed.wrapping_mul(31).wrapping_add(7));
    let clock = ManualClock::new(records.last().and_then(Record::timestamp).unwrap_or(0));
    let config = config.clone().compression(random_compression(&mut rng));
    let log = reopen(Arc::new(after.clone()), &config, &clock, ctx);
    let leo = check_prefix(&log, records, required, &mut rng, ctx);
    let now = check_append_after(&log, records, &clock, &mut rng, ctx);
    log.close()
        .unwrap_or_else(|e| panic!("{ctx}: close after reopen failed: {e}"));
    let log = reopen(
        Arc::new(after),
        &config,
        &clock,
        &format!("{ctx} (clean reopen)"),
    );
    let ctx = format!("{ctx} (clean reopen)");
    let total = now.len() as u64;
    check_prefix(&log, &now, total, &mut rng, &ctx);
    assert_eq!(log.log_end_offset(), total, "{ctx}");
    leo
}

/// The seeds to run: `STREAMLOG_SEED=<n>` runs only seed n; `STREAMLOG_POWER_LOSS_SEEDS=<n>`
/// runs seeds `0..n` instead of the default count.
fn seeds(default: u64) -> std::ops::Range<u64> {
    let var = |name| std::env::var(name).ok().and_then(|s| s.parse::<u64>().ok());
    match (var("STREAMLOG_SEED"), var("STREAMLOG_POWER_LOSS_SEEDS")) {
        (Some(seed), _) => seed..seed + 1,
        (None, Some(n)) => 0..n,
        (None, None) => 0..default,
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// Thousands of seeded random workloads, each cut by a power loss at a random step.
#[test]
fn random_power_loss_keeps_a_valid_prefix_with_every_acknowledged_record() {
    let mut points = 0u64;
    let mut lost_unacked = 0u64;
    let mut records_checked = 0u64;
    for seed in seeds(1200) {
        let mut rng = Rng::new(seed);
        let policy = random_policy(&mut rng, seed);
        let config = random_config(&mut rng, policy);
        let ctx = format!("seed {seed} ({policy:?}, {config:?})");
        let sim = SimStorage::new();
        let clock = ManualClock::new(1_000);
        let log =
            Partition::open_with_env(dir(), config.clone(), env_on(Arc::new(sim.clone()), &clock))
                .unwrap_or_else(|e| panic!("{ctx}: first open failed: {e}"));
        let mut model = Model::default();
        let steps = rng.range(0, 100);
        for _ in 0..steps {
            step(&mut rng, &log, &mut model, &clock, policy, &ctx);
        }
        let required = model.durable.max(log.recovery_point());
        let after = sim.power_loss(seed);
        drop(log);
        let leo = verify_crash(after, &config, &model.records, required, seed, &ctx);
        points += 1;
        records_checked += leo;
        lost_unacked += model.records.len() as u64 - leo;
    }
    eprintln!(
        "power-loss points: {points}, records checked: {records_checked}, unacknowledged records lost: {lost_unacked}"
    );
}

// --- cutting power after every single storage operation ------------------------------------

/// Takes a power-loss snapshot of the disk after every operation that changes it (until
/// stopped), so a test can cut power at every point of a workload.
#[derive(Debug, Default)]
struct Snapshots {
    salt: u64,
    stopped: AtomicBool,
    snaps: Mutex<Vec<SimStorage>>,
}

impl Hook for Snapshots {
    fn after(&self, _: DiskOp, disk: &SimStorage) {
        if !self.stopped.load(Ordering::Acquire) {
            let mut snaps = self.snaps.lock().unwrap();
            let seed = (snaps.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ self.salt;
            snaps.push(disk.power_loss(seed));
        }
    }
}

impl Snapshots {
    fn taken(&self) -> usize {
        self.snaps.lock().unwrap().len()
    }

    fn stop(&self) -> Vec<SimStorage> {
        self.stopped.store(true, Ordering::Release);
        std::mem::take(&mut *self.snaps.lock().unwrap())
    }
}

/// A crash point: the disk, how many records had been acknowledged durable before the
/// operation it interrupted, and how many records existed once that operation finished.
struct Point {
    disk: SimStorage,
    required: u64,
    max_len: usize,
}

/// Runs `steps` workload steps on a tapped disk (starting from `start`, a disk that may
/// already hold a log), recording a crash point after every storage operation.
#[allow(clippy::too_many_arguments)]
fn tapped_workload(
    start: SimStorage,
    config: &LogConfig,
    policy: FlushPolicy,
    model: &mut Model,
    baseline: u64,
    steps: u64,
    rng: &mut Rng,
    ctx: &str,
) -> (Vec<Point>, SimStorage) {
    let salt = rng.next();
    let tap = Tap::new(
        start.clone(),
        Snapshots {
            salt,
            ..Snapshots::default()
        },
    );
    let clock = ManualClock::new(model.last_ts.max(1_000));
    let mut tags: Vec<(usize, u64, usize)> = Vec::new();
    let log =
        Partition::open_with_env(dir(), config.clone(), env_on(Arc::new(tap.clone()), &clock))
            .unwrap_or_else(|e| panic!("{ctx}: open failed: {e:?}"));
    // The open itself: nothing new is acknowledged, and its LEO is all there is.
    let opened = log.log_end_offset() as usize;
    model.records.truncate(opened);
    model.durable = model
        .durable
        .min(opened as u64)
        .max(baseline.min(opened as u64));
    model.unflushed = 0;
    tags.push((tap.hook.taken(), baseline, opened));
    for _ in 0..steps {
        let before = model.durable.max(baseline);
        step(rng, &log, model, &clock, policy, ctx);
        tags.push((tap.hook.taken(), before, model.records.len()));
    }
    let final_required = model.durable.max(log.recovery_point()).max(baseline);
    let end = tap.sim.power_loss(rng.next());
    // Closing is one more operation power can interrupt.
    let before = model.durable.max(baseline);
    drop(log);
    tags.push((tap.hook.taken(), before, model.records.len()));
    let snaps = tap.hook.stop();
    let mut points = Vec::with_capacity(snaps.len() + 1);
    let mut tag = 0;
    for (i, disk) in snaps.into_iter().enumerate() {
        while tags[tag].0 <= i {
            tag += 1;
        }
        let (_, required, max_len) = tags[tag];
        points.push(Point {
            disk,
            required,
            max_len,
        });
    }
    points.push(Point {
        disk: end.clone(),
        required: final_required,
        max_len: model.records.len(),
    });
    (points, end)
}

/// Checks one crash point; returns the LEO found.
fn check_point(point: &Point, config: &LogConfig, records: &[Record], seed: u64, ctx: &str) -> u64 {
    verify_crash(
        point.disk.clone(),
        config,
        &records[..point.max_len],
        point.required,
        seed,
        ctx,
    )
}

/// A short fixed workload per flush policy, with power cut after every storage operation
/// (every write, `set_len`, fsync, map write-back, create, rename, remove and dir sync).
#[test]
fn power_loss_at_every_storage_operation_of_a_short_workload() {
    let mut total = 0;
    for (i, policy) in [
        FlushPolicy::Never,
        FlushPolicy::EveryMessages(3),
        FlushPolicy::Always,
    ]
    .into_iter()
    .enumerate()
    {
        for workload in 0..2u64 {
            let seed = 1_000 + i as u64 * 10 + workload;
            let mut rng = Rng::new(seed);
            let config = LogConfig::default()
                .segment_bytes(500)
                .segment_index_bytes(96)
                .index_interval_bytes(100)
                .compression(if workload == 0 {
                    Compression::None
                } else {
                    Compression::Lz4
                })
                .flush_policy(policy);
            let ctx = format!("every-op seed {seed} ({policy:?})");
            let mut model = Model::default();
            let (points, _) = tapped_workload(
                SimStorage::new(),
                &config,
                policy,
                &mut model,
                0,
                30,
                &mut rng,
                &ctx,
            );
            for (n, point) in points.iter().enumerate() {
                let ctx = format!("{ctx}, crash point {n} of {}", points.len());
                check_point(point, &config, &model.records, seed + n as u64, &ctx);
            }
            total += points.len();
        }
    }
    eprintln!("crash points checked at every storage operation: {total}");
}

/// Crash, reopen (recovery), append a little, crash again — with the second crash at every
/// storage operation of the recovery and of the appends after it.
#[test]
fn power_loss_during_recovery_after_a_power_loss() {
    let mut total = 0;
    for seed in seeds(20) {
        let mut rng = Rng::new(seed ^ 0xD0_0B1E);
        let policy = random_policy(&mut rng, seed);
        let config = random_config(&mut rng, policy);
        let ctx = format!("double-crash seed {seed} ({policy:?}, {config:?})");
        // First life, cut by a power loss.
        let sim = SimStorage::new();
        let clock = ManualClock::new(1_000);
        let log =
            Partition::open_with_env(dir(), config.clone(), env_on(Arc::new(sim.clone()), &clock))
                .unwrap_or_else(|e| panic!("{ctx}: first open failed: {e}"));
        let mut model = Model::default();
        for _ in 0..rng.range(5, 60) {
            step(&mut rng, &log, &mut model, &clock, policy, &ctx);
        }
        let required = model.durable.max(log.recovery_point());
        let first = sim.power_loss(seed);
        drop(log);
        // What survived the first crash is durable on the new disk: a reader may have seen
        // it, so a second crash must not take it away.
        let survivors = {
            let exact_copy = first.power_loss_with(
                0,
                PowerLoss {
                    garbage: false,
                    lose_indexes: false,
                },
            );
            let log = reopen(Arc::new(exact_copy), &config, &clock, &ctx);
            check_prefix(&log, &model.records, required, &mut rng, &ctx)
        };
        // Second life on the crashed disk: recovery, then a few steps, power cut at every op.
        let appended_before = model.records.clone();
        let (points, _) = tapped_workload(
            first,
            &config,
            policy,
            &mut model,
            survivors,
            rng.range(0, 12),
            &mut rng,
            &ctx,
        );
        assert!(
            model.records[..survivors as usize] == appended_before[..survivors as usize],
            "{ctx}: model diverged"
        );
        for (n, point) in points.iter().enumerate() {
            let ctx = format!("{ctx}, second crash at point {n} of {}", points.len());
            check_point(point, &config, &model.records, seed + n as u64, &ctx);
        }
        total += points.len();
    }
    eprintln!("second-crash points checked: {total}");
}

/// A partition directory that `open` created is durable in its parent before any flush
/// returns (Kafka's KAFKA-3968): otherwise a power loss takes the directory's name, and
/// every flushed record with it, and the next open starts an empty log. The simulated disk
/// drops names whose directory was not synced since they were made.
#[test]
fn flushed_records_of_a_new_partition_directory_survive_a_power_loss() {
    let disk = SimStorage::new();
    disk.write_file("/r/.keep", b""); // `/r` itself exists durably
    let clock = ManualClock::new(0);
    let log = Partition::open_with_env(
        "/r/a/p",
        LogConfig::default().segment_index_bytes(4096),
        env_on(Arc::new(disk.clone()), &clock),
    )
    .unwrap();
    for i in 0..3u8 {
        log.append(Record::new(vec![i; 10])).unwrap();
    }
    log.flush().unwrap();
    for seed in 0..20 {
        let after = disk.power_loss(seed);
        let back = Partition::open_with_env(
            "/r/a/p",
            LogConfig::default().segment_index_bytes(4096),
            env_on(Arc::new(after), &clock),
        )
        .unwrap();
        assert_eq!(back.log_end_offset(), 3, "seed {seed}");
    }
}

/// Linux marks the pages a failed fsync covered clean without writing them ("fsyncgate"):
/// a later fsync succeeds without them, while reads still find them in the page cache. A
/// failed flush closes the log; a reopen in the same process (or a new one, before a
/// reboot) recovers those records from the page cache, and must write them again before
/// its next flush may call them durable. Otherwise a power loss takes records below the
/// recovery point, and the log does not open.
#[test]
fn records_a_failed_fsync_dropped_are_written_again_before_a_reopen_calls_them_flushed() {
    let disk = SimStorage::new();
    disk.write_file("/r/.keep", b"");
    let clock = ManualClock::new(0);
    let config = || LogConfig::default().segment_index_bytes(4096);
    let open = |disk: &SimStorage| {
        Partition::open_with_env("/r/p", config(), env_on(Arc::new(disk.clone()), &clock))
    };
    let log = open(&disk).unwrap();
    for i in 0..5u8 {
        log.append(Record::new(vec![i; 10])).unwrap();
    }
    log.flush().unwrap();
    for i in 5..10u8 {
        log.append(Record::new(vec![i; 10])).unwrap();
    }
    disk.fail_syncs(true);
    assert!(log.flush().is_err());
    disk.fail_syncs(false);
    assert_eq!(log.recovery_point(), 5);
    drop(log);

    let reopened = open(&disk).unwrap();
    assert_eq!(
        reopened.log_end_offset(),
        10,
        "the page cache still has them"
    );
    reopened.flush().unwrap();
    assert_eq!(reopened.recovery_point(), 10);
    drop(reopened);
    for seed in 0..20 {
        let back = open(&disk.power_loss(seed))
            .unwrap_or_else(|e| panic!("seed {seed}: flushed records lost: {e}"));
        let values: Vec<Vec<u8>> = back
            .read_from(0)
            .unwrap()
            .map(|r| r.unwrap().value().unwrap().to_vec())
            .collect();
        let want: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 10]).collect();
        assert_eq!(values, want, "seed {seed}");
    }
}
