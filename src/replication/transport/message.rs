//! What travels between brokers: [`Request`] and [`Response`] (replication, metadata and
//! consumer-group calls), a [`Message`] carrying one of them with a correlation id, and the
//! [`ApiKey`] that names each kind on the wire. The bodies are the types the state machines
//! already take ([`crate::replication::messages`], [`crate::group::coordinator`]); their
//! binary form is in `codec.rs`.

use crate::group::GroupError;
use crate::group::coordinator::{
    HeartbeatRequest, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    SyncGroupRequest, SyncGroupResponse,
};
use crate::replication::messages::{
    FetchRequest, FetchResponse, MetadataRequest, MetadataResponse, OffsetsForLeaderEpochRequest,
    OffsetsForLeaderEpochResponse, ProduceRequest, ProduceResponse,
};

/// The kind of a request or response, with Kafka's api key numbers.
///
/// ```
/// use streamlog::replication::transport::ApiKey;
/// assert_eq!(ApiKey::Fetch.code(), 1);
/// assert_eq!(ApiKey::from_code(23), Some(ApiKey::OffsetForLeaderEpoch));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ApiKey {
    /// Produce (0).
    Produce,
    /// Fetch (1).
    Fetch,
    /// Metadata (3).
    Metadata,
    /// OffsetCommit (8).
    OffsetCommit,
    /// OffsetFetch (9).
    OffsetFetch,
    /// JoinGroup (11).
    JoinGroup,
    /// Heartbeat (12).
    Heartbeat,
    /// LeaveGroup (13).
    LeaveGroup,
    /// SyncGroup (14).
    SyncGroup,
    /// OffsetForLeaderEpoch (23).
    OffsetForLeaderEpoch,
    /// DeleteGroups (42).
    DeleteGroups,
}

impl ApiKey {
    /// Every api key, in code order.
    pub const ALL: [ApiKey; 11] = [
        ApiKey::Produce,
        ApiKey::Fetch,
        ApiKey::Metadata,
        ApiKey::OffsetCommit,
        ApiKey::OffsetFetch,
        ApiKey::JoinGroup,
        ApiKey::Heartbeat,
        ApiKey::LeaveGroup,
        ApiKey::SyncGroup,
        ApiKey::OffsetForLeaderEpoch,
        ApiKey::DeleteGroups,
    ];

    /// Kafka's api key number.
    pub fn code(self) -> i16 {
        match self {
            ApiKey::Produce => 0,
            ApiKey::Fetch => 1,
            ApiKey::Metadata => 3,
            ApiKey::OffsetCommit => 8,
            ApiKey::OffsetFetch => 9,
            ApiKey::JoinGroup => 11,
            ApiKey::Heartbeat => 12,
            ApiKey::LeaveGroup => 13,
            ApiKey::SyncGroup => 14,
            ApiKey::OffsetForLeaderEpoch => 23,
            ApiKey::DeleteGroups => 42,
        }
    }

    /// The api key numbered `code`; `None` for numbers this crate does not speak.
    pub fn from_code(code: i16) -> Option<Self> {
        ApiKey::ALL.into_iter().find(|key| key.code() == code)
    }
}

/// A consumer-group request, for the broker whose coordinator owns the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRequest {
    /// JoinGroup.
    JoinGroup(JoinGroupRequest),
    /// SyncGroup.
    SyncGroup(SyncGroupRequest),
    /// Heartbeat.
    Heartbeat(HeartbeatRequest),
    /// LeaveGroup.
    LeaveGroup(LeaveGroupRequest),
    /// OffsetCommit.
    OffsetCommit(OffsetCommitRequest),
    /// OffsetFetch.
    OffsetFetch(OffsetFetchRequest),
    /// DeleteGroups, for one group: its id.
    DeleteGroup(String),
}

impl GroupRequest {
    /// The request's api key.
    pub fn api_key(&self) -> ApiKey {
        match self {
            GroupRequest::JoinGroup(_) => ApiKey::JoinGroup,
            GroupRequest::SyncGroup(_) => ApiKey::SyncGroup,
            GroupRequest::Heartbeat(_) => ApiKey::Heartbeat,
            GroupRequest::LeaveGroup(_) => ApiKey::LeaveGroup,
            GroupRequest::OffsetCommit(_) => ApiKey::OffsetCommit,
            GroupRequest::OffsetFetch(_) => ApiKey::OffsetFetch,
            GroupRequest::DeleteGroup(_) => ApiKey::DeleteGroups,
        }
    }
}

/// The answer to a [`GroupRequest`], shaped as the coordinator returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupResponse {
    /// Answers JoinGroup.
    JoinGroup(JoinGroupResponse),
    /// Answers SyncGroup.
    SyncGroup(SyncGroupResponse),
    /// Answers Heartbeat.
    Heartbeat(Result<(), GroupError>),
    /// Answers LeaveGroup.
    LeaveGroup(LeaveGroupResponse),
    /// Answers OffsetCommit.
    OffsetCommit(OffsetCommitResponse),
    /// Answers OffsetFetch.
    OffsetFetch(OffsetFetchResponse),
    /// Answers DeleteGroups.
    DeleteGroup(Result<(), GroupError>),
}

impl GroupResponse {
    /// The response's api key.
    pub fn api_key(&self) -> ApiKey {
        match self {
            GroupResponse::JoinGroup(_) => ApiKey::JoinGroup,
            GroupResponse::SyncGroup(_) => ApiKey::SyncGroup,
            GroupResponse::Heartbeat(_) => ApiKey::Heartbeat,
            GroupResponse::LeaveGroup(_) => ApiKey::LeaveGroup,
            GroupResponse::OffsetCommit(_) => ApiKey::OffsetCommit,
            GroupResponse::OffsetFetch(_) => ApiKey::OffsetFetch,
            GroupResponse::DeleteGroup(_) => ApiKey::DeleteGroups,
        }
    }
}

impl From<crate::group::coordinator::Response> for GroupResponse {
    /// The wire form of a coordinator [`Output::Reply`](crate::group::coordinator::Output)'s
    /// response.
    fn from(response: crate::group::coordinator::Response) -> Self {
        use crate::group::coordinator::Response as R;
        match response {
            R::Join(r) => GroupResponse::JoinGroup(r),
            R::Sync(r) => GroupResponse::SyncGroup(r),
            R::Heartbeat(r) => GroupResponse::Heartbeat(r),
            R::Leave(r) => GroupResponse::LeaveGroup(r),
            R::Commit(r) => GroupResponse::OffsetCommit(r),
            R::DeleteGroup(r) => GroupResponse::DeleteGroup(r),
        }
    }
}

/// A request from one broker (or client) to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Produce a batch to a partition leader.
    Produce(ProduceRequest),
    /// Fetch records (a follower or a consumer).
    Fetch(FetchRequest),
    /// Where leader epochs end (a follower finding its divergence point).
    OffsetsForLeaderEpoch(OffsetsForLeaderEpochRequest),
    /// Live brokers and partition leaders.
    Metadata(MetadataRequest),
    /// A consumer-group call.
    Group(GroupRequest),
}

impl Request {
    /// The request's api key.
    pub fn api_key(&self) -> ApiKey {
        match self {
            Request::Produce(_) => ApiKey::Produce,
            Request::Fetch(_) => ApiKey::Fetch,
            Request::OffsetsForLeaderEpoch(_) => ApiKey::OffsetForLeaderEpoch,
            Request::Metadata(_) => ApiKey::Metadata,
            Request::Group(group) => group.api_key(),
        }
    }
}

/// The answer to a [`Request`] of the same kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Answers Produce.
    Produce(ProduceResponse),
    /// Answers Fetch.
    Fetch(FetchResponse),
    /// Answers OffsetsForLeaderEpoch.
    OffsetsForLeaderEpoch(OffsetsForLeaderEpochResponse),
    /// Answers Metadata.
    Metadata(MetadataResponse),
    /// Answers a consumer-group call.
    Group(GroupResponse),
}

impl Response {
    /// The response's api key.
    pub fn api_key(&self) -> ApiKey {
        match self {
            Response::Produce(_) => ApiKey::Produce,
            Response::Fetch(_) => ApiKey::Fetch,
            Response::OffsetsForLeaderEpoch(_) => ApiKey::OffsetForLeaderEpoch,
            Response::Metadata(_) => ApiKey::Metadata,
            Response::Group(group) => group.api_key(),
        }
    }
}

/// A request or a response, with the correlation id that pairs them: the responder copies
/// the request's id into its response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request.
    Request {
        /// Chosen by the requester, unique among its outstanding requests.
        correlation_id: u64,
        /// The request.
        request: Request,
    },
    /// A response.
    Response {
        /// The id of the request answered.
        correlation_id: u64,
        /// The answer.
        response: Response,
    },
}

impl Message {
    /// The correlation id.
    pub fn correlation_id(&self) -> u64 {
        match self {
            Message::Request { correlation_id, .. } | Message::Response { correlation_id, .. } => {
                *correlation_id
            }
        }
    }

    /// The api key of the request or response.
    pub fn api_key(&self) -> ApiKey {
        match self {
            Message::Request { request, .. } => request.api_key(),
            Message::Response { response, .. } => response.api_key(),
        }
    }

    /// Whether this is a response.
    pub fn is_response(&self) -> bool {
        matches!(self, Message::Response { .. })
    }
}
