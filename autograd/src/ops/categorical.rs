//! Fused log-likelihoods of class labels: the categorical `Σᵢ log softmax(zᵢ)[yᵢ]` over logits
//! `[N, K]`, and the Bernoulli `Σᵢ log σ(±zᵢ)` over one logit per row — each a per-member
//! scalar, stable for logits of any size, with the gradient in the logits.

use flock_kernels::Element;
use flock_kernels::elementwise::{exp_in_place, softplus};

use super::{Backward, Op};
use crate::tape::Node;
use crate::{AutogradError, Graph, Var};

/// Which fused class log-likelihood a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClassLikelihood {
    /// `log softmax(z)[y]` per row of `[N, K]` logits.
    Categorical,
    /// `y·z − softplus(z)` per logit (`log σ(z)` for `y = 1`, `log σ(−z)` for `y = 0`).
    Bernoulli,
}

/// Checks that every label (stored as a number) is a whole number in `0..classes`.
fn check_labels<T: Element>(labels: &[T], classes: usize) -> Result<(), AutogradError> {
    for (row, &y) in labels.iter().enumerate() {
        let v = y.to_f64();
        if !(v >= 0.0 && v < classes as f64 && v.fract() == 0.0) {
            return Err(AutogradError::InvalidLabel {
                row,
                value: v,
                classes,
            });
        }
    }
    Ok(())
}

impl<T: Element> Graph<'_, T> {
    /// `Σᵢ log softmax(logitsᵢ)[labelᵢ]`: the categorical log-likelihood (minus the
    /// cross-entropy) of integer class labels under `logits` `[N, K]` — a per-member scalar.
    /// `labels` is `[N]` (class indices `0..K` stored as numbers; data, not differentiated).
    ///
    /// Each row's maximum is subtracted before the exponentials (`log Σⱼ e^{zⱼ} = m + log Σⱼ
    /// e^{zⱼ − m}`), so logits of any size are exact where a naive softmax overflows. The
    /// softmax is kept for the backward: `∂/∂zᵢⱼ = 1[j = yᵢ] − softmax(zᵢ)ⱼ`.
    ///
    /// ```
    /// use flock_autograd::{ParamLayout, Parameters, Tape};
    /// let params = Parameters::<f64>::zeros(ParamLayout::new(), 1);
    /// let mut tape = Tape::new();
    /// let mut g = tape.graph(&params);
    /// // Two rows of three classes; the second row's logits would overflow a naive softmax.
    /// let z = g.input(&[1.0, 2.0, 3.0, 1000.0, 0.0, 0.0], [2, 3])?;
    /// let y = g.input(&[2.0, 0.0], [2])?;
    /// let ll = g.categorical_log_likelihood(z, y)?;
    /// let row0 = 3.0 - (1f64.exp() + 2f64.exp() + 3f64.exp()).ln();
    /// assert!((g.values(ll, 0)[0] - row0).abs() < 1e-12);
    /// let bad = g.input(&[2.0, 3.0], [2])?;
    /// assert!(g.categorical_log_likelihood(z, bad).is_err()); // class 3 of 3
    /// # Ok::<(), flock_autograd::AutogradError>(())
    /// ```
    ///
    /// # Errors
    /// [`AutogradError::InvalidShape`] unless `logits` is `[N, K]` (`K ≥ 1`) and `labels` has
    /// `N` values; [`AutogradError::InvalidLabel`] for a label that is not a class index.
    pub fn categorical_log_likelihood(
        &mut self,
        logits: Var,
        labels: Var,
    ) -> Result<Var, AutogradError> {
        self.class_log_likelihood(logits, labels, ClassLikelihood::Categorical)
    }

    /// `Σᵢ [yᵢ·zᵢ − softplus(zᵢ)] = Σᵢ log σ(±zᵢ)`: the Bernoulli log-likelihood of labels
    /// `yᵢ ∈ {0, 1}` under one logit per row (`logits` `[N]` or `[N, 1]`, `labels` `[N]`) — a
    /// per-member scalar, with `∂/∂zᵢ = yᵢ − σ(zᵢ)`. Two classes' logistic regression head.
    ///
    /// # Errors
    /// As [`Graph::categorical_log_likelihood`], with two classes.
    pub fn bernoulli_log_likelihood(
        &mut self,
        logits: Var,
        labels: Var,
    ) -> Result<Var, AutogradError> {
        self.class_log_likelihood(logits, labels, ClassLikelihood::Bernoulli)
    }

    fn class_log_likelihood(
        &mut self,
        logits: Var,
        labels: Var,
        kind: ClassLikelihood,
    ) -> Result<Var, AutogradError> {
        let (zn, yn) = (self.node(logits).clone(), self.node(labels).clone());
        let dims = zn.shape.dims();
        let (op_name, rows, classes) = match (kind, dims) {
            (ClassLikelihood::Categorical, &[n, k]) if k >= 1 => {
                ("categorical_log_likelihood", n, k)
            }
            (ClassLikelihood::Bernoulli, &[n]) | (ClassLikelihood::Bernoulli, &[n, 1]) => {
                ("bernoulli_log_likelihood", n, 1)
            }
            (ClassLikelihood::Categorical, _) => {
                return Err(AutogradError::InvalidShape {
                    op: "categorical_log_likelihood",
                    shape: zn.shape,
                    expected: "logits [N, K] with K ≥ 1",
                });
            }
            (ClassLikelihood::Bernoulli, _) => {
                return Err(AutogradError::InvalidShape {
                    op: "bernoulli_log_likelihood",
                    shape: zn.shape,
                    expected: "one logit per row, [N] or [N, 1]",
                });
            }
        };
        if yn.shape.elems() != rows {
            return Err(AutogradError::ShapeMismatch {
                op: op_name,
                lhs: zn.shape,
                rhs: yn.shape,
            });
        }
        let label_classes = if kind == ClassLikelihood::Bernoulli {
            2
        } else {
            classes
        };
        let shared = zn.slot.shared() && yn.slot.shared();
        let blocks = if shared { 1 } else { self.members };
        for e in 0..if yn.slot.shared() { 1 } else { blocks } {
            check_labels(self.values(labels, e), label_classes)?;
        }
        // The softmax (Bernoulli: σ(z)), kept for the backward.
        let (probs, probs_offset) = self.push(Op::Leaf, zn.shape, shared, false);
        let (v, offset) = self.push(
            Op::ClassLogLikelihood {
                logits,
                labels,
                probs,
                kind,
            },
            crate::Shape::SCALAR,
            shared,
            zn.requires_grad,
        );
        let n = rows * classes;
        let (inputs, out) = self.split_output(probs_offset);
        let (probs, totals) = out.split_at_mut(offset - probs_offset);
        for e in 0..blocks {
            let z = inputs.member(zn.slot, e);
            let y = inputs.member(yn.slot, e);
            let p = &mut probs[e * n..(e + 1) * n];
            totals[e] = match kind {
                ClassLikelihood::Categorical => categorical_forward(z, y, p, classes),
                ClassLikelihood::Bernoulli => bernoulli_forward(z, y, p),
            };
        }
        Ok(v)
    }
}

/// Fills `p` with each row's softmax and returns `Σᵢ log softmax(zᵢ)[yᵢ]` (each row's
/// log-sum-exp and the total in f64).
fn categorical_forward<T: Element>(z: &[T], y: &[T], p: &mut [T], classes: usize) -> T {
    let mut total = 0.0;
    for ((pr, zr), &label) in p
        .chunks_exact_mut(classes)
        .zip(z.chunks_exact(classes))
        .zip(y)
    {
        let m = zr
            .iter()
            .copied()
            .fold(-T::INFINITY, |m, v| if v > m { v } else { m });
        for (q, &v) in pr.iter_mut().zip(zr) {
            *q = v - m;
        }
        let shifted = pr[label.to_f64() as usize].to_f64();
        exp_in_place(pr);
        let sum: f64 = pr.iter().map(|q| q.to_f64()).sum();
        let inv = T::from_f64(1.0 / sum);
        for q in pr.iter_mut() {
            *q *= inv;
        }
        total += shifted - sum.ln();
    }
    T::from_f64(total)
}

/// Fills `p` with `σ(zᵢ)` and returns `Σᵢ yᵢ·zᵢ − softplus(zᵢ)`.
fn bernoulli_forward<T: Element>(z: &[T], y: &[T], p: &mut [T]) -> T {
    softplus(z, p);
    let mut total = 0.0;
    for ((q, &zi), &yi) in p.iter_mut().zip(z).zip(y) {
        // softplus(z) = ln(1 + eᶻ); σ(z) = e^{z − softplus(z)}.
        let sp = q.to_f64();
        total += yi.to_f64() * zi.to_f64() - sp;
        *q = T::from_f64((zi.to_f64() - sp).exp());
    }
    T::from_f64(total)
}

/// `∂/∂z = dy·(onehot(y) − softmax(z))` (Bernoulli: `dy·(y − σ(z))`) added to the logits'
/// gradient.
pub(crate) fn backward<T: Element>(
    ctx: &mut Backward<'_, T>,
    node: &Node<T>,
    logits: Var,
    labels: Var,
    probs: Var,
    kind: ClassLikelihood,
) {
    let zn = ctx.node(logits);
    if !zn.requires_grad {
        return;
    }
    let (zslot, yslot, pslot) = (zn.slot, ctx.node(labels).slot, ctx.node(probs).slot);
    let classes = match kind {
        ClassLikelihood::Categorical => *zn.shape.dims().last().unwrap_or(&1),
        ClassLikelihood::Bernoulli => 1,
    };
    let mut parts = ctx.parts(node);
    for e in 0..parts.members {
        let dy = parts.dy[e];
        let y = parts.values.member(yslot, e);
        let p = parts.values.member(pslot, e);
        let g = parts.targets.member(zslot, e);
        match kind {
            ClassLikelihood::Categorical => {
                for ((gr, pr), &label) in g
                    .chunks_exact_mut(classes)
                    .zip(p.chunks_exact(classes))
                    .zip(y)
                {
                    for (gj, &pj) in gr.iter_mut().zip(pr) {
                        *gj -= dy * pj;
                    }
                    gr[label.to_f64() as usize] += dy;
                }
            }
            ClassLikelihood::Bernoulli => {
                for ((gi, &pi), &yi) in g.iter_mut().zip(p).zip(y) {
                    *gi += dy * (yi - pi);
                }
            }
        }
    }
}
