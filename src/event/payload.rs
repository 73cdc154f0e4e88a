//! An event's JSON as the data path holds it: the parts the rules in force read, parsed, and
//! the whole as the bytes it arrived in.
//!
//! Parsing a whole event into a `Value` tree (every key and string allocated, then dropped)
//! cost more than classifying, matching and rendering it together, and the cost grew with the
//! event although routes and templates read a few fields. So a message is parsed once, guided
//! by [`Wanted`] (the union of every path the rule set's extractors, predicates, dedup keys
//! and templates read): the fields on those paths become the [`view`](Payload::view), the
//! rest is skipped without allocating. The bytes are kept for what needs the event whole (a
//! backlog or retry record, a dead letter, the `raw` template), which parses them again
//! ([`Payload::whole`]) only when asked.
//!
//! serde_json does the parsing (a `DeserializeSeed` that skips unwanted fields with
//! `IgnoredAny`); no crate offers a parse pruned by a set of paths.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// What to keep of an event when parsing it: everything, or some keys of an object, each with
/// what to keep below it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Wanted {
    /// The whole value.
    #[default]
    All,
    /// These keys of an object (no keys: an empty object). A value that is not an object is
    /// kept whole.
    Keys(BTreeMap<String, Wanted>),
}

impl Wanted {
    /// Nothing of it.
    pub fn nothing() -> Wanted {
        Wanted::Keys(BTreeMap::new())
    }

    /// Whether the whole value is kept.
    pub fn is_all(&self) -> bool {
        matches!(self, Wanted::All)
    }

    /// Adds the value at `keys` (whole, below the last key); `None` in `keys` stands for a
    /// step this type does not follow (an array index): what is above it is kept whole.
    pub fn add<'k>(&mut self, mut keys: impl Iterator<Item = Option<&'k str>>) {
        let Wanted::Keys(map) = self else { return };
        match keys.next() {
            None | Some(None) => *self = Wanted::All,
            Some(Some(key)) => map
                .entry(key.to_string())
                .or_insert_with(Wanted::nothing)
                .add(keys),
        }
    }
}

/// An event's JSON. Cheap to share: events hold it in an `Arc`.
pub struct Payload {
    /// What the rules read: the whole event, or the parts [`Wanted`] named.
    view: Value,
    /// Whether `view` leaves parts out.
    pruned: bool,
    /// The JSON as read, when it was read.
    json: Option<Arc<[u8]>>,
    /// The whole event, parsed from `json` when first asked for (pruned payloads only).
    whole: OnceLock<Value>,
    /// `view` serialised, when first asked for (payloads built from a value).
    serialised: OnceLock<Arc<[u8]>>,
}

impl Payload {
    /// A payload holding `value` whole.
    pub fn from_value(value: Value) -> Payload {
        Payload {
            view: value,
            pruned: false,
            json: None,
            whole: OnceLock::new(),
            serialised: OnceLock::new(),
        }
    }

    /// Parses `json`, keeping in the view what `wanted` names.
    pub fn parse(json: &str, wanted: &Wanted) -> Result<Payload, serde_json::Error> {
        let view = match wanted {
            Wanted::All => serde_json::from_str(json)?,
            Wanted::Keys(_) => {
                // Skipped values have no nesting limit in serde_json, parsed ones do: refuse
                // what a whole parse refuses, so the event can always be parsed whole later.
                if nested_deeper_than(json, MAX_DEPTH) {
                    serde_json::from_str::<Value>(json)?;
                }
                let mut de = serde_json::Deserializer::from_str(json);
                let view = Pruned(wanted).deserialize(&mut de)?;
                de.end()?;
                view
            }
        };
        Ok(Payload {
            view,
            pruned: !wanted.is_all(),
            json: Some(Arc::from(json.as_bytes())),
            whole: OnceLock::new(),
            serialised: OnceLock::new(),
        })
    }

    /// What the rules it was parsed for read: every path of its [`Wanted`] is as in the whole
    /// event; anything else may be missing. Expressions of those rules evaluate on it.
    pub fn view(&self) -> &Value {
        &self.view
    }

    /// The whole event. Fails only for a pruned payload whose skipped parts a whole parse
    /// refuses although skipping them did not: a number beyond `f64` or a lone surrogate in a
    /// `\u` escape (serde_json checks those only in what it builds).
    pub fn whole(&self) -> Result<&Value, serde_json::Error> {
        if !self.pruned {
            return Ok(&self.view);
        }
        if let Some(whole) = self.whole.get() {
            return Ok(whole);
        }
        let json = self
            .json
            .as_deref()
            .expect("a pruned payload keeps its JSON");
        let whole = serde_json::from_slice(json)?;
        Ok(self.whole.get_or_init(|| whole))
    }

    /// The whole event as JSON: the bytes as read, or the value serialised once.
    pub fn json(&self) -> Arc<[u8]> {
        match &self.json {
            Some(json) => json.clone(),
            None => self
                .serialised
                .get_or_init(|| {
                    serde_json::to_vec(&self.view)
                        .expect("a JSON value serialises")
                        .into()
                })
                .clone(),
        }
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Payload")
            .field("view", &self.view)
            .field("pruned", &self.pruned)
            .finish_non_exhaustive()
    }
}

/// A little below serde_json's nesting limit (128): deeper input gets a whole parse, which
/// refuses it with serde_json's own error.
const MAX_DEPTH: usize = 120;

/// Whether arrays and objects nest deeper than `limit` in `json` (valid JSON text). Hand-written
/// because no crate answers it without parsing; nearly every event has fewer brackets than
/// `limit` in all, which a vectorised count tells first.
fn nested_deeper_than(json: &str, limit: usize) -> bool {
    let bytes = json.as_bytes();
    if bytes.iter().filter(|&&b| b == b'{' || b == b'[').count() <= limit {
        return false;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// A value, parsed keeping what a [`Wanted`] names.
struct Pruned<'w>(&'w Wanted);

impl<'de> DeserializeSeed<'de> for Pruned<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        match self.0 {
            Wanted::All => serde::Deserialize::deserialize(de),
            Wanted::Keys(keys) => de.deserialize_any(PrunedVisitor(keys)),
        }
    }
}

/// Builds an object with `keys` only; any other value whole, as `Value` does.
struct PrunedVisitor<'w>(&'w BTreeMap<String, Wanted>);

impl<'de> Visitor<'de> for PrunedVisitor<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(Key(key)) = map.next_key()? {
            match self.0.get(&*key) {
                Some(wanted) => {
                    // A repeated key replaces the earlier value, as in `Value`.
                    out.insert(key.into_owned(), map.next_value_seed(Pruned(wanted))?);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(out))
    }
}

/// An object key, borrowed from the input when it has no escapes.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(v.to_string().into()))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(v.into()))
            }
        }
        de.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn wanted(paths: &[&[Option<&str>]]) -> Wanted {
        let mut w = Wanted::nothing();
        for p in paths {
            w.add(p.iter().copied());
        }
        w
    }

    const EVENT: &str = r#"{"id": "e1", "level": "HIGH", "nested": {"a": 1, "b": {"c": [1, 2], "d": "x"}},
        "tags": [{"n": 1}], "big": "skipped \u00e9 \"quoted\"", "num": 1.5e3, "neg": -7,
        "esc\u0061ped": true, "dup": 1, "dup": 2}"#;

    #[test]
    fn keeps_the_wanted_paths_as_the_whole_has_them() {
        let whole: Value = serde_json::from_str(EVENT).unwrap();
        let w = wanted(&[
            &[Some("id")],
            &[Some("nested"), Some("b"), Some("c")],
            &[Some("tags"), None],
            &[Some("escaped")],
            &[Some("dup")],
            &[Some("missing"), Some("x")],
            &[Some("level"), Some("deeper")],
        ]);
        let p = Payload::parse(EVENT, &w).unwrap();
        assert_eq!(
            *p.view(),
            json!({"id": "e1", "nested": {"b": {"c": [1, 2]}}, "tags": [{"n": 1}],
                   "escaped": true, "dup": 2, "level": "HIGH"})
        );
        assert_eq!(*p.whole().unwrap(), whole);
        assert_eq!(&*p.json(), EVENT.as_bytes());
    }

    #[test]
    fn everything_or_nothing() {
        let whole: Value = serde_json::from_str(EVENT).unwrap();
        let all = Payload::parse(EVENT, &Wanted::All).unwrap();
        assert_eq!(*all.view(), whole);
        let mut w = Wanted::nothing();
        w.add([Some("nested")].into_iter());
        w.add(std::iter::empty());
        assert!(w.is_all(), "an empty path is the whole event");
        let none = Payload::parse(EVENT, &Wanted::nothing()).unwrap();
        assert_eq!(*none.view(), json!({}));
        assert_eq!(*none.whole().unwrap(), whole);
    }

    #[test]
    fn refuses_what_a_whole_parse_refuses() {
        let w = wanted(&[&[Some("id")]]);
        for bad in [
            r#"{"id": 1,}"#,
            r#"{"id": 1} x"#,
            r#"{"other": [1, }"#,
            r#"{"other": "\x"}"#,
            r#"{"id": 1"#,
            "{\"id\": 1, \"other\": \"a\nb\"}",
        ] {
            assert!(Payload::parse(bad, &w).is_err(), "{bad}");
            assert!(serde_json::from_str::<Value>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nesting_a_whole_parse_refuses_is_refused_where_nothing_reads_it() {
        let w = wanted(&[&[Some("id")]]);
        let deep = |n: usize| {
            format!(
                r#"{{"id": 1, "skip": {}1{}}}"#,
                "[".repeat(n),
                "]".repeat(n)
            )
        };
        let refused = Payload::parse(&deep(200), &w).unwrap_err();
        assert!(
            refused.to_string().starts_with("recursion limit exceeded"),
            "{refused}"
        );
        assert!(serde_json::from_str::<Value>(&deep(200)).is_err());
        // Brackets in strings do not count; nesting a whole parse takes is taken.
        let quoted = format!(
            r#"{{"id": 1, "s": "{}", "t": "\"{}"}}"#,
            "[".repeat(300),
            "{".repeat(300)
        );
        assert_eq!(
            *Payload::parse(&quoted, &w).unwrap().view(),
            serde_json::json!({"id": 1})
        );
        let p = Payload::parse(&deep(100), &w).unwrap();
        assert_eq!(
            *p.whole().unwrap(),
            serde_json::from_str::<Value>(&deep(100)).unwrap()
        );
        // What only a whole parse checks: the view is built, the whole says why it cannot be.
        for skipped in [r#"{"id": 1, "n": 1e400}"#, r#"{"id": 1, "s": "\ud800"}"#] {
            let p = Payload::parse(skipped, &w).unwrap();
            assert_eq!(*p.view(), serde_json::json!({"id": 1}));
            assert!(p.whole().is_err(), "{skipped}");
            assert!(serde_json::from_str::<Value>(skipped).is_err());
        }
        assert!(!nested_deeper_than(&deep(100), MAX_DEPTH));
        assert!(nested_deeper_than(&deep(121), MAX_DEPTH));
    }

    #[test]
    fn a_value_is_serialised_once() {
        let p = Payload::from_value(json!({"a": 1}));
        assert_eq!(&*p.json(), br#"{"a":1}"#);
        assert!(Arc::ptr_eq(&p.json(), &p.json()));
        assert_eq!(*p.whole().unwrap(), json!({"a": 1}));
    }
}
