//! Kafka's assignor vectors (KAFKA-TESTS-CLUSTER.md section 8): range, round-robin, sticky
//! and cooperative-sticky, through the public API.

use std::collections::{BTreeMap, BTreeSet};

use streamlog::group::assignor::protocol::{Assignment, Subscription};
use streamlog::{
    Assignor, CooperativeStickyAssignor, MemberAssignment, MemberSubscription, RangeAssignor,
    RoundRobinAssignor, StickyAssignor,
};

fn topics(list: &[(&str, u32)]) -> BTreeMap<String, u32> {
    list.iter().map(|(t, n)| ((*t).to_string(), *n)).collect()
}

/// "t1-0,t1-2" → sorted partitions.
fn tps(list: &str) -> Vec<(String, u32)> {
    let mut out: Vec<(String, u32)> = list
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (t, p) = s.rsplit_once('-').unwrap();
            (t.to_string(), p.parse().unwrap())
        })
        .collect();
    out.sort();
    out
}

fn member(id: &str, subscribed: &[&str]) -> MemberSubscription {
    MemberSubscription::new(id, subscribed)
}

fn owning(id: &str, subscribed: &[&str], owned: &str, generation: i32) -> MemberSubscription {
    let mut m = MemberSubscription::new(id, subscribed);
    m.owned_partitions = tps(owned);
    m.generation = Some(generation);
    m
}

fn check(assignment: &MemberAssignment, expected: &[(&str, &str)]) {
    let want: MemberAssignment = expected
        .iter()
        .map(|(m, list)| ((*m).to_string(), tps(list)))
        .collect();
    assert_eq!(assignment, &want);
}

/// Every subscribed partition has exactly one owner, only subscribers own, and two members
/// whose counts differ by more than one share no topic (sticky balance).
fn verify_valid(
    members: &[MemberSubscription],
    topics: &BTreeMap<String, u32>,
    a: &MemberAssignment,
) {
    let mut owners: BTreeMap<(String, u32), usize> = BTreeMap::new();
    for m in members {
        for tp in &a[&m.member_id] {
            assert!(
                m.topics.contains(&tp.0),
                "{} got unsubscribed {tp:?}",
                m.member_id
            );
            *owners.entry(tp.clone()).or_default() += 1;
        }
    }
    for (topic, &n) in topics {
        if members.iter().any(|m| m.topics.contains(topic)) {
            for p in 0..n {
                assert_eq!(owners.get(&(topic.clone(), p)), Some(&1), "{topic}-{p}");
            }
        }
    }
}

fn verify_balanced(members: &[MemberSubscription], a: &MemberAssignment) {
    for x in members {
        for y in members {
            let (ax, ay) = (&a[&x.member_id], &a[&y.member_id]);
            if ax.len() > ay.len() + 1 {
                let shared = ax.iter().any(|tp| y.topics.contains(&tp.0));
                assert!(
                    !shared,
                    "{} has {} and {} has {}",
                    x.member_id,
                    ax.len(),
                    y.member_id,
                    ay.len()
                );
            }
        }
    }
}

fn all_assignors() -> Vec<Box<dyn Assignor>> {
    vec![
        Box::new(RangeAssignor),
        Box::new(RoundRobinAssignor),
        Box::new(StickyAssignor),
        Box::new(CooperativeStickyAssignor),
    ]
}

#[test]
fn every_member_is_listed_and_only_subscribed_topics_are_assigned() {
    for a in all_assignors() {
        let t = topics(&[("t", 3), ("other", 3)]);
        check(&a.assign(&[member("c1", &[])], &t), &[("c1", "")]);
        check(&a.assign(&[member("c1", &["missing"])], &t), &[("c1", "")]);
        check(
            &a.assign(&[member("c1", &["t"])], &t),
            &[("c1", "t-0,t-1,t-2")],
        );
        let one = topics(&[("t", 1)]);
        let two = [member("c1", &["t"]), member("c2", &["t"])];
        check(&a.assign(&two, &one), &[("c1", "t-0"), ("c2", "")]);
        check(
            &a.assign(&two, &topics(&[("t", 2)])),
            &[("c1", "t-0"), ("c2", "t-1")],
        );
    }
}

#[test]
fn range_gives_contiguous_blocks_per_topic() {
    let two = [member("c1", &["t1", "t2"]), member("c2", &["t1", "t2"])];
    let a = RangeAssignor.assign(&two, &topics(&[("t1", 3), ("t2", 3)]));
    check(&a, &[("c1", "t1-0,t1-1,t2-0,t2-1"), ("c2", "t1-2,t2-2")]);

    let mixed = [
        member("c1", &["t1"]),
        member("c2", &["t1", "t2"]),
        member("c3", &["t1"]),
    ];
    let a = RangeAssignor.assign(&mixed, &topics(&[("t1", 3), ("t2", 2)]));
    check(
        &a,
        &[("c1", "t1-0"), ("c2", "t1-1,t2-0,t2-1"), ("c3", "t1-2")],
    );

    let t = topics(&[("t1", 6), ("t2", 7), ("t3", 2)]);
    let all = ["t1", "t2", "t3"];
    let three = [member("c1", &all), member("c2", &all), member("c3", &all)];
    check(
        &RangeAssignor.assign(&three, &t),
        &[
            ("c1", "t1-0,t1-1,t2-0,t2-1,t2-2,t3-0"),
            ("c2", "t1-2,t1-3,t2-3,t2-4,t3-1"),
            ("c3", "t1-4,t1-5,t2-5,t2-6"),
        ],
    );
    let uneven = [
        member("c1", &all),
        member("c2", &all),
        member("c3", &["t1", "t3"]),
    ];
    check(
        &RangeAssignor.assign(&uneven, &t),
        &[
            ("c1", "t1-0,t1-1,t2-0,t2-1,t2-2,t2-3,t3-0"),
            ("c2", "t1-2,t1-3,t2-4,t2-5,t2-6,t3-1"),
            ("c3", "t1-4,t1-5"),
        ],
    );
}

#[test]
fn range_matches_the_server_side_vectors() {
    let hetero = [
        member("A", &["t1", "t2"]),
        member("B", &["t3"]),
        member("C", &["t2", "t3"]),
    ];
    let a = RangeAssignor.assign(&hetero, &topics(&[("t1", 3), ("t2", 3), ("t3", 2)]));
    check(
        &a,
        &[
            ("A", "t1-0,t1-1,t1-2,t2-0,t2-1"),
            ("B", "t3-0"),
            ("C", "t2-2,t3-1"),
        ],
    );
    let homo = [
        member("A", &["t1", "t3"]),
        member("B", &["t1", "t3"]),
        member("C", &["t1", "t3"]),
    ];
    let a = RangeAssignor.assign(&homo, &topics(&[("t1", 3), ("t3", 2)]));
    check(&a, &[("A", "t1-0,t3-0"), ("B", "t1-1,t3-1"), ("C", "t1-2")]);
}

#[test]
fn round_robin_deals_over_a_circle_skipping_non_subscribers() {
    let two = [member("c1", &["t1", "t2"]), member("c2", &["t1", "t2"])];
    let a = RoundRobinAssignor.assign(&two, &topics(&[("t1", 3), ("t2", 3)]));
    check(&a, &[("c1", "t1-0,t1-2,t2-1"), ("c2", "t1-1,t2-0,t2-2")]);
    let mixed = [
        member("c1", &["t1"]),
        member("c2", &["t1", "t2"]),
        member("c3", &["t1"]),
    ];
    let a = RoundRobinAssignor.assign(&mixed, &topics(&[("t1", 3), ("t2", 2)]));
    check(
        &a,
        &[("c1", "t1-0"), ("c2", "t1-1,t2-0,t2-1"), ("c3", "t1-2")],
    );
}

#[test]
fn sticky_first_assignments_differ_from_range() {
    let both = ["t1", "t2"];
    for a in [&StickyAssignor as &dyn Assignor, &CooperativeStickyAssignor] {
        let two = [member("c1", &both), member("c2", &both)];
        check(
            &a.assign(&two, &topics(&[("t1", 3), ("t2", 3)])),
            &[("c1", "t1-0,t1-2,t2-1"), ("c2", "t1-1,t2-0,t2-2")],
        );
        let mixed = [
            member("c1", &["t1"]),
            member("c2", &both),
            member("c3", &["t1"]),
        ];
        let t = topics(&[("t1", 3), ("t2", 2)]);
        let result = a.assign(&mixed, &t);
        check(
            &result,
            &[("c1", "t1-0,t1-2"), ("c2", "t2-0,t2-1"), ("c3", "t1-1")],
        );
        verify_balanced(&mixed, &result);
        check(
            &a.assign(&two, &topics(&[("t1", 3), ("t2", 4)])),
            &[("c1", "t1-0,t1-2,t2-1,t2-3"), ("c2", "t1-1,t2-0,t2-2")],
        );
    }
}

#[test]
fn sticky_adding_members_moves_the_minimum() {
    let t = topics(&[("t", 3)]);
    let a = StickyAssignor.assign(
        &[
            owning("c1", &["t"], "t-0,t-1,t-2", 1),
            owning("c2", &["t"], "", 1),
        ],
        &t,
    );
    check(&a, &[("c1", "t-0,t-1"), ("c2", "t-2")]);

    let both = ["t1", "t2"];
    let t = topics(&[("t1", 3), ("t2", 4)]);
    let grown = [
        owning("c1", &both, "t1-0,t1-2,t2-1,t2-3", 1),
        owning("c2", &both, "t1-1,t2-0,t2-2", 1),
        owning("c3", &both, "", 1),
        owning("c4", &both, "", 1),
    ];
    let a = StickyAssignor.assign(&grown, &t);
    check(
        &a,
        &[
            ("c1", "t1-0,t2-1"),
            ("c2", "t2-0,t1-1"),
            ("c3", "t1-2,t2-3"),
            ("c4", "t2-2"),
        ],
    );
    // Removing c1 and c2 hands everything to c3 and c4, which keep what they had.
    let shrunk = [
        owning("c3", &both, "t1-2,t2-3", 2),
        owning("c4", &both, "t2-2", 2),
    ];
    let b = StickyAssignor.assign(&shrunk, &t);
    assert!(tps("t1-2,t2-3").iter().all(|tp| b["c3"].contains(tp)));
    assert!(b["c4"].contains(&("t2".into(), 2)));
    verify_valid(&shrunk, &t, &b);
    assert!(b["c3"].len().abs_diff(b["c4"].len()) <= 1);
}

#[test]
fn sticky_quota_edge_cases_with_owned_partitions() {
    let both = ["t1", "t2"];
    let a = StickyAssignor.assign(
        &[
            owning("c1", &both, "t1-0,t2-1", 1),
            owning("c2", &both, "t1-1,t2-2", 1),
        ],
        &topics(&[("t1", 2), ("t2", 3)]),
    );
    check(&a, &[("c1", "t1-0,t2-1,t2-0"), ("c2", "t1-1,t2-2")]);

    let a = StickyAssignor.assign(
        &[
            owning("consumer1", &both, "t1-0,t2-0", 1),
            owning("consumer2", &both, "t1-1,t2-1", 1),
            owning("consumer3", &both, "", 1),
        ],
        &topics(&[("t1", 2), ("t2", 2)]),
    );
    check(
        &a,
        &[
            ("consumer1", "t1-0"),
            ("consumer2", "t1-1,t2-1"),
            ("consumer3", "t2-0"),
        ],
    );

    let a = StickyAssignor.assign(
        &[
            owning("c1", &both, "t1-0", 1),
            owning("c2", &both, "t1-1", 1),
            owning("c3", &both, "", 1),
        ],
        &topics(&[("t1", 2), ("t2", 3)]),
    );
    check(
        &a,
        &[("c1", "t1-0,t2-1"), ("c2", "t1-1,t2-2"), ("c3", "t2-0")],
    );

    let a = StickyAssignor.assign(
        &[
            owning("c1", &["t"], "t-0,t-1", 1),
            owning("c2", &["t"], "t-2", 1),
            owning("c3", &["t"], "", 1),
        ],
        &topics(&[("t", 4)]),
    );
    check(&a, &[("c1", "t-0,t-1"), ("c2", "t-2"), ("c3", "t-3")]);
}

#[test]
fn sticky_keeps_per_topic_balance_and_survivors_keep_their_partitions() {
    let both = ["t1", "t2"];
    let t = topics(&[("t1", 12), ("t2", 12)]);
    let mut owned: BTreeMap<String, Vec<(String, u32)>> = BTreeMap::new();
    for (round, ids) in [
        vec!["c1"],
        vec!["c1", "c2"],
        vec!["c1", "c2", "c3", "c4"],
        vec!["c1", "c2"],
    ]
    .into_iter()
    .enumerate()
    {
        let generation = round as i32 + 1;
        let members: Vec<MemberSubscription> = ids
            .iter()
            .map(|id| {
                let mut m = member(id, &both);
                m.owned_partitions = owned.get(*id).cloned().unwrap_or_default();
                m.generation = Some(generation);
                m
            })
            .collect();
        let a = StickyAssignor.assign(&members, &t);
        verify_valid(&members, &t, &a);
        let per_topic = [12, 6, 3, 6][round];
        for (id, list) in &a {
            for topic in both {
                let n = list.iter().filter(|tp| tp.0 == topic).count();
                assert_eq!(n, per_topic, "round {round}: {id} has {n} of {topic}");
            }
            if round == 3 {
                assert!(
                    owned[id].iter().all(|tp| list.contains(tp)),
                    "{id} lost a partition"
                );
            }
        }
        owned = a;
    }
}

#[test]
fn sticky_trusts_only_the_highest_generation() {
    let t = topics(&[("t", 3), ("t2", 3)]);
    let both = ["t", "t2"];
    let a = StickyAssignor.assign(
        &[
            owning("c1", &both, "t-0,t-2,t2-1", 10),
            owning("c2", &both, "t-0,t-1,t-2,t2-0,t2-1,t2-2", 9),
        ],
        &t,
    );
    check(&a, &[("c1", "t-0,t-2,t2-1"), ("c2", "t-1,t2-0,t2-2")]);
    // A claim without a generation loses to any generation.
    let mut c2 = member("c2", &both);
    c2.owned_partitions = tps("t-0,t-2,t2-1");
    let a = StickyAssignor.assign(&[owning("c1", &both, "t-1,t2-0,t2-2", 1), c2], &t);
    check(&a, &[("c1", "t-1,t2-0,t2-2"), ("c2", "t-0,t-2,t2-1")]);
}

#[test]
fn a_partition_claimed_twice_in_one_generation_is_unowned() {
    let three = |n| topics(&[("t", n)]);
    let claims = [
        owning("c1", &["t"], "t-0,t-1", 1),
        owning("c2", &["t"], "t-0,t-2", 1),
        owning("c3", &["t"], "", 1),
    ];
    check(
        &StickyAssignor.assign(&claims, &three(3)),
        &[("c1", "t-1"), ("c2", "t-2"), ("c3", "t-0")],
    );
    check(
        &StickyAssignor.assign(&claims, &three(4)),
        &[("c1", "t-1,t-3"), ("c2", "t-2"), ("c3", "t-0")],
    );
    // Cooperative: t-0 must be revoked from both claimers before anyone gets it.
    let a = CooperativeStickyAssignor.assign(&claims, &three(3));
    check(&a, &[("c1", "t-1"), ("c2", "t-2"), ("c3", "")]);
}

#[test]
fn sticky_drops_deleted_topics() {
    let t = topics(&[("t1", 1), ("t3", 100)]);
    let m = [owning("c1", &["t1", "t2", "t3"], "t1-0,t2-0,t3-0", 1)];
    let a = StickyAssignor.assign(&m, &t);
    assert_eq!(a["c1"].len(), 101);
    let only = [owning("c1", &["gone"], "gone-0", 1)];
    check(&StickyAssignor.assign(&only, &t), &[("c1", "")]);
}

/// Runs cooperative rounds (each round's assignment becomes the next round's claims) and
/// checks that no partition ever goes to a new owner while another still holds it.
fn cooperative_rounds(
    subs: &[(&str, Vec<&str>)],
    t: &BTreeMap<String, u32>,
    start: BTreeMap<String, Vec<(String, u32)>>,
) -> usize {
    let mut owned = start;
    for round in 1..=6 {
        let members: Vec<MemberSubscription> = subs
            .iter()
            .map(|(id, topics)| {
                let mut m = member(id, topics);
                m.owned_partitions = owned.get(*id).cloned().unwrap_or_default();
                m.generation = Some(round);
                m
            })
            .collect();
        let a = CooperativeStickyAssignor.assign(&members, t);
        for (id, list) in &a {
            for tp in list {
                let held_elsewhere = owned.iter().any(|(o, l)| o != id && l.contains(tp));
                assert!(
                    !held_elsewhere,
                    "round {round}: {tp:?} given to {id} while still owned"
                );
            }
        }
        let all: BTreeSet<(String, u32)> = a.values().flatten().cloned().collect();
        let complete = members.iter().flat_map(|m| m.topics.iter()).all(|topic| {
            (0..t.get(topic).copied().unwrap_or(0)).all(|p| all.contains(&(topic.clone(), p)))
        });
        let stable = a == owned;
        owned = a;
        if complete && stable {
            verify_valid(&members, t, &owned);
            verify_balanced(&members, &owned);
            return round as usize;
        }
    }
    panic!("cooperative assignment did not converge");
}

#[test]
fn cooperative_revokes_first_and_converges() {
    let t = topics(&[("t1", 5), ("t2", 4)]);
    let both = vec!["t1", "t2"];
    let start = BTreeMap::from([(
        "c1".to_string(),
        StickyAssignor.assign(&[member("c1", &["t1", "t2"])], &t)["c1"].clone(),
    )]);
    let rounds = cooperative_rounds(
        &[
            ("c1", both.clone()),
            ("c2", both.clone()),
            ("c3", both.clone()),
        ],
        &t,
        start,
    );
    assert!(rounds <= 4, "took {rounds} rounds");
    let mixed = [("c1", vec!["t1"]), ("c2", both.clone()), ("c3", vec!["t2"])];
    let start = BTreeMap::from([(
        "c2".to_string(),
        tps("t1-0,t1-1,t1-2,t1-3,t1-4,t2-0,t2-1,t2-2,t2-3"),
    )]);
    assert!(cooperative_rounds(&mixed, &t, start) <= 4);
}

#[test]
fn consumer_protocol_round_trips_and_refuses_garbage() {
    let s = Subscription {
        topics: vec!["a".into(), "b".into()],
        user_data: Some(vec![1, 2]),
        owned_partitions: tps("a-0,a-3,b-1"),
        generation: Some(10),
    };
    assert_eq!(Subscription::decode(&s.encode()), Some(s.clone()));
    let bytes = s.encode();
    for cut in 0..bytes.len() {
        assert_eq!(Subscription::decode(&bytes[..cut]), None, "cut at {cut}");
    }
    let a = Assignment {
        partitions: tps("a-1,b-0"),
        user_data: None,
    };
    assert_eq!(Assignment::decode(&a.encode()), Some(a));
    assert_eq!(Assignment::decode(&[]), Some(Assignment::default()));
    assert_eq!(Assignment::decode(&[0, 9, 0]), None);
}
