//! plume-echo: the raw baseline. A WebSocket server with no channel logic
//! that answers the frames the scenarios send directly: heartbeats,
//! `phx_join` (recording the topic's members), `phx_leave`, `ping` (the
//! payload echoed) and `new_msg` (broadcast to every member, then ok `{}`).
//!
//! It is built the way a fast server on this machine would be, so that the
//! gap to plume is what plume's design costs, not what this one wastes: one
//! task per connection, a bounded per-connection queue whose overflow closes
//! the slow client (as plume does), writes batched with feed + one flush, a
//! broadcast serialized once and shared by every subscriber, TCP_NODELAY,
//! and small read buffers (see [`connection`]).

mod connection;
mod frame;
mod topics;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};

use topics::Topics;

/// The listen backlog. Connections the server has not accepted yet wait
/// here; once it is full the kernel drops SYNs and clients retry a second
/// later, so a join storm would measure the backlog, not the server. (The
/// kernel caps it at net.core.somaxconn.)
const BACKLOG: u32 = 4096;

/// How the echo server is set up.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: SocketAddr,
    /// Frames a connection may have queued for it before it is closed as a
    /// slow consumer; plume's default is 4096 too.
    pub queue: usize,
    /// tungstenite's read buffer per connection. It zero-fills the whole
    /// buffer before every read and keeps it for the connection's life, so
    /// its 128 KiB default costs a 128 KiB memset per small frame and
    /// 128 KiB of resident memory per socket; client frames here are tens
    /// of bytes, so 4 KiB is plenty.
    pub read_buffer: usize,
}

/// Serves until SIGINT or SIGTERM. Prints `echo: listening on ADDR` on
/// stdout once it accepts connections.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let listener = listen(settings.bind)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.bind))?;
    println!("echo: listening on {}", listener.local_addr()?);
    let topics = Arc::new(Topics::default());
    let settings = Arc::new(settings);
    let ids = AtomicU64::new(1);
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = terminate.recv() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let id = ids.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(connection::serve(stream, id, topics.clone(), settings.clone()));
                }
                Err(error) => {
                    // Out of file descriptors, usually: wait for some to close.
                    eprintln!("echo: accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }
}

fn listen(bind: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match bind {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(bind)?;
    socket.listen(BACKLOG)
}
