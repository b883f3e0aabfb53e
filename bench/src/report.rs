//! The Markdown report: a header about the machine, the raw limits, one table per workload and
//! the notes the tables cite.

use std::fmt::Write as _;

use crate::contenders::Kind;
use crate::stats::Metrics;
use crate::{
    Config, Machine, Outcome, Results, Workload, archive as archive_workload, payload,
    sharded as sharded_workload, sysinfo,
};

pub fn size_label(len: usize) -> String {
    if len >= 1 << 20 && len.is_multiple_of(1 << 20) {
        format!("{} MiB", len >> 20)
    } else if len >= 1 << 10 && len.is_multiple_of(1 << 10) {
        format!("{} KiB", len >> 10)
    } else {
        format!("{len} B")
    }
}

/// A number of bytes in the binary unit that suits it: 128 MiB, 1.0 GiB, 10.0 GiB.
pub fn bytes_label(bytes: f64) -> String {
    const KIB: f64 = 1024.0;
    if bytes >= KIB * KIB * KIB {
        format!("{:.1} GiB", bytes / (KIB * KIB * KIB))
    } else if bytes >= KIB * KIB {
        format!("{:.0} MiB", bytes / (KIB * KIB))
    } else if bytes >= KIB {
        format!("{:.0} KiB", bytes / KIB)
    } else {
        format!("{bytes:.0} B")
    }
}

/// A duration in seconds, in ms below one second: 27 ms, 430 ms, 4.70 s.
fn dur(x: f64) -> String {
    if !x.is_finite() {
        "n/a".into()
    } else if x < 0.01 {
        format!("{:.1} ms", x * 1e3)
    } else if x < 1.0 {
        format!("{:.0} ms", x * 1e3)
    } else {
        format!("{} s", secs(x))
    }
}

pub fn int(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    let s = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < 0.0 { format!("-{out}") } else { out }
}

fn mb(x: f64) -> String {
    format!("{x:.1}")
}

fn ms(us: f64) -> String {
    let v = us / 1e3;
    if v < 0.0005 {
        "<0.001".into()
    } else if v < 1.0 {
        format!("{v:.3}")
    } else if v < 10.0 {
        format!("{v:.2}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

fn secs(x: f64) -> String {
    if x < 1.0 {
        format!("{x:.3}")
    } else if x < 10.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.1}")
    }
}

fn frac(x: Option<f64>) -> String {
    x.filter(|v| v.is_finite())
        .map_or("—".into(), |v| format!("{v:.2}"))
}

/// Footnotes, cited as GitHub-flavoured Markdown footnotes and printed once at the end.
#[derive(Default)]
struct Notes(Vec<(String, String)>);

impl Notes {
    fn cite(&mut self, label: &str, text: &str) -> String {
        if !self.0.iter().any(|(l, _)| l == label) {
            self.0.push((label.to_owned(), text.to_owned()));
        }
        format!("[^{label}]")
    }
}

const WALRUS_NOSYNC: &str = "walrus-rust has no call that makes appended records durable. Its \
bulk writes use `FsyncSchedule::NoFsync` and end without any sync, so its W1, W3 and W4 write \
figures include no fsync; it is left out of the best-peer ratio of W1 and W3.";
const WALRUS_SYNCEACH: &str = "walrus-rust commits use `FsyncSchedule::SyncEach`: its files are \
opened with `O_SYNC` and each append is followed by an fsync (`sync_all`) under the topic's \
writer lock, so concurrent commits never share an fsync.";
const COMMITLOG_FLUSH: &str = "commitlog's `flush()` does not fsync the segment file: it hands \
the data to the OS and msyncs only index pages. Its bulk and commit figures are therefore not \
durable, and it is left out of the best-peer ratio of W1, W2 and W3. It takes `&mut self`, so \
it is used behind a `Mutex`.";
const OKAYWAL_BULK: &str = "okaywal has no append that is not a commit: its bulk work is one \
entry holding every record as a chunk, committed (one fsync) at the end.";
const OKAYWAL_RECOVER: &str = "okaywal reads a log back only through recovery \
(`LogManager::recover`, called while the log opens): its reopen time includes reading and \
verifying every record, and it has no separate read time.";
const RAFT_KV: &str = "raft-engine records are key-values (`LogBatch::put`, region 1, key = \
record index as 8 bytes big-endian), no compression. Bulk work is `write(batch of one, sync = \
false)` per record, then `sync()`; a commit is `write(batch, sync = true)`.";
const WRITEAHEAD_BATCHES: &str = "writeahead has no append that is not a commit: its bulk work \
is `write_batch` of as many records as fit in one batch of its default 4 MiB limit, one fsync \
per batch (about 38,000 records of 100 B).";
const RAFT_MEMTABLE: &str = "raft-engine's recovery loads every value into its in-memory \
memtable: its reopen includes reading all records from disk, and its read is a scan of memory.";
const FSYNC_COUNT: &str = "fsyncs: flush requests completed by the block device during the timed \
part (from /proc/diskstats), so they include file-system journal commits and flushes caused by \
anything else running on the machine. For tidelog, the fsyncs of segment data it counts itself \
(`Log::metrics`) follow in parentheses.";
const COMMITLOG_OPEN: &str = "commitlog's open maps its index files and does not scan the log; \
checksums are checked as messages are read.";
const RAW_READ: &str = "No raw bound exists for recovery. The read bound is a sequential read, in \
1 MiB reads from the page cache, of the file written for raw limit (d), counted in 100-byte \
records; the logs' read-back also comes from the page cache, since their data was just written.";

/// The contender's cell, with the notes that qualify its figures in this workload.
fn name_cell(kind: Kind, w: Workload, notes: &mut Notes) -> String {
    let mut s = kind.name().to_owned();
    let mut cite = |l: &str, t: &str| s.push_str(&notes.cite(l, t));
    match (kind, w) {
        (Kind::Walrus, Workload::W1 | Workload::W3 | Workload::W4 | Workload::Sizes) => {
            cite("walrus-nosync", WALRUS_NOSYNC)
        }
        (Kind::Walrus, Workload::W2) => cite("walrus-synceach", WALRUS_SYNCEACH),
        (Kind::Commitlog, Workload::W1 | Workload::W2 | Workload::W3) => {
            cite("commitlog-flush", COMMITLOG_FLUSH)
        }
        (Kind::Okaywal, Workload::W1 | Workload::W3) => cite("okaywal-bulk", OKAYWAL_BULK),
        (Kind::Okaywal, Workload::W4 | Workload::Sizes) => {
            cite("okaywal-bulk", OKAYWAL_BULK);
            cite("okaywal-recover", OKAYWAL_RECOVER);
        }
        (Kind::Commitlog, Workload::W4 | Workload::Sizes) => cite("commitlog-open", COMMITLOG_OPEN),
        (Kind::RaftEngine, Workload::W4 | Workload::Sizes) => {
            cite("raft-kv", RAFT_KV);
            cite("raft-memtable", RAFT_MEMTABLE);
        }
        (Kind::RaftEngine, _) => cite("raft-kv", RAFT_KV),
        (Kind::Writeahead, Workload::W1 | Workload::W3 | Workload::W4 | Workload::Sizes) => {
            cite("writeahead-batches", WRITEAHEAD_BATCHES)
        }
        _ => {}
    }
    s
}

fn failed_cell(kind: Kind, label: &str, err: &str, notes: &mut Notes) -> String {
    let note = notes.cite(
        &format!("fail-{label}-{}", kind.name()),
        &format!("{} failed in {label}: {err}", kind.name()),
    );
    format!("failed{note}")
}

/// `tidelog ÷ best peer` for the tidelog row; peers get an empty cell.
/// tidelog's figure and the figures of the peers that `counts` admits to the best-peer ratio.
fn contest<'a>(
    rows: impl IntoIterator<Item = (Kind, &'a Outcome)>,
    figure: impl Fn(&Outcome) -> Option<f64>,
    counts: impl Fn(Kind) -> bool,
) -> (Option<f64>, Vec<(Kind, f64)>) {
    let mut tidelog = None;
    let mut peers = Vec::new();
    for (kind, outcome) in rows {
        if kind == Kind::Tidelog {
            tidelog = figure(outcome);
        } else if counts(kind)
            && let Some(v) = figure(outcome)
        {
            peers.push((kind, v));
        }
    }
    (tidelog, peers)
}

fn ratio_cell(kind: Kind, tidelog: Option<f64>, peers: &[(Kind, f64)]) -> String {
    if kind != Kind::Tidelog {
        return String::new();
    }
    let best = peers
        .iter()
        .filter(|(_, v)| v.is_finite())
        .max_by(|a, b| a.1.total_cmp(&b.1));
    match (tidelog, best) {
        (Some(t), Some((k, b))) if *b > 0.0 => format!("{:.2}× (vs {})", t / b, k.name()),
        _ => "—".into(),
    }
}

fn get(m: &Metrics, k: &str) -> Option<f64> {
    m.get(k).copied().filter(|v| v.is_finite())
}

pub fn print(config: &Config, machine: &Machine, results: &Results) {
    let mut out = String::new();
    let mut notes = Notes::default();
    header(&mut out, config, machine, results);
    raw_section(&mut out, config, &results.raw);
    if config.workloads.contains(&Workload::W1) {
        w1(&mut out, config, results, &mut notes);
    }
    if config.workloads.contains(&Workload::W2) {
        w2(&mut out, config, machine, results, &mut notes);
    }
    if config.workloads.contains(&Workload::W3) {
        w3(&mut out, config, results, &mut notes);
    }
    if config.workloads.contains(&Workload::W4) {
        w4(&mut out, config, results, &mut notes);
    }
    if config.workloads.contains(&Workload::Sizes) {
        sizes(&mut out, results, &mut notes);
    }
    if config.workloads.contains(&Workload::Archive) {
        archive(&mut out, config, results, &mut notes);
    }
    if config.workloads.contains(&Workload::Sharded) {
        sharded(&mut out, config, results, &mut notes);
    }
    if config.workloads.contains(&Workload::Raft) {
        raft(&mut out, config, results, &mut notes);
    }
    if config.workloads.contains(&Workload::Follow) {
        follow(&mut out, config, results, &mut notes);
    }
    if !notes.0.is_empty() {
        let _ = writeln!(out, "## Notes\n");
        for (label, text) in &notes.0 {
            let _ = writeln!(out, "[^{label}]: {text}\n");
        }
    }
    print!("{out}");
}

fn header(out: &mut String, config: &Config, machine: &Machine, results: &Results) {
    let raw = &results.raw;
    let _ = writeln!(out, "# tidelog benchmark\n");
    let _ = writeln!(out, "- Date: {} (UTC)", sysinfo::today());
    let _ = writeln!(
        out,
        "- CPU: {}, {} cores",
        sysinfo::cpu_model(),
        sysinfo::cores()
    );
    if let Some(g) = sysinfo::memory_gib() {
        let _ = writeln!(out, "- Memory: {g:.1} GiB");
    }
    let _ = writeln!(out, "- Kernel: Linux {}", sysinfo::kernel());
    let _ = writeln!(
        out,
        "- Directory: `{}`, {} on block device {}",
        machine.dir.display(),
        machine.fstype,
        machine
            .device
            .as_deref()
            .map_or("unknown".into(), |d| format!("`{d}`"))
    );
    if let (Some(p50), Some(p99)) = (get(raw, "p50_us"), get(raw, "p99_us")) {
        let flushes = match get(raw, "flushes_per_sync") {
            Some(f) if f > 0.0 => format!("; {f:.2} device flush requests per fdatasync"),
            _ => "; the device reports no flush requests".into(),
        };
        let _ = writeln!(
            out,
            "- fsync latency (4 KiB pwrite + fdatasync at a fixed offset, {}×): p50 {} ms, p99 {} ms{flushes}",
            config.sizes.raw_fsyncs,
            ms(p50),
            ms(p99)
        );
    }
    if let Some(micros) = config.fsync_delay_us {
        let _ = writeln!(
            out,
            "- **Every fsync and fdatasync delayed by {micros} µs**, for every contender alike \
             (the `LD_PRELOAD` shim `fsync-delay`, which counts the calls it delayed: a case in \
             which it delayed none fails), and in the raw limits: a slower disk than this one"
        );
    }
    let _ = writeln!(
        out,
        "- Runs: {}, median reported{}",
        config.runs,
        if config.quick {
            "; quick mode (smaller sizes, 1 s durations)"
        } else {
            ""
        }
    );
    let versions: Vec<String> = sysinfo::versions()
        .into_iter()
        .map(|(n, v)| format!("{n} {v}"))
        .collect();
    let _ = writeln!(out, "- Crates: {}", versions.join(", "));
    let _ = writeln!(
        out,
        "- Every case runs in a process of its own on a fresh directory, after a `sync` of the \
         whole system. Record *i* is {} bytes (in W3: its record size); its first 8 bytes are \
         *i* little-endian, the others *i* mod 251, and every read-back verifies each record. \
         MB/s counts payload bytes, 10^6 per MB.\n",
        payload::SMALL
    );
}

fn raw_section(out: &mut String, config: &Config, raw: &Metrics) {
    let s = &config.sizes;
    let _ = writeln!(out, "## Raw limits of the disk\n");
    let _ = writeln!(
        out,
        "Measured in the same run and directory with `std::fs`, nothing preallocated.\n"
    );
    let _ = writeln!(out, "| Measure | Result |\n|---|---:|");
    if let (Some(p50), Some(p99)) = (get(raw, "p50_us"), get(raw, "p99_us")) {
        let _ = writeln!(
            out,
            "| (a) fsync latency: {} × (pwrite 4 KiB at a fixed offset + fdatasync) | p50 {} ms, p99 {} ms |",
            s.raw_fsyncs,
            ms(p50),
            ms(p99)
        );
    }
    if let Some(c) = get(raw, "commits_per_s") {
        let _ = writeln!(
            out,
            "| (b) appending pwrite 100 B + fdatasync per record, 1 thread, {} s | {} commits/s |",
            s.w2_secs,
            int(c)
        );
    }
    if let Some(v) = get(raw, "w1_mb_s") {
        let _ = writeln!(
            out,
            "| (c) {} MB (the bytes of W1) in 1 MiB writes + one fdatasync | {} MB/s |",
            int((s.w1_records * payload::SMALL as u64) as f64 / 1e6),
            mb(v)
        );
    }
    if let Some(v) = get(raw, "big_mb_s") {
        let _ = writeln!(
            out,
            "| (d) {} in 1 MiB writes + one fdatasync | {} MB/s |",
            size_label(s.w3_total as usize),
            mb(v)
        );
    }
    if let Some(v) = get(raw, "read_mb_s") {
        let _ = writeln!(
            out,
            "| (e) read back of (d) in 1 MiB reads, from the page cache | {} MB/s |",
            mb(v)
        );
    }
    out.push('\n');
}

fn w1(out: &mut String, config: &Config, results: &Results, notes: &mut Notes) {
    let n = config.sizes.w1_records;
    let raw = get(&results.raw, "w1_mb_s");
    let _ = writeln!(out, "## W1: bulk append\n");
    let _ = writeln!(
        out,
        "{} records of {} B from one thread, then one sync. CPU: user + system time of the \
         whole process per record. Ratios on records/s; ÷ raw: MB/s as a fraction of raw \
         limit (c).\n",
        int(n as f64),
        payload::SMALL
    );
    let _ = writeln!(
        out,
        "| Contender | records/s | MB/s | CPU µs/record | tidelog ÷ best durable peer | ÷ raw (c) |\n|---|---:|---:|---:|---:|---:|"
    );
    let rate = |o: &Outcome| {
        o.as_ref()
            .ok()
            .and_then(|m| get(m, "secs"))
            .map(|s| n as f64 / s)
    };
    let (tidelog, peers) = contest(
        results.w1.iter().map(|(k, o)| (*k, o)),
        rate,
        Kind::bulk_is_durable,
    );
    for (&kind, outcome) in &results.w1 {
        let name = name_cell(kind, Workload::W1, notes);
        match outcome {
            Ok(m) => {
                let secs = m["secs"];
                let mbs = (n * payload::SMALL as u64) as f64 / secs / 1e6;
                let cpu = get(m, "cpu_secs")
                    .map_or("—".into(), |c| format!("{:.2}", c / n as f64 * 1e6));
                let _ = writeln!(
                    out,
                    "| {name} | {} | {} | {cpu} | {} | {} |",
                    int(n as f64 / secs),
                    mb(mbs),
                    ratio_cell(kind, tidelog, &peers),
                    frac(raw.map(|r| mbs / r))
                );
            }
            Err(e) => {
                let _ = writeln!(
                    out,
                    "| {name} | {} | | | | |",
                    failed_cell(kind, "W1", e, notes)
                );
            }
        }
    }
    if let Some(r) = raw {
        let _ = writeln!(
            out,
            "| *raw limit (c)* | {} | {} | | | 1.00 |",
            int(r * 1e6 / payload::SMALL as f64),
            mb(r)
        );
    }
    out.push('\n');
}

fn w2(out: &mut String, config: &Config, machine: &Machine, results: &Results, notes: &mut Notes) {
    let raw = get(&results.raw, "commits_per_s");
    let _ = writeln!(out, "## W2: durable commits\n");
    let _ = writeln!(
        out,
        "T threads, each appending a {} B record and waiting until it is durable, in a loop for \
         {} s. Latency: per commit, over all threads. Ratios on commits/s; ÷ raw: commits/s as a \
         fraction of raw limit (b), the bound for one thread (group commit can pass it with \
         more).\n",
        payload::SMALL,
        config.sizes.w2_secs
    );
    let fs_note = notes.cite("fsync-count", FSYNC_COUNT);
    let _ = writeln!(
        out,
        "| T | Contender | commits/s | p50 ms | p99 ms | fsyncs{fs_note} | commits per fsync | tidelog ÷ best durable peer | ÷ raw (b) |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    let rate = |o: &Outcome| {
        o.as_ref()
            .ok()
            .and_then(|m| Some(get(m, "commits")? / get(m, "secs")?))
    };
    for &t in &config.sizes.w2_threads {
        let rows: Vec<(Kind, &Outcome)> = results
            .w2
            .iter()
            .filter(|((tt, _), _)| *tt == t)
            .map(|((_, k), o)| (*k, o))
            .collect();
        let (tidelog, peers) = contest(rows.iter().copied(), rate, Kind::commit_is_durable);
        for (kind, outcome) in rows {
            let name = name_cell(kind, Workload::W2, notes);
            match outcome {
                Ok(m) => {
                    let commits = m["commits"];
                    let c_s = commits / m["secs"];
                    let dev = get(m, "dev_flushes").filter(|_| machine.device_counts_flushes);
                    let lib = get(m, "lib_syncs");
                    let per = |f: Option<f64>| match f {
                        Some(f) if f > 0.0 => format!("{:.1}", commits / f),
                        Some(_) => "∞".into(),
                        None => "n/a".into(),
                    };
                    let (fsyncs, per_fsync) = match lib {
                        Some(l) => (
                            format!("{} ({})", dev.map_or("n/a".into(), int), int(l)),
                            format!("{} ({})", per(dev), per(Some(l))),
                        ),
                        None => (dev.map_or("n/a".into(), int), per(dev)),
                    };
                    let _ = writeln!(
                        out,
                        "| {t} | {name} | {} | {} | {} | {fsyncs} | {per_fsync} | {} | {} |",
                        int(c_s),
                        ms(m["p50_us"]),
                        ms(m["p99_us"]),
                        ratio_cell(kind, tidelog, &peers),
                        frac(raw.map(|r| c_s / r))
                    );
                }
                Err(e) => {
                    let _ = writeln!(
                        out,
                        "| {t} | {name} | {} | | | | | | |",
                        failed_cell(kind, &format!("W2 T={t}"), e, notes)
                    );
                }
            }
        }
    }
    if let Some(r) = raw {
        let _ = writeln!(out, "| 1 | *raw limit (b)* | {} | | | | | | 1.00 |", int(r));
    }
    out.push('\n');
}

fn w3(out: &mut String, config: &Config, results: &Results, notes: &mut Notes) {
    let total = config.sizes.w3_total;
    let raw = get(&results.raw, "big_mb_s");
    let _ = writeln!(out, "## W3: large records\n");
    let _ = writeln!(
        out,
        "Records of each size up to {} in all, one thread, then one sync. Ratios on MB/s; ÷ raw: \
         as a fraction of raw limit (d).\n",
        size_label(total as usize)
    );
    let _ = writeln!(
        out,
        "| Record | Contender | MB/s | tidelog ÷ best durable peer | ÷ raw (d) |\n|---|---|---:|---:|---:|"
    );
    for &len in &config.sizes.w3_lens {
        let n = total / len as u64;
        let bytes = (n * len as u64) as f64;
        let rate = |o: &Outcome| {
            o.as_ref()
                .ok()
                .and_then(|m| get(m, "secs"))
                .map(|s| bytes / s / 1e6)
        };
        let rows: Vec<(Kind, &Outcome)> = results
            .w3
            .iter()
            .filter(|((l, _), _)| *l == len)
            .map(|((_, k), o)| (*k, o))
            .collect();
        let (tidelog, peers) = contest(rows.iter().copied(), rate, Kind::bulk_is_durable);
        let label = size_label(len);
        for (kind, outcome) in rows {
            let name = name_cell(kind, Workload::W3, notes);
            match rate(outcome) {
                Some(v) => {
                    let _ = writeln!(
                        out,
                        "| {label} | {name} | {} | {} | {} |",
                        mb(v),
                        ratio_cell(kind, tidelog, &peers),
                        frac(raw.map(|r| v / r))
                    );
                }
                None => {
                    let e = outcome.as_ref().err().map_or("no figures", String::as_str);
                    let _ = writeln!(
                        out,
                        "| {label} | {name} | {} | | |",
                        failed_cell(kind, &format!("W3 {label}"), e, notes)
                    );
                }
            }
        }
    }
    if let Some(r) = raw {
        let _ = writeln!(
            out,
            "| 1 MiB writes | *raw limit (d)* | {} | | 1.00 |",
            mb(r)
        );
    }
    out.push('\n');
}

fn w4(out: &mut String, config: &Config, results: &Results, notes: &mut Notes) {
    let n = config.sizes.w4_records as f64;
    let raw = get(&results.raw, "read_mb_s").map(|r| r * 1e6 / payload::SMALL as f64);
    let _ = writeln!(out, "## W4: recovery and read\n");
    let _ = writeln!(
        out,
        "{} records of {} B written in bulk with one sync and closed; then, in a new process, \
         the log is reopened (timed: the open or recover call) and every record is read and \
         verified (timed separately). The ratio is on records/s over reopen + read together, \
         the figure every contender has; ÷ raw: read records/s as a fraction of the read \
         bound{}.\n",
        int(n),
        payload::SMALL,
        notes.cite("raw-read", RAW_READ)
    );
    let _ = writeln!(
        out,
        "| Contender | reopen s | read s | read records/s | reopen + read, records/s | tidelog ÷ best peer | ÷ raw read |\n|---|---:|---:|---:|---:|---:|---:|"
    );
    let total = |o: &Outcome| {
        o.as_ref()
            .ok()
            .map(|m| n / (m["reopen_secs"] + get(m, "read_secs").unwrap_or(0.0)))
    };
    let (tidelog, peers) = contest(results.w4.iter().map(|(k, o)| (*k, o)), total, |_| true);
    for (&kind, outcome) in &results.w4 {
        let name = name_cell(kind, Workload::W4, notes);
        match outcome {
            Ok(m) => {
                let read = get(m, "read_secs");
                let read_rate = read.map(|r| n / r);
                let _ = writeln!(
                    out,
                    "| {name} | {} | {} | {} | {} | {} | {} |",
                    secs(m["reopen_secs"]),
                    read.map_or("in reopen".into(), secs),
                    read_rate.map_or("—".into(), int),
                    total(outcome).map_or("—".into(), int),
                    ratio_cell(kind, tidelog, &peers),
                    frac(read_rate.zip(raw).map(|(v, r)| v / r))
                );
            }
            Err(e) => {
                let _ = writeln!(
                    out,
                    "| {name} | {} | | | | | |",
                    failed_cell(kind, "W4", e, notes)
                );
            }
        }
    }
    if let Some(r) = raw {
        let _ = writeln!(out, "| *raw read bound* | | | {} | | | 1.00 |", int(r));
    }
    out.push('\n');
}

fn sizes(out: &mut String, results: &Results, notes: &mut Notes) {
    let _ = writeln!(out, "## Open and read by log size\n");
    let _ = writeln!(
        out,
        "Logs of {} B records written in bulk with one sync and closed; then, in a new process, \
         each is reopened (timed: the open call) and read back whole, every record verified \
         (timed separately); then the same in another new process with an open that trusts the \
         seals of sealed segments (`trust_seals`, which only tidelog has). The page cache is \
         warm. Log: the lengths of the files in the log's directory; in use: the bytes its \
         segments hold (headers and frames, not the room preallocated past the last frame), \
         where the log tells them; full open GB/s: the log's bytes over the full reopen; peak \
         RSS: the high-water mark of the reading process's resident memory \
         (`VmHWM`).\n",
        payload::SMALL
    );
    let many = results
        .sizes
        .keys()
        .map(|(_, k)| k)
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        > 1;
    let (lead, lead_rule) = if many {
        ("| Contender ", "|---")
    } else {
        ("", "")
    };
    let _ = writeln!(
        out,
        "{lead}| Log | in use | records | segments | reopen, full | full open GB/s | reopen, \
         `trust_seals` | read-all, full / trusting | peak RSS, full / trusting |\n\
         {lead_rule}|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (&(n, kind), outcome) in &results.sizes {
        let lead = if many {
            format!("| {} ", name_cell(kind, Workload::Sizes, notes))
        } else {
            String::new()
        };
        let m = match outcome {
            Ok(m) => m,
            Err(e) => {
                let label = format!("sizes {}", int(n as f64));
                let _ = writeln!(
                    out,
                    "{lead}| {} | | {} | | | | | | |",
                    failed_cell(kind, &label, e, notes),
                    int(n as f64)
                );
                continue;
            }
        };
        let bytes = get(m, "log_bytes");
        let used = get(m, "used_bytes");
        let reopen = get(m, "reopen_secs");
        let pair = |a: Option<String>, b: Option<String>| match (a, b) {
            (Some(a), Some(b)) => format!("{a} / {b}"),
            (Some(a), None) => a,
            (None, Some(b)) => format!("— / {b}"),
            (None, None) => "—".into(),
        };
        let read = |key: &str| get(m, key).map(dur);
        let reads = if get(m, "read_secs").is_none() && get(m, "reopen_secs").is_some() {
            "in reopen".into()
        } else {
            pair(read("read_secs"), read("trusted_read_secs"))
        };
        let mib = |key: &str| get(m, key).map(|k| format!("{:.1}", k / 1024.0));
        let rss = match pair(mib("peak_rss_kib"), mib("trusted_peak_rss_kib")).as_str() {
            "—" => "—".to_owned(),
            p => format!("{p} MiB"),
        };
        let _ = writeln!(
            out,
            "{lead}| {} | {} | {} | {} | {} | {} | {} | {reads} | {rss} |",
            bytes.map_or("—".into(), bytes_label),
            used.map_or("—".into(), bytes_label),
            int(n as f64),
            get(m, "segments").map_or("—".into(), int),
            reopen.map_or("—".into(), dur),
            bytes
                .zip(reopen)
                .map_or("—".into(), |(b, r)| format!("{:.2}", b / r / 1e9)),
            get(m, "trusted_reopen_secs").map_or("—".into(), dur),
        );
    }
    out.push('\n');
}

const FILE_STORE: &str = "The `file://` store is the `object_store` crate's `LocalFileSystem` with \
`with_fsync`, as tidelog-archive makes it: each object is written to a staging file, fsynced, \
renamed into place and its directory fsynced, so it is durable once its upload returns, as each \
file of the raw copy is once fsynced.";
const MOTO: &str = "The S3 test server is moto (`moto_server`, started by `.ci/with-s3`): one \
Python process on loopback that keeps objects of up to 5 MiB in memory and larger ones (every \
segment, every part of a multipart upload) in temporary files (in `/tmp`) that it never syncs. Its figures \
measure the S3 client's path and moto's own speed, not S3's.";

/// The archive workload: archive and restore throughput beside a raw copy, and W2 with an
/// archiver.
fn archive(out: &mut String, config: &Config, results: &Results, notes: &mut Notes) {
    let a = &results.archive;
    let case = |key: &str| a.cases.get(key).and_then(|o| o.as_ref().ok());
    let rate = |key: &str, bytes: &str| {
        case(key).and_then(|m| Some(get(m, bytes)? / get(m, "secs")? / 1e6))
    };
    let raw = rate("copy", "bytes");
    let log_bytes = case("archive-file")
        .or_else(|| case("archive-s3"))
        .and_then(|m| get(m, "log_bytes"));
    let _ = writeln!(out, "## Archive\n");
    let _ = writeln!(
        out,
        "tidelog-archive, on a log of {} records of {} B{} written in bulk with one sync and \
         closed. Archive: in a new process, the log opened, an `Archiver` started (default \
         options) and stopped at once, which uploads every durable record; timed from the \
         start to the stop's return. Restore: in a new process, `restore(.., \
         Target::Latest)` into a new directory on the same disk, timed; every restored record \
         is then read and verified (not timed). MB/s: the log's bytes in use (headers and \
         frames) per second. Raw copy: every file of the log's directory read \
         and written in 1 MiB pieces into a new directory on the same disk, each file fsynced \
         (and the directory), in MB/s of the files' lengths; ÷ raw copy is the MB/s as a \
         fraction of it.\n",
        int(config.sizes.archive_records as f64),
        payload::SMALL,
        log_bytes.map_or(String::new(), |b| format!(" ({} in use)", bytes_label(b)))
    );
    let _ = writeln!(
        out,
        "| Operation | Store | seconds | MB/s | ÷ raw copy |\n|---|---|---:|---:|---:|"
    );
    let file_note = notes.cite("file-store", FILE_STORE);
    let moto_note = notes.cite("moto", MOTO);
    for (op, verb, bytes) in [
        ("archive", "archive", "log_bytes"),
        ("restore", "restore", "bytes"),
    ] {
        for (store, label) in [
            ("file", format!("`file://`, same disk{file_note}")),
            ("s3", format!("S3 test server{moto_note}")),
        ] {
            let key = format!("{op}-{store}");
            if store == "s3"
                && let Some(why) = &a.s3_skipped
            {
                let _ = writeln!(out, "| {verb} | {label} | skipped: {why} | | |");
                continue;
            }
            match a.cases.get(&key) {
                Some(Ok(m)) => {
                    let v = rate(&key, bytes);
                    let _ = writeln!(
                        out,
                        "| {verb} | {label} | {} | {} | {} |",
                        get(m, "secs").map_or("—".into(), secs),
                        v.map_or("—".into(), mb),
                        frac(v.zip(raw).map(|(v, r)| v / r))
                    );
                }
                Some(Err(e)) => {
                    let _ = writeln!(
                        out,
                        "| {verb} | {label} | failed{} | | |",
                        notes.cite(
                            &format!("fail-archive-{key}"),
                            &format!("The {verb} with the {store} store failed: {e}")
                        )
                    );
                }
                None => {}
            }
        }
    }
    for (key, label) in [
        ("copy", "*raw copy of the log's files, fsync each*"),
        ("copy-nosync", "*raw copy, no fsync*"),
    ] {
        match a.cases.get(key) {
            Some(Ok(m)) => {
                let v = rate(key, "bytes");
                let _ = writeln!(
                    out,
                    "| {label} | same disk | {} | {} | {} |",
                    get(m, "secs").map_or("—".into(), secs),
                    v.map_or("—".into(), mb),
                    frac(v.zip(raw).map(|(v, r)| v / r))
                );
            }
            Some(Err(e)) => {
                let _ = writeln!(out, "| {label} | same disk | failed: {e} | | |");
            }
            None => {}
        }
    }
    out.push('\n');

    // W2 with an archiver.
    let interval = archive_workload::W2_INTERVAL.as_secs_f64();
    let segment = tidelog::DEFAULT_SEGMENT_BYTES as f64;
    let upload = rate("archive-file", "log_bytes").map(|r| segment / (r * 1e6));
    let _ = writeln!(
        out,
        "W2 (T threads committing {} B records, each waiting until its record is durable, {} s) \
         without and with an `Archiver` in the same process, uploading to a `file://` store \
         on the same disk{file_note} (interval {} s, default options); with ÷ without is on \
         commits/s. While the committers run, another thread samples the archiver's \
         `status().lag_records()` (durable records not archived yet) every 10 ms; ms divides \
         records by the run's commits/s. The recovery-point objective the archiver states is \
         the interval plus one upload{}. Uploads: objects put during the run (sealed \
         segments, and the durable part of the segment taking appends every interval, each \
         replacing the last); uploaded ÷ logged: their bytes over the log's.\n",
        payload::SMALL,
        config.sizes.w2_secs,
        secs(interval),
        upload.map_or(String::new(), |u| format!(
            "; a whole segment ({}) uploads in {} at the archive rate above with nothing else \
             running, which puts that at {}",
            bytes_label(segment),
            dur(u),
            dur(interval + u)
        ))
    );
    let _ = writeln!(
        out,
        "| T | commits/s, without | with archiver | with ÷ without | p99 ms, without / with | \
         lag p50, records (ms) | lag max, records (ms) | interval | uploads | uploaded ÷ \
         logged |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let commits = |m: &Metrics| Some(get(m, "commits")? / get(m, "secs")?);
    for t in archive_workload::W2_THREADS {
        let plain = a.cases.get(&format!("w2-t{t}"));
        let with = a.cases.get(&format!("w2-t{t}-archived"));
        let failed = |o: Option<&Outcome>, what: &str, notes: &mut Notes| match o {
            Some(Err(e)) => format!(
                "failed{}",
                notes.cite(
                    &format!("fail-archive-w2-{t}-{what}"),
                    &format!("W2 T={t} {what} failed: {e}")
                )
            ),
            _ => "—".into(),
        };
        let plain_m = plain.and_then(|o| o.as_ref().ok());
        let with_m = with.and_then(|o| o.as_ref().ok());
        let c0 = plain_m.and_then(commits);
        let c1 = with_m.and_then(commits);
        let c0_cell = c0.map_or_else(|| failed(plain, "without an archiver", notes), int);
        let c1_cell = c1.map_or_else(|| failed(with, "with an archiver", notes), int);
        let p99 = |m: Option<&Metrics>| m.and_then(|m| get(m, "p99_us")).map_or("—".into(), ms);
        let lag = |key: &str| {
            with_m
                .and_then(|m| Some((get(m, key)?, c1?)))
                .map_or("—".into(), |(l, c)| {
                    format!("{} ({:.0})", int(l), l / c * 1e3)
                })
        };
        let amplification = with_m
            .and_then(|m| Some(get(m, "archive_bytes")? / get(m, "log_bytes")?))
            .map_or("—".into(), |x| format!("{x:.2}"));
        let _ = writeln!(
            out,
            "| {t} | {c0_cell} | {c1_cell} | {} | {} / {} | {} | {} | {} | {} | {amplification} |",
            frac(c1.zip(c0).map(|(a, b)| a / b)),
            p99(plain_m),
            p99(with_m),
            lag("lag_p50"),
            lag("lag_max"),
            with_m
                .and_then(|m| get(m, "interval_ms"))
                .map_or("—".into(), |i| dur(i / 1e3)),
            with_m
                .and_then(|m| get(m, "archive_uploads"))
                .map_or("—".into(), int),
        );
    }
    out.push('\n');
}

/// The sharded workload: W2 on one log and on sharded logs, and the merged replay against
/// reading one log.
fn sharded(out: &mut String, config: &Config, results: &Results, notes: &mut Notes) {
    let r = &results.sharded;
    let ok = |key: &str| r.get(key).and_then(|o| o.as_ref().ok());
    let cell = |key: &str, value: Option<String>, notes: &mut Notes| match (value, r.get(key)) {
        (Some(v), _) => v,
        (None, Some(Err(e))) => format!(
            "failed{}",
            notes.cite(
                &format!("fail-sharded-{key}"),
                &format!("{key} failed: {e}")
            )
        ),
        (None, _) => "—".into(),
    };
    let rate = |key: &str| ok(key).and_then(|m| Some(get(m, "commits")? / get(m, "secs")?));
    let per_fsync =
        |key: &str| ok(key).and_then(|m| Some(get(m, "commits")? / get(m, "lib_syncs")?));
    let _ = writeln!(
        out,
        "## Sharded log
"
    );
    let _ = writeln!(
        out,
        "W2 (T threads committing {} B records, each waiting until its record is durable, {} s) \
         on one `Log` and on a `ShardedLog` of N shards, committer t appending to shard t mod \
         N (`append(shard, .., Synced)`). Commits/s and, in brackets, commits per fsync (the \
         fsyncs the logs counted, summed over the shards); ÷ one log is on commits/s.\n",
        payload::SMALL,
        config.sizes.w2_secs,
    );
    let mut head = String::from("| T | one log |");
    let mut rule = String::from("|---:|---:|");
    for n in sharded_workload::SHARDS {
        let _ = write!(
            head,
            " {n} shard{} | ÷ one log |",
            if n == 1 { "" } else { "s" }
        );
        rule.push_str("---:|---:|");
    }
    let _ = writeln!(out, "{head}\n{rule}");
    for t in sharded_workload::THREADS {
        let one_key = sharded_workload::commits_key(None, t);
        let one = rate(&one_key);
        let figure = |key: &str| {
            rate(key).map(|c| {
                format!(
                    "{} ({})",
                    int(c),
                    per_fsync(key).map_or("—".into(), |f| format!("{f:.1}"))
                )
            })
        };
        let mut row = format!("| {t} | {} |", cell(&one_key, figure(&one_key), notes));
        for n in sharded_workload::SHARDS {
            let key = sharded_workload::commits_key(Some(n), t);
            let _ = write!(
                row,
                " {} | {} |",
                cell(&key, figure(&key), notes),
                frac(rate(&key).zip(one).map(|(a, b)| a / b))
            );
        }
        let _ = writeln!(out, "{row}");
    }
    out.push('\n');
    let shards = sharded_workload::REPLAY_SHARDS;
    let _ = writeln!(
        out,
        "Read back: {} records of {} B written in bulk with one sync, as one log and as {shards} \
         shards (record i to shard i mod {shards}, the epoch advanced {} times along the way, a \
         barrier at the end), each then opened and read whole in a new process: the one log \
         with `iter()`, the shards with `replay()` (merged in (epoch, shard, LSN) order), every \
         record verified. MB/s: the logs' bytes in use per second of reading.\n",
        int(config.sizes.archive_records as f64),
        payload::SMALL,
        sharded_workload::REPLAY_EPOCHS - 1,
    );
    let _ = writeln!(
        out,
        "| Log | open | read | read MB/s | read ÷ one log | peak RSS |\n|---|---:|---:|---:|---:|---:|"
    );
    let one_read = ok("replay-log").and_then(|m| get(m, "read_secs"));
    for (key, label) in [
        ("replay-log".to_owned(), "one log, `iter()`".to_owned()),
        (
            format!("replay-s{shards}"),
            format!("{shards} shards, `replay()`"),
        ),
    ] {
        let m = ok(&key);
        let read = m.and_then(|m| get(m, "read_secs"));
        let used = m.and_then(|m| get(m, "used_bytes"));
        let _ = writeln!(
            out,
            "| {label} | {} | {} | {} | {} | {} |",
            cell(&key, m.and_then(|m| get(m, "reopen_secs")).map(dur), notes),
            read.map_or("—".into(), dur),
            read.zip(used).map_or("—".into(), |(r, u)| mb(u / r / 1e6)),
            frac(one_read.zip(read).map(|(one, r)| one / r)),
            m.and_then(|m| get(m, "peak_rss_kib"))
                .map_or("—".into(), |k| format!("{:.1} MiB", k / 1024.0)),
        );
    }
    out.push('\n');
}

/// The Raft workload: commits through openraft on tidelog-raft beside raft-engine's and
/// tidelog's durable commits.
fn raft(out: &mut String, config: &Config, results: &Results, notes: &mut Notes) {
    let r = &results.raft;
    let ok = |key: &str| r.get(key).and_then(|o| o.as_ref().ok());
    let rate = |key: &str| ok(key).and_then(|m| Some(get(m, "commits")? / get(m, "secs")?));
    let cell = |key: &str, notes: &mut Notes| match (rate(key), r.get(key)) {
        (Some(c), _) => {
            let per = ok(key)
                .and_then(|m| Some(get(m, "commits")? / get(m, "lib_syncs")?))
                .map_or(String::new(), |f| format!(" ({f:.1})"));
            format!("{}{per}", int(c))
        }
        (None, Some(Err(e))) => format!(
            "failed{}",
            notes.cite(&format!("fail-raft-{key}"), &format!("{key} failed: {e}"))
        ),
        (None, _) => "—".into(),
    };
    let _ = writeln!(out, "## Raft log store\n");
    let _ = writeln!(
        out,
        "T concurrent committers for {} s, each waiting for its commit. openraft: a single-node \
         cluster on tidelog-raft's `LogStore`, T tokio tasks each calling `client_write` with a \
         100 B value (durable in the log, committed, applied to a state machine in memory). \
         raft-engine: T threads each calling `Engine::write(.., sync = true)` with one 100 B \
         value (as in W2). tidelog: T threads each calling `append(.., Synced)` (W2). In \
         brackets, commits per fsync where the library counts its fsyncs.\n",
        config.sizes.w2_secs,
    );
    let _ = writeln!(
        out,
        "| T | openraft on tidelog-raft | raft-engine | openraft ÷ raft-engine | tidelog | \
         openraft ÷ tidelog |\n|---:|---:|---:|---:|---:|---:|"
    );
    for t in crate::raft::TASKS {
        let (o, e, l) = (
            format!("openraft-t{t}"),
            format!("raft-engine-t{t}"),
            format!("tidelog-t{t}"),
        );
        let _ = writeln!(
            out,
            "| {t} | {} | {} | {} | {} | {} |",
            cell(&o, notes),
            cell(&e, notes),
            frac(rate(&o).zip(rate(&e)).map(|(a, b)| a / b)),
            cell(&l, notes),
            frac(rate(&o).zip(rate(&l)).map(|(a, b)| a / b)),
        );
    }
    out.push('\n');
}

/// The follower workload: how far a follower trails its writer.
fn follow(out: &mut String, config: &Config, results: &Results, notes: &mut Notes) {
    let r = &results.follow;
    let _ = writeln!(out, "## Follower lag\n");
    let _ = writeln!(
        out,
        "A writer appends a synced batch of {} records of 100 B every millisecond for {} s \
         while an archiver uploads every *interval*; a follower of the archive in the same \
         process (`Follower`, polling every {} ms) reads every record. Delay: from the batch's \
         time stamp (whole ms) to the follower holding the record; behind: records the writer \
         had acknowledged past it then. p50 / p99.\n",
        crate::follow::BATCH,
        config.sizes.w2_secs,
        crate::follow::POLL.as_millis(),
    );
    if let Some(why) = &r.s3_skipped {
        let _ = writeln!(out, "S3 skipped: {why}.\n");
    }
    let _ = writeln!(
        out,
        "| store | interval | records | delay p50 | delay p99 | behind p50 | behind p99 |\n\
         |---|---:|---:|---:|---:|---:|---:|"
    );
    for store in ["file", "s3"] {
        for interval in crate::follow::INTERVALS_MS {
            let key = crate::follow::key(store, interval);
            let row = match r.cases.get(&key) {
                Some(Ok(m)) => format!(
                    "{} | {:.0} ms | {:.0} ms | {} | {} |",
                    int(get(m, "records").unwrap_or(f64::NAN)),
                    get(m, "delay_p50_ms").unwrap_or(f64::NAN),
                    get(m, "delay_p99_ms").unwrap_or(f64::NAN),
                    int(get(m, "behind_p50").unwrap_or(f64::NAN)),
                    int(get(m, "behind_p99").unwrap_or(f64::NAN)),
                ),
                Some(Err(e)) => format!(
                    "failed{} | | | | |",
                    notes.cite(&format!("fail-follow-{key}"), &format!("{key} failed: {e}"))
                ),
                None => continue,
            };
            let _ = writeln!(out, "| {store} | {interval} ms | {row}");
        }
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(bytes_label(128.0 * 1024.0 * 1024.0), "128 MiB");
        assert_eq!(bytes_label(10.0 * 1024.0 * 1024.0 * 1024.0), "10.0 GiB");
        assert_eq!(dur(0.0271), "27 ms");
        assert_eq!(dur(0.0043), "4.3 ms");
        assert_eq!(dur(4.7), "4.70 s");
        assert_eq!(int(81_000_000.0), "81,000,000");
    }

    #[test]
    fn archive_section() {
        let args: Vec<String> = ["--only", "archive"].map(String::from).into();
        let config = crate::parse_args(&args).expect("arguments");
        let figures = |pairs: &[(&str, f64)]| -> Outcome {
            Ok(pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect())
        };
        let mut results = Results::default();
        let cases = &mut results.archive.cases;
        cases.insert("copy".into(), figures(&[("secs", 1.0), ("bytes", 1e9)]));
        cases.insert(
            "archive-file".into(),
            figures(&[("secs", 2.0), ("log_bytes", 1e9)]),
        );
        cases.insert("restore-file".into(), Err("boom".into()));
        cases.insert(
            "w2-t16".into(),
            figures(&[("commits", 100_000.0), ("secs", 1.0), ("p99_us", 500.0)]),
        );
        cases.insert(
            "w2-t16-archived".into(),
            figures(&[
                ("commits", 80_000.0),
                ("secs", 1.0),
                ("p99_us", 600.0),
                ("lag_p50", 40_000.0),
                ("lag_max", 80_000.0),
                ("interval_ms", 1000.0),
                ("archive_uploads", 5.0),
                ("archive_bytes", 2e7),
                ("log_bytes", 1e7),
            ]),
        );
        results.archive.s3_skipped = Some("no server".into());
        let mut out = String::new();
        archive(&mut out, &config, &results, &mut Notes::default());
        for row in [
            "| archive | `file://`, same disk[^file-store] | 2.00 | 500.0 | 0.50 |",
            "| archive | S3 test server[^moto] | skipped: no server | | |",
            "| restore | `file://`, same disk[^file-store] | failed[^fail-archive-restore-file] | | |",
            "| *raw copy of the log's files, fsync each* | same disk | 1.00 | 1000.0 | 1.00 |",
            "| 16 | 100,000 | 80,000 | 0.80 | 0.500 / 0.600 | 40,000 (500) | 80,000 (1000) | 1.00 s | 5 | 2.00 |",
            "| 64 | — | — | — | — / — | — | — | — | — | — |",
        ] {
            assert!(out.contains(row), "no row {row} in\n{out}");
        }
    }
}
