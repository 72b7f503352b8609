//! The SIMD vector abstraction every kernel is written against.
//!
//! `wide` fixes its instruction set when the crate is compiled: with AVX-512F the 16×f32 and 8×f64
//! vectors are single `zmm` registers, with AVX the 8×f32 and 4×f64 vectors are `ymm` registers, and
//! the portable x86-64 baseline (SSE2) uses 4×f32 and 2×f64. [`SimdVector`] hides that choice so the
//! kernels are written once; [`SIMD_LEVEL`] names the level that was compiled in.

use core::fmt::Debug;
use core::ops::{Add, Div, Mul, Neg, Sub};

use crate::Element;

/// The instruction set `wide` was compiled for, as a human-readable name.
pub const SIMD_LEVEL: &str = if cfg!(target_feature = "avx512f") {
    if cfg!(target_feature = "fma") {
        "avx512f+fma"
    } else {
        "avx512f"
    }
} else if cfg!(target_feature = "avx2") {
    if cfg!(target_feature = "fma") {
        "avx2+fma"
    } else {
        "avx2"
    }
} else if cfg!(target_feature = "avx") {
    "avx"
} else if cfg!(target_feature = "sse2") {
    "sse2"
} else {
    "scalar"
};

/// A fixed-width vector of [`Element`]s.
///
/// Loads and stores are unaligned; lane-wise math follows `wide` (see the accuracy table in
/// [`crate::elementwise`] for the transcendental functions).
pub trait SimdVector:
    Copy
    + Debug
    + Send
    + Sync
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    /// The lane type.
    type Scalar: Element;
    /// Number of lanes.
    const LANES: usize;

    /// All lanes equal to `x`.
    fn splat(x: Self::Scalar) -> Self;
    /// Reads `LANES` values starting at `ptr`.
    ///
    /// # Safety
    /// `ptr..ptr + LANES` must be readable.
    unsafe fn load(ptr: *const Self::Scalar) -> Self;
    /// Writes `LANES` values starting at `ptr`.
    ///
    /// # Safety
    /// `ptr..ptr + LANES` must be writable.
    unsafe fn store(self, ptr: *mut Self::Scalar);
    /// The first `LANES` values of `values` — the safe [`SimdVector::load`]. Where the length is
    /// known (a `chunks_exact(LANES)` chunk, a fixed buffer) the check compiles away.
    ///
    /// # Panics
    /// If `values` holds fewer than `LANES` values.
    #[inline(always)]
    fn from_slice(values: &[Self::Scalar]) -> Self {
        assert!(values.len() >= Self::LANES, "a vector load past the slice");
        // SAFETY: `values` holds at least LANES readable values (checked above).
        unsafe { Self::load(values.as_ptr()) }
    }
    /// Writes the lanes to the first `LANES` values of `out` — the safe [`SimdVector::store`].
    ///
    /// # Panics
    /// If `out` holds fewer than `LANES` values.
    #[inline(always)]
    fn write_to(self, out: &mut [Self::Scalar]) {
        assert!(out.len() >= Self::LANES, "a vector store past the slice");
        // SAFETY: `out` holds at least LANES writable values (checked above).
        unsafe { self.store(out.as_mut_ptr()) }
    }
    /// `self * a + b`, fused where the build has FMA.
    fn mul_add(self, a: Self, b: Self) -> Self;
    /// `self * a − b`, fused where the build has FMA.
    fn mul_sub(self, a: Self, b: Self) -> Self;
    /// `−(self * a) + b`, fused where the build has FMA.
    fn mul_neg_add(self, a: Self, b: Self) -> Self;
    /// Lane-wise maximum (NaN handling as the hardware's `max`).
    fn max(self, other: Self) -> Self;
    /// Lane-wise minimum.
    fn min(self, other: Self) -> Self;
    /// Lane-wise absolute value.
    fn abs(self) -> Self;
    /// Lane-wise `−|self|`: `self` with its sign bit set — one `or`, the same bits as
    /// `-(self.abs())` (two operations) for every input, NaN included.
    fn neg_abs(self) -> Self;
    /// `self`'s magnitude with `sign`'s sign bit, lane by lane.
    fn copysign(self, sign: Self) -> Self;
    /// Lane-wise square root.
    fn sqrt(self) -> Self;
    /// `e^x`.
    fn exp(self) -> Self;
    /// The inputs `[lo, hi]` whose `e^x` is a normal, finite number: where
    /// [`SimdVector::exp_normal`] holds. (The slice functions check the open interval.)
    const EXP_NORMAL: (Self::Scalar, Self::Scalar);
    /// `e^x` for lanes in [`SimdVector::EXP_NORMAL`], bitwise [`SimdVector::exp`] there; other
    /// lanes are unspecified. `exp` checks every vector and takes this path when all its lanes
    /// are in range; a slice checked once beforehand (`elementwise::exp`) runs it without the
    /// check and its branch.
    fn exp_normal(self) -> Self;
    /// `e^x − 1`, accurate near 0.
    fn exp_m1(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// The inputs `[lo, hi]` where [`SimdVector::ln_normal`] holds: the positive, normal, finite
    /// numbers. (The slice functions check the open interval.)
    const LN_NORMAL: (Self::Scalar, Self::Scalar);
    /// `ln x` for lanes in [`SimdVector::LN_NORMAL`], bitwise [`SimdVector::ln`] there; other
    /// lanes are unspecified (as [`SimdVector::exp_normal`] is to `exp`).
    fn ln_normal(self) -> Self;
    /// `ln(1 + x)`, accurate near 0.
    fn ln_1p(self) -> Self;
    /// `ln(1 + self)` for lanes in `[0, 1]` (or NaN); other lanes are unspecified. Softplus's
    /// tail, which never needs `ln_1p`'s full range.
    fn ln_1p_unit(self) -> Self;
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
    /// Whether [`SimdVector::tanh_pair`] computes the two vectors together (f64, whose chain of
    /// dependent operations is long) rather than one after the other (f32).
    const TANH_IN_PAIRS: bool;
    /// `(tanh a, tanh b)`, bitwise [`SimdVector::tanh`] of each; see
    /// [`SimdVector::TANH_IN_PAIRS`].
    fn tanh_pair(a: Self, b: Self) -> (Self, Self);
    /// Lane-wise `if self < other { if_less } else { otherwise }`; NaN compares false.
    fn select_lt(self, other: Self, if_less: Self, otherwise: Self) -> Self;
    /// Lane-wise `if self > other { if_greater } else { otherwise }`; NaN compares false.
    fn select_gt(self, other: Self, if_greater: Self, otherwise: Self) -> Self;
    /// Sum of all lanes.
    fn reduce_add(self) -> Self::Scalar;
    /// Transposes a `LANES × LANES` block: `dst[c·dst_rs + r] = src[r·src_rs + c]`.
    ///
    /// # Safety
    /// `src` must be readable at every `r·src_rs + c` and `dst` writable at every
    /// `c·dst_rs + r` (`r, c < LANES`), the two not overlapping.
    unsafe fn transpose_block(
        src: *const Self::Scalar,
        src_rs: usize,
        dst: *mut Self::Scalar,
        dst_rs: usize,
    );
}

macro_rules! impl_simd_vector {
    ($vec:ty, $scalar:ty, $lanes:expr, $tanh:path, $tanh_in_pairs:expr, $tanh_pair:path, $exp:path,
     $exp_normal:path, $exp_normal_range:expr, $ln:path, $ln_normal:path, $ln_1p:path,
     $ln_1p_unit:path, $transpose:path) => {
        impl SimdVector for $vec {
            type Scalar = $scalar;
            const LANES: usize = $lanes;
            const TANH_IN_PAIRS: bool = $tanh_in_pairs;

            #[inline(always)]
            fn splat(x: $scalar) -> Self {
                <$vec>::splat(x)
            }
            #[inline(always)]
            unsafe fn load(ptr: *const $scalar) -> Self {
                // SAFETY: the caller guarantees LANES readable values; `wide` vectors are plain
                // `repr(C)` arrays of lanes, so an unaligned read of the bytes is a valid vector.
                unsafe { ptr.cast::<$vec>().read_unaligned() }
            }
            #[inline(always)]
            unsafe fn store(self, ptr: *mut $scalar) {
                // SAFETY: the caller guarantees LANES writable values.
                unsafe { ptr.cast::<$vec>().write_unaligned(self) }
            }
            #[inline(always)]
            fn mul_add(self, a: Self, b: Self) -> Self {
                <$vec>::mul_add(self, a, b)
            }
            #[inline(always)]
            fn mul_sub(self, a: Self, b: Self) -> Self {
                <$vec>::mul_sub(self, a, b)
            }
            #[inline(always)]
            fn mul_neg_add(self, a: Self, b: Self) -> Self {
                <$vec>::mul_neg_add(self, a, b)
            }
            #[inline(always)]
            fn max(self, other: Self) -> Self {
                <$vec>::max(self, other)
            }
            #[inline(always)]
            fn min(self, other: Self) -> Self {
                <$vec>::min(self, other)
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$vec>::abs(self)
            }
            #[inline(always)]
            fn neg_abs(self) -> Self {
                self | <$vec>::splat(-0.0)
            }
            #[inline(always)]
            fn copysign(self, sign: Self) -> Self {
                <$vec>::copysign(self, sign)
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$vec>::sqrt(self)
            }
            #[inline(always)]
            fn exp(self) -> Self {
                $exp(self)
            }
            const EXP_NORMAL: ($scalar, $scalar) = $exp_normal_range;
            #[inline(always)]
            fn exp_normal(self) -> Self {
                $exp_normal(self)
            }
            #[inline(always)]
            fn exp_m1(self) -> Self {
                <$vec>::exp_m1(self)
            }
            #[inline(always)]
            fn ln(self) -> Self {
                $ln(self)
            }
            const LN_NORMAL: ($scalar, $scalar) = (<$scalar>::MIN_POSITIVE, <$scalar>::MAX);
            #[inline(always)]
            fn ln_normal(self) -> Self {
                $ln_normal(self)
            }
            #[inline(always)]
            fn ln_1p(self) -> Self {
                $ln_1p(self)
            }
            #[inline(always)]
            fn ln_1p_unit(self) -> Self {
                $ln_1p_unit(self)
            }
            #[inline(always)]
            fn tanh(self) -> Self {
                $tanh(self)
            }
            #[inline(always)]
            fn tanh_pair(a: Self, b: Self) -> (Self, Self) {
                $tanh_pair(a, b)
            }
            #[inline(always)]
            fn select_lt(self, other: Self, if_less: Self, otherwise: Self) -> Self {
                self.simd_lt(other).select(if_less, otherwise)
            }
            #[inline(always)]
            fn select_gt(self, other: Self, if_greater: Self, otherwise: Self) -> Self {
                self.simd_gt(other).select(if_greater, otherwise)
            }
            #[inline(always)]
            fn reduce_add(self) -> $scalar {
                <$vec>::reduce_add(self)
            }
            #[inline(always)]
            unsafe fn transpose_block(
                src: *const $scalar,
                src_rs: usize,
                dst: *mut $scalar,
                dst_rs: usize,
            ) {
                // SAFETY: forwarded from the caller.
                unsafe { $transpose(src, src_rs, dst, dst_rs) }
            }
        }
    };
}

#[cfg(target_feature = "avx512f")]
mod width {
    /// The f32 vector of this build.
    pub type F32Vector = wide::f32x16;
    /// The f64 vector of this build.
    pub type F64Vector = wide::f64x8;
    /// Same-width unsigned integers (bit tricks).
    pub type F64Bits = wide::u64x8;
    pub type F32Bits = wide::i32x16;
    pub const F32_LANES: usize = 16;
    pub const F64_LANES: usize = 8;
}
#[cfg(all(not(target_feature = "avx512f"), target_feature = "avx"))]
mod width {
    pub type F32Vector = wide::f32x8;
    pub type F64Vector = wide::f64x4;
    pub type F64Bits = wide::u64x4;
    pub type F32Bits = wide::i32x8;
    pub const F32_LANES: usize = 8;
    pub const F64_LANES: usize = 4;
}
#[cfg(not(any(target_feature = "avx512f", target_feature = "avx")))]
mod width {
    pub type F32Vector = wide::f32x4;
    pub type F64Vector = wide::f64x2;
    pub type F64Bits = wide::u64x2;
    pub type F32Bits = wide::i32x4;
    pub const F32_LANES: usize = 4;
    pub const F64_LANES: usize = 2;
}

pub(crate) use width::{F32Bits, F64Bits};
pub use width::{F32Vector, F64Vector};

/// `2ⁿ` lane by lane for integral-valued `n ∈ [−1022, 1023]`, built from exponent bits: the
/// biased exponent `n + 1023` sits in the low mantissa bits of `n + 2⁵² + 1023`, and shifted into
/// the exponent field it is `2ⁿ` (the scaling step of a vector `exp`).
#[inline(always)]
pub fn pow2_f64(n: F64Vector) -> F64Vector {
    let biased = n + F64Vector::splat(4_503_599_627_370_496.0 + 1023.0);
    let bits: F64Bits = bytemuck::cast(biased);
    bytemuck::cast(bits << 52)
}

/// Cody–Waite reduction `y = n·ln2 + r` with `n` integral and `|r| ≤ ln2/2` (for
/// `|y·log₂e| < 2⁵¹`); `r` is exact when `n = 0`.
#[inline(always)]
pub(crate) fn reduce_ln2(y: F64Vector) -> (F64Vector, F64Vector) {
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    // Round to nearest by adding and removing 1.5·2⁵² (cheaper than a general round).
    const SHIFTER: f64 = 6_755_399_441_055_744.0;
    let s = F64Vector::splat;
    let n = y.mul_add(s(core::f64::consts::LOG2_E), s(SHIFTER)) - s(SHIFTER);
    let r = n.mul_add(s(-LN2_HI), y);
    (n, n.mul_add(s(-LN2_LO), r))
}

/// `Σ_{i=0}^{13} c[i]·rⁱ` by Estrin's scheme: four dependent FMA levels instead of thirteen, so
/// consecutive vectors overlap in the pipeline.
#[inline(always)]
pub(crate) fn estrin_13(r: F64Vector, c: impl Fn(usize) -> F64Vector) -> F64Vector {
    let r2 = r * r;
    let r4 = r2 * r2;
    let r8 = r4 * r4;
    let a: [F64Vector; 7] = core::array::from_fn(|i| r.mul_add(c(2 * i + 1), c(2 * i)));
    let b0 = r2.mul_add(a[1], a[0]);
    let b1 = r2.mul_add(a[3], a[2]);
    let b2 = r2.mul_add(a[5], a[4]);
    let c0 = r4.mul_add(b1, b0);
    let c1 = r4.mul_add(a[6], b2);
    r8.mul_add(c1, c0)
}

/// `e^y` lane by lane for `y ∈ [−708, 709]`, branch-free: `y = n·ln2 + r` (Cody–Waite split),
/// `e^r` by its degree-13 Taylor polynomial (truncation < 2e-17) evaluated by Estrin's scheme,
/// times `2ⁿ` from [`pow2_f64`]. About 1 ulp; callers clamp `y` to the range (no overflow, NaN
/// or subnormal handling). The exponential of the metrics' normal density.
#[inline(always)]
pub fn exp_f64(y: F64Vector) -> F64Vector {
    let (n, r) = reduce_ln2(y);
    let poly = estrin_13(r, |i| F64Vector::splat(INV_FACTORIAL[i]));
    poly * pow2_f64(n)
}

/// `e^y − 1` lane by lane for `y ∈ [−708, 709]`, branch-free and accurate near 0: with
/// `y = n·ln2 + r` as in [`exp_f64`], `e^r − 1 = r·Σ_{i=0}^{12} rⁱ/(i+1)!` (no constant term to
/// cancel) and `e^y − 1 = 2ⁿ·(e^r − 1) + (2ⁿ − 1)` in one fused multiply-add. Callers clamp `y`.
/// (The f64 `tanh` uses its own rational form of the same reduction; see `tanh.rs`.)
#[inline(always)]
pub fn exp_m1_f64(y: F64Vector) -> F64Vector {
    let (n, r) = reduce_ln2(y);
    let zero = F64Vector::splat(0.0);
    let q = estrin_13(r, |i| {
        if i < 13 {
            F64Vector::splat(INV_FACTORIAL[i + 1])
        } else {
            zero
        }
    });
    let t = pow2_f64(n);
    t.mul_add(r * q, t - F64Vector::splat(1.0))
}

/// `1/i!` for `i = 0..=13`.
pub(crate) const INV_FACTORIAL: [f64; 14] = [
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

/// The inputs whose f32 `e^x` is a normal, finite number (as far as [`exp_normal_f32`] is
/// concerned).
const EXP_NORMAL_F32: (f32, f32) = (-87.0, 88.0);

/// `wide`'s f32 `exp` with a fast path: when every lane lies in [`EXP_NORMAL_F32`] (a normal,
/// finite result) it runs [`exp_normal_f32`], `wide`'s own computation without the overflow,
/// underflow, subnormal and NaN handling, which cannot change such lanes. The same bits as
/// `wide`'s `exp` (tested), for about half the work; other vectors go to `wide`.
#[inline(always)]
fn exp_f32(x: F32Vector) -> F32Vector {
    let (lo, hi) = EXP_NORMAL_F32;
    if (x.simd_ge(F32Vector::splat(lo)) & x.simd_le(F32Vector::splat(hi))).all() {
        exp_normal_f32(x)
    } else {
        F32Vector::exp(x)
    }
}

/// `wide`'s f32 `exp` for lanes in [`EXP_NORMAL_F32`]: `x = r·ln2 + y` with
/// `r = round(x·log₂e)` (ln 2 in two parts), `e^y = 1 + y + y²·P(y)` with `P` the Taylor terms
/// `1/2! … 1/7!` in `wide`'s evaluation order, times `2ʳ` from exponent bits (its extra scale
/// is exactly 1 there). Other lanes are unspecified.
#[inline(always)]
fn exp_normal_f32(x: F32Vector) -> F32Vector {
    let s = F32Vector::splat;
    let r = (x * F32Vector::LOG2_E).round_ties_even();
    let y = r.mul_neg_add(s(0.693_359_4), x);
    let y = r.mul_neg_add(s(-2.121_944_4e-4), y);
    let y2 = y * y;
    let y4 = y2 * y2;
    let p = s(1.0f32 / 120.0).mul_add(y, s(1.0f32 / 24.0)).mul_add(
        y2,
        s(1.0f32 / 5040.0)
            .mul_add(y, s(1.0f32 / 720.0))
            .mul_add(y4, s(1.0f32 / 6.0).mul_add(y, s(0.5))),
    );
    let z = p.mul_add(y2, y);
    // 2ʳ: r + 127 in the low mantissa bits of r + 2²³ + 127, shifted into the exponent field.
    let biased = r + s(8_388_608.0 + 127.0);
    let bits: F32Bits = bytemuck::cast(biased);
    (z + s(1.0)) * bytemuck::cast::<F32Bits, F32Vector>(bits << 23)
}

/// `ln(1 + u)` for `u ∈ [0, 1]` (the softplus's `ln(1 + e^{−|x|})`): `1 + u = 2ᵏ·(1 + f)` with
/// `k = [u > √2 − 1]` and `f ∈ [√½ − 1, √2 − 1]` (`f = u`, or `½u − ½` in one rounding), then
/// Cephes' `ln(1 + f) = f − ½f² + f³·P(f)` (the kernel of `wide`'s f32 `ln`, ln 2 in two parts)
/// — no division, no exponent extraction, no special cases (the f32 twin of the f64
/// `ln_1p_unit`). NaN gives NaN.
#[inline(always)]
#[allow(clippy::excessive_precision)] // Cephes' coefficients as published.
fn ln_1p_unit_f32(u: F32Vector) -> F32Vector {
    let s = F32Vector::splat;
    let upper = u.simd_gt(s(core::f32::consts::SQRT_2 - 1.0));
    let f = upper.select(u.mul_add(s(0.5), s(-0.5)), u);
    let k = upper.select(s(1.0), s(0.0));
    let (f2, f4) = (f * f, f * f * (f * f));
    let p01 = s(-2.499_999_399_3e-1).mul_add(f, s(3.333_333_117_4e-1));
    let p23 = s(-1.666_805_766_5e-1).mul_add(f, s(2.000_071_476_5e-1));
    let p45 = s(-1.242_014_084_6e-1).mul_add(f, s(1.424_932_278_7e-1));
    let p67 = s(-1.151_461_031_0e-1).mul_add(f, s(1.167_699_874_0e-1));
    let p = s(7.037_683_629_2e-2).mul_add(
        f4 * f4,
        p67.mul_add(f2, p45).mul_add(f4, p23.mul_add(f2, p01)),
    );
    let res = f2 * f * p;
    let res = k.mul_add(s(-2.121_944_4e-4), res);
    let res = res + f2.mul_neg_add(s(0.5), f);
    k.mul_add(s(0.693_359_4), res)
}

/// `wide`'s f32 `ln` (which takes subnormals for zero) with subnormal inputs handled: positive
/// ones are scaled by 2²⁴ into the normal range and `24·ln 2` taken off again, negative ones give
/// NaN like every other negative input.
/// For positive, normal, finite inputs that is `wide`'s `ln` itself (the f32
/// [`SimdVector::ln_normal`]).
#[inline(always)]
fn ln_f32(x: F32Vector) -> F32Vector {
    let zero = F32Vector::splat(0.0);
    let tiny = x.simd_lt(F32Vector::splat(f32::MIN_POSITIVE)) & x.simd_gt(zero);
    let scaled = tiny.select(x * F32Vector::splat(16_777_216.0), x);
    let ln = F32Vector::ln(scaled);
    let ln = tiny.select(ln - F32Vector::splat(24.0 * core::f32::consts::LN_2), ln);
    x.simd_lt(zero).select(F32Vector::splat(f32::NAN), ln)
}

impl_simd_vector!(
    F32Vector,
    f32,
    width::F32_LANES,
    crate::tanh::tanh_f32,
    false,
    crate::tanh::tanh_f32_pair,
    exp_f32,
    exp_normal_f32,
    EXP_NORMAL_F32,
    ln_f32,
    F32Vector::ln,
    F32Vector::ln_1p,
    ln_1p_unit_f32,
    crate::transpose::transpose_f32
);
impl_simd_vector!(
    F64Vector,
    f64,
    width::F64_LANES,
    crate::tanh::tanh_f64,
    true,
    crate::tanh::tanh_f64_pair,
    crate::f64_math::exp_any_f64,
    exp_f64,
    crate::f64_math::EXP_NORMAL_F64,
    crate::f64_math::ln_f64,
    crate::f64_math::ln_positive_normal_f64,
    F64Vector::ln_1p,
    crate::f64_math::ln_1p_unit_f64,
    crate::transpose::transpose_f64
);

/// The widest vector of any element type in any build; sizes stack buffers for tails.
pub const MAX_LANES: usize = 16;

/// Partial sums of a canonical sum ([`canonical_sum`]), whatever the vector width.
pub(crate) const SUM_LANES: usize = 16;

/// `Σ_i f(x_i, y_i)` in one order on every build: element `i` is accumulated into partial sum
/// `i mod 16` (in index order within it, by `step(x, y, acc)` on vectors of `LANES` partial
/// sums), the last partial run padded with `pad`, and the 16 partial sums are combined by
/// halving — `s_i += s_{i+8}`, then `+4`, `+2`, `+1`. A 16-lane (AVX-512 f32), 8-lane, 4-lane
/// or 2-lane build holds the 16 partial sums in 1, 2, 4 or 8 vectors and adds the same numbers
/// in the same order, so the result has the same bits whenever the builds' `step` rounds alike
/// (with FMA, `mul_add` does; the SSE2 baseline has none). `x` and `y` have equal lengths.
#[inline(always)]
pub(crate) fn canonical_sum<T: Element>(
    x: &[T],
    y: &[T],
    pad: T,
    step: impl Fn(T::Vector, T::Vector, T::Vector) -> T::Vector,
) -> T {
    debug_assert_eq!(x.len(), y.len());
    let (n, lanes) = (x.len(), T::Vector::LANES);
    let vectors = SUM_LANES / lanes;
    let mut acc = [T::Vector::splat(T::ZERO); SUM_LANES / 2];
    let body = n - n % SUM_LANES;
    let mut start = 0;
    while start < body {
        for (j, a) in acc.iter_mut().enumerate().take(vectors) {
            let at = start + j * lanes;
            *a = step(
                T::Vector::from_slice(&x[at..at + lanes]),
                T::Vector::from_slice(&y[at..at + lanes]),
                *a,
            );
        }
        start += SUM_LANES;
    }
    if body < n {
        let (mut bx, mut by) = ([pad; SUM_LANES], [pad; SUM_LANES]);
        bx[..n - body].copy_from_slice(&x[body..]);
        by[..n - body].copy_from_slice(&y[body..]);
        for (j, a) in acc.iter_mut().enumerate().take(vectors) {
            let at = j * lanes;
            *a = step(
                T::Vector::from_slice(&bx[at..at + lanes]),
                T::Vector::from_slice(&by[at..at + lanes]),
                *a,
            );
        }
    }
    // Halving while the halves are whole vectors (`s_i += s_{i+half}` is one vector addition),
    // then within the last vector.
    let mut held = vectors;
    while held > 1 {
        held /= 2;
        for j in 0..held {
            acc[j] = acc[j] + acc[j + held];
        }
    }
    let mut s = [T::ZERO; MAX_LANES];
    acc[0].write_to(&mut s[..lanes]);
    let mut half = lanes / 2;
    while half > 0 {
        for i in 0..half {
            s[i] += s[i + half];
        }
        half /= 2;
    }
    s[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path gives `wide`'s `exp` bit for bit: a dense sweep of `[−87, 88]` (with both
    /// ends, zero and tiny values), vector by vector, plus vectors with one lane outside the
    /// range, which take `wide`'s path whole.
    #[test]
    fn exp_f32_is_wide_exp() {
        let lanes = F32_LANES_OF_BUILD;
        let mut values: Vec<f32> = (0..=350_000)
            .map(|i| -87.0 + 175.0 * i as f32 / 350_000.0)
            .collect();
        values.extend([-87.0, 88.0, 0.0, -0.0, 1e-30, -1e-30, 0.5, -0.5, 1e-8]);
        while !values.len().is_multiple_of(lanes) {
            values.push(0.25);
        }
        for chunk in values.chunks_exact(lanes) {
            let x = F32Vector::from(<[f32; F32_LANES_OF_BUILD]>::try_from(chunk).unwrap());
            let (ours, theirs) = (exp_f32(x).to_array(), F32Vector::exp(x).to_array());
            for ((a, b), v) in ours.iter().zip(&theirs).zip(chunk) {
                assert_eq!(a.to_bits(), b.to_bits(), "exp({v}): {a} vs {b}");
            }
        }
        let mut mixed = [1.0f32; F32_LANES_OF_BUILD];
        for outside in [-100.0, 89.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN] {
            mixed[0] = outside;
            let x = F32Vector::from(mixed);
            let (ours, theirs) = (exp_f32(x).to_array(), F32Vector::exp(x).to_array());
            for (a, b) in ours.iter().zip(&theirs) {
                assert_eq!(a.to_bits(), b.to_bits(), "{outside}: {a} vs {b}");
            }
        }
    }

    /// `ln(1 + u)` on `[0, 1]` — a dense sweep, both branches' boundary `√2 − 1` and tiny `u` —
    /// within 2 ulp of the f64 value, and exactly 0 at 0.
    #[test]
    fn ln_1p_unit_f32_is_accurate_on_the_unit_interval() {
        let lanes = F32_LANES_OF_BUILD;
        let mut values: Vec<f32> = (0..=400_000).map(|i| i as f32 / 400_000.0).collect();
        let edge = core::f32::consts::SQRT_2 - 1.0;
        values.extend([
            edge,
            f32::from_bits(edge.to_bits() + 1),
            1e-30,
            1e-8,
            3e-4,
            1.0,
        ]);
        while !values.len().is_multiple_of(lanes) {
            values.push(0.5);
        }
        let mut worst = 0.0f64;
        for chunk in values.chunks_exact(lanes) {
            let x = F32Vector::from(<[f32; F32_LANES_OF_BUILD]>::try_from(chunk).unwrap());
            for (&got, &u) in ln_1p_unit_f32(x).to_array().iter().zip(chunk) {
                let want = (u as f64).ln_1p();
                if u == 0.0 {
                    assert_eq!(got, 0.0);
                    continue;
                }
                let rel = (got as f64 - want).abs() / want;
                worst = worst.max(rel);
                assert!(
                    rel <= 2.0 * f32::EPSILON as f64,
                    "ln_1p({u}) = {got}, want {want}"
                );
            }
        }
        assert!(worst > 0.0);
    }

    /// `neg_abs` is `-(abs)` bit for bit — ±0, ±∞, subnormals, the extremes and NaNs of both
    /// signs and any payload — in both precisions.
    #[test]
    fn neg_abs_is_the_negated_abs_bit_for_bit() {
        fn check<V: SimdVector>(specials: &[V::Scalar], bits: impl Fn(V::Scalar) -> u64) {
            let mut lanes = vec![V::Scalar::ZERO; V::LANES];
            for (i, &x) in specials.iter().enumerate() {
                lanes[i % V::LANES] = x;
                // SAFETY: `lanes` holds `V::LANES` values.
                let v = unsafe { V::load(lanes.as_ptr()) };
                let (mut ours, mut theirs) = (vec![V::Scalar::ZERO; V::LANES], lanes.clone());
                // SAFETY: both hold `V::LANES` values.
                unsafe {
                    v.neg_abs().store(ours.as_mut_ptr());
                    (-v.abs()).store(theirs.as_mut_ptr());
                }
                for (a, b) in ours.iter().zip(&theirs) {
                    assert_eq!(bits(*a), bits(*b), "neg_abs of {x:?}");
                }
            }
        }
        let f32s: Vec<f32> = [
            0.0,
            -0.0,
            1.5,
            -1.5,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
        ]
        .into_iter()
        .chain([f32::MIN, f32::MIN_POSITIVE / 4.0, -f32::MIN_POSITIVE / 4.0])
        .chain([
            f32::NAN,
            -f32::NAN,
            f32::from_bits(0x7fc0_1234),
            f32::from_bits(0xffa0_0001),
        ])
        .collect();
        check::<F32Vector>(&f32s, |x| u64::from(x.to_bits()));
        let f64s: Vec<f64> = [
            0.0,
            -0.0,
            1.5,
            -1.5,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
        ]
        .into_iter()
        .chain([f64::MIN, f64::MIN_POSITIVE / 4.0, -f64::MIN_POSITIVE / 4.0])
        .chain([f64::NAN, -f64::NAN, f64::from_bits(0x7ff8_0000_dead_beef)])
        .collect();
        check::<F64Vector>(&f64s, f64::to_bits);
    }

    const F32_LANES_OF_BUILD: usize = width::F32_LANES;
}
