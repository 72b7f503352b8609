//! Branch-free f64 `exp` over the whole range, for the f64 vector of this build.
//!
//! `wide`'s own f64 `exp` evaluates its special cases side by side; this one is straight-line
//! (specials patched in with selects at the end): on the 18,448 values of a VI guide
//! `exp` 26.3 → 17.0 µs, `sigmoid` 32.8 → 21.1 µs, `softplus` 57.5 → 49.7 µs (divan medians,
//! `cargo bench -p flock-kernels --bench kernels -- guide`). Accuracy (asserted in
//! `tests/accuracy.rs`): 1.9 ulp. A fdlibm-style `ln` written the same way was no faster than
//! `wide`'s (its `ln_1p` 26.8 µs against 22.1), so `ln` and `ln_1p` stay `wide`'s.

use crate::simd::{F64Vector, INV_FACTORIAL, estrin_13, pow2_f64, reduce_ln2};

/// `e^y` for every `y`: [`exp_f64`](crate::exp_f64)'s reduction and polynomial, with `2ⁿ`
/// applied as `2^⌊n/2⌋·2^⌈n/2⌉` so that results down in the subnormal range and up to
/// `f64::MAX` are reached; `+∞` above 709.78, `0` below −745.13, NaN stays NaN.
#[inline(always)]
pub(crate) fn exp_any_f64(y: F64Vector) -> F64Vector {
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
