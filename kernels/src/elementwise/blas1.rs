//! Vector updates the optimizers and gradient accumulation need.

use super::map::{map1_in_place, map3};
use crate::{Element, SimdVector};

/// `y += α·x`.
///
/// # Panics
/// If `x` and `y` differ in length.
pub fn axpy<T: Element>(alpha: T, x: &[T], y: &mut [T]) {
    let a = T::Vector::splat(alpha);
    map3(x, x, y, |x, _, y| a.mul_add(x, y));
}

/// `x *= α`.
pub fn scale<T: Element>(alpha: T, x: &mut [T]) {
    let a = T::Vector::splat(alpha);
    map1_in_place(x, |v| v * a);
}

/// `y += α·x` with the product rounded before the sum (no fused multiply-add): the bits of
/// [`scale`] then [`add_assign`], in one pass.
///
/// # Panics
/// If `x` and `y` differ in length.
pub fn add_scaled<T: Element>(alpha: T, x: &[T], y: &mut [T]) {
    let a = T::Vector::splat(alpha);
    map3(x, x, y, |x, _, y| y + a * x);
}

/// `y += x`.
///
/// # Panics
/// If `x` and `y` differ in length.
pub fn add_assign<T: Element>(y: &mut [T], x: &[T]) {
    map3(x, x, y, |x, _, y| y + x);
}

/// Naive references.
pub mod naive {
    use crate::Element;

    /// `y += α·x`.
    pub fn axpy<T: Element>(alpha: T, x: &[T], y: &mut [T]) {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = alpha.mul_add(x, *y);
        }
    }
    /// `x *= α`.
    pub fn scale<T: Element>(alpha: T, x: &mut [T]) {
        for v in x {
            *v *= alpha;
        }
    }
    /// `y += α·x`, the product rounded first.
    pub fn add_scaled<T: Element>(alpha: T, x: &[T], y: &mut [T]) {
        for (y, &x) in y.iter_mut().zip(x) {
            *y += alpha * x;
        }
    }
}
