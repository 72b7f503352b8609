//! Thin products — one output column (`n = 1`), one output row (`m = 1`) or a rank-1 update
//! (`k = 1`) — as BLAS-1 loops over contiguous vectors.
//!
//! An MLP with one input or one output feature has these shapes (`1→32` and `32→1` layers); the
//! register-tiled microkernel wastes most of its `MR × NR` tile on them. Each loop here keeps one
//! output element's summation order independent of how rows are split between threads, so
//! results stay bitwise identical with and without parallelism.

use crate::frame::align_frame;
use crate::simd::{MAX_LANES, canonical_sum};
use crate::{Element, SimdVector};

/// Vectors of output per register block: 4 (16 accumulators) with AVX-512's 32 registers, 2
/// with 16.
const BLOCK: usize = if cfg!(target_feature = "avx512f") {
    4
} else {
    2
};

/// Partial sums per output vector: `p` is summed in four interleaved chains so that consecutive
/// fused multiply-adds do not wait on each other's latency. The one-input-feature layer's fused
/// backward sums its weight gradient in the same chains, for the same bits.
pub(crate) const CHAINS: usize = 4;

/// The coefficients of a thin product: `α·v[p·stride]` for `p < len`, read without bounds checks
/// (checked once, when made) — captured by value, so the loops keep them in registers. As
/// closures over the operands' slices, [`combine_rows`]' loop reloaded the strides and checked
/// the bounds on every coefficient (about 40 instructions per four steps, for 8 FMAs).
/// Measured with the loads of `src` through a copied pointer too (x86-64-v3 build on an Intel
/// Xeon, `gflops` one thread, two alternated runs, E=16 B=80): f32 `1→32` `dYᵀ·X` 23–25 → 36–37
/// GFLOP/s, `32→1` `dYᵀ·X` 30 → 40–42; f64 12 → 15 and 12–13 → 16–17; the same bits.
#[derive(Clone, Copy)]
struct Coefs<'a, T> {
    v: &'a [T],
    stride: usize,
    alpha: T,
}

impl<'a, T: Element> Coefs<'a, T> {
    /// # Panics
    /// If `v` is too short for `len` coefficients.
    fn new(v: &'a [T], stride: usize, len: usize, alpha: T) -> Coefs<'a, T> {
        assert!(
            len == 0 || (len - 1) * stride < v.len(),
            "thin product: operand too short"
        );
        Coefs { v, stride, alpha }
    }

    /// `α·v[p·stride]` (`p < len`).
    #[inline(always)]
    fn get(self, p: usize) -> T {
        // SAFETY: `p < len`, and `(len − 1)·stride < v.len()` (checked in `new`).
        self.alpha * unsafe { *self.v.get_unchecked(p * self.stride) }
    }
}

/// `start[b] + Σ_p coef(p)·load(p, b)` for `W` vectors: four interleaved partial sums over `p`
/// (`p mod 4`, the last `k mod 4` terms on the first), combined as `start + ((s₀ + s₁) + (s₂ + s₃))`.
#[inline(always)]
fn combine_block<T: Element, const W: usize>(
    k: usize,
    coef: Coefs<'_, T>,
    load: impl Fn(usize, usize) -> T::Vector,
    start: [T::Vector; W],
) -> [T::Vector; W] {
    let zero = T::Vector::splat(T::ZERO);
    let mut sums = [[zero; W]; CHAINS];
    let mut p = 0;
    while p + CHAINS <= k {
        for (q, chain) in sums.iter_mut().enumerate() {
            let c = T::Vector::splat(coef.get(p + q));
            for (b, s) in chain.iter_mut().enumerate() {
                *s = c.mul_add(load(p + q, b), *s);
            }
        }
        p += CHAINS;
    }
    while p < k {
        let c = T::Vector::splat(coef.get(p));
        for (b, s) in sums[0].iter_mut().enumerate() {
            *s = c.mul_add(load(p, b), *s);
        }
        p += 1;
    }
    let mut out = start;
    for (b, o) in out.iter_mut().enumerate() {
        *o = *o + ((sums[0][b] + sums[1][b]) + (sums[2][b] + sums[3][b]));
    }
    out
}

/// `out[j] = β·out[j] + Σ_p coef(p)·src[p·stride + j]` for every `j < out.len()`, summed in
/// registers ([`combine_block`]; β = 0 never reads `out`). Elements past the last whole vector
/// go through the same vector code from zero-padded copies, so an element's bits do not depend
/// on where a row block starts.
///
/// # Panics
/// If `src` is shorter than `(k − 1)·stride + out.len()`.
#[inline(always)]
fn combine_rows<T: Element>(
    out: &mut [T],
    beta: T,
    k: usize,
    coef: Coefs<'_, T>,
    src: &[T],
    stride: usize,
) {
    let n = out.len();
    if k > 0 {
        assert!(
            src.len() >= (k - 1) * stride + n,
            "thin product: operand too short"
        );
    }
    let lanes = T::Vector::LANES;
    let beta_is_zero = beta == T::ZERO;
    let start = |ptr: *const T| {
        if beta_is_zero {
            T::Vector::splat(T::ZERO)
        } else {
            // SAFETY: callers pass a pointer to `lanes` readable values of `out` or a buffer.
            T::Vector::splat(beta) * unsafe { T::Vector::load(ptr) }
        }
    };
    let src_ptr = src.as_ptr();
    // `W` whole vectors at column `j`.
    // SAFETY: `j + W·lanes ≤ n`, and row `p < k` of `src` holds `n` values from `p·stride`
    // (asserted above).
    let whole = |out: &mut [T], j: usize, w: usize| {
        // Compiled apart from this function: a frame of its own to align.
        align_frame();
        macro_rules! run {
            ($w:literal) => {{
                let mut st = [T::Vector::splat(T::ZERO); $w];
                for (b, s) in st.iter_mut().enumerate() {
                    // SAFETY: `j + b·lanes + lanes ≤ n = out.len()` (see above).
                    *s = start(unsafe { out.as_ptr().add(j + b * lanes) });
                }
                let column = src_ptr.wrapping_add(j);
                let r = combine_block::<T, $w>(
                    k,
                    coef,
                    // SAFETY: row `p < k` of `src` holds `n` values from `p·stride`, and
                    // `j + b·lanes + lanes ≤ n`.
                    move |p, b| unsafe { T::Vector::load(column.add(p * stride + b * lanes)) },
                    st,
                );
                for (b, v) in r.iter().enumerate() {
                    // SAFETY: as for the loads of `out`.
                    unsafe { v.store(out.as_mut_ptr().add(j + b * lanes)) };
                }
            }};
        }
        match w {
            1 => run!(1),
            2 => run!(2),
            3 => run!(3),
            _ => run!(4),
        }
    };
    let mut j = 0;
    while j + BLOCK * lanes <= n {
        whole(out, j, BLOCK);
        j += BLOCK * lanes;
    }
    let rest = (n - j) / lanes;
    if rest > 0 {
        whole(out, j, rest);
        j += rest * lanes;
    }
    let tail = n - j;
    if tail > 0 {
        let mut buf = [T::ZERO; MAX_LANES];
        buf[..tail].copy_from_slice(&out[j..]);
        let st = [start(buf.as_ptr())];
        let r = combine_block::<T, 1>(
            k,
            coef,
            |p, _| {
                let mut row = [T::ZERO; MAX_LANES];
                row[..tail].copy_from_slice(&src[p * stride + j..p * stride + n]);
                T::Vector::from_slice(&row)
            },
            st,
        );
        r[0].write_to(&mut buf);
        out[j..].copy_from_slice(&buf[..tail]);
    }
}

/// `C[i, :] = β·C[i, :] + coef(i)·b` for `i < rows` (a rank-one update; β = 0 never reads `C`).
/// Each element is `coef(i)·b[j]`, plus `β·C[i, j]` when β ≠ 0 — the same operations as
/// [`combine_rows`] with `k = 1` — in blocks of up to four of `b`'s vectors held in registers
/// down the rows, so that each row's stores are contiguous and `coef(i)` is computed once per
/// block (one vector at a time down the rows, the strided stores cost 3–4 % of the f64 seed
/// step; Zen 3, AVX2); the last partial vector goes through the same code from padded copies.
#[inline(always)]
fn rank_one_rows<T: Element>(
    c: &mut [T],
    c_rs: usize,
    rows: usize,
    coef: Coefs<'_, T>,
    b: &[T],
    beta: T,
) {
    let n = b.len();
    if rows == 0 || n == 0 {
        return;
    }
    assert!(
        c.len() >= (rows - 1) * c_rs + n,
        "thin product: C block too short"
    );
    let lanes = T::Vector::LANES;
    let beta_is_zero = beta == T::ZERO;
    let vbeta = T::Vector::splat(beta);
    let one = |vb: T::Vector, vcoef: T::Vector, old: T::Vector| {
        let v = vcoef * vb;
        if beta_is_zero { v } else { vbeta * old + v }
    };
    // `W` whole vectors from column `j`, down every row.
    // SAFETY (of the block's loads and stores): `j + W·lanes ≤ n` = `b.len()`, and row
    // `i < rows` of `C` holds `n` values from `i·c_rs` (asserted above).
    let block = |c: &mut [T], j: usize, w: usize| {
        macro_rules! run {
            ($w:literal) => {{
                let vb: [T::Vector; $w] = core::array::from_fn(|t| {
                    // SAFETY: `j + t·lanes + lanes ≤ n` = `b.len()` (see above).
                    unsafe { T::Vector::load(b.as_ptr().add(j + t * lanes)) }
                });
                for i in 0..rows {
                    let vcoef = T::Vector::splat(coef.get(i));
                    for (t, &vb) in vb.iter().enumerate() {
                        // SAFETY: see above.
                        unsafe {
                            let ptr = c.as_mut_ptr().add(i * c_rs + j + t * lanes);
                            let old = if beta_is_zero {
                                vb
                            } else {
                                T::Vector::load(ptr)
                            };
                            one(vb, vcoef, old).store(ptr);
                        }
                    }
                }
            }};
        }
        match w {
            1 => run!(1),
            2 => run!(2),
            3 => run!(3),
            _ => run!(4),
        }
    };
    let whole = n / lanes;
    for first in (0..whole).step_by(4) {
        block(c, first * lanes, (whole - first).min(4));
    }
    let body = whole * lanes;
    let tail = n - body;
    if tail > 0 {
        let mut bb = [T::ZERO; MAX_LANES];
        bb[..tail].copy_from_slice(&b[body..]);
        let vb = T::Vector::from_slice(&bb);
        for i in 0..rows {
            let row = &mut c[i * c_rs + body..i * c_rs + n];
            let mut buf = [T::ZERO; MAX_LANES];
            buf[..tail].copy_from_slice(row);
            let old = T::Vector::from_slice(&buf);
            one(vb, T::Vector::splat(coef.get(i)), old).write_to(&mut buf);
            row.copy_from_slice(&buf[..tail]);
        }
    }
}

/// `C[i] = β·C[i] + α·(A[i, :]·b)` for `i < rows` (`A`'s rows contiguous, `rows_stride` apart):
/// each dot product in the canonical order of [`canonical_sum`] — the operations of
/// [`dot_per_member`](crate::elementwise::dot_per_member), the same bits in every FMA build.
#[allow(clippy::too_many_arguments)]
fn row_dots<T: Element>(
    c: &mut [T],
    c_rs: usize,
    rows: usize,
    a: &[T],
    rows_stride: usize,
    b: &[T],
    alpha: T,
    beta: T,
) {
    let k = b.len();
    if rows == 0 {
        return;
    }
    assert!(
        a.len() >= (rows - 1) * rows_stride + k && c.len() > (rows - 1) * c_rs,
        "thin product: operand too short"
    );
    for i in 0..rows {
        let row = &a[i * rows_stride..i * rows_stride + k];
        let dot = canonical_sum(row, b, T::ZERO, |x, y, acc| x.mul_add(y, acc));
        let out = &mut c[i * c_rs];
        *out = if beta == T::ZERO {
            alpha * dot
        } else {
            alpha.mul_add(dot, beta * *out)
        };
    }
}

/// Strides of one member's operands (`(along op rows, along op cols)`) and its `C` block.
pub(super) struct ThinProblem<'a, T> {
    pub a: &'a [T],
    pub a_strides: (usize, usize),
    pub b: &'a [T],
    pub b_strides: (usize, usize),
    pub rows: usize,
    /// Rows of the whole product (`rows` is this block's share): the plan must not depend on
    /// how rows are split.
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub alpha: T,
    pub beta: T,
}

enum Plan {
    /// `C[i] = α·(A[i, :]·b)`: rows of `A` and the column `b` contiguous.
    RowDots,
    /// `C[:] += α·b[p]·A[:, p]`: columns of `A` and of `C` contiguous.
    ColumnAxpys,
    /// `C[i, :] += α·A[i, 0]·B[0, :]`: the row of `B` contiguous.
    RankOne,
    /// `C[0, :] += α·A[0, p]·B[p, :]`: rows of `B` contiguous.
    RowOfB,
}

impl<T: Element> ThinProblem<'_, T> {
    fn plan(&self, c_rs: usize) -> Option<Plan> {
        let ((a_rs, a_cs), (b_rs, b_cs)) = (self.a_strides, self.b_strides);
        if self.n == 1 && a_cs == 1 && b_rs == 1 {
            Some(Plan::RowDots)
        } else if self.n == 1 && a_rs == 1 && c_rs == 1 {
            Some(Plan::ColumnAxpys)
        } else if self.k == 1 && b_cs == 1 {
            Some(Plan::RankOne)
        } else if self.m == 1 && b_cs == 1 {
            Some(Plan::RowOfB)
        } else {
            None
        }
    }

    /// Computes `C = α·op(A)·op(B) + β·C` for this block if it is thin; returns whether it did.
    pub fn run(&self, c: &mut [T], c_rs: usize) -> bool {
        align_frame();
        let Some(plan) = self.plan(c_rs) else {
            return false;
        };
        let ((a_rs, a_cs), (b_rs, _)) = (self.a_strides, self.b_strides);
        let (rows, n, k, alpha) = (self.rows, self.n, self.k, self.alpha);
        match plan {
            Plan::RowDots => row_dots(c, c_rs, rows, self.a, a_rs, &self.b[..k], alpha, self.beta),
            Plan::ColumnAxpys => combine_rows(
                &mut c[..rows],
                self.beta,
                k,
                Coefs::new(self.b, b_rs, k, alpha),
                self.a,
                a_cs,
            ),
            Plan::RankOne => rank_one_rows(
                c,
                c_rs,
                rows,
                Coefs::new(self.a, a_rs, rows, alpha),
                &self.b[..n],
                self.beta,
            ),
            Plan::RowOfB => combine_rows(
                &mut c[..n],
                self.beta,
                k,
                Coefs::new(self.a, a_cs, k, alpha),
                self.b,
                b_rs,
            ),
        }
        true
    }
}
