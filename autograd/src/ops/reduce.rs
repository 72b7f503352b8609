//! Reductions over every non-member axis: `[E, …] → [E]`.

use flock_kernels::Element;
use flock_kernels::elementwise::{axpy, dot_per_member, sum_ln_per_member, sum_per_member};

use super::{Backward, Op};
use crate::tape::Node;
use crate::{Graph, Shape, Var};

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum ReduceKind<T> {
    /// `factor · Σ x` (a sum, or a mean with `factor = 1/n`).
    Sum { factor: T },
    /// `Σ x²`.
    SumSquares,
    /// `Σ ln x`.
    SumLog,
}

impl<T: Element> Graph<'_, T> {
    fn reduce(&mut self, x: Var, kind: ReduceKind<T>) -> Var {
        let xn = self.node(x).clone();
        let shared = xn.slot.shared();
        let (v, offset) = self.push(
            Op::Reduce { input: x, kind },
            Shape::SCALAR,
            shared,
            xn.requires_grad,
        );
        let blocks = if shared { 1 } else { self.members };
        let (inputs, out) = self.split_output(offset);
        for (e, y) in out[..blocks].iter_mut().enumerate() {
            let xe = inputs.member(xn.slot, e);
            let mut total = [T::ZERO];
            match kind {
                ReduceKind::Sum { factor } => {
                    sum_per_member(1, xe, &mut total);
                    total[0] *= factor;
                }
                ReduceKind::SumSquares => dot_per_member(1, xe, xe, &mut total),
                ReduceKind::SumLog => sum_ln_per_member(1, xe, &mut total),
            }
            *y = total[0];
        }
        v
    }

    /// `Σ x` over every non-member axis: a per-member scalar.
    pub fn sum(&mut self, x: Var) -> Var {
        self.reduce(x, ReduceKind::Sum { factor: T::ONE })
    }

    /// The mean over every non-member axis: a per-member scalar.
    pub fn mean(&mut self, x: Var) -> Var {
        let n = self.shape(x).elems();
        let factor = T::ONE / T::from_usize(n);
        self.reduce(x, ReduceKind::Sum { factor })
    }

    /// `Σ x²` over every non-member axis (fused): a per-member scalar.
    pub fn sum_squares(&mut self, x: Var) -> Var {
        self.reduce(x, ReduceKind::SumSquares)
    }

    /// `Σ ln x` over every non-member axis (fused: the logarithms are not stored, and the
    /// gradient `dy/x` goes to `x` in one pass): a per-member scalar. A Gaussian's
    /// log-determinant term from its scales.
    pub fn sum_log(&mut self, x: Var) -> Var {
        self.reduce(x, ReduceKind::SumLog)
    }
}

pub(crate) fn backward<T: Element>(
    ctx: &mut Backward<'_, T>,
    node: &Node<T>,
    input: Var,
    kind: ReduceKind<T>,
) {
    let xn = ctx.node(input);
    if !xn.requires_grad {
        return;
    }
    let overwrite = ctx.claim_overwrite(input);
    let mut parts = ctx.parts(node);
    for e in 0..parts.members {
        let dy = parts.dy[e];
        let x = parts.values.member(xn.slot, e);
        let dx = parts.targets.member(xn.slot, e);
        match (kind, overwrite) {
            (ReduceKind::Sum { factor }, false) => {
                let d = dy * factor;
                dx.iter_mut().for_each(|g| *g += d);
            }
            (ReduceKind::Sum { factor }, true) => dx.fill(dy * factor),
            (ReduceKind::SumSquares, false) => axpy(dy + dy, x, dx),
            (ReduceKind::SumSquares, true) => {
                let d = dy + dy;
                dx.iter_mut().zip(x).for_each(|(g, &x)| *g = d * x);
            }
            (ReduceKind::SumLog, false) => dx.iter_mut().zip(x).for_each(|(g, &x)| *g += dy / x),
            (ReduceKind::SumLog, true) => dx.iter_mut().zip(x).for_each(|(g, &x)| *g = dy / x),
        }
    }
}
