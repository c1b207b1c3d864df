//! [`Assigns`]: the state of one channel (or socket), kept by the host.

use std::cell::OnceCell;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The assigns of a socket or channel: a JSON object the host keeps
/// between calls, like the assigns of a Phoenix socket.
///
/// A plugin instance keeps nothing between calls, so whatever a channel
/// must remember (the user, a counter, a timer id) lives here. The host
/// sends the assigns as JSON text with every call; they are parsed the
/// first time a handler reads them and sent back only if a handler changed
/// them, so a handler that never touches them costs no parsing and no
/// serializing.
///
/// ```
/// use plume_sdk::{json, Assigns};
///
/// let mut assigns = Assigns::new().with("count", 1);
/// let count: u64 = assigns.get("count").unwrap_or(0);
/// assigns.assign("count", count + 1);
/// assert_eq!(assigns.get::<u64>("count"), Some(2));
/// ```
#[derive(Clone, Default)]
pub struct Assigns {
    /// The JSON text the host sent; `None` for assigns a plugin built.
    raw: Option<String>,
    /// The parsed object. Always set when `raw` is `None`.
    map: OnceCell<Map<String, Value>>,
    /// Whether a handler may have changed the map since it was received.
    changed: bool,
}

impl Assigns {
    /// Empty assigns, to build the assigns a socket starts with in
    /// [`SocketHandler::connect`](crate::SocketHandler::connect).
    ///
    /// ```
    /// let assigns = plume_sdk::Assigns::new();
    /// assert!(assigns.as_map().is_empty());
    /// ```
    pub fn new() -> Self {
        Self {
            raw: None,
            map: OnceCell::from(Map::new()),
            changed: false,
        }
    }

    /// Assigns as the host sent them: parsed on first access.
    pub(crate) fn from_json(raw: String) -> Self {
        Self {
            raw: Some(raw),
            map: OnceCell::new(),
            changed: false,
        }
    }

    /// Sets `key` to `value` and returns the assigns: the by-value form of
    /// [`assign`](Self::assign), for building assigns in one expression.
    ///
    /// ```
    /// use plume_sdk::{json, Assigns};
    ///
    /// let assigns = Assigns::new().with("user", json!({"id": 1, "name": "ada"}));
    /// assert_eq!(assigns.get::<u64>("missing"), None);
    /// ```
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.assign(key, value);
        self
    }

    /// The value under `key`, deserialized into `T`; `None` when the key is
    /// absent or its value is not a `T`.
    ///
    /// ```
    /// use plume_sdk::Assigns;
    /// use serde::Deserialize;
    ///
    /// #[derive(Deserialize)]
    /// struct User {
    ///     id: u64,
    /// }
    ///
    /// let assigns = Assigns::new().with("user", plume_sdk::json!({"id": 7}));
    /// let user: Option<User> = assigns.get("user");
    /// assert_eq!(user.map(|u| u.id), Some(7));
    /// ```
    pub fn get<'a, T: Deserialize<'a>>(&'a self, key: &str) -> Option<T> {
        self.as_map()
            .get(key)
            .and_then(|value| T::deserialize(value).ok())
    }

    /// Every assign, as a JSON object.
    ///
    /// ```
    /// let assigns = plume_sdk::Assigns::new().with("a", 1);
    /// for (key, value) in assigns.as_map() {
    ///     println!("{key} = {value}");
    /// }
    /// ```
    pub fn as_map(&self) -> &Map<String, Value> {
        self.map.get_or_init(|| parse(self.raw.as_deref()))
    }

    /// The object itself, to change it in place. Counts as a change: the
    /// assigns are sent back to the host after the call.
    ///
    /// ```
    /// let mut assigns = plume_sdk::Assigns::new().with("a", 1).with("b", 2);
    /// assigns.as_map_mut().retain(|key, _| key != "a");
    /// assert_eq!(assigns.as_map().len(), 1);
    /// ```
    pub fn as_map_mut(&mut self) -> &mut Map<String, Value> {
        self.as_map();
        self.changed = true;
        self.map
            .get_mut()
            .expect("as_map() parses the assigns before they are borrowed mutably")
    }

    /// Sets `key` to `value`. Setting a key to the value it already holds is
    /// not a change, so the assigns are not sent back for it.
    ///
    /// ```
    /// use plume_sdk::{json, Assigns};
    ///
    /// let mut assigns = Assigns::new();
    /// assigns.assign("room", "lobby").assign("members", json!(["ada"]));
    /// ```
    pub fn assign(&mut self, key: impl Into<String>, value: impl Into<Value>) -> &mut Self {
        let key = key.into();
        let value = value.into();
        if self.as_map().get(&key) != Some(&value) {
            self.as_map_mut().insert(key, value);
        }
        self
    }

    /// Sets `key` to any value that serializes, such as a struct of the
    /// plugin's own. Fails only if `value` cannot be represented as JSON (a
    /// map with non-string keys, a failing `Serialize` implementation).
    ///
    /// ```
    /// use plume_sdk::Assigns;
    /// use serde::Serialize;
    ///
    /// #[derive(Serialize)]
    /// struct Board {
    ///     cells: [u8; 9],
    /// }
    ///
    /// let mut assigns = Assigns::new();
    /// assigns.try_assign("board", &Board { cells: [0; 9] })?;
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn try_assign<T: Serialize + ?Sized>(
        &mut self,
        key: impl Into<String>,
        value: &T,
    ) -> Result<&mut Self, serde_json::Error> {
        let value = serde_json::to_value(value)?;
        Ok(self.assign(key, value))
    }

    /// Removes `key`, returning its value. Removing an absent key is not a
    /// change.
    ///
    /// ```
    /// let mut assigns = plume_sdk::Assigns::new().with("timer", 3);
    /// assert_eq!(assigns.remove("timer"), Some(plume_sdk::json!(3)));
    /// ```
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        if self.as_map().contains_key(key) {
            self.as_map_mut().remove(key)
        } else {
            None
        }
    }

    /// Whether a handler changed the assigns during this call, that is,
    /// whether they will be sent back to the host.
    ///
    /// ```
    /// let mut assigns = plume_sdk::Assigns::new();
    /// assert!(!assigns.is_changed());
    /// assigns.assign("a", 1);
    /// assert!(assigns.is_changed());
    /// ```
    pub fn is_changed(&self) -> bool {
        self.changed
    }

    /// The JSON text to hand back to the host when the assigns changed,
    /// `None` (the host keeps its copy) when they did not.
    pub(crate) fn into_changed(self) -> Option<String> {
        self.changed.then(|| self.into_json())
    }

    /// The JSON text of the assigns, re-encoded only if they changed or were
    /// built by the plugin.
    pub(crate) fn into_json(self) -> String {
        match (self.raw, self.changed) {
            (Some(raw), false) => raw,
            (_, _) => Value::Object(self.map.into_inner().unwrap_or_default()).to_string(),
        }
    }
}

/// Assigns holding the entries of `map`.
///
/// ```
/// let mut map = serde_json::Map::new();
/// map.insert("a".into(), 1.into());
/// let assigns = plume_sdk::Assigns::from(map);
/// assert_eq!(assigns.get::<u8>("a"), Some(1));
/// ```
impl From<Map<String, Value>> for Assigns {
    fn from(map: Map<String, Value>) -> Self {
        Self {
            raw: None,
            map: OnceCell::from(map),
            changed: false,
        }
    }
}

impl fmt::Debug for Assigns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.as_map()).finish()
    }
}

/// Parses assigns text. The host only stores what a plugin returned and
/// checks it is JSON; anything that is not an object reads as empty.
fn parse(raw: Option<&str>) -> Map<String, Value> {
    raw.and_then(|raw| serde_json::from_str(raw).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn received(value: Value) -> Assigns {
        Assigns::from_json(value.to_string())
    }

    #[test]
    fn untouched_assigns_are_not_sent_back() {
        assert_eq!(received(json!({"a": 1})).into_changed(), None);
    }

    #[test]
    fn reading_assigns_is_not_a_change() {
        let assigns = received(json!({"user": {"id": 1}}));
        assert_eq!(assigns.get::<Value>("user"), Some(json!({"id": 1})));
        assert!(assigns.as_map().contains_key("user"));
        assert_eq!(assigns.into_changed(), None);
    }

    #[test]
    fn unparsed_assigns_are_returned_as_received() {
        let raw = r#"{"b":1, "a":2}"#;
        assert_eq!(Assigns::from_json(raw.to_owned()).into_json(), raw);
    }

    #[test]
    fn an_assign_is_sent_back_with_the_other_keys() {
        let mut assigns = received(json!({"user": {"id": 1}}));
        assigns.assign("count", 2);
        assert_eq!(
            assigns.into_changed().as_deref(),
            Some(r#"{"count":2,"user":{"id":1}}"#)
        );
    }

    #[test]
    fn assigning_the_same_value_is_not_a_change() {
        let mut assigns = received(json!({"count": 2}));
        assigns.assign("count", 2);
        assert!(!assigns.is_changed());
    }

    #[test]
    fn removing_an_absent_key_is_not_a_change() {
        let mut assigns = received(json!({"a": 1}));
        assert_eq!(assigns.remove("b"), None);
        assert!(!assigns.is_changed());
        assert_eq!(assigns.remove("a"), Some(json!(1)));
        assert_eq!(assigns.into_changed().as_deref(), Some("{}"));
    }

    #[test]
    fn mutable_access_counts_as_a_change() {
        let mut assigns = received(json!({"a": 1}));
        assigns.as_map_mut();
        assert!(assigns.is_changed());
    }

    #[test]
    fn get_of_another_type_is_none() {
        let assigns = received(json!({"name": "ada"}));
        assert_eq!(assigns.get::<u64>("name"), None);
        assert_eq!(assigns.get::<String>("missing"), None);
    }

    #[test]
    fn assigns_that_are_not_an_object_read_as_empty() {
        for raw in ["null", "[1]", "not json"] {
            assert!(Assigns::from_json(raw.to_owned()).as_map().is_empty());
        }
    }

    #[test]
    fn built_assigns_are_encoded_with_sorted_keys() {
        let assigns = Assigns::new().with("user", json!({"name": "n", "id": 1}));
        assert_eq!(assigns.into_json(), r#"{"user":{"id":1,"name":"n"}}"#);
    }

    #[test]
    fn try_assign_stores_a_struct() {
        #[derive(Serialize)]
        struct Board {
            turn: &'static str,
        }
        let mut assigns = Assigns::new();
        assert!(assigns.try_assign("board", &Board { turn: "x" }).is_ok());
        assert_eq!(assigns.as_map()["board"], json!({"turn": "x"}));
    }
}
