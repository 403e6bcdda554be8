//! [`LogRecord`]: an owned record read back from the log that shares the fetched buffer.
//!
//! A `LogRecord` holds one [`Bytes`] (typically a batch's records section) plus `u32`
//! ranges for its key, value and encoded headers, so producing one costs a single
//! reference-count bump rather than copies.

use std::fmt;

use bytes::Bytes;

use super::view::{HeaderIter, HeaderView, RecordView};
use super::{Header, Record};

/// A byte range inside the shared buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    len: u32,
}

impl Span {
    fn get(self, buf: &[u8]) -> &[u8] {
        let start = self.start as usize;
        start
            .checked_add(self.len as usize)
            .and_then(|end| buf.get(start..end))
            .unwrap_or_default()
    }
}

/// An owned record read back from the log, with its offset and timestamp.
#[derive(Clone)]
pub struct LogRecord {
    buffer: Bytes,
    offset: u64,
    timestamp: i64,
    key: Option<Span>,
    value: Option<Span>,
    headers: Span,
    header_count: u32,
}

/// The range of `part` inside `buf`, if it lies there and fits `u32`.
#[inline]
fn span_in(buf: &[u8], part: &[u8]) -> Option<Span> {
    let at = (part.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
    // One comparison covers "starts inside" and "ends inside" (no overflow: at ≤ len).
    if at > buf.len() || part.len() > buf.len() - at || buf.len() > u32::MAX as usize {
        return None;
    }
    Some(Span {
        start: at as u32,
        len: part.len() as u32,
    })
}

impl LogRecord {
    /// A record sharing `buffer`, which must contain the view's key, value and headers; if
    /// it does not, they are copied into a new buffer instead.
    #[inline]
    pub fn from_view(buffer: &Bytes, view: &RecordView<'_>) -> Self {
        let header_count = u32::try_from(view.header_count()).unwrap_or(0);
        let key = view.key().map(|k| span_in(buffer, k));
        let value = view.value().map(|v| span_in(buffer, v));
        let headers = span_in(buffer, view.header_bytes());
        let shared = key.is_none_or(|k| k.is_some())
            && value.is_none_or(|v| v.is_some())
            && headers.is_some();
        let (buffer, key, value, headers) = if shared {
            (
                buffer.clone(),
                key.flatten(),
                value.flatten(),
                headers.unwrap_or(Span { start: 0, len: 0 }),
            )
        } else {
            Self::copied(view)
        };
        LogRecord {
            buffer,
            offset: view.offset(),
            timestamp: view.timestamp(),
            key,
            value,
            headers,
            header_count,
        }
    }

    /// Copies the view's parts into a fresh buffer: key, value, headers.
    fn copied(view: &RecordView<'_>) -> (Bytes, Option<Span>, Option<Span>, Span) {
        let parts = [view.key(), view.value(), Some(view.header_bytes())];
        let mut buf = Vec::with_capacity(parts.iter().flatten().map(|p| p.len()).sum());
        let mut spans = [None; 3];
        for (part, span) in parts.iter().zip(spans.iter_mut()) {
            if let Some(p) = part {
                *span = Some(Span {
                    start: u32::try_from(buf.len()).unwrap_or(u32::MAX),
                    len: u32::try_from(p.len()).unwrap_or(0),
                });
                buf.extend_from_slice(p);
            }
        }
        let [key, value, headers] = spans;
        (
            Bytes::from(buf),
            key,
            value,
            headers.unwrap_or(Span { start: 0, len: 0 }),
        )
    }

    /// The record's offset in its partition.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The record's timestamp in ms.
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// The key, if not null.
    pub fn key(&self) -> Option<&[u8]> {
        self.key.map(|s| s.get(&self.buffer))
    }

    /// The value, if not null.
    pub fn value(&self) -> Option<&[u8]> {
        self.value.map(|s| s.get(&self.buffer))
    }

    /// Number of headers.
    pub fn header_count(&self) -> usize {
        self.header_count as usize
    }

    /// The headers, in order (they were validated when the record was read).
    pub fn headers(&self) -> Vec<HeaderView<'_>> {
        HeaderIter::new(self.headers.get(&self.buffer), self.header_count())
            .map_while(Result::ok)
            .collect()
    }

    /// An owned copy as a [`Record`] (with its timestamp, without its offset).
    pub fn to_record(&self) -> Record {
        let mut record = Record::default()
            .with_value(self.value().map(<[u8]>::to_vec))
            .with_timestamp(self.timestamp);
        if let Some(key) = self.key() {
            record = record.with_key(key.to_vec());
        }
        for h in self.headers() {
            record = record.with_header(h.key, h.value.map(<[u8]>::to_vec));
        }
        record
    }

    /// The headers as owned [`Header`]s.
    pub fn owned_headers(&self) -> Vec<Header> {
        self.headers()
            .into_iter()
            .map(|h| Header {
                key: h.key.into_owned(),
                value: h.value.map(<[u8]>::to_vec),
            })
            .collect()
    }
}

impl PartialEq for LogRecord {
    /// Equal when offset, timestamp, key, value and headers are equal (wherever the bytes live).
    fn eq(&self, other: &Self) -> bool {
        self.offset == other.offset
            && self.timestamp == other.timestamp
            && self.key() == other.key()
            && self.value() == other.value()
            && self.header_count == other.header_count
            && self.headers.get(&self.buffer) == other.headers.get(&other.buffer)
    }
}

impl Eq for LogRecord {}

impl fmt::Debug for LogRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogRecord")
            .field("offset", &self.offset)
            .field("timestamp", &self.timestamp)
            .field("key_len", &self.key().map(<[u8]>::len))
            .field("value_len", &self.value().map(<[u8]>::len))
            .field("headers", &self.header_count)
            .finish()
    }
}

#[cfg(all(
    test,
    feature = "gzip",
    feature = "snappy",
    feature = "lz4",
    feature = "zstd"
))]
mod tests {
    use super::*;
    use crate::record::{Compression, RecordBatch, RecordIter, encode_batch};

    fn section() -> (Bytes, crate::record::BatchHeader) {
        let records = [
            Record::new(b"value".to_vec())
                .with_key(b"key".to_vec())
                .with_timestamp(5)
                .with_header("h", None)
                .with_header("ü", Some(b"x".to_vec())),
            Record::tombstone(b"gone".to_vec()).with_timestamp(6),
        ];
        let mut out = Vec::new();
        encode_batch(&records, Compression::Zstd, 0, &mut out).unwrap();
        let batch = RecordBatch::parse(&out).unwrap();
        let header = *batch.header();
        (
            Bytes::from(batch.records_bytes().unwrap().into_owned()),
            header,
        )
    }

    #[test]
    fn records_share_the_buffer_and_read_back_their_fields() {
        let (buf, header) = section();
        let recs: Vec<LogRecord> = RecordIter::new(&header, &buf)
            .map(|v| LogRecord::from_view(&buf, &v.unwrap()))
            .collect();
        let key = recs[0].key().unwrap();
        let base = buf.as_ptr() as usize;
        assert!((base..base + buf.len()).contains(&(key.as_ptr() as usize)));
        assert_eq!((recs[0].offset(), recs[0].timestamp()), (0, 5));
        assert_eq!(recs[0].value(), Some(&b"value"[..]));
        assert_eq!(recs[0].header_count(), 2);
        let hs = recs[0].headers();
        assert_eq!(
            hs[0],
            HeaderView {
                key: "h".into(),
                value: None
            }
        );
        assert_eq!(
            hs[1],
            HeaderView {
                key: "ü".into(),
                value: Some(b"x")
            }
        );
        assert_eq!(recs[0].owned_headers()[1].key, "ü");
        assert_eq!((recs[1].key(), recs[1].value()), (Some(&b"gone"[..]), None));
        let back = recs[1].to_record();
        assert_eq!(back, Record::tombstone(b"gone".to_vec()).with_timestamp(6));
        let dbg = format!("{:?}", recs[0]);
        assert!(
            dbg.contains("offset: 0") && dbg.contains("value_len: Some(5)"),
            "{dbg}"
        );
    }

    #[test]
    fn a_view_outside_the_buffer_is_copied_and_still_equal() {
        let (buf, header) = section();
        let other = Bytes::from_static(b"unrelated");
        let shared: Vec<LogRecord> = RecordIter::new(&header, &buf)
            .map(|v| LogRecord::from_view(&buf, &v.unwrap()))
            .collect();
        let copied: Vec<LogRecord> = RecordIter::new(&header, &buf)
            .map(|v| LogRecord::from_view(&other, &v.unwrap()))
            .collect();
        assert_eq!(shared, copied);
        assert_eq!(copied[0].to_record(), shared[0].to_record());
        assert_ne!(shared[0], shared[1]);
    }
}
