//! The app's key-value store: state shared between channels, sockets and
//! plugins, that outlives them all (chat history, game boards, bans).
//!
//! Keys are namespaced per app by the host. Values are text, JSON by
//! convention: [`get_json`] and [`set_json`] do the encoding. Every write
//! gives the key a new version, and versions only grow, so
//! [`compare_and_swap`] on a version is safe against lost updates;
//! [`update_json`] wraps the read-modify-write loop.
//!
//! ```no_run
//! use plume_sdk::kv;
//!
//! let visits = kv::increment("visits:room:lobby", 1, None)?;
//! kv::set_json("last_visit:room:lobby", &plume_sdk::clock::now_ms(), None)?;
//! # Ok::<(), kv::KvError>(())
//! ```

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::clock::millis;
use crate::imports::kv as wit;
use crate::payload::encode;

/// How many times [`update_json`] retries when other writers keep winning.
const UPDATE_ATTEMPTS: u32 = 64;

/// A stored value and its version.
///
/// ```no_run
/// if let Some(entry) = plume_sdk::kv::get("motd")? {
///     println!("{} (version {})", entry.value, entry.version);
/// }
/// # Ok::<(), plume_sdk::kv::KvError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The value, as written.
    pub value: String,
    /// The version the last write gave the key; pass it to
    /// [`compare_and_swap`].
    pub version: u64,
}

/// The entry under `key`, if any.
///
/// ```no_run
/// let banned = plume_sdk::kv::get("banned:42")?.is_some();
/// # Ok::<(), plume_sdk::kv::KvError>(())
/// ```
pub fn get(key: &str) -> Result<Option<Entry>, KvError> {
    Ok(wit::get(key)?.map(Entry::from))
}

/// Write `value` under `key`; `ttl` expires it (rounded down to
/// milliseconds). Returns the new version.
///
/// ```no_run
/// use std::time::Duration;
///
/// plume_sdk::kv::set("session:abc", "42", Some(Duration::from_secs(3600)))?;
/// # Ok::<(), plume_sdk::kv::KvError>(())
/// ```
pub fn set(key: &str, value: &str, ttl: Option<Duration>) -> Result<u64, KvError> {
    Ok(wit::set(key, value, ttl.map(millis))?)
}

/// Delete `key`; returns whether it existed.
///
/// ```no_run
/// let was_banned = plume_sdk::kv::delete("banned:42")?;
/// # Ok::<(), plume_sdk::kv::KvError>(())
/// ```
pub fn delete(key: &str) -> Result<bool, KvError> {
    Ok(wit::delete(key)?)
}

/// Write `value` only if the key's version is still `expected` (`None`:
/// only if the key is absent). `Some(version)` when written, `None` when
/// another write came first: read again and retry, or use [`update_json`].
///
/// ```no_run
/// use plume_sdk::kv;
///
/// // Claim the seat only if nobody has.
/// let claimed = kv::compare_and_swap("game:1:seat:x", None, "42", None)?.is_some();
/// # Ok::<(), kv::KvError>(())
/// ```
pub fn compare_and_swap(
    key: &str,
    expected: Option<u64>,
    value: &str,
    ttl: Option<Duration>,
) -> Result<Option<u64>, KvError> {
    Ok(wit::compare_and_swap(
        key,
        expected,
        value,
        ttl.map(millis),
    )?)
}

/// Add `delta` to the integer under `key` (an absent key counts as 0) and
/// return the sum, atomically.
///
/// ```no_run
/// let id = plume_sdk::kv::increment("chat:lobby:next_id", 1, None)?;
/// # Ok::<(), plume_sdk::kv::KvError>(())
/// ```
pub fn increment(key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64, KvError> {
    Ok(wit::increment(key, delta, ttl.map(millis))?)
}

/// The keys starting with `prefix`, in key order, at most `limit`, with
/// their entries.
///
/// ```no_run
/// for (key, entry) in plume_sdk::kv::list_by_prefix("chat:lobby:msg:", 50)? {
///     println!("{key}: {}", entry.value);
/// }
/// # Ok::<(), plume_sdk::kv::KvError>(())
/// ```
pub fn list_by_prefix(prefix: &str, limit: u32) -> Result<Vec<(String, Entry)>, KvError> {
    Ok(wit::list_by_prefix(prefix, limit)?
        .into_iter()
        .map(|(key, entry)| (key, entry.into()))
        .collect())
}

/// The JSON value under `key`, decoded into `T`.
///
/// ```no_run
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// struct Campaign {
///     goal: String,
/// }
///
/// let campaign: Option<Campaign> = plume_sdk::kv::get_json("campaign:1")?;
/// # Ok::<(), plume_sdk::kv::KvError>(())
/// ```
pub fn get_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>, KvError> {
    get(key)?.map(|entry| decode(key, &entry.value)).transpose()
}

/// Write `value` as JSON (object keys sorted) under `key`; returns the new
/// version.
///
/// ```no_run
/// use plume_sdk::{json, kv};
///
/// kv::set_json("campaign:1", &json!({"goal": "100.00", "total": "0.00"}), None)?;
/// # Ok::<(), kv::KvError>(())
/// ```
pub fn set_json<T: Serialize + ?Sized>(
    key: &str,
    value: &T,
    ttl: Option<Duration>,
) -> Result<u64, KvError> {
    set(key, &encode(value)?, ttl)
}

/// Read-modify-write the JSON value under `key`, atomically: `change` gets
/// the current value (`None` when absent) and returns the new one, or
/// `None` to write nothing. When another write lands in between, `change`
/// runs again on the newer value, so it must not have side effects.
///
/// Returns what was written (`None` when `change` declined) or
/// [`KvError::Contended`] after many lost races.
///
/// ```no_run
/// use plume_sdk::kv;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Game {
///     players: Vec<u64>,
/// }
///
/// // Take a seat unless the game is full.
/// let game = kv::update_json("game:1", None, |game: Option<Game>| {
///     let mut game = game.unwrap_or(Game { players: vec![] });
///     (game.players.len() < 2).then(|| {
///         game.players.push(42);
///         game
///     })
/// })?;
/// let seated = game.is_some();
/// # Ok::<(), kv::KvError>(())
/// ```
pub fn update_json<T, F>(
    key: &str,
    ttl: Option<Duration>,
    mut change: F,
) -> Result<Option<T>, KvError>
where
    T: Serialize + DeserializeOwned,
    F: FnMut(Option<T>) -> Option<T>,
{
    for _ in 0..UPDATE_ATTEMPTS {
        let current = get(key)?;
        let version = current.as_ref().map(|entry| entry.version);
        let value = current.map(|entry| decode(key, &entry.value)).transpose()?;
        let Some(new) = change(value) else {
            return Ok(None);
        };
        if compare_and_swap(key, version, &encode(&new)?, ttl)?.is_some() {
            return Ok(Some(new));
        }
    }
    Err(KvError::Contended(key.to_owned()))
}

/// Why a key-value operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// The key is empty or too long.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// `increment` on a value that is not an integer.
    #[error("the value is not an integer; only keys written by increment can be incremented")]
    NotANumber,
    /// A quota of the app (bytes, keys) was reached.
    #[error("quota reached: {0}; delete keys or give them a ttl")]
    Quota(String),
    /// The store failed; the text says why.
    #[error("the key-value store is unavailable: {0}")]
    Unavailable(String),
    /// The app was not granted the `kv` capability; the text says how the
    /// operator grants it.
    #[error("not granted: {0}")]
    NotGranted(String),
    /// A value could not be encoded as JSON.
    #[error("the value cannot be encoded as JSON: {0}")]
    Encode(#[from] serde_json::Error),
    /// The value under a key is not the JSON the caller expected.
    #[error("the value under {key:?} does not have the expected shape: {source}")]
    Decode {
        /// The key read.
        key: String,
        /// What did not match.
        source: serde_json::Error,
    },
    /// [`update_json`] lost the race to other writers of the key every time.
    #[error("too many concurrent writes to {0:?}; retry later")]
    Contended(String),
}

impl From<wit::KvError> for KvError {
    fn from(error: wit::KvError) -> Self {
        match error {
            wit::KvError::InvalidKey(text) => Self::InvalidKey(text),
            wit::KvError::NotANumber => Self::NotANumber,
            wit::KvError::Quota(text) => Self::Quota(text),
            wit::KvError::Unavailable(text) => Self::Unavailable(text),
            wit::KvError::NotGranted(text) => Self::NotGranted(text),
        }
    }
}

impl From<wit::Entry> for Entry {
    fn from(entry: wit::Entry) -> Self {
        Self {
            value: entry.value,
            version: entry.version,
        }
    }
}

fn decode<T: DeserializeOwned>(key: &str, value: &str) -> Result<T, KvError> {
    serde_json::from_str(value).map_err(|source| KvError::Decode {
        key: key.to_owned(),
        source,
    })
}
