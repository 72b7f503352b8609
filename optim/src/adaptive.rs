//! Adaptive rescalings: Adam and its relatives, RMS, RSS (AdaGrad), Lion.
//!
//! Each is one pass over the member-major buffer; moments are member-major buffers of the same
//! shape as the parameters, counts are per member.

use flock_kernels::Element;
use flock_kernels::elementwise::{AdamCoefficients, adam_update, adam_update_apply};

use crate::Layout;
use crate::base::{GradientTransformation, Params, assert_len, members_mut, vec_member_state};
use crate::error::{OptimError, check, check_decay, check_nonnegative};

/// `1 − decay^count` (optax's bias correction denominator).
#[inline]
fn bias_correction(decay: f64, count: u64) -> f64 {
    1.0 - decay.powf(count as f64)
}

/// Configuration of [`scale_by_adam`] (optax's defaults via `Default`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// First-moment decay.
    pub b1: f64,
    /// Second-moment decay.
    pub b2: f64,
    /// Added to the root of the second moment.
    pub eps: f64,
    /// Added to the second moment inside the root.
    pub eps_root: f64,
    /// Nesterov momentum (NAdam).
    pub nesterov: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            b1: 0.9,
            b2: 0.999,
            eps: 1e-8,
            eps_root: 0.0,
            nesterov: false,
        }
    }
}

impl AdamConfig {
    fn validate(&self) -> Result<(), OptimError> {
        check_decay("b1", self.b1)?;
        check_decay("b2", self.b2)?;
        check_nonnegative("eps", self.eps)?;
        check_nonnegative("eps_root", self.eps_root)
    }
}

/// State of [`ScaleByAdam`] and [`ScaleByBelief`].
#[derive(Clone, Debug, PartialEq)]
pub struct ScaleByAdamState<T> {
    /// Steps taken, per member.
    pub count: Vec<u64>,
    /// First moments, `E·P`.
    pub mu: Vec<T>,
    /// Second moments, `E·P`.
    pub nu: Vec<T>,
}

vec_member_state!(ScaleByAdamState<T> "scale_by_adam" { counts: [count], values: [mu, nu] });

fn zeros_state<T: Element>(params: Params<'_, T>) -> ScaleByAdamState<T> {
    ScaleByAdamState {
        count: vec![0; params.layout.members()],
        mu: vec![T::ZERO; params.values.len()],
        nu: vec![T::ZERO; params.values.len()],
    }
}

/// Adam's rescaling: `m̂ / (√(v̂ + eps_root) + eps)` with bias-corrected moments.
#[derive(Clone, Debug)]
pub struct ScaleByAdam(AdamConfig);

/// Adam's rescaling (optax `scale_by_adam`).
pub fn scale_by_adam(config: AdamConfig) -> Result<ScaleByAdam, OptimError> {
    config.validate()?;
    Ok(ScaleByAdam(config))
}

impl<T: Element> GradientTransformation<T> for ScaleByAdam {
    type State = ScaleByAdamState<T>;

    fn init(&self, params: Params<'_, T>) -> Self::State {
        zeros_state(params)
    }

    fn update(&self, updates: &mut [T], state: &mut Self::State, params: Params<'_, T>) {
        assert_len(updates, params.layout);
        for (e, u) in members_mut(updates, params.layout) {
            self.member_step(e, u, state, None);
        }
    }

    /// The moments, the rescaling, the scale and the addition in one pass per member.
    fn update_scaled_and_apply(
        &self,
        updates: &mut [T],
        state: &mut Self::State,
        params: &mut [T],
        layout: &Layout,
        factor: &mut dyn FnMut(usize) -> f64,
    ) {
        assert_len(updates, layout);
        assert_len(params, layout);
        let p = layout.member_size();
        for (e, u) in members_mut(updates, layout) {
            let member = &mut params[e * p..(e + 1) * p];
            self.member_step(e, u, state, Some((member, T::from_f64(factor(e)))));
        }
    }
}

impl ScaleByAdam {
    /// Member `e`'s step on its updates `u`; with `apply = (params, factor)`, `params += factor·u`
    /// in the same pass instead of storing `u`.
    fn member_step<T: Element>(
        &self,
        e: usize,
        u: &mut [T],
        state: &mut ScaleByAdamState<T>,
        apply: Option<(&mut [T], T)>,
    ) {
        let c = self.0;
        let (b1, b2) = (T::from_f64(c.b1), T::from_f64(c.b2));
        let (one_b1, one_b2) = (T::from_f64(1.0 - c.b1), T::from_f64(1.0 - c.b2));
        let (eps, eps_root) = (T::from_f64(c.eps), T::from_f64(c.eps_root));
        let p = u.len();
        state.count[e] = state.count[e].saturating_add(1);
        let count = state.count[e];
        let bc1 = T::from_f64(bias_correction(c.b1, count));
        let bc2 = T::from_f64(bias_correction(c.b2, count));
        let mu = &mut state.mu[e * p..(e + 1) * p];
        let nu = &mut state.nu[e * p..(e + 1) * p];
        if c.nesterov {
            let bc1_next = T::from_f64(bias_correction(c.b1, count.saturating_add(1)));
            for ((g, m), v) in u.iter_mut().zip(mu.iter_mut()).zip(nu.iter_mut()) {
                *m = one_b1 * *g + b1 * *m;
                *v = one_b2 * (*g * *g) + b2 * *v;
                let m_hat = b1 * (*m / bc1_next) + one_b1 * (*g / bc1);
                *g = m_hat / ((*v / bc2 + eps_root).sqrt() + eps);
            }
            if let Some((params, factor)) = apply {
                flock_kernels::elementwise::add_scaled(factor, u, params);
            }
            return;
        }
        let coefficients = AdamCoefficients {
            b1,
            b2,
            one_minus_b1: one_b1,
            one_minus_b2: one_b2,
            bias_correction1: bc1,
            bias_correction2: bc2,
            eps,
            eps_root,
        };
        match apply {
            Some((params, factor)) => {
                adam_update_apply(u, mu, nu, params, coefficients, factor);
            }
            None => adam_update(u, mu, nu, coefficients),
        }
    }
}

/// State of [`ScaleByAmsgrad`].
#[derive(Clone, Debug, PartialEq)]
pub struct ScaleByAmsgradState<T> {
    /// Steps taken, per member.
    pub count: Vec<u64>,
    /// First moments.
    pub mu: Vec<T>,
    /// Second moments.
    pub nu: Vec<T>,
    /// Running maximum of the bias-corrected second moments.
    pub nu_max: Vec<T>,
}

vec_member_state!(ScaleByAmsgradState<T> "scale_by_amsgrad" { counts: [count], values: [mu, nu, nu_max] });

/// AMSGrad: Adam with the running maximum of `v̂` in the denominator.
#[derive(Clone, Debug)]
pub struct ScaleByAmsgrad {
    config: AdamConfig,
    bias_correction_mu: bool,
    bias_correction_nu: bool,
}

/// AMSGrad's rescaling (optax `scale_by_amsgrad`; `nesterov` is ignored), both moments
/// bias-corrected as optax's defaults.
pub fn scale_by_amsgrad(config: AdamConfig) -> Result<ScaleByAmsgrad, OptimError> {
    config.validate()?;
    Ok(ScaleByAmsgrad {
        config,
        bias_correction_mu: true,
        bias_correction_nu: true,
    })
}

impl ScaleByAmsgrad {
    /// Uses the first moment `m` as it is, not `m / (1 − b1ᵗ)` (optax's
    /// `bias_correction_mu=False`).
    pub fn without_mu_bias_correction(mut self) -> Self {
        self.bias_correction_mu = false;
        self
    }
    /// Takes the running maximum of `v` rather than of `v / (1 − b2ᵗ)` (optax's
    /// `bias_correction_nu=False`).
    pub fn without_nu_bias_correction(mut self) -> Self {
        self.bias_correction_nu = false;
        self
    }
}

impl<T: Element> GradientTransformation<T> for ScaleByAmsgrad {
    type State = ScaleByAmsgradState<T>;

    fn init(&self, params: Params<'_, T>) -> Self::State {
        let n = params.values.len();
        ScaleByAmsgradState {
            count: vec![0; params.layout.members()],
            mu: vec![T::ZERO; n],
            nu: vec![T::ZERO; n],
            nu_max: vec![T::ZERO; n],
        }
    }

    fn update(&self, updates: &mut [T], state: &mut Self::State, params: Params<'_, T>) {
        assert_len(updates, params.layout);
        let c = self.config;
        let (b1, b2) = (T::from_f64(c.b1), T::from_f64(c.b2));
        let (one_b1, one_b2) = (T::from_f64(1.0 - c.b1), T::from_f64(1.0 - c.b2));
        let (eps, eps_root) = (T::from_f64(c.eps), T::from_f64(c.eps_root));
        let p = params.layout.member_size();
        // Dividing by 1 is exact: an uncorrected moment is the moment itself.
        let correction = |on: bool, b: f64, count: u64| {
            T::from_f64(if on { bias_correction(b, count) } else { 1.0 })
        };
        for (e, u) in members_mut(updates, params.layout) {
            state.count[e] = state.count[e].saturating_add(1);
            let bc1 = correction(self.bias_correction_mu, c.b1, state.count[e]);
            let bc2 = correction(self.bias_correction_nu, c.b2, state.count[e]);
            let r = e * p..(e + 1) * p;
            let (mu, nu, nu_max) = (
                &mut state.mu[r.clone()],
                &mut state.nu[r.clone()],
                &mut state.nu_max[r],
            );
            for i in 0..p {
                let g = u[i];
                mu[i] = one_b1 * g + b1 * mu[i];
                nu[i] = one_b2 * (g * g) + b2 * nu[i];
                let v_hat = nu[i] / bc2;
                if v_hat > nu_max[i] || v_hat.is_nan() {
                    nu_max[i] = v_hat;
                }
                u[i] = (mu[i] / bc1) / ((nu_max[i] + eps_root).sqrt() + eps);
            }
        }
    }
}

/// AdaBelief: the second moment tracks `(g − m)²`, the gradient's deviation from its belief.
#[derive(Clone, Debug)]
pub struct ScaleByBelief(AdamConfig);

/// AdaBelief's rescaling (optax `scale_by_belief`; optax's defaults are `eps = 1e-16`,
/// `eps_root = 1e-16`, see [`AdamConfig::belief`]).
pub fn scale_by_belief(config: AdamConfig) -> Result<ScaleByBelief, OptimError> {
    config.validate()?;
    Ok(ScaleByBelief(config))
}

impl AdamConfig {
    /// optax's `scale_by_belief` defaults: `b1 = 0.9, b2 = 0.999, eps = eps_root = 1e-16`.
    pub fn belief() -> Self {
        AdamConfig {
            eps: 1e-16,
            eps_root: 1e-16,
            ..AdamConfig::default()
        }
    }
}

impl<T: Element> GradientTransformation<T> for ScaleByBelief {
    type State = ScaleByAdamState<T>;

    fn init(&self, params: Params<'_, T>) -> Self::State {
        zeros_state(params)
    }

    fn update(&self, updates: &mut [T], state: &mut Self::State, params: Params<'_, T>) {
        assert_len(updates, params.layout);
        let c = self.0;
        let (b1, b2) = (T::from_f64(c.b1), T::from_f64(c.b2));
        let (one_b1, one_b2) = (T::from_f64(1.0 - c.b1), T::from_f64(1.0 - c.b2));
        let (eps, eps_root) = (T::from_f64(c.eps), T::from_f64(c.eps_root));
        let p = params.layout.member_size();
        for (e, u) in members_mut(updates, params.layout) {
            state.count[e] = state.count[e].saturating_add(1);
            let count = state.count[e];
            let bc1 = T::from_f64(bias_correction(c.b1, count));
            let bc1_next = T::from_f64(bias_correction(c.b1, count.saturating_add(1)));
            let bc2 = T::from_f64(bias_correction(c.b2, count));
            let mu = &mut state.mu[e * p..(e + 1) * p];
            let nu = &mut state.nu[e * p..(e + 1) * p];
            for ((g, m), v) in u.iter_mut().zip(mu.iter_mut()).zip(nu.iter_mut()) {
                *m = one_b1 * *g + b1 * *m;
                let err = *g - *m; // against the updated belief, as optax
                *v = one_b2 * (err * err) + b2 * *v + eps_root;
                let m_hat = if c.nesterov {
                    b1 * (*m / bc1_next) + one_b1 * (*g / bc1)
                } else {
                    *m / bc1
                };
                *g = m_hat / ((*v / bc2).sqrt() + eps);
            }
        }
    }
}

/// Configuration of [`scale_by_rms`] and [`scale_by_stddev`] (optax's defaults via `Default`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsConfig {
    /// Decay of the moving averages.
    pub decay: f64,
    /// Stabiliser.
    pub eps: f64,
    /// Initial value of the second moment.
    pub initial_scale: f64,
    /// `1/√(ν + eps)` when true, `1/(√ν + eps)` when false.
    pub eps_in_sqrt: bool,
    /// Bias-correct the moments.
    pub bias_correction: bool,
}

impl Default for RmsConfig {
    fn default() -> Self {
        RmsConfig {
            decay: 0.9,
            eps: 1e-8,
            initial_scale: 0.0,
            eps_in_sqrt: true,
            bias_correction: false,
        }
    }
}

impl RmsConfig {
    fn validate(&self) -> Result<(), OptimError> {
        check_decay("decay", self.decay)?;
        check_nonnegative("eps", self.eps)?;
        check_nonnegative("initial_scale", self.initial_scale)
    }
}

/// State of [`ScaleByRms`] (`mu` is used by the centered variant only).
#[derive(Clone, Debug, PartialEq)]
pub struct ScaleByRmsState<T> {
    /// Steps taken, per member.
    pub count: Vec<u64>,
    /// First moments (centered variant only; empty otherwise).
    pub mu: Vec<T>,
    /// Second moments.
    pub nu: Vec<T>,
}

vec_member_state!(ScaleByRmsState<T> "scale_by_rms" { counts: [count], values: [mu, nu] });

/// RMSProp's rescaling by the root mean square of past gradients, or (centered) by their
/// running standard deviation.
#[derive(Clone, Debug)]
pub struct ScaleByRms {
    config: RmsConfig,
    centered: bool,
}

/// RMSProp's rescaling (optax `scale_by_rms`).
pub fn scale_by_rms(config: RmsConfig) -> Result<ScaleByRms, OptimError> {
    config.validate()?;
    Ok(ScaleByRms {
        config,
        centered: false,
    })
}

/// Centered RMSProp's rescaling (optax `scale_by_stddev`).
pub fn scale_by_stddev(config: RmsConfig) -> Result<ScaleByRms, OptimError> {
    config.validate()?;
    Ok(ScaleByRms {
        config,
        centered: true,
    })
}

fn rms_scaling<T: Element>(var: T, eps: T, eps_in_sqrt: bool) -> T {
    if eps_in_sqrt {
        T::ONE / (var + eps).sqrt()
    } else {
        T::ONE / (var.sqrt() + eps)
    }
}

#[allow(clippy::needless_range_loop)]
fn rms_update<T: Element>(
    config: RmsConfig,
    centered: bool,
    updates: &mut [T],
    state: &mut ScaleByRmsState<T>,
    params: Params<'_, T>,
) {
    assert_len(updates, params.layout);
    let (d, one_d, eps) = (
        T::from_f64(config.decay),
        T::from_f64(1.0 - config.decay),
        T::from_f64(config.eps),
    );
    let p = params.layout.member_size();
    for (e, u) in members_mut(updates, params.layout) {
        let bc = if config.bias_correction {
            state.count[e] = state.count[e].saturating_add(1);
            T::from_f64(bias_correction(config.decay, state.count[e]))
        } else {
            T::ONE
        };
        for i in 0..p {
            let g = u[i];
            let nu = &mut state.nu[e * p + i];
            *nu = one_d * (g * g) + d * *nu;
            let nu_hat = if config.bias_correction {
                *nu / bc
            } else {
                *nu
            };
            let var = if centered {
                let mu = &mut state.mu[e * p + i];
                *mu = one_d * g + d * *mu;
                let mu_hat = if config.bias_correction {
                    *mu / bc
                } else {
                    *mu
                };
                nu_hat - mu_hat * mu_hat
            } else {
                nu_hat
            };
            u[i] = rms_scaling(var, eps, config.eps_in_sqrt) * g;
        }
    }
}

fn rms_init<T: Element>(
    config: RmsConfig,
    centered: bool,
    params: Params<'_, T>,
) -> ScaleByRmsState<T> {
    let n = params.values.len();
    ScaleByRmsState {
        count: vec![0; params.layout.members()],
        mu: if centered {
            vec![T::ZERO; n]
        } else {
            Vec::new()
        },
        nu: vec![T::from_f64(config.initial_scale); n],
    }
}

impl<T: Element> GradientTransformation<T> for ScaleByRms {
    type State = ScaleByRmsState<T>;
    fn init(&self, params: Params<'_, T>) -> Self::State {
        rms_init(self.config, self.centered, params)
    }
    fn update(&self, updates: &mut [T], state: &mut Self::State, params: Params<'_, T>) {
        rms_update(self.config, self.centered, updates, state, params)
    }
}

/// AdaGrad's rescaling by the root of the sum of squared gradients.
#[derive(Clone, Debug)]
pub struct ScaleByRss {
    initial_accumulator_value: f64,
    eps: f64,
}

/// AdaGrad's rescaling (optax `scale_by_rss`; defaults `0.1`, `1e-7`).
pub fn scale_by_rss(initial_accumulator_value: f64, eps: f64) -> Result<ScaleByRss, OptimError> {
    check_nonnegative("initial_accumulator_value", initial_accumulator_value)?;
    check_nonnegative("eps", eps)?;
    Ok(ScaleByRss {
        initial_accumulator_value,
        eps,
    })
}

impl<T: Element> GradientTransformation<T> for ScaleByRss {
    /// Sum of squares, `E·P`.
    type State = Vec<T>;
    fn init(&self, params: Params<'_, T>) -> Self::State {
        vec![T::from_f64(self.initial_accumulator_value); params.values.len()]
    }
    fn update(&self, updates: &mut [T], state: &mut Self::State, params: Params<'_, T>) {
        assert_len(updates, params.layout);
        let eps = T::from_f64(self.eps);
        for (g, s) in updates.iter_mut().zip(state.iter_mut()) {
            *s += *g * *g;
            let inv = if *s > T::ZERO {
                T::ONE / (*s + eps).sqrt()
            } else {
                T::ZERO
            };
            *g = inv * *g;
        }
    }
}

/// How Lion turns the interpolation `c = (1 − b1)·g + b1·m` into an update (optax's `mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum LionSign {
    /// `sign(c)` (optax's `mode='hard'`, the default).
    #[default]
    Hard,
    /// `tanh(beta·c)` (optax's `mode='smooth'`, `smooth_beta = beta`).
    Smooth {
        /// The slope at 0.
        beta: f64,
    },
    /// `c` where `|c| < 1`, `sign(c)` beyond (optax's `mode='refined'`).
    Refined,
}

impl LionSign {
    #[inline]
    fn apply<T: Element>(self, c: T) -> T {
        let sign = |c: T| {
            if c > T::ZERO {
                T::ONE
            } else if c < T::ZERO {
                -T::ONE
            } else {
                c // ±0 or NaN, as jnp.sign
            }
        };
        match self {
            LionSign::Hard => sign(c),
            LionSign::Smooth { beta } => (T::from_f64(beta) * c).tanh(),
            LionSign::Refined => {
                // jnp.where(|c| < 1, c, sign(c)): NaN compares false and takes sign(NaN) = NaN.
                if c.abs() < T::ONE { c } else { sign(c) }
            }
        }
    }
}

/// Lion: the sign of an interpolation between gradient and momentum.
#[derive(Clone, Debug)]
pub struct ScaleByLion {
    b1: f64,
    b2: f64,
    sign: LionSign,
}

/// Lion's rescaling (optax `scale_by_lion`; defaults `b1 = 0.9`, `b2 = 0.99`, the hard sign).
pub fn scale_by_lion(b1: f64, b2: f64) -> Result<ScaleByLion, OptimError> {
    check_decay("b1", b1)?;
    check_decay("b2", b2)?;
    Ok(ScaleByLion {
        b1,
        b2,
        sign: LionSign::Hard,
    })
}

impl ScaleByLion {
    /// Replaces the hard sign (optax's `mode` and `smooth_beta`).
    pub fn with_sign(mut self, sign: LionSign) -> Result<Self, OptimError> {
        if let LionSign::Smooth { beta } = sign {
            check(
                "smooth_beta",
                beta,
                beta.is_finite() && beta > 0.0,
                "a finite slope > 0",
            )?;
        }
        self.sign = sign;
        Ok(self)
    }
}

impl<T: Element> GradientTransformation<T> for ScaleByLion {
    /// Momentum, `E·P`.
    type State = Vec<T>;
    fn init(&self, params: Params<'_, T>) -> Self::State {
        vec![T::ZERO; params.values.len()]
    }
    fn update(&self, updates: &mut [T], state: &mut Self::State, params: Params<'_, T>) {
        assert_len(updates, params.layout);
        let (b1, one_b1) = (T::from_f64(self.b1), T::from_f64(1.0 - self.b1));
        let (b2, one_b2) = (T::from_f64(self.b2), T::from_f64(1.0 - self.b2));
        for (g, m) in updates.iter_mut().zip(state.iter_mut()) {
            let c = one_b1 * *g + b1 * *m;
            *m = one_b2 * *g + b2 * *m;
            *g = self.sign.apply(c);
        }
    }
}

/// Ensures a learning rate is valid.
pub(crate) fn check_learning_rate(lr: f64) -> Result<(), OptimError> {
    check(
        "learning_rate",
        lr,
        lr >= 0.0 && lr.is_finite(),
        "a finite learning rate ≥ 0",
    )
}
