//! The in-memory store's data and rules, without locking or faults: leases, the controller
//! seat, topics and partition states with versions, and the change log every write goes
//! through. `in_memory.rs` wraps it in a mutex and a clock.

use std::collections::BTreeMap;

use super::change_log::ChangeLog;
use super::{BrokerRegistration, Change, Changes, Controller, TopicRecord, Versioned};
use crate::error::{Error, Result};
use crate::replication::{BrokerId, PartitionState};
use crate::topic::{TopicConfig, validate_topic_name};

/// A live (or lapsed but not yet noticed) lease.
#[derive(Debug, Clone, Copy)]
struct Lease {
    lease_ms: u64,
    expires_at_ms: i64,
    broker_epoch: u64,
}

/// A topic: its config with the version of the last write to the topic, and its
/// partitions with their own versions.
#[derive(Debug)]
struct TopicEntry {
    config: TopicConfig,
    version: u64,
    partitions: Vec<Versioned<PartitionState>>,
}

/// Everything the store holds.
#[derive(Debug)]
pub(super) struct State {
    brokers: BTreeMap<BrokerId, Lease>,
    controller: Option<Controller>,
    /// The epoch of the last controller (0 before the first).
    controller_epoch: i32,
    topics: BTreeMap<String, TopicEntry>,
    log: ChangeLog,
}

/// `now + lease_ms`, saturating.
fn deadline(now_ms: i64, lease_ms: u64) -> i64 {
    now_ms.saturating_add(i64::try_from(lease_ms).unwrap_or(i64::MAX))
}

fn topic_key(topic: &str) -> String {
    format!("/brokers/topics/{topic}")
}

fn partition_key(topic: &str, partition: u32) -> String {
    format!("/brokers/topics/{topic}/partitions/{partition}/state")
}

/// Topic `name`'s entry, or `UnknownTopic`.
fn entry_mut<'a>(
    topics: &'a mut BTreeMap<String, TopicEntry>,
    name: &str,
) -> Result<&'a mut TopicEntry> {
    topics
        .get_mut(name)
        .ok_or_else(|| Error::UnknownTopic { name: name.into() })
}

fn count(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// Refuses a record without partitions or whose config disagrees with their count.
fn check_record(record: &TopicRecord) -> Result<()> {
    if record.partitions.is_empty() {
        return Err(Error::InvalidConfig {
            name: "partitions",
            reason: "a topic needs at least one partition".into(),
        });
    }
    if usize::try_from(record.config.partitions).ok() != Some(record.partitions.len()) {
        return Err(Error::InvalidConfig {
            name: "partitions",
            reason: format!(
                "config says {} partitions but the record holds {} states",
                record.config.partitions,
                record.partitions.len()
            ),
        });
    }
    Ok(())
}

impl State {
    /// An empty store that keeps `change_capacity` changes.
    pub(super) fn new(change_capacity: usize) -> Self {
        Self {
            brokers: BTreeMap::new(),
            controller: None,
            controller_epoch: 0,
            topics: BTreeMap::new(),
            log: ChangeLog::new(change_capacity),
        }
    }

    /// Keeps the last `capacity` changes from now on.
    pub(super) fn set_change_capacity(&mut self, capacity: usize) {
        self.log.set_capacity(capacity);
    }

    /// Removes every lease that lapsed by `now_ms` (oldest deadline first), freeing the
    /// controller seat if its holder is among them.
    pub(super) fn expire(&mut self, now_ms: i64) {
        let mut lapsed: Vec<(i64, BrokerId)> = self
            .brokers
            .iter()
            .filter(|(_, lease)| lease.expires_at_ms <= now_ms)
            .map(|(&broker, lease)| (lease.expires_at_ms, broker))
            .collect();
        lapsed.sort_unstable();
        for (_, broker) in lapsed {
            self.brokers.remove(&broker);
            self.log.push(Change::BrokerExpired { broker });
            self.free_seat_of(broker);
        }
    }

    /// The store's invariants, checked after every call in debug builds: the controller
    /// holds a live lease and the newest epoch.
    pub(super) fn debug_check(&self) {
        if let Some(controller) = self.controller {
            debug_assert!(self.brokers.contains_key(&controller.broker));
            debug_assert_eq!(controller.epoch, self.controller_epoch);
        }
    }

    /// Gives every lease a fresh term from `now_ms` (the store came back from an outage in
    /// which nobody could renew).
    pub(super) fn refresh_leases(&mut self, now_ms: i64) {
        for lease in self.brokers.values_mut() {
            lease.expires_at_ms = lease.expires_at_ms.max(deadline(now_ms, lease.lease_ms));
        }
    }

    fn free_seat_of(&mut self, broker: BrokerId) {
        if self.controller.is_some_and(|c| c.broker == broker) {
            self.controller = None;
            self.log
                .push(Change::ControllerChanged { controller: None });
        }
    }

    pub(super) fn register(
        &mut self,
        broker: BrokerId,
        lease_ms: u64,
        now_ms: i64,
    ) -> Result<BrokerRegistration> {
        if lease_ms == 0 {
            return Err(Error::InvalidConfig {
                name: "lease_ms",
                reason: "a lease must last at least 1 ms".into(),
            });
        }
        if self.brokers.contains_key(&broker) {
            return Err(Error::BrokerAlreadyRegistered { broker });
        }
        let broker_epoch = self.log.push(Change::BrokerRegistered {
            broker,
            broker_epoch: self.log.revision() + 1,
        });
        let lease = Lease {
            lease_ms,
            expires_at_ms: deadline(now_ms, lease_ms),
            broker_epoch,
        };
        self.brokers.insert(broker, lease);
        Ok(BrokerRegistration {
            broker,
            broker_epoch,
            lease_ms,
            expires_at_ms: lease.expires_at_ms,
        })
    }

    pub(super) fn renew(&mut self, broker: BrokerId, now_ms: i64) -> Result<()> {
        let lease = self
            .brokers
            .get_mut(&broker)
            .ok_or(Error::LeaseExpired { broker })?;
        lease.expires_at_ms = deadline(now_ms, lease.lease_ms);
        Ok(())
    }

    pub(super) fn unregister(&mut self, broker: BrokerId) {
        if self.brokers.remove(&broker).is_some() {
            self.log.push(Change::BrokerUnregistered { broker });
            self.free_seat_of(broker);
        }
    }

    pub(super) fn live_brokers(&self) -> Vec<BrokerId> {
        self.brokers.keys().copied().collect()
    }

    pub(super) fn live_broker_epochs(&self) -> Vec<(BrokerId, u64)> {
        self.brokers
            .iter()
            .map(|(&broker, lease)| (broker, lease.broker_epoch))
            .collect()
    }

    pub(super) fn try_become_controller(&mut self, broker: BrokerId) -> Result<Controller> {
        if !self.brokers.contains_key(&broker) {
            return Err(Error::LeaseExpired { broker });
        }
        if let Some(controller) = self.controller {
            return Ok(controller);
        }
        // Every controller has an epoch of its own: at the last one, the seat stays empty
        // rather than be shared (2^31 elections; a store that old must be rebuilt).
        self.controller_epoch =
            self.controller_epoch
                .checked_add(1)
                .ok_or_else(|| Error::ConsensusUnavailable {
                    broker: Some(broker),
                    reason: format!("controller epochs are used up ({})", i32::MAX),
                })?;
        let controller = Controller {
            broker,
            epoch: self.controller_epoch,
        };
        self.controller = Some(controller);
        self.log.push(Change::ControllerChanged {
            controller: Some(controller),
        });
        Ok(controller)
    }

    pub(super) fn controller(&self) -> Option<Controller> {
        self.controller
    }

    pub(super) fn create_topic(&mut self, name: &str, record: TopicRecord) -> Result<u64> {
        validate_topic_name(name)?;
        if self.topics.contains_key(name) {
            return Err(Error::TopicExists { name: name.into() });
        }
        check_record(&record)?;
        let version = self.log.revision() + 1;
        self.log.push(Change::TopicCreated {
            topic: name.into(),
            version,
        });
        let partitions = record
            .partitions
            .into_iter()
            .map(|value| Versioned { version, value })
            .collect();
        self.topics.insert(
            name.into(),
            TopicEntry {
                config: record.config,
                version,
                partitions,
            },
        );
        Ok(version)
    }

    pub(super) fn topic(&self, name: &str) -> Option<Versioned<TopicRecord>> {
        self.topics.get(name).map(|entry| Versioned {
            version: entry.version,
            value: TopicRecord {
                config: entry.config.clone(),
                partitions: entry.partitions.iter().map(|p| p.value.clone()).collect(),
            },
        })
    }

    pub(super) fn topics(&self) -> Vec<String> {
        self.topics.keys().cloned().collect()
    }

    pub(super) fn set_topic(
        &mut self,
        name: &str,
        record: TopicRecord,
        expected_version: u64,
    ) -> Result<u64> {
        let entry = entry_mut(&mut self.topics, name)?;
        if entry.version != expected_version {
            return Err(Error::VersionConflict {
                key: topic_key(name),
                expected: expected_version,
                actual: entry.version,
            });
        }
        check_record(&record)?;
        if record.partitions.len() < entry.partitions.len() {
            return Err(Error::InvalidConfig {
                name: "partitions",
                reason: format!(
                    "topic {name:?} has {} partitions; their number cannot shrink to {}",
                    entry.partitions.len(),
                    record.partitions.len()
                ),
            });
        }
        let changed: Vec<u32> = entry
            .partitions
            .iter()
            .zip(&record.partitions)
            .enumerate()
            .filter(|(_, (old, new))| old.value != **new)
            .map(|(i, _)| count(i))
            .collect();
        // One revision per change: the partition changes, then the topic change, whose
        // revision is the version of everything this write touched.
        let version = self.log.revision() + changed.len() as u64 + 1;
        for (i, value) in record.partitions.into_iter().enumerate() {
            match entry.partitions.get_mut(i) {
                Some(slot) if slot.value != value => *slot = Versioned { version, value },
                Some(_) => {}
                None => entry.partitions.push(Versioned { version, value }),
            }
        }
        entry.config = record.config;
        entry.version = version;
        for partition in changed {
            self.log.push(Change::PartitionChanged {
                topic: name.into(),
                partition,
                version,
            });
        }
        let pushed = self.log.push(Change::TopicChanged {
            topic: name.into(),
            version,
        });
        debug_assert_eq!(pushed, version);
        Ok(version)
    }

    pub(super) fn add_partitions(
        &mut self,
        name: &str,
        partitions: Vec<PartitionState>,
    ) -> Result<u64> {
        let entry = entry_mut(&mut self.topics, name)?;
        if partitions.is_empty() {
            return Err(Error::InvalidConfig {
                name: "partitions",
                reason: "no partitions to add".into(),
            });
        }
        let version = self.log.revision() + 1;
        entry.partitions.extend(
            partitions
                .into_iter()
                .map(|value| Versioned { version, value }),
        );
        entry.config.partitions = count(entry.partitions.len());
        entry.version = version;
        self.log.push(Change::TopicChanged {
            topic: name.into(),
            version,
        });
        Ok(version)
    }

    pub(super) fn delete_topic(&mut self, name: &str) -> Result<()> {
        if self.topics.remove(name).is_none() {
            return Err(Error::UnknownTopic { name: name.into() });
        }
        self.log.push(Change::TopicDeleted { topic: name.into() });
        Ok(())
    }

    pub(super) fn partition_state(
        &self,
        topic: &str,
        partition: u32,
    ) -> Option<Versioned<PartitionState>> {
        let entry = self.topics.get(topic)?;
        entry
            .partitions
            .get(usize::try_from(partition).ok()?)
            .cloned()
    }

    pub(super) fn set_partition_state(
        &mut self,
        topic: &str,
        partition: u32,
        state: PartitionState,
        expected_version: u64,
    ) -> Result<u64> {
        let version = self.log.revision() + 1;
        let entry = self
            .topics
            .get_mut(topic)
            .ok_or_else(|| Error::UnknownTopic { name: topic.into() })?;
        let partitions = count(entry.partitions.len());
        let slot = usize::try_from(partition)
            .ok()
            .and_then(|i| entry.partitions.get_mut(i))
            .ok_or_else(|| Error::UnknownPartition {
                topic: topic.into(),
                partition,
                partitions,
            })?;
        if slot.version != expected_version {
            return Err(Error::VersionConflict {
                key: partition_key(topic, partition),
                expected: expected_version,
                actual: slot.version,
            });
        }
        *slot = Versioned {
            version,
            value: state,
        };
        entry.version = version;
        self.log.push(Change::PartitionChanged {
            topic: topic.into(),
            partition,
            version,
        });
        Ok(version)
    }

    pub(super) fn revision(&self) -> u64 {
        self.log.revision()
    }

    pub(super) fn changes_since(&self, revision: u64) -> Result<Changes> {
        self.log.since(revision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_controller_epoch_is_never_handed_out_twice() {
        let mut state = State::new(16);
        state.controller_epoch = i32::MAX - 1;
        state.register(1, 1_000, 0).unwrap();
        state.register(2, 1_000, 0).unwrap();
        assert_eq!(state.try_become_controller(1).unwrap().epoch, i32::MAX);
        state.unregister(1);
        let refused = state.try_become_controller(2);
        assert!(
            matches!(
                refused,
                Err(Error::ConsensusUnavailable {
                    broker: Some(2),
                    ..
                })
            ),
            "{refused:?}"
        );
        assert_eq!(state.controller(), None, "the seat stays empty");
        assert_eq!(state.controller_epoch, i32::MAX);
    }
}
