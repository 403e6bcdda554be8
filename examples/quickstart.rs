//! Quickstart: open a partition in a temporary directory, append 1M records of 100 bytes in
//! batches of 1000, read a few back by offset, read everything sequentially (owned records,
//! then borrowed views), and print the throughput of each phase and the number of segments. The directory is removed at the end.
//!
//! ```sh
//! cargo run --release --example quickstart
//! ```
//! `QUICKSTART_KEEP=1` keeps the directory (and prints its path) so `dump_log` can look at it.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use streamlog::{LogConfig, Partition, Record};

const RECORDS: u64 = 1_000_000;
const BATCH: usize = 1000;
const VALUE_BYTES: usize = 100;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::Builder::new()
        .prefix("streamlog-quickstart-")
        .tempdir()?;
    let path = dir.path().join("quickstart-0");
    let log = Partition::open(&path, LogConfig::default())?;

    // Append: 1000 batches of 1000 records; record i holds "record <i>" padded to 100 bytes.
    let started = Instant::now();
    let mut next = 0u64;
    while next < RECORDS {
        let batch: Vec<Record> = (next..next + BATCH as u64)
            .map(|i| Record::new(value(i)))
            .collect();
        let offsets = log.append_batch(batch)?;
        next = offsets.end;
    }
    let append = started.elapsed();
    let log_bytes = log.size_bytes();
    report("append", RECORDS, log_bytes, append.as_secs_f64());

    // Random reads by offset.
    let mut rng = Rng(seed());
    for _ in 0..5 {
        let offset = rng.below(RECORDS);
        let record = log
            .read_from(offset)?
            .next()
            .ok_or("the log ended before the offset")??;
        let value = record.value().unwrap_or_default();
        let preview = String::from_utf8_lossy(&value[..value.len().min(24)]);
        println!(
            "offset {:>7}: {preview:?}... ({} bytes)",
            record.offset(),
            value.len()
        );
    }

    // Sequential read of everything, checking offsets and values as we go.
    let started = Instant::now();
    let mut count = 0u64;
    for record in log.read_from(log.log_start_offset())? {
        let record = record?;
        if record.offset() != count || record.value().map(<[u8]>::len) != Some(VALUE_BYTES) {
            return Err(format!("unexpected record at offset {}", record.offset()).into());
        }
        count += 1;
    }
    let read = started.elapsed();
    report("read", count, log_bytes, read.as_secs_f64());

    // The same, borrowing each record from the log's map instead of owning it: the
    // fastest way through a log when records need not outlive the loop.
    let started = Instant::now();
    let mut count = 0u64;
    log.read_from(log.log_start_offset())?
        .try_for_each_view(|record| {
            if record.offset() != count || record.value().map(<[u8]>::len) != Some(VALUE_BYTES) {
                return Err(format!("unexpected record at offset {}", record.offset()).into());
            }
            count += 1;
            Ok::<(), Box<dyn std::error::Error>>(())
        })?;
    let read = started.elapsed();
    report("viewed", count, log_bytes, read.as_secs_f64());

    println!(
        "log end offset {}, {} segment(s), {:.1} MB on disk in {}",
        log.log_end_offset(),
        log.segment_count(),
        log.size_bytes() as f64 / 1e6,
        path.display()
    );
    log.close()?;
    if std::env::var_os("QUICKSTART_KEEP").is_some() {
        println!("kept {}", dir.keep().display());
    }
    Ok(())
}

/// The value of record `i`: its number, padded with dots to 100 bytes.
fn value(i: u64) -> Vec<u8> {
    let mut v = format!("record {i} ").into_bytes();
    v.resize(VALUE_BYTES, b'.');
    v
}

/// Prints records/s, MB/s of values and MB/s of log (batch headers and framing included).
fn report(what: &str, records: u64, log_bytes: u64, secs: f64) {
    let values_mb = (records as usize * VALUE_BYTES) as f64 / 1e6;
    let log_mb = log_bytes as f64 / 1e6;
    println!(
        "{what:>6}: {records} records in {secs:.3} s = {:.0} records/s, \
         {:.1} MB/s of values ({:.1} MB/s of log)",
        records as f64 / secs,
        values_mb / secs,
        log_mb / secs
    );
}

fn seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0x9E37_79B9_7F4A_7C15, |d| d.as_nanos() as u64)
        | 1
}

/// xorshift64*: enough randomness for picking offsets, without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}
