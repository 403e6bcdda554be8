//! Positions and reads: resolving a partition's starting position (committed offset, else
//! `auto.offset.reset`), reading from the partition's leader up to its high watermark,
//! seek, position and lag.

use std::sync::Arc;

use super::backend::is_moving;
use super::{AutoOffsetReset, Consumer, ConsumerRecord};
use crate::error::{Error, Result};
use crate::log::Partition;

impl Consumer {
    fn partition(&self, topic: &str, partition: u32) -> Result<Arc<Partition>> {
        self.backend.partition(topic, partition)
    }

    /// Where to start on a partition without a position (or whose position left the log).
    fn reset_position(&self, topic: &str, partition: u32, committed: bool) -> Result<u64> {
        if committed
            && self.config.group_id.is_some()
            && let Some(offset) = self.committed(topic, partition)?
        {
            let p = self.partition(topic, partition)?;
            if (p.log_start_offset()..=p.log_end_offset()).contains(&offset) {
                return Ok(offset);
            }
        }
        let p = self.partition(topic, partition)?;
        match self.config.auto_offset_reset {
            AutoOffsetReset::Earliest => Ok(p.log_start_offset()),
            AutoOffsetReset::Latest => Ok(p.high_watermark()),
            AutoOffsetReset::None => Err(Error::NoOffsetForPartition {
                topic: topic.to_owned(),
                partition,
            }),
        }
    }

    /// The position of an assigned partition, resolved if needed.
    fn resolve(&self, topic: &str, partition: u32) -> Result<u64> {
        let key = (topic.to_owned(), partition);
        let known = {
            let inner = self.inner.lock();
            match inner.positions.get(&key) {
                None => {
                    return Err(Error::NotAssigned {
                        topic: topic.to_owned(),
                        partition,
                    });
                }
                Some(known) => *known,
            }
        };
        if let Some(offset) = known {
            return Ok(offset);
        }
        let offset = self.reset_position(topic, partition, true)?;
        if let Some(slot) = self.inner.lock().positions.get_mut(&key) {
            *slot = Some(offset);
        }
        Ok(offset)
    }

    /// Reads up to `max_records` from the assigned partitions, starting with a different
    /// partition each time.
    pub(super) fn fetch(&self, max_records: usize) -> Result<Vec<ConsumerRecord>> {
        let (partitions, start) = {
            let mut inner = self.inner.lock();
            let n = inner.assignment.len().max(1);
            let start = inner.next_partition % n;
            inner.next_partition = (start + 1) % n;
            (inner.assignment.clone(), start)
        };
        let mut out = Vec::new();
        let count = partitions.len();
        for i in 0..count {
            if out.len() >= max_records {
                break;
            }
            let (topic, partition) = &partitions[(start + i) % count];
            // A partition whose leader (or the group's coordinator) is moving is skipped
            // this time; the next fetch asks for the new one.
            let resolved = match self.resolve(topic, *partition) {
                Err(e) if is_moving(&e) => continue,
                other => other?,
            };
            let mut position = resolved;
            let p = match self.partition(topic, *partition) {
                Err(e) if is_moving(&e) => continue,
                other => other?,
            };
            if position < p.log_start_offset() || position > p.log_end_offset() {
                position = self.reset_position(topic, *partition, false)?;
            }
            if position >= p.high_watermark() {
                if position != resolved
                    && let Some(slot) = self
                        .inner
                        .lock()
                        .positions
                        .get_mut(&(topic.clone(), *partition))
                    && *slot == Some(resolved)
                {
                    *slot = Some(position);
                }
                continue;
            }
            let name: Arc<str> = Arc::from(topic.as_str());
            let mut next = position;
            for record in p.read_from(position)? {
                if out.len() >= max_records {
                    break;
                }
                let record = record?;
                next = record.offset() + 1;
                out.push(ConsumerRecord::new(name.clone(), *partition, record));
            }
            let mut inner = self.inner.lock();
            // A rebalance or seek meanwhile (from a callback) wins over this read.
            if let Some(slot) = inner.positions.get_mut(&(topic.clone(), *partition))
                && *slot == Some(resolved)
            {
                *slot = Some(next);
            }
        }
        Ok(out)
    }

    /// Moves the position of an assigned partition: the next poll reads from `offset`.
    /// [`Error::NotAssigned`], or [`Error::OffsetOutOfRange`] for an offset outside
    /// `[log start, log end]`; the position is unchanged then.
    pub fn seek(&self, topic: &str, partition: u32, offset: u64) -> Result<()> {
        let p = self.partition(topic, partition)?;
        let (log_start, log_end) = (p.log_start_offset(), p.log_end_offset());
        if !(log_start..=log_end).contains(&offset) {
            return Err(Error::OffsetOutOfRange {
                requested: offset,
                log_start,
                log_end,
            });
        }
        let mut inner = self.inner.lock();
        match inner.positions.get_mut(&(topic.to_owned(), partition)) {
            Some(slot) => {
                *slot = Some(offset);
                Ok(())
            }
            None => Err(Error::NotAssigned {
                topic: topic.to_owned(),
                partition,
            }),
        }
    }

    /// The next offset the consumer reads from an assigned partition (resolving it from
    /// the committed offset or `auto.offset.reset` if needed).
    pub fn position(&self, topic: &str, partition: u32) -> Result<u64> {
        self.resolve(topic, partition)
    }

    /// How far an assigned partition's position is behind its high watermark.
    pub fn lag(&self, topic: &str, partition: u32) -> Result<u64> {
        let position = self.resolve(topic, partition)?;
        let hw = self.partition(topic, partition)?.high_watermark();
        Ok(hw.saturating_sub(position))
    }

    /// The lag of every assigned partition, sorted.
    pub fn lags(&self) -> Result<Vec<((String, u32), u64)>> {
        self.assignment()
            .into_iter()
            .map(|(t, p)| Ok(((t.clone(), p), self.lag(&t, p)?)))
            .collect()
    }
}
