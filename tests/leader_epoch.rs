//! Leader epochs in the partition log: leader appends stamp the latest epoch, follower
//! appends record the epochs of the batches they copy, truncation and a moving log start
//! trim them, and `leader-epoch-checkpoint` keeps them across restarts — rebuilt from the
//! batch headers when it is lost (Kafka's `UnifiedLogTest`, `LogLoaderTest` and
//! `PartitionTest` epoch behaviours).

use streamlog::{
    EpochEntry, Error, LogConfig, Partition, ReadBound, ReadOptions, Record, RecordBatch,
};

fn open(dir: &std::path::Path) -> Partition {
    Partition::open(dir, LogConfig::default().segment_bytes(4096)).unwrap()
}

fn values(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| Record::new(format!("value-{i}").into_bytes()))
        .collect()
}

/// Every stored batch from `offset`: (base offset, partition leader epoch, bytes).
fn batches(log: &Partition, offset: u64) -> Vec<(u64, i32, Vec<u8>)> {
    let mut records = log
        .read(offset, ReadOptions::default().bound(ReadBound::LogEnd))
        .unwrap();
    let mut out = Vec::new();
    while let Some(batch) = records.next_batch() {
        let bytes = batch.unwrap().to_vec();
        let header = *RecordBatch::parse(&bytes).unwrap().header();
        out.push((
            header.base_offset as u64,
            header.partition_leader_epoch,
            bytes,
        ));
    }
    out
}

fn entries(log: &Partition) -> Vec<(i32, u64)> {
    log.leader_epochs()
        .iter()
        .map(|e: &EpochEntry| (e.epoch, e.start_offset))
        .collect()
}

/// A leader log starting at 104 with epochs 0@104, 1@106, 2@110 (UnifiedLogTest's example).
fn leader_with_three_epochs(dir: &std::path::Path) -> Partition {
    let log = open(dir);
    log.truncate_fully_and_start_at(104).unwrap();
    for (epoch, count) in [(0, 2), (1, 4), (2, 1)] {
        log.assign_leader_epoch(epoch).unwrap();
        log.append_batch(values(count)).unwrap();
    }
    log
}

#[test]
fn leader_appends_carry_the_latest_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.append(Record::new(b"before".to_vec())).unwrap();
    log.assign_leader_epoch(3).unwrap();
    log.append_batch(values(2)).unwrap();
    log.assign_leader_epoch(5).unwrap();
    log.append(Record::new(b"later".to_vec())).unwrap();
    let stamped: Vec<(u64, i32)> = batches(&log, 0).iter().map(|b| (b.0, b.1)).collect();
    assert_eq!(stamped, [(0, -1), (1, 3), (3, 5)]);
    assert_eq!(entries(&log), [(3, 1), (5, 3)]);
    assert_eq!(log.latest_epoch(), Some(5));
}

#[test]
fn a_producers_batch_gets_the_leaders_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let other = open(&dir.path().join("other"));
    other.assign_leader_epoch(9).unwrap();
    other.append_batch(values(3)).unwrap();
    let (_, epoch, bytes) = batches(&other, 0).remove(0);
    assert_eq!(epoch, 9);
    let log = open(&dir.path().join("leader"));
    log.assign_leader_epoch(2).unwrap();
    assert_eq!(log.append_encoded(&bytes).unwrap(), 0..3);
    assert_eq!(batches(&log, 0)[0].1, 2);
    let unreplicated = open(&dir.path().join("plain"));
    unreplicated.append_encoded(&bytes).unwrap();
    assert_eq!(
        batches(&unreplicated, 0)[0].1,
        -1,
        "no epoch: the field says none"
    );
}

#[test]
fn becoming_leader_records_the_epoch_at_the_log_end() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.append_batch(values(4)).unwrap();
    log.assign_leader_epoch(8).unwrap();
    assert_eq!(log.end_offset_for_epoch(8), Some((8, 4)));
    assert_eq!(log.end_offset_for_epoch(7), Some((7, 4)));
    assert_eq!(log.end_offset_for_epoch(9), None);
    // Assigning the same epoch again, later, changes nothing.
    log.append(Record::new(b"x".to_vec())).unwrap();
    log.assign_leader_epoch(8).unwrap();
    assert_eq!(entries(&log), [(8, 4)]);
    assert_eq!(log.end_offset_for_epoch(8), Some((8, 5)));
}

#[test]
fn truncating_at_the_log_end_drops_an_epoch_with_no_records() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.assign_leader_epoch(19).unwrap();
    log.append_batch(values(27)).unwrap();
    log.assign_leader_epoch(20).unwrap();
    assert_eq!(entries(&log), [(19, 0), (20, 27)]);
    assert_eq!(log.truncate_to(27).unwrap(), 27);
    assert_eq!(entries(&log), [(19, 0)]);
}

#[test]
fn followers_record_the_epochs_of_the_batches_they_copy() {
    let dir = tempfile::tempdir().unwrap();
    let leader = leader_with_three_epochs(&dir.path().join("leader"));
    assert_eq!(entries(&leader), [(0, 104), (1, 106), (2, 110)]);
    let follower = open(&dir.path().join("follower"));
    follower.truncate_fully_and_start_at(104).unwrap();
    for (_, _, bytes) in batches(&leader, 104) {
        follower.append_as_follower(&bytes).unwrap();
    }
    assert_eq!(entries(&follower), [(0, 104), (1, 106), (2, 110)]);
    assert_eq!(follower.end_offset_for_epoch(1), Some((1, 110)));
    assert_eq!(follower.end_offset_for_epoch(2), Some((2, 111)));
    // Older epochs in later batches (never sent by a correct leader) change nothing.
    let stale = batches(&leader, 104).remove(0).2;
    let other = open(&dir.path().join("other"));
    other.truncate_fully_and_start_at(104).unwrap();
    let all: Vec<u8> = batches(&leader, 104)
        .into_iter()
        .flat_map(|b| b.2)
        .collect();
    other.append_as_follower(&all).unwrap();
    assert_eq!(entries(&other), entries(&follower));
    assert!(
        follower.append_as_follower(&stale).is_err(),
        "offsets behind the log end"
    );
    assert_eq!(entries(&follower), [(0, 104), (1, 106), (2, 110)]);
}

#[test]
fn truncation_and_a_moving_log_start_trim_the_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let log = leader_with_three_epochs(dir.path());
    assert_eq!(log.delete_records_before(107).unwrap(), 107);
    assert_eq!(entries(&log), [(1, 107), (2, 110)]);
    assert_eq!(log.truncate_to(110).unwrap(), 110);
    assert_eq!(entries(&log), [(1, 107)]);
    assert_eq!(log.latest_epoch(), Some(1));
    // The batch holding 108 began before the log start: cut whole, nothing is left.
    assert_eq!(log.truncate_to(108).unwrap(), 107);
    assert_eq!(entries(&log), []);
    // Truncating below the log start starts over: no epochs are left.
    assert_eq!(log.truncate_to(50).unwrap(), 50);
    assert_eq!(entries(&log), []);
    assert_eq!(log.latest_epoch(), None);
}

#[test]
fn truncate_fully_and_start_at_forgets_everything_before() {
    let dir = tempfile::tempdir().unwrap();
    let log = leader_with_three_epochs(dir.path());
    assert_eq!(log.truncate_fully_and_start_at(500).unwrap(), 500);
    assert_eq!(
        (
            log.log_start_offset(),
            log.log_end_offset(),
            log.high_watermark()
        ),
        (500, 500, 500)
    );
    assert_eq!(entries(&log), []);
    assert_eq!(log.read_from(500).unwrap().count(), 0);
    assert!(matches!(
        log.read_from(499),
        Err(Error::OffsetOutOfRange { .. })
    ));
    assert_eq!(log.append(Record::new(b"x".to_vec())).unwrap(), 500);
    drop(log);
    let log = open(dir.path());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (500, 501));
}

#[test]
fn epochs_survive_a_restart_in_kafkas_text_format() {
    let dir = tempfile::tempdir().unwrap();
    leader_with_three_epochs(dir.path()).close().unwrap();
    let text = std::fs::read_to_string(dir.path().join("leader-epoch-checkpoint")).unwrap();
    assert_eq!(text, "0\n3\n0 104\n1 106\n2 110\n");
    let log = open(dir.path());
    assert_eq!(entries(&log), [(0, 104), (1, 106), (2, 110)]);
}

#[test]
fn a_lost_or_damaged_checkpoint_is_rebuilt_from_the_batches() {
    let dir = tempfile::tempdir().unwrap();
    leader_with_three_epochs(dir.path()).close().unwrap();
    let path = dir.path().join("leader-epoch-checkpoint");
    for damage in [
        None,
        Some("0\n7\n1 2\n"),
        Some("garbage"),
        Some("0\n2\n5 9\n1 3\n"),
    ] {
        match damage {
            None => std::fs::remove_file(&path).unwrap(),
            Some(text) => std::fs::write(&path, text).unwrap(),
        }
        let log = open(dir.path());
        assert_eq!(
            entries(&log),
            [(0, 104), (1, 106), (2, 110)],
            "after {damage:?}"
        );
        drop(log);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text, "0\n3\n0 104\n1 106\n2 110\n",
            "rewritten after {damage:?}"
        );
    }
}

#[test]
fn epochs_past_the_recovered_log_end_are_dropped_on_open() {
    let dir = tempfile::tempdir().unwrap();
    leader_with_three_epochs(dir.path()).close().unwrap();
    // As if the epoch file had run ahead of data lost in a crash.
    std::fs::write(
        dir.path().join("leader-epoch-checkpoint"),
        "0\n4\n0 104\n1 106\n2 110\n3 200\n",
    )
    .unwrap();
    let log = open(dir.path());
    assert_eq!(entries(&log), [(0, 104), (1, 106), (2, 110)]);
}

#[test]
fn a_negative_epoch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    assert!(matches!(
        log.assign_leader_epoch(-1),
        Err(Error::InvalidConfig { .. })
    ));
    assert_eq!(log.latest_epoch(), None);
}
