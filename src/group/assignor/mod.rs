//! Partition assignors: the leader of a consumer group splits the partitions of the
//! subscribed topics among the members with one of these.
//!
//! Every assignor gives each partition of a subscribed topic to exactly one subscribed
//! member, lists every member in its result (possibly with nothing), and is deterministic:
//! members are ordered by member id and partitions by topic, then number (S9).
//!
//! - [`RangeAssignor`] (`range`): per topic, contiguous blocks; the first members take the
//!   extra partitions.
//! - [`RoundRobinAssignor`] (`roundrobin`): all partitions in order over a circular list of
//!   members, skipping members not subscribed to the topic.
//! - [`StickyAssignor`] (`sticky`): balanced, and keeps what members already own.
//! - [`CooperativeStickyAssignor`] (`cooperative-sticky`): the sticky assignment, except that
//!   a partition never moves from one owner to another in one round: it is revoked first and
//!   assigned in a follow-up rebalance.
//!
//! [`protocol`] encodes subscriptions and assignments as the bytes a member puts in its
//! JoinGroup and SyncGroup requests.

use std::collections::BTreeMap;
use std::fmt::Debug;

pub mod protocol;
mod range;
mod round_robin;
mod sticky;

pub use range::RangeAssignor;
pub use round_robin::RoundRobinAssignor;
pub use sticky::{CooperativeStickyAssignor, StickyAssignor};

/// A member id as the coordinator gave it (`<client_id>-<suffix>`).
pub type MemberId = String;

/// A partition of a topic: `(topic, partition number)`. Tuples order by topic, then number.
pub type TopicPartition = (String, u32);

/// The result of an assignment: each member's partitions, sorted by topic then number.
pub type MemberAssignment = BTreeMap<MemberId, Vec<TopicPartition>>;

/// What a member tells the leader: the topics it wants, what it owns now and since which
/// generation (sticky assignors use the last two).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberSubscription {
    /// The member.
    pub member_id: MemberId,
    /// The topics it subscribes to.
    pub topics: Vec<String>,
    /// The partitions it owns from its last assignment.
    pub owned_partitions: Vec<TopicPartition>,
    /// The generation of that assignment; `None` when unknown. Sticky assignors only trust
    /// the claims of members from the highest generation present.
    pub generation: Option<i32>,
}

impl MemberSubscription {
    /// A member subscribed to `topics`, owning nothing.
    ///
    /// ```
    /// let m = streamlog::MemberSubscription::new("c1", &["orders"]);
    /// assert_eq!(m.topics, vec!["orders".to_string()]);
    /// ```
    pub fn new(member_id: impl Into<String>, topics: &[&str]) -> Self {
        Self {
            member_id: member_id.into(),
            topics: topics.iter().map(|t| (*t).to_string()).collect(),
            owned_partitions: Vec::new(),
            generation: None,
        }
    }

    /// The same member, claiming `owned` from `generation`.
    pub fn owning(mut self, owned: &[(&str, u32)], generation: i32) -> Self {
        self.owned_partitions = owned.iter().map(|(t, p)| ((*t).to_string(), *p)).collect();
        self.generation = Some(generation);
        self
    }

    fn subscribes(&self, topic: &str) -> bool {
        self.topics.iter().any(|t| t == topic)
    }
}

/// How members give up partitions during a rebalance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RebalanceProtocol {
    /// Every member revokes everything before rejoining.
    Eager,
    /// Members keep what they own; only moved partitions are revoked, in a follow-up round.
    Cooperative,
}

/// Splits partitions among the members of a group.
pub trait Assignor: Send + Sync + Debug {
    /// The protocol name members list in JoinGroup (`range`, `roundrobin`, ...).
    fn name(&self) -> &str;

    /// Whether members may keep partitions across a rebalance.
    fn rebalance_protocol(&self) -> RebalanceProtocol {
        RebalanceProtocol::Eager
    }

    /// Each member's partitions. `partitions_per_topic` lists the existing topics; topics a
    /// member subscribes to that are not there are ignored. Every member is in the result.
    fn assign(
        &self,
        members: &[MemberSubscription],
        partitions_per_topic: &BTreeMap<String, u32>,
    ) -> MemberAssignment;
}

/// The built-in assignor called `name` (`range`, `roundrobin`, `sticky`,
/// `cooperative-sticky`), if any.
///
/// ```
/// assert_eq!(streamlog::assignor_by_name("range").map(|a| a.name().to_string()), Some("range".into()));
/// assert!(streamlog::assignor_by_name("nope").is_none());
/// ```
pub fn assignor_by_name(name: &str) -> Option<Box<dyn Assignor>> {
    match name {
        "range" => Some(Box::new(RangeAssignor)),
        "roundrobin" => Some(Box::new(RoundRobinAssignor)),
        "sticky" => Some(Box::new(StickyAssignor)),
        "cooperative-sticky" => Some(Box::new(CooperativeStickyAssignor)),
        _ => None,
    }
}

/// Members sorted by member id (ties cannot happen in a group; kept stable anyway).
fn sorted_members(members: &[MemberSubscription]) -> Vec<&MemberSubscription> {
    let mut sorted: Vec<&MemberSubscription> = members.iter().collect();
    sorted.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    sorted
}

/// An empty assignment listing every member.
fn empty_assignment(members: &[MemberSubscription]) -> MemberAssignment {
    members
        .iter()
        .map(|m| (m.member_id.clone(), Vec::new()))
        .collect()
}

/// Every partition of the existing topics someone subscribes to, by topic then number.
fn subscribed_partitions(
    members: &[MemberSubscription],
    partitions_per_topic: &BTreeMap<String, u32>,
) -> Vec<TopicPartition> {
    partitions_per_topic
        .iter()
        .filter(|(topic, _)| members.iter().any(|m| m.subscribes(topic)))
        .flat_map(|(topic, &n)| (0..n).map(move |p| (topic.clone(), p)))
        .collect()
}

/// Sorts every member's list by topic then number.
fn sort_lists(mut assignment: MemberAssignment) -> MemberAssignment {
    for list in assignment.values_mut() {
        list.sort();
    }
    assignment
}
