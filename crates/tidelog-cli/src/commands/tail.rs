//! `tidelog tail DIR [-f] [--from LSN]`: the last records, and with `-f` the new ones as they
//! come, from another process.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use tidelog::{Log, Lsn, RecoveryMode};

use super::{PayloadFormat, RecordPrinter, open_read_only, parse_lsn};
use crate::output::{Ctx, Out, note};

/// How often `-f` looks for new records.
const POLL_EVERY: Duration = Duration::from_millis(100);
/// How many polls in a row may fail (a writer caught mid-roll, say) before `-f` gives up.
const MAX_FAILED_POLLS: u32 = 50;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
With -f, tail polls: it opens the log read-only once, and every 100 ms reads what was appended
since (only the new bytes) and prints the records past the last one it printed. It takes no
lock, so it follows a log that another process is writing, and it sees what that process has
written so far. If the writer rolls the log back or resets it, tail says so and opens the log
again. Stop it with Ctrl-C.

Examples:
  tidelog tail ./wal                 # the last 10 records
  tidelog tail -n 100 ./wal
  tidelog tail -f ./wal              # and keep printing new records
  tidelog tail -f --from 1 --json ./wal")]
pub(crate) struct Args {
    /// The log directory.
    pub(crate) dir: PathBuf,

    /// Keep following the log: poll for new records every 100 ms.
    #[arg(short = 'f', long)]
    pub(crate) follow: bool,

    /// First LSN to print (default: the last --lines records).
    #[arg(long, value_name = "LSN", value_parser = parse_lsn)]
    pub(crate) from: Option<Lsn>,

    /// How many of the last records to print when --from is not given.
    #[arg(short = 'n', long, value_name = "N", default_value_t = 10)]
    pub(crate) lines: u64,

    /// How payloads are printed.
    #[arg(long, value_enum, default_value_t, alias = "format")]
    pub(crate) payload: PayloadFormat,
}

pub(crate) fn run(args: Args, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let mut out = ctx.out();
    let mut tailing = Tailing {
        dir: args.dir.clone(),
        log: None,
        next: args.from,
        lines: args.lines,
        payload: args.payload,
        json: ctx.json,
        width: 0,
    };
    tailing.poll(&mut out)?;
    out.flush()?;
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    let mut failures = 0;
    loop {
        std::thread::sleep(POLL_EVERY);
        match tailing.poll(&mut out) {
            Ok(()) => failures = 0,
            Err(e) if failures < MAX_FAILED_POLLS && !e.is::<crate::output::BrokenPipe>() => {
                // Open again at the next poll (a writer caught mid-roll, say).
                tailing.log = None;
                failures += 1;
            }
            Err(e) => return Err(e),
        }
        out.flush()?;
    }
}

/// Where `tail` is in the log.
struct Tailing {
    dir: PathBuf,
    /// The log, open read-only; refreshed at every poll.
    log: Option<Log>,
    /// The next LSN to print; `None` until the first poll decides it.
    next: Option<Lsn>,
    lines: u64,
    payload: PayloadFormat,
    json: bool,
    width: usize,
}

impl Tailing {
    /// Brings the log up to date (opening it if needed) and prints every record past the last
    /// one printed.
    fn poll(&mut self, out: &mut Out) -> anyhow::Result<()> {
        let log = match self.log.take() {
            Some(log) => match log.refresh() {
                Ok(_) => log,
                Err(e @ tidelog::Error::LogChanged { .. }) => {
                    note(format_args!("{e}"));
                    open_read_only(&self.dir, RecoveryMode::TolerateTornTail)?
                }
                Err(e) => return Err(e).context("cannot read the new records"),
            },
            None => open_read_only(&self.dir, RecoveryMode::TolerateTornTail)?,
        };
        let checkpoint = log.checkpoint_lsn();
        let last = log.last_lsn();
        let mut next = self.next.unwrap_or_else(|| {
            Lsn::new((last.get() + 1).saturating_sub(self.lines).max(1)).max(checkpoint)
        });
        if next < checkpoint {
            if self.next.is_some() {
                note(format_args!(
                    "records {next}..{checkpoint} were dropped by a checkpoint before they \
                     were printed"
                ));
            }
            next = checkpoint;
        }
        if next > last.next() {
            note(format_args!(
                "the log was truncated after LSN {last}; following from LSN {}",
                last.next()
            ));
            next = last.next();
        }
        if self.width == 0 {
            self.width = last.get().to_string().len();
        }
        let printer = RecordPrinter {
            format: self.payload,
            json: self.json,
            lsn_width: self.width,
            sharded_widths: (1, 1),
        };
        let records = log
            .range(next..)
            .with_context(|| format!("cannot read the log from LSN {next}"))?;
        for record in records {
            let record = record.context("cannot read a record")?;
            next = record.lsn().next();
            self.next = Some(next);
            printer.print(out, &record)?;
        }
        self.next = Some(next);
        self.log = Some(log);
        Ok(())
    }
}
