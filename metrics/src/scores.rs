//! Exact scores of a [`MixturePredictive`] against observations — no Monte-Carlo noise.

use crate::error::check_finite;
use flock_kernels::F64Vector;

use crate::mixture::{LANES, load};
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

/// `A(μ, s) = E|X|` for `X ~ N(μ, s²)`: `μ(2Φ(μ/s) − 1) + 2sφ(μ/s)`, lane by lane. (For
/// `|μ/s| ≥ 9` the rounded tail of [`normal::cdf_pdf_lanes`] changes `A` by less than
/// `|μ|·2.4e-19`.)
#[inline(always)]
fn abs_moment_lanes(mu: F64Vector, s: F64Vector, inv_s: F64Vector) -> F64Vector {
    let (big_phi, small_phi) = normal::cdf_pdf_lanes(mu * inv_s);
    let two = F64Vector::splat(2.0);
    mu * big_phi.mul_add(two, F64Vector::splat(-1.0)) + two * s * small_phi
}

/// Closed-form CRPS of point `i`'s mixture at `y` (Grimit et al., 2006):
/// `(1/M)Σₘ A(y − μₘ, σₘ) − (1/2M²) Σₘ Σₖ A(μₘ − μₖ, √(σₘ² + σₖ²))`, a vector of components at a
/// time.
pub fn crps(pred: &MixturePredictive, i: usize, y: f64) -> f64 {
    if let Some(sigma) = pred.common_sigma(i) {
        return crps_common_sigma(pred, i, y, sigma);
    }
    let rows = pred.rows();
    let means = rows.row(&rows.means, i);
    let sigmas = rows.row(rows.sigmas.as_ref().expect("per-component σ rows"), i);
    let inv_sigmas = rows.row(rows.inv_sigmas.as_ref().expect("per-component σ rows"), i);
    let m_count = pred.components();
    let inv = 1.0 / m_count as f64;
    let zero = F64Vector::splat(0.0);
    let target = F64Vector::splat(y);
    let mut first = zero;
    for k in (0..rows.width).step_by(LANES) {
        let a = abs_moment_lanes(
            target - load(means, k),
            load(sigmas, k),
            load(inv_sigmas, k),
        );
        first = a.mul_add(load(&rows.weights, k), first);
    }
    // Pairs m ≤ k, off-diagonal counted twice: per m, a vector of k ≥ m at a time (the lanes
    // below m weighted 0).
    let mut pairs = zero;
    for m in 0..m_count {
        let (mu_m, s_m) = (F64Vector::splat(means[m]), sigmas[m]);
        let s_m2 = F64Vector::splat(s_m * s_m);
        let start = m / LANES * LANES;
        for k in (start..rows.width).step_by(LANES) {
            let s_k = load(sigmas, k);
            let s = s_k.mul_add(s_k, s_m2).sqrt();
            let a = abs_moment_lanes(mu_m - load(means, k), s, F64Vector::splat(1.0) / s);
            pairs = a.mul_add(pair_weights(&rows.weights, m, k), pairs);
        }
    }
    first.reduce_add() * inv - 0.5 * pairs.reduce_add() * inv * inv
}

/// Weights of pairs `(m, k..k + LANES)`: 0 below `m` and for padding, 1 on the diagonal, 2 above.
#[inline(always)]
fn pair_weights(weights: &[f64], m: usize, k: usize) -> F64Vector {
    let mut w = [0.0; 16];
    for (lane, slot) in w[..LANES].iter_mut().enumerate() {
        let index = k + lane;
        *slot = match index.cmp(&m) {
            core::cmp::Ordering::Less => 0.0,
            core::cmp::Ordering::Equal => 1.0,
            core::cmp::Ordering::Greater => 2.0 * weights[index],
        };
    }
    load(&w, 0)
}

/// [`crps`] when every component has the same σ at point `i`. With `s = √2σ` and the means
/// sorted, each pair term is `A(d, s) = d + 2s·g(d/s)` for `d = μₖ − μₘ ≥ 0`, where
/// `g(t) = φ(t) − t·Φ(−t)`: `Σ d` over pairs takes one pass over the sorted means, and `g` is
/// summed a vector of partners at a time while it is not negligible (`t < 9`: `g(9) < 1e-19`).
fn crps_common_sigma(pred: &MixturePredictive, i: usize, y: f64, sigma: f64) -> f64 {
    let m_count = pred.components();
    let inv = 1.0 / m_count as f64;
    let rows = pred.rows();
    let zero = F64Vector::splat(0.0);
    let mut first = zero;
    let (target, sigma_v, inv_sigma) = (
        F64Vector::splat(y),
        F64Vector::splat(sigma),
        F64Vector::splat(1.0 / sigma),
    );
    let row = rows.row(&rows.means, i);
    for k in (0..rows.width).step_by(LANES) {
        let a = abs_moment_lanes(target - load(row, k), sigma_v, inv_sigma);
        first = a.mul_add(load(&rows.weights, k), first);
    }
    let s = core::f64::consts::SQRT_2 * sigma;
    let inv_s = 1.0 / s;
    if let Some(pairs) = pair_sum_interpolated(row, &rows.weights, m_count, s) {
        return first.reduce_add() * inv - 0.5 * pairs * inv * inv;
    }
    T_SCRATCH.with(|cell| {
        let mut means = cell.borrow_mut();
        means.clear();
        means.extend_from_slice(&row[..m_count]);
        means.sort_by(f64::total_cmp);
        // Padding far above every mean: its t is huge, so φ(t) = Φ(−t) = 0 and g = 0.
        let far = means[m_count - 1] + 1e6 * s;
        means.extend(core::iter::repeat_n(far, LANES));
        // Σ_{m<k} (μₖ − μₘ) = Σₖ (2k − M + 1)·μₖ over the sorted means.
        let mut distance_sum = 0.0;
        let mut g_sum = zero;
        let inv_s_v = F64Vector::splat(inv_s);
        for (k, &mu_k) in means[..m_count].iter().enumerate() {
            distance_sum += (2.0 * k as f64 - (m_count as f64 - 1.0)) * mu_k;
            let base = F64Vector::splat(mu_k);
            let mut j = k + 1;
            while j < m_count {
                let t = (load(&means, j) - base) * inv_s_v;
                let (big_phi, small_phi) = normal::cdf_pdf_lanes(-t);
                g_sum += small_phi - t * big_phi;
                // Sorted: once the last lane is 9 scales away, so is every later partner.
                if (means[j + LANES - 1] - mu_k) * inv_s >= 9.0 {
                    break;
                }
                j += LANES;
            }
        }
        // Diagonal terms A(0, s) = 2s·φ(0) = 2s·g(0).
        let diagonal = m_count as f64 * 2.0 * s * normal::pdf(0.0);
        let pairs = diagonal + 2.0 * (distance_sum + 2.0 * s * g_sum.reduce_add());
        first.reduce_add() * inv - 0.5 * pairs * inv * inv
    })
}

/// `Σⱼ Σₖ A(μⱼ − μₖ, s)` over all ordered pairs of a point's means (diagonal included), by
/// Chebyshev interpolation of `G(x) = Σₖ A(x − μₖ, s)` on `[min μ, max μ]`: `A(·, s)` is `|·|`
/// smoothed at the scale `s`, an entire function, so `G`'s Chebyshev coefficients fall
/// geometrically and `Σⱼ G(μⱼ)` needs `G` at a few Chebyshev–Lobatto nodes (`M` terms each)
/// instead of `M²/2` pair terms. The degree doubles from 16 until the last three coefficients are
/// below 1e-14 of the largest (so `G` is interpolated to about 1e-14 relative); `None` when that
/// would take more than `M/4` nodes — means spread over many `s`, where the pairs are cheaper.
///
/// `row` is the point's padded row of means and `weights` its lane weights.
fn pair_sum_interpolated(row: &[f64], weights: &[f64], m_count: usize, s: f64) -> Option<f64> {
    const FIRST_DEGREE: usize = 16;
    if FIRST_DEGREE + 1 > m_count / 4 {
        return None;
    }
    let means = &row[..m_count];
    let (lo, hi) = means
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &m| {
            (lo.min(m), hi.max(m))
        });
    let (mid, half) = (0.5 * (lo + hi), 0.5 * (hi - lo));
    let (s_v, inv_s) = (F64Vector::splat(s), F64Vector::splat(1.0 / s));
    let potential = |x: f64| {
        let x = F64Vector::splat(x);
        let mut total = F64Vector::splat(0.0);
        for k in (0..row.len()).step_by(LANES) {
            let a = abs_moment_lanes(x - load(row, k), s_v, inv_s);
            total = a.mul_add(load(weights, k), total);
        }
        total.reduce_add()
    };
    if half == 0.0 {
        return Some(m_count as f64 * potential(mid));
    }
    let node =
        |j: usize, n: usize| mid + half * (core::f64::consts::PI * j as f64 / n as f64).cos();
    let mut n = FIRST_DEGREE;
    let mut values: Vec<f64> = (0..=n).map(|j| potential(node(j, n))).collect();
    loop {
        // c_k = (2/n) Σ''_j f_j cos(πjk/n), halved at k = 0 and k = n.
        let cosines: Vec<f64> = (0..2 * n)
            .map(|m| (core::f64::consts::PI * m as f64 / n as f64).cos())
            .collect();
        let coefficients: Vec<f64> = (0..=n)
            .map(|k| {
                let sum: f64 = values
                    .iter()
                    .enumerate()
                    .map(|(j, &f)| {
                        let end = if j == 0 || j == n { 0.5 } else { 1.0 };
                        end * f * cosines[(j * k) % (2 * n)]
                    })
                    .sum();
                let end = if k == 0 || k == n { 0.5 } else { 1.0 };
                end * 2.0 / n as f64 * sum
            })
            .collect();
        let largest = coefficients.iter().fold(0.0f64, |m, c| m.max(c.abs()));
        let tail = coefficients[n - 2..]
            .iter()
            .fold(0.0f64, |m, c| m.max(c.abs()));
        if tail <= 1e-14 * largest {
            // Σⱼ G(μⱼ) by Clenshaw's recurrence at each mean.
            let total = means
                .iter()
                .map(|&m| {
                    let u = (m - mid) / half;
                    let (mut b1, mut b2) = (0.0, 0.0);
                    for &c in coefficients[1..].iter().rev() {
                        (b1, b2) = ((2.0 * u).mul_add(b1, c - b2), b1);
                    }
                    u.mul_add(b1, coefficients[0] - b2)
                })
                .sum();
            return Some(total);
        }
        if 2 * n + 1 > m_count / 4 {
            return None;
        }
        // Double the degree: the old nodes are the new even ones.
        let mut doubled = Vec::with_capacity(2 * n + 1);
        for j in 0..=2 * n {
            doubled.push(if j % 2 == 0 {
                values[j / 2]
            } else {
                potential(node(j, 2 * n))
            });
        }
        values = doubled;
        n *= 2;
    }
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
    // Per point, every level's two quantiles solved in lockstep, each from the moment-matched
    // Gaussian's quantile μ̄ + z·σ_total.
    let mut targets = Vec::with_capacity(2 * levels.len());
    let mut solved = vec![0.0; 2 * levels.len()];
    for i in 0..n {
        let (mean, spread) = (band.mean[i], band.total_std[i]);
        targets.clear();
        for &(p_lo, z_lo, p_hi, z_hi) in &levels {
            targets.push((p_lo, z_lo, mean + z_lo * spread));
            targets.push((p_hi, z_hi, mean + z_hi * spread));
        }
        pred.quantiles_of_point(i, &targets, &mut solved);
        for j in 0..levels.len() {
            lows[j * n + i] = solved[2 * j];
            highs[j * n + i] = solved[2 * j + 1];
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
