//! The key-value store plugins share state through.
//!
//! A plugin instance keeps nothing between calls, so state shared by several
//! channels (a game board, a chat history, a ban list) lives here. Every
//! write stamps the key with a new version from one counter that only grows;
//! compare-and-swap on a version is therefore immune to ABA: a key deleted
//! and written again never gets an old version back.
//!
//! Each app has its own namespace ([`Kv`]); an engine ([`KvEngine`]) holds
//! every namespace. The in-memory engine is the default; the redb engine
//! keeps the store in a file so it outlives a restart; the Redis engine
//! keeps it in a Redis server, where several plume nodes share it (`[kv]` in
//! plume.toml chooses, see [`open`]).

#[cfg(test)]
mod conformance;
mod memory;
mod redb;
mod redis;
/// The tests' `redis-server`, shared with the end-to-end tests (whose
/// helpers these unit tests do not all use).
#[cfg(test)]
#[allow(dead_code)]
#[path = "../../../tests/support/redis.rs"]
mod test_redis;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use self::memory::MemoryEngine;
pub use self::redb::RedbEngine;
pub use self::redis::RedisEngine;
pub(crate) use self::redis::redacted as redacted_url;

/// A stored value and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub value: String,
    pub version: u64,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum KvError {
    #[error("invalid key: {0}")]
    InvalidKey(String),
    #[error("the stored value is not an integer")]
    NotANumber,
    #[error("quota exceeded: {0}")]
    Quota(String),
    #[error("key-value engine unavailable: {0}")]
    Unavailable(String),
}

/// Longest key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// A storage engine holding every app's namespace. All operations on one
/// key are atomic with respect to each other.
pub trait KvEngine: Send + Sync {
    fn get(&self, ns: &str, key: &str) -> Result<Option<Entry>, KvError>;
    fn set(&self, ns: &str, key: &str, value: String, ttl: Option<Duration>)
    -> Result<u64, KvError>;
    fn delete(&self, ns: &str, key: &str) -> Result<bool, KvError>;
    /// Write only if the current version is `expected` (`None`: absent).
    /// `Ok(None)` when the version differs.
    fn compare_and_swap(
        &self,
        ns: &str,
        key: &str,
        expected: Option<u64>,
        value: String,
        ttl: Option<Duration>,
    ) -> Result<Option<u64>, KvError>;
    fn increment(
        &self,
        ns: &str,
        key: &str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> Result<i64, KvError>;
    fn list_by_prefix(
        &self,
        ns: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<(String, Entry)>, KvError>;

    /// Remove expired keys; engines that expire keys themselves do nothing.
    fn sweep(&self) -> usize {
        0
    }

    /// The live keys of a namespace and their bytes (keys and values). By
    /// default a scan; engines that can do better override it.
    fn usage(&self, ns: &str) -> Result<Usage, KvError> {
        let entries = self.list_by_prefix(ns, "", usize::MAX)?;
        Ok(Usage {
            keys: entries.len() as u64,
            bytes: entries.iter().map(|(key, e)| (key.len() + e.value.len()) as u64).sum(),
        })
    }
}

/// What a namespace holds, for its quota.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub keys: u64,
    pub bytes: u64,
}

/// The most a namespace may hold: `max_kv_keys` and `max_kv_bytes`.
#[derive(Debug, Clone, Copy)]
pub struct Quota {
    pub max_keys: u64,
    pub max_bytes: u64,
}

/// Which engine holds the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engine {
    /// In this process only: gone when it exits.
    Memory,
    /// In a redb file at this path: every acknowledged write is on disk.
    Redb(PathBuf),
    /// In the Redis server at this URL, shared by every node using it.
    Redis(String),
}

/// `increment`'s arithmetic, the same for every engine: the stored value
/// (none counts as 0) as an integer, plus `delta`.
pub(crate) fn incremented(stored: Option<&str>, delta: i64) -> Result<i64, KvError> {
    let old = match stored {
        Some(value) => value.trim().parse::<i64>().map_err(|_| KvError::NotANumber)?,
        None => 0,
    };
    old.checked_add(delta).ok_or_else(sum_overflow)
}

/// `increment`'s error when the sum does not fit in an `i64`.
pub(crate) fn sum_overflow() -> KvError {
    KvError::Quota("the sum does not fit in 64 bits".into())
}

/// Open the engine `engine` names. Fails with what to do when the file or
/// the server cannot hold the store.
pub fn open(engine: &Engine) -> Result<Arc<dyn KvEngine>, KvError> {
    Ok(match engine {
        Engine::Memory => Arc::new(MemoryEngine::default()),
        Engine::Redb(path) => Arc::new(RedbEngine::open(path)?),
        Engine::Redis(url) => Arc::new(RedisEngine::open(url)?),
    })
}

/// One app's view of the store: every key is in the app's namespace, so a
/// plugin cannot name another app's keys.
#[derive(Clone)]
pub struct Kv {
    engine: Arc<dyn KvEngine>,
    namespace: Arc<str>,
    quota: Option<Quota>,
}

impl Kv {
    pub fn new(engine: Arc<dyn KvEngine>, namespace: &str) -> Kv {
        Kv {
            engine,
            namespace: namespace.into(),
            quota: None,
        }
    }

    /// The same namespace and quota over the engine `wrap` makes of this
    /// one's: how plume-test puts its race referee in front of the store.
    pub fn wrap_engine(self, wrap: impl FnOnce(Arc<dyn KvEngine>) -> Arc<dyn KvEngine>) -> Kv {
        Kv {
            engine: wrap(self.engine),
            ..self
        }
    }

    /// The same namespace, refusing writes past `quota` with
    /// [`KvError::Quota`].
    pub fn with_quota(self, quota: Quota) -> Kv {
        Kv {
            quota: Some(quota),
            ..self
        }
    }

    /// Refuse a write of `value_bytes` to `key` that would take the
    /// namespace past its quota. Only a write that adds a key or grows a
    /// value pays for the usage count; concurrent writers may overshoot by
    /// the few writes in flight.
    fn check_quota(&self, key: &str, value_bytes: usize) -> Result<(), KvError> {
        let Some(quota) = self.quota else {
            return Ok(());
        };
        let old = self.engine.get(&self.namespace, key)?.map(|e| (key.len() + e.value.len()) as u64);
        let new = (key.len() + value_bytes) as u64;
        if old.is_some_and(|old| new <= old) {
            return Ok(());
        }
        let usage = self.engine.usage(&self.namespace)?;
        if old.is_none() && usage.keys >= quota.max_keys {
            return Err(KvError::Quota(format!(
                "this app may keep at most {} keys (max_kv_keys); delete some first",
                quota.max_keys
            )));
        }
        if usage.bytes - old.unwrap_or(0).min(usage.bytes) + new > quota.max_bytes {
            return Err(KvError::Quota(format!(
                "this app may keep at most {} bytes of keys and values (max_kv_bytes); it holds {}",
                quota.max_bytes, usage.bytes
            )));
        }
        Ok(())
    }

    fn check(key: &str) -> Result<(), KvError> {
        if key.is_empty() {
            return Err(KvError::InvalidKey("a key must not be empty".into()));
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(KvError::InvalidKey(format!(
                "a key is at most {MAX_KEY_BYTES} bytes, this one has {}",
                key.len()
            )));
        }
        Ok(())
    }

    pub fn get(&self, key: &str) -> Result<Option<Entry>, KvError> {
        Self::check(key)?;
        self.engine.get(&self.namespace, key)
    }

    pub fn set(&self, key: &str, value: String, ttl: Option<Duration>) -> Result<u64, KvError> {
        Self::check(key)?;
        self.check_quota(key, value.len())?;
        self.engine.set(&self.namespace, key, value, ttl)
    }

    pub fn delete(&self, key: &str) -> Result<bool, KvError> {
        Self::check(key)?;
        self.engine.delete(&self.namespace, key)
    }

    pub fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<u64>,
        value: String,
        ttl: Option<Duration>,
    ) -> Result<Option<u64>, KvError> {
        Self::check(key)?;
        self.check_quota(key, value.len())?;
        self.engine
            .compare_and_swap(&self.namespace, key, expected, value, ttl)
    }

    pub fn increment(&self, key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64, KvError> {
        Self::check(key)?;
        // The longest i64 in decimal.
        self.check_quota(key, 20)?;
        self.engine.increment(&self.namespace, key, delta, ttl)
    }

    /// Remove expired keys of every namespace (run periodically).
    pub fn sweep(&self) -> usize {
        self.engine.sweep()
    }

    pub fn list_by_prefix(&self, prefix: &str, limit: usize) -> Result<Vec<(String, Entry)>, KvError> {
        self.engine.list_by_prefix(&self.namespace, prefix, limit)
    }
}
