//! `tidelog follow URL [--from LSN] [--count N] [--poll-ms MS]`: the records of an archive as
//! its writer extends it, read from the store (by another process, on another host).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use tidelog::Lsn;
use tidelog_archive::{FollowOptions, Follower};

use super::{PayloadFormat, RecordPrinter, open_existing_store, parse_lsn};
use crate::output::{Ctx, note};

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Reads the archive at URL record by record as its archiver extends it (`tidelog archive`, or an
archiver of the library in another process, on another host): every archived record from
--from on (default: the archive's first), in LSN order, each once; then it waits, looking for a
newer manifest every --poll-ms milliseconds. A record shows once it is archived: up to one
archiver interval after it was durable in its log (for `tidelog archive`, at its next pass).
Each object read is checked against the size and checksum its manifest gives, then frame by
frame.

Each line is as `tidelog dump` and `tidelog tail` print a record: its LSN, its place in its
batch, the time of its batch (UTC), its size in bytes and its payload. With --json each line is
an object: {\"lsn\": 7, \"batch\": \"single\", \"time_ms\": 1796202000000, \"size\": 5,
\"text\": \"hello\"} (the payload's key is the encoding's name).

Without --count it runs until interrupted (Ctrl-C); with --count N it exits after N records.
A store operation that fails is retried with backoff, 10 times, then reported with exit code
2; so are records from --from on that the archive no longer holds (`tidelog prune` removed
them) and an object that does not check out.

While it reads, it keeps a reader's lease under readers/ at the URL, at the first LSN of the
object it reads, renewed every minute: `tidelog prune` removes nothing from there on. The lease
is removed when follow exits by itself (--count, or an error); interrupted, it runs out after
prune's --reader-ttl (default 10m). Store URLs are those of `tidelog archive`.

Examples:
  tidelog follow s3://backups/wal                     # every archived record, then new ones
  tidelog follow s3://backups/wal --from 120000 --json | jq -r .text
  tidelog follow file:///mnt/backup/wal --count 10 --payload hex")]
pub(crate) struct Args {
    /// The store the archive lives in: s3://BUCKET/PREFIX or file:///ABSOLUTE/PATH.
    pub(crate) url: String,

    /// First LSN to print (default: the archive's first record).
    #[arg(long, value_name = "LSN", value_parser = parse_lsn)]
    pub(crate) from: Option<Lsn>,

    /// Exit after printing N records (default: keep following until interrupted).
    #[arg(long, value_name = "N")]
    pub(crate) count: Option<u64>,

    /// Once every archived record is printed, milliseconds between two looks for a newer
    /// manifest.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 200,
        value_parser = clap::value_parser!(u64).range(1..=3_600_000)
    )]
    pub(crate) poll_ms: u64,

    /// How payloads are printed.
    #[arg(long, value_enum, default_value_t, alias = "format")]
    pub(crate) payload: PayloadFormat,
}

pub(crate) fn run(args: Args, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let store = open_existing_store(&args.url)?;
    let location = store.location().to_owned();
    let poll = Duration::from_millis(args.poll_ms);
    let mut options = FollowOptions::default().poll(poll);
    if let Some(from) = args.from {
        options = options.from(from);
    }
    let mut follower =
        Follower::new(store, options).with_context(|| format!("cannot follow {location}"))?;
    let mut out = ctx.out();
    // Made at the first record, when the archive's last LSN (the width of the column) is known.
    let mut printer: Option<RecordPrinter> = None;
    let mut printed = 0u64;
    let mut said_waiting = false;
    while args.count.is_none_or(|count| printed < count) {
        match follower.try_next() {
            Ok(Some(record)) => {
                let printer = printer.get_or_insert_with(|| {
                    let last = follower.lag().archived_lsn.max(record.lsn());
                    RecordPrinter::new(args.payload, ctx.json, last)
                });
                printer.print_archived(&mut out, &record)?;
                printed += 1;
            }
            Ok(None) => {
                // Caught up: what was printed goes out before the wait.
                out.flush()?;
                if !said_waiting && follower.lag().archived_lsn == Lsn::ZERO {
                    note(format_args!(
                        "nothing is archived at {location} yet: waiting for the first records"
                    ));
                    said_waiting = true;
                }
                std::thread::sleep(poll);
            }
            Err(e) => {
                let at = follower
                    .position()
                    .map_or_else(|| "its first record".to_owned(), |lsn| format!("LSN {lsn}"));
                out.flush()?;
                return Err(
                    anyhow::Error::new(e).context(format!("cannot follow {location} from {at}"))
                );
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
