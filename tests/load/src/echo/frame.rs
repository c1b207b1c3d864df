//! Reading a client's V2 frame and writing the answers, by splicing the
//! raw JSON of the request's refs, topic and payload rather than building
//! values: nothing is parsed that is only passed back.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

/// `[join_ref, ref, topic, event, payload]`, each kept as its raw JSON
/// except the event, which is matched on.
#[derive(Deserialize)]
pub struct Push<'a>(
    #[serde(borrow)] pub &'a RawValue,
    #[serde(borrow)] pub &'a RawValue,
    #[serde(borrow)] pub &'a RawValue,
    #[serde(borrow)] pub Cow<'a, str>,
    #[serde(borrow)] pub &'a RawValue,
);

impl<'a> Push<'a> {
    pub fn parse(text: &'a str) -> Option<Push<'a>> {
        serde_json::from_str(text).ok()
    }

    /// The topic as a string, unescaped if it had escapes.
    pub fn topic(&self) -> Option<Cow<'a, str>> {
        serde_json::from_str(self.2.get()).ok()
    }
}

#[derive(Deserialize)]
struct NewMsg<'a> {
    #[serde(borrow)]
    body: &'a RawValue,
}

/// The raw JSON string of a `new_msg` payload's `body`; `None` when it is
/// missing or not a string.
pub fn new_msg_body(payload: &RawValue) -> Option<&RawValue> {
    let message: NewMsg = serde_json::from_str(payload.get()).ok()?;
    message.body.get().starts_with('"').then_some(message.body)
}

/// `[join_ref, ref, topic, "phx_reply", {"response": R, "status": S}]`.
pub fn reply(
    join_ref: &str,
    reference: &RawValue,
    topic: &RawValue,
    status: &str,
    response: &str,
) -> String {
    let mut out = String::with_capacity(64 + join_ref.len() + topic.get().len() + response.len());
    out.push('[');
    out.push_str(join_ref);
    out.push(',');
    out.push_str(reference.get());
    out.push(',');
    out.push_str(topic.get());
    out.push_str(",\"phx_reply\",{\"response\":");
    out.push_str(response);
    out.push_str(",\"status\":\"");
    out.push_str(status);
    out.push_str("\"}]");
    out
}

/// `[join_ref, join_ref, topic, "phx_close", {}]`, after a leave.
pub fn close(join_ref: &str, topic: &RawValue) -> String {
    format!("[{join_ref},{join_ref},{},\"phx_close\",{{}}]", topic.get())
}

/// `[null, null, topic, "new_msg", {"body": B, "user_id": 0}]`.
pub fn new_msg(topic: &RawValue, body: &RawValue) -> String {
    let mut out = String::with_capacity(64 + topic.get().len() + body.get().len());
    out.push_str("[null,null,");
    out.push_str(topic.get());
    out.push_str(",\"new_msg\",{\"body\":");
    out.push_str(body.get());
    out.push_str(",\"user_id\":0}]");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_splice_the_request_raw() {
        let text = r#"["1","7","room:lobby","ping",{"p":"x"}]"#;
        let push = Push::parse(text).expect("a push");
        assert_eq!(push.3, "ping");
        assert_eq!(push.topic().as_deref(), Some("room:lobby"));
        assert_eq!(
            reply(push.0.get(), push.1, push.2, "ok", push.4.get()),
            r#"["1","7","room:lobby","phx_reply",{"response":{"p":"x"},"status":"ok"}]"#
        );
        assert_eq!(
            close(push.0.get(), push.2),
            r#"["1","1","room:lobby","phx_close",{}]"#
        );
    }

    #[test]
    fn new_msg_needs_a_string_body() {
        let text = r#"["1","8","room:f","new_msg",{"body":"hi \"you\""}]"#;
        let push = Push::parse(text).expect("a push");
        let body = new_msg_body(push.4).expect("a string body");
        assert_eq!(
            new_msg(push.2, body),
            r#"[null,null,"room:f","new_msg",{"body":"hi \"you\"","user_id":0}]"#
        );
        let number = RawValue::from_string(r#"{"body":1}"#.into()).expect("json");
        assert!(new_msg_body(&number).is_none());
        let missing = RawValue::from_string("{}".into()).expect("json");
        assert!(new_msg_body(&missing).is_none());
    }

    #[test]
    fn malformed_frames_are_not_pushes() {
        assert!(Push::parse("[1,2]").is_none());
        assert!(Push::parse("nope").is_none());
    }
}
