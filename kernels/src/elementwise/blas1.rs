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
}
