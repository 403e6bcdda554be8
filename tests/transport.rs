//! The in-memory transport (issue 6): ordered delivery without faults, each fault on its
//! own (loss, duplication, delay and reordering, partitions, one-way cuts, isolation, full
//! queues), encoded frames on real traffic, determinism by seed, and blocking receives.
//! Time is a `ManualClock` except where a test is about real waiting.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use streamlog::group::coordinator::{HeartbeatRequest, SyncGroupRequest};
use streamlog::replication::messages::{
    Acks, FetchPartition, FetchRequest, MetadataRequest, PartitionKey, ProduceRequest,
    ProduceResponse, ReplicaError,
};
use streamlog::replication::transport::{
    DirectReceiver, Envelope, GroupRequest, GroupResponse, InMemoryTransport, Message,
    NetworkFaults, Request, Response, Transport, TransportStats,
};
use streamlog::{BrokerId, Clock, Error, ManualClock, SystemClock};

/// A metadata request from `from` to `to` tagged with `id`.
fn msg(from: BrokerId, to: BrokerId, id: u64) -> Envelope {
    Envelope {
        from,
        to,
        message: Message::Request {
            correlation_id: id,
            request: Request::Metadata(MetadataRequest::default()),
        },
    }
}

fn ids(envelopes: &[Envelope]) -> Vec<u64> {
    envelopes
        .iter()
        .map(|e| e.message.correlation_id())
        .collect()
}

fn net(seed: u64) -> (ManualClock, InMemoryTransport) {
    let clock = ManualClock::new(1_000);
    let transport = InMemoryTransport::new(Arc::new(clock.clone()), seed);
    (clock, transport)
}

fn delays(min_delay_ms: u64, max_delay_ms: u64) -> NetworkFaults {
    NetworkFaults {
        min_delay_ms,
        max_delay_ms,
        ..NetworkFaults::NONE
    }
}

fn assert_balanced(net: &InMemoryTransport) {
    let s = net.stats();
    assert_eq!(
        s.sent + s.duplicated,
        s.delivered + s.dropped + net.pending() as u64,
        "{s:?}"
    );
}

#[test]
fn delivers_in_send_order_without_faults() {
    let (_, net) = net(1);
    for id in 0..100 {
        net.send(msg(1, 2, id)).unwrap();
        net.send(msg(1, 3, 1_000 + id)).unwrap();
    }
    let got = net.receive(2, 60, None).unwrap();
    assert_eq!(ids(&got), (0..60).collect::<Vec<_>>());
    assert!(got.iter().all(|e| e.from == 1 && e.to == 2));
    let rest = net.receive(2, 1_000, None).unwrap();
    assert_eq!(ids(&rest), (60..100).collect::<Vec<_>>());
    assert_eq!(
        ids(&net.receive(3, 1_000, None).unwrap()),
        (1_000..1_100).collect::<Vec<_>>()
    );
    assert!(net.receive(2, 10, None).unwrap().is_empty());
    assert_eq!(
        net.stats(),
        TransportStats {
            sent: 200,
            delivered: 200,
            dropped: 0,
            duplicated: 0,
            direct: 0
        }
    );
    assert_eq!(net.next_delivery_ms(), None);
}

#[test]
fn drop_rate_one_drops_everything() {
    let (_, net) = net(2);
    net.set_faults(NetworkFaults {
        drop_rate: 1.0,
        ..NetworkFaults::NONE
    })
    .unwrap();
    for id in 0..50 {
        net.send(msg(1, 2, id)).unwrap();
    }
    assert!(net.receive(2, 100, None).unwrap().is_empty());
    assert_eq!(net.stats().dropped, 50);
    assert_eq!(net.pending(), 0);
}

#[test]
fn a_drop_rate_loses_about_that_share() {
    let (_, net) = net(3);
    net.set_faults(NetworkFaults {
        drop_rate: 0.3,
        ..NetworkFaults::NONE
    })
    .unwrap();
    for id in 0..2_000 {
        net.send(msg(1, 2, id)).unwrap();
    }
    let got = net.receive(2, usize::MAX, None).unwrap();
    assert!((1_200..1_600).contains(&got.len()), "{}", got.len());
    let got = ids(&got);
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "survivors keep their order"
    );
    assert_balanced(&net);
}

#[test]
fn duplicate_rate_one_delivers_everything_twice() {
    let (_, net) = net(4);
    net.set_faults(NetworkFaults {
        duplicate_rate: 1.0,
        ..NetworkFaults::NONE
    })
    .unwrap();
    for id in 0..10 {
        net.send(msg(1, 2, id)).unwrap();
    }
    let got = ids(&net.receive(2, 100, None).unwrap());
    let expected: Vec<u64> = (0..10).flat_map(|id| [id, id]).collect();
    assert_eq!(got, expected);
    let s = net.stats();
    assert_eq!((s.sent, s.duplicated, s.delivered), (10, 10, 20));
}

#[test]
fn delays_hold_messages_until_the_clock_reaches_them_and_reorder_them() {
    let (clock, net) = net(5);
    net.set_faults(delays(10, 100)).unwrap();
    for id in 0..50 {
        net.send(msg(1, 2, id)).unwrap();
    }
    assert!(
        net.receive(2, 100, None).unwrap().is_empty(),
        "none is due at once"
    );
    let mut got = Vec::new();
    while let Some(at) = net.next_delivery_ms() {
        assert!(at > clock.now_ms(), "a due message was not handed out");
        assert!((1_010..=1_100).contains(&at), "{at}");
        clock.set_ms(at - 1);
        assert!(
            net.receive(2, 100, None).unwrap().is_empty(),
            "early at {at}"
        );
        clock.set_ms(at);
        let batch = net.receive(2, 100, None).unwrap();
        assert!(!batch.is_empty());
        got.extend(ids(&batch));
    }
    let mut sorted = got.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..50).collect::<Vec<_>>(), "each delivered once");
    assert_ne!(got, sorted, "random delays reorder");
}

#[test]
fn equal_delays_keep_send_order() {
    let (clock, net) = net(6);
    net.set_faults(delays(25, 25)).unwrap();
    for id in 0..20 {
        net.send(msg(1, 2, id)).unwrap();
    }
    assert_eq!(net.next_delivery_ms(), Some(1_025));
    clock.advance_ms(25);
    assert_eq!(
        ids(&net.receive(2, 100, None).unwrap()),
        (0..20).collect::<Vec<_>>()
    );
}

#[test]
fn partition_cuts_both_ways_and_heal_restores() {
    let (clock, net) = net(7);
    net.set_faults(delays(5, 5)).unwrap();
    net.send(msg(1, 2, 0)).unwrap(); // in flight when the link goes
    net.partition(1, 2);
    assert!(net.is_cut(1, 2) && net.is_cut(2, 1));
    assert!(!net.is_cut(1, 3));
    net.send(msg(1, 2, 1)).unwrap();
    net.send(msg(2, 1, 2)).unwrap();
    net.send(msg(1, 3, 3)).unwrap();
    clock.advance_ms(5);
    assert!(net.receive(2, 10, None).unwrap().is_empty());
    assert!(net.receive(1, 10, None).unwrap().is_empty());
    assert_eq!(ids(&net.receive(3, 10, None).unwrap()), vec![3]);
    assert_eq!(net.stats().dropped, 3);

    net.heal(2, 1);
    assert!(!net.is_cut(1, 2) && !net.is_cut(2, 1));
    net.send(msg(1, 2, 4)).unwrap();
    net.send(msg(2, 1, 5)).unwrap();
    clock.advance_ms(5);
    assert_eq!(ids(&net.receive(2, 10, None).unwrap()), vec![4]);
    assert_eq!(ids(&net.receive(1, 10, None).unwrap()), vec![5]);
    assert_balanced(&net);
}

/// A cut loses what is on the wire: a message in flight when its link is cut is lost
/// even if the link heals before it falls due, and counts as dropped at once. Messages in
/// flight on other links, or the other way of a one-way cut, are not touched.
#[test]
fn a_message_in_flight_when_its_link_is_cut_is_lost_even_if_healed_before_it_is_due() {
    let (clock, net) = net(7);
    net.set_faults(delays(10, 10)).unwrap();
    net.send(msg(1, 2, 1)).unwrap(); // due in 10 ms
    net.send(msg(2, 1, 2)).unwrap();
    net.send(msg(1, 3, 3)).unwrap();
    net.send(msg(3, 1, 4)).unwrap();
    clock.advance_ms(5);
    net.cut_one_way(1, 2);
    assert_eq!((net.stats().dropped, net.pending()), (1, 3));
    net.isolate(3);
    assert_eq!((net.stats().dropped, net.pending()), (3, 1));
    clock.advance_ms(1);
    net.heal_all();
    clock.advance_ms(4);
    assert!(net.receive(2, 10, None).unwrap().is_empty());
    assert!(net.receive(3, 10, None).unwrap().is_empty());
    assert_eq!(ids(&net.receive(1, 10, None).unwrap()), vec![2]);
    assert_balanced(&net);
}

#[test]
fn a_one_way_cut_lets_the_other_direction_through() {
    let (_, net) = net(8);
    net.cut_one_way(1, 2);
    net.send(msg(1, 2, 0)).unwrap();
    net.send(msg(2, 1, 1)).unwrap();
    assert!(net.receive(2, 10, None).unwrap().is_empty());
    assert_eq!(ids(&net.receive(1, 10, None).unwrap()), vec![1]);
}

#[test]
fn isolate_cuts_every_link_of_a_broker_until_reconnect() {
    let (_, net) = net(9);
    net.isolate(2);
    for (from, to) in [(1, 2), (2, 1), (3, 2), (2, 3)] {
        assert!(net.is_cut(from, to), "{from}->{to}");
        net.send(msg(from, to, u64::from(from * 10 + to))).unwrap();
    }
    net.send(msg(1, 3, 13)).unwrap();
    net.send(msg(2, 2, 22)).unwrap(); // a broker still reaches itself
    assert!(net.receive(1, 10, None).unwrap().is_empty());
    assert_eq!(ids(&net.receive(2, 10, None).unwrap()), vec![22]);
    assert_eq!(ids(&net.receive(3, 10, None).unwrap()), vec![13]);

    net.partition(2, 3);
    net.reconnect(2);
    assert!(!net.is_cut(1, 2));
    assert!(net.is_cut(2, 3), "a partition outlives the isolation");
    net.heal_all();
    assert!(!net.is_cut(2, 3));
    net.send(msg(3, 2, 32)).unwrap();
    assert_eq!(ids(&net.receive(2, 10, None).unwrap()), vec![32]);
}

#[test]
fn a_full_queue_drops_new_messages() {
    let (_, net) = net(10);
    net.set_queue_limit(3);
    for id in 0..5 {
        net.send(msg(1, 2, id)).unwrap();
    }
    net.send(msg(1, 3, 9)).unwrap(); // another destination has its own queue
    assert_eq!(ids(&net.receive(2, 10, None).unwrap()), vec![0, 1, 2]);
    assert_eq!(ids(&net.receive(3, 10, None).unwrap()), vec![9]);
    assert_eq!(net.stats().dropped, 2);
}

#[test]
fn invalid_faults_are_refused_and_the_old_ones_stay() {
    let (_, net) = net(11);
    let bad = NetworkFaults {
        min_delay_ms: 10,
        max_delay_ms: 5,
        ..NetworkFaults::NONE
    };
    assert!(matches!(
        net.set_faults(bad),
        Err(Error::InvalidConfig { .. })
    ));
    let bad = NetworkFaults {
        drop_rate: -0.1,
        ..NetworkFaults::NONE
    };
    assert!(net.set_faults(bad).is_err());
    assert_eq!(net.faults(), NetworkFaults::NONE);
}

/// Messages of several kinds, as they would cross between brokers.
fn traffic() -> Vec<Envelope> {
    let messages = vec![
        Message::Request {
            correlation_id: 1,
            request: Request::Produce(ProduceRequest {
                acks: Acks::All,
                timeout_ms: 1_000,
                partition: PartitionKey::new("orders", 0),
                records: Bytes::from_static(b"batch bytes"),
            }),
        },
        Message::Response {
            correlation_id: 1,
            response: Response::Produce(ProduceResponse {
                partition: PartitionKey::new("orders", 0),
                error: Some(ReplicaError::NotLeaderOrFollower { leader: Some(3) }),
                base_offset: None,
                log_start_offset: 0,
            }),
        },
        Message::Request {
            correlation_id: 2,
            request: Request::Fetch(FetchRequest {
                replica_id: Some(2),
                max_bytes: 1 << 20,
                partitions: vec![FetchPartition {
                    partition: PartitionKey::new("orders", 0),
                    current_leader_epoch: Some(1),
                    fetch_offset: 10,
                    last_fetched_epoch: Some(1),
                    log_start_offset: Some(0),
                    max_bytes: 1 << 16,
                }],
            }),
        },
        Message::Request {
            correlation_id: 3,
            request: Request::Group(GroupRequest::Heartbeat(HeartbeatRequest {
                group_id: "g".into(),
                member_id: "m".into(),
                generation: 2,
            })),
        },
        Message::Request {
            correlation_id: 4,
            request: Request::Group(GroupRequest::SyncGroup(SyncGroupRequest {
                group_id: "g".into(),
                assignments: [("m".to_string(), vec![1, 2])].into(),
                ..SyncGroupRequest::default()
            })),
        },
        Message::Response {
            correlation_id: 3,
            response: Response::Group(GroupResponse::Heartbeat(Ok(()))),
        },
    ];
    messages
        .into_iter()
        .map(|message| Envelope {
            from: 1,
            to: 2,
            message,
        })
        .collect()
}

#[test]
fn encoded_frames_round_trip_through_the_transport() {
    let (_, net) = net(12);
    net.set_encode_frames(true);
    for envelope in traffic() {
        net.send(envelope).unwrap();
    }
    assert_eq!(net.receive(2, 100, None).unwrap(), traffic());
}

#[test]
fn an_unencodable_message_is_refused_at_send_when_frames_are_on() {
    let (_, net) = net(13);
    let huge = Envelope {
        from: 1,
        to: 2,
        message: Message::Request {
            correlation_id: 1,
            request: Request::Produce(ProduceRequest {
                acks: Acks::Leader,
                timeout_ms: 0,
                partition: PartitionKey::new("t", 0),
                records: Bytes::from(vec![0; streamlog::replication::transport::MAX_FRAME_BYTES]),
            }),
        },
    };
    net.set_encode_frames(true);
    assert!(matches!(
        net.send(huge.clone()),
        Err(Error::FrameTooLarge { .. })
    ));
    assert_eq!(net.stats().sent, 0);
    net.set_encode_frames(false);
    net.send(huge).unwrap();
    assert_eq!(net.receive(2, 1, None).unwrap().len(), 1);
}

/// Runs a fixed workload under every random fault and records what arrives when.
fn faulty_run(seed: u64) -> (Vec<(i64, BrokerId, Envelope)>, TransportStats) {
    let (clock, net) = net(seed);
    net.set_encode_frames(true);
    net.set_faults(NetworkFaults {
        drop_rate: 0.2,
        duplicate_rate: 0.2,
        min_delay_ms: 1,
        max_delay_ms: 40,
    })
    .unwrap();
    let mut log = Vec::new();
    for round in 0..40u64 {
        for from in 1..=3u32 {
            let to = from % 3 + 1;
            net.send(msg(from, to, round * 10 + u64::from(from)))
                .unwrap();
        }
        clock.advance_ms(3);
        for broker in 1..=3 {
            for e in net.receive(broker, 4, None).unwrap() {
                log.push((clock.now_ms(), broker, e));
            }
        }
    }
    while let Some(at) = net.next_delivery_ms() {
        clock.set_ms(at.max(clock.now_ms()));
        for broker in 1..=3 {
            for e in net.receive(broker, 4, None).unwrap() {
                log.push((clock.now_ms(), broker, e));
            }
        }
    }
    assert_balanced(&net);
    (log, net.stats())
}

#[test]
fn same_seed_same_deliveries() {
    let (first, stats) = faulty_run(42);
    let (second, stats_again) = faulty_run(42);
    assert_eq!(first, second);
    assert_eq!(stats, stats_again);
    assert!(stats.dropped > 0 && stats.duplicated > 0, "{stats:?}");
    let (other, _) = faulty_run(43);
    assert_ne!(first, other, "another seed gives another run");
}

#[test]
fn receive_with_wait_times_out_when_nothing_comes() {
    let (_, net) = net(14);
    let started = Instant::now();
    let got = net.receive(2, 10, Some(Duration::from_millis(50))).unwrap();
    assert!(got.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(50));
}

#[test]
fn receive_with_wait_wakes_on_send_from_another_thread() {
    let (_, net) = net(15);
    let net = Arc::new(net);
    let receiver = {
        let net = Arc::clone(&net);
        thread::spawn(move || {
            let started = Instant::now();
            let got = net.receive(2, 10, Some(Duration::from_secs(30))).unwrap();
            (ids(&got), started.elapsed())
        })
    };
    thread::sleep(Duration::from_millis(20)); // let it block (the test passes either way)
    let sender: Arc<dyn Transport> = net.clone();
    sender.send(msg(1, 2, 7)).unwrap();
    let (got, waited) = receiver.join().unwrap();
    assert_eq!(got, vec![7]);
    assert!(waited < Duration::from_secs(10), "{waited:?}");
}

#[test]
fn wake_receivers_hands_out_what_a_moved_clock_made_due() {
    let (clock, net) = net(16);
    net.set_faults(delays(100, 100)).unwrap();
    net.send(msg(1, 2, 8)).unwrap();
    let net = Arc::new(net);
    let receiver = {
        let net = Arc::clone(&net);
        thread::spawn(move || {
            let started = Instant::now();
            let got = net.receive(2, 10, Some(Duration::from_secs(30))).unwrap();
            (ids(&got), started.elapsed())
        })
    };
    thread::sleep(Duration::from_millis(20));
    clock.advance_ms(100);
    net.wake_receivers();
    let (got, waited) = receiver.join().unwrap();
    assert_eq!(got, vec![8]);
    assert!(waited < Duration::from_secs(10), "{waited:?}");
}

#[test]
fn wake_receivers_releases_a_receiver_with_nothing_to_take() {
    let (_, net) = net(17);
    let net = Arc::new(net);
    let receiver = {
        let net = Arc::clone(&net);
        thread::spawn(move || {
            let started = Instant::now();
            let got = net.receive(2, 10, Some(Duration::from_secs(30))).unwrap();
            (got.len(), started.elapsed())
        })
    };
    // Wake until it has returned: a wake before it blocked is not seen by it.
    while !receiver.is_finished() {
        thread::sleep(Duration::from_millis(5));
        net.wake_receivers();
    }
    let (len, waited) = receiver.join().unwrap();
    assert_eq!(len, 0);
    assert!(waited < Duration::from_secs(10), "{waited:?}");
}

#[test]
fn with_the_system_clock_a_delayed_message_wakes_a_waiting_receiver() {
    let net = InMemoryTransport::new(Arc::new(SystemClock), 18);
    net.set_faults(delays(30, 30)).unwrap();
    let started = Instant::now();
    net.send(msg(1, 2, 9)).unwrap();
    let got = net.receive(2, 10, Some(Duration::from_secs(30))).unwrap();
    assert_eq!(ids(&got), vec![9]);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(25), "{waited:?}");
    assert!(waited < Duration::from_secs(10), "{waited:?}");
}

/// Without faults every message is due at once, in send order, also when the clock steps
/// back between two sends (a wall clock may): the transport keeps its own time from going
/// back, so the first is neither held back nor overtaken.
#[test]
fn a_clock_stepping_back_neither_holds_back_nor_reorders_messages() {
    let (clock, net) = net(1);
    clock.set_ms(10_000);
    net.send(msg(1, 2, 1)).unwrap();
    clock.set_ms(5_000);
    net.send(msg(1, 2, 2)).unwrap();
    assert_eq!(ids(&net.receive(2, 10, None).unwrap()), [1, 2]);
}

/// A direct receiver for broker 2 that takes messages with an even correlation id (on
/// the thread that sends them) and gives back the odd ones.
#[derive(Default)]
struct EvenTaker {
    taken: parking_lot::Mutex<Vec<(u64, thread::ThreadId)>>,
    offered: std::sync::atomic::AtomicUsize,
}

impl DirectReceiver for EvenTaker {
    fn take_direct(&self, envelope: Envelope) -> Option<Envelope> {
        self.offered
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = envelope.message.correlation_id();
        if id % 2 == 1 {
            return Some(envelope);
        }
        self.taken.lock().push((id, thread::current().id()));
        None
    }
}

impl EvenTaker {
    fn taken_ids(&self) -> Vec<u64> {
        self.taken.lock().iter().map(|(id, _)| *id).collect()
    }

    fn offered(&self) -> usize {
        self.offered.load(std::sync::atomic::Ordering::Relaxed)
    }
}

fn with_direct_receiver(net: &InMemoryTransport) -> Arc<EvenTaker> {
    let taker = Arc::new(EvenTaker::default());
    let receiver: Arc<dyn DirectReceiver> = taker.clone();
    net.set_direct_receiver(2, Some(Arc::downgrade(&receiver)));
    taker
}

#[test]
fn a_direct_receiver_takes_a_message_on_the_sending_thread_and_nothing_is_queued() {
    let (_clock, net) = net(1);
    let taker = with_direct_receiver(&net);
    net.send(msg(1, 2, 4)).unwrap();
    assert_eq!(*taker.taken.lock(), [(4, thread::current().id())]);
    assert!(net.receive(2, 10, None).unwrap().is_empty());
    let stats = net.stats();
    assert_eq!((stats.sent, stats.delivered, stats.direct), (1, 1, 1));
    assert_balanced(&net);
    // Messages for other brokers never reach it.
    net.send(msg(2, 1, 6)).unwrap();
    assert_eq!(taker.offered(), 1);
    assert_eq!(ids(&net.receive(1, 10, None).unwrap()), [6]);
}

#[test]
fn what_a_direct_receiver_gives_back_is_queued_and_what_follows_it_waits_behind_it() {
    let (_clock, net) = net(1);
    let taker = with_direct_receiver(&net);
    net.send(msg(1, 2, 1)).unwrap();
    // Queued behind 1: handing 2 over now would overtake it.
    net.send(msg(1, 2, 2)).unwrap();
    assert_eq!(taker.offered(), 1);
    assert_eq!(ids(&net.receive(2, 10, None).unwrap()), [1, 2]);
    assert!(taker.taken_ids().is_empty());
    // The queue is empty again: direct delivery resumes.
    net.send(msg(1, 2, 8)).unwrap();
    assert_eq!(taker.taken_ids(), [8]);
    assert_balanced(&net);
}

#[test]
fn faults_frames_and_cut_links_keep_messages_from_a_direct_receiver() {
    let (clock, net) = net(1);
    let taker = with_direct_receiver(&net);
    net.set_faults(delays(5, 5)).unwrap();
    net.send(msg(1, 2, 2)).unwrap();
    assert!(
        net.receive(2, 10, None).unwrap().is_empty(),
        "still delayed"
    );
    clock.advance_ms(5);
    assert_eq!(ids(&net.receive(2, 10, None).unwrap()), [2]);
    net.set_faults(NetworkFaults::NONE).unwrap();

    net.set_encode_frames(true);
    net.send(msg(1, 2, 4)).unwrap();
    assert_eq!(ids(&net.receive(2, 10, None).unwrap()), [4]);
    net.set_encode_frames(false);

    net.partition(1, 2);
    net.send(msg(1, 2, 6)).unwrap();
    assert!(
        net.receive(2, 10, None).unwrap().is_empty(),
        "lost on the cut"
    );
    assert_eq!(net.stats().dropped, 1);
    net.heal(1, 2);

    assert_eq!(taker.offered(), 0);
    assert_balanced(&net);
}

#[test]
fn a_dropped_or_removed_direct_receiver_is_no_longer_offered_anything() {
    let (_clock, net) = net(1);
    let taker = with_direct_receiver(&net);
    net.set_direct_receiver(2, None);
    net.send(msg(1, 2, 2)).unwrap();
    assert_eq!(taker.offered(), 0);
    assert_eq!(ids(&net.receive(2, 10, None).unwrap()), [2]);

    let taker = with_direct_receiver(&net);
    drop(taker);
    net.send(msg(1, 2, 4)).unwrap();
    assert_eq!(ids(&net.receive(2, 10, None).unwrap()), [4]);
    assert_balanced(&net);
}

/// A receiver may send while it takes a message (an answer, a request of its own); the
/// transport holds none of its locks meanwhile.
#[test]
fn a_direct_receiver_may_send_while_it_takes_a_message() {
    struct Answering(Arc<InMemoryTransport>);
    impl DirectReceiver for Answering {
        fn take_direct(&self, envelope: Envelope) -> Option<Envelope> {
            let answer = msg(
                envelope.to,
                envelope.from,
                envelope.message.correlation_id() + 100,
            );
            self.0.send(answer).unwrap();
            None
        }
    }
    let net = Arc::new(InMemoryTransport::new(Arc::new(ManualClock::new(0)), 1));
    let receiver: Arc<dyn DirectReceiver> = Arc::new(Answering(net.clone()));
    net.set_direct_receiver(2, Some(Arc::downgrade(&receiver)));
    net.send(msg(1, 2, 1)).unwrap();
    assert_eq!(ids(&net.receive(1, 10, None).unwrap()), [101]);
    net.set_direct_receiver(2, None);
}
