//! `__consumer_offsets` through the public API (issue 5, item 3; S18): commits and fetches,
//! typed errors on bad input with nothing written, a failed append leaving the cache
//! alone, everything restored by replaying the log after a reopen, Kafka's bytes in the
//! log, tombstones through compaction, offset expiry (KAFKA-TESTS-CLUSTER.md § 9), damaged
//! segment files recovered like any log, and decoders that never panic.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use streamlog::group::offsets::{CONSUMER_OFFSETS_TOPIC, MAX_GROUP_ID_BYTES};
use streamlog::{
    Broker, BrokerConfig, Env, Error, GroupActivity, GroupMetadata, ManualClock, MemberMetadata,
    OffsetAndMetadata, OffsetsConfig, OffsetsKey, OffsetsRecord, OffsetsStore, Record,
    RecordFormatError, SimStorage, java_string_hash_code, partition_for_group,
};

const DATA: &str = "/data";
const NOW_MS: i64 = 1_700_000_000_000;

fn quiet() -> BrokerConfig {
    BrokerConfig::default().background_threads(false)
}

/// A few partitions with small index files (the simulated disk keeps every preallocated
/// index byte in memory).
fn small(partitions: u32) -> OffsetsConfig {
    OffsetsConfig::default()
        .num_partitions(partitions)
        .segment_index_bytes(4096)
}

fn open_sim(sim: &SimStorage, clock: &ManualClock) -> Broker {
    let env = Env {
        storage: Arc::new(sim.clone()),
        clock: Arc::new(clock.clone()),
    };
    Broker::open_with_env(DATA, quiet(), env).unwrap()
}

fn at(offset: u64) -> OffsetAndMetadata {
    OffsetAndMetadata::new(offset, NOW_MS)
}

fn group_metadata(generation: i32) -> GroupMetadata {
    let mut member = MemberMetadata::new("m-1", "client-1", "/127.0.0.1", 30_000, 10_000);
    member.subscription = b"orders".to_vec();
    member.assignment = vec![0, 1, 2];
    GroupMetadata {
        protocol_type: "consumer".into(),
        generation,
        protocol: Some("range".into()),
        leader: Some("m-1".into()),
        current_state_timestamp: Some(NOW_MS),
        members: vec![member],
    }
}

/// Every group's metadata and offsets, as the store holds them.
type Snapshot = BTreeMap<
    String,
    (
        Option<GroupMetadata>,
        BTreeMap<(String, u32), OffsetAndMetadata>,
    ),
>;

fn snapshot(store: &OffsetsStore) -> Snapshot {
    store
        .groups()
        .into_iter()
        .map(|g| {
            let state = (store.group(&g), store.fetch_all(&g));
            (g, state)
        })
        .collect()
}

fn log_end(broker: &Broker, partition: u32) -> u64 {
    let topic = broker.topic(CONSUMER_OFFSETS_TOPIC).unwrap();
    topic.partition(partition).unwrap().log_end_offset()
}

#[test]
fn open_creates_a_compacted_internal_topic_with_fifty_partitions() {
    let (sim, clock) = (SimStorage::new(), ManualClock::new(NOW_MS));
    let broker = open_sim(&sim, &clock);
    let store = OffsetsStore::open(&broker, OffsetsConfig::default()).unwrap();
    assert_eq!(store.partition_count(), 50);
    let description = broker.describe_topic(CONSUMER_OFFSETS_TOPIC).unwrap();
    assert_eq!(description.partitions.len(), 50);
    let log = description.config.log_config().clone();
    assert_eq!(log.cleanup_policy, streamlog::CleanupPolicy::Compact);
    assert_eq!(log.segment_bytes, 8 << 20);
    assert_eq!(store.partition_for("foo"), 101_574 % 50);
    // A second store on the same broker finds the topic instead of creating it.
    let again = OffsetsStore::open(&broker, OffsetsConfig::default().num_partitions(3)).unwrap();
    assert_eq!(again.partition_count(), 50);
    // Applications cannot create or shadow it.
    let err = broker
        .create_topic(CONSUMER_OFFSETS_TOPIC, Default::default())
        .unwrap_err();
    assert!(matches!(err, Error::InvalidTopicName { .. }), "{err}");
    let err =
        OffsetsStore::open(&broker, OffsetsConfig::default().retention_minutes(0)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidConfig {
                name: "offsets.retention.minutes",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn commit_then_fetch_and_fetch_all() {
    let (sim, clock) = (SimStorage::new(), ManualClock::new(NOW_MS));
    let broker = open_sim(&sim, &clock);
    let store = OffsetsStore::open(&broker, small(10)).unwrap();
    assert_eq!(
        broker
            .describe_topic(CONSUMER_OFFSETS_TOPIC)
            .unwrap()
            .partitions
            .len(),
        10
    );

    // Never committed: nothing, and an empty map for a fresh group.
    assert_eq!(store.fetch("foo", "orders", 0), None);
    assert!(store.fetch_all("foo").is_empty());

    let committed = at(97).with_leader_epoch(15).with_metadata("some metadata");
    store
        .commit(
            "foo",
            [("orders", 0, committed.clone()), ("orders", 1, at(5))],
        )
        .unwrap();
    assert_eq!(store.fetch("foo", "orders", 0), Some(committed.clone()));
    assert_eq!(store.fetch("foo", "orders", 2), None);
    assert_eq!(store.fetch("bar", "orders", 0), None);
    let all = store.fetch_all("foo");
    assert_eq!(all.len(), 2);
    assert_eq!(all[&("orders".to_string(), 1)], at(5));

    // A later commit replaces; the group's records all sit on its partition ("foo" → 4).
    store.commit("foo", [("orders", 0, at(100))]).unwrap();
    assert_eq!(store.fetch("foo", "orders", 0).unwrap().offset, 100);
    assert_eq!(store.partition_for("foo"), 4);
    assert_eq!(log_end(&broker, 4), 3);
    assert_eq!((0..10).map(|p| log_end(&broker, p)).sum::<u64>(), 3);
    assert_eq!(store.groups(), ["foo"]);

    // An empty commit writes nothing.
    store
        .commit("foo", Vec::<(String, u32, OffsetAndMetadata)>::new())
        .unwrap();
    assert_eq!(log_end(&broker, 4), 3);
}

#[test]
fn the_log_holds_kafkas_bytes() {
    let (sim, clock) = (SimStorage::new(), ManualClock::new(NOW_MS));
    let broker = open_sim(&sim, &clock);
    let store = OffsetsStore::open(&broker, small(10)).unwrap();
    store
        .commit(
            "foo",
            [(
                "t",
                3,
                OffsetAndMetadata::new(97, 1000).with_leader_epoch(15),
            )],
        )
        .unwrap();
    store.store_group("foo", &group_metadata(1)).unwrap();
    let log = broker
        .topic(CONSUMER_OFFSETS_TOPIC)
        .unwrap()
        .partition(4)
        .unwrap();
    let records: Vec<_> = log.read_from(0).unwrap().map(Result::unwrap).collect();
    assert_eq!(records.len(), 2);
    // OffsetCommitKey: version 1, "foo", "t", partition 3.
    let key = [0, 1, 0, 3, b'f', b'o', b'o', 0, 1, b't', 0, 0, 0, 3];
    assert_eq!(records[0].key(), Some(&key[..]));
    // OffsetCommitValue v3: offset 97, epoch 15, "" metadata, commit time 1000.
    let value = [
        0, 3, 0, 0, 0, 0, 0, 0, 0, 97, 0, 0, 0, 15, 0, 0, 0, 0, 0, 0, 0, 0, 0x03, 0xe8,
    ];
    assert_eq!(records[0].value(), Some(&value[..]));
    assert_eq!(records[1].key(), Some(&[0, 2, 0, 3, b'f', b'o', b'o'][..]));
    let stored = GroupMetadata::decode(records[1].value().unwrap()).unwrap();
    assert_eq!(stored, group_metadata(1));
    assert_eq!(records[1].value().unwrap()[..2], [0, 3]);
}

#[test]
fn bad_input_is_a_typed_error_and_writes_nothing() {
    let (sim, clock) = (SimStorage::new(), ManualClock::new(NOW_MS));
    let broker = open_sim(&sim, &clock);
    let store = OffsetsStore::open(&broker, small(3)).unwrap();
    let total = |b: &Broker| (0..3).map(|p| log_end(b, p)).sum::<u64>();

    let err = store.commit("", [("t", 0, at(1))]).unwrap_err();
    assert!(
        matches!(err, Error::InvalidGroupId { ref group, .. } if group.is_empty()),
        "{err}"
    );
    let long = "g".repeat(MAX_GROUP_ID_BYTES + 1);
    let err = store.commit(&long, [("t", 0, at(1))]).unwrap_err();
    assert!(matches!(err, Error::InvalidGroupId { .. }), "{err}");
    let err = store.store_group("", &group_metadata(1)).unwrap_err();
    assert!(matches!(err, Error::InvalidGroupId { .. }), "{err}");
    assert!(matches!(
        store.delete_group(""),
        Err(Error::InvalidGroupId { .. })
    ));

    // Metadata over offset.metadata.max.bytes (4096): nothing of the batch is stored.
    let big = at(1).with_metadata("x".repeat(4097));
    let err = store
        .commit("g", [("t", 0, at(1)), ("t", 1, big)])
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::OffsetMetadataTooLarge {
                size: 4097,
                max: 4096
            }
        ),
        "{err}"
    );
    assert_eq!(store.fetch("g", "t", 0), None);

    let err = store.commit("g", [("bad topic!", 0, at(1))]).unwrap_err();
    assert!(matches!(err, Error::InvalidTopicName { .. }), "{err}");
    let err = store.commit("g", [("t", u32::MAX, at(1))]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::OffsetsRecordFormat(RecordFormatError::ValueTooLarge {
                field: "partition",
                ..
            })
        ),
        "{err}"
    );
    let err = store.commit("g", [("t", 0, at(u64::MAX))]).unwrap_err();
    assert!(matches!(err, Error::OffsetsRecordFormat(_)), "{err}");
    let mut huge = group_metadata(1);
    huge.members[0].client_id = "c".repeat(40_000);
    let err = store.store_group("g", &huge).unwrap_err();
    assert!(
        matches!(
            err,
            Error::OffsetsRecordFormat(RecordFormatError::TooLong { .. })
        ),
        "{err}"
    );

    assert_eq!(total(&broker), 0, "nothing reached the log");
    assert!(store.groups().is_empty());

    // The limits themselves are accepted.
    let max_group = "g".repeat(MAX_GROUP_ID_BYTES);
    store
        .commit(
            &max_group,
            [("t", 0, at(1).with_metadata("x".repeat(4096)))],
        )
        .unwrap();
    assert_eq!(
        store.fetch(&max_group, "t", 0).unwrap().metadata.len(),
        4096
    );
}

#[test]
fn a_failed_append_leaves_the_cache_unchanged() {
    let (sim, clock) = (SimStorage::new(), ManualClock::new(NOW_MS));
    let broker = open_sim(&sim, &clock);
    let store = OffsetsStore::open(&broker, small(3)).unwrap();
    store.commit("g", [("t", 0, at(10))]).unwrap();
    store.store_group("g", &group_metadata(1)).unwrap();
    let before = snapshot(&store);

    sim.fail_writes(true);
    let err = store
        .commit("g", [("t", 0, at(11)), ("t", 1, at(1))])
        .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(store.store_group("g", &group_metadata(2)).is_err());
    assert!(store.delete_group("g").is_err());
    assert!(store.delete_offsets("g", [("t", 0)]).is_err());
    assert!(store.expire(i64::MAX, 1, |_| true).is_err());
    assert_eq!(snapshot(&store), before, "a failed append changes nothing");

    sim.fail_writes(false);
    store.commit("g", [("t", 0, at(12))]).unwrap();
    assert_eq!(store.fetch("g", "t", 0).unwrap().offset, 12);
    let after = snapshot(&store);
    store.load().unwrap();
    assert_eq!(snapshot(&store), after, "the log agrees with the cache");
}

#[test]
fn reopen_and_load_restore_every_offset_and_group() {
    let (sim, clock) = (SimStorage::new(), ManualClock::new(NOW_MS));
    let broker = open_sim(&sim, &clock);
    let store = OffsetsStore::open(&broker, small(7)).unwrap();
    for g in 0..20u32 {
        let group = format!("group-{g}");
        let offsets: Vec<_> = (0..3)
            .map(|p| ("orders", p, at(u64::from(g * 10 + p))))
            .collect();
        store.commit(&group, offsets).unwrap();
        store
            .commit(
                &group,
                [("payments", g, at(7).with_expire_timestamp(NOW_MS + 5))],
            )
            .unwrap();
        if g % 2 == 0 {
            store
                .store_group(&group, &group_metadata(g as i32))
                .unwrap();
        }
    }
    store
        .delete_offsets("group-3", [("orders", 1), ("nope", 9)])
        .unwrap();
    assert_eq!(
        store.delete_group("group-4").unwrap(),
        5,
        "4 offsets and the metadata"
    );
    let before = snapshot(&store);
    assert_eq!(before.len(), 19);
    drop(store);
    broker.close().unwrap();

    let broker = open_sim(&sim, &clock);
    // Whatever the config now says, the existing topic's partition count is used.
    let store = OffsetsStore::open(&broker, small(50)).unwrap();
    assert_eq!(store.partition_count(), 7);
    assert_eq!(snapshot(&store), before);
    assert_eq!(store.fetch("group-3", "orders", 1), None);
    assert_eq!(store.group("group-4"), None);
    assert_eq!(store.group("group-6"), Some(group_metadata(6)));

    // load() again gives the same, and says what it replayed.
    let report = store.load().unwrap();
    assert_eq!((report.groups, report.offsets), (19, 19 * 4 - 1));
    assert_eq!(report.records, 20 * 4 + 10 + 1 + 5);
    assert_eq!(snapshot(&store), before);
}

#[test]
fn tombstones_survive_compaction_and_replay() {
    let (sim, clock) = (SimStorage::new(), ManualClock::new(NOW_MS));
    let broker = open_sim(&sim, &clock);
    // One partition, so every group shares one log.
    let store = OffsetsStore::open(&broker, small(1)).unwrap();
    for round in 0..5u64 {
        store
            .commit("a", [("t", 0, at(round)), ("t", 1, at(round))])
            .unwrap();
        store.commit("b", [("t", 0, at(round))]).unwrap();
        store
            .store_group("a", &group_metadata(round as i32))
            .unwrap();
    }
    store.delete_offsets("a", [("t", 1)]).unwrap();
    store.delete_group("b").unwrap();
    let before = snapshot(&store);
    let log = broker
        .topic(CONSUMER_OFFSETS_TOPIC)
        .unwrap()
        .partition(0)
        .unwrap();
    log.roll().unwrap();
    let stats = log.compact().unwrap();
    assert_eq!(stats.records_read, 5 * 4 + 2);
    // Kept: a/t/0, a's metadata, and the tombstones for a/t/1 and b/t/0 (too young to drop).
    assert_eq!(stats.records_written, 4);
    store.load().unwrap();
    assert_eq!(snapshot(&store), before);
    drop(store);
    broker.close().unwrap();

    let broker = open_sim(&sim, &clock);
    let store = OffsetsStore::open(&broker, small(1)).unwrap();
    assert_eq!(snapshot(&store), before);
    assert_eq!(store.groups(), ["a"]);

    // Past delete.retention.ms the tombstones go too, and the state is still the same.
    clock.advance_ms(25 * 60 * 60 * 1000);
    let log = broker
        .topic(CONSUMER_OFFSETS_TOPIC)
        .unwrap()
        .partition(0)
        .unwrap();
    store.commit("a", [("u", 0, at(1))]).unwrap();
    log.roll().unwrap();
    let stats = log.compact().unwrap();
    assert_eq!(stats.tombstones_removed, 2);
    store.load().unwrap();
    let mut want = before;
    want.get_mut("a").unwrap().1.insert(("u".into(), 0), at(1));
    assert_eq!(snapshot(&store), want);
}

#[test]
fn expiry_follows_kafkas_rules() {
    let (sim, clock) = (SimStorage::new(), ManualClock::new(NOW_MS));
    let broker = open_sim(&sim, &clock);
    let store = OffsetsStore::open(&broker, small(3)).unwrap();
    let retention = OffsetsConfig::default().retention_ms();
    let mut empty_group = group_metadata(1);
    empty_group.members.clear();
    empty_group.current_state_timestamp = Some(NOW_MS);
    for group in ["empty", "active"] {
        store.store_group(group, &empty_group).unwrap();
        store
            .commit(
                group,
                [
                    ("t", 0, at(1).with_expire_timestamp(NOW_MS + 1)),
                    ("t", 1, at(2).with_expire_timestamp(NOW_MS + 3)),
                    ("t", 2, at(3)),
                ],
            )
            .unwrap();
    }
    // A simple group: offsets only, no metadata; its base is the commit time.
    store
        .commit("simple", [("t", 0, OffsetAndMetadata::new(1, 20_000))])
        .unwrap();
    let is_empty = |g: &str| g != "active";

    // +2 ms: the +1 ms offset of the Empty group expires, the +3 ms one survives; the
    // active group keeps everything, past its explicit expire times too.
    let report = store.expire(NOW_MS + 2, retention, is_empty).unwrap();
    assert_eq!(
        report.offsets,
        [
            ("empty".to_string(), "t".to_string(), 0),
            ("simple".into(), "t".into(), 0)
        ]
    );
    assert!(report.groups.is_empty());
    assert_eq!(store.fetch_all("active").len(), 3);
    assert_eq!(store.fetch_all("empty").len(), 2);

    // Once retention has passed since the group became Empty, the rest goes, and the
    // metadata of the group left without offsets with it.
    let report = store
        .expire(NOW_MS + retention, retention, is_empty)
        .unwrap();
    assert_eq!(report.offsets.len(), 2);
    assert_eq!(report.groups, ["empty"]);
    assert_eq!(store.groups(), ["active"]);
    let report = store.expire(i64::MAX, retention, is_empty).unwrap();
    assert!(report.offsets.is_empty() && report.groups.is_empty());

    // A Stable consumer group expires the offsets of topics it no longer subscribes to.
    store.commit("active", [("old", 0, at(1))]).unwrap();
    let stable = |_: &str| GroupActivity::StableSubscribed(["t".to_string()].into());
    let report = store
        .expire_with(NOW_MS + retention, retention, stable)
        .unwrap();
    assert_eq!(
        report.offsets,
        [("active".to_string(), "old".to_string(), 0)]
    );
    assert_eq!(store.fetch_all("active").len(), 3);

    // The tombstones are in the log: a replay agrees.
    let before = snapshot(&store);
    drop(store);
    broker.close().unwrap();
    let broker = open_sim(&sim, &clock);
    let store = OffsetsStore::open(&broker, small(3)).unwrap();
    assert_eq!(snapshot(&store), before);
}

#[test]
fn retention_of_i32_max_minutes_never_overflows() {
    let (sim, clock) = (SimStorage::new(), ManualClock::new(NOW_MS));
    let broker = open_sim(&sim, &clock);
    let config = small(1).retention_minutes(i32::MAX);
    assert_eq!(config.retention_ms(), 2_147_483_647 * 60 * 1000);
    let store = OffsetsStore::open(&broker, config.clone()).unwrap();
    store
        .commit("g", [("t", 0, OffsetAndMetadata::new(1, 0))])
        .unwrap();
    let report = store
        .expire(NOW_MS, config.retention_ms(), |_| true)
        .unwrap();
    assert!(report.offsets.is_empty());
    let report = store
        .expire(config.retention_ms(), config.retention_ms(), |_| true)
        .unwrap();
    assert_eq!(report.offsets.len(), 1);
}

#[test]
fn unknown_record_types_are_skipped_and_malformed_ones_are_typed_errors() {
    let (sim, clock) = (SimStorage::new(), ManualClock::new(NOW_MS));
    let broker = open_sim(&sim, &clock);
    let store = OffsetsStore::open(&broker, small(1)).unwrap();
    store.commit("g", [("t", 0, at(1))]).unwrap();
    let log = broker
        .topic(CONSUMER_OFFSETS_TOPIC)
        .unwrap()
        .partition(0)
        .unwrap();
    // Key version 3 (a newer Kafka's record type) is skipped, as Kafka's loader does.
    log.append(Record::new(vec![1, 2]).with_key(vec![0, 3, 0, 0]))
        .unwrap();
    let report = store.load().unwrap();
    assert_eq!((report.records, report.skipped), (1, 1));
    assert_eq!(store.fetch("g", "t", 0), Some(at(1)));

    // A known key with a value that does not decode stops the load, naming the record.
    let key = OffsetsKey::GroupMetadata { group: "g".into() }
        .encode()
        .unwrap();
    let offset = log
        .append(Record::new(vec![0, 3, 0]).with_key(key))
        .unwrap();
    match store.load().unwrap_err() {
        Error::InvalidOffsetsRecord {
            partition: 0,
            offset: o,
            source: RecordFormatError::Truncated { .. },
        } => assert_eq!(o, offset),
        other => panic!("{other}"),
    }
    assert_eq!(store.fetch("g", "t", 0), Some(at(1)), "the cache is kept");
}

#[test]
fn concurrent_commits_from_many_threads_match_the_log() {
    let (sim, clock) = (SimStorage::new(), ManualClock::new(NOW_MS));
    let broker = open_sim(&sim, &clock);
    let store = Arc::new(OffsetsStore::open(&broker, small(4)).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..50u64 {
                    let group = format!("g{}", i % 5);
                    store.commit(&group, [("t", t, at(i))]).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let live = snapshot(&store);
    for g in 0..5 {
        for t in 0..4 {
            assert_eq!(
                store.fetch(&format!("g{g}"), "t", t).unwrap().offset,
                45 + g
            );
        }
    }
    store.load().unwrap();
    assert_eq!(snapshot(&store), live);
}

#[test]
fn hash_and_placement_match_java() {
    assert_eq!(java_string_hash_code("foo"), 101_574);
    assert_eq!(partition_for_group("foo", 10), 4);
    assert_eq!(java_string_hash_code("日本"), 0x65e5 * 31 + 0x672c);
    assert_eq!(java_string_hash_code("grüße"), {
        let units = "grüße".encode_utf16();
        units.fold(0i32, |h, u| h.wrapping_mul(31).wrapping_add(i32::from(u)))
    });
    assert_eq!(java_string_hash_code("billing"), -109_829_509);
    assert_eq!(partition_for_group("billing", 50), 109_829_509 % 50);
}

// --- damaged segment files on the real file system -------------------------------------------

/// Copies a directory tree, as a crash would leave it: every byte written so far.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else if entry.file_name() != ".lock" {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn a_truncated_segment_is_recovered_and_the_surviving_commits_load() {
    // The last batch holds one small record: well over 40 bytes.
    recovers_from(|bytes| bytes.truncate(bytes.len() - 40));
}

#[test]
fn a_corrupt_batch_is_recovered_and_the_surviving_commits_load() {
    // A flipped bit inside the last batch's record: its CRC no longer matches.
    recovers_from(|bytes| {
        let at = bytes.len() - 10;
        bytes[at] ^= 0x40;
    });
}

/// Commits, a flush, two more commits, a crash (a copy of the files), `damage` done to
/// the newest segment of the group's partition (it hits the last batch, written after the
/// flush): the reopened log drops the damaged batch and keeps the rest, and takes new
/// commits.
fn recovers_from(damage: impl FnOnce(&mut Vec<u8>)) {
    let root = tempfile::tempdir().unwrap();
    let (live, crashed) = (root.path().join("live"), root.path().join("crashed"));
    let broker = Broker::open(&live, quiet()).unwrap();
    let store = OffsetsStore::open(&broker, small(2)).unwrap();
    let p = store.partition_for("g");
    for i in 0..10 {
        store
            .commit("g", [("t", 0, at(i)), ("t", 1, at(i))])
            .unwrap();
    }
    store.store_group("g", &group_metadata(1)).unwrap();
    broker.flush().unwrap(); // everything so far is below the recovery point
    let durable = snapshot(&store);
    store
        .commit("g", [("t", 0, at(100)), ("t", 1, at(100))])
        .unwrap();
    store.commit("g", [("t", 2, at(7))]).unwrap();

    // The process dies now; its last batch was torn half-way.
    copy_tree(&live, &crashed);
    drop(store);
    broker.close().unwrap();
    let dir = crashed.join(format!("{CONSUMER_OFFSETS_TOPIC}-{p}"));
    let newest = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .max()
        .unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    damage(&mut bytes);
    std::fs::write(&newest, &bytes).unwrap();

    let broker = Broker::open(&crashed, quiet()).unwrap();
    let store = OffsetsStore::open(&broker, small(2)).unwrap();
    let mut want = durable.clone();
    let offsets = &mut want.get_mut("g").unwrap().1;
    offsets.insert(("t".into(), 0), at(100));
    offsets.insert(("t".into(), 1), at(100));
    assert_eq!(
        snapshot(&store),
        want,
        "the damaged batch is gone, the rest is there"
    );
    // The recovered log takes new commits where it was cut.
    store.commit("g", [("t", 2, at(8))]).unwrap();
    store.load().unwrap();
    assert_eq!(store.fetch("g", "t", 2), Some(at(8)));
}

// --- property tests ---------------------------------------------------------------------------

fn offset_value() -> impl Strategy<Value = OffsetAndMetadata> {
    (
        0..=i64::MAX as u64,
        proptest::option::of(any::<i32>().prop_filter("-1 is none", |e| *e != -1)),
        ".{0,20}",
        any::<i64>(),
        proptest::option::of(any::<i64>().prop_filter("-1 is none", |e| *e != -1)),
    )
        .prop_map(
            |(offset, leader_epoch, metadata, commit_timestamp, expire_timestamp)| {
                OffsetAndMetadata {
                    offset,
                    // v1 (written with an expire time) has no leader epoch.
                    leader_epoch: leader_epoch.filter(|_| expire_timestamp.is_none()),
                    metadata,
                    commit_timestamp,
                    expire_timestamp,
                }
            },
        )
}

fn member() -> impl Strategy<Value = MemberMetadata> {
    (
        "[a-z0-9-]{0,12}",
        proptest::option::of("[a-z]{0,6}"),
        ".{0,8}",
        ".{0,8}",
        any::<i32>(),
        any::<i32>(),
        proptest::collection::vec(any::<u8>(), 0..16),
        proptest::collection::vec(any::<u8>(), 0..16),
    )
        .prop_map(
            |(id, instance, client, host, rebalance, session, sub, assign)| MemberMetadata {
                member_id: id,
                group_instance_id: instance,
                client_id: client,
                client_host: host,
                rebalance_timeout_ms: rebalance,
                session_timeout_ms: session,
                subscription: sub,
                assignment: assign,
            },
        )
}

fn group_value() -> impl Strategy<Value = GroupMetadata> {
    (
        "[a-z]{0,8}",
        any::<i32>(),
        proptest::option::of("[a-z]{0,8}"),
        proptest::option::of("[a-z0-9-]{0,8}"),
        proptest::option::of(any::<i64>().prop_filter("-1 is none", |t| *t != -1)),
        proptest::collection::vec(member(), 0..4),
    )
        .prop_map(
            |(protocol_type, generation, protocol, leader, ts, members)| GroupMetadata {
                protocol_type,
                generation,
                protocol,
                leader,
                current_state_timestamp: ts,
                members,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic_a_decoder(
        key in proptest::collection::vec(any::<u8>(), 0..64),
        value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..128)),
        version in 0i16..6,
    ) {
        let _ = OffsetsKey::decode(&key);
        let _ = OffsetsRecord::decode(&key, value.as_deref());
        if let Some(value) = &value {
            let _ = OffsetAndMetadata::decode(value);
            let _ = GroupMetadata::decode(value);
            // The same bytes behind a valid version, to get past the first check.
            let mut versioned = version.to_be_bytes().to_vec();
            versioned.extend_from_slice(value);
            if let Ok(decoded) = OffsetAndMetadata::decode(&versioned) {
                // Whatever decodes re-encodes to what decodes the same.
                let again = decoded.encode_as(version).unwrap();
                prop_assert_eq!(OffsetAndMetadata::decode(&again).unwrap(), decoded);
            }
            if let Ok(decoded) = GroupMetadata::decode(&versioned) {
                let again = decoded.encode_as(version).unwrap();
                prop_assert_eq!(GroupMetadata::decode(&again).unwrap(), decoded);
            }
        }
    }

    #[test]
    fn values_round_trip(offset in offset_value(), group in group_value()) {
        prop_assert_eq!(OffsetAndMetadata::decode(&offset.encode().unwrap()).unwrap(), offset.clone());
        prop_assert_eq!(GroupMetadata::decode(&group.encode().unwrap()).unwrap(), group.clone());
        let bytes = group.encode_as(4).unwrap();
        prop_assert_eq!(GroupMetadata::decode(&bytes).unwrap(), group);
        // Every proper prefix is refused.
        let bytes = offset.encode().unwrap();
        for cut in 0..bytes.len() {
            prop_assert!(OffsetAndMetadata::decode(&bytes[..cut]).is_err());
        }
    }
}

/// One step of the model test.
#[derive(Debug, Clone)]
enum Op {
    Commit(u8, u8, u64),
    StoreGroup(u8, i32),
    DeleteOffset(u8, u8),
    DeleteGroup(u8),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..4, 0u8..3, 0u64..1000).prop_map(|(g, p, o)| Op::Commit(g, p, o)),
        1 => (0u8..4, 0i32..10).prop_map(|(g, n)| Op::StoreGroup(g, n)),
        1 => (0u8..4, 0u8..3).prop_map(|(g, p)| Op::DeleteOffset(g, p)),
        1 => (0u8..4).prop_map(Op::DeleteGroup),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Random commits, group writes, deletions and reopens against a map of what was
    /// written last: after every reopen the replayed store equals the model.
    #[test]
    fn replay_equals_a_model_of_the_last_writes(ops in proptest::collection::vec(op(), 1..40)) {
        let (sim, clock) = (SimStorage::new(), ManualClock::new(NOW_MS));
        let mut broker = open_sim(&sim, &clock);
        let mut store = OffsetsStore::open(&broker, small(3)).unwrap();
        let mut model: Snapshot = BTreeMap::new();
        for op in ops {
            match op {
                Op::Commit(g, p, o) => {
                    let group = format!("g{g}");
                    store.commit(&group, [("t", u32::from(p), at(o))]).unwrap();
                    model.entry(group).or_default().1.insert(("t".into(), u32::from(p)), at(o));
                }
                Op::StoreGroup(g, n) => {
                    let group = format!("g{g}");
                    store.store_group(&group, &group_metadata(n)).unwrap();
                    model.entry(group).or_default().0 = Some(group_metadata(n));
                }
                Op::DeleteOffset(g, p) => {
                    let group = format!("g{g}");
                    store.delete_offsets(&group, [("t", u32::from(p))]).unwrap();
                    if let Some(state) = model.get_mut(&group) {
                        state.1.remove(&("t".to_string(), u32::from(p)));
                    }
                }
                Op::DeleteGroup(g) => {
                    store.delete_group(&format!("g{g}")).unwrap();
                    model.remove(&format!("g{g}"));
                }
                Op::Reopen => {
                    drop(store);
                    broker.close().unwrap();
                    broker = open_sim(&sim, &clock);
                    store = OffsetsStore::open(&broker, small(3)).unwrap();
                }
            }
            model.retain(|_, (metadata, offsets)| metadata.is_some() || !offsets.is_empty());
            prop_assert_eq!(&snapshot(&store), &model);
        }
        drop(store);
        broker.close().unwrap();
        let broker = open_sim(&sim, &clock);
        let store = OffsetsStore::open(&broker, small(3)).unwrap();
        prop_assert_eq!(snapshot(&store), model);
    }
}

/// A non-blocking driver's path (the simulation's): a `PersistRequest` encoded with
/// `persist_records`, appended by the driver to a replica, then loaded by a read-only store.
#[test]
fn persist_records_appended_elsewhere_load_through_a_read_only_store() {
    use streamlog::group::coordinator::{PersistId, PersistRecord, PersistRequest};
    let dir = tempfile::tempdir().unwrap();
    let log =
        Arc::new(streamlog::Partition::open(dir.path(), streamlog::LogConfig::default()).unwrap());
    let request = PersistRequest {
        id: PersistId(0),
        group_id: "billing".into(),
        offsets_partition: 0,
        record: PersistRecord::Offsets(vec![(("orders".into(), 3), at(42))]),
    };
    let records = OffsetsStore::persist_records(&request).unwrap();
    assert_eq!(records.len(), 1);
    log.append_records(&records).unwrap();
    let bad = PersistRequest {
        group_id: String::new(),
        ..request
    };
    assert!(OffsetsStore::persist_records(&bad).is_err());

    let store = OffsetsStore::read_only(1, small(1), BTreeMap::from([(0, log.clone())]));
    let report = store.load_partition(0).unwrap();
    assert_eq!(report.offsets, 1);
    assert_eq!(
        store.fetch("billing", "orders", 3).map(|o| o.offset),
        Some(42)
    );
    // It writes nowhere.
    assert!(store.commit("billing", [("orders", 3, at(43))]).is_err());
    assert_eq!(log.log_end_offset(), 1);
}
