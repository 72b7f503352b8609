//! Exact scores of a [`MixturePredictive`] against observations — no Monte-Carlo noise.

use crate::error::check_finite;
use crate::{Band, MetricsError, MixturePredictive, normal};

/// The seed's 19 nominal levels `linspace(0.05, 0.95, 19)`, as numpy computes them.
pub fn seed_levels() -> Vec<f64> {
    let (start, stop, num) = (0.05f64, 0.95f64, 19usize);
    let step = (stop - start) / (num - 1) as f64;
    let mut levels: Vec<f64> = (0..num).map(|i| start + i as f64 * step).collect();
    levels[num - 1] = stop;
    levels
}

/// Every exact score of a fit (see [`exact_scores`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ExactScores {
    /// RMSE of the predictive mean against the noiseless truth, when given.
    pub rmse_truth: Option<f64>,
    /// RMSE of the predictive mean against the observations.
    pub rmse_obs: f64,
    /// Mean negative log predictive density of the observations.
    pub nll: f64,
    /// `−log pᵢ(yᵢ)` per point.
    pub nll_per_point: Vec<f64>,
    /// The nominal levels of the curves.
    pub alphas: Vec<f64>,
    /// Fraction of points inside the central interval at each level.
    pub coverage_curve: Vec<f64>,
    /// Mean width of the central interval at each level.
    pub width_curve: Vec<f64>,
    /// Coverage at the level closest to 0.95.
    pub coverage_95: f64,
    /// Width at the level closest to 0.95.
    pub sharpness_95: f64,
    /// Probability integral transform `Fᵢ(yᵢ)` per point.
    pub pit: Vec<f64>,
    /// Mean continuous ranked probability score.
    pub crps: f64,
    /// CRPS per point (closed form for Gaussian mixtures).
    pub crps_per_point: Vec<f64>,
    /// Mean interval (Winkler) score of the central 95% interval.
    pub interval_score_95: f64,
    /// Regression calibration error: mean `|coverage − level|` over the levels.
    pub calibration_error: f64,
    /// Predictive mean and variance split.
    pub band: Band,
}

/// `A(μ, s) = E|X|` for `X ~ N(μ, s²)`: `μ(2Φ(μ/s) − 1) + 2sφ(μ/s)`.
#[inline]
fn abs_moment(mu: f64, s: f64) -> f64 {
    let (big_phi, small_phi) = normal::cdf_pdf(mu / s);
    mu * (2.0 * big_phi - 1.0) + 2.0 * s * small_phi
}

/// Closed-form CRPS of point `i`'s mixture at `y` (Grimit et al., 2006):
/// `(1/M)Σₘ A(y − μₘ, σₘ) − (1/2M²) Σₘ Σₖ A(μₘ − μₖ, √(σₘ² + σₖ²))`.
pub fn crps(pred: &MixturePredictive, i: usize, y: f64) -> f64 {
    if let Some(sigma) = pred.common_sigma(i) {
        return crps_common_sigma(pred, i, y, sigma);
    }
    let m_count = pred.components();
    let inv = 1.0 / m_count as f64;
    let mut first = 0.0;
    let mut pairs = 0.0;
    for m in 0..m_count {
        let (mu_m, s_m) = (pred.mean_of(m, i), pred.sigma_of(m, i));
        first += abs_moment(y - mu_m, s_m);
        // Diagonal: A(0, √2σ) = 2√2σφ(0); off-diagonal pairs counted twice.
        pairs += abs_moment(0.0, core::f64::consts::SQRT_2 * s_m);
        for k in m + 1..m_count {
            let s_k = pred.sigma_of(k, i);
            pairs += 2.0 * abs_moment(mu_m - pred.mean_of(k, i), (s_m * s_m + s_k * s_k).sqrt());
        }
    }
    first * inv - 0.5 * pairs * inv * inv
}

/// [`crps`] when every component has the same σ at point `i`. With `s = √2σ` and the means
/// sorted, each pair term is `A(d, s) = d + 2s·g(d/s)` for `d = μₖ − μₘ ≥ 0`, where
/// `g(t) = φ(t) − t·Φ(−t)`: `Σ d` over pairs takes one pass over the sorted means, and `g` is
/// summed only while it is not negligible (`t < 9`: `g(9) < 1e-19`).
fn crps_common_sigma(pred: &MixturePredictive, i: usize, y: f64, sigma: f64) -> f64 {
    let m_count = pred.components();
    let inv = 1.0 / m_count as f64;
    T_SCRATCH.with(|cell| {
        let mut means = cell.borrow_mut();
        means.clear();
        means.extend((0..m_count).map(|m| pred.mean_of(m, i)));
        means.sort_by(f64::total_cmp);
        let mut first = 0.0;
        for &mu in means.iter() {
            first += abs_moment(y - mu, sigma);
        }
        let s = core::f64::consts::SQRT_2 * sigma;
        let inv_s = 1.0 / s;
        // Σ_{m<k} (μₖ − μₘ) = Σₖ (2k − M + 1)·μₖ over the sorted means.
        let mut distance_sum = 0.0;
        let mut g_sum = 0.0;
        for (k, &mu_k) in means.iter().enumerate() {
            distance_sum += (2.0 * k as f64 - (m_count as f64 - 1.0)) * mu_k;
            for &mu_j in &means[k + 1..] {
                let t = (mu_j - mu_k) * inv_s;
                if t >= 9.0 {
                    break;
                }
                let (big_phi, small_phi) = normal::cdf_pdf(-t);
                g_sum += small_phi - t * big_phi;
            }
        }
        // Diagonal terms A(0, s) = 2s·φ(0) = 2s·g(0).
        let diagonal = m_count as f64 * 2.0 * s * normal::pdf(0.0);
        let pairs = diagonal + 2.0 * (distance_sum + 2.0 * s * g_sum);
        first * inv - 0.5 * pairs * inv * inv
    })
}

thread_local! {
    static T_SCRATCH: core::cell::RefCell<Vec<f64>> = const { core::cell::RefCell::new(Vec::new()) };
}

/// Every exact score of `pred` against the observations `y_obs` (and `y_truth` when known), at
/// the seed's 19 levels.
///
/// ```
/// use flock_metrics::{MixturePredictive, Sigma, exact_scores};
/// // One component: a single Gaussian covers exactly its nominal level in distribution.
/// let p = MixturePredictive::new(&[0.0; 4], 1, 4, Sigma::Shared(1.0))?;
/// let s = exact_scores(&p, &[0.1, -0.5, 2.5, -3.0], None)?;
/// assert!((s.width_curve[18] - 2.0 * 1.959963984540054).abs() < 1e-12);
/// assert_eq!(s.coverage_95, 0.5);
/// # Ok::<(), flock_metrics::MetricsError>(())
/// ```
///
/// # Errors
/// [`MetricsError::Shape`] when `y_obs`/`y_truth` do not have `N` values;
/// [`MetricsError::NonFinite`] for NaN or infinite observations.
pub fn exact_scores(
    pred: &MixturePredictive,
    y_obs: &[f64],
    y_truth: Option<&[f64]>,
) -> Result<ExactScores, MetricsError> {
    let n = pred.points();
    for (what, y) in [("y_obs", Some(y_obs)), ("y_truth", y_truth)] {
        if let Some(y) = y {
            if y.len() != n {
                return Err(MetricsError::Shape {
                    what,
                    len: y.len(),
                    expected: n,
                });
            }
            check_finite(what, y)?;
        }
    }
    let band = pred.band();
    let rmse = |y: &[f64]| {
        (y.iter()
            .zip(&band.mean)
            .map(|(y, m)| (y - m).powi(2))
            .sum::<f64>()
            / n as f64)
            .sqrt()
    };
    let nll_per_point: Vec<f64> = (0..n).map(|i| -pred.log_pdf(i, y_obs[i])).collect();
    let pit: Vec<f64> = (0..n).map(|i| pred.cdf(i, y_obs[i])).collect();
    let crps_per_point: Vec<f64> = (0..n).map(|i| crps(pred, i, y_obs[i])).collect();
    let alphas = seed_levels();
    let mut coverage_curve = Vec::with_capacity(alphas.len());
    let mut width_curve = Vec::with_capacity(alphas.len());
    let mut interval_95 = None;
    let idx95 = closest(&alphas, 0.95);
    // Quantiles of every level, point by point, each solve starting from the neighbouring
    // level's quantile (levels are visited outward from the median).
    let mut lows = vec![0.0; alphas.len() * n];
    let mut highs = vec![0.0; alphas.len() * n];
    let levels: Vec<(f64, f64, f64, f64)> = alphas
        .iter()
        .map(|&a| {
            let (p_lo, p_hi) = ((1.0 - a) / 2.0, 1.0 - (1.0 - a) / 2.0);
            (p_lo, normal::quantile(p_lo), p_hi, normal::quantile(p_hi))
        })
        .collect();
    for i in 0..n {
        // Start each solve from the moment-matched Gaussian's quantile, μ̄ + z·σ_total.
        let (mean, spread) = (band.mean[i], band.total_std[i]);
        for (j, &(p_lo, z_lo, p_hi, z_hi)) in levels.iter().enumerate() {
            lows[j * n + i] = pred.quantile_solve(i, p_lo, z_lo, Some(mean + z_lo * spread))?;
            highs[j * n + i] = pred.quantile_solve(i, p_hi, z_hi, Some(mean + z_hi * spread))?;
        }
    }
    for (j, &a) in alphas.iter().enumerate() {
        let covered = pit.iter().filter(|&&f| (f - 0.5).abs() <= a / 2.0).count();
        coverage_curve.push(covered as f64 / n as f64);
        let (mut width, mut winkler) = (0.0, 0.0);
        for (i, &y) in y_obs.iter().enumerate() {
            let (lo, hi) = (lows[j * n + i], highs[j * n + i]);
            width += hi - lo;
            let tail = 1.0 - a;
            winkler += (hi - lo)
                + if y < lo { 2.0 / tail * (lo - y) } else { 0.0 }
                + if y > hi { 2.0 / tail * (y - hi) } else { 0.0 };
        }
        width_curve.push(width / n as f64);
        if j == idx95 {
            interval_95 = Some(winkler / n as f64);
        }
    }
    let calibration_error = coverage_curve
        .iter()
        .zip(&alphas)
        .map(|(c, a)| (c - a).abs())
        .sum::<f64>()
        / alphas.len() as f64;
    Ok(ExactScores {
        rmse_truth: y_truth.map(rmse),
        rmse_obs: rmse(y_obs),
        nll: nll_per_point.iter().sum::<f64>() / n as f64,
        coverage_95: coverage_curve[idx95],
        sharpness_95: width_curve[idx95],
        crps: crps_per_point.iter().sum::<f64>() / n as f64,
        interval_score_95: interval_95.unwrap_or(f64::NAN),
        nll_per_point,
        alphas,
        coverage_curve,
        width_curve,
        pit,
        crps_per_point,
        calibration_error,
        band,
    })
}

/// Index of the level closest to `target` (the seed's `argmin |alphas − 0.95|`).
pub(crate) fn closest(levels: &[f64], target: f64) -> usize {
    levels
        .iter()
        .enumerate()
        .min_by(|a, b| (a.1 - target).abs().total_cmp(&(b.1 - target).abs()))
        .map(|(i, _)| i)
        .unwrap_or(0)
}
