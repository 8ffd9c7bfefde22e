//! One number as its raw bytes, seen through serde: how the client writes a
//! `map` item of a numeric type ([`Element`](crate::Element)) without the
//! codec, and reads a numeric result back.
//!
//! A map whose function takes and returns plain numbers sends a chunk's
//! items as one buffer of their bytes and gets the results back the same
//! way (`view/queue.rs` decides when; `engine/exec.rs` runs the loop). The
//! client knows the item and result types only as serde types, not as
//! elements, so it moves each value through a serializer that accepts
//! exactly one number of the expected [`ElemKind`] ([`encode_element`]) and
//! a deserializer that offers one ([`decode_element`]): no `unsafe`, no
//! type-id check, and a value of any other shape is refused, never
//! reinterpreted. The bytes are in memory order, as the engine's monomorphized
//! loop reads and writes them (every rank of a job runs the same binary on
//! the same kind of machine).

use std::fmt;

use serde::de::{DeserializeOwned, Visitor};
use serde::ser::Impossible;
use serde::{Deserializer, Serialize, Serializer};

use crate::bulk::ElemKind;
use crate::error::{Error, Result};

/// Appends the bytes of `value` to `out` if it serializes as exactly one
/// number of `kind`; false (and `out` unchanged) otherwise.
pub(crate) fn encode_element<T: Serialize + ?Sized>(
    value: &T,
    kind: ElemKind,
    out: &mut Vec<u8>,
) -> bool {
    let start = out.len();
    let written = value.serialize(ElementSink {
        kind,
        out: &mut *out,
    });
    if written.is_err() {
        out.truncate(start);
    }
    written.is_ok()
}

/// The `R` held by `bytes`, the raw bytes of one number of `kind`.
pub(crate) fn decode_element<R: DeserializeOwned>(kind: ElemKind, bytes: &[u8]) -> Result<R> {
    R::deserialize(ElementBytes { kind, bytes }).map_err(|NotElement(message)| Error::Codec {
        action: "decode",
        type_name: std::any::type_name::<R>().to_string(),
        message: format!("as a raw {kind:?}: {message}"),
    })
}

/// Why a value is not one number of the expected kind.
#[derive(Debug)]
struct NotElement(String);

impl fmt::Display for NotElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotElement {}

impl serde::ser::Error for NotElement {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        NotElement(msg.to_string())
    }
}

impl serde::de::Error for NotElement {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        NotElement(msg.to_string())
    }
}

/// A serializer that takes one number of `kind` and writes its bytes.
struct ElementSink<'a> {
    kind: ElemKind,
    out: &'a mut Vec<u8>,
}

/// The serializer methods of the numeric types: write when the kind fits.
macro_rules! numbers {
    ($($method:ident $t:ty => $v:ident;)*) => {
        $(fn $method(self, value: $t) -> std::result::Result<(), NotElement> {
            if self.kind == ElemKind::$v {
                self.out.extend_from_slice(&value.to_ne_bytes());
                Ok(())
            } else {
                Err(NotElement(format!("a {} where a {:?} was expected", stringify!($t), self.kind)))
            }
        })*
    };
}

/// The serializer methods of everything else: refused.
macro_rules! refused {
    ($($method:ident($($arg:ty),*) -> $ok:ty;)*) => {
        $(fn $method(self, $(_: $arg),*) -> std::result::Result<$ok, NotElement> {
            Err(NotElement(format!("not a number (serialize {})", stringify!($method))))
        })*
    };
}

impl Serializer for ElementSink<'_> {
    type Ok = ();
    type Error = NotElement;
    type SerializeSeq = Impossible<(), NotElement>;
    type SerializeTuple = Impossible<(), NotElement>;
    type SerializeTupleStruct = Impossible<(), NotElement>;
    type SerializeTupleVariant = Impossible<(), NotElement>;
    type SerializeMap = Impossible<(), NotElement>;
    type SerializeStruct = Impossible<(), NotElement>;
    type SerializeStructVariant = Impossible<(), NotElement>;

    numbers! {
        serialize_i8 i8 => I8;
        serialize_i16 i16 => I16;
        serialize_i32 i32 => I32;
        serialize_i64 i64 => I64;
        serialize_u8 u8 => U8;
        serialize_u16 u16 => U16;
        serialize_u32 u32 => U32;
        serialize_u64 u64 => U64;
        serialize_f32 f32 => F32;
        serialize_f64 f64 => F64;
    }

    refused! {
        serialize_bool(bool) -> ();
        serialize_char(char) -> ();
        serialize_str(&str) -> ();
        serialize_bytes(&[u8]) -> ();
        serialize_none() -> ();
        serialize_unit() -> ();
        serialize_unit_struct(&'static str) -> ();
        serialize_unit_variant(&'static str, u32, &'static str) -> ();
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_map(Option<usize>) -> Self::SerializeMap;
        serialize_struct(&'static str, usize) -> Self::SerializeStruct;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> std::result::Result<(), NotElement> {
        Err(NotElement("not a number (an Option)".into()))
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> std::result::Result<(), NotElement> {
        Err(NotElement("not a number (a newtype)".into()))
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> std::result::Result<(), NotElement> {
        Err(NotElement("not a number (an enum)".into()))
    }
}

/// A deserializer that offers the one number of `kind` in `bytes`.
struct ElementBytes<'a> {
    kind: ElemKind,
    bytes: &'a [u8],
}

impl ElementBytes<'_> {
    /// The bytes as an array of `N`, or why not.
    fn array<const N: usize>(&self) -> std::result::Result<[u8; N], NotElement> {
        self.bytes.try_into().map_err(|_| {
            NotElement(format!(
                "{} bytes for a {:?} of {N}",
                self.bytes.len(),
                self.kind
            ))
        })
    }
}

impl<'de> Deserializer<'de> for ElementBytes<'_> {
    type Error = NotElement;

    fn deserialize_any<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, NotElement> {
        match self.kind {
            ElemKind::I8 => visitor.visit_i8(i8::from_ne_bytes(self.array()?)),
            ElemKind::I16 => visitor.visit_i16(i16::from_ne_bytes(self.array()?)),
            ElemKind::I32 => visitor.visit_i32(i32::from_ne_bytes(self.array()?)),
            ElemKind::I64 => visitor.visit_i64(i64::from_ne_bytes(self.array()?)),
            ElemKind::U8 => visitor.visit_u8(u8::from_ne_bytes(self.array()?)),
            ElemKind::U16 => visitor.visit_u16(u16::from_ne_bytes(self.array()?)),
            ElemKind::U32 => visitor.visit_u32(u32::from_ne_bytes(self.array()?)),
            ElemKind::U64 => visitor.visit_u64(u64::from_ne_bytes(self.array()?)),
            ElemKind::F32 => visitor.visit_f32(f32::from_ne_bytes(self.array()?)),
            ElemKind::F64 => visitor.visit_f64(f64::from_ne_bytes(self.array()?)),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_as_their_bytes() {
        let mut out = Vec::new();
        assert!(encode_element(&7u64, ElemKind::U64, &mut out));
        assert!(encode_element(&-2.5f64, ElemKind::F64, &mut out));
        assert_eq!(out.len(), 16);
        assert_eq!(out[..8], 7u64.to_ne_bytes());
        assert_eq!(
            decode_element::<u64>(ElemKind::U64, &out[..8]).ok(),
            Some(7)
        );
        assert_eq!(
            decode_element::<f64>(ElemKind::F64, &out[8..]).ok(),
            Some(-2.5)
        );
    }

    #[test]
    fn other_shapes_are_refused_and_write_nothing() {
        let mut out = vec![1];
        assert!(!encode_element(&7u32, ElemKind::U64, &mut out));
        assert!(!encode_element("seven", ElemKind::U64, &mut out));
        assert!(!encode_element(&(1u64, 2u64), ElemKind::U64, &mut out));
        assert!(!encode_element(&Some(1u64), ElemKind::U64, &mut out));
        assert_eq!(out, vec![1]);
        assert!(decode_element::<u64>(ElemKind::U64, &[0; 7]).is_err());
        assert!(decode_element::<String>(ElemKind::U64, &[0; 8]).is_err());
    }
}
