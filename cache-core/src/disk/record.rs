//! What the disk tier stores per key: a small header, then the entry's envelope exactly as Redis
//! holds it (`crate::codec`).
//!
//! ```text
//! bytes 0..4    magic "TCL3"
//! bytes 4..12   when it was written, unix ms, little endian (checked against invalidations
//!               recorded while no Redis can be asked: `super::rules`)
//! bytes 12..20  xxh3-64 of the envelope: its checksum, and its identity in this process
//! rest          the envelope
//! ```
//! foyer checksums what it writes too; this one also catches a record cut or changed between a
//! read and the envelope's decode, and it is what [`super::Disk`] remembers per key.

/// The first bytes of every record.
const MAGIC: [u8; 4] = *b"TCL3";
/// Magic, write time, checksum.
pub(crate) const HEADER: usize = 20;

/// A record's envelope and what the header says of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parsed<'a> {
    pub written_ms: u64,
    pub id: u64,
    pub envelope: &'a [u8],
}

/// The identity of an envelope: the checksum its record carries.
pub(crate) fn id_of(envelope: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(envelope)
}

/// A record of `envelope` written now, and its id.
pub(crate) fn encode(envelope: &[u8], written_ms: u64) -> (Vec<u8>, u64) {
    let id = id_of(envelope);
    let mut out = Vec::with_capacity(HEADER + envelope.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&written_ms.to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(envelope);
    (out, id)
}

/// A record's parts; `None` when it is not one or its checksum fails.
pub(crate) fn parse(bytes: &[u8]) -> Option<Parsed<'_>> {
    let rest = bytes.strip_prefix(&MAGIC)?;
    let written_ms = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?);
    let id = u64::from_le_bytes(rest.get(8..16)?.try_into().ok()?);
    let envelope = rest.get(16..)?;
    (id_of(envelope) == id).then_some(Parsed {
        written_ms,
        id,
        envelope,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn records_round_trip(envelope in proptest::collection::vec(any::<u8>(), 0..2048), at in any::<u64>()) {
            let (rec, id) = encode(&envelope, at);
            let p = parse(&rec).unwrap();
            prop_assert_eq!(p, Parsed { written_ms: at, id, envelope: &envelope });
        }

        #[test]
        fn any_change_is_caught(envelope in proptest::collection::vec(any::<u8>(), 1..512), at in any::<usize>(), x in 1u8..) {
            let (mut rec, _) = encode(&envelope, 1);
            let i = HEADER + at % envelope.len();
            rec[i] ^= x;
            prop_assert!(parse(&rec).is_none());
            let (rec, _) = encode(&envelope, 1);
            prop_assert!(parse(&rec[..rec.len() - 1]).is_none());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse(&bytes);
        }
    }
}
