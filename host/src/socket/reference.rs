//! Socket refs: a push kept to be answered later (Phoenix's `socket_ref`
//! and `reply/2`).
//!
//! A ref names the socket, the channel's join (channel keys are never
//! reused, so a rejoin is another key) and the push's reference as the
//! client sent it. Plugins hold it as text, in their assigns or the
//! key-value store, so it is signed with a key this process draws at start:
//! a plugin cannot forge one, nor aim at another app's or another
//! channel's push, and a ref does not outlive the process (its sockets do
//! not either).

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::pubsub::{ChannelKey, SocketKey};

/// Bytes of the signature kept in a ref: 128 bits.
const TAG_BYTES: usize = 16;

/// A push to answer: where it came from, and its reference (raw JSON, as
/// the client sent it, so the reply echoes it byte for byte).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketRef {
    pub socket: SocketKey,
    pub channel: ChannelKey,
    pub reference: String,
}

/// The process's signing key.
fn key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(rand::random)
}

fn mac(app: &str, socket: SocketKey, channel: ChannelKey, reference: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key()).expect("HMAC takes a key of any length");
    for part in [app.as_bytes(), &socket.to_be_bytes(), &channel.to_be_bytes(), reference.as_bytes()] {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac
}

impl SocketRef {
    /// The text a plugin holds: `socket.channel.reference.signature`.
    pub fn encode(&self, app: &str) -> String {
        let tag = mac(app, self.socket, self.channel, &self.reference).finalize().into_bytes();
        format!(
            "{}.{}.{}.{}",
            self.socket,
            self.channel,
            B64.encode(&self.reference),
            B64.encode(&tag[..TAG_BYTES])
        )
    }

    /// Read a ref a plugin handed back; refused when it is not one this
    /// process signed for `app`.
    pub fn decode(text: &str, app: &str) -> Result<SocketRef, String> {
        let refused = || format!("`{}` is not a socket ref of this app (take one with channel.socket-ref)", abbreviate(text));
        let mut parts = text.split('.');
        let (Some(socket), Some(channel), Some(reference), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(refused());
        };
        let socket: SocketKey = socket.parse().map_err(|_| refused())?;
        let channel: ChannelKey = channel.parse().map_err(|_| refused())?;
        let reference = B64.decode(reference).ok().and_then(|bytes| String::from_utf8(bytes).ok()).ok_or_else(refused)?;
        let tag = B64.decode(tag).map_err(|_| refused())?;
        if tag.len() != TAG_BYTES {
            return Err(refused());
        }
        mac(app, socket, channel, &reference).verify_truncated_left(&tag).map_err(|_| refused())?;
        Ok(SocketRef { socket, channel, reference })
    }
}

/// At most 40 characters of what a plugin passed, for an error message.
fn abbreviate(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SocketRef {
        SocketRef { socket: 7, channel: 42, reference: "\"5\"".into() }
    }

    #[test]
    fn a_ref_reads_back_as_itself() {
        let text = sample().encode("demo");
        assert_eq!(SocketRef::decode(&text, "demo"), Ok(sample()));
    }

    #[test]
    fn a_forged_or_foreign_ref_is_refused() {
        let text = sample().encode("demo");
        assert!(SocketRef::decode(&text, "acme").is_err(), "another app's");
        let forged = text.replacen("7.42.", "7.43.", 1);
        assert!(SocketRef::decode(&forged, "demo").is_err(), "another channel");
        for garbage in ["", "x", "1.2.3", "1.2.Ig.AAAA", &format!("{text}.x"), "7.42.IjUi.notbase64!"] {
            assert!(SocketRef::decode(garbage, "demo").is_err(), "{garbage}");
        }
        let error = SocketRef::decode(&"y".repeat(500), "demo").unwrap_err();
        assert!(error.len() < 200, "{error}");
    }
}
