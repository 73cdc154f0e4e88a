//! Producing to hookline's own topics (dead letters, retry tiers, backlogs): which Kafka errors
//! no retry can fix, and the one record-size limit every one of those producers uses.
//!
//! A record of hookline's own holds more than the event it carries: a retry record holds the
//! event and its rendered body, a dead letter holds the event or message and its headers. So
//! the producers' limit is derived from `kafka.max_message_bytes` instead of librdkafka's
//! default (1,000,000 bytes), and the topics hookline creates get the same limit. A broker
//! whose own limit is lower still refuses a large record: that is a permanent error, and each
//! writer has a bounded fallback for it (see `docs/delivery.md`, "When Kafka refuses a
//! record").

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// Room for the headers and the JSON around an event.
const OVERHEAD: usize = 64 * 1024;

/// librdkafka's (and Kafka's) default record limit; hookline never asks for less.
const KAFKA_DEFAULT: usize = 1_000_000;

/// The largest record hookline writes to its own topics, for events of at most
/// `max_message_bytes`: an event and a body of that size, plus room around them.
pub fn record_limit(max_message_bytes: usize) -> usize {
    max_message_bytes
        .saturating_mul(2)
        .saturating_add(OVERHEAD)
        .max(KAFKA_DEFAULT)
}

/// Errors no retry of the same record can fix: Kafka will refuse it every time.
pub fn is_permanent(error: &KafkaError) -> bool {
    is_too_large(error)
        || matches!(
            error.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::InvalidMessage
                    | RDKafkaErrorCode::TopicAuthorizationFailed
                    | RDKafkaErrorCode::ClusterAuthorizationFailed
                    | RDKafkaErrorCode::InvalidTopic
            )
        )
}

/// The record is larger than the producer or the broker takes; a smaller one may pass.
pub fn is_too_large(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::MessageBatchTooLarge
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::error::RDKafkaErrorCode as Code;

    #[test]
    fn size_and_authorisation_errors_are_permanent_the_rest_are_not() {
        let produce = |code| KafkaError::MessageProduction(code);
        assert!(is_permanent(&produce(Code::MessageSizeTooLarge)));
        assert!(is_too_large(&produce(Code::MessageSizeTooLarge)));
        assert!(is_permanent(&produce(Code::TopicAuthorizationFailed)));
        assert!(!is_too_large(&produce(Code::TopicAuthorizationFailed)));
        for transient in [
            Code::MessageTimedOut,
            Code::LeaderNotAvailable,
            Code::NotEnoughReplicas,
            Code::BrokerTransportFailure,
            Code::QueueFull,
        ] {
            assert!(!is_permanent(&produce(transient)), "{transient:?}");
        }
    }

    #[test]
    fn the_limit_fits_an_event_and_its_body_and_never_undercuts_kafka() {
        assert_eq!(record_limit(1), 1_000_000);
        assert_eq!(record_limit(1_000_000), 2_000_000 + 64 * 1024);
        assert_eq!(record_limit(usize::MAX), usize::MAX);
    }
}
