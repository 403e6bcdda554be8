//! [`RoundRobinAssignor`]: all subscribed partitions, by topic then number, dealt over a
//! circular list of the sorted members, skipping members not subscribed to the topic.

use std::collections::BTreeMap;

use super::{
    Assignor, MemberAssignment, MemberSubscription, empty_assignment, sort_lists, sorted_members,
    subscribed_partitions,
};

/// Kafka's `roundrobin` assignor.
///
/// ```
/// use std::collections::BTreeMap;
/// use streamlog::{Assignor, MemberSubscription, RoundRobinAssignor};
/// let members = [MemberSubscription::new("c1", &["t"]), MemberSubscription::new("c2", &["t"])];
/// let topics = BTreeMap::from([("t".to_string(), 3)]);
/// let a = RoundRobinAssignor.assign(&members, &topics);
/// assert_eq!(a["c1"], vec![("t".into(), 0), ("t".into(), 2)]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundRobinAssignor;

impl Assignor for RoundRobinAssignor {
    fn name(&self) -> &str {
        "roundrobin"
    }

    fn assign(
        &self,
        members: &[MemberSubscription],
        partitions_per_topic: &BTreeMap<String, u32>,
    ) -> MemberAssignment {
        let mut assignment = empty_assignment(members);
        let sorted = sorted_members(members);
        let mut cursor = 0usize;
        for (topic, partition) in subscribed_partitions(members, partitions_per_topic) {
            // Some member subscribes to the topic, so this finds one within a full turn.
            for step in 0..sorted.len() {
                let i = (cursor + step) % sorted.len();
                if sorted[i].subscribes(&topic) {
                    if let Some(list) = assignment.get_mut(&sorted[i].member_id) {
                        list.push((topic.clone(), partition));
                    }
                    cursor = i + 1;
                    break;
                }
            }
        }
        sort_lists(assignment)
    }
}
