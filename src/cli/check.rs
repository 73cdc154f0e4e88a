//! `hookline check DIR`: validates a rules directory the way a reload would.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::rules::RuleSet;

/// Arguments of `hookline check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The rules directory.
    pub dir: PathBuf,
}

/// Validates the directory; prints every problem as `file:line:col: message` and exits 1 if
/// there is any, else prints a one-line summary.
pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    match RuleSet::load_dir(&args.dir) {
        Ok(rules) => {
            println!(
                "{}: ok ({} sources, {} subscriptions, {} routes)",
                args.dir.display(),
                rules.source_ids().count(),
                rules.subscriptions().len(),
                rules.route_ids().count()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            for p in &e.problems {
                println!("{p}");
            }
            eprintln!("{} problem(s)", e.problems.len());
            Ok(ExitCode::FAILURE)
        }
    }
}
