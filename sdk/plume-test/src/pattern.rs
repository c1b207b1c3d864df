//! JSON patterns: what an assertion expects of a payload.
//!
//! A pattern is a JSON value matched as a subset, the way an Elixir map
//! pattern matches in `assert_push "new_msg", %{"body" => "hi"}`:
//!
//! - an object matches an object that has every one of its keys, each
//!   value matching in turn; the payload may have more keys;
//! - an array matches an array of the same length, element by element;
//! - anything else must be equal.
//!
//! So `json!({})` matches any object, and `json!({"user": {"id": 1}})`
//! matches `{"user": {"id": 1, "name": "ada"}, "at": 5}`.

use serde_json::Value;

/// Whether `actual` matches the pattern `expected`.
///
/// ```
/// use plume_test::{json, matches};
///
/// assert!(matches(&json!({"body": "hi"}), &json!({"body": "hi", "user_id": 7})));
/// assert!(!matches(&json!({"body": "hi"}), &json!({"body": "ho"})));
/// assert!(!matches(&json!([1]), &json!([1, 2])));
/// ```
pub fn matches(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(expected), Value::Object(actual)) => expected
            .iter()
            .all(|(key, value)| actual.get(key).is_some_and(|found| matches(value, found))),
        (Value::Array(expected), Value::Array(actual)) => {
            expected.len() == actual.len() && expected.iter().zip(actual).all(|(e, a)| matches(e, a))
        }
        _ => expected == actual,
    }
}

/// A value as an assertion failure shows it.
pub(crate) fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_object_pattern_allows_extra_keys_at_every_depth() {
        let actual = json!({"user": {"id": 1, "name": "ada"}, "at": 5});
        assert!(matches(&json!({}), &actual));
        assert!(matches(&json!({"user": {"id": 1}}), &actual));
        assert!(!matches(&json!({"user": {"id": 2}}), &actual));
        assert!(!matches(&json!({"missing": null}), &actual));
    }

    #[test]
    fn arrays_match_element_by_element_and_scalars_by_equality() {
        assert!(matches(&json!([{"a": 1}, 2]), &json!([{"a": 1, "b": 0}, 2])));
        assert!(!matches(&json!([2, 1]), &json!([1, 2])));
        assert!(matches(&json!("x"), &json!("x")));
        assert!(!matches(&json!(1), &json!("1")));
        assert!(!matches(&json!({}), &json!([])));
    }
}
