//! The operations a graph can record. Each module holds one family's forward (methods on
//! [`Graph`](crate::Graph)) and backward (a function called by the reverse walk), side by side.

pub(crate) mod binary;
pub(crate) mod categorical;
pub(crate) mod density;
pub(crate) mod linalg;
pub(crate) mod linear;
pub(crate) mod reduce;
pub(crate) mod reshape;
pub(crate) mod unary;

use flock_kernels::{Activation, AlignedBuf, Element, Parallelism};

pub use density::Arg;
pub use unary::UnaryKind;

use crate::Var;
use crate::tape::{Base, Inputs, Node, Slot};

/// One recorded operation and its operands.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Op<T> {
    /// A parameter or data leaf: nothing to propagate.
    Leaf,
    /// A view of `input` with another shape (same storage, same gradient storage); `input` is
    /// the node that owns the storage, never itself an alias.
    Alias {
        input: Var,
    },
    Unary {
        input: Var,
        kind: UnaryKind<T>,
    },
    /// `ln(1 + eˣ)`, with `σ(x)` (its derivative) saved by the forward in the block of the
    /// non-differentiable node `sigmoid`.
    Softplus {
        input: Var,
        sigmoid: Var,
    },
    Binary {
        a: Var,
        b: Var,
        kind: binary::BinaryKind,
    },
    /// `a ⊙ b + c`.
    MulAdd {
        a: Var,
        b: Var,
        c: Var,
    },
    Reduce {
        input: Var,
        kind: reduce::ReduceKind<T>,
    },
    SelectColumn {
        input: Var,
        column: usize,
    },
    Matmul {
        a: Var,
        b: Var,
        transpose_b: bool,
    },
    Dense {
        x: Var,
        weight: Var,
        bias: Option<Var>,
        activation: Activation,
        layout: linear::WeightLayout,
    },
    NormalLogDensity {
        value: Arg<T>,
        loc: Arg<T>,
        scale: Arg<T>,
    },
    /// `ln det` of the symmetric part of a square matrix.
    LogDetSpd {
        input: Var,
    },
    /// A class log-likelihood of `labels` under `logits`, with the softmax (or σ) the forward
    /// computed kept in the block of the non-differentiable node `probs`.
    ClassLogLikelihood {
        logits: Var,
        labels: Var,
        probs: Var,
        kind: categorical::ClassLikelihood,
    },
}

/// Everything the reverse walk has at hand for one node.
pub(crate) struct Backward<'t, T> {
    pub nodes: &'t [Node<T>],
    pub arena: &'t [T],
    pub params: &'t [T],
    pub grads: &'t mut [T],
    /// By node index: whether the node owns an arena storage whose gradient block no op has
    /// written yet (always false for aliases, parameters and empty nodes).
    pub unwritten: &'t mut [bool],
    pub param_grads: &'t mut [T],
    /// Ranges of one member's parameter block (`param_stride` values) whose gradient some op
    /// has written — the same ranges in every member — sorted and disjoint.
    pub params_written: &'t mut Vec<(usize, usize)>,
    pub param_stride: usize,
    pub scratch: &'t mut AlignedBuf<T>,
    pub members: usize,
    pub parallelism: Parallelism,
    /// An input gradient a one-output dense layer left as its two factors (see
    /// [`linear::RankOneGradient`]): written out by the first claim of it, or read factor by
    /// factor by the layer that made its input.
    pub pending: Option<linear::RankOneGradient>,
}

/// A node's view during backward: operand values, its own gradient `dy`, and the gradient
/// buffers of the nodes before it (where its operands' gradients accumulate).
pub(crate) struct Parts<'p, T> {
    pub values: Inputs<'p, T>,
    /// The node's gradient, `E·elems` values (a non-leaf node is never shared).
    pub dy: &'p [T],
    /// The gradient buffer from the node's block on (`dy` is its start): the gradients of the
    /// nodes recorded after it.
    pub above: &'p [T],
    pub targets: Targets<'p, T>,
    pub scratch: &'p mut AlignedBuf<T>,
    pub members: usize,
    pub parallelism: Parallelism,
}

/// Mutable gradient buffers of earlier nodes.
pub(crate) struct Targets<'p, T> {
    pub arena: &'p mut [T],
    pub params: &'p mut [T],
}

impl<T> Targets<'_, T> {
    pub fn buffer(&mut self, base: Base) -> &mut [T] {
        match base {
            Base::Arena => self.arena,
            Base::Params => self.params,
        }
    }
    /// Member `e`'s gradient block of `slot`.
    pub fn member(&mut self, slot: Slot, e: usize) -> &mut [T] {
        let r = slot.range(e);
        &mut self.buffer(slot.base)[r]
    }
    /// Member `e`'s gradient blocks of two slots (e.g. a layer's bias and weight), together.
    ///
    /// # Panics
    /// If the two blocks overlap.
    pub fn two_members(&mut self, a: Slot, b: Slot, e: usize) -> (&mut [T], &mut [T]) {
        let (ra, rb) = (a.range(e), b.range(e));
        match (a.base, b.base) {
            (Base::Arena, Base::Params) => (&mut self.arena[ra], &mut self.params[rb]),
            (Base::Params, Base::Arena) => (&mut self.params[ra], &mut self.arena[rb]),
            _ => {
                assert!(
                    ra.end <= rb.start || rb.end <= ra.start,
                    "two_members: the blocks overlap"
                );
                let buffer = self.buffer(a.base);
                if ra.start < rb.start {
                    let (low, high) = buffer.split_at_mut(rb.start);
                    (&mut low[ra], &mut high[..rb.len()])
                } else {
                    let (low, high) = buffer.split_at_mut(ra.start);
                    (&mut high[..ra.len()], &mut low[rb])
                }
            }
        }
    }
}

impl<'t, T: Element> Backward<'t, T> {
    pub fn node(&self, v: Var) -> &'t Node<T> {
        &self.nodes[v.index()]
    }

    /// The `unwritten` entry of the node owning `v`'s storage (`v` itself, or an alias's source).
    fn entry(&mut self, v: Var) -> &mut bool {
        let owner = match self.nodes[v.index()].op {
            Op::Alias { input } => input,
            _ => v,
        };
        &mut self.unwritten[owner.index()]
    }

    /// Whether no op has written `v`'s gradient storage yet.
    pub fn is_unwritten(&mut self, v: Var) -> bool {
        *self.entry(v)
    }

    /// The whole block of `slot`'s gradient (every member's).
    fn block(&self, slot: Slot) -> core::ops::Range<usize> {
        let len = if slot.shared() {
            slot.elems
        } else {
            (self.members - 1) * slot.stride + slot.elems
        };
        slot.offset..slot.offset + len
    }

    /// Marks `v`'s gradient storage written; returns whether it was unwritten (the caller then
    /// writes every value of the block instead of adding to it). A parameter range partly
    /// written before has its unwritten parts zeroed (and `false` is returned).
    pub fn claim_whole(&mut self, v: Var) -> bool {
        let slot = self.node(v).slot;
        if self.pending.is_some_and(|p| p.target.offset == slot.offset) && slot.base == Base::Arena
        {
            self.write_pending();
        }
        if slot.base == Base::Params {
            return self.claim_params(slot.offset..slot.offset + slot.elems, true);
        }
        core::mem::replace(self.entry(v), false)
    }

    /// Marks `range` of every member's parameter block written, zeroing the parts no op had
    /// written — all of it unless `overwrite` and none of it was written. Returns whether none of
    /// it had been written.
    fn claim_params(&mut self, range: core::ops::Range<usize>, overwrite: bool) -> bool {
        let (start, end) = (range.start, range.end);
        if start == end {
            return false;
        }
        let stride = self.param_stride;
        let members = self.members;
        let grads = &mut *self.param_grads;
        let mut zero = |from: usize, to: usize| {
            for e in 0..members {
                grads[e * stride + from..e * stride + to].fill(T::ZERO);
            }
        };
        let overlapping = self
            .params_written
            .iter()
            .filter(|&&(s, e)| s < end && e > start);
        let fresh = overlapping.clone().next().is_none();
        if !(fresh && overwrite) {
            let mut cursor = start;
            for &(s, e) in overlapping {
                if s > cursor {
                    zero(cursor, s);
                }
                cursor = cursor.max(e);
            }
            if cursor < end {
                zero(cursor, end);
            }
        }
        mark_written(self.params_written, start, end);
        fresh
    }

    /// Zeroes every member's parameter gradients that no op wrote (parameters the loss does
    /// not depend on).
    pub fn zero_unwritten_params(&mut self) {
        self.claim_params(0..self.param_stride, false);
    }

    /// Claims `v`'s gradient for an op that writes every member's whole block: returns `true`
    /// when the op may overwrite it (nothing wrote it yet, and `v` is not shared between
    /// members), `false` when it must add to it (then zeroed if it was unwritten).
    pub fn claim_overwrite(&mut self, v: Var) -> bool {
        let node = self.node(v);
        if !node.requires_grad {
            return false;
        }
        if node.slot.shared() && self.members > 1 {
            self.claim(v);
            return false;
        }
        self.claim_whole(v)
    }

    /// Prepares `v`'s gradient for accumulation: zeroes its block if no op wrote it yet.
    pub fn claim(&mut self, v: Var) {
        let node = self.node(v);
        let slot = node.slot;
        if node.requires_grad && slot.base == Base::Params {
            self.claim_params(slot.offset..slot.offset + slot.elems, false);
        } else if node.requires_grad && self.claim_whole(v) {
            let block = self.block(node.slot);
            self.grads[block].fill(T::ZERO);
        }
    }

    /// [`Backward::claim`] for a constant-or-node operand.
    pub fn claim_arg(&mut self, a: Arg<T>) {
        if let Arg::Var(v) = a {
            self.claim(v);
        }
    }

    /// Writes out the pending rank-one input gradient, if any, as the one-output layer would
    /// have (its product, `β = 0`).
    pub fn write_pending(&mut self) {
        if let Some(p) = self.pending.take() {
            let values = Inputs {
                arena: self.arena,
                params: self.params,
            };
            let (lower, upper) = self.grads.split_at_mut(p.dy_offset);
            p.write(
                &values,
                &upper[..self.members * p.rows],
                lower,
                self.members,
                self.parallelism,
            );
        }
    }

    pub fn parts(&mut self, node: &Node<T>) -> Parts<'_, T> {
        debug_assert_eq!(node.slot.base, Base::Arena);
        let len = self.members * node.slot.elems;
        let (lower, upper) = self.grads.split_at_mut(node.slot.offset);
        let upper: &[T] = upper;
        Parts {
            values: Inputs {
                arena: self.arena,
                params: self.params,
            },
            dy: &upper[..len],
            above: upper,
            targets: Targets {
                arena: lower,
                params: self.param_grads,
            },
            scratch: self.scratch,
            members: self.members,
            parallelism: self.parallelism,
        }
    }
}

/// Adds `[start, end)` to the sorted, disjoint ranges of `written`, merging what it touches.
fn mark_written(written: &mut Vec<(usize, usize)>, start: usize, end: usize) {
    let first = written.partition_point(|&(_, e)| e < start);
    let last = written.partition_point(|&(s, _)| s <= end);
    if first == last {
        written.insert(first, (start, end));
    } else {
        let merged = (start.min(written[first].0), end.max(written[last - 1].1));
        written.splice(first..last, [merged]);
    }
}

/// Propagates node `index`'s gradient to its operands.
pub(crate) fn backward<T: Element>(ctx: &mut Backward<'_, T>, index: usize) {
    let node = &ctx.nodes[index];
    // Every operand an op adds a gradient to is claimed first (zeroed if nothing wrote it yet);
    // a dense layer's input is claimed by the layer, which overwrites it whole when it can.
    match node.op {
        Op::Leaf | Op::Alias { .. } => {}
        // Softplus, reductions, a multiply-add's addend and a dense layer's weight claim their
        // operand themselves: they overwrite a gradient nothing has written yet.
        Op::Unary { input, .. } | Op::SelectColumn { input, .. } | Op::LogDetSpd { input } => {
            ctx.claim(input)
        }
        Op::Softplus { .. } | Op::Reduce { .. } => {}
        // A matrix product claims its operands itself: it overwrites what nothing wrote yet.
        Op::Matmul { .. } => {}
        Op::Binary { a, b, .. } => {
            ctx.claim(a);
            ctx.claim(b);
        }
        Op::MulAdd { a, b, .. } => {
            ctx.claim(a);
            ctx.claim(b);
        }
        Op::Dense { bias, .. } => {
            if let Some(bias) = bias {
                ctx.claim(bias);
            }
        }
        Op::NormalLogDensity { value, loc, scale } => {
            ctx.claim_arg(value);
            ctx.claim_arg(loc);
            ctx.claim_arg(scale);
        }
        Op::ClassLogLikelihood { logits, .. } => ctx.claim(logits),
    }
    match node.op {
        Op::Leaf | Op::Alias { .. } => {}
        Op::Unary { input, kind } => unary::backward(ctx, node, input, kind),
        Op::Softplus { input, sigmoid } => unary::softplus_backward(ctx, node, input, sigmoid),
        Op::Binary { a, b, kind } => binary::backward(ctx, node, a, b, kind),
        Op::MulAdd { a, b, c } => binary::mul_add_backward(ctx, node, a, b, c),
        Op::Reduce { input, kind } => reduce::backward(ctx, node, input, kind),
        Op::SelectColumn { input, column } => {
            reshape::select_column_backward(ctx, node, input, column)
        }
        Op::Matmul { a, b, transpose_b } => linear::matmul_backward(ctx, node, a, b, transpose_b),
        Op::Dense {
            x,
            weight,
            bias,
            activation,
            layout,
        } => linear::dense_backward(ctx, node, x, weight, bias, activation, layout),
        Op::NormalLogDensity { value, loc, scale } => {
            density::backward(ctx, node, value, loc, scale)
        }
        Op::LogDetSpd { input } => linalg::log_det_spd_backward(ctx, node, input),
        Op::ClassLogLikelihood {
            logits,
            labels,
            probs,
            kind,
        } => categorical::backward(ctx, node, logits, labels, probs, kind),
    }
}
