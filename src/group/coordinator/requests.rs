//! The requests a member (or a tool) sends the coordinator, one struct per request kind.

use std::collections::BTreeMap;

use crate::group::assignor::TopicPartition;

/// One protocol a member supports (for the `consumer` type: an assignor name) with its
/// metadata (for the `consumer` type: an encoded
/// [`Subscription`](crate::group::assignor::protocol::Subscription)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupProtocol {
    /// Protocol name, e.g. `range`.
    pub name: String,
    /// Opaque member metadata for that protocol.
    pub metadata: Vec<u8>,
}

impl GroupProtocol {
    /// A protocol named `name` with `metadata`.
    pub fn new(name: impl Into<String>, metadata: Vec<u8>) -> Self {
        Self {
            name: name.into(),
            metadata,
        }
    }
}

/// JoinGroup: join (or rejoin) a group and wait for the next generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGroupRequest {
    /// The group.
    pub group_id: String,
    /// Empty on a first join; the id the coordinator gave otherwise.
    pub member_id: String,
    /// The client's id; new member ids start with it.
    pub client_id: String,
    /// `session.timeout.ms`: the member is removed after this long without a heartbeat.
    pub session_timeout_ms: i32,
    /// `max.poll.interval.ms`: how long the member may take to rejoin during a rebalance.
    pub rebalance_timeout_ms: i32,
    /// E.g. `consumer`; every member of a group must use the same one.
    pub protocol_type: String,
    /// Supported protocols in order of preference.
    pub protocols: Vec<GroupProtocol>,
    /// KIP-394: a first join gets `MemberIdRequired` with an id and must join again with it
    /// (what current clients do). When false the member joins at once.
    pub require_known_member_id: bool,
}

impl JoinGroupRequest {
    /// A first join of `client_id` to `group_id` with Kafka consumer defaults (session
    /// 45 s, rebalance timeout 300 s, member id required).
    pub fn new(
        group_id: impl Into<String>,
        client_id: impl Into<String>,
        protocol_type: impl Into<String>,
        protocols: Vec<GroupProtocol>,
    ) -> Self {
        Self {
            group_id: group_id.into(),
            member_id: String::new(),
            client_id: client_id.into(),
            session_timeout_ms: 45_000,
            rebalance_timeout_ms: 300_000,
            protocol_type: protocol_type.into(),
            protocols,
            require_known_member_id: true,
        }
    }

    /// The same request from member `member_id`.
    pub fn member_id(mut self, member_id: impl Into<String>) -> Self {
        self.member_id = member_id.into();
        self
    }

    /// The same request with both timeouts set.
    pub fn timeouts(mut self, session_timeout_ms: i32, rebalance_timeout_ms: i32) -> Self {
        self.session_timeout_ms = session_timeout_ms;
        self.rebalance_timeout_ms = rebalance_timeout_ms;
        self
    }

    /// The same request, with or without the KIP-394 member-id round trip.
    pub fn require_known_member_id(mut self, require: bool) -> Self {
        self.require_known_member_id = require;
        self
    }
}

/// SyncGroup: get this generation's assignment; the leader sends everyone's.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncGroupRequest {
    /// The group.
    pub group_id: String,
    /// The member.
    pub member_id: String,
    /// The generation from the JoinGroup response.
    pub generation: i32,
    /// If given, must match the group's protocol type.
    pub protocol_type: Option<String>,
    /// If given, must match the group's chosen protocol.
    pub protocol_name: Option<String>,
    /// Leader only: each member's assignment bytes; members left out get empty bytes.
    pub assignments: BTreeMap<String, Vec<u8>>,
}

/// Heartbeat: keeps the member's session alive and tells it whether to rejoin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatRequest {
    /// The group.
    pub group_id: String,
    /// The member.
    pub member_id: String,
    /// The member's generation.
    pub generation: i32,
}

/// LeaveGroup: members leave at once instead of waiting for their session to expire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveGroupRequest {
    /// The group.
    pub group_id: String,
    /// The members leaving.
    pub member_ids: Vec<String>,
}

/// One partition's offset in an OffsetCommit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommit {
    /// The next offset to consume.
    pub offset: u64,
    /// The leader epoch of the last consumed record, if known.
    pub leader_epoch: Option<i32>,
    /// Free text stored with the offset, at most `offset.metadata.max.bytes`.
    pub metadata: String,
}

/// OffsetCommit: store consumed positions for the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitRequest {
    /// The group.
    pub group_id: String,
    /// The member, or empty for a commit outside group management.
    pub member_id: String,
    /// The member's generation, or -1 for a commit outside group management (accepted only
    /// while the group is Empty or does not exist).
    pub generation: i32,
    /// Per-request retention: the offsets expire this long after the commit.
    pub retention_ms: Option<i64>,
    /// The offsets.
    pub offsets: Vec<(TopicPartition, OffsetCommit)>,
}

/// OffsetFetch: the group's committed offsets, as
/// [`GroupCoordinator::fetch_offsets`](super::GroupCoordinator::fetch_offsets) answers it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OffsetFetchRequest {
    /// The group.
    pub group_id: String,
    /// The partitions wanted; `None` for every partition the group committed.
    pub partitions: Option<Vec<TopicPartition>>,
}
