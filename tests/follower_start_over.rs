//! A follower's log moved by its leader. An empty log taking a first batch that holds its
//! start (deleted records put the leader's log start inside the batch) starts over at the
//! batch's base; readers on other threads read without the writer lock: what they see
//! while it does so must stay a log they could have seen before or after — its end and
//! high watermark never go back. A truncation to a divergence point across segments
//! leaves, after a crash at any disk operation, a log that opens; truncating at or past
//! the log end drops an epoch begun there (Kafka's `UnifiedLog.truncateTo`).

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use common::tap::{CrashSnapshots, DiskOp, Hook, Tap};
use streamlog::{Env, LogConfig, ManualClock, Partition, Record, Result, SimStorage};

fn env(storage: Arc<dyn streamlog::Storage>) -> Env {
    Env {
        storage,
        clock: Arc::new(ManualClock::new(1_000)),
    }
}

fn config() -> LogConfig {
    LogConfig::default()
        .segment_bytes(1024)
        .segment_index_bytes(64)
        .index_interval_bytes(100)
        .auto_high_watermark(false)
}

/// A leader's batch of `count` records based at `base`, as it sends it.
fn leader_batch(base: u64, count: u64) -> Vec<u8> {
    let sim = SimStorage::new();
    let leader = Partition::open_with_env("/leader", config(), env(Arc::new(sim.clone()))).unwrap();
    leader.truncate_fully_and_start_at(base).unwrap();
    let records = (0..count)
        .map(|i| Record::new(format!("v{}", base + i).into_bytes()))
        .collect();
    assert_eq!(leader.append_batch(records).unwrap(), base..base + count);
    sim.read_file(format!("/leader/{base:020}.log")).unwrap()
}

/// What a reader on another thread sees at each storage operation of the watched log.
#[derive(Debug, Default)]
struct Watch {
    log: OnceLock<Arc<Partition>>,
    /// (log start, log end, high watermark, whether `read_from(5)` is accepted).
    seen: Mutex<Vec<(u64, u64, u64, bool)>>,
}

impl Hook for Watch {
    fn before(&self, _: DiskOp, _: &Path) -> Result<()> {
        if let Some(log) = self.log.get() {
            let view = (
                log.log_start_offset(),
                log.log_end_offset(),
                log.high_watermark(),
                log.read_from(5).is_ok(),
            );
            self.seen.lock().unwrap().push(view);
        }
        Ok(())
    }
}

#[test]
fn readers_never_see_the_log_end_or_high_watermark_go_back_while_a_follower_starts_over() {
    let batch = leader_batch(4, 3);
    let tap = Tap::new(SimStorage::new(), Watch::default());
    let log =
        Arc::new(Partition::open_with_env("/p", config(), env(Arc::new(tap.clone()))).unwrap());
    assert_eq!(log.truncate_fully_and_start_at(5).unwrap(), 5);
    assert_eq!(log.high_watermark(), 5);
    tap.hook.log.set(log.clone()).unwrap();
    assert_eq!(log.append_as_follower(&batch).unwrap(), 4..7);
    let seen = std::mem::take(&mut *tap.hook.seen.lock().unwrap());
    assert!(!seen.is_empty());
    for (start, end, hw, readable) in seen {
        assert!(
            end >= 5 && hw >= 5 && hw <= end && readable,
            "a reader saw log start {start}, log end {end}, high watermark {hw}, \
             reading from 5 accepted: {readable}"
        );
    }
    assert_eq!(
        (
            log.log_start_offset(),
            log.log_end_offset(),
            log.high_watermark()
        ),
        (4, 7, 5)
    );
}

/// A crash at any point of a start over (a follower's log emptied at 5 taking a batch
/// based at 4, below its recovery point) leaves a log that opens, within its bounds, and
/// holding either nothing or a prefix of the batch.
#[test]
fn a_crash_anywhere_in_a_start_over_leaves_a_log_that_opens() {
    let batch = leader_batch(4, 3);
    let start = SimStorage::new();
    {
        let log = Partition::open_with_env("/p", config(), env(Arc::new(start.clone()))).unwrap();
        log.truncate_fully_and_start_at(5).unwrap();
        assert_eq!(log.recovery_point(), 5);
        log.close().unwrap();
    }
    let tap = Tap::new(start, CrashSnapshots::default());
    let log = Partition::open_with_env("/p", config(), env(Arc::new(tap.clone()))).unwrap();
    assert_eq!(log.append_as_follower(&batch).unwrap(), 4..7);
    log.flush().unwrap();
    let snaps = tap.hook.take();
    assert!(snaps.len() > 10);
    for (n, disk) in snaps.into_iter().enumerate() {
        let log = Partition::open_with_env("/p", config(), env(Arc::new(disk)))
            .unwrap_or_else(|e| panic!("crash point {n}: open failed: {e}"));
        let (start, end, hw) = (
            log.log_start_offset(),
            log.log_end_offset(),
            log.high_watermark(),
        );
        assert!(
            start <= hw && hw <= end,
            "crash point {n}: {start} {hw} {end}"
        );
        let got: Vec<(u64, Vec<u8>)> = log
            .read_to_log_end(start)
            .unwrap()
            .map(|r| {
                let r = r.unwrap();
                (r.offset(), r.value().unwrap_or_default().to_vec())
            })
            .collect();
        for (offset, value) in &got {
            assert_eq!(value, &format!("v{offset}").into_bytes(), "crash point {n}");
        }
        assert!(
            end == 4 || end == 5 || end == 7,
            "crash point {n}: end {end}"
        );
    }
}

fn value(offset: u64) -> Record {
    Record::new(format!("v{offset:04}").into_bytes())
}

fn entries(log: &Partition) -> Vec<(i32, u64)> {
    log.leader_epochs()
        .iter()
        .map(|e| (e.epoch, e.start_offset))
        .collect()
}

/// A replica (leader epoch 0) whose log spans several segments, flushed and closed.
fn several_segments(disk: &SimStorage) -> u64 {
    let log = Partition::open_with_env("/p", config(), env(Arc::new(disk.clone()))).unwrap();
    log.assign_leader_epoch(0).unwrap();
    while log.segment_count() < 4 {
        let offset = log.log_end_offset();
        log.append(value(offset)).unwrap();
    }
    log.set_high_watermark(3);
    let end = log.log_end_offset();
    log.close().unwrap();
    end
}

/// Kafka's follower truncation (to a divergence point inside the first segment, with later
/// segments to delete): a crash at any point of it must leave a log that opens, holding a
/// prefix of what it held. A log that refuses to open after a crash is a replica lost.
/// (The later segments were removed oldest first: a crash after the first removal left a
/// hole between the not yet cut first segment and the surviving later ones, and the open
/// failed with `Corrupt`, "the segment ends at offset 14 but the next one starts at 28",
/// after a process crash as much as after a power loss.)
#[test]
fn a_crash_anywhere_in_a_truncation_across_segments_leaves_a_log_that_opens() {
    let disk = SimStorage::new();
    let end = several_segments(&disk);
    let tap = Tap::new(disk, CrashSnapshots::default());
    let log = Partition::open_with_env("/p", config(), env(Arc::new(tap.clone()))).unwrap();
    assert!(log.segment_count() >= 4);
    // The divergence point: offset 5, in the first segment.
    tap.hook.take();
    assert_eq!(log.truncate_to(5).unwrap(), 5);
    let snaps = tap.hook.take();
    drop(log);
    assert!(snaps.len() > 4);
    let mut failures = Vec::new();
    for (n, disk) in snaps.into_iter().enumerate() {
        let what = format!("crash point {n}");
        match Partition::open_with_env("/p", config(), env(Arc::new(disk))) {
            Ok(log) => {
                let got_end = log.log_end_offset();
                if !(5..=end).contains(&got_end) {
                    let segs: Vec<(u64, u64)> = log
                        .segments()
                        .iter()
                        .map(|s| (s.base_offset(), s.next_offset()))
                        .collect();
                    failures.push(format!(
                        "{what}: opened with log end {got_end} (was {end}, truncated to 5), segments {segs:?}, start {}",
                        log.log_start_offset()
                    ));
                }
            }
            Err(e) => failures.push(format!("{what}: open failed: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Kafka's `UnifiedLogTest.testTruncateToEndOffsetClearsEpochCache`: truncating at *or
/// beyond* the log end drops an epoch entry begun at the log end (the replica became
/// leader and wrote nothing): Kafka truncates the epoch cache from the log end, not from
/// the requested offset.
#[test]
fn truncating_beyond_the_log_end_drops_an_epoch_begun_at_the_log_end() {
    let disk = SimStorage::new();
    let log = Partition::open_with_env("/p", config(), env(Arc::new(disk))).unwrap();
    log.assign_leader_epoch(0).unwrap();
    for offset in 0..3 {
        log.append(value(offset)).unwrap();
    }
    log.assign_leader_epoch(1).unwrap();
    assert_eq!(entries(&log), [(0, 0), (1, 3)]);
    assert_eq!(log.truncate_to(4).unwrap(), 3);
    assert_eq!(entries(&log), [(0, 0)], "truncate_to(log end + 1)");
}
