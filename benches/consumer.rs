//! Criterion benchmarks of consumers and consumer groups (issue 5), each against the
//! storage core in the same group and run.
//!
//! Records carry a 100-byte value and no key; a topic of `STREAMLOG_BENCH_CONSUME_RECORDS`
//! records (default 100,000) is produced in batches of 1000, spread evenly over its
//! partitions, `FlushPolicy::Never`. Groups:
//!
//! - `consume/<n>_records/...`, throughput in records (`Throughput::Elements`):
//!   - `produce/1p`, `produce/8p`: the produce-only baseline, `Topic::append_to` of the
//!     whole data set into a fresh topic of 1 or 8 partitions (opening the broker and
//!     topic, and a first record in each partition, are untimed).
//!   - `read_from/1p`, `read_from/8p`: the machine's own limit for reading the same data,
//!     `Partition::read_from(0)` over every partition, owned records.
//!   - `poll_commit/1c_1p`, `poll_commit/1c_8p`: one consumer of a group, subscribed and
//!     Stable (joining is untimed), reads the whole topic with `poll(500, 0 ms)` and a
//!     synchronous `commit()` after every poll (so 200 commits to `__consumer_offsets` for
//!     100,000 records). Before each timed pass its positions are sought back to 0.
//!   - `poll_commit/4c_8p`: a group of 4 consumers, 2 partitions each, one thread per
//!     consumer, each polling and committing as above until it read its partitions; timed
//!     from before the threads start until the last one finished.
//! - `rebalance/<n>_to_<n+1>`: latency of a group of n Stable members (n = 1, 8, 32; eager
//!   `range` assignor, 8-partition topic) when a member joins, from the newcomer's first
//!   `poll` until every member is Stable in the new generation; the members are driven
//!   round-robin from one thread with `poll(0, 0 ms)` on a frozen `ManualClock` with
//!   `group.initial.rebalance.delay.ms = 0`, so the figure is the protocol's own cost
//!   (JoinGroup of every member, the leader's assignment and its append, SyncGroup),
//!   never a timer. Untimed after each join: the newcomer closes and the group settles
//!   back to n members.
//!
//! Run all with `cargo bench --bench consumer` (under a minute), or one group with a
//! filter: `cargo bench --bench consumer -- rebalance`.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use streamlog::{
    AutoOffsetReset, Broker, BrokerConfig, Consumer, ConsumerConfig, Env, FileStorage, FlushPolicy,
    LogConfig, ManualClock, Record, TopicConfig,
};

mod common;
use common::{Group, configure, temp_dir, timed};

/// Bytes in each record's value.
const VALUE_BYTES: usize = 100;
/// Records in the benchmarked topic unless `STREAMLOG_BENCH_CONSUME_RECORDS` says otherwise.
const DEFAULT_RECORDS: u64 = 100_000;
/// Records per produced batch.
const PRODUCE_BATCH: usize = 1000;
/// `max_records` of each timed poll.
const POLL_RECORDS: usize = 500;
/// The topic read and written.
const TOPIC: &str = "bench";
/// Group sizes before the joining member of `rebalance`.
const REBALANCE_SIZES: [usize; 3] = [1, 8, 32];
/// Protocol rounds (every member polled once) a rebalance may take before the bench gives up.
const MAX_ROUNDS: usize = 1000;

fn records_setting() -> u64 {
    std::env::var("STREAMLOG_BENCH_CONSUME_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_RECORDS)
}

fn broker_config() -> BrokerConfig {
    let mut config = BrokerConfig::default().background_threads(false);
    config.group_coordinator.initial_rebalance_delay_ms = 0;
    config.offsets = config.offsets.num_partitions(4);
    config
}

fn topic_config(partitions: u32) -> TopicConfig {
    TopicConfig::default()
        .partitions(partitions)
        .with_log_config(LogConfig::default().flush_policy(FlushPolicy::Never))
}

/// `n` records in batches of `PRODUCE_BATCH`.
fn batches(n: u64) -> Vec<Vec<Record>> {
    let all: Vec<Record> = (0..n)
        .map(|i| Record::new(vec![b'a' + (i % 26) as u8; VALUE_BYTES]))
        .collect();
    all.chunks(PRODUCE_BATCH).map(<[Record]>::to_vec).collect()
}

/// Appends `batches` to the topic, batch i to partition i mod the partition count.
fn produce(broker: &Broker, batches: Vec<Vec<Record>>) {
    let topic = broker.topic(TOPIC).expect("the bench topic");
    let partitions = topic.partition_count();
    for (i, batch) in batches.into_iter().enumerate() {
        topic
            .append_to(i as u32 % partitions, batch)
            .expect("produce");
    }
}

/// A broker in `dir` with the bench topic of `partitions` partitions holding `n` records.
fn filled_broker(dir: &Path, partitions: u32, n: u64) -> Broker {
    let broker = Broker::open(dir, broker_config()).expect("open a broker");
    broker
        .create_topic(TOPIC, topic_config(partitions))
        .expect("create the bench topic");
    produce(&broker, batches(n));
    broker
}

fn consumer_config(group: &str) -> ConsumerConfig {
    ConsumerConfig::new(group)
        .auto_offset_reset(AutoOffsetReset::Earliest)
        .enable_auto_commit(false)
}

/// Polls every consumer with `poll(0, 0 ms)` (protocol steps only, no records) until each is
/// Stable in the same generation and `partitions` partitions are assigned in all; returns
/// how many rounds it took.
fn settle(consumers: &[Consumer], partitions: usize) -> usize {
    for round in 1..=MAX_ROUNDS {
        for c in consumers {
            c.poll(0, Duration::ZERO).expect("poll");
        }
        let first = consumers[0].generation();
        let same = consumers.iter().all(|c| c.generation() == first);
        let owned: usize = consumers.iter().map(|c| c.assignment().len()).sum();
        if first.is_some() && same && owned == partitions {
            return round;
        }
    }
    panic!("the group did not settle in {MAX_ROUNDS} rounds");
}

/// Moves every assigned partition of `c` back to offset 0.
fn rewind(c: &Consumer) {
    for (topic, partition) in c.assignment() {
        c.seek(&topic, partition, 0).expect("seek to 0");
    }
}

/// Polls and commits until `c` read `expected` records.
fn poll_and_commit(c: &Consumer, expected: u64) -> u64 {
    let mut read = 0u64;
    let mut bytes = 0usize;
    while read < expected {
        let records = c.poll(POLL_RECORDS, Duration::ZERO).expect("poll");
        assert!(!records.is_empty(), "ran dry at {read} of {expected}");
        read += records.len() as u64;
        bytes += records
            .iter()
            .map(|r| r.value().map_or(0, <[u8]>::len))
            .sum::<usize>();
        c.commit().expect("commit");
    }
    assert_eq!(read, expected, "read every record once");
    black_box(bytes);
    read
}

/// Records in `c`'s assigned partitions.
fn assigned_records(broker: &Broker, c: &Consumer) -> u64 {
    let topic = broker.topic(TOPIC).expect("the bench topic");
    c.assignment()
        .iter()
        .map(|(_, p)| topic.partition(*p).expect("partition").log_end_offset())
        .sum()
}

fn bench_produce(group: &mut Group<'_>, n: u64, partitions: u32) {
    group.bench_function(format!("produce/{partitions}p"), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    // One append pass per fresh broker; opening it, a first record in each
                    // partition (the first write to a fresh segment costs page faults a
                    // long-lived log pays once per segment), closing it and removing its
                    // files are untimed.
                    let setup = || {
                        let dir = temp_dir();
                        let broker =
                            Broker::open(dir.path(), broker_config()).expect("open a broker");
                        let topic = broker
                            .create_topic(TOPIC, topic_config(partitions))
                            .expect("create the bench topic");
                        for p in 0..partitions {
                            topic
                                .append_to(p, vec![Record::new(vec![b'a'; VALUE_BYTES])])
                                .expect("first record");
                        }
                        (broker, batches(n), dir)
                    };
                    timed(1, setup, |(broker, data, _)| {
                        produce(broker, std::mem::take(data));
                    })
                })
                .sum()
        });
    });
}

fn bench_read_from(group: &mut Group<'_>, broker: &Broker, n: u64, partitions: u32) {
    let topic = broker.topic(TOPIC).expect("the bench topic");
    group.bench_function(format!("read_from/{partitions}p"), |b| {
        b.iter(|| {
            let (mut count, mut bytes) = (0u64, 0usize);
            for partition in topic.partitions() {
                for record in partition.read_from(0).expect("read_from") {
                    let record = record.expect("record");
                    bytes += record.value().map_or(0, <[u8]>::len);
                    count += 1;
                }
            }
            assert_eq!(count, n, "read every record");
            black_box(bytes)
        });
    });
}

fn bench_one_consumer(group: &mut Group<'_>, broker: &Broker, n: u64, partitions: u32) {
    let c = broker
        .consumer(consumer_config(&format!("one-{partitions}")))
        .expect("consumer");
    c.subscribe(&[TOPIC]).expect("subscribe");
    settle(std::slice::from_ref(&c), partitions as usize);
    group.bench_function(format!("poll_commit/1c_{partitions}p"), |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                rewind(&c);
                let start = Instant::now();
                poll_and_commit(&c, n);
                elapsed += start.elapsed();
            }
            elapsed
        });
    });
    c.close().expect("close");
}

fn bench_group_of_four(group: &mut Group<'_>, broker: &Broker, n: u64) {
    let mut consumers: Vec<Consumer> = (0..4)
        .map(|_| broker.consumer(consumer_config("four")).expect("consumer"))
        .collect();
    for c in &consumers {
        c.subscribe(&[TOPIC]).expect("subscribe");
    }
    settle(&consumers, 8);
    let shares: Vec<u64> = consumers
        .iter()
        .map(|c| assigned_records(broker, c))
        .collect();
    assert_eq!(shares.iter().sum::<u64>(), n);
    group.bench_function("poll_commit/4c_8p", |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                consumers.iter().for_each(rewind);
                let start = Instant::now();
                consumers = std::thread::scope(|s| {
                    let handles: Vec<_> = consumers
                        .drain(..)
                        .zip(&shares)
                        .map(|(c, share)| {
                            s.spawn(move || {
                                poll_and_commit(&c, *share);
                                c
                            })
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| h.join().expect("consumer thread"))
                        .collect()
                });
                elapsed += start.elapsed();
            }
            elapsed
        });
    });
    for c in consumers {
        c.close().expect("close");
    }
}

fn consume(c: &mut Criterion) {
    let n = records_setting();
    let mut group = c.benchmark_group(format!("consume/{n}_records"));
    configure(&mut group, 3);
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(n));
    for partitions in [1, 8] {
        bench_produce(&mut group, n, partitions);
    }
    for partitions in [1, 8] {
        let dir = temp_dir();
        let broker = filled_broker(dir.path(), partitions, n);
        bench_read_from(&mut group, &broker, n, partitions);
        bench_one_consumer(&mut group, &broker, n, partitions);
        if partitions == 8 {
            bench_group_of_four(&mut group, &broker, n);
        }
        broker.close().expect("close");
    }
    group.finish();
}

fn rebalance(c: &mut Criterion) {
    let mut group = c.benchmark_group("rebalance");
    configure(&mut group, 3);
    group.sampling_mode(SamplingMode::Flat);
    for size in REBALANCE_SIZES {
        let dir = temp_dir();
        let clock = ManualClock::new(1_700_000_000_000);
        let env = Env {
            storage: Arc::new(FileStorage),
            clock: Arc::new(clock.clone()),
        };
        let broker = Broker::open_with_env(dir.path(), broker_config(), env).expect("open");
        broker
            .create_topic(TOPIC, topic_config(8))
            .expect("create the bench topic");
        let config = || consumer_config("rebalance").assignor("range");
        let mut members: Vec<Consumer> = (0..size)
            .map(|_| broker.consumer(config()).expect("consumer"))
            .collect();
        for m in &members {
            m.subscribe(&[TOPIC]).expect("subscribe");
        }
        settle(&members, 8);
        group.bench_function(format!("{size}_to_{}", size + 1), |b| {
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    let newcomer = broker.consumer(config()).expect("consumer");
                    newcomer.subscribe(&[TOPIC]).expect("subscribe");
                    let before = members[0].generation();
                    let start = Instant::now();
                    members.push(newcomer);
                    settle(&members, 8);
                    elapsed += start.elapsed();
                    assert!(members[0].generation() > before, "a new generation");
                    members.pop().expect("the newcomer").close().expect("close");
                    settle(&members, 8);
                }
                elapsed
            });
        });
        for m in members {
            m.close().expect("close");
        }
        broker.close().expect("close");
    }
    group.finish();
}

criterion_group!(benches, consume, rebalance);
criterion_main!(benches);
