//! The seed's figure as SVG: per fit, a panel with the member curves, the predictive mean, the
//! ±2σ total band, the truth, the noisy test observations and the training points (its title
//! carries the scores), over a calibration-curve panel with the diagonal. Several fits sit side
//! by side in one grid.
//!
//! The SVG is written directly; PNG is that SVG rendered by `resvg` (so both formats come from
//! one drawing), with the system's fonts (DejaVu Sans preferred).

use core::fmt::Write as _;

use crate::ExactScores;

/// Everything one column of the figure shows.
#[derive(Clone, Debug)]
pub struct FitPanel<'a> {
    /// Column title (e.g. `"A — from scratch (0.8 s)"`).
    pub label: String,
    /// The test grid, `[N]`.
    pub x_test: &'a [f64],
    /// Member (component) predictions, `[M, N]`.
    pub member_means: &'a [f64],
    /// Noiseless truth on the grid, if known.
    pub y_truth: Option<&'a [f64]>,
    /// Noisy test observations, `[N]`.
    pub y_obs: &'a [f64],
    /// Training inputs and targets.
    pub train: (&'a [f64], &'a [f64]),
    /// The fit's exact scores (band, coverage curve, title numbers).
    pub scores: &'a ExactScores,
}

const PANEL_W: f64 = 460.0;
const TOP_H: f64 = 330.0;
const BOTTOM_H: f64 = 250.0;
const MARGIN: f64 = 52.0;
const BLUE: &str = "#1f77b4";

/// A rectangle of the canvas with a linear map from data coordinates.
struct Axes {
    left: f64,
    top: f64,
    width: f64,
    height: f64,
    x: (f64, f64),
    y: (f64, f64),
}

impl Axes {
    fn px(&self, x: f64) -> f64 {
        self.left + (x - self.x.0) / (self.x.1 - self.x.0) * self.width
    }
    fn py(&self, y: f64) -> f64 {
        self.top + self.height - (y - self.y.0) / (self.y.1 - self.y.0) * self.height
    }
    fn polyline(&self, svg: &mut String, xs: &[f64], ys: &[f64], style: &str) {
        let mut points = String::new();
        for (&x, &y) in xs.iter().zip(ys) {
            let _ = write!(
                points,
                "{:.1},{:.1} ",
                self.px(x),
                self.py(y.clamp(self.y.0, self.y.1))
            );
        }
        let _ = writeln!(svg, r#"<polyline fill="none" {style} points="{points}"/>"#);
    }
    /// The frame, ticks and axis labels of a chart on linear axes.
    fn frame(&self, svg: &mut String, x_label: &str, y_label: &str) {
        self.frame_with(svg, x_label, y_label, AxisScale::Linear);
    }

    /// The frame, ticks and axis labels, the ticks labelled as `scale` says.
    fn frame_with(&self, svg: &mut String, x_label: &str, y_label: &str, scale: AxisScale) {
        let _ = writeln!(
            svg,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#333"/>"##,
            self.left, self.top, self.width, self.height
        );
        // Linear axes get tick marks; log axes only labels, a little smaller, which take more
        // room beside the y axis.
        let (marks, font, below, beside, suffix) = match scale {
            AxisScale::Linear => (true, 11, 32.0, 38.0, ""),
            AxisScale::Log10 => (false, 10, 34.0, 56.0, " (log scale)"),
        };
        let b = self.top + self.height;
        for t in ticks(self.x.0, self.x.1) {
            let x = self.px(t);
            if marks {
                let _ = write!(
                    svg,
                    r##"<line x1="{x:.1}" y1="{b:.1}" x2="{x:.1}" y2="{:.1}" stroke="#333"/>"##,
                    b + 4.0
                );
            }
            let _ = writeln!(
                svg,
                r#"<text x="{x:.1}" y="{:.1}" font-size="{font}" text-anchor="middle">{}</text>"#,
                b + 16.0,
                scale.tick_label(t)
            );
        }
        for t in ticks(self.y.0, self.y.1) {
            let y = self.py(t);
            if marks {
                let _ = write!(
                    svg,
                    r##"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#333"/>"##,
                    self.left - 4.0,
                    self.left
                );
            }
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" font-size="{font}" text-anchor="end">{}</text>"#,
                self.left - 6.0,
                y + 4.0,
                scale.tick_label(t)
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">{}{suffix}</text>"#,
            self.left + self.width / 2.0,
            b + below,
            escape(x_label)
        );
        let (cx, cy) = (self.left - beside, self.top + self.height / 2.0);
        let _ = writeln!(
            svg,
            r#"<text x="{cx:.1}" y="{cy:.1}" font-size="12" text-anchor="middle" transform="rotate(-90 {cx:.1} {cy:.1})">{}{suffix}</text>"#,
            escape(y_label)
        );
    }
}

/// How an axis' values map to its tick labels.
#[derive(Clone, Copy)]
enum AxisScale {
    /// The values themselves.
    Linear,
    /// The values are `log10` of the original units; ticks are labelled in the original units.
    Log10,
}

impl AxisScale {
    fn tick_label(self, t: f64) -> String {
        match self {
            AxisScale::Linear => tick_label(t),
            AxisScale::Log10 => {
                let v = 10f64.powf(t);
                if v >= 1.0 && (v - v.round()).abs() < 1e-9 * v {
                    format!("{}", v.round())
                } else {
                    format!("{v:.3}")
                }
            }
        }
    }
}

/// About five round tick values covering `[lo, hi]`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let raw = (hi - lo) / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(raw);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + 1e-9 * step {
        out.push(if t.abs() < 1e-12 * step { 0.0 } else { t });
        t += step;
    }
    out
}

fn tick_label(t: f64) -> String {
    let s = format!("{t:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn legend(svg: &mut String, x: f64, y: f64, width: f64, entries: &[(&str, &str)]) {
    let _ = writeln!(
        svg,
        r##"<rect x="{x:.1}" y="{y:.1}" width="{width:.1}" height="{:.1}" fill="white" fill-opacity="0.85" stroke="#bbb"/>"##,
        14.0 * entries.len() as f64 + 8.0
    );
    for (k, (swatch, text)) in entries.iter().enumerate() {
        let yy = y + 12.0 + 14.0 * k as f64;
        let _ = writeln!(
            svg,
            r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" {swatch}/><text x="{:.1}" y="{:.1}" font-size="9">{}</text>"#,
            x + 6.0,
            yy - 3.0,
            x + 26.0,
            yy - 3.0,
            x + 32.0,
            yy,
            escape(text)
        );
    }
}

fn fit_column(svg: &mut String, column: usize, panel: &FitPanel<'_>) {
    let left = column as f64 * PANEL_W + MARGIN + 10.0;
    let n = panel.x_test.len();
    let s = panel.scores;
    let band = &s.band;
    let lower: Vec<f64> = (0..n)
        .map(|i| band.mean[i] - 2.0 * band.total_std[i])
        .collect();
    let upper: Vec<f64> = (0..n)
        .map(|i| band.mean[i] + 2.0 * band.total_std[i])
        .collect();
    let mut all_y: Vec<f64> = panel.y_obs.to_vec();
    all_y.extend_from_slice(panel.train.1);
    all_y.extend(lower.iter().chain(&upper));
    let (ymin, ymax) = all_y
        .iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let pad = 0.05 * (ymax - ymin).max(1e-9);
    let xs = panel.x_test;
    let (xmin, xmax) = xs
        .iter()
        .chain(panel.train.0)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let top = Axes {
        left,
        top: 62.0,
        width: PANEL_W - MARGIN - 20.0,
        height: TOP_H - 62.0 - 40.0,
        x: (xmin, xmax),
        y: (ymin - pad, ymax + pad),
    };
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="22" font-size="13" font-weight="bold" text-anchor="middle">{}</text>"#,
        left + top.width / 2.0,
        escape(&panel.label)
    );
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="40" font-size="11" text-anchor="middle">RMSE-truth={}, NLL={:.3}, 95% coverage={:.2}, sharpness={:.3}</text>"#,
        left + top.width / 2.0,
        s.rmse_truth.map_or("—".to_owned(), |r| format!("{r:.4}")),
        s.nll,
        s.coverage_95,
        s.sharpness_95
    );
    // Band.
    let mut points = String::new();
    for (&x, &u) in xs.iter().zip(&upper) {
        let _ = write!(points, "{:.1},{:.1} ", top.px(x), top.py(u));
    }
    for (&x, &l) in xs.iter().zip(&lower).rev() {
        let _ = write!(points, "{:.1},{:.1} ", top.px(x), top.py(l));
    }
    let _ = writeln!(
        svg,
        r#"<polygon points="{points}" fill="{BLUE}" fill-opacity="0.18"/>"#
    );
    let members = panel.member_means.len() / n.max(1);
    for m in 0..members {
        let ys = &panel.member_means[m * n..(m + 1) * n];
        top.polyline(
            svg,
            xs,
            ys,
            &format!(r#"stroke="{BLUE}" stroke-opacity="0.25" stroke-width="0.8""#),
        );
    }
    top.polyline(
        svg,
        xs,
        &band.mean,
        &format!(r#"stroke="{BLUE}" stroke-width="2""#),
    );
    if let Some(truth) = panel.y_truth {
        top.polyline(
            svg,
            xs,
            truth,
            r#"stroke="black" stroke-width="1.5" stroke-dasharray="6 4""#,
        );
    }
    for (&x, &y) in xs.iter().zip(panel.y_obs) {
        let _ = writeln!(
            svg,
            r##"<circle cx="{:.1}" cy="{:.1}" r="1.8" fill="#888" fill-opacity="0.5"/>"##,
            top.px(x),
            top.py(y)
        );
    }
    for (&x, &y) in panel.train.0.iter().zip(panel.train.1) {
        let _ = writeln!(
            svg,
            r#"<circle cx="{:.1}" cy="{:.1}" r="2.6" fill="black" fill-opacity="0.75"/>"#,
            top.px(x),
            top.py(y)
        );
    }
    top.frame(svg, "x", "y");
    if column == 0 {
        legend(
            svg,
            top.left + top.width - 194.0,
            top.top + top.height - 84.0,
            190.0,
            &[
                (
                    &format!(r#"stroke="{BLUE}" stroke-width="2""#),
                    "predictive mean",
                ),
                (
                    &format!(r#"stroke="{BLUE}" stroke-opacity="0.3" stroke-width="8""#),
                    "±2σ predictive (epist. + aleat.)",
                ),
                (r#"stroke="black" stroke-dasharray="6 4""#, "truth"),
                (r##"stroke="#888" stroke-width="3""##, "noisy test obs"),
                (r#"stroke="black" stroke-width="4""#, "train"),
            ],
        );
    }
    // Calibration panel.
    let side = BOTTOM_H - 60.0;
    let bottom = Axes {
        left: left + (top.width - side) / 2.0,
        top: TOP_H + 16.0,
        width: side,
        height: side,
        x: (0.0, 1.0),
        y: (0.0, 1.0),
    };
    bottom.polyline(
        svg,
        &[0.0, 1.0],
        &[0.0, 1.0],
        r#"stroke="black" stroke-dasharray="5 4""#,
    );
    bottom.polyline(
        svg,
        &s.alphas,
        &s.coverage_curve,
        &format!(r#"stroke="{BLUE}" stroke-width="1.5""#),
    );
    for (&a, &c) in s.alphas.iter().zip(&s.coverage_curve) {
        let _ = writeln!(
            svg,
            r#"<circle cx="{:.1}" cy="{:.1}" r="2.8" fill="{BLUE}"/>"#,
            bottom.px(a),
            bottom.py(c)
        );
    }
    bottom.frame(svg, "nominal coverage α", "empirical coverage");
    if column == 0 {
        legend(
            svg,
            bottom.left + bottom.width - 124.0,
            bottom.top + bottom.height - 40.0,
            120.0,
            &[
                (
                    r#"stroke="black" stroke-dasharray="5 4""#,
                    "perfect calibration",
                ),
                (
                    &format!(r#"stroke="{BLUE}" stroke-width="2""#),
                    "empirical coverage",
                ),
            ],
        );
    }
}

/// The seed's figure for one or more fits, side by side, as an SVG document.
///
/// ```
/// use flock_metrics::{FitPanel, MixturePredictive, Sigma, exact_scores, figure_svg};
/// let x: Vec<f64> = (0..50).map(|i| i as f64 / 5.0 - 5.0).collect();
/// let truth: Vec<f64> = x.iter().map(|v| v.sin()).collect();
/// let members: Vec<f64> = (0..4).flat_map(|m| truth.iter().map(move |t| t + 0.01 * m as f64)).collect();
/// let pred = MixturePredictive::new(&members, 4, 50, Sigma::Shared(0.1))?;
/// let scores = exact_scores(&pred, &truth, Some(&truth))?;
/// let svg = figure_svg(&[FitPanel {
///     label: "example".into(), x_test: &x, member_means: &members, y_truth: Some(&truth),
///     y_obs: &truth, train: (&x[..10], &truth[..10]), scores: &scores,
/// }]);
/// assert!(svg.starts_with("<svg") && svg.contains("polyline"));
/// # Ok::<(), flock_metrics::MetricsError>(())
/// ```
pub fn figure_svg(panels: &[FitPanel<'_>]) -> String {
    let width = PANEL_W * panels.len().max(1) as f64 + 20.0;
    let height = TOP_H + BOTTOM_H + 10.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (column, panel) in panels.iter().enumerate() {
        fit_column(&mut svg, column, panel);
    }
    svg.push_str("</svg>\n");
    svg
}

/// Why a figure could not be produced.
#[derive(Debug)]
pub enum FigureError {
    /// The SVG could not be parsed for rendering (a bug: please report it).
    Render(String),
    /// The file name has no `.svg` or `.png` extension.
    Format(std::path::PathBuf),
    /// PNG was asked of a build without the `png` feature.
    PngUnavailable,
}

impl core::fmt::Display for FigureError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FigureError::Render(e) => write!(f, "rendering the figure failed: {e}"),
            FigureError::Format(p) => {
                write!(f, "{}: figures are written as .svg or .png", p.display())
            }
            FigureError::PngUnavailable => write!(
                f,
                "PNG figures need flock-metrics' `png` feature; ask for an .svg file instead"
            ),
        }
    }
}

impl std::error::Error for FigureError {}

/// A figure file's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FigureFormat {
    /// The SVG as written.
    Svg,
    /// The SVG rendered at twice its size (the `png` feature).
    Png,
}

impl FigureFormat {
    /// The format a file name asks for, by its extension.
    ///
    /// ```
    /// use flock_metrics::FigureFormat;
    /// assert_eq!(FigureFormat::of("fit.svg".as_ref())?, FigureFormat::Svg);
    /// assert!(FigureFormat::of("fit.jpg".as_ref()).is_err());
    /// # Ok::<(), flock_metrics::FigureError>(())
    /// ```
    ///
    /// # Errors
    /// [`FigureError::Format`] for another extension.
    pub fn of(path: &std::path::Path) -> Result<FigureFormat, FigureError> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("svg") => Ok(FigureFormat::Svg),
            Some("png") => Ok(FigureFormat::Png),
            _ => Err(FigureError::Format(path.to_owned())),
        }
    }
}

/// The bytes of the figure `svg` in `format` (PNG at 2× the SVG's size), for the caller to write.
///
/// # Errors
/// Rendering errors; [`FigureError::PngUnavailable`] for PNG without the `png` feature.
pub fn encode_figure(svg: String, format: FigureFormat) -> Result<Vec<u8>, FigureError> {
    match format {
        FigureFormat::Svg => Ok(svg.into_bytes()),
        #[cfg(feature = "png")]
        FigureFormat::Png => svg_to_png(&svg, 2.0),
        #[cfg(not(feature = "png"))]
        FigureFormat::Png => Err(FigureError::PngUnavailable),
    }
}

/// Renders an SVG document (e.g. from [`figure_svg`]) to PNG bytes at `scale`× its size.
///
/// # Errors
/// [`FigureError::Render`] if the document cannot be parsed or encoded.
#[cfg(feature = "png")]
pub fn svg_to_png(svg: &str, scale: f32) -> Result<Vec<u8>, FigureError> {
    use resvg::{tiny_skia, usvg};
    let mut options = usvg::Options::default();
    options.fontdb_mut().load_system_fonts();
    options.fontdb_mut().set_sans_serif_family("DejaVu Sans");
    let tree =
        usvg::Tree::from_str(svg, &options).map_err(|e| FigureError::Render(e.to_string()))?;
    let size = tree
        .size()
        .to_int_size()
        .scale_by(scale)
        .ok_or_else(|| FigureError::Render("empty figure".to_owned()))?;
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height())
        .ok_or_else(|| FigureError::Render("empty figure".to_owned()))?;
    resvg::render(
        &tree,
        tiny_skia::Transform::from_scale(scale, scale),
        &mut pixmap.as_mut(),
    );
    pixmap
        .encode_png()
        .map_err(|e| FigureError::Render(e.to_string()))
}

/// One line of a [`line_chart_svg`].
#[derive(Clone, Debug)]
pub struct Series<'a> {
    /// Legend text.
    pub label: &'a str,
    /// Y values, one per x.
    pub values: &'a [f64],
    /// Dashed (e.g. an ideal reference line).
    pub dashed: bool,
}

/// A simple line chart (e.g. cost against ensemble size), optionally on log-log axes with tick
/// labels in the original units.
///
/// ```
/// use flock_metrics::{Series, line_chart_svg};
/// let x = [1.0, 4.0, 16.0];
/// let svg = line_chart_svg("cost", "members", "µs", &x,
///     &[Series { label: "measured", values: &[10.0, 30.0, 110.0], dashed: false }], true);
/// assert!(svg.contains("measured") && svg.contains("polyline"));
/// ```
pub fn line_chart_svg(
    title: &str,
    x_label: &str,
    y_label: &str,
    x: &[f64],
    series: &[Series<'_>],
    log_axes: bool,
) -> String {
    let t = |v: f64| if log_axes { v.log10() } else { v };
    let xs: Vec<f64> = x.iter().map(|&v| t(v)).collect();
    let all_y: Vec<f64> = series
        .iter()
        .flat_map(|s| s.values.iter().map(|&v| t(v)))
        .filter(|v| v.is_finite())
        .collect();
    let (ymin, ymax) = all_y
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let (xmin, xmax) = xs
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let pad_y = 0.05 * (ymax - ymin).max(1e-9);
    let pad_x = 0.03 * (xmax - xmin).max(1e-9);
    let (width, height) = (620.0, 420.0);
    let axes = Axes {
        left: 80.0,
        top: 50.0,
        width: width - 110.0,
        height: height - 110.0,
        x: (xmin - pad_x, xmax + pad_x),
        y: (ymin - pad_y, ymax + pad_y),
    };
    let mut svg = String::new();
    open_figure(&mut svg, width, height, title);
    const COLOURS: [&str; 6] = [BLUE, "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#555555"];
    for (k, s) in series.iter().enumerate() {
        let ys: Vec<f64> = s.values.iter().map(|&v| t(v)).collect();
        let colour = COLOURS[k % COLOURS.len()];
        let dash = if s.dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        axes.polyline(
            &mut svg,
            &xs,
            &ys,
            &format!(r#"stroke="{colour}" stroke-width="2"{dash}"#),
        );
        for (&x, &y) in xs.iter().zip(&ys) {
            if !s.dashed && y.is_finite() {
                let _ = writeln!(
                    svg,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#,
                    axes.px(x),
                    axes.py(y)
                );
            }
        }
        let ly = 64.0 + 16.0 * k as f64;
        let _ = writeln!(
            svg,
            r#"<line x1="96" y1="{:.1}" x2="120" y2="{:.1}" stroke="{colour}" stroke-width="2"{dash}/><text x="126" y="{:.1}" font-size="11">{}</text>"#,
            ly - 4.0,
            ly - 4.0,
            ly,
            escape(s.label)
        );
    }
    let scale = if log_axes {
        AxisScale::Log10
    } else {
        AxisScale::Linear
    };
    axes.frame_with(&mut svg, x_label, y_label, scale);
    svg.push_str("</svg>\n");
    svg
}

/// The opening of a `width × height` figure with a white background and a centred title.
fn open_figure(svg: &mut String, width: f64, height: f64, title: &str) {
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="28" font-size="14" font-weight="bold" text-anchor="middle">{}</text>"#,
        width / 2.0,
        escape(title)
    );
}

/// Overlaid histograms (as densities, so sets of different sizes compare) of several sets of
/// values over one range, `bins` equal-width bins — e.g. the predictive entropy on
/// in-distribution and on out-of-distribution inputs.
///
/// ```
/// use flock_metrics::histogram_svg;
/// let svg = histogram_svg("entropy", "nats", &[("in", &[0.1, 0.2, 0.2]), ("out", &[1.0, 2.0])], 20);
/// assert!(svg.contains("in") && svg.matches("<rect").count() > 20);
/// ```
pub fn histogram_svg(title: &str, x_label: &str, sets: &[(&str, &[f64])], bins: usize) -> String {
    let bins = bins.max(1);
    let finite = || {
        sets.iter()
            .flat_map(|(_, v)| v.iter().copied())
            .filter(|v| v.is_finite())
    };
    let lo = finite().fold(f64::INFINITY, f64::min);
    let hi = finite().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if lo < hi {
        (lo, hi)
    } else {
        (lo - 0.5, lo + 0.5)
    };
    let width_of_bin = (hi - lo) / bins as f64;
    let densities: Vec<Vec<f64>> = sets
        .iter()
        .map(|(_, values)| {
            let mut counts = vec![0.0; bins];
            let n = values.iter().filter(|v| v.is_finite()).count().max(1) as f64;
            for &v in values.iter().filter(|v| v.is_finite()) {
                let b = (((v - lo) / width_of_bin) as usize).min(bins - 1);
                counts[b] += 1.0 / (n * width_of_bin);
            }
            counts
        })
        .collect();
    let top = densities.iter().flatten().fold(0.0f64, |m, &d| m.max(d));
    let (width, height) = (620.0, 400.0);
    let axes = Axes {
        left: 80.0,
        top: 50.0,
        width: width - 110.0,
        height: height - 110.0,
        x: (lo, hi),
        y: (0.0, top.max(1e-9) * 1.05),
    };
    let mut svg = String::new();
    open_figure(&mut svg, width, height, title);
    const COLOURS: [&str; 4] = [BLUE, "#d62728", "#2ca02c", "#9467bd"];
    for (k, ((label, _), counts)) in sets.iter().zip(&densities).enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        for (b, &d) in counts.iter().enumerate() {
            let x0 = axes.px(lo + b as f64 * width_of_bin);
            let x1 = axes.px(lo + (b + 1) as f64 * width_of_bin);
            let y = axes.py(d);
            let _ = writeln!(
                svg,
                r#"<rect x="{x0:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{colour}" fill-opacity="0.45" stroke="{colour}" stroke-width="0.5"/>"#,
                (x1 - x0).max(0.0),
                (axes.top + axes.height - y).max(0.0)
            );
        }
        let ly = 64.0 + 16.0 * k as f64;
        let _ = writeln!(
            svg,
            r#"<rect x="{:.1}" y="{:.1}" width="14" height="10" fill="{colour}" fill-opacity="0.45" stroke="{colour}"/><text x="{:.1}" y="{ly:.1}" font-size="11">{}</text>"#,
            axes.left + axes.width - 290.0,
            ly - 9.0,
            axes.left + axes.width - 270.0,
            escape(label)
        );
    }
    axes.frame(&mut svg, x_label, "density");
    svg.push_str("</svg>\n");
    svg
}

/// A reliability diagram: per confidence bin, the accuracy (bars) against the diagonal of
/// perfect calibration, the bins' share of the points written on the bars.
///
/// ```
/// use flock_metrics::{reliability, reliability_svg};
/// let bins = reliability(&[0.9, 0.1, 0.3, 0.7], 2, &[0, 1], 10)?;
/// assert!(reliability_svg("calibration", &bins).contains("polyline"));
/// # Ok::<(), flock_metrics::MetricsError>(())
/// ```
pub fn reliability_svg(title: &str, bins: &[crate::ReliabilityBin]) -> String {
    let (width, height) = (520.0, 460.0);
    let axes = Axes {
        left: 80.0,
        top: 50.0,
        width: width - 110.0,
        height: height - 110.0,
        x: (0.0, 1.0),
        y: (0.0, 1.0),
    };
    let total: usize = bins.iter().map(|b| b.count).sum();
    let mut svg = String::new();
    open_figure(&mut svg, width, height, title);
    for b in bins.iter().filter(|b| b.count > 0) {
        let (x0, x1) = (axes.px(b.lower), axes.px(b.upper));
        let y = axes.py(b.accuracy);
        let _ = writeln!(
            svg,
            r##"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{BLUE}" fill-opacity="0.75" stroke="white"/>"##,
            x0,
            x1 - x0,
            axes.top + axes.height - y
        );
        // The gap to the mean confidence of the bin.
        let yc = axes.py(b.confidence);
        let _ = writeln!(
            svg,
            r##"<line x1="{x0:.1}" y1="{yc:.1}" x2="{x1:.1}" y2="{yc:.1}" stroke="#d62728" stroke-width="2"/>"##
        );
        if total > 0 && b.count * 50 >= total {
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" font-size="9" text-anchor="middle" fill="white">{:.0}%</text>"#,
                (x0 + x1) / 2.0,
                axes.top + axes.height - 4.0,
                100.0 * b.count as f64 / total as f64
            );
        }
    }
    axes.polyline(
        &mut svg,
        &[0.0, 1.0],
        &[0.0, 1.0],
        r##"stroke="#555555" stroke-width="1.5" stroke-dasharray="6 4""##,
    );
    let _ = writeln!(
        svg,
        r##"<rect x="96" y="58" width="14" height="10" fill="{BLUE}" fill-opacity="0.75"/><text x="116" y="67" font-size="11">accuracy</text><line x1="96" y1="80" x2="110" y2="80" stroke="#d62728" stroke-width="2"/><text x="116" y="84" font-size="11">mean confidence</text>"##
    );
    axes.frame(&mut svg, "confidence (top-label probability)", "accuracy");
    svg.push_str("</svg>\n");
    svg
}
