//! [`Producer`]: sends records to a cluster's partition leaders (S11): it asks the
//! cluster for the leader, sends the batch there, and on a retriable answer (no leader,
//! not the leader, not enough replicas, timeout) waits `retry.backoff.ms`, asks again and
//! retries, up to `retries` times.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;

use super::ClusterInner;
use super::config::ProducerConfig;
use super::node::{Node, Submitted};
use crate::error::{Error, Result};
use crate::record::{Record, encode_in_place};
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
    buffers: Arc<BufferPool>,
}

impl Producer {
    pub(super) fn new(cluster: Arc<ClusterInner>, config: ProducerConfig) -> Self {
        Self {
            cluster,
            config,
            next_partition: AtomicU32::new(0),
            buffers: Arc::default(),
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
        let mut buf = self.buffers.take();
        let now = self.cluster.clock.now_ms();
        let summary = encode_in_place(records, self.config.compression, now, &mut buf)?;
        buf.truncate(summary.size_bytes);
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
            buffers: self.buffers.clone(),
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
    buffers: Arc<BufferPool>,
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
        let result = self.answer();
        self.buffers
            .give_back(std::mem::take(&mut self.request.records));
        result
    }

    /// The answer, after retries.
    fn answer(&mut self) -> Result<Range<u64>> {
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

/// Encode buffers of answered sends, reused by the next ones: a batch of 1000 records is
/// about 110 KB, which a fresh `Vec` would zero-fill and fault in page by page on every
/// send. As many buffers are kept as sends were in flight at once, up to [`Self::KEEP`].
#[derive(Debug, Default)]
struct BufferPool {
    spare: Mutex<Vec<Vec<u8>>>,
}

impl BufferPool {
    /// Kafka's producer keeps 5 requests in flight per connection by default; a few more
    /// cover several partitions without holding much memory nobody uses (at most this
    /// many of the largest batch sent).
    const KEEP: usize = 8;

    /// A buffer whose length is that of an earlier batch (its bytes are overwritten), or
    /// an empty one.
    fn take(&self) -> Vec<u8> {
        self.spare.lock().pop().unwrap_or_default()
    }

    /// Keeps the buffer of `records` for a later send, unless someone else still holds
    /// it (a transport that kept the request) or enough are kept already.
    fn give_back(&self, records: Bytes) {
        let mut spare = self.spare.lock();
        if spare.len() < Self::KEEP
            && let Ok(buf) = records.try_into_mut()
        {
            spare.push(buf.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cluster, ClusterConfig, TopicConfig};

    fn records(n: usize, len: usize, tag: u8) -> Vec<Record> {
        (0..n)
            .map(|i| Record::new(vec![tag ^ i as u8; len]))
            .collect()
    }

    #[test]
    fn batches_encoded_in_a_reused_buffer_are_exactly_their_own_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = Cluster::start(ClusterConfig::in_memory(1).data_dir(dir.path())).unwrap();
        cluster.create_topic("t", TopicConfig::default()).unwrap();
        let producer = cluster
            .producer(ProducerConfig::default().acks(Acks::All))
            .unwrap();
        // A big batch, then smaller ones written over its buffer, then a bigger one that
        // outgrows it.
        let sends = [
            records(50, 300, 1),
            records(3, 10, 2),
            records(1, 0, 3),
            records(80, 400, 4),
        ];
        let mut expected = Vec::new();
        for batch in &sends {
            producer.send_to("t", 0, batch).unwrap();
            assert_eq!(
                producer.buffers.spare.lock().len(),
                1,
                "the buffer came back"
            );
            expected.extend(batch.iter().map(|r| r.value().unwrap().to_vec()));
        }
        let leader = cluster.leader("t", 0).unwrap();
        let log = cluster
            .broker(leader)
            .unwrap()
            .topic("t")
            .unwrap()
            .partition(0)
            .unwrap();
        let stored: Vec<Vec<u8>> = log
            .read_from(0)
            .unwrap()
            .map(|r| r.unwrap().value().unwrap().to_vec())
            .collect();
        assert_eq!(stored, expected);
    }

    #[test]
    fn a_pool_keeps_only_buffers_nobody_else_holds_and_at_most_its_limit() {
        let pool = BufferPool::default();
        let held = Bytes::from(vec![7; 100]);
        let other = held.clone();
        pool.give_back(held);
        assert!(
            pool.spare.lock().is_empty(),
            "a shared buffer is not reused"
        );
        drop(other);
        for _ in 0..BufferPool::KEEP + 3 {
            pool.give_back(Bytes::from(vec![1; 10]));
        }
        assert_eq!(pool.spare.lock().len(), BufferPool::KEEP);
        assert_eq!(pool.take(), vec![1; 10]);
    }
}
