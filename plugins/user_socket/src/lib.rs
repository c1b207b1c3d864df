//! UserSocket: who may connect to the demo app, as a plume plugin.
//!
//! A client connects with a `token` param: a Phoenix.Token signed with the
//! salt `"user socket"`, at most a day old, whose data is a user id `N`
//! (the user `{"id": N, "name": "user-N", "role": "user"}`) or a user map
//! `{"id", "name", "role"}`. A missing, invalid or expired token, or a
//! banned user (one with a key `banned:<id>`, written by the admin channel),
//! is refused. The socket's assigns are `{"user": {"id", "name", "role"}}`
//! and its id is `user_socket:<id>`, so that banning a user can close all of
//! their sockets.

use std::time::Duration;

use plume_sdk::{Assigns, ConnectInfo, Payload, SocketHandler, kv, token};
use serde::{Deserialize, Serialize};

/// The salt user tokens are signed with.
const SALT: &str = "user socket";

/// How old a user token may be.
const MAX_AGE: Duration = Duration::from_secs(86_400);

/// The socket handler.
struct UserSocket;

/// The connection's params; the rest is ignored.
#[derive(Deserialize)]
struct Params {
    token: String,
}

/// A user of the demo app, as the socket's `user` assign.
#[derive(Serialize, Deserialize)]
struct User {
    id: i64,
    name: String,
    role: Role,
}

/// What a user may do: admins may join `admin:*` topics.
#[derive(Serialize, Deserialize)]
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
    fn connect(params: Payload, _info: ConnectInfo) -> Result<Assigns, String> {
        let Params { token } = params
            .parse()
            .map_err(|err| format!("no usable token param: {err}"))?;
        let user: User = token::verify::<TokenData>(SALT, &token, Some(MAX_AGE))
            .map_err(|err| format!("token refused: {err}"))?
            .into();
        let banned = kv::get(&format!("banned:{}", user.id))
            .map_err(|err| format!("cannot check bans, refusing: {err}"))?;
        if banned.is_some() {
            return Err(format!("user {} is banned", user.id));
        }
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

    #[test]
    fn id_is_user_socket_and_the_user_id() {
        let user = json!({"id": 7, "name": "user-7", "role": "user"});
        let assigns = Assigns::new().with("user", user);
        assert_eq!(UserSocket::id(&assigns).as_deref(), Some("user_socket:7"));
    }
}
