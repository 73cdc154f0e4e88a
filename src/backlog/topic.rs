//! Backlog topic names: `<prefix>.sub.<subscription id>`, one per subscription.

/// The characters Kafka allows in a topic name.
pub fn is_topic_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// The longest topic name Kafka accepts.
pub const MAX_TOPIC_LEN: usize = 249;

/// The backlog topic of `subscription`.
pub fn name(prefix: &str, subscription: &str) -> String {
    format!("{prefix}.sub.{subscription}")
}

/// The subscription whose backlog `topic` is, if it is one.
pub fn subscription_of<'a>(prefix: &str, topic: &'a str) -> Option<&'a str> {
    topic
        .strip_prefix(prefix)?
        .strip_prefix(".sub.")
        .filter(|id| !id.is_empty())
}

/// The subscription pattern (librdkafka's `^regex` syntax) matching every backlog topic.
pub fn pattern(prefix: &str) -> String {
    let mut out = String::from("^");
    for c in prefix.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            out.push(c);
        } else {
            out.push('\\');
            out.push(c);
        }
    }
    out.push_str("\\.sub\\..+$");
    out
}

/// Why `id` cannot name a backlog topic, if it cannot.
pub fn check_id(prefix: &str, id: &str) -> Result<(), String> {
    if let Some(bad) = id.chars().find(|c| !is_topic_char(*c)) {
        return Err(format!(
            "{bad:?} is not allowed: ids name Kafka topics, so only letters, digits, '.', '_' and '-'"
        ));
    }
    let len = name(prefix, id).len();
    if len > MAX_TOPIC_LEN {
        return Err(format!(
            "is too long: its backlog topic name would have {len} characters (Kafka allows {MAX_TOPIC_LEN})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_the_pattern_matches_only_backlogs() {
        let topic = name("hookline", "pagerduty");
        assert_eq!(topic, "hookline.sub.pagerduty");
        assert_eq!(subscription_of("hookline", &topic), Some("pagerduty"));
        assert_eq!(subscription_of("hookline", "hookline.retry.5s"), None);
        assert_eq!(subscription_of("hookline", "hookline.sub."), None);
        assert_eq!(pattern("hook.line"), "^hook\\.line\\.sub\\..+$");
        assert!(check_id("hookline", "netography-siem_2.b").is_ok());
        assert!(check_id("hookline", "a b").unwrap_err().contains("' '"));
        assert!(check_id("hookline", &"x".repeat(240)).is_err());
    }
}
