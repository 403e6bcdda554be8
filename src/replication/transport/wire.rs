//! The primitive types of transport frames, big-endian as in Kafka: fixed-width integers,
//! `bool` as one byte (0 or 1), strings and bytes with a `u32` length prefix, arrays with a
//! `u32` count, and `Option<T>` as a presence byte (0 or 1) followed by the value.
//!
//! Every value has exactly one encoding: a decoder that accepts bytes re-encodes them to
//! the same bytes. [`Reader`] checks every bound, never allocates more than the input
//! holds, and reports faults as [`Error::InvalidFrame`] with the byte position.

use byteorder::{BigEndian, ByteOrder};
use bytes::Bytes;

use crate::error::{Error, Result};

/// A type with a binary form in transport frames.
pub(super) trait Wire: Sized {
    /// Appends the encoding of `self`.
    fn write(&self, w: &mut Writer);
    /// Reads one value.
    fn read(r: &mut Reader<'_>) -> Result<Self>;
}

/// Appends encoded values to a buffer.
#[derive(Debug, Default)]
pub(super) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// The bytes written so far.
    pub(super) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    pub(super) fn len(&self) -> usize {
        self.buf.len()
    }

    pub(super) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub(super) fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }

    pub(super) fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(super) fn i16(&mut self, v: i16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(super) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(super) fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(super) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(super) fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// A `u32` length or count. A length past `u32::MAX` saturates; the frame it is in is
    /// then far past [`super::codec::MAX_FRAME_BYTES`] and `encode` refuses it.
    pub(super) fn len_prefix(&mut self, len: usize) {
        self.u32(u32::try_from(len).unwrap_or(u32::MAX));
    }

    pub(super) fn bytes(&mut self, v: &[u8]) {
        self.len_prefix(v.len());
        self.buf.extend_from_slice(v);
    }

    pub(super) fn string(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }

    pub(super) fn option<T>(&mut self, v: Option<&T>, f: impl FnOnce(&mut Self, &T)) {
        match v {
            None => self.u8(0),
            Some(value) => {
                self.u8(1);
                f(self, value);
            }
        }
    }

    pub(super) fn array<T>(&mut self, items: &[T], mut f: impl FnMut(&mut Self, &T)) {
        self.len_prefix(items.len());
        for item in items {
            f(self, item);
        }
    }
}

/// A bounds-checked cursor over one frame.
#[derive(Debug)]
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// The position of the next byte to read.
    pub(super) fn position(&self) -> usize {
        self.pos
    }

    /// How many bytes are left.
    pub(super) fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    /// An [`Error::InvalidFrame`] at `position`.
    pub(super) fn error_at(position: usize, reason: impl Into<String>) -> Error {
        Error::InvalidFrame {
            position,
            reason: reason.into(),
        }
    }

    /// Fails unless every byte was read.
    pub(super) fn finish(&self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(Self::error_at(
                self.pos,
                format!("{n} trailing bytes after the message body"),
            )),
        }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let slice = self
            .pos
            .checked_add(n)
            .and_then(|end| self.bytes.get(self.pos..end))
            .ok_or_else(|| {
                Self::error_at(
                    self.pos,
                    format!(
                        "truncated: {what} needs {n} bytes, {} remain",
                        self.remaining()
                    ),
                )
            })?;
        self.pos += n;
        Ok(slice)
    }

    pub(super) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1, "a u8")?[0])
    }

    /// A byte that must be 0 or 1.
    fn flag(&mut self, what: &str) -> Result<bool> {
        let position = self.pos;
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(Self::error_at(
                position,
                format!("{what} must be 0 or 1, found {other}"),
            )),
        }
    }

    pub(super) fn bool(&mut self) -> Result<bool> {
        self.flag("a bool")
    }

    pub(super) fn u16(&mut self) -> Result<u16> {
        Ok(BigEndian::read_u16(self.take(2, "a u16")?))
    }

    pub(super) fn i16(&mut self) -> Result<i16> {
        Ok(BigEndian::read_i16(self.take(2, "an i16")?))
    }

    pub(super) fn u32(&mut self) -> Result<u32> {
        Ok(BigEndian::read_u32(self.take(4, "a u32")?))
    }

    pub(super) fn i32(&mut self) -> Result<i32> {
        Ok(BigEndian::read_i32(self.take(4, "an i32")?))
    }

    pub(super) fn u64(&mut self) -> Result<u64> {
        Ok(BigEndian::read_u64(self.take(8, "a u64")?))
    }

    pub(super) fn i64(&mut self) -> Result<i64> {
        Ok(BigEndian::read_i64(self.take(8, "an i64")?))
    }

    /// A length prefix; at most what remains (each counted item takes at least
    /// `min_item_bytes`), so no decoder allocates more than the input holds.
    fn len_prefix(&mut self, min_item_bytes: usize, what: &str) -> Result<usize> {
        let position = self.pos;
        let len = usize::try_from(self.u32()?).unwrap_or(usize::MAX);
        let needed = len.saturating_mul(min_item_bytes.max(1));
        if needed > self.remaining() {
            return Err(Self::error_at(
                position,
                format!(
                    "{what} of length {len} does not fit in the {} bytes that remain",
                    self.remaining()
                ),
            ));
        }
        Ok(len)
    }

    pub(super) fn byte_slice(&mut self) -> Result<&'a [u8]> {
        let len = self.len_prefix(1, "bytes")?;
        self.take(len, "bytes")
    }

    pub(super) fn vec(&mut self) -> Result<Vec<u8>> {
        self.byte_slice().map(<[u8]>::to_vec)
    }

    pub(super) fn bytes(&mut self) -> Result<Bytes> {
        self.byte_slice().map(Bytes::copy_from_slice)
    }

    pub(super) fn string(&mut self) -> Result<String> {
        let position = self.pos;
        let raw = self.byte_slice()?;
        String::from_utf8(raw.to_vec())
            .map_err(|e| Self::error_at(position, format!("string is not UTF-8: {e}")))
    }

    pub(super) fn option<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T>,
    ) -> Result<Option<T>> {
        if self.flag("an option's presence byte")? {
            f(self).map(Some)
        } else {
            Ok(None)
        }
    }

    /// An array whose items take at least `min_item_bytes` each.
    pub(super) fn array<T>(
        &mut self,
        min_item_bytes: usize,
        mut f: impl FnMut(&mut Self) -> Result<T>,
    ) -> Result<Vec<T>> {
        let len = self.len_prefix(min_item_bytes, "array")?;
        // Capped: `len` is bounded by the input, but an item may be far larger in memory.
        let mut items = Vec::with_capacity(len.min(1024));
        for _ in 0..len {
            items.push(f(self)?);
        }
        Ok(items)
    }
}

impl Wire for String {
    fn write(&self, w: &mut Writer) {
        w.string(self);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        r.string()
    }
}

impl Wire for u32 {
    fn write(&self, w: &mut Writer) {
        w.u32(*self);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        r.u32()
    }
}
