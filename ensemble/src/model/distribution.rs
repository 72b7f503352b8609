//! Distributions for model sites, with `log_prob` recorded on the tape (differentiable in the
//! value and in every parameter given as a [`Var`](flock_autograd::Var)).

use flock_autograd::{Arg, AutogradError, Graph, Var};
use flock_kernels::Element;
use rand::Rng;

use crate::rng::standard_normal;

/// Where a distribution's values live; positive sites are optimised through their logarithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// The real line.
    Real,
    /// `(0, ∞)`.
    Positive,
    /// Class labels: for observed sites only.
    Discrete,
}

/// A distribution over each element of a site (independent elements, `to_event` semantics:
/// `log_prob` sums over every element).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Distribution<T> {
    /// `N(loc, scale)`.
    Normal {
        /// Mean.
        loc: Arg<T>,
        /// Standard deviation.
        scale: Arg<T>,
    },
    /// `|N(0, scale)|`: a prior for a noise scale.
    HalfNormal {
        /// Scale of the underlying normal.
        scale: Arg<T>,
    },
    /// `exp(N(loc, scale))`.
    LogNormal {
        /// Mean of the logarithm.
        loc: Arg<T>,
        /// Standard deviation of the logarithm.
        scale: Arg<T>,
    },
    /// `Categorical(softmax(logits))` over class indices `0..K`, one per row of `logits`
    /// `[N, K]` — for observed labels (`observe`), not for latent sites.
    Categorical {
        /// The logits, `[N, K]`.
        logits: Var,
    },
    /// `Bernoulli(σ(logits))` over `{0, 1}`, one logit per row (`[N]` or `[N, 1]`) — for
    /// observed labels.
    Bernoulli {
        /// The logits.
        logits: Var,
    },
}

/// `Categorical(softmax(logits))` for observed class labels.
///
/// ```
/// use flock_autograd::{ParamLayout, Parameters, Tape};
/// use flock_ensemble::model::categorical;
/// let params = Parameters::<f64>::zeros(ParamLayout::new(), 1);
/// let mut tape = Tape::new();
/// let mut g = tape.graph(&params);
/// let logits = g.input(&[0.0, 0.0], [1, 2])?;
/// let y = g.input(&[1.0], [1])?;
/// let lp = categorical(logits).log_prob(&mut g, y)?;
/// assert!((g.values(lp, 0)[0] + 2f64.ln()).abs() < 1e-15);
/// # Ok::<(), flock_autograd::AutogradError>(())
/// ```
pub fn categorical<T>(logits: Var) -> Distribution<T> {
    Distribution::Categorical { logits }
}

/// `Bernoulli(σ(logits))` for observed 0/1 labels.
pub fn bernoulli<T>(logits: Var) -> Distribution<T> {
    Distribution::Bernoulli { logits }
}

/// `N(loc, scale)`; `loc` and `scale` are constants or nodes.
///
/// ```
/// use flock_ensemble::model::{Support, normal};
/// let d = normal::<f64>(0.0, 2.0);
/// assert_eq!(d.support(), Support::Real);
/// let x = d.sample(&mut flock_ensemble::member_rng(1, 0)).unwrap();
/// assert!(x.is_finite());
/// ```
pub fn normal<T>(loc: impl Into<Arg<T>>, scale: impl Into<Arg<T>>) -> Distribution<T> {
    Distribution::Normal {
        loc: loc.into(),
        scale: scale.into(),
    }
}

/// `HalfNormal(scale)`.
///
/// ```
/// use flock_ensemble::model::{Support, half_normal};
/// let d = half_normal::<f64>(1.0);
/// assert_eq!(d.support(), Support::Positive);
/// assert!(d.sample(&mut flock_ensemble::member_rng(1, 0)).unwrap() >= 0.0);
/// ```
pub fn half_normal<T>(scale: impl Into<Arg<T>>) -> Distribution<T> {
    Distribution::HalfNormal {
        scale: scale.into(),
    }
}

/// `LogNormal(loc, scale)`.
///
/// ```
/// use flock_autograd::{ParamLayout, Parameters, Tape};
/// use flock_ensemble::model::log_normal;
/// // log p(1) = log N(0 | 0, 1) − log 1
/// let params = Parameters::<f64>::zeros(ParamLayout::new(), 1);
/// let mut tape = Tape::new();
/// let mut g = tape.graph(&params);
/// let v = g.input(&[1.0], [1])?;
/// let lp = log_normal(0.0, 1.0).log_prob(&mut g, v)?;
/// assert!((g.values(lp, 0)[0] + 0.5 * (2.0 * std::f64::consts::PI).ln()).abs() < 1e-15);
/// # Ok::<(), flock_autograd::AutogradError>(())
/// ```
pub fn log_normal<T>(loc: impl Into<Arg<T>>, scale: impl Into<Arg<T>>) -> Distribution<T> {
    Distribution::LogNormal {
        loc: loc.into(),
        scale: scale.into(),
    }
}

impl<T: Element> Distribution<T> {
    /// The support of the distribution.
    pub fn support(&self) -> Support {
        match self {
            Distribution::Normal { .. } => Support::Real,
            Distribution::HalfNormal { .. } | Distribution::LogNormal { .. } => Support::Positive,
            Distribution::Categorical { .. } | Distribution::Bernoulli { .. } => Support::Discrete,
        }
    }

    /// `Σᵢ log p(valueᵢ)` per member, constants included.
    ///
    /// # Errors
    /// Shape errors when the parameters do not broadcast against `value`.
    pub fn log_prob(&self, g: &mut Graph<'_, T>, value: Var) -> Result<Var, AutogradError> {
        match *self {
            Distribution::Normal { loc, scale } => g.normal_log_density(value, loc, scale),
            Distribution::HalfNormal { scale } => {
                let n = g.shape(value).elems();
                let lp = g.normal_log_density(value, Arg::Const(T::ZERO), scale)?;
                Ok(g.offset(lp, n as f64 * core::f64::consts::LN_2))
            }
            Distribution::LogNormal { loc, scale } => {
                let log_value = g.log(value);
                let lp = g.normal_log_density(log_value, loc, scale)?;
                let jacobian = g.sum(log_value);
                g.sub(lp, jacobian)
            }
            Distribution::Categorical { logits } => g.categorical_log_likelihood(logits, value),
            Distribution::Bernoulli { logits } => g.bernoulli_log_likelihood(logits, value),
        }
    }

    /// One draw, when every parameter is a constant (`None` otherwise).
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Option<f64> {
        let constant = |a: Arg<T>| match a {
            Arg::Const(c) => Some(c.to_f64()),
            Arg::Var(_) => None,
        };
        let z = standard_normal(rng);
        match *self {
            Distribution::Normal { loc, scale } => Some(constant(loc)? + constant(scale)? * z),
            Distribution::HalfNormal { scale } => Some((constant(scale)? * z).abs()),
            Distribution::LogNormal { loc, scale } => {
                Some((constant(loc)? + constant(scale)? * z).exp())
            }
            Distribution::Categorical { .. } | Distribution::Bernoulli { .. } => None,
        }
    }
}
