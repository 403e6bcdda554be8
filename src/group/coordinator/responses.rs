//! What the coordinator returns: [`Output`] values, each a response addressed to the
//! request it answers ([`ReplyTo`]) or a record to append to `__consumer_offsets`.

use crate::group::GroupError;
use crate::group::assignor::TopicPartition;

use super::persist::PersistRequest;

/// A token the caller attaches to a request and gets back with its response, e.g. a
/// connection and correlation id. A JoinGroup or SyncGroup response may come out of a later
/// call (another member's request, [`super::GroupCoordinator::tick`] or
/// [`super::GroupCoordinator::append_completed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReplyTo(pub u64);

/// One thing for the caller to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send `response` to the requester `to`.
    Reply {
        /// The request answered.
        to: ReplyTo,
        /// The answer.
        response: Response,
    },
    /// Append a record to `__consumer_offsets`, then report the result with
    /// [`super::GroupCoordinator::append_completed`].
    Persist(PersistRequest),
}

/// A response, by request kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Answers JoinGroup.
    Join(JoinGroupResponse),
    /// Answers SyncGroup.
    Sync(SyncGroupResponse),
    /// Answers Heartbeat.
    Heartbeat(Result<(), GroupError>),
    /// Answers LeaveGroup.
    Leave(LeaveGroupResponse),
    /// Answers OffsetCommit.
    Commit(OffsetCommitResponse),
    /// Answers DeleteGroup.
    DeleteGroup(Result<(), GroupError>),
}

/// A member of the new generation as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    /// The member.
    pub member_id: String,
    /// Its metadata for the chosen protocol.
    pub metadata: Vec<u8>,
}

/// The JoinGroup answer: the new generation, or an error.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JoinGroupResponse {
    /// `None` on success. `MemberIdRequired` comes with the id to join again with.
    pub error: Option<GroupError>,
    /// The member's id (given by the coordinator on a first join).
    pub member_id: String,
    /// The generation; -1 with an error.
    pub generation: i32,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The chosen protocol (assignor).
    pub protocol_name: Option<String>,
    /// The leader's member id.
    pub leader_id: Option<String>,
    /// Every member with its metadata: only in the leader's response.
    pub members: Vec<JoinedMember>,
}

impl JoinGroupResponse {
    /// An error response.
    pub(super) fn failed(member_id: &str, error: GroupError) -> Self {
        Self {
            error: Some(error),
            member_id: member_id.to_string(),
            generation: -1,
            ..Self::default()
        }
    }

    /// Whether this member leads the generation (computes the assignment).
    pub fn is_leader(&self) -> bool {
        self.error.is_none() && self.leader_id.as_deref() == Some(self.member_id.as_str())
    }
}

/// The SyncGroup answer: this member's assignment, or an error.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncGroupResponse {
    /// `None` on success.
    pub error: Option<GroupError>,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The chosen protocol.
    pub protocol_name: Option<String>,
    /// This member's assignment bytes (empty if the leader gave it none).
    pub assignment: Vec<u8>,
}

impl SyncGroupResponse {
    /// An error response.
    pub(super) fn failed(error: GroupError) -> Self {
        Self {
            error: Some(error),
            ..Self::default()
        }
    }
}

/// The LeaveGroup answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaveGroupResponse {
    /// A group-level error (e.g. `CoordinatorNotAvailable`); then `members` is empty.
    pub error: Option<GroupError>,
    /// Per member: left, or why not.
    pub members: Vec<(String, Result<(), GroupError>)>,
}

/// The OffsetCommit answer, per partition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OffsetCommitResponse {
    /// Each partition of the request: stored, or why not.
    pub partitions: Vec<(TopicPartition, Result<(), GroupError>)>,
}

/// The OffsetFetch answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OffsetFetchResponse {
    /// A group-level error (e.g. `InvalidGroupId`); then `partitions` is empty.
    pub error: Option<GroupError>,
    /// Each partition: its committed offset, or `None` if never committed.
    pub partitions: Vec<(
        TopicPartition,
        Option<crate::group::offsets::OffsetAndMetadata>,
    )>,
}
