//! Elementwise functions of one tensor: `y = f(x)`, `dx += dy ⊙ f'(x)`.

use flock_kernels::elementwise::{self, Store, activation_backward};
use flock_kernels::{Activation, Element};

use super::{Backward, Op};
use crate::tape::Node;
use crate::{Graph, Var};

/// Which elementwise function a [`Graph::unary`] node applies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryKind<T> {
    /// `−x`.
    Neg,
    /// `x²`.
    Square,
    /// `√x`.
    Sqrt,
    /// `eˣ`.
    Exp,
    /// `ln x`.
    Log,
    /// `ln(1 + x)`.
    Log1p,
    /// `tanh x`.
    Tanh,
    /// `σ(x) = 1 / (1 + e⁻ˣ)`.
    Sigmoid,
    /// `ln(1 + eˣ)`.
    Softplus,
    /// `max(x, 0)` (derivative 0 at 0, as in JAX).
    Relu,
    /// `c·x` for a constant `c`.
    Scale(T),
    /// `x + c` for a constant `c`.
    Offset(T),
}

impl<T: Element> UnaryKind<T> {
    fn forward(self, x: &[T], y: &mut [T]) {
        match self {
            UnaryKind::Neg => y.iter_mut().zip(x).for_each(|(y, &x)| *y = -x),
            UnaryKind::Square => y.iter_mut().zip(x).for_each(|(y, &x)| *y = x * x),
            UnaryKind::Sqrt => y.iter_mut().zip(x).for_each(|(y, &x)| *y = x.sqrt()),
            UnaryKind::Exp => elementwise::exp(x, y),
            UnaryKind::Log => elementwise::ln(x, y),
            UnaryKind::Log1p => elementwise::ln_1p(x, y),
            UnaryKind::Tanh => elementwise::tanh(x, y),
            UnaryKind::Sigmoid => elementwise::sigmoid(x, y),
            UnaryKind::Softplus => elementwise::softplus(x, y),
            UnaryKind::Relu => elementwise::relu(x, y),
            UnaryKind::Scale(c) => y.iter_mut().zip(x).for_each(|(y, &x)| *y = c * x),
            UnaryKind::Offset(c) => y.iter_mut().zip(x).for_each(|(y, &x)| *y = x + c),
        }
    }

    /// `dx += dy ⊙ f'(x)`, with `y = f(x)` at hand; `scratch` holds `x.len()` values.
    fn backward(self, x: &[T], y: &[T], dy: &[T], dx: &mut [T], scratch: &mut [T]) {
        match self {
            UnaryKind::Neg => acc(dx, dy, dy, |dy, _| -dy),
            UnaryKind::Square => acc(dx, dy, x, |dy, x| (x + x) * dy),
            UnaryKind::Sqrt => acc(dx, dy, y, |dy, y| dy * T::from_f64(0.5) / y),
            UnaryKind::Exp => acc(dx, dy, y, |dy, y| dy * y),
            UnaryKind::Log => acc(dx, dy, x, |dy, x| dy / x),
            UnaryKind::Log1p => acc(dx, dy, x, |dy, x| dy / (T::ONE + x)),
            UnaryKind::Tanh => activation_backward(Activation::Tanh, y, dy, dx, Store::Accumulate),
            UnaryKind::Sigmoid => {
                activation_backward(Activation::Sigmoid, y, dy, dx, Store::Accumulate)
            }
            UnaryKind::Relu => activation_backward(Activation::Relu, y, dy, dx, Store::Accumulate),
            UnaryKind::Softplus => {
                // softplus'(x) = σ(x)
                elementwise::sigmoid(x, scratch);
                acc(dx, dy, scratch, |dy, s| dy * s);
            }
            UnaryKind::Scale(c) => acc(dx, dy, dy, |dy, _| c * dy),
            UnaryKind::Offset(_) => acc(dx, dy, dy, |dy, _| dy),
        }
    }
}

/// `dx[i] += f(dy[i], v[i])`, as one loop over zipped slices (which the compiler vectorises;
/// indexing each slice kept the divisions of `Log` and `Sqrt` scalar).
#[inline(always)]
fn acc<T: Element>(dx: &mut [T], dy: &[T], v: &[T], f: impl Fn(T, T) -> T) {
    for ((d, &dy), &v) in dx.iter_mut().zip(dy).zip(v) {
        *d += f(dy, v);
    }
}

impl<T: Element> Graph<'_, T> {
    /// `f(x)` elementwise, same shape as `x`.
    pub fn unary(&mut self, x: Var, kind: UnaryKind<T>) -> Var {
        let xn = self.node(x).clone();
        let shared = xn.slot.shared();
        let (v, offset) = self.push(
            Op::Unary { input: x, kind },
            xn.shape,
            shared,
            xn.requires_grad,
        );
        let elems = xn.shape.elems();
        let blocks = if shared { 1 } else { self.members };
        let (inputs, out) = self.split_output(offset);
        for e in 0..blocks {
            kind.forward(
                inputs.member(xn.slot, e),
                &mut out[e * elems..(e + 1) * elems],
            );
        }
        v
    }

    /// `−x`.
    pub fn neg(&mut self, x: Var) -> Var {
        self.unary(x, UnaryKind::Neg)
    }
    /// `x²`.
    pub fn square(&mut self, x: Var) -> Var {
        self.unary(x, UnaryKind::Square)
    }
    /// `√x`.
    pub fn sqrt(&mut self, x: Var) -> Var {
        self.unary(x, UnaryKind::Sqrt)
    }
    /// `eˣ`.
    pub fn exp(&mut self, x: Var) -> Var {
        self.unary(x, UnaryKind::Exp)
    }
    /// `ln x`.
    pub fn log(&mut self, x: Var) -> Var {
        self.unary(x, UnaryKind::Log)
    }
    /// `ln(1 + x)`.
    pub fn log1p(&mut self, x: Var) -> Var {
        self.unary(x, UnaryKind::Log1p)
    }
    /// `tanh x`.
    pub fn tanh(&mut self, x: Var) -> Var {
        self.unary(x, UnaryKind::Tanh)
    }
    /// `σ(x)`.
    pub fn sigmoid(&mut self, x: Var) -> Var {
        self.unary(x, UnaryKind::Sigmoid)
    }
    /// `ln(1 + eˣ)`. When `x` needs a gradient, the forward also saves `σ(x)` — the derivative —
    /// from the same `e^{−|x|}` (`elementwise::softplus_sigmoid`), so the backward is one
    /// multiplication instead of a second exponential.
    pub fn softplus(&mut self, x: Var) -> Var {
        let xn = self.node(x).clone();
        if !xn.requires_grad {
            return self.unary(x, UnaryKind::Softplus);
        }
        let shared = xn.slot.shared();
        let (sigmoid, sigmoid_offset) = self.push(Op::Leaf, xn.shape, shared, false);
        let (v, offset) = self.push(Op::Softplus { input: x, sigmoid }, xn.shape, shared, true);
        let elems = xn.shape.elems();
        let blocks = if shared { 1 } else { self.members };
        let (inputs, out) = self.split_output(sigmoid_offset);
        let (sigmoids, values) = out.split_at_mut(offset - sigmoid_offset);
        for e in 0..blocks {
            let r = e * elems..(e + 1) * elems;
            elementwise::softplus_sigmoid(
                inputs.member(xn.slot, e),
                &mut values[r.clone()],
                &mut sigmoids[r],
            );
        }
        v
    }
    /// `max(x, 0)`.
    pub fn relu(&mut self, x: Var) -> Var {
        self.unary(x, UnaryKind::Relu)
    }
    /// `c·x` for a constant `c`.
    pub fn scale(&mut self, x: Var, c: f64) -> Var {
        self.unary(x, UnaryKind::Scale(T::from_f64(c)))
    }
    /// `x + c` for a constant `c`.
    pub fn offset(&mut self, x: Var, c: f64) -> Var {
        self.unary(x, UnaryKind::Offset(T::from_f64(c)))
    }
    /// The activation `a` applied elementwise (identity returns `x` itself).
    pub fn activation(&mut self, x: Var, a: Activation) -> Var {
        match a {
            Activation::Identity => x,
            Activation::Tanh => self.tanh(x),
            Activation::Sigmoid => self.sigmoid(x),
            Activation::Softplus => self.softplus(x),
            Activation::Relu => self.relu(x),
        }
    }
}

/// `dx += dy ⊙ σ(x)` with `σ(x)` saved by the forward ([`Graph::softplus`]).
pub(crate) fn softplus_backward<T: Element>(
    ctx: &mut Backward<'_, T>,
    node: &Node<T>,
    input: Var,
    sigmoid: Var,
) {
    let xn = ctx.node(input);
    if !xn.requires_grad {
        return;
    }
    let overwrite = ctx.claim_overwrite(input);
    let sn = ctx.node(sigmoid);
    let elems = node.slot.elems;
    let mut parts = ctx.parts(node);
    for e in 0..parts.members {
        let s = parts.values.member(sn.slot, e);
        let dy = &parts.dy[e * elems..(e + 1) * elems];
        let dx = parts.targets.member(xn.slot, e);
        if overwrite {
            dx.iter_mut()
                .zip(dy.iter().zip(s))
                .for_each(|(d, (&dy, &s))| *d = dy * s);
        } else {
            acc(dx, dy, s, |dy, s| dy * s);
        }
    }
}

pub(crate) fn backward<T: Element>(
    ctx: &mut Backward<'_, T>,
    node: &Node<T>,
    input: Var,
    kind: UnaryKind<T>,
) {
    let xn = ctx.node(input);
    if !xn.requires_grad {
        return;
    }
    let elems = node.slot.elems;
    let mut parts = ctx.parts(node);
    parts.scratch.resize_for_overwrite(elems, T::ZERO);
    for e in 0..parts.members {
        let x = parts.values.member(xn.slot, e);
        let y = parts.values.member(node.slot, e);
        let dy = &parts.dy[e * elems..(e + 1) * elems];
        let dx = parts.targets.member(xn.slot, e);
        kind.backward(x, y, dy, dx, &mut parts.scratch[..elems]);
    }
}
