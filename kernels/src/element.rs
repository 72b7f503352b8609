//! The scalar types the kernels run on (`f32`, `f64`) and what they must provide.

use core::fmt::{Debug, Display};
use core::iter::Sum;
use core::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

use crate::simd::{F32Vector, F64Vector, SimdVector};

/// A floating-point element type with a SIMD vector of this build's width.
///
/// Implemented for `f32` and `f64`; every kernel is generic over it, so there is one code path
/// for both precisions.
pub trait Element:
    Copy
    + Debug
    + Display
    + Default
    + PartialEq
    + PartialOrd
    + Send
    + Sync
    + Sum
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + bytemuck::Pod
{
    /// This build's SIMD vector of `Self`.
    type Vector: SimdVector<Scalar = Self>;
    /// `0`.
    const ZERO: Self;
    /// `1`.
    const ONE: Self;
    /// Not a number.
    const NAN: Self;
    /// Positive infinity.
    const INFINITY: Self;
    /// Machine epsilon.
    const EPSILON: Self;
    /// `"f32"` or `"f64"`.
    const NAME: &'static str;

    /// Rounds an `f64` to `Self`.
    fn from_f64(x: f64) -> Self;
    /// Widens to `f64` (exact).
    fn to_f64(self) -> f64;
    /// Converts a count.
    fn from_usize(n: usize) -> Self {
        Self::from_f64(n as f64)
    }
    /// `true` unless NaN or ±∞.
    fn is_finite(self) -> bool;
    /// `true` for NaN.
    fn is_nan(self) -> bool;
    /// `self * a + b` with one rounding.
    fn mul_add(self, a: Self, b: Self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// `e^x` (std).
    fn exp(self) -> Self;
    /// Natural log (std).
    fn ln(self) -> Self;
    /// `ln(1 + x)` (std).
    fn ln_1p(self) -> Self;
    /// `e^x − 1` (std).
    fn exp_m1(self) -> Self;
    /// Hyperbolic tangent (std).
    fn tanh(self) -> Self;
    /// `self^n`.
    fn powi(self, n: i32) -> Self;
    /// `self^p`.
    fn powf(self, p: Self) -> Self;
    /// Larger of two values; NaN-ignoring like `f64::max`.
    fn max(self, other: Self) -> Self;
    /// Smaller of two values; NaN-ignoring like `f64::min`.
    fn min(self, other: Self) -> Self;

    /// Runs `f` on this thread's reusable scratch buffer of `len` elements (contents
    /// unspecified), starting on a 64-byte boundary. Kernels use it for packing so that
    /// steady-state calls do not allocate and packed rows do not straddle cache lines.
    #[doc(hidden)]
    fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R;
}

macro_rules! impl_element {
    ($t:ident, $vec:ty, $scratch:ident) => {
        thread_local! {
            static $scratch: core::cell::RefCell<crate::AlignedBuf<$t>> =
                const { core::cell::RefCell::new(crate::AlignedBuf::new()) };
        }

        impl Element for $t {
            type Vector = $vec;
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NAN: Self = $t::NAN;
            const INFINITY: Self = $t::INFINITY;
            const EPSILON: Self = $t::EPSILON;
            const NAME: &'static str = stringify!($t);

            #[inline(always)]
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn is_finite(self) -> bool {
                $t::is_finite(self)
            }
            #[inline(always)]
            fn is_nan(self) -> bool {
                $t::is_nan(self)
            }
            #[inline(always)]
            fn mul_add(self, a: Self, b: Self) -> Self {
                $t::mul_add(self, a, b)
            }
            #[inline(always)]
            fn abs(self) -> Self {
                $t::abs(self)
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                $t::sqrt(self)
            }
            #[inline(always)]
            fn exp(self) -> Self {
                $t::exp(self)
            }
            #[inline(always)]
            fn ln(self) -> Self {
                $t::ln(self)
            }
            #[inline(always)]
            fn ln_1p(self) -> Self {
                $t::ln_1p(self)
            }
            #[inline(always)]
            fn exp_m1(self) -> Self {
                $t::exp_m1(self)
            }
            #[inline(always)]
            fn tanh(self) -> Self {
                $t::tanh(self)
            }
            #[inline(always)]
            fn powi(self, n: i32) -> Self {
                $t::powi(self, n)
            }
            #[inline(always)]
            fn powf(self, p: Self) -> Self {
                $t::powf(self, p)
            }
            #[inline(always)]
            fn max(self, other: Self) -> Self {
                $t::max(self, other)
            }
            #[inline(always)]
            fn min(self, other: Self) -> Self {
                $t::min(self, other)
            }
            fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R {
                $scratch.with(|cell| match cell.try_borrow_mut() {
                    Ok(mut buffer) => {
                        if buffer.len() < len {
                            buffer.resize(len, 0.0);
                        }
                        f(&mut buffer[..len])
                    }
                    // Re-entered on this thread (a kernel called from inside a kernel): use a
                    // fresh buffer rather than alias the outer one.
                    Err(_) => f(&mut vec![0.0; len]),
                })
            }
        }
    };
}

impl_element!(f32, F32Vector, F32_SCRATCH);
impl_element!(f64, F64Vector, F64_SCRATCH);
