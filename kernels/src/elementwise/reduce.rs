//! Per-member reductions over a member-major buffer `[members, n]`.

use crate::frame::align_frame;
use crate::simd::canonical_sum;
use crate::{Element, SimdVector};

/// Reduces `x[e, :]` (and `y[e, :]`) for each member in the canonical order of
/// [`canonical_sum`] (16 partial sums combined by halving), so results depend neither on threads,
/// nor on where the data sits, nor on the build's vector width.
#[inline(always)]
fn reduce_members<T: Element>(
    members: usize,
    x: &[T],
    y: &[T],
    out: &mut [T],
    f: impl Fn(T::Vector, T::Vector, T::Vector) -> T::Vector,
    name: &str,
) {
    align_frame();
    assert_eq!(
        out.len(),
        members,
        "{name}: out must have one entry per member ({members})"
    );
    assert_eq!(x.len(), y.len(), "{name}: x and y must have equal lengths");
    if members == 0 {
        return;
    }
    assert_eq!(
        x.len() % members,
        0,
        "{name}: x has {} elements, not a multiple of {members} members",
        x.len()
    );
    let n = x.len() / members;
    for (e, o) in out.iter_mut().enumerate() {
        let (xe, ye) = (&x[e * n..(e + 1) * n], &y[e * n..(e + 1) * n]);
        // Zero padding adds nothing.
        *o = canonical_sum(xe, ye, T::ZERO, &f);
    }
}

/// `out[e] = Σ_i x[e, i]`; `x` is `[members, n]`.
///
/// # Panics
/// If `out.len() ≠ members` or `x.len()` is not a multiple of `members`.
pub fn sum_per_member<T: Element>(members: usize, x: &[T], out: &mut [T]) {
    reduce_members(members, x, x, out, |x, _, acc| acc + x, "sum_per_member");
}

/// `out[e] = Σ_i x[e, i]²`; `x` is `[members, n]`.
///
/// # Panics
/// As [`sum_per_member`].
pub fn sum_squares_per_member<T: Element>(members: usize, x: &[T], out: &mut [T]) {
    reduce_members(
        members,
        x,
        x,
        out,
        |x, _, acc| x.mul_add(x, acc),
        "sum_squares_per_member",
    );
}

/// `out[e] = Σ_i x[e, i]·y[e, i]`; `x`, `y` are `[members, n]`.
///
/// # Panics
/// As [`sum_per_member`], or if `x` and `y` differ in length.
pub fn dot_per_member<T: Element>(members: usize, x: &[T], y: &[T], out: &mut [T]) {
    reduce_members(
        members,
        x,
        y,
        out,
        |x, y, acc| x.mul_add(y, acc),
        "dot_per_member",
    );
}

/// `out[e] = Σ_i ln x[e, i]`; `x` is `[members, n]` — the log-determinant term of a Gaussian
/// with scales `x`, without writing the logarithms out, in the canonical order of every
/// per-member reduction (16 partial sums combined by halving, whatever the vector width; the
/// last partial run padded with ones: `ln 1 = 0`).
///
/// # Panics
/// As [`sum_per_member`].
pub fn sum_ln_per_member<T: Element>(members: usize, x: &[T], out: &mut [T]) {
    assert_eq!(
        out.len(),
        members,
        "sum_ln_per_member: out must have one entry per member ({members})"
    );
    if members == 0 {
        return;
    }
    assert!(
        x.len().is_multiple_of(members),
        "sum_ln_per_member: x has {} elements, not a multiple of {members} members",
        x.len()
    );
    let n = x.len() / members;
    // As `elementwise::ln`: checked once, positive normal values skip `ln`'s check per vector.
    let (lo, hi) = T::Vector::LN_NORMAL;
    let normal = super::map::all_inside(x, lo, hi);
    for (xe, o) in x.chunks_exact(n.max(1)).zip(out.iter_mut()) {
        // Padded with ones: ln 1 = 0.
        *o = if normal {
            canonical_sum(xe, xe, T::ONE, |x, _, acc| acc + x.ln_normal())
        } else {
            canonical_sum(xe, xe, T::ONE, |x, _, acc| acc + x.ln())
        };
    }
    if n == 0 {
        out.fill(T::ZERO);
    }
}

/// Whether every value of `x` is finite (no NaN, no ±∞): one vector pass summing `x·0`, which is
/// NaN as soon as one value is not finite — no branch per element.
pub fn all_finite<T: Element>(x: &[T]) -> bool {
    let mut out = [T::ZERO];
    let zero = T::Vector::splat(T::ZERO);
    reduce_members(
        1,
        x,
        x,
        &mut out,
        |x, _, acc| x.mul_add(zero, acc),
        "all_finite",
    );
    out[0] == T::ZERO
}

/// `out[c] += Σ_r x[r, c]` for a row-major `x` of `[rows, out.len()]` — the bias gradient of a
/// dense layer, summed over the batch. Each column is summed row by row in order, starting
/// from its value in `out` (the same bits as [`naive::add_column_sums`]), in vector registers:
/// up to four vectors of columns per pass over the rows, so the sums never go back to memory
/// between rows (the plain loop did, one store-to-load round trip per row).
///
/// # Panics
/// If `out` is empty while `x` is not, or `x.len()` is not a multiple of `out.len()`.
pub fn add_column_sums<T: Element>(x: &[T], out: &mut [T]) {
    align_frame();
    let cols = out.len();
    if x.is_empty() {
        return;
    }
    assert!(
        cols > 0 && x.len().is_multiple_of(cols),
        "add_column_sums: x has {} elements, not a multiple of {cols} columns",
        x.len()
    );
    let lanes = T::Vector::LANES;
    let mut start = 0;
    while cols - start >= lanes {
        start += match (cols - start) / lanes {
            1 => sum_columns::<T, 1>(x, out, start),
            2 => sum_columns::<T, 2>(x, out, start),
            3 => sum_columns::<T, 3>(x, out, start),
            _ => sum_columns::<T, 4>(x, out, start),
        };
    }
    for (c, o) in out.iter_mut().enumerate().skip(start) {
        *o = x.iter().skip(c).step_by(cols).fold(*o, |acc, &v| acc + v);
    }
}

/// [`add_column_sums`] over the `K` vectors of columns from `start`; returns the columns done.
#[inline(always)]
fn sum_columns<T: Element, const K: usize>(x: &[T], out: &mut [T], start: usize) -> usize {
    let cols = out.len();
    let rows = x.len() / cols;
    accumulate_columns::<T, K>(rows, out, start, |r, c| {
        T::Vector::from_slice(&x[r * cols + c..])
    });
    K * T::Vector::LANES
}

/// `out[e] += Σ_r x[e, r]` for a member-major `x` of `[out.len(), rows]` — the bias gradients
/// of a one-output layer, one per member. Each member's sum runs row by row in order from its
/// value in `out` (the bits of [`add_column_sums`] on the member's one column), eight members'
/// sums interleaved so that their chains of dependent additions overlap, where one member's
/// chain at a time waited on each addition.
///
/// # Panics
/// If `out` is empty while `x` is not, or `x.len()` is not a multiple of `out.len()`.
pub fn add_sums_per_member<T: Element>(x: &[T], out: &mut [T]) {
    if x.is_empty() {
        return;
    }
    let members = out.len();
    assert!(
        members > 0 && x.len().is_multiple_of(members),
        "add_sums_per_member: x has {} elements, not a multiple of {members} members",
        x.len()
    );
    const GROUP: usize = 8;
    let rows = x.len() / members;
    for (x_g, out_g) in x.chunks(GROUP * rows).zip(out.chunks_mut(GROUP)) {
        if let Ok(group) = <&mut [T; GROUP]>::try_from(&mut *out_g) {
            let x_e: [&[T]; GROUP] = core::array::from_fn(|j| &x_g[j * rows..(j + 1) * rows]);
            let mut acc = *group;
            for r in 0..rows {
                for (a, x_e) in acc.iter_mut().zip(x_e) {
                    *a += x_e[r];
                }
            }
            *group = acc;
        } else {
            for (o, x_e) in out_g.iter_mut().zip(x_g.chunks_exact(rows)) {
                *o = x_e.iter().fold(*o, |acc, &v| acc + v);
            }
        }
    }
}

/// `out[c..c + lanes] += Σ_r value(r, c)` for the `K` vectors of columns from `start`, rows in
/// order, the sums held in registers down the rows (the shared loop of [`add_column_sums`] and
/// the fused layer backward, whose `value` computes and stores `dz` on the way).
#[inline(always)]
pub(crate) fn accumulate_columns<T: Element, const K: usize>(
    rows: usize,
    out: &mut [T],
    start: usize,
    mut value: impl FnMut(usize, usize) -> T::Vector,
) {
    let lanes = T::Vector::LANES;
    let target = &mut out[start..start + K * lanes];
    let mut acc: [T::Vector; K] =
        core::array::from_fn(|k| T::Vector::from_slice(&target[k * lanes..]));
    for r in 0..rows {
        for (k, a) in acc.iter_mut().enumerate() {
            *a = *a + value(r, start + k * lanes);
        }
    }
    for (k, a) in acc.into_iter().enumerate() {
        a.write_to(&mut target[k * lanes..]);
    }
}

/// Naive references (sequential sums).
pub mod naive {
    use crate::Element;

    /// Whether every value is finite.
    pub fn all_finite<T: Element>(x: &[T]) -> bool {
        x.iter().all(|v| v.is_finite())
    }

    /// `out[e] = Σ_i x[e, i]·y[e, i]`.
    pub fn dot_per_member<T: Element>(members: usize, x: &[T], y: &[T], out: &mut [T]) {
        let n = x.len().checked_div(members).unwrap_or(0);
        for e in 0..members {
            out[e] = (0..n).fold(T::ZERO, |acc, i| x[e * n + i].mul_add(y[e * n + i], acc));
        }
    }
    /// `out[c] += Σ_r x[r, c]`, row by row.
    pub fn add_column_sums<T: Element>(x: &[T], out: &mut [T]) {
        let cols = out.len();
        for row in x.chunks_exact(cols.max(1)) {
            for (o, &v) in out.iter_mut().zip(row) {
                *o += v;
            }
        }
    }
    /// `out[e] = Σ_i ln x[e, i]`.
    pub fn sum_ln_per_member<T: Element>(members: usize, x: &[T], out: &mut [T]) {
        let n = x.len().checked_div(members).unwrap_or(0);
        for e in 0..members {
            out[e] = (0..n).fold(T::ZERO, |acc, i| acc + x[e * n + i].ln());
        }
    }
    /// `out[e] = Σ_i x[e, i]`.
    pub fn sum_per_member<T: Element>(members: usize, x: &[T], out: &mut [T]) {
        let n = x.len().checked_div(members).unwrap_or(0);
        for e in 0..members {
            out[e] = (0..n).fold(T::ZERO, |acc, i| acc + x[e * n + i]);
        }
    }
    /// `out[e] = Σ_i x[e, i]²`.
    pub fn sum_squares_per_member<T: Element>(members: usize, x: &[T], out: &mut [T]) {
        dot_per_member(members, x, x, out);
    }
}
