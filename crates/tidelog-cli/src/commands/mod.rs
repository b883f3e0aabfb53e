//! One module per subcommand, each with its `Args` and its `run`, plus what they share: how a
//! log is opened, how LSNs are parsed and how records are printed.

pub(crate) mod append;
pub(crate) mod archive;
pub(crate) mod archive_info;
pub(crate) mod bench;
pub(crate) mod checkpoint;
pub(crate) mod completions;
pub(crate) mod demo;
pub(crate) mod dump;
pub(crate) mod follow;
pub(crate) mod fsync_probe;
pub(crate) mod info;
pub(crate) mod prune;
pub(crate) mod recover;
pub(crate) mod restore;
pub(crate) mod tail;
pub(crate) mod truncate_after;
pub(crate) mod verify;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use base64::Engine as _;
use serde_json::json;
use tidelog::sharded::ShardedLog;
use tidelog::{Log, Lsn, Options, Record, RecoveryMode};

use crate::cli::Command;
use crate::output::{Ctx, Out, note};
use crate::report;

/// Runs one subcommand.
pub(crate) fn run(command: Command, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    match command {
        Command::Info(args) => info::run(args, ctx),
        Command::Dump(args) => dump::run(args, ctx),
        Command::Verify(args) => verify::run(args, ctx),
        Command::Recover(args) => recover::run(args, ctx),
        Command::Tail(args) => tail::run(args, ctx),
        Command::Append(args) => append::run(args, ctx),
        Command::Archive(args) => archive::run(args, ctx),
        Command::Restore(args) => restore::run(args, ctx),
        Command::ArchiveInfo(args) => archive_info::run(args, ctx),
        Command::Follow(args) => follow::run(args, ctx),
        Command::Prune(args) => prune::run(args, ctx),
        Command::Checkpoint(args) => checkpoint::run(args, ctx),
        Command::TruncateAfter(args) => truncate_after::run(args, ctx),
        Command::Bench(args) => bench::run(args, ctx),
        Command::FsyncProbe(args) => fsync_probe::run(args, ctx),
        Command::Demo(args) => demo::run(args, ctx),
        Command::Completions(args) => completions::run(args, ctx),
    }
}

/// Parses an LSN argument.
pub(crate) fn parse_lsn(s: &str) -> Result<Lsn, String> {
    s.trim()
        .parse::<u64>()
        .map(Lsn::new)
        .map_err(|_| format!("`{s}` is not an LSN (a whole number such as 42)"))
}

/// Parses a duration in seconds (`2`, `0.5`).
pub(crate) fn parse_seconds(s: &str) -> Result<std::time::Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds (such as 2 or 0.5)"))?;
    if !(secs.is_finite() && secs > 0.0 && secs <= 86_400.0) {
        return Err(format!(
            "{s} seconds is out of range (more than 0, at most a day)"
        ));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// Parses an age or a time span: a number and a unit (`90s`, `15m`, `12h`, `7d`, `2w`), or
/// several (`1h 30m`).
pub(crate) fn parse_age(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        format!(
            "`{s}` is not a duration ({e}): give a number and a unit, such as 90s, 15m, 12h or 7d"
        )
    })
}

/// A duration as `parse_age` reads it: `10m`, `1h 30m`, `7days`.
pub(crate) fn show_age(d: std::time::Duration) -> String {
    humantime::format_duration(std::time::Duration::from_secs(d.as_secs())).to_string()
}

/// The archive store at `url` (`s3://bucket/prefix`, `file:///path`), configured from the
/// environment.
pub(crate) fn open_store(url: &str) -> anyhow::Result<tidelog_archive::Store> {
    tidelog_archive::Store::from_url(url).context("cannot use the archive store")
}

/// The archive store at `url` for reading (`archive-info`, `restore`): as [`open_store`], but a
/// local directory that does not exist is no archive, and is not created.
pub(crate) fn open_existing_store(url: &str) -> anyhow::Result<tidelog_archive::Store> {
    if let Ok(parsed) = url::Url::parse(url)
        && parsed.scheme() == "file"
        && let Ok(path) = parsed.to_file_path()
        && !path.exists()
    {
        return Err(anyhow::Error::new(tidelog_archive::Error::NoArchive {
            location: format!("{} (no such directory)", path.display()),
        }));
    }
    open_store(url)
}

/// Parses a time: RFC 3339 in UTC (`2026-12-02T09:00:00Z`, fractions of a second allowed, the
/// `Z` optional) or milliseconds since the Unix epoch.
pub(crate) fn parse_time(s: &str) -> Result<std::time::SystemTime, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let ms: u64 = s
            .parse()
            .map_err(|_| format!("`{s}` is too large for milliseconds since the Unix epoch"))?;
        return std::time::UNIX_EPOCH
            .checked_add(std::time::Duration::from_millis(ms))
            .ok_or_else(|| format!("`{s}` is too far in the future"));
    }
    humantime::parse_rfc3339_weak(s).map_err(|e| {
        format!(
            "`{s}` is not a time ({e}): give RFC 3339 in UTC such as 2026-12-02T09:00:00Z, or \
             milliseconds since the Unix epoch"
        )
    })
}

/// Refuses a directory on a file system that lives in memory, where fsync does nothing and any
/// figure says nothing about a disk.
pub(crate) fn refuse_memory_file_system(dir: &Path) -> anyhow::Result<()> {
    if let Some(kind) = memory_file_system(dir) {
        anyhow::bail!(
            "{} is on {kind}, which lives in memory: fsync does nothing there, so the figures              would say nothing about a disk; give a directory on a disk with --dir",
            dir.display()
        );
    }
    Ok(())
}

/// `Some("tmpfs")` if `dir` is on a file system that lives in memory.
#[cfg(target_os = "linux")]
pub(crate) fn memory_file_system(dir: &Path) -> Option<&'static str> {
    // TMPFS_MAGIC from <linux/magic.h>.
    match rustix::fs::statfs(dir) {
        Ok(st) if st.f_type == 0x0102_1994 => Some("tmpfs"),
        _ => None,
    }
}

/// `Some("tmpfs")` if `dir` is on a file system that lives in memory (only known on Linux).
#[cfg(not(target_os = "linux"))]
pub(crate) fn memory_file_system(_dir: &Path) -> Option<&'static str> {
    None
}

/// The file whose presence makes a directory the root of a sharded log (docs/format.md,
/// section 7).
pub(crate) const SHARDS_FILE: &str = tidelog::sharded::MANIFEST_FILE;

/// The epoch journal's directory in a sharded root (docs/format.md, section 7).
pub(crate) const EPOCHS_DIR: &str = tidelog::sharded::EPOCHS_DIR;

/// Whether `dir` is the root of a sharded log: a directory holding a `SHARDS` file.
pub(crate) fn is_sharded_root(dir: &Path) -> bool {
    dir.is_dir() && dir.join(SHARDS_FILE).exists()
}

/// Opens the sharded log at `root` read-only: every shard and the epoch journal open as
/// [`open_read_only_trusting`] opens one log, in `mode`; nothing is changed (epochs a crash cut
/// short are reported, not closed) and no lock is taken.
pub(crate) fn open_sharded_read_only(
    root: &Path,
    mode: RecoveryMode,
    trust_seals: bool,
) -> anyhow::Result<ShardedLog> {
    let mut options = Options::default();
    options.read_only = true;
    options.create_if_missing = false;
    options.recovery_mode = mode;
    options.trust_seals = trust_seals;
    ShardedLog::builder(root)
        .options(options)
        .open()
        .with_context(|| {
            format!(
                "cannot open the sharded log in {} (read-only)",
                root.display()
            )
        })
}

/// Shard indexes as text: `shard 2`, `shards 0, 1, 2`.
pub(crate) fn shard_list(shards: &[usize]) -> String {
    let list: Vec<String> = shards.iter().map(usize::to_string).collect();
    format!(
        "shard{} {}",
        if shards.len() == 1 { "" } else { "s" },
        list.join(", ")
    )
}

/// Refuses the root of a sharded log where a command works on one log.
fn refuse_sharded_root(dir: &Path, writing: bool) -> anyhow::Result<()> {
    if !is_sharded_root(dir) {
        return Ok(());
    }
    let shard = dir.join("shard-0000");
    if writing {
        anyhow::bail!(
            "{} is the root of a sharded log (it holds a {SHARDS_FILE} file), not one log: this \
             command would write to it as one log; sharded logs are written through the \
             library (a shard written directly bypasses the epochs)",
            dir.display()
        );
    }
    anyhow::bail!(
        "{} is the root of a sharded log (it holds a {SHARDS_FILE} file), not one log: \
         `tidelog info`, `dump` and `verify` read it whole, and each shard directory in it (such \
         as {}) is a log of its own",
        dir.display(),
        shard.display()
    )
}

/// Opens the log in `dir` read-only: recovery runs as a dry run in `mode`, nothing is changed,
/// and no lock is taken (another process may be writing).
pub(crate) fn open_read_only(dir: &Path, mode: RecoveryMode) -> anyhow::Result<Log> {
    open_read_only_trusting(dir, mode, false)
}

/// [`open_read_only`], trusting the seals of sealed segments instead of reading their frames
/// if `trust_seals` (`Options::trust_seals`).
pub(crate) fn open_read_only_trusting(
    dir: &Path,
    mode: RecoveryMode,
    trust_seals: bool,
) -> anyhow::Result<Log> {
    refuse_sharded_root(dir, false)?;
    Log::builder(dir)
        .read_only(true)
        .create_if_missing(false)
        .recovery_mode(mode)
        .trust_seals(trust_seals)
        .open()
        .with_context(|| format!("cannot open the log in {} (read-only)", dir.display()))
}

/// The permission bits of a log directory and of the files in it (Unix; empty elsewhere).
#[derive(Debug, Default)]
pub(crate) struct Modes {
    /// The directory's own bits.
    pub(crate) dir: Option<u32>,
    /// Each file's (and subdirectory's) bits, by path.
    pub(crate) entries: Vec<(PathBuf, u32)>,
}

impl Modes {
    /// Reads the modes of `dir` and everything in it (one level, and `quarantine/`).
    pub(crate) fn of(dir: &Path) -> Modes {
        use tidelog::io::Storage as _;
        let storage = tidelog::io::StdStorage::new();
        let mode = |p: &Path| storage.mode(p).ok().flatten().map(|m| m & 0o7777);
        let mut entries = Vec::new();
        let mut dirs = vec![dir.to_path_buf()];
        while let Some(d) = dirs.pop() {
            let mut names = storage.list(&d).unwrap_or_default();
            names.sort();
            for name in names {
                let path = d.join(name);
                if path.is_dir() {
                    dirs.push(path.clone());
                }
                if let Some(m) = mode(&path) {
                    entries.push((path, m));
                }
            }
        }
        Modes {
            dir: mode(dir),
            entries,
        }
    }

    /// The paths other users can read (or, for directories, list), the directory first.
    pub(crate) fn readable_by_others(&self, dir: &Path) -> Vec<(PathBuf, u32)> {
        self.dir
            .map(|m| (dir.to_path_buf(), m))
            .into_iter()
            .chain(self.entries.iter().cloned())
            .filter(|(_, m)| m & 0o004 != 0)
            .collect()
    }

    /// A summary such as `directory 0700, files 0600` (each distinct file mode with a count
    /// when they differ).
    pub(crate) fn summary(&self) -> String {
        let mut counts: std::collections::BTreeMap<u32, usize> = Default::default();
        for (_, m) in &self.entries {
            *counts.entry(*m).or_default() += 1;
        }
        let files = match counts.len() {
            0 => "no files".to_owned(),
            1 => counts
                .keys()
                .map(|m| format!("files {m:04o}"))
                .collect::<String>(),
            _ => format!(
                "files {}",
                counts
                    .iter()
                    .map(|(m, n)| format!("{m:04o} ({n})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        match self.dir {
            Some(d) => format!("directory {d:04o}, {files}"),
            None => "unknown on this system".to_owned(),
        }
    }
}

/// Whether another process has the log in `dir` open for writing (it holds the directory's
/// lock). Looks without creating anything: a directory without a lock file has no writer.
pub(crate) fn writer_holds(dir: &Path) -> bool {
    use tidelog::io::Storage as _;
    if !dir.join("LOCK").exists() {
        return false;
    }
    matches!(
        tidelog::io::StdStorage::new().lock_dir(dir),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
    )
}

/// Whether every damaged place in `r` can be the end of what a live writer is still writing:
/// each in the last segment, cut as a torn tail, with no record lost before it.
pub(crate) fn only_a_provisional_tail(r: &tidelog::RecoveryReport, log: &Log) -> bool {
    let last = log.segments().pop().map(|s| s.path);
    !r.damage.is_empty()
        && r.lost.is_empty()
        && r.damage.iter().all(|d| {
            Some(&d.path) == last.as_ref() && matches!(d.action, tidelog::DamageAction::Cut { .. })
        })
}

/// Whether an error says the log is damaged (as opposed to missing, locked or unreadable).
pub(crate) fn is_damage(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        matches!(
            e.downcast_ref::<tidelog::Error>(),
            Some(
                tidelog::Error::Corrupt { .. }
                    | tidelog::Error::MissingRecords { .. }
                    | tidelog::Error::MissingShard { .. }
                    | tidelog::Error::ForeignShard { .. }
            )
        )
    })
}

/// Opens the log in `dir` for writing, in the default recovery mode, creating it only if
/// `create` is set. If opening recovered anything, says so on standard error.
pub(crate) fn open_for_writing(dir: &Path, create: bool) -> anyhow::Result<Log> {
    refuse_sharded_root(dir, true)?;
    let log = Log::builder(dir)
        .create_if_missing(create)
        .open()
        .with_context(|| format!("cannot open the log in {}", dir.display()))?;
    let r = log.recovery_report();
    if r.created {
        note(format_args!("created a new log in {}", dir.display()));
    }
    let changes = report::changes(r);
    if !changes.is_empty() {
        note("opening the log ran recovery, which changed the directory:");
        for change in changes {
            note(format_args!("  {change}"));
        }
    }
    Ok(log)
}

/// The place in its batch of a record with these batch flags.
pub(crate) fn batch_flags(start: bool, end: bool) -> &'static str {
    match (start, end) {
        (true, true) => "single",
        (true, false) => "start",
        (false, false) => "middle",
        (false, true) => "end",
    }
}

/// How payloads are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum PayloadFormat {
    /// UTF-8 text, with control characters and invalid bytes escaped (\n, \x00).
    #[default]
    Text,
    /// Lowercase hexadecimal.
    Hex,
    /// Standard base64 (with padding).
    Base64,
}

impl PayloadFormat {
    pub(crate) fn name(self) -> &'static str {
        match self {
            PayloadFormat::Text => "text",
            PayloadFormat::Hex => "hex",
            PayloadFormat::Base64 => "base64",
        }
    }

    pub(crate) fn encode(self, data: &[u8]) -> String {
        match self {
            PayloadFormat::Text => escape_text(data),
            PayloadFormat::Hex => {
                let mut s = String::with_capacity(data.len() * 2);
                for b in data {
                    s.push(char::from(HEX[usize::from(b >> 4)]));
                    s.push(char::from(HEX[usize::from(b & 0xf)]));
                }
                s
            }
            PayloadFormat::Base64 => base64::engine::general_purpose::STANDARD.encode(data),
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A payload as one line of text: valid UTF-8 is kept except control characters and
/// backslashes, which are escaped; anything else is escaped byte by byte.
fn escape_text(data: &[u8]) -> String {
    match std::str::from_utf8(data) {
        Ok(text) => {
            let mut s = String::with_capacity(text.len());
            for c in text.chars() {
                if c.is_control() || c == '\\' {
                    s.extend(c.escape_default());
                } else {
                    s.push(c);
                }
            }
            s
        }
        Err(_) => data.escape_ascii().to_string(),
    }
}

/// Prints records as `dump` and `tail` do: aligned text lines, or JSON lines.
pub(crate) struct RecordPrinter {
    pub(crate) format: PayloadFormat,
    pub(crate) json: bool,
    /// Width of the LSN column.
    pub(crate) lsn_width: usize,
    /// Widths of the epoch and shard columns, for the records of a sharded log.
    pub(crate) sharded_widths: (usize, usize),
}

impl RecordPrinter {
    pub(crate) fn new(format: PayloadFormat, json: bool, last_lsn: Lsn) -> Self {
        Self {
            format,
            json,
            lsn_width: last_lsn.get().to_string().len(),
            sharded_widths: (1, 1),
        }
    }

    /// For the records of a sharded log: epoch and shard columns wide enough for `last_epoch`
    /// and `last_shard`.
    pub(crate) fn sharded(mut self, last_epoch: u64, last_shard: usize) -> Self {
        self.sharded_widths = (last_epoch.to_string().len(), last_shard.to_string().len());
        self
    }

    pub(crate) fn print(&self, out: &mut Out, record: &Record) -> anyhow::Result<()> {
        self.print_in(out, None, record)
    }

    /// Prints `record`, after its epoch and shard if it is one of a sharded log's (`place`).
    pub(crate) fn print_in(
        &self,
        out: &mut Out,
        place: Option<(u64, usize)>,
        record: &Record,
    ) -> anyhow::Result<()> {
        self.print_shown(out, place, &Shown::from(record))
    }

    /// Prints a record read from an archive, as a log's record is printed.
    pub(crate) fn print_archived(
        &self,
        out: &mut Out,
        record: &tidelog_archive::ArchivedRecord,
    ) -> anyhow::Result<()> {
        self.print_shown(out, None, &Shown::from(record))
    }

    fn print_shown(
        &self,
        out: &mut Out,
        place: Option<(u64, usize)>,
        record: &Shown<'_>,
    ) -> anyhow::Result<()> {
        let payload = self.format.encode(record.data);
        let batch = batch_flags(record.batch_start, record.batch_end);
        if self.json {
            let mut value = json!({
                "lsn": record.lsn.get(),
                "batch": batch,
                "time_ms": record.timestamp_ms,
                "size": record.data.len(),
            });
            if let Some((epoch, shard)) = place {
                value["epoch"] = json!(epoch);
                value["shard"] = json!(shard);
            }
            value[self.format.name()] = serde_json::Value::String(payload);
            out.json(&value)
        } else {
            let prefix = place.map_or_else(String::new, |(epoch, shard)| {
                let (we, ws) = self.sharded_widths;
                format!("{epoch:>we$}  {shard:>ws$}  ")
            });
            out.line(format_args!(
                "{prefix}{:>w$}  {batch:<6}  {:<24}  {:>7}  {payload}",
                record.lsn.get(),
                record.timestamp_ms.map_or_else(|| "-".to_owned(), utc_time),
                record.data.len(),
                w = self.lsn_width,
            ))
        }
    }
}

/// What a record's line shows, whether the record was read from a log or from an archive.
struct Shown<'a> {
    lsn: Lsn,
    batch_start: bool,
    batch_end: bool,
    timestamp_ms: Option<u64>,
    data: &'a [u8],
}

impl<'a> From<&'a Record> for Shown<'a> {
    fn from(record: &'a Record) -> Self {
        Shown {
            lsn: record.lsn(),
            batch_start: record.is_batch_start(),
            batch_end: record.is_batch_end(),
            timestamp_ms: record.timestamp_ms(),
            data: record.data(),
        }
    }
}

impl<'a> From<&'a tidelog_archive::ArchivedRecord> for Shown<'a> {
    fn from(record: &'a tidelog_archive::ArchivedRecord) -> Self {
        Shown {
            lsn: record.lsn(),
            batch_start: record.is_batch_start(),
            batch_end: record.is_batch_end(),
            timestamp_ms: record.timestamp_ms(),
            data: record.data(),
        }
    }
}

/// The date (year, month, day) `days` days after 1970-01-01 in the proleptic Gregorian
/// calendar (eras of 400 years).
pub(crate) fn civil_date(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// A time in milliseconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
pub(crate) fn utc_time(ms: u64) -> String {
    let (secs, millis) = (ms / 1000, ms % 1000);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_date(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_in_utc() {
        assert_eq!(utc_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc_time(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(utc_time(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(utc_time(4_107_542_399_999), "2100-02-28T23:59:59.999Z");
    }

    #[test]
    fn times_parse_as_rfc_3339_in_utc_or_milliseconds() {
        let ms = |s: &str| {
            parse_time(s).map(|t| {
                t.duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis())
            })
        };
        assert_eq!(ms("2026-12-02T09:00:00Z"), Ok(1_796_202_000_000));
        assert_eq!(ms(" 1796202000000 "), Ok(1_796_202_000_000));
        assert_eq!(ms("2026-12-02 09:00:00.250"), Ok(1_796_202_000_250));
        // What `archive-info` prints reads back as the same time.
        assert_eq!(ms(&utc_time(1_700_000_000_123)), Ok(1_700_000_000_123));
        for bad in [
            "yesterday",
            "",
            "2026-13-02T09:00:00Z",
            "99999999999999999999999",
        ] {
            assert!(parse_time(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn payloads_print_on_one_line() {
        assert_eq!(PayloadFormat::Text.encode(b"set x = 1"), "set x = 1");
        assert_eq!(PayloadFormat::Text.encode(b"a\nb\\"), "a\\nb\\\\");
        assert_eq!(PayloadFormat::Text.encode("é".as_bytes()), "é");
        assert_eq!(PayloadFormat::Text.encode(&[0xff, b'a']), "\\xffa");
        assert_eq!(PayloadFormat::Hex.encode(&[0x00, 0xab, 0x10]), "00ab10");
        assert_eq!(PayloadFormat::Base64.encode(b"hello"), "aGVsbG8=");
    }

    #[test]
    fn seconds_parse() {
        assert_eq!(
            parse_seconds("0.5"),
            Ok(std::time::Duration::from_millis(500))
        );
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("nan").is_err());
        assert!(parse_seconds("-1").is_err());
    }

    #[test]
    fn ages_parse_with_their_units() {
        let secs = |s: &str| parse_age(s).map(|d| d.as_secs());
        assert_eq!(secs("90s"), Ok(90));
        assert_eq!(secs("15m"), Ok(900));
        assert_eq!(secs(" 12h "), Ok(43_200));
        assert_eq!(secs("7d"), Ok(604_800));
        assert_eq!(secs("1h 30m"), Ok(5_400));
        for bad in ["", "7", "yesterday", "-1d"] {
            assert!(parse_age(bad).is_err(), "{bad:?}");
        }
        assert_eq!(show_age(std::time::Duration::from_secs(600)), "10m");
    }

    #[test]
    fn lsns_parse() {
        assert_eq!(parse_lsn("42"), Ok(Lsn::new(42)));
        assert!(parse_lsn("x").is_err());
        assert!(parse_lsn("-1").is_err());
    }
}
