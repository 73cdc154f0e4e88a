//! `hookline replay`: re-inject dead-lettered events, with a progress display and a summary.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};

use serde_json::json;

use crate::config::Config;
use crate::retry_topic::replay::{replay, ReplayError, ReplayFilter, ReplaySummary, Unfinished};

/// Arguments of `hookline replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Configuration file (default: ./hookline.toml when it exists).
    #[arg(long, short, env = "HOOKLINE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Only dead letters of this subscription.
    #[arg(long)]
    pub subscription: Option<String>,
    /// Only those that failed at or after this time (RFC 3339, e.g. 2026-11-22T10:00:00Z).
    #[arg(long)]
    pub since: Option<DateTime<Utc>>,
    /// Only those that failed before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<DateTime<Utc>>,
    /// Only these reasons (repeatable): rejected, retries-exhausted, render-failed, ...
    #[arg(long = "reason")]
    pub reasons: Vec<String>,
    /// Also produce input problems (not-json, too-large, ...) back to their source topic.
    #[arg(long)]
    pub to_source: bool,
    /// Count what would be replayed; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Stop (and exit 1) when no dead letter arrives for this long before the topic was read
    /// to its end.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub idle_timeout: std::time::Duration,
    /// Print the summary as one JSON object, and no progress bar.
    #[arg(long)]
    pub json: bool,
}

/// Runs the replay.
pub async fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let settings = match Config::load(args.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hookline: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let filter = ReplayFilter {
        subscription: args.subscription,
        since: args.since,
        until: args.until,
        reasons: args.reasons,
        to_source: args.to_source,
        dry_run: args.dry_run,
        idle_timeout: Some(args.idle_timeout),
    };
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} reading {msg} [{bar:30}] {pos}/{len} dead letters")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(settings.kafka.dead_letter_topic.clone());
    let result = replay(&settings, &filter, |scanned, total| {
        bar.set_length(total);
        bar.set_position(scanned);
    })
    .await;
    bar.finish_and_clear();
    let (summary, unfinished) = match result {
        Ok(summary) => (summary, Vec::new()),
        Err(ReplayError::Incomplete {
            summary,
            unfinished,
            idle,
        }) => {
            eprintln!(
                "hookline: replay incomplete: no dead letter arrived for {}",
                humantime::format_duration(idle)
            );
            (summary, unfinished)
        }
        Err(e) => return Err(e.into()),
    };
    if args.json {
        println!("{}", to_json(&summary, &unfinished, &filter));
    } else {
        print_text(&summary, &unfinished, &filter);
    }
    Ok(if unfinished.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn to_json(summary: &ReplaySummary, unfinished: &[Unfinished], filter: &ReplayFilter) -> String {
    json!({
        "complete": unfinished.is_empty(),
        "dry_run": filter.dry_run,
        "scanned": summary.scanned,
        "matched": summary.matched,
        "to_retry_topic": summary.to_retry_topic,
        "to_source": summary.to_source,
        "skipped_input": summary.skipped_input,
        "unreadable": summary.unreadable,
        "unfinished": unfinished
            .iter()
            .map(|u| json!({"partition": u.partition, "position": u.position, "end": u.end}))
            .collect::<Vec<_>>(),
    })
    .to_string()
}

fn print_text(summary: &ReplaySummary, unfinished: &[Unfinished], filter: &ReplayFilter) {
    let verb = if filter.dry_run { "would be" } else { "were" };
    println!(
        "read {} dead letter(s); {} matched",
        summary.scanned, summary.matched
    );
    println!(
        "  {} {verb} sent back to their subscription through the retry topic",
        summary.to_retry_topic
    );
    if filter.to_source {
        println!(
            "  {} {verb} produced back to their source topic",
            summary.to_source
        );
    }
    if summary.skipped_input > 0 {
        println!(
            "  {} input problem(s) skipped (use --to-source to route them again)",
            summary.skipped_input
        );
    }
    if summary.unreadable > 0 {
        println!("  {} unreadable record(s) skipped", summary.unreadable);
    }
    for u in unfinished {
        println!(
            "  INCOMPLETE: partition {} stopped at offset {} of {}; run the replay again with --since to continue",
            u.partition, u.position, u.end
        );
    }
}
