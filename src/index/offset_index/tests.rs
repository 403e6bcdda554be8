//! Unit tests of [`SparseIndex`], after Kafka's `OffsetIndexTest`, plus a property test
//! against a `BTreeMap` model and a garbage-file property test.

use std::collections::BTreeMap;
use std::path::PathBuf;

use proptest::prelude::*;

use super::*;
use crate::Error;
use crate::storage::{FileStorage, OpenMode};

const BASE: u64 = 45;

fn path_in(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("00000000000000000045.index")
}

fn open(dir: &tempfile::TempDir, max_bytes: usize) -> SparseIndex {
    SparseIndex::open(&FileStorage, &path_in(dir), BASE, max_bytes).unwrap()
}

fn entry(offset: u64, position: u32) -> IndexEntry {
    IndexEntry { offset, position }
}

/// Writes `bytes` as the whole content of the index file.
fn write_file(path: &Path, bytes: &[u8]) {
    let file = FileStorage.open(path, OpenMode::Create).unwrap();
    file.set_len(0).unwrap();
    file.write_all_at(bytes, 0).unwrap();
}

fn raw(relative: u32, position: u32) -> Vec<u8> {
    [relative.to_be_bytes(), position.to_be_bytes()].concat()
}

fn is_misuse<T: std::fmt::Debug>(r: Result<T>) -> bool {
    matches!(r, Err(Error::IndexMisuse { .. }))
}

fn is_corrupt(r: Result<()>) -> bool {
    matches!(r, Err(Error::Corrupt { .. }))
}

#[test]
fn sparse_index_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<SparseIndex>();
}

#[test]
fn empty_index_lookup_returns_base_offset_and_position_zero() {
    let dir = tempfile::tempdir().unwrap();
    let idx = open(&dir, 4096);
    for target in [0, BASE, BASE + 1, u64::MAX] {
        assert_eq!(idx.lookup(target), entry(BASE, 0));
    }
    assert_eq!(idx.last_offset(), BASE);
}

#[test]
fn lookup_is_the_floor_and_below_first_entry_is_base() {
    let dir = tempfile::tempdir().unwrap();
    let mut idx = open(&dir, 4096);
    idx.append(50, 100).unwrap();
    idx.append(60, 200).unwrap();
    assert_eq!(idx.lookup(49), entry(BASE, 0));
    assert_eq!(idx.lookup(50), entry(50, 100));
    assert_eq!(idx.lookup(59), entry(50, 100));
    assert_eq!(idx.lookup(60), entry(60, 200));
    assert_eq!(idx.lookup(u64::MAX), entry(60, 200));
}

#[test]
fn lookup_extremes_on_a_full_index() {
    let dir = tempfile::tempdir().unwrap();
    let mut idx = open(&dir, 8 * 10);
    for i in 0..10 {
        idx.append(BASE + i * 3, (i * 7) as u32).unwrap();
    }
    assert!(idx.is_full());
    assert_eq!(idx.lookup(BASE), entry(BASE, 0));
    assert_eq!(idx.lookup(BASE + 27), entry(BASE + 27, 63));
    assert_eq!(idx.lookup(BASE + 1000), entry(BASE + 27, 63));
}

#[test]
fn entry_returns_the_nth_pair_and_errors_past_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut idx = open(&dir, 4096);
    assert!(is_misuse(idx.entry(0)));
    for i in 0..5u32 {
        idx.append(BASE + u64::from(i) * 2, i * 10).unwrap();
    }
    for i in 0..5u32 {
        assert_eq!(
            idx.entry(i as usize).unwrap(),
            entry(BASE + u64::from(i) * 2, i * 10)
        );
    }
    assert!(is_misuse(idx.entry(5)));
    assert!(is_misuse(idx.entry(usize::MAX)));
}

#[test]
fn max_entries_is_size_over_eight_rounded_down_and_full_index_refuses_appends() {
    let dir = tempfile::tempdir().unwrap();
    let mut idx = open(&dir, 8 * 5 + 7);
    assert_eq!(idx.max_entries(), 5);
    assert_eq!(idx.size_bytes(), 40);
    for i in 0..5 {
        idx.append(BASE + i, 0).unwrap();
    }
    assert!(idx.is_full());
    assert!(is_misuse(idx.append(BASE + 100, 0)));
    assert_eq!(idx.entries(), 5);
}

#[test]
fn index_smaller_than_one_entry_is_always_full() {
    let dir = tempfile::tempdir().unwrap();
    let mut idx = open(&dir, 7);
    assert_eq!((idx.max_entries(), idx.size_bytes()), (0, 0));
    assert!(idx.is_full());
    assert!(is_misuse(idx.append(BASE, 0)));
    assert_eq!(idx.lookup(BASE + 5), entry(BASE, 0));
    idx.sanity_check().unwrap();
}

#[test]
fn out_of_order_and_equal_offsets_are_refused_but_first_may_equal_base() {
    let dir = tempfile::tempdir().unwrap();
    let mut idx = open(&dir, 4096);
    idx.append(BASE, 0).unwrap();
    assert!(is_misuse(idx.append(BASE, 10)));
    idx.append(51, 10).unwrap();
    assert!(is_misuse(idx.append(50, 20)));
    assert!(is_misuse(idx.append(51, 20)));
    assert_eq!(idx.entries(), 2);
    assert_eq!(idx.last_offset(), 51);
}

#[test]
fn offsets_below_base_or_beyond_i32_relative_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut idx = open(&dir, 4096);
    assert!(is_misuse(idx.append(BASE - 1, 0)));
    assert!(is_misuse(idx.append(BASE + i32::MAX as u64 + 1, 0)));
    idx.append(BASE + i32::MAX as u64, 0).unwrap();
    assert_eq!(idx.last_offset(), BASE + i32::MAX as u64);
}

#[test]
fn fetch_upper_bound_is_the_first_entry_at_or_past_start_plus_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut idx = open(&dir, 4096);
    for (i, pos) in [0u32, 10, 23, 37].into_iter().enumerate() {
        idx.append(BASE + i as u64, pos).unwrap();
    }
    let at = |pos: u32| {
        idx.entry([0u32, 10, 23, 37].iter().position(|p| *p == pos).unwrap())
            .unwrap()
    };
    let start = idx.entry(0).unwrap();
    assert_eq!(idx.fetch_upper_bound(start, 5), Some(at(10)));
    assert_eq!(idx.fetch_upper_bound(start, 10), Some(at(10)));
    assert_eq!(idx.fetch_upper_bound(start, 22), Some(at(23)));
    assert_eq!(idx.fetch_upper_bound(start, 23), Some(at(23)));
    assert_eq!(idx.fetch_upper_bound(at(10), 24), Some(at(37)));
    assert_eq!(idx.fetch_upper_bound(start, 200), None);
    idx.reset();
    assert_eq!(idx.fetch_upper_bound(start, 0), None);
}

#[test]
fn reopen_after_trim_restores_entries_and_refuses_appends_until_resized() {
    let dir = tempfile::tempdir().unwrap();
    let mut idx = open(&dir, 4096);
    idx.append(BASE + 5, 100).unwrap();
    idx.append(BASE + 9, 200).unwrap();
    idx.trim_to_valid_size().unwrap();
    idx.flush().unwrap();
    drop(idx);
    let mut idx = open(&dir, 4096);
    assert_eq!(idx.entries(), 2);
    assert_eq!(idx.size_bytes(), 16);
    assert_eq!(idx.last_offset(), BASE + 9);
    assert_eq!(idx.lookup(BASE + 7), entry(BASE + 5, 100));
    assert_eq!(idx.lookup(BASE + 9), entry(BASE + 9, 200));
    assert!(idx.is_full());
    assert!(is_misuse(idx.append(BASE + 20, 300)));
    assert!(idx.resize(4096).unwrap());
    idx.append(BASE + 20, 300).unwrap();
    assert_eq!(idx.entries(), 3);
}

#[test]
fn truncate_to_removes_entries_at_or_after_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut idx = open(&dir, 4096);
    for i in 0..10u32 {
        idx.append(BASE + u64::from(i) * 10, i).unwrap();
    }
    idx.truncate_to(BASE + 1000);
    assert_eq!(idx.entries(), 10);
    idx.truncate_to(BASE + 51);
    assert_eq!(idx.entries(), 6);
    idx.truncate_to(BASE + 50);
    assert_eq!(idx.entries(), 5);
    assert_eq!(idx.last_offset(), BASE + 40);
    assert_eq!(idx.lookup(BASE + 95), entry(BASE + 40, 4));
    idx.append(BASE + 41, 5).unwrap();
    assert_eq!(idx.lookup(BASE + 95), entry(BASE + 41, 5));
    idx.truncate_to(BASE);
    assert_eq!(idx.entries(), 0);
    assert_eq!(idx.last_offset(), BASE);
    idx.append(BASE + 3, 1).unwrap();
    idx.reset();
    assert_eq!(idx.entries(), 0);
    assert_eq!(idx.lookup(BASE + 3), entry(BASE, 0));
}

#[test]
fn resize_reports_whether_the_size_changed_and_keeps_entries_that_fit() {
    let dir = tempfile::tempdir().unwrap();
    let mut idx = open(&dir, 80);
    for i in 0..4 {
        idx.append(BASE + i, 0).unwrap();
    }
    assert!(!idx.resize(80).unwrap());
    assert!(!idx.resize(87).unwrap());
    assert!(idx.resize(160).unwrap());
    assert_eq!(idx.max_entries(), 20);
    assert!(idx.resize(16).unwrap());
    assert_eq!(idx.entries(), 2);
    assert_eq!(idx.last_offset(), BASE + 1);
    assert!(idx.resize(0).unwrap());
    assert_eq!((idx.entries(), idx.max_entries()), (0, 0));
    assert!(idx.resize(8).unwrap());
    idx.append(BASE, 1).unwrap();
}

#[test]
fn sanity_check_passes_when_the_last_offset_equals_the_base_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut idx = open(&dir, 4096);
    idx.append(BASE, 0).unwrap();
    idx.sanity_check().unwrap();
    idx.trim_to_valid_size().unwrap();
    drop(idx);
    let idx = open(&dir, 4096);
    assert_eq!(idx.entries(), 1);
    idx.sanity_check().unwrap();
}

#[test]
fn sanity_check_fails_on_two_garbage_bytes() {
    let dir = tempfile::tempdir().unwrap();
    write_file(&path_in(&dir), &[0xde, 0xad]);
    let idx = open(&dir, 4096);
    assert_eq!(idx.entries(), 0);
    assert!(is_corrupt(idx.sanity_check()));
    assert_eq!(idx.lookup(BASE + 1), entry(BASE, 0));
}

#[test]
fn sanity_check_fails_on_a_length_that_is_not_a_multiple_of_eight() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = raw(1, 10);
    bytes.extend(raw(2, 20));
    bytes.push(0);
    write_file(&path_in(&dir), &bytes);
    let idx = open(&dir, 4096);
    assert_eq!(idx.entries(), 2);
    assert_eq!(idx.lookup(BASE + 5), entry(BASE + 2, 20));
    assert!(is_corrupt(idx.sanity_check()));
}

#[test]
fn sanity_check_fails_on_decreasing_or_repeated_entries() {
    let dir = tempfile::tempdir().unwrap();
    for (a, b) in [
        (raw(5, 10), raw(4, 20)),
        (raw(5, 10), raw(5, 20)),
        (raw(5, 10), raw(6, 9)),
    ] {
        write_file(&path_in(&dir), &[a, b].concat());
        let idx = open(&dir, 4096);
        assert!(is_corrupt(idx.sanity_check()));
    }
}

#[test]
fn sanity_check_fails_on_an_entry_below_the_base_offset() {
    let dir = tempfile::tempdir().unwrap();
    write_file(&path_in(&dir), &raw(u32::MAX, 0));
    let idx = open(&dir, 4096);
    assert!(is_corrupt(idx.sanity_check()));
}

#[test]
fn untrimmed_index_left_by_a_crash_fails_the_sanity_check() {
    let dir = tempfile::tempdir().unwrap();
    let mut idx = open(&dir, 4096);
    idx.append(BASE + 1, 10).unwrap();
    idx.append(BASE + 2, 20).unwrap();
    idx.flush().unwrap();
    drop(idx);
    let idx = open(&dir, 4096);
    assert_eq!(idx.entries(), 512);
    assert!(is_corrupt(idx.sanity_check()));
}

#[test]
fn rename_keeps_the_entries_and_moves_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut idx = open(&dir, 4096);
    idx.append(BASE + 1, 10).unwrap();
    let new_path = dir.path().join("00000000000000000045.index.deleted");
    idx.rename_to(&FileStorage, &new_path).unwrap();
    assert_eq!(idx.path(), new_path);
    assert!(!path_in(&dir).exists());
    idx.append(BASE + 2, 20).unwrap();
    assert_eq!(idx.lookup(BASE + 9), entry(BASE + 2, 20));
}

#[derive(Debug, Clone)]
enum Op {
    Append { offset_gap: u64, position_gap: u32 },
    TruncateTo(u64),
    Reset,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u64..20, 0u32..100).prop_map(|(offset_gap, position_gap)| Op::Append { offset_gap, position_gap }),
        1 => (0u64..400).prop_map(Op::TruncateTo),
        1 => Just(Op::Reset),
        1 => Just(Op::Reopen),
    ]
}

/// Checks the index against the model: counts, last offset and floor lookups.
fn assert_matches(idx: &SparseIndex, model: &BTreeMap<u64, u32>, base: u64) {
    assert_eq!(idx.entries(), model.len());
    assert_eq!(
        idx.last_offset(),
        model.keys().next_back().copied().unwrap_or(base)
    );
    let probes = model.keys().flat_map(|k| [k.saturating_sub(1), *k, k + 1]);
    for target in probes.chain([0, base, base + 400, u64::MAX]) {
        let want = model
            .range(..=target)
            .next_back()
            .map_or(entry(base, 0), |(o, p)| entry(*o, *p));
        assert_eq!(idx.lookup(target), want, "lookup({target})");
    }
    for (n, (o, p)) in model.iter().enumerate() {
        assert_eq!(idx.entry(n).unwrap(), entry(*o, *p));
    }
    idx.sanity_check().unwrap();
}

proptest! {
    #[test]
    fn floor_lookup_matches_a_btreemap_through_appends_truncations_and_reopens(
        base in 0u64..1_000_000_000_000,
        max_entries in 0usize..40,
        slack in 0usize..8,
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.index");
        let max_bytes = max_entries * 8 + slack;
        let mut idx = SparseIndex::open(&FileStorage, &path, base, max_bytes).unwrap();
        let mut model = BTreeMap::<u64, u32>::new();
        for op in ops {
            match op {
                Op::Append { offset_gap, position_gap } => {
                    let (last_o, last_p) = model.iter().next_back().map_or((base, 0), |(o, p)| (*o, *p));
                    let (offset, position) = (last_o + offset_gap, last_p + position_gap);
                    let ok = model.len() < max_entries && (model.is_empty() || offset_gap > 0);
                    let result = idx.append(offset, position);
                    prop_assert_eq!(result.is_ok(), ok, "{:?}", result);
                    if ok {
                        model.insert(offset, position);
                    } else {
                        prop_assert!(is_misuse(result));
                    }
                }
                Op::TruncateTo(rel) => {
                    idx.truncate_to(base + rel);
                    model.split_off(&(base + rel));
                }
                Op::Reset => {
                    idx.reset();
                    model.clear();
                }
                Op::Reopen => {
                    idx.trim_to_valid_size().unwrap();
                    idx.flush().unwrap();
                    drop(idx);
                    idx = SparseIndex::open(&FileStorage, &path, base, max_bytes).unwrap();
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
        bytes in proptest::collection::vec(any::<u8>(), 0..120),
        base in prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()],
        max_bytes in 0usize..100,
        targets in proptest::collection::vec(any::<u64>(), 4),
        new_size in 0usize..100,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.index");
        write_file(&path, &bytes);
        let mut idx = SparseIndex::open(&FileStorage, &path, base, max_bytes).unwrap();
        prop_assert_eq!(idx.entries(), bytes.len() / 8);
        let _ = idx.sanity_check();
        for &t in targets.iter().chain(&[0, base, u64::MAX]) {
            let found = idx.lookup(t);
            let _ = idx.fetch_upper_bound(found, 100);
        }
        for n in 0..=idx.entries() {
            let _ = idx.entry(n);
        }
        let _ = idx.last_offset();
        let _ = idx.append(targets[0], 7);
        idx.truncate_to(targets[1]);
        let _ = idx.resize(new_size);
        let _ = idx.append(targets[2], 9);
        let _ = idx.lookup(targets[3]);
        let _ = idx.sanity_check();
        idx.trim_to_valid_size().unwrap();
    }
}
