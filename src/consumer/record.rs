//! [`ConsumerRecord`]: a record returned by [`super::Consumer::poll`], with where it came from.

use std::sync::Arc;

use crate::record::{HeaderView, LogRecord};

/// A record read by a consumer: its topic, partition and offset, key, value, timestamp and
/// headers. Key and value share the read buffer (no copy).
#[derive(Clone)]
pub struct ConsumerRecord {
    topic: Arc<str>,
    partition: u32,
    record: LogRecord,
}

impl std::fmt::Debug for ConsumerRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerRecord")
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .field("offset", &self.offset())
            .field("timestamp", &self.timestamp())
            .finish_non_exhaustive()
    }
}

impl ConsumerRecord {
    pub(crate) fn new(topic: Arc<str>, partition: u32, record: LogRecord) -> Self {
        Self {
            topic,
            partition,
            record,
        }
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// The record's offset in its partition.
    pub fn offset(&self) -> u64 {
        self.record.offset()
    }

    /// The key, if any.
    pub fn key(&self) -> Option<&[u8]> {
        self.record.key()
    }

    /// The value (`None` for a tombstone).
    pub fn value(&self) -> Option<&[u8]> {
        self.record.value()
    }

    /// The timestamp (ms since the Unix epoch).
    pub fn timestamp(&self) -> i64 {
        self.record.timestamp()
    }

    /// The headers.
    pub fn headers(&self) -> Vec<HeaderView<'_>> {
        self.record.headers()
    }
}
