//! The scenarios. Each opens its sockets, drives the server for a bounded
//! time, and returns an [`Outcome`]. Every loop in them is bounded by a
//! deadline or a count, and every wait by a timeout, so a run always ends by
//! itself, whatever the server does.

pub mod fanout;
pub mod idle;
pub mod joins;
pub mod presence;
pub mod rpc;

use std::sync::Arc;

use clap::Subcommand;

use crate::client::Target;
use crate::process;
use crate::report::Outcome;

/// The most sockets one run opens. The machine caps a process at 20,000
/// open files; the rest is headroom for the runtime, pipes and stdio.
pub const MAX_SOCKETS: usize = 19_000;

/// Handshakes in flight at once while a scenario sets up its sockets (the
/// join storm has its own flag): enough to be quick, few enough not to
/// overflow a server's accept backlog and wait out SYN retransmits.
pub const SETUP_CONCURRENCY: usize = 256;

/// A scenario and its arguments.
#[derive(Debug, Clone, Subcommand)]
pub enum Scenario {
    /// C sockets join room:lobby and ping in a closed loop: round trips/s and latency.
    Rpc(rpc::RpcArgs),
    /// N subscribers on one topic, one publisher of new_msg at R msgs/s: deliveries/s and latency.
    Fanout(fanout::FanoutArgs),
    /// N sockets each joined to its own topic, held with heartbeats: server memory per socket.
    Idle(idle::IdleArgs),
    /// N sockets connect and join at once: joins/s and join latency.
    Joins(joins::JoinsArgs),
    /// N members join one chat topic with presence: time until every member's presence list agrees.
    Presence(presence::PresenceArgs),
}

impl Scenario {
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Rpc(_) => "rpc",
            Scenario::Fanout(_) => "fanout",
            Scenario::Idle(_) => "idle",
            Scenario::Joins(_) => "joins",
            Scenario::Presence(_) => "presence",
        }
    }

    /// How many sockets the scenario holds open at once.
    pub fn sockets(&self) -> usize {
        match self {
            Scenario::Rpc(args) => args.sockets,
            Scenario::Fanout(args) => args.subscribers + 1,
            Scenario::Idle(args) => args.sockets,
            Scenario::Joins(args) => args.sockets,
            Scenario::Presence(args) => args.members,
        }
    }

    /// Runs the scenario against `target`, after checking that its sockets
    /// fit in the open-files budget.
    pub async fn run(&self, target: Arc<Target>) -> anyhow::Result<Outcome> {
        let sockets = self.sockets();
        anyhow::ensure!(
            sockets <= MAX_SOCKETS,
            "{} needs {sockets} sockets, more than the {MAX_SOCKETS} one run may open (a process may hold 20,000 open files): ask for fewer",
            self.name()
        );
        let limit = process::raise_open_files_limit()?;
        anyhow::ensure!(
            sockets as u64 + 64 <= limit,
            "{} needs {sockets} sockets but this process may open only {limit} files: raise the hard limit (ulimit -Hn) or ask for fewer",
            self.name()
        );
        match self {
            Scenario::Rpc(args) => rpc::run(args, target).await,
            Scenario::Fanout(args) => fanout::run(args, target).await,
            Scenario::Idle(args) => idle::run(args, target).await,
            Scenario::Joins(args) => joins::run(args, target).await,
            Scenario::Presence(args) => presence::run(args, target).await,
        }
    }
}
