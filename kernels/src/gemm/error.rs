//! Errors of the member-batched GEMM.

use core::fmt;

use super::layout::Operand;

/// Why a GEMM call was refused. Nothing is written to `C` when an error is returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GemmError {
    /// `op(A)` is `m × k` but `op(B)` is `k' × n` with `k ≠ k'`.
    InnerDimensionMismatch {
        /// `(rows, cols)` of `op(A)`.
        op_a: (usize, usize),
        /// `(rows, cols)` of `op(B)`.
        op_b: (usize, usize),
    },
    /// `C` is not `m × n`.
    OutputShapeMismatch {
        /// The `(m, n)` that `op(A)·op(B)` produces.
        expected: (usize, usize),
        /// The shape `C` was given.
        found: (usize, usize),
    },
    /// A row stride smaller than the number of columns would make rows overlap.
    RowStrideTooSmall {
        /// Which operand.
        operand: Operand,
        /// Its row stride.
        row_stride: usize,
        /// Its number of columns.
        cols: usize,
    },
    /// The slice is too short for `members` matrices with the given strides.
    BufferTooSmall {
        /// Which operand.
        operand: Operand,
        /// Elements the layout needs.
        needed: usize,
        /// Elements the slice has.
        len: usize,
    },
    /// `C`'s members would overlap (its member stride is smaller than one member's footprint).
    OverlappingOutputMembers {
        /// `C`'s member stride.
        member_stride: usize,
        /// One member's footprint.
        footprint: usize,
    },
}

impl fmt::Display for GemmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GemmError::InnerDimensionMismatch { op_a, op_b } => write!(
                f,
                "gemm: op(A) is {}×{} but op(B) is {}×{}; the inner dimensions must agree \
                 (transpose one operand with `.t()` if it is stored the other way round)",
                op_a.0, op_a.1, op_b.0, op_b.1
            ),
            GemmError::OutputShapeMismatch { expected, found } => write!(
                f,
                "gemm: op(A)·op(B) is {}×{} but C is {}×{}; give C the product's shape",
                expected.0, expected.1, found.0, found.1
            ),
            GemmError::RowStrideTooSmall {
                operand,
                row_stride,
                cols,
            } => write!(
                f,
                "gemm: operand {operand} has row stride {row_stride} < {cols} columns; rows would \
                 overlap, so use a row stride of at least the column count"
            ),
            GemmError::BufferTooSmall {
                operand,
                needed,
                len,
            } => write!(
                f,
                "gemm: operand {operand} needs {needed} elements for its members and strides but \
                 its slice has {len}; check the member count and strides"
            ),
            GemmError::OverlappingOutputMembers {
                member_stride,
                footprint,
            } => write!(
                f,
                "gemm: C's member stride {member_stride} is smaller than one member's footprint \
                 {footprint}, so members would overwrite each other; use a larger member stride"
            ),
        }
    }
}

impl std::error::Error for GemmError {}
