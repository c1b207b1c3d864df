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

/// A text or binary message at least this big is written to the stream
/// from the message itself, not copied into tungstenite's write buffer.
/// That buffer keeps its largest size for the connection's life: one
/// `presence_state` of a 10,000-member topic (about 850 KB) would leave
/// every member's socket holding that much, gigabytes in all, while the
/// frame itself is one allocation shared by every joiner.
pub(crate) const LARGE_FRAME: usize = 16 * 1024;

/// The opcode of a message to write directly (see [`LARGE_FRAME`]).
fn large_frame(message: &Message) -> Option<u8> {
    match message {
        Message::Text(text) if text.len() >= LARGE_FRAME => Some(0x1),
        Message::Binary(bytes) if bytes.len() >= LARGE_FRAME => Some(0x2),
        _ => None,
    }
}

/// The header of an unfragmented, unmasked frame (a server's, RFC 6455
/// §5.2): FIN and `opcode`, then the payload's length in 7 bits, or 126
/// and 16 bits, or 127 and 64 bits, big-endian.
fn frame_header(opcode: u8, len: usize) -> ([u8; 10], usize) {
    let mut header = [0u8; 10];
    header[0] = 0x80 | opcode;
    let used = match len {
        0..=125 => {
            header[1] = len as u8;
            2
        }
        126..=0xFFFF => {
            header[1] = 126;
            header[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            4
        }
        _ => {
            header[1] = 127;
            header[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            10
        }
    };
    (header, used)
}

/// The stream under a WebSocket, able to write a large frame straight from
/// its message. The frame being written is kept here, not in the future
/// that writes it: a socket task drops that future when it gives up on a
/// client that stopped reading, and then writes the close frame (1008).
/// Every later write finishes the unfinished frame first, so the client
/// still reads whole frames, then the close.
pub struct Direct<S> {
    inner: S,
    unfinished: Option<Unfinished>,
}

/// A frame partly written by [`Direct`].
struct Unfinished {
    header: [u8; 10],
    header_len: usize,
    message: Message,
    /// Bytes written so far, header first.
    written: usize,
}

impl Unfinished {
    fn payload(&self) -> &[u8] {
        match &self.message {
            Message::Text(text) => text.as_bytes(),
            Message::Binary(bytes) => bytes,
            _ => &[],
        }
    }
}

impl<S> Direct<S> {
    pub fn new(inner: S) -> Direct<S> {
        Direct { inner, unfinished: None }
    }

    /// The stream itself.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Begin writing `message` as one `opcode` frame; it is written by
    /// [`Direct::poll_unfinished`] and by every later write.
    fn start(&mut self, opcode: u8, message: Message) {
        debug_assert!(self.unfinished.is_none(), "one direct frame at a time");
        let mut unfinished = Unfinished {
            header: [0; 10],
            header_len: 0,
            message,
            written: 0,
        };
        (unfinished.header, unfinished.header_len) = frame_header(opcode, unfinished.payload().len());
        self.unfinished = Some(unfinished);
    }
}

impl<S: AsyncWrite + Unpin> Direct<S> {
    /// Write the rest of the unfinished frame, if any.
    fn poll_unfinished(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        while let Some(frame) = &mut self.unfinished {
            let payload = frame.payload();
            let total = frame.header_len + payload.len();
            if frame.written == total {
                self.unfinished = None;
                break;
            }
            let rest = if frame.written < frame.header_len {
                &frame.header[frame.written..frame.header_len]
            } else {
                &payload[frame.written - frame.header_len..]
            };
            let n = std::task::ready!(std::pin::Pin::new(&mut self.inner).poll_write(cx, rest))?;
            if n == 0 {
                return std::task::Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            frame.written += n;
        }
        std::task::Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Direct<S> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Direct<S> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_unfinished(cx))?;
        std::pin::Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_unfinished(cx))?;
        std::pin::Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_unfinished(cx))?;
        std::pin::Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

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

impl<S> Transport for WebSocketStream<Direct<S>>
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
            match large_frame(&message) {
                Some(opcode) => {
                    // What tungstenite buffered goes first, then the frame
                    // straight from the shared message (see `LARGE_FRAME`).
                    self.flush().await?;
                    let stream = self.get_mut();
                    stream.start(opcode, message);
                    std::future::poll_fn(|cx| stream.poll_unfinished(cx)).await?;
                }
                None => self.feed(message).await?,
            }
        }
        self.flush().await
    }

    async fn close(&mut self, frame: CloseFrame) {
        let _ = WebSocketStream::close(self, Some(frame)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::Role;

    #[test]
    fn a_frame_header_codes_the_length_in_7_16_or_64_bits() {
        let header = |len| {
            let (bytes, used) = frame_header(0x1, len);
            bytes[..used].to_vec()
        };
        assert_eq!(header(125), [0x81, 125]);
        assert_eq!(header(126), [0x81, 126, 0, 126]);
        assert_eq!(header(0xFFFF), [0x81, 126, 0xFF, 0xFF]);
        assert_eq!(header(0x1_0000), [0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(frame_header(0x2, 5).0[0], 0x82, "binary");
    }

    #[tokio::test]
    async fn large_frames_written_directly_keep_their_place_among_buffered_ones() {
        let (server, client) = tokio::io::duplex(4 * 1024);
        let mut server = WebSocketStream::from_raw_socket(Direct::new(server), Role::Server, None).await;
        let mut client = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        let big_text = "é".repeat(LARGE_FRAME); // 2 bytes each
        let big_binary = vec![7u8; 70_000];
        let sent = vec![
            Message::text("first"),
            Message::text(big_text.clone()),
            Message::text("between"),
            Message::binary(big_binary.clone()),
            Message::text("last"),
        ];
        let mut batch = sent.clone();
        // The duplex holds 4 KiB: the writer waits on the reader, as a
        // socket does on a slow client.
        let (written, received) = tokio::join!(Transport::send(&mut server, &mut batch), async {
            let mut received = Vec::new();
            for _ in 0..sent.len() {
                received.push(client.next().await.expect("a frame").expect("a valid frame"));
            }
            received
        });
        written.expect("written");
        assert_eq!(received, sent);
        assert!(batch.is_empty(), "the batch is drained");
    }

    #[tokio::test]
    async fn a_direct_frame_cut_off_by_a_cancelled_write_is_finished_before_the_close() {
        let (server, client) = tokio::io::duplex(4 * 1024);
        let mut server = WebSocketStream::from_raw_socket(Direct::new(server), Role::Server, None).await;
        let mut client = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        let big = Message::text("y".repeat(100_000));
        // Nobody reads: the write stalls after 4 KiB, and the socket task
        // gives up on it (a slow reader), dropping the future mid-frame.
        let mut batch = vec![Message::text("before"), big.clone()];
        let stalled = tokio::time::timeout(Duration::from_millis(50), Transport::send(&mut server, &mut batch)).await;
        assert!(stalled.is_err(), "the write cannot finish while nobody reads");
        let close = CloseFrame {
            code: CloseCode::Policy,
            reason: "the client is not reading its messages".into(),
        };
        let (_, received) = tokio::join!(Transport::close(&mut server, close), async {
            let mut received = Vec::new();
            while let Some(Ok(message)) = client.next().await {
                let done = matches!(message, Message::Close(_));
                received.push(message);
                if done {
                    break;
                }
            }
            received
        });
        assert_eq!(received.len(), 3, "{:?}", received.iter().map(Message::len).collect::<Vec<_>>());
        assert_eq!(received[0], Message::text("before"));
        assert_eq!(received[1], big, "the cut-off frame arrives whole");
        assert!(
            matches!(&received[2], Message::Close(Some(frame)) if frame.code == CloseCode::Policy),
            "then the close: {:?}",
            received[2]
        );
    }
}
