//! Demo identities: a user token for a name someone typed.
//!
//! The demo app's user socket accepts a Phoenix.Token (salt
//! `"user socket"`) whose data is a user map `{"id", "name", "role"}`, and
//! so does the chat channel's join. A real app would mint it after a login;
//! the demo page has no login, so it asks for a name and gets a token for a
//! fresh user of that name, signed with the app's secret. Each identity is a
//! new user (a random id) with role `"user"`: the endpoint can never hand
//! out an admin, nor someone else's id. It exists only with the demo app.

use hyper::StatusCode;
use serde_json::{Value, json};

use crate::token::Tokens;

/// The salt the user socket verifies tokens with.
const USER_SOCKET_SALT: &str = "user socket";

/// How long a demo token stays valid: the user socket's max age.
const MAX_AGE_S: u64 = 86_400;

/// The longest name, in characters: it is shown in the message list and
/// the presence list.
pub const MAX_NAME_CHARS: usize = 32;

/// Why no identity was minted.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum IdentityError {
    #[error("send a JSON object with a \"name\" string, e.g. {{\"name\": \"ada\"}}")]
    Malformed,
    #[error("the name is empty")]
    EmptyName,
    #[error("the name is longer than {MAX_NAME_CHARS} characters")]
    NameTooLong,
    #[error("the name has control characters")]
    ControlCharacters,
    #[error("cannot sign the token: {0}")]
    Sign(String),
}

impl IdentityError {
    /// The HTTP status that goes with the error.
    pub fn status(&self) -> StatusCode {
        match self {
            IdentityError::Malformed => StatusCode::BAD_REQUEST,
            IdentityError::Sign(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

/// The name in a request body `{"name": N}`, trimmed and checked.
pub fn name_from_request(body: &[u8]) -> Result<String, IdentityError> {
    let request: Value = serde_json::from_slice(body).map_err(|_| IdentityError::Malformed)?;
    let name = request
        .get("name")
        .and_then(Value::as_str)
        .ok_or(IdentityError::Malformed)?
        .trim();
    if name.is_empty() {
        return Err(IdentityError::EmptyName);
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(IdentityError::NameTooLong);
    }
    if name.chars().any(char::is_control) {
        return Err(IdentityError::ControlCharacters);
    }
    Ok(name.to_owned())
}

/// A new user named `name` and a user-socket token for them, signed now:
/// `{"token", "user": {"id", "name", "role"}, "socket_path"}`, the socket
/// path telling the page where to connect.
pub fn mint(tokens: &Tokens, socket_path: &str, name: &str) -> Result<Value, IdentityError> {
    // Random rather than counted, so that ids stay unique across restarts
    // (a page keeps its identity when the server restarts); below 2^31 so
    // that every client's integer type holds them.
    let user = json!({
        "id": rand::random_range(1..=i64::from(i32::MAX)),
        "name": name,
        "role": "user",
    });
    let token = tokens
        .sign(USER_SOCKET_SALT, &user, crate::clock::unix_ms(), MAX_AGE_S)
        .map_err(|error| IdentityError::Sign(error.to_string()))?;
    Ok(json!({ "token": token, "user": user, "socket_path": socket_path }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_trimmed() {
        assert_eq!(
            name_from_request(br#"{"name": "  ada lovelace "}"#),
            Ok("ada lovelace".to_owned())
        );
    }

    #[test]
    fn names_are_counted_in_characters() {
        let longest = "é".repeat(MAX_NAME_CHARS);
        assert_eq!(
            name_from_request(json!({ "name": longest }).to_string().as_bytes()),
            Ok(longest)
        );
        let too_long = "é".repeat(MAX_NAME_CHARS + 1);
        assert_eq!(
            name_from_request(json!({ "name": too_long }).to_string().as_bytes()),
            Err(IdentityError::NameTooLong)
        );
    }

    #[test]
    fn bad_requests_are_refused_with_the_reason() {
        assert_eq!(name_from_request(b"ada"), Err(IdentityError::Malformed));
        assert_eq!(
            name_from_request(br#"{"name": 42}"#),
            Err(IdentityError::Malformed)
        );
        assert_eq!(name_from_request(br#"{}"#), Err(IdentityError::Malformed));
        assert_eq!(
            name_from_request(br#"{"name": "   "}"#),
            Err(IdentityError::EmptyName)
        );
        assert_eq!(
            name_from_request(br#"{"name": "a\u0007b"}"#),
            Err(IdentityError::ControlCharacters)
        );
        assert_eq!(IdentityError::Malformed.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            IdentityError::EmptyName.status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }

    #[test]
    fn a_minted_token_is_a_user_socket_token_for_a_plain_user() {
        let tokens = Tokens::new(b"a secret key base that is long enough for the demo page's test");
        let identity = mint(&tokens, "/socket", "ada").expect("minted");
        let data = tokens
            .verify(
                USER_SOCKET_SALT,
                identity["token"].as_str().expect("a token"),
                Some(MAX_AGE_S),
                crate::clock::unix_ms(),
            )
            .expect("the user socket accepts it");
        assert_eq!(data, identity["user"]);
        assert_eq!(data["name"], "ada");
        assert_eq!(data["role"], "user");
        assert!(data["id"].as_i64().is_some_and(|id| id >= 1));
        assert_eq!(identity["socket_path"], "/socket");
    }

    #[test]
    fn each_identity_is_a_new_user() {
        let tokens = Tokens::new(b"secret");
        let first = mint(&tokens, "/socket", "ada").expect("minted");
        let second = mint(&tokens, "/socket", "ada").expect("minted");
        assert_ne!(first["user"]["id"], second["user"]["id"]);
    }
}
