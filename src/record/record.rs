//! [`Record`]: the owned record an application appends, and its [`Header`]s.

// `record::record` is the file layout fixed by `record/mod.rs`.
#![allow(clippy::module_inception)]

/// One record to append: optional key, optional value (a `None` value with a key is a
/// tombstone for compaction), headers, and an optional timestamp in milliseconds (records
/// without one get the batch's default timestamp when encoded).
///
/// ```
/// use streamlog::Record;
///
/// let record = Record::new(b"hello".to_vec())
///     .with_key(b"user-1".to_vec())
///     .with_timestamp(1_700_000_000_000)
///     .with_header("trace", Some(b"abc".to_vec()));
/// assert_eq!(record.key(), Some(&b"user-1"[..]));
/// assert_eq!(record.value(), Some(&b"hello"[..]));
/// assert_eq!(record.headers()[0].key, "trace");
/// assert_eq!(record.timestamp(), Some(1_700_000_000_000));
///
/// let tombstone = Record::tombstone(b"user-1".to_vec());
/// assert_eq!(tombstone.value(), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<Header>,
    timestamp: Option<i64>,
}

/// A record header: a key and an optional value. Keys are text; one read from stored bytes
/// that are not UTF-8 holds U+FFFD in their place (as Kafka's Java client reads them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The header's key; never null in Kafka's format.
    pub key: String,
    /// The header's value; `None` is encoded as length -1.
    pub value: Option<Vec<u8>>,
}

impl Record {
    /// A record with `value`, no key, no headers and no timestamp.
    pub fn new(value: Vec<u8>) -> Self {
        Record {
            value: Some(value),
            ..Record::default()
        }
    }

    /// A tombstone: `key` with a null value.
    pub fn tombstone(key: Vec<u8>) -> Self {
        Record {
            key: Some(key),
            ..Record::default()
        }
    }

    /// Sets the key.
    pub fn with_key(mut self, key: Vec<u8>) -> Self {
        self.key = Some(key);
        self
    }

    /// Sets (or clears, with `None`) the value.
    pub fn with_value(mut self, value: Option<Vec<u8>>) -> Self {
        self.value = value;
        self
    }

    /// Sets the timestamp, in milliseconds since the Unix epoch.
    pub fn with_timestamp(mut self, timestamp_ms: i64) -> Self {
        self.timestamp = Some(timestamp_ms);
        self
    }

    /// Adds a header (keys may repeat; order is kept).
    pub fn with_header(mut self, key: impl Into<String>, value: Option<Vec<u8>>) -> Self {
        self.headers.push(Header {
            key: key.into(),
            value,
        });
        self
    }

    /// The key, if any.
    pub fn key(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }

    /// The value, if any.
    pub fn value(&self) -> Option<&[u8]> {
        self.value.as_deref()
    }

    /// The headers, in order.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// The timestamp, if one was set.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_set_each_field() {
        let r = Record::default()
            .with_key(b"k".to_vec())
            .with_value(Some(b"v".to_vec()))
            .with_timestamp(-5)
            .with_header("h1", None)
            .with_header(String::from("h2"), Some(vec![1]));
        assert_eq!(r.key(), Some(&b"k"[..]));
        assert_eq!(r.value(), Some(&b"v"[..]));
        assert_eq!(r.timestamp(), Some(-5));
        assert_eq!(r.headers().len(), 2);
        assert_eq!(r.headers()[0].value, None);
        assert_eq!(r.headers()[1].key, "h2");
    }

    #[test]
    fn tombstone_has_key_and_null_value() {
        let r = Record::tombstone(b"k".to_vec());
        assert_eq!(r.key(), Some(&b"k"[..]));
        assert_eq!(r.value(), None);
        assert_eq!(r.timestamp(), None);
        assert_eq!(Record::new(vec![]).value(), Some(&[][..]));
    }
}
