//! One task per connection: frames in, channel calls, frames out.
//!
//! The socket task owns its channels outright (topic, join ref, assigns,
//! timers), so nothing about a channel is ever locked. It waits on three
//! things: a client frame, its mailbox (broadcasts from the broker, timers),
//! and the server's shutdown signal. Everything it decides is synchronous and
//! appends frames to an outbox; the outbox is written and flushed once per
//! wake-up, so a burst of broadcasts goes out in one write.
//!
//! Backpressure: the mailbox is bounded. A client that stops reading fills
//! it, and the socket is closed with 1008 rather than buffering without end.

mod channel;
mod connection;
pub mod reference;
pub(crate) mod transport;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Notify, mpsc};
use tokio::sync::mpsc::error::TrySendError;

use crate::pubsub::{ChannelKey, Delivery, Inbox, SocketKey};
use crate::runtime::TimerId;

pub use connection::{Accepted, Counted, serve};
pub use transport::Transport;

static NEXT_SOCKET: AtomicU64 = AtomicU64::new(1);
static NEXT_CHANNEL: AtomicU64 = AtomicU64::new(1);

/// A fresh socket key.
pub fn next_socket_key() -> SocketKey {
    NEXT_SOCKET.fetch_add(1, Ordering::Relaxed)
}

/// A fresh channel key. Zero is never handed out: it stands for the socket
/// itself in its id subscription.
fn next_channel_key() -> ChannelKey {
    NEXT_CHANNEL.fetch_add(1, Ordering::Relaxed)
}

/// What arrives in a socket's mailbox.
#[derive(Debug)]
pub enum SocketEvent {
    Delivery(Delivery),
    /// Boxed: every socket's mailbox allocates room for a block of events
    /// up front, so the common event (a delivery) sets the size.
    Timer(Box<TimerFired>),
    /// Boxed for the same reason.
    Http(Box<HttpDone>),
}

/// A channel's HTTP request ended; `message` is its `handle-info` message.
#[derive(Debug)]
pub struct HttpDone {
    pub channel: ChannelKey,
    pub id: u64,
    pub message: String,
}

/// A channel's timer went off.
#[derive(Debug)]
pub struct TimerFired {
    pub channel: ChannelKey,
    pub id: TimerId,
    pub message: String,
}

/// The sending end of a socket's mailbox, held by the broker and by timers.
#[derive(Debug, Clone)]
pub struct Mailbox {
    tx: mpsc::Sender<SocketEvent>,
    overflow: Arc<Notify>,
}

impl Mailbox {
    fn new(capacity: usize) -> (Mailbox, mpsc::Receiver<SocketEvent>, Arc<Notify>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let overflow = Arc::new(Notify::new());
        (
            Mailbox {
                tx,
                overflow: overflow.clone(),
            },
            rx,
            overflow,
        )
    }

}

impl Inbox for Mailbox {
    /// Queue a broadcast without waiting. A full mailbox means the client is
    /// not reading: the socket is told to close, and the delivery is dropped.
    fn deliver(&self, delivery: Delivery) -> bool {
        match self.tx.try_send(SocketEvent::Delivery(delivery)) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.overflow.notify_one();
                false
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }
}
