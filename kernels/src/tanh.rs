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
    // With 256-bit vectors, the rational of `|x|` with `x`'s sign put on the numerator: every
    // operation the exact negation of the one on `x` itself (round to nearest is symmetric), so
    // the same bits as clamping `x` to ±7.9988 — with one `minps` and three `and`/`xor`, which
    // Intel cores also run on the port without an FMA unit, in place of `maxps` and `minps`
    // (x86-64-v3 build on an Intel Xeon, three alternated runs: 3.78–4.03 → 4.12–4.24 values
    // per ns). With AVX-512 that port has an FMA unit too, and the two clamps are faster
    // (4.96–5.10 against 5.18–5.41).
    const SIGN_APART: bool = !cfg!(target_feature = "avx512f");
    let clamped = if SIGN_APART {
        s(7.998_811_7).fast_min(x & s(f32::from_bits(0x7FFF_FFFF)))
    } else {
        s(7.998_811_7).fast_min(s(-7.998_811_7).fast_max(x))
    };
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
    let p = if SIGN_APART { p ^ (x & s(-0.0)) } else { p };
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
/// `y = n·ln2 + r`, `|r| ≤ ln2/2`, Cephes' rational `e^r = (Q + rP)/(Q − rP)` (`P`, `Q` of
/// degree 2 and 3 in `r²`) gives `m = e^y − 1 = ((2ⁿ − 1)·Q + (2ⁿ + 1)·rP)/(Q − rP)` — exact
/// cancellation-free near 0, where `2ⁿ − 1 = 0` — and `tanh|x| = −m/(m + 2)` folds both
/// fractions into one division, with the sign of `x`. About 30 % fewer vector operations than
/// `exp_m1` and a division.
///
/// Its throughput is bound by the operations' count, not by the chain's latency nor by the
/// division alone (Zen 3, AVX2, two vectors at a time: without the division 1.05 values/ns
/// against 0.89, without the final copysign's three operations 1.07). `−2|x|` as an addition
/// and the sign applied by `and` + `xor` before the division: 0.89 → 1.00 values/ns, the same
/// bits for every input but a NaN (whose sign bit may differ; it is still NaN) — checked on
/// 4·10⁶ values (±0, ±∞, subnormals, ±22, random bit patterns and `[−25, 25]`).
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
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    // Adding 1.5·2⁵² rounds to an integer; the extra 1023 leaves the biased exponent `n + 1023`
    // in the low mantissa bits, so one shift makes `2ⁿ`.
    const SHIFTER: f64 = 6_755_399_441_055_744.0 + 1023.0;
    const P: [f64; 3] = [1.261_771_930_748_105_9e-4, 3.029_944_077_074_419_6e-2, 1.0];
    const Q: [f64; 4] = [
        3.001_985_051_386_644_5e-6,
        2.524_483_403_496_841_7e-3,
        2.272_655_482_081_550_3e-1,
        2.0,
    ];
    let s = F64Vector::splat;
    let sign = s(-0.0);
    // −min(|x|, 22) as max(−22, −|x|), `−|x|` being `x` with its sign bit set (`neg_abs`);
    // `maxpd` returns its second operand when either is NaN, so a NaN `x` flows through every
    // step below into the quotient (wide's NaN-aware `max` would turn it into −22). `y = t + t`
    // is `−2|x|` exactly, by an addition rather than a multiplication: the multiplying ports are
    // the busy ones (the same for the divisor's `2·denominator` measured slower, though).
    let t = each::<_, N>(|i| s(-22.0).fast_max(x[i].neg_abs()));
    let y = each::<_, N>(|i| t[i] + t[i]);
    let shifted = each::<_, N>(|i| y[i].mul_add(s(core::f64::consts::LOG2_E), s(SHIFTER)));
    let n = each::<_, N>(|i| shifted[i] - s(SHIFTER));
    let r = each::<_, N>(|i| n[i].mul_add(s(-LN2_HI), y[i]));
    let r = each::<_, N>(|i| n[i].mul_add(s(-LN2_LO), r[i]));
    let two_n = each::<_, N>(|i| {
        let bits: F64Bits = bytemuck::cast(shifted[i]);
        bytemuck::cast::<F64Bits, F64Vector>(bits << 52)
    });
    let r2 = each::<_, N>(|i| r[i] * r[i]);
    let rp = each::<_, N>(|i| r2[i].mul_add(s(P[0]), s(P[1])));
    let rp = each::<_, N>(|i| rp[i].mul_add(r2[i], s(P[2])) * r[i]);
    let q = each::<_, N>(|i| r2[i].mul_add(s(Q[0]), s(Q[1])));
    let q = each::<_, N>(|i| q[i].mul_add(r2[i], s(Q[2])));
    let q = each::<_, N>(|i| q[i].mul_add(r2[i], s(Q[3])));
    // `magnitude = −numerator ≥ 0` with the numerator of `m` above, each operation the exact
    // negation of the numerator's (round to nearest is symmetric), except at x = ±0, where it
    // is +0 as the numerator is.
    let magnitude =
        each::<_, N>(|i| (s(1.0) - two_n[i]).mul_add(q[i], (s(-1.0) - two_n[i]) * rp[i]));
    let denominator = each::<_, N>(|i| q[i] - rp[i]);
    // tanh|x| = −m/(m + 2) = magnitude/(2·denominator − magnitude) ≥ 0, and the sign of x goes
    // onto the magnitude before the division (one `and`, one `xor`: a copysign afterwards took
    // three operations); at x = ±0 the quotient is +0/4 with x's sign, ±0.
    each::<_, N>(|i| {
        let signed = magnitude[i] ^ (x[i] & sign);
        signed / s(2.0).mul_add(denominator[i], -magnitude[i])
    })
}

/// `[f(0), …, f(N − 1)]`: one step of the interleaved functions above, for every vector.
#[inline(always)]
fn each<V, const N: usize>(f: impl FnMut(usize) -> V) -> [V; N] {
    core::array::from_fn(f)
}
