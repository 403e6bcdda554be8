//! [`StickyAssignor`] and [`CooperativeStickyAssignor`]: balanced assignments that keep what
//! members already own.
//!
//! Claims: only members of the highest generation present count (a member without a
//! generation counts as generation -1); a partition claimed by two of them is treated as
//! unowned. With equal subscriptions the quota algorithm of Kafka's `constrainedAssign`
//! runs: `min = total / members`, `max = ceil(total / members)`, and `total % members`
//! members may hold `max`. Members keep their claims up to their quota, visiting members in
//! descending member-id order and each member's claims by partition number then topic;
//! the rest go round-robin to the sorted members below `min`, then to those at `min`. (The
//! descending visit reproduces Kafka's reference vectors, where a `HashMap` happens to visit
//! `consumer1..4` in that order.) With different subscriptions every valid claim is kept,
//! free partitions go to the least-loaded subscriber (topics with fewer subscribers first),
//! and partitions then move from the most loaded member to a subscriber holding at least two
//! fewer until no such move exists.
//!
//! The cooperative variant computes the same assignment and then withholds every partition
//! that changes owner: it is revoked this round and assigned in the follow-up rebalance.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::{
    Assignor, MemberAssignment, MemberId, MemberSubscription, RebalanceProtocol, TopicPartition,
    empty_assignment, sort_lists, sorted_members, subscribed_partitions,
};

/// Kafka's eager `sticky` assignor.
#[derive(Debug, Clone, Copy, Default)]
pub struct StickyAssignor;

/// Kafka's `cooperative-sticky` assignor: never moves a partition between two owners in one
/// round.
///
/// ```
/// use std::collections::BTreeMap;
/// use streamlog::{Assignor, CooperativeStickyAssignor, MemberSubscription};
/// let topics = BTreeMap::from([("t".to_string(), 2)]);
/// let members = [
///     MemberSubscription::new("c1", &["t"]).owning(&[("t", 0), ("t", 1)], 1),
///     MemberSubscription::new("c2", &["t"]).owning(&[], 1),
/// ];
/// let round1 = CooperativeStickyAssignor.assign(&members, &topics);
/// assert_eq!(round1["c1"], vec![("t".into(), 0)]); // t-1 is revoked first
/// assert!(round1["c2"].is_empty());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct CooperativeStickyAssignor;

impl Assignor for StickyAssignor {
    fn name(&self) -> &str {
        "sticky"
    }

    fn assign(
        &self,
        members: &[MemberSubscription],
        partitions_per_topic: &BTreeMap<String, u32>,
    ) -> MemberAssignment {
        sort_lists(sticky_assign(members, partitions_per_topic).0)
    }
}

impl Assignor for CooperativeStickyAssignor {
    fn name(&self) -> &str {
        "cooperative-sticky"
    }

    fn rebalance_protocol(&self) -> RebalanceProtocol {
        RebalanceProtocol::Cooperative
    }

    fn assign(
        &self,
        members: &[MemberSubscription],
        partitions_per_topic: &BTreeMap<String, u32>,
    ) -> MemberAssignment {
        let (mut assignment, transferring) = sticky_assign(members, partitions_per_topic);
        for list in assignment.values_mut() {
            list.retain(|tp| !transferring.contains(tp));
        }
        sort_lists(assignment)
    }
}

/// The eager sticky assignment and the partitions that change owner in it.
fn sticky_assign(
    members: &[MemberSubscription],
    partitions_per_topic: &BTreeMap<String, u32>,
) -> (MemberAssignment, BTreeSet<TopicPartition>) {
    let claims = Claims::new(members, partitions_per_topic);
    let topic_sets: BTreeSet<BTreeSet<&String>> =
        members.iter().map(|m| m.topics.iter().collect()).collect();
    if topic_sets.len() <= 1 {
        constrained(members, partitions_per_topic, claims)
    } else {
        general(members, partitions_per_topic, claims)
    }
}

/// The valid claims of the highest generation, and the partitions claimed twice in it.
struct Claims {
    owned: BTreeMap<MemberId, Vec<TopicPartition>>,
    doubly_claimed: BTreeSet<TopicPartition>,
}

impl Claims {
    fn new(members: &[MemberSubscription], partitions_per_topic: &BTreeMap<String, u32>) -> Self {
        let max_generation = members
            .iter()
            .map(|m| m.generation.unwrap_or(-1))
            .max()
            .unwrap_or(-1);
        let mut claimer: BTreeMap<TopicPartition, &str> = BTreeMap::new();
        let mut doubly_claimed = BTreeSet::new();
        let mut owned: BTreeMap<MemberId, Vec<TopicPartition>> = BTreeMap::new();
        for m in sorted_members(members) {
            let list = owned.entry(m.member_id.clone()).or_default();
            if m.generation.unwrap_or(-1) != max_generation {
                continue;
            }
            for tp in &m.owned_partitions {
                let exists = partitions_per_topic.get(&tp.0).is_some_and(|&n| tp.1 < n);
                if !exists || !m.subscribes(&tp.0) || list.contains(tp) {
                    continue;
                }
                match claimer.get(tp) {
                    Some(_) => {
                        doubly_claimed.insert(tp.clone());
                    }
                    None => {
                        claimer.insert(tp.clone(), &m.member_id);
                        list.push(tp.clone());
                    }
                }
            }
        }
        for list in owned.values_mut() {
            list.retain(|tp| !doubly_claimed.contains(tp));
        }
        Self {
            owned,
            doubly_claimed,
        }
    }
}

/// Equal subscriptions: Kafka's quota algorithm.
fn constrained(
    members: &[MemberSubscription],
    partitions_per_topic: &BTreeMap<String, u32>,
    claims: Claims,
) -> (MemberAssignment, BTreeSet<TopicPartition>) {
    let mut assignment = empty_assignment(members);
    let all = subscribed_partitions(members, partitions_per_topic);
    if members.is_empty() {
        return (assignment, BTreeSet::new());
    }
    let total = all.len();
    let min_quota = total / members.len();
    let max_quota = total.div_ceil(members.len());
    let expected_over_min = total % members.len();
    let mut current_over_min = 0;
    let mut under_min: Vec<MemberId> = Vec::new();
    let mut exactly_min: Vec<MemberId> = Vec::new();
    let mut revoked: BTreeSet<TopicPartition> = BTreeSet::new();
    let mut kept: BTreeSet<TopicPartition> = BTreeSet::new();

    let mut visit: Vec<&MemberSubscription> = sorted_members(members);
    visit.reverse();
    for m in visit {
        let mut owned = claims.owned.get(&m.member_id).cloned().unwrap_or_default();
        owned.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        let keep = if owned.len() < min_quota {
            under_min.push(m.member_id.clone());
            owned.len()
        } else if owned.len() >= max_quota && current_over_min < expected_over_min {
            current_over_min += 1;
            if current_over_min == expected_over_min {
                exactly_min.clear();
            }
            max_quota
        } else {
            if current_over_min < expected_over_min {
                exactly_min.push(m.member_id.clone());
            }
            min_quota
        };
        revoked.extend(owned.drain(keep..));
        kept.extend(owned.iter().cloned());
        if let Some(list) = assignment.get_mut(&m.member_id) {
            list.extend(owned);
        }
    }

    under_min.sort();
    exactly_min.sort();
    let mut exactly_min: VecDeque<MemberId> = exactly_min.into();
    let mut transferring = BTreeSet::new();
    let mut cursor = 0;
    for tp in all.into_iter().filter(|tp| !kept.contains(tp)) {
        if cursor >= under_min.len() {
            cursor = 0;
        }
        let member = if let Some(m) = under_min.get(cursor) {
            m.clone()
        } else if let Some(m) = exactly_min.pop_front() {
            m
        } else {
            // Unreachable when the quotas add up; stay valid anyway.
            least_loaded(&assignment, |_| true)
        };
        if revoked.contains(&tp) || claims.doubly_claimed.contains(&tp) {
            transferring.insert(tp.clone());
        }
        let count = assignment.get_mut(&member).map_or(0, |list| {
            list.push(tp);
            list.len()
        });
        if under_min.get(cursor) == Some(&member) {
            if count == min_quota {
                under_min.remove(cursor);
                exactly_min.push_back(member);
            } else {
                cursor += 1;
            }
        }
    }
    (assignment, transferring)
}

/// Different subscriptions: keep every valid claim, fill the least loaded, then rebalance.
fn general(
    members: &[MemberSubscription],
    partitions_per_topic: &BTreeMap<String, u32>,
    claims: Claims,
) -> (MemberAssignment, BTreeSet<TopicPartition>) {
    let mut assignment = empty_assignment(members);
    for (member, owned) in &claims.owned {
        if let Some(list) = assignment.get_mut(member) {
            list.extend(owned.iter().cloned());
        }
    }
    let subscribers = |topic: &str| -> BTreeSet<&str> {
        members
            .iter()
            .filter(|m| m.subscribes(topic))
            .map(|m| m.member_id.as_str())
            .collect()
    };
    let owned: BTreeSet<&TopicPartition> = claims.owned.values().flatten().collect();
    let mut free: Vec<TopicPartition> = subscribed_partitions(members, partitions_per_topic)
        .into_iter()
        .filter(|tp| !owned.contains(tp))
        .collect();
    free.sort_by_cached_key(|tp| (subscribers(&tp.0).len(), tp.clone()));
    let mut transferring = BTreeSet::new();
    for tp in free {
        let candidates = subscribers(&tp.0);
        let member = least_loaded(&assignment, |m| candidates.contains(m));
        if claims.doubly_claimed.contains(&tp) {
            transferring.insert(tp.clone());
        }
        if let Some(list) = assignment.get_mut(&member) {
            list.push(tp);
        }
    }
    while let Some((from, to, tp)) = next_move(&assignment, &subscribers) {
        if owned.contains(&tp) {
            transferring.insert(tp.clone());
        }
        if let Some(list) = assignment.get_mut(&from) {
            list.retain(|p| p != &tp);
        }
        if let Some(list) = assignment.get_mut(&to) {
            list.push(tp);
        }
    }
    (assignment, transferring)
}

/// A move from a member to a subscriber holding at least two fewer partitions: from the
/// most loaded member, its last partition that someone can take, to the least loaded taker.
fn next_move<'a>(
    assignment: &MemberAssignment,
    subscribers: &impl Fn(&str) -> BTreeSet<&'a str>,
) -> Option<(MemberId, MemberId, TopicPartition)> {
    let mut donors: Vec<(&MemberId, &Vec<TopicPartition>)> = assignment.iter().collect();
    donors.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
    for (donor, list) in donors {
        let mut partitions = list.clone();
        partitions.sort();
        for tp in partitions.into_iter().rev() {
            let takers = subscribers(&tp.0);
            let taker = least_loaded(assignment, |m| takers.contains(m));
            let taker_len = assignment.get(&taker).map_or(usize::MAX, Vec::len);
            if taker_len.saturating_add(2) <= list.len() {
                return Some((donor.clone(), taker, tp));
            }
        }
    }
    None
}

/// The member passing `eligible` with the fewest partitions (ties: smallest id).
fn least_loaded(assignment: &MemberAssignment, eligible: impl Fn(&str) -> bool) -> MemberId {
    assignment
        .iter()
        .filter(|(m, _)| eligible(m))
        .min_by(|a, b| a.1.len().cmp(&b.1.len()).then(a.0.cmp(b.0)))
        .map(|(m, _)| m.clone())
        .unwrap_or_default()
}
