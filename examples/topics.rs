//! Topics on a broker: create three topics, produce keyed and unkeyed records, show the
//! partition each key goes to, then run retention with a short `retention.ms` and show the
//! segments before and after. Time comes from a `ManualClock`, so "a minute later" takes
//! no time at all. The data directory is a temporary one, removed at the end.
//!
//! ```sh
//! cargo run --release --example topics
//! ```

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use streamlog::{
    Broker, BrokerConfig, CleanupPolicy, Clock, Env, ManualClock, Record, Topic, TopicConfig,
};

const RETENTION_MS: i64 = 60_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::Builder::new()
        .prefix("streamlog-topics-")
        .tempdir()?;
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    let clock = ManualClock::new(now_ms);
    // Retention is run by hand below, so no background thread.
    let config = BrokerConfig::default()
        .broker_id(0)
        .background_threads(false);
    let env = Env::with_clock(Arc::new(clock.clone()));
    let broker = Broker::open_with_env(dir.path(), config, env)?;

    // Three topics: small segments and one minute of retention for `orders`.
    let orders = broker.create_topic(
        "orders",
        TopicConfig::default()
            .partitions(6)
            .segment_bytes(16 << 10)
            .retention_ms(RETENTION_MS)
            .file_delete_delay_ms(0),
    )?;
    let clicks = broker.create_topic("clicks", TopicConfig::default().partitions(3))?;
    let profiles = broker.create_topic(
        "profiles",
        TopicConfig::default()
            .partitions(2)
            .cleanup_policy(CleanupPolicy::Compact),
    )?;
    println!("broker {} in {}", broker.broker_id(), dir.path().display());
    println!("topics: {:?}\n", broker.topics());

    // A key always goes to the same partition: murmur2(key) % partitions, as Kafka's
    // Java client does.
    println!("keyed records on `orders` (6 partitions):");
    for user in ["user-1", "user-2", "user-3", "user-4", "user-5", "user-1"] {
        let (partition, offset) = orders.append(keyed(user, "first order"))?;
        println!("  key {user:<7} -> partition {partition}, offset {offset}");
    }
    for user in ["alice", "bob"] {
        let (partition, _) = profiles.append(keyed(user, "{\"plan\":\"free\"}"))?;
        println!("  key {user:<7} -> `profiles` partition {partition}");
    }

    // No key: round-robin, so 9 records spread 3 / 3 / 3.
    let placed = clicks.append_batch(
        (0..9)
            .map(|i| Record::new(format!("click {i}").into()))
            .collect(),
    )?;
    let mut per_partition = [0; 3];
    for (partition, _) in placed {
        per_partition[partition as usize] += 1;
    }
    println!("\nunkeyed records on `clicks`: {per_partition:?} per partition\n");

    // Old traffic, then a minute passes, then fresh traffic.
    produce(&orders, 6_000, "old")?;
    clock.advance_ms(RETENTION_MS + 1);
    produce(&orders, 600, "new")?;

    print_segments(&broker, "before retention")?;
    let report = broker.enforce_retention()?;
    println!(
        "\nretention (retention.ms = {RETENTION_MS}, clock at +{} ms): {} segments, {} bytes deleted\n",
        clock.now_ms() - now_ms,
        report.segments_deleted(),
        report.bytes_deleted()
    );
    print_segments(&broker, "after retention")?;

    broker.close()?;
    Ok(())
}

fn keyed(key: &str, value: &str) -> Record {
    Record::new(value.as_bytes().to_vec()).with_key(key.as_bytes().to_vec())
}

/// Appends `count` keyed records to `topic` in batches of 100, stamped with the clock.
fn produce(topic: &Topic, count: usize, label: &str) -> streamlog::Result<()> {
    for start in (0..count).step_by(100) {
        let batch = (start..start + 100)
            .map(|i| {
                keyed(
                    &format!("user-{}", i % 50),
                    &format!("{label} order {i:>40}"),
                )
            })
            .collect();
        topic.append_batch(batch)?;
    }
    Ok(())
}

/// Each partition of `orders`: its log start and end offsets, and its segments as
/// `base offset (bytes)`.
fn print_segments(broker: &Broker, title: &str) -> streamlog::Result<()> {
    println!("`orders` {title}:");
    let topic = broker.topic("orders")?;
    for description in broker.describe_topic("orders")?.partitions {
        let segments: Vec<String> = topic
            .partition(description.partition)?
            .segments()
            .iter()
            .map(|s| format!("{} ({} B)", s.base_offset(), s.size_bytes()))
            .collect();
        println!(
            "  partition {}: offsets [{}, {}), {} segments: {}",
            description.partition,
            description.log_start_offset,
            description.log_end_offset,
            description.segment_count,
            segments.join(", ")
        );
    }
    Ok(())
}
