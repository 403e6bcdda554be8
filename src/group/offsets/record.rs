//! [`OffsetsRecord`]: one whole `__consumer_offsets` record (key and value, or a
//! tombstone), decoded or ready to append.

use super::commit_value::OffsetAndMetadata;
use super::error::RecordFormatError;
use super::group_value::GroupMetadata;
use super::key::OffsetsKey;
use crate::record::Record;

/// One `__consumer_offsets` record: a committed offset or group metadata, or a tombstone
/// (`None`) that deletes it. Replaying a partition's records in order, later ones replacing
/// earlier ones with the same key, rebuilds the coordinator's state.
///
/// ```
/// use streamlog::{OffsetAndMetadata, OffsetsKey, OffsetsRecord};
/// # fn main() -> Result<(), streamlog::RecordFormatError> {
/// let record = OffsetsRecord::OffsetCommit {
///     group: "billing".into(),
///     topic: "orders".into(),
///     partition: 0,
///     value: Some(OffsetAndMetadata::new(10, 1_000)),
/// };
/// let (key, value) = record.encode()?;
/// assert_eq!(OffsetsKey::decode(&key)?.group(), "billing");
/// assert_eq!(OffsetsRecord::decode(&key, value.as_deref())?, record);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetsRecord {
    /// A committed offset; `None` is a tombstone (the offset was deleted or expired).
    OffsetCommit {
        /// The group id.
        group: String,
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The committed offset, or `None` for a tombstone.
        value: Option<OffsetAndMetadata>,
    },
    /// A group's metadata; `None` is a tombstone (the group was deleted).
    GroupMetadata {
        /// The group id.
        group: String,
        /// The metadata, or `None` for a tombstone.
        value: Option<GroupMetadata>,
    },
}

impl OffsetsRecord {
    /// The record's key.
    pub fn key(&self) -> OffsetsKey {
        match self {
            OffsetsRecord::OffsetCommit {
                group,
                topic,
                partition,
                ..
            } => OffsetsKey::OffsetCommit {
                group: group.clone(),
                topic: topic.clone(),
                partition: *partition,
            },
            OffsetsRecord::GroupMetadata { group, .. } => OffsetsKey::GroupMetadata {
                group: group.clone(),
            },
        }
    }

    /// The group the record belongs to.
    pub fn group(&self) -> &str {
        match self {
            OffsetsRecord::OffsetCommit { group, .. }
            | OffsetsRecord::GroupMetadata { group, .. } => group,
        }
    }

    /// Whether the record is a tombstone.
    pub fn is_tombstone(&self) -> bool {
        match self {
            OffsetsRecord::OffsetCommit { value, .. } => value.is_none(),
            OffsetsRecord::GroupMetadata { value, .. } => value.is_none(),
        }
    }

    /// The key's and value's bytes as Kafka writes them (`None`: a tombstone's null value).
    pub fn encode(&self) -> Result<(Vec<u8>, Option<Vec<u8>>), RecordFormatError> {
        let key = self.key().encode()?;
        let value = match self {
            OffsetsRecord::OffsetCommit { value, .. } => {
                value.as_ref().map(OffsetAndMetadata::encode).transpose()?
            }
            OffsetsRecord::GroupMetadata { value, .. } => {
                value.as_ref().map(GroupMetadata::encode).transpose()?
            }
        };
        Ok((key, value))
    }

    /// The record to append to `__consumer_offsets`.
    pub fn to_record(&self) -> Result<Record, RecordFormatError> {
        let (key, value) = self.encode()?;
        Ok(Record::default().with_key(key).with_value(value))
    }

    /// Decodes a key and its value (`None`: a tombstone).
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Self, RecordFormatError> {
        Ok(match OffsetsKey::decode(key)? {
            OffsetsKey::OffsetCommit {
                group,
                topic,
                partition,
            } => OffsetsRecord::OffsetCommit {
                group,
                topic,
                partition,
                value: value.map(OffsetAndMetadata::decode).transpose()?,
            },
            OffsetsKey::GroupMetadata { group } => OffsetsRecord::GroupMetadata {
                group,
                value: value.map(GroupMetadata::decode).transpose()?,
            },
        })
    }
}
