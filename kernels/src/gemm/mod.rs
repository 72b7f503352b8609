//! Member-batched GEMM: `C_e = α·op(A_e)·op(B_e) + β·C_e` for `E` independent members.
//!
//! This covers every product of an MLP layer for a whole ensemble at once: the forward
//! `Y = X·Wᵀ` (`X` shared by all members through a zero member stride), the weight gradient
//! `dW = dYᵀ·X` and the input gradient `dX = dY·W`.
//!
//! # Structure
//! `gemm` validates shapes, then splits the work into tasks — (member, column panel), and row
//! blocks too when there are fewer than four of those per thread — and runs each through
//! `Problem::run`. A task sweeps `C` in panels of `NR` columns (two or four vectors, by `n`; the
//! last panel of a product whose width is not a multiple of `NR` takes as few vectors as cover
//! it); each panel of `op(B)` is used in place when it is already contiguous (and its rows do
//! not evict `op(A)`'s from L1: `l1_set_conflict`), and otherwise packed (zero-padded) into a
//! thread-local buffer; then the microkernel computes `MR × NR` tiles
//! down the rows. There is no `k` blocking: a `k × NR` panel stays in L1/L2 for the widths an
//! ensemble of small networks has. Every element of `C` is one sequential chain of FMAs over `k`
//! whatever the tiles and tasks, so results are bitwise identical with and without threads.
//!
//! Measured (AVX-512 Zen 4, f32, E=5 B=100, fastest of 15 batches, builds alternated twice):
//! the narrow last panel lifts the 200-column products from 70–75 % of one core's FMA peak to
//! 84–91 % (784→200 X·Wᵀ from 68–73 % to 84–89 %); splitting over column panels as well as
//! members lifts their two-thread figures from 35–58 % (five members on two threads ran 3 + 2)
//! to 71–82 % (one outlier at 46 %). The seed's and the wide shapes are unchanged.

mod error;
mod layout;
mod microkernel;
mod naive;
mod pack;
mod thin;

use std::ops::Range;

use rayon::prelude::*;

pub use error::GemmError;
pub use layout::{MatMut, MatRef, Operand};
pub use naive::gemm_naive;
pub(crate) use thin::CHAINS as THIN_CHAINS;

use crate::{Element, Parallelism};
use layout::member_span;
use microkernel::{Tile, TileShape, tile_rows};

/// `C_e = α·op(A_e)·op(B_e) + β·C_e` for members `e = 0..members` (BLAS meanings of α and β).
///
/// - `a`: `op(A)` is `m × k` per member; `b`: `op(B)` is `k × n`; `c`: `m × n`.
/// - A member stride of 0 on `a` or `b` shares that operand between members without a copy.
/// - `β = 0` never reads `C` (NaN or garbage there is overwritten); `k = 0` gives `C = β·C`.
/// - `parallelism` decides whether rayon may be used; results are bitwise identical either way.
///
/// ```
/// use flock_kernels::{MatMut, MatRef, Parallelism, gemm};
/// // Two members, each Y_e = X·W_eᵀ with one shared X (3×2) and W_e (4×2).
/// let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
/// let w: Vec<f32> = (0..16).map(|v| v as f32).collect();
/// let mut y = vec![0.0f32; 2 * 3 * 4];
/// gemm(2, 1.0, MatRef::shared(&x, 3, 2), MatRef::new(&w, 4, 2).t(), 0.0,
///      MatMut::new(&mut y, 3, 4), Parallelism::Sequential)?;
/// assert_eq!(y[0], 1.0 * 0.0 + 2.0 * 1.0); // member 0, row 0, col 0
/// assert_eq!(y[12], 1.0 * 8.0 + 2.0 * 9.0); // member 1, row 0, col 0
/// # Ok::<(), flock_kernels::GemmError>(())
/// ```
pub fn gemm<T: Element>(
    members: usize,
    alpha: T,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    beta: T,
    c: MatMut<'_, T>,
    parallelism: Parallelism,
) -> Result<(), GemmError> {
    let (m, n, k) = validate(members, &a, &b, &c)?;
    if members == 0 || m == 0 || n == 0 {
        return Ok(());
    }
    let ((a_rs, a_cs), (b_rs, b_cs)) = (a.op_strides(), b.op_strides());
    let b_panels_crowd_l1 = b_cs == 1 && panels_crowd_l1::<T>(b_rs, a_cs, k);
    let crowded = (a_rs == 1 && a_cs != 1) || b_panels_crowd_l1;
    let shape = TileShape::for_columns::<T>(n, crowded);
    let problem = Problem {
        m,
        n,
        k,
        shape,
        a,
        b,
        c_rs: c.row_stride,
        c_member_stride: if members == 1 { 0 } else { c.member_stride },
        b_panels_crowd_l1,
        alpha,
        beta,
    };
    let c_out = OutPtr(c.data.as_mut_ptr());
    let flops = 2 * members * m * n * k.max(1);
    if parallelism.should_split(flops) {
        let threads = rayon::current_num_threads();
        // Tasks are (member, column panel, row block): whole panels so that no panel of B is
        // packed twice, and row blocks only when members × panels alone would leave a thread
        // idle for long (at least four tasks per thread, so rayon's stealing evens them out).
        let nr = shape.nr::<T>();
        let thin = n == 1 || k == 1 || m == 1;
        let panels = if thin { 1 } else { n.div_ceil(nr) };
        let panel_cols = if thin { n } else { nr };
        let wanted_row_blocks = (4 * threads).div_ceil(members * panels);
        let row_block = m.div_ceil(wanted_row_blocks).div_ceil(shape.rows) * shape.rows;
        let row_blocks = m.div_ceil(row_block);
        (0..members * panels * row_blocks)
            .into_par_iter()
            .for_each(|task| {
                let (e, rest) = (task / (panels * row_blocks), task % (panels * row_blocks));
                let (panel, block) = (rest / row_blocks, rest % row_blocks);
                let rows = block * row_block..m.min((block + 1) * row_block);
                let cols = panel * panel_cols..n.min((panel + 1) * panel_cols);
                // SAFETY: tasks write disjoint (member, rows, columns) blocks of C, all within
                // the validated output buffer.
                unsafe { problem.run(e, rows, cols, c_out) };
            });
    } else {
        for e in 0..members {
            // SAFETY: one call at a time, within the validated output buffer.
            unsafe { problem.run(e, 0..m, 0..n, c_out) };
        }
    }
    Ok(())
}

/// The output buffer's base pointer, shared by tasks that write disjoint blocks of it.
#[derive(Clone, Copy)]
struct OutPtr<T>(*mut T);

// SAFETY: `OutPtr` is only dereferenced by `Problem::run` on disjoint blocks of one buffer that
// outlives the parallel region (`gemm` holds its `&mut` for the whole call).
unsafe impl<T: Send> Send for OutPtr<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for OutPtr<T> {}

/// Checks shapes and buffer sizes; returns `(m, n, k)`.
pub(crate) fn validate<T>(
    members: usize,
    a: &MatRef<'_, T>,
    b: &MatRef<'_, T>,
    c: &MatMut<'_, T>,
) -> Result<(usize, usize, usize), GemmError> {
    let (op_a, op_b) = (a.op_shape(), b.op_shape());
    if op_a.1 != op_b.0 {
        return Err(GemmError::InnerDimensionMismatch { op_a, op_b });
    }
    let (m, k, n) = (op_a.0, op_a.1, op_b.1);
    if (c.rows, c.cols) != (m, n) {
        return Err(GemmError::OutputShapeMismatch {
            expected: (m, n),
            found: (c.rows, c.cols),
        });
    }
    let operands = [
        (
            Operand::A,
            a.rows,
            a.cols,
            a.row_stride,
            a.member_stride,
            a.data.len(),
        ),
        (
            Operand::B,
            b.rows,
            b.cols,
            b.row_stride,
            b.member_stride,
            b.data.len(),
        ),
        (
            Operand::C,
            c.rows,
            c.cols,
            c.row_stride,
            c.member_stride,
            c.data.len(),
        ),
    ];
    for (operand, rows, cols, row_stride, member_stride, len) in operands {
        if rows > 1 && row_stride < cols {
            return Err(GemmError::RowStrideTooSmall {
                operand,
                row_stride,
                cols,
            });
        }
        let span = member_span(rows, cols, row_stride);
        if members > 0 && span > 0 {
            let needed = (members - 1) * member_stride + span;
            if needed > len {
                return Err(GemmError::BufferTooSmall {
                    operand,
                    needed,
                    len,
                });
            }
        }
    }
    let c_span = member_span(c.rows, c.cols, c.row_stride);
    if members > 1 && c_span > 0 && c.member_stride < c_span {
        return Err(GemmError::OverlappingOutputMembers {
            member_stride: c.member_stride,
            footprint: c_span,
        });
    }
    Ok((m, n, k))
}

/// A validated problem; `run` computes one block of one member's `C`.
struct Problem<'a, T> {
    m: usize,
    n: usize,
    k: usize,
    /// The microkernel's tile shape for this `n` (the last panel may use a narrower one).
    shape: TileShape,
    a: MatRef<'a, T>,
    b: MatRef<'a, T>,
    c_rs: usize,
    /// 0 when there is one member.
    c_member_stride: usize,
    alpha: T,
    beta: T,
    /// Whether `op(B)`'s rows are contiguous but its panels, read in place, would crowd L1 beside
    /// `op(A)` ([`panels_crowd_l1`]).
    b_panels_crowd_l1: bool,
}

impl<T: Element> Problem<'_, T> {
    /// Computes `C[e][rows, cols]`; `cols` starts on a panel boundary (a multiple of the tile's
    /// `NR`) and ends on one or at `n`.
    ///
    /// # Safety
    /// `c` is the validated output buffer of [`gemm`] (so member `e`'s `m × n` block with row
    /// stride `c_rs` lies inside it), and no other thread touches this block meanwhile.
    unsafe fn run(&self, e: usize, rows: Range<usize>, cols: Range<usize>, c: OutPtr<T>) {
        let (m, n, k) = (self.m, self.n, self.k);
        debug_assert!(rows.end <= m && cols.end <= n);
        let (row0, col0) = (rows.start, cols.start);
        let (rows, ncols) = (rows.len(), cols.len());
        if rows == 0 || ncols == 0 {
            return;
        }
        // SAFETY: row `row0`, column `col0` of member e exists in C (the caller's promise).
        let c_block = unsafe { c.0.add(e * self.c_member_stride + row0 * self.c_rs + col0) };
        if k == 0 {
            // SAFETY: the block's rows × cols are in C and this task's alone.
            unsafe { scale_block(c_block, rows, ncols, self.c_rs, self.beta) };
            return;
        }
        let (a_rs, a_cs) = self.a.op_strides();
        let (b_rs, b_cs) = self.b.op_strides();
        let a_off = e * self.a.member_stride + row0 * a_rs;
        let b_off = e * self.b.member_stride;
        if (n == 1 || k == 1 || m == 1) && ncols == n {
            let thin = thin::ThinProblem {
                a: &self.a.data[a_off..],
                a_strides: (a_rs, a_cs),
                b: &self.b.data[b_off..],
                b_strides: (b_rs, b_cs),
                rows,
                m,
                n,
                k,
                alpha: self.alpha,
                beta: self.beta,
            };
            // SAFETY: the block's `rows` whole rows are in C and this task's alone.
            let c_rows =
                unsafe { std::slice::from_raw_parts_mut(c_block, member_span(rows, n, self.c_rs)) };
            if thin.run(c_rows, self.c_rs) {
                return;
            }
        }
        // The validated spans guarantee every index below is in bounds.
        debug_assert!(a_off + (rows - 1) * a_rs + (k - 1) * a_cs < self.a.data.len());
        debug_assert!(b_off + (k - 1) * b_rs + (n - 1) * b_cs < self.b.data.len());
        let nr = self.shape.nr::<T>();
        // op(A) is read in place: each k step broadcasts MR values straight from memory (packing
        // it into MR-row tiles was measured slower at the seed's sizes, 80×32 per member, where
        // the pack costs as much as the product, and no faster at 256×64).
        let a_ptr = self.a.data[a_off..].as_ptr();
        let b_data = &self.b.data[b_off..];
        T::with_scratch(k * nr, |panel| {
            for j0 in cols.clone().step_by(nr) {
                let panel_cols = nr.min(cols.end - j0);
                let shape = if panel_cols < nr {
                    self.shape.for_remainder::<T>(panel_cols)
                } else {
                    self.shape
                };
                let (mr, panel_nr) = (shape.rows, shape.nr::<T>());
                // Loop over column panels is the outer one so each packed panel is reused by
                // every row tile while it is hot in L1.
                // Columns j0..j0+panel_nr exist in every row of op(B): used in place, unless
                // its rows overflow their L1 sets (see `l1_set_conflict`) — and, where op(A)
                // is read down its columns (a transposed A), those overflow theirs too — while
                // narrow panels make every row tile stream them again.
                let aliased = shape.packs_crowded_panels() && self.b_panels_crowd_l1;
                let (panel_ptr, panel_rs) = if b_cs == 1 && panel_cols == panel_nr && !aliased {
                    (b_data[j0..].as_ptr(), b_rs)
                } else {
                    pack::pack_b(b_data, b_rs, b_cs, k, j0, panel_cols, panel_nr, panel);
                    (panel.as_ptr(), panel_nr)
                };
                // Two-vector tiles even out a small last tile (AVX2: the seed's products 2–5 %
                // faster); AVX-512's four-vector tiles were no faster for it.
                let even_out = shape.vectors <= 2;
                // Each run of equal tiles (the whole tiles, then the evened-out pair) is one
                // call of the microkernel.
                for (i0, height, count) in row_tile_runs(rows, mr, even_out) {
                    let tile = Tile {
                        k,
                        // SAFETY: row i0 of this block exists in op(A).
                        a: unsafe { a_ptr.add(i0 * a_rs) },
                        a_rs,
                        a_cs,
                        b: panel_ptr,
                        b_rs: panel_rs,
                        // SAFETY: row i0, column j0 of this block exist in C.
                        c: unsafe { c_block.add(i0 * self.c_rs + (j0 - col0)) },
                        c_rs: self.c_rs,
                        cols: panel_cols,
                        alpha: self.alpha,
                        beta: self.beta,
                    };
                    // SAFETY: the `count` tiles' A rows, the panel's k rows of panel_nr values
                    // and C's count·height × panel_cols block are all in bounds (validated spans
                    // above; the run ends within the block's rows) and this task's alone.
                    unsafe { tile_rows(shape, height, tile, count) };
                }
            }
        });
    }
}

/// The row tiles that cover `rows` rows with tiles of at most `mr`, as runs of equal tiles
/// `(first row, height, count)`: the whole tiles, then the remainder — which, with `even_out`
/// and under half a tile, is evened out with the last whole one (80 rows in tiles of 6: twelve
/// of 6, then two of 4 rather than 6 and 2: a 2-row two-vector tile loads as many values as it
/// multiplies, 4 rows keep AVX2's two FMA units busy). Measured (AVX2 build on Zen 4, one
/// thread, fastest of 15 batches, alternated twice): the seed's E=16 B=80 32→32 products f32
/// X·Wᵀ 91–92 → 93–94 GFLOP/s, dYᵀ·X 99–100 → 103, f64 dYᵀ·X 46 → 48, dY·W 46–47 → 49.
///
/// At most three runs, computed rather than found by walking tile by tile: the walk (an
/// iterator of tiles, grouped as they came) ran once per column panel of every member's
/// product, a dozen steps each.
fn row_tile_runs(
    rows: usize,
    mr: usize,
    even_out: bool,
) -> impl Iterator<Item = (usize, usize, usize)> {
    let remainder = rows % mr;
    let (whole, tail) = if even_out && remainder != 0 && 2 * remainder < mr && rows > mr {
        let last_two = mr + remainder;
        (rows / mr - 1, [last_two.div_ceil(2), last_two / 2])
    } else {
        (rows / mr, [remainder, 0])
    };
    let mut runs = [(0, 0, 0); 3];
    let (mut used, mut first) = (0, 0);
    for (height, count) in [(mr, whole), (tail[0], 1), (tail[1], 1)] {
        if height == 0 || count == 0 {
            continue;
        }
        if used > 0 && runs[used - 1].1 == height {
            runs[used - 1].2 += count;
        } else {
            runs[used] = (first, height, count);
            used += 1;
        }
        first += height * count;
    }
    runs.into_iter().take(used)
}

/// Whether `rows` rows `row_stride` elements apart overflow the L1 sets they map to (a 64-set,
/// 8-way L1 of 64-byte lines: Zen 3 and Zen 4): a stride of a multiple of 64 bytes reaches only
/// `64 / gcd(stride in lines, 64)` sets — 512 bytes (128 f32, 64 f64) eight of them, 64 lines.
/// When both the `B` panel's rows and `op(A)`'s columns (a transposed `A`, as in the weight
/// gradient `dYᵀ·X`) stride so, the two streams evict each other on every `k` step; a packed
/// panel is contiguous. Measured (AVX2 build on Zen 4, one thread, fastest of 15 batches, two
/// alternated runs): E=16 B=80 128→128 `dYᵀ·X` f32 71–75 % of the FMA peak in place, 80–82 %
/// packed; f64 66–71 % → 79–81 %; E=64 B=256 64→64 f32 56–69 % → 68–76 %, f64 unchanged
/// (bound by L3). Where one stream alone fits (the seed's f64 32→32, 80 rows of 256 bytes in 16
/// sets) packing was slower (80 % → 70 %), hence the threshold on one stream. With `A` read
/// along its rows (the input gradient `dY·W`), the `B` panel's rows alone overflowing their sets
/// is enough: Zen 3, native AVX2 build, E=16 B=80 128→128 `dY·W` f32 74–75 → 79–82 GFLOP/s, f64
/// 37.5–38.8 → 40.4–41.7 (three alternated runs), the wide step ≈ 2 % faster on one and two
/// threads.
fn l1_set_conflict<T>(row_stride: usize, rows: usize) -> bool {
    const LINE: usize = 64;
    const SETS: usize = 64;
    const WAYS: usize = 8;
    let bytes = row_stride * core::mem::size_of::<T>();
    if bytes == 0 || !bytes.is_multiple_of(LINE) {
        return false;
    }
    let sets = SETS / gcd(bytes / LINE, SETS);
    rows > sets * WAYS
}

/// Whether a `B` panel read in place (row stride `b_rs`, `k` rows) would crowd L1 beside `op(A)`
/// (column stride `a_cs`): its rows overflow their L1 sets and `op(A)` is read along its rows
/// or its columns overflow theirs too (see [`l1_set_conflict`]).
fn panels_crowd_l1<T>(b_rs: usize, a_cs: usize, k: usize) -> bool {
    l1_set_conflict::<T>(b_rs, k) && (a_cs == 1 || l1_set_conflict::<T>(a_cs, k))
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// `C = β·C` on a block (β = 0 writes zeros without reading).
///
/// # Safety
/// `rows` rows of `cols` values, `row_stride` apart from `c`, are valid for reads and writes and
/// not aliased.
unsafe fn scale_block<T: Element>(c: *mut T, rows: usize, cols: usize, row_stride: usize, beta: T) {
    for i in 0..rows {
        for j in 0..cols {
            // SAFETY: within the block (the caller's promise).
            unsafe {
                let v = c.add(i * row_stride + j);
                *v = if beta == T::ZERO { T::ZERO } else { beta * *v };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::row_tile_runs;

    /// The tiles of `row_tile_runs`, one `(first row, height)` per tile.
    fn tiles_of(rows: usize, mr: usize, even_out: bool) -> Vec<(usize, usize)> {
        row_tile_runs(rows, mr, even_out)
            .flat_map(|(first, height, count)| {
                (0..count).map(move |t| (first + t * height, height))
            })
            .collect()
    }

    /// The runs cover every row once, in order, none taller than `mr`, each run's tiles of one
    /// height and no two neighbouring runs of the same; a small remainder is evened out with the
    /// last whole tile.
    #[test]
    fn row_tile_runs_cover_the_rows() {
        for mr in [4, 6, 8] {
            for rows in 1..100 {
                for even_out in [true, false] {
                    let runs: Vec<_> = row_tile_runs(rows, mr, even_out).collect();
                    assert!(runs.iter().all(|r| r.2 > 0), "{runs:?}");
                    assert!(runs.windows(2).all(|w| w[0].1 != w[1].1), "{runs:?}");
                    let tiles = tiles_of(rows, mr, even_out);
                    let mut next = 0;
                    for &(first, height) in &tiles {
                        assert_eq!(first, next, "rows {rows}, mr {mr}: {tiles:?}");
                        assert!(
                            (1..=mr).contains(&height),
                            "rows {rows}, mr {mr}: {tiles:?}"
                        );
                        next += height;
                    }
                    assert_eq!(next, rows, "rows {rows}, mr {mr}: {tiles:?}");
                }
            }
        }
        let heights = |rows, mr| {
            tiles_of(rows, mr, true)
                .iter()
                .map(|t| t.1)
                .collect::<Vec<_>>()
        };
        assert_eq!(heights(80, 6)[11..], [6, 4, 4]);
        assert_eq!(heights(100, 6)[15..], [6, 4]);
        assert_eq!(heights(80, 8), [8; 10]);
        assert_eq!(heights(2, 6), [2]);
        assert_eq!(heights(7, 6), [4, 3]);
        let plain: Vec<usize> = tiles_of(80, 6, false).iter().map(|t| t.1).collect();
        assert_eq!(plain[12..], [6, 2]);
        assert_eq!(
            row_tile_runs(80, 6, true).collect::<Vec<_>>(),
            [(0, 6, 12), (72, 4, 2)]
        );
    }
}
