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

/// Lanes of the partial sums below: one f64 AVX-512 vector, two f32 AVX2 vectors.
const LANES: usize = 8;

/// `Σ f(vᵢ)²` with [`LANES`] partial sums (element `i` into sum `i mod LANES`) added in a fixed
/// order at the end: independent of threads, and vectorisable.
#[inline(always)]
fn sum_squares_by_lanes<T: Element>(v: &[T], f: impl Fn(T) -> T) -> T {
    let mut sums = [T::ZERO; LANES];
    let chunks = v.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (s, &x) in sums.iter_mut().zip(chunk) {
            let z = f(x);
            *s += z * z;
        }
    }
    for (s, &x) in sums.iter_mut().zip(tail) {
        let z = f(x);
        *s += z * z;
    }
    sums.iter().fold(T::ZERO, |a, &b| a + b)
}

/// `Σ f(vᵢ, mᵢ)²`, summed as [`sum_squares_by_lanes`].
#[inline(always)]
fn sum_squares_by_lanes_of_pairs<T: Element>(v: &[T], m: &[T], f: impl Fn(T, T) -> T) -> T {
    let mut sums = [T::ZERO; LANES];
    let (vc, mc) = (v.chunks_exact(LANES), m.chunks_exact(LANES));
    let (vt, mt) = (vc.remainder(), mc.remainder());
    for (cv, cm) in vc.zip(mc) {
        for ((s, &x), &y) in sums.iter_mut().zip(cv).zip(cm) {
            let z = f(x, y);
            *s += z * z;
        }
    }
    for ((s, &x), &y) in sums.iter_mut().zip(vt).zip(mt) {
        let z = f(x, y);
        *s += z * z;
    }
    sums.iter().fold(T::ZERO, |a, &b| a + b)
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
                let sq = match (rv, rm) {
                    // The common cases (a prior on a tensor, a likelihood of a batch): lane-wise
                    // partial sums in a fixed order, which the compiler vectorises.
                    (Reader::Full(v), Reader::Scalar(m)) => {
                        sum_squares_by_lanes(v, |v| (v - m) * inv)
                    }
                    (Reader::Full(v), Reader::Full(m)) => {
                        sum_squares_by_lanes_of_pairs(v, m, |v, m| (v - m) * inv)
                    }
                    _ => (0..n).fold(T::ZERO, |sq, i| {
                        let z = (rv.at(i) - rm.at(i)) * inv;
                        sq + z * z
                    }),
                };
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
        if let (Reader::Scalar(s), Reader::Full(v)) = (rs, rv) {
            // The common case — a constant or single scale, a full value: one vectorisable loop
            // per operand.
            let s2 = s * s;
            let full = |slot: Option<Slot>| slot.filter(|slot| slot.elems == n);
            let (tv_full, tm_full) = (full(tv), full(tm));
            let loc_ok = matches!(rm, Reader::Full(_) | Reader::Scalar(_));
            if loc_ok && tv_full.is_some() == tv.is_some() && tm_full.is_some() == tm.is_some() {
                let mut grad = |slot: Slot, sign: T| {
                    let g = parts.targets.member(slot, e);
                    match rm {
                        Reader::Full(m) => {
                            for ((g, &v), &m) in g.iter_mut().zip(v).zip(m) {
                                *g += sign * (dy * ((v - m) / s2));
                            }
                        }
                        _ => {
                            let m = rm.at(0);
                            for (g, &v) in g.iter_mut().zip(v) {
                                *g += sign * (dy * ((v - m) / s2));
                            }
                        }
                    }
                };
                if let Some(slot) = tv {
                    grad(slot, -T::ONE);
                }
                if let Some(slot) = tm {
                    grad(slot, T::ONE);
                }
                if let Some(slot) = ts {
                    let g = parts.targets.member(slot, e);
                    let len = g.len();
                    broadcast_loop(n, len, |i, j| {
                        let z = (rv.at(i) - rm.at(i)) / s;
                        g[j] += dy * (z * z - T::ONE) / s;
                    });
                }
                continue;
            }
        }
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
