//! The Redis engine (`[kv] engine = "redis"`): the store several plume
//! nodes share, so a game, a donation total or a ban is the same whichever
//! node a user reached.
//!
//! # Layout
//!
//! Each namespace (an app) has five keys, all tagged `{ns}` so that on a
//! Redis Cluster the whole namespace sits in one slot and one script can
//! touch all of them:
//!
//! | key                      | type | holds                                      |
//! |--------------------------|------|--------------------------------------------|
//! | `plume:kv:{ns}:values`   | HASH | key → value                                |
//! | `plume:kv:{ns}:versions` | HASH | key → version                              |
//! | `plume:kv:{ns}:index`    | ZSET | every key at score 0, for `list_by_prefix` |
//! | `plume:kv:{ns}:expiries` | ZSET | key → expires-at (Unix ms, Redis's clock)  |
//! | `plume:kv:{ns}:counters` | HASH | `seq` (last version), `keys`, `bytes`      |
//!
//! and `plume:kv:namespaces` (a SET) names the namespaces, for the sweep
//! ([`KvEngine::sweep`]).
//! In the namespace, `}` and `%` are written `%7D` and `%25` (and the empty
//! name `%`), so that no namespace name can end the tag early, leave it
//! empty, or collide with another.
//!
//! # Why it works this way
//!
//! - **Lua scripts only** (`host/src/kv/redis/lua/`, sent as EVALSHA): each
//!   operation is one script, atomic on the server, one round trip. WATCH
//!   and MULTI would retry under contention (a game's two players write the
//!   same key) and break on shared connections; a script cannot.
//! - **Versions come from the namespace's counter**, bumped by every write:
//!   a key deleted and written again gets a new version, never an old one,
//!   so compare-and-swap has no ABA. The counter lives in Redis, so it goes
//!   on across plume restarts; it starts from Redis's clock in
//!   microseconds, so a namespace whose counters were lost (a flushed or
//!   evicted Redis) still never hands out a version again.
//! - **Expiry is an index, not Redis's EXPIRE**: a hash field cannot expire
//!   on Redis 7.0, and the index lets every script first remove what has
//!   expired (up to a batch) and hide the rest, so `get`, `list_by_prefix`
//!   and the quota never see an expired key, exactly as the other engines
//!   (expired means `expires-at <= now`). Time is Redis's, not the node's,
//!   so nodes with drifting clocks agree.
//! - **Usage is counted, not scanned**: every script keeps `keys` and
//!   `bytes` of the namespace in step, so the quota check before a write
//!   (the key's size, then the namespace's counts) costs two small scripts,
//!   however large the namespace.
//! - **Connections** ([`pool`]): blocking, one per concurrent call, with
//!   timeouts; a failure is [`KvError::Unavailable`] naming the URL, never a
//!   panic, and the next call reconnects. A write that fails after it was
//!   sent is reported, not repeated: it may have been applied, and an
//!   `increment` applied twice would be wrong.
//!
//! # Deployment
//!
//! Use a Redis of its own for the store, or at least one with
//! `maxmemory-policy noeviction`: an evicting Redis drops keys silently, and
//! a store must not. Plume warns at start-up when the policy evicts. Keep
//! persistence on (AOF) if the state must outlive a Redis restart. The
//! engine speaks to one Redis server (`redis://`), or to a Redis Cluster
//! (`redis+cluster://host:port,host:port`), where each namespace lives in
//! the slot of its tag: namespaces spread over the masters, and one
//! namespace's load stays on one master (see [`pool`] for slot moves).

mod pool;
pub(crate) use pool::redacted;

use std::collections::BTreeSet;
use std::time::Duration;

use parking_lot::Mutex;
use ::redis::{FromRedisValue, Script};

use self::pool::{Pool, Retry};
use super::{Entry, KvEngine, KvError, Usage};

/// Every key of the store starts with this.
const PREFIX: &str = "plume:kv:";

/// The SET naming every namespace, for the sweep.
const NAMESPACES: &str = "plume:kv:namespaces";

/// Expired keys one sweep script removes; a sweep runs scripts until a
/// namespace has none left, so one script never holds Redis for long (a
/// batch is a few milliseconds of work).
const SWEEP_BATCH: usize = 1_000;

/// The oldest Redis the scripts run on: `ZRANGE … BYLEX LIMIT` came in 6.2.
const MIN_VERSION: (u32, u32) = (6, 2);

/// The key-value store in a Redis server.
pub struct RedisEngine {
    pool: Pool,
    scripts: Scripts,
    /// Namespaces this process has named in [`NAMESPACES`].
    registered: Mutex<BTreeSet<String>>,
}

/// One script per operation, each after the shared prelude.
struct Scripts {
    get: Script,
    set: Script,
    compare_and_swap: Script,
    delete: Script,
    increment: Script,
    list_by_prefix: Script,
    usage: Script,
    purge: Script,
}

macro_rules! script {
    ($file:literal) => {
        Script::new(concat!(include_str!("redis/lua/prelude.lua"), include_str!(concat!("redis/lua/", $file))))
    };
}

impl Scripts {
    fn new() -> Scripts {
        Scripts {
            get: script!("get.lua"),
            set: script!("set.lua"),
            compare_and_swap: script!("compare_and_swap.lua"),
            delete: script!("delete.lua"),
            increment: script!("increment.lua"),
            list_by_prefix: script!("list_by_prefix.lua"),
            usage: script!("usage.lua"),
            purge: script!("purge.lua"),
        }
    }

    fn all(&self) -> [&Script; 8] {
        [
            &self.get,
            &self.set,
            &self.compare_and_swap,
            &self.delete,
            &self.increment,
            &self.list_by_prefix,
            &self.usage,
            &self.purge,
        ]
    }
}

impl RedisEngine {
    /// Connect to the Redis at `url` and check that it can hold the store:
    /// it answers, is recent enough and takes the scripts. Warns when its
    /// eviction policy could drop keys.
    pub fn open(url: &str) -> Result<RedisEngine, KvError> {
        let engine = RedisEngine {
            pool: Pool::new(url)?,
            scripts: Scripts::new(),
            registered: Mutex::default(),
        };
        for (server, info) in engine.pool.infos()? {
            let version = info_field(&info, "redis_version").unwrap_or("unknown");
            if !at_least(version, MIN_VERSION) {
                return Err(KvError::Unavailable(format!(
                    "redis at {server}: the key-value store needs Redis {}.{} or later, this is {version}",
                    MIN_VERSION.0, MIN_VERSION.1
                )));
            }
            if let Some(policy) = info_field(&info, "maxmemory_policy")
                && policy != "noeviction"
            {
                tracing::warn!(
                    %server,
                    policy,
                    "Redis may evict keys (maxmemory-policy is not noeviction): the key-value store can lose data; give it a Redis with maxmemory-policy noeviction"
                );
            }
        }
        engine.pool.run(Retry::Idempotent, |c| {
            engine.scripts.all().iter().try_for_each(|script| script.load(c).map(drop))
        })?;
        Ok(engine)
    }

    /// Run `script` on the namespace's keys with `args`, naming the
    /// namespace for the sweep first if this process has not yet.
    fn run<T: FromRedisValue>(&self, script: &Script, ns: &str, args: &[&str], retry: Retry) -> Result<T, KvError> {
        self.register(ns)?;
        self.invoke(script, ns, args, retry)
    }

    /// Run `script` on the namespace's keys with `args`.
    fn invoke<T: FromRedisValue>(&self, script: &Script, ns: &str, args: &[&str], retry: Retry) -> Result<T, KvError> {
        let mut invocation = script.prepare_invoke();
        for key in namespace_keys(ns) {
            invocation.key(key);
        }
        for arg in args {
            invocation.arg(*arg);
        }
        self.pool.run(retry, |c| invocation.invoke(c))
    }

    /// Name `ns` in [`NAMESPACES`], once per process.
    fn register(&self, ns: &str) -> Result<(), KvError> {
        if self.registered.lock().contains(ns) {
            return Ok(());
        }
        self.pool
            .run(Retry::Idempotent, |c| ::redis::cmd("SADD").arg(NAMESPACES).arg(ns).exec(c))?;
        self.registered.lock().insert(ns.to_owned());
        Ok(())
    }

    /// Remove the expired keys of every namespace; returns how many.
    fn sweep_expired(&self) -> Result<usize, KvError> {
        // Name again the namespaces this process uses, in case Redis lost
        // the set (a restart without persistence).
        let ours: Vec<String> = self.registered.lock().iter().cloned().collect();
        let namespaces: Vec<String> = self.pool.run(Retry::Idempotent, |c| {
            if !ours.is_empty() {
                ::redis::cmd("SADD").arg(NAMESPACES).arg(&ours).exec(c)?;
            }
            ::redis::cmd("SMEMBERS").arg(NAMESPACES).query(c)
        })?;
        let batch = SWEEP_BATCH.to_string();
        let mut removed = 0;
        for ns in &namespaces {
            loop {
                let purged: usize = self.invoke(&self.scripts.purge, ns, &[&batch], Retry::Idempotent)?;
                removed += purged;
                if purged < SWEEP_BATCH {
                    break;
                }
            }
        }
        Ok(removed)
    }
}

/// The five keys of a namespace, in the order the scripts read `KEYS`.
fn namespace_keys(ns: &str) -> [String; 5] {
    // `}` would end the tag, and an empty tag `{}` hashes the whole key (five
    // slots); `%` is escaped so that the escapes stay unambiguous, and the
    // empty name becomes a lone `%`, which no escaped name can be.
    let tag = match ns {
        "" => "%".to_owned(),
        ns => ns.replace('%', "%25").replace('}', "%7D"),
    };
    ["values", "versions", "index", "expiries", "counters"].map(|part| format!("{PREFIX}{{{tag}}}:{part}"))
}

/// A `field:value` line of an INFO reply.
fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .map(str::trim)
}

/// Whether a `major.minor.patch` version is at least `(major, minor)`.
fn at_least(version: &str, (major, minor): (u32, u32)) -> bool {
    let mut parts = version.split('.').map(|part| part.parse::<u32>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    found >= (major, minor)
}

/// A time to live as the scripts take it: milliseconds, or empty for none.
fn ttl_arg(ttl: Option<Duration>) -> String {
    ttl.map_or_else(String::new, |ttl| ttl.as_millis().min(u128::from(u64::MAX)).to_string())
}

/// A reply that is not what the script returns: Redis is not running
/// plume's script, or something else changed the keys.
fn unexpected(what: &str, reply: impl std::fmt::Debug) -> KvError {
    KvError::Unavailable(format!("redis answered {what} with {reply:?}, not what the key-value script returns"))
}

impl KvEngine for RedisEngine {
    fn get(&self, ns: &str, key: &str) -> Result<Option<Entry>, KvError> {
        let found: Option<(String, u64)> = self.run(&self.scripts.get, ns, &[key], Retry::Idempotent)?;
        Ok(found.map(|(value, version)| Entry { value, version }))
    }

    fn set(&self, ns: &str, key: &str, value: String, ttl: Option<Duration>) -> Result<u64, KvError> {
        self.run(&self.scripts.set, ns, &[key, &value, &ttl_arg(ttl)], Retry::Never)
    }

    fn delete(&self, ns: &str, key: &str) -> Result<bool, KvError> {
        // Deleting twice removes nothing more, but the second answer would
        // say the key was not there: not repeated either.
        self.run(&self.scripts.delete, ns, &[key], Retry::Never)
    }

    fn compare_and_swap(
        &self,
        ns: &str,
        key: &str,
        expected: Option<u64>,
        value: String,
        ttl: Option<Duration>,
    ) -> Result<Option<u64>, KvError> {
        let expected = expected.map_or_else(String::new, |version| version.to_string());
        self.run(&self.scripts.compare_and_swap, ns, &[key, &expected, &value, &ttl_arg(ttl)], Retry::Never)
    }

    fn increment(&self, ns: &str, key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64, KvError> {
        let reply: Vec<String> =
            self.run(&self.scripts.increment, ns, &[key, &delta.to_string(), &ttl_arg(ttl)], Retry::Never)?;
        match reply.as_slice() {
            [status, sum] if status == "ok" => sum.parse().map_err(|_| unexpected("increment", &reply)),
            [status] if status == "not-a-number" => Err(KvError::NotANumber),
            [status] if status == "overflow" => Err(super::sum_overflow()),
            _ => Err(unexpected("increment", &reply)),
        }
    }

    fn list_by_prefix(&self, ns: &str, prefix: &str, limit: usize) -> Result<Vec<(String, Entry)>, KvError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let flat: Vec<String> =
            self.run(&self.scripts.list_by_prefix, ns, &[prefix, &limit.to_string()], Retry::Idempotent)?;
        let rows = flat.chunks_exact(3);
        if !rows.remainder().is_empty() {
            return Err(unexpected("list_by_prefix", rows.remainder()));
        }
        rows.map(|row| match row {
            [key, value, version] => Ok((
                key.clone(),
                Entry {
                    value: value.clone(),
                    version: version.parse().map_err(|_| unexpected("list_by_prefix", row))?,
                },
            )),
            _ => Err(unexpected("list_by_prefix", row)),
        })
        .collect()
    }

    fn sweep(&self) -> usize {
        match self.sweep_expired() {
            Ok(removed) => removed,
            Err(error) => {
                tracing::warn!(%error, "sweeping expired keys failed; the next sweep retries");
                0
            }
        }
    }

    fn usage(&self, ns: &str) -> Result<Usage, KvError> {
        let (keys, bytes): (i64, i64) = self.run(&self.scripts.usage, ns, &[], Retry::Idempotent)?;
        Ok(Usage {
            keys: keys.max(0).unsigned_abs(),
            bytes: bytes.max(0).unsigned_abs(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use super::*;
    use crate::kv::conformance;
    use crate::kv::test_redis::Redis;

    /// A fresh Redis and an engine on it.
    fn fresh() -> (Redis, RedisEngine) {
        let server = Redis::start();
        let engine = RedisEngine::open(&server.url()).expect("the engine opens on a running Redis");
        (server, engine)
    }

    #[test]
    fn compare_and_swap_accepts_only_the_current_version() {
        conformance::compare_and_swap_accepts_only_the_current_version(&fresh().1);
    }

    #[test]
    fn a_recreated_key_never_reuses_a_version() {
        conformance::a_recreated_key_never_reuses_a_version(&fresh().1);
    }

    #[test]
    fn namespaces_are_separate() {
        conformance::namespaces_are_separate(&fresh().1);
    }

    #[test]
    fn ttl_hides_and_sweep_removes() {
        conformance::ttl_hides_and_sweep_removes(&fresh().1);
    }

    #[test]
    fn increment_counts_from_zero_and_rejects_text() {
        conformance::increment_counts_from_zero_and_rejects_text(&fresh().1);
    }

    #[test]
    fn increment_reads_an_integer_as_rust_parses_it() {
        conformance::increment_reads_an_integer_as_rust_parses_it(&fresh().1);
    }

    #[test]
    fn a_write_sets_or_clears_the_ttl_and_a_zero_ttl_expires_at_once() {
        conformance::a_write_sets_or_clears_the_ttl_and_a_zero_ttl_expires_at_once(&fresh().1);
    }

    #[test]
    fn list_by_prefix_is_ordered_limited_and_stays_in_its_namespace() {
        conformance::list_by_prefix_is_ordered_limited_and_stays_in_its_namespace(&fresh().1);
    }

    #[test]
    fn list_by_prefix_takes_the_prefix_literally_in_byte_order() {
        conformance::list_by_prefix_takes_the_prefix_literally_in_byte_order(&fresh().1);
    }

    #[test]
    fn usage_counts_the_live_keys_and_their_bytes() {
        conformance::usage_counts_the_live_keys_and_their_bytes(&fresh().1);
    }

    #[test]
    fn usage_matches_a_recount_after_any_mix_of_writes() {
        conformance::usage_matches_a_recount_after_any_mix_of_writes(&fresh().1, conformance::Time::Real);
    }

    #[test]
    fn quotas_refuse_writes_past_the_limits_of_each_namespace() {
        let (_server, engine) = fresh();
        conformance::quotas_refuse_writes_past_the_limits_of_each_namespace(Arc::new(engine));
    }

    #[test]
    fn two_engines_on_one_redis_share_the_store_and_versions_go_on_growing() {
        let (server, first) = fresh();
        let second = RedisEngine::open(&server.url()).expect("opens");
        let v1 = first.set("a", "game:1", "board".into(), None).unwrap();
        assert_eq!(second.get("a", "game:1").unwrap(), Some(Entry { value: "board".into(), version: v1 }));
        let v2 = second.compare_and_swap("a", "game:1", Some(v1), "moved".into(), None).unwrap().expect("swapped");
        assert_eq!(first.compare_and_swap("a", "game:1", Some(v1), "stale".into(), None), Ok(None));
        drop((first, second));
        let again = RedisEngine::open(&server.url()).expect("opens");
        assert_eq!(again.get("a", "game:1").unwrap().map(|e| e.version), Some(v2));
        assert!(again.set("a", "other", "x".into(), None).unwrap() > v2, "versions go on from where they were");
    }

    #[test]
    fn concurrent_writers_lose_no_update() {
        let (_server, engine) = fresh();
        let engine = Arc::new(engine);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let engine = engine.clone();
                std::thread::spawn(move || {
                    for _ in 0..40 {
                        engine.increment("a", "hits", 1, None).unwrap();
                        // A read-modify-write as plugins do it: retry until the swap holds.
                        loop {
                            let current = engine.get("a", "total").unwrap();
                            let total: u64 = current.as_ref().map_or(0, |e| e.value.parse().unwrap());
                            let expected = current.map(|e| e.version);
                            if engine.compare_and_swap("a", "total", expected, (total + 1).to_string(), None).unwrap().is_some() {
                                break;
                            }
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("a writer");
        }
        assert_eq!(engine.get("a", "hits").unwrap().map(|e| e.value), Some("320".into()));
        assert_eq!(engine.get("a", "total").unwrap().map(|e| e.value), Some("320".into()));
    }

    #[test]
    fn keys_that_expire_together_stay_hidden_until_removed() {
        let (server, engine) = fresh();
        for n in 0..300 {
            engine.set("a", &format!("k{n:03}"), "x".into(), Some(Duration::from_secs(3600))).unwrap();
        }
        engine.set("a", "kept", "y".into(), None).unwrap();
        // Every expiry moves to 1970 at once: each script removes a batch
        // of 100 first, and must hide the rest.
        let mut raw = ::redis::Client::open(server.url()).unwrap().get_connection().unwrap();
        let [.., expiries, _] = namespace_keys("a");
        ::redis::cmd("ZUNIONSTORE").arg(&expiries).arg(1).arg(&expiries).arg("WEIGHTS").arg(0).exec(&mut raw).unwrap();
        assert_eq!(engine.get("a", "k299"), Ok(None));
        let listed: Vec<String> = engine.list_by_prefix("a", "", 10).unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(listed, ["kept"]);
        let left: usize = ::redis::cmd("ZCARD").arg(&expiries).query(&mut raw).unwrap();
        assert_eq!(left, 100, "two scripts removed two batches");
        assert_eq!(engine.usage("a"), Ok(Usage { keys: 1, bytes: 5 }), "the quota does not count them");
        assert_eq!(engine.sweep(), 0, "nothing left to sweep");
    }

    #[test]
    fn lost_counters_are_counted_again_and_versions_never_go_back() {
        let (server, engine) = fresh();
        engine.set("a", "k1", "abc".into(), None).unwrap();
        let v2 = engine.set("a", "k2", "de".into(), None).unwrap();
        let mut raw = ::redis::Client::open(server.url()).unwrap().get_connection().unwrap();
        let [.., counters] = namespace_keys("a");
        ::redis::cmd("DEL").arg(&counters).exec(&mut raw).unwrap();
        assert_eq!(engine.usage("a"), Ok(Usage { keys: 2, bytes: 9 }));
        assert!(engine.set("a", "k3", "f".into(), None).unwrap() > v2);
        assert_eq!(engine.usage("a"), Ok(Usage { keys: 3, bytes: 12 }));
    }

    #[test]
    fn a_restarted_redis_is_reconnected_without_a_failed_call() {
        let (mut server, engine) = fresh();
        engine.set("a", "k", "1".into(), None).unwrap();
        server.restart();
        assert_eq!(engine.get("a", "k"), Ok(None), "a read retries on a fresh connection");
        engine.set("a", "k", "2".into(), None).unwrap();
        server.restart();
        // A write is never sent twice, so a connection idle across the
        // restart must be found dead before the write goes out on it.
        std::thread::sleep(pool::IDLE_CHECK + Duration::from_millis(100));
        assert!(engine.set("a", "k", "3".into(), None).is_ok());
        assert_eq!(engine.get("a", "k").unwrap().map(|e| e.value), Some("3".into()));
    }

    #[test]
    fn while_redis_is_down_calls_fail_naming_it_and_resume_when_it_is_back() {
        let (mut server, engine) = fresh();
        engine.set("a", "k", "1".into(), None).unwrap();
        server.stop();
        for _ in 0..3 {
            match engine.get("a", "k") {
                Err(KvError::Unavailable(why)) => assert!(why.contains(&server.url()), "{why}"),
                other => panic!("a call to a stopped Redis gave {other:?}"),
            }
        }
        server.resume();
        let deadline = Instant::now() + Duration::from_secs(10);
        while engine.set("a", "k", "2".into(), None).is_err() {
            assert!(Instant::now() < deadline, "the engine did not reconnect");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(engine.get("a", "k").unwrap().map(|e| e.value), Some("2".into()));
    }

    #[test]
    fn an_unreachable_redis_is_refused_at_open_naming_the_url_but_not_its_password() {
        let (mut server, _engine) = fresh();
        server.stop();
        let url = server.url().replace("redis://", "redis://:hunter2@");
        match RedisEngine::open(&url) {
            Err(KvError::Unavailable(why)) => {
                assert!(why.contains(&server.url().replace("redis://", "redis://:***@")), "{why}");
                assert!(why.contains("cannot connect") && !why.contains("hunter2"), "{why}");
            }
            Ok(_) => panic!("opened a stopped Redis"),
            Err(other) => panic!("{other}"),
        }
        match RedisEngine::open("http://127.0.0.1:6379") {
            Err(KvError::Unavailable(why)) => assert!(why.contains("redis://host:6379"), "{why}"),
            Ok(_) => panic!("opened an http URL"),
            Err(other) => panic!("{other}"),
        }
    }

    #[test]
    fn a_namespace_cannot_leave_its_hash_tag_or_take_another_ones() {
        for ns in ["a", "a}b", "}", "%7D", "{x}", ""] {
            let keys = namespace_keys(ns);
            let tag = |key: &str| {
                let open = key.find('{').expect("a tag");
                let close = open + key[open..].find('}').expect("closed");
                key[open + 1..close].to_owned()
            };
            assert!(!tag(&keys[0]).is_empty(), "{keys:?}");
            assert!(keys.iter().all(|key| tag(key) == tag(&keys[0])), "{keys:?}");
        }
        assert_ne!(namespace_keys("a}b"), namespace_keys("a"));
        assert_ne!(namespace_keys("}"), namespace_keys("%7D"));
    }

    #[test]
    fn only_redis_6_2_and_later_is_accepted() {
        assert!(at_least("7.0.15", MIN_VERSION));
        assert!(at_least("6.2.0", MIN_VERSION));
        assert!(!at_least("6.0.16", MIN_VERSION));
        assert!(!at_least("unknown", MIN_VERSION));
        assert_eq!(info_field("# Server\r\nredis_version:7.0.15\r\n", "redis_version"), Some("7.0.15"));
    }

    /// The same engine on a Redis Cluster of three masters.
    mod cluster {
        use super::*;
        use crate::kv::test_redis::RedisCluster;

        /// Empty every master, and open a new engine on the cluster.
        fn emptied(cluster: &RedisCluster) -> RedisEngine {
            for node in cluster.nodes() {
                ::redis::cmd("FLUSHALL").exec(&mut node.connection()).expect("FLUSHALL");
            }
            RedisEngine::open(&cluster.url()).expect("the engine opens on the cluster")
        }

        #[test]
        fn the_conformance_suite_passes_on_a_redis_cluster() {
            let cluster = RedisCluster::start();
            let checks: [fn(&dyn KvEngine); 10] = [
                conformance::compare_and_swap_accepts_only_the_current_version,
                conformance::a_recreated_key_never_reuses_a_version,
                conformance::namespaces_are_separate,
                conformance::ttl_hides_and_sweep_removes,
                conformance::increment_counts_from_zero_and_rejects_text,
                conformance::increment_reads_an_integer_as_rust_parses_it,
                conformance::a_write_sets_or_clears_the_ttl_and_a_zero_ttl_expires_at_once,
                conformance::list_by_prefix_is_ordered_limited_and_stays_in_its_namespace,
                conformance::list_by_prefix_takes_the_prefix_literally_in_byte_order,
                conformance::usage_counts_the_live_keys_and_their_bytes,
            ];
            for check in checks {
                check(&emptied(&cluster));
            }
            conformance::quotas_refuse_writes_past_the_limits_of_each_namespace(Arc::new(emptied(&cluster)));
        }

        #[test]
        fn namespaces_spread_over_the_masters() {
            let cluster = RedisCluster::start();
            let engine = emptied(&cluster);
            for ns in ["a", "b", "c", "d", "e", "f"] {
                engine.set(ns, "k", "v".into(), None).unwrap();
            }
            let holding = cluster
                .nodes()
                .iter()
                .filter(|node| ::redis::cmd("DBSIZE").query::<u64>(&mut node.connection()).unwrap() > 1)
                .count();
            assert!(holding >= 2, "six namespaces on one master");
        }

        /// Move `slot` to node `to`, keys and all, as `redis-cli --cluster
        /// reshard` does.
        fn move_slot(cluster: &RedisCluster, slot: u16, to: usize) {
            let nodes = cluster.nodes();
            let mut connections: Vec<::redis::Connection> = nodes.iter().map(|node| node.connection()).collect();
            let ids: Vec<String> = connections
                .iter_mut()
                .map(|c| ::redis::cmd("CLUSTER").arg("MYID").query(c).unwrap())
                .collect();
            let from = (0..nodes.len())
                .find(|&n| {
                    ::redis::cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(slot).query::<u64>(&mut connections[n]).unwrap() > 0
                })
                .expect("the slot holds keys");
            let setslot = |c: &mut ::redis::Connection, how: &str, id: &str| {
                ::redis::cmd("CLUSTER").arg("SETSLOT").arg(slot).arg(how).arg(id).exec(c).unwrap();
            };
            setslot(&mut connections[to], "IMPORTING", &ids[from]);
            setslot(&mut connections[from], "MIGRATING", &ids[to]);
            let keys: Vec<String> = ::redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(1000)
                .query(&mut connections[from])
                .unwrap();
            ::redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(nodes[to].port())
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(&keys)
                .exec(&mut connections[from])
                .unwrap();
            for c in &mut connections {
                setslot(c, "NODE", &ids[to]);
            }
        }

        #[test]
        fn a_namespace_whose_slot_moves_is_followed_and_no_write_goes_twice() {
            let cluster = RedisCluster::start();
            let engine = emptied(&cluster);
            engine.set("a", "k", "1".into(), None).unwrap();
            assert_eq!(engine.increment("a", "n", 1, None), Ok(1));
            let [values, ..] = namespace_keys("a");
            let slot: u16 = ::redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(&values)
                .query(&mut cluster.nodes()[0].connection())
                .unwrap();
            let owner = cluster
                .nodes()
                .iter()
                .position(|node| ::redis::cmd("HLEN").arg(&values).query::<u64>(&mut node.connection()).is_ok())
                .expect("an owner");
            move_slot(&cluster, slot, (owner + 1) % 3);
            assert_eq!(engine.get("a", "k").unwrap().map(|e| e.value), Some("1".into()), "a read follows the slot");
            move_slot(&cluster, slot, (owner + 2) % 3);
            assert_eq!(engine.increment("a", "n", 1, None), Ok(2), "a write follows it, once");
            assert_eq!(engine.get("a", "n").unwrap().map(|e| e.value), Some("2".into()));
        }
    }
}
