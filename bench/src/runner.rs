//! The parent side: runs each case in a child process and collects its figures.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::contenders::Kind;
use crate::stats::Metrics;

/// The `LD_PRELOAD` shim that delays every fsync of a child (`--fsync-delay-us`): the library and
/// the delay.
#[derive(Debug, Clone)]
pub struct FsyncDelay {
    pub library: PathBuf,
    pub micros: u64,
}

static FSYNC_DELAY: OnceLock<FsyncDelay> = OnceLock::new();

/// Makes every child from now on run with its fsyncs delayed by `micros`. The shim
/// (`libfsync_delay.so`, the workspace's other member) must sit beside the benchmark's binary.
pub fn delay_fsyncs(micros: u64) -> Result<FsyncDelay, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let library = exe.with_file_name("libfsync_delay.so");
    if !library.is_file() {
        return Err(format!(
            "{} is missing: build it with `cargo build --release --workspace`",
            library.display()
        ));
    }
    let delay = FsyncDelay { library, micros };
    let _ = FSYNC_DELAY.set(delay.clone());
    Ok(delay)
}

/// `fdatasync` as the raw limits call it: with fsyncs delayed, followed by the same delay the
/// shim adds to the contenders' (the parent process runs without the shim).
pub fn sync_data(file: &std::fs::File) -> std::io::Result<()> {
    file.sync_data()?;
    if let Some(delay) = FSYNC_DELAY.get() {
        std::thread::sleep(Duration::from_micros(delay.micros));
    }
    Ok(())
}

/// `fsync` as the raw limits call it, delayed alike (see [`sync_data`]).
pub fn sync_all(file: &std::fs::File) -> std::io::Result<()> {
    file.sync_all()?;
    if let Some(delay) = FSYNC_DELAY.get() {
        std::thread::sleep(Duration::from_micros(delay.micros));
    }
    Ok(())
}

/// Runs `--child CASE CONTENDER DIR params...` and returns its figures or its error message.
/// With fsyncs delayed, the figures include `shim_fsyncs`, the calls the shim delayed; a case
/// in which it delayed none is an error (the shim did not take effect).
pub fn run_child(
    case: &str,
    kind: Kind,
    dir: &Path,
    params: &[String],
    timeout: Duration,
) -> Result<Metrics, String> {
    quiesce();
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("--child")
        .arg(case)
        .arg(kind.name())
        .arg(dir)
        .args(params)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        // walrus-rust: its data directory, and no debug printing.
        .env("WALRUS_DATA_DIR", dir)
        .env("WALRUS_QUIET", "1")
        .env_remove("WALRUS_INSTANCE_KEY");
    let report = FSYNC_DELAY.get().map(|delay| {
        let report = dir.with_extension(format!("fsync-delay-{}", std::process::id()));
        let _ = std::fs::remove_file(&report);
        cmd.env("LD_PRELOAD", &delay.library)
            .env("FSYNC_DELAY_US", delay.micros.to_string())
            .env("FSYNC_DELAY_REPORT", &report);
        report
    });
    let mut child = cmd.spawn().map_err(|e| format!("spawn: {e}"))?;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("wait: {e}")),
        }
    };
    let out = reader.join().unwrap_or_default();
    let Some(status) = status else {
        return Err(format!("no result within {} s (killed)", timeout.as_secs()));
    };
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("RESULT ") {
            let mut figures: Metrics = rest
                .split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
                .collect();
            if let Some(report) = report {
                let calls = shim_calls(&report);
                let _ = std::fs::remove_file(&report);
                if calls == 0 {
                    return Err(
                        "the fsync-delay shim delayed no call: it did not take effect".into(),
                    );
                }
                figures.insert("shim_fsyncs".into(), calls as f64);
            }
            return Ok(figures);
        }
        if let Some(msg) = line.strip_prefix("ERROR ") {
            return Err(msg.to_owned());
        }
    }
    Err(match status.code() {
        Some(c) => format!("exited with status {c} and no result"),
        None => format!("killed by a signal ({status})"),
    })
}

/// Writes back every dirty page of the system, so that a case does not pay for what an earlier
/// one left unsynced.
pub fn quiesce() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
}

/// The bytes of every file under `dir`: their lengths, and the space allocated to them on
/// disk (`st_blocks`; preallocated space counts).
pub fn dir_bytes(dir: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let (mut len, mut allocated) = (0, 0);
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            let (l, a) = dir_bytes(&entry.path())?;
            len += l;
            allocated += a;
        } else {
            len += meta.len();
            allocated += meta.blocks() * 512;
        }
    }
    Ok((len, allocated))
}

/// The calls the shim delayed, summed over the report's lines (one per process).
fn shim_calls(report: &Path) -> u64 {
    std::fs::read_to_string(report)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().find_map(|f| f.strip_prefix("calls=")))
        .filter_map(|n| n.parse::<u64>().ok())
        .sum()
}
