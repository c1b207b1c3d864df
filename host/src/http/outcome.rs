//! How a request ends, and the `handle-info` message that tells the plugin
//! (the format is documented on the WIT's `http` interface).

use base64::Engine as _;

/// A response of any status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Lower-case names, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} ({reason})", kind.name())]
pub struct Failure {
    pub kind: FailureKind,
    /// For the plugin's logs: the host, the limit, the address.
    pub reason: String,
}

/// The kinds of failure a plugin can tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Timeout,
    Refused,
    Tls,
    TooLarge,
    NotAllowed,
    Failed,
}

impl FailureKind {
    /// The name in the message.
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Timeout => "timeout",
            FailureKind::Refused => "refused",
            FailureKind::Tls => "tls",
            FailureKind::TooLarge => "too-large",
            FailureKind::NotAllowed => "not-allowed",
            FailureKind::Failed => "failed",
        }
    }
}

impl Failure {
    pub fn new(kind: FailureKind, reason: impl Into<String>) -> Failure {
        Failure { kind, reason: reason.into() }
    }

    /// The body passed `max` bytes.
    pub fn too_large(max: usize) -> Failure {
        Failure::new(
            FailureKind::TooLarge,
            format!("the response body is over {max} bytes (max_http_response_bytes)"),
        )
    }
}

/// The outcome of request `id` as the `handle-info` message:
/// `{"http": {"id", "status", "headers", "body"[, "base64"]}}` or
/// `{"http": {"id", "error", "reason"}}`.
pub fn message(id: u64, result: &Result<Response, Failure>) -> String {
    let http = match result {
        Ok(response) => {
            let mut http = serde_json::json!({
                "id": id,
                "status": response.status,
                "headers": response.headers,
            });
            match std::str::from_utf8(&response.body) {
                Ok(text) => http["body"] = text.into(),
                Err(_) => {
                    http["body"] = base64::engine::general_purpose::STANDARD.encode(&response.body).into();
                    http["base64"] = true.into();
                }
            }
            http
        }
        Err(failure) => serde_json::json!({
            "id": id,
            "error": failure.kind.name(),
            "reason": failure.reason,
        }),
    };
    serde_json::json!({ "http": http }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_response_carries_its_body_as_text() {
        let response = Response {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: br#"{"ok":true}"#.to_vec(),
        };
        let message: serde_json::Value = serde_json::from_str(&message(7, &Ok(response))).unwrap();
        assert_eq!(
            message,
            serde_json::json!({"http": {"id": 7, "status": 200, "headers": [["content-type", "application/json"]], "body": "{\"ok\":true}"}})
        );
    }

    #[test]
    fn a_binary_body_is_base64_with_a_flag() {
        let response = Response { status: 200, headers: vec![], body: vec![0, 255, 7] };
        let message: serde_json::Value = serde_json::from_str(&message(1, &Ok(response))).unwrap();
        assert_eq!(message["http"]["body"], "AP8H");
        assert_eq!(message["http"]["base64"], true);
    }

    #[test]
    fn a_failure_names_its_kind_and_reason() {
        let message: serde_json::Value = serde_json::from_str(&message(3, &Err(Failure::too_large(10)))).unwrap();
        assert_eq!(message["http"]["error"], "too-large");
        assert!(message["http"]["reason"].as_str().unwrap().contains("max_http_response_bytes"));
        assert_eq!(message["http"]["id"], 3);
    }
}
