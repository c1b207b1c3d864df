//! Property tests of the decoders: whatever a client sends, decoding never
//! panics, a frame of the right shape decodes to exactly its fields, and
//! every frame that does not is answered as malformed (when its reference
//! can be read) with a reply that is itself a valid message.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::{InPayload, Serializer, binary, decode, encode, malformed};

/// JSON values without floats (whose text form need not read back to the
/// same value), nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6).prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// Text that looks like JSON often enough to reach past the parser's first
/// byte: brackets, quotes, separators, escapes and bits of keywords.
fn jsonish_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("[".to_owned()),
            Just("]".to_owned()),
            Just("{".to_owned()),
            Just("}".to_owned()),
            Just(",".to_owned()),
            Just(":".to_owned()),
            Just("\"".to_owned()),
            Just("\\".to_owned()),
            Just("null".to_owned()),
            Just("\"topic\"".to_owned()),
            Just("\"event\"".to_owned()),
            Just("\"ref\"".to_owned()),
            Just("\\u00".to_owned()),
            "[0-9a-z ]{0,3}",
            ".{0,2}",
        ],
        0..24,
    )
    .prop_map(|pieces| pieces.concat())
}

/// A V1 message object with some of its keys, as a client might send it.
fn v1_object() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("topic".to_owned()),
        Just("event".to_owned()),
        Just("ref".to_owned()),
        Just("join_ref".to_owned()),
        Just("payload".to_owned()),
        "[a-z_]{1,8}",
    ];
    prop::collection::btree_map(key, json_value(), 0..7).prop_map(|map| Value::Object(map.into_iter().collect()))
}

fn serializer() -> impl Strategy<Value = Serializer> {
    prop_oneof![Just(Serializer::V1), Just(Serializer::V2)]
}

/// Decode `frame`; when it is malformed, check the answer the socket sends
/// for it. Returns whether it decoded.
fn decode_and_answer(serializer: Serializer, frame: &str) -> Result<bool, TestCaseError> {
    match decode(serializer, frame) {
        Ok(message) => {
            // Reading the topic and event never panics either.
            let _ = (message.topic(), message.event());
            Ok(true)
        }
        Err(error) => {
            prop_assert!(!error.reason.is_empty());
            if let Some(reference) = error.reference {
                let response = malformed::response(error.reason);
                let reply = malformed::reply(reference, error.join_ref, error.topic, &response);
                let text = encode(serializer, &reply);
                let sent: Value = serde_json::from_str(&text)
                    .map_err(|e| TestCaseError::fail(format!("the answer {text} is not JSON: {e}")))?;
                let reference: Value = serde_json::from_str(reference.get()).expect("a raw value is JSON");
                let (event, sent_ref, payload) = match serializer {
                    Serializer::V2 => (&sent[3], &sent[1], &sent[4]),
                    Serializer::V1 => (&sent["event"], &sent["ref"], &sent["payload"]),
                };
                prop_assert_eq!(event, "phx_reply");
                prop_assert_eq!(sent_ref, &reference);
                prop_assert_eq!(&payload["status"], "error");
                let reason = payload["response"]["reason"].as_str().unwrap_or_default();
                prop_assert!(reason.starts_with("malformed message: "), "{}", text);
            }
            Ok(false)
        }
    }
}

/// The raw JSON of a decoded field, as a value.
fn value_of(raw: &serde_json::value::RawValue) -> Value {
    serde_json::from_str(raw.get()).expect("a raw value is JSON")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_text_decodes_or_is_answered_as_malformed(serializer in serializer(), frame in any::<String>()) {
        decode_and_answer(serializer, &frame)?;
    }

    #[test]
    fn jsonish_text_decodes_or_is_answered_as_malformed(serializer in serializer(), frame in jsonish_text()) {
        decode_and_answer(serializer, &frame)?;
    }

    #[test]
    fn a_v2_array_of_five_or_more_decodes_to_its_elements_and_anything_else_is_malformed(
        elements in prop::collection::vec(json_value(), 0..8),
        wrap_in_object in any::<bool>(),
    ) {
        let frame = if wrap_in_object { json!({"message": elements.clone()}) } else { Value::Array(elements.clone()) };
        let text = frame.to_string();
        let decoded = decode_and_answer(Serializer::V2, &text)?;
        prop_assert_eq!(decoded, !wrap_in_object && elements.len() >= 5);
        if decoded {
            let message = decode(Serializer::V2, &text).expect("decoded above");
            prop_assert_eq!(value_of(message.join_ref), elements[0].clone());
            prop_assert_eq!(value_of(message.reference), elements[1].clone());
            prop_assert_eq!(value_of(message.topic), elements[2].clone());
            prop_assert_eq!(value_of(message.event), elements[3].clone());
            let InPayload::Json(payload) = message.payload else {
                return Err(TestCaseError::fail("a text frame's payload is JSON"));
            };
            prop_assert_eq!(value_of(payload), elements[4].clone());
        }
    }

    #[test]
    fn a_v1_object_with_a_topic_and_an_event_decodes_and_anything_else_is_malformed(object in v1_object()) {
        let given = |key: &str| object.get(key).filter(|value| !value.is_null()).cloned();
        let text = object.to_string();
        let decoded = decode_and_answer(Serializer::V1, &text)?;
        prop_assert_eq!(decoded, given("topic").is_some() && given("event").is_some());
        if decoded {
            let message = decode(Serializer::V1, &text).expect("decoded above");
            prop_assert_eq!(Some(value_of(message.topic)), given("topic"));
            prop_assert_eq!(Some(value_of(message.event)), given("event"));
            prop_assert_eq!(value_of(message.reference), given("ref").unwrap_or(Value::Null));
            prop_assert_eq!(value_of(message.join_ref), given("join_ref").unwrap_or(Value::Null));
        }
    }

    #[test]
    fn any_bytes_decode_as_a_binary_push_or_fail_with_a_reason(frame in prop::collection::vec(any::<u8>(), 0..64)) {
        match binary::decode(&frame) {
            Ok(push) => {
                // A push is exactly its header's fields, then the payload.
                let text = |raw: &serde_json::value::RawValue| match value_of(raw) {
                    Value::String(text) => text,
                    Value::Null => String::new(),
                    other => panic!("a binary header field decodes to a string or null, not {other}"),
                };
                let mut again = vec![0];
                let fields = [text(&push.join_ref), text(&push.reference), text(&push.topic), text(&push.event)];
                again.extend(fields.iter().map(|field| field.len() as u8));
                for field in &fields {
                    again.extend_from_slice(field.as_bytes());
                }
                again.extend_from_slice(push.payload);
                prop_assert_eq!(again, frame);
            }
            Err(error) => prop_assert!(!error.reason().is_empty()),
        }
    }

    #[test]
    fn a_well_formed_binary_push_decodes_to_its_fields(
        join_ref in ".{0,20}",
        reference in ".{0,20}",
        topic in ".{0,40}",
        event in ".{0,20}",
        payload in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let fields = [&join_ref, &reference, &topic, &event];
        prop_assume!(fields.iter().all(|field| field.len() <= binary::MAX_FIELD));
        let mut frame = vec![0];
        frame.extend(fields.iter().map(|field| field.len() as u8));
        for field in fields {
            frame.extend_from_slice(field.as_bytes());
        }
        frame.extend_from_slice(&payload);
        let push = binary::decode(&frame).expect("a well-formed push");
        let expected_join_ref = if join_ref.is_empty() { Value::Null } else { Value::from(join_ref) };
        prop_assert_eq!(value_of(&push.join_ref), expected_join_ref);
        prop_assert_eq!(value_of(&push.reference), Value::from(reference));
        prop_assert_eq!(value_of(&push.topic), Value::from(topic));
        prop_assert_eq!(value_of(&push.event), Value::from(event));
        prop_assert_eq!(push.payload, &payload[..]);
    }
}
