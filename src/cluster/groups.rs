//! Consumer groups on a [`Cluster`](super::Cluster) (issue 6, item 5).
//!
//! `__consumer_offsets` is a replicated topic of the cluster, created on the first
//! consumer with a group id and placed by the controller like any topic. Every running
//! broker has a [`GroupService`] (created on first use) whose coordinator serves the
//! groups of the `__consumer_offsets` partitions the broker leads ([`NodeOffsets`] as
//! [`Ownership`]): when it comes to lead one — and its high watermark has reached its log
//! end, so every acknowledged write is there — the service replays that partition and
//! loads its groups; when it stops leading one, the groups are unloaded and their
//! consumers, answered `NotCoordinator`, look the coordinator up again
//! ([`ClusterBackend::group_service`]). Writes go through the node's replica manager as
//! the partition's leader with `acks=all` ([`NodeOffsets`] as [`OffsetsLog`]), so a commit
//! is acknowledged only once replicated. Consumers read each partition from its current
//! leader's log, up to the high watermark.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::ClusterInner;
use super::node::{Node, Submitted};
use crate::broker::background::Background;
use crate::clock::Clock;
use crate::consumer::backend::Backend;
use crate::error::{Error, Result};
use crate::group::offsets::{
    CONSUMER_OFFSETS_TOPIC, OffsetsLog, OffsetsStore, partition_for_group,
};
use crate::group::service::{GroupService, Led, Ownership};
use crate::log::Partition;
use crate::record::{Compression, Record, encode_batch};
use crate::replication::messages::ProduceRequest;
use crate::replication::{Acks, BrokerId, PartitionKey, ReplicaError};

/// How often a broker's group service is ticked when no consumer calls in (as a
/// broker's timer thread does).
const GROUP_TIMER_INTERVAL: Duration = Duration::from_millis(50);

/// How long an append to `__consumer_offsets` may wait for replication
/// (`offsets.commit.timeout.ms`, 5 s).
const OFFSETS_COMMIT_TIMEOUT_MS: u32 = 5_000;

/// How often a waiting append checks that its broker still leads the partition.
const LEADER_CHECK: Duration = Duration::from_millis(20);

/// A broker's `__consumer_offsets` replicas, as its group service reads, writes and owns
/// them.
#[derive(Debug)]
pub(super) struct NodeOffsets {
    node: Arc<Node>,
    clock: Arc<dyn Clock>,
}

impl NodeOffsets {
    fn key(partition: u32) -> PartitionKey {
        PartitionKey {
            topic: CONSUMER_OFFSETS_TOPIC.to_string(),
            partition,
        }
    }
}

impl OffsetsLog for NodeOffsets {
    fn partition(&self, partition: u32) -> Result<Arc<Partition>> {
        self.node
            .log(&Self::key(partition))
            .ok_or_else(|| Error::LeaderNotAvailable {
                topic: CONSUMER_OFFSETS_TOPIC.to_string(),
                partition,
            })
    }

    /// Appends as the partition's leader with `acks=all`: returns once the high watermark
    /// passed the batch; fails when the broker stops leading the partition meanwhile.
    fn append(&self, partition: u32, records: &[Record]) -> Result<Range<u64>> {
        let key = Self::key(partition);
        let mut buf = Vec::new();
        let summary = encode_batch(records, Compression::None, self.clock.now_ms(), &mut buf)?;
        let count = u64::from(summary.last_offset_delta) + 1;
        let request = ProduceRequest {
            acks: Acks::All,
            timeout_ms: OFFSETS_COMMIT_TIMEOUT_MS,
            partition: key.clone(),
            records: Bytes::from(buf),
        };
        let failed = |error| Error::Produce {
            topic: CONSUMER_OFFSETS_TOPIC.to_string(),
            partition,
            error,
            attempts: 1,
        };
        let response = match self.node.submit_produce(&request)? {
            Submitted::Done(response) => response,
            Submitted::NoAnswer => return Err(failed(ReplicaError::InvalidRequest)),
            Submitted::Waiting(token) => {
                // The leader times the request out itself; the slack covers a broker that
                // stopped meanwhile.
                let deadline = Instant::now()
                    + Duration::from_millis(u64::from(OFFSETS_COMMIT_TIMEOUT_MS) + 1_000);
                loop {
                    if let Some(response) = self.node.wait_answer(token, LEADER_CHECK) {
                        break response;
                    }
                    let error = if !self.node.leads(&key) {
                        ReplicaError::NotLeaderOrFollower { leader: None }
                    } else if Instant::now() >= deadline {
                        ReplicaError::RequestTimedOut
                    } else {
                        continue;
                    };
                    self.node.abandon_answer(token);
                    return Err(failed(error));
                }
            }
        };
        match (response.error, response.base_offset) {
            (Some(error), _) => Err(failed(error)),
            (None, Some(base)) => Ok(base..base + count),
            (None, None) => Err(failed(ReplicaError::InvalidRequest)),
        }
    }
}

impl Ownership for NodeOffsets {
    fn led_partitions(&self) -> BTreeMap<u32, Led> {
        self.node
            .led_partitions(CONSUMER_OFFSETS_TOPIC)
            .into_iter()
            .map(|(partition, epoch, log)| {
                let caught_up = log.high_watermark() >= log.log_end_offset();
                (partition, Led { epoch, caught_up })
            })
            .collect()
    }
}

/// A [`crate::Consumer`]'s view of a cluster.
#[derive(Debug)]
pub(super) struct ClusterBackend {
    pub(super) cluster: Arc<ClusterInner>,
}

impl Backend for ClusterBackend {
    /// The current leader's log of the partition.
    fn partition(&self, topic: &str, partition: u32) -> Result<Arc<Partition>> {
        let leader = self.cluster.leader(topic, partition)?;
        let key = PartitionKey {
            topic: topic.to_string(),
            partition,
        };
        self.cluster
            .node(leader)
            .filter(|node| node.leads(&key))
            .and_then(|node| node.log(&key))
            .ok_or_else(|| Error::LeaderNotAvailable {
                topic: topic.to_string(),
                partition,
            })
    }

    fn partition_count(&self, topic: &str) -> Result<u32> {
        self.cluster.partition_count(topic)
    }

    fn is_shut_down(&self) -> bool {
        self.cluster
            .shut_down
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// The service of the broker leading the group's `__consumer_offsets` partition.
    fn group_service(&self, group: &str) -> Result<Arc<GroupService>> {
        let partitions = self.cluster.offsets_partitions()?;
        let partition = partition_for_group(group, partitions);
        let leader = self.cluster.leader(CONSUMER_OFFSETS_TOPIC, partition)?;
        self.cluster.group_service_of(leader)
    }
}

impl ClusterInner {
    /// The partition count of `__consumer_offsets`, which is created first if needed
    /// (`config.offsets`, replicated to `min(3, live brokers)` brokers with
    /// `min.insync.replicas = min(2, replicas)`).
    pub(super) fn offsets_partitions(&self) -> Result<u32> {
        if let Ok(partitions) = self.partition_count(CONSUMER_OFFSETS_TOPIC) {
            return Ok(partitions);
        }
        let live = self.consensus.live_brokers()?.len();
        let replicas = u16::try_from(live.clamp(1, 3)).unwrap_or(3);
        let config = self
            .config
            .offsets
            .topic_config()
            .replication_factor(replicas)
            .min_insync_replicas(replicas.min(2));
        match self.create_topic(CONSUMER_OFFSETS_TOPIC, config) {
            Ok(()) => {}
            Err(Error::TopicExists { .. }) => {
                let partitions = self.partition_count(CONSUMER_OFFSETS_TOPIC)?;
                self.wait_for_leaders(CONSUMER_OFFSETS_TOPIC, partitions)?;
            }
            Err(e) => return Err(e),
        }
        self.partition_count(CONSUMER_OFFSETS_TOPIC)
    }

    /// Running broker `id`'s group service, created on first use.
    ///
    /// Errors: [`Error::BrokerStopped`].
    pub(super) fn group_service_of(&self, id: BrokerId) -> Result<Arc<GroupService>> {
        let partitions = self.partition_count(CONSUMER_OFFSETS_TOPIC)?;
        let mut running = self.running.lock();
        let broker = running
            .get_mut(&id)
            .filter(|r| !r.node.is_halted())
            .ok_or(Error::BrokerStopped { broker: id })?;
        if let Some(service) = &broker.groups {
            return Ok(service.clone());
        }
        let offsets = Arc::new(NodeOffsets {
            node: broker.node.clone(),
            clock: self.clock.clone(),
        });
        let store = OffsetsStore::over(offsets.clone(), partitions, self.config.offsets.clone());
        let instance = self
            .group_services
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let service = Arc::new(GroupService::with_owner(
            store,
            // Distinct across the services of this process (the counter) and across
            // runs of the cluster (the time it started them).
            self.config
                .group_coordinator
                .clone()
                .instance(instance ^ ((self.clock.now_ms() as u64) << 16)),
            self.clock.clone(),
            offsets,
        )?);
        let ticked = Arc::downgrade(&service);
        broker.group_timer = Some(Background::start(
            format!("streamlog-groups-{id}"),
            GROUP_TIMER_INTERVAL,
            move || {
                if let Some(service) = ticked.upgrade() {
                    service.tick();
                }
            },
        )?);
        broker.groups = Some(service.clone());
        Ok(service)
    }
}
