//! The command line: global options and the subcommands (clap derive). Each subcommand's
//! arguments live in its own file under `commands/`.

use clap::{Parser, Subcommand};

use crate::commands::{
    append, archive, archive_info, bench, checkpoint, completions, demo, dump, follow, fsync_probe,
    info, prune, recover, restore, tail, truncate_after, verify,
};

const AFTER_HELP: &str = "\
Exit codes:
  0  success (for verify: no damage; for a recover dry run: nothing to do)
  1  a problem was found: verify found damage, or a recover dry run found damage or would
     change the log
  2  a usage or runtime error; the message on standard error says why

A closed standard output (tidelog dump DIR | head) ends a command quietly with exit code 0.
Color is used only when standard output is a terminal and NO_COLOR is not set; progress bars
only when standard error is a terminal.

Examples:
  tidelog demo                          # the tour: commits, a killed writer, recovery
  tidelog info ./wal                    # segments, watermarks, checkpoint
  tidelog dump ./wal --from 100 --to 120
  tidelog verify ./wal || echo damaged  # exit code 1 when damage was found
  tidelog recover ./wal                 # dry run: what would recovery change?
  tidelog tail -f ./wal                 # follow a log another process writes
  tidelog dump ./wal --stats            # records, bytes and batch sizes per segment
  tidelog dump ./wal --frames           # frames with offsets, flags and checksums
  tidelog recover ./wal --rebuild-checkpoint   # a damaged CHECKPOINT rebuilt (dry run)
  tidelog info ./sharded                # a sharded log (its root holds SHARDS): epoch, shards
  tidelog fsync-probe ./wal             # what does an fsync cost on this disk?
  tidelog archive ./wal s3://bucket/wal --once   # upload what is durable to S3
  tidelog restore s3://bucket/wal ./wal2 --time 2026-12-02T09:00:00Z
  tidelog follow s3://bucket/wal --json # archived records as they come, from another host
  tidelog prune s3://bucket/wal --older-than 30d # retention, never under a reader";

/// Inspect, verify, recover, follow, archive, restore and benchmark tidelog write-ahead logs.
#[derive(Debug, Parser)]
#[command(name = "tidelog", version, after_help = AFTER_HELP, max_term_width = 100)]
pub(crate) struct Cli {
    /// Print JSON lines (one JSON value per line) instead of text, on every command that
    /// prints data.
    #[arg(long, global = true)]
    pub(crate) json: bool,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Show a log's segments, watermarks, checkpoint, id and format version, or a sharded log's
    /// epoch and shards (read-only).
    Info(info::Args),
    /// Print the records of a log or of a sharded log, or the frames of a log's files or of one
    /// file (read-only).
    Dump(dump::Args),
    /// Check every record of a log, or of every shard of a sharded log, and report all damage
    /// (read-only); exit 1 on damage.
    Verify(verify::Args),
    /// Show what recovery would do to a damaged log (dry run), or do it with --apply; or
    /// rebuild a damaged CHECKPOINT file.
    Recover(recover::Args),
    /// Print the last records of a log; with -f, keep printing new ones (read-only).
    Tail(tail::Args),
    /// Append lines of standard input, or whole files, as records.
    Append(append::Args),
    /// Declare that records below an LSN are no longer needed, dropping whole segments.
    Checkpoint(checkpoint::Args),
    /// Durably discard every record after an LSN (a rollback).
    TruncateAfter(truncate_after::Args),
    /// Upload a log's segments to an object store (S3, a local directory), once or every few
    /// seconds, as the archive's one writer.
    Archive(archive::Args),
    /// Rebuild a log from its archive in a new directory: to the latest record, an LSN or a
    /// time.
    Restore(restore::Args),
    /// Show what an archive holds: its log, generation and holder, objects, LSN range, batch
    /// times and readers.
    ArchiveInfo(archive_info::Args),
    /// Print an archive's records as its archiver extends it, from the store (read-only but
    /// for a reader's lease).
    Follow(follow::Args),
    /// Remove an archive's objects below an LSN or older than an age, never one a reader in
    /// progress needs.
    Prune(prune::Args),
    /// Measure tidelog on this disk: bulk appends, concurrent durable commits, large records.
    Bench(bench::Args),
    /// Measure what write + fsync costs on the disk under a directory, like pg_test_fsync.
    FsyncProbe(fsync_probe::Args),
    /// Run the tour: concurrent commits, a writer killed mid-append, recovery, power loss.
    Demo(demo::Args),
    /// Print a shell completion script.
    Completions(completions::Args),
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
