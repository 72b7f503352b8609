//! Recalibrating a predictive on held-out ("calibration") rows: temperature scaling of a
//! classification ensemble, and split-conformal prediction — intervals for regression (scores
//! normalised by the ensemble's predictive std) and adaptive prediction sets (APS) for
//! classification — with the finite-sample guarantee `P(y ∈ C(x)) ≥ 1 − α` for exchangeable
//! rows.

use crate::MetricsError;
use crate::classification::ClassPredictive;

fn check_alpha(alpha: f64) -> Result<(), MetricsError> {
    if alpha > 0.0 && alpha < 1.0 {
        Ok(())
    } else {
        Err(MetricsError::Level { value: alpha })
    }
}

/// The split-conformal threshold of calibration `scores`: the `⌈(n+1)(1−α)⌉`-th smallest
/// (`+∞` when that rank exceeds `n`: too few rows for this `α`). A new score is at most it with
/// probability at least `1 − α`.
///
/// ```
/// use flock_metrics::conformal_quantile;
/// let scores: Vec<f64> = (1..=19).map(f64::from).collect();
/// assert_eq!(conformal_quantile(&scores, 0.1)?, 18.0); // ⌈20·0.9⌉ = 18
/// assert_eq!(conformal_quantile(&scores[..5], 0.1)?, f64::INFINITY);
/// # Ok::<(), flock_metrics::MetricsError>(())
/// ```
///
/// # Errors
/// [`MetricsError::Level`] unless `0 < α < 1`; [`MetricsError::Empty`], or
/// [`MetricsError::NonFinite`] for a NaN score.
pub fn conformal_quantile(scores: &[f64], alpha: f64) -> Result<f64, MetricsError> {
    check_alpha(alpha)?;
    if scores.is_empty() {
        return Err(MetricsError::Empty {
            what: "calibration scores",
        });
    }
    if let Some(index) = scores.iter().position(|s| s.is_nan()) {
        return Err(MetricsError::NonFinite {
            what: "calibration scores",
            index,
        });
    }
    let n = scores.len();
    let rank = ((n + 1) as f64 * (1.0 - alpha)).ceil() as usize;
    if rank > n {
        return Ok(f64::INFINITY);
    }
    let mut sorted = scores.to_vec();
    sorted.sort_by(f64::total_cmp);
    Ok(sorted[rank.max(1) - 1])
}

/// Split-conformal intervals for regression, normalised by the predictive std: scores
/// `|y − μ|/σ` on the calibration rows give `q`; a new row's interval is `μ ± q·σ`, which covers
/// with probability at least `1 − α`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConformalRegression {
    /// The threshold `q` on `|y − μ|/σ`.
    pub quantile: f64,
    /// The miscoverage it was fitted for.
    pub alpha: f64,
}

impl ConformalRegression {
    /// Fits `q` on calibration rows: predictive means and stds, and the targets.
    ///
    /// ```
    /// use flock_metrics::ConformalRegression;
    /// let y: Vec<f64> = (0..99).map(|i| (i as f64 * 0.37).sin()).collect();
    /// let c = ConformalRegression::fit(&vec![0.0; 99], &vec![0.5; 99], &y, 0.1)?;
    /// let (lo, hi) = c.interval(&[0.0], &[0.5]);
    /// assert!(lo[0] < 0.0 && hi[0] > 0.0);
    /// # Ok::<(), flock_metrics::MetricsError>(())
    /// ```
    ///
    /// # Errors
    /// [`MetricsError::Shape`] for lengths that differ, [`MetricsError::NonPositiveSigma`],
    /// and as [`conformal_quantile`].
    pub fn fit(
        mean: &[f64],
        std: &[f64],
        y: &[f64],
        alpha: f64,
    ) -> Result<ConformalRegression, MetricsError> {
        for (what, v) in [("std", std), ("y", y)] {
            if v.len() != mean.len() {
                return Err(MetricsError::Shape {
                    what,
                    len: v.len(),
                    expected: mean.len(),
                });
            }
        }
        if let Some(index) = std.iter().position(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(MetricsError::NonPositiveSigma {
                index,
                value: std[index],
            });
        }
        let scores: Vec<f64> = mean
            .iter()
            .zip(std)
            .zip(y)
            .map(|((m, s), y)| (y - m).abs() / s)
            .collect();
        Ok(ConformalRegression {
            quantile: conformal_quantile(&scores, alpha)?,
            alpha,
        })
    }

    /// The intervals `μ ± q·σ` of new rows.
    pub fn interval(&self, mean: &[f64], std: &[f64]) -> (Vec<f64>, Vec<f64>) {
        mean.iter()
            .zip(std)
            .map(|(m, s)| (m - self.quantile * s, m + self.quantile * s))
            .unzip()
    }
}

/// The classes of one row in order of decreasing probability (ties by index).
fn by_probability(row: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..row.len()).collect();
    order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
    order
}

/// The randomised APS score of class `label` in `row`: the probability of the classes ranked
/// before it plus `u` times its own.
fn aps_score(row: &[f64], order: &[usize], label: usize, u: f64) -> f64 {
    let mut before = 0.0;
    for &k in order {
        if k == label {
            return before + u * row[k];
        }
        before += row[k];
    }
    unreachable!("the label is a class")
}

/// The randomised APS score of each row's label: the probability of the classes ranked above
/// it (by decreasing probability, ties by index) plus `u` times its own — what
/// [`ConformalClassifier::fit`] takes the conformal quantile of.
///
/// # Errors
/// [`MetricsError::Shape`] / [`MetricsError::Label`] for inputs that do not fit.
pub fn aps_scores(
    probs: &[f64],
    classes: usize,
    labels: &[usize],
    uniforms: &[f64],
) -> Result<Vec<f64>, MetricsError> {
    check_rows(probs, classes, labels.len(), uniforms)?;
    if let Some(index) = labels.iter().position(|&y| y >= classes) {
        return Err(MetricsError::Label {
            index,
            value: labels[index],
            classes,
        });
    }
    Ok(probs
        .chunks_exact(classes)
        .zip(labels)
        .zip(uniforms)
        .map(|((row, &y), &u)| aps_score(row, &by_probability(row), y, u))
        .collect())
}

/// Split-conformal adaptive prediction sets (APS; Romano, Sesia & Candès 2020), randomised:
/// a row's score for class `y` is the probability of the classes ranked above `y` plus
/// `u·p(y)`, `u ~ U(0, 1)` drawn per row; the set of a new row holds every class whose score is
/// at most the calibration rows' conformal threshold. It contains the true class with
/// probability at least `1 − α`, and is small where the ensemble is confident.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConformalClassifier {
    /// The threshold on the APS score.
    pub quantile: f64,
    /// The miscoverage it was fitted for.
    pub alpha: f64,
}

impl ConformalClassifier {
    /// Fits the threshold on calibration rows: probabilities `[N, K]`, labels, one uniform per
    /// row.
    ///
    /// # Errors
    /// [`MetricsError::Shape`] / [`MetricsError::Label`] for inputs that do not fit; as
    /// [`conformal_quantile`].
    pub fn fit(
        probs: &[f64],
        classes: usize,
        labels: &[usize],
        uniforms: &[f64],
        alpha: f64,
    ) -> Result<ConformalClassifier, MetricsError> {
        Ok(ConformalClassifier {
            quantile: conformal_quantile(&aps_scores(probs, classes, labels, uniforms)?, alpha)?,
            alpha,
        })
    }

    /// The prediction set of each row of `probs` (`[N, K]`; one uniform per row), classes in
    /// order of decreasing probability — never empty: a row whose randomised scores all exceed
    /// the threshold keeps its most probable class.
    ///
    /// # Errors
    /// [`MetricsError::Shape`] for inputs that do not fit.
    pub fn sets(
        &self,
        probs: &[f64],
        classes: usize,
        uniforms: &[f64],
    ) -> Result<Vec<Vec<usize>>, MetricsError> {
        check_rows(probs, classes, uniforms.len(), uniforms)?;
        Ok(probs
            .chunks_exact(classes)
            .zip(uniforms)
            .map(|(row, &u)| {
                let order = by_probability(row);
                let set: Vec<usize> = order
                    .iter()
                    .copied()
                    .filter(|&k| aps_score(row, &order, k, u) <= self.quantile)
                    .collect();
                // Randomisation can empty the set of a confident row; the most probable class
                // stays (which only raises the coverage).
                if set.is_empty() { vec![order[0]] } else { set }
            })
            .collect())
    }
}

fn check_rows(
    probs: &[f64],
    classes: usize,
    rows: usize,
    uniforms: &[f64],
) -> Result<(), MetricsError> {
    if classes == 0 || rows == 0 {
        return Err(MetricsError::Empty {
            what: "probabilities",
        });
    }
    if probs.len() != rows * classes {
        return Err(MetricsError::Shape {
            what: "probabilities",
            len: probs.len(),
            expected: rows * classes,
        });
    }
    if uniforms.len() != rows {
        return Err(MetricsError::Shape {
            what: "uniforms",
            len: uniforms.len(),
            expected: rows,
        });
    }
    Ok(())
}

/// Temperature scaling of an ensemble (Guo et al. 2017, per member as in Ovadia et al. 2019):
/// the `T` that minimises the NLL of the mixture of `softmax(zₘ/T)` on held-out rows, found by
/// golden-section search over `ln T ∈ [ln 0.05, ln 20]` (the NLL is smooth and, in practice,
/// unimodal in `ln T`). `member_logits` is `[M, N, K]`.
///
/// # Errors
/// As [`ClassPredictive::from_logits`] and [`crate::class_scores`].
pub fn fit_temperature(
    member_logits: &[f64],
    members: usize,
    points: usize,
    classes: usize,
    labels: &[usize],
) -> Result<f64, MetricsError> {
    let nll = |ln_t: f64| -> Result<f64, MetricsError> {
        let p = ClassPredictive::from_logits(member_logits, members, points, classes, ln_t.exp())?;
        if labels.len() != points {
            return Err(MetricsError::Shape {
                what: "labels",
                len: labels.len(),
                expected: points,
            });
        }
        let probs = p.probs();
        let mut total = 0.0;
        for (i, &y) in labels.iter().enumerate() {
            if y >= classes {
                return Err(MetricsError::Label {
                    index: i,
                    value: y,
                    classes,
                });
            }
            total -= probs[i * classes + y].max(f64::MIN_POSITIVE).ln();
        }
        Ok(total / points as f64)
    };
    let golden = (5f64.sqrt() - 1.0) / 2.0;
    let (mut a, mut b) = (0.05f64.ln(), 20f64.ln());
    let (mut c, mut d) = (b - golden * (b - a), a + golden * (b - a));
    let (mut fc, mut fd) = (nll(c)?, nll(d)?);
    for _ in 0..60 {
        if fc < fd {
            b = d;
            (d, fd) = (c, fc);
            c = b - golden * (b - a);
            fc = nll(c)?;
        } else {
            a = c;
            (c, fc) = (d, fd);
            d = a + golden * (b - a);
            fd = nll(d)?;
        }
    }
    Ok(((a + b) / 2.0).exp())
}
