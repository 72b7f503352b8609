//! The equal-weight Gaussian-mixture predictive `p(y | xᵢ) = (1/M) Σₘ N(y | μₘᵢ, σₘᵢ)` and its exact
//! distribution function, density and quantiles.

use crate::error::check_finite;
use flock_kernels::{F64Vector, SimdVector};

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
    /// Point-major copies for the vector loops, each row padded to whole vectors.
    rows: PointRows,
}

/// `[N, M_pad]` point-major copies of the means (and σ, 1/σ when per component), `M_pad` = `M`
/// rounded up to whole vectors; padding lanes repeat the last component and have weight 0.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PointRows {
    pub(crate) width: usize,
    pub(crate) means: Vec<f64>,
    pub(crate) sigmas: Option<Vec<f64>>,
    pub(crate) inv_sigmas: Option<Vec<f64>>,
    /// `[M_pad]`: 1 for a component, 0 for padding.
    pub(crate) weights: Vec<f64>,
}

/// One quantile solve in progress: Halley steps safeguarded by bisection inside `[lo, hi]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Solve {
    p: f64,
    x: f64,
    lo: f64,
    hi: f64,
    iterations: usize,
    done: bool,
}

impl Solve {
    /// Advances from `(F(x), F'(x), F''(x))`; `sigma` is a component scale for the stopping rule.
    #[inline]
    fn step(&mut self, cdf: f64, density: f64, slope: f64, sigma: f64) {
        let f = cdf - self.p;
        self.iterations += 1;
        if f == 0.0 || self.iterations >= 200 {
            self.done = true;
            return;
        }
        if f < 0.0 {
            self.lo = self.x;
        } else {
            self.hi = self.x;
        }
        // Halley: x − f/(f' − f·f''/(2f')).
        let step = if density > 0.0 {
            f / (density - 0.5 * f * slope / density)
        } else {
            f64::NAN
        };
        let candidate = self.x - step;
        let next = if candidate > self.lo && candidate < self.hi {
            candidate
        } else {
            0.5 * (self.lo + self.hi)
        };
        let tol = 1e-14 * (1.0 + self.x.abs());
        // Halley converges cubically: once a step is below ~1e-5 of the scale, the error left
        // after it is below 1e-15, so the step is taken without another evaluation.
        let scale = 1e-5 * (self.hi - self.lo).max(sigma);
        self.done = (next - self.x).abs() <= tol
            || self.hi - self.lo <= tol
            || (next == candidate && step.abs() <= scale);
        self.x = next;
    }
}

/// Folds the lanes of `v` with `f`.
#[inline(always)]
fn horizontal(v: F64Vector, f: fn(f64, f64) -> f64) -> f64 {
    let mut lanes = [0.0; 16];
    v.write_to(&mut lanes);
    lanes[..LANES].iter().copied().fold(lanes[0], f)
}

/// Lanes of the vector loops.
pub(crate) const LANES: usize = <F64Vector as SimdVector>::LANES;

/// Loads `LANES` values of `row` from `k`.
#[inline(always)]
pub(crate) fn load(row: &[f64], k: usize) -> F64Vector {
    F64Vector::from_slice(&row[k..k + LANES])
}

impl PointRows {
    fn new(means: &[f64], sigma: &Sigma, components: usize, points: usize) -> PointRows {
        let width = components.div_ceil(LANES) * LANES;
        let transpose = |values: &[f64]| {
            let mut rows = vec![0.0; points * width];
            for i in 0..points {
                for k in 0..width {
                    rows[i * width + k] = values[k.min(components - 1) * points + i];
                }
            }
            rows
        };
        let sigmas = match sigma {
            Sigma::PerComponent(s) => Some(transpose(s)),
            _ => None,
        };
        PointRows {
            width,
            means: transpose(means),
            inv_sigmas: sigmas.as_ref().map(|s| s.iter().map(|v| 1.0 / v).collect()),
            sigmas,
            weights: (0..width)
                .map(|k| if k < components { 1.0 } else { 0.0 })
                .collect(),
        }
    }

    /// Point `i`'s padded row of `values`.
    #[inline(always)]
    pub(crate) fn row<'a>(&self, values: &'a [f64], i: usize) -> &'a [f64] {
        &values[i * self.width..(i + 1) * self.width]
    }
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
        let rows = PointRows::new(&means, &sigma, components, points);
        Ok(MixturePredictive {
            means,
            sigma,
            components,
            points,
            rows,
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

    /// Point-major rows for the vector loops.
    pub(crate) fn rows(&self) -> &PointRows {
        &self.rows
    }

    /// The mixture's distribution function at point `i`: `Fᵢ(y) = (1/M) Σₘ Φ((y − μₘᵢ)/σₘᵢ)`
    /// (far tails to full relative accuracy).
    pub fn cdf(&self, i: usize, y: f64) -> f64 {
        self.sums(i, y, true).0
    }

    /// The mixture's density at point `i`.
    pub fn pdf(&self, i: usize, y: f64) -> f64 {
        self.sums(i, y, true).1
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

    /// `(Fᵢ(y), pᵢ(y), pᵢ'(y))` in one pass over the components, a vector of components at a
    /// time; `exact` keeps the far tails' relative accuracy (else `Fᵢ` is exact to 1e-19 absolute,
    /// plenty for root finding).
    #[inline(always)]
    fn sums(&self, i: usize, y: f64, exact: bool) -> (f64, f64, f64) {
        let rows = &self.rows;
        let means = rows.row(&rows.means, i);
        let inv_sigmas = rows.inv_sigmas.as_ref().map(|s| rows.row(s, i));
        let common = F64Vector::splat(self.common_sigma(i).map_or(1.0, |s| 1.0 / s));
        let target = F64Vector::splat(y);
        let zero = F64Vector::splat(0.0);
        let (mut cdf, mut pdf, mut slope) = (zero, zero, zero);
        for k in (0..rows.width).step_by(LANES) {
            let inv_s = inv_sigmas.map_or(common, |row| load(row, k));
            let z = (target - load(means, k)) * inv_s;
            let (big_phi, small_phi) = if exact {
                normal::cdf_pdf_exact_lanes(z)
            } else {
                normal::cdf_pdf_lanes(z)
            };
            let w = load(&rows.weights, k);
            let phi = small_phi * inv_s * w;
            cdf = big_phi.mul_add(w, cdf);
            pdf += phi;
            slope -= z * inv_s * phi;
        }
        let inv = 1.0 / self.components as f64;
        (
            cdf.reduce_add() * inv,
            pdf.reduce_add() * inv,
            slope.reduce_add() * inv,
        )
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
        let mut solve = self.start_solve(i, p, z, guess);
        while !solve.done {
            let (cdf, density, slope) = self.sums(i, solve.x, false);
            solve.step(cdf, density, slope, self.sigma_of(0, i));
        }
        Ok(solve.x)
    }

    /// The quantiles of point `i` at every `(p, z = Φ⁻¹(p), guess)` of `targets`, into `out`, a
    /// vector of targets at a time: each lane runs [`MixturePredictive::quantile_solve`]'s Halley
    /// iteration (same bracket, steps and stopping rule) on its own target, so the mixture sums
    /// need no horizontal reductions and the step's divisions are shared by the lanes.
    pub(crate) fn quantiles_of_point(
        &self,
        i: usize,
        targets: &[(f64, f64, f64)],
        out: &mut [f64],
    ) {
        let rows = &self.rows;
        let means = &rows.row(&rows.means, i)[..self.components];
        let sigmas = rows
            .sigmas
            .as_ref()
            .map(|s| &rows.row(s, i)[..self.components]);
        let inv_sigmas = rows
            .inv_sigmas
            .as_ref()
            .map(|s| &rows.row(s, i)[..self.components]);
        let common = self.common_sigma(i).unwrap_or(1.0);
        let inv_common = 1.0 / common;
        let sigma_of = |m: usize| sigmas.map_or(common, |row| row[m]);
        let inv_sigma_of = |m: usize| inv_sigmas.map_or(inv_common, |row| row[m]);
        let splat = F64Vector::splat;
        let (zero, one) = (splat(0.0), splat(1.0));
        let inv_m = 1.0 / self.components as f64;
        let sigma0 = splat(self.sigma_of(0, i));
        for (chunk, out) in targets.chunks(LANES).zip(out.chunks_mut(LANES)) {
            // Pad the last chunk by repeating its last target.
            let lane = |k: usize| chunk[k.min(chunk.len() - 1)];
            let gather = |f: fn((f64, f64, f64)) -> f64| {
                let mut v = [0.0; 16];
                for (k, slot) in v[..LANES].iter_mut().enumerate() {
                    *slot = f(lane(k));
                }
                load(&v, 0)
            };
            let (p, z, guess) = (gather(|t| t.0), gather(|t| t.1), gather(|t| t.2));
            // The components' own quantiles bracket the mixture's; their mean is the fallback
            // start.
            let (mut lo, mut hi, mut mean_q) =
                (splat(f64::INFINITY), splat(f64::NEG_INFINITY), zero);
            for (m, &mu) in means.iter().enumerate() {
                let q = splat(sigma_of(m)).mul_add(z, splat(mu));
                lo = lo.min(q);
                hi = hi.max(q);
                mean_q += q;
            }
            let inside = guess.simd_gt(lo) & guess.simd_lt(hi);
            let mut x = inside.select(guess, mean_q * splat(inv_m));
            let degenerate = lo.simd_eq(hi);
            x = degenerate.select(lo, x);
            let mut done = degenerate;
            for _ in 0..200 {
                if done.all() {
                    break;
                }
                let (mut cdf, mut pdf, mut slope) = (zero, zero, zero);
                for (m, &mu) in means.iter().enumerate() {
                    let inv_s = splat(inv_sigma_of(m));
                    let zm = (x - splat(mu)) * inv_s;
                    let (big_phi, small_phi) = normal::cdf_pdf_lanes(zm);
                    let phi = small_phi * inv_s;
                    cdf += big_phi;
                    pdf += phi;
                    slope -= zm * inv_s * phi;
                }
                let (cdf, pdf, slope) =
                    (cdf * splat(inv_m), pdf * splat(inv_m), slope * splat(inv_m));
                let f = cdf - p;
                let exact = f.simd_eq(zero);
                let below = f.simd_lt(zero);
                lo = (below & !done).select(x, lo);
                hi = (!below & !done).select(x, hi);
                // Halley: x − f/(f' − f·f''/(2f')); a non-positive density falls back to bisection.
                let step = f / (pdf - splat(0.5) * f * slope / pdf);
                let step = pdf.simd_gt(zero).select(step, splat(f64::NAN));
                let candidate = x - step;
                let inside = candidate.simd_gt(lo) & candidate.simd_lt(hi);
                let next = inside.select(candidate, splat(0.5) * (lo + hi));
                let tol = splat(1e-14) * (one + x.abs());
                let scale = splat(1e-5) * (hi - lo).max(sigma0);
                let finished = (next - x).abs().simd_le(tol)
                    | (hi - lo).simd_le(tol)
                    | (inside & step.abs().simd_le(scale));
                x = (done | exact).select(x, next);
                done = done | exact | finished;
            }
            let mut values = [0.0; 16];
            x.write_to(&mut values);
            out.copy_from_slice(&values[..out.len()]);
        }
    }

    /// A solve of `Fᵢ(q) = p` bracketed by the components' own p-quantiles (which always contain
    /// the mixture's), starting from `guess` when it is inside.
    fn start_solve(&self, i: usize, p: f64, z: f64, guess: Option<f64>) -> Solve {
        let rows = &self.rows;
        let means = rows.row(&rows.means, i);
        let z_v = F64Vector::splat(z);
        let (mut lo_v, mut hi_v) = (
            F64Vector::splat(f64::INFINITY),
            F64Vector::splat(f64::NEG_INFINITY),
        );
        let common = F64Vector::splat(self.common_sigma(i).unwrap_or(1.0));
        let sigmas = rows.sigmas.as_ref().map(|s| rows.row(s, i));
        for k in (0..rows.width).step_by(LANES) {
            // Padding lanes repeat the last component, so they change neither end.
            let q = sigmas
                .map_or(common, |row| load(row, k))
                .mul_add(z_v, load(means, k));
            lo_v = lo_v.min(q);
            hi_v = hi_v.max(q);
        }
        let (lo, hi) = (horizontal(lo_v, f64::min), horizontal(hi_v, f64::max));
        let x = match guess.filter(|g| *g > lo && *g < hi) {
            Some(g) => g,
            None => {
                let mut mean_q = 0.0;
                for m in 0..self.components {
                    mean_q += self.mean_of(m, i) + self.sigma_of(m, i) * z;
                }
                mean_q / self.components as f64
            }
        };
        Solve {
            p,
            x: if lo == hi { lo } else { x },
            lo,
            hi,
            iterations: 0,
            done: lo == hi,
        }
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
