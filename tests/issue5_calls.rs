//! The calls users write, exactly as issue 5 lists them: this file must keep compiling
//! and running unchanged.

use streamlog::{Broker, BrokerConfig, Record, TopicConfig};

#[test]
#[rustfmt::skip] // the snippet stays exactly as the issue writes it
fn the_consumer_calls_compile_and_run_as_written() -> streamlog::Result<()> {
    let scratch = tempfile::tempdir().map_err(|e| streamlog::Error::io("tempdir", e))?;
    let mut config = BrokerConfig::default().background_threads(false);
    config.group_coordinator.initial_rebalance_delay_ms = 0;
    let broker = Broker::open(scratch.path(), config)?;
    let topic = broker.create_topic("orders", TopicConfig::default().partitions(3))?;
    for i in 0..10u8 {
        topic.append(Record::new(vec![i]).with_key(vec![i]))?;
    }

    use std::time::Duration;
    use streamlog::{AutoOffsetReset, ConsumerConfig};

    let consumer = broker.consumer(ConsumerConfig::new("billing")
        .auto_offset_reset(AutoOffsetReset::Earliest))?;   // Send; one per thread
    consumer.subscribe(&["orders"])?;
    for record in consumer.poll(500, Duration::from_millis(100))? {
        let _ = (record.topic(), record.partition(), record.offset(), record.key(), record.value());
    }
    consumer.commit()?;
    let owned: Vec<(String, u32)> = consumer.assignment();
    consumer.close()?;                                     // leaves the group at once

    // What the snippet implies, checked.
    assert_eq!(owned, [("orders".to_string(), 0), ("orders".to_string(), 1), ("orders".to_string(), 2)]);
    fn send<T: Send>(_: &T) {}
    let again = broker.consumer(ConsumerConfig::new("billing"))?;
    send(&again);
    again.subscribe(&["orders"])?;
    let rest = again.poll(500, Duration::from_millis(100))?;
    assert!(rest.is_empty(), "everything was committed: {rest:?}");
    let total: u64 = (0..3).map(|p| again.committed("orders", p).map(|c| c.unwrap_or(0))).sum::<streamlog::Result<u64>>()?;
    assert_eq!(total, 10);
    Ok(())
}
