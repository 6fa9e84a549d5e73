//! The lenient serde kit every reply is read with: numbers and strings
//! that arrive as either (peers and servers disagree on both), objects read
//! field by field ([`Record`]) with unknown keys skipped, and lists that skip
//! entries which are not objects. The content of a record never fails a reply.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::super::text::{has_skey_param, strip_skey};

/// Visitor methods for every JSON value a lenient reader does not want:
/// scalars read as `$default`, objects and arrays are skipped whole.
macro_rules! skip_other_values {
    ($default:expr, [$($skip:ident),*]) => {
        $(skip_other_values!(@one $skip, $default);)*
    };
    (@one bool, $default:expr) => {
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> { Ok($default) }
    };
    (@one i64, $default:expr) => {
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> { Ok($default) }
    };
    (@one u64, $default:expr) => {
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> { Ok($default) }
    };
    (@one f64, $default:expr) => {
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> { Ok($default) }
    };
    (@one str, $default:expr) => {
        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> { Ok($default) }
    };
    (@one unit, $default:expr) => {
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> { Ok($default) }
    };
    (@one map, $default:expr) => {
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            IgnoredAny.visit_map(map).map(|_| $default)
        }
    };
    (@one seq, $default:expr) => {
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            IgnoredAny.visit_seq(seq).map(|_| $default)
        }
    };
}
pub(super) use skip_other_values;

/// Reads one JSON value, whatever its type, with the visitor `V`: the seed
/// of every lenient reader here.
pub(super) struct Any<V>(pub(super) V);

impl<'de, V: Visitor<'de>> DeserializeSeed<'de> for Any<V> {
    type Value = V::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        d.deserialize_any(self.0)
    }
}

/// A number that may arrive as a JSON number, a numeric string, or null.
/// Anything unusable reads as 0 rather than failing the whole reply.
pub(super) struct LenientI64;

impl<'de> Visitor<'de> for LenientI64 {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number")
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i64, E> {
        Ok(i64::try_from(v).unwrap_or(i64::MAX))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<i64, E> {
        // Saturating float-to-int conversion is what we want here.
        Ok(v as i64)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<i64, E> {
        Ok(v.trim().parse().unwrap_or_default())
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<i64, E> {
        Ok(i64::from(v))
    }

    skip_other_values!(0, [unit, map, seq]);
}

/// A string that may arrive as a string, a number, or null.
pub(super) struct LenientString;

impl<'de> Visitor<'de> for LenientString {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<String, E> {
        // As serde_json writes a float (`3.0`, `100000.0`).
        Ok(serde_json::Number::from_f64(v).map_or_else(String::new, |n| n.to_string()))
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }

    skip_other_values!(String::new(), [unit, map, seq]);
}

pub(super) fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Any(LenientI64).deserialize(d)
}

pub(crate) fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Any(LenientString).deserialize(d)
}

/// A string with any `skey` parameter removed: what every string of a
/// contact or member becomes before anything reads it.
pub(super) fn clean(s: String) -> String {
    if has_skey_param(&s) {
        strip_skey(&s)
    } else {
        s
    }
}

/// A lenient string read from one JSON value's text, skey removed.
pub(super) fn string_from(text: &str) -> String {
    match plain_string(text) {
        Some(inner) => clean(inner.to_owned()),
        None => {
            clean(lenient_string(&mut serde_json::Deserializer::from_str(text)).unwrap_or_default())
        }
    }
}

/// A lenient number read from one JSON value's text.
pub(super) fn i64_from(text: &str) -> i64 {
    lenient_i64(&mut serde_json::Deserializer::from_str(text)).unwrap_or_default()
}

/// The content of a JSON string literal without escapes, which is exactly
/// its text between the quotes.
pub(super) fn plain_string(text: &str) -> Option<&str> {
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains('\\')).then_some(inner)
}

/// An object key, borrowed from the reply when it holds no escapes.
pub(crate) struct Key<'de>(pub(super) Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }

            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// An object read field by field. Unknown keys are skipped, a key given
/// twice keeps its last value, and every field is lenient, so that the
/// content of a record never fails a reply.
pub(crate) trait Record<'de>: Default {
    /// Reads the value of `key` from `map` (or skips it).
    fn field<A: MapAccess<'de>>(&mut self, key: Key<'de>, map: &mut A) -> Result<(), A::Error>;
}

/// Reads a [`Record`] from an object; any other value is skipped and reads
/// as `None`.
pub(super) struct Lenient<T>(PhantomData<T>);

impl<T> Lenient<T> {
    pub(super) fn new() -> Self {
        Lenient(PhantomData)
    }
}

impl<'de, T: Record<'de>> Visitor<'de> for Lenient<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<T>, A::Error> {
        let mut record = T::default();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            record.field(key, &mut map)?;
        }
        Ok(Some(record))
    }

    skip_other_values!(None, [bool, i64, u64, f64, str, unit, seq]);
}

/// An array of [`Record`]s: entries that are not objects are skipped, and a
/// missing, null or non-array list reads as empty.
pub(super) struct LenientList<T>(PhantomData<T>);

impl<T> LenientList<T> {
    pub(super) fn new() -> Self {
        LenientList(PhantomData)
    }
}

impl<'de, T: Record<'de>> Visitor<'de> for LenientList<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(Any(Lenient::<T>::new()))? {
            out.extend(item);
        }
        Ok(out)
    }

    skip_other_values!(Vec::new(), [bool, i64, u64, f64, str, unit, map]);
}
