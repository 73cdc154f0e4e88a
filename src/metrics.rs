//! Every metric hookline exports, defined once.
//!
//! [`Metrics`] is a cheap `Clone` handle over one registry (not the process-global default, so
//! tests can run several routers side by side). Stages record through it; `/metrics` renders it.
//! The registry also holds the standard `process_*` metrics (CPU, resident memory, open file
//! descriptors, threads) of this process, read from `/proc` at each scrape.

use std::cell::RefCell;
use std::sync::Arc;

use prometheus::core::Collector;
use prometheus::process_collector::ProcessCollector;
use prometheus::{
    exponential_buckets, Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter,
    IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// All metrics. Label values are bounded: topics, partitions, source and subscription ids and
/// fixed enums. Never event data: categories, ids and the like are chosen by whoever writes the
/// events, so a category is never a label.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

/// The metric families, public so stages can record directly.
pub struct Inner {
    registry: Registry,
    /// The name of every registered family, children or not.
    names: Vec<String>,
    /// Kafka messages read, by topic.
    pub messages_consumed: IntCounterVec,
    /// Events read (array messages count one per element), by topic.
    pub events_consumed: IntCounterVec,
    /// Messages that were not usable input, by reason (`not-json`, `too-large`, `empty`).
    pub messages_invalid: IntCounterVec,
    /// Events that matched at least one subscription, by topic.
    pub events_matched: IntCounterVec,
    /// Events no route wanted (settled as dropped-by-rule), by topic.
    pub events_unmatched: IntCounterVec,
    /// Deliveries handed to a subscription's queue, by subscription.
    pub deliveries_submitted: IntCounterVec,
    /// Settled deliveries by subscription and outcome (`delivered`, `dead_lettered`, `retry_topic`, `dropped`).
    pub deliveries: IntCounterVec,
    /// HTTP attempts by subscription and class (`2xx`, `3xx`, `4xx`, `5xx`, `timeout`, `connect`, `error`).
    pub delivery_attempts: IntCounterVec,
    /// Seconds from reading an event to its successful delivery, by subscription.
    pub delivery_latency: HistogramVec,
    /// Events waiting in a subscription's in-memory queue.
    pub queue_depth: IntGaugeVec,
    /// Times a request waited for the rate limiter, by subscription.
    pub rate_limited: IntCounterVec,
    /// Circuit state by subscription: 0 closed, 1 half-open, 2 open.
    pub circuit_state: IntGaugeVec,
    /// Circuit transitions by subscription and new state.
    pub circuit_transitions: IntCounterVec,
    /// Records written to the durable retry topic, by subscription.
    pub retry_topic_writes: IntCounterVec,
    /// Deliveries written to their subscription's backlog, by subscription and cause.
    pub backlog_spilled: IntCounterVec,
    /// Deliveries read back from the backlog that reached their receiver, by subscription.
    pub backlog_deliveries: IntCounterVec,
    /// Events waiting in a subscription's backlog (end offset minus the reader's position),
    /// reported by the instance that owns the backlog partition.
    pub backlog_depth: IntGaugeVec,
    /// Seconds since the oldest event waiting in a subscription's backlog was read from its
    /// source, reported by the instance that owns the backlog partition.
    pub backlog_oldest_age: GaugeVec,
    /// Failed writes to a backlog (each is retried until Kafka acknowledges it).
    pub backlog_write_errors: IntCounterVec,
    /// Times a lane's task panicked and was restarted, by subscription.
    pub lane_restarts: IntCounterVec,
    /// Records written to the dead-letter topic, by reason.
    pub dead_letters: IntCounterVec,
    /// Failed attempts to write to the dead-letter topic (retried until they succeed).
    pub dead_letter_write_errors: IntCounter,
    /// Dead letters Kafka refused for good, written without their payload, by reason.
    pub dead_letters_truncated: IntCounterVec,
    /// Kafka messages read but not yet settled.
    pub inflight_messages: IntGauge,
    /// Last committed offset, by consumer role, topic and partition; only partitions held.
    pub committed_offset: IntGaugeVec,
    /// Consumer lag (high watermark minus position), by consumer role, topic and partition;
    /// only partitions held.
    pub consumer_lag: IntGaugeVec,
    /// Offset commits by result (`ok`, `error`).
    pub commits: IntCounterVec,
    /// Rule reloads by result (`ok`, `rejected`).
    pub rule_reloads: IntCounterVec,
    /// Unix time of the last rule set put in force.
    pub rules_loaded_timestamp: Gauge,
    /// Severities no alias or band understood (fell to the source's default), by source.
    pub severity_unknown: IntCounterVec,
    /// Events with more categories than hookline keeps (the rest were ignored), by source.
    pub categories_truncated: IntCounterVec,
    /// Deliveries suppressed by a route's dedup window, by subscription.
    pub dedup_suppressed: IntCounterVec,
    /// Events a template could not render, by subscription.
    pub render_errors: IntCounterVec,
    /// Partitions currently assigned, by consumer role (`source`, `retry`).
    pub assigned_partitions: IntGaugeVec,
    /// Subscriptions in force, by source (`file`, `api`) and status.
    pub subscriptions: IntGaugeVec,
    /// Subscriptions disabled automatically or through the API, by reason (`gone`,
    /// `failing`, `api`).
    pub subscriptions_disabled: IntCounterVec,
    /// Changes made through `/api/v1/webhooks`, by action.
    pub subscription_changes: IntCounterVec,
    /// Problems with the subscriptions topic, by kind (`write`: a record could not be
    /// written; `seal`: a subscription's secrets do not open with the configured key).
    pub subscription_store_errors: IntCounterVec,
    /// Admin requests refused before reaching their handler, by reason (`unauthorized`,
    /// `forbidden`, `rate_limited`).
    pub admin_rejected: IntCounterVec,
    /// Build info, always 1.
    pub build_info: GaugeVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let names = RefCell::new(Vec::new());
        let register = |c: Box<dyn Collector>| {
            names
                .borrow_mut()
                .extend(c.desc().iter().map(|d| d.fq_name.clone()));
            registry.register(c).expect("unique metric");
        };
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            register(Box::new(c.clone()));
            c
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            register(Box::new(g.clone()));
            g
        };
        register(Box::new(ProcessCollector::for_self()));
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "hookline_delivery_latency_seconds",
                "Seconds from reading an event to its successful delivery.",
            )
            .buckets(exponential_buckets(0.001, 2.0, 18).expect("buckets")),
            &["subscription"],
        )
        .expect("valid metric");
        register(Box::new(latency.clone()));
        let dead_letter_write_errors = IntCounter::new(
            "hookline_dead_letter_write_errors_total",
            "Failed writes to the dead-letter topic (each is retried until it succeeds).",
        )
        .expect("valid metric");
        register(Box::new(dead_letter_write_errors.clone()));
        let inflight_messages = IntGauge::new(
            "hookline_inflight_messages",
            "Kafka messages read but not yet settled.",
        )
        .expect("valid metric");
        register(Box::new(inflight_messages.clone()));
        let rules_loaded_timestamp = Gauge::new(
            "hookline_rules_loaded_timestamp_seconds",
            "Unix time at which the rule set in force was loaded.",
        )
        .expect("valid metric");
        register(Box::new(rules_loaded_timestamp.clone()));
        let backlog_oldest_age = GaugeVec::new(
            Opts::new(
                "hookline_backlog_oldest_age_seconds",
                "Seconds since the oldest event waiting in the subscription's backlog was read from its source.",
            ),
            &["subscription"],
        )
        .expect("valid metric");
        register(Box::new(backlog_oldest_age.clone()));
        let build_info = GaugeVec::new(
            Opts::new("hookline_build_info", "Always 1; the version is a label."),
            &["version"],
        )
        .expect("valid metric");
        register(Box::new(build_info.clone()));
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1.0);

        let mut inner = Inner {
            messages_consumed: counter(
                "hookline_messages_consumed_total",
                "Kafka messages read.",
                &["topic"],
            ),
            events_consumed: counter(
                "hookline_events_consumed_total",
                "Events read; an array message counts one per element.",
                &["topic"],
            ),
            messages_invalid: counter(
                "hookline_messages_invalid_total",
                "Messages that were not usable input, dead-lettered.",
                &["reason"],
            ),
            events_matched: counter(
                "hookline_events_matched_total",
                "Events that matched at least one subscription.",
                &["topic"],
            ),
            events_unmatched: counter(
                "hookline_events_unmatched_total",
                "Events no route wanted, settled as dropped-by-rule.",
                &["topic"],
            ),
            deliveries_submitted: counter(
                "hookline_deliveries_submitted_total",
                "Deliveries handed to a subscription's queue.",
                &["subscription"],
            ),
            deliveries: counter(
                "hookline_deliveries_total",
                "Settled deliveries by outcome.",
                &["subscription", "outcome"],
            ),
            delivery_attempts: counter(
                "hookline_delivery_attempts_total",
                "HTTP attempts by result class.",
                &["subscription", "class"],
            ),
            delivery_latency: latency,
            queue_depth: gauge(
                "hookline_queue_depth",
                "Events waiting in a subscription's in-memory queue.",
                &["subscription"],
            ),
            rate_limited: counter(
                "hookline_rate_limited_total",
                "Requests that waited for the rate limiter.",
                &["subscription"],
            ),
            circuit_state: gauge(
                "hookline_circuit_state",
                "Circuit state: 0 closed, 1 half-open, 2 open.",
                &["subscription"],
            ),
            circuit_transitions: counter(
                "hookline_circuit_transitions_total",
                "Circuit state changes by new state.",
                &["subscription", "state"],
            ),
            retry_topic_writes: counter(
                "hookline_retry_topic_writes_total",
                "Events moved to the durable retry topic.",
                &["subscription"],
            ),
            backlog_spilled: counter(
                "hookline_backlog_spilled_total",
                "Deliveries written to their subscription's backlog, by cause.",
                &["subscription", "cause"],
            ),
            backlog_deliveries: counter(
                "hookline_backlog_deliveries_total",
                "Deliveries read back from the backlog that reached their receiver.",
                &["subscription"],
            ),
            backlog_depth: gauge(
                "hookline_backlog_depth",
                "Events waiting in the subscription's backlog.",
                &["subscription"],
            ),
            backlog_oldest_age,
            backlog_write_errors: counter(
                "hookline_backlog_write_errors_total",
                "Failed writes to a backlog (each is retried).",
                &["subscription"],
            ),
            lane_restarts: counter(
                "hookline_lane_restarts_total",
                "Times a lane's task panicked and was restarted.",
                &["subscription"],
            ),
            dead_letters: counter(
                "hookline_dead_letters_total",
                "Records written to the dead-letter topic.",
                &["reason"],
            ),
            dead_letter_write_errors,
            dead_letters_truncated: counter(
                "hookline_dead_letters_truncated_total",
                "Dead letters Kafka refused for good (too large), written without their payload.",
                &["reason"],
            ),
            inflight_messages,
            committed_offset: gauge(
                "hookline_committed_offset",
                "Last committed offset of a partition this instance holds.",
                &["role", "topic", "partition"],
            ),
            consumer_lag: gauge(
                "hookline_consumer_lag",
                "High watermark minus consumer position, of a partition this instance holds.",
                &["role", "topic", "partition"],
            ),
            commits: counter(
                "hookline_offset_commits_total",
                "Offset commits by result.",
                &["result"],
            ),
            rule_reloads: counter(
                "hookline_rule_reloads_total",
                "Rule reloads by result.",
                &["result"],
            ),
            rules_loaded_timestamp,
            severity_unknown: counter(
                "hookline_severity_unknown_total",
                "Severities no alias or band understood.",
                &["source"],
            ),
            categories_truncated: counter(
                "hookline_categories_truncated_total",
                "Events with more categories than are kept; the rest were ignored.",
                &["source"],
            ),
            dedup_suppressed: counter(
                "hookline_dedup_suppressed_total",
                "Deliveries suppressed by a dedup window.",
                &["subscription"],
            ),
            render_errors: counter(
                "hookline_render_errors_total",
                "Events a template could not render.",
                &["subscription"],
            ),
            assigned_partitions: gauge(
                "hookline_assigned_partitions",
                "Partitions currently assigned to this instance, by consumer role.",
                &["role"],
            ),
            subscriptions: gauge(
                "hookline_subscriptions",
                "Subscriptions in force, by source and status.",
                &["source", "status"],
            ),
            subscriptions_disabled: counter(
                "hookline_subscriptions_disabled_total",
                "Subscriptions disabled, by reason.",
                &["reason"],
            ),
            subscription_changes: counter(
                "hookline_subscription_changes_total",
                "Changes made through the webhooks API, by action.",
                &["action"],
            ),
            subscription_store_errors: counter(
                "hookline_subscription_store_errors_total",
                "Problems with the subscriptions topic, by kind.",
                &["kind"],
            ),
            admin_rejected: counter(
                "hookline_admin_rejected_total",
                "Admin requests refused before their handler, by reason.",
                &["reason"],
            ),
            build_info,
            registry,
            names: Vec::new(),
        };
        inner.names = names.into_inner();
        Metrics {
            inner: Arc::new(inner),
        }
    }

    /// The name of every metric family hookline exports, also those with no series yet
    /// (histograms by their base name: `_bucket`, `_sum` and `_count` follow from it).
    pub fn family_names(&self) -> &[String] {
        &self.inner.names
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.inner.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("prometheus text is utf-8")
    }
}

impl std::ops::Deref for Metrics {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}
