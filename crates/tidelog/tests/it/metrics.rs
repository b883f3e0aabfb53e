//! The metrics snapshot, and the figures sent to a `metrics` recorder.

use std::time::Duration;

use tidelog::{Durability, Lsn, Result};

use crate::common::{Env, append_n};

#[test]
fn the_snapshot_counts_appends_syncs_and_segments() -> Result<()> {
    let env = Env::mem();
    let log = env.open()?;
    for _ in 0..10 {
        log.append(&[7; 50], Durability::Buffered)?;
    }
    log.append_batch(&[[1u8; 10], [2; 10], [3; 10]], Durability::Synced)?;
    let m = log.metrics();
    assert_eq!((m.appends, m.records, m.batches, m.bytes), (11, 13, 1, 530));
    assert_eq!(m.commits, 1);
    assert_eq!(m.commit_latency.count, 1);
    assert!(m.fsyncs >= 1 && m.fsync_latency.count == m.fsyncs, "{m:?}");
    assert_eq!(
        m.group_size.max, 13,
        "one fsync made all 13 records durable"
    );
    assert_eq!(
        (m.last_lsn, m.written_lsn, m.durable_lsn),
        (Lsn::new(13), Lsn::new(13), Lsn::new(13))
    );
    assert_eq!(m.used_bytes, log.used_bytes());
    assert_eq!(m.free_bytes, None);
    assert_eq!(m.reader_lag, 0);

    append_n(&log, 400)?;
    log.sync()?;
    let rolled = log.metrics().segments_rolled;
    assert!(rolled > 3, "small segments rolled: {rolled}");
    log.checkpoint(log.last_lsn())?;
    assert_eq!(log.metrics().segments_removed, rolled);
    Ok(())
}

#[test]
fn reader_lag_is_what_the_slowest_tail_has_left() -> Result<()> {
    let env = Env::mem();
    let log = env.open()?;
    let mut slow = log.tail(Lsn::FIRST)?;
    let mut fast = log.tail(Lsn::FIRST)?;
    for i in 0..10u8 {
        log.append(&[i], Durability::Synced)?;
    }
    while fast.try_recv()?.is_some() {}
    for _ in 0..4 {
        slow.recv_timeout(Duration::from_secs(5))?;
    }
    assert_eq!(log.metrics().reader_lag, 6);
    drop(slow);
    assert_eq!(log.metrics().reader_lag, 0);
    Ok(())
}

#[cfg(feature = "metrics")]
mod facade {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use metrics::{
        Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };
    use tidelog::{Durability, Result};

    use crate::common::Env;

    /// Keeps every counter and gauge it hands out, by name.
    #[derive(Default)]
    struct Capture {
        values: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    }

    impl Capture {
        fn get(&self, name: &str) -> Option<u64> {
            self.values
                .lock()
                .expect("capture lock")
                .get(name)
                .map(|v| v.load(Ordering::Relaxed))
        }

        fn slot(&self, key: &Key) -> Arc<AtomicU64> {
            let mut values = self.values.lock().expect("capture lock");
            Arc::clone(values.entry(key.name().to_owned()).or_default())
        }
    }

    impl Recorder for Capture {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            assert!(
                key.labels().any(|l| l.key() == "log"),
                "every figure names its log"
            );
            Counter::from_arc(self.slot(key))
        }

        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::from_arc(self.slot(key))
        }

        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    #[test]
    fn figures_reach_the_metrics_recorder() -> Result<()> {
        let capture = Capture::default();
        metrics::with_local_recorder(&capture, || -> Result<()> {
            let env = Env::mem();
            let log = env.open()?;
            log.append(b"abc", Durability::Buffered)?;
            log.append_batch(&["de", "f"], Durability::Synced)?;
            log.metrics();
            Ok(())
        })?;
        assert_eq!(capture.get("tidelog_records_appended_total"), Some(3));
        assert_eq!(capture.get("tidelog_bytes_appended_total"), Some(6));
        assert!(capture.get("tidelog_fsyncs_total").is_some_and(|n| n >= 1));
        // Gauges hold f64 bits.
        let durable = capture.get("tidelog_durable_lsn").map(f64::from_bits);
        assert_eq!(durable, Some(3.0));
        Ok(())
    }
}
