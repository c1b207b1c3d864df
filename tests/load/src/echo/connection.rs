//! One client connection of the echo server, served by one task that reads
//! the client's frames and writes everything queued for it.
//!
//! Frames for a connection come from two places: answers to its own
//! frames, and broadcasts other connections put in its bounded queue. Both
//! are fed into the WebSocket's write buffer and flushed once per wake, so a
//! burst of broadcasts costs one write system call, not one per frame. An
//! answer is written after the broadcasts queued before it, so a publisher
//! sees its own `new_msg` before the reply, as on Phoenix.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use super::Settings;
use super::frame::{self, Push};
use super::topics::{Member, Topics};

/// How long a client gets to finish the WebSocket handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Queued frames written per wake before the client is read again, so a
/// flood of broadcasts cannot starve the client's own frames.
const FRAMES_PER_WAKE: usize = 256;

/// Serves one accepted TCP connection until the client leaves, the
/// connection breaks, or the client falls a whole queue behind.
pub async fn serve(stream: TcpStream, id: u64, topics: Arc<Topics>, settings: Arc<Settings>) {
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default().read_buffer_size(settings.read_buffer);
    let queue = settings.queue;
    let handshake = tokio_tungstenite::accept_async_with_config(stream, Some(config));
    let Ok(Ok(ws)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await else {
        return;
    };
    let (sender, queued) = mpsc::channel(queue.max(1));
    let mut connection = Connection {
        id,
        topics,
        queue: sender,
        capacity: queue.max(1),
        overflow: Arc::new(Notify::new()),
        joined: HashMap::new(),
        answers: Vec::new(),
    };
    connection.run(ws, queued).await;
    for topic in connection.joined.keys() {
        connection.topics.leave(topic, connection.id);
    }
}

struct Connection {
    id: u64,
    topics: Arc<Topics>,
    /// This connection's own queue, handed to the topics it joins.
    queue: mpsc::Sender<Message>,
    capacity: usize,
    overflow: Arc<Notify>,
    /// Joined topics, with the raw JSON of their join_ref.
    joined: HashMap<String, Box<str>>,
    /// Answers to the frame just read, written after the queue.
    answers: Vec<Message>,
}

impl Connection {
    async fn run(
        &mut self,
        mut ws: WebSocketStream<TcpStream>,
        mut queued: mpsc::Receiver<Message>,
    ) {
        let overflow = self.overflow.clone();
        // One waiter for the whole connection; notify_one leaves a permit
        // for it even while it is not being polled.
        let slow = overflow.notified();
        tokio::pin!(slow);
        loop {
            let written = tokio::select! {
                biased;
                () = &mut slow => {
                    let close = CloseFrame {
                        code: CloseCode::Again,
                        reason: "slow consumer".into(),
                    };
                    let _ = ws.close(Some(close)).await;
                    return;
                }
                frame = ws.next() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        self.on_text(&text);
                        self.write(&mut ws, &mut queued, None).await
                    }
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                    // A WebSocket ping: tungstenite queues the pong, a flush sends it.
                    Some(Ok(_)) => ws.flush().await,
                },
                Some(message) = queued.recv() => self.write(&mut ws, &mut queued, Some(message)).await,
            };
            if written.is_err() {
                return;
            }
        }
    }

    /// Feeds `first`, then what is queued, then the answers; flushes once.
    async fn write(
        &mut self,
        ws: &mut WebSocketStream<TcpStream>,
        queued: &mut mpsc::Receiver<Message>,
        first: Option<Message>,
    ) -> Result<(), WsError> {
        if let Some(message) = first {
            ws.feed(message).await?;
        }
        // Answers must not overtake broadcasts queued before them.
        let limit = if self.answers.is_empty() {
            FRAMES_PER_WAKE
        } else {
            self.capacity
        };
        for _ in 0..limit {
            match queued.try_recv() {
                Ok(message) => ws.feed(message).await?,
                Err(_) => break,
            }
        }
        for answer in self.answers.drain(..) {
            ws.feed(answer).await?;
        }
        ws.flush().await
    }

    /// Handles one frame from the client, leaving its answers in `answers`.
    /// A malformed frame is ignored: the baseline answers well-formed
    /// traffic only.
    fn on_text(&mut self, text: &str) {
        let Some(push) = Push::parse(text) else {
            return;
        };
        let Some(topic) = push.topic() else {
            return;
        };
        let Push(join_ref, reference, topic_json, event, payload) = &push;
        let answer = |status, response: &str, join_ref: &str| {
            Message::text(frame::reply(
                join_ref, reference, topic_json, status, response,
            ))
        };
        if event == "heartbeat" && topic == "phoenix" {
            self.answers.push(answer("ok", "{}", "null"));
            return;
        }
        if event == "phx_join" {
            if !self.joined.contains_key(topic.as_ref()) {
                let member = Member {
                    connection: self.id,
                    queue: self.queue.clone(),
                    overflow: self.overflow.clone(),
                };
                self.topics.join(&topic, member);
            }
            self.joined
                .insert(topic.into_owned(), join_ref.get().into());
            self.answers.push(answer("ok", "{}", join_ref.get()));
            return;
        }
        let Some(joined_ref) = self.joined.get(topic.as_ref()) else {
            self.answers
                .push(answer("error", r#"{"reason":"unmatched topic"}"#, "null"));
            return;
        };
        match event.as_ref() {
            "ping" => self.answers.push(answer("ok", payload.get(), joined_ref)),
            "new_msg" => match frame::new_msg_body(payload) {
                Some(body) => {
                    broadcast(&self.topics, &topic, frame::new_msg(topic_json, body));
                    self.answers.push(answer("ok", "{}", joined_ref));
                }
                None => self.answers.push(answer(
                    "error",
                    r#"{"reason":"invalid message"}"#,
                    joined_ref,
                )),
            },
            "phx_leave" => {
                self.answers.push(answer("ok", "{}", joined_ref));
                self.answers
                    .push(Message::text(frame::close(joined_ref, topic_json)));
                self.topics.leave(&topic, self.id);
                self.joined.remove(topic.as_ref());
            }
            _ => self.answers.push(answer(
                "error",
                r#"{"reason":"unhandled event"}"#,
                joined_ref,
            )),
        }
    }
}

/// Queues one frame, serialized once, for every member of `topic`; a
/// member whose queue is full is told to close.
fn broadcast(topics: &Topics, topic: &str, frame: String) {
    let Some(members) = topics.members(topic) else {
        return;
    };
    let frame = Utf8Bytes::from(frame);
    for member in members.iter() {
        if let Err(TrySendError::Full(_)) = member.queue.try_send(Message::Text(frame.clone())) {
            member.overflow.notify_one();
        }
    }
}
