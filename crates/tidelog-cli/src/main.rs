//! `tidelog`, the command-line tool of the tidelog write-ahead log: inspect, dump, verify and
//! recover logs, follow them, append to them, archive them to object storage and restore them,
//! benchmark them, probe the disk under them, and run the demo.
//!
//! Exit codes: 0 success, 1 a problem found (`verify` found damage, a `recover` dry run found
//! damage or would change the log), 2 a usage or runtime error. A closed standard output (as in
//! `tidelog dump DIR | head`) ends the command quietly with 0.

mod cli;
mod commands;
mod output;
mod report;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let ctx = output::Ctx::from_env(cli.json);
    match run(cli, &ctx) {
        Ok(code) => code,
        Err(err) => output::exit_with_error(&err),
    }
}

fn run(cli: cli::Cli, ctx: &output::Ctx) -> anyhow::Result<ExitCode> {
    commands::run(cli.command, ctx)
}
