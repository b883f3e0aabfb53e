//! The `tidelog` binary, run for real on log directories made with the library: healthy logs
//! and logs damaged by hand (a torn tail, a flipped byte in a sealed segment, a missing middle
//! segment). Checks standard output, exit codes, and that read-only commands change no byte.

// The helpers below panic on any failure, as the tests themselves do: that is the report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tidelog::sharded::ShardedLog;
use tidelog::{Durability, Log, Lsn, SyncPolicy};

const BIN: &str = env!("CARGO_BIN_EXE_tidelog");
/// Small segments, so a few hundred records make several.
const SEGMENT_BYTES: u64 = 4096;
/// Records in the logs the tests build.
const RECORDS: u64 = 300;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A temporary directory under the target directory (on the disk, like the logs people make).
fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("tidelog-cli-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
}

/// What one run of the binary did.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Asserts the exit code, showing the output if it differs.
    #[track_caller]
    fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Parses standard output as JSON lines.
    #[track_caller]
    fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}\n{}", self.stdout))
            })
            .collect()
    }

    /// The only JSON line of standard output.
    #[track_caller]
    fn json(&self) -> serde_json::Value {
        let mut lines = self.json_lines();
        assert_eq!(lines.len(), 1, "{}", self.stdout);
        lines.remove(0)
    }
}

fn tidelog_with_stdin(args: &[&str], stdin: &[u8]) -> Run {
    tidelog_with_env(args, stdin, &[])
}

/// As [`tidelog_with_stdin`], with variables added to the environment.
fn tidelog_with_env(args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Run {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("NO_COLOR")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    // A command that refuses its arguments exits without reading its input.
    match input.write_all(stdin) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.unwrap(),
    }
    drop(input);
    let output = child.wait_with_output().unwrap();
    let run = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    };
    assert!(
        !run.stderr.contains("panicked"),
        "the binary panicked: {}",
        run.stderr
    );
    run
}

fn tidelog(args: &[&str]) -> Run {
    tidelog_with_stdin(args, b"")
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The payload the tests append at `lsn`: it names its LSN, and its length varies.
fn payload(lsn: u64) -> Vec<u8> {
    let mut p = format!("record {lsn:06} ").into_bytes();
    p.resize(p.len() + (lsn % 13) as usize, b'#');
    p
}

/// A log of `n` records (`payload(lsn)`), each synced before the next is written, so damage
/// before intact records can never pass for an unsynced tail.
fn make_log(dir: &Path, n: u64) -> PathBuf {
    let log = Log::builder(dir)
        .segment_bytes(SEGMENT_BYTES)
        .sync_policy(SyncPolicy::EveryCommit)
        .open()
        .unwrap();
    for lsn in 1..=n {
        assert_eq!(
            log.append(&payload(lsn), Durability::Synced).unwrap().get(),
            lsn
        );
    }
    log.close().unwrap();
    dir.to_path_buf()
}

/// The segment files of a log, in LSN order.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    segs
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files.insert(path.clone(), Vec::new());
                todo.push(path);
            } else {
                files.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// Runs `f` and asserts that no byte under `dir` changed.
#[track_caller]
fn unchanged<T>(dir: &Path, f: impl FnOnce() -> T) -> T {
    let before = snapshot(dir);
    let result = f();
    let after = snapshot(dir);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "the set of files changed"
    );
    for (path, bytes) in &before {
        assert!(after[path] == *bytes, "{} changed", path.display());
    }
    result
}

fn write_at(path: &Path, bytes: &[u8], offset: u64) {
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(bytes, offset).unwrap();
    file.sync_all().unwrap();
}

/// Leaves a torn write right after the last record of the log (where a crash leaves one).
fn tear_tail(dir: &Path) {
    let (path, end) = {
        let log = Log::builder(dir).read_only(true).open().unwrap();
        let last = log.segments().pop().unwrap();
        (last.path, last.bytes)
    };
    write_at(&path, &[0x5a; 13], end);
}

/// Flips one byte of the payload of `lsn` in place; returns the damaged segment.
fn flip_payload(dir: &Path, lsn: u64) -> PathBuf {
    let needle = payload(lsn);
    for path in segments(dir) {
        let bytes = std::fs::read(&path).unwrap();
        if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) {
            write_at(&path, &[bytes[at + 2] ^ 0x20], (at + 2) as u64);
            return path;
        }
    }
    panic!("payload of LSN {lsn} not found");
}

/// A healthy log, with damage of each kind in a sealed segment or at the tail.
fn torn_log() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempdir();
    let dir = make_log(&tmp.path().join("log"), RECORDS);
    tear_tail(&dir);
    (tmp, dir)
}

fn flipped_log() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempdir();
    let dir = make_log(&tmp.path().join("log"), RECORDS);
    let segs = segments(&dir);
    assert!(segs.len() >= 4, "{} segments", segs.len());
    let damaged = flip_payload(&dir, RECORDS / 3);
    assert_ne!(
        &damaged,
        segs.last().unwrap(),
        "the damage is in a sealed segment"
    );
    (tmp, dir)
}

fn missing_segment_log() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempdir();
    let dir = make_log(&tmp.path().join("log"), RECORDS);
    let segs = segments(&dir);
    assert!(segs.len() >= 4, "{} segments", segs.len());
    std::fs::remove_file(&segs[1]).unwrap();
    (tmp, dir)
}

// ---------------------------------------------------------------------------------------------
// info
// ---------------------------------------------------------------------------------------------

#[test]
fn info_shows_segments_and_watermarks_and_changes_nothing() {
    let tmp = tempdir();
    let dir = make_log(&tmp.path().join("log"), RECORDS);
    let segs = segments(&dir);
    let run = unchanged(&dir, || tidelog(&["info", s(&dir)])).expect(0);
    for line in [
        "last LSN     300",
        "checkpoint   1",
        "format       version 2",
    ] {
        assert!(run.stdout.contains(line), "{line:?} in\n{}", run.stdout);
    }
    assert!(run.stdout.contains("log id"), "{}", run.stdout);
    assert!(run.stdout.contains("recovery: clean"), "{}", run.stdout);
    for seg in &segs {
        let name = seg.file_name().unwrap().to_str().unwrap();
        assert!(run.stdout.contains(name), "{name} in\n{}", run.stdout);
    }
    assert_eq!(run.stdout.matches(" sealed").count(), segs.len() - 1);
    assert_eq!(run.stdout.matches(" active").count(), 1);
    assert!(!run.stdout.contains('\x1b'), "no color into a pipe");

    let info = unchanged(&dir, || tidelog(&["info", "--json", s(&dir)]))
        .expect(0)
        .json();
    assert_eq!(info["last_lsn"], 300);
    assert_eq!(info["durable_lsn"], 300);
    assert_eq!(info["checkpoint_lsn"], 1);
    assert_eq!(info["records"], 300);
    assert_eq!(info["format_version"], tidelog::FORMAT_VERSION);
    assert_eq!(info["log_id"].as_str().unwrap().len(), 32);
    let json_segs = info["segments"].as_array().unwrap();
    assert_eq!(json_segs.len(), segs.len());
    assert_eq!(json_segs[0]["first_lsn"], 1);
    assert_eq!(json_segs.last().unwrap()["last_lsn"], 300);
    assert_eq!(json_segs.last().unwrap()["state"], "active");
}

#[test]
fn info_trusting_seals_reads_the_same_log_from_its_seals() {
    let tmp = tempdir();
    let dir = make_log(&tmp.path().join("log"), RECORDS);
    let segs = segments(&dir);
    assert!(segs.len() > 2);
    let full = tidelog(&["info", "--json", s(&dir)]).expect(0).json();
    let trusting = unchanged(&dir, || {
        tidelog(&["info", "--json", "--trust-seals", s(&dir)])
    })
    .expect(0)
    .json();
    for key in [
        "last_lsn",
        "durable_lsn",
        "checkpoint_lsn",
        "records",
        "segments",
    ] {
        assert_eq!(trusting[key], full[key], "{key}");
    }
    assert_eq!(full["recovery"]["segments_trusted"], 0);
    assert_eq!(
        trusting["recovery"]["segments_trusted"],
        segs.len() as u64 - 1
    );
    // The damage of a sealed segment is not looked for: `verify` finds it.
    let (_tmp, flipped) = flipped_log();
    let info = tidelog(&["info", "--json", "--trust-seals", s(&flipped)])
        .expect(0)
        .json();
    assert!(info["damaged"].is_null(), "{info}");
    tidelog(&["verify", s(&flipped)]).expect(1);
}

#[test]
fn info_on_a_damaged_log_warns_and_changes_nothing() {
    let (_tmp, dir) = flipped_log();
    let run = unchanged(&dir, || tidelog(&["info", s(&dir)])).expect(0);
    assert!(run.stdout.contains("damaged:"), "{}", run.stdout);
    assert!(run.stdout.contains("checksum"), "{}", run.stdout);
}

// ---------------------------------------------------------------------------------------------
// dump
// ---------------------------------------------------------------------------------------------

#[test]
fn dump_prints_every_record_and_changes_nothing() {
    let tmp = tempdir();
    let dir = make_log(&tmp.path().join("log"), RECORDS);
    let run = unchanged(&dir, || tidelog(&["dump", s(&dir)])).expect(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), RECORDS as usize);
    for (i, line) in lines.iter().enumerate() {
        let lsn = i as u64 + 1;
        let p = String::from_utf8(payload(lsn)).unwrap();
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[0], lsn.to_string(), "{line}");
        assert_eq!(fields[1], "single", "{line}");
        assert!(fields[2].ends_with('Z'), "the time of the append: {line}");
        assert_eq!(fields[3], p.len().to_string(), "{line}");
        assert!(line.ends_with(&p), "{line}");
    }

    let run = tidelog(&[
        "dump",
        s(&dir),
        "--from",
        "10",
        "--to",
        "12",
        "--format",
        "hex",
    ])
    .expect(0);
    let hex: String = payload(11).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(run.stdout.lines().count(), 3, "{}", run.stdout);
    assert!(
        run.stdout.lines().nth(1).unwrap().ends_with(&hex),
        "{}",
        run.stdout
    );

    let run = tidelog(&[
        "dump",
        s(&dir),
        "--from",
        "5",
        "--to",
        "5",
        "--format",
        "base64",
    ]);
    let line = run.expect(0).stdout;
    assert!(
        line.trim_end().ends_with("cmVjb3JkIDAwMDAwNSAjIyMjIw=="),
        "{line}"
    );
}

#[test]
fn dump_shows_batch_positions() {
    let tmp = tempdir();
    let dir = tmp.path().join("log");
    let log = Log::open(&dir).unwrap();
    log.append(b"alone", Durability::Buffered).unwrap();
    log.append_batch(&["one", "two", "three"], Durability::Synced)
        .unwrap();
    log.close().unwrap();
    let run = tidelog(&["dump", s(&dir)]).expect(0);
    let positions: Vec<&str> = run
        .stdout
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(positions, ["single", "start", "middle", "end"]);
}

#[test]
fn dump_json_parses_as_json_lines() {
    let tmp = tempdir();
    let dir = make_log(&tmp.path().join("log"), 20);
    let run = tidelog(&["dump", "--json", s(&dir)]).expect(0);
    let records = run.json_lines();
    assert_eq!(records.len(), 20);
    for (i, r) in records.iter().enumerate() {
        let lsn = i as u64 + 1;
        assert_eq!(r["lsn"], lsn);
        assert_eq!(r["batch"], "single");
        assert_eq!(r["size"], payload(lsn).len());
        assert_eq!(r["text"], String::from_utf8(payload(lsn)).unwrap());
    }
}

#[test]
fn dump_into_a_closed_pipe_exits_0_without_error_text() {
    let tmp = tempdir();
    let dir = make_log(&tmp.path().join("log"), 5000);
    // Far more output than a pipe holds, so the dump is still writing when the pipe closes.
    let mut child = Command::new(BIN)
        .args(["dump", s(&dir)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.starts_with("   1  single"), "{first}");
    drop(stdout); // as `head -1` does
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    assert_eq!(stderr, "");
}

// ---------------------------------------------------------------------------------------------
// verify
// ---------------------------------------------------------------------------------------------

#[test]
fn verify_a_healthy_log_exits_0() {
    let tmp = tempdir();
    let dir = make_log(&tmp.path().join("log"), RECORDS);
    let run = unchanged(&dir, || tidelog(&["verify", s(&dir)])).expect(0);
    assert!(
        run.stdout.contains("read back 300 records"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("OK: no damage found"), "{}", run.stdout);
    let v = tidelog(&["verify", "--json", s(&dir)]).expect(0).json();
    assert_eq!(v["ok"], true);
    assert_eq!(v["records_read"], 300);
    assert_eq!(v["report"]["clean"], true);
}

#[test]
fn verify_finds_a_torn_tail() {
    let (_tmp, dir) = torn_log();
    let run = unchanged(&dir, || tidelog(&["verify", s(&dir)])).expect(1);
    assert!(run.stdout.contains("DAMAGED:"), "{}", run.stdout);
    assert!(run.stdout.contains("torn tail"), "{}", run.stdout);
    let v = tidelog(&["verify", "--json", s(&dir)]).expect(1).json();
    assert_eq!(v["ok"], false);
    assert_eq!(v["records_read"], 300);
}

#[test]
fn verify_and_recover_call_the_tail_of_a_live_log_provisional() {
    let tmp = tempdir();
    let dir = make_log(&tmp.path().join("log"), 50);
    // A writer has the log open; the end of its last segment is a write in progress.
    let writer = Log::builder(&dir)
        .segment_bytes(SEGMENT_BYTES)
        .open()
        .unwrap();
    tear_tail(&dir);
    let run = unchanged(&dir, || tidelog(&["verify", s(&dir)])).expect(0);
    assert!(run.stdout.contains("provisional"), "{}", run.stdout);
    let v = tidelog(&["verify", "--json", s(&dir)]).expect(0).json();
    assert_eq!(v["provisional_tail"], true);
    let run = unchanged(&dir, || tidelog(&["recover", s(&dir)])).expect(0);
    assert!(run.stdout.contains("provisional"), "{}", run.stdout);
    // Once the writer is gone, the same bytes are a torn tail.
    drop(writer);
    tear_tail(&dir);
    let run = tidelog(&["verify", s(&dir)]).expect(1);
    assert!(run.stdout.contains("torn tail"), "{}", run.stdout);
}

#[test]
fn verify_finds_a_flipped_byte_in_a_sealed_segment() {
    let (_tmp, dir) = flipped_log();
    let run = unchanged(&dir, || tidelog(&["verify", s(&dir)])).expect(1);
    assert!(run.stdout.contains("checksum"), "{}", run.stdout);
    assert!(run.stdout.contains("DAMAGED:"), "{}", run.stdout);
    assert!(run.stdout.contains("1 records lost"), "{}", run.stdout);
    let v = tidelog(&["verify", "--json", s(&dir)]).expect(1).json();
    assert_eq!(v["ok"], false);
    assert_eq!(v["records_read"], RECORDS - 1);
    let damage = v["report"]["damage"].as_array().unwrap();
    assert_eq!(damage.len(), 1);
    assert_eq!(damage[0]["kind"], "FrameChecksum");
    assert_eq!(
        v["report"]["lost"],
        serde_json::json!([{"first": RECORDS / 3, "last": RECORDS / 3}])
    );
}

#[test]
fn verify_finds_a_missing_middle_segment() {
    let (_tmp, dir) = missing_segment_log();
    let run = unchanged(&dir, || tidelog(&["verify", s(&dir)])).expect(1);
    assert!(run.stdout.contains("missing"), "{}", run.stdout);
    assert!(run.stdout.contains("DAMAGED:"), "{}", run.stdout);
}

// ---------------------------------------------------------------------------------------------
// recover
// ---------------------------------------------------------------------------------------------

#[test]
fn recover_dry_run_of_a_healthy_log_exits_0() {
    let tmp = tempdir();
    let dir = make_log(&tmp.path().join("log"), 50);
    let run = unchanged(&dir, || tidelog(&["recover", s(&dir)])).expect(0);
    assert!(run.stdout.contains("nothing to do"), "{}", run.stdout);
}

#[test]
fn recover_dry_run_of_a_torn_tail_says_what_it_would_cut_and_changes_nothing() {
    let (_tmp, dir) = torn_log();
    let run = unchanged(&dir, || tidelog(&["recover", s(&dir)])).expect(1);
    assert!(run.stdout.contains("dry run"), "{}", run.stdout);
    assert!(run.stdout.contains("would cut"), "{}", run.stdout);
    assert!(run.stdout.contains("--apply"), "{}", run.stdout);
    let r = unchanged(&dir, || tidelog(&["recover", "--json", s(&dir)]))
        .expect(1)
        .json();
    assert_eq!(r["apply"], false);
    assert_eq!(r["report"]["dry_run"], true);
    assert!(!r["would_change"].as_array().unwrap().is_empty());
}

#[test]
fn recover_dry_run_of_mid_log_damage_reports_the_refusal_and_every_mode_changes_nothing() {
    let (_tmp, dir) = flipped_log();
    let run = unchanged(&dir, || tidelog(&["recover", s(&dir)])).expect(1);
    assert!(run.stdout.contains("would refuse"), "{}", run.stdout);
    for mode in [
        "strict",
        "tolerate-torn-tail",
        "point-in-time",
        "skip-corrupt",
    ] {
        let run = unchanged(&dir, || tidelog(&["recover", s(&dir), "--mode", mode]));
        run.expect(1);
    }
    let run = tidelog(&["recover", s(&dir), "--mode", "point-in-time"]).expect(1);
    assert!(run.stdout.contains("would cut"), "{}", run.stdout);
}

#[test]
fn recover_apply_then_verify_is_clean() {
    let (_tmp, torn) = torn_log();
    let run = tidelog(&["recover", s(&torn), "--apply"]).expect(0);
    assert!(run.stdout.contains("cut"), "{}", run.stdout);
    tidelog(&["verify", s(&torn)]).expect(0);
    tidelog(&["recover", s(&torn)]).expect(0);

    let (_tmp, flipped) = flipped_log();
    // The default mode refuses mid-log damage: a runtime error, and nothing changes.
    let run = unchanged(&flipped, || tidelog(&["recover", s(&flipped), "--apply"])).expect(2);
    assert!(run.stderr.starts_with("tidelog: error: "), "{}", run.stderr);
    let run = tidelog(&["recover", s(&flipped), "--mode", "point-in-time", "--apply"]).expect(0);
    assert!(run.stdout.contains("quarantine"), "{}", run.stdout);
    tidelog(&["verify", s(&flipped)]).expect(0);
    let info = tidelog(&["info", "--json", s(&flipped)]).expect(0).json();
    assert_eq!(info["last_lsn"], RECORDS / 3 - 1);

    let (_tmp, missing) = missing_segment_log();
    tidelog(&["recover", s(&missing), "--mode", "point-in-time", "--apply"]).expect(0);
    tidelog(&["verify", "--json", s(&missing)]).expect(0);
}

// ---------------------------------------------------------------------------------------------
// append, checkpoint, truncate-after
// ---------------------------------------------------------------------------------------------

#[test]
fn append_then_dump_round_trips() {
    let tmp = tempdir();
    let dir = tmp.path().join("log");
    let run = tidelog_with_stdin(&["append", s(&dir)], b"set x = 1\nset y = 2\r\n\nlast").expect(0);
    assert!(run.stdout.contains("LSN 1..=4"), "{}", run.stdout);
    let file = tmp.path().join("blob");
    let blob: Vec<u8> = (0..=255u8).chain(b"\n\n".iter().copied()).collect();
    std::fs::write(&file, &blob).unwrap();
    let a = tidelog(&["append", "--json", "--sync", s(&dir), s(&file)])
        .expect(0)
        .json();
    assert_eq!(
        (a["first_lsn"].as_u64(), a["last_lsn"].as_u64()),
        (Some(5), Some(5))
    );
    let b = tidelog_with_stdin(&["append", "--batch", "--json", s(&dir)], b"x\ny\nz\n")
        .expect(0)
        .json();
    assert_eq!(
        (b["first_lsn"].as_u64(), b["last_lsn"].as_u64()),
        (Some(6), Some(8))
    );

    let records = tidelog(&["dump", "--json", "--format", "hex", s(&dir)])
        .expect(0)
        .json_lines();
    let decoded: Vec<Vec<u8>> = records
        .iter()
        .map(|r| {
            let hex = r["hex"].as_str().unwrap();
            (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect()
        })
        .collect();
    let expected: Vec<Vec<u8>> = vec![
        b"set x = 1".to_vec(),
        b"set y = 2".to_vec(),
        b"".to_vec(),
        b"last".to_vec(),
        blob,
        b"x".to_vec(),
        b"y".to_vec(),
        b"z".to_vec(),
    ];
    assert_eq!(decoded, expected);
    let batch: Vec<&str> = records
        .iter()
        .map(|r| r["batch"].as_str().unwrap())
        .collect();
    assert_eq!(
        batch,
        [
            "single", "single", "single", "single", "single", "start", "middle", "end"
        ]
    );
    // And the library reads the same.
    let log = Log::builder(&dir).read_only(true).open().unwrap();
    assert_eq!(log.read(tidelog::Lsn::new(1)).unwrap().data(), b"set x = 1");
}

#[test]
fn checkpoint_and_truncate_after_change_what_info_shows() {
    let tmp = tempdir();
    let dir = make_log(&tmp.path().join("log"), RECORDS);
    let segs_before = segments(&dir).len();

    let run = tidelog(&["checkpoint", s(&dir), "150"]).expect(0);
    assert!(
        run.stdout.contains("from LSN 1 to LSN 150"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("removed"), "{}", run.stdout);
    let info = tidelog(&["info", "--json", s(&dir)]).expect(0).json();
    assert_eq!(info["checkpoint_lsn"], 150);
    assert_eq!(info["records"], RECORDS - 149);
    assert!(info["segments"].as_array().unwrap().len() < segs_before);
    let run = tidelog(&["checkpoint", s(&dir), "100"]).expect(0);
    assert!(run.stdout.contains("nothing changed"), "{}", run.stdout);

    let run = tidelog(&["truncate-after", s(&dir), "200"]).expect(0);
    assert!(
        run.stdout.contains("dropped LSN 201..=300"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("100 records"), "{}", run.stdout);
    let info = tidelog(&["info", "--json", s(&dir)]).expect(0).json();
    assert_eq!(info["last_lsn"], 200);
    let t = tidelog(&["truncate-after", "--json", s(&dir), "500"])
        .expect(0)
        .json();
    assert_eq!(t["records_dropped"], 0);
    let c = tidelog(&["checkpoint", "--json", s(&dir), "180"])
        .expect(0)
        .json();
    assert_eq!(c["checkpoint_lsn"], 180);
    // The records left read back as written.
    let records = tidelog(&["dump", "--json", s(&dir)]).expect(0).json_lines();
    assert_eq!(records.len(), 21);
    assert_eq!(records[0]["lsn"], 180);
    assert_eq!(records[0]["text"], String::from_utf8(payload(180)).unwrap());
}

#[test]
fn mutating_commands_never_create_a_log() {
    let tmp = tempdir();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for args in [
        vec!["checkpoint", s(&empty), "5"],
        vec!["truncate-after", s(&empty), "5"],
        vec!["recover", s(&empty), "--apply"],
    ] {
        let run = tidelog(&args).expect(2);
        assert!(
            run.stderr.contains("holds no tidelog log"),
            "{}",
            run.stderr
        );
    }
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
}

// ---------------------------------------------------------------------------------------------
// tail
// ---------------------------------------------------------------------------------------------

#[test]
fn tail_prints_the_last_records() {
    let tmp = tempdir();
    let dir = make_log(&tmp.path().join("log"), 30);
    let run = tidelog(&["tail", s(&dir)]).expect(0);
    let lsns: Vec<&str> = run
        .stdout
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        lsns,
        ["21", "22", "23", "24", "25", "26", "27", "28", "29", "30"]
    );
    let run = tidelog(&["tail", "--from", "29", "--json", s(&dir)]).expect(0);
    assert_eq!(run.json_lines().len(), 2);
}

#[test]
fn tail_follow_prints_records_another_process_appends() {
    let tmp = tempdir();
    let dir = make_log(&tmp.path().join("log"), 10);
    let mut child = Command::new(BIN)
        .args(["tail", "-f", "-n", "2", "--json", s(&dir)])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    // A generous limit that only a broken tail ever reaches.
    let next = || -> serde_json::Value {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("tail -f printed a record");
        serde_json::from_str(&line).unwrap()
    };
    assert_eq!(next()["lsn"], 9);
    assert_eq!(next()["lsn"], 10);
    let log = Log::builder(&dir)
        .segment_bytes(SEGMENT_BYTES)
        .open()
        .unwrap();
    for lsn in 11..=13 {
        log.append(&payload(lsn), Durability::Synced).unwrap();
    }
    for lsn in 11..=13 {
        let record = next();
        assert_eq!(record["lsn"], lsn);
        assert_eq!(record["text"], String::from_utf8(payload(lsn)).unwrap());
    }
    log.append(&payload(14), Durability::Synced).unwrap();
    assert_eq!(next()["lsn"], 14);
    // A rollback by the writer: tail opens the log again and goes on with what comes next.
    log.truncate_after(Lsn::new(12)).unwrap();
    for lsn in 13..=15 {
        log.append(&payload(lsn), Durability::Synced).unwrap();
    }
    assert_eq!(next()["lsn"], 15);
    child.kill().unwrap();
    child.wait().unwrap();
}

// ---------------------------------------------------------------------------------------------
// demo, fsync-probe, bench, completions, help, errors
// ---------------------------------------------------------------------------------------------

#[test]
fn demo_runs_and_verifies_everything() {
    let tmp = tempdir();
    let dir = tmp.path().join("demo");
    let run = tidelog(&["demo", "--quick", s(&dir)]).expect(0);
    for text in [
        "1. 4 threads commit",
        "commits per fsync",
        "child killed",
        "torn write left",
        "torn tail",
        "verified: all",
        "4. checkpoint",
        "all 100 synced records survived",
        "6. archive and restore",
        "retention floor LSN",
        "restored the latest record",
        "records match",
        "every record checked",
        "summary",
    ] {
        assert!(run.stdout.contains(text), "{text:?} in\n{}", run.stdout);
    }
    // A directory that is not empty is refused.
    let run = tidelog(&["demo", "--quick", s(&dir)]).expect(2);
    assert!(run.stderr.contains("not empty"), "{}", run.stderr);
}

#[test]
fn fsync_probe_measures_and_advises() {
    let tmp = tempdir();
    let run = tidelog(&["fsync-probe", s(tmp.path()), "--seconds", "0.02"]).expect(0);
    for text in [
        "write + fdatasync",
        "write + fsync",
        "O_DSYNC write",
        "1.0 KiB",
        "8.0 KiB",
        "advice:",
    ] {
        assert!(run.stdout.contains(text), "{text:?} in\n{}", run.stdout);
    }
    let lines = tidelog(&["fsync-probe", s(tmp.path()), "--seconds", "0.01", "--json"])
        .expect(0)
        .json_lines();
    assert_eq!(lines.len(), 7);
    assert!(lines[0]["ops"].as_u64().unwrap() >= 1);
    assert!(lines[6]["recommendation"].is_array());
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "test file removed"
    );
}

#[test]
fn bench_runs_small_workloads_and_cleans_up() {
    let tmp = tempdir();
    let args = [
        "bench",
        "--quick",
        "--dir",
        s(tmp.path()),
        "--records",
        "500",
        "--threads",
        "2",
        "--seconds",
        "0.05",
        "--large-records",
        "2",
    ];
    let run = tidelog(&args).expect(0);
    for text in [
        "records/s",
        "MB/s",
        "commits/fsync",
        "bulk",
        "commits",
        "large",
    ] {
        assert!(run.stdout.contains(text), "{text:?} in\n{}", run.stdout);
    }
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let lines = tidelog(&json_args).expect(0).json_lines();
    let workloads: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l["workload"].as_str().unwrap())
        .collect();
    assert_eq!(workloads, ["bulk", "commits", "large"]);
    assert_eq!(lines[1]["records"], 500);
    assert!(lines[2]["fsyncs"].as_u64().unwrap() >= 1);
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "run directory removed"
    );
}

#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let run = tidelog(&["completions", shell]).expect(0);
        assert!(run.stdout.contains("tidelog"), "{shell}");
        assert!(run.stdout.contains("truncate-after"), "{shell}");
    }
}

#[test]
fn help_documents_exit_codes_and_every_subcommand_has_an_example() {
    let run = tidelog(&["--help"]).expect(0);
    assert!(run.stdout.contains("Exit codes:"), "{}", run.stdout);
    for sub in [
        "info",
        "dump",
        "verify",
        "recover",
        "tail",
        "append",
        "checkpoint",
        "truncate-after",
        "bench",
        "fsync-probe",
        "demo",
        "completions",
        "archive",
        "restore",
        "archive-info",
        "follow",
        "prune",
    ] {
        let run = tidelog(&[sub, "--help"]).expect(0);
        assert!(run.stdout.contains("Examples:"), "{sub}:\n{}", run.stdout);
        assert!(run.stdout.contains(&format!("tidelog {sub}")), "{sub}");
    }
    let run = tidelog(&["tail", "--help"]).expect(0);
    assert!(run.stdout.contains("polls"), "{}", run.stdout);
}

#[test]
fn errors_are_one_readable_chain_with_exit_code_2() {
    let tmp = tempdir();
    let missing = tmp.path().join("missing");
    for cmd in ["info", "dump", "verify", "recover", "tail"] {
        let run = tidelog(&[cmd, s(&missing)]).expect(2);
        assert!(run.stdout.is_empty(), "{cmd}: {}", run.stdout);
        assert!(
            run.stderr.starts_with("tidelog: error: "),
            "{cmd}: {}",
            run.stderr
        );
        assert!(run.stderr.contains(s(&missing)), "{cmd}: {}", run.stderr);
        for debug in ["Error {", "Os {", "kind:", "NotFound {"] {
            assert!(!run.stderr.contains(debug), "{cmd}: {}", run.stderr);
        }
    }
    // Usage errors.
    tidelog(&["dump", s(&missing), "--from", "x"]).expect(2);
    tidelog(&["no-such-command"]).expect(2);
    tidelog(&["recover", s(&missing), "--mode", "sloppy"]).expect(2);
    // A damaged log refused for writing gets a hint.
    let (_tmp, dir) = flipped_log();
    let run = tidelog(&["checkpoint", s(&dir), "5"]).expect(2);
    assert!(run.stderr.contains("tidelog: hint:"), "{}", run.stderr);
}

// ---------------------------------------------------------------------------------------------
// Incident tooling: errors, dump --limit/--stats/--frames and files, recover --rebuild-checkpoint
// ---------------------------------------------------------------------------------------------

#[test]
fn an_os_error_is_printed_once() {
    let tmp = tempdir();
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    // A path under a file: listing it fails with ENOTDIR.
    let under = file.join("log");
    for cmd in ["info", "dump", "verify", "recover"] {
        let run = tidelog(&[cmd, s(&under)]).expect(2);
        assert!(run.stderr.contains("(os error"), "{cmd}: {}", run.stderr);
        assert_eq!(
            run.stderr.matches("(os error").count(),
            1,
            "{cmd}: {}",
            run.stderr
        );
    }
}

/// A log of `n` records appended in batches of 1, 2 and 3 records, in turn.
fn make_batched_log(dir: &Path, n: u64) -> Vec<usize> {
    let log = Log::builder(dir)
        .segment_bytes(SEGMENT_BYTES)
        .open()
        .unwrap();
    let mut sizes = Vec::new();
    let mut lsn = 1;
    while lsn <= n {
        let size = (sizes.len() % 3 + 1).min((n - lsn + 1) as usize);
        let batch: Vec<Vec<u8>> = (lsn..lsn + size as u64).map(payload).collect();
        log.append_batch(&batch, Durability::Synced).unwrap();
        sizes.push(size);
        lsn += size as u64;
    }
    log.close().unwrap();
    sizes
}

fn cut_files(dir: &Path) -> Vec<PathBuf> {
    let mut cuts: Vec<PathBuf> = std::fs::read_dir(dir.join("quarantine"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_str().unwrap().ends_with(".cut"))
        .collect();
    cuts.sort();
    cuts
}

#[test]
fn dump_limit_prints_at_most_n_records() {
    let tmp = tempdir();
    let dir = make_log(&tmp.path().join("log"), 50);
    let run = unchanged(&dir, || tidelog(&["dump", s(&dir), "--limit", "7"])).expect(0);
    assert_eq!(run.stdout.lines().count(), 7, "{}", run.stdout);
    let lines = tidelog(&["dump", "--json", s(&dir), "--from", "45", "--limit", "3"])
        .expect(0)
        .json_lines();
    let lsns: Vec<u64> = lines.iter().map(|l| l["lsn"].as_u64().unwrap()).collect();
    assert_eq!(lsns, [45, 46, 47]);
    let run = tidelog(&["dump", s(&dir), "--limit", "0"]).expect(0);
    assert_eq!(run.stdout, "");
    // More than there is: all of it.
    let run = tidelog(&["dump", s(&dir), "--limit", "1000"]).expect(0);
    assert_eq!(run.stdout.lines().count(), 50);
    tidelog(&["dump", s(&dir), "--limit", "-1"]).expect(2);
}

#[test]
fn dump_payload_names_the_payload_encoding() {
    let tmp = tempdir();
    let dir = make_log(&tmp.path().join("log"), 5);
    let hex: String = payload(3).iter().map(|b| format!("{b:02x}")).collect();
    for flag in ["--payload", "--format"] {
        let r = tidelog(&[
            "dump",
            "--json",
            s(&dir),
            "--from",
            "3",
            "--to",
            "3",
            flag,
            "hex",
        ])
        .expect(0)
        .json();
        assert_eq!(r["hex"], hex, "{flag}");
    }
    let run = tidelog(&["dump", "--help"]).expect(0);
    assert!(run.stdout.contains("--payload <PAYLOAD>"), "{}", run.stdout);
    tidelog(&["dump", s(&dir), "--payload", "rot13"]).expect(2);
}

#[test]
fn dump_stats_counts_records_bytes_and_batches_per_segment() {
    let tmp = tempdir();
    let dir = tmp.path().join("log");
    let sizes = make_batched_log(&dir, RECORDS);
    let segs = segments(&dir);
    assert!(segs.len() >= 3, "{} segments", segs.len());
    let run = unchanged(&dir, || tidelog(&["dump", s(&dir), "--stats"])).expect(0);
    for text in ["records/batch", "payload", "total (", "1 / 2.0 / 3"] {
        assert!(run.stdout.contains(text), "{text:?} in\n{}", run.stdout);
    }
    for seg in &segs {
        let name = seg.file_name().unwrap().to_str().unwrap();
        assert!(run.stdout.contains(name), "{name} in\n{}", run.stdout);
    }

    let lines = unchanged(&dir, || tidelog(&["dump", "--json", s(&dir), "--stats"]))
        .expect(0)
        .json_lines();
    assert_eq!(lines.len(), segs.len() + 1);
    let mut next = 1;
    for (line, seg) in lines.iter().zip(&segs) {
        assert_eq!(line["type"], "segment");
        assert_eq!(line["file"], s(seg));
        assert_eq!(line["first_lsn"], next, "{line}");
        next = line["last_lsn"].as_u64().unwrap() + 1;
        assert_eq!(line["file_bytes"], std::fs::metadata(seg).unwrap().len());
        assert_eq!(line["damaged_bytes"], 0);
        // A batch never spans two segments.
        let records = line["records"].as_u64().unwrap();
        let batches = line["batches"].as_u64().unwrap();
        let mean = line["batch_size"]["mean"].as_f64().unwrap();
        assert!(
            (mean * batches as f64 - records as f64).abs() < 1e-6,
            "{line}"
        );
    }
    let total = lines.last().unwrap();
    assert_eq!(total["type"], "total");
    assert_eq!(total["records"], RECORDS);
    assert_eq!(total["batches"], sizes.len());
    assert_eq!(total["batch_size"]["min"], 1);
    assert_eq!(total["batch_size"]["max"], 3);
    let bytes: u64 = (1..=RECORDS).map(|l| payload(l).len() as u64).sum();
    assert_eq!(total["payload_bytes"], bytes);

    // One file, and an LSN range.
    let one = tidelog(&["dump", "--json", s(&segs[1]), "--stats"])
        .expect(0)
        .json_lines();
    assert_eq!(one[0]["records"], lines[1]["records"]);
    let ranged = tidelog(&[
        "dump",
        "--json",
        s(&dir),
        "--stats",
        "--from",
        "10",
        "--to",
        "19",
    ])
    .expect(0)
    .json_lines();
    assert_eq!(ranged.last().unwrap()["records"], 10);
}

#[test]
fn dump_frames_of_a_healthy_log_are_its_records_with_valid_checksums() {
    let tmp = tempdir();
    let dir = make_log(&tmp.path().join("log"), RECORDS);
    let segs = segments(&dir);
    let lines = unchanged(&dir, || tidelog(&["dump", "--json", s(&dir), "--frames"]))
        .expect(0)
        .json_lines();
    let files: Vec<&serde_json::Value> = lines.iter().filter(|l| l["type"] == "file").collect();
    assert_eq!(files.len(), segs.len());
    for (file, seg) in files.iter().zip(&segs) {
        assert_eq!(file["file"], s(seg));
        assert_eq!(file["kind"], "segment");
        assert_eq!(file["checked_against"], s(seg));
        assert_eq!(file["header"]["log_id"].as_str().unwrap().len(), 32);
    }
    // Records, and the sync marker after each synced append.
    let is_record = |l: &&serde_json::Value| l["type"] == "frame" && l["kind"] == "record";
    let markers = lines.iter().filter(|l| l["kind"] == "sync_marker").count();
    assert_eq!(
        markers, RECORDS as usize,
        "one after each append, made durable"
    );
    let frames: Vec<&serde_json::Value> = lines.iter().filter(is_record).collect();
    assert_eq!(frames.len(), RECORDS as usize);
    let mut previous_offset = 0;
    for (frame, lsn) in frames.iter().zip(1..) {
        assert_eq!(frame["lsn"], lsn);
        assert_eq!(frame["checksum"], "valid");
        assert_eq!(frame["crc_stored"], frame["crc_computed"]);
        assert_eq!(frame["batch"], "single");
        assert_eq!(frame["flags"], 3);
        assert_eq!(frame["size"], payload(lsn).len());
        assert_eq!(frame["bytes"], payload(lsn).len() + 32);
        assert_eq!(frame["text"], String::from_utf8(payload(lsn)).unwrap());
        // Each record was synced before the next was written.
        assert_eq!(frame["durable_hint"], lsn - 1);
        let offset = frame["offset"].as_u64().unwrap();
        assert!(offset >= 128 && (offset > previous_offset || offset == 128));
        previous_offset = offset;
    }
    let summaries: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["type"] == "summary").collect();
    assert_eq!(summaries.len(), segs.len());
    let valid: u64 = summaries.iter().map(|l| l["valid"].as_u64().unwrap()).sum();
    // The seal ending each segment but the last names the LSNs of its records.
    let seals: Vec<&serde_json::Value> = lines.iter().filter(|l| l["kind"] == "seal").collect();
    assert_eq!(seals.len(), segs.len() - 1);
    let mut first = 1;
    for seal in &seals {
        assert_eq!(seal["checksum"], "valid");
        assert_eq!(seal["seal"]["first_lsn"], first);
        let last = seal["seal"]["last_lsn"].as_u64().unwrap();
        assert_eq!(seal["lsn"], last + 1);
        assert!(seal["seal"]["first_ms"].as_u64() <= seal["seal"]["last_ms"].as_u64());
        first = last + 1;
    }
    let sealed = seals.len() as u64;
    assert_eq!(
        valid,
        2 * RECORDS + sealed,
        "every record, its sync marker, the seals"
    );

    let run = tidelog(&["dump", s(&dir), "--frames", "--from", "100", "--to", "101"]).expect(0);
    assert!(
        run.stdout
            .contains("checksums checked against its own header"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("crc"), "{}", run.stdout);
    let rows: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.contains(" single "))
        .collect();
    assert_eq!(rows.len(), 2, "{}", run.stdout);
    assert!(rows.iter().all(|r| r.contains(" ok ")), "{}", run.stdout);

    // --limit counts lines of frames.
    let lines = tidelog(&["dump", "--json", s(&dir), "--frames", "--limit", "5"])
        .expect(0)
        .json_lines();
    assert_eq!(lines.iter().filter(|l| l["type"] == "frame").count(), 5);
    assert_eq!(lines.iter().filter(|l| l["type"] == "summary").count(), 0);
}

#[test]
fn dump_frames_show_damage_where_the_log_does_not_open() {
    let (_tmp, dir) = flipped_log();
    let lines = unchanged(&dir, || tidelog(&["dump", "--json", s(&dir), "--frames"]))
        .expect(0)
        .json_lines();
    let bad: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["type"] == "frame" && l["checksum"] != "valid")
        .collect();
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0]["lsn"], RECORDS / 3);
    assert_eq!(bad[0]["checksum"], "mismatch");
    assert_ne!(bad[0]["crc_stored"], bad[0]["crc_computed"]);
    let valid = lines
        .iter()
        .filter(|l| l["kind"] == "record" && l["checksum"] == "valid")
        .count();
    assert_eq!(valid as u64, RECORDS - 1);
    let run = tidelog(&["dump", s(&dir), "--frames"]).expect(0);
    assert!(run.stdout.contains("MISMATCH (computed"), "{}", run.stdout);
    assert!(
        run.stdout.contains("1 checksum mismatches"),
        "{}",
        run.stdout
    );
    // The records view stops at the damage, as the default recovery mode does.
    tidelog(&["dump", s(&dir)]).expect(2);
}

#[test]
fn dump_reads_one_segment_file_and_a_quarantined_cut_file() {
    let (tmp, dir) = flipped_log();
    let damaged = RECORDS / 3;
    tidelog(&["recover", s(&dir), "--mode", "point-in-time", "--apply"]).expect(0);
    let cuts = cut_files(&dir);
    assert_eq!(cuts.len(), 1, "{cuts:?}");
    let cut = &cuts[0];
    let name = cut.file_name().unwrap().to_str().unwrap().to_owned();
    let mut parts = name.split('.');
    let segment_name = format!("{}.seg", parts.next().unwrap());
    parts.next();
    let cut_offset: u64 = parts.next().unwrap().parse().unwrap();
    let segment = dir.join(&segment_name);

    let lines = unchanged(&dir, || tidelog(&["dump", "--json", s(cut)]))
        .expect(0)
        .json_lines();
    assert_eq!(lines[0]["type"], "file");
    assert_eq!(lines[0]["kind"], "cut");
    assert_eq!(lines[0]["segment"], segment_name.as_str());
    assert_eq!(lines[0]["cut_offset"], cut_offset);
    assert_eq!(lines[0]["checked_against"], s(&segment));
    let frames: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["type"] == "frame" && l["kind"] == "record")
        .collect();
    assert_eq!(frames[0]["lsn"], damaged);
    assert_eq!(frames[0]["offset"], cut_offset);
    assert_eq!(frames[0]["checksum"], "mismatch");
    assert!(
        frames.len() > 1,
        "intact frames after the damage were cut too"
    );
    for (frame, lsn) in frames.iter().zip(damaged..).skip(1) {
        assert_eq!(frame["lsn"], lsn);
        assert_eq!(frame["checksum"], "valid");
        assert_eq!(frame["text"], String::from_utf8(payload(lsn)).unwrap());
    }
    let run = unchanged(&dir, || tidelog(&["dump", s(cut)])).expect(0);
    assert!(
        run.stdout.contains(&format!(
            "bytes cut from segment {segment_name} at offset {cut_offset}"
        )),
        "{}",
        run.stdout
    );

    // A segment moved whole to quarantine reads with its own header.
    let moved = dir.join("quarantine").join(format!(
        "{:020}.seg",
        frames.last().unwrap()["lsn"].as_u64().unwrap() + 1
    ));
    assert!(moved.exists(), "{}", moved.display());
    let lines = tidelog(&["dump", "--json", s(&moved)])
        .expect(0)
        .json_lines();
    assert!(
        lines
            .iter()
            .filter(|l| l["type"] == "frame")
            .all(|l| l["checksum"] == "valid")
    );

    // The segment gone: frames from their structure, unverified; --header-from a copy of it.
    let copy = tmp.path().join(&segment_name);
    std::fs::copy(&segment, &copy).unwrap();
    std::fs::remove_file(&segment).unwrap();
    let run = unchanged(&dir, || tidelog(&["dump", s(cut)])).expect(0);
    assert!(
        run.stdout.contains("checksums NOT checked"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("unverified"), "{}", run.stdout);
    let lines = tidelog(&["dump", "--json", s(cut)]).expect(0).json_lines();
    assert!(lines[0]["unverified_reason"].is_string());
    assert!(
        lines
            .iter()
            .filter(|l| l["type"] == "frame")
            .all(|l| l["checksum"] == "unverified")
    );
    let lines = unchanged(&dir, || {
        tidelog(&["dump", "--json", s(cut), "--header-from", s(&copy)])
    })
    .expect(0)
    .json_lines();
    assert_eq!(lines[0]["checked_against"], s(&copy));
    let checks: Vec<&str> = lines
        .iter()
        .filter(|l| l["type"] == "frame")
        .map(|l| l["checksum"].as_str().unwrap())
        .collect();
    assert_eq!(checks[0], "mismatch");
    assert!(checks[1..].iter().all(|c| *c == "valid"), "{checks:?}");
}

#[test]
fn dump_refuses_what_it_cannot_read_with_exit_code_2() {
    let tmp = tempdir();
    let dir = make_log(&tmp.path().join("log"), 20);
    let run = tidelog(&["dump", s(&dir.join("CHECKPOINT"))]).expect(2);
    assert!(run.stderr.contains("not a segment file"), "{}", run.stderr);
    assert_eq!(
        run.stderr.matches("CHECKPOINT").count(),
        1,
        "{}",
        run.stderr
    );
    let gone = dir.join("00000000000000000099.seg");
    let run = tidelog(&["dump", s(&gone)]).expect(2);
    assert!(
        run.stderr.contains(&format!("cannot open {}", s(&gone))),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.matches("(os error").count(), 1, "{}", run.stderr);
    let run = tidelog(&["dump", s(&dir), "--header-from", s(&segments(&dir)[0])]).expect(2);
    assert!(run.stderr.contains("--header-from"), "{}", run.stderr);
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let run = tidelog(&["dump", s(&empty), "--frames"]).expect(2);
    assert!(
        run.stderr.contains("holds no segment files"),
        "{}",
        run.stderr
    );
    for args in [
        vec!["--stats", "--frames"],
        vec!["--stats", "--limit", "3"],
        vec!["--frames", "--mode", "skip-corrupt"],
    ] {
        let mut all = vec!["dump", s(&dir)];
        all.extend(args);
        tidelog(&all).expect(2);
    }
}

/// A log of `RECORDS` records checkpointed at 150, so its first segment starts after LSN 1.
fn checkpointed_log() -> (tempfile::TempDir, PathBuf, u64) {
    let tmp = tempdir();
    let dir = make_log(&tmp.path().join("log"), RECORDS);
    tidelog(&["checkpoint", s(&dir), "150"]).expect(0);
    let first: u64 = segments(&dir)[0]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(first > 1 && first <= 150, "{first}");
    (tmp, dir, first)
}

#[test]
fn recover_rebuild_checkpoint_is_a_dry_run_until_applied() {
    let (_tmp, dir, first) = checkpointed_log();
    let checkpoint = dir.join("CHECKPOINT");
    let damaged = b"\x00\x01 not a checkpoint".to_vec();
    std::fs::write(&checkpoint, &damaged).unwrap();

    // Every command that opens the log points at the rebuild.
    let run = tidelog(&["info", s(&dir)]).expect(2);
    assert!(
        run.stderr.contains("--rebuild-checkpoint"),
        "{}",
        run.stderr
    );
    let run = unchanged(&dir, || tidelog(&["recover", s(&dir)])).expect(1);
    assert!(
        run.stdout.contains("--rebuild-checkpoint"),
        "{}",
        run.stdout
    );
    let r = tidelog(&["recover", "--json", s(&dir)]).expect(1).json();
    assert_eq!(r["checkpoint_at_fault"], true);
    for mode in ["point-in-time", "skip-corrupt"] {
        tidelog(&["recover", s(&dir), "--mode", mode, "--apply"]).expect(2);
    }

    let run = unchanged(&dir, || {
        tidelog(&["recover", s(&dir), "--rebuild-checkpoint"])
    })
    .expect(1);
    assert!(run.stdout.contains("damaged"), "{}", run.stdout);
    assert!(
        run.stdout.contains(&format!("checkpoint LSN {first}")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("dry run"), "{}", run.stdout);
    let plan = unchanged(&dir, || {
        tidelog(&["recover", "--json", s(&dir), "--rebuild-checkpoint"])
    })
    .expect(1)
    .json();
    assert_eq!(plan["rebuild_checkpoint"], true);
    assert_eq!(plan["apply"], false);
    assert_eq!(plan["needed"], true);
    assert_eq!(plan["written"], false);
    assert_eq!(plan["current"]["state"], "damaged");
    assert_eq!(plan["lsn"], first);
    assert_eq!(plan["segments"], segments(&dir).len());
    assert_eq!(plan["log_id"].as_str().unwrap().len(), 32);
    assert!(plan["refusal"].is_null());

    let done = tidelog(&[
        "recover",
        "--json",
        s(&dir),
        "--rebuild-checkpoint",
        "--apply",
    ])
    .expect(0)
    .json();
    assert_eq!(done["written"], true);
    let copy = dir.join("quarantine").join("CHECKPOINT");
    assert_eq!(done["quarantined"], s(&copy));
    assert_eq!(std::fs::read(&copy).unwrap(), damaged);

    tidelog(&["verify", s(&dir)]).expect(0);
    let info = tidelog(&["info", "--json", s(&dir)]).expect(0).json();
    assert_eq!(info["checkpoint_lsn"], first);
    assert_eq!(info["log_id"], plan["log_id"]);
    assert_eq!(info["last_lsn"], RECORDS);
    let records = tidelog(&["dump", "--json", s(&dir)]).expect(0).json_lines();
    assert_eq!(records[0]["lsn"], first);
    assert_eq!(records.len() as u64, RECORDS - first + 1);

    let run = unchanged(&dir, || {
        tidelog(&["recover", s(&dir), "--rebuild-checkpoint"])
    })
    .expect(0);
    assert!(run.stdout.contains("nothing to do"), "{}", run.stdout);
    let run = unchanged(&dir, || {
        tidelog(&["recover", s(&dir), "--rebuild-checkpoint", "--apply"])
    })
    .expect(0);
    assert!(run.stdout.contains("nothing to do"), "{}", run.stdout);
}

#[test]
fn recover_rebuild_checkpoint_restores_a_lost_one() {
    let (_tmp, dir, first) = checkpointed_log();
    std::fs::remove_file(dir.join("CHECKPOINT")).unwrap();
    let r = unchanged(&dir, || tidelog(&["recover", "--json", s(&dir)]))
        .expect(1)
        .json();
    assert_eq!(r["checkpoint_at_fault"], true, "{r}");
    let plan = tidelog(&["recover", "--json", s(&dir), "--rebuild-checkpoint"])
        .expect(1)
        .json();
    assert_eq!(plan["current"]["state"], "missing");
    let run = tidelog(&["recover", s(&dir), "--rebuild-checkpoint", "--apply"]).expect(0);
    assert!(run.stdout.contains("rebuilt:"), "{}", run.stdout);
    assert!(
        !dir.join("quarantine").exists(),
        "nothing replaced, nothing kept"
    );
    let info = tidelog(&["info", "--json", s(&dir)]).expect(0).json();
    assert_eq!(info["checkpoint_lsn"], first);
}

#[test]
fn recover_rebuild_checkpoint_refuses_what_it_cannot_do_with_exit_code_2() {
    let (_tmp, dir, _) = checkpointed_log();
    std::fs::write(dir.join("CHECKPOINT"), b"junk").unwrap();
    // A writer: opening fails while the checkpoint is damaged, so hold the lock by hand.
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join("LOCK"))
        .unwrap();
    lock.try_lock().unwrap();
    let run = unchanged(&dir, || {
        tidelog(&["recover", s(&dir), "--rebuild-checkpoint", "--apply"])
    })
    .expect(2);
    assert!(run.stderr.contains("locked"), "{}", run.stderr);
    assert!(run.stderr.contains("tidelog: hint:"), "{}", run.stderr);
    drop(lock);

    // Usage: the mode belongs to recovery, not to the rebuild.
    tidelog(&[
        "recover",
        s(&dir),
        "--rebuild-checkpoint",
        "--mode",
        "strict",
    ])
    .expect(2);

    // No segment to rebuild from.
    let tmp = tempdir();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(empty.join("CHECKPOINT"), b"junk").unwrap();
    let run = unchanged(&empty, || {
        tidelog(&["recover", s(&empty), "--rebuild-checkpoint"])
    })
    .expect(2);
    assert!(run.stderr.contains("no segment"), "{}", run.stderr);
    let plan = tidelog(&["recover", "--json", s(&empty), "--rebuild-checkpoint"]);
    let plan = plan.expect(2).json();
    assert!(plan["refusal"].is_string());
    let missing = tmp.path().join("missing");
    let run = tidelog(&["recover", s(&missing), "--rebuild-checkpoint"]).expect(2);
    assert_eq!(run.stderr.matches("(os error").count(), 1, "{}", run.stderr);
}

#[test]
fn help_shows_the_incident_options_with_examples() {
    let run = tidelog(&["dump", "--help"]).expect(0);
    for text in [
        "--limit <N>",
        "--stats",
        "--frames",
        "--header-from <SEGMENT>",
        ".cut --header-from ./copy.seg",
        "tidelog dump ./wal --stats",
        "tidelog dump ./wal --frames",
        "tidelog dump ./wal/quarantine/",
        "--limit 20",
        "--payload hex",
    ] {
        assert!(run.stdout.contains(text), "{text:?} in\n{}", run.stdout);
    }
    let run = tidelog(&["recover", "--help"]).expect(0);
    for text in [
        "--rebuild-checkpoint",
        "tidelog recover ./wal --rebuild-checkpoint",
        "tidelog recover ./wal --rebuild-checkpoint --apply",
    ] {
        assert!(run.stdout.contains(text), "{text:?} in\n{}", run.stdout);
    }
}

#[test]
fn dump_counts_what_a_recycled_segment_kept_from_its_earlier_life_apart_from_damage() {
    let tmp = tempdir();
    let dir = tmp.path().join("log");
    let log = Log::builder(&dir)
        .segment_bytes(SEGMENT_BYTES)
        .recycle_segments(true)
        .preallocate(false)
        .open()
        .unwrap();
    for lsn in 1..=200 {
        log.append(&payload(lsn), Durability::Synced).unwrap();
    }
    log.checkpoint(Lsn::new(190)).unwrap();
    for lsn in 201..=300 {
        log.append(&payload(lsn), Durability::Synced).unwrap();
    }
    assert!(
        log.metrics().segments_recycled > 0,
        "a segment was recycled"
    );
    log.close().unwrap();
    tidelog(&["verify", s(&dir)]).expect(0);

    let lines = unchanged(&dir, || tidelog(&["dump", "--json", s(&dir), "--stats"]))
        .expect(0)
        .json_lines();
    let total = lines.last().unwrap();
    assert_eq!(total["damaged_bytes"], 0, "{total}");
    assert!(total["leftover_bytes"].as_u64().unwrap() > 0, "{total}");
    assert_eq!(total["last_lsn"], 300);
    let run = tidelog(&["dump", s(&dir), "--stats"]).expect(0);
    assert!(run.stdout.contains("earlier life"), "{}", run.stdout);

    let lines = tidelog(&["dump", "--json", s(&dir), "--frames"])
        .expect(0)
        .json_lines();
    let recycled: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["type"] == "file" && l["header"]["prev_extent_bytes"].as_u64() > Some(0))
        .collect();
    assert!(!recycled.is_empty());
    for summary in lines.iter().filter(|l| l["type"] == "summary") {
        assert_eq!(summary["damaged_bytes"], 0, "{summary}");
        assert_eq!(summary["mismatched"], 0, "{summary}");
    }
}

// ---------------------------------------------------------------------------------------------
// permissions
// ---------------------------------------------------------------------------------------------

#[cfg(unix)]
#[test]
fn info_shows_the_modes_and_verify_warns_when_others_can_read_the_log() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempdir();
    let dir = make_log(&tmp.path().join("log"), 20);
    let run = tidelog(&["info", s(&dir)]).expect(0);
    assert!(
        run.stdout.contains("directory 0700, files 0600"),
        "{}",
        run.stdout
    );
    let run = tidelog(&["verify", s(&dir)]).expect(0);
    assert!(!run.stdout.contains("warning:"), "{}", run.stdout);

    // Made readable by others by hand: verify warns, and still passes.
    for seg in segments(&dir) {
        std::fs::set_permissions(&seg, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let run = unchanged(&dir, || tidelog(&["verify", s(&dir)])).expect(0);
    assert!(run.stdout.contains("warning:"), "{}", run.stdout);
    assert!(run.stdout.contains("go-rwx"), "{}", run.stdout);
    let v = tidelog(&["verify", "--json", s(&dir)]).expect(0).json();
    assert_eq!(
        v["readable_by_others"].as_array().unwrap().len(),
        segments(&dir).len()
    );
    let v = tidelog(&["info", "--json", s(&dir)]).expect(0).json();
    assert_eq!(v["modes"]["dir"], "0700");
    assert!(!v["readable_by_others"].as_array().unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// archive, archive-info, restore
// ---------------------------------------------------------------------------------------------

/// A `file://` URL for a store in `dir`.
fn file_url(dir: &Path) -> String {
    format!("file://{}", s(dir))
}

/// Appends `payload(lsn)` for the LSNs after the log's last, up to `to`, each synced.
fn append_up_to(dir: &Path, to: u64) {
    let log = Log::builder(dir)
        .segment_bytes(SEGMENT_BYTES)
        .open()
        .unwrap();
    for lsn in log.last_lsn().get() + 1..=to {
        assert_eq!(
            log.append(&payload(lsn), Durability::Synced).unwrap().get(),
            lsn
        );
    }
    log.close().unwrap();
}

/// The files of the archive in the directory `store` with their bytes, but for readers' leases
/// (which readers write and remove as they go).
fn archive_objects(store: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let readers = store.join("readers");
    snapshot(store)
        .into_iter()
        .filter(|(path, _)| !path.starts_with(&readers))
        .collect()
}

/// Asserts that the log in `dir` holds exactly `payload(lsn)` for `first..=last`, and that
/// `tidelog verify` and `tidelog info` agree.
#[track_caller]
fn assert_restored(dir: &Path, log_id: &str, first: u64, last: u64) {
    tidelog(&["verify", s(dir)]).expect(0);
    let info = tidelog(&["info", "--json", s(dir)]).expect(0).json();
    assert_eq!(info["log_id"], log_id);
    assert_eq!(info["checkpoint_lsn"], first);
    assert_eq!(info["last_lsn"], last);
    assert_eq!(info["records"], last + 1 - first);
    let log = Log::builder(dir).read_only(true).open().unwrap();
    let mut expected = first;
    for record in log.iter().unwrap() {
        let record = record.unwrap();
        assert_eq!(record.lsn().get(), expected);
        assert_eq!(record.data(), payload(expected));
        expected += 1;
    }
    assert_eq!(expected, last + 1);
}

#[test]
fn archive_once_then_archive_info_and_restore_to_the_latest_record_an_lsn_and_a_time() {
    let tmp = tempdir();
    let dir = make_log(&tmp.path().join("log"), RECORDS);
    let store = tmp.path().join("archive");
    let url = file_url(&store);
    let log_id = tidelog(&["info", "--json", s(&dir)]).expect(0).json()["log_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let run = tidelog(&["archive", s(&dir), &url, "--once"]).expect(0);
    for text in [
        "up to LSN 300 (the log's last record)",
        "as generation 1",
        "retention floor LSN 301",
    ] {
        assert!(run.stdout.contains(text), "{text:?} in\n{}", run.stdout);
    }
    // Nothing new: nothing uploaded, and the archive holds what it held; the run still claims
    // the next generation (every run does).
    let again = tidelog(&["archive", s(&dir), &url, "--once", "--json"])
        .expect(0)
        .json();
    assert_eq!(again["archived_lsn"], 300);
    assert_eq!(again["objects_uploaded"], 0);
    assert_eq!(again["generation"], 2);
    // New records: the next run uploads them under the next generation.
    append_up_to(&dir, 320);
    let next = tidelog(&["archive", s(&dir), &url, "--once", "--json"])
        .expect(0)
        .json();
    assert_eq!(next["archived_lsn"], 320);
    assert_eq!(next["last_lsn"], 320);
    assert_eq!(next["generation"], 3);
    assert!(next["objects_uploaded"].as_u64().unwrap() >= 1, "{next}");
    assert_eq!(next["retention_floor"], 321);

    // archive-info, in text and JSON.
    let run = tidelog(&["archive-info", &url]).expect(0);
    for text in [
        log_id.as_str(),
        "generation   3, held by ",
        "records      320 (LSN 1..=320)",
        "first LSN",
        " seg ",
        " tail ",
        "unreferenced: none",
        "foreign: none",
        "gaps         none",
    ] {
        assert!(run.stdout.contains(text), "{text:?} in\n{}", run.stdout);
    }
    let info = tidelog(&["archive-info", &url, "--json"]).expect(0).json();
    assert_eq!(info["gaps"], serde_json::json!([]));
    assert_eq!(info["log_id"], log_id.as_str());
    assert_eq!(info["generation"], 3);
    assert_eq!(info["first_lsn"], 1);
    assert_eq!(info["last_lsn"], 320);
    assert_eq!(info["totals"]["records"], 320);
    let objects = info["objects"].as_array().unwrap();
    assert!(objects.len() > 2, "{info}");
    assert_eq!(info["totals"]["objects"], objects.len());
    let bytes: u64 = objects.iter().map(|o| o["bytes"].as_u64().unwrap()).sum();
    assert_eq!(info["totals"]["bytes"], bytes);
    let mut next_lsn = 1;
    for (i, o) in objects.iter().enumerate() {
        assert_eq!(o["first_lsn"], next_lsn, "{o}");
        next_lsn = o["last_lsn"].as_u64().unwrap() + 1;
        let last = i + 1 == objects.len();
        assert_eq!(o["kind"], if last { "tail" } else { "seg" }, "{o}");
        assert!(o["name"].as_str().unwrap().starts_with("segments/"), "{o}");
        assert!(o["first_time"].as_str().unwrap().ends_with('Z'), "{o}");
    }
    let newest_ms = info["newest_batch_ms"].as_u64().unwrap();
    assert!(info["newest_batch"].as_str().unwrap().ends_with('Z'));
    assert_eq!(info["unreferenced"].as_array().unwrap().len(), 0);
    assert_eq!(info["foreign"].as_array().unwrap().len(), 0);

    // Restores: the latest record, an LSN, a time (in milliseconds and in RFC 3339).
    let latest = tmp.path().join("latest");
    let run = tidelog(&["restore", &url, s(&latest)]).expect(0);
    assert!(
        run.stdout.contains("restored LSN 1..=320 (320 records)"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains(s(&latest)), "{}", run.stdout);
    assert!(
        run.stderr.is_empty(),
        "no progress bar off a terminal: {}",
        run.stderr
    );
    assert_restored(&latest, &log_id, 1, 320);

    let at_lsn = tmp.path().join("at-lsn");
    let r = tidelog(&["restore", &url, s(&at_lsn), "--lsn", "150", "--json"])
        .expect(0)
        .json();
    assert_eq!(r["first_lsn"], 1);
    assert_eq!(r["last_lsn"], 150);
    assert_eq!(r["records"], 150);
    assert_eq!(r["log_id"], log_id.as_str());
    assert_eq!(r["dir"], s(&at_lsn));
    assert!(r["objects"].as_u64().unwrap() < objects.len() as u64, "{r}");
    assert_restored(&at_lsn, &log_id, 1, 150);

    let at_ms = tmp.path().join("at-ms");
    let r = tidelog(&[
        "restore",
        &url,
        s(&at_ms),
        "--time",
        &newest_ms.to_string(),
        "--json",
    ])
    .expect(0)
    .json();
    assert_eq!(r["last_lsn"], 320);
    assert_eq!(r["target_ms"], newest_ms);
    let newest = info["newest_batch"].as_str().unwrap();
    let at_time = tmp.path().join("at-time");
    let run = tidelog(&["restore", &url, s(&at_time), "--time", newest]).expect(0);
    assert!(run.stdout.contains("LSN 1..=320"), "{}", run.stdout);
    assert_restored(&at_time, &log_id, 1, 320);

    // Targets outside the archive, and times that do not parse.
    let run = tidelog(&["restore", &url, s(&tmp.path().join("past")), "--lsn", "999"]).expect(2);
    assert!(run.stderr.contains("ends at LSN 320"), "{}", run.stderr);
    let early = tmp.path().join("early");
    let run = tidelog(&["restore", &url, s(&early), "--time", "2000-01-01T00:00:00Z"]).expect(2);
    assert!(run.stderr.contains("not in the archive"), "{}", run.stderr);
    assert!(!early.exists());
    let run = tidelog(&["restore", &url, s(&early), "--time", "yesterday"]).expect(2);
    assert!(run.stderr.contains("RFC 3339"), "{}", run.stderr);
    tidelog(&["restore", &url, s(&early), "--lsn", "5", "--time", "5"]).expect(2);
}

#[test]
fn restore_refuses_a_directory_that_is_not_empty_and_archive_info_a_location_with_no_archive() {
    let tmp = tempdir();
    let dir = make_log(&tmp.path().join("log"), 50);
    let url = file_url(&tmp.path().join("archive"));
    tidelog(&["archive", s(&dir), &url, "--once"]).expect(0);

    let busy = tmp.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("keep.txt"), b"mine").unwrap();
    // Neither the directory, nor the log, nor what the archive holds changes (the restore's
    // reader lease comes and goes).
    let objects = archive_objects(&tmp.path().join("archive"));
    let run = unchanged(&busy, || {
        unchanged(&dir, || tidelog(&["restore", &url, s(&busy)]))
    })
    .expect(2);
    assert_eq!(archive_objects(&tmp.path().join("archive")), objects);
    let info = tidelog(&["archive-info", "--json", &url]).expect(0).json();
    assert_eq!(info["readers"].as_array().unwrap().len(), 0, "{info}");
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(
        run.stderr
            .contains(&format!("{} exists and is not empty", s(&busy))),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("tidelog: hint:"), "{}", run.stderr);
    // An empty directory is restored into.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    tidelog(&["restore", &url, s(&empty)]).expect(0);
    tidelog(&["verify", s(&empty)]).expect(0);

    // No manifest: an empty location, and one that does not exist (which is not created).
    let nothing = tmp.path().join("nothing");
    std::fs::create_dir(&nothing).unwrap();
    let missing = tmp.path().join("missing");
    for location in [&nothing, &missing] {
        let run = tidelog(&["archive-info", &file_url(location)]).expect(2);
        assert!(run.stdout.is_empty(), "{}", run.stdout);
        assert!(
            run.stderr.starts_with("tidelog: error: no archive at"),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains(s(location)), "{}", run.stderr);
        tidelog(&["archive-info", "--json", &file_url(location)]).expect(2);
        let run = tidelog(&[
            "restore",
            &file_url(location),
            s(&tmp.path().join("restored")),
        ])
        .expect(2);
        assert!(run.stderr.contains("no archive at"), "{}", run.stderr);
    }
    assert!(!missing.exists());
    assert!(!tmp.path().join("restored").exists());
    // Other objects, but no manifest.
    std::fs::write(nothing.join("notes.txt"), b"x").unwrap();
    let run = tidelog(&["archive-info", &file_url(&nothing)]).expect(2);
    assert!(run.stderr.contains("1 other object"), "{}", run.stderr);
    // Not a URL.
    let run = tidelog(&["archive-info", "some/dir"]).expect(2);
    assert!(run.stderr.contains("file:///"), "{}", run.stderr);
}

#[test]
fn info_shows_the_retention_floor_an_archive_leaves_and_checkpoints_keep_to_it() {
    let tmp = tempdir();
    let dir = make_log(&tmp.path().join("log"), RECORDS);
    let info = tidelog(&["info", "--json", s(&dir)]).expect(0).json();
    assert!(info["retention_floor"].is_null(), "{info}");
    let run = tidelog(&["info", s(&dir)]).expect(0);
    assert!(!run.stdout.contains("retention"), "{}", run.stdout);

    tidelog(&[
        "archive",
        s(&dir),
        &file_url(&tmp.path().join("archive")),
        "--once",
    ])
    .expect(0);
    let info = tidelog(&["info", "--json", s(&dir)]).expect(0).json();
    assert_eq!(info["retention_floor"], 301);
    let run = tidelog(&["info", s(&dir)]).expect(0);
    assert!(
        run.stdout.contains("retention    floor at LSN 301"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("checkpoints keep every segment from it on"),
        "{}",
        run.stdout
    );

    // Records not archived yet stay through a checkpoint past them.
    append_up_to(&dir, 600);
    tidelog(&["checkpoint", s(&dir), "550"]).expect(0);
    let info = tidelog(&["info", "--json", s(&dir)]).expect(0).json();
    assert_eq!(info["checkpoint_lsn"], 550);
    assert_eq!(info["retention_floor"], 301);
    let first = info["segments"][0]["first_lsn"].as_u64().unwrap();
    assert!(first <= 301, "{info}");
}

#[test]
fn info_names_the_segments_the_retention_floor_holds_back_below_the_checkpoint() {
    let tmp = tempdir();
    let dir = make_log(&tmp.path().join("log"), RECORDS);
    let url = file_url(&tmp.path().join("archive"));
    tidelog(&["archive", s(&dir), &url, "--once"]).expect(0);
    // The floor holds nothing back while the checkpoint is below it.
    let info = tidelog(&["info", "--json", s(&dir)]).expect(0).json();
    assert_eq!(info["retention_floor"], RECORDS + 1);
    assert_eq!(info["held_back"]["segments"], 0, "{info}");
    assert!(info["held_back"]["first_lsn"].is_null(), "{info}");
    let run = tidelog(&["info", s(&dir)]).expect(0);
    assert!(
        run.stdout.contains("held back    nothing now"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("sealed, held"), "{}", run.stdout);

    // Records not archived yet, and a checkpoint past them: the segments wholly below the
    // checkpoint that hold records from the floor on stay, held back by it alone.
    append_up_to(&dir, 600);
    tidelog(&["checkpoint", s(&dir), "550"]).expect(0);
    let info = tidelog(&["info", "--json", s(&dir)]).expect(0).json();
    assert_eq!(info["checkpoint_lsn"], 550);
    let held: Vec<&serde_json::Value> = info["segments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            let last = s["last_lsn"].as_u64().unwrap();
            s["state"] == "sealed" && last < 550 && last > RECORDS
        })
        .collect();
    assert!(held.len() >= 2, "{info}");
    for s in info["segments"].as_array().unwrap() {
        let is_held = held.iter().any(|h| h["path"] == s["path"]);
        assert_eq!(s["held"], is_held, "{s}");
    }
    let bytes: u64 = held.iter().map(|s| s["bytes"].as_u64().unwrap()).sum();
    let (first, last) = (
        held[0]["first_lsn"].as_u64().unwrap(),
        held[held.len() - 1]["last_lsn"].as_u64().unwrap(),
    );
    assert!(first <= RECORDS + 1, "{info}");
    assert_eq!(
        info["held_back"],
        serde_json::json!({
            "segments": held.len(),
            "bytes": bytes,
            "first_lsn": first,
            "last_lsn": last,
            "paths": held.iter().map(|s| s["path"].clone()).collect::<Vec<_>>(),
        }),
        "{info}"
    );
    let run = tidelog(&["info", s(&dir)]).expect(0);
    for text in [
        format!("held back    {} segments, ", held.len()),
        format!("(LSN {first}..={last}, below the checkpoint at 550): they hold records not"),
    ] {
        assert!(run.stdout.contains(&text), "{text:?} in\n{}", run.stdout);
    }
    for s in &held {
        let path = PathBuf::from(s["path"].as_str().unwrap());
        let name = path.file_name().unwrap().to_str().unwrap();
        let line = run.stdout.lines().find(|l| l.starts_with(name));
        assert!(
            line.is_some_and(|l| l.ends_with("sealed, held")),
            "{name} marked held in\n{}",
            run.stdout
        );
    }

    // Archived: the floor moves past them, which lets them go.
    tidelog(&["archive", s(&dir), &url, "--once"]).expect(0);
    let info = tidelog(&["info", "--json", s(&dir)]).expect(0).json();
    assert_eq!(info["retention_floor"], 601);
    assert_eq!(info["held_back"]["segments"], 0, "{info}");
    for s in &held {
        assert!(!Path::new(s["path"].as_str().unwrap()).exists(), "{s}");
    }
}

#[test]
fn archive_without_once_waits_for_a_log_in_use_and_archives_what_comes() {
    let tmp = tempdir();
    let dir = make_log(&tmp.path().join("log"), 20);
    let url = file_url(&tmp.path().join("archive"));
    // A writer has the log open: the archiver says so once and waits.
    let writer = Log::builder(&dir)
        .segment_bytes(SEGMENT_BYTES)
        .open()
        .unwrap();
    let mut child = Command::new(BIN)
        .args(["archive", s(&dir), &url, "--interval", "0.1", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = |pipe: Box<dyn Read + Send>| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                if tx.send(line.unwrap()).is_err() {
                    break;
                }
            }
        });
        rx
    };
    let stdout = lines(Box::new(child.stdout.take().unwrap()));
    let stderr = lines(Box::new(child.stderr.take().unwrap()));
    // Generous limits that only a broken archiver ever reaches.
    let note = stderr.recv_timeout(Duration::from_secs(60)).unwrap();
    assert!(note.contains("open for writing"), "{note}");
    for lsn in 21..=40 {
        writer.append(&payload(lsn), Durability::Synced).unwrap();
    }
    writer.close().unwrap();
    let pass: serde_json::Value =
        serde_json::from_str(&stdout.recv_timeout(Duration::from_secs(60)).unwrap()).unwrap();
    assert_eq!(pass["archived_lsn"], 40, "{pass}");
    // More records, once the log is free between two passes.
    let mut more = None;
    for _ in 0..600 {
        match Log::builder(&dir).segment_bytes(SEGMENT_BYTES).open() {
            Ok(log) => {
                more = Some(log);
                break;
            }
            Err(tidelog::Error::Locked { .. }) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("{e}"),
        }
    }
    let log = more.expect("the archiver let go of the log between passes");
    for lsn in 41..=50 {
        log.append(&payload(lsn), Durability::Synced).unwrap();
    }
    log.close().unwrap();
    let pass: serde_json::Value =
        serde_json::from_str(&stdout.recv_timeout(Duration::from_secs(60)).unwrap()).unwrap();
    assert_eq!(pass["archived_lsn"], 50, "{pass}");
    assert_eq!(pass["generation"], 2, "{pass}");
    child.kill().unwrap();
    child.wait().unwrap();
    // Said once for each time the log was found in use (here at most once more, while the test
    // appended), however many passes found it so.
    let notes = stderr
        .try_iter()
        .filter(|l| l.contains("open for writing"))
        .count();
    assert!(notes <= 1, "{notes} notes");
    let info = tidelog(&["archive-info", "--json", &url]).expect(0).json();
    assert_eq!(info["last_lsn"], 50);
}

// ---------------------------------------------------------------------------------------------
// Archives: follow, prune, fencing and fast-forward
// ---------------------------------------------------------------------------------------------

/// The log id `tidelog info` shows for the log in `dir`.
fn log_id_of(dir: &Path) -> String {
    tidelog(&["info", "--json", s(dir)]).expect(0).json()["log_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Appends `records` to the log in `dir`, each synced, and returns the LSN of the first.
fn append_records(dir: &Path, records: &[Vec<u8>]) -> u64 {
    let log = Log::builder(dir)
        .segment_bytes(SEGMENT_BYTES)
        .open()
        .unwrap();
    let first = log.last_lsn().get() + 1;
    for record in records {
        log.append(record, Durability::Synced).unwrap();
    }
    log.close().unwrap();
    first
}

/// The LSNs of the records `tidelog follow` printed as text, one line each.
fn lsns_of_lines(stdout: &str) -> Vec<u64> {
    stdout
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn follow_with_count_prints_exactly_the_archived_records_in_order_as_text_and_json() {
    let tmp = tempdir();
    let dir = make_log(&tmp.path().join("log"), RECORDS);
    let store = tmp.path().join("archive");
    let url = file_url(&store);
    tidelog(&["archive", s(&dir), &url, "--once"]).expect(0);

    // Text: the lines of `dump`, every record from the archive's first.
    let run = tidelog(&["follow", &url, "--count", &RECORDS.to_string()]).expect(0);
    assert_eq!(
        lsns_of_lines(&run.stdout),
        (1..=RECORDS).collect::<Vec<_>>()
    );
    let dumped = tidelog(&["dump", s(&dir)]).expect(0);
    assert_eq!(run.stdout, dumped.stdout);
    // JSON, from an LSN: each record once, in order, with the payload `dump` gives.
    let lines = tidelog(&["follow", &url, "--from", "250", "--count", "51", "--json"])
        .expect(0)
        .json_lines();
    assert_eq!(lines.len(), 51);
    for (line, lsn) in lines.iter().zip(250..) {
        assert_eq!(line["lsn"], lsn, "{line}");
        assert_eq!(line["text"], String::from_utf8(payload(lsn)).unwrap());
        assert_eq!(line["size"], payload(lsn).len());
        assert!(line["time_ms"].as_u64().unwrap() > 0, "{line}");
        assert_eq!(line["batch"], "single");
    }
    let hex = tidelog(&["follow", &url, "--from", "7", "--count", "1", "--json"])
        .expect(0)
        .json();
    let hex_line = tidelog(&[
        "follow",
        &url,
        "--from",
        "7",
        "--count",
        "1",
        "--json",
        "--payload",
        "hex",
    ])
    .expect(0)
    .json();
    assert_eq!(hex["lsn"], hex_line["lsn"]);
    assert!(
        hex_line["hex"]
            .as_str()
            .unwrap()
            .starts_with("7265636f7264")
    );
    tidelog(&["follow", &url, "--count", "0"]).expect(0);
    // A follower that exits by itself takes its reader's lease with it.
    let info = tidelog(&["archive-info", "--json", &url]).expect(0).json();
    assert_eq!(info["readers"].as_array().unwrap().len(), 0, "{info}");

    // Live: records archived while it waits come out after the ones already there.
    let mut child = Command::new(BIN)
        .args(["follow", &url, "--from", "296", "--count", "10", "--json"])
        .args(["--poll-ms", "20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    // A generous limit that only a broken follower ever reaches.
    let next = || -> serde_json::Value {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("follow printed a record");
        serde_json::from_str(&line).unwrap()
    };
    for lsn in 296..=300 {
        assert_eq!(next()["lsn"], lsn);
    }
    append_up_to(&dir, 310);
    tidelog(&["archive", s(&dir), &url, "--once"]).expect(0);
    for lsn in 301..=305 {
        let record = next();
        assert_eq!(record["lsn"], lsn);
        assert_eq!(record["text"], String::from_utf8(payload(lsn)).unwrap());
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(rx.recv().is_err(), "nothing after the tenth record");

    // Errors: an archive that is not there, an LSN that is not one.
    let run = tidelog(&[
        "follow",
        &file_url(&tmp.path().join("missing")),
        "--count",
        "1",
    ]);
    let run = run.expect(2);
    assert!(run.stderr.contains("no archive at"), "{}", run.stderr);
    tidelog(&["follow", &url, "--from", "x"]).expect(2);
    tidelog(&["follow", &url, "--poll-ms", "0"]).expect(2);
}

#[test]
fn prune_below_removes_objects_and_a_restore_afterwards_starts_at_the_new_first_lsn() {
    let tmp = tempdir();
    let dir = make_log(&tmp.path().join("log"), RECORDS);
    let log_id = log_id_of(&dir);
    let store = tmp.path().join("archive");
    let url = file_url(&store);
    tidelog(&["archive", s(&dir), &url, "--once"]).expect(0);
    let before = tidelog(&["archive-info", "--json", &url]).expect(0).json();
    let objects = before["objects"].as_array().unwrap().clone();
    let gone: Vec<&serde_json::Value> = objects
        .iter()
        .filter(|o| o["last_lsn"].as_u64().unwrap() < 150)
        .collect();
    assert!(gone.len() >= 2, "{before}");
    let first = objects[gone.len()]["first_lsn"].as_u64().unwrap();
    assert!(first > 1 && first <= 150, "{before}");

    // A reader in progress (a follower of this process, reading the first object) holds its
    // LSN: archive-info shows its lease, and prune removes nothing from there on.
    let mut follower = tidelog_archive::Follower::new(
        tidelog_archive::Store::from_url(&url).unwrap(),
        tidelog_archive::FollowOptions::default(),
    )
    .unwrap();
    assert_eq!(follower.try_next().unwrap().unwrap().lsn().get(), 1);
    let info = tidelog(&["archive-info", "--json", &url]).expect(0).json();
    let readers = info["readers"].as_array().unwrap();
    assert_eq!(readers.len(), 1, "{info}");
    assert_eq!(readers[0]["lsn"], 1);
    assert!(
        readers[0]["holder"].as_str().unwrap().contains(" pid "),
        "{info}"
    );
    assert!(readers[0]["age_seconds"].as_f64().unwrap() >= 0.0, "{info}");
    let run = tidelog(&["archive-info", &url]).expect(0);
    for text in ["readers: 1 lease", " pid ", " ago", "readers/"] {
        assert!(run.stdout.contains(text), "{text:?} in\n{}", run.stdout);
    }
    let held = unchanged(&store, || tidelog(&["prune", &url, "--below", "150"])).expect(0);
    for text in [
        "nothing removed",
        "starts at LSN 1",
        "held back",
        "holds LSN 1",
    ] {
        assert!(held.stdout.contains(text), "{text:?} in\n{}", held.stdout);
    }
    let held = tidelog(&["prune", &url, "--below", "150", "--json"])
        .expect(0)
        .json();
    assert_eq!(held["removed"], 0);
    assert_eq!(held["reader_lsn"], 1);
    assert_eq!(held["first_lsn"], 1);
    drop(follower);

    // The reader gone: the objects wholly below LSN 150 go, and only they.
    let pruned = tidelog(&["prune", &url, "--below", "150", "--json"])
        .expect(0)
        .json();
    assert_eq!(pruned["removed"], gone.len(), "{pruned}");
    let bytes: u64 = gone.iter().map(|o| o["bytes"].as_u64().unwrap()).sum();
    assert_eq!(pruned["removed_bytes"], bytes);
    assert_eq!(pruned["first_lsn"], first);
    assert!(pruned["reader_lsn"].is_null(), "{pruned}");
    assert_eq!(pruned["kept_for_readers"], 0);
    for o in &gone {
        let name = o["name"].as_str().unwrap();
        assert!(!store.join(name).exists(), "{name} removed");
    }
    let after = tidelog(&["archive-info", "--json", &url]).expect(0).json();
    assert_eq!(after["first_lsn"], first);
    // What a prune removed below the first LSN is no gap.
    assert_eq!(after["gaps"], serde_json::json!([]), "{after}");
    assert_eq!(after["last_lsn"], RECORDS);
    assert_eq!(
        after["objects"].as_array().unwrap().len(),
        objects.len() - gone.len()
    );

    // A restore starts at the new first LSN; a follower from the start too, and one from
    // before it is refused.
    let restored = tmp.path().join("restored");
    tidelog(&["restore", &url, s(&restored)]).expect(0);
    assert_restored(&restored, &log_id, first, RECORDS);
    let run = tidelog(&["follow", &url, "--count", "1"]).expect(0);
    assert_eq!(lsns_of_lines(&run.stdout), [first]);
    let run = tidelog(&["follow", &url, "--from", "1", "--count", "1"]).expect(2);
    assert!(
        run.stderr.contains("missing records 1..="),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("tidelog: hint:"), "{}", run.stderr);

    // Nothing is old enough, and nothing below the first LSN is left: both remove nothing.
    let run = tidelog(&["prune", &url, "--older-than", "7d"]).expect(0);
    assert!(run.stdout.contains("nothing removed"), "{}", run.stdout);
    let again = tidelog(&["prune", &url, "--below", "150", "--json", "--no-fencing"])
        .expect(0)
        .json();
    assert_eq!(again["removed"], 0);
    assert_eq!(again["fencing"], false);
    // Exactly one target, as an LSN or an age.
    tidelog(&["prune", &url]).expect(2);
    tidelog(&["prune", &url, "--below", "5", "--older-than", "1d"]).expect(2);
    let run = tidelog(&["prune", &url, "--older-than", "a while"]).expect(2);
    assert!(run.stderr.contains("15m"), "{}", run.stderr);
    let run = tidelog(&[
        "prune",
        &file_url(&tmp.path().join("missing")),
        "--below",
        "5",
    ]);
    assert!(run.expect(2).stderr.contains("no archive at"));
}

#[test]
fn archive_info_shows_the_manifest_the_generation_and_its_holder_as_text_and_json() {
    let tmp = tempdir();
    let dir = make_log(&tmp.path().join("log"), 50);
    let store = tmp.path().join("archive");
    let url = file_url(&store);
    let first = tidelog(&["archive", s(&dir), &url, "--once", "--json"])
        .expect(0)
        .json();
    assert_eq!(first["generation"], 1);
    assert_eq!(first["fencing"], true);
    assert!(first["fast_forward"].is_null(), "{first}");
    let holder = first["holder"].as_str().unwrap().to_owned();
    assert!(holder.contains(" pid "), "{holder}");

    let info = tidelog(&["archive-info", "--json", &url]).expect(0).json();
    assert_eq!(info["generation"], 1);
    assert_eq!(info["holder"], holder.as_str());
    let seq = info["seq"].as_u64().unwrap();
    let name = format!("manifests/{seq:020}.json");
    assert_eq!(info["manifest"], name.as_str());
    assert!(store.join(&name).is_file(), "{name}");
    assert!(
        !store
            .join(format!("manifests/{:020}.json", seq + 1))
            .exists()
    );
    assert!(!store.join("manifest.json").exists());
    assert_eq!(info["readers"].as_array().unwrap().len(), 0);
    let run = tidelog(&["archive-info", &url]).expect(0);
    for text in [
        format!("manifest     {seq} ({name}, the newest of the chain)"),
        format!("generation   1, held by {holder}"),
        "readers: none".to_owned(),
    ] {
        assert!(run.stdout.contains(&text), "{text:?} in\n{}", run.stdout);
    }

    // The next run claims the next generation, as another holder; without fencing too.
    let run = tidelog(&["archive", s(&dir), &url, "--once", "--no-fencing"]).expect(0);
    assert!(run.stdout.contains("fencing off"), "{}", run.stdout);
    assert!(
        run.stdout.contains("generation 2 claimed as "),
        "{}",
        run.stdout
    );
    let info = tidelog(&["archive-info", "--json", &url]).expect(0).json();
    assert_eq!(info["generation"], 2);
    assert_ne!(info["holder"], holder.as_str());
    assert!(info["seq"].as_u64().unwrap() > seq, "{info}");
    let run = tidelog(&["archive-info", &url]).expect(0);
    assert!(
        run.stdout.contains(&format!(
            "generation   2, held by {}",
            info["holder"].as_str().unwrap()
        )),
        "{}",
        run.stdout
    );
}

#[test]
fn archive_info_shows_a_gap_in_the_manifest_as_text_and_json_and_restore_refuses_it() {
    let tmp = tempdir();
    let dir = make_log(&tmp.path().join("log"), RECORDS);
    let store = tmp.path().join("archive");
    let url = file_url(&store);
    tidelog(&["archive", s(&dir), &url, "--once"]).expect(0);
    let info = tidelog(&["archive-info", "--json", &url]).expect(0).json();
    let seq = info["seq"].as_u64().unwrap();

    // The next manifest of the chain, without the second object: a hole in the archive.
    let newest = store.join(format!("manifests/{seq:020}.json"));
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&newest).unwrap()).unwrap();
    let objects = manifest["objects"].as_array_mut().unwrap();
    assert!(objects.len() > 2, "{manifest}");
    let gone = objects.remove(1);
    let (first, last) = (
        gone["first_lsn"].as_u64().unwrap(),
        gone["last_lsn"].as_u64().unwrap(),
    );
    manifest["seq"] = serde_json::json!(seq + 1);
    std::fs::write(
        store.join(format!("manifests/{:020}.json", seq + 1)),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();

    let run = tidelog(&["archive-info", &url]).expect(0);
    for text in [
        "gaps         1 (".to_owned(),
        format!(
            "  LSN {first}..={last} ({} records): no object of the manifest holds them",
            last + 1 - first
        ),
        "unreferenced: 1 object".to_owned(),
    ] {
        assert!(run.stdout.contains(&text), "{text:?} in\n{}", run.stdout);
    }
    let info = tidelog(&["archive-info", "--json", &url]).expect(0).json();
    assert_eq!(
        info["gaps"],
        serde_json::json!([{
            "first_lsn": first,
            "last_lsn": last,
            "records": last + 1 - first,
            "cause": "hole",
            "object": null,
        }]),
        "{info}"
    );
    assert_eq!(info["first_lsn"], 1);
    assert_eq!(info["last_lsn"], RECORDS);

    // A restore still refuses the archive, naming the missing records.
    let restored = tmp.path().join("restored");
    let run = tidelog(&["restore", &url, s(&restored)]).expect(2);
    assert!(
        run.stderr
            .contains(&format!("missing records {first}..={last}")),
        "{}",
        run.stderr
    );

    // An object the manifest names that the store lost is a gap too, named.
    let tail = manifest["objects"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    let tail_name = tail["name"].as_str().unwrap();
    std::fs::remove_file(store.join(tail_name)).unwrap();
    let info = tidelog(&["archive-info", "--json", &url]).expect(0).json();
    let gaps = info["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 2, "{info}");
    assert_eq!(gaps[1]["first_lsn"], tail["first_lsn"]);
    assert_eq!(gaps[1]["last_lsn"], tail["last_lsn"]);
    assert_eq!(gaps[1]["cause"], "missing object");
    assert_eq!(gaps[1]["object"], tail_name);
    let run = tidelog(&["archive-info", &url]).expect(0);
    assert!(
        run.stdout.contains(&format!(
            "the manifest names {tail_name}, which the store does not hold"
        )),
        "{}",
        run.stdout
    );
}

#[test]
fn archive_fast_forward_pulls_the_records_an_older_restored_copy_misses() {
    let tmp = tempdir();
    let dir = make_log(&tmp.path().join("log"), RECORDS);
    let log_id = log_id_of(&dir);
    let url = file_url(&tmp.path().join("archive"));
    tidelog(&["archive", s(&dir), &url, "--once"]).expect(0);
    let copy = tmp.path().join("copy");
    tidelog(&["restore", &url, s(&copy)]).expect(0);
    // The original goes on and archives 40 more records.
    append_up_to(&dir, 340);
    tidelog(&["archive", s(&dir), &url, "--once"]).expect(0);

    // The copy is behind its archive: refused, with the way out.
    let run = unchanged(&copy, || tidelog(&["archive", s(&copy), &url, "--once"])).expect(2);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    for text in [
        "tidelog: error: cannot start archiving",
        "past the log's last record 300",
        "tidelog: hint:",
        "--fast-forward",
    ] {
        assert!(run.stderr.contains(text), "{text:?} in\n{}", run.stderr);
    }
    // With --fast-forward it pulls them, then archives as the archive's new writer.
    let pass = tidelog(&[
        "archive",
        s(&copy),
        &url,
        "--once",
        "--fast-forward",
        "--json",
    ])
    .expect(0)
    .json();
    assert_eq!(pass["fast_forward"]["records"], 40, "{pass}");
    assert!(
        pass["fast_forward"]["objects"].as_u64().unwrap() >= 1,
        "{pass}"
    );
    assert_eq!(pass["fast_forward"]["last_lsn"], 340);
    assert_eq!(pass["archived_lsn"], 340);
    assert_eq!(pass["last_lsn"], 340);
    assert_eq!(pass["generation"], 3);
    assert_restored(&copy, &log_id, 1, 340);
    // Up to date: nothing more to pull, and it archives what it appends.
    let run = tidelog(&["archive", s(&copy), &url, "--once", "--fast-forward"]).expect(0);
    assert!(
        run.stdout.contains("at the archive's end already"),
        "{}",
        run.stdout
    );
    append_up_to(&copy, 350);
    let pass = tidelog(&["archive", s(&copy), &url, "--once", "--json"])
        .expect(0)
        .json();
    assert_eq!(pass["archived_lsn"], 350);
    let restored = tmp.path().join("restored");
    tidelog(&["restore", &url, s(&restored)]).expect(0);
    assert_restored(&restored, &log_id, 1, 350);

    // The text report says what was pulled.
    let older = tmp.path().join("older");
    tidelog(&["restore", &url, s(&older), "--lsn", "320"]).expect(0);
    let run = tidelog(&["archive", s(&older), &url, "--once", "--fast-forward"]).expect(0);
    assert!(run.stdout.contains("pulled 30 records"), "{}", run.stdout);
    assert!(run.stdout.contains("up to LSN 350"), "{}", run.stdout);
}

#[test]
fn archiving_a_log_that_diverged_from_its_archive_is_refused_with_the_ways_out() {
    let tmp = tempdir();
    let dir = make_log(&tmp.path().join("log"), RECORDS);
    let store = tmp.path().join("archive");
    let url = file_url(&store);
    tidelog(&["archive", s(&dir), &url, "--once"]).expect(0);
    // Two copies from one restored base, each written since, with other records.
    let (first, second) = (tmp.path().join("first"), tmp.path().join("second"));
    tidelog(&["restore", &url, s(&first)]).expect(0);
    tidelog(&["restore", &url, s(&second)]).expect(0);
    let mine = |who: &str| -> Vec<Vec<u8>> {
        (301..=310)
            .map(|lsn| format!("{who} wrote {lsn}").into_bytes())
            .collect()
    };
    assert_eq!(append_records(&first, &mine("first")), 301);
    assert_eq!(append_records(&second, &mine("second")), 301);
    let pass = tidelog(&["archive", s(&first), &url, "--once", "--json"])
        .expect(0)
        .json();
    assert_eq!(pass["archived_lsn"], 310);

    // The second is refused: nothing is merged, neither it nor the archive changes.
    let objects = archive_objects(&store);
    let run = unchanged(&second, || {
        tidelog(&["archive", s(&second), &url, "--once"])
    })
    .expect(2);
    assert_eq!(archive_objects(&store), objects);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    for text in [
        format!("tidelog: error: cannot start archiving {}", s(&second)),
        "diverged at LSN 301".to_owned(),
        "tidelog: hint:".to_owned(),
        format!("tidelog restore {url} NEW_DIR"),
        "another prefix".to_owned(),
        format!("tidelog archive {} NEW_URL", s(&second)),
    ] {
        assert!(run.stderr.contains(&text), "{text:?} in\n{}", run.stderr);
    }
    // A fast-forward would merge too: refused the same way.
    let run = unchanged(&second, || {
        tidelog(&["archive", s(&second), &url, "--once", "--fast-forward"])
    })
    .expect(2);
    assert!(run.stderr.contains("diverged at LSN 301"), "{}", run.stderr);
    assert!(run.stderr.contains("NEW_DIR"), "{}", run.stderr);

    // The ways out work: the archive restored (the first's records), or a new location.
    let restored = tmp.path().join("restored");
    tidelog(&["restore", &url, s(&restored)]).expect(0);
    let line = tidelog(&[
        "dump",
        s(&restored),
        "--from",
        "301",
        "--limit",
        "1",
        "--json",
    ])
    .expect(0)
    .json();
    assert_eq!(line["text"], "first wrote 301");
    let elsewhere = file_url(&tmp.path().join("archive-second"));
    let pass = tidelog(&["archive", s(&second), &elsewhere, "--once", "--json"])
        .expect(0)
        .json();
    assert_eq!(pass["archived_lsn"], 310);
    assert_eq!(pass["generation"], 1);
}

// ---------------------------------------------------------------------------------------------
// Sharded logs: info, verify and dump of a sharded root
// ---------------------------------------------------------------------------------------------

/// Shards of the sharded logs the tests build.
const SHARDS: usize = 3;

/// The payload the tests append to `shard` in `epoch`, the `n`-th there.
fn sharded_payload(epoch: u64, shard: usize, n: u64) -> Vec<u8> {
    format!("epoch {epoch} shard {shard} record {n:03} ........").into_bytes()
}

/// A record of a sharded log as replay gives it: epoch, shard, LSN and payload.
type ShardedEntry = (u64, usize, u64, Vec<u8>);

/// A sharded log of `SHARDS` shards over three epochs, its shards written in turn, each epoch
/// ended by a barrier; shard 2 gets nothing in epoch 2. Returns its records in replay order.
fn make_sharded_log(root: &Path) -> Vec<ShardedEntry> {
    let mut options = tidelog::Options::default();
    options.segment_bytes = SEGMENT_BYTES;
    let log = ShardedLog::builder(root)
        .shards(SHARDS)
        .options(options)
        .open()
        .unwrap();
    let mut records = Vec::new();
    for epoch in 1..=3 {
        assert_eq!(log.epoch(), epoch);
        let count = |shard: usize| {
            if (epoch, shard) == (2, 2) {
                0
            } else {
                30 + 20 * shard as u64 + 5 * epoch
            }
        };
        for n in 0..count(SHARDS - 1).max(count(1)) {
            for shard in (0..SHARDS).filter(|&shard| n < count(shard)) {
                let data = sharded_payload(epoch, shard, n);
                let (e, lsn) = log.append(shard, &data, Durability::Buffered).unwrap();
                assert_eq!(e, epoch);
                records.push((e, shard, lsn.get(), data));
            }
        }
        if epoch < 3 {
            log.barrier(epoch).unwrap();
        }
    }
    log.close().unwrap();
    records.sort_by_key(|&(epoch, shard, lsn, _)| (epoch, shard, lsn));
    records
}

/// The records of `shard` in `records`.
fn of_shard(records: &[ShardedEntry], shard: usize) -> Vec<&ShardedEntry> {
    records.iter().filter(|r| r.1 == shard).collect()
}

#[test]
fn info_of_a_sharded_root_shows_its_epoch_and_every_shard() {
    let tmp = tempdir();
    let root = tmp.path().join("sharded");
    let records = make_sharded_log(&root);
    let run = unchanged(&root, || tidelog(&["info", s(&root)])).expect(0);
    for line in [
        "sharded log",
        "shards        3",
        "epoch         3 (appends go to it)",
        "cut short     none",
        "epoch journal",
        "recovery: clean in every shard and the epoch journal",
    ] {
        assert!(run.stdout.contains(line), "{line:?} in\n{}", run.stdout);
    }
    for shard in 0..SHARDS {
        let last = of_shard(&records, shard).len();
        let row = run
            .stdout
            .lines()
            .find(|l| l.contains(&format!("shard-{shard:04}")))
            .unwrap_or_else(|| panic!("no row for shard {shard} in\n{}", run.stdout));
        assert!(row.contains(&format!("1..={last}")), "{row}");
    }
    assert!(
        run.stdout
            .lines()
            .any(|l| l.trim_start().starts_with("total") && l.contains(&records.len().to_string())),
        "{}",
        run.stdout
    );

    let info = unchanged(&root, || tidelog(&["info", "--json", s(&root)]))
        .expect(0)
        .json();
    assert_eq!(info["sharded"], true);
    assert_eq!(info["shard_count"], SHARDS);
    assert_eq!(info["epoch"], 3);
    assert_eq!(info["clamped"], serde_json::json!([]));
    assert_eq!(info["records"], records.len());
    let shards = info["shards"].as_array().unwrap();
    assert_eq!(shards.len(), SHARDS);
    let mut segments = 0;
    for (i, shard) in shards.iter().enumerate() {
        let last = of_shard(&records, i).len();
        assert_eq!(shard["shard"], i);
        assert!(
            shard["dir"]
                .as_str()
                .unwrap()
                .ends_with(&format!("shard-{i:04}")),
            "{shard}"
        );
        assert_eq!(shard["first_lsn"], 1);
        assert_eq!(shard["last_lsn"], last);
        assert_eq!(shard["durable_lsn"], last);
        assert_eq!(shard["records"], last);
        assert!(shard["segments"].as_u64().unwrap() >= 1, "{shard}");
        assert!(shard["bytes"].as_u64().unwrap() > 0, "{shard}");
        segments += shard["segments"].as_u64().unwrap();
    }
    assert!(
        shards[2]["segments"].as_u64().unwrap() > 1,
        "small segments roll"
    );
    assert_eq!(info["segments"], segments);
    assert_eq!(info["epochs"]["records"], 3, "one epoch start per epoch");
    assert_eq!(
        info["synced_positions"],
        serde_json::json!(
            (0..SHARDS)
                .map(|i| of_shard(&records, i).len())
                .collect::<Vec<_>>()
        )
    );
}

/// Flips one byte of the payload of `data` in shard `shard`'s segments; returns the segment.
fn flip_sharded_payload(root: &Path, shard: usize, data: &[u8]) -> PathBuf {
    for path in segments(&root.join(format!("shard-{shard:04}"))) {
        let bytes = std::fs::read(&path).unwrap();
        if let Some(at) = bytes.windows(data.len()).position(|w| w == data) {
            write_at(&path, &[bytes[at + 2] ^ 0x20], (at + 2) as u64);
            return path;
        }
    }
    panic!("payload not found in shard {shard}");
}

#[test]
fn verify_of_a_sharded_root_checks_every_shard_and_the_epoch_journal() {
    let tmp = tempdir();
    let root = tmp.path().join("sharded");
    let records = make_sharded_log(&root);
    let run = unchanged(&root, || tidelog(&["verify", s(&root)])).expect(0);
    for shard in 0..SHARDS {
        assert!(
            run.stdout.contains(&format!("shard {shard}: ")),
            "{}",
            run.stdout
        );
    }
    assert!(run.stdout.contains("epoch journal: "), "{}", run.stdout);
    assert_eq!(
        run.stdout.matches("OK: no damage found").count(),
        SHARDS + 2,
        "each log and the whole: {}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!(
            "OK: no damage found in {SHARDS} shards and the epoch journal ({} records",
            records.len()
        )),
        "{}",
        run.stdout
    );
    let v = tidelog(&["verify", "--json", s(&root)]).expect(0).json();
    assert_eq!(v["ok"], true);
    assert_eq!(v["sharded"], true);
    assert_eq!(v["records_read"], records.len());
    assert_eq!(v["epochs"]["ok"], true);
    assert_eq!(v["epochs"]["records_read"], 3);
    for (i, shard) in v["shards"].as_array().unwrap().iter().enumerate() {
        assert_eq!(shard["ok"], true);
        assert_eq!(shard["records_read"], of_shard(&records, i).len());
    }

    // A flipped byte in a sealed segment of shard 1.
    let damaged = flip_sharded_payload(&root, 1, &sharded_payload(1, 1, 5));
    let shard1 = segments(&root.join("shard-0001"));
    assert_ne!(&damaged, shard1.last().unwrap(), "a sealed segment");
    let run = unchanged(&root, || tidelog(&["verify", s(&root)])).expect(1);
    assert!(run.stdout.contains("checksum"), "{}", run.stdout);
    assert!(run.stdout.contains("1 records lost"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("DAMAGED: shard 1 (each is shown above)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!(
            "`tidelog recover {}`",
            s(&root.join("shard-0001"))
        )),
        "{}",
        run.stdout
    );
    let v = tidelog(&["verify", "--json", s(&root)]).expect(1).json();
    assert_eq!(v["ok"], false);
    assert_eq!(v["records_read"], records.len() - 1);
    let shards = v["shards"].as_array().unwrap();
    assert_eq!(shards[0]["ok"], true);
    assert_eq!(shards[1]["ok"], false);
    assert_eq!(shards[1]["report"]["damage"][0]["kind"], "FrameChecksum");
    assert_eq!(shards[2]["ok"], true);
    assert_eq!(v["epochs"]["ok"], true);

    // A missing shard: the sharded log does not open, and the shards that are there are
    // verified.
    std::fs::remove_dir_all(root.join("shard-0001")).unwrap();
    let run = tidelog(&["verify", s(&root)]).expect(1);
    assert!(run.stdout.contains("is missing"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("DAMAGED: the sharded log does not open (each is shown above)"),
        "{}",
        run.stdout
    );
    let v = tidelog(&["verify", "--json", s(&root)]).expect(1).json();
    assert_eq!(v["ok"], false);
    assert!(
        v["open_error"].as_str().unwrap().contains("is missing"),
        "{v}"
    );
    let shards = v["shards"].as_array().unwrap();
    assert_eq!(shards.len(), SHARDS - 1);
    assert!(shards.iter().all(|shard| shard["ok"] == true), "{v}");
}

#[test]
fn dump_of_a_sharded_root_is_its_replay_in_epoch_shard_lsn_order() {
    let tmp = tempdir();
    let root = tmp.path().join("sharded");
    let records = make_sharded_log(&root);
    let entry = |v: &serde_json::Value| -> ShardedEntry {
        (
            v["epoch"].as_u64().unwrap(),
            usize::try_from(v["shard"].as_u64().unwrap()).unwrap(),
            v["lsn"].as_u64().unwrap(),
            v["text"].as_str().unwrap().as_bytes().to_vec(),
        )
    };
    let dumped: Vec<ShardedEntry> = unchanged(&root, || tidelog(&["dump", "--json", s(&root)]))
        .expect(0)
        .json_lines()
        .iter()
        .map(entry)
        .collect();
    assert_eq!(dumped, records);

    // Text: epoch, shard, LSN, then what dump shows of any record.
    let run = tidelog(&["dump", s(&root)]).expect(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), records.len());
    for (line, (epoch, shard, lsn, data)) in lines.iter().zip(&records) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            fields[..4],
            [
                epoch.to_string().as_str(),
                shard.to_string().as_str(),
                lsn.to_string().as_str(),
                "single"
            ],
            "{line}"
        );
        assert!(line.ends_with(std::str::from_utf8(data).unwrap()), "{line}");
    }

    // One shard, with its epochs; LSN bounds and a limit.
    let one: Vec<ShardedEntry> = tidelog(&["dump", "--json", "--shard", "1", s(&root)])
        .expect(0)
        .json_lines()
        .iter()
        .map(entry)
        .collect();
    let expected: Vec<ShardedEntry> = of_shard(&records, 1).into_iter().cloned().collect();
    assert_eq!(one, expected);
    assert!(one.iter().any(|r| r.0 == 1) && one.iter().any(|r| r.0 == 3));
    let some: Vec<ShardedEntry> = tidelog(&[
        "dump",
        "--json",
        "--shard",
        "1",
        "--from",
        "50",
        "--to",
        "120",
        s(&root),
    ])
    .expect(0)
    .json_lines()
    .iter()
    .map(entry)
    .collect();
    let expected: Vec<ShardedEntry> = of_shard(&records, 1)
        .into_iter()
        .filter(|r| (50..=120).contains(&r.2))
        .cloned()
        .collect();
    assert_eq!(some, expected);
    assert!(
        some.iter()
            .map(|r| r.0)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            > 1
    );
    let first = tidelog(&["dump", "--json", "--limit", "5", s(&root)])
        .expect(0)
        .json_lines();
    assert_eq!(first.iter().map(entry).collect::<Vec<_>>(), records[..5]);
    let none = tidelog(&["dump", "--shard", "2", "--limit", "0", s(&root)]).expect(0);
    assert!(none.stdout.is_empty(), "{}", none.stdout);

    // What does not apply to a sharded root is refused, saying why.
    for (args, says) in [
        (vec!["--frames"], "shard-0000"),
        (vec!["--stats"], "shard-0000"),
        (vec!["--from", "5"], "--shard"),
        (vec!["--shard", "3"], "no shard 3"),
    ] {
        let mut argv = vec!["dump", s(&root)];
        argv.extend(args.iter().copied());
        let run = tidelog(&argv).expect(2);
        assert!(run.stderr.contains(says), "{argv:?}: {}", run.stderr);
    }
    // --shard on one log.
    let plain = make_log(&tmp.path().join("log"), 5);
    let run = tidelog(&["dump", "--shard", "0", s(&plain)]).expect(2);
    assert!(run.stderr.contains("not the root of one"), "{}", run.stderr);
}

#[test]
fn commands_on_one_log_refuse_a_sharded_root_and_change_nothing() {
    let tmp = tempdir();
    let root = tmp.path().join("sharded");
    make_sharded_log(&root);
    unchanged(&root, || {
        let run = tidelog_with_stdin(&["append", s(&root)], b"one\ntwo\n").expect(2);
        assert!(
            run.stderr.contains("root of a sharded log"),
            "{}",
            run.stderr
        );
        for args in [
            vec!["tail", s(&root)],
            vec!["recover", s(&root)],
            vec!["checkpoint", s(&root), "2"],
        ] {
            let run = tidelog(&args).expect(2);
            assert!(
                run.stderr.contains("root of a sharded log"),
                "{args:?}: {}",
                run.stderr
            );
        }
    });
    // A shard's directory is an ordinary log.
    let run = tidelog(&["info", s(&root.join("shard-0000"))]).expect(0);
    assert!(run.stdout.contains("log id"), "{}", run.stdout);
}

/// No credential appears in what the archive commands print, on success or failure, as text or
/// JSON: the credentials come from the environment, as people give them, with a recognisable
/// fake secret (the S3 test server takes any).
#[test]
fn the_archive_commands_never_print_the_credentials_they_were_given() {
    const SECRET: &str = "tidelogFAKEsecret5d81e0";
    let Ok(endpoint) = std::env::var("TIDELOG_TEST_S3_ENDPOINT") else {
        eprintln!("SKIPPED: TIDELOG_TEST_S3_ENDPOINT is not set");
        return;
    };
    let bucket = std::env::var("TIDELOG_TEST_S3_BUCKET").unwrap_or_else(|_| "tidelog-test".into());
    let env = [
        ("AWS_ACCESS_KEY_ID", "AKIATIDELOGFAKE0042"),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
        ("AWS_ENDPOINT", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false"),
    ];
    let tmp = tempdir();
    let dir = make_log(&tmp.path().join("log"), 50);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let url = format!("s3://{bucket}/cli-secrets-{}-{nanos}", std::process::id());
    let missing = "s3://tidelog-no-such-bucket/cli-secrets";
    let in_url = format!("s3://AKIATIDELOGFAKE0042:{SECRET}@{bucket}/cli-secrets-in-url");
    let unknown_scheme = format!("nosuchscheme://AKIATIDELOGFAKE0042:{SECRET}@{bucket}/x");
    let restored = tmp.path().join("restored");
    let elsewhere = tmp.path().join("elsewhere");
    let runs: Vec<(Vec<&str>, Option<i32>)> = vec![
        (vec!["archive", s(&dir), &url, "--once"], Some(0)),
        (vec!["archive", s(&dir), &url, "--once", "--json"], Some(0)),
        (vec!["archive-info", &url], Some(0)),
        (vec!["archive-info", "--json", &url], Some(0)),
        (vec!["restore", &url, s(&restored)], Some(0)),
        (vec!["info", "--json", s(&restored)], Some(0)),
        // Failures: a busy target, a bucket that does not exist, credentials in the URL.
        (vec!["restore", &url, s(&restored)], Some(2)),
        (vec!["archive-info", missing], Some(2)),
        (vec!["archive-info", "--json", missing], Some(2)),
        (vec!["restore", missing, s(&elsewhere)], Some(2)),
        (vec!["archive", s(&dir), missing, "--once"], Some(2)),
        (vec!["archive-info", &in_url], None),
        (vec!["archive-info", &unknown_scheme], Some(2)),
        (vec!["restore", &in_url, s(&elsewhere)], None),
    ];
    for (args, code) in runs {
        let run = tidelog_with_env(&args, b"", &env);
        if let Some(code) = code {
            assert_eq!(
                run.code, code,
                "{args:?}\n--- stdout\n{}\n--- stderr\n{}",
                run.stdout, run.stderr
            );
        }
        for (stream, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
            assert!(
                !text.contains(SECRET),
                "{args:?}: the secret on {stream}: {text}"
            );
        }
    }
}
