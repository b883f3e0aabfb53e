//! `tidelog dump --stats`: per-file figures (records, LSN range, payload bytes, batches,
//! markers, damage) of one log or file, read frame by frame.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{Value, json};
use tidelog::Lsn;
use tidelog::inspect::{Checksum, Entry};

use super::{Args, Tally, open, wanted};
use crate::output::{Ctx, Style, Table, human_bytes, thousands};

/// Per-file figures of the stats view.
#[derive(Debug, Default)]
struct Stats {
    records: u64,
    first: Option<Lsn>,
    last: Option<Lsn>,
    payload_bytes: u64,
    file_bytes: u64,
    batches: u64,
    batch_min: Option<u64>,
    batch_max: u64,
    /// Records in the batch being read.
    open_batch: u64,
    /// Sync markers and seals (format version 2).
    markers: u64,
    tally: Tally,
}

impl Stats {
    fn add(&mut self, entry: &Entry) {
        self.tally.add(entry);
        let Entry::Frame(f) = entry else { return };
        if f.checksum() == Checksum::Mismatch {
            self.open_batch = 0;
            return;
        }
        if !f.is_record() {
            self.markers += 1;
            return;
        }
        self.records += 1;
        self.first.get_or_insert(f.lsn);
        self.last = Some(f.lsn);
        self.payload_bytes += u64::from(f.len);
        if f.is_batch_start() {
            self.open_batch = 0;
        }
        self.open_batch += 1;
        if f.is_batch_end() {
            self.batches += 1;
            self.batch_min = Some(
                self.batch_min
                    .map_or(self.open_batch, |m| m.min(self.open_batch)),
            );
            self.batch_max = self.batch_max.max(self.open_batch);
            self.open_batch = 0;
        }
    }

    fn merge(&mut self, other: &Stats) {
        self.records += other.records;
        self.first = self.first.or(other.first);
        self.last = other.last.or(self.last);
        self.payload_bytes += other.payload_bytes;
        self.file_bytes += other.file_bytes;
        self.batches += other.batches;
        self.markers += other.markers;
        self.batch_min = match (self.batch_min, other.batch_min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.batch_max = self.batch_max.max(other.batch_max);
        self.tally.valid += other.tally.valid;
        self.tally.mismatched += other.tally.mismatched;
        self.tally.unverified += other.tally.unverified;
        self.tally.zero_bytes += other.tally.zero_bytes;
        self.tally.damaged_bytes += other.tally.damaged_bytes;
        self.tally.leftover_frames += other.tally.leftover_frames;
        self.tally.leftover_bytes += other.tally.leftover_bytes;
    }

    /// Records per complete batch, on average.
    fn batch_mean(&self) -> f64 {
        // Records in complete batches: all but those of a batch left open at the end.
        if self.batches == 0 {
            0.0
        } else {
            (self.records - self.open_batch) as f64 / self.batches as f64
        }
    }

    fn json(&self, kind: &str, file: Option<&str>) -> Value {
        json!({
            "type": kind,
            "file": file,
            "records": self.records,
            "markers": self.markers,
            "first_lsn": self.first.map(Lsn::get),
            "last_lsn": self.last.map(Lsn::get),
            "batches": self.batches,
            "batch_size": {
                "min": self.batch_min,
                "mean": self.batch_mean(),
                "max": (self.batches > 0).then_some(self.batch_max),
            },
            "payload_bytes": self.payload_bytes,
            "file_bytes": self.file_bytes,
            "zero_bytes": self.tally.zero_bytes,
            "damaged_bytes": self.tally.damaged_bytes,
            "leftover_bytes": self.tally.leftover_bytes,
            "mismatched_frames": self.tally.mismatched,
            "unverified_frames": self.tally.unverified,
        })
    }

    fn row(&self, name: String) -> Vec<String> {
        let lsn = |l: Option<Lsn>| l.map_or_else(|| "-".to_owned(), |l| l.to_string());
        vec![
            name,
            lsn(self.first),
            lsn(self.last),
            thousands(self.records),
            thousands(self.batches),
            match self.batch_min {
                Some(min) => format!("{min} / {:.1} / {}", self.batch_mean(), self.batch_max),
                None => "-".to_owned(),
            },
            human_bytes(self.payload_bytes),
            human_bytes(self.file_bytes),
            if self.tally.damaged_bytes == 0 {
                "-".to_owned()
            } else {
                human_bytes(self.tally.damaged_bytes)
            },
        ]
    }
}

/// The stats view.
pub(super) fn stats(args: &Args, ctx: &Ctx, files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut out = ctx.out();
    let mut table = Table::new(&[
        "segment",
        ">first LSN",
        ">last LSN",
        ">records",
        ">batches",
        ">records/batch min/mean/max",
        ">payload",
        ">file",
        ">damaged",
    ]);
    let mut total = Stats::default();
    for path in files {
        let mut frames = open(path, args.header_from.as_deref())?;
        let mut stats = Stats {
            file_bytes: frames.file_len(),
            tally: Tally::of(&frames),
            ..Stats::default()
        };
        for entry in frames.by_ref() {
            let entry = entry?;
            if let Entry::Frame(f) = &entry
                && !wanted(args, f.lsn)
            {
                continue;
            }
            stats.add(&entry);
        }
        stats.tally.settle(true);
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        if ctx.json {
            out.json(&stats.json("segment", Some(&path.display().to_string())))?;
        } else {
            table.row(stats.row(name));
        }
        total.merge(&stats);
        total.open_batch = 0;
    }
    if ctx.json {
        out.json(&total.json("total", None))?;
    } else {
        if files.len() > 1 {
            table.row(total.row(format!("total ({} files)", files.len())));
        }
        for line in table.lines() {
            out.line(line)?;
        }
        if total.tally.leftover_bytes > 0 {
            out.line(format_args!(
                "{} {} in recycled files are left from their earlier life (frames of another \
                 header after the current data): not damage",
                out.paint(Style::Yellow, "note:"),
                human_bytes(total.tally.leftover_bytes)
            ))?;
        }
        if total.tally.unverified > 0 {
            out.line(format_args!(
                "{} {} frames could not be checked (no header to check them against)",
                out.paint(Style::Yellow, "note:"),
                thousands(total.tally.unverified)
            ))?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
