//! Applying a vector function over slices, with tails handled by the same vector code.

use crate::frame::align_frame;
use crate::simd::MAX_LANES;
use crate::{Element, SimdVector};

/// `out[i] = f(x[i])` in vectors. The tail is copied into a zero-padded vector and goes through
/// the same `f`, so every element gets bit-identical math wherever it sits in the slice.
#[inline(always)]
pub(crate) fn map1<T: Element>(x: &[T], out: &mut [T], f: impl Fn(T::Vector) -> T::Vector) {
    map1_paired(x, out, &f, |a, b| (f(a), f(b)));
}

/// [`map1`] two vectors at a time through `pair`, which must give bitwise `(f(a), f(b))` (a
/// function whose dependent steps are too long for the core to overlap one vector with the
/// next computes the two together); the last whole vector and the tail go through `f`.
#[inline(always)]
pub(crate) fn map1_paired<T: Element>(
    x: &[T],
    out: &mut [T],
    f: impl Fn(T::Vector) -> T::Vector,
    pair: impl Fn(T::Vector, T::Vector) -> (T::Vector, T::Vector),
) {
    align_frame();
    assert_eq!(
        x.len(),
        out.len(),
        "elementwise kernel: input has {} elements but output has {}",
        x.len(),
        out.len()
    );
    let lanes = T::Vector::LANES;
    let body = x.len() - x.len() % lanes;
    let pairs = body - body % (2 * lanes);
    for (xc, oc) in x[..pairs]
        .chunks_exact(2 * lanes)
        .zip(out[..pairs].chunks_exact_mut(2 * lanes))
    {
        let (o0, o1) = oc.split_at_mut(lanes);
        let (a, b) = pair(
            T::Vector::from_slice(&xc[..lanes]),
            T::Vector::from_slice(&xc[lanes..]),
        );
        a.write_to(o0);
        b.write_to(o1);
    }
    if pairs < body {
        f(T::Vector::from_slice(&x[pairs..body])).write_to(&mut out[pairs..body]);
    }
    let tail = x.len() - body;
    if tail > 0 {
        let mut buf = [T::ZERO; MAX_LANES];
        buf[..tail].copy_from_slice(&x[body..]);
        f(T::Vector::from_slice(&buf)).write_to(&mut buf);
        out[body..].copy_from_slice(&buf[..tail]);
    }
}

/// Whether every value of `x` lies strictly inside `(lo, hi)` (NaN does not): one pass of
/// vector comparisons, without an early exit.
pub(crate) fn all_inside<T: Element>(x: &[T], lo: T, hi: T) -> bool {
    let lanes = T::Vector::LANES;
    let body = x.len() - x.len() % lanes;
    let (zero, one) = (T::Vector::splat(T::ZERO), T::Vector::splat(T::ONE));
    let (lo_v, hi_v) = (T::Vector::splat(lo), T::Vector::splat(hi));
    // 1 in every lane whose values so far were all inside; a NaN compares false, so it is not.
    let mut inside = one;
    for chunk in x[..body].chunks_exact(lanes) {
        let v = T::Vector::from_slice(chunk);
        inside = inside.min(v.select_gt(lo_v, v.select_lt(hi_v, one, zero), zero));
    }
    inside.reduce_add() == T::from_f64(lanes as f64) && x[body..].iter().all(|&v| v > lo && v < hi)
}

/// `(out_a[i], out_b[i]) = f(x[i])`: one function with two results, tails as in [`map1`].
#[inline(always)]
pub(crate) fn map1_to_2<T: Element>(
    x: &[T],
    out_a: &mut [T],
    out_b: &mut [T],
    f: impl Fn(T::Vector) -> (T::Vector, T::Vector),
) {
    align_frame();
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
        let (a, b) = f(T::Vector::from_slice(xc));
        a.write_to(ac);
        b.write_to(bc);
    }
    let tail = x.len() - body;
    if tail > 0 {
        let (mut bx, mut ba, mut bb) = (
            [T::ZERO; MAX_LANES],
            [T::ZERO; MAX_LANES],
            [T::ZERO; MAX_LANES],
        );
        bx[..tail].copy_from_slice(&x[body..]);
        let (a, b) = f(T::Vector::from_slice(&bx));
        a.write_to(&mut ba);
        b.write_to(&mut bb);
        out_a[body..].copy_from_slice(&ba[..tail]);
        out_b[body..].copy_from_slice(&bb[..tail]);
    }
}

/// `x[i] = f(x[i])` in place.
#[inline(always)]
pub(crate) fn map1_in_place<T: Element>(x: &mut [T], f: impl Fn(T::Vector) -> T::Vector) {
    map1_in_place_paired(x, &f, |a, b| (f(a), f(b)));
}

/// [`map1_in_place`] two vectors at a time through `pair`, as [`map1_paired`].
#[inline(always)]
pub(crate) fn map1_in_place_paired<T: Element>(
    x: &mut [T],
    f: impl Fn(T::Vector) -> T::Vector,
    pair: impl Fn(T::Vector, T::Vector) -> (T::Vector, T::Vector),
) {
    align_frame();
    let lanes = T::Vector::LANES;
    let body = x.len() - x.len() % lanes;
    let pairs = body - body % (2 * lanes);
    for xc in x[..pairs].chunks_exact_mut(2 * lanes) {
        let (x0, x1) = xc.split_at_mut(lanes);
        let (a, b) = pair(T::Vector::from_slice(x0), T::Vector::from_slice(x1));
        a.write_to(x0);
        b.write_to(x1);
    }
    if pairs < body {
        let v = f(T::Vector::from_slice(&x[pairs..body]));
        v.write_to(&mut x[pairs..body]);
    }
    let tail = x.len() - body;
    if tail > 0 {
        let mut buf = [T::ZERO; MAX_LANES];
        buf[..tail].copy_from_slice(&x[body..]);
        f(T::Vector::from_slice(&buf)).write_to(&mut buf);
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
    align_frame();
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
        let r = f(
            T::Vector::from_slice(xc),
            T::Vector::from_slice(yc),
            T::Vector::from_slice(oc),
        );
        r.write_to(oc);
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
        let r = f(
            T::Vector::from_slice(&bx),
            T::Vector::from_slice(&by),
            T::Vector::from_slice(&bo),
        );
        r.write_to(&mut bo);
        out[body..].copy_from_slice(&bo[..tail]);
    }
}
