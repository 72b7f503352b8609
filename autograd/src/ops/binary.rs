//! Arithmetic of two tensors with suffix broadcasting: `[B, K] ∘ [K]`, `[B] ∘ []`, and data shared
//! by all members against per-member values.

use flock_kernels::Element;

use super::{Backward, Op};
use crate::tape::Node;
use crate::{AutogradError, Graph, Var};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinaryKind {
    Add,
    Sub,
    Mul,
    Div,
}

impl BinaryKind {
    fn name(self) -> &'static str {
        match self {
            BinaryKind::Add => "add",
            BinaryKind::Sub => "sub",
            BinaryKind::Mul => "mul",
            BinaryKind::Div => "div",
        }
    }

    #[inline(always)]
    fn apply<T: Element>(self, a: T, b: T) -> T {
        match self {
            BinaryKind::Add => a + b,
            BinaryKind::Sub => a - b,
            BinaryKind::Mul => a * b,
            BinaryKind::Div => a / b,
        }
    }
}

/// Calls `f(i, j)` for `i in 0..n` with `j = i mod small` (`small` divides `n`), without a
/// division in the loop.
#[inline(always)]
pub(crate) fn broadcast_loop(n: usize, small: usize, mut f: impl FnMut(usize, usize)) {
    if small == n {
        (0..n).for_each(|i| f(i, i));
    } else if small == 1 {
        (0..n).for_each(|i| f(i, 0));
    } else if small > 0 {
        for base in (0..n).step_by(small) {
            (0..small).for_each(|j| f(base + j, j));
        }
    }
}

impl<T: Element> Graph<'_, T> {
    fn binary(&mut self, a: Var, b: Var, kind: BinaryKind) -> Result<Var, AutogradError> {
        let (an, bn) = (self.node(a).clone(), self.node(b).clone());
        let shape = an
            .shape
            .broadcast(&bn.shape)
            .ok_or(AutogradError::ShapeMismatch {
                op: kind.name(),
                lhs: an.shape,
                rhs: bn.shape,
            })?;
        let shared = an.slot.shared() && bn.slot.shared();
        let (v, offset) = self.push(
            Op::Binary { a, b, kind },
            shape,
            shared,
            an.requires_grad || bn.requires_grad,
        );
        let (n, la, lb) = (shape.elems(), an.slot.elems, bn.slot.elems);
        let blocks = if shared { 1 } else { self.members };
        let (inputs, out) = self.split_output(offset);
        for e in 0..blocks {
            let (xa, xb) = (inputs.member(an.slot, e), inputs.member(bn.slot, e));
            let y = &mut out[e * n..(e + 1) * n];
            if la == lb {
                same_shape_forward(kind, xa, xb, y);
            } else if la == n {
                broadcast_loop(n, lb, |i, j| y[i] = kind.apply(xa[i], xb[j]));
            } else {
                broadcast_loop(n, la, |i, j| y[i] = kind.apply(xa[j], xb[i]));
            }
        }
        Ok(v)
    }

    /// `a + b` (one shape a suffix of the other).
    ///
    /// # Errors
    /// [`AutogradError::ShapeMismatch`] when neither shape is a suffix of the other.
    pub fn add(&mut self, a: Var, b: Var) -> Result<Var, AutogradError> {
        self.binary(a, b, BinaryKind::Add)
    }
    /// `a − b` (one shape a suffix of the other).
    ///
    /// # Errors
    /// [`AutogradError::ShapeMismatch`] when neither shape is a suffix of the other.
    pub fn sub(&mut self, a: Var, b: Var) -> Result<Var, AutogradError> {
        self.binary(a, b, BinaryKind::Sub)
    }
    /// `a ⊙ b` (one shape a suffix of the other).
    ///
    /// # Errors
    /// [`AutogradError::ShapeMismatch`] when neither shape is a suffix of the other.
    pub fn mul(&mut self, a: Var, b: Var) -> Result<Var, AutogradError> {
        self.binary(a, b, BinaryKind::Mul)
    }
    /// `a / b` (one shape a suffix of the other).
    ///
    /// # Errors
    /// [`AutogradError::ShapeMismatch`] when neither shape is a suffix of the other.
    pub fn div(&mut self, a: Var, b: Var) -> Result<Var, AutogradError> {
        self.binary(a, b, BinaryKind::Div)
    }

    /// `a ⊙ b + c` for three tensors of one shape, as one node: the same values as
    /// `add(mul(a, b), c)` (two roundings, no fused multiply-add) without storing `a ⊙ b` or
    /// passing its gradient through — a reparameterised draw `loc + scale ⊙ ε`.
    ///
    /// # Errors
    /// [`AutogradError::ShapeMismatch`] when the shapes differ.
    pub fn mul_add(&mut self, a: Var, b: Var, c: Var) -> Result<Var, AutogradError> {
        let (an, bn, cn) = (
            self.node(a).clone(),
            self.node(b).clone(),
            self.node(c).clone(),
        );
        for (lhs, rhs) in [(an.shape, bn.shape), (an.shape, cn.shape)] {
            if lhs != rhs {
                return Err(AutogradError::ShapeMismatch {
                    op: "mul_add",
                    lhs,
                    rhs,
                });
            }
        }
        let shared = an.slot.shared() && bn.slot.shared() && cn.slot.shared();
        let (v, offset) = self.push(
            Op::MulAdd { a, b, c },
            an.shape,
            shared,
            an.requires_grad || bn.requires_grad || cn.requires_grad,
        );
        let n = an.shape.elems();
        let blocks = if shared { 1 } else { self.members };
        let (inputs, out) = self.split_output(offset);
        for e in 0..blocks {
            let (xa, xb, xc) = (
                inputs.member(an.slot, e),
                inputs.member(bn.slot, e),
                inputs.member(cn.slot, e),
            );
            for (y, ((&a, &b), &c)) in out[e * n..(e + 1) * n]
                .iter_mut()
                .zip(xa.iter().zip(xb).zip(xc))
            {
                *y = a * b + c;
            }
        }
        Ok(v)
    }
}

/// `da += dy ⊙ b`, `db += dy ⊙ a`, `dc += dy` for [`Graph::mul_add`].
pub(crate) fn mul_add_backward<T: Element>(
    ctx: &mut Backward<'_, T>,
    node: &Node<T>,
    a: Var,
    b: Var,
    c: Var,
) {
    let (an, bn, cn) = (ctx.node(a), ctx.node(b), ctx.node(c));
    let overwrite_c = ctx.claim_overwrite(c);
    let n = node.slot.elems;
    let mut parts = ctx.parts(node);
    for e in 0..parts.members {
        let dy = &parts.dy[e * n..(e + 1) * n];
        if an.requires_grad {
            let xb = parts.values.member(bn.slot, e);
            same_shape_backward_a(BinaryKind::Mul, dy, xb, parts.targets.member(an.slot, e));
        }
        if bn.requires_grad {
            let xa = parts.values.member(an.slot, e);
            same_shape_backward_a(BinaryKind::Mul, dy, xa, parts.targets.member(bn.slot, e));
        }
        if overwrite_c {
            parts.targets.member(cn.slot, e).copy_from_slice(dy);
        } else if cn.requires_grad {
            same_shape_backward_a(BinaryKind::Add, dy, dy, parts.targets.member(cn.slot, e));
        }
    }
}

pub(crate) fn backward<T: Element>(
    ctx: &mut Backward<'_, T>,
    node: &Node<T>,
    a: Var,
    b: Var,
    kind: BinaryKind,
) {
    let (an, bn) = (ctx.node(a), ctx.node(b));
    let n = node.slot.elems;
    let (la, lb) = (an.slot.elems, bn.slot.elems);
    let mut parts = ctx.parts(node);
    for e in 0..parts.members {
        let (xa, xb) = (
            parts.values.member(an.slot, e),
            parts.values.member(bn.slot, e),
        );
        let y = parts.values.member(node.slot, e);
        let dy = &parts.dy[e * n..(e + 1) * n];
        // ∂y/∂a and ∂y/∂b at output index i, operand indices ia, ib.
        let da = |i: usize, ib: usize| match kind {
            BinaryKind::Add | BinaryKind::Sub => dy[i],
            BinaryKind::Mul => dy[i] * xb[ib],
            BinaryKind::Div => dy[i] / xb[ib],
        };
        let db = |i: usize, ia: usize, ib: usize| match kind {
            BinaryKind::Add => dy[i],
            BinaryKind::Sub => -dy[i],
            BinaryKind::Mul => dy[i] * xa[ia],
            BinaryKind::Div => -dy[i] * y[i] / xb[ib],
        };
        if la == n && lb == n {
            // The common case, one vectorisable loop per operand and kind.
            if an.requires_grad {
                same_shape_backward_a(kind, dy, xb, parts.targets.member(an.slot, e));
            }
            if bn.requires_grad {
                same_shape_backward_b(kind, dy, xa, xb, y, parts.targets.member(bn.slot, e));
            }
            continue;
        }
        if an.requires_grad {
            let ga = parts.targets.member(an.slot, e);
            if la == n {
                broadcast_loop(n, lb, |i, j| ga[i] += da(i, j));
            } else {
                broadcast_loop(n, la, |i, j| ga[j] += da(i, i));
            }
        }
        if bn.requires_grad {
            let gb = parts.targets.member(bn.slot, e);
            if lb == n {
                broadcast_loop(n, la, |i, j| gb[i] += db(i, j, i));
            } else {
                broadcast_loop(n, lb, |i, j| gb[j] += db(i, i, j));
            }
        }
    }
}

/// `y = a ∘ b` for operands of the output's shape.
#[inline(always)]
fn same_shape_forward<T: Element>(kind: BinaryKind, a: &[T], b: &[T], y: &mut [T]) {
    let pairs = y.iter_mut().zip(a.iter().zip(b));
    match kind {
        BinaryKind::Add => pairs.for_each(|(y, (&a, &b))| *y = a + b),
        BinaryKind::Sub => pairs.for_each(|(y, (&a, &b))| *y = a - b),
        BinaryKind::Mul => pairs.for_each(|(y, (&a, &b))| *y = a * b),
        BinaryKind::Div => pairs.for_each(|(y, (&a, &b))| *y = a / b),
    }
}

/// `ga += ∂(a ∘ b)/∂a · dy` for operands of the output's shape.
#[inline(always)]
fn same_shape_backward_a<T: Element>(kind: BinaryKind, dy: &[T], b: &[T], ga: &mut [T]) {
    match kind {
        BinaryKind::Add | BinaryKind::Sub => ga.iter_mut().zip(dy).for_each(|(g, &d)| *g += d),
        BinaryKind::Mul => ga
            .iter_mut()
            .zip(dy.iter().zip(b))
            .for_each(|(g, (&d, &b))| *g += d * b),
        BinaryKind::Div => ga
            .iter_mut()
            .zip(dy.iter().zip(b))
            .for_each(|(g, (&d, &b))| *g += d / b),
    }
}

/// `gb += ∂(a ∘ b)/∂b · dy` for operands of the output's shape (`y = a ∘ b`).
#[inline(always)]
fn same_shape_backward_b<T: Element>(
    kind: BinaryKind,
    dy: &[T],
    a: &[T],
    b: &[T],
    y: &[T],
    gb: &mut [T],
) {
    match kind {
        BinaryKind::Add => gb.iter_mut().zip(dy).for_each(|(g, &d)| *g += d),
        BinaryKind::Sub => gb.iter_mut().zip(dy).for_each(|(g, &d)| *g -= d),
        BinaryKind::Mul => gb
            .iter_mut()
            .zip(dy.iter().zip(a))
            .for_each(|(g, (&d, &a))| *g += d * a),
        BinaryKind::Div => gb
            .iter_mut()
            .zip(dy.iter().zip(b.iter().zip(y)))
            .for_each(|(g, (&d, (&b, &y)))| *g += -d * y / b),
    }
}
