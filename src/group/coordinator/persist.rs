//! Records the coordinator asks the caller to append to `__consumer_offsets`, the append
//! results it is told back, and the bookkeeping of appends in flight.
//!
//! Nothing becomes visible before its append succeeds: a commit is installed in the offset
//! cache, and a leader's assignment is handed to the members (the group turns Stable), only
//! in [`super::GroupCoordinator::append_completed`] with `Ok`. A failed append discards the
//! pending value and answers with the mapped error.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::Error;
use crate::group::GroupError;
use crate::group::assignor::TopicPartition;
use crate::group::offsets::{GroupMetadata, OffsetAndMetadata};

use super::responses::{Output, ReplyTo};

/// Identifies one [`PersistRequest`]; hand it back to `append_completed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PersistId(pub u64);

/// Append `record` for `group_id` to partition `offsets_partition` of `__consumer_offsets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistRequest {
    /// Report the append's outcome with this id.
    pub id: PersistId,
    /// The group.
    pub group_id: String,
    /// The group's `__consumer_offsets` partition.
    pub offsets_partition: u32,
    /// What to write.
    pub record: PersistRecord,
}

/// A write to `__consumer_offsets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PersistRecord {
    /// Offset commits, one record per partition (key group/topic/partition), in one batch.
    Offsets(Vec<(TopicPartition, OffsetAndMetadata)>),
    /// The group's metadata after a generation formed or was assigned (key group).
    Group(GroupMetadata),
    /// Tombstones for the group's metadata and each of these offsets.
    DeleteGroup {
        /// The offsets to delete.
        offsets: Vec<TopicPartition>,
    },
    /// Tombstones for these offsets of the group (a deleted topic's); the group stays.
    DeleteOffsets(Vec<TopicPartition>),
}

/// Why an append to `__consumer_offsets` failed, by Kafka's produce error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AppendError {
    /// `UNKNOWN_TOPIC_OR_PARTITION`.
    UnknownTopicOrPartition,
    /// `NOT_ENOUGH_REPLICAS`.
    NotEnoughReplicas,
    /// `NOT_ENOUGH_REPLICAS_AFTER_APPEND`.
    NotEnoughReplicasAfterAppend,
    /// `NOT_LEADER_OR_FOLLOWER`.
    NotLeaderOrFollower,
    /// `MESSAGE_TOO_LARGE`.
    MessageTooLarge,
    /// `RECORD_LIST_TOO_LARGE`.
    RecordListTooLarge,
    /// `INVALID_FETCH_SIZE`.
    InvalidFetchSize,
    /// `CORRUPT_MESSAGE`.
    CorruptMessage,
    /// Anything else (I/O, ...).
    Other,
}

impl AppendError {
    /// Classifies a storage error from appending to the log.
    pub fn from_error(error: &Error) -> Self {
        match error {
            Error::UnknownTopic { .. } | Error::UnknownPartition { .. } => {
                AppendError::UnknownTopicOrPartition
            }
            Error::MessageTooLarge { .. } | Error::BatchLargerThanSegment { .. } => {
                AppendError::MessageTooLarge
            }
            Error::Corrupt { .. } | Error::InvalidBatch { .. } => AppendError::CorruptMessage,
            // A cluster node's append as the partition's leader (acks=all).
            Error::Produce { error, .. } => Self::from_replica_error(*error),
            Error::LeaderNotAvailable { .. } | Error::BrokerStopped { .. } => {
                AppendError::NotLeaderOrFollower
            }
            _ => AppendError::Other,
        }
    }

    /// Classifies a replica's produce error (Kafka's mapping in `GroupMetadataManager`:
    /// a timed-out replication is `NotEnoughReplicasAfterAppend`'s kin, the coordinator is
    /// not available).
    pub fn from_replica_error(error: crate::replication::ReplicaError) -> Self {
        use crate::replication::ReplicaError as R;
        match error {
            R::NotLeaderOrFollower { .. } | R::FencedLeaderEpoch | R::UnknownLeaderEpoch => {
                AppendError::NotLeaderOrFollower
            }
            R::UnknownTopicOrPartition => AppendError::UnknownTopicOrPartition,
            R::NotEnoughReplicas => AppendError::NotEnoughReplicas,
            R::NotEnoughReplicasAfterAppend | R::RequestTimedOut => {
                AppendError::NotEnoughReplicasAfterAppend
            }
            R::MessageTooLarge => AppendError::MessageTooLarge,
            R::CorruptMessage => AppendError::CorruptMessage,
            R::OffsetOutOfRange
            | R::InvalidRequiredAcks
            | R::StorageError
            | R::InvalidRequest
            | R::InvalidRecord => AppendError::Other,
        }
    }

    /// The error an offset commit answers with (Kafka's mapping).
    pub fn commit_error(self) -> GroupError {
        match self {
            AppendError::UnknownTopicOrPartition
            | AppendError::NotEnoughReplicas
            | AppendError::NotEnoughReplicasAfterAppend => GroupError::CoordinatorNotAvailable,
            AppendError::NotLeaderOrFollower => GroupError::NotCoordinator,
            AppendError::MessageTooLarge
            | AppendError::RecordListTooLarge
            | AppendError::InvalidFetchSize => GroupError::InvalidCommitOffsetSize,
            AppendError::CorruptMessage => GroupError::CorruptMessage,
            AppendError::Other => GroupError::UnknownServerError,
        }
    }

    /// The error a group-metadata write answers with: as for commits, except that size
    /// errors become `UnknownServerError`.
    pub fn group_error(self) -> GroupError {
        match self.commit_error() {
            GroupError::InvalidCommitOffsetSize => GroupError::UnknownServerError,
            other => other,
        }
    }
}

/// What to do when an append completes.
#[derive(Debug)]
pub(super) enum Pending {
    /// Install these offsets and answer the committer.
    Commit {
        group_id: String,
        reply_to: ReplyTo,
        stored: Vec<(TopicPartition, OffsetAndMetadata)>,
        refused: Vec<(TopicPartition, GroupError)>,
        /// Partitions whose tombstones (a deleted topic's, or the group's own deletion)
        /// were appended after this commit and succeeded before its answer came: they are
        /// answered but not installed, for the log already deletes them.
        superseded: BTreeSet<TopicPartition>,
    },
    /// Hand out the leader's assignment of `generation`.
    Assignment {
        group_id: String,
        generation: i32,
        assignments: BTreeMap<String, Vec<u8>>,
    },
    /// Nothing waits on it.
    Metadata,
    /// Remove the deleted group and answer; if the append failed, the group is Empty
    /// again since `state_timestamp`, as it was before the deletion. `in_flight`: the
    /// group's commits appended before the tombstones, which cover them too.
    Delete {
        group_id: String,
        reply_to: ReplyTo,
        state_timestamp: i64,
        in_flight: Vec<PersistId>,
    },
    /// Tombstones for a deleted topic's offsets: `removed` left the cache when they were
    /// asked for, `in_flight` are the group's commits of the topic appended before them.
    /// `dead: Some(state timestamp before)`: the group turned Dead with them and is
    /// removed once they are appended. Once they are, the log deletes every partition of
    /// `tombstoned` written before them: cached values from commits answered meanwhile
    /// leave the cache, and commits still unanswered will not install them. If the append
    /// fails, the offsets are still in the log: `removed` goes back into the cache (where
    /// no later commit took its place) and a Dead group is Empty again, so that a retry
    /// finds them.
    TopicDeleted {
        group_id: String,
        dead: Option<i64>,
        removed: Vec<(TopicPartition, (OffsetAndMetadata, u64))>,
        tombstoned: BTreeSet<TopicPartition>,
        in_flight: Vec<PersistId>,
    },
}

/// Appends in flight.
#[derive(Debug, Default)]
pub(super) struct Persists {
    next_id: u64,
    pending: BTreeMap<PersistId, Pending>,
}

impl Persists {
    /// Emits a [`PersistRequest`] and remembers what to do when it completes.
    pub(super) fn push(
        &mut self,
        out: &mut Vec<Output>,
        group_id: &str,
        offsets_partition: u32,
        record: PersistRecord,
        pending: Pending,
    ) {
        let id = PersistId(self.next_id);
        self.next_id += 1;
        self.pending.insert(id, pending);
        out.push(Output::Persist(PersistRequest {
            id,
            group_id: group_id.to_string(),
            offsets_partition,
            record,
        }));
    }

    /// `group_id`'s commits in flight (of `topic` only, when given): their ids and the
    /// partitions they write.
    pub(super) fn commits_in_flight(
        &self,
        group_id: &str,
        topic: Option<&str>,
    ) -> (Vec<PersistId>, BTreeSet<TopicPartition>) {
        let mut ids = Vec::new();
        let mut partitions = BTreeSet::new();
        for (id, pending) in &self.pending {
            let Pending::Commit {
                group_id: g,
                stored,
                ..
            } = pending
            else {
                continue;
            };
            let mut written = stored
                .iter()
                .map(|(tp, _)| tp)
                .filter(|(t, _)| topic.is_none_or(|topic| t == topic))
                .peekable();
            if g == group_id && written.peek().is_some() {
                ids.push(*id);
                partitions.extend(written.cloned());
            }
        }
        (ids, partitions)
    }

    /// Tombstones appended after the commits `ids` succeeded: those still unanswered
    /// will not install `partitions` (every partition they write, when `None`).
    pub(super) fn supersede(
        &mut self,
        ids: &[PersistId],
        partitions: Option<&BTreeSet<TopicPartition>>,
    ) {
        for id in ids {
            if let Some(Pending::Commit {
                stored, superseded, ..
            }) = self.pending.get_mut(id)
            {
                let hit = stored
                    .iter()
                    .map(|(tp, _)| tp)
                    .filter(|tp| partitions.is_none_or(|p| p.contains(*tp)));
                superseded.extend(hit.cloned());
            }
        }
    }

    /// The bookkeeping of `id`, once.
    pub(super) fn take(&mut self, id: PersistId) -> Option<Pending> {
        self.pending.remove(&id)
    }
}
