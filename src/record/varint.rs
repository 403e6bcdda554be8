//! Zig-zag varints (protobuf style), as Kafka's `ByteUtils` writes them, and a small
//! bounds-checked [`Cursor`] for reading untrusted bytes.
//!
//! A varint (`i32`) takes at most 5 bytes and a varlong (`i64`) at most 10. Decoding is
//! strict: a longer encoding, or a last byte carrying bits beyond the type's width, is an
//! [`Error::InvalidBatch`]; so is running out of bytes. Nothing here panics.

use crate::{Error, Result};

/// Longest varint encoding of an `i32`.
pub(crate) const MAX_VARINT_BYTES: usize = 5;
/// Longest varint encoding of an `i64`.
pub(crate) const MAX_VARLONG_BYTES: usize = 10;

// The encoder writes through `builder::SliceWriter`; these simple `Vec` writers remain as
// an independent reference for tests that build malformed records by hand.

/// Appends `value` zig-zag encoded as a varint.
#[cfg(test)]
pub(crate) fn write_varint(out: &mut Vec<u8>, value: i32) {
    write_unsigned(out, u64::from(((value << 1) ^ (value >> 31)) as u32));
}

/// Appends `value` zig-zag encoded as a varlong.
#[cfg(test)]
pub(crate) fn write_varlong(out: &mut Vec<u8>, value: i64) {
    write_unsigned(out, ((value << 1) ^ (value >> 63)) as u64);
}

#[cfg(test)]
fn write_unsigned(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Bytes a zig-zag varint of `value` takes.
#[inline]
pub(crate) fn size_of_varint(value: i32) -> usize {
    size_of_unsigned(u64::from(((value << 1) ^ (value >> 31)) as u32))
}

#[inline]
fn size_of_unsigned(v: u64) -> usize {
    // Bits needed (at least 1), 7 per byte.
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// A read position in untrusted bytes. Positions in errors are `base + offset in buf`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `buf`, whose first byte is at position `base` for errors.
    pub(crate) fn new(buf: &'a [u8], base: usize) -> Self {
        Cursor { buf, pos: 0, base }
    }

    /// A cursor at byte `pos` of `buf` (positions in errors count from `buf`'s start).
    pub(crate) fn at(buf: &'a [u8], pos: usize) -> Self {
        Cursor { buf, pos, base: 0 }
    }

    /// Absolute position (for error messages) of the next byte.
    pub(crate) fn position(&self) -> usize {
        self.base.saturating_add(self.pos)
    }

    /// The bytes not yet read.
    #[inline]
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    /// Moves past `n` bytes (at most to the end).
    #[inline]
    pub(crate) fn advance(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n).min(self.buf.len());
    }

    /// Bytes not yet read.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Whether every byte was read.
    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// An [`Error::InvalidBatch`] at the current position.
    pub(crate) fn error(&self, reason: impl Into<String>) -> Error {
        Error::invalid_batch(self.position(), reason)
    }

    /// Reads one byte.
    #[inline]
    pub(crate) fn u8(&mut self, what: &str) -> Result<u8> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(self.error(format!("truncated before {what}"))),
        }
    }

    /// Reads the next `len` bytes.
    #[inline]
    pub(crate) fn bytes(&mut self, len: usize, what: &str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(len);
        match end.and_then(|end| self.buf.get(self.pos..end)) {
            Some(s) => {
                self.pos += len;
                Ok(s)
            }
            None => Err(self.error(format!(
                "{what} of {len} bytes runs past the end ({} bytes left)",
                self.remaining()
            ))),
        }
    }

    #[inline]
    fn unsigned(&mut self, max_bytes: usize, last_max: u8, what: &str) -> Result<u64> {
        // Fast paths: lengths and deltas almost always fit in one or two bytes.
        if let Some(&b0) = self.buf.get(self.pos) {
            if b0 & 0x80 == 0 {
                self.pos += 1;
                return Ok(u64::from(b0));
            }
            if let Some(&b1) = self.buf.get(self.pos + 1)
                && b1 & 0x80 == 0
            {
                self.pos += 2;
                return Ok(u64::from(b0 & 0x7f) | u64::from(b1) << 7);
            }
        }
        self.unsigned_slow(max_bytes, last_max, what)
    }

    #[cold]
    fn unsigned_slow(&mut self, max_bytes: usize, last_max: u8, what: &str) -> Result<u64> {
        let start = self.position();
        let mut value = 0u64;
        for i in 0..max_bytes {
            let b = self.u8(what)?;
            let last = i + 1 == max_bytes;
            if last && b > last_max {
                return Err(Error::invalid_batch(
                    start,
                    format!("{what} is not a valid varint (more than {max_bytes} bytes)"),
                ));
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Error::invalid_batch(
            start,
            format!("{what} varint too long"),
        ))
    }

    /// Reads a zig-zag varint.
    #[inline]
    pub(crate) fn varint(&mut self, what: &str) -> Result<i32> {
        // 5th byte may carry only the top 4 bits of 32.
        let raw = self.unsigned(MAX_VARINT_BYTES, 0x0f, what)? as u32;
        Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }

    /// Reads a zig-zag varlong.
    #[inline]
    pub(crate) fn varlong(&mut self, what: &str) -> Result<i64> {
        // 10th byte may carry only the top bit of 64.
        let raw = self.unsigned(MAX_VARLONG_BYTES, 0x01, what)?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    /// Reads a varint length: `-1` is `None`; other negatives and lengths past the end
    /// are errors.
    #[inline]
    pub(crate) fn nullable_bytes(&mut self, what: &str) -> Result<Option<&'a [u8]>> {
        let at = self.position();
        let len = self.varint(what)?;
        if len == -1 {
            return Ok(None);
        }
        let len = usize::try_from(len)
            .map_err(|_| Error::invalid_batch(at, format!("negative {what} length {len}")))?;
        self.bytes(len, what).map(Some)
    }
}

/// Fast-path reads for the common shapes (varints of at most 5 bytes): `None` for
/// anything else, including every error, which the caller then decodes with a [`Cursor`]
/// for an exact error. Never accepts what the `Cursor` readers would refuse.
pub(crate) mod fast {
    /// An unsigned varint of at most 5 bytes whose value fits 32 bits, at `*pos`.
    #[inline(always)]
    pub(crate) fn unsigned(buf: &[u8], pos: &mut usize) -> Option<u32> {
        let first = *buf.get(*pos)?;
        if first < 0x80 {
            *pos += 1;
            return Some(u32::from(first));
        }
        let second = *buf.get(*pos + 1)?;
        if second < 0x80 {
            *pos += 2;
            return Some(u32::from(first & 0x7f) | u32::from(second) << 7);
        }
        let mut value = 0u32;
        for i in 0..super::MAX_VARINT_BYTES {
            let b = *buf.get(*pos + i)?;
            if i + 1 == super::MAX_VARINT_BYTES && b > 0x0f {
                return None;
            }
            value |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                *pos += i + 1;
                return Some(value);
            }
        }
        None
    }

    /// A zig-zag varint.
    #[inline(always)]
    pub(crate) fn varint(buf: &[u8], pos: &mut usize) -> Option<i32> {
        let raw = unsigned(buf, pos)?;
        Some(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }

    /// A zig-zag varlong of at most 5 bytes.
    #[inline(always)]
    pub(crate) fn varlong(buf: &[u8], pos: &mut usize) -> Option<i64> {
        let raw = u64::from(unsigned(buf, pos)?);
        Some(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    /// A varint length then that many bytes; `-1` is `Some(None)`.
    #[inline(always)]
    pub(crate) fn nullable_bytes<'a>(buf: &'a [u8], pos: &mut usize) -> Option<Option<&'a [u8]>> {
        let len = varint(buf, pos)?;
        if len == -1 {
            return Some(None);
        }
        let len = usize::try_from(len).ok()?;
        let bytes = buf.get(*pos..pos.checked_add(len)?)?;
        *pos += len;
        Some(Some(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc_int(v: i32) -> Vec<u8> {
        let mut out = Vec::new();
        write_varint(&mut out, v);
        out
    }

    fn enc_long(v: i64) -> Vec<u8> {
        let mut out = Vec::new();
        write_varlong(&mut out, v);
        out
    }

    /// The fast readers take 1- and 2-byte varints by shortcut: every value and every
    /// cut of its encoding reads as the `Cursor` reads it (cuts: `None`, never a value).
    #[test]
    fn fast_varints_agree_with_the_cursor_on_every_length_and_cut() {
        let values = (-70_000..70_000).chain([i32::MIN, i32::MAX, i32::MIN + 1, i32::MAX - 1]);
        for v in values {
            let bytes = enc_int(v);
            let mut pos = 0;
            assert_eq!(fast::varint(&bytes, &mut pos), Some(v), "{v}");
            assert_eq!(pos, bytes.len(), "{v}");
            for cut in 0..bytes.len() {
                let mut pos = 0;
                assert_eq!(
                    fast::varint(&bytes[..cut], &mut pos),
                    None,
                    "{v} cut at {cut}"
                );
                assert_eq!(pos, 0);
            }
        }
        // Overlong encodings read as the cursor reads them.
        for bytes in [&[0x80u8, 0x00][..], &[0xff, 0x7f], &[0x80, 0x80, 0x00]] {
            let mut pos = 0;
            let fast = fast::varint(bytes, &mut pos);
            let cursor = Cursor::new(bytes, 0).varint("v").ok();
            assert_eq!(fast, cursor, "{bytes:?}");
        }
    }

    #[test]
    fn varints_round_trip_and_sizes_match() {
        for v in [0, 1, -1, 63, -64, 64, 300, -300, i32::MAX, i32::MIN] {
            let bytes = enc_int(v);
            assert_eq!(bytes.len(), size_of_varint(v), "{v}");
            let mut c = Cursor::new(&bytes, 0);
            assert_eq!(c.varint("v").unwrap(), v);
            assert!(c.is_empty());
        }
        for v in [0, 1, -1, 1 << 40, -(1 << 40), i64::MAX, i64::MIN] {
            let bytes = enc_long(v);
            let mut c = Cursor::new(&bytes, 0);
            assert_eq!(c.varlong("v").unwrap(), v);
        }
        assert_eq!(enc_int(-1), [1]);
        assert_eq!(enc_int(1), [2]);
        assert_eq!(enc_int(i32::MIN).len(), MAX_VARINT_BYTES);
        assert_eq!(enc_long(i64::MIN).len(), MAX_VARLONG_BYTES);
    }

    #[test]
    fn truncated_varints_are_errors() {
        let bytes = enc_long(i64::MAX);
        for cut in 0..bytes.len() {
            let mut c = Cursor::new(&bytes[..cut], 0);
            assert!(matches!(c.varlong("ts"), Err(Error::InvalidBatch { .. })));
        }
        let mut c = Cursor::new(&[0x80, 0x80], 7);
        match c.varint("x") {
            Err(Error::InvalidBatch { position, .. }) => assert_eq!(position, 9),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn overlong_varints_are_errors() {
        let mut c = Cursor::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01], 0);
        assert!(c.varint("x").is_err());
        let mut c = Cursor::new(&[0xff, 0xff, 0xff, 0xff, 0x1f], 0);
        assert!(c.varint("x").is_err());
        let mut ten = [0xffu8; 10];
        ten[9] = 0x02; // bit 64: invalid final byte
        assert!(Cursor::new(&ten, 0).varlong("x").is_err());
        let eleven = [0xffu8; 11];
        assert!(Cursor::new(&eleven, 0).varlong("x").is_err());
    }

    #[test]
    fn nullable_lengths_are_checked() {
        let mut buf = enc_int(-1);
        write_varint(&mut buf, -2);
        let mut c = Cursor::new(&buf, 0);
        assert_eq!(c.nullable_bytes("key").unwrap(), None);
        assert!(c.nullable_bytes("key").is_err());
        let mut buf = enc_int(5);
        buf.extend_from_slice(b"abc");
        assert!(Cursor::new(&buf, 0).nullable_bytes("key").is_err());
    }
}
