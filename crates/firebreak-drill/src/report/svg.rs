//! A minimal inline-SVG chart for the offline report: one time axis, a
//! linear or logarithmic value axis, shaded windows, lines and dots.

use std::fmt::Write as _;

/// Escapes text for HTML and SVG.
pub fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A "nice" tick step for a range, aiming at about `target` ticks.
pub fn nice_step(span: f64, target: f64) -> f64 {
    if span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    let raw = span / target.max(1.0);
    let magnitude = 10f64.powf(raw.log10().floor());
    let residual = raw / magnitude;
    let nice = if residual <= 1.0 {
        1.0
    } else if residual <= 2.0 {
        2.0
    } else if residual <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

fn fmt_tick(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

/// A chart being drawn.
pub struct Chart {
    width: f64,
    height: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    x: (f64, f64),
    y: (f64, f64),
    log_y: bool,
    body: String,
    legend: Vec<(String, String)>,
}

impl Chart {
    /// A chart of `x` (seconds) by `y`; a log axis needs `y.0 > 0`.
    pub fn new(x: (f64, f64), y: (f64, f64), log_y: bool) -> Chart {
        let y = if log_y {
            (y.0.max(1e-3), y.1.max(y.0.max(1e-3) * 10.0))
        } else {
            y
        };
        Chart {
            width: 900.0,
            height: 280.0,
            left: 60.0,
            right: 15.0,
            top: 30.0,
            bottom: 38.0,
            x: (x.0, if x.1 > x.0 { x.1 } else { x.0 + 1.0 }),
            y: (y.0, if y.1 > y.0 { y.1 } else { y.0 + 1.0 }),
            log_y,
            body: String::new(),
            legend: Vec::new(),
        }
    }

    fn sx(&self, x: f64) -> f64 {
        let w = self.width - self.left - self.right;
        self.left + (x - self.x.0) / (self.x.1 - self.x.0) * w
    }

    fn sy(&self, y: f64) -> f64 {
        let h = self.height - self.top - self.bottom;
        let frac = if self.log_y {
            let y = y.max(self.y.0);
            (y.log10() - self.y.0.log10()) / (self.y.1.log10() - self.y.0.log10())
        } else {
            (y - self.y.0) / (self.y.1 - self.y.0)
        };
        self.top + h * (1.0 - frac.clamp(0.0, 1.0))
    }

    /// Shades the window `[x0, x1)` (e.g. the fault).
    pub fn shade(&mut self, x0: f64, x1: f64, color: &str, label: &str) {
        let (a, b) = (self.sx(x0.max(self.x.0)), self.sx(x1.min(self.x.1)));
        let _ = write!(
            self.body,
            r#"<rect x="{a:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{color}" fill-opacity="0.18"><title>{}</title></rect>"#,
            self.top,
            (b - a).max(1.0),
            self.height - self.top - self.bottom,
            esc(label)
        );
    }

    /// A vertical marker at `x`.
    pub fn vline(&mut self, x: f64, color: &str, label: &str) {
        let sx = self.sx(x);
        let _ = write!(
            self.body,
            r#"<line x1="{sx:.1}" x2="{sx:.1}" y1="{:.1}" y2="{:.1}" stroke="{color}" stroke-dasharray="4 3"/><text x="{:.1}" y="{:.1}" font-size="11" fill="{color}">{}</text>"#,
            self.top,
            self.height - self.bottom,
            sx + 3.0,
            self.top + 12.0,
            esc(label)
        );
    }

    /// A line through `points`, broken where the value is missing (an
    /// isolated point becomes a dot).
    pub fn line(&mut self, points: &[(f64, Option<f64>)], color: &str, label: &str, dashed: bool) {
        let dash = if dashed { r#" stroke-dasharray="5 3""# } else { "" };
        let mut segments: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for &(x, y) in points {
            match y {
                Some(y) => segments.last_mut().expect("one segment").push((self.sx(x), self.sy(y))),
                None => segments.push(Vec::new()),
            }
        }
        for segment in segments {
            match segment.len() {
                0 => {}
                1 => {
                    let _ = write!(
                        self.body,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="1.8" fill="{color}"/>"#,
                        segment[0].0, segment[0].1
                    );
                }
                _ => {
                    let coords: Vec<String> = segment.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
                    let _ = write!(
                        self.body,
                        r#"<polyline fill="none" stroke="{color}" stroke-width="1.6"{dash} points="{}"/>"#,
                        coords.join(" ")
                    );
                }
            }
        }
        self.legend.push((color.to_owned(), label.to_owned()));
    }

    /// Dots at `points`.
    pub fn dots(&mut self, points: &[(f64, f64)], color: &str, label: &str) {
        for &(x, y) in points {
            let _ = write!(
                self.body,
                r#"<circle cx="{:.1}" cy="{:.1}" r="1.6" fill="{color}" fill-opacity="0.55"/>"#,
                self.sx(x),
                self.sy(y)
            );
        }
        if !points.is_empty() {
            self.legend.push((color.to_owned(), label.to_owned()));
        }
    }

    /// The finished `<svg>`.
    pub fn finish(self, x_label: &str, y_label: &str) -> String {
        let mut svg = format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="100%" font-family="sans-serif">"#,
            w = self.width,
            h = self.height
        );
        let (x0, x1, y_axis) = (self.left, self.width - self.right, self.height - self.bottom);
        let _ = write!(
            svg,
            r##"<rect x="{x0}" y="{t}" width="{pw}" height="{ph}" fill="#fcfcfc" stroke="#ccc"/>"##,
            t = self.top,
            pw = x1 - x0,
            ph = y_axis - self.top
        );
        // X ticks.
        let step = nice_step(self.x.1 - self.x.0, 10.0);
        let mut tick = (self.x.0 / step).ceil() * step;
        while tick <= self.x.1 + 1e-9 {
            let sx = self.sx(tick);
            let _ = write!(
                svg,
                r##"<line x1="{sx:.1}" x2="{sx:.1}" y1="{y_axis}" y2="{:.1}" stroke="#999"/><text x="{sx:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"##,
                y_axis + 4.0,
                y_axis + 16.0,
                fmt_tick(tick)
            );
            tick += step;
        }
        // Y ticks.
        let ticks: Vec<f64> = if self.log_y {
            let mut v = 10f64.powf(self.y.0.log10().floor());
            let mut out = Vec::new();
            while v <= self.y.1 * 1.0001 {
                if v >= self.y.0 * 0.9999 {
                    out.push(v);
                }
                v *= 10.0;
            }
            out
        } else {
            let step = nice_step(self.y.1 - self.y.0, 5.0);
            let mut out = Vec::new();
            let mut v = (self.y.0 / step).ceil() * step;
            while v <= self.y.1 + 1e-9 {
                out.push(v);
                v += step;
            }
            out
        };
        for v in ticks {
            let sy = self.sy(v);
            let _ = write!(
                svg,
                r##"<line x1="{x0}" x2="{x1}" y1="{sy:.1}" y2="{sy:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
                x0 - 4.0,
                sy + 4.0,
                fmt_tick(v)
            );
        }
        svg.push_str(&self.body);
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">{}</text><text x="14" y="{:.1}" font-size="12" text-anchor="middle" transform="rotate(-90 14 {:.1})">{}</text>"#,
            (x0 + x1) / 2.0,
            self.height - 4.0,
            esc(x_label),
            (self.top + y_axis) / 2.0,
            (self.top + y_axis) / 2.0,
            esc(y_label)
        );
        let mut lx = x0 + 10.0;
        for (color, label) in &self.legend {
            let _ = write!(
                svg,
                r#"<rect x="{lx:.1}" y="{:.1}" width="10" height="10" fill="{color}"/><text x="{:.1}" y="{:.1}" font-size="11">{}</text>"#,
                self.top - 20.0,
                lx + 14.0,
                self.top - 11.0,
                esc(label)
            );
            lx += 24.0 + 6.5 * label.len() as f64;
        }
        svg.push_str("</svg>");
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_nice() {
        assert_eq!(nice_step(40.0, 10.0), 5.0);
        assert_eq!(nice_step(7.0, 10.0), 1.0);
        assert_eq!(nice_step(1000.0, 5.0), 200.0);
    }

    #[test]
    fn a_chart_is_well_formed_svg() {
        let mut c = Chart::new((0.0, 40.0), (0.1, 2000.0), true);
        c.shade(12.0, 24.0, "#d33", "fault");
        c.vline(12.0, "#d33", "fault");
        c.line(
            &[(0.0, Some(2.0)), (1.0, None), (2.0, Some(3.0)), (3.0, Some(4.0))],
            "#36c",
            "p50",
            false,
        );
        c.dots(&[(5.0, 1.5)], "#393", "ok");
        let svg = c.finish("seconds", "latency (ms)");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(
            svg.matches("<polyline").count(),
            1,
            "a broken line with one point is no polyline"
        );
        assert!(svg.contains("<title>fault</title>"));
        assert_eq!(esc("<a&\">"), "&lt;a&amp;&quot;&gt;");
    }
}
