//! `tidelog completions SHELL`: a shell completion script.

use std::process::ExitCode;

use clap::CommandFactory as _;

use crate::cli::Cli;
use crate::output::Ctx;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  tidelog completions bash > ~/.local/share/bash-completion/completions/tidelog
  tidelog completions zsh > ~/.zfunc/_tidelog
  tidelog completions fish > ~/.config/fish/completions/tidelog.fish")]
pub(crate) struct Args {
    /// The shell.
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

pub(crate) fn run(args: Args, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    if ctx.json {
        anyhow::bail!("completions prints a shell script, not JSON: drop --json");
    }
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "tidelog", &mut script);
    let mut out = ctx.out();
    out.bytes(&script)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
