//! The codec: how typed values become bytes and back.
//!
//! All serialization of user values and protocol messages goes through this
//! module (bincode 2 in serde mode), so that the format can be swapped in one
//! place. Decoding is bounded by the input at every size: no string or byte
//! buffer is allocated before its bytes are known to be there, and sequences
//! grow only as their elements are decoded ([`bounded`]), so hostile or
//! truncated bytes give an error, never an allocation bomb or a panic. Bulk
//! numeric data (scatter, gather) does not come here: it travels as raw MPI
//! buffers.

use std::any::{type_name, TypeId};
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

mod bounded;

/// Encodings this short are written on the stack first ([`encode`]).
const SMALL: usize = 256;

/// Encodes `value` into a fresh vector allocated once at its exact size. A
/// value of at most [`SMALL`] bytes (an argument, a task's result) is
/// written once, on the stack, and copied out; a larger one is sized by a
/// first pass that only counts bytes (cheap next to the copying, page
/// faults and regrowth of a vector grown as it is written), and is backed
/// by huge pages where the kernel allows.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let config = bincode::config::standard();
    let failed = |e: bincode::error::EncodeError| Error::Codec {
        action: "encode",
        type_name: type_name::<T>().to_string(),
        message: e.to_string(),
    };
    let mut small = [0u8; SMALL];
    match bincode::serde::encode_into_slice(value, &mut small, config) {
        Ok(written) => return Ok(small[..written].to_vec()),
        Err(bincode::error::EncodeError::UnexpectedEnd) => {}
        Err(e) => return Err(failed(e)),
    }
    let mut size = bincode::enc::write::SizeWriter::default();
    bincode::serde::encode_into_writer(value, &mut size, config).map_err(failed)?;
    let mut bytes = Vec::with_capacity(size.bytes_written);
    crate::hugepages::advise_huge_spare(&mut bytes);
    bincode::serde::encode_into_std_write(value, &mut bytes, config).map_err(failed)?;
    Ok(bytes)
}

/// Encodes `value` at the end of `out` (which is left as it was on error).
pub(crate) fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
    let start = out.len();
    bincode::serde::encode_into_std_write(value, out, bincode::config::standard()).map_err(
        |e| {
            out.truncate(start);
            Error::Codec {
                action: "encode",
                type_name: type_name::<T>().to_string(),
                message: e.to_string(),
            }
        },
    )?;
    Ok(())
}

/// Decodes a `T` from `bytes`, which must be consumed entirely.
///
/// Bounded by the input: a length prefix claiming more than the bytes left
/// is an error before anything of that size is allocated (see
/// [`bounded`]).
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let seed = bounded::Seed(PhantomData::<T>);
    match bincode::serde::seed_decode_from_slice(seed, bytes, bincode::config::standard()) {
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

/// A value with the fingerprint and name of its Rust type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Typed {
    /// [`fingerprint`] of the value's type.
    pub fingerprint: u64,
    /// `std::any::type_name` of the value's type, for error messages.
    pub type_name: String,
    /// The codec's encoding of the value, shared: an engine's namespace
    /// keeps it while a pull sends it.
    #[serde(with = "shared_bytes")]
    pub bytes: Arc<Vec<u8>>,
}

/// Shared bytes, encoded as bytes (the protocol's "Bytes": one length and a block, not element by element).
mod shared_bytes {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serializer};
    use serde_bytes::ByteBuf;

    pub(super) fn serialize<S: Serializer>(bytes: &Arc<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<Vec<u8>>, D::Error> {
        Ok(Arc::new(ByteBuf::deserialize(d)?.into_vec()))
    }
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

/// The protocol fuzz test's counting allocator, for this crate's unit
/// tests: a decode of hostile input is measured, not only refused.
#[cfg(test)]
#[path = "../../tests/common/allocations.rs"]
pub(crate) mod allocations;

#[cfg(test)]
mod tests {
    use super::allocations::measure;
    use super::*;

    /// Bytes any decode below may allocate at once or hold at its peak,
    /// whatever its input claims (its error message and small buffers).
    const SLACK: usize = 4096;

    /// Decodes `bytes` as `T`, measuring it: `Err` with what the decode
    /// allocated if it took more than `limit` bytes at once or at its peak.
    fn within<T: DeserializeOwned>(
        bytes: &[u8],
        limit: usize,
    ) -> std::result::Result<Result<T>, String> {
        let (decoded, usage) = measure(|| decode::<T>(bytes));
        if usage.largest > limit || usage.peak > limit {
            return Err(format!(
                "decoding {} bytes as {} allocated {} bytes at once, {} at the peak (limit {limit})",
                bytes.len(),
                type_name::<T>(),
                usage.largest,
                usage.peak
            ));
        }
        Ok(decoded)
    }

    #[test]
    fn round_trip_of_nested_values() {
        let value: (String, Vec<Vec<u8>>, Option<f64>) =
            ("hi".into(), vec![vec![1, 2], vec![]], Some(2.5));
        let bytes = encode(&value).unwrap();
        let back: (String, Vec<Vec<u8>>, Option<f64>) = decode(&bytes).unwrap();
        assert_eq!(back, value);
    }

    /// Either side of the stack buffer's size, `encode` gives what a plain
    /// write gives, in one allocation of exactly its length.
    #[test]
    fn encodings_around_the_small_size_are_exact_and_allocated_once() {
        for len in [
            0,
            1,
            SMALL - 3,
            SMALL - 2,
            SMALL - 1,
            SMALL,
            SMALL + 1,
            4 * SMALL,
        ] {
            let value = vec![7u8; len];
            let mut expected = Vec::new();
            encode_into(&value, &mut expected).unwrap();
            let (bytes, usage) = measure(|| encode(&value).unwrap());
            assert_eq!(bytes, expected, "{len} bytes");
            assert_eq!(bytes.capacity(), bytes.len(), "{len} bytes");
            let allocations = usize::from(!bytes.is_empty());
            assert_eq!(usage.allocations, allocations, "{len} bytes");
            assert_eq!(decode::<Vec<u8>>(&bytes).unwrap(), value);
        }
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encode(&7u32).unwrap();
        bytes.push(0);
        assert!(matches!(decode::<u32>(&bytes), Err(Error::Codec { .. })));
    }

    #[test]
    fn huge_length_claim_is_refused_without_allocating() -> std::result::Result<(), String> {
        // A varint length prefix claiming about 2^62 bytes, then nothing;
        // and one claiming 1 MiB, which could be allocated.
        let mut mib = vec![252u8];
        mib.extend_from_slice(&(1u32 << 20).to_le_bytes());
        for bytes in [
            &[0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f][..],
            &mib[..],
        ] {
            assert!(within::<String>(bytes, SLACK)?.is_err());
            assert!(within::<ByteBuf>(bytes, SLACK)?.is_err());
            assert!(within::<Vec<u8>>(bytes, SLACK)?.is_err());
            assert!(within::<Vec<u64>>(bytes, SLACK)?.is_err());
        }
        Ok(())
    }

    /// An encoded string (or byte buffer) whose length prefix claims
    /// `claim` bytes, followed by `present` bytes of it.
    fn claiming(claim: u64, present: usize) -> Vec<u8> {
        // A length prefix is encoded as a u64 is.
        let mut bytes = encode(&claim).unwrap();
        bytes.resize(bytes.len() + present, b'x');
        bytes
    }

    /// Deserializes through `deserialize_byte_buf`, as `serde_bytes` does.
    #[derive(Debug)]
    struct ByteBuf(Vec<u8>);

    impl<'de> serde::Deserialize<'de> for ByteBuf {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            struct Visit;
            impl serde::de::Visitor<'_> for Visit {
                type Value = ByteBuf;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E>(self, v: &[u8]) -> std::result::Result<ByteBuf, E> {
                    Ok(ByteBuf(v.to_vec()))
                }
                fn visit_byte_buf<E>(self, v: Vec<u8>) -> std::result::Result<ByteBuf, E> {
                    Ok(ByteBuf(v))
                }
            }
            d.deserialize_byte_buf(Visit)
        }
    }

    #[test]
    fn length_claims_beyond_the_input_are_refused_at_every_size() -> std::result::Result<(), String>
    {
        const GIB: u64 = 1 << 30;
        for present in [0, 1 << 10, 1 << 20, 17 << 20, 65 << 20] {
            let claims = [
                present as u64 + 1,
                2 * present as u64 + 64,
                600 * GIB,
                u64::MAX >> 2,
            ];
            for claim in claims {
                let bytes = claiming(claim, present);
                let what = format!("{present} bytes claiming {claim}");
                assert!(
                    matches!(within::<String>(&bytes, SLACK)?, Err(Error::Codec { .. })),
                    "{what}"
                );
                assert!(
                    matches!(within::<ByteBuf>(&bytes, SLACK)?, Err(Error::Codec { .. })),
                    "{what}"
                );
                // Nested: a vector of one such string, an optional one.
                let mut nested = encode(&1u64).unwrap();
                nested.extend_from_slice(&bytes);
                assert!(within::<Vec<String>>(&nested, SLACK)?.is_err(), "{what}");
                let mut some = vec![1u8];
                some.extend_from_slice(&bytes);
                assert!(within::<Option<String>>(&some, SLACK)?.is_err(), "{what}");
            }
        }
        Ok(())
    }

    #[test]
    fn values_as_large_as_their_input_still_decode() {
        for present in [0, 1 << 10, 17 << 20] {
            let bytes = claiming(present as u64, present);
            assert_eq!(decode::<String>(&bytes).unwrap().len(), present);
            assert_eq!(decode::<ByteBuf>(&bytes).unwrap().0.len(), present);
        }
        // Small elements that take more memory than input (1-byte varints).
        let many: Vec<u128> = (0..1_000_000).map(|i| i % 100).collect();
        assert_eq!(decode::<Vec<u128>>(&encode(&many).unwrap()).unwrap(), many);
        let words: Vec<String> = (0..100_000).map(|i| i.to_string()).collect();
        assert_eq!(
            decode::<Vec<String>>(&encode(&words).unwrap()).unwrap(),
            words
        );
    }

    #[test]
    fn fingerprints_tell_types_apart() {
        assert_eq!(fingerprint::<Vec<f64>>(), fingerprint::<Vec<f64>>());
        assert_ne!(fingerprint::<Vec<f64>>(), fingerprint::<Vec<f32>>());
        assert_ne!(fingerprint::<i32>(), fingerprint::<i64>());
    }
}
