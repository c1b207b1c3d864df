//! plume: a Phoenix Channels server whose channel logic runs as sandboxed
//! WebAssembly components.
//!
//! Data flows one way: [`transport`] (HTTP, WebSocket upgrade) hands each
//! connection to a [`socket`] task, which owns its channels and calls their
//! plugins through the [`runtime`]; plugins act through host imports on the
//! [`pubsub`] broker, the [`kv`] store and [`token`]s, and broadcasts flow
//! back to subscribing socket tasks; plugins reach the app's services
//! through [`http`] (answered later, in `handle-info`), and the app's
//! backend publishes into channels through the server [`api`]. [`app`]
//! ties one tenant's pieces together; [`server`] starts and stops it all,
//! and [`admin`] serves what operators read on a listener of its own.

pub mod admin;
pub mod api;
pub mod app;
pub mod build;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod demo_page;
pub mod dev;
pub mod history;
pub mod http;
pub mod kv;
pub mod presence;
pub mod protocol;
pub mod plugin_tests;
pub mod pubsub;
pub mod reload;
pub mod runtime;
pub mod scaffold;
pub mod server;
pub mod socket;
pub mod token;
pub mod transport;
