use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = hookline::cli::Cli::parse();
    match hookline::cli::main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hookline: {e:#}");
            ExitCode::FAILURE
        }
    }
}
