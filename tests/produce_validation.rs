//! What a leader makes of a produced batch: a keyless record on a compacted topic is
//! refused as Kafka's INVALID_RECORD (not retriable: the producer fails at once), and a
//! batch whose timestamp deltas wrap keeps its largest record timestamp in its header,
//! through the producer and through `Partition::append_encoded`.

use std::time::{Duration, Instant};

use streamlog::{
    Acks, CleanupPolicy, Cluster, ClusterConfig, Error, LogConfig, Partition, ProducerConfig,
    Record, TopicConfig,
};

/// A keyless record sent to a compacted topic is refused by the leader (Kafka:
/// INVALID_RECORD, a non-retriable error). The producer must fail at once, not retry
/// the same doomed batch `retries` times with `retry.backoff.ms` between them (it was
/// answered CORRUPT_MESSAGE, which is retriable).
#[test]
fn keyless_send_to_compacted_topic_fails_fast_without_retries() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(ClusterConfig::in_memory(1).data_dir(dir.path())).unwrap();
    cluster
        .create_topic(
            "c",
            TopicConfig::default().cleanup_policy(CleanupPolicy::Compact),
        )
        .unwrap();
    let producer = cluster
        .producer(
            ProducerConfig::default()
                .acks(Acks::All)
                .retries(20)
                .retry_backoff_ms(100),
        )
        .unwrap();
    let started = Instant::now();
    let err = producer
        .send_to("c", 0, &[Record::new(b"no key".to_vec())])
        .unwrap_err();
    let took = started.elapsed();
    match err {
        Error::Produce {
            attempts, error, ..
        } => {
            assert!(
                !error.is_retriable(),
                "a record refused for having no key is not retriable, got {error:?}"
            );
            assert_eq!(attempts, 1, "retried a non-retriable refusal ({error:?})");
        }
        other => panic!("{other:?}"),
    }
    assert!(took < Duration::from_millis(500), "took {took:?}");
}

/// A produced batch whose timestamps span more than `i64::MAX` (here -1 and `i64::MAX`):
/// the deltas wrap. Kafka computes each record's timestamp (base + delta, wrapping back
/// to the true value) and keeps `i64::MAX` (the validation took the largest wrapped delta
/// instead, and the leader restamped the header with max timestamp -1).
#[test]
fn produced_batch_with_wrapping_timestamp_deltas_keeps_its_true_max_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(ClusterConfig::in_memory(1).data_dir(dir.path())).unwrap();
    cluster.create_topic("t", TopicConfig::default()).unwrap();
    let producer = cluster
        .producer(ProducerConfig::default().acks(Acks::All))
        .unwrap();
    let records = vec![
        Record::new(b"a".to_vec()).with_timestamp(-1),
        Record::new(b"b".to_vec()).with_timestamp(i64::MAX),
    ];
    assert_eq!(producer.send_to("t", 0, &records).unwrap(), 0..2);
    let leader = cluster.leader("t", 0).unwrap();
    let log = cluster
        .broker(leader)
        .unwrap()
        .topic("t")
        .unwrap()
        .partition(0)
        .unwrap();
    let read: Vec<i64> = log
        .read_from(0)
        .unwrap()
        .map(|r| r.unwrap().timestamp())
        .collect();
    assert_eq!(read, [-1, i64::MAX], "records keep their timestamps");
    assert_eq!(
        log.offset_for_timestamp(0)
            .unwrap()
            .map(|o| (o.offset, o.timestamp)),
        Some((1, i64::MAX)),
        "the record stamped i64::MAX is the first at or after 0"
    );
}

/// The same through `Partition::append_encoded` directly: the stored batch header's max
/// timestamp must be the records' largest timestamp.
#[test]
fn append_encoded_with_wrapping_timestamp_deltas_keeps_its_true_max_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open(dir.path(), LogConfig::default()).unwrap();
    let records = vec![
        Record::new(b"a".to_vec()).with_timestamp(-1_000),
        Record::new(b"b".to_vec()).with_timestamp(i64::MAX - 10),
    ];
    let mut buf = Vec::new();
    let summary =
        streamlog::record::encode_batch(&records, streamlog::Compression::None, 0, &mut buf)
            .unwrap();
    assert_eq!(
        summary.max_timestamp,
        i64::MAX - 10,
        "the encoder gets it right"
    );
    log.append_encoded(&buf).unwrap();
    assert_eq!(log.segments()[0].max_timestamp(), i64::MAX - 10);
    assert_eq!(
        log.offset_for_timestamp(1).unwrap().map(|o| o.offset),
        Some(1)
    );
}
