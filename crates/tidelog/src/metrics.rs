//! What a log counts and times: [`Metrics`], a snapshot from [`Log::metrics`], and the same
//! figures exported through the `metrics` crate's facade when the `metrics` feature is on.
//!
//! Counters are relaxed atomics, and latencies go into histograms with four buckets per power
//! of two (about ±12% resolution), so recording costs a few atomic adds on the hot path.
//!
//! [`Log::metrics`]: crate::Log::metrics

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::types::Lsn;

const BUCKETS: usize = 256;

/// A histogram of `u64` samples with four buckets per power of two.
pub(crate) struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    count: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count.load(Ordering::Relaxed))
            .finish()
    }
}

fn bucket_of(v: u64) -> usize {
    if v < 4 {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros() as usize;
    let sub = ((v >> (exp - 2)) & 3) as usize;
    exp * 4 + sub
}

/// The middle of bucket `i`'s range.
fn bucket_mid(i: usize) -> u64 {
    if i < 4 {
        return i as u64;
    }
    let (exp, sub) = (i / 4, (i % 4) as u64);
    let low = (4 + sub) << (exp - 2);
    low + (1u64 << (exp - 2)) / 2
}

impl Histogram {
    pub(crate) fn new() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }

    pub(crate) fn record(&self, v: u64) {
        self.buckets[bucket_of(v)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(v, Ordering::Relaxed);
        self.max.fetch_max(v, Ordering::Relaxed);
    }

    pub(crate) fn summary(&self) -> Summary {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let count: u64 = counts.iter().sum();
        let max = self.max.load(Ordering::Relaxed);
        let quantile = |q: f64| {
            if count == 0 {
                return 0;
            }
            let rank = ((count as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return bucket_mid(i).min(max);
                }
            }
            max
        };
        Summary {
            count,
            mean: if count == 0 {
                0.0
            } else {
                self.sum.load(Ordering::Relaxed) as f64 / count as f64
            },
            p50: quantile(0.50),
            p90: quantile(0.90),
            p99: quantile(0.99),
            max,
        }
    }
}

/// Count, mean, percentiles and maximum of a histogram. Latencies are in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct Summary {
    /// Samples recorded.
    pub count: u64,
    /// Their mean.
    pub mean: f64,
    /// Median (bucket resolution, about ±12%).
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest sample.
    pub max: u64,
}

/// A snapshot of what a log has done since it was opened, from
/// [`Log::metrics`](crate::Log::metrics).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Metrics {
    /// Calls to `append` and `append_batch` that succeeded.
    pub appends: u64,
    /// Records appended.
    pub records: u64,
    /// Of the appends, batches of more than one record.
    pub batches: u64,
    /// Payload bytes appended.
    pub bytes: u64,
    /// Fsyncs of segment data (group-commit syncs and seals).
    pub fsyncs: u64,
    /// Callers that waited for durability (`Synced` appends, `sync`, `wait_durable`, ...).
    pub commits: u64,
    /// Records each group-commit fsync made durable.
    pub group_size: Summary,
    /// Latency of each fsync, in nanoseconds.
    pub fsync_latency: Summary,
    /// Latency of each durable commit, from the call to its return, in nanoseconds.
    pub commit_latency: Summary,
    /// Segments sealed by a roll.
    pub segments_rolled: u64,
    /// Segment files removed after a checkpoint or reset.
    pub segments_removed: u64,
    /// New segments made from a recycled file instead of a new one.
    pub segments_recycled: u64,
    /// Bytes the log holds ([`Log::used_bytes`](crate::Log::used_bytes)).
    pub used_bytes: u64,
    /// Room left in a bounded log.
    pub free_bytes: Option<u64>,
    /// The last LSN appended.
    pub last_lsn: Lsn,
    /// The written watermark.
    pub written_lsn: Lsn,
    /// The durable watermark.
    pub durable_lsn: Lsn,
    /// How many durable records the slowest tail ([`Log::tail`](crate::Log::tail)) has
    /// yet to read; 0 without tails.
    pub reader_lag: u64,
    /// How long recovery took when the log was opened.
    pub recovery_time: Duration,
}

/// The live counters of a log.
#[derive(Debug)]
pub(crate) struct Stats {
    pub(crate) fsyncs: AtomicU64,
    pub(crate) commits: AtomicU64,
    pub(crate) group_size: Histogram,
    pub(crate) fsync_ns: Histogram,
    pub(crate) commit_ns: Histogram,
    pub(crate) rolled: AtomicU64,
    pub(crate) removed: AtomicU64,
    pub(crate) recycled: AtomicU64,
    #[cfg(feature = "metrics")]
    facade: Facade,
}

impl Stats {
    pub(crate) fn new(label: &str) -> Self {
        let _ = label;
        Self {
            fsyncs: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            group_size: Histogram::new(),
            fsync_ns: Histogram::new(),
            commit_ns: Histogram::new(),
            rolled: AtomicU64::new(0),
            removed: AtomicU64::new(0),
            recycled: AtomicU64::new(0),
            #[cfg(feature = "metrics")]
            facade: Facade::new(label),
        }
    }

    /// Publishes appended records and bytes to the facade (the snapshot counts them in the
    /// log's state, under the lock the append holds anyway).
    #[cfg(feature = "metrics")]
    pub(crate) fn appended(&self, records: u64, bytes: u64) {
        self.facade.records.increment(records);
        self.facade.bytes.increment(bytes);
    }

    pub(crate) fn synced(&self, took: Duration, records: u64) {
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.fsync_ns.record(ns);
        self.group_size.record(records);
        #[cfg(feature = "metrics")]
        {
            self.facade.fsyncs.increment(1);
            self.facade.fsync_seconds.record(took.as_secs_f64());
            self.facade.group_size.record(records as f64);
        }
    }

    pub(crate) fn sealed(&self, took: Duration) {
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.rolled.fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.fsync_ns.record(ns);
        #[cfg(feature = "metrics")]
        {
            self.facade.fsyncs.increment(1);
            self.facade.fsync_seconds.record(took.as_secs_f64());
            self.facade.rolled.increment(1);
        }
    }

    pub(crate) fn committed(&self, took: Duration) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.commit_ns
            .record(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
        #[cfg(feature = "metrics")]
        self.facade.commit_seconds.record(took.as_secs_f64());
    }

    pub(crate) fn removed(&self, segments: u64) {
        self.removed.fetch_add(segments, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        self.facade.removed.increment(segments);
    }

    /// Publishes the gauges (the counters and histograms are published as they change).
    #[cfg_attr(
        not(feature = "metrics"),
        expect(unused_variables, reason = "facade only")
    )]
    pub(crate) fn gauges(&self, m: &Metrics) {
        #[cfg(feature = "metrics")]
        {
            self.facade.durable_lsn.set(m.durable_lsn.get() as f64);
            self.facade.used_bytes.set(m.used_bytes as f64);
            if let Some(free) = m.free_bytes {
                self.facade.free_bytes.set(free as f64);
            }
            self.facade.reader_lag.set(m.reader_lag as f64);
        }
    }
}

/// Handles into the `metrics` facade, made once per log (labelled with its directory).
#[cfg(feature = "metrics")]
#[derive(Debug)]
struct Facade {
    records: metrics::Counter,
    bytes: metrics::Counter,
    fsyncs: metrics::Counter,
    rolled: metrics::Counter,
    removed: metrics::Counter,
    fsync_seconds: metrics::Histogram,
    commit_seconds: metrics::Histogram,
    group_size: metrics::Histogram,
    durable_lsn: metrics::Gauge,
    used_bytes: metrics::Gauge,
    free_bytes: metrics::Gauge,
    reader_lag: metrics::Gauge,
}

#[cfg(feature = "metrics")]
impl Facade {
    fn new(label: &str) -> Self {
        let log = label.to_owned();
        Self {
            records: metrics::counter!("tidelog_records_appended_total", "log" => log.clone()),
            bytes: metrics::counter!("tidelog_bytes_appended_total", "log" => log.clone()),
            fsyncs: metrics::counter!("tidelog_fsyncs_total", "log" => log.clone()),
            rolled: metrics::counter!("tidelog_segments_rolled_total", "log" => log.clone()),
            removed: metrics::counter!("tidelog_segments_removed_total", "log" => log.clone()),
            fsync_seconds: metrics::histogram!("tidelog_fsync_seconds", "log" => log.clone()),
            commit_seconds: metrics::histogram!("tidelog_commit_seconds", "log" => log.clone()),
            group_size: metrics::histogram!("tidelog_group_commit_records", "log" => log.clone()),
            durable_lsn: metrics::gauge!("tidelog_durable_lsn", "log" => log.clone()),
            used_bytes: metrics::gauge!("tidelog_used_bytes", "log" => log.clone()),
            free_bytes: metrics::gauge!("tidelog_free_bytes", "log" => log.clone()),
            reader_lag: metrics::gauge!("tidelog_reader_lag_records", "log" => log),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_within_bucket_resolution() {
        let h = Histogram::new();
        for v in 1..=10_000u64 {
            h.record(v);
        }
        let s = h.summary();
        assert_eq!(s.count, 10_000);
        assert_eq!(s.max, 10_000);
        for (got, want) in [(s.p50, 5_000.0), (s.p90, 9_000.0), (s.p99, 9_900.0)] {
            let err = (got as f64 - want).abs() / want;
            assert!(err < 0.13, "{got} vs {want}");
        }
        assert!((s.mean - 5_000.5).abs() < 1e-9);
    }

    #[test]
    fn buckets_cover_every_value() {
        for v in [0, 1, 3, 4, 5, 7, 8, 1000, u64::MAX / 2, u64::MAX] {
            let i = bucket_of(v);
            assert!(i < BUCKETS);
            let mid = bucket_mid(i);
            assert!(
                v < 4 || (mid as f64 - v as f64).abs() / (v as f64) < 0.25,
                "{v} -> {mid}"
            );
        }
    }
}
