//! The register-blocked microkernel: one `ROWS × NR` tile of `C`, with `NR` = two vectors.
//!
//! The tile keeps `2·ROWS` vector accumulators in registers. Each step of the `k` loop loads one
//! row of the (packed or already contiguous) `B` panel as two vectors and broadcasts `ROWS`
//! elements of `op(A)` straight from memory, so `A` is never packed: at the seed's sizes packing
//! `A` would cost as much as the product itself.

use crate::{Element, SimdVector};

/// Rows of `C` per tile. With AVX-512 there are 32 vector registers: 8 rows × 2 vectors = 16
/// accumulators; with 16 registers (AVX2, SSE) 6 or 4 rows leave room for the loads.
pub(crate) const MR: usize = if cfg!(target_feature = "avx512f") {
    8
} else if cfg!(target_feature = "avx") {
    6
} else {
    4
};

/// Columns of `C` per tile for element type `T`: two vectors.
#[inline(always)]
pub(crate) const fn nr<T: Element>() -> usize {
    2 * <T::Vector as SimdVector>::LANES
}

/// Pointers and strides of one tile.
#[derive(Clone, Copy)]
pub(crate) struct Tile<T> {
    /// Length of the shared dimension.
    pub k: usize,
    /// `op(A)[i, p]` is at `a + i·a_rs + p·a_cs`.
    pub a: *const T,
    pub a_rs: usize,
    pub a_cs: usize,
    /// Row `p` of the `B` panel starts at `b + p·b_rs` and holds `NR` contiguous readable values.
    pub b: *const T,
    pub b_rs: usize,
    /// `C[i, j]` is at `c + i·c_rs + j`.
    pub c: *mut T,
    pub c_rs: usize,
    /// Valid columns of this tile (`≤ NR`); the rest of the panel is padding.
    pub cols: usize,
    pub alpha: T,
    pub beta: T,
}

/// Computes `C[..ROWS, ..cols] = α·op(A)·B + β·C` for one tile; `β = 0` never reads `C`.
///
/// # Safety
/// Every address described by `tile` for `ROWS` rows, `k` steps and `NR` panel columns must be
/// valid (reads) and `C`'s `ROWS × cols` tile must be valid for writes and not aliased.
#[inline(always)]
pub(crate) unsafe fn tile<T: Element, const ROWS: usize>(t: Tile<T>) {
    let lanes = <T::Vector as SimdVector>::LANES;
    let zero = T::Vector::splat(T::ZERO);
    let mut acc0 = [zero; ROWS];
    let mut acc1 = [zero; ROWS];
    for p in 0..t.k {
        // SAFETY: within the panel and op(A) as promised by the caller.
        unsafe {
            let brow = t.b.add(p * t.b_rs);
            let b0 = T::Vector::load(brow);
            let b1 = T::Vector::load(brow.add(lanes));
            let ap = t.a.add(p * t.a_cs);
            for i in 0..ROWS {
                let ai = T::Vector::splat(*ap.add(i * t.a_rs));
                acc0[i] = ai.mul_add(b0, acc0[i]);
                acc1[i] = ai.mul_add(b1, acc1[i]);
            }
        }
    }
    let alpha = T::Vector::splat(t.alpha);
    let beta = T::Vector::splat(t.beta);
    let beta_is_zero = t.beta == T::ZERO;
    if t.cols == 2 * lanes {
        for i in 0..ROWS {
            // SAFETY: a full tile row of C is writable.
            unsafe {
                let crow = t.c.add(i * t.c_rs);
                let (mut r0, mut r1) = (acc0[i] * alpha, acc1[i] * alpha);
                if !beta_is_zero {
                    r0 = beta.mul_add(T::Vector::load(crow), r0);
                    r1 = beta.mul_add(T::Vector::load(crow.add(lanes)), r1);
                }
                r0.store(crow);
                r1.store(crow.add(lanes));
            }
        }
    } else {
        let mut row = [T::ZERO; 2 * crate::simd::MAX_LANES];
        for i in 0..ROWS {
            // SAFETY: `row` holds two vectors; only the first `cols` entries of C's row are touched.
            unsafe {
                (acc0[i] * alpha).store(row.as_mut_ptr());
                (acc1[i] * alpha).store(row.as_mut_ptr().add(lanes));
                let crow = t.c.add(i * t.c_rs);
                for (j, &r) in row.iter().enumerate().take(t.cols) {
                    let cij = crow.add(j);
                    *cij = if beta_is_zero {
                        r
                    } else {
                        t.beta.mul_add(*cij, r)
                    };
                }
            }
        }
    }
}

/// Runs the tile kernel for `rows ≤ MR` rows.
///
/// # Safety
/// As [`tile`] with `ROWS = rows`.
#[inline]
pub(crate) unsafe fn tile_rows<T: Element>(rows: usize, t: Tile<T>) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match rows {
            1 => tile::<T, 1>(t),
            2 => tile::<T, 2>(t),
            3 => tile::<T, 3>(t),
            4 => tile::<T, 4>(t),
            5 => tile::<T, 5>(t),
            6 => tile::<T, 6>(t),
            7 => tile::<T, 7>(t),
            8 => tile::<T, 8>(t),
            _ => unreachable!("tile rows {rows} exceed MR = {MR}"),
        }
    }
}
