//! Binary form of the replication bodies ([`crate::replication::messages`]): produce,
//! fetch, offsets-for-leader-epoch and metadata, field by field in declaration order with
//! the primitives of `wire.rs`.
//!
//! An `Option<ReplicaError>` is Kafka's `i16` error code, 0 for none; code 6
//! (`NOT_LEADER_OR_FOLLOWER`) is followed by the optional leader id. [`Acks`] is its
//! `i16` wire value (0, 1, -1).
//!
//! Since frame format 2 a fetched partition carries the echoed fetch offset (after the
//! error) and whether the leader's log may hold offset gaps (a bool, after the log start
//! offset); format 1 frames lacked both and are refused like any other version.

use crate::error::Result;
use crate::replication::messages::{
    Acks, EpochAnswer, EpochEndOffset, EpochQuery, FetchPartition, FetchRequest, FetchResponse,
    FetchedPartition, MetadataRequest, MetadataResponse, OffsetsForLeaderEpochRequest,
    OffsetsForLeaderEpochResponse, PartitionKey, PartitionMetadata, ProduceRequest,
    ProduceResponse, ReplicaError, TopicMetadata,
};

use super::wire::{Reader, Wire, Writer};

/// Smallest encoding of a [`PartitionKey`]: empty topic (4) and partition (4).
const MIN_PARTITION_KEY_BYTES: usize = 8;

impl Wire for PartitionKey {
    fn write(&self, w: &mut Writer) {
        w.string(&self.topic);
        w.u32(self.partition);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(PartitionKey {
            topic: r.string()?,
            partition: r.u32()?,
        })
    }
}

impl Wire for Acks {
    fn write(&self, w: &mut Writer) {
        w.i16(self.code());
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let position = r.position();
        let code = r.i16()?;
        Acks::from_code(code)
            .map_err(|_| Reader::error_at(position, format!("acks must be 0, 1 or -1, not {code}")))
    }
}

impl Wire for Option<ReplicaError> {
    fn write(&self, w: &mut Writer) {
        match self {
            None => w.i16(0),
            Some(error) => {
                w.i16(error.code());
                if let ReplicaError::NotLeaderOrFollower { leader } = error {
                    w.option(leader.as_ref(), |w, id| w.u32(*id));
                }
            }
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let position = r.position();
        let code = r.i16()?;
        if code == 0 {
            return Ok(None);
        }
        let not_leader = ReplicaError::NotLeaderOrFollower { leader: None }.code();
        let leader = if code == not_leader {
            r.option(Reader::u32)?
        } else {
            None
        };
        ReplicaError::from_code(code, leader)
            .map(Some)
            .ok_or_else(|| Reader::error_at(position, format!("unknown replica error code {code}")))
    }
}

impl Wire for EpochEndOffset {
    fn write(&self, w: &mut Writer) {
        w.i32(self.epoch);
        w.u64(self.end_offset);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(EpochEndOffset {
            epoch: r.i32()?,
            end_offset: r.u64()?,
        })
    }
}

impl Wire for ProduceRequest {
    fn write(&self, w: &mut Writer) {
        self.acks.write(w);
        w.u32(self.timeout_ms);
        self.partition.write(w);
        w.bytes(&self.records);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(ProduceRequest {
            acks: Acks::read(r)?,
            timeout_ms: r.u32()?,
            partition: PartitionKey::read(r)?,
            records: r.bytes()?,
        })
    }
}

impl Wire for ProduceResponse {
    fn write(&self, w: &mut Writer) {
        self.partition.write(w);
        self.error.write(w);
        w.option(self.base_offset.as_ref(), |w, v| w.u64(*v));
        w.u64(self.log_start_offset);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(ProduceResponse {
            partition: PartitionKey::read(r)?,
            error: Wire::read(r)?,
            base_offset: r.option(Reader::u64)?,
            log_start_offset: r.u64()?,
        })
    }
}

impl Wire for FetchPartition {
    fn write(&self, w: &mut Writer) {
        self.partition.write(w);
        w.option(self.current_leader_epoch.as_ref(), |w, v| w.i32(*v));
        w.u64(self.fetch_offset);
        w.option(self.last_fetched_epoch.as_ref(), |w, v| w.i32(*v));
        w.option(self.log_start_offset.as_ref(), |w, v| w.u64(*v));
        w.u32(self.max_bytes);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(FetchPartition {
            partition: PartitionKey::read(r)?,
            current_leader_epoch: r.option(Reader::i32)?,
            fetch_offset: r.u64()?,
            last_fetched_epoch: r.option(Reader::i32)?,
            log_start_offset: r.option(Reader::u64)?,
            max_bytes: r.u32()?,
        })
    }
}

impl Wire for FetchRequest {
    fn write(&self, w: &mut Writer) {
        w.option(self.replica_id.as_ref(), |w, v| w.u32(*v));
        w.u32(self.max_bytes);
        w.array(&self.partitions, |w, p| p.write(w));
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(FetchRequest {
            replica_id: r.option(Reader::u32)?,
            max_bytes: r.u32()?,
            partitions: r.array(MIN_PARTITION_KEY_BYTES + 15, FetchPartition::read)?,
        })
    }
}

impl Wire for FetchedPartition {
    fn write(&self, w: &mut Writer) {
        self.partition.write(w);
        self.error.write(w);
        w.u64(self.fetch_offset);
        w.u64(self.high_watermark);
        w.u64(self.log_start_offset);
        w.bool(self.log_may_hold_gaps);
        w.option(self.diverging_epoch.as_ref(), |w, v| v.write(w));
        w.bytes(&self.records);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(FetchedPartition {
            partition: PartitionKey::read(r)?,
            error: Wire::read(r)?,
            fetch_offset: r.u64()?,
            high_watermark: r.u64()?,
            log_start_offset: r.u64()?,
            log_may_hold_gaps: r.bool()?,
            diverging_epoch: r.option(EpochEndOffset::read)?,
            records: r.bytes()?,
        })
    }
}

impl Wire for FetchResponse {
    fn write(&self, w: &mut Writer) {
        w.array(&self.partitions, |w, p| p.write(w));
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(FetchResponse {
            partitions: r.array(MIN_PARTITION_KEY_BYTES + 32, FetchedPartition::read)?,
        })
    }
}

impl Wire for EpochQuery {
    fn write(&self, w: &mut Writer) {
        self.partition.write(w);
        w.option(self.current_leader_epoch.as_ref(), |w, v| w.i32(*v));
        w.i32(self.leader_epoch);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(EpochQuery {
            partition: PartitionKey::read(r)?,
            current_leader_epoch: r.option(Reader::i32)?,
            leader_epoch: r.i32()?,
        })
    }
}

impl Wire for OffsetsForLeaderEpochRequest {
    fn write(&self, w: &mut Writer) {
        w.option(self.replica_id.as_ref(), |w, v| w.u32(*v));
        w.array(&self.partitions, |w, p| p.write(w));
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(OffsetsForLeaderEpochRequest {
            replica_id: r.option(Reader::u32)?,
            partitions: r.array(MIN_PARTITION_KEY_BYTES + 5, EpochQuery::read)?,
        })
    }
}

impl Wire for EpochAnswer {
    fn write(&self, w: &mut Writer) {
        self.partition.write(w);
        self.error.write(w);
        w.option(self.end.as_ref(), |w, v| v.write(w));
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(EpochAnswer {
            partition: PartitionKey::read(r)?,
            error: Wire::read(r)?,
            end: r.option(EpochEndOffset::read)?,
        })
    }
}

impl Wire for OffsetsForLeaderEpochResponse {
    fn write(&self, w: &mut Writer) {
        w.array(&self.partitions, |w, p| p.write(w));
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(OffsetsForLeaderEpochResponse {
            partitions: r.array(MIN_PARTITION_KEY_BYTES + 3, EpochAnswer::read)?,
        })
    }
}

impl Wire for MetadataRequest {
    fn write(&self, w: &mut Writer) {
        w.option(self.topics.as_ref(), |w, topics| {
            w.array(topics, |w, t| w.string(t));
        });
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(MetadataRequest {
            topics: r.option(|r| r.array(4, Reader::string))?,
        })
    }
}

impl Wire for PartitionMetadata {
    fn write(&self, w: &mut Writer) {
        w.u32(self.partition);
        w.option(self.leader.as_ref(), |w, v| w.u32(*v));
        w.i32(self.leader_epoch);
        w.array(&self.replicas, |w, v| w.u32(*v));
        w.array(&self.isr, |w, v| w.u32(*v));
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(PartitionMetadata {
            partition: r.u32()?,
            leader: r.option(Reader::u32)?,
            leader_epoch: r.i32()?,
            replicas: r.array(4, Reader::u32)?,
            isr: r.array(4, Reader::u32)?,
        })
    }
}

impl Wire for TopicMetadata {
    fn write(&self, w: &mut Writer) {
        w.string(&self.name);
        self.error.write(w);
        w.array(&self.partitions, |w, p| p.write(w));
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(TopicMetadata {
            name: r.string()?,
            error: Wire::read(r)?,
            partitions: r.array(17, PartitionMetadata::read)?,
        })
    }
}

impl Wire for MetadataResponse {
    fn write(&self, w: &mut Writer) {
        w.array(&self.brokers, |w, v| w.u32(*v));
        w.option(self.controller.as_ref(), |w, v| w.u32(*v));
        w.array(&self.topics, |w, t| t.write(w));
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(MetadataResponse {
            brokers: r.array(4, Reader::u32)?,
            controller: r.option(Reader::u32)?,
            topics: r.array(10, TopicMetadata::read)?,
        })
    }
}
