//! Real process crashes: the test re-executes its own binary as a child that appends with
//! `FlushPolicy::Always` on real files and prints every acknowledged append, kills it with
//! SIGKILL after a random short time, reopens the log and checks that every acknowledged
//! record is there with the right content and that the log is a valid prefix (contiguous
//! offsets from 0, every record's content matching the deterministic formula, each appending
//! thread's records in order without gaps).
//!
//! `STREAMLOG_CRASH_TRIALS=<n>` raises the number of trials (default 60).
//!
//! Protocol: the child is this binary run as `<exe> --exact child_appender --nocapture`
//! with `STREAMLOG_CRASH_CHILD=<dir>`; without that variable `child_appender` returns at
//! once. The child prints `\nREADY\n` once the log is open (the harness may have printed
//! part of a line before), then one line per acknowledged
//! append: `ACK <life> <thread> <first seq> <count> <first offset>\n`. A line without its
//! newline (cut by the kill) is not an acknowledgement.

mod common;

use common::Rng;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use streamlog::{FlushPolicy, LogConfig, Partition, Record};

const CHILD_ENV: &str = "STREAMLOG_CRASH_CHILD";
const THREADS_ENV: &str = "STREAMLOG_CRASH_CHILD_THREADS";
const LIFE_ENV: &str = "STREAMLOG_CRASH_CHILD_LIFE";
const TRIALS_ENV: &str = "STREAMLOG_CRASH_TRIALS";

/// How long a child appends if nobody kills it (a safety net only).
const CHILD_MAX_RUN: Duration = Duration::from_secs(20);

fn config() -> LogConfig {
    LogConfig::default()
        .segment_bytes(16 << 10)
        .segment_index_bytes(1024)
        .index_interval_bytes(512)
        .flush_policy(FlushPolicy::Always)
}

/// The content of the record that thread `thread` of child life `life` appends as its
/// `seq`th record.
fn expected_record(life: u64, thread: u64, seq: u64) -> Record {
    let len = 8 + ((life * 31 + thread * 7919 + seq * 104_729) % 193) as usize;
    let mut value = format!("{life}:{thread}:{seq}:").into_bytes();
    while value.len() < len {
        value.push(b'a' + ((seq + thread + value.len() as u64) % 26) as u8);
    }
    Record::new(value)
        .with_key(format!("{life}/{thread}/{seq}").into_bytes())
        .with_timestamp(1_700_000_000_000 + seq as i64)
        .with_header("thread", Some(thread.to_be_bytes().to_vec()))
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// The child: appends forever (until killed), printing each acknowledged append.
#[test]
fn child_appender() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let threads = env_u64(THREADS_ENV).unwrap_or(1);
    let life = env_u64(LIFE_ENV).unwrap_or(0);
    let log = Partition::open(&dir, config()).expect("child: open");
    {
        let mut out = std::io::stdout().lock();
        out.write_all(b"\nREADY\n").expect("child: stdout");
        out.flush().expect("child: stdout");
    }
    let started = Instant::now();
    std::thread::scope(|s| {
        for thread in 0..threads {
            let log = &log;
            s.spawn(move || {
                let mut seq = 0u64;
                let mut i = 0u64;
                while started.elapsed() < CHILD_MAX_RUN {
                    let count = if i % 3 == 2 { 1 + (i / 3) % 4 } else { 1 };
                    let records: Vec<Record> = (seq..seq + count)
                        .map(|s| expected_record(life, thread, s))
                        .collect();
                    let first = if count == 1 {
                        log.append(records[0].clone()).expect("child: append")
                    } else {
                        log.append_batch(records).expect("child: append").start
                    };
                    let line = format!("ACK {life} {thread} {seq} {count} {first}\n");
                    let mut out = std::io::stdout().lock();
                    out.write_all(line.as_bytes()).expect("child: stdout");
                    out.flush().expect("child: stdout");
                    seq += count;
                    i += 1;
                }
            });
        }
    });
}

/// An acknowledged record: which life, thread and sequence number it is.
type Ack = (u64, u64, u64);

/// Runs one child life on `dir`, kills it, and returns its acknowledgements by offset.
fn run_child(
    dir: &Path,
    life: u64,
    threads: u64,
    rng: &mut Rng,
    log_path: &Path,
) -> Vec<(u64, Ack)> {
    let exe = std::env::current_exe().expect("current_exe");
    let stderr = File::create(log_path).expect("child stderr file");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "child_appender",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir)
        .env(THREADS_ENV, threads.to_string())
        .env(LIFE_ENV, life.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        loop {
            let mut line = Vec::new();
            match stdout.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });
    // When to kill: shortly after spawning (maybe while it opens and recovers), a random
    // 5-60 ms after it is ready, or after a random number of acknowledgements.
    let mode = rng.range(0, 9);
    let spawned = Instant::now();
    let mut lines = Vec::new();
    let mut ready_at = None;
    let mut acks = 0u64;
    let delay = Duration::from_millis(rng.range(5, 60));
    let early = Duration::from_millis(rng.range(0, 15));
    let ack_target = rng.range(1, 300);
    let deadline = spawned + Duration::from_secs(10);
    loop {
        let now = Instant::now();
        let due = match mode {
            0 => now >= spawned + early,
            1..=5 => ready_at.is_some_and(|r: Instant| now >= r + delay),
            _ => acks >= ack_target,
        };
        if due || now >= deadline {
            break;
        }
        let wait = Duration::from_millis(1);
        match rx.recv_timeout(wait) {
            Ok(line) => {
                if line == b"READY\n" && ready_at.is_none() {
                    ready_at = Some(Instant::now());
                }
                if line.starts_with(b"ACK ") {
                    acks += 1;
                }
                lines.push(line);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    if let Ok(Some(status)) = child.try_wait() {
        let log = std::fs::read_to_string(log_path).unwrap_or_default();
        panic!("child exited by itself before the kill ({status}); its stderr:\n{log}");
    }
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
    reader.join().expect("reader thread");
    lines.extend(rx.try_iter());
    let mut out = Vec::new();
    for line in lines {
        // Only complete lines are acknowledgements.
        let Some(text) = line.strip_suffix(b"\n") else {
            continue;
        };
        let text = String::from_utf8_lossy(text);
        let Some(rest) = text.strip_prefix("ACK ") else {
            continue;
        };
        let f: Vec<u64> = rest
            .split(' ')
            .map(|x| {
                x.parse()
                    .unwrap_or_else(|_| panic!("bad ack line {text:?}"))
            })
            .collect();
        let [l, t, s, count, first] = f[..] else {
            panic!("bad ack line {text:?}");
        };
        assert_eq!(l, life, "ack from another life: {text:?}");
        for i in 0..count {
            out.push((first + i, (l, t, s + i)));
        }
    }
    out
}

/// Reopens the log in `dir` and checks it against every acknowledgement so far. Returns
/// the log end offset.
fn verify(dir: &Path, acked: &BTreeMap<u64, Ack>, ctx: &str) -> u64 {
    let log = Partition::open(dir, config())
        .unwrap_or_else(|e| panic!("{ctx}: reopen after SIGKILL failed: {e:?}"));
    assert_eq!(log.log_start_offset(), 0, "{ctx}");
    let leo = log.log_end_offset();
    if let Some((&last, _)) = acked.last_key_value() {
        assert!(
            leo > last,
            "{ctx}: acknowledged offset {last} missing: log end is {leo}"
        );
    }
    // Each (life, thread) appends in order: its sequence numbers must run 0, 1, 2, ...
    let mut next_seq: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    let mut offset = 0u64;
    for item in log.read_to_log_end(0).expect("read_to_log_end") {
        let record = item.unwrap_or_else(|e| panic!("{ctx}: reading offset {offset}: {e:?}"));
        assert_eq!(record.offset(), offset, "{ctx}: offsets not contiguous");
        let key = String::from_utf8_lossy(record.key().unwrap_or_default()).into_owned();
        let parts: Vec<u64> = key.split('/').filter_map(|p| p.parse().ok()).collect();
        let [life, thread, seq] = parts[..] else {
            panic!("{ctx}: offset {offset} has a key {key:?} no child wrote");
        };
        let want = expected_record(life, thread, seq);
        assert_eq!(
            record.value(),
            want.value(),
            "{ctx}: value at offset {offset}"
        );
        assert_eq!(
            Some(record.timestamp()),
            want.timestamp(),
            "{ctx}: timestamp at offset {offset}"
        );
        assert_eq!(
            record.owned_headers(),
            want.headers(),
            "{ctx}: headers at offset {offset}"
        );
        let expected_seq = next_seq.entry((life, thread)).or_insert(0);
        assert_eq!(
            seq, *expected_seq,
            "{ctx}: offset {offset}: life {life} thread {thread} skipped or repeated records"
        );
        *expected_seq += 1;
        if let Some(ack) = acked.get(&offset) {
            assert_eq!(
                *ack,
                (life, thread, seq),
                "{ctx}: offset {offset} holds another record than the acknowledged one"
            );
        }
        offset += 1;
    }
    assert_eq!(offset, leo, "{ctx}: read {offset} records, log end {leo}");
    log.close().expect("close after verify");
    leo
}

#[test]
fn sigkill_never_loses_an_acknowledged_record() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let trials = env_u64(TRIALS_ENV).unwrap_or(60);
    let root = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng::new(0xC4A5_4000);
    let mut dirs = 0u64;
    let mut dir = root.path().join("p-0");
    let mut life = 0u64;
    let mut acked: BTreeMap<u64, Ack> = BTreeMap::new();
    let mut total_acks = 0u64;
    let mut records_checked = 0u64;
    let started = Instant::now();
    let mut lives_here = rng.range(1, 4);
    let mut unverified = false;
    for trial in 0..trials {
        // Keep a directory for a few lives (each recovering from the previous kill), then
        // start a fresh one.
        if life >= lives_here {
            if unverified {
                let ctx = format!("dir {dirs} before moving on");
                records_checked += verify(&dir, &acked, &ctx);
            }
            dirs += 1;
            dir = root.path().join(format!("p-{dirs}"));
            life = 0;
            lives_here = rng.range(1, 4);
            acked.clear();
        }
        let threads = match trial % 3 {
            0 => 1,
            _ => rng.range(2, 4),
        };
        let ctx = format!("trial {trial} (dir {dirs}, life {life}, {threads} threads)");
        let stderr = root.path().join(format!("child-{trial}.stderr"));
        let got = run_child(&dir, life, threads, &mut rng, &stderr);
        total_acks += got.len() as u64;
        for (offset, ack) in got {
            if let Some(previous) = acked.insert(offset, ack) {
                panic!("{ctx}: offset {offset} acknowledged twice: {previous:?} and {ack:?}");
            }
        }
        // Usually verify now; sometimes let the next child recover from the kill itself.
        unverified = true;
        if rng.range(0, 3) != 0 || trial + 1 == trials {
            records_checked += verify(&dir, &acked, &ctx);
            unverified = false;
        }
        life += 1;
    }
    eprintln!(
        "SIGKILL trials: {trials}, acknowledged records checked: {total_acks}, records read back: {records_checked}, in {:?}",
        started.elapsed()
    );
}
