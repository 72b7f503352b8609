//! Packing operands into the contiguous panels the microkernel streams through.

use crate::frame::align_frame;
use crate::{Element, SimdVector};

/// Copies columns `j0..j0 + cols` of `op(B)` (`k` rows) into `panel` as `k` rows of `nr`
/// values, zero-padding columns `cols..nr`.
///
/// `op(B)[p, j] = b[p·b_rs + j·b_cs]`; `b` starts at the member's first element.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pack_b<T: Element>(
    b: &[T],
    b_rs: usize,
    b_cs: usize,
    k: usize,
    j0: usize,
    cols: usize,
    nr: usize,
    panel: &mut [T],
) {
    align_frame();
    let panel = &mut panel[..k * nr];
    if cols < nr {
        panel.fill(T::ZERO);
    }
    if b_cs == 1 {
        // Rows of op(B) are contiguous: copy row slices — whole vectors through registers where
        // the panel's columns are whole vectors (a `copy_from_slice` of a length known only at
        // run time is a call to `memmove` per row, 64 or 128 bytes).
        let lanes = <T::Vector as SimdVector>::LANES;
        let whole_vectors = cols == nr && nr.is_multiple_of(lanes);
        for (p, dst) in panel.chunks_exact_mut(nr).enumerate() {
            let src = &b[p * b_rs + j0..p * b_rs + j0 + cols];
            if whole_vectors {
                for (s, d) in src.chunks_exact(lanes).zip(dst.chunks_exact_mut(lanes)) {
                    T::Vector::from_slice(s).write_to(d);
                }
            } else {
                dst[..cols].copy_from_slice(src);
            }
        }
    } else {
        // Columns of op(B) are strided (B is stored transposed): a transpose, four columns at a
        // time so each panel row gets four adjacent values per step.
        if k > 0 && cols > 0 {
            assert!(
                (j0 + cols - 1) * b_cs + (k - 1) * b_rs < b.len(),
                "pack_b: B too short"
            );
        }
        // Where op(B)'s columns are contiguous rows of the stored matrix (`b_rs = 1`, e.g. `Wᵀ`
        // of a row-major `W`), whole LANES × LANES blocks go through register transposes.
        let lanes = <T::Vector as SimdVector>::LANES;
        let (full_cols, full_k) = if b_rs == 1 {
            (cols / lanes * lanes, k / lanes * lanes)
        } else {
            (0, 0)
        };
        for jb in (0..full_cols).step_by(lanes) {
            for pb in (0..full_k).step_by(lanes) {
                // SAFETY: rows j0 + jb.. j0 + jb + lanes ≤ j0 + cols and columns pb..pb + lanes ≤ k
                // of the stored matrix are in `b` (asserted above, `b_rs = 1`); the panel holds
                // rows pb..pb + lanes of nr ≥ jb + lanes values.
                unsafe {
                    T::Vector::transpose_block(
                        b.as_ptr().add((j0 + jb) * b_cs + pb),
                        b_cs,
                        panel.as_mut_ptr().add(pb * nr + jb),
                        nr,
                    );
                }
            }
            // The rows of the panel below the last whole block.
            for p in full_k..k {
                for jj in jb..jb + lanes {
                    panel[p * nr + jj] = b[(j0 + jj) * b_cs + p * b_rs];
                }
            }
        }
        let quads = full_cols + (cols - full_cols) / 4 * 4;
        for jj in (full_cols..quads).step_by(4) {
            let base = (j0 + jj) * b_cs;
            for p in 0..k {
                let src = base + p * b_rs;
                // SAFETY: columns j0 + jj..j0 + jj + 4 < j0 + cols and rows p < k are in `b`
                // (asserted above); `p·nr + jj + 3 < k·nr` is in `panel`.
                unsafe {
                    let dst = panel.as_mut_ptr().add(p * nr + jj);
                    *dst = *b.get_unchecked(src);
                    *dst.add(1) = *b.get_unchecked(src + b_cs);
                    *dst.add(2) = *b.get_unchecked(src + 2 * b_cs);
                    *dst.add(3) = *b.get_unchecked(src + 3 * b_cs);
                }
            }
        }
        for jj in quads..cols {
            let col = &b[(j0 + jj) * b_cs..];
            for p in 0..k {
                panel[p * nr + jj] = col[p * b_rs];
            }
        }
    }
}
