//! Binary form of the consumer-group bodies ([`crate::group::coordinator`]'s requests and
//! responses), field by field in declaration order with the primitives of `wire.rs`.
//!
//! An `Option<GroupError>` (and a `Result<(), GroupError>`) is Kafka's `i16` error code,
//! 0 for none. A topic partition is its topic (string) and partition (`u32`). SyncGroup's
//! assignment map is an array of (member id, bytes) pairs in increasing member-id order;
//! any other order is refused, so every map has one encoding.

use std::collections::BTreeMap;

use crate::error::Result;
use crate::group::GroupError;
use crate::group::assignor::TopicPartition;
use crate::group::coordinator::{
    GroupProtocol, HeartbeatRequest, JoinGroupRequest, JoinGroupResponse, JoinedMember,
    LeaveGroupRequest, LeaveGroupResponse, OffsetCommit, OffsetCommitRequest, OffsetCommitResponse,
    OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse,
};
use crate::group::offsets::OffsetAndMetadata;

use super::wire::{Reader, Wire, Writer};

/// Smallest encoding of a topic partition: empty topic (4) and partition (4).
const MIN_TOPIC_PARTITION_BYTES: usize = 8;

fn write_error(w: &mut Writer, error: Option<GroupError>) {
    w.i16(error.map_or(0, GroupError::code));
}

fn read_error(r: &mut Reader<'_>) -> Result<Option<GroupError>> {
    let position = r.position();
    match r.i16()? {
        0 => Ok(None),
        code => GroupError::from_code(code)
            .map(Some)
            .ok_or_else(|| Reader::error_at(position, format!("unknown group error code {code}"))),
    }
}

/// A `Result<(), GroupError>` as its error code.
pub(super) fn write_result(w: &mut Writer, result: &Result<(), GroupError>) {
    write_error(w, result.err());
}

/// A `Result<(), GroupError>` from its error code.
pub(super) fn read_result(r: &mut Reader<'_>) -> Result<Result<(), GroupError>> {
    Ok(read_error(r)?.map_or(Ok(()), Err))
}

fn write_tp(w: &mut Writer, (topic, partition): &TopicPartition) {
    w.string(topic);
    w.u32(*partition);
}

fn read_tp(r: &mut Reader<'_>) -> Result<TopicPartition> {
    Ok((r.string()?, r.u32()?))
}

fn write_opt_string(w: &mut Writer, v: Option<&String>) {
    w.option(v, |w, s| w.string(s));
}

impl Wire for GroupProtocol {
    fn write(&self, w: &mut Writer) {
        w.string(&self.name);
        w.bytes(&self.metadata);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(GroupProtocol {
            name: r.string()?,
            metadata: r.vec()?,
        })
    }
}

impl Wire for JoinGroupRequest {
    fn write(&self, w: &mut Writer) {
        w.string(&self.group_id);
        w.string(&self.member_id);
        w.string(&self.client_id);
        w.i32(self.session_timeout_ms);
        w.i32(self.rebalance_timeout_ms);
        w.string(&self.protocol_type);
        w.array(&self.protocols, |w, p| p.write(w));
        w.bool(self.require_known_member_id);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(JoinGroupRequest {
            group_id: r.string()?,
            member_id: r.string()?,
            client_id: r.string()?,
            session_timeout_ms: r.i32()?,
            rebalance_timeout_ms: r.i32()?,
            protocol_type: r.string()?,
            protocols: r.array(8, GroupProtocol::read)?,
            require_known_member_id: r.bool()?,
        })
    }
}

impl Wire for SyncGroupRequest {
    fn write(&self, w: &mut Writer) {
        w.string(&self.group_id);
        w.string(&self.member_id);
        w.i32(self.generation);
        write_opt_string(w, self.protocol_type.as_ref());
        write_opt_string(w, self.protocol_name.as_ref());
        w.len_prefix(self.assignments.len());
        for (member, assignment) in &self.assignments {
            w.string(member);
            w.bytes(assignment);
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let group_id = r.string()?;
        let member_id = r.string()?;
        let generation = r.i32()?;
        let protocol_type = r.option(Reader::string)?;
        let protocol_name = r.option(Reader::string)?;
        let pairs = r.array(8, |r| {
            let position = r.position();
            Ok((position, r.string()?, r.vec()?))
        })?;
        let mut assignments = BTreeMap::new();
        for (position, member, assignment) in pairs {
            if assignments
                .last_key_value()
                .is_some_and(|(last, _): (&String, _)| *last >= member)
            {
                return Err(Reader::error_at(
                    position,
                    format!("assignment for member {member:?} is out of order or repeated"),
                ));
            }
            assignments.insert(member, assignment);
        }
        Ok(SyncGroupRequest {
            group_id,
            member_id,
            generation,
            protocol_type,
            protocol_name,
            assignments,
        })
    }
}

impl Wire for HeartbeatRequest {
    fn write(&self, w: &mut Writer) {
        w.string(&self.group_id);
        w.string(&self.member_id);
        w.i32(self.generation);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(HeartbeatRequest {
            group_id: r.string()?,
            member_id: r.string()?,
            generation: r.i32()?,
        })
    }
}

impl Wire for LeaveGroupRequest {
    fn write(&self, w: &mut Writer) {
        w.string(&self.group_id);
        w.array(&self.member_ids, |w, m| w.string(m));
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(LeaveGroupRequest {
            group_id: r.string()?,
            member_ids: r.array(4, Reader::string)?,
        })
    }
}

impl Wire for OffsetCommitRequest {
    fn write(&self, w: &mut Writer) {
        w.string(&self.group_id);
        w.string(&self.member_id);
        w.i32(self.generation);
        w.option(self.retention_ms.as_ref(), |w, v| w.i64(*v));
        w.array(&self.offsets, |w, (tp, commit)| {
            write_tp(w, tp);
            w.u64(commit.offset);
            w.option(commit.leader_epoch.as_ref(), |w, v| w.i32(*v));
            w.string(&commit.metadata);
        });
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(OffsetCommitRequest {
            group_id: r.string()?,
            member_id: r.string()?,
            generation: r.i32()?,
            retention_ms: r.option(Reader::i64)?,
            offsets: r.array(MIN_TOPIC_PARTITION_BYTES + 13, |r| {
                let tp = read_tp(r)?;
                let commit = OffsetCommit {
                    offset: r.u64()?,
                    leader_epoch: r.option(Reader::i32)?,
                    metadata: r.string()?,
                };
                Ok((tp, commit))
            })?,
        })
    }
}

impl Wire for OffsetFetchRequest {
    fn write(&self, w: &mut Writer) {
        w.string(&self.group_id);
        w.option(self.partitions.as_ref(), |w, tps| w.array(tps, write_tp));
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(OffsetFetchRequest {
            group_id: r.string()?,
            partitions: r.option(|r| r.array(MIN_TOPIC_PARTITION_BYTES, read_tp))?,
        })
    }
}

impl Wire for JoinGroupResponse {
    fn write(&self, w: &mut Writer) {
        write_error(w, self.error);
        w.string(&self.member_id);
        w.i32(self.generation);
        write_opt_string(w, self.protocol_type.as_ref());
        write_opt_string(w, self.protocol_name.as_ref());
        write_opt_string(w, self.leader_id.as_ref());
        w.array(&self.members, |w, m| {
            w.string(&m.member_id);
            w.bytes(&m.metadata);
        });
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(JoinGroupResponse {
            error: read_error(r)?,
            member_id: r.string()?,
            generation: r.i32()?,
            protocol_type: r.option(Reader::string)?,
            protocol_name: r.option(Reader::string)?,
            leader_id: r.option(Reader::string)?,
            members: r.array(8, |r| {
                Ok(JoinedMember {
                    member_id: r.string()?,
                    metadata: r.vec()?,
                })
            })?,
        })
    }
}

impl Wire for SyncGroupResponse {
    fn write(&self, w: &mut Writer) {
        write_error(w, self.error);
        write_opt_string(w, self.protocol_type.as_ref());
        write_opt_string(w, self.protocol_name.as_ref());
        w.bytes(&self.assignment);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(SyncGroupResponse {
            error: read_error(r)?,
            protocol_type: r.option(Reader::string)?,
            protocol_name: r.option(Reader::string)?,
            assignment: r.vec()?,
        })
    }
}

impl Wire for LeaveGroupResponse {
    fn write(&self, w: &mut Writer) {
        write_error(w, self.error);
        w.array(&self.members, |w, (member, result)| {
            w.string(member);
            write_result(w, result);
        });
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(LeaveGroupResponse {
            error: read_error(r)?,
            members: r.array(6, |r| Ok((r.string()?, read_result(r)?)))?,
        })
    }
}

impl Wire for OffsetCommitResponse {
    fn write(&self, w: &mut Writer) {
        w.array(&self.partitions, |w, (tp, result)| {
            write_tp(w, tp);
            write_result(w, result);
        });
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(OffsetCommitResponse {
            partitions: r.array(MIN_TOPIC_PARTITION_BYTES + 2, |r| {
                Ok((read_tp(r)?, read_result(r)?))
            })?,
        })
    }
}

impl Wire for OffsetAndMetadata {
    fn write(&self, w: &mut Writer) {
        w.u64(self.offset);
        w.option(self.leader_epoch.as_ref(), |w, v| w.i32(*v));
        w.string(&self.metadata);
        w.i64(self.commit_timestamp);
        w.option(self.expire_timestamp.as_ref(), |w, v| w.i64(*v));
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(OffsetAndMetadata {
            offset: r.u64()?,
            leader_epoch: r.option(Reader::i32)?,
            metadata: r.string()?,
            commit_timestamp: r.i64()?,
            expire_timestamp: r.option(Reader::i64)?,
        })
    }
}

impl Wire for OffsetFetchResponse {
    fn write(&self, w: &mut Writer) {
        write_error(w, self.error);
        w.array(&self.partitions, |w, (tp, committed)| {
            write_tp(w, tp);
            w.option(committed.as_ref(), |w, c| c.write(w));
        });
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(OffsetFetchResponse {
            error: read_error(r)?,
            partitions: r.array(MIN_TOPIC_PARTITION_BYTES + 1, |r| {
                Ok((read_tp(r)?, r.option(OffsetAndMetadata::read)?))
            })?,
        })
    }
}
