//! Figures of one run, and their medians over runs.

use std::collections::BTreeMap;

/// Named figures of one case.
pub type Metrics = BTreeMap<String, f64>;

/// Nearest-rank percentile of sorted samples (`q` in 0..=1); NaN for none.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Median of each figure over the runs that have it.
pub fn median(runs: &[Metrics]) -> Metrics {
    let mut keys: Vec<&String> = runs.iter().flat_map(|m| m.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .map(|k| {
            let mut v: Vec<f64> = runs.iter().filter_map(|m| m.get(k).copied()).collect();
            v.sort_by(f64::total_cmp);
            let n = v.len();
            let med = if n % 2 == 1 {
                v[n / 2]
            } else {
                (v[n / 2 - 1] + v[n / 2]) / 2.0
            };
            (k.clone(), med)
        })
        .collect()
}
