//! Branch-free vector `tanh`, the hottest transcendental of a tanh MLP.
//!
//! `wide`'s own `tanh` goes through `exp_m1` and a division with data-dependent branches; these
//! are straight-line and measured ≈3× faster on the seed's activations, with the accuracy stated
//! in [`crate::elementwise`].

use crate::simd::{F32Vector, F64Vector, pow2_f64};

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

/// `f64`: Cephes' `tanh`: `x + x·z·P(z)/Q(z)` with `z = x²` for `|x| < 0.625`, else
/// `sign(x)·(1 − 2/(e^{2|x|} + 1))`. Both branches share one division (numerator and denominator
/// are selected first), and `e^{2|x|}` is a branch-free exponential on `[1.25, 44]` (beyond
/// `|x| = 22`, `tanh` rounds to ±1).
#[inline(always)]
pub(crate) fn tanh_f64(x: F64Vector) -> F64Vector {
    let s = F64Vector::splat;
    let a = x.abs();
    let is_small = a.simd_lt(s(0.625));
    let e = exp_0_to_44(s(2.0) * a.min(s(22.0)));
    let z = x * x;
    let p = z.mul_add(s(-9.643_991_794_250_523e-1), s(-9.928_772_310_019_186e1));
    let p = p.mul_add(z, s(-1.614_687_684_417_084_5e3));
    let q = z + s(1.128_116_784_916_329_3e2);
    let q = q.mul_add(z, s(2.235_488_390_601_004_5e3));
    let q = q.mul_add(z, s(4.844_063_053_251_255e3));
    let ratio = is_small.select(x * z * p, s(2.0)) / is_small.select(q, e + s(1.0));
    let r = is_small.select(x + ratio, (s(1.0) - ratio).copysign(x));
    x.is_nan().select(x, r)
}

/// `1/i!` for `i = 0..=13`.
const INV_FACTORIAL: [f64; 14] = [
    1.0,
    1.0,
    0.5,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5_040.0,
    1.0 / 40_320.0,
    1.0 / 362_880.0,
    1.0 / 3_628_800.0,
    1.0 / 39_916_800.0,
    1.0 / 479_001_600.0,
    1.0 / 6_227_020_800.0,
];

/// `e^y` for `y ∈ [0, 44]` without branches: `y = n·ln2 + r` (Cody–Waite split), `e^r` by a
/// degree-13 Taylor polynomial (|r| ≤ ln2/2, truncation < 2e-17), times `2^n` built from bits.
#[inline(always)]
fn exp_0_to_44(y: F64Vector) -> F64Vector {
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    let s = F64Vector::splat;
    // Round to nearest by adding and removing 1.5·2⁵² (exact for |y·log₂e| < 2⁵¹; cheaper than a
    // general round).
    const SHIFTER: f64 = 6_755_399_441_055_744.0;
    let n = y.mul_add(s(core::f64::consts::LOG2_E), s(SHIFTER)) - s(SHIFTER);
    let r = n.mul_add(s(-LN2_HI), y);
    let r = n.mul_add(s(-LN2_LO), r);
    // Σ rⁱ/i! for i = 0..=13 by Estrin's scheme: four dependent FMA levels instead of thirteen,
    // so consecutive vectors overlap in the pipeline.
    let c = |i: usize| s(INV_FACTORIAL[i]);
    let r2 = r * r;
    let r4 = r2 * r2;
    let r8 = r4 * r4;
    let a: [F64Vector; 7] = core::array::from_fn(|i| r.mul_add(c(2 * i + 1), c(2 * i)));
    let b0 = r2.mul_add(a[1], a[0]);
    let b1 = r2.mul_add(a[3], a[2]);
    let b2 = r2.mul_add(a[5], a[4]);
    let b3 = a[6];
    let c0 = r4.mul_add(b1, b0);
    let c1 = r4.mul_add(b3, b2);
    let poly = r8.mul_add(c1, c0);
    poly * pow2_f64(n)
}
