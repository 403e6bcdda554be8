//! The coordinator rebuilt from `__consumer_offsets` (S18): a group formed and committed
//! through a coordinator whose appends go to the store comes back, after the broker is
//! reopened, with its generation, protocol, leader, members and committed offsets, and
//! follows Kafka's loading rules (Stable with members, Empty without; gone members expire).

use streamlog::group::coordinator::*;
use streamlog::{Broker, BrokerConfig, OffsetsConfig, OffsetsStore};

fn drive(
    c: &mut GroupCoordinator,
    store: &OffsetsStore,
    now: i64,
    out: Vec<Output>,
) -> Vec<Response> {
    let mut replies = Vec::new();
    let mut queue = out;
    while let Some(o) = queue.pop() {
        match o {
            Output::Reply { response, .. } => replies.push(response),
            Output::Persist(p) => {
                let result = store.persist(&p).map_err(|e| AppendError::from_error(&e));
                queue.extend(c.append_completed(now, p.id, result));
            }
        }
    }
    replies
}

#[test]
fn groups_and_offsets_come_back_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let config = BrokerConfig::default().background_threads(false);
    let coordinator_config = CoordinatorConfig {
        initial_rebalance_delay_ms: 0,
        ..Default::default()
    };
    let broker = Broker::open(dir.path(), config.clone()).unwrap();
    let store = OffsetsStore::open(&broker, OffsetsConfig::default()).unwrap();
    let mut c = GroupCoordinator::new(coordinator_config.clone()).unwrap();
    let join = JoinGroupRequest::new(
        "billing",
        "app",
        "consumer",
        vec![GroupProtocol::new("range", vec![1])],
    )
    .require_known_member_id(false);
    let replies = {
        let out = c.join_group(0, ReplyTo(1), join);
        drive(&mut c, &store, 0, out)
    };
    let Some(Response::Join(joined)) = replies.first() else {
        panic!("{replies:?}")
    };
    let member = joined.member_id.clone();
    let mut sync = SyncGroupRequest {
        group_id: "billing".into(),
        member_id: member.clone(),
        generation: 1,
        ..Default::default()
    };
    sync.assignments.insert(member.clone(), vec![9, 9]);
    let out = c.sync_group(0, ReplyTo(2), sync);
    drive(&mut c, &store, 0, out);
    let commit = OffsetCommitRequest {
        group_id: "billing".into(),
        member_id: member.clone(),
        generation: 1,
        retention_ms: None,
        offsets: vec![(
            ("orders".into(), 3),
            OffsetCommit {
                offset: 17,
                leader_epoch: None,
                metadata: String::new(),
            },
        )],
    };
    let out = c.commit_offsets(5, ReplyTo(3), commit);
    drive(&mut c, &store, 5, out);
    // A simple group (offsets only, no members ever).
    let simple = OffsetCommitRequest {
        group_id: "tool".into(),
        member_id: String::new(),
        generation: -1,
        retention_ms: None,
        offsets: vec![(
            ("orders".into(), 0),
            OffsetCommit {
                offset: 2,
                leader_epoch: None,
                metadata: String::new(),
            },
        )],
    };
    let out = c.commit_offsets(5, ReplyTo(4), simple);
    drive(&mut c, &store, 5, out);
    drop(store);
    broker.close().unwrap();

    let broker = Broker::open(dir.path(), config).unwrap();
    let store = OffsetsStore::open(&broker, OffsetsConfig::default()).unwrap();
    let mut c = GroupCoordinator::new(coordinator_config).unwrap();
    assert_eq!(c.load_from(1_000, &store), 2);
    let g = c.describe_group("billing").unwrap();
    assert_eq!(g.state, GroupState::Stable);
    assert_eq!(g.generation, 1);
    assert_eq!(g.protocol_name.as_deref(), Some("range"));
    assert_eq!(g.leader.as_deref(), Some(member.as_str()));
    assert_eq!(g.members, vec![(member.clone(), vec![9, 9])]);
    let fetched = c.fetch_offsets("billing", None).unwrap();
    assert_eq!(fetched.len(), 1);
    assert_eq!(fetched[0].1.as_ref().map(|o| o.offset), Some(17));
    assert_eq!(c.describe_group("tool").unwrap().state, GroupState::Empty);
    assert_eq!(
        c.fetch_offsets("tool", None).unwrap()[0]
            .1
            .as_ref()
            .map(|o| o.offset),
        Some(2)
    );

    // The loaded member is alive until its session (45 s) runs out, then the group
    // rebalances without it and ends Empty, keeping its offsets.
    assert!(c.tick(1_000 + 45_000).is_empty());
    {
        let out = c.tick(46_001);
        drive(&mut c, &store, 46_001, out)
    };
    let after = 46_001 + 300_001;
    {
        let out = c.tick(after);
        drive(&mut c, &store, after, out)
    };
    let g = c.describe_group("billing").unwrap();
    assert_eq!((g.state, g.members.len()), (GroupState::Empty, 0));
    assert_eq!(g.generation, 2);
    assert_eq!(
        c.fetch_offsets("billing", None).unwrap()[0]
            .1
            .as_ref()
            .map(|o| o.offset),
        Some(17)
    );
}

/// A coordinator rebuilt with the seed of the one that wrote the log draws the same
/// member ids again: it must not hand a newcomer the id of a loaded member (two
/// consumers would share one membership and its assignment).
#[test]
fn a_reloaded_coordinator_never_repeats_a_loaded_members_id() {
    let dir = tempfile::tempdir().unwrap();
    let config = BrokerConfig::default().background_threads(false);
    let coordinator_config = CoordinatorConfig {
        initial_rebalance_delay_ms: 0,
        ..Default::default()
    };
    let join = || {
        JoinGroupRequest::new(
            "billing",
            "app",
            "consumer",
            vec![GroupProtocol::new("range", vec![1])],
        )
        .require_known_member_id(false)
    };
    let joined_id = |replies: &[Response]| match replies.first() {
        Some(Response::Join(joined)) => joined.member_id.clone(),
        other => panic!("{other:?}"),
    };
    let broker = Broker::open(dir.path(), config.clone()).unwrap();
    let store = OffsetsStore::open(&broker, OffsetsConfig::default()).unwrap();
    let mut c = GroupCoordinator::new(coordinator_config.clone()).unwrap();
    let out = c.join_group(0, ReplyTo(1), join());
    let member = joined_id(&drive(&mut c, &store, 0, out));
    let out = c.sync_group(
        0,
        ReplyTo(2),
        SyncGroupRequest {
            group_id: "billing".into(),
            member_id: member.clone(),
            generation: 1,
            ..Default::default()
        },
    );
    drive(&mut c, &store, 0, out);
    drop(store);
    broker.close().unwrap();

    let broker = Broker::open(dir.path(), config).unwrap();
    let store = OffsetsStore::open(&broker, OffsetsConfig::default()).unwrap();
    let mut c = GroupCoordinator::new(coordinator_config).unwrap();
    assert_eq!(c.load_from(1_000, &store), 1);
    let out = c.join_group(1_000, ReplyTo(3), join());
    drive(&mut c, &store, 1_000, out);
    let g = c.describe_group("billing").unwrap();
    assert_eq!(g.state, GroupState::PreparingRebalance);
    let out = c.join_group(1_000, ReplyTo(4), join().member_id(&member));
    let replies = drive(&mut c, &store, 1_000, out);
    let ids: Vec<String> = replies
        .iter()
        .filter_map(|r| match r {
            Response::Join(j) => Some(j.member_id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        ids.len(),
        2,
        "both members joined the new generation: {replies:?}"
    );
    assert_ne!(ids[0], ids[1], "two members share one id");
}
