//! The engine namespace: named values that persist across tasks on one engine.
//!
//! Each engine's execution thread owns one [`Namespace`]; remote functions
//! reach it through [`globals()`], the rest of the engine (push, pull, keys,
//! clear, [`Ref`](crate::Ref) arguments) through crate-internal calls. Values
//! pushed from the client arrive as bytes with a type fingerprint and are
//! decoded on their first typed use; asking for the wrong type is a
//! [`Error::TypeMismatch`] naming both types, a missing name a
//! [`Error::NameError`], never a panic. Moving values on the wire is left to
//! the engine and the protocol.
//!
//! ## Sharing
//!
//! A decoded value lives behind an `Arc`. [`Globals::get`] and `Ref`
//! arguments hand out shared handles to the same allocation (no copy);
//! [`Globals::get_mut`] takes the value out for exclusive use and puts it back
//! when its guard drops, and fails with [`Error::Borrowed`] while shared
//! handles exist.

use std::any::{type_name, Any};
use std::cell::RefCell;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::{self, Typed};
use crate::error::{Error, Result};

/// What can be stored in an engine namespace: any serde type that can cross
/// threads. Implemented for every such type.
pub trait Value: Serialize + DeserializeOwned + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Value for T {}

/// A stored value, type-erased.
pub(crate) trait Stored: Any + Send + Sync {
    fn encode(&self) -> Result<Vec<u8>>;
    fn type_name(&self) -> &'static str;
    fn fingerprint(&self) -> u64;
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

impl<T: Value> Stored for T {
    fn encode(&self) -> Result<Vec<u8>> {
        codec::encode(self)
    }
    fn type_name(&self) -> &'static str {
        type_name::<T>()
    }
    fn fingerprint(&self) -> u64 {
        codec::fingerprint::<T>()
    }
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// One name's slot.
enum Entry {
    /// Arrived from the wire, not yet used with a type.
    Encoded(Typed),
    /// Decoded (or inserted by a task).
    Value(Arc<dyn Stored>),
    /// Out on loan to an [`Exclusive`] guard.
    Taken,
}

/// The value an insert replaced, if any: dropping it frees it, which the
/// engine does after replying (freeing a large array takes time).
pub(crate) struct Displaced(#[allow(dead_code)] Option<Entry>);

/// The named values of one engine.
pub(crate) struct Namespace {
    engine: usize,
    entries: HashMap<String, Entry>,
}

thread_local! {
    static NAMESPACE: RefCell<Option<Namespace>> = const { RefCell::new(None) };
}

/// Makes the calling thread an engine execution thread with an empty namespace.
pub(crate) fn install(engine: usize) {
    NAMESPACE.with(|ns| {
        *ns.borrow_mut() = Some(Namespace {
            engine,
            entries: HashMap::new(),
        })
    });
}

/// Runs `f` on this thread's namespace.
pub(crate) fn with<R>(f: impl FnOnce(&mut Namespace) -> Result<R>) -> Result<R> {
    NAMESPACE.with(|ns| match ns.try_borrow_mut() {
        Ok(mut guard) => match guard.as_mut() {
            Some(namespace) => f(namespace),
            None => Err(Error::Usage(
                "globals() is only available inside a task running on an engine".into(),
            )),
        },
        Err(_) => Err(Error::Usage("the engine namespace is busy".into())),
    })
}

impl Namespace {
    fn mismatch(&self, name: &str, expected: &str, found: &str) -> Error {
        Error::TypeMismatch {
            engine: self.engine,
            name: name.to_string(),
            expected: expected.to_string(),
            found: found.to_string(),
        }
    }

    fn missing(&self, name: &str) -> Error {
        Error::NameError {
            engine: self.engine,
            name: name.to_string(),
        }
    }

    fn borrowed(&self, name: &str) -> Error {
        Error::Borrowed {
            engine: self.engine,
            name: name.to_string(),
        }
    }

    /// Stores a value that arrived from the wire.
    pub(crate) fn insert_typed(&mut self, name: String, value: Typed) -> Displaced {
        Displaced(self.entries.insert(name, Entry::Encoded(value)))
    }

    /// Stores a value that is already decoded.
    pub(crate) fn insert_stored(&mut self, name: String, value: Arc<dyn Stored>) -> Displaced {
        Displaced(self.entries.insert(name, Entry::Value(value)))
    }

    /// `name` as a type-erased value of the type with `fingerprint`
    /// (called `type_name`), decoding it with `decode` if needed.
    pub(crate) fn stored(
        &mut self,
        name: &str,
        fingerprint: u64,
        type_name: &str,
        decode: fn(&[u8]) -> Result<Arc<dyn Stored>>,
    ) -> Result<Arc<dyn Stored>> {
        match self.entries.get(name) {
            None => Err(self.missing(name)),
            Some(Entry::Taken) => Err(self.borrowed(name)),
            Some(Entry::Value(stored)) if stored.fingerprint() == fingerprint => Ok(stored.clone()),
            Some(Entry::Value(stored)) => Err(self.mismatch(name, type_name, stored.type_name())),
            Some(Entry::Encoded(typed)) if typed.fingerprint == fingerprint => {
                let stored = decode(&typed.bytes)?;
                self.entries
                    .insert(name.to_string(), Entry::Value(stored.clone()));
                Ok(stored)
            }
            Some(Entry::Encoded(typed)) => Err(self.mismatch(name, type_name, &typed.type_name)),
        }
    }

    /// Stores a value produced on this engine.
    pub(crate) fn insert<T: Value>(&mut self, name: String, value: T) {
        self.entries.insert(name, Entry::Value(Arc::new(value)));
    }

    /// A shared handle to `name` as a `T`, decoding it on first use.
    pub(crate) fn get<T: Value>(&mut self, name: &str) -> Result<Arc<T>> {
        let stored = match self.entries.get(name) {
            None => return Err(self.missing(name)),
            Some(Entry::Taken) => return Err(self.borrowed(name)),
            Some(Entry::Value(stored)) => stored.clone(),
            Some(Entry::Encoded(typed)) => {
                if typed.fingerprint != codec::fingerprint::<T>() {
                    return Err(self.mismatch(name, type_name::<T>(), &typed.type_name));
                }
                let value: Arc<dyn Stored> = Arc::new(codec::decode::<T>(&typed.bytes)?);
                self.entries
                    .insert(name.to_string(), Entry::Value(value.clone()));
                value
            }
        };
        let found = stored.type_name();
        stored
            .into_any()
            .downcast::<T>()
            .map_err(|_| self.mismatch(name, type_name::<T>(), found))
    }

    /// Takes `name` out for exclusive use; [`Namespace::put_back`] returns it.
    fn take<T: Value>(&mut self, name: &str) -> Result<T> {
        // Decode (and type-check) first, then drop our handle so that the
        // map's is the only one left unless a task holds another.
        drop(self.get::<T>(name)?);
        let Some(Entry::Value(stored)) = self.entries.insert(name.to_string(), Entry::Taken) else {
            return Err(self.borrowed(name));
        };
        let found = stored.type_name();
        let shared = match stored.into_any().downcast::<T>() {
            Ok(shared) => shared,
            Err(_) => return Err(self.mismatch(name, type_name::<T>(), found)),
        };
        match Arc::try_unwrap(shared) {
            Ok(value) => Ok(value),
            Err(shared) => {
                self.entries.insert(name.to_string(), Entry::Value(shared));
                Err(self.borrowed(name))
            }
        }
    }

    fn put_back<T: Value>(&mut self, name: &str, value: T) {
        if let Some(entry @ Entry::Taken) = self.entries.get_mut(name) {
            *entry = Entry::Value(Arc::new(value));
        }
    }

    /// An owned copy of `name` as a `T` (for a by-value `Ref` argument).
    pub(crate) fn copy<T: DeserializeOwned + 'static>(&mut self, name: &str) -> Result<T> {
        let (fingerprint, found, bytes) = match self.entries.get(name) {
            None => return Err(self.missing(name)),
            Some(Entry::Taken) => return Err(self.borrowed(name)),
            Some(Entry::Encoded(typed)) => (
                typed.fingerprint,
                typed.type_name.clone(),
                typed.bytes.clone(),
            ),
            Some(Entry::Value(stored)) => (
                stored.fingerprint(),
                stored.type_name().to_string(),
                Arc::new(stored.encode()?),
            ),
        };
        if fingerprint != codec::fingerprint::<T>() {
            return Err(self.mismatch(name, type_name::<T>(), &found));
        }
        codec::decode(&bytes)
    }

    /// The type fingerprint of the value `name`, decoded or not (`None` if
    /// it is missing or lent out).
    pub(crate) fn fingerprint(&self, name: &str) -> Option<u64> {
        match self.entries.get(name)? {
            Entry::Value(stored) => Some(stored.fingerprint()),
            Entry::Encoded(typed) => Some(typed.fingerprint),
            Entry::Taken => None,
        }
    }

    /// Takes `name` out if it holds a decoded value of the type with
    /// `fingerprint` that nothing else holds (no task, no loan), so that its
    /// memory can be reused for the value about to replace it.
    pub(crate) fn take_unshared(
        &mut self,
        name: &str,
        fingerprint: u64,
    ) -> Option<Arc<dyn Stored>> {
        match self.entries.get_mut(name) {
            Some(Entry::Value(stored))
                if stored.fingerprint() == fingerprint && Arc::strong_count(stored) == 1 =>
            {
                match self.entries.remove(name) {
                    Some(Entry::Value(stored)) => Some(stored),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// `name` encoded for the wire, with its type.
    pub(crate) fn pull(&self, name: &str) -> Result<Typed> {
        match self.entries.get(name) {
            None => Err(self.missing(name)),
            Some(Entry::Taken) => Err(self.borrowed(name)),
            Some(Entry::Encoded(typed)) => Ok(typed.clone()),
            Some(Entry::Value(stored)) => Ok(Typed {
                fingerprint: stored.fingerprint(),
                type_name: stored.type_name().to_string(),
                bytes: Arc::new(stored.encode()?),
            }),
        }
    }

    /// Removes `name`; false if it was not there.
    pub(crate) fn remove(&mut self, name: &str) -> bool {
        self.entries.remove(name).is_some()
    }

    /// Every name, sorted.
    pub(crate) fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.entries.keys().cloned().collect();
        keys.sort();
        keys
    }

    /// Removes every name.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }
}

/// The engine's namespace, seen from inside a remote function (Python's
/// `globals()` on an ipyparallel engine).
///
/// Every method fails with [`Error::Usage`] when called outside a task running
/// on an engine.
///
/// # Examples
///
/// ```no_run
/// #[rankview::remote]
/// fn inc_a(increment: i64) -> rankview::TaskResult<i64> {
///     let mut a = rankview::globals().get_mut::<i64>("a")?;
///     *a += increment;
///     Ok(*a)
/// }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Globals {
    // The namespace belongs to the execution thread: keep the handle there.
    _thread_bound: PhantomData<*const ()>,
}

/// The namespace of the engine running the current task.
pub fn globals() -> Globals {
    Globals {
        _thread_bound: PhantomData,
    }
}

impl Globals {
    /// The id of the engine running the current task (its MPI rank minus
    /// one); [`Error::Usage`] outside a task.
    pub fn engine(&self) -> Result<usize> {
        with(|ns| Ok(ns.engine))
    }

    /// A shared, read-only handle to `name` (no copy of the value).
    pub fn get<T: Value>(&self, name: &str) -> Result<Shared<T>> {
        with(|ns| ns.get::<T>(name)).map(Shared)
    }

    /// Exclusive access to `name`; the value goes back when the guard drops.
    pub fn get_mut<T: Value>(&self, name: &str) -> Result<Exclusive<T>> {
        let value = with(|ns| ns.take::<T>(name))?;
        Ok(Exclusive {
            name: name.to_string(),
            value: Some(value),
            _thread_bound: PhantomData,
        })
    }

    /// Stores `value` under `name`, replacing any previous value.
    pub fn insert<T: Value>(&self, name: impl Into<String>, value: T) -> Result<()> {
        with(|ns| {
            ns.insert(name.into(), value);
            Ok(())
        })
    }

    /// Removes `name`; `Ok(false)` if it was not defined.
    pub fn remove(&self, name: &str) -> Result<bool> {
        with(|ns| Ok(ns.remove(name)))
    }

    /// True if `name` is defined.
    pub fn contains(&self, name: &str) -> Result<bool> {
        with(|ns| Ok(ns.entries.contains_key(name)))
    }

    /// Every defined name, sorted.
    pub fn keys(&self) -> Result<Vec<String>> {
        with(|ns| Ok(ns.keys()))
    }
}

/// A shared handle to a namespace value; derefs to the value in place.
#[derive(Debug)]
pub struct Shared<T>(Arc<T>);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(self.0.clone())
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Exclusive access to a namespace value; puts it back when dropped.
///
/// The value goes back into the namespace of the thread that drops the
/// guard, so the guard stays on the engine's execution thread: it is not
/// `Send` (like [`Globals`]). Move the value itself elsewhere if needed
/// (`std::mem::take(&mut *guard)`), not the guard.
///
/// ```compile_fail,E0277
/// #[rankview::remote]
/// fn leak() -> rankview::TaskResult<()> {
///     let guard = rankview::globals().get_mut::<i64>("a")?;
///     // Dropped on another thread, the guard could not put the value back.
///     std::thread::spawn(move || drop(guard));
///     Ok(())
/// }
/// ```
#[derive(Debug)]
pub struct Exclusive<T: Value> {
    name: String,
    /// `Some` from construction until `drop`.
    value: Option<T>,
    /// Dropped on the thread whose namespace holds the name.
    _thread_bound: PhantomData<*const ()>,
}

impl<T: Value> Deref for Exclusive<T> {
    type Target = T;
    fn deref(&self) -> &T {
        match &self.value {
            Some(value) => value,
            None => unreachable!("Exclusive holds its value until dropped"),
        }
    }
}

impl<T: Value> DerefMut for Exclusive<T> {
    fn deref_mut(&mut self) -> &mut T {
        match &mut self.value {
            Some(value) => value,
            None => unreachable!("Exclusive holds its value until dropped"),
        }
    }
}

impl<T: Value> Drop for Exclusive<T> {
    fn drop(&mut self) {
        if let Some(value) = self.value.take() {
            let name = std::mem::take(&mut self.name);
            let _ = with(move |ns| {
                ns.put_back(&name, value);
                Ok(())
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed<T: Value>(value: &T) -> Typed {
        Typed {
            fingerprint: codec::fingerprint::<T>(),
            type_name: type_name::<T>().into(),
            bytes: Arc::new(codec::encode(value).unwrap()),
        }
    }

    #[test]
    fn values_decode_lazily_and_check_types() {
        install(3);
        with(|ns| {
            ns.insert_typed("a".into(), typed(&5i64));
            Ok(())
        })
        .unwrap();
        let g = globals();
        match g.get::<f64>("a") {
            Err(Error::TypeMismatch {
                engine: 3,
                expected,
                found,
                ..
            }) => {
                assert_eq!(expected, "f64");
                assert_eq!(found, "i64");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(*g.get::<i64>("a").unwrap(), 5);
        assert!(matches!(
            g.get::<i64>("b"),
            Err(Error::NameError { engine: 3, .. })
        ));
    }

    #[test]
    fn get_mut_puts_back_and_refuses_while_shared() {
        install(0);
        let g = globals();
        g.insert("v", vec![1, 2, 3]).unwrap();
        {
            let mut v = g.get_mut::<Vec<i32>>("v").unwrap();
            v.push(4);
            assert!(matches!(
                g.get::<Vec<i32>>("v"),
                Err(Error::Borrowed { .. })
            ));
        }
        let shared = g.get::<Vec<i32>>("v").unwrap();
        assert_eq!(*shared, vec![1, 2, 3, 4]);
        assert!(matches!(
            g.get_mut::<Vec<i32>>("v"),
            Err(Error::Borrowed { .. })
        ));
        drop(shared);
        assert!(g.get_mut::<Vec<i32>>("v").is_ok());
        assert_eq!(g.keys().unwrap(), vec!["v".to_string()]);
        assert!(g.remove("v").unwrap());
        assert!(!g.contains("v").unwrap());
    }

    #[test]
    fn globals_outside_an_engine_is_a_usage_error() {
        std::thread::spawn(|| {
            assert!(matches!(globals().keys(), Err(Error::Usage(_))));
        })
        .join()
        .unwrap();
    }
}
