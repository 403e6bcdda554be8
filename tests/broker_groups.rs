//! The broker's consumer-group side without a consumer in hand: groups and committed offsets
//! are rebuilt from `__consumer_offsets` when the broker opens (S18) and can be listed and
//! described; the broker's timer thread expires a member that stopped polling even when no
//! other consumer calls in; and a member id from one group is refused by another.

use std::sync::Arc;
use std::time::{Duration, Instant};

use streamlog::group::coordinator::{
    GroupCoordinator, GroupProtocol, HeartbeatRequest, JoinGroupRequest, Output, ReplyTo, Response,
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

#[test]
fn a_member_id_from_another_group_is_unknown_and_changes_nothing() {
    let config = streamlog::group::coordinator::CoordinatorConfig {
        initial_rebalance_delay_ms: 0,
        ..Default::default()
    };
    let mut c = GroupCoordinator::new(config).unwrap();
    let a = join(&mut c, "a", 1);
    let b = join(&mut c, "b", 2);
    let before = (c.describe_group("a"), c.describe_group("b"));
    let out = c.heartbeat(
        0,
        ReplyTo(3),
        HeartbeatRequest {
            group_id: "b".into(),
            member_id: a.clone(),
            generation: 1,
        },
    );
    let replies: Vec<_> = out
        .into_iter()
        .filter_map(|o| match o {
            Output::Reply { response, .. } => Some(response),
            Output::Persist(_) => None,
        })
        .collect();
    assert!(
        matches!(
            replies.as_slice(),
            [Response::Heartbeat(Err(GroupError::UnknownMemberId))]
        ),
        "{replies:?}"
    );
    assert_eq!((c.describe_group("a"), c.describe_group("b")), before);
    assert_ne!(a, b);
}
