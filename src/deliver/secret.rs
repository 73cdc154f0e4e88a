//! A string that must never be shown: tokens, passwords, signing secrets.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A secret from configuration. `Debug`, `Display` and `Serialize` print `********` (as the
/// seeds' webhook APIs do in their responses), so a secret cannot leak through a log line, an
/// error or an API response by accident; [`Secret::expose`] is the one way to read it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

/// What a secret shows instead of itself.
pub const REDACTED: &str = "********";

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for building a request or deriving a key.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether it is empty or only whitespace.
    pub fn is_blank(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_string())
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_shows_itself() {
        let s = Secret::from("hunter2");
        assert_eq!(format!("{s:?} {s}"), "******** ********");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"********\"");
        assert_eq!(s.expose(), "hunter2");
        let back: Secret = serde_json::from_str("\"hunter2\"").unwrap();
        assert_eq!(back, s);
    }
}
