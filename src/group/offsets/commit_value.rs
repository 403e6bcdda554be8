//! [`OffsetAndMetadata`]: a committed offset, and its `OffsetCommitValue` bytes.
//!
//! ```text
//! version: i16
//! v0, v2:  offset i64 · metadata string · commit_timestamp i64
//! v1:      offset i64 · metadata string · commit_timestamp i64 · expire_timestamp i64
//! v3:      offset i64 · leader_epoch i32 · metadata string · commit_timestamp i64
//! v4:      as v3, flexible (compact string, then a tagged-field section)
//! ```
//! Kafka writes v3, or v1 when the commit carries an explicit expire timestamp (v1 has no
//! leader epoch, so it is dropped then); so does [`OffsetAndMetadata::encode`]. Every
//! version is read. A leader epoch of -1 is "none", as is an expire timestamp of -1.

use super::error::RecordFormatError;
use super::wire::{Reader, Writer};

/// The newest `OffsetCommitValue` version this module knows.
pub const MAX_OFFSET_COMMIT_VALUE_VERSION: i16 = 4;

const RECORD: &str = "OffsetCommitValue";

/// A committed offset: where a group resumes reading a partition.
///
/// ```
/// use streamlog::OffsetAndMetadata;
/// # fn main() -> Result<(), streamlog::group::offsets::RecordFormatError> {
/// let committed = OffsetAndMetadata::new(42, 1_700_000_000_000)
///     .with_leader_epoch(3)
///     .with_metadata("checkpoint 7");
/// let bytes = committed.encode()?; // OffsetCommitValue v3
/// assert_eq!(&bytes[..2], &[0, 3]);
/// assert_eq!(OffsetAndMetadata::decode(&bytes)?, committed);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OffsetAndMetadata {
    /// The next offset to read (`i64` on the wire, never negative).
    pub offset: u64,
    /// The leader epoch of the last record consumed, if known.
    pub leader_epoch: Option<i32>,
    /// Free text the committer attaches (at most `offset.metadata.max.bytes` when
    /// committed through [`crate::OffsetsStore::commit`]).
    pub metadata: String,
    /// When the commit happened, in ms since the Unix epoch.
    pub commit_timestamp: i64,
    /// An explicit expiry time (ms since the Unix epoch), from a commit that asked for its
    /// own retention; `None` follows `offsets.retention.minutes`.
    pub expire_timestamp: Option<i64>,
}

impl OffsetAndMetadata {
    /// `offset` committed at `commit_timestamp`, with no leader epoch, no metadata and no
    /// explicit expiry.
    pub fn new(offset: u64, commit_timestamp: i64) -> Self {
        Self {
            offset,
            commit_timestamp,
            ..Self::default()
        }
    }

    /// Sets the leader epoch.
    #[must_use]
    pub fn with_leader_epoch(mut self, leader_epoch: i32) -> Self {
        self.leader_epoch = Some(leader_epoch);
        self
    }

    /// Sets the metadata text.
    #[must_use]
    pub fn with_metadata(mut self, metadata: impl Into<String>) -> Self {
        self.metadata = metadata.into();
        self
    }

    /// Sets an explicit expire timestamp.
    #[must_use]
    pub fn with_expire_timestamp(mut self, expire_timestamp: i64) -> Self {
        self.expire_timestamp = Some(expire_timestamp);
        self
    }

    /// The version Kafka writes for this value: 1 with an expire timestamp, else 3.
    pub fn version(&self) -> i16 {
        if self.expire_timestamp.is_some() {
            1
        } else {
            3
        }
    }

    /// The value's bytes in [`OffsetAndMetadata::version`].
    pub fn encode(&self) -> Result<Vec<u8>, RecordFormatError> {
        self.encode_as(self.version())
    }

    /// The value's bytes in `version` (0 to 4). Fields the version lacks are left out: the
    /// leader epoch below v3, the expire timestamp outside v1.
    pub fn encode_as(&self, version: i16) -> Result<Vec<u8>, RecordFormatError> {
        check_version(version)?;
        let mut w = Writer::new();
        w.i16(version);
        w.set_flexible(version >= 4);
        w.u63("offset", self.offset)?;
        if version >= 3 {
            w.i32(self.leader_epoch.unwrap_or(-1));
        }
        w.string("metadata", &self.metadata)?;
        w.i64(self.commit_timestamp);
        if version == 1 {
            w.i64(self.expire_timestamp.unwrap_or(-1));
        }
        w.tagged_fields();
        Ok(w.into_bytes())
    }

    /// Decodes a value of any version from 0 to 4; every byte must belong to it.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordFormatError> {
        let mut r = Reader::new(bytes);
        let version = r.i16()?;
        check_version(version)?;
        r.set_flexible(version >= 4);
        let offset = r.u63("offset")?;
        let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
        let metadata = r.string("metadata")?;
        let commit_timestamp = r.i64()?;
        let expire_timestamp = if version == 1 { r.i64()? } else { -1 };
        r.tagged_fields()?;
        r.finish()?;
        Ok(Self {
            offset,
            leader_epoch: (leader_epoch != -1).then_some(leader_epoch),
            metadata,
            commit_timestamp,
            expire_timestamp: (expire_timestamp != -1).then_some(expire_timestamp),
        })
    }
}

fn check_version(version: i16) -> Result<(), RecordFormatError> {
    if !(0..=MAX_OFFSET_COMMIT_VALUE_VERSION).contains(&version) {
        return Err(RecordFormatError::UnsupportedVersion {
            record: RECORD,
            version,
            max: MAX_OFFSET_COMMIT_VALUE_VERSION,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Derived by hand from `OffsetCommitValue.json` v3: version 3 · offset 97 (i64) ·
    /// leader epoch 15 (i32) · metadata "md" (i16 length 2) · commit timestamp 1000 (i64).
    const V3_GOLDEN: [u8; 26] = [
        0, 3, //
        0, 0, 0, 0, 0, 0, 0, 97, //
        0, 0, 0, 15, //
        0, 2, b'm', b'd', //
        0, 0, 0, 0, 0, 0, 0x03, 0xe8,
    ];

    fn value() -> OffsetAndMetadata {
        OffsetAndMetadata::new(97, 1000)
            .with_leader_epoch(15)
            .with_metadata("md")
    }

    #[test]
    fn v3_matches_golden_bytes() {
        assert_eq!(value().encode().unwrap(), V3_GOLDEN);
        assert_eq!(OffsetAndMetadata::decode(&V3_GOLDEN).unwrap(), value());
    }

    #[test]
    fn v1_with_expire_timestamp_matches_golden_bytes() {
        let v = OffsetAndMetadata::new(5, 10).with_expire_timestamp(20);
        let golden = [
            0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 20,
        ];
        assert_eq!(v.encode().unwrap(), golden);
        assert_eq!(OffsetAndMetadata::decode(&golden).unwrap(), v);
    }

    #[test]
    fn v4_is_flexible() {
        let bytes = value().encode_as(4).unwrap();
        // version · offset · epoch · compact "md" (3, m, d) · timestamp · no tagged fields.
        assert_eq!(&bytes[14..17], &[3, b'm', b'd']);
        assert_eq!(bytes.last(), Some(&0));
        assert_eq!(bytes.len(), 2 + 8 + 4 + 3 + 8 + 1);
        assert_eq!(OffsetAndMetadata::decode(&bytes).unwrap(), value());
    }

    #[test]
    fn every_version_round_trips_what_it_carries() {
        let full = value().with_expire_timestamp(77);
        for version in 0..=MAX_OFFSET_COMMIT_VALUE_VERSION {
            let decoded = OffsetAndMetadata::decode(&full.encode_as(version).unwrap()).unwrap();
            let mut want = full.clone();
            if version < 3 {
                want.leader_epoch = None;
            }
            if version != 1 {
                want.expire_timestamp = None;
            }
            assert_eq!(decoded, want, "version {version}");
        }
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(matches!(
            OffsetAndMetadata::decode(&[0, 5]),
            Err(RecordFormatError::UnsupportedVersion { version: 5, .. })
        ));
        assert!(value().encode_as(-1).is_err());
        for cut in 0..V3_GOLDEN.len() {
            assert!(
                OffsetAndMetadata::decode(&V3_GOLDEN[..cut]).is_err(),
                "cut {cut}"
            );
        }
        let mut negative = V3_GOLDEN;
        negative[2] = 0xff;
        assert!(matches!(
            OffsetAndMetadata::decode(&negative),
            Err(RecordFormatError::Negative {
                field: "offset",
                ..
            })
        ));
        let mut bad_utf8 = V3_GOLDEN;
        bad_utf8[16] = 0xff;
        assert!(matches!(
            OffsetAndMetadata::decode(&bad_utf8),
            Err(RecordFormatError::InvalidUtf8 {
                field: "metadata",
                position: 16
            })
        ));
        assert!(OffsetAndMetadata::new(u64::MAX, 0).encode().is_err());
    }
}
