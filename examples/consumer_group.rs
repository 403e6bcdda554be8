//! A consumer group: a producer thread writes 600 keyed records to a 6-partition topic while
//! three consumer threads of group `billing` read them; a fourth consumer joins and one
//! leaves mid-way. Each generation's assignment is printed as members get it; at the end
//! the example shows that every record was processed (count, duplicates and each
//! partition's last offset), then reopens the broker and resumes from the committed
//! offsets. Each consumer commits after processing each poll and in its revoke callback,
//! so no record is processed twice.
//!
//! ```sh
//! cargo run --release --example consumer_group
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use streamlog::{
    AutoOffsetReset, Broker, BrokerConfig, Consumer, ConsumerConfig, RebalanceListener, Record,
    TopicConfig,
};

const RECORDS: u32 = 600;

/// (partition, offset) → how many times it was processed.
type Processed = Arc<Mutex<BTreeMap<(u32, u64), u32>>>;

/// Prints each new assignment with its generation; commits before giving partitions up.
struct Printer(&'static str);

impl RebalanceListener for Printer {
    fn on_partitions_revoked(&mut self, consumer: &Consumer, _: &[(String, u32)]) {
        if let Err(e) = consumer.commit() {
            eprintln!("{}: commit on revoke failed: {e}", self.0);
        }
    }

    fn on_partitions_assigned(&mut self, consumer: &Consumer, partitions: &[(String, u32)]) {
        let list: Vec<u32> = partitions.iter().map(|(_, p)| *p).collect();
        let generation = consumer.generation().unwrap_or(0);
        println!(
            "generation {generation}: {} owns partitions {list:?}",
            self.0
        );
    }
}

fn config() -> BrokerConfig {
    let mut config = BrokerConfig::default().background_threads(false);
    // Form the first generation at once instead of waiting 3 s for more members.
    config.group_coordinator.initial_rebalance_delay_ms = 0;
    config
}

fn consumer(broker: &Broker, name: &'static str) -> streamlog::Result<Consumer> {
    let config = ConsumerConfig::new("billing")
        .client_id(name)
        .auto_offset_reset(AutoOffsetReset::Earliest)
        .enable_auto_commit(false)
        .rebalance_listener(Printer(name));
    let consumer = broker.consumer(config)?;
    consumer.subscribe(&["orders"])?;
    Ok(consumer)
}

/// A consumer thread: polls, processes, commits, until `stop`; then leaves the group.
fn spawn(consumer: Consumer, stop: Arc<AtomicBool>, processed: Processed) -> JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            let records = match consumer.poll(100, Duration::from_millis(20)) {
                Ok(records) => records,
                Err(e) => return eprintln!("poll: {e}"),
            };
            let mut seen = processed.lock();
            for r in &records {
                *seen.entry((r.partition(), r.offset())).or_default() += 1;
            }
            drop(seen);
            if !records.is_empty()
                && let Err(e) = consumer.commit()
            {
                eprintln!("commit: {e}");
            }
        }
        if let Err(e) = consumer.close() {
            eprintln!("close: {e}");
        }
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("streamlog-group-")
        .tempdir()?;
    let broker = Arc::new(Broker::open(dir.path(), config())?);
    let orders = broker.create_topic("orders", TopicConfig::default().partitions(6))?;
    let processed: Processed = Arc::default();

    let producer = std::thread::spawn(move || -> streamlog::Result<()> {
        for i in 0..RECORDS {
            let key = format!("customer-{}", i % 50).into_bytes();
            orders.append(Record::new(i.to_be_bytes().to_vec()).with_key(key))?;
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    });

    let stops: Vec<Arc<AtomicBool>> = (0..4).map(|_| Arc::default()).collect();
    let names = ["consumer-1", "consumer-2", "consumer-3", "consumer-4"];
    let mut threads = Vec::new();
    for i in 0..3 {
        let c = consumer(&broker, names[i])?;
        threads.push(spawn(c, stops[i].clone(), processed.clone()));
    }
    std::thread::sleep(Duration::from_millis(400));
    println!("-- consumer-4 joins");
    let c = consumer(&broker, names[3])?;
    threads.push(spawn(c, stops[3].clone(), processed.clone()));
    std::thread::sleep(Duration::from_millis(400));
    println!("-- consumer-1 leaves");
    stops[0].store(true, Ordering::SeqCst);

    producer.join().map_err(|_| "producer panicked")??;
    let deadline = Instant::now() + Duration::from_secs(20);
    while processed.lock().len() < RECORDS as usize && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    for stop in &stops {
        stop.store(true, Ordering::SeqCst);
    }
    for t in threads {
        t.join().map_err(|_| "consumer panicked")?;
    }

    let seen = processed.lock().clone();
    let twice = seen.values().filter(|n| **n > 1).count();
    let mut last: BTreeMap<u32, u64> = BTreeMap::new();
    for (p, o) in seen.keys() {
        let entry = last.entry(*p).or_default();
        *entry = (*entry).max(*o);
    }
    println!(
        "processed {} of {RECORDS} records ({twice} more than once); last offset per partition: {last:?}",
        seen.len()
    );

    let broker = Arc::into_inner(broker).ok_or("broker still shared")?;
    broker.close()?;
    let broker = Broker::open(dir.path(), config())?;
    let orders = broker.topic("orders")?;
    for i in 0..12u32 {
        orders.append(Record::new(i.to_be_bytes().to_vec()))?;
    }
    let again = consumer(&broker, "consumer-5")?;
    let mut resumed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while resumed.len() < 12 && Instant::now() < deadline {
        resumed.extend(again.poll(100, Duration::from_millis(50))?);
    }
    again.commit()?;
    println!(
        "after reopening: resumed from the committed offsets and read {} new records",
        resumed.len()
    );
    again.close()?;
    broker.close()?;
    println!("done in {:.1?}", started.elapsed());
    Ok(())
}
