//! Member-batched GEMM: `C_e = α·op(A_e)·op(B_e) + β·C_e` for `E` independent members.
//!
//! This covers every product of an MLP layer for a whole ensemble at once: the forward
//! `Y = X·Wᵀ` (`X` shared by all members through a zero member stride), the weight gradient
//! `dW = dYᵀ·X` and the input gradient `dX = dY·W`.
//!
//! # Structure
//! `gemm` validates shapes, then splits the work into tasks — one per member, and per block of
//! rows when there are fewer members than threads — and runs each task through `gemm_block`. A
//! block sweeps `C` in panels of `NR` columns (two or four vectors, by `n`); each panel of `op(B)`
//! is used in place when it is already contiguous, and otherwise packed (zero-padded to `NR`
//! columns) into a thread-local buffer; then the microkernel computes `MR × NR` tiles down the
//! rows. There is no `k` blocking:
//! a `k × NR` panel stays in L1/L2 for the widths an ensemble of small networks has.

mod error;
mod layout;
mod microkernel;
mod naive;
mod pack;
mod thin;

use rayon::prelude::*;

pub use error::GemmError;
pub use layout::{MatMut, MatRef, Operand};
pub use naive::gemm_naive;

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
    let c_rs = c.row_stride;
    let c_chunk = if members == 1 {
        c.data.len()
    } else {
        c.member_stride
    };
    let problem = Problem {
        m,
        n,
        k,
        shape: TileShape::for_columns::<T>(n),
        a,
        b,
        c_rs,
        alpha,
        beta,
    };
    let flops = 2 * members * m * n * k.max(1);
    if parallelism.should_split(flops) {
        let threads = rayon::current_num_threads();
        let mr = problem.shape.rows;
        let split_rows = members < 2 * threads && m > mr;
        c.data
            .par_chunks_mut(c_chunk)
            .take(members)
            .enumerate()
            .for_each(|(e, c_e)| {
                if split_rows {
                    let per_task = m.div_ceil(2 * threads).div_ceil(mr) * mr;
                    c_e.par_chunks_mut(per_task * c_rs)
                        .enumerate()
                        .for_each(|(blk, c_blk)| {
                            let row0 = blk * per_task;
                            if row0 < m {
                                problem.run(e, row0, per_task.min(m - row0), c_blk);
                            }
                        });
                } else {
                    problem.run(e, 0, m, c_e);
                }
            });
    } else {
        for (e, c_e) in c.data.chunks_mut(c_chunk).take(members).enumerate() {
            problem.run(e, 0, m, c_e);
        }
    }
    Ok(())
}

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

/// A validated problem; `run` computes one member's rows `row0..row0 + rows`.
struct Problem<'a, T> {
    m: usize,
    n: usize,
    k: usize,
    /// The microkernel's tile shape for this `n`.
    shape: TileShape,
    a: MatRef<'a, T>,
    b: MatRef<'a, T>,
    c_rs: usize,
    alpha: T,
    beta: T,
}

impl<T: Element> Problem<'_, T> {
    /// `c_rows` starts at `C[e][row0, 0]` and holds at least the `rows` rows' footprint.
    fn run(&self, e: usize, row0: usize, rows: usize, c_rows: &mut [T]) {
        let (m, n, k) = (self.m, self.n, self.k);
        debug_assert!(row0 + rows <= m);
        assert!(
            c_rows.len() >= member_span(rows, n, self.c_rs),
            "C block too short"
        );
        if k == 0 {
            scale_block(c_rows, rows, n, self.c_rs, self.beta);
            return;
        }
        let (a_rs, a_cs) = self.a.op_strides();
        let (b_rs, b_cs) = self.b.op_strides();
        let a_off = e * self.a.member_stride + row0 * a_rs;
        let b_off = e * self.b.member_stride;
        if n == 1 || k == 1 || m == 1 {
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
            if thin.run(c_rows, self.c_rs) {
                return;
            }
        }
        // The validated spans guarantee every index below is in bounds.
        debug_assert!(a_off + (rows - 1) * a_rs + (k - 1) * a_cs < self.a.data.len());
        debug_assert!(b_off + (k - 1) * b_rs + (n - 1) * b_cs < self.b.data.len());
        let shape = self.shape;
        let (nr, mr) = (shape.nr::<T>(), shape.rows);
        // op(A) is read in place: each k step broadcasts MR values straight from memory. Packing
        // it into MR-row tiles (`pack::pack_a`) was measured slower at the seed's sizes (80×32
        // per member: the pack costs as much as the product) and no faster at 256×64, so it is
        // off; the switch stays for wider problems.
        let pack_a_rows = false;
        let a_len = if pack_a_rows {
            rows.div_ceil(mr) * mr * k
        } else {
            0
        };
        T::with_scratch(k * nr + a_len, |scratch| {
            let (panel, a_packed) = scratch.split_at_mut(k * nr);
            let a_data = &self.a.data[a_off..];
            let (a_ptr, a_rs, a_cs, a_tile_step) = if pack_a_rows {
                pack::pack_a(a_data, a_rs, a_cs, rows, k, mr, a_packed);
                (a_packed.as_ptr(), 1, mr, mr * k)
            } else {
                (a_data.as_ptr(), a_rs, a_cs, mr * a_rs)
            };
            let b_data = &self.b.data[b_off..];
            for j0 in (0..n).step_by(nr) {
                let cols = nr.min(n - j0);
                // Loop over column panels is the outer one so each packed panel is reused by
                // every row tile while it is hot in L1.
                let (panel_ptr, panel_rs) = if b_cs == 1 && cols == nr {
                    // Columns j0..j0+nr exist in every row of op(B): use them in place.
                    (b_data[j0..].as_ptr(), b_rs)
                } else {
                    pack::pack_b(b_data, b_rs, b_cs, k, j0, cols, nr, panel);
                    (panel.as_ptr(), nr)
                };
                for (tile_index, i0) in (0..rows).step_by(mr).enumerate() {
                    let tile = Tile {
                        k,
                        // SAFETY: tile `tile_index` of op(A) (packed or in place) exists.
                        a: unsafe { a_ptr.add(tile_index * a_tile_step) },
                        a_rs,
                        a_cs,
                        b: panel_ptr,
                        b_rs: panel_rs,
                        // SAFETY: row i0 of this block exists in C.
                        c: unsafe { c_rows.as_mut_ptr().add(i0 * self.c_rs + j0) },
                        c_rs: self.c_rs,
                        cols,
                        alpha: self.alpha,
                        beta: self.beta,
                    };
                    // SAFETY: the tile's A rows, the panel's k rows of NR values and C's
                    // tile × cols block are all in bounds (validated spans above).
                    unsafe { tile_rows(shape, mr.min(rows - i0), tile) };
                }
            }
        });
    }
}

/// `C = β·C` on a block (β = 0 writes zeros without reading).
fn scale_block<T: Element>(c: &mut [T], rows: usize, cols: usize, row_stride: usize, beta: T) {
    for i in 0..rows {
        for v in &mut c[i * row_stride..i * row_stride + cols] {
            *v = if beta == T::ZERO { T::ZERO } else { beta * *v };
        }
    }
}
