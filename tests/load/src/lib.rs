//! plume-load: the benchmark tool for plume, and the raw baseline plume is
//! measured against.
//!
//! A benchmark here is a command anyone can re-run, never a timed unit test.
//! The [`scenario`]s drive a server over real loopback WebSockets speaking
//! the Phoenix V2 JSON protocol ([`wire`], [`client`]); [`compare`] starts the
//! servers itself and runs one scenario against each in the same run; and
//! [`echo`] is the baseline server, which answers the same frames with no
//! channel logic at all. [`cluster`] runs the fan-out across the nodes of a
//! plume cluster over a real Redis it starts, beside one node alone, and
//! what each broadcast costs Redis. [`chart`] draws a fan-out sweep's
//! comparison as the PNG that BENCHMARKS.md shows.
//!
//! The tool shares the machine's cores with the server it measures, so every
//! result carries both processes' CPU time ([`process`]) beside its figures
//! ([`latency`], [`report`]).

pub mod backend;
pub mod chart;
pub mod client;
pub mod cluster;
pub mod compare;
pub mod deadline;
pub mod echo;
pub mod latency;
pub mod process;
pub mod report;
pub mod scenario;
pub mod soak;
pub mod wire;
