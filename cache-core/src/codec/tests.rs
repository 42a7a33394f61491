use super::*;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
    tags: Vec<String>,
}

fn codec() -> Codec {
    Codec::new(1024, 1, 1 << 20)
}

/// `raw_len` is one measure on both sides (it was the payload alone when encoding and the
/// payload plus header when decoding, so L1 weighed a value differently by its path).
#[test]
fn raw_len_is_the_same_measure_encoded_and_decoded() {
    for v in ["short".to_string(), "x".repeat(10_000)] {
        let enc = codec().encode(&v, 0).unwrap();
        let dec = codec().decode::<String>(&enc.bytes).unwrap();
        assert_eq!(enc.raw_len, dec.raw_len, "compressed: {}", enc.compressed);
        assert_eq!(enc.raw_len, codec().encoded_len(&v));
    }
}

#[test]
fn small_values_are_plain_and_round_trip() {
    let u = User {
        id: 1,
        name: "ann".into(),
        tags: vec!["a".into()],
    };
    let enc = codec().encode(&u, 1234).unwrap();
    assert!(!enc.compressed);
    assert_eq!(enc.bytes[..4], [0xFF, b'T', b'C', 0b0100_0001]);
    let dec = codec().decode::<User>(&enc.bytes).unwrap();
    assert_eq!(dec.value, u);
    assert_eq!(dec.expires_at_ms, 1234);
}

#[test]
fn threshold_is_exclusive() {
    let c = Codec::new(100, 1, 1 << 20);
    // bincode writes a 1-byte length prefix for short strings.
    assert!(!c.encode(&"a".repeat(99), 0).unwrap().compressed);
    assert!(c.encode(&"a".repeat(200), 0).unwrap().compressed);
}

#[test]
fn incompressible_payloads_stay_plain() {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let enc = codec().encode(&noise, 0).unwrap();
    assert!(!enc.compressed);
    assert_eq!(codec().decode::<Vec<u8>>(&enc.bytes).unwrap().value, noise);
}

#[test]
fn corrupt_input_is_an_error_not_a_panic() {
    let good = codec().encode(&"x".repeat(5000), 0).unwrap().bytes;
    assert!(good.len() > ZLIB_HEADER);
    for cut in 0..good.len() {
        assert!(codec().decode::<String>(&good[..cut]).is_err(), "cut at {cut}");
    }
    assert_eq!(
        codec().decode::<String>(&[]).unwrap_err(),
        CodecError::Truncated(0)
    );
    assert!(matches!(
        codec().decode::<String>(&[0xFF, b'T', b'C', 0xE1, 0, 0, 0, 0, 0, 0, 0, 0]),
        Err(CodecError::UnsupportedVersion(7))
    ));
    assert!(matches!(
        codec().decode::<String>(&[0xFF, b'T', b'C', 0x47, 0, 0, 0, 0, 0, 0, 0, 0]),
        Err(CodecError::UnsupportedFormat(7))
    ));
    assert_eq!(
        codec()
            .decode::<String>(b"plain text from another writer")
            .unwrap_err(),
        CodecError::Foreign
    );
}

#[test]
fn tags_round_trip_plain_and_compressed_and_a_cut_section_is_an_error() {
    let tags = [("user:42", 1u64), ("é\n:{x}*", u64::MAX), ("", 0)];
    for v in ["short".to_string(), "x".repeat(10_000)] {
        let enc = codec().encode_tagged(&v, 77, &tags).unwrap();
        assert_eq!(enc.bytes[3] & FLAG_TAGS, FLAG_TAGS);
        let dec = codec().decode::<String>(&enc.bytes).unwrap();
        assert_eq!((dec.value.as_str(), dec.expires_at_ms), (v.as_str(), 77));
        let got: Vec<(&str, u64)> = dec.tags.iter().map(|(n, t)| (&**n, *t)).collect();
        assert_eq!(got, tags);
        assert_eq!(enc.raw_len, dec.raw_len, "compressed: {}", enc.compressed);
        for cut in 0..enc.bytes.len() {
            assert!(
                codec().decode::<String>(&enc.bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }
    assert!(codec()
        .decode::<String>(&codec().encode(&"a", 0).unwrap().bytes)
        .unwrap()
        .tags
        .is_empty());
    // A count claiming more tags than there are bytes for.
    let mut lying = codec().encode_tagged(&1u8, 0, &[("a", 1)]).unwrap().bytes;
    lying[PLAIN_HEADER..PLAIN_HEADER + 2].copy_from_slice(&u16::MAX.to_le_bytes());
    assert!(codec().decode::<u8>(&lying).is_err());
    let mut not_utf8 = codec().encode_tagged(&1u8, 0, &[("ab", 1)]).unwrap().bytes;
    not_utf8[PLAIN_HEADER + 4] = 0xFF;
    assert!(codec().decode::<u8>(&not_utf8).is_err());
}

#[test]
fn entries_of_the_old_key_format_are_never_read() {
    // Envelope 1 (header in byte 0, no magic) was written with key format 1, where
    // `f("a:b", "c")` and `f("a", "b:c")` shared a key: such an entry must read as a miss.
    let mut old = vec![0b0010_0001];
    old.extend_from_slice(&0u64.to_le_bytes());
    bincode::serde::encode_into_std_write("value", &mut old, bincode::config::standard()).unwrap();
    assert_eq!(
        codec().decode::<String>(&old).unwrap_err(),
        CodecError::UnsupportedVersion(1)
    );
}

#[test]
fn huge_length_claims_are_refused() {
    // A plain entry whose bincode length prefix claims ~2^60 bytes.
    let mut bytes = MAGIC.to_vec();
    bytes.push(header(false, false));
    bytes.extend_from_slice(&0u64.to_le_bytes());
    bytes.push(253);
    bytes.extend_from_slice(&(1u64 << 60).to_le_bytes());
    assert!(matches!(
        codec().decode::<Vec<u8>>(&bytes),
        Err(CodecError::Decode(_))
    ));
}

#[test]
fn zip_bomb_is_capped() {
    let small_cap = Codec::new(16, 9, 64 * 1024);
    let big = vec![0u8; 1 << 20];
    // Encode with a generous codec, then decode with a small cap: refused before inflating.
    let enc = Codec::new(16, 9, 4 << 20).encode(&big, 0).unwrap();
    assert!(enc.compressed && enc.bytes.len() < 8 * 1024);
    assert!(matches!(
        small_cap.decode::<Vec<u8>>(&enc.bytes),
        Err(CodecError::TooLarge { .. })
    ));
    // A header that understates the size is caught after at most claim + 1 bytes.
    let mut lying = enc.bytes.clone();
    lying[PLAIN_HEADER..ZLIB_HEADER].copy_from_slice(&1000u32.to_le_bytes());
    assert!(matches!(
        small_cap.decode::<Vec<u8>>(&lying),
        Err(CodecError::Decompress(_))
    ));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    type Value = (String, Vec<u8>, u64, Option<Vec<String>>, bool);

    proptest! {
        #[test]
        fn any_value_round_trips(v in any::<Value>(), threshold in 0usize..2048, level in 0u32..=9, exp in any::<u64>()) {
            let c = Codec::new(threshold, level, 1 << 20);
            let enc = c.encode(&v, exp).unwrap();
            let dec = c.decode::<Value>(&enc.bytes).unwrap();
            prop_assert_eq!(dec.value, v);
            prop_assert_eq!(dec.expires_at_ms, exp);
        }

        #[test]
        fn content_ids_round_trip_and_tell_values_apart(v in any::<Value>(), w in any::<Value>(), threshold in 0usize..2048, tagged in any::<bool>()) {
            let c = Codec::new(threshold, 1, 1 << 20);
            let tags: &[(&str, u64)] = if tagged { &[("t:1", 7)] } else { &[] };
            let a = with_content_id(c.encode_tagged(&v, 9, tags).unwrap().bytes);
            let dec = c.decode::<Value>(&a).unwrap();
            prop_assert_eq!(&dec.value, &v);
            prop_assert_eq!(dec.expires_at_ms, 9);
            prop_assert_eq!(dec.tags.len(), usize::from(tagged));
            let id = content_id(&a).unwrap();
            prop_assert_eq!(id, xxhash_rust::xxh3::xxh3_64(&a[ID_HEADER..]));
            // Already format 2: unchanged.
            prop_assert_eq!(with_content_id(a.clone()), a.clone());
            let b = with_content_id(c.encode_tagged(&w, 9, tags).unwrap().bytes);
            prop_assert_eq!(a[..ID_HEADER] == b[..ID_HEADER], v == w);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let _ = codec().decode::<Value>(&bytes);
            let _ = codec().decode::<String>(&bytes);
            let _ = codec().decode::<Vec<u64>>(&bytes);
        }

        #[test]
        fn mutated_encodings_never_panic(v in any::<Value>(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
            let c = Codec::new(16, 1, 1 << 20);
            let mut bytes = c.encode(&v, 0).unwrap().bytes;
            for (at, x) in flips {
                let i = at % bytes.len();
                bytes[i] ^= x;
            }
            let _ = c.decode::<Value>(&bytes);
            if let Some(plain) = inflated(&bytes, 1 << 20) {
                let _ = c.decode::<Value>(&plain);
            }
            let mut bytes = with_content_id(bytes);
            let _ = content_id(&bytes);
            let _ = c.decode::<Value>(&bytes);
            bytes.truncate(ID_HEADER - 1);
            prop_assert!(content_id(&bytes).is_none());
        }
    }
}

#[test]
fn an_inflated_envelope_decodes_the_same_and_keeps_its_head() {
    let c = Codec::new(16, 1, 1 << 20);
    let v = "abc".repeat(1000);
    for tags in [&[][..], &[("t:1", 3u64)][..]] {
        let z = with_content_id(c.encode_tagged(&v, 77, tags).unwrap().bytes);
        let plain = inflated(&z, 1 << 20).unwrap();
        assert!(plain.len() > z.len());
        let (a, b) = (
            c.decode::<String>(&z).unwrap(),
            c.decode::<String>(&plain).unwrap(),
        );
        assert_eq!(
            (a.value, a.expires_at_ms, a.tags, a.raw_len),
            (b.value, b.expires_at_ms, b.tags, b.raw_len)
        );
        assert_eq!(deflated_head(&plain).unwrap()[..], z[..ID_HEADER]);
        assert_eq!(inflated(&plain, 1 << 20), None, "already plain");
        assert_eq!(inflated(&z, 100), None, "over the cap");
    }
}

#[test]
fn a_plain_envelope_has_no_content_id() {
    let c = codec();
    let plain = c.encode(&5u8, 0).unwrap().bytes;
    assert_eq!(content_id(&plain), None);
    assert_eq!(with_content_id(b"foreign".to_vec()), b"foreign".to_vec());
}

#[test]
fn too_large_values_are_not_encoded() {
    let c = Codec::new(1 << 30, 1, 100);
    assert!(matches!(
        c.encode(&vec![1u8; 200], 0),
        Err(CodecError::TooLarge { .. })
    ));
}
