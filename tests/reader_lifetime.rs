//! Readers and records that outlive their `Partition`: closing (or dropping) a partition
//! releases its directory, so the directory can be opened again in the same process while
//! a `Records` of the old instance, or `LogRecord`s it handed out, still hold bytes of a
//! segment's memory map. The old reader answers `Closed` at its next batch, records keep
//! their bytes, and the new instance never cuts a file those maps cover (it rewrites it).
//!
//! Touching a mapped page past the end of a file kills the process (SIGBUS), so the
//! real-file scenario runs in a child process: the same test of this binary, run again
//! with `STREAMLOG_READER_CHILD` set (as `tests/crash.rs` runs its appender).

use std::sync::Arc;

use streamlog::{Env, Error, LogConfig, LogRecord, ManualClock, Partition, Record, SimStorage};

const DIR: &str = "/sim/orders-0";
const START_MS: i64 = 1_700_000_000_000;

fn config() -> LogConfig {
    LogConfig::default().segment_index_bytes(64 << 10)
}

fn env(storage: &SimStorage) -> Env {
    Env {
        storage: Arc::new(storage.clone()),
        clock: Arc::new(ManualClock::new(START_MS)),
    }
}

fn value(i: u64) -> Vec<u8> {
    format!("value-{i:06}-{}", "x".repeat(80)).into_bytes()
}

/// Appends `batches` batches of `per_batch` records, record `i` holding `value(i)`.
fn fill(log: &Partition, batches: u64, per_batch: u64) {
    for b in 0..batches {
        let records = (b * per_batch..(b + 1) * per_batch)
            .map(|i| Record::new(value(i)))
            .collect();
        log.append_batch(records).unwrap();
    }
}

fn assert_intact(held: &[LogRecord]) {
    for (i, record) in held.iter().enumerate() {
        assert_eq!(record.offset(), i as u64);
        assert_eq!(record.value(), Some(&value(i as u64)[..]));
    }
}

fn read_offsets(log: &Partition) -> Vec<u64> {
    log.read_from(log.log_start_offset())
        .unwrap()
        .map(|r| r.unwrap().offset())
        .collect()
}

/// Set in the child process that runs the real-file scenario.
const CHILD_ENV: &str = "STREAMLOG_READER_CHILD";

/// Runs test `name` of this binary again in a child process with [`CHILD_ENV`] set, so
/// that a SIGBUS fails this test instead of killing the whole test binary.
fn run_child(name: &str) -> std::process::Output {
    let exe = std::env::current_exe().expect("current_exe");
    std::process::Command::new(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .expect("run the child test")
}

/// A reader in the middle of a batch, and records it handed out, outlive their partition;
/// the directory is opened again (as a restarted broker would) and the new instance
/// truncates the segment they map. Neither may touch a page past the new end of file.
#[test]
fn a_reader_outliving_its_partition_survives_the_next_open_truncating_its_segment() {
    const NAME: &str =
        "a_reader_outliving_its_partition_survives_the_next_open_truncating_its_segment";
    if std::env::var_os(CHILD_ENV).is_none() {
        let out = run_child(NAME);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "child ended with {:?}\nstdout: {stdout}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let first = Partition::open(dir.path(), config()).unwrap();
    fill(&first, 200, 10);
    let mut reader = first.read_from(0).unwrap();
    let held: Vec<LogRecord> = reader.by_ref().take(105).map(Result::unwrap).collect();
    drop(first); // closes the log and releases the directory; the reader lives on

    let second = Partition::open(dir.path(), config()).unwrap();
    assert_eq!(second.truncate_to(10).unwrap(), 10);
    // The rest of the batch the reader is in comes from its map, then the closed log ends it.
    let rest: Vec<u64> = reader
        .by_ref()
        .take(5)
        .map(|r| r.unwrap().offset())
        .collect();
    assert_eq!(rest, [105, 106, 107, 108, 109]);
    assert!(matches!(reader.next(), Some(Err(Error::Closed { .. }))));
    assert!(reader.next().is_none());
    assert_intact(&held);

    assert_eq!(read_offsets(&second), (0..10).collect::<Vec<_>>());
    second.roll().unwrap();
    assert_eq!(second.append(Record::new(value(10))).unwrap(), 10);
    drop((reader, held));
    assert_eq!(second.truncate_to(10).unwrap(), 10);
    assert_eq!(read_offsets(&second), (0..10).collect::<Vec<_>>());
}

/// A reader that outlives its partition without having read anything still holds the old
/// instance's segments: they must not keep their index maps, or the next open could not
/// trim the same index files when it rolls. The reader answers `Closed`.
#[test]
fn an_idle_reader_outliving_its_partition_answers_closed_and_leaves_the_files_free() {
    let storage = SimStorage::new();
    let first = Partition::open_with_env(DIR, config(), env(&storage)).unwrap();
    fill(&first, 50, 2);
    let mut idle = first.read_from(0).unwrap();
    first.close().unwrap();
    assert!(matches!(idle.next(), Some(Err(Error::Closed { .. }))));

    let second = Partition::open_with_env(DIR, config(), env(&storage)).unwrap();
    assert_eq!(second.truncate_to(30).unwrap(), 30);
    second.roll().unwrap();
    assert_eq!(second.append(Record::new(value(30))).unwrap(), 30);
    assert_eq!(read_offsets(&second), (0..31).collect::<Vec<_>>());
    drop(idle);
}

/// The old log closed after a storage failure (no clean shutdown), its records are still
/// held, and its active segment has a torn tail: the next open must recover that segment
/// — cutting the tail — without cutting the file the records map. It recovers a copy.
#[test]
fn the_next_open_recovers_a_copy_of_a_segment_that_old_records_still_map() {
    let storage = SimStorage::new();
    let first = Partition::open_with_env(DIR, config(), env(&storage)).unwrap();
    fill(&first, 20, 5);
    let held: Vec<LogRecord> = first.read_from(0).unwrap().map(Result::unwrap).collect();
    storage.fail_syncs(true);
    assert!(first.flush().is_err(), "a failed sync closes the log");
    storage.fail_syncs(false);
    drop(first);
    let log_file = format!("{DIR}/00000000000000000000.log");
    let mut torn = storage.read_file(&log_file).unwrap();
    torn.extend_from_slice(&[0xAB; 40]);
    storage.write_file(&log_file, &torn);

    let second = Partition::open_with_env(DIR, config(), env(&storage)).unwrap();
    assert_eq!(read_offsets(&second), (0..100).collect::<Vec<_>>());
    assert_eq!(storage.file_len(&log_file), Some(torn.len() as u64 - 40));
    assert_intact(&held);
    assert_eq!(second.append(Record::new(value(100))).unwrap(), 100);
}
