//! `ensemble_loss`: the per-member loss `L_e = −scale·ℓ_e − prior_weight·π_e` and its gradient.

use flock_autograd::{Batch, LogJoint, LogJointOutput, Parameters, Weights};
use flock_kernels::Element;
use flock_kernels::elementwise::all_finite;

use crate::EnsembleError;

/// A log-joint turned into a per-member loss with its gradient (see [`ensemble_loss`]).
#[derive(Debug)]
pub struct EnsembleLoss<L> {
    /// The log-joint.
    pub log_joint: L,
    /// `0` = maximum likelihood, `1` = MAP, in between = tempered.
    pub prior_weight: f64,
    /// `N/|B|`, unbiasing a mini-batch's log-likelihood.
    pub scale: f64,
}

/// Wraps `log_joint` as `L_e = −scale·ℓ_e − prior_weight·π_e` per member.
///
/// With `prior_weight = 0` the prior is not computed or added at all (the log-joint may return
/// a placeholder for it), as when a model's full joint is handed over as the likelihood.
///
/// ```
/// use flock_autograd::*;
/// use flock_ensemble::{LossOutput, ensemble_loss};
/// let mut layout = ParamLayout::new();
/// let w = layout.add("w", [1])?;
/// // ℓ = −½Σ(y − w·x)², π = −½w²
/// let log_joint = TapeLogJoint::new(layout.clone(), move |g: &mut Graph<'_, f64>, x, y| {
///     let w = g.param(w)?;
///     let x = g.squeeze_last(x)?;
///     let f = g.mul(x, w)?;
///     let r = g.sub(y, f)?;
///     let sse = g.sum_squares(r);
///     let ww = g.sum_squares(w);
///     Ok((g.scale(sse, -0.5), g.scale(ww, -0.5)))
/// });
/// let mut loss = ensemble_loss(log_joint, 1.0, 2.0)?; // MAP, scale N/|B| = 2
/// let params = Parameters::from_values(layout, 1, vec![3.0])?;
/// let (mut l, mut ll, mut lp, mut grad) = ([0.0], [0.0], [0.0], [0.0]);
/// let batch = Batch::new(&[1.0], &[1.0], 1)?;
/// loss.value_and_grad(&params, batch, LossOutput {
///     losses: &mut l, loglik: &mut ll, logprior: &mut lp, grad: &mut grad })?;
/// assert_eq!(l[0], 2.0 * 0.5 * 4.0 + 0.5 * 9.0);        // −2ℓ − π
/// assert_eq!(grad[0], 2.0 * (3.0 - 1.0) + 3.0);          // ∂L/∂w
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`EnsembleError::InvalidArgument`] unless `scale` is finite and positive and `prior_weight`
/// finite and non-negative.
pub fn ensemble_loss<L>(
    log_joint: L,
    prior_weight: f64,
    scale: f64,
) -> Result<EnsembleLoss<L>, EnsembleError> {
    check_weights(prior_weight, scale)?;
    Ok(EnsembleLoss {
        log_joint,
        prior_weight,
        scale,
    })
}

pub(crate) fn check_weights(prior_weight: f64, scale: f64) -> Result<(), EnsembleError> {
    if !(scale.is_finite() && scale > 0.0) {
        return Err(EnsembleError::InvalidArgument {
            name: "scale",
            value: scale,
            expected: "a finite positive number (N/|B|)",
        });
    }
    if !(prior_weight.is_finite() && prior_weight >= 0.0) {
        return Err(EnsembleError::InvalidArgument {
            name: "prior_weight",
            value: prior_weight,
            expected: "a finite number ≥ 0 (0 = MLE, 1 = MAP)",
        });
    }
    Ok(())
}

/// Checks a batch: rows, shapes and finiteness.
pub(crate) fn check_batch<T: Element>(batch: &Batch<'_, T>) -> Result<(), EnsembleError> {
    if batch.rows == 0 {
        return Err(EnsembleError::EmptyBatch);
    }
    let rows = batch.rows * batch.per_member.unwrap_or(1);
    for (what, buf) in [("x", batch.x), ("y", batch.y)] {
        if buf.is_empty() || buf.len() % rows != 0 {
            return Err(EnsembleError::BatchShape {
                what,
                len: buf.len(),
                rows: batch.rows,
            });
        }
        // The vectorised scan first (every step checks its batch); the position only on failure.
        if !all_finite(buf) {
            let index = buf.iter().position(|v| !v.is_finite()).unwrap_or(0);
            return Err(EnsembleError::NonFiniteData { what, index });
        }
    }
    Ok(())
}

/// Loss values and gradient buffers for one evaluation.
#[derive(Debug)]
pub struct LossOutput<'a, T> {
    /// `L_e`, one per member.
    pub losses: &'a mut [T],
    /// `ℓ_e`.
    pub loglik: &'a mut [T],
    /// `π_e` (0 when `prior_weight = 0`).
    pub logprior: &'a mut [T],
    /// `∂L_e/∂θ_e`, member-major (overwritten).
    pub grad: &'a mut [T],
}

impl<L> EnsembleLoss<L> {
    /// Evaluates every member's loss and gradient at `params` on `batch`.
    ///
    /// # Errors
    /// Batch problems ([`EnsembleError::EmptyBatch`], [`EnsembleError::BatchShape`],
    /// [`EnsembleError::NonFiniteData`]), [`EnsembleError::LayoutMismatch`], and errors of the
    /// log-joint.
    pub fn value_and_grad<T: Element>(
        &mut self,
        params: &Parameters<T>,
        batch: Batch<'_, T>,
        out: LossOutput<'_, T>,
    ) -> Result<(), EnsembleError>
    where
        L: LogJoint<T>,
    {
        check_batch(&batch)?;
        let expected = self.log_joint.layout().member_size();
        if expected != params.layout().member_size() {
            return Err(EnsembleError::LayoutMismatch {
                state: params.layout().member_size(),
                log_joint: expected,
            });
        }
        let weights = Weights {
            loglik: T::from_f64(-self.scale),
            logprior: T::from_f64(-self.prior_weight),
        };
        self.log_joint.evaluate(
            params.members(),
            params.values(),
            batch,
            weights,
            LogJointOutput {
                loglik: out.loglik,
                logprior: out.logprior,
                grad: out.grad,
            },
        )?;
        for ((l, &ll), &lp) in out.losses.iter_mut().zip(&*out.loglik).zip(&*out.logprior) {
            *l = member_loss(weights, self.prior_weight, ll, lp);
        }
        Ok(())
    }
}

/// `L_e = −scale·ℓ_e − prior_weight·π_e` from the log-joint's weights (`π_e` is not read when
/// `prior_weight = 0`, so a model without a prior may leave it at anything).
#[inline]
pub(crate) fn member_loss<T: Element>(weights: Weights<T>, prior_weight: f64, ll: T, lp: T) -> T {
    let mut l = weights.loglik * ll;
    if prior_weight != 0.0 {
        l += weights.logprior * lp;
    }
    l
}
