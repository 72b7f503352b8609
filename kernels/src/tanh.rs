//! Branch-free vector `tanh`, the hottest transcendental of a tanh MLP.
//!
//! `wide`'s own `tanh` goes through `exp_m1` and a division with data-dependent branches; these
//! are straight-line and measured ≈3× faster on the seed's activations, with the accuracy stated
//! in [`crate::elementwise`].

use crate::SimdVector;
use crate::simd::{F32Vector, F64Bits, F64Vector};

/// `f32`: Eigen's rational approximation `x·P(x²)/Q(x²)` (degree 13/6) on `x` clamped to
/// ±7.9988 (beyond which `tanh` rounds to ±1), with both polynomials divided by Eigen's `P(0)` so
/// that `P(0) = Q(0) = 1`: tiny and subnormal `x` then come out as `x` itself (`x·1/1`) without
/// the select Eigen spends on `|x| < 4e-4` (where its `x·P(0)` fell into the subnormals), and
/// ±0 and NaN pass through. 2.5 ulp at most (Eigen's coefficients: 2.6); 40,960 values 10.2 →
/// 9.5 µs.
#[inline(always)]
pub(crate) fn tanh_f32(x: F32Vector) -> F32Vector {
    let s = F32Vector::splat;
    // `maxps`/`minps` return their second operand when either is NaN, so a NaN `x` stays NaN
    // through the clamp and the rational (wide's NaN-aware `max`/`min` would clamp it).
    //
    // Two clamps in every build. The AVX2 build once clamped `|x|` instead and put `x`'s sign
    // on the numerator (the same bits: one `minps` and three `and`/`xor`, which Intel cores also
    // run on the port without an FMA unit): on an Intel Xeon's x86-64-v3 build that ran 3.78–4.03
    // → 4.12–4.24 values per ns, but on a Zen 3 (native AVX2) it was the slower form by far — the
    // `kernels` bench's `tanh_seed` f32 (40,960 values), eight alternated pairs, 16.5–20.3 µs
    // against 12.6–15.3 with the two clamps, `bias_tanh_seed` f32 24.2–26.4 against 16.5–20.1
    // (six pairs). The AVX2 build runs on both kinds of core: the Zen 3's fifth outweighs the
    // Xeon's 5–9 %. With AVX-512 the two clamps were the faster form on the Xeon too.
    let clamped = s(7.998_811_7).fast_min(s(-7.998_811_7).fast_max(x));
    let x2 = clamped * clamped;
    let p = x2.mul_add(s(-5.641_677_2e-14), s(4.087_418e-11));
    let p = p.mul_add(x2, s(-1.758_379_2e-8));
    let p = p.mul_add(x2, s(1.046_75e-5));
    let p = p.mul_add(x2, s(3.036_098_8e-3));
    let p = p.mul_add(x2, s(1.302_255_5e-1));
    let p = p.mul_add(x2, s(1.0));
    let p = p * clamped;
    let q = x2.mul_add(s(2.448_661_3e-4), s(2.422_276_5e-2));
    let q = q.mul_add(x2, s(4.635_584e-1));
    let q = q.mul_add(x2, s(1.0));
    p / q
}

/// [`tanh_f32`] of two vectors, one after the other: its chain is short enough for the core to
/// overlap them, and computing the two step by step (as [`tanh_f64_pair`] does) was slower
/// (Zen 3, AVX2: 3.45 → 3.25 values/ns).
#[inline(always)]
pub(crate) fn tanh_f32_pair(a: F32Vector, b: F32Vector) -> (F32Vector, F32Vector) {
    (tanh_f32(a), tanh_f32(b))
}

/// `f64`: with `y = −2|x|` (`|x|` clamped to 22, beyond which `tanh` rounds to ±1) split as
/// `y = n·ln2 + r`, `|r| ≤ ln2/2`, Cephes' rational `e^r = (Q + p)/(Q − p)` (`p = r·P(r²)`,
/// `P`, `Q` of degree 2 and 3 in `r²`) and `c = 1 − 2ⁿ`, `S = Q + p`:
///
/// `tanh|x| = (1 − e^y)/(1 + e^y) = (c·S − 2p) / (2Q − c·S)`,
///
/// one division, with the sign of `x` put on the numerator. Where `n = 0` (`|x| < 0.17`) `c` is
/// exactly 0 and the numerator exactly `−2p`, so there is no cancellation near 0.
///
/// Its throughput is bound by the count of operations on the ports with an FMA unit (the
/// division's own rate is higher), so the arithmetic is arranged to spend as few as it can:
/// - `t = −|x|` is used where `y = 2t` is meant, every constant it meets scaled by a power of
///   two (`h = r/2`, `h² = r²/4`, the Horner coefficients by powers of 4): each operation
///   rounds the real number it rounded on `y` times a power of two, so this alone changes no
///   bit and saves the doubling;
/// - `r` comes from one fused multiply-add with `ln2` rounded to `f64` (not Cody–Waite's two):
///   the error it leaves, `n·2.3·10⁻¹⁷` in `r`, moves `tanh` by at most ≈ 0.25 ulp where
///   `n = −1` and less beyond, where `e^y` shrinks as `2ⁿ`;
/// - the numerator and divisor share `c·S` (`c/2` and `2S`, `2Q` from scaled coefficients),
///   where computing `m = e^y − 1` first and `−m/(m + 2)` took three operations more.
///
/// Intel Xeon, the `kernels` bench's `tanh_seed` f64 (40,960 values), eight alternated pairs,
/// fastest of 100 samples, median of the pairs' ratios: x86-64-v3 build, the first step alone
/// 0.95 of before, all three 0.82 (45.0 → 36.9 µs); AVX-512 build 0.86. The bits changed with
/// the second and third: worst error on the accuracy test's grid 2.2 ulp (2.3 before), 2.8 in
/// the SSE2 build (3.0); on 3·10⁵ random values against a 120-bit reference 2.47 ulp (2.27),
/// rms 0.45 (0.44).
/// NaN in, NaN out; ±0 → ±0; ±∞ → ±1.
#[inline(always)]
pub(crate) fn tanh_f64(x: F64Vector) -> F64Vector {
    tanh_f64_lanes([x])[0]
}

/// [`tanh_f64`] of two vectors, their steps interleaved (bitwise the same results): one
/// vector's chain of dependent operations is longer than the core's scheduler can overlap with
/// the next vector's, so one after the other they ran at the chain's latency (Zen 3, AVX2:
/// 0.72 → 0.95 values/ns; four at a time: 0.94).
#[inline(always)]
pub(crate) fn tanh_f64_pair(a: F64Vector, b: F64Vector) -> (F64Vector, F64Vector) {
    let [a, b] = tanh_f64_lanes([a, b]);
    (a, b)
}

/// [`tanh_f64`] of `N` vectors, each step done for all `N` before the next.
#[inline(always)]
fn tanh_f64_lanes<const N: usize>(x: [F64Vector; N]) -> [F64Vector; N] {
    use core::f64::consts::{LN_2, LOG2_E};
    // Adding 1.5·2⁵² rounds to an integer; the extra 1022 leaves the biased exponent of
    // `2ⁿ⁻¹`, `n + 1022`, in the low mantissa bits, so one shift makes `2ⁿ⁻¹ = 1/2 − c/2`.
    const SHIFTER: f64 = 6_755_399_441_055_744.0 + 1022.0;
    const P: [f64; 3] = [1.261_771_930_748_105_9e-4, 3.029_944_077_074_419_6e-2, 1.0];
    const Q: [f64; 4] = [
        3.001_985_051_386_644_5e-6,
        2.524_483_403_496_841_7e-3,
        2.272_655_482_081_550_3e-1,
        2.0,
    ];
    let s = F64Vector::splat;
    let sign = s(-0.0);
    // t = −min(|x|, 22) as max(−22, −|x|), `−|x|` being `x` with its sign bit set (`neg_abs`);
    // `maxpd` returns its second operand when either is NaN, so a NaN `x` flows through every
    // step below into the quotient (wide's NaN-aware `max` would turn it into −22).
    let t = each::<_, N>(|i| s(-22.0).fast_max(x[i].neg_abs()));
    let shifted = each::<_, N>(|i| t[i].mul_add(s(2.0 * LOG2_E), s(SHIFTER)));
    let n = each::<_, N>(|i| shifted[i] - s(SHIFTER));
    // h = r/2 = t − n·ln2/2.
    let h = each::<_, N>(|i| n[i].mul_add(s(-LN_2 / 2.0), t[i]));
    let half_two_n = each::<_, N>(|i| {
        let bits: F64Bits = bytemuck::cast(shifted[i]);
        bytemuck::cast::<F64Bits, F64Vector>(bits << 52)
    });
    let h2 = each::<_, N>(|i| h[i] * h[i]);
    // −2p = −2r·(P₀r⁴ + P₁r² + P₂) = ((−64P₀·h² − 16P₁)·h² − 4P₂)·h.
    let minus_2p = each::<_, N>(|i| h2[i].mul_add(s(-64.0 * P[0]), s(-16.0 * P[1])));
    let minus_2p = each::<_, N>(|i| minus_2p[i].mul_add(h2[i], s(-4.0 * P[2])) * h[i]);
    // 2Q = ((128Q₀·h² + 32Q₁)·h² + 8Q₂)·h² + 2Q₃.
    let q2 = each::<_, N>(|i| h2[i].mul_add(s(128.0 * Q[0]), s(32.0 * Q[1])));
    let q2 = each::<_, N>(|i| q2[i].mul_add(h2[i], s(8.0 * Q[2])));
    let q2 = each::<_, N>(|i| q2[i].mul_add(h2[i], s(2.0 * Q[3])));
    let s2 = each::<_, N>(|i| q2[i] - minus_2p[i]);
    let half_c = each::<_, N>(|i| s(0.5) - half_two_n[i]);
    // The numerator c·S − 2p ≥ 0 takes x's sign (an `and` and an `xor`) before the division:
    // at x = ±0 it is +0, and the quotient ±0/4.
    each::<_, N>(|i| {
        let magnitude = half_c[i].mul_add(s2[i], minus_2p[i]);
        let signed = magnitude ^ (x[i] & sign);
        signed / half_c[i].mul_neg_add(s2[i], q2[i])
    })
}

/// `[f(0), …, f(N − 1)]`: one step of the interleaved functions above, for every vector.
#[inline(always)]
fn each<V, const N: usize>(f: impl FnMut(usize) -> V) -> [V; N] {
    core::array::from_fn(f)
}
