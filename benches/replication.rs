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
//! - `replication/raw_file_x3_threads`: three threads each writing its own copy of every
//!   batch, uncoordinated: the most the page cache and the cores allow for three copies.
//! - `replication/raw_file_x3_handoff_8_in_flight`: one thread writes each batch and hands
//!   it to two threads that write it too (std channels), each batch counted once both
//!   have written it, up to 8 batches unacknowledged: the least that any in-process
//!   replication with `acks=all` does (three copies, a hand-off and an acknowledgement per
//!   batch), without fetching, checking or any log.
//! - `replication/raw_file_x3_checked_handoff_8_in_flight`: the same, with the work on
//!   each batch that no Kafka-style replication skips: the batch encoded from the
//!   records (by the producer; the single broker's append does it too), and its CRC
//!   checked by every broker that writes it (a leader checks a client's batch, a
//!   follower a fetched one). The leader's walk over the records (offsets, timestamps,
//!   keys) is left out, so this floor is a little higher than any real leader allows.
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
use std::sync::{Arc, Barrier, mpsc};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use streamlog::record::{RecordBatch, encode_batch};
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
    group.bench_function("raw_file_x3_threads", |b| {
        b.iter_custom(|iters| in_rounds(iters, |n| three_threads(&bytes, n)))
    });
    group.bench_function("raw_file_x3_handoff_8_in_flight", |b| {
        b.iter_custom(|iters| in_rounds(iters, |n| handoff(&bytes, None, n)))
    });
    group.bench_function("raw_file_x3_checked_handoff_8_in_flight", |b| {
        b.iter_custom(|iters| in_rounds(iters, |n| handoff(&bytes, Some(&records), n)))
    });
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
        b.iter_custom(|iters| in_rounds(iters, |n| pipelined(&records, n)))
    });
    group.finish();
}

/// `iters` steps in runs of at most [`ROUND`], each timed by `run` on its own fresh
/// state; the sum.
fn in_rounds(iters: u64, mut run: impl FnMut(u64) -> Duration) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(ROUND);
        total += run(n);
        left -= n;
    }
    total
}

/// Three fresh files in a fresh directory.
fn three_files() -> (tempfile::TempDir, Vec<File>) {
    let dir = temp_dir();
    let files = (0..3)
        .map(|i| File::create(dir.path().join(format!("copy-{i}.log"))))
        .collect::<std::io::Result<_>>()
        .expect("create raw files");
    (dir, files)
}

/// `n` batches written by each of three threads to its own file at once: the time from
/// their common start to the last one's end.
fn three_threads(bytes: &[u8], n: u64) -> Duration {
    let (dir, files) = three_files();
    let start = Barrier::new(4);
    let elapsed = std::thread::scope(|scope| {
        for mut file in files {
            let start = &start;
            scope.spawn(move || {
                start.wait();
                for _ in 0..n {
                    file.write_all(bytes).expect("raw write");
                }
            });
        }
        start.wait();
        Instant::now()
    })
    .elapsed();
    drop(dir);
    elapsed
}

/// `n` batches written by this thread and handed to two threads that write them too,
/// at most [`IN_FLIGHT`] not yet written by both: the time from the first write to the
/// last acknowledgement. With `checked`, each batch is first encoded from these records
/// (as a producer does, and as the single broker's append does) and every copy checks
/// the batch's CRC before writing it (as a leader checks a client's batch and a
/// follower a fetched one).
fn handoff(bytes: &[u8], checked: Option<&[Record]>, n: u64) -> Duration {
    let (dir, mut files) = three_files();
    let batch: Arc<[u8]> = Arc::from(bytes);
    let (ack_tx, acks) = mpsc::channel::<usize>();
    let elapsed = std::thread::scope(|scope| {
        let mut followers = Vec::new();
        for (id, mut file) in files.drain(1..).enumerate() {
            let (to_follower, batches) = mpsc::channel::<Arc<[u8]>>();
            let ack = ack_tx.clone();
            scope.spawn(move || {
                for batch in batches {
                    if checked.is_some() {
                        check_crc(&batch);
                    }
                    file.write_all(&batch).expect("raw write");
                    ack.send(id).expect("leader waits");
                }
            });
            followers.push(to_follower);
        }
        let mut leader = files.pop().expect("the leader's file");
        // Batches each follower has written; a batch is acknowledged once both have.
        let mut written = [0u64; 2];
        let wait_for_ack = |written: &mut [u64; 2]| {
            written[acks.recv().expect("followers run")] += 1;
        };
        let start = Instant::now();
        for sent in 0..n {
            while sent - written[0].min(written[1]) >= IN_FLIGHT as u64 {
                wait_for_ack(&mut written);
            }
            let batch = match checked {
                Some(records) => {
                    let mut encoded = Vec::with_capacity(bytes.len());
                    encode_batch(records, Compression::None, 0, &mut encoded).expect("encode");
                    check_crc(&encoded);
                    Arc::from(encoded)
                }
                None => batch.clone(),
            };
            leader.write_all(&batch).expect("raw write");
            for follower in &followers {
                follower.send(batch.clone()).expect("follower runs");
            }
        }
        while written[0].min(written[1]) < n {
            wait_for_ack(&mut written);
        }
        start.elapsed()
    });
    drop(dir);
    elapsed
}

/// The batch's CRC checked, as a broker checks every batch it is sent.
fn check_crc(batch: &[u8]) {
    RecordBatch::parse(batch)
        .and_then(|batch| batch.ensure_valid())
        .expect("a valid batch");
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
