//! Kafka's primitive types as `__consumer_offsets` records use them: big-endian integers,
//! strings and bytes with a length prefix, arrays with a count prefix. Classic
//! (non-flexible) versions use `i16` string lengths and `i32` byte and array lengths, with
//! -1 for null; flexible versions use "compact" lengths (unsigned varint of length + 1,
//! 0 for null) and end every struct with a tagged-field section.
//!
//! [`Reader`] checks every bound and never allocates more than the input holds;
//! [`Writer`] refuses values the format cannot carry.

use super::error::RecordFormatError;

/// The longest string Kafka's format carries: its length is an `i16`.
pub(super) const MAX_STRING_BYTES: usize = i16::MAX as usize;

/// Bytes fields carry an `i32` length.
const MAX_BYTES_LEN: usize = i32::MAX as usize;

type Result<T> = std::result::Result<T, RecordFormatError>;

/// A bounds-checked cursor over one key or value.
#[derive(Debug)]
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    flexible: bool,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`, in classic (non-flexible) mode.
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            pos: 0,
            flexible: false,
        }
    }

    /// Switches to flexible (compact lengths, tagged fields) decoding.
    pub(super) fn set_flexible(&mut self, flexible: bool) {
        self.flexible = flexible;
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let truncated = RecordFormatError::Truncated {
            position: self.pos,
            needed: n,
        };
        let end = self.pos.checked_add(n).ok_or(truncated.clone())?;
        let slice = self.bytes.get(self.pos..end).ok_or(truncated)?;
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(super) fn i16(&mut self) -> Result<i16> {
        self.array().map(i16::from_be_bytes)
    }

    pub(super) fn i32(&mut self) -> Result<i32> {
        self.array().map(i32::from_be_bytes)
    }

    pub(super) fn i64(&mut self) -> Result<i64> {
        self.array().map(i64::from_be_bytes)
    }

    /// An `i64` that must not be negative.
    pub(super) fn u63(&mut self, field: &'static str) -> Result<u64> {
        let position = self.pos;
        let value = self.i64()?;
        u64::try_from(value).map_err(|_| RecordFormatError::Negative {
            field,
            position,
            value,
        })
    }

    /// An `i32` that must not be negative.
    pub(super) fn u31(&mut self, field: &'static str) -> Result<u32> {
        let position = self.pos;
        let value = self.i32()?;
        u32::try_from(value).map_err(|_| RecordFormatError::Negative {
            field,
            position,
            value: value.into(),
        })
    }

    /// An unsigned varint of at most 5 bytes (a `u32`).
    fn uvarint(&mut self) -> Result<u32> {
        let position = self.pos;
        let mut value: u32 = 0;
        for i in 0..5 {
            let [byte] = self.array::<1>()?;
            value |= u32::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordFormatError::InvalidVarint { position })
    }

    /// A length prefix: `None` for null. `classic` reads the classic-mode width.
    fn length(
        &mut self,
        field: &'static str,
        classic: fn(&mut Self) -> Result<i64>,
    ) -> Result<Option<usize>> {
        let position = self.pos;
        let length = if self.flexible {
            i64::from(self.uvarint()?) - 1
        } else {
            classic(self)?
        };
        if length == -1 {
            return Ok(None);
        }
        match usize::try_from(length) {
            Ok(n) if n <= self.remaining() => Ok(Some(n)),
            _ => Err(RecordFormatError::InvalidLength {
                field,
                position,
                length,
            }),
        }
    }

    /// A string's length; compact lengths above `i16::MAX` are refused as Kafka does.
    fn string_length(&mut self, field: &'static str) -> Result<Option<usize>> {
        let position = self.pos;
        let len = self.length(field, |r| r.i16().map(i64::from))?;
        match len {
            Some(n) if n > MAX_STRING_BYTES => Err(RecordFormatError::InvalidLength {
                field,
                position,
                length: n as i64,
            }),
            len => Ok(len),
        }
    }

    fn bytes_length(&mut self, field: &'static str) -> Result<Option<usize>> {
        self.length(field, |r| r.i32().map(i64::from))
    }

    /// A nullable string.
    pub(super) fn nullable_string(&mut self, field: &'static str) -> Result<Option<String>> {
        let Some(len) = self.string_length(field)? else {
            return Ok(None);
        };
        let position = self.pos;
        let bytes = self.take(len)?;
        let text = std::str::from_utf8(bytes)
            .map_err(|_| RecordFormatError::InvalidUtf8 { field, position })?;
        Ok(Some(text.to_owned()))
    }

    /// A string that may not be null.
    pub(super) fn string(&mut self, field: &'static str) -> Result<String> {
        let position = self.pos;
        self.nullable_string(field)?
            .ok_or(RecordFormatError::InvalidLength {
                field,
                position,
                length: -1,
            })
    }

    /// A bytes field that may not be null.
    pub(super) fn bytes(&mut self, field: &'static str) -> Result<Vec<u8>> {
        let position = self.pos;
        let len = self
            .bytes_length(field)?
            .ok_or(RecordFormatError::InvalidLength {
                field,
                position,
                length: -1,
            })?;
        self.take(len).map(<[u8]>::to_vec)
    }

    /// An array's element count (not null); never more than the bytes left, since every
    /// element takes at least one byte.
    pub(super) fn array_len(&mut self, field: &'static str) -> Result<usize> {
        let position = self.pos;
        self.bytes_length(field)?
            .ok_or(RecordFormatError::InvalidLength {
                field,
                position,
                length: -1,
            })
    }

    /// Skips a struct's tagged fields (flexible versions only; nothing in classic ones).
    pub(super) fn tagged_fields(&mut self) -> Result<()> {
        if !self.flexible {
            return Ok(());
        }
        let count = self.uvarint()?;
        for _ in 0..count {
            let _tag = self.uvarint()?;
            let position = self.pos;
            let size = self.uvarint()?;
            let size = usize::try_from(size).map_err(|_| RecordFormatError::InvalidLength {
                field: "tagged field",
                position,
                length: size.into(),
            })?;
            self.take(size)?;
        }
        Ok(())
    }

    /// Checks that nothing follows the last field.
    pub(super) fn finish(self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(RecordFormatError::TrailingBytes {
                position: self.pos,
                extra,
            }),
        }
    }
}

/// Builds one key or value.
#[derive(Debug, Default)]
pub(super) struct Writer {
    buf: Vec<u8>,
    flexible: bool,
}

impl Writer {
    /// An empty writer in classic mode.
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// Switches to flexible encoding.
    pub(super) fn set_flexible(&mut self, flexible: bool) {
        self.flexible = flexible;
    }

    pub(super) fn i16(&mut self, v: i16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(super) fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(super) fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// A `u64` as an `i64`; above `i64::MAX` does not fit.
    pub(super) fn u63(&mut self, field: &'static str, v: u64) -> Result<()> {
        let v =
            i64::try_from(v).map_err(|_| RecordFormatError::ValueTooLarge { field, value: v })?;
        self.i64(v);
        Ok(())
    }

    /// A `u32` as an `i32`; above `i32::MAX` does not fit.
    pub(super) fn u31(&mut self, field: &'static str, v: u32) -> Result<()> {
        let v = i32::try_from(v).map_err(|_| RecordFormatError::ValueTooLarge {
            field,
            value: v.into(),
        })?;
        self.i32(v);
        Ok(())
    }

    fn uvarint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    /// A length prefix (`None`: null); `len` was checked against the field's limit.
    fn length(&mut self, len: Option<usize>, classic_i16: bool) {
        if self.flexible {
            // len ≤ i32::MAX, so len + 1 fits a u32.
            self.uvarint(len.map_or(0, |n| n as u32 + 1));
        } else if classic_i16 {
            self.i16(len.map_or(-1, |n| n as i16));
        } else {
            self.i32(len.map_or(-1, |n| n as i32));
        }
    }

    fn check(field: &'static str, len: usize, max: usize) -> Result<()> {
        if len > max {
            return Err(RecordFormatError::TooLong { field, len, max });
        }
        Ok(())
    }

    pub(super) fn nullable_string(&mut self, field: &'static str, s: Option<&str>) -> Result<()> {
        if let Some(s) = s {
            Self::check(field, s.len(), MAX_STRING_BYTES)?;
        }
        self.length(s.map(str::len), true);
        self.buf.extend_from_slice(s.unwrap_or_default().as_bytes());
        Ok(())
    }

    pub(super) fn string(&mut self, field: &'static str, s: &str) -> Result<()> {
        self.nullable_string(field, Some(s))
    }

    pub(super) fn bytes(&mut self, field: &'static str, b: &[u8]) -> Result<()> {
        Self::check(field, b.len(), MAX_BYTES_LEN)?;
        self.length(Some(b.len()), false);
        self.buf.extend_from_slice(b);
        Ok(())
    }

    pub(super) fn array_len(&mut self, field: &'static str, n: usize) -> Result<()> {
        Self::check(field, n, MAX_BYTES_LEN)?;
        self.length(Some(n), false);
        Ok(())
    }

    /// An empty tagged-field section (flexible versions only).
    pub(super) fn tagged_fields(&mut self) {
        if self.flexible {
            self.uvarint(0);
        }
    }

    /// The bytes written.
    pub(super) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_string_is_i16_length_then_utf8() {
        let mut w = Writer::new();
        w.string("s", "ab").unwrap();
        w.nullable_string("n", None).unwrap();
        assert_eq!(w.into_bytes(), [0, 2, b'a', b'b', 0xff, 0xff]);
    }

    #[test]
    fn compact_string_is_varint_of_length_plus_one() {
        let mut w = Writer::new();
        w.set_flexible(true);
        w.string("s", "ab").unwrap();
        w.nullable_string("n", None).unwrap();
        w.tagged_fields();
        let bytes = w.into_bytes();
        assert_eq!(bytes, [3, b'a', b'b', 0, 0]);
        let mut r = Reader::new(&bytes);
        r.set_flexible(true);
        assert_eq!(r.string("s").unwrap(), "ab");
        assert_eq!(r.nullable_string("n").unwrap(), None);
        r.tagged_fields().unwrap();
        r.finish().unwrap();
    }

    #[test]
    fn tagged_fields_are_skipped() {
        // Two tagged fields: tag 0 with 2 bytes, tag 5 with 0 bytes.
        let bytes = [2, 0, 2, 9, 9, 5, 0];
        let mut r = Reader::new(&bytes);
        r.set_flexible(true);
        r.tagged_fields().unwrap();
        r.finish().unwrap();
    }

    #[test]
    fn lengths_past_the_end_or_negative_are_refused() {
        let mut r = Reader::new(&[0, 5, b'a']);
        assert!(matches!(
            r.string("s"),
            Err(RecordFormatError::InvalidLength { length: 5, .. })
        ));
        let mut r = Reader::new(&[0xff, 0xfe]);
        assert!(matches!(
            r.string("s"),
            Err(RecordFormatError::InvalidLength { length: -2, .. })
        ));
        let mut r = Reader::new(&[0xff, 0xff]);
        assert!(matches!(
            r.string("s"),
            Err(RecordFormatError::InvalidLength { length: -1, .. })
        ));
        let mut r = Reader::new(&[0x7f, 0xff, 0xff, 0xff]);
        assert!(r.array_len("a").is_err());
        let mut r = Reader::new(&[0x80, 0x80, 0x80, 0x80, 0x80, 0]);
        r.set_flexible(true);
        assert!(matches!(
            r.string("s"),
            Err(RecordFormatError::InvalidVarint { position: 0 })
        ));
    }

    #[test]
    fn over_long_strings_and_values_are_refused() {
        let mut w = Writer::new();
        let long = "x".repeat(MAX_STRING_BYTES + 1);
        assert!(matches!(
            w.string("metadata", &long),
            Err(RecordFormatError::TooLong {
                len: 32768,
                max: 32767,
                ..
            })
        ));
        assert!(w.u63("offset", u64::MAX).is_err());
        assert!(w.u31("partition", u32::MAX).is_err());
        w.string("ok", &long[1..]).unwrap();
    }
}
