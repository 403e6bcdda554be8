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
    /// partition each time. As Kafka's `updateFetchPositions`, every position is resolved
    /// first, so an error there (`NoOffsetForPartition`) fails before anything is read.
    /// Positions then move past the records returned, and only those: a read that fails
    /// after other partitions gave records returns those, leaving the failing partition's
    /// position where it was.
    pub(super) fn fetch(&self, max_records: usize) -> Result<Vec<ConsumerRecord>> {
        let (partitions, start) = {
            let mut inner = self.inner.lock();
            let n = inner.assignment.len().max(1);
            let start = inner.next_partition % n;
            inner.next_partition = (start + 1) % n;
            (inner.assignment.clone(), start)
        };
        let count = partitions.len();
        let mut ready = Vec::with_capacity(count);
        for i in 0..count {
            let (topic, partition) = &partitions[(start + i) % count];
            if let Some((p, position)) = self.fetch_position(topic, *partition)? {
                ready.push((topic, *partition, p, position));
            }
        }
        let mut out = Vec::new();
        for (topic, partition, p, position) in ready {
            if out.len() >= max_records {
                break;
            }
            if position >= p.high_watermark() {
                continue;
            }
            let name: Arc<str> = Arc::from(topic.as_str());
            let (next, failed) =
                read_partition(&p, &name, partition, position, max_records, &mut out);
            let mut inner = self.inner.lock();
            // A rebalance or seek meanwhile (from a callback) wins over this read.
            if let Some(slot) = inner.positions.get_mut(&(topic.clone(), partition))
                && *slot == Some(position)
            {
                *slot = Some(next);
            }
            match failed {
                Some(error) if out.is_empty() => return Err(error),
                Some(_) => break,
                None => {}
            }
        }
        Ok(out)
    }

    /// The position to read an assigned partition from, with its log: resolved, and reset
    /// by `auto.offset.reset` if it fell out of the log. `None` while the partition's
    /// leader (or the group's coordinator) is moving: it is skipped this time, the next
    /// fetch asks for the new one. `None` too once its topic is gone (deleted): as Kafka's
    /// fetcher, the other partitions are read, and a group rebalances the topic away.
    fn fetch_position(&self, topic: &str, partition: u32) -> Result<Option<(Arc<Partition>, u64)>> {
        let skip = |e: &Error| {
            is_moving(e)
                || matches!(
                    e,
                    Error::UnknownTopic { .. } | Error::UnknownPartition { .. }
                )
        };
        let resolved = match self.resolve(topic, partition) {
            Err(e) if skip(&e) => return Ok(None),
            other => other?,
        };
        let p = match self.partition(topic, partition) {
            Err(e) if skip(&e) => return Ok(None),
            other => other?,
        };
        if (p.log_start_offset()..=p.log_end_offset()).contains(&resolved) {
            return Ok(Some((p, resolved)));
        }
        let position = self.reset_position(topic, partition, false)?;
        if let Some(slot) = self
            .inner
            .lock()
            .positions
            .get_mut(&(topic.to_owned(), partition))
            && *slot == Some(resolved)
        {
            *slot = Some(position);
        }
        Ok(Some((p, position)))
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

/// Appends the records of `p` from `position` to `out` until it holds `max_records`:
/// the offset after the last one appended (`position` if none), and the error that cut
/// the read short, if any.
fn read_partition(
    p: &Partition,
    topic: &Arc<str>,
    partition: u32,
    position: u64,
    max_records: usize,
    out: &mut Vec<ConsumerRecord>,
) -> (u64, Option<Error>) {
    let records = match p.read_from(position) {
        Ok(records) => records,
        Err(error) => return (position, Some(error)),
    };
    let mut next = position;
    for record in records {
        if out.len() >= max_records {
            break;
        }
        match record {
            Ok(record) => {
                next = record.offset() + 1;
                out.push(ConsumerRecord::new(topic.clone(), partition, record));
            }
            Err(error) => return (next, Some(error)),
        }
    }
    (next, None)
}
