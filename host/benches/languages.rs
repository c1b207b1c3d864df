//! The RoomChannel in Rust, JavaScript and Python side by side: one
//! `handle-in` call (`ping`, `new_msg`), the component's size, its first
//! compile, and its load from the compile cache. Then 400,000 calls of the
//! Python room on pooled instances with the default memory limit, every one
//! of which must succeed.
//!
//! Run: `cargo bench -p plume --bench languages` (builds the plugins
//! first; the Python and JavaScript rooms need python3 and npm, see
//! `plume build`). `-- --calls N` changes the length of the memory run.
//!
//! A call is timed as in `benches/handle_in.rs` (the host's whole path:
//! context, pooled instance, lowering, the handler, lifting, the JSON check
//! of the reply), in batches; the figure is the median batch over the calls
//! in it. `new_msg` with a non-string body parses the payload and replies
//! with an error, so no broadcast leaves the call.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use plume::app::App;
use plume::runtime::{CallContext, ChannelScope, ChannelVersion, CompileCache, LentPayload, Runtime, Settings, SocketView};

const ASSIGNS: &str = r#"{"user":{"id":42,"name":"user-42","role":"user"}}"#;
const CASES: [(&str, &str); 2] = [("ping", r#"{"hello":"world","n":1}"#), ("new_msg", r#"{"body":5}"#)];
const ROOMS: [(&str, &str); 3] = [("Rust", "room"), ("JavaScript", "room-js"), ("Python", "room-py")];

/// Calls per timed batch, and batches per figure.
const BATCH: u32 = 200;
const BATCHES: usize = 41;

fn main() {
    let calls = std::env::args()
        .skip_while(|arg| arg != "--calls")
        .nth(1)
        .map(|n| n.parse::<u64>().expect("--calls takes a number"))
        .unwrap_or(400_000);
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = plume::build::build_plugins(&workspace).expect("the plugins build");
    // One compile cache for the run, empty at its start: a room's first
    // load compiles it, every later one loads it from here.
    let cache = std::env::temp_dir().join(format!("plume-bench-languages-{}", std::process::id()));

    println!("| room | ping (median) | new_msg (median) | component | first compile | cache load |");
    println!("|---|---|---|---|---|---|");
    for (language, file) in ROOMS {
        let path = dir.join(format!("{file}.wasm"));
        let size = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{} was not built: {e}", path.display())).len();
        let (compile, cached) = compile_times(file, &path, &cache);
        let room = Room::new(&dir, &path, &cache);
        let per_call: Vec<String> = CASES
            .iter()
            .map(|(event, payload)| format!("{:.2} µs", micros(room.median_call(event, payload))))
            .collect();
        println!(
            "| {language} | {} | {} | {:.2} MiB | {:.0} ms | {:.1} ms |",
            per_call[0],
            per_call[1],
            size as f64 / (1024.0 * 1024.0),
            compile.as_secs_f64() * 1e3,
            cached.as_secs_f64() * 1e3
        );
    }

    let room = Room::new(&dir, &dir.join("room-py.wasm"), &cache);
    let started = Instant::now();
    for n in 0..calls {
        let (event, payload) = if n % 2 == 0 { ("ping", CASES[0].1) } else { ("new_msg", r#"{"body":"hello"}"#) };
        if let Err(fault) = room.call(event, payload) {
            panic!("call {n} of the Python room failed: {fault}");
        }
    }
    println!(
        "\nPython room: {calls} calls (ping and a broadcasting new_msg, alternately) on pooled instances with the default memory limit ({} MiB): all succeeded, in {:.1?}",
        Settings::default().memory_limit / (1024 * 1024),
        started.elapsed()
    );
    let _ = std::fs::remove_dir_all(&cache);
}

/// How long a first load (compiled, into a compile cache without it) and a
/// second load (from that cache, in a new runtime) of a component take.
fn compile_times(name: &str, path: &Path, cache: &Path) -> (Duration, Duration) {
    let load = || {
        let runtime = Runtime::new(Settings::default(), Some(CompileCache::new(cache.to_owned()))).expect("runtime");
        let started = Instant::now();
        runtime.load_channel_file(name, path, Settings::default()).expect("the room loads");
        started.elapsed()
    };
    let first = load();
    let cached = load();
    (first, cached)
}

/// The demo app with `room:*` served by one room component.
struct Room {
    app: Arc<App>,
    plugin: Arc<plume::app::ChannelPlugin>,
    config: Arc<str>,
    version: Arc<ChannelVersion>,
    view: SocketView,
    topic: Arc<str>,
}

impl Room {
    fn new(dir: &Path, path: &Path, cache: &Path) -> Room {
        let mut loaded = plume::config::demo(dir).expect("demo config");
        let section = loaded.config.plugins.get_mut("room").expect("the demo has a room");
        section.path = PathBuf::from(path);
        let runtime = Runtime::new(plume::server::runtime_settings(&loaded), Some(CompileCache::new(cache.to_owned()))).expect("runtime");
        let app = plume::server::build_app(&loaded, &runtime).expect("app");
        let route = app.route("room:lobby").expect("room route");
        let (plugin, config) = (route.plugin.clone(), route.config.clone());
        let version = plugin.current();
        Room {
            app,
            plugin,
            config,
            version,
            view: SocketView {
                topic: "room:lobby".into(),
                join_ref: Some("1".into()),
                socket_id: Some("user_socket:42".into()),
                assigns: ASSIGNS.into(),
            },
            topic: "room:lobby".into(),
        }
    }

    fn call(&self, event: &str, payload: &str) -> Result<(), plume::runtime::Fault> {
        let scope = ChannelScope::new(1, 1, self.topic.clone());
        let ctx = CallContext::new(self.app.clone(), self.plugin.name.clone(), self.config.clone(), Some(scope));
        let payload = LentPayload::Json(black_box(payload));
        let (_ctx, handled) = self.version.handle_in(ctx, black_box(event), payload, &self.view);
        black_box(handled).map(|_| ())
    }

    /// The median over [`BATCHES`] batches of one call's time.
    fn median_call(&self, event: &str, payload: &str) -> Duration {
        for _ in 0..BATCH {
            self.call(event, payload).expect("the call succeeds");
        }
        let mut batches: Vec<Duration> = (0..BATCHES)
            .map(|_| {
                let started = Instant::now();
                for _ in 0..BATCH {
                    self.call(event, payload).expect("the call succeeds");
                }
                started.elapsed() / BATCH
            })
            .collect();
        batches.sort();
        batches[BATCHES / 2]
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
