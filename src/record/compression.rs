//! [`Compression`]: the batch codecs, framed exactly as Kafka frames them.
//!
//! - gzip: a gzip stream (concatenated members are accepted on decode);
//! - snappy: xerial framing (magic `82 53 4e 41 50 50 59 00`, version 1, compatible 1, then
//!   blocks of a 4-byte big-endian length and a raw snappy block of at most 32 KiB of
//!   input); a plain raw snappy block without the magic is accepted on decode;
//! - lz4: an LZ4 frame with independent 64 KiB blocks;
//! - zstd: a zstd frame (level 3), decoded as a stream (no content size needed).
//!
//! Decompression is capped: once the output would exceed `max_output_bytes` it stops with
//! [`Error::InvalidBatch`]. Output grows as it is produced; nothing is pre-allocated from a
//! size field in the compressed data (a raw snappy block's declared size is first bounded by
//! snappy's maximum expansion of its input). Each codec sits behind its cargo feature; a
//! codec left out of the build is [`Error::UnsupportedCompression`].

#[cfg(any(feature = "gzip", feature = "lz4", feature = "zstd"))]
use std::io::Read;

use crate::{Error, Result};

/// Most bytes a batch's records may decompress to: 64 MiB.
pub(crate) const MAX_DECOMPRESSED_BYTES: usize = 64 << 20;

/// Codec of a batch's records (attributes bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Compression {
    /// Uncompressed (id 0).
    #[default]
    None,
    /// gzip (id 1).
    Gzip,
    /// snappy, xerial framing (id 2).
    Snappy,
    /// LZ4 frame (id 3).
    Lz4,
    /// zstd frame (id 4).
    Zstd,
}

impl Compression {
    /// Every codec, in id order.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// Kafka's codec id, 0..=4 (attributes bits 0-2).
    pub fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The codec with Kafka id `id`; unknown ids are [`Error::UnsupportedCompression`].
    /// (Whether this build can encode or decode it is checked when it is used.)
    pub fn from_id(id: u8) -> Result<Self> {
        match id {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            codec => Err(Error::UnsupportedCompression { codec }),
        }
    }

    /// Compresses `input`, appending the framed result to `out`.
    pub(crate) fn compress(self, input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        match self {
            Compression::None => {
                out.extend_from_slice(input);
                Ok(())
            }
            #[cfg(feature = "gzip")]
            Compression::Gzip => {
                let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
                std::io::Write::write_all(&mut enc, input).map_err(encode_err)?;
                enc.finish().map(|_| ()).map_err(encode_err)
            }
            #[cfg(feature = "snappy")]
            Compression::Snappy => snappy::compress(input, out),
            #[cfg(feature = "lz4")]
            Compression::Lz4 => {
                use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};
                let info = FrameInfo::new()
                    .block_size(BlockSize::Max64KB)
                    .block_mode(BlockMode::Independent);
                let mut enc = FrameEncoder::with_frame_info(info, out);
                std::io::Write::write_all(&mut enc, input).map_err(encode_err)?;
                enc.finish()
                    .map(|_| ())
                    .map_err(|e| encode_err(std::io::Error::other(e)))
            }
            #[cfg(feature = "zstd")]
            Compression::Zstd => zstd::stream::copy_encode(input, out, 3).map_err(encode_err),
            #[allow(unreachable_patterns)]
            other => Err(Error::UnsupportedCompression { codec: other.id() }),
        }
    }

    /// Decompresses one block of records, failing once the output would pass
    /// `max_output_bytes`.
    pub(crate) fn decompress(self, input: &[u8], max_output_bytes: usize) -> Result<Vec<u8>> {
        match self {
            Compression::None => {
                if input.len() > max_output_bytes {
                    return Err(too_large(max_output_bytes));
                }
                Ok(input.to_vec())
            }
            #[cfg(feature = "gzip")]
            Compression::Gzip => {
                read_capped(flate2::read::MultiGzDecoder::new(input), max_output_bytes)
            }
            #[cfg(feature = "snappy")]
            Compression::Snappy => snappy::decompress(input, max_output_bytes),
            #[cfg(feature = "lz4")]
            Compression::Lz4 => {
                read_capped(lz4_flex::frame::FrameDecoder::new(input), max_output_bytes)
            }
            #[cfg(feature = "zstd")]
            Compression::Zstd => {
                // libzstd refuses windows above 2^27 (128 MiB) by default, as in Kafka, which
                // bounds the window buffer it allocates.
                let dec = zstd::stream::read::Decoder::with_buffer(input).map_err(decode_err)?;
                read_capped(dec, max_output_bytes)
            }
            #[allow(unreachable_patterns)]
            other => Err(Error::UnsupportedCompression { codec: other.id() }),
        }
    }
}

#[cfg(any(feature = "gzip", feature = "lz4", feature = "zstd"))]
fn read_capped(reader: impl Read, max_output_bytes: usize) -> Result<Vec<u8>> {
    let limit = u64::try_from(max_output_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let mut out = Vec::new();
    reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(decode_err)?;
    if out.len() > max_output_bytes {
        return Err(too_large(max_output_bytes));
    }
    Ok(out)
}

fn too_large(max: usize) -> Error {
    Error::invalid_batch(
        crate::record::BATCH_OVERHEAD,
        format!("records decompress to more than {max} bytes"),
    )
}

#[cfg(any(
    feature = "gzip",
    feature = "snappy",
    feature = "lz4",
    feature = "zstd"
))]
fn decode_err(e: impl std::fmt::Display) -> Error {
    Error::invalid_batch(
        crate::record::BATCH_OVERHEAD,
        format!("cannot decompress records: {e}"),
    )
}

#[cfg(any(feature = "gzip", feature = "lz4", feature = "zstd"))]
fn encode_err(e: std::io::Error) -> Error {
    // Writing into a Vec only fails on a codec bug; surface it rather than panic.
    Error::invalid_batch(0, format!("cannot compress records: {e}"))
}

#[cfg(feature = "snappy")]
mod snappy {
    //! Kafka's xerial snappy framing.
    use super::{Error, Result, decode_err, too_large};

    const MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
    const HEADER_LEN: usize = 16;
    const BLOCK_INPUT: usize = 32 * 1024;
    /// A snappy copy op of 3 bytes can produce 64: no block expands more than this.
    const MAX_EXPANSION: usize = 22;

    pub(super) fn compress(input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&1i32.to_be_bytes());
        out.extend_from_slice(&1i32.to_be_bytes());
        let mut enc = snap::raw::Encoder::new();
        for chunk in input.chunks(BLOCK_INPUT) {
            let len_at = out.len();
            out.extend_from_slice(&[0; 4]);
            let data_at = out.len();
            out.resize(data_at + snap::raw::max_compress_len(chunk.len()), 0);
            let n = match out.get_mut(data_at..) {
                Some(dst) => enc.compress(chunk, dst).map_err(decode_err)?,
                None => 0,
            };
            out.truncate(data_at + n);
            let len = i32::try_from(n).map_err(decode_err)?;
            if let Some(dst) = out.get_mut(len_at..data_at) {
                dst.copy_from_slice(&len.to_be_bytes());
            }
        }
        Ok(())
    }

    pub(super) fn decompress(input: &[u8], max: usize) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut dec = snap::raw::Decoder::new();
        if input.len() < HEADER_LEN || input.get(..8) != Some(&MAGIC[..]) {
            raw_block(&mut dec, input, &mut out, max)?;
            return Ok(out);
        }
        let mut rest = input.get(HEADER_LEN..).unwrap_or_default();
        while !rest.is_empty() {
            let (len, tail) = match rest.split_first_chunk::<4>() {
                Some((len, tail)) => (i32::from_be_bytes(*len), tail),
                None => return Err(decode_err("truncated snappy block length")),
            };
            let block = usize::try_from(len)
                .ok()
                .and_then(|len| tail.get(..len))
                .ok_or_else(|| decode_err(format!("snappy block length {len} is invalid")))?;
            raw_block(&mut dec, block, &mut out, max)?;
            rest = tail.get(block.len()..).unwrap_or_default();
        }
        Ok(out)
    }

    fn raw_block(
        dec: &mut snap::raw::Decoder,
        block: &[u8],
        out: &mut Vec<u8>,
        max: usize,
    ) -> Result<()> {
        let len = snap::raw::decompress_len(block).map_err(decode_err)?;
        if len > max.saturating_sub(out.len()) {
            return Err(too_large(max));
        }
        if len > block.len().saturating_mul(MAX_EXPANSION) {
            return Err(decode_err(format!(
                "snappy block of {} bytes claims {len} bytes",
                block.len()
            )));
        }
        let at = out.len();
        out.resize(at + len, 0);
        let n = match out.get_mut(at..) {
            Some(dst) => dec.decompress(block, dst).map_err(decode_err)?,
            None => 0,
        };
        if n != len {
            return Err(Error::invalid_batch(
                crate::record::BATCH_OVERHEAD,
                "snappy block shorter than declared",
            ));
        }
        Ok(())
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

    fn sample() -> Vec<u8> {
        (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    #[test]
    fn ids_round_trip_and_unknown_ids_are_unsupported() {
        for c in Compression::ALL {
            assert_eq!(Compression::from_id(c.id()).unwrap(), c);
        }
        assert!(matches!(
            Compression::from_id(5),
            Err(Error::UnsupportedCompression { codec: 5 })
        ));
        assert_eq!(Compression::default(), Compression::None);
    }

    #[test]
    fn every_codec_round_trips_and_appends() {
        let data = sample();
        for c in Compression::ALL {
            let mut out = b"prefix".to_vec();
            c.compress(&data, &mut out).unwrap();
            assert_eq!(&out[..6], b"prefix");
            let back = c.decompress(&out[6..], MAX_DECOMPRESSED_BYTES).unwrap();
            assert_eq!(back, data, "{c:?}");
            let mut empty = Vec::new();
            c.compress(&[], &mut empty).unwrap();
            assert!(c.decompress(&empty, 10).unwrap().is_empty(), "{c:?}");
        }
    }

    #[test]
    fn decompression_stops_at_the_cap() {
        let data = vec![7u8; 1 << 20];
        for c in Compression::ALL {
            let mut out = Vec::new();
            c.compress(&data, &mut out).unwrap();
            assert!(c.decompress(&out, data.len()).is_ok(), "{c:?}");
            let err = c.decompress(&out, data.len() - 1).unwrap_err();
            assert!(matches!(err, Error::InvalidBatch { .. }), "{c:?}: {err}");
        }
    }

    #[test]
    fn snappy_uses_xerial_framing_and_accepts_raw_blocks() {
        let data = sample();
        let mut out = Vec::new();
        Compression::Snappy.compress(&data, &mut out).unwrap();
        assert_eq!(out[..8], [0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00]);
        assert_eq!(out[8..16], [0, 0, 0, 1, 0, 0, 0, 1]);
        let raw = snap::raw::Encoder::new()
            .compress_vec(b"plain raw block")
            .unwrap();
        let back = Compression::Snappy.decompress(&raw, 100).unwrap();
        assert_eq!(back, b"plain raw block");
    }

    #[test]
    fn garbage_is_an_error_for_every_codec() {
        let junk: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37)).collect();
        for c in [Compression::Gzip, Compression::Lz4, Compression::Zstd] {
            assert!(c.decompress(&junk, 1 << 20).is_err(), "{c:?}");
        }
        let mut framed = Vec::new();
        Compression::Snappy.compress(b"abc", &mut framed).unwrap();
        framed.truncate(framed.len() - 1);
        assert!(Compression::Snappy.decompress(&framed, 100).is_err());
        // A raw block claiming a huge length is refused before allocating.
        assert!(
            Compression::Snappy
                .decompress(&[0xff, 0xff, 0xff, 0x7f, 0], 1 << 30)
                .is_err()
        );
    }
}
