//! plume: a Phoenix Channels server whose channel logic runs as sandboxed
//! WebAssembly components.
//!
//! Data flows one way: [`transport`] (HTTP, WebSocket upgrade) hands each
//! connection to a [`socket`] task, which owns its channels and calls their
//! plugins through the [`runtime`]; plugins act through host imports on the
//! [`pubsub`] broker, the [`kv`] store and [`token`]s, and broadcasts flow
//! back to subscribing socket tasks. [`app`] ties one tenant's pieces
//! together; [`server`] starts and stops it all, and [`admin`] serves what
//! operators read on a listener of its own.

pub mod admin;
pub mod app;
pub mod build;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo_page;
pub mod dev;
pub mod kv;
pub mod presence;
pub mod protocol;
pub mod pubsub;
pub mod reload;
pub mod runtime;
pub mod scaffold;
pub mod server;
pub mod socket;
pub mod token;
pub mod transport;
