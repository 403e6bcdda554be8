//! [`GroupMetadata`] and [`MemberMetadata`]: a group's stored state, and its
//! `GroupMetadataValue` bytes.
//!
//! ```text
//! version: i16
//! protocol_type string · generation i32 · protocol nullable string · leader nullable string
//! · current_state_timestamp i64 (v2+) · members: i32 count, then each member:
//!     member_id string · group_instance_id nullable string (v3+) · client_id string
//!     · client_host string · rebalance_timeout i32 (v1+) · session_timeout i32
//!     · subscription bytes · assignment bytes
//! v4: the same fields, flexible (compact strings, bytes and arrays; a tagged-field section
//!     after each member and after the value)
//! ```
//! Kafka writes v3 (since 2.3); so does [`GroupMetadata::encode`]. Every version is read: a
//! v0 member's rebalance timeout is its session timeout, as Kafka reads it, and a missing
//! or -1 state timestamp is `None`.

use super::error::RecordFormatError;
use super::wire::{Reader, Writer};

/// The newest `GroupMetadataValue` version this module knows.
pub const MAX_GROUP_METADATA_VALUE_VERSION: i16 = 4;
/// The version [`GroupMetadata::encode`] writes.
pub const GROUP_METADATA_VALUE_VERSION: i16 = 3;

const RECORD: &str = "GroupMetadataValue";

/// A group's state as the coordinator persists it after each rebalance: protocol,
/// generation, leader and members with their subscriptions and assignments.
///
/// ```
/// use streamlog::{GroupMetadata, MemberMetadata};
/// # fn main() -> Result<(), streamlog::RecordFormatError> {
/// let group = GroupMetadata {
///     protocol_type: "consumer".into(),
///     generation: 1,
///     protocol: Some("range".into()),
///     leader: Some("m-1".into()),
///     current_state_timestamp: Some(1_000),
///     members: vec![MemberMetadata::new("m-1", "client", "/127.0.0.1", 30_000, 10_000)],
/// };
/// assert_eq!(GroupMetadata::decode(&group.encode()?)?, group);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupMetadata {
    /// `protocol.type`: "consumer" for consumer groups, empty for a simple group that only
    /// stores offsets.
    pub protocol_type: String,
    /// The generation: bumped by every rebalance.
    pub generation: i32,
    /// The chosen assignment protocol (e.g. "range"), if any.
    pub protocol: Option<String>,
    /// The leader's member id, if any.
    pub leader: Option<String>,
    /// When the group last changed state (ms since the Unix epoch), if known; the base time
    /// of offset expiry once the group is Empty.
    pub current_state_timestamp: Option<i64>,
    /// The members, each with its subscription and assignment.
    pub members: Vec<MemberMetadata>,
}

/// One member of a [`GroupMetadata`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberMetadata {
    /// The member id the coordinator gave it.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    /// The client's `client.id`.
    pub client_id: String,
    /// The client's host.
    pub client_host: String,
    /// `max.poll.interval.ms` / rebalance timeout, in ms.
    pub rebalance_timeout_ms: i32,
    /// `session.timeout.ms`, in ms.
    pub session_timeout_ms: i32,
    /// The member's subscription (protocol metadata), opaque bytes.
    pub subscription: Vec<u8>,
    /// The member's assignment, opaque bytes.
    pub assignment: Vec<u8>,
}

impl MemberMetadata {
    /// A dynamic member with empty subscription and assignment.
    pub fn new(
        member_id: impl Into<String>,
        client_id: impl Into<String>,
        client_host: impl Into<String>,
        rebalance_timeout_ms: i32,
        session_timeout_ms: i32,
    ) -> Self {
        Self {
            member_id: member_id.into(),
            client_id: client_id.into(),
            client_host: client_host.into(),
            rebalance_timeout_ms,
            session_timeout_ms,
            ..Self::default()
        }
    }

    fn write(&self, w: &mut Writer, version: i16) -> Result<(), RecordFormatError> {
        w.string("memberId", &self.member_id)?;
        if version >= 3 {
            w.nullable_string("groupInstanceId", self.group_instance_id.as_deref())?;
        }
        w.string("clientId", &self.client_id)?;
        w.string("clientHost", &self.client_host)?;
        if version >= 1 {
            w.i32(self.rebalance_timeout_ms);
        }
        w.i32(self.session_timeout_ms);
        w.bytes("subscription", &self.subscription)?;
        w.bytes("assignment", &self.assignment)?;
        w.tagged_fields();
        Ok(())
    }

    fn read(r: &mut Reader<'_>, version: i16) -> Result<Self, RecordFormatError> {
        let member_id = r.string("memberId")?;
        let group_instance_id = if version >= 3 {
            r.nullable_string("groupInstanceId")?
        } else {
            None
        };
        let client_id = r.string("clientId")?;
        let client_host = r.string("clientHost")?;
        let rebalance_timeout = if version >= 1 { Some(r.i32()?) } else { None };
        let session_timeout_ms = r.i32()?;
        let subscription = r.bytes("subscription")?;
        let assignment = r.bytes("assignment")?;
        r.tagged_fields()?;
        Ok(Self {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms: rebalance_timeout.unwrap_or(session_timeout_ms),
            session_timeout_ms,
            subscription,
            assignment,
        })
    }
}

impl GroupMetadata {
    /// The value's bytes in version 3, as Kafka writes them.
    pub fn encode(&self) -> Result<Vec<u8>, RecordFormatError> {
        self.encode_as(GROUP_METADATA_VALUE_VERSION)
    }

    /// The value's bytes in `version` (0 to 4). Fields the version lacks are left out:
    /// rebalance timeouts in v0, the state timestamp below v2, instance ids below v3.
    pub fn encode_as(&self, version: i16) -> Result<Vec<u8>, RecordFormatError> {
        check_version(version)?;
        let mut w = Writer::new();
        w.i16(version);
        w.set_flexible(version >= 4);
        w.string("protocolType", &self.protocol_type)?;
        w.i32(self.generation);
        w.nullable_string("protocol", self.protocol.as_deref())?;
        w.nullable_string("leader", self.leader.as_deref())?;
        if version >= 2 {
            w.i64(self.current_state_timestamp.unwrap_or(-1));
        }
        w.array_len("members", self.members.len())?;
        for member in &self.members {
            member.write(&mut w, version)?;
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
        let protocol_type = r.string("protocolType")?;
        let generation = r.i32()?;
        let protocol = r.nullable_string("protocol")?;
        let leader = r.nullable_string("leader")?;
        let timestamp = if version >= 2 { r.i64()? } else { -1 };
        let count = r.array_len("members")?;
        let members = (0..count)
            .map(|_| MemberMetadata::read(&mut r, version))
            .collect::<Result<Vec<_>, _>>()?;
        r.tagged_fields()?;
        r.finish()?;
        Ok(Self {
            protocol_type,
            generation,
            protocol,
            leader,
            current_state_timestamp: (timestamp != -1).then_some(timestamp),
            members,
        })
    }
}

fn check_version(version: i16) -> Result<(), RecordFormatError> {
    if !(0..=MAX_GROUP_METADATA_VALUE_VERSION).contains(&version) {
        return Err(RecordFormatError::UnsupportedVersion {
            record: RECORD,
            version,
            max: MAX_GROUP_METADATA_VALUE_VERSION,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group() -> GroupMetadata {
        let mut static_member = MemberMetadata::new("m-2", "c2", "/10.0.0.2", 40_000, 9_000);
        static_member.group_instance_id = Some("instance-2".into());
        static_member.subscription = vec![1, 2, 3];
        static_member.assignment = vec![4];
        GroupMetadata {
            protocol_type: "consumer".into(),
            generation: 7,
            protocol: Some("range".into()),
            leader: Some("m-1".into()),
            current_state_timestamp: Some(123),
            members: vec![
                MemberMetadata::new("m-1", "c1", "/10.0.0.1", 30_000, 10_000),
                static_member,
            ],
        }
    }

    #[test]
    fn v3_matches_golden_bytes() {
        // Derived by hand from GroupMetadataValue.json v3: an Empty group after a
        // rebalance (null protocol and leader), state timestamp 5, one member.
        let g = GroupMetadata {
            protocol_type: "consumer".into(),
            generation: 2,
            protocol: None,
            leader: None,
            current_state_timestamp: Some(5),
            members: vec![MemberMetadata {
                member_id: "m".into(),
                group_instance_id: None,
                client_id: "c".into(),
                client_host: "h".into(),
                rebalance_timeout_ms: 256,
                session_timeout_ms: 1,
                subscription: vec![9],
                assignment: vec![],
            }],
        };
        let mut golden = vec![0, 3, 0, 8];
        golden.extend_from_slice(b"consumer");
        golden.extend_from_slice(&[0, 0, 0, 2]); // generation
        golden.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]); // null protocol, null leader
        golden.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 5]); // current state timestamp
        golden.extend_from_slice(&[0, 0, 0, 1]); // one member
        golden.extend_from_slice(&[0, 1, b'm', 0xff, 0xff, 0, 1, b'c', 0, 1, b'h']);
        golden.extend_from_slice(&[0, 0, 1, 0, 0, 0, 0, 1]); // rebalance 256, session 1
        golden.extend_from_slice(&[0, 0, 0, 1, 9, 0, 0, 0, 0]); // subscription, assignment
        assert_eq!(g.encode().unwrap(), golden);
        assert_eq!(GroupMetadata::decode(&golden).unwrap(), g);
    }

    #[test]
    fn every_version_round_trips_what_it_carries() {
        let full = group();
        for version in 0..=MAX_GROUP_METADATA_VALUE_VERSION {
            let bytes = full.encode_as(version).unwrap();
            let decoded = GroupMetadata::decode(&bytes).unwrap();
            let mut want = full.clone();
            for m in &mut want.members {
                if version < 1 {
                    m.rebalance_timeout_ms = m.session_timeout_ms;
                }
                if version < 3 {
                    m.group_instance_id = None;
                }
            }
            if version < 2 {
                want.current_state_timestamp = None;
            }
            assert_eq!(decoded, want, "version {version}");
        }
    }

    #[test]
    fn truncated_and_garbage_values_are_errors() {
        for version in 0..=MAX_GROUP_METADATA_VALUE_VERSION {
            let bytes = group().encode_as(version).unwrap();
            for cut in 0..bytes.len() {
                assert!(
                    GroupMetadata::decode(&bytes[..cut]).is_err(),
                    "v{version} cut {cut}"
                );
            }
        }
        assert!(matches!(
            GroupMetadata::decode(&[0, 9]),
            Err(RecordFormatError::UnsupportedVersion { version: 9, .. })
        ));
        // A member count far beyond the bytes left is refused before any allocation.
        let mut huge = GroupMetadata::default().encode().unwrap();
        let n = huge.len();
        huge[n - 4..].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(matches!(
            GroupMetadata::decode(&huge),
            Err(RecordFormatError::InvalidLength {
                field: "members",
                ..
            })
        ));
    }
}
