//! Named parameters in one member-major flat buffer.
//!
//! # Layout
//! An ensemble of `E` members with `P` parameters each lives in one buffer of `E·P` values.
//! Member `e` owns `values[e·P .. (e+1)·P]`; inside it the leaves sit contiguously in the order
//! they were added to the [`ParamLayout`], each row-major in its own shape. For
//! `eqx.nn.MLP(1, 1, 32, 2)` that is, per member:
//!
//! | leaf | shape | offset |
//! |---|---|---|
//! | `layers.0.weight` | `[32, 1]` | 0 |
//! | `layers.0.bias` | `[32]` | 32 |
//! | `layers.1.weight` | `[32, 32]` | 64 |
//! | `layers.1.bias` | `[32]` | 1088 |
//! | `layers.2.weight` | `[1, 32]` | 1120 |
//! | `layers.2.bias` | `[1]` | 1152 |
//!
//! so `P = 1153`. An optimizer updates the whole buffer in one pass, one member's block can be
//! copied or checkpointed as a slice, and a leaf of every member is a strided view (stride `P`),
//! which the GEMM kernels read in place.

use crate::{AutogradError, Shape};

/// A handle to one leaf of a [`ParamLayout`] (its index, in order of addition).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ParamId(pub(crate) usize);

impl ParamId {
    /// The leaf's index in its layout.
    pub fn index(self) -> usize {
        self.0
    }
}

/// One named leaf inside a member's parameter block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafSpec {
    /// The leaf's name, e.g. `layers.0.weight`.
    pub name: String,
    /// Its shape (without the member axis).
    pub shape: Shape,
    /// Its offset inside one member's block.
    pub offset: usize,
}

impl LeafSpec {
    /// Number of values in the leaf.
    pub fn len(&self) -> usize {
        self.shape.elems()
    }

    /// Whether the leaf holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The named leaves of one member's parameters (see the [module docs](self) for the layout).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParamLayout {
    leaves: Vec<LeafSpec>,
    member_size: usize,
}

impl ParamLayout {
    /// An empty layout.
    pub fn new() -> ParamLayout {
        ParamLayout::default()
    }

    /// Appends a leaf and returns its id.
    ///
    /// # Errors
    /// [`AutogradError::DuplicateLeaf`] if the name is already used;
    /// [`AutogradError::InvalidShape`] if the member's values would not fit in memory's address
    /// space (a shape from an untrusted file).
    pub fn add(
        &mut self,
        name: impl Into<String>,
        shape: impl Into<Shape>,
    ) -> Result<ParamId, AutogradError> {
        let name = name.into();
        if self.find(&name).is_some() {
            return Err(AutogradError::DuplicateLeaf { name });
        }
        let shape = shape.into();
        let member_size = shape
            .dims()
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .and_then(|elems| self.member_size.checked_add(elems))
            .filter(|&size| size <= isize::MAX as usize / 16)
            .ok_or(AutogradError::InvalidShape {
                op: "ParamLayout::add",
                shape,
                expected: "a leaf whose values fit in memory",
            })?;
        let id = ParamId(self.leaves.len());
        self.leaves.push(LeafSpec {
            name,
            shape,
            offset: self.member_size,
        });
        self.member_size = member_size;
        Ok(id)
    }

    /// The id of the leaf called `name`.
    pub fn find(&self, name: &str) -> Option<ParamId> {
        self.leaves.iter().position(|l| l.name == name).map(ParamId)
    }

    /// The leaf `id`.
    ///
    /// # Errors
    /// [`AutogradError::UnknownParameter`] if `id` is not from this layout.
    pub fn leaf(&self, id: ParamId) -> Result<&LeafSpec, AutogradError> {
        self.leaves
            .get(id.0)
            .ok_or(AutogradError::UnknownParameter {
                index: id.0,
                leaves: self.leaves.len(),
            })
    }

    /// All leaves, in order.
    pub fn leaves(&self) -> &[LeafSpec] {
        &self.leaves
    }

    /// Parameters per member, `P`.
    pub fn member_size(&self) -> usize {
        self.member_size
    }
}

/// An ensemble's parameters: a [`ParamLayout`] and the member-major buffer of `E·P` values.
///
/// ```
/// use flock_autograd::{ParamLayout, Parameters};
/// let mut layout = ParamLayout::new();
/// let w = layout.add("w", [2, 3])?;
/// let b = layout.add("b", [2])?;
/// let mut params = Parameters::<f64>::zeros(layout, 4);
/// params.leaf_mut(3, b)?.copy_from_slice(&[1.0, 2.0]);
/// assert_eq!(params.member(3), &[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0]);
/// assert_eq!(params.values().len(), 4 * 8);
/// # let _ = w;
/// # Ok::<(), flock_autograd::AutogradError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Parameters<T> {
    layout: ParamLayout,
    members: usize,
    values: Vec<T>,
}

impl<T: Copy + Default> Parameters<T> {
    /// `members` members, every value zero.
    pub fn zeros(layout: ParamLayout, members: usize) -> Parameters<T> {
        let values = vec![T::default(); members * layout.member_size()];
        Parameters {
            layout,
            members,
            values,
        }
    }

    /// Wraps an existing member-major buffer.
    ///
    /// # Errors
    /// [`AutogradError::BufferLength`] unless `values.len() == members·P`.
    pub fn from_values(
        layout: ParamLayout,
        members: usize,
        values: Vec<T>,
    ) -> Result<Parameters<T>, AutogradError> {
        let expected = members * layout.member_size();
        if values.len() != expected {
            return Err(AutogradError::BufferLength {
                what: "params",
                len: values.len(),
                expected,
            });
        }
        Ok(Parameters {
            layout,
            members,
            values,
        })
    }

    /// The layout.
    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    /// Number of members `E`.
    pub fn members(&self) -> usize {
        self.members
    }

    /// The whole member-major buffer.
    pub fn values(&self) -> &[T] {
        &self.values
    }

    /// The whole member-major buffer, mutably.
    pub fn values_mut(&mut self) -> &mut [T] {
        &mut self.values
    }

    /// Gives the buffer back.
    pub fn into_values(self) -> Vec<T> {
        self.values
    }

    /// Member `e`'s block of `P` values.
    ///
    /// # Panics
    /// If `e ≥ E`.
    pub fn member(&self, e: usize) -> &[T] {
        let p = self.layout.member_size();
        &self.values[e * p..(e + 1) * p]
    }

    /// Member `e`'s block, mutably.
    ///
    /// # Panics
    /// If `e ≥ E`.
    pub fn member_mut(&mut self, e: usize) -> &mut [T] {
        let p = self.layout.member_size();
        &mut self.values[e * p..(e + 1) * p]
    }

    /// Member `e`'s values of leaf `id`, row-major in the leaf's shape.
    ///
    /// # Errors
    /// [`AutogradError::UnknownParameter`] for an id from another layout.
    ///
    /// # Panics
    /// If `e ≥ E`.
    pub fn leaf(&self, e: usize, id: ParamId) -> Result<&[T], AutogradError> {
        let leaf = self.layout.leaf(id)?;
        let (start, len) = (leaf.offset, leaf.len());
        Ok(&self.member(e)[start..start + len])
    }

    /// Member `e`'s values of leaf `id`, mutably.
    ///
    /// # Errors
    /// [`AutogradError::UnknownParameter`] for an id from another layout.
    ///
    /// # Panics
    /// If `e ≥ E`.
    pub fn leaf_mut(&mut self, e: usize, id: ParamId) -> Result<&mut [T], AutogradError> {
        let leaf = self.layout.leaf(id)?;
        let (start, len) = (leaf.offset, leaf.len());
        Ok(&mut self.member_mut(e)[start..start + len])
    }

    /// Sets leaf `id` of every member from a stacked `[E, shape…]` array (the layout JAX and
    /// equinox use for an ensemble's leaf).
    ///
    /// # Errors
    /// [`AutogradError::BufferLength`] unless `stacked.len() == E·len(leaf)`.
    pub fn set_leaf_stacked(&mut self, id: ParamId, stacked: &[T]) -> Result<(), AutogradError> {
        let len = self.layout.leaf(id)?.len();
        if stacked.len() != self.members * len {
            return Err(AutogradError::BufferLength {
                what: "stacked leaf",
                len: stacked.len(),
                expected: self.members * len,
            });
        }
        for e in 0..self.members {
            self.leaf_mut(e, id)?
                .copy_from_slice(&stacked[e * len..(e + 1) * len]);
        }
        Ok(())
    }

    /// Leaf `id` of every member as a stacked `[E, shape…]` array.
    ///
    /// # Errors
    /// [`AutogradError::UnknownParameter`] for an id from another layout.
    pub fn leaf_stacked(&self, id: ParamId) -> Result<Vec<T>, AutogradError> {
        let mut out = Vec::with_capacity(self.members * self.layout.leaf(id)?.len());
        for e in 0..self.members {
            out.extend_from_slice(self.leaf(e, id)?);
        }
        Ok(out)
    }
}
