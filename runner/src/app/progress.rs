//! A progress bar on stderr for long runs: how far, how fast, and the mean loss.
//!
//! On a terminal the bar is redrawn in place at most ten times a second
//! (`epoch  [#########.........]  12/40  3,412 steps/s  mean loss 1.2345  eta 3s`); when stderr
//! is a file or a pipe (CI logs) a plain line is written at most every five seconds and at the
//! end, so logs stay readable. Nothing is printed unless a caller asks for it: library runs are
//! silent by default (`RunOptions::progress` is `None`), the `flock` command shows it
//! ([`TrainingBar`], a [`ProgressHook`]; `--quiet` hides it).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::train::{ProgressHook, StepReport};

/// Width of the bar in characters.
const BAR_WIDTH: usize = 24;

/// A progress bar over `total` units of work (steps, epochs, splits).
#[derive(Debug)]
pub struct ProgressBar {
    label: String,
    unit: &'static str,
    total: usize,
    start: Instant,
    last_draw: Option<Instant>,
    terminal: bool,
    drawn: bool,
}

impl ProgressBar {
    /// A bar called `label` counting `total` `unit`s (e.g. `"steps"`).
    pub fn new(label: impl Into<String>, unit: &'static str, total: usize) -> ProgressBar {
        ProgressBar {
            label: label.into(),
            unit,
            total,
            start: Instant::now(),
            last_draw: None,
            terminal: std::io::stderr().is_terminal(),
            drawn: false,
        }
    }

    /// `done` of `total` units finished; `mean_loss` is shown when given. Draws only when the
    /// last draw is old enough (or at the end), so calling it every step costs nothing.
    pub fn update(&mut self, done: usize, mean_loss: Option<f64>) {
        let every = if self.terminal {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(5)
        };
        let finished = done >= self.total;
        if !finished && self.last_draw.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        self.last_draw = Some(Instant::now());
        let line = self.line(done, mean_loss);
        let mut err = std::io::stderr().lock();
        // Progress is best-effort: a closed stderr must not stop training.
        let _ = if self.terminal {
            write!(err, "\r{line}\x1b[K")
        } else {
            writeln!(err, "{line}")
        };
        self.drawn = true;
    }

    /// Ends the bar's line (on a terminal), leaving the last state visible.
    pub fn finish(&mut self) {
        if self.terminal && self.drawn {
            let _ = writeln!(std::io::stderr());
        }
        self.drawn = false;
    }

    /// The text of the bar for `done` units.
    pub fn line(&self, done: usize, mean_loss: Option<f64>) -> String {
        let done = done.min(self.total);
        let fraction = if self.total == 0 {
            1.0
        } else {
            done as f64 / self.total as f64
        };
        let filled = (fraction * BAR_WIDTH as f64).round() as usize;
        let elapsed = self.start.elapsed().as_secs_f64();
        let rate = done as f64 / elapsed.max(1e-9);
        let mut line = format!(
            "{}  [{}{}]  {done}/{}  {} {}/s",
            self.label,
            "#".repeat(filled),
            ".".repeat(BAR_WIDTH - filled),
            self.total,
            thousands(rate),
            self.unit,
        );
        if let Some(loss) = mean_loss {
            line.push_str(&format!("  mean loss {loss:.4}"));
        }
        if done < self.total && done > 0 {
            let eta = (self.total - done) as f64 / rate;
            line.push_str(&format!("  eta {}", duration(eta)));
        } else {
            line.push_str(&format!("  {}", duration(elapsed)));
        }
        line
    }
}

/// A training run's bar ([`ProgressHook`]): steps, steps/s, the members' mean loss per
/// training row, eta.
#[derive(Debug)]
pub struct TrainingBar {
    bar: ProgressBar,
}

impl TrainingBar {
    /// A bar labelled `label`; its length is the loop's (told with every step).
    pub fn new(label: &'static str) -> TrainingBar {
        TrainingBar {
            bar: ProgressBar::new(label, "steps", 0),
        }
    }
}

impl ProgressHook for TrainingBar {
    fn update(&mut self, report: &StepReport) {
        self.bar.total = report.until;
        self.bar.update(
            report.step,
            Some(report.mean_loss / report.rows.max(1) as f64),
        );
    }
}

impl Drop for ProgressBar {
    fn drop(&mut self) {
        self.finish();
    }
}

/// `3412.7` → `"3,413"`; rates below 10 keep one decimal.
fn thousands(value: f64) -> String {
    if value < 10.0 {
        return format!("{value:.1}");
    }
    let digits = format!("{:.0}", value);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Seconds as `42s`, `3m07s` or `1h02m`.
fn duration(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{:.1}s", seconds),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_position_rate_loss_and_time() {
        let bar = ProgressBar::new("fit", "steps", 40);
        let line = bar.line(10, Some(1.5));
        assert!(
            line.starts_with("fit  [######..................]  10/40  "),
            "{line}"
        );
        assert!(line.contains("steps/s"), "{line}");
        assert!(line.contains("mean loss 1.5000"), "{line}");
        assert!(line.contains("eta "), "{line}");
        let done = bar.line(40, None);
        assert!(
            done.contains(&format!("[{}]", "#".repeat(BAR_WIDTH))),
            "{done}"
        );
        assert!(!done.contains("eta"), "{done}");
        assert!(!done.contains("loss"), "{done}");
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(3412.7), "3,413");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(2.25), "2.2");
        assert_eq!(duration(4.26), "4.3s");
        assert_eq!(duration(187.0), "3m07s");
        assert_eq!(duration(3720.0), "1h02m");
    }

    #[test]
    fn an_empty_run_is_complete() {
        let bar = ProgressBar::new("x", "steps", 0);
        assert!(bar.line(0, None).contains(&"#".repeat(BAR_WIDTH)));
    }
}
