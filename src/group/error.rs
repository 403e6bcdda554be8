//! [`GroupError`]: the typed error codes the group coordinator puts in its responses, with
//! Kafka's wire codes so a future transport can send them unchanged.

/// An error a group member (or a tool committing offsets) receives in a response and can act
/// on: rejoin, reset its generation, retry later, or find another coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// `CORRUPT_MESSAGE` (2): the append of a commit found corrupt data.
    #[error("the offset commit was corrupt")]
    CorruptMessage,
    /// `COORDINATOR_NOT_AVAILABLE` (15): the group is being removed or its log is unavailable;
    /// retry after finding the coordinator again.
    #[error("the group coordinator is not available")]
    CoordinatorNotAvailable,
    /// `NOT_COORDINATOR` (16): this coordinator does not own the group's
    /// `__consumer_offsets` partition.
    #[error("this is not the coordinator of the group")]
    NotCoordinator,
    /// `ILLEGAL_GENERATION` (22): the request names another generation than the group's;
    /// the member resets its generation and rejoins, keeping its member id.
    #[error("the generation is not the group's current one")]
    IllegalGeneration,
    /// `INCONSISTENT_GROUP_PROTOCOL` (23): the protocol type or names do not match the group.
    #[error("the group protocol is inconsistent with the group's members")]
    InconsistentGroupProtocol,
    /// `INVALID_GROUP_ID` (24): the group id is empty or too long.
    #[error("the group id is invalid")]
    InvalidGroupId,
    /// `UNKNOWN_MEMBER_ID` (25): the group does not know this member; it rejoins with an
    /// empty member id.
    #[error("the member id is not known to the group")]
    UnknownMemberId,
    /// `INVALID_SESSION_TIMEOUT` (26): the session timeout is outside the coordinator's bounds.
    #[error("the session timeout is outside the allowed range")]
    InvalidSessionTimeout,
    /// `REBALANCE_IN_PROGRESS` (27): the group is rebalancing; the member rejoins.
    #[error("the group is rebalancing")]
    RebalanceInProgress,
    /// `INVALID_COMMIT_OFFSET_SIZE` (28): the commit was too large for the log.
    #[error("the offset commit is too large")]
    InvalidCommitOffsetSize,
    /// `UNKNOWN_SERVER_ERROR` (-1): an append failed for a reason the member cannot fix.
    #[error("unknown server error")]
    UnknownServerError,
    /// `OFFSET_METADATA_TOO_LARGE` (12): the commit's metadata string is longer than
    /// `offset.metadata.max.bytes`.
    #[error("the offset metadata is too large")]
    OffsetMetadataTooLarge,
    /// `GROUP_ID_NOT_FOUND` (69): the group to delete does not exist.
    #[error("the group does not exist")]
    GroupIdNotFound,
    /// `NON_EMPTY_GROUP` (68): the group to delete still has members.
    #[error("the group still has members")]
    NonEmptyGroup,
    /// `MEMBER_ID_REQUIRED` (79): the join response carries a member id; join again with it.
    #[error("join again with the member id given in the response")]
    MemberIdRequired,
    /// `GROUP_MAX_SIZE_REACHED` (81): the group already has `group.max.size` members.
    #[error("the group has reached its maximum size")]
    GroupMaxSizeReached,
}

impl GroupError {
    /// Kafka's wire error code.
    ///
    /// ```
    /// assert_eq!(streamlog::GroupError::UnknownMemberId.code(), 25);
    /// ```
    pub fn code(self) -> i16 {
        match self {
            GroupError::UnknownServerError => -1,
            GroupError::CorruptMessage => 2,
            GroupError::OffsetMetadataTooLarge => 12,
            GroupError::CoordinatorNotAvailable => 15,
            GroupError::NotCoordinator => 16,
            GroupError::IllegalGeneration => 22,
            GroupError::InconsistentGroupProtocol => 23,
            GroupError::InvalidGroupId => 24,
            GroupError::UnknownMemberId => 25,
            GroupError::InvalidSessionTimeout => 26,
            GroupError::RebalanceInProgress => 27,
            GroupError::InvalidCommitOffsetSize => 28,
            GroupError::NonEmptyGroup => 68,
            GroupError::GroupIdNotFound => 69,
            GroupError::MemberIdRequired => 79,
            GroupError::GroupMaxSizeReached => 81,
        }
    }

    /// The error for Kafka's wire `code`; `None` for codes this crate does not use
    /// (including 0, no error).
    ///
    /// ```
    /// use streamlog::GroupError;
    /// assert_eq!(GroupError::from_code(25), Some(GroupError::UnknownMemberId));
    /// assert_eq!(GroupError::from_code(0), None);
    /// ```
    pub fn from_code(code: i16) -> Option<Self> {
        Some(match code {
            -1 => GroupError::UnknownServerError,
            2 => GroupError::CorruptMessage,
            12 => GroupError::OffsetMetadataTooLarge,
            15 => GroupError::CoordinatorNotAvailable,
            16 => GroupError::NotCoordinator,
            22 => GroupError::IllegalGeneration,
            23 => GroupError::InconsistentGroupProtocol,
            24 => GroupError::InvalidGroupId,
            25 => GroupError::UnknownMemberId,
            26 => GroupError::InvalidSessionTimeout,
            27 => GroupError::RebalanceInProgress,
            28 => GroupError::InvalidCommitOffsetSize,
            68 => GroupError::NonEmptyGroup,
            69 => GroupError::GroupIdNotFound,
            79 => GroupError::MemberIdRequired,
            81 => GroupError::GroupMaxSizeReached,
            _ => return None,
        })
    }
}
