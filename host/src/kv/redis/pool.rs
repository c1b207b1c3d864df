//! Connections to the Redis server, shared by the threads that call the
//! engine.
//!
//! The engine is synchronous (plugin calls run on tokio worker threads and
//! wait for their store), so each call borrows one blocking connection for
//! its one round trip and gives it back: the lock is held only to take or
//! return a connection, never across a round trip. Connections open on
//! demand, so there are as many as there are calls at the same moment, and
//! at most [`MAX_IDLE`] wait between calls.
//!
//! Failures: every round trip has a timeout ([`IO_TIMEOUT`]); a connection
//! that failed is dropped, and with it every idle one (they went to the same
//! server, which most likely restarted or went away). A connection idle for
//! longer than [`IDLE_CHECK`] is checked with a PING before it carries a
//! write, so a write after a Redis restart finds a live connection instead
//! of failing on a dead one. When Redis cannot be reached, calls fail at
//! once for a short while ([`Outage`]), with the reason, instead of each
//! waiting [`CONNECT_TIMEOUT`]: the next attempt comes after a delay that
//! doubles up to [`MAX_BACKOFF`].

use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::{Client, Connection, ConnectionLike, ErrorKind, RedisError, RedisResult};

use crate::kv::KvError;

/// How long opening a connection may take: a Redis on the same network
/// answers in a millisecond; a second means it is not there.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long one round trip (a command or a script) may take. The scripts
/// touch a handful of keys (a purge at most a few hundred), well under a
/// millisecond; two seconds means Redis is stuck or gone, and a plugin
/// call should learn it rather than hang.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// Connections kept open between calls: enough for every tokio worker and
/// plugin call of a busy node at once; more are opened when needed and
/// closed after use.
const MAX_IDLE: usize = 32;

/// A connection idle longer than this is pinged before it carries a write.
/// Below it the connection was in use a moment ago; above it, Redis may
/// have restarted meanwhile, and a write must not be sent into a dead
/// socket (its failure would not say whether the write was applied).
pub(super) const IDLE_CHECK: Duration = Duration::from_secs(1);

/// The first wait after Redis could not be reached, doubling up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Whether a failed call may be sent again on a fresh connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Retry {
    /// A read, or a write whose repetition changes nothing.
    Idempotent,
    /// A write: a failure after sending it leaves unknown whether it was
    /// applied, so it is reported, never repeated.
    Never,
}

/// The connections to one Redis.
pub(super) struct Pool {
    client: Client,
    /// The URL with any password hidden, for every message.
    url: String,
    idle: Mutex<Vec<Idle>>,
    outage: Mutex<Option<Outage>>,
}

struct Idle {
    connection: Connection,
    since: Instant,
}

/// Redis could not be reached: calls fail at once until `retry_at`.
struct Outage {
    retry_at: Instant,
    backoff: Duration,
    error: String,
}

impl Pool {
    /// A pool for `url`; no connection is opened yet.
    pub(super) fn new(url: &str) -> Result<Pool, KvError> {
        let shown = redacted(url);
        let client = Client::open(url).map_err(|e| {
            KvError::Unavailable(format!(
                "redis at {shown}: {e} (the URL looks like redis://host:6379 or redis://:password@host:6379/0; TLS, rediss://, is not supported)"
            ))
        })?;
        Ok(Pool {
            client,
            url: shown,
            idle: Mutex::default(),
            outage: Mutex::default(),
        })
    }

    /// The URL, password hidden.
    pub(super) fn url(&self) -> &str {
        &self.url
    }

    /// Run `call` on a connection. A failure is `KvError::Unavailable`
    /// naming the URL; an idempotent call that failed on a connection that
    /// had been idle is tried once more on a fresh one.
    pub(super) fn run<T>(&self, retry: Retry, call: impl Fn(&mut Connection) -> RedisResult<T>) -> Result<T, KvError> {
        let (mut connection, reused) = self.take(retry)?;
        match call(&mut connection) {
            Ok(value) => {
                self.give_back(connection);
                Ok(value)
            }
            Err(error) if replied(&error) => {
                // The server answered with an error: the connection is in
                // step and stays in use.
                self.give_back(connection);
                Err(self.unavailable(&error))
            }
            Err(error) => {
                drop(connection);
                self.idle.lock().clear();
                if reused && retry == Retry::Idempotent {
                    let mut fresh = self.connect()?;
                    let value = call(&mut fresh).map_err(|error| self.unavailable(&error))?;
                    self.give_back(fresh);
                    return Ok(value);
                }
                Err(self.unavailable(&error))
            }
        }
    }

    /// An idle connection, or a new one; says whether it was idle.
    fn take(&self, retry: Retry) -> Result<(Connection, bool), KvError> {
        loop {
            let Some(idle) = self.idle.lock().pop() else {
                return Ok((self.connect()?, false));
            };
            let mut connection = idle.connection;
            if retry == Retry::Never && idle.since.elapsed() > IDLE_CHECK && !connection.check_connection() {
                // Redis closed it; the others waited as long or longer.
                self.idle.lock().clear();
                continue;
            }
            return Ok((connection, true));
        }
    }

    fn give_back(&self, connection: Connection) {
        let mut idle = self.idle.lock();
        if idle.len() < MAX_IDLE && connection.is_open() {
            idle.push(Idle {
                connection,
                since: Instant::now(),
            });
        }
    }

    /// Open a connection with timeouts, unless Redis was unreachable a
    /// moment ago.
    fn connect(&self) -> Result<Connection, KvError> {
        if let Some(outage) = &*self.outage.lock()
            && Instant::now() < outage.retry_at
        {
            return Err(KvError::Unavailable(format!(
                "redis at {}: cannot connect: {} (retrying)",
                self.url, outage.error
            )));
        }
        match self.open_connection() {
            Ok(connection) => {
                if self.outage.lock().take().is_some() {
                    tracing::info!(url = %self.url, "the key-value store reaches Redis again");
                }
                Ok(connection)
            }
            Err(error) => {
                let mut outage = self.outage.lock();
                let backoff = outage
                    .as_ref()
                    .map_or(FIRST_BACKOFF, |outage| (outage.backoff * 2).min(MAX_BACKOFF));
                if outage.is_none() {
                    tracing::warn!(url = %self.url, %error, "the key-value store cannot reach Redis; retrying with backoff");
                }
                *outage = Some(Outage {
                    retry_at: Instant::now() + backoff,
                    backoff,
                    error: error.to_string(),
                });
                Err(KvError::Unavailable(format!("redis at {}: cannot connect: {error}", self.url)))
            }
        }
    }

    fn open_connection(&self) -> RedisResult<Connection> {
        let connection = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        connection.set_read_timeout(Some(IO_TIMEOUT))?;
        connection.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(connection)
    }

    fn unavailable(&self, error: &RedisError) -> KvError {
        KvError::Unavailable(format!("redis at {}: {error}", self.url))
    }
}

/// Whether the error is the server's answer (the connection is still in
/// step), rather than a broken or timed-out connection or a reply that
/// could not be read.
fn replied(error: &RedisError) -> bool {
    matches!(error.kind(), ErrorKind::Server(_) | ErrorKind::Extension)
}

/// `url` with its password replaced by `***`, for messages and logs.
pub(super) fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split_once(':').map_or(user_info, |(user, _)| user);
            let hidden = if user_info.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{path}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_the_url_is_never_shown() {
        assert_eq!(redacted("redis://:s3cret@db:6379/0"), "redis://:***@db:6379/0");
        assert_eq!(redacted("redis://plume:s3cret@db:6379"), "redis://plume:***@db:6379");
        assert_eq!(redacted("redis://plume@db"), "redis://plume@db");
        assert_eq!(redacted("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redacted("not a url"), "not a url");
    }
}
