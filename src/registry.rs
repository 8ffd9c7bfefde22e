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
use std::sync::OnceLock;

use crate::codec::stable_hash;
use crate::error::{Error, Result};
use crate::protocol::WireArg;
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
pub(crate) fn encode_call<F: RemoteFn<M>, M, A: Args<M>>(args: A) -> Result<(u64, Vec<WireArg>)> {
    Ok((registry().id_of::<F>()?, args.into_wire()?))
}

/// The registry built from every submitted entry.
pub(crate) struct Registry {
    by_type: HashMap<TypeId, u64>,
    by_id: HashMap<u64, &'static RemoteEntry>,
    hash: u64,
    problems: Vec<String>,
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
        let mut by_type = HashMap::new();
        let mut by_id: HashMap<u64, &'static RemoteEntry> = HashMap::new();
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
