//! Interop with kafka-python, an independent implementation of Kafka's record format:
//! segment files we write (every codec) are read back by it with CRC checks, and batches it
//! builds (every codec) are accepted and read by us. `scripts/test` installs kafka-python
//! and sets `STREAMLOG_REQUIRE_INTEROP=1`, which makes a missing Python a failure instead
//! of a skip.

use std::path::Path;
use std::process::Command;

use streamlog::{Compression, LogConfig, LogRecord, Partition, Record};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/kafka_python.py");

/// Whether kafka-python can run here; panics if it is required and missing.
fn python_ready() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import kafka, snappy, lz4, zstandard"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok && std::env::var_os("STREAMLOG_REQUIRE_INTEROP").is_some() {
        panic!("kafka-python (with python-snappy, lz4, zstandard) is required but missing");
    }
    if !ok {
        eprintln!("skipped: kafka-python not installed (scripts/test installs it)");
    }
    ok
}

fn python(args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg(SCRIPT)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kafka-python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn hex(bytes: Option<&[u8]>) -> String {
    bytes.map_or_else(
        || "-".into(),
        |b| b.iter().map(|x| format!("{x:02x}")).collect(),
    )
}

/// The line kafka_python.py prints for a record.
fn line(
    offset: u64,
    timestamp: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[(String, Option<Vec<u8>>)],
) -> String {
    let headers: Vec<String> = headers
        .iter()
        .map(|(k, v)| format!("{k}={}", hex(v.as_deref())))
        .collect();
    let headers = if headers.is_empty() {
        "-".into()
    } else {
        headers.join(",")
    };
    format!("{offset} {timestamp} {} {} {headers}", hex(key), hex(value))
}

fn log_record_line(r: &LogRecord) -> String {
    let headers: Vec<_> = r
        .headers()
        .iter()
        .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
        .collect();
    line(r.offset(), r.timestamp(), r.key(), r.value(), &headers)
}

fn sample(batch: u64) -> Vec<Record> {
    (0..7)
        .map(|i| {
            let mut r = Record::new(format!("v{batch}-{i}").repeat(i + 1).into_bytes())
                .with_timestamp(1_600_000_000_000 + (batch * 10 + i as u64) as i64);
            if i % 3 != 0 {
                r = r.with_key(format!("k{i}").into_bytes());
            }
            if i == 4 {
                r = r.with_value(None);
            }
            if i % 2 == 1 {
                r = r
                    .with_header("trace", Some(vec![i as u8; 3]))
                    .with_header("empty", None);
            }
            r
        })
        .collect()
}

#[test]
fn kafka_python_reads_the_segments_we_write_for_every_codec() {
    if !python_ready() {
        return;
    }
    for (n, codec) in Compression::ALL.into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let log = Partition::open(dir.path(), LogConfig::default().compression(codec)).unwrap();
        let mut expected = Vec::new();
        for batch in 0..3 {
            let records = sample(batch + n as u64);
            let offsets = log.append_records(&records).unwrap();
            for (offset, r) in offsets.zip(&records) {
                let headers: Vec<_> = r
                    .headers()
                    .iter()
                    .map(|h| (h.key.clone(), h.value.clone()))
                    .collect();
                expected.push(line(
                    offset,
                    r.timestamp().unwrap(),
                    r.key(),
                    r.value(),
                    &headers,
                ));
            }
        }
        log.close().unwrap();
        let file = dir.path().join("00000000000000000000.log");
        let printed = python(&["decode", file.to_str().unwrap()]);
        assert_eq!(printed.lines().collect::<Vec<_>>(), expected, "{codec:?}");
    }
}

#[test]
fn we_read_the_batches_kafka_python_writes_for_every_codec() {
    if !python_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open(dir.path().join("log"), LogConfig::default()).unwrap();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let path = dir.path().join(format!("{codec}.batch"));
        python(&["encode", codec, path.to_str().unwrap()]);
        let bytes = std::fs::read(&path).unwrap();
        let offsets = log
            .append_encoded(&bytes)
            .unwrap_or_else(|e| panic!("{codec}: {e}"));
        assert_eq!(offsets.end - offsets.start, 5, "{codec}");
    }
    let ours: Vec<String> = log
        .read_from(0)
        .unwrap()
        .map(|r| log_record_line(&r.unwrap()))
        .collect();
    assert_eq!(ours.len(), 25);
    // Read the same file back with kafka-python: both readers agree on every record.
    log.close().unwrap();
    let file = dir.path().join("log").join("00000000000000000000.log");
    let theirs = python(&["decode", file.to_str().unwrap()]);
    assert_eq!(ours, theirs.lines().collect::<Vec<_>>());
    assert!(Path::new(&file).exists());
}
