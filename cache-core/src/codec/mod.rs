//! The bytes stored in Redis: a magic, a versioned header, the entry's expiry, then bincode (zlib
//! above a threshold).
//!
//! ```text
//! bytes 0..3   magic: 0xFF 'T' 'C' (0xFF never starts UTF-8 text, so foreign strings rarely do)
//! byte 3       header: bits 7..5 envelope version (2), bit 4 zlib, bit 3 tags, bits 2..0 format
//!              (1 = bincode 2)
//! bytes 4..12  absolute expiry, unix ms, little endian (0 = none); lets a reader bound its L1 TTL
//! 12..20       only in format 2: content id, xxh3-64 of every byte after it (the disk tier
//!              compares it with Redis's copy by reading these 20 bytes: `crate::disk`)
//! then         only when tagged: u16 count, then per tag u16 length, its text, its u64 token
//!              (the tag's state when the value was loaded: `crate::tags`)
//! then 4 bytes only when zlib: uncompressed length, u32 LE; caps decompression before it starts
//! rest         payload
//! ```
//! The magic is how the cache recognises its own entries: `clear` and pattern invalidation check
//! it on the server and delete nothing else ([`MAGIC`]). Envelope version 2 also means key
//! format 2 ([`crate::key::KEY_FORMAT`]); version 1 (no magic, header in byte 0) was written with
//! the old, ambiguous keys and reads as a miss. The format nibble lets the serializer change
//! later without misreading old entries: an unknown version or format is a [`CodecError`], read
//! as a miss, and overwritten by the next write.

use std::io::{Read, Write};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The first bytes of every value the cache writes.
pub const MAGIC: [u8; 3] = [0xFF, b'T', b'C'];
/// Envelope version written now: 2 = magic + key format 2.
pub const VERSION: u8 = 2;
const _: () = assert!(VERSION == crate::key::KEY_FORMAT);
const FORMAT_BINCODE2: u8 = 1;
/// bincode 2, and a content id after the expiry ([`with_content_id`]).
const FORMAT_BINCODE2_ID: u8 = 2;
const FLAG_ZLIB: u8 = 0b0001_0000;
/// The entry carries tags: a tag section follows the expiry.
const FLAG_TAGS: u8 = 0b0000_1000;
const FORMAT_MASK: u8 = 0b0000_0111;
/// Magic, header byte and expiry: what every stored value carries before its payload.
pub(crate) const PLAIN_HEADER: usize = MAGIC.len() + 1 + 8;
const ZLIB_HEADER: usize = PLAIN_HEADER + 4;
/// The header of a format 2 envelope: what identifies its content ([`content_id`]).
pub(crate) const ID_HEADER: usize = PLAIN_HEADER + 8;
/// The largest tag section an entry may have (the most tags, each as long as allowed).
const MAX_TAG_SECTION: usize = 2 + crate::tags::MAX_TAGS_PER_ENTRY * (2 + crate::tags::MAX_TAG_LEN + 8);
/// bincode refuses any length prefix claiming more than this, so garbage cannot make it allocate
/// without bound.
const DECODE_LIMIT: usize = 256 * 1024 * 1024;

/// Why bytes could not become a value, or a value bytes.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecError {
    /// Shorter than its header says.
    #[error("stored value is truncated ({0} bytes)")]
    Truncated(usize),
    /// Written by an envelope version this build does not know (1: before key format 2).
    #[error("stored value has unknown envelope version {0}")]
    UnsupportedVersion(u8),
    /// Does not start with [`MAGIC`]: not written by this cache (or by a version before 2).
    #[error("stored value was not written by this cache (no envelope magic)")]
    Foreign,
    /// Written with a serialization format this build does not know.
    #[error("stored value has unknown format {0}")]
    UnsupportedFormat(u8),
    /// Larger than the configured maximum (before or after decompression).
    #[error("value of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Size seen or claimed.
        size: usize,
        /// The configured cap.
        max: usize,
    },
    /// zlib stream is corrupt or its size differs from the header.
    #[error("decompression failed: {0}")]
    Decompress(String),
    /// Serialization failed.
    #[error("encode failed: {0}")]
    Encode(String),
    /// The payload does not decode as the requested type.
    #[error("decode failed: {0}")]
    Decode(String),
    /// An encrypted value did not open, or a plaintext one stood where encryption is required
    /// (`crate::security`).
    #[error(transparent)]
    Sealed(#[from] crate::security::SealError),
}

/// Encoder/decoder settings, taken from [`CacheConfig`](crate::CacheConfig).
///
/// ```
/// use cache_core::codec::Codec;
/// let codec = Codec::new(1024, 1, 16 << 20);
/// let big = "x".repeat(10_000);
/// let enc = codec.encode(&big, 0).unwrap();
/// assert!(enc.compressed && enc.bytes.len() < 1_000);
/// let back = codec.decode::<String>(&enc.bytes).unwrap();
/// assert_eq!(back.value, big);
/// ```
#[derive(Debug, Clone)]
pub struct Codec {
    threshold: usize,
    level: u32,
    max_value_size: usize,
}

/// An encoded value.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// The bytes to store.
    pub bytes: Vec<u8>,
    /// Size uncompressed, header included: what the value weighs in L1 (the same measure as
    /// [`Decoded::raw_len`]).
    pub raw_len: usize,
    /// Whether zlib was applied.
    pub compressed: bool,
}

/// A decoded value and the expiry recorded with it.
#[derive(Debug, Clone)]
pub struct Decoded<T> {
    /// The value.
    pub value: T,
    /// Absolute expiry in unix milliseconds; 0 when the entry has none.
    pub expires_at_ms: u64,
    /// Size uncompressed, header included: what the value weighs in L1 (the same measure as
    /// [`Encoded::raw_len`]).
    pub raw_len: usize,
    /// The entry's tags and the token each had when it was loaded (empty when untagged).
    pub tags: Vec<(Box<str>, u64)>,
}

impl Codec {
    /// `threshold`: payloads larger than this many bytes are compressed; `level`: zlib level 0..=9;
    /// `max_value_size`: cap on stored and on decompressed sizes.
    pub fn new(threshold: usize, level: u32, max_value_size: usize) -> Self {
        Codec {
            threshold,
            level: level.min(9),
            max_value_size,
        }
    }

    /// Serializes `value`, compressing when above the threshold and when it actually shrinks.
    pub fn encode<T: Serialize + ?Sized>(
        &self,
        value: &T,
        expires_at_ms: u64,
    ) -> Result<Encoded, CodecError> {
        self.encode_tagged(value, expires_at_ms, &[])
    }

    /// [`encode`](Self::encode) with the entry's tags and the token each had when its value was
    /// loaded (see `Cache::invalidate_tags`).
    ///
    /// ```
    /// use cache_core::codec::Codec;
    /// let codec = Codec::new(1024, 1, 1 << 20);
    /// let enc = codec.encode_tagged(&7u32, 0, &[("user:42", 9)]).unwrap();
    /// let dec = codec.decode::<u32>(&enc.bytes).unwrap();
    /// assert_eq!((dec.value, dec.tags[0].0.as_ref(), dec.tags[0].1), (7, "user:42", 9));
    /// ```
    pub fn encode_tagged<T: Serialize + ?Sized>(
        &self,
        value: &T,
        expires_at_ms: u64,
        tags: &[(&str, u64)],
    ) -> Result<Encoded, CodecError> {
        let mut bytes = Vec::with_capacity(64);
        bytes.extend_from_slice(&MAGIC);
        bytes.push(header(false, !tags.is_empty()));
        bytes.extend_from_slice(&expires_at_ms.to_le_bytes());
        write_tags(&mut bytes, tags)?;
        let head = bytes.len();
        bincode::serde::encode_into_std_write(value, &mut bytes, bincode::config::standard())
            .map_err(|e| CodecError::Encode(e.to_string()))?;
        let raw_len = bytes.len() - head;
        if raw_len > self.max_value_size {
            return Err(CodecError::TooLarge {
                size: raw_len,
                max: self.max_value_size,
            });
        }
        if raw_len > self.threshold {
            if let Some(compressed) = self.compress(&bytes, head, raw_len) {
                return Ok(Encoded {
                    bytes: compressed,
                    raw_len: bytes.len(),
                    compressed: true,
                });
            }
        }
        Ok(Encoded {
            raw_len: bytes.len(),
            bytes,
            compressed: false,
        })
    }

    /// Size the payload of `value` would have, without keeping the bytes (L1-only mode uses it
    /// to weigh entries).
    pub fn encoded_len<T: Serialize + ?Sized>(&self, value: &T) -> usize {
        bincode::serde::encode_into_std_write(value, &mut std::io::sink(), bincode::config::standard())
            .unwrap_or(0)
            + PLAIN_HEADER
    }

    /// `plain` is a whole plain encoding whose payload starts at `head`.
    fn compress(&self, plain: &[u8], head: usize, raw_len: usize) -> Option<Vec<u8>> {
        let len = u32::try_from(raw_len).ok()?;
        let payload = &plain[head..];
        let mut out = Vec::with_capacity(head + 4 + payload.len() / 3);
        out.extend_from_slice(&plain[..head]);
        out[MAGIC.len()] |= FLAG_ZLIB;
        out.extend_from_slice(&len.to_le_bytes());
        let mut enc = flate2::write::ZlibEncoder::new(out, flate2::Compression::new(self.level));
        enc.write_all(payload).ok()?;
        let out = enc.finish().ok()?;
        // Incompressible data is stored as it is: smaller and cheaper to read.
        (out.len() < plain.len()).then_some(out)
    }

    /// Decodes bytes written by [`encode`](Self::encode). Never panics and never allocates more
    /// than the configured cap, whatever the bytes are.
    pub fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<Decoded<T>, CodecError> {
        if bytes.len() > self.max_value_size.saturating_add(ZLIB_HEADER + MAX_TAG_SECTION) {
            return Err(CodecError::TooLarge {
                size: bytes.len(),
                max: self.max_value_size,
            });
        }
        let Some(after_magic) = bytes.strip_prefix(&MAGIC) else {
            return Err(match bytes.first() {
                None => CodecError::Truncated(0),
                // Byte 0 was the header before the magic existed.
                Some(&h) if h >> 5 == 1 => CodecError::UnsupportedVersion(1),
                Some(_) if MAGIC.starts_with(bytes) => CodecError::Truncated(bytes.len()),
                Some(_) => CodecError::Foreign,
            });
        };
        let (&h, rest) = after_magic
            .split_first()
            .ok_or(CodecError::Truncated(bytes.len()))?;
        if h >> 5 != VERSION {
            return Err(CodecError::UnsupportedVersion(h >> 5));
        }
        let id_len = match h & FORMAT_MASK {
            FORMAT_BINCODE2 => 0,
            FORMAT_BINCODE2_ID => 8,
            other => return Err(CodecError::UnsupportedFormat(other)),
        };
        let expiry: [u8; 8] = rest
            .get(..8)
            .and_then(|s| s.try_into().ok())
            .ok_or(CodecError::Truncated(bytes.len()))?;
        let expires_at_ms = u64::from_le_bytes(expiry);
        let mut rest = rest.get(8 + id_len..).ok_or(CodecError::Truncated(bytes.len()))?;
        let tags_start = rest.len() + id_len;
        let tags = if h & FLAG_TAGS != 0 {
            read_tags(&mut rest).ok_or(CodecError::Truncated(bytes.len()))?
        } else {
            Vec::new()
        };
        let head = PLAIN_HEADER + (tags_start - rest.len());
        let (value, raw_len) = if h & FLAG_ZLIB != 0 {
            let len: [u8; 4] = rest
                .get(..4)
                .and_then(|s| s.try_into().ok())
                .ok_or(CodecError::Truncated(bytes.len()))?;
            let raw_len = u32::from_le_bytes(len) as usize;
            if raw_len > self.max_value_size {
                return Err(CodecError::TooLarge {
                    size: raw_len,
                    max: self.max_value_size,
                });
            }
            let mut raw = Vec::with_capacity(raw_len);
            // One byte past the claim tells a stream that lies about its size.
            flate2::read::ZlibDecoder::new(&rest[4..])
                .take(raw_len as u64 + 1)
                .read_to_end(&mut raw)
                .map_err(|e| CodecError::Decompress(e.to_string()))?;
            if raw.len() != raw_len {
                return Err(CodecError::Decompress(format!(
                    "header says {raw_len} bytes, stream has {}{}",
                    raw.len().min(raw_len),
                    if raw.len() > raw_len { "+" } else { "" }
                )));
            }
            (decode_payload(&raw)?, raw_len)
        } else {
            (decode_payload(rest)?, rest.len())
        };
        Ok(Decoded {
            value,
            expires_at_ms,
            raw_len: raw_len + head,
            tags,
        })
    }
}

/// The envelope `bytes` (format 1, as [`Codec::encode`] writes it) in format 2: the same with a
/// content id after the expiry, the xxh3-64 of every byte after the id. Two envelopes with the
/// same first [`ID_HEADER`] bytes then hold the same value, which is how the disk tier checks
/// its copy against Redis's without reading Redis's value. Bytes that are not a format 1
/// envelope come back unchanged.
pub(crate) fn with_content_id(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.len() < PLAIN_HEADER
        || !bytes.starts_with(&MAGIC)
        || bytes[MAGIC.len()] & FORMAT_MASK != FORMAT_BINCODE2
    {
        return bytes;
    }
    bytes.splice(PLAIN_HEADER..PLAIN_HEADER, [0u8; 8]);
    bytes[MAGIC.len()] = (bytes[MAGIC.len()] & !FORMAT_MASK) | FORMAT_BINCODE2_ID;
    let id = xxhash_rust::xxh3::xxh3_64(&bytes[ID_HEADER..]);
    bytes[PLAIN_HEADER..ID_HEADER].copy_from_slice(&id.to_le_bytes());
    bytes
}

/// A zlib envelope as the same envelope uncompressed (its header's zlib bit cleared, the length
/// field dropped, the payload inflated; the first [`ID_HEADER`] bytes otherwise unchanged);
/// `None` for an envelope that is not compressed or does not inflate within `max` bytes. The
/// disk tier keeps values this way: a local read is cheaper than inflating on every hit.
#[cfg_attr(not(feature = "disk"), allow(dead_code))]
pub(crate) fn inflated(bytes: &[u8], max: usize) -> Option<Vec<u8>> {
    let h = *bytes.get(MAGIC.len())?;
    if !bytes.starts_with(&MAGIC) || h >> 5 != VERSION || h & FLAG_ZLIB == 0 {
        return None;
    }
    let id_len = match h & FORMAT_MASK {
        FORMAT_BINCODE2 => 0,
        FORMAT_BINCODE2_ID => 8,
        _ => return None,
    };
    let mut rest = bytes.get(PLAIN_HEADER + id_len..)?;
    let before = rest.len();
    if h & FLAG_TAGS != 0 {
        read_tags(&mut rest)?;
    }
    let head = PLAIN_HEADER + id_len + (before - rest.len());
    let raw_len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    if raw_len > max {
        return None;
    }
    let mut out = Vec::with_capacity(head + raw_len);
    out.extend_from_slice(&bytes[..head]);
    out[MAGIC.len()] &= !FLAG_ZLIB;
    flate2::read::ZlibDecoder::new(rest.get(4..)?)
        .take(raw_len as u64 + 1)
        .read_to_end(&mut out)
        .ok()?;
    (out.len() == head + raw_len).then_some(out)
}

/// The first [`ID_HEADER`] bytes an envelope had before [`inflated`]: its zlib bit set again.
#[cfg_attr(not(feature = "disk"), allow(dead_code))]
pub(crate) fn deflated_head(inflated: &[u8]) -> Option<[u8; ID_HEADER]> {
    let mut head: [u8; ID_HEADER] = inflated.get(..ID_HEADER)?.try_into().ok()?;
    head[MAGIC.len()] |= FLAG_ZLIB;
    Some(head)
}

/// The content id of a format 2 envelope ([`with_content_id`]), sealed or not; `None` for any
/// other bytes.
pub(crate) fn content_id(bytes: &[u8]) -> Option<u64> {
    let h = *bytes.get(MAGIC.len())?;
    let version = h >> 5;
    if !bytes.starts_with(&MAGIC)
        || (version != VERSION && version != crate::security::SEALED_VERSION)
        || h & FORMAT_MASK != FORMAT_BINCODE2_ID
    {
        return None;
    }
    Some(u64::from_le_bytes(
        bytes.get(PLAIN_HEADER..ID_HEADER)?.try_into().ok()?,
    ))
}

/// A plain envelope taken apart for sealing: its header byte, its expiry, and the body after
/// the header (and after the content id of format 2), which is what gets encrypted.
pub(crate) struct PlainParts<'a> {
    pub header: u8,
    pub expires_at_ms: u64,
    pub body: &'a [u8],
}

impl<'a> PlainParts<'a> {
    /// `None` for bytes that are not a plain envelope of this version.
    pub(crate) fn of(bytes: &'a [u8]) -> Option<Self> {
        let header = *bytes.get(MAGIC.len())?;
        if !bytes.starts_with(&MAGIC) || header >> 5 != VERSION {
            return None;
        }
        let body_at = match header & FORMAT_MASK {
            FORMAT_BINCODE2 => PLAIN_HEADER,
            FORMAT_BINCODE2_ID => ID_HEADER,
            _ => return None,
        };
        Some(PlainParts {
            header,
            expires_at_ms: u64::from_le_bytes(bytes.get(MAGIC.len() + 1..PLAIN_HEADER)?.try_into().ok()?),
            body: bytes.get(body_at..)?,
        })
    }
}

/// The header byte of the sealed form of an envelope whose header is `plain`: version 3, the
/// same zlib and tags bits, format 2 (the sealed form always carries a content id).
pub(crate) fn sealed_header(plain: u8) -> u8 {
    (crate::security::SEALED_VERSION << 5) | (plain & (FLAG_ZLIB | FLAG_TAGS)) | FORMAT_BINCODE2_ID
}

/// The header byte of the plain envelope a sealed one opens to (format 1: no content id).
pub(crate) fn unsealed_header(sealed: u8) -> u8 {
    (VERSION << 5) | (sealed & (FLAG_ZLIB | FLAG_TAGS)) | FORMAT_BINCODE2
}

/// The tag section: `u16` count, then per tag a `u16` length, its UTF-8 bytes and its token
/// (`u64`), all little endian.
fn write_tags(out: &mut Vec<u8>, tags: &[(&str, u64)]) -> Result<(), CodecError> {
    if tags.is_empty() {
        return Ok(());
    }
    let too_many = || CodecError::Encode("too many or too long tags".into());
    out.extend_from_slice(&u16::try_from(tags.len()).map_err(|_| too_many())?.to_le_bytes());
    for (name, token) in tags {
        out.extend_from_slice(&u16::try_from(name.len()).map_err(|_| too_many())?.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&token.to_le_bytes());
    }
    Ok(())
}

/// Reads the tag section off the front of `rest`; `None` when it is cut short or not UTF-8.
fn read_tags(rest: &mut &[u8]) -> Option<Vec<(Box<str>, u64)>> {
    fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (rest.get(..n)?, rest.get(n..)?);
        *rest = tail;
        Some(head)
    }
    let count = u16::from_le_bytes(take(rest, 2)?.try_into().ok()?);
    // No writer puts more: a larger count is corrupt (and would make a read fetch that many).
    if usize::from(count) > crate::tags::MAX_TAGS_PER_ENTRY {
        return None;
    }
    // Bounded by the bytes there are, not by the count claimed.
    let mut tags = Vec::with_capacity(usize::from(count).min(rest.len() / 10));
    for _ in 0..count {
        let len = u16::from_le_bytes(take(rest, 2)?.try_into().ok()?);
        let name = std::str::from_utf8(take(rest, usize::from(len))?).ok()?;
        let token = u64::from_le_bytes(take(rest, 8)?.try_into().ok()?);
        tags.push((name.into(), token));
    }
    Some(tags)
}

fn header(compressed: bool, tagged: bool) -> u8 {
    (VERSION << 5)
        | if compressed { FLAG_ZLIB } else { 0 }
        | if tagged { FLAG_TAGS } else { 0 }
        | FORMAT_BINCODE2
}

fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, CodecError> {
    let config = bincode::config::standard().with_limit::<DECODE_LIMIT>();
    let (value, used) =
        bincode::serde::decode_from_slice(payload, config).map_err(|e| CodecError::Decode(e.to_string()))?;
    if used != payload.len() {
        return Err(CodecError::Decode(format!(
            "{} trailing bytes after the value",
            payload.len() - used
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests;
