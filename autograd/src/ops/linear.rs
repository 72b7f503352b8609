//! Member-batched matrix products through the GEMM kernels: `matmul` and the fused layer
//! `dense(x, W, b, f) = f(x·Wᵀ + b)`.

use flock_kernels::elementwise::{
    Store, activate_in_place, activation_backward, add_column_sums, add_sums_per_member,
    bias_activation_backward, bias_activation_backward_outer, bias_activation_forward,
    outer_bias_activation_backward, outer_bias_activation_forward,
};
use flock_kernels::{Activation, Element, MatMut, MatRef, Parallelism, gemm};

use super::{Backward, Op};
use crate::tape::{Inputs, Node, Slot};
use crate::{AutogradError, Graph, Shape, Var};

/// `(rows, cols)` of a rank-2 shape.
fn matrix(op: &'static str, shape: Shape) -> Result<(usize, usize), AutogradError> {
    match *shape.dims() {
        [r, c] => Ok((r, c)),
        _ => Err(AutogradError::InvalidShape {
            op,
            shape,
            expected: "a matrix (two axes after the member axis)",
        }),
    }
}

/// The stack of matrices `slot` holds, read in place.
fn mat_ref<'b, T>(inputs: &Inputs<'b, T>, slot: Slot, rows: usize, cols: usize) -> MatRef<'b, T> {
    MatRef::new(&inputs.buffer(slot.base)[slot.offset..], rows, cols)
        .with_member_stride(slot.stride)
}

/// The stack of gradient matrices for `slot`.
fn mat_mut<T>(buf: &mut [T], slot: Slot, rows: usize, cols: usize) -> MatMut<'_, T> {
    MatMut::new(&mut buf[slot.offset..], rows, cols).with_member_stride(slot.stride)
}

/// How a dense layer's weight matrix is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WeightLayout {
    /// `[out, in]` (equinox's `Linear`): `y = x·Wᵀ`.
    OutIn,
    /// `[in, out]`: `y = x·W`.
    InOut,
}

const SHAPES_CHECKED: &str = "operand shapes were validated when the node was recorded";

impl<T: Element> Graph<'_, T> {
    /// `a·b` per member: `[m, k]·[k, n] → [m, n]`.
    ///
    /// # Errors
    /// [`AutogradError::InvalidShape`] for a non-matrix, [`AutogradError::ShapeMismatch`] when
    /// the inner dimensions differ.
    pub fn matmul(&mut self, a: Var, b: Var) -> Result<Var, AutogradError> {
        self.matmul_impl(a, b, false)
    }

    /// `a·bᵀ` per member: `[m, k]·[n, k]ᵀ → [m, n]`.
    ///
    /// # Errors
    /// As [`Graph::matmul`].
    pub fn matmul_transposed(&mut self, a: Var, b: Var) -> Result<Var, AutogradError> {
        self.matmul_impl(a, b, true)
    }

    fn matmul_impl(&mut self, a: Var, b: Var, transpose_b: bool) -> Result<Var, AutogradError> {
        let (an, bn) = (self.node(a).clone(), self.node(b).clone());
        let (m, k) = matrix("matmul (lhs)", an.shape)?;
        let (br, bc) = matrix("matmul (rhs)", bn.shape)?;
        let (kb, n) = if transpose_b { (bc, br) } else { (br, bc) };
        if k != kb {
            return Err(AutogradError::ShapeMismatch {
                op: if transpose_b {
                    "matmul_transposed"
                } else {
                    "matmul"
                },
                lhs: an.shape,
                rhs: bn.shape,
            });
        }
        let shared = an.slot.shared() && bn.slot.shared();
        let (v, offset) = self.push(
            Op::Matmul { a, b, transpose_b },
            Shape::new(&[m, n]),
            shared,
            an.requires_grad || bn.requires_grad,
        );
        let blocks = if shared { 1 } else { self.members };
        let par = self.tape.parallelism;
        let (inputs, out) = self.split_output(offset);
        let bm = mat_ref(&inputs, bn.slot, br, bc);
        let bm = if transpose_b { bm.t() } else { bm };
        gemm(
            blocks,
            T::ONE,
            mat_ref(&inputs, an.slot, m, k),
            bm,
            T::ZERO,
            MatMut::new(out, m, n),
            par,
        )
        .expect(SHAPES_CHECKED);
        Ok(v)
    }

    /// The fused layer `activation(x·Wᵀ + b)` per member, equinox's `Linear` convention:
    /// `x: [B, in]`, `weight: [out, in]`, `bias: [out]` → `[B, out]`.
    ///
    /// ```
    /// use flock_autograd::{Activation, ParamLayout, Parameters, Tape};
    /// let mut layout = ParamLayout::new();
    /// let w = layout.add("w", [2, 3])?;
    /// let b = layout.add("b", [2])?;
    /// let mut params = Parameters::<f64>::zeros(layout, 1);
    /// params.member_mut(0).copy_from_slice(&[1., 0., 0., 0., 1., 1., 0.5, -0.5]);
    /// let mut tape = Tape::new();
    /// let mut g = tape.graph(&params);
    /// let x = g.input(&[1., 2., 3.], [1, 3])?;
    /// let (w, b) = (g.param(w)?, g.param(b)?);
    /// let y = g.dense(x, w, Some(b), Activation::Identity)?;
    /// assert_eq!(g.values(y, 0), &[1.5, 4.5]);
    /// # Ok::<(), flock_autograd::AutogradError>(())
    /// ```
    ///
    /// # Errors
    /// [`AutogradError::InvalidShape`] / [`AutogradError::ShapeMismatch`] naming the operand.
    pub fn dense(
        &mut self,
        x: Var,
        weight: Var,
        bias: Option<Var>,
        activation: Activation,
    ) -> Result<Var, AutogradError> {
        self.dense_impl(x, weight, bias, activation, WeightLayout::OutIn)
    }

    /// The fused layer `activation(x·W + b)` with `weight: [in, out]` (the layout of a model
    /// written as `x @ W + b`), otherwise as [`Graph::dense`].
    ///
    /// # Errors
    /// As [`Graph::dense`].
    pub fn affine(
        &mut self,
        x: Var,
        weight: Var,
        bias: Option<Var>,
        activation: Activation,
    ) -> Result<Var, AutogradError> {
        self.dense_impl(x, weight, bias, activation, WeightLayout::InOut)
    }

    fn dense_impl(
        &mut self,
        x: Var,
        weight: Var,
        bias: Option<Var>,
        activation: Activation,
        layout: WeightLayout,
    ) -> Result<Var, AutogradError> {
        let (xn, wn) = (self.node(x).clone(), self.node(weight).clone());
        let (rows, fan_in) = matrix("dense (x)", xn.shape)?;
        let (fan_out, w_in) = match layout {
            WeightLayout::OutIn => matrix("dense (weight)", wn.shape)?,
            WeightLayout::InOut => {
                let (i, o) = matrix("affine (weight)", wn.shape)?;
                (o, i)
            }
        };
        if w_in != fan_in {
            return Err(AutogradError::ShapeMismatch {
                op: "dense (x and weight)",
                lhs: xn.shape,
                rhs: wn.shape,
            });
        }
        let bn = match bias {
            Some(b) => {
                let bn = self.node(b).clone();
                if bn.shape.dims() != [fan_out] {
                    return Err(AutogradError::ShapeMismatch {
                        op: "dense (weight and bias)",
                        lhs: wn.shape,
                        rhs: bn.shape,
                    });
                }
                Some(bn)
            }
            None => None,
        };
        let shared =
            xn.slot.shared() && wn.slot.shared() && bn.as_ref().is_none_or(|b| b.slot.shared());
        let requires_grad =
            xn.requires_grad || wn.requires_grad || bn.as_ref().is_some_and(|b| b.requires_grad);
        let (v, offset) = self.push(
            Op::Dense {
                x,
                weight,
                bias,
                activation,
                layout,
            },
            Shape::new(&[rows, fan_out]),
            shared,
            requires_grad,
        );
        let blocks = if shared { 1 } else { self.members };
        let par = self.tape.parallelism;
        let (inputs, out) = self.split_output(offset);
        let block = rows * fan_out;
        if let (1, Some(bn)) = (fan_in, &bn) {
            // One input feature: the product is an outer product, computed with its epilogue
            // in one pass (the same bits as the product and then the epilogue).
            for e in 0..blocks {
                outer_bias_activation_forward(
                    activation,
                    inputs.member(xn.slot, e),
                    inputs.member(wn.slot, e),
                    inputs.member(bn.slot, e),
                    &mut out[e * block..(e + 1) * block],
                );
            }
            return Ok(v);
        }
        let w_ref = match layout {
            WeightLayout::OutIn => mat_ref(&inputs, wn.slot, fan_out, fan_in).t(),
            WeightLayout::InOut => mat_ref(&inputs, wn.slot, fan_in, fan_out),
        };
        gemm(
            blocks,
            T::ONE,
            mat_ref(&inputs, xn.slot, rows, fan_in),
            w_ref,
            T::ZERO,
            MatMut::new(out, rows, fan_out),
            par,
        )
        .expect(SHAPES_CHECKED);
        for e in 0..blocks {
            let z = &mut out[e * block..(e + 1) * block];
            match &bn {
                Some(bn) => bias_activation_forward(
                    activation,
                    1,
                    rows,
                    fan_out,
                    z,
                    inputs.member(bn.slot, e),
                ),
                None => activate_in_place(activation, z),
            }
        }
        Ok(v)
    }

    /// `x·Wᵀ + b` (a [`Graph::dense`] without activation).
    ///
    /// # Errors
    /// As [`Graph::dense`].
    pub fn linear(&mut self, x: Var, weight: Var, bias: Option<Var>) -> Result<Var, AutogradError> {
        self.dense(x, weight, bias, Activation::Identity)
    }
}

pub(crate) fn matmul_backward<T: Element>(
    ctx: &mut Backward<'_, T>,
    node: &Node<T>,
    a: Var,
    b: Var,
    transpose_b: bool,
) {
    let (an, bn) = (ctx.node(a), ctx.node(b));
    let (m, k) = (an.shape.dims()[0], an.shape.dims()[1]);
    let (br, bc) = (bn.shape.dims()[0], bn.shape.dims()[1]);
    let n = node.shape.dims()[1];
    // Each product writes its operand's whole gradient block: it overwrites it (β = 0) when
    // nothing wrote it yet. Claimed in the order the products run, so that `a·aᵀ` (one storage
    // for both) adds its second product to the first.
    let beta = |fresh: bool| if fresh { T::ZERO } else { T::ONE };
    let a_beta = beta(ctx.claim_overwrite(a));
    let b_beta = beta(ctx.claim_overwrite(b));
    let mut parts = ctx.parts(node);
    let (members, par) = (parts.members, parts.parallelism);
    let dc = MatRef::new(parts.dy, m, n);
    if an.requires_grad {
        // dA (+)= dC·op(B)ᵀ
        let b_ref = mat_ref(&parts.values, bn.slot, br, bc);
        let op_b_t = if transpose_b { b_ref } else { b_ref.t() };
        let da = mat_mut(parts.targets.buffer(an.slot.base), an.slot, m, k);
        gemm(members, T::ONE, dc, op_b_t, a_beta, da, par).expect(SHAPES_CHECKED);
    }
    if bn.requires_grad {
        let a_ref = mat_ref(&parts.values, an.slot, m, k);
        let db = mat_mut(parts.targets.buffer(bn.slot.base), bn.slot, br, bc);
        if transpose_b {
            // dB (n×k) (+)= dCᵀ·A
            gemm(members, T::ONE, dc.t(), a_ref, b_beta, db, par)
        } else {
            // dB (k×n) (+)= Aᵀ·dC
            gemm(members, T::ONE, a_ref.t(), dc, b_beta, db, par)
        }
        .expect(SHAPES_CHECKED);
    }
}

/// The input gradient of a one-output dense layer `y = x·wᵀ + b` (`w`: `[1, cols]`), held as its
/// two factors, `dx[e, i, j] = dy[e, i]·w[e, j]`, instead of written out: the layer that made `x`
/// (a dense layer with an activation and a bias) then computes its `dz = dx ⊙ f′(z)` a member at
/// a time from them, and the `[rows, cols]` block of every member is never stored and read back
/// (328 KB a step of the seed's ensemble in f64). Each value is the one product the layer's own
/// rank-one product would have written, so the bits are the same.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RankOneGradient {
    /// `x`'s gradient block (of the node `x`, never an alias).
    pub target: Slot,
    /// The storage offset of the one-output layer's own gradient `dy` (`[rows, 1]` per member).
    pub dy_offset: usize,
    pub rows: usize,
    cols: usize,
    weight: Slot,
}

impl RankOneGradient {
    /// Writes `dx = dy·w` into `grads` (`dx`'s buffer) by the layer's own product.
    pub(crate) fn write<T: Element>(
        &self,
        values: &Inputs<'_, T>,
        dy: &[T],
        grads: &mut [T],
        members: usize,
        par: Parallelism,
    ) {
        let dy = MatRef::new(dy, self.rows, 1);
        let w = mat_ref(values, self.weight, 1, self.cols);
        let dx = mat_mut(grads, self.target, self.rows, self.cols);
        gemm(members, T::ONE, dy, w, T::ZERO, dx, par).expect(SHAPES_CHECKED);
    }

    /// Member `e`'s two factors, `dy[e, :]` (`[rows]`) and `w[e, :]` (`[cols]`): its `dx` block
    /// is their outer product, each value the product [`Self::write`] rounds once.
    fn member<'a, T: Element>(
        &self,
        values: &Inputs<'a, T>,
        dy: &'a [T],
        e: usize,
    ) -> (&'a [T], &'a [T]) {
        (
            &dy[e * self.rows..(e + 1) * self.rows],
            values.member(self.weight, e),
        )
    }
}

pub(crate) fn dense_backward<T: Element>(
    ctx: &mut Backward<'_, T>,
    node: &Node<T>,
    x: Var,
    weight: Var,
    bias: Option<Var>,
    activation: Activation,
    layout: WeightLayout,
) {
    let (xn, wn) = (ctx.node(x), ctx.node(weight));
    let bn = bias.map(|b| ctx.node(b));
    let (rows, fan_in) = (xn.shape.dims()[0], xn.shape.dims()[1]);
    let fan_out = node.shape.dims()[1];
    // The weight gradient is written by its product (β = 0) when nothing wrote it yet. It is
    // claimed before the input, so that an input sharing the weight's storage adds to it.
    let weight_beta = if ctx.claim_overwrite(weight) {
        T::ZERO
    } else {
        T::ONE
    };
    // An input gradient nothing has written yet is overwritten by the product (β = 0) instead
    // of being zeroed and added to; a shared input (all members add into one block) is zeroed.
    let overwrite_dx = if xn.requires_grad && !xn.slot.shared() {
        ctx.claim_whole(x)
    } else {
        ctx.claim(x);
        false
    };
    // A one-output layer on a dense layer's activations leaves its input gradient as factors
    // (`RankOneGradient`) for that layer, unless another is pending already.
    let defer_dx = overwrite_dx
        && fan_out == 1
        && fan_in > 1
        && activation == Activation::Identity
        && layout == WeightLayout::OutIn
        && ctx.pending.is_none()
        && matches!(xn.op, Op::Dense { activation: a, bias: Some(_), .. } if a != Activation::Identity);
    // This layer's own gradient left as factors by the one-output layer it feeds, read a member
    // at a time below when its activation's backward runs with a bias gradient; written out
    // first otherwise.
    let bias_grad = bn.filter(|b| b.requires_grad);
    let outer = fan_in == 1 && fan_out > 1 && wn.requires_grad && !xn.requires_grad;
    let factored_dy = ctx.pending.filter(|p| p.target.offset == node.slot.offset);
    let fuses_dy = factored_dy.is_some()
        && activation != Activation::Identity
        && bias_grad.is_some()
        && !outer;
    if factored_dy.is_some() {
        if fuses_dy {
            ctx.pending = None;
        } else {
            ctx.write_pending();
        }
    }
    let mut parts = ctx.parts(node);
    let (members, par) = (parts.members, parts.parallelism);
    let block = rows * fan_out;
    if let (true, Some(bn)) = (outer, bias_grad) {
        // One input feature whose gradient nobody needs (a 1-D regression's data): the bias
        // and weight gradients in one pass per member, `dz` never stored (the same bits as
        // the epilogue's backward and then the weight gradient's product, which for one
        // output column would be a dot product in another order).
        let y = &parts.values.arena[node.slot.offset..node.slot.offset + members * block];
        for e in 0..members {
            let r = e * block..(e + 1) * block;
            let x_e = parts.values.member(xn.slot, e);
            let (db, dw) = parts.targets.two_members(bn.slot, wn.slot, e);
            outer_bias_activation_backward(
                activation,
                x_e,
                &y[r.clone()],
                &parts.dy[r],
                db,
                dw,
                weight_beta,
            );
        }
        return;
    }
    // dz = dy ⊙ f'(y), the gradient of the pre-activation, and the bias gradient Σ_rows dz —
    // in one pass per member when both are needed.
    let dz: &[T] = if activation == Activation::Identity {
        match bias_grad {
            // One output (a regression head): the members' one-value bias gradients copied
            // out of their blocks, a group at a time, and summed together.
            Some(bn) if fan_out == 1 && rows > 0 => {
                const GROUP: usize = 8;
                for (g, dy_g) in parts.dy[..members * rows].chunks(GROUP * rows).enumerate() {
                    let mut sums = [T::ZERO; GROUP];
                    let sums = &mut sums[..dy_g.len() / rows];
                    for (j, s) in sums.iter_mut().enumerate() {
                        *s = parts.targets.member(bn.slot, GROUP * g + j)[0];
                    }
                    add_sums_per_member(dy_g, sums);
                    for (j, &s) in sums.iter().enumerate() {
                        parts.targets.member(bn.slot, GROUP * g + j)[0] = s;
                    }
                }
            }
            Some(bn) => {
                for e in 0..members {
                    let db = parts.targets.member(bn.slot, e);
                    add_column_sums(&parts.dy[e * block..(e + 1) * block], db);
                }
            }
            None => {}
        }
        parts.dy
    } else {
        let y = &parts.values.arena[node.slot.offset..node.slot.offset + members * block];
        let factored = factored_dy.filter(|_| fuses_dy);
        parts.scratch.resize_for_overwrite(members * block, T::ZERO);
        let scratch = &mut parts.scratch[..];
        match bias_grad {
            Some(bn) => {
                for e in 0..members {
                    let r = e * block..(e + 1) * block;
                    let db = parts.targets.member(bn.slot, e);
                    match factored {
                        Some(p) => {
                            let above = &parts.above[p.dy_offset - node.slot.offset..];
                            let (g, w) = p.member(&parts.values, above, e);
                            bias_activation_backward_outer(
                                activation,
                                &y[r.clone()],
                                g,
                                w,
                                &mut scratch[r],
                                db,
                            );
                        }
                        None => bias_activation_backward(
                            activation,
                            1,
                            rows,
                            fan_out,
                            &y[r.clone()],
                            &parts.dy[r.clone()],
                            &mut scratch[r],
                            db,
                        ),
                    }
                }
            }
            None => activation_backward(activation, y, parts.dy, scratch, Store::Overwrite),
        }
        &*scratch
    };
    let dz_ref = MatRef::new(dz, rows, fan_out);
    if wn.requires_grad {
        let x_ref = mat_ref(&parts.values, xn.slot, rows, fan_in);
        match layout {
            WeightLayout::OutIn => {
                // dW (out×in) += dzᵀ·x
                let dw = mat_mut(parts.targets.buffer(wn.slot.base), wn.slot, fan_out, fan_in);
                gemm(members, T::ONE, dz_ref.t(), x_ref, weight_beta, dw, par)
            }
            WeightLayout::InOut => {
                // dW (in×out) += xᵀ·dz
                let dw = mat_mut(parts.targets.buffer(wn.slot.base), wn.slot, fan_in, fan_out);
                gemm(members, T::ONE, x_ref.t(), dz_ref, weight_beta, dw, par)
            }
        }
        .expect(SHAPES_CHECKED);
    }
    if defer_dx {
        let pending = RankOneGradient {
            target: xn.slot,
            dy_offset: node.slot.offset,
            rows,
            cols: fan_in,
            weight: wn.slot,
        };
        ctx.pending = Some(pending);
    } else if xn.requires_grad {
        // dx (B×in) += dz·W (W as [out, in], read transposed when stored [in, out])
        let w_ref = match layout {
            WeightLayout::OutIn => mat_ref(&parts.values, wn.slot, fan_out, fan_in),
            WeightLayout::InOut => mat_ref(&parts.values, wn.slot, fan_in, fan_out).t(),
        };
        let dx = mat_mut(parts.targets.buffer(xn.slot.base), xn.slot, rows, fan_in);
        let beta = if overwrite_dx { T::ZERO } else { T::ONE };
        gemm(members, T::ONE, dz_ref, w_ref, beta, dx, par).expect(SHAPES_CHECKED);
    }
}
