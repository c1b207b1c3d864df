//! UserSocket: who may connect to the demo app, as a plume plugin.
//!
//! A client connects with a `token` param or, without one, with the token
//! phoenix.js sends in the WebSocket subprotocol for its `authToken` option
//! (the host hands it over as [`ConnectInfo::auth_token`]). Either way it is
//! a Phoenix.Token signed with the salt `"user socket"`, at most a day old,
//! whose data is a user id `N` (the user
//! `{"id": N, "name": "user-N", "role": "user"}`) or a user map
//! `{"id", "name", "role"}`. A missing, invalid or expired token, or a
//! banned user (one with a key `banned:<id>`, written by the admin channel),
//! is refused. The socket's assigns are `{"user": {"id", "name", "role"}}`
//! and its id is `user_socket:<id>`, so that banning a user can close all of
//! their sockets. Every accepted user is recorded under `users:<id>` in the
//! key-value store, for the admin channel's `get_user_details`.

use std::time::Duration;

use plume_sdk::{Assigns, ConnectInfo, Payload, SocketHandler, kv, log, token};
use serde::{Deserialize, Serialize};

/// The salt user tokens are signed with.
const SALT: &str = "user socket";

/// How old a user token may be.
const MAX_AGE: Duration = Duration::from_secs(86_400);

/// The socket handler. Public, as every demo plugin's handler is: a native
/// build of the crate (its unit tests, `cargo build --workspace`) has no
/// component exports, and would otherwise find the whole handler unused.
pub struct UserSocket;

/// The connection's params; the rest is ignored.
#[derive(Deserialize)]
struct Params {
    token: Option<String>,
}

/// The token a connection presents: its `token` param when it has one (so a
/// client that sends both is judged by the param, as before `authToken`
/// existed), else the `authToken` from the subprotocol.
fn presented_token(params: &Payload, info: ConnectInfo) -> Result<String, String> {
    let Params { token } = params
        .parse()
        .map_err(|err| format!("no usable token param: {err}"))?;
    token
        .or(info.auth_token)
        .ok_or_else(|| "no token: neither a token param nor an authToken".to_owned())
}

/// A user of the demo app, as the socket's `user` assign.
#[derive(PartialEq, Serialize, Deserialize)]
struct User {
    id: i64,
    name: String,
    role: Role,
}

/// What a user may do: admins may join `admin:*` topics.
#[derive(PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Role {
    Admin,
    User,
}

/// The data of a user token: a bare id or a whole user.
#[derive(Deserialize)]
#[serde(untagged)]
enum TokenData {
    Id(i64),
    User(User),
}

impl From<TokenData> for User {
    fn from(data: TokenData) -> Self {
        match data {
            TokenData::Id(id) => User {
                id,
                name: format!("user-{id}"),
                role: Role::User,
            },
            TokenData::User(user) => user,
        }
    }
}

impl SocketHandler for UserSocket {
    fn connect(params: Payload, info: ConnectInfo) -> Result<Assigns, String> {
        let token = presented_token(&params, info)?;
        let user: User = token::verify::<TokenData>(SALT, &token, Some(MAX_AGE))
            .map_err(|err| format!("token refused: {err}"))?
            .into();
        let banned = kv::get(&format!("banned:{}", user.id))
            .map_err(|err| format!("cannot check bans, refusing: {err}"))?;
        if banned.is_some() {
            return Err(format!("user {} is banned", user.id));
        }
        record(&user);
        let mut assigns = Assigns::new();
        assigns
            .try_assign("user", &user)
            .map_err(|err| format!("cannot store the user: {err}"))?;
        Ok(assigns)
    }

    fn id(assigns: &Assigns) -> Option<String> {
        let user: User = assigns.get("user")?;
        Some(format!("user_socket:{}", user.id))
    }
}

/// Records `user` under `users:<id>`, writing only when it changed, so a
/// user who reconnects costs the store a read. A failure is logged, not
/// fatal: the user connects, only their details are missing.
fn record(user: &User) {
    let key = format!("users:{}", user.id);
    if matches!(kv::get_json::<User>(&key), Ok(Some(known)) if known == *user) {
        return;
    }
    if let Err(err) = kv::set_json(&key, user, None) {
        log::warn(&format!("user {} not recorded: {err}", user.id));
    }
}

plume_sdk::export_socket!(UserSocket);

#[cfg(test)]
mod tests {
    use super::*;
    use plume_sdk::{Value, json};

    /// The `user` assign a token's data makes, if it is a user token.
    fn user_from(data: Value) -> Option<Value> {
        let data: TokenData = serde_json::from_value(data).ok()?;
        serde_json::to_value(User::from(data)).ok()
    }

    #[test]
    fn an_integer_id_stands_for_user_n() {
        assert_eq!(
            user_from(json!(7)),
            Some(json!({"id": 7, "name": "user-7", "role": "user"}))
        );
    }

    #[test]
    fn a_user_map_is_the_user() {
        let data = json!({"id": 1, "name": "ada", "role": "admin"});
        assert_eq!(user_from(data.clone()), Some(data));
    }

    #[test]
    fn token_data_of_another_shape_is_refused() {
        for data in [
            json!("7"),
            json!({"id": 1}),
            json!({"id": 1, "name": "x", "role": "root"}),
        ] {
            assert_eq!(user_from(data.clone()), None, "{data}");
        }
    }

    fn with_auth_token(auth_token: Option<&str>) -> ConnectInfo {
        ConnectInfo {
            auth_token: auth_token.map(str::to_owned),
            ..ConnectInfo::default()
        }
    }

    #[test]
    fn the_token_param_is_the_token() {
        let params = Payload::from_raw(r#"{"token":"from-param"}"#);
        assert_eq!(
            presented_token(&params, with_auth_token(None)).as_deref(),
            Ok("from-param")
        );
    }

    #[test]
    fn without_a_token_param_the_auth_token_is_the_token() {
        let params = Payload::from_raw(r#"{"other":"x"}"#);
        assert_eq!(
            presented_token(&params, with_auth_token(Some("from-subprotocol"))).as_deref(),
            Ok("from-subprotocol")
        );
    }

    #[test]
    fn a_token_param_wins_over_the_auth_token() {
        let params = Payload::from_raw(r#"{"token":"from-param"}"#);
        assert_eq!(
            presented_token(&params, with_auth_token(Some("from-subprotocol"))).as_deref(),
            Ok("from-param")
        );
    }

    #[test]
    fn neither_a_token_param_nor_an_auth_token_is_refused() {
        assert!(presented_token(&Payload::from_raw("{}"), with_auth_token(None)).is_err());
    }

    #[test]
    fn a_token_param_that_is_not_a_string_is_refused() {
        let params = Payload::from_raw(r#"{"token":7}"#);
        assert!(presented_token(&params, with_auth_token(Some("from-subprotocol"))).is_err());
    }

    #[test]
    fn id_is_user_socket_and_the_user_id() {
        let user = json!({"id": 7, "name": "user-7", "role": "user"});
        let assigns = Assigns::new().with("user", user);
        assert_eq!(UserSocket::id(&assigns).as_deref(), Some("user_socket:7"));
    }
}
