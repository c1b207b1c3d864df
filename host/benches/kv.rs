//! One key-value operation as a plugin makes it (through the app's [`Kv`]
//! namespace, quota check included), on the Redis engine beside the
//! in-memory engine, one caller at a time.
//!
//! Run: `cargo bench -p plume --bench kv` (starts its own `redis-server` on
//! a free port, persistence off, as the tests do, then a three-master
//! Redis Cluster).
//!
//! The memory engine is the baseline: a lock and a map, the floor of what
//! any engine costs. On Redis each operation is one EVALSHA round trip over
//! loopback TCP; a write that may grow the namespace adds the quota's two
//! reads (`get` and `usage`), as on every engine. `kv/redis/ping` (a bare
//! PING on one connection) is the floor of one round trip, to tell the
//! scripts' own cost from the network's.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use plume::kv::{Kv, KvEngine, MemoryEngine, Quota, RedbEngine, RedisEngine};

// The tests' Redis fixture; the bench only starts it (no restarts).
#[allow(dead_code)]
#[path = "../../tests/support/redis.rs"]
mod test_redis;

/// The default app limits (`max_kv_keys`, `max_kv_bytes`).
const QUOTA: Quota = Quota {
    max_keys: 100_000,
    max_bytes: 64 * 1024 * 1024,
};

/// A game board's size of JSON.
const VALUE: &str = r#"{"board":["X",null,"O",null,"X",null,null,null,null],"current_turn":11,"status":"playing"}"#;

fn operations(c: &mut Criterion, engine_name: &str, engine: Arc<dyn KvEngine>) {
    let kv = Kv::new(engine, "bench").with_quota(QUOTA);
    kv.set("game", VALUE.into(), None).expect("set");
    let mut group = c.benchmark_group(format!("kv/{engine_name}"));
    group.bench_function("get", |b| b.iter(|| black_box(kv.get("game").expect("get"))));
    group.bench_function("set", |b| b.iter(|| black_box(kv.set("game", VALUE.into(), None).expect("set"))));
    group.bench_function("compare_and_swap", |b| {
        let mut version = kv.get("game").expect("get").expect("stored").version;
        b.iter(|| {
            version = kv
                .compare_and_swap("game", Some(version), VALUE.into(), None)
                .expect("swap")
                .expect("the version is current");
        })
    });
    group.bench_function("increment", |b| b.iter(|| black_box(kv.increment("hits", 1, None).expect("increment"))));
    group.finish();
}

/// A write that adds a key checks the namespace's quota, so it reads the
/// namespace's counts: here, in a namespace already holding `keys` keys,
/// one key is added and deleted again (the namespace keeps its size;
/// 99,999 keys is one short of the default quota).
fn crowded(c: &mut Criterion, engine_name: &str, engine: Arc<dyn KvEngine>, keys: usize) {
    // Filled without the quota: the fill is not what is measured.
    let fill = Kv::new(engine.clone(), "crowded");
    let started = Instant::now();
    for i in 0..keys {
        fill.set(&format!("key:{i:06}"), VALUE.into(), None).expect("fill");
    }
    eprintln!("kv/{engine_name}: {keys} keys written in {:.1?}", started.elapsed());
    let kv = Kv::new(engine, "crowded").with_quota(QUOTA);
    c.bench_function(&format!("kv/{engine_name}/add_and_delete@{keys}"), |b| {
        b.iter(|| {
            black_box(kv.set("added", VALUE.into(), None).expect("set"));
            black_box(kv.delete("added").expect("delete"))
        })
    });
}

fn engines(c: &mut Criterion) {
    operations(c, "memory", Arc::new(MemoryEngine::default()));
    crowded(c, "memory", Arc::new(MemoryEngine::default()), 99_999);
    let dir = std::env::temp_dir().join(format!("plume-kv-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let redb = Arc::new(RedbEngine::open(&dir.join("kv.redb")).expect("the redb file opens"));
    operations(c, "redb", redb.clone());
    crowded(c, "redb", redb, 10_000);
    let _ = std::fs::remove_dir_all(&dir);
    let redis = test_redis::Redis::start();
    let mut connection = redis::Client::open(redis.url())
        .and_then(|client| client.get_connection())
        .expect("a connection");
    c.bench_function("kv/redis/ping", |b| {
        b.iter(|| redis::cmd("PING").query::<String>(&mut connection).expect("PONG"))
    });
    operations(c, "redis", Arc::new(RedisEngine::open(&redis.url()).expect("the engine opens")));
    let cluster = test_redis::RedisCluster::start();
    operations(c, "redis-cluster", Arc::new(RedisEngine::open(&cluster.url()).expect("the engine opens")));
}

criterion_group!(benches, engines);
criterion_main!(benches);
