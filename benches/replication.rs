//! Criterion benchmarks of replication (issue 6): three in-process brokers, one partition
//! with replication factor 3, one producer sending batches of 1000 records of 100 bytes
//! with `acks=1` and `acks=all`, against a single broker's append of the same batches
//! (the machine's own limit in the same run). Throughput is in records
//! (`Throughput::Elements`).
//!
//! - `replication/raw_file_x1`, `raw_file_x3`: the machine's own limits in the same run:
//!   the encoded batch written with `write_all` to one plain file, or to each of three
//!   (one thread), which is what a replication factor of 3 asks of the page cache. On
//!   this VM new page-cache pages cost about 10× what rewriting cached ones does, so
//!   these rows, not the CPU's copy speed, bound the cluster rows.
//! - `replication/single_broker_append`: `Partition::append_records` of the batch on a
//!   plain log.
//! - `replication/single_broker_cluster`: a cluster of one broker (replication factor 1)
//!   and the same producer with `acks=all`: the produce path (the leader checks and
//!   restamps the client's batch) without replication.
//! - `replication/rf3_acks_1`: `Producer::send_to` to the leader, answered after the
//!   leader's append (followers copy it meanwhile).
//! - `replication/rf3_acks_all`: answered once both followers have fetched the batch and
//!   the high watermark passed it (S11, S13).
//! - `replication/rf3_acks_all_8_in_flight`: the same with `Producer::send_async`, up to 8
//!   batches in flight (Kafka's producer keeps 5 per connection by default), so the leader
//!   appends the next batches while the followers copy the last.
//!
//! Every measurement writes at most `ROUND` batches into one log or cluster, then starts
//! a fresh one (untimed): three brokers on one disk write every byte three times, and a
//! longer run measures how fast the machine's disk drains the page cache rather than the
//! replication (see `rounds::timed_rounds`).
//!
//! Run with `cargo bench --bench replication`.

mod common;
#[path = "common/rounds.rs"]
mod rounds;

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use streamlog::record::encode_batch;
use streamlog::{
    Acks, Cluster, ClusterConfig, Compression, LogConfig, Partition, Producer, ProducerConfig,
    Record, TopicConfig,
};

use common::{configure, temp_dir};
use rounds::timed_rounds;

const BATCH: usize = 1000;

/// Batches per log or cluster before it is replaced (untimed): 110 MB per log, 330 MB
/// for the three brokers, inside what the page cache takes at memory speed (see
/// `rounds::timed_rounds`). The single broker and the cluster are measured alike.
const ROUND: u64 = 1000;

fn batch() -> Vec<Record> {
    (0..BATCH)
        .map(|i| Record::new(vec![(i % 251) as u8; 100]))
        .collect()
}

fn replication(c: &mut Criterion) {
    let records = batch();
    let mut group = c.benchmark_group("replication");
    configure(&mut group, 5);
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut bytes = Vec::new();
    encode_batch(&records, Compression::None, 0, &mut bytes).expect("encode");
    for copies in [1, 3] {
        group.bench_function(format!("raw_file_x{copies}"), |b| {
            b.iter_custom(|iters| {
                timed_rounds(
                    iters,
                    ROUND,
                    || {
                        let dir = temp_dir();
                        let files: Vec<File> = (0..copies)
                            .map(|i| File::create(dir.path().join(format!("raw-{i}.log"))))
                            .collect::<std::io::Result<_>>()
                            .expect("create raw files");
                        (dir, files)
                    },
                    |(_, files)| {
                        for file in files.iter_mut() {
                            file.write_all(&bytes).expect("raw write");
                        }
                    },
                )
            })
        });
    }
    group.bench_function("single_broker_append", |b| {
        b.iter_custom(|iters| {
            timed_rounds(
                iters,
                ROUND,
                || {
                    let dir = temp_dir();
                    let log = Partition::open(dir.path().join("t-0"), LogConfig::default())
                        .expect("open");
                    (dir, log)
                },
                |(_, log)| {
                    log.append_records(&records).expect("append");
                },
            )
        })
    });
    for (name, brokers, acks) in [
        ("single_broker_cluster", 1, Acks::All),
        ("rf3_acks_1", 3, Acks::Leader),
        ("rf3_acks_all", 3, Acks::All),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                timed_rounds(
                    iters,
                    ROUND,
                    || start_cluster(brokers, acks),
                    |(producer, _, _)| {
                        producer.send_to("t", 0, &records).expect("send");
                    },
                )
            })
        });
    }
    group.bench_function("rf3_acks_all_8_in_flight", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(ROUND);
                total += pipelined(&records, n);
                left -= n;
            }
            total
        })
    });
    group.finish();
}

/// Sends `n` batches with `acks=all` to a fresh cluster, up to [`IN_FLIGHT`] at once;
/// the time from the first send to the last answer.
fn pipelined(records: &[Record], n: u64) -> Duration {
    let (producer, cluster, dir) = start_cluster(3, Acks::All);
    let start = Instant::now();
    let mut in_flight = VecDeque::new();
    for _ in 0..n {
        if in_flight.len() == IN_FLIGHT {
            let oldest: streamlog::cluster::PendingSend =
                in_flight.pop_front().expect("a send in flight");
            oldest.wait().expect("send");
        }
        in_flight.push_back(producer.send_async("t", 0, records).expect("send"));
    }
    for pending in in_flight {
        pending.wait().expect("send");
    }
    let elapsed = start.elapsed();
    drop((producer, cluster, dir));
    elapsed
}

const IN_FLIGHT: usize = 8;

/// `brokers` brokers with topic `t` (one partition, on every broker), replicating, and
/// a producer with `acks`.
fn start_cluster(brokers: u16, acks: Acks) -> (Producer, Cluster, tempfile::TempDir) {
    let dir = temp_dir();
    let cluster = Cluster::start(ClusterConfig::in_memory(u32::from(brokers)).data_dir(dir.path()))
        .expect("start");
    cluster
        .create_topic(
            "t",
            TopicConfig::default()
                .partitions(1)
                .replication_factor(brokers),
        )
        .expect("create");
    // Until both followers fetch, the first `acks=all` answer waits on their start: one
    // replicated batch (untimed) so that rounds measure replication, not start-up.
    cluster
        .producer(ProducerConfig::default().acks(Acks::All))
        .and_then(|warm_up| warm_up.send_to("t", 0, &[Record::new(b"warm-up".to_vec())]))
        .expect("warm-up send");
    let producer = cluster
        .producer(ProducerConfig::default().acks(acks))
        .expect("producer");
    (producer, cluster, dir)
}

criterion_group!(benches, replication);
criterion_main!(benches);
