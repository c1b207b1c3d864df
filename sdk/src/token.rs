//! Phoenix.Token, with the app's secret: sign data for a client to hand
//! back later, and verify what it hands back. Tokens are interchangeable
//! with a Phoenix app that shares the `secret_key_base`.
//!
//! The data is JSON on this side and an Erlang term inside the token:
//! integers, strings, lists and maps with string keys round-trip.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::imports::token as wit;
use crate::payload::encode;

/// Sign `data` with `salt`. `max_age` (whole seconds) is stored in the
/// token and checked by [`verify`]; `None` means one day.
///
/// ```no_run
/// use std::time::Duration;
/// use plume_sdk::token;
///
/// let player_token = token::sign("player", &42, Some(Duration::from_secs(3600)))?;
/// # Ok::<(), token::TokenError>(())
/// ```
pub fn sign<T: Serialize + ?Sized>(
    salt: &str,
    data: &T,
    max_age: Option<Duration>,
) -> Result<String, TokenError> {
    Ok(wit::sign(
        salt,
        &encode(data)?,
        max_age.map(|age| age.as_secs()),
    )?)
}

/// Verify `token` with `salt` and decode its data into `T`. `max_age`
/// (whole seconds) overrides the age stored in the token.
///
/// ```no_run
/// use std::time::Duration;
/// use plume_sdk::token;
///
/// let user_id: u64 = token::verify("user socket", "SFMyNTY...", Some(Duration::from_secs(86_400)))?;
/// # Ok::<(), token::TokenError>(())
/// ```
pub fn verify<T: DeserializeOwned>(
    salt: &str,
    token: &str,
    max_age: Option<Duration>,
) -> Result<T, TokenError> {
    let data = wit::verify(salt, token, max_age.map(|age| age.as_secs()))?;
    serde_json::from_str(&data).map_err(TokenError::Decode)
}

/// Why a token could not be signed or verified.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Not a token, signed with another secret or salt, or tampered with.
    #[error("invalid token")]
    Invalid,
    /// Older than its max age: the client must get a new token.
    #[error("expired token; the client needs a new one")]
    Expired,
    /// No token was given.
    #[error("missing token")]
    Missing,
    /// `sign` was given data that cannot be a token term.
    #[error("this data cannot be put in a token: {0}")]
    InvalidData(String),
    /// The data could not be encoded as JSON.
    #[error("the data cannot be encoded as JSON: {0}")]
    Encode(#[from] serde_json::Error),
    /// The token is valid but its data is not the shape the caller expected.
    #[error("the token's data does not have the expected shape: {0}")]
    Decode(#[source] serde_json::Error),
}

impl From<wit::TokenError> for TokenError {
    fn from(error: wit::TokenError) -> Self {
        match error {
            wit::TokenError::Invalid => Self::Invalid,
            wit::TokenError::Expired => Self::Expired,
            wit::TokenError::Missing => Self::Missing,
            wit::TokenError::InvalidData(text) => Self::InvalidData(text),
        }
    }
}
