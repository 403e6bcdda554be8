//! The broker through its public API: topic administration and name rules, everything
//! restored on reopen, crash-safe deletion, broker identity and locking, a full disk,
//! retention on the broker's clock, a burst of a million records drained later (S1), and
//! a topic name of Kafka's longest on a real file system.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use streamlog::storage::{DirLock, OpenMode, StorageFile};
use streamlog::{
    Broker, BrokerConfig, CleanupPolicy, Env, Error, ManualClock, Record, SimStorage, Storage,
    TopicConfig,
};

const DATA: &str = "/data";
const NOW_MS: i64 = 1_700_000_000_000;

fn env_on(storage: Arc<dyn Storage>, clock: &ManualClock) -> Env {
    Env {
        storage,
        clock: Arc::new(clock.clone()),
    }
}

/// Topic defaults with small index files: the simulated disk holds every preallocated
/// index byte in memory (10 MiB per index by default).
fn small() -> TopicConfig {
    TopicConfig::default().segment_index_bytes(4096)
}

fn quiet() -> BrokerConfig {
    BrokerConfig::default().background_threads(false)
}

fn open(sim: &SimStorage, clock: &ManualClock) -> Broker {
    Broker::open_with_env(DATA, quiet(), env_on(Arc::new(sim.clone()), clock)).unwrap()
}

fn keyed(key: &str, value: usize) -> Record {
    Record::new(value.to_string().into_bytes()).with_key(key.as_bytes().to_vec())
}

/// Every record of partition `p` of `topic` as (offset, key, value).
fn records(broker: &Broker, topic: &str, p: u32) -> Vec<(u64, Option<Vec<u8>>, Vec<u8>)> {
    let log = broker.topic(topic).unwrap().partition(p).unwrap();
    log.read_from(log.log_start_offset())
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            let key = r.key().map(<[u8]>::to_vec);
            (r.offset(), key, r.value().unwrap_or_default().to_vec())
        })
        .collect()
}

fn partition_dirs(sim: &SimStorage, topic: &str) -> Vec<PathBuf> {
    let prefix = format!("{topic}-");
    sim.list_dir(Path::new(DATA))
        .unwrap()
        .into_iter()
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.strip_prefix(&prefix)
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .collect()
}

#[test]
fn create_list_describe_and_reopen_restore_topics_configs_offsets_and_records() {
    let (sim, clock) = (SimStorage::new(), ManualClock::new(NOW_MS));
    let broker = open(&sim, &clock);
    let orders_config = small()
        .partitions(3)
        .segment_bytes(600)
        .retention_ms(3_600_000);
    let orders = broker
        .create_topic("orders", orders_config.clone())
        .unwrap();
    broker
        .create_topic("events", small().cleanup_policy(CleanupPolicy::Compact))
        .unwrap();
    assert_eq!(broker.topics(), ["events", "orders"]);
    for i in 0..60 {
        orders.append(keyed(&format!("user-{}", i % 7), i)).unwrap();
    }
    broker.add_partitions("orders", 5).unwrap();
    broker
        .topic("orders")
        .unwrap()
        .append_to(4, vec![keyed("late", 60)])
        .unwrap();
    broker
        .alter_topic_config("events", "retention.ms", "1000")
        .unwrap();

    let before = broker.describe_topic("orders").unwrap();
    assert_eq!(before.name, "orders");
    assert!(!before.internal && !before.config_pending_reopen);
    assert_eq!(before.config, orders_config.clone().partitions(5));
    assert_eq!(before.partitions.len(), 5);
    let total: u64 = before.partitions.iter().map(|p| p.log_end_offset).sum();
    assert_eq!(total, 61);
    assert!(before.partitions.iter().any(|p| p.segment_count > 1));
    for (i, p) in before.partitions.iter().enumerate() {
        assert_eq!(p.partition, i as u32);
        assert_eq!(p.high_watermark, p.log_end_offset);
        assert!(p.size_bytes > 0 || p.log_end_offset == 0);
    }
    assert!(
        broker
            .describe_topic("events")
            .unwrap()
            .config_pending_reopen
    );
    let contents: Vec<_> = (0..5).map(|p| records(&broker, "orders", p)).collect();
    broker.close().unwrap();

    let broker = open(&sim, &clock);
    assert_eq!(broker.topics(), ["events", "orders"]);
    assert_eq!(broker.describe_topic("orders").unwrap(), before);
    let events = broker.describe_topic("events").unwrap();
    assert!(!events.config_pending_reopen);
    assert_eq!(events.config.log_config().retention_ms, 1000);
    assert_eq!(
        events.config.log_config().cleanup_policy,
        CleanupPolicy::Compact
    );
    let running = broker.topic("events").unwrap().partition(0).unwrap();
    assert_eq!(running.config().retention_ms, 1000);
    for (p, want) in contents.iter().enumerate() {
        assert_eq!(&records(&broker, "orders", p as u32), want);
    }
    // Appends continue at the restored offsets.
    let (p, offset) = broker
        .topic("orders")
        .unwrap()
        .append(keyed("user-1", 61))
        .unwrap();
    assert_eq!(offset, contents[p as usize].len() as u64);
}

#[test]
fn names_follow_kafkas_rules_through_the_broker() {
    let (sim, clock) = (SimStorage::new(), ManualClock::new(NOW_MS));
    let broker = open(&sim, &clock);
    for bad in ["", ".", "..", "a b", "ä", &"x".repeat(250)] {
        let err = broker.create_topic(bad, small()).unwrap_err();
        assert!(
            matches!(err, Error::InvalidTopicName { .. }),
            "{bad:?}: {err}"
        );
    }
    broker.create_topic(&"x".repeat(249), small()).unwrap();
    broker.create_topic("metrics.cpu", small()).unwrap();
    let err = broker.create_topic("metrics.cpu", small()).unwrap_err();
    assert!(
        matches!(&err, Error::TopicExists { name } if name == "metrics.cpu"),
        "{err}"
    );
    let err = broker.create_topic("metrics_cpu", small()).unwrap_err();
    assert!(
        matches!(&err, Error::TopicCollision { name, existing }
            if name == "metrics_cpu" && existing == "metrics.cpu"),
        "{err}"
    );
    let err = broker.create_topic("t", small().partitions(0)).unwrap_err();
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
    assert!(!broker.topics().contains(&"t".to_owned()));

    // `__` is reserved for internal topics, which have their own way in.
    let err = broker
        .create_topic("__consumer_offsets", small())
        .unwrap_err();
    assert!(matches!(err, Error::InvalidTopicName { .. }), "{err}");
    let err = broker
        .create_internal_topic("offsets", small())
        .unwrap_err();
    assert!(matches!(err, Error::InvalidTopicName { .. }), "{err}");
    let offsets = small()
        .partitions(50)
        .cleanup_policy(CleanupPolicy::Compact);
    broker
        .create_internal_topic("__consumer_offsets", offsets)
        .unwrap();
    assert!(
        broker
            .describe_topic("__consumer_offsets")
            .unwrap()
            .internal
    );
    broker.close().unwrap();
    let broker = open(&sim, &clock);
    let internal = broker.describe_topic("__consumer_offsets").unwrap();
    assert!(internal.internal);
    assert_eq!(internal.partitions.len(), 50);

    // Unknown topics are typed errors everywhere.
    for err in [
        broker.topic("nope").map(|_| ()).unwrap_err(),
        broker.describe_topic("nope").map(|_| ()).unwrap_err(),
        broker.delete_topic("nope").unwrap_err(),
        broker.add_partitions("nope", 2).unwrap_err(),
        broker
            .alter_topic_config("nope", "retention.ms", "1")
            .unwrap_err(),
    ] {
        assert!(
            matches!(&err, Error::UnknownTopic { name } if name == "nope"),
            "{err}"
        );
    }
}

#[test]
fn alter_config_refuses_bad_settings_and_changes_nothing() {
    let (sim, clock) = (SimStorage::new(), ManualClock::new(NOW_MS));
    let broker = open(&sim, &clock);
    broker.create_topic("t", small()).unwrap();
    let before = broker.describe_topic("t").unwrap();
    for (key, value) in [
        ("retention.mss", "1"),
        ("retention.ms", "soon"),
        ("segment.bytes", "-1"),
        ("min.insync.replicas", "2"),
        ("partitions", "4"),
    ] {
        let err = broker.alter_topic_config("t", key, value).unwrap_err();
        assert!(matches!(err, Error::InvalidConfig { .. }), "{key}: {err}");
    }
    assert_eq!(broker.describe_topic("t").unwrap(), before);
    assert!(!before.config_pending_reopen);
    // A high watermark set by hand is not a broker topic's: it would not survive a
    // reopen (the setting is the log owner's, not stored).
    let err = broker
        .create_topic("manual", small().auto_high_watermark(false))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidConfig {
                name: "auto_high_watermark",
                ..
            }
        ),
        "{err}"
    );
    assert!(matches!(
        broker.topic("manual"),
        Err(Error::UnknownTopic { .. })
    ));
    broker
        .alter_topic_config("t", "cleanup.policy", "compact,delete")
        .unwrap();
    broker
        .alter_topic_config("t", "max.message.bytes", "2000")
        .unwrap();
    let after = broker.describe_topic("t").unwrap();
    assert!(after.config_pending_reopen);
    let log = after.config.log_config();
    assert_eq!(
        (log.cleanup_policy, log.max_message_bytes),
        (CleanupPolicy::CompactAndDelete, 2000)
    );
    broker.close().unwrap();
    let broker = open(&sim, &clock);
    assert_eq!(broker.describe_topic("t").unwrap().config, after.config);
}

/// `segment.index.bytes`, `index.interval.bytes` and `max.message.bytes` are ints in Kafka:
/// a larger value is refused when it is set, so a stored config always opens.
#[test]
fn size_settings_beyond_kafkas_int_are_refused_and_the_broker_still_opens() {
    let (sim, clock) = (SimStorage::new(), ManualClock::new(NOW_MS));
    let broker = open(&sim, &clock);
    broker.create_topic("t", small()).unwrap();
    broker.topic("t").unwrap().append(keyed("k", 1)).unwrap();
    let before = broker.describe_topic("t").unwrap();
    let too_big = (i32::MAX as u64 + 1).to_string();
    for key in [
        "segment.index.bytes",
        "index.interval.bytes",
        "max.message.bytes",
        "segment.bytes",
    ] {
        for value in [too_big.as_str(), &u64::MAX.to_string()] {
            let err = broker.alter_topic_config("t", key, value).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidConfig { name, reason }
                    if *name == key && reason.contains(&i32::MAX.to_string())),
                "{key}={value}: {err}"
            );
        }
    }
    assert_eq!(broker.describe_topic("t").unwrap(), before);
    broker.close().unwrap();
    let broker = open(&sim, &clock);
    assert_eq!(records(&broker, "t", 0).len(), 1);
}

/// Kafka lets `max.message.bytes` and `segment.bytes` be lowered at any time; batches
/// already stored stay valid and readable after the reopen that applies the new limits.
#[test]
fn lowering_max_message_bytes_keeps_the_larger_batches_already_stored() {
    let (sim, clock) = (SimStorage::new(), ManualClock::new(NOW_MS));
    let broker = open(&sim, &clock);
    let topic = broker.create_topic("t", small()).unwrap();
    topic.append(Record::new(vec![7; 200_000])).unwrap();
    topic.append(Record::new(vec![8; 10])).unwrap();
    broker
        .alter_topic_config("t", "max.message.bytes", "50000")
        .unwrap();
    broker
        .alter_topic_config("t", "segment.bytes", "100000")
        .unwrap();
    drop(topic);
    broker.close().unwrap();
    let broker = Broker::open_with_env(DATA, quiet(), env_on(Arc::new(sim.clone()), &clock))
        .expect("the broker reopens after lowering max.message.bytes");
    let sizes: Vec<usize> = records(&broker, "t", 0)
        .iter()
        .map(|(_, _, value)| value.len())
        .collect();
    assert_eq!(sizes, [200_000, 10]);
    let err = broker
        .topic("t")
        .unwrap()
        .append(Record::new(vec![9; 60_000]))
        .unwrap_err();
    assert!(
        matches!(err, Error::MessageTooLarge { max: 50_000, .. }),
        "{err}"
    );
}

#[test]
fn partitions_are_added_never_removed_and_the_count_survives_reopen() {
    let (sim, clock) = (SimStorage::new(), ManualClock::new(NOW_MS));
    let broker = open(&sim, &clock);
    let topic = broker.create_topic("t", small().partitions(2)).unwrap();
    broker.add_partitions("t", 5).unwrap();
    assert_eq!(topic.partition_count(), 5);
    let err = broker.add_partitions("t", 3).unwrap_err();
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
    broker.add_partitions("t", 5).unwrap();
    assert_eq!(partition_dirs(&sim, "t").len(), 5);
    broker.close().unwrap();
    let broker = open(&sim, &clock);
    assert_eq!(broker.topic("t").unwrap().partition_count(), 5);
    assert_eq!(broker.describe_topic("t").unwrap().config.partitions, 5);
}

#[test]
fn a_deleted_topic_is_gone_with_its_files_and_stays_gone_after_reopen() {
    let (sim, clock) = (SimStorage::new(), ManualClock::new(NOW_MS));
    let broker = open(&sim, &clock);
    let doomed = broker
        .create_topic("doomed", small().partitions(3))
        .unwrap();
    broker.create_topic("kept", small()).unwrap();
    for i in 0..30 {
        doomed.append(keyed("k", i)).unwrap();
    }
    let held = doomed.partition(0).unwrap();
    broker.delete_topic("doomed").unwrap();
    assert_eq!(broker.topics(), ["kept"]);
    assert!(partition_dirs(&sim, "doomed").is_empty());
    assert!(sim.list_dir(Path::new("/data/__topics")).unwrap().len() == 1);
    // Handles the application still holds are closed, and cannot bring a partition back.
    assert!(matches!(
        doomed.append(keyed("k", 0)),
        Err(Error::Closed { .. })
    ));
    assert!(matches!(
        held.append(keyed("k", 0)),
        Err(Error::Closed { .. })
    ));
    assert!(matches!(
        doomed.add_partitions(4),
        Err(Error::Closed { .. })
    ));
    assert!(partition_dirs(&sim, "doomed").is_empty());
    broker.close().unwrap();

    let broker = open(&sim, &clock);
    assert_eq!(broker.topics(), ["kept"]);
    // The name is free again, and the new topic starts empty.
    let again = broker.create_topic("doomed", small()).unwrap();
    assert_eq!(again.partition_count(), 1);
    assert_eq!(again.partition(0).unwrap().log_end_offset(), 0);
}

/// A storage whose namespace operations (rename, remove, sync of a directory) start failing
/// once a budget runs out: the point where a crash interrupts a delete.
#[derive(Debug, Clone)]
struct Interrupt {
    sim: SimStorage,
    budget: Arc<AtomicI64>,
}

impl Interrupt {
    fn step(&self, path: &Path) -> streamlog::Result<()> {
        if self.budget.fetch_sub(1, Ordering::SeqCst) <= 0 {
            let source = std::io::Error::other("interrupted");
            return Err(Error::io(path, source));
        }
        Ok(())
    }
}

impl Storage for Interrupt {
    fn open(&self, path: &Path, mode: OpenMode) -> streamlog::Result<Arc<dyn StorageFile>> {
        self.sim.open(path, mode)
    }
    fn exists(&self, path: &Path) -> bool {
        self.sim.exists(path)
    }
    fn remove_file(&self, path: &Path) -> streamlog::Result<()> {
        self.step(path)?;
        self.sim.remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> streamlog::Result<()> {
        self.step(from)?;
        self.sim.rename(from, to)
    }
    fn create_dir_all(&self, path: &Path) -> streamlog::Result<()> {
        self.sim.create_dir_all(path)
    }
    fn remove_dir(&self, path: &Path) -> streamlog::Result<()> {
        self.step(path)?;
        self.sim.remove_dir(path)
    }
    fn list_dir(&self, dir: &Path) -> streamlog::Result<Vec<PathBuf>> {
        self.sim.list_dir(dir)
    }
    fn sync_dir(&self, dir: &Path) -> streamlog::Result<()> {
        self.step(dir)?;
        self.sim.sync_dir(dir)
    }
    fn lock_dir(&self, dir: &Path) -> streamlog::Result<Box<dyn DirLock>> {
        self.sim.lock_dir(dir)
    }
}

#[test]
fn a_crash_at_any_step_of_a_delete_leaves_the_topic_whole_or_gone_after_reopen() {
    let clock = ManualClock::new(NOW_MS);
    let mut outcomes = [0, 0];
    for step in 0.. {
        let sim = SimStorage::new();
        let storage = Interrupt {
            sim: sim.clone(),
            budget: Arc::new(AtomicI64::new(i64::MAX)),
        };
        let broker =
            Broker::open_with_env(DATA, quiet(), env_on(Arc::new(storage.clone()), &clock))
                .unwrap();
        let doomed = broker
            .create_topic("doomed", small().partitions(3))
            .unwrap();
        let kept = broker.create_topic("kept", small()).unwrap();
        for i in 0..20 {
            doomed.append(keyed("d", i)).unwrap();
            kept.append(keyed("k", i)).unwrap();
        }
        broker.flush().unwrap();
        storage.budget.store(step, Ordering::SeqCst);
        let finished = broker.delete_topic("doomed").is_ok();
        // The crash: a process crash keeps every write, a power loss only synced ones
        // (everything was flushed, and metadata renames and removals are durable at once).
        let disk = if step % 2 == 0 {
            sim.process_crash()
        } else {
            sim.power_loss(step as u64)
        };
        drop(broker);

        let reopened = open(&disk, &clock);
        let ctx = format!("interrupted at step {step}");
        assert_eq!(records(&reopened, "kept", 0).len(), 20, "{ctx}");
        if reopened.topics().contains(&"doomed".to_owned()) {
            // Interrupted before the delete was marked: the topic is whole.
            assert!(!finished, "{ctx}");
            let all: usize = (0..3).map(|p| records(&reopened, "doomed", p).len()).sum();
            assert_eq!(all, 20, "{ctx}");
            outcomes[0] += 1;
        } else {
            assert!(partition_dirs(&disk, "doomed").is_empty(), "{ctx}");
            outcomes[1] += 1;
        }
        assert_eq!(
            disk.list_dir(Path::new("/data/__topics")).unwrap().len(),
            reopened.topics().len(),
            "{ctx}: only live topics' files remain"
        );
        if finished {
            break;
        }
    }
    assert!(outcomes[0] >= 1 && outcomes[1] > 5, "{outcomes:?}");
}

#[test]
fn a_delete_that_could_not_remove_everything_finishes_at_the_next_create() {
    let (sim, clock) = (SimStorage::new(), ManualClock::new(NOW_MS));
    let storage = Interrupt {
        sim: sim.clone(),
        budget: Arc::new(AtomicI64::new(i64::MAX)),
    };
    let broker =
        Broker::open_with_env(DATA, quiet(), env_on(Arc::new(storage.clone()), &clock)).unwrap();
    let topic = broker.create_topic("t", small().partitions(2)).unwrap();
    topic.append(keyed("k", 1)).unwrap();
    storage.budget.store(4, Ordering::SeqCst); // the marker, then a few removals
    assert!(matches!(broker.delete_topic("t"), Err(Error::Io { .. })));
    assert!(broker.topics().is_empty());
    assert!(!partition_dirs(&sim, "t").is_empty());
    storage.budget.store(i64::MAX, Ordering::SeqCst);
    let again = broker.create_topic("t", small()).unwrap();
    assert_eq!(partition_dirs(&sim, "t").len(), 1);
    assert_eq!(again.partition(0).unwrap().log_end_offset(), 0);
}

#[test]
fn a_directory_belongs_to_one_broker_id_and_one_open_broker() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path(), quiet().broker_id(7)).unwrap();
    assert_eq!(broker.broker_id(), 7);
    let err = Broker::open(dir.path(), quiet().broker_id(7)).unwrap_err();
    assert!(matches!(err, Error::DirectoryLocked { .. }), "{err}");
    broker.close().unwrap();
    let err = Broker::open(dir.path(), quiet().broker_id(8)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::BrokerIdMismatch {
                stored: 7,
                configured: 8,
                ..
            }
        ),
        "{err}"
    );
    assert!(dir.path().join("meta.properties").is_file());
    let broker = Broker::open(dir.path(), quiet().broker_id(7)).unwrap();
    drop(broker);
    let err = Broker::open(dir.path(), quiet().broker_id(-1)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidConfig {
                name: "broker.id",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn closing_the_broker_closes_the_topics_applications_hold() {
    let (sim, clock) = (SimStorage::new(), ManualClock::new(NOW_MS));
    let broker = open(&sim, &clock);
    let topic = broker.create_topic("t", small()).unwrap();
    topic.append(keyed("k", 0)).unwrap();
    drop(broker);
    assert!(matches!(
        topic.append(keyed("k", 1)),
        Err(Error::Closed { .. })
    ));
    // The directory is free for the next broker.
    let broker = open(&sim, &clock);
    assert_eq!(records(&broker, "t", 0).len(), 1);
}

#[test]
fn bad_input_is_a_typed_error_through_the_broker() {
    let (sim, clock) = (SimStorage::new(), ManualClock::new(NOW_MS));
    let broker = open(&sim, &clock);
    let config = small().partitions(2).max_message_bytes(1000);
    let topic = broker.create_topic("t", config).unwrap();
    let err = topic.append(Record::new(vec![7; 2000])).unwrap_err();
    assert!(
        matches!(err, Error::MessageTooLarge { max: 1000, size } if size > 2000),
        "{err}"
    );
    let err = topic
        .append_to(2, vec![Record::new(b"v".to_vec())])
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnknownPartition {
                partition: 2,
                partitions: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(matches!(
        topic.partition(9),
        Err(Error::UnknownPartition { .. })
    ));
    assert_eq!(
        broker.describe_topic("t").unwrap().partitions[0].log_end_offset,
        0
    );
}

#[test]
fn a_full_disk_is_an_io_error_with_the_path_and_the_broker_recovers_when_space_returns() {
    let (sim, clock) = (SimStorage::new(), ManualClock::new(NOW_MS));
    let broker = open(&sim, &clock);
    let topic = broker
        .create_topic("t", small().segment_bytes(500))
        .unwrap();
    for i in 0..20 {
        topic.append_to(0, vec![keyed("k", i)]).unwrap();
    }
    sim.fail_writes(true);
    let err = topic.append_to(0, vec![keyed("k", 20)]).unwrap_err();
    match &err {
        Error::Io { path, source } => {
            assert!(path.starts_with("/data/t-0"), "{}", path.display());
            assert_eq!(source.kind(), std::io::ErrorKind::StorageFull);
        }
        other => panic!("expected Io, got {other}"),
    }
    // Admin calls fail the same way and change nothing.
    let err = broker.create_topic("u", small()).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    let err = broker
        .alter_topic_config("t", "retention.ms", "5")
        .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert_eq!(broker.topics(), ["t"]);
    assert!(partition_dirs(&sim, "u").is_empty());
    // Still readable while the disk is full.
    assert_eq!(records(&broker, "t", 0).len(), 20);

    sim.fail_writes(false);
    assert_eq!(topic.append_to(0, vec![keyed("k", 20)]).unwrap(), 20..21);
    broker.create_topic("u", small()).unwrap();
    let values: Vec<Vec<u8>> = records(&broker, "t", 0).into_iter().map(|r| r.2).collect();
    let want: Vec<Vec<u8>> = (0..21).map(|i: usize| i.to_string().into_bytes()).collect();
    assert_eq!(values, want);
    broker.close().unwrap();
    let broker = open(&sim, &clock);
    assert_eq!(broker.topics(), ["t", "u"]);
    assert_eq!(records(&broker, "t", 0).len(), 21);
    assert_eq!(
        broker
            .describe_topic("t")
            .unwrap()
            .config
            .log_config()
            .retention_ms,
        604_800_000
    );
}

/// A topic with small segments and `retention.ms` of one minute, with 40 records stamped
/// `NOW_MS` in one partition.
fn aged_topic(broker: &Broker) {
    let config = small()
        .segment_bytes(400)
        .retention_ms(60_000)
        .file_delete_delay_ms(0);
    let topic = broker.create_topic("aged", config).unwrap();
    for i in 0..40 {
        topic
            .append_to(0, vec![keyed("k", i).with_timestamp(NOW_MS)])
            .unwrap();
    }
}

#[test]
fn enforce_retention_deletes_by_time_on_the_brokers_clock() {
    let (sim, clock) = (SimStorage::new(), ManualClock::new(NOW_MS));
    let broker = open(&sim, &clock);
    aged_topic(&broker);
    broker.create_topic("fresh", small().partitions(2)).unwrap();
    let before = broker.describe_topic("aged").unwrap().partitions[0];
    assert!(before.segment_count > 3, "{before:?}");

    let report = broker.enforce_retention().unwrap();
    assert_eq!(report.partitions.len(), 3);
    assert_eq!(report.segments_deleted(), 0);

    clock.advance_ms(60_001);
    let report = broker.enforce_retention().unwrap();
    assert!(
        report.segments_deleted() >= before.segment_count - 1,
        "{report:?}"
    );
    assert!(report.bytes_deleted() > 0);
    let after = broker.describe_topic("aged").unwrap().partitions[0];
    assert_eq!((after.log_start_offset, after.log_end_offset), (40, 40));
    assert_eq!(after.segment_count, 1);
    // The log end never moves back: the next record gets offset 40.
    let next = broker
        .topic("aged")
        .unwrap()
        .append_to(0, vec![keyed("k", 40)])
        .unwrap();
    assert_eq!(next, 40..41);
    broker.close().unwrap();
    let broker = open(&sim, &clock);
    assert_eq!(
        broker.describe_topic("aged").unwrap().partitions[0].log_start_offset,
        40
    );
}

/// A compacted topic with small segments holding 10 keys written 10 times each, in
/// partition 0: 100 records, of which compaction keeps the last 10.
fn churned_topic(broker: &Broker) {
    churned_topic_with(broker, small());
}

/// `churned_topic` on `config` (compaction and small segments are set here).
fn churned_topic_with(broker: &Broker, config: TopicConfig) {
    let config = config
        .segment_bytes(600)
        .cleanup_policy(CleanupPolicy::Compact);
    let topic = broker.create_topic("churn", config).unwrap();
    for i in 0..100 {
        topic
            .append_to(0, vec![keyed(&format!("key-{}", i % 10), i)])
            .unwrap();
    }
    topic.partition(0).unwrap().roll().unwrap();
}

/// A record's key and value.
type KeyValue = (Vec<u8>, Vec<u8>);

/// The latest value of each key in partition 0 of `churn`, and how many records it holds.
fn churn_state(broker: &Broker) -> (Vec<KeyValue>, usize) {
    let all = records(broker, "churn", 0);
    let mut latest = std::collections::BTreeMap::new();
    for (_, key, value) in &all {
        latest.insert(key.clone().unwrap(), value.clone());
    }
    (latest.into_iter().collect(), all.len())
}

#[test]
fn compact_cleans_the_partitions_that_need_it_and_leaves_others() {
    let (sim, clock) = (SimStorage::new(), ManualClock::new(NOW_MS));
    let broker = open(&sim, &clock);
    churned_topic(&broker);
    let plain = broker.create_topic("plain", small()).unwrap();
    plain.append(keyed("a", 1)).unwrap();
    let (latest, count) = churn_state(&broker);
    assert_eq!(count, 100);

    let report = broker.compact().unwrap();
    assert_eq!(report.partitions.len(), 1, "{report:?}");
    let done = &report.partitions[0];
    assert_eq!((done.topic.as_str(), done.partition), ("churn", 0));
    assert!(
        done.stats.records_written < done.stats.records_read,
        "{:?}",
        done.stats
    );
    assert_eq!(churn_state(&broker), (latest.clone(), 10));
    // Cleaned: nothing needs it any more.
    assert!(broker.compact().unwrap().partitions.is_empty());
    broker.close().unwrap();
    let broker = open(&sim, &clock);
    assert_eq!(churn_state(&broker), (latest, 10));
}

/// Kafka lets `cleanup.policy` go from `compact` to `delete` at any time: the compacted
/// segments, with their offset gaps, stay and simply stop being cleaned. The reopen that
/// applies the new policy must read them as they are, not call the gaps damage.
#[test]
fn a_compacted_topic_switched_to_delete_reopens_with_its_records() {
    let (sim, clock) = (SimStorage::new(), ManualClock::new(NOW_MS));
    let broker = open(&sim, &clock);
    churned_topic(&broker);
    broker.compact().unwrap();
    let before = records(&broker, "churn", 0);
    assert_eq!(before.len(), 10, "{before:?}");
    broker
        .alter_topic_config("churn", "cleanup.policy", "delete")
        .unwrap();
    broker.close().unwrap();

    let broker = Broker::open_with_env(DATA, quiet(), env_on(Arc::new(sim.clone()), &clock))
        .expect("the broker reopens after a valid config change");
    let log = broker.topic("churn").unwrap().partition(0).unwrap();
    assert_eq!(log.config().cleanup_policy, CleanupPolicy::Delete);
    assert_eq!(records(&broker, "churn", 0), before);
    // Appends go on after the last record, and the log reopens again.
    let end = log.log_end_offset();
    assert_eq!(log.append(keyed("key-0", 100)).unwrap(), end);
    drop(log);
    broker.close().unwrap();
    let broker = open(&sim, &clock);
    assert_eq!(records(&broker, "churn", 0).len(), 11);
}

#[test]
fn the_background_thread_runs_retention_and_compaction_every_interval() {
    let (sim, clock) = (SimStorage::new(), ManualClock::new(NOW_MS));
    let config = BrokerConfig::default().log_retention_check_interval_ms(1);
    let broker =
        Broker::open_with_env(DATA, config, env_on(Arc::new(sim.clone()), &clock)).unwrap();
    aged_topic(&broker);
    // The thread may clean while the records are still being appended; a pass after the
    // last roll could then find the dirty part below the default ratio and leave it (as
    // Kafka would). Any dirty byte is worth cleaning here, so the end state is certain.
    churned_topic_with(&broker, small().min_cleanable_dirty_ratio(0.0));
    clock.advance_ms(60_001);
    // Waits for the thread's passes (a condition, not a sleep: time on the broker's clock
    // was moved by hand).
    let deadline = Instant::now() + Duration::from_secs(30);
    while broker.describe_topic("aged").unwrap().partitions[0].log_start_offset < 40
        || churn_state(&broker).1 > 10
    {
        assert!(
            Instant::now() < deadline,
            "no retention and compaction within 30 s"
        );
        std::thread::yield_now();
    }
    assert_eq!(broker.last_background_error(), None);
    broker.close().unwrap();
}

/// Records in the burst: `STREAMLOG_BURST_RECORDS`, default one million.
fn burst_records() -> usize {
    std::env::var("STREAMLOG_BURST_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// S1: a producer appends a burst far larger than any consumer takes at once, without
/// waiting for a consumer; later a consumer drains every partition in order with exact
/// counts.
#[test]
fn a_burst_of_a_million_records_is_absorbed_and_drained_in_order() {
    const PARTITIONS: u32 = 4;
    const BATCH: usize = 1000;
    let total = burst_records();
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path(), quiet()).unwrap();
    let config = TopicConfig::default()
        .partitions(PARTITIONS)
        .segment_bytes(8 << 20)
        .retention_bytes(-1);
    let topic = broker.create_topic("burst", config).unwrap();
    let mut sent = 0;
    while sent < total {
        let n = BATCH.min(total - sent);
        // Unkeyed: round-robin within the batch, so each partition gets an exact share.
        let batch = (sent..sent + n)
            .map(|i| Record::new((i as u64).to_be_bytes().to_vec()))
            .collect();
        topic.append_batch(batch).unwrap();
        sent += n;
    }

    let mut drained = 0;
    for p in 0..PARTITIONS {
        let log = topic.partition(p).unwrap();
        let mut expected_offset = 0;
        let mut last_value = None;
        for record in log.read_from(0).unwrap() {
            let record = record.unwrap();
            assert_eq!(record.offset(), expected_offset);
            let bytes: [u8; 8] = record.value().unwrap().try_into().unwrap();
            let value = u64::from_be_bytes(bytes);
            assert_eq!(value % u64::from(PARTITIONS), u64::from(p), "round-robin");
            assert!(
                last_value.is_none_or(|last| value > last),
                "order within partition"
            );
            last_value = Some(value);
            expected_offset += 1;
        }
        assert_eq!(expected_offset, log.log_end_offset());
        let share =
            total / PARTITIONS as usize + usize::from((p as usize) < total % PARTITIONS as usize);
        assert_eq!(expected_offset as usize, share, "partition {p}");
        drained += expected_offset as usize;
    }
    assert_eq!(drained, total);
}

/// Kafka accepts topic names of up to 249 characters, and so does `validate_topic_name`;
/// on a real file system (255-byte file names) such a topic is created, reopened and
/// deleted (its catalogue file was `<name>.properties.tmp`: too long).
#[test]
fn a_topic_with_a_249_character_name_lives_and_dies_on_a_real_file_system() {
    let dir = tempfile::tempdir().unwrap();
    let open = |dir: &Path| Broker::open(dir, quiet()).unwrap();
    let broker = open(dir.path());
    let name = "x".repeat(249);
    let created = broker.create_topic(&name, TopicConfig::default());
    assert!(created.is_ok(), "{:?}", created.err());
    let records: Vec<Record> = (0..3u8).map(|i| Record::new(vec![i])).collect();
    broker.topic(&name).unwrap().append_to(0, records).unwrap();
    broker.close().unwrap();
    let broker = open(dir.path());
    assert_eq!(
        broker
            .topic(&name)
            .unwrap()
            .partition(0)
            .unwrap()
            .log_end_offset(),
        3
    );
    broker.delete_topic(&name).unwrap();
    broker.close().unwrap();
    let broker = open(dir.path());
    assert!(broker.topic(&name).is_err());
    assert!(broker.topics().is_empty(), "{:?}", broker.topics());
}
