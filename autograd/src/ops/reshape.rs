//! Views with another shape, and picking one column of the last axis.

use flock_kernels::Element;

use super::{Backward, Op};
use crate::tape::Node;
use crate::{AutogradError, Graph, Shape, Var};

impl<T: Element> Graph<'_, T> {
    /// `x` viewed with another shape of the same number of elements (no copy; gradients flow
    /// straight through).
    ///
    /// # Errors
    /// [`AutogradError::ShapeMismatch`] when the element counts differ.
    pub fn reshape(&mut self, x: Var, shape: impl Into<Shape>) -> Result<Var, AutogradError> {
        let shape = shape.into();
        let xn = self.node(x).clone();
        if xn.shape.elems() != shape.elems() {
            return Err(AutogradError::ShapeMismatch {
                op: "reshape",
                lhs: xn.shape,
                rhs: shape,
            });
        }
        // An alias of an alias names the storage's owner directly.
        let input = match xn.op {
            Op::Alias { input } => input,
            _ => x,
        };
        Ok(self.push_slot(Op::Alias { input }, shape, xn.slot, xn.requires_grad))
    }

    /// Drops a last axis of size 1: `[B, 1] → [B]`.
    ///
    /// # Errors
    /// [`AutogradError::InvalidShape`] when the last axis is not of size 1.
    pub fn squeeze_last(&mut self, x: Var) -> Result<Var, AutogradError> {
        let shape = self.shape(x);
        if shape.rank() == 0 || shape.last() != 1 {
            return Err(AutogradError::InvalidShape {
                op: "squeeze_last",
                shape,
                expected: "a last axis of size 1",
            });
        }
        self.reshape(x, shape.without_last())
    }

    /// Appends an axis of size 1: `[B] → [B, 1]`.
    ///
    /// # Errors
    /// [`AutogradError::InvalidShape`] when `x` already has the maximum rank.
    pub fn unsqueeze_last(&mut self, x: Var) -> Result<Var, AutogradError> {
        let shape = self.shape(x);
        if shape.rank() == crate::shape::MAX_RANK {
            return Err(AutogradError::InvalidShape {
                op: "unsqueeze_last",
                shape,
                expected: "fewer than the maximum number of axes",
            });
        }
        let mut dims = [1usize; crate::shape::MAX_RANK];
        dims[..shape.rank()].copy_from_slice(shape.dims());
        self.reshape(x, Shape::new(&dims[..shape.rank() + 1]))
    }

    /// Column `column` of the last axis: `[…, K] → […]` (e.g. the mean head of a two-output MLP).
    ///
    /// # Errors
    /// [`AutogradError::InvalidShape`] when `x` is a scalar or `column ≥ K`.
    pub fn select_column(&mut self, x: Var, column: usize) -> Result<Var, AutogradError> {
        let xn = self.node(x).clone();
        let k = xn.shape.last();
        if xn.shape.rank() == 0 || column >= k {
            return Err(AutogradError::InvalidShape {
                op: "select_column",
                shape: xn.shape,
                expected: "a last axis longer than the column index",
            });
        }
        let shape = xn.shape.without_last();
        let shared = xn.slot.shared();
        let (v, offset) = self.push(
            Op::SelectColumn { input: x, column },
            shape,
            shared,
            xn.requires_grad,
        );
        let rows = shape.elems();
        let blocks = if shared { 1 } else { self.members };
        let (inputs, out) = self.split_output(offset);
        for e in 0..blocks {
            let xe = inputs.member(xn.slot, e);
            for (r, y) in out[e * rows..(e + 1) * rows].iter_mut().enumerate() {
                *y = xe[r * k + column];
            }
        }
        Ok(v)
    }
}

pub(crate) fn select_column_backward<T: Element>(
    ctx: &mut Backward<'_, T>,
    node: &Node<T>,
    input: Var,
    column: usize,
) {
    let xn = ctx.node(input);
    if !xn.requires_grad {
        return;
    }
    let k = xn.shape.last();
    let rows = node.slot.elems;
    let mut parts = ctx.parts(node);
    for e in 0..parts.members {
        let dy = &parts.dy[e * rows..(e + 1) * rows];
        let dx = parts.targets.member(xn.slot, e);
        for (r, &d) in dy.iter().enumerate() {
            dx[r * k + column] += d;
        }
    }
}
