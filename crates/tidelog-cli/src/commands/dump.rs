//! `tidelog dump DIR`: one line per record.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use tidelog::{Lsn, RecoveryMode};

use super::{PayloadFormat, RecordPrinter, open_read_only, parse_lsn};
use crate::output::Ctx;
use crate::report;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Each line holds the LSN, the record's place in the batch it was appended in (single, start,
middle, end), its size in bytes and its payload. With --json each line is an object:
{\"lsn\": 7, \"batch\": \"single\", \"size\": 5, \"text\": \"hello\"} (the payload's key is the
format's name).

Opens the log read-only: nothing in the directory changes.

Examples:
  tidelog dump ./wal
  tidelog dump ./wal --from 100 --to 120 --format hex
  tidelog dump ./wal --json | jq -r .text
  tidelog dump ./wal --mode skip-corrupt   # a damaged log: every intact record")]
pub(crate) struct Args {
    /// The log directory.
    pub(crate) dir: PathBuf,

    /// First LSN to print (default: the checkpoint, the first readable record).
    #[arg(long, value_name = "LSN", value_parser = parse_lsn)]
    pub(crate) from: Option<Lsn>,

    /// Last LSN to print (default: the last record).
    #[arg(long, value_name = "LSN", value_parser = parse_lsn)]
    pub(crate) to: Option<Lsn>,

    /// How payloads are printed.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: PayloadFormat,

    /// The recovery mode of the read-only open (skip-corrupt reads a damaged log).
    #[arg(long, value_parser = report::mode_parser(), default_value_t)]
    pub(crate) mode: RecoveryMode,
}

pub(crate) fn run(args: Args, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let log = open_read_only(&args.dir, args.mode)?;
    let from = match args.from {
        Some(from) => from,
        None => log.checkpoint_lsn(),
    };
    let to = match args.to {
        Some(to) => to,
        None => log.last_lsn(),
    };
    let mut out = ctx.out();
    if from > to {
        return out.flush().map(|()| ExitCode::SUCCESS);
    }
    let printer = RecordPrinter::new(args.format, ctx.json, log.last_lsn().min(to));
    let records = log
        .range(from..=to)
        .with_context(|| format!("cannot read LSN {from}..={to}"))?;
    for record in records {
        let record = record.context("cannot read a record")?;
        printer.print(&mut out, &record)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
