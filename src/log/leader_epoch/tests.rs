//! Kafka's `LeaderEpochFileCacheTest` behaviours on [`EpochCache`], and the checkpoint file.

use super::*;
use crate::storage::SimStorage;

fn cache(entries: &[(i32, u64)]) -> EpochCache {
    let mut c = EpochCache::default();
    for &(epoch, start) in entries {
        c.assign(epoch, start);
    }
    c
}

fn pairs(c: &EpochCache) -> Vec<(i32, u64)> {
    c.entries()
        .iter()
        .map(|e| (e.epoch, e.start_offset))
        .collect()
}

#[test]
fn an_epoch_already_assigned_keeps_its_first_offset() {
    let mut c = cache(&[(2, 6)]);
    assert!(!c.assign(2, 10));
    assert!(!c.assign(2, 6));
    assert_eq!(pairs(&c), [(2, 6)]);
}

#[test]
fn a_newer_epoch_at_the_same_or_a_lower_offset_replaces_conflicting_entries() {
    assert_eq!(pairs(&cache(&[(2, 9), (3, 9)])), [(3, 9)]);
    assert_eq!(pairs(&cache(&[(2, 6), (3, 5)])), [(3, 5)]);
}

#[test]
fn an_older_epoch_removes_every_later_entry() {
    let c = cache(&[(1, 5), (2, 6), (1, 7)]);
    assert_eq!(pairs(&c), [(1, 7)]);
    assert_eq!(c.latest().map(|e| e.epoch), Some(1));
    assert_eq!(c.end_offset_for(2, 100), None);
}

#[test]
fn negative_epochs_are_ignored() {
    let mut c = cache(&[(1, 5)]);
    assert!(!c.assign(-1, 9));
    assert_eq!(pairs(&c), [(1, 5)]);
}

#[test]
fn end_offset_of_the_latest_epoch_is_the_log_end_and_of_older_ones_the_next_start() {
    let c = cache(&[(1, 11), (2, 13), (3, 15)]);
    assert_eq!(c.end_offset_for(2, 17), Some((2, 15)));
    assert_eq!(c.end_offset_for(3, 17), Some((3, 17)));
    assert_eq!(c.end_offset_for(1, 17), Some((1, 13)));
}

#[test]
fn a_missing_epoch_is_answered_with_the_largest_epoch_below_it() {
    let c = cache(&[(0, 10), (2, 13), (4, 17)]);
    assert_eq!(c.end_offset_for(1, 20), Some((0, 13)));
    assert_eq!(c.end_offset_for(2, 20), Some((2, 17)));
    assert_eq!(c.end_offset_for(3, 20), Some((2, 17)));
}

#[test]
fn an_epoch_below_the_first_gets_the_first_start_and_unknown_ones_nothing() {
    let c = cache(&[(5, 11), (6, 12)]);
    assert_eq!(c.end_offset_for(4, 20), Some((4, 11)));
    assert_eq!(c.end_offset_for(7, 20), None);
    assert_eq!(c.end_offset_for(-1, 20), None);
    assert_eq!(EpochCache::default().end_offset_for(0, 20), None);
}

#[test]
fn truncating_from_the_end_drops_entries_starting_at_or_after_the_new_end() {
    let start = [(2, 6), (3, 8), (4, 11)];
    let mut c = cache(&start);
    assert!(c.truncate_from_end(8));
    assert_eq!(pairs(&c), [(2, 6)]);
    let mut c = cache(&start);
    c.truncate_from_end(9);
    assert_eq!(pairs(&c), [(2, 6), (3, 8)]);
    let mut c = cache(&start);
    assert!(!c.truncate_from_end(100));
    assert_eq!(pairs(&c), start);
}

#[test]
fn truncating_from_the_start_keeps_the_entry_covering_the_new_start() {
    let start = [(2, 6), (3, 8), (4, 11)];
    for (offset, expected) in [
        (8, vec![(3, 8), (4, 11)]),
        (9, vec![(3, 9), (4, 11)]),
        (11, vec![(4, 11)]),
        (15, vec![(4, 15)]),
        (1, start.to_vec()),
        (6, start.to_vec()),
    ] {
        let mut c = cache(&start);
        let changed = c.truncate_from_start(offset);
        assert_eq!(pairs(&c), expected, "log start {offset}");
        assert_eq!(changed, expected != start, "log start {offset}");
    }
}

#[test]
fn the_text_format_is_kafkas_and_round_trips() {
    let c = cache(&[(0, 0), (3, 120), (7, 4000)]);
    let text = c.encode();
    assert_eq!(text, "0\n3\n0 0\n3 120\n7 4000\n");
    assert_eq!(EpochCache::decode(&text), Ok(c));
    assert_eq!(EpochCache::decode("0\n0\n"), Ok(EpochCache::default()));
}

#[test]
fn malformed_checkpoints_are_refused_with_a_reason() {
    for bad in [
        "",
        "1\n0\n",
        "0\n",
        "0\n2\n1 5\n",
        "0\n1\n1\n",
        "0\n1\n1 5 6\n",
        "0\n1\nx 5\n",
        "0\n1\n-2 5\n",
        "0\n2\n3 5\n2 9\n",
        "0\n2\n2 5\n3 5\n",
        "0\n1\n1 5\n2 9\n",
    ] {
        assert!(EpochCache::decode(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn the_checkpoint_file_is_replaced_whole_and_survives_power_loss() {
    let storage = SimStorage::default();
    let dir = Path::new("/p");
    crate::storage::create_dir_all_durably(&storage, dir).unwrap();
    let file = EpochCheckpoint::new(dir);
    assert_eq!(file.read(&storage).unwrap(), None);
    let first = cache(&[(0, 0)]);
    let second = cache(&[(0, 0), (1, 50)]);
    file.write(&storage, &first).unwrap();
    assert_eq!(file.read(&storage).unwrap(), Some(first.clone()));
    file.write(&storage, &second).unwrap();
    for seed in 0..100 {
        let after = storage.power_loss(seed);
        assert_eq!(
            file.read(&after).unwrap(),
            Some(second.clone()),
            "seed {seed}"
        );
    }
    // A garbled file reads as absent: the log rebuilds the epochs from its batches.
    storage.write_file(dir.join(LEADER_EPOCH_FILE), b"0\n5\n1 2\n");
    assert_eq!(file.read(&storage).unwrap(), None);
}
