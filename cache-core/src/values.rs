//! What a cached value is to the engine: [`CacheValue`], and the per-type table ([`ValueOps`])
//! through which the type-erased miss path encodes, decodes and shelves values.
//!
//! Why erased: every cached function used to instantiate the whole miss path (single flight,
//! Redis read, lock, store, guard) for its own value and closure types; 200 functions cost a
//! minute of release build. The miss path is now compiled once, in this crate, over
//! `dyn Any` values; what stays generic per type is this table (serde for the type, which any
//! Redis-backed cache needs) and the L1 hit, which must stay a direct downcast.

use std::any::{Any, TypeId};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::clock::Instant;
use crate::codec::{Codec, CodecError, Decoded, Encoded};
use crate::l1::{self, Entry};

/// What a value needs to be cached: serializable for Redis, cloneable for L1 hits.
///
/// Implemented for every type with those traits.
///
/// ```
/// fn cacheable<T: cache_core::CacheValue>() {}
/// cacheable::<Vec<(u32, String)>>();
/// ```
pub trait CacheValue: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> CacheValue for T {}

/// A value on the erased path.
pub(crate) type AnyValue = Box<dyn Any + Send + Sync>;

type EncodeFn = fn(&Codec, &(dyn Any + Send + Sync), u64, &[(&str, u64)]) -> Result<Encoded, CodecError>;

/// The operations the erased miss path needs on a value of one type.
pub(crate) struct ValueOps {
    /// The value type's id: single flight keys its waiters by it.
    pub(crate) type_id: fn() -> TypeId,
    /// Encodes with the expiry and the tags (name, token).
    pub(crate) encode: EncodeFn,
    pub(crate) encoded_len: fn(&Codec, &(dyn Any + Send + Sync)) -> usize,
    /// A digest of the encoded form, for telling a reloaded value from the one it replaces
    /// ([`crate::analytics`]).
    pub(crate) digest: fn(&(dyn Any + Send + Sync)) -> u64,
    pub(crate) decode: fn(&Codec, &[u8]) -> Result<Decoded<AnyValue>, CodecError>,
    /// Shelves a value as an L1 entry of its own type (L1 hits downcast to it).
    pub(crate) entry: fn(&str, AnyValue, Instant, u64) -> Entry,
}

struct OpsOf<T>(std::marker::PhantomData<T>);

impl<T: CacheValue> OpsOf<T> {
    const OPS: ValueOps = ValueOps {
        type_id: TypeId::of::<T>,
        encode: encode::<T>,
        encoded_len: encoded_len::<T>,
        digest: digest::<T>,
        decode: decode::<T>,
        entry: entry::<T>,
    };
}

/// The table of `T`.
#[inline]
pub(crate) fn ops<T: CacheValue>() -> &'static ValueOps {
    &OpsOf::<T>::OPS
}

/// Boxes a value for the erased path.
#[inline]
pub(crate) fn erase<T: CacheValue>(value: T) -> AnyValue {
    Box::new(value)
}

/// A clone of the `T` an entry holds; `None` when it holds another type.
#[inline]
pub(crate) fn of_entry<T: CacheValue>(entry: &Entry) -> Option<T> {
    entry.value.downcast_ref::<T>().cloned()
}

/// Whether `entry` holds a value of the table's type.
pub(crate) fn holds(entry: &Entry, ops: &ValueOps) -> bool {
    // Through `&dyn Any`, so the call goes through the vtable to the value's own type (the
    // blanket `Any` impl of the trait object itself would answer with the object's type).
    let value: &dyn Any = &entry.value;
    value.type_id() == (ops.type_id)()
}

fn encode<T: CacheValue>(
    codec: &Codec,
    v: &(dyn Any + Send + Sync),
    exp: u64,
    tags: &[(&str, u64)],
) -> Result<Encoded, CodecError> {
    match v.downcast_ref::<T>() {
        Some(v) => codec.encode_tagged(v, exp, tags),
        None => Err(mismatch::<T>()),
    }
}

fn encoded_len<T: CacheValue>(codec: &Codec, v: &(dyn Any + Send + Sync)) -> usize {
    v.downcast_ref::<T>().map_or(0, |v| codec.encoded_len(v))
}

fn digest<T: CacheValue>(v: &(dyn Any + Send + Sync)) -> u64 {
    v.downcast_ref::<T>().map_or(0, crate::analytics::digest)
}

fn decode<T: CacheValue>(codec: &Codec, bytes: &[u8]) -> Result<Decoded<AnyValue>, CodecError> {
    codec.decode::<T>(bytes).map(|d| Decoded {
        value: Box::new(d.value) as AnyValue,
        expires_at_ms: d.expires_at_ms,
        raw_len: d.raw_len,
        tags: d.tags,
    })
}

fn entry<T: CacheValue>(key: &str, v: AnyValue, expires_at: Instant, bytes: u64) -> Entry {
    match v.downcast::<T>() {
        Ok(v) => l1::entry(key, *v, expires_at, bytes),
        // Unreachable by construction (the table and the value come from the same `T`); an
        // entry holding the box still reads as a miss for every `T`, never a wrong value.
        Err(other) => l1::entry(key, other, expires_at, 0),
    }
}

fn mismatch<T>() -> CodecError {
    CodecError::Encode(format!(
        "value is not a {} (erased value and table disagree)",
        std::any::type_name::<T>()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock;

    #[test]
    fn the_table_round_trips_and_knows_its_type() {
        let codec = Codec::new(1024, 6, 1 << 20);
        let ops = ops::<Vec<String>>();
        let value = erase(vec!["a".to_string()]);
        let enc = (ops.encode)(&codec, &*value, 0, &[]).unwrap();
        let dec = (ops.decode)(&codec, &enc.bytes).unwrap();
        let entry = (ops.entry)("k", dec.value, clock::now(), 0);
        assert!(holds(&entry, ops));
        assert!(!holds(&entry, super::ops::<String>()));
        assert_eq!(of_entry::<Vec<String>>(&entry), Some(vec!["a".to_string()]));
        assert_eq!(of_entry::<String>(&entry), None);
    }

    #[test]
    fn a_value_of_another_type_is_an_error_not_a_panic() {
        let codec = Codec::new(1024, 6, 1 << 20);
        assert!((ops::<u32>().encode)(&codec, &*erase("text".to_string()), 0, &[]).is_err());
        let entry = (ops::<u32>().entry)("k", erase(1u64), clock::now(), 0);
        assert_eq!(of_entry::<u32>(&entry), None, "never a wrong value");
    }
}
