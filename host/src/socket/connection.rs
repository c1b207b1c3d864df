//! The connection loop: read frames, dispatch them, write the outbox.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use serde_json::value::RawValue;
use tokio::sync::{Notify, mpsc, watch};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::channel::Channel;
use super::transport::Transport;
use super::{Mailbox, SocketEvent};
use crate::app::App;
use crate::protocol::{self, InPayload, Inbound, Outbound, Payload, Serializer};
use crate::pubsub::{ChannelKey, Inbox, SocketKey, Subscriber, Subscription};

/// How long closing a socket may wait for its close frame to be written.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Malformed frames in a row after which the socket is closed with 1007.
const MAX_MALFORMED_IN_A_ROW: u32 = 10;

/// Events handled per wake-up before the outbox is written, so a flood of
/// broadcasts cannot starve the client's own frames.
const EVENTS_PER_WAKE: usize = 512;

/// A connection the socket plugin accepted.
pub struct Accepted {
    pub app: Arc<App>,
    pub key: SocketKey,
    pub serializer: Serializer,
    /// The socket's assigns (a JSON object), from `connect`.
    pub assigns: String,
    /// The socket's id, from `id`.
    pub socket_id: Option<String>,
    /// Its place among the app's `max_connections`, given back when the
    /// socket ends.
    pub admission: crate::app::Admission,
    /// Its count among the app's connections and its id's.
    pub counted: Counted,
}

/// A socket registered with its app from before the client is told it is
/// connected until the socket ends: counted among the app's connections
/// (and its id's, which `connections_of` reads), and subscribed to its
/// socket id, with its mailbox. A client that saw its upgrade answered is
/// in the figures and is closed by a disconnect of its id (an admin's ban),
/// even when its socket task has not run yet. A socket whose upgrade never
/// completes is unregistered when this is dropped.
pub struct Counted {
    app: Arc<App>,
    key: SocketKey,
    id: Option<String>,
    mailbox: Mailbox,
    /// The mailbox's receiving end, taken by the socket task.
    events: Option<mpsc::Receiver<SocketEvent>>,
    overflow: Arc<Notify>,
}

impl Counted {
    pub fn new(app: &Arc<App>, key: SocketKey, id: Option<&str>) -> Counted {
        let (mailbox, events, overflow) = Mailbox::new(app.limits.outbound_queue);
        app.figures.socket_opened(id);
        if let Some(id) = id {
            // Not waited for: a disconnect sent while the cluster learns of
            // this socket finds it at its next connect.
            let _live = app.broker.subscribe(
                id,
                Subscriber {
                    socket: key,
                    channel: 0,
                    kind: Subscription::SocketId,
                    inbox: Arc::new(mailbox.clone()),
                },
            );
        }
        Counted {
            app: app.clone(),
            key,
            id: id.map(str::to_owned),
            mailbox,
            events: Some(events),
            overflow,
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Some(id) = &self.id {
            self.app.broker.unsubscribe(id, self.key, 0);
        }
        self.app.figures.socket_closed(self.id.as_deref());
    }
}

/// How long a join waits for its topic to go live across the cluster
/// before it goes on regardless (the broker keeps trying).
const LIVE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A join whose channel subscribed to a topic not yet live across the
/// cluster, or whose recovery reads a history in Redis: it runs once that
/// is done (see `Connection::join`).
pub(super) struct WaitingJoin {
    /// Resolves when the topic is live here, with what the recovery read
    /// found, for a join that recovers.
    pub(super) ready: std::pin::Pin<Box<dyn std::future::Future<Output = Option<crate::history::Recovery>> + Send>>,
    pub(super) key: ChannelKey,
    pub(super) plugin: Arc<crate::app::ChannelPlugin>,
    pub(super) message: protocol::OwnedInbound,
    /// The channel this join replaces, gone already; it gets `phx_close`
    /// after the join's reply.
    pub(super) replaced: Option<Box<super::channel::Channel>>,
}

/// Work a socket does once the frame or event at hand is answered.
#[derive(Debug)]
pub(super) enum Pending {
    Info(ChannelKey, String),
    Delivery(crate::pubsub::Delivery),
}

/// Why a socket is closing, and the close code the client sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Closing {
    /// A `disconnect` broadcast to the socket's id. Phoenix closes such a
    /// socket with 1011; so does plume, so clients behave the same.
    Disconnected,
    /// The mailbox overflowed: the client does not read.
    SlowConsumer,
    /// Too many malformed frames in a row.
    Garbage,
    /// No frame from the client within the idle timeout. Phoenix (Bandit)
    /// closes with 1002 here.
    Idle,
    /// A frame over the size limit.
    TooBig,
    /// The server is shutting down.
    Shutdown,
}

impl Closing {
    fn frame(self) -> CloseFrame {
        let (code, reason) = match self {
            Closing::Disconnected => (CloseCode::Error, "disconnected"),
            Closing::SlowConsumer => (CloseCode::Policy, "the client is not reading its messages"),
            Closing::Garbage => (CloseCode::Invalid, "too many malformed messages"),
            Closing::Idle => (CloseCode::Protocol, "no message within the idle timeout"),
            Closing::TooBig => (CloseCode::Size, "message too big"),
            Closing::Shutdown => (CloseCode::Restart, "server restarting"),
        };
        CloseFrame {
            code,
            reason: reason.into(),
        }
    }

    /// The reason channels' `terminate` sees.
    fn terminate_reason(self) -> &'static str {
        match self {
            Closing::Shutdown => "shutdown",
            _ => "closed",
        }
    }
}

/// The state of one socket, owned by its task.
pub(super) struct Connection {
    pub(super) app: Arc<App>,
    pub(super) key: SocketKey,
    pub(super) serializer: Serializer,
    pub(super) assigns: String,
    pub(super) socket_id: Option<String>,
    pub(super) mailbox: Mailbox,
    /// The mailbox as the broker holds it: one allocation shared by every
    /// subscription of the socket.
    pub(super) inbox: Arc<dyn Inbox>,
    /// Boxed: a map allocates room for several entries at once, and a
    /// channel is a few hundred bytes; most sockets join one or two.
    pub(super) channels: HashMap<ChannelKey, Box<Channel>>,
    pub(super) topics: HashMap<Arc<str>, ChannelKey>,
    /// Work for after the current call's reply: `send-self` messages, and
    /// this socket's own broadcasts that need a plugin call (intercepted
    /// events, extra subscriptions), which Phoenix too delivers through the
    /// channel's mailbox, after the reply.
    pub(super) pending: VecDeque<Pending>,
    pub(super) outbox: Vec<Message>,
    pub(super) closing: Option<Closing>,
    /// A join waiting for its topic to go live; nothing else is read
    /// meanwhile, so frames after it keep their order.
    pub(super) waiting: Option<WaitingJoin>,
    malformed_in_a_row: u32,
    /// This socket's `max_events_per_second_per_socket`.
    events: crate::app::Bucket,
}

/// Run a socket until the client goes away, it is disconnected, or the
/// server shuts down. Every channel's `terminate` runs before this returns.
pub async fn serve<T: Transport>(mut ws: T, accepted: Accepted, mut shutdown: watch::Receiver<bool>) {
    let mut counted = accepted.counted;
    let (mailbox, overflow) = (counted.mailbox.clone(), counted.overflow.clone());
    let Some(mut events) = counted.events.take() else {
        tracing::error!(socket = accepted.key, "a socket's mailbox was taken twice");
        return;
    };
    let socket_rate = crate::app::Bucket::full(accepted.app.limits.max_events_per_second_per_socket);
    // The socket's place among the app's connections is given back when
    // this function returns, after every channel has terminated.
    let _admission = accepted.admission;
    let mut conn = Connection {
        app: accepted.app,
        key: accepted.key,
        serializer: accepted.serializer,
        assigns: accepted.assigns,
        socket_id: accepted.socket_id,
        inbox: Arc::new(mailbox.clone()),
        mailbox,
        channels: HashMap::new(),
        topics: HashMap::new(),
        pending: VecDeque::new(),
        outbox: Vec::new(),
        closing: None,
        waiting: None,
        malformed_in_a_row: 0,
        events: socket_rate,
    };

    let ended = conn.run(&mut ws, &mut events, &overflow, &mut shutdown).await;

    if matches!(ended, Some(Closing::SlowConsumer | Closing::Garbage | Closing::TooBig)) {
        crate::app::Figures::count(&conn.app.figures.limit_closes, 1);
    }
    let reason = ended.map_or("closed", Closing::terminate_reason);
    if let Some(waiting) = conn.waiting.take()
        && let Some(topic) = waiting.message.inbound().topic()
    {
        conn.app.broker.unsubscribe(&topic, conn.key, waiting.key);
    }
    conn.close_all_channels(reason);
    // Unsubscribes the socket id and uncounts the socket.
    drop(counted);
    if let Some(closing) = ended {
        let frame = closing.frame();
        if closing != Closing::Shutdown {
            tracing::info!(app = %conn.app.id, socket = conn.key, code = u16::from(frame.code), reason = %frame.reason, "closing the socket");
        }
        // The close frame queues behind whatever the client has not read;
        // a client that reads nothing gets no more than this grace period.
        let _ = tokio::time::timeout(CLOSE_GRACE, ws.close(frame)).await;
    }
}

impl Connection {
    /// The loop. Returns why the server closes the socket, or `None` when
    /// the client closed it or the connection broke.
    async fn run<T: Transport>(
        &mut self,
        ws: &mut T,
        events: &mut mpsc::Receiver<SocketEvent>,
        overflow: &Notify,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<Closing> {
        let idle_timeout = self.app.limits.idle_timeout;
        let mut last_heard = Instant::now();
        let idle = tokio::time::sleep(idle_timeout);
        tokio::pin!(idle);
        // Made once, not once per message: a `Notified` registers with its
        // `Notify` when first polled and unregisters when dropped, each
        // under a lock (2% of the server's CPU in the rpc benchmark when
        // made anew for every select). Either ends the socket when it fires.
        let overflowed = overflow.notified();
        tokio::pin!(overflowed);
        let shutting_down = shutdown.changed();
        tokio::pin!(shutting_down);
        loop {
            if let Some(mut waiting) = self.waiting.take() {
                let recovery = match tokio::time::timeout(LIVE_WAIT, &mut waiting.ready).await {
                    Ok(recovery) => recovery,
                    Err(_) => {
                        tracing::warn!(app = %self.app.id, socket = self.key, "a topic did not go live across the cluster in time; joining anyway");
                        None
                    }
                };
                self.resume_join(waiting, recovery);
            }
            while let Some(work) = self.pending.pop_front() {
                match work {
                    Pending::Info(channel, message) => self.info(channel, &message),
                    Pending::Delivery(delivery) => self.deliver(delivery),
                }
            }
            if !self.outbox.is_empty() {
                crate::app::Figures::count(&self.app.figures.messages_out, self.outbox.len() as u64);
            }
            if !self.outbox.is_empty() {
                // A client that stops reading blocks this write; its mailbox
                // then overflows, and that must still end the socket.
                tokio::select! {
                    biased;
                    written = ws.send(&mut self.outbox) => if written.is_err() {
                        return None;
                    },
                    _ = &mut overflowed => return Some(Closing::SlowConsumer),
                }
            }
            if let Some(closing) = self.closing {
                return Some(closing);
            }
            tokio::select! {
                biased;
                _ = &mut shutting_down => return Some(Closing::Shutdown),
                _ = &mut overflowed => return Some(Closing::SlowConsumer),
                frame = ws.recv() => {
                    last_heard = Instant::now();
                    match frame {
                        Some(Ok(Message::Text(text))) => {
                            crate::app::Figures::count(&self.app.figures.messages_in, 1);
                            self.on_text(&text);
                        }
                        Some(Ok(Message::Binary(bytes))) => {
                            crate::app::Figures::count(&self.app.figures.messages_in, 1);
                            self.on_binary(&bytes);
                        }
                        Some(Ok(Message::Close(_))) | None => return None,
                        Some(Ok(_)) => {}
                        Some(Err(WsError::Capacity(_))) => return Some(Closing::TooBig),
                        Some(Err(error)) => {
                            tracing::debug!(socket = self.key, %error, "connection broke");
                            return None;
                        }
                    }
                }
                event = events.recv() => {
                    let event = event?;
                    self.on_event(event);
                    for _ in 1..EVENTS_PER_WAKE {
                        match events.try_recv() {
                            Ok(event) => self.on_event(event),
                            Err(_) => break,
                        }
                    }
                }
                () = &mut idle => {
                    let deadline = last_heard + idle_timeout;
                    if Instant::now() >= deadline {
                        return Some(Closing::Idle);
                    }
                    idle.as_mut().reset(deadline.into());
                }
            }
        }
    }

    fn on_event(&mut self, event: SocketEvent) {
        match event {
            SocketEvent::Delivery(delivery) => self.deliver(delivery),
            SocketEvent::Timer(fired) => self.timer_fired(fired.channel, fired.id, &fired.message),
            SocketEvent::Http(done) => self.http_done(done.channel, done.id, &done.message),
        }
    }

    fn on_text(&mut self, text: &str) {
        match protocol::decode(self.serializer, text) {
            Ok(message) => {
                self.malformed_in_a_row = 0;
                self.dispatch(&message);
            }
            Err(error) => {
                let readable = error.reference.map(|reference| (reference, error.join_ref, error.topic));
                self.on_malformed(error.reason, readable);
            }
        }
    }

    /// A binary frame: a push whose payload is bytes (V2 only).
    fn on_binary(&mut self, frame: &[u8]) {
        if self.serializer != Serializer::V2 {
            return self.on_malformed("binary frames need the V2 serializer (vsn=2.0.0)", None);
        }
        match protocol::binary::decode(frame) {
            Ok(push) => {
                self.malformed_in_a_row = 0;
                self.dispatch(&Inbound {
                    join_ref: &push.join_ref,
                    reference: &push.reference,
                    topic: &push.topic,
                    event: &push.event,
                    payload: InPayload::Binary(push.payload),
                });
            }
            Err(error) => self.on_malformed(&error.reason(), None),
        }
    }

    /// Answer a malformed frame where its reference can be read; close the
    /// socket after too many in a row. Other channels are never touched.
    fn on_malformed(
        &mut self,
        reason: &str,
        readable: Option<(&RawValue, Option<&RawValue>, Option<&RawValue>)>,
    ) {
        tracing::debug!(socket = self.key, reason, "malformed message");
        self.malformed_in_a_row += 1;
        if self.malformed_in_a_row >= MAX_MALFORMED_IN_A_ROW {
            self.closing = Some(Closing::Garbage);
            return;
        }
        if let Some((reference, join_ref, topic)) = readable {
            let response = protocol::malformed::response(reason);
            self.send(&protocol::malformed::reply(reference, join_ref, topic, &response));
        }
    }

    fn dispatch(&mut self, message: &Inbound<'_>) {
        let (Some(topic), Some(event)) = (message.topic(), message.event()) else {
            return self.unmatched(message);
        };
        if topic == "phoenix" {
            return if event == "heartbeat" {
                self.send(&Outbound {
                    join_ref: protocol::NULL,
                    reference: message.reference.get(),
                    topic: message.topic.get(),
                    event: "phx_reply",
                    payload: Payload::Reply {
                        status: "ok",
                        response: "{}",
                    },
                });
            } else {
                self.unmatched(message)
            };
        }
        match &*event {
            "phx_leave" => self.leave(&topic, message),
            _ if !self.within_rates(&event, message) => {}
            "phx_join" => self.join(&topic, message),
            _ => self.handle_in(&topic, &event, message),
        }
    }

    /// Whether the socket's and the app's rates admit a join or a push. A
    /// refused one gets an error reply and runs no plugin code; the socket
    /// stays open, as with Supabase Realtime's per-tenant rate limits, and
    /// the client may retry (phoenix.js rejoins with backoff).
    fn within_rates(&mut self, event: &str, message: &Inbound<'_>) -> bool {
        let limits = &self.app.limits;
        let refused = if !self.events.take(limits.max_events_per_second_per_socket) {
            Some((r#"{"reason":"rate limited"}"#, "max_events_per_second_per_socket", limits.max_events_per_second_per_socket))
        } else if !self.app.rates.events.take() {
            Some((r#"{"reason":"rate limited"}"#, "max_events_per_second", limits.max_events_per_second))
        } else if event == "phx_join" && !self.app.rates.joins.take() {
            Some((r#"{"reason":"too many joins"}"#, "max_joins_per_second", limits.max_joins_per_second))
        } else {
            None
        };
        let Some((response, limit, per_second)) = refused else {
            return true;
        };
        crate::app::Figures::count(&self.app.figures.limit_refusals, 1);
        tracing::debug!(app = %self.app.id, socket = self.key, limit, per_second, "refused: over a rate limit");
        self.send(&Outbound {
            join_ref: message.join_ref.get(),
            reference: message.reference.get(),
            topic: message.topic.get(),
            event: "phx_reply",
            payload: Payload::Reply { status: "error", response },
        });
        false
    }

    /// `{"reason":"unmatched topic"}`: no channel for this topic here.
    pub(super) fn unmatched(&mut self, message: &Inbound<'_>) {
        self.send(&Outbound {
            join_ref: protocol::NULL,
            reference: message.reference.get(),
            topic: message.topic.get(),
            event: "phx_reply",
            payload: Payload::Reply {
                status: "error",
                response: r#"{"reason":"unmatched topic"}"#,
            },
        });
    }

    /// Encode a message into the outbox.
    pub(super) fn send(&mut self, message: &Outbound<'_>) {
        write(&mut self.outbox, self.serializer, message);
    }
}

/// Encode a message into an outbox. A message the socket's serializer
/// cannot carry (bytes for a V1 client, a binary header field over 255
/// bytes) is dropped and logged: the client could not decode it anyway.
pub(super) fn write(outbox: &mut Vec<Message>, serializer: Serializer, message: &Outbound<'_>) {
    match protocol::encode_frame(serializer, message) {
        Ok(frame) => outbox.push(frame),
        Err(error) => tracing::warn!(topic = message.topic, event = message.event, %error, "message not sent"),
    }
}
