//! What the disk tier stores per key: a small header, then the entry's envelope
//! (`crate::codec`), kept uncompressed when Redis's copy is compressed (a local read of more
//! bytes costs less than inflating them on every hit: `docs/design-notes.md`).
//!
//! ```text
//! bytes 0..4    magic "TCL3"
//! byte 4        flags: bit 0 = the body is the envelope inflated (`codec::inflated`)
//! bytes 5..13   when it was written, unix ms, little endian (checked against invalidations
//!               recorded while no Redis can be asked: `super::rules`)
//! bytes 13..21  xxh3-64 of the envelope as Redis holds it: its identity in this process
//! bytes 21..29  xxh3-64 of the body, seeded by the header before it: the record's checksum
//! rest          the body
//! ```
//! foyer checksums what it writes too; this one also catches a record cut or changed between
//! foyer's check and the decode.

use crate::codec::{self, ID_HEADER};

/// The first bytes of every record.
const MAGIC: [u8; 4] = *b"TCL3";
const FLAG_INFLATED: u8 = 1;
/// Magic, flags, write time, identity, checksum.
pub(crate) const HEADER: usize = 29;

/// A record's body and what the header says of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parsed<'a> {
    pub written_ms: u64,
    /// The identity of the envelope Redis holds ([`id_of`]).
    pub id: u64,
    inflated: bool,
    /// An envelope the codec decodes.
    pub body: &'a [u8],
}

impl Parsed<'_> {
    /// The first [`ID_HEADER`] bytes of the envelope as Redis holds it (what the check reads
    /// from Redis to compare).
    pub(crate) fn redis_head(&self) -> Option<[u8; ID_HEADER]> {
        if self.inflated {
            codec::deflated_head(self.body)
        } else {
            self.body.get(..ID_HEADER)?.try_into().ok()
        }
    }
}

/// The identity of an envelope as Redis holds it. A sealed envelope differs on every write (its
/// nonce) even when it holds the same value: its head (header, expiry and keyed content id,
/// all authenticated) is what names it, so a value L1 hands back is known as written.
pub(crate) fn id_of(envelope: &[u8]) -> u64 {
    match envelope.get(..ID_HEADER) {
        Some(head) if crate::security::is_sealed(envelope) => xxhash_rust::xxh3::xxh3_64(head),
        _ => xxhash_rust::xxh3::xxh3_64(envelope),
    }
}

/// A record of `envelope` (identity `id`) written at `written_ms`; a compressed envelope is
/// stored inflated (up to `max` bytes uncompressed).
pub(crate) fn encode(envelope: &[u8], id: u64, written_ms: u64, max: usize) -> Vec<u8> {
    let plain = codec::inflated(envelope, max);
    let body = plain.as_deref().unwrap_or(envelope);
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(&MAGIC);
    let flags = if plain.is_some() { FLAG_INFLATED } else { 0 };
    out.push(flags);
    out.extend_from_slice(&written_ms.to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&checksum(flags, written_ms, id, body).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// The body's hash seeded by every header field, so that a change anywhere shows.
fn checksum(flags: u8, written_ms: u64, id: u64, body: &[u8]) -> u64 {
    let seed = written_ms ^ id.rotate_left(32) ^ u64::from(flags).rotate_left(7);
    xxhash_rust::xxh3::xxh3_64_with_seed(body, seed)
}

/// A record's parts; `None` when it is not one or its checksum fails.
pub(crate) fn parse(bytes: &[u8]) -> Option<Parsed<'_>> {
    let rest = bytes.strip_prefix(&MAGIC)?;
    let flags = *rest.first()?;
    let word =
        |at: usize| -> Option<u64> { Some(u64::from_le_bytes(rest.get(at..at + 8)?.try_into().ok()?)) };
    let (written_ms, id, sum) = (word(1)?, word(9)?, word(17)?);
    let body = rest.get(25..)?;
    (flags & !FLAG_INFLATED == 0 && checksum(flags, written_ms, id, body) == sum).then_some(Parsed {
        written_ms,
        id,
        inflated: flags & FLAG_INFLATED != 0,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{with_content_id, Codec};
    use proptest::prelude::*;

    #[test]
    fn a_compressed_envelope_is_kept_inflated_and_gives_redis_head_back() {
        let c = Codec::new(16, 1, 1 << 20);
        let z = with_content_id(c.encode(&"xyz".repeat(500), 5).unwrap().bytes);
        let rec = encode(&z, id_of(&z), 9, 1 << 20);
        let p = parse(&rec).unwrap();
        assert!(p.inflated && p.body.len() > z.len());
        assert_eq!(p.redis_head().unwrap()[..], z[..ID_HEADER]);
        assert_eq!(c.decode::<String>(p.body).unwrap().value, "xyz".repeat(500));
        assert_eq!((p.id, p.written_ms), (id_of(&z), 9));
    }

    proptest! {
        #[test]
        fn records_round_trip(envelope in proptest::collection::vec(any::<u8>(), 0..2048), at in any::<u64>()) {
            let rec = encode(&envelope, id_of(&envelope), at, 1 << 20);
            let p = parse(&rec).unwrap();
            prop_assert_eq!((p.written_ms, p.id, p.body), (at, id_of(&envelope), &envelope[..]));
        }

        #[test]
        fn any_change_is_caught(envelope in proptest::collection::vec(any::<u8>(), 1..512), at in any::<usize>(), x in 1u8..) {
            let mut rec = encode(&envelope, 1, 1, 1 << 20);
            let i = MAGIC.len() + at % (rec.len() - MAGIC.len());
            rec[i] ^= x;
            prop_assert!(parse(&rec).is_none());
            let rec = encode(&envelope, 1, 1, 1 << 20);
            prop_assert!(parse(&rec[..rec.len() - 1]).is_none());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Some(p) = parse(&bytes) {
                let _ = p.redis_head();
            }
        }
    }
}
