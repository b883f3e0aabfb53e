//! `tidelog append DIR [--sync] [FILE...]`: lines of standard input, or whole files, as records.

use std::io::{BufRead, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::json;
use tidelog::{Durability, Lsn};

use super::open_for_writing;
use crate::output::Ctx;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Without FILE arguments each line of standard input (without its line ending) becomes one
record; with them, each file's whole content becomes one record. The log is created if the
directory holds none.

Without --sync the records are made durable with one fsync at the end; with --sync each record
is durable before the next line is read (one fsync per record, for a live stream). With
--batch every record goes into one atomic batch: after a crash all of them are there, or none.

Examples:
  printf 'set x = 1\\nset y = 2\\n' | tidelog append ./wal
  tail -f app.log | tidelog append --sync ./wal
  tidelog append ./wal snapshot.bin manifest.json
  seq 1 100 | tidelog append --batch ./wal")]
pub(crate) struct Args {
    /// The log directory.
    pub(crate) dir: PathBuf,

    /// Files to append, each as one record (default: the lines of standard input).
    pub(crate) files: Vec<PathBuf>,

    /// Make each record durable before reading the next one.
    #[arg(long)]
    pub(crate) sync: bool,

    /// Append every record as one atomic batch.
    #[arg(long)]
    pub(crate) batch: bool,
}

pub(crate) fn run(args: Args, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let log = open_for_writing(&args.dir, true)?;
    let durability = if args.sync {
        Durability::Synced
    } else {
        Durability::Buffered
    };
    let mut range: Option<(Lsn, Lsn)> = None;
    let mut count = 0u64;
    let mut bytes = 0u64;
    let mut note_range = |first: Lsn, last: Lsn, n: u64| {
        range = Some((range.map_or(first, |r| r.0), last));
        count += n;
    };
    let mut pending: Vec<Vec<u8>> = Vec::new();
    let mut add = |record: Vec<u8>| -> anyhow::Result<()> {
        bytes += record.len() as u64;
        if args.batch {
            pending.push(record);
        } else {
            let lsn = log
                .append(&record, durability)
                .context("cannot append a record")?;
            note_range(lsn, lsn, 1);
        }
        Ok(())
    };
    if args.files.is_empty() {
        let stdin = std::io::stdin();
        let mut input = stdin.lock();
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = input
                .read_until(b'\n', &mut line)
                .context("cannot read standard input")?;
            if n == 0 {
                break;
            }
            if line.last() == Some(&b'\n') {
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
            }
            add(line.clone())?;
        }
    } else {
        for path in &args.files {
            let mut data = Vec::new();
            std::fs::File::open(path)
                .and_then(|mut f| f.read_to_end(&mut data))
                .with_context(|| format!("cannot read {}", path.display()))?;
            add(data)?;
        }
    }
    if !pending.is_empty() {
        let (first, last) = log
            .append_batch(&pending, durability)
            .context("cannot append the batch")?;
        note_range(first, last, pending.len() as u64);
    }
    log.close().context("cannot make the records durable")?;

    let mut out = ctx.out();
    match range {
        None => {
            if ctx.json {
                out.json(&json!({"appended": 0}))?;
            } else {
                out.line("nothing to append: the input was empty")?;
            }
        }
        Some((first, last)) => {
            if ctx.json {
                out.json(&json!({
                    "appended": count,
                    "bytes": bytes,
                    "first_lsn": first.get(),
                    "last_lsn": last.get(),
                    "durable": true,
                }))?;
            } else {
                out.line(format_args!(
                    "appended {count} record{} ({bytes} bytes) to {}: LSN {first}..={last}, durable",
                    if count == 1 { "" } else { "s" },
                    args.dir.display()
                ))?;
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
