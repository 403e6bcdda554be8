//! Placement (S6) and Kafka's `PartitionChangeBuilderTest` / `ReplicationControlManagerTest`
//! election rules.

use super::*;

fn live(brokers: &[BrokerId]) -> BTreeSet<BrokerId> {
    brokers.iter().copied().collect()
}

fn state(replicas: &[BrokerId], leader: Option<BrokerId>, isr: &[BrokerId]) -> PartitionState {
    PartitionState {
        replicas: replicas.to_vec(),
        leader,
        leader_epoch: 5,
        isr: isr.to_vec(),
        partition_epoch: 9,
        leader_recovery: LeaderRecoveryState::Recovered,
    }
}

#[test]
fn replicas_are_distinct_and_leaders_spread_round_robin() {
    for n in 1..=12u32 {
        let brokers = live(&(0..n).collect::<Vec<_>>());
        for rf in 1..=(n.min(10) as u16) {
            for start in 0..n as usize {
                let placement = place_replicas(3 * n, rf, &brokers, start).unwrap();
                assert_eq!(placement.len(), 3 * n as usize);
                let mut leaders = vec![0; n as usize];
                for replicas in &placement {
                    assert_eq!(replicas.len(), usize::from(rf));
                    let distinct: BTreeSet<_> = replicas.iter().collect();
                    assert_eq!(distinct.len(), replicas.len(), "{replicas:?}");
                    assert!(replicas.iter().all(|b| brokers.contains(b)));
                    leaders[replicas[0] as usize] += 1;
                }
                assert!(
                    leaders.iter().all(|&c| c == 3),
                    "n {n} rf {rf}: {leaders:?}"
                );
            }
        }
    }
}

#[test]
fn followers_spread_over_the_brokers_too() {
    let brokers = live(&[0, 1, 2, 3, 4]);
    let placement = place_replicas(10, 2, &brokers, 0).unwrap();
    let followers: BTreeSet<(BrokerId, BrokerId)> =
        placement.iter().map(|r| (r[0], r[1])).collect();
    assert!(followers.len() > 5, "second replicas vary: {placement:?}");
}

#[test]
fn a_replication_factor_the_cluster_cannot_place_is_a_typed_error() {
    let three = live(&[0, 1, 2]);
    let eleven = live(&(0..11).collect::<Vec<_>>());
    for (rf, brokers, needle) in [
        (0, &three, "at least one"),
        (4, &three, "more replicas than live brokers"),
        (11, &eleven, "at most 10"),
    ] {
        match place_replicas(1, rf, brokers, 0) {
            Err(Error::InvalidReplicationFactor {
                requested,
                max,
                live_brokers,
                reason,
            }) => {
                assert_eq!((requested, max, live_brokers), (rf, 10, brokers.len()));
                assert!(reason.contains(needle), "{reason}");
            }
            other => panic!("rf {rf}: {other:?}"),
        }
    }
    assert!(place_replicas(1, 10, &eleven, 0).is_ok());
    assert!(place_replicas(1, 1, &live(&[]), 0).is_err());
}

#[test]
fn a_healthy_partition_needs_no_change() {
    let s = state(&[1, 2, 3], Some(1), &[1, 2, 3]);
    assert_eq!(decide(&s, &live(&[1, 2, 3]), false, true), None);
}

#[test]
fn a_gone_follower_leaves_the_isr_without_a_leader_epoch_bump() {
    let s = state(&[1, 2, 3], Some(1), &[1, 2, 3]);
    let d = decide(&s, &live(&[1, 3]), false, true).unwrap();
    assert_eq!(d.state.isr, [1, 3]);
    assert_eq!((d.state.leader, d.state.leader_epoch), (Some(1), 5));
    assert_eq!(d.state.partition_epoch, 10);
    assert_eq!(d.election, None);
}

#[test]
fn a_gone_leader_is_replaced_from_the_isr_in_assignment_order() {
    let s = state(&[1, 2, 3], Some(1), &[1, 3, 2]);
    let d = decide(&s, &live(&[2, 3]), false, true).unwrap();
    assert_eq!(d.state.leader, Some(2));
    assert_eq!(d.state.isr, [3, 2]);
    assert_eq!((d.state.leader_epoch, d.state.partition_epoch), (6, 10));
    assert_eq!(d.election, Some(Election::Clean));
}

#[test]
fn with_no_live_isr_member_a_clean_election_leaves_the_partition_offline() {
    // Replicas [1,2,4], every ISR broker fenced: leader none, the ISR keeps its last member.
    let s = state(&[1, 2, 4], Some(1), &[1, 4]);
    let d = decide(&s, &live(&[2]), false, true).unwrap();
    assert_eq!(d.state.leader, None);
    assert_eq!(d.state.isr, [4]);
    assert_eq!(d.state.leader_epoch, 6);
    assert_eq!(d.election, Some(Election::Offline));
    // Nothing more to do while it stays that way.
    assert_eq!(decide(&d.state, &live(&[2]), false, true), None);
    // The last ISR member returning is elected cleanly.
    let back = decide(&d.state, &live(&[2, 4]), false, true).unwrap();
    assert_eq!(back.state.leader, Some(4));
    assert_eq!(back.election, Some(Election::Clean));
    assert_eq!(back.state.leader_epoch, 7);
}

#[test]
fn an_unclean_election_picks_the_first_live_replica_alone_in_the_isr() {
    let s = state(&[1, 2, 3], Some(1), &[1]);
    let d = decide(&s, &live(&[3, 2]), true, true).unwrap();
    assert_eq!(d.state.leader, Some(2));
    assert_eq!(d.state.isr, [2]);
    assert_eq!(d.state.leader_recovery, LeaderRecoveryState::Recovering);
    assert_eq!(d.election, Some(Election::Unclean));
    // Unclean election off: offline instead.
    let off = decide(&s, &live(&[3, 2]), false, true).unwrap();
    assert_eq!(off.state.leader, None);
    assert_eq!(off.election, Some(Election::Offline));
}

#[test]
fn leadership_returns_to_the_preferred_replica_once_it_is_in_sync() {
    let s = state(&[1, 2, 3], Some(2), &[2, 3]);
    // Back but not yet in sync: stays with 2.
    assert_eq!(decide(&s, &live(&[1, 2, 3]), false, true), None);
    let synced = state(&[1, 2, 3], Some(2), &[2, 3, 1]);
    let d = decide(&synced, &live(&[1, 2, 3]), false, true).unwrap();
    assert_eq!(d.state.leader, Some(1));
    assert_eq!(d.election, Some(Election::Preferred));
    assert_eq!(d.state.leader_epoch, 6);
    // Rebalancing off (or a preferred election never falls back to unclean).
    assert_eq!(decide(&synced, &live(&[1, 2, 3]), false, false), None);
    let unsynced = state(&[1, 2, 3], Some(2), &[2]);
    assert_eq!(decide(&unsynced, &live(&[1, 2, 3]), true, true), None);
}

/// `start` is a hash of the topic name and may take any value: the placement neither
/// overflows nor loses the round-robin of leaders near `usize::MAX`.
#[test]
fn any_start_places_leaders_round_robin_without_overflow() {
    let live: BTreeSet<BrokerId> = [1, 2, 3].into_iter().collect();
    for start in [usize::MAX, usize::MAX - 1, 0, 7] {
        let placement = place_replicas(6, 2, &live, start).unwrap();
        let leaders: Vec<BrokerId> = placement.iter().map(|r| r[0]).collect();
        for pair in leaders.windows(2) {
            assert_ne!(pair[0], pair[1], "start {start}: {leaders:?}");
        }
        for replicas in &placement {
            assert_ne!(replicas[0], replicas[1], "start {start}: {placement:?}");
        }
    }
}
