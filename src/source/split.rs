//! From one Kafka message to events: a JSON object is one event, a JSON array is one event per
//! element (Contrast and Wallarm send arrays). Anything else is refused with a reason, so the
//! message can be dead-lettered instead of dropped.

use serde_json::value::RawValue;
use serde_json::Value;

use crate::dlq::Reason;
use crate::event::{Payload, Wanted};

/// Why a message (or one element of it) is not an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct NotAnEvent {
    /// The dead-letter reason.
    pub reason: Reason,
    /// What was wrong, for humans.
    pub message: String,
    /// The element itself, when one element of an array message is refused: its dead letter
    /// carries that element, not the whole message.
    pub element: Option<Value>,
}

/// One element of a message: an event, or why that element is not one.
pub type Element = Result<Payload, NotAnEvent>;

/// Splits `payload` into events, parsing of each what `wanted` names (see
/// [`Payload`]). `Err` means the whole message is unusable.
pub fn split(
    payload: Option<&[u8]>,
    max_bytes: usize,
    wanted: &Wanted,
) -> Result<Vec<Element>, NotAnEvent> {
    let bytes = payload.unwrap_or_default();
    if bytes.len() > max_bytes {
        return Err(NotAnEvent {
            reason: Reason::TooLarge,
            message: format!(
                "message is {} bytes, more than kafka.max_message_bytes ({max_bytes})",
                bytes.len()
            ),
            element: None,
        });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(NotAnEvent {
            reason: Reason::NotJson,
            message: "message is empty".into(),
            element: None,
        });
    }
    let not_json = |e: serde_json::Error| NotAnEvent {
        reason: Reason::NotJson,
        message: format!("message is not JSON: {e}"),
        element: None,
    };
    // Checked whole here, so that skipping a field never lets invalid UTF-8 through (and a
    // pruned event can always be parsed whole later).
    let Ok(text) = std::str::from_utf8(bytes) else {
        // serde_json says where, in its words.
        return Err(not_json(
            serde_json::from_slice::<Value>(bytes).expect_err("invalid UTF-8 is not JSON"),
        ));
    };
    match text.trim_start().as_bytes().first() {
        Some(b'{') => Ok(vec![Ok(Payload::parse(text, wanted).map_err(not_json)?)]),
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(text).map_err(not_json)?;
            if items.is_empty() {
                return Err(NotAnEvent {
                    reason: Reason::NotAnEvent,
                    message: "message is an empty JSON array".into(),
                    element: None,
                });
            }
            // An element a whole parse refuses (beyond what splitting checked: numbers out of
            // range, lone surrogates, deep nesting) makes the whole message not JSON, as a
            // whole parse of the message would.
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| element(i, item.get(), wanted).map_err(not_json))
                .collect()
        }
        _ => {
            let value: Value = serde_json::from_str(text).map_err(not_json)?;
            Err(NotAnEvent {
                reason: Reason::NotAnEvent,
                message: format!(
                    "message is {}, not a JSON object or an array of objects",
                    kind(&value)
                ),
                element: None,
            })
        }
    }
}

/// Element `i` of an array message, its syntax already checked.
fn element(i: usize, json: &str, wanted: &Wanted) -> Result<Element, serde_json::Error> {
    if json.starts_with('{') {
        return Ok(Ok(Payload::parse(json, wanted)?));
    }
    let other: Value = serde_json::from_str(json)?;
    Ok(Err(NotAnEvent {
        reason: Reason::NotAnEvent,
        message: format!("element {i} is {}, not a JSON object", kind(&other)),
        element: Some(other),
    }))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn split(
        payload: Option<&[u8]>,
        max: usize,
    ) -> Result<Vec<Result<Value, NotAnEvent>>, NotAnEvent> {
        let elements = super::split(payload, max, &Wanted::All)?;
        Ok(elements
            .into_iter()
            .map(|e| e.map(|p| p.whole().unwrap().clone()))
            .collect())
    }

    #[test]
    fn object_is_one_event() {
        let out = split(Some(br#"{"a":1}"#), 100).unwrap();
        assert_eq!(out, vec![Ok(json!({"a":1}))]);
    }

    #[test]
    fn each_event_keeps_its_own_json_and_what_is_wanted() {
        let mut wanted = Wanted::nothing();
        wanted.add([Some("a")].into_iter());
        let message = br#" [ {"a": 1, "b": [2]} , {"b": 3} ] "#;
        let out = super::split(Some(message), 100, &wanted).unwrap();
        let events: Vec<_> = out.into_iter().map(Result::unwrap).collect();
        assert_eq!(*events[0].view(), json!({"a": 1}));
        assert_eq!(&*events[0].json(), br#"{"a": 1, "b": [2]}"#);
        assert_eq!(*events[0].whole().unwrap(), json!({"a": 1, "b": [2]}));
        assert_eq!(*events[1].view(), json!({}));
        assert_eq!(*events[1].whole().unwrap(), json!({"b": 3}));
    }

    #[test]
    fn an_element_a_whole_parse_refuses_refuses_the_message() {
        let deep = format!("[{{}}, {{\"a\": {}1{}}}]", "[".repeat(200), "]".repeat(200));
        for message in [
            r#"[{"a": 1e400}]"#,
            r#"[1e400]"#,
            r#"[{}, "\ud800"]"#,
            &deep,
        ] {
            for wanted in [Wanted::All, Wanted::nothing()] {
                match super::split(Some(message.as_bytes()), 10_000, &wanted) {
                    // Skipped where nothing reads it: the event is taken (docs/rules.md).
                    Ok(events) if !wanted.is_all() && message.contains("1e400}]") => {
                        assert!(events[0].is_ok());
                    }
                    Ok(_) => panic!("{message} taken with {wanted:?}"),
                    Err(e) => {
                        assert_eq!(e.reason, Reason::NotJson, "{message}");
                        assert!(serde_json::from_str::<Value>(message).is_err());
                    }
                }
            }
        }
    }

    #[test]
    fn invalid_utf8_is_refused_even_where_nothing_is_read() {
        let e = super::split(
            Some(b"{\"a\": 1, \"b\": \"\xff\"}"),
            100,
            &Wanted::nothing(),
        )
        .unwrap_err();
        assert_eq!(e.reason, Reason::NotJson);
        assert!(
            e.message
                .starts_with("message is not JSON: invalid unicode"),
            "{}",
            e.message
        );
    }

    #[test]
    fn array_is_one_event_per_element_and_bad_elements_are_named() {
        let out = split(Some(br#"[{"a":1}, 7, {"b":2}]"#), 100).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[0], Ok(json!({"a":1})));
        let bad = out[1].clone().unwrap_err();
        assert_eq!(bad.reason, Reason::NotAnEvent);
        assert_eq!(bad.message, "element 1 is a number, not a JSON object");
        assert_eq!(
            bad.element,
            Some(json!(7)),
            "the dead letter carries the element"
        );
        assert_eq!(out[2], Ok(json!({"b":2})));
    }

    #[test]
    fn refusals_say_why() {
        let e = split(Some(b"not json"), 100).unwrap_err();
        assert_eq!(e.reason, Reason::NotJson);
        assert!(
            e.message.starts_with("message is not JSON: expected ident"),
            "{}",
            e.message
        );
        assert_eq!(split(None, 100).unwrap_err().message, "message is empty");
        assert_eq!(split(Some(b"  "), 100).unwrap_err().reason, Reason::NotJson);
        assert_eq!(
            split(Some(b"[]"), 100).unwrap_err().reason,
            Reason::NotAnEvent
        );
        assert_eq!(
            split(Some(b"\"x\""), 100).unwrap_err().message,
            "message is a string, not a JSON object or an array of objects"
        );
        let big = split(Some(&[b' '; 101]), 100).unwrap_err();
        assert_eq!(big.reason, Reason::TooLarge);
        assert_eq!(
            big.message,
            "message is 101 bytes, more than kafka.max_message_bytes (100)"
        );
    }
}
