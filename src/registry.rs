//! The registry of remote functions: which functions an engine may run.
//!
//! `#[rankview::remote]` submits one [`RemoteEntry`] per function (one per
//! instantiation for generic functions) to a link-time collection. Every rank
//! runs the same binary, so every rank builds the same registry; a function
//! travels as the 64-bit hash of its full path, never as a code address. The
//! registry's own hash is compared across ranks at start-up, and a call
//! leaves the client as its function's id and its arguments
//! ([`encode_call`]). How arguments are decoded and results encoded is left
//! to `remote`, below this module.

use std::any::TypeId;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

use crate::codec::stable_hash;
use crate::error::{Error, Result};
use crate::protocol::WireArgs;
use crate::remote::{ArgReader, Args, MapRawFn, RawKindsFn, RemoteFn};

/// What an engine runs for one registered function: decode the arguments,
/// call the function, encode its result.
pub type InvokeFn = fn(&mut ArgReader) -> Result<Vec<u8>>;

/// One registered remote function. Built by `#[rankview::remote]`; not meant
/// to be written by hand.
#[derive(Debug)]
pub struct RemoteEntry {
    /// Full path, e.g. `my_crate::stats::get_norms` or `my_crate::sum::<f64>`.
    pub path: &'static str,
    /// The signature as written, part of the registry hash.
    pub signature: &'static str,
    /// `TypeId` of the function item, to find the entry from the function.
    pub type_id: fn() -> TypeId,
    /// The engine-side trampoline.
    pub invoke: InvokeFn,
    /// The element types the function takes and returns, when its `map`
    /// travels raw (one parameter, both plain numbers).
    pub raw_kinds: RawKindsFn,
    /// The engine-side loop of a raw `map` (`None` when not raw).
    pub map_raw: MapRawFn,
}

inventory::collect!(RemoteEntry);

/// The registry id of `F` and `args` as they travel: what an `apply` sends.
pub(crate) fn encode_call<F: RemoteFn<M>, M, A: Args<M>>(args: A) -> Result<(u64, WireArgs)> {
    Ok((registry().id_of::<F>()?, args.into_wire()?))
}

/// The registry built from every submitted entry.
pub(crate) struct Registry {
    by_type: HashMap<TypeId, u64, Keyed>,
    by_id: HashMap<u64, &'static RemoteEntry, Keyed>,
    hash: u64,
    problems: Vec<String>,
}

/// The registry's maps are looked up on every call (the client finds the
/// id and the name, the engine the entry), and their keys are hashes
/// already: a `TypeId`, and an id that is the stable hash of a path. They
/// are used as they are, mixed once, instead of through SipHash (which
/// guards against keys chosen by an attacker; these are the program's own).
type Keyed = BuildHasherDefault<KeyHasher>;

/// See [`Keyed`]. Keys that write bytes rather than one integer (none of
/// the registry's) are folded in eight bytes at a time.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        // Shifts and multiplies (MurmurHash3's finalizer) carry every bit of
        // the key to both ends: hashbrown takes its bucket from the low bits
        // and its tag from the high ones.
        let mut x = self.0 ^ n;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        self.0 = x ^ (x >> 33);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The process-wide registry, built on first use.
pub(crate) fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::build)
}

impl Registry {
    fn build() -> Registry {
        let mut entries: Vec<&'static RemoteEntry> = inventory::iter::<RemoteEntry>().collect();
        entries.sort_by(|a, b| a.path.cmp(b.path));
        let mut by_type = HashMap::default();
        let mut by_id: HashMap<u64, &'static RemoteEntry, Keyed> = HashMap::default();
        let mut problems = Vec::new();
        let mut listing = String::new();
        for entry in entries {
            let id = stable_hash(entry.path);
            if let Some(other) = by_id.get(&id) {
                if other.path != entry.path {
                    problems.push(format!(
                        "{} and {} hash to the same id",
                        other.path, entry.path
                    ));
                }
                continue;
            }
            listing.push_str(entry.path);
            listing.push('(');
            listing.push_str(entry.signature);
            listing.push_str(")\n");
            by_type.insert((entry.type_id)(), id);
            by_id.insert(id, entry);
        }
        Registry {
            by_type,
            by_id,
            hash: stable_hash(&listing),
            problems,
        }
    }

    /// The id under which `F` travels, or `NotRegistered`.
    pub(crate) fn id_of<F: 'static>(&self) -> Result<u64> {
        self.by_type
            .get(&TypeId::of::<F>())
            .copied()
            .ok_or_else(|| Error::NotRegistered {
                function: std::any::type_name::<F>().to_string(),
            })
    }

    /// The entry for an id received from the wire.
    pub(crate) fn entry(&self, id: u64) -> Option<&'static RemoteEntry> {
        self.by_id.get(&id).copied()
    }

    /// The path of the function with this id, for messages and timelines.
    pub(crate) fn path(&self, id: u64) -> &'static &'static str {
        self.entry(id)
            .map_or(&"a remote function", |entry| &entry.path)
    }

    /// Hash of every registered path and signature.
    pub(crate) fn hash(&self) -> u64 {
        self.hash
    }

    /// Defects found while building (id collisions); empty when sound.
    pub(crate) fn problems(&self) -> &[String] {
        &self.problems
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn keys_that_differ_only_in_high_or_low_bits_spread_over_buckets_and_tags() {
        let hasher = Keyed::default();
        for shift in [0, 40, 54] {
            let hashes: Vec<u64> = (0..1024u64).map(|k| hasher.hash_one(k << shift)).collect();
            let buckets: HashSet<u64> = hashes.iter().map(|h| h & 1023).collect();
            let tags: HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
            // 1024 keys thrown at random into 1024 buckets fill about 647.
            assert!(
                buckets.len() > 600,
                "shift {shift}: {} buckets",
                buckets.len()
            );
            assert_eq!(tags.len(), 128, "shift {shift}: every 7-bit tag is used");
        }
    }

    #[test]
    fn a_map_keyed_by_type_finds_every_type() {
        let mut map: HashMap<TypeId, u64, Keyed> = HashMap::default();
        let types = [
            TypeId::of::<u8>(),
            TypeId::of::<u64>(),
            TypeId::of::<String>(),
            TypeId::of::<Vec<f64>>(),
            TypeId::of::<RemoteEntry>(),
        ];
        for (i, t) in types.iter().enumerate() {
            map.insert(*t, i as u64);
        }
        for (i, t) in types.iter().enumerate() {
            assert_eq!(map.get(t), Some(&(i as u64)));
        }
        assert_eq!(map.get(&TypeId::of::<i8>()), None);
    }
}
