//! [`RecordFormatError`]: why bytes are not a valid `__consumer_offsets` key or value, or
//! why a value cannot be written in Kafka's format.

/// A `__consumer_offsets` record that does not decode, or a value that does not fit Kafka's
/// record format. Positions are byte offsets into the key or value given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordFormatError {
    /// The bytes end before the field at `position` does.
    #[error("truncated: {needed} more bytes needed at byte {position}")]
    Truncated {
        /// Where the missing bytes should start.
        position: usize,
        /// How many bytes the field needs there.
        needed: usize,
    },

    /// The key's leading version is not one this library knows (0 and 1 are offset
    /// commits, 2 is group metadata; newer Kafka versions add record types from 3 on).
    #[error("unknown key version {version}")]
    UnknownKeyVersion {
        /// The version read.
        version: i16,
    },

    /// The value's leading version is outside the versions of its record type.
    #[error("{record} version {version} is not supported (known: 0 to {max})")]
    UnsupportedVersion {
        /// `OffsetCommitValue` or `GroupMetadataValue`.
        record: &'static str,
        /// The version read (or asked for when encoding).
        version: i16,
        /// The highest version known.
        max: i16,
    },

    /// A length or count field holds a value that is impossible there (a null where null
    /// is not allowed, a negative length, or more elements than bytes left).
    #[error("field `{field}` at byte {position} has invalid length {length}")]
    InvalidLength {
        /// The field, by its Kafka schema name.
        field: &'static str,
        /// Where its length starts.
        position: usize,
        /// The length read (-1 is null).
        length: i64,
    },

    /// A string field is not valid UTF-8.
    #[error("field `{field}` at byte {position} is not valid UTF-8")]
    InvalidUtf8 {
        /// The field, by its Kafka schema name.
        field: &'static str,
        /// Where the string's bytes start.
        position: usize,
    },

    /// A number that must not be negative (an offset, a partition) is.
    #[error("field `{field}` at byte {position} is negative: {value}")]
    Negative {
        /// The field, by its Kafka schema name.
        field: &'static str,
        /// Where the field starts.
        position: usize,
        /// The value read.
        value: i64,
    },

    /// An unsigned varint runs past 5 bytes (flexible versions).
    #[error("varint at byte {position} is longer than 5 bytes")]
    InvalidVarint {
        /// Where the varint starts.
        position: usize,
    },

    /// Bytes are left after the last field.
    #[error("{extra} unexpected bytes after the record at byte {position}")]
    TrailingBytes {
        /// Where the last field ended.
        position: usize,
        /// How many bytes follow it.
        extra: usize,
    },

    /// Encoding: a string or byte field is longer than Kafka's format allows (strings:
    /// 32767 bytes, the i16 length; bytes: `i32::MAX`).
    #[error("field `{field}` is {len} bytes, over the format's limit of {max}")]
    TooLong {
        /// The field, by its Kafka schema name.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// Encoding: a number does not fit its Kafka field (an offset above `i64::MAX`, a
    /// partition above `i32::MAX`).
    #[error("field `{field}` value {value} does not fit the format")]
    ValueTooLarge {
        /// The field, by its Kafka schema name.
        field: &'static str,
        /// The value given.
        value: u64,
    },
}
