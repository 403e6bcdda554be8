//! [`OffsetMap`]: key → offset of its last record in the dirty section, with a memory
//! bound (Kafka's `SkimpyOffsetMap`, but keyed by the exact key bytes, so two keys can
//! never be confused the way two equal hashes could).
//!
//! When the bound is reached the map stops growing; the cleaner then treats everything
//! after the last offset it recorded as not yet seen (kept as is) and makes progress one
//! partial map at a time (Kafka's `testPartialSegmentClean`).

use std::collections::HashMap;

/// Bytes counted per entry beyond the key itself: the offset, the hash-table slot and the
/// key's allocation header, roughly.
const ENTRY_OVERHEAD_BYTES: usize = 48;

/// Default memory bound of one cleaning pass's map (Kafka's
/// `log.cleaner.dedupe.buffer.size`, 128 MiB).
pub(crate) const DEFAULT_MAP_BYTES: usize = 128 << 20;

/// Key → last offset, bounded to about `max_bytes` of memory.
#[derive(Debug)]
pub(crate) struct OffsetMap {
    entries: HashMap<Box<[u8]>, u64>,
    used_bytes: usize,
    max_bytes: usize,
    /// Largest offset put, if any.
    latest: Option<u64>,
}

impl OffsetMap {
    /// An empty map that grows to about `max_bytes` (always at least one key).
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self {
            entries: HashMap::new(),
            used_bytes: 0,
            max_bytes,
            latest: None,
        }
    }

    /// Records that `key`'s latest record is at `offset` (offsets arrive in increasing
    /// order). Returns false, changing nothing, when a new key would pass the bound.
    pub(crate) fn put(&mut self, key: &[u8], offset: u64) -> bool {
        if let Some(slot) = self.entries.get_mut(key) {
            *slot = offset;
        } else {
            let cost = key.len() + ENTRY_OVERHEAD_BYTES;
            if !self.entries.is_empty() && self.used_bytes.saturating_add(cost) > self.max_bytes {
                return false;
            }
            self.used_bytes += cost;
            self.entries.insert(key.into(), offset);
        }
        self.latest = Some(self.latest.map_or(offset, |l| l.max(offset)));
        true
    }

    /// The offset of `key`'s latest record, if the map has it.
    pub(crate) fn get(&self, key: &[u8]) -> Option<u64> {
        self.entries.get(key).copied()
    }

    /// Number of keys.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The largest offset put, if any.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn latest_offset(&self) -> Option<u64> {
        self.latest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_the_last_offset_of_each_key_and_the_latest_offset() {
        let mut map = OffsetMap::new(DEFAULT_MAP_BYTES);
        assert_eq!(map.latest_offset(), None);
        for (offset, key) in [(0, "a"), (1, "b"), (2, "a"), (7_206_178, "c")] {
            assert!(map.put(key.as_bytes(), offset));
        }
        assert_eq!(map.get(b"a"), Some(2));
        assert_eq!(map.get(b"b"), Some(1));
        assert_eq!(map.get(b"c"), Some(7_206_178));
        assert_eq!(map.get(b"d"), None);
        assert_eq!((map.len(), map.latest_offset()), (3, Some(7_206_178)));
    }

    #[test]
    fn a_full_map_refuses_new_keys_but_updates_known_ones() {
        // Room for one key: the first always fits.
        let mut map = OffsetMap::new(1);
        assert!(map.put(b"k1", 1));
        assert!(!map.put(b"k2", 2));
        assert!(map.put(b"k1", 3));
        assert_eq!((map.get(b"k1"), map.get(b"k2")), (Some(3), None));
        assert_eq!(map.latest_offset(), Some(3));
    }
}
