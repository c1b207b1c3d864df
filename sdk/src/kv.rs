//! The app's key-value store: state shared between channels, sockets and
//! plugins, that outlives them all (chat history, game boards, bans).
//!
//! Keys are namespaced per app by the host: every plugin of an app sees the
//! same keys, which is how the demo's plugins share state (the socket
//! plugin writes `users:<id>`, the admin channel reads it). Keys only one
//! plugin uses belong in its own namespace: [`plugin_scope!`] gives a
//! [`Scope`] that prefixes every key with the plugin's package name and a
//! slash (`poll/votes:1`), so two plugins never trip over each other's
//! keys and nobody prefixes keys by hand. It is a namespace, not a wall:
//! plugins of one app trust each other (tenants are the isolation
//! boundary), and a shared key can still be read by naming it in full.
//!
//! Values are text, JSON by convention: [`get_json`] and [`set_json`] do
//! the encoding. Every write gives the key a new version, and versions only
//! grow, so [`compare_and_swap`] on a version is safe against lost updates.
//! [`get_json_versioned`] reads a value with the version to swap against,
//! and [`try_update_json`] wraps the whole read-modify-write loop and says
//! how it ended: written (after how many retries), or why not.
//!
//! ```no_run
//! use plume_sdk::kv;
//!
//! let visits = kv::increment("visits:room:lobby", 1, None)?;
//! kv::set_json("last_visit:room:lobby", &plume_sdk::clock::now_ms(), None)?;
//!
//! // This plugin's own keys: stored as `<package name>/drafts:42`.
//! let mine = plume_sdk::kv::plugin_scope!();
//! mine.set("drafts:42", "hello", None)?;
//! # Ok::<(), kv::KvError>(())
//! ```

use std::borrow::Cow;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::clock::millis;
use crate::imports::kv as wit;
use crate::payload::encode;

/// How many times [`try_update_json`] tries when other writers keep
/// winning. Each lost race means another write landed, so reaching it
/// means the key is written faster than this plugin can read it.
const UPDATE_ATTEMPTS: u32 = 64;

/// What separates a [`Scope`]'s name from the keys in it.
const SCOPE_SEPARATOR: char = '/';

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

/// A decoded JSON value and the version it was read at, from
/// [`get_json_versioned`]: pass `version` to [`compare_and_swap`] to write
/// only if nobody wrote the key since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    /// The value, decoded.
    pub value: T,
    /// The key's version when it was read.
    pub version: u64,
}

/// A write [`try_update_json`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Updated<T> {
    /// What was written.
    pub value: T,
    /// The version the write gave the key.
    pub version: u64,
    /// How many times another write landed between the read and the
    /// compare-and-swap, so the change ran again on the newer value.
    pub retries: u32,
}

/// Why [`try_update_json`] wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError<R> {
    /// The change declined, for this reason (the plugin's own type: "the
    /// poll is closed", "no such game").
    #[error("the change was declined")]
    Declined(R),
    /// Other writers won the race every time.
    #[error("{attempts} writes to {key:?} lost the race to other writers; retry later")]
    Conflict {
        /// The key updated.
        key: String,
        /// How many times the change ran.
        attempts: u32,
    },
    /// The store failed, or the value under the key is not the JSON the
    /// change expects ([`KvError::Decode`]).
    #[error(transparent)]
    Kv(#[from] KvError),
}

/// A set of keys: the app's shared keys ([`Scope::shared`], what the
/// module's functions use) or one plugin's own ([`plugin_scope!`],
/// [`Scope::named`]). Every operation of the module is here too, with keys
/// relative to the scope.
///
/// ```no_run
/// use plume_sdk::kv::Scope;
///
/// let votes = Scope::named("poll")?;
/// votes.increment("tally:lunch", 1, None)?; // the key `poll/tally:lunch`
/// # Ok::<(), plume_sdk::kv::KvError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// Put before every key: empty, or the name and the separator.
    prefix: Cow<'static, str>,
}

/// This plugin's own [`Scope`], named after its package (`CARGO_PKG_NAME`
/// of the crate that uses the macro): keys `<package>/<key>`.
///
/// ```no_run
/// let scope = plume_sdk::kv::plugin_scope!();
/// scope.set("greeting", "hi", None)?;
/// # Ok::<(), plume_sdk::kv::KvError>(())
/// ```
#[macro_export]
macro_rules! plugin_scope {
    () => {
        $crate::kv::Scope::package(env!("CARGO_PKG_NAME"))
    };
}

pub use crate::plugin_scope;

impl Scope {
    /// The app's shared keys, as written: the scope of the module's free
    /// functions.
    pub const fn shared() -> Scope {
        Scope {
            prefix: Cow::Borrowed(""),
        }
    }

    /// The keys under `name/`. `name` must be non-empty and contain no `/`,
    /// so two scopes never overlap.
    pub fn named(name: &str) -> Result<Scope, KvError> {
        if name.is_empty() || name.contains(SCOPE_SEPARATOR) {
            return Err(KvError::InvalidKey(format!(
                "a scope name is not empty and has no {SCOPE_SEPARATOR:?}; {name:?} is not one"
            )));
        }
        Ok(Scope {
            prefix: Cow::Owned(format!("{name}{SCOPE_SEPARATOR}")),
        })
    }

    /// The scope of package `name`, for [`plugin_scope!`]. A package name
    /// never holds a `/`.
    #[doc(hidden)]
    pub fn package(name: &'static str) -> Scope {
        Scope {
            prefix: Cow::Owned(format!("{name}{SCOPE_SEPARATOR}")),
        }
    }

    /// The key as the store knows it: `key` under this scope.
    pub fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The entry under `key`, if any. See [`get`].
    pub fn get(&self, key: &str) -> Result<Option<Entry>, KvError> {
        Ok(wit::get(&self.key(key))?.map(Entry::from))
    }

    /// Write `value` under `key`. See [`set`].
    pub fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<u64, KvError> {
        Ok(wit::set(&self.key(key), value, ttl.map(millis))?)
    }

    /// Delete `key`. See [`delete`].
    pub fn delete(&self, key: &str) -> Result<bool, KvError> {
        Ok(wit::delete(&self.key(key))?)
    }

    /// Write `value` only if `key`'s version is still `expected`. See
    /// [`compare_and_swap`].
    pub fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<u64>,
        value: &str,
        ttl: Option<Duration>,
    ) -> Result<Option<u64>, KvError> {
        Ok(wit::compare_and_swap(&self.key(key), expected, value, ttl.map(millis))?)
    }

    /// Add `delta` to the integer under `key`. See [`increment`].
    pub fn increment(&self, key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64, KvError> {
        Ok(wit::increment(&self.key(key), delta, ttl.map(millis))?)
    }

    /// The keys of this scope starting with `prefix`, relative to the
    /// scope. See [`list_by_prefix`].
    pub fn list_by_prefix(&self, prefix: &str, limit: u32) -> Result<Vec<(String, Entry)>, KvError> {
        Ok(wit::list_by_prefix(&self.key(prefix), limit)?
            .into_iter()
            .map(|(key, entry)| {
                let key = key.strip_prefix(&*self.prefix).map_or_else(|| key.clone(), str::to_owned);
                (key, entry.into())
            })
            .collect())
    }

    /// The JSON value under `key`. See [`get_json`].
    pub fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, KvError> {
        Ok(self.get_json_versioned(key)?.map(|read| read.value))
    }

    /// The JSON value under `key` and its version. See
    /// [`get_json_versioned`].
    pub fn get_json_versioned<T: DeserializeOwned>(&self, key: &str) -> Result<Option<Versioned<T>>, KvError> {
        self.get(key)?
            .map(|entry| {
                Ok(Versioned {
                    value: decode(&self.key(key), &entry.value)?,
                    version: entry.version,
                })
            })
            .transpose()
    }

    /// Write `value` as JSON under `key`. See [`set_json`].
    pub fn set_json<T: Serialize + ?Sized>(&self, key: &str, value: &T, ttl: Option<Duration>) -> Result<u64, KvError> {
        self.set(key, &encode(value)?, ttl)
    }

    /// Read-modify-write the JSON value under `key`, saying how it ended.
    /// See [`try_update_json`].
    pub fn try_update_json<T, R, F>(&self, key: &str, ttl: Option<Duration>, mut change: F) -> Result<Updated<T>, UpdateError<R>>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(Option<T>) -> Result<T, R>,
    {
        for attempt in 0..UPDATE_ATTEMPTS {
            let current = self.get_json_versioned::<T>(key)?;
            let version = current.as_ref().map(|read| read.version);
            let new = change(current.map(|read| read.value)).map_err(UpdateError::Declined)?;
            let text = encode(&new).map_err(KvError::from)?;
            if let Some(version) = self.compare_and_swap(key, version, &text, ttl)? {
                return Ok(Updated {
                    value: new,
                    version,
                    retries: attempt,
                });
            }
        }
        Err(UpdateError::Conflict {
            key: self.key(key),
            attempts: UPDATE_ATTEMPTS,
        })
    }

    /// Read-modify-write the JSON value under `key`; `None` when the change
    /// declined. See [`update_json`].
    pub fn update_json<T, F>(&self, key: &str, ttl: Option<Duration>, mut change: F) -> Result<Option<T>, KvError>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(Option<T>) -> Option<T>,
    {
        match self.try_update_json(key, ttl, |current| change(current).ok_or(())) {
            Ok(updated) => Ok(Some(updated.value)),
            Err(UpdateError::Declined(())) => Ok(None),
            Err(UpdateError::Conflict { key, .. }) => Err(KvError::Contended(key)),
            Err(UpdateError::Kv(error)) => Err(error),
        }
    }
}

/// The entry under `key`, if any.
///
/// ```no_run
/// let banned = plume_sdk::kv::get("banned:42")?.is_some();
/// # Ok::<(), plume_sdk::kv::KvError>(())
/// ```
pub fn get(key: &str) -> Result<Option<Entry>, KvError> {
    Scope::shared().get(key)
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
    Scope::shared().set(key, value, ttl)
}

/// Delete `key`; returns whether it existed.
///
/// ```no_run
/// let was_banned = plume_sdk::kv::delete("banned:42")?;
/// # Ok::<(), plume_sdk::kv::KvError>(())
/// ```
pub fn delete(key: &str) -> Result<bool, KvError> {
    Scope::shared().delete(key)
}

/// Write `value` only if the key's version is still `expected` (`None`:
/// only if the key is absent). `Some(version)` when written, `None` when
/// another write came first: read again and retry, or use
/// [`try_update_json`].
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
    Scope::shared().compare_and_swap(key, expected, value, ttl)
}

/// Add `delta` to the integer under `key` (an absent key counts as 0) and
/// return the sum, atomically.
///
/// ```no_run
/// let id = plume_sdk::kv::increment("chat:lobby:next_id", 1, None)?;
/// # Ok::<(), plume_sdk::kv::KvError>(())
/// ```
pub fn increment(key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64, KvError> {
    Scope::shared().increment(key, delta, ttl)
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
    Scope::shared().list_by_prefix(prefix, limit)
}

/// The JSON value under `key`, decoded into `T`. To write it back safely,
/// read it with [`get_json_versioned`] instead.
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
    Scope::shared().get_json(key)
}

/// The JSON value under `key`, decoded into `T`, with the version it was
/// read at: the version [`compare_and_swap`] needs to write it back only if
/// nobody wrote in between.
///
/// ```no_run
/// use plume_sdk::kv::{self, Versioned};
///
/// if let Some(Versioned { value: mut votes, version }) = kv::get_json_versioned::<Vec<u64>>("poll:1:voters")? {
///     votes.push(42);
///     let written = kv::compare_and_swap("poll:1:voters", Some(version), &serde_json::to_string(&votes)?, None)?;
///     if written.is_none() {
///         // Someone voted in between: read again, or give up.
///     }
/// }
/// # Ok::<(), kv::KvError>(())
/// ```
pub fn get_json_versioned<T: DeserializeOwned>(key: &str) -> Result<Option<Versioned<T>>, KvError> {
    Scope::shared().get_json_versioned(key)
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
    Scope::shared().set_json(key, value, ttl)
}

/// Read-modify-write the JSON value under `key`, atomically, and say how it
/// ended. `change` gets the current value (`None` when absent) and returns
/// the new one, or `Err(reason)` to write nothing. When another write lands
/// in between, `change` runs again on the newer value, so it must not have
/// side effects.
///
/// `Ok` holds what was written, its version and how many retries it took;
/// [`UpdateError`] says why nothing was: the change's own reason
/// ([`Declined`](UpdateError::Declined)), too many lost races
/// ([`Conflict`](UpdateError::Conflict)), or the store
/// ([`Kv`](UpdateError::Kv), a value that does not decode included).
///
/// ```no_run
/// use plume_sdk::kv::{self, UpdateError};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Poll {
///     open: bool,
///     voters: Vec<u64>,
/// }
///
/// enum Refused {
///     NoSuchPoll,
///     Closed,
///     AlreadyVoted,
/// }
///
/// let voted = kv::try_update_json("poll:1", None, |poll: Option<Poll>| {
///     let mut poll = poll.ok_or(Refused::NoSuchPoll)?;
///     if !poll.open {
///         return Err(Refused::Closed);
///     }
///     if poll.voters.contains(&42) {
///         return Err(Refused::AlreadyVoted);
///     }
///     poll.voters.push(42);
///     Ok(poll)
/// });
/// let reason = match voted {
///     Ok(updated) => format!("counted after {} retries", updated.retries),
///     Err(UpdateError::Declined(Refused::NoSuchPoll)) => "no such poll".into(),
///     Err(UpdateError::Declined(Refused::Closed)) => "the poll is closed".into(),
///     Err(UpdateError::Declined(Refused::AlreadyVoted)) => "you already voted".into(),
///     Err(other) => other.to_string(),
/// };
/// ```
pub fn try_update_json<T, R, F>(key: &str, ttl: Option<Duration>, change: F) -> Result<Updated<T>, UpdateError<R>>
where
    T: Serialize + DeserializeOwned,
    F: FnMut(Option<T>) -> Result<T, R>,
{
    Scope::shared().try_update_json(key, ttl, change)
}

/// [`try_update_json`] for a change that needs no reason: `None` declines.
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
    change: F,
) -> Result<Option<T>, KvError>
where
    T: Serialize + DeserializeOwned,
    F: FnMut(Option<T>) -> Option<T>,
{
    Scope::shared().update_json(key, ttl, change)
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
