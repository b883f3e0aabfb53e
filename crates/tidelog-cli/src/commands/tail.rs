//! `tidelog tail DIR [-f] [--from LSN]`: the last records, and with `-f` the new ones as they
//! come, from another process.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use tidelog::{Lsn, RecoveryMode};

use super::{PayloadFormat, RecordPrinter, open_read_only, parse_lsn};
use crate::output::{Ctx, Out, note};

/// How often `-f` looks for new records.
const POLL_EVERY: Duration = Duration::from_millis(100);
/// How many polls in a row may fail (a writer caught mid-roll, say) before `-f` gives up.
const MAX_FAILED_POLLS: u32 = 50;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
With -f, tail polls: every 100 ms it looks at the log directory and, when the log changed (or
was written to recently), reopens the log read-only and prints the records past the last one it
printed. It takes no lock, so it follows a log that another process is writing, and it sees
what that process has written so far. Stop it with Ctrl-C.

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
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: PayloadFormat,
}

pub(crate) fn run(args: Args, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let mut out = ctx.out();
    let mut follower = Follower {
        dir: args.dir.clone(),
        next: args.from,
        lines: args.lines,
        format: args.format,
        json: ctx.json,
        width: 0,
    };
    follower.poll(&mut out)?;
    out.flush()?;
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    let mut seen = fingerprint(&args.dir);
    let mut failures = 0;
    loop {
        std::thread::sleep(POLL_EVERY);
        let now = fingerprint(&args.dir);
        let recently_written = now.as_ref().is_some_and(|f| {
            f.newest
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_none_or(|age| age < Duration::from_secs(2))
        });
        if now.is_some() && now == seen && !recently_written && failures == 0 {
            continue;
        }
        match follower.poll(&mut out) {
            Ok(()) => {
                failures = 0;
                seen = now;
            }
            Err(e) if failures < MAX_FAILED_POLLS && !e.is::<crate::output::BrokenPipe>() => {
                failures += 1;
            }
            Err(e) => return Err(e),
        }
        out.flush()?;
    }
}

/// Where a follower is.
struct Follower {
    dir: PathBuf,
    /// The next LSN to print; `None` until the first poll decides it.
    next: Option<Lsn>,
    lines: u64,
    format: PayloadFormat,
    json: bool,
    width: usize,
}

impl Follower {
    /// Reopens the log read-only and prints every record past the last one printed.
    fn poll(&mut self, out: &mut Out) -> anyhow::Result<()> {
        let log = open_read_only(&self.dir, RecoveryMode::TolerateTornTail)?;
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
            format: self.format,
            json: self.json,
            lsn_width: self.width,
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
        Ok(())
    }
}

/// What a look at the directory shows: file names, sizes and modification times.
#[derive(Debug, PartialEq, Eq)]
struct Fingerprint {
    files: Vec<(std::ffi::OsString, u64, Option<SystemTime>)>,
    newest: Option<SystemTime>,
}

fn fingerprint(dir: &Path) -> Option<Fingerprint> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).ok()? {
        let entry = entry.ok()?;
        let meta = entry.metadata().ok()?;
        files.push((entry.file_name(), meta.len(), meta.modified().ok()));
    }
    files.sort();
    let newest = files.iter().filter_map(|f| f.2).max();
    Some(Fingerprint { files, newest })
}
