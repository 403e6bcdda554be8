//! Unit tests of retention internals: the log-start rule with a log start ahead of the
//! segments, the age of a segment without timestamps, the pending-deletion list and the
//! clean-up at open. Rules seen through the public API are tested in `tests/retention.rs`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::*;
use crate::clock::ManualClock;
use crate::config::LogConfig;
use crate::record::Record;
use crate::segment::SegmentLimits;
use crate::storage::{Env, OpenMode, SimStorage};

const NOW_MS: i64 = 1_000_000;

fn open(sim: &SimStorage, clock: &ManualClock, config: LogConfig) -> Partition {
    let env = Env {
        storage: Arc::new(sim.clone()),
        clock: Arc::new(clock.clone()),
    };
    Partition::open_with_env("/p", config.segment_index_bytes(4096), env).unwrap()
}

fn bases(log: &Partition) -> Vec<u64> {
    log.segments().iter().map(|s| s.base_offset()).collect()
}

#[test]
fn a_log_start_ahead_of_the_segments_unblocks_time_retention_in_the_same_pass() {
    // UnifiedLogTest.testRetentionIdempotency: the first segment has not expired, the
    // second has; once the log start passes the first, one pass deletes both.
    let (sim, clock) = (SimStorage::default(), ManualClock::new(NOW_MS));
    let config = LogConfig::default()
        .retention_ms(900)
        .retention_bytes(-1)
        .file_delete_delay_ms(0);
    let log = open(&sim, &clock, config);
    for ts in [NOW_MS + 100, NOW_MS, NOW_MS + 100] {
        log.append(Record::new(b"test".to_vec()).with_timestamp(ts))
            .unwrap();
        log.roll().unwrap();
    }
    clock.advance_ms(901);
    // Moved without deleting anything, as after a crash between checkpoint and deletion.
    log.inner.log_start_offset.store(1, Ordering::Release);
    let outcome = log.enforce_retention().unwrap();
    assert_eq!(
        (outcome.log_start_segments, outcome.time_segments),
        (1, 1),
        "{outcome:?}"
    );
    assert_eq!(outcome.log_start_offset, 2);
    assert_eq!(log.enforce_retention().unwrap().segments_deleted(), 0);
    assert_eq!(bases(&log), [2, 3]);
}

#[test]
fn a_segment_without_timestamps_ages_from_its_creation() {
    let sim = SimStorage::default();
    sim.create_dir_all(Path::new("/s")).unwrap();
    let limits = SegmentLimits {
        index_bytes: 4096,
        index_interval_bytes: 4096,
        map_bytes: 1 << 20,
        offset_gaps: crate::segment::OffsetGaps::new(false),
    };
    let segment = Segment::create(&sim, Path::new("/s"), 0, limits, NOW_MS).unwrap();
    assert_eq!(segment.max_timestamp(), -1);
    assert_eq!(segment.largest_timestamp(), NOW_MS);
}

#[test]
fn pending_files_are_removed_once_due_and_all_of_them_on_purge_all() {
    let sim = SimStorage::default();
    sim.create_dir_all(Path::new("/d")).unwrap();
    let paths: Vec<PathBuf> = (0..3)
        .map(|i| PathBuf::from(format!("/d/{i}.log.deleted")))
        .collect();
    for path in &paths {
        sim.open(path, OpenMode::Create).unwrap();
    }
    let pending = PendingDeletions::default();
    pending.schedule(paths[..2].to_vec(), 100);
    pending.schedule(paths[2..].to_vec(), 200);
    pending.purge_due(&sim, 99).unwrap();
    assert!(paths.iter().all(|p| sim.exists(p)));
    pending.purge_due(&sim, 100).unwrap();
    assert_eq!(
        paths.iter().map(|p| sim.exists(p)).collect::<Vec<_>>(),
        [false, false, true]
    );
    pending.purge_all(&sim).unwrap();
    assert!(!sim.exists(&paths[2]));
    assert!(pending.files.lock().is_empty());
}

#[test]
fn only_deleted_files_are_removed_at_open() {
    let sim = SimStorage::default();
    let dir = Path::new("/d");
    for name in [
        "00000000000000000000.log",
        "00000000000000000000.log.deleted",
        "00000000000000000000.timeindex.deleted",
        "00000000000000000005.log.cleaned",
        "notes.deleted.txt",
    ] {
        sim.write_file(dir.join(name), b"x");
    }
    remove_deleted_files(&sim, dir).unwrap();
    let left: Vec<PathBuf> = sim.list_dir(dir).unwrap();
    let names: Vec<_> = left
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "00000000000000000000.log",
            "00000000000000000005.log.cleaned",
            "notes.deleted.txt"
        ]
    );
}

#[test]
fn deletion_renames_files_and_schedules_them_for_the_delay() {
    let (sim, clock) = (SimStorage::default(), ManualClock::new(NOW_MS));
    let log = open(&sim, &clock, LogConfig::default().file_delete_delay_ms(500));
    for i in 0..3 {
        log.append(Record::new(vec![i])).unwrap();
        log.roll().unwrap();
    }
    let first = log.segments()[0].paths();
    log.delete_records_before(2).unwrap();
    for path in &first {
        assert!(!sim.exists(path));
        let mut deleted = path.clone().into_os_string();
        deleted.push(".deleted");
        assert!(sim.exists(Path::new(&deleted)), "{deleted:?}");
    }
    let due: Vec<i64> = log
        .inner
        .pending_deletions
        .files
        .lock()
        .iter()
        .map(|f| f.0)
        .collect();
    assert_eq!(due, [NOW_MS + 500; 6]);
}
