//! The codec: how typed values become bytes and back.
//!
//! All serialization of user values and protocol messages goes through this
//! module (bincode 2 in serde mode), so that the format can be swapped in one
//! place. Decoding is bounded: a message may not claim more memory than a
//! fixed multiple of its own size, so hostile or truncated bytes give an
//! error, never an allocation bomb or a panic. Bulk numeric data (scatter,
//! gather) does not come here: it travels as raw MPI buffers.

use std::any::{type_name, TypeId};
use std::hash::{Hash, Hasher};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// How many bytes of memory a decoded value may claim per byte of input.
/// Generous enough for nested containers of small elements.
const EXPANSION: usize = 64;

/// Encodes `value` into a fresh byte vector.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).map_err(|e| Error::Codec {
        action: "encode",
        type_name: type_name::<T>().to_string(),
        message: e.to_string(),
    })
}

/// Encodes `value` into a vector allocated once at its exact size: a first
/// pass only counts bytes. For messages that carry large byte strings (one
/// `memcpy` each, no regrowth); the counting pass costs little there.
pub(crate) fn encode_sized<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let config = bincode::config::standard();
    let failed = |e: bincode::error::EncodeError| Error::Codec {
        action: "encode",
        type_name: type_name::<T>().to_string(),
        message: e.to_string(),
    };
    let mut size = bincode::enc::write::SizeWriter::default();
    bincode::serde::encode_into_writer(value, &mut size, config).map_err(failed)?;
    let mut bytes = Vec::with_capacity(size.bytes_written);
    bincode::serde::encode_into_std_write(value, &mut bytes, config).map_err(failed)?;
    Ok(bytes)
}

/// Decodes a `T` from `bytes`, which must be consumed entirely.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let claim = bytes.len().saturating_mul(EXPANSION);
    let decoded = if claim <= 64 << 20 {
        decode_limited::<T, { 64 << 20 }>(bytes)
    } else if claim <= 1 << 30 {
        decode_limited::<T, { 1 << 30 }>(bytes)
    } else {
        decode_limited::<T, { 1 << 40 }>(bytes)
    };
    match decoded {
        Ok((value, used)) if used == bytes.len() => Ok(value),
        Ok((_, used)) => Err(Error::Codec {
            action: "decode",
            type_name: type_name::<T>().to_string(),
            message: format!("{} trailing bytes after the value", bytes.len() - used),
        }),
        Err(e) => Err(Error::Codec {
            action: "decode",
            type_name: type_name::<T>().to_string(),
            message: e.to_string(),
        }),
    }
}

fn decode_limited<T: DeserializeOwned, const LIMIT: usize>(
    bytes: &[u8],
) -> std::result::Result<(T, usize), bincode::error::DecodeError> {
    let config = bincode::config::standard().with_limit::<LIMIT>();
    bincode::serde::decode_from_slice(bytes, config)
}

/// A 64-bit fingerprint of a Rust type, equal on every rank running the same
/// binary (the job checks that at start-up).
pub(crate) fn fingerprint<T: ?Sized + 'static>() -> u64 {
    let mut hasher = StableHasher::default();
    TypeId::of::<T>().hash(&mut hasher);
    hasher.finish()
}

/// 64-bit FNV-1a: deterministic across processes and runs, unlike `RandomState`.
#[derive(Clone, Copy)]
pub(crate) struct StableHasher(u64);

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for StableHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// Hashes a string with [`StableHasher`].
pub(crate) fn stable_hash(text: &str) -> u64 {
    let mut hasher = StableHasher::default();
    hasher.write(text.as_bytes());
    hasher.finish()
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn round_trip_of_nested_values() {
        let value: (String, Vec<Vec<u8>>, Option<f64>) =
            ("hi".into(), vec![vec![1, 2], vec![]], Some(2.5));
        let bytes = encode(&value).unwrap();
        let back: (String, Vec<Vec<u8>>, Option<f64>) = decode(&bytes).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encode(&7u32).unwrap();
        bytes.push(0);
        assert!(matches!(decode::<u32>(&bytes), Err(Error::Codec { .. })));
    }

    #[test]
    fn huge_length_claim_is_refused_without_allocating() {
        // A varint length prefix claiming about 2^62 bytes, then nothing.
        let bytes = [0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f];
        assert!(decode::<String>(&bytes).is_err());
        assert!(decode::<Vec<u8>>(&bytes).is_err());
        assert!(decode::<Vec<u64>>(&bytes).is_err());
    }

    #[test]
    fn fingerprints_tell_types_apart() {
        assert_eq!(fingerprint::<Vec<f64>>(), fingerprint::<Vec<f64>>());
        assert_ne!(fingerprint::<Vec<f64>>(), fingerprint::<Vec<f32>>());
        assert_ne!(fingerprint::<i32>(), fingerprint::<i64>());
    }
}
