//! What a socket task needs of its transport: frames in, frames out, close.
//!
//! WebSocket is one transport; a long-poll session is another. The socket
//! task (channels, calls, fan-out) is the same for both.

use std::future::Future;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// A connection's frames.
pub trait Transport: Send {
    /// The next frame from the client; `None` when the client is gone.
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
        self.next().await
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
