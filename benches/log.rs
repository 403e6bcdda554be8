//! Criterion benchmarks of `streamlog::Partition` against two baselines, side by side in
//! each group: a plain sequential file (`std::fs::File`, the same bytes streamlog writes,
//! with the same batching) and the `commitlog` crate 0.2 doing the same work.
//!
//! Records carry a 100-byte value and no key (`Record::new(Vec<u8>)`). Groups:
//!
//! - `append/batch_1`, `append/batch_1000`: appends without fsync (page cache only), each
//!   side writing at most `ROUND_BYTES` into one file or log before a fresh one (untimed):
//!   past about 1 GB this machine's page cache holds writers to the disk's pace. The raw
//!   file is measured twice: plain, and with its blocks reserved beforehand
//!   (`raw_file_reserved`, untimed `fallocate`), as streamlog reserves its active segment's;
//! - `append_fsync/batch_1000`: every batch of 1000 made durable before the next
//!   (streamlog `FlushPolicy::Always`, raw `write_all` + `sync_data`, commitlog `flush`);
//! - `group_commit`: single-record appends with `FlushPolicy::Always` from 1 and 8 threads;
//! - `read_sequential`: reading a warm log of `STREAMLOG_BENCH_RECORDS` records (default 1M)
//!   from its first offset to its end: owned records (the iterator), borrowed ones
//!   (`next_view`) and borrowed ones by internal iteration (`try_for_each_view`);
//! - `lookup/<n>`: latency of reading one record at a random offset of a log of `n` records
//!   (10^4 and 10^6; 10^7 too when `STREAMLOG_BENCH_LOOKUP_10M` is set), built from batches
//!   of 1000 records (`STREAMLOG_BENCH_LOOKUP_BATCH` changes it: a lookup reads, checks and
//!   decodes the whole batch holding the offset, so batch size dominates its cost). Two
//!   raw floors: a read of one record at a known position, and a read of the whole batch
//!   with its CRC-32C (what any lookup that verifies its batch must do);
//!
//! Throughput is in records (`Throughput::Elements`). Run all with `cargo bench --bench log`
//! (about 3-4 minutes), or one group with a filter: `cargo bench --bench log -- lookup`.

use std::cell::OnceCell;
use std::fs::File;
use std::hint::black_box;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use commitlog::message::{MessageBuf, MessageSet};
use commitlog::{CommitLog, LogOptions, ReadLimit};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use streamlog::record::encode_batch;
use streamlog::{Compression, FlushPolicy, LogConfig, Partition, Record};
use tempfile::TempDir;

/// Bytes in each record's value.
mod common;
#[path = "common/rounds.rs"]
mod rounds;
use common::{configure, temp_dir, timed};
use rounds::timed_rounds;

/// Bytes an append bench writes into one file or log before starting a fresh one
/// (untimed): inside what the page cache takes at memory speed (see `timed_rounds`).
const ROUND_BYTES: usize = 110 << 20;

const VALUE_BYTES: usize = 100;
/// Records in the sequential-read log unless `STREAMLOG_BENCH_RECORDS` says otherwise.
const DEFAULT_READ_RECORDS: u64 = 1_000_000;
/// Records per batch when building logs to read from (and look up in, by default).
const BUILD_BATCH: usize = 1000;
/// Single-record appends per thread per iteration in the group-commit group.
const GROUP_COMMIT_PER_THREAD: u64 = 8;
/// Threads of the concurrent group-commit case.
const GROUP_COMMIT_THREADS: u64 = 8;
/// What commitlog may return per read call in the sequential read (streamlog's largest chunk).
const COMMITLOG_READ_BYTES: usize = 1 << 20;
/// What commitlog may return per random lookup (one record is 120 bytes in its format).
const COMMITLOG_LOOKUP_BYTES: usize = 4096;

fn records(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| Record::new(vec![b'a' + (i % 26) as u8; VALUE_BYTES]))
        .collect()
}

fn payloads(records: &[Record]) -> Vec<&[u8]> {
    records
        .iter()
        .map(|r| r.value().unwrap_or_default())
        .collect()
}

/// The bytes streamlog writes for one batch of `records` (what the raw baseline writes).
/// Bytes of one encoded batch of `batch` bench records.
fn record_bytes_of_batch(batch: usize) -> u64 {
    encoded(&records(batch)).len() as u64
}

fn encoded(records: &[Record]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_batch(records, Compression::None, 0, &mut out).expect("encode a batch");
    out
}

fn open_streamlog(dir: &Path, policy: FlushPolicy) -> Partition {
    let config = LogConfig::default().flush_policy(policy);
    Partition::open(dir.join("bench-0"), config).expect("open a streamlog partition")
}

fn open_commitlog(dir: &Path) -> CommitLog {
    CommitLog::new(LogOptions::new(dir.join("commitlog"))).expect("open a commitlog")
}

fn commitlog_append(log: &mut CommitLog, buf: &mut MessageBuf, payloads: &[&[u8]]) {
    buf.clear();
    for p in payloads {
        buf.push(p).expect("push a commitlog message");
    }
    log.append(buf).expect("commitlog append");
}

/// Reserves `len` bytes of disk blocks for `file` without changing its length, as
/// streamlog's active segments do (Linux); elsewhere nothing.
fn reserve(file: &File, len: u64) {
    #[cfg(target_os = "linux")]
    rustix::fs::fallocate(file, rustix::fs::FallocateFlags::KEEP_SIZE, 0, len).expect("fallocate");
    #[cfg(not(target_os = "linux"))]
    let _ = (file, len);
}

/// One group: raw file, commitlog and streamlog appending batches of `batch` records,
/// with an fsync after each batch when `fsync` is set.
fn append_group(c: &mut Criterion, name: &str, batch: usize, fsync: bool) {
    let records = records(batch);
    let payloads = payloads(&records);
    let bytes = encoded(&records);
    let mut group = c.benchmark_group(name);
    configure(&mut group, 3);
    group.throughput(Throughput::Elements(batch as u64));
    let id = format!("batch_{batch}");
    let round = (ROUND_BYTES / bytes.len()).max(1) as u64;

    // `raw_file_reserved`: the round's blocks reserved first (untimed), as streamlog
    // reserves its active segment's: the machine's limit for that way of writing.
    for (name, reserved) in [("raw_file", false), ("raw_file_reserved", true)] {
        group.bench_function(format!("{id}/{name}"), |b| {
            b.iter_custom(|iters| {
                timed_rounds(
                    iters,
                    round,
                    || {
                        let dir = temp_dir();
                        let file =
                            File::create(dir.path().join("raw.log")).expect("create raw file");
                        if reserved {
                            reserve(&file, round * bytes.len() as u64);
                        }
                        (dir, file)
                    },
                    |(_, file)| {
                        file.write_all(&bytes).expect("raw write");
                        if fsync {
                            file.sync_data().expect("raw sync_data");
                        }
                    },
                )
            });
        });
    }
    group.bench_function(format!("{id}/commitlog"), |b| {
        b.iter_custom(|iters| {
            timed_rounds(
                iters,
                round,
                || {
                    let dir = temp_dir();
                    let log = open_commitlog(dir.path());
                    (log, MessageBuf::default(), dir)
                },
                |(log, buf, _)| {
                    commitlog_append(log, buf, &payloads);
                    if fsync {
                        log.flush().expect("commitlog flush");
                    }
                },
            )
        });
    });
    let policy = if fsync {
        FlushPolicy::Always
    } else {
        FlushPolicy::Never
    };
    group.bench_function(format!("{id}/streamlog"), |b| {
        b.iter_custom(|iters| {
            timed_rounds(
                iters,
                round,
                || {
                    let dir = temp_dir();
                    (open_streamlog(dir.path(), policy), dir)
                },
                |(log, _)| {
                    log.append_records(&records).expect("streamlog append");
                },
            )
        });
    });
    group.finish();
}

fn append(c: &mut Criterion) {
    append_group(c, "append", 1, false);
    append_group(c, "append", 1000, false);
    append_group(c, "append_fsync", 1000, true);
}

/// Single-record durable appends: the raw file and commitlog from one thread, streamlog
/// from one thread and from eight sharing one `Partition` (group commit).
fn group_commit(c: &mut Criterion) {
    let record = records(1);
    let payload = payloads(&record);
    let bytes = encoded(&record);
    let mut group = c.benchmark_group("group_commit");
    configure(&mut group, 4);
    let per_iter = GROUP_COMMIT_PER_THREAD * GROUP_COMMIT_THREADS;
    group.throughput(Throughput::Elements(per_iter));

    group.bench_function("raw_file_1_thread", |b| {
        b.iter_custom(|iters| {
            timed(
                iters * per_iter,
                || {
                    let dir = temp_dir();
                    let file = File::create(dir.path().join("raw.log")).expect("create raw file");
                    (dir, file)
                },
                |(_, file)| {
                    file.write_all(&bytes).expect("raw write");
                    file.sync_data().expect("raw sync_data");
                },
            )
        });
    });
    group.bench_function("commitlog_1_thread", |b| {
        b.iter_custom(|iters| {
            timed(
                iters * per_iter,
                || {
                    let dir = temp_dir();
                    let log = open_commitlog(dir.path());
                    (log, MessageBuf::default(), dir)
                },
                |(log, buf, _)| {
                    commitlog_append(log, buf, &payload);
                    log.flush().expect("commitlog flush");
                },
            )
        });
    });
    for threads in [1, GROUP_COMMIT_THREADS] {
        group.bench_function(format!("streamlog_{threads}_threads"), |b| {
            b.iter_custom(|iters| {
                let dir = temp_dir();
                let log = open_streamlog(dir.path(), FlushPolicy::Always);
                let per_thread = iters * per_iter / threads;
                let start = Instant::now();
                std::thread::scope(|s| {
                    for _ in 0..threads {
                        s.spawn(|| {
                            for _ in 0..per_thread {
                                log.append_records(&record).expect("streamlog append");
                            }
                        });
                    }
                });
                let elapsed = start.elapsed();
                drop(log);
                elapsed
            });
        });
    }
    group.finish();
}

/// A directory holding the same `n` records three ways: streamlog, commitlog and a raw
/// file of streamlog's bytes.
struct Logs {
    streamlog: Partition,
    commitlog: CommitLog,
    raw: File,
    _dir: TempDir,
}

/// Builds the logs, appending batches of `batch_size` records.
fn build_logs(n: u64, batch_size: usize) -> Logs {
    let dir = temp_dir();
    let streamlog = open_streamlog(dir.path(), FlushPolicy::Never);
    let mut commitlog = open_commitlog(dir.path());
    let mut raw = File::create(dir.path().join("raw.log")).expect("create raw file");
    let batch = records(batch_size);
    let payloads = payloads(&batch);
    let bytes = encoded(&batch);
    let mut buf = MessageBuf::default();
    let mut left = n;
    while left > 0 {
        let take = left.min(batch_size as u64) as usize;
        streamlog
            .append_records(&batch[..take])
            .expect("streamlog append");
        commitlog_append(&mut commitlog, &mut buf, &payloads[..take]);
        if take == batch_size {
            raw.write_all(&bytes).expect("raw write");
        } else {
            raw.write_all(&encoded(&batch[..take])).expect("raw write");
        }
        left -= take as u64;
    }
    streamlog.flush().expect("streamlog flush");
    commitlog.flush().expect("commitlog flush");
    raw.sync_data().expect("raw sync_data");
    let raw = File::open(dir.path().join("raw.log")).expect("open raw file");
    Logs {
        streamlog,
        commitlog,
        raw,
        _dir: dir,
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn read_sequential(c: &mut Criterion) {
    let n = env_u64("STREAMLOG_BENCH_RECORDS").unwrap_or(DEFAULT_READ_RECORDS);
    // Built on first use, so a filter that skips the group skips the build too.
    let cell = OnceCell::new();
    let logs = || cell.get_or_init(|| build_logs(n, BUILD_BATCH));
    let mut group = c.benchmark_group("read_sequential");
    configure(&mut group, 5);
    group.throughput(Throughput::Elements(n));
    let id = format!("{n}_records");

    group.bench_function(format!("{id}/raw_file"), |b| {
        let logs = logs();
        let mut chunk = vec![0u8; 1 << 20];
        b.iter(|| {
            let file = &logs.raw;
            let mut position = 0u64;
            loop {
                let read = file.read_at(&mut chunk, position).expect("raw read");
                if read == 0 {
                    break;
                }
                position += read as u64;
            }
            black_box(position)
        });
    });
    group.bench_function(format!("{id}/commitlog"), |b| {
        let logs = logs();
        b.iter(|| {
            let (mut next, mut count, mut bytes) = (0u64, 0u64, 0usize);
            while count < n {
                let buf = logs
                    .commitlog
                    .read(next, ReadLimit::max_bytes(COMMITLOG_READ_BYTES))
                    .expect("commitlog read");
                let mut last = None;
                for m in buf.iter() {
                    bytes += m.payload().len();
                    count += 1;
                    last = Some(m.offset());
                }
                match last {
                    Some(offset) => next = offset + 1,
                    None => break,
                }
            }
            assert_eq!(count, n, "commitlog read every record");
            black_box(bytes)
        });
    });
    group.bench_function(format!("{id}/streamlog"), |b| {
        let logs = logs();
        b.iter(|| {
            let (mut count, mut bytes) = (0u64, 0usize);
            for record in logs.streamlog.read_from(0).expect("streamlog read") {
                let record = record.expect("streamlog record");
                bytes += record.value().map_or(0, <[u8]>::len);
                count += 1;
            }
            assert_eq!(count, n, "streamlog read every record");
            black_box(bytes)
        });
    });
    // The borrowed fast path: records are views into the reader's buffer.
    group.bench_function(format!("{id}/streamlog_next_view"), |b| {
        let logs = logs();
        b.iter(|| {
            let (mut count, mut bytes) = (0u64, 0usize);
            let mut records = logs.streamlog.read_from(0).expect("streamlog read");
            while let Some(record) = records.next_view() {
                let record = record.expect("streamlog record");
                bytes += record.value().map_or(0, <[u8]>::len);
                count += 1;
            }
            assert_eq!(count, n, "streamlog read every record");
            black_box(bytes)
        });
    });
    // Borrowed records by internal iteration: one decoding loop per batch.
    group.bench_function(format!("{id}/streamlog_for_each_view"), |b| {
        let logs = logs();
        b.iter(|| {
            let (mut count, mut bytes) = (0u64, 0usize);
            let mut records = logs.streamlog.read_from(0).expect("streamlog read");
            records
                .try_for_each_view(|record| {
                    bytes += record.value().map_or(0, <[u8]>::len);
                    count += 1;
                    Ok::<(), streamlog::Error>(())
                })
                .expect("streamlog records");
            assert_eq!(count, n, "streamlog read every record");
            black_box(bytes)
        });
    });
    group.finish();
}

/// xorshift64*: random offsets without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

fn lookup(c: &mut Criterion) {
    let mut sizes = vec![10_000u64, 1_000_000];
    if std::env::var_os("STREAMLOG_BENCH_LOOKUP_10M").is_some() {
        sizes.push(10_000_000);
    }
    let batch = env_u64("STREAMLOG_BENCH_LOOKUP_BATCH").map_or(BUILD_BATCH, |b| b.max(1) as usize);
    let record_bytes = encoded(&records(1)).len() as u64;
    for n in sizes {
        let cell = OnceCell::new();
        let logs = || cell.get_or_init(|| build_logs(n, batch));
        let mut group = c.benchmark_group(format!("lookup/{n}"));
        configure(&mut group, 3);
        group.throughput(Throughput::Elements(1));

        // The floor of any lookup: one positional read of a record whose position is known
        // (as if every record were indexed), from a file of single-record batches' size.
        group.bench_function("raw_pread", |b| {
            let logs = logs();
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
            let span = logs.raw.metadata().expect("raw metadata").len() / record_bytes;
            let mut buf = vec![0u8; record_bytes as usize];
            b.iter(|| {
                let position = rng.below(span.max(1)) * record_bytes;
                black_box(logs.raw.read_at(&mut buf, position).expect("raw read"))
            });
        });
        // The floor of a lookup that checks what it returns: one positional read of the
        // whole batch holding the record, and its CRC-32C. Its own growth from 10^4
        // records (cache-resident) to 10^6 and more (from memory) is this machine's.
        group.bench_function("raw_pread_batch_crc", |b| {
            let logs = logs();
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
            let batch_bytes = record_bytes_of_batch(batch);
            let span = logs.raw.metadata().expect("raw metadata").len() / batch_bytes;
            let mut buf = vec![0u8; batch_bytes as usize];
            b.iter(|| {
                let position = rng.below(span.max(1)) * batch_bytes;
                let n = logs.raw.read_at(&mut buf, position).expect("raw read");
                black_box(crc_fast::crc32_iscsi(&buf[..n]))
            });
        });
        group.bench_function("commitlog", |b| {
            let logs = logs();
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
            b.iter(|| {
                let offset = rng.below(n);
                let buf = logs
                    .commitlog
                    .read(offset, ReadLimit::max_bytes(COMMITLOG_LOOKUP_BYTES))
                    .expect("commitlog read");
                let first = buf.iter().next().expect("commitlog record");
                assert_eq!(first.offset(), offset);
                black_box(first.payload().len())
            });
        });
        group.bench_function("streamlog", |b| {
            let logs = logs();
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
            b.iter(|| {
                let offset = rng.below(n);
                let record = logs
                    .streamlog
                    .read_from(offset)
                    .expect("streamlog read")
                    .next()
                    .expect("a record")
                    .expect("streamlog record");
                assert_eq!(record.offset(), offset);
                black_box(record.value().map_or(0, <[u8]>::len))
            });
        });
        group.finish();
    }
}

criterion_group!(benches, append, group_commit, read_sequential, lookup);
criterion_main!(benches);
