//! `hookline dev`: the whole product on one machine with nothing installed. Starts an
//! in-process Kafka broker, a local webhook receiver that prints what it gets, and the router
//! on the example rules; then produces the sample events and shows them routed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::config::Config;
use crate::dev::broker::DevBroker;
use crate::dev::receiver::Receiver;

/// Arguments of `hookline dev`.
#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// Rules directory.
    #[arg(long, default_value = "rules/examples")]
    pub rules: PathBuf,
    /// Sample events: each `<vendor>[-anything].json` is produced to topic `security.<vendor>`.
    #[arg(long, default_value = "rules/examples/events")]
    pub events: PathBuf,
    /// Admin API address.
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub admin: String,
    /// Partitions per topic.
    #[arg(long, default_value_t = 3)]
    pub partitions: i32,
    /// Exit once the samples are routed and committed, instead of running until Ctrl-C.
    #[arg(long)]
    pub once: bool,
    /// Produce no sample events: only serve (the admin API's schemathesis run).
    #[arg(long)]
    pub no_samples: bool,
    /// Admin bearer token for every `/api/v1` endpoint (unset: the API is open).
    #[arg(long, env = "HOOKLINE_DEV_WRITE_TOKEN", hide_env_values = true)]
    pub write_token: Option<String>,
}

/// The environment variable the example rules read their receiver URL from.
pub const RECEIVER_VAR: &str = "HOOKLINE_DEV_RECEIVER";

/// Runs the embedded default.
pub async fn run(args: DevArgs) -> anyhow::Result<ExitCode> {
    let mut shutdown = super::signal::Shutdown::listen();
    let samples = samples(&args.events)?;
    let broker = DevBroker::start(1).context("cannot start the in-process Kafka broker")?;
    let receiver = Receiver::start()
        .await
        .context("cannot start the local receiver")?;
    receiver.observe(|r| {
        let body = String::from_utf8_lossy(&r.body);
        let body = if body.len() > 300 {
            format!("{}…", &body[..300])
        } else {
            body.to_string()
        };
        println!(
            "  ⇢ receiver got POST {} ({}): {}",
            r.path,
            r.header("webhook-id").unwrap_or("-"),
            body
        );
    });
    // The example rules take their destination from this variable; event data never does.
    std::env::set_var(RECEIVER_VAR, receiver.url(""));

    let mut topics: Vec<&str> = samples.iter().map(|(t, _)| t.as_str()).collect();
    topics.dedup();
    for topic in &topics {
        broker.create_topic(topic, args.partitions)?;
    }

    let mut config = Config::default();
    config.kafka.brokers = broker.bootstrap_servers();
    config.kafka.group_id = "hookline-dev".into();
    config.rules.dir = args.rules.clone();
    config.admin.listen = args.admin.clone();
    config.delivery.allow_networks = vec!["127.0.0.0/8".into()];
    config.kafka.create_topics = false;
    config.admin.write_token = args.write_token.clone();
    // Generous: the schemathesis run sends a request after another.
    config.admin.rate_limit = 1000.0;
    config.admin.rate_limit_burst = 1000;
    // An in-process broker forgets everything at exit, so a key of this run is enough to
    // create subscriptions through the API.
    let key: [u8; 32] = rand::random();
    config.subscriptions.secret_key = Some(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        key,
    ));
    let settings = config.validate()?;
    let playground = settings.admin.playground;
    broker.create_router_topics(&settings)?;
    let Some(running) = super::start_or_report(settings).await? else {
        return Ok(ExitCode::from(2));
    };

    println!("hookline dev");
    println!("  kafka bootstrap : {}", broker.bootstrap_servers());
    println!("  rules           : {}", args.rules.display());
    println!("  receiver        : {}", receiver.url("/"));
    println!(
        "  admin           : http://{}/metrics  /readyz  /api/v1/webhooks",
        running.admin_addr
    );
    if playground {
        println!(
            "  playground      : http://{}/playground/  (try the rules on an event, edit templates and routes)",
            running.admin_addr
        );
    }
    println!(
        "  produce more    : kcat -P -b {} -t {} <event.json",
        broker.bootstrap_servers(),
        topics.first().unwrap_or(&"security.contrast")
    );
    println!();

    if args.no_samples {
        println!("serving; Ctrl-C to stop");
        shutdown.received().await;
        running.stop();
        running.wait().await;
        return Ok(ExitCode::SUCCESS);
    }
    let started = Instant::now();
    let mut produced = BTreeMap::new();
    for (topic, path) in &samples {
        let payload = std::fs::read(path)?;
        let (partition, offset) = broker.produce(topic, None, None, &payload).await?;
        println!(
            "produced {} -> {topic}[{partition}]@{offset}",
            path.display()
        );
        let high = produced.entry((topic.clone(), partition)).or_insert(offset);
        *high = (*high).max(offset);
    }

    let settled = wait_until_committed(&running.metrics, &produced, Duration::from_secs(60)).await;
    let by_path = receiver
        .requests()
        .into_iter()
        .fold(BTreeMap::new(), |mut m, r| {
            *m.entry(r.path).or_insert(0) += 1;
            m
        });
    println!();
    if settled {
        println!(
            "all {} sample messages routed and committed in {:.1?}",
            samples.len(),
            started.elapsed()
        );
    } else {
        println!("not every sample was settled within 60 s; see the log above");
    }
    for (path, n) in by_path {
        println!("  {n:>3} request(s) to {path}");
    }
    if args.once {
        running.stop();
        running.wait().await;
        return Ok(if settled {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    println!("\nrunning; produce more events to the bootstrap address above, Ctrl-C to stop");
    shutdown.received().await;
    running.stop();
    running.wait().await;
    Ok(ExitCode::SUCCESS)
}

/// `(topic, file)` for every sample, sorted by file name.
fn samples(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            out.push((crate::dev::samples::topic_for(&name), path));
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    anyhow::ensure!(
        !out.is_empty(),
        "no *.json sample events in {}",
        dir.display()
    );
    Ok(out)
}

async fn wait_until_committed(
    metrics: &crate::metrics::Metrics,
    produced: &BTreeMap<(String, i32), i64>,
    timeout: Duration,
) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let done = produced.iter().all(|((topic, partition), offset)| {
            metrics
                .committed_offset
                .with_label_values(&["source", topic, &partition.to_string()])
                .get()
                > *offset
        });
        if done {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
