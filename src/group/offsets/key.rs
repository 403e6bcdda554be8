//! [`OffsetsKey`]: the key of a `__consumer_offsets` record, as Kafka writes it.
//!
//! ```text
//! version: i16            0 or 1: OffsetCommitKey   2: GroupMetadataKey
//! OffsetCommitKey   (v0 schema)  group: string, topic: string, partition: i32
//! GroupMetadataKey  (v0 schema)  group: string
//! ```
//! Strings are an `i16` length and UTF-8 bytes. Kafka writes version 1 for offset commits
//! (0 is the same layout, from before 0.10) and 2 for group metadata; so does this module.
//! Versions 3 and up are newer Kafka record types (KIP-848 groups, share groups), which
//! decode as [`RecordFormatError::UnknownKeyVersion`].

use super::error::RecordFormatError;
use super::wire::{Reader, Writer};

/// The key version Kafka writes for offset commits (0 is read too).
pub const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
/// The key version of group metadata records.
pub const GROUP_METADATA_KEY_VERSION: i16 = 2;

/// What a `__consumer_offsets` record is about: one committed offset, or a group's
/// metadata. The key of a compacted record: the latest record per key wins.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OffsetsKey {
    /// The committed offset of `group` for `topic`/`partition` (`OffsetCommitKey`).
    OffsetCommit {
        /// The group id.
        group: String,
        /// The topic.
        topic: String,
        /// The partition (`i32` on the wire, never negative).
        partition: u32,
    },
    /// The metadata of `group` (`GroupMetadataKey`).
    GroupMetadata {
        /// The group id.
        group: String,
    },
}

impl OffsetsKey {
    /// The group the record belongs to, which picks its `__consumer_offsets` partition.
    pub fn group(&self) -> &str {
        match self {
            OffsetsKey::OffsetCommit { group, .. } | OffsetsKey::GroupMetadata { group } => group,
        }
    }

    /// The key's bytes: version 1 for an offset commit, 2 for group metadata.
    /// [`RecordFormatError::TooLong`] for a string over 32767 bytes,
    /// [`RecordFormatError::ValueTooLarge`] for a partition above `i32::MAX`.
    pub fn encode(&self) -> Result<Vec<u8>, RecordFormatError> {
        let mut w = Writer::new();
        match self {
            OffsetsKey::OffsetCommit {
                group,
                topic,
                partition,
            } => {
                w.i16(OFFSET_COMMIT_KEY_VERSION);
                w.string("group", group)?;
                w.string("topic", topic)?;
                w.u31("partition", *partition)?;
            }
            OffsetsKey::GroupMetadata { group } => {
                w.i16(GROUP_METADATA_KEY_VERSION);
                w.string("group", group)?;
            }
        }
        Ok(w.into_bytes())
    }

    /// Decodes a key of version 0, 1 or 2; every byte must belong to it.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordFormatError> {
        let mut r = Reader::new(bytes);
        let version = r.i16()?;
        let key = match version {
            0 | 1 => OffsetsKey::OffsetCommit {
                group: r.string("group")?,
                topic: r.string("topic")?,
                partition: r.u31("partition")?,
            },
            2 => OffsetsKey::GroupMetadata {
                group: r.string("group")?,
            },
            _ => return Err(RecordFormatError::UnknownKeyVersion { version }),
        };
        r.finish()?;
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Derived by hand from `OffsetCommitKey.json`: version 1, then "g", "t" as i16-length
    /// strings, then partition 3 as a big-endian i32.
    const COMMIT_KEY_GOLDEN: [u8; 12] = [0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 3];

    fn commit_key() -> OffsetsKey {
        OffsetsKey::OffsetCommit {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
        }
    }

    #[test]
    fn offset_commit_key_matches_golden_bytes() {
        assert_eq!(commit_key().encode().unwrap(), COMMIT_KEY_GOLDEN);
        assert_eq!(
            OffsetsKey::decode(&COMMIT_KEY_GOLDEN).unwrap(),
            commit_key()
        );
    }

    #[test]
    fn group_metadata_key_matches_golden_bytes() {
        let key = OffsetsKey::GroupMetadata {
            group: "foo".into(),
        };
        let golden = [0, 2, 0, 3, b'f', b'o', b'o'];
        assert_eq!(key.encode().unwrap(), golden);
        assert_eq!(OffsetsKey::decode(&golden).unwrap(), key);
        assert_eq!(key.group(), "foo");
    }

    #[test]
    fn version_zero_commit_key_is_read() {
        let mut v0 = COMMIT_KEY_GOLDEN;
        v0[1] = 0;
        assert_eq!(OffsetsKey::decode(&v0).unwrap(), commit_key());
    }

    #[test]
    fn unknown_versions_truncation_and_trailing_bytes_are_errors() {
        assert_eq!(
            OffsetsKey::decode(&[0, 3, 0, 0]),
            Err(RecordFormatError::UnknownKeyVersion { version: 3 })
        );
        assert!(matches!(
            OffsetsKey::decode(&[0xff, 0xff]),
            Err(RecordFormatError::UnknownKeyVersion { version: -1 })
        ));
        for cut in 0..COMMIT_KEY_GOLDEN.len() {
            assert!(
                OffsetsKey::decode(&COMMIT_KEY_GOLDEN[..cut]).is_err(),
                "cut {cut}"
            );
        }
        let mut long = COMMIT_KEY_GOLDEN.to_vec();
        long.push(0);
        assert!(matches!(
            OffsetsKey::decode(&long),
            Err(RecordFormatError::TrailingBytes {
                position: 12,
                extra: 1
            })
        ));
        let mut negative = COMMIT_KEY_GOLDEN;
        negative[8] = 0x80;
        assert!(matches!(
            OffsetsKey::decode(&negative),
            Err(RecordFormatError::Negative {
                field: "partition",
                ..
            })
        ));
    }
}
