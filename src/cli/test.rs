//! `hookline test`: a dry run of the rules, no Kafka. Either one event file
//! (`--topic T --event FILE [--json]`) or a file of test cases (`--cases FILE`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;

use crate::rules::dry_run::{self, Outcome};
use crate::rules::{cases, RuleSet};

/// Arguments of `hookline test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// The rules directory.
    #[arg(long)]
    pub rules: PathBuf,
    /// Topic the event is read from.
    #[arg(long, requires = "event")]
    pub topic: Option<String>,
    /// A file holding the event (a JSON object, or an array: one event per element).
    #[arg(long, requires = "topic")]
    pub event: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// A YAML file of routing test cases; passes or fails like a test suite.
    #[arg(long, conflicts_with_all = ["topic", "event"], required_unless_present = "event")]
    pub cases: Option<PathBuf>,
}

/// Runs the dry run or the cases.
pub fn run(args: TestArgs) -> anyhow::Result<ExitCode> {
    let rules = match RuleSet::load_dir(&args.rules) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            for p in &e.problems {
                eprintln!("{p}");
            }
            anyhow::bail!("the rules in {} are invalid", args.rules.display());
        }
    };
    if let Some(file) = &args.cases {
        return run_cases(rules, file);
    }
    let (Some(topic), Some(event)) = (&args.topic, &args.event) else {
        anyhow::bail!("give --topic and --event, or --cases");
    };
    let payloads = cases::read_events(event).map_err(anyhow::Error::msg)?;
    let outcomes = dry_run::run(rules, topic, &payloads);
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        let text = serde_json::to_string_pretty(&dry_run::report(&outcomes)).context("encoding")?;
        writeln!(out, "{text}")
    } else {
        outcomes
            .iter()
            .enumerate()
            .try_for_each(|(i, r)| print_text(&mut out, i, r))
    };
    match written {
        // `hookline test ... | head` is not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

fn print_text(out: &mut impl Write, i: usize, o: &Outcome) -> std::io::Result<()> {
    let r = &o.routing;
    let others = if r.categories.len() > 1 {
        format!(" (categories {})", r.categories.join(", "))
    } else {
        String::new()
    };
    writeln!(
        out,
        "event {}: category={}{others} severity={} (raw {}) id={} source={}",
        i + 1,
        r.category,
        r.severity,
        r.raw_severity.as_deref().unwrap_or("-"),
        r.event_id.as_deref().unwrap_or("-"),
        r.source.as_deref().unwrap_or("-"),
    )?;
    let routes = if r.routes.is_empty() {
        "(none)".to_string()
    } else {
        r.routes.join(", ")
    };
    writeln!(out, "  routes: {routes}")?;
    if !o.not_matched.is_empty() {
        writeln!(out, "  not matched:")?;
    }
    for n in &o.not_matched {
        writeln!(out, "    {}: {}", n.route, n.reason)?;
    }
    for d in &r.deliveries {
        match &d.body {
            Some(Ok(b)) => writeln!(out, "  -> {}: {}", d.subscription.id, b)?,
            Some(Err(e)) => writeln!(out, "  -> {}: RENDER ERROR {e}", d.subscription.id)?,
            None => writeln!(out, "  -> {}: (not rendered)", d.subscription.id)?,
        }
    }
    for s in &r.suppressed {
        writeln!(out, "  -> {s}: suppressed by dedup")?;
    }
    Ok(())
}

fn run_cases(rules: Arc<RuleSet>, file: &std::path::Path) -> anyhow::Result<ExitCode> {
    let results = cases::run(rules, file)?;
    let failed = results.iter().filter(|r| !r.failures.is_empty()).count();
    for r in &results {
        if r.failures.is_empty() {
            println!("ok    {}", r.name);
        } else {
            println!("FAIL  {} ({})", r.name, r.place);
            for f in &r.failures {
                println!("        {f}");
            }
        }
    }
    println!("{} passed, {failed} failed", results.len() - failed);
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
