//! Fuzz target `index_open`: arbitrary bytes written as a segment's `.index` and
//! `.timeindex` files on a `SimStorage`, then both opened and used the way a segment does:
//! `sanity_check`, floor lookups, `entry(n)`, `fetch_upper_bound`, appends, truncation,
//! resizing and trimming. Nothing may panic; errors are fine.
//!
//! Input layout: `[flags, base offset (2 bytes), max index size (2 bytes), split (2 bytes),
//! file bytes...]`. The file bytes are cut at `split` into the `.index` and the `.timeindex`;
//! flag bit 0 uses a base offset near `u64::MAX` (overflow edges), bit 1 resizes both indexes
//! before appending (what a segment does when it becomes active again).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use streamlog::{SimStorage, SparseIndex, TimeIndex};

/// Lookups and appends per input, bounded so each run stays fast.
const PROBES: usize = 64;

fuzz_target!(|data: &[u8]| {
    let Some((header, files)) = data.split_first_chunk::<7>() else {
        return;
    };
    let [flags, b0, b1, m0, m1, s0, s1] = *header;
    let small = u64::from(u16::from_le_bytes([b0, b1]));
    let base = if flags & 1 == 1 {
        u64::MAX - small
    } else {
        small
    };
    let max_bytes = usize::from(u16::from_le_bytes([m0, m1])) % 4096;
    let split = usize::from(u16::from_le_bytes([s0, s1])).min(files.len());
    let (index_bytes, time_bytes) = files.split_at(split);

    let storage = SimStorage::new();
    let dir = Path::new("/fuzz/p-0");
    let index_path = dir.join(format!("{base:020}.index"));
    let time_path = dir.join(format!("{base:020}.timeindex"));
    if !index_bytes.is_empty() {
        storage.write_file(&index_path, index_bytes);
    }
    if !time_bytes.is_empty() {
        storage.write_file(&time_path, time_bytes);
    }

    // Probe values taken from the input itself, so lookups hit stored entries.
    let probes: Vec<u64> = files
        .chunks(4)
        .take(PROBES)
        .map(|c| {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            u64::from(u32::from_be_bytes(w))
        })
        .collect();

    if let Ok(mut index) = SparseIndex::open(&storage, &index_path, base, max_bytes) {
        offset_index(&mut index, base, max_bytes, flags, &probes);
    }
    if let Ok(mut index) = TimeIndex::open(&storage, &time_path, base, max_bytes) {
        time_index(&mut index, base, max_bytes, flags, &probes);
    }
});

fn offset_index(index: &mut SparseIndex, base: u64, max_bytes: usize, flags: u8, probes: &[u64]) {
    let _ = index.sanity_check();
    let (entries, max_entries) = (index.entries(), index.max_entries());
    assert!(entries <= max_entries);
    let _ = (index.is_full(), index.size_bytes(), index.last_offset());
    for n in (0..entries.min(PROBES)).chain([entries, entries + 1, usize::MAX]) {
        let result = index.entry(n);
        assert_eq!(result.is_ok(), n < entries);
    }
    for &p in probes {
        let target = base.saturating_add(p);
        let found = index.lookup(target);
        let _ = index.fetch_upper_bound(found, p as u32);
        let _ = index.lookup(p);
    }
    let _ = index.lookup(u64::MAX);
    let _ = index.lookup(0);
    if flags & 2 == 2 {
        let _ = index.resize(max_bytes);
    }
    let mut offset = index.last_offset();
    for &p in probes {
        offset = offset.saturating_add(p % 1000);
        let _ = index.append(offset, p as u32);
    }
    let _ = index.append(base.saturating_add(u64::from(u32::MAX)), 0);
    if let Some(&p) = probes.first() {
        index.truncate_to(base.saturating_add(p));
    }
    let _ = index.sanity_check();
    let _ = index.trim_to_valid_size();
    let _ = index.sanity_check();
    let _ = index.lookup(base);
    index.reset();
    let _ = index.append(base, 0);
    let _ = index.flush();
}

fn time_index(index: &mut TimeIndex, base: u64, max_bytes: usize, flags: u8, probes: &[u64]) {
    let _ = index.sanity_check();
    let (entries, max_entries) = (index.entries(), index.max_entries());
    assert!(entries <= max_entries);
    let _ = (index.is_full(), index.size_bytes(), index.last_entry());
    for n in (0..entries.min(PROBES)).chain([entries, entries + 1, usize::MAX]) {
        let result = index.entry(n);
        assert_eq!(result.is_ok(), n < entries);
    }
    for &p in probes {
        let _ = index.lookup(p as i64);
        let _ = index.lookup(-(p as i64));
    }
    let _ = index.lookup(i64::MAX);
    let _ = index.lookup(i64::MIN);
    if flags & 2 == 2 {
        let _ = index.resize(max_bytes);
    }
    let last = index.last_entry();
    let (mut timestamp, mut offset) = (last.timestamp, last.offset);
    for (i, &p) in probes.iter().enumerate() {
        timestamp = timestamp.saturating_add((p % 7) as i64 - 1);
        offset = offset.saturating_add(p % 1000);
        let _ = index.maybe_append(timestamp, offset, i % 5 == 0);
    }
    let _ = index.maybe_append(i64::MAX, base.saturating_add(u64::from(u32::MAX)), true);
    if let Some(&p) = probes.first() {
        index.truncate_to(base.saturating_add(p));
    }
    let _ = index.sanity_check();
    let _ = index.trim_to_valid_size();
    let _ = index.sanity_check();
    index.reset();
    let _ = index.maybe_append(0, base, false);
    let _ = index.flush();
}
