//! The calls users write, exactly as issue 4 lists them: this file must keep compiling
//! and running unchanged.

use streamlog::{Broker, BrokerConfig, Record, TopicConfig};

#[test]
#[rustfmt::skip] // the snippet stays exactly as the issue writes it
fn the_broker_calls_compile_and_run_as_written() -> streamlog::Result<()> {
    // The snippet opens a relative path; run it inside a scratch directory.
    let scratch = tempfile::tempdir().map_err(|e| streamlog::Error::io("tempdir", e))?;
    std::env::set_current_dir(scratch.path())
        .map_err(|e| streamlog::Error::io(scratch.path(), e))?;

    let broker = Broker::open("data", BrokerConfig::default().broker_id(0))?;
    let topic = broker.create_topic("orders", TopicConfig::default()
        .partitions(6).segment_bytes(1 << 20).retention_bytes(8 << 20))?;
    let (partition, offset): (u32, u64) =
        topic.append(Record::new(b"v".to_vec()).with_key(b"user-1".to_vec()))?;
    let records = topic.partition(partition)?.read_from(offset)?;
    let same_topic = broker.topic("orders")?;          // Error::UnknownTopic when absent
    broker.enforce_retention()?;                       // also runs by itself in the background
    assert_eq!(streamlog::murmur2(b"21"), -973932308);

    // What the snippet implies, checked.
    assert_eq!(partition, streamlog::topic::partition_for_key(b"user-1", 6));
    assert_eq!(offset, 0);
    let read: Vec<_> = records.collect::<streamlog::Result<_>>()?;
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].key(), Some(&b"user-1"[..]));
    assert!(std::sync::Arc::ptr_eq(&topic, &same_topic));
    assert!(matches!(
        broker.topic("payments"),
        Err(streamlog::Error::UnknownTopic { .. })
    ));
    assert!(scratch.path().join("data/orders-5").is_dir());
    fn send_sync<T: Send + Sync>(_: &T) {}
    send_sync(&broker);
    Ok(())
}
