//! Everything the tool prints: standard output (text or JSON lines), notes on standard error,
//! colors, tables, progress bars, and how an error ends the process.

use std::fmt::{self, Display};
use std::io::{self, BufWriter, IsTerminal, Stdout, Write};
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Exit code of a command that found a problem (damage, or a recovery that would change the
/// log).
pub(crate) const EXIT_PROBLEM: u8 = 1;
/// Exit code of a usage or runtime error.
pub(crate) const EXIT_ERROR: u8 = 2;

/// How the tool should print, decided once from the flags and the environment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx {
    /// Print JSON lines instead of text.
    pub(crate) json: bool,
    /// Standard output is a terminal and `NO_COLOR` is not set.
    pub(crate) color: bool,
    /// Standard error is a terminal: progress bars are drawn.
    pub(crate) progress: bool,
}

impl Ctx {
    pub(crate) fn from_env(json: bool) -> Ctx {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Ctx {
            json,
            color: !json && !no_color && io::stdout().is_terminal(),
            progress: io::stderr().is_terminal(),
        }
    }

    /// Standard output, buffered.
    pub(crate) fn out(&self) -> Out {
        Out {
            w: BufWriter::new(io::stdout()),
            color: self.color,
        }
    }

    /// A progress bar of `len` steps on standard error, hidden unless it is a terminal.
    pub(crate) fn progress_bar(&self, len: u64, what: &str) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{prefix:>10} [{bar:30}] {human_pos}/{human_len} {per_sec} {msg} eta {eta}",
        )
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(what.to_owned());
        bar
    }

    /// A progress bar of bytes on standard error, its length set later (`set_length`), hidden
    /// unless standard error is a terminal and the output is not JSON.
    pub(crate) fn bytes_bar(&self, what: &str) -> ProgressBar {
        if !self.progress || self.json {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{prefix:>10} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {msg} eta {eta}",
        )
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(what.to_owned());
        bar
    }

    /// A progress bar over a fixed time, in tenths of a second.
    pub(crate) fn timed_bar(&self, duration: Duration, what: &str) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let tenths = u64::try_from(duration.as_millis() / 100).unwrap_or(u64::MAX);
        let bar = ProgressBar::with_draw_target(Some(tenths.max(1)), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{prefix:>10} [{bar:30}] {elapsed} {msg}")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(what.to_owned());
        bar
    }
}

/// Writes a note to standard error (never fails: a closed standard error is ignored).
pub(crate) fn note(msg: impl Display) {
    let _ = writeln!(io::stderr(), "tidelog: {msg}");
}

/// Standard output closed under us (`tidelog dump DIR | head`): the command ends quietly.
#[derive(Debug)]
pub(crate) struct BrokenPipe;

impl Display for BrokenPipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("standard output was closed")
    }
}

impl std::error::Error for BrokenPipe {}

fn stdout_error(e: io::Error) -> anyhow::Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        anyhow::Error::new(BrokenPipe)
    } else {
        anyhow::Error::new(e).context("cannot write to standard output")
    }
}

/// Text styles, used only when color is on.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Style {
    Bold,
    Green,
    Yellow,
    Red,
}

impl Style {
    fn code(self) -> &'static str {
        match self {
            Style::Bold => "1",
            Style::Green => "1;32",
            Style::Yellow => "1;33",
            Style::Red => "1;31",
        }
    }
}

/// Buffered standard output. The only way commands print data.
pub(crate) struct Out {
    w: BufWriter<Stdout>,
    color: bool,
}

impl Out {
    /// Prints one line.
    pub(crate) fn line(&mut self, text: impl Display) -> anyhow::Result<()> {
        writeln!(self.w, "{text}").map_err(stdout_error)
    }

    /// Prints every line of a multi-line text with an indent.
    pub(crate) fn indented(&mut self, indent: &str, text: &str) -> anyhow::Result<()> {
        for line in text.lines() {
            self.line(format_args!("{indent}{line}"))?;
        }
        Ok(())
    }

    /// Prints raw bytes.
    pub(crate) fn bytes(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.w.write_all(bytes).map_err(stdout_error)
    }

    /// Prints one JSON value on one line.
    pub(crate) fn json(&mut self, value: &serde_json::Value) -> anyhow::Result<()> {
        serde_json::to_writer(&mut self.w, value).map_err(|e| match e.io_error_kind() {
            Some(io::ErrorKind::BrokenPipe) => anyhow::Error::new(BrokenPipe),
            _ => anyhow::Error::new(e).context("cannot write to standard output"),
        })?;
        self.w.write_all(b"\n").map_err(stdout_error)
    }

    /// Sends what was printed so far.
    pub(crate) fn flush(&mut self) -> anyhow::Result<()> {
        self.w.flush().map_err(stdout_error)
    }

    /// `text` in `style` if color is on.
    pub(crate) fn paint(&self, style: Style, text: &str) -> String {
        if self.color {
            format!("\x1b[{}m{text}\x1b[0m", style.code())
        } else {
            text.to_owned()
        }
    }
}

/// Ends the process after an error: quietly with 0 if standard output was closed, else with the
/// error's chain of causes on standard error and exit code 2.
pub(crate) fn exit_with_error(err: &anyhow::Error) -> ExitCode {
    if err.chain().any(|e| e.is::<BrokenPipe>()) {
        return ExitCode::SUCCESS;
    }
    let mut stderr = io::stderr().lock();
    let _ = writeln!(stderr, "tidelog: error: {}", chain(err));
    if let Some(hint) = hint(err) {
        for line in hint.lines() {
            let _ = writeln!(stderr, "tidelog: hint: {line}");
        }
    }
    ExitCode::from(EXIT_ERROR)
}

/// An error and its causes on one line, `what failed: why: …`. A cause whose text the line
/// already ends with is left out: a library error that prints its source (as `Error::Io` does,
/// to read well on its own) would otherwise show the operating system's message twice.
pub(crate) fn chain(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Advice for errors people can do something about (on several lines for several ways out).
fn hint(err: &anyhow::Error) -> Option<String> {
    if let Some(stuck) = err
        .chain()
        .find_map(|e| e.downcast_ref::<crate::commands::archive::Stuck>())
    {
        let ways = stuck.ways_out();
        if !ways.is_empty() {
            return Some(ways.join("\n"));
        }
    }
    if let Some(archive_error) = err
        .chain()
        .find_map(|e| e.downcast_ref::<tidelog_archive::Error>())
        && let Some(hint) = archive_hint(archive_error)
    {
        return Some(hint.to_owned());
    }
    let log_error = err
        .chain()
        .find_map(|e| e.downcast_ref::<tidelog::Error>())?;
    let hint = match log_error {
        tidelog::Error::Corrupt { path, .. }
            if path.file_name() == Some(std::ffi::OsStr::new("CHECKPOINT")) =>
        {
            let dir = path.parent().unwrap_or(path).display();
            return Some(format!(
                "the checkpoint file is damaged, which stops recovery in every mode: `tidelog \
                 recover {dir} --rebuild-checkpoint` shows how it would be rebuilt from the \
                 segments (a dry run; --apply does it)"
            ));
        }
        tidelog::Error::Corrupt { .. } | tidelog::Error::MissingRecords { .. } => {
            "the log is damaged: `tidelog verify DIR` lists the damage, and `tidelog recover DIR \
             --mode point-in-time` (or skip-corrupt) shows what a tolerant recovery would do"
        }
        tidelog::Error::Locked { .. } => {
            "another process has the log open for writing; read-only commands (info, dump, \
             verify, tail) still work"
        }
        tidelog::Error::NotFound { .. } => "check the directory: it holds no tidelog log",
        _ => return None,
    };
    Some(hint.to_owned())
}

/// Advice for the archive's errors people can do something about.
fn archive_hint(err: &tidelog_archive::Error) -> Option<&'static str> {
    use tidelog_archive::Error as E;
    Some(match err {
        E::InvalidUrl { .. } => {
            "a store URL names its kind of store: s3://bucket/prefix (credentials, region and \
             endpoint from AWS_* variables), or file:///absolute/path for a local directory"
        }
        E::NoArchive { .. } => {
            "check the URL: nothing was archived there yet (`tidelog archive DIR URL --once` \
             starts an archive)"
        }
        E::TargetExists { .. } => "restore into a new or empty directory",
        E::ForeignArchive { .. } => {
            "the store's prefix holds another log's archive: give each log a prefix of its own"
        }
        E::Store { .. } => {
            "the store failed or could not be reached; for S3, check AWS_ENDPOINT, AWS_REGION \
             and the credentials in the environment"
        }
        E::Gap { .. } => {
            "the archive does not hold those records (`tidelog prune` removed them, or they were \
             never archived): `tidelog archive-info URL` shows the LSNs it holds"
        }
        E::Unfenceable { .. } => {
            "the store cannot do conditional puts, which keep a second writer out: give \
             --no-fencing, and let only one writer at a time write to the archive"
        }
        E::Diverged { .. } | E::Fenced { .. } => {
            "restore the archive into a new directory and use that log (`tidelog restore URL \
             NEW_DIR`), or archive the log to a new location (another prefix)"
        }
        E::ArchiveAhead { .. } => {
            "the log is an older copy of the archive's: `tidelog archive DIR URL --fast-forward` \
             pulls the missing records into it first"
        }
        _ => return None,
    })
}

/// A text table: a header row and rows of cells, columns aligned.
pub(crate) struct Table {
    header: Vec<String>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Columns named in `header`; a name starting with `>` is right-aligned (the `>` is not
    /// shown).
    pub(crate) fn new(header: &[&str]) -> Table {
        Table {
            header: header
                .iter()
                .map(|h| h.trim_start_matches('>').to_owned())
                .collect(),
            right: header.iter().map(|h| h.starts_with('>')).collect(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as lines of text, the header first.
    pub(crate) fn lines(&self) -> Vec<String> {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(cell.chars().count());
                }
            }
        }
        std::iter::once(&self.header)
            .chain(&self.rows)
            .map(|row| {
                let cells: Vec<String> = row
                    .iter()
                    .enumerate()
                    .map(|(i, cell)| {
                        let w = widths.get(i).copied().unwrap_or(0);
                        if self.right.get(i).copied().unwrap_or(false) {
                            format!("{cell:>w$}")
                        } else {
                            format!("{cell:<w$}")
                        }
                    })
                    .collect();
                cells.join("  ").trim_end().to_owned()
            })
            .collect()
    }
}

/// A duration in the unit that suits it: `850 ns`, `12.3 µs`, `4.56 ms`, `1.20 s`.
pub(crate) fn human_duration(d: Duration) -> String {
    let ns = d.as_secs_f64() * 1e9;
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// The `p`-th percentile (0.0..=1.0) of sorted durations (zero for none).
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let last = sorted.len() - 1;
    let rank = (p * last as f64).round();
    let i = if rank <= 0.0 {
        0
    } else {
        // The rank is at most `last`, which fits a usize.
        (rank as usize).min(last)
    };
    sorted.get(i).copied().unwrap_or_default()
}

/// A byte count in binary units: `512 B`, `4.0 KiB`, `64.0 MiB`.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for next in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = next;
    }
    format!("{v:.1} {unit}")
}

/// A rate rounded for display: `812345` → `812,345`.
pub(crate) fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(64 << 20), "64.0 MiB");
        assert_eq!(human_duration(Duration::from_micros(1500)), "1.50 ms");
    }

    #[test]
    fn percentiles_pick_the_right_rank() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&d, 0.5), Duration::from_millis(51));
        assert_eq!(percentile(&d, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&d, 1.0), Duration::from_millis(100));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn an_error_chain_names_each_cause_once() {
        let os = io::Error::from_raw_os_error(20);
        let text = os.to_string();
        let err = anyhow::Error::new(tidelog::Error::Io {
            op: "list",
            path: "/etc/passwd".into(),
            source: os,
        })
        .context("cannot open the log in /etc/passwd (read-only)");
        assert_eq!(
            chain(&err),
            format!(
                "cannot open the log in /etc/passwd (read-only): cannot list /etc/passwd: {text}"
            )
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(chain(&plain), "outer: inner");
    }

    #[test]
    fn tables_align_columns() {
        let mut t = Table::new(&["name", ">n"]);
        t.row(vec!["a".into(), "1".into()]);
        t.row(vec!["bbb".into(), "100".into()]);
        assert_eq!(t.lines(), vec!["name    n", "a       1", "bbb   100"]);
    }
}
