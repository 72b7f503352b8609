//! A layer with one input feature (`x·wᵀ` an outer product: the `1→H` input layer of a 1-D
//! regression) with its epilogue, forward and backward: the bits of the rank-one
//! [`gemm`](crate::gemm()) and the separate epilogue, the backward in one pass without writing
//! and reading back the `[rows, cols]` intermediate (the product alone is bound by the stores
//! of its output), the forward in one pass or in two over one member's block in L1, whichever
//! was measured faster for the build.

use super::{
    Activation, IdentityFn, Pointwise, ReluFn, SigmoidFn, SoftplusFn, TanhFn, map1_in_place,
    map1_in_place_paired,
};
use crate::frame::align_frame;
use crate::simd::MAX_LANES;
use crate::{Element, SimdVector};

/// A layer with one input feature, product and epilogue together:
/// `out[r, c] = f(x[r]·w[c] + bias[c])` for `r < rows`, `c < cols` — the bits of the rank-one
/// [`gemm`](crate::gemm()) `out = x·wᵀ` (`α = 1`, `β = 0`) followed by
/// [`bias_activation_forward`], in one pass over `out` where that was measured faster (each
/// value written once; AVX-512 builds), in two over it while it is in L1 elsewhere.
///
/// [`bias_activation_forward`]: super::bias_activation_forward
///
/// - `x`: `rows` values (the layer's input column); `w`, `bias`: `cols` values;
/// - `out`: `[rows, cols]`.
///
/// # Panics
/// If a slice's length disagrees with `rows` and `cols`.
pub fn outer_bias_activation_forward<T: Element>(
    activation: Activation,
    x: &[T],
    w: &[T],
    bias: &[T],
    out: &mut [T],
) {
    let (rows, cols) = (x.len(), w.len());
    assert!(
        bias.len() == cols && out.len() == rows * cols,
        "outer_bias_activation_forward: bias must hold cols={cols} values and out \
         [rows={rows}, cols={cols}]"
    );
    if cols == 0 {
        return;
    }
    with_pointwise!(activation, F => outer_bias_activation_rows::<T, F>(x, w, bias, out));
}

/// Whether [`outer_bias_activation_forward`] hands each row's `x·w + b` to the activation in
/// registers (AVX-512 builds) or writes the member's `x·w + b` first and then runs the
/// activation over it, still in L1 (AVX2 and older builds). Measured on the seed's input layer
/// (E=16 B=80 1→32 tanh, the `gflops` bench, one thread): on an Intel Xeon (two alternated
/// runs) the two passes were 6–28 % slower in the AVX-512 build and in the x86-64-v3 build's
/// f32, faster in its f64 (36–37 µs against 40–44, where the `tanh` spills more); on a Zen 3
/// (native AVX2, three alternated runs) faster in both, f32 16.1–16.3 µs against 19.5–20.0 and
/// f64 42.6–44.8 against 50.5–51.7. The same bits either way.
const ONE_PASS_FORWARD: bool = cfg!(target_feature = "avx512f");

/// [`outer_bias_activation_forward`] (checked shapes, `cols > 0`) with the activation's type
/// `F`: in one pass ([`ONE_PASS_FORWARD`]), each row's `x·w + b` computed in registers and
/// handed to the activation as the epilogue's own loop does (two vectors at a time); otherwise
/// `x·w + b` written row by row and the activation run over the member's block in place.
#[inline(always)]
fn outer_bias_activation_rows<T: Element, F: Pointwise>(
    x: &[T],
    w: &[T],
    bias: &[T],
    out: &mut [T],
) {
    align_frame();
    let cols = w.len();
    let lanes = T::Vector::LANES;
    let body = cols - cols % lanes;
    if !ONE_PASS_FORWARD {
        for (&xr, row) in x.iter().zip(out.chunks_exact_mut(cols)) {
            let xv = T::Vector::splat(xr);
            for j in (0..body).step_by(lanes) {
                let z = xv * T::Vector::from_slice(&w[j..j + lanes])
                    + T::Vector::from_slice(&bias[j..j + lanes]);
                z.write_to(&mut row[j..j + lanes]);
            }
            for ((t, &wc), &b) in row[body..].iter_mut().zip(&w[body..]).zip(&bias[body..]) {
                *t = xr * wc + b;
            }
        }
        map1_in_place_paired(out, F::apply, F::apply_pair);
        return;
    }
    let pairs = body - body % (2 * lanes);
    let at = |v: &[T], j: usize| T::Vector::from_slice(&v[j..j + lanes]);
    for (&xr, row) in x.iter().zip(out.chunks_exact_mut(cols)) {
        let xv = T::Vector::splat(xr);
        let z = |j: usize| xv * at(w, j) + at(bias, j);
        for j in (0..pairs).step_by(2 * lanes) {
            let (a, b) = F::apply_pair(z(j), z(j + lanes));
            a.write_to(&mut row[j..j + lanes]);
            b.write_to(&mut row[j + lanes..j + 2 * lanes]);
        }
        if pairs < body {
            F::apply(z(pairs)).write_to(&mut row[pairs..body]);
        }
        if body < cols {
            let tail = &mut row[body..];
            for ((t, &wc), &b) in tail.iter_mut().zip(&w[body..]).zip(&bias[body..]) {
                *t = xr * wc + b;
            }
            map1_in_place(tail, F::apply);
        }
    }
}

/// Vectors of columns per pass of [`outer_bias_activation_backward`]: each holds five sums (the
/// bias gradient and four chains of the weight gradient) in registers — 32 of them with
/// AVX-512, 16 otherwise.
const BACKWARD_VECTORS: usize = if cfg!(target_feature = "avx512f") {
    4
} else {
    2
};

/// The backward of [`outer_bias_activation_forward`] when `x` needs no gradient, in one pass:
/// `dz = dy ⊙ f'(y)` (not stored), `dbias[c] += Σ_r dz[r, c]` and
/// `dw[c] = β·dw[c] + Σ_r x[r]·dz[r, c]` — the bits of [`bias_activation_backward`] and then
/// the product `dw (+)= dzᵀ·x` ([`gemm`](crate::gemm()), `α = 1`): the bias gradient summed down
/// the rows in order from its old value, the weight gradient in the GEMM's thin-product order
/// (four chains of fused multiply-adds over the rows, `r mod 4`, the last `rows mod 4` on the
/// first, combined as `β·dw + ((s₀ + s₁) + (s₂ + s₃))`; `β = 0` never reads `dw`). With one
/// column (`cols = 1`) the GEMM's product is a dot product, summed in another order: the bits
/// are the GEMM's for `cols ≥ 2`.
///
/// - `x`: `rows` values; `y`, `dy`: `[rows, cols]` (`y` the forward output);
/// - `dbias`, `dw`: `cols` values.
///
/// [`bias_activation_backward`]: super::bias_activation_backward
///
/// # Panics
/// If a slice's length disagrees with `rows` and `cols`.
pub fn outer_bias_activation_backward<T: Element>(
    activation: Activation,
    x: &[T],
    y: &[T],
    dy: &[T],
    dbias: &mut [T],
    dw: &mut [T],
    dw_beta: T,
) {
    let (rows, cols) = (x.len(), dbias.len());
    assert!(
        dw.len() == cols && y.len() == rows * cols && dy.len() == rows * cols,
        "outer_bias_activation_backward: dw must hold cols={cols} values and y, dy \
         [rows={rows}, cols={cols}]"
    );
    if rows == 0 {
        // No terms: `dw = β·dw`, as the GEMM's `k = 0` (`+0` where `β = 0`).
        for v in dw.iter_mut() {
            *v = if dw_beta == T::ZERO {
                T::ZERO
            } else {
                dw_beta * *v
            };
        }
        return;
    }
    if cols == 0 {
        return;
    }
    with_pointwise!(activation, F => backward_columns::<T, F>(x, y, dy, dbias, dw, dw_beta));
}

/// [`outer_bias_activation_backward`] (checked shapes, `cols > 0`) with the activation's type
/// `F`: blocks of whole vectors of columns, then the last partial vector through zero-padded
/// copies of its rows (`dy = 0` there, so `dz = 0`).
#[inline(always)]
fn backward_columns<T: Element, F: Pointwise>(
    x: &[T],
    y: &[T],
    dy: &[T],
    dbias: &mut [T],
    dw: &mut [T],
    beta: T,
) {
    align_frame();
    let (cols, lanes) = (dbias.len(), T::Vector::LANES);
    let whole = cols / lanes;
    let mut first = 0;
    while first < whole {
        let count = (whole - first).min(BACKWARD_VECTORS);
        let c0 = first * lanes;
        let load = |v: &[T], r: usize, b: usize| {
            T::Vector::from_slice(&v[r * cols + c0 + b * lanes..r * cols + c0 + (b + 1) * lanes])
        };
        let (db, dw) = (&mut dbias[c0..], &mut dw[c0..]);
        match count {
            1 => backward_block::<T, F, 1>(x, |r, b| (load(y, r, b), load(dy, r, b)), db, dw, beta),
            2 => backward_block::<T, F, 2>(x, |r, b| (load(y, r, b), load(dy, r, b)), db, dw, beta),
            3 => backward_block::<T, F, 3>(x, |r, b| (load(y, r, b), load(dy, r, b)), db, dw, beta),
            _ => backward_block::<T, F, 4>(x, |r, b| (load(y, r, b), load(dy, r, b)), db, dw, beta),
        }
        first += count;
    }
    let body = whole * lanes;
    let tail = cols - body;
    if tail > 0 {
        let padded = |v: &[T], r: usize| {
            let mut row = [T::ZERO; MAX_LANES];
            row[..tail].copy_from_slice(&v[r * cols + body..(r + 1) * cols]);
            T::Vector::from_slice(&row)
        };
        let (mut db, mut dwp) = ([T::ZERO; MAX_LANES], [T::ZERO; MAX_LANES]);
        db[..tail].copy_from_slice(&dbias[body..]);
        dwp[..tail].copy_from_slice(&dw[body..]);
        backward_block::<T, F, 1>(
            x,
            |r, _| (padded(y, r), padded(dy, r)),
            &mut db,
            &mut dwp,
            beta,
        );
        dbias[body..].copy_from_slice(&db[..tail]);
        dw[body..].copy_from_slice(&dwp[..tail]);
    }
}

/// `K` vectors of columns (`rows(r, b)`: row `r`'s `y` and `dy` there) down all the rows; `db`
/// and `dw` hold at least `K` vectors.
#[inline(always)]
fn backward_block<T: Element, F: Pointwise, const K: usize>(
    x: &[T],
    rows: impl Fn(usize, usize) -> (T::Vector, T::Vector),
    db: &mut [T],
    dw: &mut [T],
    beta: T,
) {
    // The thin product's chains: the bits of the GEMM's weight gradient.
    const CHAINS: usize = crate::gemm::THIN_CHAINS;
    let lanes = T::Vector::LANES;
    let zero = T::Vector::splat(T::ZERO);
    let mut bias_sums: [T::Vector; K] =
        core::array::from_fn(|b| T::Vector::from_slice(&db[b * lanes..(b + 1) * lanes]));
    let mut chains = [[zero; K]; CHAINS];
    let row = |r: usize, chain: &mut [T::Vector; K], bias_sums: &mut [T::Vector; K]| {
        // Compiled apart from this function: a frame of its own to align.
        align_frame();
        let coef = T::Vector::splat(x[r]);
        for b in 0..K {
            let (yv, dyv) = rows(r, b);
            let d = dyv * F::derivative_from_output(yv);
            bias_sums[b] = bias_sums[b] + d;
            chain[b] = coef.mul_add(d, chain[b]);
        }
    };
    let n = x.len();
    let mut p = 0;
    while p + CHAINS <= n {
        for (q, chain) in chains.iter_mut().enumerate() {
            row(p + q, chain, &mut bias_sums);
        }
        p += CHAINS;
    }
    while p < n {
        row(p, &mut chains[0], &mut bias_sums);
        p += 1;
    }
    for b in 0..K {
        let at = b * lanes..(b + 1) * lanes;
        bias_sums[b].write_to(&mut db[at.clone()]);
        let start = if beta == T::ZERO {
            zero
        } else {
            T::Vector::splat(beta) * T::Vector::from_slice(&dw[at.clone()])
        };
        let sum = (chains[0][b] + chains[1][b]) + (chains[2][b] + chains[3][b]);
        (start + sum).write_to(&mut dw[at]);
    }
}
