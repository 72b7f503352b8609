//! Shapes of tensors on the tape: the dimensions after the member axis.

use core::fmt;

/// The largest number of non-member dimensions a tensor may have.
pub const MAX_RANK: usize = 4;

/// The dimensions of one member's block, row-major (the member axis is not included).
///
/// A tensor of shape `[E, d₀, d₁]` has `Shape` `[d₀, d₁]`; a per-member scalar (a loss) has the
/// empty shape `[]`. Shapes are small values on the stack, so building a graph allocates nothing
/// for them.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    dims: [usize; MAX_RANK],
    rank: u8,
}

impl Shape {
    /// The empty shape of a per-member scalar.
    pub const SCALAR: Shape = Shape {
        dims: [0; MAX_RANK],
        rank: 0,
    };

    /// A shape from its dimensions.
    ///
    /// # Panics
    /// If there are more than [`MAX_RANK`] dimensions.
    pub fn new(dims: &[usize]) -> Shape {
        assert!(
            dims.len() <= MAX_RANK,
            "flock-autograd supports at most {MAX_RANK} dimensions after the member axis, got {dims:?}"
        );
        let mut shape = Shape::SCALAR;
        shape.dims[..dims.len()].copy_from_slice(dims);
        shape.rank = dims.len() as u8;
        shape
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        &self.dims[..self.rank as usize]
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.rank as usize
    }

    /// Number of elements per member (1 for a scalar).
    pub fn elems(&self) -> usize {
        self.dims().iter().product()
    }

    /// The last dimension (1 for a scalar).
    pub fn last(&self) -> usize {
        self.dims().last().copied().unwrap_or(1)
    }

    /// Whether `other` is a suffix of `self` — i.e. `other` broadcasts against `self` by
    /// repetition (`[]` broadcasts against everything, `[k]` against `[n, k]`).
    pub fn has_suffix(&self, other: &Shape) -> bool {
        let (a, b) = (self.dims(), other.dims());
        b.len() <= a.len() && a[a.len() - b.len()..] == *b
    }

    /// The shape both broadcast to, when one is a suffix of the other.
    pub fn broadcast(&self, other: &Shape) -> Option<Shape> {
        if self.has_suffix(other) {
            Some(*self)
        } else if other.has_suffix(self) {
            Some(*other)
        } else {
            None
        }
    }

    /// The shape without its last dimension.
    pub fn without_last(&self) -> Shape {
        let d = self.dims();
        Shape::new(&d[..d.len().saturating_sub(1)])
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.dims())
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.dims())
    }
}

impl From<&[usize]> for Shape {
    fn from(dims: &[usize]) -> Shape {
        Shape::new(dims)
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(dims: [usize; N]) -> Shape {
        Shape::new(&dims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_broadcasting() {
        let a = Shape::new(&[5, 3]);
        assert!(a.has_suffix(&Shape::new(&[3])));
        assert!(a.has_suffix(&Shape::SCALAR));
        assert!(!a.has_suffix(&Shape::new(&[5])));
        assert_eq!(Shape::new(&[3]).broadcast(&a), Some(a));
        assert_eq!(Shape::new(&[5]).broadcast(&a), None);
        assert_eq!(a.elems(), 15);
        assert_eq!(Shape::SCALAR.elems(), 1);
        assert_eq!(a.without_last(), Shape::new(&[5]));
    }
}
