//! A value's digest, for telling a reloaded value from the one it replaces.
//!
//! Written by a `serde::Serializer` of its own rather than over the codec's bincode bytes: a
//! `HashMap` serializes its entries in its own random order, so two equal maps usually gave
//! different bytes, every reload of a map-valued function looked like a change, and its learned
//! TTL fell to the lower bound. Here a map's entries are digested one by one and combined by
//! addition, which does not depend on their order. A `HashSet` serializes as a sequence, which
//! cannot be told from a `Vec` (whose order matters): use a `BTreeSet` in `ttl = "auto"` values.

use serde::ser::{self, Serialize};
use xxhash_rust::xxh3::Xxh3;

/// The digest of `value`'s serialized form; 0 when it cannot be serialized (it is then never
/// stored either).
pub(crate) fn digest<T: Serialize + ?Sized>(value: &T) -> u64 {
    let mut d = Digest(Xxh3::new());
    match value.serialize(&mut d) {
        Ok(()) => d.0.digest(),
        Err(_) => 0,
    }
}

struct Digest(Xxh3);

#[derive(Debug)]
struct Unserializable(String);

impl std::fmt::Display for Unserializable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Unserializable {}
impl ser::Error for Unserializable {
    fn custom<M: std::fmt::Display>(msg: M) -> Self {
        Unserializable(msg.to_string())
    }
}

type R = Result<(), Unserializable>;

impl Digest {
    /// A tag before each item, so that `("ab", "c")` and `("a", "bc")` differ.
    fn tag(&mut self, t: u8) {
        self.0.update(&[t]);
    }
    fn bytes(&mut self, t: u8, b: &[u8]) -> R {
        self.tag(t);
        self.0.update(&(b.len() as u64).to_le_bytes());
        self.0.update(b);
        Ok(())
    }
}

macro_rules! numbers {
    ($($f:ident: $t:ty = $tag:expr),* $(,)?) => {
        $(fn $f(self, v: $t) -> R {
            self.tag($tag);
            self.0.update(&v.to_le_bytes());
            Ok(())
        })*
    };
}

impl<'a> ser::Serializer for &'a mut Digest {
    type Ok = ();
    type Error = Unserializable;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = MapDigest<'a>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    numbers! {
        serialize_i8: i8 = 1, serialize_i16: i16 = 2, serialize_i32: i32 = 3, serialize_i64: i64 = 4,
        serialize_i128: i128 = 5, serialize_u8: u8 = 6, serialize_u16: u16 = 7, serialize_u32: u32 = 8,
        serialize_u64: u64 = 9, serialize_u128: u128 = 10, serialize_f32: f32 = 11, serialize_f64: f64 = 12,
    }

    fn serialize_bool(self, v: bool) -> R {
        self.tag(13 + u8::from(v));
        Ok(())
    }
    fn serialize_char(self, v: char) -> R {
        self.serialize_u32(u32::from(v))
    }
    fn serialize_str(self, v: &str) -> R {
        self.bytes(15, v.as_bytes())
    }
    fn serialize_bytes(self, v: &[u8]) -> R {
        self.bytes(16, v)
    }
    fn serialize_none(self) -> R {
        self.tag(17);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> R {
        self.tag(18);
        v.serialize(self)
    }
    fn serialize_unit(self) -> R {
        self.tag(19);
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> R {
        self.serialize_unit()
    }
    fn serialize_unit_variant(self, _: &'static str, i: u32, _: &'static str) -> R {
        self.tag(20);
        self.0.update(&i.to_le_bytes());
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> R {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        i: u32,
        _: &'static str,
        v: &T,
    ) -> R {
        self.serialize_unit_variant("", i, "")?;
        v.serialize(self)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self, Unserializable> {
        self.tag(21);
        self.0.update(&(len.unwrap_or(usize::MAX) as u64).to_le_bytes());
        Ok(self)
    }
    fn serialize_tuple(self, len: usize) -> Result<Self, Unserializable> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Self, Unserializable> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        i: u32,
        _: &'static str,
        len: usize,
    ) -> Result<Self, Unserializable> {
        self.serialize_unit_variant("", i, "")?;
        self.serialize_seq(Some(len))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<MapDigest<'a>, Unserializable> {
        Ok(MapDigest {
            parent: self,
            sum: 0,
            len: 0,
            key: None,
        })
    }
    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Self, Unserializable> {
        self.serialize_seq(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        i: u32,
        _: &'static str,
        len: usize,
    ) -> Result<Self, Unserializable> {
        self.serialize_tuple_variant("", i, "", len)
    }
}

macro_rules! sequential {
    ($($tr:ident :: $f:ident),*) => {
        $(impl ser::$tr for &mut Digest {
            type Ok = ();
            type Error = Unserializable;
            fn $f<T: Serialize + ?Sized>(&mut self, v: &T) -> R {
                v.serialize(&mut **self)
            }
            fn end(self) -> R {
                Ok(())
            }
        })*
    };
}
sequential!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

/// Fields in declaration order; their names are the type's, not the value's.
macro_rules! named_fields {
    ($($tr:ident),*) => {
        $(impl ser::$tr for &mut Digest {
            type Ok = ();
            type Error = Unserializable;
            fn serialize_field<T: Serialize + ?Sized>(&mut self, _: &'static str, v: &T) -> R {
                v.serialize(&mut **self)
            }
            fn end(self) -> R {
                Ok(())
            }
        })*
    };
}
named_fields!(SerializeStruct, SerializeStructVariant);

/// A map: each entry digested on its own, the digests added up (order-free).
struct MapDigest<'a> {
    parent: &'a mut Digest,
    sum: u64,
    len: u64,
    /// The digest of the key whose value comes next.
    key: Option<u64>,
}

impl ser::SerializeMap for MapDigest<'_> {
    type Ok = ();
    type Error = Unserializable;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> R {
        let mut d = Digest(Xxh3::new());
        k.serialize(&mut d)?;
        self.key = Some(d.0.digest());
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> R {
        let mut d = Digest(Xxh3::new());
        d.0.update(&self.key.take().unwrap_or(0).to_le_bytes());
        v.serialize(&mut d)?;
        self.sum = self.sum.wrapping_add(d.0.digest());
        self.len += 1;
        Ok(())
    }
    fn end(self) -> R {
        self.parent.tag(22);
        self.parent.0.update(&self.len.to_le_bytes());
        self.parent.0.update(&self.sum.to_le_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::*;

    #[test]
    fn equal_maps_have_one_digest_whatever_their_order() {
        let a: HashMap<String, Vec<u32>> = (0..200).map(|i| (format!("k{i}"), vec![i, i * 2])).collect();
        // A map built in another order, with another hasher state.
        let b: HashMap<String, Vec<u32>> = (0..200)
            .rev()
            .map(|i| (format!("k{i}"), vec![i, i * 2]))
            .collect();
        assert_eq!(digest(&a), digest(&b));
        let sorted: BTreeMap<_, _> = a.clone().into_iter().collect();
        assert_eq!(digest(&a), digest(&sorted), "a map is a map");
        let mut c = a.clone();
        c.insert("k7".into(), vec![7, 15]);
        assert_ne!(digest(&a), digest(&c));
        // Swapping values between keys is a change.
        let mut d = a.clone();
        let (x, y) = (d["k1"].clone(), d["k2"].clone());
        d.insert("k1".into(), y);
        d.insert("k2".into(), x);
        assert_ne!(digest(&a), digest(&d));
    }

    #[test]
    fn nearby_values_differ() {
        assert_ne!(digest(&("ab", "c")), digest(&("a", "bc")));
        assert_ne!(digest(&vec![1u32, 2]), digest(&vec![2u32, 1]));
        assert_ne!(digest(&Some(0u8)), digest(&None::<u8>));
        assert_ne!(digest(&1u32), digest(&1u64));
        assert_eq!(digest(&"same"), digest(&"same".to_string()));
    }
}
