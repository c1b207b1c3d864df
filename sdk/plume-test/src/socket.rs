//! Sockets and channels as a test client holds them.
//!
//! A [`Socket`] is a real plume socket task (the one a WebSocket gets,
//! `plume::socket::serve`) whose transport is a pair of in-memory queues
//! instead of a TCP connection: frames go in as V2 JSON text, and come out
//! as the exact frames a client would read. So a reply, a push, a
//! broadcast, `phx_close` and `phx_error` reach the test as they would
//! reach phoenix.js, in the same order.
//!
//! A [`Channel`] is the test's view of one join: the frames of its topic
//! and join, and the broadcasts published on its topic since it joined.
//! Assertions claim what they match, so two `assert_push` calls for the
//! same event need two pushes.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::fmt;
use std::rc::Rc;

use plume::protocol::Body;
use plume::pubsub::SocketKey;
use plume::socket::Transport;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as Frame};

use crate::Inner;
use crate::pattern::{matches, pretty};

/// The reference of a push, to match its reply with
/// [`Channel::assert_reply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ref(u64);

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A message the server sent to a socket, as the client decoded it.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The join reference: set on replies, pushes and `phx_close` /
    /// `phx_error`; `None` on broadcasts.
    pub join_ref: Option<String>,
    /// The reference of the push a reply answers.
    pub reference: Option<String>,
    pub topic: String,
    /// `phx_reply`, `phx_close`, `phx_error`, or the plugin's event.
    pub event: String,
    /// The payload; a binary payload shows as an array of its bytes.
    pub payload: Value,
    /// Whether the frame was binary (a payload of raw bytes).
    pub binary: bool,
}

impl Message {
    fn summary(&self, claimed: bool) -> Value {
        let mut summary = json!({ "event": self.event, "payload": self.payload });
        if let Some(reference) = &self.reference {
            summary["ref"] = json!(reference);
        }
        if self.join_ref.is_none() {
            summary["broadcast"] = json!(true);
        }
        if claimed {
            summary["matched_earlier"] = json!(true);
        }
        summary
    }
}

/// A payload as the test sees it: JSON as JSON, bytes as an array of
/// numbers.
pub(crate) fn body_value(body: &Body) -> Value {
    match body {
        Body::Json(text) => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone())),
        Body::Binary(bytes) => bytes_value(bytes),
    }
}

fn bytes_value(bytes: &[u8]) -> Value {
    Value::Array(bytes.iter().map(|b| json!(b)).collect())
}

/// What the server's side of the in-memory connection hands the client.
enum ToClient {
    Frame(Frame),
    Closed { code: u16, reason: String },
}

/// The socket task's transport: two queues, and a tick of activity on the
/// harness each time the socket task goes round its loop.
pub(crate) struct MemoryTransport {
    inbound: mpsc::UnboundedReceiver<Frame>,
    outbound: mpsc::UnboundedSender<ToClient>,
    quiet: std::sync::Arc<crate::time::Quiet>,
}

impl Transport for MemoryTransport {
    async fn recv(&mut self) -> Option<Result<Frame, WsError>> {
        self.quiet.active();
        self.inbound.recv().await.map(Ok)
    }

    async fn send(&mut self, messages: &mut Vec<Frame>) -> Result<(), WsError> {
        self.quiet.active();
        for message in messages.drain(..) {
            if self.outbound.send(ToClient::Frame(message)).is_err() {
                return Err(WsError::ConnectionClosed);
            }
        }
        Ok(())
    }

    async fn close(&mut self, frame: CloseFrame) {
        self.quiet.active();
        let _ = self.outbound.send(ToClient::Closed {
            code: u16::from(frame.code),
            reason: frame.reason.to_string(),
        });
    }
}

/// One received message, and whether an assertion claimed it.
struct Received {
    message: Message,
    claimed: bool,
}

/// The client's side of a connection, shared by the socket and its
/// channels.
pub(crate) struct SocketState {
    harness: Rc<Inner>,
    key: SocketKey,
    id: Option<String>,
    assigns: Value,
    to_server: RefCell<Option<mpsc::UnboundedSender<Frame>>>,
    from_server: RefCell<mpsc::UnboundedReceiver<ToClient>>,
    received: RefCell<Vec<Received>>,
    closed: RefCell<Option<(u16, String)>>,
    next_ref: Cell<u64>,
}

/// A connected socket: join channels on it, or close it.
///
/// ```no_run
/// # use plume_test::{Harness, json};
/// let harness = Harness::new("room");
/// let socket = harness.connect(json!({})).expect("no socket plugin: everyone connects");
/// let (_reply, lobby) = socket.subscribe_and_join("room:lobby", json!({})).expect("joined");
/// socket.close();
/// ```
pub struct Socket {
    state: Rc<SocketState>,
}

/// A joined channel: push to it, and assert on what its client receives
/// and on what is broadcast on its topic.
pub struct Channel {
    socket: Rc<SocketState>,
    topic: String,
    join_ref: String,
    /// The first received message that may belong to this join.
    first_message: usize,
    /// The first published broadcast this channel observes.
    first_broadcast: usize,
    claimed_broadcasts: RefCell<BTreeSet<usize>>,
}

/// Shows the socket's id and assigns, so that a `Result` holding a socket
/// can be unwrapped in a test (`expect_err`).
impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.state.id)
            .field("assigns", &self.state.assigns)
            .field("closed_by_server", &self.state.closed.borrow())
            .finish_non_exhaustive()
    }
}

/// Shows the channel's topic and join reference, so that a join's
/// `Result` can be unwrapped either way (`expect_err`).
impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("topic", &self.topic)
            .field("join_ref", &self.join_ref)
            .field("socket_id", &self.socket.id)
            .finish_non_exhaustive()
    }
}

/// Start a socket task for an accepted connection.
pub(crate) fn open(harness: &Rc<Inner>, admission: plume::app::Admission, assigns: String, id: Option<String>) -> Socket {
    let (to_server, inbound) = mpsc::unbounded_channel();
    let (outbound, from_server) = mpsc::unbounded_channel();
    let key = plume::socket::next_socket_key();
    let transport = MemoryTransport {
        inbound,
        outbound,
        quiet: harness.quiet.clone(),
    };
    let accepted = plume::socket::Accepted {
        app: harness.app.clone(),
        key,
        serializer: plume::protocol::Serializer::V2,
        assigns: assigns.clone(),
        counted: plume::socket::Counted::new(&harness.app, key, id.as_deref()),
        socket_id: id.clone(),
        admission,
    };
    harness
        .runtime
        .spawn(plume::socket::serve(transport, accepted, harness.shutdown.subscribe()));
    let state = SocketState {
        harness: harness.clone(),
        key,
        id,
        assigns: serde_json::from_str(&assigns).unwrap_or(Value::Null),
        to_server: RefCell::new(Some(to_server)),
        from_server: RefCell::new(from_server),
        received: RefCell::new(Vec::new()),
        closed: RefCell::new(None),
        next_ref: Cell::new(0),
    };
    let socket = Socket { state: Rc::new(state) };
    harness.settle();
    socket
}

/// Decode a frame from the server.
fn decode(frame: &Frame) -> Option<Message> {
    match frame {
        Frame::Text(text) => {
            let value: Value = serde_json::from_str(text.as_str()).ok()?;
            let [join_ref, reference, topic, event, payload] = <[Value; 5]>::try_from(value.as_array()?.clone()).ok()?;
            let text_of = |v: Value| match v {
                Value::Null => None,
                Value::String(s) => Some(s),
                other => Some(other.to_string()),
            };
            Some(Message {
                join_ref: text_of(join_ref),
                reference: text_of(reference),
                topic: topic.as_str()?.to_owned(),
                event: event.as_str()?.to_owned(),
                payload,
                binary: false,
            })
        }
        Frame::Binary(bytes) => decode_binary(bytes),
        _ => None,
    }
}

/// Phoenix's V2 binary frames from the server: a push (kind 0), a reply
/// (kind 1) or a broadcast (kind 2), each a header of field lengths, the
/// fields, then the payload's bytes.
fn decode_binary(bytes: &[u8]) -> Option<Message> {
    let (&kind, rest) = bytes.split_first()?;
    let fields = match kind {
        0 => 3,
        1 => 4,
        2 => 2,
        _ => return None,
    };
    let lengths = rest.get(..fields)?;
    let mut at = fields;
    let mut texts = Vec::with_capacity(fields);
    for &len in lengths {
        let field = rest.get(at..at + usize::from(len))?;
        texts.push(String::from_utf8(field.to_vec()).ok()?);
        at += usize::from(len);
    }
    let payload = bytes_value(rest.get(at..)?);
    let non_empty = |s: &String| (!s.is_empty()).then(|| s.clone());
    Some(match kind {
        0 => Message {
            join_ref: non_empty(&texts[0]),
            reference: None,
            topic: texts[1].clone(),
            event: texts[2].clone(),
            payload,
            binary: true,
        },
        1 => Message {
            join_ref: non_empty(&texts[0]),
            reference: non_empty(&texts[1]),
            topic: texts[2].clone(),
            event: "phx_reply".into(),
            payload: json!({"status": texts[3], "response": payload}),
            binary: true,
        },
        _ => Message {
            join_ref: None,
            reference: None,
            topic: texts[0].clone(),
            event: texts[1].clone(),
            payload,
            binary: true,
        },
    })
}

impl SocketState {
    /// Settle the app, then take in what the server sent.
    fn collect(&self) {
        self.harness.settle();
        let mut from_server = self.from_server.borrow_mut();
        let mut received = self.received.borrow_mut();
        while let Ok(item) = from_server.try_recv() {
            match item {
                ToClient::Frame(frame) => {
                    if let Some(message) = decode(&frame) {
                        received.push(Received { message, claimed: false });
                    }
                }
                ToClient::Closed { code, reason } => *self.closed.borrow_mut() = Some((code, reason)),
            }
        }
    }

    fn next_ref(&self) -> u64 {
        let next = self.next_ref.get() + 1;
        self.next_ref.set(next);
        next
    }

    /// Send a V2 frame; a closed socket drops it, as a dead connection would.
    fn send(&self, join_ref: &str, reference: u64, topic: &str, event: &str, payload: &Value) {
        let frame = json!([join_ref, reference.to_string(), topic, event, payload]).to_string();
        if let Some(sender) = self.to_server.borrow().as_ref() {
            let _ = sender.send(Frame::Text(frame.into()));
        }
    }
}

impl Socket {
    /// Join `topic` with `payload`, as phoenix.js's `channel.join()` does:
    /// the join's reply, and the channel, or the error reply of a refused
    /// join. Like Phoenix.ChannelTest's `subscribe_and_join`, the channel
    /// observes every broadcast on its topic from now on
    /// ([`Channel::assert_broadcast`]).
    ///
    /// Panics if the server does not answer the join at all.
    ///
    /// ```no_run
    /// # use plume_test::{Harness, json};
    /// let harness = Harness::new("room");
    /// let socket = harness.connect(json!({})).unwrap();
    /// let (reply, _lobby) = socket.subscribe_and_join("room:lobby", json!({})).expect("lobby is open");
    /// assert_eq!(reply, json!({}));
    /// let refused = socket.subscribe_and_join("room:private", json!({})).err();
    /// assert_eq!(refused, Some(json!({"reason": "unauthorized"})));
    /// ```
    #[track_caller]
    pub fn subscribe_and_join(&self, topic: &str, payload: serde_json::Value) -> Result<(Value, Channel), Value> {
        let state = &self.state;
        state.collect();
        let first_message = state.received.borrow().len();
        let first_broadcast = state.harness.published_count();
        let reference = state.next_ref();
        let join_ref = reference.to_string();
        state.send(&join_ref, reference, topic, "phx_join", &payload);
        state.collect();
        let reply = {
            let mut received = state.received.borrow_mut();
            received[first_message..]
                .iter_mut()
                .find(|r| r.message.event == "phx_reply" && r.message.topic == topic && r.message.reference.as_deref() == Some(&join_ref))
                .map(|r| {
                    r.claimed = true;
                    r.message.payload.clone()
                })
        };
        let Some(reply) = reply else {
            panic!(
                "join {topic}: no reply to the join (ref {join_ref}). The socket received:\n{}",
                self.received_report(first_message, |m| m.topic == topic)
            );
        };
        let response = reply.get("response").cloned().unwrap_or(Value::Null);
        match reply.get("status").and_then(Value::as_str) {
            Some("ok") => Ok((
                response,
                Channel {
                    socket: state.clone(),
                    topic: topic.to_owned(),
                    join_ref,
                    first_message,
                    first_broadcast,
                    claimed_broadcasts: RefCell::new(BTreeSet::new()),
                },
            )),
            _ => Err(response),
        }
    }

    /// The socket's id, from the socket plugin's `id`.
    pub fn id(&self) -> Option<&str> {
        self.state.id.as_deref()
    }

    /// The socket's assigns, from the socket plugin's `connect`.
    pub fn assigns(&self) -> &Value {
        &self.state.assigns
    }

    /// Disconnect, as a client that goes away: every channel of the socket
    /// terminates (reason `closed`), and what they broadcast on the way out
    /// reaches the other sockets.
    pub fn close(&self) {
        self.state.to_server.borrow_mut().take();
        self.state.collect();
    }

    /// The close code and reason if the server closed the socket (a
    /// `disconnect` broadcast to its id, a limit), else `None`.
    pub fn closed_by_server(&self) -> Option<(u16, String)> {
        self.state.collect();
        self.state.closed.borrow().clone()
    }

    fn received_report(&self, from: usize, filter: impl Fn(&Message) -> bool) -> String {
        report(&self.state, from, filter)
    }
}

fn report(state: &SocketState, from: usize, filter: impl Fn(&Message) -> bool) -> String {
    let received = state.received.borrow();
    let list: Vec<Value> = received
        .get(from..)
        .unwrap_or_default()
        .iter()
        .filter(|r| filter(&r.message))
        .map(|r| r.message.summary(r.claimed))
        .collect();
    pretty(&Value::Array(list))
}

impl Channel {
    /// The channel's topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Whether a received message belongs to this join: its topic, and its
    /// join reference or none (a broadcast).
    fn owns(&self, message: &Message) -> bool {
        message.topic == self.topic && message.join_ref.as_deref().is_none_or(|r| r == self.join_ref)
    }

    /// Push `event` with `payload` to the channel, as phoenix.js's
    /// `channel.push` does. The server handles it at the next assertion (or
    /// [`Harness::advance`](crate::Harness::advance)), so several pushes in a
    /// row arrive as a burst, like a real client's.
    ///
    /// ```no_run
    /// # use plume_test::{Harness, json};
    /// # let harness = Harness::new("room");
    /// # let socket = harness.connect(json!({})).unwrap();
    /// # let (_, lobby) = socket.subscribe_and_join("room:lobby", json!({})).unwrap();
    /// let ping = lobby.push("ping", json!({"n": 1}));
    /// lobby.assert_reply(ping, "ok", json!({"n": 1}));
    /// ```
    pub fn push(&self, event: &str, payload: Value) -> Ref {
        let reference = self.socket.next_ref();
        self.socket.send(&self.join_ref, reference, &self.topic, event, &payload);
        Ref(reference)
    }

    /// Leave the channel (`phx_leave`); the server replies ok to the
    /// returned ref and sends `phx_close`.
    pub fn leave(&self) -> Ref {
        self.push("phx_leave", json!({}))
    }

    /// Broadcast `event` on this channel's topic to every subscriber but
    /// this socket, as Phoenix.ChannelTest's `broadcast_from` does.
    pub fn broadcast_from(&self, event: &str, payload: Value) {
        self.socket.harness.publish(&self.topic, event, &payload, Some(self.socket.key));
    }

    /// Assert that the server replied to `reference` with `status` (`"ok"`
    /// or `"error"`) and a response matching `pattern`
    /// ([`matches`](crate::matches)); returns the response.
    ///
    /// Panics with the expected and the received messages otherwise.
    #[track_caller]
    pub fn assert_reply(&self, reference: Ref, status: &str, pattern: Value) -> Value {
        self.socket.collect();
        let wanted = reference.to_string();
        let found = {
            let mut received = self.socket.received.borrow_mut();
            received[self.first_message..]
                .iter_mut()
                .filter(|r| self.owns(&r.message) && !r.claimed)
                .find(|r| r.message.event == "phx_reply" && r.message.reference.as_deref() == Some(&wanted))
                .map(|r| {
                    let reply = &r.message.payload;
                    let ok = reply.get("status").and_then(Value::as_str) == Some(status)
                        && reply.get("response").is_some_and(|response| matches(&pattern, response));
                    if ok {
                        r.claimed = true;
                    }
                    (ok, reply.get("response").cloned().unwrap_or(Value::Null))
                })
        };
        match found {
            Some((true, response)) => response,
            Some((false, _)) | None => panic!(
                "assert_reply on {}: expected a reply to ref {wanted} with status {status:?} and a response matching\n{}\nThe channel received:\n{}",
                self.topic,
                pretty(&pattern),
                self.report()
            ),
        }
    }

    /// Assert that no reply to `reference` with `status` and a response
    /// matching `pattern` has arrived.
    #[track_caller]
    pub fn refute_reply(&self, reference: Ref, status: &str, pattern: Value) {
        self.socket.collect();
        let wanted = reference.to_string();
        let received = self.socket.received.borrow();
        let hit = received[self.first_message..].iter().any(|r| {
            self.owns(&r.message)
                && !r.claimed
                && r.message.event == "phx_reply"
                && r.message.reference.as_deref() == Some(&wanted)
                && r.message.payload.get("status").and_then(Value::as_str) == Some(status)
                && r.message.payload.get("response").is_some_and(|response| matches(&pattern, response))
        });
        drop(received);
        if hit {
            panic!(
                "refute_reply on {}: a reply to ref {wanted} with status {status:?} matching\n{}\narrived. The channel received:\n{}",
                self.topic,
                pretty(&pattern),
                self.report()
            );
        }
    }

    /// Assert that the channel's client received `event` (a push from the
    /// channel, or a broadcast on its topic as delivered to it, after any
    /// `handle_out`) with a payload matching `pattern`; returns the payload.
    /// `phx_close` and `phx_error` can be asserted this way too.
    ///
    /// ```no_run
    /// # use plume_test::{Harness, json};
    /// # let harness = Harness::new("room");
    /// # let socket = harness.connect(json!({})).unwrap();
    /// # let (_, lobby) = socket.subscribe_and_join("room:lobby", json!({})).unwrap();
    /// lobby.push("new_msg", json!({"body": "hi"}));
    /// lobby.assert_push("new_msg", json!({"body": "hi"}));
    /// ```
    #[track_caller]
    pub fn assert_push(&self, event: &str, pattern: Value) -> Value {
        self.socket.collect();
        let found = {
            let mut received = self.socket.received.borrow_mut();
            received[self.first_message..]
                .iter_mut()
                .find(|r| self.owns(&r.message) && !r.claimed && r.message.event == event && matches(&pattern, &r.message.payload))
                .map(|r| {
                    r.claimed = true;
                    r.message.payload.clone()
                })
        };
        match found {
            Some(payload) => payload,
            None => panic!(
                "assert_push on {}: expected {event:?} with a payload matching\n{}\nThe channel received:\n{}",
                self.topic,
                pretty(&pattern),
                self.report()
            ),
        }
    }

    /// Assert that the channel's client has not received (and no assertion
    /// claimed) `event` with a payload matching `pattern`. Time does not
    /// pass here: a timer that is not due yet has not fired.
    #[track_caller]
    pub fn refute_push(&self, event: &str, pattern: Value) {
        self.socket.collect();
        let received = self.socket.received.borrow();
        let hit = received[self.first_message..]
            .iter()
            .any(|r| self.owns(&r.message) && !r.claimed && r.message.event == event && matches(&pattern, &r.message.payload));
        drop(received);
        if hit {
            panic!(
                "refute_push on {}: {event:?} with a payload matching\n{}\narrived. The channel received:\n{}",
                self.topic,
                pretty(&pattern),
                self.report()
            );
        }
    }

    /// Assert that `event` was broadcast on the channel's topic (by any
    /// channel, `broadcast_from` included, or by the harness) since the
    /// join began, with a payload matching `pattern`; returns the payload.
    #[track_caller]
    pub fn assert_broadcast(&self, event: &str, pattern: Value) -> Value {
        self.socket.collect();
        let published = self.socket.harness.published();
        let mut claimed = self.claimed_broadcasts.borrow_mut();
        let found = published
            .iter()
            .enumerate()
            .skip(self.first_broadcast)
            .find(|(i, p)| !claimed.contains(i) && p.topic == self.topic && p.event == event && matches(&pattern, &p.payload));
        match found {
            Some((i, p)) => {
                claimed.insert(i);
                p.payload.clone()
            }
            None => panic!(
                "assert_broadcast on {}: expected {event:?} with a payload matching\n{}\nBroadcast on the topic since the join:\n{}",
                self.topic,
                pretty(&pattern),
                self.broadcast_report(&published, &claimed)
            ),
        }
    }

    /// Assert that no `event` matching `pattern` was broadcast on the
    /// channel's topic since the join (leaving aside those claimed by
    /// [`assert_broadcast`](Self::assert_broadcast)).
    #[track_caller]
    pub fn refute_broadcast(&self, event: &str, pattern: Value) {
        self.socket.collect();
        let published = self.socket.harness.published();
        let claimed = self.claimed_broadcasts.borrow();
        let hit = published
            .iter()
            .enumerate()
            .skip(self.first_broadcast)
            .any(|(i, p)| !claimed.contains(&i) && p.topic == self.topic && p.event == event && matches(&pattern, &p.payload));
        if hit {
            panic!(
                "refute_broadcast on {}: {event:?} with a payload matching\n{}\nwas broadcast. Broadcast on the topic since the join:\n{}",
                self.topic,
                pretty(&pattern),
                self.broadcast_report(&published, &claimed)
            );
        }
    }

    /// What this channel received, in order, for a failure message.
    fn report(&self) -> String {
        report(&self.socket, self.first_message, |m| self.owns(m))
    }

    fn broadcast_report(&self, published: &[crate::broadcasts::Published], claimed: &BTreeSet<usize>) -> String {
        let list: Vec<Value> = published
            .iter()
            .enumerate()
            .skip(self.first_broadcast)
            .filter(|(_, p)| p.topic == self.topic)
            .map(|(i, p)| {
                let mut entry = json!({"event": p.event, "payload": p.payload});
                if claimed.contains(&i) {
                    entry["matched_earlier"] = json!(true);
                }
                entry
            })
            .collect();
        pretty(&Value::Array(list))
    }
}
