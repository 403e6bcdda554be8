//! Criterion benchmarks of topics (the partitioner in front of the storage core) and of
//! log compaction, each against a storage-core baseline in the same group and run.
//!
//! Records carry a 100-byte value (`Record::new(Vec<u8>)`), either no key or a distinct
//! key `user-<i>` from a pool of 1000. Groups:
//!
//! - `topic_append/record/<keyed|unkeyed>/...`: one record per call, `Topic::append` on
//!   topics of 1, 8 and 64 partitions (`topic_1`, `topic_8`, `topic_64`) against
//!   `Partition::append` on a bare partition (`partition`), all `FlushPolicy::Never`,
//!   each log opened once per benchmark and appended to across its samples (its rolled
//!   segments deleted, untimed, every 256 MiB: see `bench_sink`).
//!   `topic_1` against `partition` is the partitioner's overhead (target: at most 10%);
//!   8 and 64 partitions add spreading records over that many files.
//! - `topic_append/batch_1000/<keyed|unkeyed>/...`: `Topic::append_batch` of 1000 records
//!   against `Partition::append_records` of the same 1000. A topic writes one batch per
//!   partition the records go to, so 1000 records over 64 partitions are ~64 batches of
//!   ~16: the per-batch cost, not the partitioner, dominates there.
//! - `compaction/<n>MiB`: `Partition::compact` of a `cleanup.policy=compact` log of
//!   `STREAMLOG_BENCH_COMPACT_MB` MiB (default 64) of 100-byte values over 10,000 keys in
//!   1 MiB segments, every segment cleanable (`compact`), against reading the same
//!   segments: raw (`raw_segments`, the `.log` files in 1 MiB chunks), and record by record
//!   (`read_from`, the owned iterator; `read_from_next_view`, borrowed records). Each
//!   compaction runs on a fresh copy of a prepared, uncompacted directory, copied (and
//!   synced) before the clock starts; one pass is one sample, so on a slow disk criterion
//!   warns that 10 samples do not fit the target time, and takes longer.
//!
//! Throughput is in records for `topic_append` (`Throughput::Elements`) and in bytes of
//! log (the uncompacted segments) for `compaction` (`Throughput::Bytes`). Run all with
//! `cargo bench --bench topic` (about 2 minutes), or one group with a filter:
//! `cargo bench --bench topic -- compaction`.

use std::fs::File;
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use streamlog::{
    CleanupPolicy, Env, FlushPolicy, LogConfig, Partition, Record, Topic, TopicConfig,
};
use tempfile::TempDir;

/// Bytes in each record's value.
mod common;
use common::{Group, configure, temp_dir, timed};

const VALUE_BYTES: usize = 100;
/// Records in the append pool (and in each appended batch); keyed records have distinct
/// keys `user-0` .. `user-999`.
const POOL: usize = 1000;
/// Partition counts of the topics appended to.
const PARTITION_COUNTS: [u32; 3] = [1, 8, 64];
/// Records appended per timed stretch (see `bench_sink`).
const STRETCH_RECORDS: u64 = 100_000;
/// Bytes an appended-to sink holds, over all its partitions, before it is trimmed.
const SINK_CAP_BYTES: u64 = 256 << 20;
/// Size of the log compacted unless `STREAMLOG_BENCH_COMPACT_MB` says otherwise (MiB).
const DEFAULT_COMPACT_MB: u64 = 64;
/// Distinct keys in the compacted log.
const COMPACT_KEYS: u64 = 10_000;
/// `segment.bytes` of the compacted log: small, so it has many non-active segments.
const COMPACT_SEGMENT_BYTES: u64 = 1 << 20;
/// Records per batch when building the compacted log.
const COMPACT_BUILD_BATCH: usize = 1000;
/// The compacted log's partition directory, in the prepared directory and in each copy.
const COMPACT_PARTITION: &str = "compacted-0";

fn value(i: usize) -> Vec<u8> {
    vec![b'a' + (i % 26) as u8; VALUE_BYTES]
}

/// `n` records, keyed `user-<i>` when `keyed`.
fn records(n: usize, keyed: bool) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let record = Record::new(value(i));
            if keyed {
                record.with_key(format!("user-{i}").into_bytes())
            } else {
                record
            }
        })
        .collect()
}

/// Where appends go: a bare partition or a topic. Both sides are called with records they
/// own, so both pay the same clone per call (see `bench_sink`).
trait Sink {
    fn append_one(&self, record: Record);
    fn append_many(&self, records: Vec<Record>);
    /// Calls `f` on every partition.
    fn for_each_log(&self, f: &mut dyn FnMut(&Partition));
}

impl Sink for Partition {
    fn append_one(&self, record: Record) {
        self.append(record).expect("partition append");
    }

    fn append_many(&self, records: Vec<Record>) {
        // The records are dropped here, as `Topic::append_batch` drops its own.
        self.append_records(&records)
            .expect("partition append_records");
    }

    fn for_each_log(&self, f: &mut dyn FnMut(&Partition)) {
        f(self);
    }
}

impl Sink for Topic {
    fn append_one(&self, record: Record) {
        self.append(record).expect("topic append");
    }

    fn append_many(&self, records: Vec<Record>) {
        self.append_batch(records).expect("topic append_batch");
    }

    fn for_each_log(&self, f: &mut dyn FnMut(&Partition)) {
        for partition in self.partitions() {
            f(&partition);
        }
    }
}

/// The config of every appended-to log, bare or in a topic: no fsync, and segments
/// removed as soon as they are deleted (see `trim`).
fn append_log_config() -> LogConfig {
    LogConfig::default()
        .flush_policy(FlushPolicy::Never)
        .file_delete_delay_ms(0)
}

fn open_partition(dir: &Path) -> Partition {
    Partition::open(dir.join("bench-0"), append_log_config()).expect("open a partition")
}

fn open_topic(dir: &Path, partitions: u32) -> Topic {
    let config = TopicConfig::default()
        .partitions(partitions)
        .with_log_config(append_log_config());
    Topic::open(dir, "bench", config, Env::default()).expect("open a topic")
}

fn sink_bytes(sink: &impl Sink) -> u64 {
    let mut bytes = 0;
    sink.for_each_log(&mut |log| bytes += log.size_bytes());
    bytes
}

/// Untimed, between timed stretches once a sink holds `SINK_CAP_BYTES`: rolls every log,
/// deletes the rolled segments, and appends `first` to each new active segment (the first
/// write to a fresh segment's files costs milliseconds of page faults on some disks, a cost
/// a real log pays once per `segment.bytes`, 1 GiB here, not once per cap).
fn trim(sink: &impl Sink, first: &Record) {
    sink.for_each_log(&mut |log| {
        log.roll().expect("roll");
        log.delete_records_before(log.log_end_offset())
            .expect("delete the rolled segments");
        log.append(first.clone())
            .expect("first append to a new segment");
    });
}

/// One benchmark appending `pool` to a sink opened by `open`: one record per call,
/// cycling through the pool, or the whole pool per call when `batch`.
///
/// Timed, identically for both sinks: cloning the record(s) out of the pool (the `Record`
/// API takes owned values, so a caller that keeps its data pays this clone too), choosing
/// the partition (topics only), encoding and writing the batch, and dropping the records.
/// Untimed: building the pool, opening the sink, `trim`, closing it and removing its files.
///
/// The sink is opened once per benchmark, before criterion calls the routine (which it
/// does once per warm-up round and once per sample), and kept across samples: the steady
/// state of an open log. Appends are timed in stretches of `STRETCH_RECORDS` records;
/// between stretches the sink is trimmed when it holds `SINK_CAP_BYTES`, so no segment
/// reaches `segment.bytes` (a roll fsyncs the whole segment on the append path, seconds
/// for 1 GiB on a busy disk) and the page cache and disk hold at most that much.
fn bench_sink<S: Sink>(
    group: &mut Group<'_>,
    id: &str,
    pool: &[Record],
    batch: bool,
    open: impl Fn(&Path) -> S,
) {
    let dir = temp_dir();
    // Opened on first use, so a filter that skips the benchmark skips the open too.
    let mut sink: Option<S> = None;
    let per_call = if batch { pool.len() } else { 1 };
    let stretch = (STRETCH_RECORDS / per_call as u64).max(1);
    let mut next = 0usize;
    group.bench_function(id, |b| {
        let sink = sink.get_or_insert_with(|| {
            let sink = open(dir.path());
            trim(&sink, &pool[0]);
            sink
        });
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                if sink_bytes(sink) >= SINK_CAP_BYTES {
                    trim(sink, &pool[0]);
                }
                let n = left.min(stretch);
                let start = Instant::now();
                for _ in 0..n {
                    if batch {
                        sink.append_many(pool.to_vec());
                    } else {
                        sink.append_one(pool[next].clone());
                        next = (next + 1) % pool.len();
                    }
                }
                elapsed += start.elapsed();
                left -= n;
            }
            elapsed
        });
    });
    // Closes the log(s), then removes the files.
    drop(sink);
}

/// `topic_append` with `per_call` records per call (1: `append`; `POOL`: `append_batch`).
fn topic_append_group(c: &mut Criterion, per_call: usize) {
    let batch = per_call > 1;
    let mut group = c.benchmark_group("topic_append");
    configure(&mut group, 2);
    group.throughput(Throughput::Elements(per_call as u64));
    let shape = if batch {
        format!("batch_{per_call}")
    } else {
        "record".to_owned()
    };
    for keyed in [false, true] {
        let pool = records(POOL, keyed);
        let pool = if batch { &pool[..per_call] } else { &pool[..] };
        let prefix = format!("{shape}/{}", if keyed { "keyed" } else { "unkeyed" });
        bench_sink(
            &mut group,
            &format!("{prefix}/partition"),
            pool,
            batch,
            open_partition,
        );
        for n in PARTITION_COUNTS {
            bench_sink(
                &mut group,
                &format!("{prefix}/topic_{n}"),
                pool,
                batch,
                |d| open_topic(d, n),
            );
        }
    }
    group.finish();
}

fn topic_append(c: &mut Criterion) {
    topic_append_group(c, 1);
    topic_append_group(c, POOL);
}

fn compacted_config() -> LogConfig {
    LogConfig::default()
        .cleanup_policy(CleanupPolicy::Compact)
        .segment_bytes(COMPACT_SEGMENT_BYTES)
        .flush_policy(FlushPolicy::Never)
}

/// xorshift64*: random keys without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// A closed, uncompacted log in `dir/COMPACT_PARTITION`, every segment cleanable (the
/// active one is empty), to copy before each compaction.
struct Template {
    dir: TempDir,
    /// Bytes of the log's segments (what a compaction pass reads).
    bytes: u64,
    records: u64,
    segments: usize,
    /// Distinct keys written, so records a compaction keeps.
    keys: u64,
}

impl Template {
    fn partition_dir(&self) -> PathBuf {
        self.dir.path().join(COMPACT_PARTITION)
    }

    /// An open copy of the log in a new temporary directory (dropped after the log). The
    /// copy is on disk before it opens, so no writeback of it competes with what is timed
    /// (as for a real log, written well before it is compacted).
    fn open_copy(&self) -> (Partition, TempDir) {
        let copy = temp_dir();
        let to = copy.path().join(COMPACT_PARTITION);
        copy_dir(&self.partition_dir(), &to);
        let log = Partition::open(&to, compacted_config()).expect("open a copied log");
        (log, copy)
    }
}

/// Appends random keys out of `COMPACT_KEYS` until the log holds `target_bytes`, then rolls.
fn build_template(target_bytes: u64) -> Template {
    let dir = temp_dir();
    let log = Partition::open(dir.path().join(COMPACT_PARTITION), compacted_config())
        .expect("open the log to compact");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut seen = vec![false; COMPACT_KEYS as usize];
    let mut records = 0u64;
    while log.size_bytes() < target_bytes {
        let batch: Vec<Record> = (0..COMPACT_BUILD_BATCH)
            .map(|i| {
                let key = rng.below(COMPACT_KEYS);
                seen[key as usize] = true;
                Record::new(value(i)).with_key(format!("key-{key}").into_bytes())
            })
            .collect();
        log.append_records(&batch)
            .expect("append to the log to compact");
        records += batch.len() as u64;
    }
    log.roll().expect("roll the log to compact");
    let template = Template {
        bytes: log.size_bytes(),
        records,
        segments: log.segment_count() - 1,
        keys: seen.iter().filter(|&&s| s).count() as u64,
        dir,
    };
    log.close().expect("close the log to compact");
    template
}

/// Copies the files of directory `from` into a new directory `to`, durably.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy's directory");
    for entry in std::fs::read_dir(from).expect("list the log directory") {
        let entry = entry.expect("read a directory entry");
        if entry.file_type().expect("file type").is_file() {
            let target = to.join(entry.file_name());
            std::fs::copy(entry.path(), &target).expect("copy a log file");
            File::open(&target)
                .and_then(|f| f.sync_all())
                .expect("sync a copied file");
        }
    }
    File::open(to)
        .and_then(|d| d.sync_all())
        .expect("sync the copy's directory");
}

/// The `.log` files of a partition directory, oldest first (names are base offsets).
fn segment_files(dir: &Path) -> Vec<File> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list the log directory")
        .map(|e| e.expect("read a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| File::open(p).expect("open a segment file"))
        .collect()
}

fn compaction(c: &mut Criterion) {
    let mb = std::env::var("STREAMLOG_BENCH_COMPACT_MB")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_COMPACT_MB);
    // Built up front (about a second) even when a filter skips the group: the throughput
    // needs its exact size before the first benchmark.
    let template = &build_template(mb << 20);
    let mut group = c.benchmark_group("compaction");
    configure(&mut group, 3);
    // A compaction takes a large fraction of a second: the same iteration count in every
    // sample rather than criterion's linear ramp.
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Bytes(template.bytes));
    let id = format!("{mb}MiB");

    // Timed: one `compact` pass over every segment (offset map, rewrite, crash-safe swap
    // of each cleaned segment). Untimed: copying the prepared log, opening and closing it.
    group.bench_function(format!("{id}/compact"), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let mut stats = None;
                    let elapsed = timed(
                        1,
                        || template.open_copy(),
                        |(log, _)| stats = Some(log.compact().expect("compact")),
                    );
                    let stats = stats.expect("a compaction ran");
                    assert_eq!(stats.bytes_read, template.bytes, "compacted every byte");
                    assert_eq!(stats.records_read, template.records, "read every record");
                    assert_eq!(stats.records_written, template.keys, "one record per key");
                    assert_eq!(stats.segments_read, template.segments, "every segment");
                    elapsed
                })
                .sum()
        });
    });
    group.bench_function(format!("{id}/raw_segments"), |b| {
        let files = segment_files(&template.partition_dir());
        let mut chunk = vec![0u8; 1 << 20];
        b.iter(|| {
            let mut total = 0u64;
            for file in &files {
                let mut position = 0u64;
                loop {
                    let read = file.read_at(&mut chunk, position).expect("raw read");
                    if read == 0 {
                        break;
                    }
                    position += read as u64;
                }
                total += position;
            }
            assert_eq!(total, template.bytes, "read every segment byte");
            black_box(total)
        });
    });
    group.bench_function(format!("{id}/read_from"), |b| {
        let (log, _copy) = template.open_copy();
        b.iter(|| {
            let (mut count, mut bytes) = (0u64, 0usize);
            for record in log.read_from(0).expect("read") {
                let record = record.expect("record");
                bytes += record.value().map_or(0, <[u8]>::len);
                count += 1;
            }
            assert_eq!(count, template.records, "read every record");
            black_box(bytes)
        });
    });
    group.bench_function(format!("{id}/read_from_next_view"), |b| {
        let (log, _copy) = template.open_copy();
        b.iter(|| {
            let (mut count, mut bytes) = (0u64, 0usize);
            let mut records = log.read_from(0).expect("read");
            while let Some(record) = records.next_view() {
                let record = record.expect("record");
                bytes += record.value().map_or(0, <[u8]>::len);
                count += 1;
            }
            assert_eq!(count, template.records, "read every record");
            black_box(bytes)
        });
    });
    group.finish();
}

criterion_group!(benches, topic_append, compaction);
criterion_main!(benches);
