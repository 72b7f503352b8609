//! The fused Normal log-density `Σᵢ log N(vᵢ | μᵢ, sᵢ)`, each of `v`, `μ`, `s` a tensor or a
//! constant, with gradients in all three.

use flock_kernels::Element;

use super::binary::broadcast_loop;
use super::{Backward, Op};
use crate::tape::{Inputs, Node, Slot};
use crate::{AutogradError, Graph, Shape, Var};

/// An operand that is either a node of the graph or a constant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arg<T> {
    /// A node.
    Var(Var),
    /// A constant (broadcast to every element).
    Const(T),
}

impl<T> From<Var> for Arg<T> {
    fn from(v: Var) -> Arg<T> {
        Arg::Var(v)
    }
}

impl From<f64> for Arg<f64> {
    fn from(c: f64) -> Arg<f64> {
        Arg::Const(c)
    }
}

impl From<f32> for Arg<f32> {
    fn from(c: f32) -> Arg<f32> {
        Arg::Const(c)
    }
}

/// How one operand is read at output element `i`.
#[derive(Clone, Copy)]
enum Reader<'b, T> {
    Full(&'b [T]),
    Repeat(&'b [T]),
    Scalar(T),
}

impl<T: Element> Reader<'_, T> {
    #[inline(always)]
    fn at(&self, i: usize) -> T {
        match *self {
            Reader::Full(x) => x[i],
            Reader::Repeat(x) => x[i % x.len()],
            Reader::Scalar(c) => c,
        }
    }
}

fn reader<'b, T: Element>(
    arg: Arg<T>,
    nodes: &[Node<T>],
    inputs: &Inputs<'b, T>,
    n: usize,
    e: usize,
) -> Reader<'b, T> {
    match arg {
        Arg::Const(c) => Reader::Scalar(c),
        Arg::Var(v) => {
            let x = inputs.member(nodes[v.index()].slot, e);
            match x.len() {
                len if len == n => Reader::Full(x),
                1 => Reader::Scalar(x[0]),
                _ => Reader::Repeat(x),
            }
        }
    }
}

fn half_ln_2pi<T: Element>() -> T {
    T::from_f64(0.5 * (2.0 * core::f64::consts::PI).ln())
}

impl<T: Element> Graph<'_, T> {
    fn arg_info(&self, arg: Arg<T>) -> (Shape, Option<Slot>, bool) {
        match arg {
            Arg::Const(_) => (Shape::SCALAR, None, false),
            Arg::Var(v) => {
                let n = self.node(v);
                (n.shape, Some(n.slot), n.requires_grad)
            }
        }
    }

    /// `Σᵢ log N(valueᵢ | locᵢ, scaleᵢ)` over every non-member axis, constants included
    /// (`−½zᵢ² − ln scaleᵢ − ½ln 2π` with `zᵢ = (valueᵢ − locᵢ)/scaleᵢ`): a per-member scalar.
    ///
    /// Each operand is a [`Var`] or a constant (`Arg::Const`); their shapes broadcast by suffix.
    /// Gradients flow to every `Var` operand: the value, the mean and a learned scale.
    ///
    /// # Errors
    /// [`AutogradError::ShapeMismatch`] when the operands' shapes do not broadcast.
    pub fn normal_log_density(
        &mut self,
        value: impl Into<Arg<T>>,
        loc: impl Into<Arg<T>>,
        scale: impl Into<Arg<T>>,
    ) -> Result<Var, AutogradError> {
        let (value, loc, scale) = (value.into(), loc.into(), scale.into());
        let infos = [
            self.arg_info(value),
            self.arg_info(loc),
            self.arg_info(scale),
        ];
        let mut shape = Shape::SCALAR;
        for (s, _, _) in infos {
            shape = shape.broadcast(&s).ok_or(AutogradError::ShapeMismatch {
                op: "normal_log_density",
                lhs: shape,
                rhs: s,
            })?;
        }
        let shared = infos
            .iter()
            .all(|(_, slot, _)| slot.is_none_or(|s| s.shared()));
        let requires_grad = infos.iter().any(|(_, _, g)| *g);
        let (v, offset) = self.push(
            Op::NormalLogDensity { value, loc, scale },
            Shape::SCALAR,
            shared,
            requires_grad,
        );
        let n = shape.elems();
        let blocks = if shared { 1 } else { self.members };
        let tape = &mut *self.tape;
        let (before, out) = tape.arena[..tape.used].split_at_mut(offset);
        let inputs = Inputs {
            arena: before,
            params: self.params,
        };
        let nodes = &tape.nodes;
        let c = half_ln_2pi::<T>();
        for (e, y) in out[..blocks].iter_mut().enumerate() {
            let rv = reader(value, nodes, &inputs, n, e);
            let rm = reader(loc, nodes, &inputs, n, e);
            let rs = reader(scale, nodes, &inputs, n, e);
            let mut total = T::ZERO;
            if let Reader::Scalar(s) = rs {
                // One logarithm for the whole block.
                let inv = T::ONE / s;
                let mut sq = T::ZERO;
                for i in 0..n {
                    let z = (rv.at(i) - rm.at(i)) * inv;
                    sq += z * z;
                }
                total = T::from_f64(-0.5) * sq - T::from_usize(n) * (s.ln() + c);
            } else {
                for i in 0..n {
                    let s = rs.at(i);
                    let z = (rv.at(i) - rm.at(i)) / s;
                    total += T::from_f64(-0.5) * z * z - s.ln() - c;
                }
            }
            *y = total;
        }
        Ok(v)
    }
}

pub(crate) fn backward<T: Element>(
    ctx: &mut Backward<'_, T>,
    node: &Node<T>,
    value: Arg<T>,
    loc: Arg<T>,
    scale: Arg<T>,
) {
    let nodes = ctx.nodes;
    // The broadcast length: the longest operand.
    let n = [value, loc, scale]
        .iter()
        .map(|a| match a {
            Arg::Var(v) => nodes[v.index()].slot.elems,
            Arg::Const(_) => 1,
        })
        .max()
        .unwrap_or(1);
    let target = |a: Arg<T>| match a {
        Arg::Var(v) if nodes[v.index()].requires_grad => Some(nodes[v.index()].slot),
        _ => None,
    };
    let (tv, tm, ts) = (target(value), target(loc), target(scale));
    let mut parts = ctx.parts(node);
    for e in 0..parts.members {
        let dy = parts.dy[e];
        let rv = reader(value, nodes, &parts.values, n, e);
        let rm = reader(loc, nodes, &parts.values, n, e);
        let rs = reader(scale, nodes, &parts.values, n, e);
        // d/dv = −z/s, d/dμ = z/s, d/ds = (z² − 1)/s.
        let z_over_s = |i: usize| {
            let s = rs.at(i);
            (rv.at(i) - rm.at(i)) / (s * s)
        };
        if let Some(slot) = tv {
            let g = parts.targets.member(slot, e);
            let len = g.len();
            broadcast_loop(n, len, |i, j| g[j] -= dy * z_over_s(i));
        }
        if let Some(slot) = tm {
            let g = parts.targets.member(slot, e);
            let len = g.len();
            broadcast_loop(n, len, |i, j| g[j] += dy * z_over_s(i));
        }
        if let Some(slot) = ts {
            let g = parts.targets.member(slot, e);
            let len = g.len();
            broadcast_loop(n, len, |i, j| {
                let s = rs.at(i);
                let z = (rv.at(i) - rm.at(i)) / s;
                g[j] += dy * (z * z - T::ONE) / s;
            });
        }
    }
}
