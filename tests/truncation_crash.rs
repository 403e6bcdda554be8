//! Truncation as a follower does it at a divergence point: a crash after any disk
//! operation of a truncation across segments leaves a log that opens, and truncating at
//! or past the log end drops an epoch begun there (Kafka's `UnifiedLog.truncateTo`).

mod common;

use std::sync::{Arc, Mutex};

use common::tap::{DiskOp, Hook, Tap};
use streamlog::{Env, LogConfig, ManualClock, Partition, Record, SimStorage};

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

fn value(offset: u64) -> Record {
    Record::new(format!("v{offset:04}").into_bytes())
}

fn entries(log: &Partition) -> Vec<(i32, u64)> {
    log.leader_epochs()
        .iter()
        .map(|e| (e.epoch, e.start_offset))
        .collect()
}

/// Takes the disk as a power loss and as a process crash leave it after every operation.
#[derive(Debug, Default)]
struct Snapshots(Mutex<Vec<(String, SimStorage)>>);

impl Hook for Snapshots {
    fn after(&self, op: DiskOp, disk: &SimStorage) {
        let mut snaps = self.0.lock().unwrap();
        let seed = snaps.len() as u64;
        let what = format!("after op #{} ({op:?})", snaps.len() / 2);
        snaps.push((format!("{what}, power loss"), disk.power_loss(seed)));
        snaps.push((format!("{what}, process crash"), disk.process_crash()));
    }
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
    let tap = Tap::new(disk, Snapshots::default());
    let log = Partition::open_with_env("/p", config(), env(Arc::new(tap.clone()))).unwrap();
    assert!(log.segment_count() >= 4);
    // The divergence point: offset 5, in the first segment.
    tap.hook.0.lock().unwrap().clear();
    assert_eq!(log.truncate_to(5).unwrap(), 5);
    let snaps = std::mem::take(&mut *tap.hook.0.lock().unwrap());
    drop(log);
    assert!(snaps.len() > 4);
    let mut failures = Vec::new();
    for (what, disk) in snaps {
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
