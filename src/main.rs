use std::process::ExitCode;

use clap::Parser;

#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
