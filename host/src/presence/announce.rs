//! Presence announcements: the `user_joined` / `user_left` a chat pushes to
//! the members of a topic, fanned out by the host.
//!
//! In Phoenix a chat broadcasts `user_joined` and intercepts it, so that
//! each member's channel runs `handle_out` to hide it from the joining
//! user's own tabs (and to stamp `user_left` with `left_at`). That is one
//! plugin call per member per join: in a 10,000-member room, 10,000 calls
//! for every joiner. Here the plugin says who each channel is
//! (`identify`) and what to announce; the host skips the channels with the
//! same identity and stamps the time itself, with no plugin call at all.

use serde_json::{Map, Value};

use crate::protocol::Body;
use crate::pubsub::{Broadcast, Kind};

/// A message to announce on a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub event: String,
    /// A JSON object.
    payload: String,
    /// The field set to the unix seconds at which it is sent.
    stamp: Option<String>,
}

/// Why an announcement is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnouncementError {
    #[error("an announcement's payload must be a JSON object: {0}")]
    NotAnObject(String),
    #[error("an announcement needs an event name")]
    NoEvent,
}

impl Announcement {
    pub fn new(event: String, payload: &str, stamp: Option<String>) -> Result<Self, AnnouncementError> {
        if event.is_empty() {
            return Err(AnnouncementError::NoEvent);
        }
        let object: Map<String, Value> = match serde_json::from_str(payload) {
            Ok(Value::Object(object)) => object,
            Ok(_) => return Err(AnnouncementError::NotAnObject("got another JSON value".into())),
            Err(error) => return Err(AnnouncementError::NotAnObject(error.to_string())),
        };
        Ok(Announcement {
            event,
            // Sorted, as Phoenix encodes maps.
            payload: Value::Object(object).to_string(),
            stamp,
        })
    }

    /// The broadcast that announces it on `topic` now, to every channel
    /// except those identified as `except`.
    pub fn broadcast(&self, topic: &str, except: Option<String>) -> Broadcast {
        let payload = match &self.stamp {
            Some(field) => {
                let mut object: Map<String, Value> = serde_json::from_str(&self.payload).unwrap_or_default();
                object.insert(field.clone(), Value::from(crate::clock::unix_ms() / 1000));
                Value::Object(object).to_string()
            }
            None => self.payload.clone(),
        };
        Broadcast::of_kind(topic.to_owned(), self.event.clone(), Body::Json(payload), None, Kind::Announcement).except(except)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_are_objects_stamped_when_sent() {
        let left = Announcement::new("user_left".into(), r#"{"user_id":7}"#, Some("left_at".into())).unwrap();
        let message = left.broadcast("chat:a", None);
        let Body::Json(payload) = &message.payload else { panic!("json") };
        let value: Value = serde_json::from_str(payload).unwrap();
        assert_eq!(value["user_id"], 7);
        assert!(value["left_at"].as_u64().is_some_and(|at| at > 1_700_000_000), "{payload}");
        assert_eq!(message.kind, Kind::Announcement);
        assert_eq!(message.except, None);
        let joined = Announcement::new("user_joined".into(), r#"{"user_id":7,"name":"n"}"#, None).unwrap();
        let message = joined.broadcast("chat:a", Some("7".into()));
        assert!(matches!(&message.payload, Body::Json(p) if p == r#"{"name":"n","user_id":7}"#));
        assert_eq!(message.except.as_deref(), Some("7"));
        assert!(matches!(Announcement::new("e".into(), "[1]", None), Err(AnnouncementError::NotAnObject(_))));
        assert!(matches!(Announcement::new("e".into(), "{", None), Err(AnnouncementError::NotAnObject(_))));
        assert_eq!(Announcement::new(String::new(), "{}", None), Err(AnnouncementError::NoEvent));
    }
}
