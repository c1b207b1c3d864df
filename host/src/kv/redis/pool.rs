//! Connections to the Redis server (or Redis Cluster), shared by the
//! threads that call the engine.
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
//!
//! A Redis Cluster (`redis+cluster://host:port,host:port`) is reached
//! through redis-rs's cluster connection, which routes each script to the
//! node owning its namespace's slot. Its own retries are off: it would send
//! a command again after a timeout, and a write must not go twice. A
//! `MOVED` answer (the slot has moved; nothing ran) is the one failure sent
//! again, on a fresh connection that reads the new slot map. While a
//! namespace's slot is being migrated, its scripts fail (`ASK`, `TRYAGAIN`:
//! its keys may be split between two nodes) until the migration ends.

use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::cluster::{ClusterClient, ClusterConnection};
use redis::{Client, Connection, ConnectionLike, ErrorKind, RedisError, RedisResult, ServerErrorKind};

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

/// The URL scheme of a Redis Cluster: its nodes, comma-separated.
const CLUSTER_SCHEME: &str = "redis+cluster://";

/// The connections to one Redis, or one Redis Cluster.
pub(super) struct Pool {
    target: Target,
    /// The URL with any password hidden, for every message.
    url: String,
    idle: Mutex<Vec<Idle>>,
    outage: Mutex<Option<Outage>>,
}

enum Target {
    Server(Client),
    Cluster(Box<ClusterClient>),
}

/// An open connection: to the server, or to every master of the cluster.
enum Link {
    Server(Connection),
    Cluster(Box<ClusterConnection>),
}

impl Link {
    fn commands(&mut self) -> &mut dyn ConnectionLike {
        match self {
            Link::Server(connection) => connection,
            Link::Cluster(connection) => &mut **connection,
        }
    }
}

struct Idle {
    link: Link,
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
        let target = match cluster_nodes(url) {
            Some(nodes) => ClusterClient::builder(nodes)
                .connection_timeout(CONNECT_TIMEOUT)
                .response_timeout(IO_TIMEOUT)
                .retries(0)
                .build()
                .map(|client| Target::Cluster(Box::new(client))),
            None => Client::open(url).map(Target::Server),
        }
        .map_err(|e| {
            KvError::Unavailable(format!(
                "redis at {shown}: {e} (the URL looks like redis://host:6379, redis://:password@host:6379/0, or redis+cluster://host:7000,host:7001 for a Redis Cluster; TLS, rediss://, is not supported)"
            ))
        })?;
        Ok(Pool {
            target,
            url: shown,
            idle: Mutex::default(),
            outage: Mutex::default(),
        })
    }

    /// The INFO text of every server: the one server, or each master of
    /// the cluster, each with its name.
    pub(super) fn infos(&self) -> Result<Vec<(String, String)>, KvError> {
        self.run_link(Retry::Idempotent, |link| match link {
            Link::Server(connection) => Ok(vec![(self.url.clone(), redis::cmd("INFO").query(connection)?)]),
            Link::Cluster(connection) => redis::cmd("INFO").query(&mut **connection),
        })
    }

    /// Run `call` on a connection. A failure is `KvError::Unavailable`
    /// naming the URL; an idempotent call that failed on a connection that
    /// had been idle is tried once more on a fresh one, and so is any call
    /// a cluster node answered with `MOVED`.
    pub(super) fn run<T>(&self, retry: Retry, call: impl Fn(&mut dyn ConnectionLike) -> RedisResult<T>) -> Result<T, KvError> {
        self.run_link(retry, |link| call(link.commands()))
    }

    fn run_link<T>(&self, retry: Retry, call: impl Fn(&mut Link) -> RedisResult<T>) -> Result<T, KvError> {
        let (mut link, reused) = self.take(retry)?;
        let error = match call(&mut link) {
            Ok(value) => {
                self.give_back(link);
                return Ok(value);
            }
            Err(error) => error,
        };
        let again = if error.kind() == ErrorKind::Server(ServerErrorKind::Moved) {
            // Nothing ran; every idle connection has the old slot map.
            true
        } else if replied(&error) {
            // The server answered with an error: the connection is in
            // step and stays in use.
            self.give_back(link);
            return Err(self.unavailable(&error));
        } else {
            reused && retry == Retry::Idempotent
        };
        drop(link);
        self.idle.lock().clear();
        if !again {
            return Err(self.unavailable(&error));
        }
        let mut fresh = self.connect()?;
        let value = call(&mut fresh).map_err(|error| self.unavailable(&error))?;
        self.give_back(fresh);
        Ok(value)
    }

    /// An idle connection, or a new one; says whether it was idle.
    fn take(&self, retry: Retry) -> Result<(Link, bool), KvError> {
        loop {
            let Some(idle) = self.idle.lock().pop() else {
                return Ok((self.connect()?, false));
            };
            let mut link = idle.link;
            if retry == Retry::Never && idle.since.elapsed() > IDLE_CHECK && !link.commands().check_connection() {
                // Redis closed it; the others waited as long or longer.
                self.idle.lock().clear();
                continue;
            }
            return Ok((link, true));
        }
    }

    fn give_back(&self, mut link: Link) {
        let mut idle = self.idle.lock();
        if idle.len() < MAX_IDLE && link.commands().is_open() {
            idle.push(Idle {
                link,
                since: Instant::now(),
            });
        }
    }

    /// Open a connection with timeouts, unless Redis was unreachable a
    /// moment ago.
    fn connect(&self) -> Result<Link, KvError> {
        if let Some(outage) = &*self.outage.lock()
            && Instant::now() < outage.retry_at
        {
            return Err(KvError::Unavailable(format!(
                "redis at {}: cannot connect: {} (retrying)",
                self.url, outage.error
            )));
        }
        match self.open_link() {
            Ok(link) => {
                if self.outage.lock().take().is_some() {
                    tracing::info!(url = %self.url, "the key-value store reaches Redis again");
                }
                Ok(link)
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

    fn open_link(&self) -> RedisResult<Link> {
        match &self.target {
            Target::Server(client) => {
                let connection = client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
                connection.set_read_timeout(Some(IO_TIMEOUT))?;
                connection.set_write_timeout(Some(IO_TIMEOUT))?;
                Ok(Link::Server(connection))
            }
            Target::Cluster(client) => Ok(Link::Cluster(Box::new(client.get_connection()?))),
        }
    }

    fn unavailable(&self, error: &RedisError) -> KvError {
        KvError::Unavailable(format!("redis at {}: {error}", self.url))
    }
}

/// Whether the whole answer was read (the server's error, or a reply of
/// another shape than expected): the connection is still in step. Anything
/// else is a broken or timed-out connection, or a reply cut short.
fn replied(error: &RedisError) -> bool {
    matches!(
        error.kind(),
        ErrorKind::Server(_) | ErrorKind::Extension | ErrorKind::UnexpectedReturnType
    )
}

/// The node URLs of a `redis+cluster://[user:password@]host:port,host:port`
/// URL (each `redis://[user:password@]host:port`), or `None` for any other.
fn cluster_nodes(url: &str) -> Option<Vec<String>> {
    let rest = url.strip_prefix(CLUSTER_SCHEME)?;
    let (user_info, hosts) = match rest.rsplit_once('@') {
        Some((user_info, hosts)) => (format!("{user_info}@"), hosts),
        None => (String::new(), rest),
    };
    Some(
        hosts
            .trim_end_matches('/')
            .split(',')
            .map(|host| format!("redis://{user_info}{}", host.trim()))
            .collect(),
    )
}

/// `url` with its password replaced by `***`, for messages and logs.
pub(crate) fn redacted(url: &str) -> String {
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
        assert_eq!(redacted("redis+cluster://:s3cret@a:7000,b:7001"), "redis+cluster://:***@a:7000,b:7001");
    }

    #[test]
    fn a_cluster_url_names_each_node() {
        assert_eq!(
            cluster_nodes("redis+cluster://a:7000, b:7001/"),
            Some(vec!["redis://a:7000".into(), "redis://b:7001".into()])
        );
        assert_eq!(
            cluster_nodes("redis+cluster://plume:pw@a:7000,b:7001"),
            Some(vec!["redis://plume:pw@a:7000".into(), "redis://plume:pw@b:7001".into()])
        );
        assert_eq!(cluster_nodes("redis://a:6379"), None);
    }
}
