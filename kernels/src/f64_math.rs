//! Branch-free f64 `exp` and `ln` over the whole range, for the f64 vector of this build.
//!
//! `wide`'s own f64 `exp` evaluates its special cases side by side; this one is straight-line
//! (specials patched in with selects at the end): on the 18,448 values of a VI guide
//! `exp` 26.3 → 17.0 µs, `sigmoid` 32.8 → 21.1 µs, `softplus` 57.5 → 49.7 µs (divan medians,
//! `cargo bench -p flock-kernels --bench kernels -- guide`). Accuracy (asserted in
//! `tests/suite/accuracy.rs`): 1.9 ulp. `ln` is fdlibm's, written the same way, because `wide`'s returns
//! −∞ for subnormal inputs (1.0 ulp); `ln_1p` stays `wide`'s, which was faster than `ln` plus a
//! correction term (22.1 against 26.8 µs). Softplus only needs `ln(1 + u)` for `u ∈ [0, 1]`:
//! [`ln_1p_unit_f64`] is fdlibm's kernel without range reduction or special cases (softplus
//! over the guide 49.2 → 35.9 µs, still 1.9 ulp).

use crate::simd::{F64Bits, F64Vector, INV_FACTORIAL, estrin_13, exp_f64, pow2_f64, reduce_ln2};

/// The inputs for which [`exp_f64`] (one `2ⁿ` scaling, no special cases) is `e^y`: its result
/// is a normal, finite number.
pub(crate) const EXP_NORMAL_F64: (f64, f64) = (-708.0, 709.0);

/// `e^y` for every `y`: [`exp_f64`](crate::exp_f64)'s reduction and polynomial, with `2ⁿ`
/// applied as `2^⌊n/2⌋·2^⌈n/2⌉` so that results down in the subnormal range and up to
/// `f64::MAX` are reached; `+∞` above 709.78, `0` below −745.13, NaN stays NaN.
#[inline(always)]
pub(crate) fn exp_any_f64(y: F64Vector) -> F64Vector {
    let s = F64Vector::splat;
    // Every lane in [−708, 709] (nearly always): the result is normal, so one `2ⁿ` scaling and
    // no clamping or special cases (`exp_f64`) — the same bits as below (scaling by powers of
    // two is exact in the normal range).
    let (lo, hi) = EXP_NORMAL_F64;
    if (y.simd_ge(s(lo)) & y.simd_le(s(hi))).all() {
        exp_f64(y)
    } else {
        exp_extreme_f64(y)
    }
}

/// [`exp_any_f64`] for vectors with a lane outside `[−708, 709]` (or NaN), out of line so the
/// common path stays a short loop body.
#[cold]
#[inline(never)]
fn exp_extreme_f64(y: F64Vector) -> F64Vector {
    let s = F64Vector::splat;
    const OVERFLOW: f64 = 709.782_712_893_384;
    const UNDERFLOW: f64 = -745.133_219_101_941_2;
    let clamped = y.max(s(UNDERFLOW - 1.0)).min(s(OVERFLOW + 1.0));
    let (n, r) = reduce_ln2(clamped);
    let poly = estrin_13(r, |i| s(INV_FACTORIAL[i]));
    let half = (n * s(0.5)).floor();
    let result = poly * pow2_f64(half) * pow2_f64(n - half);
    let result = y.simd_gt(s(OVERFLOW)).select(s(f64::INFINITY), result);
    let result = y.simd_lt(s(UNDERFLOW)).select(s(0.0), result);
    y.is_nan().select(y, result)
}

const LN2_HI: f64 = 6.931_471_803_691_238e-1;
const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
/// fdlibm's minimax coefficients of `R(s²)` in `ln(1 + f)`.
const LG: [f64; 7] = [
    6.666_666_666_666_735e-1,
    3.999_999_999_940_942e-1,
    2.857_142_874_366_239e-1,
    2.222_219_843_214_978_4e-1,
    1.818_357_216_161_805e-1,
    1.531_383_769_920_937_3e-1,
    1.479_819_860_511_658_6e-1,
];

/// `k·ln2 + ln(1 + f)` for `f ∈ [√½ − 1, √2 − 1]` (fdlibm's kernel): `s = f/(2 + f)`,
/// `ln(1 + f) = f − ½f² + s·(½f² + R(s²))`, `ln2` split in two so `k·ln2_hi` is exact.
#[inline(always)]
fn ln_reduced(k: F64Vector, f: F64Vector) -> F64Vector {
    let s = F64Vector::splat;
    let hfsq = s(0.5) * f * f;
    let sv = f / (s(2.0) + f);
    let z = sv * sv;
    let w = z * z;
    let t1 = w * w.mul_add(w.mul_add(s(LG[5]), s(LG[3])), s(LG[1]));
    let t2 = z * w.mul_add(w.mul_add(w.mul_add(s(LG[6]), s(LG[4])), s(LG[2])), s(LG[0]));
    let r = t2 + t1;
    k * s(LN2_HI) - ((hfsq - (sv * (hfsq + r) + k * s(LN2_LO))) - f)
}

/// `ln(1 + u)` for `u ∈ [0, 1]` (NaN stays NaN) — the tail of `softplus`, where
/// `u = e^{−|x|}`. `1 + u ∈ [1, 2]` needs no exponent extraction and no special cases:
/// `u ≤ √2 − 1` is the kernel's `f` itself, larger `u` is `ln 2 + ln(1 + f)` with
/// `f = (u − 1)/2 ∈ (√½ − 1, 0]`, exact in one fused multiply-add (it has `u`'s ulp). No
/// rounding of `1 + u` either, so no correction term.
#[inline(always)]
pub(crate) fn ln_1p_unit_f64(u: F64Vector) -> F64Vector {
    let s = F64Vector::splat;
    let upper = u.simd_gt(s(core::f64::consts::SQRT_2 - 1.0));
    let f = upper.select(u.mul_add(s(0.5), s(-0.5)), u);
    ln_reduced(upper.select(s(1.0), s(0.0)), f)
}

/// `ln x` for every `x` (fdlibm's `__ieee754_log` as straight-line vector code): `x = 2ᵏ·m` with
/// `m ∈ [√½, √2)`, `f = m − 1`, `s = f/(2 + f)`, `ln m = f − ½f² + s·(½f² + R(s²))` with fdlibm's
/// degree-14 minimax `R`. Subnormal inputs are scaled by 2⁵⁴ first (`wide`'s `ln` returns −∞
/// for them); `ln 0 = −∞`, `ln(x < 0)` and `ln NaN` are NaN, `ln ∞ = ∞`.
#[inline(always)]
pub(crate) fn ln_f64(x: F64Vector) -> F64Vector {
    let s = F64Vector::splat;
    // Every lane positive, normal and finite (a scale, a uniform, a density: nearly always):
    // no subnormal scaling and no special values to patch in — the same bits as below, from
    // about a quarter fewer operations.
    if (x.simd_ge(s(f64::MIN_POSITIVE)) & x.simd_lt(s(f64::INFINITY))).all() {
        ln_positive_normal_f64(x)
    } else {
        ln_special_f64(x)
    }
}

/// [`ln_f64`] for lanes that are positive, normal and finite (others unspecified): no subnormal
/// scaling and no special values.
#[inline(always)]
pub(crate) fn ln_positive_normal_f64(x: F64Vector) -> F64Vector {
    ln_normal(x, F64Vector::splat(0.0))
}

/// [`ln_f64`] for vectors with a lane that is zero, subnormal, negative, infinite or NaN, out of
/// line so the common path stays a short loop body.
#[cold]
#[inline(never)]
fn ln_special_f64(x: F64Vector) -> F64Vector {
    let s = F64Vector::splat;
    let subnormal = x.simd_lt(s(f64::MIN_POSITIVE));
    let scaled = subnormal.select(x * s(18_014_398_509_481_984.0), x); // 2⁵⁴
    let result = ln_normal(scaled, subnormal.select(s(54.0), s(0.0)));
    let result = x.simd_eq(s(0.0)).select(s(f64::NEG_INFINITY), result);
    let result = x.simd_eq(s(f64::INFINITY)).select(x, result);
    let result = x.simd_lt(s(0.0)).select(s(f64::NAN), result);
    x.is_nan().select(x, result)
}

/// `ln x − shift·ln 2` for positive normal `x`: `x = 2ᵏ·m` with `m ∈ [√½, √2)` from the bits,
/// then [`ln_reduced`].
#[inline(always)]
fn ln_normal(x: F64Vector, shift: F64Vector) -> F64Vector {
    let s = F64Vector::splat;
    let bits: F64Bits = bytemuck::cast(x);
    // The biased exponent as an f64, exactly: its bits under 2⁵²'s.
    let exponent_bits = (bits >> 52) | F64Bits::splat(0x4330_0000_0000_0000);
    let biased = bytemuck::cast::<F64Bits, F64Vector>(exponent_bits) - s(4_503_599_627_370_496.0);
    let mantissa_bits =
        (bits & F64Bits::splat(0x000f_ffff_ffff_ffff)) | F64Bits::splat(0x3ff0_0000_0000_0000);
    let m = bytemuck::cast::<F64Bits, F64Vector>(mantissa_bits);
    let big = m.simd_gt(s(core::f64::consts::SQRT_2));
    let m = big.select(m * s(0.5), m);
    let k = biased - s(1023.0) + big.select(s(1.0), s(0.0)) - shift;
    ln_reduced(k, m - s(1.0))
}
