//! Unit tests of the partition log's internals: rolls, recovery bookkeeping and group
//! commit. Behaviour seen through the public API is tested in `tests/`.

use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::clock::ManualClock;
use crate::storage::{SimStorage, Storage};

fn env(sim: &SimStorage) -> Env {
    Env {
        storage: Arc::new(sim.clone()),
        clock: Arc::new(ManualClock::new(1_000)),
    }
}

fn small() -> LogConfig {
    LogConfig::default()
        .segment_bytes(1024)
        .segment_index_bytes(64)
        .index_interval_bytes(100)
}

/// The log at `/p` on `sim` with [`small`]'s config (opened, or opened again).
fn open_small(sim: &SimStorage) -> Partition {
    Partition::open_with_env("/p", small(), env(sim)).unwrap()
}

fn values(log: &Partition, from: u64) -> Vec<(u64, Vec<u8>)> {
    log.read_to_log_end(from)
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            (r.offset(), r.value().unwrap_or_default().to_vec())
        })
        .collect()
}

fn value(i: u64) -> Vec<u8> {
    format!("value-{i:05}").into_bytes()
}

#[test]
fn reads_cross_many_rolled_segments_in_order() {
    let sim = SimStorage::default();
    let log = open_small(&sim);
    for i in 0..500 {
        assert_eq!(log.append(Record::new(value(i))).unwrap(), i);
    }
    assert!(log.segment_count() > 10, "{} segments", log.segment_count());
    let all = values(&log, 0);
    assert_eq!(all.len(), 500);
    for (i, (offset, v)) in all.iter().enumerate() {
        assert_eq!((*offset, v), (i as u64, &value(i as u64)));
    }
    for start in [0, 1, 37, 250, 499, 500] {
        assert_eq!(
            values(&log, start).first().map(|(o, _)| *o),
            (start < 500).then_some(start)
        );
    }
}

#[test]
fn a_roll_flushes_the_old_segment_and_moves_the_recovery_point() {
    let sim = SimStorage::default();
    let log = open_small(&sim);
    assert_eq!(log.recovery_point(), 0);
    while log.segment_count() < 3 {
        log.append(Record::new(vec![7; 50])).unwrap();
    }
    let active_base = log.segments().last().unwrap().base_offset();
    assert_eq!(log.recovery_point(), active_base);
}

#[test]
fn clean_reopen_restores_offsets_without_recovery() {
    let sim = SimStorage::default();
    let log = open_small(&sim);
    for chunk in 0..10 {
        log.append_batch(
            (chunk * 30..chunk * 30 + 30)
                .map(|i| Record::new(value(i)))
                .collect(),
        )
        .unwrap();
    }
    for i in 300..400 {
        log.append(Record::new(value(i))).unwrap();
    }
    let before = (log.log_end_offset(), log.segment_count(), values(&log, 0));
    log.close().unwrap();
    let log = open_small(&sim);
    assert_eq!(
        (log.log_end_offset(), log.segment_count(), values(&log, 0)),
        before
    );
    assert_eq!(log.recovery_point(), 400);
}

#[test]
fn crash_reopen_keeps_everything_the_page_cache_had() {
    let sim = SimStorage::default();
    let log = open_small(&sim);
    for i in 0..300 {
        log.append(Record::new(value(i))).unwrap();
    }
    let after = sim.process_crash();
    let reopened = Partition::open_with_env("/p", small(), env(&after)).unwrap();
    assert_eq!(reopened.log_end_offset(), 300);
    assert_eq!(values(&reopened, 0), values(&log, 0));
    assert_eq!(reopened.append(Record::new(value(300))).unwrap(), 300);
}

#[test]
fn flushed_records_survive_any_power_loss() {
    let sim = SimStorage::default();
    let log = open_small(&sim);
    for i in 0..150 {
        log.append(Record::new(value(i))).unwrap();
    }
    log.flush().unwrap();
    for i in 150..200 {
        log.append(Record::new(value(i))).unwrap();
    }
    for seed in 0..100 {
        let after = sim.power_loss(seed);
        let reopened = Partition::open_with_env("/p", small(), env(&after)).unwrap();
        let got = values(&reopened, 0);
        assert!(got.len() >= 150, "seed {seed}: {} records", got.len());
        for (i, (offset, v)) in got.iter().enumerate() {
            assert_eq!((*offset, v), (i as u64, &value(i as u64)), "seed {seed}");
        }
    }
}

/// Eight threads each append `per_thread` records to one log with `FlushPolicy::Always`;
/// returns the log and the fsyncs the appends took.
fn durable_appends_from_8_threads(sim: &SimStorage, per_thread: u64) -> (Arc<Partition>, u64) {
    let config = LogConfig::default().flush_policy(FlushPolicy::Always);
    let log = Arc::new(Partition::open_with_env("/p", config, env(sim)).unwrap());
    let syncs_before = sim.sync_count();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..per_thread {
                    log.append(Record::new(value(t * 1000 + i))).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let syncs = sim.sync_count() - syncs_before;
    (log, syncs)
}

#[test]
fn group_commit_shares_fsyncs_between_threads() {
    let sim = SimStorage::default();
    let (log, syncs) = durable_appends_from_8_threads(&sim, 200);
    assert_eq!(log.log_end_offset(), 1600);
    assert!(syncs <= 1600, "{syncs} fsyncs for 1600 appends");
    // Every append returned only after its bytes were synced.
    let after = sim.power_loss(7);
    let reopened = Partition::open_with_env("/p", LogConfig::default(), env(&after)).unwrap();
    assert_eq!(reopened.log_end_offset(), 1600);
}

#[test]
fn group_commit_gathers_the_appenders_the_last_fsync_released() {
    // Left alone, eight appenders on a slow disk split into two groups that take turns
    // (each fsync covering about four); the syncer waits for the released ones instead.
    let sim = SimStorage::default();
    // Slow enough that the gathering window (a quarter of a sync) dwarfs the scheduling
    // delays of a loaded 2-core machine.
    sim.sync_latency(std::time::Duration::from_millis(20));
    let (_log, syncs) = durable_appends_from_8_threads(&sim, 40);
    assert!(
        syncs * 5 <= 320,
        "{syncs} fsyncs for 320 appends: fewer than 5 appends per fsync"
    );
}

/// A durable log of ten records whose next fsync takes `latency`.
fn durable_log_with_slow_syncs(
    sim: &SimStorage,
    latency: std::time::Duration,
) -> (Arc<Partition>, LogConfig) {
    let config = LogConfig::default()
        .segment_index_bytes(4096)
        .flush_policy(FlushPolicy::Always);
    let log = Arc::new(Partition::open_with_env("/p", config.clone(), env(sim)).unwrap());
    for i in 0..10 {
        log.append(Record::new(value(i))).unwrap();
    }
    sim.sync_latency(latency);
    (log, config)
}

/// Appends record `i` from a new thread; returns once the append is in the log (its
/// appender then waits for its fsync).
fn append_in_thread(log: &Arc<Partition>, i: u64) -> std::thread::JoinHandle<Result<u64>> {
    let end = log.log_end_offset();
    let appender = log.clone();
    let thread = std::thread::spawn(move || appender.append(Record::new(value(i))));
    while log.log_end_offset() == end {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    thread
}

#[test]
fn an_fsync_in_flight_across_a_truncation_does_not_cover_later_appends() {
    let sim = SimStorage::default();
    let (log, config) = durable_log_with_slow_syncs(&sim, std::time::Duration::from_millis(300));
    // Record 10's appender fsyncs (slowly) to offset 11 while the log is cut to 5.
    let cut = append_in_thread(&log, 10);
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(log.truncate_to(5).unwrap(), 5);
    sim.sync_latency(std::time::Duration::ZERO);
    // Offsets 5..11 are acknowledged again: each needs an fsync of its own.
    for i in 5..11 {
        let syncs = sim.sync_count();
        assert_eq!(log.append(Record::new(value(100 + i))).unwrap(), i);
        assert!(
            sim.sync_count() > syncs,
            "append of offset {i} was not synced"
        );
    }
    assert!(matches!(
        cut.join().unwrap(),
        Err(Error::TruncatedBeforeDurable {
            append_end: 11,
            log_end: 5
        })
    ));
    let expected: Vec<_> = (0..5)
        .map(|i| (i, value(i)))
        .chain((5..11).map(|i| (i, value(100 + i))))
        .collect();
    for seed in 0..20 {
        let after = sim.power_loss_with(
            seed,
            crate::storage::PowerLoss {
                garbage: false,
                lose_indexes: false,
            },
        );
        let reopened = Partition::open_with_env("/p", config.clone(), env(&after)).unwrap();
        assert_eq!(values(&reopened, 0), expected, "power loss seed {seed}");
    }
}

#[test]
fn an_appender_whose_records_are_truncated_away_fails_at_once() {
    let sim = SimStorage::default();
    let (log, _) = durable_log_with_slow_syncs(&sim, std::time::Duration::from_millis(200));
    let syncer = append_in_thread(&log, 10);
    let waiter = append_in_thread(&log, 11);
    assert_eq!(log.truncate_to(5).unwrap(), 5);
    sim.sync_latency(std::time::Duration::ZERO);
    for appender in [syncer, waiter] {
        // Without the log growing again: an appender that kept waiting for its cut records
        // would never return.
        assert!(matches!(
            appender.join().unwrap(),
            Err(Error::TruncatedBeforeDurable { log_end: 5, .. })
        ));
    }
    assert_eq!(log.log_end_offset(), 5);
    assert_eq!(log.append(Record::new(value(5))).unwrap(), 5);
}

#[test]
fn a_full_truncation_fails_the_appenders_still_waiting() {
    let sim = SimStorage::default();
    let (log, _) = durable_log_with_slow_syncs(&sim, std::time::Duration::from_millis(200));
    let appender = append_in_thread(&log, 10);
    // A follower restarting past its log end: every record goes, the unsynced one too.
    assert_eq!(log.truncate_fully_and_start_at(100).unwrap(), 100);
    assert!(matches!(
        appender.join().unwrap(),
        Err(Error::TruncatedBeforeDurable {
            append_end: 11,
            log_end: 100
        })
    ));
    sim.sync_latency(std::time::Duration::ZERO);
    assert_eq!(log.append(Record::new(value(100))).unwrap(), 100);
}

#[test]
fn a_truncation_that_fails_half_way_fails_the_appenders_still_waiting() {
    let sim = SimStorage::default();
    let (log, config) = durable_log_with_slow_syncs(&sim, std::time::Duration::ZERO);
    assert_eq!(log.delete_records_before(3).unwrap(), 3);
    sim.sync_latency(std::time::Duration::from_millis(200));
    let appender = append_in_thread(&log, 10);
    // Cutting below the log start restarts the log; the disk refuses the new segment.
    sim.fail_writes(true);
    assert!(log.truncate_to(1).is_err());
    sim.fail_writes(false);
    assert!(matches!(
        appender.join().unwrap(),
        Err(Error::Closed { .. })
    ));
    drop(log);
    let after = sim.power_loss(3);
    let reopened = Partition::open_with_env("/p", config, env(&after)).unwrap();
    assert!(
        reopened.log_end_offset() <= 10,
        "record 10 was never acknowledged"
    );
}

/// Breaks syncs (with `broken`) while appender 10 fsyncs slowly and appender 11 waits for
/// it: the syncer gets the I/O error and the waiter `Closed`.
fn sync_breaks_under_two_appenders(
    sim: &SimStorage,
    broken: impl Fn(bool),
) -> (Arc<Partition>, LogConfig) {
    let (log, config) = durable_log_with_slow_syncs(sim, std::time::Duration::from_millis(300));
    let syncer = append_in_thread(&log, 10);
    let waiter = append_in_thread(&log, 11);
    broken(true);
    assert!(matches!(syncer.join().unwrap(), Err(Error::Io { .. })));
    // Never answered by a retried fsync: the failed one may have dropped its pages.
    assert!(matches!(waiter.join().unwrap(), Err(Error::Closed { .. })));
    broken(false);
    sim.sync_latency(std::time::Duration::ZERO);
    (log, config)
}

/// A close that starts while an appender waits for its fsync flushes that appender's
/// record with everything else: the append succeeds instead of failing `Closed`.
#[test]
fn a_close_makes_waiting_appenders_durable_instead_of_failing_them() {
    let sim = SimStorage::default();
    let (log, config) = durable_log_with_slow_syncs(&sim, std::time::Duration::from_millis(300));
    let syncer = append_in_thread(&log, 10);
    // Record 10's fsync is in flight; record 11 waits for the next one.
    std::thread::sleep(std::time::Duration::from_millis(50));
    let waiter = append_in_thread(&log, 11);
    log.shutdown().unwrap();
    assert_eq!(syncer.join().unwrap().unwrap(), 10);
    assert_eq!(waiter.join().unwrap().unwrap(), 11);
    drop(log);
    let after = sim.power_loss(5);
    let reopened = Partition::open_with_env("/p", config, env(&after)).unwrap();
    assert_eq!(
        values(&reopened, 10),
        vec![(10, value(10)), (11, value(11))]
    );
}

/// A group-commit fsync that fails while a close is under way: the close's own flush is a
/// retried fsync, which is never trusted (the failed one may have dropped the pages). The
/// appender that waited for the failed fsync fails `Closed`, as without a close, and the
/// close leaves no clean-shutdown marker over bytes nobody can vouch for.
#[test]
fn an_fsync_failing_during_a_close_is_not_retried_by_the_close() {
    let sim = SimStorage::default();
    let (log, config) = durable_log_with_slow_syncs(&sim, std::time::Duration::from_millis(600));
    let syncer = append_in_thread(&log, 10);
    // Record 10's fsync is in flight; record 11 waits for the next one.
    std::thread::sleep(std::time::Duration::from_millis(50));
    let waiter = append_in_thread(&log, 11);
    // The close starts while that fsync is in flight; its own fsync ends after it.
    std::thread::sleep(std::time::Duration::from_millis(150));
    let closer = {
        let log = log.clone();
        std::thread::spawn(move || log.shutdown())
    };
    std::thread::sleep(std::time::Duration::from_millis(150));
    sim.fail_syncs(true);
    assert!(matches!(syncer.join().unwrap(), Err(Error::Io { .. })));
    // The close's fsync (a retry) succeeds.
    sim.fail_syncs(false);
    // The failure went to its syncer; the close, as for a log a failure closed before,
    // writes nothing.
    closer.join().unwrap().unwrap();
    assert!(matches!(waiter.join().unwrap(), Err(Error::Closed { .. })));
    assert!(!sim.exists(&Path::new("/p").join(CLEAN_SHUTDOWN_FILE)));
    sim.sync_latency(std::time::Duration::ZERO);
    drop(log);
    let reopened = Partition::open_with_env("/p", config, env(&sim)).unwrap();
    let kept = values(&reopened, 0);
    assert_eq!(
        kept[..10],
        (0..10).map(|i| (i, value(i))).collect::<Vec<_>>()
    );
}

#[test]
fn a_failed_fsync_closes_the_log_and_fails_every_waiting_appender() {
    let sim = SimStorage::default();
    let (log, config) = sync_breaks_under_two_appenders(&sim, |on| sim.fail_syncs(on));
    assert!(matches!(
        log.append(Record::new(value(12))),
        Err(Error::Closed { .. })
    ));
    drop(log);
    let reopened = Partition::open_with_env("/p", config, env(&sim)).unwrap();
    let kept = values(&reopened, 0);
    assert_eq!(
        kept[..10],
        (0..10).map(|i| (i, value(i))).collect::<Vec<_>>()
    );
}

#[test]
fn a_storage_that_panics_in_a_sync_fails_the_appenders_instead_of_hanging_them() {
    let sim = SimStorage::default();
    sync_breaks_under_two_appenders(&sim, |on| sim.panic_on_sync(on));
}

#[test]
fn a_failed_flush_closes_the_log() {
    let sim = SimStorage::default();
    let log = open_small(&sim);
    log.append(Record::new(value(0))).unwrap();
    sim.fail_syncs(true);
    assert!(matches!(log.flush(), Err(Error::Io { .. })));
    sim.fail_syncs(false);
    // A flush that now succeeds would move the recovery point over bytes the failed one
    // may have lost.
    assert!(matches!(log.flush(), Err(Error::Closed { .. })));
    assert_eq!(log.recovery_point(), 0);
}

/// A broker closes a log that a storage failure closed, then reopens the directory
/// while applications may still hold the old handle: closing must release the directory
/// (without writing a clean-shutdown marker) and the old handle must stay closed.
#[test]
fn closing_a_log_a_failed_flush_closed_releases_its_directory() {
    let sim = SimStorage::default();
    let log = open_small(&sim);
    log.append(Record::new(value(0))).unwrap();
    assert!(!log.is_closed());
    sim.fail_syncs(true);
    assert!(log.flush().is_err());
    sim.fail_syncs(false);
    assert!(log.is_closed());
    assert!(matches!(
        Partition::open_with_env("/p", small(), env(&sim)),
        Err(Error::DirectoryLocked { .. })
    ));
    log.shutdown().unwrap();
    assert!(!crate::storage::Storage::exists(
        &sim,
        &Path::new("/p").join(CLEAN_SHUTDOWN_FILE)
    ));
    let reopened = open_small(&sim);
    assert_eq!(values(&reopened, 0), vec![(0, value(0))]);
    assert!(matches!(
        log.append(Record::new(value(1))),
        Err(Error::Closed { .. })
    ));
    assert_eq!(reopened.log_end_offset(), 1);
}

#[test]
fn a_log_start_move_that_fails_to_persist_closes_the_log_instead_of_answering_a_retry() {
    let sim = SimStorage::default();
    let log = open_small(&sim);
    for i in 0..6 {
        log.append(Record::new(value(i))).unwrap();
    }
    log.flush().unwrap();
    sim.fail_syncs(true);
    assert!(log.delete_records_before(4).is_err());
    sim.fail_syncs(false);
    // The log start moved in memory only: a retry answered Ok would be undone by a crash.
    assert!(matches!(
        log.delete_records_before(4),
        Err(Error::Closed { .. })
    ));
}

/// Recovery completes a leader-epoch checkpoint that lacks an epoch the recovered batches
/// carry (a file restored from a backup, or written by a tool), as Kafka's segment
/// recovery does; a clean open trusts the file.
#[test]
fn an_unclean_open_takes_newer_epochs_from_the_recovered_batches() {
    use crate::log::leader_epoch::LEADER_EPOCH_FILE;
    let sim = SimStorage::default();
    let config = || small().auto_high_watermark(false);
    let log = Partition::open_with_env("/p", config(), env(&sim)).unwrap();
    log.assign_leader_epoch(0).unwrap();
    log.append(Record::new(value(0))).unwrap();
    log.flush().unwrap();
    let only_epoch_0 = sim
        .read_file(Path::new("/p").join(LEADER_EPOCH_FILE))
        .unwrap();
    log.assign_leader_epoch(3).unwrap();
    log.append(Record::new(value(1))).unwrap();
    log.append(Record::new(value(2))).unwrap();
    // A crash now leaves no clean-shutdown marker; a close does.
    let crashed = sim.process_crash();
    drop(log);
    let epochs = |log: &Partition| {
        log.leader_epochs()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect::<Vec<_>>()
    };

    // Clean shutdown: the file is trusted as it is.
    sim.write_file(Path::new("/p").join(LEADER_EPOCH_FILE), &only_epoch_0);
    let log = Partition::open_with_env("/p", config(), env(&sim)).unwrap();
    assert_eq!(epochs(&log), [(0, 0)]);
    drop(log);

    // After a crash the segments after the recovery point are re-read, epochs and all.
    crashed.write_file(Path::new("/p").join(LEADER_EPOCH_FILE), &only_epoch_0);
    let log = Partition::open_with_env("/p", config(), env(&crashed)).unwrap();
    assert_eq!(epochs(&log), [(0, 0), (3, 1)]);
    assert_eq!(log.end_offset_for_epoch(0), Some((0, 1)));
}

/// A follower that truncated its own epoch-1 records, copied the new leader's epoch-2
/// records at the same offsets and lost power must not come back with the old records
/// under the new epoch (then its next divergence check finds nothing to cut and the two
/// replicas disagree below the high watermark).
#[test]
fn a_truncation_is_durable_before_the_batches_that_replace_the_cut_records() {
    use crate::replication::{EpochEndOffset, truncation_offset};
    let config = || small().auto_high_watermark(false);
    let values_of = |log: &Partition| {
        values(log, 0)
            .into_iter()
            .map(|(_, v)| v)
            .collect::<Vec<_>>()
    };
    let leader_disk = SimStorage::default();
    let leader = Partition::open_with_env("/l", config(), env(&leader_disk)).unwrap();
    leader.assign_leader_epoch(0).unwrap();
    for i in 0..5 {
        leader.append(Record::new(value(i))).unwrap();
    }
    leader.assign_leader_epoch(2).unwrap();
    for i in 5..8 {
        leader.append(Record::new(value(200 + i))).unwrap();
    }
    let sim = SimStorage::default();
    let follower = Partition::open_with_env("/p", config(), env(&sim)).unwrap();
    follower.assign_leader_epoch(0).unwrap();
    for i in 0..5 {
        follower.append(Record::new(value(i))).unwrap();
    }
    follower.assign_leader_epoch(1).unwrap();
    for i in 5..10 {
        follower.append(Record::new(value(100 + i))).unwrap();
    }
    follower.flush().unwrap();
    // Epoch 1 ends at 5 on the leader: the follower cuts there and copies epoch 2.
    assert_eq!(leader.end_offset_for_epoch(1).unwrap(), (0, 5));
    follower.truncate_to(5).unwrap();
    let mut batch = Vec::new();
    let copied: Vec<Record> = (5..8).map(|i| Record::new(value(200 + i))).collect();
    crate::record::encode_batch(&copied, crate::record::Compression::None, 0, &mut batch).unwrap();
    crate::record::set_base_offset(&mut batch, 5);
    crate::record::set_partition_leader_epoch(&mut batch, 2);
    follower.append_as_follower(&batch).unwrap();
    for seed in 0..32 {
        let after = sim.power_loss_with(
            seed,
            crate::storage::PowerLoss {
                garbage: false,
                lose_indexes: false,
            },
        );
        let reopened = Partition::open_with_env("/p", config(), env(&after)).unwrap();
        let asked = reopened.latest_epoch().unwrap();
        let answer = leader
            .end_offset_for_epoch(asked)
            .map(|(epoch, end_offset)| EpochEndOffset { epoch, end_offset });
        let cut = truncation_offset(
            answer,
            reopened.log_end_offset(),
            reopened.high_watermark(),
            |e| {
                reopened
                    .end_offset_for_epoch(e)
                    .map(|(epoch, end_offset)| EpochEndOffset { epoch, end_offset })
            },
        );
        reopened.truncate_to(cut.offset).unwrap();
        let kept = values_of(&reopened);
        assert_eq!(
            kept[..],
            values_of(&leader)[..kept.len()],
            "power loss seed {seed}: the follower's log is not a prefix of the leader's"
        );
    }
}

#[test]
fn delete_records_before_the_log_end_keeps_one_empty_segment() {
    let sim = SimStorage::default();
    let log = open_small(&sim);
    for i in 0..100 {
        log.append(Record::new(value(i))).unwrap();
    }
    assert_eq!(log.delete_records_before(100).unwrap(), 100);
    assert_eq!(log.segment_count(), 1);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 100));
    assert!(matches!(
        log.read_from(99),
        Err(Error::OffsetOutOfRange {
            requested: 99,
            log_start: 100,
            log_end: 100
        })
    ));
    assert_eq!(log.append(Record::new(value(100))).unwrap(), 100);
    drop(log);
    let log = open_small(&sim);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 101));
}

#[test]
fn truncate_below_log_start_restarts_the_log_there() {
    let sim = SimStorage::default();
    let log = open_small(&sim);
    for i in 0..100 {
        log.append(Record::new(value(i))).unwrap();
    }
    log.delete_records_before(40).unwrap();
    assert_eq!(log.truncate_to(20).unwrap(), 20);
    assert_eq!(
        (
            log.log_start_offset(),
            log.log_end_offset(),
            log.segment_count()
        ),
        (20, 20, 1)
    );
    assert_eq!(log.append(Record::new(value(20))).unwrap(), 20);
}

#[test]
fn partition_and_records_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Partition>();
    send::<Records>();
}

#[test]
fn every_messages_policy_flushes_after_n_records() {
    let sim = SimStorage::default();
    let config = small()
        .segment_bytes(1 << 20)
        .flush_policy(FlushPolicy::EveryMessages(10));
    let log = Partition::open_with_env("/p", config, env(&sim)).unwrap();
    for i in 0..9 {
        log.append(Record::new(value(i))).unwrap();
    }
    assert_eq!(log.recovery_point(), 0);
    log.append(Record::new(value(9))).unwrap();
    assert_eq!(log.recovery_point(), 10);
    log.append_batch((10..25).map(|i| Record::new(value(i))).collect())
        .unwrap();
    assert_eq!(log.recovery_point(), 25);
}

#[test]
fn interval_policy_flushes_on_append_once_the_interval_passed() {
    let sim = SimStorage::default();
    let clock = ManualClock::new(0);
    let env = Env {
        storage: Arc::new(sim.clone()),
        clock: Arc::new(clock.clone()),
    };
    let config = small()
        .segment_bytes(1 << 20)
        .flush_policy(FlushPolicy::Interval(std::time::Duration::from_secs(3600)));
    let log = Partition::open_with_env("/p", config, env).unwrap();
    log.append(Record::new(value(0))).unwrap();
    assert_eq!(log.recovery_point(), 0);
    clock.advance_ms(3_600_000);
    log.append(Record::new(value(1))).unwrap();
    assert_eq!(log.recovery_point(), 2);
}

/// `Duration::MAX` (an application's "practically never") is more milliseconds than an
/// i64 holds: it must never pass, not wrap to a negative interval that passes at once.
#[test]
fn an_interval_policy_of_duration_max_never_flushes_on_append() {
    let sim = SimStorage::default();
    let config = small().flush_policy(FlushPolicy::Interval(std::time::Duration::MAX));
    let log = Partition::open_with_env("/p", config, env(&sim)).unwrap();
    let before = sim.sync_count();
    for i in 0..5 {
        log.append(Record::new(value(i))).unwrap();
    }
    assert_eq!((sim.sync_count() - before, log.recovery_point()), (0, 0));
}

#[test]
fn interval_policy_flushes_in_the_background_without_appends() {
    let sim = SimStorage::default();
    let config = small()
        .segment_bytes(1 << 20)
        .flush_policy(FlushPolicy::Interval(std::time::Duration::from_millis(5)));
    let env = Env {
        storage: Arc::new(sim.clone()),
        clock: Arc::new(crate::clock::SystemClock),
    };
    let log = Partition::open_with_env("/p", config, env).unwrap();
    log.append(Record::new(value(0))).unwrap();
    // The flusher thread runs on its own; wait for it (bounded), not for a fixed time.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while log.recovery_point() < 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(log.recovery_point(), 1);
}

#[test]
fn garbage_that_looks_like_a_sane_index_is_detected_and_rebuilt() {
    let sim = SimStorage::default();
    let log = Partition::open_with_env("/p", small().segment_bytes(1 << 20), env(&sim)).unwrap();
    for i in 0..200 {
        log.append(Record::new(value(i))).unwrap();
    }
    let expected = values(&log, 0);
    log.close().unwrap();
    // Increasing entries inside the log, but not at batch boundaries.
    let mut garbage = Vec::new();
    for k in 1..5u32 {
        garbage.extend_from_slice(&(k * 10).to_be_bytes());
        garbage.extend_from_slice(&(k * 333).to_be_bytes());
    }
    sim.write_file("/p/00000000000000000000.index", &garbage);
    let log = Partition::open_with_env("/p", small().segment_bytes(1 << 20), env(&sim)).unwrap();
    assert_eq!(values(&log, 0), expected);
    for start in [0, 17, 99, 150, 199] {
        assert_eq!(values(&log, start)[0].0, start);
    }
}

/// Encodes `count` records as one batch based at `base`.
fn batch_at(base: u64, count: u64) -> Vec<u8> {
    let records: Vec<Record> = (base..base + count)
        .map(|i| Record::new(value(i)).with_timestamp(i as i64))
        .collect();
    let mut out = Vec::new();
    crate::record::encode_batch(&records, crate::record::Compression::None, 0, &mut out).unwrap();
    crate::record::set_base_offset(&mut out, base as i64);
    out
}

fn compacted() -> LogConfig {
    small().cleanup_policy(crate::config::CleanupPolicy::Compact)
}

#[test]
fn follower_appends_keep_their_offsets_and_gaps() {
    let sim = SimStorage::default();
    let log = Partition::open_with_env("/p", compacted(), env(&sim)).unwrap();
    let mut input = batch_at(0, 3);
    input.extend(batch_at(10, 2));
    assert_eq!(log.append_as_follower(&input).unwrap(), 0..12);
    assert_eq!(log.log_end_offset(), 12);
    let offsets: Vec<u64> = values(&log, 0).into_iter().map(|(o, _)| o).collect();
    assert_eq!(offsets, [0, 1, 2, 10, 11]);
    // Reading inside the gap gives the next record.
    assert_eq!(values(&log, 5)[0].0, 10);
}

#[test]
fn a_log_without_compaction_refuses_offset_gaps_from_a_follower() {
    let sim = SimStorage::default();
    let log = open_small(&sim);
    refuses_gaps(&log, |batches| log.append_as_follower(batches));
}

/// Checks that `append` (onto the empty `log`) refuses a batch past the log end and a gap
/// between two batches, writing nothing.
fn refuses_gaps(log: &Partition, append: impl Fn(&[u8]) -> Result<Range<u64>>) {
    let err = append(&batch_at(3, 1)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnexpectedAppendOffset {
                first: 3,
                last: 3,
                log_end: 0
            }
        ),
        "{err}"
    );
    let mut input = batch_at(0, 3);
    input.extend(batch_at(10, 2));
    assert!(matches!(append(&input), Err(Error::InvalidBatch { .. })));
    assert_eq!(log.log_end_offset(), 0);
}

/// A replica created under `delete` copying a leader whose log may hold gaps: its log
/// takes the gaps, writing the `.offset-gaps` marker (file and directory synced) before
/// the first one, and opens again with them after a power loss.
#[test]
fn a_follower_of_a_gapped_leader_marks_its_log_before_the_first_gap() {
    let sim = SimStorage::default();
    let marker = std::path::Path::new("/p").join(offset_gaps::OFFSET_GAPS_FILE);
    let log = open_small(&sim);
    assert!(!log.may_hold_offset_gaps());
    // Without a gap nothing changes.
    assert_eq!(log.append_from_leader(&batch_at(0, 3), true).unwrap(), 0..3);
    assert!(!log.may_hold_offset_gaps() && !sim.exists(&marker));

    let dir_syncs = sim.sync_dir_count();
    let mut input = batch_at(10, 2);
    input.extend(batch_at(20, 1));
    assert_eq!(log.append_from_leader(&input, true).unwrap(), 10..21);
    assert!(log.may_hold_offset_gaps() && sim.exists(&marker));
    assert!(sim.sync_dir_count() > dir_syncs);
    // Every segment, old and new, reads with the gaps.
    log.roll().unwrap();
    assert_eq!(
        log.append_from_leader(&batch_at(30, 1), true).unwrap(),
        30..31
    );
    let offsets =
        |log: &Partition| -> Vec<u64> { values(log, 0).into_iter().map(|(o, _)| o).collect() };
    assert_eq!(offsets(&log), [0, 1, 2, 10, 11, 20, 30]);
    assert_eq!(values(&log, 5)[0].0, 10);
    log.flush().unwrap();
    drop(log);

    for seed in 0..8 {
        let after = sim.power_loss(seed);
        let log = Partition::open_with_env("/p", small(), env(&after)).unwrap();
        assert!(log.may_hold_offset_gaps(), "seed {seed}");
        assert_eq!(offsets(&log), [0, 1, 2, 10, 11, 20, 30], "seed {seed}");
    }
}

/// The marker must be durable before a gap is written: when its sync fails, the log
/// closes (as on any failed sync) and the gapped batches are not written.
#[test]
fn a_gap_is_not_written_when_the_marker_cannot_be_made_durable() {
    let sim = SimStorage::default();
    let log = open_small(&sim);
    log.append_from_leader(&batch_at(0, 3), true).unwrap();
    let size = log.size_bytes();
    sim.fail_syncs(true);
    assert!(log.append_from_leader(&batch_at(10, 1), true).is_err());
    assert!(log.is_closed());
    assert!(!log.may_hold_offset_gaps());
    assert_eq!((log.log_end_offset(), log.size_bytes()), (3, size));
    assert_eq!(sim.file_len("/p/00000000000000000000.log"), Some(size));
}

/// A leader whose log holds no gaps cannot send one: a replica refuses it even when its
/// own log may hold gaps (it compacted once), and writes no marker for it.
#[test]
fn a_follower_of_a_leader_without_gaps_refuses_a_gap() {
    for config in [small(), compacted()] {
        let sim = SimStorage::default();
        let marker = std::path::Path::new("/p").join(offset_gaps::OFFSET_GAPS_FILE);
        let log = Partition::open_with_env("/p", config.clone(), env(&sim)).unwrap();
        let allowed = log.may_hold_offset_gaps();
        refuses_gaps(&log, |batches| log.append_from_leader(batches, false));
        assert_eq!(log.may_hold_offset_gaps(), allowed);
        assert_eq!(sim.exists(&marker), allowed, "{config:?}");
        // Batches that follow each other are taken.
        assert_eq!(
            log.append_from_leader(&batch_at(0, 3), false).unwrap(),
            0..3
        );
    }
}

#[test]
fn a_damaged_base_offset_is_caught_in_a_log_without_gaps() {
    let sim = SimStorage::default();
    let config = small().segment_bytes(1 << 20);
    let log = Partition::open_with_env("/p", config.clone(), env(&sim)).unwrap();
    for i in 0..20 {
        log.append(Record::new(value(i))).unwrap();
    }
    log.close().unwrap();
    // Bump the 6th batch's base offset: outside the CRC, so only contiguity can tell.
    let path = "/p/00000000000000000000.log";
    let mut bytes = sim.read_file(path).unwrap();
    let sixth = crate::record::BatchIter::new(&bytes, usize::MAX)
        .nth(5)
        .unwrap()
        .unwrap()
        .0;
    bytes[sixth + 7] ^= 0x08;
    sim.write_file(path, &bytes);
    // Caught at open (an index entry no longer matches) or at the latest when read.
    let err = match Partition::open_with_env("/p", config, env(&sim)) {
        Err(e) => e,
        Ok(log) => log
            .read_from(0)
            .unwrap()
            .find_map(Result::err)
            .expect("an error"),
    };
    assert!(
        matches!(err, Error::Corrupt { position, .. } if position == sixth as u64),
        "{err}"
    );
}

/// `skip_batch_crc` hands out a batch whose bytes no longer match its CRC (for a follower,
/// which checks it); by default, and for records always, that is `Corrupt`.
#[test]
fn skip_batch_crc_passes_a_damaged_batch_on_and_records_still_fail() {
    let sim = SimStorage::default();
    let log = open_small(&sim);
    for i in 0..3 {
        log.append(Record::new(value(i))).unwrap();
    }
    // Damaged under the open log (a bad sector read back, say).
    let path = "/p/00000000000000000000.log";
    let mut bytes = sim.read_file(path).unwrap();
    let second = crate::record::BatchIter::new(&bytes, usize::MAX)
        .nth(1)
        .unwrap()
        .unwrap();
    let at = second.0 + second.1.header().size_bytes() - 2; // in the record's value
    bytes[at] ^= 0x01;
    sim.write_file(path, &bytes);
    let unchecked = ReadOptions::default().skip_batch_crc(true);
    let mut all = log.read(0, unchecked).unwrap();
    let batches: Vec<_> = std::iter::from_fn(|| all.next_batch()).collect();
    assert_eq!(batches.len(), 3);
    assert!(batches.iter().all(Result::is_ok));
    let mut checked = log.read(0, ReadOptions::default()).unwrap();
    assert!(checked.next_batch().unwrap().is_ok());
    assert!(matches!(
        checked.next_batch(),
        Some(Err(Error::Corrupt { .. }))
    ));
    let records = log.read(0, unchecked).unwrap();
    let results: Vec<_> = records.collect();
    assert!(matches!(results.last(), Some(Err(Error::Corrupt { .. }))));
}

#[test]
fn follower_append_below_the_log_end_is_refused_with_the_offsets() {
    let sim = SimStorage::default();
    let log = open_small(&sim);
    log.append_batch((0..7).map(|i| Record::new(value(i))).collect())
        .unwrap();
    let err = log.append_as_follower(&batch_at(4, 3)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnexpectedAppendOffset {
                first: 4,
                last: 6,
                log_end: 7
            }
        ),
        "{err}"
    );
    assert_eq!(log.log_end_offset(), 7);
}

/// Kafka's `PartitionTest.testAppendRecordsAsFollowerBelowLogStartOffset`: an empty log
/// takes a first batch that holds its start (deleted records can put a leader's log start
/// mid-batch) and starts over at the batch's base; one that ends below it is refused.
#[test]
fn an_empty_follower_log_starts_over_at_a_batch_holding_its_start() {
    let sim = SimStorage::default();
    let log = open_small(&sim);
    assert_eq!(log.truncate_fully_and_start_at(5).unwrap(), 5);
    let err = log.append_as_follower(&batch_at(3, 1)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnexpectedAppendOffset {
                first: 3,
                last: 3,
                log_end: 5
            }
        ),
        "{err}"
    );
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (5, 5));

    assert_eq!(log.append_as_follower(&batch_at(4, 3)).unwrap(), 4..7);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (4, 7));
    assert!(
        log.high_watermark() >= 5,
        "the high watermark never moves back"
    );
    let offsets: Vec<u64> = values(&log, 4).iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, [4, 5, 6]);

    // No longer empty: a batch below the log end is refused again.
    assert!(matches!(
        log.append_as_follower(&batch_at(3, 5)),
        Err(Error::UnexpectedAppendOffset { log_end: 7, .. })
    ));
    drop(log);
    let log = open_small(&sim);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (4, 7));
}

/// Starting over below the recovery point lowers it durably first: a failure (or crash)
/// part way never leaves files that end below the recorded recovery point.
#[test]
fn a_start_over_below_the_recovery_point_that_fails_leaves_a_log_that_opens() {
    let sim = SimStorage::default();
    let log = open_small(&sim);
    assert_eq!(log.truncate_fully_and_start_at(5).unwrap(), 5);
    assert_eq!(log.recovery_point(), 5);
    sim.fail_writes(true);
    assert!(log.append_as_follower(&batch_at(4, 3)).is_err());
    sim.fail_writes(false);
    drop(log);
    let log = open_small(&sim);
    assert!(log.log_start_offset() <= log.log_end_offset());
    let end = log.log_end_offset();
    assert!(end == 4 || end == 5, "{end}");
}

/// A leader-less log's high watermark follows its end; a replica's is set by its leader
/// and must not fall back when the log starts over below it.
#[test]
fn a_replica_log_starting_over_below_its_start_keeps_its_high_watermark() {
    let sim = SimStorage::default();
    let config = small().auto_high_watermark(false);
    let log = Partition::open_with_env("/p", config, env(&sim)).unwrap();
    assert_eq!(log.truncate_fully_and_start_at(5).unwrap(), 5);
    assert_eq!(log.high_watermark(), 5);
    assert_eq!(log.append_as_follower(&batch_at(4, 3)).unwrap(), 4..7);
    assert_eq!(log.log_start_offset(), 4);
    assert_eq!(log.high_watermark(), 5);
}

/// The high watermark a replica keeps across a start over is the one it records: a crash
/// right after finds it where it was before the append (never lower).
#[test]
fn a_start_over_below_the_log_start_records_the_high_watermark_it_keeps() {
    let sim = SimStorage::default();
    let config = small().auto_high_watermark(false);
    let log = Partition::open_with_env("/p", config.clone(), env(&sim)).unwrap();
    assert_eq!(log.truncate_fully_and_start_at(5).unwrap(), 5);
    assert_eq!(log.append_as_follower(&batch_at(4, 3)).unwrap(), 4..7);
    assert_eq!(log.high_watermark(), 5);
    let after = sim.process_crash();
    let reopened = Partition::open_with_env("/p", config, env(&after)).unwrap();
    assert_eq!(reopened.log_end_offset(), 7);
    assert_eq!(
        reopened.high_watermark(),
        5,
        "the recorded high watermark moved back"
    );
}

#[test]
fn follower_batches_out_of_order_are_refused_before_anything_is_written() {
    let sim = SimStorage::default();
    let log = open_small(&sim);
    let mut input = batch_at(0, 2);
    input.extend(batch_at(5, 1));
    input.extend(batch_at(3, 1));
    assert!(matches!(
        log.append_as_follower(&input),
        Err(Error::InvalidBatch { .. })
    ));
    let mut torn = batch_at(0, 2);
    torn.extend(&batch_at(2, 2)[..30]);
    assert!(matches!(
        log.append_as_follower(&torn),
        Err(Error::InvalidBatch { .. })
    ));
    assert_eq!((log.log_end_offset(), log.size_bytes()), (0, 0));
}

#[test]
fn follower_batch_past_the_relative_offset_range_rolls_a_segment_at_its_base() {
    let sim = SimStorage::default();
    let config = compacted().segment_bytes(1 << 20);
    let log = Partition::open_with_env("/p", config.clone(), env(&sim)).unwrap();
    log.append_as_follower(&batch_at(0, 2)).unwrap();
    let far = i32::MAX as u64 + 2;
    log.append_as_follower(&batch_at(far, 2)).unwrap();
    let bases: Vec<u64> = log.segments().iter().map(|s| s.base_offset()).collect();
    assert_eq!(bases, [0, far]);
    log.append_as_follower(&batch_at(far + 2, 1)).unwrap();
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.log_end_offset(), far + 3);
    drop(log);
    let log = Partition::open_with_env("/p", config, env(&sim)).unwrap();
    let offsets: Vec<u64> = values(&log, 0).into_iter().map(|(o, _)| o).collect();
    assert_eq!(offsets, [0, 1, far, far + 1, far + 2]);
}

#[test]
fn a_restart_that_fails_midway_closes_the_log_and_reopening_recovers() {
    let sim = SimStorage::default();
    // One segment, never flushed: the truncation below goes straight to the restart.
    let config = small().segment_bytes(1 << 20).segment_index_bytes(4096);
    let log = Partition::open_with_env("/p", config.clone(), env(&sim)).unwrap();
    for i in 0..50 {
        log.append(Record::new(value(i))).unwrap();
    }
    log.delete_records_before(30).unwrap();
    // Truncating below the log start restarts the log; the disk refuses the new files.
    sim.fail_writes(true);
    assert_eq!(log.recovery_point(), 0);
    assert!(log.truncate_to(10).is_err());
    sim.fail_writes(false);
    assert!(matches!(
        log.append(Record::new(value(0))),
        Err(Error::Closed { .. })
    ));
    drop(log);
    let log = Partition::open_with_env("/p", config, env(&sim)).unwrap();
    assert!(log.log_start_offset() <= log.log_end_offset());
    let next = log.log_end_offset();
    assert_eq!(log.append(Record::new(value(next))).unwrap(), next);
}

#[test]
fn deleting_records_that_cannot_be_recorded_deletes_nothing() {
    let sim = SimStorage::default();
    let log = open_small(&sim);
    for i in 0..10 {
        log.append(Record::new(value(i))).unwrap();
    }
    sim.fail_writes(true);
    assert!(log.delete_records_before(6).is_err());
    assert_eq!(log.log_start_offset(), 0, "the records are still readable");
    assert_eq!(values(&log, 0).len(), 10);
    sim.fail_writes(false);
    // A failed write closes the log, as always; reopening finds the records there.
    assert!(matches!(
        log.delete_records_before(6),
        Err(Error::Closed { .. })
    ));
    drop(log);
    let log = open_small(&sim);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 10));
}

/// Whatever room the disk has left when `delete_records_before` runs (so that any of its
/// writes, the checkpoint, the leader-epoch file, a segment's rename, can be the one that
/// fills it part way), its answer says what happened: success deletes the records, now
/// and after a reopen; an error that leaves the log open keeps every record. An error
/// that closed it (the checkpoint's write failed, so whether it landed is unknown, as in
/// a crash mid-call) lets a reopen find either start, and every record from there.
#[test]
fn deleting_records_on_a_filling_disk_does_exactly_what_it_answers() {
    for room in (0..600).step_by(7) {
        let sim = SimStorage::default();
        let log = open_small(&sim);
        for epoch in 0..3 {
            log.assign_leader_epoch(epoch).unwrap();
            for _ in 0..4 {
                log.append(Record::new(value(log.log_end_offset())))
                    .unwrap();
            }
        }
        sim.room_left(Some(room));
        let deleted = log.delete_records_before(6);
        sim.room_left(None);
        let start = match &deleted {
            Ok(start) => *start,
            Err(_) => 0,
        };
        let expected: Vec<u64> = (start..12).collect();
        let offsets = |log: &Partition| -> Vec<u64> {
            values(log, log.log_start_offset())
                .into_iter()
                .map(|(o, _)| o)
                .collect()
        };
        let closed = log.is_closed();
        if !closed {
            assert_eq!(log.log_start_offset(), start, "room {room}: {deleted:?}");
            assert_eq!(offsets(&log), expected, "room {room}: {deleted:?}");
        }
        drop(log);
        let log = open_small(&sim);
        let start = if closed && deleted.is_err() {
            log.log_start_offset()
        } else {
            start
        };
        assert!(start == 0 || start == 6, "room {room} reopened at {start}");
        assert_eq!(
            log.log_start_offset(),
            start,
            "room {room} reopened: {deleted:?}"
        );
        let expected: Vec<u64> = (start..12).collect();
        assert_eq!(offsets(&log), expected, "room {room} reopened: {deleted:?}");
        assert!(
            log.leader_epochs().iter().all(|e| e.start_offset >= start),
            "room {room}: epochs below the start {start}: {:?}",
            log.leader_epochs()
        );
    }
}

#[test]
fn a_follower_batch_too_big_for_a_segment_is_refused_before_any_is_written() {
    let sim = SimStorage::default();
    let log = Partition::open_with_env("/p", small().segment_bytes(2048), env(&sim)).unwrap();
    let mut input = batch_at(0, 2);
    input.extend(batch_at(2, 200)); // far larger than 2 KiB
    assert!(matches!(
        log.append_as_follower(&input),
        Err(Error::BatchLargerThanSegment {
            segment_bytes: 2048,
            ..
        })
    ));
    assert_eq!((log.log_end_offset(), log.size_bytes()), (0, 0));
}

#[test]
fn a_truncation_that_fails_closes_the_log_and_reopening_gives_a_consistent_log() {
    let sim = SimStorage::default();
    let log = open_small(&sim);
    for i in 0..100 {
        log.append(Record::new(value(i))).unwrap();
    }
    sim.fail_writes(true);
    assert!(log.truncate_to(40).is_err());
    sim.fail_writes(false);
    assert!(matches!(
        log.append(Record::new(value(0))),
        Err(Error::Closed { .. })
    ));
    drop(log);
    let log = open_small(&sim);
    let got = values(&log, log.log_start_offset());
    for (offset, v) in &got {
        assert_eq!(v, &value(*offset));
    }
    assert_eq!(
        got.len() as u64,
        log.log_end_offset() - log.log_start_offset()
    );
    let next = log.log_end_offset();
    assert_eq!(log.append(Record::new(value(next))).unwrap(), next);
}

/// Appends `n` batches of two records, `value(2i)` and `value(2i + 1)`.
fn append_pairs(log: &Partition, n: u64) {
    for i in 0..n {
        log.append_batch(vec![
            Record::new(value(2 * i)),
            Record::new(value(2 * i + 1)),
        ])
        .unwrap();
    }
}

/// Raw batches read from `from` to the log end, as (base offset, records).
fn raw_batches(log: &Partition, from: u64, max_bytes: Option<usize>) -> (Vec<(i64, i32)>, u64) {
    let mut options = ReadOptions::default().bound(ReadBound::LogEnd);
    if let Some(max) = max_bytes {
        options = options.max_bytes(max);
    }
    let mut reader = log.read(from, options).unwrap();
    let mut batches = Vec::new();
    while let Some(bytes) = reader.next_batch() {
        let bytes = bytes.unwrap();
        let batch = crate::record::RecordBatch::parse(&bytes).unwrap();
        batch.ensure_valid().unwrap();
        let h = batch.header();
        batches.push((h.base_offset, h.records_count));
    }
    (batches, reader.next_offset())
}

#[test]
fn whole_batches_come_back_as_stored_across_segments_and_within_a_budget() {
    let sim = SimStorage::default();
    let log = open_small(&sim);
    append_pairs(&log, 40);
    assert!(log.segment_count() > 2);
    let (all, next) = raw_batches(&log, 0, None);
    assert_eq!(all.len(), 40);
    assert!(all.iter().enumerate().all(|(i, b)| *b == (2 * i as i64, 2)));
    assert_eq!(next, 80);
    // From the middle of a batch: that batch comes whole.
    let (from_mid, _) = raw_batches(&log, 7, None);
    assert_eq!(from_mid.first(), Some(&(6, 2)));
    assert_eq!(from_mid.len(), 37);
    // A budget smaller than one batch still returns one.
    let (one, next) = raw_batches(&log, 10, Some(1));
    assert_eq!((one, next), (vec![(10, 2)], 12));
    // The high watermark bounds a consumer's read.
    log.set_high_watermark(20);
    let mut reader = log.read(0, ReadOptions::default()).unwrap();
    let mut n = 0;
    while let Some(b) = reader.next_batch() {
        b.unwrap();
        n += 1;
    }
    assert_eq!((n, reader.next_offset()), (10, 20));
}

#[test]
fn a_damaged_batch_is_an_error_naming_its_file_and_position() {
    let sim = SimStorage::default();
    let log = open_small(&sim);
    log.append_batch(vec![Record::new(value(0))]).unwrap();
    let first = log.size_bytes() as usize;
    log.append_batch(vec![Record::new(value(1))]).unwrap();
    // Flip a byte inside the second batch's records, under the open log.
    let path = log.segments()[0].log_path().to_path_buf();
    let mut bytes = sim.read_file(&path).unwrap();
    bytes[first + 70] ^= 0xff;
    sim.write_file(&path, &bytes);
    let mut r = log
        .read(0, ReadOptions::default().bound(ReadBound::LogEnd))
        .unwrap();
    assert!(r.next_batch().unwrap().is_ok());
    let err = r.next_batch();
    assert!(
        matches!(err, Some(Err(Error::Corrupt { ref path, position, .. })) if path.ends_with("00000000000000000000.log") && (first as u64..first as u64 + 79).contains(&position)),
        "{err:?} (second batch at {first})"
    );
    assert!(r.next_batch().is_none());
}

/// Batches read back to back, joined into one slice of the bytes they came from.
fn read_joined(log: &Partition, from: u64) -> (Vec<Bytes>, Option<Bytes>) {
    let options = ReadOptions::default().bound(ReadBound::LogEnd);
    let mut reader = log.read(from, options).unwrap();
    let mut batches = Vec::new();
    while let Some(bytes) = reader.next_batch() {
        batches.push(bytes.unwrap());
    }
    let joined = reader.joined(&batches);
    (batches, joined)
}

#[test]
fn batches_end_to_end_in_one_map_join_without_a_copy_and_never_wrongly() {
    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open(dir.path(), LogConfig::default()).unwrap();
    append_pairs(&log, 10);
    let (batches, joined) = read_joined(&log, 4);
    assert_eq!(batches.len(), 8);
    let joined = joined.expect("one segment's map holds them end to end");
    assert_eq!(joined, batches.concat());
    assert_eq!(
        joined.as_ptr(),
        batches[0].as_ptr(),
        "a slice of the map, not a copy"
    );
    // Out of order or with a gap they are not joined.
    let (a, b, c) = (batches[0].clone(), batches[1].clone(), batches[2].clone());
    let reader = log.read(0, ReadOptions::default()).unwrap();
    assert!(reader.joined(&[b.clone(), a.clone()]).is_none());
    assert!(reader.joined(&[a, c]).is_none());

    // Across rolled segments (and on the simulated disk, whose maps are copies) the
    // batches come from several chunks: joined only where that is still exact.
    let sim = SimStorage::default();
    let log = open_small(&sim);
    append_pairs(&log, 40);
    assert!(log.segment_count() > 2);
    for from in [0, 7, 60] {
        let (batches, joined) = read_joined(&log, from);
        if let Some(joined) = joined {
            assert_eq!(joined, batches.concat(), "from {from}");
        }
    }
}

/// A disk that fills up part way through a batch leaves its first bytes past the segment's
/// end. A shorter batch written after it would not cover them, and a roll or a clean close
/// would leave them behind flushed records, where the next open takes them for damage: the
/// log must not go on over them.
#[test]
fn a_write_that_fails_part_way_never_leaves_its_bytes_behind_acknowledged_records() {
    let sim = SimStorage::default();
    let log = open_small(&sim);
    let batch = |from: u64, n: u64| (from..from + n).map(|i| Record::new(value(i))).collect();
    assert_eq!(log.append_batch(batch(0, 3)).unwrap(), 0..3);
    assert_eq!(values(&log, 0).len(), 3); // a reader maps the segment
    let mut produced = Vec::new();
    let codec = crate::record::Compression::None;
    crate::record::encode_batch(&batch(3, 20), codec, 1_000, &mut produced).unwrap();
    sim.room_left(Some(100)); // the restamped header and some of the records fit
    let failed = log.append_encoded(&produced);
    assert!(matches!(failed, Err(Error::Io { .. })), "{failed:?}");
    sim.room_left(None);
    let mut acknowledged: Vec<u64> = (0..3).collect();
    for _ in 0..3 {
        let next = log.log_end_offset();
        if let Ok(offsets) = log.append_batch(batch(next, 1)) {
            acknowledged.extend(offsets);
        }
        let _ = log.roll();
    }
    drop(log);
    let log = open_small(&sim);
    let stored: Vec<u64> = values(&log, 0).into_iter().map(|(o, _)| o).collect();
    assert_eq!(stored, acknowledged);
    let next = log.log_end_offset();
    assert_eq!(log.append(Record::new(value(next))).unwrap(), next);
}
