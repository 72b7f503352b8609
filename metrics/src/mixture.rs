//! The equal-weight Gaussian-mixture predictive `p(y | xᵢ) = (1/M) Σₘ N(y | μₘᵢ, σₘᵢ)` and its exact
//! distribution function, density and quantiles.

use crate::error::check_finite;
use crate::{MetricsError, normal};

/// The standard deviations of a mixture's components.
#[derive(Clone, Debug, PartialEq)]
pub enum Sigma {
    /// One σ for every component and point (the seed's fixed observation noise).
    Shared(f64),
    /// One σ per point, `[N]`.
    PerPoint(Vec<f64>),
    /// One σ per component and point, `[M, N]` (heteroscedastic heads, VI samples).
    PerComponent(Vec<f64>),
}

/// A predictive over `N` points, each an equal-weight mixture of `M` Gaussians.
///
/// ```
/// use flock_metrics::{MixturePredictive, Sigma};
/// // Two members, three points, the seed's σ = 0.1.
/// let means = [0.0, 1.0, 2.0, 0.2, 1.0, 1.8];
/// let p = MixturePredictive::new(&means, 2, 3, Sigma::Shared(0.1))?;
/// assert!((p.cdf(1, 1.0) - 0.5).abs() < 1e-15);
/// assert!((p.quantile(0, 0.5)? - 0.1).abs() < 1e-12);
/// # Ok::<(), flock_metrics::MetricsError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct MixturePredictive {
    means: Vec<f64>,
    sigma: Sigma,
    components: usize,
    points: usize,
}

impl MixturePredictive {
    /// `means` is `[M, N]` (component-major: `means[m·N + i]`), in f32 or f64.
    ///
    /// # Errors
    /// [`MetricsError::Empty`], [`MetricsError::Shape`], [`MetricsError::NonFinite`] and
    /// [`MetricsError::NonPositiveSigma`] name the offending input.
    pub fn new<T: Copy + Into<f64>>(
        means: &[T],
        components: usize,
        points: usize,
        sigma: Sigma,
    ) -> Result<MixturePredictive, MetricsError> {
        if components == 0 {
            return Err(MetricsError::Empty { what: "components" });
        }
        if points == 0 {
            return Err(MetricsError::Empty { what: "points" });
        }
        let expected = components * points;
        if means.len() != expected {
            return Err(MetricsError::Shape {
                what: "means",
                len: means.len(),
                expected,
            });
        }
        let means: Vec<f64> = means.iter().map(|&v| v.into()).collect();
        check_finite("means", &means)?;
        let sigmas: &[f64] = match &sigma {
            Sigma::Shared(s) => core::slice::from_ref(s),
            Sigma::PerPoint(s) => {
                if s.len() != points {
                    return Err(MetricsError::Shape {
                        what: "sigma (per point)",
                        len: s.len(),
                        expected: points,
                    });
                }
                s
            }
            Sigma::PerComponent(s) => {
                if s.len() != expected {
                    return Err(MetricsError::Shape {
                        what: "sigma (per component)",
                        len: s.len(),
                        expected,
                    });
                }
                s
            }
        };
        if let Some(index) = sigmas.iter().position(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(MetricsError::NonPositiveSigma {
                index,
                value: sigmas[index],
            });
        }
        Ok(MixturePredictive {
            means,
            sigma,
            components,
            points,
        })
    }

    /// `M`.
    pub fn components(&self) -> usize {
        self.components
    }

    /// `N`.
    pub fn points(&self) -> usize {
        self.points
    }

    /// `μₘᵢ`.
    #[inline]
    pub fn mean_of(&self, m: usize, i: usize) -> f64 {
        self.means[m * self.points + i]
    }

    /// The σ every component has at point `i`, when they share one (shared or per-point σ).
    #[inline]
    pub fn common_sigma(&self, i: usize) -> Option<f64> {
        match &self.sigma {
            Sigma::Shared(s) => Some(*s),
            Sigma::PerPoint(s) => Some(s[i]),
            Sigma::PerComponent(_) => None,
        }
    }

    /// `σₘᵢ`.
    #[inline]
    pub fn sigma_of(&self, m: usize, i: usize) -> f64 {
        match &self.sigma {
            Sigma::Shared(s) => *s,
            Sigma::PerPoint(s) => s[i],
            Sigma::PerComponent(s) => s[m * self.points + i],
        }
    }

    /// The mixture's distribution function at point `i`: `Fᵢ(y) = (1/M) Σₘ Φ((y − μₘᵢ)/σₘᵢ)`.
    pub fn cdf(&self, i: usize, y: f64) -> f64 {
        let total: f64 = (0..self.components)
            .map(|m| normal::cdf_pdf((y - self.mean_of(m, i)) / self.sigma_of(m, i)).0)
            .sum();
        total / self.components as f64
    }

    /// The mixture's density at point `i`.
    pub fn pdf(&self, i: usize, y: f64) -> f64 {
        let total: f64 = (0..self.components)
            .map(|m| {
                let s = self.sigma_of(m, i);
                normal::cdf_pdf((y - self.mean_of(m, i)) / s).1 / s
            })
            .sum();
        total / self.components as f64
    }

    /// `log pᵢ(y)` by log-sum-exp.
    pub fn log_pdf(&self, i: usize, y: f64) -> f64 {
        let mut max = f64::NEG_INFINITY;
        for m in 0..self.components {
            max = max.max(normal::log_pdf(y, self.mean_of(m, i), self.sigma_of(m, i)));
        }
        let sum: f64 = (0..self.components)
            .map(|m| (normal::log_pdf(y, self.mean_of(m, i), self.sigma_of(m, i)) - max).exp())
            .sum();
        max + sum.ln() - (self.components as f64).ln()
    }

    /// `(Fᵢ(y), pᵢ(y), pᵢ'(y))` in one pass over the components.
    fn cdf_pdf_slope(&self, i: usize, y: f64) -> (f64, f64, f64) {
        let (mut cdf, mut pdf, mut slope) = (0.0, 0.0, 0.0);
        let common = self.common_sigma(i).map(|s| 1.0 / s);
        for m in 0..self.components {
            let inv_s = common.unwrap_or_else(|| 1.0 / self.sigma_of(m, i));
            let z = (y - self.mean_of(m, i)) * inv_s;
            let (big_phi, small_phi) = normal::cdf_pdf(z);
            let phi = small_phi * inv_s;
            cdf += big_phi;
            pdf += phi;
            slope -= z * inv_s * phi;
        }
        let inv = 1.0 / self.components as f64;
        (cdf * inv, pdf * inv, slope * inv)
    }

    /// The mixture's `p`-quantile at point `i`: the root of `Fᵢ(q) = p`, found by Halley steps
    /// safeguarded by bisection inside the bracket of the components' own quantiles (which
    /// always contains it).
    ///
    /// # Errors
    /// [`MetricsError::Level`] unless `0 < p < 1`.
    pub fn quantile(&self, i: usize, p: f64) -> Result<f64, MetricsError> {
        self.quantile_from(i, p, None)
    }

    /// [`MixturePredictive::quantile`] starting from `guess` when given (e.g. the quantile of a
    /// nearby level).
    pub(crate) fn quantile_from(
        &self,
        i: usize,
        p: f64,
        guess: Option<f64>,
    ) -> Result<f64, MetricsError> {
        if !(p > 0.0 && p < 1.0) {
            return Err(MetricsError::Level { value: p });
        }
        self.quantile_solve(i, p, normal::quantile(p), guess)
    }

    /// The root of `Fᵢ(q) = p` given `z = Φ⁻¹(p)` (computed once per level by callers that solve
    /// many points).
    pub(crate) fn quantile_solve(
        &self,
        i: usize,
        p: f64,
        z: f64,
        guess: Option<f64>,
    ) -> Result<f64, MetricsError> {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        let mut mean_q = 0.0;
        for m in 0..self.components {
            let q = self.mean_of(m, i) + self.sigma_of(m, i) * z;
            lo = lo.min(q);
            hi = hi.max(q);
            mean_q += q;
        }
        if lo == hi {
            return Ok(lo);
        }
        let mut x = guess
            .filter(|g| *g > lo && *g < hi)
            .unwrap_or(mean_q / self.components as f64);
        for _ in 0..200 {
            let (cdf, d, slope) = self.cdf_pdf_slope(i, x);
            let f = cdf - p;
            if f == 0.0 {
                return Ok(x);
            }
            if f < 0.0 {
                lo = x;
            } else {
                hi = x;
            }
            // Halley: x − f/(f' − f·f''/(2f')).
            let step = if d > 0.0 {
                f / (d - 0.5 * f * slope / d)
            } else {
                f64::NAN
            };
            let candidate = x - step;
            let next = if candidate > lo && candidate < hi {
                candidate
            } else {
                0.5 * (lo + hi)
            };
            let tol = 1e-14 * (1.0 + x.abs());
            // Halley converges cubically: once a step is below ~1e-5 of the scale, the error
            // left after it is below 1e-15, so the step is taken without another evaluation.
            let scale = 1e-5 * (hi - lo).max(self.sigma_of(0, i));
            if (next - x).abs() <= tol
                || hi - lo <= tol
                || (next == candidate && step.abs() <= scale)
            {
                return Ok(next);
            }
            x = next;
        }
        Ok(x)
    }

    /// The predictive mean per point: `(1/M) Σₘ μₘᵢ`.
    pub fn mean(&self) -> Vec<f64> {
        (0..self.points)
            .map(|i| {
                (0..self.components)
                    .map(|m| self.mean_of(m, i))
                    .sum::<f64>()
                    / self.components as f64
            })
            .collect()
    }

    /// The seed's `predictive_band`, per point: the mean, the epistemic variance (of the
    /// component means), the aleatoric variance (mean of σ²) and the total standard deviation.
    pub fn band(&self) -> Band {
        let mean = self.mean();
        let mut band = Band {
            epistemic_var: Vec::with_capacity(self.points),
            aleatoric_var: Vec::with_capacity(self.points),
            total_std: Vec::with_capacity(self.points),
            mean,
        };
        let inv = 1.0 / self.components as f64;
        for i in 0..self.points {
            let mu = band.mean[i];
            let (mut epi, mut alea) = (0.0, 0.0);
            for m in 0..self.components {
                epi += (self.mean_of(m, i) - mu).powi(2);
                alea += self.sigma_of(m, i).powi(2);
            }
            let (epi, alea) = (epi * inv, alea * inv);
            band.epistemic_var.push(epi);
            band.aleatoric_var.push(alea);
            band.total_std.push((epi + alea).sqrt());
        }
        band
    }
}

/// The predictive band: per-point mean, variance split and total standard deviation.
#[derive(Clone, Debug, PartialEq)]
pub struct Band {
    /// Predictive mean.
    pub mean: Vec<f64>,
    /// Variance of the component means (epistemic).
    pub epistemic_var: Vec<f64>,
    /// Mean component variance (aleatoric).
    pub aleatoric_var: Vec<f64>,
    /// `√(epistemic + aleatoric)`.
    pub total_std: Vec<f64>,
}
