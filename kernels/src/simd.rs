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
    /// `self * a + b`, fused where the build has FMA.
    fn mul_add(self, a: Self, b: Self) -> Self;
    /// Lane-wise maximum (NaN handling as the hardware's `max`).
    fn max(self, other: Self) -> Self;
    /// Lane-wise minimum.
    fn min(self, other: Self) -> Self;
    /// Lane-wise absolute value.
    fn abs(self) -> Self;
    /// `self`'s magnitude with `sign`'s sign bit, lane by lane.
    fn copysign(self, sign: Self) -> Self;
    /// Lane-wise square root.
    fn sqrt(self) -> Self;
    /// `e^x`.
    fn exp(self) -> Self;
    /// `e^x − 1`, accurate near 0.
    fn exp_m1(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// `ln(1 + x)`, accurate near 0.
    fn ln_1p(self) -> Self;
    /// `ln(1 + self)` for lanes in `[0, 1]` (or NaN); other lanes are unspecified. Softplus's
    /// tail, which never needs `ln_1p`'s full range.
    fn ln_1p_unit(self) -> Self;
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
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
    ($vec:ty, $scalar:ty, $lanes:expr, $tanh:path, $exp:path, $ln:path, $ln_1p:path,
     $ln_1p_unit:path, $transpose:path) => {
        impl SimdVector for $vec {
            type Scalar = $scalar;
            const LANES: usize = $lanes;

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
            #[inline(always)]
            fn exp_m1(self) -> Self {
                <$vec>::exp_m1(self)
            }
            #[inline(always)]
            fn ln(self) -> Self {
                $ln(self)
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
    pub const F32_LANES: usize = 16;
    pub const F64_LANES: usize = 8;
}
#[cfg(all(not(target_feature = "avx512f"), target_feature = "avx"))]
mod width {
    pub type F32Vector = wide::f32x8;
    pub type F64Vector = wide::f64x4;
    pub type F64Bits = wide::u64x4;
    pub const F32_LANES: usize = 8;
    pub const F64_LANES: usize = 4;
}
#[cfg(not(any(target_feature = "avx512f", target_feature = "avx")))]
mod width {
    pub type F32Vector = wide::f32x4;
    pub type F64Vector = wide::f64x2;
    pub type F64Bits = wide::u64x2;
    pub const F32_LANES: usize = 4;
    pub const F64_LANES: usize = 2;
}

pub(crate) use width::F64Bits;
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

/// `wide`'s f32 `ln` (which takes subnormals for zero) with subnormal inputs handled: positive
/// ones are scaled by 2²⁴ into the normal range and `24·ln 2` taken off again, negative ones give
/// NaN like every other negative input.
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
    F32Vector::exp,
    ln_f32,
    F32Vector::ln_1p,
    F32Vector::ln_1p,
    crate::transpose::transpose_f32
);
impl_simd_vector!(
    F64Vector,
    f64,
    width::F64_LANES,
    crate::tanh::tanh_f64,
    crate::f64_math::exp_any_f64,
    crate::f64_math::ln_f64,
    F64Vector::ln_1p,
    crate::f64_math::ln_1p_unit_f64,
    crate::transpose::transpose_f64
);

/// The widest vector of any element type in any build; sizes stack buffers for tails.
pub const MAX_LANES: usize = 16;
