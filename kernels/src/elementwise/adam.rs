//! Adam's per-element moment update and rescaling, as one SIMD pass.

use crate::frame::align_frame;
use crate::simd::MAX_LANES;
use crate::{Element, SimdVector};

/// The scalars of one member's Adam step (`bc₁ = 1 − β₁ᵗ`, `bc₂ = 1 − β₂ᵗ`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamCoefficients<T> {
    /// `β₁`.
    pub b1: T,
    /// `β₂`.
    pub b2: T,
    /// `1 − β₁`.
    pub one_minus_b1: T,
    /// `1 − β₂`.
    pub one_minus_b2: T,
    /// `1 − β₁ᵗ`.
    pub bias_correction1: T,
    /// `1 − β₂ᵗ`.
    pub bias_correction2: T,
    /// `ε` added outside the square root.
    pub eps: T,
    /// `ε` added inside the square root.
    pub eps_root: T,
}

/// `a/b` for the pass's constant `b`. With `RECIPROCAL`, from `b`'s correctly rounded reciprocal
/// `inv_b` by Markstein's correction: `q = a·(1/b)` is within an ulp of `a/b`, the residual
/// `a − b·q` is exact in one fused multiply-add, and `q + residual·(1/b)` is the correctly
/// rounded quotient — the division's bits, from three pipelined operations instead of one
/// divider operation (the divider bounds this pass). Exact as long as the residual does not
/// underflow: checked against the division for every `bc₁`, `bc₂` of the first 60,000 steps
/// (β = 0.9, 0.95, 0.99, 0.999) on 1.3·10⁸ f64 values down to 2⁻⁹⁶⁰ and 5.9·10⁷ f32 values down
/// to 2⁻¹⁰⁰; below that a moment estimate may move by one ulp (where `√v̂ ≪ ε` it cannot
/// change the update). Signed zeros keep their sign, as in the division.
#[inline(always)]
fn divide_by<V: SimdVector, const RECIPROCAL: bool>(a: V, b: V, inv_b: V) -> V {
    if RECIPROCAL {
        let q = a * inv_b;
        // The negated residual `q·b − a` and `q − (−residual)·(1/b)`: each operation the exact
        // negation of `a − q·b` and `residual·(1/b) + q`'s (round to nearest is symmetric), so
        // the same bits — but for `a = −0` (`q = −0`) the sum is `−0 + −0 = −0`, the division's
        // sign, where `residual·(1/b) + q` gave `+0 + −0 = +0` and needed a copysign after it
        // (three operations; the pass is bound by its operations' count).
        q.mul_sub(b, a).mul_neg_add(inv_b, q)
    } else {
        a / b
    }
}

/// One vector of the step. `M_UNBIASED`: `bc₁` is exactly 1 (from step ≈350 on with
/// `β₁ = 0.9`), so `m/bc₁ = m` bitwise and the division is skipped. `RECIPROCAL`: divide by
/// the bias corrections through their reciprocals ([`divide_by`]).
#[inline(always)]
fn step<V: SimdVector, const M_UNBIASED: bool, const RECIPROCAL: bool>(
    g: V,
    m: V,
    v: V,
    c: &AdamCoefficients<V>,
    [inv_bc1, inv_bc2]: [V; 2],
) -> (V, V, V) {
    let m = c.one_minus_b1 * g + c.b1 * m;
    let v = c.one_minus_b2 * (g * g) + c.b2 * v;
    let m_hat = if M_UNBIASED {
        m
    } else {
        divide_by::<V, RECIPROCAL>(m, c.bias_correction1, inv_bc1)
    };
    let v_hat = divide_by::<V, RECIPROCAL>(v, c.bias_correction2, inv_bc2);
    let u = m_hat / ((v_hat + c.eps_root).sqrt() + c.eps);
    (u, m, v)
}

/// In place over one member's block: `m ← (1−β₁)·g + β₁·m`, `v ← (1−β₂)·g² + β₂·v`,
/// `g ← (m/bc₁) / (√(v/bc₂ + ε_root) + ε)` — optax's `scale_by_adam`, operation for operation
/// (no fused multiply-adds in the formula), so the result is bitwise [`naive::adam_update`]'s:
/// with hardware FMA the two divisions by the bias corrections go through their reciprocals
/// and a correction step that gives the division's bits (Markstein's; f64 Adam over 16 × 1,153
/// parameters 30.5 → 25.0 µs, f32 12.5 → 11.2 µs; without the copysign that step had, Zen 3,
/// AVX2, with the parameters applied: f64 1.45–1.62 → 1.19–1.25 ns per parameter in the first
/// steps, 1.19–1.25 → 1.13–1.19 once `bc₁ = 1`; f32 0.67–0.68 → 0.51–0.53 and 0.50–0.53 →
/// 0.46 — a bare loop of the square root and the division alone runs 1.10 ns per f64 value).
/// Once `bc₁` has rounded to exactly 1 the division by it is skipped (it would not change a
/// bit).
///
/// # Panics
/// If the three slices differ in length.
pub fn adam_update<T: Element>(g: &mut [T], m: &mut [T], v: &mut [T], c: AdamCoefficients<T>) {
    adam_dispatch::<T, false>(g, m, v, c, &mut [], T::ZERO);
}

/// [`adam_update`] and then `params += factor·g` (the learning-rate scale and `apply_updates`)
/// in the same pass, the product rounded before the sum: the bits of `adam_update`,
/// [`scale`](super::scale) and [`add_assign`](super::add_assign) one after the other, with one
/// pass over the values instead of three. `g` is left as it was read (the update itself is never
/// stored).
///
/// # Panics
/// If the four slices differ in length.
pub fn adam_update_apply<T: Element>(
    g: &mut [T],
    m: &mut [T],
    v: &mut [T],
    params: &mut [T],
    c: AdamCoefficients<T>,
    factor: T,
) {
    assert_eq!(
        params.len(),
        g.len(),
        "adam_update_apply: params and g have {} and {} elements",
        params.len(),
        g.len()
    );
    adam_dispatch::<T, true>(g, m, v, c, params, factor);
}

fn adam_dispatch<T: Element, const APPLY: bool>(
    g: &mut [T],
    m: &mut [T],
    v: &mut [T],
    c: AdamCoefficients<T>,
    params: &mut [T],
    factor: T,
) {
    match (c.bias_correction1 == T::ONE, DIVIDE_BY_RECIPROCAL) {
        (true, true) => adam_pass::<T, true, true, APPLY>(g, m, v, c, params, factor),
        (true, false) => adam_pass::<T, true, false, APPLY>(g, m, v, c, params, factor),
        (false, true) => adam_pass::<T, false, true, APPLY>(g, m, v, c, params, factor),
        (false, false) => adam_pass::<T, false, false, APPLY>(g, m, v, c, params, factor),
    }
}

/// Whether [`divide_by`] goes through the reciprocal: only with hardware FMA (without it the
/// residual is not exact).
const DIVIDE_BY_RECIPROCAL: bool = cfg!(target_feature = "fma");

/// One pass of [`adam_update`] or, with `APPLY`, of [`adam_update_apply`] (`params` and
/// `factor` are only read then).
fn adam_pass<T: Element, const M_UNBIASED: bool, const RECIPROCAL: bool, const APPLY: bool>(
    g: &mut [T],
    m: &mut [T],
    v: &mut [T],
    c: AdamCoefficients<T>,
    params: &mut [T],
    factor: T,
) {
    align_frame();
    assert!(
        g.len() == m.len() && g.len() == v.len(),
        "adam_update: g, m, v have {}, {}, {} elements",
        g.len(),
        m.len(),
        v.len()
    );
    let s = T::Vector::splat;
    let cv = AdamCoefficients {
        b1: s(c.b1),
        b2: s(c.b2),
        one_minus_b1: s(c.one_minus_b1),
        one_minus_b2: s(c.one_minus_b2),
        bias_correction1: s(c.bias_correction1),
        bias_correction2: s(c.bias_correction2),
        eps: s(c.eps),
        eps_root: s(c.eps_root),
    };
    let inverse = [
        s(T::ONE / c.bias_correction1),
        s(T::ONE / c.bias_correction2),
    ];
    let lanes = T::Vector::LANES;
    let body = g.len() - g.len() % lanes;
    let f = s(factor);
    let params = if APPLY {
        &mut params[..g.len()]
    } else {
        params
    };
    for (i, ((gc, mc), vc)) in g[..body]
        .chunks_exact_mut(lanes)
        .zip(m[..body].chunks_exact_mut(lanes))
        .zip(v[..body].chunks_exact_mut(lanes))
        .enumerate()
    {
        let (u, m2, v2) = step::<_, M_UNBIASED, RECIPROCAL>(
            T::Vector::from_slice(gc),
            T::Vector::from_slice(mc),
            T::Vector::from_slice(vc),
            &cv,
            inverse,
        );
        if APPLY {
            let pc = &mut params[i * lanes..(i + 1) * lanes];
            (T::Vector::from_slice(pc) + f * u).write_to(pc);
        } else {
            u.write_to(gc);
        }
        m2.write_to(mc);
        v2.write_to(vc);
    }
    let tail = g.len() - body;
    if tail > 0 {
        let mut buf = [[T::ZERO; MAX_LANES]; 3];
        buf[0][..tail].copy_from_slice(&g[body..]);
        buf[1][..tail].copy_from_slice(&m[body..]);
        buf[2][..tail].copy_from_slice(&v[body..]);
        let (u, m2, v2) = step::<_, M_UNBIASED, RECIPROCAL>(
            T::Vector::from_slice(&buf[0]),
            T::Vector::from_slice(&buf[1]),
            T::Vector::from_slice(&buf[2]),
            &cv,
            inverse,
        );
        m2.write_to(&mut buf[1]);
        v2.write_to(&mut buf[2]);
        m[body..].copy_from_slice(&buf[1][..tail]);
        v[body..].copy_from_slice(&buf[2][..tail]);
        if APPLY {
            buf[0][..tail].copy_from_slice(&params[body..]);
            (T::Vector::from_slice(&buf[0]) + f * u).write_to(&mut buf[0]);
            params[body..].copy_from_slice(&buf[0][..tail]);
        } else {
            u.write_to(&mut buf[0]);
            g[body..].copy_from_slice(&buf[0][..tail]);
        }
    }
}

/// The scalar reference.
pub mod naive {
    use super::AdamCoefficients;
    use crate::Element;

    /// Reference for [`super::adam_update`].
    pub fn adam_update<T: Element>(g: &mut [T], m: &mut [T], v: &mut [T], c: AdamCoefficients<T>) {
        for ((g, m), v) in g.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()) {
            *m = c.one_minus_b1 * *g + c.b1 * *m;
            *v = c.one_minus_b2 * (*g * *g) + c.b2 * *v;
            *g =
                (*m / c.bias_correction1) / ((*v / c.bias_correction2 + c.eps_root).sqrt() + c.eps);
        }
    }
}
