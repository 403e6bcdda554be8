//! The in-memory store's bounded change log: the last `capacity` changes, each numbered by
//! the revision it took, so a watcher can resume from the revision it last saw.

use std::collections::VecDeque;

use super::{Change, Changes};
use crate::error::{Error, Result};

/// How many changes the in-memory store keeps by default.
pub(super) const DEFAULT_CHANGE_CAPACITY: usize = 1024;

/// The store's revision and the last changes before it.
#[derive(Debug)]
pub(super) struct ChangeLog {
    /// The number of changes so far; the last one took this revision.
    revision: u64,
    /// The last `changes.len()` changes: revisions `revision - len + 1 ..= revision`.
    changes: VecDeque<Change>,
    /// The most changes kept.
    capacity: usize,
}

impl ChangeLog {
    /// An empty log at revision 0 that keeps `capacity` changes.
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            revision: 0,
            changes: VecDeque::with_capacity(capacity.min(DEFAULT_CHANGE_CAPACITY)),
            capacity,
        }
    }

    /// Keeps at most `capacity` changes, dropping the oldest beyond it.
    pub(super) fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
        while self.changes.len() > capacity {
            self.changes.pop_front();
        }
    }

    /// The revision of the last change.
    pub(super) fn revision(&self) -> u64 {
        self.revision
    }

    /// Records `change` at the next revision, dropping the oldest if full; returns the
    /// revision.
    pub(super) fn push(&mut self, change: Change) -> u64 {
        self.revision += 1;
        if self.capacity > 0 {
            if self.changes.len() == self.capacity {
                self.changes.pop_front();
            }
            self.changes.push_back(change);
        }
        self.revision
    }

    /// The oldest revision [`Self::since`] answers for.
    fn oldest(&self) -> u64 {
        self.revision - self.changes.len() as u64
    }

    /// The changes after `requested`.
    pub(super) fn since(&self, requested: u64) -> Result<Changes> {
        if requested >= self.revision {
            return Ok(Changes {
                revision: self.revision,
                changes: Vec::new(),
            });
        }
        let oldest = self.oldest();
        if requested < oldest {
            return Err(Error::ChangesCompacted { requested, oldest });
        }
        let skip = usize::try_from(requested - oldest).unwrap_or(usize::MAX);
        Ok(Changes {
            revision: self.revision,
            changes: self.changes.iter().skip(skip).cloned().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gone(broker: u32) -> Change {
        Change::BrokerExpired { broker }
    }

    #[test]
    fn keeps_the_last_capacity_changes_and_numbers_them() {
        let mut log = ChangeLog::new(2);
        assert_eq!(log.push(gone(1)), 1);
        assert_eq!(log.push(gone(2)), 2);
        assert_eq!(log.push(gone(3)), 3);
        let all = log.since(1).unwrap();
        assert_eq!(all.changes, vec![gone(2), gone(3)]);
        assert_eq!(
            all.with_revisions().map(|(r, _)| r).collect::<Vec<_>>(),
            [2, 3]
        );
        assert_eq!(log.since(2).unwrap().changes, vec![gone(3)]);
        assert!(log.since(3).unwrap().changes.is_empty());
        assert!(matches!(
            log.since(0),
            Err(Error::ChangesCompacted {
                requested: 0,
                oldest: 1
            })
        ));
    }

    #[test]
    fn zero_capacity_answers_only_the_current_revision() {
        let mut log = ChangeLog::new(0);
        log.push(gone(1));
        assert!(log.since(1).unwrap().changes.is_empty());
        assert!(matches!(
            log.since(0),
            Err(Error::ChangesCompacted {
                requested: 0,
                oldest: 1
            })
        ));
    }
}
