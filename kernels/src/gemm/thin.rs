//! Thin products — one output column (`n = 1`), one output row (`m = 1`) or a rank-1 update
//! (`k = 1`) — as BLAS-1 loops over contiguous vectors.
//!
//! An MLP with one input or one output feature has these shapes (`1→32` and `32→1` layers); the
//! register-tiled microkernel wastes most of its `MR × NR` tile on them. Each loop here keeps one
//! output element's summation order independent of how rows are split between threads, so
//! results stay bitwise identical with and without parallelism.

use crate::Element;
use crate::elementwise::dot_per_member;

/// `y += a·x` with one rounding per element, as a loop the compiler vectorises in place (the
/// vectors here are a few dozen long: a call into the general kernel costs more than the work).
#[inline(always)]
fn fused_axpy<T: Element>(a: T, x: &[T], y: &mut [T]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = a.mul_add(x, *y);
    }
}

/// Strides of one member's operands (`(along op rows, along op cols)`) and its `C` block.
pub(super) struct ThinProblem<'a, T> {
    pub a: &'a [T],
    pub a_strides: (usize, usize),
    pub b: &'a [T],
    pub b_strides: (usize, usize),
    pub rows: usize,
    /// Rows of the whole product (`rows` is this block's share): the plan must not depend on
    /// how rows are split.
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub alpha: T,
    pub beta: T,
}

enum Plan {
    /// `C[i] = α·(A[i, :]·b)`: rows of `A` and the column `b` contiguous.
    RowDots,
    /// `C[:] += α·b[p]·A[:, p]`: columns of `A` and of `C` contiguous.
    ColumnAxpys,
    /// `C[i, :] += α·A[i, 0]·B[0, :]`: the row of `B` contiguous.
    RankOne,
    /// `C[0, :] += α·A[0, p]·B[p, :]`: rows of `B` contiguous.
    RowOfB,
}

impl<T: Element> ThinProblem<'_, T> {
    fn plan(&self, c_rs: usize) -> Option<Plan> {
        let ((a_rs, a_cs), (b_rs, b_cs)) = (self.a_strides, self.b_strides);
        if self.n == 1 && a_cs == 1 && b_rs == 1 {
            Some(Plan::RowDots)
        } else if self.n == 1 && a_rs == 1 && c_rs == 1 {
            Some(Plan::ColumnAxpys)
        } else if self.k == 1 && b_cs == 1 {
            Some(Plan::RankOne)
        } else if self.m == 1 && b_cs == 1 {
            Some(Plan::RowOfB)
        } else {
            None
        }
    }

    /// Computes `C = α·op(A)·op(B) + β·C` for this block if it is thin; returns whether it did.
    pub fn run(&self, c: &mut [T], c_rs: usize) -> bool {
        let Some(plan) = self.plan(c_rs) else {
            return false;
        };
        let ((a_rs, a_cs), (b_rs, _)) = (self.a_strides, self.b_strides);
        let (rows, n, k, alpha) = (self.rows, self.n, self.k, self.alpha);
        match plan {
            Plan::RowDots => {
                let mut dot = [T::ZERO];
                for i in 0..rows {
                    dot_per_member(1, &self.a[i * a_rs..i * a_rs + k], &self.b[..k], &mut dot);
                    let out = &mut c[i * c_rs];
                    *out = if self.beta == T::ZERO {
                        alpha * dot[0]
                    } else {
                        alpha.mul_add(dot[0], self.beta * *out)
                    };
                }
            }
            Plan::ColumnAxpys => {
                super::scale_block(c, rows, 1, 1, self.beta);
                for p in 0..k {
                    let column = &self.a[p * a_cs..p * a_cs + rows];
                    fused_axpy(alpha * self.b[p * b_rs], column, &mut c[..rows]);
                }
            }
            Plan::RankOne => {
                super::scale_block(c, rows, n, c_rs, self.beta);
                let b = &self.b[..n];
                for i in 0..rows {
                    let row = &mut c[i * c_rs..i * c_rs + n];
                    fused_axpy(alpha * self.a[i * a_rs], b, row);
                }
            }
            Plan::RowOfB => {
                super::scale_block(c, 1, n, c_rs, self.beta);
                for p in 0..k {
                    let row = &self.b[p * b_rs..p * b_rs + n];
                    fused_axpy(alpha * self.a[p * a_cs], row, &mut c[..n]);
                }
            }
        }
        true
    }
}
