//! [`RangeAssignor`]: per topic, the sorted subscribers get contiguous blocks and the first
//! `partitions % subscribers` of them one extra partition each.

use std::collections::BTreeMap;

use super::{
    Assignor, MemberAssignment, MemberSubscription, empty_assignment, sort_lists, sorted_members,
};

/// Kafka's `range` assignor.
///
/// ```
/// use std::collections::BTreeMap;
/// use streamlog::{Assignor, MemberSubscription, RangeAssignor};
/// let members = [MemberSubscription::new("c1", &["t"]), MemberSubscription::new("c2", &["t"])];
/// let topics = BTreeMap::from([("t".to_string(), 3)]);
/// let a = RangeAssignor.assign(&members, &topics);
/// assert_eq!(a["c1"], vec![("t".into(), 0), ("t".into(), 1)]);
/// assert_eq!(a["c2"], vec![("t".into(), 2)]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct RangeAssignor;

impl Assignor for RangeAssignor {
    fn name(&self) -> &str {
        "range"
    }

    fn assign(
        &self,
        members: &[MemberSubscription],
        partitions_per_topic: &BTreeMap<String, u32>,
    ) -> MemberAssignment {
        let mut assignment = empty_assignment(members);
        let sorted = sorted_members(members);
        for (topic, &count) in partitions_per_topic {
            let subscribers: Vec<&MemberSubscription> = sorted
                .iter()
                .copied()
                .filter(|m| m.subscribes(topic))
                .collect();
            let n = u32::try_from(subscribers.len()).unwrap_or(u32::MAX);
            if n == 0 {
                continue;
            }
            let (per_member, extra) = (count / n, count % n);
            let mut next = 0;
            for (i, member) in (0u32..).zip(subscribers) {
                let len = per_member + u32::from(i < extra);
                if let Some(list) = assignment.get_mut(&member.member_id) {
                    list.extend((next..next + len).map(|p| (topic.clone(), p)));
                }
                next += len;
            }
        }
        sort_lists(assignment)
    }
}
