//! Charts as SVG, written by hand so the benchmark needs no plotting crate: W2's scaling curve
//! (commits/s against committing threads, one line per contender) and the sizes workload's
//! times against the log's size. Both have log scales on both axes.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::contenders::Kind;
use crate::report::bytes_label;
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

/// A line of a chart and its legend entry.
struct Series {
    label: String,
    colour: &'static str,
    width: u32,
    /// An SVG `stroke-dasharray`, for a line that shares its colour with another.
    dash: Option<&'static str>,
    points: Vec<(f64, f64)>,
}

/// A chart with log scales on both axes: x over a given range, y over the decades that hold
/// every point.
struct Chart {
    title: String,
    x_label: &'static str,
    y_label: &'static str,
    x_range: (f64, f64),
    /// Where the vertical grid lines go and their labels.
    x_ticks: Vec<(f64, String)>,
    /// The label of a decade on y.
    y_tick: fn(f64) -> String,
    series: Vec<Series>,
}

impl Chart {
    /// The SVG; `None` without an x range or without a positive point.
    fn render(mut self) -> Option<String> {
        let (x_min, x_max) = self.x_range;
        let ys = self.series.iter().flat_map(|l| &l.points).map(|&(_, y)| y);
        let ys: Vec<f64> = ys.filter(|y| *y > 0.0 && y.is_finite()).collect();
        if !(x_min > 0.0 && x_max > x_min) || ys.is_empty() {
            return None;
        }
        let y_max = ys.iter().copied().fold(f64::MIN, f64::max);
        let y_min = ys.iter().copied().fold(f64::MAX, f64::min);
        // Decades that hold every figure.
        let (lo, hi) = (
            y_min.log10().floor(),
            y_max.log10().ceil().max(y_min.log10().floor() + 1.0),
        );
        // Room on the right for the longest legend entry.
        let longest = self.series.iter().map(|l| l.label.chars().count());
        let right = RIGHT.max(56.0 + 7.0 * longest.max().unwrap_or(0) as f64);
        let x = |v: f64| {
            LEFT + (v.log2() - x_min.log2()) / (x_max.log2() - x_min.log2())
                * (WIDTH - LEFT - right)
        };
        let y = |v: f64| TOP + (hi - v.log10()) / (hi - lo) * (HEIGHT - TOP - BOTTOM);

        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="24" font-size="15">{}</text>"#,
            LEFT, self.title
        );
        // Axes, grid and labels.
        let (x0, x1, y0, y1) = (LEFT, WIDTH - right, TOP, HEIGHT - BOTTOM);
        let _ = writeln!(
            s,
            r#"<path d="M{x0},{y0} L{x0},{y1} L{x1},{y1}" stroke="black" fill="none"/>"#
        );
        for (v, label) in &self.x_ticks {
            let px = x(*v);
            let _ = writeln!(
                s,
                r##"<line x1="{px:.1}" y1="{y0}" x2="{px:.1}" y2="{y1}" stroke="#ddd"/><text x="{px:.1}" y="{}" text-anchor="middle">{label}</text>"##,
                y1 + 18.0
            );
        }
        let mut decade = lo;
        while decade <= hi {
            let value = 10f64.powf(decade);
            let py = y(value);
            let _ = writeln!(
                s,
                r##"<line x1="{x0}" y1="{py:.1}" x2="{x1}" y2="{py:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                x0 - 6.0,
                py + 4.0,
                (self.y_tick)(value)
            );
            decade += 1.0;
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            (x0 + x1) / 2.0,
            HEIGHT - 18.0,
            self.x_label
        );
        let _ = writeln!(
            s,
            r#"<text x="20" y="{:.1}" transform="rotate(-90 20 {:.1})" text-anchor="middle">{}</text>"#,
            (y0 + y1) / 2.0,
            (y0 + y1) / 2.0,
            self.y_label
        );
        // One line and a legend entry per series.
        for (i, line) in self.series.iter_mut().enumerate() {
            line.points.sort_by(|a, b| a.0.total_cmp(&b.0));
            let path: Vec<String> = line
                .points
                .iter()
                .map(|&(a, b)| format!("{:.1},{:.1}", x(a), y(b)))
                .collect();
            let (c, w) = (line.colour, line.width);
            let dash = line
                .dash
                .map_or(String::new(), |d| format!(r#" stroke-dasharray="{d}""#));
            let _ = writeln!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{c}" stroke-width="{w}"{dash}/>"#,
                path.join(" ")
            );
            for &(a, b) in &line.points {
                let _ = writeln!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{c}"/>"#,
                    x(a),
                    y(b)
                );
            }
            let ly = TOP + 10.0 + 20.0 * i as f64;
            let _ = writeln!(
                s,
                r#"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="{c}" stroke-width="{w}"{dash}/><text x="{}" y="{}">{}</text>"#,
                x1 + 15.0,
                x1 + 40.0,
                x1 + 46.0,
                ly + 4.0,
                line.label
            );
        }
        let _ = writeln!(s, "</svg>");
        Some(s)
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
    Chart {
        title: match config.fsync_delay_us {
            Some(us) => {
                format!("W2: durable commits/s by committing threads (every fsync +{us} µs)")
            }
            None => "W2: durable commits/s by committing threads".to_owned(),
        },
        x_label: "committing threads",
        x_range: (threads[0] as f64, threads[threads.len() - 1] as f64),
        y_label: "commits/s (log scale)",
        x_ticks: threads.iter().map(|&t| (t as f64, t.to_string())).collect(),
        y_tick: |value| {
            if value >= 1e6 {
                format!("{}M", value / 1e6)
            } else if value >= 1e3 {
                format!("{}k", value / 1e3)
            } else {
                format!("{value}")
            }
        },
        series: lines
            .into_iter()
            .map(|(kind, points)| Series {
                label: kind.name().to_owned(),
                colour: colour(kind),
                width: if kind == Kind::Tidelog { 3 } else { 2 },
                dash: None,
                points,
            })
            .collect(),
    }
    .render()
}

/// A decade of seconds as a label: 1 s, 100 ms, 10 µs.
fn seconds_label(value: f64) -> String {
    let (v, unit) = if value >= 1.0 {
        (value, "s")
    } else if value >= 1e-3 {
        (value * 1e3, "ms")
    } else {
        (value * 1e6, "µs")
    };
    format!("{} {unit}", v.round())
}

/// The chart of the sizes workload: reopen (full and trusting seals) and read-all time against
/// the log's size (the lengths of its files), or `None` with figures for fewer than two sizes. With tidelog alone, a
/// colour per measure; with peers, a colour per contender and a dash pattern per measure.
pub fn sizes_svg(config: &Config, results: &Results) -> Option<String> {
    const MEASURES: [(&str, &str, &str, Option<&str>); 3] = [
        ("reopen_secs", "reopen, full", "#d62728", None),
        (
            "trusted_reopen_secs",
            "reopen, trust_seals",
            "#2ca02c",
            Some("7 4"),
        ),
        ("read_secs", "read-all", "#1f77b4", Some("2 3")),
    ];
    let kinds: Vec<Kind> = config
        .size_contenders
        .iter()
        .copied()
        .filter(|k| {
            results
                .sizes
                .iter()
                .any(|((_, kk), o)| kk == k && o.is_ok())
        })
        .collect();
    let alone = kinds.len() == 1;
    let mut series = Vec::new();
    let mut sizes: Vec<f64> = Vec::new();
    for &kind in &kinds {
        for (key, label, own_colour, dash) in MEASURES {
            let points: Vec<(f64, f64)> = results
                .sizes
                .iter()
                .filter(|((_, k), _)| *k == kind)
                .filter_map(|(_, o)| {
                    let m = o.as_ref().ok()?;
                    Some((*m.get("log_bytes")?, *m.get(key)?))
                })
                .filter(|&(b, v)| b > 0.0 && v > 0.0)
                .collect();
            if points.is_empty() {
                continue;
            }
            sizes.extend(points.iter().map(|p| p.0));
            series.push(Series {
                label: if alone {
                    label.to_owned()
                } else {
                    format!("{} {label}", kind.name())
                },
                colour: if alone { own_colour } else { colour(kind) },
                width: if kind == Kind::Tidelog { 3 } else { 2 },
                dash: if alone { None } else { dash },
                points,
            });
        }
    }
    sizes.sort_by(f64::total_cmp);
    let x_range = (*sizes.first()?, *sizes.last()?);
    // One tick per log size; sizes within 10% of each other (the same records, other
    // contenders) share the first one's.
    let mut x_ticks: Vec<(f64, String)> = Vec::new();
    for b in sizes {
        if x_ticks.last().is_none_or(|&(prev, _)| b > prev * 1.1) {
            x_ticks.push((b, bytes_label(b)));
        }
    }
    if x_ticks.len() < 2 {
        return None;
    }
    Chart {
        title: if alone {
            format!("{}: reopen and read-all time by log size", kinds[0].name())
        } else {
            "Reopen and read-all time by log size".to_owned()
        },
        x_label: "log size (log scale)",
        x_range,
        y_label: "seconds (log scale)",
        x_ticks,
        y_tick: seconds_label,
        series,
    }
    .render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Metrics;

    fn config(args: &[&str]) -> Config {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        crate::parse_args(&args).unwrap()
    }

    fn figures(pairs: &[(&str, f64)]) -> Metrics {
        pairs.iter().map(|&(k, v)| (k.to_owned(), v)).collect()
    }

    #[test]
    fn sizes_chart_has_a_line_per_measure() {
        let config = config(&["--only", "sizes"]);
        let mut results = Results::default();
        for (n, segments) in [(800_000u64, 2.0), (8_000_000, 16.0), (81_000_000, 160.0)] {
            let m = figures(&[
                ("log_bytes", segments * 64.0 * 1024.0 * 1024.0),
                ("reopen_secs", n as f64 * 6e-8),
                ("trusted_reopen_secs", 0.028),
                ("read_secs", n as f64 * 1.1e-7),
            ]);
            results.sizes.insert((n, Kind::Tidelog), Ok(m));
        }
        let svg = sizes_svg(&config, &results).unwrap();
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert_eq!(svg.matches("<circle").count(), 9);
        for label in [
            "reopen, full",
            "reopen, trust_seals",
            "read-all",
            "128 MiB",
            "1.0 GiB",
            "10.0 GiB",
            "10 ms",
            "10 s",
        ] {
            assert!(svg.contains(&format!(">{label}<")), "{label} missing");
        }
        // The legend's longest entry fits: the plot ends before it.
        assert!(svg.contains(r#"<path d="M80,40 L80,380 L531,380""#));
    }

    #[test]
    fn sizes_chart_needs_two_sizes() {
        let config = config(&["--only", "sizes"]);
        let mut results = Results::default();
        let m = figures(&[("log_bytes", 1e8), ("reopen_secs", 0.06)]);
        results.sizes.insert((800_000, Kind::Tidelog), Ok(m));
        results
            .sizes
            .insert((8_000_000, Kind::Tidelog), Err("failed".into()));
        assert!(sizes_svg(&config, &results).is_none());
    }

    #[test]
    fn sizes_chart_with_peers_has_a_dash_per_measure() {
        let config = config(&["--only", "sizes", "--contenders", "tidelog,okaywal"]);
        let mut results = Results::default();
        for n in [800_000u64, 8_000_000] {
            let b = n as f64 * 132.0;
            let t = figures(&[
                ("log_bytes", b),
                ("reopen_secs", 0.1),
                ("trusted_reopen_secs", 0.03),
                ("read_secs", 0.2),
            ]);
            results.sizes.insert((n, Kind::Tidelog), Ok(t));
            let o = figures(&[("log_bytes", b * 1.05), ("reopen_secs", 0.5)]);
            results.sizes.insert((n, Kind::Okaywal), Ok(o));
        }
        let svg = sizes_svg(&config, &results).unwrap();
        assert_eq!(svg.matches("<polyline").count(), 4);
        assert!(svg.contains(">okaywal reopen, full<"));
        assert!(svg.contains(">tidelog reopen, trust_seals<"));
        assert!(svg.contains(r##"stroke="#d62728" stroke-width="3" stroke-dasharray="7 4""##));
        // Sizes 5% apart share a tick.
        let vertical = |l: &&str| l.contains(r#" y1="40" x2="#) && l.contains("#ddd");
        assert_eq!(svg.lines().filter(vertical).count(), 2);
    }
}
