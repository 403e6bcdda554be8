//! Unit tests of [`TimeIndex`], after Kafka's `TimeIndexTest`, plus a property test against a
//! `BTreeMap` model and a garbage-file property test.

use std::collections::BTreeMap;
use std::path::PathBuf;

use proptest::prelude::*;

use super::*;
use crate::Error;
use crate::storage::{FileStorage, OpenMode};

const BASE: u64 = 45;

fn path_in(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("00000000000000000045.timeindex")
}

fn open(dir: &tempfile::TempDir, max_bytes: usize) -> TimeIndex {
    TimeIndex::open(&FileStorage, &path_in(dir), BASE, max_bytes).unwrap()
}

fn te(timestamp: i64, offset: u64) -> TimeEntry {
    TimeEntry { timestamp, offset }
}

/// Writes `bytes` as the whole content of the index file.
fn write_file(path: &Path, bytes: &[u8]) {
    let file = FileStorage.open(path, OpenMode::Create).unwrap();
    file.set_len(0).unwrap();
    file.write_all_at(bytes, 0).unwrap();
}

fn raw(timestamp: i64, relative: u32) -> Vec<u8> {
    [&timestamp.to_be_bytes()[..], &relative.to_be_bytes()[..]].concat()
}

fn is_misuse<T: std::fmt::Debug>(r: Result<T>) -> bool {
    matches!(r, Err(Error::IndexMisuse { .. }))
}

fn is_corrupt(r: Result<()>) -> bool {
    matches!(r, Err(Error::Corrupt { .. }))
}

#[test]
fn time_index_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<TimeIndex>();
}

#[test]
fn lookup_is_the_floor_by_timestamp_and_none_is_minus_one_at_base() {
    let dir = tempfile::tempdir().unwrap();
    let mut idx = open(&dir, 12 * 30);
    assert_eq!(idx.lookup(100), te(-1, BASE));
    idx.maybe_append(10, 55, false).unwrap();
    idx.maybe_append(20, 65, false).unwrap();
    idx.maybe_append(30, 75, false).unwrap();
    assert_eq!(idx.lookup(5), te(-1, BASE));
    assert_eq!(idx.lookup(i64::MIN), te(-1, BASE));
    assert_eq!(idx.lookup(10), te(10, 55));
    assert_eq!(idx.lookup(25), te(20, 65));
    assert_eq!(idx.lookup(30), te(30, 75));
    assert_eq!(idx.lookup(i64::MAX), te(30, 75));
}

#[test]
fn last_entry_is_minus_one_at_base_when_empty() {
    let dir = tempfile::tempdir().unwrap();
    let mut idx = open(&dir, 12 * 30);
    assert_eq!(idx.last_entry(), te(-1, BASE));
    idx.maybe_append(1, BASE + 1, false).unwrap();
    assert_eq!(idx.last_entry(), te(1, BASE + 1));
}

#[test]
fn entries_are_twelve_bytes_and_entry_n_returns_them_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut idx = open(&dir, 12 * 30 + 11);
    assert_eq!((idx.size_bytes(), idx.max_entries()), (360, 30));
    assert!(is_misuse(idx.entry(0)));
    for i in 0..5 {
        idx.maybe_append(100 + i, BASE + 2 * i as u64, false)
            .unwrap();
    }
    for i in 0..5 {
        assert_eq!(
            idx.entry(i as usize).unwrap(),
            te(100 + i, BASE + 2 * i as u64)
        );
    }
    assert!(is_misuse(idx.entry(5)));
    idx.flush().unwrap();
    let on_disk = std::fs::read(path_in(&dir)).unwrap();
    assert_eq!(&on_disk[12..24], raw(101, 2).as_slice());
}

#[test]
fn index_is_full_one_slot_early() {
    let dir = tempfile::tempdir().unwrap();
    let mut idx = open(&dir, 12 * 30);
    for i in 0..28 {
        idx.maybe_append(i + 1, BASE + i as u64, false).unwrap();
    }
    assert!(!idx.is_full());
    idx.maybe_append(29, BASE + 28, false).unwrap();
    assert!(idx.is_full());
    assert_eq!(idx.entries(), 29);
}

#[test]
fn full_index_takes_the_last_entry_only_with_skip_full_check() {
    let dir = tempfile::tempdir().unwrap();
    let mut idx = open(&dir, 12 * 3);
    idx.maybe_append(10, BASE, false).unwrap();
    idx.maybe_append(20, BASE + 1, false).unwrap();
    assert!(is_misuse(idx.maybe_append(30, BASE + 2, false)));
    assert!(is_misuse(idx.maybe_append(30, BASE, true)));
    idx.maybe_append(30, BASE + 2, true).unwrap();
    assert_eq!(idx.last_entry(), te(30, BASE + 2));
    assert!(is_misuse(idx.maybe_append(40, BASE + 3, true)));
    assert_eq!(idx.entries(), 3);
}

#[test]
fn equal_timestamp_is_ignored_even_when_full() {
    let dir = tempfile::tempdir().unwrap();
    let mut idx = open(&dir, 12 * 2);
    idx.maybe_append(10, BASE + 1, false).unwrap();
    assert!(idx.is_full());
    idx.maybe_append(10, BASE + 5, false).unwrap();
    assert_eq!(idx.entries(), 1);
    assert_eq!(idx.last_entry(), te(10, BASE + 1));
}

#[test]
fn smaller_timestamp_or_offset_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut idx = open(&dir, 12 * 30);
    idx.maybe_append(10, BASE + 10, false).unwrap();
    assert!(is_misuse(idx.maybe_append(9, BASE + 11, false)));
    assert!(is_misuse(idx.maybe_append(11, BASE + 9, false)));
    assert!(is_misuse(idx.maybe_append(10, BASE + 9, false)));
    idx.maybe_append(11, BASE + 10, false).unwrap();
    assert_eq!(idx.entries(), 2);
}

#[test]
fn no_timestamp_on_an_empty_index_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let mut idx = open(&dir, 12 * 30);
    idx.maybe_append(NO_TIMESTAMP, BASE + 3, true).unwrap();
    idx.maybe_append(-5, BASE + 3, false).unwrap();
    assert_eq!(idx.entries(), 0);
    idx.maybe_append(0, BASE + 3, false).unwrap();
    assert_eq!(idx.entries(), 1);
}

#[test]
fn offsets_below_base_or_beyond_i32_relative_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut idx = open(&dir, 12 * 30);
    assert!(is_misuse(idx.maybe_append(1, BASE - 1, false)));
    assert!(is_misuse(idx.maybe_append(
        1,
        BASE + i32::MAX as u64 + 1,
        true
    )));
    idx.maybe_append(1, BASE + i32::MAX as u64, false).unwrap();
    assert_eq!(idx.last_entry(), te(1, BASE + i32::MAX as u64));
}

#[test]
fn truncate_to_drops_entries_at_or_after_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut idx = open(&dir, 12 * 30);
    for i in 0..10 {
        idx.maybe_append(i * 10, BASE + 10 + i as u64, false)
            .unwrap();
    }
    idx.truncate_to(BASE + 100);
    assert_eq!(idx.entries(), 10);
    idx.truncate_to(BASE + 15);
    assert_eq!(idx.entries(), 5);
    assert_eq!(idx.last_entry(), te(40, BASE + 14));
    idx.truncate_to(BASE + 10);
    assert_eq!(idx.entries(), 0);
    assert_eq!(idx.last_entry(), te(-1, BASE));
    idx.maybe_append(5, BASE + 1, false).unwrap();
    idx.reset();
    assert_eq!(idx.entries(), 0);
    assert_eq!(idx.lookup(5), te(-1, BASE));
}

#[test]
fn truncate_to_drops_every_entry_sharing_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut idx = open(&dir, 12 * 30);
    idx.maybe_append(1, BASE + 1, false).unwrap();
    idx.maybe_append(2, BASE + 2, false).unwrap();
    idx.maybe_append(3, BASE + 2, false).unwrap();
    idx.truncate_to(BASE + 2);
    assert_eq!(idx.entries(), 1);
}

#[test]
fn resize_reports_whether_the_size_changed() {
    let dir = tempfile::tempdir().unwrap();
    let mut idx = open(&dir, 12 * 10);
    for i in 0..4 {
        idx.maybe_append(i, BASE + i as u64, false).unwrap();
    }
    assert!(!idx.resize(120).unwrap());
    assert!(!idx.resize(131).unwrap());
    assert!(idx.resize(240).unwrap());
    assert_eq!(idx.max_entries(), 20);
    assert!(idx.resize(24).unwrap());
    assert_eq!(idx.entries(), 2);
    assert_eq!(idx.last_entry(), te(1, BASE + 1));
    assert!(idx.resize(0).unwrap());
    assert!(idx.is_full());
    assert!(is_misuse(idx.maybe_append(10, BASE + 5, true)));
}

#[test]
fn reopen_after_trim_restores_entries_and_is_full_until_resized() {
    let dir = tempfile::tempdir().unwrap();
    let mut idx = open(&dir, 12 * 30);
    idx.maybe_append(10, BASE + 5, false).unwrap();
    idx.maybe_append(20, BASE + 9, false).unwrap();
    idx.trim_to_valid_size().unwrap();
    drop(idx);
    let mut idx = open(&dir, 12 * 30);
    assert_eq!((idx.entries(), idx.size_bytes()), (2, 24));
    assert_eq!(idx.lookup(15), te(10, BASE + 5));
    assert_eq!(idx.last_entry(), te(20, BASE + 9));
    idx.sanity_check().unwrap();
    assert!(idx.is_full());
    assert!(is_misuse(idx.maybe_append(30, BASE + 10, true)));
    assert!(idx.resize(12 * 30).unwrap());
    idx.maybe_append(30, BASE + 10, false).unwrap();
}

#[test]
fn sanity_check_fails_when_the_last_timestamp_is_below_the_first() {
    let dir = tempfile::tempdir().unwrap();
    write_file(&path_in(&dir), &[raw(20, 1), raw(10, 2)].concat());
    let idx = open(&dir, 4096);
    assert!(is_corrupt(idx.sanity_check()));
}

#[test]
fn sanity_check_fails_when_an_offset_is_below_base_or_entries_go_backwards() {
    let dir = tempfile::tempdir().unwrap();
    for bytes in [
        raw(5, u32::MAX),
        [raw(5, 3), raw(6, 2)].concat(),
        [raw(5, 3), raw(7, 3), raw(7, 4)].concat(),
    ] {
        write_file(&path_in(&dir), &bytes);
        let idx = open(&dir, 4096);
        assert!(is_corrupt(idx.sanity_check()));
    }
}

#[test]
fn sanity_check_fails_on_a_length_that_is_not_a_multiple_of_twelve() {
    let dir = tempfile::tempdir().unwrap();
    for bytes in [vec![0xde, 0xad], [raw(5, 3), vec![0; 8]].concat()] {
        write_file(&path_in(&dir), &bytes);
        let idx = open(&dir, 4096);
        assert_eq!(idx.entries(), bytes.len() / 12);
        assert!(is_corrupt(idx.sanity_check()));
    }
}

#[test]
fn sanity_check_passes_on_valid_entries_and_on_an_entry_at_base() {
    let dir = tempfile::tempdir().unwrap();
    let mut idx = open(&dir, 12 * 30);
    idx.sanity_check().unwrap();
    idx.maybe_append(0, BASE, false).unwrap();
    idx.maybe_append(7, BASE, false).unwrap();
    idx.maybe_append(9, BASE + 3, false).unwrap();
    idx.sanity_check().unwrap();
}

#[test]
fn rename_keeps_the_entries_and_moves_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut idx = open(&dir, 12 * 30);
    idx.maybe_append(3, BASE + 1, false).unwrap();
    let new_path = dir.path().join("00000000000000000045.timeindex.swap");
    idx.rename_to(&FileStorage, &new_path).unwrap();
    assert_eq!(idx.path(), new_path);
    assert!(!path_in(&dir).exists());
    assert_eq!(idx.lookup(4), te(3, BASE + 1));
}

#[derive(Debug, Clone)]
enum Op {
    Append {
        ts_gap: i64,
        offset_gap: i64,
        skip_full_check: bool,
    },
    TruncateTo(u64),
    Reset,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (-2i64..20, -2i64..10, any::<bool>()).prop_map(|(ts_gap, offset_gap, skip_full_check)| {
            Op::Append { ts_gap, offset_gap, skip_full_check }
        }),
        1 => (0u64..300).prop_map(Op::TruncateTo),
        1 => Just(Op::Reset),
        1 => Just(Op::Reopen),
    ]
}

/// The model: entries in order, as `(timestamp, offset)`.
fn assert_matches(idx: &TimeIndex, model: &[(i64, u64)], base: u64) {
    assert_eq!(idx.entries(), model.len());
    let none = te(-1, base);
    let last = model.last().map_or(none, |(t, o)| te(*t, *o));
    assert_eq!(idx.last_entry(), last);
    let by_ts: BTreeMap<i64, u64> = model.iter().copied().collect();
    let probes = model.iter().flat_map(|(t, _)| [t - 1, *t, t + 1]);
    for target in probes.chain([i64::MIN, -1, 0, i64::MAX]) {
        let want = by_ts
            .range(..=target)
            .next_back()
            .map_or(none, |(t, o)| te(*t, *o));
        assert_eq!(idx.lookup(target), want, "lookup({target})");
    }
    for (n, (t, o)) in model.iter().enumerate() {
        assert_eq!(idx.entry(n).unwrap(), te(*t, *o));
    }
    idx.sanity_check().unwrap();
}

proptest! {
    #[test]
    fn floor_lookup_matches_a_btreemap_through_appends_truncations_and_reopens(
        base in 0u64..1_000_000_000_000,
        max_entries in 0usize..30,
        slack in 0usize..12,
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.timeindex");
        let max_bytes = max_entries * 12 + slack;
        let mut idx = TimeIndex::open(&FileStorage, &path, base, max_bytes).unwrap();
        let mut model: Vec<(i64, u64)> = Vec::new();
        for op in ops {
            match op {
                Op::Append { ts_gap, offset_gap, skip_full_check } => {
                    let (last_ts, last_off) = model.last().copied().unwrap_or((-1, base));
                    let ts = last_ts + ts_gap;
                    let Some(offset) = last_off.checked_add_signed(offset_gap) else { continue };
                    let result = idx.maybe_append(ts, offset, skip_full_check);
                    let nonempty = !model.is_empty();
                    let refused = (nonempty && (offset < last_off || ts < last_ts))
                        || (ts > last_ts
                            && ((!skip_full_check && model.len() + 1 >= max_entries)
                                || model.len() >= max_entries
                                || offset < base));
                    prop_assert_eq!(result.is_err(), refused, "{:?}", result);
                    if refused {
                        prop_assert!(is_misuse(result));
                    } else if ts > last_ts {
                        model.push((ts, offset));
                    }
                }
                Op::TruncateTo(rel) => {
                    idx.truncate_to(base + rel);
                    model.retain(|(_, o)| *o < base + rel);
                }
                Op::Reset => {
                    idx.reset();
                    model.clear();
                }
                Op::Reopen => {
                    idx.trim_to_valid_size().unwrap();
                    idx.flush().unwrap();
                    drop(idx);
                    idx = TimeIndex::open(&FileStorage, &path, base, max_bytes).unwrap();
                    if !model.is_empty() {
                        prop_assert!(idx.is_full());
                    }
                    assert_matches(&idx, &model, base);
                    idx.resize(max_bytes).unwrap();
                }
            }
            assert_matches(&idx, &model, base);
        }
    }

    #[test]
    fn garbage_file_contents_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..150),
        base in prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()],
        max_bytes in 0usize..100,
        timestamps in proptest::collection::vec(any::<i64>(), 4),
        offsets in proptest::collection::vec(any::<u64>(), 4),
        new_size in 0usize..100,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.timeindex");
        write_file(&path, &bytes);
        let mut idx = TimeIndex::open(&FileStorage, &path, base, max_bytes).unwrap();
        prop_assert_eq!(idx.entries(), bytes.len() / 12);
        let _ = idx.sanity_check();
        for &t in timestamps.iter().chain(&[i64::MIN, -1, i64::MAX]) {
            let _ = idx.lookup(t);
        }
        for n in 0..=idx.entries() {
            let _ = idx.entry(n);
        }
        let _ = idx.last_entry();
        let _ = idx.is_full();
        let _ = idx.maybe_append(timestamps[0], offsets[0], true);
        idx.truncate_to(offsets[1]);
        let _ = idx.resize(new_size);
        let _ = idx.maybe_append(timestamps[1], offsets[2], false);
        let _ = idx.lookup(timestamps[2]);
        let _ = idx.sanity_check();
        idx.trim_to_valid_size().unwrap();
    }
}
