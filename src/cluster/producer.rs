//! [`Producer`]: sends records to a cluster's partition leaders (S11): it asks the
//! cluster for the leader, sends the batch there, and on a retriable answer (no leader,
//! not the leader, not enough replicas, timeout) waits `retry.backoff.ms`, asks again and
//! retries, up to `retries` times.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;

use super::ClusterInner;
use super::config::ProducerConfig;
use super::node::{Node, Submitted};
use crate::error::{Error, Result};
use crate::record::{Record, encode_batch};
use crate::replication::messages::{ProduceRequest, ProduceResponse};
use crate::replication::{Acks, PartitionKey, ReplicaError};
use crate::topic::partition_for_key;

/// The offset reported for an `acks=0` send: no answer was awaited (Kafka reports -1).
pub const UNKNOWN_OFFSET: u64 = u64::MAX;

/// Sends records to a [`Cluster`](super::Cluster)'s topics. Cheap to share between
/// threads (`&self` everywhere).
///
/// ```
/// use streamlog::{Acks, Cluster, ClusterConfig, ProducerConfig, Record, TopicConfig};
/// # fn main() -> streamlog::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let cluster = Cluster::start(ClusterConfig::in_memory(3).data_dir(dir.path()))?;
/// cluster.create_topic("orders", TopicConfig::default().partitions(2).replication_factor(3))?;
/// let producer = cluster.producer(ProducerConfig::default().acks(Acks::All))?;
/// let (partition, offset) = producer.send("orders", Record::new(b"v".to_vec()).with_key(b"k".to_vec()))?;
/// let leader = cluster.leader("orders", partition)?;
/// let log = cluster.broker(leader)?.topic("orders")?.partition(partition)?;
/// assert_eq!(log.read_from(offset)?.count(), 1);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Producer {
    cluster: Arc<ClusterInner>,
    config: ProducerConfig,
    next_partition: AtomicU32,
}

impl Producer {
    pub(super) fn new(cluster: Arc<ClusterInner>, config: ProducerConfig) -> Self {
        Self {
            cluster,
            config,
            next_partition: AtomicU32::new(0),
        }
    }

    /// The settings.
    pub fn config(&self) -> &ProducerConfig {
        &self.config
    }

    /// Sends one record; returns its partition and offset (S12: a keyed record goes to
    /// the partition of its key's murmur2 hash, others round-robin). With `acks=0` the
    /// offset is [`UNKNOWN_OFFSET`].
    pub fn send(&self, topic: &str, record: Record) -> Result<(u32, u64)> {
        let partitions = self.cluster.partition_count(topic)?;
        let partition = match record.key() {
            Some(key) => partition_for_key(key, partitions),
            None => self.next_partition.fetch_add(1, Ordering::Relaxed) % partitions,
        };
        let offsets = self
            .submit_batch(topic, partition, std::slice::from_ref(&record))?
            .wait()?;
        Ok((partition, offsets.start))
    }

    /// Sends `records` to `partition` as one batch; returns their offsets (an empty
    /// range at [`UNKNOWN_OFFSET`] with `acks=0`).
    pub fn send_to(&self, topic: &str, partition: u32, records: &[Record]) -> Result<Range<u64>> {
        self.send_async(topic, partition, records)?.wait()
    }

    /// Hands `records` to `partition`'s leader as one batch and returns without waiting
    /// for the answer: several sends can be in flight at once (Kafka's
    /// `max.in.flight.requests.per.connection`), so the leader appends the next batch
    /// while followers copy the last. [`PendingSend::wait`] gives the offsets, retrying
    /// as [`Producer::send_to`] does. As in Kafka without idempotence, a batch retried
    /// after a later one succeeded lands after it.
    pub fn send_async(
        &self,
        topic: &str,
        partition: u32,
        records: &[Record],
    ) -> Result<PendingSend> {
        let partitions = self.cluster.partition_count(topic)?;
        if partition >= partitions {
            return Err(Error::UnknownPartition {
                topic: topic.to_string(),
                partition,
                partitions,
            });
        }
        self.submit_batch(topic, partition, records)
    }

    /// Encodes `records` as one batch and hands it to the leader of `partition` (known
    /// to exist).
    fn submit_batch(&self, topic: &str, partition: u32, records: &[Record]) -> Result<PendingSend> {
        let mut buf = Vec::new();
        let now = self.cluster.clock.now_ms();
        let summary = encode_batch(records, self.config.compression, now, &mut buf)?;
        let request = ProduceRequest {
            acks: self.config.acks,
            timeout_ms: self.config.request_timeout_ms,
            partition: PartitionKey {
                topic: topic.to_string(),
                partition,
            },
            records: Bytes::from(buf),
        };
        let first = submit(&self.cluster, &request);
        Ok(PendingSend {
            cluster: self.cluster.clone(),
            config: self.config,
            count: u64::from(summary.last_offset_delta) + 1,
            request,
            first: Some(first),
        })
    }
}

/// Sends to the current leader: what it came to, or the error the leader (or the lack of
/// one) gave.
fn submit(
    cluster: &ClusterInner,
    request: &ProduceRequest,
) -> Result<(Arc<Node>, Submitted), ReplicaError> {
    let key = &request.partition;
    let leader = cluster
        .leader(&key.topic, key.partition)
        .map_err(|_| ReplicaError::NotLeaderOrFollower { leader: None })?;
    let node = cluster
        .node(leader)
        .ok_or(ReplicaError::NotLeaderOrFollower {
            leader: Some(leader),
        })?;
    let submitted = node
        .submit_produce(request)
        .map_err(|_| ReplicaError::StorageError)?;
    Ok((node, submitted))
}

/// The base offset (`None` for `acks=0`) once the submitted send is answered.
fn resolve(
    request: &ProduceRequest,
    submitted: Result<(Arc<Node>, Submitted), ReplicaError>,
) -> Result<Option<u64>, ReplicaError> {
    let (node, submitted) = submitted?;
    let response: ProduceResponse = match submitted {
        Submitted::NoAnswer => return Ok(None),
        Submitted::Done(response) => response,
        Submitted::Waiting(token) => {
            // The leader times the request out itself; the slack covers a leader that
            // stopped meanwhile.
            let wait = Duration::from_millis(u64::from(request.timeout_ms) + 1_000);
            node.wait_answer(token, wait).ok_or_else(|| {
                node.abandon_answer(token);
                ReplicaError::RequestTimedOut
            })?
        }
    };
    match (response.error, response.base_offset) {
        (Some(error), _) => Err(error),
        (None, Some(base)) => Ok(Some(base)),
        (None, None) if request.acks == Acks::None => Ok(None),
        (None, None) => Err(ReplicaError::InvalidRequest),
    }
}

/// A batch handed to a leader by [`Producer::send_async`], its answer not yet taken.
#[derive(Debug)]
pub struct PendingSend {
    cluster: Arc<ClusterInner>,
    config: ProducerConfig,
    request: ProduceRequest,
    count: u64,
    first: Option<Result<(Arc<Node>, Submitted), ReplicaError>>,
}

impl Drop for PendingSend {
    /// A send dropped without [`PendingSend::wait`] still happens (the batch may already
    /// be written), but its answer is not kept for anyone.
    fn drop(&mut self) {
        if let Some(Ok((node, Submitted::Waiting(token)))) = self.first.take() {
            node.abandon_answer(token);
        }
    }
}

impl PendingSend {
    /// Waits for the answer, retrying retriable failures (`retries`, `retry.backoff.ms`);
    /// returns the batch's offsets (an empty range at [`UNKNOWN_OFFSET`] with `acks=0`).
    ///
    /// Errors: [`Error::Produce`] with the last error and the number of attempts.
    pub fn wait(mut self) -> Result<Range<u64>> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let submitted = match self.first.take() {
                Some(first) => first,
                None => submit(&self.cluster, &self.request),
            };
            let error = match resolve(&self.request, submitted) {
                Ok(None) => return Ok(UNKNOWN_OFFSET..UNKNOWN_OFFSET),
                Ok(Some(base)) => return Ok(base..base + self.count),
                Err(error) => error,
            };
            if !error.is_retriable() || attempts > self.config.retries {
                return Err(Error::Produce {
                    topic: self.request.partition.topic.clone(),
                    partition: self.request.partition.partition,
                    error,
                    attempts,
                });
            }
            std::thread::sleep(Duration::from_millis(self.config.retry_backoff_ms));
        }
    }
}
