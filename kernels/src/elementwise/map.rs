//! Applying a vector function over slices, with tails handled by the same vector code.

use crate::simd::MAX_LANES;
use crate::{Element, SimdVector};

/// `out[i] = f(x[i])` in vectors. The tail is copied into a zero-padded vector and goes through
/// the same `f`, so every element gets bit-identical math wherever it sits in the slice.
#[inline(always)]
pub(crate) fn map1<T: Element>(x: &[T], out: &mut [T], f: impl Fn(T::Vector) -> T::Vector) {
    assert_eq!(
        x.len(),
        out.len(),
        "elementwise kernel: input has {} elements but output has {}",
        x.len(),
        out.len()
    );
    let lanes = T::Vector::LANES;
    let body = x.len() - x.len() % lanes;
    for (xc, oc) in x[..body]
        .chunks_exact(lanes)
        .zip(out[..body].chunks_exact_mut(lanes))
    {
        // SAFETY: both chunks hold exactly `lanes` elements.
        unsafe { f(T::Vector::load(xc.as_ptr())).store(oc.as_mut_ptr()) };
    }
    let tail = x.len() - body;
    if tail > 0 {
        let mut buf = [T::ZERO; MAX_LANES];
        buf[..tail].copy_from_slice(&x[body..]);
        // SAFETY: `buf` holds MAX_LANES ≥ lanes elements.
        unsafe { f(T::Vector::load(buf.as_ptr())).store(buf.as_mut_ptr()) };
        out[body..].copy_from_slice(&buf[..tail]);
    }
}

/// `(out_a[i], out_b[i]) = f(x[i])`: one function with two results, tails as in [`map1`].
#[inline(always)]
pub(crate) fn map1_to_2<T: Element>(
    x: &[T],
    out_a: &mut [T],
    out_b: &mut [T],
    f: impl Fn(T::Vector) -> (T::Vector, T::Vector),
) {
    assert!(
        x.len() == out_a.len() && x.len() == out_b.len(),
        "elementwise kernel: input has {} elements but the outputs have {} and {}",
        x.len(),
        out_a.len(),
        out_b.len()
    );
    let lanes = T::Vector::LANES;
    let body = x.len() - x.len() % lanes;
    for ((xc, ac), bc) in x[..body]
        .chunks_exact(lanes)
        .zip(out_a[..body].chunks_exact_mut(lanes))
        .zip(out_b[..body].chunks_exact_mut(lanes))
    {
        // SAFETY: all chunks hold exactly `lanes` elements.
        unsafe {
            let (a, b) = f(T::Vector::load(xc.as_ptr()));
            a.store(ac.as_mut_ptr());
            b.store(bc.as_mut_ptr());
        }
    }
    let tail = x.len() - body;
    if tail > 0 {
        let (mut bx, mut ba, mut bb) = (
            [T::ZERO; MAX_LANES],
            [T::ZERO; MAX_LANES],
            [T::ZERO; MAX_LANES],
        );
        bx[..tail].copy_from_slice(&x[body..]);
        // SAFETY: the buffers hold MAX_LANES ≥ lanes elements.
        unsafe {
            let (a, b) = f(T::Vector::load(bx.as_ptr()));
            a.store(ba.as_mut_ptr());
            b.store(bb.as_mut_ptr());
        }
        out_a[body..].copy_from_slice(&ba[..tail]);
        out_b[body..].copy_from_slice(&bb[..tail]);
    }
}

/// `x[i] = f(x[i])` in place.
#[inline(always)]
pub(crate) fn map1_in_place<T: Element>(x: &mut [T], f: impl Fn(T::Vector) -> T::Vector) {
    let lanes = T::Vector::LANES;
    let body = x.len() - x.len() % lanes;
    for xc in x[..body].chunks_exact_mut(lanes) {
        // SAFETY: the chunk holds exactly `lanes` elements.
        unsafe { f(T::Vector::load(xc.as_ptr())).store(xc.as_mut_ptr()) };
    }
    let tail = x.len() - body;
    if tail > 0 {
        let mut buf = [T::ZERO; MAX_LANES];
        buf[..tail].copy_from_slice(&x[body..]);
        // SAFETY: `buf` holds MAX_LANES ≥ lanes elements.
        unsafe { f(T::Vector::load(buf.as_ptr())).store(buf.as_mut_ptr()) };
        x[body..].copy_from_slice(&buf[..tail]);
    }
}

/// `out[i] = f(x[i], y[i], out[i])`.
#[inline(always)]
pub(crate) fn map3<T: Element>(
    x: &[T],
    y: &[T],
    out: &mut [T],
    f: impl Fn(T::Vector, T::Vector, T::Vector) -> T::Vector,
) {
    assert!(
        x.len() == out.len() && y.len() == out.len(),
        "elementwise kernel: inputs have {} and {} elements but output has {}",
        x.len(),
        y.len(),
        out.len()
    );
    let lanes = T::Vector::LANES;
    let body = x.len() - x.len() % lanes;
    for ((xc, yc), oc) in x[..body]
        .chunks_exact(lanes)
        .zip(y[..body].chunks_exact(lanes))
        .zip(out[..body].chunks_exact_mut(lanes))
    {
        // SAFETY: all chunks hold exactly `lanes` elements.
        unsafe {
            let r = f(
                T::Vector::load(xc.as_ptr()),
                T::Vector::load(yc.as_ptr()),
                T::Vector::load(oc.as_ptr()),
            );
            r.store(oc.as_mut_ptr());
        }
    }
    let tail = x.len() - body;
    if tail > 0 {
        let (mut bx, mut by, mut bo) = (
            [T::ZERO; MAX_LANES],
            [T::ZERO; MAX_LANES],
            [T::ZERO; MAX_LANES],
        );
        bx[..tail].copy_from_slice(&x[body..]);
        by[..tail].copy_from_slice(&y[body..]);
        bo[..tail].copy_from_slice(&out[body..]);
        // SAFETY: the buffers hold MAX_LANES ≥ lanes elements.
        unsafe {
            let r = f(
                T::Vector::load(bx.as_ptr()),
                T::Vector::load(by.as_ptr()),
                T::Vector::load(bo.as_ptr()),
            );
            r.store(bo.as_mut_ptr());
        }
        out[body..].copy_from_slice(&bo[..tail]);
    }
}
