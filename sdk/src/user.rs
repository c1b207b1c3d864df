//! [`User`]: who a socket belongs to, as plume's socket plugins assign it.
//!
//! A socket plugin decides what a socket's assigns hold, and every channel
//! of the socket sees them. plume's socket plugins agree on one assign, so
//! a channel written against one works with the others: the demo's
//! `user_socket` (the socket plugin of the `plume.toml` that `plume new`
//! creates) and the one `plume new NAME --socket` generates both assign
//! `user`, the object `{"id": <integer>, "name": <string>, "role": "admin"
//! | "user"}`. A channel reads it with [`Socket::user`](crate::Socket::user);
//! with no socket plugin, or an anonymous socket, there is none.
//!
//! ```
//! use plume_sdk::{Assigns, Socket, User, json};
//!
//! let assigns = Assigns::new().with("user", json!({"id": 42, "name": "ada", "role": "admin"}));
//! let socket = Socket::new("room:lobby", assigns);
//! let user = socket.user().expect("a user socket");
//! assert_eq!((user.id, user.name.as_str(), user.is_admin()), (42, "ada", true));
//! ```

use serde::{Deserialize, Serialize};

/// The socket's user: the `user` assign of plume's socket plugins.
///
/// It also reads the data of a user token as those plugins accept it: a
/// whole user, or a bare id `N` standing for `{"id": N, "name": "user-N",
/// "role": "user"}`.
///
/// ```
/// use plume_sdk::{User, json};
///
/// let user: User = serde_json::from_value(json!(7)).unwrap();
/// assert_eq!(serde_json::to_value(&user).unwrap(), json!({"id": 7, "name": "user-7", "role": "user"}));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "UserData")]
pub struct User {
    /// The user's id: the socket's id is `<plugin>:<id>`.
    pub id: i64,
    /// A name to show.
    pub name: String,
    /// `"admin"` or `"user"`.
    pub role: String,
}

impl User {
    /// Whether the user's role is `admin`.
    pub fn is_admin(&self) -> bool {
        self.role == "admin"
    }
}

/// What a `user` assign or a user token may hold.
#[derive(Deserialize)]
#[serde(untagged)]
enum UserData {
    Id(i64),
    Whole { id: i64, name: String, role: String },
}

impl From<UserData> for User {
    fn from(data: UserData) -> Self {
        match data {
            UserData::Id(id) => User {
                id,
                name: format!("user-{id}"),
                role: "user".into(),
            },
            UserData::Whole { id, name, role } => User { id, name, role },
        }
    }
}
