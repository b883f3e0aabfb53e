//! The scaling curve of W2 as an SVG chart: commits/s against the number of committing
//! threads (log scales on both axes), one line per contender. Written by hand, so the
//! benchmark needs no plotting crate.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::contenders::Kind;
use crate::{Config, Results};

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 440.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;

/// One colour per contender, tidelog's the strongest.
fn colour(kind: Kind) -> &'static str {
    match kind {
        Kind::Tidelog => "#d62728",
        Kind::Okaywal => "#1f77b4",
        Kind::WalDb => "#9467bd",
        Kind::RaftEngine => "#2ca02c",
        Kind::Walrus => "#8c564b",
        Kind::Commitlog => "#7f7f7f",
        Kind::Writeahead => "#ff7f0e",
    }
}

/// The chart of W2's commits/s by threads for every contender whose commits are durable, or
/// `None` if W2 has fewer than two thread counts with figures.
pub fn w2_svg(config: &Config, results: &Results) -> Option<String> {
    let mut lines: BTreeMap<Kind, Vec<(f64, f64)>> = BTreeMap::new();
    for (&(t, kind), outcome) in &results.w2 {
        let Ok(m) = outcome else { continue };
        let (Some(&commits), Some(&secs)) = (m.get("commits"), m.get("secs")) else {
            continue;
        };
        let rate = commits / secs;
        if kind.commit_is_durable() && rate > 0.0 {
            lines.entry(kind).or_default().push((t as f64, rate));
        }
    }
    let threads = &config.sizes.w2_threads;
    if threads.len() < 2 || lines.is_empty() {
        return None;
    }
    let (t_min, t_max) = (threads[0] as f64, threads[threads.len() - 1] as f64);
    let rates = lines.values().flatten().map(|&(_, r)| r);
    let r_max = rates.clone().fold(1.0, f64::max);
    let r_min = rates.fold(f64::MAX, f64::min).max(1.0);
    // Decades that hold every figure.
    let (lo, hi) = (
        r_min.log10().floor(),
        r_max.log10().ceil().max(r_min.log10().floor() + 1.0),
    );
    let x = |t: f64| {
        LEFT + (t.log2() - t_min.log2()) / (t_max.log2() - t_min.log2()) * (WIDTH - LEFT - RIGHT)
    };
    let y = |r: f64| TOP + (hi - r.log10()) / (hi - lo) * (HEIGHT - TOP - BOTTOM);

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let title = match config.fsync_delay_us {
        Some(us) => format!("W2: durable commits/s by committing threads (every fsync +{us} µs)"),
        None => "W2: durable commits/s by committing threads".to_owned(),
    };
    let _ = writeln!(
        s,
        r#"<text x="{}" y="24" font-size="15">{title}</text>"#,
        LEFT
    );
    // Axes, grid and labels.
    let (x0, x1, y0, y1) = (LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM);
    let _ = writeln!(
        s,
        r#"<path d="M{x0},{y0} L{x0},{y1} L{x1},{y1}" stroke="black" fill="none"/>"#
    );
    for &t in threads {
        let px = x(t as f64);
        let _ = writeln!(
            s,
            r##"<line x1="{px:.1}" y1="{y0}" x2="{px:.1}" y2="{y1}" stroke="#ddd"/><text x="{px:.1}" y="{}" text-anchor="middle">{t}</text>"##,
            y1 + 18.0
        );
    }
    let mut decade = lo;
    while decade <= hi {
        let value = 10f64.powf(decade);
        let py = y(value);
        let label = if value >= 1e6 {
            format!("{}M", value / 1e6)
        } else if value >= 1e3 {
            format!("{}k", value / 1e3)
        } else {
            format!("{value}")
        };
        let _ = writeln!(
            s,
            r##"<line x1="{x0}" y1="{py:.1}" x2="{x1}" y2="{py:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{label}</text>"##,
            x0 - 6.0,
            py + 4.0
        );
        decade += 1.0;
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{}" text-anchor="middle">committing threads</text>"#,
        (x0 + x1) / 2.0,
        HEIGHT - 18.0
    );
    let _ = writeln!(
        s,
        r#"<text x="20" y="{:.1}" transform="rotate(-90 20 {:.1})" text-anchor="middle">commits/s (log scale)</text>"#,
        (y0 + y1) / 2.0,
        (y0 + y1) / 2.0
    );
    // One line and a legend entry per contender.
    for (i, (kind, points)) in lines.iter_mut().enumerate() {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let path: Vec<String> = points
            .iter()
            .map(|&(t, r)| format!("{:.1},{:.1}", x(t), y(r)))
            .collect();
        let (c, w) = (colour(*kind), if *kind == Kind::Tidelog { 3 } else { 2 });
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{c}" stroke-width="{w}"/>"#,
            path.join(" ")
        );
        for &(t, r) in points.iter() {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{c}"/>"#,
                x(t),
                y(r)
            );
        }
        let ly = TOP + 10.0 + 20.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="{c}" stroke-width="{w}"/><text x="{}" y="{}">{}</text>"#,
            x1 + 15.0,
            x1 + 40.0,
            x1 + 46.0,
            ly + 4.0,
            kind.name()
        );
    }
    let _ = writeln!(s, "</svg>");
    Some(s)
}
