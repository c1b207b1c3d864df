//! The heartbeat barrier: "nothing more arrives" without a fixed window.
//!
//! A test that asserts a client gets *no* frame (a broadcast that must not
//! cross tenants, a push that a refused join must not make) used to wait a
//! few hundred milliseconds and call the silence proof. On a loaded
//! machine the frame may come after the window, and the test passes while
//! the bug is there; on a quiet one the window is time wasted.
//!
//! Instead: once whatever could have caused the frame has been answered
//! (the push that broadcasts got its reply, the join its refusal), the
//! client sends a heartbeat, and the next frame must be the heartbeat's
//! reply. A socket handles its client's frames in order, and by the time
//! the heartbeat was sent, any frame caused before it was already queued
//! for the socket. The socket reads its client's frames before its queue
//! of broadcasts when both are ready (`biased` in its loop), so one
//! heartbeat could overtake a broadcast queued a moment before; the socket
//! writes the first reply and then, with no frame from the client yet,
//! takes what is queued. So the barrier is two heartbeats, each answered
//! before the next is sent.

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::{Client, WAIT};

impl Client {
    /// Assert that nothing was queued for this client before now: two
    /// heartbeats, and each next frame is its reply.
    pub async fn expect_quiet(&mut self) {
        for _ in 0..2 {
            let reference = format!("barrier-{}", self.next_ref());
            let (heartbeat, expected) = if self.v1 {
                (
                    format!(r#"{{"topic":"phoenix","event":"heartbeat","payload":{{}},"ref":"{reference}"}}"#),
                    format!(r#"{{"event":"phx_reply","payload":{{"response":{{}},"status":"ok"}},"ref":"{reference}","topic":"phoenix"}}"#),
                )
            } else {
                (
                    format!(r#"[null,"{reference}","phoenix","heartbeat",{{}}]"#),
                    format!(r#"[null,"{reference}","phoenix","phx_reply",{{"response":{{}},"status":"ok"}}]"#),
                )
            };
            self.ws.send(Message::Text(heartbeat.into())).await.expect("send a heartbeat");
            loop {
                match tokio::time::timeout(WAIT, self.ws.next()).await {
                    Err(_) => panic!("no reply to the heartbeat within {WAIT:?}"),
                    Ok(Some(Ok(Message::Text(text)))) => {
                        assert_eq!(text.as_str(), expected, "expected nothing before the heartbeat's reply");
                        break;
                    }
                    Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
                    Ok(other) => panic!("expected nothing before the heartbeat's reply, got {other:?}"),
                }
            }
        }
    }
}

/// The frames `client` receives before the reply to a heartbeat sent now:
/// everything queued for it before that moment, in order.
pub async fn frames_until_heartbeat(client: &mut Client) -> Vec<serde_json::Value> {
    let reference = client.next_ref();
    client.send(serde_json::json!([null, reference, "phoenix", "heartbeat", {}])).await;
    let mut before = Vec::new();
    loop {
        let frame = client.recv().await;
        if frame[3] == "phx_reply" && frame[1] == reference.as_str() {
            return before;
        }
        before.push(frame);
    }
}
