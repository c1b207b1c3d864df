//! What a socket task needs of its transport: frames in, frames out, close.
//!
//! WebSocket is one transport; a long-poll session is another. The socket
//! task (channels, calls, fan-out) is the same for both.

use std::future::Future;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// How long failing a connection, or answering the client's close frame,
/// may wait for the write.
const FAIL_GRACE: Duration = Duration::from_secs(2);

/// The close frame that fails the connection after `error` on a read, as
/// RFC 6455 §7.4.1 codes it; `None` where the connection is already gone.
///
/// tungstenite reports a broken frame but leaves failing the connection to
/// its user; a peer that is only dropped cannot tell a protocol error from
/// a network fault.
fn failure(error: &WsError) -> Option<CloseFrame> {
    let (code, reason) = match error {
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => return None,
        WsError::Protocol(_) => (CloseCode::Protocol, "protocol error"),
        WsError::Utf8(_) => (CloseCode::Invalid, "text is not valid UTF-8"),
        WsError::Capacity(_) => (CloseCode::Size, "message too big"),
        _ => return None,
    };
    Some(CloseFrame {
        code,
        reason: reason.into(),
    })
}

/// After failing a connection, read and discard what the client is still
/// sending (the rest of an oversized frame, say) until it closes, for at
/// most [`FAIL_GRACE`] and [`LINGER_BYTES`]. Closing a TCP socket with
/// unread data resets it, and a reset can destroy the close frame before
/// the client reads it, or fail the client's write: the client would see a
/// broken connection instead of the reason (1009 "message too big").
async fn linger<S: AsyncRead + Unpin>(stream: &mut S) {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 16 * 1024];
    let mut drained = 0usize;
    let _ = tokio::time::timeout(FAIL_GRACE, async {
        while drained < LINGER_BYTES {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

/// The most a failed connection's lingering close reads and discards.
const LINGER_BYTES: usize = 64 * 1024 * 1024;

/// A connection's frames.
pub trait Transport: Send {
    /// The next frame from the client; `None` when the client is gone. A
    /// frame that breaks the protocol comes back as an error, and the
    /// connection is already failed with the code it calls for.
    fn recv(&mut self) -> impl Future<Output = Option<Result<Message, WsError>>> + Send;

    /// Write `messages` (draining them) and flush, as one batch.
    fn send(&mut self, messages: &mut Vec<Message>) -> impl Future<Output = Result<(), WsError>> + Send;

    /// End the connection, telling the client why where the transport can.
    fn close(&mut self, frame: CloseFrame) -> impl Future<Output = ()> + Send;
}

impl<S> Transport for WebSocketStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    async fn recv(&mut self) -> Option<Result<Message, WsError>> {
        let frame = self.next().await;
        match &frame {
            // tungstenite queues the answer to a close frame (RFC 6455
            // §5.5.1) but writes it only on a later read or flush; callers
            // stop reading at a close, so the handshake completes here.
            Some(Ok(Message::Close(_))) => {
                let _ = tokio::time::timeout(FAIL_GRACE, self.flush()).await;
            }
            Some(Err(error)) => {
                if let Some(frame) = failure(error) {
                    let _ = tokio::time::timeout(FAIL_GRACE, WebSocketStream::close(self, Some(frame))).await;
                    linger(self.get_mut()).await;
                }
            }
            _ => {}
        }
        frame
    }

    async fn send(&mut self, messages: &mut Vec<Message>) -> Result<(), WsError> {
        for message in messages.drain(..) {
            self.feed(message).await?;
        }
        self.flush().await
    }

    async fn close(&mut self, frame: CloseFrame) {
        let _ = WebSocketStream::close(self, Some(frame)).await;
    }
}
