//! Cleaner internals: progress with a bounded offset map, checkpoint resets, segment
//! grouping limits, and a swap refused because the log changed under the pass.
//! Behaviour through the public API is tested in `tests/compaction*.rs`.

use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::clock::ManualClock;
use crate::storage::{Env, SimStorage, Storage};

fn open(sim: &SimStorage) -> Partition {
    open_with(sim, config().index_interval_bytes(64))
}

fn config() -> LogConfig {
    LogConfig::default()
        .cleanup_policy(CleanupPolicy::Compact)
        .segment_index_bytes(4096)
}

fn open_with(sim: &SimStorage, config: LogConfig) -> Partition {
    let env = Env {
        storage: Arc::new(sim.clone()),
        clock: Arc::new(ManualClock::new(1_000)),
    };
    Partition::open_with_env("/p", config, env).unwrap()
}

fn kv(key: &str) -> Record {
    Record::new(b"v".to_vec()).with_key(key.as_bytes().to_vec())
}

fn offsets(log: &Partition) -> Vec<u64> {
    log.read_to_log_end(log.log_start_offset())
        .unwrap()
        .map(|r| r.unwrap().offset())
        .collect()
}

#[test]
fn a_map_with_room_for_one_key_still_makes_progress_one_key_per_pass() {
    let sim = SimStorage::new();
    let log = open(&sim);
    for key in ["a", "b", "a", "b", "c"] {
        log.append(kv(key)).unwrap();
    }
    log.roll().unwrap();
    let mut seen = Vec::new();
    for _ in 0..5 {
        let stats = log.compact_with_map_bytes(1).unwrap();
        seen.push((stats.end_offset, offsets(&log)));
    }
    assert_eq!(
        seen,
        [
            (1, vec![0, 1, 2, 3, 4]),
            (2, vec![0, 1, 2, 3, 4]),
            (3, vec![1, 2, 3, 4]),
            (4, vec![2, 3, 4]),
            (5, vec![2, 3, 4]),
        ]
    );
}

#[test]
fn a_checkpoint_outside_the_log_is_reset_to_the_log_start() {
    let sim = SimStorage::new();
    let log = open(&sim);
    for key in ["a", "a", "b", "b"] {
        log.append(kv(key)).unwrap();
        log.roll().unwrap();
    }
    // Above the log end.
    checkpoint::write(&sim, Path::new("/p"), 1_000).unwrap();
    let stats = log.compact().unwrap();
    assert_eq!((stats.first_dirty_offset, stats.end_offset), (0, 4));
    assert_eq!(offsets(&log), [1, 3]);
    assert_eq!(checkpoint::read(&sim, Path::new("/p")).unwrap(), Some(4));

    // Below the log start (after a reopen, so the cached value is read again).
    drop(log);
    checkpoint::write(&sim, Path::new("/p"), 0).unwrap();
    let log = open(&sim);
    log.delete_records_before(3).unwrap();
    log.append(kv("c")).unwrap();
    log.roll().unwrap();
    let stats = log.compact().unwrap();
    assert_eq!(stats.first_dirty_offset, 3);
}

#[test]
fn groups_respect_the_log_and_index_size_limits() {
    let sim = SimStorage::new();
    let log = open(&sim);
    for i in 0..9 {
        log.append(kv(&format!("k{i}"))).unwrap();
        log.roll().unwrap();
    }
    let segments = log.segments();
    let segments = &segments[..segments.len() - 1];
    let size = segments[0].size_bytes();
    assert!(segments.iter().all(|s| s.size_bytes() == size));
    let sizes = |limits| -> Vec<usize> {
        range::group_segments(segments, limits)
            .iter()
            .map(Vec::len)
            .collect()
    };
    let huge = GroupLimits {
        max_log_bytes: u64::MAX,
        max_index_bytes: u64::MAX,
    };
    assert_eq!(sizes(huge), [9]);
    let tiny = GroupLimits {
        max_log_bytes: 1,
        max_index_bytes: 1,
    };
    assert_eq!(sizes(tiny), [1; 9]);
    let three = GroupLimits {
        max_log_bytes: 3 * size,
        ..huge
    };
    assert_eq!(sizes(three), [3, 3, 3]);
    assert_eq!(range::group_segments(&[], huge).len(), 0);
}

#[test]
fn a_group_changed_under_the_pass_is_not_swapped_in() {
    let sim = SimStorage::new();
    let log = open(&sim);
    for key in ["a", "a", "a", "b"] {
        log.append(kv(key)).unwrap();
    }
    log.roll().unwrap();
    log.append(kv("c")).unwrap();
    log.roll().unwrap();
    let inner = &*log.inner;
    let truncations = inner.cleaner.truncations();
    let range = inner.cleanable_range(1_000).unwrap();
    let mut map = OffsetMap::new(DEFAULT_MAP_BYTES);
    let mut stats = CleanerStats::default();
    let map_end = clean::build_offset_map(
        range.dirty_segments(),
        0,
        range.clean_end,
        &mut map,
        &mut stats,
    )
    .unwrap();
    let rule = KeepRule {
        map: &map,
        map_end,
        now_ms: 1_000,
        new_delete_horizon_ms: 2_000,
    };
    let group = vec![range.segments[0].clone()];
    let seen = [swap::Seen::of(&group[0])];
    let cleaned = clean::clean_group(inner, &group, &rule, &mut stats)
        .unwrap()
        .unwrap();
    assert!(sim.exists(Path::new("/p/00000000000000000000.log.cleaned")));

    log.truncate_to(4).unwrap();
    assert!(!swap::replace(inner, &group, &seen, truncations, cleaned).unwrap());
    let names: Vec<_> = sim.list_dir(Path::new("/p")).unwrap();
    assert!(
        names
            .iter()
            .all(|p| !p.to_string_lossy().ends_with(".cleaned")),
        "{names:?}"
    );
    assert_eq!(offsets(&log), [0, 1, 2, 3]);
    // A full pass after the truncation works.
    log.roll().unwrap();
    log.compact().unwrap();
    assert_eq!(offsets(&log), [2, 3]);
}

#[test]
fn an_aborted_pass_does_not_move_the_checkpoint() {
    let sim = SimStorage::new();
    let log = open(&sim);
    for key in ["a", "a"] {
        log.append(kv(key)).unwrap();
    }
    log.roll().unwrap();
    let before = log.inner.cleaner.truncations();
    log.truncate_to(1).unwrap();
    assert_eq!(log.inner.cleaner.truncations(), before + 1);
    assert!(
        !log.inner
            .cleaner
            .store_unless_truncated(&log.inner, 2, before)
            .unwrap()
    );
    assert_eq!(checkpoint::read(&sim, Path::new("/p")).unwrap(), None);
}

/// A close waits for a compaction pass still writing its `.cleaned` files before it
/// releases the directory: a new open's pass could otherwise write the same files.
#[test]
fn a_close_waits_for_a_running_compaction_pass() {
    let sim = SimStorage::new();
    let log = Arc::new(open(&sim));
    for key in ["a", "b", "a", "b", "c"] {
        log.append(kv(key)).unwrap();
    }
    log.roll().unwrap();
    sim.sync_latency(std::time::Duration::from_millis(300));
    let pass = {
        let log = log.clone();
        std::thread::spawn(move || log.compact())
    };
    // The pass is syncing its cleaned segment.
    std::thread::sleep(std::time::Duration::from_millis(100));
    log.shutdown().unwrap();
    assert!(pass.is_finished(), "close returned while the pass ran");
    assert!(matches!(pass.join().unwrap(), Err(Error::Closed { .. })));
    sim.sync_latency(std::time::Duration::ZERO);
    drop(log);
    let reopened = open(&sim);
    assert_eq!(offsets(&reopened), [0, 1, 2, 3, 4]);
}

/// A segment whose last batch a pass already emptied (an empty 61-byte header keeping the
/// segment's last offset) is left as it is by later passes, not rewritten every time.
#[test]
fn a_segment_left_with_an_empty_batch_is_not_rewritten_by_later_passes() {
    let sim = SimStorage::new();
    // One batch per segment, and one segment per cleaning group.
    let log = open_with(&sim, config().segment_bytes(100));
    for key in ["a", "a", "b"] {
        log.append(kv(key)).unwrap();
    }
    assert_eq!(log.segments().len(), 3);
    let first = log.compact().unwrap();
    assert_eq!(
        first.segments_written, 1,
        "record 0 emptied its segment's batch"
    );
    log.append(kv("c")).unwrap();
    let second = log.compact().unwrap();
    assert_eq!(second.end_offset, 3);
    assert_eq!(second.segments_written, 0, "nothing left to change");
    assert_eq!(offsets(&log), [1, 2, 3]);
}
