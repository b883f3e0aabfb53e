//! The parent side: runs each case in a child process and collects its figures.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::contenders::Kind;
use crate::stats::Metrics;

/// Runs `--child CASE CONTENDER DIR params...` and returns its figures or its error message.
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
            return Ok(rest
                .split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
                .collect());
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
