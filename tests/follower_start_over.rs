//! A follower's empty log taking a first batch that holds its start (deleted records put
//! the leader's log start inside the batch) starts over at the batch's base. Readers on
//! other threads read without the writer lock: what they see while it does so must stay a
//! log they could have seen before or after — its end and high watermark never go back.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use common::tap::{DiskOp, Hook, Tap};
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

/// Takes the disk as power loss and as a process crash leave it after every operation.
#[derive(Debug, Default)]
struct Snapshots(Mutex<Vec<SimStorage>>);

impl Hook for Snapshots {
    fn after(&self, _: DiskOp, disk: &SimStorage) {
        let mut snaps = self.0.lock().unwrap();
        let seed = snaps.len() as u64;
        snaps.push(disk.power_loss(seed));
        snaps.push(disk.process_crash());
    }
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
    let tap = Tap::new(start, Snapshots::default());
    let log = Partition::open_with_env("/p", config(), env(Arc::new(tap.clone()))).unwrap();
    assert_eq!(log.append_as_follower(&batch).unwrap(), 4..7);
    log.flush().unwrap();
    let snaps = std::mem::take(&mut *tap.hook.0.lock().unwrap());
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
