//! The WebAssembly runtime: the engine, loading plugin components, and
//! calling them.
//!
//! One [`Runtime`] per process holds the wasmtime engine and the linker with
//! every host capability. Loading a component yields a version
//! ([`ChannelVersion`] or [`SocketVersion`]): the compiled component, checked
//! against its world, with a pool of reusable instances. A call runs under an
//! epoch deadline and a memory limit; a call that traps, runs out of time or
//! memory fails with a [`Fault`], and only the instance that failed is lost.
//!
//! For the benchmarks, a channel plugin can instead be compiled into the
//! host ([`NativeChannel`], [`Runtime::register_native`]): the same calls,
//! imports and checks without the sandbox, to measure what it costs.

mod bindings;
mod cache;
mod clock;
mod channel;
pub mod context;
mod host;
mod lent;
mod limits;
mod native;
mod pool;
mod priority;
mod socket;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, Strategy};

pub use bindings::channel::exports::plume::plugin::channel_handler::{
    Action, InfoAction, OutAction, Stop,
};
pub use bindings::imports::types::{Payload as WitPayload, Reply, ReplyStatus, Socket as SocketView};
pub use bindings::socket::exports::plume::plugin::socket_handler::ConnectInfo;
pub use cache::{CompileCache, Origin};
pub use channel::ChannelVersion;
pub use context::{CallContext, ChannelScope, Effect, TimerId};
pub use lent::LentPayload;
pub use native::NativeChannel;
pub use priority::reset_new_thread;
pub use socket::SocketVersion;

use host::HostState;
use pool::World;

/// How often the epoch advances while calls run; a deadline is checked
/// against the wall clock at each tick. A call that spins through a tick
/// after its first hands off its async worker and drops to idle priority
/// (see `pool`), so the tick bounds how long a spinning plugin holds other
/// tenants' sockets: the soak's tenant B p99 storm/quiet was 2.0x at 1 ms
/// and 1.35x at 0.5 ms (median of 7 runs, when the hand-off came at the
/// first tick).
/// An idle server's clock sleeps (see [`clock`]).
const EPOCH_TICK: Duration = Duration::from_micros(500);

/// Limits applied to every call and instance.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Wall-clock time one call may take before it is interrupted: at
    /// least this, and at most one epoch tick more once the call's thread
    /// runs (a demoted call gets normal priority back for that, see
    /// `priority`).
    pub deadline: Duration,
    /// Linear memory one instance may grow to, in bytes.
    pub memory_limit: usize,
    /// Idle instances kept per plugin version.
    pub max_idle_instances: usize,
    /// Instances of one version alive at once; a call that finds them all
    /// busy waits briefly, then fails with [`Fault::Busy`].
    pub max_instances: usize,
}

/// How long loading a version took, and whether it was compiled.
#[derive(Debug, Clone, Copy)]
pub struct Loaded {
    pub origin: Origin,
    pub elapsed: std::time::Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            deadline: Duration::from_secs(1),
            memory_limit: 64 * 1024 * 1024,
            max_idle_instances: 64,
            max_instances: 16,
        }
    }
}

/// Why a plugin call failed. The channel it was made for crashes
/// (`phx_error`); the socket and every other channel carry on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Fault {
    #[error("the plugin ran past its deadline of {0:?}")]
    Deadline(Duration),
    #[error("the plugin instance exceeded its memory limit of {0} bytes")]
    Memory(usize),
    #[error("the plugin trapped: {0}")]
    Trap(String),
    #[error("the plugin returned {0}")]
    InvalidOutput(String),
    #[error("all {0} instances of the plugin are busy (max_instances_per_plugin)")]
    Busy(usize),
}

/// Why a component could not be loaded. The message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "there is no plugin file at {0}: build the plugins first with `plume build` (`cargo run --release -- build` in plume's source tree), or fix the path"
    )]
    Missing(String),
    #[error("cannot read {path}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{0} is a core WebAssembly module, not a component: build the plugin with `cargo build --release --target wasm32-wasip2`"
    )]
    NotAComponent(String),
    #[error("{0} is not a WebAssembly file")]
    NotWasm(String),
    #[error("{name} failed to compile: {reason}")]
    Compile { name: String, reason: String },
    #[error("{name} does not implement the `{world}` world of plume:plugin@0.3.0: {reason}")]
    World {
        name: String,
        world: &'static str,
        reason: String,
    },
    #[error("{name} failed to start: {fault}")]
    Start { name: String, fault: Fault },
}

/// One compiler's engine, with the linker and the epoch clock that go with
/// it: a component compiled by one engine can only be linked and run in
/// that engine's stores, so each engine has its own.
struct Compiler {
    engine: Engine,
    /// Advances the engine's epoch while calls run (see [`clock`]).
    clock: std::sync::Arc<clock::Clock>,
    linker: Linker<HostState>,
}

impl Compiler {
    fn new(strategy: Strategy) -> anyhow::Result<Compiler> {
        let engine = Engine::new(&engine_config(strategy)).map_err(|e| anyhow::anyhow!("{e:#}"))?;

        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        bindings::channel::ChannelPlugin::add_to_linker::<_, wasmtime::component::HasSelf<_>>(
            &mut linker,
            |state: &mut HostState| state,
        )
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;

        let clock = clock::Clock::start(&engine, EPOCH_TICK)?;
        Ok(Compiler { engine, clock, linker })
    }
}

/// What every engine is configured with, by compiler.
fn engine_config(strategy: Strategy) -> Config {
    let mut config = Config::new();
    config.strategy(strategy);
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config
}

/// Which compiler makes a version's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Cranelift, the optimizing compiler (or its code from the compile
    /// cache): what every version runs on in the end.
    Optimized,
    /// Winch, the baseline compiler: about ten times quicker to compile,
    /// slower to run. A hot swap whose code is not in the compile cache
    /// goes live on it first (see [`crate::reload`]).
    Baseline,
    /// Cranelift's code for a version already serving on Winch's, compiled
    /// in the background: on the calling thread alone (no parallel
    /// compilation across the cores that serve) at the lowest CPU
    /// priority, so the clients' latency hardly moves while it runs.
    Background,
}

/// The engines, linkers and epoch clocks, shared by every plugin.
pub struct Runtime {
    optimized: Compiler,
    /// Cranelift without parallel compilation, for [`Tier::Background`]:
    /// made at its first use (its error kept, as a message).
    serial: std::sync::OnceLock<Result<Engine, String>>,
    /// Winch, for hot swaps not in the compile cache; `None` where the
    /// baseline compiler cannot run (it supports x86_64 and, partly,
    /// aarch64): those swaps wait for Cranelift.
    baseline: Option<Compiler>,
    settings: Settings,
    cache: Option<CompileCache>,
    /// Channel plugins served by code compiled into the host instead of
    /// their component, by plugin name (see [`Runtime::register_native`]).
    native: HashMap<String, NativeChannel>,
}

impl Runtime {
    /// A runtime; `cache` keeps compiled components between runs.
    pub fn new(settings: Settings, cache: Option<CompileCache>) -> anyhow::Result<Runtime> {
        pool::install_panic_filter();
        priority::available();
        let optimized = Compiler::new(Strategy::Cranelift)?;
        let baseline = Compiler::new(Strategy::Winch)
            .inspect_err(|error| {
                tracing::info!(%error, "the baseline compiler is not available here; a hot swap not in the compile cache waits for Cranelift");
            })
            .ok();
        Ok(Runtime {
            optimized,
            serial: std::sync::OnceLock::new(),
            baseline,
            settings,
            cache,
            native: HashMap::new(),
        })
    }

    /// Serve the channel plugin called `name` with `plugin`, code compiled
    /// into this process, instead of the component its configuration names:
    /// the benchmarks' baseline for what the sandbox costs. Its file is not
    /// read, and it is neither sandboxed nor hot-reloadable.
    pub fn register_native(&mut self, name: &str, plugin: NativeChannel) {
        self.native.insert(name.to_owned(), plugin);
    }

    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// Load a channel plugin from a file; its calls run under `settings`
    /// (its tenant's limits).
    pub fn load_channel_file(&self, name: &str, path: &Path, settings: Settings) -> Result<ChannelVersion, LoadError> {
        if let Some(plugin) = self.native.get(name) {
            return Ok(ChannelVersion::native(*plugin));
        }
        let bytes = read(path)?;
        self.load_channel(name, &bytes, settings, Tier::Optimized)
    }

    /// Load a socket plugin from a file.
    pub fn load_socket_file(&self, name: &str, path: &Path, settings: Settings) -> Result<SocketVersion, LoadError> {
        let bytes = read(path)?;
        self.load_socket(name, &bytes, settings, Tier::Optimized)
    }

    /// Load a channel plugin's `bytes`. With [`Tier::Baseline`], code the
    /// compile cache holds is loaded as it is, and the rest is compiled by
    /// Winch; the version's [`Loaded::origin`] tells which
    /// ([`Origin::Baseline`] wants its optimized code loaded later).
    pub fn load_channel(&self, name: &str, bytes: &[u8], settings: Settings, tier: Tier) -> Result<ChannelVersion, LoadError> {
        let (id, pool, loaded) = self.load::<lent::ChannelInstance>(name, "channel-plugin", bytes, settings, tier)?;
        Ok(ChannelVersion::new(id, pool, loaded))
    }

    /// Load a socket plugin's `bytes` (see [`Runtime::load_channel`]).
    pub fn load_socket(&self, name: &str, bytes: &[u8], settings: Settings, tier: Tier) -> Result<SocketVersion, LoadError> {
        let (id, pool, loaded) = self.load::<bindings::socket::SocketPlugin>(name, "socket-plugin", bytes, settings, tier)?;
        Ok(SocketVersion::new(id, pool, loaded))
    }

    /// The compiler a load at `tier` uses, with the component it made.
    fn compile(&self, bytes: &[u8], tier: Tier) -> wasmtime::Result<(&Compiler, Component, Origin)> {
        let optimized = &self.optimized;
        if let (Tier::Baseline, Some(baseline)) = (tier, &self.baseline) {
            if let Some(component) = self.cache.as_ref().and_then(|cache| cache.get(&optimized.engine, bytes)) {
                return Ok((optimized, component, Origin::Cached));
            }
            match Component::new(&baseline.engine, bytes) {
                Ok(component) => return Ok((baseline, component, Origin::Baseline)),
                // Winch lacks a few proposals (tail calls, exceptions, GC):
                // such a component waits for Cranelift, which reports the
                // error if the component is broken.
                Err(error) => tracing::debug!(error = %format!("{error:#}"), "the baseline compiler refused the component; compiling it with Cranelift"),
            }
        }
        if tier == Tier::Background {
            if let Some(component) = self.cache.as_ref().and_then(|cache| cache.get(&optimized.engine, bytes)) {
                return Ok((optimized, component, Origin::Cached));
            }
            let component = self.compile_aside(bytes)?;
            if let Some(cache) = &self.cache {
                cache.put(&optimized.engine, bytes, &component);
            }
            return Ok((optimized, component, Origin::Compiled));
        }
        let (component, origin) = match &self.cache {
            Some(cache) => cache.get_or_compile(&optimized.engine, bytes)?,
            None => (Component::new(&optimized.engine, bytes)?, Origin::Compiled),
        };
        Ok((optimized, component, origin))
    }

    /// Cranelift's code for `bytes`, compiled for the optimized engine on
    /// this thread only, at the lowest CPU priority ([`Tier::Background`]).
    /// An engine configured as the optimized one but without parallel
    /// compilation compiles it; the optimized engine loads its output,
    /// which the same configuration makes compatible.
    fn compile_aside(&self, bytes: &[u8]) -> wasmtime::Result<Component> {
        priority::lower_this_thread();
        let serial = self.serial.get_or_init(|| {
            let mut config = engine_config(Strategy::Cranelift);
            config.parallel_compilation(false);
            Engine::new(&config).map_err(|e| format!("{e:#}"))
        });
        let serial = serial.as_ref().map_err(|e| wasmtime::Error::msg(e.clone()))?;
        let compiled = serial.precompile_component(bytes)?;
        // SAFETY: `compiled` is what `precompile_component` just made, for
        // an engine of the optimized one's configuration.
        unsafe { Component::deserialize(&self.optimized.engine, &compiled) }
    }

    fn load<W: World>(
        &self,
        name: &str,
        world: &'static str,
        bytes: &[u8],
        settings: Settings,
        tier: Tier,
    ) -> Result<(String, pool::Pool<W>, Loaded), LoadError> {
        let started = std::time::Instant::now();
        check_component(name, bytes)?;
        let (compiler, component, origin) = self.compile(bytes, tier).map_err(|e| LoadError::Compile {
            name: name.to_owned(),
            reason: format!("{e:#}"),
        })?;
        let pre = W::prepare(&compiler.linker, &component).map_err(|reason| LoadError::World {
            name: name.to_owned(),
            world,
            reason,
        })?;
        let pool = pool::Pool::new(compiler.engine.clone(), compiler.clock.clone(), pre, settings);
        pool.warm().map_err(|fault| LoadError::Start {
            name: name.to_owned(),
            fault,
        })?;
        let loaded = Loaded {
            origin,
            elapsed: started.elapsed(),
        };
        Ok((version_id(bytes), pool, loaded))
    }
}

fn read(path: &Path) -> Result<Vec<u8>, LoadError> {
    std::fs::read(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => LoadError::Missing(path.display().to_string()),
        _ => LoadError::Read {
            path: path.display().to_string(),
            source,
        },
    })
}

/// Components and core modules share the `\0asm` magic; the layer field
/// after the version tells them apart.
fn check_component(name: &str, bytes: &[u8]) -> Result<(), LoadError> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', _, _, 1, 0]) => Ok(()),
        Some([0, b'a', b's', b'm', _, _, 0, 0]) => Err(LoadError::NotAComponent(name.to_owned())),
        _ => Err(LoadError::NotWasm(name.to_owned())),
    }
}

/// A version's id: the first 16 hex digits of the SHA-256 of its bytes.
pub fn version_id(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Explain an instantiate-time linking failure in terms of the WIT package.
fn world_mismatch(error: wasmtime::Error) -> String {
    let text = format!("{error:#}");
    if text.contains("matching implementation was not found") || text.contains("import") {
        format!("{text} (the component imports something plume does not provide: was it built against another version of plume:plugin?)")
    } else {
        text
    }
}

impl World for bindings::socket::SocketPlugin {
    type Pre = bindings::socket::SocketPluginPre<HostState>;

    fn prepare(linker: &Linker<HostState>, component: &Component) -> Result<Self::Pre, String> {
        let pre = linker.instantiate_pre(component).map_err(world_mismatch)?;
        bindings::socket::SocketPluginPre::new(pre).map_err(|e| format!("{e:#}"))
    }

    fn instantiate(pre: &Self::Pre, store: &mut wasmtime::Store<HostState>) -> wasmtime::Result<Self> {
        pre.instantiate(store)
    }
}
