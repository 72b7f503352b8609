//! Out-of-distribution detection from an uncertainty score (predictive entropy, mutual
//! information, …): how well the score ranks inputs unlike the training data above those like
//! it. `inside` are the scores of in-distribution inputs, `outside` of out-of-distribution ones;
//! a higher score means "more likely outside", and out-of-distribution is the positive class.

use crate::MetricsError;

fn check(inside: &[f64], outside: &[f64]) -> Result<(), MetricsError> {
    for (what, v) in [
        ("in-distribution scores", inside),
        ("out-of-distribution scores", outside),
    ] {
        if v.is_empty() {
            return Err(MetricsError::Empty { what });
        }
        if let Some(index) = v.iter().position(|x| !x.is_finite()) {
            return Err(MetricsError::NonFinite { what, index });
        }
    }
    Ok(())
}

/// All scores, highest first, each with whether it is out-of-distribution.
fn ranked(inside: &[f64], outside: &[f64]) -> Vec<(f64, bool)> {
    let mut all: Vec<(f64, bool)> = inside
        .iter()
        .map(|&s| (s, false))
        .chain(outside.iter().map(|&s| (s, true)))
        .collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0));
    all
}

/// `(true positives, false positives)` at each distinct threshold, highest first: the counts of
/// outside and inside scores at or above it.
fn operating_points(inside: &[f64], outside: &[f64]) -> Vec<(usize, usize)> {
    let all = ranked(inside, outside);
    let mut points = Vec::new();
    let (mut tp, mut fp) = (0, 0);
    for (i, &(s, out)) in all.iter().enumerate() {
        if out {
            tp += 1;
        } else {
            fp += 1;
        }
        if all.get(i + 1).is_none_or(|next| next.0 != s) {
            points.push((tp, fp));
        }
    }
    points
}

/// The area under the ROC curve: `P(outside > inside) + ½·P(outside = inside)` for a random pair
/// (the Mann–Whitney statistic; 0.5 = chance, 1 = perfect).
///
/// ```
/// use flock_metrics::auroc;
/// assert_eq!(auroc(&[0.1, 0.2], &[0.3, 0.4])?, 1.0);
/// assert_eq!(auroc(&[0.5], &[0.5])?, 0.5);
/// # Ok::<(), flock_metrics::MetricsError>(())
/// ```
///
/// # Errors
/// [`MetricsError::Empty`] or [`MetricsError::NonFinite`] for either set of scores.
pub fn auroc(inside: &[f64], outside: &[f64]) -> Result<f64, MetricsError> {
    check(inside, outside)?;
    // Trapezoids between consecutive operating points.
    let (n_out, n_in) = (outside.len() as f64, inside.len() as f64);
    let mut area = 0.0;
    let (mut last_tp, mut last_fp) = (0usize, 0usize);
    for (tp, fp) in operating_points(inside, outside) {
        area += (fp - last_fp) as f64 * (tp + last_tp) as f64 / 2.0;
        (last_tp, last_fp) = (tp, fp);
    }
    Ok(area / (n_out * n_in))
}

/// The area under the precision–recall curve with out-of-distribution as the positive class,
/// as average precision: `Σₜ (Rₜ − Rₜ₋₁)·Pₜ` over the distinct thresholds, highest first
/// (scikit-learn's `average_precision_score`).
///
/// # Errors
/// As [`auroc`].
pub fn aupr(inside: &[f64], outside: &[f64]) -> Result<f64, MetricsError> {
    check(inside, outside)?;
    let n_out = outside.len() as f64;
    let mut ap = 0.0;
    let mut last_recall = 0.0;
    for (tp, fp) in operating_points(inside, outside) {
        let recall = tp as f64 / n_out;
        let precision = tp as f64 / (tp + fp) as f64;
        ap += (recall - last_recall) * precision;
        last_recall = recall;
    }
    Ok(ap)
}

/// The false-positive rate (in-distribution inputs flagged) at the highest threshold that
/// flags at least 95 % of the out-of-distribution inputs.
///
/// # Errors
/// As [`auroc`].
pub fn fpr_at_95_tpr(inside: &[f64], outside: &[f64]) -> Result<f64, MetricsError> {
    check(inside, outside)?;
    let n_out = outside.len() as f64;
    let (_, fp) = operating_points(inside, outside)
        .into_iter()
        .find(|&(tp, _)| tp as f64 >= 0.95 * n_out)
        .expect("the lowest threshold flags everything");
    Ok(fp as f64 / inside.len() as f64)
}

/// The three detection scores of one uncertainty score.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OodScores {
    /// [`auroc`].
    pub auroc: f64,
    /// [`aupr`].
    pub aupr: f64,
    /// [`fpr_at_95_tpr`].
    pub fpr_at_95_tpr: f64,
}

/// [`auroc`], [`aupr`] and [`fpr_at_95_tpr`] at once.
///
/// # Errors
/// As [`auroc`].
pub fn ood_scores(inside: &[f64], outside: &[f64]) -> Result<OodScores, MetricsError> {
    Ok(OodScores {
        auroc: auroc(inside, outside)?,
        aupr: aupr(inside, outside)?,
        fpr_at_95_tpr: fpr_at_95_tpr(inside, outside)?,
    })
}
