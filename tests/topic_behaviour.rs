//! Topic-level behaviours (issue 4, S5 and S12): partition choice for keyed, unkeyed and
//! explicit records, the sticky partitioner, `append_batch` bookkeeping, adding partitions,
//! and reopening a topic's directories. Real files in a temporary directory.

use std::path::Path;
use std::sync::Arc;

use streamlog::topic::partition_for_key;
use streamlog::{Env, Error, Record, RecordBatch, StickyPartitioner, Topic, TopicConfig, murmur2};

/// Small indexes keep each partition's preallocated files small.
fn config(partitions: u32) -> TopicConfig {
    TopicConfig::default()
        .partitions(partitions)
        .segment_index_bytes(64 << 10)
}

fn open(dir: &Path, partitions: u32) -> Topic {
    Topic::open(dir, "orders", config(partitions), Env::default()).unwrap()
}

fn keyed(key: &str, value: &str) -> Record {
    Record::new(value.as_bytes().to_vec()).with_key(key.as_bytes().to_vec())
}

fn unkeyed(value: &str) -> Record {
    Record::new(value.as_bytes().to_vec())
}

/// The value stored at `offset` of `partition`.
fn value_at(topic: &Topic, partition: u32, offset: u64) -> Vec<u8> {
    let record = topic
        .partition(partition)
        .unwrap()
        .read_from(offset)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(record.offset(), offset);
    record.value().unwrap().to_vec()
}

fn log_ends(topic: &Topic) -> Vec<u64> {
    topic
        .partitions()
        .iter()
        .map(|p| p.log_end_offset())
        .collect()
}

#[test]
fn the_issue_calls_compile_and_work() {
    let dir = tempfile::tempdir().unwrap();
    let topic = Topic::open(
        dir.path(),
        "orders",
        TopicConfig::default()
            .partitions(6)
            .segment_bytes(1 << 20)
            .retention_bytes(8 << 20),
        Env::default(),
    )
    .unwrap();
    let (partition, offset): (u32, u64) = topic
        .append(Record::new(b"v".to_vec()).with_key(b"user-1".to_vec()))
        .unwrap();
    let records = topic
        .partition(partition)
        .unwrap()
        .read_from(offset)
        .unwrap();
    assert_eq!(records.count(), 1);
    assert_eq!(murmur2(b"21"), -973932308);
}

#[test]
fn a_key_always_goes_to_its_murmur2_partition() {
    let dir = tempfile::tempdir().unwrap();
    let topic = open(dir.path(), 6);
    for round in 0..2 {
        for i in 0..50 {
            let key = format!("user-{i}");
            let (partition, _) = topic.append(keyed(&key, &round.to_string())).unwrap();
            let want = (murmur2(key.as_bytes()) & 0x7fff_ffff) as u32 % 6;
            assert_eq!(partition, want, "{key}");
        }
    }
    // Java-client vectors: "21" hashes to -973932308, so it lands in (that & 0x7fffffff) % 6.
    let (partition, _) = topic.append(keyed("21", "x")).unwrap();
    assert_eq!(partition, (-973_932_308_i32 & 0x7fff_ffff) as u32 % 6);
    assert_eq!(log_ends(&topic).iter().sum::<u64>(), 101);
}

#[test]
fn unkeyed_records_spread_exactly_evenly() {
    let dir = tempfile::tempdir().unwrap();
    let topic = open(dir.path(), 4);
    for i in 0..4 * 25 {
        topic.append(unkeyed(&i.to_string())).unwrap();
    }
    assert_eq!(log_ends(&topic), [25; 4]);
    let batch = (0..4 * 10).map(|i| unkeyed(&i.to_string())).collect();
    topic.append_batch(batch).unwrap();
    assert_eq!(log_ends(&topic), [35; 4]);
}

#[test]
fn round_robin_stays_exact_across_threads() {
    let dir = tempfile::tempdir().unwrap();
    let topic = Arc::new(open(dir.path(), 4));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let topic = topic.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    topic.append(unkeyed(&format!("{t}-{i}"))).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(log_ends(&topic), [50; 4]);
}

#[test]
fn an_explicit_partition_wins_over_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let topic = open(dir.path(), 4);
    let key = "user-1";
    let other = (partition_for_key(key.as_bytes(), 4) + 1) % 4;
    let offsets = topic
        .append_to(other, vec![keyed(key, "a"), keyed(key, "b")])
        .unwrap();
    assert_eq!(offsets, 0..2);
    assert_eq!(value_at(&topic, other, 1), b"b");
    let err = topic.append_to(4, vec![unkeyed("x")]).unwrap_err();
    assert!(
        matches!(&err, Error::UnknownPartition { topic, partition: 4, partitions: 4 } if topic == "orders"),
        "{err}"
    );
    assert!(matches!(
        topic.partition(7),
        Err(Error::UnknownPartition { partition: 7, .. })
    ));
}

#[test]
fn sticky_keeps_a_batch_on_one_partition_then_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let topic = open(dir.path(), 3).with_partitioner(Arc::new(StickyPartitioner::default()));
    let mut used = Vec::new();
    for batch in 0..6 {
        let records = (0..10).map(|i| unkeyed(&format!("{batch}-{i}"))).collect();
        let placed = topic.append_batch(records).unwrap();
        assert!(placed.iter().all(|&(p, _)| p == placed[0].0), "{placed:?}");
        used.push(placed[0].0);
    }
    assert_eq!(used, [0, 1, 2, 0, 1, 2]);
    assert_eq!(log_ends(&topic), [20; 3]);
    // Keys still choose by hash inside a sticky batch.
    let placed = topic
        .append_batch(vec![unkeyed("a"), keyed("user-9", "b")])
        .unwrap();
    assert_eq!(placed[1].0, partition_for_key(b"user-9", 3));
}

#[test]
fn append_batch_reports_each_record_in_input_order() {
    let dir = tempfile::tempdir().unwrap();
    let topic = open(dir.path(), 5);
    let values: Vec<String> = (0..200).map(|i| format!("value-{i}")).collect();
    let records = values
        .iter()
        .enumerate()
        .map(|(i, v)| match i % 3 {
            0 => unkeyed(v),
            _ => keyed(&format!("key-{}", i % 17), v),
        })
        .collect();
    let placed = topic.append_batch(records).unwrap();
    assert_eq!(placed.len(), values.len());
    let mut next_offset = [0u64; 5];
    for (i, &(partition, offset)) in placed.iter().enumerate() {
        // Within a partition, offsets follow input order with no gaps.
        assert_eq!(offset, next_offset[partition as usize], "record {i}");
        next_offset[partition as usize] += 1;
        assert_eq!(value_at(&topic, partition, offset), values[i].as_bytes());
        if i % 3 != 0 {
            let key = format!("key-{}", i % 17);
            assert_eq!(partition, partition_for_key(key.as_bytes(), 5));
        }
    }
    // One batch per partition: each partition's log file holds exactly one batch.
    for p in topic.partitions() {
        let file = std::fs::read(p.dir().join("00000000000000000000.log")).unwrap();
        assert_eq!(RecordBatch::parse(&file).unwrap().size_bytes(), file.len());
    }
    assert!(matches!(topic.append_batch(vec![]), Err(Error::EmptyBatch)));
}

#[test]
fn add_partitions_grows_and_never_shrinks() {
    let dir = tempfile::tempdir().unwrap();
    let topic = open(dir.path(), 3);
    let err = topic.add_partitions(2).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidConfig {
                name: "partitions",
                ..
            }
        ),
        "{err}"
    );
    topic.add_partitions(3).unwrap();
    assert_eq!(topic.partition_count(), 3);
    topic.add_partitions(5).unwrap();
    assert_eq!(topic.partition_count(), 5);
    assert_eq!(topic.config().partitions, 5);
    assert!(dir.path().join("orders-4").is_dir());
    // Keys now map over 5 partitions; round-robin covers all of them.
    let (partition, _) = topic.append(keyed("user-1", "v")).unwrap();
    assert_eq!(partition, partition_for_key(b"user-1", 5));
    assert_eq!(topic.append_to(4, vec![unkeyed("x")]).unwrap(), 0..1);
}

#[test]
fn reopen_restores_every_partition_and_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut placed = Vec::new();
    {
        let topic = open(dir.path(), 3);
        for i in 0..30 {
            let value = format!("v{i}");
            placed.push((
                topic.append(keyed(&format!("k{i}"), &value)).unwrap(),
                value,
            ));
        }
        topic.add_partitions(4).unwrap();
        let offsets = topic.append_to(3, vec![unkeyed("late")]).unwrap();
        placed.push(((3, offsets.start), "late".into()));
        topic.close().unwrap();
    }
    // Opened with the original count: the added partition's directory is found anyway.
    let topic = open(dir.path(), 3);
    assert_eq!(topic.partition_count(), 4);
    for ((partition, offset), value) in &placed {
        assert_eq!(value_at(&topic, *partition, *offset), value.as_bytes());
    }
    assert_eq!(log_ends(&topic).iter().sum::<u64>(), 31);
}

#[test]
fn a_topic_open_twice_is_refused_and_names_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let topic = open(dir.path(), 2);
    let again = Topic::open(dir.path(), "orders", config(2), Env::default());
    assert!(matches!(again, Err(Error::DirectoryLocked { .. })));
    let err = Topic::open(dir.path(), &"x".repeat(250), config(1), Env::default()).unwrap_err();
    assert!(matches!(err, Error::InvalidTopicName { .. }), "{err}");
    Topic::open(dir.path(), &"x".repeat(249), config(1), Env::default()).unwrap();
    // A partition handle kept elsewhere outlives `close` and still reads.
    let partition = topic.partition(0).unwrap();
    topic.append_to(0, vec![unkeyed("kept")]).unwrap();
    topic.close().unwrap();
    assert_eq!(partition.read_from(0).unwrap().count(), 1);
}

/// Kafka parses BOOLEAN settings case-insensitively (`ConfigDef.parseType`:
/// `equalsIgnoreCase("true")`), so `TRUE` and `False` are accepted.
#[test]
fn boolean_settings_are_read_case_insensitively_as_kafka_does() {
    let config = TopicConfig::from_properties("unclean.leader.election.enable=TRUE\n")
        .expect("Kafka accepts TRUE");
    assert!(config.unclean_leader_election_enable);
}

/// Kafka's topic `compression.type` is one of uncompressed, zstd, lz4, snappy, gzip,
/// producer (`BrokerCompressionType`); `none` is a producer-side name only and a topic
/// config of `none` is refused.
#[test]
fn topic_compression_type_none_is_refused_as_kafka_does() {
    let result = TopicConfig::from_properties("compression.type=none\n");
    assert!(
        matches!(
            result,
            Err(Error::InvalidConfig {
                name: "compression.type",
                ..
            })
        ),
        "Kafka refuses compression.type=none; got {result:?}"
    );
}

/// Kafka defines `retention.bytes` without a validator ("can be negative"): any negative
/// value means no size limit.
#[test]
fn a_negative_retention_bytes_other_than_minus_one_is_accepted_as_no_limit() {
    let config = TopicConfig::from_properties("retention.bytes=-2\n")
        .expect("Kafka accepts any negative retention.bytes");
    assert!(config.log_config().retention_bytes < 0);
}

/// Kafka: `max.compaction.lag.ms` is `atLeast(1)`; 0 is refused.
#[test]
fn max_compaction_lag_ms_of_zero_is_refused_as_kafka_does() {
    let result = TopicConfig::from_properties("max.compaction.lag.ms=0\nmin.compaction.lag.ms=0\n");
    assert!(
        matches!(
            result,
            Err(Error::InvalidConfig {
                name: "max.compaction.lag.ms",
                ..
            })
        ),
        "Kafka refuses max.compaction.lag.ms=0; got {result:?}"
    );
}
