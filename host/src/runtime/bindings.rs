//! Host-side bindings generated from the WIT package in `wit/`.
//!
//! Both worlds import the same host interfaces; the socket world reuses the
//! channel world's generated interfaces so one implementation serves both.

/// Bindings for the `channel-plugin` world (and the host interfaces).
pub mod channel {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "channel-plugin",
    });
}

/// Bindings for the `socket-plugin` world.
pub mod socket {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "socket-plugin",
        with: {
            "plume:plugin/types": super::channel::plume::plugin::types,
            "plume:plugin/channel": super::channel::plume::plugin::channel,
            "plume:plugin/timers": super::channel::plume::plugin::timers,
            "plume:plugin/presence": super::channel::plume::plugin::presence,
            "plume:plugin/kv": super::channel::plume::plugin::kv,
            "plume:plugin/http": super::channel::plume::plugin::http,
            "plume:plugin/token": super::channel::plume::plugin::token,
            "plume:plugin/plugin-config": super::channel::plume::plugin::plugin_config,
            "plume:plugin/log": super::channel::plume::plugin::log,
            "plume:plugin/clock": super::channel::plume::plugin::clock,
            "plume:plugin/random": super::channel::plume::plugin::random,
            "plume:plugin/figures": super::channel::plume::plugin::figures,
        },
    });
}

pub use channel::plume::plugin as imports;
