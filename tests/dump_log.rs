//! The `dump_log` example (like `kafka-dump-log`) on a real log: `--verify` says ok for
//! intact files and names the first corrupt byte otherwise, with exit status 1.
//!
//! Runs the example binary `cargo test` builds beside the test binaries.

use std::path::{Path, PathBuf};
use std::process::Command;

use streamlog::{LogConfig, Partition, Record};

/// `target/<profile>/examples/dump_log`, next to `target/<profile>/deps/<this test>`.
fn dump_log() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let tool = profile.join("examples").join("dump_log");
    assert!(
        tool.exists(),
        "{} is missing: `cargo test` builds the examples (or run `cargo build --example dump_log`)",
        tool.display()
    );
    tool
}

/// Runs `dump_log --verify file`: (succeeded, stdout).
fn verify(file: &Path) -> (bool, String) {
    let out = Command::new(dump_log())
        .arg("--verify")
        .arg(file)
        .output()
        .expect("run dump_log");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn verify_passes_intact_files_and_names_the_first_corrupt_byte() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::default().index_interval_bytes(100);
    let log = Partition::open(dir.path(), config).unwrap();
    for i in 0..20u8 {
        log.append_batch(vec![Record::new(vec![i; 50]), Record::new(vec![i; 60])])
            .unwrap();
    }
    log.close().unwrap();
    let file = |ext: &str| dir.path().join(format!("{:020}.{ext}", 0));
    for ext in ["log", "index", "timeindex"] {
        let (ok, out) = verify(&file(ext));
        assert!(ok, "{ext}: {out}");
        assert!(out.contains("ok:"), "{ext}: {out}");
    }

    // An index entry after an all-zero slot: the index's own sanity check refuses it.
    let mut index = std::fs::read(file("index")).unwrap();
    let entries = index.len() / 8;
    assert!(entries >= 3, "{entries} entries");
    let last = index[(entries - 1) * 8..].to_vec();
    index[(entries - 2) * 8..(entries - 1) * 8].fill(0);
    index.extend_from_slice(&[0; 8]);
    index.extend_from_slice(&last);
    std::fs::write(file("index"), &index).unwrap();
    let (ok, out) = verify(&file("index"));
    assert!(!ok, "{out}");
    assert!(out.contains("follows the unused"), "{out}");

    // A flipped byte in a record: the batch's CRC no longer matches.
    let mut segment = std::fs::read(file("log")).unwrap();
    let at = segment.len() - 10;
    segment[at] ^= 0xff;
    std::fs::write(file("log"), &segment).unwrap();
    let (ok, out) = verify(&file("log"));
    assert!(!ok, "{out}");
    assert!(out.contains("corrupt at position"), "{out}");
}
