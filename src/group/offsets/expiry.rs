//! Which committed offsets have expired, by Kafka's rules (`ClassicGroup.
//! offsetExpirationCondition` and `OffsetExpirationConditionImpl.isOffsetExpired`):
//!
//! - An offset with an explicit expire timestamp (a v1 value) expires once `now ≥ expire`.
//! - Otherwise it expires once `now - base ≥ offsets.retention.ms`, where the base is:
//!   - for a simple group (no stored protocol type): the commit timestamp, whatever the
//!     group's state;
//!   - for an Empty group with a protocol type: the time the group became Empty (its stored
//!     current-state timestamp), or the commit timestamp when none was stored;
//!   - for a Stable "consumer" group that knows its members' subscriptions: the commit
//!     timestamp, for offsets of topics no member subscribes to;
//!   - in any other case nothing expires: an active group keeps all its offsets.

use std::collections::BTreeSet;

use super::cache::GroupEntry;
use super::commit_value::OffsetAndMetadata;

/// What the coordinator knows about a group's live state, which decides whether and how
/// its offsets can expire (see [`crate::OffsetsStore::expire_with`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupActivity {
    /// The group has no members: Kafka's Empty state, or a group the coordinator does not
    /// hold (a simple group that only commits offsets).
    Empty,
    /// A Stable group using the "consumer" protocol whose members subscribe to these
    /// topics: offsets of other topics expire by commit time.
    StableSubscribed(BTreeSet<String>),
    /// Members exist (PreparingRebalance, CompletingRebalance, or Stable without known
    /// subscriptions): nothing expires, unless the group is a simple one.
    Active,
}

/// The time an offset's retention counts from.
enum Base {
    CommitTime,
    /// The group's state timestamp, falling back to the commit time.
    StateTime(Option<i64>),
}

/// The `(topic, partition)` of every offset of `entry` that expired at `now_ms`.
pub(super) fn expired_offsets<'a>(
    entry: &'a GroupEntry,
    activity: &GroupActivity,
    now_ms: i64,
    retention_ms: i64,
) -> Vec<(&'a str, u32)> {
    let protocol_type = entry
        .metadata
        .as_ref()
        .map(|m| m.protocol_type.as_str())
        .filter(|p| !p.is_empty());
    let state_time = entry
        .metadata
        .as_ref()
        .and_then(|m| m.current_state_timestamp);
    let (base, subscribed) = match (protocol_type, activity) {
        (None, _) => (Base::CommitTime, None),
        (Some(_), GroupActivity::Empty) => (Base::StateTime(state_time), None),
        (Some("consumer"), GroupActivity::StableSubscribed(topics)) => {
            (Base::CommitTime, Some(topics))
        }
        _ => return Vec::new(),
    };
    entry
        .iter_offsets()
        .filter(|(topic, _, _)| !subscribed.is_some_and(|t| t.contains(*topic)))
        .filter(|(_, _, offset)| is_expired(offset, &base, now_ms, retention_ms))
        .map(|(topic, partition, _)| (topic, partition))
        .collect()
}

fn is_expired(offset: &OffsetAndMetadata, base: &Base, now_ms: i64, retention_ms: i64) -> bool {
    if let Some(expire) = offset.expire_timestamp {
        return now_ms >= expire;
    }
    let base_ms = match base {
        Base::CommitTime => offset.commit_timestamp,
        Base::StateTime(state) => state.unwrap_or(offset.commit_timestamp),
    };
    now_ms.saturating_sub(base_ms) >= retention_ms
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::offsets::GroupMetadata;

    fn entry(protocol_type: Option<&str>, state_time: Option<i64>) -> GroupEntry {
        let mut entry = GroupEntry {
            metadata: protocol_type.map(|p| GroupMetadata {
                protocol_type: p.into(),
                current_state_timestamp: state_time,
                ..GroupMetadata::default()
            }),
            ..GroupEntry::default()
        };
        let commit = |offset, ts| OffsetAndMetadata::new(offset, ts);
        let foo = entry.offsets.entry("foo".into()).or_default();
        foo.insert(0, commit(1, 20_000));
        foo.insert(1, commit(2, 1_000).with_expire_timestamp(1_001)); // now + 1 ms
        foo.insert(2, commit(3, 1_000).with_expire_timestamp(1_003)); // now + 3 ms
        entry
            .offsets
            .entry("bar".into())
            .or_default()
            .insert(0, commit(4, 20_000));
        entry
    }

    fn expired<'a>(
        entry: &'a GroupEntry,
        activity: &GroupActivity,
        now: i64,
    ) -> Vec<(&'a str, u32)> {
        let mut v = expired_offsets(entry, activity, now, 10_000);
        v.sort();
        v
    }

    #[test]
    fn simple_group_uses_the_commit_timestamp() {
        let e = entry(None, None);
        // commit 20000, retention 10000, now 30000 → expired; explicit ones too.
        let all = vec![("bar", 0), ("foo", 0), ("foo", 1), ("foo", 2)];
        assert_eq!(expired(&e, &GroupActivity::Active, 30_000), all);
        assert_eq!(
            expired(&e, &GroupActivity::Empty, 29_999),
            [("foo", 1), ("foo", 2)]
        );
    }

    #[test]
    fn empty_group_applies_per_offset_expire_timestamps() {
        let e = entry(Some("consumer"), Some(1_000));
        assert_eq!(expired(&e, &GroupActivity::Empty, 1_002), [("foo", 1)]);
        assert_eq!(
            expired(&e, &GroupActivity::Empty, 1_003),
            [("foo", 1), ("foo", 2)]
        );
    }

    #[test]
    fn empty_group_counts_from_its_state_timestamp() {
        let e = entry(Some("connect"), Some(25_000));
        assert_eq!(
            expired(&e, &GroupActivity::Empty, 34_999),
            [("foo", 1), ("foo", 2)]
        );
        assert_eq!(expired(&e, &GroupActivity::Empty, 35_000).len(), 4);
        // Without a state timestamp (an old record), the commit timestamp is the base.
        let old = entry(Some("connect"), None);
        assert_eq!(expired(&old, &GroupActivity::Empty, 30_000).len(), 4);
    }

    #[test]
    fn active_groups_never_expire_even_past_an_explicit_expire_time() {
        for protocol in ["consumer", "connect"] {
            let e = entry(Some(protocol), Some(0));
            assert!(expired(&e, &GroupActivity::Active, i64::MAX).is_empty());
        }
        // A non-consumer protocol ignores subscriptions: Stable is simply active.
        let e = entry(Some("connect"), Some(0));
        let stable = GroupActivity::StableSubscribed(BTreeSet::new());
        assert!(expired(&e, &stable, i64::MAX).is_empty());
    }

    #[test]
    fn stable_consumer_group_expires_only_unsubscribed_topics_by_commit_time() {
        let e = entry(Some("consumer"), Some(0));
        let stable = GroupActivity::StableSubscribed(["foo".to_string()].into());
        assert!(expired(&e, &stable, 29_999).is_empty());
        assert_eq!(expired(&e, &stable, 30_000), [("bar", 0)]);
    }

    #[test]
    fn huge_retention_and_extreme_times_do_not_overflow() {
        let e = entry(None, None);
        let retention = i64::from(i32::MAX) * 60_000;
        assert_eq!(
            expired_offsets(&e, &GroupActivity::Empty, 1_000_000, retention).len(),
            2,
            "only the explicit expire timestamps"
        );
        assert_eq!(
            expired_offsets(&e, &GroupActivity::Empty, i64::MIN, retention).len(),
            0
        );
        assert_eq!(
            expired_offsets(&e, &GroupActivity::Empty, i64::MAX, i64::MAX).len(),
            2
        );
    }
}
