//! The one error type of flock-autograd: every variant names the operation and the shapes.

use core::fmt;

use crate::Shape;

/// What went wrong while building or differentiating a graph.
#[derive(Clone, Debug, PartialEq)]
pub enum AutogradError {
    /// Two operands of `op` have shapes that do not fit together.
    ShapeMismatch {
        /// The operation, e.g. `"add"` or `"dense (weight)"`.
        op: &'static str,
        /// The first operand's shape (after the member axis).
        lhs: Shape,
        /// The second operand's shape.
        rhs: Shape,
    },
    /// An operand of `op` has a shape the operation does not accept.
    InvalidShape {
        /// The operation.
        op: &'static str,
        /// The operand's shape.
        shape: Shape,
        /// What was expected, in words.
        expected: &'static str,
    },
    /// A buffer's length disagrees with the shape it was given for.
    BufferLength {
        /// Which buffer, e.g. `"params"`, `"input"`, `"grad"`.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The length the shape and member count imply.
        expected: usize,
    },
    /// A parameter id does not belong to the layout the graph was built with.
    UnknownParameter {
        /// The id's index.
        index: usize,
        /// Number of leaves in the layout.
        leaves: usize,
    },
    /// `backward` was asked to start from something that is not a per-member scalar.
    NotAScalar {
        /// The shape it has.
        shape: Shape,
    },
    /// A parameter layout was given two leaves with the same name.
    DuplicateLeaf {
        /// The name.
        name: String,
    },
    /// A class label that is not a whole number in `0..classes`.
    InvalidLabel {
        /// The row (0-based).
        row: usize,
        /// The label.
        value: f64,
        /// The number of classes.
        classes: usize,
    },
    /// A model site is declared twice, out of order or not at all.
    Site {
        /// The site's name.
        name: String,
        /// What is wrong with it.
        problem: &'static str,
    },
}

impl fmt::Display for AutogradError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AutogradError::ShapeMismatch { op, lhs, rhs } => write!(
                f,
                "{op}: shapes {lhs} and {rhs} do not fit together (shapes exclude the member axis)"
            ),
            AutogradError::InvalidShape {
                op,
                shape,
                expected,
            } => write!(f, "{op}: got shape {shape}, expected {expected}"),
            AutogradError::InvalidLabel {
                row,
                value,
                classes,
            } => write!(
                f,
                "label {value} at row {row} is not a class index: expected a whole number from 0 to {}",
                classes.saturating_sub(1)
            ),
            AutogradError::BufferLength {
                what,
                len,
                expected,
            } => write!(
                f,
                "{what}: buffer holds {len} values, its shape and member count need {expected}"
            ),
            AutogradError::UnknownParameter { index, leaves } => write!(
                f,
                "parameter id {index} is not in this layout (it has {leaves} leaves)"
            ),
            AutogradError::NotAScalar { shape } => write!(
                f,
                "backward needs a per-member scalar (shape []), got shape {shape}"
            ),
            AutogradError::DuplicateLeaf { name } => {
                write!(f, "parameter layout: leaf name {name:?} is used twice")
            }
            AutogradError::Site { name, problem } => write!(f, "model site {name:?}: {problem}"),
        }
    }
}

impl std::error::Error for AutogradError {}
