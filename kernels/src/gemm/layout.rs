//! Operand descriptions for the member-batched GEMM: a stack of row-major matrices.

use core::fmt;

/// Which operand of `C = α·op(A)·op(B) + β·C` a message is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    /// The left factor.
    A,
    /// The right factor.
    B,
    /// The output.
    C,
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operand::A => "A",
            Operand::B => "B",
            Operand::C => "C",
        })
    }
}

/// A read-only stack of `E` row-major matrices of `rows × cols` inside one slice.
///
/// Member `e`'s element `(i, j)` is `data[e·member_stride + i·row_stride + j]`. A `member_stride`
/// of 0 shares one matrix between all members without copying it (a data batch). [`MatRef::t`]
/// marks the operand as transposed, so `op(X) = Xᵀ` is read in place.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, T> {
    pub(crate) data: &'a [T],
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) row_stride: usize,
    pub(crate) member_stride: usize,
    pub(crate) transposed: bool,
}

impl<'a, T> MatRef<'a, T> {
    /// Densely packed members: `row_stride = cols`, `member_stride = rows·cols`.
    pub fn new(data: &'a [T], rows: usize, cols: usize) -> Self {
        MatRef {
            data,
            rows,
            cols,
            row_stride: cols,
            member_stride: rows * cols,
            transposed: false,
        }
    }
    /// One matrix shared by every member (`member_stride = 0`).
    pub fn shared(data: &'a [T], rows: usize, cols: usize) -> Self {
        MatRef::new(data, rows, cols).with_member_stride(0)
    }
    /// Sets the distance between consecutive rows (≥ `cols`).
    pub fn with_row_stride(mut self, row_stride: usize) -> Self {
        self.row_stride = row_stride;
        self
    }
    /// Sets the distance between consecutive members (0 = shared).
    pub fn with_member_stride(mut self, member_stride: usize) -> Self {
        self.member_stride = member_stride;
        self
    }
    /// The transposed operand, read in place.
    pub fn t(mut self) -> Self {
        self.transposed = !self.transposed;
        self
    }
    /// `(rows, cols)` of `op(X)`, i.e. after any transposition.
    pub fn op_shape(&self) -> (usize, usize) {
        if self.transposed {
            (self.cols, self.rows)
        } else {
            (self.rows, self.cols)
        }
    }
    /// Logical strides `(along op rows, along op cols)` of `op(X)` within one member.
    pub(crate) fn op_strides(&self) -> (usize, usize) {
        if self.transposed {
            (1, self.row_stride)
        } else {
            (self.row_stride, 1)
        }
    }
}

/// A mutable stack of `E` row-major output matrices (`C`); columns are contiguous.
///
/// Member `e`'s element `(i, j)` is `data[e·member_stride + i·row_stride + j]`. Members must not
/// overlap (checked), so different members can be written from different threads.
#[derive(Debug)]
pub struct MatMut<'a, T> {
    pub(crate) data: &'a mut [T],
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) row_stride: usize,
    pub(crate) member_stride: usize,
}

impl<'a, T> MatMut<'a, T> {
    /// Densely packed members: `row_stride = cols`, `member_stride = rows·cols`.
    pub fn new(data: &'a mut [T], rows: usize, cols: usize) -> Self {
        MatMut {
            data,
            rows,
            cols,
            row_stride: cols,
            member_stride: rows * cols,
        }
    }
    /// Sets the distance between consecutive rows (≥ `cols`).
    pub fn with_row_stride(mut self, row_stride: usize) -> Self {
        self.row_stride = row_stride;
        self
    }
    /// Sets the distance between consecutive members.
    pub fn with_member_stride(mut self, member_stride: usize) -> Self {
        self.member_stride = member_stride;
        self
    }
}

/// The footprint of one member: the index one past its last element (0 when empty).
pub(crate) fn member_span(rows: usize, cols: usize, row_stride: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * row_stride + cols
    }
}
