//! The broker's consumer-group side without a consumer in hand: groups and committed offsets
//! are rebuilt from `__consumer_offsets` when the broker opens (S18) and can be listed and
//! described; the broker's timer thread expires a member that stopped polling even when no
//! other consumer calls in; and a member id from one group is refused by every request to
//! another (join, sync, heartbeat, commit, leave), which changes nothing and appends nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use streamlog::group::coordinator::{
    GroupCoordinator, GroupProtocol, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest,
    OffsetCommit, OffsetCommitRequest, Output, ReplyTo, Response, SyncGroupRequest,
};
use streamlog::{
    AutoOffsetReset, Broker, BrokerConfig, ConsumerConfig, Env, GroupError, GroupState,
    ManualClock, Record, TopicConfig,
};

const WAIT: Duration = Duration::from_secs(20);

fn config(background: bool) -> BrokerConfig {
    let mut config = BrokerConfig::default().background_threads(background);
    config.group_coordinator.initial_rebalance_delay_ms = 0;
    config.offsets = config.offsets.num_partitions(4);
    config
}

#[test]
fn a_reopened_broker_lists_its_groups_and_offsets_before_any_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path(), config(false)).unwrap();
    assert_eq!(broker.list_groups().unwrap(), Vec::<String>::new());
    broker
        .create_topic("orders", TopicConfig::default().partitions(2))
        .unwrap();
    let topic = broker.topic("orders").unwrap();
    for i in 0..10u32 {
        topic
            .append_to(i % 2, vec![Record::new(i.to_be_bytes().to_vec())])
            .unwrap();
    }
    let consumer = broker
        .consumer(
            ConsumerConfig::new("billing")
                .auto_offset_reset(AutoOffsetReset::Earliest)
                .enable_auto_commit(false),
        )
        .unwrap();
    consumer.subscribe(&["orders"]).unwrap();
    let start = Instant::now();
    let mut seen = 0;
    while seen < 10 {
        assert!(start.elapsed() < WAIT, "saw {seen} of 10");
        seen += consumer.poll(100, Duration::from_millis(10)).unwrap().len();
    }
    consumer.commit().unwrap();
    let generation = consumer.generation().unwrap();
    consumer.close().unwrap();
    broker.close().unwrap();

    let broker = Broker::open(dir.path(), config(false)).unwrap();
    assert_eq!(broker.list_groups().unwrap(), ["billing"]);
    let group = broker.describe_group("billing").unwrap().unwrap();
    assert_eq!(group.state, GroupState::Empty);
    assert_eq!(group.generation, generation + 1, "the leave bumped it");
    assert!(group.members.is_empty());
    let offsets = broker.committed_offsets("billing").unwrap();
    let got: Vec<_> = offsets
        .iter()
        .map(|((t, p), o)| (t.as_str(), *p, o.offset))
        .collect();
    assert_eq!(got, [("orders", 0, 5), ("orders", 1, 5)]);
    assert_eq!(broker.describe_group("nobody").unwrap(), None);
    assert!(broker.committed_offsets("nobody").unwrap().is_empty());
}

#[test]
fn the_timer_thread_removes_a_member_that_stopped_polling() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let env = Env::with_clock(clock.clone());
    let broker = Broker::open_with_env(dir.path(), config(true), env).unwrap();
    broker
        .create_topic("orders", TopicConfig::default().partitions(2))
        .unwrap();
    let consumer = broker
        .consumer(ConsumerConfig::new("billing").max_poll_interval(Duration::from_millis(1_000)))
        .unwrap();
    consumer.subscribe(&["orders"]).unwrap();
    let start = Instant::now();
    while consumer.assignment().len() != 2 {
        assert!(start.elapsed() < WAIT);
        consumer.poll(10, Duration::from_millis(5)).unwrap();
    }
    let group = broker.describe_group("billing").unwrap().unwrap();
    assert_eq!((group.state, group.members.len()), (GroupState::Stable, 1));

    // The consumer stops polling; the clock passes its max.poll.interval.ms. Nobody calls
    // into the group service: only the timer thread can notice.
    clock.advance_ms(1_001);
    let start = Instant::now();
    loop {
        let group = broker.describe_group("billing").unwrap().unwrap();
        if group.state == GroupState::Empty {
            assert!(group.members.is_empty());
            break;
        }
        assert!(start.elapsed() < WAIT, "still {:?}", group.state);
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(consumer);
    broker.close().unwrap();
}

fn join(c: &mut GroupCoordinator, group: &str, token: u64) -> String {
    let req = JoinGroupRequest::new(
        group,
        "app",
        "consumer",
        vec![GroupProtocol::new("range", Vec::new())],
    )
    .require_known_member_id(false);
    let out = c.join_group(0, ReplyTo(token), req);
    for o in out {
        if let Output::Reply {
            response: Response::Join(joined),
            ..
        } = o
        {
            assert_eq!(joined.error, None);
            return joined.member_id;
        }
    }
    panic!("no join reply")
}

/// Feeds `out` back into the coordinator, completing every append at once (counted in
/// `appends`), and returns the replies.
fn drive(c: &mut GroupCoordinator, out: Vec<Output>, appends: &mut u64) -> Vec<Response> {
    let mut replies = Vec::new();
    let mut queue = out;
    while !queue.is_empty() {
        let mut next = Vec::new();
        for o in queue {
            match o {
                Output::Reply { response, .. } => replies.push(response),
                Output::Persist(p) => {
                    *appends += 1;
                    next.extend(c.append_completed(0, p.id, Ok(*appends)));
                }
            }
        }
        queue = next;
    }
    replies
}

/// The only member of a new Stable group `group` (generation 1).
fn stable_member(c: &mut GroupCoordinator, group: &str, token: u64, appends: &mut u64) -> String {
    let id = join(c, group, token);
    let sync = SyncGroupRequest {
        group_id: group.into(),
        member_id: id.clone(),
        generation: 1,
        ..Default::default()
    };
    let out = c.sync_group(0, ReplyTo(token + 1000), sync);
    let replies = drive(c, out, appends);
    assert!(
        matches!(replies.as_slice(), [Response::Sync(s)] if s.error.is_none()),
        "{replies:?}"
    );
    id
}

fn commit_req(group: &str, member: &str, generation: i32, offset: u64) -> OffsetCommitRequest {
    OffsetCommitRequest {
        group_id: group.into(),
        member_id: member.into(),
        generation,
        retention_ms: None,
        offsets: vec![(
            ("t".into(), 0),
            OffsetCommit {
                offset,
                leader_epoch: None,
                metadata: String::new(),
            },
        )],
    }
}

#[test]
fn a_member_id_from_another_group_is_unknown_and_changes_nothing() {
    let config = streamlog::group::coordinator::CoordinatorConfig {
        initial_rebalance_delay_ms: 0,
        ..Default::default()
    };
    let mut c = GroupCoordinator::new(config).unwrap();
    let mut appends = 0;
    let a = stable_member(&mut c, "a", 1, &mut appends);
    let b = stable_member(&mut c, "b", 2, &mut appends);
    assert_ne!(a, b);
    let out = c.commit_offsets(0, ReplyTo(3), commit_req("b", &b, 1, 5));
    drive(&mut c, out, &mut appends);
    let snapshot = |c: &GroupCoordinator| {
        (
            c.group_ids(),
            c.describe_group("a"),
            c.describe_group("b"),
            c.fetch_offsets("a", None),
            c.fetch_offsets("b", None),
        )
    };
    let before = (snapshot(&c), appends);
    assert_eq!(
        before.0.1.as_ref().map(|g| g.state),
        Some(GroupState::Stable)
    );
    assert_eq!(before.0.4.as_ref().map(Vec::len), Ok(1));

    // `a`'s member id sent to group `b` (which exists) and to `c` (which does not).
    for (group, commit_error) in [
        ("b", GroupError::UnknownMemberId),
        // Kafka: a commit with a generation to a group that does not exist.
        ("c", GroupError::IllegalGeneration),
    ] {
        let mut token = 100;
        let mut send =
            |c: &mut GroupCoordinator,
             appends: &mut u64,
             f: &dyn Fn(&mut GroupCoordinator, ReplyTo) -> Vec<Output>| {
                token += 1;
                let out = f(c, ReplyTo(token));
                drive(c, out, appends)
            };
        let join = JoinGroupRequest::new(
            group,
            "app",
            "consumer",
            vec![GroupProtocol::new("range", Vec::new())],
        )
        .member_id(a.clone())
        .require_known_member_id(false);
        let replies = send(&mut c, &mut appends, &|c, to| {
            c.join_group(0, to, join.clone())
        });
        assert!(
            matches!(replies.as_slice(), [Response::Join(j)] if j.error == Some(GroupError::UnknownMemberId)),
            "join {group}: {replies:?}"
        );
        let sync = SyncGroupRequest {
            group_id: group.into(),
            member_id: a.clone(),
            generation: 1,
            assignments: [(a.clone(), vec![1, 2, 3])].into(),
            ..Default::default()
        };
        let replies = send(&mut c, &mut appends, &|c, to| {
            c.sync_group(0, to, sync.clone())
        });
        assert!(
            matches!(replies.as_slice(), [Response::Sync(s)] if s.error == Some(GroupError::UnknownMemberId)),
            "sync {group}: {replies:?}"
        );
        let heartbeat = HeartbeatRequest {
            group_id: group.into(),
            member_id: a.clone(),
            generation: 1,
        };
        let replies = send(&mut c, &mut appends, &|c, to| {
            c.heartbeat(0, to, heartbeat.clone())
        });
        assert!(
            matches!(
                replies.as_slice(),
                [Response::Heartbeat(Err(GroupError::UnknownMemberId))]
            ),
            "heartbeat {group}: {replies:?}"
        );
        let commit = commit_req(group, &a, 1, 99);
        let replies = send(&mut c, &mut appends, &|c, to| {
            c.commit_offsets(0, to, commit.clone())
        });
        assert!(
            matches!(replies.as_slice(), [Response::Commit(r)] if r.partitions == [(("t".to_string(), 0), Err(commit_error))]),
            "commit {group}: {replies:?}"
        );
        let leave = LeaveGroupRequest {
            group_id: group.into(),
            member_ids: vec![a.clone()],
        };
        let replies = send(&mut c, &mut appends, &|c, to| {
            c.leave_group(0, to, leave.clone())
        });
        assert!(
            matches!(replies.as_slice(), [Response::Leave(l)] if l.error.is_none() && l.members == [(a.clone(), Err(GroupError::UnknownMemberId))]),
            "leave {group}: {replies:?}"
        );
    }
    assert_eq!(
        (snapshot(&c), appends),
        before,
        "nothing changed, nothing appended"
    );

    // Both members are still in their own groups.
    for (group, member) in [("a", &a), ("b", &b)] {
        let heartbeat = HeartbeatRequest {
            group_id: group.into(),
            member_id: member.clone(),
            generation: 1,
        };
        let out = c.heartbeat(0, ReplyTo(999), heartbeat);
        let replies = drive(&mut c, out, &mut appends);
        assert!(
            matches!(replies.as_slice(), [Response::Heartbeat(Ok(()))]),
            "{group}: {replies:?}"
        );
    }
}

/// Commits offset 5 of `t`-0 for group "billing" (a consumer that read 5 records).
fn commit_five(broker: &Broker) {
    let consumer = broker
        .consumer(
            ConsumerConfig::new("billing")
                .auto_offset_reset(AutoOffsetReset::Earliest)
                .enable_auto_commit(false),
        )
        .unwrap();
    consumer.assign(&[("t", 0)]).unwrap();
    let start = Instant::now();
    let mut seen = 0;
    while seen < 5 {
        assert!(start.elapsed() < WAIT, "saw {seen} of 5");
        seen += consumer
            .poll(5 - seen, Duration::from_millis(10))
            .unwrap()
            .len();
    }
    consumer.commit().unwrap();
    assert_eq!(consumer.committed("t", 0).unwrap(), Some(5));
    consumer.close().unwrap();
}

fn topic_with(broker: &Broker, records: u32) {
    let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
    for i in 0..records {
        topic
            .append_to(0, vec![Record::new(i.to_be_bytes().to_vec())])
            .unwrap();
    }
}

/// What a new consumer of "billing" assigned `t`-0 reads first, and what it finds committed.
fn first_read(broker: &Broker) -> (Option<u64>, u64) {
    let consumer = broker
        .consumer(
            ConsumerConfig::new("billing")
                .auto_offset_reset(AutoOffsetReset::Earliest)
                .enable_auto_commit(false),
        )
        .unwrap();
    consumer.assign(&[("t", 0)]).unwrap();
    let committed = consumer.committed("t", 0).unwrap();
    let start = Instant::now();
    loop {
        assert!(start.elapsed() < WAIT, "nothing read");
        if let Some(first) = consumer.poll(1, Duration::from_millis(10)).unwrap().first() {
            return (committed, first.offset());
        }
    }
}

#[test]
fn a_re_created_topic_is_read_from_the_start_not_from_the_deleted_ones_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path(), config(false)).unwrap();
    topic_with(&broker, 10);
    commit_five(&broker);
    broker.delete_topic("t").unwrap();
    assert!(broker.committed_offsets("billing").unwrap().is_empty());
    assert_eq!(
        broker.list_groups().unwrap(),
        Vec::<String>::new(),
        "Empty, no offsets: gone"
    );
    topic_with(&broker, 10);
    assert_eq!(first_read(&broker), (None, 0));
    broker.close().unwrap();
}

#[test]
fn a_deleted_topics_offsets_do_not_come_back_when_the_broker_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path(), config(false)).unwrap();
    topic_with(&broker, 10);
    commit_five(&broker);
    broker.delete_topic("t").unwrap();
    broker.close().unwrap();

    let broker = Broker::open(dir.path(), config(false)).unwrap();
    assert!(broker.committed_offsets("billing").unwrap().is_empty());
    assert_eq!(broker.list_groups().unwrap(), Vec::<String>::new());
    topic_with(&broker, 10);
    assert_eq!(first_read(&broker), (None, 0));
    broker.close().unwrap();
}

/// A crash right after the delete's commit point (the catalogue entry renamed to
/// `.deleting`, nothing else done): the next open finishes the delete, offsets included.
#[test]
fn a_delete_interrupted_after_its_mark_drops_the_offsets_on_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path(), config(false)).unwrap();
    topic_with(&broker, 10);
    commit_five(&broker);
    broker.close().unwrap();
    let catalog = dir.path().join("__topics");
    std::fs::rename(catalog.join("t.properties"), catalog.join("t.deleting")).unwrap();

    let broker = Broker::open(dir.path(), config(false)).unwrap();
    assert!(broker.topics().iter().all(|t| t != "t"));
    assert!(broker.committed_offsets("billing").unwrap().is_empty());
    assert!(!catalog.join("t.deleting").exists(), "finished");
    topic_with(&broker, 10);
    assert_eq!(first_read(&broker), (None, 0));
    broker.close().unwrap();

    let broker = Broker::open(dir.path(), config(false)).unwrap();
    assert!(broker.committed_offsets("billing").unwrap().is_empty());
    broker.close().unwrap();
}
