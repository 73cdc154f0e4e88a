//! `hookline check DIR`: validates a rules directory the way a reload would, and says which
//! topics the rules will consume.
//!
//! A CI job that validates rules usually has none of the production secrets, so an unset
//! `${NAME}` is a warning here (the value is checked with a placeholder); `--strict-env` makes
//! it an error, as it always is for `hookline run` and reloads.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{json, Value};

use crate::rules::env::Unset;
use crate::rules::{Problem, RuleSet};

/// Arguments of `hookline check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The rules directory.
    pub dir: PathBuf,
    /// An unset environment variable is an error (by default a warning).
    #[arg(long)]
    pub strict_env: bool,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// What a check found.
struct Report {
    dir: String,
    /// Counts and topics when the set is valid.
    summary: Option<Summary>,
    problems: Vec<Problem>,
    warnings: Vec<String>,
}

struct Summary {
    sources: usize,
    subscriptions: usize,
    routes: usize,
    topics: Vec<String>,
}

/// Validates the directory; exits 1 when there is any problem. Problems go to stdout as
/// `file:line:col: message`, warnings to stderr as `warning: ...` (with `--json`, both in the
/// one object on stdout).
pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let unset = if args.strict_env {
        Unset::Error
    } else {
        Unset::Warn
    };
    let report = check(&args, unset);
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report.to_json())?)
    } else {
        report.print(&mut out)
    };
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
        _ => {}
    }
    Ok(if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn check(args: &CheckArgs, unset: Unset) -> Report {
    let (result, warnings) = RuleSet::check_dir(&args.dir, &|n| std::env::var(n).ok(), unset);
    let mut warnings: Vec<String> = warnings.iter().map(Problem::to_string).collect();
    let dir = args.dir.display().to_string();
    match result {
        Ok(rules) => {
            let topics = rules.topic_patterns();
            if topics.is_empty() {
                warnings.push(format!(
                    "{dir}: no source names a topic, so these rules consume nothing (add a source with `topics:`)"
                ));
            }
            Report {
                dir,
                summary: Some(Summary {
                    sources: rules.source_ids().count(),
                    subscriptions: rules.subscriptions().len(),
                    routes: rules.route_ids().count(),
                    topics,
                }),
                problems: Vec::new(),
                warnings,
            }
        }
        Err(e) => Report {
            dir,
            summary: None,
            problems: e.problems,
            warnings,
        },
    }
}

impl Report {
    fn print(&self, out: &mut impl Write) -> std::io::Result<()> {
        for w in &self.warnings {
            eprintln!("warning: {w}");
        }
        match &self.summary {
            Some(s) => {
                writeln!(
                    out,
                    "{}: ok ({} sources, {} subscriptions, {} routes)",
                    self.dir, s.sources, s.subscriptions, s.routes
                )?;
                if !s.topics.is_empty() {
                    writeln!(out, "consumes: {}", s.topics.join(", "))?;
                }
            }
            None => {
                for p in &self.problems {
                    writeln!(out, "{p}")?;
                }
                eprintln!("{} problem(s)", self.problems.len());
            }
        }
        Ok(())
    }

    fn to_json(&self) -> Value {
        let problem = |p: &Problem| json!({"file": p.file, "line": p.line, "col": p.col, "message": p.message});
        let mut doc = json!({
            "dir": self.dir,
            "ok": self.problems.is_empty(),
            "problems": self.problems.iter().map(problem).collect::<Vec<_>>(),
            "warnings": self.warnings,
        });
        if let Some(s) = &self.summary {
            doc["sources"] = s.sources.into();
            doc["subscriptions"] = s.subscriptions.into();
            doc["routes"] = s.routes.into();
            doc["topics"] = json!(s.topics);
        }
        doc
    }
}
