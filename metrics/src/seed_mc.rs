//! The seed's Monte-Carlo `gof_metrics`, same definitions and defaults, for side-by-side
//! comparison with the tutorial's printed numbers. Its coverage and width carry sampling noise;
//! prefer [`exact_scores`](crate::exact_scores).

use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;

use crate::error::check_finite;
use crate::scores::{closest, seed_levels};
use crate::{MetricsError, MixturePredictive};

/// The seed's table row and curves from Monte-Carlo samples.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedMcScores {
    /// RMSE of the mean against the truth (exact, as in the seed).
    pub rmse_truth: Option<f64>,
    /// RMSE of the mean against the observations (exact).
    pub rmse_obs: f64,
    /// Mixture NLL (exact, log-sum-exp).
    pub nll: f64,
    /// Coverage at 0.95 from the samples' empirical quantiles.
    pub coverage_95: f64,
    /// Width at 0.95 from the samples' empirical quantiles.
    pub sharpness_95: f64,
    /// The levels.
    pub alphas: Vec<f64>,
    /// Coverage curve.
    pub coverage_curve: Vec<f64>,
    /// Width curve.
    pub width_curve: Vec<f64>,
}

/// numpy's default (`linear`) quantile of sorted data.
fn linear_quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    let frac = pos - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

/// The seed's `gof_metrics`: `num_samples` draws per point (a uniformly chosen component plus
/// its Gaussian noise), coverage and width from the draws' empirical quantiles. Seeded with
/// flock's generator (JAX's PRNG is not reproduced, so the draws differ from the seed's).
///
/// # Errors
/// As [`exact_scores`](crate::exact_scores); [`MetricsError::Empty`] for `num_samples == 0`.
pub fn seed_mc_scores(
    pred: &MixturePredictive,
    y_obs: &[f64],
    y_truth: Option<&[f64]>,
    num_samples: usize,
    seed: u64,
) -> Result<SeedMcScores, MetricsError> {
    if num_samples == 0 {
        return Err(MetricsError::Empty {
            what: "num_samples",
        });
    }
    let n = pred.points();
    if y_obs.len() != n {
        return Err(MetricsError::Shape {
            what: "y_obs",
            len: y_obs.len(),
            expected: n,
        });
    }
    check_finite("y_obs", y_obs)?;
    let exact_mean = pred.mean();
    let rmse = |y: &[f64]| {
        (y.iter()
            .zip(&exact_mean)
            .map(|(y, m)| (y - m).powi(2))
            .sum::<f64>()
            / n as f64)
            .sqrt()
    };
    let mut rng = Pcg64::seed_from_u64(seed);
    let members: Vec<usize> = (0..num_samples)
        .map(|_| rng.random_range(0..pred.components()))
        .collect();
    let alphas = seed_levels();
    let mut covered = vec![0usize; alphas.len()];
    let mut widths = vec![0.0; alphas.len()];
    let mut column = vec![0.0; num_samples];
    for (i, &y) in y_obs.iter().enumerate() {
        for (s, &m) in members.iter().enumerate() {
            let eps = standard_normal(&mut rng);
            column[s] = pred.mean_of(m, i) + pred.sigma_of(m, i) * eps;
        }
        column.sort_by(f64::total_cmp);
        for (j, &a) in alphas.iter().enumerate() {
            let lo = linear_quantile(&column, (1.0 - a) / 2.0);
            let hi = linear_quantile(&column, 1.0 - (1.0 - a) / 2.0);
            if y >= lo && y <= hi {
                covered[j] += 1;
            }
            widths[j] += hi - lo;
        }
    }
    let coverage_curve: Vec<f64> = covered.iter().map(|&c| c as f64 / n as f64).collect();
    let width_curve: Vec<f64> = widths.iter().map(|w| w / n as f64).collect();
    let idx95 = closest(&alphas, 0.95);
    let nll = (0..n).map(|i| -pred.log_pdf(i, y_obs[i])).sum::<f64>() / n as f64;
    Ok(SeedMcScores {
        rmse_truth: y_truth.map(rmse),
        rmse_obs: rmse(y_obs),
        nll,
        coverage_95: coverage_curve[idx95],
        sharpness_95: width_curve[idx95],
        alphas,
        coverage_curve,
        width_curve,
    })
}

/// Marsaglia's polar method.
fn standard_normal(rng: &mut Pcg64) -> f64 {
    loop {
        let u: f64 = rng.random_range(-1.0..1.0);
        let v: f64 = rng.random_range(-1.0..1.0);
        let s = u * u + v * v;
        if s > 0.0 && s < 1.0 {
            return u * (-2.0 * s.ln() / s).sqrt();
        }
    }
}
