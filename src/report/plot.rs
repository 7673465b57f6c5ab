//! An SVG plot of established connections over time, one line per client group and the total,
//! with dashed reference lines (a NAT path's capacity, the expectation) so the plateau at
//! 64,512 and the effect of a fix are visible at a glance. Plain SVG, no dependencies.

use std::fmt::Write as _;

use super::{count, escape};

/// A labelled horizontal reference line.
pub struct Mark {
    pub label: String,
    pub value: u64,
    pub style: MarkStyle,
}

/// How a reference line is drawn.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum MarkStyle {
    /// The limit the run stops at: solid, thick, red, its label bold.
    Wall,
    /// Another limit that was reached (a full NAT path): dashed red.
    Limit,
    /// A number to compare with (what was asked): dashed grey.
    Reference,
}

/// One line of the plot: (milliseconds, value) points.
pub struct Line {
    pub label: String,
    pub points: Vec<(u64, u64)>,
}

const W: f64 = 760.0;
const H: f64 = 400.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 180.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 50.0;
const COLORS: [&str; 6] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2",
];

pub fn svg(title: &str, lines: &[Line], marks: &[Mark]) -> String {
    let t_max = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let v_max = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .chain(marks.iter().map(|m| m.value))
        .max()
        .unwrap_or(1)
        .max(1);
    let v_top = nice_ceiling(v_max) as f64;
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let x = |t: u64| LEFT + pw * t as f64 / t_max;
    let y = |v: u64| TOP + ph * (1.0 - v as f64 / v_top);

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="24" font-size="15" font-weight="bold">{}</text>"#,
        LEFT,
        escape(title)
    );
    // Axes and grid.
    for i in 0..=4 {
        let v = (v_top * f64::from(i) / 4.0) as u64;
        let yy = y(v);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + pw,
            LEFT - 6.0,
            yy + 4.0,
            count(v)
        );
    }
    // Round time ticks (1, 2 or 5 times a power of ten, in ms), at most about six of them.
    let step = nice_ceiling((t_max / 6.0).ceil() as u64).max(1);
    let mut t = 0;
    while t as f64 <= t_max {
        let xx = x(t);
        let _ = writeln!(
            s,
            r#"<text x="{xx:.1}" y="{:.1}" text-anchor="middle">{} s</text>"#,
            TOP + ph + 18.0,
            t as f64 / 1000.0
        );
        t += step;
    }
    let _ = writeln!(
        s,
        r#"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{:.1}" stroke="black"/><line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="black"/>"#,
        TOP + ph,
        TOP + ph,
        LEFT + pw,
        TOP + ph
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">time since the clients started</text>"#,
        LEFT + pw / 2.0,
        H - 10.0
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(16,{:.1}) rotate(-90)" text-anchor="middle">established connections</text>"#,
        TOP + ph / 2.0
    );
    // Reference lines, labelled at the right edge.
    for m in marks {
        let yy = y(m.value);
        let (color, line, weight) = match m.style {
            MarkStyle::Wall => ("#c62828", r#"stroke-width="2.5""#, r#" font-weight="bold""#),
            MarkStyle::Limit => ("#c62828", r#"stroke-dasharray="6,4""#, ""),
            MarkStyle::Reference => ("#57606a", r#"stroke-dasharray="6,4""#, ""),
        };
        let _ = writeln!(
            s,
            r#"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="{color}" {line}/><text x="{:.1}" y="{:.1}" fill="{color}"{weight}>{} {}</text>"#,
            LEFT + pw,
            LEFT + pw + 6.0,
            yy + 4.0,
            escape(&m.label),
            count(m.value)
        );
    }
    // Data lines with a legend under the reference labels.
    for (i, l) in lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<String> = l
            .points
            .iter()
            .map(|&(t, v)| format!("{:.1},{:.1}", x(t), y(v)))
            .collect();
        let width = if l.label == "total" { 2.5 } else { 1.5 };
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="{width}" points="{}"/>"#,
            pts.join(" ")
        );
        let ly = TOP + ph - 18.0 * (lines.len() - i) as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="{width}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            LEFT + pw + 8.0,
            LEFT + pw + 28.0,
            LEFT + pw + 34.0,
            ly + 4.0,
            escape(&l.label)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// The smallest 1, 2 or 5 times a power of ten that is >= n, so axis labels are round.
fn nice_ceiling(n: u64) -> u64 {
    let mut p = 1u64;
    loop {
        for m in [1, 2, 5] {
            if m * p >= n {
                return m * p;
            }
        }
        p = p.saturating_mul(10);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_axis_tops() {
        assert_eq!(nice_ceiling(64_512), 100_000);
        assert_eq!(nice_ceiling(75_000), 100_000);
        assert_eq!(nice_ceiling(150_000), 200_000);
        assert_eq!(nice_ceiling(300), 500);
        assert_eq!(nice_ceiling(1), 1);
    }

    #[test]
    fn draws_lines_and_marks() {
        let line = Line {
            label: "load <a>".into(),
            points: vec![(0, 0), (1000, 30_000), (2000, 64_512)],
        };
        let svg = svg(
            "cross-host",
            &[line],
            &[Mark {
                label: "path capacity".into(),
                value: 64_512,
                style: MarkStyle::Wall,
            }],
        );
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("polyline"));
        assert!(svg.contains("path capacity 64,512"));
        assert!(svg.contains("load &lt;a&gt;"), "labels are escaped");
    }
}
