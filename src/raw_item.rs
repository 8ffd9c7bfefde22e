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
//! serde's deserializers of single numbers ([`decode_elements`]): no `unsafe`, no
//! type-id check, and a value of any other shape is refused, never
//! reinterpreted. The bytes are in memory order, as the engine's monomorphized
//! loop reads and writes them (every rank of a job runs the same binary on
//! the same kind of machine).

use std::fmt;

use serde::de::{DeserializeOwned, IntoDeserializer};
use serde::ser::Impossible;
use serde::{Serialize, Serializer};

use crate::bulk::ElemKind;
use crate::error::{Error, Result};

/// Appends the bytes of `value` to `out` if it serializes as exactly one
/// number of `kind`; false (and `out` unchanged) otherwise.
#[inline]
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

/// The `R`s held by `bytes`, the raw bytes of numbers of `kind` back to
/// back: the kind is matched once, then each number goes through serde's
/// own deserializer of that number.
pub(crate) fn decode_elements<R: DeserializeOwned>(kind: ElemKind, bytes: &[u8]) -> Result<Vec<R>> {
    fn each<R, T, const N: usize>(
        bytes: &[u8],
        from: impl Fn([u8; N]) -> T,
    ) -> std::result::Result<Vec<R>, NotElement>
    where
        R: DeserializeOwned,
        T: IntoDeserializer<'static, NotElement>,
    {
        if bytes.len() % N != 0 {
            return Err(NotElement(format!(
                "{} bytes for items of {N}",
                bytes.len()
            )));
        }
        bytes
            .chunks_exact(N)
            .map(|c| {
                let array = <[u8; N]>::try_from(c)
                    .map_err(|_| NotElement(format!("{} bytes for an item of {N}", c.len())))?;
                R::deserialize(from(array).into_deserializer())
            })
            .collect()
    }
    let decoded = match kind {
        ElemKind::I8 => each(bytes, i8::from_ne_bytes),
        ElemKind::I16 => each(bytes, i16::from_ne_bytes),
        ElemKind::I32 => each(bytes, i32::from_ne_bytes),
        ElemKind::I64 => each(bytes, i64::from_ne_bytes),
        ElemKind::U8 => each(bytes, u8::from_ne_bytes),
        ElemKind::U16 => each(bytes, u16::from_ne_bytes),
        ElemKind::U32 => each(bytes, u32::from_ne_bytes),
        ElemKind::U64 => each(bytes, u64::from_ne_bytes),
        ElemKind::F32 => each(bytes, f32::from_ne_bytes),
        ElemKind::F64 => each(bytes, f64::from_ne_bytes),
    };
    decoded.map_err(|NotElement(message)| Error::Codec {
        action: "decode",
        type_name: std::any::type_name::<R>().to_string(),
        message: format!("as raw {kind:?}s: {message}"),
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
        $(#[inline]
        fn $method(self, value: $t) -> std::result::Result<(), NotElement> {
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
        let numbers = decode_elements::<u64>(ElemKind::U64, &out[..8]);
        assert_eq!(numbers.ok(), Some(vec![7]));
        let numbers = decode_elements::<f64>(ElemKind::F64, &out[8..]);
        assert_eq!(numbers.ok(), Some(vec![-2.5]));
        let twice = [&out[..8], &out[..8]].concat();
        let numbers = decode_elements::<u64>(ElemKind::U64, &twice);
        assert_eq!(numbers.ok(), Some(vec![7, 7]));
    }

    #[test]
    fn other_shapes_are_refused_and_write_nothing() {
        let mut out = vec![1];
        assert!(!encode_element(&7u32, ElemKind::U64, &mut out));
        assert!(!encode_element("seven", ElemKind::U64, &mut out));
        assert!(!encode_element(&(1u64, 2u64), ElemKind::U64, &mut out));
        assert!(!encode_element(&Some(1u64), ElemKind::U64, &mut out));
        assert_eq!(out, vec![1]);
        assert!(decode_elements::<u64>(ElemKind::U64, &[0; 7]).is_err());
        assert!(decode_elements::<String>(ElemKind::U64, &[0; 8]).is_err());
    }
}
