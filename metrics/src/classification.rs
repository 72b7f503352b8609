//! The predictive of a classification ensemble — the mixture of its members' categoricals — and
//! its scores: accuracy, NLL, Brier score, expected calibration error (top-label with equal-width
//! bins, adaptive with equal-mass bins, classwise), reliability-diagram data, and the
//! uncertainty decomposition (predictive entropy = expected member entropy + mutual
//! information). All arithmetic is f64.

use crate::MetricsError;

/// Member probabilities `[M, N, K]` (member-major) and their equal-weight mixture `[N, K]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassPredictive {
    member_probs: Vec<f64>,
    mean: Vec<f64>,
    members: usize,
    points: usize,
    classes: usize,
}

/// `−Σ p ln p` (0·ln 0 = 0).
fn entropy_of(p: &[f64]) -> f64 {
    -p.iter()
        .filter(|&&q| q > 0.0)
        .map(|&q| q * q.ln())
        .sum::<f64>()
}

impl ClassPredictive {
    /// From member probabilities `[M, N, K]` (each row a distribution over `K` classes).
    ///
    /// ```
    /// use flock_metrics::ClassPredictive;
    /// // Two members, one point, two classes: they disagree.
    /// let p = ClassPredictive::new(&[0.9, 0.1, 0.1, 0.9], 2, 1, 2)?;
    /// assert_eq!(p.probs(), &[0.5, 0.5]);
    /// let (h, mi) = (p.entropy()[0], p.mutual_information()[0]);
    /// assert!((h - 2f64.ln()).abs() < 1e-12 && mi > 0.3);
    /// # Ok::<(), flock_metrics::MetricsError>(())
    /// ```
    ///
    /// # Errors
    /// [`MetricsError::Empty`], [`MetricsError::Shape`]; [`MetricsError::Probability`] for a
    /// value outside `[0, 1]` or a row that does not sum to 1 (within 1e-6).
    pub fn new(
        member_probs: &[f64],
        members: usize,
        points: usize,
        classes: usize,
    ) -> Result<ClassPredictive, MetricsError> {
        if members == 0 || points == 0 || classes == 0 {
            return Err(MetricsError::Empty {
                what: "member probabilities",
            });
        }
        if member_probs.len() != members * points * classes {
            return Err(MetricsError::Shape {
                what: "member probabilities",
                len: member_probs.len(),
                expected: members * points * classes,
            });
        }
        if let Some(index) = member_probs.iter().position(|p| !(0.0..=1.0).contains(p)) {
            return Err(MetricsError::Probability {
                index,
                value: member_probs[index],
            });
        }
        for (row, probs) in member_probs.chunks_exact(classes).enumerate() {
            let sum: f64 = probs.iter().sum();
            if (sum - 1.0).abs() > 1e-6 {
                return Err(MetricsError::Probability {
                    index: row * classes,
                    value: sum,
                });
            }
        }
        let mut mean = vec![0.0; points * classes];
        for m in member_probs.chunks_exact(points * classes) {
            for (a, &p) in mean.iter_mut().zip(m) {
                *a += p;
            }
        }
        let inv = 1.0 / members as f64;
        mean.iter_mut().for_each(|a| *a *= inv);
        Ok(ClassPredictive {
            member_probs: member_probs.to_vec(),
            mean,
            members,
            points,
            classes,
        })
    }

    /// From member logits `[M, N, K]` divided by `temperature` (1 = none): each member's
    /// softmax, then the mixture.
    ///
    /// # Errors
    /// As [`ClassPredictive::new`]; [`MetricsError::NonFinite`] for a NaN or infinite logit;
    /// [`MetricsError::Level`] for a temperature that is not positive and finite.
    pub fn from_logits(
        member_logits: &[f64],
        members: usize,
        points: usize,
        classes: usize,
        temperature: f64,
    ) -> Result<ClassPredictive, MetricsError> {
        if !(temperature.is_finite() && temperature > 0.0) {
            return Err(MetricsError::Level { value: temperature });
        }
        if let Some(index) = member_logits.iter().position(|v| !v.is_finite()) {
            return Err(MetricsError::NonFinite {
                what: "member logits",
                index,
            });
        }
        if classes == 0 {
            return Err(MetricsError::Empty {
                what: "member logits",
            });
        }
        let mut probs = member_logits.to_vec();
        for row in probs.chunks_exact_mut(classes) {
            softmax_in_place(row, temperature);
        }
        ClassPredictive::new(&probs, members, points, classes)
    }

    /// Members `M`.
    pub fn members(&self) -> usize {
        self.members
    }

    /// Points `N`.
    pub fn points(&self) -> usize {
        self.points
    }

    /// Classes `K`.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The mixture's probabilities `[N, K]`.
    pub fn probs(&self) -> &[f64] {
        &self.mean
    }

    /// Member `m`'s probabilities `[N, K]`.
    pub fn member(&self, m: usize) -> &[f64] {
        let len = self.points * self.classes;
        &self.member_probs[m * len..(m + 1) * len]
    }

    /// The mixture's most probable class at each point (the first of ties).
    pub fn predicted(&self) -> Vec<usize> {
        self.mean.chunks_exact(self.classes).map(argmax).collect()
    }

    /// The predictive entropy `H[p̄]` at each point (nats): total uncertainty.
    pub fn entropy(&self) -> Vec<f64> {
        self.mean
            .chunks_exact(self.classes)
            .map(entropy_of)
            .collect()
    }

    /// The members' mean entropy `(1/M) Σₘ H[pₘ]` at each point: the aleatoric part.
    pub fn expected_entropy(&self) -> Vec<f64> {
        let mut out = vec![0.0; self.points];
        for m in 0..self.members {
            for (o, row) in out
                .iter_mut()
                .zip(self.member(m).chunks_exact(self.classes))
            {
                *o += entropy_of(row);
            }
        }
        let inv = 1.0 / self.members as f64;
        out.iter_mut().for_each(|o| *o *= inv);
        out
    }

    /// The mutual information between the label and the member, `H[p̄] − (1/M) Σₘ H[pₘ]` (≥ 0):
    /// the members' disagreement, the epistemic part.
    pub fn mutual_information(&self) -> Vec<f64> {
        self.entropy()
            .into_iter()
            .zip(self.expected_entropy())
            .map(|(h, e)| (h - e).max(0.0))
            .collect()
    }

    /// The members `members` (in that order) as an ensemble of their own — e.g. the first `M`
    /// of a larger one.
    ///
    /// # Errors
    /// [`MetricsError::Empty`] for no members; [`MetricsError::Shape`] for an index past the
    /// ensemble.
    pub fn select(&self, members: &[usize]) -> Result<ClassPredictive, MetricsError> {
        let mut probs = Vec::with_capacity(members.len() * self.points * self.classes);
        for &m in members {
            if m >= self.members {
                return Err(MetricsError::Shape {
                    what: "member index",
                    len: m,
                    expected: self.members,
                });
            }
            probs.extend_from_slice(self.member(m));
        }
        ClassPredictive::new(&probs, members.len(), self.points, self.classes)
    }
}

/// `row = softmax(row / temperature)`, shifted by the row's maximum.
pub(crate) fn softmax_in_place(row: &mut [f64], temperature: f64) {
    let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = ((*v - m) / temperature).exp();
        sum += *v;
    }
    row.iter_mut().for_each(|v| *v /= sum);
}

/// The index of the largest value (the first of ties).
fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (k, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = k;
        }
    }
    best
}

/// Checks that `labels` has one class index below `classes` per point.
fn check_labels(labels: &[usize], points: usize, classes: usize) -> Result<(), MetricsError> {
    if labels.len() != points {
        return Err(MetricsError::Shape {
            what: "labels",
            len: labels.len(),
            expected: points,
        });
    }
    if let Some(index) = labels.iter().position(|&y| y >= classes) {
        return Err(MetricsError::Label {
            index,
            value: labels[index],
            classes,
        });
    }
    Ok(())
}

/// The scores of a class predictive against the true labels.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassScores {
    /// The fraction of points whose most probable class is the label.
    pub accuracy: f64,
    /// Mean `−ln p̄(y)` (nats; `+∞` if a label had probability 0).
    pub nll: f64,
    /// Mean `Σₖ (p̄ₖ − 1[k = y])²` (0 to 2).
    pub brier: f64,
    /// Top-label expected calibration error, 15 equal-width bins.
    pub ece: f64,
    /// Top-label ECE with 15 equal-mass bins (adaptive).
    pub adaptive_ece: f64,
    /// Mean over classes of each class's ECE (`p̄ₖ` against `1[y = k]`), 15 equal-width bins.
    pub classwise_ece: f64,
}

/// Bins of the calibration errors (as in Guo et al. 2017 and most of the literature since).
pub const CALIBRATION_BINS: usize = 15;

/// Every score of [`ClassScores`] for `pred` against `labels` (`[N]`, class indices).
///
/// ```
/// use flock_metrics::{ClassPredictive, class_scores};
/// let p = ClassPredictive::new(&[0.8, 0.2, 0.3, 0.7], 1, 2, 2)?;
/// let s = class_scores(&p, &[0, 0])?;
/// assert_eq!(s.accuracy, 0.5);
/// assert!((s.nll - (-(0.8f64.ln() + 0.3f64.ln()) / 2.0)).abs() < 1e-12);
/// # Ok::<(), flock_metrics::MetricsError>(())
/// ```
///
/// # Errors
/// [`MetricsError::Shape`] / [`MetricsError::Label`] for labels that do not fit.
pub fn class_scores(pred: &ClassPredictive, labels: &[usize]) -> Result<ClassScores, MetricsError> {
    let (n, k) = (pred.points, pred.classes);
    check_labels(labels, n, k)?;
    let probs = pred.probs();
    let predicted = pred.predicted();
    let correct = predicted.iter().zip(labels).filter(|(p, y)| p == y).count();
    let mut nll = 0.0;
    let mut brier = 0.0;
    for (row, &y) in probs.chunks_exact(k).zip(labels) {
        nll -= row[y].ln();
        brier += row
            .iter()
            .enumerate()
            .map(|(j, &p)| (p - if j == y { 1.0 } else { 0.0 }).powi(2))
            .sum::<f64>();
    }
    Ok(ClassScores {
        accuracy: correct as f64 / n as f64,
        nll: nll / n as f64,
        brier: brier / n as f64,
        ece: ece(probs, k, labels, CALIBRATION_BINS)?,
        adaptive_ece: adaptive_ece(probs, k, labels, CALIBRATION_BINS)?,
        classwise_ece: classwise_ece(probs, k, labels, CALIBRATION_BINS)?,
    })
}

/// One bin of a reliability diagram.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReliabilityBin {
    /// The bin's confidence range `[lower, upper)` (the last bin includes 1).
    pub lower: f64,
    /// See `lower`.
    pub upper: f64,
    /// Points whose confidence falls in the bin.
    pub count: usize,
    /// Their mean confidence (NaN for an empty bin).
    pub confidence: f64,
    /// The fraction of them predicted correctly (NaN for an empty bin).
    pub accuracy: f64,
}

/// The top-label confidence (`max p̄`) and correctness of each point.
fn top_label(probs: &[f64], classes: usize, labels: &[usize]) -> Vec<(f64, bool)> {
    probs
        .chunks_exact(classes)
        .zip(labels)
        .map(|(row, &y)| {
            let k = argmax(row);
            (row[k], k == y)
        })
        .collect()
}

/// The equal-width bin of a confidence in `[0, 1]`.
fn bin_of(confidence: f64, bins: usize) -> usize {
    ((confidence * bins as f64) as usize).min(bins - 1)
}

/// The reliability diagram's data: top-label confidence against accuracy in `bins` equal-width
/// bins of confidence.
///
/// # Errors
/// As [`class_scores`]; [`MetricsError::Empty`] for 0 bins.
pub fn reliability(
    probs: &[f64],
    classes: usize,
    labels: &[usize],
    bins: usize,
) -> Result<Vec<ReliabilityBin>, MetricsError> {
    check_probs(probs, classes, labels, bins)?;
    let mut sums = vec![(0usize, 0.0, 0usize); bins];
    for (c, ok) in top_label(probs, classes, labels) {
        let b = &mut sums[bin_of(c, bins)];
        b.0 += 1;
        b.1 += c;
        b.2 += usize::from(ok);
    }
    Ok(sums
        .into_iter()
        .enumerate()
        .map(|(b, (count, conf, correct))| ReliabilityBin {
            lower: b as f64 / bins as f64,
            upper: (b + 1) as f64 / bins as f64,
            count,
            confidence: conf / count as f64,
            accuracy: correct as f64 / count as f64,
        })
        .collect())
}

fn check_probs(
    probs: &[f64],
    classes: usize,
    labels: &[usize],
    bins: usize,
) -> Result<(), MetricsError> {
    if bins == 0 || classes == 0 || labels.is_empty() {
        return Err(MetricsError::Empty {
            what: "probabilities, labels or bins",
        });
    }
    if probs.len() != labels.len() * classes {
        return Err(MetricsError::Shape {
            what: "probabilities",
            len: probs.len(),
            expected: labels.len() * classes,
        });
    }
    check_labels(labels, labels.len(), classes)
}

/// `Σ_b (n_b / N)·|acc_b − conf_b|` of (confidence, correct) pairs grouped into bins.
fn calibration_gap(groups: impl Iterator<Item = Vec<(f64, bool)>>, total: usize) -> f64 {
    groups
        .filter(|g| !g.is_empty())
        .map(|g| {
            let n = g.len() as f64;
            let conf = g.iter().map(|(c, _)| c).sum::<f64>() / n;
            let acc = g.iter().filter(|(_, ok)| *ok).count() as f64 / n;
            n / total as f64 * (acc - conf).abs()
        })
        .sum()
}

/// Top-label expected calibration error: `Σ_b (n_b / N)·|accuracy_b − confidence_b|` over
/// `bins` equal-width bins of the top-label confidence `max_k p̄_k`.
///
/// # Errors
/// As [`reliability`].
pub fn ece(
    probs: &[f64],
    classes: usize,
    labels: &[usize],
    bins: usize,
) -> Result<f64, MetricsError> {
    check_probs(probs, classes, labels, bins)?;
    let mut groups = vec![Vec::new(); bins];
    for (c, ok) in top_label(probs, classes, labels) {
        groups[bin_of(c, bins)].push((c, ok));
    }
    Ok(calibration_gap(groups.into_iter(), labels.len()))
}

/// Adaptive (equal-mass) ECE: the points sorted by confidence and cut into `bins` groups of
/// `⌊N/bins⌋` or `⌈N/bins⌉` points, then the ECE's weighted gap.
///
/// # Errors
/// As [`reliability`].
pub fn adaptive_ece(
    probs: &[f64],
    classes: usize,
    labels: &[usize],
    bins: usize,
) -> Result<f64, MetricsError> {
    check_probs(probs, classes, labels, bins)?;
    let mut points = top_label(probs, classes, labels);
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = points.len();
    let groups = (0..bins).map(|b| points[b * n / bins..(b + 1) * n / bins].to_vec());
    Ok(calibration_gap(groups, n))
}

/// Classwise ECE: for each class `k`, the ECE of `p̄_k` as a forecast of `1[y = k]` over
/// `bins` equal-width bins (`Σ_b (n_b/N)·|freq_b − mean p_b|`), averaged over the classes.
///
/// # Errors
/// As [`reliability`].
pub fn classwise_ece(
    probs: &[f64],
    classes: usize,
    labels: &[usize],
    bins: usize,
) -> Result<f64, MetricsError> {
    check_probs(probs, classes, labels, bins)?;
    let mut total = 0.0;
    for k in 0..classes {
        let mut groups = vec![Vec::new(); bins];
        for (row, &y) in probs.chunks_exact(classes).zip(labels) {
            groups[bin_of(row[k], bins)].push((row[k], y == k));
        }
        total += calibration_gap(groups.into_iter(), labels.len());
    }
    Ok(total / classes as f64)
}
