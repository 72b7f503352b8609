//! Branch-free vector `tanh`, the hottest transcendental of a tanh MLP.
//!
//! `wide`'s own `tanh` goes through `exp_m1` and a division with data-dependent branches; these
//! are straight-line and measured ≈3× faster on the seed's activations, with the accuracy stated
//! in [`crate::elementwise`].

use crate::simd::{F32Vector, F64Vector, exp_m1_f64};

/// `f32`: Eigen's rational approximation `x·P(x²)/Q(x²)` (degree 13/6) on `x` clamped to
/// ±7.9988 (beyond which `tanh` rounds to ±1), and `x` itself for `|x| < 4e-4`.
#[inline(always)]
pub(crate) fn tanh_f32(x: F32Vector) -> F32Vector {
    let s = F32Vector::splat;
    let clamped = x.max(s(-7.998_811_7)).min(s(7.998_811_7));
    let x2 = clamped * clamped;
    let p = x2.mul_add(s(-2.760_768_5e-16), s(2.000_188e-13));
    let p = p.mul_add(x2, s(-8.604_672e-11));
    let p = p.mul_add(x2, s(5.122_297e-8));
    let p = p.mul_add(x2, s(1.485_722_4e-5));
    let p = p.mul_add(x2, s(6.372_619_3e-4));
    let p = p.mul_add(x2, s(4.893_524_6e-3));
    let p = p * clamped;
    let q = x2.mul_add(s(1.198_258_4e-6), s(1.185_347e-4));
    let q = q.mul_add(x2, s(2.268_434_6e-3));
    let q = q.mul_add(x2, s(4.893_525e-3));
    let r = p / q;
    // Tiny inputs return x exactly (keeps −0 and avoids 0/0 on nothing); NaN stays NaN because
    // NaN fails the comparison and max/min propagate it into `r` only through x itself.
    let tiny = x.abs().simd_lt(s(4e-4));
    let r = tiny.select(x, r);
    x.is_nan().select(x, r)
}

/// `f64`: `tanh|x| = −m/(m + 2)` with `m = e^{−2|x|} − 1` from [`exp_m1_f64`] (accurate near
/// 0, so one formula serves every `x`; `|x|` is clamped to 22, beyond which `tanh` rounds to
/// ±1), then the sign of `x`.
#[inline(always)]
pub(crate) fn tanh_f64(x: F64Vector) -> F64Vector {
    let s = F64Vector::splat;
    let m = exp_m1_f64(s(-2.0) * x.abs().min(s(22.0)));
    let r = (-m / (m + s(2.0))).copysign(x);
    x.is_nan().select(x, r)
}
