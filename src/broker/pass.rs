//! One pass of a job over every partition of every topic, shared by retention
//! (`retention.rs`) and compaction (`compaction.rs`): every partition is tried even when
//! one fails, the first error is returned at the end, and a topic deleted while the pass
//! runs is skipped.

use std::sync::Arc;

use super::Shared;
use crate::error::{Error, Result};
use crate::log::Partition;
use crate::topic::Topic;

impl Shared {
    /// Runs `job` on each partition, by topic then partition; collects what it returns
    /// (`None` is left out) with the topic name and partition number.
    pub(super) fn each_partition<T>(
        &self,
        mut job: impl FnMut(&Partition) -> Result<Option<T>>,
    ) -> Result<Vec<(String, u32, T)>> {
        self.ensure_open()?;
        let mut done = Vec::new();
        let mut first_error = None;
        for topic in self.open_topics() {
            for (partition, log) in (0..).zip(topic.partitions()) {
                match job(&log) {
                    Ok(Some(out)) => done.push((topic.name().to_owned(), partition, out)),
                    Ok(None) => {}
                    // Deleted (or the broker closing) while the pass ran.
                    Err(Error::Closed { .. }) if !self.is_listed(&topic) => {}
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        first_error.map_or(Ok(done), Err)
    }

    /// Whether `topic` is still the broker's topic of its name.
    fn is_listed(&self, topic: &Arc<Topic>) -> bool {
        let topics = self.topics.read();
        topics
            .get(topic.name())
            .is_some_and(|e| Arc::ptr_eq(&e.topic, topic))
    }
}
